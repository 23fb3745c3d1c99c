/* report_queries: the SQL behind the rates (辍学率, 巩固率) and the standing lists (台账), shared
 * by bxctl report and bxctl ledger and bx-console's county and area pages, so that an operator's
 * figures and an officer's page are one computation. The rates themselves are reports.h (pure);
 * this module only reads PostgreSQL. */
#ifndef BX_ESCALATE_REPORT_QUERIES_H
#define BX_ESCALATE_REPORT_QUERIES_H

#include "bx_registry.h"
#include "bx_status.h"
#include "reports.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* A timestamptz column as ISO 8601 text in Asia/Shanghai, for SELECT lists. */
#define REPORTS_ISO(col)                                                                           \
    "to_char((" col ") AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"')"

/* ---- per-class counts of a period (the rates) ---- */

/* Columns of reports_query_class_counts' rows, one row per class. */
enum {
    RQ_COUNTY,
    RQ_TOWNSHIP,
    RQ_SCHOOL,
    RQ_CLASS,
    RQ_GRADE,
    RQ_START,
    RQ_DROPPED,
    RQ_OUT,
    RQ_IN,
    RQ_NOW,
    RQ_UNDATED,
    RQ_NO_DATE,
    RQ_HAS_PERIOD,
    RQ_BEGUN,
    RQ_CALENDAR,  /* the school's calendar id */
    RQ_FIRST_DAY, /* the class's period: its first and last day, "YYYY-MM-DD" or "" */
    RQ_LAST_DAY,
    RQ_HAS_ENROLLED /* 't' when the registry lists an enrolled student in the class */
};

/* The period and the area. Exactly one of term, month_first_day and first_day is set. */
typedef struct reports_period {
    const char *term;            /* each school's own term of this code, or NULL */
    const char *month_first_day; /* "YYYY-MM-01": that calendar month, or NULL */
    long long now_ms;            /* the period is cut at now */
    const char *area;            /* a county code, or a city (4) or province (2) prefix; "" all */
    const char *first_day, *last_day; /* "YYYY-MM-DD": the days from first to last, or NULL */
    const char *calendar_id;          /* only the schools of this calendar; NULL or "" any */
} reports_period;

/* One row per class of the area (counted as bxctl report's header comment explains). */
bx_status reports_query_class_counts(PGconn *db, const reports_period *p, PGresult **res,
                                     bx_error *err) BX_MUSTCHECK;

/* The counts of the classes whose period exists and has begun, borrowing res's strings; classes
 * has room for every row of res. Returns how many it filled. */
size_t reports_class_counts_of(const PGresult *res, reports_class_counts *classes);

/* The roll calls of those classes (classes and n as reports_class_counts_of filled them from
 * res): for each class with an enrolled student, the school days of its period by its school's
 * calendar (found in calendars, a registry; a class whose calendar it lacks gets none) that are
 * over by today, plus today once reported, and those with a roll call stored by bx-score
 * (attendance.class_report, any period of the day). Sets rollcall_due and rollcall_reported. */
bx_status reports_query_rollcall(PGconn *db, const PGresult *res, const bx_registry *calendars,
                                 bx_date today, reports_class_counts *classes, size_t n,
                                 bx_error *err) BX_MUSTCHECK;

/* Columns of reports_query_area_cases' rows. */
enum { RA_KEY, RA_SUSPECTED, RA_DROPOUT, RA_RETURNED, RA_RETURNS };

/* The standing lists per place of a level (school id, county code, city or province prefix; the
 * level by its reports_level_name) for the upward reports: open cases off the dropout roster,
 * open cases on it, cases closed as returned, and those closed as returned from first_day to
 * last_day (local dates). Only the schools in area (a code prefix, "" all) and of calendar_id
 * ("" any). */
bx_status reports_query_area_cases(PGconn *db, reports_level level, const char *area,
                                   const char *calendar_id, const char *first_day,
                                   const char *last_day, PGresult **res,
                                   bx_error *err) BX_MUSTCHECK;

/* ---- the standing lists ---- */

/* Columns of reports_query_ledger's rows. */
enum {
    RL_LIST, /* suspected, dropout, returned */
    RL_CASE,
    RL_STUDENT,
    RL_SCHOOL,
    RL_TOWNSHIP,
    RL_COUNTY,
    RL_STAGE,
    RL_OPENED,
    RL_ROSTER,
    RL_CLOSED,
    RL_NAME, /* NULL unless names */
    /* the columns below are read only by the console's lists and exports */
    RL_OVERDUE,     /* 't' when the case has an open task past its deadline */
    RL_TOTAL,       /* rows matching the filter, before limit and offset */
    RL_SCHOOL_NAME, /* registry names of the places */
    RL_TOWNSHIP_NAME,
    RL_CLASS_NAME,
    RL_SEX,          /* M, F or "" (names only) */
    RL_BIRTH_DATE,   /* YYYY-MM-DD or "" (names only) */
    RL_FIRST_ABSENT, /* the first day absent of the case's streak, YYYY-MM-DD or "" */
    RL_REASON,       /* the case's opening reason */
    RL_OWNER,        /* the responsible staff: the open task's owner (name), or "" */
    RL_NCOLUMNS
};

typedef enum reports_ledger_sort {
    REPORTS_SORT_LEDGER = 0, /* list, county, township, school, student, case (bxctl's order) */
    REPORTS_SORT_OPENED,     /* newest first */
    REPORTS_SORT_SCHOOL,     /* school, then student */
    REPORTS_SORT_STAGE       /* stage, then school */
} reports_ledger_sort;

typedef struct reports_ledger_filter {
    const char *area;     /* a county code, or a city or province prefix; "" every county */
    const char *list;     /* suspected, dropout, returned; "" all three */
    const char *township; /* "" any */
    const char *school;   /* "" any */
    const char *stage;    /* "" any */
    bool overdue_only;    /* only cases with an open task past its deadline */
    bool names;           /* read the names, sex and birth date (registry.student_private) */
    long long now_ms;     /* for "overdue" */
    reports_ledger_sort sort;
    long limit, offset; /* limit 0: every row */
} reports_ledger_filter;

/* A ledger query's parameters of a filter ($1..$9: area, list, township, school, stage, overdue
 * only, now, limit or NULL, offset), the numbers written into the struct's own text; a caller
 * adds its own from $10 (params has room for REPORTS_LEDGER_EXTRA more). Filled in place: the
 * params point into the struct, so it is not copied. */
#define REPORTS_LEDGER_NPARAMS 9
#define REPORTS_LEDGER_EXTRA   3
typedef struct reports_ledger_args {
    char now[24], limit[24], offset[24];
    const char *params[REPORTS_LEDGER_NPARAMS + REPORTS_LEDGER_EXTRA];
} reports_ledger_args;
void reports_ledger_args_fill(const reports_ledger_filter *f, reports_ledger_args *a);

/* The ledger's rows (one per case: open cases, and cases closed as returned), filtered. */
bx_status reports_query_ledger(PGconn *db, const reports_ledger_filter *f, PGresult **res,
                               bx_error *err) BX_MUSTCHECK;

/* Columns of reports_query_history's rows: the persuasion history of the ledger's cases (every
 * event but task_created), ordered by case, time and id. */
enum { RH_CASE, RH_KIND, RH_STAGE, RH_ACTOR, RH_REASON, RH_LATE, RH_AT };

/* The history of every case of ledger (a result of reports_query_ledger). */
bx_status reports_query_history(PGconn *db, const PGresult *ledger, PGresult **res,
                                bx_error *err) BX_MUSTCHECK;

/* The counts the duties' out-of-school report (15 school days into a term) and monthly summary
 * send each county's bureau (duties.c), one row per county of the calendar's schools: county,
 * suspected, dropouts, opened and returned in [first_day, last_day]. */
bx_status reports_query_duty_counts(PGconn *db, const char *calendar_id, const char *first_day,
                                    const char *last_day, PGresult **res,
                                    bx_error *err) BX_MUSTCHECK;

/* The first row of history for case_id (rows sorted by case id), or the row count. */
int reports_history_first(const PGresult *history, long long case_id);

#endif
