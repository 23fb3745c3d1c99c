/* dispatch: bx-notify's decisions as pure functions (no Kafka, Redis or PostgreSQL): quiet hours,
 * backoff with full jitter, the per-recipient daily cap, and the state a notification moves to on
 * each event. The service does the I/O these decisions call for (service.c).
 *
 * States (notify.notification.state, schemas/sql/0005_notify.sql):
 *   queued    waiting for due_at (a first try, quiet hours, a cap, a retry)
 *   sending   the intent is recorded with its attempt number; the provider is being called
 *   unknown   the last send may or may not have reached the provider: ask before any retry
 *   sent      the provider accepted it; waiting for the delivery report
 *   delivered final: the handset got it
 *   dead      final: never delivered, the reason says why
 *   collected a staff task waiting for the daily digest; digested once listed in one
 * The rule that makes "never twice": a notification leaves sending/unknown/sent for a new send only
 * when the provider said it did not take it (a refusal before acceptance, or a query answering "no
 * record"). Without an answer it waits, and after receipt_limit_ms it is dead, never resent. */
#ifndef BX_NOTIFY_DISPATCH_H
#define BX_NOTIFY_DISPATCH_H

#include "bx_calendar.h"
#include "bx_status.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum dispatch_state {
    DISPATCH_QUEUED = 0,
    DISPATCH_SENDING,
    DISPATCH_UNKNOWN,
    DISPATCH_SENT,
    DISPATCH_DELIVERED,
    DISPATCH_DEAD,
    DISPATCH_COLLECTED,
    DISPATCH_DIGESTED
} dispatch_state;

const char *dispatch_state_name(dispatch_state s);
/* BX_EINVAL for a name that is not a state. */
bx_status dispatch_state_parse(const char *name, dispatch_state *out) BX_MUSTCHECK;
bool dispatch_state_final(dispatch_state s);

typedef struct dispatch_policy {
    int quiet_start_min; /* local minute quiet hours start (21:30 = 1290) */
    int quiet_end_min;   /* local minute they end (07:00 = 420); equal to start: no quiet hours */
    int daily_cap;       /* SMS per recipient per local day (0: no cap) */
    int max_attempts;    /* sends a notification may take before it is dead */
    int64_t retry_base_ms, retry_max_ms; /* backoff: full jitter in [0, min(max, base*2^(n-1))] */
    int64_t query_delay_ms;              /* after an unknown outcome: when to ask the provider */
    int64_t receipt_check_ms;            /* after acceptance: when to ask if no receipt came */
    int64_t receipt_limit_ms; /* after a send: how long to wait for an answer before it is dead */
    int64_t lease_ms;         /* a claimed notification is someone else's after this */
} dispatch_policy;

/* "HH:MM-HH:MM" (Asia/Shanghai) or "off"; BX_EINVAL naming what is wrong. */
bx_status dispatch_parse_quiet(const char *text, int *start_min, int *end_min,
                               bx_error *err) BX_MUSTCHECK;
/* "HH:MM" into minutes since local midnight. */
bx_status dispatch_parse_hhmm(const char *text, int *minute, bx_error *err) BX_MUSTCHECK;

/* now when now is outside quiet hours, else the instant they end. */
bx_time_ms dispatch_quiet_until(const dispatch_policy *p, bx_time_ms now);
/* The delay before retry number attempt (1 = after the first failed send), drawn with full jitter
 * from random (any 32-bit value; uniform random gives a uniform delay). */
int64_t dispatch_backoff_ms(const dispatch_policy *p, int attempt, uint32_t random);
/* The start of the next local day (00:00 Asia/Shanghai after now). */
bx_time_ms dispatch_next_day(bx_time_ms now);
/* The next daily digest after now: today's at digest_minute (local) if now is before it, else
 * tomorrow's. */
bx_time_ms dispatch_next_digest(int digest_minute, bx_time_ms now);
/* A staff task that is timely goes to its owner at once as its own SMS (the daily cap applies)
 * instead of waiting for the digest: it falls due before the next digest, or on that digest's
 * day, when the list would leave no working time to do it (a same-day contact due at 17:00
 * against a 16:30 digest). due_at 0 (unknown): never timely. */
bool dispatch_task_timely(int digest_minute, bx_time_ms now, bx_time_ms due_at);

/* What happens to a notification. */
typedef enum dispatch_event {
    DISPATCH_EV_DUE,     /* claimed at or after its due time */
    DISPATCH_EV_SEND,    /* the provider answered a send: outcome */
    DISPATCH_EV_QUERY,   /* the provider answered a query: answer */
    DISPATCH_EV_RECEIPT, /* a delivery receipt: answer */
    DISPATCH_EV_NO_QUERY /* the provider cannot be asked (wait for a receipt) */
} dispatch_event;

/* The provider's word, in provider.h's terms but without depending on it. */
typedef enum dispatch_answer {
    DISPATCH_ANS_ACCEPTED,  /* send: taken */
    DISPATCH_ANS_TRANSIENT, /* send: certainly not sent, retry later */
    DISPATCH_ANS_PERMANENT, /* send: certainly not sent, never will be */
    DISPATCH_ANS_UNKNOWN,   /* send: may have been sent */
    DISPATCH_ANS_NONE,      /* query: no record, it was not sent */
    DISPATCH_ANS_PENDING,   /* query or receipt: accepted, no report yet */
    DISPATCH_ANS_DELIVERED, /* query or receipt */
    DISPATCH_ANS_FAILED     /* query or receipt: accepted, not delivered */
} dispatch_answer;

typedef struct dispatch_input {
    dispatch_state state;
    dispatch_event event;
    dispatch_answer answer; /* for SEND, QUERY and RECEIPT */
    bool to_guardian;       /* quiet hours apply */
    bool is_sms;            /* caps apply (staff tasks are collected instead) */
    int attempt;            /* sends so far (including the one answered) */
    int sent_today;         /* sends to the recipient this local day, other notifications */
    bx_time_ms now;
    bx_time_ms last_send_at; /* when the last send started (0: never) */
    uint32_t random;         /* for the jitter */
    const char *detail;      /* the provider's words, put in reasons (borrowed; may be NULL) */
} dispatch_input;

/* What the service does next. */
typedef enum dispatch_action {
    DISPATCH_DO_NOTHING, /* only store the new state */
    DISPATCH_DO_SEND,    /* record the intent (state sending, attempt+1), commit, then send */
    DISPATCH_DO_QUERY    /* ask the provider what became of the last send */
} dispatch_action;

/* The status message to publish (bx.notify.status.v1), or none. */
typedef enum dispatch_status {
    DISPATCH_ST_NONE,
    DISPATCH_ST_QUEUED,
    DISPATCH_ST_SENT,
    DISPATCH_ST_DELIVERED,
    DISPATCH_ST_FAILED,
    DISPATCH_ST_DEAD
} dispatch_status;

const char *dispatch_status_name(dispatch_status s);

typedef struct dispatch_output {
    dispatch_state state;
    dispatch_action action;
    dispatch_status status;
    int attempt;       /* after the decision (one more when action is SEND) */
    bx_time_ms due_at; /* when the notification is looked at again (0 for final states) */
    char reason[200];  /* why it waits, failed or is dead ("" otherwise) */
    bool changed;      /* false: the event changes nothing (a duplicate receipt, say) */
} dispatch_output;

/* The one transition function. Pure: same input, same output. */
void dispatch_next(const dispatch_policy *p, const dispatch_input *in, dispatch_output *out);

#endif
