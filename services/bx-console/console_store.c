/* console_store: the reads behind the homeroom teacher's pages (see console_store.h). */
#include "console_store.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_json.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "ingest.h"
#include "recompute.h"
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timestamps as the pages show them: Shanghai local time with the offset. */
#define ISO(col)                                                                                   \
    "to_char((" col ") AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"')"

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
    bx_utf8_repair(dst); /* a cut may split a character */
}

/* The registry and the score profiles as loaded together; shared by the requests that acquired
 * it, freed by the last release after a newer one replaced it. */
typedef struct snapshot {
    bx_registry *registry;
    score_profiles *profiles;
    ingest_staff_dir *staff;
    int refs; /* under console_store.lock; the store's own reference counts one */
} snapshot;

/* A snapshot slot: the whole registry with profiles and staff, or the calendars alone (the county
 * and area pages need school days only, not a province's students). */
typedef struct slot {
    snapshot *current;
    long long revision_checked_ms; /* monotonic */
} slot;

struct console_store {
    pthread_mutex_t lock;
    score_policy policy;
    slot whole, calendars;
};

static void snapshot_free(snapshot *sn)
{
    ingest_staff_dir_free(sn->staff);
    score_profiles_free(sn->profiles);
    bx_registry_free(sn->registry);
    free(sn);
}

static void snapshot_release(console_store *st, snapshot *sn)
{
    if (sn == NULL)
        return;
    pthread_mutex_lock(&st->lock);
    bool last = --sn->refs == 0;
    pthread_mutex_unlock(&st->lock);
    if (last)
        snapshot_free(sn);
}

static bx_status snapshot_load(PGconn *db, bool calendars_only, snapshot **out, bx_error *err)
{
    snapshot *sn = calloc(1, sizeof(*sn));
    if (sn == NULL)
        return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    bx_status s = calendars_only ? bx_registry_load_calendars(db, &sn->registry, err)
                                 : bx_registry_load(db, &sn->registry, err);
    if (!calendars_only) {
        IFOK(s, score_profiles_load(db, sn->registry, &sn->profiles, err));
        IFOK(s, ingest_staff_load(db, &sn->staff, err));
    }
    if (s != BX_OK) {
        snapshot_free(sn);
        return s;
    }
    sn->refs = 1;
    *out = sn;
    return BX_OK;
}

/* The current snapshot of a slot, reloaded first when registry.revision moved; release it after
 * use. A reload runs under the lock, so the requests of that moment wait for it once. */
static bx_status acquire_slot(console_store *st, PGconn *db, bool calendars_only, snapshot **out,
                              bx_error *err)
{
    *out = NULL;
    if (db == NULL)
        return BX_ERR(err, BX_EIO, "no database connection");
    slot *sl = calendars_only ? &st->calendars : &st->whole;
    bx_status s = BX_OK;
    long long now = bx_monotonic_ms();
    pthread_mutex_lock(&st->lock);
    bool stale = sl->current == NULL;
    if (!stale && now - sl->revision_checked_ms >= CONSOLE_STORE_REFRESH_MS) {
        long long rev = 0;
        s = bx_registry_current_revision(db, &rev, err);
        stale = s == BX_OK && rev != bx_registry_loaded_revision(sl->current->registry);
        if (s == BX_OK && !stale)
            sl->revision_checked_ms = now;
    }
    snapshot *fresh = NULL;
    if (s == BX_OK && stale && (s = snapshot_load(db, calendars_only, &fresh, err)) == BX_OK) {
        snapshot *old = sl->current;
        sl->current = fresh;
        sl->revision_checked_ms = now;
        if (old && --old->refs == 0)
            snapshot_free(old);
    }
    if (s == BX_OK) {
        sl->current->refs++;
        *out = sl->current;
    }
    pthread_mutex_unlock(&st->lock);
    return s;
}

static bx_status acquire(console_store *st, PGconn *db, snapshot **out, bx_error *err)
{
    return acquire_slot(st, db, false, out, err);
}

/* bx-score's store over the request's Redis handle (one server or a Redis Cluster). Its scripts
 * are loaded once per handle and thread; a reopened handle (even at the same address) still
 * works, since a script missing on a server is sent again. */
static bx_status redis_store(bx_redis *redis, score_store_redis **out, bx_error *err)
{
    static _Thread_local bx_redis *for_redis;
    static _Thread_local score_store_redis *cached;
    *out = NULL;
    if (redis == NULL || bx_redis_broken(redis))
        return BX_ERR(err, BX_EIO, "no Redis connection");
    if (cached == NULL || for_redis != redis) {
        score_store_redis_free(cached);
        cached = NULL;
        for_redis = NULL;
        bx_status s = score_store_redis_open(redis, &cached, err);
        if (s != BX_OK)
            return s;
        for_redis = redis;
    }
    *out = cached;
    return BX_OK;
}

bx_status console_store_new(const char *policy_path, console_store **out, bx_error *err)
{
    *out = NULL;
    console_store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return BX_ERR(err, BX_ENOMEM, "console store: out of memory");
    bx_status s = BX_OK;
    if (policy_path && *policy_path)
        s = score_policy_load(policy_path, &st->policy, err);
    else
        score_policy_default(&st->policy);
    if (s != BX_OK) {
        free(st);
        return s;
    }
    pthread_mutex_init(&st->lock, NULL);
    *out = st;
    return BX_OK;
}

void console_store_free(console_store *st)
{
    if (st == NULL)
        return;
    if (st->whole.current)
        snapshot_free(st->whole.current);
    if (st->calendars.current)
        snapshot_free(st->calendars.current);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

bx_status console_store_with_registry(console_store *st, PGconn *db, console_store_registry_fn *fn,
                                      void *arg, bx_error *err)
{
    snapshot *sn = NULL;
    bx_status s = acquire(st, db, &sn, err);
    IFOK(s, fn(sn->registry, sn->staff, arg));
    snapshot_release(st, sn);
    return s;
}

bx_status console_store_with_calendars(console_store *st, PGconn *db,
                                       console_store_calendars_fn *fn, void *arg, bx_error *err)
{
    snapshot *sn = NULL;
    bx_status s = acquire_slot(st, db, true, &sn, err);
    IFOK(s, fn(sn->registry, arg));
    snapshot_release(st, sn);
    return s;
}

/* ---- classes and students ---- */

bx_status console_store_class(console_store *st, PGconn *db, const char *class_id, bx_date day,
                              console_class_info *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!bx_id_valid(class_id))
        return BX_ERR(err, BX_ENOTFOUND, "no class");
    PGresult *res = NULL;
    const char *p[] = {class_id};
    snapshot *sn = NULL;
    bx_status s = acquire(st, db, &sn, err);
    IFOK(s, bx_pg_query(db,
                        "SELECT c.id, c.name, c.grade, c.school_id, s.name, s.township_code, "
                        "t.county_code, coalesce(c.homeroom_staff_id, '') "
                        "FROM registry.class c JOIN registry.school s ON s.id = c.school_id "
                        "JOIN registry.township t ON t.code = s.township_code WHERE c.id = $1",
                        1, p, &res, err));
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(err, BX_ENOTFOUND, "no class %s", class_id);
    if (s == BX_OK) {
        copy(out->id, sizeof(out->id), PQgetvalue(res, 0, 0));
        copy(out->name, sizeof(out->name), PQgetvalue(res, 0, 1));
        out->grade = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10); /* smallint 1..9 */
        copy(out->school_id, sizeof(out->school_id), PQgetvalue(res, 0, 3));
        copy(out->school_name, sizeof(out->school_name), PQgetvalue(res, 0, 4));
        copy(out->township_code, sizeof(out->township_code), PQgetvalue(res, 0, 5));
        copy(out->county_code, sizeof(out->county_code), PQgetvalue(res, 0, 6));
        copy(out->homeroom_staff_id, sizeof(out->homeroom_staff_id), PQgetvalue(res, 0, 7));
        const bx_reg_school *school = bx_registry_school(sn->registry, out->school_id);
        out->school_day = school && school->calendar && day != BX_DATE_NONE &&
                          bx_calendar_is_school_day(school->calendar, day);
    }
    PQclear(res);
    snapshot_release(st, sn);
    return s;
}

bx_status console_store_student(console_store *st, PGconn *db, const char *student_id,
                                console_student_info *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!bx_id_valid(student_id))
        return BX_ERR(err, BX_ENOTFOUND, "no student");
    (void)st;
    PGresult *res = NULL;
    const char *p[] = {student_id};
    bx_status s = db ? BX_OK : BX_ERR(err, BX_EIO, "no database connection");
    IFOK(s, bx_pg_query(db,
                        "SELECT st.id, coalesce(pr.name, ''), st.class_id, c.name, st.school_id, "
                        "s.name, s.township_code, t.county_code, st.status "
                        "FROM registry.student st JOIN registry.class c ON c.id = st.class_id "
                        "JOIN registry.school s ON s.id = st.school_id "
                        "JOIN registry.township t ON t.code = s.township_code "
                        "LEFT JOIN registry.student_private pr ON pr.student_id = st.id "
                        "WHERE st.id = $1",
                        1, p, &res, err));
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(err, BX_ENOTFOUND, "no student %s", student_id);
    if (s == BX_OK) {
        copy(out->id, sizeof(out->id), PQgetvalue(res, 0, 0));
        copy(out->name, sizeof(out->name), PQgetvalue(res, 0, 1));
        copy(out->class_id, sizeof(out->class_id), PQgetvalue(res, 0, 2));
        copy(out->class_name, sizeof(out->class_name), PQgetvalue(res, 0, 3));
        copy(out->school_id, sizeof(out->school_id), PQgetvalue(res, 0, 4));
        copy(out->school_name, sizeof(out->school_name), PQgetvalue(res, 0, 5));
        copy(out->township_code, sizeof(out->township_code), PQgetvalue(res, 0, 6));
        copy(out->county_code, sizeof(out->county_code), PQgetvalue(res, 0, 7));
        copy(out->status, sizeof(out->status), PQgetvalue(res, 0, 8));
    }
    PQclear(res);
    return s;
}

/* The stored code of one slot in a student's facts ("" when none). */
static void slot_code(const score_store_entries *facts, const char *field,
                      char out[CONSOLE_CODE_SIZE])
{
    out[0] = '\0';
    for (size_t i = 0; i < facts->count; i++)
        if (strcmp(facts->items[i].field, field) == 0) {
            const char *v = facts->items[i].value;
            if (strlen(v) < CONSOLE_CODE_SIZE)
                copy(out, CONSOLE_CODE_SIZE, v);
            return;
        }
}

/* Names and open cases of the rows (ids filled), by one query each. */
static bx_status rows_names_cases(PGconn *db, console_class_row *rows, size_t n, bx_error *err)
{
    bx_buf ids;
    bx_buf_init(&ids, 1 << 20);
    bx_status s = BX_OK;
    for (size_t i = 0; i < n && s == BX_OK; i++)
        s = bx_pg_text_array_add(&ids, rows[i].id);
    IFOK(s, bx_pg_text_array_end(&ids));
    if (s != BX_OK) {
        bx_buf_free(&ids);
        return BX_ERR(err, s, "class rows: out of memory");
    }
    PGresult *names = NULL, *cases = NULL;
    const char *p[] = {ids.data};
    s = bx_pg_query(db,
                    "SELECT student_id, name FROM registry.student_private "
                    "WHERE student_id = ANY($1::text[])",
                    1, p, &names, err);
    IFOK(s, bx_pg_query(db,
                        "SELECT student_id, id, coalesce(stage, ''), " ISO(
                            "opened_at") " FROM cases.case WHERE student_id = ANY($1::text[]) AND "
                                         "closed_at IS NULL",
                        1, p, &cases, err));
    /* n is a class (tens): a linear match is fine. */
    for (int r = 0; s == BX_OK && r < PQntuples(names); r++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(rows[i].id, PQgetvalue(names, r, 0)) == 0)
                copy(rows[i].name, sizeof(rows[i].name), PQgetvalue(names, r, 1));
    for (int r = 0; s == BX_OK && r < PQntuples(cases); r++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(rows[i].id, PQgetvalue(cases, r, 0)) == 0) {
                rows[i].case_id = strtoll(PQgetvalue(cases, r, 1), NULL, 10);
                copy(rows[i].case_stage, sizeof(rows[i].case_stage), PQgetvalue(cases, r, 2));
                copy(rows[i].case_opened_at, sizeof(rows[i].case_opened_at),
                     PQgetvalue(cases, r, 3));
            }
    PQclear(names);
    PQclear(cases);
    bx_buf_free(&ids);
    return s;
}

static bx_status rows_risk(const console_store *st, const snapshot *sn, score_store_redis *store,
                           console_class_row *rows, const char **ids, size_t n, bx_date day,
                           bx_error *err)
{
    score_outcome *out = calloc(n ? n : 1, sizeof(*out));
    if (out == NULL)
        return BX_ERR(err, BX_ENOMEM, "class rows: out of memory");
    score_env env = {&st->policy, sn->registry, sn->profiles, store};
    bx_status s = score_recompute(&env, ids, n, day, out, err);
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        const score_outcome *o = &out[i];
        if (o->student == NULL)
            continue;
        copy(rows[i].day_state, sizeof(rows[i].day_state),
             score_day_state_name(o->summary.today.state));
        rows[i].streak_days = o->summary.streak_days;
        rows[i].score = o->assessment.score;
        rows[i].tier = o->assessment.tier;
        rows[i].nfactors = o->assessment.nfactors;
        memcpy(rows[i].factors, o->assessment.factors,
               sizeof(score_factor) * (size_t)o->assessment.nfactors);
    }
    free(out);
    return s;
}

bx_status console_store_class_rows(console_store *st, PGconn *db, bx_redis *redis,
                                   const char *class_id, bx_date day, int period, bool with_risk,
                                   console_class_row **rows_out, size_t *n_out, bx_error *err)
{
    *rows_out = NULL;
    *n_out = 0;
    if (!bx_id_valid(class_id))
        return BX_ERR(err, BX_ENOTFOUND, "no class");
    snapshot *sn = NULL;
    score_store_redis *store = NULL;
    bx_status s = acquire(st, db, &sn, err);
    IFOK(s, redis_store(redis, &store, err));
    const bx_reg_class *klass = s == BX_OK ? bx_registry_class(sn->registry, class_id) : NULL;
    if (s == BX_OK && klass == NULL)
        s = BX_ERR(err, BX_ENOTFOUND, "no class %s", class_id);
    size_t n = klass ? (size_t)klass->student_count : 0;
    console_class_row *rows = NULL;
    const char **ids = NULL;
    score_store_entries *facts = NULL;
    if (s == BX_OK) {
        rows = calloc(n ? n : 1, sizeof(*rows));
        ids = calloc(n ? n : 1, sizeof(*ids));
        facts = calloc(n ? n : 1, sizeof(*facts));
        if (rows == NULL || ids == NULL || facts == NULL)
            s = BX_ERR(err, BX_ENOMEM, "class rows: out of memory");
    }
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        copy(rows[i].id, sizeof(rows[i].id), klass->students[i]->id);
        ids[i] = klass->students[i]->id;
    }
    char field[16];
    IFOK(s, score_store_field_day(day, period, field, sizeof(field)));
    IFOK(s, score_store_load_facts(store, ids, n, facts, err));
    for (size_t i = 0; i < n && s == BX_OK; i++)
        slot_code(&facts[i], field, rows[i].code);
    IFOK(s, rows_names_cases(db, rows, n, err));
    if (with_risk)
        IFOK(s, rows_risk(st, sn, store, rows, ids, n, day, err));
    for (size_t i = 0; facts && i < n; i++)
        score_store_entries_free(&facts[i]);
    free(facts);
    free(ids);
    snapshot_release(st, sn);
    if (s != BX_OK) {
        free(rows);
        return s;
    }
    *rows_out = rows;
    *n_out = n;
    return BX_OK;
}

bx_status console_store_rollcall_state(console_store *st, bx_redis *redis, const char *class_id,
                                       bx_date day, int period, console_rollcall_state *out,
                                       bx_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!bx_id_valid(class_id))
        return BX_ERR(err, BX_ENOTFOUND, "no class");
    char field[16];
    bx_status s = score_store_field_day(day, period, field, sizeof(field));
    if (s != BX_OK)
        return BX_ERR(err, s, "roll call state: bad day or period");
    (void)st;
    score_store_entries reports = {0};
    const char *ids[] = {class_id};
    score_store_redis *store = NULL;
    s = redis_store(redis, &store, err);
    IFOK(s, score_store_load_reports(store, ids, 1, &reports, err));
    for (size_t i = 0; s == BX_OK && i < reports.count; i++) {
        const score_store_entry *e = &reports.items[i];
        if (strcmp(e->field, field) != 0)
            continue;
        /* order key "<13-digit ms>|<event id>", value "enrolled,absent,leave,late,early,present" */
        long long ms = 0;
        int used = 0;
        if (sscanf(e->order_key, "%13lld|%n", &ms, &used) == 1 && used > 0)
            copy(out->event_id, sizeof(out->event_id), e->order_key + used);
        out->recorded_at = ms;
        out->reported = sscanf(e->value, "%d,%d,%d,%d,%d,%d", &out->enrolled, &out->absent,
                               &out->leave, &out->late, &out->early_leave, &out->present) == 6;
    }
    score_store_entries_free(&reports);
    return s;
}

/* ---- tasks ---- */

#define TASK_COLUMNS                                                                               \
    "k.id, k.task_key, k.kind, coalesce(k.stage, ''), " ISO(                                       \
        "k.due_at") ", (k.overdue_at IS NOT NULL OR k.due_at <= to_timestamp($1::bigint / "        \
                    "1000.0)), c.id, "                                                             \
                    "c.student_id, coalesce(pr.name, ''), coalesce(st.class_id, '') "              \
                    "FROM cases.task k JOIN cases.case c ON c.id = k.case_id "                     \
                    "LEFT JOIN registry.student st ON st.id = c.student_id "                       \
                    "LEFT JOIN registry.student_private pr ON pr.student_id = c.student_id "

static void task_from_row(PGresult *res, int r, console_task *t)
{
    memset(t, 0, sizeof(*t));
    t->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    copy(t->task_key, sizeof(t->task_key), PQgetvalue(res, r, 1));
    copy(t->kind, sizeof(t->kind), PQgetvalue(res, r, 2));
    copy(t->stage, sizeof(t->stage), PQgetvalue(res, r, 3));
    copy(t->due_at, sizeof(t->due_at), PQgetvalue(res, r, 4));
    t->overdue = PQgetvalue(res, r, 5)[0] == 't';
    t->case_id = strtoll(PQgetvalue(res, r, 6), NULL, 10);
    copy(t->student_id, sizeof(t->student_id), PQgetvalue(res, r, 7));
    copy(t->student_name, sizeof(t->student_name), PQgetvalue(res, r, 8));
    copy(t->class_id, sizeof(t->class_id), PQgetvalue(res, r, 9));
}

static bx_status tasks_from(PGresult *res, size_t max, console_task **out, size_t *n, bx_error *err)
{
    size_t rows = (size_t)PQntuples(res);
    if (rows > max)
        rows = max;
    console_task *t = calloc(rows ? rows : 1, sizeof(*t));
    if (t == NULL)
        return BX_ERR(err, BX_ENOMEM, "tasks: out of memory");
    for (size_t i = 0; i < rows; i++)
        task_from_row(res, (int)i, &t[i]);
    *out = t;
    *n = rows;
    return BX_OK;
}

bx_status console_store_open_tasks(console_store *st, PGconn *db, const char *staff_id,
                                   const char *const *class_ids, size_t nclasses, bx_time_ms now,
                                   size_t max, console_task **tasks, size_t *n, bx_error *err)
{
    *tasks = NULL;
    *n = 0;
    bx_buf ids;
    bx_buf_init(&ids, 1 << 16);
    bx_status s = BX_OK;
    for (size_t i = 0; i < nclasses && s == BX_OK; i++)
        if (bx_id_valid(class_ids[i]))
            s = bx_pg_text_array_add(&ids, class_ids[i]);
    IFOK(s, bx_pg_text_array_end(&ids));
    if (s != BX_OK) {
        bx_buf_free(&ids);
        return BX_ERR(err, s, "tasks: out of memory");
    }
    char now_text[24], max_text[24];
    snprintf(now_text, sizeof(now_text), "%lld", (long long)now);
    snprintf(max_text, sizeof(max_text), "%zu", max);
    const char *p[] = {now_text, staff_id, ids.data, max_text};
    PGresult *res = NULL;
    (void)st;
    s = db ? BX_OK : BX_ERR(err, BX_EIO, "no database connection");
    IFOK(s,
         bx_pg_query(db,
                     "SELECT " TASK_COLUMNS "WHERE k.outcome IS NULL AND c.closed_at IS NULL AND "
                     "(k.owner_staff_id = $2 OR (k.owner_staff_id IS NULL AND "
                     "k.owner_role = 'homeroom_teacher' AND st.class_id = ANY($3::text[]))) "
                     "ORDER BY 6 DESC, k.due_at, k.id LIMIT $4::bigint",
                     4, p, &res, err));
    IFOK(s, tasks_from(res, max, tasks, n, err));
    PQclear(res);
    bx_buf_free(&ids);
    return s;
}

bx_status console_store_task(console_store *st, PGconn *db, long long task_id, bx_time_ms now,
                             console_task *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    char now_text[24], id_text[24];
    snprintf(now_text, sizeof(now_text), "%lld", (long long)now);
    snprintf(id_text, sizeof(id_text), "%lld", task_id);
    const char *p[] = {now_text, id_text};
    PGresult *res = NULL;
    (void)st;
    bx_status s = db ? BX_OK : BX_ERR(err, BX_EIO, "no database connection");
    IFOK(s, bx_pg_query(db,
                        "SELECT " TASK_COLUMNS "WHERE k.id = $2::bigint AND k.outcome IS NULL "
                        "AND c.closed_at IS NULL",
                        2, p, &res, err));
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(err, BX_ENOTFOUND, "no open task %lld", task_id);
    if (s == BX_OK)
        task_from_row(res, 0, out);
    PQclear(res);
    return s;
}

/* ---- a student's case and history ---- */

void console_case_view_free(console_case_view *v)
{
    if (v == NULL)
        return;
    free(v->tasks);
    free(v->events);
    memset(v, 0, sizeof(*v));
}

/* Every event of the student's cases, with the visit notes kept by the console, in time order. */
static const char events_sql[] =
    "SELECT e.case_id, e.kind, coalesce(e.stage, ''), e.actor, coalesce(sf.name, ''), e.reason, "
    "e.late, " ISO("e.occurred_at") ", coalesce(e.payload->'task'->>'kind', ''), "
                                    "coalesce(e.payload->'task'->>'owner_role', '') "
                                    "FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
                                    "LEFT JOIN registry.staff sf ON sf.id = e.actor "
                                    "WHERE c.student_id = $1 ORDER BY e.occurred_at, e.id";

/* The home-visit notes kept by the console, read apart so that a database without the table
 * (console's migration not applied) still shows the history. */
static const char notes_sql[] =
    "SELECT 0, 'visit_note', '', n.staff_id, coalesce(sf.name, ''), n.note, false, " ISO(
        "n.recorded_at") ", '', '' FROM console.visit_note n LEFT JOIN registry.staff sf ON sf.id "
                         "= "
                         "n.staff_id WHERE n.student_id = $1 ORDER BY n.recorded_at, n.event_id";

static void event_from_row(PGresult *res, int r, console_case_event *e)
{
    e->case_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    copy(e->kind, sizeof(e->kind), PQgetvalue(res, r, 1));
    copy(e->stage, sizeof(e->stage), PQgetvalue(res, r, 2));
    copy(e->actor, sizeof(e->actor), PQgetvalue(res, r, 3));
    copy(e->actor_name, sizeof(e->actor_name), PQgetvalue(res, r, 4));
    copy(e->reason, sizeof(e->reason), PQgetvalue(res, r, 5));
    e->late = PQgetvalue(res, r, 6)[0] == 't';
    copy(e->occurred_at, sizeof(e->occurred_at), PQgetvalue(res, r, 7));
    copy(e->task_kind, sizeof(e->task_kind), PQgetvalue(res, r, 8));
    copy(e->task_owner, sizeof(e->task_owner), PQgetvalue(res, r, 9));
}

bx_status console_store_case_view(console_store *st, PGconn *db, const char *student_id,
                                  bx_time_ms now, console_case_view *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!bx_id_valid(student_id))
        return BX_ERR(err, BX_ENOTFOUND, "no student");
    char now_text[24];
    snprintf(now_text, sizeof(now_text), "%lld", (long long)now);
    PGresult *cases = NULL, *tasks = NULL, *events = NULL, *notes = NULL;
    const char *p1[] = {student_id};
    (void)st;
    bx_status s = db ? BX_OK : BX_ERR(err, BX_EIO, "no database connection");
    IFOK(s, bx_pg_query(db,
                        "SELECT id, coalesce(stage, ''), " ISO("opened_at") ", coalesce(" ISO(
                            "closed_at") ", ''), coalesce(ending, '') FROM cases.case "
                                         "WHERE student_id = $1 ORDER BY (closed_at IS NULL) "
                                         "DESC, opened_at DESC, id DESC LIMIT 1",
                        1, p1, &cases, err));
    if (s == BX_OK && PQntuples(cases) == 1) {
        out->case_id = strtoll(PQgetvalue(cases, 0, 0), NULL, 10);
        copy(out->stage, sizeof(out->stage), PQgetvalue(cases, 0, 1));
        copy(out->opened_at, sizeof(out->opened_at), PQgetvalue(cases, 0, 2));
        copy(out->closed_at, sizeof(out->closed_at), PQgetvalue(cases, 0, 3));
        copy(out->ending, sizeof(out->ending), PQgetvalue(cases, 0, 4));
        const char *p2[] = {now_text, PQgetvalue(cases, 0, 0)};
        s = bx_pg_query(db,
                        "SELECT " TASK_COLUMNS "WHERE k.case_id = $2::bigint AND k.outcome IS NULL "
                        "ORDER BY k.due_at, k.id",
                        2, p2, &tasks, err);
        IFOK(s, tasks_from(tasks, 1000, &out->tasks, &out->ntasks, err));
    }
    IFOK(s, bx_pg_query(db, events_sql, 1, p1, &events, err));
    if (s == BX_OK) {
        bx_error ignored = {0};
        if (bx_pg_query(db, notes_sql, 1, p1, &notes, &ignored) != BX_OK)
            notes = NULL; /* no notes table: the history without notes */
    }
    size_t ne = s == BX_OK ? (size_t)PQntuples(events) : 0;
    size_t nn = notes ? (size_t)PQntuples(notes) : 0;
    if (ne + nn > 0) {
        out->events = calloc(ne + nn, sizeof(*out->events));
        if (out->events == NULL)
            s = BX_ERR(err, BX_ENOMEM, "history: out of memory");
    }
    /* Both lists are in time order with the same text form of time: merge them. */
    size_t i = 0, j = 0;
    while (s == BX_OK && i + j < ne + nn) {
        bool from_notes = j < nn && (i == ne || strcmp(PQgetvalue(notes, (int)j, 7),
                                                       PQgetvalue(events, (int)i, 7)) < 0);
        event_from_row(from_notes ? notes : events, from_notes ? (int)j++ : (int)i++,
                       &out->events[out->nevents++]);
    }
    PQclear(notes);
    PQclear(cases);
    PQclear(tasks);
    PQclear(events);
    if (s != BX_OK)
        console_case_view_free(out);
    return s;
}

/* ---- home-visit notes ---- */

long console_utf8_chars(const char *s)
{
    size_t len = strlen(s);
    if (!bx_utf8_valid(s, len))
        return -1;
    long n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

bx_status console_store_visit_note(console_store *st, PGconn *db, const char *event_id,
                                   const char *student_id, const char *staff_id, const char *note,
                                   bx_time_ms at, bx_error *err)
{
    long chars = console_utf8_chars(note);
    if (chars < 0)
        return BX_ERR(err, BX_EINVAL, "note: not UTF-8 text");
    if (chars > CONSOLE_STORE_NOTE_MAX)
        return BX_ERR(err, BX_EINVAL, "note: %ld characters, at most %d", chars,
                      CONSOLE_STORE_NOTE_MAX);
    char at_text[40];
    bx_time_format_pg(at, at_text);
    const char *p[] = {event_id, student_id, staff_id, note, at_text};
    (void)st;
    if (db == NULL)
        return BX_ERR(err, BX_EIO, "no database connection");
    return bx_pg_command(db,
                         "INSERT INTO console.visit_note (event_id, student_id, staff_id, note, "
                         "recorded_at) VALUES ($1, $2, $3, $4, $5::timestamptz) "
                         "ON CONFLICT (event_id) DO NOTHING",
                         5, p, NULL, err);
}
