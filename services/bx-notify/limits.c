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
    bx_redis *redis; /* a wrapper of the caller's connection, or our own handle (url) */
    char *url;       /* our own: opened again from it after it broke */
    const char *key;
    int64_t interval_us, tolerance_us;
    char sha[41];
};

static bx_status load_script(limits_rate *r, bx_error *err)
{
    const char *argv[] = {"SCRIPT", "LOAD", gcra_script};
    const size_t len[] = {6, 4, strlen(gcra_script)};
    redisReply **rep = NULL;
    size_t n = 0;
    bx_status s = bx_redis_call_masters(r->redis, 3, argv, len, &rep, &n, err);
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        if (rep[i]->type != REDIS_REPLY_STRING || rep[i]->len != 40)
            s = BX_ERR(err, BX_EIO, "redis: cannot load the rate script: %s",
                       rep[i]->type == REDIS_REPLY_ERROR ? rep[i]->str : "unexpected answer");
        else
            memcpy(r->sha, rep[i]->str, 41);
    }
    if (s == BX_OK && n == 0)
        s = BX_ERR(err, BX_EIO, "redis: cannot load the rate script: no master");
    bx_redis_replies_free(rep, n);
    return s;
}

static bx_status rate_new(redisContext *conn, const char *url, const char *key, double per_second,
                          int burst, limits_rate **out, bx_error *err)
{
    *out = NULL;
    if (per_second < 0 || per_second > 1e6 || burst < 1 || burst > 100000)
        return BX_ERR(err, BX_EINVAL,
                      "rate limit: %g per second with a burst of %d is out of range", per_second,
                      burst);
    limits_rate *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return BX_ERR(err, BX_ENOMEM, "rate limit: out of memory");
    r->key = key;
    bx_status s = BX_OK;
    if (url) {
        r->url = strdup(url);
        s = r->url ? bx_redis_open(url, 10000, &r->redis, err)
                   : BX_ERR(err, BX_ENOMEM, "rate limit: out of memory");
    } else if (conn) {
        r->redis = bx_redis_wrap(conn);
        if (r->redis == NULL)
            s = BX_ERR(err, BX_ENOMEM, "rate limit: out of memory");
    }
    if (s == BX_OK && per_second > 0) {
        r->interval_us = (int64_t)(1e6 / per_second);
        if (r->interval_us < 1)
            r->interval_us = 1;
        r->tolerance_us = r->interval_us * (burst - 1);
        s = load_script(r, err);
    }
    if (s != BX_OK) {
        limits_rate_free(r);
        return s;
    }
    *out = r;
    return BX_OK;
}

bx_status limits_rate_new(redisContext *redis, const char *key, double per_second, int burst,
                          limits_rate **out, bx_error *err)
{
    return rate_new(redis, NULL, key, per_second, burst, out, err);
}

bx_status limits_rate_open(const char *url, const char *key, double per_second, int burst,
                           limits_rate **out, bx_error *err)
{
    return rate_new(NULL, url, key, per_second, burst, out, err);
}

void limits_rate_free(limits_rate *r)
{
    if (r == NULL)
        return;
    bx_redis_close(r->redis); /* a wrapper leaves the caller's connection open */
    free(r->url);
    free(r);
}

int64_t limits_rate_interval_ms(const limits_rate *r)
{
    if (r->interval_us == 0)
        return 0;
    return r->interval_us < 1000 ? 1 : (r->interval_us + 999) / 1000;
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
    if (r->url && (r->redis == NULL || bx_redis_broken(r->redis))) {
        bx_redis_close(r->redis); /* broke (a restart, a failover): open it again */
        r->redis = NULL;
        bx_status s = bx_redis_open(r->url, 0, &r->redis, err);
        IFOK(s, load_script(r, err));
        if (s != BX_OK)
            return s;
    }
    if (r->redis == NULL)
        return BX_ERR(err, BX_EIO, "redis: rate limit without a connection");
    const char *argv[] = {"EVALSHA", r->sha, "1", r->key, now_us, interval, tolerance};
    size_t len[7];
    for (int i = 0; i < 7; i++)
        len[i] = strlen(argv[i]);
    for (int tries = 0; tries < 2; tries++) {
        redisReply *rep = NULL;
        bx_status s = bx_redis_call(r->redis, 7, argv, len, &rep, err);
        if (s != BX_OK)
            return s;
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(rep);
            s = load_script(r, err); /* Redis restarted or flushed its scripts */
            if (s != BX_OK)
                return s;
            continue;
        }
        if (rep->type != REDIS_REPLY_INTEGER)
            s = BX_ERR(err, BX_EIO, "redis: rate script failed: %s",
                       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected answer");
        else if (rep->integer > 0)
            *wait_ms = (rep->integer + 999) / 1000;
        freeReplyObject(rep);
        return s;
    }
    return BX_ERR(err, BX_EIO, "redis: rate script not loaded");
}
