/* bxctl settle against the real Kafka and PostgreSQL: it waits for a consumer group's lag
 * (nothing committed counts), for due timers, for the outbox and for a service's own pending work,
 * names what it waits for, and returns 0 only once bx-escalate has handled a message end to end.
 * Each case has its own database, topics and groups. */
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
static char tag[24];
static char *clock_path;

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static void setup(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, sizeof(tag), "S%d%03ld", (int)getpid() % 100000, (long)(ts.tv_nsec / 1000000));
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("settle"));
    clock_path = itest_clock_file("2026-09-28 09:00");
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", clock_path);
    bx_error err = {0};
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
}

static void teardown(void)
{
    free(clock_path);
    clock_path = NULL;
}

/* Runs bxctl with the case's database and clock; returns the exit code, output in *out. */
static int bxctl(const char *const *args, char **out)
{
    return itest_bxctl(db_url, clock_path, args, out);
}

static void exec_sql(const char *sql)
{
    itest_sql_exec(db_url, sql);
}

static void create_topic(const char *topic, int partitions)
{
    const char *const topics[] = {topic};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, &partitions, 1, 15000, &err) == BX_OK);
}

static void produce(bx_producer *p, const char *topic, const char *key, const char *value)
{
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(p, topic, key, strlen(key), value, strlen(value),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
}

/* Commits offset `offset` of every partition of topic for group, as a consumer that processed
 * everything before it would. */
static void commit_all(const char *group, const char *topic, int partitions, bool to_end)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof(errstr)) == 0);
    REQUIRE(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) == 0);
    REQUIRE(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) == 0);
    REQUIRE(bx_kafka_conf_credentials(conf, &(bx_error){0}) == BX_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++) {
        int64_t lo = 0, hi = 0;
        REQUIRE(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000) == 0);
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = to_end ? hi : lo;
    }
    REQUIRE(rd_kafka_commit(rk, parts, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
}

BX_TEST(lag_of_a_group_is_waited_for_and_named)
{
    setup();
    char topic[96], group[96], spec[200];
    snprintf(topic, sizeof(topic), "bx.itest.settle.%s", tag);
    snprintf(group, sizeof(group), "bx-settle-itest-%s", tag);
    snprintf(spec, sizeof(spec), "%s:%s", group, topic);
    create_topic(topic, 2);
    char *out = NULL;
    /* an empty topic and a group that never committed: nothing to wait for */
    CHECK_INT(bxctl((const char *[]){"settle", "--group", spec, "--timeout", "10", NULL}, &out), 0);
    CHECK_CONTAINS(out, "settled");
    free(out);

    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    produce(p, topic, "a", "{}");
    produce(p, topic, "b", "{}");
    produce(p, topic, "c", "{}");
    bx_producer_free(p, 5000);

    /* nothing committed on a non-empty partition is lag */
    CHECK_INT(
        bxctl((const char *[]){"settle", "--group", spec, "--timeout", "2", "--verbose", NULL},
              &out),
        1);
    char want[300];
    snprintf(want, sizeof(want), "group %s: lag 3 on %s", group, topic);
    CHECK_CONTAINS(out, want);
    CHECK_CONTAINS(out, "nothing committed");
    CHECK_CONTAINS(out, "(no member in the group: running?)");
    CHECK_CONTAINS(out, "not settled after 2 s");
    free(out);

    /* committed at the start: still 3 behind */
    commit_all(group, topic, 2, false);
    CHECK_INT(bxctl((const char *[]){"settle", "--group", spec, "--timeout", "2", NULL}, &out), 1);
    CHECK_CONTAINS(out, want);
    free(out);

    /* committed to the end: settled */
    commit_all(group, topic, 2, true);
    CHECK_INT(bxctl((const char *[]){"settle", "--group", spec, "--timeout", "10", NULL}, &out), 0);
    CHECK_CONTAINS(out, "settled (");
    free(out);

    /* a second group on the same topic that has consumed nothing keeps it unsettled */
    char spec2[200];
    snprintf(spec2, sizeof(spec2), "%s-other:%s", group, topic);
    CHECK_INT(
        bxctl((const char *[]){"settle", "--group", spec, "--group", spec2, "--timeout", "1", NULL},
              &out),
        1);
    snprintf(want, sizeof(want), "group %s-other: lag 3", group);
    CHECK_CONTAINS(out, want);
    free(out);
    teardown();
}

BX_TEST(due_timers_outbox_and_pending_work_are_waited_for)
{
    setup();
    char topic[96], spec[200];
    snprintf(topic, sizeof(topic), "bx.itest.settle.%s", tag);
    snprintf(spec, sizeof(spec), "bx-settle-itest-%s:%s", tag, topic);
    create_topic(topic, 1);
    const char *args[] = {"settle", "--group", spec, "--timeout", "1", NULL};
    char *out = NULL;
    CHECK_INT(bxctl(args, &out), 0);
    free(out);

    /* a timer due at the clock's now (09:00) and one due later */
    exec_sql("INSERT INTO cases.timer (timer_key, kind, due_at) VALUES "
             "('settle-due', 'deadline', '2026-09-28 08:30+08'), "
             "('settle-later', 'deadline', '2026-09-28 17:00+08')");
    CHECK_INT(bxctl(args, &out), 1);
    CHECK_CONTAINS(out, "timers: 1 due and not fired (earliest due 2026-09-28T08:30:00+08:00)");
    free(out);
    exec_sql("UPDATE cases.timer SET fired_at = now() WHERE timer_key = 'settle-due'");
    CHECK_INT(bxctl(args, &out), 0);
    free(out);

    /* the clock moves past the second one */
    char *clock_out = NULL;
    CHECK_INT(bxctl((const char *[]){"clock", "set", "2026-09-28 17:00", NULL}, &clock_out), 0);
    free(clock_out);
    CHECK_INT(bxctl(args, &out), 1);
    CHECK_CONTAINS(out, "timers: 1 due");
    free(out);
    exec_sql("UPDATE cases.timer SET fired_at = now() WHERE timer_key = 'settle-later'");

    /* an outbox row not relayed */
    exec_sql("INSERT INTO cases.outbox (topic, msg_key, payload, event_id) VALUES "
             "('bx.case.events.v1', 'k', '{}', 'settle-outbox-1')");
    CHECK_INT(bxctl(args, &out), 1);
    CHECK_CONTAINS(out, "outbox: 1 rows not yet relayed");
    free(out);
    exec_sql("UPDATE cases.outbox SET sent_at = now()");
    CHECK_INT(bxctl(args, &out), 0);
    free(out);

    /* a service's own due work, through its settle_pending(now) function */
    exec_sql("CREATE SCHEMA itest_due; CREATE TABLE itest_due.send (due_at timestamptz, sent "
             "boolean); CREATE FUNCTION itest_due.settle_pending(now timestamptz) RETURNS TABLE "
             "(what text, pending bigint) LANGUAGE sql AS $$ SELECT 'scheduled sends'::text, "
             "count(*) FROM itest_due.send WHERE NOT sent AND due_at <= now $$; "
             "INSERT INTO itest_due.send VALUES ('2026-09-28 16:00+08', false), "
             "('2026-09-29 16:00+08', false)");
    CHECK_INT(bxctl(args, &out), 1);
    CHECK_CONTAINS(out, "scheduled sends: 1 pending");
    free(out);
    exec_sql("UPDATE itest_due.send SET sent = true WHERE due_at < '2026-09-29'");
    CHECK_INT(bxctl(args, &out), 0);
    free(out);
    teardown();
}

/* bx-escalate's calendar duties of the clock's day (migration 0033): until it has scheduled them,
 * settling waits, so a driven clock that moves on faster than bx-escalate's tick cannot pass the
 * day's roll-call checks by. */
BX_TEST(the_day_whose_duties_are_not_scheduled_is_waited_for)
{
    setup();
    char topic[96], spec[200];
    snprintf(topic, sizeof(topic), "bx.itest.settle.%s", tag);
    snprintf(spec, sizeof(spec), "bx-settle-itest-%s:%s", tag, topic);
    create_topic(topic, 1);
    const char *args[] = {"settle", "--group", spec, "--timeout", "1", NULL};
    char *out = NULL;
    CHECK_INT(bxctl(args, &out), 0); /* nothing recorded: a bx-escalate without duties */
    free(out);
    exec_sql("INSERT INTO cases.duties_scheduled (day, revision) SELECT '2026-09-27', revision "
             "FROM registry.revision");
    CHECK_INT(bxctl(args, &out), 1);
    CHECK_CONTAINS(out, "calendar duties of the day or registry revision not yet scheduled: 1");
    free(out);
    exec_sql("UPDATE cases.duties_scheduled SET day = '2026-09-28'");
    CHECK_INT(bxctl(args, &out), 0);
    free(out);
    /* a registry import bx-escalate has not yet seen */
    exec_sql("UPDATE registry.revision SET revision = revision + 1");
    CHECK_INT(bxctl(args, &out), 1);
    CHECK_CONTAINS(out, "not yet scheduled: 1");
    free(out);
    exec_sql(
        "UPDATE cases.duties_scheduled SET revision = (SELECT revision FROM registry.revision)");
    CHECK_INT(bxctl(args, &out), 0);
    free(out);
    /* the clock moves into the next day */
    char *clock_out = NULL;
    CHECK_INT(bxctl((const char *[]){"clock", "set", "2026-09-29 08:30", NULL}, &clock_out), 0);
    free(clock_out);
    CHECK_INT(bxctl(args, &out), 1);
    free(out);
    teardown();
}

BX_TEST(bad_arguments_are_named)
{
    setup();
    char *out = NULL;
    CHECK_INT(bxctl((const char *[]){"settle", "--group", "bx-score", NULL}, &out), 2);
    CHECK_CONTAINS(out, "name the group's topics");
    free(out);
    CHECK_INT(bxctl((const char *[]){"settle", "--timeout", "soon", NULL}, &out), 2);
    CHECK_CONTAINS(out, "--timeout: expected seconds from 1 to 86400, got \"soon\"");
    free(out);
    CHECK_INT(bxctl((const char *[]){"settle", "--group", "bad group:t", NULL}, &out), 2);
    CHECK_CONTAINS(out, "is not a consumer group name");
    free(out);
    teardown();
}

/* bx-escalate itself: once settle returns 0, the case, its events and its notification requests
 * are all there, with nothing left in the outbox. */
BX_TEST(settled_means_bx_escalate_has_handled_everything)
{
    setup();
    char *dir = itest_tmpdir("settle-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "ES1,升级测试小学,990001100,primary,it-2026\n");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "EST1,赵老师,homeroom_teacher,ES1,,,\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\nEC1,ES1,3,三年级3班,EST1\n");
    char students[200];
    snprintf(students, sizeof(students), "student_id,school_id,class_id,name\n%s-01,ES1,EC1,学生\n",
             tag);
    itest_write_file(dir, "students.csv", students);
    const char *holidays = itest_holidays_csv();
    char *out = NULL;
    REQUIRE(bxctl((const char *[]){"import", "holidays", holidays, NULL}, &out) == 0);
    free(out);
    REQUIRE(bxctl((const char *[]){"import", "--dir", dir, NULL}, &out) == 0);
    free(out);
    free(dir);

    char risk[96], actions[96], group[96], spec[300];
    snprintf(risk, sizeof(risk), "bx.itest.settle.risk.%s", tag);
    snprintf(actions, sizeof(actions), "bx.itest.settle.actions.%s", tag);
    snprintf(group, sizeof(group), "bx-escalate-settle-%s", tag);
    snprintf(spec, sizeof(spec), "%s:%s,%s", group, risk, actions);
    create_topic(risk, 2);
    create_topic(actions, 2);
    char risk_env[160], actions_env[160], group_env[160], pg_env[600];
    snprintf(risk_env, sizeof(risk_env), "BX_RISK_TOPIC=%s", risk);
    snprintf(actions_env, sizeof(actions_env), "BX_ACTIONS_TOPIC=%s", actions);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", group);
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", db_url);
    const char *env[] = {risk_env, actions_env, group_env, pg_env, NULL};
    int port = 0;
    pid_t pid =
        itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), clock_path, env, &port);

    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    char id[40], value[1200];
    snprintf(id, sizeof(id), "%s-01", tag);
    snprintf(value, sizeof(value),
             "{\"schema\":\"bx.risk.v1\",\"event_id\":\"risk:%s:2026-09-28\",\"student_id\":\"%s\","
             "\"school_id\":\"ES1\",\"class_id\":\"EC1\",\"date\":\"2026-09-28\",\"streak_days\":1,"
             "\"streak_start\":\"2026-09-28\",\"unexcused_periods_today\":0,"
             "\"attendance_rate_20d\":0.8,\"attendance_rate_term\":0.9,\"chronic_absence\":false,"
             "\"score\":10,\"tier\":\"medium\",\"previous_tier\":null,\"trigger\":"
             "\"streak_changed\",\"factors\":[],\"assessed_at\":\"2026-09-28T09:00:00+08:00\"}",
             id, id);
    produce(p, risk, id, value);
    bx_producer_free(p, 5000);
    CHECK_INT(bxctl((const char *[]){"settle", "--group", spec, "--timeout", "60", NULL}, &out), 0);
    free(out);

    PGconn *db = NULL;
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    const char *params[] = {id};
    PGresult *res = NULL;
    REQUIRE(bx_pg_query(db,
                        "SELECT c.stage, (SELECT count(*) FROM cases.event e WHERE e.case_id = "
                        "c.id), (SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL), "
                        "(SELECT count(*) FROM cases.outbox) FROM cases.case c WHERE "
                        "c.student_id = $1",
                        1, params, &res, &err) == BX_OK);
    REQUIRE(PQntuples(res) == 1);
    CHECK_STR(PQgetvalue(res, 0, 0), "contact_family");
    CHECK(strtol(PQgetvalue(res, 0, 1), NULL, 10) >= 2); /* opened, stage entered, task */
    CHECK_STR(PQgetvalue(res, 0, 2), "0");
    CHECK(strtol(PQgetvalue(res, 0, 3), NULL, 10) >= 2);
    PQclear(res);

    /* the contact deadline (17:00) comes due when the clock passes it: settle waits for it */
    char *clock_out = NULL;
    CHECK_INT(bxctl((const char *[]){"clock", "set", "2026-09-28 17:30", NULL}, &clock_out), 0);
    free(clock_out);
    CHECK_INT(bxctl((const char *[]){"settle", "--group", spec, "--timeout", "60", NULL}, &out), 0);
    free(out);
    REQUIRE(bx_pg_query(db,
                        "SELECT (SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND "
                        "due_at <= '2026-09-28 17:30+08'), (SELECT count(*) FROM cases.task t "
                        "JOIN cases.case c ON c.id = t.case_id WHERE c.student_id = $1 AND "
                        "t.overdue_at IS NOT NULL)",
                        1, params, &res, &err) == BX_OK);
    CHECK_STR(PQgetvalue(res, 0, 0), "0");
    CHECK_STR(PQgetvalue(res, 0, 1), "1");
    PQclear(res);
    PQfinish(db);
    itest_stop(pid);
    teardown();
}
