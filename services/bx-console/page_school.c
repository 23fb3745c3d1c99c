/* page_school: the principal's and academic office's workbench (/school): the classes that have
 * not sent today's (and the last school day's) roll call, each with one button that reminds the
 * homeroom teacher by SMS through bx-notify (template rollcall_reminder); the overdue tasks of the
 * school grouped by the teacher who owns them; and the school's open cases by stage with the next
 * task, its owner and deadline (paginated, sorted, filtered by stage and overdue). Scope: the
 * signed-in person's school (console_may decides each row); names are shown, so the view is
 * audited. */
#include "bx_log.h"
#include "bx_pg.h"
#include "page_common.h"
#include "page_school.h"
#include "scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OVERDUE_MAX     200 /* overdue tasks shown, grouped by owner */
#define REMIND_TEMPLATE "rollcall_reminder"

static const char *const case_sorts[] = {"due", "opened", "stage", "class", NULL};
static const char *const case_sort_labels[] = {"按截止时间", "按立案时间", "按阶段", "按班级",
                                               NULL};
/* ORDER BY of each sort (fixed text, never from the request); overdue first in every one. */
static const char *const case_orders[] = {
    "nt_overdue DESC, nt_due NULLS LAST, c.id", "c.opened_at DESC, c.id",
    "array_position(ARRAY['contact_family','home_visit','school_report','academic_office',"
    "'dropout_roster','township_notice','deadline_notice','legal_referral'], c.stage) DESC NULLS "
    "LAST, nt_due NULLS LAST, c.id",
    "cl.grade, cl.name, c.id"};

static bool school_role(const console_person *p)
{
    return p && (p->role == CONSOLE_PRINCIPAL || p->role == CONSOLE_ACADEMIC_OFFICE) &&
           p->school_id[0];
}

static void copy_col(char *out, size_t size, const PGresult *res, int row, int col)
{
    snprintf(out, size, "%s", PQgetvalue(res, row, col));
}

/* The owner of a task as the page names it: the person, else the role. */
static void put_owner(tmpl_ctx *row, const char *staff_name, const char *staff_id, const char *role)
{
    const char *label = console_role_label_of(role);
    if (staff_name[0])
        tmpl_putf(row, "owner", "%s（%s）", staff_name, label);
    else if (staff_id[0])
        tmpl_putf(row, "owner", "%s（%s）", staff_id, label);
    else
        tmpl_put(row, "owner", label);
}

bx_status school_list_fetch(console_request *req, school_list_page *p, const char *head,
                            const char *const *orders, const char *tail, int nparams,
                            const char *const *params, int total_col, bx_error *err)
{
    p->res = NULL;
    p->n = 0;
    p->total = 0;
    const char *order = orders[p->q.sort];
    size_t size = strlen(head) + strlen(order) + strlen(tail) + 1;
    char *sql = malloc(size);
    if (sql == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    snprintf(sql, size, "%s%s%s", head, order, tail);
    bx_status s = bx_pg_query(req->db, sql, nparams, params, &p->res, err);
    free(sql);
    p->n = s == BX_OK ? PQntuples(p->res) : 0;
    p->total = p->n > 0 ? strtoll(PQgetvalue(p->res, 0, total_col), NULL, 10) : 0;
    return s;
}

bool school_list_row_allowed(const console_request *req, const PGresult *res, int i,
                             int student_col, console_action a, bx_status *s, bx_error *err)
{
    bool allowed = false;
    *s = page_may_student(req, PQgetvalue(res, i, student_col), a, &allowed, err);
    return *s == BX_OK && allowed;
}

/* ---- roll calls not sent ---- */

/* The last school day before today in the school's calendar (BX_DATE_NONE if none near). */
typedef struct days_arg {
    const char *school_id;
    bx_date today;
    bool school_day;
    bx_date previous;
} days_arg;

static bx_status school_days(const bx_registry *registry, const struct ingest_staff_dir *staff,
                             void *arg)
{
    (void)staff;
    days_arg *a = arg;
    const bx_reg_school *sc = bx_registry_school(registry, a->school_id);
    a->school_day = false;
    a->previous = BX_DATE_NONE;
    if (sc == NULL || sc->calendar == NULL)
        return BX_OK;
    a->school_day = bx_calendar_is_school_day(sc->calendar, a->today);
    a->previous = bx_calendar_add_school_days(sc->calendar, a->today, -1);
    return BX_OK;
}

/* The enrolled classes of the school with whether (day) and (previous) were reported, and the
 * time of today's last reminder. */
#define CLASSES_SQL                                                                                \
    "SELECT cl.id, cl.name, coalesce(cl.homeroom_staff_id, ''), coalesce(hs.name, ''), "           \
    "coalesce(hs.phone, '') <> '', "                                                               \
    "EXISTS (SELECT 1 FROM attendance.class_report r WHERE r.class_id = cl.id AND r.day = "        \
    "$2::date), "                                                                                  \
    "$3 = '' OR EXISTS (SELECT 1 FROM attendance.class_report r WHERE r.class_id = cl.id AND "     \
    "r.day = nullif($3, '')::date), "                                                              \
    "coalesce((SELECT to_char(max(a.at) AT TIME ZONE 'Asia/Shanghai', 'HH24:MI') FROM "            \
    "console.audit a WHERE a.action = 'rollcall_reminder' AND a.at >= $2::date - interval '8 "     \
    "hours' AND a.detail LIKE 'class=' || cl.id || ' day=' || $2 || ' %'), '') "                   \
    "FROM registry.class cl LEFT JOIN registry.staff hs ON hs.id = cl.homeroom_staff_id "          \
    "WHERE cl.school_id = $1 AND EXISTS (SELECT 1 FROM registry.student s WHERE s.class_id = "     \
    "cl.id AND s.status = 'enrolled') ORDER BY cl.grade, cl.name, cl.id"

static bx_status put_rollcalls(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    char today[11], previous[11] = "";
    days_arg d = {.school_id = me->school_id, .today = page_today(req, today)};
    bx_status s = console_store_with_registry(store, req->db, school_days, &d, err);
    if (s != BX_OK)
        return s;
    if (d.previous != BX_DATE_NONE)
        bx_date_format(d.previous, previous);
    const char *params[] = {me->school_id, today, previous};
    PGresult *res = NULL;
    s = bx_pg_query(req->db, CLASSES_SQL, 3, params, &res, err);
    int n = s == BX_OK ? PQntuples(res) : 0;
    int missing_today = 0, missing_previous = 0;
    for (int i = 0; i < n; i++) {
        bool sent_today = PQgetvalue(res, i, 5)[0] == 't';
        bool sent_previous = PQgetvalue(res, i, 6)[0] == 't';
        const char *teacher = PQgetvalue(res, i, 3)[0]   ? PQgetvalue(res, i, 3)
                              : PQgetvalue(res, i, 2)[0] ? PQgetvalue(res, i, 2)
                                                         : "未登记班主任";
        if (d.school_day && !sent_today) {
            tmpl_ctx *row = tmpl_add_row(rep->ctx, "unreported_today");
            tmpl_put(row, "class_id", PQgetvalue(res, i, 0));
            tmpl_put(row, "class_name", PQgetvalue(res, i, 1));
            tmpl_put(row, "teacher", teacher);
            tmpl_put_bool(row, "can_remind", PQgetvalue(res, i, 4)[0] == 't');
            tmpl_put(row, "reminded_at", PQgetvalue(res, i, 7));
            missing_today++;
        }
        if (!sent_previous) {
            tmpl_ctx *row = tmpl_add_row(rep->ctx, "unreported_previous");
            tmpl_put(row, "class_id", PQgetvalue(res, i, 0));
            tmpl_put(row, "class_name", PQgetvalue(res, i, 1));
            tmpl_put(row, "teacher", teacher);
            missing_previous++;
        }
    }
    PQclear(res);
    tmpl_put_bool(rep->ctx, "school_day", d.school_day);
    tmpl_put(rep->ctx, "today", today);
    tmpl_put(rep->ctx, "previous_day", previous);
    tmpl_put_int(rep->ctx, "classes", n);
    tmpl_put_int(rep->ctx, "missing_today", missing_today);
    tmpl_put_int(rep->ctx, "missing_previous", missing_previous);
    return s;
}

/* ---- overdue tasks by teacher ---- */

#define OVERDUE_SQL                                                                                \
    "SELECT t.id, t.kind, " SCHOOL_ISO_SQL(                                                        \
        "t.due_at") ", c.id, c.student_id, coalesce(sp.name, "                                     \
                    "''), coalesce(cl.name, ''), t.owner_role, "                                   \
                    "coalesce(o.id, ''), coalesce(o.name, '') "                                    \
                    "FROM cases.case c JOIN registry.student st ON st.id = c.student_id "          \
                    "JOIN cases.task t ON t.case_id = c.id AND t.outcome IS NULL AND "             \
                    "(t.overdue_at IS NOT NULL "                                                   \
                    "OR t.due_at <= to_timestamp($2::bigint / 1000.0)) "                           \
                    "LEFT JOIN registry.class cl ON cl.id = st.class_id "                          \
                    "LEFT JOIN registry.student_private sp ON sp.student_id = st.id "              \
                    "LEFT JOIN registry.staff o ON o.id = coalesce(t.owner_staff_id, CASE WHEN "   \
                    "t.owner_role = "                                                              \
                    "'homeroom_teacher' THEN cl.homeroom_staff_id END) "                           \
                    "WHERE c.closed_at IS NULL AND st.school_id = $1 AND t.owner_role "            \
                    "IN " SCHOOL_ROLES_SQL " ORDER BY (o.id IS NULL), o.name, o.id, "              \
                    "t.owner_role, t.due_at, t.id LIMIT $3::int"

static bx_status put_overdue(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    char now[24], max[16];
    snprintf(now, sizeof(now), "%lld", (long long)req->now);
    snprintf(max, sizeof(max), "%d", OVERDUE_MAX);
    const char *params[] = {me->school_id, now, max};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db, OVERDUE_SQL, 3, params, &res, err);
    int n = s == BX_OK ? PQntuples(res) : 0;
    tmpl_ctx *group = NULL;
    char group_key[80] = "";
    int in_group = 0, total = 0;
    for (int i = 0; i < n && s == BX_OK; i++) {
        if (!school_list_row_allowed(req, res, i, 4, CONSOLE_VIEW_PERSONAL, &s, err))
            continue;
        const char *student = PQgetvalue(res, i, 4);
        /* One group per owner: the person when known, else the role. */
        char key[80];
        snprintf(key, sizeof(key), "%s/%s", PQgetvalue(res, i, 8), PQgetvalue(res, i, 7));
        if (group == NULL || strcmp(key, group_key) != 0) {
            if (group)
                tmpl_put_int(group, "count", in_group);
            group = tmpl_add_row(rep->ctx, "overdue_groups");
            put_owner(group, PQgetvalue(res, i, 9), PQgetvalue(res, i, 8), PQgetvalue(res, i, 7));
            snprintf(group_key, sizeof(group_key), "%s", key);
            in_group = 0;
        }
        tmpl_ctx *row = tmpl_add_row(group, "tasks");
        char due[24];
        page_short_time(PQgetvalue(res, i, 2), due, sizeof(due));
        tmpl_put_int(row, "task_id", strtoll(PQgetvalue(res, i, 0), NULL, 10));
        tmpl_put(row, "kind_label", page_label_task(PQgetvalue(res, i, 1)));
        tmpl_put(row, "due", due);
        school_list_put_child(row, PQgetvalue(res, i, 3), student, PQgetvalue(res, i, 5));
        tmpl_put(row, "class_name", PQgetvalue(res, i, 6));
        in_group++;
        total++;
    }
    if (group)
        tmpl_put_int(group, "count", in_group);
    PQclear(res);
    tmpl_put_int(rep->ctx, "overdue_total", total);
    tmpl_put_bool(rep->ctx, "overdue_capped", n >= OVERDUE_MAX);
    return s;
}

/* ---- the school's open cases ---- */

/* $1 school, $2 now (ms), $3 stage or "", $4 overdue only, $5 limit, $6 offset. The next task is
 * the open one due first; its owner the person named, else the class's homeroom teacher for a
 * homeroom task, else the role. */
#define CASES_SQL_HEAD                                                                             \
    "SELECT c.id, c.student_id, coalesce(sp.name, ''), coalesce(cl.name, ''), "                    \
    "coalesce(c.stage, ''), " SCHOOL_ISO_SQL(                                                      \
        "c.opened_at") ", coalesce(nt.kind, ''), "                                                 \
                       "coalesce(" SCHOOL_ISO_SQL(                                                 \
                           "nt.due_at") ", ''), coalesce(nt.owner_role, ''), "                     \
                                        "coalesce(o.id, ''), coalesce(o.name, ''), "               \
                                        "coalesce(nt.overdue, false) AS nt_overdue, "              \
                                        "nt.due_at AS nt_due, count(*) OVER () "                   \
                                        "FROM cases.case c JOIN registry.student st ON st.id = "   \
                                        "c.student_id "                                            \
                                        "LEFT JOIN registry.class cl ON cl.id = st.class_id "      \
                                        "LEFT JOIN registry.student_private sp ON sp.student_id "  \
                                        "= st.id "                                                 \
                                        "LEFT JOIN LATERAL (SELECT t.kind, t.due_at, "             \
                                        "t.owner_role, t.owner_staff_id, "                         \
                                        "(t.overdue_at IS NOT NULL OR t.due_at <= "                \
                                        "to_timestamp($2::bigint / 1000.0)) AS overdue "           \
                                        "FROM cases.task t WHERE t.case_id = c.id AND t.outcome "  \
                                        "IS NULL ORDER BY t.due_at, t.id "                         \
                                        "LIMIT 1) nt ON true "                                     \
                                        "LEFT JOIN registry.staff o ON o.id = "                    \
                                        "coalesce(nt.owner_staff_id, CASE WHEN nt.owner_role = "   \
                                        "'homeroom_teacher' THEN cl.homeroom_staff_id END) "       \
                                        "WHERE c.closed_at IS NULL AND st.school_id = $1 AND ($3 " \
                                        "= '' OR c.stage = $3) AND "                               \
                                        "(NOT $4::boolean OR EXISTS (SELECT 1 FROM cases.task ot " \
                                        "WHERE ot.case_id = c.id AND "                             \
                                        "ot.outcome IS NULL AND (ot.overdue_at IS NOT NULL OR "    \
                                        "ot.due_at <= to_timestamp($2::bigint "                    \
                                        "/ 1000.0)))) ORDER BY "
#define CASES_SQL_TAIL " LIMIT $5::int OFFSET $6::bigint"

static bx_status put_cases(console_request *req, console_reply *rep, bx_error *err)
{
    school_list_page p;
    school_list_begin(req, case_sorts, &p);
    const char *params[] = {req->person->school_id,         p.now,   p.q.stage,
                            p.q.overdue ? "true" : "false", p.limit, p.offset};
    bx_status s =
        school_list_fetch(req, &p, CASES_SQL_HEAD, case_orders, CASES_SQL_TAIL, 6, params, 13, err);
    const PGresult *res = p.res;
    int n = p.n;
    for (int i = 0; i < n && s == BX_OK; i++) {
        tmpl_ctx *row = school_list_child_row(req, res, i, rep->ctx, "cases", &s, err);
        if (row == NULL)
            continue;
        tmpl_put(row, "class_name", PQgetvalue(res, i, 3));
        tmpl_put(row, "stage_label", page_label_stage(PQgetvalue(res, i, 4)));
        page_put_short_time(row, "opened", PQgetvalue(res, i, 5));
        if (PQgetvalue(res, i, 6)[0]) {
            tmpl_put(row, "next_task", page_label_task(PQgetvalue(res, i, 6)));
            page_put_short_time(row, "due", PQgetvalue(res, i, 7));
            put_owner(row, PQgetvalue(res, i, 10), PQgetvalue(res, i, 9), PQgetvalue(res, i, 8));
        }
        tmpl_put_bool(row, "overdue", PQgetvalue(res, i, 11)[0] == 't');
    }
    PQclear(p.res);
    if (s == BX_OK)
        school_list_put(rep->ctx, &p.q, case_sorts, case_sort_labels, "/school", p.total);
    return s;
}

bx_status page_school_get(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    if (!page_found(rep, BX_OK, school_role(me)))
        return BX_OK;
    console_object o = {.kind = CONSOLE_OBJ_SCHOOL,
                        .school_id = me->school_id,
                        .township_code = me->township_code,
                        .county_code = me->county_code};
    /* the school as a whole (each row below is checked for its student's personal data) */
    if (!page_found(rep, BX_OK, console_may(me, CONSOLE_VIEW_AGGREGATE, &o)))
        return BX_OK;
    const char *params[] = {me->school_id};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db, "SELECT name FROM registry.school WHERE id = $1", 1, params,
                              &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        tmpl_put(rep->ctx, "school_name", PQgetvalue(res, 0, 0));
    PQclear(res);
    IFOK(s, put_rollcalls(req, rep, err));
    IFOK(s, put_overdue(req, rep, err));
    IFOK(s, put_cases(req, rep, err));
    /* Names of the school's children are shown: audited (one row for the page). */
    IFOK(s, page_auditf(req, "view_school", NULL, err, "school=%s", me->school_id));
    if (s != BX_OK)
        return s;
    char token[PAGE_TOKEN_SIZE];
    page_new_token(token);
    tmpl_put(rep->ctx, "token", token);
    rep->template_name = "school_home";
    snprintf(rep->title, sizeof(rep->title), "学校工作台");
    return BX_OK;
}

/* ---- the reminder ---- */

/* The bx.notify.requests.v1 message asking bx-notify to text the homeroom teacher: no student,
 * the teacher by staff id, the school by params.school_id (its name fills {school}), the class's
 * registry name as params.class ({class}). */
static bx_status reminder_json(const char *request_id, const char *staff_id, const char *school_id,
                               const char *class_name, bx_time_ms now, bx_buf *out)
{
    char requested[40];
    bx_time_format(now, requested, sizeof(requested));
    const char *const parts[] = {
        "{\"schema\":\"" BX_TOPIC_NOTIFY_REQUESTS "\",\"request_id\":",
        request_id,
        ",\"case_id\":null,\"student_id\":null,\"template\":\"" REMIND_TEMPLATE
        "\",\"recipient_role\":\"homeroom_teacher\","
        "\"recipient_staff_id\":",
        staff_id,
        ",\"channel\":\"sms\",\"params\":{\"school_id\":",
        school_id,
        ",\"class\":",
        class_name,
        "},\"not_before\":null,\"requested_at\":",
        requested,
        "}"};
    return page_json_parts(out, parts, sizeof(parts) / sizeof(parts[0]));
}

/* The class a reminder is about: its school, homeroom teacher and whether today's roll call is in.
 */
typedef struct remind_class {
    char school_id[BX_ID_MAX + 1], staff_id[BX_ID_MAX + 1];
    char teacher[CONSOLE_STORE_TEXT], class_name[CONSOLE_STORE_TEXT];
    bool has_phone, reported;
} remind_class;

/* BX_OK and *found when the class exists. */
static bx_status read_remind_class(console_request *req, const char *class_id, const char *today,
                                   remind_class *rc, bool *found, bx_error *err)
{
    const char *params[] = {class_id, today};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        req->db,
        "SELECT cl.school_id, coalesce(cl.homeroom_staff_id, ''), coalesce(hs.name, ''), "
        "coalesce(hs.phone, '') <> '', EXISTS (SELECT 1 FROM attendance.class_report r "
        "WHERE r.class_id = cl.id AND r.day = $2::date), cl.name FROM registry.class cl "
        "LEFT JOIN registry.staff hs ON hs.id = cl.homeroom_staff_id WHERE cl.id = $1",
        2, params, &res, err);
    *found = s == BX_OK && PQntuples(res) == 1;
    if (*found) {
        copy_col(rc->school_id, sizeof(rc->school_id), res, 0, 0);
        copy_col(rc->staff_id, sizeof(rc->staff_id), res, 0, 1);
        copy_col(rc->teacher, sizeof(rc->teacher), res, 0, 2);
        copy_col(rc->class_name, sizeof(rc->class_name), res, 0, 5);
        rc->has_phone = PQgetvalue(res, 0, 3)[0] == 't';
        rc->reported = PQgetvalue(res, 0, 4)[0] == 't';
    }
    PQclear(res);
    return s;
}

/* Asks bx-notify to text the teacher (request id from the form's token: pressing twice asks
 * once) and audits it; the flash says what happened. */
static bx_status send_reminder(console_request *req, const char *class_id, const char *today,
                               const char *token, const remind_class *rc, char *flash, size_t size,
                               bx_error *err)
{
    char request_id[96];
    snprintf(request_id, sizeof(request_id), "rollcall-reminder:%s:%s", class_id, token);
    bx_buf msg;
    bx_buf_init(&msg, 4096);
    bx_status s =
        reminder_json(request_id, rc->staff_id, rc->school_id, rc->class_name, req->now, &msg);
    IFOK(s, page_send_acked(req, BX_TOPIC_NOTIFY_REQUESTS, rc->staff_id, msg.data, msg.len, err));
    bx_buf_free(&msg);
    if (s != BX_OK) {
        bx_log_warn("staff %s: roll-call reminder for class %s not sent: %s", req->person->staff_id,
                    class_id, err->msg);
        snprintf(flash, size, "提醒没有发出，请稍后再试（重复提交是安全的）");
        return BX_OK;
    }
    char detail[200];
    snprintf(detail, sizeof(detail), "class=%s day=%s request=%s staff=%s", class_id, today,
             request_id, rc->staff_id);
    s = console_audit(req, "rollcall_reminder", NULL, detail, err);
    snprintf(flash, size, "已发短信提醒%s老师为%s点名", rc->teacher[0] ? rc->teacher : rc->staff_id,
             rc->class_name);
    return s;
}

bx_status page_school_remind_post(console_request *req, console_reply *rep, bx_error *err)
{
    const char *class_id = req->params[0];
    bx_status s = BX_OK;
    if (!page_found(rep, s, school_role(req->person)) ||
        !page_admit_class(req, rep, class_id, CONSOLE_WRITE_ATTENDANCE, &s, err))
        return s;
    const char *token = console_form(req, "token");
    if (!page_token_valid(token)) {
        console_redirect(rep, "/school", "表单已失效，请重新打开页面");
        return BX_OK;
    }
    char today[11];
    page_today(req, today);
    remind_class rc;
    bool found = false;
    s = read_remind_class(req, class_id, today, &rc, &found, err);
    if (!page_found(rep, s, found))
        return s;
    char flash[256];
    if (rc.reported)
        snprintf(flash, sizeof(flash), "%s今天已经点名，不用提醒", rc.class_name);
    else if (!rc.staff_id[0] || !rc.has_phone)
        snprintf(flash, sizeof(flash), "%s没有登记%s，无法发短信提醒", rc.class_name,
                 rc.staff_id[0] ? "班主任的手机号" : "班主任");
    else
        s = send_reminder(req, class_id, today, token, &rc, flash, sizeof(flash), err);
    if (s != BX_OK)
        return s;
    console_redirect(rep, "/school", flash);
    return BX_OK;
}
