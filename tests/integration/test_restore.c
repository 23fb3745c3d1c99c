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
#include "bx_itest_sim.h"
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
/* The environment of every command the test runs. */
static const char *const run_env[] = {env_url, env_clock, env_redis, NULL};

static sim_county *county_of(uint64_t seed)
{
    sim_county *c = NULL;
    bx_error err = {0};
    sim_size z = {TOWNSHIPS, SCHOOLS, STUDENTS, itest_id_prefix('r')};
    REQUIRE(sim_county_new(seed, z, itest_holidays_csv(), &c, &err) == BX_OK);
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
    itest_run_ok(rep, run_env, &b);
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
    itest_redis_setting(env_redis, sizeof(env_redis), REDIS_DB);
    itest_redis_flush(REDIS_DB);
    char *dir = itest_tmpdir("restore");
    const char *size[] = {"--seed", seed_text,    "--townships", townships, "--schools",
                          schools,  "--students", students,      NULL};
    itest_sim_generate(dir, itest_id_prefix('r'), size, true, run_env);
    char keys[1100];
    itest_sim_keys(dir, c, run_env, keys, sizeof(keys));

    /* topics of the analysts' streams of this run, groups at the shared topics' ends */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char topics[3][96];
    static const char *const kinds[] = {"attendance", "cases", "risk"};
    for (int i = 0; i < 3; i++)
        snprintf(topics[i], sizeof(topics[i]), "bx.analytics.%s.v1.itest-restore-%ld%06ld",
                 kinds[i], (long)tv.tv_sec, (long)tv.tv_usec);
    const char *const tl[] = {topics[0], topics[1], topics[2]};
    const int partitions[] = {1, 1, 1};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), tl, partitions,
                                   3, 15000, &err) == BX_OK);
    itest_sim_groups g;
    itest_sim_groups_at_end("restore", &tv, run_env, &g);
    snprintf(e_score, sizeof(e_score), "%s", g.env_score);
    snprintf(e_esc, sizeof(e_esc), "%s", g.env_escalate);
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
                     g.spec_score,                                                                 \
                     "--group",                                                                    \
                     g.spec_escalate,                                                              \
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
                     itest_id_prefix('r'),                                                         \
                     NULL}
    itest_run_ok(SIM_RUN(from, days_text), run_env, NULL);
    stack_stop(&s);
    long long cases = itest_sql_count(url, "SELECT count(*) FROM cases.\"case\"");
    fprintf(stderr, "%lld cases, %lld tasks, %lld events before the backup\n", cases,
            itest_sql_count(url, "SELECT count(*) FROM cases.task"),
            itest_sql_count(url, "SELECT count(*) FROM cases.event"));
    CHECK(cases > 0);
    char *before = snapshot(url, c->code);

    /* backup, the database dropped and made again empty, restore */
    char backup[1200];
    snprintf(backup, sizeof(backup), "%s/baoxue.backup", dir);
    const char *bk[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "backup", backup, NULL};
    itest_run_ok(bk, run_env, NULL);
    struct stat st;
    REQUIRE(stat(backup, &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    const char *rs[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "restore", backup, NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    CHECK_INT(itest_run(rs, run_env, &out), 1); /* the database still has its tables */
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
    itest_run_ok(rs, run_env, &out);
    fprintf(stderr, "%s", out.data);
    bx_buf_free(&out);

    /* Redis emptied and rebuilt from the restored database */
    itest_redis_flush(REDIS_DB);
    const char *rb[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "rebuild", NULL};
    itest_run_ok(rb, run_env, NULL);
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
    CHECK_INT(itest_sql_count(url, sql), 0);
    stack_start(&s);
    snprintf(api, sizeof(api), "http://127.0.0.1:%d", s.port);
    itest_run_ok(SIM_RUN(next_text, "1"), run_env, NULL);
    stack_stop(&s);
    long long reports = itest_sql_count(url, sql);
    fprintf(stderr, "%lld class roll calls stored for %s after the restore\n", reports, next_text);
    CHECK(reports > 0);
    sim_county_free(c);
    free(dir);
}
