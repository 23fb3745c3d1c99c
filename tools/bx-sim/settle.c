/* settle.c: bx-sim's settling through common/bx_settle (the same check as bxctl settle), and the
 * offsets it sets up a run with: a group started at the topics' ends, a topic's end written down.
 */
#include "simtool.h"

#include "bx_settle.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KAFKA_WAIT_MS 10000
/* Between checks: right after a quiet one (only to confirm it) and after a busy one. */
#define QUIET_INTERVAL_MS 5
#define BUSY_INTERVAL_MS  20

bx_status sim_settle_new(const char *brokers, const char *const *groups, PGconn *db,
                         sim_settle **out, bx_error *err)
{
    bx_settle_spec *specs = calloc(BX_SETTLE_MAX_GROUPS, sizeof(*specs));
    bx_status st = specs ? BX_OK : BX_ERR(err, BX_ENOMEM, "settle: out of memory");
    bx_error inner = {0};
    int n = 0;
    for (size_t i = 0; st == BX_OK && groups[i]; i++)
        if (bx_settle_spec_add(specs, &n, groups[i], strlen(groups[i]), &inner) != BX_OK)
            st = BX_ERR(err, BX_EINVAL, "settle: %s", inner.msg);
    if (st == BX_OK && bx_settle_new(brokers, specs, n, db, out, &inner) != BX_OK)
        st = BX_ERR(err, inner.status, "settle: %s", inner.msg);
    free(specs);
    return st;
}

void sim_settle_free(sim_settle *s)
{
    bx_settle_free(s);
}

int sim_settle_check(sim_settle *s, const char **what, long long *left)
{
    bx_settle_result r;
    bx_error err = {0};
    if (bx_settle_check(s, &r, &err) != BX_OK) {
        *what = "settle: out of memory";
        *left = -1;
        return 0;
    }
    *what = r.busy_name;
    *left = r.busy_left;
    return r.busy;
}

bx_status sim_settle_wait(sim_settle *s, int timeout_ms, bx_error *err)
{
    const bx_settle_wait_opts opts = {.timeout_ms = timeout_ms,
                                      .busy_interval_ms = BUSY_INTERVAL_MS,
                                      .quiet_interval_ms = QUIET_INTERVAL_MS};
    bx_settle_result last;
    int checks = 0;
    bx_error inner = {0};
    bx_status st = bx_settle_wait(s, &opts, &last, &checks, &inner);
    return st == BX_OK ? BX_OK : BX_ERR(err, st, "settle: %s", inner.msg);
}

/* Every partition of the topics of spec ("GROUP:TOPIC[,TOPIC]") at its end offset, into a new
 * list (caller destroys), with a handle in the group (caller destroys). */
static bx_status topic_ends(const char *brokers, const char *spec_text, rd_kafka_t **rk,
                            rd_kafka_topic_partition_list_t **out, bx_error *err)
{
    bx_settle_spec spec;
    *rk = NULL;
    *out = NULL;
    bx_status s = bx_settle_spec_parse(spec_text, strlen(spec_text), &spec, err);
    IFOK(s, bx_settle_group_handle(brokers, spec.group, rk, err));
    if (s == BX_OK)
        *out = rd_kafka_topic_partition_list_new(8);
    for (int t = 0; s == BX_OK && t < spec.ntopics; t++)
        s = bx_settle_partitions_add(*rk, spec.topics[t], KAFKA_WAIT_MS, *out, err);
    for (int i = 0; s == BX_OK && i < (*out)->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_t *p = &(*out)->elems[i];
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(*rk, p->topic, p->partition, &lo, &hi, KAFKA_WAIT_MS);
        if (e)
            s = BX_ERR(err, BX_EIO, "kafka: %s [%d]: %s", p->topic, (int)p->partition,
                       rd_kafka_err2str(e));
        p->offset = hi;
    }
    return s;
}

bx_status sim_group_at_end(const char *brokers, const char *group, const char *topics,
                           bx_error *err)
{
    char spec[2 * BX_SETTLE_NAME_MAX + BX_SETTLE_MAX_TOPICS * BX_SETTLE_NAME_MAX];
    snprintf(spec, sizeof(spec), "%s:%s", group, topics);
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    bx_status s = topic_ends(brokers, spec, &rk, &parts, err);
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
    char spec[2 * BX_SETTLE_NAME_MAX];
    snprintf(spec, sizeof(spec), "bx-sim-mark:%s", topic);
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    bx_status s = topic_ends(brokers, spec, &rk, &parts, err);
    FILE *f = s == BX_OK ? fopen(path, "w") : NULL;
    if (s == BX_OK && f == NULL)
        s = BX_ERR(err, BX_EIO, "cannot write %s", path);
    for (int i = 0; s == BX_OK && i < parts->cnt; i++)
        fprintf(f, "%d %lld\n", (int)parts->elems[i].partition, (long long)parts->elems[i].offset);
    if (f && fclose(f) != 0 && s == BX_OK)
        s = BX_ERR(err, BX_EIO, "cannot write %s", path);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (rk)
        rd_kafka_destroy(rk);
    return s;
}
