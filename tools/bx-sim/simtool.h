/* simtool: the edge of bx-sim: settling the pipeline, driving a term through bx-ingest, and the
 * summary's queries. */
#ifndef BX_SIMTOOL_H
#define BX_SIMTOOL_H

#include "sim.h"

#include <libpq-fe.h>
#include <stdbool.h>

/* ---- settle: every consumer group has no lag, due timers fired, the outbox relayed ---- */

/* bx-sim's use of common/bx_settle, the check bxctl settle makes: a bx_settle. */
typedef struct bx_settle sim_settle;
/* groups: NULL-ended "GROUP:TOPIC[,TOPIC]" specs (as bxctl settle takes them), in pipeline order
 * (bx-score first). db is borrowed for the life of the settle (and reset when a check finds it
 * broken). */
bx_status sim_settle_new(const char *brokers, const char *const *groups, PGconn *db,
                         sim_settle **out, bx_error *err) BX_MUSTCHECK;
void sim_settle_free(sim_settle *s);
/* One check (bx_settle_check): -1 when quiet, else the first thing still busy in pipeline order:
 * i < ngroups the i-th group (lagging), ngroups due timers, ngroups + 1 the outbox, more: a
 * settle_pending function (bx-notify's due work). *what names it (valid until the next check) and
 * *left says how much is left (-1 unknown). */
int sim_settle_check(sim_settle *s, const char **what, long long *left);
/* Waits until the pipeline is quiet at the clock's current time on two checks in a row with the
 * same end offsets (bx_settle_wait, as bxctl settle), or timeout_ms. */
bx_status sim_settle_wait(sim_settle *s, int timeout_ms, bx_error *err) BX_MUSTCHECK;
/* Commits `group`'s offsets at the current end of each topic ("a,b"), so a new group starts
 * with the messages produced from now on. */
bx_status sim_group_at_end(const char *brokers, const char *group, const char *topics,
                           bx_error *err) BX_MUSTCHECK;
/* Writes "partition offset" lines of the topic's current end into path. */
bx_status sim_topic_mark(const char *brokers, const char *topic, const char *path,
                         bx_error *err) BX_MUSTCHECK;

/* ---- drive: a term through bx-ingest ---- */

typedef struct sim_drive_conf {
    const char *api;       /* http://127.0.0.1:PORT */
    const char *keys_file; /* "school_id bxk_..." lines */
    const char *state_dir;
    int days;      /* school days to simulate; 0: the whole term */
    bx_date from;  /* the first school day to simulate; BX_DATE_NONE: the term's first */
    bool progress; /* a line per day on stderr */
    const char *brokers;
    const char *const *groups; /* for settle */
    PGconn *db;
    /* bxctl, for the registry's changes in the term (transfers between schools: bxctl import
     * students); NULL: no transfers are driven */
    const char *bxctl;
} sim_drive_conf;

typedef struct sim_drive_counts {
    long long rollcalls, rollcalls_late, rollcalls_forgotten, leaves, leaves_phoned, actions,
        actions_late, accepted, duplicates, rejected, failed, transfers;
    int school_days;
    bx_date last_day;
    double wall_seconds, settle_seconds, post_seconds;
} sim_drive_counts;

bx_status sim_drive(const sim_county *c, const sim_drive_conf *conf, sim_drive_counts *out,
                    bx_error *err) BX_MUSTCHECK;

/* ---- summary ---- */

typedef struct sim_summary_conf {
    const char *state_dir;
    const char *brokers;
    const char *bxctl; /* for the report by school; NULL: left out */
    PGconn *db;
} sim_summary_conf;

/* Prints the summary (deterministic for a seed) to stdout. */
bx_status sim_summary(const sim_county *c, const sim_summary_conf *conf,
                      bx_error *err) BX_MUSTCHECK;

/* Case stages by count for the progress line ("contact_family 3, home_visit 1; closed 2") into
 * out, SMS asked for, and SMS sent (-1 without bx-notify's tables). */
bx_status sim_progress_cases(PGconn *db, char *out, size_t size, long long *sms,
                             long long *sms_sent) BX_MUSTCHECK;

#endif
