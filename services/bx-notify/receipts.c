/* receipts: the provider's delivery receipts, posted to /v1/receipts (one request at a time, on
 * a connection and adapter of their own): a post's receipts recorded and applied to their
 * notifications in one transaction. Only signed receipts (the webhook's HMAC) or, for a provider
 * that cannot sign (aliyun, file), receipts posted to the unguessable path
 * /v1/receipts/<BX_NOTIFY_RECEIPT_TOKEN> (issue 14, defect 5): with a token set, only that path is
 * served; without one, an unsigned provider's receipts are refused. */
#include "service_internal.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_log.h"
#include "bx_map.h"
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

/* What a post's receipts change, kept until their transaction is committed. */
typedef struct receipt_work {
    notify_store_receipt_in *in;
    bool *fresh, *found;
    const char **ids;
    notify_store_row *rows; /* rows[i]: receipt i's notification as locked */
    dispatch_output *outs;
    notify_store_decision *pending; /* decided, not yet written */
    int npending;
    notify_store_decision *done; /* written; counted and logged after the commit */
    int ndone;
} receipt_work;

static void receipt_work_free(receipt_work *w)
{
    free(w->in);
    free(w->fresh);
    free(w->found);
    free(w->ids);
    free(w->rows);
    free(w->outs);
    free(w->pending);
    free(w->done);
}

static bx_status receipt_work_new(receipt_work *w, int n, bx_error *err)
{
    memset(w, 0, sizeof(*w));
    size_t k = n > 0 ? (size_t)n : 1;
    w->in = calloc(k, sizeof(*w->in));
    w->fresh = calloc(k, sizeof(*w->fresh));
    w->found = calloc(k, sizeof(*w->found));
    w->ids = calloc(k, sizeof(*w->ids));
    w->rows = calloc(k, sizeof(*w->rows));
    w->outs = calloc(k, sizeof(*w->outs));
    w->pending = calloc(k, sizeof(*w->pending));
    w->done = calloc(k, sizeof(*w->done));
    if (!w->in || !w->fresh || !w->found || !w->ids || !w->rows || !w->outs || !w->pending ||
        !w->done) {
        receipt_work_free(w);
        return BX_ERR(err, BX_ENOMEM, "out of memory for %d receipts", n);
    }
    return BX_OK;
}

/* Writes the decisions waiting (one statement, in the open transaction). */
static bx_status receipt_flush(notify_service *sv, receipt_work *w, bx_error *err)
{
    bx_status s =
        notify_store_changes(sv->receipt_db, &sv->ctx, NULL, w->pending, w->npending, err);
    for (int i = 0; s == BX_OK && i < w->npending; i++)
        if (w->pending[i].applied)
            w->done[w->ndone++] = w->pending[i];
    w->npending = 0;
    return s;
}

/* Records a post's receipts and applies them to their notifications, all in one transaction of
 * a few statements: the receipts inserted (duplicates are not fresh), the fresh ones' rows
 * locked in id order, each decided as it comes and the changes written together. A second
 * receipt for one notification in the post (pending, then delivered) is decided after the first
 * is written, on its row read again. Nothing is recorded when it fails. */
static bx_status apply_receipts(notify_service *sv, const receipt_batch *b, int *changed,
                                bx_error *err)
{
    PGconn *db = sv->receipt_db;
    int n = b->count;
    receipt_work w;
    bx_status s = receipt_work_new(&w, n, err);
    if (s != BX_OK)
        return s;
    bx_time_ms now = bx_clock_now();
    for (int i = 0; i < n; i++)
        w.in[i] =
            (notify_store_receipt_in){b->items[i].notification_id, b->items[i].message_id,
                                      provider_state_name(b->items[i].state), b->items[i].reason};
    bx_map *decided = bx_map_new(); /* notification ids with a decision in this post */
    if (decided == NULL)
        s = BX_ERR(err, BX_ENOMEM, "out of memory for %d receipts", n);
    IFOK(s, bx_pg_exec(db, "BEGIN", err));
    IFOK(s, notify_store_receipts(db, w.in, n, now, w.fresh, err));
    for (int i = 0; i < n; i++)
        w.ids[i] = w.fresh[i] ? b->items[i].notification_id : NULL;
    IFOK(s, notify_store_lock_rows(db, w.ids, n, w.rows, w.found, err));
    for (int i = 0; i < n && s == BX_OK; i++) {
        const receipt_item *it = &b->items[i];
        if (!w.fresh[i])
            continue; /* a duplicate: nothing changes */
        if (!w.found[i]) {
            bx_log_warn("receipt for unknown notification %.40s recorded", it->notification_id);
            continue;
        }
        if (bx_map_get(decided, it->notification_id) != NULL) {
            /* its notification changed earlier in this post: written first, read again */
            s = receipt_flush(sv, &w, err);
            IFOK(s, notify_store_lock_rows(db, &w.ids[i], 1, &w.rows[i], &w.found[i], err));
            IFOK(s, bx_map_put(decided, it->notification_id, NULL));
            if (s != BX_OK || !w.found[i])
                continue;
        }
        dispatch_input in = {0};
        in.state = w.rows[i].state;
        in.event = DISPATCH_EV_RECEIPT;
        in.answer = notify_answer_of_state(it->state);
        in.attempt = w.rows[i].attempt;
        in.now = now;
        in.last_send_at = w.rows[i].last_send_at;
        in.detail = it->reason;
        dispatch_next(&sv->conf.policy, &in, &w.outs[i]);
        if (!w.outs[i].changed)
            continue;
        w.pending[w.npending++] = (notify_store_decision){
            .row = &w.rows[i], .out = &w.outs[i], .provider_message_id = it->message_id, .at = now};
        s = bx_map_put(decided, it->notification_id, (void *)1);
    }
    IFOK(s, receipt_flush(sv, &w, err));
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
    } else {
        for (int i = 0; i < w.ndone; i++) {
            notify_outcome_count(w.done[i].out);
            notify_outcome_log(w.done[i].row, w.done[i].out);
        }
        *changed = w.ndone;
    }
    bx_map_free(decided);
    receipt_work_free(&w);
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
        int changed = 0, recorded = 0;
        bx_error rerr = {0};
        if (bx_pg_reconnect(&sv->receipt_db, sv->conf.pg_url, PG_WAIT_MS, &rerr) != BX_OK ||
            apply_receipts(sv, &batch, &changed, &rerr) != BX_OK) {
            bx_log_warn("%d receipts not recorded: %s", batch.count, rerr.msg);
            bx_metric_add(&notify_m.failures, 1);
            code = 503; /* the provider sends them again */
        } else {
            recorded = batch.count;
        }
        bx_metric_add(&notify_m.receipts, recorded);
        snprintf(reply, sizeof(reply), "{\"received\":%d,\"recorded\":%d,\"changed\":%d}",
                 batch.count, recorded, changed);
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
