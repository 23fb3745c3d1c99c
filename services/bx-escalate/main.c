/* bx-escalate: configuration, start, loop, orderly stop. */
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_service.h"
#include "duties.h"
#include "ladder.h"
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
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
    char *policy_path = NULL, *duties_path = NULL, *group = NULL, *risk_topic = NULL,
         *actions_topic = NULL, *offset_reset = NULL;
    long long lease = 0, refresh = 0;
    bx_conf_row rows[] = {
        BX_COMMON_CONF_ROWS(common),
        {"BX_LADDER_POLICY", BX_CONF_STRING, BX_DEFAULT_LADDER_POLICY, 0, 0, &policy_path,
         "the escalation ladder (deploy/policy/ladder.policy)"},
        {"BX_DUTIES_POLICY", BX_CONF_STRING, BX_DEFAULT_DUTIES_POLICY, 0, 0, &duties_path,
         "calendar duties: term-start and transition checks, reports "
         "(deploy/policy/ladder-duties.policy; \"none\" for none)"},
        {"BX_CONSUMER_GROUP", BX_CONF_STRING, "bx-escalate", 0, 0, &group, "Kafka consumer group"},
        {"BX_RISK_TOPIC", BX_CONF_STRING, BX_TOPIC_RISK, 0, 0, &risk_topic,
         "topic of risk assessments"},
        {"BX_ACTIONS_TOPIC", BX_CONF_STRING, BX_TOPIC_ACTIONS, 0, 0, &actions_topic,
         "topic of case actions"},
        {"BX_CONSUMER_OFFSET_RESET", BX_CONF_STRING, "earliest", 0, 0, &offset_reset,
         "where a new consumer group starts: earliest (everything) or latest (new facts only)"},
        {"BX_TIMER_LEASE_MS", BX_CONF_INT, "30000", 100, 3600000, &lease,
         "how long a claimed timer is held before another replica may take it"},
        {"BX_REGISTRY_REFRESH_MS", BX_CONF_INT, "2000", 100, 3600000, &refresh,
         "how often the registry revision is checked"},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    int exit_code = bx_service_start_up("bx-escalate",
                                        "assessments and actions to cases, tasks, deadlines and "
                                        "notification requests",
                                        rows, nrows, &common, argc, argv);
    if (exit_code >= 0)
        return exit_code;
    bx_error err = {0};
    static const char *const resets[] = {"earliest", "latest", NULL};
    if (!bx_service_check_choice("bx-escalate", "BX_CONSUMER_OFFSET_RESET", offset_reset, resets)) {
        bx_conf_free(rows, nrows);
        return 2;
    }
    ladder_policy *policy = calloc(1, sizeof(*policy));
    if (policy == NULL || ladder_policy_load(policy_path, policy, &err) != BX_OK) {
        fprintf(stderr, "bx-escalate: %s\n", policy ? err.msg : "out of memory");
        free(policy);
        bx_conf_free(rows, nrows);
        return 2;
    }
    duties_policy *duties = NULL;
    if (strcmp(duties_path, "none") != 0) {
        duties = calloc(1, sizeof(*duties));
        if (duties == NULL || duties_policy_load(duties_path, duties, &err) != BX_OK) {
            fprintf(stderr, "bx-escalate: %s\n", duties ? err.msg : "out of memory");
            free(duties);
            free(policy);
            bx_conf_free(rows, nrows);
            return 2;
        }
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    escalate_service_conf sc = {.brokers = common.kafka_brokers,
                                .pg_url = common.pg_url,
                                .group = group,
                                .risk_topic = risk_topic,
                                .actions_topic = actions_topic,
                                .offset_reset = offset_reset,
                                .policy = policy,
                                .duties = duties,
                                .timer_lease_ms = (int)lease,
                                .running = &running};
    escalate_service *sv = NULL;
    bx_metrics_server *metrics = NULL;
    bx_status s = escalate_service_start(&sc, &sv, &err);
    if (s == BX_OK && common.metrics_listen[0])
        s = bx_metrics_server_start(common.metrics_listen, escalate_service_healthy, sv, &metrics,
                                    &err);
    if (s != BX_OK) {
        bx_error("cannot start: %s", err.msg);
        escalate_service_stop(sv);
        free(duties);
        free(policy);
        bx_conf_free(rows, nrows);
        return 1;
    }
    long long last_tick = monotonic_ms();
    while (running) {
        escalate_service_step(sv);
        if (monotonic_ms() - last_tick >= refresh) {
            last_tick = monotonic_ms();
            escalate_service_tick(sv);
        }
    }
    bx_info("stopping");
    bx_metrics_server_stop(metrics);
    escalate_service_stop(sv); /* releases timer claims, leaves the group committing offsets */
    free(duties);
    free(policy);
    bx_conf_free(rows, nrows);
    return 0;
}
