/* page_student: a student's page: the case, its stages with dates, its open tasks and the whole
 * history of who did what and when. Every view is audited (personal data). */
#include "bx_log.h"
#include "page_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *registry_status_label(const char *status)
{
    static const struct {
        const char *name, *text;
    } t[] = {{"enrolled", "在读"},          {"transferred_out", "转出"}, {"suspended", "休学"},
             {"dropped_out", "辍学"},       {"returned", "复学"},        {"graduated", "毕业"},
             {"home_education", "送教上门"}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(status, t[i].name) == 0)
            return t[i].text;
    return status;
}

/* The case: its stage, its stages with dates and its open tasks. */
static void put_case(tmpl_ctx *ctx, const console_case_view *cv)
{
    char t1[24];
    tmpl_put_int(ctx, "case_id", cv->case_id);
    tmpl_put_bool(ctx, "open", cv->closed_at[0] == '\0');
    tmpl_put(ctx, "stage", page_label_stage(cv->stage));
    page_short_time(cv->opened_at, t1, sizeof(t1));
    tmpl_put(ctx, "opened", t1);
    page_short_time(cv->closed_at, t1, sizeof(t1));
    tmpl_put(ctx, "closed", t1);
    tmpl_put(ctx, "ending", page_label_ending(cv->ending));
    for (size_t i = 0; i < cv->nevents; i++) {
        const console_case_event *e = &cv->events[i];
        if (e->case_id != cv->case_id ||
            (strcmp(e->kind, "stage_entered") != 0 && strcmp(e->kind, "opened") != 0 &&
             strcmp(e->kind, "closed") != 0))
            continue;
        tmpl_ctx *row = tmpl_add_row(ctx, "stages");
        page_short_time(e->occurred_at, t1, sizeof(t1));
        if (strcmp(e->kind, "stage_entered") == 0)
            tmpl_put(row, "label", page_label_stage(e->stage));
        else
            tmpl_put(row, "label", page_label_event(e->kind));
        tmpl_put(row, "at", t1);
    }
    for (size_t i = 0; i < cv->ntasks; i++) {
        tmpl_ctx *row = tmpl_add_row(ctx, "tasks");
        page_short_time(cv->tasks[i].due_at, t1, sizeof(t1));
        tmpl_put_int(row, "id", cv->tasks[i].id);
        tmpl_put(row, "kind_label", page_label_task(cv->tasks[i].kind));
        tmpl_put(row, "due", t1);
        tmpl_put_bool(row, "overdue", cv->tasks[i].overdue);
    }
}

/* One row of the history: when, who, what, in which stage. */
static void put_event(tmpl_ctx *row, const console_case_event *e)
{
    char t1[24];
    page_short_time(e->occurred_at, t1, sizeof(t1));
    tmpl_put(row, "at", t1);
    /* Who: the staff member's name when the actor is one, else the service ("bx-escalate"). */
    if (e->actor_name[0])
        tmpl_putf(row, "who", "%s（%s）", e->actor_name, e->actor);
    else if (strncmp(e->actor, "bx-", 3) == 0)
        tmpl_put(row, "who", "系统");
    else
        tmpl_put(row, "who", e->actor);
    /* A task's events say which task in Chinese; the ladder's own wording (English, for
     * operators) is shown only where nothing structured says more: opening, notes, closing. */
    if (e->task_kind[0])
        tmpl_putf(row, "what", "%s：%s", page_label_event(e->kind), page_label_task(e->task_kind));
    else
        tmpl_put(row, "what", page_label_event(e->kind));
    tmpl_put(row, "stage", e->stage[0] ? page_label_stage(e->stage) : "");
    tmpl_put_bool(row, "late", e->late);
    if (!e->task_kind[0] && strcmp(e->kind, "stage_entered") != 0) {
        /* Free text may hold a phone or id number: masked as bxctl case show masks it. */
        char reason[sizeof(e->reason)];
        snprintf(reason, sizeof(reason), "%s", e->reason);
        bx_log_mask(reason);
        tmpl_put(row, "reason", reason);
    }
}

bx_status page_student_get(console_request *req, console_reply *rep, bx_error *err)
{
    const char *student_id = req->params[0];
    bx_status s;
    if (!page_admit_student(req, rep, student_id, CONSOLE_VIEW_PERSONAL, &s, err))
        return s;
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    console_student_info info;
    console_case_view cv;
    s = console_store_student(store, req->db, student_id, &info, err);
    if (!page_lookup_found(rep, &s))
        return s;
    s = console_store_case_view(store, req->db, student_id, req->now, &cv, err);
    IFOK(s, console_audit(req, "view_student", student_id, NULL, err));
    if (s != BX_OK) {
        console_case_view_free(&cv);
        return s;
    }
    tmpl_ctx *ctx = rep->ctx;
    tmpl_put(ctx, "student_id", info.id);
    tmpl_put(ctx, "name", info.name[0] ? info.name : info.id);
    tmpl_put(ctx, "class_id", info.class_id);
    tmpl_put(ctx, "class_name", info.class_name);
    tmpl_put(ctx, "school_name", info.school_name);
    tmpl_put(ctx, "status", registry_status_label(info.status));
    if (cv.case_id > 0)
        put_case(ctx, &cv);
    for (size_t i = 0; i < cv.nevents; i++)
        put_event(tmpl_add_row(ctx, "history"), &cv.events[i]);
    console_case_view_free(&cv);
    rep->template_name = "student_page";
    snprintf(rep->title, sizeof(rep->title), "学生");
    return BX_OK;
}
