/* bx-escalate: its settings, and bx_service_run over the functions of service.h. */
#include "bx_kafka.h"
#include "bx_service.h"
#include "duties.h"
#include "ladder.h"
#include "service.h"

#include <stdlib.h>
#include <string.h>

static struct {
    bx_common_conf common; /* log level, clock, metrics address (brokers and pg_url go to sc) */
    escalate_service_conf sc;
    const char *policy_path, *duties_path; /* duties_path "none": no duties */
    long long refresh_ms;
    ladder_policy *policy;
    duties_policy *duties;
} st;

static const char *const offset_resets[] = {"earliest", "latest", NULL};

static const bx_conf_row rows[] = {
    BX_SERVICE_CONF_ROWS(st.common, &st.sc.brokers, &st.sc.pg_url, &st.common.redis_url,
                         &st.common.pseudonym_key),
    BX_CONF_STR("BX_LADDER_POLICY", BX_DEFAULT_LADDER_POLICY, &st.policy_path,
                "the escalation ladder (deploy/policy/ladder.policy)"),
    BX_CONF_STR("BX_DUTIES_POLICY", BX_DEFAULT_DUTIES_POLICY, &st.duties_path,
                "calendar duties: term-start and transition checks, reports "
                "(deploy/policy/ladder-duties.policy; \"none\" for none)"),
    BX_CONF_STR("BX_CONSUMER_GROUP", "bx-escalate", &st.sc.group, "Kafka consumer group"),
    BX_CONF_STR("BX_RISK_TOPIC", BX_TOPIC_RISK, &st.sc.risk_topic, "topic of risk assessments"),
    BX_CONF_PSEUDONYM_KEY(&st.sc.pseudonym_key),
    BX_CONF_STR("BX_ANALYTICS_CASES_TOPIC", BX_TOPIC_ANALYTICS_CASES, &st.sc.analytics_cases_topic,
                "topic of the analysts' pseudonymised case stream"),
    BX_CONF_STR("BX_ACTIONS_TOPIC", BX_TOPIC_ACTIONS, &st.sc.actions_topic,
                "topic of case actions"),
    BX_CONF_STR(
        "BX_CONSUMER_OFFSET_RESET", "earliest", &st.sc.offset_reset,
        "where a new consumer group starts: earliest (everything) or latest (new facts only)"),
    BX_CONF_NUM32("BX_TIMER_LEASE_MS", "30000", 100, 3600000, &st.sc.timer_lease_ms,
                  "how long a claimed timer is held before another replica may take it"),
    BX_CONF_NUM("BX_REGISTRY_REFRESH_MS", "2000", 100, 3600000, &st.refresh_ms,
                "how often the registry revision is checked"),
    BX_CONF_NUM32("BX_ESCALATE_MAX_ATTEMPTS", "8", 1, 1000, &st.sc.max_attempts,
                  "tries of one input (PostgreSQL reachable) before it is dead-lettered and its "
                  "case flagged needs_attention"),
    BX_CONF_NUM32("BX_ESCALATE_OUTBOX_KEEP_DAYS", "7", 1, 3650, &st.sc.outbox_keep_days,
                  "days a relayed cases.outbox row is kept"),
    BX_CONF_NUM32("BX_ESCALATE_INPUT_BATCH", "200", 1, 200, &st.sc.input_batch,
                  "assessments and actions of a poll (up to 200) applied in one transaction (1: "
                  "each in its own)"),
    BX_CONF_NUM32("BX_ESCALATE_TIMER_BATCH", "100", 1, 10000, &st.sc.timer_batch,
                  "due timers fired in one transaction"),
};

static bx_status prepare(bx_error *err)
{
    st.sc.running = bx_service_running();
    bx_status s =
        bx_conf_check_choice("BX_CONSUMER_OFFSET_RESET", st.sc.offset_reset, offset_resets, err);
    if (s != BX_OK)
        return s;
    st.policy = calloc(1, sizeof(*st.policy));
    if (st.policy == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    IFOK(s, ladder_policy_load(st.policy_path, st.policy, err));
    st.sc.policy = st.policy;
    if (s != BX_OK || strcmp(st.duties_path, "none") == 0)
        return s;
    st.duties = calloc(1, sizeof(*st.duties));
    if (st.duties == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    IFOK(s, duties_policy_load(st.duties_path, st.duties, err));
    st.sc.duties = st.duties;
    return s;
}

static void release(void)
{
    free(st.duties);
    free(st.policy);
}

BX_SERVICE_START(escalate_service, &st.sc)
BX_SERVICE_CALL(escalate_service, step)
BX_SERVICE_CALL(escalate_service, tick)
/* stop: releases timer claims, leaves the group committing offsets */
BX_SERVICE_CALL(escalate_service, stop)

int main(int argc, char **argv)
{
    const bx_service_def def = {
        .name = "bx-escalate",
        .about = "assessments and actions to cases, tasks, deadlines and notification requests",
        .rows = rows,
        .nrows = sizeof(rows) / sizeof(rows[0]),
        .common = &st.common,
        .tick_ms = &st.refresh_ms,
        .ops = {prepare, release, escalate_service_start_op, escalate_service_step_op,
                escalate_service_tick_op, escalate_service_healthy, escalate_service_stop_op},
    };
    return bx_service_run(&def, argc, argv);
}
