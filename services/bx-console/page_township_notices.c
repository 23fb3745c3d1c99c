/* page_township_notices: the township officer's workbench beside the sign-off (page_township.c):
 * - /township/notices: the cases of the township's schools awaiting the township's notices, the
 *   return notice (复学通知书) and the deadline notice (限期复学通知书), overdue first, each with a
 *   link to print it and record it delivered (page_print.c), and how many return reports wait for
 *   the sign-off (linked to /township);
 * - /township/children: the township's children out of school, the ledger's two lists (as `bxctl
 *   ledger`: suspected 疑似辍学, open cases not yet on the dropout roster; dropout 辍学, open cases
 *   that entered it, cases.on_roster) with the persuasion history of each.
 * Both paginated, sorted and filtered by stage, school and overdue; each row links to the
 * student's page. Scope: the officer's township (console_may decides each row); names are shown,
 * so each view is audited. */
#include "bx_log.h"
#include "bx_pg.h"
#include "page_common.h"
#include "page_school.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_PER_CASE 8 /* the latest events shown per child; the student page has them all */

static bool township_role(const console_person *p)
{
    return p && p->role == CONSOLE_TOWNSHIP_OFFICER && p->township_code[0];
}

/* A task overdue at $now: marked, or due before now. */
#define OVERDUE_SQL(t, now)                                                                        \
    "(" t ".overdue_at IS NOT NULL OR " t ".due_at <= to_timestamp(" now "::bigint / 1000.0))"

/* ---- notices to issue ---- */

static const char *const notice_sorts[] = {"due", "school", "opened", NULL};
static const char *const notice_sort_labels[] = {"按截止时间", "按学校", "按立案时间", NULL};
static const char *const notice_orders[] = {"3 DESC, t.due_at, t.id", "sc.name, sc.id, t.due_at",
                                            "c.opened_at DESC, t.id"};

/* $1 township, $2 now, $3 stage, $4 school, $5 overdue only, $6 limit, $7 offset. */
#define NOTICES_SQL_HEAD                                                                           \
    "SELECT c.id, t.kind, " OVERDUE_SQL("t", "$2") ", " SCHOOL_ISO_SQL(                            \
        "t.due_at") ", c.student_id, coalesce(sp.name, ''), sc.id, sc.name, coalesce(cl.name, "    \
                    "''), coalesce(c.stage, ''), count(*) OVER () "                                \
                    "FROM cases.task t JOIN cases.case c ON c.id = t.case_id "                     \
                    "JOIN registry.student st ON st.id = c.student_id "                            \
                    "JOIN registry.school sc ON sc.id = st.school_id "                             \
                    "LEFT JOIN registry.class cl ON cl.id = st.class_id "                          \
                    "LEFT JOIN registry.student_private sp ON sp.student_id = st.id "              \
                    "WHERE t.outcome IS NULL AND t.kind IN ('return_notice', 'deadline_notice') "  \
                    "AND t.owner_role = 'township_officer' AND c.closed_at IS NULL AND "           \
                    "sc.township_code = $1 AND ($3 = '' OR c.stage = $3) AND ($4 = '' OR sc.id = " \
                    "$4) AND (NOT $5::boolean OR " OVERDUE_SQL("t", "$2") ") ORDER BY "
#define LIST_SQL_TAIL " LIMIT $6::int OFFSET $7::bigint"

/* The township lists' first seven parameters ($1 township .. $7 offset), from the page's. */
static void put_params(const console_request *req, const school_list_page *p, const char *params[7])
{
    params[0] = req->person->township_code;
    params[1] = p->now;
    params[2] = p->q.stage;
    params[3] = p->q.school_id;
    params[4] = p->q.overdue ? "true" : "false";
    params[5] = p->limit;
    params[6] = p->offset;
}

/* The township's schools for the school filter. */
static bx_status put_schools(console_request *req, console_reply *rep, const char *selected,
                             bx_error *err)
{
    const char *params[] = {req->person->township_code};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db,
                              "SELECT id, name FROM registry.school WHERE township_code = $1 "
                              "ORDER BY name, id",
                              1, params, &res, err);
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++)
        page_put_option(rep->ctx, "school_options", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        strcmp(selected, PQgetvalue(res, i, 0)) == 0);
    PQclear(res);
    return s;
}

/* Return reports waiting for this officer's sign-off (the list is page_township.c's). */
static bx_status put_signoffs(console_request *req, console_reply *rep, bx_error *err)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)req->now);
    const char *params[] = {req->person->township_code, now, req->person->staff_id};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        req->db,
        "SELECT count(*), count(*) FILTER (WHERE " OVERDUE_SQL(
            "t", "$2") ") FROM cases.task t JOIN cases.case c ON c.id = t.case_id JOIN "
                       "registry.student st ON st.id = c.student_id JOIN registry.school sc ON "
                       "sc.id = st.school_id WHERE t.kind = 'return_report_signoff' AND "
                       "t.owner_role = 'township_officer' AND t.outcome IS NULL AND c.closed_at IS "
                       "NULL AND sc.township_code = $1 AND (t.owner_staff_id IS NULL OR "
                       "t.owner_staff_id = $3)",
        3, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        tmpl_put(rep->ctx, "signoffs", PQgetvalue(res, 0, 0));
        tmpl_put(rep->ctx, "signoffs_overdue", PQgetvalue(res, 0, 1));
        tmpl_put_bool(rep->ctx, "has_signoffs", strcmp(PQgetvalue(res, 0, 0), "0") != 0);
    }
    PQclear(res);
    return s;
}

bx_status page_township_notices_get(console_request *req, console_reply *rep, bx_error *err)
{
    if (!page_found(rep, BX_OK, township_role(req->person)))
        return BX_OK;
    school_list_page p;
    school_list_begin(req, notice_sorts, &p);
    const char *params[7];
    put_params(req, &p, params);
    bx_status s = school_list_fetch(req, &p, NOTICES_SQL_HEAD, notice_orders, LIST_SQL_TAIL, 7,
                                    params, 10, err);
    const PGresult *res = p.res;
    int n = p.n;
    for (int i = 0; i < n && s == BX_OK; i++) {
        if (!school_list_row_allowed(req, res, i, 4, CONSOLE_WRITE_ACTION, &s, err))
            continue;
        const char *student = PQgetvalue(res, i, 4);
        tmpl_ctx *row = tmpl_add_row(rep->ctx, "notices");
        char due[24];
        page_short_time(PQgetvalue(res, i, 3), due, sizeof(due));
        bool deadline = strcmp(PQgetvalue(res, i, 1), "deadline_notice") == 0;
        school_list_put_child(row, PQgetvalue(res, i, 0), student, PQgetvalue(res, i, 5));
        tmpl_put(row, "kind", PQgetvalue(res, i, 1));
        tmpl_put(row, "kind_label", deadline ? "限期复学通知书" : "复学通知书");
        tmpl_put_bool(row, "overdue", PQgetvalue(res, i, 2)[0] == 't');
        tmpl_put(row, "due", due);
        tmpl_put(row, "school_name", PQgetvalue(res, i, 7));
        tmpl_put(row, "class_name", PQgetvalue(res, i, 8));
    }
    PQclear(p.res);
    IFOK(s, put_signoffs(req, rep, err));
    IFOK(s, put_schools(req, rep, p.q.school_id, err));
    IFOK(s, console_audit(req, "view_township_notices", NULL, NULL, err));
    if (s != BX_OK)
        return s;
    school_list_put(rep->ctx, &p.q, notice_sorts, notice_sort_labels, "/township/notices", p.total);
    rep->template_name = "township_notices";
    snprintf(rep->title, sizeof(rep->title), "乡镇工作台");
    return BX_OK;
}

/* ---- children out of school ---- */

static const char *const child_sorts[] = {"opened", "school", "stage", "overdue", NULL};
static const char *const child_sort_labels[] = {"按立案时间", "按学校", "按阶段", "逾期优先", NULL};
static const char *const child_orders[] = {
    "c.opened_at, c.id", "sc.name, sc.id, cl.name, c.id",
    "array_position(ARRAY['contact_family','home_visit','school_report','academic_office',"
    "'dropout_roster','township_notice','deadline_notice','legal_referral'], c.stage) DESC NULLS "
    "LAST, c.id",
    "10 DESC, c.opened_at, c.id"};

/* $1 township, $2 now, $3 stage, $4 school, $5 overdue only, $6 limit, $7 offset, $8 list
 * (suspected or dropout). The roster entry as bxctl ledger's dc: the first stage_entered into a
 * stage on the roster. */
#define CHILDREN_SQL_HEAD                                                                          \
    "SELECT c.id, c.student_id, coalesce(sp.name, ''), sc.id, sc.name, coalesce(cl.name, ''), "    \
    "coalesce(c.stage, ''), " SCHOOL_ISO_SQL("c.opened_at") ", coalesce(" SCHOOL_ISO_SQL(          \
        "dc.dropped_at") ", ''), "                                                                 \
                         "EXISTS (SELECT 1 FROM cases.task t WHERE t.case_id = c.id AND "          \
                         "t.outcome IS NULL AND " OVERDUE_SQL(                                     \
                             "t", "$2") ") AS od, count(*) OVER () "                               \
                                        "FROM cases.case c JOIN registry.student st ON st.id = "   \
                                        "c.student_id JOIN registry.school sc ON sc.id = "         \
                                        "st.school_id LEFT JOIN registry.class cl ON cl.id = "     \
                                        "st.class_id LEFT JOIN registry.student_private sp ON "    \
                                        "sp.student_id = st.id LEFT JOIN LATERAL (SELECT "         \
                                        "min(e.occurred_at) AS dropped_at FROM cases.event e "     \
                                        "WHERE e.case_id = c.id AND e.kind = 'stage_entered' AND " \
                                        "cases.on_roster(e.stage)) dc ON true "                    \
                                        "WHERE c.closed_at IS NULL AND sc.township_code = $1 AND " \
                                        "(dc.dropped_at IS NOT NULL) = ($8 = 'dropout') AND ($3 "  \
                                        "= '' OR c.stage = $3) AND ($4 = '' OR sc.id = $4) AND "   \
                                        "(NOT $5::boolean OR EXISTS (SELECT 1 FROM cases.task t "  \
                                        "WHERE t.case_id = c.id AND t.outcome IS NULL AND "        \
                                        "" OVERDUE_SQL("t", "$2") ")) ORDER BY "

/* The latest events of the listed cases but the ladder's own bookkeeping (task_created), newest
 * first per case, at most HISTORY_PER_CASE each: $1 the case ids as an array literal. */
#define HISTORY_SQL                                                                                \
    "SELECT x.case_id, x.kind, x.stage, x.actor, x.name, x.reason, " SCHOOL_ISO_SQL(               \
        "x.occurred_at") " FROM (SELECT e.case_id, e.kind, coalesce(e.stage, '') AS stage, "       \
                         "e.actor, coalesce(s.name, '') AS name, e.reason, e.occurred_at, "        \
                         "row_number() OVER (PARTITION BY e.case_id ORDER BY e.id DESC) AS rn "    \
                         "FROM cases.event e LEFT JOIN registry.staff s ON s.id = e.actor WHERE "  \
                         "e.case_id = ANY ($1::bigint[]) AND e.kind <> 'task_created') x WHERE "   \
                         "x.rn <= " BX_STR(HISTORY_PER_CASE) " ORDER BY x.case_id, x.rn"
#define BX_STR_(x) #x
#define BX_STR(x)  BX_STR_(x)

/* Fills each listed child's history (rows in the order of ids). */
static bx_status put_histories(console_request *req, tmpl_ctx **rows, long long *ids, int n,
                               bx_error *err)
{
    if (n == 0)
        return BX_OK;
    char list[24 * SCHOOL_LIST_PER_PAGE + 4];
    size_t used = 0;
    list[used++] = '{';
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%lld", i ? "," : "", ids[i]);
    snprintf(list + used, sizeof(list) - used, "}");
    const char *params[] = {list};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db, HISTORY_SQL, 1, params, &res, err);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        long long id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        for (int i = 0; i < n; i++) {
            if (ids[i] != id)
                continue;
            tmpl_ctx *h = tmpl_add_row(rows[i], "history");
            char at[24], reason[1024];
            page_short_time(PQgetvalue(res, r, 6), at, sizeof(at));
            tmpl_put(h, "at", at);
            const char *actor = PQgetvalue(res, r, 3), *name = PQgetvalue(res, r, 4);
            tmpl_put(h, "who", name[0] ? name : strncmp(actor, "bx-", 3) == 0 ? "系统" : actor);
            tmpl_put(h, "what", page_label_event(PQgetvalue(res, r, 1)));
            const char *stage = PQgetvalue(res, r, 2);
            tmpl_put(h, "stage", stage[0] ? page_label_stage(stage) : "");
            /* free text may hold a phone or id number: masked as everywhere */
            snprintf(reason, sizeof(reason), "%s", PQgetvalue(res, r, 5));
            bx_log_mask(reason);
            tmpl_put(h, "reason", reason);
        }
    }
    PQclear(res);
    return s;
}

bx_status page_township_children_get(console_request *req, console_reply *rep, bx_error *err)
{
    if (!page_found(rep, BX_OK, township_role(req->person)))
        return BX_OK;
    const char *list = console_query(req, "list");
    bool suspected = list && strcmp(list, "suspected") == 0;
    school_list_page p;
    school_list_begin(req, child_sorts, &p);
    const char *params[8];
    put_params(req, &p, params);
    params[7] = suspected ? "suspected" : "dropout";
    bx_status s = school_list_fetch(req, &p, CHILDREN_SQL_HEAD, child_orders, LIST_SQL_TAIL, 8,
                                    params, 10, err);
    const PGresult *res = p.res;
    int n = p.n;
    tmpl_ctx *rows[SCHOOL_LIST_PER_PAGE];
    long long ids[SCHOOL_LIST_PER_PAGE];
    int shown = 0;
    for (int i = 0; i < n && s == BX_OK && shown < SCHOOL_LIST_PER_PAGE; i++) {
        tmpl_ctx *row = school_list_child_row(req, res, i, rep->ctx, "children", &s, err);
        if (row == NULL)
            continue;
        tmpl_put(row, "school_name", PQgetvalue(res, i, 4));
        tmpl_put(row, "class_name", PQgetvalue(res, i, 5));
        tmpl_put(row, "stage_label", page_label_stage(PQgetvalue(res, i, 6)));
        page_put_short_time(row, "opened", PQgetvalue(res, i, 7));
        page_put_short_time(row, "dropped", PQgetvalue(res, i, 8));
        tmpl_put_bool(row, "overdue", PQgetvalue(res, i, 9)[0] == 't');
        rows[shown] = row;
        ids[shown++] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    PQclear(p.res);
    IFOK(s, put_histories(req, rows, ids, shown, err));
    IFOK(s, put_schools(req, rep, p.q.school_id, err));
    IFOK(s, console_audit(req, "view_township_children", NULL,
                          suspected ? "list=suspected" : "list=dropout", err));
    if (s != BX_OK)
        return s;
    const char *path = suspected ? "/township/children?list=suspected" : "/township/children";
    /* the list's own parameter stays in every link: the pager appends with '&' after it */
    school_list_put(rep->ctx, &p.q, child_sorts, child_sort_labels, path, p.total);
    tmpl_put_bool(rep->ctx, "suspected", suspected);
    tmpl_put(rep->ctx, "list", suspected ? "suspected" : "dropout");
    rep->template_name = "township_notices_children";
    snprintf(rep->title, sizeof(rep->title), "%s", suspected ? "疑似辍学学生" : "辍学学生");
    return BX_OK;
}
