/* export: CSV and .xlsx of the county bureau's lists and reports (export.h). */
#include "export.h"

#include "bx_log.h"
#include "page_common.h"
#include "scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

#define HISTORY_MAX 2000 /* bytes of one case's history cell; longer ends with "…" */
#define REASON_MAX  120  /* bytes of one event's free text in it */

const char *const export_ledger_headers[EXPORT_LEDGER_COLS] = {
    "学校",         "乡镇", "班级", "学生姓名", "性别",  "出生日期",
    "首次缺勤日期", "阶段", "原因", "劝返记录", "责任人"};

/* Appends s and its NUL (one cell). */
static bx_status cell(bx_buf *cells, const char *s)
{
    return bx_buf_append(cells, s ? s : "", strlen(s ? s : "") + 1);
}

static bx_status masked_cell(bx_buf *cells, const char *s)
{
    char *copy = strdup(s ? s : "");
    if (copy == NULL)
        return BX_ENOMEM;
    bx_log_mask(copy);
    bx_status st = cell(cells, copy);
    free(copy);
    return st;
}

/* The length of reason's first REASON_MAX bytes or fewer, ending at a character's end: a cut
 * inside a UTF-8 character would leave an invalid cell. */
static size_t reason_cut(const char *reason)
{
    size_t n = strnlen(reason, REASON_MAX + 1);
    if (n <= REASON_MAX)
        return n;
    n = REASON_MAX;
    while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80) /* reason[n] continues one */
        n--;
    return n;
}

/* "10-02 进入阶段 联系家长；10-03 任务完成" with free text masked, cut at HISTORY_MAX bytes. */
static bx_status history_text(const export_case *c, bx_buf *h)
{
    bx_status st = BX_OK;
    size_t written = 0;
    for (size_t i = 0; i < c->nhistory && st == BX_OK; i++) {
        const export_event *e = &c->history[i];
        if (e->kind && strcmp(e->kind, "task_created") == 0)
            continue;
        size_t before = h->len;
        const char *at = e->at && strlen(e->at) >= 10 ? e->at + 5 : "";
        st = bx_buf_printf(h, "%s%.5s %s", written ? "；" : "", at,
                           page_label_event(e->kind ? e->kind : ""));
        if (e->stage && e->stage[0])
            IFOK(st, bx_buf_printf(h, " %s", page_label_stage(e->stage)));
        if (e->reason && e->reason[0] && e->kind && strcmp(e->kind, "stage_entered") != 0)
            IFOK(st, bx_buf_printf(h, "（%.*s）", (int)reason_cut(e->reason), e->reason));
        written++;
        if (st == BX_OK && h->len > HISTORY_MAX) {
            /* cut at the event's start, never inside a character */
            h->len = before;
            h->data[h->len] = '\0';
            st = bx_buf_puts(h, "；…");
            break;
        }
    }
    return st;
}

bx_status export_case_cells(const export_case *c, bx_buf *cells)
{
    const char *sex = c->sex && strcmp(c->sex, "M") == 0   ? "男"
                      : c->sex && strcmp(c->sex, "F") == 0 ? "女"
                                                           : "";
    const char *owner = console_role_label_of(c->owner);
    bx_buf h;
    bx_buf_init(&h, 0);
    bx_status st = history_text(c, &h);
    IFOK(st, cell(cells, c->school));
    IFOK(st, cell(cells, c->township));
    IFOK(st, cell(cells, c->class_name));
    IFOK(st, cell(cells, c->name));
    IFOK(st, cell(cells, sex));
    IFOK(st, cell(cells, c->birth_date));
    IFOK(st, cell(cells, c->first_absent));
    IFOK(st, cell(cells, c->stage && c->stage[0] ? page_label_stage(c->stage) : ""));
    IFOK(st, masked_cell(cells, c->reason));
    IFOK(st, masked_cell(cells, h.data ? h.data : ""));
    IFOK(st, cell(cells, owner));
    bx_buf_free(&h);
    return st;
}

/* ---- CSV ---- */

static bx_status csv_cell(bx_buf *out, const char *s, bool first)
{
    bx_status st = first ? BX_OK : bx_buf_puts(out, ",");
    bool formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@';
    bool quote = formula || strpbrk(s, ",\"\r\n") != NULL;
    IFOK(st, bx_buf_puts(out, quote ? "\"" : ""));
    IFOK(st, bx_buf_puts(out, formula ? "'" : ""));
    for (const char *p = s; *p && st == BX_OK; p++)
        st = *p == '"' ? bx_buf_puts(out, "\"\"") : bx_buf_append(out, p, 1);
    IFOK(st, bx_buf_puts(out, quote ? "\"" : ""));
    return st;
}

/* The next cell after *p in the NUL-separated cells. */
static const char *next_cell(const char **p)
{
    const char *s = *p;
    *p += strlen(s) + 1;
    return s;
}

static bool table_ok(const export_table *t)
{
    size_t n = 0;
    const char *p = t->cells && t->cells->data ? t->cells->data : "";
    const char *end = p + (t->cells ? t->cells->len : 0);
    while (p < end) {
        p += strlen(p) + 1;
        n++;
    }
    return t->ncols > 0 && n == t->ncols * t->nrows;
}

bx_status export_csv(const export_table *t, bx_buf *out)
{
    if (!table_ok(t))
        return BX_EINVAL;
    bx_status st = bx_buf_puts(out, "\xEF\xBB\xBF");
    IFOK(st, csv_cell(out, t->title ? t->title : "", true));
    IFOK(st, bx_buf_puts(out, "\r\n"));
    for (size_t c = 0; c < t->ncols && st == BX_OK; c++)
        st = csv_cell(out, t->headers[c], c == 0);
    IFOK(st, bx_buf_puts(out, "\r\n"));
    const char *p = t->cells->data;
    for (size_t r = 0; r < t->nrows && st == BX_OK; r++) {
        for (size_t c = 0; c < t->ncols && st == BX_OK; c++)
            st = csv_cell(out, next_cell(&p), c == 0);
        IFOK(st, bx_buf_puts(out, "\r\n"));
    }
    return st;
}

/* ---- .xlsx ---- */

static bx_status xlsx_fail(lxw_error e, bx_error *err)
{
    return BX_ERR(err, BX_EIO, "xlsx: %s", lxw_strerror(e));
}

/* Writes the table into wb's one sheet. */
static lxw_error xlsx_sheet(lxw_workbook *wb, const export_table *t)
{
    lxw_worksheet *ws = workbook_add_worksheet(wb, t->sheet);
    lxw_format *title = workbook_add_format(wb);
    lxw_format *head = workbook_add_format(wb);
    lxw_format *wrap = workbook_add_format(wb);
    if (ws == NULL || title == NULL || head == NULL || wrap == NULL)
        return LXW_ERROR_MEMORY_MALLOC_FAILED;
    format_set_bold(title);
    format_set_font_size(title, 14);
    format_set_bold(head);
    format_set_border(head, LXW_BORDER_THIN);
    format_set_bg_color(head, 0xE2E8F0);
    format_set_text_wrap(wrap);
    format_set_align(wrap, LXW_ALIGN_VERTICAL_TOP);
    lxw_col_t last = (lxw_col_t)(t->ncols - 1);
    lxw_error e = worksheet_merge_range(ws, 0, 0, 0, last, t->title ? t->title : "", title);
    for (size_t c = 0; c < t->ncols && e == LXW_NO_ERROR; c++) {
        e = worksheet_write_string(ws, 1, (lxw_col_t)c, t->headers[c], head);
        /* history and reasons wide, the rest as their header and a name */
        double width = strcmp(t->headers[c], "劝返记录") == 0 ? 60
                       : strcmp(t->headers[c], "原因") == 0   ? 30
                                                              : 14;
        if (e == LXW_NO_ERROR)
            e = worksheet_set_column(ws, (lxw_col_t)c, (lxw_col_t)c, width, wrap);
    }
    const char *p = t->cells->data;
    for (size_t r = 0; r < t->nrows && e == LXW_NO_ERROR; r++)
        for (size_t c = 0; c < t->ncols && e == LXW_NO_ERROR; c++) {
            const char *s = next_cell(&p);
            /* strings only: a name or a date is never taken for a number or a formula */
            e = s[0] ? worksheet_write_string(ws, (lxw_row_t)(r + 2), (lxw_col_t)c, s, NULL)
                     : LXW_NO_ERROR;
        }
    if (e == LXW_NO_ERROR)
        worksheet_freeze_panes(ws, 2, 0);
    return e;
}

static bx_status read_back(const char *path, bx_buf *out, bx_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return BX_ERR(err, BX_EIO, "xlsx: cannot read the workbook back");
    char chunk[65536];
    bx_status st = BX_OK;
    size_t n;
    while (st == BX_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        st = bx_buf_append(out, chunk, n);
    if (st == BX_OK && ferror(f))
        st = BX_ERR(err, BX_EIO, "xlsx: read error");
    fclose(f);
    return st;
}

bx_status export_xlsx(const export_table *t, bx_buf *out, bx_error *err)
{
    if (!table_ok(t))
        return BX_ERR(err, BX_EINVAL, "xlsx: the cells do not fill %zu rows of %zu", t->nrows,
                      t->ncols);
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/bx-console-export-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return BX_ERR(err, BX_EIO, "xlsx: no temporary file");
    close(fd);
    lxw_workbook_options opt = {.constant_memory = LXW_FALSE, .tmpdir = NULL};
    lxw_workbook *wb = workbook_new_opt(path, &opt);
    bx_status st = BX_OK;
    if (wb == NULL)
        st = BX_ERR(err, BX_ENOMEM, "xlsx: no workbook");
    else {
        lxw_error e = xlsx_sheet(wb, t);
        lxw_error closed = workbook_close(wb); /* writes the file, frees wb */
        if (e != LXW_NO_ERROR || closed != LXW_NO_ERROR)
            st = xlsx_fail(e != LXW_NO_ERROR ? e : closed, err);
    }
    IFOK(st, read_back(path, out, err));
    unlink(path);
    return st;
}
