/* bx-console's scope function from a table: every role against a student of its own class,
 * another class, another school, another township, another county, and aggregates. */
#include "bx_test.h"
#include "scope.h"

#include <stdio.h>
#include <string.h>

/* The world: county 520122 (townships 520122001 with schools A and B, 520122002 with school C),
 * county 520123 (township 520123001, school D), city 5201, province 52; classes A1, A2 (school
 * A), B1, C1, D1; one student in each. */
enum obj {
    S_OWN_CLASS,      /* student of A1 */
    S_OTHER_CLASS,    /* student of A2 */
    S_OTHER_SCHOOL,   /* student of B1 (same township) */
    S_OTHER_TOWNSHIP, /* student of C1 (same county) */
    S_OTHER_COUNTY,   /* student of D1 */
    C_OWN,            /* class A1 */
    SCHOOL_OWN,       /* school A */
    TOWNSHIP_OWN,     /* 520122001 */
    COUNTY_OWN,       /* 520122 */
    CITY,             /* 5201 */
    PROVINCE,         /* 52 */
    OTHER_CITY,       /* 5301 */
    NOBJ
};

static console_object object(enum obj o)
{
    switch (o) {
    case S_OWN_CLASS:
        return (console_object){CONSOLE_OBJ_STUDENT, "S1", "A1", "A", "520122001", "520122", NULL};
    case S_OTHER_CLASS:
        return (console_object){CONSOLE_OBJ_STUDENT, "S2", "A2", "A", "520122001", "520122", NULL};
    case S_OTHER_SCHOOL:
        return (console_object){CONSOLE_OBJ_STUDENT, "S3", "B1", "B", "520122001", "520122", NULL};
    case S_OTHER_TOWNSHIP:
        return (console_object){CONSOLE_OBJ_STUDENT, "S4", "C1", "C", "520122002", "520122", NULL};
    case S_OTHER_COUNTY:
        return (console_object){CONSOLE_OBJ_STUDENT, "S5", "D1", "D", "520123001", "520123", NULL};
    case C_OWN:
        return (console_object){CONSOLE_OBJ_CLASS, NULL, "A1", "A", "520122001", "520122", NULL};
    case SCHOOL_OWN:
        return (console_object){CONSOLE_OBJ_SCHOOL, NULL, NULL, "A", "520122001", "520122", NULL};
    case TOWNSHIP_OWN:
        return (console_object){CONSOLE_OBJ_TOWNSHIP, NULL,     NULL, NULL,
                                "520122001",          "520122", NULL};
    case COUNTY_OWN:
        return (console_object){CONSOLE_OBJ_COUNTY, NULL, NULL, NULL, NULL, "520122", NULL};
    case CITY:
        return (console_object){CONSOLE_OBJ_AREA, NULL, NULL, NULL, NULL, NULL, "5201"};
    case PROVINCE:
        return (console_object){CONSOLE_OBJ_AREA, NULL, NULL, NULL, NULL, NULL, "52"};
    case OTHER_CITY:
        return (console_object){CONSOLE_OBJ_AREA, NULL, NULL, NULL, NULL, NULL, "5301"};
    case NOBJ:
        break;
    }
    return (console_object){0};
}

static console_person person(console_role role)
{
    console_person p;
    memset(&p, 0, sizeof(p));
    snprintf(p.staff_id, sizeof(p.staff_id), "P-%d", (int)role);
    p.role = role;
    switch (role) {
    case CONSOLE_HOMEROOM_TEACHER:
        p.nclasses = 1;
        snprintf(p.class_ids[0], sizeof(p.class_ids[0]), "A1");
        /* fall through */
    case CONSOLE_SUBJECT_TEACHER:
    case CONSOLE_PRINCIPAL:
    case CONSOLE_ACADEMIC_OFFICE:
        snprintf(p.school_id, sizeof(p.school_id), "A");
        /* fall through */
    case CONSOLE_TOWNSHIP_OFFICER:
        snprintf(p.township_code, sizeof(p.township_code), "520122001");
        /* fall through */
    case CONSOLE_COUNTY_OFFICER:
        snprintf(p.county_code, sizeof(p.county_code), "520122");
        break;
    case CONSOLE_CITY_OFFICER:
        snprintf(p.area_code, sizeof(p.area_code), "5201");
        break;
    case CONSOLE_PROVINCE_OFFICER:
        snprintf(p.area_code, sizeof(p.area_code), "52");
        break;
    case CONSOLE_ROLE_NONE:
        break;
    }
    return p;
}

/* Per role and object, the actions allowed, as letters: v view_student, p view_personal,
 * w write_attendance, a write_action, s sign_off_return, g view_aggregate. "" none. */
static const struct row {
    console_role role;
    const char *allowed[NOBJ];
} table[] = {
    /*                         own    class  school twp    county C_OWN  SCHOOL TWP  COUNTY CITY
       PROV OTHERCITY */
    {CONSOLE_HOMEROOM_TEACHER, {"vpwag", "", "", "", "", "vpwag", "", "", "", "", "", ""}},
    {CONSOLE_SUBJECT_TEACHER, {"vwg", "vwg", "", "", "", "vwg", "g", "", "", "", "", ""}},
    {CONSOLE_PRINCIPAL, {"vpwag", "vpwag", "", "", "", "vpwag", "g", "", "", "", "", ""}},
    {CONSOLE_ACADEMIC_OFFICE, {"vpwag", "vpwag", "", "", "", "vpwag", "g", "", "", "", "", ""}},
    {CONSOLE_TOWNSHIP_OFFICER,
     {"vpasg", "vpasg", "vpasg", "", "", "vpag", "g", "g", "", "", "", ""}},
    {CONSOLE_COUNTY_OFFICER,
     {"vpag", "vpag", "vpag", "vpag", "", "vpag", "g", "g", "g", "", "", ""}},
    {CONSOLE_CITY_OFFICER, {"", "", "", "", "", "", "g", "g", "g", "g", "", ""}},
    {CONSOLE_PROVINCE_OFFICER, {"", "", "", "", "", "", "g", "g", "g", "g", "g", ""}},
};

static const struct {
    char letter;
    console_action action;
} actions[] = {{'v', CONSOLE_VIEW_STUDENT},     {'p', CONSOLE_VIEW_PERSONAL},
               {'w', CONSOLE_WRITE_ATTENDANCE}, {'a', CONSOLE_WRITE_ACTION},
               {'s', CONSOLE_SIGN_OFF_RETURN},  {'g', CONSOLE_VIEW_AGGREGATE}};

BX_TEST(scope_table)
{
    for (size_t r = 0; r < sizeof(table) / sizeof(table[0]); r++) {
        console_person p = person(table[r].role);
        for (int o = 0; o < NOBJ; o++) {
            console_object obj = object((enum obj)o);
            for (size_t a = 0; a < sizeof(actions) / sizeof(actions[0]); a++) {
                bool want = strchr(table[r].allowed[o], actions[a].letter) != NULL;
                bool got = console_may(&p, actions[a].action, &obj);
                if (want != got)
                    BX_FAIL_AT("%s, object %d, action %c: got %s, expected %s",
                               console_role_name(table[r].role), o, actions[a].letter,
                               got ? "allowed" : "refused", want ? "allowed" : "refused");
            }
            CHECK(!console_may(&p, CONSOLE_MANAGE_ACCOUNTS, &obj));
        }
    }
}

BX_TEST(scope_only_township_signs_off)
{
    console_object own = object(S_OWN_CLASS);
    for (int r = CONSOLE_HOMEROOM_TEACHER; r <= CONSOLE_PROVINCE_OFFICER; r++) {
        console_person p = person((console_role)r);
        CHECK_INT(console_may(&p, CONSOLE_SIGN_OFF_RETURN, &own), r == CONSOLE_TOWNSHIP_OFFICER);
    }
}

BX_TEST(scope_unknown_places_never_match)
{
    console_person p = person(CONSOLE_PRINCIPAL);
    console_object o = object(S_OWN_CLASS);
    o.school_id = NULL;
    CHECK(!console_may(&p, CONSOLE_VIEW_STUDENT, &o));
    o.school_id = "";
    CHECK(!console_may(&p, CONSOLE_VIEW_STUDENT, &o));
    console_person nobody = person(CONSOLE_PRINCIPAL);
    nobody.school_id[0] = '\0';
    o = object(S_OWN_CLASS);
    CHECK(!console_may(&nobody, CONSOLE_VIEW_STUDENT, &o));
    CHECK(!console_may(NULL, CONSOLE_VIEW_STUDENT, &o));
    CHECK(!console_may(&p, CONSOLE_VIEW_STUDENT, NULL));
    console_person none = person(CONSOLE_ROLE_NONE);
    CHECK(!console_may(&none, CONSOLE_VIEW_AGGREGATE, &o));
    /* a homeroom teacher's class id at another school does not reach that school's class */
    console_person t = person(CONSOLE_HOMEROOM_TEACHER);
    console_object elsewhere = {CONSOLE_OBJ_STUDENT, "S9", "A1", "B", "520122001", "520122", NULL};
    CHECK(!console_may(&t, CONSOLE_VIEW_STUDENT, &elsewhere));
    /* a city officer's prefix must be 4 digits, a province's 2 */
    console_person c = person(CONSOLE_CITY_OFFICER);
    snprintf(c.area_code, sizeof(c.area_code), "520");
    console_object county = object(COUNTY_OWN);
    CHECK(!console_may(&c, CONSOLE_VIEW_AGGREGATE, &county));
}

BX_TEST(scope_role_names)
{
    CHECK_INT(console_role_parse("county_officer"), CONSOLE_COUNTY_OFFICER);
    CHECK_INT(console_role_parse("guardian"), CONSOLE_ROLE_NONE);
    CHECK_INT(console_role_parse(NULL), CONSOLE_ROLE_NONE);
    CHECK_STR(console_role_name(CONSOLE_PROVINCE_OFFICER), "province_officer");
    CHECK_STR(console_role_label(CONSOLE_HOMEROOM_TEACHER), "班主任");
    /* a stored owner role as shown: its label, else the stored text itself */
    CHECK_STR(console_role_label_of("county_officer"), "县教体局");
    CHECK_STR(console_role_label_of("guardian"), "guardian");
    CHECK_STR(console_role_label_of(""), "");
    CHECK_STR(console_role_label_of(NULL), "");
}
