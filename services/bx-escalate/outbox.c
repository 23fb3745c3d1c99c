/* outbox (escalate_outbox_*): cases.outbox rows written with the case change, relayed to Kafka in
 * id order. */
#include "outbox.h"

#include "bx_pg.h"

#include <stdlib.h>
#include <string.h>

#define TABLE "cases.outbox"

/* The advisory lock that makes one relay at a time ("bx-escalate outbox"). */
#define RELAY_LOCK 7426004

/* This process's relay reads after the rows it relayed, and from the start once a second for a
 * row whose transaction committed after a later row's (bx_outbox_cursor). */
#define RELAY_RESCAN_MS 1000

static bx_outbox_cursor relay_cursor = {.rescan_ms = RELAY_RESCAN_MS};

static bx_outbox_hook_fn *acked_hook;
static void *acked_hook_arg;

void escalate_outbox_set_acked_hook(bx_outbox_hook_fn *fn, void *arg)
{
    acked_hook = fn;
    acked_hook_arg = arg;
}

bx_status escalate_outbox_add(PGconn *db, const char *topic, const char *key, const char *event_id,
                              const char *payload, int *added, bx_error *err)
{
    const bx_outbox_message m = {
        .topic = topic, .key = key, .payload = payload, .event_id = event_id};
    return bx_outbox_add(db, TABLE, &m, added, err);
}

bx_status escalate_outbox_relay(PGconn *db, bx_producer *producer, int max, int timeout_ms,
                                int *sent, bx_error *err)
{
    const bx_outbox_relay_opts opts = {
        .table = TABLE,
        .lock_key = RELAY_LOCK,
        .max = max,
        .timeout_ms = timeout_ms,
        .lock_rows = true,
        .acked_hook = acked_hook,
        .acked_hook_arg = acked_hook_arg,
        .cursor = &relay_cursor,
    };
    return bx_outbox_relay(db, producer, &opts, sent, err);
}

bx_status escalate_outbox_pending(PGconn *db, long long *count, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL", 0,
                              NULL, &res, err);
    if (s == BX_OK)
        *count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return s;
}
