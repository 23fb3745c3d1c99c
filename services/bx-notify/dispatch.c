/* dispatch: bx-notify's pure decisions (quiet hours, backoff, caps, state transitions). */
#include "dispatch.h"
#include "bx_name.h"

#include <stdio.h>
#include <string.h>

static const char *const state_names[] = {"queued",    "sending", "unknown",   "sent",
                                          "delivered", "dead",    "collected", "digested"};

const char *dispatch_state_name(dispatch_state s)
{
    return bx_name_of(state_names, BX_NAMES_COUNT(state_names), (int)s, "?");
}

bx_status dispatch_state_parse(const char *name, dispatch_state *out)
{
    int s = 0;
    if (bx_name_find(state_names, BX_NAMES_COUNT(state_names), name, &s) != BX_OK)
        return BX_EINVAL;
    *out = (dispatch_state)s;
    return BX_OK;
}

bool dispatch_state_final(dispatch_state s)
{
    return s == DISPATCH_DELIVERED || s == DISPATCH_DEAD || s == DISPATCH_DIGESTED;
}

const char *dispatch_status_name(dispatch_status s)
{
    static const char *const names[] = {"", "queued", "sent", "delivered", "failed", "dead"};
    return bx_name_of(names, BX_NAMES_COUNT(names), (int)s, "");
}

bx_status dispatch_parse_hhmm(const char *text, int *minute, bx_error *err)
{
    if (text == NULL || strlen(text) != 5 || text[2] != ':' || text[0] < '0' || text[0] > '2' ||
        text[1] < '0' || text[1] > '9' || text[3] < '0' || text[3] > '5' || text[4] < '0' ||
        text[4] > '9')
        return BX_ERR(err, BX_EINVAL, "expected a time HH:MM, got \"%s\"", text ? text : "");
    int h = (text[0] - '0') * 10 + (text[1] - '0');
    int m = (text[3] - '0') * 10 + (text[4] - '0');
    if (h > 23)
        return BX_ERR(err, BX_EINVAL, "expected a time HH:MM, got \"%s\"", text);
    *minute = h * 60 + m;
    return BX_OK;
}

bx_status dispatch_parse_quiet(const char *text, int *start_min, int *end_min, bx_error *err)
{
    if (text && strcmp(text, "off") == 0) {
        *start_min = *end_min = 0;
        return BX_OK;
    }
    if (text == NULL || strlen(text) != 11 || text[5] != '-')
        return BX_ERR(err, BX_EINVAL, "expected HH:MM-HH:MM or off, got \"%s\"", text ? text : "");
    char a[6], b[6];
    memcpy(a, text, 5);
    a[5] = '\0';
    memcpy(b, text + 6, 5);
    b[5] = '\0';
    bx_status s = dispatch_parse_hhmm(a, start_min, err);
    IFOK(s, dispatch_parse_hhmm(b, end_min, err));
    if (s == BX_OK && *start_min == *end_min)
        s = BX_ERR(err, BX_EINVAL, "quiet hours \"%s\" start and end at the same time (use off)",
                   text);
    return s;
}

bx_time_ms dispatch_quiet_until(const dispatch_policy *p, bx_time_ms now)
{
    int start = p->quiet_start_min, end = p->quiet_end_min;
    if (start == end)
        return now;
    bx_date today = bx_time_local_date(now);
    int m = bx_time_local_minute(now);
    if (start < end) { /* within one day, e.g. 12:00-14:00 */
        if (m >= start && m < end)
            return bx_time_from_local(today, end / 60, end % 60);
        return now;
    }
    /* across midnight, e.g. 21:30-07:00 */
    if (m >= start)
        return bx_time_from_local(today + 1, end / 60, end % 60);
    if (m < end)
        return bx_time_from_local(today, end / 60, end % 60);
    return now;
}

int64_t dispatch_backoff_ms(const dispatch_policy *p, int attempt, uint32_t random)
{
    int64_t ceiling = p->retry_base_ms > 0 ? p->retry_base_ms : 1;
    for (int i = 1; i < attempt && ceiling < p->retry_max_ms; i++)
        ceiling *= 2;
    if (ceiling > p->retry_max_ms)
        ceiling = p->retry_max_ms;
    if (ceiling < 0)
        ceiling = 0;
    /* uniform in [0, ceiling] */
    return (int64_t)(((uint64_t)random * (uint64_t)(ceiling + 1)) >> 32);
}

bx_time_ms dispatch_next_day(bx_time_ms now)
{
    return bx_time_from_local(bx_time_local_date(now) + 1, 0, 0);
}

bx_time_ms dispatch_next_digest(int digest_minute, bx_time_ms now)
{
    bx_date today = bx_time_local_date(now);
    bx_time_ms t = bx_time_from_local(today, digest_minute / 60, digest_minute % 60);
    return t > now ? t : bx_time_from_local(today + 1, digest_minute / 60, digest_minute % 60);
}

bool dispatch_task_timely(int digest_minute, bx_time_ms now, bx_time_ms due_at)
{
    if (due_at <= 0)
        return false;
    bx_time_ms next = dispatch_next_digest(digest_minute, now);
    return due_at <= next || bx_time_local_date(due_at) <= bx_time_local_date(next);
}

static void set_reason(dispatch_output *out, const char *prefix, const char *detail)
{
    snprintf(out->reason, sizeof(out->reason), "%s%s", prefix,
             detail && detail[0] ? detail : "no detail");
}

/* A send that certainly did not happen: again later, or dead at the attempt limit. */
static void retry_or_dead(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out,
                          const char *detail)
{
    out->changed = true;
    if (in->attempt >= p->max_attempts) {
        out->state = DISPATCH_DEAD;
        out->status = DISPATCH_ST_DEAD;
        out->due_at = 0;
        snprintf(out->reason, sizeof(out->reason), "gave up after %d attempts: %s", in->attempt,
                 detail && detail[0] ? detail : "no detail");
        return;
    }
    out->state = DISPATCH_QUEUED;
    out->status = DISPATCH_ST_FAILED;
    out->due_at = in->now + dispatch_backoff_ms(p, in->attempt, in->random);
    snprintf(out->reason, sizeof(out->reason), "%s; retrying",
             detail && detail[0] ? detail : "not sent");
}

static bool awaiting_answer(dispatch_state s)
{
    return s == DISPATCH_SENDING || s == DISPATCH_UNKNOWN || s == DISPATCH_SENT;
}

static void on_due(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out)
{
    if (awaiting_answer(in->state)) {
        /* a send whose answer is missing (or whose sender died): ask, never resend blindly */
        out->action = DISPATCH_DO_QUERY;
        out->due_at = in->now + p->lease_ms;
        return;
    }
    if (in->state != DISPATCH_QUEUED)
        return;
    out->changed = true;
    if (in->attempt >= p->max_attempts) {
        out->state = DISPATCH_DEAD;
        out->status = DISPATCH_ST_DEAD;
        snprintf(out->reason, sizeof(out->reason), "gave up after %d attempts", in->attempt);
        return;
    }
    if (in->to_guardian) {
        bx_time_ms until = dispatch_quiet_until(p, in->now);
        if (until > in->now) {
            out->due_at = until;
            out->status = DISPATCH_ST_QUEUED;
            snprintf(out->reason, sizeof(out->reason), "quiet_hours");
            return;
        }
    }
    if (in->is_sms && p->daily_cap > 0 && in->sent_today >= p->daily_cap) {
        out->due_at = dispatch_next_day(in->now);
        out->status = DISPATCH_ST_QUEUED;
        snprintf(out->reason, sizeof(out->reason), "rate_limited: daily cap of %d reached",
                 p->daily_cap);
        return;
    }
    out->state = DISPATCH_SENDING;
    out->action = DISPATCH_DO_SEND;
    out->attempt = in->attempt + 1;
    out->due_at = in->now + p->lease_ms;
}

static void on_send(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out,
                    const char *detail)
{
    if (in->state != DISPATCH_SENDING)
        return; /* moved on meanwhile (a receipt came first) */
    out->changed = true;
    switch (in->answer) {
    case DISPATCH_ANS_ACCEPTED:
        out->state = DISPATCH_SENT;
        out->status = DISPATCH_ST_SENT;
        out->due_at = in->now + p->receipt_check_ms;
        break;
    case DISPATCH_ANS_TRANSIENT:
        retry_or_dead(p, in, out, detail);
        break;
    case DISPATCH_ANS_PERMANENT:
        out->state = DISPATCH_DEAD;
        out->status = DISPATCH_ST_DEAD;
        set_reason(out, "refused by the provider: ", detail);
        break;
    case DISPATCH_ANS_UNKNOWN:
        out->state = DISPATCH_UNKNOWN;
        out->status = DISPATCH_ST_FAILED;
        out->due_at = in->now + p->query_delay_ms;
        snprintf(out->reason, sizeof(out->reason),
                 "outcome unknown (%s); checking before any retry",
                 detail && detail[0] ? detail : "no detail");
        break;
    default:
        out->changed = false; /* not an answer to a send */
        break;
    }
}

static void give_up_waiting(const dispatch_policy *p, const dispatch_input *in,
                            dispatch_output *out)
{
    out->state = DISPATCH_DEAD;
    out->status = DISPATCH_ST_DEAD;
    out->due_at = 0;
    if (in->state == DISPATCH_SENT)
        snprintf(out->reason, sizeof(out->reason), "accepted, no delivery report within %lld s",
                 (long long)(p->receipt_limit_ms / 1000));
    else
        snprintf(out->reason, sizeof(out->reason),
                 "outcome unknown and no receipt within %lld s; not resent",
                 (long long)(p->receipt_limit_ms / 1000));
}

/* The provider's last word on a message, from a query or a receipt: delivered or not. */
static void on_final_answer(const dispatch_input *in, dispatch_output *out, const char *detail)
{
    out->changed = true;
    if (in->answer == DISPATCH_ANS_DELIVERED) {
        out->state = DISPATCH_DELIVERED;
        out->status = DISPATCH_ST_DELIVERED;
        return;
    }
    out->state = DISPATCH_DEAD;
    out->status = DISPATCH_ST_DEAD;
    set_reason(out, "accepted but not delivered: ", detail);
}

static void on_query(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out,
                     const char *detail)
{
    if (!awaiting_answer(in->state))
        return;
    bool waited_out = in->now - in->last_send_at >= p->receipt_limit_ms;
    switch (in->answer) {
    case DISPATCH_ANS_NONE:
        if (in->state != DISPATCH_SENT) {
            retry_or_dead(p, in, out, "not sent (the provider has no record of it)");
            return;
        }
        /* an accepted message the provider cannot find yet */
        /* fall through */
    case DISPATCH_ANS_PENDING:
        out->changed = true;
        if (waited_out) {
            give_up_waiting(p, in, out);
            return;
        }
        if (in->state != DISPATCH_SENT)
            out->status = DISPATCH_ST_SENT;
        out->state = DISPATCH_SENT;
        out->due_at = in->now + p->receipt_check_ms;
        return;
    case DISPATCH_ANS_DELIVERED:
    case DISPATCH_ANS_FAILED:
        on_final_answer(in, out, detail);
        return;
    default:
        return;
    }
}

static void on_no_query(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out)
{
    if (!awaiting_answer(in->state))
        return;
    out->changed = true;
    if (in->now - in->last_send_at >= p->receipt_limit_ms) {
        give_up_waiting(p, in, out);
        return;
    }
    if (in->state == DISPATCH_SENDING)
        out->state = DISPATCH_UNKNOWN; /* its sender died: the outcome is unknown */
    bx_time_ms next = in->now + p->receipt_check_ms, limit = in->last_send_at + p->receipt_limit_ms;
    out->due_at = next < limit ? next : limit;
}

static void on_receipt(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out,
                       const char *detail)
{
    if (dispatch_state_final(in->state) || in->state == DISPATCH_COLLECTED)
        return; /* a duplicate or late receipt changes nothing */
    switch (in->answer) {
    case DISPATCH_ANS_DELIVERED:
    case DISPATCH_ANS_FAILED:
        on_final_answer(in, out, detail);
        return;
    case DISPATCH_ANS_PENDING:
        if (in->state != DISPATCH_SENDING && in->state != DISPATCH_UNKNOWN)
            return;
        out->changed = true;
        out->state = DISPATCH_SENT;
        out->status = DISPATCH_ST_SENT;
        out->due_at = in->now + p->receipt_check_ms;
        return;
    default:
        return;
    }
}

void dispatch_next(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out)
{
    const char *detail = in->detail;
    memset(out, 0, sizeof(*out));
    out->state = in->state;
    out->attempt = in->attempt;
    switch (in->event) {
    case DISPATCH_EV_DUE:
        on_due(p, in, out);
        break;
    case DISPATCH_EV_SEND:
        on_send(p, in, out, detail);
        break;
    case DISPATCH_EV_QUERY:
        on_query(p, in, out, detail);
        break;
    case DISPATCH_EV_NO_QUERY:
        on_no_query(p, in, out);
        break;
    case DISPATCH_EV_RECEIPT:
        on_receipt(p, in, out, detail);
        break;
    }
    if (dispatch_state_final(out->state))
        out->due_at = 0;
}
