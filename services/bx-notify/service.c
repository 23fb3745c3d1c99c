/* service: bx-notify's loop body, wiring its parts: requests.c takes bx.notify.requests.v1 on
 * the main thread, worker.c's threads send, receipts.c serves the receipt endpoint, digest.c makes
 * the staff's daily digests and relay.c's thread relays the outbox to Kafka. */
#include "service_internal.h"

#include "bx_clock.h"
#include "bx_log.h"
#include "bx_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define POLL_MAX                                                                                   \
    1000 /* the most requests a loop iteration takes (BX_NOTIFY_INTAKE_BATCH's bound) */

notify_metrics notify_m = {
    .requests = {"bx_notify_requests_total", "requests taken (redeliveries not counted)", "counter",
                 0, NULL},
    .redelivered = {"bx_notify_requests_redelivered_total", "requests seen before: nothing sent",
                    "counter", 0, NULL},
    .dlq = {"bx_notify_dlq_total", "requests sent to bx.dlq.v1", "counter", 0, NULL},
    .sends = {"bx_notify_sends_total", "provider calls to send", "counter", 0, NULL},
    .accepted = {"bx_notify_accepted_total", "sends the provider accepted", "counter", 0, NULL},
    .delivered = {"bx_notify_delivered_total", "notifications delivered", "counter", 0, NULL},
    .dead = {"bx_notify_dead_total", "notifications dead (reason recorded)", "counter", 0, NULL},
    .queries = {"bx_notify_queries_total", "provider status queries", "counter", 0, NULL},
    .receipts = {"bx_notify_receipts_total", "receipts received (with duplicates)", "counter", 0,
                 NULL},
    .rate_waits = {"bx_notify_rate_waits_total", "sends put off by the provider-wide rate",
                   "counter", 0, NULL},
    .digests = {"bx_notify_digests_total", "daily digests made", "counter", 0, NULL},
    .status = {"bx_notify_outbox_sent_total",
               "status messages and dead letters acknowledged by Kafka", "counter", 0, NULL},
    .failures = {"bx_notify_failures_total", "database, Redis or Kafka failures (retried)",
                 "counter", 0, NULL},
    .intake_polls = {"bx_notify_intake_polls_total",
                     "polls of more than one request taken in one transaction", "counter", 0, NULL},
};

dispatch_answer notify_answer_of_state(provider_state st)
{
    switch (st) {
    case PROVIDER_STATE_NONE:
        return DISPATCH_ANS_NONE;
    case PROVIDER_STATE_PENDING:
        return DISPATCH_ANS_PENDING;
    case PROVIDER_STATE_DELIVERED:
        return DISPATCH_ANS_DELIVERED;
    case PROVIDER_STATE_FAILED:
        return DISPATCH_ANS_FAILED;
    }
    return DISPATCH_ANS_PENDING;
}

void notify_outcome_count(const dispatch_output *out)
{
    if (out->state == DISPATCH_DELIVERED && out->changed)
        bx_metric_add(&notify_m.delivered, 1);
    if (out->state == DISPATCH_DEAD && out->changed)
        bx_metric_add(&notify_m.dead, 1);
}

void notify_outcome_log(const notify_store_row *row, const dispatch_output *out)
{
    if (out->state == DISPATCH_DEAD)
        bx_log_warn("%s (%s) to %s: dead after %d attempts: %s", row->notification_id,
                    row->request_id, row->recipient_masked, out->attempt, out->reason);
    else if (out->status != DISPATCH_ST_NONE)
        bx_log_debug("%s (%s) to %s: %s%s%s", row->notification_id, row->request_id,
                     row->recipient_masked, dispatch_state_name(out->state),
                     out->reason[0] ? ": " : "", out->reason);
}

#define STEP_SLOW_MS 30000

void notify_service_step(notify_service *sv)
{
    bx_error err = {0};
    if (bx_pg_reconnect(&sv->db, sv->conf.pg_url, PG_WAIT_MS, &err) != BX_OK) {
        atomic_store(&sv->healthy, false);
        bx_log_warn("cannot connect to PostgreSQL: %s", err.msg);
        sleep(1);
        return;
    }
    long long t0 = bx_monotonic_ms();
    int handled = 0, max = sv->conf.intake_batch < 1          ? 1
                           : sv->conf.intake_batch > POLL_MAX ? POLL_MAX
                                                              : sv->conf.intake_batch;
    rd_kafka_message_t *msgs[POLL_MAX];
    handled = bx_consumer_poll_batch(sv->consumer, msgs, max, 100, 0, 0, sv->conf.running);
    long long tp = bx_monotonic_ms();
    if (handled)
        notify_requests_take(sv, msgs, handled); /* takes the messages */
    else {
        notify_requests_flush(sv);         /* nothing new: the poll being written is finished */
        bx_consumer_recover(sv->consumer); /* and no message held */
    }
    long long t1 = bx_monotonic_ms();
    if (handled && bx_consumer_commit(sv->consumer) != BX_OK)
        bx_log_warn("offset commit failed; the next commit carries them");
    long long t2 = bx_monotonic_ms();
    notify_digests_run(sv);
    long long t3 = bx_monotonic_ms();
    if (handled)
        bx_log_debug("step: %d requests %lld ms (polled in %lld ms), offset commit %lld ms",
                     handled, t1 - t0, tp - t0, t2 - t1);
    /* A step longer than this keeps the consumer from polling: say where the time went before
     * Kafka's max.poll.interval.ms throws it out of the group. */
    if (t3 - t0 > STEP_SLOW_MS)
        bx_log_warn(
            "consumer step took %lld ms: %d requests %lld ms, offset commit %lld ms, digests "
            "%lld ms",
            t3 - t0, handled, t1 - t0, t2 - t1, t3 - t2);
}

bx_status notify_service_start(const notify_service_conf *conf, notify_service **out, bx_error *err)
{
    *out = NULL;
    notify_service *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return BX_ERR(err, BX_ENOMEM, "service: out of memory");
    sv->conf = *conf;
    sv->relay_cursor.rescan_ms = RELAY_RESCAN_MS;
    atomic_init(&sv->healthy, true);
    atomic_init(&sv->stopping, false);
    pthread_mutex_init(&sv->receipt_lock, NULL);
    bx_metric *metrics[] = {&notify_m.requests,   &notify_m.redelivered, &notify_m.dlq,
                            &notify_m.sends,      &notify_m.accepted,    &notify_m.delivered,
                            &notify_m.dead,       &notify_m.queries,     &notify_m.receipts,
                            &notify_m.rate_waits, &notify_m.digests,     &notify_m.status,
                            &notify_m.failures,   &notify_m.intake_polls};
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
        bx_metric_register(metrics[i]);
    bx_status s = notify_requests_open(sv, err);
    IFOK(s, bx_pg_connect(conf->pg_url, PG_WAIT_MS, &sv->db, err));
    IFOK(s, notify_digests_publish(sv, err));
    IFOK(s, bx_pg_connect(conf->pg_url, PG_WAIT_MS, &sv->receipt_db, err));
    IFOK(s, provider_open(&conf->provider, &sv->receipt_prov, err));
    if (s == BX_OK) {
        sv->provider_name = provider_name(sv->receipt_prov);
        sv->ctx.provider = sv->provider_name;
        sv->ctx.status_topic = conf->status_topic;
    }
    IFOK(s, bx_producer_new(conf->brokers, NULL, &sv->producer, err));
    if (s == BX_OK) {
        const char *const out_topics[] = {conf->status_topic, BX_TOPIC_DLQ, NULL};
        bx_producer_prepare_topics(sv->producer, out_topics, 5000);
    }
    const char *const topics[] = {conf->requests_topic, NULL};
    const char *const extra[] = {"auto.offset.reset",
                                 conf->offset_reset ? conf->offset_reset : "earliest", NULL};
    IFOK(s, bx_consumer_new(conf->brokers, conf->group, topics, extra, &sv->consumer, err));
    if (s == BX_OK) {
        sv->workers = calloc((size_t)conf->workers, sizeof(*sv->workers));
        if (sv->workers == NULL)
            s = BX_ERR(err, BX_ENOMEM, "service: out of memory");
    }
    for (int i = 0; s == BX_OK && i < conf->workers; i++)
        s = notify_worker_open(sv, &sv->workers[i], i, err);
    IFOK(s, notify_receipts_start(sv, err));
    if (s == BX_OK) {
        if (pthread_create(&sv->relay_thread, NULL, notify_relay_main, sv) != 0)
            s = BX_ERR(err, BX_EIO, "cannot start the outbox relay");
        else
            sv->relay_started = true;
    }
    for (int i = 0; s == BX_OK && i < conf->workers; i++) {
        if (pthread_create(&sv->workers[i].thread, NULL, notify_worker_main, &sv->workers[i]) != 0)
            s = BX_ERR(err, BX_EIO, "cannot start worker %d", i);
        else
            sv->workers[i].started = true;
    }
    if (s != BX_OK) {
        notify_service_stop(sv);
        return s;
    }
    bx_log_info("consuming %s as group %s; %d workers sending through %s; receipts on %s",
                conf->requests_topic, conf->group, conf->workers, sv->provider_name,
                conf->receipt_listen && conf->receipt_listen[0] ? conf->receipt_listen : "(off)");
    *out = sv;
    return BX_OK;
}

void notify_service_stop(notify_service *sv)
{
    if (sv == NULL)
        return;
    notify_requests_flush(sv); /* before the consumer commits what was done */
    atomic_store(&sv->stopping, true);
    for (int i = 0; sv->workers && i < sv->conf.workers; i++)
        if (sv->workers[i].started)
            pthread_join(sv->workers[i].thread, NULL);
    notify_receipts_stop(sv);
    if (sv->relay_started)
        pthread_join(sv->relay_thread, NULL);
    if (sv->producer) {
        sv->relay_cursor.rescan_at_ms = 0; /* the last relay reads the whole outbox */
        notify_relay_flush(sv);            /* what the last sends wrote */
    }
    bx_consumer_free(sv->consumer);
    bx_producer_free(sv->producer, 10000);
    for (int i = 0; sv->workers && i < sv->conf.workers; i++)
        notify_worker_close(&sv->workers[i]);
    free(sv->workers);
    provider_close(sv->receipt_prov);
    if (sv->receipt_db)
        PQfinish(sv->receipt_db);
    if (sv->relay_db)
        PQfinish(sv->relay_db);
    if (sv->db)
        PQfinish(sv->db);
    notify_requests_close(sv);
    pthread_mutex_destroy(&sv->receipt_lock);
    free(sv);
}

bool notify_service_healthy(void *arg, char *reason, size_t size)
{
    notify_service *sv = arg;
    return bx_health_of_flag(&sv->healthy, "the last request", reason, size);
}
