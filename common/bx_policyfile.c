/* bx_policyfile: splits a policy file into trimmed settings and checks what every policy file
 * shares (size, lines, UTF-8, repeats) before a loader sees a value. */
#include "bx_policyfile.h"

#include "bx_buf.h"
#include "bx_json.h"
#include "bx_map.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FILE_MAX 65536
#define DEFAULT_LINE_MAX 1024
#define SHOWN            40 /* bytes of a name or value quoted in an error */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

char *bx_policyfile_trim(char *s)
{
    while (is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One line's setting, checked; *skip for blank and comment lines. */
static bx_status split_line(char *raw, const char *file, int line, char **name, char **value,
                            bool *skip, bx_error *err)
{
    char *l = bx_policyfile_trim(raw);
    *skip = *l == '\0' || *l == '#';
    if (*skip)
        return BX_OK;
    /* Checked before any of it is quoted in a message. */
    char *eq = strchr(l, '=');
    if (eq == NULL && !bx_utf8_valid(l, strlen(l)))
        return BX_ERR(err, BX_EINVAL, "%s:%d: the line is not valid UTF-8", file, line);
    if (eq == NULL)
        return BX_ERR(err, BX_EINVAL, "%s:%d: expected \"name = value\", got \"%.*s\"", file, line,
                      SHOWN, l);
    *eq = '\0';
    char *k = bx_policyfile_trim(l), *v = bx_policyfile_trim(eq + 1);
    if (*k == '\0')
        return BX_ERR(err, BX_EINVAL, "%s:%d: expected a setting name before '='", file, line);
    if (!bx_utf8_valid(k, strlen(k)))
        return BX_ERR(err, BX_EINVAL, "%s:%d: the name is not valid UTF-8", file, line);
    if (!bx_utf8_valid(v, strlen(v)))
        return BX_ERR(err, BX_EINVAL, "%s:%d: %.*s: the value is not valid UTF-8", file, line,
                      SHOWN, k);
    for (const char *c = v; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20)
            return BX_ERR(err, BX_EINVAL, "%s:%d: %.*s: a control character in the value", file,
                          line, SHOWN, k);
    }
    *name = k;
    *value = v;
    return BX_OK;
}

bx_status bx_policyfile_parse(const char *text, size_t len, const char *file,
                              const bx_policyfile_opts *opts, bx_policyfile_fn fn, void *arg,
                              bx_error *err)
{
    size_t file_max = opts && opts->file_max ? opts->file_max : DEFAULT_FILE_MAX;
    size_t line_max = opts && opts->line_max ? opts->line_max : DEFAULT_LINE_MAX;
    bool unique = !(opts && opts->allow_repeats);
    if (len > file_max)
        return BX_ERR(err, BX_EINVAL, "%s: larger than %zu bytes", file, file_max);
    bx_status s = BX_OK;
    char *buf = malloc(line_max + 1);
    bx_map *seen = unique ? bx_map_new() : NULL;
    if (buf == NULL || (unique && seen == NULL)) {
        s = BX_ERR(err, BX_ENOMEM, "%s: out of memory", file);
        goto out;
    }
    size_t pos = 0;
    for (int line = 1; s == BX_OK && pos < len; line++) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n > line_max || memchr(start, '\0', n) != NULL) {
            s = BX_ERR(err, BX_EINVAL, "%s:%d: line longer than %zu bytes or holding a NUL byte",
                       file, line, line_max);
            break;
        }
        memcpy(buf, start, n);
        buf[n] = '\0';
        if (n > 0 && buf[n - 1] == '\r')
            buf[n - 1] = '\0';
        char *name = NULL, *value = NULL;
        bool skip = false;
        s = split_line(buf, file, line, &name, &value, &skip, err);
        if (s != BX_OK || skip)
            continue;
        if (unique) {
            intptr_t first = (intptr_t)bx_map_get(seen, name);
            if (first > 0) {
                s = BX_ERR(err, BX_EINVAL, "%s:%d: %.*s set twice (first on line %d)", file, line,
                           SHOWN, name, (int)first);
                break;
            }
            s = bx_map_put(seen, name, (void *)(intptr_t)line);
            if (s != BX_OK) {
                s = BX_ERR(err, s, "%s: out of memory", file);
                break;
            }
        }
        s = fn(arg, file, line, name, value, err);
    }
out:
    bx_map_free(seen);
    free(buf);
    return s;
}

bx_status bx_policyfile_load(const char *path, const bx_policyfile_opts *opts, bx_policyfile_fn fn,
                             void *arg, bx_error *err)
{
    bx_buf text;
    bx_buf_init(&text, opts && opts->file_max ? opts->file_max : DEFAULT_FILE_MAX);
    bx_status s = bx_buf_read_file(&text, path, err);
    IFOK(s, bx_policyfile_parse(text.data ? text.data : "", text.len, path, opts, fn, arg, err));
    bx_buf_free(&text);
    return s;
}

bool bx_policyfile_int(const char *value, int max_digits, int min, int max, int *out)
{
    size_t n = strlen(value);
    if (n == 0 || n > (size_t)max_digits)
        return false;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (value[i] < '0' || value[i] > '9')
            return false;
        x = x * 10 + (value[i] - '0');
    }
    if (x < min || x > max)
        return false;
    *out = (int)x;
    return true;
}
