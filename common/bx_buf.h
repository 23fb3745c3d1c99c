/* bx_buf: a growable byte buffer with a hard maximum, for building messages and reading bodies. */
#ifndef BX_BUF_H
#define BX_BUF_H

#include "bx_status.h"

#include <stdarg.h>
#include <stddef.h>

typedef struct bx_buf {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass this fail with BX_ENOMEM; 0 means 64 MiB */
} bx_buf;

void bx_buf_init(bx_buf *b, size_t max);
void bx_buf_free(bx_buf *b);
void bx_buf_reset(bx_buf *b);
bx_status bx_buf_append(bx_buf *b, const void *p, size_t n) BX_MUSTCHECK;
bx_status bx_buf_puts(bx_buf *b, const char *s) BX_MUSTCHECK;
bx_status bx_buf_printf(bx_buf *b, const char *fmt, ...) BX_PRINTF(2, 3) BX_MUSTCHECK;
bx_status bx_buf_vprintf(bx_buf *b, const char *fmt, va_list ap) BX_PRINTF(2, 0) BX_MUSTCHECK;
/* Appends s as a JSON string literal (quotes included), escaping as RFC 8259 requires. */
bx_status bx_buf_json_string(bx_buf *b, const char *s) BX_MUSTCHECK;
/* Appends the whole file at path. Errors name the path: BX_ENOTFOUND when there is no such file
 * and BX_EIO when it cannot be opened ("<path>: cannot open: <why>") or read, BX_EINVAL when the
 * buffer's maximum would be passed ("<path>: larger than <max> bytes"), BX_ENOMEM when memory
 * runs out; nothing of the file is kept after an error. */
bx_status bx_buf_read_file(bx_buf *b, const char *path, bx_error *err) BX_MUSTCHECK;
/* Writes the buffer's bytes to path, made or emptied first (mode 0666 less the umask). BX_EIO
 * "<path>: cannot write: <why>" when it cannot be opened, written or closed. */
bx_status bx_buf_write_file(const bx_buf *b, const char *path, bx_error *err) BX_MUSTCHECK;
/* Copies text into out, a field of size bytes (size > 0), cut as snprintf(out, size, "%s", text)
 * would be, without a format's cost: for fields filled once per message or per student. */
void bx_copy_text(char *out, size_t size, const char *text);
/* Hands the data to the caller (caller frees with free()); the buffer is left empty. */
char *bx_buf_steal(bx_buf *b);

#endif
