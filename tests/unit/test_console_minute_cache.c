/* bx-console's minute cache (minute_cache.c): a value is found only while fresh and under its own
 * key, a key kept again replaces its value, a full table gives up its oldest slot. */
#include "bx_test.h"
#include "minute_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int freed;

static void free_counted(void *v)
{
    freed++;
    free(v);
}

static void read_text(const void *value, long long at, void *arg)
{
    (void)at;
    snprintf(arg, 32, "%s", (const char *)value); /* every reader's buffer is 32 bytes */
}

static char *text(const char *s)
{
    return strdup(s);
}

BX_TEST(minute_cache_fresh_only)
{
    static minute_cache_slot slots[4];
    static minute_cache c = {PTHREAD_MUTEX_INITIALIZER, 60000, free_counted, 4, slots};
    freed = 0;
    char got[32] = "";
    CHECK(!minute_cache_read(&c, "a", 1000, read_text, got));
    minute_cache_keep(&c, "a", 1000, text("one"));
    static const struct {
        const char *key;
        long long now;
        bool hit;
    } cases[] = {{"a", 1000, true}, {"a", 60999, true}, {"a", 61000, false},
                 {"a", 999, false}, {"b", 1000, false}, {"", 1000, false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        got[0] = '\0';
        CHECK_INT(minute_cache_read(&c, cases[i].key, cases[i].now, read_text, got), cases[i].hit);
        CHECK_STR(got, cases[i].hit ? "one" : "");
    }
    minute_cache_keep(&c, "a", 2000, text("two")); /* its own slot again */
    CHECK_INT(freed, 1);
    CHECK(minute_cache_read(&c, "a", 61999, read_text, got));
    CHECK_STR(got, "two");
    minute_cache_clear(&c);
    CHECK_INT(freed, 2);
    CHECK(!minute_cache_read(&c, "a", 2000, read_text, got));
}

BX_TEST(minute_cache_full_gives_up_the_oldest)
{
    static minute_cache_slot slots[3];
    static minute_cache c = {PTHREAD_MUTEX_INITIALIZER, 60000, free_counted, 3, slots};
    freed = 0;
    minute_cache_keep(&c, "k1", 3000, text("v1"));
    minute_cache_keep(&c, "k2", 1000, text("v2")); /* the oldest */
    minute_cache_keep(&c, "k3", 2000, text("v3"));
    CHECK_INT(freed, 0);
    minute_cache_keep(&c, "k4", 4000, text("v4"));
    CHECK_INT(freed, 1);
    char got[32] = "";
    CHECK(!minute_cache_read(&c, "k2", 4000, read_text, got));
    static const char *const kept[][2] = {{"k1", "v1"}, {"k3", "v3"}, {"k4", "v4"}};
    for (size_t i = 0; i < 3; i++) {
        CHECK(minute_cache_read(&c, kept[i][0], 4000, read_text, got));
        CHECK_STR(got, kept[i][1]);
    }
    minute_cache_clear(&c);
    CHECK_INT(freed, 4);
}
