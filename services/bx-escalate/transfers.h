/* transfers: the same child in two places of the registry (issue 15, items 5 and 6). The rule that
 * decides whether registry records are one child, as a plain function tested from tables (also
 * used by bxctl match for the household register); and bx-escalate's two jobs on it: a transfer
 * out is confirmed when the child is enrolled at another school of the province, and the children
 * `bxctl match` found out of school (matching.finding) become suspected cases for the township.
 * Cases are written through the service's callback, so bx-escalate stays their only writer. */
#ifndef BX_ESCALATE_TRANSFERS_H
#define BX_ESCALATE_TRANSFERS_H

#include "bx_registry.h"
#include "duties.h"
#include "bx_status.h"
#include "ladder.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* ===== The rule (tests/unit/test_transfers.c holds it as tables) =====
 *
 * A candidate is another registry record that shares the child's national student number (学籍号)
 * or id number; registry.same_child() finds them without letting a number out. Only candidates in
 * school count (enrolled, returned, suspended, home-delivered education; for a transfer, at
 * another school). Then:
 *   - one in school, its numbers agreeing: the child is there (matched by student number, id
 *     number, or both);
 *   - none: not found;
 *   - two or more records in school: ambiguous, refused (a child enrolled twice is for a person to
 *     sort out, never guessed);
 *   - one whose student number matches while the id numbers differ, or the other way round:
 *     conflicting, refused. */

typedef enum transfers_verdict {
    TRANSFERS_NONE = 0,  /* in no school */
    TRANSFERS_MATCHED,   /* one record in school */
    TRANSFERS_AMBIGUOUS, /* several records in school: refused */
    TRANSFERS_CONFLICT   /* numbers disagree: refused */
} transfers_verdict;

typedef struct transfers_candidate {
    const char *student_id; /* borrowed */
    const char *school_id;  /* borrowed */
    bool in_school;         /* its status keeps it in school (transfers_in_school) */
    bool by_number, by_id;  /* which number matched */
    bool conflict;          /* the other number is known on both sides and differs */
} transfers_candidate;

typedef struct transfers_decision {
    transfers_verdict verdict;
    int match;              /* MATCHED: the index of the record in school; else -1 */
    int in_school;          /* candidates in school */
    const char *matched_by; /* MATCHED: "student_number", "national_id" or "both"; else NULL */
} transfers_decision;

/* Whether a registry status keeps a child in school: enrolled, returned, suspended,
 * home_education. */
bool transfers_in_school(const char *status);
/* The verdict on n candidates (the rule above). Pure. */
void transfers_decide(const transfers_candidate *c, int n, transfers_decision *out);
/* "matched", "ambiguous", ... for messages. */
const char *transfers_verdict_name(transfers_verdict v);

/* ===== bx-escalate's jobs (I/O) ===== */

typedef struct transfers_env {
    PGconn *db;
    const ladder_policy *policy;
    const bx_registry *registry;
    /* applies one ladder input to the case of a student at a school, inside the open transaction
     * (the service's duty callback) */
    duties_suspect_fn *apply;
    void *apply_arg;
} transfers_env;

/* The transfer check: when the registry's revision or the newest transfer task is past what the
 * last check saw (cases.transfer_check), every open case with a live transfer task
 * (ladder.transfer_task) is matched against the registry; a child enrolled at another school of
 * the province has the transfer confirmed (transfer_confirmed by bx-escalate, naming the receiving
 * school) and the match recorded in cases.transfer_match; an ambiguous or conflicting match is
 * refused, recorded and logged (registry ids only). Each case in a transaction of its own.
 * *confirmed counts the cases closed. */
bx_status transfers_check(const transfers_env *env, int *confirmed, bx_error *err) BX_MUSTCHECK;

/* The findings of `bxctl match` not applied yet, at most max, each in a transaction of its own
 * with its cases.finding_applied row: out_of_school opens a suspected case (unless one is open)
 * with the task ladder.enrol_task; enrolled closes as returned a case that still has that task
 * live. *applied counts them. */
bx_status transfers_apply_findings(const transfers_env *env, int max, int *applied,
                                   bx_error *err) BX_MUSTCHECK;

#endif
