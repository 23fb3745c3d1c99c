/* Unit tests of bx-notify's recipients decisions without the database: which request field names
 * the place a staff role is found by, and whether a context holds it (a request without a student,
 * such as a county's report, names its county in params). */
#include "bx_test.h"
#include "recipients.h"

#include <stdio.h>
#include <string.h>

BX_TEST(each_staff_role_is_found_by_its_place)
{
    static const struct {
        const char *role, *field;
    } rows[] = {
        {"homeroom_teacher", "student_id"},
        {"principal", "params.school_id"},
        {"academic_office", "params.school_id"},
        {"township_officer", "params.township_code"},
        {"county_officer", "params.county_code"},
        {"guardian", NULL},
        {"mayor", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *got = recipients_place_field(rows[i].role);
        if ((got == NULL) != (rows[i].field == NULL) ||
            (got != NULL && strcmp(got, rows[i].field) != 0))
            BX_FAIL_AT("%s: %s, expected %s", rows[i].role, got ? got : "NULL",
                       rows[i].field ? rows[i].field : "NULL");
    }
    CHECK(recipients_place_field(NULL) == NULL);
}

/* What a request without a student knows after its params were looked up: a county alone, a
 * township (and its county), a school (and its township and county); with a student everything. */
BX_TEST(a_place_reaches_the_roles_above_it_and_no_lower)
{
    recipients_context county, township, school, student;
    memset(&county, 0, sizeof(county));
    snprintf(county.county_code, sizeof(county.county_code), "520121");
    township = county;
    snprintf(township.township_code, sizeof(township.township_code), "520121100");
    school = township;
    snprintf(school.school_id, sizeof(school.school_id), "5201211001");
    student = school;
    snprintf(student.student_id, sizeof(student.student_id), "S1");
    recipients_context none;
    memset(&none, 0, sizeof(none));
    static const char *const roles[] = {"homeroom_teacher", "principal",      "academic_office",
                                        "township_officer", "county_officer", "guardian"};
    const struct {
        const char *name;
        const recipients_context *ctx;
        const char *want; /* per role: 1 known, 0 not */
    } rows[] = {
        {"nothing", &none, "000000"},      {"county", &county, "000010"},
        {"township", &township, "000110"}, {"school", &school, "011110"},
        {"student", &student, "111110"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
            bool want = rows[i].want[r] == '1';
            if (recipients_place_known(rows[i].ctx, roles[r]) != want)
                BX_FAIL_AT("%s, %s: expected %s", rows[i].name, roles[r],
                           want ? "known" : "not known");
        }
}
