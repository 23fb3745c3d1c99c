/* The common I/O wrappers against the real Kafka, PostgreSQL and Redis: the consumer commits only
 * what was processed, the producer reports every delivery, connections retry and fail precisely,
 * and the metrics endpoint serves /healthz and /metrics. */
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_test.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static void make_topic(char *name, size_t size)
{
    snprintf(name, size, "bx.test.io.%d.%ld", getpid(), (long)time(NULL));
    const char *topics[] = {name};
    int parts[] = {2};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, parts, 1, 10000, &err) == BX_OK);
    /* Creating it again is fine. */
    CHECK_INT(bx_kafka_create_topics(brokers(), topics, parts, 1, 10000, &err), BX_OK);
}

static void produce(const char *topic, int first, int count)
{
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot *slots = calloc((size_t)count, sizeof(*slots));
    for (int i = 0; i < count; i++) {
        char key[16], value[32];
        snprintf(key, sizeof(key), "k%d", (first + i) % 5);
        snprintf(value, sizeof(value), "m%d", first + i);
        bx_delivery_slot_arm(&slots[i], w);
        REQUIRE(bx_producer_send(p, topic, key, strlen(key), value, strlen(value),
                                 bx_delivery_slot_done, &slots[i]) == BX_OK);
    }
    CHECK_INT(bx_delivery_wait_all(w, 20000), BX_OK);
    int failed = 0;
    for (int i = 0; i < count; i++)
        failed += slots[i].err != RD_KAFKA_RESP_ERR_NO_ERROR;
    CHECK_INT(failed, 0);
    free(slots);
    bx_delivery_wait_free(w);
    bx_producer_free(p, 5000);
}

/* Consumes until `want` messages were seen or 20 s passed; marks done only the first `done`. */
static int consume(const char *topic, const char *group, int want, int done, int *seen_values)
{
    const char *topics[] = {topic, NULL};
    bx_consumer *c = NULL;
    bx_error err = {0};
    REQUIRE(bx_consumer_new(brokers(), group, topics, NULL, &c, &err) == BX_OK);
    int seen = 0;
    for (int spins = 0; spins < 200 && seen < want; spins++) {
        rd_kafka_message_t *m = bx_consumer_poll(c, 100);
        if (m == NULL)
            continue;
        if (!m->err) {
            int v = atoi((const char *)m->payload + 1);
            if (seen_values)
                seen_values[seen] = v;
            if (seen < done)
                bx_consumer_done(c, m);
            seen++;
        }
        rd_kafka_message_destroy(m);
    }
    CHECK_INT(bx_consumer_commit(c), BX_OK);
    bx_consumer_free(c);
    return seen;
}

BX_TEST(consumer_commits_only_processed_messages)
{
    char topic[128], group[160];
    make_topic(topic, sizeof(topic));
    snprintf(group, sizeof(group), "g-%s", topic);
    produce(topic, 0, 40);
    /* First consumer reads everything but finishes only what it marks done; the messages of one
     * partition are in order, so marking the first N done commits a prefix per partition. */
    int first[40];
    CHECK_INT(consume(topic, group, 40, 0, first), 40);
    /* Nothing was marked done: a second consumer in the group gets all 40 again. */
    CHECK_INT(consume(topic, group, 40, 40, NULL), 40);
    /* Everything is done now: a third consumer gets nothing new within the wait. */
    const char *topics[] = {topic, NULL};
    bx_consumer *c = NULL;
    bx_error err = {0};
    REQUIRE(bx_consumer_new(brokers(), group, topics, NULL, &c, &err) == BX_OK);
    int extra = 0;
    for (int i = 0; i < 30; i++) {
        rd_kafka_message_t *m = bx_consumer_poll(c, 100);
        if (m && !m->err)
            extra++;
        if (m)
            rd_kafka_message_destroy(m);
    }
    CHECK_INT(extra, 0);
    /* New messages after a clean close are delivered once. */
    produce(topic, 40, 10);
    int got = 0;
    for (int i = 0; i < 200 && got < 10; i++) {
        rd_kafka_message_t *m = bx_consumer_poll(c, 100);
        if (m && !m->err) {
            got++;
            bx_consumer_done(c, m);
        }
        if (m)
            rd_kafka_message_destroy(m);
    }
    CHECK_INT(got, 10);
    CHECK(bx_consumer_lag(c) == 0);
    bx_consumer_free(c);
}

BX_TEST(producer_reports_failure_for_a_missing_broker)
{
    const char *extra[] = {"message.timeout.ms", "1000", NULL};
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new("127.0.0.1:9", extra, &p, &err) == BX_OK);
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(p, "bx.attendance.v1", "k", 1, "v", 1, bx_delivery_slot_done, &slot) ==
            BX_OK);
    CHECK_INT(bx_delivery_wait_all(w, 10000), BX_OK);
    CHECK(slot.err != RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    bx_producer_free(p, 100);
}

BX_TEST(connections_retry_and_fail_precisely)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue"), 5000,
                          &db, &err) == BX_OK);
    PGresult *res = NULL;
    const char *params[] = {"41"};
    REQUIRE(bx_pg_query(db, "SELECT $1::int + 1", 1, params, &res, &err) == BX_OK);
    CHECK_STR(PQgetvalue(res, 0, 0), "42");
    PQclear(res);
    CHECK_INT(bx_pg_exec(db, "SELECT no_such_column FROM registry.school", &err), BX_EIO);
    CHECK_CONTAINS(err.msg, "no_such_column");
    PQfinish(db);
    CHECK_INT(bx_pg_connect("postgresql://bx@127.0.0.1:9/baoxue", 300, &db, &err), BX_ETRANSIENT);
    CHECK_CONTAINS(err.msg, "postgresql:");

    redisContext *r = NULL;
    REQUIRE(bx_redis_connect(itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799"), 5000, &r,
                             &err) == BX_OK);
    redisReply *reply = redisCommand(r, "PING");
    CHECK(reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0);
    freeReplyObject(reply);
    redisFree(r);
    CHECK_INT(bx_redis_connect("redis://127.0.0.1:9", 300, &r, &err), BX_ETRANSIENT);
    CHECK_INT(bx_redis_connect("redis://127.0.0.1:99999", 300, &r, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "BX_REDIS_URL");
}

BX_TEST(pg_reconnect_keeps_a_good_connection_and_replaces_a_broken_one)
{
    const char *url = itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue");
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_reconnect(&db, url, 5000, &err) == BX_OK);
    PGconn *first = db;
    CHECK_INT(bx_pg_reconnect(&db, url, 5000, &err), BX_OK);
    CHECK(db == first);
    /* The server ends this session: the next statement fails and the connection is broken. */
    CHECK_INT(bx_pg_exec(db, "SELECT pg_terminate_backend(pg_backend_pid())", &err), BX_ETRANSIENT);
    CHECK(bx_pg_is_broken(db));
    CHECK_INT(bx_pg_reconnect(&db, url, 5000, &err), BX_OK);
    CHECK(!bx_pg_is_broken(db));
    CHECK_INT(bx_pg_exec(db, "SELECT 1", &err), BX_OK);
    PQfinish(db);
    db = NULL;
    CHECK_INT(bx_pg_reconnect(&db, "postgresql://bx@127.0.0.1:9/baoxue", 300, &err), BX_ETRANSIENT);
    CHECK(db == NULL);
}

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static long get(const char *url, bx_buf *body)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static bool healthy;
static bool health(void *arg, char *reason, size_t size)
{
    snprintf(reason, size, "kafka unreachable");
    return healthy;
}

static bx_metric served = {"bxt_served_total", "served", "counter", 0, NULL};

BX_TEST(metrics_endpoint_serves_health_and_metrics)
{
    bx_metric_register(&served);
    bx_metric_add(&served, 5);
    int port = 20000 + getpid() % 20000;
    char listen[32], url[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    bx_metrics_server *srv = NULL;
    bx_error err = {0};
    REQUIRE(bx_metrics_server_start(listen, health, NULL, &srv, &err) == BX_OK);
    bx_buf body;
    bx_buf_init(&body, 0);
    healthy = true;
    snprintf(url, sizeof(url), "http://%s/healthz", listen);
    CHECK_INT(get(url, &body), 200);
    CHECK_STR(body.data, "ok\n");
    bx_buf_reset(&body);
    healthy = false;
    CHECK_INT(get(url, &body), 503);
    CHECK_CONTAINS(body.data, "kafka unreachable");
    bx_buf_reset(&body);
    snprintf(url, sizeof(url), "http://%s/metrics", listen);
    CHECK_INT(get(url, &body), 200);
    CHECK_CONTAINS(body.data, "bxt_served_total 5\n");
    bx_buf_reset(&body);
    snprintf(url, sizeof(url), "http://%s/other", listen);
    CHECK_INT(get(url, &body), 404);
    bx_buf_free(&body);
    bx_metrics_server_stop(srv);
    CHECK_INT(bx_metrics_server_start("nonsense", NULL, NULL, &srv, &err), BX_EINVAL);
}
