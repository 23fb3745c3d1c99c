/* bx-console scope: the one pure decision of who may do what to which object. */
#include "scope.h"

#include <string.h>

static const struct {
    console_role role;
    const char *name, *label;
} roles[] = {
    {CONSOLE_HOMEROOM_TEACHER, "homeroom_teacher", "班主任"},
    {CONSOLE_SUBJECT_TEACHER, "subject_teacher", "科任教师"},
    {CONSOLE_PRINCIPAL, "principal", "校长"},
    {CONSOLE_ACADEMIC_OFFICE, "academic_office", "教务处"},
    {CONSOLE_TOWNSHIP_OFFICER, "township_officer", "乡镇教育干部"},
    {CONSOLE_COUNTY_OFFICER, "county_officer", "县教体局"},
    {CONSOLE_CITY_OFFICER, "city_officer", "市教育局"},
    {CONSOLE_PROVINCE_OFFICER, "province_officer", "省教育厅"},
};

console_role console_role_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(roles[i].name, name) == 0)
            return roles[i].role;
    return CONSOLE_ROLE_NONE;
}

const char *console_role_name(console_role r)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (roles[i].role == r)
            return roles[i].name;
    return "none";
}

const char *console_role_label(console_role r)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (roles[i].role == r)
            return roles[i].label;
    return "";
}

const char *console_role_label_of(const char *name)
{
    console_role r = console_role_parse(name);
    return r != CONSOLE_ROLE_NONE ? console_role_label(r) : name ? name : "";
}

/* Both set, non-empty and equal: an unknown place never matches. */
static bool same(const char *a, const char *b)
{
    return a && b && a[0] && b[0] && strcmp(a, b) == 0;
}

static bool holds_class(const console_person *p, const char *class_id)
{
    for (size_t i = 0; i < p->nclasses && i < CONSOLE_MAX_CLASSES; i++)
        if (same(p->class_ids[i], class_id))
            return true;
    return false;
}

/* The object's code (county for everything below a county, the area itself for an area) starts
 * with the officer's 2- or 4-digit prefix. */
static bool under_area(const char *area, const console_object *o)
{
    size_t n = strlen(area);
    if (n != 2 && n != 4)
        return false;
    const char *code = o->kind == CONSOLE_OBJ_AREA ? o->area_code : o->county_code;
    return code && strlen(code) >= n && strncmp(code, area, n) == 0;
}

static bool is_individual(const console_object *o)
{
    return o->kind == CONSOLE_OBJ_STUDENT || o->kind == CONSOLE_OBJ_CLASS;
}

/* A school role (subject teacher, principal, academic office): nothing outside its school; the
 * school as a whole, aggregates only; one of its students or classes, what the role's rule says
 * (individual). */
static bool school_staff_may(const console_person *p, const console_object *o, bool aggregate,
                             bool individual)
{
    if (!(is_individual(o) || o->kind == CONSOLE_OBJ_SCHOOL) || !same(p->school_id, o->school_id))
        return false;
    if (o->kind == CONSOLE_OBJ_SCHOOL)
        return aggregate;
    return individual;
}

bool console_may(const console_person *p, console_action a, const console_object *o)
{
    if (p == NULL || o == NULL || p->staff_id[0] == '\0')
        return false;
    if (a == CONSOLE_MANAGE_ACCOUNTS)
        return false;
    bool aggregate = a == CONSOLE_VIEW_AGGREGATE;
    switch (p->role) {
    case CONSOLE_HOMEROOM_TEACHER:
        if (!(o->kind == CONSOLE_OBJ_STUDENT || o->kind == CONSOLE_OBJ_CLASS) ||
            !holds_class(p, o->class_id) || !same(p->school_id, o->school_id))
            return false;
        return a != CONSOLE_SIGN_OFF_RETURN;
    case CONSOLE_SUBJECT_TEACHER:
        return school_staff_may(p, o, aggregate,
                                a == CONSOLE_VIEW_STUDENT || a == CONSOLE_WRITE_ATTENDANCE ||
                                    aggregate);
    case CONSOLE_PRINCIPAL:
    case CONSOLE_ACADEMIC_OFFICE:
        return school_staff_may(p, o, aggregate, a != CONSOLE_SIGN_OFF_RETURN);
    case CONSOLE_TOWNSHIP_OFFICER:
        if (o->kind == CONSOLE_OBJ_COUNTY || o->kind == CONSOLE_OBJ_AREA ||
            !same(p->township_code, o->township_code))
            return false;
        if (o->kind == CONSOLE_OBJ_SCHOOL || o->kind == CONSOLE_OBJ_TOWNSHIP)
            return aggregate;
        if (a == CONSOLE_SIGN_OFF_RETURN)
            return o->kind == CONSOLE_OBJ_STUDENT;
        return a != CONSOLE_WRITE_ATTENDANCE;
    case CONSOLE_COUNTY_OFFICER:
        if (o->kind == CONSOLE_OBJ_AREA || !same(p->county_code, o->county_code))
            return false;
        if (!is_individual(o))
            return aggregate;
        return a == CONSOLE_VIEW_STUDENT || a == CONSOLE_VIEW_PERSONAL ||
               a == CONSOLE_WRITE_ACTION || aggregate;
    case CONSOLE_CITY_OFFICER:
    case CONSOLE_PROVINCE_OFFICER:
        if (is_individual(o) || !aggregate)
            return false;
        return under_area(p->area_code, o);
    case CONSOLE_ROLE_NONE:
        return false;
    }
    return false;
}
