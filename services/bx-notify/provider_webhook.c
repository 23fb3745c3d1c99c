/* provider_webhook: a generic HTTPS SMS gateway. POST url with JSON {id, phone, text, sign_name,
 * template}, headers X-Bx-Timestamp (Unix seconds) and X-Bx-Signature: sha256=<hex
 * HMAC-SHA256(secret, timestamp "." body)>; a 2xx answer {"message_id": "..."} accepts. 408, 429
 * and 5xx are refusals to retry; any other 4xx is permanent; no answer after the request left is
 * unknown. Status: GET status_url?id=<id>, signed over timestamp "." "id=<id>", answering
 * {"status": "pending|delivered|failed", "message_id", "reason"} or 404 for an unknown id.
 * Receipts: the generic format, with X-Bx-Signature: t=<timestamp>,sha256=<hex HMAC(secret,
 * timestamp "." body)>. */
#include "provider_http.h"
#include "provider_impl.h"

#include "bx_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX       (16 * 1024)
#define RECEIPT_SKEW_S 600 /* a signed receipt older or newer than this is refused */

typedef struct webhook_state {
    provider_http *http;
    char *url, *status_url, *secret;
} webhook_state;

static void webhook_close(void *state)
{
    webhook_state *w = state;
    if (w == NULL)
        return;
    provider_http_free(w->http);
    free(w->url);
    free(w->status_url);
    free(w->secret);
    free(w);
}

static bool http_url(const char *u)
{
    return u != NULL && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0);
}

static bx_status webhook_open(const provider_config *cfg, void **state, bx_error *err)
{
    if (!http_url(cfg->url))
        return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_PROVIDER_URL: the webhook needs an http(s) URL");
    if (cfg->status_url != NULL && cfg->status_url[0] != '\0' && !http_url(cfg->status_url))
        return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_PROVIDER_STATUS_URL: not an http(s) URL");
    if (cfg->secret == NULL || strlen(cfg->secret) < 16)
        return BX_ERR(err, BX_EINVAL,
                      "BX_NOTIFY_PROVIDER_SECRET: the webhook needs a secret of 16 bytes or more");
    webhook_state *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return BX_ERR(err, BX_ENOMEM, "webhook provider: out of memory");
    w->url = strdup(cfg->url);
    w->status_url = strdup(cfg->status_url ? cfg->status_url : "");
    w->secret = strdup(cfg->secret);
    if (w->url == NULL || w->status_url == NULL || w->secret == NULL) {
        webhook_close(w);
        return BX_ERR(err, BX_ENOMEM, "webhook provider: out of memory");
    }
    bx_status s = provider_http_new(cfg->timeout_ms, cfg->ca_file, &w->http, err);
    if (s != BX_OK) {
        webhook_close(w);
        return s;
    }
    *state = w;
    return BX_OK;
}

/* Signature headers for signed_text (timestamp "." signed_text). */
static void sign_headers(const webhook_state *w, const char *signed_text, size_t len,
                         char ts_header[48], char sig_header[96])
{
    char ts[24], hex[65];
    /* Wall-clock seconds: the receiver compares them with its own clock to refuse replays. */
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    provider_webhook_signature(w->secret, ts, signed_text, len, hex);
    snprintf(ts_header, 48, "X-Bx-Timestamp: %s", ts);
    snprintf(sig_header, 96, "X-Bx-Signature: sha256=%s", hex);
}

/* The message_id of a 2xx answer, "" when it has none. */
static void answer_message_id(const bx_buf *answer, char *out, size_t size)
{
    cJSON *root = NULL;
    const char *id = NULL;
    bx_error ignored = {0};
    out[0] = '\0';
    if (answer->len == 0 || bx_json_parse(answer->data, answer->len, &root, &ignored) != BX_OK)
        return;
    if (cJSON_IsObject(root) &&
        bx_json_get_string(root, "answer", "message_id", true, 128, &id, &ignored) == BX_OK)
        snprintf(out, size, "%s", id);
    cJSON_Delete(root);
}

static bx_status webhook_send(void *state, const provider_message *m, provider_result *res,
                              bx_error *err)
{
    webhook_state *w = state;
    bx_buf body;
    bx_buf_init(&body, BODY_MAX);
    bx_status s = bx_buf_puts(&body, "{\"id\":");
    IFOK(s, bx_buf_json_string(&body, m->notification_id));
    IFOK(s, bx_buf_puts(&body, ",\"phone\":"));
    IFOK(s, bx_buf_json_string(&body, m->phone));
    IFOK(s, bx_buf_puts(&body, ",\"text\":"));
    IFOK(s, bx_buf_json_string(&body, m->text));
    IFOK(s, bx_buf_puts(&body, ",\"sign_name\":"));
    IFOK(s, bx_buf_json_string(&body, m->sign_name ? m->sign_name : ""));
    IFOK(s, bx_buf_puts(&body, ",\"template\":"));
    IFOK(s, bx_buf_json_string(&body, m->template_name ? m->template_name : ""));
    IFOK(s, bx_buf_puts(&body, "}"));
    if (s != BX_OK) {
        bx_buf_free(&body);
        provider_result_set(res, PROVIDER_PERMANENT, "message longer than %d bytes as JSON",
                            BODY_MAX);
        return BX_OK;
    }
    char ts_header[48], sig_header[96], key_header[200];
    sign_headers(w, body.data, body.len, ts_header, sig_header);
    snprintf(key_header, sizeof(key_header), "Idempotency-Key: %s", m->notification_id);
    const char *headers[] = {
        "Content-Type: application/json", ts_header, sig_header, key_header, "Expect:", NULL};
    long status = 0;
    const bx_buf *answer = NULL;
    char reason[200];
    provider_http_fate fate = provider_http_do(w->http, "POST", w->url, headers, body.data,
                                               body.len, &status, &answer, reason, sizeof(reason));
    bx_buf_free(&body);
    res->http_status = (int)status;
    switch (fate) {
    case HTTP_NOT_SENT:
        provider_result_set(res, PROVIDER_TRANSIENT, "%s", reason);
        return BX_OK;
    case HTTP_MAYBE_SENT:
        provider_result_set(res, PROVIDER_UNKNOWN, "%s", reason);
        return BX_OK;
    case HTTP_ANSWERED:
        break;
    }
    if (status >= 200 && status < 300) {
        res->outcome = PROVIDER_ACCEPTED;
        res->state = PROVIDER_STATE_PENDING;
        answer_message_id(answer, res->message_id, sizeof(res->message_id));
    } else if (status == 408 || status == 429 || status >= 500) {
        provider_result_set(res, PROVIDER_TRANSIENT, "HTTP %ld: refused for now", status);
    } else {
        provider_result_set(res, PROVIDER_PERMANENT, "HTTP %ld: refused: %.120s", status,
                            answer->len ? answer->data : "");
    }
    (void)err;
    return BX_OK;
}

static bx_status webhook_query(void *state, const char *notification_id, const char *phone,
                               const char *yyyymmdd, provider_result *res, bx_error *err)
{
    webhook_state *w = state;
    if (w->status_url[0] == '\0')
        return BX_ERR(err, BX_ENOTFOUND, "webhook provider: no status URL configured");
    bx_buf q, url;
    bx_buf_init(&q, 1024);
    bx_buf_init(&url, 4096);
    bx_status s = bx_buf_puts(&q, "id=");
    IFOK(s, provider_percent_encode(&q, notification_id));
    IFOK(s, bx_buf_puts(&url, w->status_url));
    IFOK(s, bx_buf_puts(&url, strchr(w->status_url, '?') ? "&" : "?"));
    IFOK(s, bx_buf_puts(&url, q.data));
    if (s != BX_OK) {
        bx_buf_free(&q);
        bx_buf_free(&url);
        return BX_ERR(err, BX_ENOMEM, "webhook query: URL too long");
    }
    char ts_header[48], sig_header[96];
    sign_headers(w, q.data, q.len, ts_header, sig_header);
    const char *headers[] = {ts_header, sig_header, NULL};
    long status = 0;
    const bx_buf *answer = NULL;
    char reason[200];
    provider_http_fate fate = provider_http_do(w->http, "GET", url.data, headers, NULL, 0, &status,
                                               &answer, reason, sizeof(reason));
    bx_buf_free(&q);
    bx_buf_free(&url);
    res->http_status = (int)status;
    if (fate != HTTP_ANSWERED)
        return BX_ERR(err, BX_ETRANSIENT, "webhook query: %s", reason);
    if (status == 404) {
        res->state = PROVIDER_STATE_NONE;
        snprintf(res->reason, sizeof(res->reason), "the provider has no such message");
        return BX_OK;
    }
    if (status != 200)
        return BX_ERR(err, BX_ETRANSIENT, "webhook query: HTTP %ld", status);
    cJSON *root = NULL;
    const char *st = NULL, *mid = NULL, *why = NULL;
    s = bx_json_parse(answer->data, answer->len, &root, err);
    IFOK(s, cJSON_IsObject(root) ? BX_OK : BX_ERR(err, BX_EINVAL, "answer: not an object"));
    IFOK(s, bx_json_get_string(root, "answer", "status", true, 16, &st, err));
    if (s == BX_OK &&
        bx_json_get_string(root, "answer", "message_id", false, 128, &mid, err) == BX_OK)
        snprintf(res->message_id, sizeof(res->message_id), "%s", mid);
    if (s == BX_OK && bx_json_get_string(root, "answer", "reason", false, 200, &why, err) == BX_OK)
        snprintf(res->reason, sizeof(res->reason), "%s", why);
    if (s == BX_OK) {
        if (strcmp(st, "pending") == 0)
            res->state = PROVIDER_STATE_PENDING;
        else if (strcmp(st, "delivered") == 0)
            res->state = PROVIDER_STATE_DELIVERED;
        else if (strcmp(st, "failed") == 0)
            res->state = PROVIDER_STATE_FAILED;
        else if (strcmp(st, "none") == 0)
            res->state = PROVIDER_STATE_NONE;
        else
            s = BX_ERR(err, BX_EINVAL, "answer.status: unknown status");
    }
    if (s == BX_OK)
        res->outcome = res->state == PROVIDER_STATE_NONE ? PROVIDER_TRANSIENT : PROVIDER_ACCEPTED;
    cJSON_Delete(root);
    if (s != BX_OK)
        return BX_ERR(err, BX_ETRANSIENT, "webhook query: a bad answer: %s", err ? err->msg : "");
    return BX_OK;
}

/* "t=<seconds>,sha256=<64 hex>" */
static bool split_signature(const char *h, char ts[24], char hex[65])
{
    if (h == NULL || strncmp(h, "t=", 2) != 0)
        return false;
    const char *comma = strchr(h, ',');
    size_t tl = comma ? (size_t)(comma - h - 2) : 0;
    if (tl == 0 || tl > 20 || strncmp(comma + 1, "sha256=", 7) != 0 || strlen(comma + 8) != 64)
        return false;
    memcpy(ts, h + 2, tl);
    ts[tl] = '\0';
    for (size_t i = 0; i < tl; i++) {
        if (ts[i] < '0' || ts[i] > '9')
            return false;
    }
    memcpy(hex, comma + 8, 65);
    return true;
}

/* Constant-time comparison of two equal-length strings. */
static bool same_secretly(const char *a, const char *b, size_t n)
{
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static bx_status webhook_receipts(void *state, const char *body, size_t len,
                                  const char *signature_header, provider_receipt_fn fn, void *ctx,
                                  bx_error *err)
{
    webhook_state *w = state;
    char ts[24], hex[65], want[65];
    if (!split_signature(signature_header, ts, hex))
        return BX_ERR(err, BX_EDENIED,
                      "X-Bx-Signature: expected t=<seconds>,sha256=<64 hex digits>");
    long long t = strtoll(ts, NULL, 10), now = (long long)time(NULL);
    if (t < now - RECEIPT_SKEW_S || t > now + RECEIPT_SKEW_S)
        return BX_ERR(err, BX_EDENIED, "X-Bx-Signature: the timestamp is more than %d s off",
                      RECEIPT_SKEW_S);
    provider_webhook_signature(w->secret, ts, body, len, want);
    if (!same_secretly(want, hex, 64))
        return BX_ERR(err, BX_EDENIED, "X-Bx-Signature: does not match the body");
    return provider_generic_receipts(body, len, fn, ctx, err);
}

const provider_ops provider_webhook_ops = {
    .name = "webhook",
    .open = webhook_open,
    .close = webhook_close,
    .send = webhook_send,
    .query = webhook_query,
    .parse_receipts = webhook_receipts,
};
