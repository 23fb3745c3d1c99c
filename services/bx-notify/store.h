/* store (notify_store_*, notify_outbox_*): bx-notify's rows in PostgreSQL (schema notify,
 * schemas/sql/0005_notify.sql): requests taken, notifications with their state, claims with a
 * lease, receipts, and the outbox of status messages and dead letters relayed to Kafka. Every state
 * change and its status message are written in one transaction. */
#ifndef BX_NOTIFY_STORE_H
#define BX_NOTIFY_STORE_H

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_kafka.h"
#include "bx_outbox.h"
#include "bx_status.h"
#include "dispatch.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#define NOTIFY_STORE_OWNER_MAX 128

/* A notification as claimed or read for a change. */
typedef struct notify_store_row {
    int64_t id;
    char notification_id[32];
    char request_id[129];
    char recipient[33];        /* phone (SMS), staff id (task) or "none" */
    char recipient_masked[33]; /* what status messages and logs show */
    bool to_guardian;
    char channel[8]; /* sms, task or digest */
    char template_name[65];
    char sign_name[101];
    char body[4001];
    dispatch_state state;
    int attempt;
    bx_time_ms last_send_at; /* 0: never sent */
    char provider_message_id[129];
} notify_store_row;

/* A new notification. */
typedef struct notify_store_new {
    const char *request_id;
    const char *recipient, *recipient_masked;
    bool to_guardian;
    const char *channel;    /* sms, task or digest */
    const char *staff_id;   /* NULL for guardians */
    const char *student_id; /* may be NULL */
    const char *case_id;    /* may be NULL */
    const char *template_name;
    const char *sign_name;
    const char *body;
    dispatch_state state; /* queued, collected or dead */
    bx_time_ms due_at;    /* for queued */
    const char *reason;   /* for dead; may be NULL */
} notify_store_new;

/* Status messages name the provider adapter (or "task" for collected tasks). */
typedef struct notify_store_ctx {
    const char *provider;     /* borrowed */
    const char *status_topic; /* borrowed */
} notify_store_ctx;

/* Inserts the request's row; *fresh false when it was taken before (a redelivery). Inside the
 * caller's transaction. */
bx_status notify_store_request_take(PGconn *db, const char *request_id, bx_time_ms now, bool *fresh,
                                    bx_error *err) BX_MUSTCHECK;
bx_status notify_store_request_count(PGconn *db, const char *request_id, int recipients,
                                     bx_error *err) BX_MUSTCHECK;
/* Inserts a notification (nothing when (request_id, recipient) exists) and its first status
 * message; *id is 0 when it existed. Inside the caller's transaction. */
bx_status notify_store_insert(PGconn *db, const notify_store_ctx *ctx, const notify_store_new *n,
                              bx_time_ms now, int64_t *id, bx_error *err) BX_MUSTCHECK;

/* One request of a batch taken together (notify_store_take_batch): its id (distinct within the
 * batch) and its notifications (count of them, at least one: "none" when nobody is reached);
 * fresh and dead are set by the call. Borrowed for the call. */
typedef struct notify_store_take {
    const char *request_id;
    const notify_store_new *notifications;
    int count;
    bool fresh; /* out: the request had not been taken before; its notifications are written */
    int dead;   /* out: of those, written dead */
} notify_store_take;

/* Takes n requests in the caller's transaction, in three statements whatever n: the request rows
 * (recipients = count) where there are none yet, the notifications of those that were new (as
 * notify_store_insert writes them, in order) and their first status messages, in order, on the
 * outbox. A request taken before (a redelivery) writes nothing and has fresh false. */
bx_status notify_store_take_batch(PGconn *db, const notify_store_ctx *ctx, notify_store_take *takes,
                                  int n, bx_time_ms now, bx_error *err) BX_MUSTCHECK;
/* Which of n request ids were taken before: seen[i] true for those with a row. */
bx_status notify_store_requests_seen(PGconn *db, const char *const *request_ids, int n, bool *seen,
                                     bx_error *err) BX_MUSTCHECK;

/* Claims up to max due notifications (queued, sending, unknown or sent with due_at <= now and no
 * live lease) for owner until now + lease_ms, skipping rows another claimer holds. Caller frees
 * *rows with free(). */
bx_status notify_store_claim(PGconn *db, const char *owner, bx_time_ms now, int64_t lease_ms,
                             int max, notify_store_row **rows, int *count,
                             bx_error *err) BX_MUSTCHECK;

/* Opens a transaction, locks the recipient's daily count (an advisory lock, so replicas agree)
 * and counts the other notifications sent to it on now's local day: those the provider took or
 * may have taken (delivered or not), not those it refused; without count (no daily cap) it only
 * opens the transaction. On an error the transaction is rolled back; else the caller ends it
 * with notify_store_apply (which commits either way). */
bx_status notify_store_begin_send(PGconn *db, const notify_store_row *row, bx_time_ms now,
                                  bool count, int *sent_today, bx_error *err) BX_MUSTCHECK;

/* notify_store_begin_send's count inside the caller's open transaction (the recipient's lock is
 * held until it ends). */
bx_status notify_store_sent_today(PGconn *db, const notify_store_row *row, bx_time_ms now,
                                  int *sent_today, bx_error *err) BX_MUSTCHECK;
/* notify_store_apply's change inside the caller's open transaction, which it neither commits nor
 * rolls back. */
bx_status notify_store_change(PGconn *db, const notify_store_ctx *ctx, const notify_store_row *row,
                              const char *owner, const dispatch_output *out,
                              const char *provider_message_id, bx_time_ms now, bool *applied,
                              bx_error *err) BX_MUSTCHECK;

/* One decision of a batch for notify_store_changes: what notify_store_change is given for one
 * row. Borrowed for the call. */
typedef struct notify_store_decision {
    const notify_store_row *row;
    const dispatch_output *out;
    const char *provider_message_id; /* may be NULL */
    bx_time_ms at;                   /* when it was decided */
    bool applied;                    /* out */
} notify_store_decision;

/* notify_store_change for n rows in ONE statement (autocommit, or in the caller's transaction):
 * each row changed as notify_store_change would change it (expected state and attempt, claimed
 * by owner when owner is not NULL), and the status messages of those changed written to the
 * outbox in the order of the decisions. The rows must be distinct. */
bx_status notify_store_changes(PGconn *db, const notify_store_ctx *ctx, const char *owner,
                               notify_store_decision *decisions, int n, bx_error *err) BX_MUSTCHECK;
/* notify_store_sent_today for several recipients at once, in the caller's open transaction: each
 * distinct recipient's lock taken in one order (the locks' keys ascending, as every caller takes
 * them, so two batches cannot wait for each other), then sent_today[i] = the day's sends to
 * recipients[i] as notify_store_sent_today counts them (rows still queued are not counted). */
bx_status notify_store_sent_today_many(PGconn *db, const char *const *recipients, int n,
                                       bx_time_ms now, int *sent_today, bx_error *err) BX_MUSTCHECK;

/* Takes back the intent of a send that was never made: row (state sending with row->attempt,
 * claimed by owner) is queued again at now with attempt_before, its claim released, so it is
 * sent as if the intent had not been recorded (no status message: the intent had none). *undone
 * is false when the row had moved on. Autocommit, or in the caller's transaction. */
bx_status notify_store_unsend(PGconn *db, const notify_store_row *row, const char *owner,
                              int attempt_before, bx_time_ms now, bool *undone,
                              bx_error *err) BX_MUSTCHECK;

/* Applies a decision to row (expected in row->state with row->attempt, and when owner is not
 * NULL, still claimed by owner): state, attempt, due time, reason, provider message id, the send
 * day when it becomes sending, and the status message. *applied is false when the row had moved
 * on (nothing is written then). in_tx: a transaction is open (from notify_store_begin_send or
 * notify_store_lock_row); it is committed either way. */
bx_status notify_store_apply(PGconn *db, const notify_store_ctx *ctx, const notify_store_row *row,
                             const char *owner, const dispatch_output *out,
                             const char *provider_message_id, bx_time_ms now, bool in_tx,
                             bool *applied, bx_error *err) BX_MUSTCHECK;

/* Opens a transaction and reads the notification by notification id, locked; BX_ENOTFOUND when
 * there is none (the transaction is then rolled back). */
bx_status notify_store_lock_row(PGconn *db, const char *notification_id, notify_store_row *row,
                                bx_error *err) BX_MUSTCHECK;

/* Records a receipt as received; *fresh false for a duplicate. Inside the caller's transaction. */
bx_status notify_store_receipt(PGconn *db, const char *notification_id, const char *message_id,
                               const char *state, const char *reason, bx_time_ms now, bool *fresh,
                               bx_error *err) BX_MUSTCHECK;

/* A receipt as posted, for notify_store_receipts (borrowed for the call). */
typedef struct notify_store_receipt_in {
    const char *notification_id, *message_id, *state, *reason;
} notify_store_receipt_in;

/* notify_store_receipt for n receipts in one statement, in the caller's transaction: fresh[i] is
 * false for a duplicate of one recorded before or earlier in the list. */
bx_status notify_store_receipts(PGconn *db, const notify_store_receipt_in *receipts, int n,
                                bx_time_ms now, bool *fresh, bx_error *err) BX_MUSTCHECK;

/* notify_store_lock_row for n notification ids (they may repeat) in one statement, in the
 * caller's open transaction, the rows locked in id order: rows[i] is ids[i]'s and found[i] says
 * whether there is one. */
bx_status notify_store_lock_rows(PGconn *db, const char *const *ids, int n, notify_store_row *rows,
                                 bool *found, bx_error *err) BX_MUSTCHECK;

/* bx_outbox_add to notify.outbox (see bx_outbox.h): adds a message (inside the caller's
 * transaction, or on its own), dated now; a NULL or empty key is "unknown". */
bx_status notify_outbox_add(PGconn *db, const char *topic, const char *key, const char *payload,
                            bx_time_ms now, bx_error *err) BX_MUSTCHECK;
/* bx_outbox_relay of notify.outbox (see bx_outbox.h): relays up to max (1 to
 * BX_OUTBOX_BATCH_MAX) unsent outbox messages in id order (one relay at a time over all replicas),
 * marking those Kafka acknowledged; *sent counts them. With a cursor (NULL: none) it reads after
 * the rows it relayed, as bx_outbox_cursor says. Outside a transaction; BX_ETRANSIENT when some
 * were not acknowledged (they stay unsent). */
bx_status notify_outbox_relay(PGconn *db, bx_producer *producer, bx_outbox_cursor *cursor, int max,
                              int timeout_ms, int *sent, bx_error *err) BX_MUSTCHECK;

/* Deletes up to 10,000 relayed outbox rows created before `before`; *deleted counts them. */
bx_status notify_outbox_prune(PGconn *db, bx_time_ms before, int *deleted,
                              bx_error *err) BX_MUSTCHECK;

/* Builds a bx.notify.status.v1 message. */
bx_status notify_store_status_json(const notify_store_ctx *ctx, const char *request_id,
                                   const char *notification_id, const char *status,
                                   const char *provider, const char *provider_message_id,
                                   int attempt, const char *reason, const char *recipient_masked,
                                   bx_time_ms at, bx_buf *out) BX_MUSTCHECK;

/* Digests: the staff ids with tasks collected before cutoff (today's digest time), up to max;
 * and, inside the caller's transaction, one person's such tasks, locked, oldest first. */
typedef struct notify_store_task {
    int64_t id;
    char notification_id[32];
    char request_id[129];
    char body[4001];
} notify_store_task;
bx_status notify_store_digest_staff(PGconn *db, bx_time_ms cutoff, int max, char (*staff)[33],
                                    int *count, bx_error *err) BX_MUSTCHECK;
bx_status notify_store_digest_tasks(PGconn *db, const char *staff_id, bx_time_ms cutoff, int max,
                                    notify_store_task *tasks, int *count,
                                    bx_error *err) BX_MUSTCHECK;
/* Open tasks from earlier days (bx-escalate's cases.task, created before `older`, case open):
 * who has some without a digest since `since`, and one person's, oldest deadline first. A task
 * without an owner staff id is the role's at the case's school, township or county. */
typedef struct notify_store_open_task {
    char kind[65];
    bx_time_ms due_at;
    bool overdue;
    char class_name[101];
    char student[65];
} notify_store_open_task;
bx_status notify_store_open_task_staff(PGconn *db, bx_time_ms older, bx_time_ms since, int max,
                                       char (*staff)[33], int *count, bx_error *err) BX_MUSTCHECK;
bx_status notify_store_open_tasks(PGconn *db, const char *staff_id, bx_time_ms older, int max,
                                  notify_store_open_task *tasks, int *count,
                                  bx_error *err) BX_MUSTCHECK;
/* Opens the transaction of one person's digest: locks the person (an advisory lock, so replicas
 * make one digest each) and says whether they had one at or after since. */
bx_status notify_store_digest_begin(PGconn *db, const char *staff_id, bx_time_ms since, bool *had,
                                    bx_error *err) BX_MUSTCHECK;

/* Marks the tasks digested into digest_id with a status message each. */
bx_status notify_store_digest_mark(PGconn *db, const notify_store_ctx *ctx,
                                   const notify_store_task *tasks, int count, int64_t digest_id,
                                   const char *digest_notification_id, const char *staff_id,
                                   bx_time_ms now, bx_error *err) BX_MUSTCHECK;

/* Retention: deletes up to 10000 finished notifications (delivered, dead, digested; a digest only
 * once no kept task points at it), receipts and taken requests older than keep_days before now
 * (the project clock, which wrote their times); *deleted counts the rows. A request deleted is
 * forgotten: the requests topic's retention must be shorter than keep_days, or a redelivery would
 * be sent again. */
bx_status notify_store_prune_finished(PGconn *db, bx_time_ms now, int keep_days, int *deleted,
                                      bx_error *err) BX_MUSTCHECK;

/* Records the digest time (minutes after local midnight) in notify.digest_schedule, where
 * notify.settle_pending finds it (migration 0016). */
bx_status notify_store_digest_schedule_set(PGconn *db, int digest_minute, bx_time_ms now,
                                           bx_error *err) BX_MUSTCHECK;

#endif
