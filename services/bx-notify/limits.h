/* limits: the provider-wide send rate shared by every bx-notify replica, a GCRA (generic cell rate
 * algorithm) in one Redis Lua script, timed by the project clock. */
#ifndef BX_NOTIFY_LIMITS_H
#define BX_NOTIFY_LIMITS_H

#include "bx_calendar.h"
#include "bx_redis.h"
#include "bx_status.h"

#include <hiredis/hiredis.h>
#include <stdint.h>

typedef struct limits_rate limits_rate;

/* A limiter of per_second sends (0: no limit, every take succeeds without Redis) with a burst of
 * burst sends, on the Redis key `key` (borrowed until limits_rate_free). redis is borrowed too and
 * used by one thread at a time. */
bx_status limits_rate_new(redisContext *redis, const char *key, double per_second, int burst,
                          limits_rate **out, bx_error *err) BX_MUSTCHECK;
/* The same on a Redis of its own: url is BX_REDIS_URL (one server or a Redis Cluster), opened
 * now (waiting up to 10 s) and opened again by the take after it broke (a failover), so the
 * limiter outlives a Redis restart. */
bx_status limits_rate_open(const char *url, const char *key, double per_second, int burst,
                           limits_rate **out, bx_error *err) BX_MUSTCHECK;
void limits_rate_free(limits_rate *r);
/* Takes one send at now: *wait_ms is 0 when taken, else how long until one may be taken (nothing
 * is taken then). BX_EIO or BX_ETRANSIENT when Redis failed (the caller waits and tries again). */
bx_status limits_rate_take(limits_rate *r, bx_time_ms now, int64_t *wait_ms,
                           bx_error *err) BX_MUSTCHECK;
/* The time between two sends at the rate, in milliseconds (at least 1; 0 without a limit). */
int64_t limits_rate_interval_ms(const limits_rate *r);

#endif
