/* store: bx-escalate's SQL. The case tables (cases.case, cases.event, cases.task; the step's
 * timers and outbox rows through timers.h and outbox.h) as one ladder step writes them, and the
 * reads of the calendar duties. Every function runs on the caller's connection, in the caller's
 * open transaction when there is one; none begins, commits or rolls back. */
#ifndef BX_ESCALATE_STORE_H
#define BX_ESCALATE_STORE_H

#include "analytics.h"
#include "bx_registry.h"
#include "bx_status.h"
#include "ladder.h"
#include "timers.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* The case row a step applies to, as loaded. */
typedef struct escalate_store_case {
    int64_t row_id; /* cases.case.id; 0: no row */
    bool closed;
    char school[BX_ID_MAX + 1]; /* the row's school; "" when no row */
} escalate_store_case;

/* Loads and locks (FOR UPDATE) the row a student's next input applies to: the open case, else
 * the latest closed one (whose state remembers the inputs it applied). With a row, *state is its
 * state decoded by policy; without one (row->row_id 0) *state is untouched. A state that does not
 * decode fails the call (logged, naming the row): it is neither reset nor skipped. */
bx_status escalate_store_case_of_student(PGconn *db, const ladder_policy *policy,
                                         const char *student_id, escalate_store_case *row,
                                         case_state *state, bx_error *err) BX_MUSTCHECK;
/* The same for the row of id case_id (a timer's case). */
bx_status escalate_store_case_by_id(PGconn *db, const ladder_policy *policy, int64_t case_id,
                                    escalate_store_case *row, case_state *state,
                                    bx_error *err) BX_MUSTCHECK;

/* Writes queued for many steps of one transaction and written together, one statement per table
 * and kind of change (escalate_store_batch_flush): the steps' events, their outbox rows (case
 * events and notification requests), task rows and changes, timers scheduled and cancelled. The
 * case rows themselves are written at once (a step reads them), and so are the analysts' outbox
 * rows (another topic: each topic keeps its order). A second change of the same task or timer
 * flushes the queue first, and closing a case flushes it and cancels at once, so the rows end as
 * they would one statement at a time. Nothing that runs before the flush may read the queued
 * tables (the calendar duties flush first). One transaction at a time. */
typedef struct escalate_store_batch escalate_store_batch;

/* Caller frees with escalate_store_batch_free (NULL does nothing). */
bx_status escalate_store_batch_new(escalate_store_batch **out, bx_error *err) BX_MUSTCHECK;
void escalate_store_batch_free(escalate_store_batch *q);
/* Forgets what is queued (after a rollback) and the counts of new events. */
void escalate_store_batch_clear(escalate_store_batch *q);
/* With defer set, a step that opens a case queues its row too instead of inserting it at once:
 * the flush inserts the queued new cases first, in one INSERT ... SELECT FROM unnest, and the
 * rows queued for them (events, tasks, timers) get their ids then. A student's new case is not
 * in the table until the flush, so loading a student's case in the batch's transaction goes
 * through escalate_store_batch_before_load. Kept until changed (a clear keeps it). */
void escalate_store_batch_defer_new_cases(escalate_store_batch *q, bool defer);
/* Before a student's case is read in the batch's transaction: writes the queue when it holds a
 * new case of student_id (NULL q: nothing to do). */
bx_status escalate_store_batch_before_load(PGconn *db, escalate_store_batch *q,
                                           const char *student_id, bx_error *err) BX_MUSTCHECK;
/* The rows escalate_store_case_of_student would load for each of students[0..n) (a run of
 * inputs), read and locked (FOR UPDATE, in id order) in one statement and kept in q until it is
 * cleared: escalate_store_case_of_student_in then takes a student's kept row (or its having
 * none) for its first load, and reads the table for the next ones (which see the first step's
 * writes). students borrowed for the call. */
bx_status escalate_store_prefetch_students(PGconn *db, escalate_store_batch *q,
                                           const char *const *students, int n,
                                           bx_error *err) BX_MUSTCHECK;
bx_status escalate_store_case_of_student_in(PGconn *db, escalate_store_batch *q,
                                            const ladder_policy *policy, const char *student_id,
                                            escalate_store_case *row, case_state *state,
                                            bx_error *err) BX_MUSTCHECK;
/* Writes what is queued in the caller's transaction, in the order above (the deferred new cases
 * first); then the queue is empty. On failure the caller rolls back (and clears). */
bx_status escalate_store_batch_flush(PGconn *db, escalate_store_batch *q,
                                     bx_error *err) BX_MUSTCHECK;
/* The events of the steps tagged tag that were new (not written before), counted by the flushes
 * since the last clear. */
int escalate_store_batch_new_events(const escalate_store_batch *q, int tag);
/* Queue rows directly (what a step queues for an overdue task; bench/escalate uses them): an event
 * (occurred: an RFC 3339 time; payload JSON), its outbox row (bx_outbox_add's bounds, checked
 * now: BX_EINVAL), a task's overdue mark. tag is the step's, for escalate_store_batch_new_events.
 */
bx_status escalate_store_queue_event(escalate_store_batch *q, int tag, int64_t case_id,
                                     const char *event_id, const char *kind, const char *stage,
                                     const char *actor, const char *reason, bool late,
                                     const char *occurred, const char *payload,
                                     bx_error *err) BX_MUSTCHECK;
bx_status escalate_store_queue_outbox(escalate_store_batch *q, const char *topic, const char *key,
                                      const char *event_id, const char *payload,
                                      bx_error *err) BX_MUSTCHECK;
bx_status escalate_store_queue_overdue(PGconn *db, escalate_store_batch *q, const char *task_key,
                                       const char *at, bx_error *err) BX_MUSTCHECK;

/* One ladder step: before -> after with its effects, for the row loaded before it. All borrowed
 * for the call. */
typedef struct escalate_store_step {
    const escalate_store_case *row;
    const char *school;            /* the case's school id, written to a new row */
    const bx_reg_student *student; /* for the homeroom teacher; NULL: unknown */
    const case_state *before, *after;
    const ladder_effects *fx;
    const escalate_analytics_ctx *analytics; /* the analysts' stream; NULL: none written */
    escalate_store_batch *batch; /* NULL: every row written at once; else queued there */
    int tag;                     /* the step's, for escalate_store_batch_new_events */
} escalate_store_step;

/* Writes a step: the case row (inserted for a new case, else updated), its events (each with its
 * outbox row and its task change), its timers, its notification requests' outbox rows and the
 * analysts' messages of the step (analytics.h); with step->batch, all but the case row and the
 * analysts' messages are queued there (a new case row too when the batch defers them).
 * Replays write nothing: an old input of a closed case, or a new case whose id an earlier case of
 * the student had. *new_events receives the events that were not written before (0 when queued:
 * escalate_store_batch_new_events counts them after the flush). */
bx_status escalate_store_write_step(PGconn *db, const ladder_policy *policy,
                                    const escalate_store_step *step, int *new_events,
                                    bx_error *err) BX_MUSTCHECK;

/* ---- a batch of case timers fired in one transaction ---- */

/* What firing a case's deadline timer needs; all borrowed for the call. */
typedef struct escalate_store_firing {
    const ladder_policy *policy;
    const bx_registry *registry;
    const char *pseudonym_key;   /* the analysts' (analytics.h); NULL or "": none written */
    const char *analytics_topic; /* bx.analytics.cases.v1 */
    escalate_store_batch *batch; /* the batch's queue; NULL: every row written at once */
    case_state *before, *after;  /* scratch, the caller's */
    ladder_effects *fx;          /* scratch, the caller's */
} escalate_store_firing;

/* Loads and locks (FOR UPDATE, in id order) the case rows of list's timers in one statement (and,
 * with a pseudonym key, their students' analysts' bands in one more) and keeps them in f->batch
 * (NULL: does nothing): escalate_store_fire_deadline then takes a kept row instead of reading it,
 * and a step's update of a kept row is kept there with its new state (the next timer of the same
 * case starts from it) and written by the flush, each case once (one UPDATE for the batch). A
 * flush or escalate_store_batch_clear forgets the kept rows (what runs next reads the table).
 * Runs in the firing's transaction (timers_prepare_fn's place). */
bx_status escalate_store_prefetch_cases(PGconn *db, const escalate_store_firing *f,
                                        const timers_list *list, bx_error *err) BX_MUSTCHECK;

/* Fires the deadline of a case timer (timer->case_id > 0) as bx-escalate does, in the caller's
 * transaction: loads and locks its case (kept by escalate_store_prefetch_cases, else read now;
 * no row: nothing to do), takes the ladder's step for the deadline by the school's calendar and
 * writes it with escalate_store_write_step (queued in f->batch) and the analysts' messages. A
 * step the ladder refuses (the timer no longer applies) is logged and fires without effect; a
 * case of a school the registry lacks is BX_ENOTFOUND. *new_events as escalate_store_write_step
 * gives it (0 when queued). */
bx_status escalate_store_fire_deadline(PGconn *db, const escalate_store_firing *f,
                                       const timers_timer *timer, int *new_events,
                                       bx_error *err) BX_MUSTCHECK;

/* ---- the calendar duties' reads; *res is the caller's to PQclear ---- */

/* Registry-enrolled children of the calendar's schools seen by no reported roll call of their
 * class from first_day to last_day (dates "YYYY-MM-DD"), in a class that reported then. Rows:
 * student id, school id, grade. */
bx_status escalate_store_no_shows(PGconn *db, const char *calendar_id, const char *first_day,
                                  const char *last_day, PGresult **res, bx_error *err) BX_MUSTCHECK;
/* Children who left a school of the calendar from one of grades (an int[] literal, "{6}") and are
 * enrolled nowhere. Rows: student id, school id, grade. */
bx_status escalate_store_transition_losses(PGconn *db, const char *calendar_id, const char *grades,
                                           PGresult **res, bx_error *err) BX_MUSTCHECK;
/* Per county of the calendar's schools: open cases off the dropout roster (suspected), open cases
 * on it, cases opened and cases ended returned from first_day to last_day (local dates). Rows:
 * county code, suspected, on the roster, opened, returned. */
bx_status escalate_store_county_counts(PGconn *db, const char *calendar_id, const char *first_day,
                                       const char *last_day, PGresult **res,
                                       bx_error *err) BX_MUSTCHECK;
/* Classes of the calendar's schools with an enrolled student and no roll call on day
 * ("YYYY-MM-DD"); prev_day ("" none) is the school day before. Rows: class id, class name, school
 * id, homeroom staff id ("" none), "t" when prev_day had no roll call either. */
bx_status escalate_store_unreported_classes(PGconn *db, const char *calendar_id, const char *day,
                                            const char *prev_day, PGresult **res,
                                            bx_error *err) BX_MUSTCHECK;
/* The terms of every calendar that end on or after day. Rows: calendar id, term code, first day,
 * last day. */
bx_status escalate_store_terms_from(PGconn *db, const char *day, PGresult **res,
                                    bx_error *err) BX_MUSTCHECK;

/* ---- operations ---- */

/* Flags a case for a person's attention: case_id's when it is > 0, else student_id's (the open
 * one, else the latest). flag_id names what was given up and makes a repeat a no-op: the dead
 * letter's event id for an input, "timer:<key>" for a timer (cut to 200 bytes); reason is cut to
 * 1000. Inside the caller's transaction (the one that queues the dead letter or cancels the
 * timer). *flagged is 1 for a new flag, 0 when there is no such case or it was flagged before. */
bx_status escalate_store_flag_attention(PGconn *db, const char *student_id, int64_t case_id,
                                        const char *flag_id, const char *reason, bx_time_ms at,
                                        int *flagged, bx_error *err) BX_MUSTCHECK;
/* Deletes up to 10000 outbox rows relayed more than keep_days ago by PostgreSQL's own clock
 * (sent_at is its now(), not the project clock); *deleted says how many. */
bx_status escalate_store_prune_outbox(PGconn *db, int keep_days, int *deleted,
                                      bx_error *err) BX_MUSTCHECK;

#endif
