/* bx-score: configuration, start, loop, orderly stop. */
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_service.h"
#include "score.h"
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    running = 0;
}

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    bx_common_conf common = {0};
    char *policy_path = NULL, *group = NULL, *topic = NULL, *offset_reset = NULL;
    long long batch = 0, batch_ms = 0, refresh = 0;
    bx_conf_row rows[] = {
        BX_COMMON_CONF_ROWS(common),
        {"BX_SCORE_POLICY", BX_CONF_STRING, BX_DEFAULT_SCORE_POLICY, 0, 0, &policy_path,
         "score weights and tier bounds (deploy/policy/score.policy)"},
        {"BX_SCORE_BATCH", BX_CONF_INT, "500", 1, 100000, &batch,
         "messages processed together (one Redis pipeline, one PostgreSQL write)"},
        {"BX_SCORE_BATCH_MS", BX_CONF_INT, "50", 1, 10000, &batch_ms,
         "how long a batch waits to fill once it has a message"},
        {"BX_CONSUMER_GROUP", BX_CONF_STRING, "bx-score", 0, 0, &group, "Kafka consumer group"},
        {"BX_ATTENDANCE_TOPIC", BX_CONF_STRING, BX_TOPIC_ATTENDANCE, 0, 0, &topic,
         "topic of attendance facts"},
        {"BX_CONSUMER_OFFSET_RESET", BX_CONF_STRING, "earliest", 0, 0, &offset_reset,
         "where a new consumer group starts: earliest (everything) or latest (new facts only)"},
        {"BX_REGISTRY_REFRESH_MS", BX_CONF_INT, "2000", 100, 3600000, &refresh,
         "how often the registry revision is checked"},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    int exit_code =
        bx_service_start_up("bx-score", "attendance facts to streaks, windows and risk assessments",
                            rows, nrows, &common, argc, argv);
    if (exit_code >= 0)
        return exit_code;
    bx_error err = {0};
    static const char *const resets[] = {"earliest", "latest", NULL};
    if (!bx_service_check_choice("bx-score", "BX_CONSUMER_OFFSET_RESET", offset_reset, resets)) {
        bx_conf_free(rows, nrows);
        return 2;
    }
    score_policy policy;
    if (score_policy_load(policy_path, &policy, &err) != BX_OK) {
        fprintf(stderr, "bx-score: %s\n", err.msg);
        bx_conf_free(rows, nrows);
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    score_service_conf sc = {common.kafka_brokers,
                             common.pg_url,
                             common.redis_url,
                             group,
                             topic,
                             offset_reset,
                             common.pseudonym_key,
                             &policy,
                             (int)batch,
                             (int)batch_ms,
                             (int)refresh,
                             &running};
    score_service *sv = NULL;
    bx_metrics_server *metrics = NULL;
    bx_status s = score_service_start(&sc, &sv, &err);
    if (s == BX_OK && common.metrics_listen[0])
        s = bx_metrics_server_start(common.metrics_listen, score_service_healthy, sv, &metrics,
                                    &err);
    if (s != BX_OK) {
        bx_error("cannot start: %s", err.msg);
        score_service_stop(sv);
        bx_conf_free(rows, nrows);
        return 1;
    }
    long long last_tick = monotonic_ms();
    while (running) {
        score_service_step(sv);
        if (monotonic_ms() - last_tick >= refresh) {
            last_tick = monotonic_ms();
            score_service_tick(sv);
        }
    }
    bx_info("stopping");
    bx_metrics_server_stop(metrics);
    score_service_stop(sv); /* leaves the group, committing what was processed */
    bx_conf_free(rows, nrows);
    return 0;
}
