/* test_redis_cluster: bx_redis's cluster parts from tables: CRC16 and key slots (Redis Cluster's
 * own vectors), hash tags, which arguments of a command are keys, redirection replies, and
 * bx-score's keys (every key of one student or class in one slot). */
#include "bx_redis.h"
#include "bx_test.h"
#include "store.h"

#include <stdlib.h>

#define LIT(s) s, sizeof(s) - 1

BX_TEST(crc16_xmodem_vectors)
{
    static const struct {
        const char *in;
        uint16_t crc;
    } rows[] = {
        {"", 0x0000},
        {"123456789", 0x31C3}, /* the check value of CRC-16/XMODEM, and of the cluster spec */
        {"A", 0x58E5},
        {"foo", 0xAF96},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_INT(bx_redis_crc16(rows[i].in, strlen(rows[i].in)), rows[i].crc);
}

BX_TEST(key_slots_and_hash_tags)
{
    static const struct {
        const char *key;
        unsigned slot;
    } rows[] = {
        /* CLUSTER KEYSLOT of Redis 7.0 for each */
        {"foo", 12182},
        {"bar", 5061},
        {"hello", 866},
        {"somekey", 11058},
        {"123456789", 0x31C3 & 16383},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_INT(bx_redis_key_slot(rows[i].key, strlen(rows[i].key)), rows[i].slot);
    /* The tag is what lies between the first '{' and the next '}', when it is not empty. */
    CHECK_INT(bx_redis_key_slot(LIT("{user1000}.following")), bx_redis_key_slot(LIT("user1000")));
    CHECK_INT(bx_redis_key_slot(LIT("{user1000}.followers")), bx_redis_key_slot(LIT("user1000")));
    CHECK_INT(bx_redis_key_slot(LIT("foo{}{bar}")), bx_redis_crc16(LIT("foo{}{bar}")) & 16383);
    CHECK_INT(bx_redis_key_slot(LIT("foo{{bar}}zap")), bx_redis_key_slot(LIT("{bar")));
    CHECK_INT(bx_redis_key_slot(LIT("foo{bar}{zap}")), bx_redis_key_slot(LIT("bar")));
    CHECK_INT(bx_redis_key_slot(LIT("foo{bar")), bx_redis_crc16(LIT("foo{bar")) & 16383);
    /* Bytes above 0x7f hash as bytes. */
    CHECK_INT(bx_redis_key_slot(LIT("{\xe5\xad\xa6}x")), bx_redis_key_slot(LIT("\xe5\xad\xa6")));
}

static int slot_of(const char **argv, int argc, bx_status *st)
{
    size_t len[16];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    int slot = -2;
    bx_error err = {0};
    *st = bx_redis_command_slot(argc, argv, len, &slot, &err);
    return slot;
}

BX_TEST(command_keys)
{
    bx_status st;
    int foo = (int)bx_redis_key_slot(LIT("foo"));
    CHECK_INT(slot_of((const char *[]){"HGETALL", "foo"}, 2, &st), foo);
    CHECK_INT(st, BX_OK);
    CHECK_INT(slot_of((const char *[]){"evalsha", "abc", "1", "foo", "bar", "baz"}, 6, &st), foo);
    CHECK_INT(st, BX_OK);
    /* EVAL's keys are KEYS, not ARGV: "bar" after one key is an argument */
    CHECK_INT(slot_of((const char *[]){"EVAL", "return 1", "0", "foo"}, 4, &st), -1);
    CHECK_INT(st, BX_OK);
    CHECK_INT(slot_of((const char *[]){"EVAL", "s", "2", "{a}1", "{a}2", "x"}, 6, &st),
              (int)bx_redis_key_slot(LIT("a")));
    CHECK_INT(st, BX_OK);
    CHECK_INT(slot_of((const char *[]){"EVAL", "s", "2", "foo", "bar"}, 5, &st), -1);
    CHECK_INT(st, BX_EINVAL);
    CHECK_INT(slot_of((const char *[]){"SCRIPT", "LOAD", "return 1"}, 3, &st), -1);
    CHECK_INT(st, BX_OK);
    CHECK_INT(slot_of((const char *[]){"PING"}, 1, &st), -1);
    CHECK_INT(slot_of((const char *[]){"DEL", "{s1}:a", "{s1}:b"}, 3, &st),
              (int)bx_redis_key_slot(LIT("s1")));
    CHECK_INT(st, BX_OK);
    CHECK_INT(slot_of((const char *[]){"MGET", "foo", "bar"}, 3, &st), -1);
    CHECK_INT(st, BX_EINVAL);
    /* MSET's values are not keys */
    CHECK_INT(slot_of((const char *[]){"MSET", "{t}a", "foo", "{t}b", "bar"}, 5, &st),
              (int)bx_redis_key_slot(LIT("t")));
    CHECK_INT(st, BX_OK);
    CHECK_INT(slot_of((const char *[]){"SET", "foo", "bar", "PX", "10"}, 5, &st), foo);
}

BX_TEST(redirections)
{
    static const struct {
        const char *msg;
        bx_redis_redirect kind;
        unsigned slot;
        const char *host;
        int port;
    } rows[] = {
        {"MOVED 3999 127.0.0.1:6381", BX_REDIS_MOVED, 3999, "127.0.0.1", 6381},
        {"ASK 3999 127.0.0.1:6381", BX_REDIS_ASK, 3999, "127.0.0.1", 6381},
        {"MOVED 0 redis-2.example:26382", BX_REDIS_MOVED, 0, "redis-2.example", 26382},
        {"MOVED 16383 [::1]:7000", BX_REDIS_MOVED, 16383, "::1", 7000},
        {"MOVED 16383 ::1:7000", BX_REDIS_MOVED, 16383, "::1", 7000},
        {"MOVED 16384 127.0.0.1:6381", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"MOVED 12 127.0.0.1", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"MOVED 12 127.0.0.1:0", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"MOVED 12 127.0.0.1:70000", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"MOVED x 127.0.0.1:6381", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"MOVED 12", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"MOVED 12 a:1 b", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"ERR unknown command", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"CLUSTERDOWN The cluster is down", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"NOSCRIPT No matching script", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
        {"ASKING", BX_REDIS_NOT_REDIRECTED, 0, "", 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        unsigned slot = 0;
        char host[64] = "";
        int port = 0;
        bx_redis_redirect k = bx_redis_parse_redirect(rows[i].msg, strlen(rows[i].msg), &slot, host,
                                                      sizeof(host), &port);
        if (k != rows[i].kind) {
            BX_FAIL_AT("\"%s\": kind %d, expected %d", rows[i].msg, (int)k, (int)rows[i].kind);
            continue;
        }
        if (k == BX_REDIS_NOT_REDIRECTED)
            continue;
        CHECK_INT(slot, rows[i].slot);
        CHECK_STR(host, rows[i].host);
        CHECK_INT(port, rows[i].port);
    }
    /* A host longer than the caller's buffer is no redirection it can follow. */
    unsigned slot;
    char small[4];
    int port;
    CHECK_INT(
        bx_redis_parse_redirect(LIT("MOVED 1 127.0.0.1:6381"), &slot, small, sizeof(small), &port),
        BX_REDIS_NOT_REDIRECTED);
}

BX_TEST(cluster_urls)
{
    bx_redis *r = NULL;
    bx_error err = {0};
    unsetenv("BX_REDIS_CLUSTER");
    CHECK_INT(bx_redis_open("redis://127.0.0.1:1,127.0.0.1:2", 0, &r, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "redis+cluster://");
    CHECK_INT(bx_redis_open("redis+cluster://127.0.0.1:1/3", 0, &r, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "database 0 only");
    CHECK_INT(bx_redis_open("redis+cluster://127.0.0.1:x", 0, &r, &err), BX_EINVAL);
    CHECK_INT(bx_redis_open("http://127.0.0.1:1", 0, &r, &err), BX_EINVAL);
    redisContext *c = NULL;
    CHECK_INT(bx_redis_connect("redis+cluster://127.0.0.1:1", 0, &c, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "one server");
    setenv("BX_REDIS_CLUSTER", "1", 1);
    CHECK_INT(bx_redis_connect("redis://127.0.0.1:1", 0, &c, &err), BX_EINVAL);
    /* nothing listens on port 1: a cluster nobody answers for is a transient failure */
    CHECK_INT(bx_redis_open("redis://127.0.0.1:1,[::1]:1", 0, &r, &err), BX_ETRANSIENT);
    unsetenv("BX_REDIS_CLUSTER");
    CHECK(r == NULL && c == NULL);
}

/* bx-score's scripts take one key each, and every key of one student (of one class) shares the
 * student's (class's) hash tag, so a student's keys live on one node. */
BX_TEST(score_keys_of_one_owner_share_a_slot)
{
    static const char *const ids[] = {"S1", "520121000101", "tzzq-0042", "A_b-9"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char facts[SCORE_STORE_KEY_MAX], sum[SCORE_STORE_KEY_MAX], rep[SCORE_STORE_KEY_MAX];
        REQUIRE(score_store_key_facts(ids[i], facts, sizeof(facts)) == BX_OK);
        REQUIRE(score_store_key_summary(ids[i], sum, sizeof(sum)) == BX_OK);
        REQUIRE(score_store_key_reported(ids[i], rep, sizeof(rep)) == BX_OK);
        unsigned want = bx_redis_key_slot(ids[i], strlen(ids[i]));
        CHECK_INT(bx_redis_key_slot(facts, strlen(facts)), want);
        CHECK_INT(bx_redis_key_slot(sum, strlen(sum)), want);
        CHECK_INT(bx_redis_key_slot(rep, strlen(rep)), want);
        CHECK(strchr(facts, '{') != NULL);
    }
}
