/* service_internal: what the parts of bx-notify's service share (service.c wires requests.c,
 * worker.c, receipts.c, digest.c and relay.c): the service and worker structs, the metrics and
 * each part's entry points. Not for use outside services/bx-notify. */
#ifndef BX_NOTIFY_SERVICE_INTERNAL_H
#define BX_NOTIFY_SERVICE_INTERNAL_H

#include "bx_kafka.h"
#include "bx_metrics.h"
#include "bx_redis.h"
#include "dispatch.h"
#include "limits.h"
#include "provider.h"
#include "service.h"
#include "store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define TEXT_MAX      2048 /* a rendered message */
#define IDLE_SLEEP_US 20000
/* a relayed row whose transaction committed after a later row's waits at most this long */
#define RELAY_RESCAN_MS 1000
#define PG_WAIT_MS      10000 /* how long a connect waits for PostgreSQL */

/* A sending thread with its own connections and provider adapter. */
typedef struct notify_worker {
    struct notify_service *sv;
    int index;
    pthread_t thread;
    bool started;
    PGconn *db;
    redisContext *redis;
    limits_rate *rate;
    provider *prov;
    char owner[NOTIFY_STORE_OWNER_MAX + 1];
    uint32_t random;
} notify_worker;

struct notify_service {
    notify_service_conf conf;
    notify_store_ctx ctx;
    bx_consumer *consumer;
    bx_producer *producer;
    PGconn *db;                   /* the main thread's: requests and digests */
    struct notify_intake *intake; /* requests.c's: a poll's requests, the places and staff held */
    notify_worker *workers;
    atomic_bool healthy;
    atomic_bool stopping;
    /* the receipt endpoint: its own connection and adapter, one request at a time */
    struct MHD_Daemon *daemon;
    /* the outbox relay: its own thread and connection, so a slow broker never holds requests */
    pthread_t relay_thread;
    bool relay_started;
    PGconn *relay_db;
    /* where the relay reads from: after the rows it relayed, from the start once a second */
    bx_outbox_cursor relay_cursor;
    pthread_mutex_t receipt_lock;
    PGconn *receipt_db;
    provider *receipt_prov;
    const char *provider_name;
    bx_time_ms digests_done_for; /* the digest time whose digests are all made (digest.c) */
};

/* The service's counters, registered by notify_service_start. */
typedef struct notify_metrics {
    bx_metric requests, redelivered, dlq, sends, accepted, delivered, dead, queries, receipts,
        rate_waits, digests, status, failures, intake_polls;
} notify_metrics;
extern notify_metrics notify_m;

/* service.c: what the worker and the receipt endpoint share about a change of state. */
dispatch_answer notify_answer_of_state(provider_state st);
void notify_outcome_count(const dispatch_output *out);
void notify_outcome_log(const notify_store_row *row, const dispatch_output *out);

/* requests.c: a poll of bx.notify.requests.v1 messages (at most conf.intake_batch), prepared on
 * the main thread (parsed, looked up, rendered) and written in one transaction by one of two
 * writer threads, each on a connection of its own, while the next poll is prepared (bad ones
 * dead-lettered, redeliveries left alone); when that fails, each on its own, retried until it is
 * taken or dead-lettered or the service stops. Offsets are stored in the order of the polls,
 * each poll's once it is done. notify_requests_take takes ownership of the messages (destroyed
 * once done); notify_requests_flush waits for the polls being written (and takes one by one a
 * poll that failed): when a poll brings nothing and before the consumer is closed.
 * notify_requests_open makes what polls need (sv->intake, with the cache of places and staff,
 * the writers and their connections), notify_requests_close stops the writers and frees it. */
bx_status notify_requests_open(notify_service *sv, bx_error *err) BX_MUSTCHECK;
void notify_requests_close(notify_service *sv);
void notify_requests_take(notify_service *sv, rd_kafka_message_t *const *msgs, int n);
void notify_requests_flush(notify_service *sv);

/* worker.c: opens w's connections and adapter (closed by notify_worker_close, also after a
 * failed open); notify_worker_main is the thread that claims and sends until sv->stopping. */
bx_status notify_worker_open(notify_service *sv, notify_worker *w, int index,
                             bx_error *err) BX_MUSTCHECK;
void notify_worker_close(notify_worker *w);
void *notify_worker_main(void *arg);

/* receipts.c: the receipt endpoint on conf.receipt_listen (nothing when it is ""), stopped by
 * notify_receipts_stop. */
bx_status notify_receipts_start(notify_service *sv, bx_error *err) BX_MUSTCHECK;
void notify_receipts_stop(notify_service *sv);

/* digest.c: makes the staff's daily digests when due (from conf.digest_minute on; one that fell
 * due unmade is made later, flagged late on a later day); notify_digests_publish writes the
 * digest time to notify.digest_schedule, where `bxctl settle` finds it. */
void notify_digests_run(notify_service *sv);
bx_status notify_digests_publish(notify_service *sv, bx_error *err) BX_MUSTCHECK;

/* relay.c: the outbox relay thread (until sv->stopping), and one last relay at stop; true when
 * something was sent. */
void *notify_relay_main(void *arg);
bool notify_relay_flush(notify_service *sv);

#endif
