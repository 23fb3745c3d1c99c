/* Integration test of analysts' Kafka principals (issue 16, access): `bxctl analyst create` makes
 * a principal the real broker signs in and limits to bx.analytics.* in groups
 * analyst.<name>.*, and `bxctl analyst disable` takes it away. Needs the broker bx-infra makes
 * with credentials, Kafka's jars (BX_KAFKA_HOME, default bx-infra's) and a Java runtime. */
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_test.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void require_kafka_credentials(void)
{
    char marker[600];
    snprintf(marker, sizeof(marker), "%s/secrets/kafka.auth", itest_env("BX_RUN_DIR", ".run"));
    if (access(marker, R_OK) != 0)
        fprintf(stderr,
                "the Kafka of %s was made without credentials: deploy/local/bx-infra reset && "
                "deploy/local/bx-infra up\n",
                itest_env("BX_RUN_DIR", ".run"));
    REQUIRE(access(marker, R_OK) == 0);
    REQUIRE(getenv("BX_KAFKA_USERNAME") != NULL); /* the administrator: source .run/env */
}

/* "t_" and 10 random lowercase hex digits: a name no other run has. */
static const char *random_name(void)
{
    static char name[16];
    unsigned char raw[5];
    FILE *f = fopen("/dev/urandom", "rb");
    REQUIRE(f != NULL && fread(raw, 1, sizeof(raw), f) == sizeof(raw));
    fclose(f);
    snprintf(name, sizeof(name), "t_%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3], raw[4]);
    return name;
}

/* The value of "key=value" at the start of a line of text, or "" (static storage). */
static const char *property(const char *text, const char *key)
{
    static char value[256];
    value[0] = '\0';
    size_t k = strlen(key);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, k) == 0 && line[k] == '=') {
            size_t n = strcspn(line + k + 1, "\r\n");
            snprintf(value, sizeof(value), "%.*s", (int)n, line + k + 1);
            break;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return value;
}

static int occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle))
        n++;
    return n;
}

/* What `bxctl analyst create` printed for the analyst's client. */
typedef struct analyst_client {
    char brokers[256], protocol[32], mechanism[32], user[64], password[128];
} analyst_client;

static rd_kafka_conf_t *conf_as(const analyst_client *a)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    const char *settings[][2] = {
        {"bootstrap.servers", a->brokers}, {"security.protocol", a->protocol},
        {"sasl.mechanisms", a->mechanism}, {"sasl.username", a->user},
        {"sasl.password", a->password},    {"log_level", "0"}};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        REQUIRE(rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) ==
                RD_KAFKA_CONF_OK);
    return conf;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Where the test is, on stderr with the time since its first step: ctest keeps the output of a
 * test that ran out of time, and it tells which step waited. */
static void step(const char *what)
{
    static long long start;
    if (start == 0)
        start = now_ms();
    fprintf(stderr, "analyst_access: %s (%lld ms)\n", what, now_ms() - start);
}

static bool contains(const void *payload, size_t len, const char *want)
{
    size_t n = strlen(want);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp((const char *)payload + i, want, n) == 0)
            return true;
    return false;
}

/* Reads topics (at most 4) from their beginning as the analyst in group, for up to 40 s. The
 * first error the consumer meets; else RD_KAFKA_RESP_ERR_NO_ERROR once each topic gave a message
 * or its end (want NULL), or once a message containing want was read. */
static rd_kafka_resp_err_t consume(const analyst_client *a, const char *group,
                                   const char *const *topics, const char *want)
{
    rd_kafka_conf_t *conf = conf_as(a);
    char errstr[256];
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    size_t count = 0;
    for (; topics[count] && count < 4; count++)
        rd_kafka_topic_partition_list_add(list, topics[count], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t result = rd_kafka_subscribe(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    bool done = result != RD_KAFKA_RESP_ERR_NO_ERROR, seen[4] = {false};
    size_t seen_count = 0;
    for (long long deadline = now_ms() + 40000; !done && now_ms() < deadline;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
            for (size_t i = 0; i < count; i++)
                if (!seen[i] && strcmp(topic, topics[i]) == 0) {
                    seen[i] = true;
                    seen_count++;
                }
            if (want)
                done = m->err == RD_KAFKA_RESP_ERR_NO_ERROR && contains(m->payload, m->len, want);
            else
                done = seen_count == count;
        } else if (m->err != RD_KAFKA_RESP_ERR__TRANSPORT) {
            result = m->err;
            done = true;
        }
        rd_kafka_message_destroy(m);
    }
    if (!done)
        result = RD_KAFKA_RESP_ERR__TIMED_OUT;
    itest_close_consumer(rk, 10000);
    return result;
}

/* A consumer as the analyst in group on topic, from its beginning, kept open by the caller
 * (rd_kafka_consumer_close and rd_kafka_destroy). */
static rd_kafka_t *open_consumer(const analyst_client *a, const char *group, const char *topic)
{
    rd_kafka_conf_t *conf = conf_as(a);
    char errstr[256];
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
    REQUIRE(rd_kafka_subscribe(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(list);
    return rk;
}

/* Polls rk for up to timeout_ms: the first error it meets, RD_KAFKA_RESP_ERR_NO_ERROR when a
 * message containing want came, or RD_KAFKA_RESP_ERR__TIMED_OUT. */
static rd_kafka_resp_err_t poll_for(rd_kafka_t *rk, const char *want, int timeout_ms)
{
    for (long long deadline = now_ms() + timeout_ms; now_ms() < deadline;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL)
            continue;
        rd_kafka_resp_err_t e = m->err;
        bool found = e == RD_KAFKA_RESP_ERR_NO_ERROR && contains(m->payload, m->len, want);
        rd_kafka_message_destroy(m);
        if (found)
            return RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
            e != RD_KAFKA_RESP_ERR__TRANSPORT)
            return e;
    }
    return RD_KAFKA_RESP_ERR__TIMED_OUT;
}

static rd_kafka_resp_err_t delivered;
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivered = m->err;
}

/* Produces value to topic with conf (taken); the broker's verdict. */
static rd_kafka_resp_err_t produce(rd_kafka_conf_t *conf, const char *topic, const char *value)
{
    char errstr[256];
    rd_kafka_conf_set(conf, "message.timeout.ms", "10000", errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_resp_err_t e =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("access", 6),
                          RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_flush(rk, 15000);
    else
        delivered = e;
    rd_kafka_destroy(rk);
    return delivered;
}

static rd_kafka_conf_t *admin_conf(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers",
                              itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), errstr,
                              sizeof(errstr)) == RD_KAFKA_CONF_OK);
    bx_error err = {0};
    REQUIRE(bx_kafka_conf_credentials(conf, &err) == BX_OK);
    return conf;
}

static void delete_topic(const char *topic)
{
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, admin_conf(), errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_destroy(rk);
}

typedef struct auth_seen {
    rd_kafka_resp_err_t last;
} auth_seen;

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    auth_seen *seen = opaque;
    if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION || seen->last == RD_KAFKA_RESP_ERR_NO_ERROR)
        seen->last = (rd_kafka_resp_err_t)code;
}

/* Asks the broker for metadata as the analyst for up to 15 s: RD_KAFKA_RESP_ERR_NO_ERROR when
 * it answered, else the error the client met (RD_KAFKA_RESP_ERR__AUTHENTICATION: refused). */
static rd_kafka_resp_err_t sign_in(const analyst_client *a)
{
    auth_seen seen = {RD_KAFKA_RESP_ERR_NO_ERROR};
    rd_kafka_conf_t *conf = conf_as(a);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, &seen);
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_resp_err_t result = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (int i = 0; i < 5; i++) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, NULL, &md, 3000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            result = RD_KAFKA_RESP_ERR_NO_ERROR;
            break;
        }
        rd_kafka_poll(rk, 100);
        if (seen.last == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
            result = seen.last;
            break;
        }
    }
    rd_kafka_destroy(rk);
    return result;
}

static const char *db_url(void)
{
    return itest_own_database("analyst");
}

BX_TEST(an_analyst_reads_the_analytics_streams_only_until_disabled)
{
    require_kafka_credentials();
    const char *name = random_name();
    char *out = NULL;
    step("bxctl analyst create");
    int rc = itest_bxctl(db_url(), NULL, (const char *[]){"analyst", "create", name, NULL}, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl analyst create: %s\n", out);
    REQUIRE(rc == 0);

    /* The client settings, for the listener this installation has: the administrator's own
     * protocol (bx-infra: SASL_PLAINTEXT), SCRAM-SHA-512, the principal analyst.<name>. */
    analyst_client a;
    memset(&a, 0, sizeof(a));
    snprintf(a.brokers, sizeof(a.brokers), "%s", property(out, "bootstrap.servers"));
    snprintf(a.protocol, sizeof(a.protocol), "%s", property(out, "security.protocol"));
    snprintf(a.mechanism, sizeof(a.mechanism), "%s", property(out, "sasl.mechanism"));
    snprintf(a.user, sizeof(a.user), "%s", property(out, "sasl.username"));
    snprintf(a.password, sizeof(a.password), "%s", property(out, "sasl.password"));
    CHECK_STR(a.brokers, itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"));
    CHECK_STR(a.protocol, itest_env("BX_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"));
    CHECK_STR(a.mechanism, "SCRAM-SHA-512");
    char principal[64];
    snprintf(principal, sizeof(principal), "analyst.%s", name);
    CHECK_STR(a.user, principal);
    REQUIRE(strlen(a.password) >= 24);
    /* shown once, in the settings; nowhere else in what bxctl wrote (stdout and stderr) */
    CHECK_INT(occurrences(out, a.password), 1);
    free(out);
    /* kept: the SCRAM credential, applied to the broker; the audit names no secret */
    char *row = itest_sql_rows_params(db_url(),
                                      "SELECT principal, group_prefix, applied_at IS NOT NULL, "
                                      "disabled_at IS NULL FROM analytics.analyst WHERE name = $1",
                                      1, (const char *[]){name});
    char want_row[160];
    snprintf(want_row, sizeof(want_row), "%s|%s.|t|t\n", principal, principal);
    CHECK_STR(row, want_row);
    free(row);
    char *audit = itest_sql_rows(db_url(), "SELECT action, detail FROM console.audit WHERE "
                                           "action LIKE 'analyst_%' ORDER BY id");
    CHECK_CONTAINS(audit, "analyst_create|");
    CHECK_CONTAINS(audit, principal);
    CHECK(strstr(audit, a.password) == NULL);
    free(audit);

    /* It signs in and reads the three analytics streams in a group under its prefix. */
    step("sign in, read the analytics streams");
    CHECK_INT(sign_in(&a), RD_KAFKA_RESP_ERR_NO_ERROR);
    char group[96], other_group[96], near_group[96];
    snprintf(group, sizeof(group), "%s.x", principal);
    const char *streams[] = {BX_TOPIC_ANALYTICS_RISK, BX_TOPIC_ANALYTICS_ATTENDANCE,
                             BX_TOPIC_ANALYTICS_CASES, NULL};
    CHECK_INT(consume(&a, group, streams, NULL), RD_KAFKA_RESP_ERR_NO_ERROR);
    /* What is on an analytics topic reaches it: a scratch topic under the prefix, written by the
     * administrator (the shared streams stay as the pipeline wrote them). */
    step("a scratch topic under the prefix");
    char scratch[128], value[128];
    snprintf(scratch, sizeof(scratch), "bx.analytics.itest-access-%d", (int)getpid());
    snprintf(value, sizeof(value), "{\"access\":\"%s\"}", name);
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(itest_env("BX_KAFKA_BROKERS", ""), (const char *[]){scratch},
                                   (const int[]){1}, 1, 15000, &err) == BX_OK);
    CHECK_INT(produce(admin_conf(), scratch, value), RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK_INT(consume(&a, group, (const char *[]){scratch, NULL}, name),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    /* read only */
    CHECK_INT(produce(conf_as(&a), scratch, value), RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);

    /* Nothing else: the pipeline's own streams, the dead letters */
    step("refused topics and groups");
    CHECK_INT(consume(&a, group, (const char *[]){BX_TOPIC_ATTENDANCE, NULL}, NULL),
              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    CHECK_INT(consume(&a, group, (const char *[]){BX_TOPIC_RISK, NULL}, NULL),
              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    CHECK_INT(consume(&a, group, (const char *[]){BX_TOPIC_DLQ, NULL}, NULL),
              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    /* ... and no group outside analyst.<name>.: another analyst's, a service's, nor one that
     * only starts with the name (the prefix ends with its dot) */
    snprintf(other_group, sizeof(other_group), "analyst.someone_else.x");
    snprintf(near_group, sizeof(near_group), "%sx.y", principal);
    const char *risk[] = {BX_TOPIC_ANALYTICS_RISK, NULL};
    CHECK_INT(consume(&a, other_group, risk, NULL), RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    CHECK_INT(consume(&a, near_group, risk, NULL), RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    CHECK_INT(consume(&a, "bx-escalate", risk, NULL), RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);

    /* A name is made once. */
    rc = itest_bxctl(db_url(), NULL, (const char *[]){"analyst", "create", name, NULL}, &out);
    CHECK(rc != 0);
    CHECK_CONTAINS(out, "exists");
    CHECK(strstr(out, "sasl.password") == NULL);
    free(out);

    /* Disabled: the ACLs go first, so even a consumer signed in before is cut off; then the
     * broker refuses the password. */
    step("bxctl analyst disable under a live consumer");
    rd_kafka_t *live = open_consumer(&a, group, scratch);
    CHECK_INT(poll_for(live, value, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rc = itest_bxctl(db_url(), NULL, (const char *[]){"analyst", "disable", name, NULL}, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl analyst disable: %s\n", out);
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(out, "3 ACLs");
    CHECK(strstr(out, a.password) == NULL);
    free(out);
    char later[128];
    snprintf(later, sizeof(later), "{\"access\":\"%s after\"}", name);
    CHECK_INT(produce(admin_conf(), scratch, later), RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK_INT(poll_for(live, later, 30000), RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    itest_close_consumer(live, 10000);
    step("sign in refused");
    CHECK_INT(sign_in(&a), RD_KAFKA_RESP_ERR__AUTHENTICATION);
    row = itest_sql_rows_params(db_url(),
                                "SELECT disabled_at IS NOT NULL FROM analytics.analyst WHERE "
                                "name = $1",
                                1, (const char *[]){name});
    CHECK_STR(row, "t\n");
    free(row);
    audit = itest_sql_rows(db_url(), "SELECT action FROM console.audit WHERE action LIKE "
                                     "'analyst_%' ORDER BY id");
    CHECK_STR(audit, "analyst_create\nanalyst_disable\n");
    free(audit);
    /* twice is refused: nothing is active under that name */
    rc = itest_bxctl(db_url(), NULL, (const char *[]){"analyst", "disable", name, NULL}, &out);
    CHECK(rc != 0);
    CHECK_CONTAINS(out, "no active analyst");
    free(out);
    delete_topic(scratch);
    step("done");
}

BX_TEST(a_create_the_broker_cannot_take_leaves_nothing)
{
    require_kafka_credentials();
    const char *name = random_name();
    char env_url[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url());
    const char *env[] = {env_url, "BX_KAFKA_HOME=/nonexistent/kafka", NULL};
    const char *argv[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "analyst", "create", name, NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run(argv, env, &out);
    CHECK_INT(rc, 1);
    CHECK_CONTAINS(out.data, "BX_KAFKA_HOME");
    CHECK(strstr(out.data, "sasl.password") == NULL);
    bx_buf_free(&out);
    /* no row: the name can be tried again once the tools are there */
    char *row =
        itest_sql_rows_params(db_url(), "SELECT count(*) FROM analytics.analyst WHERE name = $1", 1,
                              (const char *[]){name});
    CHECK_STR(row, "0\n");
    free(row);
}
