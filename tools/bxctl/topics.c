/* bxctl topics: creates every topic of architecture.md. */
#include "bx_kafka.h"
#include "bxctl.h"

#include <stdio.h>
#include <string.h>

int bxctl_topics(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "create") != 0) {
        fprintf(stderr, "usage: bxctl topics create\n");
        return 2;
    }
    static const char *const topics[] = {
        BX_TOPIC_ATTENDANCE,
        BX_TOPIC_ACTIONS,
        BX_TOPIC_DLQ,
        BX_TOPIC_RISK,
        BX_TOPIC_CASE_EVENTS,
        BX_TOPIC_NOTIFY_REQUESTS,
        BX_TOPIC_NOTIFY_STATUS,
        BX_TOPIC_ANALYTICS_RISK,
        BX_TOPIC_ANALYTICS_ATTENDANCE,
        BX_TOPIC_ANALYTICS_CASES,
    };
    enum { N = sizeof(topics) / sizeof(topics[0]) };
    int partitions[N];
    for (int i = 0; i < N; i++)
        partitions[i] = (int)ctx->topic_partitions;
    bx_error err = {0};
    if (bx_kafka_create_topics(ctx->conf.kafka_brokers, topics, partitions, N, 15000, &err) !=
        BX_OK) {
        fprintf(stderr, "bxctl topics: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < N; i++)
        printf("topic %s (%d partitions)\n", topics[i], partitions[i]);
    return 0;
}
