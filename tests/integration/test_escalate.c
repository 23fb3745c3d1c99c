/* bx-escalate against the real PostgreSQL and Kafka: the ladder across National Day (stages,
 * tasks with owners and deadlines, notification requests in order), on-time and late home visits,
 * return with the township's sign-off, redelivery of everything, dead letters, and a replica
 * killed while timers are due. Each case runs its own bx-escalate on its own database (migrated
 * and imported by bxctl), topics and group, with a driven clock (support/bx_escalate_itest.c). */
#include "bx_escalate_itest.h"
#include "bx_itest.h"
#include "bx_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const escalate_itest_conf conf = {
    .name = "escsvc",
    .tag_letter = 'E',
    .school = "ES1,升级测试小学,990001100,primary,it-2026",
    .staff = "EST1,赵老师,homeroom_teacher,ES1,,,",
    .class_ = "EC1,ES1,3,三年级3班,EST1",
    .place = "ES1,EC1",
    .settle_s = 30,
};

/* Remembered messages, for redelivery. */
static struct {
    char topic[96], key[40], *value;
} sent_log[64];
static int nsent;

static void produce_logged(escalate_itest *s, const char *topic, const char *key, char *value)
{
    escalate_itest_produce(s, topic, key, value);
    REQUIRE(nsent < 64);
    snprintf(sent_log[nsent].topic, sizeof(sent_log[nsent].topic), "%s", topic);
    snprintf(sent_log[nsent].key, sizeof(sent_log[nsent].key), "%s", key);
    sent_log[nsent++].value = value;
}

/* ---- messages ---- */

/* An assessment of student produced with key (NULL: the student id, so its own partition). */
static void assess_keyed(escalate_itest *s, int student, const char *local_time, int streak,
                         const char *start, const char *key);

static void assess(escalate_itest *s, int student, const char *local_time, int streak,
                   const char *start)
{
    assess_keyed(s, student, local_time, streak, start, NULL);
}

static void assess_keyed(escalate_itest *s, int student, const char *local_time, int streak,
                         const char *start, const char *key)
{
    char id[40], *v = NULL, ss[20];
    escalate_itest_student_id(student, id);
    escalate_itest_at(local_time);
    escalate_itest_settle(s); /* timers due by then fire first, as they would in a day's time */
    if (streak > 0)
        snprintf(ss, sizeof(ss), "\"%s\"", start);
    else
        snprintf(ss, sizeof(ss), "null");
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(
        bx_buf_printf(&b,
                      "{\"schema\":\"bx.risk.v1\",\"event_id\":\"risk:%s:%.10s\","
                      "\"student_id\":\"%s\",\"school_id\":\"ES1\",\"class_id\":\"EC1\","
                      "\"date\":\"%.10s\",\"streak_days\":%d,\"streak_start\":%s,"
                      "\"unexcused_periods_today\":0,\"attendance_rate_20d\":0.8,"
                      "\"attendance_rate_term\":0.9,\"chronic_absence\":false,\"score\":%d,"
                      "\"tier\":\"medium\",\"previous_tier\":null,\"trigger\":"
                      "\"streak_changed\",\"factors\":[],\"assessed_at\":\"%.10sT%s:00+08:00\"}",
                      id, local_time, id, local_time, streak, ss, 10 * streak, local_time,
                      local_time + 11) == BX_OK);
    v = bx_buf_steal(&b);
    produce_logged(s, s->risk, key ? key : id, v);
}

/* An action with its details object. */
static void act(escalate_itest *s, int student, const char *local_time, const char *action,
                const char *details)
{
    char id[40];
    escalate_itest_student_id(student, id);
    escalate_itest_at(local_time);
    escalate_itest_settle(s);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_printf(&b,
                          "{\"schema\":\"bx.actions.v1\",\"event_id\":\"act:%s:%s:%.10s%.2s\","
                          "\"student_id\":\"%s\",\"school_id\":\"ES1\",\"action\":\"%s\","
                          "\"date\":\"%.10s\",\"staff_id\":\"EST1\",\"recorded_at\":"
                          "\"%.10sT%s:00+08:00\",\"recorded_by\":\"itest\",\"details\":%s}",
                          id, action, local_time, local_time + 11, id, action, local_time,
                          local_time, local_time + 11, details) == BX_OK);
    produce_logged(s, s->actions, id, bx_buf_steal(&b));
}

static void forget_log(void)
{
    for (int i = 0; i < nsent; i++)
        free(sent_log[i].value);
    nsent = 0;
}

/* The templates of the case's notification requests on the topic since mark, in order, without
 * task_assigned (one per task). */
static char *templates_of(itest_mark *m, const char *case_needle, int want)
{
    bx_buf got;
    bx_buf_init(&got, 0);
    itest_topic_collect(m, case_needle, want, 20000, &got);
    bx_buf out;
    bx_buf_init(&out, 0);
    REQUIRE(bx_buf_puts(&out, "") == BX_OK);
    for (char *line = got.data; line && *line;) {
        char *nl = strchr(line, '\n');
        const char *t = strstr(line, "\"template\":\"");
        REQUIRE(t != NULL);
        t += 12;
        size_t n = strcspn(t, "\"");
        if (strncmp(t, "task_assigned", n) != 0)
            REQUIRE(bx_buf_printf(&out, "%.*s\n", (int)n, t) == BX_OK);
        line = nl ? nl + 1 : NULL;
    }
    bx_buf_free(&got);
    return bx_buf_steal(&out);
}

#define CASE_EVENTS                                                                                \
    "SELECT e.kind, coalesce(e.stage, '-'), coalesce(t.kind, '-'), e.late FROM cases.event e "     \
    "JOIN cases.case c ON c.id = e.case_id LEFT JOIN cases.task t ON t.task_key = "                \
    "e.payload->'task'->>'task_id' WHERE c.student_id = $1 ORDER BY e.id"

/* ---- the scenario, across National Day ---- */

BX_TEST(scenario_across_national_day)
{
    escalate_itest s;
    escalate_itest_start(&s, &conf, 1, "2026-09-28 08:00", NULL);
    char id[40], needle[64];
    escalate_itest_student_id(1, id);
    snprintf(needle, sizeof(needle), "\"case_id\":\"%s:20260928\"", id);
    itest_mark *m = itest_topic_mark(BX_TOPIC_NOTIFY_REQUESTS);
    assess(&s, 1, "2026-09-28 09:00", 1, "2026-09-28");
    escalate_itest_settle(&s);
    act(&s, 1, "2026-09-28 11:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    escalate_itest_settle(&s);
    assess(&s, 1, "2026-09-29 09:00", 2, "2026-09-28");
    escalate_itest_settle(&s);
    assess(&s, 1, "2026-09-30 09:00", 3, "2026-09-28");
    escalate_itest_settle(&s);
    act(&s, 1, "2026-09-30 15:00", "home_visit",
        "{\"outcome\":\"will_return\",\"reason\":\"family\"}");
    escalate_itest_settle(&s);
    assess(&s, 1, "2026-10-08 09:00", 4, "2026-09-28"); /* report_to_school missed on 09-30 */
    escalate_itest_settle(&s);
    act(&s, 1, "2026-10-08 10:00", "letter_delivered", "{\"letter\":\"persuasion_letter\"}");
    escalate_itest_settle(&s);
    assess(&s, 1, "2026-10-09 09:00", 5, "2026-09-28");
    escalate_itest_settle(&s);
    assess(&s, 1, "2026-10-10 09:00", 6, "2026-09-28"); /* the make-up Saturday */
    escalate_itest_settle(&s);

    char *stages =
        escalate_itest_rows("SELECT e.stage FROM cases.event e JOIN cases.case c ON c.id = "
                            "e.case_id WHERE c.student_id = $1 AND e.kind = 'stage_entered' "
                            "ORDER BY e.id",
                            id);
    CHECK_STR(stages, "contact_family\nhome_visit\nschool_report\nacademic_office\n"
                      "dropout_roster\n");
    free(stages);
    char *tasks =
        escalate_itest_rows("SELECT t.kind, t.owner_role, coalesce(t.owner_staff_id, '-'), "
                            "to_char(t.due_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD HH24:MI'), "
                            "t.done_at IS NOT NULL, t.overdue_at IS NOT NULL FROM cases.task t "
                            "JOIN cases.case c ON c.id = t.case_id WHERE c.student_id = $1 "
                            "ORDER BY t.id",
                            id);
    CHECK_STR(tasks, "contact_family|homeroom_teacher|EST1|09-28 17:00|t|f\n"
                     "home_visit|homeroom_teacher|EST1|09-30 17:00|t|f\n"
                     "report_to_school|homeroom_teacher|EST1|09-30 17:00|f|t\n"
                     "persuasion_letter|principal|-|10-08 17:00|t|f\n"
                     "report_academic_office|homeroom_teacher|EST1|10-09 17:00|f|t\n"
                     "dropout_roster_entry|homeroom_teacher|EST1|10-12 17:00|f|f\n"
                     "county_report|principal|-|10-13 17:00|f|f\n"
                     "persuasion_record|homeroom_teacher|EST1|11-10 17:00|f|f\n");
    free(tasks);
    char *open = escalate_itest_rows(
        "SELECT stage, closed_at IS NULL FROM cases.case WHERE student_id = $1", id);
    CHECK_STR(open, "dropout_roster|t\n");
    free(open);
    /* notification requests, in order: 8 task_assigned and 6 others */
    char *templates = templates_of(m, needle, 14);
    CHECK_STR(templates, "absence_same_day\nschool_report\ntask_overdue\n"
                         "academic_office_report\ntask_overdue\ndropout_reported\n");
    free(templates);
    itest_mark_free(m);
    escalate_itest_stop(&s);
    forget_log();
}

/* ---- home visits on time and late ---- */

BX_TEST(late_home_visit_escalates)
{
    escalate_itest s;
    escalate_itest_start(&s, &conf, 1, "2026-09-28 08:00", NULL);
    char id[40];
    escalate_itest_student_id(1, id);
    assess(&s, 1, "2026-09-28 09:00", 1, "2026-09-28");
    /* nobody phoned: the missed contact sends the teachers out, due 09-29 17:00; missed too */
    escalate_itest_at("2026-09-30 09:00");
    escalate_itest_settle(&s);
    act(&s, 1, "2026-09-30 10:00", "home_visit", "{\"outcome\":\"refused\",\"reason\":null}");
    escalate_itest_settle(&s);
    char *visit =
        escalate_itest_rows("SELECT t.done_at IS NOT NULL, t.overdue_at IS NOT NULL, t.done_by "
                            "FROM cases.task t JOIN cases.case c ON c.id = t.case_id WHERE "
                            "c.student_id = $1 AND t.kind = 'home_visit'",
                            id);
    CHECK_STR(visit, "t|t|EST1\n");
    free(visit);
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
                  "WHERE c.student_id = $1 AND e.kind = 'escalated'",
                  id),
              2);
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
                  "WHERE c.student_id = $1 AND e.kind = 'task_done' AND e.late",
                  id),
              1); /* the visit only: the missed contact ended when the home visit took its place */
    char *contact =
        escalate_itest_rows("SELECT t.outcome, t.overdue_at IS NOT NULL FROM cases.task t JOIN "
                            "cases.case c ON c.id = t.case_id WHERE c.student_id = $1 AND t.kind "
                            "= 'contact_family'",
                            id);
    CHECK_STR(contact, "cancelled|t\n");
    free(contact);
    escalate_itest_stop(&s);
    forget_log();
}

/* ---- return with the township's sign-off ---- */

BX_TEST(return_with_signoff_closes_the_case)
{
    escalate_itest s;
    escalate_itest_start(&s, &conf, 1, "2026-09-28 08:00", NULL);
    char id[40];
    escalate_itest_student_id(1, id);
    assess(&s, 1, "2026-09-28 09:00", 1, "2026-09-28");
    assess(&s, 1, "2026-09-29 09:00", 2, "2026-09-28");
    act(&s, 1, "2026-09-30 09:00", "returned",
        "{\"return_date\":\"2026-09-30\",\"township_signoff_staff_id\":\"TWN1\"}");
    escalate_itest_settle(&s);
    char *c = escalate_itest_rows(
        "SELECT ending, closed_at IS NOT NULL FROM cases.case WHERE student_id = $1", id);
    CHECK_STR(c, "returned|t\n");
    free(c);
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
                  "WHERE c.student_id = $1 AND e.kind = 'closed'",
                  id),
              1);
    escalate_itest_stop(&s);
    forget_log();
}

/* ---- redelivery ---- */

#define SNAPSHOT                                                                                   \
    "SELECT (SELECT string_agg(event_id || kind, ',' ORDER BY id) FROM cases.event) || '/' || "    \
    "(SELECT string_agg(task_key || coalesce(done_at::text, '') || coalesce(overdue_at::text, "    \
    "''), ',' ORDER BY id) FROM cases.task) || '/' || (SELECT string_agg(event_id, ',' ORDER BY "  \
    "id) FROM cases.outbox) || '/' || (SELECT string_agg(timer_key, ',' ORDER BY id) FROM "        \
    "cases.timer) || '/' || (SELECT count(*) FROM cases.case)"

BX_TEST(redelivery_changes_nothing)
{
    escalate_itest s;
    escalate_itest_start(&s, &conf, 1, "2026-09-28 08:00", NULL);
    assess(&s, 1, "2026-09-28 09:00", 1, "2026-09-28");
    act(&s, 1, "2026-09-28 11:00", "contact_made", "{\"channel\":\"phone\",\"reached\":true}");
    assess(&s, 1, "2026-09-29 09:00", 2, "2026-09-28");
    assess(&s, 1, "2026-09-30 09:00", 3, "2026-09-28");
    act(&s, 1, "2026-10-08 09:00", "home_visit", "{\"outcome\":\"other\",\"reason\":\"other\"}");
    /* before 10:00: the day's roll-call check is scheduled by a tick and could fall due between
     * the two snapshots */
    act(&s, 1, "2026-10-08 09:30", "returned",
        "{\"return_date\":\"2026-10-08\",\"township_signoff_staff_id\":\"TWN1\"}");
    escalate_itest_settle(&s);
    char *before = escalate_itest_rows(SNAPSHOT, NULL);
    int n = nsent;
    for (int i = 0; i < n; i++)
        escalate_itest_produce(&s, sent_log[i].topic, sent_log[i].key, sent_log[i].value);
    escalate_itest_settle(&s);
    char *after = escalate_itest_rows(SNAPSHOT, NULL);
    CHECK_STR(after, before);
    free(before);
    free(after);
    escalate_itest_stop(&s);
    forget_log();
}

/* ---- dead letters ---- */

BX_TEST(malformed_message_goes_to_the_dlq)
{
    escalate_itest s;
    escalate_itest_start(&s, &conf, 1, "2026-09-28 08:00", NULL);
    itest_mark *m = itest_topic_mark(BX_TOPIC_DLQ);
    escalate_itest_produce(&s, s.risk, "x", "{not json");
    escalate_itest_produce(&s, s.actions, "x", "{\"schema\":\"bx.actions.v1\",\"event_id\":\"a\"}");
    escalate_itest_settle(&s);
    bx_buf got;
    bx_buf_init(&got, 0);
    char needle[160];
    snprintf(needle, sizeof(needle), "dlq:bx-escalate:bx.itest.%s.", conf.name);
    int found = 0;
    for (int i = 0; i < 2; i++) {
        found = itest_topic_collect(m, needle, 2, 20000, &got);
        if (strstr(got.data ? got.data : "", s.risk) && strstr(got.data, s.actions))
            break;
    }
    CHECK(found >= 2);
    CHECK_CONTAINS(got.data, "\"source\":\"bx-escalate\"");
    CHECK_CONTAINS(got.data, "\"reason\":\"malformed\"");
    CHECK_CONTAINS(got.data, "\"reason\":\"invalid_value\"");
    CHECK_INT(itest_metric(s.port, "bx_escalate_dlq_total"), 2);
    bx_buf_free(&got);
    itest_mark_free(m);
    escalate_itest_stop(&s);
}

/* ---- a poisoned message (issue 14, defect 10) ---- */

/* An input whose case state the policy cannot read is retried a bounded number of times, not
 * forever: then it goes to bx.dlq.v1 with its reason, its case is flagged needs_attention (and
 * listed by bxctl case list --attention), and the good inputs before and after it on the same
 * partition are applied. */
/* The first dead letter of bx-escalate's that names needle, into out. bx.dlq.v1 is shared: the
 * bx-notify of a test running beside this one also reads the shared requests topic and may
 * dead-letter this student's notification request first. */
static bool collect_from_escalate(itest_mark *m, const char *needle, int timeout_ms, bx_buf *out)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left =
            timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return false;
        bx_buf one;
        bx_buf_init(&one, 0);
        bool mine = itest_topic_collect(m, needle, 1, (int)left, &one) == 1 &&
                    strstr(one.data, "\"source\":\"bx-escalate\"") != NULL;
        if (mine)
            REQUIRE(bx_buf_puts(out, one.data) == BX_OK);
        bool none = one.len == 0;
        bx_buf_free(&one);
        if (mine || none)
            return mine;
    }
}

BX_TEST(a_poisoned_message_is_dead_lettered_its_case_flagged_and_the_partition_moves_on)
{
    escalate_itest s;
    escalate_itest_start(&s, &conf, 3, "2026-09-28 08:00", "BX_ESCALATE_MAX_ATTEMPTS=3");
    char id1[40], id2[40], id3[40];
    escalate_itest_student_id(1, id1);
    escalate_itest_student_id(2, id2);
    escalate_itest_student_id(3, id3);
    assess(&s, 2, "2026-09-28 08:30", 1, "2026-09-28");
    escalate_itest_settle(&s);
    CHECK_INT(escalate_itest_count("SELECT count(*) FROM cases.case WHERE student_id = $1", id2),
              1);
    char poison[200];
    snprintf(poison, sizeof(poison),
             "UPDATE cases.case SET state = '\"unreadable\"'::jsonb WHERE student_id = '%s'", id2);
    itest_sql_exec(escalate_itest_db_url(), poison);
    itest_mark *m = itest_topic_mark(BX_TOPIC_DLQ);
    /* one key: the three on one partition, the poisoned one between the good ones */
    assess_keyed(&s, 1, "2026-09-29 08:30", 1, "2026-09-29", "poison");
    assess_keyed(&s, 2, "2026-09-29 08:31", 2, "2026-09-28", "poison");
    assess_keyed(&s, 3, "2026-09-29 08:32", 1, "2026-09-29", "poison");
    escalate_itest_settle(&s);
    CHECK_INT(escalate_itest_count("SELECT count(*) FROM cases.case WHERE student_id = $1", id1),
              1);
    CHECK_INT(escalate_itest_count("SELECT count(*) FROM cases.case WHERE student_id = $1", id3),
              1);
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.needs_attention a JOIN cases.case c ON c.id = "
                  "a.case_id WHERE c.student_id = $1 AND a.reason LIKE '%given up after 3 "
                  "attempts%' AND a.dlq_event_id LIKE 'dlq:bx-escalate:%'",
                  id2),
              1);
    /* its due deadline cannot fire for good either: cancelled, the same case flagged */
    CHECK_INT(
        escalate_itest_count("SELECT count(DISTINCT case_id) FROM cases.needs_attention", NULL), 1);
    CHECK_INT(
        escalate_itest_count("SELECT count(*) FROM cases.needs_attention WHERE dlq_event_id LIKE "
                             "'dlq:%'",
                             NULL),
        1);
    CHECK(escalate_itest_count("SELECT count(*) FROM cases.needs_attention a JOIN cases.timer t ON "
                               "'timer:' || t.timer_key = a.dlq_event_id WHERE t.cancelled",
                               NULL) >= 1);
    CHECK(itest_metric(s.port, "bx_escalate_needs_attention_total") >= 2);
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK(collect_from_escalate(m, id2, 20000, &got));
    CHECK_CONTAINS(got.data, "\"reason\":\"other\"");
    CHECK_CONTAINS(got.data, "given up after 3 attempts");
    bx_buf_free(&got);
    itest_mark_free(m);
    /* bxctl case list --attention lists the flagged case with its reason, and only it */
    char env_url[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", escalate_itest_db_url());
    const char *env[] = {env_url, NULL};
    const char *argv[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "case", "list", "--attention", NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    CHECK_INT(itest_run(argv, env, &out), 0);
    CHECK_CONTAINS(out.data, id2);
    CHECK_CONTAINS(out.data, "needs attention: given up after 3 attempts");
    CHECK_CONTAINS(out.data, "1 case needing attention");
    CHECK(strstr(out.data, id1) == NULL);
    bx_buf_free(&out);
    forget_log();
    escalate_itest_stop(&s);
}

/* ---- a replica killed while timers are due ---- */

BX_TEST(killed_replica_loses_no_timer_fires_none_twice)
{
    enum { STUDENTS = 30 };
    escalate_itest s;
    escalate_itest_start(&s, &conf, STUDENTS, "2026-09-28 08:00", NULL);
    for (int i = 1; i <= STUDENTS; i++)
        assess(&s, i, "2026-09-28 09:00", 1, "2026-09-28");
    escalate_itest_settle(&s);
    itest_stop(s.pid);
    s.base = s.produced;
    /* every same-day contact is due; a replica starts firing them and is killed */
    escalate_itest_at("2026-09-29 08:00");
    escalate_itest_run(&s, NULL);
    usleep(30 * 1000);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    /* another takes over once the killed one's leases end */
    escalate_itest_at("2026-09-29 08:01");
    escalate_itest_run(&s, NULL);
    escalate_itest_settle(&s);
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.timer WHERE timer_key LIKE '%:contact_family:%' "
                  "AND fired_at IS NOT NULL",
                  NULL),
              STUDENTS);
    CHECK_INT(
        escalate_itest_count("SELECT count(*) FROM cases.event WHERE kind = 'task_overdue'", NULL),
        STUDENTS);
    CHECK_INT(
        escalate_itest_count("SELECT count(*) FROM cases.task WHERE kind = 'home_visit'", NULL),
        STUDENTS);
    /* the case events' copies only: the analysts' case stream has its own task_overdue */
    CHECK_INT(
        escalate_itest_count("SELECT count(*) FROM cases.outbox WHERE payload LIKE "
                             "'%\"event\":\"task_overdue\"%' AND topic NOT LIKE '%analytics%'",
                             NULL),
        STUDENTS);
    escalate_itest_stop(&s);
    forget_log();
}

/* ---- a burst of inputs applied together ---- */

/* An assessment as assess_keyed writes it (caller frees). */
static char *risk_json(const char *id, const char *local_time, int streak, const char *start)
{
    char ss[20];
    if (streak > 0)
        snprintf(ss, sizeof(ss), "\"%s\"", start);
    else
        snprintf(ss, sizeof(ss), "null");
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(
        bx_buf_printf(&b,
                      "{\"schema\":\"bx.risk.v1\",\"event_id\":\"risk:%s:%.10s\","
                      "\"student_id\":\"%s\",\"school_id\":\"ES1\",\"class_id\":\"EC1\","
                      "\"date\":\"%.10s\",\"streak_days\":%d,\"streak_start\":%s,"
                      "\"unexcused_periods_today\":0,\"attendance_rate_20d\":0.8,"
                      "\"attendance_rate_term\":0.9,\"chronic_absence\":false,\"score\":%d,"
                      "\"tier\":\"medium\",\"previous_tier\":null,\"trigger\":"
                      "\"streak_changed\",\"factors\":[],\"assessed_at\":\"%.10sT%s:00+08:00\"}",
                      id, local_time, id, local_time, streak, ss, 10 * streak, local_time,
                      local_time + 11) == BX_OK);
    return bx_buf_steal(&b);
}

/* What a student's inputs made, without ids: the events, tasks, timers and outbox messages in
 * order and the case's stage (caller frees). */
static char *case_signature(const char *student)
{
    return escalate_itest_rows(
        "SELECT concat_ws(' | ', "
        "(SELECT string_agg(e.kind || '/' || coalesce(e.stage, '') || '/' || e.late::text, ',' "
        "  ORDER BY e.id) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
        "  WHERE c.student_id = $1), "
        "(SELECT string_agg(t.kind || '/' || t.stage || '/' || t.owner_role || '/' || "
        "  t.due_at::text || '/' || (t.overdue_at IS NOT NULL)::text, ',' ORDER BY t.id) "
        "  FROM cases.task t JOIN cases.case c ON c.id = t.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(replace(m.timer_key, $1, '') || '@' || "
        "  m.due_at::text || '/' || (m.fired_at IS NOT NULL)::text, ',' ORDER BY m.id) "
        "  FROM cases.timer m JOIN cases.case c ON c.id = m.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(o.topic || ':' || coalesce(o.payload::jsonb->>'template', "
        "  o.payload::jsonb->>'kind', ''), ',' ORDER BY o.id) FROM cases.outbox o "
        "  WHERE o.msg_key = $1), "
        "(SELECT c.stage || '/' || (c.closed_at IS NULL)::text FROM cases.case c "
        "  WHERE c.student_id = $1 ORDER BY c.id DESC LIMIT 1))",
        student);
}

/* A burst of inputs waiting when bx-escalate starts is applied in polls of one transaction each
 * (bx_escalate_input_polls_total), and leaves the same cases, events, tasks, timers and outbox
 * messages as the same burst for other students applied one by one, each in its own transaction
 * (BX_ESCALATE_INPUT_BATCH=1): two
 * inputs of one student in one poll, a malformed message and an unknown student among them
 * (dead-lettered alone, the inputs around them applied). */
BX_TEST(a_burst_of_inputs_applied_together_as_one_by_one)
{
    enum { PER_RUN = 6 };
    escalate_itest s;
    escalate_itest_start(&s, &conf, 2 * PER_RUN, "2026-09-28 08:00", NULL);
    escalate_itest_settle(&s);
    for (int run = 0; run < 2; run++) {
        itest_stop(s.pid);
        s.base = s.produced;
        escalate_itest_at("2026-09-29 09:00");
        for (int k = 1; k <= PER_RUN; k++) {
            char id[40];
            escalate_itest_student_id(run * PER_RUN + k, id);
            /* one key: the burst on one partition, in this order */
            escalate_itest_produce_owned(&s, s.risk, "burst",
                                         risk_json(id, "2026-09-28 08:30", 1, "2026-09-28"));
            if (k == 2)
                escalate_itest_produce(&s, s.risk, "burst", "{not json");
            if (k == 4) {
                char unknown[40];
                escalate_itest_student_id(90 + run, unknown);
                escalate_itest_produce_owned(
                    &s, s.risk, "burst", risk_json(unknown, "2026-09-28 08:30", 1, "2026-09-28"));
            }
        }
        for (int k = 1; k <= 3; k++) {
            char id[40];
            escalate_itest_student_id(run * PER_RUN + k, id);
            escalate_itest_produce_owned(&s, s.risk, "burst",
                                         risk_json(id, "2026-09-29 08:30", 2, "2026-09-28"));
        }
        escalate_itest_run(&s, run == 0 ? "BX_ESCALATE_INPUT_BATCH=1" : NULL);
        escalate_itest_settle(&s);
        CHECK_INT(itest_metric(s.port, "bx_escalate_dlq_total"), 2);
        CHECK_INT(itest_metric(s.port, "bx_escalate_inputs_total"), PER_RUN + 3);
        if (run == 0)
            CHECK_INT(itest_metric(s.port, "bx_escalate_input_polls_total"), 0);
        else
            CHECK(itest_metric(s.port, "bx_escalate_input_polls_total") >= 1);
    }
    for (int k = 1; k <= PER_RUN; k++) {
        char one[40], together[40];
        escalate_itest_student_id(k, one);
        escalate_itest_student_id(PER_RUN + k, together);
        char *a = case_signature(one), *b = case_signature(together);
        CHECK(strlen(a) > 20);
        if (strcmp(a, b) != 0)
            fprintf(stderr, "one by one: %s\ntogether:   %s\n", a, b);
        CHECK_STR(b, a);
        free(a);
        free(b);
    }
    escalate_itest_stop(&s);
}
