/* bx_kafka: producer with a delivery-report thread, consumer with manual offset storing, topics. */
#include "bx_kafka.h"
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unistd.h>

struct bx_producer {
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_bool running;
};

struct delivery_opaque {
    bx_delivery_fn *done;
    void *opaque;
};

static bx_status set_conf(rd_kafka_conf_t *conf, const char *name, const char *value, bx_error *err)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return BX_ERR(err, BX_EINVAL, "kafka setting %s=%s: %s", name, value, errstr);
    return BX_OK;
}

bx_status bx_kafka_conf_credentials(rd_kafka_conf_t *conf, bx_error *err)
{
    const char *user = getenv("BX_KAFKA_USERNAME");
    if (user == NULL || *user == '\0')
        return BX_OK;
    char *password = NULL;
    bx_status s = bx_conf_secret("BX_KAFKA_PASSWORD", &password, err);
    if (s == BX_OK && password == NULL)
        s = BX_ERR(err, BX_EINVAL,
                   "BX_KAFKA_USERNAME is set without BX_KAFKA_PASSWORD or BX_KAFKA_PASSWORD_FILE");
    const char *protocol = getenv("BX_KAFKA_SECURITY_PROTOCOL");
    const char *mechanism = getenv("BX_KAFKA_SASL_MECHANISM");
    IFOK(s, set_conf(conf, "security.protocol", protocol && *protocol ? protocol : "SASL_PLAINTEXT",
                     err));
    IFOK(s, set_conf(conf, "sasl.mechanisms", mechanism && *mechanism ? mechanism : "SCRAM-SHA-256",
                     err));
    IFOK(s, set_conf(conf, "sasl.username", user, err));
    if (s == BX_OK) {
        char errstr[256];
        if (rd_kafka_conf_set(conf, "sasl.password", password, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK)
            s = BX_ERR(err, BX_EINVAL, "kafka setting sasl.password: %s", errstr);
    }
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    return s;
}

static bx_status set_extra(rd_kafka_conf_t *conf, const char *const *extra, bx_error *err)
{
    bx_status s = BX_OK;
    for (size_t i = 0; extra && extra[i] && s == BX_OK; i += 2)
        s = set_conf(conf, extra[i], extra[i + 1], err);
    return s;
}

/* The settings an operator's tuning may not change: the credentials have settings of their own
 * (BX_KAFKA_USERNAME...), and the rest carry the pipeline's guarantees (never lost, never twice).
 */
static bool tuning_refused(const char *name)
{
    static const char *const prefixes[] = {"sasl.", "security.", "ssl.", NULL};
    static const char *const names[] = {"bootstrap.servers",
                                        "enable.idempotence",
                                        "acks",
                                        "request.required.acks",
                                        "group.id",
                                        "group.instance.id",
                                        "enable.auto.offset.store",
                                        "enable.auto.commit",
                                        "auto.offset.reset",
                                        "isolation.level",
                                        "enable.partition.eof",
                                        NULL};
    for (size_t i = 0; prefixes[i]; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    for (size_t i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

bx_status bx_kafka_conf_tuning(rd_kafka_conf_t *conf, const char *var, bx_error *err)
{
    const char *text = getenv(var);
    if (text == NULL || *text == '\0')
        return BX_OK;
    char *copy = strdup(text);
    if (copy == NULL)
        return BX_ERR(err, BX_ENOMEM, "kafka: out of memory");
    bx_status s = BX_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && s == BX_OK;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item) {
            s = BX_ERR(err, BX_EINVAL, "%s: \"%s\" is not name=value", var, item);
            break;
        }
        *eq = '\0';
        if (tuning_refused(item))
            s = BX_ERR(err, BX_EINVAL,
                       "%s: %s is not a tuning setting (credentials and the delivery guarantees "
                       "are not set here)",
                       var, item);
        else
            s = set_conf(conf, item, eq + 1, err);
    }
    free(copy);
    return s;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3)
        bx_log_error("kafka %s: %s", fac, buf);
    else if (level <= 4)
        bx_log_warn("kafka %s: %s", fac, buf);
    else
        bx_log_debug("kafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)code;
    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[256];
        rd_kafka_resp_err_t cause = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        if (cause == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
            bx_log_error("kafka fatal error: fenced as %s (%s): after the group's coordinator "
                         "moved this is the member's own earlier join, and the consumer is "
                         "replaced; if it repeats, two replicas share the id: give each its own "
                         "BX_KAFKA_REPLICA or BX_KAFKA_INSTANCE_ID",
                         bx_kafka_instance_id(), fatal);
        else
            bx_log_error("kafka fatal error: %s", fatal);
    } else if (e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || e == RD_KAFKA_RESP_ERR__TRANSPORT) {
        bx_log_debug("kafka: %s", reason);
    } else {
        bx_log_warn("kafka error %s: %s", rd_kafka_err2name(e), reason);
    }
}

/* A message's opaque is either a malloc'd delivery_opaque or, for the common bx_delivery_slot_done,
 * the slot itself tagged with the low bit (slots are aligned), which saves an allocation per
 * message. */
#define SLOT_TAG ((uintptr_t)1)

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    uintptr_t tagged = (uintptr_t)msg->_private;
    if (tagged & SLOT_TAG) {
        bx_delivery_slot_done((void *)(tagged & ~SLOT_TAG), msg->err);
        return;
    }
    struct delivery_opaque *d = msg->_private;
    if (d == NULL)
        return;
    d->done(d->opaque, msg->err);
    free(d);
}

static void *producer_poll_main(void *arg)
{
    bx_producer *p = arg;
    while (atomic_load(&p->running))
        rd_kafka_poll(p->rk, 50);
    return NULL;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque);

/* A producer or consumer handle: bootstrap.servers, then settings and extra (name, value pairs,
 * NULL-ended; extra may be NULL), with the log and error callbacks, and the producer's delivery or
 * the consumer's rebalance callback. */
/* A configuration of bootstrap.servers, the environment's credentials, then settings and extra
 * (NULL-ended name, value pairs; either may be NULL), with the log through bx_log. */
static bx_status conf_new(const char *brokers, const char *const *settings,
                          const char *const *extra, rd_kafka_conf_t **out, bx_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bx_status s = set_conf(conf, "bootstrap.servers", brokers, err);
    IFOK(s, bx_kafka_conf_credentials(conf, err));
    IFOK(s, set_extra(conf, settings, err));
    IFOK(s, set_extra(conf, extra, err));
    if (s != BX_OK) {
        rd_kafka_conf_destroy(conf);
        return s;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    *out = conf;
    return BX_OK;
}

/* The handle of conf, which it takes in every case; what names it in an error. */
static bx_status handle_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *what,
                            rd_kafka_t **out, bx_error *err)
{
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return BX_ERR(err, BX_EFATAL, "kafka %s: %s", what, errstr);
    }
    *out = rk; /* rd_kafka_new took ownership of conf */
    return BX_OK;
}

static bx_status new_handle(rd_kafka_type_t type, const char *brokers, const char *const *settings,
                            const char *const *extra, rd_kafka_t **out, bx_error *err)
{
    bool producer = type == RD_KAFKA_PRODUCER;
    rd_kafka_conf_t *conf = NULL;
    bx_status s = conf_new(brokers, settings, extra, &conf, err);
    if (s != BX_OK)
        return s;
    s = bx_kafka_conf_tuning(
        conf, producer ? "BX_KAFKA_PRODUCER_TUNING" : "BX_KAFKA_CONSUMER_TUNING", err);
    if (s != BX_OK) {
        rd_kafka_conf_destroy(conf);
        return s;
    }
    if (producer)
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    else
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    return handle_new(type, conf, producer ? "producer" : "consumer", out, err);
}

bx_status bx_producer_new(const char *brokers, const char *const *extra, bx_producer **out,
                          bx_error *err)
{
    /* linger.ms 5, not 2: fewer and larger produce requests. In bench/e2e's county day, 11
     * alternating rounds: median rate +14 %, p99 -32 %, bx-ingest's CPU per record lower in all
     * (bench/README "Produce requests of 5 ms"); a reply waits up to 3 ms longer. */
    /* clang-format off */
    static const char *const settings[] = {
        "enable.idempotence", "true",
        "acks", "all",
        "linger.ms", "5",
        "compression.type", "lz4",
        "message.timeout.ms", "30000",
        "queue.buffering.max.messages", "1000000",
        NULL};
    /* clang-format on */
    rd_kafka_t *rk = NULL;
    bx_status s = new_handle(RD_KAFKA_PRODUCER, brokers, settings, extra, &rk, err);
    if (s != BX_OK)
        return s;
    bx_producer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rd_kafka_destroy(rk);
        return BX_ERR(err, BX_ENOMEM, "kafka producer: out of memory");
    }
    p->rk = rk;
    atomic_store(&p->running, true);
    if (pthread_create(&p->thread, NULL, producer_poll_main, p) != 0) {
        rd_kafka_destroy(rk);
        free(p);
        return BX_ERR(err, BX_EFATAL, "kafka producer: cannot start poll thread");
    }
    *out = p;
    return BX_OK;
}

void bx_producer_free(bx_producer *p, int timeout_ms)
{
    if (p == NULL)
        return;
    rd_kafka_flush(p->rk, timeout_ms);
    atomic_store(&p->running, false);
    pthread_join(p->thread, NULL);
    /* Deliveries still outstanding fail with _PURGE_QUEUE through dr_msg_cb, so no opaque leaks. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk);
    free(p);
}

void bx_producer_prepare_topics(bx_producer *p, const char *const *topics, int timeout_ms)
{
    for (size_t i = 0; topics && topics[i]; i++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e =
            t ? rd_kafka_metadata(p->rk, 0, t, &md, timeout_ms) : RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err)
            e = md->topics[0].err;
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            bx_log_warn("kafka: no partitions of %s yet: %s", topics[i], rd_kafka_err2str(e));
        if (md)
            rd_kafka_metadata_destroy(md);
        if (t)
            rd_kafka_topic_destroy(t);
    }
}

rd_kafka_t *bx_producer_handle(bx_producer *p)
{
    return p->rk;
}

static bx_status produce(bx_producer *p, const char *topic, const char *key, size_t key_len,
                         void *value, size_t value_len, int flags, bx_delivery_fn *done,
                         void *opaque);

bx_status bx_producer_send(bx_producer *p, const char *topic, const char *key, size_t key_len,
                           const char *value, size_t value_len, bx_delivery_fn *done, void *opaque)
{
    return produce(p, topic, key, key_len, (void *)value, value_len, RD_KAFKA_MSG_F_COPY, done,
                   opaque);
}

bx_status bx_producer_send_owned(bx_producer *p, const char *topic, const char *key, size_t key_len,
                                 char *value, size_t value_len, bx_delivery_fn *done, void *opaque)
{
    return produce(p, topic, key, key_len, value, value_len, RD_KAFKA_MSG_F_FREE, done, opaque);
}

static bx_status produce(bx_producer *p, const char *topic, const char *key, size_t key_len,
                         void *value, size_t value_len, int flags, bx_delivery_fn *done,
                         void *opaque)
{
    void *d = NULL;
    if (done == bx_delivery_slot_done && ((uintptr_t)opaque & SLOT_TAG) == 0) {
        d = (void *)((uintptr_t)opaque | SLOT_TAG);
    } else {
        struct delivery_opaque *o = malloc(sizeof(*o));
        if (o == NULL)
            return BX_ENOMEM;
        o->done = done;
        o->opaque = opaque;
        d = o;
    }
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(flags),
                              RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
                              RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return BX_OK;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt == 500) {
            if (((uintptr_t)d & SLOT_TAG) == 0)
                free(d);
            bx_log_warn("kafka produce to %s failed: %s", topic, rd_kafka_err2str(e));
            return e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? BX_ETRANSIENT : BX_EIO;
        }
        usleep(10000); /* the poll thread drains delivery reports meanwhile */
    }
}

bx_status bx_producer_flush(bx_producer *p, int timeout_ms)
{
    return rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? BX_OK : BX_ETIMEOUT;
}

struct bx_delivery_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long outstanding;
    void (*notify)(void *arg); /* NULL: a blocking wait */
    void *arg;
    bool sealed;
};

bx_delivery_wait *bx_delivery_wait_new(void)
{
    bx_delivery_wait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    bx_cond_init_monotonic(&w->cond);
    return w;
}

bx_delivery_wait *bx_delivery_wait_notify_new(void (*notify)(void *arg), void *arg)
{
    bx_delivery_wait *w = bx_delivery_wait_new();
    if (w) {
        w->notify = notify;
        w->arg = arg;
    }
    return w;
}

void bx_delivery_wait_seal(bx_delivery_wait *w)
{
    pthread_mutex_lock(&w->lock);
    w->sealed = true;
    bool fire = w->notify && w->outstanding == 0;
    void (*notify)(void *) = w->notify;
    void *arg = w->arg;
    pthread_mutex_unlock(&w->lock);
    if (fire)
        notify(arg);
}

void bx_delivery_wait_free(bx_delivery_wait *w)
{
    if (w == NULL)
        return;
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

void bx_delivery_slot_arm(bx_delivery_slot *slot, bx_delivery_wait *w)
{
    slot->wait = w;
    slot->err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    pthread_mutex_lock(&w->lock);
    w->outstanding++;
    pthread_mutex_unlock(&w->lock);
}

void bx_delivery_slot_done(void *opaque, rd_kafka_resp_err_t err)
{
    bx_delivery_slot *slot = opaque;
    bx_delivery_wait *w = slot->wait;
    pthread_mutex_lock(&w->lock);
    slot->err = err;
    bool last = --w->outstanding == 0;
    bool fire = last && w->notify && w->sealed;
    void (*notify)(void *) = w->notify;
    void *arg = w->arg;
    if (last && !w->notify)
        pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (fire)
        notify(arg); /* w may be freed from here on */
}

bx_status bx_delivery_wait_all(bx_delivery_wait *w, int timeout_ms)
{
    struct timespec deadline = bx_monotonic_deadline(timeout_ms);
    bx_status s = BX_OK;
    pthread_mutex_lock(&w->lock);
    while (w->outstanding > 0 && s == BX_OK)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) != 0 && w->outstanding > 0)
            s = BX_ETIMEOUT;
    pthread_mutex_unlock(&w->lock);
    return s;
}

bx_status bx_kafka_replication(int *replication, const char **min_insync, bx_error *err)
{
    *replication = 1;
    *min_insync = NULL;
    const char *rf = getenv("BX_KAFKA_REPLICATION"), *isr = getenv("BX_KAFKA_MIN_INSYNC");
    if (rf && *rf) {
        char *end;
        long v = strtol(rf, &end, 10);
        if (v < 1 || v > 16 || *end)
            return BX_ERR(err, BX_EINVAL, "BX_KAFKA_REPLICATION: \"%.20s\" is not 1 to 16", rf);
        *replication = (int)v;
    }
    if (isr && *isr) {
        char *end;
        long v = strtol(isr, &end, 10);
        if (v < 1 || v > *replication || *end)
            return BX_ERR(err, BX_EINVAL,
                          "BX_KAFKA_MIN_INSYNC: \"%.20s\" is not 1 to the replication (%d)", isr,
                          *replication);
        *min_insync = isr;
    }
    return BX_OK;
}

bx_status bx_kafka_client_new(rd_kafka_type_t type, const char *brokers,
                              const char *const *settings, rd_kafka_t **out, bx_error *err)
{
    rd_kafka_conf_t *conf = NULL;
    bx_status s = conf_new(brokers, settings, NULL, &conf, err);
    if (s != BX_OK)
        return s;
    return handle_new(type, conf, "client", out, err);
}

bx_status bx_kafka_admin_begin(bx_kafka_admin *a, const char *brokers, const char *const *settings,
                               rd_kafka_admin_op_t op, bx_error *err)
{
    *a = (bx_kafka_admin){0};
    bx_status s = bx_kafka_client_new(RD_KAFKA_PRODUCER, brokers, settings, &a->rk, err);
    if (s != BX_OK)
        return s;
    a->opts = rd_kafka_AdminOptions_new(a->rk, op);
    a->q = rd_kafka_queue_new(a->rk);
    if (a->opts == NULL || a->q == NULL)
        return BX_ERR(err, BX_ENOMEM, "kafka admin: out of memory");
    return BX_OK;
}

bx_status bx_kafka_topic_admin_begin(bx_kafka_admin *a, const char *brokers, rd_kafka_admin_op_t op,
                                     bx_error *err)
{
    *a = (bx_kafka_admin){0};
    int replication;
    const char *min_insync;
    bx_status s = bx_kafka_replication(&replication, &min_insync, err);
    if (s != BX_OK)
        return s;
    s = bx_kafka_admin_begin(a, brokers, NULL, op, err);
    a->replication = replication;
    a->min_insync = min_insync;
    return s;
}

bx_status bx_kafka_admin_wait(bx_kafka_admin *a, const char *brokers, int wait_ms, const char *what,
                              bx_error *err)
{
    a->answer = rd_kafka_queue_poll(a->q, wait_ms);
    if (a->answer == NULL)
        return BX_ERR(err, BX_ETIMEOUT, "%s: no answer from %s", what, brokers);
    if (rd_kafka_event_error(a->answer))
        return BX_ERR(err, BX_EIO, "%s: %s", what, rd_kafka_event_error_string(a->answer));
    return BX_OK;
}

void bx_kafka_admin_end(bx_kafka_admin *a)
{
    if (a->answer)
        rd_kafka_event_destroy(a->answer);
    if (a->q)
        rd_kafka_queue_destroy(a->q);
    if (a->opts)
        rd_kafka_AdminOptions_destroy(a->opts);
    if (a->rk)
        rd_kafka_destroy(a->rk);
    *a = (bx_kafka_admin){0};
}

bx_status bx_kafka_create_topics(const char *brokers, const char *const *topics,
                                 const int *partitions, int count, int timeout_ms, bx_error *err)
{
    bx_kafka_admin a;
    bx_status s = bx_kafka_topic_admin_begin(&a, brokers, RD_KAFKA_ADMIN_OP_CREATETOPICS, err);
    rd_kafka_NewTopic_t **nt = calloc((size_t)count, sizeof(*nt));
    if (s == BX_OK && nt == NULL)
        s = BX_ERR(err, BX_ENOMEM, "kafka admin: out of memory");
    char errstr[256];
    for (int i = 0; s == BX_OK && i < count; i++) {
        nt[i] =
            rd_kafka_NewTopic_new(topics[i], partitions[i], a.replication, errstr, sizeof(errstr));
        if (nt[i] && a.min_insync)
            rd_kafka_NewTopic_set_config(nt[i], "min.insync.replicas", a.min_insync);
    }
    if (s == BX_OK) {
        rd_kafka_AdminOptions_set_operation_timeout(a.opts, timeout_ms, errstr, sizeof(errstr));
        rd_kafka_CreateTopics(a.rk, nt, (size_t)count, a.opts, a.q);
        s = bx_kafka_admin_wait(&a, brokers, timeout_ms + 5000, "kafka admin", err);
    }
    if (s == BX_OK) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(a.answer), &n);
        for (size_t i = 0; i < n && s == BX_OK; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                s = BX_ERR(err, BX_EIO, "kafka admin: topic %s: %s",
                           rd_kafka_topic_result_name(res[i]),
                           rd_kafka_topic_result_error_string(res[i]));
        }
    }
    for (int i = 0; nt && i < count; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    bx_kafka_admin_end(&a);
    return s;
}

struct bx_consumer {
    rd_kafka_t *rk;
    bool failed;   /* a fatal error met: the handle is of no further use (bx_consumer_renew) */
    char *brokers; /* what made the handle, to make another */
    char *group;
    char **topics;
    char **extra;
};

/* The membership of this process's consumers (bx_kafka_membership_set). */
static struct {
    char instance_id[250]; /* Kafka's bound on a group.instance.id is 249 characters */
    char session_ms[16], heartbeat_ms[16];
} membership = {"", "10000", "3000"};

bx_status bx_kafka_membership_set(const char *instance_id, int replica, int session_ms,
                                  int heartbeat_ms, bx_error *err)
{
    session_ms = session_ms > 0 ? session_ms : 10000;
    heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 3000;
    if (heartbeat_ms * 3 > session_ms)
        return BX_ERR(err, BX_EINVAL,
                      "BX_KAFKA_HEARTBEAT_MS: %d is not under a third of "
                      "BX_KAFKA_SESSION_TIMEOUT_MS (%d)",
                      heartbeat_ms, session_ms);
    char id[sizeof(membership.instance_id)] = "";
    if (instance_id && strcmp(instance_id, "auto") == 0) {
        char host[128] = "";
        if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
            snprintf(host, sizeof(host), "localhost");
        snprintf(id, sizeof(id), "%s-%d", host, replica);
    } else if (instance_id) {
        if (strlen(instance_id) >= sizeof(id))
            return BX_ERR(err, BX_EINVAL, "BX_KAFKA_INSTANCE_ID: longer than %zu characters",
                          sizeof(id) - 1);
        snprintf(id, sizeof(id), "%s", instance_id);
    }
    /* The broker takes the characters of a topic name only. */
    for (char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    snprintf(membership.instance_id, sizeof(membership.instance_id), "%s", id);
    snprintf(membership.session_ms, sizeof(membership.session_ms), "%d", session_ms);
    snprintf(membership.heartbeat_ms, sizeof(membership.heartbeat_ms), "%d", heartbeat_ms);
    return BX_OK;
}

const char *bx_kafka_instance_id(void)
{
    return membership.instance_id;
}

/* How long a commit is waited for. librdkafka's own synchronous commit has no bound: with no
 * group coordinator it waits until one is found, and a consumer stuck there stops polling, is
 * thrown out of its group and stalls its partitions. A commit not answered in time still goes
 * on in the background, and the next one carries the same offsets. */
#define COMMIT_WAIT_MS 10000

static rd_kafka_resp_err_t commit_bounded(rd_kafka_t *rk, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    if (q == NULL)
        return RD_KAFKA_RESP_ERR__FAIL;
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(rk, NULL, q, NULL, NULL);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
        if (ev == NULL) {
            e = RD_KAFKA_RESP_ERR__TIMED_OUT;
        } else {
            e = rd_kafka_event_error(ev);
            rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_queue_destroy(q);
    return e;
}

/* With the cooperative protocol a rebalance adds or takes only the partitions that change owner
 * (rd_kafka_incremental_assign and _unassign) while the rest go on being consumed; the eager one
 * (a group that still runs another assignor) replaces the whole assignment. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool assigned = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    rd_kafka_error_t *error = NULL;
    /* Commit what was processed before giving the partitions away, so the next owner starts
     * right after it; partitions already lost (our session ended) cannot commit. */
    if (!assigned && !rd_kafka_assignment_lost(rk)) {
        rd_kafka_resp_err_t ce = commit_bounded(rk, COMMIT_WAIT_MS);
        if (ce != RD_KAFKA_RESP_ERR_NO_ERROR && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
            bx_log_warn("kafka: commit before giving partitions away: %s", rd_kafka_err2str(ce));
    }
    bx_log_info("kafka: %s %d partitions%s", assigned ? "assigned" : "revoked", parts->cnt,
                cooperative ? " (incremental)" : "");
    if (cooperative)
        error = assigned ? rd_kafka_incremental_assign(rk, parts)
                         : rd_kafka_incremental_unassign(rk, parts);
    else
        rd_kafka_assign(rk, assigned ? parts : NULL);
    if (error) {
        bx_log_error("kafka: rebalance: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

/* A NULL-terminated copy of a NULL-terminated string list (NULL for none); *ok false when out of
 * memory. */
static char **strv_dup(const char *const *v, bool *ok)
{
    if (v == NULL)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **copy = calloc(n + 1, sizeof(*copy));
    for (size_t i = 0; copy && i < n; i++)
        if ((copy[i] = strdup(v[i])) == NULL)
            *ok = false;
    if (copy == NULL)
        *ok = false;
    return copy;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* A subscribed consumer handle of c's settings and this process's membership. */
static bx_status consumer_handle(const bx_consumer *c, rd_kafka_t **out, bx_error *err)
{
    /* clang-format off */
    const char *const settings[] = {
        "group.id", c->group,
        "enable.auto.offset.store", "false",
        "enable.auto.commit", "true",
        "auto.commit.interval.ms", "1000",
        "auto.offset.reset", "earliest",
        "enable.partition.eof", "false",
        "partition.assignment.strategy", "cooperative-sticky",
        "session.timeout.ms", membership.session_ms,
        "heartbeat.interval.ms", membership.heartbeat_ms,
        membership.instance_id[0] ? "group.instance.id" : NULL, membership.instance_id,
        NULL};
    /* clang-format on */
    rd_kafka_t *rk = NULL;
    bx_status s = new_handle(RD_KAFKA_CONSUMER, c->brokers, settings, (const char *const *)c->extra,
                             &rk, err);
    if (s != BX_OK)
        return s;
    rd_kafka_poll_set_consumer(rk);
    int n = 0;
    while (c->topics[n])
        n++;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(subs, c->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        rd_kafka_destroy(rk);
        return BX_ERR(err, BX_EIO, "kafka subscribe: %s", rd_kafka_err2str(e));
    }
    *out = rk;
    return BX_OK;
}

static void consumer_free_settings(bx_consumer *c)
{
    free(c->brokers);
    free(c->group);
    strv_free(c->topics);
    strv_free(c->extra);
    free(c);
}

bx_status bx_consumer_new(const char *brokers, const char *group, const char *const *topics,
                          const char *const *extra, bx_consumer **out, bx_error *err)
{
    bx_consumer *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BX_ERR(err, BX_ENOMEM, "kafka consumer: out of memory");
    bool ok = true;
    c->brokers = strdup(brokers ? brokers : "");
    c->group = strdup(group);
    c->topics = strv_dup(topics, &ok);
    c->extra = strv_dup(extra, &ok);
    if (!ok || c->brokers == NULL || c->group == NULL || c->topics == NULL) {
        consumer_free_settings(c);
        return BX_ERR(err, BX_ENOMEM, "kafka consumer: out of memory");
    }
    bx_status s = consumer_handle(c, &c->rk, err);
    if (s != BX_OK) {
        consumer_free_settings(c);
        return s;
    }
    *out = c;
    return BX_OK;
}

bool bx_consumer_failed(const bx_consumer *c)
{
    return c->failed || rd_kafka_fatal_error(c->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

bx_status bx_consumer_renew(bx_consumer *c, bx_error *err)
{
    char why[256] = "";
    rd_kafka_fatal_error(c->rk, why, sizeof(why));
    rd_kafka_t *rk = NULL;
    bx_status s = consumer_handle(c, &rk, err);
    if (s != BX_OK)
        return s;
    bx_log_warn("kafka: the consumer of group %s met a fatal error (%s): replaced by a new one; "
                "messages whose offsets it had not committed come again",
                c->group, why[0] ? why : "unknown");
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    c->rk = rk;
    c->failed = false;
    return BX_OK;
}

void bx_consumer_recover(bx_consumer *c)
{
    if (c == NULL || !bx_consumer_failed(c))
        return;
    bx_error err = {0};
    if (bx_consumer_renew(c, &err) != BX_OK)
        bx_log_error("kafka: a failed consumer cannot be replaced yet: %s", err.msg);
}

rd_kafka_message_t *bx_consumer_poll(bx_consumer *c, int timeout_ms)
{
    if (c->failed) {
        /* nothing comes from a failed handle: wait as a poll would, until it is renewed */
        if (timeout_ms > 0)
            usleep((useconds_t)(timeout_ms < 100 ? timeout_ms : 100) * 1000);
        return NULL;
    }
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (msg && msg->err == RD_KAFKA_RESP_ERR__FATAL) {
        c->failed = true;
        rd_kafka_message_destroy(msg);
        return NULL;
    }
    return msg;
}

int bx_consumer_poll_batch(bx_consumer *c, rd_kafka_message_t **msgs, int max, int wait_ms,
                           int linger_ms, int gap_ms, const volatile sig_atomic_t *running)
{
    int n = 0;
    long long first = 0; /* when the first message came */
    while (n < max && (running == NULL || *running)) {
        int timeout = wait_ms;
        bool gap = false; /* this wait is the gap's, shorter than what is left of the linger */
        if (n > 0 && linger_ms > 0) {
            long long left = linger_ms - (bx_monotonic_ms() - first);
            if (left <= 0)
                break;
            timeout = (int)left;
            if (gap_ms > 0 && gap_ms < timeout) {
                timeout = gap_ms;
                gap = true;
            }
        } else if (n > 0) {
            timeout = 0;
        }
        rd_kafka_message_t *msg = bx_consumer_poll(c, timeout);
        if (msg == NULL) {
            if (n == 0 || linger_ms == 0 || gap)
                break;
            continue;
        }
        if (msg->err) {
            bx_log_warn("consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (n == 0)
            first = bx_monotonic_ms();
        msgs[n++] = msg;
    }
    return n;
}

void bx_consumer_done(bx_consumer *c, const rd_kafka_message_t *msg)
{
    rd_kafka_offset_store(msg->rkt, msg->partition, msg->offset);
}

bx_status bx_consumer_commit(bx_consumer *c)
{
    rd_kafka_resp_err_t e = commit_bounded(c->rk, COMMIT_WAIT_MS);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return BX_OK;
    bx_log_warn("kafka: offset commit: %s", rd_kafka_err2str(e));
    return e == RD_KAFKA_RESP_ERR__TIMED_OUT ? BX_ETIMEOUT : BX_EIO;
}

long long bx_consumer_lag(bx_consumer *c)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    long long lag = 0;
    rd_kafka_position(c->rk, parts);
    for (int i = 0; i < parts->cnt && lag >= 0; i++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(c->rk, parts->elems[i].topic,
                                             parts->elems[i].partition, &lo, &hi, 5000)) {
            lag = -1;
            break;
        }
        int64_t pos = parts->elems[i].offset;
        lag += pos < 0 ? hi - lo : hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

void bx_consumer_free(bx_consumer *c)
{
    if (c == NULL)
        return;
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    consumer_free_settings(c);
}
