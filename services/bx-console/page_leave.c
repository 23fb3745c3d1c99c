/* page_leave: 请假, leave asked in advance or phoned in by a guardian (补假), approved by the
 * homeroom teacher, through bx-ingest's leave validation. */
#include "page_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bx_status page_leave_get(console_request *req, console_reply *rep, bx_error *err)
{
    const char *student_id = req->params[0];
    bx_status s;
    if (!page_admit_student(req, rep, student_id, CONSOLE_WRITE_ATTENDANCE, &s, err) ||
        !page_admit_student(req, rep, student_id, CONSOLE_VIEW_PERSONAL, &s, err))
        return s;
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    console_student_info info;
    s = console_store_student(store, req->db, student_id, &info, err);
    if (!page_lookup_found(rep, &s))
        return s;
    s = console_audit(req, "view_leave", student_id, NULL, err);
    if (s != BX_OK)
        return s;
    page_put_form(req, rep->ctx, NULL);
    tmpl_put(rep->ctx, "student_id", info.id);
    tmpl_put(rep->ctx, "name", info.name[0] ? info.name : info.id);
    tmpl_put(rep->ctx, "class_name", info.class_name);
    for (int p = 1; p <= 12; p++)
        tmpl_put_int(tmpl_add_row(rep->ctx, "periods"), "value", p);
    rep->template_name = "student_leave";
    snprintf(rep->title, sizeof(rep->title), "请假");
    return BX_OK;
}

bx_status page_leave_post(console_request *req, console_reply *rep, bx_error *err)
{
    const char *student_id = req->params[0];
    bx_status s;
    if (!page_admit_student(req, rep, student_id, CONSOLE_WRITE_ATTENDANCE, &s, err))
        return s;
    char back[96], done_path[96];
    snprintf(back, sizeof(back), "/students/%s/leave", student_id);
    snprintf(done_path, sizeof(done_path), "/students/%s", student_id);
    const char *token = console_form(req, "token");
    int p1 = page_period_parse(console_form(req, "first_period"));
    int p2 = page_period_parse(console_form(req, "last_period"));
    if (!page_form_ok(rep, back, page_token_valid(token) && p1 >= 0 && p2 >= 0))
        return BX_OK;
    const char *phoned = console_form(req, "phoned_in");
    page_leave_form f = {.student_id = student_id,
                         .first_date = console_form(req, "first_date"),
                         .last_date = console_form(req, "last_date"),
                         .first_period = p1,
                         .last_period = p2,
                         .leave_kind = console_form(req, "leave_kind"),
                         .requested_by = console_form(req, "requested_by"),
                         .phoned_in = phoned && strcmp(phoned, "yes") == 0,
                         .event_id = token};
    bx_buf body;
    bx_buf_init(&body, 1 << 16);
    page_write_result res;
    s = page_write_built(req, PAGE_EP_LEAVE, page_leave_json(&f, &body), &body, "leave", &res, err);
    IFOK(s, page_auditf(req, "leave", student_id, err, "event=%s phoned_in=%s", token,
                        f.phoned_in ? "yes" : "no"));
    if (s != BX_OK)
        return s;
    char flash[256];
    page_write_flash(&res, f.phoned_in ? "补假已记录" : "请假已批准", flash, sizeof(flash));
    console_redirect(rep, page_write_kept(&res) ? done_path : back, flash);
    return BX_OK;
}
