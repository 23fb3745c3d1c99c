/* page_tasks: 我的任务, the open and overdue tasks of my classes' cases, each done with one short
 * form (contact made, home visit, letter delivered, report filed) that becomes a bx.actions.v1
 * record through bx-ingest's validation, with the signed-in person as staff_id and recorded_by.
 * A home visit's note stays in PostgreSQL (console.visit_note), never on a topic. */
#include "bx_log.h"
#include "page_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASKS_MAX 200

static void put_task(tmpl_ctx *row, const console_task *t)
{
    char due[24];
    page_short_time(t->due_at, due, sizeof(due));
    tmpl_put_int(row, "id", t->id);
    tmpl_put(row, "kind_label", page_label_task(t->kind));
    tmpl_put(row, "student_id", t->student_id);
    tmpl_put(row, "student_name", t->student_name[0] ? t->student_name : t->student_id);
    tmpl_put(row, "due", due);
    tmpl_put_bool(row, "overdue", t->overdue);
    tmpl_put_int(row, "case_id", t->case_id);
    tmpl_put(row, "stage_label", page_label_stage(t->stage));
}

bx_status page_open_tasks(const console_request *req, size_t max, console_task **tasks, size_t *n,
                          bx_error *err)
{
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    const console_person *me = req->person;
    const char *ids[CONSOLE_MAX_CLASSES];
    for (size_t i = 0; i < me->nclasses; i++)
        ids[i] = me->class_ids[i];
    return console_store_open_tasks(store, req->db, me->staff_id, ids, me->nclasses, req->now, max,
                                    tasks, n, err);
}

bx_status page_tasks_get(console_request *req, console_reply *rep, bx_error *err)
{
    if (!page_found(rep, BX_OK, !page_without_worklist(req->person)))
        return BX_OK;
    console_task *tasks = NULL;
    size_t n = 0;
    bx_status s = page_open_tasks(req, TASKS_MAX, &tasks, &n, err);
    /* Names are shown: the view is audited (one row for the list). */
    IFOK(s, console_audit(req, "view_tasks", NULL, NULL, err));
    if (s != BX_OK) {
        free(tasks);
        return s;
    }
    for (size_t i = 0; i < n; i++) {
        bool allowed = false;
        /* A task of a student moved out of my classes since is not mine to see. */
        s = page_may_student(req, tasks[i].student_id, CONSOLE_WRITE_ACTION, &allowed, err);
        if (s != BX_OK) {
            free(tasks);
            return s;
        }
        if (allowed)
            put_task(tmpl_add_row(rep->ctx, "tasks"), &tasks[i]);
    }
    free(tasks);
    rep->template_name = "teacher_tasks";
    snprintf(rep->title, sizeof(rep->title), "我的任务");
    return BX_OK;
}

bx_status page_action_submit(const console_request *req, const page_action_form *f,
                             const char *context, page_write_result *res, bx_error *err)
{
    bx_buf body;
    bx_buf_init(&body, 1 << 16);
    bx_status s = page_write_built(req, PAGE_EP_ACTIONS, page_action_json(f, &body), &body,
                                   "action", res, err);
    char detail[160];
    snprintf(detail, sizeof(detail), "%s action=%s event=%s", context ? context : "",
             page_action_name(f->kind), f->event_id);
    IFOK(s, console_audit(req, page_action_name(f->kind), f->student_id, detail, err));
    return s;
}

bx_status page_action_redirect(const console_request *req, console_reply *rep,
                               const page_action_form *f, const char *context,
                               const char *done_text, const char *back, bx_error *err)
{
    page_write_result res;
    bx_status s = page_action_submit(req, f, context, &res, err);
    if (s != BX_OK)
        return s;
    char flash[sizeof(rep->flash) + 64];
    page_write_flash(&res, done_text, flash, sizeof(flash));
    console_redirect(rep, back, flash);
    return BX_OK;
}

bool page_write_kept(const page_write_result *r)
{
    return r->accepted + r->duplicates > 0 && r->failed == 0 && r->rejected == 0;
}

/* The task of /tasks/:id when it is open and its student is in scope; else *t->id is 0. */
static bx_status find_task(console_request *req, console_task *t, bx_error *err)
{
    memset(t, 0, sizeof(*t));
    const char *text = req->params[0];
    char *end;
    long long id = strtoll(text, &end, 10);
    if (*end != '\0' || id <= 0)
        return BX_OK;
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    bx_status s = console_store_task(store, req->db, id, req->now, t, err);
    if (s == BX_ENOTFOUND) {
        t->id = 0;
        return BX_OK;
    }
    bool allowed = false;
    IFOK(s, page_may_student(req, t->student_id, CONSOLE_WRITE_ACTION, &allowed, err));
    if (s == BX_OK && !allowed)
        t->id = 0;
    return s;
}

/* find_task, answering 404 when there is no such task to show: false, with *s to return. */
static bool load_task(console_request *req, console_reply *rep, console_task *t, bx_status *s,
                      bx_error *err)
{
    *s = find_task(req, t, err);
    return page_found(rep, *s, t->id != 0);
}

/* Which form opens first for a task kind: the one that usually does it. */
static const char *open_form(const char *kind)
{
    if (strcmp(kind, "contact_family") == 0)
        return "open_contact";
    if (strcmp(kind, "home_visit") == 0 || strcmp(kind, "persuasion_record") == 0 ||
        strcmp(kind, "home_delivery_visit") == 0)
        return "open_visit";
    if (strstr(kind, "letter") || strstr(kind, "notice"))
        return "open_letter";
    return "open_report";
}

bx_status page_task_get(console_request *req, console_reply *rep, bx_error *err)
{
    console_task t;
    bx_status s;
    if (!load_task(req, rep, &t, &s, err))
        return s;
    s = page_auditf(req, "view_task", t.student_id, err, "task=%lld", t.id);
    if (s != BX_OK)
        return s;
    page_put_form(req, rep->ctx, NULL);
    put_task(rep->ctx, &t);
    tmpl_put_int(rep->ctx, "task_id", t.id);
    tmpl_put_bool(rep->ctx, open_form(t.kind), true);
    rep->template_name = "teacher_task";
    snprintf(rep->title, sizeof(rep->title), "%s", page_label_task(t.kind));
    return BX_OK;
}

bx_status page_task_post(console_request *req, console_reply *rep, bx_error *err)
{
    console_task t;
    bx_status s;
    if (!load_task(req, rep, &t, &s, err))
        return s;
    char back[64];
    snprintf(back, sizeof(back), "/tasks/%lld", t.id);
    const char *token = console_form(req, "token");
    page_action_kind kind;
    if (!page_form_ok(rep, back,
                      page_token_valid(token) &&
                          page_action_parse(console_form(req, "action"), &kind) == BX_OK))
        return BX_OK;
    const char *note = console_form(req, "note");
    if (kind == PAGE_ACT_HOME_VISIT && note && *note &&
        console_utf8_chars(note) > CONSOLE_STORE_NOTE_MAX) {
        console_redirect(rep, back, "未提交：家访记录最多 500 字");
        return BX_OK;
    }
    /* The record's event id: the form's token, so a resend is a duplicate. */
    char event_id[64];
    snprintf(event_id, sizeof(event_id), "%s", token);
    const char *reached = console_form(req, "reached");
    page_action_form f = {.kind = kind,
                          .student_id = t.student_id,
                          .date = console_form(req, "date"),
                          .staff_id = req->person->staff_id,
                          .event_id = event_id,
                          .channel = console_form(req, "channel"),
                          .reached = reached && strcmp(reached, "yes") == 0,
                          .outcome = console_form(req, "outcome"),
                          .reason = console_form(req, "reason"),
                          .letter = console_form(req, "letter"),
                          .task = t.kind,
                          .filed_with = console_form(req, "filed_with")};
    char context[40];
    snprintf(context, sizeof(context), "task=%lld", t.id);
    page_write_result res;
    s = page_action_submit(req, &f, context, &res, err);
    if (s != BX_OK)
        return s;
    bool kept = page_write_kept(&res);
    if (kept && kind == PAGE_ACT_HOME_VISIT && note && *note) {
        /* The note is kept beside the accepted action's event id (a resend keeps it once). */
        console_store *store = page_store(req, err);
        bx_error nerr = {0};
        if (store == NULL ||
            console_store_visit_note(store, req->db, res.first_event_id, t.student_id,
                                     req->person->staff_id, note, req->now, &nerr) != BX_OK) {
            bx_log_error("staff %s: visit note of event %s not kept: %s", req->person->staff_id,
                         res.first_event_id, nerr.msg);
            console_redirect(rep, back, "家访已记录，但家访记录文字没有保存，请稍后再提交一次");
            return BX_OK;
        }
    }
    char flash[256];
    page_write_flash(&res, "已记录", flash, sizeof(flash));
    console_redirect(rep, kept ? "/tasks" : back, flash);
    return BX_OK;
}
