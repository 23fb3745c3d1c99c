/* dedup: remembered client event ids (ingest.seen_event). One thread owns a PostgreSQL
 * connection and answers the duplicate checks of every waiting request with one statement per
 * batch, so concurrent requests share round trips instead of each paying its own. */
#ifndef BX_INGEST_DEDUP_H
#define BX_INGEST_DEDUP_H

#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct dedup_batcher dedup_batcher;

/* Starts the batching thread; it connects (and reconnects) to pg_url on demand. */
bx_status dedup_new(const char *pg_url, dedup_batcher **out, bx_error *err) BX_MUSTCHECK;
/* Answers what is queued, stops the thread, closes the connection. NULL does nothing. */
void dedup_free(dedup_batcher *d);
/* Sets seen[i] when keys[i] was accepted for school before. Blocks until answered; keys and seen
 * are borrowed for the call. BX_ETRANSIENT when the database is unreachable (nothing is set). */
bx_status dedup_check(dedup_batcher *d, const char *school, const char *const *keys, size_t n,
                      bool *seen) BX_MUSTCHECK;
/* As dedup_check, but returns at once: answer(arg, status) is called once from the batcher's
 * thread after seen is filled (status as dedup_check's). school, keys and seen stay borrowed until
 * then. BX_ENOMEM when nothing was queued (answer is not called). */
typedef void(dedup_answer_fn)(void *arg, bx_status status);
bx_status dedup_check_async(dedup_batcher *d, const char *school, const char *const *keys, size_t n,
                            bool *seen, dedup_answer_fn *answer, void *arg) BX_MUSTCHECK;
/* Queues keys to be remembered as accepted for school and returns at once (the strings are
 * copied). Any dedup_check queued after this call sees them, whether or not they are committed
 * yet; a failure to store them is logged by the batcher. BX_ENOMEM when nothing was queued. */
bx_status dedup_remember(dedup_batcher *d, const char *school, const char *const *keys, size_t n,
                         const char *topic) BX_MUSTCHECK;

#endif
