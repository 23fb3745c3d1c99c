/* page_routes: the homeroom teacher's routes, and the pages' shared state (the store and
 * bx-ingest's duplicate check), made once at start. Every POST carries the CSRF check and answers
 * 303 to a GET page. */
#include "bx_log.h"
#include "console.h"
#include "dedup.h"
#include "page_common.h"
#include "page_county.h"
#include "page_school.h"
#include "page_township.h"

#include <stdlib.h>

const console_route console_page_routes[] = {
    {"GET", "/teacher", page_teacher_home, true, false},
    {"GET", "/rollcall/:class", page_rollcall_get, true, false},
    {"POST", "/rollcall/:class", page_rollcall_post, true, true},
    {"GET", "/tasks", page_tasks_get, true, false},
    {"GET", "/tasks/:task", page_task_get, true, false},
    {"POST", "/tasks/:task", page_task_post, true, true},
    {"GET", "/class/:class", page_class_get, true, false},
    {"GET", "/students/:student", page_student_get, true, false},
    {"GET", "/students/:student/leave", page_leave_get, true, false},
    {"POST", "/students/:student/leave", page_leave_post, true, true},
    /* the township officer's sign-off of the return report (page_township.c) */
    {"GET", "/township", page_township_get, true, false},
    {"GET", "/township/cases/:case", page_township_case_get, true, false},
    {"POST", "/township/cases/:case", page_township_case_post, true, true},
    /* the principal's and academic office's workbench, a case's reports, the printed notices,
     * the township's notices and children out of school (page_school*.c, page_print.c,
     * page_township_notices.c) */
    {"GET", "/school", page_school_get, true, false},
    {"POST", "/school/remind/:class", page_school_remind_post, true, true},
    {"GET", "/school/cases/:case", page_school_case_get, true, false},
    {"POST", "/school/cases/:case", page_school_case_post, true, true},
    {"POST", "/school/cases/:case/reassign", page_school_reassign_post, true, true},
    {"GET", "/print/:case/:kind", page_print_get, true, false},
    {"POST", "/print/:case/:kind", page_print_post, true, true},
    {"GET", "/township/notices", page_township_notices_get, true, false},
    {"GET", "/township/children", page_township_children_get, true, false},
    /* the county bureau's dashboard, standing lists, the duties' reports and the exports
     * (page_county*.c); the city and province officers' rates by county (page_area.c) */
    {"GET", "/county", page_county_get, true, false},
    {"GET", "/county/ledger", page_county_ledger_get, true, false},
    {"GET", "/county/reports", page_county_reports_get, true, false},
    {"GET", "/county/export/:what", page_county_export_get, true, false},
    {"GET", "/area", page_area_get, true, false},
};
const size_t console_page_nroutes = sizeof(console_page_routes) / sizeof(console_page_routes[0]);

bx_status console_pages_new(const console_pages_conf *conf, void **out, bx_error *err)
{
    *out = NULL;
    page_state *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return BX_ERR(err, BX_ENOMEM, "pages: out of memory");
    bx_status s = console_store_new(conf->score_policy, &ps->store, err);
    if (s != BX_OK) {
        free(ps);
        return s;
    }
    /* bx-ingest's memory of accepted client ids (ingest.seen_event): a resent form is a duplicate
     * exactly as a school system's resent request is. Without it, consumers still deduplicate by
     * event id, so the pages run on. */
    bx_error derr = {0};
    if (conf->pg_url && *conf->pg_url && dedup_new(conf->pg_url, &ps->dedup, &derr) != BX_OK) {
        bx_log_warn("pages: duplicate check unavailable: %s", derr.msg);
        ps->dedup = NULL;
    }
    *out = ps;
    return BX_OK;
}

void console_pages_free(void *pages)
{
    page_state *ps = pages;
    if (ps == NULL)
        return;
    dedup_free(ps->dedup);
    console_store_free(ps->store);
    free(ps);
}
