/* The escalation ladder end to end, as a school lives it: bx-ingest, bx-score and bx-escalate run
 * on a driven clock; roll calls and case actions are posted over HTTP as a teacher would; after
 * each step `bxctl settle` waits for the pipeline and `bxctl clock` moves time on; the stages,
 * tasks and deadlines are read from PostgreSQL and the notification requests and case events from
 * Kafka, every one validated against its JSON Schema. Each case has its own database, registry
 * (ids made unique per run), consumer groups and Redis database, on the shared topics. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_schema_check.h"
#include "bx_test.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The scenario's Redis database: bx-score's keys of these runs stay apart from other tests' and
 * tools' (bx-sim 5, bench/e2e 6, test_sim 8), none of which may flush it. */
#define SCENARIO_REDIS_DB "13"

/* The run's messages on one topic, read from where the topic ended when the pipeline started. */
typedef struct topic_log {
    const char *topic;
    itest_mark *mark;
    bx_buf lines; /* one message a line */
    int validated;
} topic_log;

typedef struct pipeline {
    char tag[24];
    char db_url[512];
    char *clock;
    char key[128]; /* the school's credential */
    char score_group[96], escalate_group[96], settle_spec[400];
    char score_group_name[96], escalate_group_name[96];
    rd_kafka_topic_partition_list_t *start_offsets[3]; /* attendance, risk, actions */
    int ingest_port;
    pid_t ingest, score, escalate;
    topic_log attendance, actions, risk, events, requests;
} pipeline;

static pipeline pl;

/* ---- bxctl with the pipeline's database and clock ---- */

static int bxctl_run(const char *const *args, char **out)
{
    char env_url[600], env_clock[600], env_redis[200];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", pl.db_url);
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", pl.clock);
    snprintf(env_redis, sizeof(env_redis), "BX_REDIS_URL=%s/" SCENARIO_REDIS_DB,
             itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799"));
    const char *env[] = {env_url, env_clock, env_redis, NULL};
    return itest_bxctl_env(args, env, out);
}

static void bxctl_ok(const char *const *args)
{
    char *out = NULL;
    int rc = bxctl_run(args, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl %s %s: %s\n", args[0], args[1] ? args[1] : "", out);
    REQUIRE(rc == 0);
    free(out);
}

/* Waits until the pipeline has settled (bxctl settle on the case's own groups). */
static void settle(void)
{
    char *out = NULL;
    int rc = bxctl_run((const char *[]){"settle", "--group", pl.score_group, "--group",
                                        pl.escalate_group, "--timeout", "120", "--verbose", NULL},
                       &out);
    if (rc != 0)
        fprintf(stderr, "bxctl settle: %s\n", out);
    REQUIRE(rc == 0);
    free(out);
}

/* Sets the clock ("2026-09-28 08:30") once the pipeline has settled, then settles again: the
 * deadlines that came due in between fire before anything else happens. */
static void at(const char *local_time)
{
    settle();
    bxctl_ok((const char *[]){"clock", "set", local_time, NULL});
    settle();
}

/* ---- the registry ---- */

/* Ids of this run: school <tag>S, class <tag>C (homeroom teacher <tag>H), township officer
 * <tag>W, students <tag>-01.. */
static void id_of(const char *suffix, char out[40])
{
    snprintf(out, 40, "%s%s", pl.tag, suffix);
}

static void registry(int students)
{
    char *dir = itest_tmpdir("scenario-registry");
    char buf[1024];
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-03-02,2026-07-10,2026-spring\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    snprintf(buf, sizeof(buf),
             "school_id,name,township_code,stage,calendar_id\n%sS,场景测试小学,990001100,primary,"
             "it-2026\n",
             pl.tag);
    itest_write_file(dir, "schools.csv", buf);
    snprintf(buf, sizeof(buf),
             "staff_id,name,role,school_id,township_code,county_code,phone\n"
             "%sH,钱老师,homeroom_teacher,%sS,,,\n%sP,孙校长,principal,%sS,,,\n"
             "%sA,李主任,academic_office,%sS,,,\n%sW,周干事,township_officer,,990001100,,\n"
             "%sK,吴科长,county_officer,,,990001,\n",
             pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag);
    itest_write_file(dir, "staff.csv", buf);
    snprintf(buf, sizeof(buf),
             "class_id,school_id,grade,name,homeroom_staff_id\n%sC,%sS,3,三年级1班,%sH\n", pl.tag,
             pl.tag, pl.tag);
    itest_write_file(dir, "classes.csv", buf);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "student_id,school_id,class_id,name\n") == BX_OK);
    for (int i = 1; i <= students; i++)
        REQUIRE(bx_buf_printf(&b, "%s-%02d,%sS,%sC,学生%d\n", pl.tag, i, pl.tag, pl.tag, i) ==
                BX_OK);
    itest_write_file(dir, "students.csv", b.data);
    bx_buf_free(&b);
    bxctl_ok((const char *[]){"import", "holidays", itest_holidays_csv(), NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
    char school[40], *out = NULL;
    id_of("S", school);
    REQUIRE(bxctl_run((const char *[]){"key", "create", school, "scenario", NULL}, &out) == 0);
    const char *k = strstr(out, "bxk_");
    REQUIRE(k != NULL);
    snprintf(pl.key, sizeof(pl.key), "%.*s", (int)strcspn(k, "\n"), k);
    free(out);
}

/* ---- the services ---- */

/* Sets the (stopped) group's offsets back to where the scenario began. */
static void group_rewind(const char *group, const rd_kafka_topic_partition_list_t *offsets)
{
    rd_kafka_t *rk = itest_group_handle(group);
    rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(offsets);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < 100;
         i++) { /* the group must be empty first: a member leaving takes a moment */
        e = rd_kafka_commit(rk, copy, 0);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        usleep(200 * 1000);
    }
    CHECK_INT(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(copy);
    rd_kafka_destroy(rk);
}

static void start_score(void)
{
    char pg_env[600], redis_env[200], group_env[160];
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", pl.db_url);
    snprintf(redis_env, sizeof(redis_env), "BX_REDIS_URL=%s/" SCENARIO_REDIS_DB,
             itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799"));
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", pl.score_group_name);
    const char *env[] = {
        pg_env, redis_env, group_env, "BX_REGISTRY_REFRESH_MS=200", "BX_SCORE_BATCH_MS=10", NULL};
    int port = 0;
    pl.score = itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), pl.clock, env, &port);
}

static void start_escalate(void)
{
    char group_env[160], pg_env[600];
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", pl.escalate_group_name);
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", pl.db_url);
    const char *env[] = {group_env, pg_env, "BX_TIMER_LEASE_MS=2000", "BX_REGISTRY_REFRESH_MS=200",
                         NULL};
    int port = 0;
    pl.escalate =
        itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), pl.clock, env, &port);
}

/* Starts the pipeline at local_time with the given number of students. */
static void pipeline_start(int students, const char *local_time)
{
    memset(&pl, 0, sizeof(pl));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(pl.tag, sizeof(pl.tag), "N%d%03ld", (int)getpid() % 100000,
             (long)(ts.tv_nsec / 1000000));
    snprintf(pl.db_url, sizeof(pl.db_url), "%s", itest_own_database("scenario"));
    pl.clock = itest_clock_file(local_time);
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", pl.clock);
    bx_error err = {0};
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    bxctl_ok((const char *[]){"topics", "create", NULL});
    registry(students);

    char *score_group = pl.score_group_name, *escalate_group = pl.escalate_group_name;
    snprintf(score_group, sizeof(pl.score_group_name), "bx-score-scn-%s", pl.tag);
    snprintf(escalate_group, sizeof(pl.escalate_group_name), "bx-escalate-scn-%s", pl.tag);
    snprintf(pl.score_group, sizeof(pl.score_group), "%s:" BX_TOPIC_ATTENDANCE, score_group);
    snprintf(pl.escalate_group, sizeof(pl.escalate_group), "%s:" BX_TOPIC_RISK "," BX_TOPIC_ACTIONS,
             escalate_group);
    pl.start_offsets[0] = itest_group_at_end(score_group, BX_TOPIC_ATTENDANCE);
    pl.start_offsets[1] = itest_group_at_end(escalate_group, BX_TOPIC_RISK);
    pl.start_offsets[2] = itest_group_at_end(escalate_group, BX_TOPIC_ACTIONS);
    topic_log *logs[] = {&pl.attendance, &pl.actions, &pl.risk, &pl.events, &pl.requests};
    const char *topics[] = {BX_TOPIC_ATTENDANCE, BX_TOPIC_ACTIONS, BX_TOPIC_RISK,
                            BX_TOPIC_CASE_EVENTS, BX_TOPIC_NOTIFY_REQUESTS};
    for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
        logs[i]->topic = topics[i];
        logs[i]->mark = itest_topic_mark(topics[i]);
        bx_buf_init(&logs[i]->lines, 0);
    }

    char pg_env[600], redis_env[200], score_group_env[160];
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", pl.db_url);
    snprintf(redis_env, sizeof(redis_env), "BX_REDIS_URL=%s/" SCENARIO_REDIS_DB,
             itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799"));
    snprintf(score_group_env, sizeof(score_group_env), "BX_CONSUMER_GROUP=%s", score_group);
    const char *ingest_env[] = {pg_env, NULL};
    pl.ingest = itest_ingest_start(pl.clock, ingest_env, &pl.ingest_port);
    const char *score_env[] = {
        pg_env, redis_env, score_group_env, "BX_REGISTRY_REFRESH_MS=200", "BX_SCORE_BATCH_MS=10",
        NULL};
    int port = 0;
    pl.score =
        itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), pl.clock, score_env, &port);
    start_escalate();
    settle();
}

static void pipeline_stop(void)
{
    itest_stop(pl.escalate);
    itest_stop(pl.score);
    itest_stop(pl.ingest);
    topic_log *logs[] = {&pl.attendance, &pl.actions, &pl.risk, &pl.events, &pl.requests};
    for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
        itest_mark_free(logs[i]->mark);
        bx_buf_free(&logs[i]->lines);
    }
    for (int i = 0; i < 3; i++)
        rd_kafka_topic_partition_list_destroy(pl.start_offsets[i]);
    free(pl.clock);
    memset(&pl, 0, sizeof(pl));
}

/* ---- what a school posts ---- */

/* Every request posted, for redelivery. */
static struct {
    char path[32];
    char *body;
} posted[64];
static int nposted;

static void post(const char *path, const char *body, const char *expect)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", pl.ingest_port, path);
    itest_response r = {0};
    REQUIRE(itest_post(url, pl.key, "application/json", body, strlen(body), &r));
    if (r.status != 200 || (expect && !strstr(r.body.data, expect)))
        fprintf(stderr, "POST %s %s: %ld %s\n", path, body, r.status, r.body.data);
    CHECK_INT(r.status, 200);
    if (expect)
        CHECK_CONTAINS(r.body.data, expect);
    bx_buf_free(&r.body);
    REQUIRE(nposted < 64);
    snprintf(posted[nposted].path, sizeof(posted[nposted].path), "%s", path);
    posted[nposted++].body = strdup(body);
}

/* The class's roll call for date (YYYY-MM-DD) sent at `when` (local time): students absent and
 * on leave by number (0-terminated lists). */
static void rollcall_sent(const char *date, const char *when, const int *absent, const int *leave)
{
    at(when);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_printf(&b,
                          "{\"class_id\":\"%sC\",\"date\":\"%s\",\"rollcall_id\":\"%sC-%s\","
                          "\"absent\":[",
                          pl.tag, date, pl.tag, date) == BX_OK);
    for (int i = 0; absent && absent[i]; i++)
        REQUIRE(bx_buf_printf(&b, "%s\"%s-%02d\"", i ? "," : "", pl.tag, absent[i]) == BX_OK);
    REQUIRE(bx_buf_puts(&b, "],\"leave\":[") == BX_OK);
    for (int i = 0; leave && leave[i]; i++)
        REQUIRE(bx_buf_printf(&b, "%s{\"student_id\":\"%s-%02d\",\"leave_kind\":\"personal\"}",
                              i ? "," : "", pl.tag, leave[i]) == BX_OK);
    REQUIRE(bx_buf_puts(&b, "],\"late\":[],\"early_leave\":[]}") == BX_OK);
    post("/v1/rollcall", b.data, "\"rejected\":0");
    bx_buf_free(&b);
    settle();
}

/* The class's roll call for date at 08:30 that day. */
static void rollcall(const char *date, const int *absent, const int *leave)
{
    char when[20];
    snprintf(when, sizeof(when), "%s 08:30", date);
    rollcall_sent(date, when, absent, leave);
}

/* A case action recorded by the homeroom teacher at local_time ("2026-09-28 11:00"). */
static void action(int student, const char *local_time, const char *name, const char *details)
{
    at(local_time);
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"%s-%02d\",\"action\":\"%s\",\"date\":\"%.10s\","
             "\"staff_id\":\"%sH\",\"details\":%s,\"event_id\":\"%s-%02d-%s-%.10s-%.2s\"}]}",
             pl.tag, student, name, local_time, pl.tag, details, pl.tag, student, name, local_time,
             local_time + 11);
    post("/v1/actions", body, "\"accepted\":1");
    settle();
}

static void forget_posted(void)
{
    for (int i = 0; i < nposted; i++)
        free(posted[i].body);
    nposted = 0;
}

/* ---- what the pipeline did ---- */

/* The rows of a query with the student id as $1, '|' between columns (caller frees). */
static char *rows_of(const char *sql, int student)
{
    char id[40];
    snprintf(id, sizeof(id), "%s-%02d", pl.tag, student);
    const char *params[] = {id};
    return itest_sql_rows_params(pl.db_url, sql, 1, params);
}

#define STAGES_SQL                                                                                 \
    "SELECT e.stage, to_char(e.occurred_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), "       \
    "e.late FROM cases.event e JOIN cases.case c ON c.id = e.case_id WHERE c.student_id = $1 "     \
    "AND e.kind = 'stage_entered' ORDER BY e.id"
#define TASKS_SQL                                                                                  \
    "SELECT t.kind, t.owner_role, coalesce(t.owner_staff_id, '-'), "                               \
    "to_char(t.due_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), "                            \
    "CASE WHEN t.done_at IS NULL THEN '-' ELSE to_char(t.done_at AT TIME ZONE 'Asia/Shanghai', "   \
    "'MM-DD HH24:MI') END, t.overdue_at IS NOT NULL FROM cases.task t JOIN cases.case c ON "       \
    "c.id = t.case_id WHERE c.student_id = $1 ORDER BY t.id"

/* Reads what arrived on the topic for this run (every message naming the run's tag) into its log,
 * and validates each new message against the topic's JSON Schema. After settle() everything is
 * in Kafka, so a short wait for the fetch suffices. */
static void topic_sync(topic_log *t)
{
    size_t from = t->lines.len;
    itest_topic_collect(t->mark, pl.tag, 1000000, 2500, &t->lines);
    cJSON *schema = bx_schema_load_topic(t->topic);
    REQUIRE(schema != NULL);
    for (char *line = t->lines.data ? t->lines.data + from : NULL; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char err[300];
        bool valid = bx_schema_check_text(schema, line, len, err, sizeof(err));
        if (!valid)
            fprintf(stderr, "%s: %.*s: %s\n", t->topic, (int)len, line, err);
        CHECK(valid);
        t->validated++;
        line = nl ? nl + 1 : NULL;
    }
    cJSON_Delete(schema);
}

/* The student's messages on the topic since the pipeline started, in order, one line each made of
 * the given fields (caller frees). */
static char *messages_of(topic_log *t, int student, const char *const *fields)
{
    topic_sync(t);
    char id[40];
    snprintf(id, sizeof(id), "%s-%02d", pl.tag, student);
    bx_buf out;
    bx_buf_init(&out, 0);
    REQUIRE(bx_buf_puts(&out, "") == BX_OK);
    for (char *line = t->lines.data; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *msg = cJSON_ParseWithLength(line, len);
        REQUIRE(msg != NULL);
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(msg, "student_id");
        if (cJSON_IsString(sid) && strcmp(sid->valuestring, id) == 0) {
            for (int f = 0; fields[f]; f++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, fields[f]);
                char *text = NULL;
                if (cJSON_IsString(v))
                    text = strdup(v->valuestring);
                else if (v != NULL && !cJSON_IsNull(v))
                    text = cJSON_PrintUnformatted(v);
                REQUIRE(bx_buf_printf(&out, "%s%s", f ? "|" : "", text ? text : "-") == BX_OK);
                free(text);
            }
            REQUIRE(bx_buf_puts(&out, "\n") == BX_OK);
        }
        cJSON_Delete(msg);
        line = nl ? nl + 1 : NULL;
    }
    return bx_buf_steal(&out);
}

/* Notification requests: template, recipient role, channel. */
static char *requests_of(int student)
{
    static const char *const fields[] = {"template", "recipient_role", "channel", NULL};
    return messages_of(&pl.requests, student, fields);
}

/* Validates the run's messages on every topic the pipeline writes (attendance facts and actions
 * from bx-ingest, assessments from bx-score, case events and requests from bx-escalate); at least
 * one of each was seen unless actions_only. */
static void validate_topics(bool actions_only)
{
    topic_log *logs[] = {&pl.attendance, &pl.actions, &pl.risk, &pl.events, &pl.requests};
    for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
        topic_sync(logs[i]);
        if (actions_only && logs[i] != &pl.actions)
            continue;
        if (logs[i]->validated == 0)
            fprintf(stderr, "%s: nothing of this run\n", logs[i]->topic);
        CHECK(logs[i]->validated > 0);
    }
}

static void validate_all_topics(void)
{
    validate_topics(false);
}

/* Replaces this run's tag in text by "T", so expectations read T-01, TH, TS. */
static char *untag(char *text)
{
    size_t n = strlen(pl.tag);
    char *w = text;
    for (const char *r = text; *r;) {
        if (strncmp(r, pl.tag, n) == 0) {
            *w++ = 'T';
            r += n;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return text;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* ---- the township officer in bx-console ----
 * A school's key cannot sign off a return for the township (bx-ingest refuses it): the township
 * officer <tag>W signs the return report (复学报告书) in bx-console as a person, which publishes
 * the signed `returned` on bx.actions.v1 with the officer as signer and writer. */

/* Password of the officer's account (argon2id of "pages-Test-2026", libsodium's interactive
 * limits), made directly: activation has tests of its own. */
#define OFFICER_PASSWORD "pages-Test-2026"
#define OFFICER_PWHASH                                                                             \
    "$argon2id$v=19$m=65536,t=2,p=1$782mBQ1hjBtyj594HOWCfA$JA+onWjza4kEg9VgdiK+G2rZ+JtJOLk/"       \
    "kplECy3/G2E"

static struct {
    pid_t pid;
    int port;
    char cookie[200];                          /* bx_session=... of the officer */
    char path[64], token[64], return_date[11]; /* the last sign-off posted, for redelivery */
} officer;

typedef struct console_reply_text {
    long status;
    bx_buf body;
    char location[256], session[128], pre[128];
} console_reply_text;

static size_t console_on_body(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static void console_cookie(const char *line, const char *name, char *out, size_t size)
{
    size_t len = strlen(name);
    const char *v = line + strlen("Set-Cookie:");
    while (*v == ' ')
        v++;
    if (strncmp(v, name, len) == 0 && v[len] == '=' && strcspn(v + len + 1, ";\r\n") < size)
        snprintf(out, size, "%.*s", (int)strcspn(v + len + 1, ";\r\n"), v + len + 1);
}

static size_t console_on_header(char *p, size_t size, size_t n, void *arg)
{
    console_reply_text *r = arg;
    size_t len = size * n;
    char line[1024];
    if (len >= sizeof(line))
        return len;
    memcpy(line, p, len);
    line[len] = '\0';
    if (strncasecmp(line, "Location:", 9) == 0)
        snprintf(r->location, sizeof(r->location), "%.*s", (int)strcspn(line + 10, "\r\n"),
                 line + 10);
    if (strncasecmp(line, "Set-Cookie:", 11) == 0) {
        console_cookie(line, "bx_session", r->session, sizeof(r->session));
        console_cookie(line, "bx_pre", r->pre, sizeof(r->pre));
    }
    return len;
}

/* GET (form NULL) or POST a form to bx-console as a browser would; cookie may be "". */
static void console_http(const char *path, const char *cookie, const char *form,
                         console_reply_text *r)
{
    memset(r, 0, sizeof(*r));
    bx_buf_init(&r->body, 1 << 20);
    char url[300];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", officer.port, path);
    CURL *c = curl_easy_init();
    REQUIRE(c != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, console_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, console_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (cookie && *cookie)
        curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
    if (form)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        BX_FAIL_AT("%s: %s", path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    REQUIRE(bx_buf_puts(&r->body, "") == BX_OK);
}

/* The form field's value in a page, URL-escaped for a form body (caller frees). */
static char *console_field(const char *html, const char *name)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "name=\"%s\" value=\"", name);
    const char *p = strstr(html, needle);
    REQUIRE(p != NULL);
    p += strlen(needle);
    char *raw = strndup(p, strcspn(p, "\""));
    CURL *c = curl_easy_init();
    char *e = curl_easy_escape(c, raw, 0);
    char *out = strdup(e);
    curl_free(e);
    curl_easy_cleanup(c);
    free(raw);
    return out;
}

/* bx-console on the pipeline's database and clock, and the officer signed in. */
static void officer_signs_in(void)
{
    if (officer.pid == 0) {
        char officer_id[40], sql[600];
        id_of("W", officer_id);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO console.account (staff_id, password_hash, state, created_at, "
                 "changed_at) VALUES ('%s', '" OFFICER_PWHASH "', 'active', now(), now())",
                 officer_id);
        itest_sql_exec(pl.db_url, sql);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                getsockname(fd, (struct sockaddr *)&a, &len) == 0);
        close(fd);
        officer.port = ntohs(a.sin_port);
        char pg_env[600], listen[64], bin[600], templates[600];
        snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", pl.db_url);
        snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", officer.port);
        snprintf(bin, sizeof(bin), "%s/services/bx-console/bx-console",
                 itest_env("BX_BUILD_DIR", "build"));
        snprintf(templates, sizeof(templates),
                 "BX_CONSOLE_TEMPLATES=%s/services/bx-console/templates",
                 itest_env("BX_SOURCE_DIR", "."));
        const char *env[] = {pg_env, listen, templates, "BX_CONSOLE_THREADS=2", NULL};
        int metrics = 0;
        officer.pid =
            itest_service_start(itest_env("BX_CONSOLE_BIN", bin), pl.clock, env, &metrics);
    }
    console_reply_text r;
    console_http("/login", "", NULL, &r);
    CHECK_INT(r.status, 200);
    char *csrf = console_field(r.body.data, "csrf");
    char cookie[160], form[400], officer_id[40];
    snprintf(cookie, sizeof(cookie), "bx_pre=%s", r.pre);
    id_of("W", officer_id);
    snprintf(form, sizeof(form), "csrf=%s&login=%s&password=%s", csrf, officer_id,
             OFFICER_PASSWORD);
    free(csrf);
    bx_buf_free(&r.body);
    console_http("/login", cookie, form, &r);
    CHECK_INT(r.status, 303);
    REQUIRE(r.session[0]);
    snprintf(officer.cookie, sizeof(officer.cookie), "bx_session=%s", r.session);
    bx_buf_free(&r.body);
}

static void officer_stop(void)
{
    if (officer.pid)
        itest_stop(officer.pid);
    memset(&officer, 0, sizeof(officer));
}

/* The case's form posted as the signed-in officer (with the form's own token, or officer.token
 * when set: the same form sent again); returns the next page's flash line (static). */
static const char *officer_posts_form(void)
{
    static char flash[512];
    console_reply_text r;
    console_http(officer.path, officer.cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    char *csrf = console_field(r.body.data, "csrf");
    if (!officer.token[0]) {
        char *token = console_field(r.body.data, "token");
        snprintf(officer.token, sizeof(officer.token), "%s", token);
        free(token);
    }
    bx_buf_free(&r.body);
    char form[512];
    snprintf(form, sizeof(form), "csrf=%s&token=%s&return_date=%s", csrf, officer.token,
             officer.return_date);
    free(csrf);
    console_http(officer.path, officer.cookie, form, &r);
    CHECK_INT(r.status, 303);
    CHECK_STR(r.location, officer.path);
    bx_buf_free(&r.body);
    console_http(officer.path, officer.cookie, NULL, &r);
    const char *p = strstr(r.body.data, "class=\"flash\"");
    snprintf(flash, sizeof(flash), "%.*s", p ? (int)strcspn(p, "\n") : 0, p ? p : "");
    bx_buf_free(&r.body);
    return flash;
}

/* The officer signs off the student's return at local_time in bx-console: the case's page, its
 * form with the return date, 303 back to a page that says 已签署; then the pipeline settles.
 * listed: the case must be on the township's list of returns awaiting the sign-off. */
static void township_signoff(int student, const char *local_time, const char *return_date,
                             bool listed)
{
    at(local_time);
    officer_signs_in();
    char *case_id =
        rows_of("SELECT id FROM cases.case WHERE student_id = $1 AND closed_at IS NULL", student);
    case_id[strcspn(case_id, "\n")] = '\0';
    REQUIRE(case_id[0]);
    snprintf(officer.path, sizeof(officer.path), "/township/cases/%s", case_id);
    free(case_id);
    console_reply_text r;
    console_http("/township", officer.cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    if (listed != (strstr(r.body.data, officer.path) != NULL))
        BX_FAIL_AT("case %s %s the township's list", officer.path, listed ? "not on" : "on");
    bx_buf_free(&r.body);
    snprintf(officer.return_date, sizeof(officer.return_date), "%s", return_date);
    officer.token[0] = '\0';
    CHECK_CONTAINS(officer_posts_form(), "已签署复学报告书");
    settle();
}

/* The same sign-off through the school's key: refused (unauthorized), nothing published. */
static void school_key_signoff_refused(int student, const char *date)
{
    char url[128], body[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/actions", pl.ingest_port);
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"%s-%02d\",\"action\":\"returned\",\"date\":\"%s\","
             "\"staff_id\":\"%sW\",\"details\":{\"return_date\":\"%s\","
             "\"township_signoff_staff_id\":\"%sW\"},\"event_id\":\"%s-%02d-key-signoff\"}]}",
             pl.tag, student, date, pl.tag, date, pl.tag, pl.tag, student);
    itest_response r = {0};
    REQUIRE(itest_post(url, pl.key, "application/json", body, strlen(body), &r));
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "\"accepted\":0");
    CHECK_CONTAINS(r.body.data, "\"rejected\":1");
    CHECK_CONTAINS(r.body.data, "\"reason\":\"unauthorized\"");
    CHECK_CONTAINS(r.body.data, "township_signoff_staff_id");
    bx_buf_free(&r.body);
    settle();
}

/* ---- the scenarios ---- */

static const int first_only[] = {1, 0};

/* Monday 2026-09-28 to Friday 2026-10-09 across National Day (10-01..10-07): five school days
 * absent. The teacher phones on Monday (the same-day contact) and visits on Wednesday (on time);
 * nobody files the school report or the academic office report, and the persuasion letter is not
 * delivered. Every deadline falls on a school day at 17:00: the letter's "1 school day" after
 * Wednesday 09-30 is Thursday 10-08, after the holiday. */
BX_TEST(absent_monday_to_next_friday_across_national_day)
{
    pipeline_start(3, "2026-09-28 07:30");
    rollcall("2026-09-28", first_only, NULL);
    action(1, "2026-09-28 11:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", first_only, NULL);
    rollcall("2026-09-30", first_only, NULL);
    action(1, "2026-09-30 15:00", "home_visit",
           "{\"outcome\":\"will_return\",\"reason\":\"family\"}");
    at("2026-10-05 12:00"); /* in the holiday: nothing is due, nothing happens */
    rollcall("2026-10-08", first_only, NULL);
    rollcall("2026-10-09", first_only, NULL);
    at("2026-10-09 18:00");

    /* stage, when entered, late */
    char *stages = untag(rows_of(STAGES_SQL, 1));
    CHECK_STR(stages, "contact_family|09-28 08:30|f\n"
                      "home_visit|09-29 08:30|f\n"
                      "school_report|09-30 08:30|f\n"
                      "academic_office|10-09 08:30|f\n");
    free(stages);
    /* task, owner role, owner, deadline, done, overdue */
    char *tasks = untag(rows_of(TASKS_SQL, 1));
    /* no monthly persuasion record: the child is not on the dropout roster */
    CHECK_STR(tasks, "contact_family|homeroom_teacher|TH|09-28 17:00|09-28 11:00|f\n"
                     "home_visit|homeroom_teacher|TH|09-30 17:00|09-30 15:00|f\n"
                     "report_to_school|homeroom_teacher|TH|09-30 17:00|-|t\n"
                     "persuasion_letter|principal|-|10-08 17:00|-|t\n"
                     "report_academic_office|homeroom_teacher|TH|10-09 17:00|-|t\n");
    free(tasks);
    char *open =
        rows_of("SELECT stage, closed_at IS NULL FROM cases.case WHERE student_id = $1", 1);
    CHECK_STR(open, "academic_office|t\n");
    free(open);
    /* the notification requests, in order (template, recipient role, channel) */
    char *requests = requests_of(1);
    CHECK_STR(requests, "task_assigned|homeroom_teacher|task\n" /* contact the family */
                        "absence_same_day|guardian|sms\n"
                        "task_assigned|homeroom_teacher|task\n" /* home visit */
                        "task_assigned|homeroom_teacher|task\n" /* report to the school */
                        "task_assigned|principal|task\n"        /* persuasion letter */
                        "school_report|principal|task\n"
                        "task_overdue|principal|task\n"         /* no report on 09-30 */
                        "task_overdue|county_officer|task\n"    /* no letter on 10-08 */
                        "task_assigned|homeroom_teacher|task\n" /* report to the academic office */
                        "academic_office_report|academic_office|task\n"
                        "task_overdue|principal|task\n"); /* no report on 10-09 */
    free(requests);
    /* the case history on bx.case.events.v1 (event, stage) */
    static const char *const ev_fields[] = {"event", "stage", NULL};
    char *events = messages_of(&pl.events, 1, ev_fields);
    CHECK_STR(events, "opened|-\n"
                      "stage_entered|contact_family\n"
                      "task_created|contact_family\n"
                      "task_done|contact_family\n"
                      "stage_entered|home_visit\n"
                      "task_created|home_visit\n"
                      "stage_entered|school_report\n"
                      "task_created|school_report\n"
                      "task_created|school_report\n"
                      "task_done|school_report\n"
                      "task_overdue|school_report\n"
                      "escalated|school_report\n"
                      "task_overdue|school_report\n"
                      "escalated|school_report\n"
                      "stage_entered|academic_office\n"
                      "task_created|academic_office\n"
                      "task_overdue|academic_office\n"
                      "escalated|academic_office\n");
    free(events);
    /* the classmates came every day: no case, no message */
    char *others = rows_of("SELECT count(*) FROM cases.case WHERE student_id <> $1", 1);
    CHECK_STR(others, "0\n");
    free(others);
    char *req2 = requests_of(2);
    CHECK_INT(count_lines(req2), 0);
    free(req2);
    validate_all_topics();
    pipeline_stop();
    forget_posted();
}

/* Two classmates absent Monday and Tuesday. On Wednesday and Thursday the first is on approved
 * leave (the guardian phoned in) and the second is absent; both are absent on Friday. Leave
 * neither extends nor ends the streak: the first reaches three days (school_report) only on
 * Friday, the second on Wednesday and five days (academic_office) on Friday. */
BX_TEST(leave_pauses_the_ladder)
{
    pipeline_start(3, "2026-09-28 07:30");
    static const int both[] = {1, 2, 0}, second[] = {2, 0};
    rollcall("2026-09-28", both, NULL);
    action(1, "2026-09-28 10:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    action(2, "2026-09-28 10:05", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", both, NULL);
    action(1, "2026-09-29 15:00", "home_visit",
           "{\"outcome\":\"will_return\",\"reason\":\"illness\"}");
    action(2, "2026-09-29 15:30", "home_visit",
           "{\"outcome\":\"refused\",\"reason\":\"dislikes_school\"}");
    at("2026-09-29 19:00");
    char leave[600];
    snprintf(leave, sizeof(leave),
             "{\"records\":[{\"student_id\":\"%s-01\",\"first_date\":\"2026-09-30\","
             "\"last_date\":\"2026-10-08\",\"leave_kind\":\"sick\",\"requested_by\":\"guardian\","
             "\"phoned_in\":true,\"event_id\":\"%s-leave-1\"}]}",
             pl.tag, pl.tag);
    post("/v1/leave", leave, "\"accepted\":1");
    settle();
    rollcall("2026-09-30", second, first_only);
    rollcall("2026-10-08", second, first_only);
    rollcall("2026-10-09", both, NULL);
    at("2026-10-09 12:00");

    char *stages1 = untag(rows_of(STAGES_SQL, 1));
    CHECK_STR(stages1, "contact_family|09-28 08:30|f\n"
                       "home_visit|09-29 08:30|f\n"
                       "school_report|10-09 08:30|f\n");
    free(stages1);
    char *stages2 = untag(rows_of(STAGES_SQL, 2));
    CHECK_STR(stages2, "contact_family|09-28 08:30|f\n"
                       "home_visit|09-29 08:30|f\n"
                       "school_report|09-30 08:30|f\n"
                       "academic_office|10-09 08:30|f\n");
    free(stages2);
    /* the first child's ladder did not move while on leave: nothing was asked for between the
     * home visit and Friday */
    char *asked = untag(rows_of(
        "SELECT to_char(e.occurred_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD'), count(*) FROM "
        "cases.event e JOIN cases.case c ON c.id = e.case_id WHERE c.student_id = $1 "
        "GROUP BY 1 ORDER BY 1",
        1));
    CHECK_STR(asked, "09-28|4\n09-29|3\n10-09|3\n");
    free(asked);
    char *requests1 = requests_of(1);
    CHECK_STR(requests1, "task_assigned|homeroom_teacher|task\n"
                         "absence_same_day|guardian|sms\n"
                         "task_assigned|homeroom_teacher|task\n"
                         "task_assigned|homeroom_teacher|task\n"
                         "task_assigned|principal|task\n"
                         "school_report|principal|task\n");
    free(requests1);
    validate_all_topics();
    pipeline_stop();
    forget_posted();
}

/* A home visit within its deadline does the task; one recorded after it is done late, and the
 * missed deadline was escalated to the principal when it passed. The first child, visited on
 * Tuesday and back on Wednesday, has a case that closes by presence (before school_report). */
BX_TEST(home_visit_on_time_and_late)
{
    pipeline_start(3, "2026-09-28 07:30");
    static const int both[] = {1, 2, 0}, second[] = {2, 0};
    rollcall("2026-09-28", both, NULL);
    action(1, "2026-09-28 10:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    action(2, "2026-09-28 10:05", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", both, NULL);
    action(1, "2026-09-29 16:00", "home_visit",
           "{\"outcome\":\"will_return\",\"reason\":\"family\"}");
    rollcall("2026-09-30", second, NULL); /* the first back on Wednesday, the second still away */
    action(2, "2026-10-08 16:00", "home_visit",
           "{\"outcome\":\"will_return\",\"reason\":\"family\"}");
    at("2026-10-08 18:00");

    static const char *const visit_sql =
        "SELECT to_char(t.due_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), "
        "to_char(t.done_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), t.done_by, "
        "t.overdue_at IS NOT NULL FROM cases.task t JOIN cases.case c ON c.id = t.case_id "
        "WHERE c.student_id = $1 AND t.kind = 'home_visit'";
    char *v1 = untag(rows_of(visit_sql, 1));
    CHECK_STR(v1, "09-30 17:00|09-29 16:00|TH|f\n");
    free(v1);
    char *v2 = untag(rows_of(visit_sql, 2));
    CHECK_STR(v2, "09-30 17:00|10-08 16:00|TH|t\n");
    free(v2);
    static const char *const late_sql =
        "SELECT e.kind, to_char(e.occurred_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), "
        "e.late FROM cases.event e JOIN cases.case c ON c.id = e.case_id JOIN cases.task t ON "
        "t.task_key = e.payload->'task'->>'task_id' WHERE c.student_id = $1 AND t.kind = "
        "'home_visit' ORDER BY e.id";
    char *h1 = rows_of(late_sql, 1);
    CHECK_STR(h1, "task_created|09-29 08:30|f\ntask_done|09-29 16:00|f\n");
    char *closed1 = rows_of("SELECT c.ending, c.stage, (SELECT count(*) FROM cases.task t WHERE "
                            "t.case_id = c.id AND t.outcome IS NULL) FROM cases.case c WHERE "
                            "c.student_id = $1",
                            1);
    CHECK_STR(closed1, "returned|home_visit|0\n");
    free(closed1);
    free(h1);
    char *h2 = rows_of(late_sql, 2);
    /* overdue and its escalation are marked late, as is the visit itself */
    CHECK_STR(h2, "task_created|09-29 08:30|f\ntask_overdue|09-30 17:00|t\n"
                  "escalated|09-30 17:00|t\ntask_done|10-08 16:00|t\n");
    free(h2);
    /* the principal heard of the second child's missed visit, not of the first's */
    static const char *const overdue_fields[] = {"template", "recipient_role", NULL};
    char *r1 = messages_of(&pl.requests, 1, overdue_fields);
    CHECK(strstr(r1, "task_overdue") == NULL);
    free(r1);
    char *r2 = messages_of(&pl.requests, 2, overdue_fields);
    CHECK_CONTAINS(r2, "task_overdue|principal\n");
    free(r2);
    validate_all_topics();
    pipeline_stop();
    forget_posted();
}

/* Issue 15: a one-day absence, the family phoned, the child back the next morning: the case
 * closes as returned when the roll call shows the child, without a return report or the
 * township's sign-off, with no task left open and no monthly persuasion record ever asked. */
BX_TEST(one_day_absence_then_presence_closes_without_paperwork)
{
    pipeline_start(2, "2026-09-28 07:30");
    rollcall("2026-09-28", first_only, NULL);
    action(1, "2026-09-28 10:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", NULL, NULL);
    at("2026-10-30 18:00"); /* a month on: nothing more */
    char *closed = rows_of("SELECT c.ending, c.stage, to_char(c.closed_at AT TIME ZONE "
                           "'Asia/Shanghai', 'MM-DD') FROM cases.case c WHERE c.student_id = $1",
                           1);
    CHECK_STR(closed, "returned|contact_family|09-29\n");
    free(closed);
    char *tasks = rows_of("SELECT t.kind, coalesce(t.outcome, 'open') FROM cases.task t JOIN "
                          "cases.case c ON c.id = t.case_id WHERE c.student_id = $1 ORDER BY t.id",
                          1);
    CHECK_STR(tasks, "contact_family|done\n");
    free(tasks);
    char *reason = rows_of("SELECT e.reason FROM cases.event e JOIN cases.case c ON c.id = "
                           "e.case_id WHERE c.student_id = $1 AND e.kind = 'closed'",
                           1);
    CHECK_CONTAINS(reason, "seen at school on 2026-09-29");
    CHECK_CONTAINS(reason, "without a return report");
    free(reason);
    static const char *const ev_fields[] = {"event", "stage", NULL};
    char *events = messages_of(&pl.events, 1, ev_fields);
    CHECK_STR(events, "opened|-\n"
                      "stage_entered|contact_family\n"
                      "task_created|contact_family\n"
                      "task_done|contact_family\n"
                      "closed|contact_family\n");
    free(events);
    validate_all_topics();
    pipeline_stop();
    forget_posted();
}

/* Issue 15: the same-day contact missed (the family reached only in the evening), so the home
 * visit is due the next day; the child is back that morning: the case closes by presence and the
 * open home visit is cancelled with it, its timer too, so nothing falls due on a closed case. */
BX_TEST(presence_cancels_the_open_tasks_of_a_closed_case)
{
    pipeline_start(2, "2026-09-28 07:30");
    rollcall("2026-09-28", first_only, NULL);
    at("2026-09-28 17:30"); /* the contact's deadline passed: the home visit is due 09-29 */
    action(1, "2026-09-28 18:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", NULL, NULL);
    at("2026-10-30 18:00");
    char *tasks = rows_of("SELECT t.kind, coalesce(t.outcome, 'open'), t.overdue_at IS NOT NULL "
                          "FROM cases.task t JOIN cases.case c ON c.id = t.case_id WHERE "
                          "c.student_id = $1 ORDER BY t.id",
                          1);
    /* the missed contact ended cancelled at 17:00, when the home visit took its place (it does
     * not carry over), so the evening's call does no task */
    CHECK_STR(tasks, "contact_family|cancelled|t\nhome_visit|cancelled|f\n");
    free(tasks);
    /* the visit's timer was cancelled with the case: it never fired, nothing escalated */
    char *timers = rows_of("SELECT count(*) FILTER (WHERE tm.cancelled), count(*) FILTER (WHERE "
                           "tm.fired_at IS NULL) FROM cases.timer tm JOIN cases.case c ON c.id = "
                           "tm.case_id WHERE c.student_id = $1",
                           1);
    CHECK_STR(timers, "1|0\n");
    free(timers);
    char *overdue = rows_of("SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = "
                            "e.case_id WHERE c.student_id = $1 AND e.kind = 'task_overdue' AND "
                            "e.occurred_at > '2026-09-29 08:00+08'",
                            1);
    CHECK_STR(overdue, "0\n");
    free(overdue);
    char *ended = rows_of("SELECT c.ending, c.stage FROM cases.case c WHERE c.student_id = $1", 1);
    CHECK_STR(ended, "returned|home_visit\n");
    free(ended);
    validate_all_topics();
    pipeline_stop();
    forget_posted();
}

/* Issue 15: moving past a stage cancels its open tasks in the step's transaction, unless the
 * ladder says they carry over. Monday's roll call is sent late, on Tuesday at 08:15 (the same-day
 * contact is then due Tuesday 17:00); Tuesday's at 08:30 makes it two days: the home visit takes
 * the contact's place, which ends cancelled with its timer before it ever fell due. On Friday, five
 * days, the academic office stage cancels the overdue report to the school; the home visit, the
 * persuasion letter and the report to the academic office stay open (they carry over, or are the
 * stage's own). */
BX_TEST(moving_past_a_stage_cancels_its_tasks_unless_they_carry_over)
{
    pipeline_start(2, "2026-09-28 07:30");
    rollcall_sent("2026-09-28", "2026-09-29 08:15", first_only, NULL);
    rollcall("2026-09-29", first_only, NULL);
    char *tasks = untag(rows_of(
        "SELECT t.kind, coalesce(t.outcome, 'open'), coalesce(to_char(t.ended_at AT TIME ZONE "
        "'Asia/Shanghai', 'MM-DD HH24:MI'), '-'), t.overdue_at IS NOT NULL FROM cases.task t JOIN "
        "cases.case c ON c.id = t.case_id WHERE c.student_id = $1 ORDER BY t.id",
        1));
    CHECK_STR(tasks, "contact_family|cancelled|09-29 08:30|f\nhome_visit|open|-|f\n");
    free(tasks);
    /* its timer was cancelled in the same transaction: nothing falls due at 17:00 */
    char *timers = rows_of("SELECT tm.cancelled, tm.fired_at IS NOT NULL FROM cases.timer tm JOIN "
                           "cases.task t ON t.task_key = tm.timer_key WHERE t.kind = "
                           "'contact_family' AND t.case_id = (SELECT id FROM cases.case WHERE "
                           "student_id = $1)",
                           1);
    CHECK_STR(timers, "t|t\n");
    free(timers);
    rollcall("2026-09-30", first_only, NULL);
    rollcall("2026-10-08", first_only, NULL);
    rollcall("2026-10-09", first_only, NULL);
    at("2026-10-09 18:00");
    tasks = untag(rows_of(
        "SELECT t.kind, coalesce(t.outcome, 'open'), coalesce(to_char(t.ended_at AT TIME ZONE "
        "'Asia/Shanghai', 'MM-DD HH24:MI'), '-'), t.overdue_at IS NOT NULL FROM cases.task t JOIN "
        "cases.case c ON c.id = t.case_id WHERE c.student_id = $1 ORDER BY t.id",
        1));
    CHECK_STR(tasks, "contact_family|cancelled|09-29 08:30|f\n"
                     "home_visit|open|-|t\n"
                     "report_to_school|cancelled|10-09 08:30|t\n"
                     "persuasion_letter|open|-|t\n"
                     "report_academic_office|open|-|t\n");
    free(tasks);
    /* the cancelled contact never escalated; the overdue report did, before it was cancelled */
    char *escalated = untag(rows_of(
        "SELECT t.kind, count(*) FROM cases.event e JOIN cases.case c ON c.id = e.case_id JOIN "
        "cases.task t ON t.task_key = e.payload->'task'->>'task_id' WHERE c.student_id = $1 AND "
        "e.kind = 'escalated' GROUP BY t.kind ORDER BY t.kind",
        1));
    CHECK_STR(escalated, "home_visit|1\npersuasion_letter|1\nreport_academic_office|1\n"
                         "report_to_school|1\n");
    free(escalated);
    /* every message valid by its schema (no action was posted in this run) */
    topic_log *logs[] = {&pl.attendance, &pl.risk, &pl.events, &pl.requests};
    for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
        topic_sync(logs[i]);
        CHECK(logs[i]->validated > 0);
    }
    pipeline_stop();
    forget_posted();
}

/* Issue 15: a class that sends no roll call. Monday reported; Tuesday none: the homeroom teacher
 * is reminded at 10:00 and the principal told at the day's end; Wednesday none again: the
 * academic office hears of two school days in a row. The requests name the school and the
 * class's registry label, never a child. */
BX_TEST(a_class_without_roll_calls_reaches_the_principal_and_the_academic_office)
{
    pipeline_start(2, "2026-09-28 07:30");
    rollcall("2026-09-28", NULL, NULL);
    at("2026-09-29 09:59");
    at("2026-09-29 10:00");
    at("2026-09-29 18:00");
    at("2026-09-30 18:00");
    char *asked = untag(rows_of(
        "SELECT split_part(o.event_id, ':', 5) || '|' || split_part(o.event_id, ':', 6) || '|' || "
        "(o.payload::jsonb->>'template') || '|' || (o.payload::jsonb->>'recipient_role') || '|' "
        "|| coalesce(o.payload::jsonb->>'recipient_staff_id', '-') || '|' || "
        "(o.payload::jsonb->'params'->>'class') || '|' || coalesce(o.payload::jsonb->'params'->>"
        "'first_day', '-') FROM cases.outbox o WHERE o.event_id LIKE 'duty:rollcall%' AND "
        "o.event_id LIKE '%' || split_part($1::text, '-', 1) || '%' ORDER BY o.id",
        1));
    CHECK_STR(asked, "2026-09-29|remind|rollcall_reminder|homeroom_teacher|TH|三年级1班|-\n"
                     "2026-09-29|end|rollcall_missing|principal|-|三年级1班|-\n"
                     "2026-09-30|remind|rollcall_reminder|homeroom_teacher|TH|三年级1班|-\n"
                     "2026-09-30|end|rollcall_missing|principal|-|三年级1班|-\n"
                     "2026-09-30|two_days|rollcall_missing_two_days|academic_office|-|三年级1班|"
                     "2026-09-29\n");
    free(asked);
    topic_sync(&pl.requests); /* they match bx.notify.requests.v1 */
    CHECK(pl.requests.validated >= 5);
    pipeline_stop();
    forget_posted();
}

/* Issue 15: the roll-call checks of school days a clock jump passed over are caught up. Monday
 * 09-28 is reported; the clock then jumps to Friday 10-09 18:00 across National Day: Tuesday,
 * Wednesday and Thursday 10-08 had no roll call and their checks never ran. They run now: no
 * reminder for a day that is over; the principal gets each of those days, and the academic office
 * each second day in a row, as tasks for the digest naming the day; Friday's own checks go as SMS
 * as on any day. */
BX_TEST(roll_call_checks_catch_up_the_days_a_clock_jump_passed)
{
    pipeline_start(2, "2026-09-28 07:30");
    rollcall("2026-09-28", NULL, NULL);
    at("2026-09-28 18:00");
    at("2026-10-09 18:00");
    settle();
    char *asked = untag(rows_of(
        "SELECT split_part(o.event_id, ':', 5) || '|' || split_part(o.event_id, ':', 6) || '|' || "
        "(o.payload::jsonb->>'template') || '|' || (o.payload::jsonb->>'recipient_role') || '|' "
        "|| coalesce(o.payload::jsonb->>'recipient_staff_id', '-') || '|' || "
        "(o.payload::jsonb->'params'->>'class') || '|' || coalesce(o.payload::jsonb->'params'->>"
        "'first_day', '-') || '|' || (o.payload::jsonb->>'channel') FROM cases.outbox o WHERE "
        "o.event_id LIKE 'duty:rollcall%' AND o.event_id LIKE '%' || split_part($1::text, '-', 1) "
        "|| '%' ORDER BY split_part(o.event_id, ':', 5), split_part(o.event_id, ':', 6)",
        1));
    CHECK_STR(asked,
              "2026-09-29|end|rollcall_missed|principal|-|三年级1班|2026-09-29|task\n"
              "2026-09-30|end|rollcall_missed|principal|-|三年级1班|2026-09-30|task\n"
              "2026-09-30|two_days|rollcall_missed_two_days|academic_office|-|三年级1班|2026-09-29|"
              "task\n"
              "2026-10-08|end|rollcall_missed|principal|-|三年级1班|2026-10-08|task\n"
              "2026-10-08|two_days|rollcall_missed_two_days|academic_office|-|三年级1班|2026-09-30|"
              "task\n"
              "2026-10-09|end|rollcall_missing|principal|-|三年级1班|-|sms\n"
              "2026-10-09|remind|rollcall_reminder|homeroom_teacher|TH|三年级1班|-|sms\n"
              "2026-10-09|two_days|rollcall_missing_two_days|academic_office|-|三年级1班|"
              "2026-10-08|sms\n");
    free(asked);
    /* each day's checks once: a timer per day and check, all fired */
    char *timers =
        rows_of("SELECT count(*), count(*) FILTER (WHERE fired_at IS NULL) FROM "
                "cases.timer WHERE timer_key LIKE 'duty:rollcall%' AND right(timer_key, 10) "
                "BETWEEN '2026-09-28' AND '2026-10-09' AND $1::text <> ''",
                1);
    CHECK_STR(timers, "10|0\n"); /* morning and end of 09-28, 09-29, 09-30, 10-08, 10-09 */
    free(timers);
    topic_sync(&pl.requests); /* they match bx.notify.requests.v1 */
    CHECK(pl.requests.validated >= 8);
    pipeline_stop();
    forget_posted();
}

/* Back on Thursday after three days: the teacher records the return, the case waits for the
 * township's sign-off of the return report (复学报告书), and the officer's signed return closes it.
 * Nothing more is asked for the child afterwards. */
BX_TEST(return_to_school_closes_with_the_township_signoff)
{
    pipeline_start(2, "2026-09-28 07:30");
    rollcall("2026-09-28", first_only, NULL);
    action(1, "2026-09-28 10:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", first_only, NULL);
    action(1, "2026-09-29 15:00", "home_visit",
           "{\"outcome\":\"will_return\",\"reason\":\"family\"}");
    rollcall("2026-09-30", first_only, NULL);
    action(1, "2026-09-30 10:00", "letter_delivered", "{\"letter\":\"persuasion_letter\"}");
    rollcall("2026-10-08", NULL, NULL);
    action(1, "2026-10-08 09:00", "returned", "{\"return_date\":\"2026-10-08\"}");
    char *waiting = untag(rows_of(
        "SELECT c.closed_at IS NULL, t.kind, t.owner_role, to_char(t.due_at AT TIME ZONE "
        "'Asia/Shanghai', 'MM-DD HH24:MI') FROM cases.case c JOIN cases.task t ON t.case_id = "
        "c.id WHERE c.student_id = $1 AND t.kind = 'return_report_signoff'",
        1));
    /* five school days after Thursday 10-08: 10-09, the make-up Saturday 10-10, 10-12, 10-13,
     * 10-14 */
    CHECK_STR(waiting, "t|return_report_signoff|township_officer|10-14 17:00\n");
    free(waiting);
    /* the school's key cannot sign for the township; the officer signs in bx-console */
    school_key_signoff_refused(1, "2026-10-08");
    char *still = rows_of("SELECT closed_at IS NULL FROM cases.case WHERE student_id = $1", 1);
    CHECK_STR(still, "t\n");
    free(still);
    township_signoff(1, "2026-10-09 11:00", "2026-10-08", true);
    char *closed = rows_of("SELECT ending, to_char(closed_at AT TIME ZONE 'Asia/Shanghai', "
                           "'MM-DD HH24:MI') FROM cases.case WHERE student_id = $1",
                           1);
    CHECK_STR(closed, "returned|10-09 11:00\n");
    free(closed);
    /* nothing is left open: the tasks not done are cancelled with the case, their timers too */
    char *endings = rows_of("SELECT coalesce(t.outcome, 'open'), count(*) FROM cases.task t JOIN "
                            "cases.case c ON c.id = t.case_id WHERE c.student_id = $1 GROUP BY 1 "
                            "ORDER BY 1",
                            1);
    CHECK_STR(endings, "cancelled|1\ndone|4\n");
    free(endings);
    char *waiting_timers =
        rows_of("SELECT count(*) FROM cases.timer tm JOIN cases.case c ON c.id = "
                "tm.case_id WHERE c.student_id = $1 AND tm.fired_at IS NULL",
                1);
    CHECK_STR(waiting_timers, "0\n");
    free(waiting_timers);
    /* a month on, the open deadlines of the closed case have not escalated anything */
    at("2026-11-30 18:00");
    char *after = rows_of("SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = "
                          "e.case_id WHERE c.student_id = $1 AND e.occurred_at > "
                          "'2026-10-09 11:00+08'",
                          1);
    CHECK_STR(after, "0\n");
    free(after);
    static const char *const ev_fields[] = {"event", "stage", NULL};
    char *events = messages_of(&pl.events, 1, ev_fields);
    size_t len = strlen(events);
    REQUIRE(len > 1);
    const char *last = events + len - 1; /* the last line: the case closed, nothing after */
    while (last > events && last[-1] != '\n')
        last--;
    CHECK(strncmp(last, "closed|", 7) == 0);
    free(events);
    validate_all_topics();
    officer_stop();
    pipeline_stop();
    forget_posted();
}

/* Dead letters count only when they carry this run's ids: other runs on the shared topics
 * (tests in parallel) may send bx-escalate messages for students it does not know. */
#define SNAPSHOT_SQL                                                                               \
    "SELECT (SELECT string_agg(event_id || kind || coalesce(stage, '') || late::text, ',' ORDER "  \
    "BY id) FROM cases.event) || '/' || (SELECT string_agg(task_key || coalesce(done_at::text, "   \
    "'') || coalesce(overdue_at::text, ''), ',' ORDER BY id) FROM cases.task) || '/' || (SELECT "  \
    "string_agg(event_id, ',' ORDER BY id) FROM cases.outbox WHERE event_id NOT LIKE 'dlq:%' OR "  \
    "payload LIKE '%' || split_part($1::text, '-', 1) || '%') || '/' || (SELECT "                  \
    "string_agg(timer_key || coalesce(fired_at::text, ''), ',' ORDER BY id) FROM cases.timer) || " \
    "'/' || (SELECT string_agg(id || stage || coalesce(ending, ''), ',' ORDER BY id) FROM "        \
    "cases.case) || '/' || (SELECT count(*) FROM attendance.fact WHERE student_id LIKE "           \
    "split_part($1::text, '-', 1) || '-%') || $1"

/* Everything is delivered again, twice over: every request is posted again (bx-ingest answers
 * duplicate and publishes nothing), then bx-score and bx-escalate are restarted with their
 * groups rewound to the scenario's start, so every fact, assessment and action is consumed a
 * second time. Cases, events, tasks, timers, the outbox and the messages asked for stay as they
 * were. */
BX_TEST(redelivery_of_everything_changes_nothing)
{
    pipeline_start(3, "2026-09-28 07:30");
    static const int both[] = {1, 2, 0};
    rollcall("2026-09-28", both, NULL);
    action(1, "2026-09-28 10:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", both, NULL);
    action(2, "2026-09-29 15:00", "home_visit", "{\"outcome\":\"not_home\",\"reason\":\"other\"}");
    rollcall("2026-09-30", both, NULL); /* three days: the return needs the township's sign-off */
    rollcall("2026-10-08", first_only, NULL);
    township_signoff(2, "2026-10-08 09:00", "2026-10-08", false);
    at("2026-10-08 18:00");
    char *before = rows_of(SNAPSHOT_SQL, 1);
    /* the snapshot counts this scenario's facts (the shared topics carry other tests' too) */
    char *facts = rows_of("SELECT count(*) FROM attendance.fact WHERE student_id LIKE "
                          "split_part($1::text, '-', 1) || '-%'",
                          1);
    CHECK(atoi(facts) >= 6);
    free(facts);
    char *requests1 = requests_of(1), *requests2 = requests_of(2);
    CHECK(count_lines(requests1) > 5);
    CHECK(count_lines(requests2) > 3);

    /* 1. every request again: duplicates, nothing published */
    int n = nposted;
    for (int i = 0; i < n; i++) {
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", pl.ingest_port, posted[i].path);
        itest_response r = {0};
        REQUIRE(itest_post(url, pl.key, "application/json", posted[i].body, strlen(posted[i].body),
                           &r));
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.body.data, "\"accepted\":0");
        bx_buf_free(&r.body);
    }
    /* and the officer's sign-off form once more (signed in again: the session went idle): the
     * case is closed, nothing is written */
    officer_signs_in();
    CHECK_CONTAINS(officer_posts_form(), "已签署：个案已结案");
    settle();
    char *after_posts = rows_of(SNAPSHOT_SQL, 1);
    CHECK_STR(after_posts, before);
    free(after_posts);

    /* 2. every message consumed again */
    itest_stop(pl.escalate);
    itest_stop(pl.score);
    group_rewind(pl.score_group_name, pl.start_offsets[0]);
    group_rewind(pl.escalate_group_name, pl.start_offsets[1]);
    group_rewind(pl.escalate_group_name, pl.start_offsets[2]);
    start_score();
    start_escalate();
    settle();
    char *after_replay = rows_of(SNAPSHOT_SQL, 1);
    CHECK_STR(after_replay, before);
    free(after_replay);
    /* no notification was asked for a second time */
    char *again1 = requests_of(1), *again2 = requests_of(2);
    CHECK_STR(again1, requests1);
    CHECK_STR(again2, requests2);
    free(again1);
    free(again2);
    free(requests1);
    free(requests2);
    free(before);
    validate_all_topics();
    officer_stop();
    pipeline_stop();
    forget_posted();
}

/* report_filed at bx-ingest: a precise error for each bad record (naming the record and the field),
 * the good one accepted and published as bx.actions.v1 with its task and who filed it. */
BX_TEST(report_filed_is_validated_at_the_door)
{
    pipeline_start(1, "2026-09-30 16:00");
    char body[3000];
    snprintf(body, sizeof(body),
             "{\"records\":["
             "{\"student_id\":\"%s-01\",\"action\":\"report_filed\",\"date\":\"2026-09-30\","
             "\"staff_id\":\"%sH\",\"details\":{\"task\":\"report_to_school\"},"
             "\"event_id\":\"%s-rf-0\"},"
             "{\"student_id\":\"%s-01\",\"action\":\"report_filed\",\"date\":\"2026-09-30\","
             "\"details\":{\"task\":\"report_to_school\"}},"
             "{\"student_id\":\"%s-01\",\"action\":\"report_filed\",\"date\":\"2026-09-30\","
             "\"staff_id\":\"%sH\",\"details\":{\"filed_with\":\"school\"}},"
             "{\"student_id\":\"%s-01\",\"action\":\"report_filed\",\"date\":\"2026-09-30\","
             "\"staff_id\":\"%sH\",\"details\":{\"task\":\"Report To School\"}},"
             "{\"student_id\":\"%s-01\",\"action\":\"report_filed\",\"date\":\"2026-09-30\","
             "\"staff_id\":\"%sH\",\"details\":{\"task\":\"report_to_school\","
             "\"filed_with\":\"principal\"}},"
             "{\"student_id\":\"%s-01\",\"action\":\"report_filed\",\"date\":\"2026-09-30\","
             "\"staff_id\":\"%sH\",\"details\":{\"task\":\"report_to_school\",\"pages\":2}},"
             "{\"student_id\":\"%s-01\",\"action\":\"report_written\",\"date\":\"2026-09-30\","
             "\"staff_id\":\"%sH\",\"details\":{}}]}",
             pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag,
             pl.tag, pl.tag, pl.tag);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/actions", pl.ingest_port);
    itest_response r = {0};
    REQUIRE(itest_post(url, pl.key, "application/json", body, strlen(body), &r));
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "\"accepted\":1");
    CHECK_CONTAINS(r.body.data, "\"rejected\":6");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[1].staff_id\",\"reason\":\"missing_field\"");
    CHECK_CONTAINS(r.body.data, "records[1].staff_id: report_filed needs the staff member who "
                                "filed it");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[2].details.task\"");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[3].details.task\"");
    CHECK_CONTAINS(r.body.data, "records[3].details.task: expected a task kind of the ladder "
                                "such as report_to_school or dropout_report_form (a-z, 0-9 and _, "
                                "up to 39), got \\\"Report To School\\\"");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[4].details.filed_with\"");
    CHECK_CONTAINS(r.body.data, "expected one of school, academic_office, township, "
                                "county_bureau, got \\\"principal\\\"");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[5].details\",\"reason\":\"unknown_field\"");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[6].action\"");
    CHECK_CONTAINS(r.body.data, "letter_delivered, report_filed, returned");
    bx_buf_free(&r.body);
    settle();
    static const char *const fields[] = {"action", "staff_id", "details", NULL};
    char *published = untag(messages_of(&pl.actions, 1, fields));
    CHECK_STR(published, "report_filed|TH|{\"task\":\"report_to_school\",\"filed_with\":null}\n");
    free(published);
    /* the topic's schema wants who filed it */
    cJSON *schema = bx_schema_load_topic(BX_TOPIC_ACTIONS);
    REQUIRE(schema != NULL);
    static const char *const anonymous =
        "{\"schema\":\"bx.actions.v1\",\"event_id\":\"a-1\",\"student_id\":\"s1\","
        "\"school_id\":\"k1\",\"action\":\"report_filed\",\"date\":\"2026-09-30\","
        "\"staff_id\":null,\"recorded_at\":\"2026-09-30T16:00:00+08:00\",\"recorded_by\":\"c1\","
        "\"details\":{\"task\":\"report_to_school\",\"filed_with\":null}}";
    char err[300];
    CHECK(!bx_schema_check_text(schema, anonymous, strlen(anonymous), err, sizeof(err)));
    CHECK_CONTAINS(err, "staff_id");
    cJSON_Delete(schema);
    validate_topics(true);
    pipeline_stop();
    forget_posted();
}

/* The reports the ladder asks for, filed through bx-ingest: the homeroom teacher's report to the
 * school on time does that task (no escalation); the report to the academic office filed a school
 * day after its deadline is done late after its escalation; a report for a task the case does not
 * have changes nothing. */
BX_TEST(report_filed_does_the_report_tasks)
{
    pipeline_start(2, "2026-09-28 07:30");
    rollcall("2026-09-28", first_only, NULL);
    action(1, "2026-09-28 10:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    rollcall("2026-09-29", first_only, NULL);
    action(1, "2026-09-29 15:00", "home_visit", "{\"outcome\":\"refused\",\"reason\":\"family\"}");
    rollcall("2026-09-30", first_only, NULL);
    action(1, "2026-09-30 16:00", "report_filed",
           "{\"task\":\"report_to_school\",\"filed_with\":\"school\"}");
    action(1, "2026-09-30 16:30", "letter_delivered", "{\"letter\":\"persuasion_letter\"}");
    rollcall("2026-10-08", first_only, NULL);
    rollcall("2026-10-09", first_only, NULL);
    at("2026-10-12 08:00");
    char *before = rows_of("SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = "
                           "e.case_id WHERE c.student_id = $1",
                           1);
    action(1, "2026-10-12 09:00", "report_filed",
           "{\"task\":\"county_report\",\"filed_with\":null}");
    char *after = rows_of("SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = "
                          "e.case_id WHERE c.student_id = $1",
                          1);
    CHECK_STR(after, before); /* no county report is due: nothing happens */
    free(before);
    free(after);
    action(1, "2026-10-12 10:00", "report_filed",
           "{\"task\":\"report_academic_office\",\"filed_with\":\"academic_office\"}");
    at("2026-10-12 18:00");

    static const char *const reports_sql =
        "SELECT t.kind, to_char(t.due_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), "
        "to_char(t.done_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), t.done_by, "
        "t.overdue_at IS NOT NULL FROM cases.task t JOIN cases.case c ON c.id = t.case_id WHERE "
        "c.student_id = $1 AND t.kind LIKE 'report%' ORDER BY t.id";
    char *reports = untag(rows_of(reports_sql, 1));
    CHECK_STR(reports, "report_to_school|09-30 17:00|09-30 16:00|TH|f\n"
                       "report_academic_office|10-09 17:00|10-12 10:00|TH|t\n");
    free(reports);
    static const char *const done_sql =
        "SELECT e.kind, e.actor, e.late FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
        "JOIN cases.task t ON t.task_key = e.payload->'task'->>'task_id' WHERE c.student_id = $1 "
        "AND t.kind = 'report_academic_office' ORDER BY e.id";
    char *done = untag(rows_of(done_sql, 1));
    CHECK_STR(done, "task_created|bx-escalate|f\ntask_overdue|bx-escalate|t\n"
                    "escalated|bx-escalate|t\ntask_done|TH|t\n");
    free(done);
    /* the principal heard of the late report to the academic office only */
    static const char *const fields[] = {"template", "recipient_role", NULL};
    char *requests = messages_of(&pl.requests, 1, fields);
    const char *first = strstr(requests, "task_overdue|");
    CHECK(first != NULL && strstr(first + 1, "task_overdue|") == NULL);
    free(requests);
    validate_all_topics();
    pipeline_stop();
    forget_posted();
}
