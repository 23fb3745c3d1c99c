/* page_print: a case's notice as a page to print on A4 (/print/:case/:kind): the school's 劝学书
 * and 辍学报告单 for the principal and academic office, the township's 复学通知书 and
 * 限期复学通知书 for the township officer, rendered by bx-escalate's documents module (the one
 * `bxctl case document` uses) with the names and dates filled and no id number, inside the
 * console's layout (its print style hides everything but the notice). Below it, a "delivered on"
 * form records the signed-in person's `letter_delivered` (the 辍学报告单: `report_filed` of
 * dropout_report_form) through the teacher's task form's code. Scope: the student's personal data
 * (console_may); a kind that is not the person's to issue, or a closed case, answers 404. */
#include "bx_log.h"
#include "bx_pg.h"
#include "documents.h"
#include "page_common.h"
#include "page_school.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each printable kind: who issues it, how its delivery is recorded, and the task that does it. */
static const struct print_kind {
    doc_kind kind; /* the path's :kind is its doc_kind_name */
    bool township; /* issued by the township officer, else by the school */
    page_action_kind action;
    const char *letter_or_task; /* the letter (letter_delivered) or the task (report_filed) */
    const char *done_label;
} print_kinds[] = {
    {DOC_PERSUASION_LETTER, false, PAGE_ACT_LETTER, "persuasion_letter", "已送达家长"},
    {DOC_DROPOUT_REPORT, false, PAGE_ACT_REPORT, "dropout_report_form", "已报送"},
    {DOC_RETURN_NOTICE, true, PAGE_ACT_LETTER, "return_notice", "已送达家长"},
    {DOC_DEADLINE_NOTICE, true, PAGE_ACT_LETTER, "deadline_notice", "已送达家长"},
};

/* The kind of the path if the signed-in person issues it. */
static const struct print_kind *kind_for(const console_person *me, const char *name)
{
    bool school = me->role == CONSOLE_PRINCIPAL || me->role == CONSOLE_ACADEMIC_OFFICE;
    bool township = me->role == CONSOLE_TOWNSHIP_OFFICER;
    doc_kind k;
    if (doc_kind_parse(name, &k) != BX_OK)
        return NULL;
    for (size_t i = 0; i < sizeof(print_kinds) / sizeof(print_kinds[0]); i++)
        if (print_kinds[i].kind == k)
            return (print_kinds[i].township ? township : school) ? &print_kinds[i] : NULL;
    return NULL;
}

/* What the notice says, read for one case. */
typedef struct print_case {
    long long id;
    char student_id[BX_ID_MAX + 1];
    char calendar_id[BX_ID_MAX + 1];
    char school_name[CONSOLE_STORE_TEXT], township_name[CONSOLE_STORE_TEXT],
        student_name[CONSOLE_STORE_TEXT], class_name[CONSOLE_STORE_TEXT],
        guardian_name[CONSOLE_STORE_TEXT];
    int streak_days;
    bx_date streak_start;
    bool open;
    /* the task the delivery does: whether one is open, its deadline; the last one done */
    bool task_open, task_overdue;
    char task_due[CONSOLE_STORE_TIME];
    char task_done[CONSOLE_STORE_TIME];
} print_case;

#define PRINT_SQL                                                                                  \
    "SELECT c.student_id, sc.calendar_id, sc.name, coalesce(tw.name, ''), coalesce(sp.name, ''), " \
    "coalesce(cl.name, ''), coalesce((SELECT g.name FROM registry.guardian g WHERE g.student_id "  \
    "= st.id ORDER BY g.is_primary DESC, g.id LIMIT 1), ''), coalesce(c.state->>'streak_days', "   \
    "'0'), coalesce(c.state->>'streak_start', '-2147483648'), c.closed_at IS NULL, "               \
    "coalesce((SELECT " SCHOOL_ISO_SQL(                                                            \
        "t.due_at") " || CASE WHEN t.overdue_at IS NOT NULL OR t.due_at <= "                       \
                    "to_timestamp($3::bigint / 1000.0) THEN '!' ELSE '' END FROM cases.task t "    \
                    "WHERE t.case_id = c.id AND t.kind = $2 AND t.outcome IS NULL ORDER BY "       \
                    "t.due_at LIMIT 1), ''), coalesce((SELECT " SCHOOL_ISO_SQL(                    \
                        "max(t.done_at)") " FROM cases.task t WHERE t.case_id = c.id AND t.kind "  \
                                          "= $2 AND t.done_at IS NOT NULL), '') "                  \
                                          "FROM cases.case c JOIN registry.student st ON st.id = " \
                                          "c.student_id JOIN registry.school sc ON sc.id = "       \
                                          "st.school_id LEFT JOIN registry.township tw ON "        \
                                          "tw.code = sc.township_code LEFT JOIN "                  \
                                          "registry.student_private sp ON sp.student_id = st.id "  \
                                          "LEFT JOIN registry.class cl ON cl.id = st.class_id "    \
                                          "WHERE c.id = $1::bigint"

static void col(char *out, size_t size, const PGresult *res, int c)
{
    snprintf(out, size, "%s", PQgetvalue(res, 0, c));
}

/* The case of the path and the kind, when the person may see the student's notice; else
 * c->id is 0. */
static bx_status find(console_request *req, const struct print_kind *pk, console_action a,
                      print_case *c, bx_error *err)
{
    memset(c, 0, sizeof(*c));
    char *end;
    long long id = strtoll(req->params[0], &end, 10);
    if (pk == NULL || *end != '\0' || id <= 0)
        return BX_OK;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)req->now);
    /* the task whose state the page shows: the letter's task has the letter's name */
    const char *params[] = {req->params[0], pk->letter_or_task, now};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db, PRINT_SQL, 3, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        c->id = id;
        col(c->student_id, sizeof(c->student_id), res, 0);
        col(c->calendar_id, sizeof(c->calendar_id), res, 1);
        col(c->school_name, sizeof(c->school_name), res, 2);
        col(c->township_name, sizeof(c->township_name), res, 3);
        col(c->student_name, sizeof(c->student_name), res, 4);
        col(c->class_name, sizeof(c->class_name), res, 5);
        col(c->guardian_name, sizeof(c->guardian_name), res, 6);
        c->streak_days = (int)strtol(PQgetvalue(res, 0, 7), NULL, 10);
        c->streak_start = (bx_date)strtol(PQgetvalue(res, 0, 8), NULL, 10);
        if (c->streak_days <= 0)
            c->streak_start = BX_DATE_NONE;
        c->open = PQgetvalue(res, 0, 9)[0] == 't';
        const char *due = PQgetvalue(res, 0, 10);
        c->task_open = due[0] != '\0';
        c->task_overdue = c->task_open && due[strlen(due) - 1] == '!';
        snprintf(c->task_due, sizeof(c->task_due), "%.*s", (int)strcspn(due, "!"), due);
        col(c->task_done, sizeof(c->task_done), res, 11);
    }
    PQclear(res);
    if (s != BX_OK || c->id == 0)
        return s;
    bool allowed = false;
    s = page_may_student(req, c->student_id, a, &allowed, err);
    if (s == BX_OK && (!allowed || !c->open))
        c->id = 0;
    return s;
}

/* The kind and case of the path (find), answering 404 when there is none to show: false, with *s
 * to return. */
static bool load(console_request *req, console_reply *rep, console_action a,
                 const struct print_kind **pk, print_case *c, bx_status *s, bx_error *err)
{
    *pk = kind_for(req->person, req->params[1]);
    *s = find(req, *pk, a, c, err);
    return page_found(rep, *s, c->id != 0);
}

typedef struct render_arg {
    const struct print_kind *pk;
    const print_case *c;
    bx_date issue;
    bx_buf *out;
    bx_status rendered;
    bx_error *err;
} render_arg;

static bx_status render_with_registry(const bx_registry *registry,
                                      const struct ingest_staff_dir *staff, void *arg)
{
    (void)staff;
    render_arg *a = arg;
    const bx_calendar *cal = bx_registry_calendar(registry, a->c->calendar_id);
    if (cal == NULL) {
        a->rendered =
            BX_ERR(a->err, BX_ENOTFOUND, "calendar %s: not in the registry", a->c->calendar_id);
        return BX_OK;
    }
    doc_case d = {.school_name = a->c->school_name,
                  .township_name = a->c->township_name,
                  .student_name = a->c->student_name,
                  .guardian_name = a->c->guardian_name,
                  .class_name = a->c->class_name,
                  .issue_date = a->issue,
                  .streak_start = a->c->streak_start,
                  .streak_days = a->c->streak_days,
                  .return_date = BX_DATE_NONE};
    a->rendered = doc_render_body(a->pk->kind, cal, &d, a->out, a->err);
    return BX_OK;
}

bx_status page_print_get(console_request *req, console_reply *rep, bx_error *err)
{
    const struct print_kind *pk;
    print_case c;
    bx_status s;
    if (!load(req, rep, CONSOLE_VIEW_PERSONAL, &pk, &c, &s, err))
        return s;
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    /* The notice's date: today, or the day asked for (a notice prepared for tomorrow). */
    char today[11];
    bx_date issue = page_today(req, today);
    const char *asked = console_query(req, "date");
    bx_date d;
    if (asked && bx_date_parse(asked, &d) == BX_OK && d >= issue - 30 && d <= issue + 30)
        issue = d;
    char issue_text[11];
    bx_date_format(issue, issue_text);
    bx_buf doc;
    bx_buf_init(&doc, 1 << 16);
    bx_error derr = {0};
    render_arg a = {pk, &c, issue, &doc, BX_OK, &derr};
    s = console_store_with_registry(store, req->db, render_with_registry, &a, err);
    IFOK(s, page_auditf(req, "print_notice", c.student_id, err, "case=%lld doc=%s", c.id,
                        doc_kind_name(pk->kind)));
    if (s != BX_OK) {
        bx_buf_free(&doc);
        return s;
    }
    if (a.rendered != BX_OK) {
        /* A name the notice cannot hold, or a deadline past the calendar: said plainly. */
        bx_log_warn("case %lld: %s not rendered: %s", c.id, doc_kind_name(pk->kind), derr.msg);
        bx_buf_free(&doc);
        console_fail(rep, 422, "这份文书现在无法生成（学籍信息或校历不完整），请联系管理员");
        return BX_OK;
    }
    tmpl_put_html(rep->ctx, "doc", doc.data ? doc.data : "");
    bx_buf_free(&doc);
    char token[PAGE_TOKEN_SIZE], t1[24];
    page_new_token(token);
    tmpl_put_int(rep->ctx, "case_id", c.id);
    tmpl_put(rep->ctx, "kind", doc_kind_name(pk->kind));
    tmpl_put(rep->ctx, "student_id", c.student_id);
    tmpl_put(rep->ctx, "today", today);
    tmpl_put(rep->ctx, "issue_date", issue_text);
    tmpl_put(rep->ctx, "token", token);
    tmpl_put(rep->ctx, "done_label", pk->done_label);
    tmpl_put_bool(rep->ctx, "task_open", c.task_open);
    tmpl_put_bool(rep->ctx, "task_overdue", c.task_overdue);
    page_short_time(c.task_due, t1, sizeof(t1));
    tmpl_put(rep->ctx, "task_due", t1);
    page_short_time(c.task_done, t1, sizeof(t1));
    tmpl_put(rep->ctx, "task_done", t1);
    tmpl_put(rep->ctx, "back", pk->township ? "/township/notices" : "/school");
    rep->template_name = "print_notice";
    snprintf(rep->title, sizeof(rep->title), "打印文书 · 个案 #%lld", c.id);
    return BX_OK;
}

bx_status page_print_post(console_request *req, console_reply *rep, bx_error *err)
{
    const struct print_kind *pk;
    print_case c;
    bx_status s;
    if (!load(req, rep, CONSOLE_WRITE_ACTION, &pk, &c, &s, err))
        return s;
    char back[96];
    snprintf(back, sizeof(back), "/print/%lld/%s", c.id, doc_kind_name(pk->kind));
    const char *token = console_form(req, "token");
    const char *date = console_form(req, "date");
    bx_date d;
    if (!page_form_ok(rep, back, page_token_valid(token)))
        return BX_OK;
    if (date == NULL || bx_date_parse(date, &d) != BX_OK || d > page_today(req, NULL)) {
        console_redirect(rep, back, "未记录：送达日期要填写，且不能晚于今天");
        return BX_OK;
    }
    char context[64];
    snprintf(context, sizeof(context), "case=%lld doc=%s", c.id, doc_kind_name(pk->kind));
    page_action_form f = {.kind = pk->action,
                          .student_id = c.student_id,
                          .date = date,
                          .staff_id = req->person->staff_id,
                          .event_id = token,
                          .letter = pk->action == PAGE_ACT_LETTER ? pk->letter_or_task : NULL,
                          .task = pk->action == PAGE_ACT_REPORT ? pk->letter_or_task : NULL,
                          .filed_with = pk->action == PAGE_ACT_REPORT ? "academic_office" : NULL};
    return page_action_redirect(req, rep, &f, context, "已记录送达", back, err);
}
