/* worker: the sending threads. Each claims due notifications, records the intents of the claim's
 * sends (state sending, attempt n) in one transaction before it calls the provider, and their
 * outcomes after, committed together every few tens of milliseconds; and asks the provider about a
 * send whose outcome is not known yet. */
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

/* The provider-wide rate within one claim's decisions: once a send is put off, the claim's later
 * ones are put off too without asking Redis, each one interval after the one before, so the rows
 * put off come due one by one at the rate's pace instead of all at its next free moment (where
 * every worker would claim them at once and put all but one off again). */
typedef struct rate_turn {
    bool refused;       /* a send of this claim was put off */
    bx_time_ms next_at; /* when the next one put off comes due */
} rate_turn;

/* A send the provider-wide rate puts off waits, queued, for as long as the rate says. */
static void rate_gate(notify_worker *w, const notify_store_row *row, bx_time_ms now,
                      rate_turn *turn, dispatch_output *out)
{
    int64_t wait_ms = 0;
    int64_t interval = limits_rate_interval_ms(w->rate);
    if (turn->refused) {
        wait_ms = turn->next_at > now ? turn->next_at - now : 0;
        turn->next_at += interval;
    } else {
        bx_error rerr = {0};
        if (limits_rate_take(w->rate, now, &wait_ms, &rerr) != BX_OK) {
            bx_log_warn("worker %d: %s; sends wait", w->index, rerr.msg);
            bx_metric_add(&notify_m.failures, 1);
            wait_ms = 1000;
        }
        if (wait_ms > 0) {
            turn->refused = true;
            turn->next_at = now + wait_ms + interval;
        }
    }
    if (wait_ms > 0 || turn->refused) {
        bx_metric_add(&notify_m.rate_waits, 1);
        memset(out, 0, sizeof(*out));
        out->state = DISPATCH_QUEUED;
        out->attempt = row->attempt;
        out->due_at = now + (wait_ms > 0 ? wait_ms : 1);
        out->changed = true;
    }
}

/* What a due row does now, sent_today being the day's sends to its phone (daily cap). */
static void decide_send(notify_worker *w, const notify_store_row *row, bx_time_ms now,
                        int sent_today, rate_turn *turn, dispatch_output *out)
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
    in.sent_today = sent_today;
    dispatch_next(p, &in, out);
    if (out->action == DISPATCH_DO_SEND)
        rate_gate(w, row, now, turn, out);
}

/* The provider's answer to a send of row (intent committed at sent_at) as a decision. */
static void call_provider(notify_worker *w, notify_store_row *row, bx_time_ms sent_at,
                          provider_result *res, dispatch_output *out)
{
    provider_message m = {row->notification_id, row->recipient, row->body, row->template_name,
                          row->sign_name};
    memset(res, 0, sizeof(*res));
    bx_metric_add(&notify_m.sends, 1);
    bx_error perr = {0};
    if (provider_send(w->prov, &m, res, &perr) != BX_OK) {
        /* misuse (a bad phone or text): it was not sent and never will be */
        res->outcome = PROVIDER_PERMANENT;
        snprintf(res->reason, sizeof(res->reason), "%s", perr.msg);
    }
    if (res->outcome == PROVIDER_ACCEPTED)
        bx_metric_add(&notify_m.accepted, 1);
    dispatch_input in = {0};
    in.state = DISPATCH_SENDING;
    in.event = DISPATCH_EV_SEND;
    in.answer = answer_of_outcome(res->outcome);
    in.attempt = row->attempt;
    in.now = bx_clock_now();
    in.last_send_at = sent_at;
    in.random = next_random(&w->random);
    in.detail = res->reason;
    dispatch_next(&w->sv->conf.policy, &in, out);
}

/* Outcomes are recorded together (one statement) once the first of them has waited this long, and
 * at the end of a batch: a receipt for a row waits for its outcome at most about this long. */
#define OUTCOME_WAIT_MS 50

/* A claimed queued row on its way through send_batch. */
typedef struct send_item {
    notify_store_row *row;
    int attempt_before;
    bx_time_ms decided_at;
    dispatch_output due;     /* the decision when it came due */
    bool applied;            /* the decision is committed */
    dispatch_output outcome; /* after the call */
    provider_result result;
} send_item;

/* Step 1: every due decision of the batch in one statement (with a daily cap, in one transaction
 * with the recipients' locks and the day's counts): the intents (state sending, attempt n) of the
 * sends, the waits (quiet hours, the caps) and the deaths. */
static bx_status record_intents(notify_worker *w, send_item *items, int n, bx_error *err)
{
    const dispatch_policy *p = &w->sv->conf.policy;
    const char **phones = calloc((size_t)n, sizeof(*phones));
    int *sent = calloc((size_t)n, sizeof(*sent));
    notify_store_decision *d = calloc((size_t)n, sizeof(*d));
    if (phones == NULL || sent == NULL || d == NULL) {
        free(phones);
        free(sent);
        free(d);
        return BX_ERR(err, BX_ENOMEM, "out of memory for %d decisions", n);
    }
    int nphones = 0;
    rate_turn turn = {false, 0};
    for (int i = 0; i < n; i++)
        if (strcmp(items[i].row->channel, "task") != 0)
            phones[nphones++] = items[i].row->recipient;
    bool capped = p->daily_cap > 0 && nphones > 0;
    bx_status s = capped ? bx_pg_exec(w->db, "BEGIN", err) : BX_OK;
    if (capped)
        IFOK(s, notify_store_sent_today_many(w->db, phones, nphones, bx_clock_now(), sent, err));
    for (int i = 0, k = 0; i < n && s == BX_OK; i++) {
        send_item *it = &items[i];
        bool sms = strcmp(it->row->channel, "task") != 0;
        int today = 0;
        if (capped && sms) {
            /* the day's sends counted before the batch, and this batch's to the same phone */
            today = sent[k++];
            for (int j = 0; j < i; j++)
                today += items[j].due.action == DISPATCH_DO_SEND &&
                         strcmp(items[j].row->recipient, it->row->recipient) == 0;
        }
        it->attempt_before = it->row->attempt;
        /* the clock as each is decided: the provider-wide rate is taken at the time it grants */
        it->decided_at = bx_clock_now();
        decide_send(w, it->row, it->decided_at, today, &turn, &it->due);
        d[i] = (notify_store_decision){
            .row = it->row, .out = &it->due, .provider_message_id = NULL, .at = it->decided_at};
    }
    IFOK(s, notify_store_changes(w->db, &w->sv->ctx, w->owner, d, n, err));
    if (capped)
        IFOK(s, bx_pg_exec(w->db, "COMMIT", err));
    if (s != BX_OK && capped)
        bx_pg_rollback(w->db);
    for (int i = 0; i < n; i++)
        items[i].applied = s == BX_OK && d[i].applied;
    free(phones);
    free(sent);
    free(d);
    if (s != BX_OK)
        return s;
    for (int i = 0; i < n; i++) {
        send_item *it = &items[i];
        if (!it->applied)
            continue;
        if (it->due.action == DISPATCH_DO_SEND) {
            /* The intent is committed: state sending, attempt n. Only now the provider is called.
             */
            it->row->state = DISPATCH_SENDING;
            it->row->attempt = it->due.attempt;
            it->row->last_send_at = it->decided_at;
            continue;
        }
        notify_outcome_count(&it->due);
        if (it->due.status == DISPATCH_ST_QUEUED)
            bx_log_info("%s (%s) to %s waits: %s", it->row->notification_id, it->row->request_id,
                        it->row->recipient_masked, it->due.reason);
    }
    return BX_OK;
}

/* Records the outcomes of n sends (their decisions in d) in one statement, counting and logging
 * those recorded. */
static void record_outcomes(notify_worker *w, notify_store_decision *d, int n)
{
    if (n == 0)
        return;
    bx_error err = {0};
    if (notify_store_changes(w->db, &w->sv->ctx, w->owner, d, n, &err) != BX_OK) {
        bx_metric_add(&notify_m.failures, 1);
        bx_log_warn("worker %d: outcomes of %d sends not recorded (%s); each is asked about after "
                    "its lease",
                    w->index, n, err.msg);
        if (bx_pg_reconnect(&w->db, w->sv->conf.pg_url, PG_WAIT_MS, &err) != BX_OK)
            bx_log_warn("worker %d: cannot reconnect to PostgreSQL: %s", w->index, err.msg);
        return;
    }
    for (int i = 0; i < n; i++)
        if (d[i].applied) {
            notify_outcome_count(d[i].out);
            notify_outcome_log(d[i].row, d[i].out);
        }
}

/* Step 2: each committed intent's send; the outcomes recorded together every OUTCOME_WAIT_MS and
 * at the end. A send that could not end before its claim's lease (lease_until, the project
 * clock) is not made, nor one after the service was told to stop: its intent is taken back, so
 * it is sent as if never claimed. */
static void make_sends(notify_worker *w, send_item *items, int n, bx_time_ms lease_until)
{
    notify_store_decision *d = calloc((size_t)n, sizeof(*d));
    if (d == NULL) {
        bx_log_warn("worker %d: out of memory for %d outcomes; the sends wait for their lease",
                    w->index, n);
        return;
    }
    int pending = 0;
    long long first_at = 0;
    int64_t call_ms = w->sv->conf.provider.timeout_ms;
    for (int i = 0; i < n; i++) {
        send_item *it = &items[i];
        if (!it->applied || it->due.action != DISPATCH_DO_SEND)
            continue;
        if (w->db == NULL)
            break; /* PostgreSQL is gone: the intents left are asked about after their lease */
        if (atomic_load(&w->sv->stopping) || bx_clock_now() + call_ms >= lease_until) {
            bx_error err = {0};
            bool undone = false;
            if (notify_store_unsend(w->db, it->row, w->owner, it->attempt_before, bx_clock_now(),
                                    &undone, &err) != BX_OK)
                bx_log_warn("%s: intent not taken back (%s); asked about after its lease",
                            it->row->notification_id, err.msg);
            continue;
        }
        call_provider(w, it->row, it->decided_at, &it->result, &it->outcome);
        if (pending == 0)
            first_at = bx_monotonic_ms();
        d[pending++] = (notify_store_decision){.row = it->row,
                                               .out = &it->outcome,
                                               .provider_message_id = it->result.message_id,
                                               .at = bx_clock_now()};
        if (bx_monotonic_ms() - first_at >= OUTCOME_WAIT_MS) {
            record_outcomes(w, d, pending);
            pending = 0;
        }
    }
    if (pending > 0 && w->db != NULL)
        record_outcomes(w, d, pending);
    free(d);
}

/* The claimed rows that are queued: their due decisions in one transaction, then their sends. */
static void send_batch(notify_worker *w, notify_store_row *rows, int n, bx_time_ms lease_until)
{
    send_item *items = calloc((size_t)n, sizeof(*items));
    if (items == NULL) {
        bx_log_warn("worker %d: out of memory for %d sends; retried after their lease", w->index,
                    n);
        return;
    }
    int count = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].state == DISPATCH_QUEUED)
            items[count++].row = &rows[i];
    bx_error err = {0};
    if (count > 0 && record_intents(w, items, count, &err) != BX_OK) {
        bx_metric_add(&notify_m.failures, 1);
        bx_log_warn("worker %d: %d due notifications not decided (%s); retried after their lease",
                    w->index, count, err.msg);
        bx_error rerr = {0};
        if (bx_pg_reconnect(&w->db, w->sv->conf.pg_url, PG_WAIT_MS, &rerr) != BX_OK)
            bx_log_warn("worker %d: cannot reconnect to PostgreSQL: %s", w->index, rerr.msg);
    } else if (count > 0) {
        make_sends(w, items, count, lease_until);
    }
    free(items);
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
        /* each one whose last send has no answer yet, asked about; then the queued ones, their
         * decisions in one transaction and their sends */
        for (int i = 0; i < n && !atomic_load(&sv->stopping); i++) {
            bx_error perr = {0};
            if (rows[i].state != DISPATCH_QUEUED &&
                query_row(w, &rows[i], bx_clock_now(), &perr) != BX_OK) {
                bx_metric_add(&notify_m.failures, 1);
                bx_log_warn("%s: %s; retried after its lease", rows[i].notification_id, perr.msg);
                if (bx_pg_reconnect(&w->db, sv->conf.pg_url, PG_WAIT_MS, &perr) != BX_OK)
                    break;
            }
        }
        if (!atomic_load(&sv->stopping) && w->db != NULL)
            send_batch(w, rows, n, now + sv->conf.policy.lease_ms);
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
