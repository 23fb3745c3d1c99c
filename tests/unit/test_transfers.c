/* Unit tests for the same child in two places of the registry (bx-escalate's transfers module,
 * issue 15 items 5 and 6): the matching rule from tables (by student number, by id number, both,
 * ambiguous and conflicting matches refused), and the ladder's inputs that carry a match (a
 * transfer confirmed naming the receiving school, a suspected case with the township's task, the
 * case closed when the child is found enrolled) and the notification about a household child. */
#include "bx_test.h"
#include "ladder.h"
#include "messages.h"
#include "transfers.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the rule ---- */

BX_TEST(in_school_statuses)
{
    static const struct {
        const char *status;
        bool in;
    } rows[] = {{"enrolled", true},
                {"returned", true},
                {"suspended", true},
                {"home_education", true},
                {"transferred_out", false},
                {"dropped_out", false},
                {"graduated", false},
                {"", false},
                {NULL, false}};
    for (size_t i = 0; i < COUNT(rows); i++)
        if (transfers_in_school(rows[i].status) != rows[i].in)
            BX_FAIL_AT("row %zu: %s in school is %d", i, rows[i].status ? rows[i].status : "NULL",
                       !rows[i].in);
}

#define IN  true
#define OUT false
BX_TEST(matching_rule_from_a_table)
{
    /* each candidate: in school, by number, by id, conflict */
    static const struct {
        const char *what;
        int n;
        transfers_candidate c[3];
        transfers_verdict verdict;
        int match;
        const char *by;
    } rows[] = {
        {"no record anywhere", 0, {{0}}, TRANSFERS_NONE, -1, NULL},
        {"by student number",
         1,
         {{"S2", "B", IN, true, false, false}},
         TRANSFERS_MATCHED,
         0,
         "student_number"},
        {"by id number",
         1,
         {{"S2", "B", IN, false, true, false}},
         TRANSFERS_MATCHED,
         0,
         "national_id"},
        {"by both", 1, {{"S2", "B", IN, true, true, false}}, TRANSFERS_MATCHED, 0, "both"},
        {"the only record left school too",
         1,
         {{"S2", "B", OUT, true, true, false}},
         TRANSFERS_NONE,
         -1,
         NULL},
        {"one left, one enrolled",
         2,
         {{"S2", "B", OUT, true, true, false}, {"S3", "C", IN, false, true, false}},
         TRANSFERS_MATCHED,
         1,
         "national_id"},
        {"enrolled at two schools: ambiguous, refused",
         2,
         {{"S2", "B", IN, true, true, false}, {"S3", "C", IN, false, true, false}},
         TRANSFERS_AMBIGUOUS,
         -1,
         NULL},
        {"number and id point at different records: ambiguous, refused",
         2,
         {{"S2", "B", IN, true, false, true}, {"S3", "C", IN, false, true, true}},
         TRANSFERS_AMBIGUOUS,
         -1,
         NULL},
        {"student number matches, id number differs: conflict, refused",
         1,
         {{"S2", "B", IN, true, false, true}},
         TRANSFERS_CONFLICT,
         -1,
         NULL},
        {"a conflicting record out of school does not count",
         2,
         {{"S2", "B", OUT, true, false, true}, {"S3", "C", IN, false, true, false}},
         TRANSFERS_MATCHED,
         1,
         "national_id"},
        {"a record in school matched by nothing is no candidate",
         1,
         {{"S2", "B", IN, false, false, false}},
         TRANSFERS_NONE,
         -1,
         NULL},
        {"three in school",
         3,
         {{"S2", "B", IN, true, true, false},
          {"S3", "C", IN, true, true, false},
          {"S4", "D", IN, false, true, false}},
         TRANSFERS_AMBIGUOUS,
         -1,
         NULL},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        transfers_decision d;
        transfers_decide(rows[i].c, rows[i].n, &d);
        if (d.verdict != rows[i].verdict || d.match != rows[i].match ||
            (rows[i].by == NULL) != (d.matched_by == NULL) ||
            (rows[i].by && strcmp(rows[i].by, d.matched_by) != 0))
            BX_FAIL_AT("%s: %s, match %d, by %s; expected %s, %d, %s", rows[i].what,
                       transfers_verdict_name(d.verdict), d.match,
                       d.matched_by ? d.matched_by : "-", transfers_verdict_name(rows[i].verdict),
                       rows[i].match, rows[i].by ? rows[i].by : "-");
    }
}

/* ---- the ladder's inputs ---- */

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
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv", src ? src : ".");
    REQUIRE(bx_calendar_load_days_csv(cal, path, &err) == BX_OK);
    return cal;
}

static const ladder_policy *policy(void)
{
    static ladder_policy p;
    static bool loaded;
    if (loaded)
        return &p;
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/ladder.policy", src ? src : ".");
    bx_error err = {0};
    if (ladder_policy_load(path, &p, &err) != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(p.enrol_task >= 0);
    loaded = true;
    return &p;
}

static ladder_input input(ladder_input_kind kind, const char *id, const char *at)
{
    ladder_input in;
    memset(&in, 0, sizeof(in));
    in.kind = kind;
    snprintf(in.event_id, sizeof(in.event_id), "%s", id);
    in.at = T(at);
    in.date = bx_time_local_date(in.at);
    in.return_date = in.first_date = in.last_date = in.streak_start = BX_DATE_NONE;
    return in;
}

static const ladder_event *event_of(const ladder_effects *fx, ladder_event_kind kind)
{
    for (int i = 0; i < fx->nevents; i++)
        if (fx->events[i].kind == kind)
            return &fx->events[i];
    return NULL;
}

static case_state st;
static ladder_effects fx;

static void step(ladder_input *in)
{
    bx_error err = {0};
    bx_status s = ladder_step(policy(), calendar(), &st, in, &st, &fx, &err);
    if (s != BX_OK)
        BX_FAIL_AT("ladder_step: %s", err.msg);
}

BX_TEST(transfer_confirmed_by_a_match_names_the_receiving_school)
{
    bx_error err = {0};
    REQUIRE(case_state_init(&st, "S1", &err) == BX_OK);
    ladder_input out = input(LADDER_IN_ACTION, "a1", "2026-10-12 16:00");
    out.action = LADDER_ACT_TRANSFER_OUT;
    out.paperwork = true;
    step(&out);
    REQUIRE(st.open);
    CHECK(event_of(&fx, LADDER_EV_TASK_CREATED) != NULL);
    /* bx-escalate itself (no actor), as the transfer check sends it */
    ladder_input done = input(LADDER_IN_ACTION, "transfer-match:1:S9", "2026-10-14 16:00");
    done.action = LADDER_ACT_TRANSFER_CONFIRMED;
    snprintf(
        done.receiving_school, sizeof(done.receiving_school),
        "school 5201211003 (城关镇第二小学), matched by student number (学籍号) in the registry");
    step(&done);
    CHECK(!st.open);
    CHECK_INT(st.ending, LADDER_END_TRANSFERRED);
    const ladder_event *closed = event_of(&fx, LADDER_EV_CLOSED);
    REQUIRE(closed != NULL);
    CHECK_CONTAINS(closed->reason, "transfer confirmed: enrolled at school 5201211003");
    CHECK_STR(closed->actor, "bx-escalate");
    const ladder_event *task = event_of(&fx, LADDER_EV_TASK_DONE);
    REQUIRE(task != NULL);
    CHECK_STR(task->task_kind, "transfer_confirmation");
    CHECK(!task->late);
    /* the paperwork's confirmation without a school keeps the old wording */
    REQUIRE(case_state_init(&st, "S2", &err) == BX_OK);
    out.event_id[0] = 'b';
    step(&out);
    ladder_input paper = input(LADDER_IN_ACTION, "b2", "2026-10-13 10:00");
    paper.action = LADDER_ACT_TRANSFER_CONFIRMED;
    step(&paper);
    REQUIRE(event_of(&fx, LADDER_EV_CLOSED) != NULL);
    CHECK_STR(event_of(&fx, LADDER_EV_CLOSED)->reason,
              "transfer confirmed by the receiving school");
}

BX_TEST(a_child_found_out_of_school_gets_the_townships_task_and_closes_when_enrolled)
{
    const ladder_policy *p = policy();
    bx_error err = {0};
    REQUIRE(case_state_init(&st, "hh-520121-7", &err) == BX_OK);
    ladder_input found = input(LADDER_IN_SUSPECTED, "finding:1", "2026-09-01 07:00");
    snprintf(found.reason, sizeof(found.reason), "疑似辍学 (四查三比对, run 1): in no school");
    snprintf(found.task_kind, sizeof(found.task_kind), "%s", p->task_rules[p->enrol_task].kind);
    step(&found);
    REQUIRE(st.open);
    CHECK_INT(st.stage, -1); /* suspected: on no stage of the ladder */
    const ladder_event *task = event_of(&fx, LADDER_EV_TASK_CREATED);
    REQUIRE(task != NULL);
    CHECK_STR(task->task_kind, "find_and_enrol");
    CHECK_STR(task->owner_role, "township_officer");
    char due[40];
    bx_time_format(task->due_at, due, sizeof(due));
    CHECK_STR(due, "2026-09-15T17:00:00+08:00"); /* 10 school days */
    CHECK_INT(fx.nnotes, 1);
    CHECK_STR(fx.notes[0].recipient_role, "township_officer");

    /* a later match finding the child enrolled at a school closes it, the task done */
    ladder_input enrolled = input(LADDER_IN_END, "finding:2", "2026-09-10 07:00");
    enrolled.ending = LADDER_END_RETURNED;
    snprintf(enrolled.task_kind, sizeof(enrolled.task_kind), "find_and_enrol");
    snprintf(enrolled.reason, sizeof(enrolled.reason), "四查三比对 (run 2): enrolled at school X");
    step(&enrolled);
    CHECK(!st.open);
    CHECK_INT(st.ending, LADDER_END_RETURNED);
    REQUIRE(event_of(&fx, LADDER_EV_TASK_DONE) != NULL);
    CHECK_STR(event_of(&fx, LADDER_EV_TASK_DONE)->task_kind, "find_and_enrol");
    CHECK_CONTAINS(event_of(&fx, LADDER_EV_CLOSED)->reason, "enrolled at school X");
}

BX_TEST(found_enrolled_leaves_a_case_a_match_did_not_open)
{
    bx_error err = {0};
    REQUIRE(case_state_init(&st, "S5", &err) == BX_OK);
    /* a case opened by absence (no find_and_enrol task) */
    ladder_input absent = input(LADDER_IN_ASSESSMENT, "r1", "2026-09-07 09:00");
    absent.streak_days = 1;
    absent.streak_start = D("2026-09-07");
    step(&absent);
    REQUIRE(st.open);
    ladder_input enrolled = input(LADDER_IN_END, "finding:3", "2026-09-10 07:00");
    enrolled.ending = LADDER_END_RETURNED;
    snprintf(enrolled.task_kind, sizeof(enrolled.task_kind), "find_and_enrol");
    snprintf(enrolled.reason, sizeof(enrolled.reason), "enrolled");
    step(&enrolled);
    CHECK(st.open);
    CHECK_INT(fx.nevents, 0);
    /* an end input "returned" without a task kind is refused as malformed */
    ladder_input bad = input(LADDER_IN_END, "finding:4", "2026-09-10 07:00");
    bad.ending = LADDER_END_RETURNED;
    case_state out;
    CHECK(ladder_step(policy(), calendar(), &st, &bad, &out, &fx, &err) == BX_EINVAL);
}

BX_TEST(a_household_childs_request_names_the_school_not_a_student)
{
    bx_error err = {0};
    REQUIRE(case_state_init(&st, "hh-520121-7", &err) == BX_OK);
    ladder_input found = input(LADDER_IN_SUSPECTED, "finding:1", "2026-09-01 07:00");
    snprintf(found.reason, sizeof(found.reason), "in no school");
    snprintf(found.task_kind, sizeof(found.task_kind), "find_and_enrol");
    step(&found);
    REQUIRE(fx.nnotes == 1);
    const messages_context ctx = {"5201211000", ""};
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(messages_notify_request(&st, &ctx, &fx.notes[0], &b) == BX_OK);
    CHECK_CONTAINS(b.data, "\"student_id\":null");
    CHECK_CONTAINS(b.data, "\"school_id\":\"5201211000\"");
    CHECK_CONTAINS(b.data, "\"case_id\":\"hh-520121-7:20260901\"");
    /* a registry student's request is as before */
    REQUIRE(case_state_init(&st, "S1", &err) == BX_OK);
    step(&found);
    bx_buf_reset(&b);
    REQUIRE(messages_notify_request(&st, &ctx, &fx.notes[0], &b) == BX_OK);
    CHECK_CONTAINS(b.data, "\"student_id\":\"S1\"");
    CHECK(strstr(b.data, "\"school_id\"") == NULL);
    CHECK(messages_household_subject("hh-520121-7"));
    CHECK(!messages_household_subject("S1"));
    bx_buf_free(&b);
}
