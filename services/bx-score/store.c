/* store: Redis scripts and pipelines, PostgreSQL batches and walks, and the rebuild (see store.h).
 */
#include "store.h"
#include "bx_buf.h"
#include "bx_json.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_pg.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Script calls per pipelined window, hash reads per window, and facts of one student per call. */
#define WINDOW_CALLS 256
#define LOAD_WINDOW  1024
#define GROUP_FACTS  64
#define CALL_ARGS    (4 + 4 * GROUP_FACTS)
/* Rows per PostgreSQL statement, rows per cursor fetch, items per rebuild round trip. */
#define PG_CHUNK      20000
#define PG_FETCH      "10000"
#define REBUILD_BATCH 1000

/* KEYS[1]: a facts or coverage hash. ARGV: quads of field, order key, value, implied ("1"/"0").
 * Answers one outcome per quad (score_store_outcome). Compares bytes, not strings with `<` (which
 * uses the server's locale through strcoll), so Redis agrees with PostgreSQL's COLLATE "C".
 * Comparing "order_key\tvalue" as a whole is comparing the pair, as order keys have no byte below
 * '!'. */
static const char lua_apply[] =
    "local function less(a, b)\n"
    "  local n = #a\n"
    "  if #b < n then n = #b end\n"
    "  for i = 1, n do\n"
    "    local x, y = string.byte(a, i), string.byte(b, i)\n"
    "    if x ~= y then return x < y end\n"
    "  end\n"
    "  return #a < #b\n"
    "end\n"
    "if #ARGV % 4 ~= 0 then return redis.error_reply('ERR bx apply: ARGV must be quads') end\n"
    "local out = {}\n"
    "for i = 1, #ARGV, 4 do\n"
    "  local field, new = ARGV[i], ARGV[i + 1] .. '\\t' .. ARGV[i + 2]\n"
    "  local cur = redis.call('HGET', KEYS[1], field)\n"
    "  local r\n"
    "  if cur == new then r = 2\n"
    "  elseif cur then\n"
    "    if less(cur, new) then redis.call('HSET', KEYS[1], field, new); r = 1 else r = 0 end\n"
    "  elseif ARGV[i + 3] == '1' then r = 3\n"
    "  else redis.call('HSET', KEYS[1], field, new); r = 1 end\n"
    "  out[#out + 1] = r\n"
    "end\n"
    "return out\n";

/* KEYS[1]: a summary hash. ARGV: name, value pairs. Replaces the hash; answers 1 when it changed.
 */
static const char lua_summary[] =
    "if #ARGV % 2 ~= 0 then return redis.error_reply('ERR bx summary: ARGV must be pairs') end\n"
    "local cur = redis.call('HGETALL', KEYS[1])\n"
    "if #cur == #ARGV then\n"
    "  local old = {}\n"
    "  for i = 1, #cur, 2 do old[cur[i]] = cur[i + 1] end\n"
    "  local same = true\n"
    "  for i = 1, #ARGV, 2 do\n"
    "    if old[ARGV[i]] ~= ARGV[i + 1] then same = false; break end\n"
    "  end\n"
    "  if same then return 0 end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end\n"
    "return 1\n";

enum { SCRIPT_APPLY, SCRIPT_SUMMARY, SCRIPT_COUNT };

/* Redis calls by kind (bench/score's and bench/e2e's "same mix" weighs redis-benchmark's rate of
 * each kind by these). */
enum {
    CALL_APPLY_FACT_WRITE, /* a facts hash's compare-and-set that stored */
    CALL_APPLY_FACT_NOWRITE,
    CALL_APPLY_REPORT,
    CALL_HGETALL_FACTS, /* a read that found the hash */
    CALL_HGETALL_SUM,
    CALL_HGETALL_REPORTED,
    CALL_HGETALL_EMPTY, /* a read of a hash that does not exist */
    CALL_HMGET,
    CALL_SUMMARY,
    CALL_KINDS
};
#define CALL_METRIC(kind)                                                                          \
    {                                                                                              \
        "bx_score_redis_calls_total{kind=\"" kind "\"}", "Redis calls of the store, by kind",      \
            "counter", 0, NULL                                                                     \
    }
static bx_metric m_calls[CALL_KINDS] = {
    CALL_METRIC("apply_fact_write"), CALL_METRIC("apply_fact_nowrite"),
    CALL_METRIC("apply_report"),     CALL_METRIC("hgetall_facts"),
    CALL_METRIC("hgetall_sum"),      CALL_METRIC("hgetall_reported"),
    CALL_METRIC("hgetall_empty"),    CALL_METRIC("hmget"),
    CALL_METRIC("summary_write")};

static void count_call(int kind)
{
    bx_metric_add(&m_calls[kind], 1);
}

/* The kind of a read of key that answered count entries. */
static int read_kind(const char *key, size_t count)
{
    size_t n = strlen(key);
    if (count == 0)
        return CALL_HGETALL_EMPTY;
    if (n > 4 && strcmp(key + n - 4, ":sum") == 0)
        return CALL_HGETALL_SUM;
    return strncmp(key, "bx:c:", 5) == 0 ? CALL_HGETALL_REPORTED : CALL_HGETALL_FACTS;
}

static const char *const script_source[SCRIPT_COUNT] = {lua_apply, lua_summary};

const char *score_store_lua_apply(void)
{
    return lua_apply;
}

const char *score_store_lua_summary(void)
{
    return lua_summary;
}

/* One pipelined command: its arguments and the items it covers. */
typedef struct call {
    int argc;
    const char **argv;
    size_t *argvlen;
    size_t first, count;
    bool retry;                /* answered NOSCRIPT: send again with EVAL */
    score_store_entries *dest; /* a hash read: where its entries go */
    bool with_order;           /* a hash read: values are "order_key\tvalue" */
} call;

struct score_store_redis {
    bx_redis *redis; /* borrowed, or own_handle: a wrapper of the caller's redisContext */
    bool own_handle;
    char sha[SCRIPT_COUNT][41];
    call calls[LOAD_WINDOW]; /* a window of WINDOW_CALLS script calls or LOAD_WINDOW reads */
    const char **argv;       /* WINDOW_CALLS * CALL_ARGS */
    size_t *argvlen;
    char (*keys)[SCORE_STORE_KEY_MAX]; /* LOAD_WINDOW */
};

/* --- Validation and names --------------------------------------------------------------------- */

static bool id_valid(const char *id)
{
    return bx_token_valid(id, SCORE_STORE_ID_MAX, NULL);
}

static bool event_id_valid(const char *id)
{
    return bx_token_valid(id, 128, ".:");
}

static bool order_key_valid(const char *k)
{
    size_t n = 0;
    if (k == NULL)
        return false;
    for (; k[n]; n++)
        if ((unsigned char)k[n] < '!' || (unsigned char)k[n] > '~')
            return false;
    return n >= 1 && n <= SCORE_STORE_ORDER_KEY_MAX;
}

static bool value_valid(const char *v)
{
    if (v == NULL)
        return false;
    size_t n = strlen(v);
    if (n > SCORE_STORE_VALUE_MAX || !bx_utf8_valid(v, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    return true;
}

static bool summary_name_valid(const char *s)
{
    return bx_token_valid(s, 64, ".:");
}

bx_status score_store_order_key(bx_time_ms recorded_at, const char *event_id, char *out,
                                size_t size)
{
    if (recorded_at < 0 || recorded_at > 9999999999999LL)
        return BX_EINVAL;
    if (event_id == NULL || !event_id_valid(event_id))
        return BX_EINVAL;
    int n = snprintf(out, size, "%013" PRId64 "|%s", (int64_t)recorded_at, event_id);
    return n > 0 && (size_t)n < size ? BX_OK : BX_EINVAL;
}

bx_status score_store_field_day(bx_date day, int period, char *out, size_t size)
{
    if (day == BX_DATE_NONE || period < 0 || period > 12)
        return BX_EINVAL;
    int y, m, d;
    bx_date_to_ymd(day, &y, &m, &d);
    if (y < 1900 || y > 2199)
        return BX_EINVAL;
    char text[11];
    bx_date_format(day, text);
    int n = snprintf(out, size, "%s|%d", text, period);
    return n > 0 && (size_t)n < size ? BX_OK : BX_EINVAL;
}

bx_status score_store_field_leave(const char *event_id, char *out, size_t size)
{
    if (event_id == NULL || !event_id_valid(event_id))
        return BX_EINVAL;
    int n = snprintf(out, size, "L|%s", event_id);
    return n > 0 && (size_t)n < size ? BX_OK : BX_EINVAL;
}

bx_status score_store_field_parse(const char *field, bx_date *day, int *period)
{
    if (field == NULL)
        return BX_EINVAL;
    if (field[0] == 'L' && field[1] == '|') {
        if (!event_id_valid(field + 2))
            return BX_EINVAL;
        *day = BX_DATE_NONE;
        *period = -1;
        return BX_OK;
    }
    char date[11];
    if (strlen(field) < 12 || field[10] != '|')
        return BX_EINVAL;
    memcpy(date, field, 10);
    date[10] = '\0';
    bx_date d;
    if (bx_date_parse(date, &d) != BX_OK)
        return BX_EINVAL;
    const char *p = field + 11;
    int value;
    if (p[0] >= '0' && p[0] <= '9' && p[1] == '\0')
        value = p[0] - '0';
    else if (p[0] == '1' && p[1] >= '0' && p[1] <= '2' && p[2] == '\0')
        value = 10 + p[1] - '0';
    else
        return BX_EINVAL;
    *day = d;
    *period = value;
    return BX_OK;
}

static bx_status make_key(const char *prefix, const char *id, const char *suffix, char *out,
                          size_t size)
{
    if (!id_valid(id))
        return BX_EINVAL;
    int n = snprintf(out, size, "%s{%s}%s", prefix, id, suffix);
    return n > 0 && (size_t)n < size ? BX_OK : BX_EINVAL;
}

bx_status score_store_key_facts(const char *student_id, char *out, size_t size)
{
    return make_key("bx:s:", student_id, ":facts", out, size);
}

bx_status score_store_key_summary(const char *student_id, char *out, size_t size)
{
    return make_key("bx:s:", student_id, ":sum", out, size);
}

bx_status score_store_key_reported(const char *class_id, char *out, size_t size)
{
    return make_key("bx:c:", class_id, ":reported", out, size);
}

/* The order key and value of what[i] ("facts" or "reports"). */
static bx_status check_key_and_value(const char *what, size_t i, const char *order_key,
                                     const char *value, bx_error *err)
{
    if (!order_key_valid(order_key))
        return BX_ERR(err, BX_EINVAL,
                      "%s[%zu].order_key: expected 1 to %d printable ASCII characters without "
                      "space",
                      what, i, SCORE_STORE_ORDER_KEY_MAX);
    if (!value_valid(value))
        return BX_ERR(err, BX_EINVAL,
                      "%s[%zu].value: expected at most %d bytes of UTF-8 without control "
                      "characters",
                      what, i, SCORE_STORE_VALUE_MAX);
    return BX_OK;
}

/* The id in what[i].member ("facts", 0, "student_id"). */
static bx_status check_id(const char *what, size_t i, const char *member, const char *id,
                          bx_error *err)
{
    if (!id_valid(id))
        return BX_ERR(err, BX_EINVAL, "%s[%zu].%s: expected 1 to 32 of A-Z a-z 0-9 _ -", what, i,
                      member);
    return BX_OK;
}

/* Validates facts before anything is sent; the message names the item and the member. */
static bx_status check_facts(const score_store_fact *facts, size_t n, bool for_pg, bx_error *err)
{
    bx_status s = BX_OK;
    for (size_t i = 0; s == BX_OK && i < n; i++) {
        const score_store_fact *f = &facts[i];
        bx_date day;
        int period;
        s = check_id("facts", i, "student_id", f->student_id, err);
        if (for_pg) {
            IFOK(s, check_id("facts", i, "school_id", f->school_id, err));
            IFOK(s, check_id("facts", i, "class_id", f->class_id, err));
        }
        if (s == BX_OK && score_store_field_parse(f->field, &day, &period) != BX_OK)
            s = BX_ERR(err, BX_EINVAL,
                       "facts[%zu].field: expected YYYY-MM-DD|period (0..12) or L|event_id, "
                       "got \"%.40s\"",
                       i, f->field ? f->field : "(null)");
        IFOK(s, check_key_and_value("facts", i, f->order_key, f->value, err));
    }
    return s;
}

static bx_status check_reports(const score_store_report *reports, size_t n, bool for_pg,
                               bx_error *err)
{
    bx_status s = BX_OK;
    for (size_t i = 0; s == BX_OK && i < n; i++) {
        const score_store_report *r = &reports[i];
        bx_date day;
        int period;
        s = check_id("reports", i, "class_id", r->class_id, err);
        if (for_pg)
            IFOK(s, check_id("reports", i, "school_id", r->school_id, err));
        if (s == BX_OK &&
            (score_store_field_parse(r->field, &day, &period) != BX_OK || day == BX_DATE_NONE))
            s = BX_ERR(err, BX_EINVAL,
                       "reports[%zu].field: expected YYYY-MM-DD|period (0..12), got \"%.40s\"", i,
                       r->field ? r->field : "(null)");
        IFOK(s, check_key_and_value("reports", i, r->order_key, r->value, err));
    }
    return s;
}

/* --- Entries ---------------------------------------------------------------------------------- */

void score_store_entries_free(score_store_entries *e)
{
    if (e == NULL)
        return;
    free(e->items);
    free(e->text);
    memset(e, 0, sizeof(*e));
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const score_store_entry *)a)->field, ((const score_store_entry *)b)->field);
}

/* Builds entries from a HGETALL answer. with_order: values are "order_key\tvalue". */
static bx_status entries_from_reply(const redisReply *r, bool with_order, const char *key,
                                    score_store_entries *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return BX_ERR(err, BX_EIO, "redis: HGETALL %s: unexpected answer type %d", key, r->type);
    size_t count = r->elements / 2, size = 0;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return BX_ERR(err, BX_EIO, "redis: HGETALL %s: unexpected element type", key);
        size += r->element[i]->len + 1;
    }
    if (count == 0)
        return BX_OK;
    out->items = calloc(count, sizeof(out->items[0]));
    out->text = malloc(size);
    if (out->items == NULL || out->text == NULL) {
        score_store_entries_free(out);
        return BX_ERR(err, BX_ENOMEM, "out of memory reading %s", key);
    }
    char *p = out->text;
    for (size_t i = 0; i < count; i++) {
        const redisReply *f = r->element[2 * i], *v = r->element[2 * i + 1];
        score_store_entry *e = &out->items[i];
        memcpy(p, f->str, f->len);
        p[f->len] = '\0';
        e->field = p;
        p += f->len + 1;
        memcpy(p, v->str, v->len);
        p[v->len] = '\0';
        if (with_order) {
            char *tab = memchr(p, '\t', v->len);
            if (tab == NULL) {
                score_store_entries_free(out);
                return BX_ERR(err, BX_EIO, "redis: %s field \"%.40s\" has no order key", key,
                              f->str);
            }
            *tab = '\0';
            e->order_key = p;
            e->value = tab + 1;
        } else {
            e->order_key = "";
            e->value = p;
        }
        p += v->len + 1;
    }
    out->count = count;
    qsort(out->items, count, sizeof(out->items[0]), cmp_entry);
    return BX_OK;
}

/* --- Redis pipelines -------------------------------------------------------------------------- */

/* SCRIPT LOAD of one script on every master; the sha into st->sha[script]. */
static bx_status load_script(score_store_redis *st, int script, bx_error *err)
{
    const char *argv[] = {"SCRIPT", "LOAD", script_source[script]};
    const size_t len[] = {6, 4, strlen(script_source[script])};
    redisReply **r = NULL;
    size_t n = 0;
    bx_status s = bx_redis_call_masters(st->redis, 3, argv, len, &r, &n, err);
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        if (r[i]->type != REDIS_REPLY_STRING || r[i]->len != 40)
            s = BX_ERR(err, BX_EIO, "redis: SCRIPT LOAD: %s",
                       r[i]->type == REDIS_REPLY_ERROR ? r[i]->str : "unexpected answer");
        else
            memcpy(st->sha[script], r[i]->str, 41);
    }
    if (s == BX_OK && n == 0)
        s = BX_ERR(err, BX_ETRANSIENT, "redis: SCRIPT LOAD: no master to load it on");
    bx_redis_replies_free(r, n);
    return s;
}

bx_status score_store_redis_open(bx_redis *redis, score_store_redis **out, bx_error *err)
{
    score_store_redis *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    st->redis = redis;
    for (int k = 0; k < CALL_KINDS; k++)
        bx_metric_register(&m_calls[k]);
    st->argv = calloc((size_t)WINDOW_CALLS * CALL_ARGS, sizeof(st->argv[0]));
    st->argvlen = calloc((size_t)WINDOW_CALLS * CALL_ARGS, sizeof(st->argvlen[0]));
    st->keys = calloc(LOAD_WINDOW, sizeof(st->keys[0]));
    if (st->argv == NULL || st->argvlen == NULL || st->keys == NULL) {
        score_store_redis_free(st);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        bx_status s = load_script(st, i, err);
        if (s != BX_OK) {
            score_store_redis_free(st);
            return s;
        }
    }
    *out = st;
    return BX_OK;
}

bx_status score_store_redis_new(redisContext *redis, score_store_redis **out, bx_error *err)
{
    bx_redis *h = bx_redis_wrap(redis);
    if (h == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    bx_status s = score_store_redis_open(h, out, err);
    if (s != BX_OK) {
        bx_redis_close(h);
        return s;
    }
    (*out)->own_handle = true;
    return BX_OK;
}

void score_store_redis_free(score_store_redis *st)
{
    if (st == NULL)
        return;
    if (st->own_handle)
        bx_redis_close(st->redis); /* the wrapper only: the connection is the caller's */
    free(st->argv);
    free(st->argvlen);
    free(st->keys);
    free(st);
}

/* Handles the answer to one call; must not keep r. */
typedef bx_status reply_fn(void *ctx, const call *c, const redisReply *r, bx_error *err);

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Sends the calls pipelined and hands each answer to fn, in order. Reads every answer even after
 * fn failed, so the connection stays in step. Script calls (script >= 0, argv[0] "EVALSHA",
 * argv[1] the sha) that meet NOSCRIPT are sent again as EVAL with the source. */
static bx_status run_calls(score_store_redis *st, call *calls, size_t ncalls, int script,
                           reply_fn *fn, void *ctx, bx_error *err)
{
    bx_redis *c = st->redis;
    for (size_t i = 0; i < ncalls; i++) {
        calls[i].retry = false;
        bx_status s = bx_redis_append(c, calls[i].argc, calls[i].argv, calls[i].argvlen, err);
        if (s != BX_OK)
            return s;
    }
    bx_status s = BX_OK;
    size_t retries = 0;
    for (size_t i = 0; i < ncalls; i++) {
        redisReply *r = NULL;
        bx_status rs = bx_redis_read(c, &r, err);
        if (rs != BX_OK)
            return rs;
        if (script >= 0 && is_noscript(r)) {
            calls[i].retry = true;
            retries++;
        } else if (s == BX_OK) {
            s = fn(ctx, &calls[i], r, err);
        }
        freeReplyObject(r);
    }
    if (retries == 0)
        return s;
    bx_log_info("redis: script cache was empty, sending %zu calls with EVAL", retries);
    for (size_t i = 0; i < ncalls; i++) {
        if (!calls[i].retry)
            continue;
        calls[i].argv[0] = "EVAL";
        calls[i].argvlen[0] = 4;
        calls[i].argv[1] = script_source[script];
        calls[i].argvlen[1] = strlen(script_source[script]);
        bx_status as = bx_redis_append(c, calls[i].argc, calls[i].argv, calls[i].argvlen, err);
        if (as != BX_OK)
            return as;
    }
    for (size_t i = 0; i < ncalls; i++) {
        if (!calls[i].retry)
            continue;
        redisReply *r = NULL;
        bx_status rs = bx_redis_read(c, &r, err);
        if (rs != BX_OK)
            return rs;
        if (s == BX_OK)
            s = fn(ctx, &calls[i], r, err);
        freeReplyObject(r);
    }
    /* Load the script again (on every master) so the next window goes back to EVALSHA. */
    if (s == BX_OK)
        s = load_script(st, script, err);
    return s;
}

static void call_arg(call *c, const char *arg, size_t len)
{
    assert(c->argc < CALL_ARGS);
    c->argv[c->argc] = arg;
    c->argvlen[c->argc] = len;
    c->argc++;
}

static call *window_call(score_store_redis *st, size_t i)
{
    call *c = &st->calls[i];
    c->argc = 0;
    c->argv = st->argv + i * CALL_ARGS;
    c->argvlen = st->argvlen + i * CALL_ARGS;
    return c;
}

/* Compare-and-set items, generic over facts and reports. */
typedef struct cas_item {
    const char *owner; /* student or class id */
    const char *field, *order_key, *value;
    bool implied;
} cas_item;

typedef struct cas_ctx {
    score_store_outcome *outcomes;
    size_t stored;
} cas_ctx;

static bx_status cas_reply(void *arg, const call *c, const redisReply *r, bx_error *err)
{
    cas_ctx *ctx = arg;
    if (r->type == REDIS_REPLY_ERROR)
        return BX_ERR(err, BX_EIO, "redis: %s: %s", c->argv[3], r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != c->count)
        return BX_ERR(err, BX_EIO, "redis: %s: unexpected answer to the apply script", c->argv[3]);
    for (size_t i = 0; i < c->count; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_INTEGER || e->integer < 0 || e->integer > 3)
            return BX_ERR(err, BX_EIO, "redis: %s: unexpected outcome", c->argv[3]);
        if (e->integer == SCORE_STORE_STORED)
            ctx->stored++;
        if (ctx->outcomes)
            ctx->outcomes[c->first + i] = (score_store_outcome)e->integer;
    }
    return BX_OK;
}

typedef bx_status key_fn(const char *id, char *out, size_t size);
typedef void item_fn(const void *items, size_t i, cas_item *out);

static bx_status apply_items(score_store_redis *st, const void *items, size_t n, item_fn *get,
                             key_fn *key, score_store_outcome *outcomes, size_t *stored,
                             bx_error *err)
{
    cas_ctx ctx = {outcomes, 0};
    bx_status s = BX_OK;
    size_t i = 0;
    while (i < n && s == BX_OK) {
        size_t ncalls = 0;
        while (i < n && ncalls < WINDOW_CALLS) {
            cas_item first;
            get(items, i, &first);
            call *c = window_call(st, ncalls);
            if (key(first.owner, st->keys[ncalls], sizeof(st->keys[0])) != BX_OK)
                return BX_ERR(err, BX_EINVAL, "bad id \"%.40s\"", first.owner);
            call_arg(c, "EVALSHA", 7);
            call_arg(c, st->sha[SCRIPT_APPLY], 40);
            call_arg(c, "1", 1);
            call_arg(c, st->keys[ncalls], strlen(st->keys[ncalls]));
            c->first = i;
            c->count = 0;
            while (i < n && c->count < GROUP_FACTS) {
                cas_item it;
                get(items, i, &it);
                if (strcmp(it.owner, first.owner) != 0)
                    break;
                call_arg(c, it.field, strlen(it.field));
                call_arg(c, it.order_key, strlen(it.order_key));
                call_arg(c, it.value, strlen(it.value));
                call_arg(c, it.implied ? "1" : "0", 1);
                c->count++;
                i++;
            }
            ncalls++;
        }
        s = run_calls(st, st->calls, ncalls, SCRIPT_APPLY, cas_reply, &ctx, err);
    }
    if (stored)
        *stored = ctx.stored;
    return s;
}

static void fact_item(const void *items, size_t i, cas_item *out)
{
    const score_store_fact *f = (const score_store_fact *)items + i;
    *out = (cas_item){f->student_id, f->field, f->order_key, f->value, f->implied};
}

static void report_item(const void *items, size_t i, cas_item *out)
{
    const score_store_report *r = (const score_store_report *)items + i;
    *out = (cas_item){r->class_id, r->field, r->order_key, r->value, false};
}

bx_status score_store_apply_facts(score_store_redis *st, const score_store_fact *facts, size_t n,
                                  score_store_outcome *outcomes, size_t *stored, bx_error *err)
{
    if (stored)
        *stored = 0;
    bx_status s = check_facts(facts, n, false, err);
    if (s != BX_OK)
        return s;
    return apply_items(st, facts, n, fact_item, score_store_key_facts, outcomes, stored, err);
}

bx_status score_store_apply_reports(score_store_redis *st, const score_store_report *reports,
                                    size_t n, score_store_outcome *outcomes, size_t *stored,
                                    bx_error *err)
{
    if (stored)
        *stored = 0;
    bx_status s = check_reports(reports, n, false, err);
    if (s != BX_OK)
        return s;
    return apply_items(st, reports, n, report_item, score_store_key_reported, outcomes, stored,
                       err);
}

static bx_status load_reply(void *arg, const call *c, const redisReply *r, bx_error *err)
{
    (void)arg;
    if (r->type == REDIS_REPLY_ERROR)
        return BX_ERR(err, BX_EIO, "redis: HGETALL %s: %s", c->argv[1], r->str);
    if (r->type == REDIS_REPLY_ARRAY)
        count_call(read_kind(c->argv[1], r->elements));
    return entries_from_reply(r, c->with_order, c->argv[1], c->dest, err);
}

static void loads_free(const score_store_load *loads, size_t nloads)
{
    for (size_t l = 0; l < nloads; l++)
        for (size_t i = 0; i < loads[l].n; i++)
            score_store_entries_free(&loads[l].out[i]);
}

bx_status score_store_load_many(score_store_redis *st, const score_store_load *loads, size_t nloads,
                                bx_error *err)
{
    static key_fn *const keys[] = {score_store_key_facts, score_store_key_summary,
                                   score_store_key_reported};
    for (size_t l = 0; l < nloads; l++)
        for (size_t i = 0; i < loads[l].n; i++)
            memset(&loads[l].out[i], 0, sizeof(loads[l].out[i]));
    for (size_t l = 0; l < nloads; l++) {
        if ((unsigned)loads[l].hash > SCORE_STORE_HASH_REPORTED)
            return BX_ERR(err, BX_EINVAL, "loads[%zu].hash: not a hash kind", l);
        for (size_t i = 0; i < loads[l].n; i++)
            if (!id_valid(loads[l].ids[i]))
                return BX_ERR(err, BX_EINVAL, "ids[%zu]: expected 1 to 32 of A-Z a-z 0-9 _ -", i);
    }
    bx_status s = BX_OK;
    size_t l = 0, i = 0;
    while (l < nloads && s == BX_OK) {
        size_t ncalls = 0;
        for (; l < nloads && ncalls < LOAD_WINDOW; l++, i = 0) {
            const score_store_load *ld = &loads[l];
            for (; i < ld->n && ncalls < LOAD_WINDOW; i++, ncalls++) {
                call *c = &st->calls[ncalls];
                c->argc = 0;
                c->argv = st->argv + 2 * ncalls;
                c->argvlen = st->argvlen + 2 * ncalls;
                bx_status ks = keys[ld->hash](ld->ids[i], st->keys[ncalls], sizeof(st->keys[0]));
                assert(ks == BX_OK); /* the ids were checked above */
                (void)ks;
                call_arg(c, "HGETALL", 7);
                call_arg(c, st->keys[ncalls], strlen(st->keys[ncalls]));
                c->first = i;
                c->count = 1;
                c->dest = &ld->out[i];
                c->with_order = ld->hash != SCORE_STORE_HASH_SUMMARY;
            }
            if (i < ld->n)
                break; /* the window is full: this list goes on in the next */
        }
        if (ncalls > 0)
            s = run_calls(st, st->calls, ncalls, -1, load_reply, NULL, err);
    }
    if (s != BX_OK)
        loads_free(loads, nloads);
    return s;
}

static bx_status load_one(score_store_redis *st, score_store_hash hash, const char *const *ids,
                          size_t n, score_store_entries *out, bx_error *err)
{
    const score_store_load load = {hash, ids, n, out};
    return score_store_load_many(st, &load, 1, err);
}

bx_status score_store_load_facts(score_store_redis *st, const char *const *student_ids, size_t n,
                                 score_store_entries *out, bx_error *err)
{
    return load_one(st, SCORE_STORE_HASH_FACTS, student_ids, n, out, err);
}

bx_status score_store_load_reports(score_store_redis *st, const char *const *class_ids, size_t n,
                                   score_store_entries *out, bx_error *err)
{
    return load_one(st, SCORE_STORE_HASH_REPORTED, class_ids, n, out, err);
}

bx_status score_store_load_summaries(score_store_redis *st, const char *const *student_ids,
                                     size_t n, score_store_entries *out, bx_error *err)
{
    return load_one(st, SCORE_STORE_HASH_SUMMARY, student_ids, n, out, err);
}

/* --- Pipes ------------------------------------------------------------------------------------ */

enum { OP_APPLY, OP_LOAD, OP_HAS, OP_BARRIER };

typedef struct pipe_op {
    int kind;
    char key[SCORE_STORE_KEY_MAX];
    /* OP_APPLY: count items of facts or reports (one owner), outcomes */
    const score_store_fact *facts;
    const score_store_report *reports;
    size_t count;
    score_store_outcome *outcomes;
    /* OP_LOAD */
    score_store_entries *dest;
    bool with_order;
    /* OP_HAS: count fields */
    const char *const *fields;
    bool *present;
    bool retry; /* answered NOSCRIPT */
} pipe_op;

struct score_store_pipe {
    pipe_op *ops;
    size_t n, cap;
    size_t stored;
};

bx_status score_store_check(const score_store_fact *facts, size_t n,
                            const score_store_report *reports, size_t m, bx_error *err)
{
    bx_status s = check_facts(facts, n, false, err);
    IFOK(s, check_reports(reports, m, false, err));
    return s;
}

bx_status score_store_pipe_new(score_store_pipe **out, bx_error *err)
{
    *out = calloc(1, sizeof(**out));
    return *out ? BX_OK : BX_ERR(err, BX_ENOMEM, "out of memory");
}

void score_store_pipe_free(score_store_pipe *p)
{
    if (p == NULL)
        return;
    free(p->ops);
    free(p);
}

void score_store_pipe_clear(score_store_pipe *p)
{
    p->n = 0;
}

size_t score_store_pipe_count(const score_store_pipe *p)
{
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        k += p->ops[i].kind != OP_BARRIER;
    return k;
}

static pipe_op *pipe_add(score_store_pipe *p, int kind, bx_error *err)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        pipe_op *o = realloc(p->ops, cap * sizeof(*o));
        if (o == NULL) {
            BX_ERR(err, BX_ENOMEM, "out of memory");
            return NULL;
        }
        p->ops = o;
        p->cap = cap;
    }
    pipe_op *op = &p->ops[p->n++];
    *op = (pipe_op){.kind = kind};
    return op;
}

/* One operation of kind on the hash whose key key makes of id (checked by the caller), for the
 * items from first on of n, at most GROUP_FACTS of them; NULL when memory runs out. */
static pipe_op *pipe_add_group(score_store_pipe *p, int kind, key_fn *key, const char *id,
                               size_t first, size_t n, bx_error *err)
{
    pipe_op *op = pipe_add(p, kind, err);
    if (op == NULL)
        return NULL;
    bx_status ks = key(id, op->key, sizeof(op->key));
    assert(ks == BX_OK);
    (void)ks;
    op->count = n - first < GROUP_FACTS ? n - first : GROUP_FACTS;
    return op;
}

/* The OP_APPLY operations of n facts, or of n reports when facts is NULL, all of the owner id
 * (whose hash key makes), GROUP_FACTS a time; s is the status of the callers' checks: nothing is
 * added after one failed. */
static bx_status pipe_add_applies(score_store_pipe *p, bx_status s, key_fn *key, const char *id,
                                  const score_store_fact *facts, const score_store_report *reports,
                                  size_t n, score_store_outcome *outcomes, bx_error *err)
{
    for (size_t i = 0; i < n && s == BX_OK; i += GROUP_FACTS) {
        pipe_op *op = pipe_add_group(p, OP_APPLY, key, id, i, n, err);
        if (op == NULL)
            return BX_ENOMEM;
        op->facts = facts ? facts + i : NULL;
        op->reports = facts ? NULL : reports + i;
        op->outcomes = outcomes + i;
    }
    return s;
}

bx_status score_store_pipe_apply_facts(score_store_pipe *p, const score_store_fact *facts, size_t n,
                                       score_store_outcome *outcomes, bx_error *err)
{
    bx_status s = check_facts(facts, n, false, err);
    for (size_t i = 1; i < n && s == BX_OK; i++)
        if (strcmp(facts[i].student_id, facts[0].student_id) != 0)
            s = BX_ERR(err, BX_EINVAL, "facts[%zu].student_id: not the student of facts[0]", i);
    return pipe_add_applies(p, s, score_store_key_facts, n > 0 ? facts[0].student_id : NULL, facts,
                            NULL, n, outcomes, err);
}

bx_status score_store_pipe_apply_reports(score_store_pipe *p, const score_store_report *reports,
                                         size_t n, score_store_outcome *outcomes, bx_error *err)
{
    bx_status s = check_reports(reports, n, false, err);
    for (size_t i = 1; i < n && s == BX_OK; i++)
        if (strcmp(reports[i].class_id, reports[0].class_id) != 0)
            s = BX_ERR(err, BX_EINVAL, "reports[%zu].class_id: not the class of reports[0]", i);
    return pipe_add_applies(p, s, score_store_key_reported, n > 0 ? reports[0].class_id : NULL,
                            NULL, reports, n, outcomes, err);
}

bx_status score_store_pipe_load(score_store_pipe *p, score_store_hash hash, const char *id,
                                score_store_entries *out, bx_error *err)
{
    static key_fn *const keys[] = {score_store_key_facts, score_store_key_summary,
                                   score_store_key_reported};
    if ((unsigned)hash > SCORE_STORE_HASH_REPORTED)
        return BX_ERR(err, BX_EINVAL, "hash: not a hash kind");
    if (!id_valid(id))
        return BX_ERR(err, BX_EINVAL, "id \"%.40s\": expected 1 to 32 of A-Z a-z 0-9 _ -",
                      id ? id : "(null)");
    memset(out, 0, sizeof(*out));
    pipe_op *op = pipe_add(p, OP_LOAD, err);
    if (op == NULL)
        return BX_ENOMEM;
    bx_status ks = keys[hash](id, op->key, sizeof(op->key));
    assert(ks == BX_OK);
    (void)ks;
    op->dest = out;
    op->with_order = hash != SCORE_STORE_HASH_SUMMARY;
    return BX_OK;
}

bx_status score_store_pipe_has_fields(score_store_pipe *p, const char *student_id,
                                      const char *const *fields, size_t n, bool *present,
                                      bx_error *err)
{
    if (!id_valid(student_id))
        return BX_ERR(err, BX_EINVAL, "student_id: expected 1 to 32 of A-Z a-z 0-9 _ -");
    for (size_t i = 0; i < n; i += GROUP_FACTS) {
        pipe_op *op = pipe_add_group(p, OP_HAS, score_store_key_facts, student_id, i, n, err);
        if (op == NULL)
            return BX_ENOMEM;
        op->fields = fields + i;
        op->present = present + i;
        for (size_t j = 0; j < op->count; j++)
            op->present[j] = false;
    }
    return BX_OK;
}

void score_store_pipe_barrier(score_store_pipe *p)
{
    if (p->n > 0 && p->ops[p->n - 1].kind != OP_BARRIER)
        (void)pipe_add(p, OP_BARRIER, NULL);
}

/* The arguments of op into argv/argvlen (at most CALL_ARGS); returns how many. */
static int pipe_args(const score_store_redis *st, const pipe_op *op, bool eval, const char **argv,
                     size_t *argvlen)
{
    int k = 0;
#define ARG(s, l) (argv[k] = (s), argvlen[k] = (l), k++)
    if (op->kind == OP_APPLY) {
        if (eval) {
            ARG("EVAL", 4);
            ARG(lua_apply, sizeof(lua_apply) - 1);
        } else {
            ARG("EVALSHA", 7);
            ARG(st->sha[SCRIPT_APPLY], 40);
        }
        ARG("1", 1);
        ARG(op->key, strlen(op->key));
        for (size_t i = 0; i < op->count; i++) {
            cas_item it;
            if (op->facts)
                fact_item(op->facts, i, &it);
            else
                report_item(op->reports, i, &it);
            ARG(it.field, strlen(it.field));
            ARG(it.order_key, strlen(it.order_key));
            ARG(it.value, strlen(it.value));
            ARG(it.implied ? "1" : "0", 1);
        }
    } else if (op->kind == OP_LOAD) {
        ARG("HGETALL", 7);
        ARG(op->key, strlen(op->key));
    } else {
        ARG("HMGET", 5);
        ARG(op->key, strlen(op->key));
        for (size_t i = 0; i < op->count; i++)
            ARG(op->fields[i], strlen(op->fields[i]));
    }
#undef ARG
    return k;
}

/* The answer to one call of a pipe. */
static bx_status pipe_reply(score_store_pipe *p, pipe_op *op, const redisReply *r, bx_error *err)
{
    if (r->type == REDIS_REPLY_ERROR)
        return BX_ERR(err, BX_EIO, "redis: %s: %s", op->key, r->str);
    if (op->kind == OP_APPLY) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != op->count)
            return BX_ERR(err, BX_EIO, "redis: %s: unexpected answer to the apply script", op->key);
        bool wrote = false;
        for (size_t i = 0; i < op->count; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_INTEGER || e->integer < 0 || e->integer > 3)
                return BX_ERR(err, BX_EIO, "redis: %s: unexpected outcome", op->key);
            if (e->integer == SCORE_STORE_STORED)
                p->stored++;
            wrote |= e->integer == SCORE_STORE_STORED;
            if (op->outcomes)
                op->outcomes[i] = (score_store_outcome)e->integer;
        }
        count_call(op->reports ? CALL_APPLY_REPORT
                   : wrote     ? CALL_APPLY_FACT_WRITE
                               : CALL_APPLY_FACT_NOWRITE);
        return BX_OK;
    }
    if (op->kind == OP_LOAD) {
        score_store_entries_free(op->dest);
        if (r->type == REDIS_REPLY_ARRAY)
            count_call(read_kind(op->key, r->elements));
        return entries_from_reply(r, op->with_order, op->key, op->dest, err);
    }
    count_call(CALL_HMGET);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != op->count)
        return BX_ERR(err, BX_EIO, "redis: HMGET %s: unexpected answer", op->key);
    for (size_t i = 0; i < op->count; i++)
        op->present[i] = r->element[i]->type == REDIS_REPLY_STRING;
    return BX_OK;
}

#define PIPE_WINDOW 1024

/* Sends ops [from, to) (those with retry set only, when only_retried) and reads their answers.
 * Reads every answer even after a failure, so the connection stays in step. *noscript counts the
 * applies answered NOSCRIPT (their retry set). */
static bx_status pipe_window(score_store_redis *st, score_store_pipe *p, size_t from, size_t to,
                             bool only_retried, bool eval, size_t *noscript, bx_error *err)
{
    bx_redis *c = st->redis;
    size_t sent = 0;
    for (size_t i = from; i < to; i++) {
        pipe_op *op = &p->ops[i];
        if (op->kind == OP_BARRIER || (only_retried && !op->retry))
            continue;
        int argc = pipe_args(st, op, eval && op->kind == OP_APPLY, st->argv, st->argvlen);
        bx_status s = bx_redis_append(c, argc, st->argv, st->argvlen, err);
        if (s != BX_OK)
            return s;
        sent++;
    }
    bx_status s = BX_OK;
    for (size_t i = from; i < to && sent > 0; i++) {
        pipe_op *op = &p->ops[i];
        if (op->kind == OP_BARRIER || (only_retried && !op->retry))
            continue;
        redisReply *r = NULL;
        bx_status rs = bx_redis_read(c, &r, err);
        if (rs != BX_OK)
            return rs;
        sent--;
        op->retry = false;
        if (op->kind == OP_APPLY && is_noscript(r)) {
            op->retry = true;
            (*noscript)++;
        } else if (s == BX_OK) {
            s = pipe_reply(p, op, r, err);
        }
        freeReplyObject(r);
    }
    return s;
}

bx_status score_store_pipe_run(score_store_redis *st, score_store_pipe *p, size_t *stored,
                               bx_error *err)
{
    bool cluster = bx_redis_is_cluster(st->redis);
    bx_status s = BX_OK;
    p->stored = 0;
    size_t i = 0;
    while (i < p->n && s == BX_OK) {
        /* A window: up to PIPE_WINDOW calls, ending at a barrier when the store is a cluster. */
        size_t from = i, calls = 0;
        while (i < p->n && calls < PIPE_WINDOW) {
            if (p->ops[i].kind == OP_BARRIER) {
                i++;
                if (cluster)
                    break;
                continue;
            }
            calls++;
            i++;
        }
        size_t noscript = 0;
        s = pipe_window(st, p, from, i, false, false, &noscript, err);
        if (s != BX_OK || noscript == 0)
            continue;
        /* The script cache was empty: the applies again with EVAL, then every read of the window
         * again (a read queued after an apply must see its write). */
        bx_log_info("redis: script cache was empty, sending %zu calls with EVAL", noscript);
        for (size_t j = from; j < i; j++)
            if (p->ops[j].kind == OP_LOAD || p->ops[j].kind == OP_HAS)
                p->ops[j].retry = true;
        size_t again = 0;
        s = pipe_window(st, p, from, i, true, true, &again, err);
        if (s == BX_OK && again > 0)
            s = BX_ERR(err, BX_EIO, "redis: NOSCRIPT answered to EVAL");
        IFOK(s, load_script(st, SCRIPT_APPLY, err));
    }
    if (s != BX_OK)
        for (size_t j = 0; j < p->n; j++)
            if (p->ops[j].kind == OP_LOAD)
                score_store_entries_free(p->ops[j].dest);
    if (stored)
        *stored = p->stored;
    return s;
}

static bx_status summary_reply(void *arg, const call *c, const redisReply *r, bx_error *err)
{
    bool *changed = arg;
    if (r->type == REDIS_REPLY_ERROR)
        return BX_ERR(err, BX_EIO, "redis: %s: %s", c->argv[3], r->str);
    if (r->type != REDIS_REPLY_INTEGER)
        return BX_ERR(err, BX_EIO, "redis: %s: unexpected answer to the summary script",
                      c->argv[3]);
    if (changed)
        changed[c->first] = r->integer == 1;
    count_call(CALL_SUMMARY);
    return BX_OK;
}

bx_status score_store_put_summaries(score_store_redis *st, const score_store_summary *summaries,
                                    size_t n, bool *changed, bx_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const score_store_summary *m = &summaries[i];
        if (!id_valid(m->student_id))
            return BX_ERR(err, BX_EINVAL,
                          "summaries[%zu].student_id: expected 1 to 32 of A-Z a-z 0-9 _ -", i);
        if (m->count > SCORE_STORE_SUMMARY_MAX)
            return BX_ERR(err, BX_EINVAL, "summaries[%zu]: %zu names, at most %d", i, m->count,
                          SCORE_STORE_SUMMARY_MAX);
        for (size_t j = 0; j < m->count; j++) {
            if (!summary_name_valid(m->names[j]))
                return BX_ERR(err, BX_EINVAL,
                              "summaries[%zu].names[%zu]: expected 1 to 64 of A-Z a-z 0-9 _ . : -",
                              i, j);
            if (!value_valid(m->values[j]))
                return BX_ERR(err, BX_EINVAL,
                              "summaries[%zu].values[%zu]: expected at most %d bytes of UTF-8 "
                              "without control characters",
                              i, j, SCORE_STORE_VALUE_MAX);
        }
    }
    bx_status s = BX_OK;
    for (size_t i = 0; i < n && s == BX_OK;) {
        /* A window holds at most WINDOW_CALLS * CALL_ARGS arguments: a summary needs up to
         * 4 + 2 * SCORE_STORE_SUMMARY_MAX, so take as many as fit. */
        size_t ncalls = 0, used = 0;
        for (; i < n && ncalls < WINDOW_CALLS; i++, ncalls++) {
            size_t need = 4 + 2 * summaries[i].count;
            if (used + need > (size_t)WINDOW_CALLS * CALL_ARGS)
                break;
            call *c = &st->calls[ncalls];
            c->argc = 0;
            c->argv = st->argv + used;
            c->argvlen = st->argvlen + used;
            used += need;
            bx_status ks = score_store_key_summary(summaries[i].student_id, st->keys[ncalls],
                                                   sizeof(st->keys[0]));
            assert(ks == BX_OK); /* the ids were checked above */
            (void)ks;
            c->argv[c->argc] = "EVALSHA";
            c->argvlen[c->argc++] = 7;
            c->argv[c->argc] = st->sha[SCRIPT_SUMMARY];
            c->argvlen[c->argc++] = 40;
            c->argv[c->argc] = "1";
            c->argvlen[c->argc++] = 1;
            c->argv[c->argc] = st->keys[ncalls];
            c->argvlen[c->argc++] = strlen(st->keys[ncalls]);
            for (size_t j = 0; j < summaries[i].count; j++) {
                c->argv[c->argc] = summaries[i].names[j];
                c->argvlen[c->argc++] = strlen(summaries[i].names[j]);
                c->argv[c->argc] = summaries[i].values[j];
                c->argvlen[c->argc++] = strlen(summaries[i].values[j]);
            }
            c->first = i;
            c->count = 1;
        }
        s = run_calls(st, st->calls, ncalls, SCRIPT_SUMMARY, summary_reply, changed, err);
    }
    return s;
}

/* --- PostgreSQL writes ------------------------------------------------------------------------ */

/* Several facts of one field in a batch: the greatest (order_key, value) goes in, as Redis would
 * end with; ON CONFLICT cannot touch one row twice in a statement. */
static const char sql_write_facts[] =
    "INSERT INTO attendance.fact AS f (student_id, field, day, period, school_id, class_id, "
    "order_key, value) "
    "SELECT DISTINCT ON (u.student_id, u.field) u.student_id, u.field, "
    "CASE WHEN u.field LIKE 'L|%' THEN NULL ELSE left(u.field, 10)::date END, "
    "CASE WHEN u.field LIKE 'L|%' THEN NULL ELSE split_part(u.field, '|', 2)::smallint END, "
    "u.school_id, u.class_id, u.order_key, u.value "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
    "AS u(student_id, field, school_id, class_id, order_key, value) "
    "ORDER BY u.student_id, u.field, u.order_key COLLATE \"C\" DESC, "
    "u.value COLLATE \"C\" DESC "
    "ON CONFLICT (student_id, field) DO UPDATE SET school_id = EXCLUDED.school_id, "
    "class_id = EXCLUDED.class_id, order_key = EXCLUDED.order_key, value = EXCLUDED.value "
    "WHERE (f.order_key, f.value) < (EXCLUDED.order_key, EXCLUDED.value)";

static const char sql_write_reports[] =
    "INSERT INTO attendance.class_report AS r (class_id, day, period, school_id, order_key, value) "
    "SELECT DISTINCT ON (u.class_id, u.field) u.class_id, left(u.field, 10)::date, "
    "split_part(u.field, '|', 2)::smallint, u.school_id, u.order_key, u.value "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) "
    "AS u(class_id, field, school_id, order_key, value) "
    "ORDER BY u.class_id, u.field, u.order_key COLLATE \"C\" DESC, "
    "u.value COLLATE \"C\" DESC "
    "ON CONFLICT (class_id, day, period) DO UPDATE SET school_id = EXCLUDED.school_id, "
    "order_key = EXCLUDED.order_key, value = EXCLUDED.value "
    "WHERE (r.order_key, r.value) < (EXCLUDED.order_key, EXCLUDED.value)";

/* Runs sql with ncols text arrays as parameters; adds the affected rows to *written. */
static bx_status pg_write_arrays(PGconn *db, const char *sql, bx_buf *cols, int ncols,
                                 size_t *written, bx_error *err)
{
    const char *params[8];
    assert(ncols <= 8);
    bx_status s = BX_OK;
    for (int c = 0; c < ncols; c++) {
        IFOK(s, bx_pg_text_array_end(&cols[c]));
        params[c] = cols[c].data;
    }
    if (s != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "out of memory building a batch");
    PGresult *res = NULL;
    s = bx_pg_query(db, sql, ncols, params, &res, err);
    if (s == BX_OK && written)
        *written += strtoul(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    for (int c = 0; c < ncols; c++)
        bx_buf_reset(&cols[c]);
    return s;
}

/* The columns of row i of a batch into cols (one string per column); false to leave it out. */
typedef bool pg_row_fn(const void *rows, size_t i, const void *ctx, const char **cols);

/* Writes the n rows through sql, whose parameters are ncols text arrays, PG_CHUNK rows a
 * statement; adds the affected rows to *written. */
static bx_status pg_write_rows(PGconn *db, const char *sql, int ncols, const void *rows, size_t n,
                               pg_row_fn *row, const void *ctx, size_t *written, bx_error *err)
{
    enum { NCOLS_MAX = 8 };
    assert(ncols <= NCOLS_MAX);
    bx_buf cols[NCOLS_MAX];
    for (int c = 0; c < ncols; c++)
        bx_buf_init(&cols[c], 256u << 20);
    bx_status s = BX_OK;
    size_t pending = 0;
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        const char *v[NCOLS_MAX];
        if (!row(rows, i, ctx, v))
            continue;
        for (int c = 0; c < ncols; c++)
            IFOK(s, bx_pg_text_array_add(&cols[c], v[c]));
        if (s != BX_OK) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory building a batch");
            break;
        }
        if (++pending == PG_CHUNK) {
            s = pg_write_arrays(db, sql, cols, ncols, written, err);
            pending = 0;
        }
    }
    if (s == BX_OK && pending > 0)
        s = pg_write_arrays(db, sql, cols, ncols, written, err);
    for (int c = 0; c < ncols; c++)
        bx_buf_free(&cols[c]);
    return s;
}

/* A fact's row; an implied one only where Redis stored it or held it already (ctx: outcomes). */
static bool fact_row(const void *rows, size_t i, const void *ctx, const char **cols)
{
    const score_store_fact *f = &((const score_store_fact *)rows)[i];
    const score_store_outcome *outcomes = ctx;
    if (f->implied && outcomes[i] != SCORE_STORE_STORED && outcomes[i] != SCORE_STORE_CURRENT)
        return false;
    const char *v[] = {f->student_id, f->field, f->school_id, f->class_id, f->order_key, f->value};
    memcpy(cols, v, sizeof(v));
    return true;
}

static bool report_row(const void *rows, size_t i, const void *ctx, const char **cols)
{
    const score_store_report *r = &((const score_store_report *)rows)[i];
    const char *v[] = {r->class_id, r->field, r->school_id, r->order_key, r->value};
    memcpy(cols, v, sizeof(v));
    return true;
}

bx_status score_store_pg_write_facts(PGconn *db, const score_store_fact *facts,
                                     const score_store_outcome *outcomes, size_t n, size_t *written,
                                     bx_error *err)
{
    if (written)
        *written = 0;
    bx_status s = check_facts(facts, n, true, err);
    if (s != BX_OK)
        return s;
    for (size_t i = 0; i < n; i++)
        if (facts[i].implied && outcomes == NULL)
            return BX_ERR(err, BX_EINVAL,
                          "facts[%zu]: implied, but no outcomes from score_store_apply_facts given",
                          i);
    return pg_write_rows(db, sql_write_facts, 6, facts, n, fact_row, outcomes, written, err);
}

bx_status score_store_pg_write_reports(PGconn *db, const score_store_report *reports, size_t n,
                                       size_t *written, bx_error *err)
{
    if (written)
        *written = 0;
    bx_status s = check_reports(reports, n, true, err);
    if (s != BX_OK)
        return s;
    return pg_write_rows(db, sql_write_reports, 5, reports, n, report_row, NULL, written, err);
}

/* --- PostgreSQL walks ------------------------------------------------------------------------- */

/* The rows of one owner (student or class) gathered across fetches: offsets into text. */
typedef struct group {
    bx_buf text;
    size_t *offsets; /* 3 per entry: field, order key, value */
    size_t count, cap;
    char owner[SCORE_STORE_ID_MAX + 1];
} group;

static bx_status group_add(group *g, const char *field, const char *order_key, const char *value)
{
    if (g->count == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        size_t *p = realloc(g->offsets, cap * 3 * sizeof(*p));
        if (p == NULL)
            return BX_ENOMEM;
        g->offsets = p;
        g->cap = cap;
    }
    const char *parts[3] = {field, order_key, value};
    bx_status s = BX_OK;
    for (int k = 0; k < 3 && s == BX_OK; k++) {
        g->offsets[g->count * 3 + k] = g->text.len;
        s = bx_buf_append(&g->text, parts[k], strlen(parts[k]) + 1);
    }
    if (s == BX_OK)
        g->count++;
    return s;
}

/* Hands the group to fn as entries (sorted by field) and empties it. */
typedef bx_status group_fn(const char *owner, const score_store_entries *e, void *arg);

static bx_status group_flush(group *g, group_fn *fn, void *arg, bx_error *err)
{
    if (g->count == 0)
        return BX_OK;
    score_store_entries e = {calloc(g->count, sizeof(score_store_entry)), g->count, NULL};
    if (e.items == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->count; i++) {
        e.items[i].field = g->text.data + g->offsets[3 * i];
        e.items[i].order_key = g->text.data + g->offsets[3 * i + 1];
        e.items[i].value = g->text.data + g->offsets[3 * i + 2];
    }
    qsort(e.items, e.count, sizeof(e.items[0]), cmp_entry);
    bx_status s = fn(g->owner, &e, arg);
    free(e.items);
    g->count = 0;
    bx_buf_reset(&g->text);
    return s;
}

/* Walks a query (columns owner, field, order_key, value; ordered by owner) through a cursor in a
 * REPEATABLE READ READ ONLY transaction, calling fn once per owner: query_all, or with the scope's
 * school query_school with the school id as $1. */
static bx_status pg_walk(PGconn *db, const score_store_scope *scope, const char *query_all,
                         const char *query_school, group_fn *fn, void *arg, bx_error *err)
{
    const char *school_id = scope ? scope->school_id : NULL;
    if (school_id && !id_valid(school_id))
        return BX_ERR(err, BX_EINVAL, "scope.school_id: expected 1 to 32 of A-Z a-z 0-9 _ -");
    const char *query = school_id ? query_school : query_all;
    if (PQtransactionStatus(db) != PQTRANS_IDLE)
        return BX_ERR(err, BX_EINVAL, "store: the walk needs a connection outside a transaction");
    group g = {0};
    bx_buf_init(&g.text, 0);
    const char *params[1] = {school_id};
    PGresult *res = NULL;
    bx_status s = bx_pg_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
    IFOK(s, bx_pg_query(db, query, school_id ? 1 : 0, school_id ? params : NULL, &res, err));
    PQclear(res);
    while (s == BX_OK) {
        res = NULL;
        s = bx_pg_query(db, "FETCH " PG_FETCH " FROM store_walk", 0, NULL, &res, err);
        if (s != BX_OK)
            break;
        int rows = PQntuples(res);
        for (int r = 0; r < rows && s == BX_OK; r++) {
            const char *owner = PQgetvalue(res, r, 0);
            if (g.count > 0 && strcmp(owner, g.owner) != 0)
                s = group_flush(&g, fn, arg, err);
            if (s != BX_OK)
                break;
            if (g.count == 0)
                snprintf(g.owner, sizeof(g.owner), "%s", owner);
            if (group_add(&g, PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                          PQgetvalue(res, r, 3)) != BX_OK)
                s = BX_ERR(err, BX_ENOMEM, "out of memory walking attendance");
        }
        PQclear(res);
        if (rows == 0)
            break;
    }
    IFOK(s, group_flush(&g, fn, arg, err));
    if (s == BX_OK)
        s = bx_pg_exec(db, "COMMIT", err);
    else
        bx_pg_rollback(db);
    free(g.offsets);
    bx_buf_free(&g.text);
    return s;
}

static const char sql_walk_facts[] =
    "DECLARE store_walk NO SCROLL CURSOR FOR SELECT student_id, field, order_key, value "
    "FROM attendance.fact ORDER BY student_id, field";
static const char sql_walk_facts_school[] =
    "DECLARE store_walk NO SCROLL CURSOR FOR SELECT student_id, field, order_key, value "
    "FROM attendance.fact WHERE school_id = $1 ORDER BY student_id, field";
static const char sql_walk_reports[] =
    "DECLARE store_walk NO SCROLL CURSOR FOR SELECT class_id, "
    "to_char(day, 'YYYY-MM-DD') || '|' || period, order_key, value "
    "FROM attendance.class_report ORDER BY class_id, day, period";
static const char sql_walk_reports_school[] =
    "DECLARE store_walk NO SCROLL CURSOR FOR SELECT class_id, "
    "to_char(day, 'YYYY-MM-DD') || '|' || period, order_key, value "
    "FROM attendance.class_report WHERE school_id = $1 ORDER BY class_id, day, period";

bx_status score_store_pg_each_student(PGconn *db, const score_store_scope *scope,
                                      score_store_student_fn *fn, void *arg, bx_error *err)
{
    return pg_walk(db, scope, sql_walk_facts, sql_walk_facts_school, fn, arg, err);
}

bx_status score_store_pg_each_class(PGconn *db, const score_store_scope *scope,
                                    score_store_class_fn *fn, void *arg, bx_error *err)
{
    return pg_walk(db, scope, sql_walk_reports, sql_walk_reports_school, fn, arg, err);
}

/* --- Rebuild ---------------------------------------------------------------------------------- */

/* Copies of walked entries waiting for one pipelined apply. */
typedef struct rebuild {
    score_store_redis *st;
    score_store_recompute_fn *recompute;
    void *arg;
    score_store_rebuild_stats stats;
    bool classes;  /* applying reports (else facts) */
    bx_buf text;   /* owners and entries, NUL-separated */
    size_t *items; /* 4 offsets per item: owner, field, order key, value */
    size_t count, cap;
    size_t *owners; /* offset of each distinct owner in the batch, in order */
    size_t nowners, owners_cap;
    bx_error *err;
} rebuild;

static bx_status rebuild_flush(rebuild *rb)
{
    if (rb->count == 0)
        return BX_OK;
    bx_status s = BX_OK;
    const char *t = rb->text.data;
    if (rb->classes) {
        score_store_report *r = calloc(rb->count, sizeof(*r));
        if (r == NULL)
            return BX_ERR(rb->err, BX_ENOMEM, "out of memory");
        for (size_t i = 0; i < rb->count; i++) {
            const size_t *o = rb->items + 4 * i;
            r[i] = (score_store_report){t + o[0], NULL, t + o[1], t + o[2], t + o[3]};
        }
        s = score_store_apply_reports(rb->st, r, rb->count, NULL, NULL, rb->err);
        free(r);
        rb->stats.reports += rb->count;
    } else {
        score_store_fact *f = calloc(rb->count, sizeof(*f));
        if (f == NULL)
            return BX_ERR(rb->err, BX_ENOMEM, "out of memory");
        for (size_t i = 0; i < rb->count; i++) {
            const size_t *o = rb->items + 4 * i;
            f[i] = (score_store_fact){t + o[0], NULL, NULL, t + o[1], t + o[2], t + o[3], false};
        }
        s = score_store_apply_facts(rb->st, f, rb->count, NULL, NULL, rb->err);
        free(f);
        rb->stats.facts += rb->count;
        for (size_t i = 0; i < rb->nowners && s == BX_OK && rb->recompute; i++)
            s = rb->recompute(t + rb->owners[i], rb->arg);
    }
    rb->count = 0;
    rb->nowners = 0;
    bx_buf_reset(&rb->text);
    return s;
}

static bx_status rebuild_take(const char *owner, const score_store_entries *e, void *arg)
{
    rebuild *rb = arg;
    if (rb->count + e->count > rb->cap) {
        size_t cap = rb->cap ? rb->cap : REBUILD_BATCH;
        while (cap < rb->count + e->count)
            cap *= 2;
        size_t *p = realloc(rb->items, cap * 4 * sizeof(*p));
        if (p == NULL)
            return BX_ERR(rb->err, BX_ENOMEM, "out of memory");
        rb->items = p;
        rb->cap = cap;
    }
    if (rb->nowners == rb->owners_cap) {
        size_t cap = rb->owners_cap ? rb->owners_cap * 2 : 256;
        size_t *p = realloc(rb->owners, cap * sizeof(*p));
        if (p == NULL)
            return BX_ERR(rb->err, BX_ENOMEM, "out of memory");
        rb->owners = p;
        rb->owners_cap = cap;
    }
    size_t at = rb->text.len;
    bx_status s = bx_buf_append(&rb->text, owner, strlen(owner) + 1);
    rb->owners[rb->nowners++] = at;
    for (size_t i = 0; i < e->count && s == BX_OK; i++) {
        size_t *o = rb->items + 4 * rb->count;
        o[0] = at;
        o[1] = rb->text.len;
        s = bx_buf_append(&rb->text, e->items[i].field, strlen(e->items[i].field) + 1);
        o[2] = rb->text.len;
        IFOK(s, bx_buf_append(&rb->text, e->items[i].order_key, strlen(e->items[i].order_key) + 1));
        o[3] = rb->text.len;
        IFOK(s, bx_buf_append(&rb->text, e->items[i].value, strlen(e->items[i].value) + 1));
        rb->count++;
    }
    if (s != BX_OK)
        return BX_ERR(rb->err, BX_ENOMEM, "out of memory");
    if (rb->classes)
        rb->stats.classes++;
    else
        rb->stats.students++;
    return rb->count >= REBUILD_BATCH ? rebuild_flush(rb) : BX_OK;
}

bx_status score_store_rebuild(PGconn *db, score_store_redis *st, const score_store_scope *scope,
                              score_store_recompute_fn *recompute, void *arg,
                              score_store_rebuild_stats *stats, bx_error *err)
{
    rebuild rb = {.st = st, .recompute = recompute, .arg = arg, .err = err};
    bx_buf_init(&rb.text, 0);
    /* Coverage first: recomputing a student needs its class's roll calls. */
    rb.classes = true;
    bx_status s = score_store_pg_each_class(db, scope, rebuild_take, &rb, err);
    IFOK(s, rebuild_flush(&rb));
    rb.classes = false;
    IFOK(s, score_store_pg_each_student(db, scope, rebuild_take, &rb, err));
    IFOK(s, rebuild_flush(&rb));
    if (stats)
        *stats = rb.stats;
    if (s == BX_OK)
        bx_log_info("rebuild: %zu reports of %zu classes, %zu facts of %zu students",
                    rb.stats.reports, rb.stats.classes, rb.stats.facts, rb.stats.students);
    free(rb.items);
    free(rb.owners);
    bx_buf_free(&rb.text);
    return s;
}
