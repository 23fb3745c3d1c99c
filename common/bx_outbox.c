/* bx_outbox: one relay for every outbox table, so the order and at-least-once rules live once. */
#include "bx_outbox.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_pg.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDENT_MAX 63 /* PostgreSQL's NAMEDATALEN - 1 */

static bool ident_char(char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

/* The length of the identifier ([a-z_][a-z0-9_]*) name starts with, 0 when it starts with none. */
static size_t ident_len(const char *name)
{
    size_t n = 0;
    while (ident_char(name[n], n == 0))
        n++;
    return n;
}

/* "schema.name" or "name", each part an unquoted lower-case identifier, so the text is safe to
 * put into SQL as it is. */
static bool table_valid(const char *table)
{
    if (table == NULL)
        return false;
    size_t first = ident_len(table);
    if (first == 0 || first > IDENT_MAX)
        return false;
    if (table[first] == '\0')
        return true;
    if (table[first] != '.')
        return false;
    size_t second = ident_len(table + first + 1);
    return second > 0 && second <= IDENT_MAX && table[first + 1 + second] == '\0';
}

static bx_status table_checked(const char *table, bx_error *err)
{
    if (table_valid(table))
        return BX_OK;
    return BX_ERR(err, BX_EINVAL,
                  "outbox table must be [schema.]name of lower-case identifiers "
                  "([a-z_][a-z0-9_]*, up to %d bytes each), not \"%.80s\"",
                  IDENT_MAX, table ? table : "(null)");
}

static bx_status check_text(const char *what, const char *value, size_t max, bx_error *err)
{
    if (value == NULL || value[0] == '\0' || strlen(value) > max)
        return BX_ERR(err, BX_EINVAL, "outbox %s must be 1 to %zu bytes", what, max);
    return BX_OK;
}

bx_status bx_outbox_add(PGconn *db, const char *table, const bx_outbox_message *m, int *added,
                        bx_error *err)
{
    assert(db != NULL && m != NULL);
    if (added)
        *added = 0;
    const char *key = m->key && m->key[0] ? m->key : "unknown";
    bx_status s = table_checked(table, err);
    IFOK(s, check_text("topic", m->topic, 100, err));
    IFOK(s, check_text("key", key, 128, err));
    IFOK(s, check_text("payload", m->payload, 1000000, err));
    if (s == BX_OK && m->event_id)
        s = check_text("event_id", m->event_id, 128, err);
    if (s != BX_OK)
        return s;
    /* The optional columns and their parameters, by [event_id given][created_at given]. */
    static const char *const columns[2][2] = {{"", ", created_at"},
                                              {", event_id", ", event_id, created_at"}};
    static const char *const values[2][2] = {{"", ", $4::timestamptz"},
                                             {", $4", ", $4, $5::timestamptz"}};
    int has_id = m->event_id != NULL, has_at = m->created_at > 0;
    char created[40];
    const char *params[5] = {m->topic, key, m->payload};
    int n = 3;
    if (has_id)
        params[n++] = m->event_id;
    if (has_at) {
        bx_time_format_pg(m->created_at, created);
        params[n++] = created;
    }
    /* The table is at most 2 * IDENT_MAX + 1 bytes, so the statement fits. */
    char sql[320];
    int len = snprintf(sql, sizeof(sql),
                       "INSERT INTO %s (topic, msg_key, payload%s) VALUES ($1, $2, $3%s)%s", table,
                       columns[has_id][has_at], values[has_id][has_at],
                       has_id ? " ON CONFLICT (event_id) DO NOTHING" : "");
    assert(len > 0 && (size_t)len < sizeof(sql));
    (void)len;
    long long rows = 0;
    s = bx_pg_command(db, sql, n, params, &rows, err);
    if (s == BX_OK && added)
        *added = rows > 0;
    return s;
}

/* Appends ",<id>" to a PostgreSQL array literal being built in ids. */
static bx_status append_id(bx_buf *ids, const char *id)
{
    return bx_buf_printf(ids, "%s%s", ids->len > 1 ? "," : "", id);
}

/* The relay's options as bx_outbox_relay takes them. */
static bx_status relay_opts_checked(const bx_outbox_relay_opts *opts, bx_error *err)
{
    bx_status checked = table_checked(opts->table, err);
    if (checked != BX_OK)
        return checked;
    if (opts->max < 1 || opts->max > BX_OUTBOX_BATCH_MAX)
        return BX_ERR(err, BX_EINVAL, "%s: relay batch must be 1 to %d, not %d", opts->table,
                      BX_OUTBOX_BATCH_MAX, opts->max);
    if (opts->timeout_ms < 0)
        return BX_ERR(err, BX_EINVAL, "%s: relay timeout must be 0 ms or more, not %d", opts->table,
                      opts->timeout_ms);
    return BX_OK;
}

/* The relay's statements on its table: the rows waiting, and marking rows sent. The table is at
 * most 2 * IDENT_MAX + 1 bytes, so the statements fit. */
static void relay_statements(const bx_outbox_relay_opts *opts, bool from_start,
                             char select_sql[320], char mark_sql[256])
{
    int len = snprintf(select_sql, 320,
                       "SELECT id, topic, msg_key, payload FROM %s WHERE sent_at IS NULL%s "
                       "ORDER BY id LIMIT $1::int%s",
                       opts->table, from_start ? "" : " AND id > $2::bigint",
                       opts->lock_rows ? " FOR UPDATE SKIP LOCKED" : "");
    assert(len > 0 && len < 320);
    len = snprintf(mark_sql, 256, "UPDATE %s SET sent_at = now() WHERE id = ANY($1::bigint[])",
                   opts->table);
    assert(len > 0 && len < 256);
    (void)len;
}

/* After a relay: past its last row when every row was sent; else (or after a failure) the next
 * relay reads from the start. A scan from the start sets the time of the next one. */
static void cursor_moved(bx_outbox_cursor *c, bool from_start, long long now, bx_status s,
                         PGresult *rows, int n, int acked)
{
    if (c == NULL)
        return;
    if (s != BX_OK || acked < n) {
        c->rescan_at_ms = 0;
        return;
    }
    if (from_start)
        c->rescan_at_ms = now + c->rescan_ms;
    if (n > 0) {
        int64_t last = strtoll(PQgetvalue(rows, n - 1, 0), NULL, 10);
        if (last > c->after)
            c->after = last;
    }
}

/* Queues the n rows (id, topic, msg_key, payload) in order, each with its slot armed on wait,
 * until the producer refuses one (*refused; the rows after it wait for the next relay, so the
 * order holds); *queued counts those sent, the refused one included. */
static void relay_queue(bx_producer *producer, PGresult *rows, int n, bx_delivery_wait *wait,
                        bx_delivery_slot *slots, int *queued, bool *refused)
{
    for (*queued = 0; *queued < n; (*queued)++) {
        int i = *queued;
        const char *key = PQgetvalue(rows, i, 2), *payload = PQgetvalue(rows, i, 3);
        bx_delivery_slot_arm(&slots[i], wait);
        if (bx_producer_send(producer, PQgetvalue(rows, i, 1), key, strlen(key), payload,
                             strlen(payload), bx_delivery_slot_done, &slots[i]) != BX_OK) {
            /* done is not called for a refused message: settle the slot here. */
            bx_delivery_slot_done(&slots[i], RD_KAFKA_RESP_ERR__FAIL);
            *refused = true;
            break;
        }
    }
}

/* Marks sent (mark_sql, ids built in ids) the rows whose queued messages were acknowledged;
 * *acked counts them. Only the slots of queued messages count: the refused one failed, the ones
 * after it were never armed (and calloc's zero reads as "no error"). */
static bx_status relay_mark(PGconn *db, const char *mark_sql, PGresult *rows,
                            const bx_delivery_slot *slots, int queued, bx_buf *ids, int *acked,
                            bx_error *err)
{
    bx_status s = bx_buf_puts(ids, "{");
    for (int i = 0; i < queued && s == BX_OK; i++)
        if (slots[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s = append_id(ids, PQgetvalue(rows, i, 0));
            (*acked)++;
        }
    IFOK(s, bx_buf_puts(ids, "}"));
    if (*acked > 0)
        IFOK(s, bx_pg_command(db, mark_sql, 1, (const char *[]){ids->data}, NULL, err));
    return s;
}

bx_status bx_outbox_relay(PGconn *db, bx_producer *producer, const bx_outbox_relay_opts *opts,
                          int *sent, bx_error *err)
{
    assert(db != NULL && producer != NULL && opts != NULL && sent != NULL);
    *sent = 0;
    bx_status checked = relay_opts_checked(opts, err);
    if (checked != BX_OK)
        return checked;
    const char *table = opts->table;
    bx_outbox_cursor *cursor = opts->cursor;
    long long now = bx_monotonic_ms();
    bool from_start = cursor == NULL || now >= cursor->rescan_at_ms;
    char select_sql[320], mark_sql[256], lock_text[24], max_text[16], after_text[24];
    relay_statements(opts, from_start, select_sql, mark_sql);
    snprintf(lock_text, sizeof(lock_text), "%" PRId64, opts->lock_key);
    snprintf(max_text, sizeof(max_text), "%d", opts->max);
    snprintf(after_text, sizeof(after_text), "%" PRId64, cursor ? cursor->after : 0);

    PGresult *lock = NULL, *rows = NULL;
    bx_delivery_wait *wait = NULL;
    bx_delivery_slot *slots = NULL;
    bx_buf ids;
    bx_buf_init(&ids, 0);
    int n = 0, queued = 0, acked = 0;
    bool refused = false;

    bx_status s = bx_pg_exec(db, "BEGIN", err);
    IFOK(s, bx_pg_query(db, "SELECT pg_try_advisory_xact_lock($1::bigint)", 1,
                        (const char *[]){lock_text}, &lock, err));
    if (s == BX_OK && strcmp(PQgetvalue(lock, 0, 0), "t") != 0)
        goto out; /* another relay is sending: nothing to do here */
    IFOK(s, bx_pg_query(db, select_sql, from_start ? 1 : 2, (const char *[]){max_text, after_text},
                        &rows, err));
    if (s != BX_OK || PQntuples(rows) == 0)
        goto out;
    n = PQntuples(rows);
    wait = bx_delivery_wait_new();
    slots = calloc((size_t)n, sizeof(*slots));
    if (wait == NULL || slots == NULL) {
        s = BX_ERR(err, BX_ENOMEM, "%s: no memory for %d outbox deliveries", table, n);
        goto out;
    }
    relay_queue(producer, rows, n, wait, slots, &queued, &refused);
    if (bx_delivery_wait_all(wait, opts->timeout_ms) != BX_OK) {
        /* Deliveries still in flight will write into the slots later: they must stay allocated,
         * so they are left to the producer (a small leak on a rare path, not a crash). */
        wait = NULL;
        slots = NULL;
        s = BX_ERR(err, BX_ETIMEOUT, "%s: kafka did not acknowledge %d messages in %d ms", table,
                   queued, opts->timeout_ms);
        goto out;
    }
    if (opts->acked_hook)
        opts->acked_hook(opts->acked_hook_arg);
    s = relay_mark(db, mark_sql, rows, slots, queued, &ids, &acked, err);
    if (s == BX_OK && acked < n)
        s = BX_ERR(err, BX_ETRANSIENT, "%s: %d of %d messages not acknowledged, kept%s", table,
                   n - acked, n,
                   refused ? " (the producer refused one; the rows after it wait)" : "");
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
    if (rows != NULL || s != BX_OK) /* read the table, or failed: not when another relay sends */
        cursor_moved(cursor, from_start, now, s, rows, n, acked);
    PQclear(lock);
    PQclear(rows);
    free(slots);
    bx_delivery_wait_free(wait);
    bx_buf_free(&ids);
    return s;
}
