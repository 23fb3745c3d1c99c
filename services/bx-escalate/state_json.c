/* state_json: a case_state to and from the JSON kept in cases.case.state (format version 1). */
#include "state_json.h"
#include "bx_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1

bx_status state_json_encode(const case_state *s, bx_buf *out)
{
    bx_status st = bx_buf_printf(out, "{\"v\":%d,\"student_id\":", STATE_VERSION);
    IFOK(st, bx_buf_json_string(out, s->student_id));
    IFOK(st, bx_buf_puts(out, ",\"case_id\":"));
    IFOK(st, bx_buf_json_string(out, s->case_id));
    IFOK(st, bx_buf_printf(out,
                           ",\"open\":%d,\"ending\":%d,\"opened_at\":%lld,\"closed_at\":%lld,"
                           "\"stage\":%d,\"stages\":[",
                           s->open ? 1 : 0, (int)s->ending, (long long)s->opened_at,
                           (long long)s->closed_at, s->stage));
    for (int i = 0; i < LADDER_STAGES_MAX; i++)
        IFOK(st, bx_buf_printf(out, "%s[%lld,%d]", i ? "," : "", (long long)s->stages[i].entered_at,
                               s->stages[i].late ? 1 : 0));
    IFOK(st, bx_buf_puts(out, "],\"tasks\":["));
    for (int i = 0; i < s->ntasks; i++) {
        const ladder_task *t = &s->tasks[i];
        IFOK(st, bx_buf_puts(out, i ? ",[" : "["));
        IFOK(st, bx_buf_json_string(out, t->key));
        IFOK(st, bx_buf_printf(out, ",%d,%d,%d,%lld,%ld,%lld,%d,%d]", t->rule, t->stage,
                               t->wait_stage, (long long)t->created_at, (long)t->window_start,
                               (long long)t->due_at, (int)t->state, t->escalated ? 1 : 0));
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
    return st;
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

#define TIME_MAX 1e15
#define DATE_MIN ((double)INT32_MIN)
#define DATE_MAX ((double)INT32_MAX)

static bx_status decode_task(const cJSON *a, ladder_task *t, bx_error *err)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 9)
        return BX_ERR(err, BX_EINVAL, "case state: tasks: expected arrays of 9");
    double v[8];
    static const double lo[8] = {-1, -1, -1, 0, DATE_MIN, 0, LADDER_TASK_OPEN, 0};
    /* indices the ladder uses: inside task_rules[] and stages[], -1 for none */
    static const double hi[8] = {LADDER_TASK_RULES_MAX - 1,
                                 LADDER_STAGES_MAX - 1,
                                 LADDER_STAGES_MAX - 1,
                                 TIME_MAX,
                                 DATE_MAX,
                                 TIME_MAX,
                                 LADDER_TASK_CANCELLED,
                                 1};
    bx_status s = copy_str(cJSON_GetArrayItem(a, 0), "tasks.key", t->key, sizeof(t->key), err);
    for (int i = 0; i < 8; i++)
        IFOK(s, num(cJSON_GetArrayItem(a, i + 1), "tasks[]", lo[i], hi[i], &v[i], err));
    if (s != BX_OK)
        return s;
    t->rule = (int)v[0];
    t->stage = (int)v[1];
    t->wait_stage = (int)v[2];
    t->created_at = (bx_time_ms)v[3];
    t->window_start = (bx_date)v[4];
    t->due_at = (bx_time_ms)v[5];
    t->state = (ladder_task_state)(int)v[6];
    t->escalated = v[7] != 0;
    return BX_OK;
}

static bx_status decode(const cJSON *o, case_state *s, bx_error *err)
{
    double v = 0;
    bx_status st = cJSON_IsObject(o) ? BX_OK : BX_ERR(err, BX_EINVAL, "case state: not an object");
    IFOK(st, member_num(o, "v", STATE_VERSION, STATE_VERSION, &v, err));
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
    IFOK(st, member_num(o, "stage", -1, LADDER_STAGES_MAX - 1, &v, err));
    if (st == BX_OK)
        s->stage = (int)v;
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(o, "stages");
    if (st == BX_OK && (!cJSON_IsArray(stages) || cJSON_GetArraySize(stages) != LADDER_STAGES_MAX))
        st = BX_ERR(err, BX_EINVAL, "case state: stages: expected %d pairs", LADDER_STAGES_MAX);
    for (int i = 0; i < LADDER_STAGES_MAX && st == BX_OK; i++) {
        const cJSON *p = cJSON_GetArrayItem(stages, i);
        double at = 0, late = 0;
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2)
            st = BX_ERR(err, BX_EINVAL, "case state: stages[%d]: expected a pair", i);
        IFOK(st, num(cJSON_GetArrayItem(p, 0), "stages[]", 0, TIME_MAX, &at, err));
        IFOK(st, num(cJSON_GetArrayItem(p, 1), "stages[]", 0, 1, &late, err));
        if (st == BX_OK) {
            s->stages[i].entered_at = (bx_time_ms)at;
            s->stages[i].late = late != 0;
        }
    }
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(o, "tasks");
    if (st == BX_OK && (!cJSON_IsArray(tasks) || cJSON_GetArraySize(tasks) > LADDER_TASKS_MAX))
        st = BX_ERR(err, BX_EINVAL, "case state: tasks: expected up to %d", LADDER_TASKS_MAX);
    s->ntasks = 0;
    for (const cJSON *t = tasks ? tasks->child : NULL; t && st == BX_OK; t = t->next)
        st = decode_task(t, &s->tasks[s->ntasks++], err);
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
    const cJSON *applied = cJSON_GetObjectItemCaseSensitive(o, "applied");
    if (st == BX_OK &&
        (!cJSON_IsArray(applied) || cJSON_GetArraySize(applied) != LADDER_APPLIED_MAX))
        st = BX_ERR(err, BX_EINVAL, "case state: applied: expected %d ids", LADDER_APPLIED_MAX);
    for (int i = 0; i < LADDER_APPLIED_MAX && st == BX_OK; i++)
        st = copy_str(cJSON_GetArrayItem(applied, i), "applied[]", s->applied[i],
                      sizeof(s->applied[i]), err);
    return st;
}

bx_status state_json_decode(const char *text, size_t len, case_state *out, bx_error *err)
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
    s = decode(root, work, err);
    if (s == BX_OK)
        *out = *work;
    free(work);
    cJSON_Delete(root);
    return s;
}
