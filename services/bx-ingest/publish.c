/* bx-ingest publish: deduplication by client event id, producing to Kafka, waiting for the
 * broker's acknowledgement, dead-lettering rejects, and the reply. */
#include "bx_dlq.h"
#include "bx_log.h"
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

const char *const ingest_topics[] = {BX_TOPIC_ATTENDANCE, BX_TOPIC_ACTIONS, BX_TOPIC_DLQ, NULL};

char *ingest_dlq_message(const ingest_ctx *ctx, const ingest_record *rec, const char *reason,
                         const char *error, const char *body, size_t body_len)
{
    char id[37];
    ingest_new_event_id(id);
    bx_dlq_letter l = {
        .event_id = id,
        .source = "bx-ingest",
        .endpoint = ctx->endpoint,
        .school_id = ctx->school_id,
        .record_index = rec ? rec->index : -1,
        .line = rec ? rec->line : -1,
        .field = rec ? rec->field : NULL,
        .reason = reason,
        .error = error,
        .record_kind = BX_DLQ_RECORD_JSON,
        .received_at = ctx->now,
    };
    if (rec && rec->raw) {
        l.record = rec->raw;
        l.record_len = strlen(rec->raw);
    } else if (body) {
        /* The body could not be read as records: keep its bytes so nothing is lost. */
        l.record = body;
        l.record_len = body_len;
        l.record_kind = BX_DLQ_RECORD_BASE64;
    }
    /* bx_dlq cuts a long record (the body or a record's raw JSON) to fit the topic */
    bx_buf b;
    bx_buf_init(&b, 2 * BX_DLQ_RECORD_LIMIT);
    bx_error err = {0};
    if (bx_dlq_build(&l, &b, &err) != BX_OK) {
        bx_buf_free(&b);
        return NULL;
    }
    return bx_buf_steal(&b);
}

/* Whom a log line is about: the school, or the person writing without one (an officer). */
static const char *writer_label(const ingest_ctx *ctx)
{
    const char *by = ingest_recorded_by(ctx);
    return ctx->school_id ? ctx->school_id : by ? by : "-";
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
        bx_log_warn("school %s: duplicate check skipped (database unavailable)", writer_label(ctx));
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

static void remember_accepted(const ingest_ctx *ctx, ingest_batch *batch,
                              ingest_remember_fn *remember, void *arg)
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
    if (n)
        remember(arg, ctx, keys, n);
    free(keys);
}

void ingest_publish_end(const ingest_ctx *ctx, ingest_batch *batch, ingest_publishing *pub,
                        ingest_remember_fn *remember, void *arg)
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
        bx_log_error("school %s: %zu rejected records could not be dead-lettered",
                     writer_label(ctx), dlq_failed);
    ingest_publish_free(pub);
    if (remember)
        remember_accepted(ctx, batch, remember, arg);
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
