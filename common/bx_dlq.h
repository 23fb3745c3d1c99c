/* bx_dlq: the one builder of a bx.dlq.v1 message (schemas/topics/bx.dlq.v1.schema.json), used by
 * every service that dead-letters an input. */
#ifndef BX_DLQ_H
#define BX_DLQ_H

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

/* The most bytes of a record a letter carries (JSON embedded as it is, or base64); a longer
 * record is cut, and the letter says so with the whole's length and SHA-256 (record_bytes,
 * record_sha256, record_truncated). With the error and the rest, a letter stays far under Kafka's
 * 1 MB message limit, so a record is never dropped for its size. */
#define BX_DLQ_RECORD_LIMIT (128 * 1024)
/* The same for a record written as a JSON string (TEXT, or the head of a cut JSON record), whose
 * escapes may take up to six bytes a byte. */
#define BX_DLQ_TEXT_LIMIT (32 * 1024)
/* The longest error a letter carries (the schema's maxLength); longer ones are cut. */
#define BX_DLQ_ERROR_MAX 1000
/* Digit runs at least this long are masked in records (phones, id numbers, bank cards). */
#define BX_DLQ_MASK_DIGITS 7

/* How the "record" member carries the input as received. */
typedef enum bx_dlq_record_kind {
    /* The bytes are JSON text and are embedded as they are; cut (see record_max), the head is a
     * JSON string. */
    BX_DLQ_RECORD_JSON = 0,
    /* The bytes are not JSON (or not known to be): a JSON string if they are valid UTF-8 without
     * NUL, else null. */
    BX_DLQ_RECORD_TEXT,
    /* Any bytes: {"body_base64":"...","body_bytes":<record_len>,"truncated":<bool>}, the base64
     * of at most record_max bytes. */
    BX_DLQ_RECORD_BASE64
} bx_dlq_record_kind;

/* One dead letter. Every pointer is borrowed for the call only. */
typedef struct bx_dlq_letter {
    const char *event_id;   /* required; see bx_dlq_event_id */
    const char *source;     /* required: "bx-escalate" */
    const char *endpoint;   /* required: the topic or HTTP path the input came from */
    const char *school_id;  /* NULL: null */
    long long record_index; /* < 0: null */
    long long line;         /* <= 0: null (lines count from 1) */
    const char *field;      /* NULL: null; "" is written as "" */
    const char *reason;     /* required: one of the schema's reason codes */
    const char *error;      /* required: what was wrong, said for a person */
    const char *record;     /* the input as received, record_len bytes; NULL: null */
    size_t record_len;
    bx_dlq_record_kind record_kind;
    /* A record longer than this is cut to it (at a character's start for a string), and
     * record_bytes, record_sha256 and record_truncated follow the record. 0, or more than the
     * kind's limit (BX_DLQ_RECORD_LIMIT, BX_DLQ_TEXT_LIMIT): that limit. */
    size_t record_max;
    bx_time_ms received_at; /* written as bx_time_format writes it */
} bx_dlq_letter;

/* Appends the message for l to out. The record's digit runs of BX_DLQ_MASK_DIGITS or more are
 * masked (bx_dlq_mask_digits), and the error's phones and id numbers as bx_log_mask masks them;
 * the digest of a cut record is of the bytes as received. The letter takes at most about
 * 200 KiB, so a buffer of 256 KiB always holds it (BX_ENOMEM past the maximum the caller chose). On
 * an error, err says so ("cannot build a dead letter") and out holds a partial message the caller
 * discards.
 *
 * How each service's dead letter maps onto a letter (all with received_at = the time it read
 * the input, and out initialised with a maximum of 4 * 65536 bytes, 512 KiB for bx-ingest):
 * - bx-escalate (a rejected Kafka message): event_id from bx_dlq_event_id("bx-escalate", topic,
 *   partition, offset); endpoint = topic; school_id, field NULL; record_index, line -1;
 *   record = payload, len; kind = TEXT when the payload was not JSON ("malformed"), else JSON;
 *   record_max = 65536.
 * - bx-notify: as bx-escalate with "bx-notify", and field = the request's field when it is not
 *   empty, else NULL.
 * - bx-score: event_id from bx_dlq_event_id("bx-score", NULL, partition, offset) (no topic in
 *   it); endpoint = the consumed topic; kind = JSON with record_max = 0 when the payload parsed
 *   as JSON, else TEXT with record_max = 65536; reason "invalid_value" or "malformed".
 * - bx-ingest, one rejected record: event_id = a new UUID; endpoint = the HTTP path; school_id
 *   as the request named it (or NULL); record_index = the record's index (-1 for the request);
 *   line = its CSV line (0 for JSON, written as null); field = the record's field (a char
 *   array, so "" stays ""); record = its raw JSON text, kind JSON, record_max 0 (NULL raw: null).
 * - bx-ingest, a body that could not be read as records: record_index, line -1, field NULL;
 *   record = the body, kind BASE64, record_max 0 (the limit). */
bx_status bx_dlq_build(const bx_dlq_letter *l, bx_buf *out, bx_error *err) BX_MUSTCHECK;

/* Masks in place, in s (len bytes), every run of BX_DLQ_MASK_DIGITS or more digits that is not
 * glued to an ASCII letter (a registry code such as S10010301 is kept): an id number (17 digits
 * and a digit or X) as 110101********123X, a mobile phone as 138****5678, any other run keeping
 * its first two and last two digits. With json, digits of a number outside strings become 0
 * instead of '*', so JSON text stays JSON. */
void bx_dlq_mask_digits(char *s, size_t len, bool json);

/* "dlq:<source>:<topic>:<partition>:<offset>", or "dlq:<source>:<partition>:<offset>" when topic
 * is NULL; the topic is cut to 60 bytes. An id that does not fit size is cut (size 160 always
 * fits). */
void bx_dlq_event_id(char *out, size_t size, const char *source, const char *topic, int partition,
                     long long offset);

#endif
