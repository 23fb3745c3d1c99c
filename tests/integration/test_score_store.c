/* bx-score's store against the real Redis and PostgreSQL: compare-and-set in
 * any order, implied presences, pipelined batches, PostgreSQL equal to Redis,
 * rebuild, hash tags and script keys. */
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_test.h"
#include "store.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- fixtures ---- */

/* A prefix no other run or case uses: ids are "<prefix>-<name>" (at most 32
 * characters). */
static char prefix[24];

static void make_prefix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(prefix, sizeof(prefix), "STR%d%04ld", (int)getpid(), (long)(ts.tv_nsec / 100000));
}

static void migrate(void)
{
    static bool done;
    if (done)
        return;
    bx_buf out;
    bx_buf_init(&out, 0);
    const char *argv[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "migrate", NULL};
    int rc = itest_run(argv, NULL, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl migrate: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
    done = true;
}

static PGconn *pg(void)
{
    migrate();
    PGconn *db = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_connect(itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue"),
                                5000, &db, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(s == BX_OK);
    return db;
}

static redisContext *rds(void)
{
    redisContext *c = NULL;
    bx_error err = {0};
    bx_status s =
        bx_redis_connect(itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799"), 5000, &c, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(s == BX_OK);
    return c;
}

static score_store_redis *store_on(redisContext *c)
{
    score_store_redis *st = NULL;
    bx_error err = {0};
    bx_status s = score_store_redis_new(c, &st, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(s == BX_OK);
    return st;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fact with its own storage. */
typedef struct tfact {
    char student[SCORE_STORE_ID_MAX + 1];
    char field[40];
    char order_key[80];
    char value[16];
    bool implied;
} tfact;

typedef struct treport {
    char klass[SCORE_STORE_ID_MAX + 1];
    char field[16];
    char order_key[80];
    char value[32];
} treport;

static void set_fact(tfact *t, const char *student, const char *field, long long at_ms,
                     const char *event_id, const char *value, bool implied)
{
    snprintf(t->student, sizeof(t->student), "%s", student);
    snprintf(t->field, sizeof(t->field), "%s", field);
    REQUIRE(score_store_order_key(at_ms, event_id, t->order_key, sizeof(t->order_key)) == BX_OK);
    snprintf(t->value, sizeof(t->value), "%s", value);
    t->implied = implied;
}

static score_store_fact *as_facts(const tfact *t, size_t n, const char *school, const char *klass)
{
    score_store_fact *f = calloc(n ? n : 1, sizeof(*f));
    REQUIRE(f != NULL);
    for (size_t i = 0; i < n; i++)
        f[i] = (score_store_fact){t[i].student,   school,     klass,       t[i].field,
                                  t[i].order_key, t[i].value, t[i].implied};
    return f;
}

static score_store_report *as_reports(const treport *t, size_t n, const char *school)
{
    score_store_report *r = calloc(n ? n : 1, sizeof(*r));
    REQUIRE(r != NULL);
    for (size_t i = 0; i < n; i++)
        r[i] = (score_store_report){t[i].klass, school, t[i].field, t[i].order_key, t[i].value};
    return r;
}

static void shuffle(void *items, size_t n, size_t size)
{
    char tmp[512];
    REQUIRE(size <= sizeof(tmp));
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd((uint32_t)i);
        memcpy(tmp, (char *)items + (i - 1) * size, size);
        memcpy((char *)items + (i - 1) * size, (char *)items + j * size, size);
        memcpy((char *)items + j * size, tmp, size);
    }
}

static void reverse(void *items, size_t n, size_t size)
{
    char tmp[512];
    REQUIRE(size <= sizeof(tmp));
    for (size_t i = 0; i < n / 2; i++) {
        memcpy(tmp, (char *)items + i * size, size);
        memcpy((char *)items + i * size, (char *)items + (n - 1 - i) * size, size);
        memcpy((char *)items + (n - 1 - i) * size, tmp, size);
    }
}

static size_t apply(score_store_redis *st, const tfact *t, size_t n, score_store_outcome *outcomes)
{
    score_store_fact *f = as_facts(t, n, NULL, NULL);
    size_t stored = 0;
    bx_error err = {0};
    bx_status s = score_store_apply_facts(st, f, n, outcomes, &stored, &err);
    if (s != BX_OK)
        fprintf(stderr, "score_store_apply_facts: %s\n", err.msg);
    REQUIRE(s == BX_OK);
    free(f);
    return stored;
}

static void apply_reports(score_store_redis *st, const treport *t, size_t n)
{
    score_store_report *r = as_reports(t, n, NULL);
    bx_error err = {0};
    bx_status s = score_store_apply_reports(st, r, n, NULL, NULL, &err);
    if (s != BX_OK)
        fprintf(stderr, "score_store_apply_reports: %s\n", err.msg);
    REQUIRE(s == BX_OK);
    free(r);
}

/* Facts to Redis, then their durable record, as bx-score does. */
static void apply_and_record(score_store_redis *st, PGconn *db, const tfact *t, size_t n,
                             const char *school, const char *klass)
{
    score_store_fact *f = as_facts(t, n, school, klass);
    score_store_outcome *o = calloc(n ? n : 1, sizeof(*o));
    REQUIRE(o != NULL);
    bx_error err = {0};
    bx_status s = score_store_apply_facts(st, f, n, o, NULL, &err);
    IFOK(s, score_store_pg_write_facts(db, f, o, n, NULL, &err));
    if (s != BX_OK)
        fprintf(stderr, "apply and record: %s\n", err.msg);
    REQUIRE(s == BX_OK);
    free(o);
    free(f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A hash as text: "field=value" lines sorted by field ("(none)" when the key
 * does not exist). */
static char *snapshot(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    REQUIRE(r != NULL && r->type == REDIS_REPLY_ARRAY);
    size_t n = r->elements / 2;
    char **lines = calloc(n ? n : 1, sizeof(*lines));
    REQUIRE(lines != NULL);
    for (size_t i = 0; i < n; i++) {
        size_t len = r->element[2 * i]->len + r->element[2 * i + 1]->len + 2;
        lines[i] = malloc(len);
        REQUIRE(lines[i] != NULL);
        snprintf(lines[i], len, "%s=%s", r->element[2 * i]->str, r->element[2 * i + 1]->str);
    }
    freeReplyObject(r);
    qsort(lines, n, sizeof(*lines), cmp_str);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_printf(&b, "%s:\n", key) == BX_OK);
    if (n == 0)
        REQUIRE(bx_buf_puts(&b, "(none)\n") == BX_OK);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(bx_buf_printf(&b, "%s\n", lines[i]) == BX_OK);
        free(lines[i]);
    }
    free(lines);
    return bx_buf_steal(&b);
}

typedef bx_status key_fn(const char *id, char *out, size_t size);

/* The hashes of many owners as one text. */
static char *snapshot_all(redisContext *c, key_fn *key, char ids[][SCORE_STORE_ID_MAX + 1],
                          size_t n)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        char k[SCORE_STORE_KEY_MAX];
        REQUIRE(key(ids[i], k, sizeof(k)) == BX_OK);
        char *s = snapshot(c, k);
        REQUIRE(bx_buf_puts(&b, s) == BX_OK);
        free(s);
    }
    return bx_buf_steal(&b);
}

static void del_keys(redisContext *c, key_fn *key, char ids[][SCORE_STORE_ID_MAX + 1], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char k[SCORE_STORE_KEY_MAX];
        REQUIRE(key(ids[i], k, sizeof(k)) == BX_OK);
        REQUIRE(redisAppendCommand(c, "DEL %s", k) == REDIS_OK);
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        REQUIRE(redisGetReply(c, &r) == REDIS_OK);
        freeReplyObject(r);
    }
}

static bool key_exists(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    REQUIRE(r != NULL && r->type == REDIS_REPLY_INTEGER);
    bool yes = r->integer == 1;
    freeReplyObject(r);
    return yes;
}

/* One student's facts in PostgreSQL in the snapshot's form. */
static char *pg_snapshot(PGconn *db, const char *student)
{
    char key[SCORE_STORE_KEY_MAX];
    REQUIRE(score_store_key_facts(student, key, sizeof(key)) == BX_OK);
    const char *params[] = {student};
    PGresult *res = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_query(db,
                        "SELECT field, order_key, value FROM attendance.fact "
                        "WHERE student_id = $1 "
                        "ORDER BY field",
                        1, params, &res, &err) == BX_OK);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_printf(&b, "%s:\n", key) == BX_OK);
    if (PQntuples(res) == 0)
        REQUIRE(bx_buf_puts(&b, "(none)\n") == BX_OK);
    for (int r = 0; r < PQntuples(res); r++)
        REQUIRE(bx_buf_printf(&b, "%s=%s\t%s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                              PQgetvalue(res, r, 2)) == BX_OK);
    PQclear(res);
    return bx_buf_steal(&b);
}

static void pg_cleanup(PGconn *db, const char *school)
{
    const char *params[] = {school};
    PGresult *res = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_query(db, "DELETE FROM attendance.fact WHERE school_id = $1", 1, params, &res,
                        &err) == BX_OK);
    PQclear(res);
    REQUIRE(bx_pg_query(db, "DELETE FROM attendance.class_report WHERE school_id = $1", 1, params,
                        &res, &err) == BX_OK);
    PQclear(res);
}

static void check_same(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        BX_FAIL_AT("%s differs", what);
        fprintf(stderr, "--- expected\n%s--- got\n%s", want, got);
    }
}

/* 2026-03-02 08:00 Shanghai, a Monday. */
#define T0     1772409600000LL
#define MINUTE 60000LL
#define DAY    86400000LL

/* The facts of n students over 10 days, whole day and period 3, each slot in
 * three versions (a correction, a repeat with the same order key but another
 * value), and two leave requests each. */
static size_t make_history(tfact *t, char ids[][SCORE_STORE_ID_MAX + 1], size_t nstudents)
{
    static const char *const statuses[] = {"a", "t", "p", "ls", "e"};
    size_t n = 0;
    for (size_t s = 0; s < nstudents; s++) {
        for (int d = 0; d < 10; d++) {
            for (int p = 0; p <= 3; p += 3) {
                char field[40];
                REQUIRE(score_store_field_day(bx_date_from_ymd(2026, 3, 2 + d), p, field,
                                              sizeof(field)) == BX_OK);
                for (int v = 0; v < 3; v++) {
                    char event[64];
                    snprintf(event, sizeof(event), "rc-%zu-%d-%d-%d", s, d, p, v);
                    set_fact(&t[n++], ids[s], field, T0 + d * DAY + v * MINUTE, event,
                             statuses[rnd(5)], false);
                }
                /* The same event again with another value: the greater value wins,
                 * always. */
                t[n] = t[n - 1];
                snprintf(t[n].value, sizeof(t[n].value), "%s", statuses[rnd(5)]);
                n++;
            }
        }
        for (int k = 0; k < 2; k++) {
            char event[64], field[SCORE_STORE_FIELD_MAX + 1];
            snprintf(event, sizeof(event), "lv-%zu-%d", s, k);
            REQUIRE(score_store_field_leave(event, field, sizeof(field)) == BX_OK);
            for (int v = 0; v < 2; v++)
                set_fact(&t[n++], ids[s], field, T0 + k * DAY + v * MINUTE, event, v ? "s1" : "s0",
                         false);
        }
    }
    return n;
}

/* What Redis must hold: per field the greatest "order_key\tvalue", written like
 * snapshot(). */
static char *expected_snapshot(const tfact *t, size_t n, char ids[][SCORE_STORE_ID_MAX + 1],
                               size_t nstudents)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    for (size_t s = 0; s < nstudents; s++) {
        char **lines = calloc(n, sizeof(*lines));
        size_t count = 0;
        REQUIRE(lines != NULL);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(t[i].student, ids[s]) != 0)
                continue;
            char line[256];
            snprintf(line, sizeof(line), "%s=%s\t%s", t[i].field, t[i].order_key, t[i].value);
            size_t flen = strlen(t[i].field) + 1;
            size_t j = 0;
            while (j < count && strncmp(lines[j], line, flen) != 0)
                j++;
            if (j == count) {
                lines[count++] = strdup(line);
            } else if (strcmp(lines[j], line) < 0) {
                free(lines[j]);
                lines[j] = strdup(line);
            }
        }
        qsort(lines, count, sizeof(*lines), cmp_str);
        char key[SCORE_STORE_KEY_MAX];
        REQUIRE(score_store_key_facts(ids[s], key, sizeof(key)) == BX_OK);
        REQUIRE(bx_buf_printf(&b, "%s:\n", key) == BX_OK);
        if (count == 0)
            REQUIRE(bx_buf_puts(&b, "(none)\n") == BX_OK);
        for (size_t j = 0; j < count; j++) {
            REQUIRE(bx_buf_printf(&b, "%s\n", lines[j]) == BX_OK);
            free(lines[j]);
        }
        free(lines);
    }
    return bx_buf_steal(&b);
}

/* ---- cases ---- */

BX_TEST(any_order_gives_identical_hashes)
{
    make_prefix();
    redisContext *c = rds();
    score_store_redis *st = store_on(c);
    enum { STUDENTS = 6 };
    char ids[STUDENTS][SCORE_STORE_ID_MAX + 1];
    for (int s = 0; s < STUDENTS; s++)
        snprintf(ids[s], sizeof(ids[s]), "%s-o%d", prefix, s);
    tfact *t = calloc(STUDENTS * 100, sizeof(*t));
    REQUIRE(t != NULL);
    size_t n = make_history(t, ids, STUDENTS);
    char *want = expected_snapshot(t, n, ids, STUDENTS);

    /* In order, in one batch. */
    CHECK(apply(st, t, n, NULL) > 0);
    char *forward = snapshot_all(c, score_store_key_facts, ids, STUDENTS);
    check_same("in order", forward, want);
    /* Twice: nothing changes. */
    CHECK_INT(apply(st, t, n, NULL), 0);
    char *again = snapshot_all(c, score_store_key_facts, ids, STUDENTS);
    check_same("twice", again, want);
    del_keys(c, score_store_key_facts, ids, STUDENTS);

    /* In reverse. */
    reverse(t, n, sizeof(*t));
    apply(st, t, n, NULL);
    char *backward = snapshot_all(c, score_store_key_facts, ids, STUDENTS);
    check_same("in reverse", backward, want);
    del_keys(c, score_store_key_facts, ids, STUDENTS);

    /* Shuffled, in batches of random size, then all of it again shuffled
     * otherwise. */
    for (int round = 0; round < 2; round++) {
        shuffle(t, n, sizeof(*t));
        for (size_t i = 0; i < n;) {
            size_t len = 1 + rnd(40);
            if (len > n - i)
                len = n - i;
            apply(st, t + i, len, NULL);
            i += len;
        }
    }
    char *shuffled = snapshot_all(c, score_store_key_facts, ids, STUDENTS);
    check_same("shuffled", shuffled, want);
    del_keys(c, score_store_key_facts, ids, STUDENTS);

    /* Class reports follow the same rule. */
    char classes[2][SCORE_STORE_ID_MAX + 1];
    treport r[2 * 10 * 2] = {0};
    size_t nr = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(classes[k], sizeof(classes[k]), "%s-c%d", prefix, k);
        for (int d = 0; d < 10; d++)
            for (int v = 0; v < 2; v++) {
                treport *x = &r[nr++];
                snprintf(x->klass, sizeof(x->klass), "%s", classes[k]);
                REQUIRE(score_store_field_day(bx_date_from_ymd(2026, 3, 2 + d), 0, x->field,
                                              sizeof(x->field)) == BX_OK);
                char event[32];
                snprintf(event, sizeof(event), "rc-%d-%d:class", d, v);
                REQUIRE(score_store_order_key(T0 + d * DAY + v * MINUTE, event, x->order_key,
                                              sizeof(x->order_key)) == BX_OK);
                snprintf(x->value, sizeof(x->value), "enrolled=%d", 40 + v);
            }
    }
    apply_reports(st, r, nr);
    char *reports_forward = snapshot_all(c, score_store_key_reported, classes, 2);
    del_keys(c, score_store_key_reported, classes, 2);
    shuffle(r, nr, sizeof(r[0]));
    apply_reports(st, r, nr);
    apply_reports(st, r, nr);
    char *reports_shuffled = snapshot_all(c, score_store_key_reported, classes, 2);
    check_same("class reports shuffled", reports_shuffled, reports_forward);
    CHECK_CONTAINS(reports_forward, "2026-03-11|0=1773187260000|rc-9-1:class\tenrolled=41\n");
    del_keys(c, score_store_key_reported, classes, 2);

    free(forward);
    free(again);
    free(backward);
    free(shuffled);
    free(reports_forward);
    free(reports_shuffled);
    free(want);
    free(t);
    score_store_redis_free(st);
    redisFree(c);
}

BX_TEST(correction_wins_older_is_ignored)
{
    make_prefix();
    redisContext *c = rds();
    score_store_redis *st = store_on(c);
    char sid[SCORE_STORE_ID_MAX + 1], key[SCORE_STORE_KEY_MAX];
    snprintf(sid, sizeof(sid), "%s-c", prefix);
    REQUIRE(score_store_key_facts(sid, key, sizeof(key)) == BX_OK);
    const char *monday = "2026-03-02|0", *tuesday = "2026-03-03|0";
    score_store_outcome o[1];
    tfact f = {0};

    set_fact(&f, sid, monday, T0 + 10 * MINUTE, "rc-1:x", "a", false);
    CHECK_INT(apply(st, &f, 1, o), 1);
    CHECK_INT(o[0], SCORE_STORE_STORED);
    CHECK_INT(apply(st, &f, 1, o), 0);
    CHECK_INT(o[0], SCORE_STORE_CURRENT);
    /* A later correction wins. */
    set_fact(&f, sid, monday, T0 + 30 * MINUTE, "att-2", "p", false);
    CHECK_INT(apply(st, &f, 1, o), 1);
    CHECK_INT(o[0], SCORE_STORE_STORED);
    /* An older record arriving late changes nothing. */
    set_fact(&f, sid, monday, T0 + 20 * MINUTE, "att-3", "a", false);
    CHECK_INT(apply(st, &f, 1, o), 0);
    CHECK_INT(o[0], SCORE_STORE_SUPERSEDED);
    char *s = snapshot(c, key);
    CHECK_CONTAINS(s, "2026-03-02|0=1772411400000|att-2\tp\n");
    free(s);

    /* Same millisecond: the event id decides, bytewise ("B" < "a"), in either
     * order. */
    set_fact(&f, sid, monday, T0 + 40 * MINUTE, "a", "x", false);
    tfact g = {0};
    set_fact(&g, sid, monday, T0 + 40 * MINUTE, "B", "y", false);
    CHECK_INT(apply(st, &f, 1, o), 1);
    CHECK_INT(apply(st, &g, 1, o), 0);
    CHECK_INT(o[0], SCORE_STORE_SUPERSEDED);

    /* An implied presence with nothing to replace is dropped... */
    set_fact(&f, sid, tuesday, T0 + DAY + 10 * MINUTE, "rc-5:x", "p", true);
    CHECK_INT(apply(st, &f, 1, o), 0);
    CHECK_INT(o[0], SCORE_STORE_IMPLIED);
    s = snapshot(c, key);
    CHECK(strstr(s, tuesday) == NULL);
    free(s);
    /* ...but replaces an absence it corrects, and then stays as a tombstone. */
    set_fact(&f, sid, tuesday, T0 + DAY + 5 * MINUTE, "rc-4:x", "a", false);
    CHECK_INT(apply(st, &f, 1, o), 1);
    set_fact(&f, sid, tuesday, T0 + DAY + 10 * MINUTE, "rc-5:x", "p", true);
    CHECK_INT(apply(st, &f, 1, o), 1);
    CHECK_INT(o[0], SCORE_STORE_STORED);
    CHECK_INT(apply(st, &f, 1, o), 0);
    CHECK_INT(o[0], SCORE_STORE_CURRENT);
    set_fact(&f, sid, tuesday, T0 + DAY + 7 * MINUTE, "att-6", "a", false);
    CHECK_INT(apply(st, &f, 1, o), 0);
    CHECK_INT(o[0], SCORE_STORE_SUPERSEDED);
    s = snapshot(c, key);
    CHECK_CONTAINS(s, "2026-03-03|0=1772496600000|rc-5:x\tp\n");
    free(s);

    redisReply *r = redisCommand(c, "DEL %s", key);
    REQUIRE(r != NULL);
    freeReplyObject(r);
    score_store_redis_free(st);
    redisFree(c);
}

BX_TEST(pipelined_10000_facts_of_1000_students)
{
    make_prefix();
    redisContext *c = rds();
    score_store_redis *st = store_on(c);
    enum { STUDENTS = 1000, PER = 10, N = STUDENTS * PER };
    static char ids[STUDENTS][SCORE_STORE_ID_MAX + 1];
    tfact *t = calloc(N, sizeof(*t));
    score_store_outcome *o = calloc(N, sizeof(*o));
    REQUIRE(t != NULL && o != NULL);
    for (int s = 0; s < STUDENTS; s++)
        snprintf(ids[s], sizeof(ids[s]), "%s-p%d", prefix, s);
    /* Interleaved: no two neighbours share a student, so every fact is its own
     * script call. */
    for (int k = 0; k < PER; k++)
        for (int s = 0; s < STUDENTS; s++) {
            char field[16], event[32];
            REQUIRE(score_store_field_day(bx_date_from_ymd(2026, 3, 2 + k), 0, field,
                                          sizeof(field)) == BX_OK);
            snprintf(event, sizeof(event), "rc-%d:%d", k, s);
            set_fact(&t[k * STUDENTS + s], ids[s], field, T0 + k * DAY, event, "a", false);
        }
    double t0 = now_s();
    CHECK_INT(apply(st, t, N, o), N);
    double t1 = now_s();
    size_t all_stored = 0;
    for (int i = 0; i < N; i++)
        all_stored += o[i] == SCORE_STORE_STORED;
    CHECK_INT(all_stored, N);
    /* Again, sorted by student (a call per student): all current, nothing stored.
     */
    tfact *sorted = calloc(N, sizeof(*sorted));
    REQUIRE(sorted != NULL);
    for (int s = 0; s < STUDENTS; s++)
        for (int k = 0; k < PER; k++)
            sorted[s * PER + k] = t[k * STUDENTS + s];
    double t2 = now_s();
    CHECK_INT(apply(st, sorted, N, o), 0);
    double t3 = now_s();
    size_t current = 0;
    for (int i = 0; i < N; i++)
        current += o[i] == SCORE_STORE_CURRENT;
    CHECK_INT(current, N);
    /* A correction of every tenth student, mixed into a batch of repeats. */
    for (int s = 0; s < STUDENTS; s += 10) {
        char field[sizeof(sorted[0].field)];
        memcpy(field, sorted[s * PER].field, sizeof(field));
        set_fact(&sorted[s * PER], ids[s], field, T0 + 5 * MINUTE, "fix", "p", false);
    }
    CHECK_INT(apply(st, sorted, N, o), STUDENTS / 10);

    /* Read back, pipelined. */
    const char **list = calloc(STUDENTS, sizeof(*list));
    score_store_entries *e = calloc(STUDENTS, sizeof(*e));
    REQUIRE(list != NULL && e != NULL);
    for (int s = 0; s < STUDENTS; s++)
        list[s] = ids[s];
    bx_error err = {0};
    double t4 = now_s();
    REQUIRE(score_store_load_facts(st, list, STUDENTS, e, &err) == BX_OK);
    double t5 = now_s();
    for (int s = 0; s < STUDENTS; s++) {
        CHECK_INT(e[s].count, PER);
        CHECK_STR(e[s].items[0].field, "2026-03-02|0");
        CHECK_STR(e[s].items[0].value, s % 10 == 0 ? "p" : "a");
        score_store_entries_free(&e[s]);
    }
    fprintf(stderr,
            "redis: %d facts stored in %.3f s (%.0f/s, one call each), repeated "
            "in %.3f s "
            "(%.0f/s, a call per student), %d students read in %.3f s\n",
            N, t1 - t0, N / (t1 - t0), t3 - t2, N / (t3 - t2), STUDENTS, t5 - t4);
    del_keys(c, score_store_key_facts, ids, STUDENTS);
    free(list);
    free(e);
    free(sorted);
    free(o);
    free(t);
    score_store_redis_free(st);
    redisFree(c);
}

BX_TEST(postgresql_equals_redis)
{
    make_prefix();
    redisContext *c = rds();
    PGconn *db = pg();
    score_store_redis *st = store_on(c);
    char school[SCORE_STORE_ID_MAX + 1], klass[SCORE_STORE_ID_MAX + 1];
    snprintf(school, sizeof(school), "%s-s", prefix);
    snprintf(klass, sizeof(klass), "%s-k", prefix);
    enum { STUDENTS = 40 };
    char ids[STUDENTS][SCORE_STORE_ID_MAX + 1];
    for (int s = 0; s < STUDENTS; s++)
        snprintf(ids[s], sizeof(ids[s]), "%s-q%d", prefix, s);
    /* Per student and day: maybe an absence, maybe an individual presence, and a
     * roll call's implied presence (sometimes a later roll call, sometimes an
     * earlier one). */
    tfact *t = calloc(STUDENTS * 200, sizeof(*t));
    REQUIRE(t != NULL);
    size_t n = make_history(t, ids, STUDENTS);
    for (int s = 0; s < STUDENTS; s++)
        for (int d = 0; d < 15; d++) {
            char field[16], event[32];
            REQUIRE(score_store_field_day(bx_date_from_ymd(2026, 3, 16 + d), 0, field,
                                          sizeof(field)) == BX_OK);
            if (rnd(2)) {
                snprintf(event, sizeof(event), "att-%d", d);
                set_fact(&t[n++], ids[s], field, T0 + 15 * DAY + rnd(600) * MINUTE, event,
                         rnd(4) ? "a" : "p", false);
            }
            snprintf(event, sizeof(event), "rc-%d:%s", d, ids[s]);
            set_fact(&t[n++], ids[s], field, T0 + 15 * DAY + rnd(600) * MINUTE, event, "p", true);
        }
    shuffle(t, n, sizeof(*t));
    for (size_t i = 0; i < n;) {
        size_t len = 1 + rnd(300);
        if (len > n - i)
            len = n - i;
        apply_and_record(st, db, t + i, len, school, klass);
        i += len;
    }
    /* A batch lost between Redis and PostgreSQL (a crash) and delivered again. */
    tfact late[STUDENTS] = {0};
    for (int s = 0; s < STUDENTS; s++) {
        char event[32];
        snprintf(event, sizeof(event), "late-%d", s);
        set_fact(&late[s], ids[s], "2026-03-16|0", T0 + 20 * DAY, event, s % 2 ? "p" : "a",
                 s % 2 == 1);
    }
    apply(st, late, STUDENTS, NULL);
    apply_and_record(st, db, late, STUDENTS, school, klass);

    for (int s = 0; s < STUDENTS; s++) {
        char k[SCORE_STORE_KEY_MAX];
        REQUIRE(score_store_key_facts(ids[s], k, sizeof(k)) == BX_OK);
        char *in_redis = snapshot(c, k), *in_pg = pg_snapshot(db, ids[s]);
        check_same(ids[s], in_pg, in_redis);
        free(in_redis);
        free(in_pg);
    }
    /* Some implied presences corrected an absence and were kept (their event ids
     * have a ':'). */
    const char *sp[] = {school};
    PGresult *res = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_query(db,
                        "SELECT count(*) FROM attendance.fact WHERE school_id = $1 "
                        "AND order_key LIKE '%:%' AND value = 'p'",
                        1, sp, &res, &err) == BX_OK);
    size_t implied_rows = strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    CHECK(implied_rows > 0);

    /* PostgreSQL's own compare-and-set: older explicit facts and repeats write
     * nothing. */
    tfact old[2] = {0};
    set_fact(&old[0], ids[0], "2026-03-16|0", T0, "older", "a", false);
    set_fact(&old[1], ids[0], "2026-03-16|0", T0 + 20 * DAY, "late-0", "a", false);
    score_store_fact *f = as_facts(old, 2, school, klass);
    size_t written = 99;
    CHECK_INT(score_store_pg_write_facts(db, f, NULL, 2, &written, &err), BX_OK);
    CHECK_INT(written, 0);
    /* An implied fact needs Redis's outcome. */
    f[0].implied = true;
    CHECK_INT(score_store_pg_write_facts(db, f, NULL, 2, &written, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "facts[0]");
    free(f);

    /* Reports: the greatest wins, in one batch or several. */
    treport r[3] = {0};
    for (int v = 0; v < 3; v++) {
        snprintf(r[v].klass, sizeof(r[v].klass), "%s", klass);
        snprintf(r[v].field, sizeof(r[v].field), "2026-03-16|%d", v == 2 ? 12 : 0);
        char event[16];
        snprintf(event, sizeof(event), "rc-%d", v);
        REQUIRE(score_store_order_key(T0 + 15 * DAY + v * MINUTE, event, r[v].order_key,
                                      sizeof(r[v].order_key)) == BX_OK);
        snprintf(r[v].value, sizeof(r[v].value), "v%d", v);
    }
    score_store_report *rep = as_reports(r, 3, school);
    CHECK_INT(score_store_pg_write_reports(db, rep + 1, 2, &written, &err), BX_OK);
    CHECK_INT(written, 2);
    CHECK_INT(score_store_pg_write_reports(db, rep, 3, &written, &err), BX_OK);
    CHECK_INT(written, 0);
    const char *params[] = {klass};
    REQUIRE(bx_pg_query(db,
                        "SELECT day, period, value FROM attendance.class_report "
                        "WHERE class_id = $1 "
                        "ORDER BY period",
                        1, params, &res, &err) == BX_OK);
    CHECK_INT(PQntuples(res), 2);
    if (PQntuples(res) == 2) {
        CHECK_STR(PQgetvalue(res, 0, 0), "2026-03-16");
        CHECK_STR(PQgetvalue(res, 0, 2), "v1");
        CHECK_STR(PQgetvalue(res, 1, 1), "12");
    }
    PQclear(res);
    free(rep);

    pg_cleanup(db, school);
    del_keys(c, score_store_key_facts, ids, STUDENTS);
    free(t);
    score_store_redis_free(st);
    redisFree(c);
    PQfinish(db);
}

BX_TEST(postgresql_batch_write_rates)
{
    make_prefix();
    PGconn *db = pg();
    char school[SCORE_STORE_ID_MAX + 1], klass[SCORE_STORE_ID_MAX + 1];
    snprintf(school, sizeof(school), "%s-s", prefix);
    snprintf(klass, sizeof(klass), "%s-k", prefix);
    enum { STUDENTS = 1000, PER = 10, N = STUDENTS * PER };
    tfact *t = calloc(N, sizeof(*t));
    REQUIRE(t != NULL);
    for (int s = 0; s < STUDENTS; s++)
        for (int k = 0; k < PER; k++) {
            char sid[SCORE_STORE_ID_MAX + 1], field[16], event[32];
            snprintf(sid, sizeof(sid), "%s-w%d", prefix, s);
            REQUIRE(score_store_field_day(bx_date_from_ymd(2026, 3, 2 + k), 0, field,
                                          sizeof(field)) == BX_OK);
            snprintf(event, sizeof(event), "rc-%d:%d", k, s);
            set_fact(&t[s * PER + k], sid, field, T0 + k * DAY, event, "a", false);
        }
    score_store_fact *f = as_facts(t, N, school, klass);
    bx_error err = {0};
    size_t written = 0;
    const char *phase[3] = {"insert", "repeat", "update"};
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            for (int i = 0; i < N; i++)
                REQUIRE(score_store_order_key(T0 + 30 * DAY, "fix", t[i].order_key,
                                              sizeof(t[i].order_key)) == BX_OK);
        double t0 = now_s();
        bx_status s = score_store_pg_write_facts(db, f, NULL, N, &written, &err);
        double t1 = now_s();
        if (s != BX_OK)
            fprintf(stderr, "%s\n", err.msg);
        CHECK_INT(s, BX_OK);
        CHECK_INT(written, round == 1 ? 0 : N);
        fprintf(stderr, "postgresql: %d facts, %s: %.3f s (%.0f rows/s)\n", N, phase[round],
                t1 - t0, N / (t1 - t0));
    }
    pg_cleanup(db, school);
    free(f);
    free(t);
    PQfinish(db);
}

typedef struct recompute_check {
    score_store_redis *st;
    size_t calls, nclasses;
    char (*classes)[SCORE_STORE_ID_MAX + 1];
    bool facts_missing, reports_missing;
} recompute_check;

static bx_status recompute(const char *student_id, void *arg)
{
    recompute_check *rc = arg;
    rc->calls++;
    score_store_entries e = {0};
    bx_error err = {0};
    const char *ids[] = {student_id};
    bx_status s = score_store_load_facts(rc->st, ids, 1, &e, &err);
    if (s != BX_OK)
        return s;
    rc->facts_missing = rc->facts_missing || e.count == 0;
    char count[16];
    snprintf(count, sizeof(count), "%zu", e.count);
    score_store_entries_free(&e);
    for (size_t i = 0; i < rc->nclasses; i++) {
        const char *cls[] = {rc->classes[i]};
        s = score_store_load_reports(rc->st, cls, 1, &e, &err);
        if (s != BX_OK)
            return s;
        rc->reports_missing = rc->reports_missing || e.count == 0;
        score_store_entries_free(&e);
    }
    const char *names[] = {"facts"}, *values[] = {count};
    score_store_summary sum = {student_id, names, values, 1};
    return score_store_put_summaries(rc->st, &sum, 1, NULL, &err);
}

BX_TEST(rebuild_gives_identical_state)
{
    make_prefix();
    redisContext *c = rds();
    PGconn *db = pg();
    score_store_redis *st = store_on(c);
    char school[SCORE_STORE_ID_MAX + 1];
    snprintf(school, sizeof(school), "%s-s", prefix);
    enum { STUDENTS = 300, CLASSES = 3 };
    static char ids[STUDENTS][SCORE_STORE_ID_MAX + 1];
    char classes[CLASSES][SCORE_STORE_ID_MAX + 1];
    for (int s = 0; s < STUDENTS; s++)
        snprintf(ids[s], sizeof(ids[s]), "%s-r%d", prefix, s);
    for (int k = 0; k < CLASSES; k++)
        snprintf(classes[k], sizeof(classes[k]), "%s-c%d", prefix, k);
    tfact *t = calloc(STUDENTS * 100, sizeof(*t));
    REQUIRE(t != NULL);
    /* Students 0..249 have facts; 250..299 only implied presences (nothing
     * stored). */
    size_t n = make_history(t, ids, 250);
    for (int s = 250; s < STUDENTS; s++) {
        char event[32];
        snprintf(event, sizeof(event), "rc-0:%d", s);
        set_fact(&t[n++], ids[s], "2026-03-02|0", T0, event, "p", true);
    }
    shuffle(t, n, sizeof(*t));
    for (size_t i = 0; i < n; i += 500) {
        size_t len = n - i < 500 ? n - i : 500;
        apply_and_record(st, db, t + i, len, school, classes[i / 500 % CLASSES]);
    }
    treport r[CLASSES * 20] = {0};
    size_t nr = 0;
    for (int k = 0; k < CLASSES; k++)
        for (int d = 0; d < 10; d++)
            for (int p = 0; p <= 1; p++) {
                treport *x = &r[nr++];
                snprintf(x->klass, sizeof(x->klass), "%s", classes[k]);
                REQUIRE(score_store_field_day(bx_date_from_ymd(2026, 3, 2 + d), p * 10, x->field,
                                              sizeof(x->field)) == BX_OK);
                char event[32];
                snprintf(event, sizeof(event), "rc-%d-%d:class", d, p);
                REQUIRE(score_store_order_key(T0 + d * DAY, event, x->order_key,
                                              sizeof(x->order_key)) == BX_OK);
                snprintf(x->value, sizeof(x->value), "enrolled=40 absent=%d", d);
            }
    score_store_report *rep = as_reports(r, nr, school);
    bx_error err = {0};
    REQUIRE(score_store_apply_reports(st, rep, nr, NULL, NULL, &err) == BX_OK);
    REQUIRE(score_store_pg_write_reports(db, rep, nr, NULL, &err) == BX_OK);
    free(rep);

    char *facts_before = snapshot_all(c, score_store_key_facts, ids, STUDENTS);
    char *reports_before = snapshot_all(c, score_store_key_reported, classes, CLASSES);
    CHECK_CONTAINS(facts_before, "-r299}:facts:\n(none)\n");

    /* Redis loses the keys (only this test's: the Redis is shared). */
    del_keys(c, score_store_key_facts, ids, STUDENTS);
    del_keys(c, score_store_key_reported, classes, CLASSES);
    recompute_check rc = {st, 0, CLASSES, classes, false, false};
    score_store_rebuild_stats stats = {0};
    score_store_scope scope = {school};
    bx_status s = score_store_rebuild(db, st, &scope, recompute, &rc, &stats, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(s == BX_OK);
    char *facts_after = snapshot_all(c, score_store_key_facts, ids, STUDENTS);
    char *reports_after = snapshot_all(c, score_store_key_reported, classes, CLASSES);
    check_same("facts after rebuild", facts_after, facts_before);
    check_same("reports after rebuild", reports_after, reports_before);
    CHECK_INT(stats.students, 250);
    CHECK_INT(stats.facts, 250 * 22); /* 84 facts each, 22 fields */
    CHECK_INT(stats.classes, CLASSES);
    CHECK_INT(stats.reports, nr);
    CHECK_INT(rc.calls, 250);
    CHECK(!rc.facts_missing);
    CHECK(!rc.reports_missing);
    char sum_key[SCORE_STORE_KEY_MAX];
    REQUIRE(score_store_key_summary(ids[7], sum_key, sizeof(sum_key)) == BX_OK);
    char *sum = snapshot(c, sum_key);
    CHECK_CONTAINS(sum, "facts=22\n");
    free(sum);

    /* Rebuilding a second time over the rebuilt keys changes nothing. */
    REQUIRE(score_store_rebuild(db, st, &scope, NULL, NULL, NULL, &err) == BX_OK);
    char *facts_again = snapshot_all(c, score_store_key_facts, ids, STUDENTS);
    check_same("facts after a second rebuild", facts_again, facts_before);

    pg_cleanup(db, school);
    del_keys(c, score_store_key_facts, ids, STUDENTS);
    del_keys(c, score_store_key_summary, ids, STUDENTS);
    del_keys(c, score_store_key_reported, classes, CLASSES);
    free(facts_before);
    free(reports_before);
    free(facts_after);
    free(reports_after);
    free(facts_again);
    free(t);
    score_store_redis_free(st);
    redisFree(c);
    PQfinish(db);
}

typedef struct walk_check {
    char last[SCORE_STORE_ID_MAX + 1];
    size_t owners, entries, stop_after;
    bool out_of_order, unsorted;
} walk_check;

static bx_status walk(const char *owner, const score_store_entries *e, void *arg)
{
    walk_check *w = arg;
    if (w->owners > 0 && strcmp(w->last, owner) >= 0)
        w->out_of_order = true;
    snprintf(w->last, sizeof(w->last), "%s", owner);
    for (size_t i = 1; i < e->count; i++)
        if (strcmp(e->items[i - 1].field, e->items[i].field) >= 0)
            w->unsorted = true;
    w->owners++;
    w->entries += e->count;
    return w->stop_after && w->owners == w->stop_after ? BX_ECONFLICT : BX_OK;
}

BX_TEST(postgresql_walks_in_order)
{
    make_prefix();
    PGconn *db = pg();
    char school[SCORE_STORE_ID_MAX + 1];
    snprintf(school, sizeof(school), "%s-s", prefix);
    enum { STUDENTS = 120 };
    static char ids[STUDENTS][SCORE_STORE_ID_MAX + 1];
    for (int s = 0; s < STUDENTS; s++) /* "-a", "-B", "-_": bytewise order is not the locale's */
        snprintf(ids[s], sizeof(ids[s]), "%s-%c%d", prefix, "aB_-"[s % 4], s);
    tfact *t = calloc(STUDENTS * 100, sizeof(*t));
    REQUIRE(t != NULL);
    size_t n = make_history(t, ids, STUDENTS);
    shuffle(t, n, sizeof(*t));
    score_store_fact *f = as_facts(t, n, school, "K1");
    bx_error err = {0};
    REQUIRE(score_store_pg_write_facts(db, f, NULL, n, NULL, &err) == BX_OK);
    treport r[24] = {0};
    for (int i = 0; i < 24; i++) {
        snprintf(r[i].klass, sizeof(r[i].klass), "%s-k%d", prefix, i % 2);
        snprintf(r[i].field, sizeof(r[i].field), "2026-03-02|%d", i / 2);
        REQUIRE(score_store_order_key(T0, "rc", r[i].order_key, sizeof(r[i].order_key)) == BX_OK);
        r[i].value[0] = '\0';
    }
    score_store_report *rep = as_reports(r, 24, school);
    REQUIRE(score_store_pg_write_reports(db, rep, 24, NULL, &err) == BX_OK);

    walk_check w = {0};
    score_store_scope scope = {school};
    CHECK_INT(score_store_pg_each_student(db, &scope, walk, &w, &err), BX_OK);
    CHECK_INT(w.owners, STUDENTS);
    CHECK_INT(w.entries, STUDENTS * 22);
    CHECK(!w.out_of_order);
    CHECK(!w.unsorted);
    memset(&w, 0, sizeof(w));
    CHECK_INT(score_store_pg_each_class(db, &scope, walk, &w, &err), BX_OK);
    CHECK_INT(w.owners, 2);
    CHECK_INT(w.entries, 24);
    CHECK(!w.unsorted); /* "2026-03-02|10" sorts before "2026-03-02|2" */
    /* A callback's failure stops the walk, comes back, and leaves the connection
     * usable. */
    memset(&w, 0, sizeof(w));
    w.stop_after = 3;
    CHECK_INT(score_store_pg_each_student(db, &scope, walk, &w, &err), BX_ECONFLICT);
    CHECK_INT(w.owners, 3);
    CHECK_INT(PQtransactionStatus(db), PQTRANS_IDLE);
    /* Not inside the caller's transaction. */
    REQUIRE(bx_pg_exec(db, "BEGIN", &err) == BX_OK);
    CHECK_INT(score_store_pg_each_student(db, &scope, walk, &w, &err), BX_EINVAL);
    bx_pg_rollback(db);

    pg_cleanup(db, school);
    free(rep);
    free(f);
    free(t);
    PQfinish(db);
}

/* Redis Cluster's slot of a key: CRC16 (XMODEM) of the hash tag, or of the key
 * without one. */
static unsigned key_slot(const char *key)
{
    const char *s = key;
    size_t len = strlen(key);
    const char *open = strchr(key, '{');
    if (open) {
        const char *close = strchr(open + 1, '}');
        if (close && close > open + 1) {
            s = open + 1;
            len = (size_t)(close - open - 1);
        }
    }
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)s[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc & 16383;
}

BX_TEST(keys_of_one_student_share_a_hash_tag)
{
    /* The examples of the Redis Cluster specification. */
    CHECK_INT(key_slot("somekey"), 11058);
    CHECK_INT(key_slot("foo{hash_tag}"), 2515);
    static const char *const ids[] = {"stu-0001234", "S", "a_b-C",
                                      "12345678901234567890123456789012"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char facts[SCORE_STORE_KEY_MAX], sum[SCORE_STORE_KEY_MAX], reported[SCORE_STORE_KEY_MAX],
            tag[40];
        REQUIRE(score_store_key_facts(ids[i], facts, sizeof(facts)) == BX_OK);
        REQUIRE(score_store_key_summary(ids[i], sum, sizeof(sum)) == BX_OK);
        REQUIRE(score_store_key_reported(ids[i], reported, sizeof(reported)) == BX_OK);
        snprintf(tag, sizeof(tag), "{%s}", ids[i]);
        CHECK_CONTAINS(facts, tag);
        CHECK_CONTAINS(sum, tag);
        CHECK_CONTAINS(reported, tag);
        CHECK_INT(key_slot(facts), key_slot(sum));
        CHECK_INT(key_slot(facts), key_slot(ids[i]));
        CHECK(strchr(strchr(facts, '}') + 1, '{') == NULL);
    }
    char key[SCORE_STORE_KEY_MAX];
    CHECK_INT(score_store_key_facts("stu-1", key, sizeof(key)), BX_OK);
    CHECK_STR(key, "bx:s:{stu-1}:facts");
    CHECK_INT(score_store_key_summary("stu-1", key, sizeof(key)), BX_OK);
    CHECK_STR(key, "bx:s:{stu-1}:sum");
    CHECK_INT(score_store_key_reported("cls-1", key, sizeof(key)), BX_OK);
    CHECK_STR(key, "bx:c:{cls-1}:reported");
    CHECK_INT(score_store_key_facts("a{b}", key, sizeof(key)), BX_EINVAL);
    CHECK_INT(score_store_key_facts("", key, sizeof(key)), BX_EINVAL);
    CHECK_INT(score_store_key_facts("123456789012345678901234567890123", key, sizeof(key)),
              BX_EINVAL);
}

/* Every redis.call in a script names KEYS[1] as its key. */
static void check_script_keys(const char *src)
{
    size_t calls = 0;
    for (const char *p = src; (p = strstr(p, "redis.call(")) != NULL; p++) {
        const char *comma = strchr(p, ',');
        REQUIRE(comma != NULL);
        if (strncmp(comma, ", KEYS[1]", 9) != 0)
            BX_FAIL_AT("script call without KEYS[1]: %.60s", p);
        calls++;
    }
    CHECK(calls > 0);
}

BX_TEST(scripts_touch_only_the_keys_they_are_given)
{
    make_prefix();
    check_script_keys(score_store_lua_apply());
    check_script_keys(score_store_lua_summary());
    CHECK(strstr(score_store_lua_apply(), "KEYS[2]") == NULL);
    CHECK(strstr(score_store_lua_summary(), "KEYS[2]") == NULL);

    /* At run time: a Redis user allowed only this student's and this class's keys
     * runs every script; touching any other key would fail with NOPERM. */
    redisContext *admin = rds();
    char user[48], password[48], sid[SCORE_STORE_ID_MAX + 1], cid[SCORE_STORE_ID_MAX + 1];
    char other[SCORE_STORE_ID_MAX + 1];
    snprintf(user, sizeof(user), "bxtest-%s", prefix);
    snprintf(password, sizeof(password), "pw-%s-%ld", prefix, (long)time(NULL));
    snprintf(sid, sizeof(sid), "%s-a", prefix);
    snprintf(other, sizeof(other), "%s-b", prefix);
    snprintf(cid, sizeof(cid), "%s-c", prefix);
    char pat_student[64], pat_class[64];
    snprintf(pat_student, sizeof(pat_student), "~bx:s:{%s}:*", sid);
    snprintf(pat_class, sizeof(pat_class), "~bx:c:{%s}:*", cid);
    char pass_rule[64];
    snprintf(pass_rule, sizeof(pass_rule), ">%s", password);
    redisReply *r = redisCommand(admin, "ACL SETUSER %s reset on %s %s %s +@all", user, pass_rule,
                                 pat_student, pat_class);
    REQUIRE(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);

    redisContext *c = rds();
    r = redisCommand(c, "AUTH %s %s", user, password);
    REQUIRE(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    score_store_redis *st = store_on(c);
    tfact f[3] = {0};
    set_fact(&f[0], sid, "2026-03-02|0", T0, "e1", "a", false);
    set_fact(&f[1], sid, "2026-03-02|0", T0 + 1, "e2", "p", true);
    set_fact(&f[2], sid, "L|lv1", T0, "lv1", "s", false);
    CHECK_INT(apply(st, f, 3, NULL), 3);
    treport rep = {{0}, "2026-03-02|0", {0}, "n=1"};
    snprintf(rep.klass, sizeof(rep.klass), "%s", cid);
    REQUIRE(score_store_order_key(T0, "rc", rep.order_key, sizeof(rep.order_key)) == BX_OK);
    apply_reports(st, &rep, 1);
    const char *names[] = {"streak_days", "tier"}, *values[] = {"3", "high"};
    score_store_summary sum = {sid, names, values, 2};
    bool changed = false;
    bx_error err = {0};
    CHECK_INT(score_store_put_summaries(st, &sum, 1, &changed, &err), BX_OK);
    CHECK(changed);
    const char *list[] = {sid};
    score_store_entries e[1];
    CHECK_INT(score_store_load_facts(st, list, 1, e, &err), BX_OK);
    CHECK_INT(e[0].count, 2);
    score_store_entries_free(&e[0]);
    /* The check itself works: another student's key is refused. */
    set_fact(&f[0], other, "2026-03-02|0", T0, "e1", "a", false);
    score_store_fact one = {f[0].student,   NULL,       NULL, f[0].field,
                            f[0].order_key, f[0].value, false};
    CHECK_INT(score_store_apply_facts(st, &one, 1, NULL, NULL, &err), BX_EIO);
    CHECK_CONTAINS(err.msg, "NOPERM");
    score_store_redis_free(st);
    redisFree(c);

    char keys[3][SCORE_STORE_KEY_MAX];
    REQUIRE(score_store_key_facts(sid, keys[0], sizeof(keys[0])) == BX_OK);
    REQUIRE(score_store_key_summary(sid, keys[1], sizeof(keys[1])) == BX_OK);
    REQUIRE(score_store_key_reported(cid, keys[2], sizeof(keys[2])) == BX_OK);
    r = redisCommand(admin, "DEL %s %s %s", keys[0], keys[1], keys[2]);
    REQUIRE(r != NULL);
    CHECK_INT(r->integer, 3);
    freeReplyObject(r);
    r = redisCommand(admin, "ACL DELUSER %s", user);
    REQUIRE(r != NULL);
    freeReplyObject(r);
    redisFree(admin);
}

BX_TEST(summaries_replace_and_say_when_they_changed)
{
    make_prefix();
    redisContext *c = rds();
    score_store_redis *st = store_on(c);
    char a[SCORE_STORE_ID_MAX + 1], b[SCORE_STORE_ID_MAX + 1], key[SCORE_STORE_KEY_MAX];
    snprintf(a, sizeof(a), "%s-a", prefix);
    snprintf(b, sizeof(b), "%s-b", prefix);
    REQUIRE(score_store_key_summary(a, key, sizeof(key)) == BX_OK);
    const char *n2[] = {"streak_days", "tier"}, *v2[] = {"3", "watch"};
    const char *n1[] = {"tier"}, *v1[] = {"watch"};
    score_store_summary sums[2] = {{a, n2, v2, 2}, {b, n1, v1, 1}};
    bool changed[2] = {false, false};
    bx_error err = {0};
    CHECK_INT(score_store_put_summaries(st, sums, 2, changed, &err), BX_OK);
    CHECK(changed[0] && changed[1]);
    CHECK_INT(score_store_put_summaries(st, sums, 2, changed, &err), BX_OK);
    CHECK(!changed[0] && !changed[1]);
    /* Fewer names: the old one goes. */
    sums[0] = (score_store_summary){a, n1, v1, 1};
    CHECK_INT(score_store_put_summaries(st, sums, 1, changed, &err), BX_OK);
    CHECK(changed[0]);
    char *s = snapshot(c, key);
    CHECK_STR(strchr(s, '\n') + 1, "tier=watch\n");
    free(s);
    const char *ids[] = {a, b};
    score_store_entries e[2];
    CHECK_INT(score_store_load_summaries(st, ids, 2, e, &err), BX_OK);
    CHECK_INT(e[0].count, 1);
    CHECK_STR(e[0].items[0].field, "tier");
    CHECK_STR(e[0].items[0].value, "watch");
    CHECK_STR(e[0].items[0].order_key, "");
    score_store_entries_free(&e[0]);
    score_store_entries_free(&e[1]);
    /* No names: the summary is deleted. */
    sums[0] = (score_store_summary){a, NULL, NULL, 0};
    sums[1] = (score_store_summary){b, NULL, NULL, 0};
    CHECK_INT(score_store_put_summaries(st, sums, 2, changed, &err), BX_OK);
    CHECK(changed[0] && changed[1]);
    CHECK(!key_exists(c, key));
    CHECK_INT(score_store_put_summaries(st, sums, 1, changed, &err), BX_OK);
    CHECK(!changed[0]);
    /* Bad names and values are refused before anything is sent. */
    const char *bad_name[] = {"tier level"}, *bad_value[] = {"line\nbreak"};
    sums[0] = (score_store_summary){a, bad_name, v1, 1};
    CHECK_INT(score_store_put_summaries(st, sums, 1, changed, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "summaries[0].names[0]");
    sums[0] = (score_store_summary){a, n1, bad_value, 1};
    CHECK_INT(score_store_put_summaries(st, sums, 1, changed, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "summaries[0].values[0]");
    CHECK(!key_exists(c, key));
    score_store_redis_free(st);
    redisFree(c);
}

BX_TEST(bad_input_is_refused_before_anything_is_sent)
{
    make_prefix();
    redisContext *c = rds();
    score_store_redis *st = store_on(c);
    char sid[SCORE_STORE_ID_MAX + 1], key[SCORE_STORE_KEY_MAX];
    snprintf(sid, sizeof(sid), "%s-x", prefix);
    REQUIRE(score_store_key_facts(sid, key, sizeof(key)) == BX_OK);
    char long_value[SCORE_STORE_VALUE_MAX + 2];
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    static const struct {
        const char *student, *field, *order_key, *value, *message;
    } rows[] = {
        {"", "2026-03-02|0", "1|e", "a", "facts[1].student_id"},
        {"a{b}", "2026-03-02|0", "1|e", "a", "facts[1].student_id"},
        {NULL, "2026-03-02", "1|e", "a", "facts[1].field"},
        {NULL, "2026-03-02|13", "1|e", "a", "facts[1].field"},
        {NULL, "2026-03-02|03", "1|e", "a", "facts[1].field"},
        {NULL, "2026-02-30|0", "1|e", "a", "facts[1].field"},
        {NULL, "2026-03-02|-1", "1|e", "a", "facts[1].field"},
        {NULL, "L|", "1|e", "a", "facts[1].field"},
        {NULL, "L|bad id", "1|e", "a", "facts[1].field"},
        {NULL, "X|e1", "1|e", "a", "facts[1].field"},
        {NULL, "2026-03-02|0", "", "a", "facts[1].order_key"},
        {NULL, "2026-03-02|0", "1 e", "a", "facts[1].order_key"},
        {NULL, "2026-03-02|0", "1\te", "a", "facts[1].order_key"},
        {NULL, "2026-03-02|0", "1|e", "tab\there", "facts[1].value"},
        {NULL, "2026-03-02|0", "1|e", "\xff", "facts[1].value"},
        {NULL, "2026-03-02|0", "1|e", NULL, "facts[1].value"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        score_store_fact f[2] = {
            {sid, NULL, NULL, "2026-03-02|0", "1|ok", "a", false},
            {rows[i].student ? rows[i].student : sid, NULL, NULL, rows[i].field, rows[i].order_key,
             rows[i].value ? rows[i].value : long_value, false},
        };
        bx_error err = {0};
        if (score_store_apply_facts(st, f, 2, NULL, NULL, &err) != BX_EINVAL)
            BX_FAIL_AT("row %zu accepted", i);
        else
            CHECK_CONTAINS(err.msg, rows[i].message);
    }
    CHECK(!key_exists(c, key));
    /* PostgreSQL needs the school and class; reports need a day field. */
    score_store_fact f = {sid, NULL, "K", "2026-03-02|0", "1|ok", "a", false};
    bx_error err = {0};
    CHECK_INT(score_store_pg_write_facts(NULL, &f, NULL, 1, NULL, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "facts[0].school_id");
    score_store_report rep = {"K", "S", "L|lv1", "1|ok", ""};
    CHECK_INT(score_store_apply_reports(st, &rep, 1, NULL, NULL, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "reports[0].field");

    /* Names. */
    char out[SCORE_STORE_ORDER_KEY_MAX + 1];
    CHECK_INT(score_store_order_key(1772409600000LL, "rc-1:stu-9", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "1772409600000|rc-1:stu-9");
    CHECK_INT(score_store_order_key(5, "e", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "0000000000005|e");
    CHECK_INT(score_store_order_key(-1, "e", out, sizeof(out)), BX_EINVAL);
    CHECK_INT(score_store_order_key(10000000000000LL, "e", out, sizeof(out)), BX_EINVAL);
    CHECK_INT(score_store_order_key(1, "a b", out, sizeof(out)), BX_EINVAL);
    CHECK_INT(score_store_field_day(bx_date_from_ymd(2026, 3, 2), 12, out, sizeof(out)), BX_OK);
    CHECK_STR(out, "2026-03-02|12");
    CHECK_INT(score_store_field_day(bx_date_from_ymd(2026, 3, 2), 13, out, sizeof(out)), BX_EINVAL);
    CHECK_INT(score_store_field_leave("lv-5e2b7a91", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "L|lv-5e2b7a91");
    bx_date d;
    int p;
    CHECK_INT(score_store_field_parse("2026-03-09|10", &d, &p), BX_OK);
    CHECK_INT(d, bx_date_from_ymd(2026, 3, 9));
    CHECK_INT(p, 10);
    CHECK_INT(score_store_field_parse("L|lv-1", &d, &p), BX_OK);
    CHECK_INT(d, BX_DATE_NONE);
    CHECK_INT(p, -1);
    score_store_redis_free(st);
    redisFree(c);
}

/* A private redis-server on a free loopback port, so the script cache can be
 * flushed without disturbing the shared one. */
static pid_t private_redis(int *port)
{
    /* a Redis of its own, without users: the shared one's credentials are not for it */
    unsetenv("BX_REDIS_USERNAME");
    unsetenv("BX_REDIS_PASSWORD");
    unsetenv("BX_REDIS_PASSWORD_FILE");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    close(fd);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", *port);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        FILE *null = freopen("/dev/null", "w", stdout);
        (void)null;
        execlp("redis-server", "redis-server", "--port", port_text, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    return pid;
}

BX_TEST(noscript_is_answered_with_eval)
{
    int port;
    pid_t pid = private_redis(&port);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    redisContext *c = NULL;
    bx_error err = {0};
    REQUIRE(bx_redis_connect(url, 5000, &c, &err) == BX_OK);
    score_store_redis *st = store_on(c);
    redisReply *r = redisCommand(c, "SCRIPT FLUSH");
    REQUIRE(r != NULL);
    freeReplyObject(r);
    tfact f[2] = {0};
    set_fact(&f[0], "S1", "2026-03-02|0", T0, "e1", "a", false);
    set_fact(&f[1], "S2", "2026-03-02|0", T0, "e2", "a", false);
    CHECK_INT(apply(st, f, 2, NULL), 2);
    CHECK_INT(apply(st, f, 2, NULL), 0); /* loaded again: EVALSHA works */
    r = redisCommand(c, "SCRIPT FLUSH");
    freeReplyObject(r);
    const char *names[] = {"tier"}, *values[] = {"none"};
    score_store_summary sum = {"S1", names, values, 1};
    bool changed = false;
    CHECK_INT(score_store_put_summaries(st, &sum, 1, &changed, &err), BX_OK);
    CHECK(changed);
    score_store_redis_free(st);
    /* A Redis that went away: a transient error, not a crash. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(score_store_redis_new(c, &st, &err) != BX_OK);
    redisFree(c);
}
