/* bx-fakesms: a local SMS provider for tests and development that behaves like the real ones,
 * faults included. It speaks bx-notify's webhook protocol (HMAC-SHA256 checked) and Aliyun's RPC
 * API (SendSms, QuerySendDetails; HMAC-SHA1 signature checked with its own code, not
 * bx-notify's), posts delivery receipts in the matching format, and counts what a test must
 * know: above all DOUBLE SENDS, the same notification id accepted more than once.
 *
 * Settings (flag --name value, environment BX_FAKESMS_NAME, or at runtime POST /_control with a
 * JSON object of the same names): listen, seed, secret (webhook), access_key_id and
 * access_key_secret (aliyun), receipt_url, receipt_delay_ms, receipt_batch (receipts a post carries
 * at most, of those due: 1 by default, as many as 1000 as a provider's batched callbacks do),
 * fail_5xx (share of sends answered 503
 * before acceptance), slow_accept (share accepted and recorded but answered only after slow_ms),
 * slow_ms, rate_limit (sends per second; more are answered 429), dup_receipts (share of receipts
 * posted twice), lost_receipts (share never posted), undelivered (share that fail delivery),
 * reject_numbers (comma-separated phones refused permanently). Shares are 0..1; every draw is a
 * hash of the seed, the fault and the notification id with its attempt number, so a run is
 * deterministic whatever the timing.
 *
 * Endpoints: POST /webhook/send, GET /webhook/status?id=, POST / (Aliyun RPC, form body),
 * GET /healthz, GET /_stats, GET /_messages, POST /_control, POST /_reset. */
#include "bx_buf.h"
#include "bx_hex.h"
#include "bx_json.h"
#include "bx_log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX          (64 * 1024)
#define REJECT_MAX        64
#define SKEW_S            300 /* webhook timestamps */
#define ALIYUN_SKEW_S     900 /* Aliyun refuses a Timestamp more than 15 minutes off */
#define NONCES_MAX        65536
#define RECEIPT_TRIES     3
#define RECEIPT_BATCH_MAX 1000

typedef enum api { API_WEBHOOK, API_ALIYUN } api;
typedef enum mstate { M_PENDING, M_DELIVERED, M_FAILED } mstate;

typedef struct settings {
    char listen[64];
    uint64_t seed;
    char secret[256];
    char access_key_id[128];
    char access_key_secret[256];
    char receipt_url[512];
    long receipt_delay_ms;
    long receipt_batch;
    double fail_5xx, slow_accept, dup_receipts, lost_receipts, undelivered;
    long slow_ms;
    long rate_limit;
    char reject[REJECT_MAX][16];
    int nreject;
} settings;

typedef struct message {
    long seq;
    char *id, *phone, *text, *sign_name, *template_name;
    char message_id[64];
    api via;
    mstate state;
    int64_t accepted_ms, due_ms;
    char send_date[9]; /* yyyymmdd, Shanghai, of acceptance */
    bool receipt_done;
    int receipt_copies; /* 0 lost, 1, or 2 duplicated */
} message;

/* A notification id seen in send requests, with how often it was tried and accepted. */
typedef struct id_entry {
    char *id;
    int attempts;
    int accepted;
} id_entry;

typedef struct recipient {
    char masked[16];
    long count;
} recipient;

static struct fake {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    settings set;
    message *msgs;
    size_t nmsgs, capmsgs;
    id_entry *ids; /* open addressing, capids a power of two */
    size_t nids, capids;
    recipient *recips;
    size_t nrecips, caprecips;
    char (*nonces)[72];
    size_t nnonces;
    long requests, sends_accepted, double_sends, refused_5xx, refused_429, rejected_permanent,
        slow_accepts, bad_signatures, bad_requests, receipts_sent, receipts_failed, receipts_lost,
        receipts_duplicated, queries;
    int64_t rate_second;
    long rate_count, max_rate, accepted_second_count, max_accepted_rate;
    int64_t accepted_second;
    long generation; /* bumped by a reset, so the receipt loop starts over */
    volatile sig_atomic_t stop;
} F;

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* A deterministic draw in [0, 1) for one fault, one id and one attempt. */
static bool draw(double share, const char *fault, const char *id, int attempt)
{
    if (share <= 0)
        return false;
    if (share >= 1)
        return true;
    uint64_t h = mix64(F.set.seed ^ mix64(fnv1a(fault) ^ mix64(fnv1a(id) + (uint64_t)attempt)));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < share;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void shanghai_date(int64_t ms, char out[9])
{
    time_t t = (time_t)(ms / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 9, "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static void shanghai_time(int64_t ms, char out[20])
{
    time_t t = (time_t)(ms / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 20, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- the id table (lock held) ---- */

static id_entry *id_lookup(const char *id, bool create)
{
    if (F.capids == 0 || (create && (F.nids + 1) * 2 > F.capids)) {
        size_t cap = F.capids ? F.capids * 2 : 1024;
        id_entry *t = calloc(cap, sizeof(*t));
        if (t == NULL)
            return NULL;
        for (size_t i = 0; i < F.capids; i++) {
            if (F.ids[i].id == NULL)
                continue;
            size_t j = fnv1a(F.ids[i].id) & (cap - 1);
            while (t[j].id != NULL)
                j = (j + 1) & (cap - 1);
            t[j] = F.ids[i];
        }
        free(F.ids);
        F.ids = t;
        F.capids = cap;
    }
    size_t j = fnv1a(id) & (F.capids - 1);
    while (F.ids[j].id != NULL) {
        if (strcmp(F.ids[j].id, id) == 0)
            return &F.ids[j];
        j = (j + 1) & (F.capids - 1);
    }
    if (!create)
        return NULL;
    F.ids[j].id = strdup(id);
    if (F.ids[j].id == NULL)
        return NULL;
    F.nids++;
    return &F.ids[j];
}

static void count_recipient(const char *phone)
{
    char masked[16];
    bx_mask_phone(phone, masked, sizeof(masked));
    for (size_t i = 0; i < F.nrecips; i++) {
        if (strcmp(F.recips[i].masked, masked) == 0) {
            F.recips[i].count++;
            return;
        }
    }
    if (F.nrecips == F.caprecips) {
        size_t cap = F.caprecips ? F.caprecips * 2 : 64;
        recipient *r = realloc(F.recips, cap * sizeof(*r));
        if (r == NULL)
            return;
        F.recips = r;
        F.caprecips = cap;
    }
    snprintf(F.recips[F.nrecips].masked, sizeof(F.recips[0].masked), "%s", masked);
    F.recips[F.nrecips++].count = 1;
}

/* Counts a send request in the current second; true when it is over the rate limit. */
static bool over_rate(void)
{
    int64_t sec = now_ms() / 1000;
    if (sec != F.rate_second) {
        F.rate_second = sec;
        F.rate_count = 0;
    }
    F.rate_count++;
    if (F.rate_count > F.max_rate)
        F.max_rate = F.rate_count;
    return F.set.rate_limit > 0 && F.rate_count > F.set.rate_limit;
}

static bool rejected_number(const char *phone)
{
    for (int i = 0; i < F.set.nreject; i++) {
        if (strcmp(F.set.reject[i], phone) == 0)
            return true;
    }
    return false;
}

/* Records an accepted message (lock held); returns it. */
static message *accept_message(const char *id, const char *phone, const char *text,
                               const char *sign_name, const char *template_name, api via,
                               id_entry *e)
{
    if (F.nmsgs == F.capmsgs) {
        size_t cap = F.capmsgs ? F.capmsgs * 2 : 256;
        message *m = realloc(F.msgs, cap * sizeof(*m));
        if (m == NULL)
            return NULL;
        F.msgs = m;
        F.capmsgs = cap;
    }
    message *m = &F.msgs[F.nmsgs];
    memset(m, 0, sizeof(*m));
    m->seq = (long)F.nmsgs + 1;
    m->id = dup_or_empty(id);
    m->phone = dup_or_empty(phone);
    m->text = dup_or_empty(text);
    m->sign_name = dup_or_empty(sign_name);
    m->template_name = dup_or_empty(template_name);
    if (!m->id || !m->phone || !m->text || !m->sign_name || !m->template_name) {
        free(m->id);
        free(m->phone);
        free(m->text);
        free(m->sign_name);
        free(m->template_name);
        return NULL;
    }
    F.nmsgs++;
    m->via = via;
    m->state = M_PENDING;
    m->accepted_ms = now_ms();
    m->due_ms = m->accepted_ms + F.set.receipt_delay_ms;
    shanghai_date(m->accepted_ms, m->send_date);
    if (via == API_WEBHOOK)
        snprintf(m->message_id, sizeof(m->message_id), "fk-%ld", m->seq);
    else
        snprintf(m->message_id, sizeof(m->message_id), "%ld^%llu", 900000000000L + m->seq,
                 (unsigned long long)(mix64(F.set.seed + (uint64_t)m->seq) % 1000));
    bool lost = draw(F.set.lost_receipts, "lost_receipt", id, e->accepted);
    bool dup = draw(F.set.dup_receipts, "dup_receipt", id, e->accepted);
    m->receipt_copies = lost ? 0 : (dup ? 2 : 1);
    e->accepted++;
    F.sends_accepted++;
    if (e->accepted > 1)
        F.double_sends++;
    int64_t sec = m->accepted_ms / 1000;
    if (sec != F.accepted_second) {
        F.accepted_second = sec;
        F.accepted_second_count = 0;
    }
    if (++F.accepted_second_count > F.max_accepted_rate)
        F.max_accepted_rate = F.accepted_second_count;
    count_recipient(phone);
    pthread_cond_signal(&F.wake);
    return m;
}

/* What became of a send request, decided alike for both protocols; each answers it its own way. */
typedef enum send_outcome {
    SEND_ACCEPTED,
    SEND_NO_MEMORY,
    SEND_RATE_LIMITED,
    SEND_REJECTED_NUMBER,
    SEND_UNAVAILABLE
} send_outcome;

/* Decides a request to send text to phone for notification id (takes the lock): over the rate
 * limit, a number refused for good, a 5xx fault drawn for this attempt, else accepted and recorded
 * (*message_id, 64 bytes, the provider's id), returning only after slow_ms when a slow acceptance
 * was drawn. text NULL (its copy failed) is out of memory. */
static send_outcome send_decide(const char *id, const char *phone, const char *text,
                                const char *sign_name, const char *template_name, api via,
                                char *message_id)
{
    long slow_ms = 0;
    pthread_mutex_lock(&F.lock);
    id_entry *e = id_lookup(id, true);
    int attempt = e ? e->attempts++ : 0;
    send_outcome o = SEND_ACCEPTED;
    message *m = NULL;
    if (e == NULL || text == NULL) {
        o = SEND_NO_MEMORY;
    } else if (over_rate()) {
        F.refused_429++;
        o = SEND_RATE_LIMITED;
    } else if (rejected_number(phone)) {
        F.rejected_permanent++;
        o = SEND_REJECTED_NUMBER;
    } else if (draw(F.set.fail_5xx, "fail_5xx", id, attempt)) {
        F.refused_5xx++;
        o = SEND_UNAVAILABLE;
    } else if ((m = accept_message(id, phone, text, sign_name, template_name, via, e)) == NULL) {
        o = SEND_NO_MEMORY;
    } else {
        snprintf(message_id, 64, "%s", m->message_id);
        if (draw(F.set.slow_accept, "slow_accept", id, attempt)) {
            F.slow_accepts++;
            slow_ms = F.set.slow_ms;
        }
    }
    pthread_mutex_unlock(&F.lock);
    if (slow_ms)
        usleep((useconds_t)slow_ms * 1000);
    return o;
}

/* ---- settings ---- */

static bx_status parse_share(const char *name, const char *v, double *out, bx_error *err)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d >= 0 && d <= 1))
        return BX_ERR(err, BX_EINVAL, "%s: expected a share 0..1, got \"%.40s\"", name, v);
    *out = d;
    return BX_OK;
}

static bx_status parse_long(const char *name, const char *v, long max, long *out, bx_error *err)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < 0 || x > max)
        return BX_ERR(err, BX_EINVAL, "%s: expected 0..%ld, got \"%.40s\"", name, max, v);
    *out = (long)x;
    return BX_OK;
}

static bx_status set_rejects(settings *s, const char *v, bx_error *err)
{
    s->nreject = 0;
    char buf[REJECT_MAX * 16];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (s->nreject == REJECT_MAX || strlen(tok) != 11)
            return BX_ERR(err, BX_EINVAL, "reject_numbers: up to %d 11-digit numbers", REJECT_MAX);
        snprintf(s->reject[s->nreject++], 16, "%s", tok);
    }
    return BX_OK;
}

/* Sets one setting by name from text. */
static bx_status set_one(settings *s, const char *name, const char *v, bx_error *err)
{
    long x;
    bx_status st = BX_OK;
    if (strcmp(name, "listen") == 0)
        snprintf(s->listen, sizeof(s->listen), "%s", v);
    else if (strcmp(name, "seed") == 0) {
        st = parse_long(name, v, 0x7fffffffL, &x, err);
        if (st == BX_OK)
            s->seed = (uint64_t)x;
    } else if (strcmp(name, "secret") == 0)
        snprintf(s->secret, sizeof(s->secret), "%s", v);
    else if (strcmp(name, "access_key_id") == 0)
        snprintf(s->access_key_id, sizeof(s->access_key_id), "%s", v);
    else if (strcmp(name, "access_key_secret") == 0)
        snprintf(s->access_key_secret, sizeof(s->access_key_secret), "%s", v);
    else if (strcmp(name, "receipt_url") == 0)
        snprintf(s->receipt_url, sizeof(s->receipt_url), "%s", v);
    else if (strcmp(name, "receipt_delay_ms") == 0)
        st = parse_long(name, v, 3600000L, &s->receipt_delay_ms, err);
    else if (strcmp(name, "receipt_batch") == 0) {
        st = parse_long(name, v, RECEIPT_BATCH_MAX, &s->receipt_batch, err);
        if (st == BX_OK && s->receipt_batch < 1)
            st = BX_ERR(err, BX_EINVAL, "receipt_batch: 1 to %d", RECEIPT_BATCH_MAX);
    } else if (strcmp(name, "slow_ms") == 0)
        st = parse_long(name, v, 600000L, &s->slow_ms, err);
    else if (strcmp(name, "rate_limit") == 0)
        st = parse_long(name, v, 1000000L, &s->rate_limit, err);
    else if (strcmp(name, "fail_5xx") == 0)
        st = parse_share(name, v, &s->fail_5xx, err);
    else if (strcmp(name, "slow_accept") == 0)
        st = parse_share(name, v, &s->slow_accept, err);
    else if (strcmp(name, "dup_receipts") == 0)
        st = parse_share(name, v, &s->dup_receipts, err);
    else if (strcmp(name, "lost_receipts") == 0)
        st = parse_share(name, v, &s->lost_receipts, err);
    else if (strcmp(name, "undelivered") == 0)
        st = parse_share(name, v, &s->undelivered, err);
    else if (strcmp(name, "reject_numbers") == 0)
        st = set_rejects(s, v, err);
    else
        st = BX_ERR(err, BX_EINVAL, "unknown setting \"%.40s\"", name);
    return st;
}

static const char *const setting_names[] = {"listen",
                                            "seed",
                                            "secret",
                                            "access_key_id",
                                            "access_key_secret",
                                            "receipt_url",
                                            "receipt_delay_ms",
                                            "receipt_batch",
                                            "slow_ms",
                                            "rate_limit",
                                            "fail_5xx",
                                            "slow_accept",
                                            "dup_receipts",
                                            "lost_receipts",
                                            "undelivered",
                                            "reject_numbers"};

static void settings_json(const settings *s, bx_buf *b)
{
    bx_status st = bx_buf_printf(
        b,
        "{\"listen\":\"%s\",\"seed\":%llu,\"receipt_delay_ms\":%ld,\"receipt_batch\":%ld,"
        "\"slow_ms\":%ld,\"rate_limit\":%ld,\"fail_5xx\":%g,\"slow_accept\":%g,"
        "\"dup_receipts\":%g,\"lost_receipts\":%g,\"undelivered\":%g,\"receipt_url\":",
        s->listen, (unsigned long long)s->seed, s->receipt_delay_ms, s->receipt_batch, s->slow_ms,
        s->rate_limit, s->fail_5xx, s->slow_accept, s->dup_receipts, s->lost_receipts,
        s->undelivered);
    IFOK(st, bx_buf_json_string(b, s->receipt_url));
    IFOK(st, bx_buf_printf(b, ",\"reject_numbers\":%d}", s->nreject));
    (void)st;
}

/* ---- HTTP plumbing ---- */

typedef struct request {
    bx_buf body;
    bool too_large;
} request;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             bx_buf *b)
{
    size_t len = b->len;
    char *data = bx_buf_steal(b);
    if (data == NULL) {
        data = strdup("");
        len = 0;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned code, const char *fmt, ...)
    BX_PRINTF(3, 4);

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned code, const char *fmt, ...)
{
    bx_buf b;
    bx_buf_init(&b, BODY_MAX);
    va_list ap;
    va_start(ap, fmt);
    bx_status st = bx_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    (void)st;
    return reply(conn, code, "application/json", &b);
}

/* hex HMAC-SHA256(key, a "." b) */
static void hmac256_dot(const char *key, const char *a, const char *b, size_t blen, char hex[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t al = strlen(a);
    unsigned char *msg = malloc(al + 1 + blen + 1);
    if (msg == NULL) {
        hex[0] = '\0';
        return;
    }
    memcpy(msg, a, al);
    msg[al] = '.';
    memcpy(msg + al + 1, b, blen);
    HMAC(EVP_sha256(), key, (int)strlen(key), msg, al + 1 + blen, mac, &n);
    free(msg);
    bx_hex_encode(mac, n, hex);
}

static bool webhook_signed(struct MHD_Connection *conn, const char *signed_text, size_t len)
{
    const char *ts = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Bx-Timestamp");
    const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Bx-Signature");
    if (ts == NULL || sig == NULL || strncmp(sig, "sha256=", 7) != 0)
        return false;
    char *end = NULL;
    long long t = strtoll(ts, &end, 10);
    long long now = (long long)time(NULL);
    if (end == ts || *end != '\0' || t < now - SKEW_S || t > now + SKEW_S)
        return false;
    char want[65];
    hmac256_dot(F.set.secret, ts, signed_text, len, want);
    return strlen(sig + 7) == 64 && CRYPTO_memcmp(want, sig + 7, 64) == 0;
}

/* ---- the webhook protocol ---- */

static enum MHD_Result webhook_send(struct MHD_Connection *conn, request *req)
{
    pthread_mutex_lock(&F.lock);
    F.requests++;
    pthread_mutex_unlock(&F.lock);
    if (!webhook_signed(conn, req->body.data ? req->body.data : "", req->body.len)) {
        pthread_mutex_lock(&F.lock);
        F.bad_signatures++;
        pthread_mutex_unlock(&F.lock);
        return reply_json(conn, 401, "{\"error\":\"bad_signature\"}");
    }
    cJSON *root = NULL;
    bx_error err = {0};
    const char *id = NULL, *phone = NULL, *text = NULL, *sign = "", *tmpl = "";
    bx_status s = req->body.len ? bx_json_parse(req->body.data, req->body.len, &root, &err)
                                : BX_ERR(&err, BX_EINVAL, "empty body");
    IFOK(s, cJSON_IsObject(root) ? BX_OK : BX_ERR(&err, BX_EINVAL, "not an object"));
    IFOK(s, bx_json_get_string(root, "", "id", true, 128, &id, &err));
    IFOK(s, bx_json_get_string(root, "", "phone", true, 11, &phone, &err));
    IFOK(s, bx_json_get_string(root, "", "text", true, 4096, &text, &err));
    if (s == BX_OK &&
        bx_json_get_string(root, "", "sign_name", false, 64, &sign, &err) > BX_ENOTFOUND)
        s = BX_EINVAL;
    if (s == BX_OK &&
        bx_json_get_string(root, "", "template", false, 64, &tmpl, &err) > BX_ENOTFOUND)
        s = BX_EINVAL;
    if (s != BX_OK) {
        pthread_mutex_lock(&F.lock);
        F.bad_requests++;
        pthread_mutex_unlock(&F.lock);
        cJSON_Delete(root);
        return reply_json(conn, 400, "{\"error\":\"bad_request\"}");
    }
    /* the answers to each outcome, in send_outcome's order */
    static const struct {
        unsigned code;
        const char *error;
    } answers[] = {{200, NULL},
                   {500, "out_of_memory"},
                   {429, "rate_limited"},
                   {400, "invalid_number"},
                   {503, "unavailable"}};
    char mid[64] = "";
    send_outcome o = send_decide(id, phone, text, sign, tmpl, API_WEBHOOK, mid);
    cJSON_Delete(root);
    if (o != SEND_ACCEPTED)
        return reply_json(conn, answers[o].code, "{\"error\":\"%s\"}", answers[o].error);
    return reply_json(conn, 200, "{\"message_id\":\"%s\"}", mid);
}

static const char *state_word(mstate s)
{
    return s == M_DELIVERED ? "delivered" : s == M_FAILED ? "failed" : "pending";
}

/* The last accepted message with this id (lock held). */
static message *find_message(const char *id)
{
    for (size_t i = F.nmsgs; i > 0; i--) {
        if (strcmp(F.msgs[i - 1].id, id) == 0)
            return &F.msgs[i - 1];
    }
    return NULL;
}

static enum MHD_Result webhook_status(struct MHD_Connection *conn)
{
    const char *id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "id");
    if (id == NULL || strlen(id) > 128)
        return reply_json(conn, 400, "{\"error\":\"id_required\"}");
    /* The client signs "id=" + the percent-encoded id; rebuild that from the decoded value. */
    bx_buf q;
    bx_buf_init(&q, 1024);
    bx_status st = bx_buf_puts(&q, "id=");
    for (const unsigned char *p = (const unsigned char *)id; st == BX_OK && *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            st = bx_buf_append(&q, p, 1);
        else
            st = bx_buf_printf(&q, "%%%02X", *p);
    }
    bool ok = st == BX_OK && webhook_signed(conn, q.data, q.len);
    bx_buf_free(&q);
    pthread_mutex_lock(&F.lock);
    F.queries++;
    if (!ok) {
        F.bad_signatures++;
        pthread_mutex_unlock(&F.lock);
        return reply_json(conn, 401, "{\"error\":\"bad_signature\"}");
    }
    message *m = find_message(id);
    if (m == NULL) {
        pthread_mutex_unlock(&F.lock);
        return reply_json(conn, 404, "{\"status\":\"none\"}");
    }
    char mid[64];
    snprintf(mid, sizeof(mid), "%s", m->message_id);
    mstate state = m->state;
    pthread_mutex_unlock(&F.lock);
    return reply_json(conn, 200, "{\"status\":\"%s\",\"message_id\":\"%s\"%s}", state_word(state),
                      mid, state == M_FAILED ? ",\"reason\":\"handset unreachable\"" : "");
}

/* ---- Aliyun RPC ---- */

typedef struct param {
    char *key, *value;
} param;

/* Decodes application/x-www-form-urlencoded text of n bytes into a new string. */
static char *form_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && bx_hex_digit(s[i + 1]) >= 0 &&
                   bx_hex_digit(s[i + 2]) >= 0) {
            out[o++] = (char)(bx_hex_digit(s[i + 1]) * 16 + bx_hex_digit(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int param_cmp(const void *a, const void *b)
{
    return strcmp(((const param *)a)->key, ((const param *)b)->key);
}

static void params_free(param *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        free(p[i].value);
    }
    free(p);
}

static size_t parse_form(const char *body, size_t len, param **out)
{
    size_t cap = 32, n = 0;
    param *p = calloc(cap, sizeof(*p));
    const char *s = body, *end = body + len;
    while (p != NULL && s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        if (stop > s) {
            if (n == cap) {
                param *q = realloc(p, 2 * cap * sizeof(*p));
                if (q == NULL)
                    break;
                p = q;
                cap *= 2;
            }
            p[n].key = form_decode(s, (size_t)((eq ? eq : stop) - s));
            p[n].value = eq ? form_decode(eq + 1, (size_t)(stop - eq - 1)) : strdup("");
            n++;
        }
        s = stop + 1;
    }
    *out = p;
    return p ? n : 0;
}

static const char *param_get(const param *p, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].key && strcmp(p[i].key, key) == 0)
            return p[i].value;
    }
    return NULL;
}

static bool isalnum_ascii(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Aliyun's POP encoding: RFC 3986 unreserved characters stay, everything else %XX, space %20. */
static bx_status pop_encode(bx_buf *b, const char *s)
{
    bx_status st = BX_OK;
    for (const unsigned char *c = (const unsigned char *)s; st == BX_OK && *c; c++) {
        if (isalnum_ascii(*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~')
            st = bx_buf_append(b, c, 1);
        else
            st = bx_buf_printf(b, "%%%02X", *c);
    }
    return st;
}

static bool aliyun_timestamp_ok(const char *ts)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, s;
    char z;
    if (ts == NULL || strlen(ts) != 20 ||
        sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z) != 7 || z != 'Z')
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    long long t = (long long)timegm(&tm), now = (long long)time(NULL);
    return t >= now - ALIYUN_SKEW_S && t <= now + ALIYUN_SKEW_S;
}

/* Checks an RPC request's signature as Aliyun documents it. Returns NULL when it is good, else
 * the error Code (and *http the status). Lock not held. */
static const char *aliyun_check(param *p, size_t n, const char *method, unsigned *http)
{
    *http = 400;
    const char *sig = param_get(p, n, "Signature");
    const char *akid = param_get(p, n, "AccessKeyId");
    if (sig == NULL || akid == NULL || param_get(p, n, "SignatureNonce") == NULL)
        return "MissingParameter";
    if (strcmp(akid, F.set.access_key_id) != 0) {
        *http = 404;
        return "InvalidAccessKeyId.NotFound";
    }
    const char *sm = param_get(p, n, "SignatureMethod");
    const char *sv = param_get(p, n, "SignatureVersion");
    if (sm == NULL || strcmp(sm, "HMAC-SHA1") != 0 || sv == NULL || strcmp(sv, "1.0") != 0)
        return "InvalidSignatureMethod";
    const char *ver = param_get(p, n, "Version");
    if (ver == NULL || strcmp(ver, "2017-05-25") != 0)
        return "InvalidVersion";
    if (!aliyun_timestamp_ok(param_get(p, n, "Timestamp")))
        return "InvalidTimeStamp.Expired";
    /* Canonicalized query string: every parameter but Signature, sorted by name. */
    param *sorted = calloc(n ? n : 1, sizeof(*sorted));
    if (sorted == NULL)
        return "InternalError";
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i].key && p[i].value && strcmp(p[i].key, "Signature") != 0)
            sorted[m++] = p[i];
    }
    qsort(sorted, m, sizeof(*sorted), param_cmp);
    bx_buf canon, sts;
    bx_buf_init(&canon, BODY_MAX * 3);
    bx_buf_init(&sts, BODY_MAX * 9);
    bx_status st = BX_OK;
    for (size_t i = 0; i < m; i++) {
        if (i > 0)
            IFOK(st, bx_buf_puts(&canon, "&"));
        IFOK(st, pop_encode(&canon, sorted[i].key));
        IFOK(st, bx_buf_puts(&canon, "="));
        IFOK(st, pop_encode(&canon, sorted[i].value));
    }
    free(sorted);
    IFOK(st, bx_buf_printf(&sts, "%s&%%2F&", method));
    IFOK(st, pop_encode(&sts, canon.data ? canon.data : ""));
    char key[300];
    snprintf(key, sizeof(key), "%s&", F.set.access_key_secret);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    unsigned char b64[64];
    bool good = false;
    if (st == BX_OK) {
        HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)sts.data, sts.len, mac,
             &maclen);
        EVP_EncodeBlock(b64, mac, (int)maclen);
        good = strcmp((const char *)b64, sig) == 0;
    }
    bx_buf_free(&canon);
    bx_buf_free(&sts);
    if (!good)
        return "SignatureDoesNotMatch";
    /* A nonce is good once. */
    const char *nonce = param_get(p, n, "SignatureNonce");
    pthread_mutex_lock(&F.lock);
    for (size_t i = 0; i < F.nnonces; i++) {
        if (strncmp(F.nonces[i], nonce, sizeof(F.nonces[0]) - 1) == 0) {
            pthread_mutex_unlock(&F.lock);
            return "SignatureNonceUsed";
        }
    }
    if (F.nonces != NULL) {
        snprintf(F.nonces[F.nnonces % NONCES_MAX], sizeof(F.nonces[0]), "%s", nonce);
        if (F.nnonces < NONCES_MAX)
            F.nnonces++;
    }
    pthread_mutex_unlock(&F.lock);
    return NULL;
}

static enum MHD_Result aliyun_error(struct MHD_Connection *conn, unsigned http, const char *code)
{
    return reply_json(conn, http, "{\"RequestId\":\"%016llx\",\"Code\":\"%s\",\"Message\":\"%s\"}",
                      (unsigned long long)mix64((uint64_t)now_ms()), code, code);
}

static enum MHD_Result aliyun_send(struct MHD_Connection *conn, param *p, size_t n)
{
    const char *phone = param_get(p, n, "PhoneNumbers");
    const char *sign = param_get(p, n, "SignName");
    const char *code = param_get(p, n, "TemplateCode");
    const char *tparam = param_get(p, n, "TemplateParam");
    const char *outid = param_get(p, n, "OutId");
    if (phone == NULL || sign == NULL || code == NULL)
        return aliyun_error(conn, 400, "MissingParameter");
    if (strlen(phone) != 11 || strchr(phone, ',') != NULL)
        return aliyun_error(conn, 200, "isv.MOBILE_NUMBER_ILLEGAL");
    /* The message as the handset shows it: the template's "content" parameter when given. */
    char *text = NULL;
    if (tparam != NULL) {
        cJSON *tp = NULL;
        bx_error err = {0};
        const char *content = NULL;
        if (bx_json_parse(tparam, strlen(tparam), &tp, &err) != BX_OK || !cJSON_IsObject(tp)) {
            cJSON_Delete(tp);
            return aliyun_error(conn, 200, "isv.INVALID_JSON_PARAM");
        }
        if (bx_json_get_string(tp, "", "content", true, 4096, &content, &err) == BX_OK)
            text = strdup(content);
        cJSON_Delete(tp);
    }
    if (text == NULL)
        text = strdup(tparam ? tparam : "");
    const char *id = outid && outid[0] ? outid : "(no OutId)";
    /* the answers to each outcome, in send_outcome's order */
    static const struct {
        unsigned http;
        const char *code;
    } answers[] = {{200, NULL},
                   {500, "InternalError"},
                   {400, "Throttling.User"},
                   {200, "isv.MOBILE_NUMBER_ILLEGAL"},
                   {503, "ServiceUnavailable"}};
    pthread_mutex_lock(&F.lock);
    F.requests++;
    pthread_mutex_unlock(&F.lock);
    char biz[64] = "";
    send_outcome o = send_decide(id, phone, text, sign, code, API_ALIYUN, biz);
    free(text);
    if (o != SEND_ACCEPTED)
        return aliyun_error(conn, answers[o].http, answers[o].code);
    return reply_json(conn, 200,
                      "{\"RequestId\":\"%016llx\",\"Code\":\"OK\",\"Message\":\"OK\",\"BizId\":"
                      "\"%s\"}",
                      (unsigned long long)mix64((uint64_t)now_ms()), biz);
}

static enum MHD_Result aliyun_query(struct MHD_Connection *conn, param *p, size_t n)
{
    const char *phone = param_get(p, n, "PhoneNumber");
    const char *date = param_get(p, n, "SendDate");
    const char *biz = param_get(p, n, "BizId");
    const char *size_s = param_get(p, n, "PageSize");
    const char *page_s = param_get(p, n, "CurrentPage");
    if (phone == NULL || date == NULL || size_s == NULL || page_s == NULL)
        return aliyun_error(conn, 400, "MissingParameter");
    long size = strtol(size_s, NULL, 10), page = strtol(page_s, NULL, 10);
    if (size < 1 || size > 50 || page < 1 || strlen(date) != 8)
        return aliyun_error(conn, 200, "isv.INVALID_PARAMETERS");
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    bx_status st = bx_buf_puts(&b, "{\"Code\":\"OK\",\"Message\":\"OK\",\"RequestId\":\"q\","
                                   "\"SmsSendDetailDTOs\":{\"SmsSendDetailDTO\":[");
    long total = 0, shown = 0;
    pthread_mutex_lock(&F.lock);
    F.queries++;
    for (size_t i = 0; st == BX_OK && i < F.nmsgs; i++) {
        const message *m = &F.msgs[i];
        if (m->via != API_ALIYUN || strcmp(m->phone, phone) != 0 ||
            strcmp(m->send_date, date) != 0 || (biz && biz[0] && strcmp(biz, m->message_id) != 0))
            continue;
        total++;
        if (total <= (page - 1) * size || shown >= size)
            continue;
        char sent[20], got[20];
        shanghai_time(m->accepted_ms, sent);
        shanghai_time(m->due_ms, got);
        int status = m->state == M_DELIVERED ? 3 : m->state == M_FAILED ? 2 : 1;
        st = bx_buf_printf(&b,
                           "%s{\"PhoneNum\":\"%s\",\"SendStatus\":%d,\"ErrCode\":\"%s\","
                           "\"TemplateCode\":\"%s\",\"SendDate\":\"%s\",\"ReceiveDate\":\"%s\","
                           "\"OutId\":",
                           shown ? "," : "", m->phone, status,
                           status == 3   ? "DELIVERED"
                           : status == 2 ? "MK:0001"
                                         : "",
                           m->template_name, sent, status == 1 ? "" : got);
        IFOK(st, bx_buf_json_string(&b, m->id));
        IFOK(st, bx_buf_puts(&b, ",\"Content\":"));
        IFOK(st, bx_buf_json_string(&b, m->text));
        IFOK(st, bx_buf_puts(&b, "}"));
        shown++;
    }
    pthread_mutex_unlock(&F.lock);
    IFOK(st, bx_buf_printf(&b, "]},\"TotalCount\":%ld}", total));
    if (st != BX_OK) {
        bx_buf_free(&b);
        return aliyun_error(conn, 500, "InternalError");
    }
    return reply(conn, 200, "application/json", &b);
}

static enum MHD_Result aliyun_rpc(struct MHD_Connection *conn, request *req)
{
    param *p = NULL;
    size_t n = parse_form(req->body.data ? req->body.data : "", req->body.len, &p);
    unsigned http;
    const char *bad = aliyun_check(p, n, "POST", &http);
    enum MHD_Result r;
    if (bad != NULL) {
        pthread_mutex_lock(&F.lock);
        F.requests++;
        F.bad_signatures++;
        pthread_mutex_unlock(&F.lock);
        r = aliyun_error(conn, http, bad);
    } else {
        const char *action = param_get(p, n, "Action");
        if (action != NULL && strcmp(action, "SendSms") == 0)
            r = aliyun_send(conn, p, n);
        else if (action != NULL && strcmp(action, "QuerySendDetails") == 0)
            r = aliyun_query(conn, p, n);
        else
            r = aliyun_error(conn, 400, "InvalidAction.NotFound");
    }
    params_free(p, n);
    return r;
}

/* ---- receipts ---- */

typedef struct receipt_job {
    api via;
    char id[129], message_id[64], phone[16], sent[20], got[20];
    bool delivered;
    int copies;
} receipt_job;

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* One receipt's entry in the body of a post in j's format. */
static bx_status receipt_entry(bx_buf *b, const receipt_job *j)
{
    if (j->via == API_WEBHOOK) {
        bx_status st = bx_buf_puts(b, "{\"id\":");
        IFOK(st, bx_buf_json_string(b, j->id));
        IFOK(st, bx_buf_printf(b, ",\"message_id\":\"%s\",\"status\":\"%s\"%s}", j->message_id,
                               j->delivered ? "delivered" : "failed",
                               j->delivered ? "" : ",\"reason\":\"handset unreachable\""));
        return st;
    }
    bx_status st =
        bx_buf_printf(b,
                      "{\"phone_number\":\"%s\",\"send_time\":\"%s\",\"report_time\":\"%s\","
                      "\"success\":%s,\"err_code\":\"%s\",\"err_msg\":\"%s\",\"sms_size\":"
                      "\"1\",\"biz_id\":\"%s\",\"out_id\":",
                      j->phone, j->sent, j->got, j->delivered ? "true" : "false",
                      j->delivered ? "DELIVERED" : "MK:0001",
                      j->delivered ? "用户接收成功" : "handset unreachable", j->message_id);
    IFOK(st, bx_buf_json_string(b, j->id));
    IFOK(st, bx_buf_puts(b, "}"));
    return st;
}

/* Posts the receipts of the n jobs (all of one API) in one request; true when it was taken. */
static bool post_receipts(CURL *c, const char *url, const receipt_job *const *jobs, int n,
                          const char *secret)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    char header[128] = "X-Bx-Receipt: 1";
    bool webhook = jobs[0]->via == API_WEBHOOK;
    bx_status st = bx_buf_puts(&b, webhook ? "{\"receipts\":[" : "[");
    for (int i = 0; i < n && st == BX_OK; i++) {
        if (i > 0)
            st = bx_buf_puts(&b, ",");
        IFOK(st, receipt_entry(&b, jobs[i]));
    }
    IFOK(st, bx_buf_puts(&b, webhook ? "]}" : "]"));
    if (webhook) {
        char ts[24], hex[65] = "";
        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
        if (st == BX_OK)
            hmac256_dot(secret, ts, b.data, b.len, hex);
        snprintf(header, sizeof(header), "X-Bx-Signature: t=%s,sha256=%s", ts, hex);
    }
    bool ok = false;
    if (st == BX_OK) {
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        struct curl_slist *h2 = h ? curl_slist_append(h, header) : NULL;
        if (h2 != NULL) {
            curl_easy_reset(c);
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, h2);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, b.data);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b.len);
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
            long code = 0;
            if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            ok = code >= 200 && code < 300;
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        }
        curl_slist_free_all(h2 ? h2 : h);
    }
    bx_buf_free(&b);
    return ok;
}

/* The receipts due at now from *cursor on, up to receipt_batch of one API, into jobs (their
 * messages marked delivered or failed); the count. Under F.lock. */
static int take_due_receipts(receipt_job *jobs, size_t *cursor, int64_t now)
{
    int n = 0;
    api via = F.msgs[*cursor].via;
    while (n < F.set.receipt_batch && n < RECEIPT_BATCH_MAX && *cursor < F.nmsgs &&
           F.msgs[*cursor].due_ms <= now && F.msgs[*cursor].via == via) {
        message *m = &F.msgs[(*cursor)++];
        receipt_job *j = &jobs[n];
        *j = (receipt_job){.via = m->via, .copies = m->receipt_copies};
        bool failed = draw(F.set.undelivered, "undelivered", m->id, (int)m->seq);
        m->state = failed ? M_FAILED : M_DELIVERED;
        m->receipt_done = true;
        j->delivered = !failed;
        snprintf(j->id, sizeof(j->id), "%s", m->id);
        snprintf(j->message_id, sizeof(j->message_id), "%s", m->message_id);
        snprintf(j->phone, sizeof(j->phone), "%s", m->phone);
        shanghai_time(m->accepted_ms, j->sent);
        shanghai_time(now, j->got);
        if (j->copies == 0)
            F.receipts_lost++;
        else if (j->copies == 2)
            F.receipts_duplicated++;
        n++;
    }
    return n;
}

/* Posts every copy's receipt of jobs[0..n): the first post has those not lost, the second the
 * duplicated ones again; each post tried RECEIPT_TRIES times. Adds the receipts posted to *sent
 * and those given up on to *failed. Without F.lock. */
static void post_receipt_copies(CURL *c, const char *url, const char *secret,
                                const receipt_job *jobs, int n, long *sent, long *failed)
{
    static const receipt_job *post[RECEIPT_BATCH_MAX];
    for (int copy = 1; copy <= 2; copy++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (jobs[i].copies >= copy)
                post[k++] = &jobs[i];
        if (k == 0)
            continue;
        bool ok = false;
        for (int t = 0; !ok && t < RECEIPT_TRIES && !F.stop; t++) {
            ok = post_receipts(c, url, post, k, secret);
            if (!ok)
                usleep(300 * 1000);
        }
        ok ? (*sent += k) : (*failed += k);
    }
}

/* Waits on F.wake (under F.lock) until the receipt at cursor is due, 200 ms at the most. */
static void wait_for_receipts(size_t cursor, int64_t now)
{
    int64_t wait = cursor < F.nmsgs ? F.msgs[cursor].due_ms - now : 200;
    if (wait > 200)
        wait = 200;
    if (wait < 1)
        wait = 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)wait * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&F.wake, &F.lock, &ts);
}

static void *receipt_loop(void *arg)
{
    CURL *c = curl_easy_init();
    static receipt_job jobs[RECEIPT_BATCH_MAX];
    size_t cursor = 0;
    long generation = 0;
    pthread_mutex_lock(&F.lock);
    while (!F.stop) {
        int64_t now = now_ms();
        if (generation != F.generation) {
            generation = F.generation;
            cursor = 0;
        }
        if (cursor >= F.nmsgs || F.msgs[cursor].due_ms > now) {
            wait_for_receipts(cursor, now);
            continue;
        }
        int n = take_due_receipts(jobs, &cursor, now);
        char url[512], secret[256];
        snprintf(url, sizeof(url), "%s", F.set.receipt_url);
        snprintf(secret, sizeof(secret), "%s", F.set.secret);
        if (url[0] == '\0' || c == NULL)
            continue;
        pthread_mutex_unlock(&F.lock);
        long sent = 0, failed_posts = 0;
        post_receipt_copies(c, url, secret, jobs, n, &sent, &failed_posts);
        pthread_mutex_lock(&F.lock);
        F.receipts_sent += sent;
        F.receipts_failed += failed_posts;
    }
    pthread_mutex_unlock(&F.lock);
    if (c != NULL)
        curl_easy_cleanup(c);
    return arg;
}

/* ---- test endpoints ---- */

static enum MHD_Result stats(struct MHD_Connection *conn)
{
    bx_buf b;
    bx_buf_init(&b, 1 << 22);
    pthread_mutex_lock(&F.lock);
    long unique = 0;
    for (size_t i = 0; i < F.capids; i++)
        unique += F.ids[i].id != NULL && F.ids[i].accepted > 0;
    bx_status st = bx_buf_printf(
        &b,
        "{\"requests\":%ld,\"sends_accepted\":%ld,\"unique_ids\":%ld,\"double_sends\":%ld,"
        "\"refused_5xx\":%ld,\"refused_429\":%ld,\"rejected_permanent\":%ld,"
        "\"slow_accepts\":%ld,\"bad_signatures\":%ld,\"bad_requests\":%ld,\"queries\":%ld,"
        "\"receipts_sent\":%ld,\"receipts_failed\":%ld,\"receipts_lost\":%ld,"
        "\"receipts_duplicated\":%ld,\"max_rate_per_sec\":%ld,\"max_accepted_per_sec\":%ld,"
        "\"per_recipient\":{",
        F.requests, F.sends_accepted, unique, F.double_sends, F.refused_5xx, F.refused_429,
        F.rejected_permanent, F.slow_accepts, F.bad_signatures, F.bad_requests, F.queries,
        F.receipts_sent, F.receipts_failed, F.receipts_lost, F.receipts_duplicated, F.max_rate,
        F.max_accepted_rate);
    for (size_t i = 0; st == BX_OK && i < F.nrecips; i++)
        st = bx_buf_printf(&b, "%s\"%s\":%ld", i ? "," : "", F.recips[i].masked, F.recips[i].count);
    pthread_mutex_unlock(&F.lock);
    IFOK(st, bx_buf_puts(&b, "}}"));
    if (st != BX_OK) {
        bx_buf_free(&b);
        return reply_json(conn, 500, "{\"error\":\"too_large\"}");
    }
    return reply(conn, 200, "application/json", &b);
}

static enum MHD_Result messages(struct MHD_Connection *conn)
{
    bx_buf b;
    bx_buf_init(&b, 1 << 26);
    bx_status st = bx_buf_puts(&b, "[");
    pthread_mutex_lock(&F.lock);
    for (size_t i = 0; st == BX_OK && i < F.nmsgs; i++) {
        const message *m = &F.msgs[i];
        char masked[16];
        bx_mask_phone(m->phone, masked, sizeof(masked));
        st = bx_buf_printf(&b, "%s{\"seq\":%ld,\"id\":", i ? "," : "", m->seq);
        IFOK(st, bx_buf_json_string(&b, m->id));
        IFOK(st, bx_buf_printf(&b,
                               ",\"message_id\":\"%s\",\"phone\":\"%s\",\"api\":\"%s\","
                               "\"state\":\"%s\",\"accepted_ms\":%lld,\"text\":",
                               m->message_id, masked, m->via == API_WEBHOOK ? "webhook" : "aliyun",
                               state_word(m->state), (long long)m->accepted_ms));
        IFOK(st, bx_buf_json_string(&b, m->text));
        IFOK(st, bx_buf_puts(&b, ",\"sign_name\":"));
        IFOK(st, bx_buf_json_string(&b, m->sign_name));
        IFOK(st, bx_buf_puts(&b, ",\"template\":"));
        IFOK(st, bx_buf_json_string(&b, m->template_name));
        IFOK(st, bx_buf_puts(&b, "}"));
    }
    pthread_mutex_unlock(&F.lock);
    IFOK(st, bx_buf_puts(&b, "]"));
    if (st != BX_OK) {
        bx_buf_free(&b);
        return reply_json(conn, 500, "{\"error\":\"too_large\"}");
    }
    return reply(conn, 200, "application/json", &b);
}

static void reset_data(void)
{
    for (size_t i = 0; i < F.nmsgs; i++) {
        free(F.msgs[i].id);
        free(F.msgs[i].phone);
        free(F.msgs[i].text);
        free(F.msgs[i].sign_name);
        free(F.msgs[i].template_name);
    }
    F.nmsgs = 0;
    F.generation++;
    for (size_t i = 0; i < F.capids; i++)
        free(F.ids[i].id);
    free(F.ids);
    F.ids = NULL;
    F.nids = F.capids = 0;
    F.nrecips = 0;
    F.requests = F.sends_accepted = F.double_sends = F.refused_5xx = F.refused_429 = 0;
    F.rejected_permanent = F.slow_accepts = F.bad_signatures = F.bad_requests = F.queries = 0;
    F.receipts_sent = F.receipts_failed = F.receipts_lost = F.receipts_duplicated = 0;
    F.max_rate = F.max_accepted_rate = F.rate_count = F.accepted_second_count = 0;
}

static enum MHD_Result control(struct MHD_Connection *conn, request *req)
{
    cJSON *root = NULL;
    bx_error err = {0};
    bx_status s = req->body.len ? bx_json_parse(req->body.data, req->body.len, &root, &err)
                                : BX_ERR(&err, BX_EINVAL, "empty body");
    IFOK(s, cJSON_IsObject(root) ? BX_OK : BX_ERR(&err, BX_EINVAL, "expected an object"));
    pthread_mutex_lock(&F.lock);
    settings next = F.set;
    bool reset = false;
    for (const cJSON *it = root ? root->child : NULL; s == BX_OK && it; it = it->next) {
        char text[REJECT_MAX * 16];
        if (strcmp(it->string, "reset") == 0) {
            reset = cJSON_IsTrue(it);
            continue;
        }
        if (strcmp(it->string, "listen") == 0) {
            s = BX_ERR(&err, BX_EINVAL, "listen: cannot change at runtime");
            break;
        }
        if (cJSON_IsString(it)) {
            snprintf(text, sizeof(text), "%s", it->valuestring);
        } else if (cJSON_IsNumber(it)) {
            if (strcmp(it->string, "seed") == 0 || strstr(it->string, "_ms") ||
                strcmp(it->string, "rate_limit") == 0)
                snprintf(text, sizeof(text), "%lld", (long long)it->valuedouble);
            else
                snprintf(text, sizeof(text), "%.17g", it->valuedouble);
        } else if (cJSON_IsArray(it)) {
            size_t used = 0;
            text[0] = '\0';
            for (const cJSON *e = it->child; e; e = e->next) {
                if (!cJSON_IsString(e))
                    continue;
                used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", used ? "," : "",
                                         e->valuestring);
                if (used >= sizeof(text))
                    break;
            }
        } else {
            s = BX_ERR(&err, BX_EINVAL, "%s: expected a string, a number or a list", it->string);
            break;
        }
        s = set_one(&next, it->string, text, &err);
    }
    if (s == BX_OK) {
        F.set = next;
        if (reset)
            reset_data();
        pthread_cond_signal(&F.wake);
    }
    bx_buf b;
    bx_buf_init(&b, 8192);
    if (s == BX_OK)
        settings_json(&F.set, &b);
    pthread_mutex_unlock(&F.lock);
    cJSON_Delete(root);
    if (s != BX_OK) {
        bx_buf_free(&b);
        bx_buf_init(&b, 1024);
        bx_status st = bx_buf_puts(&b, "{\"error\":");
        IFOK(st, bx_buf_json_string(&b, err.msg));
        IFOK(st, bx_buf_puts(&b, "}"));
        return reply(conn, 400, "application/json", &b);
    }
    return reply(conn, 200, "application/json", &b);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    request *req = *state;
    if (req == NULL) {
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        bx_buf_init(&req->body, BODY_MAX);
        *state = req;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->too_large && bx_buf_append(&req->body, upload, *upload_size) != BX_OK)
            req->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->too_large)
        return reply_json(conn, 413, "{\"error\":\"too_large\"}");
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (get && strcmp(url, "/healthz") == 0)
        return reply_json(conn, 200, "{\"status\":\"ok\"}");
    if (post && strcmp(url, "/webhook/send") == 0)
        return webhook_send(conn, req);
    if (get && strcmp(url, "/webhook/status") == 0)
        return webhook_status(conn);
    if (post &&
        (strcmp(url, "/") == 0 || strcmp(url, "/aliyun") == 0 || strcmp(url, "/aliyun/") == 0))
        return aliyun_rpc(conn, req);
    if (get && strcmp(url, "/_stats") == 0)
        return stats(conn);
    if (get && strcmp(url, "/_messages") == 0)
        return messages(conn);
    if (post && strcmp(url, "/_control") == 0)
        return control(conn, req);
    if (post && strcmp(url, "/_reset") == 0) {
        pthread_mutex_lock(&F.lock);
        reset_data();
        pthread_mutex_unlock(&F.lock);
        return reply_json(conn, 200, "{\"reset\":true}");
    }
    return reply_json(conn, 404, "{\"error\":\"not_found\"}");
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code)
{
    request *req = *state;
    if (req == NULL)
        return;
    bx_buf_free(&req->body);
    free(req);
    *state = NULL;
}

static void on_signal(int sig)
{
    F.stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: bx-fakesms [--name value]...  settings:");
    for (size_t i = 0; i < sizeof(setting_names) / sizeof(setting_names[0]); i++)
        fprintf(stderr, " %s", setting_names[i]);
    fprintf(stderr, "\n(flags may use - for _; each also from BX_FAKESMS_<NAME>)\n");
}

/* The settings: defaults, then BX_FAKESMS_<NAME>, then --name value flags. -1 to go on, else the
 * exit code (0 after --help, 2 after a bad setting, said on stderr). */
static int settings_load(settings *s, int argc, char **argv)
{
    bx_error err = {0};
    snprintf(s->listen, sizeof(s->listen), "127.0.0.1:18090");
    snprintf(s->secret, sizeof(s->secret), "fakesms-webhook-secret");
    snprintf(s->access_key_id, sizeof(s->access_key_id), "testId");
    snprintf(s->access_key_secret, sizeof(s->access_key_secret), "testSecret");
    s->receipt_delay_ms = 200;
    s->receipt_batch = 1;
    s->slow_ms = 3000;
    s->seed = 1;
    for (size_t i = 0; i < sizeof(setting_names) / sizeof(setting_names[0]); i++) {
        char env[64];
        snprintf(env, sizeof(env), "BX_FAKESMS_%s", setting_names[i]);
        for (char *c = env; *c; c++)
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
        const char *v = getenv(env);
        if (v != NULL && set_one(s, setting_names[i], v, &err) != BX_OK) {
            fprintf(stderr, "bx-fakesms: %s: %s\n", env, err.msg);
            return 2;
        }
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        }
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            usage();
            return 2;
        }
        char name[64];
        snprintf(name, sizeof(name), "%s", argv[i] + 2);
        for (char *c = name; *c; c++)
            *c = *c == '-' ? '_' : *c;
        if (set_one(s, name, argv[++i], &err) != BX_OK) {
            fprintf(stderr, "bx-fakesms: --%s: %s\n", argv[i - 1] + 2, err.msg);
            return 2;
        }
    }
    return -1;
}

/* listen ("host:port") as an IPv4 address into *addr; false after saying why. */
static bool listen_address(const char *listen, struct sockaddr_in *addr)
{
    char host[64];
    int port = 0;
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host) ||
        sscanf(colon + 1, "%d", &port) != 1 || port <= 0 || port > 65535) {
        fprintf(stderr, "bx-fakesms: listen: expected host:port, got \"%s\"\n", listen);
        return false;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
        fprintf(stderr, "bx-fakesms: listen: \"%s\" is not an IPv4 address\n", host);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    settings *s = &F.set;
    int rc = settings_load(s, argc, argv);
    if (rc >= 0)
        return rc;
    struct sockaddr_in addr;
    if (!listen_address(s->listen, &addr))
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&F.lock, NULL);
    pthread_cond_init(&F.wake, NULL);
    F.nonces = calloc(NONCES_MAX, sizeof(*F.nonces));
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED,
        request_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bx-fakesms: cannot listen on %s\n", s->listen);
        return 1;
    }
    pthread_t receipts;
    pthread_create(&receipts, NULL, receipt_loop, NULL);
    fprintf(stderr, "bx-fakesms: listening on %s (seed %llu)\n", s->listen,
            (unsigned long long)s->seed);
    while (!F.stop)
        usleep(100 * 1000);
    pthread_mutex_lock(&F.lock);
    pthread_cond_signal(&F.wake);
    pthread_mutex_unlock(&F.lock);
    pthread_join(receipts, NULL);
    MHD_stop_daemon(d);
    pthread_mutex_lock(&F.lock);
    reset_data();
    pthread_mutex_unlock(&F.lock);
    free(F.msgs);
    free(F.recips);
    free(F.nonces);
    curl_global_cleanup();
    return 0;
}
