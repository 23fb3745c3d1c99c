/* duties: bx-escalate's calendar-driven duties (控辍保学's term-start check, the transition check,
 * the 15-day report of children out of school and the monthly summary): as policy data and plain
 * functions (which duty falls due when for a term of a school calendar), and as durable timers
 * scheduled and fired over PostgreSQL (finding the children, asking for the reports). Opening a
 * suspected dropout's case is the service's, through a callback. */
#ifndef BX_ESCALATE_DUTIES_H
#define BX_ESCALATE_DUTIES_H

#include "bx_calendar.h"
#include "bx_registry.h"
#include "bx_status.h"
#include "ladder.h"
#include "timers.h"

#include <libpq-fe.h>

#include <stdbool.h>
#include <stddef.h>

#define DUTIES_NAME_SIZE  40
#define DUTIES_GRADES_MAX 4
#define DUTIES_KEY_SIZE   201 /* cases.timer.timer_key: 1..200 */
#define DUTIES_PER_TERM                                                                            \
    48                        /* the term's duties, its months (summaries, school reports) and     \
                                 quarters */
#define DUTIES_PER_DAY     2  /* the day's roll-call checks: morning and end of day */
#define DUTIES_CATCH_UP    5  /* school days gone by whose roll-call checks are caught up */
#define DUTIES_TERM_CODE   17 /* registry.calendar_term.code: 1..16 */
#define DUTIES_CALENDAR_ID 33

/* The file deploy/policy/ladder-duties.policy ("name = value" lines, "#" comments):
 *   duties.time                      HH:MM when a duty falls due on its day (17:00)
 *   term_start.check_after           school days from the term's first day (10): a registered
 *                                    student not seen by then (no presence, lateness, early
 *                                    leave or leave in a reported roll call) is a suspected
 *                                    dropout (疑似辍学)
 *   term_start.stage                 the ladder stage the suspected case enters, or none
 *   transition.terms                 the term codes' suffix when transitions happen (autumn)
 *   transition.check_after           school days from that term's first day (10)
 *   transition.from_grades           grades that leave a school (6: 小升初): a child whose
 *                                    registry status is graduated from such a class and who is
 *                                    enrolled nowhere is a suspected dropout
 *   transition.into_grades           grades entered at a transition (1, 7): their term-start
 *                                    no-shows are named as transition losses
 *   out_of_school_report.after       school days from term start to the report (15)
 *   out_of_school_report.notify      "<role> <template>" asked of bx-notify per county
 *   monthly_summary.notify           "<role> <template>", on the last school day of each month
 * Optional (absent: no roll-call checks), classes that sent no roll call on a school day:
 *   rollcall.remind_time             HH:MM: the homeroom teacher is reminded (10:00)
 *   rollcall.remind                  "<role> <template>" at remind_time (homeroom_teacher)
 *   rollcall.end_of_day              "<role> <template>" at duties.time (principal)
 *   rollcall.two_days                "<role> <template>" at duties.time when the school day
 *                                    before was not reported either (academic_office)
 *   rollcall.missed_day              optional, with the above: "<role> <template>" for a school
 *                                    day whose checks ran only after it was over (the clock or
 *                                    the service passed it), asked as a task for the digest, not
 *                                    an SMS (principal); without it such a day is only logged
 *   rollcall.missed_two_days         the same for two days in a row (academic_office)
 * Optional (absent: no reports upward), the 四个一 reports, each at duties.time on its school day,
 * "<role> <template|none>" (the office that makes it; none: no message, the report is kept for
 * bx-console and bxctl only; city and province officers are not in the registry's staff, so
 * bx-notify cannot reach them and their template must be none):
 *   upward.school_monthly            each school's report of the month to the county, on the
 *                                    month's last school day in the term (academic_office)
 *   upward.county_quarterly          each county's report of the quarter, on the calendar's last
 *                                    school day of the quarter (county_officer)
 *   upward.city_term                 each city's report of the term, on its last school day
 *   upward.province_yearly           each province's report of the school year, on the last
 *                                    school day of the term that ends it
 *   upward.year_ends                 the term code suffix of the term ending a school year
 *                                    (spring); the year runs from the term before it
 */
typedef struct duties_policy {
    int minute; /* duties.time as minutes after midnight */
    int term_start_days;
    char term_start_stage[DUTIES_NAME_SIZE]; /* "" none */
    char transition_terms[DUTIES_NAME_SIZE];
    int transition_days;
    int from_grades[DUTIES_GRADES_MAX], nfrom_grades;
    int into_grades[DUTIES_GRADES_MAX], ninto_grades;
    int report_days;
    char report_role[DUTIES_NAME_SIZE], report_template[DUTIES_NAME_SIZE];
    char monthly_role[DUTIES_NAME_SIZE], monthly_template[DUTIES_NAME_SIZE];
    int remind_minute; /* rollcall.remind_time; -1: no roll-call checks */
    char remind_role[DUTIES_NAME_SIZE], remind_template[DUTIES_NAME_SIZE];
    char eod_role[DUTIES_NAME_SIZE], eod_template[DUTIES_NAME_SIZE];
    char two_days_role[DUTIES_NAME_SIZE], two_days_template[DUTIES_NAME_SIZE];
    /* rollcall.missed_*: role "" when not set */
    char missed_role[DUTIES_NAME_SIZE], missed_template[DUTIES_NAME_SIZE];
    char missed_two_role[DUTIES_NAME_SIZE], missed_two_template[DUTIES_NAME_SIZE];
    /* upward.*: the four reports, by duty_kind - DUTY_SCHOOL_MONTHLY; role "" when not set up;
     * template "" for none */
    bool upward;
    char up_role[4][DUTIES_NAME_SIZE], up_template[4][DUTIES_NAME_SIZE];
    char year_ends[DUTIES_NAME_SIZE];
} duties_policy;

/* Parses a policy (name stands for the file in messages: "ladder-duties.policy:4:
 * term_start.check_after: expected 1..60 school days, got \"x\""). Every setting is required once.
 * All or nothing: *out is written only on success. */
bx_status duties_policy_parse(const char *text, size_t len, const char *name, duties_policy *out,
                              bx_error *err) BX_MUSTCHECK;
bx_status duties_policy_load(const char *path, duties_policy *out, bx_error *err) BX_MUSTCHECK;

typedef enum duty_kind {
    DUTY_TERM_START = 1,
    DUTY_TRANSITION,
    DUTY_OUT_OF_SCHOOL_REPORT,
    DUTY_MONTHLY_SUMMARY,
    DUTY_ROLLCALL_MORNING, /* a school day's classes without a roll call by remind_time */
    DUTY_ROLLCALL_END,     /* the same at the day's end, and two days in a row */
    /* 四个一: the reports upward, one per place and period (cases.upward_report, 0022) */
    DUTY_SCHOOL_MONTHLY,   /* each school of the calendar: the month */
    DUTY_COUNTY_QUARTERLY, /* each county of the calendar's schools: the quarter */
    DUTY_CITY_TERM,        /* each city: the term */
    DUTY_PROVINCE_YEARLY   /* each province: the school year */
} duty_kind;
/* "term_start", "transition", "out_of_school_report", "monthly_summary", "rollcall_morning",
 * "rollcall_end", "school_monthly_report", "county_quarterly_report", "city_term_report",
 * "province_yearly_report"; NULL when unknown. */
const char *duty_kind_name(duty_kind k);
/* The kind named so, 0 when none. */
duty_kind duty_kind_parse(const char *name);

/* One duty of one term: a durable timer with a unique key per duty, calendar and date, so
 * scheduling it twice is a no-op and it fires once. */
typedef struct duty {
    duty_kind kind;
    char key[DUTIES_KEY_SIZE]; /* "duty:<kind>:<calendar>:<term>[:<period>]" */
    bx_time_ms due_at;
    bx_date first_day, last_day; /* the days it looks at: term start to the check day, the
                                    month's days of the term, a report's period up to its day */
    char period[24];             /* a report upward's period: "2026-09", "2026-Q3", the term's code,
                                    "2026-2027"; "" for the other duties */
} duty;

/* The duties of a term (calendar_id, term_code from first to last) by the policy and the calendar:
 * the term-start check at the end of the check_after-th school day, the transition check (terms
 * whose code ends with transition.terms), the out-of-school report, and one summary a month on the
 * month's last school day in the term. A check day past the term's end moves to its last school
 * day; a duty with no school day is left out. With upward.*: the schools' report of each month on
 * the month's last school day in the term (the month's days of the term); the counties' report of
 * each calendar quarter that ends in the term, or in the month after its last day (a vacation),
 * on its last school day in the term (the quarter from its first day: a quarter ending later
 * belongs to the next term); the cities' report of the term on its last school day; and, for a
 * term ending a school year, the provinces' report of the year on its last school day (from the
 * first day of the calendar's term before it, within 250 days, else of this term). Returns the
 * count written to out (at most max). */
int duties_plan(const duties_policy *p, const bx_calendar *cal, const char *calendar_id,
                const char *term_code, bx_date first, bx_date last, duty *out, int max);

/* The roll-call checks of one school day (day inside the term first..last, a school day of the
 * calendar; else none): "duty:rollcall_morning:<calendar>:<term>:<YYYY-MM-DD>" at
 * rollcall.remind_time and "duty:rollcall_end:..." at duties.time, each looking at day only
 * (first_day = last_day = day). Returns the count written to out (0..DUTIES_PER_DAY). */
int duties_plan_day(const duties_policy *p, const bx_calendar *cal, const char *calendar_id,
                    const char *term_code, bx_date first, bx_date last, bx_date day, duty *out,
                    int max);

/* The school days gone by whose roll-call checks were never scheduled (the clock jumped over
 * them, or bx-escalate was down): those after last_scheduled (the last day that has them;
 * BX_DATE_NONE: none ever, so nothing was missed) and before today, inside the term first..last,
 * the latest max of them, oldest first, into out. *skipped receives how many earlier ones are left
 * out (their coverage stays in the reporting rate of bxctl report). Returns the count. */
int duties_catch_up_days(const bx_calendar *cal, bx_date first, bx_date last,
                         bx_date last_scheduled, bx_date today, bx_date *out, int max,
                         int *skipped);

/* The JSON payload of a duty's timer: {"duty":..,"calendar_id":..,"term":..,"first_day":..,
 * "last_day":..[,"period":..]}, into out (size bytes; BX_ENOMEM when short). */
bx_status duty_payload(const duty *d, const char *calendar_id, const char *term_code, char *out,
                       size_t size) BX_MUSTCHECK;

/* ---- scheduling and firing (I/O) ---- */

/* Opens a case for a child a duty found a suspected dropout (or leaves them to their open case),
 * inside the firing's transaction: in is the ladder input (LADDER_IN_SUSPECTED), borrowed for the
 * call. */
typedef bx_status(duties_suspect_fn)(void *arg, const char *duty_key, const char *student_id,
                                     const char *school_id, const ladder_input *in, bx_error *err);

/* What firing a duty works with; all borrowed for the call. */
typedef struct duties_env {
    PGconn *db;
    const duties_policy *policy; /* NULL: duties fire without effect */
    const bx_registry *registry;
    duties_suspect_fn *suspect;
    void *suspect_arg;
} duties_env;

/* Fires a duty timer (kind "duty") inside its transaction: what its payload names, over the
 * schools of its calendar: the checks open a suspected dropout per child found (env->suspect), the
 * report and the summary ask bx-notify (an outbox row) once per county (the summary with the
 * county's roll-call reporting rate). A report upward is written once per place and period into
 * cases.upward_report with its figures (reports_write_figures_json: dropout and retention rates,
 * the ledgers' counts, returns, the reporting rate), counted as of the timer's due time, and its
 * office asked for it as a task (an outbox row) when the policy names a template; a place and
 * period reported already (a county with schools on two calendars) is left as it is. A payload
 * that cannot be read, or no policy, fires without effect (and says so). */
bx_status duties_fire(const duties_env *env, const timers_timer *timer, bx_error *err) BX_MUSTCHECK;

/* Schedules the duties of every term of the registry's calendars not over by today (one timer per
 * duty key, so scheduling again changes nothing), with today's roll-call checks and those of the
 * school days gone by since the last day that had them (duties_catch_up_days). A day's checks
 * that fire after the day is over send no reminder and ask the rollcall.missed_* roles as tasks
 * for their digest instead of an SMS. *created receives the timers new now. The day and the
 * registry's revision are then recorded in cases.duties_scheduled, which settling waits for
 * (migration 0033). */
bx_status duties_schedule(PGconn *db, const duties_policy *p, const bx_registry *registry,
                          bx_date today, int *created, bx_error *err) BX_MUSTCHECK;

/* ---- duties run off the consuming loop (cases.duty_run, migration 0032) ---- */

/* Queues a duty timer's run inside its firing's transaction (the timer's fired mark and the queued
 * run commit together, so each duty is queued exactly once); a run queued already is left as it
 * is. *queued is 1 when a run was queued now. */
bx_status duties_queue_run(PGconn *db, const timers_timer *timer, int *queued,
                           bx_error *err) BX_MUSTCHECK;

/* The run duties_run_next took. */
typedef struct duties_run {
    bool taken; /* false: none was due */
    char key[DUTIES_KEY_SIZE];
    int attempt; /* 1 for its first run */
} duties_run;

/* Runs the earliest queued duty that is due (none failed lately) in ONE transaction on env->db:
 * the run's row locked (FOR UPDATE SKIP LOCKED: another replica's run is skipped), duties_fire,
 * its done mark, COMMIT; so a run commits with its effects, and a crash or a failure mid-run
 * rolls all of it back and leaves it queued. run->taken is false when none was due. Must be
 * called outside a transaction. */
bx_status duties_run_next(const duties_env *env, duties_run *run, bx_error *err) BX_MUSTCHECK;

/* Records a failed run (after duties_run_next failed, PostgreSQL reachable): tried again after
 * 2^attempt s (at most 5 minutes), given up (marked done, given_up) at max_attempts. */
bx_status duties_run_failed(PGconn *db, const duties_run *run, int max_attempts, const char *why,
                            bool *given_up, bx_error *err) BX_MUSTCHECK;

#endif
