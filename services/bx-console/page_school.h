/* page_school: the principal's and academic office's workbench (/school), a case's reports and
 * notices (/school/cases/:case), the printable notices (/print/:case/:kind) and the township
 * officer's notices and out-of-school children (/township/notices, /township/children); plus the
 * pure parts every list of these pages shares (page_school_list.c): the query of a list (page,
 * sort, filters by stage, school and overdue) read from the request without trusting it, the
 * links that keep it, and the pager. Listed in page_routes.c. */
#ifndef CONSOLE_PAGE_SCHOOL_H
#define CONSOLE_PAGE_SCHOOL_H

#include "console.h"

#include <stdbool.h>
#include <stddef.h>

#define SCHOOL_LIST_PER_PAGE 20  /* rows of one page of a list */
#define SCHOOL_LIST_MAX_PAGE 500 /* pages beyond are refused: a list that long is filtered */

/* A timestamptz column as "2026-11-23T08:12:00+08:00" (page_short_time reads it). */
#define SCHOOL_ISO_SQL(x)                                                                          \
    "to_char((" x ") AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"')"

/* The school roles whose tasks the school's workbench shows (SQL list). */
#define SCHOOL_ROLES_SQL "('homeroom_teacher', 'subject_teacher', 'principal', 'academic_office')"

/* The ladder's stages in order, as every service names them (NULL-ended). */
extern const char *const school_list_stages[];

/* What one list shows. Unknown or malformed values fall back to the default (the first sort,
 * page 1, no filter): a list never fails on its query. */
typedef struct school_list_query {
    int page;                           /* 1.. */
    int sort;                           /* index into the page's sorts */
    char stage[64];                     /* "" or one of school_list_stages */
    char school_id[CONSOLE_ID_MAX + 1]; /* "" or a registry id */
    bool overdue;                       /* only rows with an overdue task */
} school_list_query;

/* Reads page, sort (one of sorts, NULL-ended; the first is the default), stage, school and
 * overdue ("1") from the fields. */
void school_list_parse(const console_field *fields, size_t n, const char *const *sorts,
                       school_list_query *q);
/* path?page=..&sort=..&stage=..&school=..&overdue=1 with the values that differ from the
 * default, for page `page` (the query's own when 0). out always NUL-terminated; false when it did
 * not fit (out is then path alone). */
bool school_list_link(const school_list_query *q, const char *const *sorts, const char *path,
                      int page, char *out, size_t size);
/* Pages for total rows (at least 1). */
int school_list_pages(long long total);
/* The first row of the query's page (0-based), for OFFSET. */
long long school_list_offset(const school_list_query *q);
/* Puts the pager into ctx: page, pages, total, prev_link / next_link (absent at the ends), and
 * the filter form's current values (stage options with "selected", overdue, sort options). */
void school_list_put(tmpl_ctx *ctx, const school_list_query *q, const char *const *sorts,
                     const char *const *sort_labels, const char *path, long long total);

/* A list row's case and child: case_id, student_id and student_name (the id when no name is
 * registered). */
void school_list_put_child(tmpl_ctx *row, const char *case_id, const char *student_id,
                           const char *student_name);

/* One page of a list being read: its query, the texts of the parameters every list binds (now in
 * ms, the page's limit and offset) and, once fetched, its rows. */
struct pg_result;
typedef struct school_list_page {
    school_list_query q;
    char now[24], limit[16], offset[24];
    struct pg_result *res; /* caller PQclears, also after an error */
    int n;                 /* rows fetched (0 after an error) */
    long long total;       /* rows of the whole list */
} school_list_page;

/* Reads the list's query from the request (sorts as school_list_parse) and fills the texts. */
void school_list_begin(const console_request *req, const char *const *sorts, school_list_page *p);
/* Runs the page's statement (page_school.c): head, orders[the query's sort] and tail, with params;
 * the total from column total_col of the first row. */
bx_status school_list_fetch(console_request *req, school_list_page *p, const char *head,
                            const char *const *orders, const char *tail, int nparams,
                            const char *const *params, int total_col, bx_error *err) BX_MUSTCHECK;
/* Whether row i of a list may be shown: the person may do a on its student (column student_col).
 * False when not, or on an error (in *s: the caller's loop ends on it). */
bool school_list_row_allowed(const console_request *req, const struct pg_result *res, int i,
                             int student_col, console_action a, bx_status *s, bx_error *err);
/* Row i of a list of children's cases (columns 0 the case id, 1 the student id, 2 the student's
 * name) as a new row of list in ctx, with case_id, student_id and student_name (the id when no
 * name is registered), borrowed from ctx as tmpl_add_row's. NULL when the person may not see
 * the student's personal data, on an error (as school_list_row_allowed), or when the row could
 * not be made (ctx remembers that failure). */
tmpl_ctx *school_list_child_row(const console_request *req, const struct pg_result *res, int i,
                                tmpl_ctx *ctx, const char *list, bx_status *s, bx_error *err);

/* Route handlers. */
bx_status page_school_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_school_remind_post(console_request *req, console_reply *rep, bx_error *err);
bx_status page_school_case_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_school_case_post(console_request *req, console_reply *rep, bx_error *err);
bx_status page_school_reassign_post(console_request *req, console_reply *rep, bx_error *err);
bx_status page_print_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_print_post(console_request *req, console_reply *rep, bx_error *err);
bx_status page_township_notices_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_township_children_get(console_request *req, console_reply *rep, bx_error *err);

#endif
