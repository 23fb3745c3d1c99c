/* bxctl report --upward: the reports upward (四个一, issue 15 item 7) that bx-escalate's calendar
 * duties made, from cases.upward_report (migration 0022): each school's monthly report to the
 * county, each county's quarterly report, each city's term report and each province's school-year
 * report, with the figures they were made with on their school day (dropout and retention rates,
 * the ledgers' counts, the returns of the period, the roll-call reporting rate). Counts only: no
 * child is named. --county takes a county code or a city's 4 or a province's 2 digits: the
 * reports of its places and of the places inside it. */
#include "bx_buf.h"
#include "bx_pg.h"
#include "bxctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: bxctl report --upward [--county CODE] [--kind KIND] "
                    "[--format text|json]\n"
                    "  KIND: school_monthly_report, county_quarterly_report, city_term_report, "
                    "province_yearly_report\n");
    return 2;
}

/* $1 area prefix ('' all), $2 kind ('' all). */
static const char upward_sql[] =
    "SELECT kind, area, period, term, first_day::text, last_day::text, report_day::text, "
    "coalesce(county_code, ''), owner_role, figures::text, coalesce(request_id, ''), "
    "to_char(generated_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"'), "
    "coalesce(figures->>'dropout_rate_pct', ''), coalesce(figures->>'retention_rate_pct', ''), "
    "coalesce(figures->'ledger'->>'suspected', ''), coalesce(figures->'ledger'->>'dropout', ''), "
    "coalesce(figures->'ledger'->>'returned', ''), coalesce(figures->>'returns', ''), "
    "coalesce(figures->'rollcall'->>'rate_pct', ''), "
    "coalesce(figures->'rollcall'->>'incomplete_classes', '') "
    "FROM cases.upward_report WHERE ($1 = '' OR area LIKE $1 || '%' OR county_code LIKE $1 || "
    "'%') AND ($2 = '' OR kind = $2) "
    "ORDER BY report_day, CASE kind WHEN 'school_monthly_report' THEN 1 WHEN "
    "'county_quarterly_report' THEN 2 WHEN 'city_term_report' THEN 3 ELSE 4 END, area";

enum {
    U_KIND,
    U_AREA,
    U_PERIOD,
    U_TERM,
    U_FIRST,
    U_LAST,
    U_DAY,
    U_COUNTY,
    U_OWNER,
    U_FIGURES,
    U_REQUEST,
    U_GENERATED,
    U_DROPOUT,
    U_RETENTION,
    U_SUSPECTED,
    U_ONROSTER,
    U_RETURNED,
    U_RETURNS,
    U_ROLLCALL,
    U_INCOMPLETE
};

/* A rate of the figures as text: "1.23%", or "n/a" as stored. */
static void rate(const PGresult *res, int i, int col, char out[16])
{
    const char *v = PQgetvalue(res, i, col);
    if (strcmp(v, "n/a") == 0 || v[0] == '\0')
        snprintf(out, 16, "n/a");
    else
        snprintf(out, 16, "%.2f%%", strtod(v, NULL));
}

static bx_status write_text(bx_buf *out, const PGresult *res)
{
    bx_status s =
        bx_buf_printf(out,
                      "%-24s %-10s %-12s %-22s %-10s %-16s %8s %9s %9s %7s %8s %7s "
                      "%8s %7s  %s\n",
                      "kind", "area", "period", "days", "day", "owner", "dropout", "retention",
                      "suspected", "dropout", "returned", "returns", "rollcall", "incompl", "task");
    for (int i = 0; i < PQntuples(res) && s == BX_OK; i++) {
        char days[24], dropout[16], retention[16], rollcall[16];
        snprintf(days, sizeof(days), "%s..%s", PQgetvalue(res, i, U_FIRST) + 5,
                 PQgetvalue(res, i, U_LAST) + 5);
        rate(res, i, U_DROPOUT, dropout);
        rate(res, i, U_RETENTION, retention);
        rate(res, i, U_ROLLCALL, rollcall);
        s = bx_buf_printf(
            out,
            "%-24s %-10s %-12s %-22s %-10s %-16s %8s %9s %9s %7s %8s %7s %8s %7s  "
            "%s\n",
            PQgetvalue(res, i, U_KIND), PQgetvalue(res, i, U_AREA), PQgetvalue(res, i, U_PERIOD),
            days, PQgetvalue(res, i, U_DAY), PQgetvalue(res, i, U_OWNER), dropout, retention,
            PQgetvalue(res, i, U_SUSPECTED), PQgetvalue(res, i, U_ONROSTER),
            PQgetvalue(res, i, U_RETURNED), PQgetvalue(res, i, U_RETURNS), rollcall,
            PQgetvalue(res, i, U_INCOMPLETE), PQgetvalue(res, i, U_REQUEST)[0] ? "asked" : "kept");
    }
    if (s == BX_OK && PQntuples(res) == 0)
        s = bx_buf_puts(out, "(no report upward yet)\n");
    return s;
}

static bx_status write_json(bx_buf *out, const PGresult *res)
{
    static const struct {
        const char *name;
        int col;
    } fields[] = {{"kind", U_KIND},
                  {"area", U_AREA},
                  {"period", U_PERIOD},
                  {"term", U_TERM},
                  {"first_day", U_FIRST},
                  {"last_day", U_LAST},
                  {"report_day", U_DAY},
                  {"county_code", U_COUNTY},
                  {"owner_role", U_OWNER},
                  {"task_request_id", U_REQUEST},
                  {"generated_at", U_GENERATED}};
    bx_status s = bx_buf_puts(out, "{\"reports\":[");
    for (int i = 0; i < PQntuples(res) && s == BX_OK; i++) {
        s = bx_buf_puts(out, i ? ",{" : "{");
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]) && s == BX_OK; k++) {
            const char *v = PQgetvalue(res, i, fields[k].col);
            s = bx_buf_printf(out, "%s\"%s\":", k ? "," : "", fields[k].name);
            IFOK(s, bxctl_json_or_null(out, v));
        }
        /* the figures as bx-escalate wrote them (reports_write_figures_json) */
        IFOK(s, bx_buf_printf(out, ",\"figures\":%s}", PQgetvalue(res, i, U_FIGURES)));
    }
    IFOK(s, bx_buf_puts(out, "]}\n"));
    return s;
}

int bxctl_report_upward(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *county = "", *kind = "", *format = "text";
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        const char *opt = argv[i], *val = argv[++i];
        if (strcmp(opt, "--county") == 0)
            county = val;
        else if (strcmp(opt, "--kind") == 0)
            kind = val;
        else if (strcmp(opt, "--format") == 0)
            format = val;
        else
            return usage();
    }
    if (county[0] && !bxctl_code_valid(county, 6) && !bxctl_code_valid(county, 4) &&
        !bxctl_code_valid(county, 2)) {
        fprintf(stderr,
                "bxctl report --upward: --county \"%s\" is not a 6-digit code (or a city's 4 or "
                "a province's 2 digits)\n",
                county);
        return 2;
    }
    static const char *const kinds[] = {"", "school_monthly_report", "county_quarterly_report",
                                        "city_term_report", "province_yearly_report"};
    bool kind_ok = false;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        kind_ok = kind_ok || strcmp(kind, kinds[k]) == 0;
    if (!kind_ok) {
        fprintf(stderr, "bxctl report --upward: --kind \"%s\" is not a kind of report\n", kind);
        return usage();
    }
    if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        fprintf(stderr, "bxctl report --upward: --format \"%s\": expected text or json\n", format);
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    PGresult *res = NULL;
    bx_error err = {0};
    int rc = 1;
    bx_buf out;
    bx_buf_init(&out, 0);
    if (bx_pg_query(db, upward_sql, 2, (const char *[]){county, kind}, &res, &err) != BX_OK) {
        fprintf(stderr, "bxctl report --upward: %s\n", err.msg);
        goto done;
    }
    if ((strcmp(format, "json") == 0 ? write_json(&out, res) : write_text(&out, res)) != BX_OK) {
        fprintf(stderr, "bxctl report --upward: out of memory\n");
        goto done;
    }
    fputs(out.data, stdout);
    rc = 0;
done:
    bx_buf_free(&out);
    PQclear(res);
    PQfinish(db);
    return rc;
}
