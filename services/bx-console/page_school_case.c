/* page_school_case: one case as the principal or academic office works it (/school/cases/:case):
 * the child, the stage, the open tasks with owner and deadline (each with a short form giving it to
 * another staff member of the school: task_reassigned, /school/cases/:case/reassign), a short form
 * per written report
 * the ladder asks of the school (report_to_school, report_academic_office, dropout_roster_entry,
 * county_report, dropout_report_form) that records the signed-in person's `report_filed` through
 * the teacher's task form's code (page_action_submit), and the school's notices to print. Scope:
 * a school role whose school holds the student (console_may CONSOLE_WRITE_ACTION); else 404. */
#include "bx_log.h"
#include "bx_pg.h"
#include "page_common.h"
#include "page_school.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reports the ladder asks of the school (deploy/policy/ladder.policy, done_by task_done), and
 * where each is usually filed. */
static const struct {
    const char *task, *filed_with;
} reports[] = {{"report_to_school", "school"},
               {"report_academic_office", "academic_office"},
               {"dropout_roster_entry", "school"},
               {"county_report", "county_bureau"},
               {"dropout_report_form", "academic_office"}};

static const char *report_filed_with(const char *task)
{
    for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++)
        if (strcmp(reports[i].task, task) == 0)
            return reports[i].filed_with;
    return NULL;
}

typedef struct school_case {
    long long id;
    char student_id[BX_ID_MAX + 1];
    char student_name[CONSOLE_STORE_TEXT];
    char class_name[CONSOLE_STORE_TEXT];
    char stage[CONSOLE_STORE_STAGE];
    char opened_at[CONSOLE_STORE_TIME];
    bool open;
} school_case;

/* The case of the path when the signed-in school role may act on its student; else c->id is 0. */
static bx_status find_case(console_request *req, school_case *c, bx_error *err)
{
    memset(c, 0, sizeof(*c));
    const console_person *me = req->person;
    if (me->role != CONSOLE_PRINCIPAL && me->role != CONSOLE_ACADEMIC_OFFICE)
        return BX_OK;
    char *end;
    long long id = strtoll(req->params[0], &end, 10);
    if (*end != '\0' || id <= 0)
        return BX_OK;
    const char *params[] = {req->params[0]};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        req->db,
        "SELECT c.id, c.student_id, coalesce(sp.name, ''), coalesce(cl.name, ''), "
        "coalesce(c.stage, ''), " SCHOOL_ISO_SQL("c.opened_at") ", c.closed_at IS NULL "
                                                                "FROM cases.case c JOIN "
                                                                "registry.student st ON st.id = "
                                                                "c.student_id LEFT JOIN "
                                                                "registry.class cl ON cl.id = "
                                                                "st.class_id LEFT JOIN "
                                                                "registry.student_private sp ON "
                                                                "sp.student_id = st.id WHERE c.id "
                                                                "= $1::bigint",
        1, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        c->id = id;
        snprintf(c->student_id, sizeof(c->student_id), "%s", PQgetvalue(res, 0, 1));
        snprintf(c->student_name, sizeof(c->student_name), "%s", PQgetvalue(res, 0, 2));
        snprintf(c->class_name, sizeof(c->class_name), "%s", PQgetvalue(res, 0, 3));
        snprintf(c->stage, sizeof(c->stage), "%s", PQgetvalue(res, 0, 4));
        snprintf(c->opened_at, sizeof(c->opened_at), "%s", PQgetvalue(res, 0, 5));
        c->open = PQgetvalue(res, 0, 6)[0] == 't';
    }
    PQclear(res);
    if (s != BX_OK || c->id == 0)
        return s;
    bool allowed = false;
    s = page_may_student(req, c->student_id, CONSOLE_WRITE_ACTION, &allowed, err);
    if (s == BX_OK && !allowed)
        c->id = 0;
    return s;
}

/* find_case, answering 404 when there is no such case to show: false, with *s to return. */
static bool load_case(console_request *req, console_reply *rep, school_case *c, bx_status *s,
                      bx_error *err)
{
    *s = find_case(req, c, err);
    return page_found(rep, *s, c->id != 0);
}

/* Whether the case has an open task of this kind. */
static bx_status open_task_of(console_request *req, long long case_id, const char *kind, bool *open,
                              bx_error *err)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", case_id);
    const char *params[] = {id, kind};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db,
                              "SELECT 1 FROM cases.task WHERE case_id = $1::bigint AND kind = $2 "
                              "AND outcome IS NULL LIMIT 1",
                              2, params, &res, err);
    *open = s == BX_OK && PQntuples(res) > 0;
    PQclear(res);
    return s;
}

/* The staff of the signed-in person's school, who may take one of its tasks: id, name, role. */
static bx_status school_staff(console_request *req, PGresult **res, bx_error *err)
{
    const char *params[] = {req->person->school_id};
    return bx_pg_query(req->db,
                       "SELECT id, name, role FROM registry.staff WHERE school_id = $1 AND role "
                       "IN " SCHOOL_ROLES_SQL " ORDER BY role <> 'homeroom_teacher', name, id",
                       1, params, res, err);
}

/* A task row's reassign form: its id and the school's staff but its owner. */
static void put_reassign(tmpl_ctx *row, const char *task_id, const char *owner_id,
                         const PGresult *staff)
{
    int n = 0;
    for (int k = 0; k < PQntuples(staff); k++) {
        if (strcmp(PQgetvalue(staff, k, 0), owner_id) == 0)
            continue;
        tmpl_ctx *o = tmpl_add_row(row, "staff");
        tmpl_put(o, "id", PQgetvalue(staff, k, 0));
        tmpl_put(o, "name", PQgetvalue(staff, k, 1));
        n++;
    }
    if (n > 0) {
        tmpl_put(row, "task_id", task_id);
        tmpl_put_bool(row, "reassign", true);
    }
}

/* The case's open tasks: kind, due, overdue, owner role, owner's name, task id, owner's id. */
#define CASE_TASKS_SQL                                                                             \
    "SELECT t.kind, " SCHOOL_ISO_SQL(                                                              \
        "t.due_at") ", t.overdue_at IS NOT NULL OR t.due_at <= "                                   \
                    "to_timestamp($2::bigint / 1000.0), t.owner_role, "                            \
                    "coalesce(o.name, coalesce(t.owner_staff_id, '')), t.id, "                     \
                    "coalesce(o.id, '') FROM "                                                     \
                    "cases.task t JOIN cases.case c ON c.id = t.case_id JOIN "                     \
                    "registry.student st ON st.id = c.student_id LEFT JOIN "                       \
                    "registry.class cl ON cl.id = st.class_id LEFT JOIN "                          \
                    "registry.staff o ON o.id = coalesce(t.owner_staff_id, CASE "                  \
                    "WHEN t.owner_role = 'homeroom_teacher' THEN "                                 \
                    "cl.homeroom_staff_id END) WHERE t.case_id = $1::bigint AND "                  \
                    "t.outcome IS NULL ORDER BY t.due_at, t.id"

/* A report's form: the task, its deadline and where it is filed (the usual place selected). */
static void put_report(tmpl_ctx *r, const char *kind, const char *due, bool overdue,
                       const char *filed_with)
{
    static const char *const places[] = {"school", "academic_office", "township", "county_bureau"};
    static const char *const place_labels[] = {"学校", "教务处", "乡镇", "县教体局"};
    tmpl_put(r, "task", kind);
    tmpl_put(r, "label", page_label_task(kind));
    tmpl_put(r, "due", due);
    tmpl_put_bool(r, "overdue", overdue);
    for (size_t k = 0; k < 4; k++)
        page_put_option(r, "places", places[k], place_labels[k],
                        strcmp(places[k], filed_with) == 0);
}

/* The open tasks (res: CASE_TASKS_SQL), each with its reassign form, and the report forms of an
 * open case; the number of reports. */
static int put_tasks(tmpl_ctx *ctx, const school_case *c, const PGresult *res,
                     const PGresult *staff)
{
    int nreports = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *kind = PQgetvalue(res, i, 0);
        bool overdue = PQgetvalue(res, i, 2)[0] == 't';
        char due[24];
        tmpl_ctx *row = tmpl_add_row(ctx, "tasks");
        page_short_time(PQgetvalue(res, i, 1), due, sizeof(due));
        tmpl_put(row, "kind_label", page_label_task(kind));
        tmpl_put(row, "due", due);
        tmpl_put_bool(row, "overdue", overdue);
        tmpl_put(row, "owner",
                 PQgetvalue(res, i, 4)[0] ? PQgetvalue(res, i, 4) : PQgetvalue(res, i, 3));
        if (c->open)
            put_reassign(row, PQgetvalue(res, i, 5), PQgetvalue(res, i, 6), staff);
        const char *filed_with = report_filed_with(kind);
        if (filed_with && c->open) {
            put_report(tmpl_add_row(ctx, "reports"), kind, due, overdue, filed_with);
            nreports++;
        }
    }
    return nreports;
}

bx_status page_school_case_get(console_request *req, console_reply *rep, bx_error *err)
{
    school_case c;
    bx_status s;
    if (!load_case(req, rep, &c, &s, err))
        return s;
    char id[24], now[24];
    snprintf(id, sizeof(id), "%lld", c.id);
    snprintf(now, sizeof(now), "%lld", (long long)req->now);
    const char *params[] = {id, now};
    PGresult *res = NULL, *staff = NULL;
    s = bx_pg_query(req->db, CASE_TASKS_SQL, 2, params, &res, err);
    IFOK(s, school_staff(req, &staff, err));
    IFOK(s, page_auditf(req, "view_case", c.student_id, err, "case=%lld", c.id));
    int nreports = s == BX_OK ? put_tasks(rep->ctx, &c, res, staff) : 0;
    PQclear(res);
    PQclear(staff);
    if (s != BX_OK)
        return s;
    char opened[24];
    page_short_time(c.opened_at, opened, sizeof(opened));
    tmpl_ctx *ctx = rep->ctx;
    page_put_form(req, ctx, NULL);
    school_list_put_child(ctx, id, c.student_id, c.student_name);
    tmpl_put(ctx, "class_name", c.class_name);
    tmpl_put(ctx, "stage_label", page_label_stage(c.stage));
    tmpl_put(ctx, "opened", opened);
    tmpl_put_bool(ctx, "open", c.open);
    tmpl_put_int(ctx, "nreports", nreports);
    rep->template_name = "school_case";
    snprintf(rep->title, sizeof(rep->title), "个案 #%lld", c.id);
    return BX_OK;
}

bx_status page_school_case_post(console_request *req, console_reply *rep, bx_error *err)
{
    school_case c;
    bx_status s;
    if (!load_case(req, rep, &c, &s, err))
        return s;
    char back[64];
    snprintf(back, sizeof(back), "/school/cases/%lld", c.id);
    const char *token = console_form(req, "token");
    const char *task = console_form(req, "task");
    if (!page_form_ok(rep, back,
                      page_token_valid(token) && task != NULL && report_filed_with(task) != NULL))
        return BX_OK;
    bool open = false;
    s = open_task_of(req, c.id, task, &open, err);
    if (s != BX_OK)
        return s;
    if (!c.open || !open) {
        /* Done already (a resent form lands here too once bx-escalate closed the task). */
        console_redirect(rep, back, "这份报告已经记录，或个案不再需要它");
        return BX_OK;
    }
    char context[40];
    snprintf(context, sizeof(context), "case=%lld", c.id);
    page_action_form f = {.kind = PAGE_ACT_REPORT,
                          .student_id = c.student_id,
                          .date = console_form(req, "date"),
                          .staff_id = req->person->staff_id,
                          .event_id = token,
                          .task = task,
                          .filed_with = console_form(req, "filed_with")};
    return page_action_redirect(req, rep, &f, context, "已记录报告", back, err);
}

/* POST /school/cases/:case/reassign: the open task (task, its row id) goes to staff member `to` of
 * the school, recorded as the signed-in person's task_reassigned; bx-escalate changes the owner
 * and tells them. */
bx_status page_school_reassign_post(console_request *req, console_reply *rep, bx_error *err)
{
    school_case c;
    bx_status s;
    if (!load_case(req, rep, &c, &s, err))
        return s;
    char back[64], id[24];
    snprintf(back, sizeof(back), "/school/cases/%lld", c.id);
    snprintf(id, sizeof(id), "%lld", c.id);
    const char *token = console_form(req, "token");
    const char *task = console_form(req, "task");
    const char *to = console_form(req, "to");
    if (!page_form_ok(rep, back,
                      page_token_valid(token) && task != NULL && to != NULL && bx_id_valid(to)))
        return BX_OK;
    const char *params[] = {task, id, to, req->person->school_id};
    PGresult *res = NULL;
    s = bx_pg_query(req->db,
                    "SELECT t.task_key, t.kind, (SELECT name FROM registry.staff WHERE id = $3 AND "
                    "school_id = $4 AND role IN " SCHOOL_ROLES_SQL ") FROM cases.task t WHERE "
                    "t.id::text = $1 AND t.case_id = $2::bigint AND t.outcome IS NULL",
                    4, params, &res, err);
    if (s != BX_OK) {
        PQclear(res);
        return s;
    }
    if (!c.open || PQntuples(res) != 1 || PQgetisnull(res, 0, 2)) {
        PQclear(res);
        console_redirect(rep, back, "这项任务已经结束，或所选的人不是本校教师（未改派）");
        return BX_OK;
    }
    char task_key[160], name[CONSOLE_STORE_TEXT], context[64];
    snprintf(task_key, sizeof(task_key), "%s", PQgetvalue(res, 0, 0));
    snprintf(name, sizeof(name), "%s", PQgetvalue(res, 0, 2));
    snprintf(context, sizeof(context), "case=%lld task=%.20s", c.id, task);
    PQclear(res);
    char today[11];
    page_today(req, today);
    page_action_form f = {.kind = PAGE_ACT_REASSIGN,
                          .student_id = c.student_id,
                          .date = today,
                          .staff_id = req->person->staff_id,
                          .event_id = token,
                          .task_id = task_key,
                          .to_staff_id = to};
    char done[CONSOLE_STORE_TEXT + 32];
    snprintf(done, sizeof(done), "已改派给%s", name);
    return page_action_redirect(req, rep, &f, context, done, back, err);
}
