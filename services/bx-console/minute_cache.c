/* minute_cache: the pages' values kept a minute by key (see minute_cache.h). */
#include "minute_cache.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

bool minute_cache_read(minute_cache *c, const char *key, long long now,
                       void (*read)(const void *value, long long at, void *arg), void *arg)
{
    bool hit = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nslots && !hit; i++) {
        const minute_cache_slot *e = &c->slots[i];
        if (e->value && strcmp(e->key, key) == 0 && now >= e->at && now - e->at < c->ttl_ms) {
            read(e->value, e->at, arg);
            hit = true;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void minute_cache_keep(minute_cache *c, const char *key, long long now, void *value)
{
    assert(value != NULL && c->nslots > 0);
    pthread_mutex_lock(&c->lock);
    minute_cache_slot *e = &c->slots[0];
    for (size_t i = 0; i < c->nslots; i++) {
        minute_cache_slot *s = &c->slots[i];
        if (s->value && strcmp(s->key, key) == 0) {
            e = s;
            break;
        }
        if (e->value && (s->value == NULL || s->at < e->at))
            e = s;
    }
    if (e->value)
        c->free_value(e->value);
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->at = now;
    e->value = value;
    pthread_mutex_unlock(&c->lock);
}

void minute_cache_clear(minute_cache *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nslots; i++) {
        if (c->slots[i].value)
            c->free_value(c->slots[i].value);
        memset(&c->slots[i], 0, sizeof(c->slots[i]));
    }
    pthread_mutex_unlock(&c->lock);
}
