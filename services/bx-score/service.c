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

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECOMPUTE_CHUNK 256 /* students computed (and held in memory) at once */
#define DELIVERY_MS     30000
#define DLQ_RECORD_MAX  65536 /* a bigger rejected message is dead-lettered without its bytes */
#define MARKED_EVERY_MS 60000 /* marked days aggregated again at least this often while busy */

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
    bool idle;           /* the last poll brought nothing */
    long long marked_ms; /* when the marked days were last aggregated again (monotonic) */
    score_outcome *out;  /* RECOMPUTE_CHUNK of them, for every batch */
    score_store_pipe *pipe;
    score_store_entries *facts, *sums; /* RECOMPUTE_CHUNK: shallow copies of a batch's reads */
    const score_store_entries **reported;
    /* The pipeline (see "the loop body"): two flights, the one polled and prepared by this
     * thread and the one in the worker's hands; the worker's own Redis for the summaries. */
    struct flight *flights;
    int cur;                 /* the flight this thread fills next */
    struct flight *inflight; /* handed to the worker, not drained yet */
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct flight *todo; /* for the worker; NULL when it is idle */
    bool quit;
    bx_redis *wredis;
    score_store_redis *wstore;
    PGconn *wdb; /* the worker's, for the batches' PostgreSQL record */
    /* The summaries the worker's last batch stored, while the next one may have read them
     * before they were (patched in: see flight_finish). */
    bx_buf prev_text;
    struct prev_sum *prev; /* sorted by id, pointing into prev_text */
    size_t nprev;
};

/* One summary a batch stored: count pairs of name and value, NUL-terminated, from pairs on. */
typedef struct prev_sum {
    const char *id, *pairs;
    size_t count;
} prev_sum;

static void *worker_main(void *arg);
static bool drain(score_service *sv);
static void forget_prev(score_service *sv);
static bool flights_new(score_service *sv);
static void flights_free(score_service *sv);

/* Waits until the worker holds no batch (the one it finished stays to be drained). */
static void quiesce(score_service *sv)
{
    if (!sv->worker_started)
        return;
    pthread_mutex_lock(&sv->lock);
    while (sv->todo != NULL)
        pthread_cond_wait(&sv->cond, &sv->lock);
    pthread_mutex_unlock(&sv->lock);
}

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
        quiesce(sv); /* the worker reads the registry that is freed */
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
    sv->marked_ms = bx_monotonic_ms();
    bx_metric_register(&m_facts);
    bx_metric_register(&m_changed);
    bx_metric_register(&m_assessments);
    bx_metric_register(&m_dlq);
    bx_metric_register(&m_aggregates);
    bx_metric_register(&m_failures);
    sv->out = calloc(RECOMPUTE_CHUNK, sizeof(*sv->out));
    sv->facts = calloc(RECOMPUTE_CHUNK, sizeof(*sv->facts));
    sv->sums = calloc(RECOMPUTE_CHUNK, sizeof(*sv->sums));
    sv->reported = calloc(RECOMPUTE_CHUNK, sizeof(*sv->reported));
    bx_buf_init(&sv->prev_text, 0);
    pthread_mutex_init(&sv->lock, NULL);
    pthread_cond_init(&sv->cond, NULL);
    bool ok = sv->out && sv->facts && sv->sums && sv->reported && flights_new(sv);
    bx_status s = ok ? BX_OK : BX_ERR(err, BX_ENOMEM, "service: out of memory");
    IFOK(s, score_store_pipe_new(&sv->pipe, err));
    IFOK(s, connect_pg(sv, err));
    IFOK(s, bx_pg_reconnect(&sv->wdb, sv->conf.pg_url, 10000, err)); /* the worker's */
    IFOK(s, load_registry(sv, err));
    IFOK(s, connect_redis(sv, err));
    IFOK(s, bx_producer_new(conf->brokers, NULL, &sv->producer, err));
    if (s == BX_OK) {
        const char *const out_topics[] = {BX_TOPIC_RISK, conf->analytics_risk_topic,
                                          conf->analytics_attendance_topic, BX_TOPIC_DLQ, NULL};
        bx_producer_prepare_topics(sv->producer, out_topics, 5000);
    }
    const char *const topics[] = {conf->topic, NULL};
    const char *const extra[] = {"auto.offset.reset",
                                 conf->offset_reset ? conf->offset_reset : "earliest", NULL};
    IFOK(s, bx_consumer_new(conf->brokers, conf->group, topics, extra, &sv->consumer, err));
    if (s == BX_OK) {
        if (pthread_create(&sv->worker, NULL, worker_main, sv) != 0)
            s = BX_ERR(err, BX_ENOMEM, "service: cannot start the worker thread");
        sv->worker_started = s == BX_OK;
    }
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
    if (sv->worker_started) {
        drain(sv);
        pthread_mutex_lock(&sv->lock);
        sv->quit = true;
        pthread_cond_broadcast(&sv->cond);
        pthread_mutex_unlock(&sv->lock);
        pthread_join(sv->worker, NULL);
    }
    bx_consumer_free(sv->consumer);
    bx_producer_free(sv->producer, 10000);
    score_store_redis_free(sv->store);
    bx_redis_close(sv->redis);
    if (sv->db)
        PQfinish(sv->db);
    score_profiles_free(sv->profiles);
    bx_registry_free(sv->registry);
    flights_free(sv);
    score_store_redis_free(sv->wstore);
    bx_redis_close(sv->wredis);
    if (sv->wdb)
        PQfinish(sv->wdb);
    forget_prev(sv);
    bx_buf_free(&sv->prev_text);
    pthread_mutex_destroy(&sv->lock);
    pthread_cond_destroy(&sv->cond);
    free(sv->out);
    free(sv->facts);
    free(sv->sums);
    free(sv->reported);
    score_store_pipe_free(sv->pipe);
    free(sv);
}

bool score_service_healthy(void *arg, char *reason, size_t size)
{
    score_service *sv = arg;
    return bx_health_of_flag(&sv->healthy, "the last batch", reason, size);
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
    /* Marked days (late facts) are aggregated again when no batch came at the last poll, or once
     * a minute while a backlog keeps bx-score busy: each is a whole county's day. */
    long long mono = bx_monotonic_ms();
    bool marked = sv->idle || mono - sv->marked_ms >= MARKED_EVERY_MS;
    if (marked)
        sv->marked_ms = mono;
    if (score_daily_publish(&d, bx_clock_now(), marked, &published, &err) != BX_OK) {
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

/* A student the batch may recompute, and its hashes once read after the batch's writes. */
typedef struct cand {
    const char *id; /* borrowed from the batch's facts or the registry */
    const bx_reg_student *reg;
    size_t first, nfacts; /* its facts in the batch (sorted by student); nfacts 0: none */
    bool explicit_fact;   /* one of them is not implied */
    bool loaded;          /* facts and sum read after the batch's writes to them */
    score_store_entries facts, sum;
} cand;

/* A class of the batch: one with a roll call in it, or of one of its students. */
typedef struct kclass {
    const char *id;
    bool reported_here; /* a roll call of this batch */
    bool loaded;
    score_store_entries reported;
} kclass;

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
    /* What the batch read of Redis in the pipeline of its writes (read after them), for the
     * recompute: the students it may recompute (of its facts and of its classes' roll calls) and
     * their classes, each sorted by id. */
    cand *cands;
    size_t ncands;
    kclass *classes;
    size_t nclasses;
    bool *present; /* per fact: its field held already (an implied one's check) */
    const char **fields;
    size_t corrections; /* implied facts that met a stored fact of their field */
} batch;

static void tables_free(batch *b)
{
    for (size_t i = 0; i < b->ncands; i++) {
        score_store_entries_free(&b->cands[i].facts);
        score_store_entries_free(&b->cands[i].sum);
    }
    for (size_t i = 0; i < b->nclasses; i++)
        score_store_entries_free(&b->classes[i].reported);
    free(b->cands);
    free(b->classes);
    b->cands = NULL;
    b->classes = NULL;
    b->ncands = b->nclasses = 0;
}

static void batch_free(batch *b)
{
    tables_free(b);
    free(b->present);
    free(b->fields);
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
    b->present = calloc(b->nfacts + 1, sizeof(*b->present));
    b->fields = calloc(b->nfacts + 1, sizeof(*b->fields));
    bx_buf_init(&b->sums, 0);
    if (!b->w || !b->facts || !b->outcomes || !b->reports || !b->routcomes || !b->dlq ||
        !b->present || !b->fields)
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

/* Whether a compare-and-set outcome asks for a recompute: the fact or roll call changed what
 * Redis held (STORED), or was held already (CURRENT: a batch tried again after a failure may have
 * stored it without recomputing, so it is recomputed again). SUPERSEDED and IMPLIED changed
 * nothing, and whatever stored the state they met recomputed it: skipped. */
static bool needs_recompute(score_store_outcome o)
{
    return o == SCORE_STORE_STORED || o == SCORE_STORE_CURRENT;
}

static int compare_cand(const void *a, const void *b)
{
    return strcmp(((const cand *)a)->id, ((const cand *)b)->id);
}

static int compare_kclass(const void *a, const void *b)
{
    return strcmp(((const kclass *)a)->id, ((const kclass *)b)->id);
}

static cand *cand_find(const batch *b, const char *id)
{
    cand key = {.id = id};
    return b->ncands ? bsearch(&key, b->cands, b->ncands, sizeof(cand), compare_cand) : NULL;
}

static kclass *class_find(const batch *b, const char *id)
{
    kclass key = {.id = id};
    return b->nclasses ? bsearch(&key, b->classes, b->nclasses, sizeof(kclass), compare_kclass)
                       : NULL;
}

/* The tables of students and classes the batch may recompute (nothing read yet): the students of
 * its facts and of the classes whose roll calls it holds, and their classes. */
static bx_status tables_build(score_service *sv, batch *b, bx_error *err)
{
    tables_free(b);
    size_t ncand = b->nfacts, ncls = b->nreports + b->nfacts;
    for (size_t i = 0; i < b->nreports; i++) {
        const bx_reg_class *k = bx_registry_class(sv->registry, b->reports[i].class_id);
        ncand += k ? (size_t)k->student_count : 0;
    }
    b->cands = calloc(ncand + 1, sizeof(*b->cands));
    b->classes = calloc(ncls + 1, sizeof(*b->classes));
    if (b->cands == NULL || b->classes == NULL)
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    size_t nc = 0, nk = 0;
    /* The facts are sorted by student: one candidate per run. */
    for (size_t i = 0; i < b->nfacts;) {
        size_t j = i;
        bool explicit_fact = false;
        while (j < b->nfacts && strcmp(b->facts[j].student_id, b->facts[i].student_id) == 0)
            explicit_fact |= !b->facts[j++].implied;
        const bx_reg_student *st = bx_registry_student(sv->registry, b->facts[i].student_id);
        b->cands[nc++] = (cand){.id = b->facts[i].student_id,
                                .reg = st,
                                .first = i,
                                .nfacts = j - i,
                                .explicit_fact = explicit_fact};
        if (st && st->klass)
            b->classes[nk++] = (kclass){.id = st->klass->id};
        i = j;
    }
    for (size_t i = 0; i < b->nreports; i++) {
        const bx_reg_class *k = bx_registry_class(sv->registry, b->reports[i].class_id);
        b->classes[nk++] = (kclass){.id = b->reports[i].class_id, .reported_here = true};
        for (int j = 0; k && j < k->student_count; j++)
            b->cands[nc++] = (cand){.id = k->students[j]->id, .reg = k->students[j]};
    }
    /* Sorted, one entry per id: a student of the facts keeps its run, a class its report. */
    qsort(b->cands, nc, sizeof(*b->cands), compare_cand);
    size_t u = 0;
    for (size_t i = 0; i < nc; i++) {
        if (u > 0 && strcmp(b->cands[u - 1].id, b->cands[i].id) == 0) {
            if (b->cands[i].nfacts > 0)
                b->cands[u - 1] = b->cands[i];
            continue;
        }
        b->cands[u++] = b->cands[i];
    }
    b->ncands = u;
    qsort(b->classes, nk, sizeof(*b->classes), compare_kclass);
    u = 0;
    for (size_t i = 0; i < nk; i++) {
        if (u > 0 && strcmp(b->classes[u - 1].id, b->classes[i].id) == 0) {
            b->classes[u - 1].reported_here |= b->classes[i].reported_here;
            continue;
        }
        b->classes[u++] = b->classes[i];
    }
    b->nclasses = u;
    return BX_OK;
}

/* Queues the reads of a candidate (facts and summary) and of its class, unless read already. */
static bx_status queue_loads(batch *b, score_store_pipe *p, cand *c, bx_error *err)
{
    bx_status s = BX_OK;
    if (!c->loaded) {
        s = score_store_pipe_load(p, SCORE_STORE_HASH_FACTS, c->id, &c->facts, err);
        IFOK(s, score_store_pipe_load(p, SCORE_STORE_HASH_SUMMARY, c->id, &c->sum, err));
        c->loaded = s == BX_OK;
    }
    kclass *k = c->reg && c->reg->klass ? class_find(b, c->reg->klass->id) : NULL;
    if (s == BX_OK && k && !k->loaded) {
        s = score_store_pipe_load(p, SCORE_STORE_HASH_REPORTED, k->id, &k->reported, err);
        k->loaded = s == BX_OK;
    }
    return s;
}

/* Whether the facts hash read (sorted by field) holds field. */
static bool entries_have(const score_store_entries *e, const char *field)
{
    size_t lo = 0, hi = e->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->items[mid].field, field);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Redis in one round trip, in this order: the roll calls' compare-and-set, then each student's
 * facts that say something (an explicit one among them) by compare-and-set, and the reads the
 * recompute will need, after those writes: the facts and summary of every student of the batch's
 * roll calls and of its explicit facts, and their classes' roll calls. A student with implied
 * presences only needs no script: the script would drop them unless their field holds a fact
 * already (a correction), which its facts read (or, when its class has no roll call in the batch
 * and it will not be recomputed, an HMGET of the fields) tells; only such a student is applied,
 * and read again, in a second round trip. The outcomes are the script's in every case. */
static bx_status batch_redis(score_service *sv, batch *b, bx_error *err)
{
    score_store_pipe *p = sv->pipe;
    score_store_pipe_clear(p);
    /* Nothing is sent when one of them is wrong (the batch is then taken one by one). */
    bx_status s = score_store_check(b->facts, b->nfacts, b->reports, b->nreports, err);
    IFOK(s, tables_build(sv, b, err));
    for (size_t i = 0; i < b->nreports && s == BX_OK;) {
        size_t j = i;
        while (j < b->nreports && strcmp(b->reports[j].class_id, b->reports[i].class_id) == 0)
            j++;
        s = score_store_pipe_apply_reports(p, b->reports + i, j - i, b->routcomes + i, err);
        i = j;
    }
    score_store_pipe_barrier(p);
    for (size_t i = 0; i < b->ncands && s == BX_OK; i++) {
        cand *c = &b->cands[i];
        if (c->nfacts == 0)
            continue;
        if (c->explicit_fact) {
            s = score_store_pipe_apply_facts(p, b->facts + c->first, c->nfacts,
                                             b->outcomes + c->first, err);
            continue;
        }
        kclass *k = c->reg && c->reg->klass ? class_find(b, c->reg->klass->id) : NULL;
        if (k && k->reported_here)
            continue; /* its facts are read below, and tell */
        for (size_t f = 0; f < c->nfacts; f++)
            b->fields[c->first + f] = b->facts[c->first + f].field;
        s = score_store_pipe_has_fields(p, c->id, b->fields + c->first, c->nfacts,
                                        b->present + c->first, err);
    }
    for (size_t i = 0; i < b->ncands && s == BX_OK; i++) {
        cand *c = &b->cands[i];
        kclass *k = c->reg && c->reg->klass ? class_find(b, c->reg->klass->id) : NULL;
        if (c->explicit_fact || (k && k->reported_here))
            s = queue_loads(b, p, c, err);
    }
    IFOK(s, score_store_pipe_run(sv->store, p, NULL, err));
    /* The implied presences: dropped, as the script would, unless their field is held. */
    score_store_pipe_clear(p);
    for (size_t i = 0; i < b->ncands && s == BX_OK; i++) {
        cand *c = &b->cands[i];
        if (c->nfacts == 0 || c->explicit_fact)
            continue;
        bool held = false;
        for (size_t f = 0; f < c->nfacts; f++) {
            size_t x = c->first + f;
            if (c->loaded)
                b->present[x] = entries_have(&c->facts, b->facts[x].field);
            held |= b->present[x];
        }
        if (!held) {
            for (size_t f = 0; f < c->nfacts; f++)
                b->outcomes[c->first + f] = SCORE_STORE_IMPLIED;
            continue;
        }
        b->corrections++;
        s = score_store_pipe_apply_facts(p, b->facts + c->first, c->nfacts, b->outcomes + c->first,
                                         err);
        if (c->loaded) { /* read again, after the write */
            score_store_entries_free(&c->facts);
            score_store_entries_free(&c->sum);
            c->loaded = false;
        }
        IFOK(s, queue_loads(b, p, c, err));
    }
    if (s == BX_OK && score_store_pipe_count(p) > 0)
        s = score_store_pipe_run(sv->store, p, NULL, err);
    for (size_t i = 0; i < b->nfacts && s == BX_OK; i++)
        b->stored += b->outcomes[i] == SCORE_STORE_STORED;
    for (size_t i = 0; i < b->nreports && s == BX_OK; i++)
        b->rstored += b->routcomes[i] == SCORE_STORE_STORED;
    return s;
}

/* The durable record in PostgreSQL of what Redis decided (batch_redis), on db, before any offset
 * is stored. */
static bx_status batch_pg(PGconn *db, batch *b, bx_error *err)
{
    if (b->nfacts == 0 && b->nreports == 0)
        return BX_OK;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    if (b->nfacts)
        IFOK(s, score_store_pg_write_facts(db, b->facts, b->outcomes, b->nfacts, NULL, err));
    if (b->nreports)
        IFOK(s, score_store_pg_write_reports(db, b->reports, b->nreports, NULL, err));
    /* A late fact of a day already aggregated marks it, in the fact's own transaction. */
    IFOK(s, score_daily_mark(db, b->facts, b->nfacts, b->reports, b->nreports,
                             bx_time_local_date(bx_clock_now()), err));
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(db);
    return s;
}

/* Redis first (it decides), then the durable record in PostgreSQL, before any offset is stored. */
static bx_status batch_store(score_service *sv, batch *b, bx_error *err)
{
    if (b->nfacts == 0 && b->nreports == 0)
        return BX_OK;
    bx_status s = batch_redis(sv, b, err);
    IFOK(s, batch_pg(sv->db, b, err));
    return s;
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
                /* The tables borrowed from the registry that was: made again, read again. */
                IFOK(s, tables_build(sv, b, err));
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

/* Recomputes n students of the batch (RECOMPUTE_CHUNK at most) from what the batch read, queues
 * what should be published and keeps the summaries that changed, for batch_recompute to store. */
static bx_status recompute_and_publish(score_service *sv, batch *b, const char *const *ids,
                                       size_t n, bx_error *err)
{
    score_env env = {sv->conf.policy, sv->registry, sv->profiles, sv->store};
    bx_date as_of = bx_time_local_date(bx_clock_now());
    score_outcome *out = sv->out;
    static const score_store_entries none = {0};
    for (size_t i = 0; i < n; i++) {
        const cand *c = cand_find(b, ids[i]);
        const kclass *k = c && c->reg && c->reg->klass ? class_find(b, c->reg->klass->id) : NULL;
        sv->facts[i] = c ? c->facts : none;
        sv->sums[i] = c ? c->sum : none;
        sv->reported[i] = k && k->loaded ? &k->reported : NULL;
    }
    bx_status s = score_recompute_loaded(&env, ids, n, sv->facts, sv->sums, sv->reported, as_of,
                                         true, out, err);
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

/* Reads what the recompute of the affected students needs and the batch's pipeline did not read
 * (a student whose roll call or class the registry did not know then, say): one round trip, and
 * none when there is nothing left. */
static bx_status batch_loads(score_service *sv, batch *b, bx_error *err)
{
    score_store_pipe *p = sv->pipe;
    score_store_pipe_clear(p);
    bx_status s = BX_OK;
    for (size_t i = 0; i < b->nids && s == BX_OK; i++) {
        cand *c = cand_find(b, b->ids[i]);
        if (c == NULL)
            return BX_ERR(err, BX_EINVAL, "batch: student %s affected but not a candidate",
                          b->ids[i]);
        s = queue_loads(b, p, c, err);
    }
    if (s == BX_OK && score_store_pipe_count(p) > 0)
        s = score_store_pipe_run(sv->store, p, NULL, err);
    return s;
}

/* Every affected student recomputed and its assessment queued, chunk by chunk; then one wait for
 * the broker, and only then the summaries that changed stored (so a crash before the store
 * publishes again, with the same event ids). */
static bx_status batch_recompute(score_service *sv, batch *b, score_store_redis *store,
                                 bx_error *err)
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
    IFOK(s, score_store_put_summaries(store, sums, b->nsums, NULL, err));
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
    IFOK(s, batch_loads(sv, &b, err));
    IFOK(s, batch_recompute(sv, &b, sv->store, err));
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

/* One step bx_retry_run tries for the service (a batch, or a flight's first stage): attempt
 * runs only while Redis and PostgreSQL are connected; the service's health and its failures
 * metric follow each try, and a failed try reconnects what broke. */
typedef struct service_try {
    score_service *sv;
    bx_status (*attempt)(score_service *sv, void *arg, bx_error *err);
    void *arg;
} service_try;

static bx_status try_step(void *arg, bx_error *err)
{
    service_try *t = arg;
    bx_status s = BX_OK;
    if (t->sv->store == NULL)
        s = BX_ERR(err, BX_ETRANSIENT, "redis: not connected");
    else if (t->sv->db == NULL)
        s = BX_ERR(err, BX_ETRANSIENT, "postgresql: not connected");
    else
        s = t->attempt(t->sv, t->arg, err);
    atomic_store(&t->sv->healthy, s == BX_OK);
    if (s != BX_OK)
        bx_metric_add(&m_failures, 1);
    return s;
}

/* bx_retry_ops.recover: reconnects to Redis and PostgreSQL where the connection broke. */
static void recover_connections(void *arg)
{
    score_service *sv = ((service_try *)arg)->sv;
    bx_error err = {0};
    if ((sv->redis == NULL || sv->store == NULL || bx_redis_broken(sv->redis)) &&
        connect_redis(sv, &err) != BX_OK)
        bx_log_warn("cannot reconnect to Redis: %s", err.msg);
    if (connect_pg(sv, &err) != BX_OK)
        bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
}

static bx_retry_verdict retry_step(score_service *sv,
                                   bx_status (*attempt)(score_service *, void *, bx_error *),
                                   void *arg, const char *what, bx_error *err)
{
    service_try t = {sv, attempt, arg};
    bx_retry_ops ops = {.attempt = try_step,
                        .recover = recover_connections,
                        .running = sv->conf.running,
                        .min_ms = 200,
                        .max_ms = 5000,
                        .what = what};
    return bx_retry_run(&ops, &t, err);
}

/* What a batch's try processes: n items from items on. */
typedef struct batch_try {
    item *items;
    size_t n;
} batch_try;

static bx_status try_batch(score_service *sv, void *arg, bx_error *err)
{
    batch_try *t = arg;
    return process(sv, t->items, t->n, err);
}

static bx_retry_verdict run_batch(score_service *sv, item *items, size_t n, const char *what,
                                  bx_error *err)
{
    batch_try t = {items, n};
    return retry_step(sv, try_batch, &t, what, err);
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

/* ---- the loop body ----
 *
 * A batch goes through two stages: this thread polls it, stages it and makes its Redis writes
 * with the reads its recompute needs (flight_prepare); the worker thread writes its PostgreSQL
 * record (on a connection of its own), recomputes, publishes, waits for the broker and stores the
 * changed summaries (flight_finish). While the worker finishes batch N, this thread polls and
 * prepares batch N+1, so bx-score's computing and PostgreSQL's commit overlap Redis working on
 * the next batch. Offsets are committed here, in order, once a batch is finished (drain). What is
 * kept as it was without the pipeline:
 *   - Each batch's reads follow its own writes, and batch N+1's writes follow batch N's, in Redis
 *     and in PostgreSQL; Redis decides before PostgreSQL records, and both before the offsets (a
 *     crash between them replays the batches from the last offsets: Redis answers CURRENT, so
 *     PostgreSQL gets every fact, as before).
 *   - Batch N+1 may have read a summary before batch N stored it: the worker keeps the summaries
 *     N stored and uses them in place of what N+1 read for those students, which is what N+1
 *     would have read after N, so its triggers and its summaries are the same as one at a time.
 *   - A batch the worker fails is done again here, whole (every write is idempotent), with
 *     retries as before, and the batch prepared meanwhile is dropped and done again after it.
 *   - The registry is reloaded only while the worker holds no batch (quiesce). */

typedef struct flight {
    rd_kafka_message_t **msgs;
    item *items;
    size_t n;
    batch b;
    bool prepared;
    bool overlapped; /* prepared while the batch before it was in the worker's hands */
    bx_status result;
    bx_error err;
} flight;

static bool flights_new(score_service *sv)
{
    sv->flights = calloc(2, sizeof(*sv->flights));
    bool ok = sv->flights != NULL;
    for (int i = 0; i < 2 && ok; i++) {
        flight *f = &sv->flights[i];
        f->msgs = calloc((size_t)sv->conf.batch_max, sizeof(*f->msgs));
        f->items = calloc((size_t)sv->conf.batch_max, sizeof(*f->items));
        ok = f->msgs && f->items;
    }
    return ok;
}

static void flights_free(score_service *sv)
{
    for (int i = 0; sv->flights && i < 2; i++) {
        free(sv->flights[i].msgs);
        free(sv->flights[i].items);
    }
    free(sv->flights);
    sv->flights = NULL;
}

/* Polls up to batch_max messages into msgs: waits up to 100 ms for the first, then batch_ms for
 * the rest, unless none comes for batch_gap_ms. Returns how many. */
static size_t poll_batch(score_service *sv, rd_kafka_message_t **msgs)
{
    int n = bx_consumer_poll_batch(sv->consumer, msgs, sv->conf.batch_max, 100, sv->conf.batch_ms,
                                   sv->conf.batch_gap_ms, NULL);
    return (size_t)n;
}

/* Drops what a prepared batch holds (its dead letters acknowledged first: their slots are its). */
static void flight_unprepare(flight *f)
{
    if (!f->prepared)
        return;
    bx_error e = {0};
    if (f->b.w)
        (void)settle_deliveries(BX_OK, f->b.w, f->b.dlq, f->b.sent, "dead letters", &e);
    batch_free(&f->b);
    f->prepared = false;
}

/* The first stage of a batch: staged, written, its affected students read; a failed try leaves
 * the flight unprepared. */
static bx_status prepare_try(score_service *sv, void *arg, bx_error *err)
{
    flight *f = arg;
    f->prepared = true;
    bx_status s = batch_init(&f->b, f->items, f->n, err);
    IFOK(s, batch_stage(sv, &f->b, err));
    if (s == BX_OK && (f->b.nfacts || f->b.nreports))
        s = batch_redis(sv, &f->b, err); /* its PostgreSQL record is the worker's */
    IFOK(s, batch_students(sv, &f->b, err));
    IFOK(s, batch_loads(sv, &f->b, err));
    if (s != BX_OK)
        flight_unprepare(f);
    return s;
}

static bx_retry_verdict flight_prepare(score_service *sv, flight *f, bx_error *err)
{
    char what[64];
    snprintf(what, sizeof(what), "batch of %zu messages", f->n);
    flight_unprepare(f);
    return retry_step(sv, prepare_try, f, what, err);
}

static int compare_prev(const void *a, const void *b)
{
    return strcmp(((const prev_sum *)a)->id, ((const prev_sum *)b)->id);
}

/* The summaries of a finished batch, kept for the next one (sorted by student id). */
static void keep_prev(score_service *sv, batch *b)
{
    forget_prev(sv);
    sv->prev_text = b->sums;
    bx_buf_init(&b->sums, 0);
    sv->prev = calloc(b->nsums + 1, sizeof(*sv->prev));
    if (sv->prev == NULL) { /* nothing to patch the next batch with: it reads what is stored */
        bx_log_warn("out of memory keeping a batch's summaries");
        forget_prev(sv);
    }
    for (size_t i = 0; sv->prev && i < b->nsums; i++) {
        const char *id = sv->prev_text.data + b->sumsat[2 * i];
        sv->prev[i] = (prev_sum){id, id + strlen(id) + 1, b->sumsat[2 * i + 1]};
    }
    sv->nprev = sv->prev ? b->nsums : 0;
    if (sv->nprev > 1)
        qsort(sv->prev, sv->nprev, sizeof(*sv->prev), compare_prev);
}

static void forget_prev(score_service *sv)
{
    bx_buf_free(&sv->prev_text);
    bx_buf_init(&sv->prev_text, 0);
    free(sv->prev);
    sv->prev = NULL;
    sv->nprev = 0;
}

static int compare_entry_field(const void *a, const void *b)
{
    return strcmp(((const score_store_entry *)a)->field, ((const score_store_entry *)b)->field);
}

/* The previous batch's summary of id in place of what this batch read (a copy: count pairs of
 * NUL-terminated name and value at p). */
static bx_status patch_sum(cand *c, const char *p, size_t count, bx_error *err)
{
    const char *start = p;
    for (size_t f = 0; f < 2 * count; f++)
        p += strlen(p) + 1;
    score_store_entries e = {calloc(count + 1, sizeof(score_store_entry)), count,
                             malloc((size_t)(p - start) + 1)};
    if (e.items == NULL || e.text == NULL) {
        score_store_entries_free(&e);
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    }
    memcpy(e.text, start, (size_t)(p - start));
    const char *q = e.text;
    for (size_t f = 0; f < count; f++) {
        e.items[f].field = q;
        q += strlen(q) + 1;
        e.items[f].order_key = "";
        e.items[f].value = q;
        q += strlen(q) + 1;
    }
    qsort(e.items, count, sizeof(e.items[0]), compare_entry_field);
    score_store_entries_free(&c->sum);
    c->sum = e;
    return BX_OK;
}

static bx_status apply_prev(score_service *sv, batch *b, bx_error *err)
{
    bx_status s = BX_OK;
    for (size_t i = 0; i < sv->nprev && s == BX_OK; i++) {
        cand *c = cand_find(b, sv->prev[i].id);
        if (c && c->loaded)
            s = patch_sum(c, sv->prev[i].pairs, sv->prev[i].count, err);
    }
    return s;
}

/* The second stage, on the worker: recompute, publish, store the summaries, dead letters. */
static bx_status flight_finish(score_service *sv, flight *f, bx_error *err)
{
    batch *b = &f->b;
    bx_status s = BX_OK;
    if (sv->wstore == NULL || sv->wredis == NULL || bx_redis_broken(sv->wredis)) {
        score_store_redis_free(sv->wstore);
        sv->wstore = NULL;
        bx_redis_close(sv->wredis);
        sv->wredis = NULL;
        s = bx_redis_open(sv->conf.redis_url, 2000, &sv->wredis, err);
        IFOK(s, score_store_redis_open(sv->wredis, &sv->wstore, err));
    }
    /* The durable record first, on the worker's own connection, while this thread's Redis works
     * on the next batch; offsets are committed only after the whole of this. */
    if (s == BX_OK && (b->nfacts || b->nreports)) {
        s = bx_pg_reconnect(&sv->wdb, sv->conf.pg_url, 2000, err);
        IFOK(s, batch_pg(sv->wdb, b, err));
    }
    if (s == BX_OK && f->overlapped)
        s = apply_prev(sv, b, err);
    IFOK(s, batch_recompute(sv, b, sv->wstore, err));
    if (b->w)
        s = settle_deliveries(s, b->w, b->dlq, b->sent, "dead letters", err);
    if (s == BX_OK) {
        bx_metric_add(&m_facts, (long long)(b->nfacts + b->nreports));
        bx_metric_add(&m_changed, (long long)(b->stored + b->rstored));
        bx_metric_add(&m_dlq, (long long)b->sent);
        bx_metric_add(&m_assessments, (long long)b->npublished);
        bx_log_debug("batch: %zu messages, %zu facts (%zu changed, %zu corrections), %zu roll "
                     "calls, %zu students, %zu summaries changed, %zu dead letters",
                     f->n, b->nfacts, b->stored, b->corrections, b->nreports, b->nids, b->nsums,
                     b->sent);
        keep_prev(sv, b);
    } else {
        forget_prev(sv);
    }
    batch_free(b);
    f->prepared = false;
    return s;
}

static void *worker_main(void *arg)
{
    score_service *sv = arg;
    pthread_mutex_lock(&sv->lock);
    for (;;) {
        while (sv->todo == NULL && !sv->quit)
            pthread_cond_wait(&sv->cond, &sv->lock);
        if (sv->todo == NULL)
            break;
        flight *f = sv->todo;
        pthread_mutex_unlock(&sv->lock);
        bx_error err = {0};
        bx_status s = flight_finish(sv, f, &err);
        pthread_mutex_lock(&sv->lock);
        f->result = s;
        f->err = err;
        sv->todo = NULL;
        pthread_cond_broadcast(&sv->cond);
    }
    pthread_mutex_unlock(&sv->lock);
    return NULL;
}

/* Marks the first done messages processed, commits, and lets all n go. */
static void flight_commit(score_service *sv, flight *f, size_t done)
{
    for (size_t i = 0; i < done; i++)
        bx_consumer_done(sv->consumer, f->msgs[i]);
    if (done > 0 && bx_consumer_commit(sv->consumer) != BX_OK)
        bx_log_warn("offset commit failed; the next commit carries them");
    for (size_t i = 0; i < f->n; i++) {
        rd_kafka_message_destroy(f->msgs[i]);
        f->msgs[i] = NULL;
    }
    f->n = 0;
}

/* Waits for the batch in the worker's hands and commits it; one the worker failed is done again
 * here, whole. False when it was done again (what was prepared meanwhile read too early). */
static bool drain(score_service *sv)
{
    flight *f = sv->inflight;
    if (f == NULL)
        return true;
    quiesce(sv);
    sv->inflight = NULL;
    size_t done = f->n;
    bool ok = f->result == BX_OK;
    atomic_store(&sv->healthy, ok);
    if (!ok) {
        bx_metric_add(&m_failures, 1);
        bx_log_warn("batch of %zu messages failed (%s): done again", f->n, f->err.msg);
        done = handle_items(sv, f->items, f->n);
    }
    flight_commit(sv, f, done);
    return ok;
}

void score_service_step(score_service *sv)
{
    flight *f = &sv->flights[sv->cur];
    f->n = poll_batch(sv, f->msgs);
    sv->idle = f->n == 0;
    if (f->n == 0) {
        drain(sv);
        bx_consumer_recover(sv->consumer); /* no message held now */
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        f->items[i].msg = f->msgs[i];
        score_message_decode(f->msgs[i]->payload, f->msgs[i]->len, &f->items[i].m);
    }
    f->overlapped = sv->inflight != NULL;
    bx_error err = {0};
    bx_retry_verdict v = flight_prepare(sv, f, &err);
    bool before_ok = drain(sv);
    if (v == BX_RETRY_DONE && before_ok && f->prepared) {
        pthread_mutex_lock(&sv->lock);
        sv->todo = f;
        pthread_cond_broadcast(&sv->cond);
        pthread_mutex_unlock(&sv->lock);
        sv->inflight = f;
        sv->cur ^= 1;
        return;
    }
    flight_unprepare(f);
    if (v == BX_RETRY_STOPPED && !*sv->conf.running) {
        flight_commit(sv, f, 0);
        return;
    }
    /* As before the pipeline: the batch whole with retries, else each message alone. */
    forget_prev(sv);
    flight_commit(sv, f, handle_items(sv, f->items, f->n));
}
