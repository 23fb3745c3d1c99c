/* analytics: the messages bx-score publishes: an assessment on bx.risk.v1 and its pseudonymised
 * copy on bx.analytics.risk.v1 (no student id, no class, no registry flags). */
#ifndef SCORE_ANALYTICS_H
#define SCORE_ANALYTICS_H

#include "bx_buf.h"
#include "recompute.h"

#define SCORE_PSEUDONYM_SIZE 65  /* 64 lower-case hex digits and a NUL */
#define SCORE_RISK_ID_SIZE   129 /* an event id of bx.risk.v1 and a NUL */

/* HMAC-SHA256 of text with key, as lower-case hex. */
void score_pseudonym(const char *key, const char *text, char out[SCORE_PSEUDONYM_SIZE]);
/* The assessment's event id: the same state of the same student on the same date gives the same
 * id, so an assessment published again after a crash is a duplicate downstream can drop.
 * "risk:<student>:<date>:<streak>:<streak start>:<tier>:<periods>:<trigger>". */
void score_risk_event_id(const score_outcome *o, char out[SCORE_RISK_ID_SIZE]);
/* Appends the bx.risk.v1 message of an outcome with a trigger (o->student set). */
bx_status score_risk_message(const score_outcome *o, bx_time_ms assessed_at,
                             bx_buf *out) BX_MUSTCHECK;
/* Appends the bx.analytics.risk.v1 message: subject and event id are pseudonyms under key; the
 * score is the attendance factors' points only (profile points would reveal that flags exist). */
bx_status score_analytics_message(const score_outcome *o, const char *key, bx_time_ms assessed_at,
                                  bx_buf *out) BX_MUSTCHECK;

#endif
