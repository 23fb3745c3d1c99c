/* bx-console's exports (export.c): the row builder of a ledger or roster row (columns in the
 * bureau's order, sex and stage in Chinese, history without task_created, digit runs masked, no
 * id number), CSV quoting and formula guard, and an .xlsx that is a zip holding the texts. */
#include "bx_json.h"
#include "bx_test.h"
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *cell_at(const bx_buf *cells, size_t i)
{
    const char *p = cells->data;
    while (i-- > 0)
        p += strlen(p) + 1;
    return p;
}

static void one_case(bx_buf *cells)
{
    const export_event history[] = {
        {"2026-10-02T17:00:00+08:00", "opened", "", "连续缺勤 3 天"},
        {"2026-10-02T17:00:00+08:00", "task_created", "contact_family", ""},
        {"2026-10-02T17:00:00+08:00", "stage_entered", "contact_family", "streak"},
        {"2026-10-03T09:12:00+08:00", "note", "", "家长电话 13812345678"},
    };
    export_case c = {.school = "一小",
                     .township = "城关镇",
                     .class_name = "三年级2班",
                     .name = "孙一",
                     .sex = "F",
                     .birth_date = "2017-03-04",
                     .first_absent = "2026-09-28",
                     .stage = "contact_family",
                     .reason = "身份证 520121201703041234 缺勤",
                     .owner = "homeroom_teacher",
                     .history = history,
                     .nhistory = 4};
    CHECK_INT(export_case_cells(&c, cells), BX_OK);
}

BX_TEST(export_case_row_in_bureau_order)
{
    bx_buf cells;
    bx_buf_init(&cells, 0);
    one_case(&cells);
    CHECK_STR(export_ledger_headers[0], "学校");
    CHECK_STR(export_ledger_headers[3], "学生姓名");
    CHECK_STR(export_ledger_headers[10], "责任人");
    CHECK_STR(cell_at(&cells, 0), "一小");
    CHECK_STR(cell_at(&cells, 1), "城关镇");
    CHECK_STR(cell_at(&cells, 2), "三年级2班");
    CHECK_STR(cell_at(&cells, 3), "孙一");
    CHECK_STR(cell_at(&cells, 4), "女");
    CHECK_STR(cell_at(&cells, 5), "2017-03-04");
    CHECK_STR(cell_at(&cells, 6), "2026-09-28");
    CHECK_STR(cell_at(&cells, 7), "联系家长");
    CHECK(strstr(cell_at(&cells, 8), "520121201703041234") == NULL); /* masked */
    const char *h = cell_at(&cells, 9);
    CHECK_CONTAINS(h, "10-02 立案");
    CHECK_CONTAINS(h, "10-02 进入阶段 联系家长");
    CHECK(strstr(h, "新任务") == NULL);      /* task_created left out */
    CHECK(strstr(h, "13812345678") == NULL); /* masked */
    CHECK_STR(cell_at(&cells, 10), "班主任");
    bx_buf_free(&cells);
}

/* A long note is cut at 120 bytes, at a character boundary: "a" and 3-byte characters put the
 * 120th byte inside one, which a byte cut ("%.120s") split into an invalid UTF-8 cell. */
BX_TEST(export_history_cut_keeps_whole_characters)
{
    char reason[400] = "a";
    for (int i = 0; i < 60; i++)
        strcat(reason, "劝");
    const export_event history[] = {{"2026-10-03T09:12:00+08:00", "note", "", reason}};
    export_case c = {.school = "一小", .name = "孙一", .history = history, .nhistory = 1};
    bx_buf cells;
    bx_buf_init(&cells, 0);
    CHECK_INT(export_case_cells(&c, &cells), BX_OK);
    const char *h = cell_at(&cells, 9);
    CHECK(bx_utf8_valid(h, strlen(h)));
    /* "a" and 39 whole characters (118 bytes): the 40th would end past byte 120 */
    char want[200] = "（a";
    for (int i = 0; i < 39; i++)
        strcat(want, "劝");
    strcat(want, "）");
    CHECK_CONTAINS(h, want);
    CHECK(strstr(
              h,
              "劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝劝") ==
          NULL);
    bx_buf_free(&cells);
}

BX_TEST(export_csv_title_headers_rows)
{
    bx_buf cells, out;
    bx_buf_init(&cells, 0);
    bx_buf_init(&out, 0);
    one_case(&cells);
    /* a second row with a comma, a quote and a formula */
    const char *odd[EXPORT_LEDGER_COLS] = {"a,b", "say \"hi\"", "=1+1", "", "",  "",
                                           "",    "",           "",     "", "-x"};
    for (int i = 0; i < EXPORT_LEDGER_COLS; i++)
        CHECK_INT(bx_buf_append(&cells, odd[i], strlen(odd[i]) + 1), BX_OK);
    export_table t = {.title = "某县 辍学生花名册 2026-autumn 导出于 2026-12-07",
                      .sheet = "辍学生花名册",
                      .headers = export_ledger_headers,
                      .ncols = EXPORT_LEDGER_COLS,
                      .cells = &cells,
                      .nrows = 2};
    CHECK_INT(export_csv(&t, &out), BX_OK);
    CHECK(strncmp(out.data, "\xEF\xBB\xBF某县 辍学生花名册",
                  strlen("\xEF\xBB\xBF某县 辍学生花名册")) == 0);
    CHECK_CONTAINS(out.data, "\r\n学校,乡镇,班级,学生姓名,性别,出生日期,首次缺勤日期,阶段,原因,"
                             "劝返记录,责任人\r\n一小,城关镇,三年级2班,孙一,女,");
    CHECK_CONTAINS(out.data, "\"a,b\",\"say \"\"hi\"\"\",\"'=1+1\",");
    CHECK_CONTAINS(out.data, ",\"'-x\"\r\n");
    /* cells that do not fill the rows are refused */
    t.nrows = 3;
    CHECK_INT(export_csv(&t, &out), BX_EINVAL);
    bx_buf_free(&cells);
    bx_buf_free(&out);
}

BX_TEST(export_xlsx_is_a_workbook_with_the_texts)
{
    bx_buf cells, out;
    bx_buf_init(&cells, 0);
    bx_buf_init(&out, 0);
    one_case(&cells);
    export_table t = {.title = "某县 辍学生花名册",
                      .sheet = "辍学生花名册",
                      .headers = export_ledger_headers,
                      .ncols = EXPORT_LEDGER_COLS,
                      .cells = &cells,
                      .nrows = 1};
    bx_error err = {0};
    CHECK_INT(export_xlsx(&t, &out, &err), BX_OK);
    CHECK(out.len > 1000);
    CHECK(out.len > 4 && memcmp(out.data, "PK\x03\x04", 4) == 0);
    /* the strings are in xl/sharedStrings.xml: unzip and look */
    char path[] = "/tmp/test-export-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fwrite(out.data, 1, out.len, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "unzip -p %s xl/sharedStrings.xml", path);
    FILE *p = popen(cmd, "r");
    char xml[65536];
    size_t n = p ? fread(xml, 1, sizeof(xml) - 1, p) : 0;
    xml[n] = '\0';
    if (p)
        pclose(p);
    unlink(path);
    CHECK_CONTAINS(xml, "孙一");
    CHECK_CONTAINS(xml, "劝返记录");
    CHECK_CONTAINS(xml, "某县 辍学生花名册");
    CHECK(strstr(xml, "520121201703041234") == NULL);
    bx_buf_free(&cells);
    bx_buf_free(&out);
}
