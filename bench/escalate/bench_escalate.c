/* bench-escalate: bx-escalate's durable timers (services/bx-escalate/timers.c) with 1,000,000 open
 * timers in cases.timer. Loads them with COPY (timed: PostgreSQL's own rate for the same rows),
 * COPYs as many cases.event-shaped rows into a scratch table (timed), then fires the due share with
 * N worker threads, each on its own connection. The due timers are real cases' home-visit
 * deadlines (states made by the ladder under deploy/policy/ladder.policy, a registry of their
 * students): the `case` rounds fire them as bx-escalate does (escalate_store_fire_deadline in
 * timers_fire_due_prepared's batches); the others with a fire_fn that writes the rows an overdue
 * task writes (a cases.event row, the cases.task update, a cases.outbox row) without the case.
 * Checks that every due timer fired exactly once. A second baseline, measured after the run's
 * first case round, is the COPY of the rows that round wrote (a case firing's 2 events, 4 outbox
 * rows, and its task, case and timer rows, an UPDATE counted as one row write), read back and
 * COPYed into scratch tables LIKE theirs: `/COPY same` compares a case round with it, `/COPY tmr`
 * with the COPY of one timer row a timer. Run by bench/escalate/run.sh against a scratch database;
 * not a test. */
#include "bx_buf.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "ladder.h"
#include "outbox.h"
#include "state_json.h"
#include "store.h"
#include "timers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* 2026-11-27 10:00 +08:00: the simulated now of every round. */
#define T_NOW      ((bx_time_ms)1795744800000LL)
#define MINUTE     ((bx_time_ms)60000)
#define MAX_ROUNDS 16

typedef enum variant { V_PLAIN, V_ASYNC, V_BATCH, V_DUE, V_SET, V_CASE1, V_CASE } variant;
static const char *const variant_names[] = {"", "async", "batch", "due", "set", "case1", "case"};

#ifndef BX_DEFAULT_LADDER_POLICY
#define BX_DEFAULT_LADDER_POLICY "deploy/policy/ladder.policy"
#endif
#define PSEUDONYM_KEY "bench-pseudonym-key" /* the analysts' stream on, as in a deployment */

typedef struct round_spec {
    int workers;
    variant v;
} round_spec;

typedef struct conf {
    const char *url;
    long long timers, due;
    int batch;
    int64_t lease_ms;
    round_spec rounds[MAX_ROUNDS];
    int nrounds;
    bool explain;
    const char *policy_path;
} conf;

/* The ladder and the registry of the bench's cases, shared read-only by the workers. */
static ladder_policy policy;
static bx_registry *registry;
/* The case every bench case copies (its student BE0000001 replaced by the case's): its state,
 * its open home-visit task and that task's deadline. */
static struct {
    char *state;
    const char *stage;
    char task_key[LADDER_KEY_SIZE], task_kind[64], task_stage[64], owner_role[64];
    bx_time_ms opened_at, task_created, task_due;
} tmpl;

static conf cf;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench-escalate: %s: %s\n", what, msg);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Busy and total jiffies of the whole machine, from /proc/stat. */
static void cpu_jiffies(long long *busy, long long *total)
{
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return;
    long long v[8] = {0};
    if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            *total += v[i];
        *busy = *total - v[3] - v[4];
    }
    fclose(f);
}

static double machine_cpu_s(long long busy0, long long busy1)
{
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(busy1 - busy0) / (double)(hz > 0 ? hz : 100);
}

static void loadavg(char out[64])
{
    snprintf(out, 64, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL)
        return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, 64, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

/* A timestamptz literal in UTC with milliseconds. */
static void ts_text(bx_time_ms t, char out[40])
{
    time_t secs = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 40, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(t % 1000));
}

static PGconn *connect_db(void)
{
    PGconn *db = NULL;
    bx_error err = {0};
    if (bx_pg_connect(cf.url, 10000, &db, &err) != BX_OK)
        die("connect", err.msg);
    return db;
}

static void exec_or_die(PGconn *db, const char *sql)
{
    bx_error err = {0};
    if (bx_pg_exec(db, sql, &err) != BX_OK)
        die(sql, err.msg);
}

static long long count_of(PGconn *db, const char *sql)
{
    PGresult *res = NULL;
    bx_error err = {0};
    if (bx_pg_query(db, sql, 0, NULL, &res, &err) != BX_OK)
        die(sql, err.msg);
    long long n = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    return n;
}

/* ---- COPY data, generated in memory before the timed COPY ---- */

typedef struct mem {
    char *data;
    size_t len, cap;
} mem;

static void mem_printf(mem *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mem_printf(mem *m, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n =
            vsnprintf(m->data ? m->data + m->len : NULL, m->data ? m->cap - m->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("format", "vsnprintf failed");
        if (m->data && m->len + (size_t)n < m->cap) {
            m->len += (size_t)n;
            return;
        }
        size_t cap = m->cap ? m->cap * 2 : 1 << 20;
        while (cap < m->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(m->data, cap);
        if (p == NULL)
            die("memory", "no memory for COPY data");
        m->data = p;
        m->cap = cap;
    }
}

/* Streams buf to `COPY ... FROM STDIN` and waits for the server's result (the commit). */
static void copy_in(PGconn *db, const char *sql, const mem *buf)
{
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die(sql, PQerrorMessage(db));
    PQclear(res);
    const size_t chunk = 1 << 20;
    for (size_t off = 0; off < buf->len; off += chunk) {
        size_t n = buf->len - off < chunk ? buf->len - off : chunk;
        if (PQputCopyData(db, buf->data + off, (int)n) != 1)
            die(sql, PQerrorMessage(db));
    }
    if (PQputCopyEnd(db, NULL) != 1)
        die(sql, PQerrorMessage(db));
    bool ok = true;
    while ((res = PQgetResult(db)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            ok = false;
        PQclear(res);
    }
    if (!ok)
        die(sql, PQerrorMessage(db));
}

/* Case c (1-based) of the bench: one student, one open home-visit task whose timer fires it
 * overdue. Ids of one width, so the template's student is replaced in place. */
#define STUDENT_FMT      "BE%07lld"
#define TEMPLATE_STUDENT "BE0000001"
/* Students per school: a large primary school's (the analysts' bands count a school's cells). */
#define SCHOOL_SIZE 1000
#define SCHOOL_FMT  "BESCH%04lld"

static long long school_of(long long c)
{
    return (c - 1) / SCHOOL_SIZE + 1;
}

/* text with every TEMPLATE_STUDENT replaced by case c's student, into out (same length). */
static void for_case(const char *text, long long c, char *out, size_t size)
{
    char student[16];
    snprintf(student, sizeof(student), STUDENT_FMT, c);
    snprintf(out, size, "%s", text);
    for (char *p = strstr(out, TEMPLATE_STUDENT); p; p = strstr(p + 9, TEMPLATE_STUDENT))
        memcpy(p, student, 9);
}

/* The event payload, shaped like bx.case.events.v1 for a task_overdue (messages.c). */
static int event_payload(char *out, size_t size, long long case_id, const char *event_id,
                         const char *occurred, const char *task_key)
{
    return snprintf(out, size,
                    "{\"schema\":\"bx.case.events.v1\",\"event_id\":\"%s\",\"case_id\":\"%lld\","
                    "\"student_id\":\"" STUDENT_FMT "\",\"school_id\":\"" SCHOOL_FMT "\","
                    "\"kind\":\"task_overdue\",\"stage\":\"home_visit\",\"actor\":\"bx-escalate\","
                    "\"occurred_at\":\"%s\",\"task_id\":\"%s\","
                    "\"task_kind\":\"home_visit\",\"owner_role\":\"homeroom_teacher\","
                    "\"reason\":\"home visit not done by its deadline\",\"late\":false}",
                    event_id, case_id, case_id, school_of(case_id), occurred, task_key);
}

/* Is timer i (0-based) one of the due ones? Exactly cf.due of cf.timers, evenly interleaved. */
static bool is_due(long long i)
{
    return (i + 1) * cf.due / cf.timers > i * cf.due / cf.timers;
}

/* A county; schools of SCHOOL_SIZE students in six grades, of a calendar with the autumn term. */
static void load_registry(PGconn *db)
{
    char sql[2400];
    snprintf(sql, sizeof(sql),
             "INSERT INTO registry.county (code, name) VALUES ('990061', 'bench');"
             "INSERT INTO registry.township (code, county_code, name) VALUES ('990061100', "
             "'990061', 'bench');"
             "INSERT INTO registry.calendar (id, name) VALUES ('bench', 'bench');"
             "INSERT INTO registry.calendar_term (calendar_id, code, first_day, last_day) VALUES "
             "('bench', '2026-autumn', '2026-09-01', '2027-01-22');"
             "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) SELECT "
             "'BESCH' || lpad(k::text, 4, '0'), 'bench', '990061100', 'primary', 'bench' FROM "
             "generate_series(1, %lld) k;"
             "INSERT INTO registry.class (id, school_id, grade, name) SELECT 'BECL' || "
             "lpad(k::text, 4, '0') || '-' || g, 'BESCH' || lpad(k::text, 4, '0'), g, 'bench' "
             "FROM generate_series(1, %lld) k, generate_series(1, 6) g;"
             "INSERT INTO registry.student (id, school_id, class_id, status) SELECT 'BE' || "
             "lpad(i::text, 7, '0'), 'BESCH' || lpad(((i - 1) / %d + 1)::text, 4, '0'), 'BECL' "
             "|| lpad(((i - 1) / %d + 1)::text, 4, '0') || '-' || (i %% 6 + 1), 'enrolled' FROM "
             "generate_series(1, %lld) i;"
             "INSERT INTO registry.student_private (student_id, name, sex, birth_date) SELECT id, "
             "'bench', CASE WHEN right(id, 1) < '5' THEN 'F' ELSE 'M' END, date '2016-05-01' "
             "FROM registry.student WHERE id LIKE 'BE%%'",
             school_of(cf.due), school_of(cf.due), SCHOOL_SIZE, SCHOOL_SIZE, cf.due);
    exec_or_die(db, sql);
    bx_error err = {0};
    if (bx_registry_load(db, &registry, &err) != BX_OK)
        die("registry", err.msg);
}

/* The template case: the ladder opens a suspected dropout's case at the home_visit stage ten days
 * before now, as a calendar duty does; its home-visit task falls due a school day later. */
static void make_template(void)
{
    static case_state before, after;
    static ladder_effects fx;
    bx_error err = {0};
    if (case_state_init(&before, TEMPLATE_STUDENT, &err) != BX_OK)
        die("case_state_init", err.msg);
    ladder_input in;
    memset(&in, 0, sizeof(in));
    in.kind = LADDER_IN_SUSPECTED;
    in.at = T_NOW - 10 * 24 * 60 * MINUTE;
    in.date = bx_time_local_date(in.at);
    in.return_date = in.first_date = in.last_date = in.streak_start = BX_DATE_NONE;
    snprintf(in.event_id, sizeof(in.event_id), "bench-open");
    snprintf(in.reason, sizeof(in.reason), "bench");
    snprintf(in.stage_name, sizeof(in.stage_name), "home_visit");
    const bx_reg_student *student = bx_registry_student(registry, TEMPLATE_STUDENT);
    if (student == NULL ||
        ladder_step(&policy, student->school->calendar, &before, &in, &after, &fx, &err) != BX_OK)
        die("template case", student ? err.msg : "student not in the registry");
    for (int i = 0; i < fx.nevents; i++) {
        const ladder_event *e = &fx.events[i];
        if (e->kind != LADDER_EV_TASK_CREATED || strcmp(e->task_kind, "home_visit") != 0)
            continue;
        snprintf(tmpl.task_key, sizeof(tmpl.task_key), "%s", e->task_key);
        snprintf(tmpl.task_kind, sizeof(tmpl.task_kind), "%s", e->task_kind);
        snprintf(tmpl.task_stage, sizeof(tmpl.task_stage), "%s", e->stage ? e->stage : "");
        snprintf(tmpl.owner_role, sizeof(tmpl.owner_role), "%s", e->owner_role);
        tmpl.task_created = e->at;
        tmpl.task_due = e->due_at;
    }
    if (tmpl.task_key[0] == '\0' || tmpl.task_due >= T_NOW)
        die("template case", "no home-visit task due before now");
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    if (state_json_encode(&policy, &after, &b, &err) != BX_OK)
        die("template state", err.msg);
    tmpl.state = strdup(b.data);
    bx_buf_free(&b);
    tmpl.stage = ladder_stage_name(&policy, after.stage);
    tmpl.opened_at = after.opened_at;
}

/* The cases (state, stage), their home-visit tasks, and a copy of the states to reset rounds. */
static void load_cases(PGconn *db)
{
    char opened[40], created[40], due[40];
    ts_text(tmpl.opened_at, opened);
    ts_text(tmpl.task_created, created);
    ts_text(tmpl.task_due, due);
    size_t size = strlen(tmpl.state) + 1;
    char *state = malloc(size), key[LADDER_KEY_SIZE];
    if (state == NULL)
        die("memory", "no memory for a state");
    mem m = {0};
    for (long long c = 1; c <= cf.due; c++) {
        for_case(tmpl.state, c, state, size); /* JSON without tabs, newlines or backslashes */
        mem_printf(&m, "%lld\t" STUDENT_FMT "\t" SCHOOL_FMT "\t%s\t%s\t%s\t%s\n", c, c,
                   school_of(c), opened, tmpl.stage, opened, state);
    }
    copy_in(db,
            "COPY cases.case (id, student_id, school_id, opened_at, stage, updated_at, state) "
            "FROM STDIN",
            &m);
    m.len = 0;
    for (long long c = 1; c <= cf.due; c++) {
        for_case(tmpl.task_key, c, key, sizeof(key));
        mem_printf(&m, "%lld\t%lld\t%s\t%s\t%s\t%s\t%s\t%s\n", c, c, key, tmpl.task_kind,
                   tmpl.task_stage, tmpl.owner_role, created, due);
    }
    copy_in(db,
            "COPY cases.task (id, case_id, task_key, kind, stage, owner_role, created_at, due_at) "
            "FROM STDIN",
            &m);
    free(m.data);
    free(state);
    exec_or_die(db, "SELECT setval('cases.case_id_seq', (SELECT max(id) FROM cases.case));"
                    "SELECT setval('cases.task_id_seq', (SELECT max(id) FROM cases.task));"
                    "CREATE TABLE public.bench_case_state AS SELECT id, stage, state, updated_at "
                    "FROM cases.case");
}

/* The timer rows: the due ones (case j for the j-th) the deadlines of the cases' home-visit tasks
 * (keyed as the ladder keys them), the others over the next 60 days, one row in cf.timers/cf.due
 * due, interleaved. */
static void timer_rows(mem *m)
{
    long long j = 0;
    for (long long i = 0; i < cf.timers; i++) {
        char due[40];
        long long c;
        if (is_due(i)) {
            c = ++j;
            char key[LADDER_KEY_SIZE];
            for_case(tmpl.task_key, c, key, sizeof(key));
            ts_text(tmpl.task_due, due);
            mem_printf(m, "%s\t%lld\tdeadline\t{}\t%s\n", key, c, due);
            continue;
        }
        c = i % cf.due + 1;
        ts_text(T_NOW + MINUTE + (bx_time_ms)((i * 7919LL) % (60LL * 24 * 60 * 60000)), due);
        mem_printf(m, "case:%lld:home_visit:deadline:%lld\t%lld\tdeadline\t{}\t%s\n", c, i, c, due);
    }
}

static void event_rows(mem *m)
{
    char occurred[40];
    ts_text(T_NOW, occurred);
    for (long long i = 0; i < cf.timers; i++) {
        long long c = i % cf.due + 1;
        char id[64], payload[1024];
        char key[LADDER_KEY_SIZE];
        snprintf(id, sizeof(id), "copy:%lld", i);
        for_case(tmpl.task_key, c, key, sizeof(key));
        event_payload(payload, sizeof(payload), c, id, occurred, key);
        mem_printf(m,
                   "%lld\t%s\ttask_overdue\thome_visit\tbx-escalate\thome visit not done by its "
                   "deadline\tf\t%s\t%s\n",
                   c, id, occurred, payload);
    }
}

/* ---- firing ---- */

typedef struct worker {
    pthread_t thread;
    int round, index;
    variant v;
    char owner[64];
    long long fired, conflicts, failures, claims, seq;
    double claim_s;
    escalate_store_batch *queue; /* the set and case variants' */
    /* the case variants': the ladder's scratch (large) */
    case_state *before, *after;
    ladder_effects *fx;
    char error[600];
} worker;

/* ---- the case variants: bx-escalate's own firing of a case deadline ---- */

static escalate_store_firing firing_of(worker *w)
{
    return (escalate_store_firing){&policy,  registry,  PSEUDONYM_KEY, "bx.analytics.cases.v1",
                                   w->queue, w->before, w->after,      w->fx};
}

/* timers_prepare_fn of `case`: the batch's case rows and bands read in one statement each. */
static bx_status prefetch_cases(PGconn *db, const timers_list *list, void *arg, bx_error *err)
{
    worker *w = arg;
    const escalate_store_firing f = firing_of(w);
    return escalate_store_prefetch_cases(db, &f, list, err);
}

/* The fire_fn of both: what bx-escalate's fire_timer does for a case timer. */
static bx_status fire_case(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    worker *w = arg;
    const escalate_store_firing f = firing_of(w);
    int added = 0;
    return escalate_store_fire_deadline(db, &f, timer, &added, err);
}

static pthread_barrier_t start_barrier;

/* What bx-escalate writes for an overdue task (store.c write_event): the case event, the
 * task's overdue mark, the event on the outbox. The event id carries the worker and its count, so
 * a timer fired twice would show up as two events of one timer (it must not). */
static bx_status fire_overdue(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    worker *w = arg;
    char case_id[24], event_id[96], occurred[40], payload[1024], task_key[LADDER_KEY_SIZE],
        student[16];
    snprintf(case_id, sizeof(case_id), "%" PRId64, timer->case_id);
    snprintf(event_id, sizeof(event_id), "r%d.w%d.%lld.timer-%" PRId64, w->round, w->index,
             w->seq++, timer->id);
    snprintf(task_key, sizeof(task_key), "%s", timer->key); /* the ladder's task key */
    snprintf(student, sizeof(student), STUDENT_FMT, (long long)timer->case_id);
    ts_text(T_NOW, occurred);
    event_payload(payload, sizeof(payload), timer->case_id, event_id, occurred, task_key);
    const char *params[] = {case_id,      event_id,      "task_overdue",
                            "home_visit", "bx-escalate", "home visit not done by its deadline",
                            "f",          occurred,      payload};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, "
                              "reason, late, occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6, "
                              "$7, $8, $9::jsonb) ON CONFLICT (event_id) DO NOTHING RETURNING id",
                              9, params, &res, err);
    PQclear(res);
    res = NULL;
    IFOK(s, escalate_outbox_add(db, "bx.case.events.v1", student, event_id, payload, NULL, err));
    const char *tp[] = {task_key, occurred};
    IFOK(s, bx_pg_query(db,
                        "UPDATE cases.task SET overdue_at = $2 WHERE task_key = $1 AND "
                        "overdue_at IS NULL",
                        2, tp, &res, err));
    PQclear(res);
    return s;
}

/* The set variant's fire_fn: the same rows as fire_overdue, queued in bx-escalate's store batch
 * (store.h, what the service does with a batch of timers) and written by its flush. */
static bx_status queue_overdue(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    worker *w = arg;
    char event_id[96], occurred[40], payload[1024], task_key[LADDER_KEY_SIZE], student[16];
    snprintf(event_id, sizeof(event_id), "r%d.w%d.%lld.timer-%" PRId64, w->round, w->index,
             w->seq++, timer->id);
    snprintf(task_key, sizeof(task_key), "%s", timer->key); /* the ladder's task key */
    snprintf(student, sizeof(student), STUDENT_FMT, (long long)timer->case_id);
    ts_text(T_NOW, occurred);
    event_payload(payload, sizeof(payload), timer->case_id, event_id, occurred, task_key);
    bx_status s = escalate_store_queue_event(
        w->queue, 0, timer->case_id, event_id, "task_overdue", "home_visit", "bx-escalate",
        "home visit not done by its deadline", false, occurred, payload, err);
    IFOK(s, escalate_store_queue_outbox(w->queue, "bx.case.events.v1", student, event_id, payload,
                                        err));
    IFOK(s, escalate_store_queue_overdue(db, w->queue, task_key, occurred, err));
    return s;
}

/* The set variant's flush: the batch's events, outbox rows and task marks, one statement each. */
static bx_status flush_overdue(PGconn *db, void *arg, bx_error *err)
{
    worker *w = arg;
    return escalate_store_batch_flush(db, w->queue, err);
}

/* The alternative measured as an extra row: a claimed batch fired in one transaction (one commit,
 * one WAL flush per batch). Same checks as timers_fire (row lock, unfired, still ours), same
 * fire_fn, one fired mark for the batch. */
static bx_status fire_batch(PGconn *db, worker *w, const timers_list *list, bx_error *err)
{
    mem ids = {0};
    mem_printf(&ids, "{");
    for (int i = 0; i < list->count; i++)
        mem_printf(&ids, "%s%" PRId64, i ? "," : "", list->items[i].id);
    mem_printf(&ids, "}");
    char now_text[40];
    ts_text(T_NOW, now_text);
    const char *params[] = {ids.data, w->owner, now_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    IFOK(s, bx_pg_query(db,
                        "SELECT id FROM cases.timer WHERE id = ANY($1::bigint[]) AND fired_at IS "
                        "NULL AND claimed_by = $2 ORDER BY id FOR UPDATE",
                        2, params, &res, err));
    int n = s == BX_OK ? PQntuples(res) : 0;
    /* Both lists are small; the claimed ones still ours are fired, in the claim's order. */
    for (int i = 0; s == BX_OK && i < list->count; i++) {
        bool ours = false;
        for (int r = 0; r < n && !ours; r++)
            ours = strtoll(PQgetvalue(res, r, 0), NULL, 10) == list->items[i].id;
        if (!ours) {
            w->conflicts++;
            continue;
        }
        s = fire_overdue(db, &list->items[i], w, err);
        if (s == BX_OK)
            w->fired++;
    }
    PQclear(res);
    res = NULL;
    IFOK(s, bx_pg_query(db,
                        "UPDATE cases.timer SET fired_at = $3::timestamptz WHERE id = "
                        "ANY($1::bigint[]) AND fired_at IS NULL AND claimed_by = $2",
                        3, params, &res, err));
    PQclear(res);
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(db);
    free(ids.data);
    return s;
}

static void *work(void *arg)
{
    worker *w = arg;
    PGconn *db = connect_db();
    bx_error err = {0};
    if (w->v == V_ASYNC && bx_pg_exec(db, "SET synchronous_commit = off", &err) != BX_OK)
        die("SET synchronous_commit", err.msg);
    bool queued = w->v == V_SET || w->v == V_CASE1 || w->v == V_CASE;
    if (queued && escalate_store_batch_new(&w->queue, &err) != BX_OK)
        die("escalate_store_batch_new", err.msg);
    if (w->v == V_CASE1 || w->v == V_CASE) {
        w->before = calloc(1, sizeof(*w->before));
        w->after = calloc(1, sizeof(*w->after));
        w->fx = calloc(1, sizeof(*w->fx));
        if (w->before == NULL || w->after == NULL || w->fx == NULL)
            die("memory", "no memory for the ladder's scratch");
    }
    pthread_barrier_wait(&start_barrier);
    /* timers.c's timers_fire_due: no claim, the due timers selected FOR UPDATE SKIP LOCKED and
     * fired in one transaction (set: their rows queued and written one statement per table) */
    bool due_rounds = w->v == V_DUE || w->v == V_SET || w->v == V_CASE1 || w->v == V_CASE;
    while (due_rounds) {
        int fired = 0;
        timers_list failed = {0};
        double t0 = now_s();
        timers_fire_fn *fire_fn = w->v == V_SET   ? queue_overdue
                                  : w->v == V_DUE ? fire_overdue
                                                  : fire_case;
        escalate_store_batch_clear(w->queue);
        bx_status s = timers_fire_due_prepared(
            db, w->owner, T_NOW, cf.batch, w->v == V_CASE ? prefetch_cases : NULL, fire_fn,
            w->v == V_DUE ? NULL : flush_overdue, w, &fired, &failed, &err);
        w->claim_s += now_s() - t0;
        if (s != BX_OK) {
            escalate_store_batch_clear(w->queue);
            w->failures += failed.count;
            timers_list_free(&failed);
            snprintf(w->error, sizeof(w->error), "fire_due: %s", err.msg);
            break;
        }
        if (fired == 0)
            break;
        w->claims++;
        w->fired += fired;
    }
    for (; !due_rounds;) {
        timers_list list = {0};
        double t0 = now_s();
        if (timers_claim(db, w->owner, T_NOW, cf.lease_ms, cf.batch, &list, &err) != BX_OK) {
            snprintf(w->error, sizeof(w->error), "claim: %s", err.msg);
            break;
        }
        w->claim_s += now_s() - t0;
        w->claims++;
        if (list.count == 0)
            break;
        if (w->v == V_BATCH) {
            long long before = w->fired;
            if (fire_batch(db, w, &list, &err) != BX_OK) {
                w->fired = before;
                w->failures += list.count;
                snprintf(w->error, sizeof(w->error), "batch: %s", err.msg);
            }
        } else {
            for (int i = 0; i < list.count; i++) {
                bx_status s =
                    timers_fire(db, &list.items[i], w->owner, T_NOW, fire_overdue, w, &err);
                if (s == BX_OK)
                    w->fired++;
                else if (s == BX_ECONFLICT)
                    w->conflicts++;
                else {
                    w->failures++;
                    snprintf(w->error, sizeof(w->error), "fire: %s", err.msg);
                }
            }
        }
        timers_list_free(&list);
        if (w->error[0])
            break;
    }
    escalate_store_batch_free(w->queue);
    free(w->before);
    free(w->after);
    free(w->fx);
    PQfinish(db);
    return NULL;
}

typedef struct result {
    int workers;
    variant v;
    long long fired, events;
    double secs, cpu_s, claim_s;
    long long claims;
    char load[64];
} result;

/* Every due timer fired exactly once in round r, nothing else fired, one event, one outbox row
 * and one task mark per timer. */
/* The case rounds: every due timer fired once, each its case's one task_overdue event (the ladder
 * names its event ids, so a second firing would show as a second event of the task or none),
 * every case event with its outbox row, every home-visit task marked once. */
static void verify_cases(PGconn *db, int r, result *out)
{
    long long fired = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT NULL "
                                   "AND id <= (SELECT max(id) FROM public.bench_timer_ids)");
    long long early = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT NULL "
                                   "AND due_at > '2026-11-27 02:00:00+00'");
    long long reclaimed = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT "
                                       "NULL AND attempts <> 1");
    long long overdue =
        count_of(db, "SELECT count(*) FROM cases.event WHERE kind = 'task_overdue'");
    long long distinct = count_of(db, "SELECT count(DISTINCT payload->'task'->>'task_id') FROM "
                                      "cases.event WHERE kind = 'task_overdue'");
    long long events = count_of(db, "SELECT count(*) FROM cases.event");
    long long outbox = count_of(db, "SELECT count(*) FROM cases.outbox WHERE topic = "
                                    "'bx.case.events.v1'");
    long long tasks = count_of(db, "SELECT count(*) FROM cases.task WHERE overdue_at IS NOT NULL");
    long long due = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND "
                                 "due_at <= '2026-11-27 02:00:00+00'");
    if (fired != cf.due || early != 0 || reclaimed != 0 || overdue != cf.due ||
        distinct != cf.due || outbox != events || tasks != cf.due || due != 0) {
        fprintf(stderr,
                "bench-escalate: round %d check failed: fired %lld (want %lld), fired before due "
                "%lld, claimed more than once %lld, task_overdue events %lld of %lld tasks, case "
                "events %lld with %lld outbox rows, tasks marked %lld, due left %lld\n",
                r, fired, cf.due, early, reclaimed, overdue, distinct, events, outbox, tasks, due);
        exit(1);
    }
    out->events = events;
}

static void verify(PGconn *db, int r, result *out)
{
    if (cf.rounds[r - 1].v == V_CASE1 || cf.rounds[r - 1].v == V_CASE) {
        verify_cases(db, r, out);
        return;
    }
    char sql[512];
    long long fired = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT NULL");
    long long early = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT NULL "
                                   "AND due_at > '2026-11-27 02:00:00+00'");
    long long reclaimed = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NOT "
                                       "NULL AND attempts <> 1");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM cases.event WHERE event_id LIKE 'r%d.%%'", r);
    long long events = count_of(db, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT split_part(event_id, '.timer-', 2)) FROM cases.event WHERE "
             "event_id LIKE 'r%d.%%'",
             r);
    long long distinct = count_of(db, sql);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM cases.outbox WHERE event_id LIKE 'r%d.%%'", r);
    long long outbox = count_of(db, sql);
    long long tasks = count_of(db, "SELECT count(*) FROM cases.task WHERE overdue_at IS NOT NULL");
    long long due = count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND "
                                 "due_at <= '2026-11-27 02:00:00+00'");
    if (fired != cf.due || early != 0 || reclaimed != 0 || events != cf.due || distinct != cf.due ||
        outbox != cf.due || tasks != cf.due || due != 0) {
        fprintf(stderr,
                "bench-escalate: round %d check failed: fired %lld (want %lld), fired before due "
                "%lld, claimed more than once %lld, events %lld, distinct timers in events %lld, "
                "outbox %lld, tasks marked %lld, due left %lld\n",
                r, fired, cf.due, early, reclaimed, events, distinct, outbox, tasks, due);
        exit(1);
    }
    out->events = events;
}

/* Each timed phase starts after a checkpoint when the role may run one (pg_checkpoint or
 * superuser); otherwise without. */
static void checkpoint(PGconn *db)
{
    PGresult *res = PQexec(db, "CHECKPOINT");
    PQclear(res);
}

/* Back to the loaded rows: the timers unfired, the tasks unmarked, the cases' states as loaded;
 * the events, outbox rows, tasks and timers the round wrote deleted. */
static void reset(PGconn *db)
{
    exec_or_die(db, "DELETE FROM cases.timer WHERE id > (SELECT max(id) FROM "
                    "public.bench_timer_ids)");
    exec_or_die(db, "UPDATE cases.timer SET fired_at = NULL, claimed_by = NULL, lease_until = "
                    "NULL, attempts = 0, cancelled = false WHERE fired_at IS NOT NULL OR "
                    "claimed_by IS NOT NULL");
    exec_or_die(db,
                "DELETE FROM cases.task WHERE id > (SELECT max(id) FROM public.bench_case_state)");
    exec_or_die(db, "UPDATE cases.task SET overdue_at = NULL, outcome = NULL, ended_at = NULL "
                    "WHERE overdue_at IS NOT NULL OR outcome IS NOT NULL");
    exec_or_die(db, "UPDATE cases.case c SET stage = b.stage, state = b.state, updated_at = "
                    "b.updated_at, closed_at = NULL, ending = NULL FROM public.bench_case_state b "
                    "WHERE b.id = c.id AND (c.state <> b.state OR c.closed_at IS NOT NULL)");
    /* cases.event is append-only (a trigger refuses deletes): the bench's scratch database
     * deletes with triggers off (the role is superuser locally) */
    exec_or_die(db, "SET session_replication_role = replica; DELETE FROM cases.outbox; DELETE "
                    "FROM cases.event; DELETE FROM cases.needs_attention; RESET "
                    "session_replication_role");
}

static void settle(PGconn *db)
{
    exec_or_die(db,
                "VACUUM ANALYZE cases.timer, cases.task, cases.event, cases.outbox, cases.case");
    checkpoint(db);
}

/* ---- the second baseline: COPY of the rows a firing writes ----
 * After the run's first case round (its checks passed), the rows that round wrote are read back
 * (untimed) and COPYed, table by table, into scratch tables LIKE theirs (INCLUDING ALL: the same
 * columns, defaults, checks and indexes; cases.event's foreign key added as the original has it):
 * the case events and outbox rows it inserted, and the new versions of the rows it updated (each
 * task's overdue mark, each case row, each timer's fired mark), an UPDATE counted as one row
 * write. The scratch tables have no triggers (bx-console's statement-level summaries are not
 * PostgreSQL's price of the rows) and no foreign keys for the updated rows (an UPDATE that keeps
 * the key checks none). Each COPY is timed from its start to its result (the commit), after a
 * checkpoint, as the other baselines; the tables are dropped after. */

typedef struct same_table {
    const char *name;   /* the table whose rows these are */
    const char *write;  /* what the firing does to them */
    const char *select; /* the round's rows */
    const char *scratch;
    const char *extra; /* SQL run on the scratch table before the COPY, or NULL */
    long long rows;
    size_t bytes;
    double secs;
} same_table;

static same_table same_tables[] = {
    {"cases.event", "INSERT", "SELECT * FROM cases.event ORDER BY id", "public.bench_same_event",
     "ALTER TABLE public.bench_same_event ADD FOREIGN KEY (case_id) REFERENCES cases.case (id)", 0,
     0, 0},
    {"cases.outbox", "INSERT", "SELECT * FROM cases.outbox ORDER BY id", "public.bench_same_outbox",
     NULL, 0, 0, 0},
    {"cases.task", "UPDATE", "SELECT * FROM cases.task WHERE overdue_at IS NOT NULL ORDER BY id",
     "public.bench_same_task", NULL, 0, 0, 0},
    {"cases.case", "UPDATE",
     "SELECT c.* FROM cases.case c JOIN public.bench_case_state b ON b.id = c.id WHERE c.state "
     "<> b.state OR c.updated_at <> b.updated_at OR c.closed_at IS NOT NULL ORDER BY c.id",
     "public.bench_same_case", NULL, 0, 0, 0},
    {"cases.timer", "UPDATE", "SELECT * FROM cases.timer WHERE fired_at IS NOT NULL ORDER BY id",
     "public.bench_same_timer", NULL, 0, 0, 0},
};
#define N_SAME_TABLES ((int)(sizeof(same_tables) / sizeof(same_tables[0])))

static struct {
    int round; /* 1-based; 0: no case round in the run, not measured */
    long long firings, rows;
    size_t bytes;
    double secs;
} same;

/* `COPY (select) TO STDOUT` into m (text format, one line a row); returns the row count. */
static long long copy_out(PGconn *db, const char *select, mem *m)
{
    char sql[1024];
    snprintf(sql, sizeof(sql), "COPY (%s) TO STDOUT", select);
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT)
        die(sql, PQerrorMessage(db));
    PQclear(res);
    m->len = 0;
    char *line = NULL;
    int n;
    while ((n = PQgetCopyData(db, &line, 0)) > 0) {
        if (m->len + (size_t)n + 1 > m->cap) {
            size_t cap = m->cap ? m->cap : 1 << 20;
            while (cap < m->len + (size_t)n + 1)
                cap *= 2;
            char *p = realloc(m->data, cap);
            if (p == NULL)
                die("memory", "no memory for the round's rows");
            m->data = p;
            m->cap = cap;
        }
        memcpy(m->data + m->len, line, (size_t)n);
        m->len += (size_t)n;
        PQfreemem(line);
    }
    if (n == -2)
        die(sql, PQerrorMessage(db));
    long long rows = -1;
    while ((res = PQgetResult(db)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            die(sql, PQerrorMessage(db));
        rows = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    return rows;
}

/* The rows round r (a case round, checked) wrote, COPYed as described above. */
static void copy_same_rows(PGconn *db, int r)
{
    same.round = r;
    same.firings = cf.due;
    mem m = {0};
    for (int i = 0; i < N_SAME_TABLES; i++) {
        same_table *t = &same_tables[i];
        char sql[512];
        snprintf(sql, sizeof(sql), "CREATE TABLE %s (LIKE %s INCLUDING ALL)", t->scratch, t->name);
        exec_or_die(db, sql);
        if (t->extra)
            exec_or_die(db, t->extra);
        t->rows = copy_out(db, t->select, &m);
        t->bytes = m.len;
        snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", t->scratch);
        checkpoint(db);
        double t0 = now_s();
        copy_in(db, sql, &m);
        t->secs = now_s() - t0;
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t->scratch);
        if (count_of(db, sql) != t->rows)
            die(t->scratch, "row count differs from the round's rows");
        snprintf(sql, sizeof(sql), "DROP TABLE %s", t->scratch);
        exec_or_die(db, sql);
        same.rows += t->rows;
        same.bytes += t->bytes;
        same.secs += t->secs;
        fprintf(stderr, "bench-escalate: COPY of round %d's %s rows: %lld (%.1f MB) in %.2f s\n", r,
                t->name, t->rows, (double)t->bytes / 1e6, t->secs);
    }
    free(m.data);
    /* the round's own writes, one per firing of each updated row (its checks passed) */
    if (same_tables[2].rows != cf.due || same_tables[3].rows != cf.due ||
        same_tables[4].rows != cf.due)
        die("COPY of a firing's rows", "not one task, case and timer row per firing");
}

static void run_round(PGconn *db, int r, result *out)
{
    round_spec *spec = &cf.rounds[r];
    if (r > 0)
        reset(db);
    settle(db);
    worker *ws = calloc((size_t)spec->workers, sizeof(*ws));
    if (ws == NULL)
        die("memory", "no memory for workers");
    if (pthread_barrier_init(&start_barrier, NULL, (unsigned)spec->workers + 1) != 0)
        die("pthread_barrier_init", "failed");
    for (int i = 0; i < spec->workers; i++) {
        ws[i].round = r + 1;
        ws[i].index = i;
        ws[i].v = spec->v;
        snprintf(ws[i].owner, sizeof(ws[i].owner), "bench-r%d-w%d", r + 1, i);
        if (pthread_create(&ws[i].thread, NULL, work, &ws[i]) != 0)
            die("pthread_create", "failed");
    }
    loadavg(out->load);
    long long b0, b1, t0, t1;
    cpu_jiffies(&b0, &t0);
    pthread_barrier_wait(&start_barrier);
    double start = now_s();
    for (int i = 0; i < spec->workers; i++)
        pthread_join(ws[i].thread, NULL);
    out->secs = now_s() - start;
    cpu_jiffies(&b1, &t1);
    pthread_barrier_destroy(&start_barrier);
    out->cpu_s = machine_cpu_s(b0, b1);
    out->workers = spec->workers;
    out->v = spec->v;
    out->fired = out->claims = 0;
    out->claim_s = 0;
    for (int i = 0; i < spec->workers; i++) {
        if (ws[i].error[0])
            die("worker", ws[i].error);
        out->fired += ws[i].fired;
        out->claims += ws[i].claims;
        out->claim_s += ws[i].claim_s;
    }
    free(ws);
    verify(db, r + 1, out);
    fprintf(
        stderr,
        "bench-escalate: round %d: %lld fired in %.2f s = %.0f timers/s, %.0f events/s, machine "
        "CPU %.1f s\n",
        r + 1, out->fired, out->secs, (double)out->fired / out->secs,
        (double)out->events / out->secs, out->cpu_s);
    if (same.round == 0 && (spec->v == V_CASE || spec->v == V_CASE1))
        copy_same_rows(db, r + 1);
}

/* EXPLAIN ANALYZE of timers_claim's statement (rolled back), to stderr. */
static void explain_claim(PGconn *db)
{
    char sql[1024], now_text[40], until_text[40];
    ts_text(T_NOW, now_text);
    ts_text(T_NOW + cf.lease_ms, until_text);
    snprintf(sql, sizeof(sql),
             "EXPLAIN (ANALYZE, BUFFERS) UPDATE cases.timer t SET claimed_by = 'explain', "
             "lease_until = '%s', attempts = t.attempts + 1 WHERE t.id IN (SELECT id FROM "
             "cases.timer WHERE fired_at IS NULL AND due_at <= '%s' AND (lease_until IS NULL OR "
             "lease_until < '%s') ORDER BY due_at FOR UPDATE SKIP LOCKED LIMIT %d) RETURNING t.id",
             until_text, now_text, now_text, cf.batch);
    exec_or_die(db, "BEGIN");
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        fprintf(stderr, "bench-escalate: plan of timers_claim (max %d), rolled back:\n", cf.batch);
        for (int i = 0; i < PQntuples(res); i++)
            fprintf(stderr, "  %s\n", PQgetvalue(res, i, 0));
    } else {
        fprintf(stderr, "bench-escalate: EXPLAIN failed: %s", PQerrorMessage(db));
    }
    PQclear(res);
    exec_or_die(db, "ROLLBACK");
}

static void parse_rounds(const char *spec)
{
    cf.nrounds = 0;
    char *copy = strdup(spec), *save = NULL;
    if (copy == NULL)
        die("memory", "strdup");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (cf.nrounds == MAX_ROUNDS)
            die("--rounds", "too many rounds");
        round_spec *r = &cf.rounds[cf.nrounds++];
        char *end = NULL;
        r->workers = (int)strtol(tok, &end, 10);
        r->v = V_PLAIN;
        if (r->workers < 1 || r->workers > 64)
            die("--rounds", "workers must be 1 to 64");
        if (*end == ':') {
            if (strcmp(end + 1, "async") == 0)
                r->v = V_ASYNC;
            else if (strcmp(end + 1, "batch") == 0)
                r->v = V_BATCH;
            else if (strcmp(end + 1, "due") == 0)
                r->v = V_DUE;
            else if (strcmp(end + 1, "set") == 0)
                r->v = V_SET;
            else if (strcmp(end + 1, "case1") == 0)
                r->v = V_CASE1;
            else if (strcmp(end + 1, "case") == 0)
                r->v = V_CASE;
            else
                die("--rounds", "variant must be async, batch, due, set, case1 or case");
        } else if (*end != '\0') {
            die("--rounds", "items are N, N:async, N:batch, N:due, N:set, N:case1 or N:case");
        }
    }
    free(copy);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-escalate --url URL [--timers N] [--due N] [--batch N] [--lease-ms N]\n"
            "                      [--rounds 2,4,2:async,2:batch,2:case1,2:case] [--explain]\n"
            "                      [--policy ladder.policy]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    cf.timers = 1000000;
    cf.due = 200000;
    cf.batch = 500;
    cf.lease_ms = 10 * MINUTE;
    parse_rounds("2,4,2:async,2:batch");
    cf.policy_path = BX_DEFAULT_LADDER_POLICY;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--explain") == 0) {
            cf.explain = true;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--url") == 0)
            cf.url = v;
        else if (strcmp(a, "--timers") == 0)
            cf.timers = strtoll(v, NULL, 10);
        else if (strcmp(a, "--due") == 0)
            cf.due = strtoll(v, NULL, 10);
        else if (strcmp(a, "--batch") == 0)
            cf.batch = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--lease-ms") == 0)
            cf.lease_ms = strtoll(v, NULL, 10);
        else if (strcmp(a, "--rounds") == 0)
            parse_rounds(v);
        else if (strcmp(a, "--policy") == 0)
            cf.policy_path = v;
        else
            usage();
    }
    if (cf.url == NULL || cf.timers < 1 || cf.due < 1 || cf.due > cf.timers || cf.batch < 1 ||
        cf.batch > 10000 || cf.lease_ms < 1)
        usage();

    PGconn *db = connect_db();
    exec_or_die(db, "CREATE TABLE public.bench_event_copy (LIKE cases.event INCLUDING DEFAULTS "
                    "INCLUDING CONSTRAINTS INCLUDING INDEXES);"
                    "ALTER TABLE public.bench_event_copy ADD FOREIGN KEY (case_id) "
                    "REFERENCES cases.case (id)");

    bx_error err = {0};
    if (ladder_policy_load(cf.policy_path, &policy, &err) != BX_OK)
        die("policy", err.msg);
    fprintf(stderr, "bench-escalate: %lld students, cases and tasks (untimed)\n", cf.due);
    load_registry(db);
    make_template();
    load_cases(db);
    exec_or_die(db, "VACUUM ANALYZE cases.case, cases.task");

    mem rows = {0};
    timer_rows(&rows);
    fprintf(stderr, "bench-escalate: COPY %lld timer rows (%.1f MB) into cases.timer\n", cf.timers,
            (double)rows.len / 1e6);
    checkpoint(db);
    double t0 = now_s();
    copy_in(db, "COPY cases.timer (timer_key, case_id, kind, payload, due_at) FROM STDIN", &rows);
    double copy_timer_s = now_s() - t0;
    size_t timer_bytes = rows.len;
    rows.len = 0;
    if (count_of(db, "SELECT count(*) FROM cases.timer") != cf.timers)
        die("COPY cases.timer", "row count differs");

    event_rows(&rows);
    fprintf(stderr,
            "bench-escalate: COPY %lld cases.event-shaped rows (%.1f MB) into a scratch "
            "table\n",
            cf.timers, (double)rows.len / 1e6);
    checkpoint(db);
    t0 = now_s();
    copy_in(db,
            "COPY public.bench_event_copy (case_id, event_id, kind, stage, actor, reason, late, "
            "occurred_at, payload) FROM STDIN",
            &rows);
    double copy_event_s = now_s() - t0;
    size_t event_bytes = rows.len;
    free(rows.data);
    exec_or_die(db, "DROP TABLE public.bench_event_copy");
    exec_or_die(db, "CREATE TABLE public.bench_timer_ids AS SELECT max(id) AS id FROM cases.timer");
    exec_or_die(db, "VACUUM ANALYZE cases.timer");
    if (cf.explain)
        explain_claim(db);

    result res[MAX_ROUNDS];
    for (int r = 0; r < cf.nrounds; r++) {
        fprintf(stderr, "bench-escalate: round %d: %d workers%s%s, %lld due of %lld open timers\n",
                r + 1, cf.rounds[r].workers, cf.rounds[r].v ? ", " : "",
                variant_names[cf.rounds[r].v], cf.due, cf.timers);
        run_round(db, r, &res[r]);
    }
    PQfinish(db);

    double copy_timer_rate = (double)cf.timers / copy_timer_s;
    double copy_event_rate = (double)cf.timers / copy_event_s;
    printf("\n%lld open timers, %lld due (the rest due over the next 60 days); claims of up to %d; "
           "%ld cores\n\n",
           cf.timers, cf.due, cf.batch, sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-52s %10s %12s %8s\n", "", "seconds", "rows/s", "MB/s");
    printf("%-52s %10.2f %12.0f %8.1f\n", "COPY cases.timer rows (1 per timer)", copy_timer_s,
           copy_timer_rate, (double)timer_bytes / 1e6 / copy_timer_s);
    printf("%-52s %10.2f %12.0f %8.1f\n", "COPY cases.event-shaped rows (scratch table)",
           copy_event_s, copy_event_rate, (double)event_bytes / 1e6 / copy_event_s);
    /* firings/s equivalent: the firings whose rows were COPYed per second of their COPYs */
    double copy_same_rate = same.round ? (double)same.firings / same.secs : 0;
    if (same.round) {
        char label[80];
        snprintf(label, sizeof(label), "COPY of a firing's rows (%.2f a firing, round %d's)",
                 (double)same.rows / (double)same.firings, same.round);
        printf("%-52s %10.2f %12.0f %8.1f   %.0f firings/s equivalent\n", label, same.secs,
               (double)same.rows / same.secs, (double)same.bytes / 1e6 / same.secs, copy_same_rate);
        for (int i = 0; i < N_SAME_TABLES; i++) {
            const same_table *t = &same_tables[i];
            snprintf(label, sizeof(label), "  %s %s (%.2f a firing)", t->name,
                     strcmp(t->write, "INSERT") == 0 ? "inserted" : "updated",
                     (double)t->rows / (double)same.firings);
            printf("%-52s %10.2f %12.0f %8.1f\n", label, t->secs, (double)t->rows / t->secs,
                   (double)t->bytes / 1e6 / t->secs);
        }
        printf("  (the rows round %d wrote, read back and COPYed into scratch tables LIKE theirs "
               "INCLUDING ALL, cases.event's foreign key added, no triggers; an UPDATE counted as "
               "one row write)\n",
               same.round);
    } else {
        printf("COPY of a firing's rows: not measured (no case or case1 round in this run)\n");
    }
    printf("\n%-34s %8s %10s %10s %10s %10s %9s %9s %11s %s\n", "firing", "seconds", "timers/s",
           "events/s", "/COPY tmr", "/COPY same", "claim ms", "cpu s", "cpu us/tmr", "load before");
    /* claim ms: one timers_claim of up to --batch; for the timers_fire_due rows one whole batch
     * (select, firing, marks, commit) */
    for (int r = 0; r < cf.nrounds; r++) {
        const result *x = &res[r];
        char label[64];
        snprintf(label, sizeof(label), "%d workers%s", x->workers,
                 x->v == V_ASYNC   ? ", synchronous_commit=off"
                 : x->v == V_BATCH ? ", batch in 1 tx (bench)"
                 : x->v == V_DUE   ? ", timers_fire_due"
                 : x->v == V_SET   ? ", timers_fire_due, set writes"
                 : x->v == V_CASE1 ? ", service path, cases 1 by 1"
                 : x->v == V_CASE  ? ", service path, cases in 1"
                                   : "");
        /* /COPY same: only the case rounds write a case firing's rows */
        char same_ratio[16] = "-";
        if (same.round && (x->v == V_CASE || x->v == V_CASE1))
            snprintf(same_ratio, sizeof(same_ratio), "%.4f",
                     (double)x->fired / x->secs / copy_same_rate);
        printf("%-34s %8.2f %10.0f %10.0f %10.4f %10s %9.1f %9.1f %11.1f %s\n", label, x->secs,
               (double)x->fired / x->secs, (double)x->events / x->secs,
               (double)x->fired / x->secs / copy_timer_rate, same_ratio,
               x->claims ? x->claim_s * 1000 / (double)x->claims : 0.0, x->cpu_s,
               x->cpu_s * 1e6 / (double)x->fired, x->load);
    }
    printf("\n/COPY tmr: fired timers/s / COPY timer rows/s (one 84-byte row a timer). /COPY "
           "same: fired timers/s / the firings/s equivalent of COPYing a case firing's rows; "
           "for the case rounds only (the others write an event, an outbox row and the task's "
           "and timer's marks, not these rows).\n");
    printf("\nEvery round: all %lld due timers fired exactly once, none early (case rounds: one "
           "task_overdue event and one overdue mark per task, an outbox row per case event; the "
           "others: one event, one outbox row, one task mark each).\n",
           cf.due);
    return 0;
}
