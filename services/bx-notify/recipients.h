/* recipients: who a request reaches and what its templates are filled with, looked up in the
 * registry (guardians' phones and students' names are readable only by the bx_notify role) and
 * in bx-score's attendance record (days missed this term). */
#ifndef BX_NOTIFY_RECIPIENTS_H
#define BX_NOTIFY_RECIPIENTS_H

#include "bx_calendar.h"
#include "bx_status.h"

#include <libpq-fe.h>
#include <stdbool.h>

#define RECIPIENTS_MAX 8

/* What the registry says around a student (all "" when unknown). */
typedef struct recipients_context {
    char student_id[33];
    char school_id[33];
    char school[101]; /* names, for templates only: never logged */
    char class_name[101];
    char student[65];
    char teacher[65];
    char homeroom_staff_id[33];
    char township_code[10];
    char county_code[7];
    char county[101]; /* the county's name */
    char days_missed_term[12];
} recipients_context;

/* One person to reach. */
typedef struct recipient {
    char address[33];  /* the phone for SMS; the staff id for a task; "none" */
    char masked[33];   /* 138****1234 for a guardian, the staff id for staff */
    char staff_id[33]; /* "" for a guardian */
    char staff_name[65];
    char phone[16]; /* "" when the registry has none */
} recipient;

/* Looks the student up (and their school, class, homeroom teacher, name, and school days missed
 * up to today in the term containing today). BX_ENOTFOUND when the student is not in the
 * registry. */
bx_status recipients_context_load(PGconn *db, const char *student_id, bx_date today,
                                  recipients_context *ctx, bx_error *err) BX_MUSTCHECK;
/* The kinds of place a request without a student names, most specific first. */
typedef enum recipients_place {
    RECIPIENTS_SCHOOL = 0,
    RECIPIENTS_TOWNSHIP,
    RECIPIENTS_COUNTY
} recipients_place;

/* Requests without a student name their place in params instead: this fills ctx from a school
 * (school, township, county), a township (township, county) or a county alone, by its id or code.
 * BX_ENOTFOUND when the registry has no such place. */
bx_status recipients_place_load(PGconn *db, recipients_place kind, const char *key,
                                recipients_context *ctx, bx_error *err) BX_MUSTCHECK;

/* The place a staff role is found by, when a request names no staff member: the student's class
 * for homeroom_teacher, a school for principal and academic_office, a township for
 * township_officer, a county for county_officer. recipients_place_field is the request field
 * that gives it without a student ("student_id", "params.school_id", "params.township_code",
 * "params.county_code"; NULL for a role that is not staff); recipients_place_known is true when
 * ctx holds it. */
const char *recipients_place_field(const char *role);
bool recipients_place_known(const recipients_context *ctx, const char *role);

/* The guardians of ctx's student with a mobile number, distinct numbers, primary first. */
bx_status recipients_guardians(PGconn *db, const recipients_context *ctx, recipient *out, int max,
                               int *count, bx_error *err) BX_MUSTCHECK;
/* Staff: staff_id when given, else everyone of role for the student's school, township or county
 * (the class's homeroom teacher for homeroom_teacher). */
bx_status recipients_staff(PGconn *db, const recipients_context *ctx, const char *role,
                           const char *staff_id, recipient *out, int max, int *count,
                           bx_error *err) BX_MUSTCHECK;
/* One staff member by id, with the name of their school (or township, or county) in
 * place_name. BX_ENOTFOUND when there is none. */
bx_status recipients_staff_by_id(PGconn *db, const char *staff_id, recipient *out, char *place_name,
                                 size_t place_size, bx_error *err) BX_MUSTCHECK;

/* ---- a poll's requests looked up together (requests.c) ---- */

/* A student as one lookup of many returns it: what recipients_context_load and, when asked for,
 * recipients_guardians give. */
typedef struct recipients_student {
    recipients_context ctx;
    recipient guardians[RECIPIENTS_MAX];
    int nguardians;
} recipients_student;

/* recipients_context_load (and recipients_guardians for those with want_guardians[i]) for n
 * distinct student ids in one query: found[i] is false for a student not in the registry (out[i]
 * is then zeroed). The guardians' phones, the names and the days missed are read afresh every
 * time (a name erased or a guardian deleted is never sent to from memory). ids, want_guardians,
 * out and found have n entries; all borrowed for the call. */
bx_status recipients_students_load(PGconn *db, const char *const *ids, const bool *want_guardians,
                                   int n, bx_date today, recipients_student *out, bool *found,
                                   bx_error *err) BX_MUSTCHECK;

/* The registry's places (schools, townships, counties) and staff as requests look them up, held
 * in memory for as long as registry.revision stays where it was (every import moves it): a place
 * or staff list is read from PostgreSQL the first time it is asked for after a change, and then
 * from memory. Holds no student's or guardian's data. One thread at a time. */
typedef struct recipients_cache recipients_cache;

/* Caller frees with recipients_cache_free (NULL does nothing). */
bx_status recipients_cache_new(recipients_cache **out, bx_error *err) BX_MUSTCHECK;
void recipients_cache_free(recipients_cache *c);
/* Reads registry.revision and forgets everything held when it moved (or when more than a limit
 * of entries are held). Called once per poll, before the lookups. */
bx_status recipients_cache_check(recipients_cache *c, PGconn *db, bx_error *err) BX_MUSTCHECK;
/* recipients_place_load and recipients_staff, answered from memory when held. */
bx_status recipients_cache_place(recipients_cache *c, PGconn *db, recipients_place kind,
                                 const char *key, recipients_context *ctx,
                                 bx_error *err) BX_MUSTCHECK;
bx_status recipients_cache_staff(recipients_cache *c, PGconn *db, const recipients_context *ctx,
                                 const char *role, const char *staff_id, recipient *out, int max,
                                 int *count, bx_error *err) BX_MUSTCHECK;

#endif
