/* bx_redis: Redis connections with retry over hiredis. */
#ifndef BX_REDIS_H
#define BX_REDIS_H

#include "bx_status.h"

#include <hiredis/hiredis.h>

/* Connects to "redis://host:port[/db]", retrying with backoff for up to wait_ms. Caller frees with
 * redisFree. */
bx_status bx_redis_connect(const char *url, int wait_ms, redisContext **out,
                           bx_error *err) BX_MUSTCHECK;

#endif
