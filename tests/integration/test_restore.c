/* The restore drill (issue 14, operations): a small simulated county driven for a few school
 * days through bx-ingest, bx-score and bx-escalate in a database of its own; then `bxctl backup`,
 * the database dropped, created empty again and `bxctl restore`d, Redis emptied and `bxctl
 * rebuild` run: the case tables (cases.case, cases.event, cases.task) and `bxctl report` are the
 * same as before, a restore into a database with tables is refused, and one more school day flows
 * through the restored pipeline. */
#include "bx_redis.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_test.h"
#include "sim.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define KEY       "itest-restore-pseudonym-key"
#define REDIS_DB  "14"
#define TOWNSHIPS 2
#define SCHOOLS   2
#define STUDENTS  200
#define DAYS      3 /* before the backup; one more after the restore */

static char env_url[600], env_clock[600], env_redis[300];

static const char *holidays(void)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv",
             itest_env("BX_SOURCE_DIR", "."));
    return path;
}

static const char *id_prefix(void)
{
    static char prefix[9];
    if (prefix[0] == '\0') {
        unsigned n = (unsigned)getpid();
        int i = 0;
        prefix[i++] = 'r';
        while (n && i < 8) {
            prefix[i++] = (char)('a' + n % 26);
            n /= 26;
        }
    }
    return prefix;
}

static int run(const char *const *argv, bx_buf *out)
{
    const char *env[] = {env_url, env_clock, env_redis, NULL};
    return itest_run(argv, env, out);
}

static void run_ok(const char *const *argv, bx_buf *out)
{
    bx_buf own;
    bx_buf_init(&own, 1 << 24);
    bx_buf *b = out ? out : &own;
    int rc = run(argv, b);
    if (rc != 0)
        fprintf(stderr, "%s %s failed (%d): %s\n", argv[0], argv[1], rc, b->data ? b->data : "");
    bx_buf_free(&own);
    REQUIRE(rc == 0);
}

static void flush_redis(const char *db)
{
    const char *url = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    char host[128] = "127.0.0.1";
    int port = 63799;
    if (sscanf(url, "redis://%127[^:/]:%d", host, &port) < 1)
        REQUIRE(!"BX_REDIS_URL");
    redisContext *r = redisConnect(host, port);
    REQUIRE(r != NULL && !r->err);
    REQUIRE(bx_redis_auth(r, &(bx_error){0}) == BX_OK); /* the administrator of $BX_RUN_DIR/env */
    redisReply *rep = redisCommand(r, "SELECT %s", db);
    REQUIRE(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    rep = redisCommand(r, "FLUSHDB");
    REQUIRE(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redisFree(r);
}

/* ---- bx-console for the township officers' sign-offs (as tests/integration/test_sim.c) ---- */

static long long count_of(const char *url, const char *sql)
{
    char *rows = itest_sql_rows(url, sql);
    long long n = rows ? strtoll(rows, NULL, 10) : -1;
    free(rows);
    return n;
}

static sim_county *county_of(uint64_t seed)
{
    sim_county *c = NULL;
    bx_error err = {0};
    sim_size z = {TOWNSHIPS, SCHOOLS, STUDENTS, id_prefix()};
    REQUIRE(sim_county_new(seed, z, holidays(), &c, &err) == BX_OK);
    return c;
}

/* A seed and a first day whose DAYS + 1 school days hold a child who stops coming early enough
 * for a case to open, and no return (a return is signed in bx-console, which this drill leaves
 * out). */
static uint64_t pick_seed(bx_date *first)
{
    for (uint64_t seed = 1; seed < 3000; seed++) {
        sim_county *c = county_of(seed);
        for (int i = 0; i < c->nstudents; i++) {
            const sim_student *s = &c->students[i];
            if (s->fate != SIM_DRIFTS)
                continue;
            bx_date from = bx_calendar_add_school_days(c->cal, s->drift_start, -1);
            bx_date to = bx_calendar_add_school_days(c->cal, from, DAYS + 1);
            if (from == BX_DATE_NONE || to == BX_DATE_NONE || from < c->term_first)
                continue;
            bool returns = false;
            for (int j = 0; j < c->nstudents; j++) {
                const sim_student *b = &c->students[j];
                returns = returns || (b->fate == SIM_DRIFTS_BACK && b->return_date + 30 >= from &&
                                      b->drift_start <= to + 7);
            }
            if (!returns) {
                *first = from;
                sim_county_free(c);
                return seed;
            }
        }
        sim_county_free(c);
    }
    REQUIRE(!"no seed");
    return 0;
}

/* What must survive the restore: the case tables row by row and the county's report. */
static char *snapshot(const char *url, const char *county)
{
    bx_buf b;
    bx_buf_init(&b, 1 << 24);
    static const char *const tables[] = {
        "SELECT t::text FROM cases.\"case\" t ORDER BY 1",
        "SELECT t::text FROM cases.event t ORDER BY 1",
        "SELECT t::text FROM cases.task t ORDER BY 1",
    };
    for (size_t i = 0; i < 3; i++) {
        char *rows = itest_sql_rows(url, tables[i]);
        REQUIRE(bx_buf_printf(&b, "== %s\n%s\n", tables[i], rows ? rows : "") == BX_OK);
        free(rows);
    }
    const char *rep[] = {itest_env("BXCTL_BIN", BXCTL_BIN),
                         "report",
                         "--term",
                         "2026-autumn",
                         "--county",
                         county,
                         "--level",
                         "school",
                         "--format",
                         "csv",
                         NULL};
    REQUIRE(bx_buf_puts(&b, "== bxctl report\n") == BX_OK);
    run_ok(rep, &b);
    return bx_buf_steal(&b);
}

typedef struct stack {
    pid_t ingest, score, esc;
    int port;
} stack;

static char e_score[200], e_esc[200], t_att[200], t_cases[200], t_risk[200];

static void stack_start(stack *s)
{
    const char *env_ingest[] = {env_url, "BX_REGISTRY_REFRESH_MS=200", NULL};
    const char *env_score[] = {env_url,
                               env_redis,
                               e_score,
                               t_att,
                               t_risk,
                               "BX_PSEUDONYM_KEY=" KEY,
                               "BX_REGISTRY_REFRESH_MS=300",
                               NULL};
    const char *env_esc[] = {
        env_url, e_esc, t_cases, "BX_PSEUDONYM_KEY=" KEY, "BX_REGISTRY_REFRESH_MS=200", NULL};
    int mport = 0;
    s->ingest = itest_ingest_start(env_clock + 14, env_ingest, &s->port);
    s->score = itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), env_clock + 14,
                                   env_score, &mport);
    s->esc = itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), env_clock + 14,
                                 env_esc, &mport);
}

static void stack_stop(stack *s)
{
    itest_stop(s->esc);
    itest_stop(s->score);
    itest_stop(s->ingest);
}

BX_TEST(restored_database_gives_the_same_cases_and_report_and_goes_on)
{
    bx_date first = BX_DATE_NONE;
    uint64_t seed = pick_seed(&first);
    char seed_text[24], from[11], townships[8], schools[8], students[8];
    snprintf(seed_text, sizeof(seed_text), "%llu", (unsigned long long)seed);
    snprintf(townships, sizeof(townships), "%d", TOWNSHIPS);
    snprintf(schools, sizeof(schools), "%d", SCHOOLS);
    snprintf(students, sizeof(students), "%d", STUDENTS);
    bx_date_format(first, from);
    sim_county *c = county_of(seed);

    const char *url = itest_own_database("restore");
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", url);
    char *clock = itest_clock_file("2026-09-01 07:00");
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", clock);
    setenv("BX_CLOCK", env_clock + 9, 1);
    free(clock);
    const char *redis = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    const char *db_part = strchr(redis + strlen("redis://"), '/');
    int base = db_part ? (int)(db_part - redis) : (int)strlen(redis);
    snprintf(env_redis, sizeof(env_redis), "BX_REDIS_URL=%.*s/%s", base, redis, REDIS_DB);
    flush_redis(REDIS_DB);
    char *dir = itest_tmpdir("restore");
    const char *gen[] = {itest_env("BX_SIM_BIN", BX_SIM_BIN),
                         "generate",
                         "--out",
                         dir,
                         "--id-prefix",
                         id_prefix(),
                         "--seed",
                         seed_text,
                         "--townships",
                         townships,
                         "--schools",
                         schools,
                         "--students",
                         students,
                         NULL};
    run_ok(gen, NULL);
    const char *hol[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "holidays", holidays(), NULL};
    run_ok(hol, NULL);
    const char *imp[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "--dir", dir, NULL};
    run_ok(imp, NULL);
    char keys[1100];
    snprintf(keys, sizeof(keys), "%s/keys", dir);
    FILE *kf = fopen(keys, "w");
    REQUIRE(kf != NULL);
    for (int i = 0; i < c->nschools; i++) {
        const char *kc[] = {
            itest_env("BXCTL_BIN", BXCTL_BIN), "key", "create", c->schools[i].id, "itest", NULL};
        bx_buf out;
        bx_buf_init(&out, 0);
        run_ok(kc, &out);
        const char *tok = strstr(out.data, "bxk_");
        REQUIRE(tok != NULL);
        fprintf(kf, "%s %.*s\n", c->schools[i].id, (int)strcspn(tok, "\r\n "), tok);
        bx_buf_free(&out);
    }
    fclose(kf);

    /* topics of the analysts' streams of this run, groups at the shared topics' ends */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char topics[3][96], g_score[96], g_esc[96], spec_score[160], spec_esc[160];
    static const char *const kinds[] = {"attendance", "cases", "risk"};
    for (int i = 0; i < 3; i++)
        snprintf(topics[i], sizeof(topics[i]), "bx.analytics.%s.v1.itest-restore-%ld%06ld",
                 kinds[i], (long)tv.tv_sec, (long)tv.tv_usec);
    const char *const tl[] = {topics[0], topics[1], topics[2]};
    const int partitions[] = {1, 1, 1};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), tl, partitions,
                                   3, 15000, &err) == BX_OK);
    snprintf(g_score, sizeof(g_score), "bx-score-itest-restore-%ld%06ld", (long)tv.tv_sec,
             (long)tv.tv_usec);
    snprintf(g_esc, sizeof(g_esc), "bx-escalate-itest-restore-%ld%06ld", (long)tv.tv_sec,
             (long)tv.tv_usec);
    const char *at1[] = {itest_env("BX_SIM_BIN", BX_SIM_BIN),
                         "group-at-end",
                         "--group",
                         g_score,
                         "--topics",
                         "bx.attendance.v1",
                         NULL};
    const char *at2[] = {itest_env("BX_SIM_BIN", BX_SIM_BIN),
                         "group-at-end",
                         "--group",
                         g_esc,
                         "--topics",
                         "bx.risk.v1,bx.actions.v1",
                         NULL};
    run_ok(at1, NULL);
    run_ok(at2, NULL);
    snprintf(e_score, sizeof(e_score), "BX_CONSUMER_GROUP=%s", g_score);
    snprintf(e_esc, sizeof(e_esc), "BX_CONSUMER_GROUP=%s", g_esc);
    snprintf(spec_score, sizeof(spec_score), "%s:bx.attendance.v1", g_score);
    snprintf(spec_esc, sizeof(spec_esc), "%s:bx.risk.v1,bx.actions.v1", g_esc);
    snprintf(t_att, sizeof(t_att), "BX_ANALYTICS_ATTENDANCE_TOPIC=%s", topics[0]);
    snprintf(t_cases, sizeof(t_cases), "BX_ANALYTICS_CASES_TOPIC=%s", topics[1]);
    snprintf(t_risk, sizeof(t_risk), "BX_ANALYTICS_RISK_TOPIC=%s", topics[2]);

    /* the county's first DAYS school days */
    stack s;
    stack_start(&s);
    char api[64], state[1100], days_text[8];
    snprintf(api, sizeof(api), "http://127.0.0.1:%d", s.port);
    snprintf(state, sizeof(state), "%s/state", dir);
    REQUIRE(mkdir(state, 0755) == 0);
    snprintf(days_text, sizeof(days_text), "%d", DAYS);
#define SIM_RUN(from_text, days)                                                                   \
    (const char *[]){itest_env("BX_SIM_BIN", BX_SIM_BIN),                                          \
                     "run",                                                                        \
                     "--state",                                                                    \
                     state,                                                                        \
                     "--api",                                                                      \
                     api,                                                                          \
                     "--keys",                                                                     \
                     keys,                                                                         \
                     "--from",                                                                     \
                     from_text,                                                                    \
                     "--days",                                                                     \
                     days,                                                                         \
                     "--group",                                                                    \
                     spec_score,                                                                   \
                     "--group",                                                                    \
                     spec_esc,                                                                     \
                     "--quiet",                                                                    \
                     "--no-summary",                                                               \
                     "--seed",                                                                     \
                     seed_text,                                                                    \
                     "--townships",                                                                \
                     townships,                                                                    \
                     "--schools",                                                                  \
                     schools,                                                                      \
                     "--students",                                                                 \
                     students,                                                                     \
                     "--id-prefix",                                                                \
                     id_prefix(),                                                                  \
                     NULL}
    run_ok(SIM_RUN(from, days_text), NULL);
    stack_stop(&s);
    long long cases = count_of(url, "SELECT count(*) FROM cases.\"case\"");
    fprintf(stderr, "%lld cases, %lld tasks, %lld events before the backup\n", cases,
            count_of(url, "SELECT count(*) FROM cases.task"),
            count_of(url, "SELECT count(*) FROM cases.event"));
    CHECK(cases > 0);
    char *before = snapshot(url, c->code);

    /* backup, the database dropped and made again empty, restore */
    char backup[1200];
    snprintf(backup, sizeof(backup), "%s/baoxue.backup", dir);
    const char *bk[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "backup", backup, NULL};
    run_ok(bk, NULL);
    struct stat st;
    REQUIRE(stat(backup, &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    const char *rs[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "restore", backup, NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    CHECK_INT(run(rs, &out), 1); /* the database still has its tables */
    CHECK(out.data && strstr(out.data, "is not empty: it has") != NULL);
    bx_buf_free(&out);
    char admin[700], name[200];
    const char *slash = strrchr(url, '/');
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(slash + 1, "?"), slash + 1);
    snprintf(admin, sizeof(admin), "%.*s/postgres", (int)(slash - url), url);
    char sql[300];
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", name);
    itest_sql_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    itest_sql_exec(admin, sql);
    bx_buf_init(&out, 0);
    run_ok(rs, &out);
    fprintf(stderr, "%s", out.data);
    bx_buf_free(&out);

    /* Redis emptied and rebuilt from the restored database */
    flush_redis(REDIS_DB);
    const char *rb[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "rebuild", NULL};
    run_ok(rb, NULL);
    char *after = snapshot(url, c->code);
    CHECK(strcmp(before, after) == 0);
    if (strcmp(before, after) != 0)
        fprintf(stderr, "before:\n%s\nafter:\n%s\n", before, after);
    free(before);
    free(after);

    /* the pipeline goes on: one more school day */
    bx_date next = bx_calendar_add_school_days(c->cal, first, DAYS);
    char next_text[11];
    bx_date_format(next, next_text);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM attendance.class_report WHERE day = '%s'",
             next_text);
    CHECK_INT(count_of(url, sql), 0);
    stack_start(&s);
    snprintf(api, sizeof(api), "http://127.0.0.1:%d", s.port);
    run_ok(SIM_RUN(next_text, "1"), NULL);
    stack_stop(&s);
    long long reports = count_of(url, sql);
    fprintf(stderr, "%lld class roll calls stored for %s after the restore\n", reports, next_text);
    CHECK(reports > 0);
    sim_county_free(c);
    free(dir);
}
