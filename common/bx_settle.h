/* bx_settle: whether the pipeline has settled, decided once for `bxctl settle` and bx-sim (README,
 * "Settling"): every consumer group has committed the end of every partition of its topics, no
 * timer is due at the clock's now, the outbox is relayed and every <schema>.settle_pending(now)
 * function reports nothing. */
#ifndef BX_SETTLE_H
#define BX_SETTLE_H

#include "bx_status.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BX_SETTLE_MAX_GROUPS 16
#define BX_SETTLE_MAX_TOPICS 8   /* a group's topics */
#define BX_SETTLE_NAME_MAX   128 /* a group or topic name is shorter than this */
#define BX_SETTLE_QUIET      (-1)

/* One "GROUP:TOPIC[,TOPIC]": a consumer group and the topics it consumes. */
typedef struct bx_settle_spec {
    char group[BX_SETTLE_NAME_MAX];
    char topics[BX_SETTLE_MAX_TOPICS][BX_SETTLE_NAME_MAX];
    int ntopics;
} bx_settle_spec;

/* Parses the len bytes of text as "GROUP:TOPIC[,TOPIC]" into *out. Names are 1 to
 * BX_SETTLE_NAME_MAX - 1 bytes of [A-Za-z0-9._-]; at most BX_SETTLE_MAX_TOPICS topics. BX_EINVAL
 * with the text quoted ("... is not a consumer group name", "... name the group's topics
 * (GROUP:TOPIC[,TOPIC])", "... bad topic ...") for anything else. */
bx_status bx_settle_spec_parse(const char *text, size_t len, bx_settle_spec *out,
                               bx_error *err) BX_MUSTCHECK;
/* Parses text (len bytes) as bx_settle_spec_parse does into specs[*nspecs] and counts it in
 * *nspecs; BX_EINVAL "more than BX_SETTLE_MAX_GROUPS groups" when specs is full. */
bx_status bx_settle_spec_add(bx_settle_spec specs[BX_SETTLE_MAX_GROUPS], int *nspecs,
                             const char *text, size_t len, bx_error *err) BX_MUSTCHECK;

/* How many messages of one partition a group has still to consume: from its committed offset, or
 * from the log start when nothing is committed (committed_ok false, or a negative offset) or what
 * is committed lies below the log start (those messages are gone: the consumer resumes at lo). */
int64_t bx_settle_behind(bool committed_ok, int64_t committed, int64_t lo, int64_t hi);

/* A consumer handle with group's id that never joins the group: for reading (and, with
 * rd_kafka_commit, writing) its committed offsets and the topics' watermarks. On success *out is
 * the handle (caller destroys with rd_kafka_destroy). */
bx_status bx_settle_group_handle(const char *brokers, const char *group, rd_kafka_t **out,
                                 bx_error *err) BX_MUSTCHECK;
/* Appends every partition of topic to parts (offsets unset), asking the broker for up to
 * timeout_ms. BX_ENOTFOUND when the broker does not know the topic, BX_EIO when it does not
 * answer; nothing is appended then. rk and parts are borrowed. */
bx_status bx_settle_partitions_add(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                   rd_kafka_topic_partition_list_t *parts,
                                   bx_error *err) BX_MUSTCHECK;

typedef struct bx_settle bx_settle;

/* Watches specs (nspecs of them, 1 to BX_SETTLE_MAX_GROUPS, parsed by bx_settle_spec_parse) in
 * pipeline order (bx-score first: what an upstream group produced is then in a downstream topic
 * before that topic is checked). Finds which of bx-escalate's tables (cases.timer, cases.outbox)
 * and which settle_pending(now) functions the database has: a database not migrated has no timers
 * to wait for. specs is copied; db is borrowed until bx_settle_free, and reset (PQreset) by a check
 * that finds it broken. On success *out is the settle (caller frees with bx_settle_free). */
bx_status bx_settle_new(const char *brokers, const bx_settle_spec *specs, int nspecs, PGconn *db,
                        bx_settle **out, bx_error *err) BX_MUSTCHECK;
/* NULL does nothing. */
void bx_settle_free(bx_settle *st);

/* What one check found. */
typedef struct bx_settle_result {
    bool quiet;
    /* What is still pending, a line each ("  group bx-score: lag 3 on bx.attendance.v1: [0] 2,
     * [1] 1 (nothing committed)\n", "  timers: 2 due and not fired (earliest due ...)\n",
     * "  outbox: 4 rows not yet relayed to Kafka\n", "  bx-notify: notifications due: 5
     * pending\n"), "" when quiet. An answer Kafka or PostgreSQL did not give is pending too.
     * Borrowed from the settle until its next check. */
    const char *waiting;
    /* The end offsets of every partition the groups watch, summed: two quiet checks must see the
     * same, or a message was produced in between. */
    long long end_offsets;
    /* BX_SETTLE_QUIET, or the position in pipeline order of the first thing still busy: i < ngroups
     * the i-th group, ngroups the due timers, ngroups + 1 the outbox, ngroups + 2 + k the k-th
     * settle_pending function (bx-notify's due work). */
    int busy;
    const char *busy_name; /* the group, "due timers", ...; borrowed like waiting */
    long long busy_left;   /* how much of it is left; -1 when unknown */
} bx_settle_result;

/* Checks everything once, at the clock's now (bx_clock_now), into *out. Only running out of memory
 * fails (BX_ENOMEM); a broker or database that does not answer is pending. */
bx_status bx_settle_check(bx_settle *st, bx_settle_result *out, bx_error *err) BX_MUSTCHECK;

typedef void(bx_settle_waiting_fn)(void *arg, const char *waiting);

typedef struct bx_settle_wait_opts {
    int timeout_ms;
    int busy_interval_ms;  /* the pause after a check that found something pending */
    int quiet_interval_ms; /* the pause after a quiet check, before the one that confirms it */
    /* NULL, or called with the text of every check that is not quiet and whose text differs from
     * the previous check's (what it waits for, as it changes). */
    bx_settle_waiting_fn *on_waiting;
    void *on_waiting_arg;
} bx_settle_wait_opts;

/* Checks until two consecutive checks are quiet with the same end offsets (BX_OK), or until
 * opts->timeout_ms passed (BX_ETIMEOUT, err naming what did not settle). *last is the last check
 * (when not quiet, what still waits; when quiet, the topics kept growing between checks) and
 * *checks how many were made. BX_ENOMEM as bx_settle_check. */
bx_status bx_settle_wait(bx_settle *st, const bx_settle_wait_opts *opts, bx_settle_result *last,
                         int *checks, bx_error *err) BX_MUSTCHECK;

#endif
