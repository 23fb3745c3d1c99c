/* fuzz_csv: libFuzzer target for the CSV reader and header mapping, checking invariants. */
#include "bx_buf.h"
#include "bx_csv.h"
#include "bx_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s\n", #cond);                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const known[] = {"school_id", "name", "township_code", "stage", NULL};
static const char *const required[] = {"school_id", "name", NULL};

/* Reads everything, checking each record, and writes it back with every field quoted.
 * Returns the reader's final status. */
static bx_status read_all(const char *text, size_t size, bx_buf *out)
{
    bx_csv *c = NULL;
    bx_error err = {0};
    bx_status st = bx_csv_new(text, size, &c, &err);
    if (st != BX_OK)
        return st;
    long prev_line = 0;
    bool tried_header = false, have_header = false;
    bx_csv_header h;
    for (;;) {
        char **fields;
        size_t n;
        long line;
        st = bx_csv_next(c, &fields, &n, &line, &err);
        if (st != BX_OK) {
            INVARIANT(st == BX_ENOTFOUND || (st == BX_EINVAL && strncmp(err.msg, "line ", 5) == 0));
            break;
        }
        INVARIANT(n >= 1 && n <= BX_CSV_MAX_FIELDS);
        INVARIANT(line > prev_line);
        prev_line = line;
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(fields[i]);
            INVARIANT(len <= BX_CSV_MAX_FIELD_LEN);
            INVARIANT(bx_utf8_valid(fields[i], len));
            INVARIANT(bx_buf_puts(out, i ? ",\"" : "\"") == BX_OK);
            for (const char *p = fields[i]; *p; p++) {
                INVARIANT(bx_buf_append(out, p, 1) == BX_OK);
                if (*p == '"')
                    INVARIANT(bx_buf_append(out, "\"", 1) == BX_OK);
            }
            INVARIANT(bx_buf_puts(out, "\"") == BX_OK);
        }
        INVARIANT(bx_buf_puts(out, "\r\n") == BX_OK);
        if (!tried_header) {
            tried_header = true;
            have_header =
                bx_csv_map_header(fields, n, known, required, "fuzz.csv", &h, &err) == BX_OK;
            if (!have_header)
                INVARIANT(strncmp(err.msg, "fuzz.csv: ", 10) == 0);
        } else if (have_header) {
            for (size_t i = 0; i < h.ncols; i++) {
                const char *v = bx_csv_field(&h, fields, n, i);
                INVARIANT(v != NULL &&
                          (h.index[i] < 0 || (size_t)h.index[i] >= n || v == fields[h.index[i]]));
            }
        }
    }
    bx_csv_free(c);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bx_buf first, second;
    bx_buf_init(&first, 0);
    bx_buf_init(&second, 0);
    if (read_all((const char *)data, size, &first) == BX_ENOTFOUND) {
        /* Everything read cleanly: the quoted copy must read back to the same records. */
        INVARIANT(read_all(first.data ? first.data : "", first.len, &second) == BX_ENOTFOUND);
        INVARIANT(first.len == second.len);
        INVARIANT(first.len == 0 ||
                  (first.data && second.data && memcmp(first.data, second.data, first.len) == 0));
    }
    bx_buf_free(&first);
    bx_buf_free(&second);
    return 0;
}
