/* outbox: cases.outbox rows written with the case change, relayed to Kafka in id order. */
#include "outbox.h"

#include "bx_buf.h"
#include "bx_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock that makes one relay at a time ("bx-escalate outbox"). */
#define RELAY_LOCK "7426004"

static outbox_hook_fn *acked_hook;
static void *acked_hook_arg;

void outbox_set_acked_hook(outbox_hook_fn *fn, void *arg)
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

bx_status outbox_add(PGconn *db, const char *topic, const char *key, const char *event_id,
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

/* Appends ",<id>" to a PostgreSQL array literal being built in buf. */
static bx_status append_id(bx_buf *ids, const char *id)
{
    return bx_buf_printf(ids, "%s%s", ids->len > 1 ? "," : "", id);
}

bx_status outbox_relay(PGconn *db, bx_producer *producer, int max, int timeout_ms, int *sent,
                       bx_error *err)
{
    *sent = 0;
    if (max < 1 || max > OUTBOX_BATCH_MAX)
        return BX_ERR(err, BX_EINVAL, "outbox batch must be 1 to %d, not %d", OUTBOX_BATCH_MAX,
                      max);
    char max_text[16];
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {max_text};
    PGresult *lock = NULL, *rows = NULL, *marked = NULL;
    bx_delivery_wait *wait = NULL;
    bx_delivery_slot *slots = NULL;
    bx_buf ids;
    bx_buf_init(&ids, 0);
    int queued = 0, acked = 0;

    bx_status s = bx_pg_exec(db, "BEGIN", err);
    IFOK(s,
         bx_pg_query(db, "SELECT pg_try_advisory_xact_lock(" RELAY_LOCK ")", 0, NULL, &lock, err));
    if (s == BX_OK && strcmp(PQgetvalue(lock, 0, 0), "t") != 0)
        goto out; /* another relay is sending: nothing to do here */
    IFOK(s, bx_pg_query(db,
                        "SELECT id, topic, msg_key, payload FROM cases.outbox "
                        "WHERE sent_at IS NULL ORDER BY id LIMIT $1::int FOR UPDATE SKIP LOCKED",
                        1, params, &rows, err));
    if (s != BX_OK || PQntuples(rows) == 0)
        goto out;
    int n = PQntuples(rows);
    wait = bx_delivery_wait_new();
    slots = calloc((size_t)n, sizeof(*slots));
    if (wait == NULL || slots == NULL) {
        s = BX_ERR(err, BX_ENOMEM, "no memory for %d outbox deliveries", n);
        goto out;
    }
    for (; queued < n; queued++) {
        const char *key = PQgetvalue(rows, queued, 2), *payload = PQgetvalue(rows, queued, 3);
        bx_delivery_slot_arm(&slots[queued], wait);
        bx_status q =
            bx_producer_send(producer, PQgetvalue(rows, queued, 1), key, strlen(key), payload,
                             strlen(payload), bx_delivery_slot_done, &slots[queued]);
        if (q != BX_OK) {
            /* done is not called for a refused message: settle the slot ourselves. Later rows
             * wait for the next relay, so the order holds. */
            bx_delivery_slot_done(&slots[queued], RD_KAFKA_RESP_ERR__FAIL);
            break;
        }
    }
    if (bx_delivery_wait_all(wait, timeout_ms) != BX_OK) {
        /* Deliveries still in flight will write into the slots later: they must stay allocated,
         * so they are left to the producer (a small leak on a rare path, not a crash). */
        wait = NULL;
        slots = NULL;
        s = BX_ERR(err, BX_ETIMEOUT, "outbox: kafka did not acknowledge %d messages in %d ms",
                   queued, timeout_ms);
        goto out;
    }
    if (acked_hook)
        acked_hook(acked_hook_arg);
    IFOK(s, bx_buf_puts(&ids, "{"));
    for (int i = 0; i < queued && s == BX_OK; i++)
        if (slots[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s = append_id(&ids, PQgetvalue(rows, i, 0));
            acked++;
        }
    IFOK(s, bx_buf_puts(&ids, "}"));
    const char *mark[] = {ids.data};
    if (acked > 0)
        IFOK(s,
             bx_pg_query(db, "UPDATE cases.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
                         1, mark, &marked, err));
    if (s == BX_OK && acked < n)
        s = BX_ERR(err, BX_ETRANSIENT, "outbox: %d of %d messages not acknowledged, kept",
                   n - acked, n);
out:
    if (s == BX_OK || s == BX_ETRANSIENT) {
        /* Commit what was acknowledged, also when some were not. */
        bx_status c = bx_pg_exec(db, "COMMIT", err);
        if (c != BX_OK) {
            s = c;
            acked = 0;
            bx_pg_rollback(db);
        }
    } else {
        acked = 0;
        bx_pg_rollback(db);
    }
    *sent = acked;
    PQclear(lock);
    PQclear(rows);
    PQclear(marked);
    free(slots);
    bx_delivery_wait_free(wait);
    bx_buf_free(&ids);
    return s;
}

bx_status outbox_pending(PGconn *db, long long *count, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL", 0,
                              NULL, &res, err);
    if (s == BX_OK)
        *count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return s;
}
