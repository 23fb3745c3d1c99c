/* The analysts' streams against the real pipeline: a small simulated county driven for some
 * school days through bx-ingest, bx-score, bx-escalate (and bx-console for the township's
 * sign-offs), with the three analytics topics of the test's own. Every message on them matches its
 * schema and holds no registry value (student ids, names, id numbers, phones, staff, case ids,
 * free text); the analysts' example (examples/analyst) reads them and its figures agree with
 * bxctl report and the registry. */
#include "bx_redis.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_schema_check.h"
#include "bx_test.h"
#include "bx_itest_sim.h"
#include "sim.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
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

#define KEY "itest-analytics-pseudonym-key"

/* What one run left behind. */
typedef struct run_result {
    const char *db_url;
    char dir[1024];
    char clock_path[1024];
    char topics[3][96]; /* attendance, cases, risk */
    char county[8];
    bx_date first, last;
} run_result;

static char env_url[600], env_clock[600], env_redis[300];
/* The environment of every command the test runs. */
static const char *const run_env[] = {env_url, env_clock, env_redis, NULL};

/* ---- one simulated run ---- */

#define TOWNSHIPS 2
#define SCHOOLS   2
#define STUDENTS  300
#define DAYS      days_of_run()

/* School days driven: 8, or BX_ANALYTICS_DAYS (a longer term for the README's chart). */
static int days_of_run(void)
{
    const char *v = getenv("BX_ANALYTICS_DAYS");
    long n = v ? strtol(v, NULL, 10) : 0;
    return n >= 8 && n <= 80 ? (int)n : 8;
}

static sim_county *county_of(uint64_t seed)
{
    sim_county *c = NULL;
    bx_error err = {0};
    sim_size z = {TOWNSHIPS, SCHOOLS, STUDENTS, itest_id_prefix('a')};
    REQUIRE(sim_county_new(seed, z, itest_holidays_csv(), &c, &err) == BX_OK);
    return c;
}

/* A seed and a first day whose DAYS school days hold a child who drifts away for good (a week
 * away: the dropout roster) and, if any seed has one, a child who comes back (a return). */
static uint64_t pick_seed(bx_date *first)
{
    uint64_t fallback = 0;
    bx_date fallback_first = BX_DATE_NONE;
    for (uint64_t seed = 1; seed < 3000; seed++) {
        sim_county *c = county_of(seed);
        for (int i = 0; i < c->nstudents; i++) {
            const sim_student *s = &c->students[i];
            if (s->fate != SIM_DRIFTS ||
                bx_calendar_school_days_between(c->cal, s->drift_start, c->term_last) < DAYS)
                continue;
            bx_date from = bx_calendar_add_school_days(c->cal, s->drift_start, -1);
            bx_date to = bx_calendar_add_school_days(c->cal, from, DAYS - 1);
            if (from == BX_DATE_NONE || from < c->term_first)
                continue;
            if (fallback == 0) {
                fallback = seed;
                fallback_first = from;
            }
            for (int j = 0; j < c->nstudents; j++) {
                const sim_student *b = &c->students[j];
                if (b->fate == SIM_DRIFTS_BACK && b->drift_start >= from && b->return_date <= to &&
                    bx_calendar_school_days_between(c->cal, b->return_date, to) >= 2) {
                    *first = from;
                    sim_county_free(c);
                    return seed;
                }
            }
        }
        sim_county_free(c);
        if (seed > 400 && fallback)
            break;
    }
    REQUIRE(fallback != 0);
    *first = fallback_first;
    return fallback;
}

/* Runs the county through the pipeline, then moves the clock past the last day so bx-score
 * publishes its aggregate. */
static void run_county(const char *tag, const char *redis_db, run_result *r,
                       void (*during)(run_result *))
{
    memset(r, 0, sizeof(*r));
    bx_date first = BX_DATE_NONE;
    uint64_t seed = pick_seed(&first);
    char seed_text[24], from[11], days_text[8], townships[8], schools[8], students[8];
    snprintf(seed_text, sizeof(seed_text), "%llu", (unsigned long long)seed);
    snprintf(days_text, sizeof(days_text), "%d", DAYS);
    snprintf(townships, sizeof(townships), "%d", TOWNSHIPS);
    snprintf(schools, sizeof(schools), "%d", SCHOOLS);
    snprintf(students, sizeof(students), "%d", STUDENTS);
    bx_date_format(first, from);
    sim_county *c = county_of(seed);
    snprintf(r->county, sizeof(r->county), "%s", c->code);
    r->first = first;
    r->last = bx_calendar_add_school_days(c->cal, first, DAYS - 1);

    /* database, clock, Redis, the registry */
    r->db_url = itest_own_database(tag);
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", r->db_url);
    char *clock = itest_clock_file("2026-09-01 07:00");
    snprintf(r->clock_path, sizeof(r->clock_path), "%s", clock);
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", clock);
    setenv("BX_CLOCK", env_clock + 9, 1);
    free(clock);
    itest_redis_setting(env_redis, sizeof(env_redis), redis_db);
    itest_redis_flush(redis_db);
    char *dir = itest_tmpdir(tag);
    snprintf(r->dir, sizeof(r->dir), "%s", dir);
    const char *size[] = {"--seed", seed_text,    "--townships", townships, "--schools",
                          schools,  "--students", students,      NULL};
    itest_sim_generate(dir, itest_id_prefix('a'), size, true, run_env);

    /* keys */
    char keys[1100];
    itest_sim_keys(dir, c, run_env, keys, sizeof(keys));

    /* the analytics topics of this run, and groups at the shared topics' ends */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    static const char *const kinds[] = {"attendance", "cases", "risk"};
    for (int i = 0; i < 3; i++)
        snprintf(r->topics[i], sizeof(r->topics[i]), "bx.analytics.%s.v1.itest-%s-%ld%06ld",
                 kinds[i], tag, (long)tv.tv_sec, (long)tv.tv_usec);
    const char *const topics[] = {r->topics[0], r->topics[1], r->topics[2]};
    const int partitions[] = {2, 2, 2};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), topics,
                                   partitions, 3, 15000, &err) == BX_OK);
    itest_sim_groups g;
    itest_sim_groups_at_end(tag, &tv, run_env, &g);
    char t_att[160], t_cases[160], t_risk[160];
    snprintf(t_att, sizeof(t_att), "BX_ANALYTICS_ATTENDANCE_TOPIC=%s", r->topics[0]);
    snprintf(t_cases, sizeof(t_cases), "BX_ANALYTICS_CASES_TOPIC=%s", r->topics[1]);
    snprintf(t_risk, sizeof(t_risk), "BX_ANALYTICS_RISK_TOPIC=%s", r->topics[2]);
    const char *env_ingest[] = {env_url, "BX_REGISTRY_REFRESH_MS=200", NULL};
    const char *env_score[] = {env_url,
                               env_redis,
                               g.env_score,
                               t_att,
                               t_risk,
                               "BX_PSEUDONYM_KEY=" KEY,
                               "BX_REGISTRY_REFRESH_MS=300",
                               NULL};
    const char *env_esc[] = {
        env_url, g.env_escalate, t_cases, "BX_PSEUDONYM_KEY=" KEY, "BX_REGISTRY_REFRESH_MS=200",
        NULL};
    int port = 0, mport = 0;
    pid_t ingest = itest_ingest_start(env_clock + 14, env_ingest, &port);
    pid_t score = itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), env_clock + 14,
                                      env_score, &mport);
    pid_t esc = itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), env_clock + 14,
                                    env_esc, &mport);
    pid_t console = itest_sim_console_start(dir, c, run_env);
    char api[64], state[1100];
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
                             townships,
                             "--schools",
                             schools,
                             "--students",
                             students,
                             "--id-prefix",
                             itest_id_prefix('a'),
                             NULL};
    bx_buf out;
    bx_buf_init(&out, 1 << 22);
    int rc = itest_run(sim_run, run_env, &out);
    if (rc != 0)
        fprintf(stderr, "bx-sim run: %s\n", out.data ? out.data : "");
    bx_buf_free(&out);

    /* The last day ends: bx-score publishes its aggregate at its next tick. */
    if (rc == 0) {
        char next[11], when[32];
        bx_date_format(r->last + 1, next);
        snprintf(when, sizeof(when), "%s 07:00", next);
        const char *set[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "clock", "set", when, NULL};
        itest_run_ok(set, run_env, NULL);
        char last[11], sql[400];
        bx_date_format(r->last, last);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM attendance.analytics_sent WHERE level = 'county' AND "
                 "day = '%s'",
                 last);
        long long done = 0;
        for (int i = 0; i < 600 && done == 0; i++) { /* a minute, for a loaded machine */
            done = itest_sql_count(r->db_url, sql);
            if (done == 0)
                usleep(100 * 1000);
        }
        CHECK_INT(done, 1);
        if (during)
            during(r); /* the services still run */
    }
    itest_stop(console);
    itest_stop(esc);
    itest_stop(score);
    itest_stop(ingest);
    sim_county_free(c);
    free(dir);
    REQUIRE(rc == 0);
}

/* ---- reading a topic ---- */

/* Every message of the three topics, from the beginning to the end; caller frees with
 * cJSON_Delete: an array of {"topic": kind index, "text": payload}. */
static cJSON *read_all(const run_result *r)
{
    char group[160];
    snprintf(group, sizeof(group), "itest-analytics-reader-%d-%ld", (int)getpid(),
             (long)time(NULL));
    const char *const topics[] = {r->topics[0], r->topics[1], r->topics[2], NULL};
    const char *const extra[] = {"auto.offset.reset", "earliest", "enable.partition.eof", "true",
                                 NULL};
    bx_consumer *c = NULL;
    bx_error err = {0};
    REQUIRE(bx_consumer_new(itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), group, topics, extra,
                            &c, &err) == BX_OK);
    cJSON *all = cJSON_CreateArray();
    int eofs = 0, idle = 0;
    /* 3 topics of 2 partitions: done when each said EOF and nothing came for a while */
    while (idle < 30 && !(eofs >= 6 && idle >= 5)) {
        rd_kafka_message_t *m = bx_consumer_poll(c, 200);
        if (m == NULL) {
            idle++;
            continue;
        }
        idle = 0;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eofs++;
        } else if (m->err == 0) {
            const char *t = rd_kafka_topic_name(m->rkt);
            int kind = strcmp(t, r->topics[0]) == 0 ? 0 : strcmp(t, r->topics[1]) == 0 ? 1 : 2;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "topic", kind);
            char *text = strndup(m->payload, m->len);
            cJSON_AddStringToObject(o, "text", text);
            char *key = strndup(m->key ? m->key : "", m->key_len);
            cJSON_AddStringToObject(o, "key", key);
            free(key);
            free(text);
            cJSON_AddItemToArray(all, o);
        }
        rd_kafka_message_destroy(m);
    }
    bx_consumer_free(c);
    return all;
}

/* Deletes the run's own topics (best effort: a topic left behind is only clutter). */
static void delete_topics(const run_result *r)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers",
                          itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    if (bx_kafka_conf_credentials(conf, &(bx_error){0}) != BX_OK) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL)
        return;
    rd_kafka_DeleteTopic_t *del[3];
    for (int i = 0; i < 3; i++)
        del[i] = rd_kafka_DeleteTopic_new(r->topics[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, del, 3, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy_array(del, 3);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/* ---- the tests ---- */

BX_TEST(nothing_identifying_reaches_any_analytics_stream)
{
    run_result r;
    run_county("anapii", "9", &r, NULL);
    cJSON *all = read_all(&r);
    static const char *const schema_names[] = {"bx.analytics.attendance.v1",
                                               "bx.analytics.cases.v1", "bx.analytics.risk.v1"};
    cJSON *schemas[3];
    for (int i = 0; i < 3; i++) {
        schemas[i] = bx_schema_load_topic(schema_names[i]);
        REQUIRE(schemas[i] != NULL);
    }
    int per[3] = {0, 0, 0};
    const cJSON *m;
    cJSON_ArrayForEach(m, all)
    {
        int k = cJSON_GetObjectItem(m, "topic")->valueint;
        const char *text = cJSON_GetObjectItem(m, "text")->valuestring;
        per[k]++;
        char why[400];
        if (!bx_schema_check_text(schemas[k], text, strlen(text), why, sizeof(why)))
            BX_FAIL_AT("%s: %s: %s", schema_names[k], why, text);
    }
    fprintf(stderr, "messages: attendance %d, cases %d, risk %d\n", per[0], per[1], per[2]);
    CHECK(per[0] > 0);
    CHECK(per[1] > 0);
    CHECK(per[2] > 0);
    /* Every value of the registry and the case history that could name a child. */
    static const char *const queries[] = {
        "SELECT id FROM registry.student",
        "SELECT name FROM registry.student_private",
        "SELECT national_id FROM registry.student_private WHERE national_id IS NOT NULL",
        "SELECT to_char(birth_date, 'YYYY-MM-DD') FROM registry.student_private WHERE "
        "birth_date IS NOT NULL AND false", /* dates are public days: not searched */
        "SELECT name FROM registry.guardian",
        "SELECT phone FROM registry.guardian WHERE phone IS NOT NULL",
        "SELECT address FROM registry.guardian WHERE length(address) > 3",
        "SELECT id FROM registry.staff",
        "SELECT name FROM registry.staff",
        "SELECT phone FROM registry.staff WHERE phone IS NOT NULL",
        "SELECT DISTINCT state->>'case_id' FROM cases.case",
        "SELECT event_id FROM cases.event",
        "SELECT DISTINCT reason FROM cases.event WHERE length(reason) > 3",
        "SELECT task_key FROM cases.task",
        "SELECT DISTINCT array_to_string(flags, ',') FROM registry.student_private WHERE "
        "cardinality(flags) > 0",
    };
    long long values = 0, hits = 0;
    for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
        char *rows = itest_sql_rows(r.db_url, queries[q]);
        REQUIRE(rows != NULL);
        for (char *line = strtok(rows, "\n"); line; line = strtok(NULL, "\n")) {
            if (strlen(line) < 2)
                continue;
            values++;
            cJSON_ArrayForEach(m, all)
            {
                const char *text = cJSON_GetObjectItem(m, "text")->valuestring;
                const char *key = cJSON_GetObjectItem(m, "key")->valuestring;
                if (strstr(text, line) || strstr(key, line)) {
                    hits++;
                    BX_FAIL_AT("\"%s\" (%s) found in %s", line, queries[q], text);
                }
            }
        }
        free(rows);
    }
    /* Registry flag names never appear either. */
    static const char *const flags[] = {
        "registered_poor", "minimum_subsistence", "orphan",    "disability",
        "left_behind",     "single_parent",       "migrant",   "learning_difficulty",
        "wavering",        "earlier_dropout",     "monastery", "extreme_poverty"};
    cJSON_ArrayForEach(m, all)
    {
        const char *text = cJSON_GetObjectItem(m, "text")->valuestring;
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
            if (strstr(text, flags[i]))
                BX_FAIL_AT("flag %s in %s", flags[i], text);
    }
    /* Every message bx-escalate queued in this run, whatever its topic, matches its schema. */
    char *outbox = itest_sql_rows(r.db_url, "SELECT topic || '\t' || payload FROM cases.outbox "
                                            "ORDER BY id");
    REQUIRE(outbox != NULL);
    int queued = 0;
    for (char *line = strtok(outbox, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        REQUIRE(tab != NULL);
        *tab = '\0';
        char topic[96];
        /* the run's own analytics topic is the schema's topic and a suffix */
        snprintf(
            topic, sizeof(topic), "%.*s",
            (int)(strstr(line, ".itest-") ? strstr(line, ".itest-") - line : (long)strlen(line)),
            line);
        cJSON *schema = bx_schema_load_topic(topic);
        REQUIRE(schema != NULL);
        char why[400];
        if (!bx_schema_check_text(schema, tab + 1, strlen(tab + 1), why, sizeof(why)))
            BX_FAIL_AT("%s: %s: %s", topic, why, tab + 1);
        cJSON_Delete(schema);
        queued++;
    }
    free(outbox);
    fprintf(stderr, "%d outbox messages of bx-escalate match their schemas\n", queued);
    CHECK(queued > 0);
    fprintf(stderr, "%lld registry values searched in %d messages: %lld found\n", values,
            cJSON_GetArraySize(all), hits);
    CHECK(values > 300);
    CHECK_INT(hits, 0);
    for (int i = 0; i < 3; i++)
        cJSON_Delete(schemas[i]);
    cJSON_Delete(all);
    delete_topics(&r);
}

static cJSON *json_file(const char *path)
{
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    bx_buf b;
    bx_buf_init(&b, 1 << 24);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        REQUIRE(bx_buf_append(&b, chunk, n) == BX_OK);
    fclose(f);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    bx_buf_free(&b);
    REQUIRE(j != NULL);
    return j;
}

static long json_long(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *at = o;
    for (char *tok = strtok(buf, "."); tok && at; tok = strtok(NULL, "."))
        at = cJSON_GetObjectItemCaseSensitive(at, tok);
    if (!cJSON_IsNumber(at))
        BX_FAIL_AT("%s is not a number", path);
    return at ? (long)at->valuedouble : -1;
}

BX_TEST(analyst_example_agrees_with_bxctl_report)
{
    run_result r;
    run_county("anaex", "10", &r, NULL);
    char script[1200], summary[1200], chart[1200], group[160];
    snprintf(script, sizeof(script), "%s/examples/analyst/analyst.py",
             itest_env("BX_SOURCE_DIR", "."));
    snprintf(summary, sizeof(summary), "%s/analyst.json", r.dir);
    snprintf(chart, sizeof(chart), "%s/analyst.png", r.dir);
    snprintf(group, sizeof(group), "analyst.itest%d.example", (int)getpid());
    const char *py[] = {itest_env("BX_PYTHON", "/usr/bin/python3"),
                        script,
                        "--brokers",
                        itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"),
                        "--group",
                        group,
                        "--attendance-topic",
                        r.topics[0],
                        "--cases-topic",
                        r.topics[1],
                        "--risk-topic",
                        r.topics[2],
                        "--idle-exit",
                        "6",
                        "--every",
                        "1000",
                        "--json",
                        summary,
                        "--chart",
                        chart,
                        NULL, /* --config: the analyst principal's settings, when Kafka asks */
                        NULL,
                        NULL};
    /* as the analyst principal of bx-infra (reads bx.analytics.* in groups analyst...) */
    char analyst_conf[600];
    snprintf(analyst_conf, sizeof(analyst_conf), "%s/secrets/kcat-analyst.conf",
             itest_env("BX_RUN_DIR", ".run"));
    if (access(analyst_conf, R_OK) == 0) {
        size_t at = sizeof(py) / sizeof(py[0]) - 3;
        py[at] = "--config";
        py[at + 1] = analyst_conf;
    }
    bx_buf out;
    bx_buf_init(&out, 1 << 20);
    int rc = itest_run(py, run_env, &out);
    fprintf(stderr, "analyst.py:\n%s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    const char *copy = getenv("BX_ANALYST_CHART_OUT");
    if (copy && *copy) {
        const char *cp[] = {"/bin/cp", chart, copy, NULL};
        itest_run_ok(cp, run_env, NULL);
    }
    /* The chart is a PNG of some substance. */
    FILE *f = fopen(chart, "rb");
    REQUIRE(f != NULL);
    unsigned char sig[8] = {0};
    REQUIRE(fread(sig, 1, 8, f) == 8);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0);
    CHECK(size > 20000);

    cJSON *ex = json_file(summary);
    char path[256];
    /* the county's enrolled students, as the registry lists them */
    snprintf(path, sizeof(path), "counties.%s.enrolled", r.county);
    long enrolled = json_long(ex, path);
    CHECK_INT(enrolled,
              itest_sql_count(r.db_url, "SELECT count(*) FROM registry.student WHERE status = "
                                        "'enrolled'"));
    /* every school day of the run has its county aggregate */
    char key[128];
    snprintf(key, sizeof(key), "counties.%s.days", r.county);
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ex, "counties"),
                                         r.county),
        "days");
    char *span = itest_sql_rows(r.db_url, "SELECT min(day), max(day), count(DISTINCT day) FROM "
                                          "attendance.class_report");
    fprintf(stderr, "roll calls: %s", span ? span : "?");
    free(span);
    /* (bx-sim posts a few roll calls before --from: those days are published too) */
    CHECK(cJSON_GetArraySize(days) >= DAYS);
    char first[11], last[11];
    bx_date_format(r.first, first);
    bx_date_format(r.last, last);
    CHECK(cJSON_GetObjectItemCaseSensitive(days, first) != NULL);
    CHECK(cJSON_GetObjectItemCaseSensitive(days, last) != NULL);

    /* bxctl report for the term so far: enrolled now = enrolled - on the roster now, and the
     * children who dropped out = the cases that reached the roster and did not end returned or
     * transferred */
    const char *rep[] = {itest_env("BXCTL_BIN", BXCTL_BIN),
                         "report",
                         "--term",
                         "2026-autumn",
                         "--county",
                         r.county,
                         "--level",
                         "county",
                         "--format",
                         "json",
                         NULL};
    bx_buf rout;
    bx_buf_init(&rout, 1 << 20);
    REQUIRE(itest_run(rep, run_env, &rout) == 0);
    fprintf(stderr, "bxctl report: %s\n", rout.data);
    const char *start = strchr(rout.data, '[') ? strchr(rout.data, '[') : rout.data;
    cJSON *report = cJSON_Parse(start);
    REQUIRE(report != NULL);
    const cJSON *row = cJSON_IsArray(report)
                           ? cJSON_GetArrayItem(report, 0)
                           : cJSON_GetArrayItem(cJSON_GetObjectItem(report, "rows"), 0);
    REQUIRE(row != NULL);
    snprintf(path, sizeof(path), "counties.%s.on_roster_now", r.county);
    long roster_now = json_long(ex, path);
    snprintf(path, sizeof(path), "counties.%s.entered_roster", r.county);
    long entered = json_long(ex, path);
    CHECK(entered >= 1);
    CHECK_INT(json_long(row, "all.enrolled_now"), enrolled - roster_now);
    CHECK_INT(json_long(row, "all.dropped_out"), entered);
    /* open cases by stage: as the case table says */
    const cJSON *by_stage = cJSON_GetObjectItemCaseSensitive(ex, "open_cases_by_stage");
    char *rows = itest_sql_rows(r.db_url, "SELECT coalesce(stage, '(none)') || '|' || count(*) "
                                          "FROM cases.case WHERE closed_at IS NULL GROUP BY "
                                          "coalesce(stage, '(none)') ORDER BY 1");
    REQUIRE(rows != NULL);
    int stages = 0;
    for (char *line = strtok(rows, "\n"); line; line = strtok(NULL, "\n")) {
        char *bar = strchr(line, '|');
        REQUIRE(bar != NULL);
        *bar = '\0';
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(by_stage, line);
        CHECK(n != NULL && (long)n->valuedouble == strtol(bar + 1, NULL, 10));
        stages++;
    }
    CHECK_INT(cJSON_GetArraySize(by_stage), stages);
    free(rows);
    cJSON_Delete(report);
    cJSON_Delete(ex);
    bx_buf_free(&rout);
    bx_buf_free(&out);
    delete_topics(&r);
}

/* ---- a late fact ---- */

static char late_student[40];
static char stranger_school[48]; /* a school no registry knows, of a fact sent before it */

static char *county_digest(const run_result *r)
{
    char first[11], sql[300];
    bx_date_format(r->first, first);
    snprintf(sql, sizeof(sql),
             "SELECT digest FROM attendance.analytics_sent WHERE level = 'county' AND day = '%s'",
             first);
    return itest_sql_rows(r->db_url, sql);
}

/* During the run: an absence of the first day recorded a week late, straight onto
 * bx.attendance.v1 as bx-ingest would put it; bx-score marks the day and publishes it again. */
static void post_late_absence(run_result *r)
{
    char first[11], sql[400];
    bx_date_format(r->first, first);
    snprintf(sql, sizeof(sql),
             "SELECT st.id || '|' || st.school_id || '|' || st.class_id FROM registry.student st "
             "WHERE st.status = 'enrolled' AND NOT EXISTS (SELECT 1 FROM attendance.fact f WHERE "
             "f.student_id = st.id AND f.day = '%s') AND EXISTS (SELECT 1 FROM "
             "attendance.class_report c WHERE c.class_id = st.class_id AND c.day = '%s') "
             "ORDER BY st.id LIMIT 1",
             first, first);
    char *row = itest_sql_rows(r->db_url, sql);
    REQUIRE(row != NULL && row[0]);
    char student[40], school[40], klass[40];
    REQUIRE(sscanf(row, "%39[^|]|%39[^|]|%39[^|\n]", student, school, klass) == 3);
    free(row);
    snprintf(late_student, sizeof(late_student), "%s", student);
    char *before = county_digest(r);
    char msg[1024];
    snprintf(msg, sizeof(msg),
             "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":"
             "\"late-%s-%s\",\"student_id\":\"%s\",\"school_id\":\"%s\",\"class_id\":"
             "\"%s\",\"date\":\"%s\",\"period\":null,\"status\":\"absent\",\"leave_kind\":"
             "null,\"source\":\"attendance\",\"rollcall_id\":null,\"recorded_at\":"
             "\"%sT20:00:00+08:00\",\"recorded_by\":\"itest\"}",
             first, student, student, school, klass, first, first);
    cJSON *schema = bx_schema_load_topic(BX_TOPIC_ATTENDANCE);
    char why[300];
    REQUIRE(schema != NULL);
    if (!bx_schema_check_text(schema, msg, strlen(msg), why, sizeof(why)))
        BX_FAIL_AT("%s: %s", why, msg);
    cJSON_Delete(schema);
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), NULL, &p, &err) ==
            BX_OK);
    /* First, on the same key (so the same partition, read before it): a late absence of a
     * school no registry knows, which must mark no day (nothing would ever clear the mark) */
    snprintf(stranger_school, sizeof(stranger_school), "XS-%s", student);
    char stranger[1024];
    snprintf(stranger, sizeof(stranger),
             "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":"
             "\"late-x-%s-%s\",\"student_id\":\"XT-%s\",\"school_id\":\"%s\",\"class_id\":"
             "\"XC-%s\",\"date\":\"%s\",\"period\":null,\"status\":\"absent\",\"leave_kind\":"
             "null,\"source\":\"attendance\",\"rollcall_id\":null,\"recorded_at\":"
             "\"%sT20:00:00+08:00\",\"recorded_by\":\"itest\"}",
             first, student, student, stranger_school, student, first, first);
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot, slot0;
    bx_delivery_slot_arm(&slot0, w);
    REQUIRE(bx_producer_send(p, BX_TOPIC_ATTENDANCE, student, strlen(student), stranger,
                             strlen(stranger), bx_delivery_slot_done, &slot0) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    CHECK_INT(slot0.err, 0);
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(p, BX_TOPIC_ATTENDANCE, student, strlen(student), msg, strlen(msg),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    CHECK_INT(slot.err, 0);
    bx_delivery_wait_free(w);
    bx_producer_free(p, 5000);
    /* bx-score stores it, marks the day, and publishes the county again at a tick when its last
     * poll brought nothing, or within a minute while a backlog keeps it busy (MARKED_EVERY_MS):
     * the facts of every other test on the shared bx.attendance.v1 are such a backlog, so two
     * minutes */
    char *after = NULL;
    for (int i = 0; i < 1200; i++) {
        free(after);
        after = county_digest(r);
        if (after && before && strcmp(after, before) != 0)
            break;
        usleep(100 * 1000);
    }
    CHECK(after && before && strcmp(after, before) != 0);
    free(before);
    free(after);
}

BX_TEST(a_late_fact_publishes_its_day_again)
{
    run_result r;
    run_county("analate", "11", &r, post_late_absence);
    REQUIRE(late_student[0]);
    cJSON *all = read_all(&r);
    char first[11];
    bx_date_format(r.first, first);
    /* the county's rows of the first day, in the order published */
    int n = 0;
    long absent[4] = {0}, present[4] = {0};
    const cJSON *m;
    cJSON_ArrayForEach(m, all)
    {
        if (cJSON_GetObjectItem(m, "topic")->valueint != 0)
            continue;
        cJSON *o = cJSON_Parse(cJSON_GetObjectItem(m, "text")->valuestring);
        REQUIRE(o != NULL);
        if (strcmp(cJSON_GetObjectItem(o, "level")->valuestring, "county") == 0 &&
            strcmp(cJSON_GetObjectItem(o, "date")->valuestring, first) == 0 && n < 4) {
            absent[n] = (long)cJSON_GetObjectItem(o, "absent")->valuedouble;
            present[n] = (long)cJSON_GetObjectItem(o, "present")->valuedouble +
                         (long)cJSON_GetObjectItem(o, "late")->valuedouble;
            n++;
        }
        cJSON_Delete(o);
    }
    CHECK_INT(n, 2);
    CHECK_INT(absent[1], absent[0] + 1);
    CHECK_INT(present[1], present[0] - 1);
    /* the mark is cleared once the day was published again (its own commit after the publish:
     * give a slow build ten seconds to reach it). Only the county's own schools: bx-score keeps
     * the facts of students it does not know (those of the other tests on the shared
     * bx.attendance.v1) and marks their days, marks that stay until their school is known. */
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM attendance.analytics_dirty d JOIN registry.school s ON s.id = "
             "d.school_id JOIN registry.township t ON t.code = s.township_code WHERE "
             "t.county_code = '%s'",
             r.county);
    long long dirty = -1;
    for (int i = 0; i < 100 && dirty != 0; i++) {
        if (i > 0)
            usleep(100 * 1000);
        dirty = itest_sql_count(r.db_url, sql);
    }
    CHECK_INT(dirty, 0);
    /* the stranger's fact, read before the late absence, marked nothing */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM attendance.analytics_dirty WHERE school_id = '%s'",
             stranger_school);
    CHECK_INT(itest_sql_count(r.db_url, sql), 0);
    cJSON_Delete(all);
    delete_topics(&r);
}
