/* reports: dropout rate (辍学率) and retention rate (巩固率) by class, school, township, county,
 * city and province (the county code's prefix) from per-class counts, with the seeds' thresholds
 * flagged; written as a text table, CSV or JSON. Pure: no database, no clock. */
#ifndef BX_ESCALATE_REPORTS_H
#define BX_ESCALATE_REPORTS_H

#include "bx_buf.h"
#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

/* Rates above these fail (shares, 0.01 = 1%). The seeds' targets are for a year: a caller
 * reporting a shorter period passes its own. */
typedef struct reports_thresholds {
    double primary_target; /* primary stage (grades 1-6): under 1% a year */
    double junior_target;  /* junior stage (grades 7-9): under 3% a year */
    double class_fail;     /* a class over 1% fails its teachers' appraisal (一票否决) */
    double school_fail;    /* a school over 3% fails too */
} reports_thresholds;

/* The seeds' values: 1%, 3%, 1%, 3%. */
void reports_thresholds_default(reports_thresholds *t);

/* One class's counts for the period. The ids are borrowed for the call. */
typedef struct reports_class_counts {
    const char *county;   /* county code */
    const char *township; /* township code */
    const char *school;   /* school id */
    const char *class_id; /* class id */
    int grade;            /* 1..9; 1-6 primary, 7-9 junior */
    int enrolled_start;   /* enrolled at the start of the period */
    int enrolled_now;     /* enrolled at its end (now) */
    int dropped_out;      /* dropped out during the period */
    int transferred_out;  /* normal transfers out (confirmed by the receiving school) */
    int transferred_in;   /* transfers in */
} reports_class_counts;

typedef enum reports_level {
    REPORTS_CLASS,
    REPORTS_SCHOOL,
    REPORTS_TOWNSHIP,
    REPORTS_COUNTY,
    REPORTS_CITY,    /* the first 4 digits of the county code */
    REPORTS_PROVINCE /* the first 2 digits */
} reports_level;

/* Counts of one stage, and the rates derived from them; a rate whose denominator is not positive
 * is not available (valid false), written "n/a". */
typedef struct reports_counts {
    long enrolled_start, enrolled_now, dropped_out, transferred_out, transferred_in;
    bool dropout_valid, retention_valid;
    double dropout_rate;   /* dropped_out / enrolled_start */
    double retention_rate; /* enrolled_now / (enrolled_start - transferred_out + transferred_in) */
} reports_counts;

/* Flags, bits of reports_row.flags. */
#define REPORTS_FLAG_PRIMARY_OVER 0x1u /* primary dropout rate over primary_target */
#define REPORTS_FLAG_JUNIOR_OVER  0x2u /* junior dropout rate over junior_target */
#define REPORTS_FLAG_CLASS_FAILS  0x4u /* a class over class_fail */
#define REPORTS_FLAG_SCHOOL_FAILS 0x8u /* a school over school_fail */

typedef struct reports_row {
    reports_level level;
    char id[33];                               /* the class, school, township or county id */
    char school[33], township[33], county[33]; /* the row's place above it ("" at or above) */
    int classes;                               /* classes summed in the row */
    reports_counts all, primary, junior;       /* totals, and per stage */
    unsigned flags;
} reports_row;

/* Derives the rates of c from its counts. */
void reports_counts_rates(reports_counts *c);

/* Sums the classes into rows of one level, ordered by id, with rates and flags (NULL thresholds:
 * the defaults). The input is validated (ids 1 to 32 bytes, grade 1..9, counts 0..10,000,000, a
 * class id given once): BX_EINVAL names the class. On success *rows (caller frees with free())
 * holds *count rows; on failure *rows is NULL. */
bx_status reports_aggregate(const reports_class_counts *classes, size_t n, reports_level level,
                            const reports_thresholds *thresholds, reports_row **rows, size_t *count,
                            bx_error *err) BX_MUSTCHECK;

/* A rate as text: "100.00%" or "n/a". */
void reports_rate_text(bool valid, double rate, char out[16]);
const char *reports_level_name(reports_level level);

/* Appends the rows to out: an aligned text table with a header, CSV (RFC 4180, a header line), or
 * a JSON array of objects (rates as percentages with two decimals, or the string "n/a"). */
bx_status reports_write_text(bx_buf *out, const reports_row *rows, size_t count) BX_MUSTCHECK;
bx_status reports_write_csv(bx_buf *out, const reports_row *rows, size_t count) BX_MUSTCHECK;
bx_status reports_write_json(bx_buf *out, const reports_row *rows, size_t count) BX_MUSTCHECK;

#endif
