/* The pipeline on the cluster layout (issue 17): a county's school days (bx-sim) flow through
 * bx-ingest and two replicas each of bx-score, bx-escalate and bx-notify (file provider) on a
 * 3-broker Kafka (replication 3, min.insync.replicas 2) and a Redis Cluster of 3 masters with a
 * replica each (deploy/local/bx-infra up --cluster, started here when it is not running and then
 * stopped again), while a steady flow of facts of the fixture's students goes beside it, on a
 * topic of its own to a pair of bx-score of its own (the county's days settle between days).
 * Mid-run one broker is killed (SIGKILL) and started again 15 s later, then one Redis master is
 * killed so that its replica takes over (and it is started again, a replica now). Afterwards:
 *   - nothing lost: every fact Kafka acknowledged is stored, and bx-ingest accepted every record
 *     the county's days hold (none rejected);
 *   - nothing twice: the steady facts stored equal the facts acknowledged, and no SMS is in the
 *     provider's file twice; every SMS bx-notify counts as sent is in it;
 *   - the pipeline resumed within 30 s of each fault: what had been acknowledged when the fault
 *     came was stored within 30 s of it;
 *   - bxctl rebuild runs against the cluster and rebuilds a school's facts as PostgreSQL has them.
 * Its own database; the county's ids carry this process's prefix, the steady facts the fixture's
 * students (ITS..), so the shared topics and Redis keys of other runs never meet its own. */
#include "bx_buf.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define STUDENTS       300
#define DAYS           "2"
#define FROM           "2026-11-02"
#define RATE           12     /* steady facts a second */
#define FLOW_MIN_MS    100000 /* the steady flow lasts at least this long */
#define BROKER_KILL_MS 15000
#define BROKER_BACK_MS 30000
#define REDIS_KILL_MS  50000
#define REDIS_BACK_MS  75000
#define RESUME_MAX_MS  30000

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char infra[1024], crun[1024], env_url[700], env_clock[700];
static const char *db_url;
static bool started_cluster;

static const char *sim_bin(void)
{
    return itest_env("BX_SIM_BIN", BX_SIM_BIN);
}

static const char *bxctl(void)
{
    return itest_env("BXCTL_BIN", BXCTL_BIN);
}

static int run(const char *const *argv, bx_buf *out)
{
    const char *env[] = {env_url, env_clock, NULL};
    return itest_run(argv, env, out);
}

static void run_ok(const char *const *argv, bx_buf *out)
{
    bx_buf own;
    bx_buf_init(&own, 1 << 20);
    bx_buf *b = out ? out : &own;
    int rc = run(argv, b);
    if (rc != 0)
        fprintf(stderr, "%s %s failed (%d): %s\n", argv[0], argv[1], rc, b->data ? b->data : "");
    bx_buf_free(&own);
    REQUIRE(rc == 0);
}

static long long count_of(const char *sql)
{
    char *rows = itest_sql_rows(db_url, sql);
    long long n = rows ? strtoll(rows, NULL, 10) : -1;
    free(rows);
    return n;
}

/* ---- the cluster ---- */

static void cluster_down(void)
{
    if (!started_cluster)
        return;
    const char *argv[] = {"/bin/bash", infra, "down", "--cluster", NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    itest_run(argv, NULL, &out);
    bx_buf_free(&out);
}

/* bx-infra up --cluster: idempotent, and it starts again what is down. */
static int cluster_up_now(bx_buf *out)
{
    const char *argv[] = {"/bin/bash", infra, "up", "--cluster", NULL};
    return itest_run(argv, NULL, out);
}

/* The cluster up (started here when any node is down: stopped at exit if none was up), and its
 * env ($BX_RUN_DIR/cluster/env) in this process's environment. */
static void cluster_up(void)
{
    snprintf(infra, sizeof(infra), "%s/deploy/local/bx-infra", itest_env("BX_SOURCE_DIR", "."));
    snprintf(crun, sizeof(crun), "%s/cluster", itest_env("BX_RUN_DIR", ".run"));
    bx_buf out;
    bx_buf_init(&out, 1 << 16);
    const char *running[] = {"/bin/bash", infra, "running", "--cluster", NULL};
    REQUIRE(itest_run(running, NULL, &out) == 0);
    int alive = 0;
    for (const char *p = out.data; p && *p; p++)
        alive += *p == '\n';
    if (alive < 9) {
        started_cluster = alive == 0;
        if (started_cluster)
            atexit(cluster_down);
        bx_buf_reset(&out);
        long long t0 = now_ms();
        int rc = cluster_up_now(&out);
        fprintf(stderr, "bx-infra up --cluster: %d, %lld ms\n", rc, now_ms() - t0);
        if (rc != 0)
            fprintf(stderr, "%s\n", out.data ? out.data : "");
        REQUIRE(rc == 0);
    }
    bx_buf_free(&out);
    char path[1100], line[1200];
    snprintf(path, sizeof(path), "%s/env", crun);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "export ", 7) != 0 || strchr(line, '=') == NULL)
            continue;
        char *name = line + 7, *eq = strchr(name, '=');
        *eq = '\0';
        setenv(name, eq + 1, 1);
    }
    fclose(f);
    REQUIRE(strncmp(itest_env("BX_REDIS_URL", ""), "redis+cluster://", 16) == 0);
}

static pid_t pid_in(const char *name)
{
    char path[1100];
    snprintf(path, sizeof(path), "%s/%s.pid", crun, name);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

/* The number (1..6) of a Redis node that is a master now. */
static int redis_master(void)
{
    int base = atoi(itest_env("BX_CLUSTER_REDIS_BASE", "26381"));
    for (int i = 1; i <= 6; i++) {
        char port[16], out_role[64] = "";
        snprintf(port, sizeof(port), "%d", base + i - 1);
        const char *argv[] = {"/usr/bin/redis-cli",
                              "--no-auth-warning",
                              "--user",
                              "bx-admin",
                              "-p",
                              port,
                              "role",
                              NULL};
        char pass[200] = "", env_auth[260];
        FILE *pf = fopen(itest_env("BX_REDIS_PASSWORD_FILE", ""), "r");
        if (pf) {
            if (fgets(pass, sizeof(pass), pf) == NULL)
                pass[0] = '\0';
            fclose(pf);
        }
        pass[strcspn(pass, "\r\n")] = '\0';
        snprintf(env_auth, sizeof(env_auth), "REDISCLI_AUTH=%s", pass);
        const char *env[] = {env_auth, NULL};
        bx_buf out;
        bx_buf_init(&out, 0);
        int rc = itest_run(argv, env, &out);
        if (rc == 0 && out.data)
            snprintf(out_role, sizeof(out_role), "%.10s", out.data);
        bx_buf_free(&out);
        if (strncmp(out_role, "master", 6) == 0)
            return i;
    }
    return 0;
}

typedef struct restart {
    pthread_t thread;
    atomic_int rc; /* -1 while running */
    long long took_ms;
} restart;

static void *restart_main(void *arg)
{
    restart *r = arg;
    long long t0 = now_ms();
    bx_buf out;
    bx_buf_init(&out, 1 << 16);
    int rc = cluster_up_now(&out);
    if (rc != 0)
        fprintf(stderr, "bx-infra up --cluster (restart): %s\n", out.data ? out.data : "");
    bx_buf_free(&out);
    r->took_ms = now_ms() - t0;
    atomic_store(&r->rc, rc);
    return NULL;
}

static void restart_start(restart *r)
{
    atomic_store(&r->rc, -1);
    REQUIRE(pthread_create(&r->thread, NULL, restart_main, r) == 0);
}

/* ---- the steady flow: facts of the fixture's students straight to Kafka ---- */

typedef struct flow {
    char topic[128];
    bx_producer *producer;
    atomic_llong produced; /* acknowledged by the brokers */
    atomic_bool stop, failed;
    char tag[40];
} flow;

static void delivered(void *opaque, rd_kafka_resp_err_t err)
{
    flow *f = opaque;
    if (err)
        atomic_store(&f->failed, true);
    else
        atomic_fetch_add(&f->produced, 1);
}

/* Weekdays of September 2026 but the Mid-Autumn Festival (the 25th). */
static int flow_days(char days[][11], int max)
{
    int n = 0;
    for (int d = 1; d <= 30 && n < max; d++) {
        struct tm tm = {.tm_year = 126, .tm_mon = 8, .tm_mday = d, .tm_hour = 12};
        mktime(&tm);
        if (tm.tm_wday == 0 || tm.tm_wday == 6 || d == 25)
            continue;
        snprintf(days[n++], 11, "2026-09-%02d", d);
    }
    return n;
}

static void *flow_main(void *arg)
{
    flow *f = arg;
    static char days[31][11];
    int ndays = flow_days(days, 31);
    long long start = now_ms();
    for (long long i = 0; !atomic_load(&f->stop); i++) {
        long long wait = start + i * 1000 / RATE - now_ms();
        if (wait > 0)
            usleep((useconds_t)wait * 1000);
        int student = (int)(i % 16), slot = (int)(i / 16);
        int period = slot % 8 + 1, day = slot / 8;
        if (day >= ndays)
            break;
        int n = student < 15 ? student + 1 : 20;
        char id[8], msg[1024];
        snprintf(id, sizeof(id), "ITS%02d", n);
        snprintf(msg, sizeof(msg),
                 "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":"
                 "\"%s-%lld\",\"student_id\":\"%s\",\"school_id\":\"%s\",\"class_id\":\"%s\","
                 "\"date\":\"%s\",\"period\":%d,\"status\":\"present\",\"leave_kind\":null,"
                 "\"source\":\"attendance\",\"rollcall_id\":null,\"recorded_at\":"
                 "\"%sT08:10:00+08:00\",\"recorded_by\":\"itest\"}",
                 f->tag, i, id, n <= 15 ? "IT01" : "IT02",
                 n <= 10   ? "ITC1"
                 : n <= 15 ? "ITC2"
                           : "ITC3",
                 days[day], period, days[day]);
        if (bx_producer_send(f->producer, f->topic, id, strlen(id), msg, strlen(msg), delivered,
                             f) != BX_OK)
            atomic_store(&f->failed, true);
    }
    return NULL;
}

static long long steady_stored(void)
{
    return count_of("SELECT count(*) FROM attendance.fact WHERE student_id LIKE 'ITS%'");
}

/* ---- CPU per stage ---- */

/* CPU seconds (user + system) a live process has used, from /proc/<pid>/stat; -1 when gone. */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU seconds of the cluster's processes whose pid files are named prefix1..prefixN, since
 * cpu_mark: a node started again since counts its new life only (a lower bound). */
typedef struct cpu_mark {
    pid_t pid[8];
    double cpu[8];
} cpu_mark;

static void cluster_cpu_mark(const char *prefix, int n, cpu_mark *m)
{
    for (int i = 1; i <= n && i <= 8; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%d", prefix, i);
        m->pid[i - 1] = pid_in(name);
        m->cpu[i - 1] = m->pid[i - 1] > 0 ? cpu_seconds(m->pid[i - 1]) : 0;
    }
}

static double cluster_cpu_since(const char *prefix, int n, const cpu_mark *m)
{
    double sum = 0;
    for (int i = 1; i <= n && i <= 8; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%d", prefix, i);
        pid_t pid = pid_in(name);
        double c = pid > 0 ? cpu_seconds(pid) : -1;
        if (c < 0)
            continue;
        sum += pid == m->pid[i - 1] ? c - m->cpu[i - 1] : c;
    }
    return sum;
}

/* ---- the county ---- */

static const char *id_prefix(void)
{
    static char prefix[9];
    if (prefix[0] == '\0') {
        unsigned n = (unsigned)getpid();
        int i = 0;
        prefix[i++] = 'c';
        while (n && i < 8) {
            prefix[i++] = (char)('a' + n % 26);
            n /= 26;
        }
    }
    return prefix;
}

typedef struct sim_run_arg {
    const char *const *argv;
    bx_buf out;
    atomic_int rc; /* -1 while running */
} sim_run_arg;

static void *sim_main(void *arg)
{
    sim_run_arg *a = arg;
    atomic_store(&a->rc, run(a->argv, &a->out));
    return NULL;
}

/* Ids of every SMS line in the provider's file; fails the test on an id met twice. */
static long long sms_lines(const char *path, long long *dupes)
{
    *dupes = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    static char ids[4096][80];
    long long n = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "\"id\":\"");
        if (p == NULL)
            continue;
        p += 6;
        char id[80];
        snprintf(id, sizeof(id), "%.*s", (int)strcspn(p, "\""), p);
        for (long long i = 0; i < n && i < 4096; i++)
            if (strcmp(ids[i], id) == 0)
                (*dupes)++;
        if (n < 4096)
            snprintf(ids[n], sizeof(ids[n]), "%s", id);
        n++;
    }
    fclose(f);
    return n;
}

BX_TEST(county_days_survive_a_broker_and_a_redis_master)
{
    cluster_up();
    db_url = itest_own_database("cluster");
    setenv("BX_PG_URL", db_url, 1);
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url);
    free(itest_registry_fixture(NULL));
    char *clock = itest_clock_file(FROM " 07:00");
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", clock);
    setenv("BX_CLOCK", env_clock + 9, 1);

    /* The topics with the cluster's replication; the county generated and imported. */
    const char *topics[] = {bxctl(), "topics", "create", NULL};
    bx_buf out;
    bx_buf_init(&out, 1 << 20);
    run_ok(topics, &out);
    CHECK_CONTAINS(out.data, "3 replicas, min.insync.replicas 2");
    char *dir = itest_tmpdir("cluster");
    char holidays[1100];
    snprintf(holidays, sizeof(holidays), "%s/deploy/policy/cn-public-holidays-2026.csv",
             itest_env("BX_SOURCE_DIR", "."));
    const char *size[] = {"--seed",     "7",   "--townships", "1",         "--schools", "2",
                          "--students", "300", "--id-prefix", id_prefix(), NULL};
    const char *gen[20] = {sim_bin(), "generate", "--out", dir};
    for (int i = 0; size[i]; i++)
        gen[4 + i] = size[i];
    run_ok(gen, NULL);
    run_ok((const char *[]){bxctl(), "import", "holidays", holidays, NULL}, NULL);
    run_ok((const char *[]){bxctl(), "import", "--dir", dir, NULL}, NULL);
    char keys[1100];
    snprintf(keys, sizeof(keys), "%s/keys", dir);
    FILE *kf = fopen(keys, "w");
    REQUIRE(kf != NULL);
    char *schools = itest_sql_rows(db_url, "SELECT id FROM registry.school WHERE id NOT LIKE "
                                           "'IT%' ORDER BY id");
    REQUIRE(schools != NULL);
    char first_school[40] = "";
    for (char *p = schools; *p;) {
        size_t n = strcspn(p, "\n");
        char school[40];
        snprintf(school, sizeof(school), "%.*s", (int)n, p);
        if (!first_school[0])
            snprintf(first_school, sizeof(first_school), "%s", school);
        bx_buf kout;
        bx_buf_init(&kout, 0);
        run_ok((const char *[]){bxctl(), "key", "create", school, "itest", NULL}, &kout);
        const char *tok = strstr(kout.data, "bxk_");
        REQUIRE(tok != NULL);
        fprintf(kf, "%s %.*s\n", school, (int)strcspn(tok, "\r\n "), tok);
        bx_buf_free(&kout);
        p += n;
        if (*p)
            p++;
    }
    fclose(kf);
    free(schools);

    /* Consumer groups of this run's own at the topics' ends; the services, two of each consumer. */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char tag[40], g_score[80], g_esc[80], g_notify[80];
    snprintf(tag, sizeof(tag), "cl%d-%ld", (int)getpid(), (long)tv.tv_sec % 100000);
    snprintf(g_score, sizeof(g_score), "bx-score-itest-%s", tag);
    snprintf(g_esc, sizeof(g_esc), "bx-escalate-itest-%s", tag);
    snprintf(g_notify, sizeof(g_notify), "bx-notify-itest-%s", tag);
    run_ok((const char *[]){sim_bin(), "group-at-end", "--group", g_score, "--topics",
                            BX_TOPIC_ATTENDANCE, NULL},
           NULL);
    run_ok((const char *[]){sim_bin(), "group-at-end", "--group", g_esc, "--topics",
                            "bx.risk.v1,bx.actions.v1", NULL},
           NULL);
    run_ok((const char *[]){sim_bin(), "group-at-end", "--group", g_notify, "--topics",
                            "bx.notify.requests.v1", NULL},
           NULL);
    char e_score[120], e_esc[120], e_notify[120], sms_file[1100], e_sms[1200], e_rate[120];
    snprintf(e_score, sizeof(e_score), "BX_CONSUMER_GROUP=%s", g_score);
    snprintf(e_esc, sizeof(e_esc), "BX_CONSUMER_GROUP=%s", g_esc);
    snprintf(e_notify, sizeof(e_notify), "BX_CONSUMER_GROUP=%s", g_notify);
    snprintf(sms_file, sizeof(sms_file), "%s/sms.jsonl", dir);
    snprintf(e_sms, sizeof(e_sms), "BX_NOTIFY_PROVIDER_FILE=%s", sms_file);
    snprintf(e_rate, sizeof(e_rate), "BX_NOTIFY_RATE_KEY=bx:notify:rate:{%s}", tag);
    int port = 0, mport = 0;
    pid_t ingest = itest_ingest_start(clock, (const char *[]){env_url, NULL}, &port);
    pid_t svc[6];
    static char receipt[2][64];
    for (int r = 0; r < 2; r++) {
        const char *replica = r == 0 ? "BX_KAFKA_REPLICA=1" : "BX_KAFKA_REPLICA=2";
        svc[r] = itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), clock,
                                     (const char *[]){env_url, e_score, replica, NULL}, &mport);
        svc[2 + r] = itest_service_start(
            itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), clock,
            (const char *[]){env_url, e_esc, replica, "BX_REGISTRY_REFRESH_MS=200", NULL}, &mport);
        snprintf(receipt[r], sizeof(receipt[r]), "BX_NOTIFY_RECEIPT_LISTEN=127.0.0.1:%d",
                 18650 + (int)(getpid() % 500) * 2 + r);
        svc[4 + r] = itest_service_start(
            itest_env("BX_NOTIFY_BIN", BX_NOTIFY_BIN), clock,
            (const char *[]){env_url, e_notify, replica, e_sms, e_rate, receipt[r],
                             "BX_NOTIFY_QUIET_HOURS=23:59-00:00", NULL},
            &mport);
    }

    /* The steady flow's own topics (replicated as the cluster's) and bx-score pair: the county's
     * days settle on their groups between days, which a flow on their topic would never let. */
    char t_att[128], t_arisk[128], t_aatt[128], e_att[160], e_arisk[160], e_aatt[160],
        e_sgroup[160];
    snprintf(t_att, sizeof(t_att), "bx.itest.cluster.%s", tag);
    snprintf(t_arisk, sizeof(t_arisk), "bx.itest.cluster-arisk.%s", tag);
    snprintf(t_aatt, sizeof(t_aatt), "bx.itest.cluster-aatt.%s", tag);
    {
        const char *const steady_topics[] = {t_att, t_arisk, t_aatt};
        const int partitions[] = {6, 1, 1};
        bx_error terr = {0};
        REQUIRE(bx_kafka_create_topics(itest_env("BX_KAFKA_BROKERS", ""), steady_topics, partitions,
                                       3, 15000, &terr) == BX_OK);
    }
    snprintf(e_att, sizeof(e_att), "BX_ATTENDANCE_TOPIC=%s", t_att);
    snprintf(e_arisk, sizeof(e_arisk), "BX_ANALYTICS_RISK_TOPIC=%s", t_arisk);
    snprintf(e_aatt, sizeof(e_aatt), "BX_ANALYTICS_ATTENDANCE_TOPIC=%s", t_aatt);
    snprintf(e_sgroup, sizeof(e_sgroup), "BX_CONSUMER_GROUP=bx-score-itest-steady-%s", tag);
    pid_t steady[2];
    for (int r = 0; r < 2; r++)
        steady[r] = itest_service_start(
            itest_env("BX_SCORE_BIN", BX_SCORE_BIN), clock,
            (const char *[]){env_url, e_att, e_arisk, e_aatt, e_sgroup,
                             r == 0 ? "BX_KAFKA_REPLICA=3" : "BX_KAFKA_REPLICA=4",
                             "BX_SCORE_BATCH_MS=20", NULL},
            &mport);

    /* The county's days and the steady flow; the faults on their schedule. */
    char api[64], state[1100], spec_score[160], spec_esc[160], spec_notify[160];
    snprintf(api, sizeof(api), "http://127.0.0.1:%d", port);
    snprintf(state, sizeof(state), "%s/state", dir);
    REQUIRE(mkdir(state, 0755) == 0);
    snprintf(spec_score, sizeof(spec_score), "%s:%s", g_score, BX_TOPIC_ATTENDANCE);
    snprintf(spec_esc, sizeof(spec_esc), "%s:bx.risk.v1,bx.actions.v1", g_esc);
    snprintf(spec_notify, sizeof(spec_notify), "%s:bx.notify.requests.v1", g_notify);
    const char *sim_argv[40] = {sim_bin(), "run",     "--state",   state,      "--api",
                                api,       "--keys",  keys,        "--from",   FROM,
                                "--days",  DAYS,      "--group",   spec_score, "--group",
                                spec_esc,  "--group", spec_notify, "--quiet"};
    int na = 19;
    for (int i = 0; size[i]; i++)
        sim_argv[na++] = size[i];
    sim_argv[na] = NULL;
    sim_run_arg sim = {.argv = sim_argv};
    bx_buf_init(&sim.out, 1 << 22);
    atomic_store(&sim.rc, -1);

    cpu_mark kafka_cpu0, redis_cpu0;
    cluster_cpu_mark("kafka", 3, &kafka_cpu0);
    cluster_cpu_mark("redis", 6, &redis_cpu0);
    flow f = {0};
    snprintf(f.tag, sizeof(f.tag), "%s", tag);
    snprintf(f.topic, sizeof(f.topic), "%s", t_att);
    bx_error err = {0};
    REQUIRE(bx_producer_new(itest_env("BX_KAFKA_BROKERS", ""), NULL, &f.producer, &err) == BX_OK);
    pthread_t producer, simt;
    REQUIRE(pthread_create(&producer, NULL, flow_main, &f) == 0);
    REQUIRE(pthread_create(&simt, NULL, sim_main, &sim) == 0);

    enum { BROKER, REDIS, FAULTS };
    const char *fault_name[FAULTS] = {"kafka broker 2 killed", "redis master killed"};
    long long fault_at[FAULTS] = {0}, mark[FAULTS] = {0}, resumed[FAULTS] = {-1, -1};
    bool done[FAULTS] = {false, false};
    restart broker_back = {0}, redis_back = {0};
    bool broker_back_started = false, redis_back_started = false;
    int killed_master = 0;
    long long start = now_ms();
    for (;;) {
        long long t = now_ms() - start;
        if (!done[BROKER] && t >= BROKER_KILL_MS) {
            pid_t pid = pid_in("kafka2");
            REQUIRE(pid > 0);
            REQUIRE(kill(pid, SIGKILL) == 0);
            fault_at[BROKER] = now_ms();
            mark[BROKER] = atomic_load(&f.produced);
            done[BROKER] = true;
        }
        if (done[BROKER] && !broker_back_started && t >= BROKER_BACK_MS) {
            restart_start(&broker_back);
            broker_back_started = true;
        }
        if (!done[REDIS] && t >= REDIS_KILL_MS && broker_back_started &&
            atomic_load(&broker_back.rc) >= 0) {
            killed_master = redis_master();
            REQUIRE(killed_master > 0);
            char name[16];
            snprintf(name, sizeof(name), "redis%d", killed_master);
            pid_t pid = pid_in(name);
            REQUIRE(pid > 0);
            REQUIRE(kill(pid, SIGKILL) == 0);
            fault_at[REDIS] = now_ms();
            mark[REDIS] = atomic_load(&f.produced);
            done[REDIS] = true;
        }
        if (done[REDIS] && !redis_back_started && now_ms() - fault_at[REDIS] >= 25000) {
            restart_start(&redis_back);
            redis_back_started = true;
        }
        long long stored = steady_stored();
        for (int k = 0; k < FAULTS; k++)
            if (done[k] && resumed[k] < 0 && stored >= mark[k])
                resumed[k] = now_ms() - fault_at[k];
        for (int k = 0; k < FAULTS; k++)
            if (done[k] && resumed[k] < 0 && now_ms() - fault_at[k] > 4 * RESUME_MAX_MS)
                resumed[k] = 4 * RESUME_MAX_MS; /* give up waiting: the check below fails */
        bool sim_done = atomic_load(&sim.rc) >= 0;
        if (t >= FLOW_MIN_MS && sim_done && redis_back_started && resumed[BROKER] >= 0 &&
            resumed[REDIS] >= 0 && atomic_load(&redis_back.rc) >= 0)
            break;
        if (t > 15 * 60 * 1000) {
            fprintf(stderr, "gave up after 15 minutes (the county's days: %s)\n",
                    sim_done ? "done" : "still running");
            break;
        }
        usleep(200 * 1000);
    }
    atomic_store(&f.stop, true);
    pthread_join(producer, NULL);
    REQUIRE(bx_producer_flush(f.producer, 30000) == BX_OK);
    bx_producer_free(f.producer, 5000);
    long long produced = atomic_load(&f.produced), stored = 0;
    for (int i = 0; i < 600 && (stored = steady_stored()) < produced; i++)
        usleep(100 * 1000);
    if (atomic_load(&sim.rc) >= 0)
        pthread_join(simt, NULL);
    if (broker_back_started)
        pthread_join(broker_back.thread, NULL);
    if (redis_back_started)
        pthread_join(redis_back.thread, NULL);

    /* SMS: every one asked for settles (sent, or given up), none twice in the file. */
    long long pending = -1;
    for (int i = 0; i < 600; i++) {
        pending = count_of("SELECT count(*) FROM notify.notification WHERE channel = 'sms' AND "
                           "state IN ('queued', 'sending', 'unknown')");
        if (pending == 0)
            break;
        usleep(100 * 1000);
    }
    long long sent = count_of("SELECT count(*) FROM notify.notification WHERE channel = 'sms' "
                              "AND state IN ('sent', 'delivered')");
    long long dupes = 0, lines = sms_lines(sms_file, &dupes);

    /* CPU per record of each stage: every record the county's days and the steady flow put on
     * bx.attendance.v1 (the brokers and Redis nodes restarted during the run lost their first
     * lives' CPU: those are lower bounds). */
    long long county_records = 0; /* the summary's line: "records accepted" and the count */
    for (const char *acc = sim.out.data; acc && (acc = strstr(acc, "records accepted")) != NULL;) {
        acc += strlen("records accepted");
        if (*acc == ' ' && acc[strspn(acc, " ")] >= '0' && acc[strspn(acc, " ")] <= '9')
            county_records = strtoll(acc, NULL, 10);
    }
    double records = (double)(county_records + produced);
    double cpu_ingest = cpu_seconds(ingest), cpu_score = 0, cpu_esc = 0, cpu_notify = 0;
    for (int r = 0; r < 2; r++) {
        cpu_score += cpu_seconds(svc[r]) + cpu_seconds(steady[r]);
        cpu_esc += cpu_seconds(svc[2 + r]);
        cpu_notify += cpu_seconds(svc[4 + r]);
    }
    double cpu_kafka = cluster_cpu_since("kafka", 3, &kafka_cpu0),
           cpu_redis = cluster_cpu_since("redis", 6, &redis_cpu0);
    fprintf(stderr,
            "CPU microseconds per record (%lld county records + %lld steady facts; bx-ingest: per "
            "county record): bx-ingest %.0f, "
            "bx-score %.0f, bx-escalate %.0f, bx-notify %.0f (both replicas of each), Kafka %.0f "
            "(3 brokers), Redis %.0f (6 nodes)\n",
            county_records, produced, cpu_ingest * 1e6 / records, cpu_score * 1e6 / records,
            cpu_esc * 1e6 / records, cpu_notify * 1e6 / records, cpu_kafka * 1e6 / records,
            cpu_redis * 1e6 / records);
    for (int i = 0; i < 6; i++)
        itest_stop(svc[i]);
    itest_stop(steady[0]);
    itest_stop(steady[1]);
    itest_stop(ingest);

    for (int k = 0; k < FAULTS; k++)
        fprintf(stderr, "%s: the %lld facts acknowledged before it stored after %lld ms\n",
                fault_name[k], mark[k], resumed[k]);
    fprintf(stderr,
            "restarts: broker %lld ms (exit %d), redis node %d %lld ms (exit %d)\n"
            "steady facts: %lld acknowledged, %lld stored; SMS: %lld sent, %lld lines, %lld "
            "twice, %lld unsettled\n",
            broker_back.took_ms, atomic_load(&broker_back.rc), killed_master, redis_back.took_ms,
            atomic_load(&redis_back.rc), produced, stored, sent, lines, dupes, pending);
    const char *summary = sim.out.data ? sim.out.data : "";
    if (atomic_load(&sim.rc) != 0)
        fprintf(stderr, "bx-sim run (%d): %s\n", atomic_load(&sim.rc), summary);
    CHECK_INT(atomic_load(&sim.rc), 0);
    CHECK(!atomic_load(&f.failed));
    CHECK(produced > RATE * FLOW_MIN_MS / 1000 * 8 / 10);
    /* nothing lost, nothing twice */
    CHECK_INT(stored, produced);
    CHECK_INT(dupes, 0);
    CHECK_INT(pending, 0);
    CHECK_INT(lines, sent);
    CHECK(sent > 0);
    char line[160];
    snprintf(line, sizeof(line), "%-56s %8d\n", "records rejected", 0);
    CHECK_CONTAINS(summary, line);
    CHECK_CONTAINS(summary, "records accepted");
    /* resumed within 30 s of each fault */
    for (int k = 0; k < FAULTS; k++) {
        CHECK(resumed[k] >= 0);
        CHECK(resumed[k] < RESUME_MAX_MS);
    }
    CHECK_INT(atomic_load(&broker_back.rc), 0);
    CHECK_INT(atomic_load(&redis_back.rc), 0);

    /* bxctl rebuild against the cluster: a school's facts, as PostgreSQL holds them. */
    bx_buf_reset(&out);
    run_ok((const char *[]){bxctl(), "rebuild", "--school", first_school, NULL}, &out);
    char want[200];
    char *n =
        itest_sql_rows_params(db_url, "SELECT count(*) FROM attendance.fact WHERE school_id = $1",
                              1, (const char *[]){first_school});
    REQUIRE(n != NULL);
    n[strcspn(n, "\n")] = '\0';
    snprintf(want, sizeof(want), "students, %s facts", n);
    CHECK_CONTAINS(out.data, want);
    CHECK(strtoll(n, NULL, 10) > 0);
    free(n);
    bx_buf_free(&out);
    bx_buf_free(&sim.out);
    free(dir);
    free(clock);
}
