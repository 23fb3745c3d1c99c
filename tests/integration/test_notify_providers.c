/* bx-notify's SMS adapters against bx-fakesms, in each of its fault modes: accepted (and the
 * receipt reaching an HTTP endpoint, signed), 5xx before acceptance (transient), a timeout after
 * acceptance (unknown, then the query says pending or delivered), a permanent reject, 429 above
 * a rate, duplicate and lost receipts, and a refused connection. Each case starts its own
 * bx-fakesms on a free port. */
#include "bx_itest.h"
#include "bx_json.h"
#include "bx_test.h"
#include "provider.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SECRET "itest-webhook-secret-0123456789"

/* ---- a receipt endpoint: a tiny HTTP server that keeps every body and signature ---- */

#define SINK_MAX 64

typedef struct sink {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t lock;
    int n;
    char *bodies[SINK_MAX];
    char signatures[SINK_MAX][128];
    volatile int stop;
} sink;

static void header_value(const char *head, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = head; (p = strstr(p, "\r\n")) != NULL; p += 2) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r");
            snprintf(out, size, "%.*s", (int)n, v);
            return;
        }
    }
}

static void *sink_loop(void *arg)
{
    sink *s = arg;
    while (!s->stop) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[65536];
        size_t len = 0;
        char *end = NULL;
        while (len < sizeof(buf) - 1) {
            ssize_t r = read(c, buf + len, sizeof(buf) - 1 - len);
            if (r <= 0)
                break;
            len += (size_t)r;
            buf[len] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                char cl[32];
                header_value(buf, "Content-Length", cl, sizeof(cl));
                size_t want = (size_t)(end + 4 - buf) + (size_t)strtol(cl, NULL, 10);
                if (len >= want)
                    break;
            }
        }
        if (end != NULL) {
            pthread_mutex_lock(&s->lock);
            if (s->n < SINK_MAX) {
                s->bodies[s->n] = strdup(end + 4);
                header_value(buf, "X-Bx-Signature", s->signatures[s->n], 128);
                s->n++;
            }
            pthread_mutex_unlock(&s->lock);
        }
        const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        ssize_t w = write(c, ok, strlen(ok));
        (void)w;
        close(c);
    }
    return NULL;
}

static sink *sink_start(void)
{
    sink *s = calloc(1, sizeof(*s));
    REQUIRE(s != NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    REQUIRE(bind(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t alen = sizeof(a);
    getsockname(s->fd, (struct sockaddr *)&a, &alen);
    s->port = ntohs(a.sin_port);
    REQUIRE(listen(s->fd, 16) == 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    pthread_mutex_init(&s->lock, NULL);
    REQUIRE(pthread_create(&s->thread, NULL, sink_loop, s) == 0);
    return s;
}

static int sink_wait(sink *s, int want, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        pthread_mutex_lock(&s->lock);
        int n = s->n;
        pthread_mutex_unlock(&s->lock);
        if (n >= want || waited >= timeout_ms)
            return n;
        usleep(50 * 1000);
    }
}

static void sink_stop(sink *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
    close(s->fd);
    for (int i = 0; i < s->n; i++)
        free(s->bodies[i]);
    free(s);
}

/* ---- bx-fakesms ---- */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static cJSON *fake_get(int port, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    bx_buf body;
    bx_buf_init(&body, 16 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    REQUIRE(curl_easy_perform(c) == CURLE_OK);
    curl_easy_cleanup(c);
    cJSON *root = NULL;
    bx_error err = {0};
    REQUIRE(bx_json_parse(body.data, body.len, &root, &err) == BX_OK);
    bx_buf_free(&body);
    return root;
}

static long stat_of(int port, const char *name)
{
    cJSON *root = fake_get(port, "/_stats");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    long x = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
    cJSON_Delete(root);
    return x;
}

static void fake_control(int port, const char *json)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_control", port);
    itest_response resp;
    REQUIRE(itest_post(url, NULL, "application/json", json, strlen(json), &resp));
    if (resp.status != 200)
        fprintf(stderr, "control %s: %ld %s\n", json, resp.status, resp.body.data);
    REQUIRE(resp.status == 200);
    bx_buf_free(&resp.body);
}

static int fake_start(const char *receipt_url, const char *const *extra)
{
    char url_env[300];
    snprintf(url_env, sizeof(url_env), "BX_FAKESMS_RECEIPT_URL=%s", receipt_url ? receipt_url : "");
    const char *env[16] = {"BX_FAKESMS_SECRET=" SECRET, "BX_FAKESMS_RECEIPT_DELAY_MS=200", url_env};
    size_t n = 3;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    int port = 0;
    itest_fakesms_start(env, &port);
    return port;
}

static provider *webhook(int port, long timeout_ms, const char *secret)
{
    char url[128], status_url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/webhook/send", port);
    snprintf(status_url, sizeof(status_url), "http://127.0.0.1:%d/webhook/status", port);
    provider_config cfg = {.kind = "webhook",
                           .url = url,
                           .status_url = status_url,
                           .secret = secret,
                           .timeout_ms = timeout_ms};
    provider *p = NULL;
    bx_error err = {0};
    if (provider_open(&cfg, &p, &err) != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(p != NULL);
    return p;
}

static provider_message message(const char *id, const char *phone)
{
    provider_message m = {
        .notification_id = id,
        .phone = phone,
        .text =
            "李小明家长您好：李小明今天（11月27日）没有到校，本学期已缺课5天。请今天联系班主任王"
            "芳老师。文山市第一小学",
        .template_name = "absence_same_day",
        .sign_name = "文山市第一小学",
    };
    return m;
}

typedef struct got {
    int n;
    char id[8][136];
    provider_state state[8];
} got;

static void on_receipt(void *ctx, const char *id, const char *message_id, provider_state state,
                       const char *reason)
{
    got *g = ctx;
    if (g->n < 8) {
        snprintf(g->id[g->n], sizeof(g->id[0]), "%s", id);
        g->state[g->n] = state;
    }
    g->n++;
}

/* Polls the status query until it leaves PENDING or timeout_ms passes. */
static provider_state query_until_settled(provider *p, const char *id, const char *phone,
                                          int timeout_ms)
{
    provider_result res;
    bx_error err = {0};
    for (int waited = 0;; waited += 100) {
        REQUIRE(provider_query(p, id, phone, "20261127", &res, &err) == BX_OK);
        if (res.state != PROVIDER_STATE_PENDING || waited >= timeout_ms)
            return res.state;
        usleep(100 * 1000);
    }
}

/* ---- the webhook ---- */

BX_TEST(webhook_accepted_and_the_signed_receipt_reaches_the_endpoint)
{
    sink *s = sink_start();
    char receipt_url[64];
    snprintf(receipt_url, sizeof(receipt_url), "http://127.0.0.1:%d/receipts", s->port);
    int port = fake_start(receipt_url, NULL);
    provider *p = webhook(port, 2000, SECRET);
    provider_message m = message("c-1:n1:guardian", "13812345678");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    CHECK_INT(res.http_status, 200);
    CHECK_STR(res.message_id, "fk-1");
    REQUIRE(sink_wait(s, 1, 5000) == 1);
    got g = {0};
    REQUIRE(provider_parse_receipts(p, s->bodies[0], strlen(s->bodies[0]), s->signatures[0],
                                    on_receipt, &g, &err) == BX_OK);
    CHECK_INT(g.n, 1);
    CHECK_STR(g.id[0], "c-1:n1:guardian");
    CHECK_INT(g.state[0], PROVIDER_STATE_DELIVERED);
    /* A receipt with a forged or missing signature is refused. */
    got none = {0};
    CHECK_INT(provider_parse_receipts(p, s->bodies[0], strlen(s->bodies[0]),
                                      "t=1,sha256=00000000000000000000000000000000000000000000000"
                                      "00000000000000000",
                                      on_receipt, &none, &err),
              BX_EDENIED);
    CHECK_INT(provider_parse_receipts(p, s->bodies[0], strlen(s->bodies[0]), NULL, on_receipt,
                                      &none, &err),
              BX_EDENIED);
    CHECK_INT(none.n, 0);
    CHECK_INT(query_until_settled(p, "c-1:n1:guardian", m.phone, 2000), PROVIDER_STATE_DELIVERED);
    CHECK_INT(provider_query(p, "c-1:n9:guardian", m.phone, "20261127", &res, &err), BX_OK);
    CHECK_INT(res.state, PROVIDER_STATE_NONE);
    CHECK_INT(stat_of(port, "sends_accepted"), 1);
    CHECK_INT(stat_of(port, "double_sends"), 0);
    CHECK_INT(stat_of(port, "bad_signatures"), 0);
    /* The fake shows the phone masked. */
    cJSON *msgs = fake_get(port, "/_messages");
    char *text = cJSON_PrintUnformatted(msgs);
    CHECK_CONTAINS(text, "138****5678");
    CHECK(strstr(text, "13812345678") == NULL);
    free(text);
    cJSON_Delete(msgs);
    provider_close(p);
    sink_stop(s);
}

BX_TEST(webhook_5xx_before_acceptance_is_transient)
{
    const char *env[] = {"BX_FAKESMS_FAIL_5XX=1", NULL};
    int port = fake_start(NULL, env);
    provider *p = webhook(port, 2000, SECRET);
    provider_message m = message("c-2:n1:guardian", "13812340002");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_TRANSIENT);
    CHECK_INT(res.http_status, 503);
    CHECK(strstr(res.reason, m.phone) == NULL);
    CHECK_INT(stat_of(port, "sends_accepted"), 0);
    CHECK_INT(stat_of(port, "refused_5xx"), 1);
    /* The retry goes through once the provider recovers, and it is the only acceptance. */
    fake_control(port, "{\"fail_5xx\":0}");
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    CHECK_INT(stat_of(port, "sends_accepted"), 1);
    CHECK_INT(stat_of(port, "double_sends"), 0);
    provider_close(p);
}

BX_TEST(webhook_timeout_after_acceptance_is_unknown_and_the_query_settles_it)
{
    const char *env[] = {"BX_FAKESMS_SLOW_ACCEPT=1", "BX_FAKESMS_SLOW_MS=1500", NULL};
    int port = fake_start(NULL, env);
    provider *p = webhook(port, 500, SECRET);
    provider_message m = message("c-3:n1:guardian", "13812340003");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_UNKNOWN);
    CHECK_INT(res.http_status, 0);
    CHECK(strstr(res.reason, m.phone) == NULL);
    /* The provider has it: the query says so (pending, then delivered); no resend is needed. */
    REQUIRE(provider_query(p, m.notification_id, m.phone, "20261127", &res, &err) == BX_OK);
    CHECK(res.state == PROVIDER_STATE_PENDING || res.state == PROVIDER_STATE_DELIVERED);
    CHECK_INT(query_until_settled(p, m.notification_id, m.phone, 3000), PROVIDER_STATE_DELIVERED);
    CHECK_INT(stat_of(port, "sends_accepted"), 1);
    CHECK_INT(stat_of(port, "slow_accepts"), 1);
    CHECK_INT(stat_of(port, "double_sends"), 0);
    /* Had the sender retried blindly instead, the fake would have counted a double send. */
    fake_control(port, "{\"slow_accept\":0}");
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(stat_of(port, "double_sends"), 1);
    provider_close(p);
}

BX_TEST(webhook_rejected_number_is_permanent)
{
    const char *env[] = {"BX_FAKESMS_REJECT_NUMBERS=13812340004,13900000000", NULL};
    int port = fake_start(NULL, env);
    provider *p = webhook(port, 2000, SECRET);
    provider_message m = message("c-4:n1:guardian", "13812340004");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_PERMANENT);
    CHECK_INT(res.http_status, 400);
    CHECK(strstr(res.reason, "13812340004") == NULL);
    CHECK_INT(stat_of(port, "rejected_permanent"), 1);
    CHECK_INT(stat_of(port, "sends_accepted"), 0);
    provider_close(p);
}

BX_TEST(webhook_above_the_rate_is_429_and_transient)
{
    const char *env[] = {"BX_FAKESMS_RATE_LIMIT=2", NULL};
    int port = fake_start(NULL, env);
    provider *p = webhook(port, 2000, SECRET);
    int accepted = 0, limited = 0;
    for (int i = 0; i < 5; i++) {
        char id[32], phone[16];
        snprintf(id, sizeof(id), "c-5:n%d:guardian", i);
        snprintf(phone, sizeof(phone), "1381234050%d", i);
        provider_message m = message(id, phone);
        provider_result res;
        bx_error err = {0};
        REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
        if (res.outcome == PROVIDER_ACCEPTED) {
            accepted++;
        } else {
            CHECK_INT(res.outcome, PROVIDER_TRANSIENT);
            CHECK_INT(res.http_status, 429);
            limited++;
        }
    }
    /* Five sends in at most two seconds against 2 a second: at least one is refused. */
    CHECK(limited >= 1);
    CHECK_INT(accepted + limited, 5);
    CHECK_INT(stat_of(port, "refused_429"), limited);
    CHECK(stat_of(port, "max_rate_per_sec") >= 3);
    provider_close(p);
}

BX_TEST(webhook_with_the_wrong_secret_is_refused_by_the_provider)
{
    int port = fake_start(NULL, NULL);
    provider *p = webhook(port, 2000, "not-the-right-secret-at-all");
    provider_message m = message("c-6:n1:guardian", "13812340006");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_PERMANENT);
    CHECK_INT(res.http_status, 401);
    CHECK_INT(stat_of(port, "bad_signatures"), 1);
    CHECK_INT(stat_of(port, "sends_accepted"), 0);
    provider_close(p);
}

BX_TEST(webhook_duplicate_and_lost_receipts)
{
    sink *s = sink_start();
    char receipt_url[64];
    snprintf(receipt_url, sizeof(receipt_url), "http://127.0.0.1:%d/receipts", s->port);
    const char *env[] = {"BX_FAKESMS_DUP_RECEIPTS=1", NULL};
    int port = fake_start(receipt_url, env);
    provider *p = webhook(port, 2000, SECRET);
    provider_message m = message("c-7:n1:guardian", "13812340007");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    REQUIRE(sink_wait(s, 2, 5000) == 2);
    CHECK_STR(s->bodies[0], s->bodies[1]);
    CHECK_INT(stat_of(port, "receipts_duplicated"), 1);

    fake_control(port, "{\"dup_receipts\":0,\"lost_receipts\":1}");
    provider_message m2 = message("c-7:n2:guardian", "13812340007");
    REQUIRE(provider_send(p, &m2, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    /* No receipt comes; the query still learns the delivery. */
    CHECK_INT(query_until_settled(p, m2.notification_id, m2.phone, 3000), PROVIDER_STATE_DELIVERED);
    CHECK_INT(sink_wait(s, 3, 500), 2);
    CHECK_INT(stat_of(port, "receipts_lost"), 1);
    cJSON *st = fake_get(port, "/_stats");
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(st, "per_recipient");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(per, "138****0007");
    CHECK(cJSON_IsNumber(count) && count->valuedouble == 2);
    cJSON_Delete(st);
    provider_close(p);
    sink_stop(s);
}

BX_TEST(webhook_refused_connection_is_transient)
{
    /* A port nobody listens on: the request never leaves. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t alen = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    int port = ntohs(a.sin_port);
    close(fd);
    provider *p = webhook(port, 1000, SECRET);
    provider_message m = message("c-8:n1:guardian", "13812340008");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_TRANSIENT);
    CHECK_CONTAINS(res.reason, "not sent");
    CHECK_INT(provider_query(p, m.notification_id, m.phone, "20261127", &res, &err), BX_ETRANSIENT);
    provider_close(p);
}

/* Faults are drawn from the seed and the notification id: two runs answer alike. */
BX_TEST(fault_draws_are_deterministic_by_seed)
{
    const char *env[] = {"BX_FAKESMS_FAIL_5XX=0.5", "BX_FAKESMS_SEED=7", NULL};
    int outcomes[2][20];
    for (int run = 0; run < 2; run++) {
        int port = fake_start(NULL, env);
        provider *p = webhook(port, 2000, SECRET);
        for (int i = 0; i < 20; i++) {
            char id[32];
            snprintf(id, sizeof(id), "c-9:n%d:guardian", i);
            provider_message m = message(id, "13812340009");
            provider_result res;
            bx_error err = {0};
            REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
            outcomes[run][i] = (int)res.outcome;
        }
        provider_close(p);
    }
    int refused = 0;
    for (int i = 0; i < 20; i++) {
        CHECK_INT(outcomes[1][i], outcomes[0][i]);
        refused += outcomes[0][i] == PROVIDER_TRANSIENT;
    }
    CHECK(refused > 0 && refused < 20);
}

/* ---- Aliyun ---- */

static provider *aliyun(int port, long timeout_ms, const char *secret)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    provider_config cfg = {.kind = "aliyun",
                           .url = url,
                           .access_key_id = "itestKeyId",
                           .secret = secret,
                           .template_code = "SMS_900001,task_digest=SMS_900002",
                           .timeout_ms = timeout_ms};
    provider *p = NULL;
    bx_error err = {0};
    if (provider_open(&cfg, &p, &err) != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(p != NULL);
    return p;
}

static int aliyun_fake(const char *receipt_url, const char *const *extra)
{
    const char *env[16] = {"BX_FAKESMS_ACCESS_KEY_ID=itestKeyId",
                           "BX_FAKESMS_ACCESS_KEY_SECRET=itestKeySecret"};
    size_t n = 2;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    return fake_start(receipt_url, env);
}

/* Today in Shanghai as yyyymmdd: the provider's send date. */
static const char *send_date(void)
{
    static char out[9];
    time_t t = time(NULL) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, sizeof(out), "%Y%m%d", &tm);
    return out;
}

static provider_state aliyun_query_until_settled(provider *p, const char *id, const char *phone,
                                                 int timeout_ms)
{
    provider_result res;
    bx_error err = {0};
    for (int waited = 0;; waited += 100) {
        if (provider_query(p, id, phone, send_date(), &res, &err) != BX_OK)
            fprintf(stderr, "query: %s\n", err.msg);
        if (res.state != PROVIDER_STATE_PENDING || waited >= timeout_ms)
            return res.state;
        usleep(100 * 1000);
    }
}

BX_TEST(aliyun_accepted_with_signature_checked_and_sms_report_reaches_the_endpoint)
{
    sink *s = sink_start();
    char receipt_url[64];
    snprintf(receipt_url, sizeof(receipt_url), "http://127.0.0.1:%d/smsreport", s->port);
    int port = aliyun_fake(receipt_url, NULL);
    provider *p = aliyun(port, 2000, "itestKeySecret");
    provider_message m = message("c-11:n1:guardian", "13812341101");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    if (res.outcome != PROVIDER_ACCEPTED)
        fprintf(stderr, "%s\n", res.reason);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    CHECK_CONTAINS(res.message_id, "^");
    CHECK_INT(stat_of(port, "bad_signatures"), 0);
    REQUIRE(sink_wait(s, 1, 5000) == 1);
    CHECK_CONTAINS(s->bodies[0], "\"out_id\":\"c-11:n1:guardian\"");
    got g = {0};
    REQUIRE(provider_parse_receipts(p, s->bodies[0], strlen(s->bodies[0]), NULL, on_receipt, &g,
                                    &err) == BX_OK);
    CHECK_INT(g.n, 1);
    CHECK_STR(g.id[0], "c-11:n1:guardian");
    CHECK_INT(g.state[0], PROVIDER_STATE_DELIVERED);
    CHECK_INT(aliyun_query_until_settled(p, m.notification_id, m.phone, 2000),
              PROVIDER_STATE_DELIVERED);
    CHECK_INT(provider_query(p, "c-11:n7:guardian", m.phone, send_date(), &res, &err), BX_OK);
    CHECK_INT(res.state, PROVIDER_STATE_NONE);
    /* The text went as the template's content; the digest used its own template code. */
    provider_message d = message("c-11:digest", "13812341101");
    d.template_name = "task_digest";
    REQUIRE(provider_send(p, &d, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    cJSON *msgs = fake_get(port, "/_messages");
    char *text = cJSON_PrintUnformatted(msgs);
    CHECK_CONTAINS(text, "李小明家长您好");
    CHECK_CONTAINS(text, "\"template\":\"SMS_900001\"");
    CHECK_CONTAINS(text, "\"template\":\"SMS_900002\"");
    free(text);
    cJSON_Delete(msgs);
    CHECK_INT(stat_of(port, "double_sends"), 0);
    provider_close(p);
    sink_stop(s);
}

BX_TEST(aliyun_faults_map_to_outcomes)
{
    int port = aliyun_fake(NULL, NULL);
    provider *p = aliyun(port, 2000, "itestKeySecret");
    provider_result res;
    bx_error err = {0};

    fake_control(port, "{\"fail_5xx\":1}");
    provider_message m = message("c-12:n1:guardian", "13812341201");
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_TRANSIENT);
    CHECK_INT(res.http_status, 503);

    fake_control(port, "{\"fail_5xx\":0,\"reject_numbers\":\"13812341202\"}");
    m = message("c-12:n2:guardian", "13812341202");
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_PERMANENT);
    CHECK_CONTAINS(res.reason, "isv.MOBILE_NUMBER_ILLEGAL");
    CHECK(strstr(res.reason, "13812341202") == NULL);

    fake_control(port, "{\"rate_limit\":1}");
    int limited = 0;
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof(id), "c-12:r%d:guardian", i);
        m = message(id, "13812341203");
        REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
        if (res.outcome != PROVIDER_ACCEPTED) {
            CHECK_INT(res.outcome, PROVIDER_TRANSIENT);
            CHECK_CONTAINS(res.reason, "Throttling");
            limited++;
        }
    }
    CHECK(limited >= 1);
    CHECK_INT(stat_of(port, "refused_429"), limited);
    CHECK_INT(stat_of(port, "double_sends"), 0);
    provider_close(p);

    /* A wrong AccessKeySecret: the fake's own check refuses it; nothing was sent. */
    p = aliyun(port, 2000, "not-the-secret");
    fake_control(port, "{\"rate_limit\":0}");
    m = message("c-12:n3:guardian", "13812341204");
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_TRANSIENT);
    CHECK_CONTAINS(res.reason, "SignatureDoesNotMatch");
    CHECK_INT(stat_of(port, "bad_signatures"), 1);
    provider_close(p);
}

BX_TEST(aliyun_timeout_after_acceptance_is_unknown_and_query_send_details_settles_it)
{
    const char *env[] = {"BX_FAKESMS_SLOW_ACCEPT=1", "BX_FAKESMS_SLOW_MS=1500", NULL};
    int port = aliyun_fake(NULL, env);
    provider *p = aliyun(port, 500, "itestKeySecret");
    provider_message m = message("c-13:n1:guardian", "13812341301");
    provider_result res;
    bx_error err = {0};
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_UNKNOWN);
    REQUIRE(provider_query(p, m.notification_id, m.phone, send_date(), &res, &err) == BX_OK);
    CHECK(res.state == PROVIDER_STATE_PENDING || res.state == PROVIDER_STATE_DELIVERED);
    CHECK_INT(aliyun_query_until_settled(p, m.notification_id, m.phone, 3000),
              PROVIDER_STATE_DELIVERED);
    CHECK_INT(stat_of(port, "sends_accepted"), 1);
    CHECK_INT(stat_of(port, "double_sends"), 0);
    /* A delivery that fails shows as failed with Aliyun's error code. */
    fake_control(port, "{\"slow_accept\":0,\"undelivered\":1}");
    provider_message f = message("c-13:n2:guardian", "13812341301");
    REQUIRE(provider_send(p, &f, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    CHECK_INT(aliyun_query_until_settled(p, f.notification_id, f.phone, 3000),
              PROVIDER_STATE_FAILED);
    provider_close(p);
}
