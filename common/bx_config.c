/* bx_config: environment and file configuration with validation. */
#include "bx_config.h"

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FILE_ROWS 128

struct file_value {
    char name[64];
    char value[512];
};

static bx_status read_file(const char *path, const bx_conf_row *rows, size_t nrows,
                           struct file_value *vals, size_t *nvals, bx_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return BX_ERR(err, BX_EINVAL, "BX_CONFIG_FILE: cannot open \"%s\"", path);
    char line[700];
    long lineno = 0;
    bx_status s = BX_OK;
    while (s == BX_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        while (len && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (eq == NULL) {
            s = BX_ERR(err, BX_EINVAL, "%s:%ld: expected NAME=value", path, lineno);
            break;
        }
        *eq = '\0';
        char *name = p, *value = eq + 1;
        size_t nl = strlen(name);
        while (nl && isspace((unsigned char)name[nl - 1]))
            name[--nl] = '\0';
        while (isspace((unsigned char)*value))
            value++;
        bool known = false;
        for (size_t i = 0; i < nrows; i++)
            known = known || strcmp(rows[i].name, name) == 0;
        if (!known) {
            s = BX_ERR(err, BX_EINVAL, "%s:%ld: unknown setting %s", path, lineno, name);
        } else if (*nvals == MAX_FILE_ROWS || nl >= sizeof(vals->name) ||
                   strlen(value) >= sizeof(vals->value)) {
            s = BX_ERR(err, BX_EINVAL, "%s:%ld: line too long", path, lineno);
        } else {
            snprintf(vals[*nvals].name, sizeof(vals->name), "%s", name);
            snprintf(vals[*nvals].value, sizeof(vals->value), "%s", value);
            (*nvals)++;
        }
    }
    fclose(f);
    return s;
}

/* Targets are written with memcpy: a string's field may be a const char *, an integer's an
 * int64_t or a long. */
static bx_status apply(const bx_conf_row *row, const char *text, bx_error *err)
{
    switch (row->type) {
    case BX_CONF_STRING: {
        char *copy = strdup(text), *old = NULL;
        if (copy == NULL)
            return BX_ERR(err, BX_ENOMEM, "%s: out of memory", row->name);
        memcpy(&old, row->target, sizeof(old));
        free(old);
        memcpy(row->target, &copy, sizeof(copy));
        return BX_OK;
    }
    case BX_CONF_INT:
    case BX_CONF_INT32: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end != '\0' || v < row->min || v > row->max)
            return BX_ERR(err, BX_EINVAL, "%s: expected an integer from %lld to %lld, got \"%s\"",
                          row->name, row->min, row->max, text);
        if (row->type == BX_CONF_INT32) {
            assert(row->min >= INT_MIN && row->max <= INT_MAX);
            int narrow = (int)v;
            memcpy(row->target, &narrow, sizeof(narrow));
        } else {
            memcpy(row->target, &v, sizeof(v));
        }
        return BX_OK;
    }
    case BX_CONF_BOOL:
        if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0 ||
            strcasecmp(text, "yes") == 0) {
            *(bool *)row->target = true;
        } else if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0 ||
                   strcasecmp(text, "no") == 0) {
            *(bool *)row->target = false;
        } else {
            return BX_ERR(err, BX_EINVAL, "%s: expected true or false, got \"%s\"", row->name,
                          text);
        }
        return BX_OK;
    }
    return BX_ERR(err, BX_EINVAL, "%s: unknown type", row->name);
}

/* Whether NAME_FILE is a setting of its own in the table (BX_NOTIFY_PROVIDER_FILE beside
 * BX_NOTIFY_PROVIDER): then NAME_FILE is not NAME's value in a file. */
static bool file_row_exists(const bx_conf_row *rows, size_t nrows, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < nrows; i++)
        if (strncmp(rows[i].name, name, len) == 0 && strcmp(rows[i].name + len, "_FILE") == 0)
            return true;
    return false;
}

bx_status bx_conf_load(const bx_conf_row *rows, size_t nrows, bx_error *err)
{
    static struct file_value vals[MAX_FILE_ROWS];
    size_t nvals = 0;
    const char *file = getenv("BX_CONFIG_FILE");
    if (file && *file) {
        bx_status s = read_file(file, rows, nrows, vals, &nvals, err);
        if (s != BX_OK)
            return s;
    }
    for (size_t i = 0; i < nrows; i++) {
        const char *text = getenv(rows[i].name);
        char *from_file = NULL; /* NAME_FILE: the value in a file (docker secrets) */
        if (text == NULL && !file_row_exists(rows, nrows, rows[i].name)) {
            bx_status s = bx_conf_secret(rows[i].name, &from_file, err);
            if (s != BX_OK)
                return s;
            text = from_file;
        }
        for (size_t j = 0; text == NULL && j < nvals; j++)
            if (strcmp(vals[j].name, rows[i].name) == 0)
                text = vals[j].value;
        if (text == NULL || (*text == '\0' && rows[i].def == NULL))
            text = rows[i].def; /* a required setting set to nothing is not set */
        if (text == NULL)
            return BX_ERR(err, BX_EINVAL, "%s: is required (%s)", rows[i].name, rows[i].help);
        bx_status s = apply(&rows[i], text, err);
        free(from_file);
        if (s != BX_OK)
            return s;
    }
    return BX_OK;
}

void bx_conf_free(const bx_conf_row *rows, size_t nrows)
{
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].type == BX_CONF_STRING) {
            char *old = NULL;
            memcpy(&old, rows[i].target, sizeof(old));
            free(old);
            old = NULL;
            memcpy(rows[i].target, &old, sizeof(old));
        }
    }
}

bx_status bx_conf_check_choice(const char *variable, const char *value, const char *const *choices,
                               bx_error *err)
{
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(value, choices[i]) == 0)
            return BX_OK;
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; choices[i] && used < sizeof(list); i++)
        used +=
            (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", choices[i]);
    return BX_ERR(err, BX_EINVAL, "%s: expected one of %s, got \"%s\"", variable, list, value);
}

void bx_conf_usage(const bx_conf_row *rows, size_t nrows)
{
    fprintf(stderr, "settings (environment variables, or NAME=value lines in BX_CONFIG_FILE):\n");
    for (size_t i = 0; i < nrows; i++)
        fprintf(stderr, "  %-24s %s (default: %s)\n", rows[i].name, rows[i].help,
                rows[i].def ? (*rows[i].def ? rows[i].def : "empty") : "required");
}

bx_status bx_conf_secret(const char *name, char **out, bx_error *err)
{
    *out = NULL;
    const char *value = getenv(name);
    if (value && *value) {
        *out = strdup(value);
        return *out ? BX_OK : BX_ERR(err, BX_ENOMEM, "%s: out of memory", name);
    }
    char file_var[128];
    snprintf(file_var, sizeof(file_var), "%s_FILE", name);
    const char *path = getenv(file_var);
    if (path == NULL || *path == '\0')
        return BX_OK;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return BX_ERR(err, BX_EINVAL, "%s: cannot read \"%s\"", file_var, path);
    char line[1024];
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    size_t len = got ? strlen(line) : 0;
    while (len && isspace((unsigned char)line[len - 1]))
        line[--len] = '\0';
    if (len == 0)
        return BX_ERR(err, BX_EINVAL, "%s: \"%s\" is empty", file_var, path);
    *out = strdup(line);
    explicit_bzero(line, sizeof(line));
    return *out ? BX_OK : BX_ERR(err, BX_ENOMEM, "%s: out of memory", name);
}
