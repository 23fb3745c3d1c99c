/* bx-escalate's deadline timers fired as the service fires them (escalate_store_fire_deadline in
 * timers_fire_due_prepared's batches), against the real PostgreSQL, on a database of the test's
 * own: with the batch's case rows read in one statement and their updates written in one
 * (escalate_store_prefetch_cases), every case ends exactly as a twin case whose rows are read and
 * written one firing at a time, through a chain of deadlines (each firing's escalation schedules
 * the next), several timers of one case in one batch, and concurrent firers; each timer fires
 * once; and a batch that fails leaves no trace, the kept case rows included. */
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_pseudonym.h"
#include "bx_registry.h"
#include "bx_test.h"
#include "ladder.h"
#include "store.h"
#include "timers.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASES 12 /* of each twin set */

static const char *db_url;
static ladder_policy policy;
static bx_registry *registry;

static PGconn *pg(void)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    return db;
}

static bx_time_ms ms_of(PGconn *db, const char *ts)
{
    PGresult *res = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_query(db, "SELECT (extract(epoch FROM $1::timestamptz) * 1000)::bigint", 1,
                        (const char *[]){ts}, &res, &err) == BX_OK);
    bx_time_ms ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return ms;
}

/* Scratch a firing needs (large: not on the stack). */
typedef struct firer {
    escalate_store_batch *q;
    case_state before, after;
    ladder_effects fx;
    const char *kept_prefix; /* cases whose timers' keys start so are prefetched; NULL: all */
    int batches;
} firer;

static escalate_store_firing firing_of(firer *f)
{
    return (escalate_store_firing){
        &policy,   registry, "test-pseudonym-key", "bx.analytics.cases.v1", f->q, &f->before,
        &f->after, &f->fx};
}

/* timers_prepare_fn: the kept twin's cases (or all) prefetched; the other twin's read one by
 * one, as before the batch read them together. */
static bx_status prepare(PGconn *db, const timers_list *list, void *arg, bx_error *err)
{
    firer *f = arg;
    timers_list mine = {calloc((size_t)list->count, sizeof(timers_timer)), 0};
    REQUIRE(mine.items != NULL);
    for (int i = 0; i < list->count; i++)
        if (f->kept_prefix == NULL ||
            strncmp(list->items[i].key, f->kept_prefix, strlen(f->kept_prefix)) == 0)
            mine.items[mine.count++] = list->items[i];
    const escalate_store_firing fi = firing_of(f);
    bx_status s = escalate_store_prefetch_cases(db, &fi, &mine, err);
    free(mine.items); /* the items' payloads stay the list's */
    return s;
}

static bx_status fire(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    firer *f = arg;
    const escalate_store_firing fi = firing_of(f);
    int added = 0;
    return escalate_store_fire_deadline(db, &fi, timer, &added, err);
}

static bx_status flush(PGconn *db, void *arg, bx_error *err)
{
    firer *f = arg;
    return escalate_store_batch_flush(db, f->q, err);
}

static firer *firer_new(const char *kept_prefix)
{
    firer *f = calloc(1, sizeof(*f));
    REQUIRE(f != NULL);
    bx_error err = {0};
    REQUIRE(escalate_store_batch_new(&f->q, &err) == BX_OK);
    f->kept_prefix = kept_prefix;
    return f;
}

static void firer_free(firer *f)
{
    escalate_store_batch_free(f->q);
    free(f);
}

/* Fires batches of up to max until none is due at now; the count fired. */
static int fire_until_none(PGconn *db, firer *f, const char *owner, bx_time_ms now, int max)
{
    int total = 0;
    for (;;) {
        int fired = 0;
        timers_list failed = {0};
        bx_error err = {0};
        escalate_store_batch_clear(f->q);
        bx_status s = timers_fire_due_prepared(db, owner, now, max, prepare, fire, flush, f, &fired,
                                               &failed, &err);
        if (s != BX_OK)
            fprintf(stderr, "batch: %s\n", err.msg);
        REQUIRE(s == BX_OK);
        timers_list_free(&failed);
        if (fired == 0)
            return total;
        total += fired;
        f->batches++;
    }
}

/* Registry: one school of a calendar with the autumn term; students QA001.. and QB001.. (the
 * twins), QC001.. (for the concurrent firers), in one class. */
static void setup(void)
{
    if (db_url)
        return;
    db_url = itest_own_database("firing");
    itest_sql_exec(
        db_url,
        "INSERT INTO registry.county (code, name) VALUES ('990071', '甲县');"
        "INSERT INTO registry.township (code, county_code, name) VALUES ('990071100', '990071', "
        "'东镇');"
        "INSERT INTO registry.calendar (id, name) VALUES ('fc', 'F');"
        "INSERT INTO registry.calendar_term (calendar_id, code, first_day, last_day) VALUES "
        "('fc', '2026-autumn', '2026-09-01', '2027-01-22');"
        "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) VALUES "
        "('QS1', '东镇小学', '990071100', 'primary', 'fc');"
        "INSERT INTO registry.class (id, school_id, grade, name) VALUES ('QC1', 'QS1', 3, "
        "'三年级1班');"
        "INSERT INTO registry.student (id, school_id, class_id, status) SELECT p || lpad(i::text, "
        "3, '0'), 'QS1', 'QC1', 'enrolled' FROM generate_series(1, 40) i, unnest(ARRAY['QA', "
        "'QB', 'QC']) p;"
        "INSERT INTO registry.student_private (student_id, name, sex, birth_date) SELECT id, "
        "'学生', CASE WHEN id LIKE '%1' THEN 'F' ELSE 'M' END, date '2017-03-01' FROM "
        "registry.student;");
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/ladder.policy", src ? src : ".");
    bx_error err = {0};
    if (ladder_policy_load(path, &policy, &err) != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(policy.nstages > 0);
    PGconn *db = pg();
    REQUIRE(bx_registry_load(db, &registry, &err) == BX_OK);
    PQfinish(db);
}

/* Opens a case for each of the students prefix001..prefix<n> as a calendar duty does (a suspected
 * dropout), half at contact_family (one task), half at school_report (three tasks, so one batch
 * fires several timers of one case), written at once with their tasks and timers. */
static void open_cases(PGconn *db, const char *prefix, int n)
{
    firer *f = firer_new(NULL);
    bx_error err = {0};
    bx_time_ms at = ms_of(db, "2026-11-02 09:00+08");
    REQUIRE(bx_pg_exec(db, "BEGIN", &err) == BX_OK);
    for (int i = 1; i <= n; i++) {
        char sid[16];
        snprintf(sid, sizeof(sid), "%s%03d", prefix, i);
        REQUIRE(case_state_init(&f->before, sid, &err) == BX_OK);
        ladder_input in;
        memset(&in, 0, sizeof(in));
        in.kind = LADDER_IN_SUSPECTED;
        in.at = at;
        in.date = bx_time_local_date(at);
        in.return_date = in.first_date = in.last_date = in.streak_start = BX_DATE_NONE;
        snprintf(in.event_id, sizeof(in.event_id), "open:%s", sid);
        snprintf(in.reason, sizeof(in.reason), "test");
        snprintf(in.stage_name, sizeof(in.stage_name), "%s",
                 i % 2 ? "contact_family" : "school_report");
        const bx_reg_student *student = bx_registry_student(registry, sid);
        REQUIRE(student != NULL);
        REQUIRE(ladder_step(&policy, student->school->calendar, &f->before, &in, &f->after, &f->fx,
                            &err) == BX_OK);
        escalate_store_case row = {0};
        const escalate_store_step step = {&row,   "QS1", student, &f->before, &f->after,
                                          &f->fx, NULL,  NULL,    0};
        int added = 0;
        bx_status s = escalate_store_write_step(db, &policy, &step, &added, &err);
        if (s != BX_OK)
            fprintf(stderr, "open %s: %s\n", sid, err.msg);
        REQUIRE(s == BX_OK);
    }
    REQUIRE(bx_pg_exec(db, "COMMIT", &err) == BX_OK);
    firer_free(f);
}

/* Rows of twin A (QA...) that differ from twin B's (QB...) with the ids swapped: states, stages,
 * closings, events, tasks, timers, outbox rows. */
static long long twin_differences(PGconn *db)
{
    static const char *const sql =
        "WITH a AS (SELECT replace(x, 'QA0', 'QB0') AS x FROM ("
        "  SELECT concat_ws('|', c.student_id, c.stage, c.closed_at, c.ending, c.state::text) "
        "    FROM cases.case c WHERE c.student_id LIKE 'QA%' "
        "  UNION ALL SELECT concat_ws('|', e.event_id, e.kind, e.stage, e.reason, e.occurred_at, "
        "    e.payload::text) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
        "    WHERE c.student_id LIKE 'QA%' "
        "  UNION ALL SELECT concat_ws('|', k.task_key, k.kind, k.due_at, k.overdue_at, k.outcome, "
        "    k.owner_role) FROM cases.task k WHERE k.task_key LIKE 'QA%' "
        "  UNION ALL SELECT concat_ws('|', t.timer_key, t.due_at, t.fired_at IS NULL, t.cancelled) "
        "    FROM cases.timer t WHERE t.timer_key LIKE 'QA%' "
        "  UNION ALL SELECT concat_ws('|', o.topic, o.msg_key, o.payload::jsonb->>'grade_band', "
        "    o.payload::jsonb->>'sex', o.payload::jsonb->>'kind') FROM cases.outbox o "
        "    WHERE o.msg_key LIKE 'QA%' OR o.payload LIKE '%QA0%') r(x)), "
        "b AS (SELECT x FROM ("
        "  SELECT concat_ws('|', c.student_id, c.stage, c.closed_at, c.ending, c.state::text) "
        "    FROM cases.case c WHERE c.student_id LIKE 'QB%' "
        "  UNION ALL SELECT concat_ws('|', e.event_id, e.kind, e.stage, e.reason, e.occurred_at, "
        "    e.payload::text) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
        "    WHERE c.student_id LIKE 'QB%' "
        "  UNION ALL SELECT concat_ws('|', k.task_key, k.kind, k.due_at, k.overdue_at, k.outcome, "
        "    k.owner_role) FROM cases.task k WHERE k.task_key LIKE 'QB%' "
        "  UNION ALL SELECT concat_ws('|', t.timer_key, t.due_at, t.fired_at IS NULL, t.cancelled) "
        "    FROM cases.timer t WHERE t.timer_key LIKE 'QB%' "
        "  UNION ALL SELECT concat_ws('|', o.topic, o.msg_key, o.payload::jsonb->>'grade_band', "
        "    o.payload::jsonb->>'sex', o.payload::jsonb->>'kind') FROM cases.outbox o "
        "    WHERE o.msg_key LIKE 'QB%' OR o.payload LIKE '%QB0%') r(x)) "
        "SELECT (SELECT count(*) FROM (SELECT x FROM a EXCEPT ALL SELECT x FROM b) d) + "
        "(SELECT count(*) FROM (SELECT x FROM b EXCEPT ALL SELECT x FROM a) d)";
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(db, sql, 0, NULL, &res, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(s == BX_OK);
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* The analysts' rows of a student (keyed by its pseudonym): bands and events, in order. */
static char *analysts_rows(const char *student)
{
    char subject[BX_PSEUDONYM_SIZE];
    bx_pseudonym("test-pseudonym-key", student, subject);
    char *rows = itest_sql_rows_params(
        db_url,
        "SELECT concat_ws('|', payload::jsonb->>'grade_band', payload::jsonb->>'sex', "
        "payload::jsonb->>'event', payload::jsonb->>'stage') FROM cases.outbox WHERE topic = "
        "'bx.analytics.cases.v1' AND msg_key = $1 ORDER BY id",
        1, (const char *[]){subject});
    REQUIRE(rows != NULL);
    return rows;
}

static long long count_of(PGconn *db, const char *sql)
{
    PGresult *res = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_query(db, sql, 0, NULL, &res, &err) == BX_OK);
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

BX_TEST(kept_cases_end_as_cases_read_one_firing_at_a_time)
{
    setup();
    PGconn *db = pg();
    open_cases(db, "QA", CASES);
    open_cases(db, "QB", CASES);
    CHECK_INT(twin_differences(db), 0);
    long long timers = count_of(db, "SELECT count(*) FROM cases.timer");
    CHECK(timers > 2 * CASES);
    /* QA's cases prefetched and written by the flush, QB's read and written one by one */
    firer *f = firer_new("QA");
    int fired = fire_until_none(db, f, "tester", ms_of(db, "2026-12-20 09:00+08"), 500);
    fprintf(stderr, "%lld timers at first; %d fired in %d batches\n", timers, fired, f->batches);
    /* a chain: each deadline's escalation scheduled the next, fired by a later batch */
    CHECK(f->batches >= 2);
    CHECK(fired > timers);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND due_at <= "
                           "'2026-12-20 09:00+08'"),
              0);
    /* once each: a timer fired by a batch is counted once, and no event was written twice
     * (each overdue task once) */
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE attempts <> 1 AND NOT "
                           "cancelled AND fired_at IS NOT NULL"),
              0);
    CHECK_INT(
        count_of(db,
                 "SELECT count(*) FROM (SELECT task_id FROM (SELECT payload->'task'->>'task_id' "
                 "AS task_id FROM cases.event WHERE kind = 'task_overdue') e GROUP BY "
                 "task_id HAVING count(*) > 1) d"),
        0);
    CHECK(count_of(db, "SELECT count(*) FROM cases.event WHERE kind = 'task_overdue'") > CASES);
    long long differ = twin_differences(db);
    if (differ != 0) {
        char *rows = itest_sql_rows(db_url, "SELECT student_id, stage, state::text FROM cases.case "
                                            "ORDER BY student_id");
        fprintf(stderr, "%s\n", rows);
        free(rows);
    }
    CHECK_INT(differ, 0);
    /* the analysts' messages alike, their bands read for the batch (QA) or one by one (QB) */
    for (int i = 1; i <= CASES; i++) {
        char a[16], b[16];
        snprintf(a, sizeof(a), "QA%03d", i);
        snprintf(b, sizeof(b), "QB%03d", i);
        char *ra = analysts_rows(a), *rb = analysts_rows(b);
        CHECK(strlen(ra) > 0);
        CHECK_STR(ra, rb);
        free(ra);
        free(rb);
    }
    /* nothing is left to fire twice */
    CHECK_INT(fire_until_none(db, f, "tester", ms_of(db, "2026-12-20 09:00+08"), 500), 0);
    firer_free(f);
    PQfinish(db);
}

typedef struct thread_arg {
    firer *f;
    char owner[32];
    int fired;
    bx_time_ms now;
} thread_arg;

static void *fire_thread(void *arg)
{
    thread_arg *t = arg;
    PGconn *db = pg();
    t->fired = fire_until_none(db, t->f, t->owner, t->now, 7);
    PQfinish(db);
    return NULL;
}

BX_TEST(three_firers_of_kept_cases_fire_each_timer_once)
{
    setup();
    PGconn *db = pg();
    open_cases(db, "QC", 40);
    bx_time_ms now = ms_of(db, "2026-11-20 09:00+08");
    static thread_arg t[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        t[i].f = firer_new(NULL);
        t[i].now = now;
        snprintf(t[i].owner, sizeof(t[i].owner), "firer-%d", i);
        REQUIRE(pthread_create(&th[i], NULL, fire_thread, &t[i]) == 0);
    }
    int fired = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        fired += t[i].fired;
        firer_free(t[i].f);
    }
    CHECK_INT(fired, (int)count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT "
                                       "NULL AND NOT cancelled"));
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND due_at <= "
                           "'2026-11-20 09:00+08'"),
              0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE attempts > 1"), 0);
    CHECK_INT(count_of(db,
                       "SELECT count(*) FROM (SELECT payload->'task'->>'task_id' FROM cases.event "
                       "WHERE kind = 'task_overdue' GROUP BY 1 HAVING count(*) > 1) d"),
              0);
    /* every case event has its one outbox row */
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.event e WHERE NOT EXISTS (SELECT 1 FROM "
                           "cases.outbox o WHERE o.event_id = e.event_id)"),
              0);
    PQfinish(db);
}

BX_TEST(a_failing_batch_of_kept_cases_leaves_no_trace)
{
    setup();
    PGconn *db = pg();
    open_cases(db, "QA", 4);
    /* a case of a school the registry lacks, for a student it lacks: its firing fails */
    itest_sql_exec(db_url, "UPDATE cases.case SET school_id = 'NOSCHOOL', student_id = 'QZ001', "
                           "state = jsonb_set(state, '{student_id}', '\"QZ001\"') WHERE "
                           "student_id = 'QA004'");
    char *before = itest_sql_rows(db_url, "SELECT id, stage, state::text, updated_at FROM "
                                          "cases.case ORDER BY id");
    long long events = count_of(db, "SELECT count(*) FROM cases.event");
    firer *f = firer_new(NULL);
    int fired = -1;
    timers_list failed = {0};
    bx_error err = {0};
    escalate_store_batch_clear(f->q);
    CHECK(timers_fire_due_prepared(db, "failer", ms_of(db, "2026-12-20 09:00+08"), 500, prepare,
                                   fire, flush, f, &fired, &failed, &err) != BX_OK);
    CHECK_INT(fired, 0);
    CHECK(failed.count >= 4);
    timers_list_free(&failed);
    escalate_store_batch_clear(f->q);
    char *after = itest_sql_rows(db_url, "SELECT id, stage, state::text, updated_at FROM "
                                         "cases.case ORDER BY id");
    CHECK_STR(after, before);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.event"), events);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT NULL"), 0);
    free(before);
    free(after);
    firer_free(f);
    PQfinish(db);
}

/* Migration 0031's row checks (no bounded repetitions) take and refuse what 0004's took and
 * refused: the bounds exactly, the characters, NULL where it was allowed. */
BX_TEST(case_rows_are_checked_as_before)
{
    setup();
    PGconn *db = pg();
    itest_sql_exec(db_url, "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, "
                           "updated_at) VALUES (9001, 'QA001', 'QS1', now(), 'home_visit', now())");
    static const struct {
        bool ok;
        const char *sql;
    } rows[] = {
        {true, "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, occurred_at) "
               "VALUES (9001, repeat('e', 128), 'note', repeat('s', 64), repeat('a', 64), now())"},
        {true, "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, occurred_at) "
               "VALUES (9001, 'A.z_0:9-x', 'note', NULL, 'bx-escalate', now())"},
        {false, "INSERT INTO cases.event (case_id, event_id, kind, actor, occurred_at) VALUES "
                "(9001, repeat('e', 129), 'note', 'x', now())"},
        {false, "INSERT INTO cases.event (case_id, event_id, kind, actor, occurred_at) VALUES "
                "(9001, '', 'note', 'x', now())"},
        {false, "INSERT INTO cases.event (case_id, event_id, kind, actor, occurred_at) VALUES "
                "(9001, 'a b', 'note', 'x', now())"},
        {false, "INSERT INTO cases.event (case_id, event_id, kind, actor, occurred_at) VALUES "
                "(9001, 'e-65', 'note', repeat('a', 65), now())"},
        {false, "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, occurred_at) "
                "VALUES (9001, 'e-st', 'note', 'Home', 'x', now())"},
        {false, "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, occurred_at) "
                "VALUES (9001, 'e-st2', 'note', repeat('s', 65), 'x', now())"},
        {true, "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, "
               "owner_staff_id, created_at, due_at) VALUES (9001, repeat('k', 128), "
               "repeat('k', 64), 'home_visit', 'principal', repeat('s', 32), now(), now())"},
        {false, "INSERT INTO cases.task (case_id, task_key, kind, owner_role, created_at, "
                "due_at) VALUES (9001, repeat('k', 129), 'home_visit', 'principal', now(), now())"},
        {false, "INSERT INTO cases.task (case_id, task_key, kind, owner_role, owner_staff_id, "
                "created_at, due_at) VALUES (9001, 'k-33', 'home_visit', 'principal', "
                "repeat('s', 33), now(), now())"},
        {false, "INSERT INTO cases.task (case_id, task_key, kind, owner_role, owner_staff_id, "
                "created_at, due_at) VALUES (9001, 'k-dot', 'home_visit', 'principal', 'a.b', "
                "now(), now())"},
        {false, "INSERT INTO cases.task (case_id, task_key, kind, owner_role, created_at, "
                "due_at) VALUES (9001, 'k-kind', '1visit', 'principal', now(), now())"},
        {true, "INSERT INTO cases.outbox (topic, msg_key, payload, event_id) VALUES ('b' || "
               "repeat('x', 99), 'k', '{}', repeat('o', 128))"},
        {false, "INSERT INTO cases.outbox (topic, msg_key, payload, event_id) VALUES ('b' || "
                "repeat('x', 100), 'k', '{}', 'o-101')"},
        {false, "INSERT INTO cases.outbox (topic, msg_key, payload, event_id) VALUES ('Bx', 'k', "
                "'{}', 'o-up')"},
        {false, "INSERT INTO cases.outbox (topic, msg_key, payload, event_id) VALUES ('bx', 'k', "
                "'{}', repeat('o', 129))"},
        {false, "INSERT INTO cases.case (student_id, school_id, opened_at, updated_at) VALUES "
                "(repeat('s', 33), 'QS1', now(), now())"},
        {false, "INSERT INTO cases.case (student_id, school_id, opened_at, updated_at) VALUES "
                "('QA002', 'a:b', now(), now())"},
        {true, "INSERT INTO cases.case (student_id, school_id, opened_at, stage, updated_at) "
               "VALUES (repeat('s', 32), repeat('h', 32), now(), repeat('s', 64), now())"},
        {false, "INSERT INTO cases.timer (timer_key, kind, due_at) VALUES ('t-k', 'Deadline', "
                "now())"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bx_error err = {0};
        bool ok = bx_pg_exec(db, rows[i].sql, &err) == BX_OK;
        if (ok != rows[i].ok)
            BX_FAIL_AT("row %zu %s, expected %s: %s", i, ok ? "taken" : "refused",
                       rows[i].ok ? "taken" : "refused", err.msg);
    }
    PQfinish(db);
}
