/* Unit tests for bx_retry: which classes retry, and the loop's three verdicts. */
#include "bx_retry.h"
#include "bx_test.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

BX_TEST(status_classes)
{
    static const struct {
        bx_status s;
        bool retriable;
    } rows[] = {
        {BX_OK, false},        {BX_EINVAL, false},    {BX_ENOMEM, true},   {BX_EIO, true},
        {BX_ENOTFOUND, false}, {BX_ECONFLICT, false}, {BX_ETIMEOUT, true}, {BX_ETRANSIENT, true},
        {BX_EFATAL, false},    {BX_EDENIED, false},
    };
    for (size_t i = 0; i < COUNT(rows); i++)
        CHECK_INT(bx_status_is_retriable(rows[i].s), rows[i].retriable);
}

/* A scripted attempt: returns script[tries] (BX_OK past the end), records the waits. */
typedef struct script {
    const bx_status *results;
    int nresults;
    int tries, recovers;
    int waits[32];
    int nwaits;
    volatile sig_atomic_t running;
    int stop_after_tries; /* clears running after this many tries; 0: never */
} script;

static bx_status attempt(void *arg, bx_error *err)
{
    script *sc = arg;
    bx_status s = sc->tries < sc->nresults ? sc->results[sc->tries] : BX_OK;
    sc->tries++;
    if (sc->stop_after_tries && sc->tries >= sc->stop_after_tries)
        sc->running = 0;
    return s == BX_OK ? BX_OK : BX_ERR(err, s, "try %d", sc->tries);
}

static void recover(void *arg)
{
    ((script *)arg)->recovers++;
}

static void record_sleep(void *arg, int ms)
{
    script *sc = arg;
    if (sc->nwaits < (int)COUNT(sc->waits))
        sc->waits[sc->nwaits++] = ms;
}

static bx_retry_ops ops_for(script *sc)
{
    sc->running = 1;
    return (bx_retry_ops){.attempt = attempt,
                          .recover = recover,
                          .running = &sc->running,
                          .min_ms = 200,
                          .max_ms = 5000,
                          .what = "bx.test.v1 [0] offset 1",
                          .sleep_ms = record_sleep};
}

BX_TEST(retriable_then_success)
{
    static const bx_status results[] = {BX_EIO, BX_ETIMEOUT, BX_ETRANSIENT};
    script sc = {.results = results, .nresults = 3};
    bx_retry_ops ops = ops_for(&sc);
    bx_error err = {0};
    CHECK_INT(bx_retry_run(&ops, &sc, &err), BX_RETRY_DONE);
    CHECK_INT(sc.tries, 4);
    CHECK_INT(sc.recovers, 3);
    CHECK_INT(sc.nwaits, 3);
    CHECK_INT(sc.waits[0], 200);
    CHECK_INT(sc.waits[1], 400);
    CHECK_INT(sc.waits[2], 800);
}

BX_TEST(not_retriable_is_a_dead_letter)
{
    static const bx_status results[] = {BX_EIO, BX_EINVAL};
    script sc = {.results = results, .nresults = 2};
    bx_retry_ops ops = ops_for(&sc);
    bx_error err = {0};
    CHECK_INT(bx_retry_run(&ops, &sc, &err), BX_RETRY_DEADLETTER);
    CHECK_INT(sc.tries, 2);
    CHECK_INT(err.status, BX_EINVAL);
    CHECK_STR(err.msg, "try 2");
}

BX_TEST(max_attempts_turns_retriable_into_a_dead_letter)
{
    static const bx_status results[] = {BX_EIO, BX_EIO, BX_EIO, BX_EIO};
    script sc = {.results = results, .nresults = 4};
    bx_retry_ops ops = ops_for(&sc);
    ops.max_attempts = 3;
    bx_error err = {0};
    CHECK_INT(bx_retry_run(&ops, &sc, &err), BX_RETRY_DEADLETTER);
    CHECK_INT(sc.tries, 3);
    CHECK_INT(sc.nwaits, 2);
    CHECK_INT(err.status, BX_EIO);
}

BX_TEST(running_cleared_stops)
{
    static const bx_status results[] = {BX_EIO, BX_EIO, BX_EIO, BX_EIO, BX_EIO};
    script sc = {.results = results, .nresults = 5, .stop_after_tries = 2};
    bx_retry_ops ops = ops_for(&sc);
    bx_error err = {0};
    CHECK_INT(bx_retry_run(&ops, &sc, &err), BX_RETRY_STOPPED);
    CHECK_INT(sc.tries, 2);
    CHECK_INT(err.status, BX_EIO);
    /* and a flag already down stops after the first failure, with no wait */
    script again = {.results = results, .nresults = 5, .stop_after_tries = 1};
    ops = ops_for(&again);
    CHECK_INT(bx_retry_run(&ops, &again, &err), BX_RETRY_STOPPED);
    CHECK_INT(again.tries, 1);
    CHECK_INT(again.nwaits, 0);
}

BX_TEST(fatal_stops_with_the_error)
{
    static const bx_status results[] = {BX_ETRANSIENT, BX_EFATAL};
    script sc = {.results = results, .nresults = 2};
    bx_retry_ops ops = ops_for(&sc);
    bx_error err = {0};
    CHECK_INT(bx_retry_run(&ops, &sc, &err), BX_RETRY_STOPPED);
    CHECK_INT(err.status, BX_EFATAL);
    CHECK_INT(sc.running, 1); /* the caller decides to stop */
}

BX_TEST(backoff_doubles_up_to_the_cap)
{
    static const bx_status results[] = {BX_EIO, BX_EIO, BX_EIO, BX_EIO, BX_EIO,
                                        BX_EIO, BX_EIO, BX_EIO, BX_EIO};
    script sc = {.results = results, .nresults = 9};
    bx_retry_ops ops = ops_for(&sc);
    CHECK_INT(bx_retry_run(&ops, &sc, NULL), BX_RETRY_DONE);
    static const int expected[] = {200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000};
    CHECK_INT(sc.nwaits, COUNT(expected));
    for (size_t i = 0; i < COUNT(expected); i++)
        CHECK_INT(sc.waits[i], expected[i]);
}

BX_TEST(jitter_stays_within_half_and_whole)
{
    static const bx_status results[] = {BX_EIO, BX_EIO, BX_EIO, BX_EIO, BX_EIO, BX_EIO, BX_EIO};
    script sc = {.results = results, .nresults = 7};
    bx_retry_ops ops = ops_for(&sc);
    ops.jitter = true;
    CHECK_INT(bx_retry_run(&ops, &sc, NULL), BX_RETRY_DONE);
    static const int backoff[] = {200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t i = 0; i < COUNT(backoff); i++)
        CHECK(sc.waits[i] >= backoff[i] / 2 && sc.waits[i] <= backoff[i]);
}

BX_TEST(real_sleep_waits_then_retries)
{
    static const bx_status results[] = {BX_EIO};
    script sc = {.results = results, .nresults = 1};
    bx_retry_ops ops = ops_for(&sc);
    ops.sleep_ms = NULL;
    ops.min_ms = 30;
    CHECK_INT(bx_retry_run(&ops, &sc, NULL), BX_RETRY_DONE);
    CHECK_INT(sc.tries, 2);
}
