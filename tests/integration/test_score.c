/* bx-score against the real Kafka, Redis and PostgreSQL: streaks through roll calls, leave and
 * presence; replays and shuffles give identical state; rebuild gives identical state; bad messages
 * are dead-lettered; `bxctl student show`. Each case runs its own bx-score on its own topic. */
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_schema_check.h"
#include "bx_test.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Friday 2026-11-27 in the autumn term of calendar it-2026 (closure on 2026-11-20). */
#define FRIDAY "2026-11-27"

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static const char *bxctl(void)
{
    return itest_env("BXCTL_BIN", BXCTL_BIN);
}

/* The score tests' own students, each case in a class of its own: a class's roll call recomputes
 * every student of the class as of the clock of the bx-score that reads it, so two cases that share
 * a class (ctest -j2 runs them side by side, each with its own clock) overwrite each other's
 * summaries. The rebuild has a school of its own for the same reason (bxctl rebuild --school
 * recomputes every student of the school). Calendar it-2026 for both schools. */
static const struct roster_row {
    const char *student, *school, *klass, *flags;
} roster[] = {
    {"ISCS01", "ISC1", "ISCA", "left_behind"}, /* absence_streak_leave_pauses_presence_ends */
    {"ISCS02", "ISC1", "ISCA", ""},
    {"ISCS21", "ISC1", "ISCC", /* flags_raise_the_tier_one_step_at_most */
     "registered_poor;left_behind;learning_difficulty;wavering;orphan"},
    {"ISCS13", "ISC1", "ISCB", ""}, /* replayed_and_shuffled_facts_give_identical_state */
    {"ISCS14", "ISC1", "ISCB", ""},
    {"ISCS16", "ISC1", "ISCB", ""},
    {"ISCS17", "ISC1", "ISCB", ""},
    {"ISCS22", "ISC1", "ISCD", ""}, /* bad_messages_go_to_the_dead_letter_topic */
    {"ISCS23", "ISC1", "ISCE", ""}, /* student_show_prints_the_streak */
    {"ISCS24", "ISC2", "ISCF", ""}, /* rebuild_after_losing_the_keys_gives_identical_state */
    {"ISCS25", "ISC2", "ISCF", ""},
    {"ISCS31", "ISC1", "ISCG", ""}, /* a_report_before_a_listed_absence_ends_no_streak */
    {"ISCS32", "ISC1", "ISCG", ""},
};
#define NROSTER (sizeof(roster) / sizeof(roster[0]))

/* The school of a class of the roster. */
static const char *school_of(const char *klass)
{
    for (size_t i = 0; i < NROSTER; i++)
        if (strcmp(roster[i].klass, klass) == 0)
            return roster[i].school;
    REQUIRE(!"a class of the roster");
    return NULL;
}

static void fixture(void)
{
    free(itest_registry_fixture(NULL)); /* county, township, calendar it-2026 */
    char *dir = itest_tmpdir("score-registry");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "ISC1,评分测试小学,990001100,primary,it-2026\n"
                     "ISC2,评分测试二小,990001100,primary,it-2026\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\n"
                     "ISCA,ISC1,3,三年级2班,\nISCB,ISC1,4,四年级2班,\nISCC,ISC1,3,三年级3班,\n"
                     "ISCD,ISC1,3,三年级4班,\nISCE,ISC1,3,三年级5班,\nISCF,ISC2,4,四年级1班,\n"
                     "ISCG,ISC1,3,三年级6班,\n");
    bx_buf students;
    bx_buf_init(&students, 0);
    REQUIRE(bx_buf_puts(&students, "student_id,school_id,class_id,name,flags\n") == BX_OK);
    for (size_t i = 0; i < NROSTER; i++)
        REQUIRE(bx_buf_printf(&students, "%s,%s,%s,学生%zu,%s\n", roster[i].student,
                              roster[i].school, roster[i].klass, i + 1, roster[i].flags) == BX_OK);
    itest_write_file(dir, "students.csv", students.data);
    bx_buf_free(&students);
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run((const char *[]){bxctl(), "import", "--dir", dir, NULL}, NULL, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl import: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_reset(&out);
    rc = itest_run((const char *[]){bxctl(), "migrate", NULL}, NULL, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl migrate: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
    free(dir);
}

static redisContext *rds(void)
{
    redisContext *c = NULL;
    bx_error err = {0};
    REQUIRE(bx_redis_connect(itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799"), 5000, &c,
                             &err) == BX_OK);
    return c;
}

static PGconn *pg(void)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue"), 5000,
                          &db, &err) == BX_OK);
    return db;
}

/* Forgets everything the store holds about these students (Redis keys, PostgreSQL rows). */
static void forget(const char *const *students)
{
    redisContext *c = rds();
    PGconn *db = pg();
    for (size_t i = 0; students[i]; i++) {
        redisReply *r =
            redisCommand(c, "DEL bx:s:{%s}:facts bx:s:{%s}:sum", students[i], students[i]);
        REQUIRE(r != NULL);
        freeReplyObject(r);
        PGresult *res = NULL;
        bx_error err = {0};
        REQUIRE(bx_pg_query(db, "DELETE FROM attendance.fact WHERE student_id = $1", 1,
                            (const char *[]){students[i]}, &res, &err) == BX_OK);
        PQclear(res);
    }
    PQfinish(db);
    redisFree(c);
}

/* A hash as sorted "field=value" lines (caller frees). */
static char *hash_text(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    REQUIRE(r != NULL && r->type == REDIS_REPLY_ARRAY);
    size_t n = r->elements / 2;
    char **lines = calloc(n + 1, sizeof(*lines));
    for (size_t i = 0; i < n; i++) {
        size_t len = r->element[2 * i]->len + r->element[2 * i + 1]->len + 2;
        lines[i] = malloc(len);
        snprintf(lines[i], len, "%s=%s", r->element[2 * i]->str, r->element[2 * i + 1]->str);
    }
    freeReplyObject(r);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
            char *t = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = t;
        }
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "") == BX_OK);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(bx_buf_printf(&b, "%s\n", lines[i]) == BX_OK);
        free(lines[i]);
    }
    free(lines);
    return bx_buf_steal(&b);
}

static char *student_hash(const char *student, const char *which)
{
    redisContext *c = rds();
    char key[80];
    snprintf(key, sizeof(key), "bx:s:{%s}:%s", student, which);
    char *text = hash_text(c, key);
    redisFree(c);
    return text;
}

/* One summary field, or "" (caller frees). */
static char *summary_field(const char *student, const char *name)
{
    redisContext *c = rds();
    redisReply *r = redisCommand(c, "HGET bx:s:{%s}:sum %s", student, name);
    REQUIRE(r != NULL);
    char *v = strdup(r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* ---- a bx-score of the case's own ---- */

typedef struct svc {
    char topic[96];
    char *clock;
    pid_t pid;
    int port;
    bx_producer *producer;
    bx_delivery_wait *wait;
    long long produced;
} svc;

static void svc_start(svc *s, const char *local_time)
{
    memset(s, 0, sizeof(*s));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(s->topic, sizeof(s->topic), "bx.itest.score.%d.%ld", (int)getpid(),
             (long)ts.tv_sec % 100000);
    bx_error err = {0};
    const char *const topics[] = {s->topic};
    const int partitions[] = {3};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 1, 15000, &err) == BX_OK);
    s->clock = itest_clock_file(local_time);
    char topic_env[160], group_env[160];
    snprintf(topic_env, sizeof(topic_env), "BX_ATTENDANCE_TOPIC=%s", s->topic);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=bx-score-itest-%d-%ld", (int)getpid(),
             (long)ts.tv_nsec);
    const char *env[] = {topic_env, group_env, "BX_SCORE_BATCH_MS=20", NULL};
    s->pid = itest_service_start(itest_env("BX_SCORE_BIN", BX_SCORE_BIN), s->clock, env, &s->port);
    REQUIRE(bx_producer_new(brokers(), NULL, &s->producer, &err) == BX_OK);
    s->wait = bx_delivery_wait_new();
}

/* Stops the service; the clock file stays (s->clock, freed by svc_free). */
static void svc_stop(svc *s)
{
    itest_stop(s->pid);
    s->pid = 0;
    bx_producer_free(s->producer, 5000);
    s->producer = NULL;
    bx_delivery_wait_free(s->wait);
    s->wait = NULL;
}

static void svc_free(svc *s)
{
    if (s->pid)
        svc_stop(s);
    free(s->clock);
    s->clock = NULL;
}

static void produce(svc *s, const char *key, const char *value)
{
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, s->wait);
    REQUIRE(bx_producer_send(s->producer, s->topic, key, strlen(key), value, strlen(value),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(s->wait, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    s->produced++;
}

/* Waits until bx-score applied every message produced so far (summaries are stored before the
 * counter moves); checks that the service is still running. */
static void settle(svc *s, long long dead_letters)
{
    long long want = s->produced - dead_letters;
    for (int i = 0; i < 600; i++) {
        int status;
        REQUIRE(waitpid(s->pid, &status, WNOHANG) == 0);
        long long applied = itest_metric(s->port, "bx_score_facts_total{result=\"applied\"}");
        long long dlq = itest_metric(s->port, "bx_score_dlq_total");
        if (applied >= want && dlq >= dead_letters)
            return;
        usleep(100 * 1000);
    }
    REQUIRE(!"bx-score did not apply every message in 60 s");
}

/* A fact: source rollcall (rollcall_id = event_id's part before ':') or attendance. */
static void fact(svc *s, const char *student, const char *klass, const char *date, int period,
                 const char *status, const char *source, const char *event_id,
                 const char *recorded_at)
{
    char period_text[8], rollcall[160], leave_kind[16], msg[1024];
    snprintf(period_text, sizeof(period_text), period ? "%d" : "null", period);
    if (strcmp(source, "rollcall") == 0)
        snprintf(rollcall, sizeof(rollcall), "\"%.*s\"", (int)strcspn(event_id, ":"), event_id);
    else
        snprintf(rollcall, sizeof(rollcall), "null");
    snprintf(leave_kind, sizeof(leave_kind), strcmp(status, "leave") == 0 ? "\"sick\"" : "null");
    snprintf(msg, sizeof(msg),
             "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":\"%s\","
             "\"student_id\":\"%s\",\"school_id\":\"%s\",\"class_id\":\"%s\",\"date\":\"%s\","
             "\"period\":%s,\"status\":\"%s\",\"leave_kind\":%s,\"source\":\"%s\","
             "\"rollcall_id\":%s,\"recorded_at\":\"%s\",\"recorded_by\":\"itest\"}",
             event_id, student, school_of(klass), klass, date, period_text, status, leave_kind,
             source, rollcall, recorded_at);
    produce(s, student, msg);
}

/* The class's roll call of date; listed (a JSON array's text) names whom it listed, NULL for a
 * report from before the list. */
static void class_report_listing(svc *s, const char *klass, const char *date, const char *listed)
{
    char msg[1024], member[256] = "";
    if (listed)
        snprintf(member, sizeof(member), ",\"listed\":%s", listed);
    snprintf(msg, sizeof(msg),
             "{\"schema\":\"bx.attendance.v1\",\"type\":\"class_report\","
             "\"event_id\":\"rc-%s-%s\",\"school_id\":\"%s\",\"class_id\":\"%s\","
             "\"date\":\"%s\",\"period\":null,\"rollcall_id\":\"rc-%s-%s\",\"enrolled\":10,"
             "\"absent\":1,\"leave\":0,\"late\":0,\"early_leave\":0,\"present\":9%s,"
             "\"recorded_at\":\"%sT08:10:00+08:00\",\"recorded_by\":\"itest\"}",
             klass, date, school_of(klass), klass, date, klass, date, member, date);
    produce(s, klass, msg);
}

static void class_report(svc *s, const char *klass, const char *date)
{
    class_report_listing(s, klass, date, NULL);
}

/* A roll call of one day: the class report and one student's status. */
static void roll_call(svc *s, const char *klass, const char *date, const char *student,
                      const char *status)
{
    char event_id[128], at[40];
    snprintf(event_id, sizeof(event_id), "rc-%s-%s:%s", klass, date, student);
    snprintf(at, sizeof(at), "%sT08:10:00+08:00", date);
    class_report(s, klass, date);
    fact(s, student, klass, date, 0, status, "rollcall", event_id, at);
}

static void leave(svc *s, const char *student, const char *klass, const char *first,
                  const char *last, const char *event_id)
{
    char msg[1024];
    snprintf(msg, sizeof(msg),
             "{\"schema\":\"bx.attendance.v1\",\"type\":\"leave\",\"event_id\":\"%s\","
             "\"student_id\":\"%s\",\"school_id\":\"%s\",\"class_id\":\"%s\","
             "\"first_date\":\"%s\",\"last_date\":\"%s\",\"first_period\":null,"
             "\"last_period\":null,\"leave_kind\":\"sick\",\"requested_by\":\"guardian\","
             "\"phoned_in\":true,\"approved\":true,\"recorded_at\":\"%sT17:00:00+08:00\","
             "\"recorded_by\":\"itest\"}",
             event_id, student, school_of(klass), klass, first, last, last);
    produce(s, student, msg);
}

static void expect_field(const char *student, const char *name, const char *want)
{
    char *v = summary_field(student, name);
    if (strcmp(v, want) != 0)
        fprintf(stderr, "%s %s: got \"%s\", want \"%s\"\n", student, name, v, want);
    CHECK(strcmp(v, want) == 0);
    free(v);
}

static const char *const week[] = {"2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", FRIDAY};

BX_TEST(absence_streak_leave_pauses_presence_ends)
{
    fixture();
    forget((const char *[]){"ISCS01", NULL});
    svc s;
    svc_start(&s, FRIDAY " 18:00");
    itest_mark *risk = itest_topic_mark(BX_TOPIC_RISK);
    itest_mark *analytics = itest_topic_mark(BX_TOPIC_ANALYTICS_RISK);
    for (int d = 0; d < 5; d++)
        roll_call(&s, "ISCA", week[d], "ISCS01", "absent");
    settle(&s, 0);
    expect_field("ISCS01", "streak_days", "5");
    expect_field("ISCS01", "streak_start", "2026-11-23");
    expect_field("ISCS01", "tier", "critical");
    expect_field("ISCS01", "today", "absent");

    /* The assessment of the five-day streak, valid against the schema, with its factors. */
    bx_buf got;
    bx_buf_init(&got, 0);
    REQUIRE(itest_topic_collect(risk,
                                "\"student_id\":\"ISCS01\",\"school_id\":\"ISC1\","
                                "\"class_id\":\"ISCA\",\"date\":\"" FRIDAY "\",\"streak_days\":5",
                                1, 20000, &got) == 1);
    cJSON *schema = bx_schema_load_topic(BX_TOPIC_RISK);
    REQUIRE(schema != NULL);
    char err[512];
    if (!bx_schema_check_text(schema, got.data, strlen(got.data) - 1, err, sizeof(err)))
        fprintf(stderr, "bx.risk.v1: %s\n%s", err, got.data);
    CHECK(bx_schema_check_text(schema, got.data, strlen(got.data) - 1, err, sizeof(err)));
    CHECK(strstr(got.data, "\"tier\":\"critical\"") != NULL);
    CHECK(strstr(got.data, "\"factor\":\"streak_days\",\"points\":75") != NULL);
    CHECK(strstr(got.data, "\"factor\":\"left_behind\"") != NULL);
    cJSON_Delete(schema);

    /* Its pseudonymised copy: no student id, no class, no flags. */
    bx_buf_reset(&got);
    REQUIRE(itest_topic_collect(analytics, "\"streak_days\":5,\"streak_start\":\"2026-11-23\"", 1,
                                20000, &got) == 1);
    schema = bx_schema_load_topic(BX_TOPIC_ANALYTICS_RISK);
    REQUIRE(schema != NULL);
    if (!bx_schema_check_text(schema, got.data, strlen(got.data) - 1, err, sizeof(err)))
        fprintf(stderr, "bx.analytics.risk.v1: %s\n%s", err, got.data);
    CHECK(bx_schema_check_text(schema, got.data, strlen(got.data) - 1, err, sizeof(err)));
    CHECK(strstr(got.data, "ISCS01") == NULL);
    CHECK(strstr(got.data, "ISCA") == NULL);
    CHECK(strstr(got.data, "left_behind") == NULL);
    cJSON_Delete(schema);

    /* Approved leave on Wednesday: the day is excused, the streak goes on around it. */
    leave(&s, "ISCS01", "ISCA", "2026-11-25", "2026-11-25", "lv-iscs01-1125");
    settle(&s, 0);
    expect_field("ISCS01", "streak_days", "4");
    expect_field("ISCS01", "streak_start", "2026-11-23");

    /* Monday's roll call finds the child at school: the streak ends. */
    bx_buf out;
    bx_buf_init(&out, 0);
    char clock_env[600];
    snprintf(clock_env, sizeof(clock_env), "BX_CLOCK=file:%s", s.clock);
    REQUIRE(itest_run((const char *[]){bxctl(), "clock", "set", "2026-11-30 09:00", NULL},
                      (const char *[]){clock_env, NULL}, &out) == 0);
    bx_buf_free(&out);
    roll_call(&s, "ISCA", "2026-11-30", "ISCS01", "present");
    settle(&s, 0);
    expect_field("ISCS01", "streak_days", "0");
    expect_field("ISCS01", "today", "present");
    bx_buf_reset(&got);
    CHECK(itest_topic_collect(
              risk,
              "\"student_id\":\"ISCS01\",\"school_id\":\"ISC1\",\"class_id\":\"ISCA\","
              "\"date\":\"2026-11-30\",\"streak_days\":0",
              1, 20000, &got) == 1);

    bx_buf_free(&got);
    itest_mark_free(risk);
    itest_mark_free(analytics);
    svc_free(&s);
}

/* A roll call's report and its absences travel on different partitions (keyed by class and by
 * student), so bx-score may read the report first. The report names whom it listed: until the
 * listed child's own fact arrives the day is "no record" for that child, so no presence is
 * published and the streak (and the case bx-escalate keeps for it) is not ended; the classmates
 * it did not list are present by it. */
BX_TEST(a_report_before_a_listed_absence_ends_no_streak)
{
    fixture();
    forget((const char *[]){"ISCS31", "ISCS32", NULL});
    redisContext *c = rds();
    freeReplyObject(redisCommand(c, "DEL bx:c:{ISCG}:reported"));
    redisFree(c);
    svc s;
    svc_start(&s, "2026-11-24 18:00");
    itest_mark *risk = itest_topic_mark(BX_TOPIC_RISK);
    /* Monday: both absent. */
    class_report_listing(&s, "ISCG", week[0], "[\"ISCS31\",\"ISCS32\"]");
    fact(&s, "ISCS31", "ISCG", week[0], 0, "absent", "rollcall", "rc-ISCG-2026-11-23:ISCS31",
         "2026-11-23T08:10:00+08:00");
    fact(&s, "ISCS32", "ISCG", week[0], 0, "absent", "rollcall", "rc-ISCG-2026-11-23:ISCS32",
         "2026-11-23T08:10:00+08:00");
    settle(&s, 0);
    expect_field("ISCS31", "streak_days", "1");
    expect_field("ISCS32", "streak_days", "1");
    /* Tuesday's report, read before ISCS31's absence: it listed ISCS31, not ISCS32. */
    class_report_listing(&s, "ISCG", week[1], "[\"ISCS31\"]");
    settle(&s, 0);
    expect_field("ISCS31", "streak_days", "1");
    expect_field("ISCS31", "streak_start", "2026-11-23");
    expect_field("ISCS31", "today", "no_record");
    expect_field("ISCS32", "streak_days", "0"); /* present by the report */
    expect_field("ISCS32", "today", "present");
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(risk, "\"student_id\":\"ISCS32\"", 2, 20000, &got), 2);
    /* Assessments are published before bx-score counts their message applied: none is coming. */
    bx_buf_reset(&got);
    CHECK_INT(itest_topic_collect(risk,
                                  "\"student_id\":\"ISCS31\",\"school_id\":\"ISC1\","
                                  "\"class_id\":\"ISCG\",\"date\":\"2026-11-24\"",
                                  1, 1000, &got),
              0);
    /* The absence arrives: the same streak grows. */
    fact(&s, "ISCS31", "ISCG", week[1], 0, "absent", "rollcall", "rc-ISCG-2026-11-24:ISCS31",
         "2026-11-24T08:10:00+08:00");
    settle(&s, 0);
    expect_field("ISCS31", "streak_days", "2");
    expect_field("ISCS31", "streak_start", "2026-11-23");
    expect_field("ISCS31", "today", "absent");
    bx_buf_reset(&got);
    CHECK_INT(itest_topic_collect(risk,
                                  "\"student_id\":\"ISCS31\",\"school_id\":\"ISC1\","
                                  "\"class_id\":\"ISCG\",\"date\":\"2026-11-24\","
                                  "\"streak_days\":2",
                                  1, 20000, &got),
              1);
    bx_buf_free(&got);
    itest_mark_free(risk);
    svc_free(&s);
}

/* Registry flags (65 points) count up to 30, and raise the tier one step at most above what
 * attendance alone gives: one day's absence is medium, two days are high. The service's
 * assessment and bxctl student show agree, limits included. */
BX_TEST(flags_raise_the_tier_one_step_at_most)
{
    fixture();
    forget((const char *[]){"ISCS21", NULL});
    svc s;
    svc_start(&s, "2026-11-12 18:00");
    itest_mark *risk = itest_topic_mark(BX_TOPIC_RISK);
    roll_call(&s, "ISCC", "2026-11-12", "ISCS21", "absent");
    settle(&s, 0);
    expect_field("ISCS21", "streak_days", "1");
    expect_field("ISCS21", "score", "44");
    expect_field("ISCS21", "tier", "medium");
    char *capped = summary_field("ISCS21", "factor.flags_capped");
    char *limited = summary_field("ISCS21", "factor.tier_needs_attendance");
    CHECK_STR(capped, "-35|p|registry flags give 65 points together, counted up to 30");
    CHECK_STR(limited, "-1|p|attendance alone gives 15 points (low); the registry and age may "
                       "raise the tier to medium at most, so they count up to 29 of their 30 "
                       "points");
    free(capped);
    free(limited);
    bx_buf got;
    bx_buf_init(&got, 0);
    REQUIRE(itest_topic_collect(risk,
                                "\"student_id\":\"ISCS21\",\"school_id\":\"ISC1\","
                                "\"class_id\":\"ISCC\",\"date\":\"2026-11-12\",\"streak_days\":1",
                                1, 20000, &got) == 1);
    cJSON *schema = bx_schema_load_topic(BX_TOPIC_RISK);
    REQUIRE(schema != NULL);
    char err[512];
    if (!bx_schema_check_text(schema, got.data, strlen(got.data) - 1, err, sizeof(err)))
        fprintf(stderr, "bx.risk.v1: %s\n%s", err, got.data);
    CHECK(bx_schema_check_text(schema, got.data, strlen(got.data) - 1, err, sizeof(err)));
    cJSON_Delete(schema);
    CHECK(strstr(got.data, "\"score\":44,\"tier\":\"medium\"") != NULL);
    CHECK(strstr(got.data, "\"factor\":\"flags_capped\",\"points\":-35") != NULL);
    CHECK(strstr(got.data, "\"factor\":\"tier_needs_attendance\",\"points\":-1") != NULL);

    /* A second day away: attendance alone is medium, the flags make it high. */
    char clock_env[600];
    snprintf(clock_env, sizeof(clock_env), "BX_CLOCK=file:%s", s.clock);
    bx_buf out;
    bx_buf_init(&out, 0);
    REQUIRE(itest_run((const char *[]){bxctl(), "clock", "set", "2026-11-13 18:00", NULL},
                      (const char *[]){clock_env, NULL}, &out) == 0);
    roll_call(&s, "ISCC", "2026-11-13", "ISCS21", "absent");
    settle(&s, 0);
    expect_field("ISCS21", "streak_days", "2");
    expect_field("ISCS21", "score", "60");
    expect_field("ISCS21", "tier", "high");
    limited = summary_field("ISCS21", "factor.tier_needs_attendance");
    CHECK_STR(limited, "");
    free(limited);
    bx_buf_reset(&got);
    CHECK(itest_topic_collect(risk,
                              "\"student_id\":\"ISCS21\",\"school_id\":\"ISC1\","
                              "\"class_id\":\"ISCC\",\"date\":\"2026-11-13\",\"streak_days\":2",
                              1, 20000, &got) == 1);
    CHECK(strstr(got.data, "\"score\":60,\"tier\":\"high\"") != NULL);
    svc_stop(&s);

    /* bxctl recomputes the same assessment from the stored facts, limits and all. */
    bx_buf_reset(&out);
    int rc = itest_run((const char *[]){bxctl(), "student", "show", "ISCS21", NULL},
                       (const char *[]){clock_env, NULL}, &out);
    if (rc != 0 || strstr(out.data, "score: 60, tier: high") == NULL)
        fprintf(stderr, "bxctl student show (%d):\n%s\n", rc, out.data ? out.data : "");
    CHECK(rc == 0);
    CHECK(strstr(out.data, "score: 60, tier: high") != NULL);
    CHECK(strstr(out.data, "flags_capped") != NULL && strstr(out.data, " -35  ") != NULL);
    CHECK(strstr(out.data, "tier_needs_attendance") == NULL);
    bx_buf_free(&out);
    bx_buf_free(&got);
    itest_mark_free(risk);
    svc_free(&s);
}

/* ---- replays ---- */

typedef struct tfact {
    const char *date;
    int period;
    const char *status;
    const char *source;
    const char *event_id;
    const char *recorded_at;
} tfact;

/* One student's facts over two weeks (2026-11-20 is a closure): absences, a late arrival, sick
 * leave, missed periods, and corrections (the same slot recorded again later). Corrections are
 * explicit facts: an implied presence that arrives before the older absence it corrects is the
 * one order dependence store.h documents. */
static const tfact history[] = {
    {"2026-11-16", 0, "absent", "rollcall", "rc-16:x", "2026-11-16T08:10:00+08:00"},
    {"2026-11-17", 0, "late", "attendance", "att-17", "2026-11-17T09:00:00+08:00"},
    {"2026-11-18", 0, "absent", "rollcall", "rc-18:x", "2026-11-18T08:10:00+08:00"},
    {"2026-11-18", 0, "present", "attendance", "att-18-fix", "2026-11-18T15:00:00+08:00"},
    {"2026-11-19", 0, "leave", "attendance", "att-19", "2026-11-19T07:30:00+08:00"},
    {"2026-11-23", 3, "absent", "attendance", "per-23-3", "2026-11-23T10:00:00+08:00"},
    {"2026-11-23", 4, "absent", "attendance", "per-23-4", "2026-11-23T11:00:00+08:00"},
    {"2026-11-24", 0, "absent", "rollcall", "rc-24:x", "2026-11-24T08:10:00+08:00"},
    {"2026-11-25", 0, "absent", "rollcall", "rc-25:x", "2026-11-25T08:10:00+08:00"},
    {"2026-11-26", 0, "absent", "rollcall", "rc-26:x", "2026-11-26T08:10:00+08:00"},
    {"2026-11-26", 0, "absent", "rollcall", "rc-26b:x", "2026-11-26T08:05:00+08:00"},
    {FRIDAY, 0, "present", "attendance", "att-27-fix", FRIDAY "T08:10:00+08:00"},
    {FRIDAY, 0, "absent", "rollcall", "rc-27-old:x", FRIDAY "T08:00:00+08:00"},
};
#define NHISTORY (sizeof(history) / sizeof(history[0]))
static const char *const school_days[] = {"2026-11-16", "2026-11-17", "2026-11-18",
                                          "2026-11-19", "2026-11-23", "2026-11-24",
                                          "2026-11-25", "2026-11-26", FRIDAY};
#define NDAYS (sizeof(school_days) / sizeof(school_days[0]))

static void post_history(svc *s, const char *student, const char *klass, const size_t *order)
{
    for (size_t i = 0; i < NHISTORY; i++) {
        const tfact *f = &history[order ? order[i] : i];
        fact(s, student, klass, f->date, f->period, f->status, f->source, f->event_id,
             f->recorded_at);
    }
}

static void shuffle(size_t *order, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        seed = seed * 1103515245u + 12345u;
        size_t j = (seed >> 8) % i;
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

static void expect_same_state(const char *a, const char *b)
{
    const char *which[] = {"facts", "sum"};
    for (int w = 0; w < 2; w++) {
        char *x = student_hash(a, which[w]);
        char *y = student_hash(b, which[w]);
        if (strcmp(x, y) != 0)
            fprintf(stderr, "%s of %s:\n%s\ndiffers from %s:\n%s\n", which[w], a, x, b, y);
        CHECK(strcmp(x, y) == 0);
        CHECK(strlen(x) > 0);
        free(x);
        free(y);
    }
}

BX_TEST(replayed_and_shuffled_facts_give_identical_state)
{
    fixture();
    const char *in_order[] = {"ISCS13", "ISCS14", NULL};
    const char *shuffled[] = {"ISCS16", "ISCS17", NULL};
    forget(in_order);
    forget(shuffled);
    svc s;
    svc_start(&s, FRIDAY " 18:00");
    /* In order, twice (a redelivery), roll calls first. */
    for (size_t d = 0; d < NDAYS; d++)
        class_report(&s, "ISCB", school_days[d]);
    for (int round = 0; round < 2; round++)
        for (int i = 0; in_order[i]; i++)
            post_history(&s, in_order[i], "ISCB", NULL);
    settle(&s, 0);
    char *first = student_hash("ISCS13", "sum");
    /* Shuffled, roll calls last and repeated. */
    size_t order[NHISTORY];
    for (int i = 0; shuffled[i]; i++) {
        shuffle(order, NHISTORY, 7u + (unsigned)i);
        post_history(&s, shuffled[i], "ISCB", order);
    }
    for (size_t d = NDAYS; d > 0; d--)
        class_report(&s, "ISCB", school_days[d - 1]);
    settle(&s, 0);
    expect_same_state("ISCS13", "ISCS16");
    expect_same_state("ISCS14", "ISCS17");
    expect_same_state("ISCS13", "ISCS14");
    /* The replay changed nothing of the first student's summary. */
    char *again = student_hash("ISCS13", "sum");
    CHECK(strcmp(first, again) == 0);
    free(first);
    free(again);
    /* Three absences in a row (Tue..Thu), ended by Friday's corrected presence. */
    expect_field("ISCS16", "streak_days", "0");
    expect_field("ISCS16", "today", "present");
    expect_field("ISCS16", "today.unexcused_periods", "0");
    svc_free(&s);
}

BX_TEST(rebuild_after_losing_the_keys_gives_identical_state)
{
    fixture();
    const char *students[] = {"ISCS24", "ISCS25", NULL};
    forget(students);
    svc s;
    svc_start(&s, FRIDAY " 18:00");
    for (size_t d = 0; d < NDAYS; d++)
        class_report(&s, "ISCF", school_days[d]);
    for (int i = 0; students[i]; i++)
        post_history(&s, students[i], "ISCF", NULL);
    leave(&s, "ISCS25", "ISCF", "2026-11-24", "2026-11-25", "lv-iscs25");
    settle(&s, 0);
    svc_stop(&s);

    redisContext *c = rds();
    char *before[2][2], *reported = hash_text(c, "bx:c:{ISCF}:reported");
    for (int i = 0; i < 2; i++) {
        before[i][0] = student_hash(students[i], "facts");
        before[i][1] = student_hash(students[i], "sum");
    }
    const char *keys[] = {"bx:s:{ISCS24}:facts", "bx:s:{ISCS24}:sum", "bx:s:{ISCS25}:facts",
                          "bx:s:{ISCS25}:sum", "bx:c:{ISCF}:reported"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        redisReply *r = redisCommand(c, "DEL %s", keys[k]);
        REQUIRE(r != NULL);
        if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
            fprintf(stderr, "DEL %s: type %d, %lld, \"%s\"\n", keys[k], r->type, r->integer,
                    r->str ? r->str : "");
        CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == 1);
        freeReplyObject(r);
    }

    char clock_env[600];
    snprintf(clock_env, sizeof(clock_env), "BX_CLOCK=file:%s", s.clock);
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run((const char *[]){bxctl(), "rebuild", "--school", "ISC2", NULL},
                       (const char *[]){clock_env, NULL}, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl rebuild: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);

    char *after = hash_text(c, "bx:c:{ISCF}:reported");
    CHECK(strcmp(reported, after) == 0);
    free(after);
    free(reported);
    for (int i = 0; i < 2; i++) {
        for (int w = 0; w < 2; w++) {
            char *now = student_hash(students[i], w ? "sum" : "facts");
            if (strcmp(before[i][w], now) != 0)
                fprintf(stderr, "%s %s before:\n%s\nafter rebuild:\n%s\n", students[i],
                        w ? "sum" : "facts", before[i][w], now);
            CHECK(strcmp(before[i][w], now) == 0);
            CHECK(strlen(now) > 0);
            free(now);
            free(before[i][w]);
        }
    }
    redisFree(c);
    svc_free(&s);
}

BX_TEST(bad_messages_go_to_the_dead_letter_topic)
{
    fixture();
    forget((const char *[]){"ISCS22", NULL});
    svc s;
    svc_start(&s, FRIDAY " 18:00");
    itest_mark *dlq = itest_topic_mark(BX_TOPIC_DLQ);
    produce(&s, "ISCS22", "{\"schema\":\"bx.attendance.v1\",\"type\":");
    produce(&s, "ISCS22", "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\"}");
    produce(&s, "ISCS22", "\xff\xfe not even text");
    roll_call(&s, "ISCD", FRIDAY, "ISCS22", "absent");
    settle(&s, 3);
    bx_buf got;
    bx_buf_init(&got, 0);
    char needle[160];
    snprintf(needle, sizeof(needle), "\"source\":\"bx-score\",\"endpoint\":\"%s\"", s.topic);
    CHECK(itest_topic_collect(dlq, needle, 3, 20000, &got) == 3);
    cJSON *schema = bx_schema_load_topic(BX_TOPIC_DLQ);
    REQUIRE(schema != NULL);
    for (char *line = got.data; line && *line;) {
        char *nl = strchr(line, '\n');
        char err[512];
        bool ok = bx_schema_check_text(schema, line, (size_t)(nl - line), err, sizeof(err));
        if (!ok)
            fprintf(stderr, "bx.dlq.v1: %s\n%.*s\n", err, (int)(nl - line), line);
        CHECK(ok);
        line = nl + 1;
    }
    cJSON_Delete(schema);
    CHECK(strstr(got.data ? got.data : "", "\"reason\":\"malformed\"") != NULL);
    CHECK(strstr(got.data ? got.data : "", "message.event_id: is required") != NULL);
    /* The service went on: the good roll call after them was applied. */
    expect_field("ISCS22", "streak_days", "1");
    bx_buf_free(&got);
    itest_mark_free(dlq);
    svc_free(&s);
}

BX_TEST(student_show_prints_the_streak)
{
    fixture();
    forget((const char *[]){"ISCS23", NULL});
    svc s;
    svc_start(&s, FRIDAY " 18:00");
    for (int d = 2; d < 5; d++)
        roll_call(&s, "ISCE", week[d], "ISCS23", "absent");
    settle(&s, 0);
    svc_stop(&s);
    char clock_env[600];
    snprintf(clock_env, sizeof(clock_env), "BX_CLOCK=file:%s", s.clock);
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run((const char *[]){bxctl(), "student", "show", "ISCS23", NULL},
                       (const char *[]){clock_env, NULL}, &out);
    if (rc != 0 || strstr(out.data, "streak: 3 school days since 2026-11-25") == NULL)
        fprintf(stderr, "bxctl student show (%d):\n%s\n", rc, out.data ? out.data : "");
    CHECK(rc == 0);
    CHECK(strstr(out.data, "streak: 3 school days since 2026-11-25") != NULL);
    CHECK(strstr(out.data, "tier: ") != NULL);
    CHECK(strstr(out.data, "streak_days") != NULL);
    bx_buf_reset(&out);
    rc = itest_run((const char *[]){bxctl(), "student", "show", "ISCS23", "--json", NULL},
                   (const char *[]){clock_env, NULL}, &out);
    CHECK(rc == 0);
    cJSON *j = cJSON_Parse(out.data ? out.data : "");
    if (j == NULL)
        fprintf(stderr, "not JSON:\n%s\n", out.data ? out.data : "");
    REQUIRE(j != NULL);
    const cJSON *streak = cJSON_GetObjectItemCaseSensitive(j, "streak_days");
    CHECK(cJSON_IsNumber(streak) && streak->valueint == 3);
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(j, "streak_start");
    CHECK(cJSON_IsString(start) && strcmp(start->valuestring, "2026-11-25") == 0);
    CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "factors")));
    cJSON_Delete(j);
    bx_buf_reset(&out);
    rc = itest_run((const char *[]){bxctl(), "student", "show", "NOSUCH", NULL}, NULL, &out);
    CHECK(rc == 1);
    bx_buf_free(&out);
    svc_free(&s);
}
