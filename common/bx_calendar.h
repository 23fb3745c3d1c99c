/* bx_calendar: dates, Asia/Shanghai time and a school's calendar (school days, holidays, make-up
 * days, closures, terms). Pure functions and data; no I/O except the CSV loader. */
#ifndef BX_CALENDAR_H
#define BX_CALENDAR_H

#include "bx_status.h"

#include <stdbool.h>
#include <stdint.h>

/* A civil date as days since 1970-01-01. */
typedef int32_t bx_date;
#define BX_DATE_NONE INT32_MIN

/* Milliseconds since the Unix epoch (UTC). */
typedef int64_t bx_time_ms;

/* Strict "YYYY-MM-DD" (exactly 10 chars, real date, years 1900..2199). */
bx_status bx_date_parse(const char *s, bx_date *out) BX_MUSTCHECK;
/* Writes "YYYY-MM-DD" and a NUL into out; "0000-00-00" for BX_DATE_NONE or a year past 0..9999. */
void bx_date_format(bx_date d, char out[11]);
/* m must be 1..12; d is not checked and counts on (day 0 is the last day of the month before). */
bx_date bx_date_from_ymd(int y, int m, int d);
void bx_date_to_ymd(bx_date date, int *y, int *m, int *d);
/* ISO weekday: 1 = Monday ... 7 = Sunday. */
int bx_date_weekday(bx_date d);

/* China keeps UTC+8 all year (no daylight saving since 1991). */
#define BX_SHANGHAI_OFFSET_MS (8LL * 3600 * 1000)
bx_date bx_time_local_date(bx_time_ms t);
/* Minutes since local midnight, 0..1439. */
int bx_time_local_minute(bx_time_ms t);
bx_time_ms bx_time_from_local(bx_date d, int hour, int minute);
/* "2026-03-02T08:00:00+08:00" into out (at least 26 bytes); milliseconds are dropped. */
void bx_time_format(bx_time_ms t, char *out, size_t size);
/* Accepts RFC 3339 with an offset or Z ("T", "t" or " " between date and time; fractions of a
 * second up to 9 digits, kept to the millisecond), and "YYYY-MM-DD HH:MM[:SS]" as Shanghai local
 * time. Seconds 0..59 (no leap second), years 1900..2199. */
bx_status bx_time_parse(const char *s, bx_time_ms *out) BX_MUSTCHECK;

typedef enum bx_day_kind {
    BX_DAY_HOLIDAY = 1,        /* national holiday: no school */
    BX_DAY_MAKEUP_WORKDAY = 2, /* 调休: a weekend day that is a school day */
    BX_DAY_CLOSURE = 3         /* the school closed for local reasons */
} bx_day_kind;

typedef struct bx_term {
    char code[16]; /* "2026-autumn" */
    bx_date first; /* first school day of the term */
    bx_date last;  /* last day of the term, inclusive */
} bx_term;

/* Building (add_term, set_day, load_days_csv) needs exclusive access. Every mutation brings the
 * school-day counts up to date before it returns, so the queries below only read: once building is
 * done, any number of threads may query one calendar concurrently without locks. Queries are O(1)
 * (add_school_days O(log span)); the counts cover the terms plus 400 days either side. */
typedef struct bx_calendar bx_calendar;

bx_calendar *bx_calendar_new(void);
void bx_calendar_free(bx_calendar *c);
/* Terms must not overlap; BX_EINVAL naming the term otherwise (also for a code used twice, a code
 * that is empty, longer than 15 bytes or not printable ASCII, last < first, a term longer than 400
 * days, or years outside 1900..2199). code is copied. */
bx_status bx_calendar_add_term(bx_calendar *c, const char *code, bx_date first, bx_date last,
                               bx_error *err) BX_MUSTCHECK;
/* Marks one day; a later call for the same day replaces the earlier kind. BX_EINVAL for an unknown
 * kind or a year outside 1900..2199. */
bx_status bx_calendar_set_day(bx_calendar *c, bx_date d, bx_day_kind kind) BX_MUSTCHECK;
/* Loads the national list (columns date,kind,name; header required; kind holiday, makeup_workday
 * or closure), as in deploy/policy/cn-public-holidays-2026.csv. Errors name the file, the line and
 * the field: "x.csv:7: kind: expected holiday, makeup_workday or closure, got \"x\"". All or
 * nothing: on error c is unchanged. A date listed twice in the file is an error; a date already
 * set in c is replaced. */
bx_status bx_calendar_load_days_csv(bx_calendar *c, const char *path, bx_error *err) BX_MUSTCHECK;

/* The term containing d, or NULL (vacations are outside every term). Borrowed from c. */
const bx_term *bx_calendar_term_of(const bx_calendar *c, bx_date d);
/* A school day: inside a term, and either a weekday that is no holiday or closure, or a make-up
 * workday. */
bool bx_calendar_is_school_day(const bx_calendar *c, bx_date d);
/* Number of school days in [from, to], inclusive; 0 when to < from. */
int bx_calendar_school_days_between(const bx_calendar *c, bx_date from, bx_date to);
/* The n-th school day after d (n >= 1), or before it (n <= -1); BX_DATE_NONE when none exists
 * within 400 days. n == 0 returns d when it is a school day, else the next school day.
 * Precisely: BX_DATE_NONE when d lies more than 400 days before the first term or after the last,
 * or when the calendar's terms end before the n-th school day is reached; otherwise the exact
 * answer, however far (vacations included). */
bx_date bx_calendar_add_school_days(const bx_calendar *c, bx_date d, int n);

#endif
