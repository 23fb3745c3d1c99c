/* duties: the calendar duties' policy file and the plan of a term's duties (duties.h). */
#include "duties.h"

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
                                       NULL};

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
    }
    return NULL;
}

duty_kind duty_kind_parse(const char *name)
{
    for (int k = DUTY_TERM_START; k <= DUTY_MONTHLY_SUMMARY; k++)
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
    if (strcmp(key, "duties.time") == 0) {
        int h = 0, m = 0;
        char extra;
        ok = sscanf(v, "%2d:%2d%c", &h, &m, &extra) == 2 && strlen(v) == 5 && h >= 0 && h < 24 &&
             m >= 0 && m < 60;
        p->minute = h * 60 + m;
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

bx_status duties_policy_parse(const char *text, size_t len, const char *name, duties_policy *out,
                              bx_error *err)
{
    duties_policy p;
    memset(&p, 0, sizeof(p));
    bool seen[16] = {false};
    int line = 0;
    size_t pos = 0;
    while (pos < len) {
        line++;
        size_t n = 0;
        while (pos + n < len && text[pos + n] != '\n')
            n++;
        if (n >= LINE_MAX_BYTES)
            return BX_ERR(err, BX_EINVAL, "%s:%d: line longer than %d bytes", name, line,
                          LINE_MAX_BYTES - 1);
        char buf[LINE_MAX_BYTES];
        memcpy(buf, text + pos, n);
        buf[n] = '\0';
        pos += n + 1;
        char *s = trim(buf);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL)
            return BX_ERR(err, BX_EINVAL, "%s:%d: expected \"name = value\"", name, line);
        *eq = '\0';
        char *key = trim(s), *v = trim(eq + 1);
        int idx = -1;
        for (int i = 0; settings[i]; i++)
            if (strcmp(settings[i], key) == 0)
                idx = i;
        if (idx < 0)
            return BX_ERR(err, BX_EINVAL, "%s:%d: unknown setting %.60s", name, line, key);
        if (seen[idx])
            return BX_ERR(err, BX_EINVAL, "%s:%d: %s given twice", name, line, key);
        seen[idx] = true;
        bx_status st = set_one(&p, name, line, key, v, err);
        if (st != BX_OK)
            return st;
    }
    for (int i = 0; settings[i]; i++)
        if (!seen[i])
            return BX_ERR(err, BX_EINVAL, "%s: %s is missing", name, settings[i]);
    *out = p;
    return BX_OK;
}

bx_status duties_policy_load(const char *path, duties_policy *out, bx_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return BX_ERR(err, BX_EIO, "%s: %s", path, strerror(errno));
    char *text = malloc(POLICY_MAX_BYTES + 1);
    if (text == NULL) {
        fclose(f);
        return BX_ERR(err, BX_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(text, 1, POLICY_MAX_BYTES + 1, f);
    fclose(f);
    bx_status s = n > POLICY_MAX_BYTES
                      ? BX_ERR(err, BX_EINVAL, "%s: larger than %d bytes", path, POLICY_MAX_BYTES)
                      : duties_policy_parse(text, n, path, out, err);
    free(text);
    return s;
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
