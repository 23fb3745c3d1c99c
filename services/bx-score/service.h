/* service: bx-score's consumer loop body: a batch of bx.attendance.v1 messages applied to Redis
 * and PostgreSQL, the affected students recomputed, assessments published, offsets committed. */
#ifndef SCORE_SERVICE_H
#define SCORE_SERVICE_H

#include "bx_status.h"
#include "score.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct score_service_conf {
    const char *brokers;
    const char *pg_url;
    const char *redis_url;
    const char *group;                      /* consumer group */
    const char *topic;                      /* the attendance topic */
    const char *offset_reset;               /* where a new group starts: "earliest" or "latest" */
    const char *pseudonym_key;              /* analysts' HMAC key */
    const char *analytics_risk_topic;       /* bx.analytics.risk.v1 */
    const char *analytics_attendance_topic; /* bx.analytics.attendance.v1 */
    const score_policy *policy;
    int batch_max;                        /* messages in one batch */
    int batch_ms;                         /* how long a batch waits to fill once it has a message */
    int batch_gap_ms;                     /* or until none came for this long (0: never) */
    const volatile sig_atomic_t *running; /* a failing batch is retried while *running */
} score_service_conf;

typedef struct score_service score_service;

/* Connects to PostgreSQL, Redis and Kafka and loads the registry. conf and everything it points
 * to stay borrowed until score_service_stop. */
bx_status score_service_start(const score_service_conf *conf, score_service **out,
                              bx_error *err) BX_MUSTCHECK;
/* Polls one batch (waits up to about 100 ms for the first message) and processes it; a failing
 * batch is retried (reconnecting) until it succeeds or *conf->running turns false, in which case
 * its offsets are not stored and the messages are redelivered later. */
void score_service_step(score_service *sv);
/* Periodic work: reloads the registry and the profiles when the registry revision changed, and
 * publishes the daily attendance aggregates that are due (daily.h). */
void score_service_tick(score_service *sv);
/* bx_health_fn over a score_service: healthy unless the last batch failed. */
bool score_service_healthy(void *arg, char *reason, size_t size);
/* Leaves the consumer group (committing what was processed), flushes and closes. NULL does
 * nothing. */
void score_service_stop(score_service *sv);

#endif
