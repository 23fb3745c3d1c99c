/* service: bx-score's batches: parse, apply to Redis and PostgreSQL, recompute, publish, commit. */
#include "service.h"
#include "analytics.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_dlq.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_registry.h"
#include "bx_retry.h"
#include "daily.h"
#include "messages.h"
#include "recompute.h"
#include "store.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECOMPUTE_CHUNK 256 /* students computed (and held in memory) at once */
#define DELIVERY_MS     30000
#define DLQ_RECORD_MAX  65536 /* a bigger rejected message is dead-lettered without its bytes */

static bx_metric m_facts = {"bx_score_facts_total{result=\"applied\"}",
                            "facts, leave requests and roll calls applied to Redis", "counter", 0,
                            NULL};
static bx_metric m_changed = {"bx_score_facts_total{result=\"changed\"}",
                              "facts that changed what Redis held", "counter", 0, NULL};
static bx_metric m_assessments = {"bx_score_assessments_total",
                                  "assessments published on bx.risk.v1", "counter", 0, NULL};
static bx_metric m_aggregates = {"bx_score_attendance_aggregates_total",
                                 "daily aggregates published on bx.analytics.attendance.v1",
                                 "counter", 0, NULL};
static bx_metric m_dlq = {"bx_score_dlq_total", "messages sent to bx.dlq.v1", "counter", 0, NULL};
static bx_metric m_failures = {"bx_score_batch_failures_total",
                               "batches that failed and were retried", "counter", 0, NULL};

/* One message of a batch, and what it says. */
typedef struct item {
    rd_kafka_message_t *msg;
    score_message m;
} item;

struct score_service {
    score_service_conf conf;
    bx_consumer *consumer;
    bx_producer *producer;
    PGconn *db;
    bx_redis *redis; /* one server or a Redis Cluster (BX_REDIS_URL) */
    score_store_redis *store;
    bx_registry *registry;
    score_profiles *profiles;
    atomic_bool healthy;
    rd_kafka_message_t **msgs;
    item *items;
    score_outcome *out; /* RECOMPUTE_CHUNK of them, for every batch */
};

/* ---- connections ---- */

static bx_status connect_redis(score_service *sv, bx_error *err)
{
    score_store_redis_free(sv->store);
    sv->store = NULL;
    bx_redis_close(sv->redis);
    sv->redis = NULL;
    bx_status s = bx_redis_open(sv->conf.redis_url, 10000, &sv->redis, err);
    IFOK(s, score_store_redis_open(sv->redis, &sv->store, err));
    return s;
}

/* Connects to PostgreSQL when the connection is missing or broke. */
static bx_status connect_pg(score_service *sv, bx_error *err)
{
    return bx_pg_reconnect(&sv->db, sv->conf.pg_url, 10000, err);
}

static bx_status load_registry(score_service *sv, bx_error *err)
{
    bx_registry *r = NULL;
    score_profiles *p = NULL;
    bx_status s = bx_registry_load(sv->db, &r, err);
    IFOK(s, score_profiles_load(sv->db, r, &p, err));
    if (s != BX_OK) {
        bx_registry_free(r);
        return s;
    }
    bx_registry_free(sv->registry);
    score_profiles_free(sv->profiles);
    sv->registry = r;
    sv->profiles = p;
    bx_log_info("registry revision %lld loaded: %zu students", bx_registry_loaded_revision(r),
                bx_registry_student_count(r));
    return BX_OK;
}

/* Reloads the registry when its revision changed; *reloaded (may be NULL) says so. */
static bx_status refresh_registry(score_service *sv, bool *reloaded, bx_error *err)
{
    long long rev = 0;
    if (reloaded)
        *reloaded = false;
    bx_status s = bx_registry_current_revision(sv->db, &rev, err);
    if (s == BX_OK && rev != bx_registry_loaded_revision(sv->registry)) {
        s = load_registry(sv, err);
        if (reloaded)
            *reloaded = s == BX_OK;
    }
    return s;
}

bx_status score_service_start(const score_service_conf *conf, score_service **out, bx_error *err)
{
    *out = NULL;
    score_service *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return BX_ERR(err, BX_ENOMEM, "service: out of memory");
    sv->conf = *conf;
    atomic_init(&sv->healthy, true);
    bx_metric_register(&m_facts);
    bx_metric_register(&m_changed);
    bx_metric_register(&m_assessments);
    bx_metric_register(&m_dlq);
    bx_metric_register(&m_aggregates);
    bx_metric_register(&m_failures);
    sv->msgs = calloc((size_t)conf->batch_max, sizeof(*sv->msgs));
    sv->items = calloc((size_t)conf->batch_max, sizeof(*sv->items));
    sv->out = calloc(RECOMPUTE_CHUNK, sizeof(*sv->out));
    bx_status s =
        sv->msgs && sv->items && sv->out ? BX_OK : BX_ERR(err, BX_ENOMEM, "service: out of memory");
    IFOK(s, connect_pg(sv, err));
    IFOK(s, load_registry(sv, err));
    IFOK(s, connect_redis(sv, err));
    IFOK(s, bx_producer_new(conf->brokers, NULL, &sv->producer, err));
    const char *const topics[] = {conf->topic, NULL};
    const char *const extra[] = {"auto.offset.reset",
                                 conf->offset_reset ? conf->offset_reset : "earliest", NULL};
    IFOK(s, bx_consumer_new(conf->brokers, conf->group, topics, extra, &sv->consumer, err));
    if (s != BX_OK) {
        score_service_stop(sv);
        return s;
    }
    bx_log_info("consuming %s as group %s", conf->topic, conf->group);
    *out = sv;
    return BX_OK;
}

void score_service_stop(score_service *sv)
{
    if (sv == NULL)
        return;
    bx_consumer_free(sv->consumer);
    bx_producer_free(sv->producer, 10000);
    score_store_redis_free(sv->store);
    bx_redis_close(sv->redis);
    if (sv->db)
        PQfinish(sv->db);
    score_profiles_free(sv->profiles);
    bx_registry_free(sv->registry);
    free(sv->msgs);
    free(sv->items);
    free(sv->out);
    free(sv);
}

bool score_service_healthy(void *arg, char *reason, size_t size)
{
    score_service *sv = arg;
    if (atomic_load(&sv->healthy))
        return true;
    snprintf(reason, size, "the last batch failed; retrying");
    return false;
}

/* The daily attendance aggregates that are due (daily.h). */
static void publish_daily(score_service *sv)
{
    if (sv->store == NULL || sv->db == NULL)
        return;
    score_env env = {sv->conf.policy, sv->registry, sv->profiles, sv->store};
    score_daily_env d = {sv->db, &env, sv->producer, sv->conf.analytics_attendance_topic};
    bx_error err = {0};
    int published = 0;
    if (score_daily_publish(&d, bx_clock_now(), &published, &err) != BX_OK) {
        bx_log_warn("attendance aggregates: %s; tried again at the next tick", err.msg);
        if (sv->db && PQtransactionStatus(sv->db) != PQTRANS_IDLE)
            bx_pg_rollback(sv->db);
    }
    if (published > 0)
        bx_metric_add(&m_aggregates, published);
}

void score_service_tick(score_service *sv)
{
    bx_error err = {0};
    if (refresh_registry(sv, NULL, &err) != BX_OK) {
        bx_log_warn("registry refresh failed: %s", err.msg);
        if (connect_pg(sv, &err) != BX_OK)
            bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
        return;
    }
    publish_daily(sv);
}

/* ---- one batch ---- */

/* Sends value to topic, counting the delivery in slot. */
static bx_status send_counted(score_service *sv, const char *topic, const char *key,
                              const char *value, size_t len, bx_delivery_slot *slot,
                              bx_delivery_wait *w, bx_error *err)
{
    bx_delivery_slot_arm(slot, w);
    bx_status s = bx_producer_send(sv->producer, topic, key, strlen(key), value, len,
                                   bx_delivery_slot_done, slot);
    if (s != BX_OK) {
        bx_delivery_slot_done(slot, RD_KAFKA_RESP_ERR__FAIL);
        return BX_ERR(err, s, "cannot queue a message to %s", topic);
    }
    return BX_OK;
}

/* After a step that queued n deliveries in slots (what names them: "assessments") and ended
 * with s: waits for them and, when s is BX_OK, checks each. When s or the wait failed it waits
 * again for the stragglers (slots must outlive their callbacks); err keeps an earlier failure. */
static bx_status settle_deliveries(bx_status s, bx_delivery_wait *w, const bx_delivery_slot *slots,
                                   size_t n, const char *what, bx_error *err)
{
    if (bx_delivery_wait_all(w, DELIVERY_MS) != BX_OK && s == BX_OK)
        s = BX_ERR(err, BX_ETIMEOUT, "%s not acknowledged in %d ms", what, DELIVERY_MS);
    for (size_t i = 0; i < n && s == BX_OK; i++)
        if (slots[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
            s = BX_ERR(err, BX_EIO, "%s: one was not delivered: %s", what,
                       rd_kafka_err2str(slots[i].err));
    if (s != BX_OK && bx_delivery_wait_all(w, DELIVERY_MS) != BX_OK)
        bx_log_error("deliveries still outstanding after a failure");
    return s;
}

static bx_status send_dead_letter(score_service *sv, const item *it, bx_delivery_slot *slot,
                                  bx_delivery_wait *w, bx_error *err)
{
    const rd_kafka_message_t *msg = it->msg;
    char event_id[160];
    bx_dlq_event_id(event_id, sizeof(event_id), "bx-score", NULL, (int)msg->partition,
                    (long long)msg->offset);
    bx_dlq_letter l = {.event_id = event_id,
                       .source = "bx-score",
                       .endpoint = sv->conf.topic,
                       .record_index = -1,
                       .line = -1,
                       .reason = it->m.json_ok ? "invalid_value" : "malformed",
                       .error = it->m.error,
                       .record = msg->payload,
                       .record_len = msg->len,
                       .record_kind = it->m.json_ok ? BX_DLQ_RECORD_JSON : BX_DLQ_RECORD_TEXT,
                       .record_max = it->m.json_ok ? 0 : DLQ_RECORD_MAX,
                       .received_at = bx_clock_now()};
    bx_buf b;
    bx_buf_init(&b, 4 * DLQ_RECORD_MAX);
    bx_status s = bx_dlq_build(&l, &b, err);
    IFOK(s, send_counted(sv, BX_TOPIC_DLQ, "unknown", b.data, b.len, slot, w, err));
    bx_buf_free(&b);
    return s;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int compare_fact_student(const void *a, const void *b)
{
    return strcmp(((const score_store_fact *)a)->student_id,
                  ((const score_store_fact *)b)->student_id);
}

static bool is_fact(const item *it)
{
    return it->m.kind == SCORE_MESSAGE_FACT || it->m.kind == SCORE_MESSAGE_LEAVE;
}

/* What one try of a batch works with; everything but items is its own. */
typedef struct batch {
    const item *items;
    size_t n;
    size_t nfacts, nreports, nbad;
    score_store_fact *facts;
    score_store_outcome *outcomes; /* of facts */
    score_store_report *reports;
    score_store_outcome *routcomes; /* of reports */
    bx_delivery_slot *dlq;
    size_t sent; /* dead letters queued */
    size_t stored, rstored;
    const char **ids; /* affected students */
    size_t nids;
    bx_delivery_slot *slots; /* assessments: two per published student, up to 2 * nids */
    size_t published, npublished;
    /* Summaries to store once the assessments are acknowledged: per student its id, then its
     * name and value pairs, each NUL-terminated; sumsat holds per summary the offset of its id
     * and its pair count. */
    bx_buf sums;
    size_t *sumsat;
    size_t nsums, sumscap;
    bx_delivery_wait *w;
} batch;

static void batch_free(batch *b)
{
    free(b->facts);
    free(b->outcomes);
    free(b->reports);
    free(b->routcomes);
    free(b->dlq);
    free(b->ids);
    free(b->slots);
    free(b->sumsat);
    bx_buf_free(&b->sums);
    bx_delivery_wait_free(b->w);
}

static bx_status batch_init(batch *b, const item *items, size_t n, bx_error *err)
{
    memset(b, 0, sizeof(*b));
    b->items = items;
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        b->nfacts += is_fact(&items[i]);
        b->nreports += items[i].m.kind == SCORE_MESSAGE_REPORT;
        b->nbad += items[i].m.kind == SCORE_MESSAGE_BAD;
    }
    b->w = bx_delivery_wait_new();
    b->facts = calloc(b->nfacts + 1, sizeof(*b->facts));
    b->outcomes = calloc(b->nfacts + 1, sizeof(*b->outcomes));
    b->reports = calloc(b->nreports + 1, sizeof(*b->reports));
    b->routcomes = calloc(b->nreports + 1, sizeof(*b->routcomes));
    b->dlq = calloc(b->nbad + 1, sizeof(*b->dlq));
    bx_buf_init(&b->sums, 0);
    if (!b->w || !b->facts || !b->outcomes || !b->reports || !b->routcomes || !b->dlq)
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    return BX_OK;
}

/* The facts and reports in the store's terms; a bad message is dead-lettered. */
static bx_status batch_stage(score_service *sv, batch *b, bx_error *err)
{
    size_t f = 0, r = 0;
    bx_status s = BX_OK;
    for (size_t i = 0; i < b->n && s == BX_OK; i++) {
        const item *it = &b->items[i];
        const score_message *m = &it->m;
        if (is_fact(it)) {
            b->facts[f++] = (score_store_fact){m->student,   m->school, m->klass,  m->field,
                                               m->order_key, m->value,  m->implied};
        } else if (m->kind == SCORE_MESSAGE_REPORT) {
            b->reports[r++] =
                (score_store_report){m->klass, m->school, m->field, m->order_key, m->value};
        } else {
            bx_log_warn("%s [%d] offset %lld: dead-lettered: %s", sv->conf.topic,
                        (int)it->msg->partition, (long long)it->msg->offset, m->error);
            s = send_dead_letter(sv, it, &b->dlq[b->sent++], b->w, err);
        }
    }
    /* One script call per student: facts of one student side by side. */
    if (s == BX_OK && b->nfacts > 1)
        qsort(b->facts, b->nfacts, sizeof(*b->facts), compare_fact_student);
    return s;
}

/* Redis first (it decides), then the durable record in PostgreSQL, before any offset is stored. */
static bx_status batch_store(score_service *sv, batch *b, bx_error *err)
{
    bx_status s = BX_OK;
    if (b->nfacts)
        s = score_store_apply_facts(sv->store, b->facts, b->nfacts, b->outcomes, &b->stored, err);
    if (s == BX_OK && b->nreports)
        s = score_store_apply_reports(sv->store, b->reports, b->nreports, b->routcomes, &b->rstored,
                                      err);
    if (s != BX_OK || (b->nfacts == 0 && b->nreports == 0))
        return s;
    s = bx_pg_exec(sv->db, "BEGIN", err);
    if (b->nfacts)
        IFOK(s, score_store_pg_write_facts(sv->db, b->facts, b->outcomes, b->nfacts, NULL, err));
    if (b->nreports)
        IFOK(s, score_store_pg_write_reports(sv->db, b->reports, b->nreports, NULL, err));
    /* A late fact of a day already aggregated marks it, in the fact's own transaction. */
    IFOK(s, score_daily_mark(sv->db, b->facts, b->nfacts, b->reports, b->nreports,
                             bx_time_local_date(bx_clock_now()), err));
    IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(sv->db);
    return s;
}

/* Whether a compare-and-set outcome asks for a recompute: the fact or roll call changed what
 * Redis held (STORED), or was held already (CURRENT: a batch tried again after a failure may have
 * stored it without recomputing, so it is recomputed again). SUPERSEDED and IMPLIED changed
 * nothing, and whatever stored the state they met recomputed it: skipped. */
static bool needs_recompute(score_store_outcome o)
{
    return o == SCORE_STORE_STORED || o == SCORE_STORE_CURRENT;
}

/* The students whose state a batch may change: the student of every fact and leave that changed
 * (or may have) what Redis held, and every student of a class whose roll call did (an implied
 * presence makes their day present). Sorted, unique; the strings are borrowed from the batch's
 * messages and the registry. */
static bx_status affected_students(score_service *sv, const batch *b, const char ***out,
                                   size_t *count, bx_error *err)
{
    size_t cap = 0;
    for (size_t i = 0; i < b->nfacts; i++)
        cap += needs_recompute(b->outcomes[i]);
    for (size_t i = 0; i < b->nreports; i++) {
        const bx_reg_class *k = needs_recompute(b->routcomes[i])
                                    ? bx_registry_class(sv->registry, b->reports[i].class_id)
                                    : NULL;
        cap += k ? (size_t)k->student_count : 0;
    }
    const char **ids = calloc(cap ? cap : 1, sizeof(*ids));
    if (ids == NULL)
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < b->nfacts; i++)
        if (needs_recompute(b->outcomes[i]))
            ids[k++] = b->facts[i].student_id;
    for (size_t i = 0; i < b->nreports; i++) {
        const bx_reg_class *c = needs_recompute(b->routcomes[i])
                                    ? bx_registry_class(sv->registry, b->reports[i].class_id)
                                    : NULL;
        for (int j = 0; c && j < c->student_count && k < cap; j++)
            ids[k++] = c->students[j]->id;
    }
    qsort(ids, k, sizeof(*ids), compare_ids);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0)
            ids[u++] = ids[i];
    *out = ids;
    *count = u;
    return BX_OK;
}

/* The affected students; a student the registry does not know yet may be one added since the
 * last refresh, so the registry is refreshed once and the students taken again. */
static bx_status batch_students(score_service *sv, batch *b, bx_error *err)
{
    bx_status s = affected_students(sv, b, &b->ids, &b->nids, err);
    for (size_t i = 0; i < b->nids && s == BX_OK; i++) {
        if (bx_registry_student(sv->registry, b->ids[i]) == NULL) {
            bool reloaded = false;
            s = refresh_registry(sv, &reloaded, err);
            if (s == BX_OK && reloaded) {
                free(b->ids);
                b->ids = NULL;
                s = affected_students(sv, b, &b->ids, &b->nids, err);
            }
            break;
        }
    }
    return s;
}

/* Queues the assessment of one recomputed student on bx.risk.v1 and its pseudonymised copy on
 * bx.analytics.risk.v1, two slots from *sent on. */
static bx_status publish_one(score_service *sv, const score_outcome *o, bx_time_ms now, bx_buf *b,
                             bx_delivery_slot *slots, size_t *sent, bx_delivery_wait *w,
                             bx_error *err)
{
    bx_buf_reset(b);
    bx_status s = score_risk_message(o, now, b);
    IFOK(s, send_counted(sv, BX_TOPIC_RISK, o->student_id, b->data, b->len, &slots[(*sent)++], w,
                         err));
    char subject[BX_PSEUDONYM_SIZE];
    bx_pseudonym(sv->conf.pseudonym_key, o->student_id, subject);
    bx_buf_reset(b);
    IFOK(s, score_analytics_message(o, sv->conf.pseudonym_key, now, b));
    IFOK(s, send_counted(sv, sv->conf.analytics_risk_topic, subject, b->data, b->len,
                         &slots[(*sent)++], w, err));
    if (s == BX_OK)
        bx_log_info("student %s: %s, streak %d, tier %s", o->student_id,
                    score_trigger_name(o->trigger), o->summary.streak_days,
                    score_tier_name(o->assessment.tier));
    return s;
}

/* Keeps o's summary in the batch, to be stored once the assessments are acknowledged. */
static bx_status keep_summary(batch *b, const score_outcome *o, bx_error *err)
{
    if (b->nsums == b->sumscap) {
        size_t cap = b->sumscap ? 2 * b->sumscap : 64;
        size_t *p = realloc(b->sumsat, 2 * cap * sizeof(*p));
        if (p == NULL)
            return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
        b->sumsat = p;
        b->sumscap = cap;
    }
    size_t count = o->has_facts ? o->nfields : 0;
    b->sumsat[2 * b->nsums] = b->sums.len;
    b->sumsat[2 * b->nsums + 1] = count;
    bx_status s = bx_buf_append(&b->sums, o->student_id, strlen(o->student_id) + 1);
    for (size_t f = 0; f < count && s == BX_OK; f++) {
        s = bx_buf_append(&b->sums, o->names[f], strlen(o->names[f]) + 1);
        IFOK(s, bx_buf_append(&b->sums, o->values[f], strlen(o->values[f]) + 1));
    }
    if (s != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    b->nsums++;
    return BX_OK;
}

/* Recomputes n students of the batch (RECOMPUTE_CHUNK at most), queues what should be published
 * and keeps the summaries that changed, for batch_recompute to store. */
static bx_status recompute_and_publish(score_service *sv, batch *b, const char *const *ids,
                                       size_t n, bx_error *err)
{
    score_env env = {sv->conf.policy, sv->registry, sv->profiles, sv->store};
    bx_date as_of = bx_time_local_date(bx_clock_now());
    score_outcome *out = sv->out;
    bx_status s = score_recompute_batch(&env, ids, n, as_of, true, out, err);
    if (s != BX_OK)
        return s;
    bx_time_ms now = bx_clock_now();
    bx_buf msg;
    bx_buf_init(&msg, 1 << 20);
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        if (out[i].student == NULL) {
            if (out[i].has_facts)
                bx_log_warn("student %s is not in the registry: facts kept, nothing computed",
                            out[i].student_id);
            continue;
        }
        if (out[i].trigger != SCORE_TRIGGER_NONE) {
            s = publish_one(sv, &out[i], now, &msg, b->slots, &b->published, b->w, err);
            b->npublished += s == BX_OK;
        }
        if (s == BX_OK && !out[i].summary_same)
            s = keep_summary(b, &out[i], err);
    }
    bx_buf_free(&msg);
    return s;
}

/* Every affected student recomputed and its assessment queued, chunk by chunk; then one wait for
 * the broker, and only then the summaries that changed stored (so a crash before the store
 * publishes again, with the same event ids). */
static bx_status batch_recompute(score_service *sv, batch *b, bx_error *err)
{
    b->slots = calloc(2 * b->nids + 1, sizeof(*b->slots));
    if (b->slots == NULL)
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    bx_status s = BX_OK;
    for (size_t i = 0; i < b->nids && s == BX_OK; i += RECOMPUTE_CHUNK) {
        size_t k = b->nids - i < RECOMPUTE_CHUNK ? b->nids - i : RECOMPUTE_CHUNK;
        s = recompute_and_publish(sv, b, b->ids + i, k, err);
    }
    s = settle_deliveries(s, b->w, b->slots, b->published, "assessments", err);
    if (s != BX_OK || b->nsums == 0)
        return s;
    score_store_summary *sums = calloc(b->nsums, sizeof(*sums));
    const char **names = calloc(b->nsums * SCORE_SUMMARY_FIELDS + 1, sizeof(*names));
    const char **values = calloc(b->nsums * SCORE_SUMMARY_FIELDS + 1, sizeof(*values));
    if (sums == NULL || names == NULL || values == NULL)
        s = BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    for (size_t i = 0; i < b->nsums && s == BX_OK; i++) {
        const char *p = b->sums.data + b->sumsat[2 * i];
        size_t count = b->sumsat[2 * i + 1];
        const char **nm = names + i * SCORE_SUMMARY_FIELDS;
        const char **vl = values + i * SCORE_SUMMARY_FIELDS;
        sums[i] = (score_store_summary){p, nm, vl, count};
        p += strlen(p) + 1;
        for (size_t f = 0; f < count; f++) {
            nm[f] = p;
            p += strlen(p) + 1;
            vl[f] = p;
            p += strlen(p) + 1;
        }
    }
    IFOK(s, score_store_put_summaries(sv->store, sums, b->nsums, NULL, err));
    free(sums);
    free(names);
    free(values);
    return s;
}

/* One try of a batch: dead letters, Redis, PostgreSQL, recomputation and publication, then the
 * dead letters acknowledged. Every step is idempotent, so a failed try is simply tried again. */
static bx_status process(score_service *sv, const item *items, size_t n, bx_error *err)
{
    batch b;
    bx_status s = batch_init(&b, items, n, err);
    IFOK(s, batch_stage(sv, &b, err));
    IFOK(s, batch_store(sv, &b, err));
    IFOK(s, batch_students(sv, &b, err));
    IFOK(s, batch_recompute(sv, &b, err));
    if (b.w)
        s = settle_deliveries(s, b.w, b.dlq, b.sent, "dead letters", err);
    if (s == BX_OK) {
        bx_metric_add(&m_facts, (long long)(b.nfacts + b.nreports));
        bx_metric_add(&m_changed, (long long)(b.stored + b.rstored));
        bx_metric_add(&m_dlq, (long long)b.sent);
        bx_metric_add(&m_assessments, (long long)b.npublished);
        bx_log_debug("batch: %zu messages, %zu facts (%zu changed), %zu roll calls, %zu students, "
                     "%zu summaries changed, %zu dead letters",
                     n, b.nfacts, b.stored, b.nreports, b.nids, b.nsums, b.sent);
    }
    batch_free(&b);
    return s;
}

/* ---- retries ---- */

/* What bx_retry_run tries: n items from items on. */
typedef struct batch_try {
    score_service *sv;
    item *items;
    size_t n;
} batch_try;

static bx_status try_batch(void *arg, bx_error *err)
{
    batch_try *t = arg;
    bx_status s = BX_OK;
    if (t->sv->store == NULL)
        s = BX_ERR(err, BX_ETRANSIENT, "redis: not connected");
    else if (t->sv->db == NULL)
        s = BX_ERR(err, BX_ETRANSIENT, "postgresql: not connected");
    else
        s = process(t->sv, t->items, t->n, err);
    atomic_store(&t->sv->healthy, s == BX_OK);
    if (s != BX_OK)
        bx_metric_add(&m_failures, 1);
    return s;
}

/* bx_retry_ops.recover: reconnects to Redis and PostgreSQL where the connection broke. */
static void recover_connections(void *arg)
{
    score_service *sv = ((batch_try *)arg)->sv;
    bx_error err = {0};
    if ((sv->redis == NULL || sv->store == NULL || bx_redis_broken(sv->redis)) &&
        connect_redis(sv, &err) != BX_OK)
        bx_log_warn("cannot reconnect to Redis: %s", err.msg);
    if (connect_pg(sv, &err) != BX_OK)
        bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
}

static bx_retry_verdict run_batch(score_service *sv, item *items, size_t n, const char *what,
                                  bx_error *err)
{
    batch_try t = {sv, items, n};
    bx_retry_ops ops = {.attempt = try_batch,
                        .recover = recover_connections,
                        .running = sv->conf.running,
                        .min_ms = 200,
                        .max_ms = 5000,
                        .what = what};
    return bx_retry_run(&ops, &t, err);
}

/* One message after its batch failed for a reason a retry cannot mend: alone, and when it still
 * fails so, dead-lettered with that reason. False when the service stops first. */
static bool handle_alone(score_service *sv, item *it)
{
    char what[160];
    snprintf(what, sizeof(what), "%s [%d] offset %lld", sv->conf.topic, (int)it->msg->partition,
             (long long)it->msg->offset);
    bx_error err = {0};
    bx_retry_verdict v = run_batch(sv, it, 1, what, &err);
    if (v == BX_RETRY_DEADLETTER && it->m.kind != SCORE_MESSAGE_BAD) {
        it->m.kind = SCORE_MESSAGE_BAD;
        snprintf(it->m.error, sizeof(it->m.error), "%s", err.msg[0] ? err.msg : "not applied");
        v = run_batch(sv, it, 1, what, &err);
    }
    if (v == BX_RETRY_DEADLETTER)
        bx_log_error("%s: cannot be dead-lettered (%s); skipped", what, err.msg);
    return v != BX_RETRY_STOPPED;
}

/* Processes n items: as one batch, retried while what failed may mend (Redis, PostgreSQL or
 * Kafka away); when the batch fails for a reason a retry cannot mend, each message alone, so only
 * the one at fault is dead-lettered. Returns how many, from the first, are done. */
static size_t handle_items(score_service *sv, item *items, size_t n)
{
    char what[64];
    snprintf(what, sizeof(what), "batch of %zu messages", n);
    bx_error err = {0};
    bx_retry_verdict v = run_batch(sv, items, n, what, &err);
    if (v == BX_RETRY_DONE)
        return n;
    if (v == BX_RETRY_STOPPED) {
        if (*sv->conf.running) {
            /* A fatal failure: the batch is neither done nor skipped, so nothing may follow it. */
            bx_log_error("%s: %s; stopping", what, err.msg);
            raise(SIGTERM);
        }
        return 0;
    }
    bx_log_warn("%s failed (%s): taking its messages one by one", what, err.msg);
    size_t done = 0;
    while (done < n && handle_alone(sv, &items[done]))
        done++;
    return done;
}

/* ---- the loop body ---- */

/* Polls up to batch_max messages: waits up to 100 ms for the first, then batch_ms for the rest.
 * Returns how many. */
static size_t poll_batch(score_service *sv)
{
    size_t n = 0;
    long long first = 0;
    while (n < (size_t)sv->conf.batch_max) {
        int timeout = 100;
        if (n > 0) {
            long long left = sv->conf.batch_ms - (bx_monotonic_ms() - first);
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        rd_kafka_message_t *msg = bx_consumer_poll(sv->consumer, timeout);
        if (msg == NULL) {
            if (n == 0)
                return 0;
            continue;
        }
        if (msg->err) {
            bx_log_warn("consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (n == 0)
            first = bx_monotonic_ms();
        sv->msgs[n++] = msg;
    }
    return n;
}

void score_service_step(score_service *sv)
{
    size_t n = poll_batch(sv);
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        sv->items[i].msg = sv->msgs[i];
        score_message_decode(sv->msgs[i]->payload, sv->msgs[i]->len, &sv->items[i].m);
    }
    size_t done = handle_items(sv, sv->items, n);
    for (size_t i = 0; i < done; i++)
        bx_consumer_done(sv->consumer, sv->msgs[i]);
    if (done > 0 && bx_consumer_commit(sv->consumer) != BX_OK)
        bx_log_warn("offset commit failed; the next commit carries them");
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_destroy(sv->msgs[i]);
        sv->msgs[i] = NULL;
    }
}
