/* bx-escalate's storage against the real PostgreSQL and Kafka: durable timers
 * (idempotent scheduling, disjoint concurrent claims, lease takeover,
 * exactly-once firing under threads and a SIGKILL) and the outbox (rollback,
 * relay, concurrent relays, a relay killed before marking). Each case runs in a
 * database of its own, migrated by bxctl, because timers and the outbox are
 * queues that any claimer or relay on the same database would share. */
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_test.h"
#include "analytics.h"
#include "outbox.h"
#include "timers.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- a migrated database per case (timers and the outbox are shared queues) ---- */

static const char *test_db(void)
{
    return itest_own_database("esc");
}

static PGconn *pg(void)
{
    PGconn *db = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_connect(test_db(), 5000, &db, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(s == BX_OK);
    return db;
}

static void exec_ok(PGconn *db, const char *sql)
{
    bx_error err = {0};
    bx_status s = bx_pg_exec(db, sql, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(s == BX_OK);
}

static long long count_of(PGconn *db, const char *sql)
{
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(db, sql, 0, NULL, &res, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(s == BX_OK && PQntuples(res) == 1);
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* A prefix no other run uses, for keys and event ids. */
static char prefix[32];

static void make_prefix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(prefix, sizeof(prefix), "esc%d-%ld", (int)getpid(), (long)(ts.tv_nsec / 1000));
}

/* 2026-11-27 10:00 +08:00, the simulated now of every case. */
#define T0     ((bx_time_ms)1795744800000LL)
#define SECOND ((bx_time_ms)1000)

static void schedule_many(PGconn *db, const char *tag, int count, bx_time_ms first_due)
{
    exec_ok(db, "BEGIN");
    for (int i = 0; i < count; i++) {
        char key[TIMERS_KEY_MAX + 1];
        snprintf(key, sizeof(key), "%s:%s:%05d", prefix, tag, i);
        bx_error err = {0};
        REQUIRE(timers_schedule(db, key, 0, first_due + i, &err) == BX_OK);
    }
    exec_ok(db, "COMMIT");
}

/* The firing's effect: one row per firing in a table of the test, in the
 * firing's transaction. */
static void make_fired_table(PGconn *db)
{
    exec_ok(db, "CREATE TABLE IF NOT EXISTS public.esc_fired (timer_key text NOT NULL, "
                "owner text NOT NULL)");
}

typedef struct fire_ctx {
    const char *owner;
    atomic_int calls;
    int delay_ms;
} fire_ctx;

static bx_status record_firing(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    fire_ctx *ctx = arg;
    atomic_fetch_add(&ctx->calls, 1);
    const char *params[] = {timer->key, ctx->owner};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, "INSERT INTO public.esc_fired (timer_key, owner) VALUES ($1, $2)",
                              2, params, &res, err);
    PQclear(res);
    if (ctx->delay_ms > 0)
        usleep((useconds_t)ctx->delay_ms * 1000);
    return s;
}

/* Claims and fires until nothing is due at `now`; returns the timers fired by
 * this caller. */
static int drain(PGconn *db, const char *owner, bx_time_ms now, int batch, fire_ctx *ctx)
{
    int fired = 0;
    for (;;) {
        timers_list list = {0};
        bx_error err = {0};
        bx_status s = timers_claim(db, owner, now, 30 * SECOND, batch, &list, &err);
        if (s != BX_OK)
            fprintf(stderr, "claim: %s\n", err.msg);
        REQUIRE(s == BX_OK);
        if (list.count == 0)
            break;
        for (int i = 0; i < list.count; i++) {
            s = timers_fire(db, &list.items[i], owner, now, record_firing, ctx, &err);
            if (s == BX_OK)
                fired++;
            else if (s != BX_ECONFLICT)
                fprintf(stderr, "fire %s: %s\n", list.items[i].key, err.msg);
        }
        timers_list_free(&list);
    }
    return fired;
}

/* ---- timers ---- */

BX_TEST(timer_scheduled_twice_is_one_row)
{
    make_prefix();
    PGconn *db = pg();
    char key[TIMERS_KEY_MAX + 1];
    snprintf(key, sizeof(key), "%s:case1:home_visit:due", prefix);
    bx_error err = {0};
    int created = -1;
    REQUIRE(timers_schedule_with(db, key, 0, T0, NULL, NULL, &created, &err) == BX_OK);
    CHECK_INT(created, 1);
    REQUIRE(timers_schedule_with(db, key, 0, T0 + 99 * SECOND, "other", "{\"x\":1}", &created,
                                 &err) == BX_OK);
    CHECK_INT(created, 0);
    REQUIRE(timers_schedule(db, key, 0, T0, &err) == BX_OK);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer"), 1);
    /* The first schedule wins: the due time is not moved by a replay. */
    timers_list list = {0};
    REQUIRE(timers_claim(db, "a", T0, 1000, 10, &list, &err) == BX_OK);
    REQUIRE(list.count == 1);
    CHECK_STR(list.items[0].key, key);
    CHECK_INT(list.items[0].due_at, T0);
    CHECK_STR(list.items[0].kind, "deadline");
    CHECK_STR(list.items[0].payload, "{}");
    CHECK_INT(list.items[0].case_id, 0);
    CHECK_INT(list.items[0].lease_until, T0 + 1000);
    CHECK_INT(list.items[0].attempts, 1);
    timers_list_free(&list);
    /* Bad input is named. */
    CHECK(timers_schedule(db, "", 0, T0, &err) == BX_EINVAL);
    CHECK(timers_claim(db, "a", T0, 1000, 0, &list, &err) == BX_EINVAL);
    CHECK(timers_claim(db, "", T0, 1000, 1, &list, &err) == BX_EINVAL);
    PQfinish(db);
}

BX_TEST(timer_not_due_is_not_claimed)
{
    make_prefix();
    PGconn *db = pg();
    schedule_many(db, "later", 3, T0 + 10 * SECOND);
    bx_error err = {0};
    timers_list list = {0};
    REQUIRE(timers_claim(db, "a", T0, 1000, 10, &list, &err) == BX_OK);
    CHECK_INT(list.count, 0);
    long long due = -1;
    REQUIRE(timers_due_count(db, T0 + 10 * SECOND + 1, &due, &err) == BX_OK);
    CHECK_INT(due, 2);
    REQUIRE(timers_claim(db, "a", T0 + 20 * SECOND, 1000, 10, &list, &err) == BX_OK);
    CHECK_INT(list.count, 3);
    for (int i = 1; i < list.count; i++)
        CHECK(list.items[i - 1].due_at < list.items[i].due_at);
    timers_list_free(&list);
    PQfinish(db);
}

typedef struct claimer {
    const char *owner;
    pthread_barrier_t *start;
    int64_t ids[400];
    int count;
} claimer;

static void *claim_all(void *arg)
{
    claimer *c = arg;
    PGconn *db = pg();
    pthread_barrier_wait(c->start);
    for (;;) {
        timers_list list = {0};
        bx_error err = {0};
        REQUIRE(timers_claim(db, c->owner, T0, 60 * SECOND, 7, &list, &err) == BX_OK);
        if (list.count == 0)
            break;
        for (int i = 0; i < list.count && c->count < 400; i++)
            c->ids[c->count++] = list.items[i].id;
        timers_list_free(&list);
    }
    PQfinish(db);
    return NULL;
}

BX_TEST(timer_concurrent_claims_are_disjoint)
{
    make_prefix();
    PGconn *db = pg();
    schedule_many(db, "race", 300, T0 - 300);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    static claimer a, b;
    a = (claimer){.owner = "replica-a", .start = &start};
    b = (claimer){.owner = "replica-b", .start = &start};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, claim_all, &a);
    pthread_create(&tb, NULL, claim_all, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&start);
    CHECK_INT(a.count + b.count, 300);
    int overlap = 0;
    for (int i = 0; i < a.count; i++)
        for (int j = 0; j < b.count; j++)
            overlap += a.ids[i] == b.ids[j];
    CHECK_INT(overlap, 0);
    fprintf(stderr, "replica-a claimed %d, replica-b %d\n", a.count, b.count);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE claimed_by = 'replica-a'"),
              a.count);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE attempts <> 1"), 0);
    PQfinish(db);
}

BX_TEST(timer_of_dead_claimer_is_taken_over_after_lease)
{
    make_prefix();
    PGconn *db = pg();
    make_fired_table(db);
    schedule_many(db, "orphan", 10, T0 - 100);
    bx_error err = {0};
    timers_list dead = {0};
    REQUIRE(timers_claim(db, "dead-replica", T0, 30 * SECOND, 100, &dead, &err) == BX_OK);
    CHECK_INT(dead.count, 10);
    /* While the lease runs nobody else gets them. */
    timers_list list = {0};
    REQUIRE(timers_claim(db, "live-replica", T0 + 30 * SECOND, 30 * SECOND, 100, &list, &err) ==
            BX_OK);
    CHECK_INT(list.count, 0);
    /* After it, the live replica takes all of them and fires them. */
    fire_ctx live = {.owner = "live-replica"};
    CHECK_INT(drain(db, "live-replica", T0 + 31 * SECOND, 4, &live), 10);
    CHECK_INT(atomic_load(&live.calls), 10);
    /* The dead replica, back from a pause, fires nothing. */
    fire_ctx zombie = {.owner = "dead-replica"};
    for (int i = 0; i < dead.count; i++)
        CHECK(timers_fire(db, &dead.items[i], "dead-replica", T0 + 40 * SECOND, record_firing,
                          &zombie, &err) == BX_ECONFLICT);
    CHECK_INT(atomic_load(&zombie.calls), 0);
    timers_list_free(&dead);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired"), 10);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE attempts = 2 AND fired_at IS "
                           "NOT NULL AND claimed_by = 'live-replica'"),
              10);
    PQfinish(db);
}

static bx_status failing_firing(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    bx_status s = record_firing(db, timer, arg, err);
    if (s != BX_OK)
        return s;
    return BX_ERR(err, BX_EIO, "the case change failed");
}

BX_TEST(timer_failed_firing_leaves_no_trace_and_is_retried)
{
    make_prefix();
    PGconn *db = pg();
    make_fired_table(db);
    schedule_many(db, "retry", 1, T0);
    bx_error err = {0};
    timers_list list = {0};
    REQUIRE(timers_claim(db, "r", T0, 5 * SECOND, 10, &list, &err) == BX_OK);
    REQUIRE(list.count == 1);
    fire_ctx ctx = {.owner = "r"};
    CHECK(timers_fire(db, &list.items[0], "r", T0, failing_firing, &ctx, &err) == BX_EIO);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired"), 0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL"), 1);
    CHECK_INT(PQtransactionStatus(db), PQTRANS_IDLE);
    timers_list_free(&list);
    CHECK_INT(drain(db, "r", T0 + 6 * SECOND, 10, &ctx), 1);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired"), 1);
    PQfinish(db);
}

BX_TEST(timer_cancelled_and_released)
{
    make_prefix();
    PGconn *db = pg();
    make_fired_table(db);
    schedule_many(db, "cancel", 3, T0);
    char key[TIMERS_KEY_MAX + 1];
    snprintf(key, sizeof(key), "%s:cancel:%05d", prefix, 0);
    bx_error err = {0};
    int done = -1;
    REQUIRE(timers_cancel(db, key, T0, &done, &err) == BX_OK);
    CHECK_INT(done, 1);
    REQUIRE(timers_cancel(db, key, T0, &done, &err) == BX_OK);
    CHECK_INT(done, 0);
    timers_list list = {0};
    REQUIRE(timers_claim(db, "leaving", T0 + SECOND, 60 * SECOND, 10, &list, &err) == BX_OK);
    CHECK_INT(list.count, 2);
    timers_list_free(&list);
    int released = -1;
    REQUIRE(timers_release(db, "leaving", &released, &err) == BX_OK);
    CHECK_INT(released, 2);
    fire_ctx ctx = {.owner = "staying"};
    CHECK_INT(drain(db, "staying", T0 + 2 * SECOND, 10, &ctx), 2);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired"), 2);
    PQfinish(db);
}

typedef struct firer {
    char owner[32];
    fire_ctx ctx;
    int fired;
} firer;

static void *fire_all(void *arg)
{
    firer *f = arg;
    PGconn *db = pg();
    f->ctx.owner = f->owner;
    f->fired = drain(db, f->owner, T0 + 3600 * SECOND, 25, &f->ctx);
    PQfinish(db);
    return NULL;
}

BX_TEST(timer_thousand_fired_once_by_three_threads)
{
    make_prefix();
    PGconn *db = pg();
    make_fired_table(db);
    schedule_many(db, "bulk", 1000, T0);
    static firer f[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&f[i], 0, sizeof(f[i]));
        snprintf(f[i].owner, sizeof(f[i].owner), "replica-%d", i);
        pthread_create(&th[i], NULL, fire_all, &f[i]);
    }
    int fired = 0, calls = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        fired += f[i].fired;
        calls += atomic_load(&f[i].ctx.calls);
        fprintf(stderr, "%s fired %d\n", f[i].owner, f[i].fired);
    }
    CHECK_INT(fired, 1000);
    CHECK_INT(calls, 1000);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired"), 1000);
    CHECK_INT(count_of(db, "SELECT count(DISTINCT timer_key) FROM public.esc_fired"), 1000);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL"), 0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired f JOIN cases.timer t "
                           "USING (timer_key) WHERE t.claimed_by <> f.owner"),
              0);
    PQfinish(db);
}

BX_TEST(timer_replica_killed_mid_firing_loses_none_fires_none_twice)
{
    make_prefix();
    PGconn *db = pg();
    make_fired_table(db);
    schedule_many(db, "kill", 200, T0);
    pid_t slow = fork();
    REQUIRE(slow >= 0);
    if (slow == 0) {
        /* The doomed replica: claims everything for a minute and fires slowly. */
        PGconn *mine = pg();
        fire_ctx ctx = {.owner = "doomed", .delay_ms = 15};
        drain(mine, "doomed", T0 + SECOND, 200, &ctx);
        _exit(0);
    }
    /* Kill it mid-way, possibly inside a firing's transaction. */
    for (int i = 0; i < 500; i++) {
        if (count_of(db, "SELECT count(*) FROM public.esc_fired") >= 40)
            break;
        usleep(10 * 1000);
    }
    REQUIRE(kill(slow, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(slow, &status, 0) == slow);
    CHECK(WIFSIGNALED(status));
    long long before = count_of(db, "SELECT count(*) FROM public.esc_fired");
    fprintf(stderr, "killed after %lld firings\n", before);
    CHECK(before >= 40 && before < 200);
    /* Before its lease ends the survivor takes nothing; after it, everything
     * left. */
    pid_t survivor = fork();
    REQUIRE(survivor >= 0);
    if (survivor == 0) {
        PGconn *mine = pg();
        fire_ctx ctx = {.owner = "survivor"};
        int early = drain(mine, "survivor", T0 + 10 * SECOND, 50, &ctx);
        int late = drain(mine, "survivor", T0 + 32 * SECOND, 50, &ctx);
        PQfinish(mine);
        _exit(early == 0 && late == 200 - before ? 0 : 1);
    }
    REQUIRE(waitpid(survivor, &status, 0) == survivor);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired"), 200);
    CHECK_INT(count_of(db, "SELECT count(DISTINCT timer_key) FROM public.esc_fired"), 200);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL"), 0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired WHERE owner = 'survivor'"),
              200 - before);
    PQfinish(db);
}

/* ---- outbox ---- */

/* A topic of the tests' own, so no consumer of bx.case.events.v1 sees test
 * messages. */
#define OUTBOX_TOPIC "bx.itest.outbox.v1"

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static void create_topic(void)
{
    const char *topics[] = {OUTBOX_TOPIC};
    const int partitions[] = {3};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 1, 15000, &err) == BX_OK);
    /* A new topic's partitions have no leader for a moment: wait until each answers. */
    bx_producer *p = NULL;
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    for (int part = 0; part < partitions[0]; part++) {
        int64_t lo = 0, hi = 0;
        int tries = 0;
        while (rd_kafka_query_watermark_offsets(bx_producer_handle(p), OUTBOX_TOPIC, part, &lo, &hi,
                                                1000) != RD_KAFKA_RESP_ERR_NO_ERROR &&
               tries++ < 100)
            usleep(100 * 1000);
    }
    bx_producer_free(p, 1000);
}

static bx_producer *producer(void)
{
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    return p;
}

static void event_id_of(const char *tag, int i, char *out, size_t size)
{
    snprintf(out, size, "%s.%s.%04d", prefix, tag, i);
}

/* Adds count messages (in the caller's transaction); the payload names its
 * event id. */
static void add_many(PGconn *db, const char *tag, int count)
{
    for (int i = 0; i < count; i++) {
        char event_id[128], key[32], payload[300];
        event_id_of(tag, i, event_id, sizeof(event_id));
        snprintf(key, sizeof(key), "S%03d", i % 7);
        snprintf(payload, sizeof(payload), "{\"event_id\":\"%s\",\"n\":%d}", event_id, i);
        bx_error err = {0};
        int added = -1;
        REQUIRE(escalate_outbox_add(db, OUTBOX_TOPIC, key, event_id, payload, &added, &err) ==
                BX_OK);
        CHECK_INT(added, 1);
    }
}

/* How often each event id of tag 0..count-1 appears in the collected lines. */
static void count_by_event_id(const char *lines, const char *tag, int count, int *seen)
{
    memset(seen, 0, sizeof(int) * (size_t)count);
    for (int i = 0; i < count; i++) {
        char needle[160], event_id[128];
        event_id_of(tag, i, event_id, sizeof(event_id));
        snprintf(needle, sizeof(needle), "\"event_id\":\"%s\"", event_id);
        for (const char *p = lines; (p = strstr(p, needle)) != NULL; p += strlen(needle))
            seen[i]++;
    }
}

static int relay_all(PGconn *db, bx_producer *p, int batch)
{
    int total = 0;
    for (int round = 0; round < 10000; round++) {
        int sent = 0;
        bx_error err = {0};
        bx_status s = escalate_outbox_relay(db, p, batch, 10000, &sent, &err);
        if (s != BX_OK)
            fprintf(stderr, "relay: %s\n", err.msg);
        REQUIRE(s == BX_OK);
        total += sent;
        long long pending = -1;
        REQUIRE(escalate_outbox_pending(db, &pending, &err) == BX_OK);
        if (pending == 0)
            break;
        if (sent == 0)
            usleep(2000); /* the other relay holds the lock */
    }
    return total;
}

BX_TEST(outbox_rolled_back_never_sent_committed_sent_once)
{
    make_prefix();
    PGconn *db = pg();
    create_topic();
    itest_mark *mark = itest_topic_mark(OUTBOX_TOPIC);
    exec_ok(db, "BEGIN");
    add_many(db, "undone", 3);
    exec_ok(db, "ROLLBACK");
    exec_ok(db, "BEGIN");
    add_many(db, "kept", 4);
    /* A replayed change adds nothing. */
    char event_id[128];
    event_id_of("kept", 0, event_id, sizeof(event_id));
    bx_error err = {0};
    int added = -1;
    REQUIRE(escalate_outbox_add(db, OUTBOX_TOPIC, "S000", event_id, "{\"other\":1}", &added,
                                &err) == BX_OK);
    CHECK_INT(added, 0);
    exec_ok(db, "COMMIT");
    CHECK(escalate_outbox_add(db, OUTBOX_TOPIC, "S000", "bad id!", "{}", &added, &err) ==
          BX_EINVAL);
    CHECK(escalate_outbox_add(db, "", "S000", "x", "{}", &added, &err) == BX_EINVAL);

    bx_producer *p = producer();
    CHECK_INT(relay_all(db, p, 100), 4);
    int sent = -1;
    REQUIRE(escalate_outbox_relay(db, p, 100, 5000, &sent, &err) == BX_OK);
    CHECK_INT(sent, 0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NOT NULL"), 4);
    bx_buf lines;
    bx_buf_init(&lines, 0);
    CHECK_INT(itest_topic_collect(mark, prefix, 5, 3000, &lines), 4);
    int seen[4];
    count_by_event_id(lines.data ? lines.data : "", "kept", 4, seen);
    for (int i = 0; i < 4; i++)
        CHECK_INT(seen[i], 1);
    CHECK(lines.data == NULL || strstr(lines.data, ".undone.") == NULL);
    CHECK(lines.data == NULL || strstr(lines.data, "\"other\"") == NULL);
    bx_buf_free(&lines);
    itest_mark_free(mark);
    bx_producer_free(p, 5000);
    PQfinish(db);
}

typedef struct relayer {
    int sent;
} relayer;

static void *relay_thread(void *arg)
{
    relayer *r = arg;
    PGconn *db = pg();
    bx_producer *p = producer();
    r->sent = relay_all(db, p, 25);
    bx_producer_free(p, 5000);
    PQfinish(db);
    return NULL;
}

BX_TEST(outbox_two_relays_do_not_double_send)
{
    make_prefix();
    PGconn *db = pg();
    create_topic();
    itest_mark *mark = itest_topic_mark(OUTBOX_TOPIC);
    exec_ok(db, "BEGIN");
    add_many(db, "pair", 500);
    exec_ok(db, "COMMIT");
    static relayer r[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        r[i].sent = 0;
        pthread_create(&th[i], NULL, relay_thread, &r[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "relays sent %d and %d\n", r[0].sent, r[1].sent);
    CHECK_INT(r[0].sent + r[1].sent, 500);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL"), 0);
    bx_buf lines;
    bx_buf_init(&lines, 0);
    CHECK_INT(itest_topic_collect(mark, prefix, 501, 4000, &lines), 500);
    static int seen[500];
    count_by_event_id(lines.data ? lines.data : "", "pair", 500, seen);
    int once = 0;
    for (int i = 0; i < 500; i++)
        once += seen[i] == 1;
    CHECK_INT(once, 500);
    /* One student's messages arrive in the order they were written. */
    const char *p = lines.data ? lines.data : "";
    int last_n[7] = {-1, -1, -1, -1, -1, -1, -1}, out_of_order = 0;
    for (const char *line = p; *line;) {
        const char *nl = strchr(line, '\n');
        const char *n_at = strstr(line, "\"n\":");
        if (n_at && (nl == NULL || n_at < nl)) {
            int n = (int)strtol(n_at + 4, NULL, 10);
            out_of_order += n < last_n[n % 7];
            last_n[n % 7] = n;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    CHECK_INT(out_of_order, 0);
    bx_buf_free(&lines);
    itest_mark_free(mark);
    PQfinish(db);
}

static void die_now(void *arg)
{
    (void)arg;
    raise(SIGKILL);
}

BX_TEST(outbox_relay_killed_before_marking_sends_again_with_same_ids)
{
    make_prefix();
    PGconn *db = pg();
    /* Fork before any Kafka thread exists; the child waits for the go. */
    int go[2];
    REQUIRE(pipe(go) == 0);
    pid_t doomed = fork();
    REQUIRE(doomed >= 0);
    if (doomed == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        PGconn *mine = pg();
        bx_producer *p = producer();
        escalate_outbox_set_acked_hook(die_now, NULL);
        int sent = 0;
        bx_error err = {0};
        bx_status s = escalate_outbox_relay(mine, p, 100, 10000, &sent, &err);
        _exit(s == BX_OK ? 3 : 4); /* not reached: the hook kills the relay */
    }
    close(go[0]);
    create_topic();
    itest_mark *mark = itest_topic_mark(OUTBOX_TOPIC);
    exec_ok(db, "BEGIN");
    add_many(db, "again", 20);
    exec_ok(db, "COMMIT");
    REQUIRE(write(go[1], "g", 1) == 1);
    close(go[1]);
    int status = 0;
    REQUIRE(waitpid(doomed, &status, 0) == doomed);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* The broker has them, the outbox does not know: all 20 are still unsent. */
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL"), 20);
    bx_producer *p = producer();
    CHECK_INT(relay_all(db, p, 100), 20);
    bx_buf lines;
    bx_buf_init(&lines, 0);
    CHECK_INT(itest_topic_collect(mark, prefix, 41, 4000, &lines), 40);
    int seen[20];
    count_by_event_id(lines.data ? lines.data : "", "again", 20, seen);
    int twice = 0;
    for (int i = 0; i < 20; i++)
        twice += seen[i] == 2;
    CHECK_INT(twice, 20);
    bx_buf_free(&lines);
    itest_mark_free(mark);
    bx_producer_free(p, 5000);
    PQfinish(db);
}

/* Claims and fires whole claims with timers_fire_batch until nothing is due. */
static int drain_batches(PGconn *db, const char *owner, bx_time_ms now, int batch, fire_ctx *ctx)
{
    int fired = 0;
    for (;;) {
        timers_list list = {0};
        bx_error err = {0};
        REQUIRE(timers_claim(db, owner, now, 30 * SECOND, batch, &list, &err) == BX_OK);
        if (list.count == 0)
            break;
        int n = 0;
        bx_status s = timers_fire_batch(db, &list, owner, now, record_firing, ctx, &n, &err);
        if (s != BX_OK)
            fprintf(stderr, "batch: %s\n", err.msg);
        CHECK_INT(s, BX_OK);
        fired += n;
        /* The same list again fires nothing: every timer in it has fired. */
        REQUIRE(timers_fire_batch(db, &list, owner, now, record_firing, ctx, &n, &err) == BX_OK);
        CHECK_INT(n, 0);
        timers_list_free(&list);
    }
    return fired;
}

static void *fire_all_batches(void *arg)
{
    firer *f = arg;
    PGconn *db = pg();
    f->ctx.owner = f->owner;
    f->fired = drain_batches(db, f->owner, T0 + 3600 * SECOND, 100, &f->ctx);
    PQfinish(db);
    return NULL;
}

BX_TEST(timer_batches_fired_once_by_three_threads)
{
    make_prefix();
    PGconn *db = pg();
    make_fired_table(db);
    schedule_many(db, "batch", 1000, T0);
    static firer f[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&f[i], 0, sizeof(f[i]));
        snprintf(f[i].owner, sizeof(f[i].owner), "batcher-%d", i);
        pthread_create(&th[i], NULL, fire_all_batches, &f[i]);
    }
    int fired = 0, calls = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        fired += f[i].fired;
        calls += atomic_load(&f[i].ctx.calls);
    }
    CHECK_INT(fired, 1000);
    CHECK_INT(calls, 1000);
    CHECK_INT(count_of(db, "SELECT count(DISTINCT timer_key) FROM public.esc_fired "
                           "WHERE owner LIKE 'batcher-%'"),
              1000);
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired WHERE owner LIKE 'batcher-%'"),
              1000);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL"), 0);
    PQfinish(db);
}

BX_TEST(timer_batch_with_a_failing_firing_changes_nothing)
{
    make_prefix();
    PGconn *db = pg();
    make_fired_table(db);
    schedule_many(db, "fail", 5, T0);
    timers_list list = {0};
    bx_error err = {0};
    REQUIRE(timers_claim(db, "failer", T0 + 3600 * SECOND, 30 * SECOND, 10, &list, &err) == BX_OK);
    CHECK_INT(list.count, 5);
    int n = -1;
    static fire_ctx ctx;
    ctx.owner = "failer";
    CHECK(timers_fire_batch(db, &list, "failer", T0 + 3600 * SECOND, failing_firing, &ctx, &n,
                            &err) != BX_OK);
    CHECK_INT(n, 0);
    /* The first firing's row was rolled back with the rest. */
    CHECK_INT(count_of(db, "SELECT count(*) FROM public.esc_fired WHERE owner = 'failer'"), 0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM cases.timer WHERE fired_at IS NULL"), 5);
    timers_list_free(&list);
    PQfinish(db);
}

/* ---- the analysts' bands of many students at once ---- */

/* analytics.student_bands_of (migration 0027, one statement for a poll's inputs) and
 * escalate_analytics_bands_of give every student what analytics.student_bands (0017) gives: cells
 * of 5 and more shown, smaller ones not, a student with no sex recorded, one not enrolled (counted
 * nowhere, still answered), an id asked twice and one not in the registry. */
BX_TEST(bands_of_many_students_agree_with_one_by_one)
{
    PGconn *db = pg();
    exec_ok(db,
            "INSERT INTO registry.county (code, name) VALUES ('990271', 'Bands county');"
            "INSERT INTO registry.township (code, county_code, name) VALUES "
            "('990271001', '990271', 'Bands township');"
            "INSERT INTO registry.calendar (id, name) VALUES ('bands-cal', 'Bands');"
            "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) VALUES "
            "('BNDS1', 'One', '990271001', 'primary', 'bands-cal'),"
            "('BNDS2', 'Two', '990271001', 'primary', 'bands-cal');"
            "INSERT INTO registry.class (id, school_id, grade, name) VALUES "
            "('BNDC1', 'BNDS1', 2, 'g2'), ('BNDC2', 'BNDS1', 5, 'g5'), ('BNDC3', 'BNDS2', 8, 'g8');"
            /* school 1, grades 1-3: 7 F, 4 M (F shown, M not); grades 4-6: 3 (nothing shown) */
            "INSERT INTO registry.student (id, school_id, class_id) SELECT 'BND1A' || g, 'BNDS1', "
            "'BNDC1' FROM generate_series(1, 11) g;"
            "INSERT INTO registry.student_private (student_id, name, sex) SELECT 'BND1A' || g, "
            "'x', CASE WHEN g <= 7 THEN 'F' ELSE 'M' END FROM generate_series(1, 11) g;"
            "INSERT INTO registry.student (id, school_id, class_id) SELECT 'BND1B' || g, 'BNDS1', "
            "'BNDC2' FROM generate_series(1, 3) g;"
            "INSERT INTO registry.student_private (student_id, name, sex) SELECT 'BND1B' || g, "
            "'x', 'F' FROM generate_series(1, 3) g;"
            /* school 2, grades 7-9: 6 M, one of them dropped out (5 enrolled), 2 without sex */
            "INSERT INTO registry.student (id, school_id, class_id, status) SELECT 'BND2A' || g, "
            "'BNDS2', 'BNDC3', CASE WHEN g = 1 THEN 'dropped_out' ELSE 'enrolled' END FROM "
            "generate_series(1, 8) g;"
            "INSERT INTO registry.student_private (student_id, name, sex) SELECT 'BND2A' || g, "
            "'x', CASE WHEN g <= 6 THEN 'M' END FROM generate_series(1, 8) g;");
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s =
        bx_pg_query(db, "SELECT id FROM registry.student WHERE id LIKE 'BND%' ORDER BY id", 0, NULL,
                    &res, &err);
    REQUIRE(s == BX_OK);
    int n = PQntuples(res);
    REQUIRE(n == 22);
    const char *ids[26];
    for (int i = 0; i < n; i++)
        ids[i] = PQgetvalue(res, i, 0);
    ids[n] = ids[0];        /* asked twice */
    ids[n + 1] = "BNDNONE"; /* not in the registry */
    ids[n + 2] = "BND1A8";  /* a male of an unshown cell */
    escalate_bands got[26];
    s = escalate_analytics_bands_of(db, ids, n + 3, got, &err);
    if (s != BX_OK)
        fprintf(stderr, "bands_of: %s\n", err.msg);
    REQUIRE(s == BX_OK);
    int shown_sex = 0, shown_band = 0;
    for (int i = 0; i < n + 3; i++) {
        char band[16], sex[8];
        s = escalate_analytics_bands(db, ids[i], band, sex, &err);
        REQUIRE(s == BX_OK);
        CHECK_STR(got[i].grade_band, band);
        CHECK_STR(got[i].sex, sex);
        shown_band += band[0] != '\0';
        shown_sex += sex[0] != '\0';
    }
    /* the fixture shows some and hides some: 11 + 8 + 2 asked again grade bands, 7 + 6 + 1 sexes
     * (school 2's dropped out student has a band and a sex: the counts are of the enrolled) */
    CHECK_INT(shown_band, 11 + 8 + 2);
    CHECK_INT(shown_sex, 7 + 6 + 1);
    CHECK_STR(got[n + 1].grade_band, "");
    CHECK_STR(got[n + 2].sex, "");
    PQclear(res);
    PQfinish(db);
}
