/* Integration tests of migration 0021's summaries against the queries they replace, on a database
 * of the test's own: the per-class counts bx-console reads (county_class_counts) are the ones
 * of bxctl report (reports_query_class_counts) for terms and months at many times, before and
 * after every kind of write that changes them, and while a write is still uncommitted; the county
 * ledger read page first (county_ledger_query) is bxctl ledger's (reports_query_ledger) for every
 * filter, order and page; cases per week and overdue tasks per township are the dashboard's
 * queries as they were before the case summary. */
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_test.h"
#include "page_county.h"
#include "report_queries.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *db_url;
static PGconn *db;

/* Counties 990081 (townships 990081100 and 990081200) and 990082, city prefix 9900. Two
 * calendars with term 2026-autumn on different days. Students of every status and enrolment
 * date; cases of every ending, roster entries before, inside and after the periods (some still
 * ahead of the clock), a second case for some students, a case of a school the registry lacks;
 * open, done, cancelled and overdue-marked tasks. */
static void registry_rows(void)
{
    itest_sql_exec(
        db_url,
        "INSERT INTO registry.county (code, name) VALUES ('990081', '甲县'), ('990082', '乙县');"
        "INSERT INTO registry.township (code, county_code, name) VALUES "
        "('990081100', '990081', '东镇'), ('990081200', '990081', '西乡'), "
        "('990082100', '990082', '南镇');"
        "INSERT INTO registry.calendar (id, name) VALUES ('sum-a', 'A'), ('sum-b', 'B');"
        "INSERT INTO registry.calendar_term (calendar_id, code, first_day, last_day) VALUES "
        "('sum-a', '2026-autumn', '2026-09-01', '2027-01-22'), "
        "('sum-b', '2026-autumn', '2026-09-05', '2027-01-18');"
        "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) VALUES "
        "('SA1', '东镇小学', '990081100', 'primary', 'sum-a'), "
        "('SA2', '西乡中学', '990081200', 'junior', 'sum-b'), "
        "('SB1', '南镇小学', '990082100', 'primary', 'sum-a');"
        "INSERT INTO registry.staff (id, name, role, school_id) VALUES "
        "('SST1', '孙老师', 'homeroom_teacher', 'SA1');"
        "INSERT INTO registry.class (id, school_id, grade, name) VALUES "
        "('CA11', 'SA1', 3, '三年级1班'), ('CA12', 'SA1', 4, '四年级1班'), "
        "('CA19', 'SA1', 5, '五年级1班'), ('CA21', 'SA2', 8, '八年级1班'), "
        "('CB11', 'SB1', 2, '二年级1班');"
        "INSERT INTO registry.student (id, school_id, class_id, status, enrolled_on) "
        "SELECT 'SU' || lpad(i::text, 3, '0'), CASE WHEN i <= 40 THEN 'SA1' WHEN i <= 55 THEN "
        "'SA2' ELSE 'SB1' END, CASE WHEN i <= 20 THEN 'CA11' WHEN i <= 40 THEN 'CA12' WHEN i <= 55 "
        "THEN 'CA21' ELSE 'CB11' END, CASE i % 9 WHEN 1 THEN 'dropped_out' WHEN 2 THEN "
        "'transferred_out' WHEN 3 THEN 'graduated' WHEN 4 THEN 'suspended' ELSE 'enrolled' END, "
        "CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN date '2026-08-20' WHEN 2 THEN date '2026-09-01' "
        "WHEN 3 THEN date '2026-10-15' WHEN 4 THEN date '2026-11-10' WHEN 5 THEN date "
        "'2026-12-15' ELSE date '2026-09-03' END FROM generate_series(1, 65) i;"
        "INSERT INTO registry.student_private (student_id, name, sex, birth_date) "
        "SELECT 'SU' || lpad(i::text, 3, '0'), '学生' || i, CASE WHEN i % 2 = 0 THEN 'F' ELSE "
        "'M' END, date '2016-01-01' + i FROM generate_series(1, 65) i WHERE i % 5 <> 0;"
        /* one case for every odd student, of a kind by i % 8; a second, earlier one for some */
        "CREATE TEMP TABLE k AS SELECT i, 'SU' || lpad(i::text, 3, '0') AS sid, CASE WHEN i <= "
        "40 THEN 'SA1' WHEN i <= 55 THEN 'SA2' ELSE 'SB1' END AS school, i % 8 AS kind "
        "FROM generate_series(1, 65) i WHERE i % 2 = 1;"
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, "
        "closed_at, ending, state) SELECT 1000 + i, sid, school, CASE kind WHEN 0 THEN "
        "timestamptz '2026-11-02 17:00+08' WHEN 4 THEN '2026-08-10 17:00+08' WHEN 5 THEN "
        "'2026-09-10 17:00+08' WHEN 2 THEN '2026-09-07 17:00+08' ELSE '2026-10-05 17:00+08' END, "
        "CASE WHEN kind IN (0, 4, 5) THEN 'contact_family' ELSE 'dropout_roster' END, now(), "
        "CASE kind WHEN 2 THEN timestamptz '2026-11-10 09:00+08' WHEN 3 THEN '2026-11-20 "
        "09:00+08' WHEN 4 THEN '2026-08-20 09:00+08' WHEN 5 THEN '2026-09-20 09:00+08' WHEN 7 "
        "THEN '2026-12-05 09:00+08' END, CASE kind WHEN 2 THEN 'returned' WHEN 3 THEN "
        "'transferred' WHEN 4 THEN 'transferred' WHEN 5 THEN 'graduated' WHEN 7 THEN 'returned' "
        "END, jsonb_build_object('streak_start', 20700 + i) FROM k;"
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, "
        "closed_at, ending) SELECT 2000 + i, sid, school, '2026-09-02 17:00+08', "
        "'dropout_roster', now(), '2026-09-25 09:00+08', 'returned' FROM k WHERE i % 10 = 1;"
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at) VALUES "
        "(3001, 'SU002', 'SZZ', '2026-11-03 17:00+08', 'contact_family', now());"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT c.id, 'o-' || c.id, 'opened', NULL, 'bx-escalate', '连续缺勤 ' || (c.id % 5 + 3) "
        "|| ' 天', c.opened_at FROM cases.case c;"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT c.id, 's-' || c.id, 'stage_entered', 'contact_family', 'bx-escalate', 'streak', "
        "c.opened_at FROM cases.case c;"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT 1000 + i, 'r-' || i, 'stage_entered', 'dropout_roster', 'bx-escalate', "
        "'deadline', CASE kind WHEN 1 THEN timestamptz '2026-10-20 17:00+08' WHEN 2 THEN "
        "'2026-09-10 17:00+08' WHEN 3 THEN '2026-11-05 17:00+08' WHEN 6 THEN '2026-12-10 "
        "17:00+08' WHEN 7 THEN '2026-10-10 17:00+08' END FROM k WHERE kind IN (1, 2, 3, 6, 7);"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT 1000 + i, 'r2-' || i, 'stage_entered', 'township_notice', 'bx-escalate', "
        "'deadline', '2026-11-01 17:00+08' FROM k WHERE kind = 1;"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT 2000 + i, 'r3-' || i, 'stage_entered', 'dropout_roster', 'bx-escalate', "
        "'deadline', '2026-09-15 17:00+08' FROM k WHERE i % 10 = 1;"
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, owner_staff_id, "
        "created_at, due_at, overdue_at) SELECT c.id, 't-' || c.id || '-' || n, 'home_visit', "
        "c.stage, CASE n WHEN 1 THEN 'homeroom_teacher' WHEN 2 THEN 'principal' ELSE "
        "'township_officer' END, CASE WHEN n = 1 AND c.school_id = 'SA1' THEN 'SST1' END, "
        "c.opened_at, CASE n WHEN 1 THEN timestamptz '2026-11-20 17:00+08' WHEN 2 THEN "
        "'2026-12-01 17:00+08' ELSE '2026-11-26 17:00+08' END, CASE WHEN n = 3 AND c.id % 3 = 0 "
        "THEN timestamptz '2026-11-26 18:00+08' END FROM cases.case c, generate_series(1, 3) n "
        "WHERE c.closed_at IS NULL;"
        "UPDATE cases.task SET done_at = '2026-11-21 10:00+08', done_by = 'SST1' WHERE case_id "
        "% 4 = 1 AND task_key LIKE '%-1';"
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, created_at, due_at, "
        "outcome, ended_at) SELECT c.id, 'tc-' || c.id, 'home_visit', c.stage, 'principal', "
        "c.opened_at, c.opened_at + interval '3 days', 'cancelled', c.closed_at FROM cases.case c "
        "WHERE c.closed_at IS NOT NULL;");
}

static void setup(void)
{
    if (db)
        return;
    db_url = itest_own_database("summaries");
    registry_rows();
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
}

static long long ms_of(const char *local)
{
    const char *p[] = {local};
    PGresult *res = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_query(db,
                        "SELECT (extract(epoch FROM ($1 || '+08')::timestamptz) * 1000)::bigint", 1,
                        p, &res, &err) == BX_OK);
    long long ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return ms;
}

/* Whether two results hold the same rows in the first ncols columns; names the first difference. */
static bool same_rows(const char *what, const PGresult *want, const PGresult *got, int ncols)
{
    if (PQntuples(want) != PQntuples(got)) {
        BX_FAIL_AT("%s: %d rows, expected %d", what, PQntuples(got), PQntuples(want));
        return false;
    }
    for (int i = 0; i < PQntuples(want); i++)
        for (int c = 0; c < ncols; c++) {
            const char *w = PQgetisnull(want, i, c) ? "(null)" : PQgetvalue(want, i, c);
            const char *g = PQgetisnull(got, i, c) ? "(null)" : PQgetvalue(got, i, c);
            if (strcmp(w, g) != 0) {
                BX_FAIL_AT("%s: row %d column %d is \"%s\", expected \"%s\"", what, i, c, g, w);
                return false;
            }
        }
    return true;
}

/* The counts of bxctl report and of the summary for a period, an area and a time, compared. */
static void counts_agree(const char *term, const char *month, const char *area, const char *at)
{
    long long now = ms_of(at);
    reports_period p = {.term = term, .month_first_day = month, .now_ms = now, .area = area};
    PGresult *want = NULL, *got = NULL;
    bx_error err = {0};
    REQUIRE(reports_query_class_counts(db, &p, &want, &err) == BX_OK);
    bx_status s = county_class_counts(db, term, month, now, area, &got, &err);
    if (s != BX_OK)
        BX_FAIL_AT("county_class_counts: %s", err.msg);
    else {
        char what[128];
        snprintf(what, sizeof(what), "counts of %s at %s in '%s'", term ? term : month, at, area);
        same_rows(what, want, got, RQ_BEGUN + 1);
    }
    PQclear(want);
    PQclear(got);
}

static void all_counts_agree(const char *at)
{
    static const char *const months[] = {"2026-08-01", "2026-09-01", "2026-10-01",
                                         "2026-11-01", "2026-12-01", "2027-01-01"};
    static const char *const areas[] = {"99", "990081", "990082", "9900", ""};
    for (size_t a = 0; a < sizeof(areas) / sizeof(areas[0]); a++) {
        counts_agree("2026-autumn", NULL, areas[a], at);
        counts_agree("2027-spring", NULL, areas[a], at); /* no such term */
        for (size_t m = 0; m < sizeof(months) / sizeof(months[0]); m++)
            counts_agree(NULL, months[m], areas[a], at);
    }
}

BX_TEST(class_counts_are_bxctl_reports_at_every_time)
{
    setup();
    /* before the terms, in their first days, at a month's end, at the clock's day, after the
     * roster entries and closings still ahead of it, after the term; then back again */
    static const char *const times[] = {"2026-08-25 12:00", "2026-09-03 08:00", "2026-10-31 23:59",
                                        "2026-11-27 08:12", "2026-12-05 09:00", "2026-12-11 08:00",
                                        "2026-12-16 08:00", "2027-02-01 08:00", "2026-11-27 08:12",
                                        "2026-09-03 08:00"};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        all_counts_agree(times[i]);
}

/* Each write that can change a class's counts, then the counts compared again. */
BX_TEST(class_counts_follow_every_write)
{
    setup();
    static const char *const at = "2026-11-27 08:12";
    all_counts_agree(at);
    static const char *const writes[] = {
        /* a case closed, a roster entry, an ending changed */
        "UPDATE cases.case SET closed_at = '2026-11-26 10:00+08', ending = 'returned' "
        "WHERE id = 1009",
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "VALUES (1001, 'w-r1', 'stage_entered', 'dropout_roster', 'bx-escalate', 'deadline', "
        "'2026-11-24 17:00+08')",
        "UPDATE cases.case SET ending = 'transferred' WHERE id = 1011",
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, "
        "closed_at, ending) VALUES (4001, 'SU040', 'SA1', '2026-10-01 17:00+08', 'home_visit', "
        "now(), '2026-10-20 09:00+08', 'graduated')",
        /* students: status, enrolment date, moved to another class and school, added, removed */
        "UPDATE registry.student SET status = 'dropped_out' WHERE id IN ('SU010', 'SU017')",
        "UPDATE registry.student SET enrolled_on = '2026-11-01' WHERE id = 'SU012'",
        "UPDATE registry.student SET class_id = 'CA21', school_id = 'SA2' WHERE id = 'SU014'",
        "INSERT INTO registry.student (id, school_id, class_id, enrolled_on) VALUES "
        "('SU901', 'SA1', 'CA19', '2026-09-20'), ('SU902', 'SA1', 'CA19', NULL)",
        "DELETE FROM registry.student_private WHERE student_id = 'SU064';"
        "DELETE FROM registry.student WHERE id = 'SU064'",
        /* a class moved to another school, a new class, a term's days, a school's township and
         * calendar */
        "UPDATE registry.class SET school_id = 'SB1' WHERE id = 'CA19'",
        "INSERT INTO registry.class (id, school_id, grade, name) VALUES ('CB12', 'SB1', 1, "
        "'一年级1班')",
        "UPDATE registry.calendar_term SET first_day = '2026-09-10' WHERE calendar_id = 'sum-b'",
        "UPDATE registry.school SET township_code = '990081100', calendar_id = 'sum-a' WHERE id "
        "= 'SA2'"};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        itest_sql_exec(db_url, writes[i]);
        all_counts_agree(at);
    }
    /* every period of every class read again: no mark is left that a row has not seen */
    char *left = itest_sql_rows(db_url, "SELECT count(*) FROM console.class_dirty");
    CHECK_STR(left, "0\n");
    free(left);
}

/* A write still uncommitted while the counts are computed: its mark is not visible to that
 * snapshot, so the rows computed then are recomputed once it commits. */
BX_TEST(class_counts_see_a_write_that_committed_after_them)
{
    setup();
    static const char *const at = "2026-11-27 08:12";
    all_counts_agree(at);
    PGconn *other = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &other, &err) == BX_OK);
    REQUIRE(bx_pg_exec(other,
                       "BEGIN; UPDATE registry.student SET status = 'dropped_out' WHERE id = "
                       "'SU018'; INSERT INTO cases.event (case_id, event_id, kind, stage, actor, "
                       "reason, occurred_at) VALUES (1021, 'w-r2', 'stage_entered', "
                       "'dropout_roster', 'bx-escalate', 'deadline', '2026-11-25 17:00+08')",
                       &err) == BX_OK);
    all_counts_agree(at); /* computed without the write */
    REQUIRE(bx_pg_exec(other, "COMMIT", &err) == BX_OK);
    all_counts_agree(at); /* and now with it */
    PQfinish(other);
}

/* bxctl ledger's rows and the county's page-first rows, for a filter, every order and a page. */
static void ledger_agrees(const char *county, const char *list, const char *township,
                          const char *school, const char *stage, bool overdue, long long now)
{
    for (int sort = REPORTS_SORT_LEDGER; sort <= REPORTS_SORT_STAGE; sort++)
        for (int page = 0; page < 3; page++) {
            reports_ledger_filter f = {.area = county,
                                       .list = list,
                                       .township = township,
                                       .school = school,
                                       .stage = stage,
                                       .overdue_only = overdue,
                                       .names = page != 1,
                                       .now_ms = now,
                                       .sort = (reports_ledger_sort)sort,
                                       .limit = page == 2 ? 0 : 4,
                                       .offset = page == 1 ? 4 : 0};
            PGresult *want = NULL, *got = NULL;
            bx_error err = {0};
            REQUIRE(reports_query_ledger(db, &f, &want, &err) == BX_OK);
            bx_status s = county_ledger_query(db, &f, &got, &err);
            if (s != BX_OK) {
                BX_FAIL_AT("county_ledger_query: %s", err.msg);
            } else {
                char what[160];
                snprintf(what, sizeof(what),
                         "ledger %s list '%s' township '%s' school '%s' "
                         "stage '%s'%s sort %d page %d",
                         county, list, township, school, stage, overdue ? " overdue" : "", sort,
                         page);
                same_rows(what, want, got, RL_NCOLUMNS);
            }
            PQclear(want);
            PQclear(got);
        }
}

/* Every filter (all: each list and overdue with each place and stage filter; else the lists and
 * overdue of the county). */
static void ledgers_agree(const char *at, bool all)
{
    long long now = ms_of(at);
    static const char *const lists[] = {"", "suspected", "dropout", "returned"};
    for (size_t l = 0; l < 4; l++)
        for (int overdue = 0; overdue < 2; overdue++) {
            ledger_agrees("990081", lists[l], "", "", "", overdue, now);
            if (!all)
                continue;
            ledger_agrees("990082", lists[l], "", "", "", overdue, now);
            ledger_agrees("990081", lists[l], "990081200", "", "", overdue, now);
            ledger_agrees("990081", lists[l], "", "SA1", "", overdue, now);
            ledger_agrees("990081", lists[l], "", "", "dropout_roster", overdue, now);
        }
}

/* The dashboard's counts as they were computed before the case summary. */
static void dashboard_agrees(const char *area, const char *at, const char *today)
{
    long long now = ms_of(at);
    char now_text[24];
    snprintf(now_text, sizeof(now_text), "%lld", now);
    bx_error err = {0};
    PGresult *want = NULL, *got = NULL;
    const char *wp[] = {area, today};
    REQUIRE(bx_pg_query(
                db,
                "WITH w AS (SELECT generate_series(date_trunc('week', $2::date) - interval '11 "
                "weeks', date_trunc('week', $2::date), interval '1 week')::date AS wk), "
                "cs AS (SELECT c.opened_at, c.closed_at FROM cases.case c JOIN registry.school s "
                "ON s.id = c.school_id JOIN registry.township t ON t.code = s.township_code WHERE "
                "t.county_code::text LIKE $1 || '%' AND (c.opened_at >= (SELECT min(wk) FROM "
                "w)::timestamp AT TIME ZONE 'Asia/Shanghai' OR c.closed_at >= (SELECT min(wk) "
                "FROM w)::timestamp AT TIME ZONE 'Asia/Shanghai')), "
                "x AS (SELECT date_trunc('week', opened_at AT TIME ZONE 'Asia/Shanghai')::date AS "
                "wk, 1 AS o, 0 AS c FROM cs UNION ALL SELECT date_trunc('week', closed_at AT TIME "
                "ZONE 'Asia/Shanghai')::date, 0, 1 FROM cs WHERE closed_at IS NOT NULL) "
                "SELECT to_char(w.wk, 'MM-DD'), coalesce(sum(x.o), 0), coalesce(sum(x.c), 0) FROM "
                "w LEFT JOIN x ON x.wk = w.wk GROUP BY w.wk ORDER BY w.wk",
                2, wp, &want, &err) == BX_OK);
    REQUIRE(county_weekly_counts(db, area, today, &got, &err) == BX_OK);
    char what[96];
    snprintf(what, sizeof(what), "weeks of '%s' to %s", area, today);
    same_rows(what, want, got, 3);
    PQclear(want);
    PQclear(got);
    for (int by_county = 0; by_county < 2; by_county++) {
        const char *op[] = {area, now_text};
        REQUIRE(
            bx_pg_query(db,
                        by_county
                            ? "SELECT t.county_code::text, count(*) FROM cases.task k JOIN "
                              "cases.case c ON c.id = k.case_id JOIN registry.school s ON s.id = "
                              "c.school_id JOIN registry.township t ON t.code = s.township_code "
                              "WHERE t.county_code::text LIKE $1 || '%' AND k.outcome IS NULL AND "
                              "(k.overdue_at IS NOT NULL OR k.due_at <= to_timestamp($2::bigint / "
                              "1000.0)) GROUP BY 1 ORDER BY 1"
                            : "SELECT s.township_code::text, count(*) FROM cases.task k JOIN "
                              "cases.case c ON c.id = k.case_id JOIN registry.school s ON s.id = "
                              "c.school_id JOIN registry.township t ON t.code = s.township_code "
                              "WHERE t.county_code::text LIKE $1 || '%' AND k.outcome IS NULL AND "
                              "(k.overdue_at IS NOT NULL OR k.due_at <= to_timestamp($2::bigint / "
                              "1000.0)) GROUP BY 1 ORDER BY 1",
                        2, op, &want, &err) == BX_OK);
        REQUIRE(county_overdue_counts(db, area, now, by_county, &got, &err) == BX_OK);
        snprintf(what, sizeof(what), "overdue tasks of '%s' at %s by %s", area, at,
                 by_county ? "county" : "township");
        same_rows(what, want, got, 2);
        PQclear(want);
        PQclear(got);
    }
}

static void dashboards_agree(void)
{
    static const char *const areas[] = {"99", "990081", "990082"};
    static const char *const times[][2] = {{"2026-11-20 08:00", "2026-11-20"},
                                           {"2026-11-27 08:12", "2026-11-27"},
                                           {"2026-12-02 08:00", "2026-12-02"}};
    for (size_t a = 0; a < 3; a++)
        for (size_t t = 0; t < 3; t++)
            dashboard_agrees(areas[a], times[t][0], times[t][1]);
}

BX_TEST(ledger_and_dashboard_counts_are_the_queries_they_replace)
{
    setup();
    ledgers_agree("2026-11-27 08:12", true);
    ledgers_agree("2026-11-21 08:00", true);
    dashboards_agree();
    /* task and case writes: done, overdue-marked, cancelled, a new one; a stage; a case closed;
     * a roster entry; a school moved to another township */
    static const char *const writes[] = {
        "UPDATE cases.task SET done_at = '2026-11-27 07:00+08', done_by = 'SST1' WHERE task_key "
        "= 't-1001-1'",
        "UPDATE cases.task SET overdue_at = '2026-11-27 07:30+08' WHERE task_key = 't-1017-2'",
        "UPDATE cases.task SET outcome = 'cancelled', ended_at = '2026-11-27 07:40+08' WHERE "
        "task_key = 't-1025-3'",
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, created_at, due_at) "
        "VALUES (1033, 't-1033-9', 'report_to_school', 'dropout_roster', 'principal', "
        "'2026-11-26 10:00+08', '2026-11-25 10:00+08')",
        "UPDATE cases.case SET stage = 'township_notice' WHERE id = 1041",
        "UPDATE cases.case SET closed_at = '2026-11-27 08:00+08', ending = 'returned' WHERE id = "
        "1049",
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "VALUES (1025, 'w-r3', 'stage_entered', 'deadline_notice', 'bx-escalate', 'deadline', "
        "'2026-11-26 17:00+08')",
        "UPDATE registry.school SET township_code = '990081100' WHERE id = 'SA2'",
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at) VALUES "
        "(4002, 'SU008', 'SA1', '2026-11-26 17:00+08', 'contact_family', now())",
        /* the responsible staff reassigned; a later opened event (the first one's reason stays);
         * the streak's first day */
        "UPDATE cases.task SET owner_staff_id = 'SST1' WHERE task_key = 't-1033-1'",
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "VALUES (1033, 'w-o1', 'opened', NULL, 'bx-escalate', '又一次', '2026-11-26 17:00+08')",
        "UPDATE cases.case SET state = '{\"streak_start\": 20770}' WHERE id = 1035"};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        itest_sql_exec(db_url, writes[i]);
        ledgers_agree("2026-11-27 08:12", false);
        dashboards_agree();
    }
}
