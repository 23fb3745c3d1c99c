/* bx_csv: an RFC 4180 reader that keeps line numbers for errors, and header mapping. */
#include "bx_csv.h"

#include "bx_json.h" /* bx_utf8_valid */

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_SHOWN_MAX 64

struct bx_csv {
    const char *data; /* borrowed */
    size_t len, pos;
    long line; /* line of data[pos], 1-based */
    bool failed;
    /* Room for the longest possible record: every field at its maximum plus its NUL. */
    char *store;
    size_t store_len;
    char *fields[BX_CSV_MAX_FIELDS];
};

#define STORE_SIZE ((size_t)BX_CSV_MAX_FIELDS * (BX_CSV_MAX_FIELD_LEN + 1))

bx_status bx_csv_new(const char *data, size_t len, bx_csv **out, bx_error *err)
{
    assert(out != NULL);
    assert(data != NULL || len == 0);
    *out = NULL;
    bx_csv *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory for the CSV reader");
    c->store = malloc(STORE_SIZE);
    if (c->store == NULL) {
        free(c);
        return BX_ERR(err, BX_ENOMEM, "out of memory for the CSV reader");
    }
    c->data = data;
    c->len = len;
    c->line = 1;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        c->pos = 3;
    *out = c;
    return BX_OK;
}

void bx_csv_free(bx_csv *c)
{
    if (c == NULL)
        return;
    free(c->store);
    free(c);
}

static bx_status fail(bx_csv *c, long line, bx_error *err, const char *fmt, ...) BX_PRINTF(4, 5);

/* Records "line N: what" and stops the reader: after malformed input the record boundaries are
 * unknown, so nothing later can be trusted. */
static bx_status fail(bx_csv *c, long line, bx_error *err, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    c->failed = true;
    BX_ERR(err, BX_EINVAL, "line %ld: %s", line, what);
    return BX_EINVAL;
}

/* True at a line end: "\n" or "\r\n". */
static bool at_line_end(const bx_csv *c)
{
    if (c->pos >= c->len)
        return false;
    if (c->data[c->pos] == '\n')
        return true;
    return c->data[c->pos] == '\r' && c->pos + 1 < c->len && c->data[c->pos + 1] == '\n';
}

static void skip_line_end(bx_csv *c)
{
    c->pos += c->data[c->pos] == '\r' ? 2 : 1;
    c->line++;
}

/* Reads one field at c->pos into the store; column is its 1-based position for messages. */
static bx_status read_field(bx_csv *c, size_t column, char **field, bx_error *err)
{
    char *f = c->store + c->store_len;
    size_t flen = 0;
    long start_line = c->line;
    if (c->pos < c->len && c->data[c->pos] == '"') {
        c->pos++;
        for (;;) {
            if (c->pos >= c->len)
                return fail(c, start_line, err, "unterminated quoted field (column %zu)", column);
            char ch = c->data[c->pos];
            if (ch == '"') {
                if (c->pos + 1 < c->len && c->data[c->pos + 1] == '"') {
                    c->pos++; /* "" stands for one quote */
                } else {
                    c->pos++;
                    break;
                }
            } else if (ch == '\n') {
                c->line++;
            }
            if (flen == BX_CSV_MAX_FIELD_LEN)
                return fail(c, start_line, err, "field longer than %d bytes (column %zu)",
                            BX_CSV_MAX_FIELD_LEN, column);
            f[flen++] = ch;
            c->pos++;
        }
        if (c->pos < c->len && c->data[c->pos] != ',' && !at_line_end(c))
            return fail(c, c->line, err, "text after a closing quote (column %zu)", column);
    } else {
        while (c->pos < c->len && c->data[c->pos] != ',' && c->data[c->pos] != '\n') {
            char ch = c->data[c->pos];
            if (ch == '"')
                return fail(c, c->line, err, "quote inside an unquoted field (column %zu)", column);
            if (ch == '\r') {
                if (at_line_end(c))
                    break;
                return fail(c, c->line, err,
                            "carriage return not followed by a line feed (column %zu)", column);
            }
            if (flen == BX_CSV_MAX_FIELD_LEN)
                return fail(c, c->line, err, "field longer than %d bytes (column %zu)",
                            BX_CSV_MAX_FIELD_LEN, column);
            f[flen++] = ch;
            c->pos++;
        }
    }
    f[flen] = '\0';
    if (memchr(f, '\0', flen) != NULL)
        return fail(c, start_line, err, "NUL byte (column %zu)", column);
    if (!bx_utf8_valid(f, flen))
        return fail(c, start_line, err, "invalid UTF-8 (column %zu)", column);
    c->store_len += flen + 1;
    *field = f;
    return BX_OK;
}

bx_status bx_csv_next(bx_csv *c, char ***fields, size_t *nfields, long *line, bx_error *err)
{
    assert(c != NULL && fields != NULL && nfields != NULL && line != NULL);
    if (c->failed)
        return BX_ERR(err, BX_EINVAL, "line %ld: reader stopped at an earlier error", c->line);
    while (at_line_end(c))
        skip_line_end(c);
    if (c->pos >= c->len)
        return BX_ERR(err, BX_ENOTFOUND, "end of the CSV data");

    long record_line = c->line;
    size_t n = 0;
    c->store_len = 0;
    for (;;) {
        if (n == BX_CSV_MAX_FIELDS)
            return fail(c, c->line, err, "more than %d fields", BX_CSV_MAX_FIELDS);
        bx_status st = read_field(c, n + 1, &c->fields[n], err);
        if (st != BX_OK)
            return st;
        n++;
        if (c->pos >= c->len)
            break;
        if (c->data[c->pos] == ',') {
            c->pos++;
            continue;
        }
        assert(at_line_end(c));
        skip_line_end(c);
        break;
    }
    *fields = c->fields;
    *nfields = n;
    *line = record_line;
    return BX_OK;
}

/* Writes a column name for a message: control characters and quotes escaped, long names cut. */
static void show_name(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    assert(cap >= NAME_SHOWN_MAX + 16);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        /* Cut at a character boundary, but never more than 3 bytes past the limit. */
        if (o >= NAME_SHOWN_MAX && ((ch & 0xC0) != 0x80 || o >= NAME_SHOWN_MAX + 3)) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7F) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            if (ch == '"' || ch == '\\')
                out[o++] = '\\';
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

static bool name_is(const char *known, const char *name, size_t len)
{
    return strlen(known) == len && memcmp(known, name, len) == 0;
}

bx_status bx_csv_map_header(char **fields, size_t nfields, const char *const *known,
                            const char *const *required, const char *file, bx_csv_header *out,
                            bx_error *err)
{
    assert(known != NULL && out != NULL);
    assert(nfields <= BX_CSV_MAX_FIELDS);
    const char *where = file ? file : "CSV header";
    char shown[NAME_SHOWN_MAX + 16];
    size_t nknown = 0;
    while (known[nknown] != NULL)
        nknown++;
    assert(nknown <= BX_CSV_MAX_FIELDS);
    out->ncols = nknown;
    out->nheader = nfields;
    for (size_t k = 0; k < BX_CSV_MAX_FIELDS; k++)
        out->index[k] = -1;

    for (size_t f = 0; f < nfields; f++) {
        const char *name = fields[f];
        size_t len = strlen(name);
        while (len > 0 && (name[0] == ' ' || name[0] == '\t')) {
            name++;
            len--;
        }
        while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
            len--;
        if (len == 0)
            return BX_ERR(err, BX_EINVAL, "%s: column %zu has no name", where, f + 1);
        size_t k = 0;
        while (k < nknown && !name_is(known[k], name, len))
            k++;
        show_name(name, len, shown, sizeof(shown));
        if (k == nknown)
            return BX_ERR(err, BX_EINVAL, "%s: unknown column \"%s\"", where, shown);
        if (out->index[k] != -1)
            return BX_ERR(err, BX_EINVAL, "%s: column \"%s\" appears twice", where, shown);
        out->index[k] = (int)f;
    }
    for (const char *const *r = required; r && *r; r++) {
        size_t k = 0;
        while (k < nknown && strcmp(known[k], *r) != 0)
            k++;
        assert(k < nknown && "a required column must also be known");
        if (out->index[k] == -1) {
            show_name(*r, strlen(*r), shown, sizeof(shown));
            return BX_ERR(err, BX_EINVAL, "%s: missing column \"%s\"", where, shown);
        }
    }
    return BX_OK;
}

const char *bx_csv_field(const bx_csv_header *h, char **fields, size_t nfields, size_t i)
{
    assert(h != NULL && i < h->ncols);
    int idx = h->index[i];
    if (idx < 0 || (size_t)idx >= nfields)
        return "";
    return fields[idx];
}
