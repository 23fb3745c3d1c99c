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
    BX_CONF_KAFKA_BROKERS(&st.sc.brokers),
    BX_CONF_PG_URL(&st.sc.pg_url),
    BX_CONF_REDIS_URL(&st.sc.redis_url),
    BX_CONF_LOG_LEVEL(&st.common.log_level),
    BX_CONF_CLOCK(&st.common.clock),
    BX_CONF_METRICS_LISTEN(&st.common.metrics_listen),
    BX_CONF_PSEUDONYM_KEY(&st.sc.pseudonym_key),
    BX_CONF_STR("BX_SCORE_POLICY", BX_DEFAULT_SCORE_POLICY, &st.policy_path,
                "score weights and tier bounds (deploy/policy/score.policy)"),
    BX_CONF_NUM32("BX_SCORE_BATCH", "500", 1, 100000, &st.sc.batch_max,
                  "messages processed together (one Redis pipeline, one PostgreSQL write)"),
    BX_CONF_NUM32("BX_SCORE_BATCH_MS", "50", 1, 10000, &st.sc.batch_ms,
                  "how long a batch waits to fill once it has a message"),
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

static bx_status start(void **service, bx_error *err)
{
    score_service *sv = NULL;
    bx_status s = score_service_start(&st.sc, &sv, err);
    *service = sv;
    return s;
}

static void step(void *sv)
{
    score_service_step(sv);
}

static void tick(void *sv)
{
    score_service_tick(sv);
}

static void stop(void *sv)
{
    score_service_stop(sv); /* leaves the group, committing what was processed */
}

int main(int argc, char **argv)
{
    const bx_service_def def = {
        .name = "bx-score",
        .about = "attendance facts to streaks, windows and risk assessments",
        .rows = rows,
        .nrows = sizeof(rows) / sizeof(rows[0]),
        .common = &st.common,
        .tick_ms = &st.refresh_ms,
        .ops = {prepare, NULL, start, step, tick, score_service_healthy, stop},
    };
    return bx_service_run(&def, argc, argv);
}
