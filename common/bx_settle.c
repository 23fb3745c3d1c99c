/* bx_settle: one decision of "the pipeline has settled", for bxctl settle and bx-sim alike. */
#include "bx_settle.h"
#include "bx_kafka.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_pg.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KAFKA_WAIT_MS   5000
#define MAX_PENDING_FNS 16
/* quote_ident of a schema name (63 bytes, every one a doubled quote at worst) + ".settle_pending"
 */
#define PENDING_FN_MAX 160
#define WAITING_MAX    (1u << 20)
#define DETAIL_MAX     (64u << 10)
/* A lagging group's members are asked again at most this often (each answer is two requests to
 * every broker; a check while the pipeline runs asked them every time). */
#define MEMBERS_EVERY_MS 1000

typedef struct watched_group {
    bx_settle_spec spec;
    rd_kafka_t *rk; /* a consumer handle in the group that never joins it: reads commits only */
    /* whether the broker last said the group has members, and when (0: never asked) */
    bool members;
    long long members_at_ms;
} watched_group;

struct bx_settle {
    watched_group groups[BX_SETTLE_MAX_GROUPS];
    int ngroups;
    PGconn *db;
    bool have_timers, have_outbox;
    char pending_fns[MAX_PENDING_FNS][PENDING_FN_MAX]; /* <schema>.settle_pending(now) */
    int npending_fns;
    /* The last two checks' texts: waiting[cur] the last one's, the other the one before it. */
    bx_buf waiting[2];
    int cur;
    char busy_name[PENDING_FN_MAX];
};

/* ---- specs ---- */

static bool name_valid(const char *s, size_t n)
{
    if (n == 0 || n >= BX_SETTLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bx_status bx_settle_spec_parse(const char *text, size_t len, bx_settle_spec *out, bx_error *err)
{
    assert(text != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    const char *colon = memchr(text, ':', len);
    size_t name_len = colon ? (size_t)(colon - text) : len;
    int shown = len > 200 ? 200 : (int)len;
    if (!name_valid(text, name_len))
        return BX_ERR(err, BX_EINVAL, "\"%.*s\" is not a consumer group name", shown, text);
    if (colon == NULL || colon + 1 == text + len)
        return BX_ERR(err, BX_EINVAL, "\"%.*s\": name the group's topics (GROUP:TOPIC[,TOPIC])",
                      shown, text);
    memcpy(out->group, text, name_len);
    const char *p = colon + 1, *end = text + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        if (!name_valid(p, n) || out->ntopics == BX_SETTLE_MAX_TOPICS)
            return BX_ERR(err, BX_EINVAL, "group %s: bad topic \"%.*s\" (at most %d topics)",
                          out->group, n > 200 ? 200 : (int)n, p, BX_SETTLE_MAX_TOPICS);
        memcpy(out->topics[out->ntopics++], p, n);
        p += n + (comma ? 1 : 0);
    }
    return BX_OK;
}

bx_status bx_settle_spec_add(bx_settle_spec specs[BX_SETTLE_MAX_GROUPS], int *nspecs,
                             const char *text, size_t len, bx_error *err)
{
    if (*nspecs >= BX_SETTLE_MAX_GROUPS)
        return BX_ERR(err, BX_EINVAL, "more than %d groups", BX_SETTLE_MAX_GROUPS);
    bx_status s = bx_settle_spec_parse(text, len, &specs[*nspecs], err);
    if (s == BX_OK)
        (*nspecs)++;
    return s;
}

int64_t bx_settle_behind(bool committed_ok, int64_t committed, int64_t lo, int64_t hi)
{
    int64_t from = committed_ok && committed >= 0 && committed >= lo ? committed : lo;
    return hi > from ? hi - from : 0;
}

/* ---- Kafka ---- */

bx_status bx_settle_group_handle(const char *brokers, const char *group, rd_kafka_t **out,
                                 bx_error *err)
{
    const char *const settings[] = {"group.id", group, "enable.auto.commit", "false", "log_level",
                                    "3",        NULL};
    return bx_kafka_client_new(RD_KAFKA_CONSUMER, brokers, settings, out, err);
}

bx_status bx_settle_partitions_add(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                   rd_kafka_topic_partition_list_t *parts, bx_error *err)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rkt == NULL)
        return BX_ERR(err, BX_EIO, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e)
        return BX_ERR(err, BX_EIO, "metadata of %s: %s", topic, rd_kafka_err2str(e));
    bx_status s = BX_OK;
    e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        s = BX_ERR(err, BX_ENOTFOUND, "topic %s does not exist (bxctl topics create)", topic);
    else if (e)
        s = BX_ERR(err, BX_EIO, "metadata of %s: %s", topic, rd_kafka_err2str(e));
    else if (md->topics[0].partition_cnt == 0)
        s = BX_ERR(err, BX_EIO, "metadata of %s: no partitions", topic);
    for (int p = 0; s == BX_OK && p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[p].id);
    rd_kafka_metadata_destroy(md);
    return s;
}

/* True unless the broker says the group has no member (a consumer that is not running); an
 * unanswered question counts as members, so the line only adds a hint. */
static bool ask_members(const watched_group *g)
{
    const struct rd_kafka_group_list *list = NULL;
    if (rd_kafka_list_groups(g->rk, g->spec.group, &list, KAFKA_WAIT_MS) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
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

/* ask_members, or its answer of less than MEMBERS_EVERY_MS ago. */
static bool group_has_members(watched_group *g)
{
    long long now = bx_monotonic_ms();
    if (g->members_at_ms == 0 || now - g->members_at_ms >= MEMBERS_EVERY_MS) {
        g->members = ask_members(g);
        g->members_at_ms = now;
    }
    return g->members;
}

/* ---- one check ---- */

/* The first thing found busy, in pipeline order, names the check's result. */
static void mark_busy(bx_settle *st, bx_settle_result *r, int position, const char *name,
                      long long left)
{
    r->quiet = false;
    if (r->busy != BX_SETTLE_QUIET)
        return;
    r->busy = position;
    snprintf(st->busy_name, sizeof(st->busy_name), "%s", name);
    r->busy_name = st->busy_name;
    r->busy_left = left;
}

/* Each partition's first and end offsets: lo[i] and hi[i] for parts->elems[i], or errs[i]. Two
 * ListOffsets requests for all the partitions (one per leader each), where asking partition by
 * partition took two round trips each (24 for the pipeline's three topics of 4 partitions). */
static void watermarks(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *parts, int64_t *lo,
                       int64_t *hi, rd_kafka_resp_err_t *errs)
{
    for (int i = 0; i < parts->cnt; i++)
        errs[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int end = 0; end < 2; end++) {
        rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_copy(parts);
        for (int i = 0; i < q->cnt; i++) {
            q->elems[i].offset = end ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
            q->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        /* the offsets asked for are the "latest" and "earliest" timestamps of ListOffsets */
        rd_kafka_resp_err_t all = rd_kafka_offsets_for_times(rk, q, KAFKA_WAIT_MS);
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *a = rd_kafka_topic_partition_list_find(
                q, parts->elems[i].topic, parts->elems[i].partition);
            rd_kafka_resp_err_t e = all;
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                e = a == NULL ? RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION : a->err;
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR && a->offset < 0)
                e = RD_KAFKA_RESP_ERR__BAD_MSG; /* no offset in the answer */
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                (end ? hi : lo)[i] = a->offset;
            else if (errs[i] == RD_KAFKA_RESP_ERR_NO_ERROR)
                errs[i] = e;
        }
        rd_kafka_topic_partition_list_destroy(q);
    }
}

/* The lag of one topic's partitions parts->elems[from..to) (committed offsets filled in, their
 * first and end offsets in lo, hi, errs). */
static bx_status topic_lag(watched_group *g, const rd_kafka_topic_partition_list_t *parts, int from,
                           int to, const int64_t *lo, const int64_t *hi,
                           const rd_kafka_resp_err_t *errs, bx_settle_result *r, bx_buf *w,
                           bx_buf *detail, int *members, long long *lag, bool *unknown)
{
    const char *topic = parts->elems[from].topic;
    long long topic_lag = 0;
    bx_status s = BX_OK;
    bx_buf_reset(detail);
    for (int p = from; p < to && s == BX_OK; p++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[p];
        if (errs[p]) {
            *unknown = true;
            s = bx_buf_printf(w, "  group %s: end offsets of %s[%d]: %s\n", g->spec.group, topic,
                              (int)tp->partition, rd_kafka_err2str(errs[p]));
            continue;
        }
        r->end_offsets += hi[p];
        int64_t behind =
            bx_settle_behind(tp->err == RD_KAFKA_RESP_ERR_NO_ERROR, tp->offset, lo[p], hi[p]);
        if (behind > 0) {
            topic_lag += behind;
            s = bx_buf_printf(detail, "%s[%d] %" PRId64 "%s", detail->len ? ", " : "",
                              (int)tp->partition, behind,
                              tp->offset < 0 ? " (nothing committed)" : "");
        }
    }
    if (s == BX_OK && topic_lag > 0) {
        if (*members < 0)
            *members = group_has_members(g);
        s = bx_buf_printf(w, "  group %s: lag %lld on %s: %s%s\n", g->spec.group, topic_lag, topic,
                          detail->data, *members ? "" : " (no member in the group: running?)");
    }
    *lag += topic_lag;
    return s;
}

static bx_status check_group(bx_settle *st, int position, bx_settle_result *r, bx_buf *w)
{
    watched_group *g = &st->groups[position];
    bx_status s = BX_OK;
    bool unknown = false;
    long long lag = 0;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    for (int t = 0; t < g->spec.ntopics && s == BX_OK; t++) {
        bx_error e = {0};
        if (bx_settle_partitions_add(g->rk, g->spec.topics[t], KAFKA_WAIT_MS, parts, &e) != BX_OK) {
            unknown = true;
            s = bx_buf_printf(w, "  group %s: %s\n", g->spec.group, e.msg);
        }
    }
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (s == BX_OK && parts->cnt > 0 &&
        (e = rd_kafka_committed(g->rk, parts, KAFKA_WAIT_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        unknown = true;
        s = bx_buf_printf(w, "  group %s: committed offsets: %s\n", g->spec.group,
                          rd_kafka_err2str(e));
    } else if (s == BX_OK && parts->cnt > 0) {
        int64_t *lo = calloc((size_t)parts->cnt, sizeof(*lo));
        int64_t *hi = calloc((size_t)parts->cnt, sizeof(*hi));
        rd_kafka_resp_err_t *errs = calloc((size_t)parts->cnt, sizeof(*errs));
        if (lo == NULL || hi == NULL || errs == NULL)
            s = BX_ENOMEM;
        else
            watermarks(g->rk, parts, lo, hi, errs);
        bx_buf detail;
        bx_buf_init(&detail, DETAIL_MAX);
        int members = -1; /* asked once, when a topic lags */
        /* Each topic's partitions are next to each other, in the spec's order. */
        for (int from = 0, to = 0; from < parts->cnt && s == BX_OK; from = to) {
            for (to = from + 1;
                 to < parts->cnt && strcmp(parts->elems[to].topic, parts->elems[from].topic) == 0;
                 to++)
                ;
            s = topic_lag(g, parts, from, to, lo, hi, errs, r, w, &detail, &members, &lag,
                          &unknown);
        }
        bx_buf_free(&detail);
        free(lo);
        free(hi);
        free(errs);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    if (s == BX_OK && (unknown || lag > 0))
        mark_busy(st, r, position, g->spec.group, unknown ? -1 : lag);
    return s;
}

/* Runs one of the check's queries, with the clock's now as $1 when now is not NULL. */
static bx_status db_rows(bx_settle *st, const char *sql, const char *now, PGresult **res,
                         bx_error *err)
{
    const char *params[] = {now};
    return bx_pg_query(st->db, sql, now ? 1 : 0, params, res, err);
}

static bx_status check_db(bx_settle *st, bx_settle_result *r, bx_buf *w)
{
    char now[32];
    snprintf(now, sizeof(now), "%" PRId64, (int64_t)bx_clock_now());
    bx_error err = {0};
    PGresult *res = NULL;
    bx_status s = BX_OK, db = BX_OK; /* s: the text's status; db: the database's */
    int position = st->ngroups;
    if (st->have_timers) {
        db = db_rows(st,
                     "SELECT count(*), coalesce(to_char(min(due_at) AT TIME ZONE 'Asia/Shanghai', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"'), '') FROM cases.timer "
                     "WHERE fired_at IS NULL AND due_at <= to_timestamp($1::bigint / 1000.0)",
                     now, &res, &err);
        if (db == BX_OK && strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
            mark_busy(st, r, position, "due timers", strtoll(PQgetvalue(res, 0, 0), NULL, 10));
            s = bx_buf_printf(w, "  timers: %s due and not fired (earliest due %s)\n",
                              PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        }
        PQclear(res);
        res = NULL;
    }
    if (s == BX_OK && db == BX_OK && st->have_outbox) {
        position = st->ngroups + 1;
        db = db_rows(st, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL", NULL, &res,
                     &err);
        if (db == BX_OK && strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
            mark_busy(st, r, position, "bx-escalate's outbox",
                      strtoll(PQgetvalue(res, 0, 0), NULL, 10));
            s = bx_buf_printf(w, "  outbox: %s rows not yet relayed to Kafka\n",
                              PQgetvalue(res, 0, 0));
        }
        PQclear(res);
        res = NULL;
    }
    for (int i = 0; i < st->npending_fns && s == BX_OK && db == BX_OK; i++) {
        position = st->ngroups + 2 + i;
        char sql[PENDING_FN_MAX + 128];
        snprintf(sql, sizeof(sql),
                 "SELECT what, pending FROM %s(to_timestamp($1::bigint / 1000.0)) "
                 "WHERE pending > 0",
                 st->pending_fns[i]);
        db = db_rows(st, sql, now, &res, &err);
        long long pending = 0;
        for (int row = 0; db == BX_OK && s == BX_OK && row < PQntuples(res); row++) {
            pending += strtoll(PQgetvalue(res, row, 1), NULL, 10);
            s = bx_buf_printf(w, "  %s: %s pending\n", PQgetvalue(res, row, 0),
                              PQgetvalue(res, row, 1));
        }
        if (pending > 0)
            mark_busy(st, r, position, st->pending_fns[i], pending);
        PQclear(res);
        res = NULL;
    }
    if (s == BX_OK && db != BX_OK) {
        mark_busy(st, r, position, "database", -1);
        s = bx_buf_printf(w, "  database: %s\n", err.msg);
        if (bx_pg_is_broken(st->db))
            PQreset(st->db);
    }
    return s;
}

bx_status bx_settle_check(bx_settle *st, bx_settle_result *out, bx_error *err)
{
    assert(st != NULL && out != NULL);
    st->cur ^= 1;
    bx_buf *w = &st->waiting[st->cur];
    bx_buf_reset(w);
    *out = (bx_settle_result){
        .quiet = true, .waiting = "", .busy = BX_SETTLE_QUIET, .busy_name = "", .busy_left = 0};
    bx_status s = BX_OK;
    for (int i = 0; i < st->ngroups && s == BX_OK; i++)
        s = check_group(st, i, out, w);
    IFOK(s, check_db(st, out, w));
    if (s != BX_OK)
        return BX_ERR(err, s, "settle: out of memory describing what is pending");
    out->waiting = w->len ? w->data : "";
    return BX_OK;
}

/* ---- waiting ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* The waiting text on one line ("a; b"), for an error message. */
static void one_line(const char *text, char *out, size_t size)
{
    size_t o = 0;
    for (const char *p = text; *p && o + 3 < size; p++) {
        if (*p == '\n') {
            if (p[1] != '\0') {
                out[o++] = ';';
                out[o++] = ' ';
            }
            while (p[1] == ' ')
                p++;
        } else if (!(o == 0 && *p == ' ')) {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

bx_status bx_settle_wait(bx_settle *st, const bx_settle_wait_opts *opts, bx_settle_result *last,
                         int *checks, bx_error *err)
{
    assert(st != NULL && opts != NULL && last != NULL && checks != NULL);
    long long deadline = bx_monotonic_ms() + opts->timeout_ms;
    bool prev_quiet = false;
    long long prev_ends = 0;
    *checks = 0;
    for (;;) {
        bx_status s = bx_settle_check(st, last, err);
        if (s != BX_OK)
            return s;
        ++*checks;
        if (last->quiet && prev_quiet && last->end_offsets == prev_ends)
            return BX_OK;
        const bx_buf *prev = &st->waiting[st->cur ^ 1];
        if (opts->on_waiting && !last->quiet &&
            (*checks == 1 || prev->len == 0 || strcmp(prev->data, last->waiting) != 0))
            opts->on_waiting(opts->on_waiting_arg, last->waiting);
        if (bx_monotonic_ms() >= deadline) {
            char line[400];
            one_line(last->quiet ? "the topics kept growing between checks" : last->waiting, line,
                     sizeof(line));
            return BX_ERR(err, BX_ETIMEOUT, "not settled after %d ms: %s", opts->timeout_ms, line);
        }
        prev_quiet = last->quiet;
        prev_ends = last->end_offsets;
        sleep_ms(last->quiet ? opts->quiet_interval_ms : opts->busy_interval_ms);
    }
}

/* ---- setup ---- */

/* Tables and functions that exist in this database (a fresh one may not be migrated). */
static bx_status discover(bx_settle *st, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(st->db,
                              "SELECT to_regclass('cases.timer') IS NOT NULL, "
                              "to_regclass('cases.outbox') IS NOT NULL",
                              0, NULL, &res, err);
    if (s != BX_OK)
        return s;
    st->have_timers = PQgetvalue(res, 0, 0)[0] == 't';
    st->have_outbox = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    /* A service with due work of its own (bx-notify's scheduled sends) exposes
     * <schema>.settle_pending(now timestamptz) RETURNS TABLE (what text, pending bigint). */
    s = bx_pg_query(st->db,
                    "SELECT quote_ident(n.nspname) || '.settle_pending' FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE p.proname = 'settle_pending' AND p.pronargs = 1 ORDER BY 1",
                    0, NULL, &res, err);
    if (s != BX_OK)
        return s;
    if (PQntuples(res) > MAX_PENDING_FNS)
        s = BX_ERR(err, BX_EINVAL, "more than %d settle_pending functions in the database",
                   MAX_PENDING_FNS);
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++) {
        int n = snprintf(st->pending_fns[i], PENDING_FN_MAX, "%s", PQgetvalue(res, i, 0));
        if (n < 0 || n >= PENDING_FN_MAX)
            s = BX_ERR(err, BX_EINVAL, "settle_pending function name too long: %.100s",
                       PQgetvalue(res, i, 0));
        st->npending_fns = i + 1;
    }
    PQclear(res);
    return s;
}

bx_status bx_settle_new(const char *brokers, const bx_settle_spec *specs, int nspecs, PGconn *db,
                        bx_settle **out, bx_error *err)
{
    assert(brokers != NULL && db != NULL && out != NULL && (specs != NULL || nspecs == 0));
    if (nspecs < 0 || nspecs > BX_SETTLE_MAX_GROUPS)
        return BX_ERR(err, BX_EINVAL, "%d groups: at most %d", nspecs, BX_SETTLE_MAX_GROUPS);
    bx_settle *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return BX_ERR(err, BX_ENOMEM, "settle: out of memory");
    st->db = db;
    bx_buf_init(&st->waiting[0], WAITING_MAX);
    bx_buf_init(&st->waiting[1], WAITING_MAX);
    bx_status s = discover(st, err);
    for (int i = 0; i < nspecs && s == BX_OK; i++) {
        assert(specs[i].ntopics > 0);
        st->groups[i].spec = specs[i];
        st->ngroups = i + 1;
        s = bx_settle_group_handle(brokers, specs[i].group, &st->groups[i].rk, err);
    }
    if (s != BX_OK) {
        bx_settle_free(st);
        return s;
    }
    *out = st;
    return BX_OK;
}

void bx_settle_free(bx_settle *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < st->ngroups; i++)
        if (st->groups[i].rk)
            rd_kafka_destroy(st->groups[i].rk);
    bx_buf_free(&st->waiting[0]);
    bx_buf_free(&st->waiting[1]);
    free(st);
}
