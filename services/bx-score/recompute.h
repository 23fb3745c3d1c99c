/* recompute: a student's summary and assessment from what Redis holds (facts, the class's roll
 * calls, the previous summary), shared by bx-score, `bxctl rebuild` and `bxctl student show` so all
 * three compute exactly the same thing.
 *
 * The stored summary (bx:s:{S}:sum) holds the day state, streak, windows, rates, score, tier, each
 * factor ("factor.<name>" = "<points>|<a|p>|<detail>") and "last" (score_last_encode of this very
 * computation). It depends only on the facts, the class's roll calls, the registry profile and the
 * date assessed, never on what was stored before, so a rebuild from PostgreSQL gives the same
 * hash. "last" is what score_should_emit compares the next computation with: keeping the last
 * computed state (not only the last published one) asks the same question, since a computation
 * that published nothing had neither a new streak nor a new tier.
 *
 * A student with no stored fact has nothing to say: the summary is deleted and nothing is
 * published (a rebuild only sees students with stored facts). */
#ifndef SCORE_RECOMPUTE_H
#define SCORE_RECOMPUTE_H

#include "bx_registry.h"
#include "bx_status.h"
#include "score.h"
#include "store.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Every student's profile (flags and birth date from registry.student_private, grade from the
 * class), keyed by student id. Holds flags: never log what it holds. */
typedef struct score_profiles score_profiles;

/* Loads registry.student_private (columns student_id, flags, birth_date) and the grades of
 * registry (borrowed for the call). Caller frees with score_profiles_free. */
bx_status score_profiles_load(PGconn *db, const bx_registry *registry, score_profiles **out,
                              bx_error *err) BX_MUSTCHECK;
void score_profiles_free(score_profiles *p);
/* The student's profile, or NULL; borrowed until score_profiles_free. */
const score_profile *score_profiles_get(const score_profiles *p, const char *student_id);

/* What a computation reads; every member borrowed. profiles may be NULL (no flags known). */
typedef struct score_env {
    const score_policy *policy;
    const bx_registry *registry;
    const score_profiles *profiles;
    score_store_redis *store;
} score_env;

#define SCORE_SUMMARY_FIELDS 72
#define SCORE_NAME_SIZE      48
#define SCORE_VALUE_SIZE     (SCORE_DETAIL_SIZE + 32)

/* The result of one student's computation. */
typedef struct score_outcome {
    char student_id[SCORE_STORE_ID_MAX + 1];
    const bx_reg_student *student; /* NULL when the registry does not know it: nothing computed */
    bool has_facts;                /* false: the summary is deleted and nothing is published */
    score_summary summary;
    score_assessment assessment;
    bool has_prev; /* a previous summary held "last" */
    score_last prev;
    score_trigger trigger;             /* NONE unless has_facts */
    score_leave_kind today_leave_kind; /* the kind of leave when summary.today is a leave day */
    size_t nfields;                    /* the summary to store */
    bool computed;     /* false: the student was not computed (see score_recompute_batch) */
    bool summary_same; /* the stored summary equals this one: storing it would change nothing */
    /* Only the first nfields names and values are set (the rest is not cleared). */
    char names[SCORE_SUMMARY_FIELDS][SCORE_NAME_SIZE];
    char values[SCORE_SUMMARY_FIELDS][SCORE_VALUE_SIZE];
} score_outcome;

/* Computes n students as of a date, reading Redis pipelined (facts, class roll calls, previous
 * summaries); out has n entries. Writes nothing. A stored entry that does not decode is skipped
 * with a warning (it cannot be fixed by retrying). BX_EIO when Redis failed. */
bx_status score_recompute(const score_env *env, const char *const *student_ids, size_t n,
                          bx_date as_of, score_outcome *out, bx_error *err) BX_MUSTCHECK;
/* score_recompute for bx-score's batches: with skip_without_facts, a student with no stored fact
 * is not computed (computed false, has_facts false, no summary fields, trigger NONE): what is
 * stored and published for it is the same (nothing to say), without the cost. Its summary,
 * attendance counts and assessment are not filled in, so callers that show them (bxctl, the
 * console, the daily aggregates) use score_recompute. */
bx_status score_recompute_batch(const score_env *env, const char *const *student_ids, size_t n,
                                bx_date as_of, bool skip_without_facts, score_outcome *out,
                                bx_error *err) BX_MUSTCHECK;

/* score_recompute_batch over hashes the caller read already (bx-score reads them in the
 * pipeline of its batch's writes): facts[i] and sums[i] student i's facts and summary,
 * reported[i] the roll calls of its class (NULL when the registry knows no class of it; students
 * of one class may share one pointer, decoded once). Reads nothing from Redis. */
bx_status score_recompute_loaded(const score_env *env, const char *const *student_ids, size_t n,
                                 const score_store_entries *facts, const score_store_entries *sums,
                                 const score_store_entries *const *reported, bx_date as_of,
                                 bool skip_without_facts, score_outcome *out,
                                 bx_error *err) BX_MUSTCHECK;

/* One day's state of n students, as score_recompute's summary.today and today_leave_kind would be
 * as of that day, reading only their facts and their classes' roll calls (the daily aggregates
 * need no more). known[i] false: the registry does not know the student or its class. */
bx_status score_recompute_days(const score_env *env, const char *const *student_ids, size_t n,
                               bx_date day, score_day *days, score_leave_kind *leave_kinds,
                               bool *known, bx_error *err) BX_MUSTCHECK;

/* Stores the summaries of n outcomes (a student without facts: deleted; one the registry does not
 * know: left alone; one whose summary_same is set: left alone, as storing it changes nothing),
 * pipelined. */
bx_status score_recompute_store(const score_env *env, const score_outcome *out, size_t n,
                                bx_error *err) BX_MUSTCHECK;

/* The text form of a rate (0..1) in summaries and messages: "0.8500". */
void score_rate_format(double rate, char out[16]);

#endif
