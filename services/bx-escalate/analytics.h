/* analytics (escalate_analytics_*): bx.analytics.cases.v1, each case's life for analysts, written
 * to cases.outbox in the transaction of the case change that causes it, like bx.case.events.v1.
 *
 * What goes out: a case opened (with its trigger), a stage entered (late or on time), a task done
 * (late or on time) or overdue with its kind and owner role, a case closed (ending, stage reached,
 * school days to return), and each home visit's outcome and reason codes. Who: a keyed pseudonym
 * of the student (bx_pseudonym under BX_PSEUDONYM_KEY, the risk stream's subject, so the streams
 * join) and of the case; the school, township and county codes; grade and sex bands only where the
 * school's cell is 5 or more (analytics.student_bands, migration 0017). Never names, ids, phones,
 * free text (the ladder's reasons, notes) or registry flags: the builders below copy codes only.
 * The message's event_id is the pseudonym of the case event's id, so a replayed step adds nothing
 * (the outbox keeps one row per event id). */
#ifndef BX_ESCALATE_ANALYTICS_H
#define BX_ESCALATE_ANALYTICS_H

#include "bx_buf.h"
#include "bx_pseudonym.h"
#include "bx_registry.h"
#include "bx_status.h"
#include "ladder.h"

#include <libpq-fe.h>
#include <stdbool.h>

struct escalate_store_batch; /* store.h */

/* What the messages of one step need; all borrowed for the call. */
typedef struct escalate_analytics_ctx {
    const char *key;             /* pseudonym key; NULL or "": no analysts' stream */
    const char *topic;           /* bx.analytics.cases.v1 */
    const ladder_policy *policy; /* stage names */
    const bx_reg_school *school; /* the case's school: places and calendar; NULL: nothing sent */
    const ladder_input *input;   /* the step's input; NULL when unknown */
    const char *grade_band;      /* grades_1_3, grades_4_6, grades_7_9; NULL: not shown */
    const char *sex;             /* female, male; NULL: not shown */
} escalate_analytics_ctx;

/* What opened a case, by the input that opened it: "streak", "periods", "transfer", "suspension",
 * "home_delivered", "suspected", else "other". */
const char *escalate_analytics_trigger(const ladder_input *in);
/* True for the case events the stream carries (opened, stage_entered, task_done, task_overdue,
 * closed). */
bool escalate_analytics_wanted(ladder_event_kind k);
/* School days from the case's first absent day (its id's date) to the day before the return: the
 * returned action's return_date (or its date) when in is one, else the local date of closed_at.
 * -1 when the case id holds no date. */
int escalate_analytics_school_days(const bx_calendar *cal, const case_state *s,
                                   const ladder_input *in, bx_time_ms closed_at);

/* Appends the message of case event e (escalate_analytics_wanted) of case s; id receives its
 * event id. */
bx_status escalate_analytics_case_event(const escalate_analytics_ctx *c, const case_state *s,
                                        const ladder_event *e, bx_buf *out,
                                        char id[BX_PSEUDONYM_SIZE]) BX_MUSTCHECK;
/* Appends the home_visit message of the step's input (a home_visit action) on open case s. */
bx_status escalate_analytics_visit(const escalate_analytics_ctx *c, const case_state *s,
                                   bx_buf *out, char id[BX_PSEUDONYM_SIZE]) BX_MUSTCHECK;

/* Reads the student's bands (analytics.student_bands) into grade_band and sex ("" when not
 * shown). */
bx_status escalate_analytics_bands(PGconn *db, const char *student_id, char grade_band[16],
                                   char sex[8], bx_error *err) BX_MUSTCHECK;
/* A student's bands as analytics.student_bands gives them ("" when not shown). */
typedef struct escalate_bands {
    char grade_band[16];
    char sex[8];
} escalate_bands;

/* The bands of students[0..n) in one statement (analytics.student_bands_of, migration 0027), for
 * a batch of inputs: out[i] is students[i]'s ("" for a student without a class, as
 * escalate_analytics_bands gives it). students are borrowed; out has room for n. */
bx_status escalate_analytics_bands_of(PGconn *db, const char *const *students, int n,
                                      escalate_bands *out, bx_error *err) BX_MUSTCHECK;
/* Queues the stream's messages of one step (after, fx) in cases.outbox, in the caller's open
 * transaction. c->grade_band and c->sex are read here when NULL and a message is due. Does
 * nothing without a key or a school. */
bx_status escalate_analytics_write_step(PGconn *db, const escalate_analytics_ctx *c,
                                        const case_state *after, const ladder_effects *fx,
                                        bx_error *err) BX_MUSTCHECK;
/* The same with the rows queued in queue (a poll's or a timer batch's, store.h) and written with
 * the batch's rows; queue NULL: each written at once. */
bx_status escalate_analytics_queue_step(PGconn *db, const escalate_analytics_ctx *c,
                                        const case_state *after, const ladder_effects *fx,
                                        struct escalate_store_batch *queue,
                                        bx_error *err) BX_MUSTCHECK;

#endif
