/* bx_retry: error classes decide retries. One loop for every consumer: retry what may succeed
 * later, with a doubling backoff; hand back what will not, so the input is dead-lettered and the
 * partition moves on (after librdkafka's rd_kafka_error_is_retriable). */
#ifndef BX_RETRY_H
#define BX_RETRY_H

#include "bx_status.h"

#include <signal.h>
#include <stdbool.h>

/* True for the classes an outside system causes and a later try may not meet: BX_EIO,
 * BX_ETIMEOUT, BX_ETRANSIENT, BX_ENOMEM. False for BX_OK, for what is wrong with the input
 * (BX_EINVAL, BX_ENOTFOUND, BX_ECONFLICT, BX_EDENIED) and for BX_EFATAL. A limit that one input
 * reaches every time (a full table) is the input's fault: return it as BX_EINVAL, or bound the
 * tries with max_attempts. */
bool bx_status_is_retriable(bx_status s);

typedef enum bx_retry_verdict {
    BX_RETRY_DONE = 0,   /* attempt succeeded */
    BX_RETRY_DEADLETTER, /* the input cannot succeed: err says why; dead-letter it and move on */
    BX_RETRY_STOPPED     /* *running turned false, or BX_EFATAL (err set): stop the service */
} bx_retry_verdict;

typedef struct bx_retry_ops {
    /* One try, in its own transaction; it sets the service's health and counts failures if it
     * keeps such things. Required. */
    bx_status (*attempt)(void *arg, bx_error *err);
    /* Called after each backoff before the next try, e.g. to reconnect to PostgreSQL; may be
     * NULL. */
    void (*recover)(void *arg);
    /* The service's stop flag, read between tries and during the backoff; required. */
    const volatile sig_atomic_t *running;
    /* Backoff: min_ms after the first failure, doubled after each, at most max_ms (<= 0: 200 and
     * 5000). */
    int min_ms, max_ms;
    /* 0: retry a retriable failure until it succeeds or the service stops (an outage is waited
     * out). Else after this many failed tries the verdict is BX_RETRY_DEADLETTER. */
    int max_attempts;
    /* Each wait is drawn from [backoff / 2, backoff] rather than exactly backoff, so that
     * consumers that failed together do not retry together. */
    bool jitter;
    /* Names the input in log lines: "bx.actions.v1 [3] offset 42", "batch of 12 messages";
     * borrowed. */
    const char *what;
    /* Sleeps ms, returning early once *running is false; NULL: nanosleep in slices of at most
     * 100 ms. For tests. */
    void (*sleep_ms)(void *arg, int ms);
} bx_retry_ops;

/* Runs ops->attempt until it succeeds (BX_RETRY_DONE), fails with a status that is not retriable
 * or fails max_attempts times (BX_RETRY_DEADLETTER: err holds the last failure), or *running
 * turns false (BX_RETRY_STOPPED: err holds the last failure, if any). BX_EFATAL gives
 * BX_RETRY_STOPPED with err set, logged as an error; raising the stop flag is the caller's
 * decision. Each retriable failure is logged as "<what> failed (<message>); retrying in <n> ms".
 * arg is passed to the callbacks. */
bx_retry_verdict bx_retry_run(const bx_retry_ops *ops, void *arg, bx_error *err);

#endif
