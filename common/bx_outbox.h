/* bx_outbox: a transactional outbox table (rows written in the transaction of the change that
 * causes them) and its relay to Kafka, at least once and in id order. */
#ifndef BX_OUTBOX_H
#define BX_OUTBOX_H

#include "bx_calendar.h"
#include "bx_kafka.h"
#include "bx_status.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#define BX_OUTBOX_BATCH_MAX 10000

typedef void(bx_outbox_hook_fn)(void *arg);

/* Where a relay starts reading (bx_outbox_relay_opts.cursor). Rows of id <= after were relayed,
 * or were not yet committed when a relay read past them: a transaction that took its ids before
 * another's and committed after it. A scan from the start, at most rescan_ms after the last one,
 * finds those. Without a cursor every relay reads from the start, and steps over the unsent-rows
 * index's entries of every row relayed since the table was last vacuumed: during a burst of
 * tens of thousands of rows each relay then cost more than the rows it sent. Start it zeroed with
 * rescan_ms set; the relay keeps it. */
typedef struct bx_outbox_cursor {
    int64_t after;
    int rescan_ms;          /* how long a row committed out of id order may wait, at most */
    long long rescan_at_ms; /* bx_monotonic_ms() of the next scan from the start; 0: the next */
} bx_outbox_cursor;

/* What to relay and how. The table must have the columns id (bigint, the order), topic, msg_key,
 * payload (text) and sent_at (timestamptz, NULL until relayed). */
typedef struct bx_outbox_relay_opts {
    /* "schema.name" or "name": lower-case unquoted identifiers of 1 to 63 bytes ([a-z_][a-z0-9_]*),
     * since it is put into the SQL text; anything else is refused (BX_EINVAL). Borrowed. */
    const char *table;
    /* The key of the transaction-scoped advisory lock that makes one relay of this table at a
     * time over every replica; a key of its own per table. */
    int64_t lock_key;
    int max;        /* rows per relay, 1 to BX_OUTBOX_BATCH_MAX */
    int timeout_ms; /* how long to wait for the broker's acknowledgements */
    /* Read the rows FOR UPDATE SKIP LOCKED: a row another transaction holds waits for a later
     * relay. Without it the rows are read unlocked (the advisory lock already keeps relays apart)
     * and marking one another transaction holds waits for it. */
    bool lock_rows;
    /* NULL, or called once a batch was acknowledged and before it is marked sent (a test kills the
     * process there). Not called when there were no rows or the wait timed out. */
    bx_outbox_hook_fn *acked_hook;
    void *acked_hook_arg;
    /* NULL: every relay reads from the first unsent row. Else read after cursor->after, and from
     * the start when rescan_at_ms has come; moved by the relay. One relay uses it at a time. */
    bx_outbox_cursor *cursor;
} bx_outbox_relay_opts;

/* One message to queue; every string is borrowed for the call. */
typedef struct bx_outbox_message {
    const char *topic;   /* 1 to 100 bytes */
    const char *key;     /* the Kafka key, 1 to 128 bytes; NULL or "" is written as "unknown" */
    const char *payload; /* 1 to 1,000,000 bytes */
    /* NULL: the table has no event_id column. Else 1 to 128 bytes, and the table's unique
     * event_id makes a second add with the same id change nothing. */
    const char *event_id;
    /* > 0: written to the created_at column (so a driven clock's time is kept); 0: the column's
     * default. */
    bx_time_ms created_at;
} bx_outbox_message;

/* Queues m in table ("schema.name", checked as for the relay) in the caller's open transaction,
 * so a rollback leaves nothing to send. The SQL is
 *   INSERT INTO <table> (topic, msg_key, payload[, event_id][, created_at]) VALUES (...)
 *   [ON CONFLICT (event_id) DO NOTHING]
 * *added (may be NULL) is 1 when a row was queued, 0 when the event id was there already.
 * BX_EINVAL (nothing sent to PostgreSQL) for a bad table name or a string out of its bounds:
 * "outbox <topic|key|payload|event_id> must be 1 to <n> bytes".
 * bx-escalate's cases.outbox: event_id set, created_at 0. bx-notify's notify.outbox: event_id
 * NULL, created_at = the clock's now. */
bx_status bx_outbox_add(PGconn *db, const char *table, const bx_outbox_message *m, int *added,
                        bx_error *err) BX_MUSTCHECK;

/* Sends up to opts->max unsent rows of opts->table in id order, waits up to opts->timeout_ms for
 * the broker's acknowledgements and marks the acknowledged ones sent, all in one transaction, so
 * it must be called outside a transaction on db. A relay that finds the advisory lock taken
 * (another is sending) sends nothing and returns BX_OK with *sent 0. A produce the producer refuses
 * stops the batch there: the rows after it wait for the next relay, so the order holds. What was
 * acknowledged is committed also when some were not (BX_ETRANSIENT then; *sent counts the
 * acknowledged). A crash between the acknowledgement and the commit sends the batch again on the
 * next relay (consumers deduplicate). On BX_ETIMEOUT nothing is marked: deliveries still in flight
 * write into memory that is left to them on purpose (a small leak on a rare path). db and producer
 * are borrowed; opts is borrowed for the call. */
bx_status bx_outbox_relay(PGconn *db, bx_producer *producer, const bx_outbox_relay_opts *opts,
                          int *sent, bx_error *err) BX_MUSTCHECK;

#endif
