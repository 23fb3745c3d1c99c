/* bx_kafka: the idempotent producer and the consumer (offsets stored only after processing) that
 * every service uses, over librdkafka. */
#ifndef BX_KAFKA_H
#define BX_KAFKA_H

#include "bx_status.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>

/* baoxue's topics; each one's messages are described in schemas/topics/<topic>.schema.json. */
#define BX_TOPIC_ATTENDANCE           "bx.attendance.v1"
#define BX_TOPIC_ACTIONS              "bx.actions.v1"
#define BX_TOPIC_DLQ                  "bx.dlq.v1"
#define BX_TOPIC_RISK                 "bx.risk.v1"
#define BX_TOPIC_CASE_EVENTS          "bx.case.events.v1"
#define BX_TOPIC_NOTIFY_REQUESTS      "bx.notify.requests.v1"
#define BX_TOPIC_NOTIFY_STATUS        "bx.notify.status.v1"
#define BX_TOPIC_ANALYTICS_RISK       "bx.analytics.risk.v1"
#define BX_TOPIC_ANALYTICS_ATTENDANCE "bx.analytics.attendance.v1"
#define BX_TOPIC_ANALYTICS_CASES      "bx.analytics.cases.v1"

/* Applies the Kafka credentials of the environment to conf: with BX_KAFKA_USERNAME set,
 * security.protocol SASL_PLAINTEXT (or BX_KAFKA_SECURITY_PROTOCOL, e.g. SASL_SSL), sasl.mechanisms
 * SCRAM-SHA-256 (or BX_KAFKA_SASL_MECHANISM) and the password of BX_KAFKA_PASSWORD or the file
 * BX_KAFKA_PASSWORD_FILE (bx_conf_secret); a user without a password is an error. Without
 * BX_KAFKA_USERNAME nothing is set. Every handle this module makes calls it; code that builds its
 * own rd_kafka_conf_t (tools, tests) calls it too. Errors never contain the password. */
bx_status bx_kafka_conf_credentials(rd_kafka_conf_t *conf, bx_error *err) BX_MUSTCHECK;
/* An operator's tuning of librdkafka from the environment variable var (BX_KAFKA_PRODUCER_TUNING
 * for the services' producers, BX_KAFKA_CONSUMER_TUNING for their consumers): "name=value,..."
 * set on conf after the project's own settings. Credentials and the settings that carry the
 * delivery guarantees (acks, idempotence, offset storing, group identity) are refused. */
bx_status bx_kafka_conf_tuning(rd_kafka_conf_t *conf, const char *var, bx_error *err) BX_MUSTCHECK;

/* Called once per produced message from the producer's poll thread with the broker's verdict. */
typedef void(bx_delivery_fn)(void *opaque, rd_kafka_resp_err_t err);

typedef struct bx_producer bx_producer;

/* An idempotent producer (acks=all, enable.idempotence=true) with its own thread serving delivery
 * reports. `extra` is NULL or a NULL-ended list of librdkafka "name", "value" pairs. */
bx_status bx_producer_new(const char *brokers, const char *const *extra, bx_producer **out,
                          bx_error *err) BX_MUSTCHECK;
/* Flushes (up to timeout_ms), stops the poll thread and destroys. NULL does nothing. */
void bx_producer_free(bx_producer *p, int timeout_ms);
/* Queues one message (key and value copied). `done(opaque, err)` is called exactly once, from the
 * poll thread, when the broker acknowledged it or it failed for good. When this returns an error,
 * done is not called. A full local queue is retried for up to 5 s before BX_ETRANSIENT. */
bx_status bx_producer_send(bx_producer *p, const char *topic, const char *key, size_t key_len,
                           const char *value, size_t value_len, bx_delivery_fn *done,
                           void *opaque) BX_MUSTCHECK;
/* As bx_producer_send, but takes ownership of value (a malloc'd buffer): librdkafka frees it
 * after delivery, so the message is not copied. On an error return the caller still owns it. */
bx_status bx_producer_send_owned(bx_producer *p, const char *topic, const char *key, size_t key_len,
                                 char *value, size_t value_len, bx_delivery_fn *done,
                                 void *opaque) BX_MUSTCHECK;
/* Waits until every queued message is delivered or timeout_ms passes. */
bx_status bx_producer_flush(bx_producer *p, int timeout_ms) BX_MUSTCHECK;
/* Looks up the partitions of the NULL-ended topics now (one metadata request each, up to
 * timeout_ms), so that a service's first message to each is not held while the producer asks for
 * them: bx-escalate's first relay of a day waited ~0.9 s for it, and every absent child behind it.
 * A topic not found or a broker not answering is logged, not fatal: the first send then waits. */
void bx_producer_prepare_topics(bx_producer *p, const char *const *topics, int timeout_ms);
/* Borrowed handle, for metadata queries. */
rd_kafka_t *bx_producer_handle(bx_producer *p);

/* A helper for synchronous callers: counts outstanding deliveries and failures. */
typedef struct bx_delivery_wait bx_delivery_wait;
bx_delivery_wait *bx_delivery_wait_new(void);
void bx_delivery_wait_free(bx_delivery_wait *w);
/* Use as `done` with a pointer to a bx_delivery_slot as opaque. */
typedef struct bx_delivery_slot {
    bx_delivery_wait *wait;
    rd_kafka_resp_err_t err;
} bx_delivery_slot;
void bx_delivery_slot_arm(bx_delivery_slot *slot, bx_delivery_wait *w);
bx_delivery_fn bx_delivery_slot_done;
/* Blocks until every armed slot is done or timeout_ms passes; BX_ETIMEOUT then. */
bx_status bx_delivery_wait_all(bx_delivery_wait *w, int timeout_ms) BX_MUSTCHECK;
/* For callers that must not block (a server's event loop): a wait that calls notify(arg) exactly
 * once, from the thread that completes it, when it is sealed and every armed slot is done. Arm
 * its slots, then seal it; notify may run before bx_delivery_wait_seal returns (nothing was
 * outstanding) or on the producer's poll thread. The wait is not touched after notify, so notify
 * may lead to its free. bx_delivery_wait_all is not for such a wait. */
bx_delivery_wait *bx_delivery_wait_notify_new(void (*notify)(void *arg), void *arg);
void bx_delivery_wait_seal(bx_delivery_wait *w);

/* A client handle of a tool's own: a producer for admin requests and metadata, or a consumer that
 * never subscribes (to read or commit a group's offsets, or read partitions it assigns). It has
 * bootstrap.servers = brokers, the environment's credentials (bx_kafka_conf_credentials), its log
 * through bx_log, and settings (NULL, or NULL-ended "name", "value" pairs: "group.id", ...). On
 * success *out is the handle (caller destroys with rd_kafka_destroy). BX_EINVAL naming a setting
 * the library refuses. */
bx_status bx_kafka_client_new(rd_kafka_type_t type, const char *brokers,
                              const char *const *settings, rd_kafka_t **out,
                              bx_error *err) BX_MUSTCHECK;

/* One admin request (CreateTopics, AlterConfigs, CreateAcls, ...) on a client of its own:
 * bx_kafka_admin_begin makes the client, its options for op (the caller sets their timeouts) and
 * the queue the answer comes to; the caller sends the request with a.rk, a.opts and a.q;
 * bx_kafka_admin_wait waits for the answer; bx_kafka_admin_end frees all of it, whatever
 * happened (also after a failed begin). */
typedef struct bx_kafka_admin {
    rd_kafka_t *rk;
    rd_kafka_AdminOptions_t *opts;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *answer; /* set by bx_kafka_admin_wait; borrowed until bx_kafka_admin_end */
    /* bx_kafka_topic_admin_begin: the topics' replication and min.insync.replicas (NULL: the
     * broker's default), as bx_kafka_replication reads them */
    int replication;
    const char *min_insync;
} bx_kafka_admin;
/* settings as bx_kafka_client_new's. */
bx_status bx_kafka_admin_begin(bx_kafka_admin *a, const char *brokers, const char *const *settings,
                               rd_kafka_admin_op_t op, bx_error *err) BX_MUSTCHECK;
/* An admin request that creates topics or sets their configuration: bx_kafka_replication into
 * a->replication and a->min_insync (its BX_EINVAL before any client is made), then
 * bx_kafka_admin_begin without settings. */
bx_status bx_kafka_topic_admin_begin(bx_kafka_admin *a, const char *brokers, rd_kafka_admin_op_t op,
                                     bx_error *err) BX_MUSTCHECK;
/* Waits up to wait_ms for the answer: BX_ETIMEOUT "<what>: no answer from <brokers>" when none
 * came, BX_EIO "<what>: <the broker's error>" when the request as a whole failed; on BX_OK
 * a->answer holds the results of its parts, which the caller checks. */
bx_status bx_kafka_admin_wait(bx_kafka_admin *a, const char *brokers, int wait_ms, const char *what,
                              bx_error *err) BX_MUSTCHECK;
void bx_kafka_admin_end(bx_kafka_admin *a);

/* Creates the topics (idempotent: existing topics are fine), each replicated BX_KAFKA_REPLICATION
 * times (1 to 16; unset: 1) and, when BX_KAFKA_MIN_INSYNC is set (1 to the replication), with
 * that min.insync.replicas: a cluster's 3 and 2 (bx-infra up --cluster). */
bx_status bx_kafka_create_topics(const char *brokers, const char *const *topics,
                                 const int *partitions, int count, int timeout_ms,
                                 bx_error *err) BX_MUSTCHECK;
/* BX_KAFKA_REPLICATION and BX_KAFKA_MIN_INSYNC as above: *replication 1 and *min_insync NULL when
 * unset; BX_EINVAL naming the setting and its value when out of range. */
bx_status bx_kafka_replication(int *replication, const char **min_insync,
                               bx_error *err) BX_MUSTCHECK;

typedef struct bx_consumer bx_consumer;

/* How this process's consumers join their groups from now on: group.instance.id (static
 * membership; NULL or "" for dynamic, "auto" for <host name>-<replica>), session.timeout.ms and
 * heartbeat.interval.ms (0: 10000 and 3000). Every consumer uses the cooperative-sticky assignor.
 * bx_service calls it with the service's settings (BX_CONF_KAFKA_MEMBERSHIP) before start; other
 * processes (tools, tests) keep dynamic membership. Not thread-safe: call before consumers are
 * made. BX_EINVAL when the heartbeat is not under a third of the session, naming the settings. */
bx_status bx_kafka_membership_set(const char *instance_id, int replica, int session_ms,
                                  int heartbeat_ms, bx_error *err) BX_MUSTCHECK;
/* The group.instance.id in use ("" for dynamic membership); borrowed, static storage. */
const char *bx_kafka_instance_id(void);

/* A consumer in `group` subscribed to `topics` (NULL-ended). Offsets are committed only for
 * messages passed to bx_consumer_done, so a crash redelivers what was not processed. */
bx_status bx_consumer_new(const char *brokers, const char *group, const char *const *topics,
                          const char *const *extra, bx_consumer **out, bx_error *err) BX_MUSTCHECK;
/* Next message or NULL on timeout; caller destroys it with rd_kafka_message_destroy in the same
 * loop iteration. Messages with an error set are returned too (check msg->err). */
rd_kafka_message_t *bx_consumer_poll(bx_consumer *c, int timeout_ms);
/* A consumer loop's poll: up to max messages into msgs (the caller destroys each, in the same
 * loop iteration). Waits up to wait_ms for the first; then takes those that come within linger_ms
 * of the first, or with linger_ms 0 only those already there. With gap_ms > 0 it stops lingering
 * once no message came for gap_ms: the stream paused, so what came is handled now rather than
 * after the rest of linger_ms. A message with an error set is logged ("consumer: ...") and
 * destroyed, not returned. Stops early once *running (NULL: never) turns false. Returns how
 * many. */
int bx_consumer_poll_batch(bx_consumer *c, rd_kafka_message_t **msgs, int max, int wait_ms,
                           int linger_ms, int gap_ms, const volatile sig_atomic_t *running);
/* Marks msg processed: its offset + 1 will be committed. */
void bx_consumer_done(bx_consumer *c, const rd_kafka_message_t *msg);
/* Commits stored offsets now and waits for the answer, at most 10 s (BX_ETIMEOUT: the commit
 * goes on in the background; the next one carries the same offsets). Failures are logged. */
bx_status bx_consumer_commit(bx_consumer *c) BX_MUSTCHECK;
/* Total lag of the group over its assignment, for settle checks; -1 when unknown. */
long long bx_consumer_lag(bx_consumer *c);
/* Leaves the group cleanly (commits stored offsets) and destroys. NULL does nothing. */
void bx_consumer_free(bx_consumer *c);
/* True once the consumer met a fatal error: a static member fenced by its own earlier join after
 * the group's coordinator moved (KIP-345; Kafka and librdkafka treat it as fatal) is the one seen.
 * bx_consumer_poll then returns nothing. */
bool bx_consumer_failed(const bx_consumer *c);
/* Replaces the handle of a failed consumer by a new one of the same settings (group, instance id,
 * topics), which rejoins the group. Call it while no message of the consumer is held (processed
 * and committed, or let go): offsets stored and not committed are lost, so those messages come
 * again, as after a crash; every consumer of baoxue processes a message twice safely. */
bx_status bx_consumer_renew(bx_consumer *c, bx_error *err) BX_MUSTCHECK;
/* bx_consumer_renew when bx_consumer_failed, logging a renewal that fails (tried again at the next
 * call). For the consumer loops, at the point where they hold no message. */
void bx_consumer_recover(bx_consumer *c);

#endif
