/* bxctl: commands shared between the operator tool's modules. */
#ifndef BXCTL_H
#define BXCTL_H

#include "bx_buf.h"
#include "bx_config.h"
#include "bx_status.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct bxctl_ctx {
    bx_common_conf conf;
    char *sql_dir;
    long long topic_partitions;
    char *score_policy;
    char *settle_groups; /* BX_SETTLE_GROUPS: "group:topic,topic ..." that settle waits for */
    char *kafka_home;    /* BX_KAFKA_HOME: a Kafka installation (libs/), for bxctl analyst */
} bxctl_ctx;

/* Each command returns the process exit code: 0 done, 1 failed, 2 usage. */
int bxctl_migrate(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_topics(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_import(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_key(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_clock(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_rebuild(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_student(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_case(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_report(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_report_upward(bxctl_ctx *ctx, int argc, char **argv); /* report_upward.c: 四个一 */
int bxctl_ledger(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_settle(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_staff(bxctl_ctx *ctx, int argc, char **argv);         /* staff.c: bx-console accounts */
int bxctl_audit(bxctl_ctx *ctx, int argc, char **argv);         /* audit.c */
int bxctl_privacy(bxctl_ctx *ctx, int argc, char **argv);       /* privacy.c: erasure */
int bxctl_case_document(bxctl_ctx *ctx, int argc, char **argv); /* document.c */
int bxctl_analyst(bxctl_ctx *ctx, int argc, char **argv);       /* analyst.c: Kafka */
int bxctl_backup(bxctl_ctx *ctx, int argc, char **argv);        /* backup.c */
int bxctl_restore(bxctl_ctx *ctx, int argc, char **argv);       /* backup.c */
int bxctl_match(bxctl_ctx *ctx, int argc, char **argv);         /* match.c: 四查三比对 */
/* The enrolment rate (入学率) of each county under area (a code prefix, "" all) from its latest
 * match, one line each appended to notes (for bxctl report); nothing without a match. */
bx_status bxctl_match_report_notes(PGconn *db, const char *area, bx_buf *notes,
                                   int *nnotes) BX_MUSTCHECK;
/* The student's transfers matched by bx-escalate (cases.transfer_match), out or in: printed as
 * lines when json is NULL, else appended as ,"transfers":[...] (for bxctl case show). */
bx_status bxctl_match_transfers(PGconn *db, const char *student, bx_buf *json) BX_MUSTCHECK;

/* What bx-score's computations read (rebuild.c): PostgreSQL, Redis, the registry, the profiles
 * and the policy. Returns NULL after printing why; close with bxctl_score_close. */
struct score_env;
typedef struct bxctl_score bxctl_score;
bxctl_score *bxctl_score_open(bxctl_ctx *ctx);
const struct score_env *bxctl_score_env(const bxctl_score *s);
PGconn *bxctl_score_db(bxctl_score *s);
void bxctl_score_close(bxctl_score *s);

/* Helpers of case, report and ledger (cases.c). A timestamptz column as ISO 8601 text in
 * Asia/Shanghai, for SELECT lists. */
#define BXCTL_ISO(col)                                                                             \
    "to_char((" col ") AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"')"
/* Runs of this many digits or more in free text (a phone, an id number) are masked. */
#define BXCTL_MASK_DIGITS 7
/* The clock's now in milliseconds as a query parameter (to_timestamp($n::bigint / 1000.0)). */
void bxctl_now_param(char out[32]);
/* Copies in to out (size bytes) with digit runs masked as '*'. */
void bxctl_mask_digits(const char *in, char *out, size_t size);
/* Appends text as a JSON string with digit runs masked; "" as null (json_or_null). */
bx_status bxctl_json_masked(bx_buf *b, const char *text) BX_MUSTCHECK;
bx_status bxctl_json_or_null(bx_buf *b, const char *text) BX_MUSTCHECK;
/* How bxctl_json_fields writes a column of a result row. */
typedef enum bxctl_json_as {
    BXCTL_JSON_STRING,   /* a JSON string */
    BXCTL_JSON_OR_NULL,  /* a JSON string, "" as null */
    BXCTL_JSON_NULLABLE, /* a JSON string, SQL NULL as null */
    BXCTL_JSON_MASKED,   /* a JSON string with digit runs masked */
    BXCTL_JSON_BOOL,     /* 't' as true, else false */
    BXCTL_JSON_RAW       /* the text as it is: a number, or jsonb's text (JSON already) */
} bxctl_json_as;
typedef struct bxctl_json_field {
    const char *key;
    int col;
    bxctl_json_as as;
} bxctl_json_field;
/* Appends "key":value for each of the n fields of row of res, separated by commas (no braces). */
bx_status bxctl_json_fields(bx_buf *b, const PGresult *res, int row, const bxctl_json_field *fields,
                            size_t n) BX_MUSTCHECK;
#define BXCTL_JSON_FIELDS(b, res, row, fields)                                                     \
    bxctl_json_fields(b, res, row, fields, sizeof(fields) / sizeof(fields[0]))
/* Appends [{...},...]: an object of the n fields for each row from first to end - 1 of res. */
bx_status bxctl_json_rows(bx_buf *b, const PGresult *res, int first, int end,
                          const bxctl_json_field *fields, size_t n) BX_MUSTCHECK;
#define BXCTL_JSON_ROWS(b, res, first, end, fields)                                                \
    bxctl_json_rows(b, res, first, end, fields, sizeof(fields) / sizeof(fields[0]))
/* "2026-11-27T10:00:00+08:00" as "2026-11-27 10:00"; "" as "-". */
void bxctl_time_text(const char *iso, char out[17]);
/* s is exactly len decimal digits (county 6, township 9). */
bool bxctl_code_valid(const char *s, size_t len);

/* ---- the command line (cli.c) ---- */

/* An option of a command: "--name VALUE" sets *value to the next argument; an option without a
 * value pointer is a flag and sets *flag. */
typedef struct bxctl_option {
    const char *name;
    const char **value;
    bool *flag;
} bxctl_option;
#define BXCTL_VALUE(option, target)                                                                \
    {                                                                                              \
        .name = (option), .value = (target)                                                        \
    }
#define BXCTL_FLAG(option, target)                                                                 \
    {                                                                                              \
        .name = (option), .flag = (target)                                                         \
    }
/* Reads the argc words of argv as the n options opts names, in any order (the last of a repeated
 * one wins); a word that is no option and does not start with '-' is the next of at most
 * npositional positional arguments (positional[0], ...). false, for the caller to print its
 * usage, on an unknown option, a value missing, or a positional argument too many. */
bool bxctl_options(int argc, char **argv, const bxctl_option *opts, size_t n,
                   const char **positional, int npositional);
#define BXCTL_OPTIONS(argc, argv, opts)                                                            \
    bxctl_options(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), NULL, 0)
/* text as a whole number from min to max into *out; else prints "<cmd>: <option>: expected
 * [<unit> from ]<min> to <max>, got "<text>"" and returns false. unit may be NULL. */
bool bxctl_number(const char *cmd, const char *option, const char *text, long long min,
                  long long max, const char *unit, long long *out);
/* A command's output: out to stdout when st is BX_OK, else "<cmd>: out of memory" on stderr.
 * Frees out; returns the exit code (0 or 1). */
int bxctl_print(bx_buf *out, bx_status st, const char *cmd);
/* The rows of a parameterised query (caller PQclear), or NULL after printing "<cmd>: <why>". */
PGresult *bxctl_query(PGconn *db, const char *cmd, const char *sql, int nparams,
                      const char *const *params);
/* A column of a text table: its heading and width (cells are padded to it; the last column is
 * not), and whether a longer cell is cut to the width (headings never are). */
typedef struct bxctl_column {
    const char *heading;
    int width;
    bool cut;
} bxctl_column;
/* Prints one row of cells (one for each of the n columns), or the headings when cells is NULL,
 * with gap between columns and a newline. */
void bxctl_table_row(const bxctl_column *cols, size_t n, const char *gap, const char *const *cells);
#define BXCTL_TABLE_ROW(cols, gap, ...)                                                            \
    bxctl_table_row(cols, sizeof(cols) / sizeof(cols[0]), gap, (const char *const[]){__VA_ARGS__})
#define BXCTL_TABLE_HEADINGS(cols, gap)                                                            \
    bxctl_table_row(cols, sizeof(cols) / sizeof(cols[0]), gap, NULL)

/* Connects to the configured database or prints why not. */
PGconn *bxctl_db(bxctl_ctx *ctx);

#endif
