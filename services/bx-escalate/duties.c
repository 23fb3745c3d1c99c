/* duties: the calendar duties' policy file, the plan of a term's duties, and their timers
 * scheduled and fired (duties.h). */
#include "duties.h"

#include "bx_buf.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_policyfile.h"
#include "outbox.h"
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
                                       NULL};
#define FIRST_OPTIONAL 10 /* settings from here on may be left out */

const char *duty_kind_name(duty_kind k)
{
    switch (k) {
    case DUTY_TERM_START:
        return "term_start";
    case DUTY_TRANSITION:
        return "transition";
    case DUTY_OUT_OF_SCHOOL_REPORT:
        return "out_of_school_report";
    case DUTY_MONTHLY_SUMMARY:
        return "monthly_summary";
    case DUTY_ROLLCALL_MORNING:
        return "rollcall_morning";
    case DUTY_ROLLCALL_END:
        return "rollcall_end";
    }
    return NULL;
}

duty_kind duty_kind_parse(const char *name)
{
    for (int k = DUTY_TERM_START; k <= DUTY_ROLLCALL_END; k++)
        if (strcmp(duty_kind_name((duty_kind)k), name) == 0)
            return (duty_kind)k;
    return 0;
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

static bool notify_ok(char *v, char *role, char *tmpl)
{
    char *sp = strchr(v, ' ');
    if (sp == NULL)
        return false;
    *sp = '\0';
    char *r = trim(v), *t = trim(sp + 1);
    bool known = false;
    for (int i = 0; roles[i]; i++)
        known = known || strcmp(roles[i], r) == 0;
    if (!known || !name_ok(t))
        return false;
    snprintf(role, DUTIES_NAME_SIZE, "%s", r);
    snprintf(tmpl, DUTIES_NAME_SIZE, "%s", t);
    return true;
}

static bx_status set_one(duties_policy *p, const char *name, int line, const char *key, char *v,
                         bx_error *err)
{
    bool ok = false;
    const char *want = "";
    if (strcmp(key, "duties.time") == 0 || strcmp(key, "rollcall.remind_time") == 0) {
        int h = 0, m = 0;
        char extra;
        ok = sscanf(v, "%2d:%2d%c", &h, &m, &extra) == 2 && strlen(v) == 5 && h >= 0 && h < 24 &&
             m >= 0 && m < 60;
        *(key[0] == 'd' ? &p->minute : &p->remind_minute) = h * 60 + m;
        want = "a time HH:MM";
    } else if (strcmp(key, "rollcall.remind") == 0) {
        ok = notify_ok(v, p->remind_role, p->remind_template);
        want = "\"<staff role> <template>\"";
    } else if (strcmp(key, "rollcall.end_of_day") == 0) {
        ok = notify_ok(v, p->eod_role, p->eod_template);
        want = "\"<staff role> <template>\"";
    } else if (strcmp(key, "rollcall.two_days") == 0) {
        ok = notify_ok(v, p->two_days_role, p->two_days_template);
        want = "\"<staff role> <template>\"";
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
    } else if (strcmp(key, "out_of_school_report.notify") == 0) {
        ok = notify_ok(v, p->report_role, p->report_template);
        want = "\"<staff role> <template>\"";
    } else if (strcmp(key, "monthly_summary.notify") == 0) {
        ok = notify_ok(v, p->monthly_role, p->monthly_template);
        want = "\"<staff role> <template>\"";
    }
    if (!ok)
        return BX_ERR(err, BX_EINVAL, "%s:%d: %s: expected %s", name, line, key, want);
    return BX_OK;
}

/* The duties policy being read: a bx_policyfile callback's state. */
typedef struct reading {
    duties_policy p;
    bool seen[16];
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
    /* the roll-call checks come all together or not at all */
    int optional = 0;
    for (int i = FIRST_OPTIONAL; settings[i]; i++)
        optional += rd->seen[i];
    if (s == BX_OK && optional > 0 && optional < 4)
        s = BX_ERR(err, BX_EINVAL,
                   "%s: rollcall.remind_time, rollcall.remind, rollcall.end_of_day and "
                   "rollcall.two_days go together",
                   name);
    if (s == BX_OK) {
        *out = rd->p;
        if (optional == 0)
            out->remind_minute = -1;
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

bx_status duty_payload(const duty *d, const char *calendar_id, const char *term_code, char *out,
                       size_t size)
{
    char f[11], l[11];
    bx_date_format(d->first_day, f);
    bx_date_format(d->last_day, l);
    int n = snprintf(out, size,
                     "{\"duty\":\"%s\",\"calendar_id\":\"%s\",\"term\":\"%s\",\"first_day\":\"%s\","
                     "\"last_day\":\"%s\"}",
                     duty_kind_name(d->kind), calendar_id, term_code, f, l);
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
    char at[40];
    bx_time_format(timer->due_at, at, sizeof(at));
    bx_buf b;
    bx_buf_init(&b, 1 << 16);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        /* No staff id: bx-notify reaches every officer of the role in the county. */
        const char *county = PQgetvalue(res, r, 0);
        char request_id[200];
        snprintf(request_id, sizeof(request_id), "%.120s:%s", timer->key, county);
        bx_buf_reset(&b);
        s = bx_buf_printf(&b,
                          "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s\","
                          "\"case_id\":null,\"student_id\":null,\"template\":\"%s\","
                          "\"recipient_role\":\"%s\",\"recipient_staff_id\":null",
                          request_id, tmpl, role);
        IFOK(s,
             bx_buf_printf(&b,
                           ",\"channel\":\"task\",\"params\":{\"county_code\":\"%s\","
                           "\"term\":\"%s\",\"first_day\":\"%s\",\"last_day\":\"%s\","
                           "\"suspected\":%s,\"dropouts\":%s,\"opened\":%s,\"returned\":%s},"
                           "\"not_before\":null,\"requested_at\":\"%s\"}",
                           county, term, first, last, PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                           PQgetvalue(res, r, 3), PQgetvalue(res, r, 4), at));
        IFOK(s, escalate_outbox_add(env->db, BX_TOPIC_NOTIFY_REQUESTS, county, request_id, b.data,
                                    NULL, err));
        if (s == BX_OK)
            bx_log_info("duty %s: county %s: %s %s suspected, %s on the roster", timer->key, county,
                        duty_kind_name(kind), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
    }
    bx_buf_free(&b);
    PQclear(res);
    return s;
}

/* One roll-call request: about class (its registry name, a label), to role (or staff_id). */
static bx_status rollcall_request(const duties_env *env, const timers_timer *timer,
                                  const char *what, const char *role, const char *staff_id,
                                  const char *tmpl, PGresult *res, int r, const char *since,
                                  bx_buf *b, bx_error *err)
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
    IFOK(s, bx_buf_puts(b, ",\"channel\":\"sms\",\"params\":{\"school_id\":"));
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
 * school day before had none either (their absence figures cannot be trusted). */
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
                                 res, r, NULL, &b, err);
            told++;
            continue;
        }
        s = rollcall_request(env, timer, "end", dp->eod_role, NULL, dp->eod_template, res, r, NULL,
                             &b, err);
        told++;
        if (s == BX_OK && PQgetvalue(res, r, 4)[0] == 't') {
            s = rollcall_request(env, timer, "two_days", dp->two_days_role, NULL,
                                 dp->two_days_template, res, r, prev, &b, err);
            two_days++;
        }
    }
    if (s == BX_OK && PQntuples(res) > 0)
        bx_log_info("duty %s: %d classes without a roll call, %d told, %d two days in a row",
                    timer->key, PQntuples(res), told, two_days);
    bx_buf_free(&b);
    PQclear(res);
    return s;
}

bx_status duties_fire(const duties_env *env, const timers_timer *timer, bx_error *err)
{
    cJSON *p = cJSON_Parse(timer->payload ? timer->payload : "{}");
    const char *names[] = {"duty", "calendar_id", "term", "first_day", "last_day"};
    const char *v[5] = {NULL};
    for (int i = 0; i < 5; i++) {
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
    else
        s = report(env, timer, kind, v[1], v[2], v[3], v[4], err);
    cJSON_Delete(p);
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
    duty plan[DUTIES_PER_TERM + DUTIES_PER_DAY];
    int n = duties_plan(dp, cal, cal_id, term, first, last, plan, DUTIES_PER_TERM);
    n += duties_plan_day(dp, cal, cal_id, term, first, last, today, plan + n, DUTIES_PER_DAY);
    bx_status s = BX_OK;
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
    return s;
}
