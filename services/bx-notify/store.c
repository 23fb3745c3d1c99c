/* store: bx-notify's rows in PostgreSQL, each change with its status message in one
 * transaction. */
#include "store.h"
#include "template.h"

#include "bx_clock.h"
#include "bx_log.h"
#include "bx_map.h"
#include "bx_outbox.h"
#include "bx_pg.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock that makes one outbox relay at a time ("bx-notify outbox"). */
#define RELAY_LOCK 7426005
#define CLAIM_MAX  1000

#define OUTBOX_TABLE "notify.outbox"

/* bx_copy_text, NULL copied as "" */
static void copy(char *dst, size_t size, const char *src)
{
    bx_copy_text(dst, size, src ? src : "");
}

/* bx_pg_command with the rows touched as an int, as the callers here count them */
static bx_status exec_params(PGconn *db, const char *sql, int n, const char *const *params,
                             int *affected, bx_error *err)
{
    long long rows = 0;
    bx_status s = bx_pg_command(db, sql, n, params, affected ? &rows : NULL, err);
    if (s == BX_OK && affected)
        *affected = (int)rows;
    return s;
}

bx_status notify_store_status_json(const notify_store_ctx *ctx, const char *request_id,
                                   const char *notification_id, const char *status,
                                   const char *provider, const char *provider_message_id,
                                   int attempt, const char *reason, const char *recipient_masked,
                                   bx_time_ms at, bx_buf *out)
{
    char when[40];
    bx_time_format(at, when, sizeof(when));
    (void)ctx;
    bx_status s = bx_buf_puts(out, "{\"schema\":\"bx.notify.status.v1\",\"request_id\":");
    IFOK(s, bx_buf_json_string(out, request_id));
    IFOK(s, bx_buf_puts(out, ",\"notification_id\":"));
    IFOK(s, bx_buf_json_string(out, notification_id));
    IFOK(s, bx_buf_puts(out, ",\"status\":"));
    IFOK(s, bx_buf_json_string(out, status));
    IFOK(s, bx_buf_puts(out, ",\"provider\":"));
    IFOK(s, bx_buf_json_string(out, provider));
    IFOK(s, bx_buf_puts(out, ",\"provider_message_id\":"));
    if (provider_message_id && provider_message_id[0])
        IFOK(s, bx_buf_json_string(out, provider_message_id));
    else
        IFOK(s, bx_buf_puts(out, "null"));
    IFOK(s, bx_buf_printf(out, ",\"attempt\":%d,\"reason\":", attempt));
    if (reason && reason[0]) {
        char masked[512];
        snprintf(masked, sizeof(masked), "%.500s", reason);
        bx_log_mask(masked);
        template_mask_codes(masked); /* an activation code a provider echoed */
        IFOK(s, bx_buf_json_string(out, masked));
    } else {
        IFOK(s, bx_buf_puts(out, "null"));
    }
    IFOK(s, bx_buf_puts(out, ",\"recipient\":"));
    IFOK(s, bx_buf_json_string(out, recipient_masked));
    IFOK(s, bx_buf_puts(out, ",\"at\":"));
    IFOK(s, bx_buf_json_string(out, when));
    IFOK(s, bx_buf_puts(out, "}"));
    return s;
}

bx_status notify_outbox_add(PGconn *db, const char *topic, const char *key, const char *payload,
                            bx_time_ms now, bx_error *err)
{
    const bx_outbox_message m = {.topic = topic, .key = key, .payload = payload, .created_at = now};
    return bx_outbox_add(db, OUTBOX_TABLE, &m, NULL, err);
}

static bx_status add_status(PGconn *db, const notify_store_ctx *ctx, const char *request_id,
                            const char *notification_id, dispatch_status status,
                            const char *provider, const char *message_id, int attempt,
                            const char *reason, const char *recipient_masked, bx_time_ms now,
                            bx_error *err)
{
    if (status == DISPATCH_ST_NONE)
        return BX_OK;
    bx_buf b;
    bx_buf_init(&b, 16384);
    bx_status s =
        notify_store_status_json(ctx, request_id, notification_id, dispatch_status_name(status),
                                 provider, message_id, attempt, reason, recipient_masked, now, &b);
    if (s != BX_OK)
        s = BX_ERR(err, s, "%s: cannot build its status message", notification_id);
    IFOK(s, notify_outbox_add(db, ctx->status_topic, request_id, b.data, now, err));
    bx_buf_free(&b);
    return s;
}

bx_status notify_store_request_take(PGconn *db, const char *request_id, bx_time_ms now, bool *fresh,
                                    bx_error *err)
{
    char now_text[40];
    bx_time_format_pg(now, now_text);
    const char *params[] = {request_id, now_text};
    int affected = 0;
    bx_status s = exec_params(db,
                              "INSERT INTO notify.request (request_id, received_at, recipients) "
                              "VALUES ($1, $2::timestamptz, 0) ON CONFLICT DO NOTHING",
                              2, params, &affected, err);
    *fresh = affected > 0;
    return s;
}

bx_status notify_store_request_count(PGconn *db, const char *request_id, int recipients,
                                     bx_error *err)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", recipients);
    const char *params[] = {request_id, n};
    return exec_params(db, "UPDATE notify.request SET recipients = $2::int WHERE request_id = $1",
                       2, params, NULL, err);
}

bx_status notify_store_insert(PGconn *db, const notify_store_ctx *ctx, const notify_store_new *n,
                              bx_time_ms now, int64_t *id, bx_error *err)
{
    *id = 0;
    char now_text[40], due_text[40];
    bx_time_format_pg(now, now_text);
    bx_time_format_pg(n->due_at, due_text);
    const char *params[] = {n->request_id,
                            n->recipient,
                            n->recipient_masked,
                            n->to_guardian ? "guardian" : "staff",
                            n->channel,
                            n->staff_id,
                            n->student_id,
                            n->case_id,
                            n->template_name,
                            n->sign_name ? n->sign_name : "",
                            n->body ? n->body : "",
                            dispatch_state_name(n->state),
                            n->state == DISPATCH_QUEUED ? due_text : NULL,
                            n->reason && n->reason[0] ? n->reason : NULL,
                            now_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db,
        "INSERT INTO notify.notification (request_id, recipient, recipient_masked, audience, "
        "channel, staff_id, student_id, case_id, template, sign_name, body, state, due_at, reason, "
        "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
        "$13::timestamptz, $14, $15::timestamptz, $15::timestamptz) "
        "ON CONFLICT (request_id, recipient) DO NOTHING RETURNING id, notification_id",
        15, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        dispatch_status st = n->state == DISPATCH_DEAD ? DISPATCH_ST_DEAD : DISPATCH_ST_QUEUED;
        const char *reason = n->reason;
        if (n->state == DISPATCH_COLLECTED)
            reason = "collected for the daily digest";
        s = add_status(db, ctx, n->request_id, PQgetvalue(res, 0, 1), st,
                       n->state == DISPATCH_COLLECTED ? "task" : ctx->provider, NULL, 0, reason,
                       n->recipient_masked, now, err);
    }
    PQclear(res);
    return s;
}

/* ---- a batch of requests in three statements ---- */

/* The notification columns a batch writes, in the order of their arrays ($4 on). */
enum {
    NC_REQUEST,
    NC_RECIPIENT,
    NC_MASKED,
    NC_AUDIENCE,
    NC_CHANNEL,
    NC_STAFF,
    NC_STUDENT,
    NC_CASE,
    NC_TEMPLATE,
    NC_SIGN,
    NC_BODY,
    NC_STATE,
    NC_DUE,
    NC_REASON,
    NC_COUNT
};

/* The request rows ($1 ids, $2 counts, $3 now) where there are none, then the notifications of
 * those inserted, in the arrays' order; returns ('r', request id, '', 0) per request inserted and
 * ('n', request id, recipient, id) per notification inserted. */
#define TAKE_BATCH_SQL                                                                             \
    "WITH req AS (INSERT INTO notify.request (request_id, received_at, recipients) "               \
    "  SELECT r, $3::timestamptz, c FROM unnest($1::text[], $2::int[]) AS u(r, c) "                \
    "  ON CONFLICT DO NOTHING RETURNING request_id), "                                             \
    "ntf AS (INSERT INTO notify.notification (request_id, recipient, recipient_masked, audience, " \
    "  channel, staff_id, student_id, case_id, template, sign_name, body, state, due_at, reason, " \
    "  created_at, updated_at) "                                                                   \
    "  SELECT u.rq, u.rc, u.ma, u.au, u.ch, u.st, u.su, u.ca, u.te, u.si, u.bo, u.sa, u.du, "      \
    "    u.re, $3::timestamptz, $3::timestamptz "                                                  \
    "  FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], "       \
    "    $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], "           \
    "    $16::timestamptz[], $17::text[]) WITH ORDINALITY "                                        \
    "    AS u(rq, rc, ma, au, ch, st, su, ca, te, si, bo, sa, du, re, o) "                         \
    "  WHERE u.rq IN (SELECT request_id FROM req) ORDER BY u.o "                                   \
    "  ON CONFLICT (request_id, recipient) DO NOTHING RETURNING id, request_id, recipient) "       \
    "SELECT 'r', request_id, '', 0 FROM req UNION ALL SELECT 'n', request_id, recipient, id FROM " \
    "ntf"

/* Adds the columns of one new notification to the arrays. */
static bx_status add_notification(bx_buf *cols, const notify_store_new *nw)
{
    char due_text[40];
    bx_time_format_pg(nw->due_at, due_text);
    const char *v[NC_COUNT] = {
        [NC_REQUEST] = nw->request_id,
        [NC_RECIPIENT] = nw->recipient,
        [NC_MASKED] = nw->recipient_masked,
        [NC_AUDIENCE] = nw->to_guardian ? "guardian" : "staff",
        [NC_CHANNEL] = nw->channel,
        [NC_STAFF] = nw->staff_id,
        [NC_STUDENT] = nw->student_id,
        [NC_CASE] = nw->case_id,
        [NC_TEMPLATE] = nw->template_name,
        [NC_SIGN] = nw->sign_name ? nw->sign_name : "",
        [NC_BODY] = nw->body ? nw->body : "",
        [NC_STATE] = dispatch_state_name(nw->state),
        [NC_DUE] = nw->state == DISPATCH_QUEUED ? due_text : NULL,
        [NC_REASON] = nw->reason && nw->reason[0] ? nw->reason : NULL,
    };
    bx_status s = BX_OK;
    for (int c = 0; c < NC_COUNT && s == BX_OK; c++)
        s = bx_pg_text_array_add(&cols[c], v[c]);
    return s;
}

/* The first status message of new notification nw (as notify_store_insert adds it) onto the
 * outbox arrays: topics, keys, payloads. */
static bx_status add_first_status(bx_buf *out, const notify_store_ctx *ctx,
                                  const notify_store_new *nw, const char *notification_id,
                                  bx_time_ms now, bx_buf *scratch)
{
    dispatch_status st = nw->state == DISPATCH_DEAD ? DISPATCH_ST_DEAD : DISPATCH_ST_QUEUED;
    const char *reason =
        nw->state == DISPATCH_COLLECTED ? "collected for the daily digest" : nw->reason;
    bx_buf_reset(scratch);
    bx_status s =
        notify_store_status_json(ctx, nw->request_id, notification_id, dispatch_status_name(st),
                                 nw->state == DISPATCH_COLLECTED ? "task" : ctx->provider, NULL, 0,
                                 reason, nw->recipient_masked, now, scratch);
    if (s != BX_OK)
        return s;
    s = bx_pg_text_array_add(&out[0], ctx->status_topic);
    IFOK(s, bx_pg_text_array_add(&out[1], nw->request_id));
    IFOK(s, bx_pg_text_array_add(&out[2], scratch->data));
    return s;
}

/* The arrays of a batch of requests: the request ids and their counts, the notification columns,
 * and the outbox's topics, keys and payloads of the first status messages (scratch builds one). */
typedef struct take_arrays {
    bx_buf ids, counts, cols[NC_COUNT], out[3], scratch;
} take_arrays;

static void take_arrays_init(take_arrays *a)
{
    bx_buf_init(&a->ids, 0);
    bx_buf_init(&a->counts, 0);
    for (int c = 0; c < NC_COUNT; c++)
        bx_buf_init(&a->cols[c], 0);
    for (int c = 0; c < 3; c++)
        bx_buf_init(&a->out[c], 0);
    bx_buf_init(&a->scratch, 16384);
}

static void take_arrays_free(take_arrays *a)
{
    bx_buf_free(&a->ids);
    bx_buf_free(&a->counts);
    for (int c = 0; c < NC_COUNT; c++)
        bx_buf_free(&a->cols[c]);
    for (int c = 0; c < 3; c++)
        bx_buf_free(&a->out[c]);
    bx_buf_free(&a->scratch);
}

/* The requests and their notifications into the arrays, closed. */
static bx_status take_arrays_fill(take_arrays *a, const notify_store_take *takes, int n)
{
    bx_status s = BX_OK;
    for (int i = 0; i < n && s == BX_OK; i++) {
        char count[16];
        snprintf(count, sizeof(count), "%d", takes[i].count);
        s = bx_pg_text_array_add(&a->ids, takes[i].request_id);
        IFOK(s, bx_pg_text_array_add(&a->counts, count));
        for (int k = 0; k < takes[i].count && s == BX_OK; k++)
            s = add_notification(a->cols, &takes[i].notifications[k]);
    }
    IFOK(s, bx_pg_text_array_end(&a->ids));
    IFOK(s, bx_pg_text_array_end(&a->counts));
    for (int c = 0; c < NC_COUNT && s == BX_OK; c++)
        s = bx_pg_text_array_end(&a->cols[c]);
    return s;
}

/* TAKE_BATCH_SQL's rows into inserted: request \x1f recipient -> id; request -> 1. */
static bx_status take_inserted(PGresult *res, bx_map *inserted)
{
    bx_status s = BX_OK;
    char key[200];
    for (int r = 0; r < PQntuples(res) && s == BX_OK; r++) {
        bool notification = PQgetvalue(res, r, 0)[0] == 'n';
        if (notification)
            snprintf(key, sizeof(key), "%s\x1f%s", PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
        else
            snprintf(key, sizeof(key), "%s", PQgetvalue(res, r, 1));
        s = bx_map_put(
            inserted, key,
            (void *)(intptr_t)(notification ? strtoll(PQgetvalue(res, r, 3), NULL, 10) : 1));
    }
    return s;
}

/* Marks the requests inserted fresh and counts their dead notifications; the first status
 * messages of their notifications onto a->out, in the order of the requests and recipients. */
static bx_status take_first_statuses(take_arrays *a, const notify_store_ctx *ctx,
                                     notify_store_take *takes, int n, const bx_map *inserted,
                                     bx_time_ms now, bx_error *err)
{
    bx_status s = BX_OK;
    char key[200];
    for (int i = 0; i < n && s == BX_OK; i++) {
        takes[i].fresh = bx_map_get(inserted, takes[i].request_id) != NULL;
        for (int k = 0; takes[i].fresh && k < takes[i].count && s == BX_OK; k++) {
            const notify_store_new *nw = &takes[i].notifications[k];
            snprintf(key, sizeof(key), "%s\x1f%s", nw->request_id, nw->recipient);
            intptr_t id = (intptr_t)bx_map_get(inserted, key);
            if (id == 0)
                continue; /* (request, recipient) written before: cannot be for a new request */
            char notification_id[32];
            snprintf(notification_id, sizeof(notification_id), "ntf-%lld", (long long)id);
            s = add_first_status(a->out, ctx, nw, notification_id, now, &a->scratch);
            if (s != BX_OK)
                s = BX_ERR(err, s, "%s: cannot build its status message", notification_id);
            takes[i].dead += nw->state == DISPATCH_DEAD;
        }
    }
    return s;
}

/* The status messages in out (topics, keys, payloads) into the outbox, in their order. */
static bx_status outbox_add_arrays(PGconn *db, bx_buf *out, const char *now_text, bx_error *err)
{
    if (out[0].len == 0)
        return BX_OK;
    bx_status s = BX_OK;
    for (int c = 0; c < 3 && s == BX_OK; c++)
        s = bx_pg_text_array_end(&out[c]);
    const char *outbox[] = {out[0].data, out[1].data, out[2].data, now_text};
    IFOK(s, exec_params(db,
                        "INSERT INTO notify.outbox (topic, msg_key, payload, created_at) "
                        "SELECT t, k, p, $4::timestamptz FROM unnest($1::text[], $2::text[], "
                        "$3::text[]) WITH ORDINALITY AS u(t, k, p, o) ORDER BY o",
                        4, outbox, NULL, err));
    return s;
}

static void take_reset(notify_store_take *takes, int n)
{
    for (int i = 0; i < n; i++) {
        takes[i].fresh = false;
        takes[i].dead = 0;
    }
}

bx_status notify_store_take_batch(PGconn *db, const notify_store_ctx *ctx, notify_store_take *takes,
                                  int n, bx_time_ms now, bx_error *err)
{
    take_reset(takes, n);
    if (n == 0)
        return BX_OK;
    char now_text[40];
    bx_time_format_pg(now, now_text);
    take_arrays a;
    take_arrays_init(&a);
    bx_map *inserted = bx_map_new();
    PGresult *res = NULL;
    bx_status s = inserted ? BX_OK : BX_ENOMEM;
    IFOK(s, take_arrays_fill(&a, takes, n));
    if (s != BX_OK) {
        s = BX_ERR(err, BX_ENOMEM, "a batch of %d requests does not fit in memory", n);
        goto out;
    }
    const char *params[3 + NC_COUNT] = {a.ids.data, a.counts.data, now_text};
    for (int c = 0; c < NC_COUNT; c++)
        params[3 + c] = a.cols[c].data;
    long long t0 = bx_monotonic_ms();
    s = bx_pg_query(db, TAKE_BATCH_SQL, 3 + NC_COUNT, params, &res, err);
    long long t1 = bx_monotonic_ms();
    if (s != BX_OK)
        goto out;
    s = take_inserted(res, inserted);
    IFOK(s, take_first_statuses(&a, ctx, takes, n, inserted, now, err));
    IFOK(s, outbox_add_arrays(db, a.out, now_text, err));
    bx_log_debug("take batch: %d requests, rows %lld ms, status messages %lld ms", n, t1 - t0,
                 bx_monotonic_ms() - t1);
out:
    PQclear(res);
    bx_map_free(inserted);
    take_arrays_free(&a);
    if (s != BX_OK)
        take_reset(takes, n);
    return s;
}

/* values[0..n) as one text[] parameter in list, which is initialised here and which the caller
 * frees, also after an error. */
static bx_status text_list(bx_buf *list, const char *const *values, int n, const char *what,
                           bx_error *err)
{
    bx_buf_init(list, 0);
    if (bx_pg_text_array(list, values, n) != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "out of memory for %d %s", n, what);
    return BX_OK;
}

bx_status notify_store_requests_seen(PGconn *db, const char *const *request_ids, int n, bool *seen,
                                     bx_error *err)
{
    for (int i = 0; i < n; i++)
        seen[i] = false;
    if (n == 0)
        return BX_OK;
    bx_buf ids;
    bx_status s = text_list(&ids, request_ids, n, "request ids", err);
    const char *params[] = {ids.data};
    PGresult *res = NULL;
    IFOK(s,
         bx_pg_query(db, "SELECT request_id FROM notify.request WHERE request_id = ANY($1::text[])",
                     1, params, &res, err));
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++)
        for (int i = 0; i < n; i++)
            if (strcmp(request_ids[i], PQgetvalue(res, r, 0)) == 0)
                seen[i] = true;
    PQclear(res);
    bx_buf_free(&ids);
    return s;
}

#define ROW_COLUMNS                                                                                \
    "n.id, n.notification_id, n.request_id, n.recipient, n.recipient_masked, n.audience, "         \
    "n.channel, n.template, n.sign_name, n.body, n.state, n.attempt, "                             \
    "coalesce((extract(epoch FROM n.first_sent_at) * 1000)::bigint, 0), "                          \
    "coalesce(n.provider_message_id, '')"

static void read_row(PGresult *res, int i, notify_store_row *r)
{
    memset(r, 0, sizeof(*r));
    r->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    copy(r->notification_id, sizeof(r->notification_id), PQgetvalue(res, i, 1));
    copy(r->request_id, sizeof(r->request_id), PQgetvalue(res, i, 2));
    copy(r->recipient, sizeof(r->recipient), PQgetvalue(res, i, 3));
    copy(r->recipient_masked, sizeof(r->recipient_masked), PQgetvalue(res, i, 4));
    r->to_guardian = strcmp(PQgetvalue(res, i, 5), "guardian") == 0;
    copy(r->channel, sizeof(r->channel), PQgetvalue(res, i, 6));
    copy(r->template_name, sizeof(r->template_name), PQgetvalue(res, i, 7));
    copy(r->sign_name, sizeof(r->sign_name), PQgetvalue(res, i, 8));
    copy(r->body, sizeof(r->body), PQgetvalue(res, i, 9));
    if (dispatch_state_parse(PQgetvalue(res, i, 10), &r->state) != BX_OK)
        r->state = DISPATCH_DEAD; /* the CHECK constraint makes this unreachable */
    r->attempt = (int)strtol(PQgetvalue(res, i, 11), NULL, 10);
    r->last_send_at = strtoll(PQgetvalue(res, i, 12), NULL, 10);
    copy(r->provider_message_id, sizeof(r->provider_message_id), PQgetvalue(res, i, 13));
}

bx_status notify_store_claim(PGconn *db, const char *owner, bx_time_ms now, int64_t lease_ms,
                             int max, notify_store_row **rows, int *count, bx_error *err)
{
    *rows = NULL;
    *count = 0;
    if (max < 1 || max > CLAIM_MAX)
        return BX_ERR(err, BX_EINVAL, "claim: max must be 1 to %d", CLAIM_MAX);
    PGresult *res = NULL;
    /* The inner SELECT locks what it picks and skips rows another claimer or a receipt holds. */
    bx_status s = bx_pg_claim(
        db,
        "UPDATE notify.notification n SET claimed_by = $1, lease_until = $3::timestamptz "
        "WHERE n.id IN (SELECT id FROM notify.notification "
        "  WHERE state IN ('queued', 'sending', 'unknown', 'sent') AND due_at <= $2::timestamptz "
        "  AND (lease_until IS NULL OR lease_until < $2::timestamptz) "
        "  ORDER BY due_at FOR UPDATE SKIP LOCKED LIMIT $4::int) "
        "RETURNING " ROW_COLUMNS,
        owner, now, lease_ms, max, &res, err);
    if (s != BX_OK)
        return s;
    int n = PQntuples(res);
    if (n > 0) {
        *rows = calloc((size_t)n, sizeof(**rows));
        if (*rows == NULL) {
            PQclear(res);
            return BX_ERR(err, BX_ENOMEM, "no memory for %d claimed notifications", n);
        }
    }
    for (int i = 0; i < n; i++)
        read_row(res, i, &(*rows)[i]);
    *count = n;
    PQclear(res);
    return BX_OK;
}

bx_status notify_store_sent_today(PGconn *db, const notify_store_row *row, bx_time_ms now,
                                  int *sent_today, bx_error *err)
{
    *sent_today = 0;
    char day[11], id[24];
    bx_date_format(bx_time_local_date(now), day);
    snprintf(id, sizeof(id), "%" PRId64, row->id);
    const char *lock_params[] = {row->recipient};
    const char *params[] = {row->recipient, day, id};
    PGresult *res = NULL;
    bx_status s = exec_params(db, "SELECT pg_advisory_xact_lock(hashtext('bx-notify:' || $1))", 1,
                              lock_params, NULL, err);
    IFOK(s, bx_pg_query(db,
                        "SELECT count(*) FROM notify.notification WHERE recipient = $1 "
                        "AND send_day = $2::date AND id <> $3::bigint "
                        "AND (state IN ('sending', 'unknown', 'sent', 'delivered') "
                        "  OR (state = 'dead' AND (provider_message_id IS NOT NULL "
                        "    OR reason LIKE 'outcome unknown%')))",
                        3, params, &res, err));
    if (s == BX_OK)
        *sent_today = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return s;
}

bx_status notify_store_begin_send(PGconn *db, const notify_store_row *row, bx_time_ms now,
                                  bool count, int *sent_today, bx_error *err)
{
    *sent_today = 0;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    if (count)
        IFOK(s, notify_store_sent_today(db, row, now, sent_today, err));
    if (s != BX_OK)
        bx_pg_rollback(db);
    return s;
}

bx_status notify_store_change(PGconn *db, const notify_store_ctx *ctx, const notify_store_row *row,
                              const char *owner, const dispatch_output *out,
                              const char *provider_message_id, bx_time_ms now, bool *applied,
                              bx_error *err)
{
    *applied = false;
    char id[24], attempt[16], new_attempt[16], now_text[40], due_text[40], day[11];
    snprintf(id, sizeof(id), "%" PRId64, row->id);
    snprintf(attempt, sizeof(attempt), "%d", row->attempt);
    snprintf(new_attempt, sizeof(new_attempt), "%d", out->attempt);
    bx_time_format_pg(now, now_text);
    bx_time_format_pg(out->due_at, due_text);
    bx_date_format(bx_time_local_date(now), day);
    bool sending = out->state == DISPATCH_SENDING && row->state != DISPATCH_SENDING;
    /* a provider's words may echo a number: stored masked, as everywhere */
    char reason[sizeof(out->reason)];
    snprintf(reason, sizeof(reason), "%s", out->reason);
    bx_log_mask(reason);
    const char *params[] = {id,
                            dispatch_state_name(row->state),
                            attempt,
                            dispatch_state_name(out->state),
                            new_attempt,
                            out->due_at > 0 ? due_text : NULL,
                            reason[0] ? reason : NULL,
                            provider_message_id && provider_message_id[0] ? provider_message_id
                                                                          : NULL,
                            now_text,
                            sending ? day : NULL,
                            owner,
                            ctx->provider};
    int affected = 0;
    /* A row being sent keeps its claim (its lease is the takeover time); any other change
     * releases it. */
    bx_status s = exec_params(db,
                              "UPDATE notify.notification SET state = $4, attempt = $5::int, "
                              "due_at = $6::timestamptz, reason = $7, "
                              "provider_message_id = coalesce($8, provider_message_id), "
                              "updated_at = $9::timestamptz, send_day = coalesce($10::date, "
                              "send_day), first_sent_at = CASE WHEN $10::date IS NULL THEN "
                              "first_sent_at ELSE $9::timestamptz END, provider = $12, "
                              "claimed_by = CASE WHEN $4 = 'sending' THEN claimed_by END, "
                              "lease_until = CASE WHEN $4 = 'sending' THEN lease_until END "
                              "WHERE id = $1::bigint AND state = $2 AND attempt = $3::int "
                              "AND ($11::text IS NULL OR claimed_by = $11)",
                              12, params, &affected, err);
    if (s == BX_OK && affected == 1)
        s = add_status(db, ctx, row->request_id, row->notification_id, out->status, ctx->provider,
                       provider_message_id && provider_message_id[0] ? provider_message_id
                                                                     : row->provider_message_id,
                       out->attempt, reason, row->recipient_masked, now, err);
    if (s == BX_OK)
        *applied = affected == 1;
    return s;
}

/* The decisions' columns as arrays, $1 on (notify_store_change's parameters, one per row). */
enum {
    DC_ID,
    DC_OLD_STATE,
    DC_OLD_ATTEMPT,
    DC_STATE,
    DC_ATTEMPT,
    DC_DUE,
    DC_REASON,
    DC_MESSAGE_ID,
    DC_AT,
    DC_DAY,
    DC_STATUS,
    DC_COUNT
};

/* Decision d's columns onto cols (its status message built in status, emptied first). */
static bx_status add_decision(bx_buf *cols, bx_buf *status, const notify_store_ctx *ctx,
                              const notify_store_decision *d, bx_error *err)
{
    const notify_store_row *row = d->row;
    const dispatch_output *out = d->out;
    const char *pmid = d->provider_message_id;
    char id[24], attempt[16], new_attempt[16], at_text[40], due_text[40], day[11];
    snprintf(id, sizeof(id), "%" PRId64, row->id);
    snprintf(attempt, sizeof(attempt), "%d", row->attempt);
    snprintf(new_attempt, sizeof(new_attempt), "%d", out->attempt);
    bx_time_format_pg(d->at, at_text);
    bx_time_format_pg(out->due_at, due_text);
    bx_date_format(bx_time_local_date(d->at), day);
    bool sending = out->state == DISPATCH_SENDING && row->state != DISPATCH_SENDING;
    char reason[sizeof(out->reason)];
    snprintf(reason, sizeof(reason), "%s", out->reason);
    bx_log_mask(reason);
    bx_buf_reset(status);
    bool has_status = out->status != DISPATCH_ST_NONE;
    if (has_status) {
        bx_status s = notify_store_status_json(
            ctx, row->request_id, row->notification_id, dispatch_status_name(out->status),
            ctx->provider, pmid && pmid[0] ? pmid : row->provider_message_id, out->attempt, reason,
            row->recipient_masked, d->at, status);
        if (s != BX_OK)
            return BX_ERR(err, s, "%s: cannot build its status message", row->notification_id);
    }
    const char *v[DC_COUNT] = {
        [DC_ID] = id,
        [DC_OLD_STATE] = dispatch_state_name(row->state),
        [DC_OLD_ATTEMPT] = attempt,
        [DC_STATE] = dispatch_state_name(out->state),
        [DC_ATTEMPT] = new_attempt,
        [DC_DUE] = out->due_at > 0 ? due_text : NULL,
        [DC_REASON] = reason[0] ? reason : NULL,
        [DC_MESSAGE_ID] = pmid && pmid[0] ? pmid : NULL,
        [DC_AT] = at_text,
        [DC_DAY] = sending ? day : NULL,
        [DC_STATUS] = has_status ? status->data : NULL,
    };
    bx_status s = BX_OK;
    for (int c = 0; c < DC_COUNT && s == BX_OK; c++)
        s = bx_pg_text_array_add(&cols[c], v[c]);
    return s;
}

/* notify_store_change's UPDATE for every row at once; the status messages of the rows changed, in
 * the decisions' order. $1 to $11 the DC_ columns, $12 the owner, $13 the provider, $14 the
 * status topic; returns the ordinal of each decision applied. */
#define CHANGES_SQL                                                                                \
    "WITH v AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], "            \
    "  $5::int[], $6::timestamptz[], $7::text[], $8::text[], $9::timestamptz[], "                  \
    "  $10::date[], $11::text[]) WITH ORDINALITY AS v(id, old_state, old_attempt, state, "         \
    "  attempt, due, reason, pmid, at, day, status, o)), "                                         \
    "u AS (UPDATE notify.notification n SET state = v.state, attempt = v.attempt, "                \
    "  due_at = v.due, reason = v.reason, "                                                        \
    "  provider_message_id = coalesce(v.pmid, n.provider_message_id), updated_at = v.at, "         \
    "  send_day = coalesce(v.day, n.send_day), first_sent_at = CASE WHEN v.day IS NULL "           \
    "  THEN n.first_sent_at ELSE v.at END, provider = $13, "                                       \
    "  claimed_by = CASE WHEN v.state = 'sending' THEN n.claimed_by END, "                         \
    "  lease_until = CASE WHEN v.state = 'sending' THEN n.lease_until END "                        \
    "  FROM v WHERE n.id = v.id AND n.state = v.old_state AND n.attempt = v.old_attempt "          \
    "  AND ($12::text IS NULL OR n.claimed_by = $12) "                                             \
    "  RETURNING v.o, v.status, v.at, n.request_id), "                                             \
    "st AS (INSERT INTO notify.outbox (topic, msg_key, payload, created_at) "                      \
    "  SELECT $14, request_id, status, at FROM u WHERE status IS NOT NULL ORDER BY o) "            \
    "SELECT o FROM u"

static void decisions_reset(notify_store_decision *decisions, int n)
{
    for (int i = 0; i < n; i++)
        decisions[i].applied = false;
}

bx_status notify_store_changes(PGconn *db, const notify_store_ctx *ctx, const char *owner,
                               notify_store_decision *decisions, int n, bx_error *err)
{
    decisions_reset(decisions, n);
    if (n == 0)
        return BX_OK;
    bx_buf cols[DC_COUNT], status;
    for (int c = 0; c < DC_COUNT; c++)
        bx_buf_init(&cols[c], 0);
    bx_buf_init(&status, 16384);
    bx_status s = BX_OK;
    for (int i = 0; i < n && s == BX_OK; i++)
        s = add_decision(cols, &status, ctx, &decisions[i], err);
    for (int c = 0; c < DC_COUNT && s == BX_OK; c++)
        s = bx_pg_text_array_end(&cols[c]);
    PGresult *res = NULL;
    if (s == BX_OK) {
        const char *params[DC_COUNT + 3];
        for (int c = 0; c < DC_COUNT; c++)
            params[c] = cols[c].data;
        params[DC_COUNT] = owner;
        params[DC_COUNT + 1] = ctx->provider;
        params[DC_COUNT + 2] = ctx->status_topic;
        s = bx_pg_query(db, CHANGES_SQL, DC_COUNT + 3, params, &res, err);
    }
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        long long o = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (o >= 1 && o <= n)
            decisions[o - 1].applied = true;
    }
    PQclear(res);
    for (int c = 0; c < DC_COUNT; c++)
        bx_buf_free(&cols[c]);
    bx_buf_free(&status);
    if (s != BX_OK)
        decisions_reset(decisions, n);
    return s;
}

bx_status notify_store_sent_today_many(PGconn *db, const char *const *recipients, int n,
                                       bx_time_ms now, int *sent_today, bx_error *err)
{
    for (int i = 0; i < n; i++)
        sent_today[i] = 0;
    if (n == 0)
        return BX_OK;
    bx_buf list;
    bx_status s = text_list(&list, recipients, n, "recipients", err);
    char day[11];
    bx_date_format(bx_time_local_date(now), day);
    const char *params[] = {list.data, day};
    PGresult *res = NULL;
    /* the subquery's order is the order the locks are taken in */
    IFOK(s,
         exec_params(db,
                     "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtext('bx-notify:' "
                     "|| r) AS k FROM unnest($1::text[]) AS r ORDER BY 1) l",
                     1, params, NULL, err));
    IFOK(s, bx_pg_query(db,
                        "SELECT recipient, count(*) FROM notify.notification "
                        "WHERE recipient = ANY($1::text[]) AND send_day = $2::date "
                        "AND (state IN ('sending', 'unknown', 'sent', 'delivered') "
                        "  OR (state = 'dead' AND (provider_message_id IS NOT NULL "
                        "    OR reason LIKE 'outcome unknown%'))) GROUP BY recipient",
                        2, params, &res, err));
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++)
        for (int i = 0; i < n; i++)
            if (strcmp(recipients[i], PQgetvalue(res, r, 0)) == 0)
                sent_today[i] = (int)strtol(PQgetvalue(res, r, 1), NULL, 10);
    PQclear(res);
    bx_buf_free(&list);
    return s;
}

bx_status notify_store_unsend(PGconn *db, const notify_store_row *row, const char *owner,
                              int attempt_before, bx_time_ms now, bool *undone, bx_error *err)
{
    *undone = false;
    char id[24], attempt[16], before[16], now_text[40];
    snprintf(id, sizeof(id), "%" PRId64, row->id);
    snprintf(attempt, sizeof(attempt), "%d", row->attempt);
    snprintf(before, sizeof(before), "%d", attempt_before);
    bx_time_format_pg(now, now_text);
    const char *params[] = {id, attempt, owner, before, now_text};
    int affected = 0;
    bx_status s = exec_params(db,
                              "UPDATE notify.notification SET state = 'queued', attempt = $4::int, "
                              "due_at = $5::timestamptz, reason = NULL, updated_at = "
                              "$5::timestamptz, claimed_by = NULL, lease_until = NULL "
                              "WHERE id = $1::bigint AND state = 'sending' AND attempt = $2::int "
                              "AND claimed_by = $3",
                              5, params, &affected, err);
    if (s == BX_OK)
        *undone = affected == 1;
    return s;
}

bx_status notify_store_apply(PGconn *db, const notify_store_ctx *ctx, const notify_store_row *row,
                             const char *owner, const dispatch_output *out,
                             const char *provider_message_id, bx_time_ms now, bool in_tx,
                             bool *applied, bx_error *err)
{
    *applied = false;
    bool done = false;
    bx_status s = in_tx ? BX_OK : bx_pg_exec(db, "BEGIN", err);
    IFOK(s, notify_store_change(db, ctx, row, owner, out, provider_message_id, now, &done, err));
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    *applied = done;
    return BX_OK;
}

bx_status notify_store_lock_row(PGconn *db, const char *notification_id, notify_store_row *row,
                                bx_error *err)
{
    const char *params[] = {notification_id};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "SELECT " ROW_COLUMNS " FROM notify.notification n "
                              "WHERE n.notification_id = $1 FOR UPDATE",
                              1, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ENOTFOUND;
    else if (s == BX_OK)
        read_row(res, 0, row);
    PQclear(res);
    return s;
}

bx_status notify_store_receipt(PGconn *db, const char *notification_id, const char *message_id,
                               const char *state, const char *reason, bx_time_ms now, bool *fresh,
                               bx_error *err)
{
    char now_text[40], nid[129], mid[129], why[501];
    bx_time_format_pg(now, now_text);
    snprintf(nid, sizeof(nid), "%s", notification_id ? notification_id : "");
    snprintf(mid, sizeof(mid), "%s", message_id ? message_id : "");
    snprintf(why, sizeof(why), "%s", reason ? reason : "");
    bx_log_mask(why);
    const char *params[] = {nid, mid, state, why, now_text};
    int affected = 0;
    bx_status s = exec_params(
        db,
        "INSERT INTO notify.receipt (notification_id, provider_message_id, state, reason, "
        "received_at) VALUES ($1, $2, $3, $4, $5::timestamptz) ON CONFLICT DO NOTHING",
        5, params, &affected, err);
    *fresh = affected > 0;
    return s;
}

/* The receipt's key as notify.receipt stores it (ids cut to 128 bytes). */
static void receipt_key(const char *nid, const char *state, const char *mid, char *key, size_t size)
{
    snprintf(key, size, "%.128s\x1f%s\x1f%.128s", nid ? nid : "", state, mid ? mid : "");
}

bx_status notify_store_receipts(PGconn *db, const notify_store_receipt_in *receipts, int n,
                                bx_time_ms now, bool *fresh, bx_error *err)
{
    for (int i = 0; i < n; i++)
        fresh[i] = false;
    if (n == 0)
        return BX_OK;
    char now_text[40];
    bx_time_format_pg(now, now_text);
    bx_buf cols[4];
    for (int c = 0; c < 4; c++)
        bx_buf_init(&cols[c], 0);
    bx_status s = BX_OK;
    for (int i = 0; i < n && s == BX_OK; i++) {
        const notify_store_receipt_in *r = &receipts[i];
        char nid[129], mid[129], why[501];
        snprintf(nid, sizeof(nid), "%s", r->notification_id ? r->notification_id : "");
        snprintf(mid, sizeof(mid), "%s", r->message_id ? r->message_id : "");
        snprintf(why, sizeof(why), "%s", r->reason ? r->reason : "");
        bx_log_mask(why);
        s = bx_pg_text_array_add(&cols[0], nid);
        IFOK(s, bx_pg_text_array_add(&cols[1], mid));
        IFOK(s, bx_pg_text_array_add(&cols[2], r->state));
        IFOK(s, bx_pg_text_array_add(&cols[3], why));
    }
    for (int c = 0; c < 4 && s == BX_OK; c++)
        s = bx_pg_text_array_end(&cols[c]);
    PGresult *res = NULL;
    bx_map *added = NULL;
    if (s != BX_OK) {
        s = BX_ERR(err, BX_ENOMEM, "out of memory for %d receipts", n);
        goto out;
    }
    const char *params[] = {cols[0].data, cols[1].data, cols[2].data, cols[3].data, now_text};
    /* in the list's order: of two alike, the first is recorded */
    s = bx_pg_query(
        db,
        "INSERT INTO notify.receipt (notification_id, provider_message_id, state, "
        "reason, received_at) SELECT n, m, s, r, $5::timestamptz FROM unnest($1::text[], "
        "$2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(n, m, s, r, o) "
        "ORDER BY o ON CONFLICT DO NOTHING "
        "RETURNING notification_id, state, provider_message_id",
        5, params, &res, err);
    added = s == BX_OK ? bx_map_new() : NULL;
    if (s == BX_OK && added == NULL)
        s = BX_ERR(err, BX_ENOMEM, "out of memory for %d receipts", n);
    char key[300];
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        receipt_key(PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), key,
                    sizeof(key));
        if (bx_map_put(added, key, (void *)1) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "out of memory for %d receipts", n);
    }
    /* each row inserted is the first receipt of the list with its key */
    for (int i = 0; s == BX_OK && i < n; i++) {
        receipt_key(receipts[i].notification_id, receipts[i].state, receipts[i].message_id, key,
                    sizeof(key));
        if (bx_map_get(added, key) != NULL) {
            fresh[i] = true;
            if (bx_map_put(added, key, NULL) != BX_OK)
                s = BX_ERR(err, BX_ENOMEM, "out of memory for %d receipts", n);
        }
    }
out:
    bx_map_free(added);
    PQclear(res);
    for (int c = 0; c < 4; c++)
        bx_buf_free(&cols[c]);
    if (s != BX_OK)
        for (int i = 0; i < n; i++)
            fresh[i] = false;
    return s;
}

bx_status notify_store_lock_rows(PGconn *db, const char *const *ids, int n, notify_store_row *rows,
                                 bool *found, bx_error *err)
{
    for (int i = 0; i < n; i++)
        found[i] = false;
    if (n == 0)
        return BX_OK;
    bx_buf list;
    bx_status s = text_list(&list, ids, n, "notification ids", err);
    const char *params[] = {list.data};
    PGresult *res = NULL;
    IFOK(s, bx_pg_query(db,
                        "SELECT " ROW_COLUMNS " FROM notify.notification n "
                        "WHERE n.notification_id = ANY($1::text[]) ORDER BY n.id FOR UPDATE",
                        1, params, &res, err));
    bx_map *at = s == BX_OK ? bx_map_new() : NULL; /* notification id -> its result row + 1 */
    if (s == BX_OK && at == NULL)
        s = BX_ERR(err, BX_ENOMEM, "out of memory for %d notification ids", n);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++)
        if (bx_map_put(at, PQgetvalue(res, r, 1), (void *)(intptr_t)(r + 1)) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "out of memory for %d notification ids", n);
    for (int i = 0; s == BX_OK && i < n; i++) {
        intptr_t r = ids[i] ? (intptr_t)bx_map_get(at, ids[i]) : 0;
        if (r > 0) {
            read_row(res, (int)r - 1, &rows[i]);
            found[i] = true;
        }
    }
    bx_map_free(at);
    PQclear(res);
    bx_buf_free(&list);
    if (s != BX_OK)
        for (int i = 0; i < n; i++)
            found[i] = false;
    return s;
}

bx_status notify_outbox_relay(PGconn *db, bx_producer *producer, bx_outbox_cursor *cursor, int max,
                              int timeout_ms, int *sent, bx_error *err)
{
    const bx_outbox_relay_opts opts = {
        .table = OUTBOX_TABLE,
        .lock_key = RELAY_LOCK,
        .max = max,
        .timeout_ms = timeout_ms,
        .lock_rows = false, /* the advisory lock keeps relays apart; rows are read unlocked */
        .cursor = cursor,
    };
    return bx_outbox_relay(db, producer, &opts, sent, err);
}

bx_status notify_outbox_prune(PGconn *db, bx_time_ms before, int *deleted, bx_error *err)
{
    char before_text[40];
    bx_time_format_pg(before, before_text);
    const char *params[] = {before_text};
    *deleted = 0;
    return exec_params(db,
                       "DELETE FROM notify.outbox WHERE id IN (SELECT id FROM notify.outbox "
                       "WHERE sent_at IS NOT NULL AND created_at < $1::timestamptz LIMIT 10000)",
                       1, params, deleted, err);
}

/* Reads row i of res into the i-th element of the array out. */
typedef void read_row_fn(PGresult *res, int i, void *out);

/* Runs a query and reads up to max of its rows into out with read (*count). */
static bx_status query_rows(PGconn *db, const char *sql, int nparams, const char *const *params,
                            int max, read_row_fn *read, void *out, int *count, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, sql, nparams, params, &res, err);
    if (s == BX_OK) {
        int n = PQntuples(res) < max ? PQntuples(res) : max;
        for (int i = 0; i < n; i++)
            read(res, i, out);
        *count = n;
    }
    PQclear(res);
    return s;
}

static void read_staff_id(PGresult *res, int i, void *out)
{
    char(*staff)[33] = out;
    copy(staff[i], sizeof(staff[i]), PQgetvalue(res, i, 0));
}

static bx_status staff_ids(PGconn *db, const char *sql, int nparams, const char *const *params,
                           int max, char (*staff)[33], int *count, bx_error *err)
{
    return query_rows(db, sql, nparams, params, max, read_staff_id, staff, count, err);
}

bx_status notify_store_digest_staff(PGconn *db, bx_time_ms cutoff, int max, char (*staff)[33],
                                    int *count, bx_error *err)
{
    *count = 0;
    char cutoff_text[40], max_text[16];
    bx_time_format_pg(cutoff, cutoff_text);
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {cutoff_text, max_text};
    return staff_ids(db,
                     "SELECT DISTINCT staff_id FROM notify.notification "
                     "WHERE state = 'collected' AND created_at < $1::timestamptz "
                     "ORDER BY staff_id LIMIT $2::int",
                     2, params, max, staff, count, err);
}

static void read_task(PGresult *res, int i, void *out)
{
    notify_store_task *t = &((notify_store_task *)out)[i];
    t->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    copy(t->notification_id, sizeof(t->notification_id), PQgetvalue(res, i, 1));
    copy(t->request_id, sizeof(t->request_id), PQgetvalue(res, i, 2));
    copy(t->body, sizeof(t->body), PQgetvalue(res, i, 3));
}

bx_status notify_store_digest_tasks(PGconn *db, const char *staff_id, bx_time_ms cutoff, int max,
                                    notify_store_task *tasks, int *count, bx_error *err)
{
    *count = 0;
    char cutoff_text[40], max_text[16];
    bx_time_format_pg(cutoff, cutoff_text);
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {staff_id, cutoff_text, max_text};
    return query_rows(db,
                      "SELECT id, notification_id, request_id, body FROM "
                      "notify.notification WHERE state = 'collected' AND staff_id = $1 "
                      "AND created_at < $2::timestamptz ORDER BY id LIMIT $3::int "
                      "FOR UPDATE SKIP LOCKED",
                      3, params, max, read_task, tasks, count, err);
}

bx_status notify_store_digest_mark(PGconn *db, const notify_store_ctx *ctx,
                                   const notify_store_task *tasks, int count, int64_t digest_id,
                                   const char *digest_notification_id, const char *staff_id,
                                   bx_time_ms now, bx_error *err)
{
    char did[24], now_text[40], reason[96];
    snprintf(did, sizeof(did), "%" PRId64, digest_id);
    bx_time_format_pg(now, now_text);
    snprintf(reason, sizeof(reason), "in the daily digest %s", digest_notification_id);
    bx_status s = BX_OK;
    for (int i = 0; i < count && s == BX_OK; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%" PRId64, tasks[i].id);
        const char *params[] = {id, did, now_text};
        s = exec_params(db,
                        "UPDATE notify.notification SET state = 'digested', "
                        "digest_id = $2::bigint, updated_at = $3::timestamptz "
                        "WHERE id = $1::bigint AND state = 'collected'",
                        3, params, NULL, err);
        IFOK(s, add_status(db, ctx, tasks[i].request_id, tasks[i].notification_id,
                           DISPATCH_ST_QUEUED, "task", NULL, 0, reason, staff_id, now, err));
    }
    return s;
}

/* The open tasks of a staff member st: owned by name, or by role where the case is. */
#define OPEN_TASKS_JOINS                                                                           \
    "FROM cases.task t JOIN cases.case c ON c.id = t.case_id "                                     \
    "JOIN registry.school sc ON sc.id = c.school_id "                                              \
    "JOIN registry.township tw ON tw.code = sc.township_code "                                     \
    "JOIN registry.staff st ON st.role = t.owner_role AND (st.id = t.owner_staff_id OR "           \
    "  (t.owner_staff_id IS NULL AND CASE st.role "                                                \
    "    WHEN 'township_officer' THEN st.township_code = sc.township_code "                        \
    "    WHEN 'county_officer' THEN st.county_code = tw.county_code "                              \
    "    ELSE st.school_id = c.school_id END)) "
#define OPEN_TASKS_WHERE                                                                           \
    "WHERE t.outcome IS NULL AND c.closed_at IS NULL AND t.created_at < $1::timestamptz "

bx_status notify_store_open_task_staff(PGconn *db, bx_time_ms older, bx_time_ms since, int max,
                                       char (*staff)[33], int *count, bx_error *err)
{
    *count = 0;
    char older_text[40], since_text[40], max_text[16];
    bx_time_format_pg(older, older_text);
    bx_time_format_pg(since, since_text);
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {older_text, since_text, max_text};
    return staff_ids(db,
                     "SELECT DISTINCT st.id " OPEN_TASKS_JOINS OPEN_TASKS_WHERE
                     "AND NOT EXISTS (SELECT 1 FROM notify.notification d WHERE "
                     "d.channel = 'digest' AND d.staff_id = st.id "
                     "AND d.created_at >= $2::timestamptz) ORDER BY st.id LIMIT $3::int",
                     3, params, max, staff, count, err);
}

static void read_open_task(PGresult *res, int i, void *out)
{
    notify_store_open_task *t = &((notify_store_open_task *)out)[i];
    copy(t->kind, sizeof(t->kind), PQgetvalue(res, i, 0));
    t->due_at = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    t->overdue = strcmp(PQgetvalue(res, i, 2), "t") == 0;
    copy(t->class_name, sizeof(t->class_name), PQgetvalue(res, i, 3));
    copy(t->student, sizeof(t->student), PQgetvalue(res, i, 4));
}

bx_status notify_store_open_tasks(PGconn *db, const char *staff_id, bx_time_ms older, int max,
                                  notify_store_open_task *tasks, int *count, bx_error *err)
{
    *count = 0;
    char older_text[40], max_text[16];
    bx_time_format_pg(older, older_text);
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {older_text, staff_id, max_text};
    return query_rows(
        db,
        "SELECT t.kind, (extract(epoch FROM t.due_at) * 1000)::bigint, t.overdue_at IS NOT NULL, "
        "coalesce(cl.name, ''), coalesce(p.name, '') " OPEN_TASKS_JOINS
        "LEFT JOIN registry.student su ON su.id = c.student_id "
        "LEFT JOIN registry.class cl ON cl.id = su.class_id "
        "LEFT JOIN registry.student_private p ON p.student_id = c.student_id " OPEN_TASKS_WHERE
        "AND st.id = $2 ORDER BY t.due_at, t.id LIMIT $3::int",
        3, params, max, read_open_task, tasks, count, err);
}

bx_status notify_store_digest_begin(PGconn *db, const char *staff_id, bx_time_ms since, bool *had,
                                    bx_error *err)
{
    *had = false;
    char since_text[40];
    bx_time_format_pg(since, since_text);
    const char *lock_params[] = {staff_id};
    const char *params[] = {staff_id, since_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    IFOK(s, exec_params(db, "SELECT pg_advisory_xact_lock(hashtext('bx-notify digest:' || $1))", 1,
                        lock_params, NULL, err));
    IFOK(s, bx_pg_query(db,
                        "SELECT EXISTS (SELECT 1 FROM notify.notification WHERE channel = "
                        "'digest' AND staff_id = $1 AND created_at >= $2::timestamptz)",
                        2, params, &res, err));
    if (s == BX_OK)
        *had = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (s != BX_OK)
        bx_pg_rollback(db);
    return s;
}

bx_status notify_store_digest_schedule_set(PGconn *db, int digest_minute, bx_time_ms now,
                                           bx_error *err)
{
    char minute[12], now_text[40];
    snprintf(minute, sizeof(minute), "%d", digest_minute);
    bx_time_format_pg(now, now_text);
    const char *params[] = {minute, now_text};
    return exec_params(db,
                       "INSERT INTO notify.digest_schedule (digest_minute, updated_at) VALUES "
                       "($1::int, $2::timestamptz) ON CONFLICT (only_row) DO UPDATE SET "
                       "digest_minute = EXCLUDED.digest_minute, updated_at = EXCLUDED.updated_at",
                       2, params, NULL, err);
}

bx_status notify_store_prune_finished(PGconn *db, bx_time_ms now, int keep_days, int *deleted,
                                      bx_error *err)
{
    char days[16], now_text[40];
    snprintf(days, sizeof(days), "%d", keep_days);
    bx_time_format_pg(now, now_text);
    const char *params[] = {days, now_text};
    int n = 0, total = 0;
    *deleted = 0;
    bx_status s = exec_params(
        db,
        "DELETE FROM notify.receipt WHERE id IN (SELECT id FROM notify.receipt WHERE received_at "
        "< $2::timestamptz - make_interval(days => $1::int) LIMIT 10000)",
        2, params, &n, err);
    total += n;
    IFOK(s, exec_params(
                db,
                "DELETE FROM notify.notification n WHERE n.id IN (SELECT id FROM "
                "notify.notification WHERE state IN ('delivered', 'dead', 'digested') AND "
                "updated_at < $2::timestamptz - make_interval(days => $1::int) LIMIT 10000) AND "
                "NOT EXISTS (SELECT 1 FROM notify.notification t WHERE t.digest_id = n.id "
                "AND t.updated_at >= $2::timestamptz - make_interval(days => $1::int))",
                2, params, &n, err));
    total += s == BX_OK ? n : 0;
    IFOK(s,
         exec_params(db,
                     "DELETE FROM notify.request WHERE request_id IN (SELECT request_id FROM "
                     "notify.request WHERE received_at < $2::timestamptz - make_interval(days => "
                     "$1::int) LIMIT 10000)",
                     2, params, &n, err));
    total += s == BX_OK ? n : 0;
    *deleted = total;
    return s;
}
