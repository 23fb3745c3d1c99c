/* fuzz_ingest: libFuzzer target for bx-ingest's request parsers (records.c) against a small
 * registry in memory. One source, five targets: FUZZ_PARSER selects attendance JSON, attendance
 * CSV, roll call, leave or actions. Besides "no crash", it checks the parsers' contract:
 * - a request refused as a whole says why (a message naming the body or a field; a roll call's
 *   reason is one of bx.dlq.v1's), and its dead letter validates against bx.dlq.v1;
 * - every rejected record names its field, a dead-letter reason and an error that starts with that
 *   field, all valid UTF-8; its dead letter validates against bx.dlq.v1;
 * - every accepted record is a message that parses strictly and validates against its topic's
 *   schema, keyed by its student (or class), with the record's event id, about a student of the
 *   credential's school;
 * - an accepted action names only staff of the registry who work at the student's school (or are
 *   its township's officer), and never carries a township sign-off (a school's key cannot give
 *   one);
 * - a roll call gives each enrolled student of the class at most one fact, and none at all to one
 *   whose entry was rejected (never a guessed "present");
 * - the reply to the request parses strictly. */
#include "bx_json.h"
#include "bx_schema_check.h"
#include "bx_test_registry.h"
#include "ingest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_ATTENDANCE_JSON 1
#define PARSE_ATTENDANCE_CSV  2
#define PARSE_ROLLCALL        3
#define PARSE_LEAVE           4
#define PARSE_ACTIONS         5

#ifndef FUZZ_PARSER
#error "FUZZ_PARSER selects the parser"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bx_registry *registry;
static ingest_staff_dir *staff;

/* The staff the corpus names, and some of another school and township. */
static const ingest_staff staff_rows[] = {
    {"T1001031", "homeroom_teacher", TEST_SCHOOL, "", ""},
    {"stf-017-hr-12", "homeroom_teacher", TEST_SCHOOL, "", ""},
    {"T1002011", "homeroom_teacher", TEST_OTHER_SCHOOL, "", ""},
    {"stf-twn-0402", "township_officer", "", "520122100", ""},
    {"W520122101", "township_officer", "", "520122101", ""},
};
static cJSON *schema_attendance, *schema_actions, *schema_dlq;

static cJSON *load_schema(const char *topic)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/schemas/topics/%s.schema.json", BX_FUZZ_SOURCE_DIR, topic);
    cJSON *s = bx_schema_load(path);
    INVARIANT(s != NULL);
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    bx_error err = {0};
    if (bx_test_registry_new(&registry, &err) != BX_OK) {
        fprintf(stderr, "fuzz registry: %s\n", err.msg);
        abort();
    }
    if (ingest_staff_dir_new(staff_rows, sizeof(staff_rows) / sizeof(staff_rows[0]), &staff,
                             &err) != BX_OK) {
        fprintf(stderr, "fuzz staff: %s\n", err.msg);
        abort();
    }
    schema_attendance = load_schema("bx.attendance.v1");
    schema_actions = load_schema("bx.actions.v1");
    schema_dlq = load_schema("bx.dlq.v1");
    return 0;
}

static const char *const dlq_reasons[] = {
    "malformed",       "missing_field", "invalid_value",  "unknown_field",
    "unknown_student", "unknown_class", "wrong_school",   "wrong_class",
    "future_date",     "outside_term",  "not_school_day", "duplicate_in_request",
    "unknown_staff",   "unauthorized",  "other",          NULL};

static bool known_reason(const char *reason)
{
    for (size_t i = 0; reason && dlq_reasons[i]; i++)
        if (strcmp(reason, dlq_reasons[i]) == 0)
            return true;
    return false;
}

static bool utf8(const char *s)
{
    return s != NULL && bx_utf8_valid(s, strlen(s));
}

static void check_valid(const cJSON *schema, const char *text, const char *what)
{
    char why[512];
    if (!bx_schema_check_text(schema, text, strlen(text), why, sizeof(why))) {
        fprintf(stderr, "%s does not validate: %s\n%s\n", what, why, text);
        abort();
    }
}

static void check_strict(const char *text, const char *what)
{
    cJSON *tree = NULL;
    bx_error err = {0};
    if (bx_json_parse(text, strlen(text), &tree, &err) != BX_OK) {
        fprintf(stderr, "%s does not parse strictly: %s\n%s\n", what, err.msg, text);
        abort();
    }
    cJSON_Delete(tree);
}

/* The student a rejected roll call entry names, if it names one plainly. */
static const char *named_student(const ingest_record *r, char *buf, size_t size)
{
    cJSON *raw = r->raw ? cJSON_Parse(r->raw) : NULL;
    const cJSON *id =
        cJSON_IsObject(raw) ? cJSON_GetObjectItemCaseSensitive(raw, "student_id") : raw;
    const char *out = NULL;
    if (cJSON_IsString(id) && id->valuestring) {
        snprintf(buf, size, "%s", id->valuestring);
        out = buf;
    }
    cJSON_Delete(raw);
    return out;
}

static void check_rollcall(const ingest_batch *b)
{
    const bx_reg_class *klass = NULL;
    for (size_t i = 0; i < b->count; i++) {
        const ingest_record *r = &b->items[i];
        if (r->outcome != INGEST_PENDING || r->index != -1)
            continue;
        INVARIANT(klass == NULL); /* one class report */
        klass = bx_registry_class(registry, r->key);
        INVARIANT(klass != NULL);
    }
    INVARIANT(klass != NULL);
    INVARIANT(b->summary != NULL);
    for (int k = 0; k < klass->student_count; k++) {
        const char *id = klass->students[k]->id;
        int facts = 0;
        bool rejected = false;
        for (size_t i = 0; i < b->count; i++) {
            const ingest_record *r = &b->items[i];
            char buf[128];
            const char *named;
            if (r->outcome == INGEST_PENDING && r->index >= 0 && strcmp(r->student_id, id) == 0)
                facts++;
            if (r->outcome == INGEST_REJECTED &&
                (named = named_student(r, buf, sizeof(buf))) != NULL && strcmp(named, id) == 0)
                rejected = true;
        }
        INVARIANT(facts <= 1);
        if (rejected && facts == 1) {
            /* Listed twice, first validly: the second entry is the duplicate. */
            bool first_valid = false;
            for (size_t i = 0; i < b->count; i++) {
                const ingest_record *r = &b->items[i];
                if (r->outcome == INGEST_PENDING && r->reported && strcmp(r->student_id, id) == 0)
                    first_valid = true;
            }
            if (!first_valid)
                fprintf(stderr, "student %s: entry rejected, yet a present fact\n", id);
            INVARIANT(first_valid);
        }
    }
}

/* An accepted action's staff work at its school; no township sign-off came through the key. */
static void check_accountable(const cJSON *m)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "staff_id");
    if (cJSON_IsString(id)) {
        const ingest_staff *member = ingest_staff_find(staff, id->valuestring);
        INVARIANT(member != NULL);
        INVARIANT(ingest_staff_serves(member, bx_registry_school(registry, TEST_SCHOOL)));
    }
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(m, "details");
    INVARIANT(
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(details, "township_signoff_staff_id")));
}

static void check_batch(const ingest_ctx *ctx, const ingest_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        const ingest_record *r = &b->items[i];
        if (r->outcome == INGEST_REJECTED) {
            INVARIANT(r->field[0] != '\0' && utf8(r->field));
            INVARIANT(known_reason(r->reason));
            INVARIANT(utf8(r->error));
            if (strncmp(r->error, r->field, strlen(r->field)) != 0) {
                fprintf(stderr, "error \"%s\" does not name field \"%s\"\n", r->error, r->field);
                abort();
            }
            if (r->raw)
                check_strict(r->raw, "a rejected record as received");
            char *dlq = ingest_dlq_message(ctx, r, r->reason, r->error, NULL, 0);
            INVARIANT(dlq != NULL);
            check_valid(schema_dlq, dlq, "a record's dead letter");
            free(dlq);
            continue;
        }
        INVARIANT(r->outcome == INGEST_PENDING);
        INVARIANT(r->message != NULL && r->topic != NULL && r->event_id[0] != '\0');
        cJSON *m = NULL;
        bx_error err = {0};
        if (bx_json_parse(r->message, strlen(r->message), &m, &err) != BX_OK) {
            fprintf(stderr, "message does not parse: %s\n%s\n", err.msg, r->message);
            abort();
        }
        bool actions = strcmp(r->topic, BX_TOPIC_ACTIONS) == 0;
        INVARIANT(actions || strcmp(r->topic, BX_TOPIC_ATTENDANCE) == 0);
        INVARIANT(actions == (FUZZ_PARSER == PARSE_ACTIONS));
        check_valid(actions ? schema_actions : schema_attendance, r->message, "a message");
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "event_id");
        INVARIANT(cJSON_IsString(ev) && strcmp(ev->valuestring, r->event_id) == 0);
        const cJSON *school = cJSON_GetObjectItemCaseSensitive(m, "school_id");
        INVARIANT(cJSON_IsString(school) && strcmp(school->valuestring, ctx->school_id) == 0);
        if (actions)
            check_accountable(m);
        const cJSON *student = cJSON_GetObjectItemCaseSensitive(m, "student_id");
        if (cJSON_IsString(student)) {
            const bx_reg_student *st = bx_registry_student(registry, student->valuestring);
            INVARIANT(st != NULL && st->school != NULL);
            INVARIANT(strcmp(st->school->id, ctx->school_id) == 0);
            INVARIANT(strcmp(r->key, st->id) == 0);
        } else {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
            INVARIANT(cJSON_IsString(type) && strcmp(type->valuestring, "class_report") == 0);
            INVARIANT(bx_registry_class(registry, r->key) != NULL);
        }
        cJSON_Delete(m);
    }
    if (FUZZ_PARSER == PARSE_ROLLCALL)
        check_rollcall(b);
}

static bx_status parse(const ingest_ctx *ctx, const char *body, size_t len, ingest_batch *b,
                       const char **reason, bx_error *err)
{
    *reason = "malformed";
    switch (FUZZ_PARSER) {
    case PARSE_ATTENDANCE_JSON:
        return ingest_parse_attendance_json(ctx, body, len, b, err);
    case PARSE_ATTENDANCE_CSV:
        return ingest_parse_attendance_csv(ctx, body, len, b, err);
    case PARSE_ROLLCALL:
        return ingest_parse_rollcall(ctx, body, len, b, reason, err);
    case PARSE_LEAVE:
        return ingest_parse_leave(ctx, body, len, b, err);
    default:
        return ingest_parse_actions(ctx, body, len, b, err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const endpoints[] = {
        "", "/v1/attendance", "/v1/attendance", "/v1/rollcall", "/v1/leave", "/v1/actions"};
    ingest_ctx ctx = {
        .registry = registry,
        .staff = staff,
        .writer = INGEST_WRITER_KEY,
        .school_id = TEST_SCHOOL,
        .credential_id = "cred-fuzz",
        .now = bx_time_from_local(bx_date_from_ymd(2026, 11, 27), 10, 30),
        .endpoint = endpoints[FUZZ_PARSER],
    };
    ingest_batch b;
    ingest_batch_init(&b);
    bx_error err = {0};
    const char *reason = NULL;
    bx_status s = parse(&ctx, (const char *)data, size, &b, &reason, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL);
        INVARIANT(err.msg[0] != '\0' && utf8(err.msg));
        INVARIANT(known_reason(reason));
        if (FUZZ_PARSER == PARSE_ROLLCALL && strcmp(reason, "malformed") != 0)
            INVARIANT(strncmp(err.msg, "body", 4) == 0);
        char *dlq = ingest_dlq_message(&ctx, NULL, reason, err.msg, (const char *)data, size);
        INVARIANT(dlq != NULL);
        check_valid(schema_dlq, dlq, "a request's dead letter");
        free(dlq);
    } else {
        check_batch(&ctx, &b);
        bx_buf reply;
        bx_buf_init(&reply, 0);
        INVARIANT(ingest_reply(&b, &reply) == BX_OK);
        INVARIANT(reply.data != NULL);
        check_strict(reply.data, "the reply");
        bx_buf_free(&reply);
    }
    ingest_batch_free(&b);
    return 0;
}
