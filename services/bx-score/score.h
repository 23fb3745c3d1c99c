/* score: bx-score's decisions as plain functions (attendance facts to streaks, windows and an
 * explainable risk score), with no Kafka, Redis or PostgreSQL in them. */
#ifndef SCORE_H
#define SCORE_H

#include "bx_calendar.h"
#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ===== Rules (the decisions this module makes; tests/unit/test_score.c holds them as tables) =====
 *
 * Facts. A student's attendance is a set of facts, one per slot (date, period); period 0 is the
 * whole day. When two facts claim one slot, the one that sorts last by (recorded_at, event_id,
 * status) wins: a total order independent of arrival, so any arrival order, repeats included,
 * ends in the same set, and a correction (a roll call sent again, recorded later) replaces the
 * fact it corrects. Leave requests are kept one per event id, the same way.
 *
 * A school day's state (score_day_reduce), from its facts, the class's roll calls and the
 * approved leave covering it:
 *   - a day is excused (leave) when approved leave covers all of it, or its whole-day fact is
 *     leave, unless a late or early_leave fact (whole day or period) shows the child at school. A
 *     plain "present" does not override leave: a roll call says "present" of every student it
 *     does not list, so a teacher who left out a child on approved leave has not seen the child;
 *   - otherwise the whole-day fact decides: present, late or early_leave are attended days;
 *     absent is an unexcused absence, unless a period fact shows the child at school that day
 *     (then the day is late: the child came after the roll call);
 *   - without a whole-day fact, the period facts decide: any attended period makes the day
 *     attended (late if a period was late); otherwise an unexcused absent period makes the day an
 *     unexcused absence (a class that takes roll call every period reports every period); a day
 *     of excused periods only is leave;
 *   - implied presence (score_class_days.implies_presence): where the service does not store the
 *     presences a roll call implies, a roll call of the class stands for a "present" fact of
 *     every slot (whole day or period) it covers that holds no fact of the student, unless it
 *     listed the student (score_class_listing: that student's own fact is still to come);
 *   - a day with no fact (and none implied) is "not reported" when the class did not report its
 *     roll call, and "no record" when it did but holds no fact of the student (enrolled later, or
 *     a fact still in flight). Both are neither presence nor absence;
 *   - a leave covers a whole day when it runs from the day's start (first_period 0 or 1) to its
 *     end (last_period 0 or 12); a leave that covers only part of a day excuses those periods, but
 *     a whole-day absence on that day stays unexcused (the child did not come back);
 *   - unexcused periods of a day are absent period facts that no approved leave, period leave fact
 *     or whole-day leave excuses (0 on a day whose state is leave); a whole-day absence does not
 *     count periods (the streak covers it);
 *   - facts dated on days that are not school days (weekends, holidays, vacations, closures, as
 *     the calendar says now) are kept but count for nothing; make-up workdays are school days.
 *
 * Streak: consecutive school days of unexcused full-day absence, read backwards from the latest
 * school day on or before as_of. An absence extends it; an attended day (present, late,
 * early_leave) ends it; leave, not-reported and no-record days neither extend nor end it. It counts
 * school days only, and vacations are not school days, so a child absent at the end of the spring
 * term and still absent on the first day of the autumn term continues one streak: the ladder must
 * not forget a child over the summer.
 *
 * Windows: the last window.school_days (20) school days up to as_of cross vacations and terms; the
 * term window runs from the first day of the term holding the latest school day to that day and
 * never crosses a term boundary. In a vacation both windows end at the last school day before it.
 * Attendance rate = attended days / reported days, where reported days are attended + unexcused
 * absence + leave days (not-reported and no-record days are left out): any absence, excused or
 * not, lowers the rate. Chronic absence (any reason, as in the issue): absence and leave days are
 * at least chronic.percent (10%) of the term's reported days, once the term has at least
 * chronic.min_days (10) reported days.
 *
 * Risk score: the sum of the points of its factors, each from the policy file (score.policy).
 * Attendance factors come from the summary; profile factors from the registry (flags, over-age,
 * transition grade). Sex and ethnicity are never inputs: no structure here has a field for them
 * and the policy loader refuses settings that name them. Three limits, each shown as a factor of
 * negative points so the score stays the sum of its factors:
 *   - absence_rates_once: the 20-day rate, the term rate and chronic absence count the same
 *     missed days; with absence_rates.largest_only only the largest of their points counts;
 *   - flags_capped: registry flags count up to weight.flags_max points together;
 *   - tier_needs_attendance: the profile (flags, over-age, transition year) raises the tier by at
 *     most tier.profile_steps above the tier of the attendance factors alone; its points count up
 *     to one below the bound of the tier above that.
 */

/* ---- facts ---- */

#define SCORE_EVENT_ID_MAX 128 /* bytes, as bx.attendance.v1 allows */
#define SCORE_PERIOD_MAX   12
#define SCORE_FACTS_MAX    16384 /* facts one history holds: years of 12-period days */
#define SCORE_LEAVES_MAX   2048  /* leave requests one history holds */
/* recorded_at must lie in 0..SCORE_TIME_MAX (13 digits: until the year 2286). */
#define SCORE_TIME_MAX 9999999999999LL

typedef enum score_status {
    SCORE_PRESENT = 1,
    SCORE_ABSENT,
    SCORE_LATE,
    SCORE_LEAVE,
    SCORE_EARLY_LEAVE
} score_status;

typedef enum score_leave_kind {
    SCORE_LEAVE_NONE = 0, /* the fact is no leave */
    SCORE_LEAVE_SICK,
    SCORE_LEAVE_PERSONAL
} score_leave_kind;

/* One attendance fact of bx.attendance.v1 (type "attendance"), for one student. */
typedef struct score_fact {
    bx_date date;
    int period;                            /* 0 = the whole day, 1..12 = a lesson period (节) */
    score_status status;                   /* as the schema's status */
    score_leave_kind leave_kind;           /* set exactly when status is SCORE_LEAVE */
    bx_time_ms recorded_at;                /* 0..SCORE_TIME_MAX */
    char event_id[SCORE_EVENT_ID_MAX + 1]; /* 1..128 of [A-Za-z0-9._:-] */
} score_fact;

/* One leave request (type "leave"). Only approved leave excuses absence. */
typedef struct score_leave {
    bx_date first_date;
    bx_date last_date;     /* >= first_date */
    int first_period;      /* 0 = from the start of first_date, else 1..12 */
    int last_period;       /* 0 = to the end of last_date, else 1..12 */
    score_leave_kind kind; /* SICK or PERSONAL */
    bool approved;
    bx_time_ms recorded_at; /* 0..SCORE_TIME_MAX */
    char event_id[SCORE_EVENT_ID_MAX + 1];
} score_leave;

/* BX_OK when f is well formed; BX_EINVAL naming the field otherwise. */
bx_status score_fact_check(const score_fact *f, bx_error *err) BX_MUSTCHECK;
bx_status score_leave_check(const score_leave *l, bx_error *err) BX_MUSTCHECK;

/* Precedence of two facts (of one slot): <0, 0, >0 as a sorts before, equal to, after b, by
 * (recorded_at, event_id, status, leave kind). The later one wins its slot. */
int score_fact_compare(const score_fact *a, const score_fact *b);
/* True when a beats b for their slot. */
bool score_fact_newer(const score_fact *a, const score_fact *b);

/* ---- compact encodings, for keeping a history in a Redis hash ----
 * A fact is stored as field "<date>|<period>" with value "<recorded_at>,<event_id>,<status>":
 * recorded_at zero-padded to 13 digits, status one of p (present), a (absent), t (late),
 * e (early_leave), ls (sick leave), lp (personal leave). Example: field "2026-03-09|0", value
 * "1773015665000,rc-20260309-7-2:stu-0001234,a". The byte order of two values (memcmp/strcmp) is
 * exactly their precedence, so a script may keep the greater value. (Lua's string < uses strcoll:
 * compare in the C locale or byte by byte.)
 * A leave is stored under its event id with value
 * "<recorded_at>,<first_date>,<first_period>,<last_date>,<last_period>,<s|p>,<0|1 approved>".
 * Every encoder writes a NUL-terminated string and fails with BX_EINVAL when the input is not
 * well formed; decoders are strict (whole string, canonical form) and name what is wrong. */
#define SCORE_SLOT_SIZE        16  /* "2026-03-09|12" and a NUL */
#define SCORE_FACT_VALUE_SIZE  146 /* 13 + 1 + 128 + 1 + 2 and a NUL */
#define SCORE_LEAVE_VALUE_SIZE 48

/* The status code of a fact's value: "p", "a", "t", "e", "ls" or "lp" (a leave of no kind: "ls";
 * "?" for no status). */
const char *score_status_code(score_status s, score_leave_kind k);
void score_fact_slot(const score_fact *f, char out[SCORE_SLOT_SIZE]);
bx_status score_fact_encode(const score_fact *f, char out[SCORE_FACT_VALUE_SIZE],
                            bx_error *err) BX_MUSTCHECK;
bx_status score_fact_decode(const char *slot, const char *value, score_fact *out,
                            bx_error *err) BX_MUSTCHECK;
bx_status score_leave_encode(const score_leave *l, char out[SCORE_LEAVE_VALUE_SIZE],
                             bx_error *err) BX_MUSTCHECK;
bx_status score_leave_decode(const char *event_id, const char *value, score_leave *out,
                             bx_error *err) BX_MUSTCHECK;

/* ---- a student's history: the winning fact of every slot, and every leave request ---- */

typedef struct score_history {
    score_fact *facts; /* sorted by (date, period), one per slot; read-only for callers */
    size_t nfacts;
    size_t facts_cap;
    score_leave *leaves; /* sorted by event_id, one per event id; read-only for callers */
    size_t nleaves;
    size_t leaves_cap;
} score_history;

/* Caller frees with score_history_free; NULL when out of memory. */
score_history *score_history_new(void);
void score_history_free(score_history *h);
/* Empties h, keeping its memory. */
void score_history_reset(score_history *h);
/* Inserts f, or replaces the fact of its slot when f is newer; *changed (may be NULL) says
 * whether h changed. Applying an older or identical fact changes nothing. BX_EINVAL for a bad
 * fact, BX_ENOMEM past SCORE_FACTS_MAX; h is unchanged on error. f is copied. */
bx_status score_history_apply_fact(score_history *h, const score_fact *f, bool *changed,
                                   bx_error *err) BX_MUSTCHECK;
/* The same for a leave request, keyed by its event id (past SCORE_LEAVES_MAX: BX_ENOMEM). */
bx_status score_history_apply_leave(score_history *h, const score_leave *l, bool *changed,
                                    bx_error *err) BX_MUSTCHECK;
/* The fact of a slot, or NULL; borrowed until h next changes. */
const score_fact *score_history_find(const score_history *h, bx_date date, int period);
/* Drops facts dated before keep_from and leave requests ending before it (history older than the
 * previous term counts for nothing but a streak reaching that far back). */
void score_history_prune(score_history *h, bx_date keep_from);

/* A roll call's slot that implies no presence for the student whose days are reduced: it listed
 * the student (class_report's "listed": absent, on leave, late, left early, or an entry it
 * refused; their own facts say what they were), or it listed too many to name ("*": no one).
 * Until such a student's fact arrives the slot is "no record" for them, so a report read before a
 * child's absence never makes the child present. */
typedef struct score_class_listing {
    bx_date date;
    unsigned slots; /* bit 0 the whole day, bit p period p */
} score_class_listing;

/* The roll calls of the student's class (class_report), over the days the student belonged to
 * it: the caller leaves out days before the student joined (with implies_presence they would read
 * as present). */
typedef struct score_class_days {
    const bx_date *dates; /* sorted ascending, no repeats (score_class_days_normalize); borrowed */
    const uint16_t *periods; /* NULL, or beside dates: bit 0 a whole-day roll call, bit p one of
                                period p; NULL means whole-day roll calls only */
    size_t count;
    bool implies_presence; /* presences the roll calls imply are not in the history */
    /* The roll calls that imply no presence for this student, each sorted by date (NULL, 0: none;
     * reports from before the lists name no one): those that listed the student, and those that
     * listed too many to name anyone. Borrowed. */
    const score_class_listing *listed;
    size_t nlisted;
    const score_class_listing *unnamed;
    size_t nunnamed;
} score_class_days;

/* Sorts dates (with their period masks when periods is not NULL) and merges repeats in place,
 * OR-ing their masks; returns the new count. Linear on sorted input. */
size_t score_class_days_normalize(bx_date *dates, uint16_t *periods, size_t count);
/* The roll calls of a day: bit 0 whole day, bit p period p; 0 when the class did not report. days
 * may be NULL. */
unsigned score_class_days_on(const score_class_days *days, bx_date d);
/* The roll calls of day d that vouch for the student's presence: score_class_days_on without
 * days->listed's and days->unnamed's slots of d. */
unsigned score_class_days_vouched(const score_class_days *days, bx_date d);
/* The next id of a report's list ("id id ...", single spaces) at or after *at: its first byte, its
 * length in *len, *at moved past it; NULL when no id is left. "*" is not a list (it names no one).
 */
const char *score_listed_next(const char **at, size_t *len);
/* School days in [from, to] the class did not report: the count the school is asked about. */
int score_class_unreported_days(const bx_calendar *cal, const score_class_days *days, bx_date from,
                                bx_date to);

/* ---- policy (deploy/policy/score.policy) ---- */

typedef struct score_policy {
    int window_school_days;        /* window.school_days: the recent window, 20 */
    int rate_min_days;             /* rate.min_days: reported days before a rate gives points */
    int rate_20d_low_percent;      /* rate_20d.low_percent: 90 */
    int rate_20d_very_low_percent; /* rate_20d.very_low_percent: 80 */
    int rate_term_low_percent;     /* rate_term.low_percent: 90 */
    int chronic_percent;           /* chronic.percent: 10 */
    int chronic_min_days;          /* chronic.min_days: 10 */
    int periods_alert_threshold;   /* periods_alert_threshold: 4 */
    int late_min_days;             /* late_20d.min_days: 5 */
    int grade1_age;                /* over_age.grade1_age: usual age on 1 September in grade 1 */
    int over_age_min_years;        /* over_age.min_years: 2 */
    int transition_grades;         /* transition_grades: bit g set for grade g (1..9) */

    int w_streak_per_day; /* weight.streak_per_day */
    int w_streak_max;     /* weight.streak_max */
    int w_rate_20d_low;
    int w_rate_20d_very_low;
    int w_rate_term_low;
    int w_chronic_absence;
    int w_unexcused_periods_today;
    int w_late_20d;
    int w_over_age;
    int w_transition_year;

    int f_registered_poor; /* flag.<name>: points of each registry flag */
    int f_minimum_subsistence;
    int f_extreme_poverty;
    int f_orphan;
    int f_disability; /* once, for any of the four disability flags */
    int f_left_behind;
    int f_single_parent;
    int f_migrant;
    int f_learning_difficulty;
    int f_wavering;
    int f_earlier_dropout;
    int f_monastery;

    int tier_medium; /* score >= tier_medium: medium, and so on; medium < high < critical */
    int tier_high;
    int tier_critical;

    /* Limits that keep one piece of evidence from counting several times (see score_assess). */
    int rates_largest_only; /* absence_rates.largest_only: 1 = the 20-day rate, the term rate
                               and chronic absence give only the largest of their points */
    int w_flags_max;        /* weight.flags_max: registry flags count up to this many points */
    int tier_profile_steps; /* tier.profile_steps: tiers the profile may add to attendance's */
} score_policy;

/* The built-in defaults, identical to deploy/policy/score.policy. */
void score_policy_default(score_policy *out);
/* Reads a policy file in bx_policyfile's format: lines "name = value", "#" comments on their own
 * lines, blank lines. Settings the file leaves out keep their default; a setting given twice, an
 * unknown one, a bad or out-of-range value, or tiers out of order are errors naming file and line:
 * "score.policy:12: unknown setting foo" (BX_EINVAL; a missing file BX_ENOTFOUND). All or nothing:
 * *out is written only on success. */
bx_status score_policy_load(const char *path, score_policy *out, bx_error *err) BX_MUSTCHECK;
/* The same from memory; name stands for the file in messages. */
bx_status score_policy_parse(const char *text, size_t len, const char *name, score_policy *out,
                             bx_error *err) BX_MUSTCHECK;

/* ---- days and summaries ---- */

typedef enum score_day_state {
    SCORE_DAY_NO_SCHOOL = 0, /* not a school day */
    SCORE_DAY_NOT_REPORTED,  /* no fact, and the class did not report its roll call */
    SCORE_DAY_NO_RECORD,     /* no fact, though the class reported */
    SCORE_DAY_PRESENT,
    SCORE_DAY_LATE,
    SCORE_DAY_EARLY_LEAVE,
    SCORE_DAY_LEAVE, /* excused */
    SCORE_DAY_ABSENT /* unexcused full-day absence (旷课) */
} score_day_state;

/* "present", "late", "early_leave", "leave", "absent", "not_reported", "no_record", "no_school". */
const char *score_day_state_name(score_day_state s);

typedef struct score_day {
    bx_date date;
    score_day_state state;
    int unexcused_periods; /* 0..12 */
    bool late;             /* a late arrival that day (whole day or a period) */
} score_day;

/* The kind of a leave day: the whole-day leave fact's, else that of an approved leave request
 * covering d, else a period leave fact's; SCORE_LEAVE_PERSONAL when none says. */
score_leave_kind score_day_leave_kind(const score_history *h, bx_date d);

/* Reduces one day (rules at the top). reported may be NULL: no class report is known. */
void score_day_reduce(const bx_calendar *cal, const score_history *h,
                      const score_class_days *reported, bx_date d, score_day *out);

typedef struct score_counts {
    int school_days;       /* school days in the range */
    int attended_days;     /* present, late or early_leave */
    int late_days;         /* attended days with a late arrival */
    int absent_days;       /* unexcused full-day absence */
    int leave_days;        /* excused */
    int not_reported_days; /* the class did not report and the student has no fact */
    int no_record_days;    /* the class reported, the student has no fact */
} score_counts;

/* attended + absent + leave: the days a rate is taken over. */
int score_counts_reported(const score_counts *c);
/* attended / reported in 0..1; 1 when no day is reported (no evidence of absence). */
double score_counts_rate(const score_counts *c);

typedef struct score_summary {
    bx_date as_of;
    bx_date
        last_school_day; /* latest school day <= as_of; BX_DATE_NONE when the calendar has none */
    score_day today;     /* as_of itself (state NO_SCHOOL when it is no school day) */
    int streak_days;
    bx_date streak_start;  /* first absent day of the streak; BX_DATE_NONE when streak_days is 0 */
    bx_date streak_last;   /* latest absent day of the streak; BX_DATE_NONE likewise */
    int unexcused_periods; /* on as_of */
    bx_date window_first;  /* first school day of the recent window; BX_DATE_NONE when empty */
    score_counts window;   /* the last window_school_days school days up to last_school_day */
    char term[16];         /* code of the term holding last_school_day; "" when none */
    bx_date term_first;
    score_counts term_counts; /* the term's first day to last_school_day */
    double attendance_rate_20d;
    double attendance_rate_term;
    bool chronic_absence;
} score_summary;

/* Summarizes h as of a date (normally today by the service's clock: facts of earlier days that
 * arrive late change the summary of today). reported may be NULL. Reads only; every input is
 * borrowed for the call. */
void score_summarize(const score_policy *p, const bx_calendar *cal, const score_history *h,
                     const score_class_days *reported, bx_date as_of, score_summary *out);

/* ---- risk assessment ---- */

/* Registry flags (registry.student_private.flags). */
enum {
    SCORE_FLAG_REGISTERED_POOR = 1u << 0,         /* 建档立卡贫困户 */
    SCORE_FLAG_MINIMUM_SUBSISTENCE = 1u << 1,     /* 低保户 */
    SCORE_FLAG_EXTREME_POVERTY = 1u << 2,         /* 特困 */
    SCORE_FLAG_ORPHAN = 1u << 3,                  /* 孤儿 */
    SCORE_FLAG_DISABILITY_SIGHT = 1u << 4,        /* 残疾: 视力 */
    SCORE_FLAG_DISABILITY_HEARING = 1u << 5,      /* 听力 */
    SCORE_FLAG_DISABILITY_INTELLECTUAL = 1u << 6, /* 智力 */
    SCORE_FLAG_DISABILITY_OTHER = 1u << 7,
    SCORE_FLAG_LEFT_BEHIND = 1u << 8,          /* 留守儿童 */
    SCORE_FLAG_SINGLE_PARENT = 1u << 9,        /* 单亲 */
    SCORE_FLAG_MIGRANT = 1u << 10,             /* 流动人口子女 */
    SCORE_FLAG_LEARNING_DIFFICULTY = 1u << 11, /* 学困生 */
    SCORE_FLAG_WAVERING = 1u << 12,            /* 动摇生 */
    SCORE_FLAG_EARLIER_DROPOUT = 1u << 13,
    SCORE_FLAG_MONASTERY = 1u << 14 /* 入寺 */
};
#define SCORE_FLAG_DISABILITY_ANY                                                                  \
    (SCORE_FLAG_DISABILITY_SIGHT | SCORE_FLAG_DISABILITY_HEARING |                                 \
     SCORE_FLAG_DISABILITY_INTELLECTUAL | SCORE_FLAG_DISABILITY_OTHER)
#define SCORE_FLAG_ALL ((1u << 15) - 1)

/* The bit of a registry flag name ("left_behind"), BX_ENOTFOUND for any other name. */
bx_status score_flag_from_name(const char *name, unsigned *bit) BX_MUSTCHECK;
const char *score_flag_name(unsigned bit); /* NULL unless exactly one known bit */

/* What the registry says about the student. Deliberately no sex and no ethnicity. */
typedef struct score_profile {
    unsigned flags;     /* SCORE_FLAG_* */
    int grade;          /* 1..9, 0 when unknown */
    bx_date birth_date; /* BX_DATE_NONE when unknown */
} score_profile;

typedef enum score_tier {
    SCORE_TIER_LOW = 0,
    SCORE_TIER_MEDIUM,
    SCORE_TIER_HIGH,
    SCORE_TIER_CRITICAL
} score_tier;
const char *score_tier_name(score_tier t); /* "low", "medium", "high", "critical" */
bx_status score_tier_from_name(const char *name, score_tier *out) BX_MUSTCHECK;

/* Where a factor comes from: attendance factors may go to the pseudonymised analytics stream;
 * profile factors (registry flags, over-age, transition grade) never do. */
typedef enum score_source { SCORE_SOURCE_ATTENDANCE = 1, SCORE_SOURCE_PROFILE } score_source;

#define SCORE_FACTORS_MAX 32
#define SCORE_DETAIL_SIZE 160

typedef struct score_factor {
    char factor[32]; /* "streak_days", "attendance_rate_20d", "left_behind", ... */
    int points;      /* > 0: factors without points are left out */
    score_source source;
    char detail[SCORE_DETAIL_SIZE]; /* "absent 4 school days in a row since 2026-11-23" */
} score_factor;

typedef struct score_assessment {
    int score; /* the sum of the factors' points */
    score_tier tier;
    int nfactors;
    score_factor factors[SCORE_FACTORS_MAX]; /* attendance factors first, then profile */
} score_assessment;

/* Factor names: attendance ones are streak_days, attendance_rate_20d, attendance_rate_term,
 * chronic_absence, absence_rates_once (negative), unexcused_periods_today, late_arrivals_20d;
 * profile ones are the registry flag names (the four disability flags give one factor
 * "disability"), flags_capped (negative), over_age, transition_year and tier_needs_attendance
 * (negative). Every other factor has points > 0. */
void score_assess(const score_policy *p, const score_summary *s, const score_profile *profile,
                  score_assessment *out);
bool score_factor_is_attendance(const char *factor);

/* ---- when to publish ---- */

typedef enum score_trigger {
    SCORE_TRIGGER_NONE = 0,
    SCORE_TRIGGER_STREAK, /* "streak_changed" */
    SCORE_TRIGGER_TIER,   /* "tier_changed" */
    SCORE_TRIGGER_PERIODS /* "periods_threshold" */
} score_trigger;
const char *score_trigger_name(score_trigger t); /* NULL for NONE */

/* What the student's last published assessment said; the service keeps it beside the history. */
typedef struct score_last {
    bx_date date; /* as_of of that assessment */
    int streak_days;
    bx_date streak_start;
    score_tier tier;
    int unexcused_periods;
} score_last;

#define SCORE_LAST_SIZE 48
void score_last_from(const score_summary *s, const score_assessment *a, score_last *out);
/* "2026-03-11,3,2026-03-09,high,6" ("-" for no streak start). */
void score_last_encode(const score_last *l, char out[SCORE_LAST_SIZE]);
bx_status score_last_decode(const char *text, score_last *out, bx_error *err) BX_MUSTCHECK;

/* Whether to publish an assessment, and why, against the last one published (prev NULL: none
 * yet, compared as streak 0, tier low, no periods). Checked in this order: the streak changed
 * (length or first day); the tier changed; unexcused periods on as_of reached
 * periods_alert_threshold and had not on the same date before. */
score_trigger score_should_emit(const score_policy *p, const score_last *prev,
                                const score_summary *s, const score_assessment *a);

#endif
