/* bx-escalate's run of inputs opening many cases at once: the run's new case rows are inserted
 * with one statement before their events, tasks and timers (store.h,
 * escalate_store_batch_defer_new_cases), and leave the same rows as the same inputs applied one
 * by one, each in its own transaction. Its own bx-escalate on its own database, topics and group,
 * with a driven clock, as in test_escalate.c. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char db_url[512];
static char tag[24]; /* makes student ids unique across runs (the output topics are shared) */

static void bxctl_ok(const char *const *args)
{
    char env_url[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url);
    const char *env[] = {env_url, NULL};
    const char *argv[16] = {itest_env("BXCTL_BIN", BXCTL_BIN)};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run(argv, env, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl %s: %s\n", args[0], out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
}

/* Student <tag>-NN in class NC1 of school NS1 (homeroom teacher NST1), calendar it-2026. */
static void student_id(int n, char out[40])
{
    snprintf(out, 40, "%s-%02d", tag, n);
}

static void setup_db(int students)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, sizeof(tag), "N%d%03ld", (int)getpid() % 100000, (long)(ts.tv_nsec / 1000000));
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("escnew"));
    char *dir = itest_tmpdir("escnew-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-03-02,2026-07-10,2026-spring\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "NS1,新案测试小学,990001100,primary,it-2026\n");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "NST1,钱老师,homeroom_teacher,NS1,,,\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\nNC1,NS1,4,四年级1班,NST1\n");
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "student_id,school_id,class_id,name\n") == BX_OK);
    for (int i = 1; i <= students; i++) {
        char id[40];
        student_id(i, id);
        REQUIRE(bx_buf_printf(&b, "%s,NS1,NC1,学生%d\n", id, i) == BX_OK);
    }
    itest_write_file(dir, "students.csv", b.data);
    bx_buf_free(&b);
    bxctl_ok((const char *[]){"import", "holidays", itest_holidays_csv(), NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
}

static char *rows_of(const char *sql, const char *param)
{
    const char *params[] = {param};
    return itest_sql_rows_params(db_url, sql, param ? 1 : 0, param ? params : NULL);
}

static long long count_of(const char *sql, const char *param)
{
    char *text = rows_of(sql, param);
    long long n = strtoll(text, NULL, 10);
    free(text);
    return n;
}

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

typedef struct svc {
    char risk[96], actions[96], group[96];
    char *clock;
    pid_t pid;
    int port;
    bx_producer *producer;
    long long produced;
    long long base; /* inputs and dead letters counted by earlier processes */
} svc;

static void wait_for_leaders(const char *topic)
{
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    for (int part = 0; part < 2; part++) {
        int64_t lo = 0, hi = 0;
        int tries = 0;
        while (rd_kafka_query_watermark_offsets(bx_producer_handle(p), topic, part, &lo, &hi,
                                                1000) != RD_KAFKA_RESP_ERR_NO_ERROR &&
               tries++ < 100)
            usleep(100 * 1000);
    }
    bx_producer_free(p, 1000);
}

static const char *extra_setting; /* one more setting of the case's service, or NULL */

static void svc_run(svc *s)
{
    char risk_env[160], actions_env[160], group_env[160], pg_env[600];
    snprintf(risk_env, sizeof(risk_env), "BX_RISK_TOPIC=%s", s->risk);
    snprintf(actions_env, sizeof(actions_env), "BX_ACTIONS_TOPIC=%s", s->actions);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", s->group);
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", db_url);
    const char *env[] = {risk_env,
                         actions_env,
                         group_env,
                         pg_env,
                         "BX_TIMER_LEASE_MS=2000",
                         "BX_REGISTRY_REFRESH_MS=200",
                         extra_setting,
                         NULL};
    s->pid =
        itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), s->clock, env, &s->port);
}

static void svc_start(svc *s, int students, const char *local_time)
{
    memset(s, 0, sizeof(*s));
    setup_db(students);
    snprintf(s->risk, sizeof(s->risk), "bx.itest.escnew.risk.%s", tag);
    snprintf(s->actions, sizeof(s->actions), "bx.itest.escnew.actions.%s", tag);
    snprintf(s->group, sizeof(s->group), "bx-escalate-itest-new-%s", tag);
    const char *const topics[] = {s->risk,
                                  s->actions,
                                  BX_TOPIC_CASE_EVENTS,
                                  BX_TOPIC_NOTIFY_REQUESTS,
                                  BX_TOPIC_DLQ,
                                  BX_TOPIC_ANALYTICS_CASES};
    const int partitions[] = {2, 2, 3, 3, 3, 3};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 6, 15000, &err) == BX_OK);
    wait_for_leaders(s->risk);
    wait_for_leaders(s->actions);
    s->clock = itest_clock_file(local_time);
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", s->clock);
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    REQUIRE(bx_producer_new(brokers(), NULL, &s->producer, &err) == BX_OK);
    svc_run(s);
}

static void at(const char *local_time)
{
    bx_time_ms t = 0;
    char iso[40];
    snprintf(iso, sizeof(iso), "%.10sT%s:00+08:00", local_time, local_time + 11);
    REQUIRE(bx_time_parse(iso, &t) == BX_OK);
    REQUIRE(bx_clock_set(t) == BX_OK);
}

/* Produces value (made for it; freed here). */
static void produce_owned(svc *s, const char *topic, const char *key, char *value)
{
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(s->producer, topic, key, strlen(key), value, strlen(value),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    free(value);
    s->produced++;
}

static void svc_stop(svc *s)
{
    itest_stop(s->pid);
    s->pid = 0;
    bx_producer_free(s->producer, 5000);
    s->producer = NULL;
    free(s->clock);
    s->clock = NULL;
}

/* Waits until every produced message was handled, nothing is due and the outbox is empty. */
static void settle(svc *s)
{
    for (int i = 0; i < 1200; i++) {
        long long in = itest_metric(s->port, "bx_escalate_inputs_total");
        long long dlq = itest_metric(s->port, "bx_escalate_dlq_total");
        char now[32];
        snprintf(now, sizeof(now), "%lld", (long long)bx_clock_now());
        if (in >= 0 && dlq >= 0 && s->base + in + dlq >= s->produced &&
            count_of("SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND due_at <= "
                     "to_timestamp($1::bigint / 1000.0)",
                     now) == 0 &&
            count_of("SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL", NULL) == 0)
            return;
        usleep(50 * 1000);
    }
    REQUIRE(!"bx-escalate settled in 60 s");
}

/* An assessment of student id (caller frees). */
static char *risk_json(const char *id, const char *local_time, int streak, const char *start,
                       const char *event_suffix)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(
        bx_buf_printf(&b,
                      "{\"schema\":\"bx.risk.v1\",\"event_id\":\"risk:%s:%.10s%s\","
                      "\"student_id\":\"%s\",\"school_id\":\"NS1\",\"class_id\":\"NC1\","
                      "\"date\":\"%.10s\",\"streak_days\":%d,\"streak_start\":\"%s\","
                      "\"unexcused_periods_today\":0,\"attendance_rate_20d\":0.8,"
                      "\"attendance_rate_term\":0.9,\"chronic_absence\":false,\"score\":%d,"
                      "\"tier\":\"medium\",\"previous_tier\":null,\"trigger\":"
                      "\"streak_changed\",\"factors\":[],\"assessed_at\":\"%.10sT%s:00+08:00\"}",
                      id, local_time, event_suffix, id, local_time, streak, start, 10 * streak,
                      local_time, local_time + 11) == BX_OK);
    return bx_buf_steal(&b);
}

/* What a student's inputs made, without ids: its case rows, the events, tasks, timers and outbox
 * messages in order (caller frees). */
static char *case_signature(const char *student)
{
    return rows_of(
        "SELECT concat_ws(' | ', "
        "(SELECT string_agg(c.school_id || '/' || c.opened_at::text || '/' || c.stage || '/' || "
        "  coalesce(c.ending, '-') || '/' || (c.closed_at IS NULL)::text || '/' || "
        "  replace(c.state::text, $1, ''), ',' ORDER BY c.id) FROM cases.case c "
        "  WHERE c.student_id = $1), "
        "(SELECT string_agg(e.kind || '/' || coalesce(e.stage, '') || '/' || e.late::text || '/' "
        "  || e.occurred_at::text || '/' || replace(e.event_id, $1, ''), ',' ORDER BY e.id) "
        "  FROM cases.event e JOIN cases.case c ON c.id = e.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(t.kind || '/' || t.stage || '/' || t.owner_role || '/' || "
        "  coalesce(t.owner_staff_id, '-') || '/' || t.due_at::text || '/' || "
        "  (t.overdue_at IS NOT NULL)::text || '/' || coalesce(t.outcome, '-'), ',' ORDER BY t.id) "
        "  FROM cases.task t JOIN cases.case c ON c.id = t.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(replace(m.timer_key, $1, '') || '@' || m.due_at::text || '/' || "
        "  (m.fired_at IS NOT NULL)::text || '/' || m.cancelled::text, ',' ORDER BY m.id) "
        "  FROM cases.timer m JOIN cases.case c ON c.id = m.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(o.topic || ':' || coalesce(o.payload::jsonb->>'template', "
        "  o.payload::jsonb->>'kind', o.payload::jsonb->>'event', ''), ',' ORDER BY o.id) "
        "  FROM cases.outbox o WHERE o.msg_key = $1))",
        student);
}

/* The largest number of case rows of students first..last (a range of student_id's) written by
 * one statement (the same transaction and command id). */
static long long most_cases_of_one_statement(int first, int last)
{
    char lo[40], hi[40], range[100];
    student_id(first, lo);
    student_id(last, hi);
    snprintf(range, sizeof(range), "%s %s", lo, hi);
    return count_of("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM cases.case "
                    "WHERE student_id BETWEEN split_part($1, ' ', 1) AND split_part($1, ' ', 2) "
                    "GROUP BY xmin::text, cmin::text) g",
                    range);
}

/* A run of inputs waiting when bx-escalate starts opens PER_RUN cases; every fifth student also
 * has a second assessment of the day later in the same run, with a higher score (its case is
 * read again after it was opened in the run, so the queued new case is written first; else it
 * would open a second case). No timer falls due: the case rows are as the run wrote them. Applied
 * together (the default run), the new case rows come from one statement (one command id for many
 * rows) and every row they own names the right case; applied one by one (BX_ESCALATE_INPUT_BATCH=1)
 * each row has its own. The cases, events, tasks, timers and outbox messages are the same, student
 * for student. */
BX_TEST(a_run_opening_many_cases_gives_the_rows_of_one_by_one)
{
    enum { PER_RUN = 40 };
    svc s;
    svc_start(&s, 2 * PER_RUN, "2026-09-28 08:00");
    settle(&s);
    for (int run = 0; run < 2; run++) {
        itest_stop(s.pid);
        s.base = s.produced;
        at("2026-09-28 09:00");
        for (int k = 1; k <= PER_RUN; k++) {
            char id[40];
            student_id(run * PER_RUN + k, id);
            /* one key: the run on one partition, in this order */
            produce_owned(&s, s.risk, "run",
                          risk_json(id, "2026-09-28 08:30", 1, "2026-09-28", ""));
            if (k % 5 == 0)
                produce_owned(&s, s.risk, "run",
                              risk_json(id, "2026-09-28 08:50", 2, "2026-09-28", ":second"));
        }
        extra_setting = run == 0 ? "BX_ESCALATE_INPUT_BATCH=1" : NULL;
        svc_run(&s);
        extra_setting = NULL;
        settle(&s);
        CHECK_INT(itest_metric(s.port, "bx_escalate_dlq_total"), 0);
        CHECK_INT(itest_metric(s.port, "bx_escalate_inputs_total"), PER_RUN + PER_RUN / 5);
        if (run == 0)
            CHECK_INT(itest_metric(s.port, "bx_escalate_input_polls_total"), 0);
        else
            CHECK(itest_metric(s.port, "bx_escalate_input_polls_total") >= 1);
    }
    CHECK_INT(count_of("SELECT count(*) FROM cases.case", NULL), 2 * PER_RUN);
    CHECK_INT(most_cases_of_one_statement(1, PER_RUN), 1);
    CHECK(most_cases_of_one_statement(PER_RUN + 1, 2 * PER_RUN) >= 4);
    /* every row queued for a new case got that case's id */
    CHECK_INT(count_of("SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
                       "WHERE e.payload->>'student_id' IS DISTINCT FROM c.student_id",
                       NULL),
              0);
    CHECK_INT(count_of("SELECT count(*) FROM cases.task t JOIN cases.case c ON c.id = t.case_id "
                       "WHERE strpos(t.task_key, c.student_id) = 0",
                       NULL),
              0);
    CHECK_INT(count_of("SELECT count(*) FROM cases.timer m JOIN cases.case c ON c.id = m.case_id "
                       "WHERE strpos(m.timer_key, c.student_id) = 0",
                       NULL),
              0);
    CHECK(count_of("SELECT count(*) FROM cases.timer WHERE case_id IS NOT NULL", NULL) >=
          2 * PER_RUN);
    for (int k = 1; k <= PER_RUN; k++) {
        char one[40], together[40];
        student_id(k, one);
        student_id(PER_RUN + k, together);
        char *a = case_signature(one), *b = case_signature(together);
        CHECK(strlen(a) > 40);
        if (strcmp(a, b) != 0)
            fprintf(stderr, "one by one: %s\ntogether:   %s\n", a, b);
        CHECK_STR(b, a);
        free(a);
        free(b);
    }
    svc_stop(&s);
}
