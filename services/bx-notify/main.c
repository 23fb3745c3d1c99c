/* bx-notify: its settings, and bx_service_run over the functions of service.h. */
#include "bx_kafka.h"
#include "bx_service.h"
#include "dispatch.h"
#include "service.h"
#include "template.h"

static struct {
    bx_common_conf common; /* log level, clock, metrics address (the rest go to sc) */
    notify_service_conf sc;
    const char *templates_path, *quiet_hours, *digest_time;
    template_set *templates;
} st;

static const char *const offset_resets[] = {"earliest", "latest", NULL};
static const char *const provider_kinds[] = {"file", "webhook", "aliyun", NULL};

static const bx_conf_row rows[] = {
    BX_SERVICE_CONF_ROWS(st.common, &st.sc.brokers, &st.sc.pg_url, &st.sc.redis_url,
                         &st.common.pseudonym_key),
    BX_CONF_STR("BX_NOTIFY_TEMPLATES", BX_DEFAULT_TEMPLATES, &st.templates_path,
                "the message templates (deploy/policy/notify.templates)"),
    BX_CONF_STR("BX_CONSUMER_GROUP", "bx-notify", &st.sc.group, "Kafka consumer group"),
    BX_CONF_STR("BX_NOTIFY_REQUESTS_TOPIC", BX_TOPIC_NOTIFY_REQUESTS, &st.sc.requests_topic,
                "topic of notification requests"),
    BX_CONF_STR("BX_NOTIFY_STATUS_TOPIC", BX_TOPIC_NOTIFY_STATUS, &st.sc.status_topic,
                "topic of notification outcomes"),
    BX_CONF_STR("BX_CONSUMER_OFFSET_RESET", "earliest", &st.sc.offset_reset,
                "where a new consumer group starts: earliest or latest"),
    BX_CONF_STR("BX_NOTIFY_PROVIDER", "file", &st.sc.provider.kind,
                "SMS provider adapter: file, webhook or aliyun"),
    BX_CONF_STR("BX_NOTIFY_PROVIDER_FILE", "bx-notify-sms.jsonl", &st.sc.provider.file_path,
                "file adapter: the JSON-lines file messages are appended to"),
    BX_CONF_STR(
        "BX_NOTIFY_PROVIDER_URL", "", &st.sc.provider.url,
        "webhook: the send URL; aliyun: the endpoint (empty: https://dysmsapi.aliyuncs.com/)"),
    BX_CONF_STR("BX_NOTIFY_PROVIDER_STATUS_URL", "", &st.sc.provider.status_url,
                "webhook: the status query URL (empty: none; outcomes then wait for receipts)"),
    BX_CONF_STR("BX_NOTIFY_PROVIDER_SECRET", "", &st.sc.provider.secret,
                "webhook: HMAC key; aliyun: AccessKeySecret"),
    BX_CONF_STR("BX_NOTIFY_PROVIDER_ACCESS_KEY_ID", "", &st.sc.provider.access_key_id,
                "aliyun: AccessKeyId"),
    BX_CONF_STR("BX_NOTIFY_PROVIDER_TEMPLATE_CODE", "", &st.sc.provider.template_code,
                "aliyun: the approved template code (SMS_...)"),
    BX_CONF_NUM("BX_NOTIFY_PROVIDER_TIMEOUT_MS", "5000", 100, 120000, &st.sc.provider.timeout_ms,
                "a provider request's whole time limit"),
    BX_CONF_STR("BX_NOTIFY_PROVIDER_CA_FILE", "", &st.sc.provider.ca_file,
                "CA bundle for the provider's HTTPS (empty: the system's)"),
    BX_CONF_STR("BX_NOTIFY_RECEIPT_LISTEN", "127.0.0.1:8091", &st.sc.receipt_listen,
                "host:port of the delivery receipt endpoint (POST /v1/receipts); empty: off"),
    BX_CONF_STR("BX_NOTIFY_QUIET_HOURS", "21:30-07:00", &st.quiet_hours,
                "HH:MM-HH:MM (Asia/Shanghai) when parents get no SMS (they wait), or off"),
    BX_CONF_NUM32("BX_NOTIFY_DAILY_CAP", "8", 0, 1000, &st.sc.policy.daily_cap,
                  "SMS per phone number per day, below the provider's own (0: no cap)"),
    BX_CONF_NUM("BX_NOTIFY_RATE", "50", 0, 100000, &st.sc.rate_per_second,
                "SMS per second over all replicas, shared in Redis (0: no limit)"),
    BX_CONF_NUM32("BX_NOTIFY_RATE_BURST", "10", 1, 100000, &st.sc.rate_burst,
                  "sends allowed at once above the rate"),
    BX_CONF_STR("BX_NOTIFY_RATE_KEY", "bx:notify:rate", &st.sc.rate_key,
                "the Redis key of the shared rate"),
    BX_CONF_NUM32("BX_NOTIFY_MAX_ATTEMPTS", "8", 1, 1000, &st.sc.policy.max_attempts,
                  "sends a notification may take before it is dead"),
    BX_CONF_NUM("BX_NOTIFY_RETRY_BASE_MS", "2000", 1, 86400000, &st.sc.policy.retry_base_ms,
                "first retry's backoff ceiling (full jitter, doubling)"),
    BX_CONF_NUM("BX_NOTIFY_RETRY_MAX_MS", "600000", 1, 86400000, &st.sc.policy.retry_max_ms,
                "largest backoff ceiling"),
    BX_CONF_NUM("BX_NOTIFY_QUERY_DELAY_MS", "10000", 0, 86400000, &st.sc.policy.query_delay_ms,
                "after an unknown outcome, when the provider is asked"),
    BX_CONF_NUM("BX_NOTIFY_RECEIPT_CHECK_MS", "120000", 100, 86400000,
                &st.sc.policy.receipt_check_ms,
                "after acceptance, when the provider is asked if no receipt came"),
    BX_CONF_NUM("BX_NOTIFY_RECEIPT_LIMIT_MS", "86400000", 1000, 604800000,
                &st.sc.policy.receipt_limit_ms,
                "how long an answer is awaited after a send before the notification is dead"),
    BX_CONF_NUM("BX_NOTIFY_LEASE_MS", "30000", 1000, 3600000, &st.sc.policy.lease_ms,
                "how long a claimed notification is held before another replica may take it"),
    BX_CONF_NUM32("BX_NOTIFY_WORKERS", "8", 1, 64, &st.sc.workers, "sending threads"),
    BX_CONF_NUM32("BX_NOTIFY_KEEP_DAYS", "180", 30, 3650, &st.sc.keep_days,
                  "days finished notifications, their receipts and the requests taken are kept"),
    BX_CONF_NUM32("BX_NOTIFY_BATCH", "20", 1, 1000, &st.sc.batch,
                  "notifications a worker claims at once"),
    BX_CONF_NUM32("BX_NOTIFY_INTAKE_BATCH", "500", 1, 1000, &st.sc.intake_batch,
                  "requests taken from Kafka in one transaction (one poll)"),
    BX_CONF_STR("BX_NOTIFY_DIGEST_TIME", "16:30", &st.digest_time,
                "HH:MM (Asia/Shanghai) of the staff's daily digest of tasks"),
    BX_CONF_STR("BX_NOTIFY_DIGEST_TEMPLATE", "task_digest", &st.sc.digest_template,
                "the digest's template"),
};

/* Checks the settings that are more than a value and loads the templates. */
static bx_status prepare(bx_error *err)
{
    st.sc.running = bx_service_running();
    bx_error inner = {0};
    bx_status s =
        bx_conf_check_choice("BX_CONSUMER_OFFSET_RESET", st.sc.offset_reset, offset_resets, err);
    IFOK(s, bx_conf_check_choice("BX_NOTIFY_PROVIDER", st.sc.provider.kind, provider_kinds, err));
    if (s == BX_OK && dispatch_parse_quiet(st.quiet_hours, &st.sc.policy.quiet_start_min,
                                           &st.sc.policy.quiet_end_min, &inner) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, "BX_NOTIFY_QUIET_HOURS: %s", inner.msg);
    if (s == BX_OK && dispatch_parse_hhmm(st.digest_time, &st.sc.digest_minute, &inner) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, "BX_NOTIFY_DIGEST_TIME: %s", inner.msg);
    IFOK(s, template_set_load(st.templates_path, &st.templates, err));
    st.sc.templates = st.templates;
    if (s == BX_OK && !template_exists(st.templates, st.sc.digest_template))
        s = BX_ERR(err, BX_EINVAL, "BX_NOTIFY_DIGEST_TEMPLATE: no template \"%s\" in %s",
                   st.sc.digest_template, st.templates_path);
    return s;
}

static void release(void)
{
    template_set_free(st.templates);
}

BX_SERVICE_START(notify_service, &st.sc)
BX_SERVICE_CALL(notify_service, step)
/* stop: sends in flight finish and are recorded; offsets committed */
BX_SERVICE_CALL(notify_service, stop)

int main(int argc, char **argv)
{
    const bx_service_def def = {
        .name = "bx-notify",
        .about = "SMS to parents and tasks to staff: templates, recipients, quiet hours, caps, "
                 "retries, receipts, digests",
        .rows = rows,
        .nrows = sizeof(rows) / sizeof(rows[0]),
        .common = &st.common,
        .ops = {prepare, release, notify_service_start_op, notify_service_step_op, NULL,
                notify_service_healthy, notify_service_stop_op},
    };
    return bx_service_run(&def, argc, argv);
}
