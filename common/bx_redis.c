/* bx_redis: URL parsing and connect with retry. */
#include "bx_redis.h"
#include "bx_config.h"
#include "bx_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bx_status parse_url(const char *url, char *host, size_t hostlen, int *port, int *db,
                           bx_error *err)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    size_t hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= hostlen)
        return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: cannot read the host in \"%s\"", url);
    memcpy(host, p, hl);
    host[hl] = '\0';
    *port = 6379;
    *db = 0;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (v < 1 || v > 65535 || (*end && *end != '/'))
            return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: bad port in \"%s\"", url);
        *port = (int)v;
    }
    if (slash) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (v < 0 || v > 15 || *end)
            return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: bad database in \"%s\"", url);
        *db = (int)v;
    }
    return BX_OK;
}

bx_status bx_redis_auth(redisContext *c, bx_error *err)
{
    const char *user = getenv("BX_REDIS_USERNAME");
    char *password = NULL;
    bx_status s = bx_conf_secret("BX_REDIS_PASSWORD", &password, err);
    if (s != BX_OK)
        return s;
    if (password == NULL)
        return user && *user ? BX_ERR(err, BX_EINVAL,
                                      "BX_REDIS_USERNAME is set without BX_REDIS_PASSWORD or "
                                      "BX_REDIS_PASSWORD_FILE")
                             : BX_OK;
    redisReply *r = user && *user ? redisCommand(c, "AUTH %s %s", user, password)
                                  : redisCommand(c, "AUTH %s", password);
    explicit_bzero(password, strlen(password));
    free(password);
    if (r == NULL)
        return BX_ERR(err, BX_ETRANSIENT, "redis AUTH: %s", c->errstr);
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok) /* WRONGPASS names no secret */
        s = BX_ERR(err, BX_EFATAL, "redis AUTH as %s: %s", user && *user ? user : "default",
                   r->str ? r->str : "refused");
    freeReplyObject(r);
    return s;
}

bx_status bx_redis_connect(const char *url, int wait_ms, redisContext **out, bx_error *err)
{
    char host[256];
    int port = 6379, db = 0;
    bx_status s = parse_url(url, host, sizeof(host), &port, &db, err);
    if (s != BX_OK)
        return s;
    int waited = 0, delay = 100;
    for (;;) {
        redisContext *c = redisConnect(host, port);
        if (c && !c->err) {
            s = bx_redis_auth(c, err);
            if (s != BX_OK) {
                redisFree(c);
                return s;
            }
            if (db) {
                redisReply *r = redisCommand(c, "SELECT %d", db);
                int ok = r && r->type != REDIS_REPLY_ERROR;
                freeReplyObject(r);
                if (!ok) {
                    redisFree(c);
                    return BX_ERR(err, BX_EIO, "redis: SELECT %d failed", db);
                }
            }
            *out = c;
            return BX_OK;
        }
        char msg[128];
        snprintf(msg, sizeof(msg), "%s", c ? c->errstr : "out of memory");
        redisFree(c);
        if (waited >= wait_ms)
            return BX_ERR(err, BX_ETRANSIENT, "redis %s:%d: %s", host, port, msg);
        usleep((useconds_t)delay * 1000);
        waited += delay;
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}
