/* bx-sim against the real pipeline: the generated registry imports cleanly with bxctl, and a small
 * county driven for a few school days through bx-ingest, bx-score and bx-escalate gives a summary
 * whose counts match what the generator planned and the ground truth, in a database of its own. */
#include "bx_redis.h"
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_test.h"
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
static const char *db_url;

static const char *holidays(void)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv",
             itest_env("BX_SOURCE_DIR", "."));
    return path;
}

/* Ids of this process's own ("t" and the pid in letters), so another county simulated at the
 * same time on the shared topics (the main job, another test) never shares a student id. */
static const char *id_prefix(void)
{
    static char prefix[9];
    if (prefix[0] == '\0') {
        unsigned n = (unsigned)getpid();
        int i = 0;
        prefix[i++] = 't';
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
    const char *redis = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    const char *db_part = strchr(redis + strlen("redis://"), '/');
    int base = db_part ? (int)(db_part - redis) : (int)strlen(redis);
    snprintf(env_redis, sizeof(env_redis), "BX_REDIS_URL=%.*s/" REDIS_DB, base, redis);
    free(clock);
    *dir = itest_tmpdir(tag);
    const char *gen[20] = {
        itest_env("BX_SIM_BIN", BX_SIM_BIN), "generate", "--out", *dir, "--id-prefix", id_prefix()};
    for (int i = 0; size[i] && i < 12; i++)
        gen[6 + i] = size[i];
    run_ok(gen, NULL);
    const char *hol[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "holidays", holidays(), NULL};
    run_ok(hol, NULL);
}

static sim_county *county_of(uint64_t seed, int townships, int schools, int students)
{
    sim_county *c = NULL;
    bx_error err = {0};
    sim_size z = {townships, schools, students, id_prefix()};
    REQUIRE(sim_county_new(seed, z, holidays(), &c, &err) == BX_OK);
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
    run_ok(imp, &out);
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
    run_ok(imp, &out);
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

static void flush_redis(void)
{
    const char *url = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    char host[128] = "127.0.0.1";
    int port = 63799;
    if (sscanf(url, "redis://%127[^:/]:%d", host, &port) < 1)
        REQUIRE(!"BX_REDIS_URL");
    redisContext *r = redisConnect(host, port);
    REQUIRE(r != NULL && !r->err);
    REQUIRE(bx_redis_auth(r, &(bx_error){0}) == BX_OK); /* the administrator of $BX_RUN_DIR/env */
    redisReply *rep = redisCommand(r, "SELECT " REDIS_DB);
    REQUIRE(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    rep = redisCommand(r, "FLUSHDB");
    REQUIRE(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redisFree(r);
}

/* ---- bx-console for the township officers, as deploy/local/demo.sh starts it ---- */

static size_t on_page(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static size_t on_pre_cookie(char *p, size_t size, size_t n, void *arg)
{
    const char *name = "Set-Cookie: bx_pre=";
    size_t len = size * n;
    if (len > strlen(name) && strncasecmp(p, name, strlen(name)) == 0)
        snprintf(arg, 160, "bx_pre=%.*s", (int)strcspn(p + strlen(name), ";\r\n"),
                 p + strlen(name));
    return len;
}

/* The activation form over HTTPS as a person fills it: its CSRF token and pre-session cookie,
 * then the staff id, the code and the new password twice. */
static void activate_officer(const char *base, const char *ca, const char *staff_id,
                             const char *code, const char *password)
{
    char url[300], cookie[160] = "", form[600];
    snprintf(url, sizeof(url), "%s/activate", base);
    bx_buf page;
    bx_buf_init(&page, 1 << 20);
    CURL *c = curl_easy_init();
    REQUIRE(c != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_page);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &page);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_pre_cookie);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)cookie);
    REQUIRE(curl_easy_perform(c) == CURLE_OK);
    const char *csrf = page.data ? strstr(page.data, "name=\"csrf\" value=\"") : NULL;
    REQUIRE(csrf != NULL && cookie[0]);
    csrf += strlen("name=\"csrf\" value=\"");
    char *csrf_e = curl_easy_escape(c, csrf, (int)strcspn(csrf, "\""));
    snprintf(form, sizeof(form), "csrf=%s&staff_id=%s&code=%s&password=%s&password_again=%s",
             csrf_e, staff_id, code, password, password);
    curl_free(csrf_e);
    bx_buf_reset(&page);
    curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    REQUIRE(curl_easy_perform(c) == CURLE_OK);
    long status = 0;
    char *location = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
    CHECK_INT(status, 303);
    CHECK(location && strstr(location, "/login?activated=1"));
    curl_easy_cleanup(c);
    bx_buf_free(&page);
}

/* bx-console over HTTPS (a certificate made with openssl in dir) on the test's database and
 * clock; every township officer of the county invited with bxctl staff invite (the code shown
 * with --print: this test runs no bx-notify) and activated through the form with a password made
 * here; BX_SIM_CONSOLE, BX_SIM_CONSOLE_CA and BX_SIM_CONSOLE_ACCOUNTS set for bx-sim. */
static pid_t console_start(const char *dir, const sim_county *c)
{
    char cert[1100], key[1100], accounts[1100];
    snprintf(cert, sizeof(cert), "%s/console-cert.pem", dir);
    snprintf(key, sizeof(key), "%s/console-key.pem", dir);
    snprintf(accounts, sizeof(accounts), "%s/console-accounts", dir);
    const char *mk[] = {itest_env("BX_OPENSSL", "/usr/bin/openssl"),
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-days",
                        "30",
                        "-subj",
                        "/CN=127.0.0.1",
                        "-addext",
                        "subjectAltName=IP:127.0.0.1",
                        "-keyout",
                        key,
                        "-out",
                        cert,
                        NULL};
    run_ok(mk, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    char listen[64], tls_cert[1200], tls_key[1200], bin[600], base[64];
    snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(base, sizeof(base), "https://127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(tls_cert, sizeof(tls_cert), "BX_TLS_CERT=%s", cert);
    snprintf(tls_key, sizeof(tls_key), "BX_TLS_KEY=%s", key);
    snprintf(bin, sizeof(bin), "%s/services/bx-console/bx-console",
             itest_env("BX_BUILD_DIR", "build"));
    const char *env[] = {env_url, listen, tls_cert, tls_key, "BX_CONSOLE_THREADS=2", NULL};
    int mport = 0;
    pid_t pid = itest_service_start(itest_env("BX_CONSOLE_BIN", bin), env_clock + 14, env, &mport);
    FILE *f = fopen(accounts, "w");
    REQUIRE(f != NULL);
    REQUIRE(chmod(accounts, 0600) == 0);
    for (int t = 0; t < c->size.townships; t++) {
        char officer[24], password[40], code[16] = "";
        sim_township_officer_id(c, t, officer);
        const char *invite[] = {
            itest_env("BXCTL_BIN", BXCTL_BIN), "staff", "invite", officer, "--print", NULL};
        bx_buf out;
        bx_buf_init(&out, 0);
        run_ok(invite, &out);
        for (const char *p = out.data; p && *p && !code[0]; p += strcspn(p, "\n") + 1) {
            if (strspn(p, "0123456789") == 8 && (p[8] == '\n' || p[8] == '\0'))
                snprintf(code, sizeof(code), "%.8s", p);
            if (p[strcspn(p, "\n")] == '\0')
                break;
        }
        bx_buf_free(&out);
        REQUIRE(code[0]);
        unsigned char bytes[12];
        FILE *r = fopen("/dev/urandom", "r");
        REQUIRE(r != NULL && fread(bytes, 1, sizeof(bytes), r) == sizeof(bytes));
        fclose(r);
        for (size_t i = 0; i < sizeof(bytes); i++)
            snprintf(password + 2 * i, 3, "%02x", bytes[i]);
        activate_officer(base, cert, officer, code, password);
        fprintf(f, "%s %s\n", officer, password);
    }
    fclose(f);
    setenv("BX_SIM_CONSOLE", base, 1);
    setenv("BX_SIM_CONSOLE_CA", cert, 1);
    setenv("BX_SIM_CONSOLE_ACCOUNTS", accounts, 1);
    return pid;
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
    run_ok(imp, NULL);
    flush_redis();

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
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char g_score[96], g_esc[96], e_score[120], e_esc[120], spec_score[160], spec_esc[160];
    snprintf(g_score, sizeof(g_score), "bx-score-itest-sim-%ld%06ld", (long)tv.tv_sec,
             (long)tv.tv_usec);
    snprintf(g_esc, sizeof(g_esc), "bx-escalate-itest-sim-%ld%06ld", (long)tv.tv_sec,
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
    const char *env_ingest[] = {env_url, "BX_REGISTRY_REFRESH_MS=200", NULL};
    const char *env_score[] = {env_url, env_redis, e_score, NULL};
    const char *env_esc[] = {env_url, e_esc, "BX_REGISTRY_REFRESH_MS=200", NULL};
    int port = 0, mport = 0;
    pid_t ingest = itest_ingest_start(env_clock + 14, env_ingest, &port);
    pid_t score = itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), env_clock + 14,
                                      env_score, &mport);
    pid_t esc = itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), env_clock + 14,
                                    env_esc, &mport);
    pid_t console = console_start(dir, c);
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
                             spec_score,
                             "--group",
                             spec_esc,
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
                             id_prefix(),
                             NULL};
    bx_buf out;
    bx_buf_init(&out, 1 << 22);
    int rc = run(sim_run, &out);
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
                                 id_prefix(),
                                 NULL};
    bx_buf sout;
    bx_buf_init(&sout, 1 << 20);
    CHECK_INT(run(sim_summary, &sout), 0);
    snprintf(line, sizeof(line), "%-56s %8s\n", "bxctl report agrees with the truth", "yes");
    if (sout.data == NULL || strstr(sout.data, line) == NULL)
        fprintf(stderr, "bx-sim summary: %s\n", sout.data ? sout.data : "");
    CHECK_CONTAINS(sout.data, line);
    bx_buf_free(&sout);
    free(dir);
    bx_buf_free(&out);
    sim_county_free(c);
}
