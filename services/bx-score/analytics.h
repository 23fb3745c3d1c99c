/* analytics: the messages bx-score publishes: an assessment on bx.risk.v1 and its pseudonymised
 * copy on bx.analytics.risk.v1 (no student id, no class, no registry flags), and the daily
 * attendance aggregates of bx.analytics.attendance.v1 (counts only, small cells suppressed). */
#ifndef SCORE_ANALYTICS_H
#define SCORE_ANALYTICS_H

#include "bx_buf.h"
#include "bx_pseudonym.h"
#include "recompute.h"

#define SCORE_RISK_ID_SIZE 129 /* an event id of bx.risk.v1 and a NUL */

/* The assessment's event id: the same state of the same student on the same date gives the same
 * id, so an assessment published again after a crash is a duplicate downstream can drop.
 * "risk:<student>:<date>:<streak>:<streak start>:<tier>:<periods>:<trigger>". */
void score_risk_event_id(const score_outcome *o, char out[SCORE_RISK_ID_SIZE]);
/* Appends the bx.risk.v1 message of an outcome with a trigger (o->student set). */
bx_status score_risk_message(const score_outcome *o, bx_time_ms assessed_at,
                             bx_buf *out) BX_MUSTCHECK;
/* Appends the bx.analytics.risk.v1 message: subject and event id are pseudonyms (bx_pseudonym)
 * under key; the
 * score is the attendance factors' points only (profile points would reveal that flags exist). */
bx_status score_analytics_message(const score_outcome *o, const char *key, bx_time_ms assessed_at,
                                  bx_buf *out) BX_MUSTCHECK;

/* ===== bx.analytics.attendance.v1: the daily aggregate per class, school, township, county =====
 *
 * A day's aggregate is built from one row per enrolled student (its day state, as score_day_reduce
 * gives it, reduced to the partition below) by score_attendance_aggregate, a pure function.
 * The counts of a place partition its enrolled students:
 *   enrolled = present + late + absent + sick_leave + personal_leave + not_reported,
 *   reported = enrolled - not_reported;
 * unexcused_periods sums the students' unexcused periods (periods, not students).
 * Small cells (so no single child can be singled out):
 *   1. in a class, every count below SCORE_ATT_MIN_CELL (5) is suppressed;
 *   2. in a class, a partition count suppressed alone would follow from enrolled and the others,
 *      so the smallest other partition count is suppressed too; a suppressed not_reported
 *      suppresses reported (and the reverse), as reported = enrolled - not_reported;
 *   3. among the classes of one school, a count suppressed in exactly one class would follow from
 *      the school's count, so it is suppressed in a second class (the smallest shown), or, when
 *      the school has no second class showing it, in the school's own row; likewise a school's
 *      count suppressed alone among its township's schools;
 *   4. counties are never suppressed.
 * Rules 2 and 3 repeat until nothing changes. */

#define SCORE_ATT_MIN_CELL 5

typedef enum score_att_state {
    SCORE_ATT_PRESENT = 0, /* attended, not late (early leave included) */
    SCORE_ATT_LATE,
    SCORE_ATT_ABSENT,
    SCORE_ATT_SICK_LEAVE,
    SCORE_ATT_PERSONAL_LEAVE,
    SCORE_ATT_NOT_REPORTED
} score_att_state;

typedef enum score_att_count {
    SCORE_ATT_ENROLLED = 0,
    SCORE_ATT_REPORTED,
    SCORE_ATT_N_PRESENT,
    SCORE_ATT_N_LATE,
    SCORE_ATT_N_ABSENT,
    SCORE_ATT_N_SICK_LEAVE,
    SCORE_ATT_N_PERSONAL_LEAVE,
    SCORE_ATT_N_NOT_REPORTED,
    SCORE_ATT_UNEXCUSED_PERIODS,
    SCORE_ATT_COUNTS
} score_att_count;

/* "enrolled", "reported", "present", ... as the schema names them. */
const char *score_att_count_name(score_att_count c);

/* The partition state of one student's day (state SCORE_DAY_NO_SCHOOL is not asked). */
score_att_state score_att_state_of(const score_day *day, score_leave_kind leave_kind);

/* One enrolled student's day; strings borrowed for the call. */
typedef struct score_att_student {
    const char *class_id, *school_id, *township_code, *county_code;
    int grade;
    score_att_state state;
    int unexcused_periods;
} score_att_student;

typedef enum score_att_level {
    SCORE_ATT_CLASS = 0,
    SCORE_ATT_SCHOOL,
    SCORE_ATT_TOWNSHIP,
    SCORE_ATT_COUNTY
} score_att_level;
const char *score_att_level_name(score_att_level l);

typedef struct score_att_place {
    score_att_level level;
    char code[33];          /* the place code: class id, school id, township or county code */
    char school_id[33];     /* "" above a school */
    char township_code[10]; /* "" for a county */
    char county_code[7];
    int grade;  /* a class's; 0 above */
    int parent; /* index of the place above, -1 for a county */
    int counts[SCORE_ATT_COUNTS];
    bool suppressed[SCORE_ATT_COUNTS];
} score_att_place;

/* Aggregates n students (any order) of one day: *places (caller frees with free()) gets *count
 * places sorted by (level descending, code): counties, townships, schools, classes, with the small
 * cells suppressed. BX_EINVAL names a student row with a missing or overlong code, or a class
 * given under two schools; BX_ENOMEM. */
bx_status score_attendance_aggregate(const score_att_student *students, size_t n,
                                     score_att_place **places, size_t *count,
                                     bx_error *err) BX_MUSTCHECK;

#define SCORE_ATT_DIGEST_SIZE 17 /* 16 hex digits and a NUL */
/* The first 16 hex digits of the SHA-256 of a place's counts and suppressions: the same counts
 * give the same digest, so a day is published again only when it changed. */
void score_attendance_digest(const score_att_place *p, char out[SCORE_ATT_DIGEST_SIZE]);
/* Appends the bx.analytics.attendance.v1 message of place p on date. */
bx_status score_attendance_message(const score_att_place *p, bx_date date, bx_time_ms computed_at,
                                   bx_buf *out) BX_MUSTCHECK;

#endif
