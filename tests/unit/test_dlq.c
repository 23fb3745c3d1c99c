/* Unit tests for bx_dlq: one case per service's dead letter, each compared byte for byte with what
 * that service wrote before it used bx_dlq. */
#include "bx_dlq.h"
#include "bx_test.h"

#include <stdlib.h>
#include <string.h>

#define COUNT(a)   (sizeof(a) / sizeof((a)[0]))
#define RECORD_MAX 65536
#define AT         1772409600000 /* 2026-03-02T08:00:00+08:00 */

static void check_letter(const bx_dlq_letter *l, const char *expected)
{
    bx_buf b;
    bx_buf_init(&b, 4 * RECORD_MAX);
    bx_error err = {0};
    CHECK_INT(bx_dlq_build(l, &b, &err), BX_OK);
    CHECK_STR(b.data, expected);
    bx_buf_free(&b);
}

BX_TEST(event_id_with_and_without_topic)
{
    char id[160];
    bx_dlq_event_id(id, sizeof(id), "bx-escalate", "bx.attendance.v1", 3, 42);
    CHECK_STR(id, "dlq:bx-escalate:bx.attendance.v1:3:42");
    bx_dlq_event_id(id, sizeof(id), "bx-score", NULL, 0, 9000000000LL);
    CHECK_STR(id, "dlq:bx-score:0:9000000000");
    char long_topic[100];
    memset(long_topic, 't', sizeof(long_topic) - 1);
    long_topic[99] = '\0';
    bx_dlq_event_id(id, sizeof(id), "bx-notify", long_topic, 1, 2);
    CHECK_INT(strlen(id), strlen("dlq:bx-notify:") + 60 + strlen(":1:2"));
}

/* bx-escalate: JSON that failed validation is embedded; a malformed payload is a string. */
BX_TEST(escalate_shapes)
{
    static const struct {
        const char *payload;
        bool malformed;
        const char *record;
    } rows[] = {
        {"{\"student_id\":\"S1\"}", false, "{\"student_id\":\"S1\"}"},
        {"{not json \"x\"\n", true, "\"{not json \\\"x\\\"\\n\""},
        {"\xff\xfe", true, "null"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        char id[160];
        bx_dlq_event_id(id, sizeof(id), "bx-escalate", "bx.attendance.v1", 2, 17);
        bx_dlq_letter l = {
            .event_id = id,
            .source = "bx-escalate",
            .endpoint = "bx.attendance.v1",
            .record_index = -1,
            .line = -1,
            .reason = rows[i].malformed ? "malformed" : "unknown_student",
            .error = "student S1 is not in the registry",
            .record = rows[i].payload,
            .record_len = strlen(rows[i].payload),
            .record_kind = rows[i].malformed ? BX_DLQ_RECORD_TEXT : BX_DLQ_RECORD_JSON,
            .record_max = RECORD_MAX,
            .received_at = AT,
        };
        char expected[512];
        snprintf(expected, sizeof(expected),
                 "{\"schema\":\"bx.dlq.v1\",\"event_id\":\"dlq:bx-escalate:bx.attendance.v1:2:17\","
                 "\"source\":\"bx-escalate\",\"endpoint\":\"bx.attendance.v1\",\"school_id\":null,"
                 "\"record_index\":null,\"line\":null,\"field\":null,\"reason\":\"%s\","
                 "\"error\":\"student S1 is not in the registry\",\"record\":%s,"
                 "\"received_at\":\"2026-03-02T08:00:00+08:00\"}",
                 rows[i].malformed ? "malformed" : "unknown_student", rows[i].record);
        check_letter(&l, expected);
    }
}

/* bx-notify: as bx-escalate, with the request's field when it has one (a record past the limit
 * is cut: see oversize_record_is_cut_never_dropped). */
BX_TEST(notify_shapes)
{
    static const struct {
        const char *payload, *field, *record_out, *field_out;
    } rows[] = {
        {"{\"template\":7}", "template", "{\"template\":7}", "\"template\""},
        {"{\"template\":7}", NULL, "{\"template\":7}", "null"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_dlq_letter l = {
            .event_id = "dlq:bx-notify:bx.notify.requests.v1:0:5",
            .source = "bx-notify",
            .endpoint = "bx.notify.requests.v1",
            .record_index = -1,
            .line = -1,
            .field = rows[i].field,
            .reason = "invalid_value",
            .error = "template: expected a string",
            .record = rows[i].payload,
            .record_len = strlen(rows[i].payload),
            .record_kind = BX_DLQ_RECORD_JSON,
            .record_max = RECORD_MAX,
            .received_at = AT,
        };
        char expected[512];
        snprintf(
            expected, sizeof(expected),
            "{\"schema\":\"bx.dlq.v1\",\"event_id\":\"dlq:bx-notify:bx.notify.requests.v1:0:5\","
            "\"source\":\"bx-notify\",\"endpoint\":\"bx.notify.requests.v1\","
            "\"school_id\":null,\"record_index\":null,\"line\":null,\"field\":%s,"
            "\"reason\":\"invalid_value\",\"error\":\"template: expected a string\","
            "\"record\":%s,\"received_at\":\"2026-03-02T08:00:00+08:00\"}",
            rows[i].field_out, rows[i].record_out);
        check_letter(&l, expected);
    }
}

/* bx-score: the event id has no topic; valid JSON is embedded whatever its size. */
BX_TEST(score_shapes)
{
    static char big[RECORD_MAX + 8];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '1';
    static const struct {
        const char *payload;
        bool json_ok;
        const char *reason;
    } rows[] = {
        {"{\"kind\":\"x\"}", true, "invalid_value"},
        {"not json", false, "malformed"},
        {big, true, "invalid_value"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        char id[160];
        bx_dlq_event_id(id, sizeof(id), "bx-score", NULL, 4, 123);
        bx_dlq_letter l = {
            .event_id = id,
            .source = "bx-score",
            .endpoint = "bx.attendance.v1",
            .record_index = -1,
            .line = -1,
            .reason = rows[i].reason,
            .error = "kind: unknown",
            .record = rows[i].payload,
            .record_len = strlen(rows[i].payload),
            .record_kind = rows[i].json_ok ? BX_DLQ_RECORD_JSON : BX_DLQ_RECORD_TEXT,
            .record_max = rows[i].json_ok ? 0 : RECORD_MAX,
            .received_at = AT,
        };
        bx_buf expected;
        bx_buf_init(&expected, 0);
        REQUIRE(bx_buf_printf(&expected,
                              "{\"schema\":\"bx.dlq.v1\",\"event_id\":\"dlq:bx-score:4:123\","
                              "\"source\":\"bx-score\",\"endpoint\":\"bx.attendance.v1\","
                              "\"school_id\":null,\"record_index\":null,\"line\":null,"
                              "\"field\":null,\"reason\":\"%s\",\"error\":\"kind: unknown\","
                              "\"record\":%s%s%s,\"received_at\":\"2026-03-02T08:00:00+08:00\"}",
                              rows[i].reason, rows[i].json_ok ? "" : "\"", rows[i].payload,
                              rows[i].json_ok ? "" : "\"") == BX_OK);
        check_letter(&l, expected.data);
        bx_buf_free(&expected);
    }
}

/* bx-ingest: a rejected record names school, index, line and field; an unreadable body is kept
 * as base64, cut at the limit. */
BX_TEST(ingest_shapes)
{
    bx_dlq_letter rec = {
        .event_id = "0b7e4a4c-1f2d-4c1e-9a55-3e8f2b7c9d10",
        .source = "bx-ingest",
        .endpoint = "/v1/rollcall",
        .school_id = "3301020001",
        .record_index = 3,
        .line = 5,
        .field = "records[3].date",
        .reason = "invalid_value",
        .error = "expected a date",
        .record = "{\"date\":\"2026-13-01\"}",
        .record_len = strlen("{\"date\":\"2026-13-01\"}"),
        .record_kind = BX_DLQ_RECORD_JSON,
        .received_at = AT,
    };
    check_letter(&rec, "{\"schema\":\"bx.dlq.v1\",\"event_id\":"
                       "\"0b7e4a4c-1f2d-4c1e-9a55-3e8f2b7c9d10\",\"source\":\"bx-ingest\","
                       "\"endpoint\":\"/v1/rollcall\",\"school_id\":\"3301020001\","
                       "\"record_index\":3,\"line\":5,\"field\":\"records[3].date\","
                       "\"reason\":\"invalid_value\",\"error\":\"expected a date\","
                       "\"record\":{\"date\":\"2026-13-01\"},"
                       "\"received_at\":\"2026-03-02T08:00:00+08:00\"}");
    /* JSON: line 0 and the request's index -1 are null; an empty field stays a string. */
    rec.school_id = NULL;
    rec.record_index = -1;
    rec.line = 0;
    rec.field = "";
    rec.record = NULL;
    check_letter(&rec, "{\"schema\":\"bx.dlq.v1\",\"event_id\":"
                       "\"0b7e4a4c-1f2d-4c1e-9a55-3e8f2b7c9d10\",\"source\":\"bx-ingest\","
                       "\"endpoint\":\"/v1/rollcall\",\"school_id\":null,"
                       "\"record_index\":null,\"line\":null,\"field\":\"\","
                       "\"reason\":\"invalid_value\",\"error\":\"expected a date\","
                       "\"record\":null,\"received_at\":\"2026-03-02T08:00:00+08:00\"}");
    bx_dlq_letter body = {
        .event_id = "e",
        .source = "bx-ingest",
        .endpoint = "/v1/leave",
        .school_id = "S",
        .record_index = -1,
        .line = -1,
        .reason = "malformed",
        .error = "body: not JSON",
        .record = "ab\xff\0c",
        .record_len = 5,
        .record_kind = BX_DLQ_RECORD_BASE64,
        .record_max = 256 * 1024,
        .received_at = AT,
    };
    const char *head = "{\"schema\":\"bx.dlq.v1\",\"event_id\":\"e\",\"source\":\"bx-ingest\","
                       "\"endpoint\":\"/v1/leave\",\"school_id\":\"S\",\"record_index\":null,"
                       "\"line\":null,\"field\":null,\"reason\":\"malformed\","
                       "\"error\":\"body: not JSON\",\"record\":";
    char expected[1024];
    snprintf(expected, sizeof(expected),
             "%s{\"body_base64\":\"YWL/AGM=\",\"body_bytes\":5,\"truncated\":false},"
             "\"received_at\":\"2026-03-02T08:00:00+08:00\"}",
             head);
    check_letter(&body, expected);
    body.record_max = 4;
    /* cut: the whole's length and SHA-256 follow (sha256 of "ab\xff\0c") */
    snprintf(expected, sizeof(expected),
             "%s{\"body_base64\":\"YWL/AA==\",\"body_bytes\":5,\"truncated\":true},"
             "\"record_bytes\":5,\"record_sha256\":\"%s\",\"record_truncated\":true,"
             "\"received_at\":\"2026-03-02T08:00:00+08:00\"}",
             head, "385a76f89c6b6ed485651bcb902ef4a4eb375ba34ec686ca9f74fc8d12675539");
    check_letter(&body, expected);
}

/* A record too long for the topic is cut, with its length and SHA-256, never dropped (issue 14,
 * defect 3: a 1 MB record never reached bx.dlq.v1): JSON and text alike, every letter fitting a
 * 256 KiB buffer. */
BX_TEST(oversize_record_is_cut_never_dropped)
{
    static const bx_dlq_record_kind kinds[] = {BX_DLQ_RECORD_JSON, BX_DLQ_RECORD_TEXT,
                                               BX_DLQ_RECORD_BASE64};
    size_t len = 1 << 20;
    char *big = malloc(len + 1);
    REQUIRE(big != NULL);
    memset(big, 'a', len);
    memcpy(big, "{\"note\":\"", 9);
    memcpy(big + len - 2, "\"}", 2);
    big[len] = '\0';
    for (size_t i = 0; i < COUNT(kinds); i++) {
        bx_dlq_letter l = {
            .event_id = "e",
            .source = "bx-ingest",
            .endpoint = "/v1/actions",
            .record_index = 0,
            .line = -1,
            .reason = "invalid_value",
            .error = "records[0].note: too long",
            .record = big,
            .record_len = len,
            .record_kind = kinds[i],
            .received_at = AT,
        };
        bx_buf b;
        bx_buf_init(&b, 4 * RECORD_MAX);
        bx_error err = {0};
        CHECK_INT(bx_dlq_build(&l, &b, &err), BX_OK);
        CHECK(b.len < 256 * 1024);
        CHECK_CONTAINS(b.data, "\"record_bytes\":1048576,\"record_sha256\":\"");
        CHECK_CONTAINS(b.data, "\"record_truncated\":true");
        CHECK(strstr(b.data, "\"record\":null") == NULL);
        if (kinds[i] != BX_DLQ_RECORD_BASE64)
            CHECK_CONTAINS(b.data, "\"record\":\"{\\\"note\\\":\\\"aaaa");
        bx_buf_free(&b);
    }
    free(big);
}

/* Personal data in dead letters (issue 14, defect 7): digit runs of 7 or more in the record are
 * masked (ids and phones as the logs mask them; JSON numbers stay numbers), registry codes glued
 * to letters are kept, and the error's phone and id number are masked as the logs do. */
BX_TEST(digit_runs_are_masked)
{
    const char *record = "{\"student_id\":\"11010119900307123X\",\"note\":\"家长电话13812345678，"
                         "身份证110101199003071234 卡号6222020200112233\",\"code\":\"S10010301\","
                         "\"n\":1234567,\"date\":\"2026-11-27\",\"period\":123456}";
    bx_dlq_letter l = {
        .event_id = "e",
        .source = "bx-ingest",
        .endpoint = "/v1/actions",
        .record_index = 0,
        .line = -1,
        .reason = "unknown_student",
        .error = "records[0].student_id: no student \"11010119900307123X\" (call 13812345678)",
        .record = record,
        .record_len = strlen(record),
        .record_kind = BX_DLQ_RECORD_JSON,
        .received_at = AT,
    };
    bx_buf b;
    bx_buf_init(&b, 4 * RECORD_MAX);
    bx_error err = {0};
    CHECK_INT(bx_dlq_build(&l, &b, &err), BX_OK);
    CHECK_CONTAINS(b.data, "\"error\":\"records[0].student_id: no student "
                           "\\\"110101********123X\\\" (call 138****5678)\"");
    CHECK_CONTAINS(b.data, "{\"student_id\":\"110101********123X\",\"note\":\"家长电话138****5678，"
                           "身份证110101********1234 卡号62************33\",\"code\":\"S10010301\","
                           "\"n\":1200067,\"date\":\"2026-11-27\",\"period\":123456}");
    CHECK(strstr(b.data, "13812345678") == NULL);
    CHECK(strstr(b.data, "19900307") == NULL);
    bx_buf_free(&b);
    /* text and base64 records alike */
    l.record = "call 13912345678";
    l.record_len = strlen(l.record);
    l.record_kind = BX_DLQ_RECORD_TEXT;
    bx_buf_init(&b, 4 * RECORD_MAX);
    CHECK_INT(bx_dlq_build(&l, &b, &err), BX_OK);
    CHECK_CONTAINS(b.data, "\"record\":\"call 139****5678\"");
    bx_buf_free(&b);
}

BX_TEST(build_past_the_buffer_maximum_fails)
{
    char payload[100];
    memset(payload, 'a', sizeof(payload) - 1);
    payload[99] = '\0';
    bx_dlq_letter l = {
        .event_id = "e",
        .source = "bx-notify",
        .endpoint = "t",
        .record_index = -1,
        .line = -1,
        .reason = "malformed",
        .error = "x",
        .record = payload,
        .record_len = strlen(payload),
        .record_kind = BX_DLQ_RECORD_TEXT,
        .received_at = AT,
    };
    bx_buf b;
    bx_buf_init(&b, 64); /* too small for the message */
    bx_error err = {0};
    CHECK_INT(bx_dlq_build(&l, &b, &err), BX_ENOMEM);
    CHECK_CONTAINS(err.msg, "cannot build a dead letter");
    bx_buf_free(&b);
}
