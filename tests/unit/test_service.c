/* Unit tests for bx_service_run: the order of a service's calls, its exit codes, and the one
 * cleanup path, with a fake service. */
#include "bx_service.h"
#include "bx_test.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    bx_common_conf common;
    const char *name;
    long long tick_ms;
} st;

static const bx_conf_row rows[] = {
    BX_CONF_LOG_LEVEL(&st.common.log_level),
    BX_CONF_CLOCK(&st.common.clock),
    BX_CONF_METRICS_LISTEN(&st.common.metrics_listen),
    BX_CONF_STR("BXT_NAME", "fake", &st.name, "a setting of the fake service"),
    BX_CONF_NUM("BXT_TICK_MS", "1", 1, 1000, &st.tick_ms, "tick period"),
};

static char calls[256];
static bx_status fail_prepare, fail_start;
static int steps;

static void called(const char *what)
{
    size_t used = strlen(calls);
    snprintf(calls + used, sizeof(calls) - used, "%s ", what);
}

static bx_status prepare(bx_error *err)
{
    called("prepare");
    return fail_prepare ? BX_ERR(err, fail_prepare, "prepare failed") : BX_OK;
}

static void release(void)
{
    called("release");
}

static int the_service = 42;

static bx_status start(void **service, bx_error *err)
{
    called("start");
    *service = &the_service;
    return fail_start ? BX_ERR(err, fail_start, "start failed") : BX_OK;
}

static void step(void *service)
{
    CHECK(service == &the_service);
    if (steps++ == 0)
        called("step");
    struct timespec pause = {0, 2 * 1000000L};
    nanosleep(&pause, NULL);
    if (steps == 5)
        raise(SIGTERM); /* the handler clears the running flag */
}

static void tick(void *service)
{
    if (!strstr(calls, "tick"))
        called("tick");
}

static void stop(void *service)
{
    CHECK(service == &the_service);
    called("stop");
}

static int run(void)
{
    const bx_service_def def = {
        .name = "bx-fake",
        .about = "a fake service",
        .rows = rows,
        .nrows = sizeof(rows) / sizeof(rows[0]),
        .common = &st.common,
        .tick_ms = &st.tick_ms,
        .ops = {prepare, release, start, step, tick, NULL, stop},
    };
    char *argv[] = {"bx-fake", NULL};
    calls[0] = '\0';
    steps = 0;
    return bx_service_run(&def, 1, argv);
}

BX_TEST(runs_until_stopped_then_cleans_up_once)
{
    CHECK_INT(run(), 0);
    CHECK_STR(calls, "prepare start step tick stop release ");
    CHECK(*bx_service_running() == 0);
    CHECK(st.name == NULL); /* the settings are freed */
}

BX_TEST(a_failed_prepare_exits_2_without_starting)
{
    fail_prepare = BX_EINVAL;
    CHECK_INT(run(), 2);
    CHECK_STR(calls, "prepare release ");
}

BX_TEST(a_failed_start_exits_1_through_the_same_cleanup)
{
    fail_start = BX_EIO;
    CHECK_INT(run(), 1);
    CHECK_STR(calls, "prepare start stop release ");
}

BX_TEST(a_bad_setting_exits_2_before_anything_runs)
{
    setenv("BXT_TICK_MS", "0", 1);
    CHECK_INT(run(), 2);
    CHECK_STR(calls, "");
    unsetenv("BXT_TICK_MS");
}
