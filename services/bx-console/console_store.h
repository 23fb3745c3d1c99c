/* console_store: what the homeroom teacher's pages read, from PostgreSQL (registry, cases, tasks,
 * history) and from bx-score's Redis keys (today's facts, the class's roll calls, the risk score
 * recomputed exactly as `bxctl student show` does, with bx-score's own library). Reads only,
 * except the home-visit note (PostgreSQL, never a Kafka topic).
 *
 * One console_store is shared by every request thread: it holds the score policy and a snapshot of
 * the in-memory registry with the score profiles, reloaded when registry.revision changes (checked
 * at most every CONSOLE_STORE_REFRESH_MS); a request keeps the snapshot it started with. The
 * connections are the request's own (console_request.db and .redis, one per worker thread),
 * borrowed for each call.
 *
 * Personal data: names (registry.student_private.name, registry.guardian) are returned to the
 * caller, which shows them escaped and audits the view (console_audit). Never log them. */
#ifndef CONSOLE_STORE_H
#define CONSOLE_STORE_H

#include "bx_calendar.h"
#include "bx_registry.h"
#include "bx_status.h"
#include "score.h"

#include "bx_redis.h"
#include <libpq-fe.h>

#include <stdbool.h>
#include <stddef.h>

#define CONSOLE_STORE_REFRESH_MS 30000
#define CONSOLE_STORE_TEXT       192 /* names and labels from the registry, bytes with the NUL */
#define CONSOLE_STORE_STAGE      64
#define CONSOLE_STORE_TIME       32  /* "2026-11-23T08:12:00+08:00" */
#define CONSOLE_STORE_NOTE_MAX   500 /* characters (not bytes) of a home-visit note */

typedef struct console_store console_store;

/* Loads the score policy file (NULL or "": the built-in default, identical to
 * deploy/policy/score.policy); the registry is loaded by the first call that needs it. Caller
 * frees with console_store_free, after every call returned. */
bx_status console_store_new(const char *policy_path, console_store **out,
                            bx_error *err) BX_MUSTCHECK;
void console_store_free(console_store *st);

/* Runs fn with the current registry and staff directory (refreshed first when the registry's
 * revision changed), borrowed for the call only. Used by the writes, which validate against the
 * same in-memory registry and staff directory bx-ingest loads. fn's status is returned. */
struct ingest_staff_dir;
typedef bx_status console_store_registry_fn(const bx_registry *registry,
                                            const struct ingest_staff_dir *staff, void *arg);
bx_status console_store_with_registry(console_store *st, PGconn *db, console_store_registry_fn *fn,
                                      void *arg, bx_error *err) BX_MUSTCHECK;

/* Runs fn with a registry holding the school calendars alone (bx_registry_load_calendars: no
 * schools, classes or students), refreshed as the whole one is. For pages that need school days
 * only (the county and area dashboards), so they never load a province's students. */
typedef bx_status console_store_calendars_fn(const bx_registry *calendars, void *arg);
bx_status console_store_with_calendars(console_store *st, PGconn *db,
                                       console_store_calendars_fn *fn, void *arg,
                                       bx_error *err) BX_MUSTCHECK;

/* ---- classes and students ---- */

typedef struct console_class_info {
    char id[BX_ID_MAX + 1];
    char name[CONSOLE_STORE_TEXT];
    int grade;
    char school_id[BX_ID_MAX + 1];
    char school_name[CONSOLE_STORE_TEXT];
    char township_code[10];
    char county_code[7];
    char homeroom_staff_id[BX_ID_MAX + 1];
    bool school_day; /* the day asked about is a school day of the school's calendar */
} console_class_info;

/* A class as the registry has it, and whether `day` is a school day there. BX_ENOTFOUND when
 * the registry has no such class. */
bx_status console_store_class(console_store *st, PGconn *db, const char *class_id, bx_date day,
                              console_class_info *out, bx_error *err) BX_MUSTCHECK;

/* Where a student sits (for console_may) and its name. BX_ENOTFOUND when unknown. */
typedef struct console_student_info {
    char id[BX_ID_MAX + 1];
    char name[CONSOLE_STORE_TEXT]; /* "" when student_private has no row */
    char class_id[BX_ID_MAX + 1];
    char class_name[CONSOLE_STORE_TEXT];
    char school_id[BX_ID_MAX + 1];
    char school_name[CONSOLE_STORE_TEXT];
    char township_code[10];
    char county_code[7];
    char status[16]; /* registry status: enrolled, transferred_out, ... */
} console_student_info;
bx_status console_store_student(console_store *st, PGconn *db, const char *student_id,
                                console_student_info *out, bx_error *err) BX_MUSTCHECK;

/* Today's attendance code of a student for one slot, as bx-score stores it: "" (no fact), "p",
 * "a", "t", "e", "ls", "lp". */
#define CONSOLE_CODE_SIZE 4

/* One row of "my class" and of the roll-call form. */
typedef struct console_class_row {
    char id[BX_ID_MAX + 1];
    char name[CONSOLE_STORE_TEXT];
    char code[CONSOLE_CODE_SIZE]; /* the stored fact of the slot asked about, "" none */
    char day_state[16];           /* score_day_state_name of today: present, absent, ... */
    int streak_days;              /* school days of unexcused absence in a row */
    int score;
    score_tier tier;
    int nfactors;
    score_factor factors[SCORE_FACTORS_MAX]; /* the reasons, as `bxctl student show` gives them */
    long long case_id;                       /* 0: no open case */
    char case_stage[CONSOLE_STORE_STAGE];
    char case_opened_at[CONSOLE_STORE_TIME];
} console_class_row;

/* The enrolled students of a class (the roll call's list: the registry's enrolled students,
 * sorted by id), each with the stored fact of (day, period) (period 0: the whole day), the day's
 * state, streak and risk as of `day`, and the open case. *rows is malloc'd (caller frees), *n its
 * length. with_risk false skips the recomputation (the roll-call form needs only the codes). */
bx_status console_store_class_rows(console_store *st, PGconn *db, bx_redis *redis,
                                   const char *class_id, bx_date day, int period, bool with_risk,
                                   console_class_row **rows, size_t *n, bx_error *err) BX_MUSTCHECK;

/* The class's roll call of (day, period) as bx-score recorded it (bx:c:{C}:reported). */
typedef struct console_rollcall_state {
    bool reported;
    bx_time_ms recorded_at;
    char event_id[136]; /* "<rollcall_id>:class" for a roll call sent with an id */
    int enrolled, absent, leave, late, early_leave, present;
} console_rollcall_state;
bx_status console_store_rollcall_state(console_store *st, bx_redis *redis, const char *class_id,
                                       bx_date day, int period, console_rollcall_state *out,
                                       bx_error *err) BX_MUSTCHECK;

/* ---- tasks ---- */

typedef struct console_task {
    long long id; /* cases.task.id */
    char task_key[136];
    char kind[CONSOLE_STORE_STAGE];
    char stage[CONSOLE_STORE_STAGE];
    char due_at[CONSOLE_STORE_TIME];
    bool overdue; /* marked overdue, or due before now */
    long long case_id;
    char student_id[BX_ID_MAX + 1];
    char student_name[CONSOLE_STORE_TEXT];
    char class_id[BX_ID_MAX + 1];
} console_task;

/* The open tasks of a homeroom teacher: owned by name, or owned by the role in one of the
 * classes they hold (class_ids, n of them), of open cases; overdue first, then by due time.
 * At most max (*tasks malloc'd, caller frees). */
bx_status console_store_open_tasks(console_store *st, PGconn *db, const char *staff_id,
                                   const char *const *class_ids, size_t nclasses, bx_time_ms now,
                                   size_t max, console_task **tasks, size_t *n,
                                   bx_error *err) BX_MUSTCHECK;
/* One open task by id, with its case's student: BX_ENOTFOUND when there is none or it is done. */
bx_status console_store_task(console_store *st, PGconn *db, long long task_id, bx_time_ms now,
                             console_task *out, bx_error *err) BX_MUSTCHECK;

/* ---- a student's case and history ---- */

typedef struct console_case_event {
    long long case_id;
    char kind[24]; /* opened, stage_entered, task_created, task_done, ... */
    char stage[CONSOLE_STORE_STAGE];
    char actor[72];
    char actor_name[CONSOLE_STORE_TEXT]; /* registry.staff name when actor is a staff id */
    char reason[1024];                   /* free text: shown escaped, digits masked */
    char task_kind[CONSOLE_STORE_STAGE]; /* the task a task event is about, "" otherwise */
    char task_owner[32];                 /* its owner role */
    bool late;
    char occurred_at[CONSOLE_STORE_TIME];
} console_case_event;

typedef struct console_case_view {
    long long case_id; /* 0: no case ever */
    char stage[CONSOLE_STORE_STAGE];
    char opened_at[CONSOLE_STORE_TIME];
    char closed_at[CONSOLE_STORE_TIME]; /* "" while open */
    char ending[24];
    console_task *tasks; /* open tasks of the case */
    size_t ntasks;
    console_case_event *events; /* every event of every case of the student, in order */
    size_t nevents;
} console_case_view;

/* The student's latest case (open first), its open tasks and the whole history. The arrays are
 * malloc'd: free with console_case_view_free. */
bx_status console_store_case_view(console_store *st, PGconn *db, const char *student_id,
                                  bx_time_ms now, console_case_view *out,
                                  bx_error *err) BX_MUSTCHECK;
void console_case_view_free(console_case_view *v);

/* ---- home-visit notes (PostgreSQL only) ---- */

/* Keeps a home visit's free-text note beside the action's event id, in console.visit_note; a
 * repeated event id changes nothing. The note never goes to Kafka: bx.actions.v1 carries the
 * outcome and reason only. BX_EINVAL for a note over CONSOLE_STORE_NOTE_MAX characters or not
 * UTF-8. */
bx_status console_store_visit_note(console_store *st, PGconn *db, const char *event_id,
                                   const char *student_id, const char *staff_id, const char *note,
                                   bx_time_ms at, bx_error *err) BX_MUSTCHECK;

/* Characters (UTF-8 code points) of s, or -1 when s is not valid UTF-8. */
long console_utf8_chars(const char *s);

#endif
