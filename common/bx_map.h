/* bx_map: an open-addressing hash map from strings to pointers, for in-memory registry lookups. */
#ifndef BX_MAP_H
#define BX_MAP_H

#include "bx_status.h"

#include <stddef.h>

typedef struct bx_map bx_map;

bx_map *bx_map_new(void);
/* Frees the map and its key copies; values are the caller's. NULL does nothing. */
void bx_map_free(bx_map *m);
/* Inserts or replaces; the key is copied, the value borrowed. */
bx_status bx_map_put(bx_map *m, const char *key, void *value) BX_MUSTCHECK;
void *bx_map_get(const bx_map *m, const char *key);
size_t bx_map_count(const bx_map *m);
/* Calls fn for every entry, in no particular order. */
void bx_map_each(const bx_map *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
