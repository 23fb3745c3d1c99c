/* bx_redis: URL parsing, connect with retry, and the handle over one server or a Redis Cluster
 * (slot map, routing by hash tag, per-node pipelines, MOVED/ASK). */
#include "bx_redis.h"
#include "bx_config.h"
#include "bx_log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SEEDS_MAX      32
#define HOST_MAX       256
#define REDIRECTS_MAX  8
#define CONNECT_MS     2000
#define READ_MS        15000 /* a cluster node that stopped answering (not closed) is given up */
#define TRYAGAIN_TRIES 20

typedef struct endpoint {
    char host[HOST_MAX];
    int port;
} endpoint;

/* A parsed BX_REDIS_URL: one server (with its database) or a cluster's seeds. */
typedef struct redis_url {
    bool cluster;
    endpoint seeds[SEEDS_MAX];
    size_t nseeds;
    int db;
} redis_url;

static bool env_cluster(void)
{
    const char *v = getenv("BX_REDIS_CLUSTER");
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

static bx_status parse_endpoint(const char *p, size_t len, const char *url, endpoint *e,
                                bx_error *err)
{
    /* the last colon splits host and port (an IPv6 host may hold colons; [::1] is unwrapped) */
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == ':')
            colon = p + i;
    size_t hl = colon ? (size_t)(colon - p) : len;
    const char *h = p;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(e->host))
        return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: cannot read the host in \"%s\"", url);
    memcpy(e->host, h, hl);
    e->host[hl] = '\0';
    e->port = 6379;
    if (colon) {
        char digits[8];
        size_t dl = len - (size_t)(colon + 1 - p);
        if (dl == 0 || dl >= sizeof(digits))
            return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: bad port in \"%s\"", url);
        memcpy(digits, colon + 1, dl);
        digits[dl] = '\0';
        char *end;
        long v = strtol(digits, &end, 10);
        if (v < 1 || v > 65535 || *end)
            return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: bad port in \"%s\"", url);
        e->port = (int)v;
    }
    return BX_OK;
}

/* "redis://host:port[/db]", "redis+cluster://h1:p1,h2:p2" (or several hosts and
 * BX_REDIS_CLUSTER=1). */
static bx_status parse_url(const char *url, redis_url *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = url;
    if (strncmp(p, "redis+cluster://", 16) == 0) {
        out->cluster = true;
        p += 16;
    } else if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
        out->cluster = env_cluster();
    } else if (strstr(p, "://") != NULL) {
        return BX_ERR(err, BX_EINVAL,
                      "BX_REDIS_URL: \"%s\" is neither redis:// nor redis+cluster://", url);
    } else {
        out->cluster = env_cluster();
    }
    const char *slash = strchr(p, '/');
    size_t hosts_len = slash ? (size_t)(slash - p) : strlen(p);
    for (size_t at = 0; at < hosts_len;) {
        size_t n = 0;
        while (at + n < hosts_len && p[at + n] != ',')
            n++;
        if (out->nseeds == SEEDS_MAX)
            return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: more than %d hosts in \"%s\"", SEEDS_MAX,
                          url);
        bx_status s = parse_endpoint(p + at, n, url, &out->seeds[out->nseeds], err);
        if (s != BX_OK)
            return s;
        out->nseeds++;
        at += n + 1;
    }
    if (out->nseeds == 0)
        return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: cannot read the host in \"%s\"", url);
    if (out->nseeds > 1 && !out->cluster)
        return BX_ERR(err, BX_EINVAL,
                      "BX_REDIS_URL: several hosts in \"%s\" need redis+cluster:// or "
                      "BX_REDIS_CLUSTER=1",
                      url);
    if (slash) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (v < 0 || v > 15 || *end || slash[1] == '\0')
            return BX_ERR(err, BX_EINVAL, "BX_REDIS_URL: bad database in \"%s\"", url);
        if (out->cluster && v != 0)
            return BX_ERR(err, BX_EINVAL,
                          "BX_REDIS_URL: a Redis Cluster has database 0 only, \"%s\" names %ld",
                          url, v);
        out->db = (int)v;
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
    redis_url u;
    bx_status s = parse_url(url, &u, err);
    if (s != BX_OK)
        return s;
    if (u.cluster)
        return BX_ERR(err, BX_EINVAL,
                      "BX_REDIS_URL: \"%s\" is a Redis Cluster; this program speaks to one server",
                      url);
    const char *host = u.seeds[0].host;
    int port = u.seeds[0].port, db = u.db;
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

/* --- Slots and redirections ------------------------------------------------------------------- */

uint16_t bx_redis_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned bx_redis_key_slot(const char *key, size_t len)
{
    size_t open = 0;
    while (open < len && key[open] != '{')
        open++;
    if (open < len) {
        size_t close = open + 1;
        while (close < len && key[close] != '}')
            close++;
        if (close < len && close > open + 1) /* "{}" is no tag: the whole key counts */
            return bx_redis_crc16(key + open + 1, close - open - 1) & (BX_REDIS_SLOTS - 1);
    }
    return bx_redis_crc16(key, len) & (BX_REDIS_SLOTS - 1);
}

bx_redis_redirect bx_redis_parse_redirect(const char *msg, size_t len, unsigned *slot, char *host,
                                          size_t hostlen, int *port)
{
    bx_redis_redirect kind;
    size_t at;
    if (len > 6 && strncmp(msg, "MOVED ", 6) == 0) {
        kind = BX_REDIS_MOVED;
        at = 6;
    } else if (len > 4 && strncmp(msg, "ASK ", 4) == 0) {
        kind = BX_REDIS_ASK;
        at = 4;
    } else {
        return BX_REDIS_NOT_REDIRECTED;
    }
    unsigned long s = 0;
    size_t digits = 0;
    while (at < len && isdigit((unsigned char)msg[at]) && digits < 6) {
        s = s * 10 + (unsigned long)(msg[at++] - '0');
        digits++;
    }
    if (digits == 0 || s >= BX_REDIS_SLOTS || at >= len || msg[at] != ' ')
        return BX_REDIS_NOT_REDIRECTED;
    at++;
    size_t end = len;
    while (end > at && (msg[end - 1] == '\r' || msg[end - 1] == '\n' || msg[end - 1] == ' '))
        end--;
    endpoint e;
    bx_error ignored = {0};
    for (size_t i = at; i < end; i++)
        if (msg[i] == ' ')
            return BX_REDIS_NOT_REDIRECTED;
    if (end <= at || parse_endpoint(msg + at, end - at, "redirect", &e, &ignored) != BX_OK)
        return BX_REDIS_NOT_REDIRECTED;
    /* a redirection names its port: "MOVED 1 host" without one is not one */
    if (memchr(msg + at, ':', end - at) == NULL || strlen(e.host) >= hostlen)
        return BX_REDIS_NOT_REDIRECTED;
    *slot = (unsigned)s;
    memcpy(host, e.host, strlen(e.host) + 1);
    *port = e.port;
    return kind;
}

static bool arg_is(const char *arg, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(arg, name, len) == 0;
}

/* Where a command's keys are: the first, the last and the step (0 keys: first > last). */
static void key_positions(int argc, const char **argv, const size_t *argvlen, int *first, int *last,
                          int *step)
{
    const char *cmd = argv[0];
    size_t n = argvlen[0];
    *step = 1;
    *first = 1;
    *last = argc > 1 ? 1 : 0;
    static const char *const keyless[] = {
        "PING",   "SCRIPT",   "INFO",      "CLUSTER",   "AUTH",    "SELECT",
        "DBSIZE", "FLUSHDB",  "FLUSHALL",  "TIME",      "COMMAND", "CONFIG",
        "ECHO",   "HELLO",    "READONLY",  "READWRITE", "ACL",     "CLIENT",
        "SCAN",   "KEYS",     "WAIT",      "FUNCTION",  "ASKING",  "QUIT",
        "MEMORY", "LASTSAVE", "RANDOMKEY", "SLOWLOG",   "LATENCY"};
    for (size_t i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
        if (arg_is(cmd, n, keyless[i])) {
            *last = 0;
            return;
        }
    if (arg_is(cmd, n, "EVAL") || arg_is(cmd, n, "EVALSHA") || arg_is(cmd, n, "EVAL_RO") ||
        arg_is(cmd, n, "EVALSHA_RO") || arg_is(cmd, n, "FCALL") || arg_is(cmd, n, "FCALL_RO")) {
        long numkeys = 0;
        if (argc > 2) {
            char digits[12] = "";
            size_t dl = argvlen[2] < sizeof(digits) - 1 ? argvlen[2] : sizeof(digits) - 1;
            memcpy(digits, argv[2], dl);
            numkeys = strtol(digits, NULL, 10);
        }
        if (numkeys < 0)
            numkeys = 0;
        if (numkeys > argc - 3)
            numkeys = argc - 3;
        *first = 3;
        *last = 2 + (int)numkeys;
        return;
    }
    if (arg_is(cmd, n, "DEL") || arg_is(cmd, n, "UNLINK") || arg_is(cmd, n, "EXISTS") ||
        arg_is(cmd, n, "TOUCH") || arg_is(cmd, n, "MGET") || arg_is(cmd, n, "WATCH") ||
        arg_is(cmd, n, "SUNION") || arg_is(cmd, n, "SINTER") || arg_is(cmd, n, "SDIFF") ||
        arg_is(cmd, n, "PFCOUNT")) {
        *last = argc - 1;
        return;
    }
    if (arg_is(cmd, n, "MSET") || arg_is(cmd, n, "MSETNX")) {
        *last = argc - 2;
        *step = 2;
        return;
    }
    if (arg_is(cmd, n, "RENAME") || arg_is(cmd, n, "RENAMENX") || arg_is(cmd, n, "COPY") ||
        arg_is(cmd, n, "SMOVE") || arg_is(cmd, n, "LMOVE") || arg_is(cmd, n, "RPOPLPUSH"))
        *last = argc > 2 ? 2 : 1;
}

bx_status bx_redis_command_slot(int argc, const char **argv, const size_t *argvlen, int *slot,
                                bx_error *err)
{
    *slot = -1;
    if (argc < 1)
        return BX_ERR(err, BX_EINVAL, "redis: empty command");
    int first, last, step;
    key_positions(argc, argv, argvlen, &first, &last, &step);
    int first_key = -1;
    for (int i = first; i <= last && i < argc; i += step) {
        int s = (int)bx_redis_key_slot(argv[i], argvlen[i]);
        if (*slot < 0) {
            *slot = s;
            first_key = i;
        } else if (s != *slot) {
            int k = *slot;
            *slot = -1;
            return BX_ERR(err, BX_EINVAL,
                          "redis: %.*s: keys in different slots (argument %d in %d, argument %d "
                          "in %d); give them one {hash tag}",
                          (int)(argvlen[0] < 20 ? argvlen[0] : 20), argv[0], first_key, k, i, s);
        }
    }
    return BX_OK;
}

/* --- The handle ------------------------------------------------------------------------------- */

typedef struct node {
    endpoint at;
    redisContext *c;    /* the pipeline */
    redisContext *side; /* redirected commands, one at a time */
    size_t pending;     /* answers owed on c */
} node;

typedef struct queued {
    int node;
    char *cmd; /* as formatted (redisFormatCommandArgv), for a redirection */
    size_t len;
} queued;

struct bx_redis {
    bool cluster;
    redisContext *one; /* one server */
    bool own_one;
    /* a cluster */
    redis_url url;
    node *nodes;
    size_t nnodes, nodes_cap;
    int16_t slots[BX_REDIS_SLOTS]; /* node of each slot's master, -1 unknown */
    queued *q;
    size_t qhead, qtail, qcap;
    bool broken;
    bool refresh; /* a MOVED came: read the slot map again once nothing is pending */
};

bx_redis *bx_redis_wrap(redisContext *c)
{
    bx_redis *r = calloc(1, sizeof(*r));
    if (r)
        r->one = c;
    return r;
}

bool bx_redis_is_cluster(const bx_redis *r)
{
    return r->cluster;
}

bool bx_redis_broken(const bx_redis *r)
{
    if (!r->cluster)
        return r->one == NULL || r->one->err != 0;
    return r->broken;
}

static void queue_clear(bx_redis *r)
{
    for (size_t i = r->qhead; i < r->qtail; i++)
        redisFreeCommand(r->q[i].cmd);
    r->qhead = r->qtail = 0;
}

void bx_redis_close(bx_redis *r)
{
    if (r == NULL)
        return;
    if (r->own_one && r->one)
        redisFree(r->one);
    queue_clear(r);
    free(r->q);
    for (size_t i = 0; i < r->nnodes; i++) {
        if (r->nodes[i].c)
            redisFree(r->nodes[i].c);
        if (r->nodes[i].side)
            redisFree(r->nodes[i].side);
    }
    free(r->nodes);
    free(r);
}

/* Marks the handle broken and says why (BX_ETRANSIENT): the caller opens a new one. */
static bx_status broken(bx_redis *r, bx_error *err, const char *fmt, ...) BX_PRINTF(3, 4);

static bx_status broken(bx_redis *r, bx_error *err, const char *fmt, ...)
{
    r->broken = true;
    queue_clear(r);
    for (size_t i = 0; i < r->nnodes; i++)
        r->nodes[i].pending = 0;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return BX_ERR(err, BX_ETRANSIENT, "redis cluster: %s", msg);
}

static int node_find(bx_redis *r, const char *host, int port)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i].at.port == port && strcmp(r->nodes[i].at.host, host) == 0)
            return (int)i;
    if (r->nnodes == r->nodes_cap) {
        size_t cap = r->nodes_cap ? 2 * r->nodes_cap : 8;
        if (cap > INT16_MAX)
            return -1;
        node *p = realloc(r->nodes, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        r->nodes = p;
        r->nodes_cap = cap;
    }
    node *n = &r->nodes[r->nnodes];
    memset(n, 0, sizeof(*n));
    snprintf(n->at.host, sizeof(n->at.host), "%s", host);
    n->at.port = port;
    return (int)r->nnodes++;
}

/* A signed-in connection to e, with the cluster's timeouts; NULL with err set when it failed. */
static redisContext *node_connect(const endpoint *e, bx_error *err)
{
    struct timeval tv = {CONNECT_MS / 1000, (CONNECT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(e->host, e->port, tv);
    if (c == NULL || c->err) {
        BX_ERR(err, BX_ETRANSIENT, "redis %s:%d: %s", e->host, e->port,
               c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    struct timeval rt = {READ_MS / 1000, (READ_MS % 1000) * 1000};
    if (redisSetTimeout(c, rt) != REDIS_OK || bx_redis_auth(c, err) != BX_OK) {
        if (err && err->status == BX_OK)
            BX_ERR(err, BX_ETRANSIENT, "redis %s:%d: %s", e->host, e->port, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Reads CLUSTER SLOTS from c (asked at `asked`) into the slot map. */
static bx_status slots_from(bx_redis *r, redisContext *c, const endpoint *asked, bx_error *err)
{
    redisReply *rep = redisCommand(c, "CLUSTER SLOTS");
    if (rep == NULL)
        return BX_ERR(err, BX_ETRANSIENT, "redis %s:%d: CLUSTER SLOTS: %s", asked->host,
                      asked->port, c->errstr);
    bx_status s = BX_OK;
    if (rep->type != REDIS_REPLY_ARRAY) {
        s = BX_ERR(err, BX_EIO, "redis %s:%d: CLUSTER SLOTS: %s", asked->host, asked->port,
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected answer");
        freeReplyObject(rep);
        return s;
    }
    int16_t map[BX_REDIS_SLOTS];
    for (size_t i = 0; i < BX_REDIS_SLOTS; i++)
        map[i] = -1;
    for (size_t i = 0; i < rep->elements && s == BX_OK; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            s = BX_ERR(err, BX_EIO, "redis %s:%d: CLUSTER SLOTS: unexpected entry %zu", asked->host,
                       asked->port, i);
            break;
        }
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const char *host = e->element[2]->element[0]->str;
        long long port = e->element[2]->element[1]->integer;
        if (host[0] == '\0' || strcmp(host, "?") == 0)
            host = asked->host; /* the node does not know its address: the one we asked */
        if (lo < 0 || hi >= BX_REDIS_SLOTS || lo > hi || port < 1 || port > 65535 ||
            strlen(host) >= HOST_MAX) {
            s = BX_ERR(err, BX_EIO, "redis %s:%d: CLUSTER SLOTS: bad entry %zu", asked->host,
                       asked->port, i);
            break;
        }
        int n = node_find(r, host, (int)port);
        if (n < 0) {
            s = BX_ERR(err, BX_ENOMEM, "redis cluster: out of memory");
            break;
        }
        for (long long k = lo; k <= hi; k++)
            map[k] = (int16_t)n;
    }
    freeReplyObject(rep);
    if (s == BX_OK)
        memcpy(r->slots, map, sizeof(map));
    return s;
}

/* The slot map from the first node that answers: the known nodes, then the seeds. Nothing may be
 * pending. */
static bx_status load_slots(bx_redis *r, bx_error *err)
{
    bx_status s = BX_ERR(err, BX_ETRANSIENT, "redis cluster: no node to ask");
    for (size_t i = 0; i < r->nnodes; i++) {
        node *n = &r->nodes[i];
        if (n->c == NULL || n->c->err)
            continue;
        s = slots_from(r, n->c, &n->at, err);
        if (s == BX_OK) {
            r->refresh = false;
            return BX_OK;
        }
        if (s == BX_EFATAL)
            return s;
    }
    for (size_t i = 0; i < r->url.nseeds; i++) {
        redisContext *c = node_connect(&r->url.seeds[i], err);
        if (c == NULL) {
            if (err && err->status == BX_EFATAL)
                return BX_EFATAL;
            s = BX_ETRANSIENT;
            continue;
        }
        s = slots_from(r, c, &r->url.seeds[i], err);
        redisFree(c);
        if (s == BX_OK) {
            r->refresh = false;
            return BX_OK;
        }
    }
    return s == BX_OK ? BX_ETRANSIENT : s;
}

bx_status bx_redis_open(const char *url, int wait_ms, bx_redis **out, bx_error *err)
{
    *out = NULL;
    redis_url u;
    bx_status s = parse_url(url, &u, err);
    if (s != BX_OK)
        return s;
    if (!u.cluster) {
        redisContext *c = NULL;
        s = bx_redis_connect(url, wait_ms, &c, err);
        if (s != BX_OK)
            return s;
        bx_redis *r = bx_redis_wrap(c);
        if (r == NULL) {
            redisFree(c);
            return BX_ERR(err, BX_ENOMEM, "out of memory");
        }
        r->own_one = true;
        *out = r;
        return BX_OK;
    }
    bx_redis *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    r->cluster = true;
    r->url = u;
    for (size_t i = 0; i < BX_REDIS_SLOTS; i++)
        r->slots[i] = -1;
    int waited = 0, delay = 100;
    for (;;) {
        s = load_slots(r, err);
        if (s == BX_OK || s == BX_EFATAL || waited >= wait_ms)
            break;
        usleep((useconds_t)delay * 1000);
        waited += delay;
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
    if (s != BX_OK) {
        bx_redis_close(r);
        return s;
    }
    *out = r;
    return BX_OK;
}

static bx_status one_failed(redisContext *c, const char *what, bx_error *err)
{
    return BX_ERR(err, c->err == REDIS_ERR_IO || c->err == REDIS_ERR_EOF ? BX_ETRANSIENT : BX_EIO,
                  "redis: %s: %s", what, c->errstr[0] ? c->errstr : "connection failed");
}

static bx_status node_ready(bx_redis *r, int i, bool side, bx_error *err)
{
    node *n = &r->nodes[i];
    redisContext **c = side ? &n->side : &n->c;
    if (*c && (*c)->err) {
        if (!side && n->pending > 0)
            return broken(r, err, "%s:%d: %s", n->at.host, n->at.port, (*c)->errstr);
        redisFree(*c);
        *c = NULL;
    }
    if (*c == NULL) {
        bx_error cerr = {0};
        *c = node_connect(&n->at, &cerr);
        if (*c == NULL) {
            if (cerr.status == BX_EFATAL)
                return BX_ERR(err, BX_EFATAL, "%s", cerr.msg);
            return broken(r, err, "%s", cerr.msg);
        }
    }
    return BX_OK;
}

/* A slot's master, reading the map again once when the slot has none. */
static bx_status slot_node(bx_redis *r, int slot, int *out, bx_error *err)
{
    if (slot < 0) {
        /* keyless: the master of the first covered slot */
        for (size_t i = 0; i < BX_REDIS_SLOTS; i += 128)
            if (r->slots[i] >= 0) {
                *out = r->slots[i];
                return BX_OK;
            }
        slot = 0;
    }
    if (r->slots[slot] < 0 && r->qhead == r->qtail) {
        bx_status s = load_slots(r, err);
        if (s == BX_EFATAL)
            return s;
    }
    if (r->slots[slot] < 0) {
        return broken(r, err, "slot %d has no master (a failover under way?)", slot);
    }
    *out = r->slots[slot];
    return BX_OK;
}

bx_status bx_redis_append(bx_redis *r, int argc, const char **argv, const size_t *argvlen,
                          bx_error *err)
{
    if (!r->cluster) {
        if (redisAppendCommandArgv(r->one, argc, argv, argvlen) != REDIS_OK)
            return one_failed(r->one, "send", err);
        return BX_OK;
    }
    if (r->broken)
        return BX_ERR(err, BX_ETRANSIENT, "redis cluster: the connection broke; open it again");
    if (r->refresh && r->qhead == r->qtail) {
        bx_status s = load_slots(r, err);
        if (s == BX_EFATAL)
            return s;
        if (s != BX_OK)
            return broken(r, err, "reading the slot map: %s", err ? err->msg : "");
    }
    int slot = -1, n = -1;
    bx_status s = bx_redis_command_slot(argc, argv, argvlen, &slot, err);
    IFOK(s, slot_node(r, slot, &n, err));
    IFOK(s, node_ready(r, n, false, err));
    if (s != BX_OK)
        return s;
    if (r->qtail == r->qcap) {
        size_t cap = r->qcap ? 2 * r->qcap : 256;
        queued *p = realloc(r->q, cap * sizeof(*p));
        if (p == NULL)
            return BX_ERR(err, BX_ENOMEM, "out of memory");
        r->q = p;
        r->qcap = cap;
    }
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    node *nd = &r->nodes[n];
    if (redisAppendFormattedCommand(nd->c, cmd, (size_t)len) != REDIS_OK) {
        redisFreeCommand(cmd);
        return broken(r, err, "%s:%d: send: %s", nd->at.host, nd->at.port, nd->c->errstr);
    }
    r->q[r->qtail++] = (queued){n, cmd, (size_t)len};
    nd->pending++;
    return BX_OK;
}

/* Writes every node's queued commands, so the nodes work in parallel while we wait for one. */
static bx_status flush_all(bx_redis *r, bx_error *err)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        node *n = &r->nodes[i];
        if (n->c == NULL || n->pending == 0)
            continue;
        int done = 0;
        while (!done)
            if (redisBufferWrite(n->c, &done) != REDIS_OK)
                return broken(r, err, "%s:%d: send: %s", n->at.host, n->at.port, n->c->errstr);
    }
    return BX_OK;
}

/* One redirected (or retried) command on node i's side connection, ASKING first for an ASK. */
static bx_status side_call(bx_redis *r, int i, bool asking, const queued *q, redisReply **out,
                           bx_error *err)
{
    bx_status s = node_ready(r, i, true, err);
    if (s != BX_OK)
        return s;
    node *n = &r->nodes[i];
    if (asking)
        redisAppendCommand(n->side, "ASKING");
    redisAppendFormattedCommand(n->side, q->cmd, q->len);
    void *reply = NULL;
    if (asking) {
        if (redisGetReply(n->side, &reply) != REDIS_OK)
            return broken(r, err, "%s:%d: ASKING: %s", n->at.host, n->at.port, n->side->errstr);
        freeReplyObject(reply);
        reply = NULL;
    }
    if (redisGetReply(n->side, &reply) != REDIS_OK)
        return broken(r, err, "%s:%d: read: %s", n->at.host, n->at.port, n->side->errstr);
    *out = reply;
    return BX_OK;
}

static bool error_is(const redisReply *rep, const char *prefix)
{
    return rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, prefix, strlen(prefix)) == 0;
}

bx_status bx_redis_read(bx_redis *r, redisReply **out, bx_error *err)
{
    *out = NULL;
    if (!r->cluster) {
        void *reply = NULL;
        if (redisGetReply(r->one, &reply) != REDIS_OK || reply == NULL)
            return one_failed(r->one, "read", err);
        *out = reply;
        return BX_OK;
    }
    if (r->broken)
        return BX_ERR(err, BX_ETRANSIENT, "redis cluster: the connection broke; open it again");
    if (r->qhead == r->qtail)
        return BX_ERR(err, BX_EINVAL, "redis cluster: read with nothing pending");
    bx_status s = flush_all(r, err);
    if (s != BX_OK)
        return s;
    queued q = r->q[r->qhead++];
    node *n = &r->nodes[q.node];
    void *reply = NULL;
    if (redisGetReply(n->c, &reply) != REDIS_OK || reply == NULL) {
        redisFreeCommand(q.cmd);
        return broken(r, err, "%s:%d: read: %s", n->at.host, n->at.port, n->c->errstr);
    }
    n->pending--;
    redisReply *rep = reply;
    int tries = 0;
    for (int redirects = 0; s == BX_OK && rep && rep->type == REDIS_REPLY_ERROR; redirects++) {
        unsigned slot = 0;
        char host[HOST_MAX];
        int port = 0;
        bx_redis_redirect kind =
            bx_redis_parse_redirect(rep->str, rep->len, &slot, host, sizeof(host), &port);
        if (kind != BX_REDIS_NOT_REDIRECTED) {
            if (redirects >= REDIRECTS_MAX) {
                s = broken(r, err, "more than %d redirections for one command", REDIRECTS_MAX);
                break;
            }
            int to = node_find(r, host, port);
            if (to < 0) {
                s = BX_ERR(err, BX_ENOMEM, "out of memory");
                break;
            }
            if (kind == BX_REDIS_MOVED) {
                r->slots[slot] = (int16_t)to;
                r->refresh = true;
            }
            freeReplyObject(rep);
            rep = NULL;
            s = side_call(r, to, kind == BX_REDIS_ASK, &q, &rep, err);
            continue;
        }
        if ((error_is(rep, "TRYAGAIN") || error_is(rep, "LOADING")) && tries++ < TRYAGAIN_TRIES) {
            freeReplyObject(rep);
            rep = NULL;
            usleep(100 * 1000);
            s = side_call(r, q.node, false, &q, &rep, err);
            continue;
        }
        if (error_is(rep, "CLUSTERDOWN") || error_is(rep, "MASTERDOWN") ||
            error_is(rep, "TRYAGAIN") || error_is(rep, "LOADING")) {
            char what[120];
            snprintf(what, sizeof(what), "%.119s", rep->str);
            freeReplyObject(rep);
            rep = NULL;
            s = broken(r, err, "%s:%d: %s", n->at.host, n->at.port, what);
        }
        break;
    }
    redisFreeCommand(q.cmd);
    if (r->qhead == r->qtail && !r->broken)
        r->qhead = r->qtail = 0;
    if (s != BX_OK) {
        if (rep)
            freeReplyObject(rep);
        return s;
    }
    *out = rep;
    return BX_OK;
}

bx_status bx_redis_call(bx_redis *r, int argc, const char **argv, const size_t *argvlen,
                        redisReply **out, bx_error *err)
{
    *out = NULL;
    bx_status s = bx_redis_append(r, argc, argv, argvlen, err);
    IFOK(s, bx_redis_read(r, out, err));
    return s;
}

void bx_redis_replies_free(redisReply **replies, size_t n)
{
    if (replies == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    free(replies);
}

bx_status bx_redis_call_masters(bx_redis *r, int argc, const char **argv, const size_t *argvlen,
                                redisReply ***out, size_t *n, bx_error *err)
{
    *out = NULL;
    *n = 0;
    if (!r->cluster) {
        redisReply **one = calloc(1, sizeof(*one));
        if (one == NULL)
            return BX_ERR(err, BX_ENOMEM, "out of memory");
        bx_status s = bx_redis_call(r, argc, argv, argvlen, &one[0], err);
        if (s != BX_OK) {
            free(one);
            return s;
        }
        *out = one;
        *n = 1;
        return BX_OK;
    }
    if (r->broken)
        return BX_ERR(err, BX_ETRANSIENT, "redis cluster: the connection broke; open it again");
    if (r->qhead != r->qtail)
        return BX_ERR(err, BX_EINVAL, "redis cluster: a command for every master while %zu wait",
                      r->qtail - r->qhead);
    if (r->refresh) {
        bx_status s = load_slots(r, err);
        if (s != BX_OK)
            return s == BX_EFATAL ? s
                                  : broken(r, err, "reading the slot map: %s", err ? err->msg : "");
    }
    bool *master = calloc(r->nnodes ? r->nnodes : 1, sizeof(*master));
    redisReply **replies = calloc(r->nnodes ? r->nnodes : 1, sizeof(*replies));
    if (master == NULL || replies == NULL) {
        free(master);
        free(replies);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < BX_REDIS_SLOTS; i++)
        if (r->slots[i] >= 0)
            master[r->slots[i]] = true;
    bx_status s = BX_OK;
    size_t count = 0;
    for (size_t i = 0; i < r->nnodes && s == BX_OK; i++) {
        if (!master[i])
            continue;
        s = node_ready(r, (int)i, false, err);
        if (s != BX_OK)
            break;
        node *nd = &r->nodes[i];
        redisReply *rep = redisCommandArgv(nd->c, argc, argv, argvlen);
        if (rep == NULL) {
            s = broken(r, err, "%s:%d: %s", nd->at.host, nd->at.port, nd->c->errstr);
            break;
        }
        replies[count++] = rep;
    }
    free(master);
    if (s != BX_OK) {
        bx_redis_replies_free(replies, count);
        return s;
    }
    *out = replies;
    *n = count;
    return BX_OK;
}
