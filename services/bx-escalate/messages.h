/* messages: the ladder's effects as JSON for bx.case.events.v1 and bx.notify.requests.v1. */
#ifndef BX_ESCALATE_MESSAGES_H
#define BX_ESCALATE_MESSAGES_H

#include "bx_buf.h"
#include "bx_status.h"
#include "ladder.h"

/* Who the registry says owns a student's staff-side tasks: the homeroom teacher's staff id, or
 * "" when the class has none. Borrowed for the call. */
typedef struct messages_context {
    const char *school_id;
    const char *homeroom_staff_id;
} messages_context;

/* Appends one bx.case.events.v1 message for event e of case s to out. */
bx_status messages_case_event(const case_state *s, const messages_context *ctx,
                              const ladder_event *e, bx_buf *out) BX_MUSTCHECK;
/* Appends one bx.notify.requests.v1 message for n of case s to out. */
bx_status messages_notify_request(const case_state *s, const messages_context *ctx,
                                  const ladder_notification *n, bx_buf *out) BX_MUSTCHECK;
/* The staff id of a role for this student when the registry knows it (homeroom teacher), else
 * NULL. */
const char *messages_staff_of(const messages_context *ctx, const char *role);

#endif
