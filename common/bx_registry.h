/* bx_registry: the in-memory copy of the registry that hot paths read (schools, classes, students
 * and their calendars), loaded from PostgreSQL. Holds no names, id numbers or flags. */
#ifndef BX_REGISTRY_H
#define BX_REGISTRY_H

#include "bx_calendar.h"
#include "bx_status.h"

#include <libpq-fe.h>

#define BX_ID_MAX 32

typedef enum bx_stage { BX_STAGE_PRIMARY, BX_STAGE_JUNIOR, BX_STAGE_NINE_YEAR } bx_stage;

typedef struct bx_reg_school {
    char id[BX_ID_MAX + 1];
    char township_code[10];
    char county_code[7];
    bx_stage stage;
    const bx_calendar *calendar; /* borrowed from the registry */
} bx_reg_school;

typedef struct bx_reg_student bx_reg_student;

typedef struct bx_reg_class {
    char id[BX_ID_MAX + 1];
    const bx_reg_school *school;
    int grade;
    char homeroom_staff_id[BX_ID_MAX + 1];
    const bx_reg_student **students; /* enrolled students, sorted by id */
    int student_count;
} bx_reg_class;

struct bx_reg_student {
    char id[BX_ID_MAX + 1];
    const bx_reg_school *school;
    const bx_reg_class *klass;
    char status[16]; /* enrolled, transferred_out, suspended, ... */
};

typedef struct bx_registry bx_registry;

/* Loads the whole registry in one snapshot: the caller's transaction when one is open, else a
 * REPEATABLE READ one of its own. Caller frees. */
bx_status bx_registry_load(PGconn *db, bx_registry **out, bx_error *err) BX_MUSTCHECK;
void bx_registry_free(bx_registry *r);
/* A registry holding the school calendars alone (no schools, classes or students), for tools that
 * need only school days (bxctl report's roll-call rate): bx_registry_calendar finds them. Runs in
 * the caller's transaction when one is open, else in its own. Caller frees. */
bx_status bx_registry_load_calendars(PGconn *db, bx_registry **out, bx_error *err) BX_MUSTCHECK;
/* The registry's revision as loaded, and the current one in the database. */
long long bx_registry_loaded_revision(const bx_registry *r);
bx_status bx_registry_current_revision(PGconn *db, long long *out, bx_error *err) BX_MUSTCHECK;
/* Marks the registry changed (registry.revision + 1), in the caller's transaction when one is
 * open: every service holding it in memory (or its credentials or staff) loads it again. */
bx_status bx_registry_revision_bump(PGconn *db, bx_error *err) BX_MUSTCHECK;

/* Lookups; NULL when unknown. Results are borrowed until bx_registry_free. */
const bx_reg_school *bx_registry_school(const bx_registry *r, const char *id);
const bx_reg_class *bx_registry_class(const bx_registry *r, const char *id);
const bx_reg_student *bx_registry_student(const bx_registry *r, const char *id);
const bx_calendar *bx_registry_calendar(const bx_registry *r, const char *id);
size_t bx_registry_student_count(const bx_registry *r);

/* ---- a registry built in memory, without PostgreSQL (tests, fuzz targets) ---- */

typedef struct bx_registry_calendar_def {
    const char *id;
    bx_calendar *calendar; /* ownership passes to the registry (also on failure) */
} bx_registry_calendar_def;

typedef struct bx_registry_school_def {
    const char *id;
    const char *township_code;
    const char *county_code; /* NULL: the township code's first six digits */
    bx_stage stage;
    const char *calendar_id; /* NULL: none */
} bx_registry_school_def;

typedef struct bx_registry_class_def {
    const char *id;
    const char *school_id;
    int grade;
    const char *homeroom_staff_id; /* NULL or "": none */
} bx_registry_class_def;

typedef struct bx_registry_student_def {
    const char *id;
    const char *class_id; /* NULL: in no class */
    const char *status;   /* "enrolled", "transferred_out", ... */
} bx_registry_student_def;

typedef struct bx_registry_def {
    long long revision;
    const bx_registry_calendar_def *calendars;
    size_t calendar_count;
    const bx_registry_school_def *schools;
    size_t school_count;
    const bx_registry_class_def *classes;
    size_t class_count;
    const bx_registry_student_def *students; /* any order: class lists are sorted here */
    size_t student_count;
} bx_registry_def;

/* Builds a registry from def, as bx_registry_load builds it from the database: a class's student
 * list holds its enrolled students, sorted by id. Takes ownership of def's calendars; every string
 * is copied. BX_EINVAL names an id that is not a registry id, repeated, or refers to no calendar,
 * school or class of def. Caller frees *out with bx_registry_free. */
bx_status bx_registry_from_def(const bx_registry_def *def, bx_registry **out,
                               bx_error *err) BX_MUSTCHECK;

/* True when id is a registry id: 1 to 32 of [A-Za-z0-9_-]. */
int bx_id_valid(const char *id);

#endif
