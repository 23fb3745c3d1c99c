/* report_queries: the SQL of the rates and the standing lists, shared by bxctl and bx-console
 * (report_queries.h). */
#include "report_queries.h"

#include "bx_buf.h"
#include "bx_map.h"
#include "bx_pg.h"
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* $1 'term', 'month' or 'range', $2 term code, $3 first day of the month or of the range, $4 now
 * in ms, $5 area ('' all: a county code, or a city or province prefix), $6 a calendar ('' any),
 * $7 the range's last day. One row per class: place, grade, the five counts, the students left
 * out, those without enrolled_on, whether the class has the period, whether it has begun, and
 * (for the roll calls) its calendar, its period's first and last day and whether it has enrolled
 * students. */
static const char counts_sql[] =
    "WITH now_ts AS (SELECT to_timestamp($4::bigint / 1000.0) AS t), "
    "cls AS (SELECT c.id AS class_id, c.grade, c.school_id, s.township_code::text AS township, "
    "  tw.county_code::text AS county, "
    "  CASE WHEN $1 = 'term' THEN ct.first_day ELSE NULLIF($3, '')::date END AS first_day, "
    "  CASE WHEN $1 = 'term' THEN ct.last_day WHEN $1 = 'range' THEN NULLIF($7, '')::date "
    "       ELSE (NULLIF($3, '')::date + interval '1 month' - interval '1 day')::date END "
    "    AS last_day, s.calendar_id "
    "  FROM registry.class c JOIN registry.school s ON s.id = c.school_id "
    "  JOIN registry.township tw ON tw.code = s.township_code "
    "  LEFT JOIN registry.calendar_term ct ON $1 = 'term' AND ct.calendar_id = s.calendar_id "
    "    AND ct.code = $2 "
    "  WHERE ($5 = '' OR tw.county_code::text LIKE $5 || '%') "
    "    AND ($6 = '' OR s.calendar_id = $6)), "
    "b AS (SELECT cls.*, (first_day::timestamp AT TIME ZONE 'Asia/Shanghai') AS ps, "
    "  least(((last_day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai'), (SELECT t FROM now_ts)) "
    "    AS pe FROM cls), "
    "st AS (SELECT s.id, s.enrolled_on, b.class_id, b.first_day, b.ps, b.pe, "
    "  (s.status IN ('dropped_out', 'transferred_out', 'graduated') AND NOT EXISTS ("
    "    SELECT 1 FROM cases.case c WHERE c.student_id = s.id AND ("
    "      (s.status = 'dropped_out' AND EXISTS (SELECT 1 FROM cases.event e WHERE e.case_id = "
    "        c.id AND e.kind = 'stage_entered' AND cases.on_roster(e.stage))) "
    "      OR (s.status = 'transferred_out' AND c.ending = 'transferred') "
    "      OR (s.status = 'graduated' AND c.ending IN ('graduated', 'obligation_ended'))))) "
    "    AS undated "
    "  FROM registry.student s JOIN b ON b.class_id = s.class_id "
    "  WHERE b.first_day IS NOT NULL AND b.pe > b.ps), "
    /* dc: the student's cases that entered the roster, each with its first entry (dropped_at),
     * read per student through cases.case's and migration 0013's indexes */
    "f AS (SELECT st.*, coalesce(d.away_start, false) AS away_start, "
    "  coalesce(d.away_end, false) AS away_end, coalesce(d.dropped, false) AS dropped, "
    "  EXISTS (SELECT 1 FROM cases.case c WHERE c.student_id = st.id AND c.ending IN "
    "    ('transferred', 'graduated', 'obligation_ended') AND c.closed_at < st.ps) AS gone_start, "
    "  EXISTS (SELECT 1 FROM cases.case c WHERE c.student_id = st.id AND c.ending IN "
    "    ('transferred', 'graduated', 'obligation_ended') AND c.closed_at < st.pe) AS gone_end, "
    "  EXISTS (SELECT 1 FROM cases.case c WHERE c.student_id = st.id AND c.ending = "
    "    'transferred' AND c.closed_at >= st.ps AND c.closed_at < st.pe) AS moved_out, "
    "  coalesce(st.enrolled_on > st.first_day AND (st.enrolled_on::timestamp AT TIME ZONE "
    "    'Asia/Shanghai') < st.pe, false) AS moved_in, "
    "  (st.enrolled_on IS NULL OR st.enrolled_on <= st.first_day) AS there_start, "
    "  (st.enrolled_on IS NULL OR (st.enrolled_on::timestamp AT TIME ZONE 'Asia/Shanghai') "
    "    < st.pe) AS there_end "
    "  FROM st LEFT JOIN LATERAL (SELECT "
    "    bool_or(dc.dropped_at < st.ps AND (dc.closed_at IS NULL OR dc.closed_at >= st.ps)) "
    "      AS away_start, "
    "    bool_or(dc.dropped_at < st.pe AND (dc.closed_at IS NULL OR dc.closed_at >= st.pe)) "
    "      AS away_end, "
    "    bool_or(dc.dropped_at >= st.ps AND dc.dropped_at < st.pe AND NOT coalesce(dc.ending IN "
    "      ('returned', 'transferred') AND dc.closed_at < st.pe, false)) AS dropped "
    "    FROM (SELECT c.closed_at, c.ending, (SELECT min(e.occurred_at) FROM cases.event e "
    "      WHERE e.case_id = c.id AND e.kind = 'stage_entered' AND cases.on_roster(e.stage)) "
    "      AS dropped_at FROM cases.case c WHERE c.student_id = st.id) dc "
    "    WHERE dc.dropped_at IS NOT NULL) d ON true) "
    "SELECT b.county, b.township, b.school_id, b.class_id, b.grade, "
    "  count(f.id) FILTER (WHERE NOT f.undated AND f.there_start AND NOT f.away_start "
    "    AND NOT f.gone_start), "
    "  count(f.id) FILTER (WHERE NOT f.undated AND f.dropped), "
    "  count(f.id) FILTER (WHERE NOT f.undated AND f.moved_out), "
    "  count(f.id) FILTER (WHERE NOT f.undated AND f.moved_in), "
    "  count(f.id) FILTER (WHERE NOT f.undated AND f.there_end AND NOT f.away_end "
    "    AND NOT f.gone_end), "
    "  count(f.id) FILTER (WHERE f.undated), "
    "  count(f.id) FILTER (WHERE f.enrolled_on IS NULL), "
    "  b.first_day IS NOT NULL, coalesce(b.pe > b.ps, false), b.calendar_id, "
    "  coalesce(b.first_day::text, ''), coalesce(b.last_day::text, ''), "
    "  EXISTS (SELECT 1 FROM registry.student es WHERE es.class_id = b.class_id "
    "    AND es.status = 'enrolled') "
    "FROM b LEFT JOIN f ON f.class_id = b.class_id "
    "GROUP BY b.county, b.township, b.school_id, b.class_id, b.grade, b.first_day, b.last_day, "
    "  b.calendar_id, b.ps, b.pe "
    "ORDER BY b.class_id";

bx_status reports_query_class_counts(PGconn *db, const reports_period *p, PGresult **res,
                                     bx_error *err)
{
    char now[32];
    snprintf(now, sizeof(now), "%lld", p->now_ms);
    const char *kind = p->term ? "term" : p->month_first_day ? "month" : "range";
    const char *first = p->month_first_day ? p->month_first_day : p->first_day;
    const char *params[] = {kind,
                            p->term ? p->term : "",
                            first ? first : "",
                            now,
                            p->area ? p->area : "",
                            p->calendar_id ? p->calendar_id : "",
                            p->last_day ? p->last_day : ""};
    return bx_pg_query(db, counts_sql, 7, params, res, err);
}

static long count_at(const PGresult *res, int row, int col)
{
    return strtol(PQgetvalue(res, row, col), NULL, 10);
}

size_t reports_class_counts_of(const PGresult *res, reports_class_counts *classes)
{
    size_t n = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetvalue(res, i, RQ_HAS_PERIOD)[0] != 't' || PQgetvalue(res, i, RQ_BEGUN)[0] != 't')
            continue;
        reports_class_counts *c = &classes[n++];
        c->county = PQgetvalue(res, i, RQ_COUNTY);
        c->township = PQgetvalue(res, i, RQ_TOWNSHIP);
        c->school = PQgetvalue(res, i, RQ_SCHOOL);
        c->class_id = PQgetvalue(res, i, RQ_CLASS);
        c->grade = (int)count_at(res, i, RQ_GRADE);
        c->enrolled_start = (int)count_at(res, i, RQ_START);
        c->dropped_out = (int)count_at(res, i, RQ_DROPPED);
        c->transferred_out = (int)count_at(res, i, RQ_OUT);
        c->transferred_in = (int)count_at(res, i, RQ_IN);
        c->enrolled_now = (int)count_at(res, i, RQ_NOW);
    }
    return n;
}

static bool class_counted(const PGresult *res, int i)
{
    return PQgetvalue(res, i, RQ_HAS_PERIOD)[0] == 't' && PQgetvalue(res, i, RQ_BEGUN)[0] == 't';
}

/* The days with a roll call of the classes $1 (a text[]) from $2 to $3, as days since
 * 1970-01-01 (bx_date), one row per class that has any. */
static const char rollcall_sql[] =
    "SELECT class_id, string_agg(DISTINCT (day - date '1970-01-01')::text, ',') "
    "FROM attendance.class_report WHERE class_id = ANY ($1::text[]) "
    "AND day BETWEEN $2::date AND $3::date GROUP BY class_id";

/* The days of a class's roll calls (rollcall_sql's list: days since 1970-01-01, comma separated;
 * NULL: none) into *list (grown as needed, *cap its room), *count of them. */
static bx_status parse_days(const char *text, bx_date **list, size_t *cap, size_t *count,
                            bx_error *err)
{
    *count = 0;
    for (const char *p = text; p && *p;) {
        if (*count == *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            bx_date *grown = realloc(*list, ncap * sizeof(**list));
            if (grown == NULL)
                return BX_ERR(err, BX_ENOMEM, "roll calls: out of memory");
            *list = grown;
            *cap = ncap;
        }
        char *end;
        (*list)[(*count)++] = (bx_date)strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    return BX_OK;
}

/* rollcall_sql for the classes ids (a text[] literal) from lo to hi: *days the rows (caller
 * clears), *by_class each class's list of days, borrowed from *days (caller frees). */
static bx_status rollcall_days_by_class(PGconn *db, const char *ids, bx_date lo, bx_date hi,
                                        PGresult **days, bx_map **by_class, bx_error *err)
{
    char from[11], to[11];
    bx_date_format(lo, from);
    bx_date_format(hi, to);
    bx_status s = bx_pg_query(db, rollcall_sql, 3, (const char *[]){ids, from, to}, days, err);
    if (s == BX_OK && (*by_class = bx_map_new()) == NULL)
        s = BX_ERR(err, BX_ENOMEM, "roll calls: out of memory");
    for (int r = 0; s == BX_OK && r < PQntuples(*days); r++)
        s = bx_map_put(*by_class, PQgetvalue(*days, r, 0), PQgetvalue(*days, r, 1));
    return s;
}

bx_status reports_query_rollcall(PGconn *db, const PGresult *res, const bx_registry *calendars,
                                 bx_date today, reports_class_counts *classes, size_t n,
                                 bx_error *err)
{
    /* the classes to look up, and the span of their periods */
    bx_buf ids;
    bx_buf_init(&ids, 0);
    bx_status s = bx_buf_puts(&ids, "{");
    bx_date lo = BX_DATE_NONE, hi = BX_DATE_NONE;
    size_t j = 0, asked = 0;
    for (int i = 0; i < PQntuples(res) && s == BX_OK && j < n; i++) {
        if (!class_counted(res, i))
            continue;
        reports_class_counts *c = &classes[j++];
        c->rollcall_due = c->rollcall_reported = 0;
        bx_date first, last;
        if (PQgetvalue(res, i, RQ_HAS_ENROLLED)[0] != 't' ||
            bx_date_parse(PQgetvalue(res, i, RQ_FIRST_DAY), &first) != BX_OK ||
            bx_date_parse(PQgetvalue(res, i, RQ_LAST_DAY), &last) != BX_OK)
            continue;
        lo = lo == BX_DATE_NONE || first < lo ? first : lo;
        hi = hi == BX_DATE_NONE || last > hi ? last : hi;
        s = bx_buf_printf(&ids, "%s\"%s\"", asked++ ? "," : "", PQgetvalue(res, i, RQ_CLASS));
    }
    IFOK(s, bx_buf_puts(&ids, "}"));
    if (s != BX_OK) {
        bx_buf_free(&ids);
        return BX_ERR(err, s, "roll calls: out of memory");
    }
    PGresult *days = NULL;
    bx_map *by_class = NULL;
    if (asked > 0)
        s = rollcall_days_by_class(db, ids.data, lo, hi, &days, &by_class, err);
    bx_buf_free(&ids);
    bx_date *list = NULL;
    size_t cap = 0;
    j = 0;
    for (int i = 0; s == BX_OK && asked > 0 && i < PQntuples(res) && j < n; i++) {
        if (!class_counted(res, i))
            continue;
        reports_class_counts *c = &classes[j++];
        bx_date first, last;
        const bx_calendar *cal = bx_registry_calendar(calendars, PQgetvalue(res, i, RQ_CALENDAR));
        if (cal == NULL || PQgetvalue(res, i, RQ_HAS_ENROLLED)[0] != 't' ||
            bx_date_parse(PQgetvalue(res, i, RQ_FIRST_DAY), &first) != BX_OK ||
            bx_date_parse(PQgetvalue(res, i, RQ_LAST_DAY), &last) != BX_OK)
            continue;
        size_t count = 0;
        s = parse_days(bx_map_get(by_class, PQgetvalue(res, i, RQ_CLASS)), &list, &cap, &count,
                       err);
        if (s != BX_OK)
            break;
        int due = 0, got = 0;
        reports_rollcall_days(cal, first, last, today, list, count, &due, &got);
        c->rollcall_due = due;
        c->rollcall_reported = got;
    }
    free(list);
    bx_map_free(by_class);
    PQclear(days);
    return s;
}

/* $1 level, $2 area prefix, $3 calendar, $4 and $5 the period's first and last day. */
static const char area_cases_sql[] =
    "SELECT CASE $1 WHEN 'school' THEN sc.id WHEN 'township' THEN t.code::text "
    "  WHEN 'county' THEN t.county_code::text WHEN 'city' THEN substr(t.county_code, 1, 4) "
    "  WHEN 'province' THEN substr(t.county_code, 1, 2) ELSE '' END AS key, "
    "  count(c.id) FILTER (WHERE c.closed_at IS NULL AND NOT cases.on_roster(c.stage)), "
    "  count(c.id) FILTER (WHERE c.closed_at IS NULL AND cases.on_roster(c.stage)), "
    "  count(c.id) FILTER (WHERE c.ending = 'returned'), "
    "  count(c.id) FILTER (WHERE c.ending = 'returned' AND (c.closed_at AT TIME ZONE "
    "    'Asia/Shanghai')::date BETWEEN $4::date AND $5::date) "
    "FROM registry.school sc JOIN registry.township t ON t.code = sc.township_code "
    "LEFT JOIN cases.case c ON c.school_id = sc.id "
    "WHERE ($2 = '' OR t.county_code::text LIKE $2 || '%') AND ($3 = '' OR sc.calendar_id = $3) "
    "GROUP BY 1 ORDER BY 1";

bx_status reports_query_area_cases(PGconn *db, reports_level level, const char *area,
                                   const char *calendar_id, const char *first_day,
                                   const char *last_day, PGresult **res, bx_error *err)
{
    const char *params[] = {reports_level_name(level), area ? area : "",
                            calendar_id ? calendar_id : "", first_day, last_day};
    return bx_pg_query(db, area_cases_sql, 5, params, res, err);
}

/* ---- the standing lists ----
 * $1 area, $2 list, $3 township, $4 school, $5 stage, $6 overdue only, $7 now (ms), $8 limit
 * (NULL: all), $9 offset. The roster entry of a case (its first stage_entered into a roster
 * stage) is read per case through migration 0013's partial index. */
static const char ledger_head[] =
    "SELECT x.list, x.id, x.student_id, x.school_id, x.township, x.county, x.stage, x.opened, "
    "  x.roster, x.closed, x.name, x.overdue, count(*) OVER (), x.school_name, x.township_name, "
    "  x.class_name, x.sex, x.birth_date, x.first_absent, x.reason, x.owner "
    "FROM (SELECT CASE WHEN c.closed_at IS NOT NULL THEN 'returned' "
    "  WHEN dc.dropped_at IS NULL THEN 'suspected' ELSE 'dropout' END AS list, "
    "  c.id, c.student_id, c.school_id, coalesce(s.township_code::text, '') AS township, "
    "  coalesce(t.county_code::text, '') AS county, coalesce(c.stage, '') AS stage, "
    "  " REPORTS_ISO("c.opened_at") " AS opened, coalesce(" REPORTS_ISO(
        "dc.dropped_at") ", '') AS roster, coalesce(" REPORTS_ISO("c.closed_at") ", '') AS closed, "
                                                                                 "  c.opened_at, ";
/* The name and the personal columns, with or without names. */
static const char ledger_names[] =
    "p.name AS name, coalesce(p.sex::text, '') AS sex, coalesce(p.birth_date::text, '') AS "
    "birth_date, ";
static const char ledger_no_names[] = "NULL::text AS name, '' AS sex, '' AS birth_date, ";
static const char ledger_tail[] =
    "  EXISTS (SELECT 1 FROM cases.task k WHERE k.case_id = c.id AND k.outcome IS NULL AND "
    "    (k.overdue_at IS NOT NULL OR k.due_at <= to_timestamp($7::bigint / 1000.0))) AS overdue, "
    "  coalesce(s.name, '') AS school_name, coalesce(t.name, '') AS township_name, "
    "  coalesce(cl.name, '') AS class_name, "
    /* the case's first day absent: the date its key ends with (<student>:<YYYYMMDD>), the day
     * it was opened for; as console.first_absent (migration 0029) */
    "  CASE WHEN (c.state->>'case_id') ~ ':[0-9]{8}$' "
    "    THEN substr(right(c.state->>'case_id', 8), 1, 4) || '-' || "
    "      substr(right(c.state->>'case_id', 8), 5, 2) || '-' || right(c.state->>'case_id', 2) "
    "    WHEN (c.state->>'streak_start') ~ '^[0-9]{1,6}$' "
    "    THEN (date '1970-01-01' + (c.state->>'streak_start')::int)::text ELSE '' END "
    "    AS first_absent, "
    "  coalesce((SELECT e.reason FROM cases.event e WHERE e.case_id = c.id AND e.kind = 'opened' "
    "    ORDER BY e.id LIMIT 1), '') AS reason, "
    "  coalesce((SELECT coalesce(sf.name, k.owner_role) FROM cases.task k LEFT JOIN "
    "    registry.staff sf ON sf.id = k.owner_staff_id WHERE k.case_id = c.id AND k.outcome IS "
    "    NULL ORDER BY k.due_at, k.id LIMIT 1), '') AS owner "
    "  FROM cases.case c "
    "  LEFT JOIN LATERAL (SELECT min(e.occurred_at) AS dropped_at FROM cases.event e "
    "    WHERE e.case_id = c.id AND e.kind = 'stage_entered' AND cases.on_roster(e.stage)) dc "
    "    ON true "
    "  LEFT JOIN registry.school s ON s.id = c.school_id "
    "  LEFT JOIN registry.township t ON t.code = s.township_code "
    "  LEFT JOIN registry.student st ON st.id = c.student_id "
    "  LEFT JOIN registry.class cl ON cl.id = st.class_id ";
static const char ledger_where[] =
    "  WHERE (c.closed_at IS NULL OR c.ending = 'returned') "
    "  AND ($1 = '' OR t.county_code::text LIKE $1 || '%') "
    "  AND ($3 = '' OR s.township_code::text = $3) AND ($4 = '' OR c.school_id = $4) "
    "  AND ($5 = '' OR c.stage = $5)) x "
    "WHERE ($2 = '' OR x.list = $2) AND (NOT $6::boolean OR x.overdue) ";

static const char *const ledger_orders[] = {
    [REPORTS_SORT_LEDGER] = ("ORDER BY CASE x.list WHEN 'suspected' THEN 1 WHEN 'dropout' THEN 2 "
                             "ELSE 3 END, x.county, x.township, x.school_id, x.student_id, x.id "),
    [REPORTS_SORT_OPENED] = "ORDER BY x.opened_at DESC, x.id DESC ",
    [REPORTS_SORT_SCHOOL] = "ORDER BY x.school_id, x.student_id, x.id ",
    [REPORTS_SORT_STAGE] = "ORDER BY x.stage, x.school_id, x.student_id, x.id ",
};

void reports_ledger_args_fill(const reports_ledger_filter *f, reports_ledger_args *a)
{
    snprintf(a->now, sizeof(a->now), "%lld", f->now_ms);
    snprintf(a->limit, sizeof(a->limit), "%ld", f->limit);
    snprintf(a->offset, sizeof(a->offset), "%ld", f->offset > 0 ? f->offset : 0);
    const char *const v[REPORTS_LEDGER_NPARAMS] = {f->area ? f->area : "",
                                                   f->list ? f->list : "",
                                                   f->township ? f->township : "",
                                                   f->school ? f->school : "",
                                                   f->stage ? f->stage : "",
                                                   f->overdue_only ? "true" : "false",
                                                   a->now,
                                                   f->limit > 0 ? a->limit : NULL,
                                                   a->offset};
    for (int i = 0; i < REPORTS_LEDGER_NPARAMS + REPORTS_LEDGER_EXTRA; i++)
        a->params[i] = i < REPORTS_LEDGER_NPARAMS ? v[i] : NULL;
}

bx_status reports_query_ledger(PGconn *db, const reports_ledger_filter *f, PGresult **res,
                               bx_error *err)
{
    *res = NULL;
    unsigned sort = (unsigned)f->sort;
    if (sort >= sizeof(ledger_orders) / sizeof(ledger_orders[0]))
        sort = REPORTS_SORT_LEDGER;
    bx_buf sql;
    bx_buf_init(&sql, 0);
    bx_status s = bx_buf_puts(&sql, ledger_head);
    IFOK(s, bx_buf_puts(&sql, f->names ? ledger_names : ledger_no_names));
    IFOK(s, bx_buf_puts(&sql, ledger_tail));
    if (f->names)
        IFOK(s,
             bx_buf_puts(&sql,
                         "  LEFT JOIN registry.student_private p ON p.student_id = c.student_id "));
    IFOK(s, bx_buf_puts(&sql, ledger_where));
    IFOK(s, bx_buf_puts(&sql, ledger_orders[sort]));
    IFOK(s, bx_buf_puts(&sql, "LIMIT $8::bigint OFFSET $9::bigint"));
    if (s != BX_OK) {
        bx_buf_free(&sql);
        return BX_ERR(err, s, "ledger: out of memory");
    }
    reports_ledger_args a = {0};
    reports_ledger_args_fill(f, &a);
    s = bx_pg_query(db, sql.data, REPORTS_LEDGER_NPARAMS, a.params, res, err);
    bx_buf_free(&sql);
    return s;
}

static const char history_sql[] =
    "SELECT e.case_id, e.kind, coalesce(e.stage, ''), e.actor, e.reason, e.late, " REPORTS_ISO(
        "e.occurred_at") " FROM cases.event e "
                         "WHERE e.case_id = ANY($1::bigint[]) AND e.kind <> 'task_created' "
                         "ORDER BY e.case_id, e.occurred_at, e.id";

bx_status reports_query_history(PGconn *db, const PGresult *ledger, PGresult **res, bx_error *err)
{
    *res = NULL;
    bx_buf ids;
    bx_buf_init(&ids, 0);
    bx_status s = bx_buf_puts(&ids, "{");
    for (int i = 0; i < PQntuples(ledger) && s == BX_OK; i++)
        s = bx_buf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(ledger, i, RL_CASE));
    IFOK(s, bx_buf_puts(&ids, "}"));
    if (s != BX_OK) {
        bx_buf_free(&ids);
        return BX_ERR(err, s, "ledger history: out of memory");
    }
    const char *params[] = {ids.data};
    s = bx_pg_query(db, history_sql, 1, params, res, err);
    bx_buf_free(&ids);
    return s;
}

int reports_history_first(const PGresult *h, long long case_id)
{
    int lo = 0, hi = PQntuples(h);
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strtoll(PQgetvalue(h, mid, RH_CASE), NULL, 10) < case_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bx_status reports_query_duty_counts(PGconn *db, const char *calendar_id, const char *first_day,
                                    const char *last_day, PGresult **res, bx_error *err)
{
    return escalate_store_county_counts(db, calendar_id, first_day, last_day, res, err);
}
