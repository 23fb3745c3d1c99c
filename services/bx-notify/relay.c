/* relay: the outbox relay thread. Status messages and dead letters written in the transactions
 * of their changes are sent to Kafka from notify.outbox; relayed rows are pruned after a day, and
 * finished notifications, receipts and requests after conf.keep_days (retention). */
#include "service_internal.h"

#include "bx_clock.h"
#include "bx_log.h"
#include "bx_pg.h"

#include <stdatomic.h>
#include <unistd.h>

#define RELAY_MAX      1000  /* outbox rows relayed at once */
#define RELAY_WAIT_MS  10000 /* how long a relay waits for the broker */
#define PRUNE_EVERY_MS (60 * 1000)
#define PRUNE_AGE_MS   (24LL * 3600 * 1000) /* relayed status messages kept a day */

/* Relays until the outbox is empty or a relay fails; true when something was sent. */
bool notify_relay_flush(notify_service *sv)
{
    bool any = false;
    for (;;) {
        int sent = 0;
        bx_error err = {0};
        if (bx_pg_reconnect(&sv->relay_db, sv->conf.pg_url, PG_WAIT_MS, &err) != BX_OK) {
            bx_log_warn("outbox relay: cannot connect to PostgreSQL: %s", err.msg);
            return any;
        }
        bx_status s = notify_outbox_relay(sv->relay_db, sv->producer, &sv->relay_cursor, RELAY_MAX,
                                          RELAY_WAIT_MS, &sent, &err);
        bx_metric_add(&notify_m.status, sent);
        any = any || sent > 0;
        if (s != BX_OK) {
            bx_log_warn("outbox relay: %s", err.msg);
            bx_metric_add(&notify_m.failures, 1);
            return any;
        }
        if (sent < RELAY_MAX)
            return any;
    }
}

void *notify_relay_main(void *arg)
{
    notify_service *sv = arg;
    long long last_prune = bx_monotonic_ms();
    while (!atomic_load(&sv->stopping)) {
        if (!notify_relay_flush(sv))
            usleep(IDLE_SLEEP_US);
        if (bx_monotonic_ms() - last_prune >= PRUNE_EVERY_MS && sv->relay_db) {
            last_prune = bx_monotonic_ms();
            int deleted = 0;
            bx_error err = {0};
            if (notify_outbox_prune(sv->relay_db, bx_clock_now() - PRUNE_AGE_MS, &deleted, &err) !=
                BX_OK)
                bx_log_warn("outbox prune: %s", err.msg);
            else if (deleted > 0)
                bx_log_debug("outbox: %d relayed messages pruned", deleted);
            if (notify_store_prune_finished(sv->relay_db, bx_clock_now(), sv->conf.keep_days,
                                            &deleted, &err) != BX_OK)
                bx_log_warn("retention: %s", err.msg);
            else if (deleted > 0)
                bx_log_info("retention: %d notifications, receipts and requests older than %d days "
                            "deleted",
                            deleted, sv->conf.keep_days);
        }
    }
    return NULL;
}
