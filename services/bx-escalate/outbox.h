/* outbox (escalate_outbox_*): messages written in the transaction of the case change that causes
 * them (cases.outbox), relayed to Kafka at least once and in order; consumers deduplicate by event
 * id, so the effect is exactly once. */
#ifndef BX_ESCALATE_OUTBOX_H
#define BX_ESCALATE_OUTBOX_H

#include "bx_kafka.h"
#include "bx_outbox.h"
#include "bx_status.h"

#include <libpq-fe.h>

/* Queues one message: topic, Kafka key (the student id, or the staff id for staff-only requests),
 * event_id (the payload's event_id or request_id) and the JSON payload, all borrowed. Runs in the
 * caller's open transaction, so a rollback leaves nothing to send. A second add with the same
 * event_id changes nothing (*added, which may be NULL, is 0 then, 1 when queued). */
bx_status escalate_outbox_add(PGconn *db, const char *topic, const char *key, const char *event_id,
                              const char *payload, int *added, bx_error *err) BX_MUSTCHECK;

/* bx_outbox_relay of cases.outbox (see bx_outbox.h): sends up to max (1 to BX_OUTBOX_BATCH_MAX)
 * unsent messages in id order, waits up to timeout_ms for the broker's acknowledgements, and marks
 * the acknowledged ones sent, in one transaction that locks the rows (FOR UPDATE SKIP LOCKED).
 * Only one relay sends at a time (a transaction-scoped advisory lock), so per-key order holds with
 * several replicas; a relay that finds the lock taken sends nothing and returns BX_OK with *sent 0.
 * A crash between the acknowledgement and the commit sends the batch again on the next relay (the
 * same event ids). Must be called outside a transaction; the producer is borrowed. BX_ETRANSIENT
 * when some messages were not acknowledged (they stay unsent and *sent counts the others). */
bx_status escalate_outbox_relay(PGconn *db, bx_producer *producer, int max, int timeout_ms,
                                int *sent, bx_error *err) BX_MUSTCHECK;

/* Unsent messages, for settle checks and metrics. */
bx_status escalate_outbox_pending(PGconn *db, long long *count, bx_error *err) BX_MUSTCHECK;

/* For tests: called in escalate_outbox_relay after the broker acknowledged a batch and before it
 * is marked sent (a test kills the process there). NULL removes it. Not thread-safe: set it
 * before relaying. */
void escalate_outbox_set_acked_hook(bx_outbox_hook_fn *fn, void *arg);

#endif
