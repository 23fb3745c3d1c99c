/* bx-ingest: validation of incoming records into normalised Kafka messages, and their publishing.
 */
#ifndef BX_INGEST_H
#define BX_INGEST_H

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_kafka.h"
#include "bx_registry.h"
#include "bx_status.h"
#include "dedup.h"

#include <stdbool.h>

/* Outcome of one record of a request. */
typedef enum ingest_outcome {
    INGEST_PENDING,   /* valid, not yet published */
    INGEST_ACCEPTED,  /* Kafka acknowledged it */
    INGEST_DUPLICATE, /* its event id was accepted before: nothing published */
    INGEST_REJECTED,  /* invalid: answered with the error and sent to the dead-letter topic */
    INGEST_FAILED     /* valid but Kafka did not acknowledge in time: safe to retry */
} ingest_outcome;

typedef struct ingest_record {
    int index; /* position in the request (JSON array index or CSV data row), -1 for the request */
    long line; /* CSV line, 0 for JSON */
    ingest_outcome outcome;
    /* Rejected: */
    char field[96];     /* "records[3].date" */
    const char *reason; /* one of the bx.dlq.v1 reasons */
    char error[320];
    char *raw; /* the record as received, as JSON text (owned) */
    /* Valid: */
    const char *topic;
    char key[BX_ID_MAX + 1];
    char event_id[136];
    char student_id[BX_ID_MAX + 1];
    char *message; /* normalised JSON (owned) */
    /* Non-empty when the client named the event: repeated ones are duplicates. */
    char dedup_key[80];
    bool reported; /* false for records the reply does not list one by one (present students) */
} ingest_record;

typedef struct ingest_batch {
    ingest_record *items;
    size_t count, cap;
    char *summary; /* extra JSON members for the reply (roll call totals), owned, may be NULL */
} ingest_batch;

void ingest_batch_init(ingest_batch *b);
void ingest_batch_free(ingest_batch *b);

/* Who sent the request and when: the facts validation needs, all borrowed. */
typedef struct ingest_ctx {
    const bx_registry *registry;
    const char *school_id;     /* from the credential */
    const char *credential_id; /* recorded_by */
    bx_time_ms now;
    const char *endpoint;
} ingest_ctx;

/* Whole-request problems (unreadable body, missing "records") are returned as BX_EINVAL with
 * err->msg; everything else is per record in the batch. */
bx_status ingest_parse_attendance_json(const ingest_ctx *ctx, const char *body, size_t len,
                                       ingest_batch *out, bx_error *err) BX_MUSTCHECK;
bx_status ingest_parse_attendance_csv(const ingest_ctx *ctx, const char *body, size_t len,
                                      ingest_batch *out, bx_error *err) BX_MUSTCHECK;
/* A roll call: whole-call problems (unknown class, bad date) return BX_EINVAL with err->msg
 * starting with the field name, and a reason in *reason. */
bx_status ingest_parse_rollcall(const ingest_ctx *ctx, const char *body, size_t len,
                                ingest_batch *out, const char **reason, bx_error *err) BX_MUSTCHECK;
bx_status ingest_parse_leave(const ingest_ctx *ctx, const char *body, size_t len, ingest_batch *out,
                             bx_error *err) BX_MUSTCHECK;
bx_status ingest_parse_actions(const ingest_ctx *ctx, const char *body, size_t len,
                               ingest_batch *out, bx_error *err) BX_MUSTCHECK;

/* Builds a bx.dlq.v1 message for a rejected record (or, with rec NULL, for a whole request whose
 * body is attached as base64, at most 256 KiB of it). Caller frees. */
char *ingest_dlq_message(const ingest_ctx *ctx, const ingest_record *rec, const char *reason,
                         const char *error, const char *body, size_t body_len);

/* Publishing a validated batch without blocking, in steps (the server suspends the request
 * between them, so no thread waits for PostgreSQL or Kafka):
 * 1. ingest_publish_begin collects the distinct client event ids (pub->keys, pub->nkeys).
 * 2. When there are any: their duplicate check (dedup_check_async into pub->seen), then
 *    ingest_publish_mark with its status, which marks repeated records duplicate (a failed check
 *    marks nothing: consumers deduplicate by event id).
 * 3. ingest_publish_send produces every valid record and dead-letters every rejected one, each on
 *    its own slot armed on wait; the caller then seals wait.
 * 4. Once wait is complete, ingest_publish_end sets each outcome from Kafka's verdict (accepted or
 *    failed), remembers the accepted ids and frees pub. ingest_publish_free frees pub without. */
typedef struct ingest_publishing {
    const char **keys; /* borrowed from the batch's records */
    bool *seen;
    size_t nkeys;
    bx_delivery_slot *slots; /* one per record */
} ingest_publishing;
bx_status ingest_publish_begin(ingest_batch *batch, ingest_publishing *pub) BX_MUSTCHECK;
void ingest_publish_mark(const ingest_ctx *ctx, ingest_batch *batch, ingest_publishing *pub,
                         bx_status checked);
void ingest_publish_send(const ingest_ctx *ctx, bx_producer *producer, ingest_batch *batch,
                         ingest_publishing *pub, bx_delivery_wait *wait);
void ingest_publish_end(const ingest_ctx *ctx, dedup_batcher *dedup, ingest_batch *batch,
                        ingest_publishing *pub);
void ingest_publish_free(ingest_publishing *pub);

/* Writes the JSON reply for a published batch. */
bx_status ingest_reply(const ingest_batch *batch, bx_buf *out) BX_MUSTCHECK;

/* A random event id (UUID v4 text). */
void ingest_new_event_id(char out[37]);

#endif
