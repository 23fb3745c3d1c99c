/* timers: durable deadlines in cases.timer, claimed with a lease and fired exactly once. */
#include "timers.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Milliseconds since the epoch to timestamptz and back, exactly (no floating point). */

#define MAX_CLAIM 10000

static bx_status check_key(const char *key, bx_error *err)
{
    if (key == NULL || key[0] == '\0' || strlen(key) > TIMERS_KEY_MAX)
        return BX_ERR(err, BX_EINVAL, "timer key must be 1 to %d bytes", TIMERS_KEY_MAX);
    return BX_OK;
}

static bx_status check_owner(const char *owner_id, bx_error *err)
{
    if (owner_id == NULL || owner_id[0] == '\0' || strlen(owner_id) > TIMERS_OWNER_MAX)
        return BX_ERR(err, BX_EINVAL, "timer owner id must be 1 to %d bytes", TIMERS_OWNER_MAX);
    return BX_OK;
}

static int64_t parse_i64(const char *s)
{
    return (int64_t)strtoll(s, NULL, 10);
}

void timers_list_free(timers_list *list)
{
    if (list == NULL)
        return;
    for (int i = 0; i < list->count; i++)
        free(list->items[i].payload);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

bx_status timers_schedule(PGconn *db, const char *key, int64_t case_id, bx_time_ms due_at,
                          bx_error *err)
{
    return timers_schedule_with(db, key, case_id, due_at, NULL, NULL, NULL, err);
}

bx_status timers_schedule_with(PGconn *db, const char *key, int64_t case_id, bx_time_ms due_at,
                               const char *kind, const char *payload, int *created, bx_error *err)
{
    if (created)
        *created = 0;
    bx_status s = check_key(key, err);
    if (s != BX_OK)
        return s;
    char case_text[24], due_text[40];
    snprintf(case_text, sizeof(case_text), "%" PRId64, case_id);
    bx_time_format_pg(due_at, due_text);
    const char *params[] = {key, case_id > 0 ? case_text : NULL, due_text, kind ? kind : "deadline",
                            payload ? payload : "{}"};
    long long rows = 0;
    s = bx_pg_command(db,
                      "INSERT INTO cases.timer (timer_key, case_id, due_at, kind, payload) "
                      "VALUES ($1, $2::bigint, $3::timestamptz, $4, $5::jsonb) "
                      "ON CONFLICT (timer_key) DO NOTHING",
                      5, params, &rows, err);
    if (s == BX_OK && created)
        *created = rows > 0;
    return s;
}

bx_status timers_cancel(PGconn *db, const char *key, bx_time_ms now, int *cancelled, bx_error *err)
{
    if (cancelled)
        *cancelled = 0;
    bx_status s = check_key(key, err);
    if (s != BX_OK)
        return s;
    char now_text[40];
    bx_time_format_pg(now, now_text);
    const char *params[] = {key, now_text};
    long long rows = 0;
    s = bx_pg_command(db,
                      "UPDATE cases.timer SET fired_at = $2::timestamptz, cancelled = true "
                      "WHERE timer_key = $1 AND fired_at IS NULL",
                      2, params, &rows, err);
    if (s == BX_OK && cancelled)
        *cancelled = rows == 1;
    return s;
}

/* The columns a claim or a firing reads, into t. */
#define TIMER_COLUMNS                                                                              \
    "t.id, t.timer_key, coalesce(t.case_id, 0), t.kind, t.payload::text, "                         \
    "(extract(epoch FROM t.due_at) * 1000)::bigint, "                                              \
    "coalesce((extract(epoch FROM t.lease_until) * 1000)::bigint, 0), t.attempts"

static bx_status read_timers(PGresult *res, timers_list *out, bx_error *err)
{
    int n = PQntuples(res);
    out->items = n > 0 ? calloc((size_t)n, sizeof(*out->items)) : NULL;
    out->count = 0;
    if (n > 0 && out->items == NULL)
        return BX_ERR(err, BX_ENOMEM, "no memory for %d timers", n);
    for (int i = 0; i < n; i++) {
        timers_timer *t = &out->items[i];
        t->id = parse_i64(PQgetvalue(res, i, 0));
        snprintf(t->key, sizeof(t->key), "%s", PQgetvalue(res, i, 1));
        t->case_id = parse_i64(PQgetvalue(res, i, 2));
        snprintf(t->kind, sizeof(t->kind), "%s", PQgetvalue(res, i, 3));
        t->payload = strdup(PQgetvalue(res, i, 4));
        t->due_at = parse_i64(PQgetvalue(res, i, 5));
        t->lease_until = parse_i64(PQgetvalue(res, i, 6));
        t->attempts = (int)parse_i64(PQgetvalue(res, i, 7));
        out->count = i + 1;
        if (t->payload == NULL) {
            timers_list_free(out);
            return BX_ERR(err, BX_ENOMEM, "no memory for a timer's payload");
        }
    }
    return BX_OK;
}

bx_status timers_claim(PGconn *db, const char *owner_id, bx_time_ms now, int64_t lease_ms, int max,
                       timers_list *out, bx_error *err)
{
    out->items = NULL;
    out->count = 0;
    bx_status s = check_owner(owner_id, err);
    if (s != BX_OK)
        return s;
    if (max < 1 || max > MAX_CLAIM)
        return BX_ERR(err, BX_EINVAL, "timers to claim must be 1 to %d, not %d", MAX_CLAIM, max);
    if (lease_ms < 1)
        return BX_ERR(err, BX_EINVAL, "timer lease must be positive, not %" PRId64, lease_ms);
    PGresult *res = NULL;
    /* The inner SELECT locks the rows it picks and skips rows locked by a concurrent claimer or
     * firing, so two claimers never take the same timer and none waits for the other. */
    s = bx_pg_claim(db,
                    "UPDATE cases.timer t SET claimed_by = $1, lease_until = $3::timestamptz, "
                    "attempts = t.attempts + 1 "
                    "WHERE t.id IN (SELECT id FROM cases.timer "
                    "  WHERE fired_at IS NULL AND due_at <= $2::timestamptz "
                    "  AND (lease_until IS NULL OR lease_until < $2::timestamptz) "
                    "  ORDER BY due_at FOR UPDATE SKIP LOCKED LIMIT $4::int) "
                    "RETURNING " TIMER_COLUMNS,
                    owner_id, now, lease_ms, max, &res, err);
    IFOK(s, read_timers(res, out, err));
    PQclear(res);
    /* On failure the claims stand until their lease ends; nobody fires them meanwhile. */
    if (s != BX_OK)
        return s;
    /* Earliest first, as claimed (RETURNING keeps no order). */
    for (int i = 1; i < out->count; i++) {
        timers_timer cur = out->items[i];
        int j = i - 1;
        while (j >= 0 && (out->items[j].due_at > cur.due_at ||
                          (out->items[j].due_at == cur.due_at && out->items[j].id > cur.id))) {
            out->items[j + 1] = out->items[j];
            j--;
        }
        out->items[j + 1] = cur;
    }
    return BX_OK;
}

bx_status timers_fire(PGconn *db, const timers_timer *timer, const char *owner_id, bx_time_ms now,
                      timers_fire_fn *fire_fn, void *arg, bx_error *err)
{
    bx_status s = check_owner(owner_id, err);
    if (s != BX_OK)
        return s;
    char id_text[24], now_text[40];
    snprintf(id_text, sizeof(id_text), "%" PRId64, timer->id);
    bx_time_format_pg(now, now_text);
    const char *params[] = {id_text, owner_id, now_text};
    PGresult *res = NULL;
    s = bx_pg_exec(db, "BEGIN", err);
    /* The row lock serialises this firing against any other firing or claim of the timer: the
     * check below and the fired mark are one decision. */
    IFOK(s, bx_pg_query(db,
                        "SELECT fired_at IS NULL, claimed_by IS NOT DISTINCT FROM $2 "
                        "FROM cases.timer WHERE id = $1::bigint FOR UPDATE",
                        2, params, &res, err));
    if (s == BX_OK) {
        if (PQntuples(res) != 1)
            s = BX_ERR(err, BX_ENOTFOUND, "timer %s does not exist", timer->key);
        else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
            s = BX_ERR(err, BX_ECONFLICT, "timer %s has fired already", timer->key);
        else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
            s = BX_ERR(err, BX_ECONFLICT, "timer %s was taken over by another claimer", timer->key);
    }
    PQclear(res);
    res = NULL;
    IFOK(s, fire_fn(db, timer, arg, err));
    const char *mark[] = {id_text, now_text};
    IFOK(s,
         bx_pg_query(db, "UPDATE cases.timer SET fired_at = $2::timestamptz WHERE id = $1::bigint",
                     2, mark, &res, err));
    PQclear(res);
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(db);
    return s;
}

/* ids[0..n) as a bigint[] literal in b (emptied first). */
static bx_status ids_literal(bx_buf *b, const int64_t *ids, size_t stride, int n, bx_error *err)
{
    bx_buf_reset(b);
    bx_status s = bx_buf_puts(b, "{");
    for (int i = 0; i < n && s == BX_OK; i++)
        s = bx_buf_printf(b, "%s%" PRId64, i ? "," : "",
                          *(const int64_t *)(const void *)((const char *)ids + (size_t)i * stride));
    IFOK(s, bx_buf_puts(b, "}"));
    return s == BX_OK ? BX_OK : BX_ERR(err, BX_ENOMEM, "timers: out of memory");
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

bx_status timers_fire_batch(PGconn *db, const timers_list *list, const char *owner_id,
                            bx_time_ms now, timers_fire_fn *fire_fn, void *arg, int *fired,
                            bx_error *err)
{
    *fired = 0;
    bx_status s = check_owner(owner_id, err);
    if (s != BX_OK || list->count == 0)
        return s;
    bx_buf ids;
    bx_buf_init(&ids, 0);
    s = ids_literal(&ids, &list->items[0].id, sizeof(list->items[0]), list->count, err);
    if (s != BX_OK) {
        bx_buf_free(&ids);
        return s;
    }
    char now_text[40];
    bx_time_format_pg(now, now_text);
    const char *params[] = {ids.data, owner_id};
    PGresult *res = NULL;
    int64_t *held = NULL;
    int nheld = 0;
    s = bx_pg_exec(db, "BEGIN", err);
    /* Row locks in id order, as timers_fire takes them: the decision and the fired marks are one.
     */
    IFOK(s, bx_pg_query(db,
                        "SELECT id FROM cases.timer WHERE id = ANY($1::bigint[]) AND "
                        "fired_at IS NULL AND claimed_by = $2 ORDER BY id FOR UPDATE",
                        2, params, &res, err));
    if (s == BX_OK) {
        nheld = PQntuples(res);
        held = calloc((size_t)nheld + 1, sizeof(*held));
        if (held == NULL)
            s = BX_ERR(err, BX_ENOMEM, "timers: out of memory");
        for (int i = 0; i < nheld && s == BX_OK; i++)
            held[i] = parse_i64(PQgetvalue(res, i, 0));
    }
    PQclear(res);
    res = NULL;
    int count = 0;
    for (int i = 0; i < list->count && s == BX_OK; i++) {
        const timers_timer *t = &list->items[i];
        if (bsearch(&t->id, held, (size_t)nheld, sizeof(*held), cmp_i64) == NULL)
            continue; /* fired already, or another claimer holds it now */
        s = fire_fn(db, t, arg, err);
        count += s == BX_OK;
    }
    if (s == BX_OK && nheld > 0) {
        s = ids_literal(&ids, held, sizeof(*held), nheld, err);
        const char *mark[] = {ids.data, now_text};
        IFOK(s, bx_pg_query(db,
                            "UPDATE cases.timer SET fired_at = $2::timestamptz "
                            "WHERE id = ANY($1::bigint[])",
                            2, mark, &res, err));
        PQclear(res);
    }
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(db);
    else
        *fired = count;
    free(held);
    bx_buf_free(&ids);
    return s;
}

bx_status timers_fire_due(PGconn *db, const char *owner_id, bx_time_ms now, int max,
                          timers_fire_fn *fire_fn, timers_flush_fn *flush_fn, void *arg, int *fired,
                          timers_list *failed, bx_error *err)
{
    return timers_fire_due_prepared(db, owner_id, now, max, NULL, fire_fn, flush_fn, arg, fired,
                                    failed, err);
}

bx_status timers_fire_due_prepared(PGconn *db, const char *owner_id, bx_time_ms now, int max,
                                   timers_prepare_fn *prepare_fn, timers_fire_fn *fire_fn,
                                   timers_flush_fn *flush_fn, void *arg, int *fired,
                                   timers_list *failed, bx_error *err)
{
    *fired = 0;
    if (failed) {
        failed->items = NULL;
        failed->count = 0;
    }
    bx_status s = check_owner(owner_id, err);
    if (s != BX_OK)
        return s;
    if (max < 1 || max > MAX_CLAIM)
        return BX_ERR(err, BX_EINVAL, "timers to fire must be 1 to %d, not %d", MAX_CLAIM, max);
    char now_text[40], max_text[16];
    bx_time_format_pg(now, now_text);
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {now_text, max_text};
    PGresult *res = NULL;
    timers_list list = {0};
    s = bx_pg_exec(db, "BEGIN", err);
    /* The row locks make the firing and any other claim or firing of these timers one decision;
     * rows locked by another replica are skipped, not waited for. A timer whose lease runs is
     * being fired one by one by its claimer: left to it. */
    IFOK(s, bx_pg_query(db,
                        "SELECT " TIMER_COLUMNS " FROM cases.timer t "
                        "WHERE t.fired_at IS NULL AND t.due_at <= $1::timestamptz "
                        "AND (t.lease_until IS NULL OR t.lease_until < $1::timestamptz) "
                        "ORDER BY t.due_at, t.id FOR UPDATE SKIP LOCKED LIMIT $2::int",
                        2, params, &res, err));
    IFOK(s, read_timers(res, &list, err));
    PQclear(res);
    res = NULL;
    if (s == BX_OK && prepare_fn && list.count > 0)
        s = prepare_fn(db, &list, arg, err);
    for (int i = 0; i < list.count && s == BX_OK; i++)
        s = fire_fn(db, &list.items[i], arg, err);
    if (s == BX_OK && flush_fn && list.count > 0)
        s = flush_fn(db, arg, err);
    bx_buf ids;
    bx_buf_init(&ids, 0);
    if (s == BX_OK && list.count > 0) {
        s = ids_literal(&ids, &list.items[0].id, sizeof(list.items[0]), list.count, err);
        const char *mark[] = {ids.data, now_text, owner_id};
        IFOK(s, bx_pg_query(db,
                            "UPDATE cases.timer SET fired_at = $2::timestamptz, claimed_by = $3, "
                            "lease_until = NULL, attempts = attempts + 1 "
                            "WHERE id = ANY($1::bigint[])",
                            3, mark, &res, err));
        PQclear(res);
    }
    bx_buf_free(&ids);
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
        if (failed)
            *failed = list;
        else
            timers_list_free(&list);
        return s;
    }
    *fired = list.count;
    timers_list_free(&list);
    return BX_OK;
}

bx_status timers_release(PGconn *db, const char *owner_id, int *released, bx_error *err)
{
    if (released)
        *released = 0;
    bx_status s = check_owner(owner_id, err);
    if (s != BX_OK)
        return s;
    const char *params[] = {owner_id};
    long long rows = 0;
    s = bx_pg_command(db,
                      "UPDATE cases.timer SET claimed_by = NULL, lease_until = NULL "
                      "WHERE claimed_by = $1 AND fired_at IS NULL",
                      1, params, &rows, err);
    if (s == BX_OK && released)
        *released = (int)rows;
    return s;
}

bx_status timers_due_count(PGconn *db, bx_time_ms now, long long *count, bx_error *err)
{
    char now_text[40];
    bx_time_format_pg(now, now_text);
    const char *params[] = {now_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "SELECT count(*) FROM cases.timer "
                              "WHERE fired_at IS NULL AND due_at <= $1::timestamptz",
                              1, params, &res, err);
    if (s == BX_OK)
        *count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return s;
}
