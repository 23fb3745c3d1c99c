/* bxctl ledger: a county's standing lists (台账) of suspected dropouts, dropouts and returned
 * children, each with its persuasion history from cases.event, as text or JSON.
 *
 * The lists, from bx-escalate's cases (the same dropout stages as bxctl report):
 *   - suspected (疑似辍学): open cases that have not entered the dropout roster (a stage of
 *     cases.roster_stages(), schemas/sql/0009_roster_seen.sql): absences being followed up,
 *     children who did not arrive at term start or at a transition, transfers and suspensions
 *     waiting for their paperwork;
 *   - dropout (辍学): open cases that have entered the dropout roster;
 *   - returned (复学): cases closed as returned, whether or not they had reached the roster.
 * The history of a child is every event of the case except task_created (the ladder's own
 * bookkeeping): stages entered, tasks done (contacts, home visits, letters), deadlines missed,
 * escalations, notes, the closing. Students appear by id and school; names only with --names, never
 * id numbers, flags or phones, and digit runs in reasons are masked. */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bx_pg.h"
#include "bxctl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEDGER_SQL_HEAD                                                                            \
    "WITH dc AS (SELECT case_id, min(occurred_at) AS dropped_at FROM cases.event "                 \
    "  WHERE kind = 'stage_entered' AND cases.on_roster(stage) GROUP BY case_id) "                 \
    "SELECT * FROM (SELECT CASE WHEN c.closed_at IS NOT NULL THEN 'returned' "                     \
    "  WHEN dc.case_id IS NULL THEN 'suspected' ELSE 'dropout' END AS list, "                      \
    "  c.id, c.student_id, c.school_id, coalesce(s.township_code::text, '') AS township, "         \
    "  coalesce(t.county_code::text, '') AS county, coalesce(c.stage, ''), "                       \
    "  " BXCTL_ISO("c.opened_at") ", coalesce(" BXCTL_ISO(                                         \
        "dc.dropped_at") ", ''), "                                                                 \
                         "  coalesce(" BXCTL_ISO("c.closed_at") ", ''), "
#define LEDGER_SQL_TAIL                                                                            \
    " AS name FROM cases.case c LEFT JOIN dc ON dc.case_id = c.id "                                \
    "  LEFT JOIN registry.school s ON s.id = c.school_id "                                         \
    "  LEFT JOIN registry.township t ON t.code = s.township_code "                                 \
    "  WHERE (c.closed_at IS NULL OR c.ending = 'returned') "                                      \
    "  AND ($1 = '' OR t.county_code = $1)) x "                                                    \
    "WHERE $2 = '' OR x.list = $2 "                                                                \
    "ORDER BY CASE x.list WHEN 'suspected' THEN 1 WHEN 'dropout' THEN 2 ELSE 3 END, "              \
    "  x.county, x.township, x.school_id, x.student_id, x.id"

static const char ledger_sql[] = LEDGER_SQL_HEAD "NULL::text" LEDGER_SQL_TAIL;
static const char ledger_sql_names[] =
    LEDGER_SQL_HEAD "(SELECT p.name FROM registry.student_private p WHERE p.student_id = "
                    "c.student_id)" LEDGER_SQL_TAIL;

enum {
    L_LIST,
    L_CASE,
    L_STUDENT,
    L_SCHOOL,
    L_TOWNSHIP,
    L_COUNTY,
    L_STAGE,
    L_OPENED,
    L_ROSTER,
    L_CLOSED,
    L_NAME
};

static const char history_sql[] =
    "SELECT e.case_id, e.kind, coalesce(e.stage, ''), e.actor, e.reason, e.late, " BXCTL_ISO(
        "e.occurred_at") " FROM cases.event e "
                         "WHERE e.case_id = ANY($1::bigint[]) AND e.kind <> 'task_created' "
                         "ORDER BY e.case_id, e.occurred_at, e.id";

enum { H_CASE, H_KIND, H_STAGE, H_ACTOR, H_REASON, H_LATE, H_AT };

static const struct {
    const char *list;
    const char *title;
} lists[] = {
    {"suspected", "suspected dropouts (疑似辍学)"},
    {"dropout", "dropouts (辍学)"},
    {"returned", "returned children (复学)"},
};

/* The first history row of case_id (rows sorted by case id), or the row count. */
static int history_first(PGresult *h, long long case_id)
{
    int lo = 0, hi = PQntuples(h);
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strtoll(PQgetvalue(h, mid, H_CASE), NULL, 10) < case_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bx_status write_text(bx_buf *b, PGresult *res, PGresult *h, const char *county,
                            const char *only, bool names)
{
    char as_of[11];
    bx_date_format(bx_time_local_date(bx_clock_now()), as_of);
    bx_status st = bx_buf_printf(b, "ledger (台账) of %s%s, as of %s\n",
                                 county[0] ? "county " : "every county", county, as_of);
    for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]) && st == BX_OK; k++) {
        if (only[0] && strcmp(only, lists[k].list) != 0)
            continue;
        int n = 0;
        for (int i = 0; i < PQntuples(res); i++)
            n += strcmp(PQgetvalue(res, i, L_LIST), lists[k].list) == 0;
        IFOK(st, bx_buf_printf(b, "%s: %d\n", lists[k].title, n));
        for (int i = 0; i < PQntuples(res) && st == BX_OK; i++) {
            if (strcmp(PQgetvalue(res, i, L_LIST), lists[k].list) != 0)
                continue;
            char opened[17], roster[17], closed[17];
            bxctl_time_text(PQgetvalue(res, i, L_OPENED), opened);
            bxctl_time_text(PQgetvalue(res, i, L_ROSTER), roster);
            bxctl_time_text(PQgetvalue(res, i, L_CLOSED), closed);
            const char *stage = PQgetvalue(res, i, L_STAGE);
            IFOK(st, bx_buf_printf(
                         b, "  %s  school %s  township %s  stage %s  opened %s",
                         PQgetvalue(res, i, L_STUDENT), PQgetvalue(res, i, L_SCHOOL),
                         PQgetvalue(res, i, L_TOWNSHIP)[0] ? PQgetvalue(res, i, L_TOWNSHIP) : "-",
                         stage[0] ? stage : "-", opened));
            if (PQgetvalue(res, i, L_ROSTER)[0])
                IFOK(st, bx_buf_printf(b, "  on roster %s", roster));
            if (PQgetvalue(res, i, L_CLOSED)[0])
                IFOK(st, bx_buf_printf(b, "  returned %s", closed));
            if (names)
                IFOK(st,
                     bx_buf_printf(b, "  %s",
                                   PQgetisnull(res, i, L_NAME) ? "-" : PQgetvalue(res, i, L_NAME)));
            IFOK(st, bx_buf_puts(b, "\n"));
            long long case_id = strtoll(PQgetvalue(res, i, L_CASE), NULL, 10);
            for (int j = history_first(h, case_id);
                 j < PQntuples(h) && strtoll(PQgetvalue(h, j, H_CASE), NULL, 10) == case_id &&
                 st == BX_OK;
                 j++) {
                char at[17];
                bxctl_time_text(PQgetvalue(h, j, H_AT), at);
                const char *reason = PQgetvalue(h, j, H_REASON);
                size_t len = strlen(reason) + 1;
                char *masked = malloc(len);
                if (masked == NULL)
                    return BX_ENOMEM;
                bxctl_mask_digits(reason, masked, len);
                IFOK(st, bx_buf_printf(
                             b, "      %s  %-14s %-16s %-20s%s %s\n", at, PQgetvalue(h, j, H_KIND),
                             PQgetvalue(h, j, H_STAGE)[0] ? PQgetvalue(h, j, H_STAGE) : "-",
                             PQgetvalue(h, j, H_ACTOR),
                             PQgetvalue(h, j, H_LATE)[0] == 't' ? " LATE" : "", masked));
                free(masked);
            }
        }
    }
    return st;
}

static const bxctl_json_field entry_fields[] = {
    {"case_id", L_CASE, BXCTL_JSON_RAW},          {"student_id", L_STUDENT, BXCTL_JSON_STRING},
    {"school_id", L_SCHOOL, BXCTL_JSON_STRING},   {"township", L_TOWNSHIP, BXCTL_JSON_OR_NULL},
    {"county", L_COUNTY, BXCTL_JSON_OR_NULL},     {"stage", L_STAGE, BXCTL_JSON_OR_NULL},
    {"opened_at", L_OPENED, BXCTL_JSON_STRING},   {"on_roster_at", L_ROSTER, BXCTL_JSON_OR_NULL},
    {"returned_at", L_CLOSED, BXCTL_JSON_OR_NULL}};
static const bxctl_json_field entry_name_field[] = {{"name", L_NAME, BXCTL_JSON_NULLABLE}};
static const bxctl_json_field history_fields[] = {
    {"kind", H_KIND, BXCTL_JSON_STRING},   {"stage", H_STAGE, BXCTL_JSON_OR_NULL},
    {"actor", H_ACTOR, BXCTL_JSON_STRING}, {"reason", H_REASON, BXCTL_JSON_MASKED},
    {"late", H_LATE, BXCTL_JSON_BOOL},     {"occurred_at", H_AT, BXCTL_JSON_STRING}};

static bx_status write_json_entry(bx_buf *b, PGresult *res, int i, PGresult *h, bool names)
{
    bx_status st = bx_buf_puts(b, "{");
    IFOK(st, BXCTL_JSON_FIELDS(b, res, i, entry_fields));
    if (names) {
        IFOK(st, bx_buf_puts(b, ","));
        IFOK(st, BXCTL_JSON_FIELDS(b, res, i, entry_name_field));
    }
    IFOK(st, bx_buf_puts(b, ",\"history\":["));
    long long case_id = strtoll(PQgetvalue(res, i, L_CASE), NULL, 10);
    int first = history_first(h, case_id);
    for (int j = first;
         j < PQntuples(h) && strtoll(PQgetvalue(h, j, H_CASE), NULL, 10) == case_id && st == BX_OK;
         j++) {
        IFOK(st, bx_buf_puts(b, j > first ? ",{" : "{"));
        IFOK(st, BXCTL_JSON_FIELDS(b, h, j, history_fields));
        IFOK(st, bx_buf_puts(b, "}"));
    }
    IFOK(st, bx_buf_puts(b, "]}"));
    return st;
}

static bx_status write_json(bx_buf *b, PGresult *res, PGresult *h, const char *county,
                            const char *only, bool names)
{
    char as_of[11];
    bx_date_format(bx_time_local_date(bx_clock_now()), as_of);
    bx_status st = bx_buf_printf(b, "{\"as_of\":\"%s\",\"county\":", as_of);
    IFOK(st, bxctl_json_or_null(b, county));
    for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]) && st == BX_OK; k++) {
        if (only[0] && strcmp(only, lists[k].list) != 0)
            continue;
        IFOK(st, bx_buf_printf(b, ",\"%s\":[", lists[k].list));
        bool first = true;
        for (int i = 0; i < PQntuples(res) && st == BX_OK; i++) {
            if (strcmp(PQgetvalue(res, i, L_LIST), lists[k].list) != 0)
                continue;
            IFOK(st, bx_buf_puts(b, first ? "" : ","));
            IFOK(st, write_json_entry(b, res, i, h, names));
            first = false;
        }
        IFOK(st, bx_buf_puts(b, "]"));
    }
    IFOK(st, bx_buf_puts(b, "}\n"));
    return st;
}

int bxctl_ledger(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *county = "", *kind = "";
    bool json = false, names = false;
    for (int i = 0; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--county") == 0 && has_value)
            county = argv[++i];
        else if (strcmp(argv[i], "--kind") == 0 && has_value)
            kind = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--names") == 0)
            names = true;
        else {
            fprintf(stderr, "usage: bxctl ledger [--county CODE] "
                            "[--kind suspected|dropout|returned] [--names] [--json]\n");
            return 2;
        }
    }
    if (county[0] && !bxctl_code_valid(county, 6)) {
        fprintf(stderr, "bxctl ledger: --county \"%s\" is not a 6-digit code\n", county);
        return 2;
    }
    if (kind[0] && strcmp(kind, "suspected") != 0 && strcmp(kind, "dropout") != 0 &&
        strcmp(kind, "returned") != 0) {
        fprintf(stderr, "bxctl ledger: --kind \"%s\": expected suspected, dropout or returned\n",
                kind);
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    PGresult *res = NULL, *h = NULL;
    bx_buf ids, out;
    bx_buf_init(&ids, 0);
    bx_buf_init(&out, 0);
    bx_error err = {0};
    int rc = 1;
    const char *p1[] = {county, kind};
    if (bx_pg_query(db, names ? ledger_sql_names : ledger_sql, 2, p1, &res, &err) != BX_OK)
        goto out;
    bx_status st = bx_buf_puts(&ids, "{");
    for (int i = 0; i < PQntuples(res) && st == BX_OK; i++)
        st = bx_buf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(res, i, L_CASE));
    IFOK(st, bx_buf_puts(&ids, "}"));
    if (st != BX_OK) {
        fprintf(stderr, "bxctl ledger: out of memory\n");
        goto out;
    }
    const char *p2[] = {ids.data};
    if (bx_pg_query(db, history_sql, 1, p2, &h, &err) != BX_OK)
        goto out;
    st = json ? write_json(&out, res, h, county, kind, names)
              : write_text(&out, res, h, county, kind, names);
    if (st != BX_OK) {
        fprintf(stderr, "bxctl ledger: out of memory\n");
        goto out;
    }
    fputs(out.data, stdout);
    rc = 0;
out:
    if (err.msg[0])
        fprintf(stderr, "bxctl ledger: %s\n", err.msg);
    PQclear(res);
    PQclear(h);
    bx_buf_free(&ids);
    bx_buf_free(&out);
    PQfinish(db);
    return rc;
}
