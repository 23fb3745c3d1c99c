/* bx_retry: the retry loop every consumer shares. */
#include "bx_retry.h"

#include "bx_log.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define DEFAULT_MIN_MS 200
#define DEFAULT_MAX_MS 5000
#define SLICE_MS       100

bool bx_status_is_retriable(bx_status s)
{
    switch (s) {
    case BX_EIO:
    case BX_ETIMEOUT:
    case BX_ETRANSIENT:
    case BX_ENOMEM:
        return true;
    default:
        return false;
    }
}

static void sleep_slices(const volatile sig_atomic_t *running, int ms)
{
    while (ms > 0 && *running) {
        int slice = ms < SLICE_MS ? ms : SLICE_MS;
        struct timespec ts = {0, (long)slice * 1000000L};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR && *running)
            ;
        ms -= slice;
    }
}

/* A wait in [backoff / 2, backoff]; rand() is enough to spread consumers apart. */
static int jittered(int backoff)
{
    int half = backoff / 2;
    return half + (half > 0 ? rand() % (backoff - half + 1) : 0);
}

bx_retry_verdict bx_retry_run(const bx_retry_ops *ops, void *arg, bx_error *err)
{
    assert(ops->attempt && ops->running);
    int min_ms = ops->min_ms > 0 ? ops->min_ms : DEFAULT_MIN_MS;
    int max_ms = ops->max_ms > 0 ? ops->max_ms : DEFAULT_MAX_MS;
    if (max_ms < min_ms)
        max_ms = min_ms;
    const char *what = ops->what ? ops->what : "input";
    int backoff = min_ms;
    for (int tries = 1;; tries++) {
        bx_error local = {0};
        bx_error *e = err ? err : &local;
        bx_status s = ops->attempt(arg, e);
        if (s == BX_OK)
            return BX_RETRY_DONE;
        if (s == BX_EFATAL) {
            bx_log_error("%s failed (%s); stopping", what, e->msg);
            return BX_RETRY_STOPPED;
        }
        if (!bx_status_is_retriable(s))
            return BX_RETRY_DEADLETTER;
        if (ops->max_attempts > 0 && tries >= ops->max_attempts) {
            bx_log_error("%s failed %d times (%s); giving up", what, tries, e->msg);
            return BX_RETRY_DEADLETTER;
        }
        int wait = ops->jitter ? jittered(backoff) : backoff;
        bx_log_error("%s failed (%s); retrying in %d ms", what, e->msg, wait);
        if (!*ops->running)
            return BX_RETRY_STOPPED;
        if (ops->sleep_ms)
            ops->sleep_ms(arg, wait);
        else
            sleep_slices(ops->running, wait);
        backoff = backoff > max_ms / 2 ? max_ms : backoff * 2;
        if (ops->recover)
            ops->recover(arg);
        if (!*ops->running)
            return BX_RETRY_STOPPED;
    }
}
