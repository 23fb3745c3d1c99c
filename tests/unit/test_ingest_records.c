/* bx-ingest's request parsers (records.c) against a registry in memory: cases the fuzz targets
 * found. Roll calls: a student whose entry is rejected gets no fact at all, whatever else the roll
 * call says about them; errors quoting a value cut to length stay valid UTF-8. */
#include "bx_json.h"
#include "bx_test.h"
#include "bx_test_registry.h"
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bx_registry *registry(void)
{
    static bx_registry *r;
    bx_error err = {0};
    if (r == NULL && bx_test_registry_new(&r, &err) != BX_OK)
        fprintf(stderr, "registry: %s\n", err.msg);
    REQUIRE(r != NULL);
    return r;
}

static ingest_ctx context(void)
{
    ingest_ctx ctx = {
        .registry = registry(),
        .school_id = TEST_SCHOOL,
        .credential_id = "cred-1",
        .now = bx_time_from_local(bx_date_from_ymd(2026, 11, 27), 10, 30),
        .endpoint = "/v1/rollcall",
    };
    return ctx;
}

/* The pending fact about student in a roll call's batch, or NULL; fails on more than one. */
static const ingest_record *fact_of(const ingest_batch *b, const char *student)
{
    const ingest_record *found = NULL;
    for (size_t i = 0; i < b->count; i++) {
        const ingest_record *r = &b->items[i];
        if (r->outcome == INGEST_PENDING && r->index >= 0 && strcmp(r->student_id, student) == 0) {
            CHECK(found == NULL);
            found = r;
        }
    }
    return found;
}

/* Every pending record carries its message: nothing reaches the producer without one. */
static void check_pending_have_messages(const ingest_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        if (b->items[i].outcome != INGEST_PENDING)
            continue;
        if (b->items[i].message == NULL || b->items[i].topic == NULL)
            BX_FAIL_AT("record %zu (index %d) is pending without a message", i, b->items[i].index);
    }
}

static const ingest_record *rejected_at(const ingest_batch *b, int index)
{
    for (size_t i = 0; i < b->count; i++)
        if (b->items[i].index == index && b->items[i].outcome == INGEST_REJECTED)
            return &b->items[i];
    return NULL;
}

static void rollcall(const char *body, ingest_batch *b)
{
    ingest_ctx ctx = context();
    bx_error err = {0};
    const char *reason = NULL;
    ingest_batch_init(b);
    bx_status s = ingest_parse_rollcall(&ctx, body, strlen(body), b, &reason, &err);
    if (s != BX_OK)
        BX_FAIL_AT("roll call refused: %s (%s)", err.msg, reason);
    REQUIRE(s == BX_OK);
}

/* A leave entry that is not an object, or has a field too many, still names its student: that
 * student gets no fact, never a guessed "present". */
BX_TEST(rollcall_rejected_leave_entry_gives_no_fact)
{
    ingest_batch b;
    rollcall("{\"class_id\":\"C1001031\",\"date\":\"2026-11-26\",\"absent\":[\"S10010301\"],"
             "\"leave\":[\"S10010302\",{\"student_id\":\"S10010303\",\"leave_kind\":\"sick\","
             "\"note\":\"fever\"}]}",
             &b);
    check_pending_have_messages(&b);
    CHECK(fact_of(&b, "S10010301") != NULL);
    CHECK(fact_of(&b, "S10010302") == NULL);
    CHECK(fact_of(&b, "S10010303") == NULL);
    const ingest_record *present = fact_of(&b, "S10010304");
    REQUIRE(present != NULL);
    CHECK_CONTAINS(present->message, "\"status\":\"present\"");
    const ingest_record *r = rejected_at(&b, 1);
    REQUIRE(r != NULL);
    CHECK_STR(r->field, "leave[0]");
    CHECK_STR(r->reason, "invalid_value");
    r = rejected_at(&b, 2);
    REQUIRE(r != NULL);
    CHECK_STR(r->field, "leave[1]");
    CHECK_STR(r->reason, "unknown_field");
    CHECK_CONTAINS(r->error, "leave[1]: unknown field \"note\"");
    ingest_batch_free(&b);
}

/* A rejected leave entry, then the same student as late: the late entry is the second word on
 * them and is refused; no record is left pending without a message (which the publisher would
 * have handed to Kafka as a NULL string). */
BX_TEST(rollcall_rejected_leave_then_late_gives_no_fact)
{
    ingest_batch b;
    rollcall("{\"class_id\":\"C1001031\",\"date\":\"2026-11-26\","
             "\"leave\":[{\"student_id\":\"S10010302\",\"leave_kind\":\"holiday\"}],"
             "\"late\":[\"S10010302\"],\"early_leave\":[\"S10010303\"]}",
             &b);
    check_pending_have_messages(&b);
    CHECK(fact_of(&b, "S10010302") == NULL);
    const ingest_record *r = rejected_at(&b, 0);
    REQUIRE(r != NULL);
    CHECK_STR(r->field, "leave[0].leave_kind");
    r = rejected_at(&b, 1);
    REQUIRE(r != NULL);
    CHECK_STR(r->field, "late[0]");
    CHECK_STR(r->reason, "duplicate_in_request");
    const ingest_record *early = fact_of(&b, "S10010303");
    REQUIRE(early != NULL);
    CHECK_CONTAINS(early->message, "\"status\":\"early_leave\"");
    ingest_batch_free(&b);
}

/* A valid first entry still decides: a later rejected one changes nothing. */
BX_TEST(rollcall_valid_entry_then_rejected_one_keeps_the_fact)
{
    ingest_batch b;
    rollcall("{\"class_id\":\"C1001031\",\"date\":\"2026-11-26\",\"absent\":[\"S10010301\"],"
             "\"leave\":[{\"student_id\":\"S10010301\",\"leave_kind\":\"x\"},"
             "{\"student_id\":\"S10010302\",\"leave_kind\":\"sick\"}]}",
             &b);
    check_pending_have_messages(&b);
    const ingest_record *absent = fact_of(&b, "S10010301");
    REQUIRE(absent != NULL);
    CHECK_CONTAINS(absent->message, "\"status\":\"absent\"");
    const ingest_record *leave = fact_of(&b, "S10010302");
    REQUIRE(leave != NULL);
    CHECK_CONTAINS(leave->message, "\"leave_kind\":\"sick\"");
    CHECK(rejected_at(&b, 1) != NULL);
    ingest_batch_free(&b);
}

/* "%.40s" of a value made of three-byte characters cuts one in two; the error, which goes into the
 * reply and the dead letter as JSON, must stay valid UTF-8. */
BX_TEST(errors_quoting_long_values_stay_utf8)
{
    char id[64] = "";
    for (int i = 0; i < 14; i++)
        strcat(id, "\xE5\xAD\xA6"); /* 学, 42 bytes in all */
    char body[256];
    snprintf(
        body, sizeof(body),
        "{\"records\":[{\"student_id\":\"%s\",\"date\":\"2026-11-26\",\"status\":\"absent\"}]}",
        id);
    ingest_ctx ctx = context();
    ingest_batch b;
    ingest_batch_init(&b);
    bx_error err = {0};
    REQUIRE(ingest_parse_attendance_json(&ctx, body, strlen(body), &b, &err) == BX_OK);
    REQUIRE(b.count == 1);
    CHECK(b.items[0].outcome == INGEST_REJECTED);
    CHECK_STR(b.items[0].field, "records[0].student_id");
    CHECK_CONTAINS(b.items[0].error, "is not a student id");
    CHECK(bx_utf8_valid(b.items[0].error, strlen(b.items[0].error)));
    ingest_batch_free(&b);

    /* A roll call refused as a whole quotes the class id the same way. */
    snprintf(body, sizeof(body), "{\"class_id\":\"%s\",\"date\":\"2026-11-26\"}", id);
    ingest_batch_init(&b);
    const char *reason = NULL;
    CHECK(ingest_parse_rollcall(&ctx, body, strlen(body), &b, &reason, &err) == BX_EINVAL);
    CHECK_STR(reason, "unknown_class");
    CHECK_CONTAINS(err.msg, "body.class_id: no class");
    CHECK(bx_utf8_valid(err.msg, strlen(err.msg)));
    ingest_batch_free(&b);
}

/* cJSON prints a number next to the largest double with 15 digits, past the largest double: the
 * record as received, quoted in the reply and the dead letter, must parse again and say the same.
 */
BX_TEST(records_as_received_parse_again)
{
    static const char *const bodies[] = {
        "{\"records\":[{\"student_id\":\"S10010301\",\"date\":\"2026-11-26\",\"status\":\"absent\","
        "\"period\":1.7976931348623157e308}]}",
        "{\"records\":[-1.7976931348623157e308,{\"a\":[1.7976931348623157e308,{\"b\":"
        "-1.7976931348623157e308}],\"c\":1}]}",
    };
    ingest_ctx ctx = context();
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        ingest_batch b;
        ingest_batch_init(&b);
        bx_error err = {0};
        REQUIRE(ingest_parse_attendance_json(&ctx, bodies[i], strlen(bodies[i]), &b, &err) ==
                BX_OK);
        cJSON *body = cJSON_Parse(bodies[i]);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(body, "records")->child;
        for (size_t k = 0; k < b.count; k++, item = item->next) {
            const char *raw = b.items[k].raw;
            REQUIRE(raw != NULL);
            cJSON *again = NULL;
            if (bx_json_parse(raw, strlen(raw), &again, &err) != BX_OK)
                BX_FAIL_AT("body %zu record %zu: %s does not parse: %s", i, k, raw, err.msg);
            else if (!cJSON_Compare(again, item, true))
                BX_FAIL_AT("body %zu record %zu: %s is not the record received", i, k, raw);
            cJSON_Delete(again);
        }
        cJSON_Delete(body);
        ingest_batch_free(&b);
    }
}
