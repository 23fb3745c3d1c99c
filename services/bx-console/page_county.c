/* page_county: the county bureau's dashboard (GET /county), and what the county's and the area's
 * pages share: the period, the rates (the per-class counts of bx-escalate's report_queries, as
 * bxctl report computes them, read from migration 0021's summary, which recomputes the classes
 * changed since; aggregated by bx-escalate's reports; kept a minute per area and period), the
 * charts and the rates tables.
 *
 * The dashboard: dropout rate (辍学率) and retention rate (巩固率) by school and township for the
 * term and the month, thresholds flagged; cases opened and closed per week (12 weeks); the
 * roll-call reporting rate per school over its last 20 school days (attendance.class_report
 * against the school's calendar); open overdue tasks per township. Aggregates only: no name.
 * Cases and tasks are counted from the case summary (migration 0021), kept by triggers in the
 * transaction of every change, so no page reads a province's tasks or students. */
#include "bx_json.h"
#include "bx_log.h"
#include "bx_map.h"
#include "bx_pg.h"
#include "minute_cache.h"
#include "page_common.h"
#include "page_county.h"
#include "report_queries.h"
#include "svg.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATES_TTL_MS  60000 /* a minute: the counts change with cases, not by the second */
#define RATES_ENTRIES 32
#define ROLLCALL_DAYS 20
#define WEEKS         12

/* ---- the connection ---- */

bx_status county_session(PGconn *db, bx_error *err)
{
    /* once per connection of the worker thread (a reconnection is a new backend) */
    static _Thread_local int done_for_pid;
    int pid = db ? PQbackendPID(db) : 0;
    if (pid == 0 || pid == done_for_pid)
        return BX_OK;
    bx_status s = bx_pg_exec(db, "SET jit = off", err);
    if (s == BX_OK)
        done_for_pid = pid;
    return s;
}

/* ---- the period ---- */

static bool term_code_ok(const char *s)
{
    return bx_token_valid(s, 16, ".");
}

/* The term of an area on a day, kept a minute per area and day as the rates are: a county's or a
 * province's dashboard otherwise read its calendars on every visit, where its figures are the
 * minute's (a term begun or moved in the registry shows within the minute, as the counts do). */
#define TERM_ENTRIES 64

static void read_term(const void *value, long long at, void *term)
{
    (void)at;
    snprintf(term, sizeof(((county_period *)0)->term), "%s", (const char *)value);
}

static minute_cache_slot term_slots[TERM_ENTRIES];
static minute_cache term_cache = {PTHREAD_MUTEX_INITIALIZER, RATES_TTL_MS, free, TERM_ENTRIES,
                                  term_slots};

bx_status county_period_of(const console_request *req, const char *area, county_period *p,
                           bx_error *err)
{
    memset(p, 0, sizeof(*p));
    page_today(req, p->today);
    const char *month = console_query(req, "month");
    char first[11];
    bx_date d;
    if (month && strlen(month) == 7 && snprintf(first, sizeof(first), "%s-01", month) == 10 &&
        bx_date_parse(first, &d) == BX_OK)
        snprintf(p->month, sizeof(p->month), "%s", month);
    else
        snprintf(p->month, sizeof(p->month), "%.7s", p->today);
    snprintf(p->month_first, sizeof(p->month_first), "%s-01", p->month);
    const char *term = console_query(req, "term");
    if (term && term_code_ok(term)) {
        snprintf(p->term, sizeof(p->term), "%s", term);
        return BX_OK;
    }
    char key[32];
    snprintf(key, sizeof(key), "%s|%s", area, p->today);
    long long now = (long long)req->now;
    if (minute_cache_read(&term_cache, key, now, read_term, p->term))
        return BX_OK;
    /* the term of the area's calendars that holds today, else the last one begun */
    const char *params[] = {area, p->today};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        req->db,
        "SELECT ct.code FROM registry.calendar_term ct WHERE ct.first_day <= $2::date AND "
        "ct.calendar_id IN (SELECT s.calendar_id FROM registry.school s JOIN registry.township t "
        "ON t.code = s.township_code WHERE t.county_code::text LIKE $1 || '%') "
        "ORDER BY (ct.last_day >= $2::date) DESC, ct.first_day DESC, ct.code LIMIT 1",
        2, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        snprintf(p->term, sizeof(p->term), "%s", PQgetvalue(res, 0, 0));
    char *kept = s == BX_OK ? strdup(p->term) : NULL;
    if (kept)
        minute_cache_keep(&term_cache, key, now, kept);
    PQclear(res);
    return s;
}

/* ---- the rates, kept a minute ---- */

typedef struct rates_value {
    PGresult *res;
    reports_class_counts *classes; /* borrowing res's strings */
    size_t n;
} rates_value;

static void rates_value_free(void *value)
{
    rates_value *v = value;
    PQclear(v->res);
    free(v->classes);
    free(v);
}

static minute_cache_slot rates_slots[RATES_ENTRIES];
static minute_cache rates_cache = {PTHREAD_MUTEX_INITIALIZER, RATES_TTL_MS, rates_value_free,
                                   RATES_ENTRIES, rates_slots};

/* The rows of one level from kept counts (a read of rates_cache, or counts just read). */
typedef struct rates_read {
    reports_level level;
    reports_row **rows;
    size_t *n;
    long long *at;
    bx_error *err;
    bx_status s;
} rates_read;

static void read_rates(const void *value, long long at, void *arg)
{
    const rates_value *v = value;
    rates_read *r = arg;
    r->s =
        v->n ? reports_aggregate(v->classes, v->n, r->level, NULL, r->rows, r->n, r->err) : BX_OK;
    *r->at = at;
}

bx_status county_class_counts(PGconn *db, const char *term, const char *month_first,
                              long long now_ms, const char *area, PGresult **res, bx_error *err)
{
    *res = NULL;
    char now[24];
    snprintf(now, sizeof(now), "%lld", now_ms);
    const char *kind = term ? "term" : "month";
    const char *params[] = {kind, term ? term : "", month_first ? month_first : "", now, area};
    PGresult *done = NULL;
    bx_status s = bx_pg_query(db, "CALL console.class_counts_refresh($1, $2, $3, $4::bigint, $5)",
                              5, params, &done, err);
    PQclear(done);
    const char *read[] = {kind, term ? term : month_first ? month_first : "", area};
    IFOK(s,
         bx_pg_query(db, "SELECT * FROM console.class_counts_read($1, $2, $3)", 3, read, res, err));
    return s;
}

/* county_rates, and when the counts were read (*at, the request's now of then). */
static bx_status rates_at(const console_request *req, const char *area, const county_period *p,
                          bool month, reports_level level, reports_row **rows, size_t *n,
                          long long *at, bx_error *err)
{
    *rows = NULL;
    *n = 0;
    *at = (long long)req->now;
    if (!month && !p->term[0])
        return BX_OK;
    char key[64];
    snprintf(key, sizeof(key), "%s|%s|%s", area, month ? "m" : "t", month ? p->month : p->term);
    long long now = (long long)req->now;
    rates_read r = {level, rows, n, at, err, BX_OK};
    if (minute_cache_read(&rates_cache, key, now, read_rates, &r))
        return r.s;
    /* read outside the lock: two requests may read the same counts once each */
    PGresult *res = NULL;
    bx_status s = county_class_counts(req->db, month ? NULL : p->term,
                                      month ? p->month_first : NULL, now, area, &res, err);
    if (s != BX_OK)
        return s;
    int nres = PQntuples(res);
    rates_value *v = calloc(1, sizeof(*v));
    reports_class_counts *classes = calloc(nres > 0 ? (size_t)nres : 1, sizeof(*classes));
    if (v == NULL || classes == NULL) {
        PQclear(res);
        free(classes);
        free(v);
        return BX_ERR(err, BX_ENOMEM, "rates: out of memory");
    }
    *v = (rates_value){res, classes, reports_class_counts_of(res, classes)};
    read_rates(v, now, &r);
    minute_cache_keep(&rates_cache, key, now, v);
    return r.s;
}

bx_status county_rates(const console_request *req, const char *area, const county_period *p,
                       bool month, reports_level level, reports_row **rows, size_t *n,
                       bx_error *err)
{
    long long at;
    return rates_at(req, area, p, month, level, rows, n, &at, err);
}

/* ---- charts and tables ---- */

/* Draws c with draw (svg_bars or svg_lines) and puts it into ctx as name (server-built markup). */
static bx_status put_chart(tmpl_ctx *ctx, const char *name,
                           bx_status (*draw)(const svg_chart *c, bx_buf *out), const svg_chart *c,
                           bx_error *err)
{
    bx_buf out;
    bx_buf_init(&out, 0);
    bx_status s = draw(c, &out);
    if (s == BX_OK)
        tmpl_put_html(ctx, name, out.data);
    else
        s = BX_ERR(err, s, "chart %s: cannot draw", name);
    bx_buf_free(&out);
    return s;
}

bx_status county_rate_chart(tmpl_ctx *ctx, const char *name, const char *title,
                            const reports_row *term, size_t nterm, const reports_row *month,
                            size_t nmonth, double threshold, county_label_fn *label, void *arg,
                            bx_error *err)
{
    /* the categories: every row of the term, then any of the month's alone */
    size_t cap = nterm + nmonth;
    const char **cats = calloc(cap ? cap : 1, sizeof(*cats));
    double *tv = calloc(cap ? cap : 1, sizeof(*tv)), *mv = calloc(cap ? cap : 1, sizeof(*mv));
    bx_status s = cats && tv && mv ? BX_OK : BX_ERR(err, BX_ENOMEM, "chart: out of memory");
    size_t nc = 0;
    for (size_t i = 0; i < nterm + nmonth && s == BX_OK; i++) {
        const reports_row *r = i < nterm ? &term[i] : &month[i - nterm];
        if (i >= nterm && reports_row_find(term, nterm, r->id))
            continue;
        const reports_row *t = reports_row_find(term, nterm, r->id),
                          *m = reports_row_find(month, nmonth, r->id);
        cats[nc] = label(arg, r->id);
        tv[nc] = t && t->all.dropout_valid ? t->all.dropout_rate * 100.0 : -1;
        mv[nc] = m && m->all.dropout_valid ? m->all.dropout_rate * 100.0 : -1;
        nc++;
    }
    if (s == BX_OK) {
        char tl[48];
        snprintf(tl, sizeof(tl), "阈值 %g%%", threshold * 100.0);
        svg_series series[] = {{"本学期", tv}, {"本月", mv}};
        svg_chart c = {.title = title,
                       .unit = "%",
                       .categories = cats,
                       .ncategories = nc,
                       .series = series,
                       .nseries = 2,
                       .threshold = threshold * 100.0,
                       .threshold_label = tl};
        s = put_chart(ctx, name, svg_bars, &c, err);
    }
    free(cats);
    free(tv);
    free(mv);
    return s;
}

static const char *flags_label(unsigned flags, char *buf, size_t size)
{
    buf[0] = '\0';
    static const struct {
        unsigned bit;
        const char *text;
    } t[] = {{REPORTS_FLAG_PRIMARY_OVER, "小学超过1%"},
             {REPORTS_FLAG_JUNIOR_OVER, "初中超过3%"},
             {REPORTS_FLAG_CLASS_FAILS, "班级超过1%"},
             {REPORTS_FLAG_SCHOOL_FAILS, "学校超过3%"}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (flags & t[i].bit)
            snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? "，" : "", t[i].text);
    return buf;
}

void county_rate_rows(tmpl_ctx *ctx, const char *list, const reports_row *rows, size_t n,
                      county_label_fn *label, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        const reports_row *r = &rows[i];
        tmpl_ctx *row = tmpl_add_row(ctx, list);
        char d[16], k[16], f[96];
        reports_rate_text(r->all.dropout_valid, r->all.dropout_rate, d);
        reports_rate_text(r->all.retention_valid, r->all.retention_rate, k);
        tmpl_put(row, "name", label(arg, r->id));
        tmpl_put_int(row, "enrolled", r->all.enrolled_start);
        tmpl_put_int(row, "dropped", r->all.dropped_out);
        tmpl_put(row, "dropout", d);
        tmpl_put(row, "retention", k);
        tmpl_put(row, "flags", flags_label(r->flags, f, sizeof(f)));
        tmpl_put_bool(row, "over", r->flags != 0);
    }
}

/* ---- the area's places: names of schools, townships and counties ---- */

typedef struct places {
    PGresult *res;   /* kind ('s', 't', 'c', city 'y', province 'z'), id, name, parent, calendar,
                        classes */
    bx_map *by_id;   /* id -> row + 1, the first row of an id (as the rows are ordered) */
    bx_map *schools; /* school id -> row + 1 */
} places;

static void places_free(places *pl)
{
    PQclear(pl->res);
    bx_map_free(pl->by_id);
    bx_map_free(pl->schools);
    memset(pl, 0, sizeof(*pl));
}

static bx_status places_load(const console_request *req, const char *area, places *pl,
                             bx_error *err)
{
    const char *params[] = {area};
    bx_status s = bx_pg_query(
        req->db,
        "SELECT 's', s.id, s.name, s.township_code::text, s.calendar_id, (SELECT count(*) FROM "
        "registry.class c WHERE c.school_id = s.id) FROM registry.school s JOIN registry.township "
        "t ON t.code = s.township_code WHERE t.county_code::text LIKE $1 || '%' "
        "UNION ALL SELECT 't', t.code::text, t.name, t.county_code::text, '', 0 FROM "
        "registry.township t WHERE t.county_code::text LIKE $1 || '%' "
        "UNION ALL SELECT 'c', c.code::text, c.name, c.city_code::text, '', 0 FROM registry.county "
        "c "
        "WHERE c.code::text LIKE $1 || '%' "
        /* the registry names no city or province: they are labelled by their code */
        "UNION ALL SELECT DISTINCT 'y', c.city_code::text, '市（' || c.city_code || '）', "
        "c.province_code::text, '', 0 FROM registry.county c WHERE c.code::text LIKE $1 || '%' "
        "UNION ALL SELECT DISTINCT 'z', c.province_code::text, '省（' || c.province_code || '）', "
        "'', '', 0 FROM registry.county c WHERE c.code::text LIKE $1 || '%' ORDER BY 1, 2",
        1, params, &pl->res, err);
    if (s != BX_OK)
        return s;
    /* a province has a thousand schools: names and rows by id through maps */
    pl->by_id = bx_map_new();
    pl->schools = bx_map_new();
    if (pl->by_id == NULL || pl->schools == NULL)
        s = BX_ERR(err, BX_ENOMEM, "places: out of memory");
    for (int i = 0; s == BX_OK && i < PQntuples(pl->res); i++) {
        const char *id = PQgetvalue(pl->res, i, 1);
        void *row = (void *)(intptr_t)(i + 1);
        if (bx_map_get(pl->by_id, id) == NULL)
            s = bx_map_put(pl->by_id, id, row);
        if (s == BX_OK && PQgetvalue(pl->res, i, 0)[0] == 's')
            s = bx_map_put(pl->schools, id, row);
        if (s != BX_OK)
            s = BX_ERR(err, s, "places: out of memory");
    }
    return s;
}

static const char *place_name(void *arg, const char *id)
{
    const places *pl = arg;
    intptr_t row = pl->by_id ? (intptr_t)bx_map_get(pl->by_id, id) : 0;
    return row > 0 ? PQgetvalue(pl->res, (int)row - 1, 2) : id;
}

/* ---- roll calls, weekly cases, overdue tasks ---- */

typedef struct rollcall_window {
    const places *pl;
    bx_date today;
    bx_date *from, *to; /* per row of pl->res ('s' rows only) */
    int *expected;      /* class-days */
} rollcall_window;

static bx_status rollcall_windows(const bx_registry *registry, void *arg)
{
    rollcall_window *w = arg;
    for (int i = 0; i < PQntuples(w->pl->res); i++) {
        w->from[i] = w->to[i] = BX_DATE_NONE;
        if (PQgetvalue(w->pl->res, i, 0)[0] != 's')
            continue;
        const bx_calendar *cal = bx_registry_calendar(registry, PQgetvalue(w->pl->res, i, 4));
        if (cal == NULL)
            continue;
        bx_date to = bx_calendar_is_school_day(cal, w->today)
                         ? w->today
                         : bx_calendar_add_school_days(cal, w->today, -1);
        bx_date from = to == BX_DATE_NONE
                           ? BX_DATE_NONE
                           : bx_calendar_add_school_days(cal, to, -(ROLLCALL_DAYS - 1));
        if (from == BX_DATE_NONE)
            from = to;
        if (to == BX_DATE_NONE)
            continue;
        w->from[i] = from;
        w->to[i] = to;
        w->expected[i] = (int)strtol(PQgetvalue(w->pl->res, i, 5), NULL, 10) *
                         bx_calendar_school_days_between(cal, from, to);
    }
    return BX_OK;
}

/* The class-days each school of pl reported within its window (w), added to reported[i]: one
 * row per school and day with how many classes reported (a whole-day or a period roll call); the
 * schools are the area's, found through pl's ids. */
static bx_status rollcall_reported(const console_request *req, const places *pl,
                                   const rollcall_window *w, long *reported, bx_error *err)
{
    int np = PQntuples(pl->res);
    bx_status s = BX_OK;
    bx_date lo = w->today, hi = w->today;
    for (int i = 0; i < np; i++)
        if (w->from[i] != BX_DATE_NONE && w->from[i] < lo)
            lo = w->from[i];
    char from[11], to[11];
    bx_date_format(lo, from);
    bx_date_format(hi, to);
    const char *params[] = {"", from, to};
    PGresult *res = NULL;
    bx_buf ids;
    bx_buf_init(&ids, 0);
    for (int i = 0; i < np && s == BX_OK; i++)
        if (PQgetvalue(pl->res, i, 0)[0] == 's')
            s = bx_pg_text_array_add(&ids, PQgetvalue(pl->res, i, 1));
    IFOK(s, bx_pg_text_array_end(&ids));
    params[0] = ids.data;
    IFOK(s, bx_pg_query(req->db,
                        "SELECT school_id, day::text, count(DISTINCT class_id) FROM "
                        "attendance.class_report WHERE school_id = ANY($1::text[]) AND day "
                        "BETWEEN $2::date AND $3::date GROUP BY 1, 2 ORDER BY 1, 2",
                        3, params, &res, err));
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        const char *school = PQgetvalue(res, r, 0);
        bx_date day;
        if (bx_date_parse(PQgetvalue(res, r, 1), &day) != BX_OK)
            continue;
        intptr_t row = (intptr_t)bx_map_get(pl->schools, school);
        int i = (int)row - 1;
        if (row > 0 && w->from[i] != BX_DATE_NONE && day >= w->from[i] && day <= w->to[i])
            reported[i] += strtol(PQgetvalue(res, r, 2), NULL, 10);
    }
    PQclear(res);
    bx_buf_free(&ids);
    return s;
}

/* The reporting rate (%) per school, or per county when by_county; labels and values of the
 * chart, allocated (caller frees both). */
static bx_status rollcall_rates(const console_request *req, const places *pl, bool by_county,
                                const char ***labels, double **values, size_t *n, bx_error *err)
{
    int np = PQntuples(pl->res);
    size_t cap = np > 0 ? (size_t)np : 1;
    rollcall_window w = {.pl = pl};
    char today[11];
    w.today = page_today(req, today);
    w.from = calloc(cap, sizeof(bx_date));
    w.to = calloc(cap, sizeof(bx_date));
    w.expected = calloc(cap, sizeof(int));
    long *reported = calloc(cap, sizeof(long)), *expected = calloc(cap, sizeof(long));
    *labels = calloc(cap, sizeof(**labels));
    *values = calloc(cap, sizeof(**values));
    *n = 0;
    bx_status s = w.from && w.to && w.expected && reported && expected && *labels && *values
                      ? BX_OK
                      : BX_ERR(err, BX_ENOMEM, "roll calls: out of memory");
    console_store *store = s == BX_OK ? page_store(req, err) : NULL;
    if (s == BX_OK && store == NULL)
        s = BX_EFATAL;
    IFOK(s, console_store_with_calendars(store, req->db, rollcall_windows, &w, err));
    IFOK(s, rollcall_reported(req, pl, &w, reported, err));
    /* per school, or summed per county (a school's township code begins with its county's) */
    for (int i = 0; s == BX_OK && i < np; i++) {
        if (PQgetvalue(pl->res, i, 0)[0] != 's' || w.expected[i] <= 0)
            continue;
        char county[7];
        const char *key = PQgetvalue(pl->res, i, 1);
        if (by_county) {
            snprintf(county, sizeof(county), "%.6s", PQgetvalue(pl->res, i, 3));
            key = county;
        }
        const char *label = place_name((void *)pl, key);
        size_t k = 0;
        while (k < *n && strcmp((*labels)[k], label) != 0)
            k++;
        if (k == *n)
            (*labels)[(*n)++] = label;
        (*values)[k] += (double)reported[i]; /* class-days reported, a rate below */
        expected[k] += w.expected[i];
    }
    for (size_t k = 0; s == BX_OK && k < *n; k++)
        (*values)[k] = expected[k] > 0 ? (*values)[k] * 100.0 / (double)expected[k] : -1;
    free(w.from);
    free(w.to);
    free(w.expected);
    free(reported);
    free(expected);
    return s;
}

/* Cases opened and closed per week over the last WEEKS weeks (Monday to Sunday, Asia/Shanghai),
 * counted from migration 0021's case summary (a case's school placed in its county). */
bx_status county_weekly_counts(PGconn *db, const char *area, const char *today, PGresult **res,
                               bx_error *err)
{
    const char *params[] = {area, today};
    return bx_pg_query(
        db,
        "WITH w AS (SELECT generate_series(date_trunc('week', $2::date) - interval '11 weeks', "
        "  date_trunc('week', $2::date), interval '1 week')::date AS wk), "
        "lo AS (SELECT (min(wk)::timestamp AT TIME ZONE 'Asia/Shanghai') AS t FROM w), "
        "x AS (SELECT wk, sum(o) AS o, sum(c) AS c FROM (SELECT date_trunc('week', opened_at AT "
        "  TIME ZONE 'Asia/Shanghai')::date AS wk, 1 AS o, 0 AS c FROM console.case_summary WHERE "
        "  county LIKE $1 || '%' AND opened_at >= (SELECT t FROM lo) UNION ALL SELECT "
        "  date_trunc('week', closed_at AT TIME ZONE 'Asia/Shanghai')::date, 0, 1 FROM "
        "  console.case_summary WHERE county LIKE $1 || '%' AND closed_at >= (SELECT t FROM lo)) u "
        "  GROUP BY wk) "
        "SELECT to_char(w.wk, 'MM-DD'), coalesce(x.o, 0), coalesce(x.c, 0) FROM w "
        "LEFT JOIN x ON x.wk = w.wk ORDER BY w.wk",
        2, params, res, err);
}

static bx_status weekly_cases(const console_request *req, const char *area, tmpl_ctx *ctx,
                              bx_error *err)
{
    char today[11];
    page_today(req, today);
    PGresult *res = NULL;
    bx_status s = county_weekly_counts(req->db, area, today, &res, err);
    if (s != BX_OK)
        return s;
    int n = PQntuples(res) < WEEKS + 1 ? PQntuples(res) : WEEKS + 1;
    const char *cats[WEEKS + 1];
    double opened[WEEKS + 1], closed[WEEKS + 1];
    for (int i = 0; i < n; i++) {
        cats[i] = PQgetvalue(res, i, 0);
        opened[i] = strtod(PQgetvalue(res, i, 1), NULL);
        closed[i] = strtod(PQgetvalue(res, i, 2), NULL);
        tmpl_ctx *row = tmpl_add_row(ctx, "weeks");
        tmpl_put(row, "week", cats[i]);
        tmpl_put(row, "opened", PQgetvalue(res, i, 1));
        tmpl_put(row, "closed", PQgetvalue(res, i, 2));
    }
    svg_series series[] = {{"新立案", opened}, {"结案", closed}};
    svg_chart c = {.title = "每周立案与结案（周一起）",
                   .unit = "",
                   .categories = cats,
                   .ncategories = (size_t)n,
                   .series = series,
                   .nseries = 2};
    s = put_chart(ctx, "chart_weeks", svg_lines, &c, err);
    PQclear(res);
    return s;
}

/* Open overdue tasks per township (by_county false) or per county: the tasks not ended (outcome
 * NULL) marked overdue or past their deadline, from the case summary's open tasks. */
bx_status county_overdue_counts(PGconn *db, const char *area, long long now_ms, bool by_county,
                                PGresult **res, bx_error *err)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", now_ms);
    const char *params[] = {area, now};
    return bx_pg_query(
        db,
        by_county ? "SELECT county, sum(console.case_overdue_tasks(open_marked, open_dues, "
                    "to_timestamp($2::bigint / 1000.0))) FROM console.case_summary WHERE county "
                    "LIKE $1 || '%' AND (open_marked > 0 OR open_dues IS NOT NULL) GROUP BY 1 "
                    "HAVING sum(console.case_overdue_tasks(open_marked, open_dues, "
                    "to_timestamp($2::bigint / 1000.0))) > 0 ORDER BY 1"
                  : "SELECT township, sum(console.case_overdue_tasks(open_marked, open_dues, "
                    "to_timestamp($2::bigint / 1000.0))) FROM console.case_summary WHERE county "
                    "LIKE $1 || '%' AND (open_marked > 0 OR open_dues IS NOT NULL) GROUP BY 1 "
                    "HAVING sum(console.case_overdue_tasks(open_marked, open_dues, "
                    "to_timestamp($2::bigint / 1000.0))) > 0 ORDER BY 1",
        2, params, res, err);
}

static bx_status overdue_tasks(const console_request *req, const char *area, const places *pl,
                               bool by_county, tmpl_ctx *ctx, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = county_overdue_counts(req->db, area, (long long)req->now, by_county, &res, err);
    if (s != BX_OK)
        return s;
    int n = PQntuples(res);
    const char **cats = calloc(n > 0 ? (size_t)n : 1, sizeof(*cats));
    double *v = calloc(n > 0 ? (size_t)n : 1, sizeof(*v));
    if (cats == NULL || v == NULL)
        s = BX_ERR(err, BX_ENOMEM, "overdue: out of memory");
    for (int i = 0; s == BX_OK && i < n; i++) {
        cats[i] = place_name((void *)pl, PQgetvalue(res, i, 0));
        v[i] = strtod(PQgetvalue(res, i, 1), NULL);
        tmpl_ctx *row = tmpl_add_row(ctx, "overdue");
        tmpl_put(row, "name", cats[i]);
        tmpl_put(row, "count", PQgetvalue(res, i, 1));
    }
    if (s == BX_OK) {
        svg_series series[] = {{"逾期任务", v}};
        svg_chart c = {.title = by_county ? "各县逾期未办任务" : "各乡镇逾期未办任务",
                       .unit = "",
                       .categories = cats,
                       .ncategories = (size_t)n,
                       .series = series,
                       .nseries = 1};
        s = put_chart(ctx, "chart_overdue", svg_bars, &c, err);
    }
    free(cats);
    free(v);
    PQclear(res);
    return s;
}

static bx_status rollcall_chart(const console_request *req, const places *pl, bool by_county,
                                tmpl_ctx *ctx, bx_error *err)
{
    const char **labels = NULL;
    double *values = NULL;
    size_t n = 0;
    bx_status s = rollcall_rates(req, pl, by_county, &labels, &values, &n, err);
    for (size_t i = 0; s == BX_OK && i < n; i++) {
        tmpl_ctx *row = tmpl_add_row(ctx, "rollcalls");
        tmpl_put(row, "name", labels[i]);
        tmpl_putf(row, "rate", "%.1f%%", values[i] < 0 ? 0 : values[i]);
    }
    if (s == BX_OK) {
        svg_series series[] = {{"点名上报率", values}};
        svg_chart c = {.title = by_county ? "各县点名上报率（近20个上学日）"
                                          : "各校点名上报率（近20个上学日）",
                       .unit = "%",
                       .categories = labels,
                       .ncategories = n,
                       .series = series,
                       .nseries = 1};
        s = put_chart(ctx, "chart_rollcall", svg_bars, &c, err);
    }
    free(labels);
    free(values);
    return s;
}

/* ---- the dashboard, for a county (places by school and township) or an area (by county) ---- */

/* Builds the dashboard into ctx; *as_of is when its oldest figures were read. */
static bx_status dashboard_build(console_request *req, const char *area, bool by_county,
                                 const county_period *p, tmpl_ctx *ctx, long long *as_of,
                                 bx_error *err)
{
    places pl = {0};
    bx_status s = places_load(req, area, &pl, err);
    tmpl_put(ctx, "term", p->term[0] ? p->term : "（无）");
    tmpl_put(ctx, "month", p->month);
    tmpl_put(ctx, "today", p->today);
    tmpl_put(ctx, "area_name", place_name(&pl, area));
    tmpl_put(ctx, "area", area);
    *as_of = (long long)req->now;
    /* two levels: school and township for a county, county and city for an area */
    reports_level levels[2] = {REPORTS_SCHOOL, REPORTS_TOWNSHIP};
    if (by_county) {
        levels[0] = REPORTS_COUNTY;
        levels[1] = REPORTS_CITY; /* a province: its cities; a city: itself */
    }
    static const char *const charts[2] = {"chart_rates_1", "chart_rates_2"};
    static const char *const tables[2] = {"rates_1", "rates_2"};
    for (int k = 0; k < 2 && s == BX_OK; k++) {
        reports_row *term = NULL, *month = NULL;
        size_t nt = 0, nm = 0;
        long long term_at = 0, month_at = 0;
        s = rates_at(req, area, p, false, levels[k], &term, &nt, &term_at, err);
        IFOK(s, rates_at(req, area, p, true, levels[k], &month, &nm, &month_at, err));
        if (s == BX_OK) {
            *as_of = term_at < *as_of ? term_at : *as_of;
            *as_of = month_at < *as_of ? month_at : *as_of;
        }
        char title[96];
        const char *what = levels[k] == REPORTS_SCHOOL     ? "各校"
                           : levels[k] == REPORTS_TOWNSHIP ? "各乡镇"
                           : levels[k] == REPORTS_COUNTY   ? "各县"
                           : levels[k] == REPORTS_CITY     ? "各市"
                                                           : "全省";
        snprintf(title, sizeof(title), "%s辍学率（本学期与本月）", what);
        double threshold = levels[k] == REPORTS_SCHOOL ? 0.03 : 0;
        IFOK(s, county_rate_chart(ctx, charts[k], title, term, nt, month, nm, threshold, place_name,
                                  &pl, err));
        if (s == BX_OK) {
            county_rate_rows(ctx, tables[k], term, nt, place_name, &pl);
            tmpl_put(ctx, k == 0 ? "level_1" : "level_2", what);
        }
        free(term);
        free(month);
    }
    IFOK(s, weekly_cases(req, area, ctx, err));
    IFOK(s, rollcall_chart(req, &pl, by_county, ctx, err));
    IFOK(s, overdue_tasks(req, area, &pl, by_county, ctx, err));
    if (s == BX_OK && tmpl_failed(ctx))
        s = BX_ERR(err, BX_ENOMEM, "dashboard: out of memory");
    places_free(&pl);
    return s;
}

/* Pages of aggregates built in the last minute, per key (a dashboard's area, level and period, a
 * county's reports): the same for everyone who may see the area, so a province's dashboard is
 * built once a minute, not per visit. Each is shown with the time of its figures. */
#define DASH_ENTRIES 48

typedef struct dash_value {
    tmpl_ctx *ctx;
    long long as_of; /* its oldest figures' time */
} dash_value;

static void dash_value_free(void *value)
{
    dash_value *v = value;
    tmpl_ctx_free(v->ctx);
    free(v);
}

static minute_cache_slot dash_slots[DASH_ENTRIES];
static minute_cache dash_cache = {PTHREAD_MUTEX_INITIALIZER, RATES_TTL_MS, dash_value_free,
                                  DASH_ENTRIES, dash_slots};

typedef struct dash_read {
    tmpl_ctx *ctx;
    long long *as_of;
} dash_read;

static void read_dash(const void *value, long long at, void *arg)
{
    const dash_value *v = value;
    dash_read *r = arg;
    (void)at;
    tmpl_put_all(r->ctx, v->ctx);
    *r->as_of = v->as_of;
}

bool county_cache_get(const char *key, long long now, tmpl_ctx *ctx, long long *as_of)
{
    dash_read r = {ctx, as_of};
    return minute_cache_read(&dash_cache, key, now, read_dash, &r);
}

void county_cache_put(const char *key, long long now, long long as_of, tmpl_ctx *built,
                      tmpl_ctx *ctx)
{
    tmpl_put_all(ctx, built);
    dash_value *v = malloc(sizeof(*v));
    if (v == NULL) {
        tmpl_ctx_free(built);
        return;
    }
    v->ctx = built;
    v->as_of = as_of;
    minute_cache_keep(&dash_cache, key, now, v);
}

bx_status county_dashboard_fill(console_request *req, const char *area, bool by_county,
                                tmpl_ctx *ctx, bx_error *err)
{
    county_period p;
    bx_status s = county_session(req->db, err);
    IFOK(s, county_period_of(req, area, &p, err));
    if (s != BX_OK)
        return s;
    char key[96];
    snprintf(key, sizeof(key), "%s|%d|%s|%s|%s", area, by_county, p.term, p.month, p.today);
    long long now = (long long)req->now, as_of = now;
    if (!county_cache_get(key, now, ctx, &as_of)) {
        /* built outside the lock: two requests may build the same dashboard once each */
        tmpl_ctx *built = tmpl_ctx_new();
        s = built ? dashboard_build(req, area, by_county, &p, built, &as_of, err)
                  : BX_ERR(err, BX_ENOMEM, "dashboard: out of memory");
        if (s == BX_OK)
            county_cache_put(key, now, as_of, built, ctx);
        else
            tmpl_ctx_free(built);
    }
    if (s == BX_OK) {
        char at[40];
        bx_time_format((bx_time_ms)as_of, at, sizeof(at));
        tmpl_putf(ctx, "as_of", "%.8s", at + 11); /* HH:MM:SS, Asia/Shanghai */
    }
    return s;
}

bx_status page_county_get(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    if (!page_found(rep, BX_OK, page_county_officer(me)))
        return BX_OK;
    bx_status s = county_dashboard_fill(req, me->county_code, false, rep->ctx, err);
    if (s != BX_OK)
        return s;
    rep->template_name = "county_dashboard";
    snprintf(rep->title, sizeof(rep->title), "县教体局 控辍保学");
    return BX_OK;
}
