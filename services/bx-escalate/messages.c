/* messages: the ladder's effects as JSON for bx.case.events.v1 and bx.notify.requests.v1, built
 * in a buffer (ids, dates, counts and policy names only: never names or phones). */
#include "messages.h"

#include <string.h>

#define ACTOR_SELF "bx-escalate"

const char *messages_staff_of(const messages_context *ctx, const char *role)
{
    if (role && strcmp(role, "homeroom_teacher") == 0 && ctx->homeroom_staff_id &&
        ctx->homeroom_staff_id[0])
        return ctx->homeroom_staff_id;
    return NULL;
}

static bx_status string_or_null(bx_buf *b, const char *s)
{
    return s ? bx_buf_json_string(b, s) : bx_buf_puts(b, "null");
}

static bx_status time_value(bx_buf *b, bx_time_ms t)
{
    char at[40];
    bx_time_format(t, at, sizeof(at));
    return bx_buf_json_string(b, at);
}

bx_status messages_case_event(const case_state *s, const messages_context *ctx,
                              const ladder_event *e, bx_buf *out)
{
    bx_status st = bx_buf_puts(out, "{\"schema\":\"bx.case.events.v1\",\"event_id\":");
    IFOK(st, bx_buf_json_string(out, e->event_id));
    IFOK(st, bx_buf_puts(out, ",\"case_id\":"));
    IFOK(st, bx_buf_json_string(out, s->case_id));
    IFOK(st, bx_buf_puts(out, ",\"student_id\":"));
    IFOK(st, bx_buf_json_string(out, s->student_id));
    IFOK(st, bx_buf_puts(out, ",\"school_id\":"));
    IFOK(st, bx_buf_json_string(out, ctx->school_id));
    IFOK(st, bx_buf_puts(out, ",\"event\":"));
    IFOK(st, bx_buf_json_string(out, ladder_event_name(e->kind)));
    IFOK(st, bx_buf_puts(out, ",\"stage\":"));
    IFOK(st, string_or_null(out, e->stage));
    IFOK(st, bx_buf_puts(out, ",\"task\":"));
    if (e->task_kind && e->owner_role && e->task_key[0]) {
        IFOK(st, bx_buf_puts(out, "{\"task_id\":"));
        IFOK(st, bx_buf_json_string(out, e->task_key));
        IFOK(st, bx_buf_puts(out, ",\"kind\":"));
        IFOK(st, bx_buf_json_string(out, e->task_kind));
        IFOK(st, bx_buf_puts(out, ",\"owner_role\":"));
        IFOK(st, bx_buf_json_string(out, e->owner_role));
        IFOK(st, bx_buf_puts(out, ",\"owner_staff_id\":"));
        IFOK(st, string_or_null(out, messages_staff_of(ctx, e->owner_role)));
        IFOK(st, bx_buf_puts(out, ",\"due_at\":"));
        IFOK(st, time_value(out, e->due_at));
        IFOK(st, bx_buf_puts(out, "}"));
    } else {
        IFOK(st, bx_buf_puts(out, "null"));
    }
    IFOK(st, bx_buf_puts(out, ",\"ending\":"));
    IFOK(st,
         string_or_null(out, e->kind == LADDER_EV_CLOSED ? ladder_ending_name(e->ending) : NULL));
    IFOK(st, bx_buf_puts(out, ",\"actor\":"));
    IFOK(st, bx_buf_json_string(out, e->actor[0] ? e->actor : ACTOR_SELF));
    IFOK(st, bx_buf_puts(out, ",\"reason\":"));
    IFOK(st, bx_buf_json_string(out, e->reason));
    IFOK(st, bx_buf_printf(out, ",\"late\":%s,\"occurred_at\":", e->late ? "true" : "false"));
    IFOK(st, time_value(out, e->at));
    IFOK(st, bx_buf_puts(out, "}"));
    return st;
}

bx_status messages_notify_request(const case_state *s, const messages_context *ctx,
                                  const ladder_notification *n, bx_buf *out)
{
    bool guardian = strcmp(n->recipient_role, "guardian") == 0;
    bx_status st = bx_buf_puts(out, "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":");
    IFOK(st, bx_buf_json_string(out, n->request_id));
    IFOK(st, bx_buf_puts(out, ",\"case_id\":"));
    IFOK(st, bx_buf_json_string(out, s->case_id));
    IFOK(st, bx_buf_puts(out, ",\"student_id\":"));
    IFOK(st, bx_buf_json_string(out, s->student_id));
    IFOK(st, bx_buf_puts(out, ",\"template\":"));
    IFOK(st, bx_buf_json_string(out, n->template_name));
    IFOK(st, bx_buf_puts(out, ",\"recipient_role\":"));
    IFOK(st, bx_buf_json_string(out, n->recipient_role));
    IFOK(st, bx_buf_puts(out, ",\"recipient_staff_id\":"));
    IFOK(st, string_or_null(out, guardian ? NULL : messages_staff_of(ctx, n->recipient_role)));
    IFOK(st, bx_buf_puts(out, ",\"channel\":"));
    IFOK(st, bx_buf_json_string(out, guardian ? "sms" : n->channel));
    IFOK(st, bx_buf_puts(out, ",\"params\":{"));
    for (int i = 0; i < n->nparams; i++) {
        IFOK(st, bx_buf_puts(out, i ? "," : ""));
        IFOK(st, bx_buf_json_string(out, n->params[i].name));
        IFOK(st, bx_buf_puts(out, ":"));
        IFOK(st, bx_buf_json_string(out, n->params[i].value));
    }
    IFOK(st, bx_buf_puts(out, "},\"not_before\":null,\"requested_at\":"));
    IFOK(st, time_value(out, n->at));
    IFOK(st, bx_buf_puts(out, "}"));
    return st;
}
