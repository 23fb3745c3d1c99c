/* bx_map: linear-probing string map (FNV-1a), growing at 70% load. */
#include "bx_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key;
    void *value;
    uint64_t hash;
};

struct bx_map {
    struct entry *slots;
    size_t cap; /* power of two */
    size_t count;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

bx_map *bx_map_new(void)
{
    bx_map *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof(*m->slots));
    if (m->slots == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void bx_map_free(bx_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static struct entry *find_slot(struct entry *slots, size_t cap, const char *key, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].key && (slots[i].hash != h || strcmp(slots[i].key, key) != 0))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static bx_status grow(bx_map *m)
{
    size_t cap = m->cap * 2;
    struct entry *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return BX_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            *find_slot(slots, cap, m->slots[i].key, m->slots[i].hash) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return BX_OK;
}

bx_status bx_map_put(bx_map *m, const char *key, void *value)
{
    if ((m->count + 1) * 10 > m->cap * 7) {
        bx_status s = grow(m);
        if (s != BX_OK)
            return s;
    }
    uint64_t h = fnv1a(key);
    struct entry *e = find_slot(m->slots, m->cap, key, h);
    if (e->key == NULL) {
        e->key = strdup(key);
        if (e->key == NULL)
            return BX_ENOMEM;
        e->hash = h;
        m->count++;
    }
    e->value = value;
    return BX_OK;
}

void *bx_map_get(const bx_map *m, const char *key)
{
    struct entry *e = find_slot(m->slots, m->cap, key, fnv1a(key));
    return e->key ? e->value : NULL;
}

size_t bx_map_count(const bx_map *m)
{
    return m->count;
}

void bx_map_each(const bx_map *m, void (*fn)(const char *key, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            fn(m->slots[i].key, m->slots[i].value, arg);
}
