/* state_json: a case_state to and from the JSON kept in cases.case.state. Format version 2 names
 * stages and task rules as the ladder policy does; version 1 (their indices) is still read. */
#include "state_json.h"
#include "bx_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION    2 /* written; 1 is still read */
#define STATE_VERSION_V1 1
#define SHOWN            40 /* bytes of a stored name quoted in an error */

/* An index of the ladder, -1 for none, is inside a list of n. */
static bool index_in(int i, int n)
{
    return i >= -1 && i < n;
}

/* s refers to nothing p does not have. Holds for every state ladder_step made under p and every
 * version 2 state decoded under p; a version 1 state is checked with it. */
static bx_status check_indices(const ladder_policy *p, const case_state *s, bx_error *err)
{
    if (!index_in(s->stage, p->nstages))
        return BX_ERR(err, BX_EINVAL,
                      "case state of %s: stage %d is outside ladder policy \"%s\" (%d stages)",
                      s->case_id, s->stage, p->name, p->nstages);
    for (int i = p->nstages; i < LADDER_STAGES_MAX; i++) {
        if (s->stages[i].entered_at != 0)
            return BX_ERR(err, BX_EINVAL,
                          "case state of %s: stages[%d] was entered, outside ladder policy \"%s\" "
                          "(%d stages)",
                          s->case_id, i, p->name, p->nstages);
    }
    if (s->ntasks < 0 || s->ntasks > LADDER_TASKS_MAX)
        return BX_ERR(err, BX_EINVAL, "case state of %s: %d tasks, more than %d", s->case_id,
                      s->ntasks, LADDER_TASKS_MAX);
    for (int i = 0; i < s->ntasks; i++) {
        const ladder_task *t = &s->tasks[i];
        if (!index_in(t->rule, p->ntask_rules))
            return BX_ERR(err, BX_EINVAL,
                          "case state of %s: tasks[%d]: task rule %d is outside ladder policy "
                          "\"%s\" (%d task rules)",
                          s->case_id, i, t->rule, p->name, p->ntask_rules);
        if (!index_in(t->stage, p->nstages) || !index_in(t->wait_stage, p->nstages))
            return BX_ERR(err, BX_EINVAL,
                          "case state of %s: tasks[%d]: stage %d or wait stage %d is outside "
                          "ladder policy \"%s\" (%d stages)",
                          s->case_id, i, t->stage, t->wait_stage, p->name, p->nstages);
    }
    return BX_OK;
}

/* ---- encoding ---- */

static const char *stage_name(const ladder_policy *p, int i)
{
    return i >= 0 ? p->stages[i].name : NULL;
}

static const char *rule_kind(const ladder_policy *p, int i)
{
    return i >= 0 ? p->task_rules[i].kind : NULL;
}

/* A name as a JSON string, NULL as null. */
static bx_status put_name(bx_buf *out, const char *name)
{
    return name != NULL ? bx_buf_json_string(out, name) : bx_buf_puts(out, "null");
}

bx_status state_json_encode(const ladder_policy *p, const case_state *s, bx_buf *out, bx_error *err)
{
    bx_status st = check_indices(p, s, err);
    if (st != BX_OK)
        return st;
    IFOK(st, bx_buf_printf(out, "{\"v\":%d,\"student_id\":", STATE_VERSION));
    IFOK(st, bx_buf_json_string(out, s->student_id));
    IFOK(st, bx_buf_puts(out, ",\"case_id\":"));
    IFOK(st, bx_buf_json_string(out, s->case_id));
    IFOK(st, bx_buf_printf(out,
                           ",\"open\":%d,\"ending\":%d,\"opened_at\":%lld,\"closed_at\":%lld,"
                           "\"stage\":",
                           s->open ? 1 : 0, (int)s->ending, (long long)s->opened_at,
                           (long long)s->closed_at));
    IFOK(st, put_name(out, stage_name(p, s->stage)));
    /* only the stages entered, in policy order */
    IFOK(st, bx_buf_puts(out, ",\"stages\":{"));
    bool first = true;
    for (int i = 0; i < p->nstages && st == BX_OK; i++) {
        if (s->stages[i].entered_at == 0)
            continue;
        st = bx_buf_puts(out, first ? "" : ",");
        first = false;
        IFOK(st, bx_buf_json_string(out, p->stages[i].name));
        IFOK(st, bx_buf_printf(out, ":[%lld,%d]", (long long)s->stages[i].entered_at,
                               s->stages[i].late ? 1 : 0));
    }
    IFOK(st, bx_buf_puts(out, "},\"tasks\":["));
    for (int i = 0; i < s->ntasks && st == BX_OK; i++) {
        const ladder_task *t = &s->tasks[i];
        st = bx_buf_puts(out, i ? ",[" : "[");
        IFOK(st, bx_buf_json_string(out, t->key));
        IFOK(st, bx_buf_puts(out, ","));
        IFOK(st, put_name(out, rule_kind(p, t->rule)));
        IFOK(st, bx_buf_puts(out, ","));
        IFOK(st, put_name(out, stage_name(p, t->stage)));
        IFOK(st, bx_buf_puts(out, ","));
        IFOK(st, put_name(out, stage_name(p, t->wait_stage)));
        IFOK(st, bx_buf_printf(out, ",%lld,%ld,%lld,%d,%d]", (long long)t->created_at,
                               (long)t->window_start, (long long)t->due_at, (int)t->state,
                               t->escalated ? 1 : 0));
    }
    IFOK(st,
         bx_buf_printf(out,
                       "],\"streak_days\":%d,\"streak_start\":%ld,\"last_assessed\":%ld,"
                       "\"unexcused_periods\":%d,\"home_delivered\":%d,"
                       "\"suspended_until\":%ld,\"awaiting_signoff\":%d,\"seq\":%lu,"
                       "\"applied_next\":%d,\"applied\":[",
                       s->streak_days, (long)s->streak_start, (long)s->last_assessed,
                       s->unexcused_periods, s->home_delivered ? 1 : 0, (long)s->suspended_until,
                       s->awaiting_signoff ? 1 : 0, (unsigned long)s->seq, s->applied_next));
    for (int i = 0; i < LADDER_APPLIED_MAX; i++) {
        IFOK(st, bx_buf_puts(out, i ? "," : ""));
        IFOK(st, bx_buf_json_string(out, s->applied[i]));
    }
    IFOK(st, bx_buf_puts(out, "]}"));
    if (st != BX_OK)
        return BX_ERR(err, st, "case state of %s: does not fit in the buffer", s->case_id);
    return BX_OK;
}

/* ---- decoding ---- */

static bx_status num(const cJSON *v, const char *what, double min, double max, double *out,
                     bx_error *err)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return BX_ERR(err, BX_EINVAL, "case state: %s: expected an integer in range", what);
    *out = v->valuedouble;
    return BX_OK;
}

static bx_status member_num(const cJSON *o, const char *key, double min, double max, double *out,
                            bx_error *err)
{
    return num(cJSON_GetObjectItemCaseSensitive(o, key), key, min, max, out, err);
}

static bx_status copy_str(const cJSON *v, const char *what, char *out, size_t size, bx_error *err)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= size)
        return BX_ERR(err, BX_EINVAL, "case state: %s: expected a string under %zu bytes", what,
                      size);
    snprintf(out, size, "%s", v->valuestring);
    return BX_OK;
}

/* The index in p of a stage (kind false) or task kind (true) named in a version 2 state.
 * s->case_id is already read. A name p does not have is refused, never guessed at. */
static bx_status lookup(const ladder_policy *p, const case_state *s, const char *name, bool kind,
                        const char *what, int *out, bx_error *err)
{
    int i = kind ? ladder_policy_task(p, name) : ladder_policy_stage(p, name);
    if (i < 0)
        return BX_ERR(err, BX_EINVAL,
                      "case state of %s: %s \"%.*s\" is not in ladder policy \"%s\"; the policy "
                      "was edited while this case was open",
                      s->case_id, what, SHOWN, name, p->name);
    *out = i;
    return BX_OK;
}

/* A name as lookup reads it, or null for none (-1). */
static bx_status name_or_null(const ladder_policy *p, const case_state *s, const cJSON *v,
                              bool kind, const char *what, int *out, bx_error *err)
{
    if (cJSON_IsNull(v)) {
        *out = -1;
        return BX_OK;
    }
    if (!cJSON_IsString(v))
        return BX_ERR(err, BX_EINVAL, "case state: %s: expected a %s or null", what,
                      kind ? "task kind" : "stage name");
    return lookup(p, s, v->valuestring, kind, what, out, err);
}

#define TIME_MAX 1e15
#define DATE_MIN ((double)INT32_MIN)
#define DATE_MAX ((double)INT32_MAX)

/* The five numbers that end a task in either version: created_at, window_start, due_at, state,
 * escalated. */
static bx_status decode_task_numbers(const cJSON *a, ladder_task *t, bx_error *err)
{
    double v[5];
    static const double lo[5] = {0, DATE_MIN, 0, LADDER_TASK_OPEN, 0};
    static const double hi[5] = {TIME_MAX, DATE_MAX, TIME_MAX, LADDER_TASK_SUPERSEDED, 1};
    bx_status s = BX_OK;
    for (int i = 0; i < 5; i++)
        IFOK(s, num(cJSON_GetArrayItem(a, i + 4), "tasks[]", lo[i], hi[i], &v[i], err));
    if (s != BX_OK)
        return s;
    t->created_at = (bx_time_ms)v[0];
    t->window_start = (bx_date)v[1];
    t->due_at = (bx_time_ms)v[2];
    t->state = (ladder_task_state)(int)v[3];
    t->escalated = v[4] != 0;
    return BX_OK;
}

/* Version 1: [key, rule, stage, wait_stage, ...] as indices, -1 for none; held against the
 * policy's counts once the whole state is read. */
static bx_status decode_task_v1(const cJSON *a, ladder_task *t, bx_error *err)
{
    double v[3];
    static const double hi[3] = {LADDER_TASK_RULES_MAX - 1, LADDER_STAGES_MAX - 1,
                                 LADDER_STAGES_MAX - 1};
    bx_status s = copy_str(cJSON_GetArrayItem(a, 0), "tasks.key", t->key, sizeof(t->key), err);
    for (int i = 0; i < 3; i++)
        IFOK(s, num(cJSON_GetArrayItem(a, i + 1), "tasks[]", -1, hi[i], &v[i], err));
    IFOK(s, decode_task_numbers(a, t, err));
    if (s != BX_OK)
        return s;
    t->rule = (int)v[0];
    t->stage = (int)v[1];
    t->wait_stage = (int)v[2];
    return BX_OK;
}

/* Version 2: [key, task kind, stage, wait stage, ...] as names, null for none. */
static bx_status decode_task_v2(const ladder_policy *p, const case_state *s, int index,
                                const cJSON *a, ladder_task *t, bx_error *err)
{
    char what[3][40];
    snprintf(what[0], sizeof(what[0]), "tasks[%d]: task kind", index);
    snprintf(what[1], sizeof(what[1]), "tasks[%d]: stage", index);
    snprintf(what[2], sizeof(what[2]), "tasks[%d]: wait stage", index);
    bx_status st = copy_str(cJSON_GetArrayItem(a, 0), "tasks.key", t->key, sizeof(t->key), err);
    IFOK(st, name_or_null(p, s, cJSON_GetArrayItem(a, 1), true, what[0], &t->rule, err));
    IFOK(st, name_or_null(p, s, cJSON_GetArrayItem(a, 2), false, what[1], &t->stage, err));
    IFOK(st, name_or_null(p, s, cJSON_GetArrayItem(a, 3), false, what[2], &t->wait_stage, err));
    IFOK(st, decode_task_numbers(a, t, err));
    return st;
}

/* A stage's pair [entered_at, late] (entered_at from first_at on) into s->stages[i]; what names
 * the pair in errors. */
static bx_status decode_stage_pair(const cJSON *pair, const char *what, double first_at,
                                   case_state *s, int i, bx_error *err)
{
    double at = 0, late = 0;
    bx_status st = num(cJSON_GetArrayItem(pair, 0), what, first_at, TIME_MAX, &at, err);
    IFOK(st, num(cJSON_GetArrayItem(pair, 1), what, 0, 1, &late, err));
    if (st == BX_OK) {
        s->stages[i].entered_at = (bx_time_ms)at;
        s->stages[i].late = late != 0;
    }
    return st;
}

/* Version 1: "stage" an index, "stages" LADDER_STAGES_MAX pairs [entered_at, late] by index. */
static bx_status decode_stages_v1(const cJSON *o, case_state *s, bx_error *err)
{
    double v = 0;
    bx_status st = member_num(o, "stage", -1, LADDER_STAGES_MAX - 1, &v, err);
    if (st == BX_OK)
        s->stage = (int)v;
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(o, "stages");
    if (st == BX_OK && (!cJSON_IsArray(stages) || cJSON_GetArraySize(stages) != LADDER_STAGES_MAX))
        st = BX_ERR(err, BX_EINVAL, "case state: stages: expected %d pairs", LADDER_STAGES_MAX);
    for (int i = 0; i < LADDER_STAGES_MAX && st == BX_OK; i++) {
        const cJSON *pair = cJSON_GetArrayItem(stages, i);
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2)
            st = BX_ERR(err, BX_EINVAL, "case state: stages[%d]: expected a pair", i);
        IFOK(st, decode_stage_pair(pair, "stages[]", 0, s, i, err));
    }
    return st;
}

/* Version 2: "stage" a name or null, "stages" {name: [entered_at, late]} for the stages entered
 * only (the others stay as s has them: zero). */
static bx_status decode_stages_v2(const ladder_policy *p, const cJSON *o, case_state *s,
                                  bx_error *err)
{
    bx_status st = name_or_null(p, s, cJSON_GetObjectItemCaseSensitive(o, "stage"), false, "stage",
                                &s->stage, err);
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(o, "stages");
    if (st == BX_OK && !cJSON_IsObject(stages))
        st = BX_ERR(err, BX_EINVAL, "case state: stages: expected an object of the stages entered");
    for (const cJSON *m = st == BX_OK ? stages->child : NULL; m != NULL && st == BX_OK;
         m = m->next) {
        int i = -1;
        st = lookup(p, s, m->string, false, "stages: stage", &i, err);
        if (st == BX_OK && (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2))
            st = BX_ERR(err, BX_EINVAL, "case state: stages.%s: expected [entered_at, late]",
                        m->string); /* a name of p: [a-z_], under 40 bytes */
        /* a stage not entered is left out, so entered_at is never 0 here */
        IFOK(st, decode_stage_pair(m, "stages{}", 1, s, i, err));
    }
    return st;
}

/* The case's tasks, as the state's version writes them. */
static bx_status decode_tasks(const ladder_policy *p, const cJSON *o, int version, case_state *s,
                              bx_error *err)
{
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(o, "tasks");
    if (!cJSON_IsArray(tasks) || cJSON_GetArraySize(tasks) > LADDER_TASKS_MAX)
        return BX_ERR(err, BX_EINVAL, "case state: tasks: expected up to %d", LADDER_TASKS_MAX);
    bx_status st = BX_OK;
    for (const cJSON *t = tasks->child; t != NULL && st == BX_OK; t = t->next) {
        ladder_task *task = &s->tasks[s->ntasks];
        if (!cJSON_IsArray(t) || cJSON_GetArraySize(t) != 9)
            st = BX_ERR(err, BX_EINVAL, "case state: tasks: expected arrays of 9");
        else if (version == STATE_VERSION_V1)
            st = decode_task_v1(t, task, err);
        else
            st = decode_task_v2(p, s, s->ntasks, t, task, err);
        s->ntasks++;
    }
    return st;
}

/* The ring of the last input ids applied. */
static bx_status decode_applied(const cJSON *o, case_state *s, bx_error *err)
{
    const cJSON *applied = cJSON_GetObjectItemCaseSensitive(o, "applied");
    if (!cJSON_IsArray(applied) || cJSON_GetArraySize(applied) != LADDER_APPLIED_MAX)
        return BX_ERR(err, BX_EINVAL, "case state: applied: expected %d ids", LADDER_APPLIED_MAX);
    bx_status st = BX_OK;
    for (int i = 0; i < LADDER_APPLIED_MAX && st == BX_OK; i++)
        st = copy_str(cJSON_GetArrayItem(applied, i), "applied[]", s->applied[i],
                      sizeof(s->applied[i]), err);
    return st;
}

static bx_status decode(const ladder_policy *p, const cJSON *o, case_state *s, bx_error *err)
{
    double v = 0;
    int version = 0;
    bx_status st = cJSON_IsObject(o) ? BX_OK : BX_ERR(err, BX_EINVAL, "case state: not an object");
    if (st == BX_OK && member_num(o, "v", STATE_VERSION_V1, STATE_VERSION, &v, NULL) != BX_OK)
        st = BX_ERR(err, BX_EINVAL, "case state: v: expected %d or %d", STATE_VERSION_V1,
                    STATE_VERSION);
    version = (int)v;
    IFOK(st, copy_str(cJSON_GetObjectItemCaseSensitive(o, "student_id"), "student_id",
                      s->student_id, sizeof(s->student_id), err));
    IFOK(st, copy_str(cJSON_GetObjectItemCaseSensitive(o, "case_id"), "case_id", s->case_id,
                      sizeof(s->case_id), err));
    IFOK(st, member_num(o, "open", 0, 1, &v, err));
    if (st == BX_OK)
        s->open = v != 0;
    IFOK(st, member_num(o, "ending", LADDER_END_NONE, LADDER_END_OBLIGATION_ENDED, &v, err));
    if (st == BX_OK)
        s->ending = (ladder_ending)(int)v;
    IFOK(st, member_num(o, "opened_at", 0, TIME_MAX, &v, err));
    if (st == BX_OK)
        s->opened_at = (bx_time_ms)v;
    IFOK(st, member_num(o, "closed_at", 0, TIME_MAX, &v, err));
    if (st == BX_OK)
        s->closed_at = (bx_time_ms)v;
    if (st == BX_OK)
        st = version == STATE_VERSION_V1 ? decode_stages_v1(o, s, err)
                                         : decode_stages_v2(p, o, s, err);
    s->ntasks = 0;
    IFOK(st, decode_tasks(p, o, version, s, err));
    IFOK(st, member_num(o, "streak_days", 0, 10000, &v, err));
    if (st == BX_OK)
        s->streak_days = (int)v;
    IFOK(st, member_num(o, "streak_start", DATE_MIN, DATE_MAX, &v, err));
    if (st == BX_OK)
        s->streak_start = (bx_date)v;
    IFOK(st, member_num(o, "last_assessed", DATE_MIN, DATE_MAX, &v, err));
    if (st == BX_OK)
        s->last_assessed = (bx_date)v;
    IFOK(st, member_num(o, "unexcused_periods", 0, 12, &v, err));
    if (st == BX_OK)
        s->unexcused_periods = (int)v;
    IFOK(st, member_num(o, "home_delivered", 0, 1, &v, err));
    if (st == BX_OK)
        s->home_delivered = v != 0;
    IFOK(st, member_num(o, "suspended_until", DATE_MIN, DATE_MAX, &v, err));
    if (st == BX_OK)
        s->suspended_until = (bx_date)v;
    IFOK(st, member_num(o, "awaiting_signoff", 0, 1, &v, err));
    if (st == BX_OK)
        s->awaiting_signoff = v != 0;
    IFOK(st, member_num(o, "seq", 0, UINT32_MAX, &v, err));
    if (st == BX_OK)
        s->seq = (uint32_t)v;
    IFOK(st, member_num(o, "applied_next", 0, LADDER_APPLIED_MAX - 1, &v, err));
    if (st == BX_OK)
        s->applied_next = (int)v;
    IFOK(st, decode_applied(o, s, err));
    /* version 1 indices: inside the current policy is all that can be checked */
    IFOK(st, check_indices(p, s, err));
    return st;
}

bx_status state_json_decode(const ladder_policy *p, const char *text, size_t len, case_state *out,
                            bx_error *err)
{
    cJSON *root = NULL;
    bx_status s = bx_json_parse(text, len, &root, err);
    if (s != BX_OK)
        return s;
    case_state *work = calloc(1, sizeof(*work));
    if (work == NULL) {
        cJSON_Delete(root);
        return BX_ERR(err, BX_ENOMEM, "case state: out of memory");
    }
    s = decode(p, root, work, err);
    if (s == BX_OK)
        *out = *work;
    free(work);
    cJSON_Delete(root);
    return s;
}
