/* service: bx-notify's loop body. Requests from bx.notify.requests.v1 become notifications in
 * PostgreSQL (one per recipient, in one transaction, before the offset is stored); worker threads
 * claim due notifications, record each send's intent before calling the provider and its outcome
 * after; receipts arrive on an HTTP endpoint; staff tasks are gathered into one daily digest per
 * person; status messages and dead letters are relayed from the outbox to Kafka. */
#ifndef BX_NOTIFY_SERVICE_H
#define BX_NOTIFY_SERVICE_H

#include "bx_status.h"
#include "dispatch.h"
#include "provider.h"
#include "template.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct notify_service_conf {
    const char *brokers;
    const char *pg_url;
    const char *redis_url;
    const char *group;          /* consumer group */
    const char *requests_topic; /* bx.notify.requests.v1 */
    const char *status_topic;   /* bx.notify.status.v1 */
    const char *offset_reset;   /* where a new group starts: "earliest" or "latest" */
    const template_set *templates;
    provider_config provider; /* each worker and the receipt endpoint open their own */
    dispatch_policy policy;
    long long rate_per_second; /* SMS per second, provider-wide, over every replica; 0: no limit */
    int rate_burst;
    const char *rate_key; /* the Redis key of the shared rate */
    int workers;          /* sending threads */
    int batch;            /* notifications a worker claims at once */
    int intake_batch;     /* requests taken in one transaction (one poll) */
    int digest_minute;    /* local minute of the staff's daily digest */
    const char *digest_template;
    const char *receipt_listen; /* host:port of the receipt endpoint; "" for none */
    int keep_days; /* finished notifications, receipts and requests are deleted after this */
    const volatile sig_atomic_t *running;
} notify_service_conf;

typedef struct notify_service notify_service;

/* Connects, starts the workers and the receipt endpoint. conf and what it points to stay
 * borrowed until notify_service_stop. */
bx_status notify_service_start(const notify_service_conf *conf, notify_service **out,
                               bx_error *err) BX_MUSTCHECK;
/* One loop iteration of the main thread: a poll of up to conf.intake_batch requests (waiting up to
 * about 100 ms for the first), taken together, and the daily digests when due. Sending, receipts
 * and the outbox relay run in threads of their own. */
void notify_service_step(notify_service *sv);
/* bx_health_fn over a notify_service. */
bool notify_service_healthy(void *arg, char *reason, size_t size);
/* Stops the workers (a send in flight finishes and is recorded), the endpoint, leaves the group
 * (committing what was processed) and closes. NULL does nothing. */
void notify_service_stop(notify_service *sv);

#endif
