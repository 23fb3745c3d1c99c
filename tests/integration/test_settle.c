/* common/bx_settle against the real Kafka and PostgreSQL, for what bxctl settle's tests do not show
 * through its command line: the first busy thing in pipeline order (bx-sim's and bench-e2e's
 * "which stage caught up"), a topic that does not exist yet and a partition added after the start,
 * a database without bx-escalate's tables and one whose connection broke, and the wait itself.
 * Each case has its own database, topics and groups. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_settle.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char db_url[512];
static char tag[24];
static char *clock_path;
static PGconn *db;

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static void setup(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, sizeof(tag), "C%d%03ld", (int)getpid() % 100000, (long)(ts.tv_nsec / 1000000));
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("settlec"));
    clock_path = itest_clock_file("2026-09-28 09:00");
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", clock_path);
    bx_error err = {0};
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
}

static void teardown(void)
{
    PQfinish(db);
    db = NULL;
    free(clock_path);
    clock_path = NULL;
}

static void create_topic(const char *topic, int partitions)
{
    const char *const topics[] = {topic};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, &partitions, 1, 15000, &err) == BX_OK);
}

/* Grows topic to `total` partitions. */
static void add_partitions(const char *topic, int total)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof(errstr)) == 0);
    REQUIRE(bx_kafka_conf_credentials(conf, &(bx_error){0}) == BX_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_NewPartitions_t *np =
        rd_kafka_NewPartitions_new(topic, (size_t)total, errstr, sizeof(errstr));
    REQUIRE(np != NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreatePartitions(rk, &np, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    REQUIRE(ev != NULL && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR);
    size_t n = 0;
    const rd_kafka_topic_result_t **results =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
    REQUIRE(n == 1 && rd_kafka_topic_result_error(results[0]) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    rd_kafka_NewPartitions_destroy(np);
    rd_kafka_queue_destroy(q);
    /* until the broker's metadata shows them */
    int seen = 0;
    for (int i = 0; i < 100 && seen < total; i++) {
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(total);
        bx_error err = {0};
        if (bx_settle_partitions_add(rk, topic, 5000, parts, &err) == BX_OK)
            seen = parts->cnt;
        rd_kafka_topic_partition_list_destroy(parts);
        if (seen < total)
            usleep(100 * 1000);
    }
    REQUIRE(seen == total);
    rd_kafka_destroy(rk);
}

/* Produces `count` messages to one partition of topic. */
static void produce_to(const char *topic, int partition, int count)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof(errstr)) == 0);
    REQUIRE(bx_kafka_conf_credentials(conf, &(bx_error){0}) == BX_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    int64_t lo = 0, before = 0, after = 0;
    /* a partition just added may not have its leader yet */
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__FAIL;
    for (int i = 0; i < 100 && e; i++)
        if ((e = rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &before, 5000)))
            usleep(100 * 1000);
    REQUIRE(e == RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < count; i++)
        REQUIRE(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                  RD_KAFKA_V_VALUE("{}", 2),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_flush(rk, 15000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &after, 5000) == 0);
    REQUIRE(after == before + count);
    rd_kafka_destroy(rk);
}

/* Commits the end of every partition of topic for group, as a consumer that processed all. */
static void commit_end(const char *group, const char *topic)
{
    rd_kafka_t *rk = NULL;
    bx_error err = {0};
    REQUIRE(bx_settle_group_handle(brokers(), group, &rk, &err) == BX_OK);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(4);
    REQUIRE(bx_settle_partitions_add(rk, topic, 10000, parts, &err) == BX_OK);
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo = 0, hi = 0;
        REQUIRE(rd_kafka_query_watermark_offsets(rk, topic, parts->elems[i].partition, &lo, &hi,
                                                 5000) == 0);
        parts->elems[i].offset = hi;
    }
    REQUIRE(rd_kafka_commit(rk, parts, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
}

/* A topic, a group and its spec of the case's own, named after what. */
static void own_names(const char *what, char topic[96], char group[96], char spec[200])
{
    snprintf(topic, 96, "bx.itest.settlec.%s.%s", what, tag);
    snprintf(group, 96, "bx-settlec-%s-%s", what, tag);
    snprintf(spec, 200, "%s:%s", group, topic);
}

static bx_settle *settle_new(const char *const *texts)
{
    bx_settle_spec specs[BX_SETTLE_MAX_GROUPS];
    int n = 0;
    bx_error err = {0};
    for (; texts[n]; n++)
        REQUIRE(bx_settle_spec_parse(texts[n], strlen(texts[n]), &specs[n], &err) == BX_OK);
    bx_settle *st = NULL;
    if (bx_settle_new(brokers(), specs, n, db, &st, &err) != BX_OK)
        fprintf(stderr, "bx_settle_new: %s\n", err.msg);
    REQUIRE(st != NULL);
    return st;
}

static bx_settle_result check(bx_settle *st)
{
    bx_settle_result r;
    bx_error err = {0};
    REQUIRE(bx_settle_check(st, &r, &err) == BX_OK);
    return r;
}

/* Waits up to 10 s for quiet (a topic just made may take a moment to show its partitions). */
static bx_status wait_quiet(bx_settle *st, int timeout_ms, bx_settle_result *last)
{
    const bx_settle_wait_opts opts = {
        .timeout_ms = timeout_ms, .busy_interval_ms = 50, .quiet_interval_ms = 10};
    int checks = 0;
    bx_error err = {0};
    bx_status s = bx_settle_wait(st, &opts, last, &checks, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    return s;
}

BX_TEST(the_first_busy_thing_is_named_in_pipeline_order)
{
    setup();
    char topic[96], up[96], down[96], spec_up[200], spec_down[200], want[300];
    snprintf(topic, sizeof(topic), "bx.itest.settlec.%s", tag);
    snprintf(up, sizeof(up), "bx-settlec-up-%s", tag);
    snprintf(down, sizeof(down), "bx-settlec-down-%s", tag);
    snprintf(spec_up, sizeof(spec_up), "%s:%s", up, topic);
    snprintf(spec_down, sizeof(spec_down), "%s:%s", down, topic);
    create_topic(topic, 2);
    produce_to(topic, 0, 2);
    produce_to(topic, 1, 1);
    bx_settle *st = settle_new((const char *const[]){spec_up, spec_down, NULL});

    /* both groups behind: the upstream one is named, the text has both */
    bx_settle_result r = check(st);
    CHECK(!r.quiet);
    CHECK_INT(r.busy, 0);
    CHECK_STR(r.busy_name, up);
    CHECK_INT(r.busy_left, 3);
    snprintf(want, sizeof(want), "  group %s: lag 3 on %s: [0] 2 (nothing committed), [1] 1", down,
             topic);
    CHECK_CONTAINS(r.waiting, want);
    CHECK_CONTAINS(r.waiting, "(no member in the group: running?)");
    CHECK_INT(r.end_offsets, 2 * 3); /* both groups watch the topic's 3 */

    commit_end(up, topic);
    r = check(st);
    CHECK_INT(r.busy, 1);
    CHECK_STR(r.busy_name, down);
    CHECK_INT(r.busy_left, 3);
    commit_end(down, topic);
    r = check(st);
    CHECK(r.quiet);
    CHECK_INT(r.busy, BX_SETTLE_QUIET);
    CHECK_STR(r.waiting, "");

    /* then the database, in order: due timers (2), the outbox (3), settle_pending functions (4..,
     * by schema name: itest_due before notify) */
    itest_sql_exec(db_url, "INSERT INTO cases.timer (timer_key, kind, due_at) VALUES "
                           "('settlec-due', 'deadline', '2026-09-28 08:30+08'); "
                           "INSERT INTO cases.outbox (topic, msg_key, payload, event_id) VALUES "
                           "('bx.case.events.v1', 'k', '{}', 'settlec-1'), "
                           "('bx.case.events.v1', 'k', '{}', 'settlec-2')");
    r = check(st);
    CHECK_INT(r.busy, 2);
    CHECK_STR(r.busy_name, "due timers");
    CHECK_INT(r.busy_left, 1);
    CHECK_CONTAINS(r.waiting,
                   "  timers: 1 due and not fired (earliest due 2026-09-28T08:30:00+08:00)\n");
    CHECK_CONTAINS(r.waiting, "  outbox: 2 rows not yet relayed to Kafka\n");
    itest_sql_exec(db_url, "UPDATE cases.timer SET fired_at = now()");
    r = check(st);
    CHECK_INT(r.busy, 3);
    CHECK_STR(r.busy_name, "bx-escalate's outbox");
    CHECK_INT(r.busy_left, 2);
    itest_sql_exec(db_url, "UPDATE cases.outbox SET sent_at = now()");
    CHECK(check(st).quiet);
    bx_settle_free(st);

    /* functions are found when the settle is made */
    itest_sql_exec(db_url,
                   "CREATE SCHEMA itest_due; CREATE FUNCTION itest_due.settle_pending(now "
                   "timestamptz) RETURNS TABLE (what text, pending bigint) LANGUAGE sql AS $$ "
                   "SELECT 'itest: first'::text, 2::bigint UNION ALL SELECT 'itest: second', 3 "
                   "UNION ALL SELECT 'itest: none', 0 $$");
    st = settle_new((const char *const[]){spec_up, spec_down, NULL});
    r = check(st);
    CHECK_INT(r.busy, 4);
    CHECK_STR(r.busy_name, "itest_due.settle_pending");
    CHECK_INT(r.busy_left, 5);
    CHECK_STR(r.waiting, "  itest: first: 2 pending\n  itest: second: 3 pending\n");
    bx_settle_free(st);
    teardown();
}

BX_TEST(a_missing_topic_waits_and_a_partition_added_later_counts)
{
    setup();
    char topic[96], group[96], spec[200], want[300];
    own_names("late", topic, group, spec);
    bx_settle *st = settle_new((const char *const[]){spec, NULL});

    /* not created yet: named, not taken for quiet (a misspelt topic would never settle falsely) */
    bx_settle_result r = check(st);
    CHECK(!r.quiet);
    CHECK_INT(r.busy, 0);
    CHECK_INT(r.busy_left, -1);
    snprintf(want, sizeof(want), "  group %s: topic %s does not exist (bxctl topics create)\n",
             group, topic);
    CHECK_STR(r.waiting, want);
    /* and asking did not create it */
    r = check(st);
    CHECK_STR(r.waiting, want);

    create_topic(topic, 1);
    CHECK_INT(wait_quiet(st, 10000, &r), BX_OK);

    /* a partition added while the settle runs is watched from the next check */
    add_partitions(topic, 2);
    produce_to(topic, 1, 2);
    for (int i = 0; i < 50; i++) {
        r = check(st);
        if (!r.quiet)
            break;
        usleep(100 * 1000); /* the new partition's metadata may take a moment */
    }
    snprintf(want, sizeof(want), "  group %s: lag 2 on %s: [1] 2 (nothing committed)", group,
             topic);
    CHECK_CONTAINS(r.waiting, want);
    CHECK_INT(r.busy_left, 2);
    commit_end(group, topic);
    CHECK_INT(wait_quiet(st, 10000, &r), BX_OK);
    bx_settle_free(st);
    teardown();
}

BX_TEST(a_database_without_escalate_tables_or_with_a_broken_connection)
{
    setup();
    bx_settle *st = settle_new((const char *const[]){NULL});
    CHECK(check(st).quiet);

    /* the connection breaks: pending and named, then reset and quiet again */
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", PQbackendPID(db));
    free(itest_sql_rows(db_url, sql));
    bx_settle_result r = check(st);
    CHECK(!r.quiet);
    CHECK_INT(r.busy, 0); /* no groups: the timers' query is first */
    CHECK_STR(r.busy_name, "database");
    CHECK_INT(r.busy_left, -1);
    CHECK_CONTAINS(r.waiting, "  database: ");
    CHECK(check(st).quiet);
    bx_settle_free(st);

    /* without cases.timer and cases.outbox (a database bx-escalate never migrated) nothing is due
     */
    itest_sql_exec(db_url, "INSERT INTO cases.timer (timer_key, kind, due_at) VALUES "
                           "('settlec-due', 'deadline', '2026-09-28 08:30+08')");
    st = settle_new((const char *const[]){NULL});
    CHECK_INT(check(st).busy, 0);
    bx_settle_free(st);
    itest_sql_exec(db_url, "DROP TABLE cases.timer CASCADE; DROP TABLE cases.outbox CASCADE");
    st = settle_new((const char *const[]){NULL});
    CHECK(check(st).quiet);
    bx_settle_free(st);
    teardown();
}

static void count_waiting(void *arg, const char *waiting)
{
    bx_buf *seen = arg;
    REQUIRE(bx_buf_printf(seen, "--\n%s", waiting) == BX_OK);
}

BX_TEST(wait_needs_two_quiet_checks_and_reports_what_it_waits_for)
{
    setup();
    char topic[96], group[96], spec[200], want[300];
    own_names("wait", topic, group, spec);
    create_topic(topic, 1);
    produce_to(topic, 0, 1);
    bx_settle *st = settle_new((const char *const[]){spec, NULL});

    bx_buf seen;
    bx_buf_init(&seen, 0);
    bx_settle_wait_opts opts = {.timeout_ms = 500,
                                .busy_interval_ms = 20,
                                .quiet_interval_ms = 20,
                                .on_waiting = count_waiting,
                                .on_waiting_arg = &seen};
    bx_settle_result last;
    int checks = 0;
    bx_error err = {0};
    CHECK_INT(bx_settle_wait(st, &opts, &last, &checks, &err), BX_ETIMEOUT);
    CHECK(checks >= 2);
    CHECK(!last.quiet);
    snprintf(want, sizeof(want), "not settled after 500 ms: group %s: lag 1 on %s: [0] 1", group,
             topic);
    CHECK_CONTAINS(err.msg, want);
    /* the same text on every check: reported once */
    snprintf(want, sizeof(want), "--\n  group %s: lag 1 on %s: [0] 1 (nothing committed)", group,
             topic);
    CHECK(seen.data != NULL && strncmp(seen.data, want, strlen(want)) == 0);
    CHECK(seen.data != NULL && strstr(seen.data + 1, "--\n") == NULL);

    commit_end(group, topic);
    opts.timeout_ms = 10000;
    CHECK_INT(bx_settle_wait(st, &opts, &last, &checks, &err), BX_OK);
    CHECK_INT(checks, 2); /* quiet, then quiet again with the same end offsets */
    CHECK(last.quiet);
    CHECK_INT(last.end_offsets, 1);
    bx_buf_free(&seen);
    bx_settle_free(st);
    teardown();
}
