/* bx-sim against the real pipeline: the generated registry imports cleanly with bxctl, and a small
 * county driven for a few school days through bx-ingest, bx-score and bx-escalate gives a summary
 * whose counts match what the generator planned and the ground truth, in a database of its own. */
#include "bx_redis.h"
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_test.h"
#include "bx_itest_sim.h"
#include "sim.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* Redis database of this test (bx-score's keys are student ids, which every run of a seed
 * shares): emptied first. */
#define REDIS_DB "8"

static char env_url[600], env_clock[600], env_redis[300];
/* The environment of every command the test runs. */
static const char *const run_env[] = {env_url, env_clock, env_redis, NULL};
static const char *db_url;

static long long count_of(const char *sql, const char *param)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    PGresult *res = NULL;
    const char *params[] = {param};
    if (bx_pg_query(db, sql, param ? 1 : 0, params, &res, &err) != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(res != NULL);
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(db);
    return n;
}

/* A database, a clock and an empty Redis database of the test's own; the county generated into
 * dir and imported. */
static void setup(const char *tag, const char *const *size, char **dir)
{
    db_url = itest_own_database(tag);
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url);
    char *clock = itest_clock_file("2026-09-01 07:00");
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", clock);
    setenv("BX_CLOCK", env_clock + 9, 1);
    itest_redis_setting(env_redis, sizeof(env_redis), REDIS_DB);
    free(clock);
    *dir = itest_tmpdir(tag);
    itest_sim_generate(*dir, itest_id_prefix('t'), size, false, run_env);
}

static sim_county *county_of(uint64_t seed, int townships, int schools, int students)
{
    sim_county *c = NULL;
    bx_error err = {0};
    sim_size z = {townships, schools, students, itest_id_prefix('t')};
    REQUIRE(sim_county_new(seed, z, itest_holidays_csv(), &c, &err) == BX_OK);
    return c;
}

BX_TEST(generated_registry_imports_cleanly)
{
    const char *const size[] = {"--seed", "3",          "--townships", "2", "--schools",
                                "4",      "--students", "900",         NULL};
    char *dir = NULL;
    setup("simimport", size, &dir);
    const char *imp[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "--dir", dir, NULL};
    bx_buf out;
    bx_buf_init(&out, 1 << 20);
    itest_run_ok(imp, run_env, &out);
    CHECK(strstr(out.data, "error") == NULL);
    sim_county *c = county_of(3, 2, 4, 900);
    char want[64];
    snprintf(want, sizeof(want), "%d students imported", c->nstudents);
    CHECK_CONTAINS(out.data, want);
    snprintf(want, sizeof(want), "%d classes imported", c->nclasses);
    CHECK_CONTAINS(out.data, want);
    CHECK_INT(
        count_of("SELECT count(*) FROM registry.student WHERE school_id LIKE '520121%'", NULL),
        c->nstudents);
    CHECK_INT(count_of("SELECT count(*) FROM registry.school", NULL), 4);
    /* Registry flags arrive as generated. */
    int poor = 0;
    for (int i = 0; i < c->nstudents; i++)
        poor += (c->students[i].flags & SIM_F_REGISTERED_POOR) != 0;
    CHECK_INT(count_of("SELECT count(*) FROM registry.student_private WHERE 'registered_poor' = "
                       "ANY(flags)",
                       NULL),
              poor);
    /* A second import of the same files changes nothing and still succeeds. */
    bx_buf_reset(&out);
    itest_run_ok(imp, run_env, &out);
    CHECK_INT(count_of("SELECT count(*) FROM registry.student", NULL), c->nstudents);
    sim_county_free(c);
    bx_buf_free(&out);
    free(dir);
}

/* The first seed whose small county has a child who drifts away for good, away at least
 * `away` school days before the term ends. */
static uint64_t seed_with_drifter(int students, int away, int *drifter)
{
    for (uint64_t seed = 1; seed < 5000; seed++) {
        sim_county *c = county_of(seed, 1, 2, students);
        for (int i = 0; i < c->nstudents; i++)
            if (c->students[i].fate == SIM_DRIFTS &&
                bx_calendar_school_days_between(c->cal, c->students[i].drift_start, c->term_last) >
                    away + 2) {
                *drifter = i;
                sim_county_free(c);
                return seed;
            }
        sim_county_free(c);
    }
    REQUIRE(!"a seed with a drifter");
    return 0;
}

BX_TEST(small_county_through_the_pipeline_matches_the_truth)
{
    const int students = 300, days = 9;
    int drifter = -1;
    uint64_t seed = seed_with_drifter(students, days, &drifter);
    char seed_text[24], from[11], days_text[8];
    snprintf(seed_text, sizeof(seed_text), "%llu", (unsigned long long)seed);
    snprintf(days_text, sizeof(days_text), "%d", days);
    sim_county *c = county_of(seed, 1, 2, students);
    const sim_student *st = &c->students[drifter];
    /* From two school days before the child stops coming. */
    bx_date first = bx_calendar_add_school_days(c->cal, st->drift_start, -2);
    bx_date_format(first, from);
    const char *const size[] = {"--seed", seed_text,    "--townships", "1", "--schools",
                                "2",      "--students", "300",         NULL};
    char *dir = NULL;
    setup("simrun", size, &dir);
    const char *imp[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "--dir", dir, NULL};
    itest_run_ok(imp, run_env, NULL);
    itest_redis_flush(REDIS_DB);

    /* What the generator plans for those days, replayed here. */
    sim_world *w = NULL;
    REQUIRE(sim_world_new(c, &w) == BX_OK);
    long long accepted = 0, drifter_absences = 0;
    bx_date last = first;
    bx_date d = first;
    for (int n = 0; n < days; n++, d = bx_calendar_add_school_days(c->cal, d, 1)) {
        sim_day_plan p;
        REQUIRE(sim_plan_day(c, w, d, &p) == BX_OK);
        for (int j = 0; j < p.nrollcalls; j++) {
            accepted += c->classes[p.rollcalls[j].klass].nstudents + 1;
            for (int k = 0; k < p.rollcalls[j].nabsent; k++)
                drifter_absences += p.rollcalls[j].absent[k] == drifter;
        }
        accepted += p.nleaves + p.nactions;
        sim_day_plan_free(&p);
        last = d;
    }
    sim_world_free(w);
    int away = bx_calendar_school_days_between(c->cal, st->drift_start, last);

    /* Keys, consumer groups at the topics' ends, the services. */
    char keys[1024];
    itest_sim_keys(dir, c, run_env, keys, sizeof(keys));
    struct timeval tv;
    gettimeofday(&tv, NULL);
    itest_sim_groups g;
    itest_sim_groups_at_end("sim", &tv, run_env, &g);
    const char *env_ingest[] = {env_url, "BX_REGISTRY_REFRESH_MS=200", NULL};
    const char *env_score[] = {env_url, env_redis, g.env_score, NULL};
    const char *env_esc[] = {env_url, g.env_escalate, "BX_REGISTRY_REFRESH_MS=200", NULL};
    int port = 0, mport = 0;
    pid_t ingest = itest_ingest_start(env_clock + 14, env_ingest, &port);
    pid_t score = itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), env_clock + 14,
                                      env_score, &mport);
    pid_t esc = itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), env_clock + 14,
                                    env_esc, &mport);
    pid_t console = itest_sim_console_start(dir, c, run_env);
    char api[64], state[1024];
    snprintf(api, sizeof(api), "http://127.0.0.1:%d", port);
    snprintf(state, sizeof(state), "%s/state", dir);
    REQUIRE(mkdir(state, 0755) == 0);
    const char *sim_run[] = {itest_env("BX_SIM_BIN", BX_SIM_BIN),
                             "run",
                             "--state",
                             state,
                             "--api",
                             api,
                             "--keys",
                             keys,
                             "--from",
                             from,
                             "--days",
                             days_text,
                             "--group",
                             g.spec_score,
                             "--group",
                             g.spec_escalate,
                             "--quiet",
                             "--seed",
                             seed_text,
                             "--townships",
                             "1",
                             "--schools",
                             "2",
                             "--students",
                             "300",
                             "--id-prefix",
                             itest_id_prefix('t'),
                             NULL};
    bx_buf out;
    bx_buf_init(&out, 1 << 22);
    int rc = itest_run(sim_run, run_env, &out);
    itest_stop(console);
    itest_stop(esc);
    itest_stop(score);
    itest_stop(ingest);
    if (rc != 0)
        fprintf(stderr, "bx-sim run: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    const char *summary = out.data;

    /* What bx-ingest accepted is exactly what was planned, nothing rejected. */
    char line[160];
    snprintf(line, sizeof(line), "%-56s %8lld\n", "records accepted", accepted);
    CHECK_CONTAINS(summary, line);
    snprintf(line, sizeof(line), "%-56s %8d\n", "records rejected", 0);
    CHECK_CONTAINS(summary, line);
    /* bx-score kept every reported day of the drifter's absence. */
    CHECK_INT(count_of("SELECT count(*) FROM attendance.fact WHERE student_id = $1 AND day IS NOT "
                       "NULL AND value = 'a'",
                       st->id),
              drifter_absences);
    CHECK(drifter_absences >= away - 1);
    /* A week away puts the child on the dropout roster; nobody else in these days was away
     * that long unless the truth says so. */
    int truth_roster = 0;
    for (int i = 0; i < c->nstudents; i++) {
        const sim_student *s2 = &c->students[i];
        if (s2->fate == SIM_STAYS || s2->drift_start > last)
            continue;
        bx_date until = s2->fate == SIM_DRIFTS_BACK && s2->return_date <= last
                            ? bx_calendar_add_school_days(c->cal, s2->return_date, -1)
                            : last;
        bx_date since = s2->drift_start < first ? first : s2->drift_start;
        truth_roster += bx_calendar_school_days_between(c->cal, since, until) >= 6;
    }
    CHECK(truth_roster >= 1);
    CHECK_INT(count_of("SELECT count(DISTINCT c.student_id) FROM cases.event e JOIN cases.case c "
                       "ON c.id = e.case_id WHERE e.kind = 'stage_entered' AND "
                       "cases.on_roster(e.stage)",
                       NULL),
              truth_roster);
    CHECK_INT(count_of("SELECT count(*) FROM cases.case WHERE student_id = $1 AND closed_at IS "
                       "NULL AND cases.on_roster(stage)",
                       st->id),
              1);
    /* Every case asked for the guardian's same-day SMS once. */
    CHECK_INT(count_of("SELECT count(*) FROM cases.outbox WHERE topic = 'bx.notify.requests.v1' "
                       "AND payload::jsonb->>'template' = 'absence_same_day'",
                       NULL),
              count_of("SELECT count(*) FROM cases.case", NULL));
    /* The summary tells the truth's numbers and finds the drifter in the high tier. */
    snprintf(line, sizeof(line), "%-56s %8d\n",
             "children entered on the dropout roster by bx-escalate", truth_roster);
    CHECK_CONTAINS(summary, line);
    snprintf(line, sizeof(line), "%-56s %8s\n", "recall of the high tier", "100.0%");
    CHECK_CONTAINS(summary, line);
    /* The reporting rate of bxctl report agrees with the truth of the forgotten roll calls. */
    const char *sim_summary[] = {itest_env("BX_SIM_BIN", BX_SIM_BIN),
                                 "summary",
                                 "--state",
                                 state,
                                 "--bxctl",
                                 itest_env("BXCTL_BIN", BXCTL_BIN),
                                 "--seed",
                                 seed_text,
                                 "--townships",
                                 "1",
                                 "--schools",
                                 "2",
                                 "--students",
                                 "300",
                                 "--id-prefix",
                                 itest_id_prefix('t'),
                                 NULL};
    bx_buf sout;
    bx_buf_init(&sout, 1 << 20);
    CHECK_INT(itest_run(sim_summary, run_env, &sout), 0);
    snprintf(line, sizeof(line), "%-56s %8s\n", "bxctl report agrees with the truth", "yes");
    if (sout.data == NULL || strstr(sout.data, line) == NULL)
        fprintf(stderr, "bx-sim summary: %s\n", sout.data ? sout.data : "");
    CHECK_CONTAINS(sout.data, line);
    bx_buf_free(&sout);
    free(dir);
    bx_buf_free(&out);
    sim_county_free(c);
}
