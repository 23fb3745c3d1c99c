/* page_county: the county bureau's pages (page_county.c: the dashboard; page_county_lists.c: the
 * standing lists, the duties' reports and the exports) and the city and province officers'
 * (page_area.c: the same rates and charts by county, no personal data). Listed in page_routes.c.
 *
 * Scope: /county/... answer only a county officer (console_may on their county), /area only a
 * city or province officer (console_may on their area); anyone else gets 404, as for a page that
 * does not exist. */
#ifndef CONSOLE_PAGE_COUNTY_H
#define CONSOLE_PAGE_COUNTY_H

#include "console.h"
#include "report_queries.h"
#include "reports.h"

#include <libpq-fe.h>

bx_status page_county_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_county_ledger_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_county_reports_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_county_export_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_area_get(console_request *req, console_reply *rep, bx_error *err);

/* Whether me is a county officer who may see the county's figures and lists (page_county_lists.c);
 * the county pages answer 404 to anyone else. */
bool page_county_officer(const console_person *me);

/* The county's standing lists (page_county_lists.c): the rows and columns of bx-escalate's
 * reports_query_ledger (bxctl ledger's) for f->area, a county code, read page first from migration
 * 0021's case summary (f->limit rows from f->offset in f->sort's order; RL_TOTAL counts every row
 * of the filter). Caller PQclear()s *res. */
bx_status county_ledger_query(PGconn *db, const reports_ledger_filter *f, PGresult **res,
                              bx_error *err) BX_MUSTCHECK;

/* The dashboard's counts from the case summary (page_county.c): cases opened and closed per
 * week over the 12 weeks to today's (Monday first, Asia/Shanghai; rows week "MM-DD", opened,
 * closed), and open tasks overdue at now per township of area (by_county: per county; rows
 * place, count; places with none left out). Caller PQclear()s *res. */
bx_status county_weekly_counts(PGconn *db, const char *area, const char *today, PGresult **res,
                               bx_error *err) BX_MUSTCHECK;
bx_status county_overdue_counts(PGconn *db, const char *area, long long now_ms, bool by_county,
                                PGresult **res, bx_error *err) BX_MUSTCHECK;

/* ---- shared by the county and area pages (page_county.c) ---- */

/* Readies the request's connection for the county and area pages, once per connection: no JIT
 * compilation (PostgreSQL's default compiles any plan it costs above 100,000, which the ledger's
 * and an export's plans are: 1.3 s of compiling for a 10,000-row export that runs in 0.4 s). */
bx_status county_session(PGconn *db, bx_error *err) BX_MUSTCHECK;

/* The period the pages report: the term of the area's calendars that holds today (or the last
 * one begun), and today's month; ?term= and ?month= choose others. */
typedef struct county_period {
    char term[17];        /* "2026-autumn", "" when the area has no term begun */
    char month[8];        /* "2026-11" */
    char month_first[11]; /* "2026-11-01" */
    char today[11];
} county_period;

bx_status county_period_of(const console_request *req, const char *area, county_period *p,
                           bx_error *err) BX_MUSTCHECK;

/* The per-class counts of bxctl report (reports_query_class_counts' first columns, RQ_COUNTY to
 * RQ_BEGUN, one row per class of area ordered by class) for a term (its code) or a month (its
 * first day) at now, from migration 0021's summary: the classes changed since their row was
 * computed are recomputed first (console.class_counts_refresh, outside any transaction), so they
 * are the counts of now. Caller PQclear()s *res. */
bx_status county_class_counts(PGconn *db, const char *term, const char *month_first,
                              long long now_ms, const char *area, PGresult **res,
                              bx_error *err) BX_MUSTCHECK;

/* The rates of area for the term (month false) or the month, at one level; kept for a minute per
 * area and period (the per-class counts are county_class_counts'). *rows is
 * the caller's to free(). No rows (n 0) when the period has not begun anywhere in the area. */
bx_status county_rates(const console_request *req, const char *area, const county_period *p,
                       bool month, reports_level level, reports_row **rows, size_t *n,
                       bx_error *err) BX_MUSTCHECK;

/* Puts a chart of dropout rates (term and month series, in %) of rows into ctx as name (server
 * markup), labelled by label(row) and flagged over threshold (a share, 0: none). */
typedef const char *county_label_fn(void *arg, const char *id);
bx_status county_rate_chart(tmpl_ctx *ctx, const char *name, const char *title,
                            const reports_row *term, size_t nterm, const reports_row *month,
                            size_t nmonth, double threshold, county_label_fn *label, void *arg,
                            bx_error *err) BX_MUSTCHECK;

/* Fills ctx with the dashboard of area: rates and charts by school and township (by_county false,
 * a county's page) or by county and city (an area's page), weekly cases, roll-call reporting and
 * overdue tasks. Aggregates and place names only: built once a minute per area, level and period
 * and shown with the time of its figures ("as_of", HH:MM:SS). */
bx_status county_dashboard_fill(console_request *req, const char *area, bool by_county,
                                tmpl_ctx *ctx, bx_error *err) BX_MUSTCHECK;

/* The minute's cache of aggregate pages (the dashboards, a county's reports), by key. get: when
 * key was built less than a minute before now, copies it into ctx, sets *as_of (the time of its
 * figures) and returns true. put: keeps built (takes ownership) as key's, replacing the oldest
 * entry when full, and copies it into ctx. Aggregates only: never a name. */
bool county_cache_get(const char *key, long long now, tmpl_ctx *ctx, long long *as_of);
void county_cache_put(const char *key, long long now, long long as_of, tmpl_ctx *built,
                      tmpl_ctx *ctx);

/* Rows of a rates table ("rates" list in ctx: name, enrolled, dropped, dropout, retention, flags
 * in Chinese, over true when flagged). */
void county_rate_rows(tmpl_ctx *ctx, const char *list, const reports_row *rows, size_t n,
                      county_label_fn *label, void *arg);

#endif
