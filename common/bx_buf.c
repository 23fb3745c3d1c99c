/* bx_buf: growable buffer with a maximum. */
#include "bx_buf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX ((size_t)64 << 20)

void bx_buf_init(bx_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : DEFAULT_MAX;
}

void bx_buf_free(bx_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void bx_buf_reset(bx_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static bx_status reserve(bx_buf *b, size_t extra)
{
    if (extra > b->max || b->len + extra > b->max)
        return BX_ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return BX_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return BX_ENOMEM;
    b->data = p;
    b->cap = cap;
    return BX_OK;
}

bx_status bx_buf_append(bx_buf *b, const void *p, size_t n)
{
    bx_status s = reserve(b, n);
    if (s != BX_OK)
        return s;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return BX_OK;
}

bx_status bx_buf_puts(bx_buf *b, const char *s)
{
    return bx_buf_append(b, s, strlen(s));
}

bx_status bx_buf_vprintf(bx_buf *b, const char *fmt, va_list ap)
{
    /* One pass when the text fits in the space already there, a second only to grow. */
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return BX_EINVAL;
    if ((size_t)n < room) {
        if (b->len + (size_t)n > b->max) {
            b->data[b->len] = '\0';
            return BX_ENOMEM;
        }
        b->len += (size_t)n;
        return BX_OK;
    }
    if (room)
        b->data[b->len] = '\0';
    bx_status s = reserve(b, (size_t)n);
    if (s != BX_OK)
        return s;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return BX_OK;
}

bx_status bx_buf_printf(bx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bx_status s = bx_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return s;
}

bx_status bx_buf_json_string(bx_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    static const char named_in[] = "\"\\\n\r\t", named_out[] = "\"\\nrt";
    bx_status st = bx_buf_append(b, "\"", 1);
    const unsigned char *run = (const unsigned char *)s, *p = run;
    for (; st == BX_OK && *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue; /* copied with the rest of its run */
        st = bx_buf_append(b, run, (size_t)(p - run));
        run = p + 1;
        /* The two-character escapes RFC 8259 names (*p is not NUL here), else \u00XX. */
        const char *named = strchr(named_in, *p);
        char esc[7] = {
            '\\', named ? named_out[named - named_in] : 'u', '0', '0', hex[*p >> 4], hex[*p & 15],
            '\0'};
        IFOK(st, bx_buf_append(b, esc, named ? 2 : 6));
    }
    IFOK(st, bx_buf_append(b, run, (size_t)(p - run)));
    IFOK(st, bx_buf_append(b, "\"", 1));
    return st;
}

char *bx_buf_steal(bx_buf *b)
{
    char *p = b->data;
    if (p == NULL)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

bx_status bx_buf_read_file(bx_buf *b, const char *path, bx_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return BX_ERR(err, errno == ENOENT ? BX_ENOTFOUND : BX_EIO, "%s: cannot open: %s", path,
                      strerror(errno));
    size_t start = b->len;
    char chunk[65536];
    size_t n;
    bx_status s = BX_OK;
    while (s == BX_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (n > b->max - b->len)
            s = BX_ERR(err, BX_EINVAL, "%s: larger than %zu bytes", path, b->max - start);
        else if (bx_buf_append(b, chunk, n) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "%s: out of memory", path);
    }
    if (s == BX_OK && ferror(f))
        s = BX_ERR(err, BX_EIO, "%s: read error", path);
    fclose(f);
    if (s != BX_OK && b->data) {
        b->len = start;
        b->data[start] = '\0';
    }
    return s;
}

bx_status bx_buf_write_file(const bx_buf *b, const char *path, bx_error *err)
{
    FILE *f = fopen(path, "wb");
    bool written = f && fwrite(b->data ? b->data : "", 1, b->len, f) == b->len;
    int why = errno;
    if (f && fclose(f) != 0 && written) {
        written = false;
        why = errno;
    }
    if (!written)
        return BX_ERR(err, BX_EIO, "%s: cannot write: %s", path, strerror(why));
    return BX_OK;
}

void bx_copy_text(char *out, size_t size, const char *text)
{
    size_t n = strlen(text);
    if (n >= size)
        n = size - 1;
    memcpy(out, text, n);
    out[n] = '\0';
}
