/* bxctl case document against PostgreSQL: the formal notices of a case rendered from the case and
 * the registry (school, township, class, student and guardian names), with deadlines counted in
 * school days of the school's calendar across National Day and its make-up Saturday; to a file
 * or stdout; refused for a closed case, a student without a case, a return report without a
 * return; never a phone or id number. Each case has a database of its own. */
#include "bx_calendar.h"
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char db_url[512];

static int bxctl(const char *const *args, char **out)
{
    return itest_bxctl(db_url, NULL, args, out);
}

static void exec_sql(const char *sql)
{
    itest_sql_exec(db_url, sql);
}

/* School DS1 (township 测试镇) with class DC1 (三年级（1）班): DS-01 (张小明, guardian 张建国 with
 * a phone), DS-02 (李小红, no case), DS-03 (王小刚, a closed case: returned on 10-08). DS-01's open
 * case began on Monday 09-28 and counts 5 school days. */
static void setup(void)
{
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("documents"));
    char *dir = itest_tmpdir("documents-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "DS1,文书测试小学,990001100,primary,it-2026\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\nDC1,DS1,3,三年级（1）班,\n");
    itest_write_file(dir, "students.csv",
                     "student_id,school_id,class_id,name,national_id\n"
                     "DS-01,DS1,DC1,张小明,110105201601010014\n"
                     "DS-02,DS1,DC1,李小红,\nDS-03,DS1,DC1,王小刚,\n");
    itest_write_file(dir, "guardians.csv",
                     "student_id,name,relation,phone,is_primary\n"
                     "DS-01,张奶奶,grandparent,13900001111,false\n"
                     "DS-01,张建国,father,13812345678,true\n");
    const char *holidays = itest_holidays_csv();
    char *out = NULL;
    REQUIRE(bxctl((const char *[]){"import", "holidays", holidays, NULL}, &out) == 0);
    free(out);
    int rc = bxctl((const char *[]){"import", "--dir", dir, NULL}, &out);
    if (rc != 0)
        fprintf(stderr, "import: %s\n", out);
    REQUIRE(rc == 0);
    free(out);
    free(dir);
    bx_date start;
    REQUIRE(bx_date_parse("2026-09-28", &start) == BX_OK);
    char sql[2000];
    snprintf(sql, sizeof(sql),
             "INSERT INTO cases.case (student_id, school_id, opened_at, stage, state, updated_at) "
             "VALUES ('DS-01', 'DS1', '2026-09-28 08:30+08', 'academic_office', "
             "'{\"streak_days\": 5, \"streak_start\": %d}', '2026-10-09 08:30+08'); "
             "INSERT INTO cases.case (student_id, school_id, opened_at, stage, state, updated_at, "
             "closed_at, ending) VALUES ('DS-03', 'DS1', '2026-09-28 08:30+08', 'school_report', "
             "'{\"streak_days\": 0}', '2026-10-09 11:00+08', '2026-10-09 11:00+08', 'returned'); "
             "INSERT INTO cases.event (case_id, event_id, kind, actor, reason, occurred_at) "
             "SELECT id, 'DS-03:e9', 'closed', 'TW1', 'returned to school on 2026-10-08; return "
             "report signed by TW1', '2026-10-09 11:00+08' FROM cases.case WHERE student_id = "
             "'DS-03'",
             (int)start);
    exec_sql(sql);
}

BX_TEST(persuasion_letter_with_a_deadline_from_the_calendar)
{
    setup();
    char *page = NULL;
    /* issued Wednesday 09-30: three school days are 10-08, 10-09 and the make-up Saturday 10-10 */
    int rc = bxctl((const char *[]){"case", "document", "DS-01", "persuasion_letter", "--date",
                                    "2026-09-30", NULL},
                   &page);
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(page, "<html");
    CHECK_CONTAINS(page, "劝学书");
    CHECK_CONTAINS(page, "张小明");
    CHECK_CONTAINS(page, "张建国"); /* the primary guardian */
    CHECK_CONTAINS(page, "文书测试小学");
    CHECK_CONTAINS(page, "三年级（1）班");
    CHECK_CONTAINS(page, "2026年9月30日");
    CHECK_CONTAINS(page, "2026年10月10日");
    CHECK(strstr(page, "2026年10月9日") == NULL);
    CHECK(strstr(page, "13812345678") == NULL);
    CHECK(strstr(page, "110105201601010014") == NULL);
    CHECK(strstr(page, "张奶奶") == NULL);
    free(page);
}

BX_TEST(notices_dropout_report_and_return_report)
{
    setup();
    char *page = NULL;
    /* the township's return notice of Friday 10-09 with 5 school days: 10-10 (make-up), 10-12,
     * 10-13, 10-14, 10-15 */
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-01", "return_notice", "--date",
                                     "2026-10-09", "--days", "5", NULL},
                    &page),
              0);
    CHECK_CONTAINS(page, "复学通知书");
    CHECK_CONTAINS(page, "测试镇");
    CHECK_CONTAINS(page, "2026年10月15日");
    free(page);
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-01", "deadline_notice", "--date",
                                     "2026-10-16", "--days", "3", NULL},
                    &page),
              0);
    CHECK_CONTAINS(page, "限期复学通知书");
    CHECK_CONTAINS(page, "2026年10月21日"); /* 10-19, 10-20, 10-21 */
    free(page);
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-01", "dropout_report", "--date",
                                     "2026-10-12", NULL},
                    &page),
              0);
    CHECK_CONTAINS(page, "辍学报告单");
    CHECK_CONTAINS(page, "2026年9月28日"); /* the first day absent, from the case */
    free(page);
    /* the closed case's return report, with the day the child came back */
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-03", "return_report", "--date",
                                     "2026-10-09", NULL},
                    &page),
              0);
    CHECK_CONTAINS(page, "复学报告书");
    CHECK_CONTAINS(page, "王小刚");
    CHECK_CONTAINS(page, "2026年10月8日");
    free(page);
}

BX_TEST(document_to_a_file)
{
    setup();
    char *dir = itest_tmpdir("documents-out"), path[600], *out = NULL;
    snprintf(path, sizeof(path), "%s/letter.html", dir);
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-01", "persuasion_letter", "--date",
                                     "2026-09-30", "--out", path, NULL},
                    &out),
              0);
    CHECK_CONTAINS(out, path);
    free(out);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    CHECK_CONTAINS(buf, "劝学书");
    CHECK_CONTAINS(buf, "</html>");
    free(dir);
}

BX_TEST(document_refusals_are_named)
{
    setup();
    char *out = NULL;
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-02", "persuasion_letter", NULL}, &out),
              1);
    CHECK_CONTAINS(out, "student DS-02 has no case");
    free(out);
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-09", "persuasion_letter", NULL}, &out),
              1);
    CHECK_CONTAINS(out, "no student \"DS-09\" in the registry");
    free(out);
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-03", "return_notice", NULL}, &out), 1);
    CHECK_CONTAINS(out, "last case is closed (returned)");
    free(out);
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-01", "return_report", NULL}, &out), 1);
    CHECK_CONTAINS(out, "has no return to school");
    free(out);
    CHECK_INT(bxctl((const char *[]){"case", "document", "DS-01", "summons", NULL}, &out), 2);
    CHECK_CONTAINS(out, "unknown kind \"summons\"");
    free(out);
    CHECK_INT(
        bxctl((const char *[]){"case", "document", "DS-01", "return_notice", "--days", "0", NULL},
              &out),
        2);
    CHECK_CONTAINS(out, "--days: expected 1 to 60, got \"0\"");
    free(out);
}
