/* reports: dropout rate (辍学率) and retention rate (巩固率) by class, school, township, county,
 * city and province (the county code's prefix) from per-class counts, with the seeds' thresholds
 * flagged, and the roll-call reporting rate (the share of a class's school days with a roll call;
 * a class under 90% is flagged: its absence figures cannot be trusted); written as a text table,
 * CSV or JSON. Pure: no database, no clock. */
#ifndef BX_ESCALATE_REPORTS_H
#define BX_ESCALATE_REPORTS_H

#include "bx_buf.h"
#include "bx_calendar.h"
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
    double rollcall_min;   /* a class with fewer of its school days reported is flagged (90%) */
} reports_thresholds;

/* The seeds' values: 1%, 3%, 1%, 3%; roll calls on 90% of the school days (issue 15). */
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
    /* roll calls (reports_rollcall_days): school days due in the period and those reported; both
     * 0 when not known (no rate, no flag) */
    int rollcall_due, rollcall_reported;
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
/* a class with roll calls on fewer than rollcall_min of its school days: its absence figures
 * cannot be trusted (rows above a class count such classes in rollcall_incomplete) */
#define REPORTS_FLAG_ROLLCALL_INCOMPLETE 0x10u

typedef struct reports_row {
    reports_level level;
    char id[33];                               /* the class, school, township or county id */
    char school[33], township[33], county[33]; /* the row's place above it ("" at or above) */
    int classes;                               /* classes summed in the row */
    reports_counts all, primary, junior;       /* totals, and per stage */
    /* roll calls: class-days due and reported, their share (valid when due > 0), and the classes
     * flagged REPORTS_FLAG_ROLLCALL_INCOMPLETE among those summed */
    long rollcall_due, rollcall_reported;
    int rollcall_incomplete;
    bool rollcall_valid;
    double rollcall_rate;
    unsigned flags;
} reports_row;

/* The row of rows[0..n) (ordered by id, as the queries return them) whose id is id, or NULL. */
const reports_row *reports_row_find(const reports_row *rows, size_t n, const char *id);

/* Derives the rates of c from its counts. */
void reports_counts_rates(reports_counts *c);

/* Sums the classes into rows of one level, ordered by id, with rates and flags (NULL thresholds:
 * the defaults). The input is validated (ids 1 to 32 bytes, grade 1..9, counts 0..10,000,000, a
 * class id given once): BX_EINVAL names the class. On success *rows (caller frees with free())
 * holds *count rows; on failure *rows is NULL. */
bx_status reports_aggregate(const reports_class_counts *classes, size_t n, reports_level level,
                            const reports_thresholds *thresholds, reports_row **rows, size_t *count,
                            bx_error *err) BX_MUSTCHECK;

/* ---- roll calls (issue 15, item 4) ---- */

/* The roll-call coverage of one class in [first, last] by its school's calendar: *due the school
 * days that are over by today (those before today), plus today once its roll call came; *got
 * those of them with a roll call. reported lists the days with a roll call of the class in any
 * order, repeats allowed; days outside the period, after today or without school are ignored. */
void reports_rollcall_days(const bx_calendar *cal, bx_date first, bx_date last, bx_date today,
                           const bx_date *reported, size_t n, int *due, int *got);
/* The flag rule: roll calls on fewer than min_share of the days due (none due: not flagged).
 * Compared in thousandths, so 9 of 10 at 90% is not flagged and 8 of 9 (88.9%) is. */
bool reports_rollcall_incomplete(long due, long got, double min_share);

/* ---- an upward report's figures (四个一: the duties' reports to the level above) ---- */

/* The standing lists of an area when a report is made and the returns of its period. */
typedef struct reports_area_cases {
    long suspected; /* open cases off the dropout roster (疑似辍学) */
    long dropout;   /* open cases on the roster (辍学) */
    long returned;  /* cases closed as returned (复学), the ledger's list */
    long returns;   /* cases closed as returned in the period */
} reports_area_cases;

/* The figures of one report as a JSON object: {"classes":..,"enrolled_start":..,"enrolled_now":..,
 * "dropped_out":..,"transferred_out":..,"transferred_in":..,"dropout_rate_pct":..,
 * "retention_rate_pct":..,"ledger":{"suspected":..,"dropout":..,"returned":..},"returns":..,
 * "rollcall":{"days_due":..,"days_reported":..,"rate_pct":..,"incomplete_classes":..}}; rates as
 * percentages with two decimals or "n/a". r NULL: an area without classes (counts 0, rates n/a). */
bx_status reports_write_figures_json(bx_buf *out, const reports_row *r,
                                     const reports_area_cases *cases) BX_MUSTCHECK;

/* A rate as text: "100.00%" or "n/a". */
void reports_rate_text(bool valid, double rate, char out[16]);
const char *reports_level_name(reports_level level);

/* Appends the rows to out: an aligned text table with a header, CSV (RFC 4180, a header line), or
 * a JSON array of objects (rates as percentages with two decimals, or the string "n/a"). Each
 * row carries its roll calls: the share of class-days reported ("rollcall"; CSV rollcall_days_due,
 * rollcall_days_reported, rollcall_rate, rollcall_incomplete_classes; JSON "rollcall") and the
 * classes under the threshold ("incompl"), a class itself flagged rollcall_incomplete. */
bx_status reports_write_text(bx_buf *out, const reports_row *rows, size_t count) BX_MUSTCHECK;
bx_status reports_write_csv(bx_buf *out, const reports_row *rows, size_t count) BX_MUSTCHECK;
bx_status reports_write_json(bx_buf *out, const reports_row *rows, size_t count) BX_MUSTCHECK;

#endif
