/* bx.analytics.cases.v1: the analysts' message of every ladder transition (opened by each
 * trigger, stages on time and late, tasks done and overdue, closed by each ending, home visits)
 * matches its schema and carries codes only: no student id, staff id or free text. */
#include "analytics.h"
#include "bx_schema_check.h"
#include "bx_test.h"
#include "ladder.h"

#include <stdlib.h>
#include <string.h>

#define KEY "unit-test-analytics-key"

static bx_date D(const char *s)
{
    bx_date d = BX_DATE_NONE;
    if (bx_date_parse(s, &d) != BX_OK)
        BX_FAIL_AT("test date %s does not parse", s);
    return d;
}

static bx_time_ms T(const char *s)
{
    bx_time_ms t = 0;
    if (bx_time_parse(s, &t) != BX_OK)
        BX_FAIL_AT("test time %s does not parse", s);
    return t;
}

static bx_calendar *calendar(void)
{
    static bx_calendar *cal;
    if (cal != NULL)
        return cal;
    cal = bx_calendar_new();
    REQUIRE(cal != NULL);
    bx_error err = {0};
    REQUIRE(bx_calendar_add_term(cal, "2026-autumn", D("2026-09-01"), D("2027-01-22"), &err) ==
            BX_OK);
    char path[1024];
    const char *src = getenv("BX_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv", src ? src : ".");
    REQUIRE(bx_calendar_load_days_csv(cal, path, &err) == BX_OK);
    return cal;
}

static const ladder_policy *policy(void)
{
    static ladder_policy p;
    static bool loaded;
    if (!loaded) {
        char path[1024];
        const char *src = getenv("BX_SOURCE_DIR");
        snprintf(path, sizeof(path), "%s/deploy/policy/ladder.policy", src ? src : ".");
        bx_error err = {0};
        REQUIRE(ladder_policy_load(path, &p, &err) == BX_OK);
        loaded = true;
    }
    return &p;
}

static bx_reg_school school = {"sch-017", "440105001", "440105", BX_STAGE_PRIMARY, NULL};
static case_state state;
static ladder_effects fx;
static int seq;
/* The messages of the last step, one a line, and how many. */
static char lines[1 << 16];
static int nmsgs;

static void start(void)
{
    bx_error err = {0};
    REQUIRE(case_state_init(&state, "stu-0001234", &err) == BX_OK);
    school.calendar = calendar();
    seq = 0;
}

/* The ids and texts no analytics message may hold. */
static void check_clean(const char *msg, const ladder_input *in)
{
    static const char *const never[] = {"stu-0001234", "staff-07",       "twp-1",
                                        "\"reason\":", "absent without", "unexcused periods on",
                                        "疑似"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (strstr(msg, never[i]) != NULL)
            BX_FAIL_AT("message holds \"%s\": %s", never[i], msg);
    if (in->event_id[0] && strstr(msg, in->event_id) != NULL)
        BX_FAIL_AT("message holds the input's id: %s", msg);
}

/* Applies in and renders the analysts' messages of the step into lines. */
static const char *step(ladder_input *in, const char *grade_band, const char *sex)
{
    static cJSON *schema;
    if (schema == NULL)
        schema = bx_schema_load_topic("bx.analytics.cases.v1");
    REQUIRE(schema != NULL);
    if (in->event_id[0] == '\0')
        snprintf(in->event_id, sizeof(in->event_id), "in-%d", ++seq);
    bx_error err = {0};
    if (ladder_step(policy(), calendar(), &state, in, &state, &fx, &err) != BX_OK)
        BX_FAIL_AT("ladder_step: %s", err.msg);
    escalate_analytics_ctx c = {KEY, "bx.analytics.cases.v1", policy(), &school, in, grade_band,
                                sex};
    size_t n = 0;
    lines[0] = '\0';
    nmsgs = 0;
    for (int i = 0; i <= fx.nevents; i++) {
        bx_buf b;
        bx_buf_init(&b, 0);
        char id[BX_PSEUDONYM_SIZE];
        if (i < fx.nevents && escalate_analytics_wanted(fx.events[i].kind))
            REQUIRE(escalate_analytics_case_event(&c, &state, &fx.events[i], &b, id) == BX_OK);
        else if (i == fx.nevents && in->kind == LADDER_IN_ACTION &&
                 in->action == LADDER_ACT_HOME_VISIT && state.open)
            REQUIRE(escalate_analytics_visit(&c, &state, &b, id) == BX_OK);
        if (b.len == 0)
            continue;
        char why[400];
        if (!bx_schema_check_text(schema, b.data, b.len, why, sizeof(why)))
            BX_FAIL_AT("%s: %s", b.data, why);
        check_clean(b.data, in);
        CHECK_CONTAINS(b.data, id);
        n += (size_t)snprintf(lines + n, sizeof(lines) - n, "%s%s", n ? "\n" : "", b.data);
        nmsgs++;
        bx_buf_free(&b);
    }
    return lines;
}

static const char *assess(const char *at, int streak, const char *from, int periods)
{
    ladder_input in = {0};
    in.kind = LADDER_IN_ASSESSMENT;
    in.at = T(at);
    in.date = bx_time_local_date(in.at);
    in.streak_days = streak;
    in.streak_start = streak > 0 ? D(from) : BX_DATE_NONE;
    in.unexcused_periods = periods;
    return step(&in, "grades_1_3", NULL);
}

static ladder_input action(ladder_action kind, const char *at)
{
    ladder_input in = {0};
    in.kind = LADDER_IN_ACTION;
    in.action = kind;
    in.at = T(at);
    in.date = bx_time_local_date(in.at);
    in.return_date = in.first_date = in.last_date = BX_DATE_NONE;
    snprintf(in.actor, sizeof(in.actor), "staff-07");
    return in;
}

/* The open task of a kind's deadline fired. */
static const char *fire(const char *kind)
{
    for (int i = 0; i < state.ntasks; i++) {
        const ladder_task *t = &state.tasks[i];
        if (t->rule >= 0 && strcmp(policy()->task_rules[t->rule].kind, kind) == 0 &&
            t->state == LADDER_TASK_OPEN) {
            ladder_input in = {0};
            in.kind = LADDER_IN_DEADLINE;
            in.at = t->due_at;
            snprintf(in.timer_key, sizeof(in.timer_key), "%s", t->key);
            snprintf(in.event_id, sizeof(in.event_id), "timer:%s", t->key);
            return step(&in, NULL, NULL);
        }
    }
    BX_FAIL_AT("no open %s task", kind);
    return "";
}

BX_TEST(cases_opened_by_a_streak_enters_the_first_stage)
{
    start();
    const char *m = assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    CHECK_INT(nmsgs, 2); /* task_created is not on the stream */
    CHECK_CONTAINS(m, "\"event\":\"opened\",\"school_id\":\"sch-017\",\"township_code\":"
                      "\"440105001\",\"county_code\":\"440105\",\"grade_band\":\"grades_1_3\","
                      "\"sex\":null,\"date\":\"2026-09-28\"");
    CHECK_CONTAINS(m, "\"trigger\":\"streak\",\"stage\":null,\"late\":false");
    CHECK_CONTAINS(m, "\"event\":\"stage_entered\"");
    CHECK_CONTAINS(m, "\"stage\":\"contact_family\",\"late\":false,\"task\":null");
    /* the subject is the risk stream's pseudonym of the student */
    char subject[BX_PSEUDONYM_SIZE], kase[BX_PSEUDONYM_SIZE];
    bx_pseudonym(KEY, "stu-0001234", subject);
    bx_pseudonym(KEY, "stu-0001234:20260928", kase);
    CHECK_CONTAINS(m, subject);
    CHECK_CONTAINS(m, kase);
}

BX_TEST(cases_tasks_done_on_time_late_and_overdue_by_role)
{
    start();
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    /* nobody phoned: overdue, and the home visit stage entered */
    const char *m = fire("contact_family");
    CHECK_CONTAINS(m, "\"event\":\"task_overdue\"");
    CHECK_CONTAINS(m, "\"late\":true,\"task\":\"contact_family\",\"owner_role\":"
                      "\"homeroom_teacher\"");
    CHECK_CONTAINS(m, "\"event\":\"stage_entered\"");
    CHECK(strstr(m, "escalated") == NULL); /* the escalation itself is not on the stream */
    ladder_input in = action(LADDER_ACT_HOME_VISIT, "2026-09-29 10:00");
    snprintf(in.visit_outcome, sizeof(in.visit_outcome), "will_return");
    snprintf(in.visit_reason, sizeof(in.visit_reason), "illness");
    m = step(&in, NULL, NULL);
    CHECK_CONTAINS(m, "\"event\":\"task_done\"");
    CHECK_CONTAINS(m, "\"task\":\"home_visit\",\"owner_role\":\"homeroom_teacher\"");
    CHECK_CONTAINS(m, "\"event\":\"home_visit\"");
    CHECK_CONTAINS(m, "\"stage\":\"home_visit\",\"late\":false,\"task\":null,\"owner_role\":null,"
                      "\"ending\":null,\"school_days_to_return\":null,\"visit_outcome\":"
                      "\"will_return\",\"visit_reason\":\"illness\"}");
    /* the missed contact ended when the home visit took its place: the visit does not do it */
    CHECK(strstr(m, "\"task\":\"contact_family\"") == NULL);
}

BX_TEST(cases_bulk_jump_enters_stages_late)
{
    start();
    const char *m = assess("2026-10-08 16:00", 4, "2026-09-28", 0);
    CHECK_INT(nmsgs, 4); /* opened and three stages */
    CHECK_CONTAINS(m, "\"stage\":\"contact_family\",\"late\":true");
    CHECK_CONTAINS(m, "\"stage\":\"home_visit\",\"late\":true");
    CHECK_CONTAINS(m, "\"stage\":\"school_report\",\"late\":true");
}

BX_TEST(cases_closed_returned_counts_school_days)
{
    start();
    assess("2026-09-29 09:00", 2, "2026-09-28", 0);
    ladder_input in = action(LADDER_ACT_RETURNED, "2026-10-09 08:00");
    in.return_date = D("2026-10-09");
    snprintf(in.signoff_staff_id, sizeof(in.signoff_staff_id), "twp-1");
    const char *m = step(&in, NULL, NULL);
    /* away 09-28, 09-29, 09-30 and 10-08 (National Day in between): 4 school days */
    CHECK_CONTAINS(m, "\"event\":\"closed\"");
    CHECK_CONTAINS(m, "\"stage\":\"home_visit\"");
    CHECK_CONTAINS(m, "\"ending\":\"returned\",\"school_days_to_return\":4,");
    CHECK_INT(escalate_analytics_school_days(calendar(), &state, &in, in.at), 4);
}

BX_TEST(cases_transfer_opens_and_closes_transferred)
{
    start();
    ladder_input in = action(LADDER_ACT_TRANSFER_OUT, "2026-10-12 10:00");
    in.paperwork = true;
    const char *m = step(&in, NULL, NULL);
    CHECK_CONTAINS(m, "\"trigger\":\"transfer\"");
    CHECK_INT(nmsgs, 1); /* the note and the task created stay off the stream */
    ladder_input ok = action(LADDER_ACT_TRANSFER_CONFIRMED, "2026-10-20 10:00");
    m = step(&ok, NULL, NULL);
    CHECK_CONTAINS(m, "\"task\":\"transfer_confirmation\",\"owner_role\":\"academic_office\"");
    CHECK_CONTAINS(m, "\"ending\":\"transferred\",\"school_days_to_return\":null");
}

BX_TEST(cases_other_triggers)
{
    start();
    assess("2026-09-28 15:00", 0, "-", 3);
    CHECK_INT(nmsgs, 0);
    CHECK_CONTAINS(assess("2026-09-28 16:00", 0, "-", 4), "\"trigger\":\"periods\"");

    start();
    ladder_input s = action(LADDER_ACT_SUSPENSION, "2026-10-12 10:00");
    s.first_date = D("2026-10-12");
    s.last_date = D("2026-10-30");
    s.approved = false;
    CHECK_CONTAINS(step(&s, NULL, NULL), "\"trigger\":\"suspension\"");

    start();
    ladder_input h = {0};
    h.kind = LADDER_IN_HOME_DELIVERY;
    h.at = T("2026-09-14 10:00");
    h.date = D("2026-09-14");
    CHECK_CONTAINS(step(&h, NULL, NULL), "\"trigger\":\"home_delivered\"");

    start();
    ladder_input q = {0};
    q.kind = LADDER_IN_SUSPECTED;
    q.at = T("2026-09-14 17:00");
    q.date = D("2026-09-01");
    snprintf(q.reason, sizeof(q.reason), "疑似辍学: not seen in the first 10 school days");
    snprintf(q.stage_name, sizeof(q.stage_name), "contact_family");
    CHECK_CONTAINS(step(&q, NULL, NULL), "\"trigger\":\"suspected\"");
}

BX_TEST(cases_graduation_ends_without_school_days)
{
    start();
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    ladder_input in = {0};
    in.kind = LADDER_IN_END;
    in.at = T("2026-10-12 10:00");
    in.date = D("2026-10-12");
    in.ending = LADDER_END_GRADUATED;
    const char *m = step(&in, "grades_7_9", "female");
    CHECK_CONTAINS(m, "\"grade_band\":\"grades_7_9\",\"sex\":\"female\"");
    CHECK_CONTAINS(m, "\"ending\":\"graduated\",\"school_days_to_return\":null");
}

BX_TEST(cases_wanted_events_and_triggers)
{
    CHECK(escalate_analytics_wanted(LADDER_EV_OPENED));
    CHECK(escalate_analytics_wanted(LADDER_EV_CLOSED));
    CHECK(!escalate_analytics_wanted(LADDER_EV_NOTE));
    CHECK(!escalate_analytics_wanted(LADDER_EV_ESCALATED));
    CHECK(!escalate_analytics_wanted(LADDER_EV_TASK_CREATED));
    CHECK_STR(escalate_analytics_trigger(NULL), "other");
    ladder_input in = {0};
    in.kind = LADDER_IN_DEADLINE;
    CHECK_STR(escalate_analytics_trigger(&in), "other");
}
