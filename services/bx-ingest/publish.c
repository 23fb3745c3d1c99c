/* bx-ingest publish: deduplication by client event id, producing to Kafka, waiting for the
 * broker's acknowledgement, dead-lettering rejects, and the reply. */
#include "bx_log.h"
#include "dedup.h"
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#define DLQ_BODY_MAX (256 * 1024)

static bx_status base64(const unsigned char *in, size_t len, bx_buf *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bx_status s = BX_OK;
    for (size_t i = 0; i < len && s == BX_OK; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                     i + 1 < len ? tab[(v >> 6) & 63] : '=', i + 2 < len ? tab[v & 63] : '='};
        s = bx_buf_append(out, q, 4);
    }
    return s;
}

char *ingest_dlq_message(const ingest_ctx *ctx, const ingest_record *rec, const char *reason,
                         const char *error, const char *body, size_t body_len)
{
    char id[37], at[40];
    ingest_new_event_id(id);
    bx_time_format(ctx->now, at, sizeof(at));
    bx_buf b;
    bx_buf_init(&b, 2 * DLQ_BODY_MAX);
    bx_status s = bx_buf_printf(&b,
                                "{\"schema\":\"bx.dlq.v1\",\"event_id\":\"%s\","
                                "\"source\":\"bx-ingest\",\"endpoint\":",
                                id);
    IFOK(s, bx_buf_json_string(&b, ctx->endpoint));
    IFOK(s, bx_buf_puts(&b, ",\"school_id\":"));
    IFOK(s, ctx->school_id ? bx_buf_json_string(&b, ctx->school_id) : bx_buf_puts(&b, "null"));
    if (rec) {
        IFOK(s, rec->index >= 0 ? bx_buf_printf(&b, ",\"record_index\":%d", rec->index)
                                : bx_buf_puts(&b, ",\"record_index\":null"));
        IFOK(s, rec->line ? bx_buf_printf(&b, ",\"line\":%ld", rec->line)
                          : bx_buf_puts(&b, ",\"line\":null"));
        IFOK(s, bx_buf_puts(&b, ",\"field\":"));
        IFOK(s, bx_buf_json_string(&b, rec->field));
    } else {
        IFOK(s, bx_buf_puts(&b, ",\"record_index\":null,\"line\":null,\"field\":null"));
    }
    IFOK(s, bx_buf_puts(&b, ",\"reason\":"));
    IFOK(s, bx_buf_json_string(&b, reason));
    IFOK(s, bx_buf_puts(&b, ",\"error\":"));
    IFOK(s, bx_buf_json_string(&b, error));
    IFOK(s, bx_buf_puts(&b, ",\"record\":"));
    if (rec && rec->raw) {
        IFOK(s, bx_buf_puts(&b, rec->raw));
    } else if (body) {
        /* The body could not be read as records: keep its bytes so nothing is lost. */
        size_t n = body_len > DLQ_BODY_MAX ? DLQ_BODY_MAX : body_len;
        IFOK(s, bx_buf_puts(&b, "{\"body_base64\":\""));
        IFOK(s, base64((const unsigned char *)body, n, &b));
        IFOK(s, bx_buf_printf(&b, "\",\"body_bytes\":%zu,\"truncated\":%s}", body_len,
                              n < body_len ? "true" : "false"));
    } else {
        IFOK(s, bx_buf_puts(&b, "null"));
    }
    IFOK(s, bx_buf_printf(&b, ",\"received_at\":\"%s\"}", at));
    if (s != BX_OK) {
        bx_buf_free(&b);
        return NULL;
    }
    return bx_buf_steal(&b);
}

/* Distinct dedup keys of records with the given outcome (borrowed pointers). */
static size_t distinct_keys(const ingest_batch *batch, ingest_outcome only, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->count; i++) {
        const ingest_record *r = &batch->items[i];
        if (!r->dedup_key[0] || r->outcome != only)
            continue;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = strcmp(out[j], r->dedup_key) == 0;
        if (!seen)
            out[n++] = r->dedup_key;
    }
    return n;
}

bx_status ingest_publish_begin(ingest_batch *batch, ingest_publishing *pub)
{
    memset(pub, 0, sizeof(*pub));
    pub->keys = calloc(batch->count + 1, sizeof(*pub->keys));
    pub->seen = calloc(batch->count + 1, sizeof(*pub->seen));
    pub->slots = calloc(batch->count + 1, sizeof(*pub->slots));
    if (pub->keys == NULL || pub->seen == NULL || pub->slots == NULL) {
        ingest_publish_free(pub);
        return BX_ENOMEM;
    }
    pub->nkeys = distinct_keys(batch, INGEST_PENDING, pub->keys);
    return BX_OK;
}

void ingest_publish_free(ingest_publishing *pub)
{
    free(pub->keys);
    free(pub->seen);
    free(pub->slots);
    memset(pub, 0, sizeof(*pub));
}

void ingest_publish_mark(const ingest_ctx *ctx, ingest_batch *batch, ingest_publishing *pub,
                         bx_status checked)
{
    if (checked != BX_OK) {
        bx_warn("school %s: duplicate check skipped (database unavailable)", ctx->school_id);
        return;
    }
    for (size_t k = 0; k < pub->nkeys; k++)
        for (size_t i = 0; pub->seen[k] && i < batch->count; i++)
            if (batch->items[i].outcome == INGEST_PENDING &&
                strcmp(batch->items[i].dedup_key, pub->keys[k]) == 0)
                batch->items[i].outcome = INGEST_DUPLICATE;
}

void ingest_publish_send(const ingest_ctx *ctx, bx_producer *producer, ingest_batch *batch,
                         ingest_publishing *pub, bx_delivery_wait *wait)
{
    bx_delivery_slot *slots = pub->slots;
    for (size_t i = 0; i < batch->count; i++) {
        ingest_record *r = &batch->items[i];
        slots[i].err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
        if (r->outcome == INGEST_PENDING) {
            bx_delivery_slot_arm(&slots[i], wait);
            /* The message buffer goes to librdkafka as it is, without a copy. */
            if (bx_producer_send_owned(producer, r->topic, r->key, strlen(r->key), r->message,
                                       strlen(r->message), bx_delivery_slot_done,
                                       &slots[i]) == BX_OK)
                r->message = NULL;
            else
                bx_delivery_slot_done(&slots[i], RD_KAFKA_RESP_ERR__FAIL);
        } else if (r->outcome == INGEST_REJECTED) {
            char *dlq = ingest_dlq_message(ctx, r, r->reason, r->error, NULL, 0);
            const char *key = ctx->school_id ? ctx->school_id : "unknown";
            if (dlq) {
                bx_delivery_slot_arm(&slots[i], wait);
                if (bx_producer_send(producer, BX_TOPIC_DLQ, key, strlen(key), dlq, strlen(dlq),
                                     bx_delivery_slot_done, &slots[i]) != BX_OK)
                    bx_delivery_slot_done(&slots[i], RD_KAFKA_RESP_ERR__FAIL);
                free(dlq);
            }
        }
    }
}

static void remember_accepted(const ingest_ctx *ctx, dedup_batcher *dedup, ingest_batch *batch)
{
    /* A key whose records were not all accepted (a roll call half acknowledged) is not
     * remembered, so the client's retry publishes again; consumers deduplicate by event id. */
    for (size_t i = 0; i < batch->count; i++) {
        ingest_record *r = &batch->items[i];
        if (r->outcome != INGEST_FAILED || !r->dedup_key[0])
            continue;
        for (size_t j = 0; j < batch->count; j++)
            if (batch->items[j].outcome == INGEST_ACCEPTED &&
                strcmp(batch->items[j].dedup_key, r->dedup_key) == 0)
                batch->items[j].dedup_key[0] = '\0';
    }
    const char **keys = calloc(batch->count + 1, sizeof(*keys));
    size_t n = keys ? distinct_keys(batch, INGEST_ACCEPTED, keys) : 0;
    if (n && dedup_remember(dedup, ctx->school_id, keys, n, ctx->endpoint) != BX_OK)
        bx_warn("school %s: accepted event ids not remembered", ctx->school_id);
    free(keys);
}

void ingest_publish_end(const ingest_ctx *ctx, dedup_batcher *dedup, ingest_batch *batch,
                        ingest_publishing *pub)
{
    size_t dlq_failed = 0;
    for (size_t i = 0; i < batch->count; i++) {
        ingest_record *r = &batch->items[i];
        if (r->outcome == INGEST_PENDING)
            r->outcome =
                pub->slots[i].err == RD_KAFKA_RESP_ERR_NO_ERROR ? INGEST_ACCEPTED : INGEST_FAILED;
        else if (r->outcome == INGEST_REJECTED && pub->slots[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
            dlq_failed++;
    }
    if (dlq_failed)
        bx_error("school %s: %zu rejected records could not be dead-lettered", ctx->school_id,
                 dlq_failed);
    ingest_publish_free(pub);
    if (dedup)
        remember_accepted(ctx, dedup, batch);
}

bx_status ingest_reply(const ingest_batch *batch, bx_buf *out)
{
    int counts[5] = {0};
    for (size_t i = 0; i < batch->count; i++)
        counts[batch->items[i].outcome]++;
    bx_status s =
        bx_buf_printf(out, "{\"accepted\":%d,\"duplicates\":%d,\"rejected\":%d,\"failed\":%d",
                      counts[INGEST_ACCEPTED], counts[INGEST_DUPLICATE], counts[INGEST_REJECTED],
                      counts[INGEST_FAILED]);
    if (batch->summary)
        IFOK(s, bx_buf_printf(out, ",%s", batch->summary));
    IFOK(s, bx_buf_puts(out, ",\"results\":["));
    bool first = true;
    for (size_t i = 0; i < batch->count && s == BX_OK; i++) {
        const ingest_record *r = &batch->items[i];
        if (!r->reported)
            continue;
        static const char *const names[] = {"pending", "accepted", "duplicate", "rejected",
                                            "failed"};
        s = bx_buf_printf(out, "%s{\"index\":%d", first ? "" : ",", r->index);
        first = false;
        if (r->line)
            IFOK(s, bx_buf_printf(out, ",\"line\":%ld", r->line));
        IFOK(s, bx_buf_printf(out, ",\"status\":\"%s\"", names[r->outcome]));
        if (r->outcome == INGEST_REJECTED) {
            IFOK(s, bx_buf_puts(out, ",\"field\":"));
            IFOK(s, bx_buf_json_string(out, r->field));
            IFOK(s, bx_buf_printf(out, ",\"reason\":\"%s\",\"error\":", r->reason));
            IFOK(s, bx_buf_json_string(out, r->error));
        } else {
            IFOK(s, bx_buf_puts(out, ",\"event_id\":"));
            IFOK(s, bx_buf_json_string(out, r->event_id));
            if (r->outcome == INGEST_FAILED)
                IFOK(s, bx_buf_puts(out, ",\"error\":\"Kafka did not acknowledge in time; "
                                         "sending again is safe\""));
        }
        IFOK(s, bx_buf_puts(out, "}"));
    }
    IFOK(s, bx_buf_puts(out, "]}\n"));
    return s;
}
