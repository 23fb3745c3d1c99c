/* ladder: bx-escalate's decisions as plain functions (the escalation ladder of 控辍保学 as policy
 * data, and one pure transition of a case per input), with no Kafka, Redis or PostgreSQL in them.
 */
#ifndef LADDER_H
#define LADDER_H

#include "bx_calendar.h"
#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ===== Rules (tests/unit/test_ladder.c holds them as tables) =====
 *
 * Policy (deploy/policy/ladder.policy). Stages, in the order the file first names them, each opened
 * by any of: a streak of unexcused school days (open_streak), unexcused periods in one day
 * (open_periods), a missed deadline of a task kind (open_overdue), or a wait of some time after a
 * task was done with the child still away (open_after: "the guardian did not comply within a week
 * of the notice"). Entering a stage creates its tasks (owner role, deadline, the actions that do
 * them, the role told when they are missed) and asks for its notifications. Tasks with `every`
 * recur while the case is open (or while the child has home-delivered education, 送教上门).
 *
 * Cases. A case opens when an assessment reaches any stage's streak or periods trigger, or when a
 * transfer, an unapproved suspension or home-delivered education needs following. At or past a
 * trigger: every stage whose streak threshold the assessment reaches and that lies beyond the
 * current stage is entered, in policy order; a stage whose threshold was passed on an earlier
 * school day is entered with late = true (a bulk upload that jumps from 0 to 4 days). Stages never
 * go backwards: a later stage entered through a missed deadline skips earlier ones.
 * Presence (ladder.presence_closes_below): a case opened by an absence that is still at a stage
 * before that one closes as returned, with no paperwork, when an assessment of its child shows no
 * streak and no unexcused period (the child was seen); from that stage on the formal return with
 * the township's sign-off is required, as the seeds ask. A transfer, a suspension, or
 * home-delivered education being followed keeps the case open.
 * An action does every open or overdue task whose done_by it matches and whose window had begun
 * by the action's date (a recurring task's window begins the day after the previous one was due,
 * and a recurring task once overdue stays missed: the next period's task is created then); a task
 * done after its deadline is done late, and one done late before its timer fired is escalated then.
 * A fired deadline of an open task marks it overdue, escalates it (the task's escalate_to role is
 * told; the seeds hold the owner accountable) and enters the stages whose open_overdue names its
 * kind. Tasks end as done, cancelled (the case closed: every open task and wait is cancelled, and
 * the store cancels their timers in the same transaction; or the case moved past the stage that
 * made the task, unless its rule carries_over: the same) or superseded (a missed recurrence once
 * the next period's task is made). Stages an input passes on its way to a later one in the same
 * step (a bulk upload) create only their tasks that carry over: the others would be cancelled as
 * they are made. A recurring task with `from` applies only once the case has
 * reached that stage (persuasion records, 劝返记录, are for dropouts on the roster).
 * Return to school (returned) closes the case with the township's sign-off; without it, a
 * sign-off task is created and the case stays open. A transfer out creates the transfer task (the
 * receiving school's confirmation, within the policy's limit); transfer_confirmed closes the case;
 * the transfer task missed means "treated as dropout" (the stage naming it in open_overdue,
 * dropout_roster by default). An approved suspension pauses the ladder until its last day; an
 * unapproved one creates the suspension task, likewise. Assessments dated inside an approved
 * suspension change nothing.
 *
 * Determinism and idempotence. Effects depend only on (policy, calendar, state, input). Ids are
 * derived: case "<student>:<YYYYMMDD of the first absent day>", events "<case>:e<seq>",
 * notification requests "<case>:n<seq>", tasks and their timers
 * "<case>:<stage or case>:<task kind>:<YYYY-MM-DD due>". The state remembers the last
 * LADDER_APPLIED_MAX input event ids: re-applying one of them gives no effects; beyond that the
 * transition is itself idempotent for redelivery (a higher or equal streak enters nothing twice, a
 * done task is not done again, a fired timer of a closed task does nothing).
 *
 * Deadlines: "N hours" from the input's time; "N days" and "N months" calendar days or months
 * after the input's local date, at ladder.deadline_time, moved to the next school day when that
 * date is not one by the school's calendar; "N school days" the N-th school day after
 * that date (0: that day if it is a school day, else the next), at ladder.deadline_time; a
 * deadline that would fall at or before the input's time moves to the next (school) day.
 */

#define LADDER_STAGES_MAX      8
#define LADDER_TASK_RULES_MAX  24
#define LADDER_STAGE_TASKS_MAX 4
#define LADDER_NOTIFY_MAX      4
#define LADDER_DONE_BY_MAX     4
#define LADDER_OVERDUE_MAX     4
#define LADDER_NAME_SIZE       40 /* names, kinds, roles, templates: up to 39 bytes */

/* The shared stage names (schemas/topics/bx.case.events.v1); a policy uses these or a subset. */
extern const char *const ladder_stage_names[LADDER_STAGES_MAX];

typedef enum ladder_unit {
    LADDER_UNIT_HOURS = 1,
    LADDER_UNIT_DAYS,
    LADDER_UNIT_SCHOOL_DAYS,
    LADDER_UNIT_MONTHS
} ladder_unit;

typedef struct ladder_span {
    int n;
    ladder_unit unit;
} ladder_span;

typedef enum ladder_while { LADDER_WHILE_OPEN = 1, LADDER_WHILE_HOME_DELIVERED } ladder_while;

typedef struct ladder_task_rule {
    char kind[LADDER_NAME_SIZE];
    char owner_role[LADDER_NAME_SIZE];
    ladder_span due;
    /* action tags that do it: "contact_made", "letter_delivered:return_notice", "returned:signed",
     * "suspension:approved", ...; "task_done" is a confirmation of this task kind */
    char done_by[LADDER_DONE_BY_MAX][LADDER_NAME_SIZE];
    int ndone_by;
    char escalate_to[LADDER_NAME_SIZE]; /* role told when missed; "" for nobody */
    ladder_span every;                  /* n == 0: not recurring */
    ladder_while recur_while;
    int from_stage;    /* a recurrence applies once the case reached this stage index; -1: always */
    bool carries_over; /* task.<kind>.carries_over = yes: stays open when the case moves past the
                          stage that made it (default no: leaving the stage cancels it) */
} ladder_task_rule;

typedef struct ladder_notify_rule {
    char recipient_role[LADDER_NAME_SIZE]; /* guardian or a staff role */
    char channel[8];                       /* sms or task */
    char template_name[LADDER_NAME_SIZE];
} ladder_notify_rule;

typedef struct ladder_stage_rule {
    char name[LADDER_NAME_SIZE];
    int open_streak;  /* school days; 0: no streak trigger */
    int open_periods; /* unexcused periods in one day; 0: none */
    char open_overdue[LADDER_OVERDUE_MAX][LADDER_NAME_SIZE];
    int nopen_overdue;
    char open_after[LADDER_NAME_SIZE]; /* task kind; "" none */
    ladder_span after;
    int tasks[LADDER_STAGE_TASKS_MAX]; /* indices into ladder_policy.task_rules */
    int ntasks;
    ladder_notify_rule notify[LADDER_NOTIFY_MAX];
    int nnotify;
} ladder_stage_rule;

typedef struct ladder_policy {
    char name[LADDER_NAME_SIZE];
    int deadline_minute;                   /* ladder.deadline_time as minutes after midnight */
    char task_notice[LADDER_NAME_SIZE];    /* template telling an owner of a new task; "" none */
    char overdue_notice[LADDER_NAME_SIZE]; /* template of an escalation; "" none */
    int return_signoff_task;               /* task rule index, -1: no sign-off needed */
    int transfer_task;                     /* task rule index, -1: a transfer needs no confirming */
    int suspension_task;                   /* task rule index, -1: none */
    int enrol_task; /* ladder.enrol_task: the township's task to find and enrol a child a data
                       match found out of school (transfers.h); -1: none */
    /* stage index: a case opened by absence and still before it closes as returned when the child
     * is seen (ladder.presence_closes_below); 0: presence never closes a case */
    int presence_closes_below;
    ladder_stage_rule stages[LADDER_STAGES_MAX];
    int nstages;
    ladder_task_rule task_rules[LADDER_TASK_RULES_MAX];
    int ntask_rules;
} ladder_policy;

/* Reads a policy file (format in deploy/policy/ladder.policy): "name = value" lines, "#" comment
 * lines, blank lines. Errors name file, line and setting: "ladder.policy:12: stage.home_visit.
 * open_streak: expected an integer 1..200, got \"x\"", and cross-checks name the setting too. All
 * or nothing: *out is written only on success. */
bx_status ladder_policy_load(const char *path, ladder_policy *out, bx_error *err) BX_MUSTCHECK;
/* The same from memory; name stands for the file in messages. */
bx_status ladder_policy_parse(const char *text, size_t len, const char *name, ladder_policy *out,
                              bx_error *err) BX_MUSTCHECK;
/* Index of a stage or task rule by name, -1 when absent. */
int ladder_policy_stage(const ladder_policy *p, const char *name);
int ladder_policy_task(const ladder_policy *p, const char *kind);

/* ---- inputs ---- */

#define LADDER_ID_SIZE  129 /* event ids: 1..128 of [A-Za-z0-9._:-] */
#define LADDER_KEY_SIZE 192 /* case, task and timer keys */

typedef enum ladder_input_kind {
    LADDER_IN_ASSESSMENT = 1, /* bx.risk.v1 */
    LADDER_IN_ACTION,         /* bx.actions.v1, or a task confirmation */
    LADDER_IN_DEADLINE,       /* a timer this module asked for fired */
    LADDER_IN_HOME_DELIVERY,  /* the registry says the child has home-delivered education */
    LADDER_IN_END,            /* graduated or the obligation ended (registry); or, with task_kind,
                                 returned: a data match found the child enrolled, closing a case
                                 that still has a live task of that kind (transfers.h) */
    LADDER_IN_SUSPECTED /* a calendar duty found a suspected dropout (疑似辍学): a term-start
                           no-show or a child lost at a transition; or a data match (四查三比对)
                           found a child out of school. Opens a case unless one is open,
                           entering stage_name ("" none) and creating the case-level task
                           task_kind ("" none) */
} ladder_input_kind;

typedef enum ladder_action {
    LADDER_ACT_CONTACT_MADE = 1,
    LADDER_ACT_HOME_VISIT,
    LADDER_ACT_LETTER_DELIVERED,
    LADDER_ACT_RETURNED,
    LADDER_ACT_TRANSFER_OUT,
    LADDER_ACT_TRANSFER_CONFIRMED,
    LADDER_ACT_SUSPENSION,
    LADDER_ACT_TASK_DONE, /* a staff member confirms a task (a report filed); not in bx.actions.v1
                           */
    /* task_reassigned: the principal or academic office gives an open task to another staff
     * member of the school (task_key, to_staff_id). The task keeps its kind, role and deadline;
     * its owner becomes to_staff_id, a note event says who gave it to whom, and the new owner is
     * told (ladder.task_notice, to them by staff id). A task that is not open changes nothing. */
    LADDER_ACT_TASK_REASSIGNED
} ladder_action;

typedef enum ladder_ending {
    LADDER_END_NONE = 0,
    LADDER_END_RETURNED,
    LADDER_END_TRANSFERRED,
    LADDER_END_GRADUATED,
    LADDER_END_OBLIGATION_ENDED
} ladder_ending;
const char *ladder_ending_name(ladder_ending e); /* "returned", ...; NULL for NONE */
/* The policy's name of stage index stage, NULL when it is none (-1) or out of range. */
const char *ladder_stage_name(const ladder_policy *p, int stage);

typedef struct ladder_input {
    ladder_input_kind kind;
    char event_id[LADDER_ID_SIZE]; /* the input's own id (deduplication) */
    bx_time_ms at;                 /* when it happened or was recorded; a deadline's due time */
    char actor[65];                /* staff or credential id; "" means bx-escalate */
    bx_date date;                  /* assessment or action school date */
    /* assessment */
    int streak_days;
    bx_date streak_start;
    int unexcused_periods;
    /* action */
    ladder_action action;
    char letter[LADDER_NAME_SIZE];    /* letter_delivered: persuasion_letter, ... */
    char task_kind[LADDER_NAME_SIZE]; /* task_done; suspected and end: the case-level task */
    char visit_outcome[16];           /* home_visit: will_return, refused, not_home, other */
    char visit_reason[24];            /* home_visit: the family's reason code, "" none */
    char signoff_staff_id[33];        /* returned: township officer, "" none */
    char task_key[LADDER_KEY_SIZE];   /* task_reassigned: the task */
    char to_staff_id[33];             /* task_reassigned: its new owner */
    bx_date return_date;              /* returned */
    bool paperwork;                   /* transfer_out */
    char receiving_school[160];       /* transfer_confirmed: the school that enrolled the child
                                         ("" unnamed), for the case's history */
    bool approved;                    /* suspension */
    bx_date first_date, last_date;    /* suspension */
    /* deadline */
    char timer_key[LADDER_KEY_SIZE];
    /* end */
    ladder_ending ending;
    /* suspected */
    char reason[200];
    char stage_name[LADDER_NAME_SIZE];
} ladder_input;

/* ---- case state ---- */

#define LADDER_TASKS_MAX   32
#define LADDER_APPLIED_MAX 32

typedef enum ladder_task_state {
    LADDER_TASK_OPEN = 1,
    LADDER_TASK_DONE,
    LADDER_TASK_OVERDUE, /* deadline fired, not done yet */
    LADDER_TASK_DONE_LATE,
    LADDER_TASK_CANCELLED, /* the case closed first */
    LADDER_TASK_SUPERSEDED /* a missed recurrence, replaced by the next period's task */
} ladder_task_state;

typedef struct ladder_task {
    char key[LADDER_KEY_SIZE]; /* task id and timer key */
    int rule;                  /* index into task_rules, or -1 for a wait before open_after */
    int stage;                 /* stage that made it, -1 for case-level tasks */
    int wait_stage;            /* a wait: the stage to enter when it fires */
    bx_time_ms created_at;
    bx_date window_start; /* the first date an action may do it: its creation date, or for a
                             recurrence the day after the previous one was due */
    bx_time_ms due_at;
    ladder_task_state state;
    bool escalated;
} ladder_task;

typedef struct case_state {
    char student_id[33]; /* set by the caller before the first step */
    char case_id[LADDER_KEY_SIZE];
    bool open;
    ladder_ending ending; /* of the last closed case */
    bx_time_ms opened_at, closed_at;
    int stage; /* current stage index, -1 none */
    struct {
        bx_time_ms entered_at; /* 0: not entered */
        bool late;
    } stages[LADDER_STAGES_MAX];
    ladder_task tasks[LADDER_TASKS_MAX];
    int ntasks;
    int streak_days;
    bx_date streak_start;
    bx_date last_assessed;
    int unexcused_periods;
    bool home_delivered;
    bx_date suspended_until; /* BX_DATE_NONE: not suspended */
    bool awaiting_signoff;   /* returned, the township has not signed yet */
    uint32_t seq;            /* case events and notifications emitted so far */
    char applied[LADDER_APPLIED_MAX][LADDER_ID_SIZE]; /* ring of the last input ids */
    int applied_next;
} case_state;

/* A fresh state for a student: no case. student_id is copied (1..32 of [A-Za-z0-9_-]). */
bx_status case_state_init(case_state *s, const char *student_id, bx_error *err) BX_MUSTCHECK;

/* ---- effects ---- */

typedef enum ladder_event_kind {
    LADDER_EV_OPENED = 1,
    LADDER_EV_STAGE_ENTERED,
    LADDER_EV_TASK_CREATED,
    LADDER_EV_TASK_DONE,
    LADDER_EV_TASK_OVERDUE,
    LADDER_EV_ESCALATED,
    LADDER_EV_NOTE,
    LADDER_EV_CLOSED
} ladder_event_kind;
const char *ladder_event_name(ladder_event_kind k); /* as bx.case.events.v1's "event" */

typedef struct ladder_event {
    char event_id[LADDER_KEY_SIZE];
    ladder_event_kind kind;
    const char *stage; /* stage after the event (policy name, static), NULL none */
    char task_key[LADDER_KEY_SIZE];
    const char *task_kind;   /* borrowed from the policy; NULL when no task */
    const char *owner_role;  /* likewise */
    char owner_staff_id[33]; /* a task given to a staff member (task_reassigned); "" the role's */
    bx_time_ms due_at;
    ladder_ending ending;
    char actor[65];
    char reason[300];
    bool late;
    bx_time_ms at;
} ladder_event;

typedef struct ladder_timer {
    char key[LADDER_KEY_SIZE];
    bx_time_ms due_at;
} ladder_timer;

#define LADDER_PARAMS_MAX 6
typedef struct ladder_notification {
    char request_id[LADDER_KEY_SIZE];
    const char *template_name;   /* borrowed from the policy */
    const char *recipient_role;  /* likewise */
    const char *channel;         /* likewise: sms or task */
    char recipient_staff_id[33]; /* a staff member by id (a reassigned task's owner); "" by role */
    int nparams;
    struct {
        const char *name; /* static */
        char value[LADDER_KEY_SIZE];
    } params[LADDER_PARAMS_MAX]; /* ids, dates and counts only: never names or phones */
    bx_time_ms at;
} ladder_notification;

#define LADDER_EFFECTS_MAX 64
typedef struct ladder_effects {
    ladder_event events[LADDER_EFFECTS_MAX];
    int nevents;
    ladder_timer timers[LADDER_EFFECTS_MAX];
    int ntimers;
    ladder_notification notes[LADDER_EFFECTS_MAX];
    int nnotes;
} ladder_effects;

/* Applies one input. in and out may be the same. Effects borrow strings from p, which must outlive
 * them. BX_EINVAL for a malformed input (out and effects then untouched); BX_ENOMEM when the task
 * table or an effects list is full. */
bx_status ladder_step(const ladder_policy *p, const bx_calendar *cal, const case_state *in,
                      const ladder_input *input, case_state *out, ladder_effects *effects,
                      bx_error *err) BX_MUSTCHECK;

/* The deadline for a span counted from t (rules at the top). */
bx_time_ms ladder_due(const ladder_policy *p, const bx_calendar *cal, ladder_span span,
                      bx_time_ms t);

#endif
