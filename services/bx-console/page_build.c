/* page_build: the pure parts of the teacher's pages: forms to bx-ingest JSON, the roll-call state
 * line, tokens and the Chinese labels of the shared names. No I/O but /dev/urandom. */
#include "bx_name.h"
#include "page_common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const mark_codes[PAGE_MARK_COUNT] = {"p", "a", "ls", "lp", "t", "e"};
static const char *const mark_labels[PAGE_MARK_COUNT] = {"到",   "缺勤", "病假",
                                                         "事假", "迟到", "早退"};

const char *page_mark_code(page_mark m)
{
    return m < PAGE_MARK_COUNT ? mark_codes[m] : "p";
}

const char *page_mark_label(page_mark m)
{
    return m < PAGE_MARK_COUNT ? mark_labels[m] : mark_labels[0];
}

bx_status page_mark_parse(const char *code, page_mark *out)
{
    *out = PAGE_MARK_PRESENT;
    if (code == NULL || *code == '\0')
        return BX_OK;
    for (int m = 0; m < PAGE_MARK_COUNT; m++)
        if (strcmp(code, mark_codes[m]) == 0) {
            *out = (page_mark)m;
            return BX_OK;
        }
    return BX_EINVAL;
}

int page_period_parse(const char *text)
{
    if (text == NULL || *text == '\0')
        return 0;
    char *end;
    long p = strtol(text, &end, 10);
    return *end == '\0' && p >= 0 && p <= 12 ? (int)p : -1;
}

bx_status page_json_parts(bx_buf *out, const char *const *parts, size_t n)
{
    bx_status s = BX_OK;
    for (size_t i = 0; i < n && s == BX_OK; i++)
        s = i % 2 == 0 ? bx_buf_puts(out, parts[i]) : bx_buf_json_string(out, parts[i]);
    return s;
}

/* ,"key":"value" */
static bx_status member(bx_buf *b, const char *key, const char *value)
{
    bx_status s = bx_buf_printf(b, ",\"%s\":", key);
    IFOK(s, bx_buf_json_string(b, value ? value : ""));
    return s;
}

bx_status page_rollcall_json(const page_rollcall_form *f, bx_buf *out)
{
    bx_status s = bx_buf_puts(out, "{\"class_id\":");
    IFOK(s, bx_buf_json_string(out, f->class_id ? f->class_id : ""));
    IFOK(s, member(out, "date", f->date));
    if (f->period > 0)
        IFOK(s, bx_buf_printf(out, ",\"period\":%d", f->period));
    IFOK(s, member(out, "rollcall_id", f->token));
    /* The lists bx-ingest reads, each in the order the form gave them. */
    static const struct {
        const char *list;
        page_mark marks[2];
    } lists[] = {{"absent", {PAGE_MARK_ABSENT, PAGE_MARK_ABSENT}},
                 {"leave", {PAGE_MARK_SICK, PAGE_MARK_PERSONAL}},
                 {"late", {PAGE_MARK_LATE, PAGE_MARK_LATE}},
                 {"early_leave", {PAGE_MARK_EARLY_LEAVE, PAGE_MARK_EARLY_LEAVE}}};
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]) && s == BX_OK; l++) {
        s = bx_buf_printf(out, ",\"%s\":[", lists[l].list);
        bool first = true;
        for (size_t i = 0; i < f->nentries && s == BX_OK; i++) {
            const page_rollcall_entry *e = &f->entries[i];
            if (e->mark != lists[l].marks[0] && e->mark != lists[l].marks[1])
                continue;
            IFOK(s, bx_buf_puts(out, first ? "" : ","));
            first = false;
            if (lists[l].marks[0] == PAGE_MARK_SICK) {
                IFOK(s, bx_buf_puts(out, "{\"student_id\":"));
                IFOK(s, bx_buf_json_string(out, e->student_id));
                IFOK(s, member(out, "leave_kind", e->mark == PAGE_MARK_SICK ? "sick" : "personal"));
                IFOK(s, bx_buf_puts(out, "}"));
            } else {
                IFOK(s, bx_buf_json_string(out, e->student_id));
            }
        }
        IFOK(s, bx_buf_puts(out, "]"));
    }
    IFOK(s, bx_buf_puts(out, "}"));
    return s;
}

bx_status page_rollcall_entries(const console_field *fields, size_t nfields,
                                page_rollcall_entry *out, size_t max, size_t *n, bx_error *err)
{
    *n = 0;
    for (size_t i = 0; i < nfields; i++) {
        const char *name = fields[i].name;
        if (strncmp(name, "m.", 2) != 0)
            continue;
        page_mark m;
        if (page_mark_parse(fields[i].value, &m) != BX_OK)
            return BX_ERR(err, BX_EINVAL, "%.40s: unknown mark \"%.8s\"", name, fields[i].value);
        if (*n >= max)
            return BX_ERR(err, BX_EINVAL, "more than %zu students in one roll call", max);
        out[*n].student_id = name + 2;
        out[*n].mark = m;
        (*n)++;
    }
    return BX_OK;
}

void page_rollcall_state_line(const console_rollcall_state *s, char *out, size_t size)
{
    if (!s->reported) {
        snprintf(out, size, "尚未点名");
        return;
    }
    int minute = bx_time_local_minute(s->recorded_at);
    size_t used = (size_t)snprintf(out, size, "已于 %02d:%02d 提交，%d 人缺勤", minute / 60,
                                   minute % 60, s->absent);
    const struct {
        int count;
        const char *what;
    } more[] = {{s->leave, "请假"}, {s->late, "迟到"}, {s->early_leave, "早退"}};
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]) && used < size; i++)
        if (more[i].count > 0)
            used +=
                (size_t)snprintf(out + used, size - used, "，%d 人%s", more[i].count, more[i].what);
}

static const char *const action_names[] = {"contact_made", "home_visit", "letter_delivered",
                                           "report_filed", "task_reassigned"};

const char *page_action_name(page_action_kind k)
{
    return bx_name_of(action_names, BX_NAMES_COUNT(action_names), (int)k, "contact_made");
}

bx_status page_action_parse(const char *name, page_action_kind *out)
{
    for (size_t i = 0; name && i < PAGE_ACT_REASSIGN; i++)
        if (strcmp(name, action_names[i]) == 0) {
            *out = (page_action_kind)i;
            return BX_OK;
        }
    return BX_EINVAL;
}

/* ,"key":"value", or nothing when value is NULL or "" (the validation decides what is needed). */
static bx_status optional(bx_buf *b, const char *key, const char *value, bool *first)
{
    if (value == NULL || *value == '\0')
        return BX_OK;
    bx_status s = bx_buf_printf(b, "%s\"%s\":", *first ? "" : ",", key);
    IFOK(s, bx_buf_json_string(b, value));
    *first = false;
    return s;
}

bx_status page_action_json(const page_action_form *f, bx_buf *out)
{
    bx_status s = bx_buf_puts(out, "{\"records\":[{\"student_id\":");
    IFOK(s, bx_buf_json_string(out, f->student_id ? f->student_id : ""));
    IFOK(s, member(out, "action", page_action_name(f->kind)));
    IFOK(s, member(out, "date", f->date));
    IFOK(s, member(out, "staff_id", f->staff_id));
    if (f->event_id && *f->event_id)
        IFOK(s, member(out, "event_id", f->event_id));
    IFOK(s, bx_buf_puts(out, ",\"details\":{"));
    bool first = true;
    switch (f->kind) {
    case PAGE_ACT_CONTACT:
        IFOK(s, optional(out, "channel", f->channel, &first));
        IFOK(s, bx_buf_printf(out, "%s\"reached\":%s", first ? "" : ",",
                              f->reached ? "true" : "false"));
        break;
    case PAGE_ACT_HOME_VISIT:
        IFOK(s, optional(out, "outcome", f->outcome, &first));
        IFOK(s, optional(out, "reason", f->reason, &first));
        break;
    case PAGE_ACT_LETTER:
        IFOK(s, optional(out, "letter", f->letter, &first));
        break;
    case PAGE_ACT_REPORT:
        IFOK(s, optional(out, "task", f->task, &first));
        IFOK(s, optional(out, "filed_with", f->filed_with, &first));
        break;
    case PAGE_ACT_REASSIGN:
        IFOK(s, optional(out, "task_id", f->task_id, &first));
        IFOK(s, optional(out, "to_staff_id", f->to_staff_id, &first));
        break;
    }
    IFOK(s, bx_buf_puts(out, "}}]}"));
    return s;
}

bx_status page_leave_json(const page_leave_form *f, bx_buf *out)
{
    bx_status s = bx_buf_puts(out, "{\"records\":[{\"student_id\":");
    IFOK(s, bx_buf_json_string(out, f->student_id ? f->student_id : ""));
    IFOK(s, member(out, "first_date", f->first_date));
    IFOK(s, member(out, "last_date", f->last_date));
    if (f->first_period > 0 || f->last_period > 0)
        IFOK(s, bx_buf_printf(out, ",\"first_period\":%d,\"last_period\":%d", f->first_period,
                              f->last_period));
    IFOK(s, member(out, "leave_kind", f->leave_kind));
    IFOK(s, member(out, "requested_by", f->requested_by));
    IFOK(s, bx_buf_printf(out, ",\"phoned_in\":%s,\"approved\":true",
                          f->phoned_in ? "true" : "false"));
    if (f->event_id && *f->event_id)
        IFOK(s, member(out, "event_id", f->event_id));
    IFOK(s, bx_buf_puts(out, "}]}"));
    return s;
}

void page_new_token(char out[PAGE_TOKEN_SIZE])
{
    unsigned char bytes[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && read(fd, bytes, sizeof(bytes)) == (ssize_t)sizeof(bytes);
    if (fd >= 0)
        close(fd);
    if (!ok) {
        /* Tokens need uniqueness, not secrecy: the session and CSRF token guard the form. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x = (unsigned long long)ts.tv_sec * 1000000007ULL ^
                               (unsigned long long)ts.tv_nsec ^ (unsigned long long)getpid();
        for (size_t i = 0; i < sizeof(bytes); i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            bytes[i] = (unsigned char)x;
        }
    }
    out[0] = 'c';
    out[1] = '-';
    for (size_t i = 0; i < sizeof(bytes); i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", bytes[i]);
}

bool page_token_valid(const char *s)
{
    if (s == NULL || strncmp(s, "c-", 2) != 0 || strlen(s) != 34)
        return false;
    return strspn(s + 2, "0123456789abcdef") == 32;
}

typedef struct label {
    const char *name, *text;
} label;

static const char *lookup(const label *table, const char *name)
{
    for (size_t i = 0; name && table[i].name; i++)
        if (strcmp(table[i].name, name) == 0)
            return table[i].text;
    return name ? name : "";
}

const char *page_label_day_state(const char *state)
{
    static const label t[] = {
        {"present", "出勤"},     {"late", "迟到"},          {"early_leave", "早退"},
        {"leave", "请假"},       {"absent", "缺勤"},        {"not_reported", "未点名"},
        {"no_record", "无记录"}, {"no_school", "非上学日"}, {NULL, NULL}};
    return lookup(t, state);
}

const char *page_label_tier(score_tier tier)
{
    static const char *const t[] = {"低", "中", "高", "极高"};
    return (unsigned)tier < 4 ? t[tier] : "低";
}

const char *page_label_stage(const char *stage)
{
    static const label t[] = {{"contact_family", "联系家长"},
                              {"home_visit", "家访"},
                              {"school_report", "报告学校"},
                              {"academic_office", "报告教务处"},
                              {"dropout_roster", "辍学生花名册"},
                              {"township_notice", "乡镇复学通知"},
                              {"deadline_notice", "限期复学通知"},
                              {"legal_referral", "依法处理"},
                              {NULL, NULL}};
    return lookup(t, stage);
}

const char *page_label_task(const char *kind)
{
    static const label t[] = {{"contact_family", "联系家长"},
                              {"home_visit", "家访"},
                              {"report_to_school", "向学校书面报告"},
                              {"persuasion_letter", "送达劝学书"},
                              {"report_academic_office", "报告教务处"},
                              {"dropout_roster_entry", "登记辍学生花名册"},
                              {"county_report", "报告县教体局"},
                              {"dropout_report_form", "辍学报告单"},
                              {"return_notice", "送达复学通知书"},
                              {"deadline_notice", "送达限期复学通知书"},
                              {"return_report_signoff", "复学报告书签字"},
                              {"transfer_confirmation", "转学接收证明"},
                              {"suspension_paperwork", "休学手续"},
                              {"persuasion_record", "劝返记录（每月）"},
                              {"home_delivery_visit", "送教上门（每周）"},
                              {NULL, NULL}};
    return lookup(t, kind);
}

const char *page_label_event(const char *kind)
{
    static const label t[] = {{"opened", "立案"},
                              {"stage_entered", "进入阶段"},
                              {"task_created", "新任务"},
                              {"task_done", "任务完成"},
                              {"task_overdue", "任务逾期"},
                              {"escalated", "上报"},
                              {"note", "备注"},
                              {"closed", "结案"},
                              {"reopened", "重新立案"},
                              {"visit_note", "家访记录"},
                              {NULL, NULL}};
    return lookup(t, kind);
}

const char *page_label_factor(const char *factor)
{
    static const label t[] = {{"streak_days", "连续缺勤"},
                              {"attendance_rate_20d", "近20个上学日出勤率低"},
                              {"attendance_rate_term", "本学期出勤率低"},
                              {"chronic_absence", "长期缺勤"},
                              {"absence_rates_once", "同一缺勤只计一次"},
                              {"unexcused_periods_today", "今日旷课节数"},
                              {"late_arrivals_20d", "近期经常迟到"},
                              {"registered_poor", "建档立卡贫困户"},
                              {"minimum_subsistence", "低保户"},
                              {"extreme_poverty", "特困"},
                              {"orphan", "孤儿"},
                              {"disability", "残疾"},
                              {"left_behind", "留守儿童"},
                              {"single_parent", "单亲家庭"},
                              {"migrant", "流动人口子女"},
                              {"learning_difficulty", "学习困难"},
                              {"wavering", "动摇生"},
                              {"earlier_dropout", "曾辍学"},
                              {"monastery", "入寺"},
                              {"flags_capped", "家庭情况分数封顶"},
                              {"over_age", "超龄"},
                              {"transition_year", "升学过渡年级"},
                              {"tier_needs_attendance", "等级需出勤证据"},
                              {NULL, NULL}};
    return lookup(t, factor);
}

const char *page_label_ending(const char *ending)
{
    static const label t[] = {{"returned", "已复学"},
                              {"transferred", "已转学"},
                              {"graduated", "已毕业"},
                              {"obligation_ended", "义务教育结束"},
                              {NULL, NULL}};
    return lookup(t, ending);
}

void page_short_time(const char *iso, char *out, size_t size)
{
    /* "YYYY-MM-DDTHH:MM:SS+08:00": the month, day, hour and minute. */
    if (iso == NULL || strlen(iso) < 16) {
        snprintf(out, size, "%s", iso ? iso : "");
        return;
    }
    snprintf(out, size, "%.5s %.5s", iso + 5, iso + 11);
}

void page_put_short_time(tmpl_ctx *c, const char *name, const char *iso)
{
    char text[24];
    page_short_time(iso, text, sizeof(text));
    tmpl_put(c, name, text);
}
