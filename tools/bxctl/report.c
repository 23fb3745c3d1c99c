/* bxctl report: dropout rate (辍学率) and retention rate (巩固率) for a term or a month by class,
 * school, township or county, with the seeds' thresholds flagged, computed by bx-escalate's
 * reports module from per-class counts derived here from the registry and the case history.
 *
 * The period. --term CODE: each school's own term of that code (registry.calendar_term of the
 * school's calendar); --month YYYY-MM: that calendar month. It runs from its first day 00:00 to the
 * day after its last day 00:00 (Asia/Shanghai), cut at the clock's now when that is earlier ("now"
 * below is that end). A class whose calendar has no such term, or whose period has not begun, is
 * left out and said so.
 *
 * The registry holds each student's current class and status only, so the counts of a class are
 * of the students the registry lists in it (a transferred-out student keeps the class they left),
 * dated by the case history (cases.case, cases.event) and registry.student.enrolled_on:
 *   - dropped out at a time: a case had entered the dropout roster (its first stage_entered event
 *     into a stage of cases.roster_stages(), schemas/sql/0009_roster_seen.sql: dropout_roster or a
 *     later stage of the default ladder) before it, and had not closed by then;
 *   - gone at a time: a case closed as transferred, graduated or obligation_ended before it;
 *   - enrolled at the start: enrolled_on empty or on or before the first day, neither dropped out
 *     nor gone at the start;
 *   - dropped out in the period: a case entered the dropout roster in the period, unless it closed
 *     as returned or transferred before the period's end (a student counts once);
 *   - normal transfers out: a case closed as transferred in the period (the receiving school's
 *     confirmation, transfer_confirmed);
 *   - transfers in: enrolled_on after the first day and before the end (every later enrolment
 *     counts as a transfer in);
 *   - enrolled now: enrolled_on empty or before the end, neither dropped out nor gone at the end
 *     (suspended, home-educated and returned students count as enrolled).
 * Missing data is said, not guessed: a student whose status is dropped_out, transferred_out or
 * graduated with no case dating it is left out of every count and reported; students without
 * enrolled_on are taken as enrolled before the period and their number is reported.
 * A dropout who returns in the period after dropping out in an earlier one counts in "now" but not
 * at the start, so a retention rate may pass 100%.
 * Thresholds are the seeds' (primary 1%, junior 3%, class 1%, school 3%), which are annual targets,
 * applied as they are to a term or a month.
 *
 * The roll-call reporting rate (issue 15): for each class with an enrolled student, the school
 * days of its period by its school's calendar that are over (before the clock's today, plus today
 * once its roll call came), and those with a roll call stored by bx-score
 * (attendance.class_report); a row's rate is its class-days reported over those due. A class with
 * roll calls on fewer than 90% of its days is flagged rollcall_incomplete and named in a note:
 * its children are neither present nor absent on the other days, so its absence figures cannot
 * be trusted. Rows above a class count such classes ("incompl"). */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"
#include "report_queries.h"
#include "reports.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The per-class counts come from reports_query_class_counts (report_queries.h, shared with
 * bx-console's dashboards); --county also takes a city (4 digits) or province (2 digits) prefix. */
enum {
    COL_SCHOOL = RQ_SCHOOL,
    COL_CLASS = RQ_CLASS,
    COL_UNDATED = RQ_UNDATED,
    COL_NO_DATE = RQ_NO_DATE,
    COL_HAS_PERIOD = RQ_HAS_PERIOD,
    COL_BEGUN = RQ_BEGUN
};

typedef enum report_format { FORMAT_TEXT, FORMAT_CSV, FORMAT_JSON } report_format;

static int usage(void)
{
    fprintf(stderr, "usage: bxctl report --term CODE | --month YYYY-MM [--county CODE]\n"
                    "                    [--level class|school|township|county|city|province] "
                    "[--format text|csv|json]\n"
                    "       bxctl report --upward [--county CODE] [--kind KIND] "
                    "[--format text|json]\n");
    return 2;
}

static bool term_code_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

/* "YYYY-MM" to "YYYY-MM-01", or false. */
static bool month_first_day(const char *s, char out[11])
{
    if (strlen(s) != 7 || s[4] != '-')
        return false;
    snprintf(out, 11, "%s-01", s);
    bx_date d;
    return bx_date_parse(out, &d) == BX_OK;
}

static long count_at(PGresult *res, int row, int col)
{
    return strtol(PQgetvalue(res, row, col), NULL, 10);
}

/* The notes about missing data, one a line (each without a newline). */
static bx_status collect_notes(PGresult *res, const char *period, bx_buf *notes, int *nnotes)
{
    bx_status st = BX_OK;
    long no_date = 0, no_date_classes = 0;
    *nnotes = 0;
    for (int i = 0; i < PQntuples(res) && st == BX_OK; i++) {
        const char *klass = PQgetvalue(res, i, COL_CLASS);
        const char *school = PQgetvalue(res, i, COL_SCHOOL);
        if (PQgetvalue(res, i, COL_HAS_PERIOD)[0] != 't') {
            st = bx_buf_printf(notes,
                               "class %s (school %s): its school's calendar has no %s; "
                               "left out\n",
                               klass, school, period);
            ++*nnotes;
        } else if (PQgetvalue(res, i, COL_BEGUN)[0] != 't') {
            st = bx_buf_printf(notes, "class %s (school %s): %s has not begun; left out\n", klass,
                               school, period);
            ++*nnotes;
        } else if (count_at(res, i, COL_UNDATED) > 0) {
            st = bx_buf_printf(notes,
                               "class %s (school %s): %ld students whose status is dropped_out, "
                               "transferred_out or graduated have no case history dating it; left "
                               "out of every count\n",
                               klass, school, count_at(res, i, COL_UNDATED));
            ++*nnotes;
        }
        long n = count_at(res, i, COL_NO_DATE);
        no_date += n;
        no_date_classes += n > 0;
    }
    if (st == BX_OK && no_date > 0) {
        st = bx_buf_printf(notes,
                           "%ld students in %ld classes have no enrolled_on: taken as enrolled "
                           "before the period\n",
                           no_date, no_date_classes);
        ++*nnotes;
    }
    return st;
}

/* A note for each class whose roll calls are under the threshold. */
static bx_status rollcall_notes(const reports_class_counts *classes, size_t n, bx_buf *notes,
                                int *nnotes)
{
    reports_thresholds t;
    reports_thresholds_default(&t);
    bx_status st = BX_OK;
    for (size_t i = 0; i < n && st == BX_OK; i++) {
        const reports_class_counts *c = &classes[i];
        if (!reports_rollcall_incomplete(c->rollcall_due, c->rollcall_reported, t.rollcall_min))
            continue;
        char rate[16];
        reports_rate_text(true, (double)c->rollcall_reported / (double)c->rollcall_due, rate);
        st = bx_buf_printf(notes,
                           "class %s (school %s): roll calls on %d of %d school days (%s), under "
                           "%.0f%%: its absence figures cannot be trusted\n",
                           c->class_id, c->school, c->rollcall_reported, c->rollcall_due, rate,
                           t.rollcall_min * 100.0);
        ++*nnotes;
    }
    return st;
}

static bx_status notes_json(bx_buf *out, const bx_buf *notes)
{
    bx_status st = bx_buf_puts(out, "[");
    const char *p = notes->data ? notes->data : "";
    for (bool first = true; *p && st == BX_OK; first = false) {
        size_t len = strcspn(p, "\n");
        char *line = strndup(p, len);
        if (line == NULL)
            return BX_ENOMEM;
        IFOK(st, bx_buf_puts(out, first ? "" : ","));
        IFOK(st, bx_buf_json_string(out, line));
        free(line);
        p += len + (p[len] == '\n');
    }
    IFOK(st, bx_buf_puts(out, "]"));
    return st;
}

/* What the command line asks for. */
typedef struct report_args {
    const char *term, *month, *county; /* term or month NULL; county "" for all */
    reports_level level;
    report_format format;
    char first_day[11]; /* of --month, else "" */
    char period[32];    /* "term CODE", "month YYYY-MM" */
} report_args;

static bool level_named(const char *name, reports_level *out)
{
    static const struct {
        const char *name;
        reports_level level;
    } levels[] = {{"class", REPORTS_CLASS},       {"school", REPORTS_SCHOOL},
                  {"township", REPORTS_TOWNSHIP}, {"county", REPORTS_COUNTY},
                  {"city", REPORTS_CITY},         {"province", REPORTS_PROVINCE}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcmp(name, levels[i].name) == 0) {
            *out = levels[i].level;
            return true;
        }
    return false;
}

static bool format_named(const char *name, report_format *out)
{
    static const char *const names[] = {
        [FORMAT_TEXT] = "text", [FORMAT_CSV] = "csv", [FORMAT_JSON] = "json"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (report_format)i;
            return true;
        }
    return false;
}

/* Reads the options into a; returns 0, or the exit code after saying why. */
static int read_options(int argc, char **argv, report_args *a)
{
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        const char *opt = argv[i], *val = argv[++i];
        if (strcmp(opt, "--term") == 0)
            a->term = val;
        else if (strcmp(opt, "--month") == 0)
            a->month = val;
        else if (strcmp(opt, "--county") == 0)
            a->county = val;
        else if (strcmp(opt, "--level") == 0) {
            if (!level_named(val, &a->level)) {
                fprintf(stderr,
                        "bxctl report: --level \"%s\": expected class, school, township, "
                        "county, city or province\n",
                        val);
                return 2;
            }
        } else if (strcmp(opt, "--format") == 0) {
            if (!format_named(val, &a->format)) {
                fprintf(stderr, "bxctl report: --format \"%s\": expected text, csv or json\n", val);
                return 2;
            }
        } else
            return usage();
    }
    return 0;
}

/* Checks the period and county and derives first_day and period; 0 or the exit code. */
static int check_args(report_args *a)
{
    if ((a->term == NULL) == (a->month == NULL)) {
        fprintf(stderr, "bxctl report: give exactly one of --term CODE and --month YYYY-MM\n");
        return 2;
    }
    if (a->term && !term_code_valid(a->term)) {
        fprintf(stderr, "bxctl report: --term \"%s\" is not a term code\n", a->term);
        return 2;
    }
    if (a->month && !month_first_day(a->month, a->first_day)) {
        fprintf(stderr, "bxctl report: --month \"%s\": expected YYYY-MM\n", a->month);
        return 2;
    }
    if (a->county[0] && !bxctl_code_valid(a->county, 6) && !bxctl_code_valid(a->county, 4) &&
        !bxctl_code_valid(a->county, 2)) {
        fprintf(stderr,
                "bxctl report: --county \"%s\" is not a 6-digit code (or a city's 4 or a "
                "province's 2 digits)\n",
                a->county);
        return 2;
    }
    snprintf(a->period, sizeof(a->period), "%s %s", a->term ? "term" : "month",
             a->term ? a->term : a->month);
    return 0;
}

static bx_status write_text(bx_buf *out, const report_args *a, const char *as_of,
                            const reports_row *rows, size_t nrows, const bx_buf *notes)
{
    bx_status st = bx_buf_printf(out,
                                 "report of %s%s%s by %s, as of %s (thresholds: primary 1%%, "
                                 "junior 3%%, class 1%%, school 3%%; roll calls 90%% of the "
                                 "school days)\n",
                                 a->period, a->county[0] ? " in county " : "", a->county,
                                 reports_level_name(a->level), as_of);
    IFOK(st, reports_write_text(out, rows, nrows));
    const char *p = notes->data ? notes->data : "";
    while (*p && st == BX_OK) {
        size_t len = strcspn(p, "\n");
        st = bx_buf_printf(out, "note: %.*s\n", (int)len, p);
        p += len + (p[len] == '\n');
    }
    return st;
}

static bx_status write_json(bx_buf *out, const report_args *a, const char *as_of,
                            const reports_row *rows, size_t nrows, const bx_buf *notes)
{
    bx_status st = bx_buf_printf(out, "{\"period\":{\"%s\":\"%s\"},\"as_of\":\"%s\",\"county\":",
                                 a->term ? "term" : "month", a->term ? a->term : a->month, as_of);
    IFOK(st, bxctl_json_or_null(out, a->county));
    IFOK(st, bx_buf_printf(out, ",\"level\":\"%s\",\"rows\":", reports_level_name(a->level)));
    IFOK(st, reports_write_json(out, rows, nrows));
    IFOK(st, bx_buf_puts(out, ",\"notes\":"));
    IFOK(st, notes_json(out, notes));
    IFOK(st, bx_buf_puts(out, "}\n"));
    return st;
}

static bx_status write_report(bx_buf *out, const report_args *a, const reports_row *rows,
                              size_t nrows, const bx_buf *notes)
{
    char as_of[11];
    bx_date_format(bx_time_local_date(bx_clock_now()), as_of);
    switch (a->format) {
    case FORMAT_TEXT:
        return write_text(out, a, as_of, rows, nrows, notes);
    case FORMAT_CSV:
        return reports_write_csv(out, rows, nrows);
    case FORMAT_JSON:
        break;
    }
    return write_json(out, a, as_of, rows, nrows, notes);
}

/* Queries the counts and prints the report; 0 or 1 after saying why. */
static int run_report(PGconn *db, const report_args *a)
{
    reports_period period = {.term = a->term,
                             .month_first_day = a->term ? NULL : a->first_day,
                             .now_ms = (long long)bx_clock_now(),
                             .area = a->county};
    PGresult *res = NULL;
    reports_class_counts *classes = NULL;
    reports_row *rows = NULL;
    size_t nrows = 0, nclasses = 0;
    bx_buf out, notes;
    bx_buf_init(&out, 0);
    bx_buf_init(&notes, 0);
    bx_error err = {0};
    int rc = 1, nnotes = 0;
    if (reports_query_class_counts(db, &period, &res, &err) != BX_OK) {
        fprintf(stderr, "bxctl report: %s\n", err.msg);
        goto out;
    }
    int n = PQntuples(res);
    classes = calloc(n > 0 ? (size_t)n : 1, sizeof(*classes));
    if (classes == NULL || collect_notes(res, a->period, &notes, &nnotes) != BX_OK ||
        bxctl_match_report_notes(db, a->county, &notes, &nnotes) != BX_OK) { /* 入学率, match.c */
        fprintf(stderr, "bxctl report: out of memory\n");
        goto out;
    }
    nclasses = reports_class_counts_of(res, classes);
    if (nclasses > 0) {
        bx_registry *calendars = NULL;
        bx_status st = bx_registry_load_calendars(db, &calendars, &err);
        IFOK(st, reports_query_rollcall(db, res, calendars,
                                        bx_time_local_date((bx_time_ms)period.now_ms), classes,
                                        nclasses, &err));
        bx_registry_free(calendars);
        if (st != BX_OK) {
            fprintf(stderr, "bxctl report: roll calls: %s\n", err.msg);
            goto out;
        }
        if (rollcall_notes(classes, nclasses, &notes, &nnotes) != BX_OK) {
            fprintf(stderr, "bxctl report: out of memory\n");
            goto out;
        }
    }
    if (nclasses == 0) {
        fprintf(stderr, "bxctl report: no class has %s%s%s\n%s", a->period,
                a->county[0] ? " in county " : "", a->county, notes.data ? notes.data : "");
        goto out;
    }
    if (reports_aggregate(classes, nclasses, a->level, NULL, &rows, &nrows, &err) != BX_OK) {
        fprintf(stderr, "bxctl report: %s\n", err.msg);
        goto out;
    }
    if (write_report(&out, a, rows, nrows, &notes) != BX_OK) {
        fprintf(stderr, "bxctl report: out of memory\n");
        goto out;
    }
    fputs(out.data, stdout);
    /* CSV stays a clean table: its notes go to stderr. */
    if (a->format == FORMAT_CSV && nnotes > 0)
        fprintf(stderr, "%s", notes.data);
    rc = 0;
out:
    free(rows);
    free(classes);
    bx_buf_free(&out);
    bx_buf_free(&notes);
    PQclear(res);
    return rc;
}

int bxctl_report(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "--upward") == 0) /* the reports upward: report_upward.c */
        return bxctl_report_upward(ctx, argc - 1, argv + 1);
    report_args a = {.county = "", .level = REPORTS_CLASS, .format = FORMAT_TEXT};
    int rc = read_options(argc, argv, &a);
    if (rc == 0)
        rc = check_args(&a);
    if (rc != 0)
        return rc;
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    rc = run_report(db, &a);
    PQfinish(db);
    return rc;
}
