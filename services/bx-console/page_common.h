/* page_common: what the homeroom teacher's pages (page_*.c) share: the pure builders that turn a
 * form into the JSON a school system posts to bx-ingest (tested from tables in
 * tests/unit/test_console_pages.c), the Chinese labels of the shared names, and the write path
 * through bx-ingest's own validation and publishing (page_write.c). */
#ifndef CONSOLE_PAGE_COMMON_H
#define CONSOLE_PAGE_COMMON_H

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_status.h"
#include "console.h"
#include "console_store.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- one tap per student ---- */

typedef enum page_mark {
    PAGE_MARK_PRESENT = 0, /* 到: not listed, the roll call implies it */
    PAGE_MARK_ABSENT,      /* 缺勤 */
    PAGE_MARK_SICK,        /* 病假 */
    PAGE_MARK_PERSONAL,    /* 事假 */
    PAGE_MARK_LATE,        /* 迟到 */
    PAGE_MARK_EARLY_LEAVE, /* 早退 */
    PAGE_MARK_COUNT
} page_mark;

/* The form value of a mark ("p", "a", "ls", "lp", "t", "e": the codes bx-score stores) and its
 * label ("到", "缺勤", ...). */
const char *page_mark_code(page_mark m);
const char *page_mark_label(page_mark m);
/* The mark of a form value or stored code; BX_EINVAL for anything else. "" is present. */
bx_status page_mark_parse(const char *code, page_mark *out) BX_MUSTCHECK;

/* A roll-call form: every student not listed is present. Strings borrowed. */
typedef struct page_rollcall_entry {
    const char *student_id;
    page_mark mark;
} page_rollcall_entry;

typedef struct page_rollcall_form {
    const char *class_id;
    const char *date;  /* "YYYY-MM-DD" */
    int period;        /* 0: the whole day; 1..12 a lesson period (节) */
    const char *token; /* the form's submission token: becomes rollcall_id */
    const page_rollcall_entry *entries;
    size_t nentries;
} page_rollcall_form;

/* The body of POST /v1/rollcall for the form: {"class_id","date"[,"period"],"rollcall_id",
 * "absent":[...],"leave":[{"student_id","leave_kind"}],"late":[...],"early_leave":[...]}, lists
 * in the entries' order, present entries left out. Values are JSON-escaped as given: the
 * validation judges them. */
bx_status page_rollcall_json(const page_rollcall_form *f, bx_buf *out) BX_MUSTCHECK;

/* Reads the marks of a posted roll-call form: fields "m.<student id>" with a mark code. Fills up
 * to max entries (borrowing the request's strings: the student id points after "m."). A field
 * with an unknown code is BX_EINVAL naming it in err. */
bx_status page_rollcall_entries(const console_field *fields, size_t nfields,
                                page_rollcall_entry *out, size_t max, size_t *n,
                                bx_error *err) BX_MUSTCHECK;

/* "已于 08:12 提交，2 人缺勤" (and ", 1 人请假, 1 人迟到, 1 人早退" when there are any), or
 * "今日尚未点名" when not reported. */
void page_rollcall_state_line(const console_rollcall_state *s, char *out, size_t size);

/* The lesson period of a form or query value: 0 for none ("" or NULL: the whole day), 1..12, or
 * -1 for anything else. */
int page_period_parse(const char *text);

/* Appends parts to out: the even ones (0, 2, ...) as they are (JSON text), the odd ones as JSON
 * strings; a message with fixed keys is one table: {"{\"id\":", id, ",\"name\":", name, "}"}. */
bx_status page_json_parts(bx_buf *out, const char *const *parts, size_t n) BX_MUSTCHECK;

/* ---- case actions ---- */

typedef enum page_action_kind {
    PAGE_ACT_CONTACT = 0, /* contact_made: channel, reached */
    PAGE_ACT_HOME_VISIT,  /* home_visit: outcome, reason (the note stays in PostgreSQL) */
    PAGE_ACT_LETTER,      /* letter_delivered: letter */
    PAGE_ACT_REPORT,      /* report_filed: task, filed_with */
    PAGE_ACT_REASSIGN     /* task_reassigned: task_id, to_staff_id (the principal's form only) */
} page_action_kind;

/* An action form. Strings borrowed; optional ones NULL or "". */
typedef struct page_action_form {
    page_action_kind kind;
    const char *student_id;
    const char *date;        /* "YYYY-MM-DD" */
    const char *staff_id;    /* the signed-in person: staff_id */
    const char *event_id;    /* from the form's token, so a resend is a duplicate */
    const char *channel;     /* contact: phone, visit, message */
    bool reached;            /* contact */
    const char *outcome;     /* home visit: will_return, refused, not_home, other */
    const char *reason;      /* home visit, optional */
    const char *letter;      /* letter: persuasion_letter, return_notice, deadline_notice */
    const char *task;        /* report: the task kind it does */
    const char *filed_with;  /* report, optional */
    const char *task_id;     /* reassign: the task's key (cases.task.task_key) */
    const char *to_staff_id; /* reassign: its new owner */
} page_action_form;

const char *page_action_name(page_action_kind k); /* "contact_made", ... */
/* The kind of a task form's action field: the four a task form does (never task_reassigned). */
bx_status page_action_parse(const char *name, page_action_kind *out) BX_MUSTCHECK;

/* The body of POST /v1/actions with the one record of the form. */
bx_status page_action_json(const page_action_form *f, bx_buf *out) BX_MUSTCHECK;

/* ---- leave ---- */

typedef struct page_leave_form {
    const char *student_id;
    const char *first_date;
    const char *last_date;
    int first_period, last_period; /* 0: whole days */
    const char *leave_kind;        /* sick, personal */
    const char *requested_by;      /* guardian, student, teacher */
    bool phoned_in;                /* 补假: a guardian phoned, paperwork on return */
    const char *event_id;
} page_leave_form;

/* The body of POST /v1/leave with the one record (approved: the homeroom teacher approves). */
bx_status page_leave_json(const page_leave_form *f, bx_buf *out) BX_MUSTCHECK;

/* ---- tokens and labels ---- */

#define PAGE_TOKEN_SIZE 40 /* "c-" and 32 hex digits, NUL */
/* A fresh random submission token ("c-" and 128 random bits in hex), a valid event id. */
void page_new_token(char out[PAGE_TOKEN_SIZE]);
/* True when s has the shape of a token page_new_token makes. */
bool page_token_valid(const char *s);

/* Chinese labels of the shared names; the name itself when unknown (still escaped by the page). */
const char *page_label_day_state(const char *state); /* present -> 出勤 */
const char *page_label_tier(score_tier t);           /* low -> 低 */
const char *page_label_stage(const char *stage);     /* contact_family -> 联系家长 */
const char *page_label_task(const char *kind);       /* home_visit -> 家访 */
const char *page_label_event(const char *kind);      /* stage_entered -> 进入阶段 */
const char *page_label_factor(const char *factor);   /* streak_days -> 连续缺勤 */
const char *page_label_ending(const char *ending);   /* returned -> 已复学 */

/* "2026-11-23T08:12:00+08:00" -> "11-23 08:12" (out at least 16 bytes); "" stays "". */
void page_short_time(const char *iso, char *out, size_t size);
/* Puts iso as page_short_time writes it into c as name. */
void page_put_short_time(tmpl_ctx *c, const char *name, const char *iso);

/* ---- writes (page_write.c) ---- */

/* What one write did, for the flash line. */
typedef struct page_write_result {
    int accepted, duplicates, rejected, failed;
    bool whole_rejected;      /* the whole request was refused (and dead-lettered) */
    char first_error[320];    /* the first rejection, as the validation says it */
    char first_event_id[136]; /* the first accepted or duplicate record's event id */
} page_write_result;

typedef enum page_endpoint { PAGE_EP_ROLLCALL, PAGE_EP_LEAVE, PAGE_EP_ACTIONS } page_endpoint;

/* Validates body exactly as bx-ingest's endpoint does, with the signed-in person as the writer
 * (recorded_by = their staff id, school = their school), checks repeated submissions against
 * bx-ingest's memory of accepted ids, publishes every valid record to its topic and dead-letters
 * every rejected one (or the whole request), and waits for Kafka's acknowledgement (at most
 * timeout_ms). BX_OK whenever the outcome is in *res, even all rejected; an error status only
 * when nothing could be tried. */
bx_status page_write(const console_request *req, page_endpoint ep, const char *body, size_t len,
                     page_write_result *res, bx_error *err) BX_MUSTCHECK;

/* The write was kept: something accepted (or a duplicate of what was), nothing refused or lost. */
bool page_write_kept(const page_write_result *r);

/* The flash line of a result: "已提交" / "已提交过（重复提交，未重复记录）" / "未提交：<error>" /
 * "服务器未确认，请再提交一次（重复提交是安全的）". */
void page_write_flash(const page_write_result *r, const char *done_text, char *out, size_t size);

/* The open tasks of the signed-in person and their classes (at most max, overdue first): as
 * console_store_open_tasks. Caller frees *tasks. */
bx_status page_open_tasks(const console_request *req, size_t max, console_task **tasks, size_t *n,
                          bx_error *err) BX_MUSTCHECK;

/* Records one case action as the signed-in person: the form's JSON through page_write, then the
 * audit row (the action's name, the student, detail "<context> action=<name> event=<id>", context
 * e.g. "task=12" or "case=7"). BX_OK when the outcome is in *res (page_tasks.c: the teacher's task
 * form, the principal's reports and the printed notices' delivery share it). */
bx_status page_action_submit(const console_request *req, const page_action_form *f,
                             const char *context, page_write_result *res,
                             bx_error *err) BX_MUSTCHECK;

/* page_action_submit, then the answer: a redirect to back with the flash line of the result
 * (done_text when kept). */
bx_status page_action_redirect(const console_request *req, console_reply *rep,
                               const page_action_form *f, const char *context,
                               const char *done_text, const char *back, bx_error *err) BX_MUSTCHECK;

/* The pages' shared state (req->pages), made by console_pages_new in page_routes.c. */
struct dedup_batcher;
typedef struct page_state {
    console_store *store;        /* registry snapshot and score policy */
    struct dedup_batcher *dedup; /* bx-ingest's duplicate check; NULL when unavailable */
} page_state;

/* The request's store; NULL (err set) when the pages have none. */
console_store *page_store(const console_request *req, bx_error *err);

/* Today in Asia/Shanghai from the request's clock, as a date and as text. */
bx_date page_today(const console_request *req, char text[11]);

/* True for the roles that hold no class and own no task (city and province officers): their
 * /teacher and /tasks answer console_not_found, as any page outside their scope does. */
bool page_without_worklist(const console_person *me);

/* Whether a page goes on once it looked up what it shows (or checked the person's scope over it):
 * true when s is BX_OK and found; when s is BX_OK but nothing was found, answers 404 first
 * (console_not_found, as for an object that does not exist). When false the caller returns s. */
bool page_found(console_reply *rep, bx_status s, bool found);
/* A page's scope check over one class or student: true when the person may do a on it; else false
 * with *s BX_OK (404 answered) or an error. */
bool page_admit_class(const console_request *req, console_reply *rep, const char *class_id,
                      console_action a, bx_status *s, bx_error *err);
bool page_admit_student(const console_request *req, console_reply *rep, const char *student_id,
                        console_action a, bx_status *s, bx_error *err);
/* The answer to a stale or malformed form (ok false: no valid token, a field missing): back to the
 * form with "表单已失效，请重新填写". Returns ok. */
bool page_form_ok(console_reply *rep, const char *back, bool ok);
/* The same for a lookup that says BX_ENOTFOUND: answers 404 and makes *s BX_OK. */
bool page_lookup_found(console_reply *rep, bx_status *s);

/* console_audit with the detail formatted (at most PAGE_AUDIT_DETAIL bytes): "case=7", "task=12".
 */
#define PAGE_AUDIT_DETAIL 256
bx_status page_auditf(const console_request *req, const char *action, const char *student_id,
                      bx_error *err, const char *fmt, ...) BX_PRINTF(5, 6) BX_MUSTCHECK;

/* A form page's today ("today", as a date) and fresh submission token ("token"), put into ctx;
 * today's text also in today when not NULL. */
void page_put_form(const console_request *req, tmpl_ctx *ctx, char today[11]);
/* One choice of a form's <select>: a new row of list in ctx with its "value", "label" and
 * "selected". */
void page_put_option(tmpl_ctx *ctx, const char *list, const char *value, const char *label,
                     bool selected);

/* Writes the body a builder made (built: the builder's status; what names it in the out-of-memory
 * error) through page_write, and frees body whatever happened. */
bx_status page_write_built(const console_request *req, page_endpoint ep, bx_status built,
                           bx_buf *body, const char *what, page_write_result *res,
                           bx_error *err) BX_MUSTCHECK;

/* Produces one message and waits for Kafka's acknowledgement (at most as long as page_write
 * waits): BX_OK only once it is stored. msg borrowed. When Kafka gives no verdict in time the
 * delivery slot is left to the callback still to come. */
bx_status page_send_acked(const console_request *req, const char *topic, const char *key,
                          const char *msg, size_t len, bx_error *err) BX_MUSTCHECK;

/* A class as its teacher's pages show it today: the class, the roll call's state for period, its
 * students (scored: with risk tiers and reasons). Read by page_class_load, which audits the view.
 */
typedef struct page_class_day {
    char today[11];
    bx_date day;
    console_class_info info;
    console_rollcall_state state;
    console_class_row *rows; /* owned: page_class_day_free */
    size_t n;
} page_class_day;

/* Reads the class's day and audits the view (audit_action, detail "class=<id>" or the caller's when
 * detail is not NULL). BX_OK and *found, or BX_OK and !*found (answered 404), or an error (nothing
 * left to free). */
bx_status page_class_load(console_request *req, console_reply *rep, const char *class_id,
                          int period, bool scored, const char *audit_action, const char *detail,
                          page_class_day *d, bool *found, bx_error *err) BX_MUSTCHECK;
void page_class_day_free(page_class_day *d);

/* Scope checks that answer like a missing object: BX_OK and *allowed, or BX_OK and !*allowed
 * (answer console_not_found), or an error. */
bx_status page_may_class(const console_request *req, const char *class_id, console_action a,
                         bool *allowed, bx_error *err) BX_MUSTCHECK;
bx_status page_may_student(const console_request *req, const char *student_id, console_action a,
                           bool *allowed, bx_error *err) BX_MUSTCHECK;

/* Route handlers (page_*.c), listed in page_routes.c. */
bx_status page_teacher_home(console_request *req, console_reply *rep, bx_error *err);
bx_status page_rollcall_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_rollcall_post(console_request *req, console_reply *rep, bx_error *err);
bx_status page_tasks_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_task_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_task_post(console_request *req, console_reply *rep, bx_error *err);
bx_status page_class_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_student_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_leave_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_leave_post(console_request *req, console_reply *rep, bx_error *err);

#endif
