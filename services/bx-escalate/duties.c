/* duties: the calendar duties' policy file, the plan of a term's duties, and their timers
 * scheduled and fired (duties.h). */
#include "duties.h"

#include "bx_buf.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_name.h"
#include "bx_clock.h"
#include "bx_pg.h"
#include "bx_policyfile.h"
#include "outbox.h"
#include "report_queries.h"
#include "reports.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_MAX_BYTES (64 * 1024)
#define LINE_MAX_BYTES   512

static const char *const roles[] = {"homeroom_teacher", "principal",      "academic_office",
                                    "township_officer", "county_officer", NULL};

static const char *const settings[] = {"duties.time",
                                       "term_start.check_after",
                                       "term_start.stage",
                                       "transition.terms",
                                       "transition.check_after",
                                       "transition.from_grades",
                                       "transition.into_grades",
                                       "out_of_school_report.after",
                                       "out_of_school_report.notify",
                                       "monthly_summary.notify",
                                       "rollcall.remind_time",
                                       "rollcall.remind",
                                       "rollcall.end_of_day",
                                       "rollcall.two_days",
                                       "upward.school_monthly",
                                       "upward.county_quarterly",
                                       "upward.city_term",
                                       "upward.province_yearly",
                                       "upward.year_ends",
                                       "rollcall.missed_day",
                                       "rollcall.missed_two_days",
                                       NULL};
#define FIRST_OPTIONAL 10 /* settings from here on may be left out */
#define FIRST_UPWARD   14 /* the reports upward: all five or none */
#define FIRST_MISSED   19 /* the roll-call checks of days gone by: with rollcall.*, optional */
#define SETTINGS_MAX   32
/* A quarter ending this many days after a term's last day at most (in its vacation) is reported
 * on the term's last school day; one ending later belongs to the next term. */
#define QUARTER_AFTER_TERM 31

static const char *const kind_names[] = {
    [DUTY_TERM_START] = "term_start",
    [DUTY_TRANSITION] = "transition",
    [DUTY_OUT_OF_SCHOOL_REPORT] = "out_of_school_report",
    [DUTY_MONTHLY_SUMMARY] = "monthly_summary",
    [DUTY_ROLLCALL_MORNING] = "rollcall_morning",
    [DUTY_ROLLCALL_END] = "rollcall_end",
    [DUTY_SCHOOL_MONTHLY] = "school_monthly_report",
    [DUTY_COUNTY_QUARTERLY] = "county_quarterly_report",
    [DUTY_CITY_TERM] = "city_term_report",
    [DUTY_PROVINCE_YEARLY] = "province_yearly_report",
};

const char *duty_kind_name(duty_kind k)
{
    return bx_name_of(kind_names, BX_NAMES_COUNT(kind_names), (int)k, NULL);
}

duty_kind duty_kind_parse(const char *name)
{
    int k = 0; /* stays 0 (no kind) when the name is unknown */
    (void)bx_name_find(kind_names, BX_NAMES_COUNT(kind_names), name, &k);
    return (duty_kind)k;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= DUTIES_NAME_SIZE || s[0] < 'a' || s[0] > 'z')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static bool days_ok(const char *v, int *out)
{
    /* "<n> school days", n 1..60 */
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || n < 1 || n > 60)
        return false;
    while (*end == ' ')
        end++;
    if (strcmp(end, "school days") != 0 && strcmp(end, "school day") != 0)
        return false;
    *out = (int)n;
    return true;
}

static bool grades_ok(char *v, int *grades, int *n)
{
    *n = 0;
    for (char *tok = v; tok != NULL;) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = '\0';
        char *t = trim(tok), *end;
        tok = comma ? comma + 1 : NULL;
        long g = strtol(t, &end, 10);
        if (end == t || *end || g < 1 || g > 9 || *n == DUTIES_GRADES_MAX)
            return false;
        grades[(*n)++] = (int)g;
    }
    return *n > 0;
}

/* "<role> <template>" split at its first space into trimmed halves (v is written to); false
 * when there is no space or the role is not one of known (NULL-terminated). */
static bool split_role(char *v, const char *const *known, char **role, char **tmpl)
{
    char *sp = strchr(v, ' ');
    if (sp == NULL)
        return false;
    *sp = '\0';
    *role = trim(v);
    *tmpl = trim(sp + 1);
    for (int i = 0; known[i]; i++)
        if (strcmp(known[i], *role) == 0)
            return true;
    return false;
}

static bool notify_ok(char *v, char *role, char *tmpl)
{
    char *r, *t;
    if (!split_role(v, roles, &r, &t) || !name_ok(t))
        return false;
    snprintf(role, DUTIES_NAME_SIZE, "%s", r);
    snprintf(tmpl, DUTIES_NAME_SIZE, "%s", t);
    return true;
}

/* "<role> <template|none>" of a report upward (k: duty kind - DUTY_SCHOOL_MONTHLY). City and
 * province officers are not in the registry's staff: bx-notify cannot reach them, so none. */
static bool upward_ok(char *v, duties_policy *p, int k)
{
    static const char *const up_roles[] = {"academic_office", "principal",        "county_officer",
                                           "city_officer",    "province_officer", NULL};
    char *r, *t;
    if (!split_role(v, up_roles, &r, &t))
        return false;
    bool none = strcmp(t, "none") == 0;
    bool reachable = strcmp(r, "city_officer") != 0 && strcmp(r, "province_officer") != 0;
    if (!none && (!name_ok(t) || !reachable))
        return false;
    snprintf(p->up_role[k], DUTIES_NAME_SIZE, "%s", r);
    snprintf(p->up_template[k], DUTIES_NAME_SIZE, "%s", none ? "" : t);
    return true;
}

/* Where the "<staff role> <template>" setting key puts its role and template in p; false when
 * key is none of them. */
static bool notify_fields(duties_policy *p, const char *key, char **role, char **tmpl)
{
    const struct {
        const char *key;
        char *role, *tmpl;
    } fields[] = {
        {"out_of_school_report.notify", p->report_role, p->report_template},
        {"monthly_summary.notify", p->monthly_role, p->monthly_template},
        {"rollcall.remind", p->remind_role, p->remind_template},
        {"rollcall.end_of_day", p->eod_role, p->eod_template},
        {"rollcall.two_days", p->two_days_role, p->two_days_template},
        {"rollcall.missed_day", p->missed_role, p->missed_template},
        {"rollcall.missed_two_days", p->missed_two_role, p->missed_two_template},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strcmp(key, fields[i].key) == 0) {
            *role = fields[i].role;
            *tmpl = fields[i].tmpl;
            return true;
        }
    }
    return false;
}

static bx_status set_one(duties_policy *p, const char *name, int line, const char *key, char *v,
                         bx_error *err)
{
    bool ok = false;
    const char *want = "";
    static const char *const upward_keys[] = {"upward.school_monthly", "upward.county_quarterly",
                                              "upward.city_term", "upward.province_yearly"};
    int up = -1;
    for (int k = 0; k < 4; k++)
        if (strcmp(key, upward_keys[k]) == 0)
            up = k;
    char *role, *tmpl;
    if (notify_fields(p, key, &role, &tmpl)) {
        ok = notify_ok(v, role, tmpl);
        want = "\"<staff role> <template>\"";
    } else if (up >= 0) {
        ok = upward_ok(v, p, up);
        want = "\"<role> <template|none>\" (academic_office, principal, county_officer; "
               "city_officer and province_officer only with none)";
    } else if (strcmp(key, "upward.year_ends") == 0) {
        ok = name_ok(v);
        snprintf(p->year_ends, sizeof(p->year_ends), "%s", v);
        want = "a term code suffix such as spring";
    } else if (strcmp(key, "duties.time") == 0 || strcmp(key, "rollcall.remind_time") == 0) {
        int h = 0, m = 0;
        char extra;
        ok = sscanf(v, "%2d:%2d%c", &h, &m, &extra) == 2 && strlen(v) == 5 && h >= 0 && h < 24 &&
             m >= 0 && m < 60;
        *(key[0] == 'd' ? &p->minute : &p->remind_minute) = h * 60 + m;
        want = "a time HH:MM";
    } else if (strcmp(key, "term_start.check_after") == 0) {
        ok = days_ok(v, &p->term_start_days);
        want = "1..60 school days";
    } else if (strcmp(key, "term_start.stage") == 0) {
        ok = strcmp(v, "none") == 0 || name_ok(v);
        snprintf(p->term_start_stage, sizeof(p->term_start_stage), "%s",
                 strcmp(v, "none") == 0 ? "" : v);
        want = "a stage name or none";
    } else if (strcmp(key, "transition.terms") == 0) {
        ok = name_ok(v);
        snprintf(p->transition_terms, sizeof(p->transition_terms), "%s", v);
        want = "a term code suffix such as autumn";
    } else if (strcmp(key, "transition.check_after") == 0) {
        ok = days_ok(v, &p->transition_days);
        want = "1..60 school days";
    } else if (strcmp(key, "transition.from_grades") == 0) {
        ok = grades_ok(v, p->from_grades, &p->nfrom_grades);
        want = "grades 1..9, comma separated (at most 4)";
    } else if (strcmp(key, "transition.into_grades") == 0) {
        ok = grades_ok(v, p->into_grades, &p->ninto_grades);
        want = "grades 1..9, comma separated (at most 4)";
    } else if (strcmp(key, "out_of_school_report.after") == 0) {
        ok = days_ok(v, &p->report_days);
        want = "1..60 school days";
    }
    if (!ok)
        return BX_ERR(err, BX_EINVAL, "%s:%d: %s: expected %s", name, line, key, want);
    return BX_OK;
}

/* The duties policy being read: a bx_policyfile callback's state. */
typedef struct reading {
    duties_policy p;
    bool seen[SETTINGS_MAX];
} reading;

static bx_status on_setting(void *arg, const char *file, int line, char *key, char *v,
                            bx_error *err)
{
    reading *rd = arg;
    int idx = -1;
    for (int i = 0; settings[i]; i++)
        if (strcmp(settings[i], key) == 0)
            idx = i;
    if (idx < 0)
        return BX_ERR(err, BX_EINVAL, "%s:%d: unknown setting %.60s", file, line, key);
    rd->seen[idx] = true;
    return set_one(&rd->p, file, line, key, v, err);
}

/* After the file was read: every setting is required; *out written only on success. */
static bx_status finish(bx_status s, const reading *rd, const char *name, duties_policy *out,
                        bx_error *err)
{
    for (int i = 0; s == BX_OK && i < FIRST_OPTIONAL; i++)
        if (!rd->seen[i])
            s = BX_ERR(err, BX_EINVAL, "%s: %s is missing", name, settings[i]);
    /* the roll-call checks come all together or not at all, and so do the reports upward */
    int optional = 0, upward = 0;
    for (int i = FIRST_OPTIONAL; i < FIRST_UPWARD; i++)
        optional += rd->seen[i];
    for (int i = FIRST_UPWARD; i < FIRST_MISSED; i++)
        upward += rd->seen[i];
    int missed = 0;
    for (int i = FIRST_MISSED; settings[i]; i++)
        missed += rd->seen[i];
    if (s == BX_OK && missed > 0 && optional == 0)
        s = BX_ERR(err, BX_EINVAL,
                   "%s: rollcall.missed_day and rollcall.missed_two_days need the rollcall.* "
                   "checks",
                   name);
    if (s == BX_OK && optional > 0 && optional < 4)
        s = BX_ERR(err, BX_EINVAL,
                   "%s: rollcall.remind_time, rollcall.remind, rollcall.end_of_day and "
                   "rollcall.two_days go together",
                   name);
    if (s == BX_OK && upward > 0 && upward < 5)
        s = BX_ERR(err, BX_EINVAL,
                   "%s: upward.school_monthly, upward.county_quarterly, upward.city_term, "
                   "upward.province_yearly and upward.year_ends go together",
                   name);
    if (s == BX_OK) {
        *out = rd->p;
        if (optional == 0)
            out->remind_minute = -1;
        out->upward = upward == 5;
    }
    return s;
}

static const bx_policyfile_opts policyfile_opts = {.file_max = POLICY_MAX_BYTES,
                                                   .line_max = LINE_MAX_BYTES - 1};

bx_status duties_policy_parse(const char *text, size_t len, const char *name, duties_policy *out,
                              bx_error *err)
{
    reading rd;
    memset(&rd, 0, sizeof(rd));
    bx_status s = bx_policyfile_parse(text, len, name, &policyfile_opts, on_setting, &rd, err);
    return finish(s, &rd, name, out, err);
}

bx_status duties_policy_load(const char *path, duties_policy *out, bx_error *err)
{
    reading rd;
    memset(&rd, 0, sizeof(rd));
    bx_status s = bx_policyfile_load(path, &policyfile_opts, on_setting, &rd, err);
    return finish(s, &rd, path, out, err);
}

/* The last school day in [first, last], or BX_DATE_NONE. */
static bx_date last_school_day(const bx_calendar *cal, bx_date first, bx_date last)
{
    for (bx_date d = last; d >= first; d--)
        if (bx_calendar_is_school_day(cal, d))
            return d;
    return BX_DATE_NONE;
}

/* The check day of "n school days from the term's first day" (the first school day counts as
 * one), kept inside the term. */
static bx_date check_day(const bx_calendar *cal, bx_date first, bx_date last, int n)
{
    bx_date day1 = bx_calendar_add_school_days(cal, first, 0);
    if (day1 == BX_DATE_NONE || day1 > last)
        return BX_DATE_NONE;
    bx_date d = n > 1 ? bx_calendar_add_school_days(cal, day1, n - 1) : day1;
    if (d == BX_DATE_NONE || d > last)
        d = last_school_day(cal, first, last);
    return d;
}

static void add(duty *out, int max, int *count, duty_kind kind, const char *calendar_id,
                const char *term, const char *month, bx_date first, bx_date check, int minute)
{
    if (*count >= max || check == BX_DATE_NONE)
        return;
    duty *d = &out[(*count)++];
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    snprintf(d->key, sizeof(d->key), "duty:%s:%s:%s%s%s", duty_kind_name(kind), calendar_id, term,
             month ? ":" : "", month ? month : "");
    d->first_day = first;
    d->last_day = check;
    d->due_at = bx_time_from_local(check, minute / 60, minute % 60);
    if (kind >= DUTY_SCHOOL_MONTHLY)
        snprintf(d->period, sizeof(d->period), "%s", month ? month : term);
}

/* The reports upward of a term (duties_plan). */
static void plan_upward(const duties_policy *p, const bx_calendar *cal, const char *calendar_id,
                        const char *term_code, bx_date first, bx_date last, duty *out, int max,
                        int *count)
{
    int y, m, dd;
    /* each month's school report, on its last school day in the term */
    bx_date_to_ymd(first, &y, &m, &dd);
    for (bx_date month_first = bx_date_from_ymd(y, m, 1); month_first <= last && *count < max;) {
        bx_date_to_ymd(month_first, &y, &m, &dd);
        bx_date next = bx_date_from_ymd(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1);
        bx_date from = month_first > first ? month_first : first;
        bx_date to = next - 1 < last ? next - 1 : last;
        char month[8];
        snprintf(month, sizeof(month), "%04d-%02d", y, m);
        add(out, max, count, DUTY_SCHOOL_MONTHLY, calendar_id, term_code, month, from,
            last_school_day(cal, from, to), p->minute);
        month_first = next;
    }
    /* each quarter that ends in this term, or within a month after it (a vacation), on its
     * last school day in the term */
    bx_date_to_ymd(first, &y, &m, &dd);
    for (bx_date q_first = bx_date_from_ymd(y, (m - 1) / 3 * 3 + 1, 1);
         q_first <= last && *count < max;) {
        bx_date_to_ymd(q_first, &y, &m, &dd);
        bx_date next = bx_date_from_ymd(m >= 10 ? y + 1 : y, m >= 10 ? 1 : m + 3, 1);
        bx_date q_last = next - 1;
        char quarter[8];
        snprintf(quarter, sizeof(quarter), "%04d-Q%d", y, (m - 1) / 3 + 1);
        if (q_last >= first && q_last <= last + QUARTER_AFTER_TERM)
            add(out, max, count, DUTY_COUNTY_QUARTERLY, calendar_id, term_code, quarter, q_first,
                last_school_day(cal, q_first > first ? q_first : first,
                                q_last < last ? q_last : last),
                p->minute);
        q_first = next;
    }
    /* the term's city report, on its last school day */
    bx_date end = last_school_day(cal, first, last);
    add(out, max, count, DUTY_CITY_TERM, calendar_id, term_code, NULL, first, end, p->minute);
    /* the school year's province report, when this term ends it */
    size_t tl = strlen(term_code), sl = strlen(p->year_ends);
    if (end == BX_DATE_NONE || sl == 0 || tl <= sl ||
        strcmp(term_code + tl - sl, p->year_ends) != 0 || term_code[tl - sl - 1] != '-')
        return;
    bx_date year_first = first;
    for (bx_date d = first - 1; d >= first - 250; d--) {
        const bx_term *t = bx_calendar_term_of(cal, d);
        if (t != NULL) {
            year_first = t->first;
            break;
        }
    }
    bx_date_to_ymd(end, &y, &m, &dd);
    char year[16];
    snprintf(year, sizeof(year), "%04d-%04d", y - 1, y);
    add(out, max, count, DUTY_PROVINCE_YEARLY, calendar_id, term_code, year, year_first, end,
        p->minute);
}

int duties_plan(const duties_policy *p, const bx_calendar *cal, const char *calendar_id,
                const char *term_code, bx_date first, bx_date last, duty *out, int max)
{
    int count = 0;
    if (first == BX_DATE_NONE || last < first)
        return 0;
    add(out, max, &count, DUTY_TERM_START, calendar_id, term_code, NULL, first,
        check_day(cal, first, last, p->term_start_days), p->minute);
    size_t tl = strlen(term_code), sl = strlen(p->transition_terms);
    if (sl > 0 && tl > sl && strcmp(term_code + tl - sl, p->transition_terms) == 0 &&
        term_code[tl - sl - 1] == '-')
        add(out, max, &count, DUTY_TRANSITION, calendar_id, term_code, NULL, first,
            check_day(cal, first, last, p->transition_days), p->minute);
    add(out, max, &count, DUTY_OUT_OF_SCHOOL_REPORT, calendar_id, term_code, NULL, first,
        check_day(cal, first, last, p->report_days), p->minute);
    /* one summary a month, on its last school day in the term */
    int y, m, dd;
    bx_date_to_ymd(first, &y, &m, &dd);
    for (;;) {
        bx_date month_first = bx_date_from_ymd(y, m, 1);
        int ny = m == 12 ? y + 1 : y, nm = m == 12 ? 1 : m + 1;
        bx_date month_last = bx_date_from_ymd(ny, nm, 1) - 1;
        if (month_first > last)
            break;
        bx_date from = month_first > first ? month_first : first;
        bx_date to = month_last < last ? month_last : last;
        char month[8];
        snprintf(month, sizeof(month), "%04d-%02d", y, m);
        bx_date day = last_school_day(cal, from, to);
        if (day != BX_DATE_NONE)
            add(out, max, &count, DUTY_MONTHLY_SUMMARY, calendar_id, term_code, month, from, day,
                p->minute);
        if (count >= max)
            break;
        y = ny;
        m = nm;
    }
    if (p->upward)
        plan_upward(p, cal, calendar_id, term_code, first, last, out, max, &count);
    return count;
}

int duties_plan_day(const duties_policy *p, const bx_calendar *cal, const char *calendar_id,
                    const char *term_code, bx_date first, bx_date last, bx_date day, duty *out,
                    int max)
{
    int count = 0;
    if (p->remind_minute < 0 || day == BX_DATE_NONE || day < first || day > last ||
        !bx_calendar_is_school_day(cal, day))
        return 0;
    char ymd[11];
    bx_date_format(day, ymd);
    add(out, max, &count, DUTY_ROLLCALL_MORNING, calendar_id, term_code, ymd, day, day,
        p->remind_minute);
    add(out, max, &count, DUTY_ROLLCALL_END, calendar_id, term_code, ymd, day, day, p->minute);
    return count;
}

int duties_catch_up_days(const bx_calendar *cal, bx_date first, bx_date last,
                         bx_date last_scheduled, bx_date today, bx_date *out, int max, int *skipped)
{
    *skipped = 0;
    if (last_scheduled == BX_DATE_NONE || today == BX_DATE_NONE || max <= 0)
        return 0;
    /* the school days strictly between, latest first, then turned oldest first */
    int n = 0;
    for (bx_date d = bx_calendar_add_school_days(cal, today, -1);
         d != BX_DATE_NONE && d > last_scheduled && d >= first;
         d = bx_calendar_add_school_days(cal, d, -1)) {
        if (d > last)
            continue;
        if (n < max)
            out[n++] = d;
        else
            ++*skipped;
    }
    for (int i = 0; i < n / 2; i++) {
        bx_date t = out[i];
        out[i] = out[n - 1 - i];
        out[n - 1 - i] = t;
    }
    return n;
}

bx_status duty_payload(const duty *d, const char *calendar_id, const char *term_code, char *out,
                       size_t size)
{
    char f[11], l[11];
    bx_date_format(d->first_day, f);
    bx_date_format(d->last_day, l);
    int n = snprintf(out, size,
                     "{\"duty\":\"%s\",\"calendar_id\":\"%s\",\"term\":\"%s\",\"first_day\":\"%s\","
                     "\"last_day\":\"%s\"%s%s%s}",
                     duty_kind_name(d->kind), calendar_id, term_code, f, l,
                     d->period[0] ? ",\"period\":\"" : "", d->period, d->period[0] ? "\"" : "");
    return n > 0 && (size_t)n < size ? BX_OK : BX_ENOMEM;
}

/* ---- scheduling and firing ---- */

/* A child the check found: opened as a suspected dropout on the duty's first day. */
static bx_status suspect(const duties_env *env, const timers_timer *timer, const char *student,
                         const char *school_id, bx_date first_day, const char *reason,
                         bx_error *err)
{
    ladder_input in;
    memset(&in, 0, sizeof(in));
    in.kind = LADDER_IN_SUSPECTED;
    in.at = timer->due_at;
    in.date = first_day;
    in.return_date = in.first_date = in.last_date = in.streak_start = BX_DATE_NONE;
    snprintf(in.event_id, sizeof(in.event_id), "%.80s:%s", timer->key, student);
    snprintf(in.reason, sizeof(in.reason), "%s", reason);
    snprintf(in.stage_name, sizeof(in.stage_name), "%s", env->policy->term_start_stage);
    return env->suspect(env->suspect_arg, timer->key, student, school_id, &in, err);
}

/* The reason a check gives for one child it found (a row: student, school, grade). */
static void check_reason(const duties_policy *dp, duty_kind kind, const char *term,
                         const char *first, const char *last, PGresult *res, int r, char *out,
                         size_t size)
{
    int grade = (int)strtol(PQgetvalue(res, r, 2), NULL, 10);
    bool into = false;
    for (int i = 0; i < dp->ninto_grades; i++)
        into = into || dp->into_grades[i] == grade;
    if (kind == DUTY_TERM_START)
        snprintf(out, size,
                 "疑似辍学: %snot seen at school in the first %d school days of term %s "
                 "(%s to %s)",
                 into ? "transition into a new grade: " : "", dp->term_start_days, term, first,
                 last);
    else
        snprintf(out, size,
                 "疑似辍学: left school %s after grade %d and enrolled at no other school by %s "
                 "(transition, term %s)",
                 PQgetvalue(res, r, 1), grade, last, term);
}

/* The children a term-start or transition check finds, each opened as a suspected dropout. */
static bx_status check(const duties_env *env, const timers_timer *timer, duty_kind kind,
                       const char *calendar, const char *term, const char *first, const char *last,
                       bx_error *err)
{
    const duties_policy *dp = env->policy;
    char grades[64] = "{";
    for (int i = 0; i < dp->nfrom_grades; i++)
        snprintf(grades + strlen(grades), sizeof(grades) - strlen(grades), "%s%d", i ? "," : "",
                 dp->from_grades[i]);
    snprintf(grades + strlen(grades), sizeof(grades) - strlen(grades), "}");
    PGresult *res = NULL;
    bx_status s = kind == DUTY_TERM_START
                      ? escalate_store_no_shows(env->db, calendar, first, last, &res, err)
                      : escalate_store_transition_losses(env->db, calendar, grades, &res, err);
    bx_date first_day = BX_DATE_NONE;
    if (s == BX_OK && bx_date_parse(first, &first_day) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, "duty %s: first_day \"%s\"", timer->key, first);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        char reason[200];
        check_reason(dp, kind, term, first, last, res, r, reason, sizeof(reason));
        s = suspect(env, timer, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), first_day, reason,
                    err);
    }
    PQclear(res);
    return s;
}

/* The classes of a period (rp) with their roll calls by the registry's calendars, summed at level:
 * *rows (caller frees with free()), ordered by id. */
static bx_status period_rows(const duties_env *env, const reports_period *rp, reports_level level,
                             reports_row **rows, size_t *n, bx_error *err)
{
    *rows = NULL;
    *n = 0;
    PGresult *res = NULL;
    bx_status s = reports_query_class_counts(env->db, rp, &res, err);
    if (s != BX_OK)
        return s;
    int nres = PQntuples(res);
    reports_class_counts *classes = calloc(nres > 0 ? (size_t)nres : 1, sizeof(*classes));
    if (classes == NULL) {
        PQclear(res);
        return BX_ERR(err, BX_ENOMEM, "report: out of memory for %d classes", nres);
    }
    size_t nclasses = reports_class_counts_of(res, classes);
    if (env->registry != NULL)
        s = reports_query_rollcall(env->db, res, env->registry,
                                   bx_time_local_date((bx_time_ms)rp->now_ms), classes, nclasses,
                                   err);
    IFOK(s, reports_aggregate(classes, nclasses, level, NULL, rows, n, err));
    free(classes);
    PQclear(res);
    return s;
}

/* The row of id among rows (ordered by id), or NULL. */
/* The out-of-school report and the monthly summary: one request to each county's bureau. */
static bx_status report(const duties_env *env, const timers_timer *timer, duty_kind kind,
                        const char *calendar, const char *term, const char *first, const char *last,
                        bx_error *err)
{
    const duties_policy *dp = env->policy;
    const char *role = kind == DUTY_MONTHLY_SUMMARY ? dp->monthly_role : dp->report_role;
    const char *tmpl = kind == DUTY_MONTHLY_SUMMARY ? dp->monthly_template : dp->report_template;
    PGresult *res = NULL;
    bx_status s = escalate_store_county_counts(env->db, calendar, first, last, &res, err);
    /* the summary carries each county's roll-call reporting rate over the month's days */
    reports_row *rates = NULL;
    size_t nrates = 0;
    reports_period rp = {.now_ms = (long long)timer->due_at,
                         .first_day = first,
                         .last_day = last,
                         .calendar_id = calendar};
    if (s == BX_OK && kind == DUTY_MONTHLY_SUMMARY)
        s = period_rows(env, &rp, REPORTS_COUNTY, &rates, &nrates, err);
    char at[40];
    bx_time_format(timer->due_at, at, sizeof(at));
    bx_buf b;
    bx_buf_init(&b, 1 << 16);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        /* No staff id: bx-notify reaches every officer of the role in the county. */
        const char *county = PQgetvalue(res, r, 0);
        char rate[16] = "";
        const reports_row *cr = reports_row_find(rates, nrates, county);
        if (kind == DUTY_MONTHLY_SUMMARY)
            reports_rate_text(cr && cr->rollcall_valid, cr ? cr->rollcall_rate : 0, rate);
        char request_id[200];
        snprintf(request_id, sizeof(request_id), "%.120s:%s", timer->key, county);
        bx_buf_reset(&b);
        s = bx_buf_printf(&b,
                          "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s\","
                          "\"case_id\":null,\"student_id\":null,\"template\":\"%s\","
                          "\"recipient_role\":\"%s\",\"recipient_staff_id\":null",
                          request_id, tmpl, role);
        IFOK(s, bx_buf_printf(&b,
                              ",\"channel\":\"task\",\"params\":{\"county_code\":\"%s\","
                              "\"term\":\"%s\",\"first_day\":\"%s\",\"last_day\":\"%s\","
                              "\"suspected\":%s,\"dropouts\":%s,\"opened\":%s,\"returned\":%s",
                              county, term, first, last, PQgetvalue(res, r, 1),
                              PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), PQgetvalue(res, r, 4)));
        if (kind == DUTY_MONTHLY_SUMMARY)
            IFOK(s, bx_buf_printf(&b, ",\"reporting_rate\":\"%s\",\"incomplete_classes\":%d", rate,
                                  cr ? cr->rollcall_incomplete : 0));
        IFOK(s, bx_buf_printf(&b, "},\"not_before\":null,\"requested_at\":\"%s\"}", at));
        IFOK(s, escalate_outbox_add(env->db, BX_TOPIC_NOTIFY_REQUESTS, county, request_id, b.data,
                                    NULL, err));
        if (s == BX_OK)
            bx_log_info("duty %s: county %s: %s %s suspected, %s on the roster", timer->key, county,
                        duty_kind_name(kind), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
    }
    bx_buf_free(&b);
    free(rates);
    PQclear(res);
    return s;
}

/* ---- the reports upward (四个一) ---- */

static const reports_level upward_levels[4] = {REPORTS_SCHOOL, REPORTS_COUNTY, REPORTS_CITY,
                                               REPORTS_PROVINCE};

/* What one report upward works with. */
typedef struct upward_job {
    const duties_env *env;
    const timers_timer *timer;
    duty_kind kind;
    int k; /* kind - DUTY_SCHOOL_MONTHLY */
    const char *calendar, *term, *first, *last, *period;
    bx_buf *b;
} upward_job;

/* The period of a report of area (a prefix; "" with the calendar for the schools' reports). */
static reports_period upward_period(const upward_job *j, const char *area)
{
    reports_period rp = {.now_ms = (long long)j->timer->due_at, .area = area};
    if (j->kind == DUTY_CITY_TERM) {
        rp.term = j->term; /* each school's own term of the code */
    } else {
        rp.first_day = j->first;
        rp.last_day = j->last;
    }
    if (j->kind == DUTY_SCHOOL_MONTHLY)
        rp.calendar_id = j->calendar;
    return rp;
}

/* The request asking the office for report id (the row written) of place. */
static bx_status upward_request(const upward_job *j, const char *place, const char *county,
                                const reports_row *r, const PGresult *cases, int cr, bx_error *err)
{
    const duties_policy *dp = j->env->policy;
    char request_id[200], at[40], dropout[16], retention[16], rate[16];
    snprintf(request_id, sizeof(request_id), "%.120s:%s", j->timer->key, place);
    bx_time_format(j->timer->due_at, at, sizeof(at));
    reports_rate_text(r && r->all.dropout_valid, r ? r->all.dropout_rate : 0, dropout);
    reports_rate_text(r && r->all.retention_valid, r ? r->all.retention_rate : 0, retention);
    reports_rate_text(r && r->rollcall_valid, r ? r->rollcall_rate : 0, rate);
    bx_buf *b = j->b;
    bx_buf_reset(b);
    bx_status s = bx_buf_printf(b,
                                "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s\","
                                "\"case_id\":null,\"student_id\":null,\"template\":\"%s\","
                                "\"recipient_role\":\"%s\",\"recipient_staff_id\":null,"
                                "\"channel\":\"task\",\"params\":{",
                                request_id, dp->up_template[j->k], dp->up_role[j->k]);
    if (j->kind == DUTY_SCHOOL_MONTHLY)
        IFOK(s, bx_buf_printf(b, "\"school_id\":\"%s\",", place));
    IFOK(s, bx_buf_printf(b,
                          "\"county_code\":\"%s\",\"term\":\"%s\",\"period\":\"%s\","
                          "\"first_day\":\"%s\",\"last_day\":\"%s\",\"dropout_rate\":\"%s\","
                          "\"retention_rate\":\"%s\",\"suspected\":%s,\"dropouts\":%s,"
                          "\"returned\":%s,\"reporting_rate\":\"%s\",\"incomplete_classes\":%d},"
                          "\"not_before\":null,\"requested_at\":\"%s\"}",
                          county, j->term, j->period, j->first, j->last, dropout, retention,
                          PQgetvalue(cases, cr, RA_SUSPECTED), PQgetvalue(cases, cr, RA_DROPOUT),
                          PQgetvalue(cases, cr, RA_RETURNS), rate, r ? r->rollcall_incomplete : 0,
                          at));
    if (s != BX_OK)
        return BX_ERR(err, s, "duty %s: request for %s: out of memory", j->timer->key, place);
    return escalate_outbox_add(j->env->db, BX_TOPIC_NOTIFY_REQUESTS, place, request_id, b->data,
                               NULL, err);
}

/* Writes the report of place (row r of the figures, row cr of the cases; r NULL: no classes)
 * unless it exists; *written is 1 when it is new. */
static bx_status upward_write(const upward_job *j, const char *place, const char *county,
                              const reports_row *r, const PGresult *cases, int cr, int *written,
                              bx_error *err)
{
    const duties_policy *dp = j->env->policy;
    reports_area_cases ac = {
        .suspected = strtol(PQgetvalue(cases, cr, RA_SUSPECTED), NULL, 10),
        .dropout = strtol(PQgetvalue(cases, cr, RA_DROPOUT), NULL, 10),
        .returned = strtol(PQgetvalue(cases, cr, RA_RETURNED), NULL, 10),
        .returns = strtol(PQgetvalue(cases, cr, RA_RETURNS), NULL, 10),
    };
    bx_buf figures;
    bx_buf_init(&figures, 0);
    bx_status s = reports_write_figures_json(&figures, r, &ac);
    if (s != BX_OK) {
        bx_buf_free(&figures);
        return BX_ERR(err, s, "duty %s: figures of %s: out of memory", j->timer->key, place);
    }
    char report_day[11], generated[40], request_id[200];
    bx_date_format(bx_time_local_date(j->timer->due_at), report_day);
    bx_time_format(bx_clock_now(), generated, sizeof(generated));
    snprintf(request_id, sizeof(request_id), "%.120s:%s", j->timer->key, place);
    bool ask = dp->up_template[j->k][0] != '\0';
    const char *params[] = {duty_kind_name(j->kind),
                            place,
                            j->period,
                            j->first,
                            j->last,
                            report_day,
                            county[0] ? county : NULL,
                            dp->up_role[j->k],
                            figures.data,
                            j->timer->key,
                            ask ? request_id : NULL,
                            generated,
                            j->term};
    PGresult *res = NULL;
    s = bx_pg_query(
        j->env->db,
        "INSERT INTO cases.upward_report (kind, area, period, first_day, last_day, report_day, "
        "county_code, owner_role, figures, duty_key, request_id, generated_at, term) VALUES ($1, "
        "$2, $3, $4::date, $5::date, $6::date, $7, $8, $9::jsonb, $10, $11, $12::timestamptz, "
        "$13) ON CONFLICT (kind, area, period) DO NOTHING RETURNING id",
        13, params, &res, err);
    *written = s == BX_OK && PQntuples(res) == 1;
    PQclear(res);
    bx_buf_free(&figures);
    if (s == BX_OK && *written && ask)
        s = upward_request(j, place, county, r, cases, cr, err);
    return s;
}

/* The places of the calendar's schools at the report's level, each with its standing lists: for a
 * school, counted over its own cases; for a county, city or province, over every school there
 * (whatever its calendar). */
static bx_status upward(const duties_env *env, const timers_timer *timer, duty_kind kind,
                        const char *calendar, const char *term, const char *first, const char *last,
                        const char *period, bx_error *err)
{
    int k = (int)kind - (int)DUTY_SCHOOL_MONTHLY;
    reports_level level = upward_levels[k];
    bx_buf b;
    bx_buf_init(&b, 1 << 14);
    upward_job j = {env, timer, kind, k, calendar, term, first, last, period, &b};
    PGresult *places = NULL;
    reports_row *rows = NULL;
    size_t nrows = 0;
    int made = 0, had = 0;
    bx_status s = reports_query_area_cases(env->db, level, "", calendar, first, last, &places, err);
    if (s == BX_OK && kind == DUTY_SCHOOL_MONTHLY) {
        reports_period rp = upward_period(&j, "");
        s = period_rows(env, &rp, REPORTS_SCHOOL, &rows, &nrows, err);
    }
    for (int i = 0; s == BX_OK && i < PQntuples(places); i++) {
        const char *place = PQgetvalue(places, i, RA_KEY);
        char county[8] = "";
        if (kind == DUTY_COUNTY_QUARTERLY)
            snprintf(county, sizeof(county), "%s", place);
        int written = 0;
        if (kind == DUTY_SCHOOL_MONTHLY) {
            const bx_reg_school *sc =
                env->registry ? bx_registry_school(env->registry, place) : NULL;
            if (sc)
                snprintf(county, sizeof(county), "%s", sc->county_code);
            s = upward_write(&j, place, county, reports_row_find(rows, nrows, place), places, i,
                             &written, err);
        } else {
            /* A place reported already (by another calendar's duty) is left as it is. */
            PGresult *seen = NULL;
            s = bx_pg_query(env->db,
                            "SELECT 1 FROM cases.upward_report WHERE kind = $1 AND area = $2 AND "
                            "period = $3",
                            3, (const char *[]){duty_kind_name(kind), place, period}, &seen, err);
            bool exists = s == BX_OK && PQntuples(seen) > 0;
            PQclear(seen);
            if (s != BX_OK || exists) {
                had += exists;
                continue;
            }
            PGresult *cases = NULL;
            reports_row *one = NULL;
            size_t none = 0;
            reports_period rp = upward_period(&j, place);
            s = reports_query_area_cases(env->db, level, place, "", first, last, &cases, err);
            IFOK(s, period_rows(env, &rp, level, &one, &none, err));
            int cr = -1;
            for (int c = 0; s == BX_OK && c < PQntuples(cases); c++)
                if (strcmp(PQgetvalue(cases, c, RA_KEY), place) == 0)
                    cr = c;
            if (s == BX_OK && cr >= 0)
                s = upward_write(&j, place, county, reports_row_find(one, none, place), cases, cr,
                                 &written, err);
            free(one);
            PQclear(cases);
        }
        made += written;
        had += s == BX_OK && !written;
    }
    if (s == BX_OK)
        bx_log_info("duty %s: %d %s reports of %s written, %d there already", timer->key, made,
                    reports_level_name(level), period, had);
    free(rows);
    PQclear(places);
    bx_buf_free(&b);
    return s;
}

/* One roll-call request: about class (its registry name, a label), to role (or staff_id). */
static bx_status rollcall_request(const duties_env *env, const timers_timer *timer,
                                  const char *what, const char *role, const char *staff_id,
                                  const char *tmpl, const char *channel, PGresult *res, int r,
                                  const char *since, bx_buf *b, bx_error *err)
{
    const char *class_id = PQgetvalue(res, r, 0), *school = PQgetvalue(res, r, 2);
    char request_id[200], at[40];
    snprintf(request_id, sizeof(request_id), "%.120s:%s:%s", timer->key, what, class_id);
    bx_time_format(timer->due_at, at, sizeof(at));
    bx_buf_reset(b);
    bx_status s = bx_buf_puts(b, "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":");
    IFOK(s, bx_buf_json_string(b, request_id));
    IFOK(s, bx_buf_printf(b,
                          ",\"case_id\":null,\"student_id\":null,\"template\":\"%s\","
                          "\"recipient_role\":\"%s\",\"recipient_staff_id\":",
                          tmpl, role));
    IFOK(s, staff_id ? bx_buf_json_string(b, staff_id) : bx_buf_puts(b, "null"));
    IFOK(s, bx_buf_printf(b, ",\"channel\":\"%s\",\"params\":{\"school_id\":", channel));
    IFOK(s, bx_buf_json_string(b, school));
    IFOK(s, bx_buf_puts(b, ",\"class\":"));
    IFOK(s, bx_buf_json_string(b, PQgetvalue(res, r, 1)));
    if (since)
        IFOK(s, bx_buf_printf(b, ",\"first_day\":\"%s\"", since));
    IFOK(s, bx_buf_printf(b, "},\"not_before\":null,\"requested_at\":\"%s\"}", at));
    IFOK(s, escalate_outbox_add(env->db, BX_TOPIC_NOTIFY_REQUESTS, school, request_id, b->data,
                                NULL, err));
    return s;
}

/* The classes of the calendar without a roll call on day: in the morning their homeroom teacher
 * is reminded; at the day's end the principal is told, and the academic office too when the
 * school day before had none either (their absence figures cannot be trusted). A day already
 * over when its checks fire (caught up after a clock jump or a stop) reminds nobody; its end of
 * day asks the rollcall.missed_* roles as tasks for their digest, or only logs without them. */
static bx_status rollcall(const duties_env *env, const timers_timer *timer, duty_kind kind,
                          const char *calendar, const char *day, bx_error *err)
{
    const duties_policy *dp = env->policy;
    const bx_calendar *cal = env->registry ? bx_registry_calendar(env->registry, calendar) : NULL;
    bx_date d = BX_DATE_NONE;
    if (bx_date_parse(day, &d) != BX_OK)
        return BX_ERR(err, BX_EINVAL, "duty %s: day \"%s\"", timer->key, day);
    char prev[11] = "";
    bx_date before = cal ? bx_calendar_add_school_days(cal, d, -1) : BX_DATE_NONE;
    if (before != BX_DATE_NONE)
        bx_date_format(before, prev);
    bool over = d < bx_time_local_date(bx_clock_now());
    if (over && kind == DUTY_ROLLCALL_MORNING) {
        bx_log_info("duty %s: %s is over: no reminder", timer->key, day);
        return BX_OK;
    }
    /* a day gone by: its own template, as a task for the digest, only the day named */
    const char *eod_role = over ? dp->missed_role : dp->eod_role;
    const char *eod_tmpl = over ? dp->missed_template : dp->eod_template;
    const char *two_role = over ? dp->missed_two_role : dp->two_days_role;
    const char *two_tmpl = over ? dp->missed_two_template : dp->two_days_template;
    const char *channel = over ? "task" : "sms";
    PGresult *res = NULL;
    bx_status s = escalate_store_unreported_classes(env->db, calendar, day, prev, &res, err);
    bx_buf b;
    bx_buf_init(&b, 1 << 14);
    int told = 0, two_days = 0;
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        if (kind == DUTY_ROLLCALL_MORNING) {
            const char *staff = PQgetvalue(res, r, 3);
            if (staff[0] == '\0')
                continue; /* no homeroom teacher: the principal hears at the day's end */
            s = rollcall_request(env, timer, "remind", dp->remind_role, staff, dp->remind_template,
                                 channel, res, r, NULL, &b, err);
            told++;
            continue;
        }
        if (eod_role[0] != '\0') {
            s = rollcall_request(env, timer, "end", eod_role, NULL, eod_tmpl, channel, res, r,
                                 over ? day : NULL, &b, err);
            told++;
        }
        if (s == BX_OK && PQgetvalue(res, r, 4)[0] == 't' && two_role[0] != '\0') {
            s = rollcall_request(env, timer, "two_days", two_role, NULL, two_tmpl, channel, res, r,
                                 prev, &b, err);
            two_days++;
        }
    }
    if (s == BX_OK && PQntuples(res) > 0)
        bx_log_info("duty %s: %d classes without a roll call, %d told, %d two days in a row%s",
                    timer->key, PQntuples(res), told, two_days,
                    over ? " (the day was over: told as tasks for the digest)" : "");
    bx_buf_free(&b);
    PQclear(res);
    return s;
}

bx_status duties_fire(const duties_env *env, const timers_timer *timer, bx_error *err)
{
    cJSON *p = cJSON_Parse(timer->payload ? timer->payload : "{}");
    const char *names[] = {"duty", "calendar_id", "term", "first_day", "last_day", "period"};
    const char *v[6] = {NULL};
    for (int i = 0; i < 6; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(p, names[i]);
        v[i] = cJSON_IsString(item) ? item->valuestring : NULL;
    }
    duty_kind kind = v[0] ? duty_kind_parse(v[0]) : 0;
    bx_status s = BX_OK;
    if (kind == 0 || !v[1] || !v[2] || !v[3] || !v[4] || env->policy == NULL)
        bx_log_warn("duty %s: unreadable payload or no duties policy; fired without effect",
                    timer->key);
    else if (kind == DUTY_TERM_START || kind == DUTY_TRANSITION)
        s = check(env, timer, kind, v[1], v[2], v[3], v[4], err);
    else if (kind == DUTY_ROLLCALL_MORNING || kind == DUTY_ROLLCALL_END)
        s = rollcall(env, timer, kind, v[1], v[4], err);
    else if (kind >= DUTY_SCHOOL_MONTHLY && (!v[5] || !env->policy->upward))
        bx_log_warn("duty %s: no period or no upward.* in the duties policy; fired without effect",
                    timer->key);
    else if (kind >= DUTY_SCHOOL_MONTHLY)
        s = upward(env, timer, kind, v[1], v[2], v[3], v[4], v[5], err);
    else
        s = report(env, timer, kind, v[1], v[2], v[3], v[4], err);
    cJSON_Delete(p);
    return s;
}

/* The last school day of the calendar's term whose roll-call checks were scheduled, or
 * BX_DATE_NONE (the day is the end of the key: "duty:rollcall_end:<calendar>:<term>:<day>"). */
static bx_status last_rollcall_day(PGconn *db, const char *cal_id, const char *term, bx_date *out,
                                   bx_error *err)
{
    char prefix[DUTIES_KEY_SIZE];
    snprintf(prefix, sizeof(prefix), "duty:%s:%s:%s:", duty_kind_name(DUTY_ROLLCALL_END), cal_id,
             term);
    PGresult *res = NULL;
    /* a range on the key's index ('~' sorts after the day's digits) */
    bx_status s = bx_pg_query(db,
                              "SELECT right(max(timer_key), 10) FROM cases.timer WHERE timer_key "
                              "> $1 AND timer_key < $1 || '~'",
                              1, (const char *[]){prefix}, &res, err);
    *out = BX_DATE_NONE;
    if (s == BX_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
        bx_date_parse(PQgetvalue(res, 0, 0), out) != BX_OK)
        *out = BX_DATE_NONE;
    PQclear(res);
    return s;
}

/* Schedules the duties of one term of a calendar (a row: calendar, term, first day, last day). */
static bx_status schedule_term(PGconn *db, const duties_policy *dp, const bx_registry *registry,
                               PGresult *res, int r, bx_date today, int *created, bx_error *err)
{
    const char *cal_id = PQgetvalue(res, r, 0), *term = PQgetvalue(res, r, 1);
    const bx_calendar *cal = bx_registry_calendar(registry, cal_id);
    bx_date first, last;
    if (cal == NULL || bx_date_parse(PQgetvalue(res, r, 2), &first) != BX_OK ||
        bx_date_parse(PQgetvalue(res, r, 3), &last) != BX_OK)
        return BX_OK;
    duty plan[DUTIES_PER_TERM + DUTIES_PER_DAY * (DUTIES_CATCH_UP + 1)];
    int n = duties_plan(dp, cal, cal_id, term, first, last, plan, DUTIES_PER_TERM);
    bx_status s = BX_OK;
    if (dp->remind_minute >= 0) {
        /* the school days gone by since the last one that had its checks */
        bx_date last_day = BX_DATE_NONE, missed[DUTIES_CATCH_UP];
        s = last_rollcall_day(db, cal_id, term, &last_day, err);
        int skipped = 0;
        int m = s == BX_OK ? duties_catch_up_days(cal, first, last, last_day, today, missed,
                                                  DUTIES_CATCH_UP, &skipped)
                           : 0;
        for (int i = 0; i < m; i++)
            n += duties_plan_day(dp, cal, cal_id, term, first, last, missed[i], plan + n,
                                 DUTIES_PER_DAY);
        if (m > 0)
            bx_log_info("calendar %s term %s: the roll-call checks of %d school days gone by "
                        "caught up",
                        cal_id, term, m);
        if (skipped > 0)
            bx_log_warn("calendar %s term %s: the roll-call checks of %d earlier school days are "
                        "not caught up (only the last %d are); bxctl report's reporting rate "
                        "counts them",
                        cal_id, term, skipped, DUTIES_CATCH_UP);
    }
    n += duties_plan_day(dp, cal, cal_id, term, first, last, today, plan + n, DUTIES_PER_DAY);
    for (int i = 0; i < n && s == BX_OK; i++) {
        char payload[512];
        int one = 0;
        s = duty_payload(&plan[i], cal_id, term, payload, sizeof(payload));
        if (s != BX_OK)
            s = BX_ERR(err, s, "duty %s: payload too long", plan[i].key);
        IFOK(s,
             timers_schedule_with(db, plan[i].key, 0, plan[i].due_at, "duty", payload, &one, err));
        *created += one;
    }
    return s;
}

bx_status duties_schedule(PGconn *db, const duties_policy *p, const bx_registry *registry,
                          bx_date today, int *created, bx_error *err)
{
    *created = 0;
    char day[11];
    bx_date_format(today, day);
    PGresult *res = NULL;
    bx_status s = escalate_store_terms_from(db, day, &res, err);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++)
        s = schedule_term(db, p, registry, res, r, today, created, err);
    PQclear(res);
    /* the day and registry revision scheduled for, which settling waits for (migration 0033) */
    char revision[24];
    snprintf(revision, sizeof(revision), "%lld", bx_registry_loaded_revision(registry));
    IFOK(s,
         bx_pg_command(db,
                       "INSERT INTO cases.duties_scheduled (day, revision) VALUES ($1, $2) "
                       "ON CONFLICT (one) DO UPDATE SET day = greatest(cases.duties_scheduled.day, "
                       "EXCLUDED.day), revision = greatest(cases.duties_scheduled.revision, "
                       "EXCLUDED.revision), scheduled_at = now()",
                       2, (const char *const[]){day, revision}, NULL, err));
    return s;
}

/* ---- duties run off the consuming loop (cases.duty_run, migration 0032) ---- */

bx_status duties_queue_run(PGconn *db, const timers_timer *timer, int *queued, bx_error *err)
{
    *queued = 0;
    char due[40];
    bx_time_format_pg(timer->due_at, due);
    const char *params[] = {timer->key, timer->payload ? timer->payload : "{}", due};
    long long rows = 0;
    bx_status s = bx_pg_command(db,
                                "INSERT INTO cases.duty_run (timer_key, payload, due_at) "
                                "VALUES ($1, $2::jsonb, $3::timestamptz) "
                                "ON CONFLICT (timer_key) DO NOTHING",
                                3, params, &rows, err);
    *queued = rows > 0;
    return s;
}

/* The next queued run, locked (FOR UPDATE SKIP LOCKED: a replica's run is skipped, not waited
 * for), as the timer it came from; *found false when none is due. */
static bx_status take_run(PGconn *db, timers_timer *t, bool *found, bx_error *err)
{
    *found = false;
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "SELECT timer_key, payload::text, "
                              "(extract(epoch FROM due_at) * 1000)::bigint, attempts "
                              "FROM cases.duty_run WHERE done_at IS NULL "
                              "AND (retry_at IS NULL OR retry_at <= now()) "
                              "ORDER BY due_at, timer_key FOR UPDATE SKIP LOCKED LIMIT 1",
                              0, NULL, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        snprintf(t->key, sizeof(t->key), "%s", PQgetvalue(res, 0, 0));
        snprintf(t->kind, sizeof(t->kind), "duty");
        t->payload = strdup(PQgetvalue(res, 0, 1));
        t->due_at = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        t->attempts = (int)strtol(PQgetvalue(res, 0, 3), NULL, 10) + 1;
        if (t->payload == NULL)
            s = BX_ERR(err, BX_ENOMEM, "duty %s: out of memory", t->key);
        *found = s == BX_OK;
    }
    PQclear(res);
    return s;
}

bx_status duties_run_next(const duties_env *env, duties_run *run, bx_error *err)
{
    memset(run, 0, sizeof(*run));
    timers_timer t = {0};
    bool found = false;
    bx_status s = bx_pg_exec(env->db, "BEGIN", err);
    IFOK(s, take_run(env->db, &t, &found, err));
    if (s == BX_OK && found) {
        snprintf(run->key, sizeof(run->key), "%s", t.key);
        run->attempt = t.attempts;
        run->taken = true;
        s = duties_fire(env, &t, err);
        char done[40];
        bx_time_format_pg(bx_clock_now(), done);
        const char *params[] = {t.key, done};
        PGresult *res = NULL;
        IFOK(s, bx_pg_query(env->db,
                            "UPDATE cases.duty_run SET done_at = $2::timestamptz "
                            "WHERE timer_key = $1",
                            2, params, &res, err));
        PQclear(res);
    }
    IFOK(s, bx_pg_exec(env->db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(env->db);
    free(t.payload);
    return s;
}

bx_status duties_run_failed(PGconn *db, const duties_run *run, int max_attempts, const char *why,
                            bool *given_up, bx_error *err)
{
    *given_up = false;
    char attempt[16], max[16], now[40];
    snprintf(attempt, sizeof(attempt), "%d", run->attempt);
    snprintf(max, sizeof(max), "%d", max_attempts);
    bx_time_format_pg(bx_clock_now(), now);
    const char *params[] = {run->key, attempt, max, why, now};
    PGresult *res = NULL;
    /* retried after 2, 4, 8 ... s (at most 5 minutes); given up after max_attempts */
    bx_status s = bx_pg_query(db,
                              "UPDATE cases.duty_run SET attempts = $2::int, last_error = left($4, "
                              "500), retry_at = now() + least(300, 2 ^ least($2::int, 9)) * "
                              "interval '1 second', given_up = $2::int >= $3::int, done_at = CASE "
                              "WHEN $2::int >= $3::int THEN $5::timestamptz END "
                              "WHERE timer_key = $1 AND done_at IS NULL RETURNING given_up",
                              5, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        *given_up = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return s;
}
