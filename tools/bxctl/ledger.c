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
#include "report_queries.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rows and their history come from reports_query_ledger and reports_query_history
 * (report_queries.h, shared with bx-console's ledgers and exports): columns RL_* and RH_*. */
static const struct {
    const char *list;
    const char *title;
} lists[] = {
    {"suspected", "suspected dropouts (疑似辍学)"},
    {"dropout", "dropouts (辍学)"},
    {"returned", "returned children (复学)"},
};

/* The rows first to end - 1 of h: the history of the case of row i of res. */
static void history_of(const PGresult *res, int i, const PGresult *h, int *first, int *end)
{
    long long case_id = strtoll(PQgetvalue(res, i, RL_CASE), NULL, 10);
    *first = reports_history_first(h, case_id);
    for (*end = *first;
         *end < PQntuples(h) && strtoll(PQgetvalue(h, *end, RH_CASE), NULL, 10) == case_id;)
        (*end)++;
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
            n += strcmp(PQgetvalue(res, i, RL_LIST), lists[k].list) == 0;
        IFOK(st, bx_buf_printf(b, "%s: %d\n", lists[k].title, n));
        for (int i = 0; i < PQntuples(res) && st == BX_OK; i++) {
            if (strcmp(PQgetvalue(res, i, RL_LIST), lists[k].list) != 0)
                continue;
            char opened[17], roster[17], closed[17];
            bxctl_time_text(PQgetvalue(res, i, RL_OPENED), opened);
            bxctl_time_text(PQgetvalue(res, i, RL_ROSTER), roster);
            bxctl_time_text(PQgetvalue(res, i, RL_CLOSED), closed);
            const char *stage = PQgetvalue(res, i, RL_STAGE);
            IFOK(st, bx_buf_printf(
                         b, "  %s  school %s  township %s  stage %s  opened %s",
                         PQgetvalue(res, i, RL_STUDENT), PQgetvalue(res, i, RL_SCHOOL),
                         PQgetvalue(res, i, RL_TOWNSHIP)[0] ? PQgetvalue(res, i, RL_TOWNSHIP) : "-",
                         stage[0] ? stage : "-", opened));
            if (PQgetvalue(res, i, RL_ROSTER)[0])
                IFOK(st, bx_buf_printf(b, "  on roster %s", roster));
            if (PQgetvalue(res, i, RL_CLOSED)[0])
                IFOK(st, bx_buf_printf(b, "  returned %s", closed));
            if (names)
                IFOK(st, bx_buf_printf(b, "  %s",
                                       PQgetisnull(res, i, RL_NAME) ? "-"
                                                                    : PQgetvalue(res, i, RL_NAME)));
            IFOK(st, bx_buf_puts(b, "\n"));
            int first = 0, end = 0;
            history_of(res, i, h, &first, &end);
            for (int j = first; j < end && st == BX_OK; j++) {
                char at[17];
                bxctl_time_text(PQgetvalue(h, j, RH_AT), at);
                const char *reason = PQgetvalue(h, j, RH_REASON);
                size_t len = strlen(reason) + 1;
                char *masked = malloc(len);
                if (masked == NULL)
                    return BX_ENOMEM;
                bxctl_mask_digits(reason, masked, len);
                IFOK(st, bx_buf_printf(
                             b, "      %s  %-14s %-16s %-20s%s %s\n", at, PQgetvalue(h, j, RH_KIND),
                             PQgetvalue(h, j, RH_STAGE)[0] ? PQgetvalue(h, j, RH_STAGE) : "-",
                             PQgetvalue(h, j, RH_ACTOR),
                             PQgetvalue(h, j, RH_LATE)[0] == 't' ? " LATE" : "", masked));
                free(masked);
            }
        }
    }
    return st;
}

static const bxctl_json_field entry_fields[] = {
    {"case_id", RL_CASE, BXCTL_JSON_RAW},          {"student_id", RL_STUDENT, BXCTL_JSON_STRING},
    {"school_id", RL_SCHOOL, BXCTL_JSON_STRING},   {"township", RL_TOWNSHIP, BXCTL_JSON_OR_NULL},
    {"county", RL_COUNTY, BXCTL_JSON_OR_NULL},     {"stage", RL_STAGE, BXCTL_JSON_OR_NULL},
    {"opened_at", RL_OPENED, BXCTL_JSON_STRING},   {"on_roster_at", RL_ROSTER, BXCTL_JSON_OR_NULL},
    {"returned_at", RL_CLOSED, BXCTL_JSON_OR_NULL}};
static const bxctl_json_field entry_name_field[] = {{"name", RL_NAME, BXCTL_JSON_NULLABLE}};
static const bxctl_json_field history_fields[] = {
    {"kind", RH_KIND, BXCTL_JSON_STRING},   {"stage", RH_STAGE, BXCTL_JSON_OR_NULL},
    {"actor", RH_ACTOR, BXCTL_JSON_STRING}, {"reason", RH_REASON, BXCTL_JSON_MASKED},
    {"late", RH_LATE, BXCTL_JSON_BOOL},     {"occurred_at", RH_AT, BXCTL_JSON_STRING}};

static bx_status write_json_entry(bx_buf *b, PGresult *res, int i, PGresult *h, bool names)
{
    bx_status st = bx_buf_puts(b, "{");
    IFOK(st, BXCTL_JSON_FIELDS(b, res, i, entry_fields));
    if (names) {
        IFOK(st, bx_buf_puts(b, ","));
        IFOK(st, BXCTL_JSON_FIELDS(b, res, i, entry_name_field));
    }
    int first = 0, end = 0;
    history_of(res, i, h, &first, &end);
    IFOK(st, bx_buf_puts(b, ",\"history\":"));
    IFOK(st, BXCTL_JSON_ROWS(b, h, first, end, history_fields));
    IFOK(st, bx_buf_puts(b, "}"));
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
            if (strcmp(PQgetvalue(res, i, RL_LIST), lists[k].list) != 0)
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
    const bxctl_option opts[] = {BXCTL_VALUE("--county", &county), BXCTL_VALUE("--kind", &kind),
                                 BXCTL_FLAG("--json", &json), BXCTL_FLAG("--names", &names)};
    if (!BXCTL_OPTIONS(argc, argv, opts)) {
        fprintf(stderr, "usage: bxctl ledger [--county CODE] "
                        "[--kind suspected|dropout|returned] [--names] [--json]\n");
        return 2;
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
    bx_buf out;
    bx_buf_init(&out, 0);
    bx_error err = {0};
    int rc = 1;
    reports_ledger_filter filter = {
        .area = county, .list = kind, .names = names, .now_ms = (long long)bx_clock_now()};
    if (reports_query_ledger(db, &filter, &res, &err) != BX_OK ||
        reports_query_history(db, res, &h, &err) != BX_OK)
        goto out;
    bx_status st = json ? write_json(&out, res, h, county, kind, names)
                        : write_text(&out, res, h, county, kind, names);
    rc = bxctl_print(&out, st, "bxctl ledger");
out:
    if (err.msg[0])
        fprintf(stderr, "bxctl ledger: %s\n", err.msg);
    PQclear(res);
    PQclear(h);
    bx_buf_free(&out);
    PQfinish(db);
    return rc;
}
