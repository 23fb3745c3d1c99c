/* store: bx-escalate's SQL: one ladder step into the case tables, and the calendar duties'
 * reads (store.h). */
#include "store.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_map.h"
#include "bx_pg.h"
#include "messages.h"
#include "outbox.h"
#include "state_json.h"
#include "timers.h"

#include <inttypes.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SELECT_CASE_OF_STUDENT                                                                     \
    "SELECT id, closed_at IS NOT NULL, school_id, state::text FROM cases.case "                    \
    "WHERE student_id = $1 ORDER BY closed_at IS NULL DESC, opened_at DESC, id DESC LIMIT 1 "      \
    "FOR UPDATE"
#define SELECT_CASE_BY_ID                                                                          \
    "SELECT id, closed_at IS NOT NULL, school_id, state::text FROM cases.case WHERE id = $1 "      \
    "FOR UPDATE"

static bx_status exec_params(PGconn *db, const char *sql, int n, const char *const *params,
                             bx_error *err)
{
    return bx_pg_command(db, sql, n, params, NULL, err);
}

/* ---- writes queued for a batch of steps ---- */

/* The queued rows, as text[] literals being built, one array per column. */
enum { EV_CASE, EV_ID, EV_KIND, EV_STAGE, EV_ACTOR, EV_REASON, EV_LATE, EV_AT, EV_PAYLOAD, EV_N };
enum { OB_TOPIC, OB_KEY, OB_ID, OB_PAYLOAD, OB_N };
enum { TI_CASE, TI_KEY, TI_KIND, TI_STAGE, TI_ROLE, TI_STAFF, TI_CREATED, TI_DUE, TI_N };
enum { TD_KEY, TD_AT, TD_BY, TD_N };
enum { TO_KEY, TO_AT, TO_N };
enum { TR_KEY, TR_STAFF, TR_CASE, TR_N };
enum { TX_KEY, TX_OUTCOME, TX_AT, TX_N };
enum { MI_KEY, MI_CASE, MI_DUE, MI_N };
enum { MC_KEY, MC_AT, MC_N };
enum {
    NC_STUDENT,
    NC_SCHOOL,
    NC_OPENED,
    NC_STAGE,
    NC_STATE,
    NC_UPDATED,
    NC_CLOSED,
    NC_ENDING,
    NC_N
};

/* One kind of queued row: its columns and how many rows. */
typedef struct queue_group {
    bx_buf cols[EV_N];
    int ncols, rows;
} queue_group;

enum {
    G_EVENTS,
    G_OUTBOX,
    G_TASKS,
    G_DONE,
    G_OVERDUE,
    G_REASSIGN,
    G_OUTCOME,
    G_TIMERS,
    G_TIMER_CANCELS,
    G_N
};

#define TAGS_MAX 4096

/* A case row loaded for a batch of firings (escalate_store_prefetch_cases), as the last step of
 * the batch left it. */
typedef struct kept_case {
    int64_t row_id;
    bool closed;
    char school[BX_ID_MAX + 1];
    char *state; /* its state JSON; owned */
    /* a step changed it: written by the flush with these */
    bool changed;
    const char *stage, *ending; /* the policy's names, static */
    char updated[40], closed_at[40];
    bool has_bands; /* the analysts' bands of its student were read */
    escalate_bands bands;
} kept_case;

struct escalate_store_batch {
    queue_group g[G_N];
    bx_map *changed;    /* task and timer keys with a queued change: a second one flushes first */
    bx_map *event_tags; /* event id -> tag + 1 */
    int new_events[TAGS_MAX];
    kept_case *kept; /* the batch's case rows, locked; nkept of them */
    int nkept;
    bx_map *kept_of; /* case row id (decimal) -> index + 1 into kept */
    /* New case rows queued (escalate_store_batch_defer_new_cases): the k-th of the transaction
     * goes by the id -(k + 1) in the rows queued for it until a flush inserts it; new_ids[k] is
     * its row id once inserted, and the statements of the queued rows translate the ids below 0
     * through it (a step's rows may be queued across a flush). */
    bool defer_cases;
    queue_group new_cases;
    bx_map *new_case_of; /* student id -> k + 1, while the student's new case is queued */
    int64_t *new_ids;
    int nnew, ninserted, new_cap;
    /* The case rows of a run's students, read and locked in one statement
     * (escalate_store_prefetch_students); each taken once, by its student's first load. */
    struct student_row {
        char *id, *closed, *school, *state; /* the columns as read; id NULL: no row */
        bool taken;
    } * student_rows;
    int nstudent_rows;
    bx_map *student_row_of; /* student id -> index + 1 into student_rows */
};

static const int group_cols[G_N] = {EV_N, OB_N, TI_N, TD_N, TO_N, TR_N, TX_N, MI_N, MC_N};

static void group_init(queue_group *grp, int ncols)
{
    grp->ncols = ncols;
    grp->rows = 0;
    for (int c = 0; c < ncols; c++)
        bx_buf_init(&grp->cols[c], 0);
}

static void group_empty(queue_group *grp)
{
    for (int c = 0; c < grp->ncols; c++)
        bx_buf_reset(&grp->cols[c]);
    grp->rows = 0;
}

static void group_free(queue_group *grp)
{
    for (int c = 0; c < grp->ncols; c++)
        bx_buf_free(&grp->cols[c]);
}

/* Appends one row to the group (values in column order). */
static bx_status group_add(queue_group *grp, const char *const *values, bx_error *err)
{
    bx_status s = BX_OK;
    for (int c = 0; c < grp->ncols && s == BX_OK; c++)
        s = bx_pg_text_array_add(&grp->cols[c], values[c]);
    if (s != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "a batch of case writes does not fit in memory");
    grp->rows++;
    return BX_OK;
}

/* Ends the group's arrays and points params[c] at column c's literal (params holds ncols). */
static bx_status group_params(queue_group *grp, const char **params, bx_error *err)
{
    bx_status s = BX_OK;
    for (int c = 0; c < grp->ncols && s == BX_OK; c++) {
        s = bx_pg_text_array_end(&grp->cols[c]);
        params[c] = grp->cols[c].data;
    }
    if (s != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "a batch of case writes does not fit in memory");
    return BX_OK;
}

/* Queues one row of group g (values in column order). */
static bx_status queue_row(escalate_store_batch *q, int g, const char *const *values, bx_error *err)
{
    return group_add(&q->g[g], values, err);
}

static void forget_student_rows(escalate_store_batch *q)
{
    for (int i = 0; i < q->nstudent_rows; i++) {
        struct student_row *r = &q->student_rows[i];
        free(r->id);
        free(r->closed);
        free(r->school);
        free(r->state);
    }
    free(q->student_rows);
    q->student_rows = NULL;
    q->nstudent_rows = 0;
    bx_map_free(q->student_row_of);
    q->student_row_of = NULL;
}

static void forget_kept(escalate_store_batch *q)
{
    for (int i = 0; i < q->nkept; i++)
        free(q->kept[i].state);
    free(q->kept);
    q->kept = NULL;
    q->nkept = 0;
    bx_map_free(q->kept_of);
    q->kept_of = NULL;
}

/* Empties the queue and forgets the kept case rows: after a flush what runs next reads the
 * table (a calendar duty writes case rows of its own). */
static void empty_groups(escalate_store_batch *q)
{
    for (int g = 0; g < G_N; g++)
        group_empty(&q->g[g]);
    group_empty(&q->new_cases);
    bx_map_free(q->changed);
    bx_map_free(q->event_tags);
    bx_map_free(q->new_case_of);
    q->changed = bx_map_new();
    q->event_tags = bx_map_new();
    q->new_case_of = bx_map_new();
    forget_kept(q);
}

bx_status escalate_store_batch_new(escalate_store_batch **out, bx_error *err)
{
    escalate_store_batch *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return BX_ERR(err, BX_ENOMEM, "store: out of memory");
    for (int g = 0; g < G_N; g++)
        group_init(&q->g[g], group_cols[g]);
    group_init(&q->new_cases, NC_N);
    empty_groups(q);
    if (q->changed == NULL || q->event_tags == NULL || q->new_case_of == NULL) {
        escalate_store_batch_free(q);
        return BX_ERR(err, BX_ENOMEM, "store: out of memory");
    }
    *out = q;
    return BX_OK;
}

void escalate_store_batch_free(escalate_store_batch *q)
{
    if (q == NULL)
        return;
    for (int g = 0; g < G_N; g++)
        group_free(&q->g[g]);
    group_free(&q->new_cases);
    bx_map_free(q->changed);
    bx_map_free(q->event_tags);
    bx_map_free(q->new_case_of);
    free(q->new_ids);
    forget_kept(q);
    forget_student_rows(q);
    free(q);
}

void escalate_store_batch_clear(escalate_store_batch *q)
{
    if (q == NULL)
        return;
    empty_groups(q);
    memset(q->new_events, 0, sizeof(q->new_events));
    q->nnew = q->ninserted = 0;
    forget_student_rows(q);
}

void escalate_store_batch_defer_new_cases(escalate_store_batch *q, bool defer)
{
    if (q != NULL)
        q->defer_cases = defer;
}

bx_status escalate_store_batch_before_load(PGconn *db, escalate_store_batch *q,
                                           const char *student_id, bx_error *err)
{
    if (q == NULL || q->new_cases.rows == 0 || bx_map_get(q->new_case_of, student_id) == NULL)
        return BX_OK;
    return escalate_store_batch_flush(db, q, err);
}

/* A case row id as written: a queued new case's -(k + 1) by its row id once inserted. */
static int64_t real_case_id(const escalate_store_batch *q, int64_t id)
{
    if (q == NULL || id >= 0 || -id > q->ninserted)
        return id;
    return q->new_ids[-id - 1];
}

int escalate_store_batch_new_events(const escalate_store_batch *q, int tag)
{
    return q && tag >= 0 && tag < TAGS_MAX ? q->new_events[tag] : 0;
}

/* The statement of each group: $1.. its columns, in order, as arrays. */
static const char *const group_sql[G_N] = {
    [G_EVENTS] =
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, late, "
        "occurred_at, payload) SELECT CASE WHEN c < 0 THEN ($10::bigint[])[-c] ELSE c END, "
        "i, k, s, a, r, l, t, p::jsonb FROM unnest("
        "$1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
        "$7::boolean[], $8::timestamptz[], $9::text[]) WITH ORDINALITY "
        "AS u(c, i, k, s, a, r, l, t, p, o) ORDER BY o "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    [G_OUTBOX] = "INSERT INTO cases.outbox (topic, msg_key, payload, event_id) SELECT t, k, p, i "
                 "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
                 "AS u(t, k, i, p, o) ORDER BY o ON CONFLICT (event_id) DO NOTHING",
    [G_TASKS] = "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, "
                "owner_staff_id, created_at, due_at) SELECT CASE WHEN c < 0 THEN "
                "($9::bigint[])[-c] ELSE c END, k, n, s, r, w, a, d FROM unnest("
                "$1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
                "$7::timestamptz[], $8::timestamptz[]) WITH ORDINALITY "
                "AS u(c, k, n, s, r, w, a, d, o) ORDER BY o ON CONFLICT (task_key) DO NOTHING",
    [G_DONE] = "UPDATE cases.task t SET done_at = u.a, done_by = u.b FROM unnest($1::text[], "
               "$2::timestamptz[], $3::text[]) AS u(k, a, b) WHERE t.task_key = u.k AND "
               "t.done_at IS NULL",
    [G_OVERDUE] = "UPDATE cases.task t SET overdue_at = u.a FROM unnest($1::text[], "
                  "$2::timestamptz[]) AS u(k, a) WHERE t.task_key = u.k AND t.overdue_at IS NULL",
    [G_REASSIGN] = "UPDATE cases.task t SET owner_staff_id = u.w FROM unnest($1::text[], "
                   "$2::text[], $3::bigint[]) AS u(k, w, c) WHERE t.task_key = u.k AND "
                   "t.case_id = CASE WHEN u.c < 0 THEN ($4::bigint[])[-u.c] ELSE u.c END",
    [G_OUTCOME] = "UPDATE cases.task t SET outcome = u.x, ended_at = u.a FROM unnest($1::text[], "
                  "$2::text[], $3::timestamptz[]) AS u(k, x, a) WHERE t.task_key = u.k AND "
                  "t.outcome IS NULL",
    [G_TIMERS] = "INSERT INTO cases.timer (timer_key, case_id, due_at, kind, payload) "
                 "SELECT k, CASE WHEN c < 0 THEN ($4::bigint[])[-c] ELSE c END, d, 'deadline', "
                 "'{}'::jsonb FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) "
                 "WITH ORDINALITY AS u(k, c, d, o) ORDER BY o "
                 "ON CONFLICT (timer_key) DO NOTHING",
    [G_TIMER_CANCELS] = "UPDATE cases.timer m SET fired_at = u.a, cancelled = true FROM unnest("
                        "$1::text[], $2::timestamptz[]) AS u(k, a) WHERE m.timer_key = u.k AND "
                        "m.fired_at IS NULL",
};

/* The groups whose rows name a case row: the ids of the new cases are their last parameter. */
static bool names_case(int g)
{
    return g == G_EVENTS || g == G_TASKS || g == G_REASSIGN || g == G_TIMERS;
}

/* The queued new case rows in one statement, in the order they were queued; their ids into
 * q->new_ids by student (a student has one new case queued at most: loading its case writes the
 * queue first, escalate_store_batch_before_load). */
static bx_status insert_new_cases(PGconn *db, escalate_store_batch *q, bx_error *err)
{
    const char *params[NC_N];
    bx_status s = group_params(&q->new_cases, params, err);
    if (s != BX_OK)
        return s;
    PGresult *res = NULL;
    s = bx_pg_query(db,
                    "INSERT INTO cases.case (student_id, school_id, opened_at, stage, state, "
                    "updated_at, closed_at, ending) SELECT s, h, o, g, j::jsonb, t, c, e FROM "
                    "unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], "
                    "$6::timestamptz[], $7::timestamptz[], $8::text[]) WITH ORDINALITY "
                    "AS u(s, h, o, g, j, t, c, e, n) ORDER BY n RETURNING student_id, id",
                    NC_N, params, &res, err);
    int got = s == BX_OK ? PQntuples(res) : 0;
    for (int r = 0; r < got && s == BX_OK; r++) {
        intptr_t k = (intptr_t)bx_map_get(q->new_case_of, PQgetvalue(res, r, 0)) - 1;
        if (k < q->ninserted || k >= q->nnew)
            s = BX_ERR(err, BX_EINVAL, "a new case row of no queued student");
        else
            q->new_ids[k] = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    }
    if (s == BX_OK && got != q->new_cases.rows)
        s = BX_ERR(err, BX_EINVAL, "%d new case rows inserted of %d", got, q->new_cases.rows);
    PQclear(res);
    if (s == BX_OK)
        q->ninserted = q->nnew;
    return s;
}

/* Queues a new case row (values in the order of insert_new_cases' columns) and gives it the id
 * -(k + 1) in *row_id. */
static bx_status queue_new_case(escalate_store_batch *q, const char *const *values, int64_t *row_id,
                                bx_error *err)
{
    if (q->nnew == q->new_cap) {
        int cap = q->new_cap ? 2 * q->new_cap : 256;
        int64_t *ids = realloc(q->new_ids, (size_t)cap * sizeof(*ids));
        if (ids == NULL)
            return BX_ERR(err, BX_ENOMEM, "store: out of memory");
        q->new_ids = ids;
        q->new_cap = cap;
    }
    bx_status s = group_add(&q->new_cases, values, err);
    if (s != BX_OK)
        return s;
    if (bx_map_put(q->new_case_of, values[NC_STUDENT], (void *)(intptr_t)(q->nnew + 1)) != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "a batch of case writes does not fit in memory");
    q->new_ids[q->nnew] = 0;
    *row_id = -(int64_t)(++q->nnew);
    return BX_OK;
}

/* The ids of the transaction's new cases inserted so far as a bigint[] literal into b. */
static bx_status new_ids_literal(const escalate_store_batch *q, bx_buf *b)
{
    bx_status s = bx_buf_puts(b, "{");
    for (int k = 0; k < q->ninserted && s == BX_OK; k++)
        s = bx_buf_printf(b, "%s%" PRId64, k ? "," : "", q->new_ids[k]);
    IFOK(s, bx_buf_puts(b, "}"));
    return s;
}

/* The kept case rows a step changed, each once with its latest state: one UPDATE. */
static bx_status write_kept_cases(PGconn *db, escalate_store_batch *q, bx_error *err)
{
    enum { KC_ID, KC_STAGE, KC_STATE, KC_UPDATED, KC_CLOSED, KC_ENDING, KC_N };
    bx_buf cols[KC_N];
    for (int c = 0; c < KC_N; c++)
        bx_buf_init(&cols[c], 0);
    bx_status s = BX_OK;
    int rows = 0;
    for (int i = 0; i < q->nkept && s == BX_OK; i++) {
        const kept_case *k = &q->kept[i];
        if (!k->changed)
            continue;
        char id[24];
        snprintf(id, sizeof(id), "%" PRId64, k->row_id);
        const char *v[KC_N] = {
            id, k->stage, k->state, k->updated, k->closed ? k->closed_at : NULL, k->ending};
        for (int c = 0; c < KC_N && s == BX_OK; c++)
            s = bx_pg_text_array_add(&cols[c], v[c]);
        rows++;
    }
    const char *params[KC_N];
    for (int c = 0; c < KC_N && s == BX_OK; c++) {
        s = bx_pg_text_array_end(&cols[c]);
        params[c] = cols[c].data;
    }
    if (s != BX_OK)
        s = BX_ERR(err, BX_ENOMEM, "a batch of case writes does not fit in memory");
    else if (rows > 0)
        s = bx_pg_command(db,
                          "UPDATE cases.case c SET stage = u.s, state = u.j::jsonb, updated_at = "
                          "u.t, closed_at = u.c, ending = u.e FROM unnest($1::bigint[], "
                          "$2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], "
                          "$6::text[]) AS u(i, s, j, t, c, e) WHERE c.id = u.i",
                          KC_N, params, NULL, err);
    for (int c = 0; c < KC_N; c++)
        bx_buf_free(&cols[c]);
    return s;
}

bx_status escalate_store_batch_flush(PGconn *db, escalate_store_batch *q, bx_error *err)
{
    bx_status s = q->new_cases.rows > 0 ? insert_new_cases(db, q, err) : BX_OK;
    IFOK(s, write_kept_cases(db, q, err));
    bx_buf ids;
    bx_buf_init(&ids, 0);
    if (s == BX_OK && new_ids_literal(q, &ids) != BX_OK)
        s = BX_ERR(err, BX_ENOMEM, "store: out of memory");
    for (int g = 0; g < G_N && s == BX_OK; g++) {
        queue_group *grp = &q->g[g];
        if (grp->rows == 0)
            continue;
        const char *params[EV_N + 1];
        s = group_params(grp, params, err);
        if (s != BX_OK)
            break;
        int n = grp->ncols;
        if (names_case(g))
            params[n++] = ids.data;
        PGresult *res = NULL;
        s = bx_pg_query(db, group_sql[g], n, params, &res, err);
        for (int r = 0; s == BX_OK && g == G_EVENTS && r < PQntuples(res); r++) {
            intptr_t tag = (intptr_t)bx_map_get(q->event_tags, PQgetvalue(res, r, 0)) - 1;
            if (tag >= 0 && tag < TAGS_MAX)
                q->new_events[tag]++;
        }
        PQclear(res);
    }
    bx_buf_free(&ids);
    if (s == BX_OK)
        empty_groups(q);
    return s;
}

/* A task or timer key about to get a change queued: when one is queued already, the queue is
 * written first, so the two apply in their order. */
static bx_status before_change(PGconn *db, escalate_store_batch *q, char kind, const char *key,
                               bx_error *err)
{
    char k[TIMERS_KEY_MAX + 4];
    snprintf(k, sizeof(k), "%c\x1f%s", kind, key);
    bx_status s = BX_OK;
    if (bx_map_get(q->changed, k) != NULL)
        s = escalate_store_batch_flush(db, q, err);
    IFOK(s, bx_map_put(q->changed, k, (void *)1));
    return s;
}

bx_status escalate_store_queue_event(escalate_store_batch *q, int tag, int64_t case_id,
                                     const char *event_id, const char *kind, const char *stage,
                                     const char *actor, const char *reason, bool late,
                                     const char *occurred, const char *payload, bx_error *err)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, case_id);
    const char *v[EV_N] = {id,     event_id,         kind,     stage,  actor,
                           reason, late ? "t" : "f", occurred, payload};
    bx_status s = queue_row(q, G_EVENTS, v, err);
    if (s == BX_OK && tag >= 0 &&
        bx_map_put(q->event_tags, event_id, (void *)(intptr_t)(tag + 1)) != BX_OK)
        s = BX_ERR(err, BX_ENOMEM, "store: out of memory");
    return s;
}

bx_status escalate_store_queue_outbox(escalate_store_batch *q, const char *topic, const char *key,
                                      const char *event_id, const char *payload, bx_error *err)
{
    /* bx_outbox_add's bounds, refused as it refuses them */
    if (key == NULL || key[0] == '\0')
        key = "unknown";
    size_t lt = topic ? strlen(topic) : 0, lk = strlen(key), lp = payload ? strlen(payload) : 0,
           li = event_id ? strlen(event_id) : 0;
    if (lt < 1 || lt > 100)
        return BX_ERR(err, BX_EINVAL, "outbox topic must be 1 to 100 bytes");
    if (lk > 128)
        return BX_ERR(err, BX_EINVAL, "outbox key must be 1 to 128 bytes");
    if (lp < 1 || lp > 1000000)
        return BX_ERR(err, BX_EINVAL, "outbox payload must be 1 to 1000000 bytes");
    if (li < 1 || li > 128)
        return BX_ERR(err, BX_EINVAL, "outbox event_id must be 1 to 128 bytes");
    const char *v[OB_N] = {topic, key, event_id, payload};
    return queue_row(q, G_OUTBOX, v, err);
}

bx_status escalate_store_queue_overdue(PGconn *db, escalate_store_batch *q, const char *task_key,
                                       const char *at, bx_error *err)
{
    bx_status s = before_change(db, q, 't', task_key, err);
    const char *v[TO_N] = {task_key, at};
    IFOK(s, queue_row(q, G_OVERDUE, v, err));
    return s;
}

/* ---- one ladder step ---- */

/* row and *state from a case row's columns (id, closed "t"/"f", school, state JSON). */
static bx_status case_of_columns(const ladder_policy *policy, const char *id, const char *closed,
                                 const char *school, const char *state_json, size_t len,
                                 escalate_store_case *row, case_state *state, bx_error *err)
{
    row->row_id = strtoll(id, NULL, 10);
    row->closed = strcmp(closed, "t") == 0;
    snprintf(row->school, sizeof(row->school), "%s", school);
    bx_status s = state_json_decode(policy, state_json, len, state, err);
    if (s != BX_OK) {
        /* Neither reset nor skipped: the input fails, a message is retried and a timer fired
         * again after its lease, until the state or the policy is put right. */
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        s = BX_ERR(err, s, "case row %lld: %s", (long long)row->row_id, why);
        bx_log_error("%s", err->msg);
    }
    return s;
}

/* The row sql selects by param (id, closed, school, state), locked. */
static bx_status load_case(PGconn *db, const ladder_policy *policy, const char *sql,
                           const char *param, escalate_store_case *row, case_state *state,
                           bx_error *err)
{
    PGresult *res = NULL;
    memset(row, 0, sizeof(*row));
    bx_status s = bx_pg_query(db, sql, 1, (const char *[]){param}, &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        s = case_of_columns(policy, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                            PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                            (size_t)PQgetlength(res, 0, 3), row, state, err);
    PQclear(res);
    return s;
}

bx_status escalate_store_case_of_student(PGconn *db, const ladder_policy *policy,
                                         const char *student_id, escalate_store_case *row,
                                         case_state *state, bx_error *err)
{
    return load_case(db, policy, SELECT_CASE_OF_STUDENT, student_id, row, state, err);
}

/* Reads the case rows sql selects, $1 the array literal in ids, and locks them (FOR UPDATE);
 * built is the status of making the literal, s = lock_case_rows(..., s, ...) as bx_pg_end takes
 * it. Frees ids. On BX_OK *res is the result (caller PQclear). */
static bx_status lock_case_rows(PGconn *db, const char *sql, bx_buf *ids, bx_status built,
                                PGresult **res, bx_error *err)
{
    bx_status s = built;
    if (s != BX_OK)
        s = BX_ERR(err, BX_ENOMEM, "store: out of memory");
    else
        s = bx_pg_query(db, sql, 1, (const char *[]){ids->data}, res, err);
    bx_buf_free(ids);
    return s;
}

/* A copy of v, or NULL (and *ok false) when out of memory. */
static char *copy_of(const char *v, bool *ok)
{
    char *c = strdup(v);
    *ok = *ok && c != NULL;
    return c;
}

bx_status escalate_store_prefetch_students(PGconn *db, escalate_store_batch *q,
                                           const char *const *students, int n, bx_error *err)
{
    forget_student_rows(q);
    bx_buf ids;
    bx_buf_init(&ids, 0);
    bx_status s = bx_pg_text_array(&ids, students, n);
    PGresult *res = NULL;
    /* SELECT_CASE_OF_STUDENT's row of each student, locked in id order */
    s = lock_case_rows(db,
                       "SELECT id, closed_at IS NOT NULL, school_id, state::text, student_id FROM "
                       "cases.case WHERE id IN (SELECT DISTINCT ON (student_id) id FROM cases.case "
                       "WHERE student_id = ANY($1::text[]) ORDER BY student_id, closed_at IS NULL "
                       "DESC, opened_at DESC, id DESC) ORDER BY id FOR UPDATE",
                       &ids, s, &res, err);
    int rows = s == BX_OK ? PQntuples(res) : 0;
    bool ok = true;
    if (s == BX_OK) {
        q->student_rows = calloc((size_t)n + 1, sizeof(*q->student_rows));
        q->student_row_of = bx_map_new();
        ok = q->student_rows != NULL && q->student_row_of != NULL;
    }
    /* the students with a row, then (no row) the others, each once */
    for (int r = 0; r < rows && ok; r++) {
        const char *student = PQgetvalue(res, r, 4);
        if (bx_map_get(q->student_row_of, student) != NULL)
            continue;
        struct student_row *k = &q->student_rows[q->nstudent_rows++];
        k->id = copy_of(PQgetvalue(res, r, 0), &ok);
        k->closed = copy_of(PQgetvalue(res, r, 1), &ok);
        k->school = copy_of(PQgetvalue(res, r, 2), &ok);
        k->state = copy_of(PQgetvalue(res, r, 3), &ok);
        ok = ok &&
             bx_map_put(q->student_row_of, student, (void *)(intptr_t)q->nstudent_rows) == BX_OK;
    }
    for (int i = 0; i < n && s == BX_OK && ok; i++) {
        if (bx_map_get(q->student_row_of, students[i]) != NULL || q->nstudent_rows > n)
            continue;
        q->nstudent_rows++;
        ok =
            bx_map_put(q->student_row_of, students[i], (void *)(intptr_t)q->nstudent_rows) == BX_OK;
    }
    PQclear(res);
    if (s == BX_OK && !ok)
        s = BX_ERR(err, BX_ENOMEM, "store: out of memory");
    if (s != BX_OK)
        forget_student_rows(q);
    return s;
}

bx_status escalate_store_case_of_student_in(PGconn *db, escalate_store_batch *q,
                                            const ladder_policy *policy, const char *student_id,
                                            escalate_store_case *row, case_state *state,
                                            bx_error *err)
{
    intptr_t at = q && q->student_row_of ? (intptr_t)bx_map_get(q->student_row_of, student_id) : 0;
    struct student_row *k = at > 0 ? &q->student_rows[at - 1] : NULL;
    if (k == NULL || k->taken)
        return escalate_store_case_of_student(db, policy, student_id, row, state, err);
    k->taken = true; /* the next input of the student reads what this one's step wrote */
    memset(row, 0, sizeof(*row));
    if (k->id == NULL)
        return BX_OK;
    return case_of_columns(policy, k->id, k->closed, k->school, k->state, strlen(k->state), row,
                           state, err);
}

bx_status escalate_store_case_by_id(PGconn *db, const ladder_policy *policy, int64_t case_id,
                                    escalate_store_case *row, case_state *state, bx_error *err)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)case_id);
    return load_case(db, policy, SELECT_CASE_BY_ID, id, row, state, err);
}

static kept_case *kept_case_of(const escalate_store_batch *q, int64_t row_id)
{
    if (q == NULL || q->kept_of == NULL)
        return NULL;
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, row_id);
    intptr_t at = (intptr_t)bx_map_get(q->kept_of, id);
    return at > 0 ? &q->kept[at - 1] : NULL;
}

/* A kept row's update for the flush: its new state, stage, closing. */
static bx_status keep_case(kept_case *k, const ladder_policy *policy, const case_state *after,
                           bx_buf *state, bx_error *err)
{
    char *copy = strdup(state->data);
    if (copy == NULL)
        return BX_ERR(err, BX_ENOMEM, "store: out of memory");
    free(k->state);
    k->state = copy;
    k->changed = true;
    k->closed = !after->open && after->ending != LADDER_END_NONE;
    k->stage = ladder_stage_name(policy, after->stage);
    k->ending = k->closed ? ladder_ending_name(after->ending) : NULL;
    bx_time_format(bx_clock_now(), k->updated, sizeof(k->updated));
    bx_time_format(after->closed_at, k->closed_at, sizeof(k->closed_at));
    return BX_OK;
}

/* Writes the case row of `after` (insert or update), returning its id in *row_id; a row kept in
 * q (escalate_store_prefetch_cases) is updated there, for the flush. */
static bx_status write_case(PGconn *db, escalate_store_batch *q, const ladder_policy *policy,
                            bool insert, const char *school, const case_state *after,
                            int64_t *row_id, bx_error *err)
{
    bx_buf state;
    bx_buf_init(&state, 1 << 20);
    char opened[40], updated[40], closed[40], id[24];
    bx_time_format(after->opened_at, opened, sizeof(opened));
    bx_time_format(bx_clock_now(), updated, sizeof(updated));
    bx_time_format(after->closed_at, closed, sizeof(closed));
    bool is_closed = !after->open && after->ending != LADDER_END_NONE;
    const char *ending = is_closed ? ladder_ending_name(after->ending) : NULL;
    bx_status s = state_json_encode(policy, after, &state, err);
    if (s != BX_OK) {
        bx_buf_free(&state);
        return s; /* err names the case */
    }
    kept_case *k = insert ? NULL : kept_case_of(q, *row_id);
    if (k != NULL) {
        s = keep_case(k, policy, after, &state, err);
        bx_buf_free(&state);
        return s;
    }
    PGresult *res = NULL;
    if (insert) {
        const char *params[] = {after->student_id,
                                school,
                                opened,
                                ladder_stage_name(policy, after->stage),
                                state.data,
                                updated,
                                is_closed ? closed : NULL,
                                ending};
        if (q != NULL && q->defer_cases) {
            s = queue_new_case(q, params, row_id, err);
            bx_buf_free(&state);
            return s;
        }
        s = bx_pg_query(
            db,
            "INSERT INTO cases.case (student_id, school_id, opened_at, stage, state, "
            "updated_at, closed_at, ending) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) "
            "RETURNING id",
            8, params, &res, err);
        if (s == BX_OK)
            *row_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    } else {
        snprintf(id, sizeof(id), "%lld", (long long)*row_id);
        const char *params[] = {id,
                                ladder_stage_name(policy, after->stage),
                                state.data,
                                updated,
                                is_closed ? closed : NULL,
                                ending};
        s = bx_pg_query(db,
                        "UPDATE cases.case SET stage = $2, state = $3::jsonb, updated_at = $4, "
                        "closed_at = $5, ending = $6 WHERE id = $1",
                        6, params, &res, err);
    }
    PQclear(res);
    bx_buf_free(&state);
    return s;
}

/* A task change of one row at once, by the group it is queued in: the same columns in the same
 * order as group_sql's. */
static const char *const row_sql[G_N] = {
    [G_TASKS] = "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, "
                "owner_staff_id, created_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (task_key) DO NOTHING",
    [G_DONE] = "UPDATE cases.task SET done_at = $2, done_by = $3 WHERE task_key = $1 AND "
               "done_at IS NULL",
    [G_OVERDUE] = "UPDATE cases.task SET overdue_at = $2 WHERE task_key = $1 AND "
                  "overdue_at IS NULL",
    [G_REASSIGN] = "UPDATE cases.task SET owner_staff_id = $2 WHERE task_key = $1 AND "
                   "case_id = $3::bigint",
};

/* The change event e makes to its task (created, done, overdue, reassigned) in case row id:
 * queued in q (a change of a task queued already flushes first), or written at once. */
static bx_status write_task(PGconn *db, escalate_store_batch *q, const char *id,
                            const messages_context *ctx, const ladder_event *e,
                            const char *occurred, const char *actor, bx_error *err)
{
    char due[40], created[40];
    const char *v[TI_N];
    int g;
    switch (e->kind) {
    case LADDER_EV_TASK_CREATED:
        bx_time_format(e->due_at, due, sizeof(due));
        bx_time_format(e->at, created, sizeof(created));
        g = G_TASKS;
        memcpy(v,
               (const char *[TI_N]){id, e->task_key, e->task_kind, e->stage, e->owner_role,
                                    messages_staff_of(ctx, e->owner_role), created, due},
               sizeof(v));
        break;
    case LADDER_EV_TASK_DONE:
        g = G_DONE;
        memcpy(v, (const char *[TD_N]){e->task_key, occurred, actor}, TD_N * sizeof(*v));
        break;
    case LADDER_EV_TASK_OVERDUE:
        g = G_OVERDUE;
        memcpy(v, (const char *[TO_N]){e->task_key, occurred}, TO_N * sizeof(*v));
        break;
    case LADDER_EV_NOTE: /* task_reassigned: the task's new owner */
        if (e->owner_staff_id[0] == '\0')
            return BX_OK;
        g = G_REASSIGN;
        memcpy(v, (const char *[TR_N]){e->task_key, e->owner_staff_id, id}, TR_N * sizeof(*v));
        break;
    default:
        return BX_OK;
    }
    if (q == NULL)
        return exec_params(db, row_sql[g], group_cols[g], v, err);
    bx_status s = g == G_TASKS ? BX_OK : before_change(db, q, 't', e->task_key, err);
    IFOK(s, queue_row(q, g, v, err));
    return s;
}

/* Writes event e of the step (its row, its outbox row, its task change) into case row_id, built
 * in b. *added is 1 when the event was not written before. */
static bx_status write_event(PGconn *db, escalate_store_batch *q, int tag, int64_t row_id,
                             const case_state *after, const messages_context *ctx,
                             const ladder_event *e, bx_buf *b, int *added, bx_error *err)
{
    char id[24], occurred[40];
    snprintf(id, sizeof(id), "%lld", (long long)row_id);
    bx_time_format(e->at, occurred, sizeof(occurred));
    bx_buf_reset(b);
    bx_status s = messages_case_event(after, ctx, e, b);
    if (s != BX_OK)
        return BX_ERR(err, s, "case %s: cannot build event %s", after->case_id, e->event_id);
    const char *actor = e->actor[0] ? e->actor : "bx-escalate";
    if (q != NULL) {
        *added = 0; /* counted by the flush */
        bx_status qs =
            escalate_store_queue_event(q, tag, row_id, e->event_id, ladder_event_name(e->kind),
                                       e->stage, actor, e->reason, e->late, occurred, b->data, err);
        IFOK(qs, escalate_store_queue_outbox(q, BX_TOPIC_CASE_EVENTS, after->student_id,
                                             e->event_id, b->data, err));
        if (qs != BX_OK || e->task_kind == NULL || e->task_key[0] == '\0')
            return qs;
        return write_task(db, q, id, ctx, e, occurred, actor, err);
    }
    PGresult *res = NULL;
    const char *params[] = {id,     e->event_id, ladder_event_name(e->kind), e->stage,
                            actor,  e->reason,   e->late ? "t" : "f",        occurred,
                            b->data};
    s = bx_pg_query(db,
                    "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, late, "
                    "occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) "
                    "ON CONFLICT (event_id) DO NOTHING RETURNING id",
                    9, params, &res, err);
    *added = s == BX_OK && PQntuples(res) == 1;
    PQclear(res);
    IFOK(s, escalate_outbox_add(db, BX_TOPIC_CASE_EVENTS, after->student_id, e->event_id, b->data,
                                NULL, err));
    if (s != BX_OK || e->task_kind == NULL || e->task_key[0] == '\0')
        return s;
    return write_task(db, NULL, id, ctx, e, occurred, actor, err);
}

/* Did this step supersede task t (a recurrence replaced by the next; not superseded before)? */
static bool superseded_now(const case_state *before, const ladder_task *t)
{
    if (t->state != LADDER_TASK_SUPERSEDED || t->rule < 0)
        return false;
    for (int k = 0; k < before->ntasks; k++)
        if (before->tasks[k].state == LADDER_TASK_SUPERSEDED &&
            strcmp(before->tasks[k].key, t->key) == 0)
            return false;
    return true;
}

/* Did the step's events fire the deadline of task key (it went overdue in this step)? Its timer
 * is firing now: fired, not cancelled. */
static bool deadline_fired_now(const ladder_effects *fx, const char *key)
{
    for (int e = 0; e < fx->nevents; e++)
        if (fx->events[e].kind == LADDER_EV_TASK_OVERDUE &&
            strcmp(fx->events[e].task_key, key) == 0)
            return true;
    return false;
}

/* Did the step close the case? */
static bool closed_now(const ladder_effects *fx)
{
    for (int i = 0; i < fx->nevents; i++)
        if (fx->events[i].kind == LADDER_EV_CLOSED)
            return true;
    return false;
}

/* Was the task of key live (open or overdue) in state s? */
static bool live_before(const case_state *s, const char *key)
{
    for (int k = 0; k < s->ntasks; k++)
        if (strcmp(s->tasks[k].key, key) == 0)
            return s->tasks[k].state == LADDER_TASK_OPEN ||
                   s->tasks[k].state == LADDER_TASK_OVERDUE;
    return false;
}

static bx_status write_task_endings(PGconn *db, escalate_store_batch *q, int64_t row_id,
                                    const case_state *before, const case_state *after,
                                    const ladder_effects *fx, bx_error *err);

/* write_task_endings with the changes queued: a task superseded or cancelled and its timer as
 * they come; closing the case writes the queue and cancels at once (every task and timer of the
 * case, whatever is queued for them). */
static bx_status queue_task_endings(PGconn *db, escalate_store_batch *q, int64_t row_id,
                                    const case_state *before, const case_state *after,
                                    const ladder_effects *fx, bx_error *err)
{
    if (closed_now(fx) && !after->open) {
        bx_status s = escalate_store_batch_flush(db, q, err);
        IFOK(s, write_task_endings(db, NULL, real_case_id(q, row_id), before, after, fx, err));
        return s;
    }
    char at[40];
    bx_time_format(fx->events[fx->nevents - 1].at, at, sizeof(at));
    bx_status s = BX_OK;
    for (int i = 0; i < after->ntasks && s == BX_OK; i++) {
        const ladder_task *t = &after->tasks[i];
        if (!superseded_now(before, t))
            continue;
        const char *v[TX_N] = {t->key, "superseded", at};
        s = before_change(db, q, 't', t->key, err);
        IFOK(s, queue_row(q, G_OUTCOME, v, err));
    }
    /* the stages left: their tasks cancelled in this step */
    for (int i = 0; i < after->ntasks && s == BX_OK; i++) {
        const ladder_task *t = &after->tasks[i];
        if (t->state != LADDER_TASK_CANCELLED || t->rule < 0 || !live_before(before, t->key))
            continue;
        const char *v[TX_N] = {t->key, "cancelled", at};
        s = before_change(db, q, 't', t->key, err);
        IFOK(s, queue_row(q, G_OUTCOME, v, err));
        if (!deadline_fired_now(fx, t->key) && s == BX_OK) {
            if (t->key[0] == '\0' || strlen(t->key) > TIMERS_KEY_MAX)
                return BX_ERR(err, BX_EINVAL, "timer key must be 1 to %d bytes", TIMERS_KEY_MAX);
            char when[40];
            bx_time_format_pg(fx->events[fx->nevents - 1].at, when);
            const char *m[MC_N] = {t->key, when};
            s = before_change(db, q, 'm', t->key, err);
            IFOK(s, queue_row(q, G_TIMER_CANCELS, m, err));
        }
    }
    return s;
}

/* The endings a step gives tasks besides done: closing the case cancels every task of it still
 * open and its waiting timers; moving past a stage cancels that stage's tasks that do not carry
 * over, with their timers; a missed recurrence replaced by the next is superseded. Written after
 * the step's timers, so a timer of a task the step both made and ended is cancelled too. */
static bx_status write_task_endings(PGconn *db, escalate_store_batch *q, int64_t row_id,
                                    const case_state *before, const case_state *after,
                                    const ladder_effects *fx, bx_error *err)
{
    if (fx->nevents == 0)
        return BX_OK;
    if (q != NULL)
        return queue_task_endings(db, q, row_id, before, after, fx, err);
    char id[24], at[40];
    snprintf(id, sizeof(id), "%lld", (long long)row_id);
    bx_time_format(fx->events[fx->nevents - 1].at, at, sizeof(at));
    bx_status s = BX_OK;
    for (int i = 0; i < after->ntasks && s == BX_OK; i++)
        if (superseded_now(before, &after->tasks[i]))
            s = exec_params(db,
                            "UPDATE cases.task SET outcome = 'superseded', ended_at = $2 WHERE "
                            "task_key = $1 AND outcome IS NULL",
                            2, (const char *[]){after->tasks[i].key, at}, err);
    if (!closed_now(fx) || after->open) {
        /* the stages left: their tasks cancelled in this step */
        for (int i = 0; i < after->ntasks && s == BX_OK; i++) {
            const ladder_task *t = &after->tasks[i];
            if (t->state != LADDER_TASK_CANCELLED || t->rule < 0 || !live_before(before, t->key))
                continue;
            s = exec_params(db,
                            "UPDATE cases.task SET outcome = 'cancelled', ended_at = $2 WHERE "
                            "task_key = $1 AND outcome IS NULL",
                            2, (const char *[]){t->key, at}, err);
            /* a task whose deadline fired in this step (it went overdue, then its stage was
             * left) is fired, not cancelled */
            if (!deadline_fired_now(fx, t->key))
                IFOK(s, timers_cancel(db, t->key, fx->events[fx->nevents - 1].at, NULL, err));
        }
        return s;
    }
    char closed_at[40];
    bx_time_format(after->closed_at, closed_at, sizeof(closed_at));
    IFOK(s, exec_params(db,
                        "UPDATE cases.task SET outcome = 'cancelled', ended_at = $2 WHERE "
                        "case_id = $1 AND outcome IS NULL",
                        2, (const char *[]){id, closed_at}, err));
    IFOK(s, exec_params(db,
                        "UPDATE cases.timer SET fired_at = $2, cancelled = true WHERE "
                        "case_id = $1 AND fired_at IS NULL",
                        2, (const char *[]){id, closed_at}, err));
    return s;
}

bx_status escalate_store_write_step(PGconn *db, const ladder_policy *policy,
                                    const escalate_store_step *step, int *new_events, bx_error *err)
{
    const ladder_effects *fx = step->fx;
    const case_state *before = step->before, *after = step->after;
    int64_t row_id = step->row->row_id;
    bool closed = step->row->closed;
    bool opened_new = after->open && (row_id == 0 || strcmp(after->case_id, before->case_id) != 0);
    *new_events = 0;
    if (row_id != 0 && closed && after->open && !opened_new)
        return BX_OK; /* an old input of a closed case, beyond the ring: a replay */
    if (row_id != 0 && closed && after->open && opened_new) {
        /* A new case with the first absent day of any earlier one is a replay too. */
        PGresult *res = NULL;
        bx_status s =
            bx_pg_query(db,
                        "SELECT 1 FROM cases.case WHERE student_id = $1 AND "
                        "state->>'case_id' = $2",
                        2, (const char *[]){after->student_id, after->case_id}, &res, err);
        bool seen = s == BX_OK && PQntuples(res) > 0;
        PQclear(res);
        if (s != BX_OK || seen)
            return s;
    }
    if (row_id == 0 && !after->open && fx->nevents == 0)
        return BX_OK; /* no case and none opened */
    int64_t id = row_id;
    bx_status s = write_case(db, step->batch, policy, opened_new, step->school, after, &id, err);
    const bx_reg_student *student = step->student;
    messages_context ctx = {step->school,
                            student && student->klass ? student->klass->homeroom_staff_id : ""};
    escalate_store_batch *q = step->batch;
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    for (int i = 0; i < fx->nevents && s == BX_OK; i++) {
        int added = 0;
        s = write_event(db, q, step->tag, id, after, &ctx, &fx->events[i], &b, &added, err);
        *new_events += added;
    }
    if (step->analytics)
        IFOK(s, escalate_analytics_queue_step(db, step->analytics, after, fx, q, err));
    for (int i = 0; i < fx->ntimers && s == BX_OK; i++) {
        if (q == NULL) {
            s = timers_schedule(db, fx->timers[i].key, id, fx->timers[i].due_at, err);
            continue;
        }
        const char *key = fx->timers[i].key;
        if (key[0] == '\0' || strlen(key) > TIMERS_KEY_MAX) {
            s = BX_ERR(err, BX_EINVAL, "timer key must be 1 to %d bytes", TIMERS_KEY_MAX);
            break;
        }
        char case_text[24], due[40];
        snprintf(case_text, sizeof(case_text), "%" PRId64, id);
        bx_time_format_pg(fx->timers[i].due_at, due);
        const char *v[MI_N] = {key, id != 0 ? case_text : NULL, due};
        s = queue_row(q, G_TIMERS, v, err);
    }
    IFOK(s, write_task_endings(db, q, id, before, after, fx, err));
    for (int i = 0; i < fx->nnotes && s == BX_OK; i++) {
        bx_buf_reset(&b);
        s = messages_notify_request(after, &ctx, &fx->notes[i], &b);
        if (s != BX_OK)
            s = BX_ERR(err, s, "case %s: cannot build request %s", after->case_id,
                       fx->notes[i].request_id);
        if (q != NULL)
            IFOK(s, escalate_store_queue_outbox(q, BX_TOPIC_NOTIFY_REQUESTS, after->student_id,
                                                fx->notes[i].request_id, b.data, err));
        else
            IFOK(s, escalate_outbox_add(db, BX_TOPIC_NOTIFY_REQUESTS, after->student_id,
                                        fx->notes[i].request_id, b.data, NULL, err));
    }
    bx_buf_free(&b);
    return s;
}

/* ---- a batch of case timers ---- */

bx_status escalate_store_prefetch_cases(PGconn *db, const escalate_store_firing *f,
                                        const timers_list *list, bx_error *err)
{
    escalate_store_batch *q = f->batch;
    if (q == NULL || list->count == 0)
        return BX_OK;
    forget_kept(q);
    bx_buf ids;
    bx_buf_init(&ids, 0);
    bx_status s = bx_buf_puts(&ids, "{");
    for (int i = 0, n = 0; i < list->count && s == BX_OK; i++)
        if (list->items[i].case_id > 0)
            s = bx_buf_printf(&ids, "%s%" PRId64, n++ ? "," : "", list->items[i].case_id);
    IFOK(s, bx_buf_puts(&ids, "}"));
    PGresult *res = NULL;
    /* locked in id order: two batches (or replicas) never wait on each other in a circle */
    s = lock_case_rows(db,
                       "SELECT id, closed_at IS NOT NULL, school_id, state::text, student_id FROM "
                       "cases.case WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                       &ids, s, &res, err);
    int n = s == BX_OK ? PQntuples(res) : 0;
    const char **students = NULL;
    escalate_bands *bands = NULL;
    if (n > 0) {
        q->kept = calloc((size_t)n, sizeof(*q->kept));
        q->kept_of = bx_map_new();
        students = calloc((size_t)n, sizeof(*students));
        bands = calloc((size_t)n, sizeof(*bands));
        if (q->kept == NULL || q->kept_of == NULL || students == NULL || bands == NULL)
            s = BX_ERR(err, BX_ENOMEM, "store: out of memory");
    }
    for (int r = 0; r < n && s == BX_OK; r++) {
        kept_case *k = &q->kept[r];
        k->row_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        k->closed = strcmp(PQgetvalue(res, r, 1), "t") == 0;
        snprintf(k->school, sizeof(k->school), "%s", PQgetvalue(res, r, 2));
        k->state = strdup(PQgetvalue(res, r, 3));
        students[r] = PQgetvalue(res, r, 4);
        q->nkept = r + 1;
        if (k->state == NULL ||
            bx_map_put(q->kept_of, PQgetvalue(res, r, 0), (void *)(intptr_t)(r + 1)) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "store: out of memory");
    }
    /* the analysts' bands of the batch's students in one statement, not one per firing */
    if (s == BX_OK && n > 0 && f->pseudonym_key && f->pseudonym_key[0]) {
        s = escalate_analytics_bands_of(db, students, n, bands, err);
        for (int r = 0; r < n && s == BX_OK; r++) {
            q->kept[r].bands = bands[r];
            q->kept[r].has_bands = true;
        }
    }
    free(students);
    free(bands);
    PQclear(res);
    if (s != BX_OK)
        forget_kept(q);
    return s;
}

/* A case timer's deadline as the ladder's input. */
static void deadline_input(const timers_timer *timer, ladder_input *in)
{
    memset(in, 0, sizeof(*in));
    in->kind = LADDER_IN_DEADLINE;
    in->at = timer->due_at;
    in->date = bx_time_local_date(timer->due_at);
    in->return_date = in->first_date = in->last_date = BX_DATE_NONE;
    in->streak_start = BX_DATE_NONE;
    snprintf(in->timer_key, sizeof(in->timer_key), "%s", timer->key);
    snprintf(in->event_id, sizeof(in->event_id), "timer:%.*s", (int)sizeof(in->event_id) - 7,
             timer->key);
}

bx_status escalate_store_fire_deadline(PGconn *db, const escalate_store_firing *f,
                                       const timers_timer *timer, int *new_events, bx_error *err)
{
    *new_events = 0;
    escalate_store_case row = {0};
    memset(f->before, 0, sizeof(*f->before));
    const kept_case *k = kept_case_of(f->batch, timer->case_id);
    escalate_bands bands = {{0}, {0}};
    bool has_bands = k && k->has_bands;
    bx_status s;
    if (k != NULL) {
        char id[24];
        snprintf(id, sizeof(id), "%" PRId64, k->row_id);
        s = case_of_columns(f->policy, id, k->closed ? "t" : "f", k->school, k->state,
                            strlen(k->state), &row, f->before, err);
        bands = k->bands;
    } else {
        s = escalate_store_case_by_id(db, f->policy, timer->case_id, &row, f->before, err);
    }
    if (s != BX_OK || row.row_id == 0)
        return s;
    const bx_reg_student *student = bx_registry_student(f->registry, f->before->student_id);
    const bx_reg_school *sch =
        student ? student->school : bx_registry_school(f->registry, row.school);
    if (sch == NULL || sch->calendar == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "case %s: school %s not in the registry",
                      f->before->case_id, row.school);
    ladder_input in;
    deadline_input(timer, &in);
    bx_error step_err = {0};
    s = ladder_step(f->policy, sch->calendar, f->before, &in, f->after, f->fx, &step_err);
    if (s == BX_EINVAL) {
        bx_log_warn("timer %s: %s; fired without effect", timer->key, step_err.msg);
        return BX_OK;
    }
    if (s != BX_OK)
        return BX_ERR(err, s, "timer %s: %s", timer->key, step_err.msg);
    const escalate_analytics_ctx analytics = {
        .key = f->pseudonym_key,
        .grade_band = has_bands ? bands.grade_band : NULL, /* NULL: read by the step */
        .sex = has_bands ? bands.sex : NULL,
        .topic = f->analytics_topic,
        .policy = f->policy,
        .school = student && student->school ? student->school
                                             : bx_registry_school(f->registry, row.school),
        .input = &in};
    const escalate_store_step step = {&row,  row.school, student,  f->before, f->after,
                                      f->fx, &analytics, f->batch, 0};
    return escalate_store_write_step(db, f->policy, &step, new_events, err);
}

/* ---- the calendar duties' reads ---- */

/* A registry-enrolled child that was seen by no reported roll call of its class in the window
 * (attendance.seen_codes(), migration 0009: present, late, early leave or leave), in a class that
 * did report then: $1 calendar, $2 the term's first day, $3 the check day. A class that reported
 * nothing says nothing. */
#define SELECT_NO_SHOWS                                                                            \
    "SELECT st.id, st.school_id, cl.grade FROM registry.student st "                               \
    "JOIN registry.school sc ON sc.id = st.school_id JOIN registry.class cl ON cl.id = "           \
    "st.class_id "                                                                                 \
    "WHERE sc.calendar_id = $1 AND st.status = 'enrolled' "                                        \
    "AND (st.enrolled_on IS NULL OR st.enrolled_on <= $2::date) "                                  \
    "AND EXISTS (SELECT 1 FROM attendance.class_report r WHERE r.class_id = st.class_id "          \
    "            AND r.day BETWEEN $2::date AND $3::date) "                                        \
    "AND NOT EXISTS (SELECT 1 FROM attendance.fact f WHERE f.student_id = st.id "                  \
    "            AND f.day BETWEEN $2::date AND $3::date "                                         \
    "            AND f.value = ANY (attendance.seen_codes())) "                                    \
    "AND NOT EXISTS (SELECT 1 FROM attendance.class_report r WHERE r.class_id = st.class_id "      \
    "            AND r.day BETWEEN $2::date AND $3::date AND NOT EXISTS (SELECT 1 FROM "           \
    "            attendance.fact f WHERE f.student_id = st.id AND f.day = r.day "                  \
    "            AND f.period = r.period)) "                                                       \
    "ORDER BY st.id"
/* Children who left a school from a transition grade and are enrolled nowhere: $1 calendar, $2
 * the grades. */
#define SELECT_TRANSITION_LOSSES                                                                   \
    "SELECT st.id, st.school_id, cl.grade FROM registry.student st "                               \
    "JOIN registry.school sc ON sc.id = st.school_id JOIN registry.class cl ON cl.id = "           \
    "st.class_id "                                                                                 \
    "WHERE sc.calendar_id = $1 AND st.status = 'graduated' AND cl.grade = ANY ($2::int[]) "        \
    "ORDER BY st.id"
/* Per county of the calendar's schools: open cases not on the roster (suspected, 疑似辍学), open
 * cases on it (辍学; cases.on_roster, migration 0009), cases opened and returned in [$2, $3]
 * (local dates): $1 calendar. */
#define SELECT_COUNTY_COUNTS                                                                       \
    "SELECT t.county_code, "                                                                       \
    "count(c.id) FILTER (WHERE c.closed_at IS NULL AND NOT cases.on_roster(c.stage)), "            \
    "count(c.id) FILTER (WHERE c.closed_at IS NULL AND cases.on_roster(c.stage)), "                \
    "count(c.id) FILTER (WHERE (c.opened_at AT TIME ZONE 'Asia/Shanghai')::date "                  \
    "                    BETWEEN $2::date AND $3::date), "                                         \
    "count(c.id) FILTER (WHERE c.ending = 'returned' AND (c.closed_at AT TIME ZONE "               \
    "                    'Asia/Shanghai')::date BETWEEN $2::date AND $3::date) "                   \
    "FROM registry.school sc JOIN registry.township t ON t.code = sc.township_code "               \
    "LEFT JOIN cases.case c ON c.school_id = sc.id WHERE sc.calendar_id = $1 "                     \
    "GROUP BY t.county_code ORDER BY t.county_code"

bx_status escalate_store_no_shows(PGconn *db, const char *calendar_id, const char *first_day,
                                  const char *last_day, PGresult **res, bx_error *err)
{
    return bx_pg_query(db, SELECT_NO_SHOWS, 3, (const char *[]){calendar_id, first_day, last_day},
                       res, err);
}

bx_status escalate_store_transition_losses(PGconn *db, const char *calendar_id, const char *grades,
                                           PGresult **res, bx_error *err)
{
    return bx_pg_query(db, SELECT_TRANSITION_LOSSES, 2, (const char *[]){calendar_id, grades}, res,
                       err);
}

bx_status escalate_store_county_counts(PGconn *db, const char *calendar_id, const char *first_day,
                                       const char *last_day, PGresult **res, bx_error *err)
{
    return bx_pg_query(db, SELECT_COUNTY_COUNTS, 3,
                       (const char *[]){calendar_id, first_day, last_day}, res, err);
}

bx_status escalate_store_unreported_classes(PGconn *db, const char *calendar_id, const char *day,
                                            const char *prev_day, PGresult **res, bx_error *err)
{
    return bx_pg_query(
        db,
        "SELECT cl.id, cl.name, cl.school_id, coalesce(cl.homeroom_staff_id, ''), "
        "$3 <> '' AND NOT EXISTS (SELECT 1 FROM attendance.class_report r WHERE r.class_id = "
        "cl.id AND r.day = nullif($3, '')::date) "
        "FROM registry.class cl JOIN registry.school sc ON sc.id = cl.school_id "
        "WHERE sc.calendar_id = $1 AND EXISTS (SELECT 1 FROM registry.student st WHERE "
        "st.class_id = cl.id AND st.status = 'enrolled') AND NOT EXISTS (SELECT 1 FROM "
        "attendance.class_report r WHERE r.class_id = cl.id AND r.day = $2::date) "
        "ORDER BY cl.school_id, cl.id",
        3, (const char *[]){calendar_id, day, prev_day}, res, err);
}

bx_status escalate_store_terms_from(PGconn *db, const char *day, PGresult **res, bx_error *err)
{
    return bx_pg_query(db,
                       "SELECT calendar_id, code, first_day::text, last_day::text FROM "
                       "registry.calendar_term WHERE last_day >= $1::date ORDER BY 1, 3",
                       1, (const char *[]){day}, res, err);
}

bx_status escalate_store_flag_attention(PGconn *db, const char *student_id, int64_t case_id,
                                        const char *flag_id, const char *reason, bx_time_ms at,
                                        int *flagged, bx_error *err)
{
    char at_text[40], case_text[24];
    bx_time_format_pg(at, at_text);
    snprintf(case_text, sizeof(case_text), "%" PRId64, case_id);
    long long rows = 0;
    *flagged = 0;
    bx_status s = bx_pg_command(
        db,
        "INSERT INTO cases.needs_attention (case_id, dlq_event_id, reason, flagged_at) "
        "SELECT id, left($3, 200), left($4, 1000), $5::timestamptz FROM cases.case "
        "WHERE CASE WHEN $2::bigint > 0 THEN id = $2::bigint ELSE student_id = $1 END "
        "ORDER BY closed_at IS NULL DESC, opened_at DESC, id DESC LIMIT 1 "
        "ON CONFLICT (dlq_event_id) DO NOTHING",
        5, (const char *[]){student_id ? student_id : "", case_text, flag_id, reason, at_text},
        &rows, err);
    if (s == BX_OK)
        *flagged = (int)rows;
    return s;
}

bx_status escalate_store_prune_outbox(PGconn *db, int keep_days, int *deleted, bx_error *err)
{
    char days[16];
    snprintf(days, sizeof(days), "%d", keep_days);
    long long rows = 0;
    *deleted = 0;
    bx_status s = bx_pg_command(db,
                                "DELETE FROM cases.outbox WHERE id IN (SELECT id FROM cases.outbox "
                                "WHERE sent_at < now() - make_interval(days => $1::int) LIMIT "
                                "10000)",
                                1, (const char *[]){days}, &rows, err);
    if (s == BX_OK)
        *deleted = (int)rows;
    return s;
}
