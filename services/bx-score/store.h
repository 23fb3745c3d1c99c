/* store: bx-score's storage of attendance facts, class roll-call coverage and derived summaries in
 * Redis (the cache), and its durable record in PostgreSQL (schema attendance), with the rebuild
 * that makes the one from the other. Knows nothing of what a fact means: values are opaque.
 *
 * Redis keys. Every key of one student shares the hash tag {<student id>} and every script call
 * touches exactly one key, the one it is given, so the same code runs on Redis Cluster:
 *   bx:s:{S}:facts     hash  field -> "<order key>\t<value>"   one student's facts
 *   bx:s:{S}:sum       hash  name -> value                      derived summary (streaks, tier)
 *   bx:c:{C}:reported  hash  "YYYY-MM-DD|P" -> "<order key>\t<value>"  class C's roll calls
 * Fact fields are "YYYY-MM-DD|P" (P the period 1..12, 0 the whole day, no leading zeros) or
 * "L|<event id>" for a leave request. Ids are registry ids (1 to 32 of [A-Za-z0-9_-]), so a brace
 * never appears inside a tag.
 *
 * Compare-and-set. A fact replaces the stored one for its field only when (order key, value) is
 * greater, bytewise (the scripts compare bytes, never the server's locale; the PostgreSQL columns
 * are COLLATE "C"). The order key is the zero-padded recorded_at in milliseconds, '|' and the event
 * id (score_store_order_key), so the later record wins, an older one changes nothing, a repeated
 * one changes nothing, and the result does not depend on the order of arrival. Class reports follow
 * the same rule.
 *
 * Implied facts and the rule for presences. A roll call lists its exceptions and bx-ingest emits a
 * "present" fact for every other student of the class, beside one class_report. Storing those
 * presences would cost a row and a hash field per student per school day (billions a year for a
 * province), so the caller marks them implied (score_store_fact.implied): a presence the class
 * report already says. The rule, the same for Redis and PostgreSQL:
 *   - a class report is always stored (coverage: the class did its roll call that day/period);
 *   - an explicit fact (absent, late, leave, early_leave, a leave request, and any presence not
 *     derived from a roll call) is always stored;
 *   - an implied fact is stored only where it replaces a stored fact of its field (a correction:
 *     the roll call redone, the absent student found); it then stays as a tombstone that also
 *     defeats older facts arriving later. Otherwise it is dropped (SCORE_STORE_IMPLIED).
 * So the day state of a student is: the stored fact for the field if there is one; else present
 * if the class reported that day (period); else not_reported. Rebuild therefore needs nothing but
 * the stored facts and the class reports. The one order dependence left: an implied presence that
 * arrives before an older explicit fact of the same field (two records of one student and day
 * accepted in the same instant by two bx-ingest replicas) is dropped and the older fact stays.
 *
 * Keeping Redis and PostgreSQL equal. Redis decides (its scripts see one student's state
 * atomically); PostgreSQL records: score_store_pg_write_facts writes every explicit fact, and an
 * implied one only when Redis answered SCORE_STORE_STORED or SCORE_STORE_CURRENT for it, with the
 * same compare-and-set. So after every batch the facts in PostgreSQL are exactly the Redis facts
 * hashes, whatever the order and however often a batch is replayed after a crash (a replay answers
 * SCORE_STORE_CURRENT for what Redis already holds, so PostgreSQL still gets it). Commit the Kafka
 * offsets only after score_store_pg_write_facts and score_store_pg_write_reports succeeded. After
 * Redis lost its data, run score_store_rebuild (bxctl rebuild) before bx-score consumes again.
 *
 * Summaries are derived: they are not in PostgreSQL; rebuild asks the caller to recompute them
 * (score_store_recompute_fn). A summary equal to the "nothing to say" default should be written as
 * zero fields (which deletes the key), so rebuilt state equals live state for students with no
 * facts.
 *
 * Errors: BX_EINVAL names the item and field ("facts[3].field: ...") and nothing was sent; after
 * BX_EIO or BX_ETRANSIENT from Redis the connection is unusable (hiredis set c->err): reconnect,
 * make a new score_store_redis and redo the batch (every write here is idempotent). A
 * score_store_redis is not thread-safe; one per thread, like its connection. */
#ifndef BX_SCORE_STORE_H
#define BX_SCORE_STORE_H

#include "bx_calendar.h"
#include "bx_redis.h"
#include "bx_status.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define SCORE_STORE_ID_MAX        32
#define SCORE_STORE_FIELD_MAX     130  /* "L|" and a 128-character event id */
#define SCORE_STORE_ORDER_KEY_MAX 160  /* printable ASCII, no space */
#define SCORE_STORE_VALUE_MAX     1024 /* UTF-8, no control characters */
#define SCORE_STORE_SUMMARY_MAX   256  /* fields in one summary */
#define SCORE_STORE_KEY_MAX       64   /* longest Redis key, NUL included */

/* One fact for one student; every pointer is borrowed for the duration of the call. */
typedef struct score_store_fact {
    const char *student_id;
    const char *school_id; /* PostgreSQL only: the school that recorded it */
    const char *class_id;  /* PostgreSQL only */
    const char *field;     /* "YYYY-MM-DD|P" or "L|<event id>" */
    const char *order_key; /* score_store_order_key */
    const char *value;     /* opaque to the store, may be empty */
    bool implied;          /* a presence the class report already says: see the rule above */
} score_store_fact;

/* One class roll call (coverage) of a day or a period; pointers borrowed for the call. */
typedef struct score_store_report {
    const char *class_id;
    const char *school_id; /* PostgreSQL only */
    const char *field;     /* "YYYY-MM-DD|P" */
    const char *order_key;
    const char *value; /* opaque (counts, say), may be empty */
} score_store_report;

/* What a compare-and-set did with one fact or report. */
typedef enum score_store_outcome {
    SCORE_STORE_SUPERSEDED = 0, /* the stored one is newer: nothing changed */
    SCORE_STORE_STORED = 1,     /* stored: the field was empty or held an older one */
    SCORE_STORE_CURRENT = 2,    /* exactly this was stored already (a repeat): nothing changed */
    SCORE_STORE_IMPLIED = 3     /* implied and nothing to replace: dropped, nothing changed */
} score_store_outcome;

/* One entry of a hash as read back. order_key is "" for summaries. */
typedef struct score_store_entry {
    const char *field;
    const char *order_key;
    const char *value;
} score_store_entry;

/* Entries sorted by field (bytewise). The strings point into text; all owned by the list, freed
 * by score_store_entries_free. */
typedef struct score_store_entries {
    score_store_entry *items;
    size_t count;
    char *text;
} score_store_entries;

/* Frees what e holds and leaves it empty; e may be NULL. */
void score_store_entries_free(score_store_entries *e);

/* A student's derived summary: count pairs of name and value (borrowed for the call). Names are
 * 1 to 64 of [A-Za-z0-9_.:-], values as score_store_fact.value. count 0 deletes the summary. */
typedef struct score_store_summary {
    const char *student_id;
    const char *const *names;
    const char *const *values;
    size_t count;
} score_store_summary;

/* --- Names ------------------------------------------------------------------------------------ */

/* "<13-digit recorded_at ms>|<event id>" into out (at least SCORE_STORE_ORDER_KEY_MAX + 1 bytes).
 * BX_EINVAL for a time before 1970 or past 2286, or an event id that is not 1 to 128 of
 * [A-Za-z0-9._:-]. */
bx_status score_store_order_key(bx_time_ms recorded_at, const char *event_id, char *out,
                                size_t size) BX_MUSTCHECK;
/* "YYYY-MM-DD|P" (period 0..12, 0 = whole day) into out (at least 14 bytes). */
bx_status score_store_field_day(bx_date day, int period, char *out, size_t size) BX_MUSTCHECK;
/* "L|<event id>" into out (at least SCORE_STORE_FIELD_MAX + 1 bytes). */
bx_status score_store_field_leave(const char *event_id, char *out, size_t size) BX_MUSTCHECK;
/* Parses a fact field: a day field gives *day and *period; a leave field gives BX_DATE_NONE and
 * -1. BX_EINVAL when it is neither, or not in canonical form. */
bx_status score_store_field_parse(const char *field, bx_date *day, int *period) BX_MUSTCHECK;
/* The Redis keys ("bx:s:{S}:facts", "bx:s:{S}:sum", "bx:c:{C}:reported") into out (at least
 * SCORE_STORE_KEY_MAX bytes); BX_EINVAL for an id that is not a registry id. */
bx_status score_store_key_facts(const char *student_id, char *out, size_t size) BX_MUSTCHECK;
bx_status score_store_key_summary(const char *student_id, char *out, size_t size) BX_MUSTCHECK;
bx_status score_store_key_reported(const char *class_id, char *out, size_t size) BX_MUSTCHECK;

/* --- Redis ------------------------------------------------------------------------------------ */

typedef struct score_store_redis score_store_redis;

/* Loads the scripts (SCRIPT LOAD) on redis, which stays borrowed (the caller keeps and frees it)
 * until score_store_redis_free. Scripts run by EVALSHA; a NOSCRIPT answer (Redis restarted or
 * flushed its script cache) is answered by EVAL with the source, so the caller never sees it. */
bx_status score_store_redis_new(redisContext *redis, score_store_redis **out,
                                bx_error *err) BX_MUSTCHECK;
/* The same over a bx_redis handle (one server or a Redis Cluster: scripts are loaded on every
 * master), borrowed likewise. After BX_ETRANSIENT the handle is broken (bx_redis_broken): close
 * it, open another and make a new score_store_redis. */
bx_status score_store_redis_open(bx_redis *redis, score_store_redis **out,
                                 bx_error *err) BX_MUSTCHECK;
void score_store_redis_free(score_store_redis *st);

/* Applies n facts by compare-and-set, pipelined: one script call per run of consecutive facts of
 * one student (so a batch sorted by student costs a call per student), replies read in windows
 * of a few hundred calls. outcomes (n entries) and stored (count of SCORE_STORE_STORED) may be
 * NULL. school_id and class_id are not needed here (may be NULL). */
bx_status score_store_apply_facts(score_store_redis *st, const score_store_fact *facts, size_t n,
                                  score_store_outcome *outcomes, size_t *stored,
                                  bx_error *err) BX_MUSTCHECK;
/* The same for class reports, into each class's coverage hash. */
bx_status score_store_apply_reports(score_store_redis *st, const score_store_report *reports,
                                    size_t n, score_store_outcome *outcomes, size_t *stored,
                                    bx_error *err) BX_MUSTCHECK;

/* Reads the facts of n students, pipelined: out[i] (n entries, caller frees each with
 * score_store_entries_free) gets student_ids[i]'s facts sorted by field; empty when there are none.
 * On failure every out[i] is empty. */
bx_status score_store_load_facts(score_store_redis *st, const char *const *student_ids, size_t n,
                                 score_store_entries *out, bx_error *err) BX_MUSTCHECK;
/* Reads the roll calls of n classes the same way (field "YYYY-MM-DD|P"). */
bx_status score_store_load_reports(score_store_redis *st, const char *const *class_ids, size_t n,
                                   score_store_entries *out, bx_error *err) BX_MUSTCHECK;
/* Reads n students' summaries (order_key ""). */
bx_status score_store_load_summaries(score_store_redis *st, const char *const *student_ids,
                                     size_t n, score_store_entries *out,
                                     bx_error *err) BX_MUSTCHECK;
/* Which hashes score_store_load_many reads. */
typedef enum score_store_hash {
    SCORE_STORE_HASH_FACTS,    /* as score_store_load_facts: ids are student ids */
    SCORE_STORE_HASH_SUMMARY,  /* as score_store_load_summaries */
    SCORE_STORE_HASH_REPORTED, /* as score_store_load_reports: ids are class ids */
} score_store_hash;

/* One list of hashes to read: n ids, out (n entries) as the function named above fills it. */
typedef struct score_store_load {
    score_store_hash hash;
    const char *const *ids;
    size_t n;
    score_store_entries *out;
} score_store_load;

/* Reads several lists of hashes in one pipeline (a round trip per thousand hashes instead of one
 * per list and window), each out as its own load function would fill it. On failure every out of
 * every list is empty. */
bx_status score_store_load_many(score_store_redis *st, const score_store_load *loads, size_t nloads,
                                bx_error *err) BX_MUSTCHECK;
/* --- One round trip of mixed calls (bx-score's batches) ----------------------------------------
 *
 * A pipe queues compare-and-set calls and hash reads and runs them in one pipeline (windows of
 * about a thousand calls), so that a batch's writes and the reads its recompute needs cost one
 * round trip instead of one per kind. Calls on one key run in the order queued (on one server
 * every call does); score_store_pipe_barrier makes the calls queued after it wait for the answers
 * to those before it when the store speaks to a Redis Cluster, whose nodes run their parts in
 * parallel (on one server it costs nothing). Every pointer handed to a queue function is borrowed
 * until score_store_pipe_run returns; out, outcomes and present are filled by it. A pipe is
 * reused after score_store_pipe_clear. Not thread-safe; one per thread. */
typedef struct score_store_pipe score_store_pipe;

/* The checks score_store_apply_facts and score_store_apply_reports make before sending anything,
 * facts first, with the same messages: for a batch whose calls are queued one student at a time. */
bx_status score_store_check(const score_store_fact *facts, size_t n,
                            const score_store_report *reports, size_t m,
                            bx_error *err) BX_MUSTCHECK;

bx_status score_store_pipe_new(score_store_pipe **out, bx_error *err) BX_MUSTCHECK;
void score_store_pipe_free(score_store_pipe *p);
/* Forgets the queued calls (what run filled stays the caller's). */
void score_store_pipe_clear(score_store_pipe *p);
/* How many calls are queued. */
size_t score_store_pipe_count(const score_store_pipe *p);

/* Compare-and-set of n facts, all of one student (as score_store_apply_facts: one script call per
 * GROUP of facts); outcomes (n entries) filled by the run. BX_EINVAL names the fact and member. */
bx_status score_store_pipe_apply_facts(score_store_pipe *p, const score_store_fact *facts, size_t n,
                                       score_store_outcome *outcomes, bx_error *err) BX_MUSTCHECK;
/* The same for n reports, all of one class. */
bx_status score_store_pipe_apply_reports(score_store_pipe *p, const score_store_report *reports,
                                         size_t n, score_store_outcome *outcomes,
                                         bx_error *err) BX_MUSTCHECK;
/* Reads one hash (as score_store_load_many would) into *out; *out is emptied first. */
bx_status score_store_pipe_load(score_store_pipe *p, score_store_hash hash, const char *id,
                                score_store_entries *out, bx_error *err) BX_MUSTCHECK;
/* Whether the student's facts hash holds each of n fields (HMGET): present[i]. */
bx_status score_store_pipe_has_fields(score_store_pipe *p, const char *student_id,
                                      const char *const *fields, size_t n, bool *present,
                                      bx_error *err) BX_MUSTCHECK;
void score_store_pipe_barrier(score_store_pipe *p);
/* Runs every queued call and fills what they fill; *stored (may be NULL) gets the count of
 * SCORE_STORE_STORED outcomes. A call answered NOSCRIPT is sent again with the script (and the
 * reads queued after it in its window read again). On failure every out of a read is empty and
 * the caller redoes the whole batch (every write is idempotent). The queue stays as it was. */
bx_status score_store_pipe_run(score_store_redis *st, score_store_pipe *p, size_t *stored,
                               bx_error *err) BX_MUSTCHECK;

/* Replaces n students' summaries, each atomically (the old names gone, the new ones set),
 * pipelined. changed (n entries, may be NULL): whether the stored summary differed. */
bx_status score_store_put_summaries(score_store_redis *st, const score_store_summary *summaries,
                                    size_t n, bool *changed, bx_error *err) BX_MUSTCHECK;

/* --- PostgreSQL (schema attendance, migration 0003) ------------------------------------------ */

/* Writes the durable record of n facts in one statement: every explicit fact, and each implied
 * one whose outcome (from score_store_apply_facts on the same facts) is SCORE_STORE_STORED or
 * SCORE_STORE_CURRENT; outcomes may be NULL only when no fact is implied. Same compare-and-set as
 * Redis; several facts of one field in the batch are fine (the greatest counts). school_id and
 * class_id are required. *written (may be NULL): rows inserted or changed. Runs inside the caller's
 * transaction if one is open. */
bx_status score_store_pg_write_facts(PGconn *db, const score_store_fact *facts,
                                     const score_store_outcome *outcomes, size_t n, size_t *written,
                                     bx_error *err) BX_MUSTCHECK;
/* The same for class reports (table attendance.class_report). */
bx_status score_store_pg_write_reports(PGconn *db, const score_store_report *reports, size_t n,
                                       size_t *written, bx_error *err) BX_MUSTCHECK;

/* Called once per student with all its stored facts (sorted by field; borrowed until the
 * callback returns). A status other than BX_OK stops the walk and is returned. */
typedef bx_status score_store_student_fn(const char *student_id, const score_store_entries *facts,
                                         void *arg);
/* Called once per class with all its reports. */
typedef bx_status score_store_class_fn(const char *class_id, const score_store_entries *reports,
                                       void *arg);

/* Filters for the walks and the rebuild; every member may be NULL (no filter). */
typedef struct score_store_scope {
    const char *school_id; /* only facts and reports recorded by this school */
} score_store_scope;

/* Walks the facts in PostgreSQL, ordered by student id (bytewise), from one consistent snapshot
 * (a REPEATABLE READ transaction, read through a cursor so memory stays small). db must not be
 * in a transaction and the callbacks must not use it. */
bx_status score_store_pg_each_student(PGconn *db, const score_store_scope *scope,
                                      score_store_student_fn *fn, void *arg,
                                      bx_error *err) BX_MUSTCHECK;
bx_status score_store_pg_each_class(PGconn *db, const score_store_scope *scope,
                                    score_store_class_fn *fn, void *arg,
                                    bx_error *err) BX_MUSTCHECK;

/* --- Rebuild ---------------------------------------------------------------------------------- */

/* Called by score_store_rebuild for every student with stored facts, once its facts and every class
 * report are back in Redis, so it can recompute the summary (score_store_put_summaries). Its own
 * Redis writes go through the same score_store_redis; a status other than BX_OK stops the rebuild.
 */
typedef bx_status score_store_recompute_fn(const char *student_id, void *arg);

typedef struct score_store_rebuild_stats {
    size_t students, facts, classes, reports;
} score_store_rebuild_stats;

/* Re-applies every class report and then every fact of PostgreSQL to Redis (pipelined, about a
 * thousand per round trip), so that after the keys were lost the facts and coverage hashes are
 * identical to what they were. Facts are applied as explicit (what PostgreSQL holds was stored).
 * Existing keys are not deleted first: compare-and-set keeps whichever is newer, so run it on an
 * empty Redis (after FLUSHALL, or with bx-score stopped) to get exactly PostgreSQL's state.
 * recompute may be NULL; stats may be NULL. */
bx_status score_store_rebuild(PGconn *db, score_store_redis *st, const score_store_scope *scope,
                              score_store_recompute_fn *recompute, void *arg,
                              score_store_rebuild_stats *stats, bx_error *err) BX_MUSTCHECK;

/* The scripts' Lua source (for tests that check which keys they touch). */
const char *score_store_lua_apply(void);
const char *score_store_lua_summary(void);

#endif
