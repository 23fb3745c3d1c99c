/* limits: the provider-wide rate as GCRA in Redis. The theoretical arrival time (TAT) of the next
 * send is one key in microseconds; a send is allowed when TAT - now <= the burst tolerance, and
 * moves TAT one emission interval on. The script runs atomically, so every replica shares one
 * budget. */
#include "limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] the TAT key; ARGV: now (us), emission interval (us), tolerance (us).
 * Returns 0 when taken, else the wait in microseconds. A TAT more than an hour ahead (a driven
 * clock set back) is reset. */
static const char gcra_script[] =
    "local now = tonumber(ARGV[1]) local T = tonumber(ARGV[2]) local tau = tonumber(ARGV[3]) "
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if tat < now or tat > now + tau + 3600000000 then tat = now end "
    "if tat - now > tau then return tat - now - tau end "
    "redis.call('SET', KEYS[1], string.format('%d', tat + T), 'PX', "
    "  math.floor((tat + T - now) / 1000) + 1000) "
    "return 0";

struct limits_rate {
    redisContext *redis;
    const char *key;
    int64_t interval_us, tolerance_us;
    char sha[41];
};

static bx_status load_script(limits_rate *r, bx_error *err)
{
    redisReply *rep = redisCommand(r->redis, "SCRIPT LOAD %s", gcra_script);
    bx_status s = BX_OK;
    if (rep == NULL || rep->type != REDIS_REPLY_STRING || rep->len != 40)
        s = BX_ERR(err, BX_EIO, "redis: cannot load the rate script: %s",
                   rep && rep->type == REDIS_REPLY_ERROR ? rep->str : r->redis->errstr);
    else
        memcpy(r->sha, rep->str, 41);
    freeReplyObject(rep);
    return s;
}

bx_status limits_rate_new(redisContext *redis, const char *key, double per_second, int burst,
                          limits_rate **out, bx_error *err)
{
    *out = NULL;
    if (per_second < 0 || per_second > 1e6 || burst < 1 || burst > 100000)
        return BX_ERR(err, BX_EINVAL,
                      "rate limit: %g per second with a burst of %d is out of range", per_second,
                      burst);
    limits_rate *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return BX_ERR(err, BX_ENOMEM, "rate limit: out of memory");
    r->redis = redis;
    r->key = key;
    if (per_second > 0) {
        r->interval_us = (int64_t)(1e6 / per_second);
        if (r->interval_us < 1)
            r->interval_us = 1;
        r->tolerance_us = r->interval_us * (burst - 1);
        bx_status s = load_script(r, err);
        if (s != BX_OK) {
            free(r);
            return s;
        }
    }
    *out = r;
    return BX_OK;
}

void limits_rate_free(limits_rate *r)
{
    free(r);
}

bx_status limits_rate_take(limits_rate *r, bx_time_ms now, int64_t *wait_ms, bx_error *err)
{
    *wait_ms = 0;
    if (r->interval_us == 0)
        return BX_OK;
    char now_us[32], interval[32], tolerance[32];
    snprintf(now_us, sizeof(now_us), "%lld", (long long)now * 1000);
    snprintf(interval, sizeof(interval), "%lld", (long long)r->interval_us);
    snprintf(tolerance, sizeof(tolerance), "%lld", (long long)r->tolerance_us);
    for (int tries = 0; tries < 2; tries++) {
        redisReply *rep = redisCommand(r->redis, "EVALSHA %s 1 %s %s %s %s", r->sha, r->key, now_us,
                                       interval, tolerance);
        if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(rep);
            bx_status s = load_script(r, err); /* Redis restarted or flushed its scripts */
            if (s != BX_OK)
                return s;
            continue;
        }
        bx_status s = BX_OK;
        if (rep == NULL || rep->type != REDIS_REPLY_INTEGER)
            s = BX_ERR(err, BX_EIO, "redis: rate script failed: %s",
                       rep && rep->type == REDIS_REPLY_ERROR ? rep->str : r->redis->errstr);
        else if (rep->integer > 0)
            *wait_ms = (rep->integer + 999) / 1000;
        freeReplyObject(rep);
        return s;
    }
    return BX_ERR(err, BX_EIO, "redis: rate script not loaded");
}
