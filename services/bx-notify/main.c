/* bx-notify: configuration, start, loop, orderly stop. */
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_service.h"
#include "dispatch.h"
#include "service.h"
#include "template.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

int main(int argc, char **argv)
{
    bx_common_conf common = {0};
    char *templates_path = NULL, *group = NULL, *requests_topic = NULL, *status_topic = NULL,
         *offset_reset = NULL, *kind = NULL, *file_path = NULL, *url = NULL, *status_url = NULL,
         *secret = NULL, *access_key_id = NULL, *template_code = NULL, *ca_file = NULL,
         *quiet = NULL, *rate_key = NULL, *digest_time = NULL, *digest_template = NULL,
         *receipt_listen = NULL;
    long long timeout = 0, daily_cap = 0, rate = 0, burst = 0, attempts = 0, retry_base = 0,
              retry_max = 0, query_delay = 0, receipt_check = 0, receipt_limit = 0, lease = 0,
              workers = 0, batch = 0;
    bx_conf_row rows[] = {
        BX_COMMON_CONF_ROWS(common),
        {"BX_NOTIFY_TEMPLATES", BX_CONF_STRING, BX_DEFAULT_TEMPLATES, 0, 0, &templates_path,
         "the message templates (deploy/policy/notify.templates)"},
        {"BX_CONSUMER_GROUP", BX_CONF_STRING, "bx-notify", 0, 0, &group, "Kafka consumer group"},
        {"BX_NOTIFY_REQUESTS_TOPIC", BX_CONF_STRING, BX_TOPIC_NOTIFY_REQUESTS, 0, 0,
         &requests_topic, "topic of notification requests"},
        {"BX_NOTIFY_STATUS_TOPIC", BX_CONF_STRING, BX_TOPIC_NOTIFY_STATUS, 0, 0, &status_topic,
         "topic of notification outcomes"},
        {"BX_CONSUMER_OFFSET_RESET", BX_CONF_STRING, "earliest", 0, 0, &offset_reset,
         "where a new consumer group starts: earliest or latest"},
        {"BX_NOTIFY_PROVIDER", BX_CONF_STRING, "file", 0, 0, &kind,
         "SMS provider adapter: file, webhook or aliyun"},
        {"BX_NOTIFY_PROVIDER_FILE", BX_CONF_STRING, "bx-notify-sms.jsonl", 0, 0, &file_path,
         "file adapter: the JSON-lines file messages are appended to"},
        {"BX_NOTIFY_PROVIDER_URL", BX_CONF_STRING, "", 0, 0, &url,
         "webhook: the send URL; aliyun: the endpoint (empty: https://dysmsapi.aliyuncs.com/)"},
        {"BX_NOTIFY_PROVIDER_STATUS_URL", BX_CONF_STRING, "", 0, 0, &status_url,
         "webhook: the status query URL (empty: none; outcomes then wait for receipts)"},
        {"BX_NOTIFY_PROVIDER_SECRET", BX_CONF_STRING, "", 0, 0, &secret,
         "webhook: HMAC key; aliyun: AccessKeySecret"},
        {"BX_NOTIFY_PROVIDER_ACCESS_KEY_ID", BX_CONF_STRING, "", 0, 0, &access_key_id,
         "aliyun: AccessKeyId"},
        {"BX_NOTIFY_PROVIDER_TEMPLATE_CODE", BX_CONF_STRING, "", 0, 0, &template_code,
         "aliyun: the approved template code (SMS_...)"},
        {"BX_NOTIFY_PROVIDER_TIMEOUT_MS", BX_CONF_INT, "5000", 100, 120000, &timeout,
         "a provider request's whole time limit"},
        {"BX_NOTIFY_PROVIDER_CA_FILE", BX_CONF_STRING, "", 0, 0, &ca_file,
         "CA bundle for the provider's HTTPS (empty: the system's)"},
        {"BX_NOTIFY_RECEIPT_LISTEN", BX_CONF_STRING, "127.0.0.1:8091", 0, 0, &receipt_listen,
         "host:port of the delivery receipt endpoint (POST /v1/receipts); empty: off"},
        {"BX_NOTIFY_QUIET_HOURS", BX_CONF_STRING, "21:30-07:00", 0, 0, &quiet,
         "HH:MM-HH:MM (Asia/Shanghai) when parents get no SMS (they wait), or off"},
        {"BX_NOTIFY_DAILY_CAP", BX_CONF_INT, "8", 0, 1000, &daily_cap,
         "SMS per phone number per day, below the provider's own (0: no cap)"},
        {"BX_NOTIFY_RATE", BX_CONF_INT, "50", 0, 100000, &rate,
         "SMS per second over all replicas, shared in Redis (0: no limit)"},
        {"BX_NOTIFY_RATE_BURST", BX_CONF_INT, "10", 1, 100000, &burst,
         "sends allowed at once above the rate"},
        {"BX_NOTIFY_RATE_KEY", BX_CONF_STRING, "bx:notify:rate", 0, 0, &rate_key,
         "the Redis key of the shared rate"},
        {"BX_NOTIFY_MAX_ATTEMPTS", BX_CONF_INT, "8", 1, 1000, &attempts,
         "sends a notification may take before it is dead"},
        {"BX_NOTIFY_RETRY_BASE_MS", BX_CONF_INT, "2000", 1, 86400000, &retry_base,
         "first retry's backoff ceiling (full jitter, doubling)"},
        {"BX_NOTIFY_RETRY_MAX_MS", BX_CONF_INT, "600000", 1, 86400000, &retry_max,
         "largest backoff ceiling"},
        {"BX_NOTIFY_QUERY_DELAY_MS", BX_CONF_INT, "10000", 0, 86400000, &query_delay,
         "after an unknown outcome, when the provider is asked"},
        {"BX_NOTIFY_RECEIPT_CHECK_MS", BX_CONF_INT, "120000", 100, 86400000, &receipt_check,
         "after acceptance, when the provider is asked if no receipt came"},
        {"BX_NOTIFY_RECEIPT_LIMIT_MS", BX_CONF_INT, "86400000", 1000, 604800000, &receipt_limit,
         "how long an answer is awaited after a send before the notification is dead"},
        {"BX_NOTIFY_LEASE_MS", BX_CONF_INT, "30000", 1000, 3600000, &lease,
         "how long a claimed notification is held before another replica may take it"},
        {"BX_NOTIFY_WORKERS", BX_CONF_INT, "4", 1, 64, &workers, "sending threads"},
        {"BX_NOTIFY_BATCH", BX_CONF_INT, "20", 1, 1000, &batch,
         "notifications a worker claims at once"},
        {"BX_NOTIFY_DIGEST_TIME", BX_CONF_STRING, "16:30", 0, 0, &digest_time,
         "HH:MM (Asia/Shanghai) of the staff's daily digest of tasks"},
        {"BX_NOTIFY_DIGEST_TEMPLATE", BX_CONF_STRING, "task_digest", 0, 0, &digest_template,
         "the digest's template"},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    int exit_code = bx_service_start_up("bx-notify",
                                        "SMS to parents and tasks to staff: templates, recipients, "
                                        "quiet hours, caps, retries, receipts, digests",
                                        rows, nrows, &common, argc, argv);
    if (exit_code >= 0)
        return exit_code;
    static const char *const resets[] = {"earliest", "latest", NULL};
    static const char *const kinds[] = {"file", "webhook", "aliyun", NULL};
    dispatch_policy policy = {0};
    int digest_minute = 0;
    bx_error err = {0};
    bool ok =
        bx_service_check_choice("bx-notify", "BX_CONSUMER_OFFSET_RESET", offset_reset, resets) &&
        bx_service_check_choice("bx-notify", "BX_NOTIFY_PROVIDER", kind, kinds);
    if (ok && dispatch_parse_quiet(quiet, &policy.quiet_start_min, &policy.quiet_end_min, &err) !=
                  BX_OK) {
        fprintf(stderr, "bx-notify: BX_NOTIFY_QUIET_HOURS: %s\n", err.msg);
        ok = false;
    }
    if (ok && dispatch_parse_hhmm(digest_time, &digest_minute, &err) != BX_OK) {
        fprintf(stderr, "bx-notify: BX_NOTIFY_DIGEST_TIME: %s\n", err.msg);
        ok = false;
    }
    template_set *templates = NULL;
    if (ok && template_set_load(templates_path, &templates, &err) != BX_OK) {
        fprintf(stderr, "bx-notify: %s\n", err.msg);
        ok = false;
    }
    if (ok && !template_exists(templates, digest_template)) {
        fprintf(stderr, "bx-notify: BX_NOTIFY_DIGEST_TEMPLATE: no template \"%s\" in %s\n",
                digest_template, templates_path);
        ok = false;
    }
    if (!ok) {
        template_set_free(templates);
        bx_conf_free(rows, nrows);
        return 2;
    }
    policy.daily_cap = (int)daily_cap;
    policy.max_attempts = (int)attempts;
    policy.retry_base_ms = retry_base;
    policy.retry_max_ms = retry_max;
    policy.query_delay_ms = query_delay;
    policy.receipt_check_ms = receipt_check;
    policy.receipt_limit_ms = receipt_limit;
    policy.lease_ms = lease;

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    notify_service_conf sc = {0};
    sc.brokers = common.kafka_brokers;
    sc.pg_url = common.pg_url;
    sc.redis_url = common.redis_url;
    sc.group = group;
    sc.requests_topic = requests_topic;
    sc.status_topic = status_topic;
    sc.offset_reset = offset_reset;
    sc.templates = templates;
    sc.provider = (provider_config){kind,          file_path,     url,     status_url, secret,
                                    access_key_id, template_code, timeout, ca_file};
    sc.policy = policy;
    sc.rate_per_second = (double)rate;
    sc.rate_burst = (int)burst;
    sc.rate_key = rate_key;
    sc.workers = (int)workers;
    sc.batch = (int)batch;
    sc.digest_minute = digest_minute;
    sc.digest_template = digest_template;
    sc.receipt_listen = receipt_listen;
    sc.running = &running;
    notify_service *sv = NULL;
    bx_metrics_server *metrics = NULL;
    bx_status s = notify_service_start(&sc, &sv, &err);
    if (s == BX_OK && common.metrics_listen[0])
        s = bx_metrics_server_start(common.metrics_listen, notify_service_healthy, sv, &metrics,
                                    &err);
    if (s != BX_OK) {
        bx_error("cannot start: %s", err.msg);
        notify_service_stop(sv);
        template_set_free(templates);
        bx_conf_free(rows, nrows);
        return 1;
    }
    while (running)
        notify_service_step(sv);
    bx_info("stopping");
    bx_metrics_server_stop(metrics);
    notify_service_stop(sv); /* sends in flight finish and are recorded; offsets committed */
    template_set_free(templates);
    bx_conf_free(rows, nrows);
    return 0;
}
