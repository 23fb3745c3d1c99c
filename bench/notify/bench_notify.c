/* bench-notify: sustained sends per second through a running bx-notify to bx-fakesms. Queues N
 * guardian SMS requests that all become due at one instant (not_before), waits until bx-notify has
 * taken every one, then measures from the first acceptance at the fake to the last: the achieved
 * rate over the whole run and over the middle 80%, and checks that every notification was
 * accepted once (the fake's double sends must be 0) and recorded delivered (receipts applied).
 * run.sh starts the fake and bx-notify. */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_kafka.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static bool http_get(CURL *c, const char *url, bx_buf *body)
{
    bx_buf_reset(body);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    return curl_easy_perform(c) == CURLE_OK && body->len > 0;
}

/* A metric of bx-notify's /metrics, or -1. */
static long long metric(CURL *c, int port, const char *name, bx_buf *body)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    if (!http_get(c, url, body))
        return -1;
    size_t n = strlen(name);
    for (const char *p = body->data; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}

static long long fake_stat(CURL *c, int port, const char *name, bx_buf *body)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_stats", port);
    if (!http_get(c, url, body))
        return -1;
    cJSON *root = cJSON_ParseWithLength(body->data, body->len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    cJSON_Delete(root);
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-notify --brokers B --topic T --status-topic T --metrics-port P "
                    "--fake-port P "
                    "--students N --requests N --label TEXT [--cap PER_SECOND] "
                    "[--take-rate PER_SECOND]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:19092", *topic = NULL, *status_topic = NULL, *label = "run";
    int metrics_port = 0, fake_port = 0, students = 0, requests = 0;
    double cap = 0, take_rate = 150;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--brokers") == 0)
            brokers = argv[i + 1];
        else if (strcmp(argv[i], "--topic") == 0)
            topic = argv[i + 1];
        else if (strcmp(argv[i], "--status-topic") == 0)
            status_topic = argv[i + 1];
        else if (strcmp(argv[i], "--metrics-port") == 0)
            metrics_port = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--fake-port") == 0)
            fake_port = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--students") == 0)
            students = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--requests") == 0)
            requests = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--cap") == 0)
            cap = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--take-rate") == 0)
            take_rate = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--label") == 0)
            label = argv[i + 1];
        else
            usage();
    }
    if (topic == NULL || status_topic == NULL || metrics_port <= 0 || fake_port <= 0 ||
        students <= 0 || requests <= 0 || requests > students || take_rate < 1)
        usage();
    bx_error err = {0};
    const char *const topics[] = {topic, status_topic};
    const int partitions[] = {4, 4};
    if (bx_kafka_create_topics(brokers, topics, partitions, 2, 15000, &err) != BX_OK) {
        fprintf(stderr, "bench-notify: %s\n", err.msg);
        return 1;
    }
    bx_producer *p = NULL;
    if (bx_producer_new(brokers, NULL, &p, &err) != BX_OK) {
        fprintf(stderr, "bench-notify: %s\n", err.msg);
        return 1;
    }
    CURL *c = curl_easy_init();
    bx_buf body;
    bx_buf_init(&body, 1 << 24);
    long long accepted0 = fake_stat(c, fake_port, "sends_accepted", &body);
    long long taken0 = metric(c, metrics_port, "bx_notify_requests_total", &body);
    long long delivered0 = metric(c, metrics_port, "bx_notify_delivered_total", &body);
    /* everything becomes due at one instant, after bx-notify has had time to take it all */
    double start = now_s();
    bx_time_ms due = (bx_time_ms)((start + 10.0 + requests / take_rate) * 1000);
    char due_text[40];
    bx_time_format(due, due_text, sizeof(due_text));
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot *slots = calloc((size_t)requests, sizeof(*slots));
    char v[1024], key[16];
    for (int i = 0; i < requests; i++) {
        snprintf(key, sizeof(key), "BN%06d", i + 1);
        snprintf(v, sizeof(v),
                 "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"bench:%s:%s:%d\","
                 "\"case_id\":null,\"student_id\":\"%s\",\"template\":\"absence_same_day\","
                 "\"recipient_role\":\"guardian\",\"recipient_staff_id\":null,\"channel\":\"sms\","
                 "\"params\":{\"streak_days\":\"1\"},\"not_before\":\"%s\",\"requested_at\":"
                 "\"%s\"}",
                 label, topic + strlen(topic) - 6, i, key, due_text, due_text);
        bx_delivery_slot_arm(&slots[i], w);
        if (bx_producer_send(p, topic, key, strlen(key), v, strlen(v), bx_delivery_slot_done,
                             &slots[i]) != BX_OK) {
            fprintf(stderr, "bench-notify: cannot queue request %d\n", i);
            return 1;
        }
    }
    /* intake: bx_notify_requests_total sampled every 20 ms while the requests are produced and
     * taken (nothing is sent meanwhile); the rate is over the samples from the first that saw
     * some taken to the one that saw all (the first poll's batch is not in it) */
    double take_first = 0, take_last = 0;
    long long taken_first = 0;
    for (;;) {
        long long taken = metric(c, metrics_port, "bx_notify_requests_total", &body) - taken0;
        double t = now_s();
        if (taken > 0 && take_first == 0) {
            take_first = t;
            taken_first = taken;
        }
        if (taken >= requests) {
            take_last = t;
            break;
        }
        if (t * 1000 > (double)due) {
            fprintf(stderr,
                    "bench-notify: only %lld of %d requests taken before they were due; "
                    "the figures would mix taking and sending\n",
                    taken, requests);
            return 1;
        }
        usleep(20000);
    }
    double taken_at = now_s();
    double take_rate_seen = take_last > take_first
                                ? (double)(requests - taken_first) / (take_last - take_first)
                                : (double)requests / (taken_at - start);
    if (bx_delivery_wait_all(w, 60000) != BX_OK) {
        fprintf(stderr, "bench-notify: requests not acknowledged\n");
        return 1;
    }
    /* sample the fake's accepted count every 20 ms until all are accepted */
    enum { SAMPLES_MAX = 200000 };
    static double ts[SAMPLES_MAX];
    static long long counts[SAMPLES_MAX];
    int n = 0;
    double first = 0, last = 0,
           deadline = (double)due / 1000 + 120 + (cap > 0 ? requests / cap : 0);
    long long got = 0;
    while (got < requests && now_s() < deadline && n < SAMPLES_MAX) {
        got = fake_stat(c, fake_port, "sends_accepted", &body) - accepted0;
        double t = now_s();
        if (got > 0 && first == 0)
            first = t;
        if (got > 0) {
            ts[n] = t;
            counts[n++] = got;
        }
        last = t;
        usleep(20000);
    }
    long long doubles = fake_stat(c, fake_port, "double_sends", &body);
    if (got < requests) {
        fprintf(stderr, "bench-notify: %lld of %d accepted in time\n", got, requests);
        return 1;
    }
    /* every outcome recorded: the receipts of all (posted by the fake) applied as delivered */
    long long delivered = 0;
    double receipts_deadline = now_s() + 120;
    while ((delivered = metric(c, metrics_port, "bx_notify_delivered_total", &body) - delivered0) <
               requests &&
           now_s() < receipts_deadline)
        usleep(20000);
    double delivered_after = now_s() - last;
    if (delivered < requests) {
        fprintf(stderr, "bench-notify: %lld of %d delivered in time\n", delivered, requests);
        return 1;
    }
    /* the middle 80%: from the sample where 10% were accepted to the one where 90% were */
    double t10 = 0, t90 = 0;
    long long c10 = 0, c90 = 0;
    for (int i = 0; i < n; i++) {
        if (t10 == 0 && counts[i] >= requests / 10) {
            t10 = ts[i];
            c10 = counts[i];
        }
        if (t90 == 0 && counts[i] >= requests * 9 / 10) {
            t90 = ts[i];
            c90 = counts[i];
        }
    }
    double whole = (double)requests / (last - first > 0 ? last - first : 1e-9);
    double middle = t90 > t10 ? (double)(c90 - c10) / (t90 - t10) : whole;
    char cap_text[24] = "off";
    if (cap > 0)
        snprintf(cap_text, sizeof(cap_text), "%.0f/s", cap);
    printf("%-6s requests %6d  cap %7s  taken in %5.1f s (intake %7.0f/s)  sent in %6.2f s  "
           "rate %8.1f/s  middle-80%% %8.1f/s",
           label, requests, cap_text, taken_at - start, take_rate_seen, last - first, whole,
           middle);
    if (cap > 0)
        printf("  (%+.1f%% of the cap)", 100.0 * (middle - cap) / cap);
    printf("  all delivered %.1f s after  double sends %lld\n", delivered_after, doubles);
    fflush(stdout);
    bx_delivery_wait_free(w);
    free(slots);
    bx_buf_free(&body);
    curl_easy_cleanup(c);
    bx_producer_free(p, 5000);
    return doubles == 0 ? 0 : 1;
}
