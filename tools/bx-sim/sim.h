/* sim: the simulated county. A deterministic generator of a county (townships, schools, classes,
 * students with registry flags, guardians, staff, the term calendar), the hidden ground truth of
 * which children drift away and when, and what teachers and staff do each school day. Pure: no
 * I/O but the holidays CSV read into the calendar and CSV text written into buffers. */
#ifndef BX_SIM_H
#define BX_SIM_H

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_status.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- the random number generator: xoshiro256** seeded by splitmix64 ---- */

typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;

uint64_t sim_splitmix64(uint64_t *state);
void sim_rng_seed(sim_rng *r, uint64_t seed);
/* A stream of its own for one decision: the same (seed, purpose, a, b) always gives the same
 * stream, whatever was drawn before, so one child's day never depends on another's. */
void sim_rng_for(sim_rng *r, uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b);
uint64_t sim_rng_next(sim_rng *r);
/* Uniform in [0, 1). */
double sim_rng_unit(sim_rng *r);
/* Uniform in [0, n); n >= 1. */
int sim_rng_below(sim_rng *r, int n);

/* ---- the county ---- */

#define SIM_MAX_CLASS_SIZE 60
#define SIM_MAX_TOWNSHIPS  20
#define SIM_MAX_SCHOOLS    400
#define SIM_MAX_STUDENTS   2000000

typedef struct sim_size {
    int townships; /* 1..SIM_MAX_TOWNSHIPS */
    int schools;   /* townships..SIM_MAX_SCHOOLS; every third school is a junior school */
    int students;  /* about; classes of about 40 */
    /* starts every student, class and staff id (1-8 letters or digits; NULL: "K"), so counties
     * simulated at once on the same topics do not share ids */
    const char *id_prefix;
} sim_size;

/* Registry flags, the bits of sim_student.flags, in the order of bxctl import's names. */
typedef enum sim_flag {
    SIM_F_REGISTERED_POOR = 1u << 0,
    SIM_F_MINIMUM_SUBSISTENCE = 1u << 1,
    SIM_F_EXTREME_POVERTY = 1u << 2,
    SIM_F_ORPHAN = 1u << 3,
    SIM_F_DISABILITY_SIGHT = 1u << 4,
    SIM_F_DISABILITY_HEARING = 1u << 5,
    SIM_F_DISABILITY_INTELLECTUAL = 1u << 6,
    SIM_F_DISABILITY_OTHER = 1u << 7,
    SIM_F_LEFT_BEHIND = 1u << 8,
    SIM_F_SINGLE_PARENT = 1u << 9,
    SIM_F_MIGRANT = 1u << 10,
    SIM_F_LEARNING_DIFFICULTY = 1u << 11,
    SIM_F_WAVERING = 1u << 12,
    SIM_F_EARLIER_DROPOUT = 1u << 13,
} sim_flag;
#define SIM_NFLAGS 14
/* The registry's name of flag bit i (0..SIM_NFLAGS-1). */
const char *sim_flag_name(int i);
/* Share of students with flag bit i, per thousand (the rates the generator uses). */
int sim_flag_rate_permille(int i);

/* The hidden ground truth of one child. */
typedef enum sim_fate {
    SIM_STAYS = 0,      /* keeps coming, with the usual sick days and odd absences */
    SIM_DRIFTS = 1,     /* stops coming on drift_start and never comes back */
    SIM_DRIFTS_BACK = 2 /* stops coming on drift_start, comes back on return_date */
} sim_fate;

typedef struct sim_school {
    char id[16];
    char name[64];
    int township;
    bool junior;
    int first_class, nclasses;
} sim_school;

typedef struct sim_class {
    char id[20];
    int school;
    int grade;  /* 1..9 */
    int number; /* 班 within the grade, from 1 */
    int first_student, nstudents;
    int forget_permille; /* chance a day's roll call is forgotten */
} sim_class;

typedef struct sim_student {
    char id[20];
    int klass;
    char name[16];
    char sex; /* 'M' or 'F' */
    bx_date birth;
    char national_id[19];
    unsigned flags;
    bool over_age;
    /* ground truth, never imported */
    int transfer; /* 1 + index into the county's transfers when the child changes school in the
                     term; 0 none */
    sim_fate fate;
    bx_date drift_start;
    bx_date return_date; /* SIM_DRIFTS_BACK only */
} sim_student;

/* A child who changes school within the county during the term (the truth the transfer match is
 * checked against): school day `day` is the last at the old school, whose academic office records
 * the transfer out at 16:00 and marks the registry row transferred_out; the receiving school
 * imports the child (a new registry id, the same id number and student number) on `arrival`, up to
 * a school day before or three after. */
typedef struct sim_transfer {
    int student;  /* the leaver */
    int to_class; /* the receiving class: the same grade at another school */
    bx_date day, arrival;
    char new_id[20];
} sim_transfer;

/* A school-age child of the household register who never enrolled (四查三比对's truth). */
typedef struct sim_unenrolled {
    char name[16];
    char national_id[19];
    bx_date birth;
    int township;
    bool poor; /* on the registered-poor list */
} sim_unenrolled;

typedef struct sim_county {
    uint64_t seed;
    sim_size size;
    char code[8];   /* 6-digit county code */
    char prefix[9]; /* of the ids */
    char calendar_id[24];
    bx_calendar *cal; /* owned */
    bx_date term_first, term_last;
    sim_school *schools;
    int nschools;
    sim_class *classes;
    int nclasses;
    sim_student *students;
    int nstudents;
    sim_transfer *transfers; /* about one per 500 students, at least 2 */
    int ntransfers;
    sim_unenrolled *unenrolled; /* about one per 400 students, at least 2 */
    int nunenrolled;
} sim_county;

/* Generates the county for seed and size; holidays_csv is the national list
 * (deploy/policy/cn-public-holidays-2026.csv). The term is 2026-autumn, 2026-09-01..2027-01-22.
 * BX_EINVAL names the size field out of range. Caller frees *out with sim_county_free. */
bx_status sim_county_new(uint64_t seed, sim_size size, const char *holidays_csv, sim_county **out,
                         bx_error *err) BX_MUSTCHECK;
void sim_county_free(sim_county *c);

/* The registry files, as bxctl import reads them: index i of SIM_NFILES. */
#define SIM_NFILES 8
const char *sim_file_name(int i);
bx_status sim_county_csv(const sim_county *c, int file, bx_buf *out) BX_MUSTCHECK;
/* The ground truth, one row per child who drifts: student_id,fate,drift_start,return_date. */
bx_status sim_truth_csv(const sim_county *c, bx_buf *out) BX_MUSTCHECK;

/* 四查三比对's lists, as bxctl import household and poverty read them (not school registry files:
 * bx-sim generate writes them into household/ beside the registry): every school-age child of the
 * county's household register (its students but the migrant children, whose register is
 * elsewhere, and the children who never enrolled), and the children of registered-poor
 * households among them. */
bx_status sim_household_csv(const sim_county *c, bx_buf *out) BX_MUSTCHECK;
bx_status sim_poverty_csv(const sim_county *c, bx_buf *out) BX_MUSTCHECK;
/* The students.csv rows a school day's transfers change (the leavers marked transferred_out, the
 * receiving schools' new rows), for bxctl import students; *rows their count (0: no file needed).
 */
bx_status sim_transfer_csv(const sim_county *c, bx_date day, bx_buf *out, int *rows) BX_MUSTCHECK;
/* The transfer_out action of a transfer, recorded by the old school's academic office, as a
 * bx-ingest record (JSON, appended). */
bx_status sim_transfer_json(const sim_county *c, const sim_transfer *t, bx_buf *out) BX_MUSTCHECK;

/* Staff ids of a class's homeroom teacher, a school's principal and a township's officer. */
void sim_homeroom_id(const sim_county *c, int klass, char out[24]);
void sim_principal_id(const sim_county *c, int school, char out[24]);
void sim_township_officer_id(const sim_county *c, int township, char out[24]);
void sim_township_code(const sim_county *c, int township, char out[16]);

/* ---- a child's school day (pure: a function of the seed, the child and the date) ---- */

typedef enum sim_status {
    SIM_PRESENT = 0,
    SIM_ABSENT,         /* unexcused */
    SIM_SICK,           /* sick leave, told on the day */
    SIM_PERSONAL,       /* personal leave told on the day */
    SIM_PERSONAL_AHEAD, /* personal leave asked for in advance (sim_leave_lead days before) */
    SIM_LATE
} sim_status;

sim_status sim_student_status(const sim_county *c, int student, bx_date d);
/* School days ahead that advance leave on d was asked for (1..5). */
int sim_leave_lead(const sim_county *c, int student, bx_date d);
/* An unexcused absence the guardian phones in afterwards (补假): fixed the next school day. */
bool sim_absence_phoned_in(const sim_county *c, int student, bx_date d);
/* The class forgets the day's roll call; *late_next_day when it is sent the next school day. */
bool sim_class_forgets(const sim_county *c, int klass, bx_date d, bool *late_next_day);

/* ---- the day's plan: what teachers and staff send ---- */

typedef enum sim_action_kind {
    SIM_CONTACT_MADE = 0,
    SIM_HOME_VISIT,
    SIM_PERSUASION_LETTER,
    SIM_RETURN_NOTICE,
    SIM_DEADLINE_NOTICE,
    SIM_RETURNED,
    SIM_SIGNOFF /* the township signs a return recorded without its sign-off */
} sim_action_kind;

typedef struct sim_rollcall {
    int klass;
    bx_date date; /* the school day it is about; earlier than the plan's day when sent late */
    int nabsent, nleave, nlate;
    int absent[SIM_MAX_CLASS_SIZE];
    int leave[SIM_MAX_CLASS_SIZE];
    bool leave_sick[SIM_MAX_CLASS_SIZE];
    int late[SIM_MAX_CLASS_SIZE];
} sim_rollcall;

typedef struct sim_leave {
    int student;
    bx_date first, last;
    bool sick, phoned_in;
} sim_leave;

typedef struct sim_action {
    int student;
    sim_action_kind kind;
    bx_date date;     /* when it happened */
    bx_date recorded; /* when staff record it: the same day, or later */
    bx_date due;      /* the day it was due (names the record: its event id) */
    bx_date returned; /* SIM_RETURNED, SIM_SIGNOFF: the day the child came back */
    bool late;        /* after the day it was due */
    bool reached, will_return, signed_off;
} sim_action;

typedef struct sim_day_plan {
    bx_date day;
    sim_rollcall *rollcalls;
    int nrollcalls;
    sim_leave *leaves;
    int nleaves;
    sim_action *actions;
    int nactions;
} sim_day_plan;

/* What teachers remember between days: each child's absence streak as they reported it, which
 * steps they took, actions decided for later recording. */
typedef struct sim_world sim_world;
bx_status sim_world_new(const sim_county *c, sim_world **out) BX_MUSTCHECK;
void sim_world_free(sim_world *w);
/* The plan of school day d (days must come in increasing order). Caller frees with
 * sim_day_plan_free. */
bx_status sim_plan_day(const sim_county *c, sim_world *w, bx_date d,
                       sim_day_plan *out) BX_MUSTCHECK;
void sim_day_plan_free(sim_day_plan *p);

/* Request bodies for bx-ingest (JSON), into out (appended). */
bx_status sim_rollcall_json(const sim_county *c, const sim_rollcall *rc, bx_buf *out) BX_MUSTCHECK;
bx_status sim_leave_json(const sim_county *c, const sim_leave *l, bx_buf *out) BX_MUSTCHECK;
bx_status sim_action_json(const sim_county *c, const sim_action *a, bx_buf *out) BX_MUSTCHECK;

/* The school (index) a student belongs to. */
int sim_student_school(const sim_county *c, int student);

/* ---- evaluation of the early warning against the ground truth ---- */

typedef struct sim_warning_eval {
    int drifters;       /* children the truth says drifted (by the evaluated day) */
    int flagged;        /* children who reached the high tier */
    int true_positive;  /* flagged and drifted */
    int flagged_before; /* drifters flagged before their first day away */
    /* drifters by when they were first flagged, counted in school days from their first day away:
     * [0] before it, [1] on it, [2] 1 day after, [3] 2, [4] 3, [5] 4-5, [6] later */
    int lead_hist[7];
    int never_flagged;  /* drifters never flagged */
    double precision;   /* true_positive / flagged, or -1 */
    double recall;      /* true_positive / drifters, or -1 */
    double median_lead; /* school days before the first day away (negative: after), or 0 */
} sim_warning_eval;

/* flagged_on[i] is the first date student i reached the high tier, or BX_DATE_NONE. Drifters
 * whose first day away is after `through` are not counted. */
void sim_evaluate_warning(const sim_county *c, const bx_date *flagged_on, bx_date through,
                          sim_warning_eval *out);

#endif
