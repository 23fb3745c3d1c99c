/* service: bx-score's batches: parse, apply to Redis and PostgreSQL, recompute, publish, commit. */
#include "service.h"
#include "analytics.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_registry.h"
#include "messages.h"
#include "recompute.h"
#include "store.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    redisContext *redis;
    score_store_redis *store;
    bx_registry *registry;
    score_profiles *profiles;
    atomic_bool healthy;
    rd_kafka_message_t **msgs;
    item *items;
};

/* ---- connections ---- */

static bx_status connect_redis(score_service *sv, bx_error *err)
{
    score_store_redis_free(sv->store);
    sv->store = NULL;
    if (sv->redis)
        redisFree(sv->redis);
    sv->redis = NULL;
    bx_status s = bx_redis_connect(sv->conf.redis_url, 10000, &sv->redis, err);
    IFOK(s, score_store_redis_new(sv->redis, &sv->store, err));
    return s;
}

static bx_status connect_pg(score_service *sv, bx_error *err)
{
    if (sv->db)
        PQfinish(sv->db);
    sv->db = NULL;
    return bx_pg_connect(sv->conf.pg_url, 10000, &sv->db, err);
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
    bx_info("registry revision %lld loaded: %zu students", bx_registry_loaded_revision(r),
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
    bx_metric_register(&m_failures);
    sv->msgs = calloc((size_t)conf->batch_max, sizeof(*sv->msgs));
    sv->items = calloc((size_t)conf->batch_max, sizeof(*sv->items));
    bx_status s = sv->msgs && sv->items ? BX_OK : BX_ERR(err, BX_ENOMEM, "service: out of memory");
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
    bx_info("consuming %s as group %s", conf->topic, conf->group);
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
    if (sv->redis)
        redisFree(sv->redis);
    if (sv->db)
        PQfinish(sv->db);
    score_profiles_free(sv->profiles);
    bx_registry_free(sv->registry);
    free(sv->msgs);
    free(sv->items);
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

void score_service_tick(score_service *sv)
{
    bx_error err = {0};
    if (refresh_registry(sv, NULL, &err) != BX_OK) {
        bx_warn("registry refresh failed: %s", err.msg);
        if (bx_pg_is_broken(sv->db) && connect_pg(sv, &err) != BX_OK)
            bx_warn("cannot reconnect to PostgreSQL: %s", err.msg);
    }
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

static bx_status send_dead_letter(score_service *sv, const item *it, bx_delivery_slot *slot,
                                  bx_delivery_wait *w, bx_error *err)
{
    const rd_kafka_message_t *msg = it->msg;
    char at[40];
    bx_time_format(bx_clock_now(), at, sizeof(at));
    bx_buf b;
    bx_buf_init(&b, 4 * DLQ_RECORD_MAX);
    bx_status s = bx_buf_printf(&b,
                                "{\"schema\":\"bx.dlq.v1\",\"event_id\":\"dlq:bx-score:%d:%lld\","
                                "\"source\":\"bx-score\",\"endpoint\":",
                                (int)msg->partition, (long long)msg->offset);
    IFOK(s, bx_buf_json_string(&b, sv->conf.topic));
    IFOK(s, bx_buf_puts(&b, ",\"school_id\":null,\"record_index\":null,\"line\":null,"
                            "\"field\":null,\"reason\":"));
    IFOK(s, bx_buf_json_string(&b, it->m.json_ok ? "invalid_value" : "malformed"));
    IFOK(s, bx_buf_puts(&b, ",\"error\":"));
    IFOK(s, bx_buf_json_string(&b, it->m.error));
    IFOK(s, bx_buf_puts(&b, ",\"record\":"));
    if (it->m.json_ok) {
        IFOK(s, bx_buf_append(&b, msg->payload, msg->len));
    } else if (msg->payload && msg->len <= DLQ_RECORD_MAX &&
               bx_utf8_valid(msg->payload, msg->len)) {
        char *text = strndup(msg->payload, msg->len);
        s = text ? bx_buf_json_string(&b, text) : BX_ENOMEM;
        free(text);
    } else {
        IFOK(s, bx_buf_puts(&b, "null"));
    }
    IFOK(s, bx_buf_printf(&b, ",\"received_at\":\"%s\"}", at));
    if (s != BX_OK) {
        bx_buf_free(&b);
        return BX_ERR(err, s, "cannot build a dead letter");
    }
    s = send_counted(sv, BX_TOPIC_DLQ, "unknown", b.data, b.len, slot, w, err);
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

/* The students whose state a batch may change: every fact's and leave's student, and every
 * student of a class whose roll call arrived (an implied presence makes their day present).
 * Sorted, unique; the strings are borrowed from items and the registry. */
static bx_status affected_students(score_service *sv, const item *items, size_t n,
                                   const char ***out, size_t *count, bx_error *err)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].m.kind == SCORE_MESSAGE_FACT || items[i].m.kind == SCORE_MESSAGE_LEAVE)
            cap++;
        else if (items[i].m.kind == SCORE_MESSAGE_REPORT) {
            const bx_reg_class *k = bx_registry_class(sv->registry, items[i].m.klass);
            cap += k ? (size_t)k->student_count : 0;
        }
    }
    const char **ids = calloc(cap ? cap : 1, sizeof(*ids));
    if (ids == NULL)
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].m.kind == SCORE_MESSAGE_FACT || items[i].m.kind == SCORE_MESSAGE_LEAVE) {
            ids[k++] = items[i].m.student;
        } else if (items[i].m.kind == SCORE_MESSAGE_REPORT) {
            const bx_reg_class *c = bx_registry_class(sv->registry, items[i].m.klass);
            for (int j = 0; c && j < c->student_count && k < cap; j++)
                ids[k++] = c->students[j]->id;
        }
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

/* Recomputes students, publishes what should be published, waits for the broker, then stores
 * the summaries (so a crash before the store publishes again, with the same event ids). */
static bx_status recompute_and_publish(score_service *sv, const char *const *ids, size_t n,
                                       score_outcome *out, bx_delivery_wait *w, bx_error *err)
{
    score_env env = {sv->conf.policy, sv->registry, sv->profiles, sv->store};
    bx_date as_of = bx_time_local_date(bx_clock_now());
    bx_status s = score_recompute(&env, ids, n, as_of, out, err);
    if (s != BX_OK)
        return s;
    bx_delivery_slot *slots = calloc(2 * n + 1, sizeof(*slots));
    if (slots == NULL)
        return BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    bx_time_ms now = bx_clock_now();
    size_t sent = 0, published = 0;
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        if (out[i].student == NULL) {
            if (out[i].has_facts)
                bx_warn("student %s is not in the registry: facts kept, nothing computed",
                        out[i].student_id);
            continue;
        }
        if (out[i].trigger == SCORE_TRIGGER_NONE)
            continue;
        bx_buf_reset(&b);
        s = score_risk_message(&out[i], now, &b);
        IFOK(s, send_counted(sv, BX_TOPIC_RISK, out[i].student_id, b.data, b.len, &slots[sent++], w,
                             err));
        char subject[SCORE_PSEUDONYM_SIZE];
        score_pseudonym(sv->conf.pseudonym_key, out[i].student_id, subject);
        bx_buf_reset(&b);
        IFOK(s, score_analytics_message(&out[i], sv->conf.pseudonym_key, now, &b));
        IFOK(s, send_counted(sv, BX_TOPIC_ANALYTICS_RISK, subject, b.data, b.len, &slots[sent++], w,
                             err));
        if (s == BX_OK) {
            published++;
            bx_info("student %s: %s, streak %d, tier %s", out[i].student_id,
                    score_trigger_name(out[i].trigger), out[i].summary.streak_days,
                    score_tier_name(out[i].assessment.tier));
        }
    }
    bx_buf_free(&b);
    if (s == BX_OK && bx_delivery_wait_all(w, DELIVERY_MS) != BX_OK)
        s = BX_ERR(err, BX_ETIMEOUT, "assessments not acknowledged in %d ms", DELIVERY_MS);
    for (size_t i = 0; i < sent && s == BX_OK; i++)
        if (slots[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
            s = BX_ERR(err, BX_EIO, "an assessment was not delivered: %s",
                       rd_kafka_err2str(slots[i].err));
    if (s != BX_OK) {
        /* Slots must outlive their callbacks: wait for the stragglers before freeing. */
        if (bx_delivery_wait_all(w, DELIVERY_MS) != BX_OK)
            bx_error("deliveries still outstanding after a failure");
    }
    free(slots);
    IFOK(s, score_recompute_store(&env, out, n, err));
    if (s == BX_OK)
        bx_metric_add(&m_assessments, (long long)published);
    return s;
}

static bx_status process(score_service *sv, item *items, size_t n, bx_error *err)
{
    size_t nfacts = 0, nreports = 0, nbad = 0;
    for (size_t i = 0; i < n; i++) {
        nfacts += items[i].m.kind == SCORE_MESSAGE_FACT || items[i].m.kind == SCORE_MESSAGE_LEAVE;
        nreports += items[i].m.kind == SCORE_MESSAGE_REPORT;
        nbad += items[i].m.kind == SCORE_MESSAGE_BAD;
    }
    bx_delivery_wait *w = bx_delivery_wait_new();
    score_store_fact *facts = calloc(nfacts + 1, sizeof(*facts));
    score_store_outcome *outcomes = calloc(nfacts + 1, sizeof(*outcomes));
    score_store_report *reports = calloc(nreports + 1, sizeof(*reports));
    bx_delivery_slot *dlq = calloc(nbad + 1, sizeof(*dlq));
    score_outcome *out = calloc(RECOMPUTE_CHUNK, sizeof(*out));
    const char **ids = NULL;
    size_t nids = 0, stored = 0, rstored = 0, sent = 0;
    bx_status s = BX_OK;
    if (w == NULL || facts == NULL || outcomes == NULL || reports == NULL || dlq == NULL ||
        out == NULL)
        s = BX_ERR(err, BX_ENOMEM, "batch: out of memory");
    size_t f = 0, r = 0;
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        const item *it = &items[i];
        if (it->m.kind == SCORE_MESSAGE_FACT || it->m.kind == SCORE_MESSAGE_LEAVE)
            facts[f++] =
                (score_store_fact){it->m.student,   it->m.school, it->m.klass,  it->m.field,
                                   it->m.order_key, it->m.value,  it->m.implied};
        else if (it->m.kind == SCORE_MESSAGE_REPORT)
            reports[r++] = (score_store_report){it->m.klass, it->m.school, it->m.field,
                                                it->m.order_key, it->m.value};
        else {
            bx_warn("%s [%d] offset %lld: dead-lettered: %s", sv->conf.topic,
                    (int)it->msg->partition, (long long)it->msg->offset, it->m.error);
            s = send_dead_letter(sv, it, &dlq[sent++], w, err);
        }
    }
    /* One script call per student: facts of one student side by side. */
    if (s == BX_OK && nfacts > 1)
        qsort(facts, nfacts, sizeof(*facts), compare_fact_student);
    if (s == BX_OK && nfacts)
        s = score_store_apply_facts(sv->store, facts, nfacts, outcomes, &stored, err);
    if (s == BX_OK && nreports)
        s = score_store_apply_reports(sv->store, reports, nreports, NULL, &rstored, err);
    /* The durable record, before any offset is stored. */
    if (s == BX_OK && (nfacts || nreports)) {
        s = bx_pg_exec(sv->db, "BEGIN", err);
        if (nfacts)
            IFOK(s, score_store_pg_write_facts(sv->db, facts, outcomes, nfacts, NULL, err));
        if (nreports)
            IFOK(s, score_store_pg_write_reports(sv->db, reports, nreports, NULL, err));
        IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
        if (s != BX_OK)
            bx_pg_rollback(sv->db);
    }
    IFOK(s, affected_students(sv, items, n, &ids, &nids, err));
    /* A student the registry does not know yet: the registry may have changed since the last
     * refresh. */
    for (size_t i = 0; i < nids && s == BX_OK; i++) {
        if (bx_registry_student(sv->registry, ids[i]) == NULL) {
            bool reloaded = false;
            s = refresh_registry(sv, &reloaded, err);
            if (s == BX_OK && reloaded) {
                free(ids);
                ids = NULL;
                s = affected_students(sv, items, n, &ids, &nids, err);
            }
            break;
        }
    }
    for (size_t i = 0; i < nids && s == BX_OK; i += RECOMPUTE_CHUNK) {
        size_t k = nids - i < RECOMPUTE_CHUNK ? nids - i : RECOMPUTE_CHUNK;
        s = recompute_and_publish(sv, ids + i, k, out, w, err);
    }
    if (w && bx_delivery_wait_all(w, DELIVERY_MS) != BX_OK && s == BX_OK)
        s = BX_ERR(err, BX_ETIMEOUT, "dead letters not acknowledged in %d ms", DELIVERY_MS);
    for (size_t i = 0; i < sent && s == BX_OK; i++)
        if (dlq[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
            s = BX_ERR(err, BX_EIO, "a dead letter was not delivered: %s",
                       rd_kafka_err2str(dlq[i].err));
    if (s == BX_OK) {
        bx_metric_add(&m_facts, (long long)(nfacts + nreports));
        bx_metric_add(&m_changed, (long long)(stored + rstored));
        bx_metric_add(&m_dlq, (long long)sent);
        bx_debug("batch: %zu messages, %zu facts (%zu changed), %zu roll calls, %zu students, "
                 "%zu dead letters",
                 n, nfacts, stored, nreports, nids, sent);
    }
    free(ids);
    free(facts);
    free(outcomes);
    free(reports);
    free(dlq);
    free(out);
    bx_delivery_wait_free(w);
    return s;
}

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void score_service_step(score_service *sv)
{
    size_t n = 0;
    long long first = 0;
    while (n < (size_t)sv->conf.batch_max) {
        int timeout = 100;
        if (n > 0) {
            long long left = sv->conf.batch_ms - (monotonic_ms() - first);
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        rd_kafka_message_t *msg = bx_consumer_poll(sv->consumer, timeout);
        if (msg == NULL) {
            if (n == 0)
                return;
            continue;
        }
        if (msg->err) {
            bx_warn("consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (n == 0)
            first = monotonic_ms();
        sv->msgs[n++] = msg;
    }
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        sv->items[i].msg = sv->msgs[i];
        score_message_decode(sv->msgs[i]->payload, sv->msgs[i]->len, &sv->items[i].m);
    }
    int backoff_ms = 200;
    for (;;) {
        bx_error err = {0};
        bx_status s = process(sv, sv->items, n, &err);
        if (s == BX_OK) {
            atomic_store(&sv->healthy, true);
            for (size_t i = 0; i < n; i++)
                bx_consumer_done(sv->consumer, sv->msgs[i]);
            if (bx_consumer_commit(sv->consumer) != BX_OK)
                bx_warn("offset commit failed; the next commit carries them");
            break;
        }
        atomic_store(&sv->healthy, false);
        bx_metric_add(&m_failures, 1);
        bx_error("batch of %zu messages failed (%s); retrying in %d ms", n, err.msg, backoff_ms);
        if (!*sv->conf.running)
            break;
        usleep((useconds_t)backoff_ms * 1000);
        backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
        bx_error cerr = {0};
        if ((sv->redis == NULL || sv->redis->err) && connect_redis(sv, &cerr) != BX_OK)
            bx_warn("cannot reconnect to Redis: %s", cerr.msg);
        if (bx_pg_is_broken(sv->db) && connect_pg(sv, &cerr) != BX_OK)
            bx_warn("cannot reconnect to PostgreSQL: %s", cerr.msg);
        if (!*sv->conf.running)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_destroy(sv->msgs[i]);
        sv->msgs[i] = NULL;
    }
}
