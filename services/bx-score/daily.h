/* daily: bx-score's publication of bx.analytics.attendance.v1: once a school day is over by the
 * clock, the day's aggregate of every class, school, township and county (analytics.h) is
 * published, county by county; a later fact or roll call of a day already published marks that
 * school's day (attendance.analytics_dirty, in the fact's own transaction), and the county's day
 * is aggregated again and the places whose counts changed are published again.
 *
 * Where a county stands is attendance.analytics_sent (migration 0017): the last day its county
 * row was published; a county with none starts at its first roll call. Each place's digest is
 * recorded after the broker acknowledged the message, so a crash in between publishes the same
 * message (same event id) again. */
#ifndef SCORE_DAILY_H
#define SCORE_DAILY_H

#include "bx_kafka.h"
#include "recompute.h"
#include "store.h"

#include <libpq-fe.h>

/* Everything borrowed for the call. */
typedef struct score_daily_env {
    PGconn *db;
    const score_env *score; /* policy, registry, profiles, Redis store */
    bx_producer *producer;
    const char *topic; /* bx.analytics.attendance.v1 */
} score_daily_env;

/* Marks the days before today that n facts and m reports touch (school and day) for a second
 * aggregate. Runs in the caller's open transaction. Leave requests (no day) mark nothing, nor do
 * the facts of a school the registry does not have: no county's aggregate would clear them. */
bx_status score_daily_mark(PGconn *db, const score_store_fact *facts, size_t n,
                           const score_store_report *reports, size_t m, bx_date today,
                           bx_error *err) BX_MUSTCHECK;

/* Publishes what is due at now: every closed school day of every county not published yet, then,
 * when marked, the marked days (each a whole county's day aggregated again: bx-score asks for
 * them when it is idle, or once a minute while it works through a backlog, not at every tick).
 * *published (may be NULL) counts the messages sent. */
bx_status score_daily_publish(const score_daily_env *env, bx_time_ms now, bool marked,
                              int *published, bx_error *err) BX_MUSTCHECK;

#endif
