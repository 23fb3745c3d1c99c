/* receipts: the provider's delivery receipts, posted to /v1/receipts (one request at a time, on
 * a connection and adapter of their own): each recorded and applied to its notification in one
 * transaction. Only signed receipts (the webhook's HMAC) or, for a provider that cannot sign
 * (aliyun, file), receipts posted to the unguessable path /v1/receipts/<BX_NOTIFY_RECEIPT_TOKEN>
 * (issue 14, defect 5): with a token set, only that path is served; without one, an unsigned
 * provider's receipts are refused. */
#include "service_internal.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_log.h"
#include "bx_pg.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECEIPT_BODY (1 << 20)
#define RECEIPTS_MAX 1000

typedef struct receipt_item {
    char notification_id[129];
    char message_id[129];
    provider_state state;
    char reason[256];
} receipt_item;

typedef struct receipt_batch {
    receipt_item *items;
    int count;
    bool overflow;
} receipt_batch;

static void collect_receipt(void *ctx, const char *notification_id, const char *message_id,
                            provider_state state, const char *reason)
{
    receipt_batch *b = ctx;
    if (b->count == RECEIPTS_MAX) {
        b->overflow = true;
        return;
    }
    receipt_item *it = &b->items[b->count++];
    snprintf(it->notification_id, sizeof(it->notification_id), "%s",
             notification_id ? notification_id : "");
    snprintf(it->message_id, sizeof(it->message_id), "%s", message_id ? message_id : "");
    it->state = state;
    snprintf(it->reason, sizeof(it->reason), "%s", reason ? reason : "");
}

static const char *receipt_state_name(provider_state st)
{
    switch (st) {
    case PROVIDER_STATE_NONE:
        return "none";
    case PROVIDER_STATE_PENDING:
        return "pending";
    case PROVIDER_STATE_DELIVERED:
        return "delivered";
    case PROVIDER_STATE_FAILED:
        return "failed";
    }
    return "pending";
}

/* Records one receipt and applies it to its notification, in one transaction. */
static bx_status apply_receipt(notify_service *sv, const receipt_item *it, int *changed,
                               bx_error *err)
{
    PGconn *db = sv->receipt_db;
    bx_time_ms now = bx_clock_now();
    bool fresh = false;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    IFOK(s, notify_store_receipt(db, it->notification_id, it->message_id,
                                 receipt_state_name(it->state), it->reason, now, &fresh, err));
    if (s == BX_OK && !fresh) {
        s = bx_pg_exec(db, "COMMIT", err); /* a duplicate: nothing changes */
        if (s != BX_OK)
            bx_pg_rollback(db);
        return s;
    }
    notify_store_row row;
    IFOK(s, notify_store_lock_row(db, it->notification_id, &row, err));
    if (s == BX_ENOTFOUND) {
        bx_log_warn("receipt for unknown notification %.40s recorded", it->notification_id);
        s = bx_pg_exec(db, "COMMIT", err);
        if (s != BX_OK)
            bx_pg_rollback(db);
        return s;
    }
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    dispatch_input in = {0};
    in.state = row.state;
    in.event = DISPATCH_EV_RECEIPT;
    in.answer = notify_answer_of_state(it->state);
    in.attempt = row.attempt;
    in.now = now;
    in.last_send_at = row.last_send_at;
    in.detail = it->reason;
    dispatch_output out;
    dispatch_next(&sv->conf.policy, &in, &out);
    if (!out.changed) {
        s = bx_pg_exec(db, "COMMIT", err);
        if (s != BX_OK)
            bx_pg_rollback(db);
        return s;
    }
    bool applied = false;
    s = notify_store_apply(db, &sv->ctx, &row, NULL, &out, it->message_id, now, true, &applied,
                           err);
    if (s == BX_OK && applied) {
        (*changed)++;
        notify_outcome_count(&out);
        notify_outcome_log(&row, &out);
    }
    return s;
}

/* The path receipts are posted to ("/v1/receipts" or "/v1/receipts/<token>"), and whether the
 * provider signs them; one receipt endpoint per process. */
static char receipt_path[160] = "/v1/receipts";
static bool receipts_signed;

/* strcmp in time that does not depend on where the strings differ (the token is a secret). */
static bool same_path(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle_receipts(notify_service *sv, struct MHD_Connection *conn,
                                       bx_buf *body)
{
    const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Bx-Signature");
    if (sig == NULL)
        sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Signature");
    receipt_batch batch = {calloc(RECEIPTS_MAX, sizeof(receipt_item)), 0, false};
    if (batch.items == NULL)
        return respond(conn, 503, "{\"error\":\"out of memory\"}");
    char reply[600];
    unsigned code = 200;
    pthread_mutex_lock(&sv->receipt_lock);
    bx_error err = {0};
    bx_status s = provider_parse_receipts(sv->receipt_prov, body->data ? body->data : "", body->len,
                                          sig, collect_receipt, &batch, &err);
    if (s != BX_OK) {
        code = s == BX_EDENIED ? 401 : 400;
        bx_buf b;
        bx_buf_init(&b, 1024);
        if (bx_buf_puts(&b, "{\"error\":") == BX_OK && bx_buf_json_string(&b, err.msg) == BX_OK &&
            bx_buf_puts(&b, "}") == BX_OK)
            snprintf(reply, sizeof(reply), "%s", b.data);
        else
            snprintf(reply, sizeof(reply), "{\"error\":\"bad receipt\"}");
        bx_buf_free(&b);
        bx_log_warn("receipt endpoint: %s", err.msg);
    } else {
        int changed = 0, i = 0;
        for (; i < batch.count; i++) {
            bx_error rerr = {0};
            if (bx_pg_reconnect(&sv->receipt_db, sv->conf.pg_url, PG_WAIT_MS, &rerr) != BX_OK ||
                apply_receipt(sv, &batch.items[i], &changed, &rerr) != BX_OK) {
                bx_log_warn("receipt for %.40s not recorded: %s", batch.items[i].notification_id,
                            rerr.msg);
                bx_metric_add(&notify_m.failures, 1);
                code = 503; /* the provider sends it again */
                break;
            }
        }
        bx_metric_add(&notify_m.receipts, i);
        snprintf(reply, sizeof(reply), "{\"received\":%d,\"recorded\":%d,\"changed\":%d}",
                 batch.count, i, changed);
    }
    pthread_mutex_unlock(&sv->receipt_lock);
    free(batch.items);
    return respond(conn, code, reply);
}

static enum MHD_Result handle_http(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **state)
{
    notify_service *sv = cls;
    bx_buf *body = *state;
    if (body == NULL) {
        if (strcmp(url, "/healthz") == 0 && strcmp(method, "GET") == 0)
            return respond(conn, 200, "{\"status\":\"ok\"}");
        if (!same_path(url, receipt_path))
            return respond(conn, 404, "{\"error\":\"not found\"}");
        if (!receipts_signed && strcmp(receipt_path, "/v1/receipts") == 0)
            return respond(conn, 401,
                           "{\"error\":\"this provider does not sign its receipts: they are "
                           "taken only at the path of BX_NOTIFY_RECEIPT_TOKEN\"}");
        if (strcmp(method, "POST") != 0)
            return respond(conn, 405, "{\"error\":\"POST only\"}");
        body = calloc(1, sizeof(*body));
        if (body == NULL)
            return MHD_NO;
        bx_buf_init(body, RECEIPT_BODY);
        *state = body;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (bx_buf_append(body, upload, *upload_size) != BX_OK)
            body->max = 0; /* too large: answered below */
        *upload_size = 0;
        return MHD_YES;
    }
    if (body->max == 0)
        return respond(conn, 413, "{\"error\":\"body too large\"}");
    return handle_receipts(sv, conn, body);
}

static void http_done(void *cls, struct MHD_Connection *conn, void **state,
                      enum MHD_RequestTerminationCode code)
{
    bx_buf *body = *state;
    if (body) {
        bx_buf_free(body);
        free(body);
    }
    *state = NULL;
}

bx_status notify_receipts_start(notify_service *sv, bx_error *err)
{
    const char *listen = sv->conf.receipt_listen;
    if (listen == NULL || listen[0] == '\0')
        return BX_OK;
    struct sockaddr_in addr;
    bx_status s = bx_parse_listen(listen, &addr, err);
    if (s != BX_OK)
        return s;
    char *token = NULL;
    s = bx_conf_secret("BX_NOTIFY_RECEIPT_TOKEN", &token, err);
    if (s != BX_OK)
        return s;
    if (token && strlen(token) < 24) {
        free(token);
        return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_RECEIPT_TOKEN: at least 24 characters");
    }
    if (token)
        snprintf(receipt_path, sizeof(receipt_path), "/v1/receipts/%.120s", token);
    free(token);
    receipts_signed = strcmp(sv->conf.provider.kind, "webhook") == 0;
    if (!receipts_signed && strcmp(receipt_path, "/v1/receipts") == 0)
        bx_log_warn("receipt endpoint: the %s provider does not sign its receipts and "
                    "BX_NOTIFY_RECEIPT_TOKEN is not set: receipts are refused",
                    sv->conf.provider.kind);
    sv->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle_http, sv,
        MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED, http_done, sv,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
    if (sv->daemon == NULL)
        return BX_ERR(err, BX_EIO, "BX_NOTIFY_RECEIPT_LISTEN: cannot listen on %s", listen);
    return BX_OK;
}

void notify_receipts_stop(notify_service *sv)
{
    if (sv->daemon)
        MHD_stop_daemon(sv->daemon);
    sv->daemon = NULL;
}
