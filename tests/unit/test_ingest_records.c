/* bx-ingest's request parsers (bxvalidate) against a registry in memory: cases the fuzz targets
 * found. Roll calls: a student whose entry is rejected gets no fact at all, whatever else the roll
 * call says about them; errors quoting a value cut to length stay valid UTF-8. Accountability:
 * the staff an action names exist and work at the student's school, a township sign-off comes
 * only from the township officer in person, and recorded_by names the writer. */
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

/* Staff of the sample registry: the schools' teachers and the two townships' officers. */
static const ingest_staff staff_rows[] = {
    {"T1001031", "homeroom_teacher", TEST_SCHOOL, "", ""},
    {"P1001", "principal", TEST_SCHOOL, "", ""},
    {"T1002011", "homeroom_teacher", TEST_OTHER_SCHOOL, "", ""},
    {"W520122100", "township_officer", "", "520122100", ""},
    {"W520122101", "township_officer", "", "520122101", ""},
};

static const ingest_staff_dir *staff(void)
{
    static ingest_staff_dir *d;
    bx_error err = {0};
    if (d == NULL && ingest_staff_dir_new(staff_rows, sizeof(staff_rows) / sizeof(staff_rows[0]),
                                          &d, &err) != BX_OK)
        fprintf(stderr, "staff: %s\n", err.msg);
    REQUIRE(d != NULL);
    return d;
}

static ingest_ctx context(void)
{
    ingest_ctx ctx = {
        .registry = registry(),
        .staff = staff(),
        .writer = INGEST_WRITER_KEY,
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
    /* The class report names whom it does not vouch for: the absent child and the two whose
     * entries were refused (no fact); the others are present by it. */
    const ingest_record *report = NULL;
    for (size_t i = 0; i < b.count; i++)
        if (b.items[i].message && strstr(b.items[i].message, "\"type\":\"class_report\""))
            report = &b.items[i];
    REQUIRE(report != NULL);
    CHECK_CONTAINS(report->message, "\"listed\":[\"S10010301\",\"S10010302\",\"S10010303\"]");
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

/* A person signed in to bx-console, as the console fills the context. */
static ingest_ctx person(const char *staff_id)
{
    const ingest_staff *m = ingest_staff_find(staff(), staff_id);
    REQUIRE(m != NULL);
    ingest_ctx ctx = context();
    ctx.writer = INGEST_WRITER_PERSON;
    ctx.credential_id = NULL;
    ctx.staff_id = m->id;
    ctx.role = m->role;
    ctx.school_id = m->school_id[0] ? m->school_id : NULL;
    ctx.township_code = m->township_code[0] ? m->township_code : NULL;
    ctx.endpoint = "console:/actions";
    return ctx;
}

/* Who writes an action, what it says, and what must come of it. */
struct accountability_case {
    const char *name;
    const char *writer; /* NULL: the school's key; else the staff id of a signed-in person */
    const char *record; /* one record of /v1/actions */
    const char *field;  /* NULL: accepted */
    const char *reason;
    const char *expect; /* substring of the error, or of the message when accepted */
};

#define ACT(student, action, staff, details)                                                       \
    "{\"student_id\":\"" student "\",\"action\":\"" action "\",\"date\":\"2026-11-26\"" staff      \
    ",\"details\":" details "}"
#define BY(id)     ",\"staff_id\":\"" id "\""
#define CONTACT    "{\"channel\":\"phone\",\"reached\":true}"
#define RETURNED   "{\"return_date\":\"2026-11-26\"}"
#define SIGNED(id) "{\"return_date\":\"2026-11-26\",\"township_signoff_staff_id\":\"" id "\"}"
#define REASSIGN(id)                                                                               \
    "{\"task_id\":\"S10010301:20261123:home_visit:home_visit:2026-11-27\",\"to_staff_id\":\"" id   \
    "\"}"

static const struct accountability_case accountability[] = {
    {"forged staff id", NULL, ACT("S10010301", "contact_made", BY("NOBODY_AT_ALL"), CONTACT),
     "records[0].staff_id", "unknown_staff", "no staff \"NOBODY_AT_ALL\" in the registry"},
    {"staff of another school", NULL,
     ACT("S10010301", "home_visit", BY("T1002011"), "{\"outcome\":\"refused\"}"),
     "records[0].staff_id", "wrong_school",
     "staff \"T1002011\" does not work at school 5201221001"},
    {"forged author of a report", NULL,
     ACT("S10010301", "report_filed", BY("GHOST"), "{\"task\":\"report_to_school\"}"),
     "records[0].staff_id", "unknown_staff", "no staff \"GHOST\""},
    {"officer of another township", NULL,
     ACT("S10010301", "letter_delivered", BY("W520122101"), "{\"letter\":\"return_notice\"}"),
     "records[0].staff_id", "wrong_school", "does not work at school 5201221001"},
    {"own teacher", NULL, ACT("S10010301", "contact_made", BY("T1001031"), CONTACT), NULL, NULL,
     "\"staff_id\":\"T1001031\",\"recorded_at\":\"2026-11-27T10:30:00+08:00\","
     "\"recorded_by\":\"cred-1\""},
    {"the township's officer delivers a letter", NULL,
     ACT("S10010301", "letter_delivered", BY("W520122100"), "{\"letter\":\"deadline_notice\"}"),
     NULL, NULL, "\"staff_id\":\"W520122100\""},
    {"no staff named", NULL, ACT("S10010301", "contact_made", "", CONTACT), NULL, NULL,
     "\"staff_id\":null"},
    {"sign-off through a school key", NULL,
     ACT("S10010301", "returned", BY("T1001031"), SIGNED("W520122100")),
     "records[0].details.township_signoff_staff_id", "unauthorized",
     "a school's key cannot sign off for the township"},
    {"forged sign-off through a school key", NULL,
     ACT("S10010301", "returned", "", SIGNED("NOBODY_AT_ALL")),
     "records[0].details.township_signoff_staff_id", "unauthorized", "cannot sign off"},
    {"return without sign-off through a school key", NULL,
     ACT("S10010301", "returned", BY("T1001031"), RETURNED), NULL, NULL,
     "\"township_signoff_staff_id\":null"},
    {"null sign-off through a school key", NULL,
     ACT("S10010301", "returned", "",
         "{\"return_date\":\"2026-11-26\",\"township_signoff_staff_id\":null}"),
     NULL, NULL, "\"township_signoff_staff_id\":null"},
    {"sign-off by the township officer in person", "W520122100",
     ACT("S10010301", "returned", BY("W520122100"), SIGNED("W520122100")), NULL, NULL,
     "\"recorded_by\":\"W520122100\",\"details\":{\"return_date\":\"2026-11-26\","
     "\"township_signoff_staff_id\":\"W520122100\"}"},
    {"officer signs as someone else", "W520122100",
     ACT("S10010301", "returned", "", SIGNED("T1001031")),
     "records[0].details.township_signoff_staff_id", "unauthorized",
     "signs off only as themselves (W520122100)"},
    {"officer of another township", "W520122101",
     ACT("S10010301", "returned", "", SIGNED("W520122101")), "records[0].student_id",
     "wrong_school", "student \"S10010301\" is not registered at township 520122101"},
    {"teacher signs off", "T1001031", ACT("S10010301", "returned", "", SIGNED("T1001031")),
     "records[0].details.township_signoff_staff_id", "unauthorized",
     "only a township officer signs off a return report; staff T1001031 is homeroom_teacher"},
    {"teacher records a contact", "T1001031",
     ACT("S10010301", "contact_made", BY("T1001031"), CONTACT), NULL, NULL,
     "\"recorded_by\":\"T1001031\""},
    {"principal names a colleague", "P1001",
     ACT("S10010302", "home_visit", BY("T1001031"), "{\"outcome\":\"not_home\"}"), NULL, NULL,
     "\"staff_id\":\"T1001031\",\"recorded_at\":\"2026-11-27T10:30:00+08:00\","
     "\"recorded_by\":\"P1001\""},
    {"teacher reaches another school's student", "T1001031",
     ACT("S10020101", "contact_made", BY("T1001031"), CONTACT), "records[0].student_id",
     "wrong_school", "is not registered at school 5201221001"},
    {"officer names another school's teacher", "W520122100",
     ACT("S10010301", "contact_made", BY("T1002011"), CONTACT), "records[0].staff_id",
     "wrong_school", "staff \"T1002011\" does not work at school 5201221001"},
    /* task_reassigned: only the school's principal or academic office, to staff of the school */
    {"principal reassigns a task", "P1001",
     ACT("S10010301", "task_reassigned", BY("P1001"), REASSIGN("T1001031")), NULL, NULL,
     "\"recorded_by\":\"P1001\",\"details\":{\"task_id\":\"S10010301:20261123:home_visit:"
     "home_visit:2026-11-27\",\"to_staff_id\":\"T1001031\"}"},
    {"principal reassigns as someone else", "P1001",
     ACT("S10010301", "task_reassigned", BY("T1001031"), REASSIGN("T1001031")),
     "records[0].staff_id", "unauthorized", "only by the signed-in person (P1001)"},
    {"teacher reassigns", "T1001031",
     ACT("S10010301", "task_reassigned", BY("T1001031"), REASSIGN("P1001")), "records[0].staff_id",
     "unauthorized", "staff T1001031 is homeroom_teacher"},
    {"task to another school's teacher", "P1001",
     ACT("S10010301", "task_reassigned", BY("P1001"), REASSIGN("T1002011")),
     "records[0].details.to_staff_id", "wrong_school", "does not work at school 5201221001"},
    {"task to the township officer", "P1001",
     ACT("S10010301", "task_reassigned", BY("P1001"), REASSIGN("W520122100")),
     "records[0].details.to_staff_id", "wrong_school", "goes to a staff member of the school"},
    {"task to nobody", "P1001",
     ACT("S10010301", "task_reassigned", BY("P1001"), REASSIGN("NOBODY_AT_ALL")),
     "records[0].details.to_staff_id", "unknown_staff", "no staff \"NOBODY_AT_ALL\""},
    {"school key without the principal", NULL,
     ACT("S10010301", "task_reassigned", "", REASSIGN("T1001031")), "records[0].staff_id",
     "missing_field", "needs the principal or academic office"},
    {"school key naming a teacher", NULL,
     ACT("S10010301", "task_reassigned", BY("T1001031"), REASSIGN("T1001031")),
     "records[0].staff_id", "unauthorized", "only the principal or academic office of school"},
    {"school key naming its principal", NULL,
     ACT("S10010301", "task_reassigned", BY("P1001"), REASSIGN("T1001031")), NULL, NULL,
     "\"staff_id\":\"P1001\",\"recorded_at\":\"2026-11-27T10:30:00+08:00\","
     "\"recorded_by\":\"cred-1\""},
    {"task id that is no id", "P1001",
     ACT("S10010301", "task_reassigned", BY("P1001"),
         "{\"task_id\":\"a b\",\"to_staff_id\":\"T1001031\"}"),
     "records[0].details.task_id", "invalid_value", "expected a task id"},
};

BX_TEST(actions_hold_their_writers_to_account)
{
    for (size_t i = 0; i < sizeof(accountability) / sizeof(accountability[0]); i++) {
        const struct accountability_case *c = &accountability[i];
        ingest_ctx ctx = c->writer ? person(c->writer) : context();
        char body[1024];
        snprintf(body, sizeof(body), "{\"records\":[%s]}", c->record);
        ingest_batch b;
        ingest_batch_init(&b);
        bx_error err = {0};
        REQUIRE(ingest_parse_actions(&ctx, body, strlen(body), &b, &err) == BX_OK);
        REQUIRE(b.count == 1);
        const ingest_record *r = &b.items[0];
        if (c->field == NULL) {
            if (r->outcome != INGEST_PENDING || strstr(r->message, c->expect) == NULL)
                BX_FAIL_AT("case \"%s\": expected accepted with %s, got %s %s", c->name, c->expect,
                           r->error, r->message ? r->message : "");
        } else if (r->outcome != INGEST_REJECTED || strcmp(r->field, c->field) != 0 ||
                   strcmp(r->reason, c->reason) != 0 || strstr(r->error, c->expect) == NULL) {
            BX_FAIL_AT("case \"%s\": expected %s %s (%s), got %s %s: %s", c->name, c->field,
                       c->reason, c->expect, r->field, r->reason ? r->reason : "-", r->error);
        }
        ingest_batch_free(&b);
    }
}

/* Without a staff directory nobody can be named. */
BX_TEST(actions_without_staff_directory_name_nobody)
{
    ingest_ctx ctx = context();
    ctx.staff = NULL;
    const char *body =
        "{\"records\":[" ACT("S10010301", "contact_made", BY("T1001031"), CONTACT) "]}";
    ingest_batch b;
    ingest_batch_init(&b);
    bx_error err = {0};
    REQUIRE(ingest_parse_actions(&ctx, body, strlen(body), &b, &err) == BX_OK);
    REQUIRE(b.count == 1);
    CHECK(b.items[0].outcome == INGEST_REJECTED);
    CHECK_STR(b.items[0].reason, "unknown_staff");
    ingest_batch_free(&b);
}

/* A person's roll call and leave carry their staff id as recorded_by, and reach only their
 * school; a staff directory with an id twice is refused. */
BX_TEST(person_writes_roll_calls_and_leave_as_themselves)
{
    ingest_ctx ctx = person("T1001031");
    ingest_batch b;
    ingest_batch_init(&b);
    bx_error err = {0};
    const char *reason = NULL;
    const char *rc =
        "{\"class_id\":\"C1001031\",\"date\":\"2026-11-26\",\"absent\":[\"S10010301\"]}";
    REQUIRE(ingest_parse_rollcall(&ctx, rc, strlen(rc), &b, &reason, &err) == BX_OK);
    for (size_t i = 0; i < b.count; i++)
        CHECK_CONTAINS(b.items[i].message, "\"recorded_by\":\"T1001031\"");
    ingest_batch_free(&b);

    ingest_batch_init(&b);
    rc = "{\"class_id\":\"C1002011\",\"date\":\"2026-11-26\"}";
    CHECK(ingest_parse_rollcall(&ctx, rc, strlen(rc), &b, &reason, &err) == BX_EINVAL);
    CHECK_STR(reason, "wrong_school");
    CHECK_CONTAINS(err.msg, "body.class_id: class \"C1002011\" is not at school 5201221001");
    ingest_batch_free(&b);

    ingest_batch_init(&b);
    const char *lv = "{\"records\":[{\"student_id\":\"S10010302\",\"first_date\":\"2026-11-30\","
                     "\"last_date\":\"2026-11-30\",\"leave_kind\":\"sick\",\"requested_by\":"
                     "\"guardian\",\"phoned_in\":true}]}";
    REQUIRE(ingest_parse_leave(&ctx, lv, strlen(lv), &b, &err) == BX_OK);
    REQUIRE(b.count == 1);
    CHECK(b.items[0].outcome == INGEST_PENDING);
    CHECK_CONTAINS(b.items[0].message, "\"recorded_by\":\"T1001031\"");
    ingest_batch_free(&b);

    /* A city officer (no school, township or county) reaches nobody. */
    ctx.role = "city_officer";
    ctx.school_id = NULL;
    ingest_batch_init(&b);
    REQUIRE(ingest_parse_leave(&ctx, lv, strlen(lv), &b, &err) == BX_OK);
    CHECK_STR(b.items[0].reason, "wrong_school");
    ingest_batch_free(&b);

    ingest_staff twice[] = {staff_rows[0], staff_rows[0]};
    ingest_staff_dir *d = NULL;
    CHECK(ingest_staff_dir_new(twice, 2, &d, &err) == BX_EINVAL);
    CHECK(d == NULL);
}

/* Issue 14, defect 11: a JSON body with a byte order mark is read as a CSV one is (the BOM
 * skipped), whatever the endpoint. */
BX_TEST(json_body_with_bom_is_read)
{
    const char *body = "\xEF\xBB\xBF{\"records\":[{\"student_id\":\"S10010301\",\"date\":"
                       "\"2026-11-26\",\"status\":\"absent\"}]}";
    ingest_ctx ctx = context();
    ingest_batch b;
    ingest_batch_init(&b);
    bx_error err = {0};
    CHECK_INT(ingest_parse_attendance_json(&ctx, body, strlen(body), &b, &err), BX_OK);
    CHECK_INT(b.count, 1);
    CHECK(b.count == 1 && b.items[0].outcome == INGEST_PENDING);
    ingest_batch_free(&b);
    const char *rc = "\xEF\xBB\xBF{\"class_id\":\"C1001031\",\"date\":\"2026-11-26\"}";
    const char *reason = NULL;
    ingest_batch_init(&b);
    CHECK_INT(ingest_parse_rollcall(&ctx, rc, strlen(rc), &b, &reason, &err), BX_OK);
    ingest_batch_free(&b);
}

/* Issue 14, defect 11: a calendar date past the years handled is "out of range", not "expected a
 * date"; a string that is no date at all still says what is expected. */
BX_TEST(date_past_the_calendar_is_out_of_range)
{
    static const struct {
        const char *date, *expect;
    } rows[] = {
        {"9999-12-31", "records[0].date: 9999-12-31 is out of range"},
        {"1899-12-31", "records[0].date: 1899-12-31 is out of range"},
        {"9999-02-30", "expected a date YYYY-MM-DD"},
        {"9999-13-01", "expected a date YYYY-MM-DD"},
        {"tomorrow", "expected a date YYYY-MM-DD"},
    };
    ingest_ctx ctx = context();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"records\":[{\"student_id\":\"S10010301\",\"date\":\"%s\",\"status\":"
                 "\"absent\"}]}",
                 rows[i].date);
        ingest_batch b;
        ingest_batch_init(&b);
        bx_error err = {0};
        REQUIRE(ingest_parse_attendance_json(&ctx, body, strlen(body), &b, &err) == BX_OK);
        REQUIRE(b.count == 1);
        if (b.items[0].outcome != INGEST_REJECTED ||
            strstr(b.items[0].error, rows[i].expect) == NULL)
            BX_FAIL_AT("date %s: got \"%s\", expected \"%s\"", rows[i].date, b.items[0].error,
                       rows[i].expect);
        ingest_batch_free(&b);
    }
    /* an action's date and a leave's last date alike */
    const char *act = "{\"records\":[{\"student_id\":\"S10010301\",\"action\":\"contact_made\","
                      "\"date\":\"9999-12-31\",\"details\":{\"channel\":\"phone\",\"reached\":"
                      "true}}]}";
    ingest_batch b;
    ingest_batch_init(&b);
    bx_error err = {0};
    REQUIRE(ingest_parse_actions(&ctx, act, strlen(act), &b, &err) == BX_OK);
    CHECK_CONTAINS(b.items[0].error, "records[0].date: 9999-12-31 is out of range");
    ingest_batch_free(&b);
}

/* Issue 14, defect 7: an id number typed into student_id is echoed neither by the reply nor by
 * the dead letter (masked as the logs mask it), and a phone in a record is masked in its dead
 * letter. */
BX_TEST(id_number_in_student_id_is_masked)
{
    const char *body = "{\"records\":[{\"student_id\":\"11010119900307123X\",\"date\":"
                       "\"2026-11-26\",\"status\":\"absent\"},{\"student_id\":\"S10010301\","
                       "\"date\":\"2026-11-26\",\"status\":\"absent\",\"note\":\"家长 "
                       "13812345678\"}]}";
    ingest_ctx ctx = context();
    ingest_batch b;
    ingest_batch_init(&b);
    bx_error err = {0};
    REQUIRE(ingest_parse_attendance_json(&ctx, body, strlen(body), &b, &err) == BX_OK);
    REQUIRE(b.count == 2);
    CHECK(b.items[0].outcome == INGEST_REJECTED);
    CHECK_CONTAINS(b.items[0].error, "110101********123X");
    bx_buf reply;
    bx_buf_init(&reply, 0);
    REQUIRE(ingest_reply(&b, &reply) == BX_OK);
    CHECK(strstr(reply.data, "19900307") == NULL);
    bx_buf_free(&reply);
    for (size_t i = 0; i < b.count; i++) {
        const ingest_record *r = &b.items[i];
        char *dlq = ingest_dlq_message(&ctx, r, r->reason, r->error, NULL, 0);
        REQUIRE(dlq != NULL);
        CHECK(strstr(dlq, "19900307") == NULL);
        CHECK(strstr(dlq, "13812345678") == NULL);
        CHECK_CONTAINS(dlq, i == 0 ? "\"student_id\":\"110101********123X\"" : "138****5678");
        free(dlq);
    }
    ingest_batch_free(&b);
}
