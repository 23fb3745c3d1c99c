/* The Kafka wrappers against librdkafka's mock cluster, for what a real broker will not do on
 * demand: a group coordinator that stops answering. */
#include "bx_kafka.h"
#include "bx_test.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TOPIC         "bx.mock.commit"
#define OFFSET_COMMIT 8 /* the OffsetCommit request's API key */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static rd_kafka_t *mock_cluster(rd_kafka_mock_cluster_t **cluster)
{
    /* librdkafka's mock cluster speaks PLAINTEXT: the local broker's credentials in the
     * environment (bx_kafka_conf_credentials) are not for it */
    unsetenv("BX_KAFKA_USERNAME");
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    REQUIRE(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, sizeof(errstr)) ==
            RD_KAFKA_CONF_OK);
    REQUIRE(rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    *cluster = rd_kafka_handle_mock_cluster(rk);
    REQUIRE(*cluster != NULL);
    REQUIRE(rd_kafka_mock_topic_create(*cluster, TOPIC, 1, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    return rk;
}

/* Produces n one-letter messages ("a", "b", ...) to TOPIC and waits until each is acknowledged. */
static void produce_letters(const char *brokers, int n)
{
    bx_error err = {0};
    bx_producer *p = NULL;
    REQUIRE(n <= 26);
    REQUIRE(bx_producer_new(brokers, NULL, &p, &err) == BX_OK);
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slots[26];
    for (int i = 0; i < n; i++) {
        char v[2] = {(char)('a' + i), '\0'};
        bx_delivery_slot_arm(&slots[i], w);
        REQUIRE(bx_producer_send(p, TOPIC, "k", 1, v, 1, bx_delivery_slot_done, &slots[i]) ==
                BX_OK);
    }
    CHECK_INT(bx_delivery_wait_all(w, 10000), BX_OK);
    for (int i = 0; i < n; i++)
        CHECK_INT(slots[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    bx_producer_free(p, 1000);
}

static void consume_one(bx_consumer *c)
{
    rd_kafka_message_t *m = NULL;
    for (int i = 0; i < 300 && m == NULL; i++) {
        m = bx_consumer_poll(c, 100);
        if (m && m->err) {
            rd_kafka_message_destroy(m);
            m = NULL;
        }
    }
    REQUIRE(m != NULL);
    bx_consumer_done(c, m);
    rd_kafka_message_destroy(m);
}

BX_TEST(commit_gives_up_on_a_silent_coordinator)
{
    rd_kafka_mock_cluster_t *cluster = NULL;
    rd_kafka_t *rk = mock_cluster(&cluster);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(cluster);

    bx_error err = {0};
    produce_letters(brokers, 2);

    const char *topics[] = {TOPIC, NULL};
    bx_consumer *c = NULL;
    REQUIRE(bx_consumer_new(brokers, "bx-mock-commit", topics, NULL, &c, &err) == BX_OK);
    /* a coordinator that answers at once: the commit is done when the call returns */
    consume_one(c);
    CHECK_INT(bx_consumer_commit(c), BX_OK);
    consume_one(c); /* a new offset to commit */

    /* the next OffsetCommit is answered after 18 s: the call returns after its own bound (10 s)
     * instead of holding the consumer's thread past its poll interval */
    REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(cluster, 1, OFFSET_COMMIT, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR,
                                                         18000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    long long t0 = now_ms();
    CHECK_INT(bx_consumer_commit(c), BX_ETIMEOUT);
    long long took = now_ms() - t0;
    CHECK(took >= 9000 && took < 16000);
    if (!(took >= 9000 && took < 16000))
        fprintf(stderr, "commit returned after %lld ms\n", took);

    bx_consumer_free(c);
    rd_kafka_destroy(rk);
}

#define HEARTBEAT 12 /* the Heartbeat request's API key */

/* The next message of c, or NULL after 30 s. */
static rd_kafka_message_t *next_message(bx_consumer *c)
{
    for (int i = 0; i < 300; i++) {
        rd_kafka_message_t *m = bx_consumer_poll(c, 100);
        if (m && !m->err)
            return m;
        if (m)
            rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* A static member fenced (FENCED_INSTANCE_ID on its heartbeat: what a real cluster answered a
 * bx-score replica whose earlier join the moved coordinator processed late) is a fatal error in
 * librdkafka: the consumer says so, polls nothing more, and once renewed consumes again from the
 * last committed offset, so what it had processed and not committed comes again. */
BX_TEST(a_fenced_static_member_is_renewed)
{
    rd_kafka_mock_cluster_t *cluster = NULL;
    rd_kafka_t *rk = mock_cluster(&cluster);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(cluster);
    bx_error err = {0};
    REQUIRE(bx_kafka_membership_set("bx-mock-replica-1", 0, 6000, 500, &err) == BX_OK);

    produce_letters(brokers, 3);

    const char *topics[] = {TOPIC, NULL};
    bx_consumer *c = NULL;
    REQUIRE(bx_consumer_new(brokers, "bx-mock-fenced", topics, NULL, &c, &err) == BX_OK);
    rd_kafka_message_t *m = next_message(c);
    REQUIRE(m != NULL);
    int64_t first = m->offset;
    bx_consumer_done(c, m);
    rd_kafka_message_destroy(m);
    CHECK_INT(bx_consumer_commit(c), BX_OK);
    m = next_message(c); /* processed, not committed */
    REQUIRE(m != NULL);
    int64_t second = m->offset;
    CHECK(second == first + 1);
    bx_consumer_done(c, m);
    rd_kafka_message_destroy(m);
    CHECK(!bx_consumer_failed(c));

    rd_kafka_mock_push_request_errors(cluster, HEARTBEAT, 1, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    for (int i = 0; i < 200 && !bx_consumer_failed(c); i++) {
        m = bx_consumer_poll(c, 100);
        if (m)
            rd_kafka_message_destroy(m); /* the third message may come before the fencing */
    }
    REQUIRE(bx_consumer_failed(c));
    CHECK(bx_consumer_poll(c, 10) == NULL);

    REQUIRE(bx_consumer_renew(c, &err) == BX_OK);
    CHECK(!bx_consumer_failed(c));
    m = next_message(c);
    REQUIRE(m != NULL);
    CHECK(m->offset == second); /* from the last commit: the uncommitted one comes again */
    rd_kafka_message_destroy(m);
    bx_consumer_recover(c); /* nothing to do on a sound consumer */
    CHECK(!bx_consumer_failed(c));

    bx_consumer_free(c);
    rd_kafka_destroy(rk);
}

/* A consumer loop's poll: at most max a call, every message once, in order; nothing once the
 * running flag is down. */
BX_TEST(poll_batch_takes_at_most_max_in_order)
{
    rd_kafka_mock_cluster_t *cluster = NULL;
    rd_kafka_t *rk = mock_cluster(&cluster);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(cluster);
    bx_error err = {0};
    produce_letters(brokers, 5);

    const char *topics[] = {TOPIC, NULL};
    bx_consumer *c = NULL;
    REQUIRE(bx_consumer_new(brokers, "bx-mock-batch", topics, NULL, &c, &err) == BX_OK);
    volatile sig_atomic_t running = 0;
    rd_kafka_message_t *msgs[3];
    CHECK_INT(bx_consumer_poll_batch(c, msgs, 3, 100, 0, 0, &running), 0);
    running = 1;
    char seen[8] = "";
    int total = 0;
    for (int i = 0; i < 300 && total < 5; i++) {
        int n = bx_consumer_poll_batch(c, msgs, 3, 100, i % 2 ? 0 : 50, 0, &running);
        CHECK(n >= 0 && n <= 3);
        for (int k = 0; k < n; k++) {
            CHECK_INT(msgs[k]->err, RD_KAFKA_RESP_ERR_NO_ERROR);
            if (total < 7 && msgs[k]->len == 1)
                seen[total] = ((const char *)msgs[k]->payload)[0];
            total++;
            rd_kafka_message_destroy(msgs[k]);
        }
    }
    CHECK_INT(total, 5);
    CHECK_STR(seen, "abcde");
    bx_consumer_free(c);
    rd_kafka_destroy(rk);
}

/* A batch that lingers a minute for more stops once no message came for the gap: a pause in the
 * stream is handled at once, not a minute later. */
BX_TEST(poll_batch_stops_lingering_when_the_stream_pauses)
{
    rd_kafka_mock_cluster_t *cluster = NULL;
    rd_kafka_t *rk = mock_cluster(&cluster);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(cluster);
    bx_error err = {0};
    produce_letters(brokers, 3);

    const char *topics[] = {TOPIC, NULL};
    bx_consumer *c = NULL;
    REQUIRE(bx_consumer_new(brokers, "bx-mock-gap", topics, NULL, &c, &err) == BX_OK);
    rd_kafka_message_t *msgs[10];
    int total = 0;
    long long longest = 0;
    for (int i = 0; i < 60 && total < 3; i++) {
        long long t0 = now_ms();
        int n = bx_consumer_poll_batch(c, msgs, 10, 500, 60000, 50, NULL);
        if (n > 0 && now_ms() - t0 > longest)
            longest = now_ms() - t0;
        for (int k = 0; k < n; k++)
            rd_kafka_message_destroy(msgs[k]);
        total += n;
    }
    CHECK_INT(total, 3);
    /* the minute's linger would have held the batch; the gap of 50 ms ended it */
    if (longest >= 30000)
        BX_FAIL_AT("a batch took %lld ms: it waited out the linger", longest);
    bx_consumer_free(c);
    rd_kafka_destroy(rk);
}

BX_TEST(topics_prepared_at_start_are_sent_to_and_a_missing_one_does_not_stop_it)
{
    rd_kafka_mock_cluster_t *cluster = NULL;
    rd_kafka_t *rk = mock_cluster(&cluster);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(cluster);
    bx_error err = {0};
    bx_producer *p = NULL;
    REQUIRE(bx_producer_new(brokers, NULL, &p, &err) == BX_OK);
    /* one topic there, one not: the missing one is logged and passed over */
    const char *topics[] = {TOPIC, "bx.mock.missing", NULL};
    bx_producer_prepare_topics(p, topics, 3000);
    bx_producer_prepare_topics(p, NULL, 3000);
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(p, TOPIC, "k", 1, "v", 1, bx_delivery_slot_done, &slot) == BX_OK);
    CHECK_INT(bx_delivery_wait_all(w, 10000), BX_OK);
    CHECK_INT(slot.err, RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    bx_producer_free(p, 1000);
    rd_kafka_destroy(rk);
}
