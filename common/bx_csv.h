/* bx_csv: an RFC 4180 CSV reader for uploads and registry files, with line numbers for errors. */
#ifndef BX_CSV_H
#define BX_CSV_H

#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

#define BX_CSV_MAX_FIELDS    64
#define BX_CSV_MAX_FIELD_LEN 4096

typedef struct bx_csv bx_csv;

/* Reads records from data (len bytes, borrowed until bx_csv_free). Accepts a UTF-8 BOM at the
 * start, LF or CRLF line ends, quoted fields with "" escapes and line breaks inside quotes, and a
 * missing final line end. Rejects, with the line number: invalid UTF-8, NUL bytes, a quote inside
 * an unquoted field, text after a closing quote, an unterminated quote, more than BX_CSV_MAX_FIELDS
 * fields, a field longer than BX_CSV_MAX_FIELD_LEN. */
bx_status bx_csv_new(const char *data, size_t len, bx_csv **out, bx_error *err) BX_MUSTCHECK;
void bx_csv_free(bx_csv *c);

/* Reads the next record. *fields (nfields entries, NUL-terminated strings) is borrowed until the
 * next call; *line is the 1-based line on which the record starts. Blank lines are skipped.
 * Returns BX_ENOTFOUND at the end of the data, BX_EINVAL with "line N: ..." on malformed input
 * (the reader cannot continue after that). */
bx_status bx_csv_next(bx_csv *c, char ***fields, size_t *nfields, long *line,
                      bx_error *err) BX_MUSTCHECK;

/* A header row mapped to the columns a caller knows. */
typedef struct bx_csv_header {
    size_t ncols;                 /* known columns */
    size_t nheader;               /* fields in the header row: every record must have as many */
    int index[BX_CSV_MAX_FIELDS]; /* index[i]: field position of known column i, or -1 */
} bx_csv_header;

/* Maps the header row (fields as returned by bx_csv_next) onto known column names (NULL-ended).
 * Every name in required (NULL-ended, a subset of known) must be present; unknown or repeated
 * column names are errors naming the column. `file` is used in messages only. */
bx_status bx_csv_map_header(char **fields, size_t nfields, const char *const *known,
                            const char *const *required, const char *file, bx_csv_header *out,
                            bx_error *err) BX_MUSTCHECK;

/* Field of known column i in a record, or "" when the column is absent or the record is short. */
const char *bx_csv_field(const bx_csv_header *h, char **fields, size_t nfields, size_t i);

#endif
