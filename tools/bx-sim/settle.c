/* settle.c: waits until the pipeline is quiet: every consumer group has committed the end of its
 * topics (checked in pipeline order, so what an upstream stage produced is seen downstream), no
 * timer is due at the driven clock's time, and bx-escalate's outbox is relayed. */
#include "simtool.h"

#include "bx_clock.h"
#include "bx_pg.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUPS 8
#define MAX_TOPICS 4

typedef struct group_watch {
    char name[128];
    char topics[MAX_TOPICS][96];
    int ntopics;
    rd_kafka_t *rk; /* a consumer handle with the group's id, never subscribed */
    rd_kafka_topic_partition_list_t *parts;
} group_watch;

#define MAX_PENDING 8

struct sim_settle {
    group_watch groups[MAX_GROUPS];
    int ngroups;
    PGconn *db;
    bool have_notify;
    long long end_offsets; /* the watched topics' end offsets summed by the last check */
    /* <schema>.settle_pending(now) functions of services with due work of their own, as bxctl
     * settle finds them */
    char pending[MAX_PENDING][160];
    int npending;
};

static bx_status consumer_handle(const char *brokers, const char *group, rd_kafka_t **out,
                                 bx_error *err)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr))) {
        rd_kafka_conf_destroy(conf);
        return BX_ERR(err, BX_EINVAL, "kafka: %s", errstr);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return BX_ERR(err, BX_EIO, "kafka: %s", errstr);
    }
    *out = rk;
    return BX_OK;
}

/* Every partition of the topics, into a new list (caller destroys). */
static bx_status partitions_of(rd_kafka_t *rk, char topics[][96], int ntopics,
                               rd_kafka_topic_partition_list_t **out, bx_error *err)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    for (int t = 0; t < ntopics; t++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topics[t], NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
            if (md)
                rd_kafka_metadata_destroy(md);
            rd_kafka_topic_partition_list_destroy(parts);
            return BX_ERR(err, BX_EIO, "kafka: no metadata for topic %s (bxctl topics create)",
                          topics[t]);
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(parts, topics[t], md->topics[0].partitions[p].id);
        rd_kafka_metadata_destroy(md);
    }
    *out = parts;
    return BX_OK;
}

static bx_status split_topics(const char *spec, char topics[][96], int *n, bx_error *err)
{
    *n = 0;
    const char *p = spec;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= 96 || *n >= MAX_TOPICS)
            return BX_ERR(err, BX_EINVAL, "topics: bad list \"%s\"", spec);
        memcpy(topics[*n], p, len);
        topics[(*n)++][len] = '\0';
        p += len;
        if (*p)
            p++;
    }
    return *n ? BX_OK : BX_ERR(err, BX_EINVAL, "topics: empty list");
}

bx_status sim_settle_new(const char *brokers, const char *const *groups, PGconn *db,
                         sim_settle **out, bx_error *err)
{
    sim_settle *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BX_ERR(err, BX_ENOMEM, "settle: out of memory");
    s->db = db;
    bx_status st = BX_OK;
    for (int i = 0; groups[i] && st == BX_OK; i++) {
        if (s->ngroups >= MAX_GROUPS) {
            st = BX_ERR(err, BX_EINVAL, "settle: more than %d groups", MAX_GROUPS);
            break;
        }
        group_watch *g = &s->groups[s->ngroups++];
        const char *eq = strchr(groups[i], ':');
        if (eq == NULL || eq == groups[i] || (size_t)(eq - groups[i]) >= sizeof(g->name)) {
            st = BX_ERR(err, BX_EINVAL, "settle: expected GROUP:TOPIC[,TOPIC], got \"%s\"",
                        groups[i]);
            break;
        }
        memcpy(g->name, groups[i], (size_t)(eq - groups[i]));
        g->name[eq - groups[i]] = '\0';
        IFOK(st, split_topics(eq + 1, g->topics, &g->ntopics, err));
        IFOK(st, consumer_handle(brokers, g->name, &g->rk, err));
        IFOK(st, partitions_of(g->rk, g->topics, g->ntopics, &g->parts, err));
    }
    PGresult *res = NULL;
    IFOK(st, bx_pg_query(db,
                         "SELECT quote_ident(n.nspname) || '.settle_pending' FROM pg_proc p JOIN "
                         "pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = "
                         "'settle_pending' AND p.pronargs = 1 ORDER BY 1",
                         0, NULL, &res, err));
    for (int i = 0; st == BX_OK && i < PQntuples(res) && s->npending < MAX_PENDING; i++)
        snprintf(s->pending[s->npending++], sizeof(s->pending[0]), "%s", PQgetvalue(res, i, 0));
    PQclear(res);
    res = NULL;
    IFOK(st, bx_pg_query(db, "SELECT to_regclass('notify.notification') IS NOT NULL", 0, NULL, &res,
                         err));
    if (st == BX_OK)
        s->have_notify = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (st != BX_OK) {
        sim_settle_free(s);
        return st;
    }
    *out = s;
    return BX_OK;
}

void sim_settle_free(sim_settle *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->ngroups; i++) {
        if (s->groups[i].parts)
            rd_kafka_topic_partition_list_destroy(s->groups[i].parts);
        if (s->groups[i].rk)
            rd_kafka_destroy(s->groups[i].rk);
    }
    free(s);
}

/* The group's lag over every partition of its topics; -1 when unknown. */
static long long group_lag(sim_settle *s, group_watch *g)
{
    rd_kafka_resp_err_t e = rd_kafka_committed(g->rk, g->parts, 5000);
    if (e)
        return -1;
    long long lag = 0;
    for (int i = 0; i < g->parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &g->parts->elems[i];
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(g->rk, p->topic, p->partition, &lo, &hi, 5000))
            return -1;
        int64_t at = p->offset >= 0 ? p->offset : lo;
        if (hi > at)
            lag += hi - at;
        s->end_offsets += hi;
    }
    return lag;
}

static long long count_of(PGconn *db, const char *sql, const char *param)
{
    PGresult *res = NULL;
    const char *params[1] = {param};
    if (bx_pg_query(db, sql, param ? 1 : 0, params, &res, NULL) != BX_OK)
        return -1;
    long long n = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int sim_settle_check(sim_settle *s, const char **what, long long *left)
{
    char now[32];
    *what = "";
    *left = 0;
    s->end_offsets = 0;
    for (int i = 0; i < s->ngroups; i++)
        if ((*left = group_lag(s, &s->groups[i])) != 0) {
            *what = s->groups[i].name;
            return i;
        }
    snprintf(now, sizeof(now), "%lld", (long long)bx_clock_now());
    if ((*left = count_of(s->db,
                          "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND due_at <= "
                          "to_timestamp($1::bigint / 1000.0)",
                          now)) != 0) {
        *what = "due timers";
        return s->ngroups;
    }
    if ((*left = count_of(s->db, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL",
                          NULL)) != 0) {
        *what = "bx-escalate's outbox";
        return s->ngroups + 1;
    }
    if (s->have_notify &&
        (*left = count_of(s->db,
                          "SELECT count(*) FROM notify.notification WHERE state IN ('queued', "
                          "'sending', 'unknown') AND due_at <= to_timestamp($1::bigint / 1000.0)",
                          now)) != 0) {
        *what = "bx-notify's due sends";
        return s->ngroups + 2;
    }
    for (int i = 0; i < s->npending; i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT coalesce(sum(pending), 0) FROM %s(to_timestamp($1::bigint / 1000.0))",
                 s->pending[i]);
        if ((*left = count_of(s->db, sql, now)) != 0) {
            *what = s->pending[i];
            return s->ngroups + 3;
        }
    }
    return -1;
}

bx_status sim_settle_wait(sim_settle *s, int timeout_ms, bx_error *err)
{
    double deadline = now_s() + timeout_ms / 1000.0;
    const char *what = "";
    long long left = 0;
    /* Quiet twice in a row with the same end offsets, as bxctl settle: a message produced
     * between the group checks and the database checks of one pass (a timer fired and its
     * request relayed) shows up as moved ends. */
    long long quiet_ends = -1;
    do {
        if (sim_settle_check(s, &what, &left) < 0) {
            if (quiet_ends == s->end_offsets)
                return BX_OK;
            quiet_ends = s->end_offsets;
            usleep(5 * 1000);
            continue;
        }
        quiet_ends = -1;
        usleep(20 * 1000);
    } while (now_s() < deadline);
    return BX_ERR(err, BX_ETIMEOUT, "settle: %s not done after %d ms (%lld left)", what, timeout_ms,
                  left);
}

bx_status sim_group_at_end(const char *brokers, const char *group, const char *topics,
                           bx_error *err)
{
    char names[MAX_TOPICS][96];
    int n = 0;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    bx_status s = split_topics(topics, names, &n, err);
    IFOK(s, consumer_handle(brokers, group, &rk, err));
    IFOK(s, partitions_of(rk, names, n, &parts, err));
    for (int i = 0; s == BX_OK && i < parts->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 10000);
        if (e)
            s = BX_ERR(err, BX_EIO, "kafka: %s [%d]: %s", p->topic, (int)p->partition,
                       rd_kafka_err2str(e));
        p->offset = hi;
    }
    if (s == BX_OK) {
        rd_kafka_resp_err_t e = rd_kafka_commit(rk, parts, 0);
        if (e)
            s = BX_ERR(err, BX_EIO, "kafka: committing %s's offsets: %s", group,
                       rd_kafka_err2str(e));
    }
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (rk)
        rd_kafka_destroy(rk);
    return s;
}

bx_status sim_topic_mark(const char *brokers, const char *topic, const char *path, bx_error *err)
{
    char names[1][96];
    snprintf(names[0], sizeof(names[0]), "%s", topic);
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    bx_status s = consumer_handle(brokers, "bx-sim-mark", &rk, err);
    IFOK(s, partitions_of(rk, names, 1, &parts, err));
    FILE *f = s == BX_OK ? fopen(path, "w") : NULL;
    if (s == BX_OK && f == NULL)
        s = BX_ERR(err, BX_EIO, "cannot write %s", path);
    for (int i = 0; s == BX_OK && i < parts->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 10000))
            s = BX_ERR(err, BX_EIO, "kafka: no offsets of %s [%d]", p->topic, (int)p->partition);
        else
            fprintf(f, "%d %lld\n", (int)p->partition, (long long)hi);
    }
    if (f && fclose(f) != 0 && s == BX_OK)
        s = BX_ERR(err, BX_EIO, "cannot write %s", path);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (rk)
        rd_kafka_destroy(rk);
    return s;
}
