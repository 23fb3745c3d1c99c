/* messages: bx-escalate's messages as data: the decoding of the bx.risk.v1 and bx.actions.v1
 * messages it consumes into ladder inputs, and the ladder's effects as JSON for
 * bx.case.events.v1 and bx.notify.requests.v1. Pure functions: no I/O, no state. */
#ifndef BX_ESCALATE_MESSAGES_H
#define BX_ESCALATE_MESSAGES_H

#include "bx_buf.h"
#include "bx_registry.h"
#include "bx_status.h"
#include "ladder.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- decoding ---- */

/* Why a consumed message is dead-lettered (bx.dlq.v1's reason, messages_bad_reason). */
typedef enum messages_bad {
    MESSAGES_GOOD = 0,
    MESSAGES_MALFORMED,       /* "malformed": not JSON */
    MESSAGES_INVALID,         /* "invalid_value": JSON, but not a message bx-escalate takes */
    MESSAGES_UNKNOWN_STUDENT, /* "unknown_student": set by the service against the registry */
    MESSAGES_UNAPPLIED        /* "other": applying it failed in a way no retry mends */
} messages_bad;

#define MESSAGES_PATH       "message" /* how a decoding error names the message: "message.date" */
#define MESSAGES_ERROR_SIZE 400

/* One consumed message decoded: the ladder input, whose case it is, or why it is refused. */
typedef struct messages_input {
    ladder_input in;
    char student[BX_ID_MAX + 1];
    char school[BX_ID_MAX + 1];
    messages_bad bad;
    char error[MESSAGES_ERROR_SIZE]; /* when bad: why, valid UTF-8 */
} messages_input;

/* Decodes one bx.risk.v1 or bx.actions.v1 message: len bytes of payload (borrowed; no NUL needed
 * after them; NULL is an empty message) into *out, which is overwritten entirely. When the message
 * is refused, out->bad is MESSAGES_MALFORMED (the bytes are not JSON) or MESSAGES_INVALID, and
 * out->error says why ("message.<member>: ..." when a member is at fault); otherwise out->student
 * and out->school are registry ids. */
void messages_decode(const void *payload, size_t len, messages_input *out);
/* bx.dlq.v1's reason code for bad: "malformed", "invalid_value", "unknown_student", else "other".
 */
const char *messages_bad_reason(messages_bad bad);

/* ---- encoding ---- */

/* Who the registry says owns a student's staff-side tasks: the homeroom teacher's staff id, or
 * "" when the class has none. Borrowed for the call. */
typedef struct messages_context {
    const char *school_id;
    const char *homeroom_staff_id;
} messages_context;

/* Appends one bx.case.events.v1 message for event e of case s to out. */
bx_status messages_case_event(const case_state *s, const messages_context *ctx,
                              const ladder_event *e, bx_buf *out) BX_MUSTCHECK;
/* Case subjects from the household register (四查三比对, transfers.h) are "hh-<county>-<n>": no
 * registry student has such an id. */
#define MESSAGES_HOUSEHOLD_PREFIX "hh-"
bool messages_household_subject(const char *student_id);

/* Appends one bx.notify.requests.v1 message for n of case s to out. A household subject's request
 * to staff names no student but the case's school (params.school_id), where bx-notify finds them.
 */
bx_status messages_notify_request(const case_state *s, const messages_context *ctx,
                                  const ladder_notification *n, bx_buf *out) BX_MUSTCHECK;
/* The staff id of a role for this student when the registry knows it (homeroom teacher), else
 * NULL. */
const char *messages_staff_of(const messages_context *ctx, const char *role);

#endif
