/* bx-ingest against the real PostgreSQL and Kafka: the bad-input table, mixed requests, roll calls,
 * repeated event ids, credentials, CSV, HTTPS, registry reloads and acknowledgement. */
#include "bx_itest.h"
#include "bx_schema_check.h"
#include "bx_test.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

/* The fixture's clock: Friday 2026-11-27, 18:00 in Shanghai, inside the autumn term. */
#define TODAY "2026-11-27"

struct ingest {
    char *key, *other_key, *clock;
    pid_t pid;
    char base[64];
};

static void start(struct ingest *in, const char *const *extra_env)
{
    in->key = itest_registry_fixture(&in->other_key);
    in->clock = itest_clock_file(TODAY " 18:00");
    int port;
    bool tls = false;
    for (size_t i = 0; extra_env && extra_env[i]; i++)
        tls = tls || strncmp(extra_env[i], "BX_TLS_CERT=", 12) == 0;
    in->pid = itest_ingest_start(in->clock, extra_env, &port);
    snprintf(in->base, sizeof(in->base), "%s://127.0.0.1:%d", tls ? "https" : "http", port);
}

static void stop(struct ingest *in)
{
    itest_stop(in->pid);
    free(in->key);
    free(in->other_key);
    free(in->clock);
}

static itest_response post(const struct ingest *in, const char *path, const char *key,
                           const char *ctype, const char *body)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", in->base, path);
    itest_response r;
    REQUIRE(itest_post(url, key, ctype, body, strlen(body), &r));
    return r;
}

static cJSON *parse(const itest_response *r)
{
    cJSON *j = cJSON_Parse(r->body.data ? r->body.data : "");
    if (j == NULL)
        fprintf(stderr, "reply is not JSON: %s\n", r->body.data ? r->body.data : "(empty)");
    REQUIRE(j != NULL);
    return j;
}

static int count_of(const cJSON *reply, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(reply, name);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

enum key_choice { KEY_OWN, KEY_NONE, KEY_BAD, KEY_OTHER };

struct bad_input {
    const char *name;
    const char *path;
    const char *ctype;
    enum key_choice key;
    const char *body;
    long status;
    const char *expect; /* substring of the reply: the field and the reason */
    int dead_letters;   /* messages the row must leave on bx.dlq.v1 */
    int accepted;       /* good records in the same request that must still be accepted */
};

#define JSON "application/json"
#define CSV  "text/csv"

/* Rows leave `accepted` out when it is 0. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct bad_input bad_inputs[] = {
    {"no credential", "/v1/attendance", JSON, KEY_NONE, "{\"records\":[]}", 401, "unauthorized", 0},
    {"wrong secret", "/v1/attendance", JSON, KEY_BAD, "{\"records\":[]}", 401, "unauthorized", 0},
    {"unknown path", "/v1/nothing", JSON, KEY_OWN, "{}", 404, "not_found", 0},
    {"xml body", "/v1/attendance", "application/xml", KEY_OWN, "<a/>", 415,
     "unsupported_media_type", 1},
    {"csv to rollcall", "/v1/rollcall", CSV, KEY_OWN, "a,b\n", 415, "unsupported_media_type", 1},
    {"empty body", "/v1/attendance", JSON, KEY_OWN, "", 400, "empty", 1},
    {"truncated json", "/v1/attendance", JSON, KEY_OWN, "{\"records\":[{\"student_id\":", 400,
     "malformed", 1},
    {"trailing garbage", "/v1/attendance", JSON, KEY_OWN, "{\"records\":[]} x", 400, "malformed", 1,
     0},
    {"invalid utf-8", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"IT\xff\"}]}", 400, "UTF-8", 1},
    {"nul escape", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"a\\u0000b\"}]}", 400, "malformed", 1},
    {"duplicate key", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"student_id\":\"ITS02\",\"date\":\"" TODAY
     "\",\"status\":\"absent\"}]}",
     400, "duplicate key", 1},
    {"number out of range", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY
     "\",\"status\":\"absent\",\"period\":1e400}]}",
     400, "out of range", 1},
    {"records not an array", "/v1/attendance", JSON, KEY_OWN, "{\"records\":{}}", 400,
     "records: is required and must be an array", 1},
    {"unknown top-level key", "/v1/attendance", JSON, KEY_OWN, "{\"records\":[],\"x\":1}", 400,
     "unknown field", 1},
    {"record not an object", "/v1/attendance", JSON, KEY_OWN, "{\"records\":[42]}", 200,
     "\"field\":\"records[0]\",\"reason\":\"malformed\"", 1},
    {"missing student", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"date\":\"" TODAY "\",\"status\":\"absent\"}]}", 200,
     "\"field\":\"records[0].student_id\",\"reason\":\"missing_field\"", 1},
    {"unknown field in record", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY
     "\",\"status\":\"absent\",\"colour\":1}]}",
     200, "\"reason\":\"unknown_field\"", 1},
    {"student id not a string", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":7,\"date\":\"" TODAY "\",\"status\":\"absent\"}]}", 200,
     "\"field\":\"records[0].student_id\",\"reason\":\"invalid_value\"", 1},
    {"unknown student", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"NOPE1\",\"date\":\"" TODAY "\",\"status\":\"absent\"}]}", 200,
     "\"reason\":\"unknown_student\"", 1},
    {"other school's student", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS20\",\"date\":\"" TODAY "\",\"status\":\"absent\"}]}", 200,
     "\"field\":\"records[0].student_id\",\"reason\":\"wrong_school\"", 1},
    {"bad date format", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"27/11/2026\",\"status\":\"absent\"}]}",
     200, "\"field\":\"records[0].date\",\"reason\":\"invalid_value\"", 1},
    {"impossible date", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-02-30\",\"status\":\"absent\"}]}",
     200, "\"field\":\"records[0].date\",\"reason\":\"invalid_value\"", 1},
    {"future date", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-30\",\"status\":\"absent\"}]}",
     200, "\"reason\":\"future_date\"", 1},
    {"summer vacation", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-08-03\",\"status\":\"absent\"}]}",
     200, "\"reason\":\"outside_term\"", 1},
    {"national day holiday", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-10-02\",\"status\":\"absent\"}]}",
     200, "\"reason\":\"not_school_day\"", 1},
    {"school closure", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-20\",\"status\":\"absent\"}]}",
     200, "\"reason\":\"not_school_day\"", 1},
    {"unknown status", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY "\",\"status\":\"gone\"}]}", 200,
     "\"field\":\"records[0].status\",\"reason\":\"invalid_value\"", 1},
    {"leave without kind", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY "\",\"status\":\"leave\"}]}", 200,
     "\"field\":\"records[0].leave_kind\",\"reason\":\"missing_field\"", 1},
    {"kind without leave", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY
     "\",\"status\":\"absent\",\"leave_kind\":\"sick\"}]}",
     200, "\"field\":\"records[0].leave_kind\",\"reason\":\"invalid_value\"", 1},
    {"period 13", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY
     "\",\"status\":\"absent\",\"period\":13}]}",
     200, "\"field\":\"records[0].period\",\"reason\":\"invalid_value\"", 1},
    {"period 1.5", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY
     "\",\"status\":\"absent\",\"period\":1.5}]}",
     200, "\"field\":\"records[0].period\",\"reason\":\"invalid_value\"", 1},
    {"event id with spaces", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY
     "\",\"status\":\"absent\",\"event_id\":\"a b\"}]}",
     200, "\"field\":\"records[0].event_id\",\"reason\":\"invalid_value\"", 1},
    {"event id twice in a request", "/v1/attendance", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"" TODAY
     "\",\"status\":\"present\",\"event_id\":\"bad-dup-1\"},{\"student_id\":\"ITS02\",\"date\":"
     "\"" TODAY "\",\"status\":\"present\",\"event_id\":\"bad-dup-1\"}]}",
     200, "\"field\":\"records[1].event_id\",\"reason\":\"duplicate_in_request\"", 1, 1},
    {"csv missing column", "/v1/attendance", CSV, KEY_OWN, "student_id,date\nITS01," TODAY "\n",
     400, "missing column \\\"status\\\"", 1},
    {"csv unknown column", "/v1/attendance", CSV, KEY_OWN,
     "student_id,date,status,mood\nITS01," TODAY ",absent,sad\n", 400, "unknown column", 1},
    {"csv unterminated quote", "/v1/attendance", CSV, KEY_OWN,
     "student_id,date,status\n\"ITS01," TODAY ",absent\n", 400, "line 2", 1},
    {"csv short row", "/v1/attendance", CSV, KEY_OWN, "student_id,date,status\nITS01," TODAY "\n",
     200, "\"line\":2,\"status\":\"rejected\"", 1},
    {"csv bad date", "/v1/attendance", CSV, KEY_OWN,
     "student_id,date,status\nITS01,tomorrow,absent\n", 200,
     "\"field\":\"line 2.date\",\"reason\":\"invalid_value\"", 1},
    {"rollcall unknown class", "/v1/rollcall", JSON, KEY_OWN,
     "{\"class_id\":\"NOCLASS\",\"date\":\"" TODAY "\"}", 422, "body.class_id", 1},
    {"rollcall other school's class", "/v1/rollcall", JSON, KEY_OWN,
     "{\"class_id\":\"ITC3\",\"date\":\"" TODAY "\"}", 422, "wrong_school", 1},
    {"rollcall on a sunday", "/v1/rollcall", JSON, KEY_OWN,
     "{\"class_id\":\"ITC1\",\"date\":\"2026-11-22\"}", 422, "not_school_day", 1},
    {"rollcall missing date", "/v1/rollcall", JSON, KEY_OWN, "{\"class_id\":\"ITC1\"}", 422,
     "body.date: is required", 1},
    {"rollcall absent not a list", "/v1/rollcall", JSON, KEY_OWN,
     "{\"class_id\":\"ITC1\",\"date\":\"" TODAY "\",\"absent\":\"ITS01\"}", 422,
     "body.absent: expected an array", 1},
    {"leave ends before it starts", "/v1/leave", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"first_date\":\"" TODAY
     "\",\"last_date\":\"2026-11-26\",\"leave_kind\":\"sick\",\"requested_by\":\"guardian\"}]}",
     200, "\"field\":\"records[0].last_date\"", 1},
    {"leave asked by a stranger", "/v1/leave", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"first_date\":\"" TODAY "\",\"last_date\":\"" TODAY
     "\",\"leave_kind\":\"sick\",\"requested_by\":\"neighbour\"}]}",
     200, "\"field\":\"records[0].requested_by\"", 1},
    {"action unknown", "/v1/actions", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"action\":\"scold\",\"date\":\"" TODAY
     "\",\"details\":{}}]}",
     200, "\"field\":\"records[0].action\"", 1},
    {"home visit without outcome", "/v1/actions", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"action\":\"home_visit\",\"date\":\"" TODAY
     "\",\"details\":{}}]}",
     200, "\"field\":\"records[0].details.outcome\",\"reason\":\"missing_field\"", 1},
    {"transfer without paperwork flag", "/v1/actions", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"action\":\"transfer_out\",\"date\":\"" TODAY
     "\",\"details\":{\"destination\":\"in_province\"}}]}",
     200, "records[0].details.paperwork", 1},
    {"action details not an object", "/v1/actions", JSON, KEY_OWN,
     "{\"records\":[{\"student_id\":\"ITS01\",\"action\":\"contact_made\",\"date\":\"" TODAY
     "\",\"details\":[1]}]}",
     200, "\"field\":\"records[0].details\"", 1},
};
#pragma GCC diagnostic pop

BX_TEST(bad_inputs_table)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *dlq = itest_topic_mark("bx.dlq.v1");
    int expected_dlq = 0;
    size_t rows = sizeof(bad_inputs) / sizeof(bad_inputs[0]);
    CHECK(rows >= 30);
    for (size_t i = 0; i < rows; i++) {
        const struct bad_input *b = &bad_inputs[i];
        const char *key = b->key == KEY_OWN     ? in.key
                          : b->key == KEY_OTHER ? in.other_key
                          : b->key == KEY_BAD   ? "bxk_0000000000000000_deadbeef"
                                                : NULL;
        itest_response r = post(&in, b->path, key, b->ctype, b->body);
        const char *body = r.body.data ? r.body.data : "";
        if (r.status != b->status || strstr(body, b->expect) == NULL)
            BX_FAIL_AT("row \"%s\": got %ld %s, expected %ld with %s", b->name, r.status, body,
                       b->status, b->expect);
        if (r.status == 200) {
            cJSON *j = parse(&r);
            /* A fixed event id is a duplicate when the suite runs again: either counts. */
            int good = count_of(j, "accepted") + count_of(j, "duplicates");
            if (good != b->accepted)
                BX_FAIL_AT("row \"%s\": accepted %d, expected %d: %s", b->name, good, b->accepted,
                           body);
            cJSON_Delete(j);
        }
        expected_dlq += b->dead_letters;
        bx_buf_free(&r.body);
    }
    /* Every reject is on the dead-letter topic with its reason. */
    bx_buf got;
    bx_buf_init(&got, 0);
    int found = itest_topic_collect(dlq, "\"school_id\":\"IT01\"", expected_dlq, 20000, &got);
    CHECK_INT(found, expected_dlq);
    CHECK_CONTAINS(got.data, "\"reason\":\"wrong_school\"");
    CHECK_CONTAINS(got.data, "body_base64");
    bx_buf_free(&got);
    itest_mark_free(dlq);
    stop(&in);
}

BX_TEST(mixed_request_keeps_every_good_record)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *att = itest_topic_mark("bx.attendance.v1");
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"records\":["
             "{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\",\"status\":\"absent\","
             "\"event_id\":\"mix-%d-1\"},"
             "{\"student_id\":\"NOPE\",\"date\":\"2026-11-26\",\"status\":\"absent\"},"
             "{\"student_id\":\"ITS02\",\"date\":\"2026-11-26\",\"status\":\"leave\","
             "\"leave_kind\":\"sick\",\"event_id\":\"mix-%d-2\"},"
             "{\"student_id\":\"ITS03\",\"date\":\"2027-05-01\",\"status\":\"absent\"},"
             "{\"student_id\":\"ITS04\",\"date\":\"2026-11-26\",\"status\":\"late\","
             "\"period\":2,\"event_id\":\"mix-%d-3\"},"
             "{\"student_id\":\"ITS20\",\"date\":\"2026-11-26\",\"status\":\"absent\"},"
             "{\"student_id\":\"ITS05\",\"date\":\"2026-11-26\",\"status\":\"early_leave\","
             "\"event_id\":\"mix-%d-4\"}]}",
             getpid(), getpid(), getpid(), getpid());
    itest_response r = post(&in, "/v1/attendance", in.key, JSON, body);
    CHECK_INT(r.status, 200);
    cJSON *j = parse(&r);
    CHECK_INT(count_of(j, "accepted"), 4);
    CHECK_INT(count_of(j, "rejected"), 3);
    cJSON_Delete(j);
    char needle[64];
    snprintf(needle, sizeof(needle), "\"event_id\":\"mix-%d-", getpid());
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(att, needle, 4, 20000, &got), 4);
    CHECK_CONTAINS(got.data, "\"status\":\"early_leave\"");
    CHECK_CONTAINS(got.data, "\"period\":2");
    bx_buf_free(&got);
    bx_buf_free(&r.body);
    itest_mark_free(att);
    stop(&in);
}

BX_TEST(rollcall_marks_everyone_else_present)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *att = itest_topic_mark("bx.attendance.v1");
    char body[1024], rc_id[64];
    snprintf(rc_id, sizeof(rc_id), "rc-%d-%ld", getpid(), (long)time(NULL));
    snprintf(body, sizeof(body),
             "{\"class_id\":\"ITC1\",\"date\":\"2026-11-26\",\"rollcall_id\":\"%s\","
             "\"absent\":[\"ITS01\",\"ITS02\"],\"leave\":[{\"student_id\":\"ITS03\","
             "\"leave_kind\":\"personal\"}],\"late\":[\"ITS04\"],\"early_leave\":[\"ITS11\"]}",
             rc_id);
    itest_response r = post(&in, "/v1/rollcall", in.key, JSON, body);
    CHECK_INT(r.status, 200);
    cJSON *j = parse(&r);
    /* 10 students in ITC1 and the class report; ITS11 is in ITC2, so rejected. */
    CHECK_INT(count_of(j, "accepted"), 11);
    CHECK_INT(count_of(j, "rejected"), 1);
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(j, "rollcall");
    CHECK_INT(count_of(sum, "present"), 6);
    CHECK_INT(count_of(sum, "absent"), 2);
    CHECK_CONTAINS(r.body.data, "\"reason\":\"wrong_class\"");
    cJSON_Delete(j);
    bx_buf got;
    bx_buf_init(&got, 0);
    char needle[96];
    snprintf(needle, sizeof(needle), "\"rollcall_id\":\"%s\"", rc_id);
    CHECK_INT(itest_topic_collect(att, needle, 11, 20000, &got), 11);
    int present = 0;
    for (const char *p = got.data; (p = strstr(p, "\"status\":\"present\"")); p++)
        present++;
    CHECK_INT(present, 6);
    CHECK_CONTAINS(got.data, "\"type\":\"class_report\"");
    CHECK_CONTAINS(got.data,
                   "\"student_id\":\"ITS03\",\"school_id\":\"IT01\",\"class_id\":"
                   "\"ITC1\",\"date\":\"2026-11-26\",\"period\":null,\"status\":\"leave\","
                   "\"leave_kind\":\"personal\"");
    bx_buf_free(&got);
    bx_buf_free(&r.body);
    itest_mark_free(att);
    stop(&in);
}

BX_TEST(repeated_event_id_changes_nothing)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *att = itest_topic_mark("bx.attendance.v1");
    char body[1024], rc[1024];
    long t = (long)time(NULL);
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"ITS06\",\"date\":\"2026-11-25\",\"status\":"
             "\"absent\",\"event_id\":\"rep-%d-%ld\"}]}",
             getpid(), t);
    snprintf(rc, sizeof(rc),
             "{\"class_id\":\"ITC2\",\"date\":\"2026-11-25\",\"rollcall_id\":\"reprc-%d-%ld\","
             "\"absent\":[\"ITS12\"]}",
             getpid(), t);
    for (int round = 0; round < 3; round++) {
        itest_response r = post(&in, "/v1/attendance", in.key, JSON, body);
        cJSON *j = parse(&r);
        CHECK_INT(count_of(j, "accepted"), round == 0 ? 1 : 0);
        CHECK_INT(count_of(j, "duplicates"), round == 0 ? 0 : 1);
        cJSON_Delete(j);
        bx_buf_free(&r.body);
        r = post(&in, "/v1/rollcall", in.key, JSON, rc);
        j = parse(&r);
        CHECK_INT(count_of(j, "accepted"), round == 0 ? 6 : 0);
        CHECK_INT(count_of(j, "duplicates"), round == 0 ? 0 : 6);
        cJSON_Delete(j);
        bx_buf_free(&r.body);
    }
    char needle[96];
    snprintf(needle, sizeof(needle), "-%d-%ld", getpid(), t);
    /* Exactly 7 messages, however long we wait for more. */
    CHECK_INT(itest_topic_collect(att, needle, 100, 4000, NULL), 7);
    itest_mark_free(att);
    stop(&in);
}

BX_TEST(credential_writes_only_its_school)
{
    struct ingest in;
    start(&in, NULL);
    itest_response r = post(&in, "/v1/attendance", in.other_key, JSON,
                            "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\","
                            "\"status\":\"absent\"},{\"student_id\":\"ITS20\",\"date\":"
                            "\"2026-11-26\",\"status\":\"absent\"}]}");
    cJSON *j = parse(&r);
    CHECK_INT(count_of(j, "accepted"), 1);
    CHECK_INT(count_of(j, "rejected"), 1);
    CHECK_CONTAINS(r.body.data, "student \\\"ITS01\\\" is not registered at school IT02");
    cJSON_Delete(j);
    bx_buf_free(&r.body);
    stop(&in);
}

BX_TEST(csv_upload_is_accepted)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *att = itest_topic_mark("bx.attendance.v1");
    char body[1024];
    snprintf(body, sizeof(body),
             "\xEF\xBB\xBFstudent_id,date,period,status,leave_kind,event_id\r\n"
             "ITS07,2026-11-24,,absent,,csv-%d-1\r\n"
             "ITS08,2026-11-24,3,leave,sick,csv-%d-2\r\n"
             "\"ITS09\",2026-11-24,,late,,csv-%d-3\r\n",
             getpid(), getpid(), getpid());
    itest_response r = post(&in, "/v1/attendance", in.key, "text/csv; charset=utf-8", body);
    CHECK_INT(r.status, 200);
    cJSON *j = parse(&r);
    CHECK_INT(count_of(j, "accepted"), 3);
    cJSON_Delete(j);
    char needle[64];
    snprintf(needle, sizeof(needle), "\"event_id\":\"csv-%d-", getpid());
    CHECK_INT(itest_topic_collect(att, needle, 3, 20000, NULL), 3);
    bx_buf_free(&r.body);
    itest_mark_free(att);
    stop(&in);
}

static void check_against_schema(const char *topic, const char *lines)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/schemas/topics/%s.schema.json",
             itest_env("BX_SOURCE_DIR", "."), topic);
    cJSON *schema = bx_schema_load(path);
    REQUIRE(schema != NULL);
    int checked = 0;
    const char *p = lines;
    while (p && *p) {
        size_t n = strcspn(p, "\n");
        cJSON *msg = cJSON_ParseWithLength(p, n);
        char err[512] = "";
        if (msg == NULL || !bx_schema_check(schema, msg, err, sizeof(err)))
            BX_FAIL_AT("%s message violates its schema (%s): %.*s", topic, err, (int)n, p);
        cJSON_Delete(msg);
        checked++;
        p += n + (p[n] == '\n');
    }
    CHECK(checked > 0);
    cJSON_Delete(schema);
}

BX_TEST(messages_match_topic_schemas)
{
    struct ingest in;
    start(&in, NULL);
    itest_mark *att = itest_topic_mark("bx.attendance.v1");
    itest_mark *act = itest_topic_mark("bx.actions.v1");
    itest_mark *dlq = itest_topic_mark("bx.dlq.v1");
    char tag[64], body[4096];
    snprintf(tag, sizeof(tag), "sch-%d-%ld", getpid(), (long)time(NULL));
    snprintf(
        body, sizeof(body),
        "{\"class_id\":\"ITC2\",\"date\":\"2026-11-23\",\"rollcall_id\":\"%s\","
        "\"absent\":[\"ITS13\"],\"leave\":[{\"student_id\":\"ITS14\",\"leave_kind\":\"sick\"}]}",
        tag);
    itest_response r = post(&in, "/v1/rollcall", in.key, JSON, body);
    CHECK_INT(r.status, 200);
    bx_buf_free(&r.body);
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"ITS13\",\"first_date\":\"2026-11-30\","
             "\"last_date\":\"2026-12-02\",\"leave_kind\":\"personal\",\"requested_by\":"
             "\"guardian\",\"phoned_in\":true,\"event_id\":\"%s-leave\"}]}",
             tag);
    r = post(&in, "/v1/leave", in.key, JSON, body);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "\"accepted\":1");
    bx_buf_free(&r.body);
    snprintf(body, sizeof(body),
             "{\"records\":["
             "{\"student_id\":\"ITS13\",\"action\":\"contact_made\",\"date\":\"2026-11-23\","
             "\"staff_id\":\"ITT2\",\"details\":{\"channel\":\"phone\",\"reached\":true},"
             "\"event_id\":\"%s-a1\"},"
             "{\"student_id\":\"ITS13\",\"action\":\"home_visit\",\"date\":\"2026-11-24\","
             "\"details\":{\"outcome\":\"will_return\",\"reason\":\"illness\"},"
             "\"event_id\":\"%s-a2\"},"
             "{\"student_id\":\"ITS13\",\"action\":\"returned\",\"date\":\"2026-11-25\","
             "\"details\":{\"return_date\":\"2026-11-25\"},\"event_id\":\"%s-a3\"},"
             "{\"student_id\":\"ITS13\",\"action\":\"suspension\",\"date\":\"2026-11-25\","
             "\"details\":{\"first_date\":\"2026-12-01\",\"last_date\":\"2027-01-22\","
             "\"reason\":\"illness\",\"approved\":true},\"event_id\":\"%s-a4\"},"
             "{\"student_id\":\"ITS13\",\"action\":\"transfer_out\",\"date\":\"2026-11-25\","
             "\"details\":{\"destination\":\"out_of_province\",\"paperwork\":false},"
             "\"event_id\":\"%s-a5\"}]}",
             tag, tag, tag, tag, tag);
    r = post(&in, "/v1/actions", in.key, JSON, body);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "\"accepted\":5");
    bx_buf_free(&r.body);
    r = post(&in, "/v1/attendance", in.key, JSON, "{\"records\":[{\"student_id\":\"x\"}]}");
    bx_buf_free(&r.body);

    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(att, tag, 7, 20000, &got), 7);
    check_against_schema("bx.attendance.v1", got.data);
    bx_buf_reset(&got);
    CHECK_INT(itest_topic_collect(act, tag, 5, 20000, &got), 5);
    check_against_schema("bx.actions.v1", got.data);
    bx_buf_reset(&got);
    CHECK_INT(itest_topic_collect(dlq, "\"school_id\":\"IT01\"", 1, 20000, &got), 1);
    check_against_schema("bx.dlq.v1", got.data);
    bx_buf_free(&got);
    itest_mark_free(att);
    itest_mark_free(act);
    itest_mark_free(dlq);
    stop(&in);
}

BX_TEST(oversize_body_is_refused)
{
    const char *env[] = {"BX_HTTP_MAX_BODY=2048", NULL};
    struct ingest in;
    start(&in, env);
    bx_buf big;
    bx_buf_init(&big, 0);
    REQUIRE(bx_buf_puts(&big, "{\"records\":[") == BX_OK);
    for (int i = 0; i < 100; i++)
        REQUIRE(bx_buf_printf(&big,
                              "%s{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\","
                              "\"status\":\"present\"}",
                              i ? "," : "") == BX_OK);
    REQUIRE(bx_buf_puts(&big, "]}") == BX_OK);
    itest_response r = post(&in, "/v1/attendance", in.key, JSON, big.data);
    CHECK_INT(r.status, 413);
    CHECK_CONTAINS(r.body.data, "larger than 2048 bytes");
    bx_buf_free(&r.body);
    bx_buf_free(&big);
    stop(&in);
}

BX_TEST(https_with_a_certificate)
{
    char *dir = itest_tmpdir("tls");
    char cert[512], key[512], cmd[2048];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-keyout %s -out %s >/dev/null 2>&1",
             key, cert);
    REQUIRE(system(cmd) == 0);
    char cert_env[600], key_env[600];
    snprintf(cert_env, sizeof(cert_env), "BX_TLS_CERT=%s", cert);
    snprintf(key_env, sizeof(key_env), "BX_TLS_KEY=%s", key);
    const char *env[] = {cert_env, key_env, NULL};
    struct ingest in;
    start(&in, env);
    CHECK(strncmp(in.base, "https://", 8) == 0);
    itest_response r = post(&in, "/v1/attendance", in.key, JSON,
                            "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\","
                            "\"status\":\"present\"}]}");
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "\"accepted\":1");
    bx_buf_free(&r.body);
    stop(&in);
    free(dir);
}

static size_t revision_header(char *line, size_t size, size_t n, void *arg)
{
    static const char name[] = "x-registry-revision:";
    if (size * n > sizeof(name) - 1 && strncasecmp(line, name, sizeof(name) - 1) == 0)
        *(long long *)arg = strtoll(line + sizeof(name) - 1, NULL, 10);
    return size * n;
}

static size_t ignore_body(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* The registry revision bx-ingest works with, as its /healthz says (X-Registry-Revision). */
static long long healthz_revision(const struct ingest *in)
{
    char url[160];
    snprintf(url, sizeof(url), "%s/healthz", in->base);
    long long revision = -1;
    CURL *curl = curl_easy_init();
    REQUIRE(curl != NULL);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, revision_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &revision);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, ignore_body);
    CURLcode code = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    REQUIRE(code == CURLE_OK);
    return revision;
}

BX_TEST(registry_changes_are_picked_up)
{
    struct ingest in;
    start(&in, NULL);
    char id[32];
    snprintf(id, sizeof(id), "ITN%d", getpid() % 100000);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"%s\",\"date\":\"2026-11-26\",\"status\":"
             "\"present\"}]}",
             id);
    itest_response r = post(&in, "/v1/attendance", in.key, JSON, body);
    CHECK_CONTAINS(r.body.data, "unknown_student");
    bx_buf_free(&r.body);
    long long before = healthz_revision(&in);
    CHECK(before > 0);
    char *dir = itest_tmpdir("newstudent");
    char csv[256], path[512];
    snprintf(csv, sizeof(csv), "student_id,school_id,class_id,name\n%s,IT01,ITC4,新同学\n", id);
    itest_write_file(dir, "students.csv", csv);
    snprintf(path, sizeof(path), "%s/students.csv", dir);
    const char *argv[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "students", path, NULL};
    CHECK_INT(itest_run(argv, NULL, NULL), 0);
    /* Once /healthz names a newer revision, the new student is known: what bx-sim waits for
     * after an import. */
    long long after = before;
    for (int i = 0; i < 100 && after <= before; i++) {
        usleep(100 * 1000);
        after = healthz_revision(&in);
    }
    CHECK(after > before);
    r = post(&in, "/v1/attendance", in.key, JSON, body);
    CHECK_CONTAINS(r.body.data, "\"accepted\":1");
    bx_buf_free(&r.body);
    free(dir);
    stop(&in);
}

BX_TEST(nothing_is_accepted_without_kafka_acknowledgement)
{
    /* A broker that does not exist: every valid record must come back "failed", never
     * "accepted", and the reply must say to retry. */
    const char *env[] = {"BX_KAFKA_BROKERS=127.0.0.1:9", "BX_ACK_TIMEOUT_MS=1500", NULL};
    struct ingest in;
    start(&in, env);
    itest_response r = post(&in, "/v1/attendance", in.key, JSON,
                            "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\","
                            "\"status\":\"absent\"},{\"student_id\":\"ITS02\",\"date\":"
                            "\"2026-11-26\",\"status\":\"absent\"}]}");
    CHECK_INT(r.status, 503);
    cJSON *j = parse(&r);
    CHECK_INT(count_of(j, "accepted"), 0);
    CHECK_INT(count_of(j, "failed"), 2);
    cJSON_Delete(j);
    bx_buf_free(&r.body);
    stop(&in);
}

struct posting {
    const struct ingest *in;
    const char *body;
    itest_response r;
};

static void *post_in_background(void *arg)
{
    struct posting *p = arg;
    p->r = post(p->in, "/v1/attendance", p->in->key, JSON, p->body);
    return NULL;
}

BX_TEST(a_request_in_flight_at_sigterm_is_answered)
{
    /* A broker that does not exist and a 3 s acknowledgement timeout keep the request waiting
     * (suspended) when SIGTERM comes: bx-ingest stops taking connections but answers it, with
     * Kafka's verdict, before it exits. */
    const char *env[] = {"BX_KAFKA_BROKERS=127.0.0.1:9", "BX_ACK_TIMEOUT_MS=3000", NULL};
    struct ingest in;
    start(&in, env);
    struct posting p = {&in,
                        "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\","
                        "\"status\":\"absent\"},{\"student_id\":\"ITS02\",\"date\":"
                        "\"2026-11-26\",\"status\":\"absent\"}]}",
                        {0}};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, post_in_background, &p) == 0);
    usleep(800 * 1000);
    REQUIRE(kill(in.pid, SIGTERM) == 0);
    pthread_join(t, NULL);
    CHECK_INT(p.r.status, 503);
    cJSON *j = parse(&p.r);
    CHECK_INT(count_of(j, "failed"), 2);
    CHECK_INT(count_of(j, "accepted"), 0);
    cJSON_Delete(j);
    bx_buf_free(&p.r.body);
    /* and then it exits, cleanly */
    int status = itest_wait_exit(in.pid, 10000);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (status != -1)
        in.pid = -1; /* reaped */
    stop(&in);
}

BX_TEST(old_event_ids_are_forgotten)
{
    /* An id accepted longer ago than BX_DEDUP_RETENTION_DAYS is forgotten; a recent one is not. */
    const char *url = itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue");
    char sql[512], old_id[64], new_id[64];
    snprintf(old_id, sizeof(old_id), "old-%d-%ld", getpid(), (long)time(NULL));
    snprintf(new_id, sizeof(new_id), "new-%d-%ld", getpid(), (long)time(NULL));
    snprintf(sql, sizeof(sql),
             "INSERT INTO ingest.seen_event (school_id, event_id, topic, accepted_at) VALUES "
             "('IT01', 'ev:%s', '/v1/attendance', now() - interval '500 days'), "
             "('IT01', 'ev:%s', '/v1/attendance', now() - interval '5 days')",
             old_id, new_id);
    const char *psql[] = {"/usr/bin/psql", "-qAt", url, "-c", sql, NULL};
    REQUIRE(itest_run(psql, NULL, NULL) == 0);
    const char *env[] = {"BX_DEDUP_RETENTION_DAYS=400", NULL};
    struct ingest in;
    start(&in, env);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"ITS01\",\"date\":\"2026-11-26\",\"status\":"
             "\"present\",\"event_id\":\"%s\"},{\"student_id\":\"ITS02\",\"date\":\"2026-11-26\","
             "\"status\":\"present\",\"event_id\":\"%s\"}]}",
             old_id, new_id);
    itest_response r = post(&in, "/v1/attendance", in.key, JSON, body);
    cJSON *j = parse(&r);
    /* The old id was forgotten at start, so it is published again; the recent one is not. */
    CHECK_INT(count_of(j, "accepted"), 1);
    CHECK_INT(count_of(j, "duplicates"), 1);
    CHECK_CONTAINS(r.body.data, old_id);
    cJSON_Delete(j);
    bx_buf_free(&r.body);
    stop(&in);
}

/* Whoever an action names answers for it (issue "bx-console, part 1", section 3): through a
 * school's key, a forged staff id, a teacher of another school and a township sign-off are each
 * refused with their field and reason, and dead-lettered; the same request's good action is
 * accepted. */
BX_TEST(actions_name_only_accountable_staff)
{
    /* A teacher of the other school, for this test only (an upsert: other tests' staff stay). */
    char *dir = itest_tmpdir("staff");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "ITX2,赵老师,homeroom_teacher,IT02,,,\n");
    char path[512];
    snprintf(path, sizeof(path), "%s/staff.csv", dir);
    struct ingest in;
    in.key = itest_registry_fixture(&in.other_key); /* the registry first, then our teacher */
    const char *argv[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "staff", path, NULL};
    CHECK_INT(itest_run(argv, NULL, NULL), 0);
    free(in.key);
    free(in.other_key);
    start(&in, NULL);
    itest_mark *dlq = itest_topic_mark("bx.dlq.v1");
    itest_mark *act = itest_topic_mark("bx.actions.v1");
    char tag[64], body[4096];
    /* digits glued to letters: dead letters mask free-standing runs of 7 or more */
    snprintf(tag, sizeof(tag), "acc-p%d-t%ld", getpid(), (long)time(NULL));
    snprintf(body, sizeof(body),
             "{\"records\":["
             "{\"student_id\":\"ITS05\",\"action\":\"contact_made\",\"date\":\"2026-11-26\","
             "\"staff_id\":\"NOBODY_AT_ALL\",\"details\":{\"channel\":\"phone\",\"reached\":"
             "true},\"event_id\":\"%s-forged\"},"
             "{\"student_id\":\"ITS05\",\"action\":\"returned\",\"date\":\"2026-11-26\","
             "\"staff_id\":\"ITT1\",\"details\":{\"return_date\":\"2026-11-26\","
             "\"township_signoff_staff_id\":\"ITT1\"},\"event_id\":\"%s-signoff\"},"
             "{\"student_id\":\"ITS05\",\"action\":\"home_visit\",\"date\":\"2026-11-26\","
             "\"staff_id\":\"ITX2\",\"details\":{\"outcome\":\"refused\"},"
             "\"event_id\":\"%s-foreign\"},"
             "{\"student_id\":\"ITS05\",\"action\":\"contact_made\",\"date\":\"2026-11-26\","
             "\"staff_id\":\"ITT1\",\"details\":{\"channel\":\"visit\",\"reached\":false},"
             "\"event_id\":\"%s-good\"}]}",
             tag, tag, tag, tag);
    itest_response r = post(&in, "/v1/actions", in.key, JSON, body);
    CHECK_INT(r.status, 200);
    cJSON *j = parse(&r);
    CHECK_INT(count_of(j, "accepted"), 1);
    CHECK_INT(count_of(j, "rejected"), 3);
    cJSON_Delete(j);
    CHECK_CONTAINS(r.body.data,
                   "\"field\":\"records[0].staff_id\",\"reason\":\"unknown_staff\",\"error\":"
                   "\"records[0].staff_id: no staff \\\"NOBODY_AT_ALL\\\" in the registry\"");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[1].details.township_signoff_staff_id\","
                                "\"reason\":\"unauthorized\",\"error\":\"records[1].details."
                                "township_signoff_staff_id: a school's key cannot sign off for "
                                "the township");
    CHECK_CONTAINS(r.body.data, "\"field\":\"records[2].staff_id\",\"reason\":\"wrong_school\","
                                "\"error\":\"records[2].staff_id: staff \\\"ITX2\\\" does not "
                                "work at school IT01");
    bx_buf_free(&r.body);

    /* Each refusal is on bx.dlq.v1 with its field and reason, and only the good one on actions. */
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(dlq, tag, 3, 20000, &got), 3);
    CHECK_CONTAINS(got.data, "\"field\":\"records[0].staff_id\",\"reason\":\"unknown_staff\"");
    CHECK_CONTAINS(got.data, "\"field\":\"records[1].details.township_signoff_staff_id\","
                             "\"reason\":\"unauthorized\"");
    CHECK_CONTAINS(got.data, "\"field\":\"records[2].staff_id\",\"reason\":\"wrong_school\"");
    check_against_schema("bx.dlq.v1", got.data);
    bx_buf_reset(&got);
    CHECK_INT(itest_topic_collect(act, tag, 10, 3000, &got), 1);
    CHECK_CONTAINS(got.data, "\"event_id\":\"");
    CHECK_CONTAINS(got.data, "-good\"");
    bx_buf_free(&got);
    itest_mark_free(dlq);
    itest_mark_free(act);
    free(dir);
    stop(&in);
}
