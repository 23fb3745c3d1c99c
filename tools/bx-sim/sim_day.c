/* sim_day.c: a simulated school day: each child's status from the seed and the ground truth,
 * what teachers and staff send (roll calls, leave, late fixes, contacts, home visits, letters,
 * returns, some on time and some late), the request bodies, and the early warning's evaluation. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

enum { P_DAY = 101, P_SICK, P_LEAD, P_PHONE, P_FORGET, P_STAFF };

/* Daily chances (assumptions; absences cluster on the school days next to a break). */
#define P_ABSENT          0.002
#define P_PERSONAL        0.002
#define P_LATE            0.01
#define P_SICK_START      0.006
#define BREAK_FACTOR      3.0
#define RISK_FACTOR       1.5
#define WARNING_DAYS      15
#define P_WARNING_ABSENT  0.12
#define P_WARNING_LATE    0.08
#define P_PHONED_IN       0.25
#define P_CONTACT_ON_TIME 0.85
#define P_VISIT_ON_TIME   0.7
#define P_RETURN_ON_TIME  0.75
#define P_SIGNOFF         0.85
#define P_LETTER          0.8
#define P_LATE_SIGNOFF    0.7

static bool next_to_break(const sim_county *c, bx_date d)
{
    bx_date prev = bx_calendar_add_school_days(c->cal, d, -1);
    bx_date next = bx_calendar_add_school_days(c->cal, d, 1);
    return (prev != BX_DATE_NONE && d - prev >= 4) || (next != BX_DATE_NONE && next - d >= 4) ||
           prev == BX_DATE_NONE || prev < c->term_first;
}

static bool sick_on(const sim_county *c, int student, bx_date d)
{
    for (int k = 0; k < 3; k++) {
        bx_date start = k == 0 ? d : bx_calendar_add_school_days(c->cal, d, -k);
        if (start == BX_DATE_NONE || start < c->term_first)
            return false;
        sim_rng r;
        sim_rng_for(&r, c->seed, P_SICK, (uint64_t)student, (uint64_t)(uint32_t)start);
        double p = P_SICK_START * (next_to_break(c, start) ? BREAK_FACTOR : 1.0);
        if (sim_rng_unit(&r) < p && 1 + sim_rng_below(&r, 3) > k)
            return true;
    }
    return false;
}

sim_status sim_student_status(const sim_county *c, int student, bx_date d)
{
    const sim_student *st = &c->students[student];
    if (!bx_calendar_is_school_day(c->cal, d))
        return SIM_PRESENT;
    /* A child changing school is at school on the last day and the old school's roll calls no
     * longer list them after it; the new school's never list them (present). */
    if (st->transfer && d >= c->transfers[st->transfer - 1].day)
        return SIM_PRESENT;
    if (st->fate != SIM_STAYS && d >= st->drift_start &&
        (st->fate == SIM_DRIFTS || d < st->return_date))
        return SIM_ABSENT;
    sim_rng r;
    sim_rng_for(&r, c->seed, P_DAY, (uint64_t)student, (uint64_t)(uint32_t)d);
    double u = sim_rng_unit(&r);
    double ahead = sim_rng_unit(&r);
    if (st->fate != SIM_STAYS && d < st->drift_start &&
        bx_calendar_school_days_between(c->cal, d, st->drift_start) <= WARNING_DAYS + 1) {
        /* The weeks before a child stops coming: odd absences and late mornings. */
        if (u < P_WARNING_ABSENT)
            return SIM_ABSENT;
        if (u < P_WARNING_ABSENT + P_WARNING_LATE)
            return SIM_LATE;
    }
    if (sick_on(c, student, d))
        return SIM_SICK;
    double factor = next_to_break(c, d) ? BREAK_FACTOR : 1.0;
    double risk = st->flags ? RISK_FACTOR : 1.0;
    double p_absent = P_ABSENT * factor * risk, p_personal = P_PERSONAL * factor;
    if (u < p_absent)
        return SIM_ABSENT;
    if (u < p_absent + p_personal)
        return ahead < 0.5 ? SIM_PERSONAL_AHEAD : SIM_PERSONAL;
    if (u < p_absent + p_personal + P_LATE)
        return SIM_LATE;
    return SIM_PRESENT;
}

int sim_leave_lead(const sim_county *c, int student, bx_date d)
{
    sim_rng r;
    sim_rng_for(&r, c->seed, P_LEAD, (uint64_t)student, (uint64_t)(uint32_t)d);
    return 1 + sim_rng_below(&r, 5);
}

bool sim_absence_phoned_in(const sim_county *c, int student, bx_date d)
{
    const sim_student *st = &c->students[student];
    if (st->fate != SIM_STAYS && d >= st->drift_start)
        return false;
    sim_rng r;
    sim_rng_for(&r, c->seed, P_PHONE, (uint64_t)student, (uint64_t)(uint32_t)d);
    return sim_rng_unit(&r) < P_PHONED_IN;
}

bool sim_class_forgets(const sim_county *c, int klass, bx_date d, bool *late_next_day)
{
    sim_rng r;
    sim_rng_for(&r, c->seed, P_FORGET, (uint64_t)klass, (uint64_t)(uint32_t)d);
    bool forgets = sim_rng_below(&r, 1000) < c->classes[klass].forget_permille;
    *late_next_day = forgets && sim_rng_unit(&r) < 0.5;
    return forgets;
}

/* ---- the teachers' memory ---- */

typedef struct child_memory {
    int streak;       /* unexcused school days in a row, as reported */
    int episode_max;  /* longest streak of the current absence */
    unsigned done;    /* steps taken in this absence: bits of sim_action_kind */
    bool pending_fix; /* an absence to fix as phoned-in leave on the next school day */
    bx_date fix_date;
} child_memory;

struct sim_world {
    child_memory *child;
    sim_action *later; /* decided, recorded on a later day */
    int nlater, caplater;
    bx_date last_day;
    bool *forgot_late; /* per class: yesterday's roll call is sent today */
    bx_date *forgot_date;
};

bx_status sim_world_new(const sim_county *c, sim_world **out)
{
    sim_world *w = calloc(1, sizeof(*w));
    if (w != NULL) {
        w->child = calloc((size_t)c->nstudents, sizeof(*w->child));
        w->forgot_late = calloc((size_t)c->nclasses, sizeof(*w->forgot_late));
        w->forgot_date = calloc((size_t)c->nclasses, sizeof(*w->forgot_date));
    }
    if (w == NULL || w->child == NULL || w->forgot_late == NULL || w->forgot_date == NULL) {
        sim_world_free(w);
        *out = NULL;
        return BX_ENOMEM;
    }
    w->last_day = BX_DATE_NONE;
    *out = w;
    return BX_OK;
}

void sim_world_free(sim_world *w)
{
    if (w == NULL)
        return;
    free(w->child);
    free(w->later);
    free(w->forgot_late);
    free(w->forgot_date);
    free(w);
}

void sim_day_plan_free(sim_day_plan *p)
{
    free(p->rollcalls);
    free(p->leaves);
    free(p->actions);
    memset(p, 0, sizeof(*p));
}

typedef struct plan_caps {
    int rollcalls, leaves, actions;
} plan_caps;

static bx_status grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return BX_OK;
    int ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (p == NULL)
        return BX_ENOMEM;
    *arr = p;
    *cap = ncap;
    return BX_OK;
}

static bx_status add_leave(sim_day_plan *p, plan_caps *caps, sim_leave l)
{
    bx_status s = grow((void **)&p->leaves, &caps->leaves, p->nleaves + 1, sizeof(sim_leave));
    if (s == BX_OK)
        p->leaves[p->nleaves++] = l;
    return s;
}

static bx_status add_action(sim_day_plan *p, plan_caps *caps, sim_action a)
{
    bx_status s = grow((void **)&p->actions, &caps->actions, p->nactions + 1, sizeof(sim_action));
    if (s == BX_OK)
        p->actions[p->nactions++] = a;
    return s;
}

/* An action happens on its date or, when staff are late, 1..3 school days later; it is sent
 * on the day it happens (a signed return report reaches bx-ingest when the township signs). */
static bx_status decide(const sim_county *c, sim_world *w, sim_day_plan *p, plan_caps *caps,
                        sim_action a, double on_time)
{
    sim_rng r;
    sim_rng_for(&r, c->seed, P_STAFF, (uint64_t)a.student * 8 + (uint64_t)a.kind,
                (uint64_t)(uint32_t)a.date);
    a.due = a.date;
    if (sim_rng_unit(&r) >= on_time) {
        bx_date later = bx_calendar_add_school_days(c->cal, a.date, 1 + sim_rng_below(&r, 3));
        if (later == BX_DATE_NONE || later > c->term_last)
            return BX_OK;
        a.date = later;
        a.late = true;
    }
    a.recorded = a.date;
    if (a.recorded <= p->day)
        return add_action(p, caps, a);
    /* Recorded on a later day: kept until that day's plan. */
    bx_status s = grow((void **)&w->later, &w->caplater, w->nlater + 1, sizeof(sim_action));
    if (s == BX_OK)
        w->later[w->nlater++] = a;
    return s;
}

/* The truth's answer to a home visit: the child comes back within a school week. */
static bool will_return(const sim_county *c, int student, bx_date d)
{
    const sim_student *st = &c->students[student];
    if (st->fate == SIM_STAYS || d < st->drift_start)
        return true;
    return st->fate == SIM_DRIFTS_BACK &&
           bx_calendar_school_days_between(c->cal, d, st->return_date) <= 6;
}

/* One reported day of one child: the teachers' next steps. */
static bx_status child_day(const sim_county *c, sim_world *w, sim_day_plan *p, plan_caps *caps,
                           int i, bx_date d, sim_status status)
{
    child_memory *m = &w->child[i];
    bx_status s = BX_OK;
    sim_action a = {.student = i, .date = d};
    if (status == SIM_ABSENT) {
        m->streak++;
        if (m->streak > m->episode_max)
            m->episode_max = m->streak;
        if (m->streak == 1 && sim_absence_phoned_in(c, i, d)) {
            m->pending_fix = true;
            m->fix_date = d;
        }
        sim_rng r;
        sim_rng_for(&r, c->seed, P_STAFF, (uint64_t)i, (uint64_t)(uint32_t)d);
        a.reached = sim_rng_unit(&r) < 0.8;
        a.will_return = will_return(c, i, d);
        double letter = sim_rng_unit(&r);
        if (m->streak == 1 && !(m->done & (1u << SIM_CONTACT_MADE))) {
            m->done |= 1u << SIM_CONTACT_MADE;
            a.kind = SIM_CONTACT_MADE;
            s = decide(c, w, p, caps, a, P_CONTACT_ON_TIME);
        } else if (m->streak == 2 && !(m->done & (1u << SIM_HOME_VISIT))) {
            m->done |= 1u << SIM_HOME_VISIT;
            a.kind = SIM_HOME_VISIT;
            s = decide(c, w, p, caps, a, P_VISIT_ON_TIME);
        } else if (m->streak == 4 && letter < P_LETTER) {
            a.kind = SIM_PERSUASION_LETTER;
            s = decide(c, w, p, caps, a, P_VISIT_ON_TIME);
        } else if (m->streak == 12 && letter < P_LETTER) {
            a.kind = SIM_RETURN_NOTICE;
            s = decide(c, w, p, caps, a, P_VISIT_ON_TIME);
        } else if (m->streak == 18 && letter < P_LETTER) {
            a.kind = SIM_DEADLINE_NOTICE;
            s = decide(c, w, p, caps, a, P_VISIT_ON_TIME);
        }
        return s;
    }
    if (status == SIM_PRESENT || status == SIM_LATE) {
        if (m->episode_max > 0) {
            /* Back at school: the return is recorded and, mostly, signed by the township. */
            sim_rng r;
            sim_rng_for(&r, c->seed, P_STAFF, (uint64_t)i, (uint64_t)(uint32_t)d + 1);
            a.kind = SIM_RETURNED;
            a.returned = d;
            a.signed_off = sim_rng_unit(&r) < P_SIGNOFF;
            s = decide(c, w, p, caps, a, P_RETURN_ON_TIME);
            if (s == BX_OK && !a.signed_off && sim_rng_unit(&r) < P_LATE_SIGNOFF) {
                /* The return report reaches the township, which signs it some days later. */
                a.kind = SIM_SIGNOFF;
                a.signed_off = true;
                a.date = bx_calendar_add_school_days(c->cal, d, 2 + sim_rng_below(&r, 4));
                if (a.date != BX_DATE_NONE && a.date <= c->term_last)
                    s = decide(c, w, p, caps, a, 1.0);
            }
        }
        m->streak = 0;
        m->episode_max = 0;
        m->done = 0;
    }
    return s;
}

static bx_status rollcall_of(const sim_county *c, sim_world *w, sim_day_plan *p, plan_caps *caps,
                             int k, bx_date d)
{
    bx_status s =
        grow((void **)&p->rollcalls, &caps->rollcalls, p->nrollcalls + 1, sizeof(sim_rollcall));
    if (s != BX_OK)
        return s;
    sim_rollcall *rc = &p->rollcalls[p->nrollcalls++];
    memset(rc, 0, sizeof(*rc));
    rc->klass = k;
    rc->date = d;
    const sim_class *cl = &c->classes[k];
    for (int j = 0; j < cl->nstudents && s == BX_OK; j++) {
        int i = cl->first_student + j;
        sim_status st = sim_student_status(c, i, d);
        switch (st) {
        case SIM_ABSENT:
            rc->absent[rc->nabsent++] = i;
            break;
        case SIM_SICK:
        case SIM_PERSONAL:
        case SIM_PERSONAL_AHEAD:
            rc->leave_sick[rc->nleave] = st == SIM_SICK;
            rc->leave[rc->nleave++] = i;
            break;
        case SIM_LATE:
            rc->late[rc->nlate++] = i;
            break;
        case SIM_PRESENT:
            break;
        }
        s = child_day(c, w, p, caps, i, d, st);
    }
    return s;
}

bx_status sim_plan_day(const sim_county *c, sim_world *w, bx_date d, sim_day_plan *out)
{
    memset(out, 0, sizeof(*out));
    out->day = d;
    if (w->last_day != BX_DATE_NONE && d <= w->last_day)
        return BX_EINVAL;
    w->last_day = d;
    plan_caps caps = {0};
    bx_status s = BX_OK;
    /* Phoned-in absences of the last school day, fixed as leave (补假). */
    for (int i = 0; i < c->nstudents && s == BX_OK; i++) {
        child_memory *m = &w->child[i];
        if (m->pending_fix && m->fix_date < d) {
            sim_leave l = {
                .student = i, .first = m->fix_date, .last = m->fix_date, .phoned_in = true};
            s = add_leave(out, &caps, l);
            m->pending_fix = false;
            /* The leave excuses it: the teacher no longer follows an absence. */
            if (m->streak <= 1 && m->episode_max <= 1)
                m->episode_max = 0;
        }
    }
    /* Yesterday's forgotten roll calls that are sent now, then today's. */
    for (int k = 0; k < c->nclasses && s == BX_OK; k++)
        if (w->forgot_late[k]) {
            w->forgot_late[k] = false;
            s = rollcall_of(c, w, out, &caps, k, w->forgot_date[k]);
        }
    for (int k = 0; k < c->nclasses && s == BX_OK; k++) {
        bool late = false;
        if (sim_class_forgets(c, k, d, &late)) {
            w->forgot_late[k] = late;
            w->forgot_date[k] = d;
            continue;
        }
        s = rollcall_of(c, w, out, &caps, k, d);
    }
    /* Staff's late records that fall due today. */
    int kept = 0;
    for (int j = 0; j < w->nlater && s == BX_OK; j++) {
        if (w->later[j].recorded <= d)
            s = add_action(out, &caps, w->later[j]);
        else
            w->later[kept++] = w->later[j];
    }
    if (s == BX_OK)
        w->nlater = kept;
    /* Personal leave asked for in advance, for the next school week. */
    for (int ahead = 1; ahead <= 5 && s == BX_OK; ahead++) {
        bx_date day = bx_calendar_add_school_days(c->cal, d, ahead);
        if (day == BX_DATE_NONE || day > c->term_last)
            break;
        for (int i = 0; i < c->nstudents && s == BX_OK; i++)
            if (sim_student_status(c, i, day) == SIM_PERSONAL_AHEAD &&
                sim_leave_lead(c, i, day) == ahead) {
                sim_leave l = {.student = i, .first = day, .last = day};
                s = add_leave(out, &caps, l);
            }
    }
    if (s != BX_OK)
        sim_day_plan_free(out);
    return s;
}

/* ---- request bodies ---- */

static bx_status id_list(bx_buf *b, const sim_county *c, const int *ids, int n)
{
    bx_status s = bx_buf_puts(b, "[");
    for (int j = 0; j < n && s == BX_OK; j++)
        s = bx_buf_printf(b, "%s\"%s\"", j ? "," : "", c->students[ids[j]].id);
    IFOK(s, bx_buf_puts(b, "]"));
    return s;
}

bx_status sim_rollcall_json(const sim_county *c, const sim_rollcall *rc, bx_buf *b)
{
    char date[11];
    bx_date_format(rc->date, date);
    const char *cid = c->classes[rc->klass].id;
    bx_status s = bx_buf_printf(b,
                                "{\"class_id\":\"%s\",\"date\":\"%s\",\"rollcall_id\":\"%s-%s\","
                                "\"absent\":",
                                cid, date, cid, date);
    IFOK(s, id_list(b, c, rc->absent, rc->nabsent));
    IFOK(s, bx_buf_puts(b, ",\"leave\":["));
    for (int j = 0; j < rc->nleave && s == BX_OK; j++)
        s = bx_buf_printf(b, "%s{\"student_id\":\"%s\",\"leave_kind\":\"%s\"}", j ? "," : "",
                          c->students[rc->leave[j]].id, rc->leave_sick[j] ? "sick" : "personal");
    IFOK(s, bx_buf_puts(b, "],\"late\":"));
    IFOK(s, id_list(b, c, rc->late, rc->nlate));
    IFOK(s, bx_buf_puts(b, "}"));
    return s;
}

bx_status sim_leave_json(const sim_county *c, const sim_leave *l, bx_buf *b)
{
    char first[11], last[11];
    bx_date_format(l->first, first);
    bx_date_format(l->last, last);
    const char *id = c->students[l->student].id;
    return bx_buf_printf(b,
                         "{\"student_id\":\"%s\",\"first_date\":\"%s\",\"last_date\":\"%s\","
                         "\"leave_kind\":\"%s\",\"requested_by\":\"guardian\",\"phoned_in\":%s,"
                         "\"event_id\":\"sim-leave-%s-%s\"}",
                         id, first, last, l->sick ? "sick" : "personal",
                         l->phoned_in ? "true" : "false", id, first);
}

static const char *const visit_reasons[] = {"poverty", "dislikes_school", "left_to_work", "family"};

bx_status sim_action_json(const sim_county *c, const sim_action *a, bx_buf *b)
{
    const sim_student *st = &c->students[a->student];
    const sim_class *cl = &c->classes[st->klass];
    char date[11], staff[24], officer[24];
    bx_date_format(a->date, date);
    sim_homeroom_id(c, st->klass, staff);
    sim_township_officer_id(c, c->schools[cl->school].township, officer);
    static const char *const names[] = {"contact_made",     "home_visit",       "letter_delivered",
                                        "letter_delivered", "letter_delivered", "returned",
                                        "returned"};
    char due[11], returned[11];
    bx_date_format(a->due != 0 ? a->due : a->date, due);
    bx_date_format(a->returned != 0 ? a->returned : a->date, returned);
    if (a->kind == SIM_PERSUASION_LETTER)
        sim_principal_id(c, cl->school, staff);
    if (a->kind == SIM_RETURN_NOTICE || a->kind == SIM_DEADLINE_NOTICE || a->kind == SIM_SIGNOFF)
        memcpy(staff, officer, sizeof(staff));
    bx_status s = bx_buf_printf(b,
                                "{\"student_id\":\"%s\",\"action\":\"%s\",\"date\":\"%s\","
                                "\"staff_id\":\"%s\",\"event_id\":\"sim-%d-%s-%s\",\"details\":",
                                st->id, names[a->kind], date, staff, (int)a->kind, st->id, due);
    switch (a->kind) {
    case SIM_CONTACT_MADE:
        IFOK(s, bx_buf_printf(b, "{\"channel\":\"phone\",\"reached\":%s}",
                              a->reached ? "true" : "false"));
        break;
    case SIM_HOME_VISIT:
        if (a->will_return)
            IFOK(s, bx_buf_puts(b, "{\"outcome\":\"will_return\"}"));
        else
            IFOK(s, bx_buf_printf(b, "{\"outcome\":\"%s\",\"reason\":\"%s\"}",
                                  a->reached ? "refused" : "not_home",
                                  st->flags & (SIM_F_REGISTERED_POOR | SIM_F_EXTREME_POVERTY)
                                      ? visit_reasons[0]
                                      : visit_reasons[1 + a->student % 3]));
        break;
    case SIM_PERSUASION_LETTER:
        IFOK(s, bx_buf_puts(b, "{\"letter\":\"persuasion_letter\"}"));
        break;
    case SIM_RETURN_NOTICE:
        IFOK(s, bx_buf_puts(b, "{\"letter\":\"return_notice\"}"));
        break;
    case SIM_DEADLINE_NOTICE:
        IFOK(s, bx_buf_puts(b, "{\"letter\":\"deadline_notice\"}"));
        break;
    case SIM_RETURNED:
    case SIM_SIGNOFF:
        /* The school records the return; a school's key cannot sign for the township, whose
         * officer signs the return report in bx-console (console_client.c). */
        IFOK(s, bx_buf_printf(b, "{\"return_date\":\"%s\"}", returned));
        break;
    }
    IFOK(s, bx_buf_puts(b, "}"));
    return s;
}

/* ---- the early warning against the truth ---- */

static int compare_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void sim_evaluate_warning(const sim_county *c, const bx_date *flagged_on, bx_date through,
                          sim_warning_eval *out)
{
    memset(out, 0, sizeof(*out));
    int *leads = calloc((size_t)c->nstudents + 1, sizeof(int));
    int nleads = 0;
    for (int i = 0; i < c->nstudents; i++) {
        const sim_student *st = &c->students[i];
        bool drifted = st->fate != SIM_STAYS && st->drift_start <= through;
        bool flagged = flagged_on[i] != BX_DATE_NONE;
        out->drifters += drifted;
        out->flagged += flagged;
        if (!drifted)
            continue;
        if (!flagged) {
            out->never_flagged++;
            continue;
        }
        out->true_positive++;
        /* School days from the flag to the first day away: positive before, negative after. */
        int lead =
            flagged_on[i] < st->drift_start
                ? bx_calendar_school_days_between(c->cal, flagged_on[i], st->drift_start) - 1
                : -(bx_calendar_school_days_between(c->cal, st->drift_start, flagged_on[i]) - 1);
        if (flagged_on[i] < st->drift_start && lead < 1)
            lead = 1;
        if (leads)
            leads[nleads++] = lead;
        int bin = lead > 0 ? 0 : lead == 0 ? 1 : lead >= -3 ? 1 - lead : lead >= -5 ? 5 : 6;
        out->lead_hist[bin]++;
        out->flagged_before += lead > 0;
    }
    out->precision = out->flagged ? (double)out->true_positive / out->flagged : -1;
    out->recall = out->drifters ? (double)out->true_positive / out->drifters : -1;
    if (leads && nleads) {
        qsort(leads, (size_t)nleads, sizeof(int), compare_int);
        out->median_lead =
            nleads % 2 ? leads[nleads / 2] : (leads[nleads / 2 - 1] + leads[nleads / 2]) / 2.0;
    }
    free(leads);
}
