/* bx-ingest's edges under attack (issue 14): slow and idle clients, unauthenticated uploads, dead
 * letters that fit the topic and carry no personal data, charsets and byte order marks, and the
 * TLS versions bx-ingest and bx-console accept. Loopback only; every test is bounded in time. */
#include "bx_itest.h"
#include "bx_itest_attack.h"
#include "bx_test.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TODAY "2026-11-27"
#define JSON  "application/json"

struct ingest {
    char *key, *clock;
    pid_t pid;
    int port, metrics;
    char base[64];
};

static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void start(struct ingest *in, const char *const *extra_env)
{
    in->key = itest_registry_fixture(NULL);
    in->clock = itest_clock_file(TODAY " 18:00");
    in->metrics = pick_port();
    char metrics_env[64];
    snprintf(metrics_env, sizeof(metrics_env), "BX_METRICS_LISTEN=127.0.0.1:%d", in->metrics);
    const char *env[16] = {metrics_env};
    size_t n = 1;
    bool tls = false;
    for (size_t i = 0; extra_env && extra_env[i] && n < 15; i++) {
        env[n++] = extra_env[i];
        tls = tls || strncmp(extra_env[i], "BX_TLS_CERT=", 12) == 0;
    }
    env[n] = NULL;
    in->pid = itest_ingest_start(in->clock, env, &in->port);
    snprintf(in->base, sizeof(in->base), "%s://127.0.0.1:%d", tls ? "https" : "http", in->port);
}

static void stop(struct ingest *in)
{
    itest_stop(in->pid);
    free(in->key);
    free(in->clock);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

/* POSTs with a 5 s limit (a request that waits longer counts as failed); status 0 when it could
 * not be answered. */
static long post(const struct ingest *in, const char *path, const char *key, const char *ctype,
                 const char *body, bx_buf *reply)
{
    char url[128], auth[256], type[128];
    snprintf(url, sizeof(url), "%s%s", in->base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    snprintf(type, sizeof(type), "Content-Type: %s", ctype);
    struct curl_slist *h = curl_slist_append(NULL, type);
    if (key)
        h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Expect:");
    CURL *c = curl_easy_init();
    REQUIRE(c != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return status;
}

/* ---- defect 1: slow and idle clients ---- */

#define SLOW_HEADERS 600
#define IDLE         300
#define ADDRESSES    30    /* 20 slow and 10 idle from each, under BX_HTTP_MAX_PER_CLIENT (32) */
#define HOLD_MS      60000 /* as the issue asks */
#define HEADER_MS    3000  /* the test's BX_HTTP_HEADER_TIMEOUT_MS */

static const char slow_header[] = "POST /v1/attendance HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/* Issue 14, defect 1: 515 connections sending their header a byte a second made every valid
 * request time out, and 2,000 idle ones caused an outage. Now the header has a deadline that a
 * byte a second does not move. 600 slow-header and 300 idle connections, from 30 addresses so
 * that the per-address cap lets every one of them in, are held for 60 s (each one the server
 * closes is opened again a second later), and valid requests from another address keep getting
 * 200, with a p99 under 1 s. BX_HTTP_MAX_CONNECTIONS is above the attack: at most that many are
 * open at once, past it a new connection (a valid one too) is closed at once. Labelled slow. */
BX_TEST(slow_and_idle_clients_do_not_take_the_api_down)
{
    /* this process holds the 900 connections and bx-ingest, which inherits the limit, their
     * other ends */
    itest_fd_limit(4096);
    const char *env[] = {"BX_HTTP_HEADER_TIMEOUT_MS=3000", "BX_HTTP_MAX_CONNECTIONS=2000", NULL};
    struct ingest in;
    start(&in, env);
    long server_files = itest_fd_limit_of(in.pid);
    if (server_files < SLOW_HEADERS + IDLE + 256)
        BX_FAIL_AT("bx-ingest may open %ld files: too few to hold the attack", server_files);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\",\"status\":"
             "\"present\",\"event_id\":\"slow-p%d-t%ld\"}]}",
             getpid(), (long)time(NULL));
    itest_attack_conf ac = {in.port, SLOW_HEADERS, IDLE, ADDRESSES, 2, slow_header};
    itest_attack *attack = itest_attack_start(&ac);
    usleep(2000 * 1000); /* the attack is under way */
    static long long took[2 * HOLD_MS / 100];
    int requests = 0, not_200 = 0;
    long long start_ms = now_ms();
    while (now_ms() - start_ms < HOLD_MS && requests < (int)(sizeof(took) / sizeof(took[0]))) {
        bx_buf reply;
        bx_buf_init(&reply, 0);
        long long t0 = now_ms();
        long status = post(&in, "/v1/attendance", in.key, JSON, body, &reply);
        took[requests] = now_ms() - t0;
        if (status != 200) {
            not_200++;
            fprintf(stderr, "request %d: %ld after %lld ms\n", requests + 1, status,
                    took[requests]);
        }
        requests++;
        bx_buf_free(&reply);
        usleep(100 * 1000);
    }
    long long header_closed =
        itest_metric(in.metrics, "bx_ingest_connections_closed_total{why=\"header_deadline\"}");
    itest_attack_result ar;
    itest_attack_stop(attack, &ar);
    long long p50 = itest_percentile(took, requests, 50),
              p99 = itest_percentile(took, requests, 99);
    fprintf(stderr,
            "%d valid requests in %d s, %d not 200; latency p50 %lld ms, p99 %lld ms, max %lld "
            "ms\nattack: %lld connections open on average, %lld at most; %lld closed by "
            "bx-ingest (%lld at the header deadline); the longest slow header lasted %lld ms\n",
            requests, HOLD_MS / 1000, not_200, p50, p99, took[requests - 1], ar.open_average,
            ar.open_max, ar.closed_by_server, header_closed, ar.longest_slow_ms);
    CHECK(requests >= 300);
    CHECK_INT(not_200, 0);
    CHECK(p99 < 1000);
    /* the attack was held: most of its connections open at any moment (each is closed at its
     * deadline and opened again a second later) */
    CHECK(ar.open_average >= (SLOW_HEADERS + IDLE) / 2);
    CHECK(ar.open_max >= (SLOW_HEADERS + IDLE) * 9 / 10);
    CHECK(ar.closed_by_server > (SLOW_HEADERS + IDLE) * 5);
    /* A header trickling a byte a second is closed at its deadline, however long it goes on. */
    CHECK(ar.longest_slow_ms <= HEADER_MS + 2500);
    CHECK(ar.still_open_at_end_ms <= HEADER_MS + 2500);
    CHECK(header_closed > (SLOW_HEADERS + IDLE) * 5);
    stop(&in);
}

/* The whole header has its deadline from the start of the connection, and a body its minimum
 * rate, whatever trickles in; a connection idle after its answer is closed at the header
 * deadline too. */
BX_TEST(header_and_body_deadlines_do_not_restart)
{
    const char *env[] = {"BX_HTTP_HEADER_TIMEOUT_MS=1500", "BX_HTTP_BODY_TIMEOUT_MS=1500",
                         "BX_HTTP_BODY_MIN_RATE=1000", NULL};
    struct ingest in;
    start(&in, env);
    char head[512];
    snprintf(head, sizeof(head),
             "POST /v1/attendance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
             in.key);
    int slow_head = itest_connect_from("127.0.0.3", in.port);
    int slow_body = itest_connect_from("127.0.0.3", in.port);
    REQUIRE(slow_head >= 0 && slow_body >= 0);
    usleep(100 * 1000);
    REQUIRE(send(slow_body, head, strlen(head), MSG_NOSIGNAL) == (ssize_t)strlen(head));
    long long t0 = now_ms(), head_closed = 0, body_closed = 0;
    size_t head_sent = 0;
    while (now_ms() - t0 < 8000 && (!head_closed || !body_closed)) {
        if (!head_closed && head_sent < 40 &&
            send(slow_head, slow_header + head_sent, 1, MSG_NOSIGNAL) == 1)
            head_sent++;
        if (!body_closed)
            (void)send(slow_body, "[", 1, MSG_NOSIGNAL); /* 5 bytes a second < 1000 */
        usleep(200 * 1000);
        char buf[512];
        ssize_t head_got = head_closed ? 1 : recv(slow_head, buf, sizeof(buf), MSG_DONTWAIT);
        if (!head_closed && (head_got == 0 || (head_got < 0 && errno != EAGAIN)))
            head_closed = now_ms() - t0;
        ssize_t got = body_closed ? 1 : recv(slow_body, buf, sizeof(buf), MSG_DONTWAIT);
        if (!body_closed && (got == 0 || (got < 0 && errno != EAGAIN)))
            body_closed = now_ms() - t0;
    }
    fprintf(stderr, "slow header closed after %lld ms, slow body after %lld ms\n", head_closed,
            body_closed);
    CHECK(head_closed > 1000 && head_closed < 4000);
    CHECK(body_closed > 1000 && body_closed < 4500);
    close(slow_head);
    close(slow_body);
    CHECK(itest_metric(in.metrics, "bx_ingest_connections_closed_total{why=\"body_rate\"}") >= 1);
    stop(&in);
}

/* One address holds at most BX_HTTP_MAX_PER_CLIENT connections and all of them at most
 * BX_HTTP_MAX_CONNECTIONS: past either, a new connection is closed at once (not left waiting). */
BX_TEST(connection_caps_close_at_once)
{
    const char *env[] = {"BX_HTTP_MAX_PER_CLIENT=4", "BX_HTTP_MAX_CONNECTIONS=6", NULL};
    struct ingest in;
    start(&in, env);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = itest_connect_from(i < 5 ? "127.0.0.4" : "127.0.0.5", in.port);
        REQUIRE(fds[i] >= 0);
        usleep(50 * 1000);
    }
    usleep(500 * 1000);
    int closed[8];
    for (int i = 0; i < 8; i++) {
        char buf[64];
        ssize_t got = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT);
        closed[i] = got == 0 || (got < 0 && errno != EAGAIN);
    }
    /* 127.0.0.4: four held, the fifth closed; 127.0.0.5: two held (six in all), the third
     * closed. */
    for (int i = 0; i < 8; i++) {
        bool expect_closed = i == 4 || i == 7;
        if (closed[i] != expect_closed)
            BX_FAIL_AT("connection %d: %s", i, closed[i] ? "closed" : "held");
        close(fds[i]);
    }
    CHECK(itest_metric(in.metrics, "bx_ingest_connections_closed_total{why=\"limit\"}") >= 1);
    stop(&in);
}

/* ---- defect 2: the credential before the body ---- */

#define UPLOADS     200
#define UPLOAD_SIZE (4 * 1024 * 1024)

/* Issue 14, defect 2: 150 uploads with a bogus key stalling near 4 MB raised bx-ingest from 26 MB
 * to 640 MB. Now the credential is checked on the headers and answered 401 before the body is
 * read: 200 such uploads add less than 100 MB, and every one is answered 401. */
BX_TEST(unauthenticated_uploads_hold_no_memory)
{
    itest_fd_limit(1024);
    const char *env[] = {"BX_HTTP_MAX_PER_CLIENT=1000", NULL};
    struct ingest in;
    start(&in, env);
    long long before = itest_rss_kb(in.pid);
    char head[512];
    snprintf(head, sizeof(head),
             "POST /v1/attendance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             "bxk_0000000000000000_bogus\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n",
             UPLOAD_SIZE);
    static char chunk[64 * 1024];
    memset(chunk, ' ', sizeof(chunk));
    int fds[UPLOADS];
    size_t sent[UPLOADS];
    bool done[UPLOADS];
    for (int i = 0; i < UPLOADS; i++) {
        fds[i] = itest_connect_from("127.0.0.6", in.port);
        REQUIRE(fds[i] >= 0);
        sent[i] = 0;
        done[i] = false;
    }
    usleep(200 * 1000);
    for (int i = 0; i < UPLOADS; i++)
        if (send(fds[i], head, strlen(head), MSG_NOSIGNAL) != (ssize_t)strlen(head))
            done[i] = true;
    /* The answer comes on the headers, before any body (read now: once the server closes with
     * body bytes unread, the kernel may reset the connection and drop it). */
    int answered_401 = 0;
    bool answered[UPLOADS] = {false};
    for (long long t1 = now_ms(); answered_401 < UPLOADS && now_ms() - t1 < 3000;) {
        for (int i = 0; i < UPLOADS; i++) {
            char buf[256] = "";
            if (answered[i] || recv(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT) <= 0)
                continue;
            answered[i] = true;
            answered_401 += strncmp(buf, "HTTP/1.1 401", 12) == 0;
        }
        usleep(20 * 1000);
    }
    /* Send each body up to 8 KiB short of its length, then stall; the server may stop reading. */
    long long t0 = now_ms();
    int pending = UPLOADS;
    while (pending > 0 && now_ms() - t0 < 20000) {
        pending = 0;
        for (int i = 0; i < UPLOADS; i++) {
            if (done[i])
                continue;
            size_t left = UPLOAD_SIZE - 8192 - sent[i];
            ssize_t n = send(fds[i], chunk, left < sizeof(chunk) ? left : sizeof(chunk),
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent[i] += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                done[i] = true; /* refused and closed */
            if (sent[i] >= UPLOAD_SIZE - 8192)
                done[i] = true;
            pending += !done[i];
        }
        usleep(1000);
    }
    usleep(1000 * 1000);
    long long after = itest_rss_kb(in.pid);
    for (int i = 0; i < UPLOADS; i++)
        close(fds[i]);
    fprintf(stderr, "RSS %lld kB before, %lld kB with %d stalled uploads; %d answered 401\n",
            before, after, UPLOADS, answered_401);
    CHECK(after - before < 100 * 1024);
    CHECK_INT(answered_401, UPLOADS);
    CHECK(itest_metric(in.metrics, "bx_ingest_unauthenticated_total") >= UPLOADS);
    stop(&in);
}

/* ---- defect 3: dead letters ---- */

/* Issue 14, defect 3: nothing unauthenticated reaches bx.dlq.v1 (an oversize chunked body with no
 * Authorization did); a Content-Length over the limit gets 413 and, with a valid key, is
 * dead-lettered as the README says; a rejected record of 1 MB reaches the topic, cut, with its
 * length and digest. */
BX_TEST(dead_letters_only_authenticated_and_always_fitting)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *dlq = itest_topic_mark("bx.dlq.v1");
    itest_mark *unauth = itest_topic_mark("bx.dlq.v1"); /* read on its own */
    /* 4 MiB + 1 KiB chunked to /v1/leave with no credential */
    bx_buf req;
    bx_buf_init(&req, 0);
    REQUIRE(bx_buf_puts(&req, "POST /v1/leave HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              "application/json\r\nTransfer-Encoding: chunked\r\n\r\n") == BX_OK);
    static char chunk[64 * 1024];
    memset(chunk, 'u', sizeof(chunk));
    for (int i = 0; i < 65; i++) {
        REQUIRE(bx_buf_printf(&req, "%zx\r\n", sizeof(chunk)) == BX_OK);
        REQUIRE(bx_buf_append(&req, chunk, sizeof(chunk)) == BX_OK);
        REQUIRE(bx_buf_puts(&req, "\r\n") == BX_OK);
    }
    REQUIRE(bx_buf_puts(&req, "0\r\n\r\n") == BX_OK);
    char status[256];
    itest_raw_exchange(in.port, req.data, req.len, status, sizeof(status));
    CHECK(strncmp(status, "HTTP/1.1 401", 12) == 0);
    bx_buf_free(&req);

    /* Content-Length over the limit, with the school's key: 413 at once, and a dead letter. */
    char head[512];
    snprintf(head, sizeof(head),
             "POST /v1/actions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n",
             in.key);
    itest_raw_exchange(in.port, head, strlen(head), status, sizeof(status));
    CHECK(strncmp(status, "HTTP/1.1 413", 12) == 0);

    /* A record of 1 MB, rejected (unknown field): its dead letter is cut, not lost. */
    char tag[64];
    snprintf(tag, sizeof(tag), "big-p%d-t%ld", getpid(), (long)time(NULL));
    bx_buf big;
    bx_buf_init(&big, 0);
    REQUIRE(bx_buf_printf(&big,
                          "{\"records\":[{\"event_id\":\"%s\",\"student_id\":\"ITS01\","
                          "\"date\":\"2026-11-26\",\"status\":\"absent\",\"note\":\"",
                          tag) == BX_OK);
    for (int i = 0; i < 16; i++)
        REQUIRE(bx_buf_append(&big, chunk, sizeof(chunk)) == BX_OK);
    REQUIRE(bx_buf_puts(&big, "\"}]}") == BX_OK);
    bx_buf reply;
    bx_buf_init(&reply, 0);
    CHECK_INT(post(&in, "/v1/attendance", in.key, JSON, big.data, &reply), 200);
    CHECK_CONTAINS(reply.data, "\"reason\":\"unknown_field\"");
    bx_buf_free(&reply);
    bx_buf_free(&big);

    bx_buf got;
    bx_buf_init(&got, 0);
    /* in the order they were produced (a collect passes what it does not match) */
    CHECK_INT(itest_topic_collect(dlq, "\"endpoint\":\"/v1/actions\",\"school_id\":\"IT01\"", 1,
                                  20000, &got),
              1);
    CHECK_CONTAINS(got.data, "\"reason\":\"too_large\"");
    bx_buf_reset(&got);
    CHECK_INT(itest_topic_collect(dlq, tag, 1, 20000, &got), 1);
    CHECK_CONTAINS(got.data, "\"record_bytes\":");
    CHECK_CONTAINS(got.data, "\"record_sha256\":\"");
    CHECK_CONTAINS(got.data, "\"record_truncated\":true");
    bx_buf_reset(&got);
    /* nothing from the unauthenticated upload, however long we wait */
    CHECK_INT(
        itest_topic_collect(unauth, "\"endpoint\":\"/v1/leave\",\"school_id\":null", 1, 3000, &got),
        0);
    itest_mark_free(unauth);
    bx_buf_free(&got);
    CHECK(itest_metric(in.metrics, "bx_ingest_unauthenticated_total") >= 1);
    itest_mark_free(dlq);
    stop(&in);
}

/* ---- defect 7: personal data in replies and dead letters ---- */

/* Issue 14, defect 7: an id number typed into student_id is echoed neither in the reply nor in
 * the dead letter's error, and free text with a phone and an id number is masked in bx.dlq.v1. */
BX_TEST(id_numbers_and_phones_are_masked)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *dlq = itest_topic_mark("bx.dlq.v1");
    char tag[64], body[1024];
    snprintf(tag, sizeof(tag), "pii-p%d-t%ld", getpid(), (long)time(NULL));
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"11010119900307123X\",\"date\":\"2026-11-26\","
             "\"status\":\"absent\",\"event_id\":\"%s-a\"},{\"student_id\":\"ITS01\",\"date\":"
             "\"2026-11-26\",\"status\":\"absent\",\"note\":\"王小明 家长 13812345678 身份证 "
             "110101199003071234\",\"event_id\":\"%s-b\"}]}",
             tag, tag);
    bx_buf reply;
    bx_buf_init(&reply, 0);
    CHECK_INT(post(&in, "/v1/attendance", in.key, JSON, body, &reply), 200);
    CHECK_CONTAINS(reply.data, "110101********123X");
    CHECK(strstr(reply.data, "19900307") == NULL);
    bx_buf_free(&reply);
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(dlq, tag, 2, 20000, &got), 2);
    CHECK(strstr(got.data, "19900307") == NULL);
    CHECK(strstr(got.data, "13812345678") == NULL);
    CHECK_CONTAINS(got.data, "138****5678");
    CHECK_CONTAINS(got.data, "110101********1234");
    bx_buf_free(&got);
    itest_mark_free(dlq);
    stop(&in);
}

/* ---- defect 11: byte order marks, charsets, dates ---- */

/* Issue 14, defect 11: a JSON body with a BOM is read as a CSV one is; a charset other than UTF-8
 * is refused 415 with what to send; 9999-12-31 is a date out of range. */
BX_TEST(bom_charset_and_far_dates)
{
    struct ingest in;
    start(&in, NULL);
    bx_buf reply;
    bx_buf_init(&reply, 0);
    const char *record = "{\"records\":[{\"student_id\":\"ITS02\",\"date\":\"2026-11-26\","
                         "\"status\":\"present\"}]}";
    char bom[512];
    snprintf(bom, sizeof(bom), "\xEF\xBB\xBF%s", record);
    CHECK_INT(post(&in, "/v1/attendance", in.key, JSON, bom, &reply), 200);
    CHECK_CONTAINS(reply.data, "\"accepted\":1");
    bx_buf_reset(&reply);
    CHECK_INT(
        post(&in, "/v1/attendance", in.key, "application/json; charset=UTF-8", record, &reply),
        200);
    bx_buf_reset(&reply);
    CHECK_INT(
        post(&in, "/v1/attendance", in.key, "application/json; charset=iso-8859-1", record, &reply),
        415);
    CHECK_CONTAINS(reply.data, "charset \\\"iso-8859-1\\\" is not supported");
    bx_buf_reset(&reply);
    CHECK_INT(post(&in, "/v1/attendance", in.key, "text/csv; charset=\"GBK\"",
                   "student_id,date,status\nITS02,2026-11-26,present\n", &reply),
              415);
    CHECK_CONTAINS(reply.data, "charset \\\"GBK\\\"");
    bx_buf_reset(&reply);
    CHECK_INT(post(&in, "/v1/attendance", in.key, JSON,
                   "{\"records\":[{\"student_id\":\"ITS02\",\"date\":\"9999-12-31\","
                   "\"status\":\"present\"}]}",
                   &reply),
              200);
    CHECK_CONTAINS(reply.data, "9999-12-31 is out of range");
    bx_buf_free(&reply);
    stop(&in);
}

/* ---- defect 4: TLS 1.2 at least ---- */

static void make_certificate(char *cert, char *key, size_t size)
{
    char *dir = itest_tmpdir("tls");
    snprintf(cert, size, "%s/cert.pem", dir);
    snprintf(key, size, "%s/key.pem", dir);
    const char *argv[] = {"/usr/bin/openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "rsa:2048",
                          "-nodes",
                          "-keyout",
                          key,
                          "-out",
                          cert,
                          "-days",
                          "2",
                          "-subj",
                          "/CN=127.0.0.1",
                          NULL};
    REQUIRE(itest_run(argv, NULL, NULL) == 0);
    free(dir);
}

/* True when a handshake at exactly this version (-tls1, -tls1_1, -tls1_2, -tls1_3) succeeds; the
 * client allows every cipher at security level 0, so a refusal is the server's. */
static bool handshake(int port, const char *version)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "openssl s_client -connect 127.0.0.1:%d %s -cipher 'DEFAULT:@SECLEVEL=0' -brief "
             "</dev/null",
             port, version);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    bx_buf out;
    bx_buf_init(&out, 1 << 20);
    int rc = itest_run(argv, NULL, &out);
    bool ok = rc == 0 && out.data && strstr(out.data, "CONNECTION ESTABLISHED");
    bx_buf_free(&out);
    return ok;
}

static void check_tls_versions(int port, const char *who)
{
    static const struct {
        const char *flag;
        bool accepted;
    } versions[] = {{"-tls1", false}, {"-tls1_1", false}, {"-tls1_2", true}, {"-tls1_3", true}};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
        if (handshake(port, versions[i].flag) != versions[i].accepted)
            BX_FAIL_AT("%s: a %s handshake was %s", who, versions[i].flag,
                       versions[i].accepted ? "refused" : "accepted");
}

/* Issue 14, defect 4: `openssl s_client -tls1` negotiated with bx-ingest. TLS 1.0 and 1.1 are
 * refused, 1.2 and 1.3 accepted, by bx-ingest and bx-console alike (bx_tls.h). */
BX_TEST(tls_below_1_2_is_refused)
{
    char cert[512], key[512], cert_env[600], key_env[600];
    make_certificate(cert, key, sizeof(cert));
    snprintf(cert_env, sizeof(cert_env), "BX_TLS_CERT=%s", cert);
    snprintf(key_env, sizeof(key_env), "BX_TLS_KEY=%s", key);
    const char *env[] = {cert_env, key_env, NULL};
    struct ingest in;
    start(&in, env);
    check_tls_versions(in.port, "bx-ingest");
    stop(&in);

    char console[512], listen[64], pg[600];
    snprintf(console, sizeof(console), "%s/services/bx-console/bx-console",
             itest_env("BX_BUILD_DIR", "."));
    if (access(console, X_OK) != 0)
        BX_FAIL_AT("%s is not built (build bx-console to run this test)", console);
    REQUIRE(access(console, X_OK) == 0);
    int port = pick_port();
    snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", port);
    /* the shared test database, as bx-ingest's: the console only has to serve its TLS */
    snprintf(pg, sizeof(pg), "BX_PG_URL=%s",
             itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue"));
    const char *console_env[] = {listen, pg, cert_env, key_env, "BX_CONSOLE_THREADS=2", NULL};
    char *clock = itest_clock_file(TODAY " 18:00");
    int metrics = 0;
    pid_t pid = itest_service_start(console, clock, console_env, &metrics);
    check_tls_versions(port, "bx-console");
    itest_stop(pid);
    free(clock);
}
