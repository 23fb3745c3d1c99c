/* Transfers matched and 四查三比对 end to end (issue 15, items 5 and 6), beside the ladder's
 * scenario suite (test_scenario_ladder.c, whose county has one school): bx-ingest and bx-escalate
 * on a driven clock in a database of the case's own, a county of two schools; case actions posted
 * over HTTP as a school would, registry files imported with bxctl as a county would, `bxctl
 * settle` between steps (it waits for bx-escalate's transfer check and for the findings of bxctl
 * match), and the cases, tasks and matches read from PostgreSQL, the case events and notification
 * requests from Kafka, validated against their JSON Schemas. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_schema_check.h"
#include "bx_test.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COUNTY "990001"

typedef struct pipeline {
    char tag[24];
    char db_url[512];
    char *clock;
    char key_a[128];
    char group_name[96], group[300];
    int ingest_port;
    pid_t ingest, escalate;
    itest_mark *events, *requests;
} pipeline;

static pipeline pl;

static int bxctl_run(const char *const *args, char **out)
{
    return itest_bxctl(pl.db_url, pl.clock, args, out);
}

static void bxctl_ok(const char *const *args, char **out)
{
    char *text = NULL;
    int rc = bxctl_run(args, &text);
    if (rc != 0)
        fprintf(stderr, "bxctl %s %s: %s\n", args[0], args[1] ? args[1] : "", text);
    REQUIRE(rc == 0);
    if (out)
        *out = text;
    else
        free(text);
}

static void settle(void)
{
    char *out = NULL;
    int rc = bxctl_run(
        (const char *[]){"settle", "--group", pl.group, "--timeout", "120", "--verbose", NULL},
        &out);
    if (rc != 0)
        fprintf(stderr, "bxctl settle: %s\n", out);
    REQUIRE(rc == 0);
    free(out);
}

static void at(const char *local_time)
{
    settle();
    bxctl_ok((const char *[]){"clock", "set", local_time, NULL}, NULL);
    settle();
}

/* ---- the county: two primary schools of one township ---- */

/* An 18-character id number with its check digit: county, birth date YYYYMMDD, sequence. */
static void national_id(const char *birth, int seq, char out[19])
{
    static const int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    snprintf(out, 19, "%s%s%03d", COUNTY, birth, seq);
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (out[i] - '0') * weights[i];
    out[17] = "10X98765432"[sum % 11];
    out[18] = '\0';
}

/* The ids of the children: 1..3 at school A, 4 and 5 never enrolled. */
static char ids[6][19];

static char *registry_dir(void)
{
    char *dir = itest_tmpdir("matching-registry");
    char buf[2048];
    itest_write_file(dir, "counties.csv", "code,name\n" COUNTY ",测试县\n");
    itest_write_file(dir, "townships.csv",
                     "code,county_code,name\n" COUNTY "100," COUNTY ",测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    snprintf(buf, sizeof(buf),
             "school_id,name,township_code,stage,calendar_id\n"
             "%sA,转出小学," COUNTY "100,primary,it-2026\n%sB,转入小学," COUNTY
             "100,primary,it-2026\n",
             pl.tag, pl.tag);
    itest_write_file(dir, "schools.csv", buf);
    snprintf(buf, sizeof(buf),
             "staff_id,name,role,school_id,township_code,county_code,phone\n"
             "%sHA,钱老师,homeroom_teacher,%sA,,,\n%sPA,孙校长,principal,%sA,,,\n"
             "%sAA,李主任,academic_office,%sA,,,\n%sHB,赵老师,homeroom_teacher,%sB,,,\n"
             "%sPB,王校长,principal,%sB,,,\n%sAB,陈主任,academic_office,%sB,,,\n"
             "%sW,周干事,township_officer,," COUNTY "100,,\n%sK,吴科长,county_officer,,," COUNTY
             ",\n",
             pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag,
             pl.tag, pl.tag, pl.tag);
    itest_write_file(dir, "staff.csv", buf);
    snprintf(buf, sizeof(buf),
             "class_id,school_id,grade,name,homeroom_staff_id\n%sCA,%sA,3,三年级1班,%sHA\n"
             "%sCB,%sB,3,三年级1班,%sHB\n",
             pl.tag, pl.tag, pl.tag, pl.tag, pl.tag, pl.tag);
    itest_write_file(dir, "classes.csv", buf);
    snprintf(buf, sizeof(buf),
             "student_id,school_id,class_id,name,national_id,student_number,enrolled_on\n"
             "%s-01,%sA,%sCA,学生一,%s,G%s,2026-09-01\n%s-02,%sA,%sCA,学生二,%s,G%s,2026-09-01\n"
             "%s-03,%sA,%sCA,学生三,%s,,2026-09-01\n",
             pl.tag, pl.tag, pl.tag, ids[1], ids[1], pl.tag, pl.tag, pl.tag, ids[2], ids[2], pl.tag,
             pl.tag, pl.tag, ids[3]);
    itest_write_file(dir, "students.csv", buf);
    return dir;
}

static void pipeline_start(const char *local_time)
{
    memset(&pl, 0, sizeof(pl));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(pl.tag, sizeof(pl.tag), "M%d%03ld", (int)getpid() % 100000,
             (long)(ts.tv_nsec / 1000000));
    national_id("20170315", 11, ids[1]);
    national_id("20170402", 22, ids[2]);
    national_id("20170511", 31, ids[3]);
    national_id("20180304", 42, ids[4]);
    national_id("20130506", 51, ids[5]);
    snprintf(pl.db_url, sizeof(pl.db_url), "%s", itest_own_database("matching"));
    pl.clock = itest_clock_file(local_time);
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", pl.clock);
    bx_error err = {0};
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    bxctl_ok((const char *[]){"topics", "create", NULL}, NULL);
    bxctl_ok((const char *[]){"import", "holidays", itest_holidays_csv(), NULL}, NULL);
    char *dir = registry_dir();
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL}, NULL);
    free(dir);
    char school[40], *out = NULL;
    snprintf(school, sizeof(school), "%sA", pl.tag);
    bxctl_ok((const char *[]){"key", "create", school, "matching", NULL}, &out);
    const char *k = strstr(out, "bxk_");
    REQUIRE(k != NULL);
    snprintf(pl.key_a, sizeof(pl.key_a), "%.*s", (int)strcspn(k, "\n"), k);
    free(out);

    /* bx-escalate's group starts at the end of its topics: other runs' messages are not ours */
    snprintf(pl.group_name, sizeof(pl.group_name), "bx-escalate-match-%s", pl.tag);
    snprintf(pl.group, sizeof(pl.group), "%s:" BX_TOPIC_RISK "," BX_TOPIC_ACTIONS, pl.group_name);
    rd_kafka_topic_partition_list_destroy(itest_group_at_end(pl.group_name, BX_TOPIC_RISK));
    rd_kafka_topic_partition_list_destroy(itest_group_at_end(pl.group_name, BX_TOPIC_ACTIONS));
    pl.events = itest_topic_mark(BX_TOPIC_CASE_EVENTS);
    pl.requests = itest_topic_mark(BX_TOPIC_NOTIFY_REQUESTS);
    char pg_env[600], group_env[160];
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", pl.db_url);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", pl.group_name);
    const char *ingest_env[] = {pg_env, NULL};
    pl.ingest = itest_ingest_start(pl.clock, ingest_env, &pl.ingest_port);
    const char *esc_env[] = {pg_env, group_env, "BX_TIMER_LEASE_MS=2000",
                             "BX_REGISTRY_REFRESH_MS=200", NULL};
    int port = 0;
    pl.escalate = itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), pl.clock,
                                      esc_env, &port);
    settle();
}

static void pipeline_stop(void)
{
    itest_stop(pl.escalate);
    itest_stop(pl.ingest);
    itest_mark_free(pl.events);
    itest_mark_free(pl.requests);
    free(pl.clock);
    memset(&pl, 0, sizeof(pl));
}

/* A case action of school A's homeroom teacher at local_time. */
static void action(int student, const char *local_time, const char *name, const char *details)
{
    at(local_time);
    char body[1024], url[128];
    snprintf(body, sizeof(body),
             "{\"records\":[{\"student_id\":\"%s-%02d\",\"action\":\"%s\",\"date\":\"%.10s\","
             "\"staff_id\":\"%sHA\",\"details\":%s,\"event_id\":\"%s-%02d-%s\"}]}",
             pl.tag, student, name, local_time, pl.tag, details, pl.tag, student, name);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/actions", pl.ingest_port);
    itest_response r = {0};
    REQUIRE(itest_post(url, pl.key_a, "application/json", body, strlen(body), &r));
    if (r.status != 200 || !strstr(r.body.data, "\"accepted\":1"))
        fprintf(stderr, "POST %s: %ld %s\n", body, r.status, r.body.data);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "\"accepted\":1");
    bx_buf_free(&r.body);
    settle();
}

/* Imports one registry file written from text. */
static void import(const char *kind, const char *text)
{
    char *dir = itest_tmpdir("matching-import");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.csv", dir, kind);
    itest_write_file(dir, strrchr(path, '/') + 1, text);
    bxctl_ok((const char *[]){"import", kind, path, NULL}, NULL);
    free(dir);
}

/* The rows of a query with $1 a case's subject, '|' between columns (caller frees). */
static char *rows_of(const char *sql, const char *subject)
{
    return itest_sql_rows_params(pl.db_url, sql, 1, (const char *[]){subject});
}

/* Checks the rows of a query (no parameters) against expected. */
static void sql_is(const char *sql, const char *expected)
{
    char *rows = itest_sql_rows(pl.db_url, sql);
    CHECK_STR(rows, expected);
    free(rows);
}

/* bxctl match --json's counts: "school_age in_school never_enrolled findings poor". */
static void match_counts(const char *expected)
{
    char *out = NULL;
    bxctl_ok((const char *[]){"match", "--county", COUNTY, "--json", NULL}, &out);
    cJSON *j = cJSON_Parse(out);
    REQUIRE(j != NULL);
    static const char *const keys[] = {"school_age", "in_school", "never_enrolled", "findings",
                                       "registered_poor_out_of_school"};
    char got[128] = "";
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%d", i ? " " : "",
                 cJSON_IsNumber(v) ? v->valueint : -1);
    }
    CHECK_STR(got, expected);
    CHECK(strstr(out, ids[4]) == NULL && strstr(out, ids[5]) == NULL); /* never an id number */
    cJSON_Delete(j);
    free(out);
}

static const char *student_id(int n)
{
    static char id[8][40];
    snprintf(id[n % 8], sizeof(id[0]), "%s-%02d", pl.tag, n);
    return id[n % 8];
}

/* Reads the run's messages of a topic (every one naming the tag) and validates each against the
 * topic's JSON Schema. */
static char *topic_of(itest_mark *m, const char *topic)
{
    bx_buf lines;
    bx_buf_init(&lines, 0);
    REQUIRE(bx_buf_puts(&lines, "") == BX_OK);
    itest_topic_collect(m, pl.tag, 1000000, 2500, &lines);
    cJSON *schema = bx_schema_load_topic(topic);
    REQUIRE(schema != NULL);
    for (char *line = lines.data; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char err[300];
        bool valid = bx_schema_check_text(schema, line, len, err, sizeof(err));
        if (!valid)
            fprintf(stderr, "%s: %.*s: %s\n", topic, (int)len, line, err);
        CHECK(valid);
        line = nl ? nl + 1 : NULL;
    }
    cJSON_Delete(schema);
    return bx_buf_steal(&lines);
}

#define CASE_SQL                                                                                   \
    "SELECT coalesce(c.stage, '-'), coalesce(c.ending, 'open'), (SELECT count(*) FROM "            \
    "cases.task t WHERE t.case_id = c.id AND t.outcome IS NULL) FROM cases.case c WHERE "          \
    "c.student_id = $1 ORDER BY c.id DESC LIMIT 1"

BX_TEST(a_child_transferred_between_two_schools_is_matched_and_closed)
{
    pipeline_start("2026-10-12 08:00");
    /* school A records three transfers out: one in the province, one that will find two records,
     * one out of the province */
    action(
        1, "2026-10-12 16:00", "transfer_out",
        "{\"destination\":\"in_province\",\"receiving_school\":\"转入小学\",\"paperwork\":true}");
    action(2, "2026-10-12 16:01", "transfer_out",
           "{\"destination\":\"in_province\",\"paperwork\":true}");
    action(3, "2026-10-12 16:02", "transfer_out",
           "{\"destination\":\"out_of_province\",\"paperwork\":true}");
    for (int i = 1; i <= 3; i++) {
        char *c = rows_of(CASE_SQL, student_id(i));
        CHECK_STR(c, "-|open|1\n"); /* transfer_confirmation for the academic office */
        free(c);
    }

    /* the next day school B enrols child 1 (same student number and id number) and, by mistake,
     * child 2 twice; A's registry marks its leavers */
    at("2026-10-13 16:00");
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "student_id,school_id,class_id,name,national_id,student_number,status,enrolled_on\n"
             "%s-01,%sA,%sCA,学生一,%s,G%s,transferred_out,2026-09-01\n"
             "%s-51,%sB,%sCB,学生一,%s,G%s,enrolled,2026-10-13\n"
             "%s-52,%sB,%sCB,学生二,%s,G%s,enrolled,2026-10-13\n"
             "%s-53,%sB,%sCB,学生二,%s,,enrolled,2026-10-13\n",
             pl.tag, pl.tag, pl.tag, ids[1], ids[1], pl.tag, pl.tag, pl.tag, ids[1], ids[1], pl.tag,
             pl.tag, pl.tag, ids[2], ids[2], pl.tag, pl.tag, pl.tag, ids[2]);
    import("students", buf);
    settle(); /* matching.settle_pending: until bx-escalate's transfer check saw the import */

    char *c = rows_of(CASE_SQL, student_id(1));
    CHECK_STR(c, "-|transferred|0\n");
    free(c);
    char *closed = rows_of("SELECT e.actor, e.reason FROM cases.event e JOIN cases.case c ON c.id "
                           "= e.case_id WHERE c.student_id = $1 AND e.kind = 'closed'",
                           student_id(1));
    CHECK_CONTAINS(closed, "bx-escalate|transfer confirmed: enrolled at school ");
    CHECK_CONTAINS(itest_untag(closed, pl.tag), "school TB (转入小学), matched by student number "
                                                "and id number in the registry");
    free(closed);
    char *done = rows_of("SELECT t.kind, t.outcome FROM cases.task t JOIN cases.case c ON c.id = "
                         "t.case_id WHERE c.student_id = $1 ORDER BY t.id",
                         student_id(1));
    CHECK_STR(done, "transfer_confirmation|done\n");
    free(done);
    char *m = rows_of("SELECT outcome, from_school, to_student_id, to_school, matched_by FROM "
                      "cases.transfer_match WHERE student_id = $1",
                      student_id(1));
    CHECK_STR(itest_untag(m, pl.tag), "confirmed|TA|T-51|TB|both\n");
    free(m);

    /* two records in school: refused, never guessed; the case waits for the paperwork */
    c = rows_of(CASE_SQL, student_id(2));
    CHECK_STR(c, "-|open|1\n");
    free(c);
    m = rows_of("SELECT outcome, detail FROM cases.transfer_match WHERE student_id = $1",
                student_id(2));
    CHECK_STR(itest_untag(m, pl.tag), "refused|enrolled at more than one school, not confirmed "
                                      "automatically: T-52 at TB, T-53 at TB\n");
    free(m);
    /* out of the province: nothing here to match */
    c = rows_of(CASE_SQL, student_id(3));
    CHECK_STR(c, "-|open|1\n");
    free(c);

    /* both schools see it: the leaver's case and the new record's transfer in */
    char *show = NULL;
    bxctl_ok((const char *[]){"case", "show", student_id(1), NULL}, &show);
    CHECK_CONTAINS(itest_untag(show, pl.tag), "enrolled as T-51 at school TB (matched by both)");
    free(show);
    bxctl_ok((const char *[]){"case", "show", student_id(51), NULL}, &show);
    CHECK_CONTAINS(itest_untag(show, pl.tag), "transfer in: from school TA (student T-01");
    free(show);
    bxctl_ok((const char *[]){"case", "show", student_id(51), "--json", NULL}, &show);
    cJSON *j = cJSON_Parse(show);
    REQUIRE(j != NULL);
    const cJSON *tr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "transfers"), 0);
    REQUIRE(tr != NULL);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(tr, "direction")->valuestring, "in");
    cJSON_Delete(j);
    free(show);

    /* not received within the policy's limit (10 school days): treated as dropout (视同辍学) */
    at("2026-10-26 17:30");
    c = rows_of(CASE_SQL, student_id(3));
    CHECK_CONTAINS(c, "dropout_roster|open|");
    free(c);
    /* out of the province the receiving school's paperwork still confirms */
    action(3, "2026-10-27 10:00", "transfer_confirmed",
           "{\"receiving_school\":\"外省某县第一小学\",\"confirmation_no\":\"ZR-2026-0917\"}");
    c = rows_of(CASE_SQL, student_id(3));
    CHECK_STR(c, "dropout_roster|transferred|0\n");
    free(c);

    char *events = topic_of(pl.events, BX_TOPIC_CASE_EVENTS);
    CHECK_CONTAINS(events, "\"ending\":\"transferred\"");
    free(events);
    free(topic_of(pl.requests, BX_TOPIC_NOTIFY_REQUESTS));
    pipeline_stop();
}

BX_TEST(a_child_in_the_household_list_and_in_no_school_becomes_a_suspected_case)
{
    pipeline_start("2026-09-01 07:00");
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "national_id,name,birth_date,township_code,address\n"
             "%s,学生一,2017-03-15," COUNTY "100,\n%s,学生二,2017-04-02," COUNTY "100,\n"
             "%s,学生三,2017-05-11," COUNTY "100,某村\n%s,未入学甲,2018-03-04," COUNTY "100,某村\n"
             "%s,未入学乙,2013-05-06," COUNTY "100,\n",
             ids[1], ids[2], ids[3], ids[4], ids[5]);
    import("household", buf);
    snprintf(buf, sizeof(buf), "county_code,national_id\n" COUNTY ",%s\n", ids[4]);
    import("poverty", buf);
    char *out = NULL;
    bxctl_ok((const char *[]){"match", "--county", COUNTY, NULL}, &out);
    CHECK_CONTAINS(out, "enrolment rate (入学率)");
    CHECK_CONTAINS(out, "60.00%");
    CHECK_CONTAINS(out, "[registered poor]");
    CHECK(strstr(out, ids[4]) == NULL); /* never an id number */
    free(out);
    /* a second run asks for nothing new: the children's findings wait for bx-escalate */
    match_counts("5 3 2 0 1");
    settle(); /* matching.settle_pending: until bx-escalate applied the findings */

    char *keys = itest_sql_rows(pl.db_url, "SELECT child_key FROM registry.household_child "
                                           "WHERE national_id IN (SELECT national_id FROM "
                                           "registry.poverty_child) ORDER BY id");
    char poor_key[64];
    snprintf(poor_key, sizeof(poor_key), "%.*s", (int)strcspn(keys, "\n"), keys);
    free(keys);
    char *c = rows_of(CASE_SQL, poor_key);
    CHECK_STR(c, "-|open|1\n");
    free(c);
    char *task = rows_of("SELECT t.kind, t.owner_role, to_char(t.due_at AT TIME ZONE "
                         "'Asia/Shanghai', 'MM-DD HH24:MI'), c.school_id FROM cases.task t JOIN "
                         "cases.case c ON c.id = t.case_id WHERE c.student_id = $1",
                         poor_key);
    CHECK_STR(itest_untag(task, pl.tag), "find_and_enrol|township_officer|09-15 17:00|TA\n");
    free(task);
    char *opened = rows_of("SELECT e.reason FROM cases.event e JOIN cases.case c ON c.id = "
                           "e.case_id WHERE c.student_id = $1 AND e.kind = 'opened'",
                           poor_key);
    CHECK_CONTAINS(opened, "in the household register of township " COUNTY "100, enrolled at no "
                           "school; registered-poor household");
    free(opened);
    sql_is("SELECT count(*) FROM cases.case WHERE student_id LIKE 'hh-%' AND closed_at IS NULL",
           "2\n");
    /* the township is told, by the case's school: no student id, no name, no number */
    char *requests = topic_of(pl.requests, BX_TOPIC_NOTIFY_REQUESTS);
    CHECK_CONTAINS(requests, "\"student_id\":null,\"template\":\"task_assigned\","
                             "\"recipient_role\":\"township_officer\"");
    CHECK_CONTAINS(requests, "\"task\":\"find_and_enrol\"");
    CHECK(strstr(requests, ids[4]) == NULL);
    free(requests);
    char *ledger = NULL;
    bxctl_ok((const char *[]){"ledger", "--county", COUNTY, "--kind", "suspected", NULL}, &ledger);
    CHECK_CONTAINS(ledger, poor_key);
    free(ledger);

    /* the township finds the child; school A enrols them; the next match closes the case */
    at("2026-09-08 09:00");
    snprintf(buf, sizeof(buf),
             "student_id,school_id,class_id,name,national_id,enrolled_on\n"
             "%s-61,%sA,%sCA,未入学甲,%s,2026-09-08\n",
             pl.tag, pl.tag, pl.tag, ids[4]);
    import("students", buf);
    match_counts("5 4 1 0 0");
    sql_is("SELECT kind, count(*) FROM matching.finding GROUP BY kind ORDER BY kind",
           "enrolled|1\nout_of_school|2\n");
    settle();
    c = rows_of(CASE_SQL, poor_key);
    CHECK_STR(c, "-|returned|0\n");
    free(c);
    task = rows_of("SELECT t.outcome FROM cases.task t JOIN cases.case c ON c.id = t.case_id "
                   "WHERE c.student_id = $1",
                   poor_key);
    CHECK_STR(task, "done\n");
    free(task);
    sql_is("SELECT count(*) FROM cases.case WHERE student_id LIKE 'hh-%' AND closed_at IS NULL",
           "1\n");
    /* the enrolment rate in bxctl report */
    char *report = NULL;
    bxctl_ok((const char *[]){"report", "--term", "2026-autumn", "--county", COUNTY, "--level",
                              "county", NULL},
             &report);
    CHECK_CONTAINS(report, "enrolment rate (入学率) of county " COUNTY ": 4 of 5 school-age "
                           "children of the household register in school, 80.00%");
    free(report);
    free(topic_of(pl.events, BX_TOPIC_CASE_EVENTS));
    pipeline_stop();
}
