/* page_rollcall: 今日点名, a class's roll call on a phone: everyone starts present, one tap per
 * exception, optionally per lesson period; corrections the same day; resending a form is a
 * duplicate (its token is the roll call's id, so its facts keep their event ids). */
#include "bx_log.h"
#include "page_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROLLCALL_MAX_STUDENTS 400

static void put_periods(tmpl_ctx *ctx, int selected)
{
    for (int p = 0; p <= 12; p++) {
        tmpl_ctx *row = tmpl_add_row(ctx, "periods");
        tmpl_put_int(row, "value", p);
        if (p == 0)
            tmpl_put(row, "label", "全天");
        else
            tmpl_putf(row, "label", "第 %d 节", p);
        tmpl_put_bool(row, "selected", p == selected);
    }
}

/* Each of my classes with today's roll-call state. */
static bx_status put_classes(console_request *req, console_reply *rep, bx_error *err)
{
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    char today[11];
    bx_date day = page_today(req, today);
    const console_person *me = req->person;
    tmpl_put(rep->ctx, "date", today);
    for (size_t i = 0; i < me->nclasses; i++) {
        console_class_info info;
        console_rollcall_state state;
        bx_status s = console_store_class(store, req->db, me->class_ids[i], day, &info, err);
        if (s == BX_ENOTFOUND)
            continue;
        if (s != BX_OK)
            return s;
        char line[160];
        if (!info.school_day)
            snprintf(line, sizeof(line), "今天不是上学日");
        else if (console_store_rollcall_state(store, req->redis, info.id, day, 0, &state, err) ==
                 BX_OK)
            page_rollcall_state_line(&state, line, sizeof(line));
        else
            snprintf(line, sizeof(line), "点名状态暂时无法读取");
        tmpl_ctx *row = tmpl_add_row(rep->ctx, "classes");
        tmpl_put(row, "id", info.id);
        tmpl_put(row, "name", info.name);
        tmpl_put(row, "state_line", line);
    }
    return BX_OK;
}

bx_status page_teacher_home(console_request *req, console_reply *rep, bx_error *err)
{
    if (!page_found(rep, BX_OK, !page_without_worklist(req->person)))
        return BX_OK;
    bx_status s = put_classes(req, rep, err);
    if (s != BX_OK)
        return s;
    console_task *tasks = NULL;
    size_t ntasks = 0, overdue = 0;
    s = page_open_tasks(req, 1000, &tasks, &ntasks, err);
    if (s != BX_OK)
        return s;
    for (size_t i = 0; i < ntasks; i++)
        overdue += tasks[i].overdue;
    free(tasks);
    tmpl_put_int(rep->ctx, "open_tasks", (long long)ntasks);
    if (overdue)
        tmpl_put_int(rep->ctx, "overdue_tasks", (long long)overdue);
    rep->template_name = "teacher_home";
    snprintf(rep->title, sizeof(rep->title), "今日工作");
    return BX_OK;
}

/* The students' rows of the roll-call form, each with its marks and today's one checked. */
static void put_students(tmpl_ctx *ctx, const console_class_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tmpl_ctx *row = tmpl_add_row(ctx, "students");
        tmpl_put(row, "id", rows[i].id);
        tmpl_put(row, "name", rows[i].name[0] ? rows[i].name : rows[i].id);
        page_mark current = PAGE_MARK_PRESENT;
        if (page_mark_parse(rows[i].code, &current) != BX_OK)
            current = PAGE_MARK_PRESENT;
        for (int m = 0; m < PAGE_MARK_COUNT; m++) {
            tmpl_ctx *mk = tmpl_add_row(row, "marks");
            tmpl_put(mk, "code", page_mark_code((page_mark)m));
            tmpl_put(mk, "label", page_mark_label((page_mark)m));
            tmpl_put_bool(mk, "checked", m == (int)current);
        }
    }
}

bx_status page_rollcall_get(console_request *req, console_reply *rep, bx_error *err)
{
    const char *class_id = req->params[0];
    bx_status s;
    if (!page_admit_class(req, rep, class_id, CONSOLE_WRITE_ATTENDANCE, &s, err) ||
        !page_admit_class(req, rep, class_id, CONSOLE_VIEW_PERSONAL, &s, err))
        return s;
    int period = page_period_parse(console_query(req, "period"));
    if (period < 0)
        period = 0;
    /* The names are personal data: the view is audited. */
    char today[11], detail[96];
    page_today(req, today);
    snprintf(detail, sizeof(detail), "class=%s date=%s period=%d", class_id, today, period);
    page_class_day d;
    bool found = false;
    s = page_class_load(req, rep, class_id, period, false, "view_rollcall", detail, &d, &found,
                        err);
    if (s != BX_OK || !found)
        return s;
    char line[160], token[PAGE_TOKEN_SIZE];
    page_rollcall_state_line(&d.state, line, sizeof(line));
    page_new_token(token);
    tmpl_ctx *ctx = rep->ctx;
    tmpl_put(ctx, "class_id", d.info.id);
    tmpl_put(ctx, "class_name", d.info.name);
    tmpl_put(ctx, "school_name", d.info.school_name);
    tmpl_put(ctx, "date", d.today);
    tmpl_put_int(ctx, "period", period);
    tmpl_put(ctx, "state_line", line);
    tmpl_put(ctx, "token", token);
    tmpl_put_bool(ctx, "school_day", d.info.school_day);
    tmpl_put_bool(ctx, "reported", d.state.reported);
    tmpl_put(ctx, "submit_label", d.state.reported ? "提交更正" : "提交点名");
    put_periods(ctx, period);
    put_students(ctx, d.rows, d.n);
    rep->template_name = "teacher_rollcall";
    snprintf(rep->title, sizeof(rep->title), "%s 今日点名", d.info.name);
    page_class_day_free(&d);
    return BX_OK;
}

bx_status page_rollcall_post(console_request *req, console_reply *rep, bx_error *err)
{
    const char *class_id = req->params[0];
    bx_status s;
    if (!page_admit_class(req, rep, class_id, CONSOLE_WRITE_ATTENDANCE, &s, err))
        return s;
    char back[128];
    const char *token = console_form(req, "token");
    const char *date = console_form(req, "date");
    int period = page_period_parse(console_form(req, "period"));
    snprintf(back, sizeof(back), "/rollcall/%s%s", class_id, period > 0 ? "?period=" : "");
    if (period > 0)
        snprintf(back + strlen(back), sizeof(back) - strlen(back), "%d", period);
    if (!page_token_valid(token) || date == NULL || period < 0) {
        console_redirect(rep, back, "表单已失效，请重新点名");
        return BX_OK;
    }
    /* Today's roll call, and its corrections, are today's: a form left open overnight is not
     * sent as yesterday's. */
    char today[11];
    page_today(req, today);
    if (strcmp(date, today) != 0) {
        console_redirect(rep, back, "这张点名表不是今天的，请按今天的重新点名");
        return BX_OK;
    }
    page_rollcall_entry *entries = calloc(ROLLCALL_MAX_STUDENTS, sizeof(*entries));
    if (entries == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    size_t n = 0;
    bx_error ferr = {0};
    if (page_rollcall_entries(req->form, req->nform, entries, ROLLCALL_MAX_STUDENTS, &n, &ferr) !=
        BX_OK) {
        free(entries);
        char flash[256];
        snprintf(flash, sizeof(flash), "未提交：%s", ferr.msg);
        console_redirect(rep, back, flash);
        return BX_OK;
    }
    page_rollcall_form form = {class_id, date, period, token, entries, n};
    bx_buf body;
    bx_buf_init(&body, 1 << 20);
    bx_status built = page_rollcall_json(&form, &body);
    free(entries);
    char detail[128];
    snprintf(detail, sizeof(detail), "class=%s date=%.10s period=%d rollcall=%s", class_id, date,
             period, token);
    page_write_result res;
    s = page_write_built(req, PAGE_EP_ROLLCALL, built, &body, "roll call", &res, err);
    IFOK(s, console_audit(req, "rollcall", NULL, detail, err));
    if (s != BX_OK)
        return s;
    char flash[256];
    if (res.accepted + res.duplicates > 0 && res.failed == 0 && !res.whole_rejected) {
        int absent = 0;
        for (size_t i = 0; i < req->nform; i++)
            absent +=
                strncmp(req->form[i].name, "m.", 2) == 0 && strcmp(req->form[i].value, "a") == 0;
        char done[96];
        int minute = bx_time_local_minute(req->now);
        snprintf(done, sizeof(done), "已于 %02d:%02d 提交，%d 人缺勤", minute / 60, minute % 60,
                 absent);
        page_write_flash(&res, done, flash, sizeof(flash));
    } else {
        page_write_flash(&res, "已提交", flash, sizeof(flash));
    }
    console_redirect(rep, back, flash);
    return BX_OK;
}
