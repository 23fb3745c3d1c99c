/* timers: bx-escalate's durable deadlines in cases.timer, shared safely by several replicas. */
#ifndef BX_ESCALATE_TIMERS_H
#define BX_ESCALATE_TIMERS_H

#include "bx_calendar.h"
#include "bx_status.h"

#include <libpq-fe.h>
#include <stdint.h>

/* Lengths the table allows (schemas/sql/0004_cases.sql). */
#define TIMERS_KEY_MAX   200
#define TIMERS_OWNER_MAX 128

/* One claimed timer, as timers_claim returns it. */
typedef struct timers_timer {
    int64_t id;
    char key[TIMERS_KEY_MAX + 1];
    int64_t case_id; /* 0 when the timer belongs to no case */
    char kind[65];
    char *payload; /* JSON object text; owned by the list it is in */
    bx_time_ms due_at;
    bx_time_ms lease_until;
    int attempts; /* claims so far, this one included */
} timers_timer;

typedef struct timers_list {
    timers_timer *items;
    int count;
} timers_list;

/* Frees the items (and their payloads) and empties the list; a zeroed list is fine. */
void timers_list_free(timers_list *list);

/* Schedules a timer unless one with the same key exists (then nothing changes, BX_OK): the key is
 * unique per case, stage and deadline, so a replayed step schedules nothing twice. case_id <= 0
 * means no case. kind is NULL for "deadline"; payload NULL for "{}" (a JSON object, for fire_fn).
 * Runs inside the caller's transaction when there is one. *created (may be NULL) is 1 when a row
 * was inserted. */
bx_status timers_schedule(PGconn *db, const char *key, int64_t case_id, bx_time_ms due_at,
                          bx_error *err) BX_MUSTCHECK;
bx_status timers_schedule_with(PGconn *db, const char *key, int64_t case_id, bx_time_ms due_at,
                               const char *kind, const char *payload, int *created,
                               bx_error *err) BX_MUSTCHECK;

/* Cancels an unfired timer (marks it fired and cancelled), in the caller's transaction when there
 * is one; a missing or already fired timer is not an error. *cancelled (may be NULL) is 1 when a
 * timer was cancelled now. */
bx_status timers_cancel(PGconn *db, const char *key, bx_time_ms now, int *cancelled,
                        bx_error *err) BX_MUSTCHECK;

/* Claims up to max timers due at `now` that nobody holds (never claimed, or lease ended before
 * now), earliest first, for owner_id until now + lease_ms. Rows another claimer is claiming at the
 * same moment are skipped (FOR UPDATE SKIP LOCKED), so concurrent claimers get disjoint sets.
 * Must run outside a transaction (it commits on its own). On success *out holds the claims
 * (caller frees with timers_list_free); on failure *out is empty. */
bx_status timers_claim(PGconn *db, const char *owner_id, bx_time_ms now, int64_t lease_ms, int max,
                       timers_list *out, bx_error *err) BX_MUSTCHECK;

/* Called inside the firing's transaction: writes the case change and its outbox rows on db and
 * returns BX_OK to commit them with the timer's fired mark, or an error to roll all back. The timer
 * is borrowed for the call. It must not commit or roll back. */
typedef bx_status(timers_fire_fn)(PGconn *db, const timers_timer *timer, void *arg, bx_error *err);

/* Fires one claimed timer exactly once: BEGIN; locks the row and checks it is unfired and still
 * claimed by owner_id; fire_fn; marks it fired at now; COMMIT. BX_ECONFLICT (fire_fn not called)
 * when it was fired already or another claimer took it over. When fire_fn or the commit fails the
 * transaction is rolled back and the timer is tried again after its lease. Must be called outside
 * a transaction. */
bx_status timers_fire(PGconn *db, const timers_timer *timer, const char *owner_id, bx_time_ms now,
                      timers_fire_fn *fire_fn, void *arg, bx_error *err) BX_MUSTCHECK;

/* Fires a claimed list in ONE transaction: locks the rows still unfired and claimed by owner_id
 * (others are skipped: fired already or taken over), calls fire_fn for each, marks them fired at
 * now and commits, so a batch costs one commit instead of one per timer. If fire_fn or the commit
 * fails, everything is rolled back and the error returned: the caller then fires the list one by
 * one with timers_fire, so one bad timer does not hold back the others. *fired receives the count
 * fired. Must be called outside a transaction. */
bx_status timers_fire_batch(PGconn *db, const timers_list *list, const char *owner_id,
                            bx_time_ms now, timers_fire_fn *fire_fn, void *arg, int *fired,
                            bx_error *err) BX_MUSTCHECK;

/* Called once after a batch's fire_fn calls, in the same transaction, before the fired marks: for
 * a fire_fn that queues its writes and writes them for the whole batch at once. An error rolls the
 * batch back, as a fire_fn's would. */
typedef bx_status(timers_flush_fn)(PGconn *db, void *arg, bx_error *err);

/* Fires up to max due timers (due at `now`, unfired, nobody's lease running) in ONE transaction
 * without claiming them first: selects them earliest first FOR UPDATE SKIP LOCKED (rows another
 * replica is claiming or firing are skipped, so replicas fire disjoint sets), calls fire_fn for
 * each in due order, flush_fn (may be NULL) once, marks them fired at now (attempts + 1,
 * claimed_by owner_id) and commits: the fired marks and the effects commit together, so each
 * fires exactly once. *fired receives the count fired (0: none due). When fire_fn, flush_fn or
 * the commit fails, everything is rolled back, the error returned and *failed (may be NULL) holds
 * the batch's timers (caller frees with timers_list_free): the caller then claims and fires them
 * one by one (timers_claim, timers_fire), so one bad timer does not hold back the others and
 * attempts count its failures. Must be called outside a transaction. */
bx_status timers_fire_due(PGconn *db, const char *owner_id, bx_time_ms now, int max,
                          timers_fire_fn *fire_fn, timers_flush_fn *flush_fn, void *arg, int *fired,
                          timers_list *failed, bx_error *err) BX_MUSTCHECK;

/* Called once with a batch's timers, in its transaction, after they are selected and before the
 * first fire_fn: for a fire_fn that reads what the whole batch needs in one statement (the
 * timers' case rows) instead of one per timer. The list is borrowed for the call. An error rolls
 * the batch back, as a fire_fn's would. */
typedef bx_status(timers_prepare_fn)(PGconn *db, const timers_list *list, void *arg, bx_error *err);

/* timers_fire_due with prepare_fn (may be NULL) called first. */
bx_status timers_fire_due_prepared(PGconn *db, const char *owner_id, bx_time_ms now, int max,
                                   timers_prepare_fn *prepare_fn, timers_fire_fn *fire_fn,
                                   timers_flush_fn *flush_fn, void *arg, int *fired,
                                   timers_list *failed, bx_error *err) BX_MUSTCHECK;

/* Gives back owner_id's unfired claims (orderly shutdown), so another replica takes them at once.
 * *released (may be NULL) receives the count. */
bx_status timers_release(PGconn *db, const char *owner_id, int *released,
                         bx_error *err) BX_MUSTCHECK;

/* Count of timers due at `now` and unfired (claimed or not), for settle checks and metrics. */
bx_status timers_due_count(PGconn *db, bx_time_ms now, long long *count,
                           bx_error *err) BX_MUSTCHECK;

#endif
