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
/* Fills the school's part of ctx from school_id alone (requests without a student). */
bx_status recipients_school_load(PGconn *db, const char *school_id, recipients_context *ctx,
                                 bx_error *err) BX_MUSTCHECK;

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

#endif
