/* minute_cache: values the pages keep a short while (their minute) by key, shared by the worker
 * threads: a fixed table of slots, a value found only while fresh, a new value taking its key's
 * slot, else an empty one, else the oldest. */
#ifndef CONSOLE_MINUTE_CACHE_H
#define CONSOLE_MINUTE_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define MINUTE_CACHE_KEY_MAX 160 /* a longer key is never found */

typedef struct minute_cache_slot {
    char key[MINUTE_CACHE_KEY_MAX];
    long long at; /* when kept (a request's now, ms) */
    void *value;  /* owned by the cache; NULL: an empty slot */
} minute_cache_slot;

/* Defined once, statically, by the page that keeps the values:
 *   static minute_cache_slot term_slots[64];
 *   static minute_cache term_cache = {PTHREAD_MUTEX_INITIALIZER, 60000, free, 64, term_slots}; */
typedef struct minute_cache {
    pthread_mutex_t lock;
    long long ttl_ms;                /* a value kept at `at` is fresh while now - at < ttl_ms */
    void (*free_value)(void *value); /* a value replaced or cleared */
    size_t nslots;
    minute_cache_slot *slots;
} minute_cache;

/* When key has a value kept at most ttl_ms before now (and not after it), calls read(value, at,
 * arg) under the cache's lock, value borrowed for the call only, and returns true. Else false. */
bool minute_cache_read(minute_cache *c, const char *key, long long now,
                       void (*read)(const void *value, long long at, void *arg), void *arg);

/* Keeps value (not NULL; takes ownership) under key as of now. */
void minute_cache_keep(minute_cache *c, const char *key, long long now, void *value);

/* Frees every value (tests; the pages' caches live as long as the process). */
void minute_cache_clear(minute_cache *c);

#endif
