/* A killed consumer does not stall its group (issue 14, defect 9): two replicas of bx-score in one
 * group on a topic of the test's own while facts flow at a steady rate; every 10 s one of them is
 * killed with SIGKILL and started again a second later, as a supervisor would. Every fact produced
 * before a kill is stored within 20 s of it (with a dynamic member and a 45 s session the group
 * waited for the dead member and stopped for about 45 s), and at the end the facts stored are
 * exactly the facts produced: nothing lost, nothing stored twice. Its own database and Redis db. */
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_DB     "15"
#define RUN_MS       60000 /* facts flow this long */
#define KILL_EVERY   10000
#define RESTART_MS   1000  /* the supervisor's delay before starting a killed replica again */
#define DRAIN_MAX_MS 20000 /* the bound a kill's backlog drains within */
#define RATE         40    /* facts a second */
#define STUDENTS     16

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

/* The fixture's students (itest_registry_fixture): ITS01..ITS15 in IT01, ITS20 in IT02. */
static void student_of(int i, char *id, char *klass, char *school)
{
    int n = i < 15 ? i + 1 : 20;
    sprintf(id, "ITS%02d", n);
    strcpy(klass, n <= 10 ? "ITC1" : n <= 15 ? "ITC2" : "ITC3");
    strcpy(school, n <= 15 ? "IT01" : "IT02");
}

/* The school days facts are written for: weekdays of November and December 2026 but the
 * fixture's closure on 2026-11-20. */
static int school_days(char days[][11], int max)
{
    int n = 0;
    for (int month = 11; month <= 12; month++)
        for (int d = 1; d <= (month == 11 ? 30 : 31) && n < max; d++) {
            struct tm tm = {.tm_year = 126, .tm_mon = month - 1, .tm_mday = d, .tm_hour = 12};
            mktime(&tm);
            if (tm.tm_wday == 0 || tm.tm_wday == 6 || (month == 11 && d == 20))
                continue;
            snprintf(days[n++], 11, "2026-%02d-%02d", month, d);
        }
    return n;
}

typedef struct flow {
    char topic[128];
    char tag[40];
    bx_producer *producer;
    atomic_llong produced; /* acknowledged by the broker */
    atomic_bool stop;
    atomic_bool failed;
} flow;

static void delivered(void *opaque, rd_kafka_resp_err_t err)
{
    flow *f = opaque;
    if (err)
        atomic_store(&f->failed, true);
    else
        atomic_fetch_add(&f->produced, 1);
}

/* Facts at RATE a second, each one a different (student, day, period): one row each in
 * attendance.fact. */
static void *produce_main(void *arg)
{
    flow *f = arg;
    static char days[60][11];
    int ndays = school_days(days, 60);
    long long start = now_ms();
    for (long long i = 0; !atomic_load(&f->stop); i++) {
        long long due = start + i * 1000 / RATE;
        long long wait = due - now_ms();
        if (wait > 0)
            usleep((useconds_t)wait * 1000);
        int student = (int)(i % STUDENTS), slot = (int)(i / STUDENTS);
        int period = slot % 8 + 1, day = slot / 8;
        if (day >= ndays)
            break;
        char id[8], klass[8], school[8], msg[1024];
        student_of(student, id, klass, school);
        snprintf(msg, sizeof(msg),
                 "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":"
                 "\"%s-%lld\",\"student_id\":\"%s\",\"school_id\":\"%s\",\"class_id\":\"%s\","
                 "\"date\":\"%s\",\"period\":%d,\"status\":\"present\",\"leave_kind\":null,"
                 "\"source\":\"attendance\",\"rollcall_id\":null,\"recorded_at\":"
                 "\"%sT08:10:00+08:00\",\"recorded_by\":\"itest\"}",
                 f->tag, i, id, school, klass, days[day], period, days[day]);
        if (bx_producer_send(f->producer, f->topic, id, strlen(id), msg, strlen(msg), delivered,
                             f) != BX_OK)
            atomic_store(&f->failed, true);
    }
    return NULL;
}

static long long stored(const char *url)
{
    char *rows = itest_sql_rows(url, "SELECT count(*) FROM attendance.fact");
    long long n = rows ? strtoll(rows, NULL, 10) : -1;
    free(rows);
    return n;
}

typedef struct replica {
    pid_t pid;
    int port;
    char env_replica[32];
} replica;

BX_TEST(killed_replicas_do_not_stall_the_group)
{
    const char *url = itest_own_database("gkill");
    setenv("BX_PG_URL", url, 1); /* the fixture is imported there */
    free(itest_registry_fixture(NULL));

    flow f = {0};
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(f.tag, sizeof(f.tag), "gk%d-%ld", (int)getpid(), (long)tv.tv_sec % 100000);
    char t_att[96], t_arisk[96], t_aatt[96];
    snprintf(t_att, sizeof(t_att), "bx.itest.gkill.%s", f.tag);
    snprintf(t_arisk, sizeof(t_arisk), "bx.itest.gkill-arisk.%s", f.tag);
    snprintf(t_aatt, sizeof(t_aatt), "bx.itest.gkill-aatt.%s", f.tag);
    snprintf(f.topic, sizeof(f.topic), "%s", t_att);
    const char *const topics[] = {t_att, t_arisk, t_aatt};
    const int partitions[] = {6, 1, 1};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 3, 15000, &err) == BX_OK);

    char *clock = itest_clock_file("2027-01-20 18:00");
    const char *redis = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    const char *db_part = strchr(redis + strlen("redis://"), '/');
    int base = db_part ? (int)(db_part - redis) : (int)strlen(redis);
    char env_url[600], env_redis[300], env_topic[160], env_group[160], env_arisk[160],
        env_aatt[160];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", url);
    snprintf(env_redis, sizeof(env_redis), "BX_REDIS_URL=%.*s/" REDIS_DB, base, redis);
    snprintf(env_topic, sizeof(env_topic), "BX_ATTENDANCE_TOPIC=%s", t_att);
    snprintf(env_group, sizeof(env_group), "BX_CONSUMER_GROUP=bx-score-itest-%s", f.tag);
    snprintf(env_arisk, sizeof(env_arisk), "BX_ANALYTICS_RISK_TOPIC=%s", t_arisk);
    snprintf(env_aatt, sizeof(env_aatt), "BX_ANALYTICS_ATTENDANCE_TOPIC=%s", t_aatt);

    replica r[2] = {0};
    for (int i = 0; i < 2; i++)
        snprintf(r[i].env_replica, sizeof(r[i].env_replica), "BX_KAFKA_REPLICA=%d", i + 1);
    const char *bin = itest_env("BX_SCORE_BIN", BX_SCORE_BIN);
#define START(i)                                                                                   \
    r[i].pid = itest_service_start(                                                                \
        bin, clock,                                                                                \
        (const char *[]){env_url, env_redis, env_topic, env_group, env_arisk, env_aatt,            \
                         r[i].env_replica, "BX_PSEUDONYM_KEY=itest-gkill", "BX_SCORE_BATCH_MS=20", \
                         "BX_LOG_LEVEL=warn", NULL},                                               \
        &r[i].port)
    START(0);
    START(1);

    REQUIRE(bx_producer_new(brokers(), NULL, &f.producer, &err) == BX_OK);
    pthread_t producer;
    REQUIRE(pthread_create(&producer, NULL, produce_main, &f) == 0);

    /* Kills at 10, 20, ... 50 s, alternating replicas; each one's mark is what had been produced
     * when it came, and its drain time how long until that much was stored. */
    enum { KILLS = RUN_MS / KILL_EVERY - 1 };
    long long kill_at[KILLS], mark[KILLS], drained[KILLS], restart_at = 0;
    int kills = 0, down = -1;
    long long start = now_ms(), last_stored = 0;
    while (now_ms() - start < RUN_MS || (kills > 0 && drained[kills - 1] < 0)) {
        long long t = now_ms();
        if (t - start >= RUN_MS)
            atomic_store(&f.stop, true);
        if (kills < KILLS && t - start >= (long long)(kills + 1) * KILL_EVERY && down < 0) {
            down = kills % 2;
            kill(r[down].pid, SIGKILL);
            itest_stop(r[down].pid); /* reaps it */
            kill_at[kills] = t;
            mark[kills] = atomic_load(&f.produced);
            drained[kills] = -1;
            restart_at = t + RESTART_MS;
            kills++;
        }
        if (down >= 0 && t >= restart_at) {
            START(down);
            down = -1;
        }
        last_stored = stored(url);
        for (int k = 0; k < kills; k++)
            if (drained[k] < 0 && last_stored >= mark[k])
                drained[k] = now_ms() - kill_at[k];
        for (int k = 0; k < kills; k++)
            if (drained[k] < 0 && now_ms() - kill_at[k] > 3 * DRAIN_MAX_MS)
                drained[k] = 3 * DRAIN_MAX_MS; /* give up waiting; the check below fails */
        usleep(100 * 1000);
    }
    atomic_store(&f.stop, true);
    pthread_join(producer, NULL);
    REQUIRE(bx_producer_flush(f.producer, 15000) == BX_OK);
    bx_producer_free(f.producer, 5000);
    long long produced = atomic_load(&f.produced);

    /* Everything produced is stored, once. */
    for (int i = 0; i < 300 && (last_stored = stored(url)) < produced; i++)
        usleep(100 * 1000);
    long long worst = 0;
    for (int k = 0; k < kills; k++) {
        fprintf(stderr,
                "kill %d (replica %d): %lld facts produced before it stored after %lld ms\n", k + 1,
                k % 2 + 1, mark[k], drained[k]);
        worst = drained[k] > worst ? drained[k] : worst;
    }
    fprintf(stderr, "%lld facts produced, %lld stored; the worst drain %lld ms\n", produced,
            last_stored, worst);
    CHECK(!atomic_load(&f.failed));
    CHECK_INT(kills, KILLS);
    CHECK(produced > RATE * RUN_MS / 1000 * 9 / 10);
    CHECK_INT(last_stored, produced);
    CHECK(worst < DRAIN_MAX_MS);
    for (int i = 0; i < 2; i++)
        itest_stop(r[i].pid);
    free(clock);
}
