/* Integration tests of migration 0031's statement-level triggers on a database of the test's own:
 * after writes of many rows in one statement (cases inserted and changed, events, tasks inserted,
 * moved, ended and marked overdue; a batch of fired timers' overdue marks as bx-escalate's store
 * writes them), bx-console's case summary is exactly its recomputation from scratch (migration
 * 0021's own query for the cases already written), and the rates' marks name the classes of the
 * students whose cases ended. */
#include "bx_buf.h"
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_test.h"
#include "store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *db_url;

/* Two counties, three schools (one the registry lacks), 60 students; 40 cases of which 6 closed,
 * each with an opened and a stage event and three tasks. */
static void setup(void)
{
    if (db_url)
        return;
    db_url = itest_own_database("sumbatch");
    itest_sql_exec(
        db_url,
        "INSERT INTO registry.county (code, name) VALUES ('990091', '甲县'), ('990092', '乙县');"
        "INSERT INTO registry.township (code, county_code, name) VALUES "
        "('990091100', '990091', '东镇'), ('990092100', '990092', '南镇');"
        "INSERT INTO registry.calendar (id, name) VALUES ('sb-a', 'A');"
        "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) VALUES "
        "('SBA1', '东镇小学', '990091100', 'primary', 'sb-a'), "
        "('SBB1', '南镇小学', '990092100', 'primary', 'sb-a');"
        "INSERT INTO registry.class (id, school_id, grade, name) VALUES "
        "('CBA1', 'SBA1', 3, '三年级1班'), ('CBA2', 'SBA1', 4, '四年级1班'), "
        "('CBB1', 'SBB1', 2, '二年级1班');"
        "INSERT INTO registry.student (id, school_id, class_id, status) SELECT 'SB' || "
        "lpad(i::text, "
        "3, '0'), CASE WHEN i <= 40 THEN 'SBA1' ELSE 'SBB1' END, CASE WHEN i <= 20 THEN 'CBA1' "
        "WHEN i <= 40 THEN 'CBA2' ELSE 'CBB1' END, 'enrolled' FROM generate_series(1, 60) i;"
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, "
        "closed_at, ending, state) SELECT 5000 + i, 'SB' || lpad(i::text, 3, '0'), CASE WHEN i = "
        "7 THEN 'SZZ' WHEN i <= 20 THEN 'SBA1' ELSE 'SBB1' END, timestamptz '2026-11-02 17:00+08' "
        "+ i * interval '1 hour', CASE WHEN i % 3 = 0 THEN 'dropout_roster' ELSE 'contact_family' "
        "END, now(), CASE WHEN i % 7 = 0 THEN timestamptz '2026-11-20 09:00+08' END, CASE WHEN i % "
        "7 = 0 THEN 'returned' END, jsonb_build_object('case_id', 'SB' || lpad(i::text, 3, '0') || "
        "':202611' || lpad((i % 28 + 1)::text, 2, '0'), 'streak_start', 20700 + i) "
        "FROM generate_series(1, 40) i;"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT c.id, 'o-' || c.id, 'opened', NULL, 'bx-escalate', '连续缺勤 3 天', c.opened_at "
        "FROM cases.case c;"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT c.id, 's-' || c.id, 'stage_entered', c.stage, 'bx-escalate', 'streak', "
        "c.opened_at + interval '1 day' FROM cases.case c;"
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, owner_staff_id, "
        "created_at, due_at) SELECT c.id, 'tb-' || c.id || '-' || n, 'home_visit', c.stage, CASE n "
        "WHEN 1 THEN 'homeroom_teacher' WHEN 2 THEN 'principal' ELSE 'township_officer' END, CASE "
        "WHEN n = 1 THEN 'ST' || c.id END, c.opened_at, timestamptz '2026-11-20 17:00+08' + n * "
        "interval '2 days' + (c.id % 5) * interval '1 hour' FROM cases.case c, "
        "generate_series(1, 3) n WHERE c.closed_at IS NULL;");
}

/* Rows of the summary and of its recomputation from scratch (migration 0021's query) that differ,
 * in either direction: 0 when they are equal. */
#define SUMMARY_COLUMNS                                                                            \
    "case_id, school_id, township, county, student_id, stage, opened_at, closed_at, ending, "      \
    "roster_at, first_absent, reason, reason_event, open_marked, open_dues, owner_role, "          \
    "owner_staff_id"
#define RECOMPUTED                                                                                 \
    "SELECT c.id, c.school_id, coalesce(s.township_code::text, ''), "                              \
    "coalesce(t.county_code::text, ''), c.student_id, coalesce(c.stage, ''), c.opened_at, "        \
    "c.closed_at, c.ending, (SELECT min(e.occurred_at) FROM cases.event e WHERE e.case_id = c.id " \
    "AND e.kind = 'stage_entered' AND cases.on_roster(e.stage)), console.first_absent(c.state), "  \
    "o.reason, o.id, coalesce(k.marked, 0), k.dues, w.owner_role, w.owner_staff_id "               \
    "FROM cases.case c LEFT JOIN registry.school s ON s.id = c.school_id COLLATE \"default\" "     \
    "LEFT JOIN registry.township t ON t.code = s.township_code "                                   \
    "LEFT JOIN (SELECT case_id, count(*) FILTER (WHERE overdue_at IS NOT NULL)::integer AS "       \
    "marked, array_agg(due_at ORDER BY due_at) FILTER (WHERE overdue_at IS NULL) AS dues FROM "    \
    "cases.task WHERE outcome IS NULL GROUP BY case_id) k ON k.case_id = c.id "                    \
    "LEFT JOIN LATERAL (SELECT e.id, e.reason FROM cases.event e WHERE e.case_id = c.id AND "      \
    "e.kind = 'opened' ORDER BY e.id LIMIT 1) o ON true "                                          \
    "LEFT JOIN LATERAL (SELECT k.owner_role, k.owner_staff_id FROM cases.task k WHERE k.case_id "  \
    "= c.id AND k.outcome IS NULL ORDER BY k.due_at, k.id LIMIT 1) w ON true"

static void summary_is_recomputed(const char *after)
{
    long long differ = itest_sql_count(
        db_url, "SELECT count(*) FROM ((SELECT " SUMMARY_COLUMNS " FROM console.case_summary "
                "EXCEPT " RECOMPUTED ") UNION ALL (" RECOMPUTED " EXCEPT SELECT " SUMMARY_COLUMNS
                " FROM console.case_summary)) d");
    if (differ != 0) {
        char *rows = itest_sql_rows(db_url, "SELECT " SUMMARY_COLUMNS
                                            " FROM console.case_summary EXCEPT " RECOMPUTED);
        BX_FAIL_AT("after %s: %lld summary rows differ from their recomputation; stale rows:\n%s",
                   after, differ, rows);
        free(rows);
    }
    /* the summary has rows to compare: the writes are seen, not an empty table */
    CHECK(itest_sql_count(db_url, "SELECT count(*) FROM console.case_summary") >= 40);
}

BX_TEST(summary_is_its_recomputation_after_multi_row_writes)
{
    setup();
    summary_is_recomputed("the setup");
    static const char *const writes[] = {
        /* cases: many inserted at once, some closed */
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, "
        "closed_at, ending, state) SELECT 6000 + i, 'SB' || lpad((40 + i)::text, 3, '0'), 'SBB1', "
        "'2026-11-10 17:00+08', 'contact_family', now(), CASE WHEN i % 4 = 0 THEN timestamptz "
        "'2026-11-25 09:00+08' END, CASE WHEN i % 4 = 0 THEN 'transferred' END, "
        "jsonb_build_object('streak_start', 20760 + i) FROM generate_series(1, 12) i",
        /* events: two opened per case out of id order, roster entries and others, many cases */
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT c.id, 'e' || n || '-' || c.id, CASE WHEN n <= 2 THEN 'opened' WHEN n = 3 THEN "
        "'stage_entered' ELSE 'task_overdue' END, CASE n WHEN 3 THEN CASE WHEN c.id % 2 = 0 THEN "
        "'dropout_roster' ELSE 'contact_family' END WHEN 4 THEN 'township_notice' END, "
        "'bx-escalate', 'reason ' || (3 - n), timestamptz '2026-11-21 17:00+08' - n * interval "
        "'1 hour' FROM cases.case c, generate_series(1, 4) n WHERE c.id >= 6000 OR c.id % 3 = 1 "
        "ORDER BY c.id, n DESC",
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "SELECT c.id, 'e5-' || c.id, 'stage_entered', 'township_notice', 'bx-escalate', "
        "'deadline', '2026-11-01 17:00+08' FROM cases.case c WHERE c.id % 5 = 0",
        /* tasks: many inserted, some of them ended already */
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, created_at, due_at, "
        "outcome, ended_at) SELECT c.id, 'tn-' || c.id || '-' || n, 'report_to_school', c.stage, "
        "'principal', '2026-11-21 10:00+08', timestamptz '2026-11-19 10:00+08' + n * interval "
        "'1 day', CASE WHEN n = 2 THEN 'cancelled' END, CASE WHEN n = 2 THEN timestamptz "
        "'2026-11-22 10:00+08' END FROM cases.case c, generate_series(1, 2) n WHERE c.id >= 6000",
        /* tasks marked overdue, many at once, as a batch of fired timers writes them */
        "UPDATE cases.task t SET overdue_at = u.a FROM unnest((SELECT array_agg(task_key ORDER BY "
        "task_key) FROM cases.task WHERE task_key LIKE 'tb-%-2'), (SELECT array_agg(timestamptz "
        "'2026-11-27 10:00+08') FROM cases.task WHERE task_key LIKE 'tb-%-2')) AS u(k, a) WHERE "
        "t.task_key = u.k AND t.overdue_at IS NULL",
        /* tasks moved to another case; reassigned; re-dated; ended; done */
        "UPDATE cases.task SET case_id = case_id + 1 WHERE task_key LIKE 'tb-%-3' AND case_id % "
        "4 = 1",
        "UPDATE cases.task SET owner_staff_id = 'SX' || id, owner_role = 'principal' WHERE "
        "task_key LIKE 'tb-%-1' AND case_id % 2 = 0",
        "UPDATE cases.task SET due_at = due_at - interval '5 days' WHERE case_id % 3 = 2",
        "UPDATE cases.task SET outcome = 'cancelled', ended_at = '2026-11-27 09:00+08' WHERE "
        "case_id IN (SELECT id FROM cases.case WHERE id % 6 = 1) AND outcome IS NULL",
        "UPDATE cases.task SET done_at = '2026-11-27 07:00+08', done_by = 'SST1', outcome = "
        "'done', ended_at = '2026-11-27 07:00+08' WHERE task_key LIKE 'tb-%-1' AND outcome IS "
        "NULL",
        /* cases: stages, closings, the streak, a school moved, a write that changes no column
         * the summary reads */
        "UPDATE cases.case SET stage = 'township_notice', updated_at = now() WHERE id % 4 = 2",
        "UPDATE cases.case SET closed_at = '2026-11-27 08:00+08', ending = 'returned' WHERE id % "
        "5 = 3 AND closed_at IS NULL",
        "UPDATE cases.case SET state = state || '{\"streak_start\": 20799}' WHERE id % 3 = 0",
        "UPDATE cases.case SET school_id = 'SBA1' WHERE id BETWEEN 5025 AND 5030",
        "UPDATE cases.case SET updated_at = now()",
        /* several statements of one transaction */
        "BEGIN; UPDATE cases.task SET overdue_at = '2026-11-28 10:00+08' WHERE overdue_at IS NULL "
        "AND outcome IS NULL AND case_id % 2 = 1; INSERT INTO cases.event (case_id, event_id, "
        "kind, stage, actor, reason, occurred_at) SELECT id, 'z-' || id, 'opened', NULL, 'x', "
        "'earlier', '2026-11-01 17:00+08' FROM cases.case WHERE id % 2 = 1; UPDATE cases.case SET "
        "stage = 'dropout_roster' WHERE id % 2 = 1; COMMIT",
        "UPDATE registry.school SET township_code = '990091100' WHERE id = 'SBB1'"};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        itest_sql_exec(db_url, writes[i]);
        char what[80];
        snprintf(what, sizeof(what), "write %zu", i + 1);
        summary_is_recomputed(what);
    }
}

BX_TEST(a_batch_of_overdue_marks_from_the_store_keeps_the_summary_exact)
{
    setup();
    bx_error err = {0};
    PGconn *db = NULL;
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    escalate_store_batch *q = NULL;
    REQUIRE(escalate_store_batch_new(&q, &err) == BX_OK);
    char *keys = itest_sql_rows(db_url, "SELECT task_key FROM cases.task WHERE overdue_at IS NULL "
                                        "AND outcome IS NULL ORDER BY task_key");
    REQUIRE(keys != NULL);
    int queued = 0;
    REQUIRE(bx_pg_exec(db, "BEGIN", &err) == BX_OK);
    for (char *line = strtok(keys, "\n"); line; line = strtok(NULL, "\n")) {
        REQUIRE(escalate_store_queue_overdue(db, q, line, "2026-11-27T10:00:00+08:00", &err) ==
                BX_OK);
        queued++;
    }
    REQUIRE(escalate_store_batch_flush(db, q, &err) == BX_OK);
    REQUIRE(bx_pg_exec(db, "COMMIT", &err) == BX_OK);
    CHECK(queued > 10);
    CHECK_INT(itest_sql_count(db_url, "SELECT count(*) FROM cases.task WHERE overdue_at IS NULL "
                                      "AND outcome IS NULL"),
              0);
    summary_is_recomputed("a batch of overdue marks");
    free(keys);
    escalate_store_batch_free(q);
    PQfinish(db);
}

BX_TEST(cases_ended_together_mark_their_students_classes)
{
    setup();
    itest_sql_exec(db_url, "DELETE FROM console.class_dirty");
    /* students 1-20 are in CBA1, 21-40 in CBA2: end open cases of CBA2's students only */
    itest_sql_exec(db_url, "UPDATE cases.case SET closed_at = '2026-11-29 08:00+08', ending = "
                           "'transferred' WHERE closed_at IS NULL AND student_id BETWEEN 'SB021' "
                           "AND 'SB040'");
    CHECK_INT(itest_sql_count(db_url, "SELECT count(DISTINCT class_id) FROM console.class_dirty"),
              1);
    CHECK_INT(
        itest_sql_count(db_url, "SELECT count(*) FROM console.class_dirty WHERE class_id = 'CBA2'"),
        1);
    /* a change the rates do not read marks nothing */
    itest_sql_exec(db_url, "DELETE FROM console.class_dirty");
    itest_sql_exec(db_url, "UPDATE cases.case SET stage = 'contact_family' WHERE id % 2 = 0");
    CHECK_INT(itest_sql_count(db_url, "SELECT count(*) FROM console.class_dirty"), 0);
    /* a roster entry marks its student's class */
    itest_sql_exec(db_url,
                   "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, "
                   "occurred_at) SELECT id, 'ro-' || id, 'stage_entered', "
                   "'dropout_roster', 'x', 'deadline', '2026-11-29 17:00+08' FROM "
                   "cases.case WHERE student_id IN ('SB003', 'SB033')");
    CHECK_INT(itest_sql_count(db_url, "SELECT count(*) FROM console.class_dirty WHERE class_id IN "
                                      "('CBA1', 'CBA2')"),
              2);
    summary_is_recomputed("ended cases and roster entries");
}

/* ---- the open-task summary planned for the tables as they are (migration 0035) ---- */

static void collect_notice(void *arg, const char *message)
{
    if (bx_buf_append(arg, message, strlen(message)) != BX_OK)
        fprintf(stderr, "a plan was not kept: out of memory\n");
}

/* What one session of bx-escalate meets on a new county's first morning: the task trigger's
 * function runs several times while cases.task and console.case_summary are nearly empty (a plan
 * cache keeps a generic plan after five calls), then the tables grow by thousands of rows with no
 * ANALYZE in between. The summary's UPDATE of the next batch must then find its rows by index
 * (auto_explain's plan of the nested statement), not scan the grown summary whole. */
BX_TEST(the_task_summary_is_planned_for_the_tables_as_they_are)
{
    const char *url = itest_own_database("sumbatch"); /* the file's database, its own ids */
    itest_sql_exec(
        url, "ALTER TABLE cases.task SET (autovacuum_enabled = false);"
             "ALTER TABLE console.case_summary SET (autovacuum_enabled = false);"
             "ALTER TABLE cases.case SET (autovacuum_enabled = false);"
             "INSERT INTO registry.county (code, name) VALUES ('990093', '丙县');"
             "INSERT INTO registry.township (code, county_code, name) VALUES "
             "('990093100', '990093', '西镇');"
             "INSERT INTO registry.calendar (id, name) VALUES ('sp-a', 'A');"
             "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) VALUES "
             "('SPA1', '西镇小学', '990093100', 'primary', 'sp-a');"
             "INSERT INTO registry.class (id, school_id, grade, name) VALUES "
             "('CPA1', 'SPA1', 3, '三年级1班');"
             "INSERT INTO registry.student (id, school_id, class_id, status) SELECT 'SP' || i, "
             "'SPA1', 'CPA1', 'enrolled' FROM generate_series(1, 20010) i;"
             "ANALYZE registry.student");
    bx_error err = {0};
    PGconn *db = NULL;
    REQUIRE(bx_pg_connect(url, 5000, &db, &err) == BX_OK);
    static const char case_sql[] =
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, state) "
        "SELECT 100000 + i, 'SP' || i, 'SPA1', '2026-11-02 17:00+08', 'contact_family', now(), "
        "'{}' "
        "FROM generate_series(%d, %d) i";
    static const char task_sql[] =
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, created_at, due_at) "
        "SELECT 100000 + i, 'tp-' || i, 'home_visit', 'contact_family', 'homeroom_teacher', "
        "'2026-11-02 17:00+08', '2026-11-05 17:00+08' FROM generate_series(%d, %d) i";
    char sql[512];
    /* eight small batches while the tables are nearly empty */
    for (int i = 1; i <= 8; i++) {
        snprintf(sql, sizeof(sql), case_sql, i, i);
        REQUIRE(bx_pg_exec(db, sql, &err) == BX_OK);
        snprintf(sql, sizeof(sql), task_sql, i, i);
        REQUIRE(bx_pg_exec(db, sql, &err) == BX_OK);
    }
    /* the morning: 20,000 cases and their tasks, in batches as bx-escalate writes them */
    for (int from = 9; from <= 20008; from += 500) {
        snprintf(sql, sizeof(sql), case_sql, from, from + 499);
        REQUIRE(bx_pg_exec(db, sql, &err) == BX_OK);
        snprintf(sql, sizeof(sql), task_sql, from, from + 499);
        REQUIRE(bx_pg_exec(db, sql, &err) == BX_OK);
    }
    CHECK_INT(itest_sql_count(url, "SELECT count(*) FROM console.case_summary WHERE case_id > "
                                   "100000 AND open_dues IS NOT NULL"),
              20008);
    /* the next batch, with its plans shown */
    bx_buf plans;
    bx_buf_init(&plans, 1u << 20);
    PQsetNoticeProcessor(db, collect_notice, &plans);
    REQUIRE(bx_pg_exec(db,
                       "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
                       "SET auto_explain.log_nested_statements = on; "
                       "SET client_min_messages = log",
                       &err) == BX_OK);
    snprintf(sql, sizeof(sql), case_sql, 20009, 20010);
    REQUIRE(bx_pg_exec(db, sql, &err) == BX_OK);
    bx_buf_reset(&plans);
    snprintf(sql, sizeof(sql), task_sql, 20009, 20010);
    REQUIRE(bx_pg_exec(db, sql, &err) == BX_OK);
    REQUIRE(plans.data != NULL);
    /* auto_explain's entries: "duration: ... plan:", "Query Text: <statement>", the plan */
    const char *update = strstr(plans.data, "Query Text:     UPDATE console.case_summary x");
    if (update == NULL)
        update = strstr(plans.data, "UPDATE console.case_summary x");
    REQUIRE(update != NULL);
    const char *plan_end = strstr(update, "duration:");
    size_t len = plan_end ? (size_t)(plan_end - update) : strlen(update);
    char *plan = strndup(update, len);
    REQUIRE(plan != NULL);
    if (strstr(plan, "Seq Scan on case_summary") != NULL ||
        strstr(plan, "Seq Scan on task") != NULL)
        BX_FAIL_AT("the summary's UPDATE scans a grown table whole:\n%s", plan);
    CHECK(strstr(plan, "Index Scan using case_summary_pkey") != NULL);
    CHECK_INT(itest_sql_count(url, "SELECT count(*) FROM console.case_summary WHERE case_id > "
                                   "100000 AND open_dues IS NOT NULL"),
              20010);
    free(plan);
    bx_buf_free(&plans);
    PQfinish(db);
}
