/* ladder: one pure transition of a 控辍保学 case per input (rules in ladder.h). */
#include "ladder.h"

#include "bx_name.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ACTOR_SELF "bx-escalate"

const char *const ladder_stage_names[LADDER_STAGES_MAX] = {
    "contact_family", "home_visit",      "school_report",   "academic_office",
    "dropout_roster", "township_notice", "deadline_notice", "legal_referral"};

static const char *const ending_names[] = {
    [LADDER_END_RETURNED] = "returned",
    [LADDER_END_TRANSFERRED] = "transferred",
    [LADDER_END_GRADUATED] = "graduated",
    [LADDER_END_OBLIGATION_ENDED] = "obligation_ended",
};

const char *ladder_ending_name(ladder_ending e)
{
    return bx_name_of(ending_names, BX_NAMES_COUNT(ending_names), (int)e, NULL);
}

const char *ladder_stage_name(const ladder_policy *p, int stage)
{
    return stage >= 0 && stage < p->nstages ? p->stages[stage].name : NULL;
}

static const char *const event_names[] = {
    [LADDER_EV_OPENED] = "opened",
    [LADDER_EV_STAGE_ENTERED] = "stage_entered",
    [LADDER_EV_TASK_CREATED] = "task_created",
    [LADDER_EV_TASK_DONE] = "task_done",
    [LADDER_EV_TASK_OVERDUE] = "task_overdue",
    [LADDER_EV_ESCALATED] = "escalated",
    [LADDER_EV_NOTE] = "note",
    [LADDER_EV_CLOSED] = "closed",
};

const char *ladder_event_name(ladder_event_kind k)
{
    return bx_name_of(event_names, BX_NAMES_COUNT(event_names), (int)k, NULL);
}

int ladder_policy_stage(const ladder_policy *p, const char *name)
{
    for (int i = 0; i < p->nstages; i++) {
        if (strcmp(p->stages[i].name, name) == 0)
            return i;
    }
    return -1;
}

int ladder_policy_task(const ladder_policy *p, const char *kind)
{
    for (int i = 0; i < p->ntask_rules; i++) {
        if (strcmp(p->task_rules[i].kind, kind) == 0)
            return i;
    }
    return -1;
}

static bool id_ok(const char *s, size_t max, bool colon)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (colon && (c == '.' || c == ':'));
        if (!ok)
            return false;
    }
    return true;
}

bx_status case_state_init(case_state *s, const char *student_id, bx_error *err)
{
    if (student_id == NULL || !id_ok(student_id, 32, false))
        return BX_ERR(err, BX_EINVAL, "student_id: expected 1..32 of [A-Za-z0-9_-]");
    memset(s, 0, sizeof(*s));
    snprintf(s->student_id, sizeof(s->student_id), "%s", student_id);
    s->stage = -1;
    s->streak_start = BX_DATE_NONE;
    s->last_assessed = BX_DATE_NONE;
    s->suspended_until = BX_DATE_NONE;
    return BX_OK;
}

/* ---- deadlines ---- */

static bx_date add_months(bx_date d, int n)
{
    int y, m, day;
    bx_date_to_ymd(d, &y, &m, &day);
    int months = y * 12 + (m - 1) + n;
    int ny = months / 12, nm = months % 12 + 1;
    bx_date last = bx_date_from_ymd(nm == 12 ? ny + 1 : ny, nm == 12 ? 1 : nm + 1, 0);
    int ly, lm, ld;
    bx_date_to_ymd(last, &ly, &lm, &ld);
    return bx_date_from_ymd(ny, nm, day < ld ? day : ld);
}

static bx_time_ms at_deadline_time(const ladder_policy *p, bx_date d)
{
    return bx_time_from_local(d, p->deadline_minute / 60, p->deadline_minute % 60);
}

/* d, or the next school day after it when it is none by the calendar (a date the calendar does
 * not cover stays). */
static bx_date school_day_on_or_after(const bx_calendar *cal, bx_date d)
{
    bx_date sd = bx_calendar_add_school_days(cal, d, 0);
    return sd == BX_DATE_NONE ? d : sd;
}

bx_time_ms ladder_due(const ladder_policy *p, const bx_calendar *cal, ladder_span span,
                      bx_time_ms t)
{
    bx_date d = bx_time_local_date(t);
    bx_time_ms due;
    switch (span.unit) {
    case LADDER_UNIT_HOURS:
        return t + (bx_time_ms)span.n * 3600 * 1000;
    case LADDER_UNIT_SCHOOL_DAYS: {
        bx_date sd = bx_calendar_add_school_days(cal, d, span.n);
        if (sd == BX_DATE_NONE)
            sd = d + (span.n > 0 ? span.n : 0);
        due = at_deadline_time(p, sd);
        if (due <= t) {
            bx_date next = bx_calendar_add_school_days(cal, sd, 1);
            due = at_deadline_time(p, next == BX_DATE_NONE ? sd + 1 : next);
        }
        return due;
    }
    case LADDER_UNIT_MONTHS:
        due = at_deadline_time(p, school_day_on_or_after(cal, add_months(d, span.n)));
        break;
    case LADDER_UNIT_DAYS:
    default:
        due = at_deadline_time(p, school_day_on_or_after(cal, d + span.n));
        break;
    }
    if (due <= t)
        due = at_deadline_time(p, school_day_on_or_after(cal, bx_time_local_date(due) + 1));
    return due;
}

/* ---- the working context of one step ---- */

typedef struct step {
    const ladder_policy *p;
    const bx_calendar *cal;
    const ladder_input *in;
    case_state *s;
    ladder_effects *fx;
    const char *actor;
    bx_error *err;
    bx_status status;
} step;

static const char *stage_name(const step *st)
{
    return st->s->stage >= 0 ? st->p->stages[st->s->stage].name : NULL;
}

/* Room for one more effect when count are held: false, with st->status set by the first
 * overflow, when a step already made LADDER_EFFECTS_MAX of them (what names them). */
static bool effect_room(step *st, int count, const char *what)
{
    if (count < LADDER_EFFECTS_MAX)
        return true;
    if (st->status == BX_OK)
        st->status = BX_ERR(st->err, BX_ENOMEM, "%s: more than %d %s in one step", st->s->case_id,
                            LADDER_EFFECTS_MAX, what);
    return false;
}

/* The id of the case's next event or notification: "<case_id>:<tag><seq>", seq counted up. */
static void next_id(step *st, char tag, char *out, size_t size)
{
    st->s->seq++;
    snprintf(out, size, "%s:%c%u", st->s->case_id, tag, (unsigned)st->s->seq);
}

static ladder_event *add_event(step *st, ladder_event_kind kind, bool late, const char *fmt, ...)
    BX_PRINTF(4, 5);

static ladder_event *add_event(step *st, ladder_event_kind kind, bool late, const char *fmt, ...)
{
    if (!effect_room(st, st->fx->nevents, "case events"))
        return NULL;
    ladder_event *e = &st->fx->events[st->fx->nevents++];
    memset(e, 0, sizeof(*e));
    next_id(st, 'e', e->event_id, sizeof(e->event_id));
    e->kind = kind;
    e->stage = stage_name(st);
    e->late = late;
    e->at = st->in->at;
    snprintf(e->actor, sizeof(e->actor), "%s", st->actor);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
    return e;
}

static void task_event(step *st, ladder_event *e, const ladder_task *t)
{
    if (e == NULL)
        return;
    snprintf(e->task_key, sizeof(e->task_key), "%s", t->key);
    if (t->rule >= 0) {
        e->task_kind = st->p->task_rules[t->rule].kind;
        e->owner_role = st->p->task_rules[t->rule].owner_role;
    }
    e->due_at = t->due_at;
}

static void add_timer(step *st, const char *key, bx_time_ms due)
{
    if (!effect_room(st, st->fx->ntimers, "timers"))
        return;
    ladder_timer *t = &st->fx->timers[st->fx->ntimers++];
    snprintf(t->key, sizeof(t->key), "%s", key);
    t->due_at = due;
}

static ladder_notification *add_note(step *st, const char *tmpl, const char *role,
                                     const char *channel)
{
    if (!effect_room(st, st->fx->nnotes, "notifications"))
        return NULL;
    ladder_notification *n = &st->fx->notes[st->fx->nnotes++];
    memset(n, 0, sizeof(*n));
    next_id(st, 'n', n->request_id, sizeof(n->request_id));
    n->template_name = tmpl;
    n->recipient_role = role;
    n->channel = channel;
    n->at = st->in->at;
    return n;
}

static void note_param(ladder_notification *n, const char *name, const char *value)
{
    if (n == NULL || n->nparams >= LADDER_PARAMS_MAX)
        return;
    n->params[n->nparams].name = name;
    snprintf(n->params[n->nparams].value, sizeof(n->params[0].value), "%s", value);
    n->nparams++;
}

static void note_param_int(ladder_notification *n, const char *name, int value)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%d", value);
    note_param(n, name, buf);
}

static void note_param_date(ladder_notification *n, const char *name, bx_date d)
{
    char buf[11];
    bx_date_format(d, buf);
    note_param(n, name, buf);
}

static void case_params(step *st, ladder_notification *n)
{
    note_param(n, "case_id", st->s->case_id);
    if (st->s->stage >= 0)
        note_param(n, "stage", stage_name(st));
    if (st->s->streak_days > 0) {
        note_param_int(n, "streak_days", st->s->streak_days);
        note_param_date(n, "streak_start", st->s->streak_start);
    }
}

/* ---- tasks ---- */

static bool task_live(const ladder_task *t)
{
    return t->state == LADDER_TASK_OPEN || t->state == LADDER_TASK_OVERDUE;
}

/* Frees room by dropping the oldest finished task; false when every slot holds a live task. */
static bool make_room(case_state *s)
{
    if (s->ntasks < LADDER_TASKS_MAX)
        return true;
    for (int i = 0; i < s->ntasks; i++) {
        if (!task_live(&s->tasks[i])) {
            memmove(&s->tasks[i], &s->tasks[i + 1],
                    (size_t)(s->ntasks - i - 1) * sizeof(s->tasks[0]));
            s->ntasks--;
            return true;
        }
    }
    return false;
}

static ladder_task *find_task(case_state *s, const char *key)
{
    for (int i = 0; i < s->ntasks; i++) {
        if (strcmp(s->tasks[i].key, key) == 0)
            return &s->tasks[i];
    }
    return NULL;
}

static ladder_task *new_task(step *st, int rule, int stage, int wait_stage, const char *kind,
                             bx_date window_start, bx_time_ms due)
{
    char key[LADDER_KEY_SIZE], day[11];
    bx_date_format(bx_time_local_date(due), day);
    snprintf(key, sizeof(key), "%s:%s:%s:%s", st->s->case_id,
             stage >= 0 ? st->p->stages[stage].name : "case", kind, day);
    if (find_task(st->s, key) != NULL)
        return NULL; /* the same task on the same day exists: nothing new */
    if (!make_room(st->s)) {
        if (st->status == BX_OK)
            st->status = BX_ERR(st->err, BX_ENOMEM, "%s: more than %d open tasks", st->s->case_id,
                                LADDER_TASKS_MAX);
        return NULL;
    }
    ladder_task *t = &st->s->tasks[st->s->ntasks++];
    memset(t, 0, sizeof(*t));
    snprintf(t->key, sizeof(t->key), "%s", key);
    t->rule = rule;
    t->stage = stage;
    t->wait_stage = wait_stage;
    t->created_at = st->in->at;
    t->window_start = window_start;
    t->due_at = due;
    t->state = LADDER_TASK_OPEN;
    add_timer(st, t->key, due);
    return t;
}

/* base: the input's time, or for a recurrence the previous one's due time (its window then opens
 * the day after). */
static void create_task(step *st, int rule, int stage, bool late, bx_time_ms base, bool recurrence)
{
    const ladder_task_rule *r = &st->p->task_rules[rule];
    bx_time_ms due = ladder_due(st->p, st->cal, r->every.n > 0 ? r->every : r->due, base);
    if (due <= st->in->at)
        due = ladder_due(st->p, st->cal, r->every.n > 0 ? r->every : r->due, st->in->at);
    bx_date window = recurrence ? bx_time_local_date(base) + 1 : bx_time_local_date(st->in->at);
    ladder_task *t = new_task(st, rule, stage, -1, r->kind, window, due);
    if (t == NULL)
        return;
    char when[32];
    bx_time_format(due, when, sizeof(when));
    task_event(st,
               add_event(st, LADDER_EV_TASK_CREATED, late, "%s for %s by %s%s", r->kind,
                         r->owner_role, when, late ? " (stage reached late)" : ""),
               t);
    if (st->p->task_notice[0] != '\0') {
        ladder_notification *n = add_note(st, st->p->task_notice, r->owner_role, "task");
        note_param(n, "case_id", st->s->case_id);
        note_param(n, "task_id", t->key);
        note_param(n, "task", r->kind);
        note_param(n, "due_at", when);
    }
}

/* The missed instances of recurring rule r end superseded by its new instance next. */
static void supersede_missed(step *st, int r, const ladder_task *next)
{
    for (int i = 0; i < st->s->ntasks; i++) {
        ladder_task *t = &st->s->tasks[i];
        if (t != next && t->rule == r && t->state == LADDER_TASK_OVERDUE)
            t->state = LADDER_TASK_SUPERSEDED;
    }
}

/* Recurring tasks that apply and have no live instance get one. */
static void ensure_recurring(step *st)
{
    if (!st->s->open)
        return;
    for (int r = 0; r < st->p->ntask_rules; r++) {
        const ladder_task_rule *tr = &st->p->task_rules[r];
        if (tr->every.n == 0)
            continue;
        if (tr->recur_while == LADDER_WHILE_HOME_DELIVERED && !st->s->home_delivered)
            continue;
        if (tr->from_stage >= 0 && st->s->stage < tr->from_stage)
            continue;
        bool live = false;
        bx_time_ms last_due = 0;
        for (int i = 0; i < st->s->ntasks; i++) {
            const ladder_task *t = &st->s->tasks[i];
            if (t->rule != r)
                continue;
            if (t->state == LADDER_TASK_OPEN)
                live = true; /* an overdue one is missed: the next period starts */
            if (t->due_at > last_due)
                last_due = t->due_at;
        }
        if (live)
            continue;
        int before = st->s->ntasks;
        create_task(st, r, -1, false, last_due > 0 ? last_due : st->in->at, last_due > 0);
        if (st->s->ntasks > before)
            supersede_missed(st, r, &st->s->tasks[st->s->ntasks - 1]);
    }
}

/* ---- stages ---- */

/* Leaving the stages before `to`: their live tasks end cancelled, unless their rule carries over
 * (the store cancels the tasks' timers in the step's transaction). Waits stay: they lead on. */
static void leave_stages(step *st, int to)
{
    for (int k = 0; k < st->s->ntasks; k++) {
        ladder_task *t = &st->s->tasks[k];
        if (task_live(t) && t->rule >= 0 && t->stage >= 0 && t->stage < to &&
            !st->p->task_rules[t->rule].carries_over)
            t->state = LADDER_TASK_CANCELLED;
    }
}

static void enter_stage_passing(step *st, int i, bool late, bool passing, const char *fmt, ...)
    BX_PRINTF(5, 6);

/* Enters stage i; passing: the same step goes on to a later stage, so only the tasks that carry
 * over are made. */
static void enter_stage_passing(step *st, int i, bool late, bool passing, const char *fmt, ...)
{
    const ladder_stage_rule *sr = &st->p->stages[i];
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    leave_stages(st, i);
    st->s->stage = i;
    st->s->stages[i].entered_at = st->in->at;
    st->s->stages[i].late = late;
    add_event(st, LADDER_EV_STAGE_ENTERED, late, "%s", why);
    for (int k = 0; k < sr->ntasks; k++)
        if (!passing || st->p->task_rules[sr->tasks[k]].carries_over)
            create_task(st, sr->tasks[k], i, late, st->in->at, false);
    for (int k = 0; k < sr->nnotify; k++) {
        const ladder_notify_rule *nr = &sr->notify[k];
        ladder_notification *n = add_note(st, nr->template_name, nr->recipient_role, nr->channel);
        case_params(st, n);
    }
}

static void open_case(step *st, bx_date first_day, const char *why)
{
    case_state *s = st->s;
    char ymd[11];
    bx_date_format(first_day, ymd);
    char compact[9] = {ymd[0], ymd[1], ymd[2], ymd[3], ymd[5], ymd[6], ymd[8], ymd[9], '\0'};
    /* a new case after a closed one starts clean but keeps the student and the input ring */
    s->ntasks = 0;
    memset(s->stages, 0, sizeof(s->stages));
    s->stage = -1;
    s->seq = 0;
    s->awaiting_signoff = false;
    s->ending = LADDER_END_NONE;
    s->closed_at = 0;
    snprintf(s->case_id, sizeof(s->case_id), "%s:%s", s->student_id, compact);
    s->open = true;
    s->opened_at = st->in->at;
    add_event(st, LADDER_EV_OPENED, false, "%s", why);
}

static void close_case(step *st, ladder_ending ending, const char *why)
{
    case_state *s = st->s;
    for (int i = 0; i < s->ntasks; i++) {
        if (task_live(&s->tasks[i]))
            s->tasks[i].state = LADDER_TASK_CANCELLED;
    }
    s->open = false;
    s->ending = ending;
    s->closed_at = st->in->at;
    s->awaiting_signoff = false;
    ladder_event *e = add_event(st, LADDER_EV_CLOSED, false, "%s", why);
    if (e != NULL)
        e->ending = ending;
}

/* The stages an assessment reaches, beyond the current one, in policy order. */
static bool reached_by(const ladder_stage_rule *sr, const ladder_input *in, bool *by_streak)
{
    *by_streak = sr->open_streak > 0 && in->streak_days >= sr->open_streak;
    bool by_periods = sr->open_periods > 0 && in->unexcused_periods >= sr->open_periods;
    return *by_streak || by_periods;
}

static void advance_by_assessment(step *st)
{
    const ladder_input *in = st->in;
    int last = -1; /* the furthest stage reached: the ones before it are passed */
    bool by_streak;
    for (int i = st->s->stage + 1; i < st->p->nstages; i++)
        if (reached_by(&st->p->stages[i], in, &by_streak))
            last = i;
    for (int i = st->s->stage + 1; i < st->p->nstages; i++) {
        const ladder_stage_rule *sr = &st->p->stages[i];
        if (!reached_by(sr, in, &by_streak))
            continue;
        bool passing = i < last;
        if (by_streak) {
            bool late = in->streak_days > sr->open_streak;
            char reached[11] = "";
            if (late && in->streak_start != BX_DATE_NONE)
                bx_date_format(
                    bx_calendar_add_school_days(st->cal, in->streak_start, sr->open_streak - 1),
                    reached);
            if (late)
                enter_stage_passing(st, i, true, passing,
                                    "absent %d school days without leave (stage opens at %d, "
                                    "reached %s)",
                                    in->streak_days, sr->open_streak, reached);
            else
                enter_stage_passing(st, i, false, passing, "absent %d school days without leave",
                                    in->streak_days);
        } else {
            enter_stage_passing(st, i, false, passing, "%d unexcused periods on one day",
                                in->unexcused_periods);
        }
    }
}

/* The child was seen (no streak, no unexcused period) while the case, opened by absence, is
 * still before ladder.presence_closes_below and follows nothing else (a transfer, a suspension,
 * home-delivered education). */
static bool presence_closes(const step *st)
{
    const ladder_input *in = st->in;
    const case_state *s = st->s;
    if (!s->open || in->streak_days != 0 || in->unexcused_periods != 0 || s->stage < 0 ||
        s->stage >= st->p->presence_closes_below || s->home_delivered)
        return false;
    for (int i = 0; i < s->ntasks; i++) {
        const ladder_task *t = &s->tasks[i];
        if (task_live(t) && t->rule >= 0 &&
            (t->rule == st->p->transfer_task || t->rule == st->p->suspension_task))
            return false;
    }
    return true;
}

static void on_assessment(step *st)
{
    const ladder_input *in = st->in;
    case_state *s = st->s;
    if (s->suspended_until != BX_DATE_NONE && in->date <= s->suspended_until)
        return; /* an approved suspension: the child is away with papers */
    s->streak_days = in->streak_days;
    s->streak_start = in->streak_days > 0 ? in->streak_start : BX_DATE_NONE;
    s->last_assessed = in->date;
    s->unexcused_periods = in->unexcused_periods;
    if (presence_closes(st)) {
        char day[11], why[200];
        bx_date_format(in->date, day);
        snprintf(why, sizeof(why),
                 "seen at school on %s: closed at %s without a return report (before %s)", day,
                 stage_name(st), st->p->stages[st->p->presence_closes_below].name);
        close_case(st, LADDER_END_RETURNED, why);
        return;
    }
    if (!s->open) {
        bool reaches = false;
        for (int i = 0; i < st->p->nstages && !reaches; i++) {
            const ladder_stage_rule *sr = &st->p->stages[i];
            reaches = (sr->open_streak > 0 && in->streak_days >= sr->open_streak) ||
                      (sr->open_periods > 0 && in->unexcused_periods >= sr->open_periods);
        }
        if (!reaches)
            return;
        char start[11];
        bx_date first = in->streak_days > 0 ? in->streak_start : in->date;
        bx_date_format(first, start);
        char why[128];
        if (in->streak_days > 0)
            snprintf(why, sizeof(why), "absent without leave since %s (%d school days)", start,
                     in->streak_days);
        else
            snprintf(why, sizeof(why), "%d unexcused periods on %s", in->unexcused_periods, start);
        open_case(st, first, why);
    }
    advance_by_assessment(st);
}

static void escalate(step *st, ladder_task *t, const char *what)
{
    const ladder_task_rule *r = &st->p->task_rules[t->rule];
    t->escalated = true;
    task_event(
        st,
        add_event(st, LADDER_EV_ESCALATED, true, "%s: %s (owner %s)", r->kind, what, r->owner_role),
        t);
    if (r->escalate_to[0] != '\0' && st->p->overdue_notice[0] != '\0') {
        ladder_notification *n = add_note(st, st->p->overdue_notice, r->escalate_to, "task");
        note_param(n, "case_id", st->s->case_id);
        note_param(n, "task_id", t->key);
        note_param(n, "task", r->kind);
        note_param(n, "owner_role", r->owner_role);
    }
}

/* Stages opened by a missed task of this kind. */
static void enter_overdue_stages(step *st, const char *kind)
{
    for (int i = st->s->stage + 1; i < st->p->nstages; i++) {
        const ladder_stage_rule *sr = &st->p->stages[i];
        for (int k = 0; k < sr->nopen_overdue; k++) {
            if (strcmp(sr->open_overdue[k], kind) == 0) {
                enter_stage_passing(st, i, false, false, "%s missed its deadline", kind);
                return;
            }
        }
    }
}

/* Waits started by a task done (open_after), for stages not entered yet. */
static void start_waits(step *st, const char *kind)
{
    for (int i = st->s->stage + 1; i < st->p->nstages; i++) {
        const ladder_stage_rule *sr = &st->p->stages[i];
        if (sr->open_after[0] == '\0' || strcmp(sr->open_after, kind) != 0)
            continue;
        bx_time_ms due = ladder_due(st->p, st->cal, sr->after, st->in->at);
        char wait_kind[LADDER_NAME_SIZE + 8];
        snprintf(wait_kind, sizeof(wait_kind), "wait_%s", sr->name);
        ladder_task *t =
            new_task(st, -1, st->s->stage, i, wait_kind, bx_time_local_date(st->in->at), due);
        if (t == NULL)
            continue;
        char when[32];
        bx_time_format(due, when, sizeof(when));
        ladder_event *e = add_event(st, LADDER_EV_NOTE, false,
                                    "%s done: %s follows at %s unless "
                                    "the child returns",
                                    kind, sr->name, when);
        if (e != NULL)
            snprintf(e->task_key, sizeof(e->task_key), "%s", t->key);
    }
}

static void on_deadline(step *st)
{
    case_state *s = st->s;
    if (!s->open)
        return;
    ladder_task *t = find_task(s, st->in->timer_key);
    if (t == NULL || t->state != LADDER_TASK_OPEN)
        return;
    if (t->rule < 0) {
        t->state = LADDER_TASK_DONE;
        int stage = t->wait_stage;
        if (stage > s->stage)
            enter_stage_passing(st, stage, false, false,
                                "the child has not returned within the time after %s",
                                st->p->stages[stage].open_after);
        ensure_recurring(st);
        return;
    }
    const ladder_task_rule *r = &st->p->task_rules[t->rule];
    t->state = LADDER_TASK_OVERDUE;
    task_event(
        st, add_event(st, LADDER_EV_TASK_OVERDUE, true, "%s not done by its deadline", r->kind), t);
    if (!t->escalated)
        escalate(st, t, "deadline missed");
    enter_overdue_stages(st, r->kind);
    ensure_recurring(st);
}

/* The tag an action is matched with ("letter_delivered:return_notice"). */
static void action_tag(const ladder_input *in, char *out, size_t size)
{
    switch (in->action) {
    case LADDER_ACT_CONTACT_MADE:
        snprintf(out, size, "contact_made");
        break;
    case LADDER_ACT_HOME_VISIT:
        snprintf(out, size, "home_visit");
        break;
    case LADDER_ACT_LETTER_DELIVERED:
        snprintf(out, size, "letter_delivered:%s", in->letter);
        break;
    case LADDER_ACT_RETURNED:
        snprintf(out, size, "returned:%s", in->signoff_staff_id[0] ? "signed" : "unsigned");
        break;
    case LADDER_ACT_TRANSFER_OUT:
        snprintf(out, size, "transfer_out:%s", in->paperwork ? "paperwork" : "no_paperwork");
        break;
    case LADDER_ACT_TRANSFER_CONFIRMED:
        snprintf(out, size, "transfer_confirmed");
        break;
    case LADDER_ACT_SUSPENSION:
        snprintf(out, size, "suspension:%s", in->approved ? "approved" : "unapproved");
        break;
    case LADDER_ACT_TASK_DONE:
        snprintf(out, size, "task_done");
        break;
    case LADDER_ACT_TASK_REASSIGNED:
        snprintf(out, size, "task_reassigned");
        break;
    }
}

static bool tag_matches(const char *rule_tag, const char *tag)
{
    if (strcmp(rule_tag, tag) == 0)
        return true;
    size_t n = strlen(rule_tag);
    return strchr(rule_tag, ':') == NULL && strncmp(tag, rule_tag, n) == 0 && tag[n] == ':';
}

static void complete_tasks(step *st)
{
    const ladder_input *in = st->in;
    case_state *s = st->s;
    char tag[LADDER_NAME_SIZE + 24];
    action_tag(in, tag, sizeof(tag));
    int n = s->ntasks; /* tasks this loop creates (recurrences) are not done by this action */
    for (int i = 0; i < n; i++) {
        ladder_task *t = &s->tasks[i];
        if (!task_live(t) || t->rule < 0)
            continue;
        const ladder_task_rule *r = &st->p->task_rules[t->rule];
        if (r->every.n > 0 && t->state == LADDER_TASK_OVERDUE)
            continue; /* a missed recurrence stays missed */
        bool match = false;
        if (in->action == LADDER_ACT_TASK_DONE)
            match = strcmp(in->task_kind, r->kind) == 0;
        for (int k = 0; k < r->ndone_by && !match; k++)
            match = strcmp(r->done_by[k], "task_done") != 0 && tag_matches(r->done_by[k], tag);
        if (!match || in->date < t->window_start)
            continue;
        bool late = t->state == LADDER_TASK_OVERDUE || in->date > bx_time_local_date(t->due_at) ||
                    (in->date == bx_time_local_date(t->due_at) && in->at > t->due_at &&
                     bx_time_local_date(in->at) > in->date);
        t->state = late ? LADDER_TASK_DONE_LATE : LADDER_TASK_DONE;
        char day[11];
        bx_date_format(in->date, day);
        task_event(st,
                   add_event(st, LADDER_EV_TASK_DONE, late, "%s: %s on %s%s", r->kind, tag, day,
                             late ? ", after its deadline" : ""),
                   t);
        if (late && !t->escalated)
            escalate(st, t, "done after its deadline");
        start_waits(st, r->kind);
    }
}

/* task_reassigned: the open task's owner becomes to_staff_id; a note event records who gave it to
 * whom, and the new owner is told by staff id. A task that is not open (done, cancelled, unknown)
 * changes nothing. */
static void reassign_task(step *st)
{
    const ladder_input *in = st->in;
    ladder_task *t = find_task(st->s, in->task_key);
    if (t == NULL || !task_live(t) || t->rule < 0)
        return;
    const ladder_task_rule *r = &st->p->task_rules[t->rule];
    ladder_event *e = add_event(st, LADDER_EV_NOTE, false, "%s reassigned to %s by %s", r->kind,
                                in->to_staff_id, st->actor);
    task_event(st, e, t);
    if (e != NULL)
        snprintf(e->owner_staff_id, sizeof(e->owner_staff_id), "%s", in->to_staff_id);
    if (st->p->task_notice[0] == '\0')
        return;
    char when[32];
    bx_time_format(t->due_at, when, sizeof(when));
    ladder_notification *n = add_note(st, st->p->task_notice, r->owner_role, "task");
    if (n == NULL)
        return;
    snprintf(n->recipient_staff_id, sizeof(n->recipient_staff_id), "%s", in->to_staff_id);
    note_param(n, "case_id", st->s->case_id);
    note_param(n, "task_id", t->key);
    note_param(n, "task", r->kind);
    note_param(n, "due_at", when);
}

static void on_action(step *st)
{
    const ladder_input *in = st->in;
    case_state *s = st->s;
    const ladder_policy *p = st->p;
    if (in->action == LADDER_ACT_TASK_REASSIGNED) {
        if (s->open)
            reassign_task(st);
        return;
    }
    if (!s->open) {
        /* transfers and unapproved suspensions are followed even without an absence */
        bool follow =
            (in->action == LADDER_ACT_TRANSFER_OUT && p->transfer_task >= 0) ||
            (in->action == LADDER_ACT_SUSPENSION && !in->approved && p->suspension_task >= 0);
        if (!follow)
            return;
        open_case(st, in->date,
                  in->action == LADDER_ACT_TRANSFER_OUT
                      ? "transfer out: awaiting the receiving school's confirmation"
                      : "suspension without approved paperwork");
    }
    complete_tasks(st);
    switch (in->action) {
    case LADDER_ACT_RETURNED: {
        char day[11];
        bx_date_format(in->return_date != BX_DATE_NONE ? in->return_date : in->date, day);
        if (in->signoff_staff_id[0] == '\0' && p->return_signoff_task >= 0) {
            if (!s->awaiting_signoff) {
                s->awaiting_signoff = true;
                add_event(st, LADDER_EV_NOTE, false,
                          "returned to school on %s; the return report awaits the township's "
                          "sign-off",
                          day);
                create_task(st, p->return_signoff_task, -1, false, in->at, false);
            }
            return;
        }
        char why[160];
        if (in->signoff_staff_id[0] != '\0')
            snprintf(why, sizeof(why), "returned to school on %s; return report signed by %s", day,
                     in->signoff_staff_id);
        else
            snprintf(why, sizeof(why), "returned to school on %s", day);
        close_case(st, LADDER_END_RETURNED, why);
        return;
    }
    case LADDER_ACT_TRANSFER_OUT:
        if (p->transfer_task >= 0)
            create_task(st, p->transfer_task, -1, false, in->at, false);
        if (!in->paperwork)
            add_event(st, LADDER_EV_NOTE, false,
                      "transfer out without complete papers: treated as dropout unless the "
                      "receiving school confirms in time");
        break;
    case LADDER_ACT_TRANSFER_CONFIRMED: {
        char why[240];
        if (in->receiving_school[0] != '\0')
            snprintf(why, sizeof(why), "transfer confirmed: enrolled at %s", in->receiving_school);
        else
            snprintf(why, sizeof(why), "transfer confirmed by the receiving school");
        close_case(st, LADDER_END_TRANSFERRED, why);
        return;
    }
    case LADDER_ACT_SUSPENSION:
        if (in->approved) {
            s->suspended_until = in->last_date;
            char a[11], b[11];
            bx_date_format(in->first_date, a);
            bx_date_format(in->last_date, b);
            add_event(st, LADDER_EV_NOTE, false, "approved suspension %s..%s", a, b);
        } else if (p->suspension_task >= 0) {
            create_task(st, p->suspension_task, -1, false, in->at, false);
        }
        break;
    default:
        break;
    }
    ensure_recurring(st);
}

static void on_home_delivery(step *st)
{
    if (st->s->home_delivered && st->s->open)
        return;
    st->s->home_delivered = true;
    if (!st->s->open)
        open_case(st, st->in->date, "home-delivered education: weekly visits");
    ensure_recurring(st);
}

/* The live tasks of a kind in the case. */
static int live_tasks_of(const step *st, const char *kind)
{
    int n = 0;
    for (int i = 0; i < st->s->ntasks; i++) {
        const ladder_task *t = &st->s->tasks[i];
        n += task_live(t) && t->rule >= 0 && strcmp(st->p->task_rules[t->rule].kind, kind) == 0;
    }
    return n;
}

static void on_end(step *st)
{
    const ladder_input *in = st->in;
    if (!st->s->open)
        return;
    if (in->ending == LADDER_END_RETURNED) {
        /* a data match found the child enrolled: only a case still waiting for that closes */
        if (live_tasks_of(st, in->task_kind) == 0)
            return;
        char day[11];
        bx_date_format(in->date, day);
        for (int i = 0; i < st->s->ntasks; i++) {
            ladder_task *t = &st->s->tasks[i];
            if (!task_live(t) || t->rule < 0 ||
                strcmp(st->p->task_rules[t->rule].kind, in->task_kind) != 0)
                continue;
            bool late = t->state == LADDER_TASK_OVERDUE;
            t->state = late ? LADDER_TASK_DONE_LATE : LADDER_TASK_DONE;
            task_event(st,
                       add_event(st, LADDER_EV_TASK_DONE, late, "%s: found enrolled on %s%s",
                                 in->task_kind, day, late ? ", after its deadline" : ""),
                       t);
        }
        close_case(st, LADDER_END_RETURNED, in->reason);
        return;
    }
    close_case(st, in->ending,
               in->ending == LADDER_END_GRADUATED ? "graduated" : "compulsory education ended");
}

/* A suspected dropout found by a calendar duty: followed like an absence from its first day, unless
 * a case is open already (then it is followed there). */
static void on_suspected(step *st)
{
    if (st->s->open)
        return;
    open_case(st, st->in->date, st->in->reason);
    int i = st->in->stage_name[0] ? ladder_policy_stage(st->p, st->in->stage_name) : -1;
    if (i >= 0)
        enter_stage_passing(st, i, false, false, "%s", st->in->reason);
    int t = st->in->task_kind[0] ? ladder_policy_task(st->p, st->in->task_kind) : -1;
    if (t >= 0)
        create_task(st, t, -1, false, st->in->at, false);
}

static bx_status check_input(const ladder_input *in, bx_error *err)
{
    if (!id_ok(in->event_id, 128, true))
        return BX_ERR(err, BX_EINVAL, "event_id: expected 1..128 of [A-Za-z0-9._:-]");
    if (in->at <= 0)
        return BX_ERR(err, BX_EINVAL, "at: expected a time after 1970");
    if (in->actor[0] != '\0' && !id_ok(in->actor, 64, true))
        return BX_ERR(err, BX_EINVAL, "actor: expected 1..64 of [A-Za-z0-9._:-]");
    switch (in->kind) {
    case LADDER_IN_ASSESSMENT:
        if (in->date == BX_DATE_NONE || in->streak_days < 0 || in->streak_days > 10000 ||
            in->unexcused_periods < 0 || in->unexcused_periods > 12)
            return BX_ERR(err, BX_EINVAL,
                          "assessment: date, streak_days 0..10000 or "
                          "unexcused_periods 0..12 out of range");
        if (in->streak_days > 0 &&
            (in->streak_start == BX_DATE_NONE || in->streak_start > in->date))
            return BX_ERR(err, BX_EINVAL,
                          "assessment: streak_start must be set and not after date");
        return BX_OK;
    case LADDER_IN_ACTION:
        if (in->action < LADDER_ACT_CONTACT_MADE || in->action > LADDER_ACT_TASK_REASSIGNED)
            return BX_ERR(err, BX_EINVAL, "action: unknown kind %d", (int)in->action);
        if (in->date == BX_DATE_NONE)
            return BX_ERR(err, BX_EINVAL, "action: date missing");
        if (in->action == LADDER_ACT_SUSPENSION &&
            (in->first_date == BX_DATE_NONE || in->last_date < in->first_date))
            return BX_ERR(err, BX_EINVAL, "suspension: first_date..last_date is not a range");
        if (in->action == LADDER_ACT_TASK_DONE && in->task_kind[0] == '\0')
            return BX_ERR(err, BX_EINVAL, "task_done: task_kind missing");
        if (in->action == LADDER_ACT_TASK_REASSIGNED &&
            (in->task_key[0] == '\0' || !id_ok(in->to_staff_id, 32, false)))
            return BX_ERR(err, BX_EINVAL, "task_reassigned: task_key and to_staff_id required");
        if (in->signoff_staff_id[0] != '\0' && !id_ok(in->signoff_staff_id, 32, false))
            return BX_ERR(err, BX_EINVAL, "signoff_staff_id: expected 1..32 of [A-Za-z0-9_-]");
        return BX_OK;
    case LADDER_IN_DEADLINE:
        if (in->timer_key[0] == '\0')
            return BX_ERR(err, BX_EINVAL, "deadline: timer_key missing");
        return BX_OK;
    case LADDER_IN_HOME_DELIVERY:
        if (in->date == BX_DATE_NONE)
            return BX_ERR(err, BX_EINVAL, "home_delivery: date missing");
        return BX_OK;
    case LADDER_IN_END:
        if (in->ending == LADDER_END_RETURNED &&
            (in->task_kind[0] == '\0' || in->reason[0] == '\0' || in->date == BX_DATE_NONE))
            return BX_ERR(err, BX_EINVAL, "end: returned needs the task kind, a reason and a date");
        if (in->ending != LADDER_END_GRADUATED && in->ending != LADDER_END_OBLIGATION_ENDED &&
            in->ending != LADDER_END_RETURNED)
            return BX_ERR(err, BX_EINVAL,
                          "end: ending must be graduated, obligation_ended or returned");
        return BX_OK;
    case LADDER_IN_SUSPECTED:
        if (in->date == BX_DATE_NONE || in->reason[0] == '\0')
            return BX_ERR(err, BX_EINVAL, "suspected: date and reason required");
        return BX_OK;
    }
    return BX_ERR(err, BX_EINVAL, "kind: unknown input kind %d", (int)in->kind);
}

bx_status ladder_step(const ladder_policy *p, const bx_calendar *cal, const case_state *in,
                      const ladder_input *input, case_state *out, ladder_effects *effects,
                      bx_error *err)
{
    bx_status s = check_input(input, err);
    if (s != BX_OK)
        return s;
    case_state work = *in;
    effects->nevents = effects->ntimers = effects->nnotes = 0;
    for (int i = 0; i < LADDER_APPLIED_MAX; i++) {
        if (strcmp(work.applied[i], input->event_id) == 0) {
            *out = work;
            return BX_OK;
        }
    }
    step st = {p,   cal,  input, &work, effects, input->actor[0] ? input->actor : ACTOR_SELF,
               err, BX_OK};
    switch (input->kind) {
    case LADDER_IN_ASSESSMENT:
        on_assessment(&st);
        break;
    case LADDER_IN_ACTION:
        on_action(&st);
        break;
    case LADDER_IN_DEADLINE:
        on_deadline(&st);
        break;
    case LADDER_IN_HOME_DELIVERY:
        on_home_delivery(&st);
        break;
    case LADDER_IN_END:
        on_end(&st);
        break;
    case LADDER_IN_SUSPECTED:
        on_suspected(&st);
        break;
    }
    if ((input->kind == LADDER_IN_ASSESSMENT || input->kind == LADDER_IN_SUSPECTED) && work.open)
        ensure_recurring(&st);
    if (st.status != BX_OK)
        return st.status;
    snprintf(work.applied[work.applied_next], LADDER_ID_SIZE, "%s", input->event_id);
    work.applied_next = (work.applied_next + 1) % LADDER_APPLIED_MAX;
    *out = work;
    return BX_OK;
}
