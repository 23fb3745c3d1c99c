/* page_class: 我的班级, each student with today's state, the current streak, the risk tier and
 * its reasons (recomputed with bx-score's library, as `bxctl student show` explains it) and any
 * open case. */
#include "page_common.h"

#include <stdio.h>
#include <stdlib.h>

bx_status page_class_get(console_request *req, console_reply *rep, bx_error *err)
{
    const char *class_id = req->params[0];
    bx_status s;
    if (!page_admit_class(req, rep, class_id, CONSOLE_VIEW_PERSONAL, &s, err))
        return s;
    page_class_day d;
    bool found = false;
    s = page_class_load(req, rep, class_id, 0, true, "view_class", NULL, &d, &found, err);
    if (s != BX_OK || !found)
        return s;
    const console_class_info *info = &d.info;
    const console_class_row *rows = d.rows;
    size_t n = d.n;
    char line[160];
    page_rollcall_state_line(&d.state, line, sizeof(line));
    tmpl_ctx *ctx = rep->ctx;
    tmpl_put(ctx, "class_id", info->id);
    tmpl_put(ctx, "class_name", info->name);
    tmpl_put(ctx, "school_name", info->school_name);
    tmpl_put(ctx, "date", d.today);
    tmpl_put(ctx, "state_line", info->school_day ? line : "今天不是上学日");
    for (size_t i = 0; i < n; i++) {
        const console_class_row *r = &rows[i];
        tmpl_ctx *row = tmpl_add_row(ctx, "students");
        tmpl_put(row, "id", r->id);
        tmpl_put(row, "name", r->name[0] ? r->name : r->id);
        tmpl_put(row, "today", page_label_day_state(r->day_state[0] ? r->day_state : "no_record"));
        if (r->streak_days > 0)
            tmpl_put_int(row, "streak", r->streak_days);
        tmpl_put(row, "tier", page_label_tier(r->tier));
        tmpl_put_int(row, "tier_rank", (long long)r->tier + 1);
        tmpl_put_int(row, "score", r->score);
        if (r->case_id > 0) {
            char opened[24];
            page_short_time(r->case_opened_at, opened, sizeof(opened));
            tmpl_put_int(row, "case_id", r->case_id);
            tmpl_put(row, "case_stage", page_label_stage(r->case_stage));
            tmpl_put(row, "case_opened", opened);
        }
        tmpl_put_bool(row, "has_reasons", r->nfactors > 0);
        for (int f = 0; f < r->nfactors; f++) {
            tmpl_ctx *reason = tmpl_add_row(row, "reasons");
            tmpl_put(reason, "label", page_label_factor(r->factors[f].factor));
            tmpl_putf(reason, "points", "%+d", r->factors[f].points);
            tmpl_put(reason, "detail", r->factors[f].detail);
        }
    }
    rep->template_name = "teacher_class";
    snprintf(rep->title, sizeof(rep->title), "%s 我的班级", info->name);
    page_class_day_free(&d);
    return BX_OK;
}
