/* page_school_list: the pure parts of the principal's and township's lists: the query (page, sort,
 * filters), the links that keep it, the pager. No I/O. */
#include "bx_registry.h"
#include "page_common.h"
#include "page_school.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const school_list_stages[] = {"contact_family",  "home_visit",     "school_report",
                                          "academic_office", "dropout_roster", "township_notice",
                                          "deadline_notice", "legal_referral", NULL};

static const char *field(const console_field *fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0)
            return fields[i].value;
    return NULL;
}

static int index_of(const char *const *list, const char *v)
{
    for (int i = 0; v && list && list[i]; i++)
        if (strcmp(list[i], v) == 0)
            return i;
    return -1;
}

void school_list_parse(const console_field *fields, size_t n, const char *const *sorts,
                       school_list_query *q)
{
    memset(q, 0, sizeof(*q));
    q->page = 1;
    const char *v = field(fields, n, "page");
    if (v && *v && strspn(v, "0123456789") == strlen(v) && strlen(v) <= 4) {
        int p = atoi(v);
        if (p >= 1 && p <= SCHOOL_LIST_MAX_PAGE)
            q->page = p;
    }
    int s = index_of(sorts, field(fields, n, "sort"));
    q->sort = s > 0 ? s : 0;
    v = field(fields, n, "stage");
    if (index_of(school_list_stages, v) >= 0)
        snprintf(q->stage, sizeof(q->stage), "%s", v);
    v = field(fields, n, "school");
    if (v && bx_id_valid(v))
        snprintf(q->school_id, sizeof(q->school_id), "%s", v);
    v = field(fields, n, "overdue");
    q->overdue = v && strcmp(v, "1") == 0;
}

bool school_list_link(const school_list_query *q, const char *const *sorts, const char *path,
                      int page, char *out, size_t size)
{
    if (page <= 0)
        page = q->page;
    /* Every value is a registry id, a stage or a sort name: nothing to percent-encode. */
    int n = snprintf(out, size, "%s", path);
    char sep = strchr(path, '?') ? '&' : '?';
    if (page > 1 && n >= 0 && (size_t)n < size) {
        n += snprintf(out + n, size - (size_t)n, "%cpage=%d", sep, page);
        sep = '&';
    }
    if (q->sort > 0 && sorts && n >= 0 && (size_t)n < size) {
        n += snprintf(out + n, size - (size_t)n, "%csort=%s", sep, sorts[q->sort]);
        sep = '&';
    }
    if (q->stage[0] && n >= 0 && (size_t)n < size) {
        n += snprintf(out + n, size - (size_t)n, "%cstage=%s", sep, q->stage);
        sep = '&';
    }
    if (q->school_id[0] && n >= 0 && (size_t)n < size) {
        n += snprintf(out + n, size - (size_t)n, "%cschool=%s", sep, q->school_id);
        sep = '&';
    }
    if (q->overdue && n >= 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, "%coverdue=1", sep);
    if (n < 0 || (size_t)n >= size) {
        snprintf(out, size, "%s", path);
        return false;
    }
    return true;
}

int school_list_pages(long long total)
{
    if (total <= 0)
        return 1;
    long long pages = (total + SCHOOL_LIST_PER_PAGE - 1) / SCHOOL_LIST_PER_PAGE;
    return pages > SCHOOL_LIST_MAX_PAGE ? SCHOOL_LIST_MAX_PAGE : (int)pages;
}

long long school_list_offset(const school_list_query *q)
{
    return (long long)(q->page - 1) * SCHOOL_LIST_PER_PAGE;
}

void school_list_put(tmpl_ctx *ctx, const school_list_query *q, const char *const *sorts,
                     const char *const *sort_labels, const char *path, long long total)
{
    char link[512];
    int pages = school_list_pages(total);
    tmpl_put_int(ctx, "page", q->page);
    tmpl_put_int(ctx, "pages", pages);
    tmpl_put_int(ctx, "total", total);
    tmpl_put_bool(ctx, "paged", pages > 1);
    if (q->page > 1 && school_list_link(q, sorts, path, q->page - 1, link, sizeof(link)))
        tmpl_put(ctx, "prev_link", link);
    if (q->page < pages && school_list_link(q, sorts, path, q->page + 1, link, sizeof(link)))
        tmpl_put(ctx, "next_link", link);
    /* a GET form drops its action's query: the form gets the path alone */
    char form_path[256];
    snprintf(form_path, sizeof(form_path), "%.*s", (int)strcspn(path, "?"), path);
    tmpl_put(ctx, "list_path", form_path);
    tmpl_put_bool(ctx, "overdue_only", q->overdue);
    tmpl_put(ctx, "school_filter", q->school_id);
    tmpl_put_bool(ctx, "filtered", q->overdue || q->stage[0] || q->school_id[0]);
    for (int i = 0; school_list_stages[i]; i++)
        page_put_option(ctx, "stage_options", school_list_stages[i],
                        page_label_stage(school_list_stages[i]),
                        strcmp(q->stage, school_list_stages[i]) == 0);
    for (int i = 0; sorts && sorts[i]; i++)
        page_put_option(ctx, "sort_options", sorts[i], sort_labels ? sort_labels[i] : sorts[i],
                        i == q->sort);
}

void school_list_put_child(tmpl_ctx *row, const char *case_id, const char *student_id,
                           const char *student_name)
{
    tmpl_put(row, "case_id", case_id);
    tmpl_put(row, "student_id", student_id);
    tmpl_put(row, "student_name", student_name[0] ? student_name : student_id);
}

tmpl_ctx *school_list_child_row(const console_request *req, const PGresult *res, int i,
                                tmpl_ctx *ctx, const char *list, bx_status *s, bx_error *err)
{
    if (!school_list_row_allowed(req, res, i, 1, CONSOLE_VIEW_PERSONAL, s, err))
        return NULL;
    tmpl_ctx *row = tmpl_add_row(ctx, list);
    school_list_put_child(row, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    return row;
}

void school_list_begin(const console_request *req, const char *const *sorts, school_list_page *p)
{
    memset(p, 0, sizeof(*p));
    school_list_parse(req->query, req->nquery, sorts, &p->q);
    snprintf(p->now, sizeof(p->now), "%lld", (long long)req->now);
    snprintf(p->limit, sizeof(p->limit), "%d", SCHOOL_LIST_PER_PAGE);
    snprintf(p->offset, sizeof(p->offset), "%lld", school_list_offset(&p->q));
}
