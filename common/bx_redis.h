/* bx_redis: Redis connections with retry over hiredis. */
#ifndef BX_REDIS_H
#define BX_REDIS_H

#include "bx_status.h"

#include <hiredis/hiredis.h>

/* Connects to "redis://host:port[/db]", retrying with backoff for up to wait_ms, and signs in
 * (bx_redis_auth). Caller frees with redisFree. */
bx_status bx_redis_connect(const char *url, int wait_ms, redisContext **out,
                           bx_error *err) BX_MUSTCHECK;

/* Signs c in with the credentials of the environment: AUTH BX_REDIS_USERNAME with the password of
 * BX_REDIS_PASSWORD or the file BX_REDIS_PASSWORD_FILE (bx_conf_secret); without a password
 * nothing is sent. A refusal is BX_EFATAL ("redis AUTH as bx-score: WRONGPASS ..."), never with the
 * password. For code that connects with hiredis itself. */
bx_status bx_redis_auth(redisContext *c, bx_error *err) BX_MUSTCHECK;

#endif
