/* outbox (escalate_outbox_*): cases.outbox rows written with the case change, relayed to Kafka in
 * id order. */
#include "outbox.h"

#include "bx_pg.h"

#include <stdlib.h>
#include <string.h>

/* The advisory lock that makes one relay at a time ("bx-escalate outbox"). */
#define RELAY_LOCK 7426004

static bx_outbox_hook_fn *acked_hook;
static void *acked_hook_arg;

void escalate_outbox_set_acked_hook(bx_outbox_hook_fn *fn, void *arg)
{
    acked_hook = fn;
    acked_hook_arg = arg;
}

static bx_status check_text(const char *what, const char *value, size_t max, bx_error *err)
{
    if (value == NULL || value[0] == '\0' || strlen(value) > max)
        return BX_ERR(err, BX_EINVAL, "outbox %s must be 1 to %zu bytes", what, max);
    return BX_OK;
}

bx_status escalate_outbox_add(PGconn *db, const char *topic, const char *key, const char *event_id,
                              const char *payload, int *added, bx_error *err)
{
    if (added)
        *added = 0;
    bx_status s = check_text("topic", topic, 100, err);
    IFOK(s, check_text("key", key, 128, err));
    IFOK(s, check_text("event_id", event_id, 128, err));
    IFOK(s, check_text("payload", payload, 1000000, err));
    if (s != BX_OK)
        return s;
    const char *params[] = {topic, key, payload, event_id};
    PGresult *res = NULL;
    s = bx_pg_query(db,
                    "INSERT INTO cases.outbox (topic, msg_key, payload, event_id) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
                    4, params, &res, err);
    if (s == BX_OK && added)
        *added = strtol(PQcmdTuples(res), NULL, 10) > 0;
    PQclear(res);
    return s;
}

bx_status escalate_outbox_relay(PGconn *db, bx_producer *producer, int max, int timeout_ms,
                                int *sent, bx_error *err)
{
    const bx_outbox_relay_opts opts = {
        .table = "cases.outbox",
        .lock_key = RELAY_LOCK,
        .max = max,
        .timeout_ms = timeout_ms,
        .lock_rows = true,
        .acked_hook = acked_hook,
        .acked_hook_arg = acked_hook_arg,
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
