/* bxctl settle: waits until the pipeline has settled (every consumer group has committed up to the
 * end of its topics, no timer is due, the outbox is empty, nothing else is pending), so a
 * simulation advances its clock only on a quiet pipeline (architecture.md, "Time"). */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bxctl.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_GROUPS      16
#define MAX_TOPICS      8
#define MAX_NAME        128
#define MAX_PENDING_FNS 8
#define KAFKA_WAIT_MS   5000

typedef struct settle_group {
    char name[MAX_NAME];
    char topics[MAX_TOPICS][MAX_NAME];
    int ntopics;
    rd_kafka_t *rk; /* a consumer handle in the group that never joins it: reads commits only */
} settle_group;

typedef struct settle {
    settle_group groups[MAX_GROUPS];
    int ngroups;
    PGconn *db;
    bool have_timers, have_outbox;
    char pending_fns[MAX_PENDING_FNS][MAX_NAME]; /* schema.settle_pending(now) functions */
    int npending_fns;
} settle;

/* One check: what is still pending (empty when quiet) and the topics' end offsets, which two
 * consecutive quiet checks must agree on (a message produced in between is in flight). */
typedef struct settle_check {
    bx_buf waiting;
    long long end_offsets;
} settle_check;

static bool name_valid(const char *s, size_t n)
{
    if (n == 0 || n >= MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Adds one "group:topic,topic" entry (len bytes of spec). */
static bool group_add(settle *st, const char *spec, size_t len, const char *origin)
{
    const char *colon = memchr(spec, ':', len);
    size_t name_len = colon ? (size_t)(colon - spec) : len;
    if (!name_valid(spec, name_len)) {
        fprintf(stderr, "bxctl settle: %s: \"%.*s\" is not a consumer group name\n", origin,
                (int)len, spec);
        return false;
    }
    if (colon == NULL || colon + 1 == spec + len) {
        fprintf(stderr,
                "bxctl settle: %s: \"%.*s\": name the group's topics (GROUP:TOPIC[,TOPIC])\n",
                origin, (int)len, spec);
        return false;
    }
    if (st->ngroups == MAX_GROUPS) {
        fprintf(stderr, "bxctl settle: %s: more than %d groups\n", origin, MAX_GROUPS);
        return false;
    }
    settle_group *g = &st->groups[st->ngroups];
    memset(g, 0, sizeof(*g));
    memcpy(g->name, spec, name_len);
    const char *p = colon + 1, *end = spec + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        if (!name_valid(p, n) || g->ntopics == MAX_TOPICS) {
            fprintf(stderr, "bxctl settle: %s: group %s: bad topic \"%.*s\" (at most %d topics)\n",
                    origin, g->name, (int)n, p, MAX_TOPICS);
            return false;
        }
        memcpy(g->topics[g->ntopics++], p, n);
        p += n + (comma ? 1 : 0);
    }
    st->ngroups++;
    return true;
}

/* Entries separated by spaces or ';' (BX_SETTLE_GROUPS). */
static bool groups_parse(settle *st, const char *list, const char *origin)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t n = strcspn(p, " ;");
        if (n > 0 && !group_add(st, p, n, origin))
            return false;
        p += n;
    }
    return true;
}

static rd_kafka_t *group_handle(const char *brokers, const char *group)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr))) {
        fprintf(stderr, "bxctl settle: kafka settings: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "bxctl settle: kafka: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Tables and functions that exist in this database (a fresh one may not be migrated). */
static bool db_discover(settle *st)
{
    bx_error err = {0};
    PGresult *res = NULL;
    if (bx_pg_query(st->db,
                    "SELECT to_regclass('cases.timer') IS NOT NULL, "
                    "to_regclass('cases.outbox') IS NOT NULL",
                    0, NULL, &res, &err) != BX_OK) {
        fprintf(stderr, "bxctl settle: %s\n", err.msg);
        return false;
    }
    st->have_timers = PQgetvalue(res, 0, 0)[0] == 't';
    st->have_outbox = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    /* A service with due work of its own (bx-notify's scheduled sends) exposes
     * <schema>.settle_pending(now timestamptz) RETURNS TABLE (what text, pending bigint). */
    if (bx_pg_query(st->db,
                    "SELECT quote_ident(n.nspname) || '.settle_pending' FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE p.proname = 'settle_pending' AND p.pronargs = 1 ORDER BY 1",
                    0, NULL, &res, &err) != BX_OK) {
        fprintf(stderr, "bxctl settle: %s\n", err.msg);
        return false;
    }
    for (int i = 0; i < PQntuples(res) && st->npending_fns < MAX_PENDING_FNS; i++)
        snprintf(st->pending_fns[st->npending_fns++], MAX_NAME, "%s", PQgetvalue(res, i, 0));
    PQclear(res);
    return true;
}

/* True unless the broker says the group has no member (a consumer that is not running); an
 * unanswered question counts as members, so the line only adds a hint. */
static bool group_has_members(settle_group *g)
{
    const struct rd_kafka_group_list *list = NULL;
    if (rd_kafka_list_groups(g->rk, g->name, &list, KAFKA_WAIT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return true;
    bool members = true;
    if (list->group_cnt == 0)
        members = false;
    else if (list->group_cnt == 1 && (list->groups[0].err == RD_KAFKA_RESP_ERR_NO_ERROR ||
                                      list->groups[0].err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND))
        members = list->groups[0].member_cnt > 0;
    rd_kafka_group_list_destroy(list);
    return members;
}

static bx_status check_group(settle *st, settle_group *g, settle_check *c)
{
    bx_status s = BX_OK;
    for (int t = 0; t < g->ntopics && s == BX_OK; t++) {
        const char *topic = g->topics[t];
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(g->rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e =
            rkt ? rd_kafka_metadata(g->rk, 0, rkt, &md, KAFKA_WAIT_MS) : RD_KAFKA_RESP_ERR__FAIL;
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        if (e) {
            s = bx_buf_printf(&c->waiting, "  group %s: metadata of %s: %s\n", g->name, topic,
                              rd_kafka_err2str(e));
            break;
        }
        int nparts = 0;
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            nparts = md->topics[0].partition_cnt;
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
        for (int p = 0; p < nparts; p++)
            rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[p].id);
        rd_kafka_metadata_destroy(md);
        if (nparts == 0) { /* no such topic yet: nothing to consume */
            rd_kafka_topic_partition_list_destroy(parts);
            continue;
        }
        e = rd_kafka_committed(g->rk, parts, KAFKA_WAIT_MS);
        if (e) {
            s = bx_buf_printf(&c->waiting, "  group %s: committed offsets of %s: %s\n", g->name,
                              topic, rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_destroy(parts);
            break;
        }
        long long lag = 0;
        bx_buf detail;
        bx_buf_init(&detail, 4096);
        for (int p = 0; p < parts->cnt && s == BX_OK; p++) {
            const rd_kafka_topic_partition_t *tp = &parts->elems[p];
            int64_t lo = 0, hi = 0;
            e = rd_kafka_query_watermark_offsets(g->rk, topic, tp->partition, &lo, &hi,
                                                 KAFKA_WAIT_MS);
            if (e) {
                s = bx_buf_printf(&c->waiting, "  group %s: end offsets of %s[%d]: %s\n", g->name,
                                  topic, (int)tp->partition, rd_kafka_err2str(e));
                break;
            }
            c->end_offsets += hi;
            /* Nothing committed (or committed below what the log keeps) counts from the start. */
            int64_t from =
                tp->err == RD_KAFKA_RESP_ERR_NO_ERROR && tp->offset >= lo ? tp->offset : lo;
            if (hi > from) {
                lag += hi - from;
                s = bx_buf_printf(&detail, "%s[%d] %" PRId64 "%s", detail.len ? ", " : "",
                                  (int)tp->partition, hi - from,
                                  tp->offset < 0 ? " (nothing committed)" : "");
            }
        }
        if (s == BX_OK && lag > 0)
            s = bx_buf_printf(&c->waiting, "  group %s: lag %lld on %s: %s%s\n", g->name, lag,
                              topic, detail.data,
                              group_has_members(g) ? "" : " (no member in the group: running?)");
        bx_buf_free(&detail);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    (void)st;
    return s;
}

static bx_status check_db(settle *st, settle_check *c)
{
    char now[32];
    bxctl_now_param(now);
    const char *params[] = {now};
    bx_error err = {0};
    PGresult *res = NULL;
    bx_status s = BX_OK;
    if (st->have_timers) {
        s = bx_pg_query(st->db,
                        "SELECT count(*), coalesce(" BXCTL_ISO(
                            "min(due_at)") ", '') "
                                           "FROM cases.timer WHERE fired_at IS NULL "
                                           "AND due_at <= to_timestamp($1::bigint / 1000.0)",
                        1, params, &res, &err);
        if (s == BX_OK && strcmp(PQgetvalue(res, 0, 0), "0") != 0)
            s = bx_buf_printf(&c->waiting, "  timers: %s due and not fired (earliest due %s)\n",
                              PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        PQclear(res);
        res = NULL;
    }
    if (s == BX_OK && st->have_outbox) {
        s = bx_pg_query(st->db, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL", 0, NULL,
                        &res, &err);
        if (s == BX_OK && strcmp(PQgetvalue(res, 0, 0), "0") != 0)
            s = bx_buf_printf(&c->waiting, "  outbox: %s rows not yet relayed to Kafka\n",
                              PQgetvalue(res, 0, 0));
        PQclear(res);
        res = NULL;
    }
    for (int i = 0; i < st->npending_fns && s == BX_OK; i++) {
        char sql[MAX_NAME + 128];
        snprintf(sql, sizeof(sql),
                 "SELECT what, pending FROM %s(to_timestamp($1::bigint / 1000.0)) "
                 "WHERE pending > 0",
                 st->pending_fns[i]);
        s = bx_pg_query(st->db, sql, 1, params, &res, &err);
        for (int r = 0; s == BX_OK && r < PQntuples(res); r++)
            s = bx_buf_printf(&c->waiting, "  %s: %s pending\n", PQgetvalue(res, r, 0),
                              PQgetvalue(res, r, 1));
        PQclear(res);
        res = NULL;
    }
    if (s != BX_OK && err.msg[0]) {
        bx_status s2 = bx_buf_printf(&c->waiting, "  database: %s\n", err.msg);
        s = s2 == BX_OK ? BX_OK : s2;
        if (bx_pg_is_broken(st->db))
            PQreset(st->db);
    }
    return s;
}

static bx_status check_once(settle *st, settle_check *c)
{
    bx_buf_reset(&c->waiting);
    c->end_offsets = 0;
    bx_status s = BX_OK;
    for (int i = 0; i < st->ngroups && s == BX_OK; i++)
        s = check_group(st, &st->groups[i], c);
    IFOK(s, check_db(st, c));
    return s;
}

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static bool parse_number(const char *text, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static void usage(void)
{
    fprintf(stderr, "usage: bxctl settle [--group GROUP:TOPIC[,TOPIC]]... [--timeout SECONDS]\n"
                    "                    [--interval MS] [--verbose]\n");
}

int bxctl_settle(bxctl_ctx *ctx, int argc, char **argv)
{
    static settle st; /* large: kept off the stack; bxctl runs one command */
    memset(&st, 0, sizeof(st));
    long long timeout_s = 60, interval_ms = 200;
    bool verbose = false, groups_given = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            verbose = true;
        } else if (strcmp(a, "--group") == 0 && i + 1 < argc) {
            if (!groups_given)
                st.ngroups = 0;
            groups_given = true;
            if (!group_add(&st, argv[i + 1], strlen(argv[i + 1]), "--group"))
                return 2;
            i++;
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            if (!parse_number(argv[++i], 1, 86400, &timeout_s)) {
                fprintf(stderr,
                        "bxctl settle: --timeout: expected seconds from 1 to 86400, "
                        "got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--interval") == 0 && i + 1 < argc) {
            if (!parse_number(argv[++i], 10, 60000, &interval_ms)) {
                fprintf(stderr,
                        "bxctl settle: --interval: expected milliseconds from 10 to "
                        "60000, got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (!groups_given && !groups_parse(&st, ctx->settle_groups, "BX_SETTLE_GROUPS"))
        return 2;

    int rc = 1;
    settle_check prev = {0}, cur = {0};
    bx_buf_init(&prev.waiting, 1 << 20);
    bx_buf_init(&cur.waiting, 1 << 20);
    st.db = bxctl_db(ctx);
    if (st.db == NULL || !db_discover(&st))
        goto out;
    for (int i = 0; i < st.ngroups; i++) {
        st.groups[i].rk = group_handle(ctx->conf.kafka_brokers, st.groups[i].name);
        if (st.groups[i].rk == NULL)
            goto out;
    }
    long long start = monotonic_ms(), deadline = start + timeout_s * 1000;
    bool prev_quiet = false;
    int checks = 0;
    for (;;) {
        bx_status s = check_once(&st, &cur);
        checks++;
        if (s != BX_OK) {
            fprintf(stderr, "bxctl settle: out of memory\n");
            break;
        }
        bool quiet = cur.waiting.len == 0;
        if (quiet && prev_quiet && cur.end_offsets == prev.end_offsets) {
            printf("settled (%d checks, %.1f s)\n", checks, (monotonic_ms() - start) / 1000.0);
            rc = 0;
            break;
        }
        if (verbose && !quiet &&
            (prev.waiting.len != cur.waiting.len ||
             memcmp(prev.waiting.data, cur.waiting.data, cur.waiting.len) != 0))
            fprintf(stderr, "bxctl settle: waiting for\n%s", cur.waiting.data);
        if (monotonic_ms() >= deadline) {
            fprintf(stderr, "bxctl settle: not settled after %lld s:\n%s", timeout_s,
                    quiet ? "  the topics kept growing between checks\n" : cur.waiting.data);
            break;
        }
        prev_quiet = quiet;
        settle_check t = prev;
        prev = cur;
        cur = t;
        sleep_ms(interval_ms);
    }
out:
    bx_buf_free(&prev.waiting);
    bx_buf_free(&cur.waiting);
    for (int i = 0; i < st.ngroups; i++)
        if (st.groups[i].rk)
            rd_kafka_destroy(st.groups[i].rk);
    if (st.db)
        PQfinish(st.db);
    return rc;
}
