/* bxctl privacy erase against the real PostgreSQL (issue 14, operations: erasure): a student's
 * personal data goes once the obligation has ended, refused while a case is open; audited; the
 * counts the reports need stay. */
#include "bx_itest.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char db_url[512];

/* Runs bxctl with args against the case's database; its output in *out (caller frees). */
static int bxctl(const char *const *args, char **out)
{
    return itest_bxctl(db_url, NULL, args, out);
}

static char *rows_of(const char *sql)
{
    return itest_sql_rows(db_url, sql);
}

/* School PS1 with class PC1 and teacher PT1; PV1 (graduated, a closed case), PV2 (an open case),
 * PV3 (enrolled, no case); each with two guardians; PV1 has a home-visit note and two SMS. */
static void setup(void)
{
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("privacy"));
    char *dir = itest_tmpdir("privacy-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "PS1,隐私测试中学,990001100,junior,it-2026\n");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "PT1,周明,homeroom_teacher,PS1,,,13900000001\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\nPC1,PS1,9,九年级1班,PT1\n");
    itest_write_file(dir, "students.csv",
                     "student_id,school_id,class_id,name\nPV1,PS1,PC1,李小明\nPV2,PS1,PC1,"
                     "张华\nPV3,PS1,PC1,王芳\n");
    itest_write_file(
        dir, "guardians.csv",
        "student_id,name,relation,phone,address,is_primary\n"
        "PV1,李母,mother,13800000001,某村1号,true\nPV1,李父,father,13700000001,,false\n"
        "PV2,张母,mother,13800000002,,true\nPV2,张父,father,13700000002,,false\n"
        "PV3,王母,mother,13800000003,,true\nPV3,王父,father,13700000003,,false\n");
    char *out = NULL;
    const char *import[] = {"import", "--dir", dir, NULL};
    int rc = bxctl(import, &out);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    REQUIRE(rc == 0);
    free(out);
    free(dir);
    itest_sql_exec(
        db_url,
        "UPDATE registry.student SET status = 'graduated' WHERE id = 'PV1';"
        "UPDATE registry.student_private SET national_id = '53262119990101123X', birth_date = "
        "'2011-01-01', flags = '{left_behind}' WHERE student_id = 'PV1';"
        "INSERT INTO cases.case (student_id, school_id, opened_at, stage, updated_at, closed_at, "
        "ending) VALUES ('PV1', 'PS1', '2026-09-10 09:00+08', 'home_visit', '2026-10-10 "
        "09:00+08', '2026-10-10 09:00+08', 'obligation_ended'), ('PV2', 'PS1', '2026-09-10 "
        "09:00+08', 'contact_family', '2026-09-10 09:00+08', NULL, NULL);"
        "INSERT INTO console.visit_note (event_id, student_id, staff_id, note, recorded_at) "
        "VALUES ('visit-1', 'PV1', 'PT1', '家访：父亲在外打工，奶奶照看', '2026-09-12 "
        "18:00+08');"
        "INSERT INTO notify.notification (request_id, recipient, recipient_masked, audience, "
        "channel, student_id, template, body, state, created_at, updated_at) VALUES "
        "('r1', '13800000001', '138****0001', 'guardian', 'sms', 'PV1', 'absence_same_day', "
        "'李小明家长您好', 'delivered', now(), now()), ('r1', '13700000001', '137****0001', "
        "'guardian', 'sms', 'PV1', 'absence_same_day', '李小明家长您好', 'delivered', now(), "
        "now()), ('r2', '13800000002', '138****0002', 'guardian', 'sms', 'PV2', "
        "'absence_same_day', '张华家长您好', 'delivered', now(), now())");
}

BX_TEST(erasure_is_refused_while_a_case_is_open_or_the_obligation_runs)
{
    setup();
    char *out = NULL;
    const char *open_case[] = {"privacy", "erase", "PV2", NULL};
    CHECK_INT(bxctl(open_case, &out), 1);
    CHECK_CONTAINS(out, "has an open case");
    free(out);
    const char *enrolled[] = {"privacy", "erase", "PV3", NULL};
    CHECK_INT(bxctl(enrolled, &out), 1);
    CHECK_CONTAINS(out, "obligation has not ended");
    free(out);
    const char *unknown[] = {"privacy", "erase", "PV9", NULL};
    CHECK_INT(bxctl(unknown, &out), 1);
    CHECK_CONTAINS(out, "no student PV9");
    free(out);
    const char *bad[] = {"privacy", "erase", "'; DROP", NULL};
    CHECK_INT(bxctl(bad, &out), 2);
    free(out);
    /* nothing changed */
    char *rows = rows_of("SELECT (SELECT count(*) FROM registry.guardian), (SELECT count(*) FROM "
                         "console.audit WHERE action = 'privacy_erase')");
    CHECK_STR(rows, "6|0\n");
    free(rows);
}

BX_TEST(erasure_removes_personal_data_keeps_counts_and_is_audited)
{
    setup();
    char *out = NULL;
    const char *erase[] = {"privacy", "erase", "PV1", NULL};
    CHECK_INT(bxctl(erase, &out), 0);
    CHECK_CONTAINS(out, "student PV1 erased");
    free(out);
    char *rows =
        rows_of("SELECT name, coalesce(national_id, '-'), coalesce(birth_date::text, '-'), flags "
                "FROM registry.student_private WHERE student_id = 'PV1'");
    CHECK_STR(rows, "（已删除）|-|-|{}\n");
    free(rows);
    rows = rows_of("SELECT (SELECT count(*) FROM registry.guardian WHERE student_id = 'PV1'), "
                   "(SELECT count(*) FROM registry.guardian), (SELECT count(*) FROM "
                   "console.visit_note WHERE student_id = 'PV1')");
    CHECK_STR(rows, "0|4|0\n");
    free(rows);
    rows = rows_of("SELECT recipient_masked, body, recipient ~ '^1[3-9][0-9]{9}$' FROM "
                   "notify.notification WHERE student_id = 'PV1' ORDER BY id");
    CHECK_STR(rows, "erased||f\nerased||f\n");
    free(rows);
    /* the other student's notification and every count the reports read stay */
    rows = rows_of("SELECT (SELECT body FROM notify.notification WHERE student_id = 'PV2'), "
                   "(SELECT count(*) FROM registry.student), (SELECT count(*) FROM cases.case), "
                   "(SELECT ending FROM cases.case WHERE student_id = 'PV1')");
    CHECK_STR(rows, "张华家长您好|3|2|obligation_ended\n");
    free(rows);
    rows = rows_of("SELECT staff_id, action, student_id, detail FROM console.audit WHERE action = "
                   "'privacy_erase'");
    CHECK_STR(rows, "bxctl|privacy_erase|PV1|erased: private 1, guardians 2, visit notes 1, "
                    "notifications 2, digests 0\n");
    free(rows);
    /* a second erasure finds nothing more, and says so in the audit too */
    CHECK_INT(bxctl(erase, &out), 0);
    free(out);
    rows = rows_of("SELECT count(*) FROM console.audit WHERE action = 'privacy_erase'");
    CHECK_STR(rows, "2\n");
    free(rows);
}
