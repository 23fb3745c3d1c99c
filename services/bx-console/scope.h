/* bx-console scope: who a signed-in person is, and the one pure function that decides what they
 * may do to which object. No I/O here: tests/unit/test_console_scope.c checks it from a table. */
#ifndef CONSOLE_SCOPE_H
#define CONSOLE_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#define CONSOLE_ID_MAX      32 /* registry ids: 1-32 of A-Z a-z 0-9 _ - */
#define CONSOLE_NAME_MAX    192
#define CONSOLE_MAX_CLASSES 16 /* classes one homeroom teacher holds; more are not loaded */

typedef enum console_role {
    CONSOLE_ROLE_NONE = 0,
    CONSOLE_HOMEROOM_TEACHER, /* 班主任: school_id, class_ids */
    CONSOLE_SUBJECT_TEACHER,  /* 科任教师: school_id */
    CONSOLE_PRINCIPAL,        /* 校长: school_id */
    CONSOLE_ACADEMIC_OFFICE,  /* 教务处: school_id */
    CONSOLE_TOWNSHIP_OFFICER, /* 乡镇: township_code (and its county_code) */
    CONSOLE_COUNTY_OFFICER,   /* 县教体局: county_code */
    CONSOLE_CITY_OFFICER,     /* 市教育局: area_code, 4 digits (the counties' code prefix) */
    CONSOLE_PROVINCE_OFFICER  /* 省教育厅: area_code, 2 digits */
} console_role;

/* A signed-in staff member, loaded from registry.staff (and registry.class for the classes a
 * homeroom teacher holds) when the session is checked. Plain data, copied freely. Fields that do
 * not apply to the role are "". */
typedef struct console_person {
    char staff_id[CONSOLE_ID_MAX + 1];
    char name[CONSOLE_NAME_MAX + 1]; /* registry text: always escape it */
    console_role role;
    char school_id[CONSOLE_ID_MAX + 1]; /* school roles */
    char township_code[10];             /* township officers; school roles: their school's */
    char county_code[7];                /* county officers; townships and schools: theirs */
    char area_code[7];                  /* city (4 digits) and province (2) officers; "" else */
    size_t nclasses;                    /* homeroom teacher: registry.class.homeroom_staff_id */
    char class_ids[CONSOLE_MAX_CLASSES][CONSOLE_ID_MAX + 1];
} console_person;

typedef enum console_action {
    CONSOLE_VIEW_STUDENT,     /* a student without personal data: id, class, today's state,
                                 streak, tier; for a class object: its list of students */
    CONSOLE_VIEW_PERSONAL,    /* names, guardians, phones, flags, case history (audited) */
    CONSOLE_WRITE_ATTENDANCE, /* roll call, period absence, leave (student or class) */
    CONSOLE_WRITE_ACTION,     /* case actions: contact, home visit, letter, report */
    CONSOLE_SIGN_OFF_RETURN,  /* 复学报告书: the township's signature that closes a case */
    CONSOLE_VIEW_AGGREGATE,   /* counts and rates of a class, school or area: no names */
    CONSOLE_MANAGE_ACCOUNTS   /* nobody in the console for now: operators use bxctl staff */
} console_action;

typedef enum console_object_kind {
    CONSOLE_OBJ_STUDENT,
    CONSOLE_OBJ_CLASS,
    CONSOLE_OBJ_SCHOOL,
    CONSOLE_OBJ_TOWNSHIP,
    CONSOLE_OBJ_COUNTY,
    CONSOLE_OBJ_AREA /* a city (4 digits) or province (2 digits): area_code */
} console_object_kind;

/* What an object is and where it sits; every field the kind implies must be filled from the
 * registry (a student: its class, school, township and county), others may be NULL. A NULL or
 * empty field never matches. Borrowed for the call. */
typedef struct console_object {
    console_object_kind kind;
    const char *student_id;
    const char *class_id;
    const char *school_id;
    const char *township_code;
    const char *county_code;
    const char *area_code; /* CONSOLE_OBJ_AREA only */
} console_object;

/* May person p do action a to object o? Pure and total: NULL p or o is false.
 * - homeroom teacher: the students and classes they hold (everything but the sign-off);
 *   aggregates of those classes.
 * - subject teacher: the registry does not record which classes a subject teacher teaches, so:
 *   the students of their school without personal data (to report a missed period and see who
 *   is at risk), attendance writes for them, aggregates of their school and its classes.
 * - principal, academic office: their school: students, personal data, attendance, actions,
 *   aggregates.
 * - township officer: the schools of their township: students, personal data, actions, the
 *   return sign-off (only they), aggregates; no attendance.
 * - county officer: the county: students, personal data, actions, aggregates; no sign-off.
 * - city and province officers: aggregates only, of schools, townships, counties and areas
 *   under their code prefix; never a student or a class.
 * Callers answer false with 404, exactly as for a student that does not exist. */
bool console_may(const console_person *p, console_action a, const console_object *o);

/* "homeroom_teacher" <-> CONSOLE_HOMEROOM_TEACHER; CONSOLE_ROLE_NONE when unknown. */
console_role console_role_parse(const char *name);
const char *console_role_name(console_role r);
/* The role in Chinese for the header: "班主任". */
const char *console_role_label(console_role r);
/* The label of the role called name (a stored owner role, "county_officer": "县教体局"); name
 * itself when it names no role, "" for NULL. Borrowed from the table or from name. */
const char *console_role_label_of(const char *name);

#endif
