/* bxctl topics: creates every topic of architecture.md and sets each one's retention. */
#include "bx_kafka.h"
#include "bxctl.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS (24LL * 3600 * 1000)

/* Every topic and how long Kafka keeps it (the README's "Operations"). What must last is in
 * PostgreSQL; a topic keeps what a consumer may still have to read after an outage, and the
 * analysts' streams a school year and a little more. */
static const struct topic_retention {
    const char *topic;
    long long days;
} topics[] = {
    {BX_TOPIC_ATTENDANCE, 14},
    {BX_TOPIC_ACTIONS, 14},
    {BX_TOPIC_DLQ, 30},
    {BX_TOPIC_RISK, 14},
    {BX_TOPIC_CASE_EVENTS, 30},
    {BX_TOPIC_NOTIFY_REQUESTS, 14},
    {BX_TOPIC_NOTIFY_STATUS, 14},
    {BX_TOPIC_ANALYTICS_RISK, 400},
    {BX_TOPIC_ANALYTICS_ATTENDANCE, 400},
    {BX_TOPIC_ANALYTICS_CASES, 400},
};
enum { NTOPICS = sizeof(topics) / sizeof(topics[0]) };

/* Sets retention.ms of every topic (created or already there) with one AlterConfigs request. */
static bx_status set_retention(const char *brokers, int timeout_ms, bx_error *err)
{
    bx_kafka_admin a;
    bx_status s = bx_kafka_topic_admin_begin(&a, brokers, RD_KAFKA_ADMIN_OP_ALTERCONFIGS, err);
    /* AlterConfigs replaces a topic's settings: min.insync.replicas goes again with retention. */
    rd_kafka_ConfigResource_t *res[NTOPICS];
    for (int i = 0; i < NTOPICS; i++) {
        char ms[24];
        snprintf(ms, sizeof(ms), "%lld", topics[i].days * DAY_MS);
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topics[i].topic);
        rd_kafka_ConfigResource_set_config(res[i], "retention.ms", ms);
        if (a.min_insync)
            rd_kafka_ConfigResource_set_config(res[i], "min.insync.replicas", a.min_insync);
    }
    if (s == BX_OK) {
        char errstr[512];
        rd_kafka_AdminOptions_set_request_timeout(a.opts, timeout_ms, errstr, sizeof(errstr));
        rd_kafka_AlterConfigs(a.rk, res, NTOPICS, a.opts, a.q);
        s = bx_kafka_admin_wait(&a, brokers, timeout_ms + 1000, "kafka: setting retention", err);
    }
    if (s == BX_OK) {
        size_t n = 0;
        const rd_kafka_ConfigResource_t **out = rd_kafka_AlterConfigs_result_resources(
            rd_kafka_event_AlterConfigs_result(a.answer), &n);
        for (size_t i = 0; i < n && s == BX_OK; i++) {
            if (rd_kafka_ConfigResource_error(out[i]))
                s = BX_ERR(err, BX_EIO, "kafka: retention of %s: %s",
                           rd_kafka_ConfigResource_name(out[i]),
                           rd_kafka_ConfigResource_error_string(out[i]));
        }
    }
    rd_kafka_ConfigResource_destroy_array(res, NTOPICS);
    bx_kafka_admin_end(&a);
    return s;
}

int bxctl_topics(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "create") != 0) {
        fprintf(stderr, "usage: bxctl topics create\n");
        return 2;
    }
    const char *names[NTOPICS];
    int partitions[NTOPICS];
    for (int i = 0; i < NTOPICS; i++) {
        names[i] = topics[i].topic;
        partitions[i] = (int)ctx->topic_partitions;
    }
    bx_error err = {0};
    if (bx_kafka_create_topics(ctx->conf.kafka_brokers, names, partitions, NTOPICS, 15000, &err) !=
            BX_OK ||
        set_retention(ctx->conf.kafka_brokers, 15000, &err) != BX_OK) {
        fprintf(stderr, "bxctl topics: %s\n", err.msg);
        return 1;
    }
    int replication = 1;
    const char *min_insync = NULL;
    if (bx_kafka_replication(&replication, &min_insync, &err) != BX_OK)
        return 1; /* cannot happen: bx_kafka_create_topics checked them */
    for (int i = 0; i < NTOPICS; i++)
        printf("topic %s (%d partitions, %d replicas, min.insync.replicas %s, retention %lld "
               "days)\n",
               topics[i].topic, partitions[i], replication, min_insync ? min_insync : "default",
               topics[i].days);
    return 0;
}
