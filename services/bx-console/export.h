/* export: the county bureau's files (辍学生花名册, the three standing lists, the rates report) as
 * CSV and .xlsx: a title row (county, period, date), the column headers in Chinese in the order a
 * bureau files them, then the rows. Pure but for the .xlsx, which libxlsxwriter writes to a
 * temporary file read back into memory. Id numbers never appear (the row builder has no field for
 * them) and digit runs in free text are masked, as everywhere else in bx-console. */
#ifndef CONSOLE_EXPORT_H
#define CONSOLE_EXPORT_H

#include "bx_buf.h"
#include "bx_status.h"

#include <stddef.h>

/* The ledger's and roster's columns: 学校, 乡镇, 班级, 学生姓名, 性别, 出生日期, 首次缺勤日期,
 * 阶段, 原因, 劝返记录, 责任人. */
#define EXPORT_LEDGER_COLS 11
extern const char *const export_ledger_headers[EXPORT_LEDGER_COLS];

/* One event of a case's persuasion history. Strings borrowed. */
typedef struct export_event {
    const char *at;     /* ISO 8601 with offset, "2026-10-02T17:00:00+08:00" */
    const char *kind;   /* cases.event kind: stage_entered, task_done, note, ... */
    const char *stage;  /* "" when none */
    const char *reason; /* free text (masked here) */
} export_event;

/* One case of a list, as the registry and the case history give it. Strings borrowed; "" when
 * unknown. */
typedef struct export_case {
    const char *school, *township, *class_name, *name;
    const char *sex;          /* "M", "F" or "" */
    const char *birth_date;   /* "YYYY-MM-DD" or "" */
    const char *first_absent; /* "YYYY-MM-DD" or "" */
    const char *stage;        /* the ladder's stage name */
    const char *reason;       /* the case's opening reason (masked here) */
    const char *owner;        /* the responsible staff member's name, or a role name */
    const export_event *history;
    size_t nhistory;
} export_case;

/* The row of one case: EXPORT_LEDGER_COLS cells appended to cells (NUL-separated texts in one
 * buffer, so a whole export is one allocation): sex as 男/女, the stage and the owner's role in
 * Chinese, the history as "10-02 进入阶段 联系家长；10-03 任务完成 家访" (task_created left out),
 * free text masked. */
bx_status export_case_cells(const export_case *c, bx_buf *cells) BX_MUSTCHECK;

/* A table: title row, headers, rows of ncols cells each (row-major, NUL-separated in cells as
 * export_case_cells writes them). */
typedef struct export_table {
    const char *title; /* "某县 辍学生花名册 2026-autumn 导出于 2026-12-07" */
    const char *sheet; /* worksheet name, at most 31 characters */
    const char *const *headers;
    size_t ncols;
    const bx_buf *cells;
    size_t nrows;
} export_table;

/* CSV (RFC 4180, CRLF, UTF-8 with a byte order mark so a spreadsheet reads the Chinese): the
 * title line, the header line, the rows. A cell beginning with = + - @ is written with a leading
 * apostrophe, so a spreadsheet never runs it as a formula. */
bx_status export_csv(const export_table *t, bx_buf *out) BX_MUSTCHECK;

/* The same table as an .xlsx workbook of one worksheet (title merged across the columns, headers
 * bold, columns sized), appended to out. */
bx_status export_xlsx(const export_table *t, bx_buf *out, bx_error *err) BX_MUSTCHECK;

#endif
