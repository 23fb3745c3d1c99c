/* bx-notify's pure decisions from tables: quiet hours, backoff with full jitter, the daily cap and
 * every state transition (services/bx-notify/dispatch.h). */
#include "bx_calendar.h"
#include "bx_test.h"
#include "dispatch.h"

#include <stdint.h>

static bx_time_ms t(const char *local)
{
    bx_time_ms v = 0;
    char iso[40];
    snprintf(iso, sizeof(iso), "%.10sT%s:00+08:00", local, local + 11);
    REQUIRE(bx_time_parse(iso, &v) == BX_OK);
    return v;
}

static dispatch_policy policy(void)
{
    dispatch_policy p = {0};
    p.quiet_start_min = 21 * 60 + 30;
    p.quiet_end_min = 7 * 60;
    p.daily_cap = 5;
    p.max_attempts = 4;
    p.retry_base_ms = 1000;
    p.retry_max_ms = 60000;
    p.query_delay_ms = 5000;
    p.receipt_check_ms = 60000;
    p.receipt_limit_ms = 3600000;
    p.lease_ms = 30000;
    return p;
}

BX_TEST(quiet_hours_table)
{
    static const struct {
        const char *quiet, *now, *until; /* until NULL: not quiet */
    } rows[] = {
        {"21:30-07:00", "2026-11-27 21:29", NULL},
        {"21:30-07:00", "2026-11-27 21:30", "2026-11-28 07:00"},
        {"21:30-07:00", "2026-11-27 23:59", "2026-11-28 07:00"},
        {"21:30-07:00", "2026-11-28 00:00", "2026-11-28 07:00"},
        {"21:30-07:00", "2026-11-28 06:59", "2026-11-28 07:00"},
        {"21:30-07:00", "2026-11-28 07:00", NULL},
        {"21:30-07:00", "2026-11-28 12:00", NULL},
        {"21:30-07:00", "2026-12-31 22:00", "2027-01-01 07:00"}, /* across a year */
        {"12:00-14:00", "2026-11-28 11:59", NULL},
        {"12:00-14:00", "2026-11-28 12:00", "2026-11-28 14:00"},
        {"12:00-14:00", "2026-11-28 13:59", "2026-11-28 14:00"},
        {"12:00-14:00", "2026-11-28 14:00", NULL},
        {"off", "2026-11-28 03:00", NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        dispatch_policy p = policy();
        bx_error err = {0};
        REQUIRE(dispatch_parse_quiet(rows[i].quiet, &p.quiet_start_min, &p.quiet_end_min, &err) ==
                BX_OK);
        bx_time_ms now = t(rows[i].now);
        bx_time_ms want = rows[i].until ? t(rows[i].until) : now;
        bx_time_ms got = dispatch_quiet_until(&p, now);
        if (got != want)
            BX_FAIL_AT("row %zu (%s at %s): until %lld, expected %lld", i, rows[i].quiet,
                       rows[i].now, (long long)got, (long long)want);
    }
}

BX_TEST(quiet_hours_parse_errors)
{
    static const char *const bad[] = {
        "",           "21:30",       "21:30-07",   "24:00-07:00", "21:60-07:00", "21:30-21:30",
        "2130-0700x", "21:30 07:00", "ab:cd-ef:gh"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int a = -1, b = -1;
        bx_error err = {0};
        if (dispatch_parse_quiet(bad[i], &a, &b, &err) != BX_EINVAL)
            BX_FAIL_AT("\"%s\" was accepted", bad[i]);
        else
            CHECK(err.msg[0] != '\0');
    }
    int a = 0, b = 0;
    bx_error err = {0};
    CHECK(dispatch_parse_quiet("22:00-06:30", &a, &b, &err) == BX_OK);
    CHECK_INT(a, 22 * 60);
    CHECK_INT(b, 6 * 60 + 30);
}

BX_TEST(backoff_full_jitter_table)
{
    dispatch_policy p = policy();
    static const struct {
        int attempt;
        uint32_t random;
        int64_t want;
    } rows[] = {
        {1, 0, 0},             /* full jitter reaches 0 */
        {1, UINT32_MAX, 1000}, /* and the ceiling base*2^0 */
        {2, UINT32_MAX, 2000},
        {3, UINT32_MAX, 4000},
        {4, UINT32_MAX, 8000},
        {7, UINT32_MAX, 60000},    /* 64 s capped at 60 s */
        {50, UINT32_MAX, 60000},   /* no overflow at large attempts */
        {3, UINT32_MAX / 2, 2000}, /* the middle of [0, 4000] */
        {1, UINT32_MAX / 4, 250},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t got = dispatch_backoff_ms(&p, rows[i].attempt, rows[i].random);
        if (got != rows[i].want)
            BX_FAIL_AT("row %zu: attempt %d random %u: %lld ms, expected %lld", i, rows[i].attempt,
                       rows[i].random, (long long)got, (long long)rows[i].want);
    }
    /* spread: over many draws each attempt's delays stay in [0, ceiling] and use the whole range */
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t ceiling = attempt >= 7 ? 60000 : 1000LL << (attempt - 1), lo = ceiling, hi = 0;
        uint32_t x = 2463534242u;
        for (int i = 0; i < 10000; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            int64_t d = dispatch_backoff_ms(&p, attempt, x);
            CHECK(d >= 0 && d <= ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        CHECK(lo < ceiling / 20);
        CHECK(hi > ceiling - ceiling / 20);
    }
}

BX_TEST(daily_cap_and_quiet_hours_on_due)
{
    dispatch_policy p = policy();
    static const struct {
        bool guardian, sms;
        int sent_today;
        const char *now;
        dispatch_action action;
        const char *due; /* NULL: now + lease */
        const char *reason;
    } rows[] = {
        {true, true, 0, "2026-11-27 10:00", DISPATCH_DO_SEND, NULL, ""},
        {true, true, 4, "2026-11-27 10:00", DISPATCH_DO_SEND, NULL, ""},
        {true, true, 5, "2026-11-27 10:00", DISPATCH_DO_NOTHING, "2026-11-28 00:00",
         "rate_limited: daily cap of 5 reached"},
        {false, true, 5, "2026-11-27 10:00", DISPATCH_DO_NOTHING, "2026-11-28 00:00",
         "rate_limited: daily cap of 5 reached"},
        {true, true, 0, "2026-11-27 22:00", DISPATCH_DO_NOTHING, "2026-11-28 07:00", "quiet_hours"},
        /* quiet hours before the cap: a capped guardian at night waits for the morning first */
        {true, true, 9, "2026-11-27 22:00", DISPATCH_DO_NOTHING, "2026-11-28 07:00", "quiet_hours"},
        {false, true, 0, "2026-11-27 22:00", DISPATCH_DO_SEND, NULL, ""},  /* staff: no quiet */
        {false, false, 9, "2026-11-27 10:00", DISPATCH_DO_SEND, NULL, ""}, /* not SMS: no cap */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        dispatch_input in = {0};
        in.state = DISPATCH_QUEUED;
        in.event = DISPATCH_EV_DUE;
        in.to_guardian = rows[i].guardian;
        in.is_sms = rows[i].sms;
        in.sent_today = rows[i].sent_today;
        in.attempt = 1;
        in.now = t(rows[i].now);
        dispatch_output out;
        dispatch_next(&p, &in, &out);
        bx_time_ms due = rows[i].due ? t(rows[i].due) : in.now + p.lease_ms;
        if (out.action != rows[i].action || out.due_at != due ||
            strcmp(out.reason, rows[i].reason) != 0)
            BX_FAIL_AT("row %zu: action %d due %lld reason \"%s\"", i, (int)out.action,
                       (long long)out.due_at, out.reason);
        if (rows[i].action == DISPATCH_DO_SEND) {
            CHECK_INT(out.state, DISPATCH_SENDING);
            CHECK_INT(out.attempt, 2);
            CHECK_INT(out.status, DISPATCH_ST_NONE);
        } else {
            CHECK_INT(out.state, DISPATCH_QUEUED);
            CHECK_INT(out.status, DISPATCH_ST_QUEUED);
            CHECK_INT(out.attempt, 1);
        }
    }
}

BX_TEST(state_transitions_table)
{
    dispatch_policy p = policy();
    bx_time_ms now = t("2026-11-27 10:00");
    enum { NOW = 1, LEASE, QUERY, CHECK_R, BACKOFF, NONE_DUE, LIMIT };
    static const struct {
        dispatch_state state;
        dispatch_event event;
        dispatch_answer answer;
        int attempt;
        int64_t since_send_ms; /* now - last_send_at */
        dispatch_state want_state;
        dispatch_action want_action;
        dispatch_status want_status;
        int want_due; /* which due time */
        bool changed;
        const char *reason_has;
    } rows[] = {
        /* a send answered */
        {DISPATCH_SENDING, DISPATCH_EV_SEND, DISPATCH_ANS_ACCEPTED, 1, 0, DISPATCH_SENT,
         DISPATCH_DO_NOTHING, DISPATCH_ST_SENT, CHECK_R, true, ""},
        {DISPATCH_SENDING, DISPATCH_EV_SEND, DISPATCH_ANS_TRANSIENT, 1, 0, DISPATCH_QUEUED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_FAILED, BACKOFF, true, "HTTP 503; retrying"},
        {DISPATCH_SENDING, DISPATCH_EV_SEND, DISPATCH_ANS_TRANSIENT, 4, 0, DISPATCH_DEAD,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DEAD, NONE_DUE, true, "gave up after 4 attempts"},
        {DISPATCH_SENDING, DISPATCH_EV_SEND, DISPATCH_ANS_PERMANENT, 1, 0, DISPATCH_DEAD,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DEAD, NONE_DUE, true, "refused by the provider"},
        {DISPATCH_SENDING, DISPATCH_EV_SEND, DISPATCH_ANS_UNKNOWN, 1, 0, DISPATCH_UNKNOWN,
         DISPATCH_DO_NOTHING, DISPATCH_ST_FAILED, QUERY, true, "checking before any retry"},
        /* a receipt came before the send's answer was stored: the answer changes nothing */
        {DISPATCH_DELIVERED, DISPATCH_EV_SEND, DISPATCH_ANS_ACCEPTED, 1, 0, DISPATCH_DELIVERED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, NONE_DUE, false, ""},
        /* due again while an answer is missing: ask, never send */
        {DISPATCH_UNKNOWN, DISPATCH_EV_DUE, 0, 1, 5000, DISPATCH_UNKNOWN, DISPATCH_DO_QUERY,
         DISPATCH_ST_NONE, LEASE, false, ""},
        {DISPATCH_SENDING, DISPATCH_EV_DUE, 0, 1, 30000, DISPATCH_SENDING, DISPATCH_DO_QUERY,
         DISPATCH_ST_NONE, LEASE, false, ""},
        {DISPATCH_SENT, DISPATCH_EV_DUE, 0, 1, 60000, DISPATCH_SENT, DISPATCH_DO_QUERY,
         DISPATCH_ST_NONE, LEASE, false, ""},
        /* the query's answer */
        {DISPATCH_UNKNOWN, DISPATCH_EV_QUERY, DISPATCH_ANS_NONE, 1, 5000, DISPATCH_QUEUED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_FAILED, BACKOFF, true, "no record"},
        {DISPATCH_UNKNOWN, DISPATCH_EV_QUERY, DISPATCH_ANS_NONE, 4, 5000, DISPATCH_DEAD,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DEAD, NONE_DUE, true, "gave up after 4"},
        {DISPATCH_SENDING, DISPATCH_EV_QUERY, DISPATCH_ANS_NONE, 2, 30000, DISPATCH_QUEUED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_FAILED, BACKOFF, true, "no record"},
        {DISPATCH_UNKNOWN, DISPATCH_EV_QUERY, DISPATCH_ANS_PENDING, 1, 5000, DISPATCH_SENT,
         DISPATCH_DO_NOTHING, DISPATCH_ST_SENT, CHECK_R, true, ""},
        {DISPATCH_SENT, DISPATCH_EV_QUERY, DISPATCH_ANS_PENDING, 1, 60000, DISPATCH_SENT,
         DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, CHECK_R, true, ""},
        {DISPATCH_SENT, DISPATCH_EV_QUERY, DISPATCH_ANS_NONE, 1, 60000, DISPATCH_SENT,
         DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, CHECK_R, true, ""},
        {DISPATCH_SENT, DISPATCH_EV_QUERY, DISPATCH_ANS_PENDING, 1, 3600000, DISPATCH_DEAD,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DEAD, NONE_DUE, true, "no delivery report"},
        {DISPATCH_UNKNOWN, DISPATCH_EV_QUERY, DISPATCH_ANS_DELIVERED, 1, 5000, DISPATCH_DELIVERED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DELIVERED, NONE_DUE, true, ""},
        {DISPATCH_SENT, DISPATCH_EV_QUERY, DISPATCH_ANS_FAILED, 1, 60000, DISPATCH_DEAD,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DEAD, NONE_DUE, true, "not delivered"},
        /* no query possible: wait for a receipt up to the limit, then dead, never resent */
        {DISPATCH_UNKNOWN, DISPATCH_EV_NO_QUERY, 0, 1, 5000, DISPATCH_UNKNOWN, DISPATCH_DO_NOTHING,
         DISPATCH_ST_NONE, CHECK_R, true, ""},
        {DISPATCH_SENDING, DISPATCH_EV_NO_QUERY, 0, 1, 30000, DISPATCH_UNKNOWN, DISPATCH_DO_NOTHING,
         DISPATCH_ST_NONE, CHECK_R, true, ""},
        {DISPATCH_UNKNOWN, DISPATCH_EV_NO_QUERY, 0, 1, 3600000 - 1000, DISPATCH_UNKNOWN,
         DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, LIMIT, true, ""},
        {DISPATCH_UNKNOWN, DISPATCH_EV_NO_QUERY, 0, 1, 3600000, DISPATCH_DEAD, DISPATCH_DO_NOTHING,
         DISPATCH_ST_DEAD, NONE_DUE, true, "not resent"},
        {DISPATCH_SENT, DISPATCH_EV_NO_QUERY, 0, 1, 3600001, DISPATCH_DEAD, DISPATCH_DO_NOTHING,
         DISPATCH_ST_DEAD, NONE_DUE, true, "no delivery report"},
        /* receipts */
        {DISPATCH_SENT, DISPATCH_EV_RECEIPT, DISPATCH_ANS_DELIVERED, 1, 1000, DISPATCH_DELIVERED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DELIVERED, NONE_DUE, true, ""},
        {DISPATCH_UNKNOWN, DISPATCH_EV_RECEIPT, DISPATCH_ANS_DELIVERED, 1, 1000, DISPATCH_DELIVERED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DELIVERED, NONE_DUE, true, ""},
        {DISPATCH_SENDING, DISPATCH_EV_RECEIPT, DISPATCH_ANS_PENDING, 1, 1000, DISPATCH_SENT,
         DISPATCH_DO_NOTHING, DISPATCH_ST_SENT, CHECK_R, true, ""},
        {DISPATCH_SENT, DISPATCH_EV_RECEIPT, DISPATCH_ANS_PENDING, 1, 1000, DISPATCH_SENT,
         DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, NONE_DUE, false, ""},
        {DISPATCH_SENT, DISPATCH_EV_RECEIPT, DISPATCH_ANS_FAILED, 1, 1000, DISPATCH_DEAD,
         DISPATCH_DO_NOTHING, DISPATCH_ST_DEAD, NONE_DUE, true, "not delivered"},
        /* duplicate receipts change nothing */
        {DISPATCH_DELIVERED, DISPATCH_EV_RECEIPT, DISPATCH_ANS_DELIVERED, 1, 1000,
         DISPATCH_DELIVERED, DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, NONE_DUE, false, ""},
        {DISPATCH_DEAD, DISPATCH_EV_RECEIPT, DISPATCH_ANS_DELIVERED, 1, 1000, DISPATCH_DEAD,
         DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, NONE_DUE, false, ""},
        {DISPATCH_DELIVERED, DISPATCH_EV_RECEIPT, DISPATCH_ANS_FAILED, 1, 1000, DISPATCH_DELIVERED,
         DISPATCH_DO_NOTHING, DISPATCH_ST_NONE, NONE_DUE, false, ""},
        /* collected tasks and finished ones are never sent */
        {DISPATCH_COLLECTED, DISPATCH_EV_DUE, 0, 0, 0, DISPATCH_COLLECTED, DISPATCH_DO_NOTHING,
         DISPATCH_ST_NONE, NONE_DUE, false, ""},
        {DISPATCH_DELIVERED, DISPATCH_EV_DUE, 0, 1, 0, DISPATCH_DELIVERED, DISPATCH_DO_NOTHING,
         DISPATCH_ST_NONE, NONE_DUE, false, ""},
        {DISPATCH_QUEUED, DISPATCH_EV_DUE, 0, 4, 0, DISPATCH_DEAD, DISPATCH_DO_NOTHING,
         DISPATCH_ST_DEAD, NONE_DUE, true, "gave up after 4"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        dispatch_input in = {0};
        in.state = rows[i].state;
        in.event = rows[i].event;
        in.answer = rows[i].answer;
        in.attempt = rows[i].attempt;
        in.now = now;
        in.last_send_at = now - rows[i].since_send_ms;
        in.random = UINT32_MAX;
        in.is_sms = true;
        in.detail = "HTTP 503";
        dispatch_output out;
        dispatch_next(&p, &in, &out);
        bx_time_ms due = 0;
        switch (rows[i].want_due) {
        case LEASE:
            due = now + p.lease_ms;
            break;
        case QUERY:
            due = now + p.query_delay_ms;
            break;
        case CHECK_R:
            due = now + p.receipt_check_ms;
            break;
        case BACKOFF:
            due = now + dispatch_backoff_ms(&p, rows[i].attempt, UINT32_MAX);
            break;
        case LIMIT:
            due = in.last_send_at + p.receipt_limit_ms;
            break;
        default:
            due = 0;
        }
        if (out.state != rows[i].want_state || out.action != rows[i].want_action ||
            out.status != rows[i].want_status || out.changed != rows[i].changed ||
            (rows[i].want_due != NOW && out.due_at != due && rows[i].changed) ||
            strstr(out.reason, rows[i].reason_has) == NULL)
            BX_FAIL_AT("row %zu: %s --%d/%d--> %s action %d status %s due %+lld changed %d "
                       "reason \"%s\"",
                       i, dispatch_state_name(rows[i].state), (int)rows[i].event,
                       (int)rows[i].answer, dispatch_state_name(out.state), (int)out.action,
                       dispatch_status_name(out.status), (long long)(out.due_at - now),
                       (int)out.changed, out.reason);
        if (rows[i].want_action == DISPATCH_DO_QUERY)
            CHECK_INT(out.due_at, due);
        if (out.state == DISPATCH_DEAD && out.changed)
            CHECK(out.reason[0] != '\0');
    }
}

/* The never-twice rule over every state and answer: a new send starts only from queued, and a
 * notification gets to queued from a send only when the provider said it was not sent. */
BX_TEST(no_resend_without_a_no)
{
    dispatch_policy p = policy();
    bx_time_ms now = t("2026-11-27 10:00");
    for (int st = DISPATCH_QUEUED; st <= DISPATCH_DIGESTED; st++)
        for (int ev = DISPATCH_EV_DUE; ev <= DISPATCH_EV_NO_QUERY; ev++)
            for (int ans = DISPATCH_ANS_ACCEPTED; ans <= DISPATCH_ANS_FAILED; ans++)
                for (int64_t since = 0; since <= 2 * p.receipt_limit_ms;
                     since += p.receipt_limit_ms) {
                    dispatch_input in = {0};
                    in.state = (dispatch_state)st;
                    in.event = (dispatch_event)ev;
                    in.answer = (dispatch_answer)ans;
                    in.attempt = 1;
                    in.now = now;
                    in.last_send_at = now - since;
                    in.is_sms = true;
                    dispatch_output out;
                    dispatch_next(&p, &in, &out);
                    if (out.action == DISPATCH_DO_SEND && st != DISPATCH_QUEUED)
                        BX_FAIL_AT("send from %s", dispatch_state_name(in.state));
                    bool said_not_sent =
                        (ev == DISPATCH_EV_SEND && ans == DISPATCH_ANS_TRANSIENT) ||
                        (ev == DISPATCH_EV_QUERY && ans == DISPATCH_ANS_NONE);
                    if (st != DISPATCH_QUEUED && out.state == DISPATCH_QUEUED && !said_not_sent)
                        BX_FAIL_AT("%s back to queued on event %d answer %d",
                                   dispatch_state_name(in.state), ev, ans);
                    if (dispatch_state_final(in.state) && out.changed)
                        BX_FAIL_AT("final %s changed on event %d answer %d",
                                   dispatch_state_name(in.state), ev, ans);
                }
}

BX_TEST(state_names_round_trip)
{
    for (int st = DISPATCH_QUEUED; st <= DISPATCH_DIGESTED; st++) {
        dispatch_state back = DISPATCH_QUEUED;
        CHECK(dispatch_state_parse(dispatch_state_name((dispatch_state)st), &back) == BX_OK);
        CHECK_INT(back, st);
    }
    dispatch_state x;
    CHECK(dispatch_state_parse("failed", &x) == BX_EINVAL);
}

/* Issue 15: a staff task due before the digest could tell its owner in time goes at once as its
 * own SMS; the rest wait for the digest (16:30 here). */
BX_TEST(timely_tasks_table)
{
    static const struct {
        const char *now, *due; /* due NULL: no deadline known */
        const char *next_digest;
        bool timely;
    } rows[] = {
        /* the same-day contact opened in the morning, due 17:00: the 16:30 list is too late */
        {"2026-09-28 08:30", "2026-09-28 17:00", "2026-09-28 16:30", true},
        /* due before the digest itself */
        {"2026-09-28 08:30", "2026-09-28 12:00", "2026-09-28 16:30", true},
        /* due tomorrow: today's digest tells the owner a day ahead */
        {"2026-09-28 08:30", "2026-09-29 17:00", "2026-09-28 16:30", false},
        /* made after today's digest, due tomorrow: tomorrow's 16:30 list is too late */
        {"2026-09-28 17:00", "2026-09-29 17:00", "2026-09-29 16:30", true},
        {"2026-09-28 16:30", "2026-09-29 17:00", "2026-09-29 16:30", true},
        /* due the day after tomorrow: tomorrow's digest is in time */
        {"2026-09-28 17:00", "2026-09-30 17:00", "2026-09-29 16:30", false},
        /* a monthly record */
        {"2026-10-10 09:00", "2026-11-10 17:00", "2026-10-10 16:30", false},
        {"2026-09-28 08:30", NULL, "2026-09-28 16:30", false},
    };
    int digest = 16 * 60 + 30;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bx_time_ms now = t(rows[i].now);
        CHECK_INT(dispatch_next_digest(digest, now), t(rows[i].next_digest));
        CHECK_INT(dispatch_task_timely(digest, now, rows[i].due ? t(rows[i].due) : 0),
                  rows[i].timely);
    }
}
