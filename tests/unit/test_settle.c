/* Unit tests of bx_settle's pure parts, from tables: the GROUP:TOPIC[,TOPIC] specs bxctl settle and
 * bx-sim take, and how far a group is behind on one partition. */
#include "bx_settle.h"
#include "bx_test.h"

#include <stdio.h>
#include <string.h>

BX_TEST(settle_specs_are_parsed_or_refused_with_the_reason)
{
    char long_name[200], too_many[400];
    memset(long_name, 'g', BX_SETTLE_NAME_MAX);
    snprintf(long_name + BX_SETTLE_NAME_MAX, sizeof(long_name) - BX_SETTLE_NAME_MAX, ":t");
    snprintf(too_many, sizeof(too_many), "g:t1,t2,t3,t4,t5,t6,t7,t8,t9");
    static const struct {
        const char *text;
        const char *group; /* NULL: refused */
        int ntopics;
        const char *last_topic;
        const char *error;
    } rows[] = {
        {"bx-score:bx.attendance.v1", "bx-score", 1, "bx.attendance.v1", NULL},
        {"bx-escalate:bx.risk.v1,bx.actions.v1", "bx-escalate", 2, "bx.actions.v1", NULL},
        {"G_1.x:a,", "G_1.x", 1, "a", NULL},
        {"bx-score", NULL, 0, NULL, "\"bx-score\": name the group's topics (GROUP:TOPIC[,TOPIC])"},
        {"bx-score:", NULL, 0, NULL, "name the group's topics"},
        {":bx.risk.v1", NULL, 0, NULL, "\":bx.risk.v1\" is not a consumer group name"},
        {"bad group:t", NULL, 0, NULL, "\"bad group:t\" is not a consumer group name"},
        {"bx-score=bx.attendance.v1", NULL, 0, NULL, "is not a consumer group name"},
        {"g:a,,b", NULL, 0, NULL, "group g: bad topic \"\" (at most 8 topics)"},
        {"g:a+b", NULL, 0, NULL, "group g: bad topic \"a+b\""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bx_settle_spec spec;
        bx_error err = {0};
        bx_status s = bx_settle_spec_parse(rows[i].text, strlen(rows[i].text), &spec, &err);
        if (rows[i].group) {
            CHECK_INT(s, BX_OK);
            CHECK_STR(spec.group, rows[i].group);
            CHECK_INT(spec.ntopics, rows[i].ntopics);
            if (spec.ntopics > 0)
                CHECK_STR(spec.topics[spec.ntopics - 1], rows[i].last_topic);
        } else {
            CHECK_INT(s, BX_EINVAL);
            CHECK_CONTAINS(err.msg, rows[i].error);
        }
    }
    bx_settle_spec spec;
    bx_error err = {0};
    CHECK_INT(bx_settle_spec_parse(long_name, strlen(long_name), &spec, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "is not a consumer group name");
    CHECK_INT(bx_settle_spec_parse(too_many, strlen(too_many), &spec, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "bad topic \"t9\" (at most 8 topics)");
    /* a part of a longer text, as BX_SETTLE_GROUPS is split */
    const char *list = "a:x b:y";
    CHECK_INT(bx_settle_spec_parse(list, 3, &spec, &err), BX_OK);
    CHECK_STR(spec.group, "a");
    CHECK_STR(spec.topics[0], "x");
    CHECK_INT(spec.ntopics, 1);
}

BX_TEST(settle_counts_a_partition_from_the_commit_or_the_log_start)
{
    static const struct {
        bool committed_ok;
        long long committed, lo, hi, behind;
    } rows[] = {
        {true, 3, 0, 3, 0},      /* committed the end */
        {true, 0, 0, 3, 3},      /* committed the start */
        {true, 1, 0, 3, 2},      /* part way */
        {false, -1001, 0, 3, 3}, /* nothing committed: all of it */
        {true, -1001, 2, 5,
         3},                 /* nothing committed (RD_KAFKA_OFFSET_INVALID): from the log start */
        {false, 0, 0, 0, 0}, /* an empty partition */
        {true, 1, 3, 3, 0},  /* committed below the log start of an emptied log: nothing left */
        {true, 1, 3, 5, 2},  /* ... of a log with 2 left: those 2, not 4 */
        {false, 4, 0, 5, 5}, /* the broker's answer for the partition was an error */
        {true, 7, 0, 5, 0},  /* ahead of the end (the log was recreated): nothing to consume */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_INT(bx_settle_behind(rows[i].committed_ok, rows[i].committed, rows[i].lo, rows[i].hi),
                  rows[i].behind);
}
