/* worker: the sending threads. Each claims due notifications, records the intent of a send
 * (state sending, attempt n) before it calls the provider and the outcome after, and asks the
 * provider about a send whose outcome is not known yet. */
#include "service_internal.h"

#include "bx_clock.h"
#include "bx_log.h"
#include "bx_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint32_t next_random(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static dispatch_answer answer_of_outcome(provider_outcome o)
{
    switch (o) {
    case PROVIDER_ACCEPTED:
        return DISPATCH_ANS_ACCEPTED;
    case PROVIDER_TRANSIENT:
        return DISPATCH_ANS_TRANSIENT;
    case PROVIDER_PERMANENT:
        return DISPATCH_ANS_PERMANENT;
    case PROVIDER_UNKNOWN:
        return DISPATCH_ANS_UNKNOWN;
    }
    return DISPATCH_ANS_UNKNOWN;
}

/* A send the provider-wide rate puts off waits, queued, for as long as the rate says. */
static void rate_gate(notify_worker *w, const notify_store_row *row, bx_time_ms now,
                      dispatch_output *out)
{
    int64_t wait_ms = 0;
    bx_error rerr = {0};
    if (limits_rate_take(w->rate, now, &wait_ms, &rerr) != BX_OK) {
        bx_log_warn("worker %d: %s; sends wait", w->index, rerr.msg);
        bx_metric_add(&notify_m.failures, 1);
        wait_ms = 1000;
    }
    if (wait_ms > 0) {
        bx_metric_add(&notify_m.rate_waits, 1);
        memset(out, 0, sizeof(*out));
        out->state = DISPATCH_QUEUED;
        out->attempt = row->attempt;
        out->due_at = now + wait_ms;
        out->changed = true;
    }
}

/* Opens the send's transaction (counting the day's sends to the phone under its lock when there
 * is a daily cap) and decides what a due row does now. */
static bx_status decide_send(notify_worker *w, const notify_store_row *row, bx_time_ms now,
                             dispatch_output *out, bx_error *err)
{
    const dispatch_policy *p = &w->sv->conf.policy;
    dispatch_input in = {0};
    in.state = row->state;
    in.event = DISPATCH_EV_DUE;
    in.to_guardian = row->to_guardian;
    in.is_sms = strcmp(row->channel, "task") != 0;
    in.attempt = row->attempt;
    in.now = now;
    in.last_send_at = row->last_send_at;
    in.random = next_random(&w->random);
    int sent_today = 0;
    bool capped = p->daily_cap > 0 && in.is_sms;
    bx_status s = notify_store_begin_send(w->db, row, now, capped, &sent_today, err);
    if (s != BX_OK)
        return s;
    in.sent_today = sent_today;
    dispatch_next(p, &in, out);
    if (out->action == DISPATCH_DO_SEND)
        rate_gate(w, row, now, out);
    return BX_OK;
}

/* Calls the provider for a row whose intent (state sending, attempt n) is committed, and records
 * the outcome. */
static bx_status call_provider(notify_worker *w, notify_store_row *row, bx_time_ms sent_at,
                               bx_error *err)
{
    provider_message m = {row->notification_id, row->recipient, row->body, row->template_name,
                          row->sign_name};
    provider_result res;
    memset(&res, 0, sizeof(res));
    bx_metric_add(&notify_m.sends, 1);
    bx_error perr = {0};
    if (provider_send(w->prov, &m, &res, &perr) != BX_OK) {
        /* misuse (a bad phone or text): it was not sent and never will be */
        res.outcome = PROVIDER_PERMANENT;
        snprintf(res.reason, sizeof(res.reason), "%s", perr.msg);
    }
    if (res.outcome == PROVIDER_ACCEPTED)
        bx_metric_add(&notify_m.accepted, 1);
    dispatch_input in = {0};
    in.state = DISPATCH_SENDING;
    in.event = DISPATCH_EV_SEND;
    in.answer = answer_of_outcome(res.outcome);
    in.attempt = row->attempt;
    in.now = bx_clock_now();
    in.last_send_at = sent_at;
    in.random = next_random(&w->random);
    in.detail = res.reason;
    dispatch_output out;
    dispatch_next(&w->sv->conf.policy, &in, &out);
    bool applied = false;
    bx_status s = notify_store_apply(w->db, &w->sv->ctx, row, w->owner, &out, res.message_id,
                                     in.now, false, &applied, err);
    if (s == BX_OK && applied) {
        notify_outcome_count(&out);
        notify_outcome_log(row, &out);
    }
    return s;
}

static bx_status send_row(notify_worker *w, notify_store_row *row, bx_time_ms now, bx_error *err)
{
    dispatch_output out;
    bx_status s = decide_send(w, row, now, &out, err);
    if (s != BX_OK)
        return s;
    bool applied = false;
    s = notify_store_apply(w->db, &w->sv->ctx, row, w->owner, &out, NULL, now, true, &applied, err);
    if (s != BX_OK || !applied || out.action != DISPATCH_DO_SEND) {
        if (s == BX_OK && applied)
            notify_outcome_count(&out);
        if (s == BX_OK && applied && out.status == DISPATCH_ST_QUEUED)
            bx_log_info("%s (%s) to %s waits: %s", row->notification_id, row->request_id,
                        row->recipient_masked, out.reason);
        return s;
    }
    /* The intent is committed: state sending, attempt n. Only now the provider is called. */
    row->state = DISPATCH_SENDING;
    row->attempt = out.attempt;
    row->last_send_at = now;
    return call_provider(w, row, now, err);
}

static void send_day_text(bx_date d, char out[9])
{
    char ymd[11];
    bx_date_format(d, ymd);
    snprintf(out, 9, "%.4s%.2s%.2s", ymd, ymd + 5, ymd + 8);
}

static bx_status query_row(notify_worker *w, notify_store_row *row, bx_time_ms now, bx_error *err)
{
    notify_service *sv = w->sv;
    const dispatch_policy *p = &sv->conf.policy;
    bx_date sent_on = bx_time_local_date(row->last_send_at ? row->last_send_at : now);
    char compact[9];
    provider_result res;
    memset(&res, 0, sizeof(res));
    bx_error qerr = {0};
    bx_status qs = BX_OK;
    /* A provider that files messages by send date (Aliyun) is asked for the day of the send and,
     * when that has no record, for the day after: a send just before midnight may be filed
     * there, and "no record" is what allows a resend. */
    for (int day = 0; day < 2; day++) {
        send_day_text(sent_on + day, compact);
        memset(&res, 0, sizeof(res));
        bx_metric_add(&notify_m.queries, 1);
        qs = provider_query(w->prov, row->notification_id, row->recipient, compact, &res, &qerr);
        if (qs != BX_OK || res.state != PROVIDER_STATE_NONE)
            break;
    }
    dispatch_input in = {0};
    in.state = row->state;
    in.attempt = row->attempt;
    in.now = bx_clock_now();
    in.last_send_at = row->last_send_at ? row->last_send_at : now;
    in.random = next_random(&w->random);
    in.is_sms = true;
    in.to_guardian = row->to_guardian;
    if (qs == BX_ENOTFOUND) {
        in.event = DISPATCH_EV_NO_QUERY;
    } else if (qs != BX_OK) {
        /* no answer: ask again after a while (the outcome stays unknown) */
        in.event = DISPATCH_EV_NO_QUERY;
        bx_log_debug("%s: query failed: %s", row->notification_id, qerr.msg);
    } else {
        in.event = DISPATCH_EV_QUERY;
        in.answer = notify_answer_of_state(res.state);
        in.detail = res.reason;
    }
    dispatch_output out;
    dispatch_next(p, &in, &out);
    if (!out.changed)
        return BX_OK;
    bool applied = false;
    bx_status s = notify_store_apply(w->db, &sv->ctx, row, w->owner, &out, res.message_id, in.now,
                                     false, &applied, err);
    if (s == BX_OK && applied) {
        notify_outcome_count(&out);
        notify_outcome_log(row, &out);
    }
    return s;
}

static bx_status process_row(notify_worker *w, notify_store_row *row, bx_error *err)
{
    bx_time_ms now = bx_clock_now();
    if (row->state == DISPATCH_QUEUED)
        return send_row(w, row, now, err);
    return query_row(w, row, now, err);
}

void *notify_worker_main(void *arg)
{
    notify_worker *w = arg;
    notify_service *sv = w->sv;
    while (!atomic_load(&sv->stopping)) {
        bx_error err = {0};
        if (bx_pg_reconnect(&w->db, sv->conf.pg_url, PG_WAIT_MS, &err) != BX_OK) {
            bx_log_warn("worker %d: cannot connect to PostgreSQL: %s", w->index, err.msg);
            sleep(1);
            continue;
        }
        notify_store_row *rows = NULL;
        int n = 0;
        bx_time_ms now = bx_clock_now();
        if (notify_store_claim(w->db, w->owner, now, sv->conf.policy.lease_ms, sv->conf.batch,
                               &rows, &n, &err) != BX_OK) {
            bx_log_warn("worker %d: claim failed: %s", w->index, err.msg);
            bx_metric_add(&notify_m.failures, 1);
            usleep(500000);
            continue;
        }
        for (int i = 0; i < n && !atomic_load(&sv->stopping); i++) {
            bx_error perr = {0};
            if (process_row(w, &rows[i], &perr) != BX_OK) {
                bx_metric_add(&notify_m.failures, 1);
                bx_log_warn("%s: %s; retried after its lease", rows[i].notification_id, perr.msg);
                if (bx_pg_reconnect(&w->db, sv->conf.pg_url, PG_WAIT_MS, &perr) != BX_OK)
                    break;
            }
        }
        free(rows);
        if (n == 0)
            usleep(IDLE_SLEEP_US);
    }
    return NULL;
}

bx_status notify_worker_open(notify_service *sv, notify_worker *w, int index, bx_error *err)
{
    w->sv = sv;
    w->index = index;
    char host[64] = "localhost";
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(w->owner, sizeof(w->owner), "%s:%d:%d", host, (int)getpid(), index);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    w->random = (uint32_t)(ts.tv_nsec ^ (getpid() << 8) ^ (index * 2654435761u)) | 1u;
    bx_status s = bx_pg_connect(sv->conf.pg_url, PG_WAIT_MS, &w->db, err);
    IFOK(s, limits_rate_open(sv->conf.redis_url, sv->conf.rate_key, sv->conf.rate_per_second,
                             sv->conf.rate_burst, &w->rate, err));
    IFOK(s, provider_open(&sv->conf.provider, &w->prov, err));
    return s;
}

void notify_worker_close(notify_worker *w)
{
    provider_close(w->prov);
    limits_rate_free(w->rate);
    if (w->db)
        PQfinish(w->db);
}
