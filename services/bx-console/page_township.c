/* page_township: the township officer's sign-off of the return report (复学报告书). A list of the
 * township's cases awaiting it (tasks return_report_signoff owned by the township officer, overdue
 * first), and per case a form that posts `returned` with details.township_signoff_staff_id = the
 * signed-in officer through bx-ingest's validation (page_write), as that person: the one way a
 * township sign-off reaches bx.actions.v1 now that a school's key cannot sign for the township.
 * Scope: CONSOLE_SIGN_OFF_RETURN (the officer's own township); anything else answers 404. */
#include "bx_log.h"
#include "bx_pg.h"
#include "page_common.h"
#include "page_township.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The task the ladder creates when a return is recorded without the township's sign-off
 * (deploy/policy/ladder.policy: ladder.return_signoff_task). */
#define SIGNOFF_TASK   "return_report_signoff"
#define SIGNOFFS_MAX   200
#define SIGNOFF_DETAIL 160

/* One case as the township's pages show it. */
typedef struct township_case {
    long long case_id;
    char student_id[BX_ID_MAX + 1];
    char student_name[CONSOLE_STORE_TEXT];
    char class_name[CONSOLE_STORE_TEXT];
    char school_id[BX_ID_MAX + 1];
    char school_name[CONSOLE_STORE_TEXT];
    char stage[CONSOLE_STORE_STAGE];
    char opened_at[CONSOLE_STORE_TIME];
    char closed_at[CONSOLE_STORE_TIME]; /* "" while open */
    char ending[24];
    bool awaiting;                   /* an open return_report_signoff task */
    char due_at[CONSOLE_STORE_TIME]; /* its deadline */
    bool overdue;                    /* marked overdue, or due before now */
    char school_return[11];          /* the return date the school recorded, "" if none */
    char signed_by[BX_ID_MAX + 1];   /* the last sign-off in bx-console, from the audit */
    char signed_by_name[CONSOLE_STORE_TEXT];
    char signed_at[CONSOLE_STORE_TIME];
} township_case;

#define ISO_SQL(x)                                                                                 \
    "to_char((" x ") AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"')"

/* The columns every query below reads, in township_case's order; $1 is now (ms). */
#define CASE_COLUMNS                                                                               \
    "c.id, c.student_id, coalesce(sp.name, ''), coalesce(cl.name, ''), sc.id, sc.name, "           \
    "coalesce(c.stage, ''), " ISO_SQL("c.opened_at") ", coalesce(" ISO_SQL(                        \
        "c.closed_at") ", ''), "                                                                   \
                       "coalesce(c.ending, ''), t.id IS NOT NULL, coalesce(" ISO_SQL(              \
                           "t.due_at") ", ''), "                                                   \
                                       "coalesce(t.overdue_at IS NOT NULL OR t.due_at <= "         \
                                       "to_timestamp($1::bigint / 1000.0), false), "               \
                                       "coalesce((SELECT substring(e.reason FROM 'returned to "    \
                                       "school on ([0-9]{4}-[0-9]{2}-[0-9]{2})') "                 \
                                       "FROM cases.event e WHERE e.case_id = c.id AND e.kind = "   \
                                       "'note' AND e.reason LIKE "                                 \
                                       "'returned to school on %' ORDER BY e.id DESC LIMIT 1), "   \
                                       "'') "
#define CASE_FROM                                                                                  \
    "FROM cases.case c JOIN registry.student st ON st.id = c.student_id "                          \
    "JOIN registry.school sc ON sc.id = st.school_id "                                             \
    "LEFT JOIN registry.class cl ON cl.id = st.class_id "                                          \
    "LEFT JOIN registry.student_private sp ON sp.student_id = st.id "                              \
    "LEFT JOIN LATERAL (SELECT t.id, t.due_at, t.overdue_at FROM cases.task t WHERE t.case_id = "  \
    "c.id AND t.kind = '" SIGNOFF_TASK "' AND t.owner_role = 'township_officer' AND t.outcome IS " \
    "NULL ORDER BY t.id DESC LIMIT 1) t ON c.closed_at IS NULL "

static void copy_col(char *out, size_t size, const PGresult *res, int row, int col)
{
    snprintf(out, size, "%s", PQgetvalue(res, row, col));
}

static void read_case(const PGresult *res, int i, township_case *c)
{
    memset(c, 0, sizeof(*c));
    c->case_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    copy_col(c->student_id, sizeof(c->student_id), res, i, 1);
    copy_col(c->student_name, sizeof(c->student_name), res, i, 2);
    copy_col(c->class_name, sizeof(c->class_name), res, i, 3);
    copy_col(c->school_id, sizeof(c->school_id), res, i, 4);
    copy_col(c->school_name, sizeof(c->school_name), res, i, 5);
    copy_col(c->stage, sizeof(c->stage), res, i, 6);
    copy_col(c->opened_at, sizeof(c->opened_at), res, i, 7);
    copy_col(c->closed_at, sizeof(c->closed_at), res, i, 8);
    copy_col(c->ending, sizeof(c->ending), res, i, 9);
    c->awaiting = PQgetvalue(res, i, 10)[0] == 't';
    copy_col(c->due_at, sizeof(c->due_at), res, i, 11);
    c->overdue = PQgetvalue(res, i, 12)[0] == 't';
    copy_col(c->school_return, sizeof(c->school_return), res, i, 13);
}

/* The case's last sign-off in bx-console (console.audit, action sign_off, detail "case=<id> ..."),
 * so the page says 已签署 from the moment the form was accepted, before bx-escalate closes it. */
static bx_status read_signoff(const console_request *req, township_case *c, bx_error *err)
{
    char id[24], like[40];
    snprintf(id, sizeof(id), "%lld", c->case_id);
    snprintf(like, sizeof(like), "case=%s %%", id);
    const char *params[] = {c->student_id, like};
    PGresult *res = NULL;
    bx_status s =
        bx_pg_query(req->db,
                    "SELECT a.staff_id, coalesce(st.name, ''), " ISO_SQL(
                        "a.at") " FROM "
                                "console.audit a LEFT JOIN registry.staff st ON st.id = a.staff_id "
                                "WHERE a.student_id = $1 AND a.action = 'sign_off' AND a.detail "
                                "LIKE $2 ORDER BY a.id DESC LIMIT 1",
                    2, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        copy_col(c->signed_by, sizeof(c->signed_by), res, 0, 0);
        copy_col(c->signed_by_name, sizeof(c->signed_by_name), res, 0, 1);
        copy_col(c->signed_at, sizeof(c->signed_at), res, 0, 2);
    }
    PQclear(res);
    return s;
}

/* The case of /township/cases/:case when it exists and the signed-in person may sign off its
 * student's return; else c->case_id is 0 (answer 404). */
static bx_status find_case(console_request *req, township_case *c, bx_error *err)
{
    memset(c, 0, sizeof(*c));
    char *end;
    long long id = strtoll(req->params[0], &end, 10);
    if (*end != '\0' || id <= 0)
        return BX_OK;
    char now[24], id_text[24];
    snprintf(now, sizeof(now), "%lld", (long long)req->now);
    snprintf(id_text, sizeof(id_text), "%lld", id);
    const char *params[] = {now, id_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db, "SELECT " CASE_COLUMNS CASE_FROM "WHERE c.id = $2::bigint",
                              2, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        read_case(res, 0, c);
    PQclear(res);
    if (s != BX_OK || c->case_id == 0)
        return s;
    bool allowed = false;
    s = page_may_student(req, c->student_id, CONSOLE_SIGN_OFF_RETURN, &allowed, err);
    if (s == BX_OK && !allowed)
        c->case_id = 0;
    if (s == BX_OK && allowed)
        s = read_signoff(req, c, err);
    return s;
}

/* find_case, answering 404 when there is no such case to show: false, with *s to return. */
static bool load_case(console_request *req, console_reply *rep, township_case *c, bx_status *s,
                      bx_error *err)
{
    *s = find_case(req, c, err);
    return page_found(rep, *s, c->case_id != 0);
}

static void put_case(tmpl_ctx *row, const township_case *c)
{
    char due[24], opened[24];
    page_short_time(c->due_at, due, sizeof(due));
    page_short_time(c->opened_at, opened, sizeof(opened));
    tmpl_put_int(row, "case_id", c->case_id);
    tmpl_put(row, "student_id", c->student_id);
    tmpl_put(row, "student_name", c->student_name[0] ? c->student_name : c->student_id);
    tmpl_put(row, "class_name", c->class_name);
    tmpl_put(row, "school_name", c->school_name);
    tmpl_put(row, "stage_label", page_label_stage(c->stage));
    tmpl_put(row, "opened", opened);
    tmpl_put(row, "due", due);
    tmpl_put_bool(row, "overdue", c->overdue);
    tmpl_put(row, "school_return", c->school_return);
}

bx_status page_township_get(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    if (!page_found(rep, BX_OK, me->role == CONSOLE_TOWNSHIP_OFFICER && me->township_code[0]))
        return BX_OK;
    char now[24], max[16];
    snprintf(now, sizeof(now), "%lld", (long long)req->now);
    snprintf(max, sizeof(max), "%d", SIGNOFFS_MAX);
    const char *params[] = {now, me->township_code, me->staff_id, max};
    PGresult *res = NULL;
    /* Cases of the township's schools whose return awaits the township's sign-off: the task is
     * the township officer's (by role, or by name when the ladder named one). */
    bx_status s = bx_pg_query(req->db,
                              "SELECT " CASE_COLUMNS CASE_FROM
                              "WHERE c.closed_at IS NULL AND t.id IS NOT NULL AND "
                              "sc.township_code = $2 AND EXISTS (SELECT 1 FROM cases.task o "
                              "WHERE o.id = t.id AND (o.owner_staff_id IS NULL OR "
                              "o.owner_staff_id = $3)) ORDER BY 13 DESC, t.due_at, c.id LIMIT "
                              "$4::int",
                              4, params, &res, err);
    /* Names are shown: the view is audited (one row for the list). */
    IFOK(s, console_audit(req, "view_signoffs", NULL, NULL, err));
    int n = s == BX_OK ? PQntuples(res) : 0;
    int overdue = 0;
    for (int i = 0; i < n && s == BX_OK; i++) {
        township_case c;
        read_case(res, i, &c);
        bool allowed = false;
        /* The registry may have moved the school since: console_may decides, as everywhere. */
        s = page_may_student(req, c.student_id, CONSOLE_SIGN_OFF_RETURN, &allowed, err);
        if (s == BX_OK && allowed) {
            put_case(tmpl_add_row(rep->ctx, "cases"), &c);
            overdue += c.overdue;
        }
    }
    PQclear(res);
    if (s != BX_OK)
        return s;
    tmpl_put_int(rep->ctx, "overdue_count", overdue);
    rep->template_name = "township_signoffs";
    snprintf(rep->title, sizeof(rep->title), "复学报告书签署");
    return BX_OK;
}

bx_status page_township_case_get(console_request *req, console_reply *rep, bx_error *err)
{
    township_case c;
    bx_status s;
    if (!load_case(req, rep, &c, &s, err))
        return s;
    s = page_auditf(req, "view_case", c.student_id, err, "case=%lld", c.case_id);
    if (s != BX_OK)
        return s;
    char today[11], closed[24], signed_at[24];
    page_put_form(req, rep->ctx, today);
    page_short_time(c.closed_at, closed, sizeof(closed));
    page_short_time(c.signed_at, signed_at, sizeof(signed_at));
    put_case(rep->ctx, &c);
    tmpl_put(rep->ctx, "return_date", c.school_return[0] ? c.school_return : today);
    tmpl_put_bool(rep->ctx, "awaiting", c.awaiting);
    bool open = c.closed_at[0] == '\0';
    tmpl_put_bool(rep->ctx, "open", open);
    tmpl_put(rep->ctx, "closed", closed);
    tmpl_put(rep->ctx, "ending_label", open ? "" : page_label_ending(c.ending));
    tmpl_put_bool(rep->ctx, "signed", c.signed_by[0] != '\0');
    tmpl_put(rep->ctx, "signed_by", c.signed_by_name[0] ? c.signed_by_name : c.signed_by);
    tmpl_put(rep->ctx, "signed_at", signed_at);
    rep->template_name = "township_case";
    snprintf(rep->title, sizeof(rep->title), "复学报告书 · 个案 #%lld", c.case_id);
    return BX_OK;
}

/* The body of POST /v1/actions with the one signed return: the officer is staff_id and signer. */
static bx_status signoff_json(const char *student_id, const char *date, const char *return_date,
                              const char *staff_id, const char *event_id, bx_buf *out)
{
    const char *const parts[] = {"{\"records\":[{\"student_id\":",
                                 student_id,
                                 ",\"action\":\"returned\",\"date\":",
                                 date,
                                 ",\"staff_id\":",
                                 staff_id,
                                 ",\"event_id\":",
                                 event_id,
                                 ",\"details\":{\"return_date\":",
                                 return_date,
                                 ",\"township_signoff_staff_id\":",
                                 staff_id,
                                 "}}]}"};
    return page_json_parts(out, parts, sizeof(parts) / sizeof(parts[0]));
}

/* The form's return date: a date, not after today, not before the case opened. NULL when fine,
 * else what to tell the officer. */
static const char *return_date_problem(const console_request *req, const township_case *c,
                                       const char *text)
{
    bx_date d;
    if (text == NULL || bx_date_parse(text, &d) != BX_OK)
        return "未签署：请填写复学日期（年-月-日）";
    if (d > page_today(req, NULL))
        return "未签署：复学日期不能晚于今天";
    bx_date opened;
    if (strlen(c->opened_at) >= 10) {
        char day[11];
        snprintf(day, sizeof(day), "%.10s", c->opened_at);
        if (bx_date_parse(day, &opened) == BX_OK && d < opened)
            return "未签署：复学日期早于个案开始的日期";
    }
    return NULL;
}

bx_status page_township_case_post(console_request *req, console_reply *rep, bx_error *err)
{
    township_case c;
    bx_status s;
    if (!load_case(req, rep, &c, &s, err))
        return s;
    char back[64];
    snprintf(back, sizeof(back), "/township/cases/%lld", c.case_id);
    const char *token = console_form(req, "token");
    if (!page_form_ok(rep, back, page_token_valid(token)))
        return BX_OK;
    /* A closed case needs no signature: nothing is written (a resent form after the case closed
     * lands here too). */
    if (c.closed_at[0]) {
        console_redirect(rep, back, c.signed_by[0] ? "已签署：个案已结案" : "个案已结案，无需签署");
        return BX_OK;
    }
    const char *return_date = console_form(req, "return_date");
    const char *problem = return_date_problem(req, &c, return_date);
    if (problem) {
        console_redirect(rep, back, problem);
        return BX_OK;
    }
    char today[11];
    page_today(req, today);
    const char *me = req->person->staff_id;
    bx_buf body;
    bx_buf_init(&body, 1 << 14);
    page_write_result res;
    s = page_write_built(req, PAGE_EP_ACTIONS,
                         signoff_json(c.student_id, today, return_date, me, token, &body), &body,
                         "sign-off", &res, err);
    if (s != BX_OK)
        return s;
    bool kept = page_write_kept(&res);
    /* The audit row says who signed which case; the page reads it back as the 已签署 state. */
    char detail[SIGNOFF_DETAIL];
    snprintf(detail, sizeof(detail), "case=%lld event=%s return_date=%s%s", c.case_id, token,
             return_date, kept ? "" : " refused");
    IFOK(s, console_audit(req, kept ? "sign_off" : "sign_off_refused", c.student_id, detail, err));
    if (s != BX_OK)
        return s;
    if (kept)
        bx_log_info("staff %s signed off the return of case %lld (event %s)", me, c.case_id, token);
    char flash[256];
    page_write_flash(&res, "已签署复学报告书", flash, sizeof(flash));
    console_redirect(rep, back, flash);
    return BX_OK;
}
