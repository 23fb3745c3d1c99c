/* bx-score: its settings, and bx_service_run over the functions of service.h. */
#include "bx_kafka.h"
#include "bx_service.h"
#include "score.h"
#include "service.h"

static struct {
    bx_common_conf common; /* log level, clock, metrics address (the rest go to sc) */
    score_service_conf sc;
    const char *policy_path;
    long long refresh_ms;
    score_policy policy;
} st;

static const char *const offset_resets[] = {"earliest", "latest", NULL};

static const bx_conf_row rows[] = {
    BX_SERVICE_CONF_ROWS(st.common, &st.sc.brokers, &st.sc.pg_url, &st.sc.redis_url,
                         &st.common.pseudonym_key),
    BX_CONF_PSEUDONYM_KEY(&st.sc.pseudonym_key),
    BX_CONF_STR("BX_SCORE_POLICY", BX_DEFAULT_SCORE_POLICY, &st.policy_path,
                "score weights and tier bounds (deploy/policy/score.policy)"),
    BX_CONF_NUM32("BX_SCORE_BATCH", "2000", 1, 100000, &st.sc.batch_max,
                  "messages processed together (one Redis pipeline, one PostgreSQL write)"),
    BX_CONF_NUM32("BX_SCORE_BATCH_MS", "50", 1, 10000, &st.sc.batch_ms,
                  "how long a batch waits to fill once it has a message"),
    BX_CONF_NUM32("BX_SCORE_BATCH_GAP_MS", "10", 0, 10000, &st.sc.batch_gap_ms,
                  "a batch stops waiting when no message came for this long (0: never)"),
    BX_CONF_STR("BX_CONSUMER_GROUP", "bx-score", &st.sc.group, "Kafka consumer group"),
    BX_CONF_STR("BX_ATTENDANCE_TOPIC", BX_TOPIC_ATTENDANCE, &st.sc.topic,
                "topic of attendance facts"),
    BX_CONF_STR("BX_ANALYTICS_RISK_TOPIC", BX_TOPIC_ANALYTICS_RISK, &st.sc.analytics_risk_topic,
                "topic of the analysts' pseudonymised assessments"),
    BX_CONF_STR("BX_ANALYTICS_ATTENDANCE_TOPIC", BX_TOPIC_ANALYTICS_ATTENDANCE,
                &st.sc.analytics_attendance_topic,
                "topic of the analysts' daily attendance aggregates"),
    BX_CONF_STR(
        "BX_CONSUMER_OFFSET_RESET", "earliest", &st.sc.offset_reset,
        "where a new consumer group starts: earliest (everything) or latest (new facts only)"),
    BX_CONF_NUM("BX_REGISTRY_REFRESH_MS", "2000", 100, 3600000, &st.refresh_ms,
                "how often the registry revision is checked"),
};

static bx_status prepare(bx_error *err)
{
    st.sc.running = bx_service_running();
    st.sc.policy = &st.policy;
    bx_status s =
        bx_conf_check_choice("BX_CONSUMER_OFFSET_RESET", st.sc.offset_reset, offset_resets, err);
    IFOK(s, score_policy_load(st.policy_path, &st.policy, err));
    return s;
}

BX_SERVICE_START(score_service, &st.sc)
BX_SERVICE_CALL(score_service, step)
BX_SERVICE_CALL(score_service, tick)
/* stop: leaves the group, committing what was processed */
BX_SERVICE_CALL(score_service, stop)

int main(int argc, char **argv)
{
    const bx_service_def def = {
        .name = "bx-score",
        .about = "attendance facts to streaks, windows and risk assessments",
        .rows = rows,
        .nrows = sizeof(rows) / sizeof(rows[0]),
        .common = &st.common,
        .tick_ms = &st.refresh_ms,
        .ops = {prepare, NULL, score_service_start_op, score_service_step_op, score_service_tick_op,
                score_service_healthy, score_service_stop_op},
    };
    return bx_service_run(&def, argc, argv);
}
