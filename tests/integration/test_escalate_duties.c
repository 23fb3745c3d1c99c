/* bx-escalate's calendar duties against PostgreSQL and Kafka, on a driven clock: the duties of the
 * running term scheduled once as durable timers (the 10th school day, the 15th counted across a
 * make-up Sunday, the last school day of each month); the term-start check opens a suspected
 * dropout case (疑似辍学) for each registered child no reported roll call has seen, and the
 * transition check for a child who left primary school and is enrolled nowhere; the out-of-school
 * report and the monthly summary asked of bx-notify for the county's bureau, valid by their
 * schema; a restart schedules and fires nothing twice. Each case has its own database, calendar
 * id, topics and group. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_schema_check.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static char db_url[512], tag[24], cal[40], risk[96], actions[96], group[96], settle_spec[300];
static char *clock_path;
static pid_t escalate;

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static int bxctl(const char *const *args, char **out)
{
    return itest_bxctl(db_url, clock_path, args, out);
}

static void bxctl_ok(const char *const *args)
{
    char *out = NULL;
    int rc = bxctl(args, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl %s: %s\n", args[0], out);
    REQUIRE(rc == 0);
    free(out);
}

static void exec_sql(const char *sql)
{
    itest_sql_exec(db_url, sql);
}

static char *rows_of(const char *sql)
{
    return itest_sql_rows(db_url, sql);
}

/* Replaces this run's tag in text by "T" (in place). */
static char *untag(char *text)
{
    return itest_untag(text, tag);
}

/* Roll calls of class `klass` on every school day from 09-01 to 09-14 (period 0), and for each
 * student the value of each day's fact ('-' none: present by the roll call). */
static void attendance(const char *klass, const char *school, const char *student,
                       const char *value_all, const char *leave_day)
{
    static const char *const days[] = {"2026-09-01", "2026-09-02", "2026-09-03", "2026-09-04",
                                       "2026-09-07", "2026-09-08", "2026-09-09", "2026-09-10",
                                       "2026-09-11", "2026-09-14", NULL};
    bx_buf b;
    bx_buf_init(&b, 0);
    for (int i = 0; days[i]; i++) {
        REQUIRE(bx_buf_printf(&b,
                              "INSERT INTO attendance.class_report VALUES ('%s%s', '%s', 0, "
                              "'%s%s', 'k', '1,0,0,0,0,1') ON CONFLICT DO NOTHING;",
                              tag, klass, days[i], tag, school) == BX_OK);
        if (student == NULL)
            continue;
        const char *v = leave_day && strcmp(leave_day, days[i]) == 0 ? "ls" : value_all;
        if (strcmp(v, "-") != 0)
            REQUIRE(bx_buf_printf(&b,
                                  "INSERT INTO attendance.fact VALUES ('%s%s', '%s|0', '%s', 0, "
                                  "'%s%s', '%s%s', 'k', '%s');",
                                  tag, student, days[i], days[i], tag, school, tag, klass,
                                  v) == BX_OK);
    }
    exec_sql(b.data);
    bx_buf_free(&b);
}

/* The registry (calendar cal-<tag>, 2026 spring and autumn terms, national holidays):
 *   primary school <T>P: class <T>C3 (grade 3): <T>-01 absent every day (not seen), <T>-02
 *     present (no facts), <T>-03 absent but on sick leave one day (seen), <T>-04 absent every
 *     day but registered on 09-10 (not expected at the start); class <T>C6 (grade 6): <T>-05
 *     graduated (left after grade 6); class <T>C4 (grade 4), which never did a roll call: <T>-07
 *   junior school <T>J: class <T>C7 (grade 7): <T>-06 absent every day (a transition loss)
 *   county officer <T>K. */
static void setup_with(bool spring_2027);

static void setup(void)
{
    setup_with(false);
}

/* spring_2027: the calendar has the next spring term too (2027-02-22..2027-07-02). */
static void setup_with(bool spring_2027)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, sizeof(tag), "U%d%03ld", (int)getpid() % 100000, (long)(ts.tv_nsec / 1000000));
    snprintf(cal, sizeof(cal), "cal-%s", tag);
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("duties"));
    clock_path = itest_clock_file("2026-09-01 07:00");
    char *dir = itest_tmpdir("duties-registry");
    char buf[2048];
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    int used = snprintf(buf, sizeof(buf),
                        "calendar_id,entry,first_day,last_day,name\n%s,term,2026-03-02,2026-07-10,"
                        "2026-spring\n%s,term,2026-09-01,2027-01-22,2026-autumn\n",
                        cal, cal);
    if (spring_2027)
        snprintf(buf + used, sizeof(buf) - (size_t)used,
                 "%s,term,2027-02-22,2027-07-02,2027-spring\n", cal);
    itest_write_file(dir, "calendar.csv", buf);
    snprintf(buf, sizeof(buf),
             "school_id,name,township_code,stage,calendar_id\n%sP,职责测试小学,990001100,primary,"
             "%s\n%sJ,职责测试中学,990001100,junior,%s\n",
             tag, cal, tag, cal);
    itest_write_file(dir, "schools.csv", buf);
    snprintf(buf, sizeof(buf),
             "staff_id,name,role,school_id,township_code,county_code,phone\n"
             "%sK,吴科长,county_officer,,,990001,\n",
             tag);
    itest_write_file(dir, "staff.csv", buf);
    snprintf(buf, sizeof(buf),
             "class_id,school_id,grade,name,homeroom_staff_id\n%sC3,%sP,3,三年级1班,\n"
             "%sC6,%sP,6,六年级1班,\n%sC4,%sP,4,四年级1班,\n%sC7,%sJ,7,七年级1班,\n",
             tag, tag, tag, tag, tag, tag, tag, tag);
    itest_write_file(dir, "classes.csv", buf);
    snprintf(buf, sizeof(buf),
             "student_id,school_id,class_id,name,status,enrolled_on\n"
             "%s-01,%sP,%sC3,学生一,enrolled,\n%s-02,%sP,%sC3,学生二,enrolled,\n"
             "%s-03,%sP,%sC3,学生三,enrolled,\n%s-04,%sP,%sC3,学生四,enrolled,2026-09-10\n"
             "%s-05,%sP,%sC6,学生五,graduated,\n%s-06,%sJ,%sC7,学生六,enrolled,\n"
             "%s-07,%sP,%sC4,学生七,enrolled,\n",
             tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag,
             tag, tag, tag, tag);
    itest_write_file(dir, "students.csv", buf);
    const char *holidays = itest_holidays_csv();
    bxctl_ok((const char *[]){"import", "holidays", holidays, NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
    attendance("C3", "P", "-01", "a", NULL);
    attendance("C3", "P", "-02", "-", NULL);
    attendance("C3", "P", "-03", "a", "2026-09-03");
    attendance("C3", "P", "-04", "a", NULL);
    attendance("C7", "J", "-06", "a", NULL);

    snprintf(risk, sizeof(risk), "bx.itest.duties.risk.%s", tag);
    snprintf(actions, sizeof(actions), "bx.itest.duties.actions.%s", tag);
    snprintf(group, sizeof(group), "bx-escalate-duties-%s", tag);
    snprintf(settle_spec, sizeof(settle_spec), "%s:%s,%s", group, risk, actions);
    const char *const topics[] = {risk, actions};
    const int partitions[] = {1, 1};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 2, 15000, &err) == BX_OK);
}

static void start_escalate(void)
{
    char risk_env[160], actions_env[160], group_env[160], pg_env[600];
    snprintf(risk_env, sizeof(risk_env), "BX_RISK_TOPIC=%s", risk);
    snprintf(actions_env, sizeof(actions_env), "BX_ACTIONS_TOPIC=%s", actions);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", group);
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", db_url);
    const char *env[] = {risk_env, actions_env, group_env, pg_env, "BX_REGISTRY_REFRESH_MS=200",
                         NULL};
    int port = 0;
    escalate =
        itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), clock_path, env, &port);
}

static void settle(void)
{
    char *out = NULL;
    int rc =
        bxctl((const char *[]){"settle", "--group", settle_spec, "--timeout", "60", NULL}, &out);
    if (rc != 0)
        fprintf(stderr, "settle: %s\n", out);
    REQUIRE(rc == 0);
    free(out);
}

static void at(const char *local_time)
{
    settle();
    bxctl_ok((const char *[]){"clock", "set", local_time, NULL});
    settle();
}

#define DUTY_TIMERS                                                                                \
    "SELECT timer_key, to_char(due_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI'), "       \
    "fired_at IS NOT NULL, attempts FROM cases.timer WHERE kind = 'duty' AND timer_key NOT LIKE "  \
    "'duty:rollcall%' AND payload->>'period' IS NULL ORDER BY due_at, timer_key"

BX_TEST(duties_scheduled_once_and_term_start_check)
{
    setup();
    start_escalate();
    settle();
    /* the autumn term's duties (the spring term is over): the 10th school day is Monday 09-14;
     * the 15th is the make-up Sunday 09-20; each month's last school day in the term */
    char *timers = untag(rows_of(DUTY_TIMERS));
    CHECK_STR(timers, "duty:term_start:cal-T:2026-autumn|2026-09-14 17:00|f|0\n"
                      "duty:transition:cal-T:2026-autumn|2026-09-14 17:00|f|0\n"
                      "duty:out_of_school_report:cal-T:2026-autumn|2026-09-20 17:00|f|0\n"
                      "duty:monthly_summary:cal-T:2026-autumn:2026-09|2026-09-30 17:00|f|0\n"
                      "duty:monthly_summary:cal-T:2026-autumn:2026-10|2026-10-30 17:00|f|0\n"
                      "duty:monthly_summary:cal-T:2026-autumn:2026-11|2026-11-30 17:00|f|0\n"
                      "duty:monthly_summary:cal-T:2026-autumn:2026-12|2026-12-31 17:00|f|0\n"
                      "duty:monthly_summary:cal-T:2026-autumn:2027-01|2027-01-22 17:00|f|0\n");
    free(timers);

    itest_mark *requests = itest_topic_mark(BX_TOPIC_NOTIFY_REQUESTS);
    at("2026-09-14 16:59");
    char *none = rows_of("SELECT count(*) FROM cases.case");
    CHECK_STR(none, "0\n");
    free(none);
    at("2026-09-14 17:30");
    char *cases = untag(
        rows_of("SELECT c.student_id, c.school_id, c.stage, c.state->>'case_id', e.reason FROM "
                "cases.case c JOIN cases.event e ON e.case_id = c.id AND e.kind = 'opened' "
                "ORDER BY c.student_id"));
    CHECK_STR(cases, "T-01|TP|contact_family|T-01:20260901|疑似辍学: not seen at school in the "
                     "first 10 school days of term 2026-autumn (2026-09-01 to 2026-09-14)\n"
                     "T-05|TP|contact_family|T-05:20260901|疑似辍学: left school TP after grade 6 "
                     "and enrolled at no other school by 2026-09-14 (transition, term "
                     "2026-autumn)\n"
                     "T-06|TJ|contact_family|T-06:20260901|疑似辍学: transition into a new grade: "
                     "not seen at school in the first 10 school days of term 2026-autumn "
                     "(2026-09-01 to 2026-09-14)\n");
    free(cases);
    /* the suspected children are followed: the contact task with its deadline */
    char *tasks =
        untag(rows_of("SELECT c.student_id, t.kind, to_char(t.due_at AT TIME ZONE 'Asia/Shanghai', "
                      "'MM-DD HH24:MI') FROM cases.task t JOIN cases.case c ON c.id = t.case_id "
                      "WHERE t.kind = 'contact_family' ORDER BY 1"));
    CHECK_STR(tasks, "T-01|contact_family|09-15 17:00\nT-05|contact_family|09-15 17:00\n"
                     "T-06|contact_family|09-15 17:00\n");
    free(tasks);
    char *ledger = NULL;
    CHECK_INT(bxctl((const char *[]){"ledger", "--kind", "suspected", "--json", NULL}, &ledger), 0);
    char want[80];
    snprintf(want, sizeof(want), "%s-01", tag);
    CHECK_CONTAINS(ledger, want);
    snprintf(want, sizeof(want), "%s-06", tag);
    CHECK_CONTAINS(ledger, want);
    free(ledger);

    /* a restart schedules nothing twice and fires nothing again */
    itest_stop(escalate);
    start_escalate();
    at("2026-09-15 08:00");
    /* (the day's roll-call checks, scheduled day by day, and the reports upward are counted
     * apart) */
    char *counts = rows_of("SELECT (SELECT count(*) FROM cases.timer WHERE kind = 'duty' AND "
                           "timer_key NOT LIKE 'duty:rollcall%' AND payload->>'period' IS NULL), "
                           "(SELECT count(*) FROM cases.case), (SELECT count(*) FROM cases.event "
                           "WHERE kind = 'opened'), (SELECT max(attempts) FROM cases.timer WHERE "
                           "kind = 'duty' AND fired_at IS NOT NULL)");
    CHECK_STR(counts, "8|3|3|1\n");
    free(counts);

    /* the 15-day report of children out of school, to the county's bureau */
    at("2026-09-20 17:30");
    bx_buf got;
    bx_buf_init(&got, 0);
    char needle[120];
    snprintf(needle, sizeof(needle), "duty:out_of_school_report:%s", cal);
    CHECK_INT(itest_topic_collect(requests, needle, 2, 5000, &got), 1);
    REQUIRE(got.data != NULL);
    cJSON *schema = bx_schema_load_topic(BX_TOPIC_NOTIFY_REQUESTS);
    REQUIRE(schema != NULL);
    char err[300] = "";
    bool valid = bx_schema_check_text(schema, got.data, strcspn(got.data, "\n"), err, sizeof(err));
    if (!valid)
        fprintf(stderr, "%s: %s\n", got.data, err);
    CHECK(valid);
    char *report = untag(got.data);
    CHECK_CONTAINS(report, "\"template\":\"out_of_school_report\",\"recipient_role\":"
                           "\"county_officer\",\"recipient_staff_id\":null");
    CHECK_CONTAINS(report, "\"county_code\":\"990001\",\"term\":\"2026-autumn\","
                           "\"first_day\":\"2026-09-01\",\"last_day\":\"2026-09-20\","
                           "\"suspected\":3,\"dropouts\":0");
    bx_buf_free(&got);

    /* the month's summary on its last school day */
    at("2026-09-30 17:30");
    bx_buf_init(&got, 0);
    snprintf(needle, sizeof(needle), "duty:monthly_summary:%s:2026-autumn:2026-09", cal);
    CHECK_INT(itest_topic_collect(requests, needle, 2, 5000, &got), 1);
    REQUIRE(got.data != NULL);
    valid = bx_schema_check_text(schema, got.data, strcspn(got.data, "\n"), err, sizeof(err));
    CHECK(valid);
    CHECK_CONTAINS(got.data, "\"template\":\"monthly_summary\"");
    CHECK_CONTAINS(got.data, "\"first_day\":\"2026-09-01\",\"last_day\":"
                             "\"2026-09-30\",\"suspected\":3,\"dropouts\":0,"
                             "\"opened\":3,\"returned\":0");
    bx_buf_free(&got);
    cJSON_Delete(schema);
    itest_mark_free(requests);
    itest_stop(escalate);
    free(clock_path);
}

/* The reports upward (四个一, issue 15 item 7) on the driven clock: on 09-30, September's report of
 * each school and the county's third quarter, each once with its figures (the roll calls of
 * classes C3 and C7 on ten school days, class C4 none), the school's academic office and the
 * county's officer asked for them as tasks; bx-escalate killed (SIGKILL) as they fall due makes
 * none twice after its restart; a jump of the clock to the spring term's last day makes every
 * report since once, each dated on its own school day; the city's and the province's are kept
 * for bx-console and bxctl, with no message. */
BX_TEST(reports_upward_once_each_on_their_school_day)
{
    setup_with(true);
    start_escalate();
    settle();
    itest_mark *requests = itest_topic_mark(BX_TOPIC_NOTIFY_REQUESTS);
    at("2026-09-30 16:59");
    char *none = rows_of("SELECT count(*) FROM cases.upward_report");
    CHECK_STR(none, "0\n");
    free(none);
    /* killed as the reports fall due, then restarted */
    bxctl_ok((const char *[]){"clock", "set", "2026-09-30 17:30", NULL});
    usleep(300 * 1000);
    kill(escalate, SIGKILL);
    itest_wait_exit(escalate, 10000);
    start_escalate();
    settle();
    char *rows = untag(rows_of(
        "SELECT kind, area, period, first_day, last_day, report_day, coalesce(county_code, '-'), "
        "owner_role, request_id IS NOT NULL FROM cases.upward_report ORDER BY kind, area"));
    CHECK_STR(rows, "county_quarterly_report|990001|2026-Q3|2026-07-01|2026-09-30|2026-09-30|"
                    "990001|county_officer|t\n"
                    "school_monthly_report|TJ|2026-09|2026-09-01|2026-09-30|2026-09-30|990001|"
                    "academic_office|t\n"
                    "school_monthly_report|TP|2026-09|2026-09-01|2026-09-30|2026-09-30|990001|"
                    "academic_office|t\n");
    free(rows);
    /* the figures: the term-start check's suspected children (T-01 and T-05 at TP, T-06 at TJ);
     * roll calls on 10 of the 21 school days over (09-30 not reported: not due yet) for C3 and
     * C7, none for C4; C6 has no enrolled child. The quarter holds the spring term's last 8
     * school days of July too. */
    char *figures = untag(
        rows_of("SELECT area, figures->'ledger'->>'suspected', figures->'ledger'->>'dropout', "
                "figures->'rollcall'->>'days_due', figures->'rollcall'->>'days_reported', "
                "figures->'rollcall'->>'rate_pct', figures->'rollcall'->>'incomplete_classes', "
                "figures ? 'dropout_rate_pct', figures ? 'retention_rate_pct', figures ? 'returns' "
                "FROM cases.upward_report ORDER BY kind, area"));
    CHECK_STR(figures, "990001|3|0|87|20|22.99|3|t|t|t\n"
                       "TJ|1|0|21|10|47.62|1|t|t|t\n"
                       "TP|2|0|42|10|23.81|2|t|t|t\n");
    free(figures);
    /* each office's task once (the outbox holds one row per request: relayed at least once, a
     * redelivery after the kill carries the same request_id), valid by the schema */
    cJSON *schema = bx_schema_load_topic(BX_TOPIC_NOTIFY_REQUESTS);
    REQUIRE(schema != NULL);
    char *asked = rows_of("SELECT payload FROM cases.outbox WHERE payload::jsonb->>'template' IN "
                          "('school_monthly_report', 'county_quarterly_report', "
                          "'monthly_summary') ORDER BY event_id");
    int lines = 0;
    for (const char *line = asked; *line; lines++) {
        size_t len = strcspn(line, "\n");
        char err[300] = "";
        if (!bx_schema_check_text(schema, line, len, err, sizeof(err)))
            BX_FAIL_AT("%.*s: %s", (int)len, line, err);
        line += len + (line[len] == '\n');
    }
    CHECK_INT(lines, 4);
    char *text = untag(asked);
    CHECK_CONTAINS(text, "\"template\":\"school_monthly_report\",\"recipient_role\":"
                         "\"academic_office\",\"recipient_staff_id\":null,\"channel\":\"task\","
                         "\"params\":{\"school_id\":\"TP\",\"county_code\":\"990001\"");
    CHECK_CONTAINS(text, "\"reporting_rate\":\"23.81%\",\"incomplete_classes\":2");
    CHECK_CONTAINS(text, "\"template\":\"county_quarterly_report\",\"recipient_role\":"
                         "\"county_officer\"");
    /* the month's summary to the county carries its reporting rate: the calendar's classes over
     * September's days */
    CHECK_CONTAINS(text, "\"template\":\"monthly_summary\"");
    CHECK_CONTAINS(text, "\"reporting_rate\":\"31.75%\",\"incomplete_classes\":3");
    free(asked);
    /* and it reaches Kafka */
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK(itest_topic_collect(requests, "\"county_quarterly_report\"", 1, 5000, &got) >= 1);
    bx_buf_free(&got);

    /* the clock jumps to the spring term's last day: every report since, once, on its day */
    itest_stop(escalate);
    start_escalate();
    at("2027-07-02 17:30");
    char *made =
        untag(rows_of("SELECT kind, count(*), string_agg(DISTINCT period, ',' ORDER BY period), "
                      "string_agg(DISTINCT report_day::text, ',' ORDER BY report_day::text) FROM "
                      "cases.upward_report GROUP BY kind ORDER BY kind"));
    CHECK_STR(made, "city_term_report|2|2026-autumn,2027-spring|2027-01-22,2027-07-02\n"
                    "county_quarterly_report|4|2026-Q3,2026-Q4,2027-Q1,2027-Q2|2026-09-30,"
                    "2026-12-31,2027-03-31,2027-06-30\n"
                    "province_yearly_report|1|2026-2027|2027-07-02\n"
                    "school_monthly_report|22|2026-09,2026-10,2026-11,2026-12,2027-01,2027-02,"
                    "2027-03,2027-04,2027-05,2027-06,2027-07|2026-09-30,2026-10-30,2026-11-30,"
                    "2026-12-31,2027-01-22,2027-02-26,2027-03-31,2027-04-30,2027-05-31,"
                    "2027-06-30,2027-07-02\n");
    free(made);
    char *upper = untag(rows_of("SELECT kind, area, first_day, owner_role, request_id IS NULL, "
                                "figures->'ledger'->>'suspected' FROM cases.upward_report WHERE "
                                "kind IN ('city_term_report', 'province_yearly_report') ORDER "
                                "BY kind, period"));
    CHECK_STR(upper, "city_term_report|9900|2026-09-01|city_officer|t|3\n"
                     "city_term_report|9900|2027-02-22|city_officer|t|3\n"
                     "province_yearly_report|99|2026-09-01|province_officer|t|3\n");
    free(upper);
    /* no report twice, one request per school and county report */
    char *counts = rows_of("SELECT (SELECT count(*) FROM cases.upward_report), (SELECT count(*) "
                           "FROM cases.outbox WHERE payload::jsonb->>'template' IN "
                           "('school_monthly_report', 'county_quarterly_report')), (SELECT "
                           "count(*) FROM cases.timer WHERE kind = 'duty' AND payload ? "
                           "'period' AND fired_at IS NULL AND due_at <= '2027-07-02 17:30+08')");
    CHECK_STR(counts, "29|26|0\n");
    free(counts);
    /* bxctl report --upward lists them, the county's and its places', with their figures */
    char *out = NULL;
    CHECK_INT(bxctl((const char *[]){"report", "--upward", "--county", "990001", "--kind",
                                     "county_quarterly_report", NULL},
                    &out),
              0);
    char *listed = untag(out);
    CHECK_CONTAINS(listed, "county_quarterly_report  990001     2026-Q3      07-01..09-30");
    CHECK_CONTAINS(listed, "county_officer");
    CHECK_CONTAINS(listed, "22.99%");
    CHECK_CONTAINS(listed, "asked");
    free(out);
    CHECK_INT(
        bxctl((const char *[]){"report", "--upward", "--county", "99", "--format", "json", NULL},
              &out),
        0);
    cJSON *doc = cJSON_Parse(out);
    REQUIRE(doc != NULL);
    const cJSON *list = cJSON_GetObjectItem(doc, "reports");
    CHECK_INT(cJSON_GetArraySize(list), 29);
    const cJSON *last = cJSON_GetArrayItem(list, 28);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(last, "kind")), "province_yearly_report");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(last, "task_request_id")));
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "figures"), "rollcall")));
    cJSON_Delete(doc);
    free(out);
    CHECK_INT(bxctl((const char *[]){"report", "--upward", "--kind", "weekly", NULL}, &out), 2);
    free(out);
    cJSON_Delete(schema);
    itest_mark_free(requests);
    itest_stop(escalate);
    free(clock_path);
}

/* Polls sql until its rows are want (at most 60 s; the check is on the rows, not the time). */
static char *rows_when(const char *sql, const char *want)
{
    char *rows = NULL;
    for (int i = 0; i < 600; i++) {
        free(rows);
        rows = rows_of(sql);
        if (strcmp(rows, want) == 0)
            break;
        usleep(100 * 1000);
    }
    return rows;
}

/* Backends of this database waiting for a lock on cases.upward_report. */
#define REPORTS_WAITING                                                                            \
    "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = (SELECT oid FROM "             \
    "pg_database WHERE datname = current_database()) AND relation = "                              \
    "'cases.upward_report'::regclass"

/* The calendar duties run on bx-escalate's duty worker, on a connection of their own (issue 17):
 * while the test's own transaction holds a lock on cases.upward_report, the reports falling due on
 * 09-30 wait for it, yet an assessment published meanwhile is applied and its notification request
 * relayed; bx-escalate stopped while the duty waits exits cleanly and the duty runs after the
 * restart; once the lock is let go, every report is made once and each duty ran once. */
BX_TEST(inputs_applied_while_a_duty_waits)
{
    setup();
    start_escalate();
    at("2026-09-30 16:59");
    PGconn *holder = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &holder, &err) == BX_OK);
    REQUIRE(bx_pg_exec(holder, "BEGIN", &err) == BX_OK);
    REQUIRE(bx_pg_exec(holder, "LOCK TABLE cases.upward_report IN EXCLUSIVE MODE", &err) == BX_OK);
    bxctl_ok((const char *[]){"clock", "set", "2026-09-30 17:30", NULL});
    /* the duty worker reached the reports and waits for the lock */
    char *waiting = rows_when(REPORTS_WAITING, "1\n");
    CHECK_STR(waiting, "1\n");
    free(waiting);

    bx_producer *p = NULL;
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    char id[40], value[1200];
    snprintf(id, sizeof(id), "%s-02", tag);
    snprintf(value, sizeof(value),
             "{\"schema\":\"bx.risk.v1\",\"event_id\":\"risk:%s:2026-09-30\",\"student_id\":\"%s\","
             "\"school_id\":\"%sP\",\"class_id\":\"%sC3\",\"date\":\"2026-09-30\",\"streak_days\":"
             "1,\"streak_start\":\"2026-09-30\",\"unexcused_periods_today\":0,"
             "\"attendance_rate_20d\":0.8,\"attendance_rate_term\":0.9,\"chronic_absence\":false,"
             "\"score\":10,\"tier\":\"medium\",\"previous_tier\":null,\"trigger\":"
             "\"streak_changed\",\"factors\":[],\"assessed_at\":\"2026-09-30T17:10:00+08:00\"}",
             id, id, tag, tag);
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(p, risk, id, strlen(id), value, strlen(value), bx_delivery_slot_done,
                             &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    bx_producer_free(p, 5000);
    /* applied, its notification requests relayed, while the reports still wait */
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) > 0 AND count(*) = count(sent_at) FROM cases.outbox WHERE topic = "
             "'%s' AND msg_key = '%s'",
             BX_TOPIC_NOTIFY_REQUESTS, id);
    char *relayed = rows_when(sql, "t\n");
    CHECK_STR(relayed, "t\n");
    free(relayed);
    snprintf(sql, sizeof(sql), "SELECT stage FROM cases.case WHERE student_id = '%s'", id);
    char *stage = rows_of(sql);
    CHECK_STR(stage, "contact_family\n");
    free(stage);
    waiting = rows_of(REPORTS_WAITING);
    CHECK_STR(waiting, "1\n");
    free(waiting);
    char *none = rows_of("SELECT count(*), count(done_at) FROM cases.duty_run WHERE timer_key "
                         "LIKE 'duty:county_quarterly%'");
    CHECK_STR(none, "1|0\n");
    free(none);

    /* stopped mid-duty: the worker's query is cancelled, the service exits cleanly, the run is
     * rolled back and neither done nor counted as a failure */
    kill(escalate, SIGTERM);
    int status = itest_wait_exit(escalate, 60000);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (status == -1)
        itest_stop(escalate);
    waiting = rows_of(REPORTS_WAITING);
    CHECK_STR(waiting, "0\n");
    free(waiting);
    none = rows_of("SELECT count(*), count(done_at), sum(attempts) FROM cases.duty_run WHERE "
                   "timer_key LIKE 'duty:county_quarterly%'");
    CHECK_STR(none, "1|0|0\n");
    free(none);
    start_escalate();
    waiting = rows_when(REPORTS_WAITING, "1\n");
    CHECK_STR(waiting, "1\n");
    free(waiting);

    /* the lock let go: each report once, each duty run once without a failure */
    REQUIRE(bx_pg_exec(holder, "COMMIT", &err) == BX_OK);
    PQfinish(holder);
    settle();
    char *rows = untag(rows_of("SELECT kind, area, period FROM cases.upward_report ORDER BY kind, "
                               "area"));
    CHECK_STR(rows, "county_quarterly_report|990001|2026-Q3\n"
                    "school_monthly_report|TJ|2026-09\n"
                    "school_monthly_report|TP|2026-09\n");
    free(rows);
    char *runs = rows_of("SELECT count(*), count(done_at), sum(attempts), count(*) FILTER (WHERE "
                         "given_up) FROM cases.duty_run WHERE due_at <= '2026-09-30 17:30+08'");
    char *fired = rows_of("SELECT count(*) FROM cases.timer WHERE kind = 'duty' AND fired_at IS "
                          "NOT NULL");
    /* every duty fired is a run queued once and done */
    char want[80];
    snprintf(want, sizeof(want), "%ld|%ld|0|0\n", strtol(fired, NULL, 10), strtol(fired, NULL, 10));
    CHECK_STR(runs, want);
    free(runs);
    free(fired);
    char *asked = rows_of("SELECT count(*) FROM cases.outbox WHERE payload::jsonb->>'template' IN "
                          "('school_monthly_report', 'county_quarterly_report')");
    CHECK_STR(asked, "3\n");
    free(asked);
    itest_stop(escalate);
    free(clock_path);
}
