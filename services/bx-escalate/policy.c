/* policy: the ladder policy file (deploy/policy/ladder.policy), a strict loader whose errors name
 * file, line and setting. */
#include "ladder.h"

#include "bx_policyfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_FILE_MAX 65536
#define LINE_MAX_BYTES  1024
#define SHOWN           40 /* bytes of a bad value quoted in an error */

static const char *const staff_roles[] = {"homeroom_teacher", "subject_teacher",  "principal",
                                          "academic_office",  "township_officer", "county_officer"};

/* Action tags a task's done_by may name; a bare prefix matches every qualified tag. */
static const char *const action_tags[] = {"contact_made",
                                          "home_visit",
                                          "letter_delivered",
                                          "letter_delivered:persuasion_letter",
                                          "letter_delivered:return_notice",
                                          "letter_delivered:deadline_notice",
                                          "returned",
                                          "returned:signed",
                                          "returned:unsigned",
                                          "transfer_out",
                                          "transfer_confirmed",
                                          "suspension",
                                          "suspension:approved",
                                          "suspension:unapproved",
                                          "task_done"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0)
            return true;
    }
    return false;
}

/* [a-z][a-z0-9_.]{0,38} (dots only when allow_dot). */
static bool name_ok(const char *s, bool allow_dot)
{
    size_t n = strlen(s);
    if (n == 0 || n >= LADDER_NAME_SIZE || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              (allow_dot && c == '.')))
            return false;
    }
    return true;
}

/* Splits v at commas in place into up to max trimmed, non-empty items; -1 on an empty item or too
 * many. */
static int split(char *v, char **items, int max)
{
    int n = 0;
    if (*bx_policyfile_trim(v) == '\0')
        return 0;
    for (char *p = v;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        char *item = bx_policyfile_trim(p);
        if (*item == '\0' || n == max)
            return -1;
        items[n++] = item;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return n;
}

static bool parse_int(const char *v, int min, int max, int *out)
{
    return bx_policyfile_int(v, 6, min, max, out);
}

/* "3 school days", "24 hours", "7 days", "1 week", "1 month". */
static bool parse_span(const char *v, ladder_span *out)
{
    char num[8], unit[32], extra[8];
    int words = sscanf(v, "%7s %31[a-z _] %7s", num, unit, extra);
    if (words != 2)
        return false;
    ladder_span s = {0, 0};
    if (!parse_int(num, 0, 400, &s.n))
        return false;
    char *u = bx_policyfile_trim(unit);
    if (strcmp(u, "hour") == 0 || strcmp(u, "hours") == 0) {
        s.unit = LADDER_UNIT_HOURS;
    } else if (strcmp(u, "day") == 0 || strcmp(u, "days") == 0) {
        s.unit = LADDER_UNIT_DAYS;
    } else if (strcmp(u, "week") == 0 || strcmp(u, "weeks") == 0) {
        s.unit = LADDER_UNIT_DAYS;
        s.n *= 7;
    } else if (strcmp(u, "school day") == 0 || strcmp(u, "school days") == 0) {
        s.unit = LADDER_UNIT_SCHOOL_DAYS;
    } else if (strcmp(u, "month") == 0 || strcmp(u, "months") == 0) {
        s.unit = LADDER_UNIT_MONTHS;
    } else {
        return false;
    }
    *out = s;
    return true;
}

#define SPAN_EXPECTED "expected a count and hours, days, weeks, school days or months"

typedef struct parser {
    ladder_policy p;
    const char *file;
    /* names given before they can be resolved: stage tasks, and the ladder's special tasks */
    char stage_tasks[LADDER_STAGES_MAX][LADDER_STAGE_TASKS_MAX][LADDER_NAME_SIZE];
    int stage_line[LADDER_STAGES_MAX];
    int task_line[LADDER_TASK_RULES_MAX];
    bool task_has_owner[LADDER_TASK_RULES_MAX], task_has_due[LADDER_TASK_RULES_MAX];
    char special[4][LADDER_NAME_SIZE]; /* return_signoff, transfer, suspension, enrol */
    int special_line[4];
    char presence_below[LADDER_NAME_SIZE]; /* ladder.presence_closes_below; "" none */
    int presence_line;
    char task_from[LADDER_TASK_RULES_MAX][LADDER_NAME_SIZE]; /* task.<kind>.from; "" none */
    int task_from_line[LADDER_TASK_RULES_MAX];
} parser;

static const char *const special_names[4] = {"ladder.return_signoff_task", "ladder.transfer_task",
                                             "ladder.suspension_task", "ladder.enrol_task"};

static int stage_index(parser *ps, const char *name, int line, bx_error *err, bx_status *s)
{
    int i = ladder_policy_stage(&ps->p, name);
    if (i >= 0)
        return i;
    if (!in_list(ladder_stage_names, LADDER_STAGES_MAX, name)) {
        *s = BX_ERR(err, BX_EINVAL,
                    "%s:%d: stage.%.*s: unknown stage (expected one of contact_family, "
                    "home_visit, school_report, academic_office, dropout_roster, township_notice, "
                    "deadline_notice, legal_referral)",
                    ps->file, line, SHOWN, name);
        return -1;
    }
    i = ps->p.nstages++;
    snprintf(ps->p.stages[i].name, LADDER_NAME_SIZE, "%s", name);
    ps->stage_line[i] = line;
    return i;
}

static int task_index(parser *ps, const char *kind, int line, bx_error *err, bx_status *s)
{
    int i = ladder_policy_task(&ps->p, kind);
    if (i >= 0)
        return i;
    if (!name_ok(kind, false)) {
        *s = BX_ERR(err, BX_EINVAL, "%s:%d: task.%.*s: a task kind is [a-z][a-z0-9_], up to 39",
                    ps->file, line, SHOWN, kind);
        return -1;
    }
    if (ps->p.ntask_rules == LADDER_TASK_RULES_MAX) {
        *s = BX_ERR(err, BX_EINVAL, "%s:%d: task.%s: more than %d task kinds", ps->file, line, kind,
                    LADDER_TASK_RULES_MAX);
        return -1;
    }
    i = ps->p.ntask_rules++;
    ladder_task_rule *r = &ps->p.task_rules[i];
    snprintf(r->kind, LADDER_NAME_SIZE, "%s", kind);
    r->recur_while = LADDER_WHILE_OPEN;
    ps->task_line[i] = line;
    return i;
}

#define BAD(...) (s = BX_ERR(err, BX_EINVAL, __VA_ARGS__))

static bx_status set_ladder(parser *ps, const char *key, char *v, int line, bx_error *err)
{
    bx_status s = BX_OK;
    ladder_policy *p = &ps->p;
    if (strcmp(key, "ladder.name") == 0) {
        if (!name_ok(v, true))
            BAD("%s:%d: %s: expected [a-z][a-z0-9_.], up to 39, got \"%.*s\"", ps->file, line, key,
                SHOWN, v);
        else
            snprintf(p->name, sizeof(p->name), "%s", v);
    } else if (strcmp(key, "ladder.deadline_time") == 0) {
        int h, m;
        char tail;
        if (strlen(v) != 5 || sscanf(v, "%2d:%2d%c", &h, &m, &tail) != 2 || h < 0 || h > 23 ||
            m < 0 || m > 59)
            BAD("%s:%d: %s: expected HH:MM (Asia/Shanghai), got \"%.*s\"", ps->file, line, key,
                SHOWN, v);
        else
            p->deadline_minute = h * 60 + m;
    } else if (strcmp(key, "ladder.task_notice") == 0 ||
               strcmp(key, "ladder.overdue_notice") == 0) {
        char *dst = key[7] == 't' ? p->task_notice : p->overdue_notice;
        if (strcmp(v, "none") == 0)
            dst[0] = '\0';
        else if (!name_ok(v, true))
            BAD("%s:%d: %s: expected a template name or none, got \"%.*s\"", ps->file, line, key,
                SHOWN, v);
        else
            snprintf(dst, LADDER_NAME_SIZE, "%s", v);
    } else if (strcmp(key, "ladder.presence_closes_below") == 0) {
        if (strcmp(v, "none") != 0 && !name_ok(v, false))
            return BAD("%s:%d: %s: expected a stage name or none, got \"%.*s\"", ps->file, line,
                       key, SHOWN, v);
        snprintf(ps->presence_below, LADDER_NAME_SIZE, "%s", strcmp(v, "none") == 0 ? "" : v);
        ps->presence_line = line;
    } else {
        int k = 0;
        while (k < 4 && strcmp(key, special_names[k]) != 0)
            k++;
        if (k == 4)
            return BAD("%s:%d: unknown setting %.*s", ps->file, line, SHOWN, key);
        if (strcmp(v, "none") != 0 && !name_ok(v, false))
            return BAD("%s:%d: %s: expected a task kind or none, got \"%.*s\"", ps->file, line, key,
                       SHOWN, v);
        snprintf(ps->special[k], LADDER_NAME_SIZE, "%s", strcmp(v, "none") == 0 ? "" : v);
        ps->special_line[k] = line;
    }
    return s;
}

static bx_status set_task(parser *ps, const char *key, const char *kind, const char *field, char *v,
                          int line, bx_error *err)
{
    bx_status s = BX_OK;
    int i = task_index(ps, kind, line, err, &s);
    if (i < 0)
        return s;
    ladder_task_rule *r = &ps->p.task_rules[i];
    if (strcmp(field, "owner") == 0) {
        if (!in_list(staff_roles, COUNT(staff_roles), v))
            return BAD("%s:%d: %s: expected a staff role (homeroom_teacher, subject_teacher, "
                       "principal, academic_office, township_officer, county_officer), got "
                       "\"%.*s\"",
                       ps->file, line, key, SHOWN, v);
        snprintf(r->owner_role, LADDER_NAME_SIZE, "%s", v);
        ps->task_has_owner[i] = true;
    } else if (strcmp(field, "escalate_to") == 0) {
        if (strcmp(v, "none") == 0)
            r->escalate_to[0] = '\0';
        else if (!in_list(staff_roles, COUNT(staff_roles), v))
            return BAD("%s:%d: %s: expected a staff role or none, got \"%.*s\"", ps->file, line,
                       key, SHOWN, v);
        else
            snprintf(r->escalate_to, LADDER_NAME_SIZE, "%s", v);
    } else if (strcmp(field, "due") == 0 || strcmp(field, "every") == 0) {
        ladder_span span;
        if (!parse_span(v, &span))
            return BAD("%s:%d: %s: " SPAN_EXPECTED ", got \"%.*s\"", ps->file, line, key, SHOWN, v);
        if (field[0] == 'e' && span.n == 0)
            return BAD("%s:%d: %s: a recurrence needs a count of at least 1", ps->file, line, key);
        if (field[0] == 'd') {
            r->due = span;
            ps->task_has_due[i] = true;
        } else {
            r->every = span;
        }
    } else if (strcmp(field, "from") == 0) {
        if (!name_ok(v, false))
            return BAD("%s:%d: %s: expected a stage name, got \"%.*s\"", ps->file, line, key, SHOWN,
                       v);
        snprintf(ps->task_from[i], LADDER_NAME_SIZE, "%s", v);
        ps->task_from_line[i] = line;
    } else if (strcmp(field, "carries_over") == 0) {
        if (strcmp(v, "yes") == 0)
            r->carries_over = true;
        else if (strcmp(v, "no") == 0)
            r->carries_over = false;
        else
            return BAD("%s:%d: %s: expected yes or no, got \"%.*s\"", ps->file, line, key, SHOWN,
                       v);
    } else if (strcmp(field, "while") == 0) {
        if (strcmp(v, "open") == 0)
            r->recur_while = LADDER_WHILE_OPEN;
        else if (strcmp(v, "home_delivered") == 0)
            r->recur_while = LADDER_WHILE_HOME_DELIVERED;
        else
            return BAD("%s:%d: %s: expected open or home_delivered, got \"%.*s\"", ps->file, line,
                       key, SHOWN, v);
    } else if (strcmp(field, "done_by") == 0) {
        char *items[LADDER_DONE_BY_MAX];
        int n = split(v, items, LADDER_DONE_BY_MAX);
        if (n <= 0)
            return BAD("%s:%d: %s: expected 1..%d actions separated by commas", ps->file, line, key,
                       LADDER_DONE_BY_MAX);
        for (int k = 0; k < n; k++) {
            if (!in_list(action_tags, COUNT(action_tags), items[k]))
                return BAD("%s:%d: %s: unknown action \"%.*s\" (as bx.actions.v1: contact_made, "
                           "home_visit, letter_delivered:<letter>, returned:signed, "
                           "transfer_confirmed, suspension:approved, ...; or task_done)",
                           ps->file, line, key, SHOWN, items[k]);
            snprintf(r->done_by[k], LADDER_NAME_SIZE, "%s", items[k]);
        }
        r->ndone_by = n;
    } else {
        return BAD("%s:%d: unknown setting %.*s", ps->file, line, SHOWN, key);
    }
    return s;
}

static bx_status set_stage(parser *ps, const char *key, const char *name, const char *field,
                           char *v, int line, bx_error *err)
{
    bx_status s = BX_OK;
    int i = stage_index(ps, name, line, err, &s);
    if (i < 0)
        return s;
    ladder_stage_rule *sr = &ps->p.stages[i];
    char *items[LADDER_NOTIFY_MAX > LADDER_STAGE_TASKS_MAX ? LADDER_NOTIFY_MAX
                                                           : LADDER_STAGE_TASKS_MAX];
    if (strcmp(field, "open_streak") == 0) {
        if (!parse_int(v, 1, 200, &sr->open_streak))
            return BAD("%s:%d: %s: expected an integer 1..200 (school days), got \"%.*s\"",
                       ps->file, line, key, SHOWN, v);
    } else if (strcmp(field, "open_periods") == 0) {
        if (!parse_int(v, 1, 12, &sr->open_periods))
            return BAD("%s:%d: %s: expected an integer 1..12 (periods), got \"%.*s\"", ps->file,
                       line, key, SHOWN, v);
    } else if (strcmp(field, "open_overdue") == 0) {
        int n = split(v, items, LADDER_OVERDUE_MAX);
        if (n <= 0)
            return BAD("%s:%d: %s: expected 1..%d task kinds separated by commas", ps->file, line,
                       key, LADDER_OVERDUE_MAX);
        for (int k = 0; k < n; k++) {
            if (!name_ok(items[k], false))
                return BAD("%s:%d: %s: \"%.*s\" is no task kind", ps->file, line, key, SHOWN,
                           items[k]);
            snprintf(sr->open_overdue[k], LADDER_NAME_SIZE, "%s", items[k]);
        }
        sr->nopen_overdue = n;
    } else if (strcmp(field, "open_after") == 0) {
        char *parts[2];
        if (split(v, parts, 2) != 2 || !name_ok(parts[0], false) ||
            !parse_span(parts[1], &sr->after))
            return BAD("%s:%d: %s: expected \"<task kind>, <count> <unit>\", got \"%.*s\"",
                       ps->file, line, key, SHOWN, v);
        snprintf(sr->open_after, LADDER_NAME_SIZE, "%s", parts[0]);
    } else if (strcmp(field, "tasks") == 0) {
        int n = split(v, items, LADDER_STAGE_TASKS_MAX);
        if (n < 0)
            return BAD("%s:%d: %s: expected up to %d task kinds separated by commas", ps->file,
                       line, key, LADDER_STAGE_TASKS_MAX);
        for (int k = 0; k < n; k++)
            snprintf(ps->stage_tasks[i][k], LADDER_NAME_SIZE, "%s", items[k]);
        sr->ntasks = n;
    } else if (strcmp(field, "notify") == 0) {
        int n = split(v, items, LADDER_NOTIFY_MAX);
        if (n < 0)
            return BAD("%s:%d: %s: expected up to %d \"<role> <sms|task> <template>\" separated "
                       "by commas",
                       ps->file, line, key, LADDER_NOTIFY_MAX);
        for (int k = 0; k < n; k++) {
            ladder_notify_rule *nr = &sr->notify[k];
            char role[LADDER_NAME_SIZE], channel[8], tmpl[LADDER_NAME_SIZE], extra[4];
            if (sscanf(items[k], "%39s %7s %39s %3s", role, channel, tmpl, extra) != 3)
                return BAD("%s:%d: %s: expected \"<role> <sms|task> <template>\", got \"%.*s\"",
                           ps->file, line, key, SHOWN, items[k]);
            bool guardian = strcmp(role, "guardian") == 0;
            if (!guardian && !in_list(staff_roles, COUNT(staff_roles), role))
                return BAD("%s:%d: %s: unknown recipient role \"%.*s\"", ps->file, line, key, SHOWN,
                           role);
            if (strcmp(channel, "sms") != 0 && (guardian || strcmp(channel, "task") != 0))
                return BAD("%s:%d: %s: channel \"%.*s\": a guardian gets sms, staff sms or task",
                           ps->file, line, key, SHOWN, channel);
            if (!name_ok(tmpl, true))
                return BAD("%s:%d: %s: bad template name \"%.*s\"", ps->file, line, key, SHOWN,
                           tmpl);
            snprintf(nr->recipient_role, LADDER_NAME_SIZE, "%s", role);
            snprintf(nr->channel, sizeof(nr->channel), "%s", channel);
            snprintf(nr->template_name, LADDER_NAME_SIZE, "%s", tmpl);
        }
        sr->nnotify = n;
    } else {
        return BAD("%s:%d: unknown setting %.*s", ps->file, line, SHOWN, key);
    }
    return s;
}

static bx_status set_one(parser *ps, char *key, char *v, int line, bx_error *err)
{
    bx_status s = BX_OK;
    if (strlen(key) >= 80)
        return BAD("%s:%d: a setting name too long", ps->file, line);
    char scratch[80];
    snprintf(scratch, sizeof(scratch), "%s", key);
    char *dot1 = strchr(scratch, '.');
    char *dot2 = dot1 ? strrchr(scratch, '.') : NULL;
    if (dot1 != NULL && strncmp(scratch, "ladder.", 7) == 0)
        return set_ladder(ps, key, v, line, err);
    if (dot1 == NULL || dot2 == dot1)
        return BAD("%s:%d: unknown setting %.*s", ps->file, line, SHOWN, key);
    *dot1 = '\0';
    *dot2 = '\0';
    if (strcmp(scratch, "task") == 0)
        return set_task(ps, key, dot1 + 1, dot2 + 1, v, line, err);
    if (strcmp(scratch, "stage") == 0)
        return set_stage(ps, key, dot1 + 1, dot2 + 1, v, line, err);
    return BAD("%s:%d: unknown setting %.*s", ps->file, line, SHOWN, key);
}

/* Each task rule complete (owner, due or every, done_by), its first stage (from) found. */
static bx_status resolve_tasks(parser *ps, bx_error *err)
{
    bx_status s = BX_OK;
    ladder_policy *p = &ps->p;
    for (int i = 0; i < p->ntask_rules; i++) {
        ladder_task_rule *r = &p->task_rules[i];
        if (!ps->task_has_owner[i])
            return BAD("%s:%d: task.%s.owner: missing", ps->file, ps->task_line[i], r->kind);
        if (r->every.n > 0 && !ps->task_has_due[i])
            r->due = r->every;
        if (!ps->task_has_due[i] && r->every.n == 0)
            return BAD("%s:%d: task.%s.due: missing", ps->file, ps->task_line[i], r->kind);
        if (r->ndone_by == 0)
            return BAD("%s:%d: task.%s.done_by: missing", ps->file, ps->task_line[i], r->kind);
        r->from_stage = -1;
        if (ps->task_from[i][0] == '\0')
            continue;
        if (r->every.n == 0)
            return BAD("%s:%d: task.%s.from: only a recurring task (every) has a first stage",
                       ps->file, ps->task_from_line[i], r->kind);
        r->from_stage = ladder_policy_stage(p, ps->task_from[i]);
        if (r->from_stage < 0)
            return BAD("%s:%d: task.%s.from: no stage.%s.* settings define \"%s\"", ps->file,
                       ps->task_from_line[i], r->kind, ps->task_from[i], ps->task_from[i]);
    }
    return s;
}

/* ladder.presence_closes_below as a stage index (0 when not given). */
static bx_status resolve_presence(parser *ps, bx_error *err)
{
    bx_status s = BX_OK;
    ladder_policy *p = &ps->p;
    p->presence_closes_below = 0;
    if (ps->presence_below[0] != '\0') {
        p->presence_closes_below = ladder_policy_stage(p, ps->presence_below);
        if (p->presence_closes_below < 0)
            return BAD("%s:%d: ladder.presence_closes_below: no stage.%s.* settings define \"%s\"",
                       ps->file, ps->presence_line, ps->presence_below, ps->presence_below);
    }
    return s;
}

/* Each stage opened by something, in ladder order of open_streak, its task names found. */
static bx_status resolve_stages(parser *ps, bx_error *err)
{
    bx_status s = BX_OK;
    ladder_policy *p = &ps->p;
    int last_streak = 0, last_streak_stage = -1;
    for (int i = 0; i < p->nstages; i++) {
        ladder_stage_rule *sr = &p->stages[i];
        if (sr->open_streak == 0 && sr->open_periods == 0 && sr->nopen_overdue == 0 &&
            sr->open_after[0] == '\0')
            return BAD("%s:%d: stage.%s: no open_streak, open_periods, open_overdue or "
                       "open_after: nothing opens it",
                       ps->file, ps->stage_line[i], sr->name);
        if (sr->open_streak > 0) {
            if (sr->open_streak < last_streak)
                return BAD("%s:%d: stage.%s.open_streak: %d school days comes before stage %s "
                           "at %d; stages are listed in ladder order",
                           ps->file, ps->stage_line[i], sr->name, sr->open_streak,
                           p->stages[last_streak_stage].name, last_streak);
            last_streak = sr->open_streak;
            last_streak_stage = i;
        }
        for (int k = 0; k < sr->ntasks; k++) {
            int t = ladder_policy_task(p, ps->stage_tasks[i][k]);
            if (t < 0)
                return BAD("%s:%d: stage.%s.tasks: no task.%s.* settings define \"%s\"", ps->file,
                           ps->stage_line[i], sr->name, ps->stage_tasks[i][k],
                           ps->stage_tasks[i][k]);
            sr->tasks[k] = t;
        }
        for (int k = 0; k < sr->nopen_overdue; k++) {
            if (ladder_policy_task(p, sr->open_overdue[k]) < 0)
                return BAD("%s:%d: stage.%s.open_overdue: unknown task kind \"%s\"", ps->file,
                           ps->stage_line[i], sr->name, sr->open_overdue[k]);
        }
        if (sr->open_after[0] != '\0' && ladder_policy_task(p, sr->open_after) < 0)
            return BAD("%s:%d: stage.%s.open_after: unknown task kind \"%s\"", ps->file,
                       ps->stage_line[i], sr->name, sr->open_after);
    }
    return s;
}

/* The ladder's special tasks (return_signoff, transfer, suspension, enrol) as task indexes, -1
 * when not given. */
static bx_status resolve_special_tasks(parser *ps, bx_error *err)
{
    bx_status s = BX_OK;
    ladder_policy *p = &ps->p;
    int *special_idx[4] = {&p->return_signoff_task, &p->transfer_task, &p->suspension_task,
                           &p->enrol_task};
    for (int k = 0; k < 4; k++) {
        *special_idx[k] = -1;
        if (ps->special[k][0] == '\0')
            continue;
        *special_idx[k] = ladder_policy_task(p, ps->special[k]);
        if (*special_idx[k] < 0)
            return BAD("%s:%d: %s: unknown task kind \"%s\"", ps->file, ps->special_line[k],
                       special_names[k], ps->special[k]);
    }
    return s;
}

/* Cross-checks, once every line is read; each error names the setting and its line. */
static bx_status resolve(parser *ps, bx_error *err)
{
    bx_status s = BX_OK;
    if (ps->p.nstages == 0)
        return BAD("%s: no stage.<name>.* settings: a ladder needs at least one stage", ps->file);
    IFOK(s, resolve_tasks(ps, err));
    IFOK(s, resolve_presence(ps, err));
    IFOK(s, resolve_stages(ps, err));
    IFOK(s, resolve_special_tasks(ps, err));
    return s;
}

/* bx_policyfile_fn over a parser: one setting. */
static bx_status on_setting(void *arg, const char *file, int line, char *name, char *value,
                            bx_error *err)
{
    return set_one(arg, name, value, line, err);
}

static const bx_policyfile_opts policyfile_opts = {.file_max = POLICY_FILE_MAX,
                                                   .line_max = LINE_MAX_BYTES};

/* A parser with the defaults, for the file called name; NULL when out of memory. */
static parser *parser_new(const char *name)
{
    parser *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    ps->file = name;
    snprintf(ps->p.name, sizeof(ps->p.name), "default");
    ps->p.deadline_minute = 17 * 60;
    ps->p.return_signoff_task = ps->p.transfer_task = ps->p.suspension_task = -1;
    ps->p.enrol_task = -1;
    return ps;
}

/* After the file was read with status s: the cross-checks, and *out written only on success. */
static bx_status parser_finish(parser *ps, bx_status s, ladder_policy *out, bx_error *err)
{
    IFOK(s, resolve(ps, err));
    if (s == BX_OK)
        *out = ps->p;
    free(ps);
    return s;
}

bx_status ladder_policy_parse(const char *text, size_t len, const char *name, ladder_policy *out,
                              bx_error *err)
{
    parser *ps = parser_new(name);
    if (ps == NULL)
        return BX_ERR(err, BX_ENOMEM, "%s: out of memory", name);
    bx_status s = bx_policyfile_parse(text, len, name, &policyfile_opts, on_setting, ps, err);
    return parser_finish(ps, s, out, err);
}

bx_status ladder_policy_load(const char *path, ladder_policy *out, bx_error *err)
{
    parser *ps = parser_new(path);
    if (ps == NULL)
        return BX_ERR(err, BX_ENOMEM, "%s: out of memory", path);
    bx_status s = bx_policyfile_load(path, &policyfile_opts, on_setting, ps, err);
    return parser_finish(ps, s, out, err);
}
