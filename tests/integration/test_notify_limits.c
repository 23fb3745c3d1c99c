/* bx-notify's provider-wide rate (services/bx-notify/limits.h) against the real Redis: replicas
 * with their own connections draw from one budget, by the time they are given. */
#include "bx_itest.h"
#include "bx_redis.h"
#include "bx_test.h"
#include "limits.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static redisContext *connect_redis(void)
{
    redisContext *r = NULL;
    bx_error err = {0};
    REQUIRE(bx_redis_connect(itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799"), 5000, &r,
                             &err) == BX_OK);
    return r;
}

static void unique_key(char *out, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, size, "bx:itest:notify:limits:%d:%ld", (int)getpid(), (long)ts.tv_nsec);
}

BX_TEST(replicas_share_one_budget)
{
    enum { REPLICAS = 3, RATE = 10, BURST = 4 };
    char key[96];
    unique_key(key, sizeof(key));
    redisContext *conn[REPLICAS];
    limits_rate *rate[REPLICAS];
    bx_error err = {0};
    for (int i = 0; i < REPLICAS; i++) {
        conn[i] = connect_redis();
        REQUIRE(limits_rate_new(conn[i], key, RATE, BURST, &rate[i], &err) == BX_OK);
    }
    bx_time_ms t0 = 1795000000000LL;
    /* at one instant, over all replicas: the burst and no more */
    int taken = 0;
    int64_t wait = 0;
    for (int k = 0; k < 30; k++) {
        REQUIRE(limits_rate_take(rate[k % REPLICAS], t0, &wait, &err) == BX_OK);
        taken += wait == 0;
    }
    CHECK_INT(taken, BURST);
    /* the next slot is one emission interval (100 ms) after the burst's last */
    REQUIRE(limits_rate_take(rate[0], t0, &wait, &err) == BX_OK);
    CHECK_INT(wait, 100);
    /* over 10 s in 10 ms steps, everyone asking: 10 a second plus the burst */
    taken = 0;
    for (bx_time_ms t = t0 + 10; t <= t0 + 10000; t += 10)
        for (int i = 0; i < REPLICAS; i++) {
            REQUIRE(limits_rate_take(rate[i], t, &wait, &err) == BX_OK);
            taken += wait == 0;
        }
    CHECK_INT(taken, RATE * 10);
    for (int i = 0; i < REPLICAS; i++) {
        limits_rate_free(rate[i]);
        redisFree(conn[i]);
    }
}

BX_TEST(no_rate_takes_everything_without_redis)
{
    limits_rate *rate = NULL;
    bx_error err = {0};
    /* no connection at all: a zero rate never calls Redis */
    REQUIRE(limits_rate_new(NULL, "unused", 0, 1, &rate, &err) == BX_OK);
    int64_t wait = 1;
    for (int i = 0; i < 1000; i++) {
        REQUIRE(limits_rate_take(rate, 1795000000000LL, &wait, &err) == BX_OK);
        CHECK_INT(wait, 0);
    }
    limits_rate_free(rate);
    CHECK(limits_rate_new(NULL, "k", -1, 1, &rate, &err) == BX_EINVAL);
    CHECK(limits_rate_new(NULL, "k", 5, 0, &rate, &err) == BX_EINVAL);
}

BX_TEST(a_clock_set_back_does_not_block_for_long)
{
    char key[96];
    unique_key(key, sizeof(key));
    redisContext *c = connect_redis();
    limits_rate *rate = NULL;
    bx_error err = {0};
    REQUIRE(limits_rate_new(c, key, 1, 1, &rate, &err) == BX_OK);
    int64_t wait = 0;
    bx_time_ms t = 1795000000000LL;
    REQUIRE(limits_rate_take(rate, t, &wait, &err) == BX_OK);
    CHECK_INT(wait, 0);
    REQUIRE(limits_rate_take(rate, t, &wait, &err) == BX_OK);
    CHECK_INT(wait, 1000);
    /* a driven clock moved back two days: the stale budget is reset, not waited out */
    REQUIRE(limits_rate_take(rate, t - 2 * 86400000LL, &wait, &err) == BX_OK);
    CHECK_INT(wait, 0);
    limits_rate_free(rate);
    redisFree(c);
}
