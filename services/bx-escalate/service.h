/* service: bx-escalate's loop body: assessments and actions applied to cases, a poll's in one
 * PostgreSQL transaction, due timers fired in batches of one transaction, the outbox relayed to
 * Kafka. */
#ifndef BX_ESCALATE_SERVICE_H
#define BX_ESCALATE_SERVICE_H

#include "bx_status.h"
#include "duties.h"
#include "ladder.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct escalate_service_conf {
    const char *brokers;
    const char *pg_url;
    const char *group;                 /* consumer group */
    const char *risk_topic;            /* bx.risk.v1 */
    const char *actions_topic;         /* bx.actions.v1 */
    const char *offset_reset;          /* where a new group starts: "earliest" or "latest" */
    const char *pseudonym_key;         /* analysts' HMAC key (bx_pseudonym) */
    const char *analytics_cases_topic; /* bx.analytics.cases.v1 */
    const ladder_policy *policy;
    const duties_policy *duties; /* calendar duties; NULL: none scheduled or run */
    int timer_lease_ms;          /* how long a claimed timer is held */
    int max_attempts;            /* tries of one input before it is given up (the connection up) */
    int outbox_keep_days;        /* relayed cases.outbox rows are deleted after this many days */
    int input_batch;             /* inputs of a poll applied in one transaction (at most 200) */
    int timer_batch;             /* due timers fired in one transaction */
    const volatile sig_atomic_t *running; /* a failing message is retried while *running */
} escalate_service_conf;

typedef struct escalate_service escalate_service;

/* Connects to PostgreSQL and Kafka, loads the registry and, with conf->duties, starts the duty
 * worker: a thread with a PostgreSQL connection of its own that runs the calendar duties the
 * timers queue (duties_run_next), so the inputs keep being applied while a month's reports are
 * made. conf and everything it points to stay borrowed until escalate_service_stop. */
bx_status escalate_service_start(const escalate_service_conf *conf, escalate_service **out,
                                 bx_error *err) BX_MUSTCHECK;
/* One loop iteration: polls up to 200 messages (up to about 100 ms for the first) and applies
 * them, conf->input_batch at a time in one transaction (each in its own when that fails), fires
 * up to conf->timer_batch due timers in one transaction, relays the outbox. A message refused as
 * input (not JSON, invalid, an unknown student) is dead-lettered to bx.dlq.v1. PostgreSQL down is
 * waited out (reconnecting, bx_retry_run) until it is back or *conf->running turns false; then the
 * offset is not stored and the message is redelivered later. Another failure a retry may mend (a
 * lost race, a case state the policy cannot read) is retried up to conf->max_attempts times; one no
 * retry mends (a full task table, a value the database refuses) is not retried. A message given up
 * is dead-lettered (reason "other") and its student's case flagged in cases.needs_attention in the
 * same transaction, and the partition moves on. */
void escalate_service_step(escalate_service *sv);
/* Periodic work: reloads the registry when its revision changed, schedules the calendar duties
 * of the terms not yet over when the revision or the day changed, and (hourly) deletes relayed
 * outbox rows older than conf->outbox_keep_days. */
void escalate_service_tick(escalate_service *sv);
/* bx_health_fn over an escalate_service: healthy unless the last attempt failed. */
bool escalate_service_healthy(void *arg, char *reason, size_t size);
/* Stops the duty worker (a duty run under way is cancelled and rolled back: it runs at the next
 * start), gives back unfired timer claims, leaves the consumer group (committing what was
 * processed), flushes and closes. NULL does nothing. */
void escalate_service_stop(escalate_service *sv);

#endif
