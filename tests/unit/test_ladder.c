/* Unit tests for bx-escalate's ladder: the default policy from the seeds, the scenario of the issue
 * across National Day, leave, on-time and late home visits, return with the township's sign-off,
 * bulk jumps, transfers without papers, monthly persuasion records, redelivery, the alternate
 * ladders and the loader's errors. */
#include "ladder.h"
#include "bx_test.h"
#include "duties.h"
#include "state_json.h"

#include <stdint.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bx_date D(const char *s)
{
    bx_date d = BX_DATE_NONE;
    if (bx_date_parse(s, &d) != BX_OK)
        BX_FAIL_AT("test date %s does not parse", s);
    return d;
}

/* "2026-09-28 09:00" in Shanghai. */
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
    if (bx_calendar_load_days_csv(cal, path, &err) != BX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        REQUIRE(!"holiday list loads");
    }
    return cal;
}

static const ladder_policy *load(const char *rel)
{
    static ladder_policy p[4];
    static int n;
    REQUIRE(n < 4);
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/%s", src ? src : ".", rel);
    bx_error err = {0};
    if (ladder_policy_load(path, &p[n], &err) != BX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        REQUIRE(!"policy loads");
    }
    return &p[n++];
}

static const ladder_policy *policy(void)
{
    static const ladder_policy *p;
    if (p == NULL)
        p = load("ladder.policy");
    return p;
}

/* ---- a driver: applies inputs, renders the effects as lines, checks redelivery ---- */

static case_state state;
static ladder_effects fx;
static char trace_buf[16384];
static int input_seq;
static const ladder_policy *active;

static void start(const ladder_policy *p)
{
    bx_error err = {0};
    REQUIRE(case_state_init(&state, "stu-0001", &err) == BX_OK);
    active = p;
    input_seq = 0;
}

static void fmt_time(bx_time_ms t, char out[32])
{
    bx_time_format(t, out, 32);
    out[16] = '\0'; /* "2026-09-28T17:00" */
}

/* One line per effect: "<event>[!] <stage> [<task kind> <owner> <due>]" for events ('!' when
 * late), "notify <role> <channel> <template>" for notifications. Timers are checked apart. */
static const char *trace(void)
{
    size_t n = 0;
    trace_buf[0] = '\0';
    for (int i = 0; i < fx.nevents; i++) {
        const ladder_event *e = &fx.events[i];
        char due[32] = "";
        if (e->task_kind != NULL)
            fmt_time(e->due_at, due);
        n += (size_t)snprintf(trace_buf + n, sizeof(trace_buf) - n, "%s%s%s %s", n ? "\n" : "",
                              ladder_event_name(e->kind), e->late ? "!" : "",
                              e->stage ? e->stage : "-");
        if (e->task_kind != NULL && e->kind == LADDER_EV_TASK_CREATED)
            n += (size_t)snprintf(trace_buf + n, sizeof(trace_buf) - n, " %s %s %s", e->task_kind,
                                  e->owner_role, due);
        else if (e->task_kind != NULL)
            n += (size_t)snprintf(trace_buf + n, sizeof(trace_buf) - n, " %s", e->task_kind);
        if (e->kind == LADDER_EV_CLOSED)
            n += (size_t)snprintf(trace_buf + n, sizeof(trace_buf) - n, " %s",
                                  ladder_ending_name(e->ending));
    }
    for (int i = 0; i < fx.nnotes; i++) {
        const ladder_notification *m = &fx.notes[i];
        if (strcmp(m->template_name, "task_assigned") == 0)
            continue; /* one per task_created: checked by its own test */
        n += (size_t)snprintf(trace_buf + n, sizeof(trace_buf) - n, "%snotify %s %s %s",
                              n ? "\n" : "", m->recipient_role, m->channel, m->template_name);
    }
    return trace_buf;
}

/* Applies in, then applies it again and checks the second time changes nothing. */
static const char *apply(ladder_input *in)
{
    bx_error err = {0};
    if (in->event_id[0] == '\0')
        snprintf(in->event_id, sizeof(in->event_id), "in-%d", ++input_seq);
    bx_status s = ladder_step(active, calendar(), &state, in, &state, &fx, &err);
    if (s != BX_OK)
        BX_FAIL_AT("ladder_step: %s", err.msg);
    const char *t = trace();
    static case_state before;
    static ladder_effects again;
    before = state;
    s = ladder_step(active, calendar(), &state, in, &state, &again, &err);
    if (s != BX_OK || again.nevents != 0 || again.ntimers != 0 || again.nnotes != 0 ||
        memcmp(&before, &state, sizeof(state)) != 0)
        BX_FAIL_AT("redelivery of %s changed something", in->event_id);
    return t;
}

static const char *assess(const char *at, int streak, const char *start, int periods)
{
    ladder_input in = {0};
    in.kind = LADDER_IN_ASSESSMENT;
    in.at = T(at);
    in.date = bx_time_local_date(in.at);
    in.streak_days = streak;
    in.streak_start = streak > 0 ? D(start) : BX_DATE_NONE;
    in.unexcused_periods = periods;
    return apply(&in);
}

static ladder_input action(ladder_action kind, const char *at)
{
    ladder_input in = {0};
    in.kind = LADDER_IN_ACTION;
    in.action = kind;
    in.at = T(at);
    in.date = bx_time_local_date(in.at);
    in.return_date = BX_DATE_NONE;
    in.first_date = in.last_date = BX_DATE_NONE;
    snprintf(in.actor, sizeof(in.actor), "staff-07");
    return in;
}

static const char *act(ladder_action kind, const char *at)
{
    ladder_input in = action(kind, at);
    return apply(&in);
}

static const char *letter(const char *which, const char *at)
{
    ladder_input in = action(LADDER_ACT_LETTER_DELIVERED, at);
    snprintf(in.letter, sizeof(in.letter), "%s", which);
    return apply(&in);
}

/* The open task of a kind, or NULL. */
static const ladder_task *task_of(const char *kind)
{
    for (int i = 0; i < state.ntasks; i++) {
        const ladder_task *t = &state.tasks[i];
        if (t->rule >= 0 && strcmp(active->task_rules[t->rule].kind, kind) == 0 &&
            (t->state == LADDER_TASK_OPEN || t->state == LADDER_TASK_OVERDUE))
            return t;
    }
    return NULL;
}

/* Fires the timer of the live task of a kind at its due time. */
static const char *fire(const char *kind)
{
    const ladder_task *t = task_of(kind);
    if (t == NULL) {
        BX_FAIL_AT("no live %s task to fire", kind);
        return "";
    }
    ladder_input in = {0};
    in.kind = LADDER_IN_DEADLINE;
    in.at = t->due_at;
    snprintf(in.timer_key, sizeof(in.timer_key), "%s", t->key);
    snprintf(in.event_id, sizeof(in.event_id), "timer:%s", t->key);
    return apply(&in);
}

static const char *fire_key(const char *key, const char *at)
{
    ladder_input in = {0};
    in.kind = LADDER_IN_DEADLINE;
    in.at = T(at);
    snprintf(in.timer_key, sizeof(in.timer_key), "%s", key);
    snprintf(in.event_id, sizeof(in.event_id), "timer:%s", key);
    return apply(&in);
}

/* ---- the default policy ---- */

BX_TEST(default_policy_encodes_the_seeds)
{
    const ladder_policy *p = policy();
    CHECK_STR(p->name, "default");
    CHECK_INT(p->deadline_minute, 17 * 60);
    REQUIRE(p->nstages == LADDER_STAGES_MAX);
    static const struct {
        int streak;
        const char *first_task, *owner;
    } rows[] = {{1, "contact_family", "homeroom_teacher"},
                {2, "home_visit", "homeroom_teacher"},
                {3, "report_to_school", "homeroom_teacher"},
                {5, "report_academic_office", "homeroom_teacher"},
                {6, "dropout_roster_entry", "homeroom_teacher"},
                {10, "dropout_report_form", "homeroom_teacher"},
                {0, "deadline_notice", "township_officer"},
                {0, "legal_referral", "county_officer"}};
    for (int i = 0; i < p->nstages; i++) {
        const ladder_stage_rule *s = &p->stages[i];
        CHECK_STR(s->name, ladder_stage_names[i]);
        CHECK_INT(s->open_streak, rows[i].streak);
        REQUIRE(s->ntasks >= 1);
        CHECK_STR(p->task_rules[s->tasks[0]].kind, rows[i].first_task);
        CHECK_STR(p->task_rules[s->tasks[0]].owner_role, rows[i].owner);
    }
    CHECK_INT(p->stages[0].open_periods, 4);
    CHECK_STR(p->stages[6].open_after, "return_notice");
    CHECK_INT(p->stages[6].after.n, 5);
    CHECK_INT(p->stages[6].after.unit, LADDER_UNIT_SCHOOL_DAYS);
    const ladder_task_rule *pr = &p->task_rules[ladder_policy_task(p, "persuasion_record")];
    CHECK_INT(pr->every.n, 1);
    CHECK_INT(pr->every.unit, LADDER_UNIT_MONTHS);
    const ladder_task_rule *hd = &p->task_rules[ladder_policy_task(p, "home_delivery_visit")];
    CHECK_INT(hd->every.n, 7);
    CHECK_INT(hd->every.unit, LADDER_UNIT_DAYS);
    CHECK_INT(hd->recur_while, LADDER_WHILE_HOME_DELIVERED);
}

BX_TEST(deadlines_count_school_days_across_the_holiday)
{
    const ladder_policy *p = policy();
    static const struct {
        const char *from;
        int n;
        ladder_unit unit;
        const char *due;
    } rows[] = {
        {"2026-09-28 09:00", 0, LADDER_UNIT_SCHOOL_DAYS, "2026-09-28T17:00"},
        {"2026-09-28 18:30", 0, LADDER_UNIT_SCHOOL_DAYS, "2026-09-29T17:00"}, /* after hours */
        {"2026-09-30 09:00", 1, LADDER_UNIT_SCHOOL_DAYS, "2026-10-08T17:00"}, /* National Day */
        {"2026-10-09 09:00", 1, LADDER_UNIT_SCHOOL_DAYS, "2026-10-10T17:00"}, /* make-up day */
        {"2026-09-24 09:00", 1, LADDER_UNIT_SCHOOL_DAYS, "2026-09-28T17:00"}, /* Mid-Autumn */
        {"2026-12-31 09:00", 1, LADDER_UNIT_SCHOOL_DAYS, "2027-01-04T17:00"}, /* New Year */
        {"2026-09-28 09:00", 24, LADDER_UNIT_HOURS, "2026-09-29T09:00"},
        /* days and months land on the next school day when they fall on none */
        {"2026-09-28 09:00", 7, LADDER_UNIT_DAYS, "2026-10-08T17:00"}, /* 10-05 National Day */
        {"2026-10-17 09:00", 7, LADDER_UNIT_DAYS, "2026-10-26T17:00"}, /* Saturday 10-24 */
        {"2026-10-03 09:00", 7, LADDER_UNIT_DAYS, "2026-10-10T17:00"}, /* make-up Saturday */
        {"2026-10-14 09:00", 1, LADDER_UNIT_DAYS, "2026-10-15T17:00"},
        {"2026-10-31 09:00", 1, LADDER_UNIT_MONTHS, "2026-11-30T17:00"},
        {"2026-09-07 09:00", 1, LADDER_UNIT_MONTHS, "2026-10-08T17:00"}, /* 10-07 National Day */
        {"2026-09-10 09:00", 1, LADDER_UNIT_MONTHS, "2026-10-10T17:00"}, /* a make-up day */
        {"2026-10-15 09:00", 1, LADDER_UNIT_MONTHS, "2026-11-16T17:00"}, /* Sunday 11-15 */
        {"2027-01-10 09:00", 1, LADDER_UNIT_MONTHS, "2027-02-10T17:00"}, /* beyond the term:
                                                                            as counted */
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        ladder_span span = {rows[i].n, rows[i].unit};
        char got[32];
        fmt_time(ladder_due(p, calendar(), span, T(rows[i].from)), got);
        CHECK_STR(got, rows[i].due);
    }
}

/* ---- the scenario: absent Monday 2026-09-28 to Friday 2026-10-09, across National Day
 * (10-01..10-07), then the make-up Saturday 10-10 ---- */

BX_TEST(scenario_absent_across_national_day)
{
    start(policy());
    CHECK_STR(assess("2026-09-28 09:00", 1, "2026-09-28", 0),
              "opened -\n"
              "stage_entered contact_family\n"
              "task_created contact_family contact_family homeroom_teacher 2026-09-28T17:00\n"
              "notify guardian sms absence_same_day");
    CHECK_STR(state.case_id, "stu-0001:20260928");
    CHECK_INT(fx.ntimers, 1);
    CHECK_STR(fx.timers[0].key, "stu-0001:20260928:contact_family:contact_family:2026-09-28");
    CHECK_STR(fx.events[0].event_id, "stu-0001:20260928:e1");
    CHECK_STR(fx.events[0].actor, "bx-escalate");

    /* the homeroom teacher phones the same morning; no monthly record before the roster */
    CHECK_STR(act(LADDER_ACT_CONTACT_MADE, "2026-09-28 11:00"),
              "task_done contact_family contact_family");
    CHECK_STR(fx.events[0].actor, "staff-07");
    CHECK_STR(
        fire_key("stu-0001:20260928:contact_family:contact_family:2026-09-28", "2026-09-28 17:00"),
        "");

    CHECK_STR(assess("2026-09-29 09:00", 2, "2026-09-28", 0),
              "stage_entered home_visit\n"
              "task_created home_visit home_visit homeroom_teacher 2026-09-30T17:00");
    CHECK_STR(assess("2026-09-30 09:00", 3, "2026-09-28", 0),
              "stage_entered school_report\n"
              "task_created school_report report_to_school homeroom_teacher 2026-09-30T17:00\n"
              "task_created school_report persuasion_letter principal 2026-10-08T17:00\n"
              "notify principal task school_report");
    /* the visit on time satisfies the task; nothing escalates */
    {
        ladder_input in = action(LADDER_ACT_HOME_VISIT, "2026-09-30 15:00");
        CHECK_STR(apply(&in), "task_done school_report home_visit");
        CHECK(!fx.events[0].late);
    }
    CHECK_STR(fire_key("stu-0001:20260928:home_visit:home_visit:2026-09-30", "2026-09-30 17:00"),
              "");
    {
        ladder_input in = action(LADDER_ACT_TASK_DONE, "2026-09-30 16:00");
        snprintf(in.task_kind, sizeof(in.task_kind), "report_to_school");
        CHECK_STR(apply(&in), "task_done school_report report_to_school");
    }
    CHECK_STR(letter("persuasion_letter", "2026-10-08 10:00"),
              "task_done school_report persuasion_letter");
    /* no school 10-01..10-07; Thursday 10-08 is day 4: nothing new */
    CHECK_STR(assess("2026-10-08 09:00", 4, "2026-09-28", 0), "");
    CHECK_STR(assess("2026-10-09 09:00", 5, "2026-09-28", 0),
              "stage_entered academic_office\n"
              "task_created academic_office report_academic_office homeroom_teacher "
              "2026-10-09T17:00\n"
              "notify academic_office task academic_office_report");
    /* the make-up Saturday is a school day: one school week is over */
    CHECK_STR(assess("2026-10-10 09:00", 6, "2026-09-28", 0),
              "stage_entered dropout_roster\n"
              "task_created dropout_roster dropout_roster_entry homeroom_teacher "
              "2026-10-12T17:00\n"
              "task_created dropout_roster county_report principal 2026-10-13T17:00\n"
              "task_created dropout_roster persuasion_record homeroom_teacher 2026-11-10T17:00\n"
              "notify county_officer task dropout_reported");
    CHECK_INT(state.stage, 4);
    for (int i = 0; i <= 4; i++)
        CHECK(!state.stages[i].late);
}

BX_TEST(task_owner_is_told_of_every_task)
{
    start(policy());
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    int assigned = 0;
    for (int i = 0; i < fx.nnotes; i++) {
        const ladder_notification *m = &fx.notes[i];
        if (strcmp(m->template_name, "task_assigned") != 0)
            continue;
        assigned++;
        CHECK_STR(m->recipient_role, "homeroom_teacher");
        CHECK_STR(m->channel, "task");
        CHECK_STR(m->params[0].name, "case_id");
        CHECK_STR(m->params[0].value, "stu-0001:20260928");
    }
    CHECK_INT(assigned, 1);
    /* the guardian's SMS carries ids, dates and counts only */
    const ladder_notification *sms = &fx.notes[1];
    CHECK_STR(sms->template_name, "absence_same_day");
    CHECK_STR(sms->request_id, "stu-0001:20260928:n5");
    CHECK_STR(sms->params[2].name, "streak_days");
    CHECK_STR(sms->params[2].value, "1");
}

/* task_reassigned: the open task's owner becomes the staff member named, a note says who gave it
 * to whom, the new owner is told by staff id; a task that is not open, or no case, changes
 * nothing. */
BX_TEST(reassigned_task_changes_owner_and_tells_the_new_one)
{
    start(policy());
    ladder_input in = action(LADDER_ACT_TASK_REASSIGNED, "2026-09-28 08:00");
    snprintf(in.task_key, sizeof(in.task_key), "stu-0001:20260928:contact_family:x:2026-09-28");
    snprintf(in.to_staff_id, sizeof(in.to_staff_id), "staff-09");
    CHECK_STR(apply(&in), ""); /* no case yet */
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    const ladder_task *t = task_of("contact_family");
    REQUIRE(t != NULL);
    char key[LADDER_KEY_SIZE];
    snprintf(key, sizeof(key), "%s", t->key);
    in = action(LADDER_ACT_TASK_REASSIGNED, "2026-09-28 10:00");
    snprintf(in.actor, sizeof(in.actor), "principal-1");
    snprintf(in.task_key, sizeof(in.task_key), "%s", key);
    snprintf(in.to_staff_id, sizeof(in.to_staff_id), "staff-09");
    CHECK_STR(apply(&in), "note contact_family contact_family"); /* stage, task */
    CHECK_INT(fx.nevents, 1);
    const ladder_event *e = &fx.events[0];
    CHECK_STR(e->task_key, key);
    CHECK_STR(e->owner_role, "homeroom_teacher");
    CHECK_STR(e->owner_staff_id, "staff-09");
    CHECK_STR(e->actor, "principal-1");
    CHECK_STR(e->reason, "contact_family reassigned to staff-09 by principal-1");
    CHECK_INT(fx.ntimers, 0); /* the deadline stays */
    CHECK_INT(fx.nnotes, 1);
    const ladder_notification *m = &fx.notes[0];
    CHECK_STR(m->template_name, "task_assigned");
    CHECK_STR(m->recipient_staff_id, "staff-09");
    CHECK_STR(m->channel, "task");
    CHECK_STR(m->params[1].name, "task_id");
    CHECK_STR(m->params[1].value, key);
    REQUIRE(task_of("contact_family") != NULL); /* still open, its deadline unchanged */
    CHECK(task_of("contact_family")->due_at == t->due_at);
    /* Once done, a reassignment changes nothing. */
    act(LADDER_ACT_CONTACT_MADE, "2026-09-28 11:00");
    in = action(LADDER_ACT_TASK_REASSIGNED, "2026-09-28 12:00");
    snprintf(in.task_key, sizeof(in.task_key), "%s", key);
    snprintf(in.to_staff_id, sizeof(in.to_staff_id), "staff-10");
    CHECK_STR(apply(&in), "");
    /* Without a task or a new owner the input is refused. */
    bx_error err = {0};
    in = action(LADDER_ACT_TASK_REASSIGNED, "2026-09-28 12:00");
    snprintf(in.event_id, sizeof(in.event_id), "bad-1");
    snprintf(in.task_key, sizeof(in.task_key), "%s", key);
    CHECK_INT(ladder_step(active, calendar(), &state, &in, &state, &fx, &err), BX_EINVAL);
}

BX_TEST(leave_pauses_the_ladder)
{
    start(policy());
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    assess("2026-09-29 09:00", 2, "2026-09-28", 0);
    /* 09-30 on approved leave: bx-score keeps the streak at 2 */
    CHECK_STR(assess("2026-09-30 09:00", 2, "2026-09-28", 0), "");
    CHECK_STR(assess("2026-10-08 09:00", 2, "2026-09-28", 0), "");
    CHECK_INT(state.stage, 1);
    CHECK_STR(assess("2026-10-09 09:00", 3, "2026-09-28", 0),
              "stage_entered school_report\n"
              "task_created school_report report_to_school homeroom_teacher 2026-10-09T17:00\n"
              "task_created school_report persuasion_letter principal 2026-10-10T17:00\n"
              "notify principal task school_report");
}

BX_TEST(missed_contact_and_late_home_visit_escalate)
{
    start(policy());
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    /* nobody phoned: the missed same-day contact escalates and sends the teachers out */
    CHECK_STR(fire("contact_family"),
              "task_overdue! contact_family contact_family\n"
              "escalated! contact_family contact_family\n"
              "stage_entered home_visit\n"
              "task_created home_visit home_visit homeroom_teacher 2026-09-29T17:00\n"
              "notify principal task task_overdue");
    /* the streak reaching 2 the next morning enters nothing twice */
    CHECK_STR(assess("2026-09-29 09:00", 2, "2026-09-28", 0), "");
    CHECK_STR(fire("home_visit"), "task_overdue! home_visit home_visit\n"
                                  "escalated! home_visit home_visit\n"
                                  "notify principal task task_overdue");
    /* recorded late: done late, escalated once already (the missed contact ended cancelled when
     * the case moved on to the home visit) */
    CHECK_STR(act(LADDER_ACT_HOME_VISIT, "2026-09-30 10:00"), "task_done! home_visit home_visit");
}

BX_TEST(visit_recorded_after_its_day_escalates_before_the_timer)
{
    start(policy());
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    act(LADDER_ACT_CONTACT_MADE, "2026-09-28 10:00");
    assess("2026-09-29 09:00", 2, "2026-09-28", 0);
    /* due 09-30 17:00, the timer has not fired yet (a slow replica), the visit was on 10-08 */
    CHECK_STR(act(LADDER_ACT_HOME_VISIT, "2026-10-08 10:00"), "task_done! home_visit home_visit\n"
                                                              "escalated! home_visit home_visit\n"
                                                              "notify principal task task_overdue");
    CHECK_STR(fire_key("stu-0001:20260928:home_visit:home_visit:2026-09-30", "2026-09-30 17:00"),
              "");
}

BX_TEST(return_closes_with_township_signoff)
{
    start(policy());
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    assess("2026-09-30 09:00", 3, "2026-09-28", 0);
    CHECK_STR(act(LADDER_ACT_RETURNED, "2026-10-08 08:00"),
              "note school_report\n"
              "task_created school_report return_report_signoff township_officer "
              "2026-10-14T17:00");
    CHECK(state.open);
    CHECK(state.awaiting_signoff);
    CHECK_STR(assess("2026-10-08 18:00", 0, "-", 0), "");
    ladder_input in = action(LADDER_ACT_RETURNED, "2026-10-12 10:00");
    in.return_date = D("2026-10-08");
    snprintf(in.signoff_staff_id, sizeof(in.signoff_staff_id), "twp-off-3");
    CHECK_STR(apply(&in), "task_done school_report return_report_signoff\n"
                          "closed school_report returned");
    CHECK_CONTAINS(fx.events[1].reason, "2026-10-08");
    CHECK_CONTAINS(fx.events[1].reason, "twp-off-3");
    CHECK(!state.open);
    CHECK_INT(state.ending, LADDER_END_RETURNED);
    /* timers of the cancelled tasks do nothing */
    CHECK_STR(fire_key("stu-0001:20260928:school_report:persuasion_letter:2026-10-08",
                       "2026-10-08 17:00"),
              "");
    /* a new absence later opens a new case */
    CHECK_STR(assess("2026-11-02 09:00", 1, "2026-11-02", 0),
              "opened -\n"
              "stage_entered contact_family\n"
              "task_created contact_family contact_family homeroom_teacher 2026-11-02T17:00\n"
              "notify guardian sms absence_same_day");
    CHECK_STR(state.case_id, "stu-0001:20261102");
}

BX_TEST(signed_return_closes_at_once)
{
    start(policy());
    assess("2026-09-28 09:00", 2, "2026-09-25", 0);
    ladder_input in = action(LADDER_ACT_RETURNED, "2026-09-29 08:00");
    snprintf(in.signoff_staff_id, sizeof(in.signoff_staff_id), "twp-1");
    CHECK_STR(apply(&in), "closed home_visit returned");
}

BX_TEST(bulk_jump_runs_every_skipped_stage_late)
{
    start(policy());
    /* the first upload after the holiday: absent since Monday 09-28, four school days */
    /* (the stages passed on the way make only their tasks that carry over: the same-day contact
     * would be cancelled as it is made) */
    CHECK_STR(assess("2026-10-08 16:00", 4, "2026-09-28", 0),
              "opened -\n"
              "stage_entered! contact_family\n"
              "stage_entered! home_visit\n"
              "task_created! home_visit home_visit homeroom_teacher 2026-10-09T17:00\n"
              "stage_entered! school_report\n"
              "task_created! school_report report_to_school homeroom_teacher 2026-10-08T17:00\n"
              "task_created! school_report persuasion_letter principal 2026-10-09T17:00\n"
              "notify guardian sms absence_same_day\n"
              "notify principal task school_report");
    CHECK_CONTAINS(fx.events[1].reason, "reached 2026-09-28");
    CHECK_CONTAINS(fx.events[2].reason, "reached 2026-09-29");
    CHECK_CONTAINS(fx.events[4].reason, "reached 2026-09-30");
    CHECK(state.stages[2].late);
    CHECK_INT(state.stage, 2);
}

BX_TEST(transfer_without_paperwork_is_treated_as_dropout)
{
    start(policy());
    ladder_input in = action(LADDER_ACT_TRANSFER_OUT, "2026-10-12 10:00");
    in.paperwork = false;
    CHECK_STR(apply(&in), "opened -\n"
                          "task_created - transfer_confirmation academic_office 2026-10-26T17:00\n"
                          "note -");
    CHECK_STR(fire("transfer_confirmation"),
              "task_overdue! - transfer_confirmation\n"
              "escalated! - transfer_confirmation\n"
              "stage_entered dropout_roster\n"
              "task_created dropout_roster dropout_roster_entry homeroom_teacher "
              "2026-10-27T17:00\n"
              "task_created dropout_roster county_report principal 2026-10-28T17:00\n"
              "task_created dropout_roster persuasion_record homeroom_teacher 2026-11-26T17:00\n"
              "notify principal task task_overdue\n"
              "notify county_officer task dropout_reported");
}

BX_TEST(confirmed_transfer_closes)
{
    start(policy());
    ladder_input in = action(LADDER_ACT_TRANSFER_OUT, "2026-10-12 10:00");
    in.paperwork = true;
    apply(&in);
    CHECK_STR(act(LADDER_ACT_TRANSFER_CONFIRMED, "2026-10-20 10:00"),
              "task_done - transfer_confirmation\n"
              "closed - transferred");
}

BX_TEST(suspension_paperwork_missing_is_dropout_and_approved_pauses)
{
    start(policy());
    ladder_input in = action(LADDER_ACT_SUSPENSION, "2026-10-12 10:00");
    in.first_date = D("2026-10-12");
    in.last_date = D("2026-11-30");
    in.approved = false;
    CHECK_CONTAINS(apply(&in), "task_created - suspension_paperwork academic_office "
                               "2026-10-19T17:00");
    in = action(LADDER_ACT_SUSPENSION, "2026-10-14 10:00");
    in.first_date = D("2026-10-12");
    in.last_date = D("2026-11-30");
    in.approved = true;
    CHECK_STR(apply(&in), "task_done - suspension_paperwork\nnote -");
    /* absences inside the approved suspension move nothing */
    CHECK_STR(assess("2026-10-20 09:00", 7, "2026-10-12", 0), "");
    CHECK_INT(state.stage, -1);
}

BX_TEST(missed_periods_open_the_case)
{
    start(policy());
    CHECK_STR(assess("2026-09-28 15:00", 0, "-", 3), "");
    CHECK_STR(assess("2026-09-28 16:00", 0, "-", 4),
              "opened -\n"
              "stage_entered contact_family\n"
              "task_created contact_family contact_family homeroom_teacher 2026-09-28T17:00\n"
              "notify guardian sms absence_same_day");
}

BX_TEST(monthly_persuasion_record_only_on_the_roster)
{
    start(policy());
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    act(LADDER_ACT_CONTACT_MADE, "2026-09-28 10:00");
    assess("2026-09-30 09:00", 3, "2026-09-28", 0);
    /* a child who missed a few days gets no monthly persuasion record */
    CHECK(task_of("persuasion_record") == NULL);
    assess("2026-10-10 09:00", 6, "2026-09-28", 0);
    const ladder_task *t = task_of("persuasion_record");
    REQUIRE(t != NULL);
    /* a month after the roster, 11-10 */
    CHECK_STR(t->key, "stu-0001:20260928:case:persuasion_record:2026-11-10");
    CHECK_STR(fire("persuasion_record"),
              "task_overdue! dropout_roster persuasion_record\n"
              "escalated! dropout_roster persuasion_record\n"
              "task_created dropout_roster persuasion_record homeroom_teacher 2026-12-10T17:00\n"
              "notify principal task task_overdue");
    /* the missed month's record is superseded by December's and no action does it */
    int superseded = 0;
    for (int i = 0; i < state.ntasks; i++)
        superseded += state.tasks[i].state == LADDER_TASK_SUPERSEDED;
    CHECK_INT(superseded, 1);
    CHECK_STR(act(LADDER_ACT_CONTACT_MADE, "2026-11-20 10:00"),
              "task_done dropout_roster persuasion_record\n"
              "task_created dropout_roster persuasion_record homeroom_teacher 2027-01-11T17:00");
}

BX_TEST(task_endings)
{
    /* closing cancels every live task and wait; done and superseded tasks keep their ending */
    start(policy());
    assess("2026-10-12 09:00", 10, "2026-09-24", 0);
    letter("return_notice", "2026-10-13 10:00"); /* starts the wait for deadline_notice */
    fire("persuasion_record");
    ladder_input in = action(LADDER_ACT_RETURNED, "2026-11-25 10:00");
    snprintf(in.signoff_staff_id, sizeof(in.signoff_staff_id), "twp-1");
    apply(&in);
    CHECK(!state.open);
    int counts[LADDER_TASK_SUPERSEDED + 1] = {0};
    for (int i = 0; i < state.ntasks; i++)
        counts[state.tasks[i].state]++;
    CHECK_INT(counts[LADDER_TASK_OPEN], 0);
    CHECK_INT(counts[LADDER_TASK_OVERDUE], 0);
    CHECK_INT(counts[LADDER_TASK_DONE], 1);
    CHECK_INT(counts[LADDER_TASK_SUPERSEDED], 1);
    CHECK(counts[LADDER_TASK_CANCELLED] >= 7);
}

/* Leaving a stage cancels its live tasks (open or overdue) unless their rule carries over; a stage
 * passed in the same step makes only the tasks that carry over; a done task keeps its ending.
 * Rows: the inputs (a streak "s<n>", "done <kind>", "fire <kind>"), then every task's kind and
 * state in the order made. */
BX_TEST(stage_left_cancels_tasks_unless_they_carry_over)
{
    static const char policy_text[] =
        "ladder.name = t\nladder.task_notice = none\nladder.overdue_notice = none\n"
        "stage.contact_family.open_streak = 1\nstage.contact_family.tasks = ta, ka\n"
        "stage.home_visit.open_streak = 2\nstage.home_visit.tasks = tb\n"
        "stage.school_report.open_streak = 3\nstage.school_report.tasks = tc\n"
        "task.ta.owner = homeroom_teacher\ntask.ta.due = 0 school days\n"
        "task.ta.done_by = task_done\n"
        "task.ka.owner = principal\ntask.ka.due = 5 school days\ntask.ka.done_by = task_done\n"
        "task.ka.carries_over = yes\n"
        "task.tb.owner = homeroom_teacher\ntask.tb.due = 1 school days\n"
        "task.tb.done_by = task_done\ntask.tb.carries_over = no\n"
        "task.tc.owner = principal\ntask.tc.due = 1 school days\ntask.tc.done_by = task_done\n";
    static ladder_policy tp;
    bx_error err = {0};
    REQUIRE(ladder_policy_parse(policy_text, strlen(policy_text), "t.policy", &tp, &err) == BX_OK);
    CHECK(!tp.task_rules[ladder_policy_task(&tp, "ta")].carries_over);
    CHECK(tp.task_rules[ladder_policy_task(&tp, "ka")].carries_over);
    static const struct {
        const char *inputs, *want;
    } rows[] = {
        {"s1 s2", "ta cancelled, ka open, tb open"},
        {"s1 s3", "ta cancelled, ka open, tc open"}, /* home_visit passed: tb never made */
        {"s3", "ka open, tc open"},                  /* both passed at once */
        {"s1 s2 s3", "ta cancelled, ka open, tb cancelled, tc open"},
        {"s1 done_ta s2", "ta done, ka open, tb open"},
        {"s1 fire_ta s2", "ta cancelled, ka open, tb open"}, /* overdue, then left */
        {"s1 fire_ka s3", "ta cancelled, ka overdue, tc open"},
        {"s1", "ta open, ka open"},
    };
    static const char *const names[] = {"",     "open",      "done",      "overdue",
                                        "late", "cancelled", "superseded"};
    for (size_t i = 0; i < COUNT(rows); i++) {
        start(&tp);
        char inputs[64];
        snprintf(inputs, sizeof(inputs), "%s", rows[i].inputs);
        int day = 0;
        for (char *tok = strtok(inputs, " "); tok; tok = strtok(NULL, " ")) {
            char at[32];
            snprintf(at, sizeof(at), "2026-10-%02d 09:00", 12 + day);
            if (tok[0] == 's') {
                day = atoi(tok + 1) - 1;
                snprintf(at, sizeof(at), "2026-10-%02d 09:00", 12 + day);
                assess(at, atoi(tok + 1), "2026-10-12", 0);
            } else if (strncmp(tok, "done_", 5) == 0) {
                ladder_input in = action(LADDER_ACT_TASK_DONE, at);
                snprintf(in.task_kind, sizeof(in.task_kind), "%s", tok + 5);
                apply(&in);
            } else {
                fire(tok + 5);
            }
        }
        char got[256] = "";
        size_t used = 0;
        for (int k = 0; k < state.ntasks; k++)
            used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%s %s", k ? ", " : "",
                                     tp.task_rules[state.tasks[k].rule].kind,
                                     names[state.tasks[k].state]);
        if (strcmp(got, rows[i].want) != 0)
            BX_FAIL_AT("%s: got \"%s\", expected \"%s\"", rows[i].inputs, got, rows[i].want);
    }
    /* the setting is checked */
    static const char bad[] = "stage.contact_family.open_streak = 1\n"
                              "stage.contact_family.tasks = ta\ntask.ta.owner = principal\n"
                              "task.ta.due = 1 days\ntask.ta.done_by = task_done\n"
                              "task.ta.carries_over = maybe\n";
    CHECK_INT(ladder_policy_parse(bad, strlen(bad), "t.policy", &tp, &err), BX_EINVAL);
    CHECK_STR(err.msg, "t.policy:6: task.ta.carries_over: expected yes or no, got \"maybe\"");
}

/* A case before ladder.presence_closes_below (school_report) closes when the child is seen; from
 * it on, the return report is required. Rows: the streak reached, then what an assessment with
 * the child present does. */
BX_TEST(presence_closes_below_the_policy_stage)
{
    static const struct {
        int streak;         /* days absent before the child is seen (0: periods only) */
        int periods;        /* unexcused periods of the opening day */
        const char *seen;   /* the assessment with the child present */
        const char *expect; /* its trace */
    } rows[] = {
        {1, 0, "2026-09-29 09:00", "closed contact_family returned"},
        {2, 0, "2026-09-30 09:00", "closed home_visit returned"},
        {3, 0, "2026-10-08 09:00", ""},
        {6, 0, "2026-10-12 09:00", ""},
        {0, 4, "2026-09-29 09:00", "closed contact_family returned"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        start(policy());
        if (rows[i].streak > 0) {
            static const char *const days[] = {"2026-09-28 09:00", "2026-09-29 09:00",
                                               "2026-09-30 09:00", "2026-10-08 09:00",
                                               "2026-10-09 09:00", "2026-10-10 09:00"};
            assess(days[rows[i].streak - 1], rows[i].streak, "2026-09-28", 0);
        } else {
            assess("2026-09-28 16:00", 0, "-", rows[i].periods);
        }
        CHECK(state.open);
        CHECK_STR(assess(rows[i].seen, 0, "-", 0), rows[i].expect);
        CHECK(state.open == (rows[i].expect[0] == '\0'));
        if (!state.open) {
            CHECK_CONTAINS(fx.events[0].reason, "without a return report");
            for (int k = 0; k < state.ntasks; k++)
                CHECK(state.tasks[k].state != LADDER_TASK_OPEN &&
                      state.tasks[k].state != LADDER_TASK_OVERDUE);
        }
    }
    /* the same day's periods below the threshold do not close a case opened by them */
    start(policy());
    assess("2026-09-28 16:00", 0, "-", 4);
    CHECK_STR(assess("2026-09-28 16:30", 0, "-", 5), "");
    CHECK(state.open);
    /* a transfer being followed is not closed by presence */
    start(policy());
    ladder_input in = action(LADDER_ACT_TRANSFER_OUT, "2026-10-12 10:00");
    apply(&in);
    CHECK_STR(assess("2026-10-13 09:00", 0, "-", 0), "");
    CHECK(state.open);
    /* a policy without the setting never closes on presence */
    ladder_policy p;
    bx_error err = {0};
    const char *text = "stage.contact_family.open_streak = 1\n"
                       "stage.contact_family.tasks = contact_family\n"
                       "task.contact_family.owner = homeroom_teacher\n"
                       "task.contact_family.due = 0 school days\n"
                       "task.contact_family.done_by = contact_made\n";
    REQUIRE(ladder_policy_parse(text, strlen(text), "t.policy", &p, &err) == BX_OK);
    CHECK_INT(p.presence_closes_below, 0);
    start(&p);
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    CHECK_STR(assess("2026-09-29 09:00", 0, "-", 0), "");
    CHECK(state.open);
}

BX_TEST(presence_and_from_settings_are_checked)
{
    static const struct {
        const char *extra;
        const char *error;
    } rows[] = {
        {"ladder.presence_closes_below = school_report\n",
         "t.policy:6: ladder.presence_closes_below: no stage.school_report.* settings define"},
        {"ladder.presence_closes_below = Bad\n", "t.policy:6: ladder.presence_closes_below: "
                                                 "expected a stage name or none"},
        {"task.contact_family.from = contact_family\n",
         "t.policy:6: task.contact_family.from: only a recurring task"},
        {"task.rec.owner = principal\ntask.rec.every = 1 month\ntask.rec.done_by = "
         "task_done\ntask.rec.from = legal_referral\n",
         "t.policy:9: task.rec.from: no stage.legal_referral.* settings define"},
        {"ladder.presence_closes_below = none\n", NULL},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "stage.contact_family.open_streak = 1\n"
                 "stage.contact_family.tasks = contact_family\n"
                 "task.contact_family.owner = homeroom_teacher\n"
                 "task.contact_family.due = 0 school days\n"
                 "task.contact_family.done_by = contact_made\n%s",
                 rows[i].extra);
        ladder_policy p;
        bx_error err = {0};
        bx_status s = ladder_policy_parse(text, strlen(text), "t.policy", &p, &err);
        if (rows[i].error == NULL) {
            CHECK_INT(s, BX_OK);
            CHECK_INT(p.presence_closes_below, 0);
        } else {
            CHECK_INT(s, BX_EINVAL);
            CHECK_CONTAINS(err.msg, rows[i].error);
        }
    }
    CHECK_INT(policy()->presence_closes_below, ladder_policy_stage(policy(), "school_report"));
    int pr = ladder_policy_task(policy(), "persuasion_record");
    CHECK_INT(policy()->task_rules[pr].from_stage, ladder_policy_stage(policy(), "dropout_roster"));
}

BX_TEST(home_delivered_education_gets_weekly_visits)
{
    start(policy());
    ladder_input in = {0};
    in.kind = LADDER_IN_HOME_DELIVERY;
    in.at = T("2026-09-07 09:00");
    in.date = D("2026-09-07");
    CHECK_STR(apply(&in), "opened -\n"
                          "task_created - home_delivery_visit homeroom_teacher 2026-09-14T17:00");
    CHECK_STR(act(LADDER_ACT_HOME_VISIT, "2026-09-11 10:00"),
              "task_done - home_delivery_visit\n"
              "task_created - home_delivery_visit homeroom_teacher 2026-09-21T17:00");
}

BX_TEST(graduation_ends_the_case)
{
    start(policy());
    assess("2026-09-28 09:00", 1, "2026-09-28", 0);
    ladder_input in = {0};
    in.kind = LADDER_IN_END;
    in.at = T("2027-01-22 12:00");
    in.ending = LADDER_END_OBLIGATION_ENDED;
    CHECK_STR(apply(&in), "closed contact_family obligation_ended");
}

BX_TEST(township_notice_then_deadline_notice_then_legal_referral)
{
    start(policy());
    assess("2026-10-12 09:00", 10, "2026-09-24", 0); /* a bulk upload: every stage to 10 late */
    CHECK_INT(state.stage, 5);
    CHECK_STR(letter("return_notice", "2026-10-13 10:00"),
              "task_done township_notice return_notice\n"
              "note township_notice");
    CHECK_STR(fire_key("stu-0001:20260924:township_notice:wait_deadline_notice:2026-10-20",
                       "2026-10-20 17:00"),
              "stage_entered deadline_notice\n"
              "task_created deadline_notice deadline_notice township_officer 2026-10-23T17:00\n"
              "notify county_officer task deadline_notice_issued");
    CHECK_STR(letter("deadline_notice", "2026-10-21 10:00"),
              "task_done deadline_notice deadline_notice\n"
              "note deadline_notice");
    CHECK_STR(fire_key("stu-0001:20260924:deadline_notice:wait_legal_referral:2026-10-28",
                       "2026-10-28 17:00"),
              "stage_entered legal_referral\n"
              "task_created legal_referral legal_referral county_officer 2026-11-11T17:00\n"
              "notify county_officer task legal_referral");
}

BX_TEST(redelivery_of_the_whole_history_changes_nothing)
{
    start(policy());
    ladder_input inputs[6];
    memset(inputs, 0, sizeof(inputs));
    const char *days[] = {"2026-09-28 09:00", "2026-09-29 09:00", "2026-09-30 09:00",
                          "2026-10-08 09:00", "2026-10-09 09:00", "2026-10-10 09:00"};
    for (int i = 0; i < 6; i++) {
        inputs[i].kind = LADDER_IN_ASSESSMENT;
        snprintf(inputs[i].event_id, sizeof(inputs[i].event_id), "risk-%d", i);
        inputs[i].at = T(days[i]);
        inputs[i].date = bx_time_local_date(inputs[i].at);
        inputs[i].streak_days = i + 1;
        inputs[i].streak_start = D("2026-09-28");
        apply(&inputs[i]);
    }
    static case_state before;
    before = state;
    for (int i = 0; i < 6; i++) {
        bx_error err = {0};
        REQUIRE(ladder_step(active, calendar(), &state, &inputs[i], &state, &fx, &err) == BX_OK);
        CHECK_INT(fx.nevents + fx.ntimers + fx.nnotes, 0);
    }
    CHECK(memcmp(&before, &state, sizeof(state)) == 0);
    /* the same facts under new ids (a replay after the ring forgot them) enter nothing twice */
    for (int i = 0; i < 6; i++) {
        snprintf(inputs[i].event_id, sizeof(inputs[i].event_id), "replay-%d", i);
        CHECK_STR(apply(&inputs[i]), "");
    }
}

BX_TEST(bad_inputs_are_refused)
{
    start(policy());
    ladder_input in = {0};
    in.kind = LADDER_IN_ASSESSMENT;
    snprintf(in.event_id, sizeof(in.event_id), "bad id");
    in.at = T("2026-09-28 09:00");
    in.date = D("2026-09-28");
    bx_error err = {0};
    CHECK_INT(ladder_step(policy(), calendar(), &state, &in, &state, &fx, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "event_id");
    snprintf(in.event_id, sizeof(in.event_id), "ok");
    in.streak_days = 3;
    in.streak_start = BX_DATE_NONE;
    CHECK_INT(ladder_step(policy(), calendar(), &state, &in, &state, &fx, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "streak_start");
    CHECK(!state.open);
}

/* ---- alternate ladders (deploy/policy/ladders/) ---- */

BX_TEST(wenshan_ladder_loads_and_runs)
{
    start(load("ladders/wenshan.policy"));
    CHECK_STR(active->name, "wenshan");
    CHECK_STR(assess("2026-09-28 09:00", 1, "2026-09-28", 0),
              "opened -\n"
              "stage_entered contact_family\n"
              "task_created contact_family contact_family homeroom_teacher 2026-09-28T17:00\n"
              "task_created contact_family persuasion_record homeroom_teacher 2026-10-28T17:00\n"
              "notify guardian sms absence_same_day");
    CHECK_STR(assess("2026-10-09 09:00", 5, "2026-09-28", 0),
              "stage_entered academic_office\n"
              "task_created academic_office report_academic_office homeroom_teacher "
              "2026-10-09T17:00\n"
              "notify academic_office task academic_office_report");
    CHECK_STR(assess("2026-10-16 09:00", 10, "2026-09-28", 0),
              "stage_entered township_notice\n"
              "task_created township_notice dropout_report_form homeroom_teacher "
              "2026-10-19T17:00\n"
              "task_created township_notice return_notice township_officer 2026-10-21T17:00\n"
              "notify academic_office task dropout_report_filed\n"
              "notify township_officer task township_action_requested");
}

BX_TEST(periods_ladder_loads_and_runs)
{
    start(load("ladders/periods.policy"));
    CHECK_STR(active->name, "periods");
    CHECK_STR(assess("2026-09-28 14:00", 0, "-", 4),
              "opened -\n"
              "stage_entered contact_family\n"
              "task_created contact_family notify_parents homeroom_teacher 2026-09-28T17:00\n"
              "task_created contact_family persuasion_record homeroom_teacher 2026-10-28T17:00\n"
              "notify guardian sms missed_periods");
    CHECK_STR(assess("2026-09-29 09:00", 1, "2026-09-29", 0),
              "stage_entered home_visit\n"
              "task_created home_visit home_visit homeroom_teacher 2026-09-29T17:00\n"
              "task_created home_visit visit_report homeroom_teacher 2026-09-30T17:00");
    CHECK_STR(assess("2026-10-09 09:00", 5, "2026-09-29", 0),
              "stage_entered school_report\n"
              "task_created school_report report_to_school homeroom_teacher 2026-10-09T17:00\n"
              "notify principal task school_report");
}

/* ---- the loader ---- */

BX_TEST(policy_errors_name_file_line_and_setting)
{
    static const struct {
        const char *text, *error;
    } rows[] = {
        {"stage.contact_family.open_streak = x\n",
         "t.policy:1: stage.contact_family.open_streak: expected an integer 1..200"},
        {"# c\n\nstage.contact_family.open_streak = 1\nstage.contact_family.open_streak = 2\n",
         "t.policy:4: stage.contact_family.open_streak set twice (first on line 3)"},
        {"stage.dropped.open_streak = 1\n", "t.policy:1: stage.dropped: unknown stage"},
        {"colour = red\n", "t.policy:1: unknown setting colour"},
        {"stage.home_visit.open_streak\n", "t.policy:1: expected \"name = value\""},
        {"task.x.owner = guardian\n", "t.policy:1: task.x.owner: expected a staff role"},
        {"task.x.due = 3 fortnights\n", "t.policy:1: task.x.due: expected a count and hours"},
        {"task.x.done_by = phoned\n", "t.policy:1: task.x.done_by: unknown action \"phoned\""},
        {"stage.home_visit.notify = guardian task x\n",
         "t.policy:1: stage.home_visit.notify: channel \"task\""},
        {"ladder.deadline_time = 25:00\n", "t.policy:1: ladder.deadline_time: expected HH:MM"},
        {"stage.home_visit.open_streak = 1\nstage.home_visit.tasks = visit\n",
         "t.policy:1: stage.home_visit.tasks: no task.visit.* settings define \"visit\""},
        {"stage.home_visit.open_streak = 3\nstage.school_report.open_streak = 2\n",
         "t.policy:2: stage.school_report.open_streak: 2 school days comes before stage "
         "home_visit at 3"},
        {"stage.home_visit.tasks =\n", "t.policy:1: stage.home_visit: no open_streak"},
        {"task.v.owner = principal\ntask.v.done_by = home_visit\nstage.home_visit.open_streak = "
         "1\n",
         "t.policy:1: task.v.due: missing"},
        {"ladder.transfer_task = papers\nstage.home_visit.open_streak = 1\n",
         "t.policy:1: ladder.transfer_task: unknown task kind \"papers\""},
        {"", "t.policy: no stage"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        ladder_policy p;
        bx_error err = {0};
        bx_status s = ladder_policy_parse(rows[i].text, strlen(rows[i].text), "t.policy", &p, &err);
        CHECK_INT(s, BX_EINVAL);
        CHECK_CONTAINS(err.msg, rows[i].error);
    }
    ladder_policy p;
    bx_error err = {0};
    CHECK_INT(ladder_policy_load("/nonexistent/ladder.policy", &p, &err), BX_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "/nonexistent/ladder.policy: cannot open");
}

/* ---- calendar duties (duties.h) ---- */

static ladder_input suspected(const char *at, const char *first_day, const char *stage)
{
    ladder_input in = {0};
    in.kind = LADDER_IN_SUSPECTED;
    in.at = T(at);
    in.date = D(first_day);
    in.return_date = in.first_date = in.last_date = in.streak_start = BX_DATE_NONE;
    snprintf(in.reason, sizeof(in.reason), "疑似辍学: not seen in the first 10 school days");
    snprintf(in.stage_name, sizeof(in.stage_name), "%s", stage);
    return in;
}

BX_TEST(suspected_dropout_opens_a_case_from_the_first_day)
{
    start(policy());
    ladder_input in = suspected("2026-09-14 17:00", "2026-09-01", "contact_family");
    /* the contact's "0 school days" at 17:00 is the input's own time: the next school day */
    CHECK_STR(apply(&in), "opened -\n"
                          "stage_entered contact_family\n"
                          "task_created contact_family contact_family homeroom_teacher "
                          "2026-09-15T17:00\n"
                          "notify guardian sms absence_same_day");
    CHECK_STR(state.case_id, "stu-0001:20260901");
    CHECK_STR(fx.events[0].reason, "疑似辍学: not seen in the first 10 school days");
    /* a later absence streak goes on in the same case */
    CHECK_STR(assess("2026-09-15 09:00", 2, "2026-09-14", 0),
              "stage_entered home_visit\n"
              "task_created home_visit home_visit homeroom_teacher 2026-09-16T17:00");
}

BX_TEST(suspected_dropout_with_an_open_case_changes_nothing)
{
    start(policy());
    assess("2026-09-10 09:00", 1, "2026-09-10", 0);
    ladder_input in = suspected("2026-09-14 17:00", "2026-09-01", "contact_family");
    CHECK_STR(apply(&in), "");
    CHECK_STR(state.case_id, "stu-0001:20260910");
}

BX_TEST(suspected_dropout_without_a_stage_only_opens)
{
    start(policy());
    ladder_input in = suspected("2026-09-14 17:00", "2026-09-01", "");
    CHECK_STR(apply(&in), "opened -");
    ladder_input bad = suspected("2026-09-14 17:00", "2026-09-01", "");
    bad.reason[0] = '\0';
    snprintf(bad.event_id, sizeof(bad.event_id), "duty:no-reason");
    bx_error err = {0};
    CHECK(ladder_step(active, calendar(), &state, &bad, &state, &fx, &err) == BX_EINVAL);
    CHECK_STR(err.msg, "suspected: date and reason required");
}

static const duties_policy *duties(void)
{
    static duties_policy p;
    static bool loaded;
    if (!loaded) {
        const char *src = getenv("BX_SOURCE_DIR");
        char path[1024];
        snprintf(path, sizeof(path), "%s/deploy/policy/ladder-duties.policy", src ? src : ".");
        bx_error err = {0};
        if (duties_policy_load(path, &p, &err) != BX_OK) {
            fprintf(stderr, "%s\n", err.msg);
            REQUIRE(!"duties policy loads");
        }
        loaded = true;
    }
    return &p;
}

BX_TEST(duties_policy_encodes_the_seeds)
{
    const duties_policy *p = duties();
    CHECK_INT(p->minute, 17 * 60);
    CHECK_INT(p->term_start_days, 10);
    CHECK_STR(p->term_start_stage, "contact_family");
    CHECK_STR(p->transition_terms, "autumn");
    CHECK_INT(p->transition_days, 10);
    CHECK_INT(p->nfrom_grades, 1);
    CHECK_INT(p->from_grades[0], 6);
    CHECK_INT(p->ninto_grades, 2);
    CHECK_INT(p->into_grades[0], 1);
    CHECK_INT(p->into_grades[1], 7);
    CHECK_INT(p->report_days, 15);
    CHECK_STR(p->report_role, "county_officer");
    CHECK_STR(p->report_template, "out_of_school_report");
    CHECK_STR(p->monthly_template, "monthly_summary");
    CHECK(ladder_policy_stage(policy(), p->term_start_stage) == 0);
}

BX_TEST(duties_of_the_autumn_term)
{
    duty plan[DUTIES_PER_TERM];
    int n = duties_plan(duties(), calendar(), "it-2026", "2026-autumn", D("2026-09-01"),
                        D("2027-01-22"), plan, DUTIES_PER_TERM);
    char text[4096] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        char due[32], first[11], last[11];
        fmt_time(plan[i].due_at, due);
        bx_date_format(plan[i].first_day, first);
        bx_date_format(plan[i].last_day, last);
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s %s %s..%s\n", plan[i].key,
                                 due, first, last);
    }
    /* 10th school day: Monday 09-14; 15th: the make-up Sunday 09-20; each month's last school day
     * (10-31 and 11-01 are a weekend, 2027-01-22 is the term's last day) */
    CHECK_STR(text, "duty:term_start:it-2026:2026-autumn 2026-09-14T17:00 2026-09-01..2026-09-14\n"
                    "duty:transition:it-2026:2026-autumn 2026-09-14T17:00 2026-09-01..2026-09-14\n"
                    "duty:out_of_school_report:it-2026:2026-autumn 2026-09-20T17:00 "
                    "2026-09-01..2026-09-20\n"
                    "duty:monthly_summary:it-2026:2026-autumn:2026-09 2026-09-30T17:00 "
                    "2026-09-01..2026-09-30\n"
                    "duty:monthly_summary:it-2026:2026-autumn:2026-10 2026-10-30T17:00 "
                    "2026-10-01..2026-10-30\n"
                    "duty:monthly_summary:it-2026:2026-autumn:2026-11 2026-11-30T17:00 "
                    "2026-11-01..2026-11-30\n"
                    "duty:monthly_summary:it-2026:2026-autumn:2026-12 2026-12-31T17:00 "
                    "2026-12-01..2026-12-31\n"
                    "duty:monthly_summary:it-2026:2026-autumn:2027-01 2027-01-22T17:00 "
                    "2027-01-01..2027-01-22\n"
                    /* the reports upward */
                    "duty:school_monthly_report:it-2026:2026-autumn:2026-09 2026-09-30T17:00 "
                    "2026-09-01..2026-09-30\n"
                    "duty:school_monthly_report:it-2026:2026-autumn:2026-10 2026-10-30T17:00 "
                    "2026-10-01..2026-10-30\n"
                    "duty:school_monthly_report:it-2026:2026-autumn:2026-11 2026-11-30T17:00 "
                    "2026-11-01..2026-11-30\n"
                    "duty:school_monthly_report:it-2026:2026-autumn:2026-12 2026-12-31T17:00 "
                    "2026-12-01..2026-12-31\n"
                    "duty:school_monthly_report:it-2026:2026-autumn:2027-01 2027-01-22T17:00 "
                    "2027-01-01..2027-01-22\n"
                    "duty:county_quarterly_report:it-2026:2026-autumn:2026-Q3 2026-09-30T17:00 "
                    "2026-07-01..2026-09-30\n"
                    "duty:county_quarterly_report:it-2026:2026-autumn:2026-Q4 2026-12-31T17:00 "
                    "2026-10-01..2026-12-31\n"
                    "duty:city_term_report:it-2026:2026-autumn 2027-01-22T17:00 "
                    "2026-09-01..2027-01-22\n");
    char payload[512];
    REQUIRE(duty_payload(&plan[0], "it-2026", "2026-autumn", payload, sizeof(payload)) == BX_OK);
    CHECK_STR(payload, "{\"duty\":\"term_start\",\"calendar_id\":\"it-2026\",\"term\":"
                       "\"2026-autumn\",\"first_day\":\"2026-09-01\",\"last_day\":\"2026-09-14\"}");
    CHECK(duty_payload(&plan[0], "it-2026", "2026-autumn", payload, 20) == BX_ENOMEM);
    /* a term that is not a transition term has no transition check; a short term's checks fall
     * on its last school day */
    n = duties_plan(duties(), calendar(), "it-2026", "2026-winter", D("2026-09-01"),
                    D("2026-09-08"), plan, DUTIES_PER_TERM);
    /* and the school's report of September, the county's of the third quarter (it ends within
     * a month of the term) and the city's of the term */
    CHECK_INT(n, 6);
    CHECK_STR(plan[0].key, "duty:term_start:it-2026:2026-winter");
    CHECK_INT(plan[0].last_day, D("2026-09-08"));
    CHECK_STR(plan[1].key, "duty:out_of_school_report:it-2026:2026-winter");
    CHECK_STR(plan[2].key, "duty:monthly_summary:it-2026:2026-winter:2026-09");
    CHECK_STR(plan[3].key, "duty:school_monthly_report:it-2026:2026-winter:2026-09");
    CHECK_STR(plan[4].key, "duty:county_quarterly_report:it-2026:2026-winter:2026-Q3");
    CHECK_INT(plan[4].last_day, D("2026-09-08"));
    CHECK_STR(plan[5].key, "duty:city_term_report:it-2026:2026-winter");
    /* the plan is bounded by max */
    CHECK_INT(duties_plan(duties(), calendar(), "it-2026", "2026-autumn", D("2026-09-01"),
                          D("2027-01-22"), plan, 2),
              2);
}

/* Issue 15, item 7: the reports upward (四个一) of a school year's two terms: the schools' month
 * on its last school day in the term, the counties' quarter on the calendar's last school day of
 * the quarter, planned by the term that holds it, the cities' term on its last school day, the
 * provinces' school year on the last school day of the spring term, from the autumn term's first
 * day. Rows: the term, then each report planned as "<key> <due> <first>..<last> <period>". */
BX_TEST(duties_reports_upward_of_a_school_year)
{
    bx_calendar *cal = bx_calendar_new();
    REQUIRE(cal != NULL);
    bx_error err = {0};
    REQUIRE(bx_calendar_add_term(cal, "2026-autumn", D("2026-09-01"), D("2027-01-22"), &err) ==
            BX_OK);
    REQUIRE(bx_calendar_add_term(cal, "2027-spring", D("2027-02-22"), D("2027-07-02"), &err) ==
            BX_OK);
    /* the spring term ends on a Friday; June's end is a school day; 2027-04-05 清明 is not */
    REQUIRE(bx_calendar_set_day(cal, D("2027-04-05"), BX_DAY_HOLIDAY) == BX_OK);
    static const struct {
        const char *term, *first, *last;
        int months;
        const char *want;
    } rows[] = {
        {"2026-autumn", "2026-09-01", "2027-01-22", 5,
         "duty:county_quarterly_report:it:2026-autumn:2026-Q3 2026-09-30T17:00 "
         "2026-07-01..2026-09-30 2026-Q3\n"
         "duty:county_quarterly_report:it:2026-autumn:2026-Q4 2026-12-31T17:00 "
         "2026-10-01..2026-12-31 2026-Q4\n"
         "duty:city_term_report:it:2026-autumn 2027-01-22T17:00 2026-09-01..2027-01-22 "
         "2026-autumn\n"},
        /* the first quarter ends in spring (03-31), the second too (06-30); the third ends in
         * the next autumn term, not this one; the year runs from the autumn term's first day */
        {"2027-spring", "2027-02-22", "2027-07-02", 6,
         "duty:county_quarterly_report:it:2027-spring:2027-Q1 2027-03-31T17:00 "
         "2027-01-01..2027-03-31 2027-Q1\n"
         "duty:county_quarterly_report:it:2027-spring:2027-Q2 2027-06-30T17:00 "
         "2027-04-01..2027-06-30 2027-Q2\n"
         "duty:city_term_report:it:2027-spring 2027-07-02T17:00 2027-02-22..2027-07-02 "
         "2027-spring\n"
         "duty:province_yearly_report:it:2027-spring:2026-2027 2027-07-02T17:00 "
         "2026-09-01..2027-07-02 2026-2027\n"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        duty plan[DUTIES_PER_TERM];
        int n = duties_plan(duties(), cal, "it", rows[i].term, D(rows[i].first), D(rows[i].last),
                            plan, DUTIES_PER_TERM);
        char text[2048] = "";
        size_t used = 0;
        int months = 0;
        for (int k = 0; k < n; k++) {
            months += plan[k].kind == DUTY_SCHOOL_MONTHLY;
            if (plan[k].kind < DUTY_COUNTY_QUARTERLY)
                continue;
            char due[32], first[11], last[11];
            fmt_time(plan[k].due_at, due);
            bx_date_format(plan[k].first_day, first);
            bx_date_format(plan[k].last_day, last);
            used += (size_t)snprintf(text + used, sizeof(text) - used, "%s %s %s..%s %s\n",
                                     plan[k].key, due, first, last, plan[k].period);
        }
        CHECK_STR(text, rows[i].want);
        CHECK_INT(months, rows[i].months); /* Sep..Jan; Feb..Jul */
    }
    /* the spring term's school report of July covers 07-01..07-02 */
    duty plan[DUTIES_PER_TERM];
    int n = duties_plan(duties(), cal, "it", "2027-spring", D("2027-02-22"), D("2027-07-02"), plan,
                        DUTIES_PER_TERM);
    char payload[512] = "";
    for (int k = 0; k < n; k++)
        if (strcmp(plan[k].key, "duty:school_monthly_report:it:2027-spring:2027-07") == 0)
            REQUIRE(duty_payload(&plan[k], "it", "2027-spring", payload, sizeof(payload)) == BX_OK);
    CHECK_STR(payload, "{\"duty\":\"school_monthly_report\",\"calendar_id\":\"it\",\"term\":"
                       "\"2027-spring\",\"first_day\":\"2027-07-01\",\"last_day\":\"2027-07-02\","
                       "\"period\":\"2027-07\"}");
    CHECK_INT(duty_kind_parse("province_yearly_report"), DUTY_PROVINCE_YEARLY);
    bx_calendar_free(cal);

    /* the settings: the default names the offices; all five or none; bad values named */
    const duties_policy *p = duties();
    CHECK(p->upward);
    CHECK_STR(p->up_role[0], "academic_office");
    CHECK_STR(p->up_template[0], "school_monthly_report");
    CHECK_STR(p->up_role[1], "county_officer");
    CHECK_STR(p->up_role[2], "city_officer");
    CHECK_STR(p->up_template[2], "");
    CHECK_STR(p->year_ends, "spring");
    const char *base = "duties.time = 17:00\nterm_start.check_after = 10 school days\n"
                       "term_start.stage = none\ntransition.terms = autumn\n"
                       "transition.check_after = 10 school days\ntransition.from_grades = 6\n"
                       "transition.into_grades = 1\nout_of_school_report.after = 15 school days\n"
                       "out_of_school_report.notify = county_officer out_of_school_report\n"
                       "monthly_summary.notify = county_officer monthly_summary\n";
    duties_policy q;
    REQUIRE(duties_policy_parse(base, strlen(base), "d.policy", &q, &err) == BX_OK);
    CHECK(!q.upward);
    CHECK_INT(duties_plan(&q, calendar(), "it-2026", "2026-autumn", D("2026-09-01"),
                          D("2027-01-22"), plan, DUTIES_PER_TERM),
              8);
    static const struct {
        const char *line, *error;
    } bad[] = {
        {"upward.year_ends = spring\n", "go together"},
        {"upward.city_term = city_officer city_report\n",
         "d.policy:11: upward.city_term: expected \"<role> <template|none>\""},
        {"upward.school_monthly = mayor none\n", "d.policy:11: upward.school_monthly: expected"},
        {"upward.county_quarterly = county_officer\n",
         "d.policy:11: upward.county_quarterly: expected"},
    };
    for (size_t i = 0; i < COUNT(bad); i++) {
        char text[1024];
        snprintf(text, sizeof(text), "%s%s", base, bad[i].line);
        CHECK_INT(duties_policy_parse(text, strlen(text), "d.policy", &q, &err), BX_EINVAL);
        CHECK_CONTAINS(err.msg, bad[i].error);
    }
}

/* Issue 15: a school day's roll-call checks, at 10:00 (the homeroom teacher) and at the day's end
 * (the principal, and the academic office for two days in a row); none on a day without school
 * or outside the term, nor when the policy leaves them out. */
BX_TEST(duties_rollcall_checks_of_a_school_day)
{
    const duties_policy *p = duties();
    CHECK_INT(p->remind_minute, 10 * 60);
    CHECK_STR(p->remind_role, "homeroom_teacher");
    CHECK_STR(p->remind_template, "rollcall_reminder");
    CHECK_STR(p->eod_role, "principal");
    CHECK_STR(p->two_days_role, "academic_office");
    static const struct {
        const char *day;
        int n;
    } rows[] = {
        {"2026-09-28", 2}, /* a Monday */
        {"2026-10-10", 2}, /* the make-up Saturday */
        {"2026-10-03", 0}, /* National Day */
        {"2026-09-27", 0}, /* a Sunday */
        {"2026-08-31", 0}, /* before the term */
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        duty d[DUTIES_PER_DAY];
        int n = duties_plan_day(p, calendar(), "it-2026", "2026-autumn", D("2026-09-01"),
                                D("2027-01-22"), D(rows[i].day), d, DUTIES_PER_DAY);
        CHECK_INT(n, rows[i].n);
        if (n != 2)
            continue;
        char key[120], due[32];
        snprintf(key, sizeof(key), "duty:rollcall_morning:it-2026:2026-autumn:%s", rows[i].day);
        CHECK_STR(d[0].key, key);
        fmt_time(d[0].due_at, due);
        CHECK(strncmp(due + 11, "10:00", 5) == 0);
        CHECK_INT(d[0].first_day, D(rows[i].day));
        CHECK_INT(d[0].last_day, D(rows[i].day));
        snprintf(key, sizeof(key), "duty:rollcall_end:it-2026:2026-autumn:%s", rows[i].day);
        CHECK_STR(d[1].key, key);
        fmt_time(d[1].due_at, due);
        CHECK(strncmp(due + 11, "17:00", 5) == 0);
        CHECK_INT(duty_kind_parse("rollcall_end"), DUTY_ROLLCALL_END);
    }
    /* left out: none; given in part: refused */
    const char *base = "duties.time = 17:00\nterm_start.check_after = 10 school days\n"
                       "term_start.stage = none\ntransition.terms = autumn\n"
                       "transition.check_after = 10 school days\ntransition.from_grades = 6\n"
                       "transition.into_grades = 1\nout_of_school_report.after = 15 school days\n"
                       "out_of_school_report.notify = county_officer out_of_school_report\n"
                       "monthly_summary.notify = county_officer monthly_summary\n";
    duties_policy q;
    bx_error err = {0};
    REQUIRE(duties_policy_parse(base, strlen(base), "d.policy", &q, &err) == BX_OK);
    CHECK_INT(q.remind_minute, -1);
    duty d[DUTIES_PER_DAY];
    CHECK_INT(duties_plan_day(&q, calendar(), "it-2026", "2026-autumn", D("2026-09-01"),
                              D("2027-01-22"), D("2026-09-28"), d, DUTIES_PER_DAY),
              0);
    char part[1024];
    snprintf(part, sizeof(part), "%srollcall.remind_time = 10:00\n", base);
    CHECK_INT(duties_policy_parse(part, strlen(part), "d.policy", &q, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "go together");
    snprintf(part, sizeof(part), "%srollcall.remind = mayor rollcall_reminder\n", base);
    CHECK_INT(duties_policy_parse(part, strlen(part), "d.policy", &q, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "d.policy:11: rollcall.remind: expected");
}

/* Issue 15: the roll-call checks of school days a clock jump (or a stopped bx-escalate) passed
 * are caught up, the last DUTIES_CATCH_UP of them, inside the term; none when no day ever had
 * them. Rows: the last day that had its checks, today, the days caught up and those left out. */
BX_TEST(duties_rollcall_checks_catch_up_missed_days)
{
    static const struct {
        const char *last_scheduled, *today, *want;
        int skipped;
    } rows[] = {
        {"2026-09-28", "2026-09-29", "", 0},                  /* the next day: none */
        {"2026-09-28", "2026-09-28", "", 0},                  /* a restart the same day */
        {"2026-09-28", "2026-10-09", "09-29 09-30 10-08", 0}, /* across National Day */
        {"2026-09-28", "2026-10-12", "09-29 09-30 10-08 10-09 10-10", 0},  /* make-up Saturday */
        {"2026-09-14", "2026-10-12", "09-29 09-30 10-08 10-09 10-10", 10}, /* 5 at most */
        {"2026-09-28", "2026-10-11", "09-29 09-30 10-08 10-09 10-10", 0},  /* today a Sunday */
        {"-", "2026-10-12", "", 0},                     /* nothing was ever scheduled */
        {"2026-08-20", "2026-09-03", "09-01 09-02", 0}, /* not before the term */
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_date days[DUTIES_CATCH_UP];
        int skipped = -1;
        bx_date last = rows[i].last_scheduled[0] == '-' ? BX_DATE_NONE : D(rows[i].last_scheduled);
        int n = duties_catch_up_days(calendar(), D("2026-09-01"), D("2027-01-22"), last,
                                     D(rows[i].today), days, DUTIES_CATCH_UP, &skipped);
        char got[128] = "";
        size_t used = 0;
        for (int k = 0; k < n; k++) {
            char ymd[11];
            bx_date_format(days[k], ymd);
            used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%s", k ? " " : "", ymd + 5);
        }
        if (strcmp(got, rows[i].want) != 0 || skipped != rows[i].skipped)
            BX_FAIL_AT("%s..%s: got \"%s\" (%d left out), expected \"%s\" (%d)",
                       rows[i].last_scheduled, rows[i].today, got, skipped, rows[i].want,
                       rows[i].skipped);
    }
    /* the settings: the default asks the principal and the academic office; they need rollcall.* */
    const duties_policy *p = duties();
    CHECK_STR(p->missed_role, "principal");
    CHECK_STR(p->missed_template, "rollcall_missed");
    CHECK_STR(p->missed_two_role, "academic_office");
    CHECK_STR(p->missed_two_template, "rollcall_missed_two_days");
    const char *base = "duties.time = 17:00\nterm_start.check_after = 10 school days\n"
                       "term_start.stage = none\ntransition.terms = autumn\n"
                       "transition.check_after = 10 school days\ntransition.from_grades = 6\n"
                       "transition.into_grades = 1\nout_of_school_report.after = 15 school days\n"
                       "out_of_school_report.notify = county_officer out_of_school_report\n"
                       "monthly_summary.notify = county_officer monthly_summary\n";
    char text[1024];
    snprintf(text, sizeof(text), "%srollcall.missed_day = principal rollcall_missed\n", base);
    duties_policy q;
    bx_error err = {0};
    CHECK_INT(duties_policy_parse(text, strlen(text), "d.policy", &q, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "need the rollcall.* checks");
}

BX_TEST(duties_policy_errors_name_file_line_and_setting)
{
    static const struct {
        const char *text, *error;
    } cases[] = {
        {"duties.time = 25:00\n", "d.policy:1: duties.time: expected a time HH:MM"},
        {"# c\nterm_start.check_after = 10 days\n",
         "d.policy:2: term_start.check_after: expected 1..60 school days"},
        {"term_start.check_after = 0 school days\n",
         "d.policy:1: term_start.check_after: expected 1..60 school days"},
        {"transition.from_grades = 6, 10\n",
         "d.policy:1: transition.from_grades: expected grades 1..9, comma separated (at most 4)"},
        {"out_of_school_report.notify = mayor out_of_school_report\n",
         "d.policy:1: out_of_school_report.notify: expected \"<staff role> <template>\""},
        {"term_start.stage = Contact\n",
         "d.policy:1: term_start.stage: expected a stage name or none"},
        {"duties.when = 17:00\n", "d.policy:1: unknown setting duties.when"},
        {"duties.time = 17:00\nduties.time = 18:00\n",
         "d.policy:2: duties.time set twice (first on line 1)"},
        {"duties.time 17:00\n", "d.policy:1: expected \"name = value\", got \"duties.time 17:00\""},
        {"duties.time = 17:00\n", "d.policy: term_start.check_after is missing"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        duties_policy p;
        memset(&p, 0x5a, sizeof(p));
        bx_error err = {0};
        bx_status s =
            duties_policy_parse(cases[i].text, strlen(cases[i].text), "d.policy", &p, &err);
        CHECK(s == BX_EINVAL);
        CHECK_STR(err.msg, cases[i].error);
        CHECK_INT(p.minute, 0x5a5a5a5a); /* all or nothing */
    }
}

/* ---- the stored case state (state_json.h) ---- */

/* The default policy's settings again as an operator might edit them: named `name`, the lines
 * starting with first[0], first[1], ... moved ahead in that order (stages and task rules are
 * numbered as the file first names them), the lines starting with drop (NULL: none) left out. */
static const ladder_policy *edited_policy(const char *name, const char *const *first, size_t nfirst,
                                          const char *drop)
{
    static ladder_policy p[4];
    static int n;
    static char text[65536], out[65536];
    REQUIRE(n < 4);
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/ladder.policy", src ? src : ".");
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    REQUIRE(len > 0 && len < sizeof(text) - 1);
    text[len] = '\0';
    size_t used = (size_t)snprintf(out, sizeof(out), "ladder.name = %s\n", name);
    for (size_t k = 0; k <= nfirst; k++) {
        for (const char *line = text; *line != '\0';) {
            const char *nl = strchr(line, '\n');
            size_t size = nl ? (size_t)(nl - line) + 1 : strlen(line);
            bool mine = k < nfirst && strncmp(line, first[k], strlen(first[k])) == 0;
            for (size_t j = 0; k == nfirst && j < nfirst; j++)
                mine = mine || strncmp(line, first[j], strlen(first[j])) == 0;
            bool setting = *line != '#' && *line != '\n' && strncmp(line, "ladder.name", 11) != 0;
            bool dropped = drop != NULL && strncmp(line, drop, strlen(drop)) == 0;
            if (setting && !dropped && (k < nfirst ? mine : !mine)) {
                REQUIRE(used + size < sizeof(out));
                memcpy(out + used, line, size);
                used += size;
            }
            line += size;
        }
    }
    bx_error err = {0};
    if (ladder_policy_parse(out, used, "edited.policy", &p[n], &err) != BX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        REQUIRE(!"edited policy loads");
    }
    return &p[n++];
}

/* A case well up the ladder: the contact task's deadline passes (overdue, escalated, cancelled as
 * the home visit follows), a bulk upload at 10 days enters four more stages late, the return
 * notice is delivered (a wait for the deadline notice). */
static void rich_case(void)
{
    start(policy());
    assess("2026-09-24 09:00", 1, "2026-09-24", 0);
    fire("contact_family"); /* overdue, escalated, cancelled as the home visit follows */
    assess("2026-10-12 09:00", 10, "2026-09-24", 0);
    letter("return_notice", "2026-10-13 10:00");
    int entered = 0, waits = 0, escalated = 0, kinds = 0;
    for (int i = 0; i < LADDER_STAGES_MAX; i++)
        entered += state.stages[i].entered_at != 0;
    for (int i = 0; i < state.ntasks; i++) {
        waits += state.tasks[i].rule < 0 && state.tasks[i].wait_stage >= 0;
        escalated += state.tasks[i].escalated;
        bool new_kind = state.tasks[i].rule >= 0;
        for (int j = 0; j < i && new_kind; j++)
            new_kind = state.tasks[j].rule != state.tasks[i].rule;
        kinds += new_kind;
    }
    REQUIRE(entered == 6 && waits == 1 && escalated >= 1 && kinds >= 8);
    REQUIRE(state.stage == ladder_policy_stage(policy(), "township_notice"));
}

static const char *stage_of(const ladder_policy *p, int i)
{
    return i >= 0 ? p->stages[i].name : "-";
}

static const char *kind_of(const ladder_policy *p, int i)
{
    return i >= 0 ? p->task_rules[i].kind : "-";
}

static void encode(const ladder_policy *p, const case_state *s, bx_buf *out)
{
    bx_error err = {0};
    bx_buf_init(out, 1 << 20);
    if (state_json_encode(p, s, out, &err) != BX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        REQUIRE(!"state encodes");
    }
}

BX_TEST(case_state_round_trips_through_json)
{
    rich_case();
    const ladder_policy *p = policy();
    bx_buf a, b;
    encode(p, &state, &a);
    /* names, never indices; only the stages entered */
    CHECK_CONTAINS(a.data,
                   "{\"v\":2,\"student_id\":\"stu-0001\",\"case_id\":\"stu-0001:20260924\"");
    CHECK_CONTAINS(a.data, "\"stage\":\"township_notice\",\"stages\":{\"contact_family\":[");
    CHECK_CONTAINS(a.data, ",\"township_notice\":[");
    CHECK(strstr(a.data, "\"deadline_notice\":[") == NULL);
    CHECK_CONTAINS(a.data, "\"stu-0001:20260924:township_notice:wait_deadline_notice:2026-10-20\","
                           "null,\"township_notice\",\"deadline_notice\",");
    CHECK_CONTAINS(a.data, ",\"persuasion_record\",null,null,");
    static case_state back;
    bx_error err = {0};
    REQUIRE(state_json_decode(p, a.data, a.len, &back, &err) == BX_OK);
    encode(p, &back, &b);
    CHECK_STR(b.data, a.data);
    CHECK_STR(back.case_id, state.case_id);
    CHECK_INT(back.stage, state.stage);
    for (int i = 0; i < LADDER_STAGES_MAX; i++) {
        CHECK_INT(back.stages[i].entered_at, state.stages[i].entered_at);
        CHECK_INT(back.stages[i].late, state.stages[i].late);
    }
    REQUIRE(back.ntasks == state.ntasks);
    for (int i = 0; i < state.ntasks; i++) {
        const ladder_task *x = &state.tasks[i], *y = &back.tasks[i];
        CHECK_STR(y->key, x->key);
        CHECK_INT(y->rule, x->rule);
        CHECK_INT(y->stage, x->stage);
        CHECK_INT(y->wait_stage, x->wait_stage);
        CHECK_INT(y->created_at, x->created_at);
        CHECK_INT(y->window_start, x->window_start);
        CHECK_INT(y->due_at, x->due_at);
        CHECK_INT(y->state, x->state);
        CHECK_INT(y->escalated, x->escalated);
    }
    CHECK_INT(back.seq, state.seq);
    CHECK_INT(back.applied_next, state.applied_next);
    CHECK_STR(back.applied[0], state.applied[0]);
    bx_buf_free(&a);
    bx_buf_free(&b);
}

/* An operator reorders the policy while the case is open: task rules in reverse, the two stages
 * opened by a wait first. The stored state names the same stages and task kinds, now at other
 * indices. */
BX_TEST(case_state_keeps_its_names_when_the_policy_is_reordered)
{
    rich_case();
    const ladder_policy *p = policy();
    static char prefixes[LADDER_TASK_RULES_MAX + 2][LADDER_NAME_SIZE + 8];
    const char *first[LADDER_TASK_RULES_MAX + 2];
    size_t nfirst = 0;
    for (int i = p->ntask_rules - 1; i >= 0; i--)
        snprintf(prefixes[nfirst++], sizeof(prefixes[0]), "task.%s.", p->task_rules[i].kind);
    snprintf(prefixes[nfirst++], sizeof(prefixes[0]), "stage.legal_referral.");
    snprintf(prefixes[nfirst++], sizeof(prefixes[0]), "stage.deadline_notice.");
    for (size_t i = 0; i < nfirst; i++)
        first[i] = prefixes[i];
    const ladder_policy *q = edited_policy("reordered", first, nfirst, NULL);
    REQUIRE(q->nstages == p->nstages && q->ntask_rules == p->ntask_rules);
    CHECK_STR(q->stages[0].name, "legal_referral");
    CHECK_STR(q->stages[7].name, "township_notice");
    CHECK_STR(q->task_rules[0].kind, p->task_rules[p->ntask_rules - 1].kind);

    bx_buf a;
    encode(p, &state, &a);
    static case_state back;
    bx_error err = {0};
    REQUIRE(state_json_decode(q, a.data, a.len, &back, &err) == BX_OK);
    CHECK(back.stage != state.stage); /* a decoder taking indices would be caught here */
    CHECK_STR(stage_of(q, back.stage), "township_notice");
    for (int i = 0; i < p->nstages; i++) {
        int j = ladder_policy_stage(q, p->stages[i].name);
        REQUIRE(j >= 0);
        CHECK_INT(back.stages[j].entered_at, state.stages[i].entered_at);
        CHECK_INT(back.stages[j].late, state.stages[i].late);
    }
    REQUIRE(back.ntasks == state.ntasks);
    int moved = 0;
    for (int i = 0; i < state.ntasks; i++) {
        const ladder_task *x = &state.tasks[i], *y = &back.tasks[i];
        CHECK_STR(y->key, x->key);
        CHECK_STR(kind_of(q, y->rule), kind_of(p, x->rule));
        CHECK_STR(stage_of(q, y->stage), stage_of(p, x->stage));
        CHECK_STR(stage_of(q, y->wait_stage), stage_of(p, x->wait_stage));
        moved += y->rule != x->rule;
    }
    CHECK(moved > 0);
    /* written again under the new policy, it still decodes there to the same */
    bx_buf b;
    encode(q, &back, &b);
    static case_state again;
    REQUIRE(state_json_decode(q, b.data, b.len, &again, &err) == BX_OK);
    CHECK_INT(again.stage, back.stage);
    CHECK_INT(again.tasks[0].rule, back.tasks[0].rule);
    bx_buf_free(&a);
    bx_buf_free(&b);
}

/* An operator removes a stage or a task kind while cases are open: a state naming it is refused,
 * naming the case and what is missing, and the output is left as it was. */
BX_TEST(case_state_naming_what_the_policy_lost_is_refused)
{
    rich_case();
    int wait = -1, record = -1;
    for (int i = 0; i < state.ntasks; i++) {
        if (state.tasks[i].rule < 0)
            wait = i;
        else if (strcmp(policy()->task_rules[state.tasks[i].rule].kind, "persuasion_record") == 0)
            record = i;
    }
    REQUIRE(wait >= 0 && record >= 0);
    bx_buf a;
    encode(policy(), &state, &a);
    static const char *const tail = "is not in ladder policy \"county_default\"; the policy was "
                                    "edited while this case was open";
    static char errors[3][512];
    snprintf(errors[0], sizeof(errors[0]),
             "case state of stu-0001:20260924: stage "
             "\"township_notice\" %s",
             tail);
    snprintf(errors[1], sizeof(errors[1]),
             "case state of stu-0001:20260924: tasks[%d]: wait "
             "stage \"deadline_notice\" %s",
             wait, tail);
    snprintf(errors[2], sizeof(errors[2]),
             "case state of stu-0001:20260924: tasks[%d]: task "
             "kind \"persuasion_record\" %s",
             record, tail);
    const char *drops[3] = {"stage.township_notice.", "stage.deadline_notice.",
                            "task.persuasion_record."};
    static case_state out;
    for (int i = 0; i < 3; i++) {
        const ladder_policy *q = edited_policy("county_default", NULL, 0, drops[i]);
        memset(&out, 0x5a, sizeof(out));
        bx_error err = {0};
        CHECK_INT(state_json_decode(q, a.data, a.len, &out, &err), BX_EINVAL);
        CHECK_STR(err.msg, errors[i]);
        CHECK_INT(out.stage, 0x5a5a5a5a);
    }
    bx_buf_free(&a);
}

/* A stored version 1 state with the first task's rule and stage as given (24 and 8 are one past
 * task_rules[] and stages[]). */
static void state_text(int rule, int stage, char *out, size_t size)
{
    snprintf(out, size,
             "{\"v\":1,\"student_id\":\"S10010301\",\"case_id\":\"case-S10010301-2026-11-27\","
             "\"open\":1,\"ending\":0,\"opened_at\":1796000000000,\"closed_at\":0,\"stage\":1,"
             "\"stages\":[[1796000000000,0],[1796000000000,1],[0,0],[0,0],[0,0],[0,0],[0,0],"
             "[0,0]],\"tasks\":[[\"case-S10010301-2026-11-27:contact:0\",%d,%d,-1,"
             "1796000000000,20785,1796100000000,1,0],[\"case-S10010301-2026-11-27:visit:1\",2,1,"
             "-1,1796000000000,20786,1796200000000,2,1]],\"streak_days\":5,\"streak_start\":20780,"
             "\"last_assessed\":20785,\"unexcused_periods\":2,\"home_delivered\":0,"
             "\"suspended_until\":0,\"awaiting_signoff\":0,\"seq\":7,\"applied_next\":2,"
             "\"applied\":[\"ev-1\",\"rc-20261126-1:S10010301\",\"\",\"\",\"\",\"\",\"\",\"\",\"\","
             "\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\","
             "\"\",\"\",\"\",\"\",\"\",\"\"]}",
             rule, stage);
}

/* The same case as version 2, with its current stage, stages entered and first task's kind as
 * given (JSON text). */
static void state_text_v2(const char *stage, const char *stages, const char *kind, char *out,
                          size_t size)
{
    snprintf(out, size,
             "{\"v\":2,\"student_id\":\"S10010301\",\"case_id\":\"case-S10010301-2026-11-27\","
             "\"open\":1,\"ending\":0,\"opened_at\":1796000000000,\"closed_at\":0,\"stage\":%s,"
             "\"stages\":%s,\"tasks\":[[\"case-S10010301-2026-11-27:contact:0\",%s,"
             "\"contact_family\",null,1796000000000,20785,1796100000000,1,0],"
             "[\"case-S10010301-2026-11-27:visit:1\",\"report_to_school\",\"home_visit\",null,"
             "1796000000000,20786,1796200000000,2,1]],\"streak_days\":5,\"streak_start\":20780,"
             "\"last_assessed\":20785,\"unexcused_periods\":2,\"home_delivered\":0,"
             "\"suspended_until\":0,\"awaiting_signoff\":0,\"seq\":7,\"applied_next\":2,"
             "\"applied\":[\"ev-1\",\"rc-20261126-1:S10010301\",\"\",\"\",\"\",\"\",\"\",\"\",\"\","
             "\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\","
             "\"\",\"\",\"\",\"\",\"\",\"\"]}",
             stage, stages, kind);
}

#define STAGES_V2 "{\"contact_family\":[1796000000000,0],\"home_visit\":[1796000000000,1]}"

/* Databases written before version 2 keep working: a version 1 state decodes (its indices taken
 * as they are), is written back as version 2, and that decodes to the same case. */
BX_TEST(case_state_version_1_still_decodes)
{
    const ladder_policy *p = policy();
    char v1[2048], v2[2048];
    state_text(0, 0, v1, sizeof(v1));
    static case_state out, again;
    bx_error err = {0};
    REQUIRE(state_json_decode(p, v1, strlen(v1), &out, &err) == BX_OK);
    CHECK_STR(stage_of(p, out.stage), "home_visit");
    CHECK_INT(out.stages[1].entered_at, 1796000000000);
    CHECK_INT(out.stages[1].late, 1);
    REQUIRE(out.ntasks == 2);
    CHECK_STR(kind_of(p, out.tasks[0].rule), "contact_family");
    CHECK_STR(kind_of(p, out.tasks[1].rule), "report_to_school");
    CHECK_STR(stage_of(p, out.tasks[1].stage), "home_visit");
    CHECK_INT(out.tasks[1].state, LADDER_TASK_DONE);
    CHECK_INT(out.tasks[1].escalated, 1);
    bx_buf b;
    encode(p, &out, &b);
    state_text_v2("\"home_visit\"", STAGES_V2, "\"contact_family\"", v2, sizeof(v2));
    CHECK_STR(b.data, v2);
    REQUIRE(state_json_decode(p, b.data, b.len, &again, &err) == BX_OK);
    CHECK_INT(again.stage, out.stage);
    CHECK_INT(again.tasks[1].rule, out.tasks[1].rule);
    bx_buf_free(&b);
}

/* What the state decoder's fuzz target found (fuzz_state_json): a member missing after opened_at
 * (its value was converted all the same: undefined behaviour), a task rule index one past
 * task_rules[], a task stage one past stages[]; and since version 2, a version 1 index inside the
 * arrays but past the policy's own stages or task rules, and version 2 names and members of the
 * wrong shape. Each is refused, naming the member, and leaves the output as it was; the indices
 * just inside the policy are accepted. */
BX_TEST(case_state_decoder_refuses_what_the_ladder_cannot_index)
{
    const ladder_policy *p = policy();
    REQUIRE(p->ntask_rules < LADDER_TASK_RULES_MAX);
    static char texts[10][2048];
    snprintf(texts[0], sizeof(texts[0]),
             "{\"v\":1,\"student_id\":\"S\",\"case_id\":\"c\","
             "\"open\":1,\"ending\":0,\"opened_at\":1796000000000}");
    state_text(LADDER_TASK_RULES_MAX, 0, texts[1], sizeof(texts[1]));
    state_text(0, LADDER_STAGES_MAX, texts[2], sizeof(texts[2]));
    state_text(p->ntask_rules, 0, texts[3], sizeof(texts[3]));
    state_text_v2("1", STAGES_V2, "\"contact_family\"", texts[4], sizeof(texts[4]));
    state_text_v2("\"home_visit\"", "[]", "\"contact_family\"", texts[5], sizeof(texts[5]));
    state_text_v2("\"home_visit\"", "{\"home_visit\":[0,0]}", "\"contact_family\"", texts[6],
                  sizeof(texts[6]));
    state_text_v2("\"home_visit\"", STAGES_V2, "0", texts[7], sizeof(texts[7]));
    state_text_v2("\"home_visit\"", "{\"Home_visit\":[1796000000000,0]}", "\"contact_family\"",
                  texts[8], sizeof(texts[8]));
    snprintf(texts[9], sizeof(texts[9]), "{\"v\":3}");
    static char policy_rule[200];
    snprintf(policy_rule, sizeof(policy_rule),
             "case state of case-S10010301-2026-11-27: tasks[0]: task rule %d is outside ladder "
             "policy \"default\" (%d task rules)",
             p->ntask_rules, p->ntask_rules);
    const char *const errors[] = {
        "case state: closed_at: expected an integer in range",
        "case state: tasks[]: expected an integer in range",
        "case state: tasks[]: expected an integer in range",
        policy_rule,
        "case state: stage: expected a stage name or null",
        "case state: stages: expected an object of the stages entered",
        "case state: stages{}: expected an integer in range",
        "case state: tasks[0]: task kind: expected a task kind or null",
        "case state of case-S10010301-2026-11-27: stages: stage \"Home_visit\" is not in ladder "
        "policy \"default\"; the policy was edited while this case was open",
        "case state: v: expected 1 or 2"};
    static case_state out;
    for (size_t i = 0; i < COUNT(errors); i++) {
        memset(&out, 0x5a, sizeof(out));
        bx_error err = {0};
        CHECK(state_json_decode(p, texts[i], strlen(texts[i]), &out, &err) == BX_EINVAL);
        CHECK_STR(err.msg, errors[i]);
        CHECK_INT(out.stage, 0x5a5a5a5a);
    }
    char ok[2048];
    state_text(p->ntask_rules - 1, p->nstages - 1, ok, sizeof(ok));
    bx_error err = {0};
    CHECK(state_json_decode(p, ok, strlen(ok), &out, &err) == BX_OK);
    CHECK_INT(out.tasks[0].rule, p->ntask_rules - 1);
    CHECK_INT(out.tasks[0].stage, p->nstages - 1);
    state_text_v2("null", "{}", "null", ok, sizeof(ok));
    CHECK(state_json_decode(p, ok, strlen(ok), &out, &err) == BX_OK);
    CHECK_INT(out.stage, -1);
    CHECK_INT(out.stages[0].entered_at, 0);
    CHECK_INT(out.tasks[0].rule, -1);
}
