/* Topic schemas: every schema parses, every example validates, broken copies fail at the right
 * path. */
#include "bx_schema_check.h"
#include "bx_test.h"

#include <dirent.h>
#include <stdbool.h>

static const char *const topics[] = {
    "bx.attendance.v1",
    "bx.actions.v1",
    "bx.dlq.v1",
    "bx.risk.v1",
    "bx.analytics.risk.v1",
    "bx.analytics.attendance.v1",
    "bx.case.events.v1",
    "bx.notify.requests.v1",
    "bx.notify.status.v1",
    "bx.analytics.cases.v1",
};
enum { TOPIC_COUNT = sizeof(topics) / sizeof(topics[0]) };

static const char *source_dir(void)
{
    const char *dir = getenv("BX_SOURCE_DIR");
    REQUIRE(dir != NULL && *dir != '\0');
    return dir;
}

static cJSON *load_example(const char *topic, const char *file)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/schemas/topics/examples/%s/%s", source_dir(), topic, file);
    return bx_schema_load(path);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the *.json files of a topic's examples folder, sorted; caller frees each name and *out. */
static int list_examples(const char *topic, char ***out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/schemas/topics/examples/%s", source_dir(), topic);
    DIR *dir = opendir(path);
    *out = NULL;
    if (dir == NULL)
        return 0;
    int count = 0, cap = 0;
    char **names = NULL;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (len < 6 || strcmp(entry->d_name + len - 5, ".json") != 0)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            names = realloc(names, (size_t)cap * sizeof(*names));
            REQUIRE(names != NULL);
        }
        names[count] = strdup(entry->d_name);
        REQUIRE(names[count] != NULL);
        count++;
    }
    closedir(dir);
    if (count > 1)
        qsort(names, (size_t)count, sizeof(*names), compare_names);
    *out = names;
    return count;
}

static void check_examples_of(const char *topic)
{
    cJSON *schema = bx_schema_load_topic(topic);
    REQUIRE(schema != NULL);
    char **names;
    int count = list_examples(topic, &names);
    if (count == 0)
        BX_FAIL_AT("%s has no examples", topic);
    for (int i = 0; i < count; i++) {
        cJSON *example = load_example(topic, names[i]);
        char err[512];
        if (example == NULL)
            BX_FAIL_AT("%s/%s does not parse", topic, names[i]);
        else if (!bx_schema_check(schema, example, err, sizeof(err)))
            BX_FAIL_AT("%s/%s: %s", topic, names[i], err);
        else
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(example, "schema")),
                      topic);
        cJSON_Delete(example);
        free(names[i]);
    }
    free(names);
    cJSON_Delete(schema);
}

BX_TEST(schemas_parse)
{
    for (int i = 0; i < TOPIC_COUNT; i++) {
        cJSON *schema = bx_schema_load_topic(topics[i]);
        if (schema == NULL) {
            BX_FAIL_AT("%s.schema.json does not load", topics[i]);
            continue;
        }
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(schema, "$schema")),
                  "https://json-schema.org/draft/2020-12/schema");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(schema, "x-kafka-topic")),
                  topics[i]);
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(schema, "x-kafka-key")));
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(schema, "type")), "object");
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties")));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(schema, "required")) > 0);
        const cJSON *schema_const = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(schema, "properties"),
                                             "schema"),
            "const");
        CHECK_STR(cJSON_GetStringValue(schema_const), topics[i]);
        cJSON_Delete(schema);
    }
}

BX_TEST(schemas_every_topic_has_examples)
{
    for (int i = 0; i < TOPIC_COUNT; i++) {
        char **names;
        int count = list_examples(topics[i], &names);
        if (count == 0)
            BX_FAIL_AT("%s has no examples", topics[i]);
        for (int j = 0; j < count; j++)
            free(names[j]);
        free(names);
    }
}

BX_TEST(schemas_attendance_examples)
{
    check_examples_of("bx.attendance.v1");
    /* One example per message type. */
    static const char *const types[] = {"attendance", "leave", "class_report"};
    static const char *const files[] = {"attendance.json", "leave.json", "class_report.json"};
    for (int i = 0; i < 3; i++) {
        cJSON *example = load_example("bx.attendance.v1", files[i]);
        CHECK(example != NULL);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(example, "type")),
                  types[i]);
        cJSON_Delete(example);
    }
}

BX_TEST(schemas_actions_examples)
{
    check_examples_of("bx.actions.v1");
}

BX_TEST(schemas_dlq_examples)
{
    check_examples_of("bx.dlq.v1");
}

BX_TEST(schemas_risk_examples)
{
    check_examples_of("bx.risk.v1");
}

BX_TEST(schemas_analytics_risk_examples)
{
    check_examples_of("bx.analytics.risk.v1");
}

BX_TEST(schemas_analytics_attendance_examples)
{
    check_examples_of("bx.analytics.attendance.v1");
}

BX_TEST(schemas_case_events_examples)
{
    check_examples_of("bx.case.events.v1");
}

BX_TEST(schemas_notify_requests_examples)
{
    check_examples_of("bx.notify.requests.v1");
}

BX_TEST(schemas_notify_status_examples)
{
    check_examples_of("bx.notify.status.v1");
}

/* ---- broken copies ------------------------------------------------------------------------- */

/* One deliberate breakage of an example: at path ("details.channel", "factors[0].points"), set
 * the member to the JSON text value, or delete it when value is NULL; the check must then fail
 * with an error starting "<expect>: ". */
typedef struct breakage {
    const char *example;
    const char *path;
    const char *value;
    const char *expect;
} breakage;

/* Finds the parent of the last segment of path and writes that segment (a key, or an index when
 * *index >= 0). Returns NULL when an intermediate member is missing. */
static cJSON *walk_to_parent(cJSON *doc, const char *path, char *last, size_t lastlen, int *index)
{
    cJSON *node = doc;
    const char *p = path;
    for (;;) {
        char key[128];
        size_t k = 0;
        int idx = -1;
        while (*p && *p != '.' && *p != '[' && k + 1 < sizeof(key))
            key[k++] = *p++;
        key[k] = '\0';
        if (k == 0 && *p == '[') {
            idx = (int)strtol(p + 1, NULL, 10);
            p = strchr(p, ']');
            if (p == NULL)
                return NULL;
            p++;
        }
        if (*p == '\0') {
            snprintf(last, lastlen, "%s", key);
            *index = idx;
            return node;
        }
        node =
            idx >= 0 ? cJSON_GetArrayItem(node, idx) : cJSON_GetObjectItemCaseSensitive(node, key);
        if (node == NULL)
            return NULL;
        if (*p == '.')
            p++;
    }
}

static bool apply_breakage(cJSON *doc, const breakage *b)
{
    char last[128];
    int index;
    cJSON *parent = walk_to_parent(doc, b->path, last, sizeof(last), &index);
    if (parent == NULL)
        return false;
    if (b->value == NULL) {
        if (index >= 0)
            cJSON_DeleteItemFromArray(parent, index);
        else
            cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
        return true;
    }
    cJSON *value = cJSON_Parse(b->value);
    if (value == NULL)
        return false;
    if (index >= 0)
        return cJSON_ReplaceItemInArray(parent, index, value);
    if (cJSON_GetObjectItemCaseSensitive(parent, last) != NULL)
        return cJSON_ReplaceItemInObjectCaseSensitive(parent, last, value);
    return cJSON_AddItemToObject(parent, last, value);
}

static void check_breakages(const char *topic, const breakage *table, int count)
{
    cJSON *schema = bx_schema_load_topic(topic);
    REQUIRE(schema != NULL);
    for (int i = 0; i < count; i++) {
        const breakage *b = &table[i];
        cJSON *doc = load_example(topic, b->example);
        if (doc == NULL) {
            BX_FAIL_AT("row %d: %s/%s does not load", i, topic, b->example);
            continue;
        }
        char err[512];
        if (!bx_schema_check(schema, doc, err, sizeof(err)))
            BX_FAIL_AT("row %d: %s is invalid before breaking it: %s", i, b->example, err);
        else if (!apply_breakage(doc, b))
            BX_FAIL_AT("row %d: cannot apply %s = %s", i, b->path,
                       b->value ? b->value : "(delete)");
        else if (bx_schema_check(schema, doc, err, sizeof(err)))
            BX_FAIL_AT("row %d: %s with %s = %s was accepted", i, b->example, b->path,
                       b->value ? b->value : "(delete)");
        else {
            size_t len = strlen(b->expect);
            if (strncmp(err, b->expect, len) != 0 || strncmp(err + len, ": ", 2) != 0)
                BX_FAIL_AT("row %d: %s = %s: error \"%s\", expected path \"%s\"", i, b->path,
                           b->value ? b->value : "(delete)", err, b->expect);
        }
        cJSON_Delete(doc);
    }
    cJSON_Delete(schema);
}

#define CHECK_BREAKAGES(topic, table)                                                              \
    check_breakages(topic, table, (int)(sizeof(table) / sizeof(table[0])))

BX_TEST(schemas_attendance_rejects)
{
    static const breakage table[] = {
        {"attendance.json", "student_id", NULL, "student_id"},
        {"attendance.json", "recorded_by", NULL, "recorded_by"},
        {"attendance.json", "status", "\"truant\"", "status"},
        {"attendance.json", "nickname", "\"小明\"", "nickname"},
        {"attendance.json", "date", "\"2026-3-9\"", "date"},
        {"attendance.json", "date", "\"2026-02-30\"", "date"},
        {"attendance.json", "recorded_at", "\"2026-03-09 08:21:05\"", "recorded_at"},
        {"attendance.json", "period", "0", "period"},
        {"attendance.json", "period", "13", "period"},
        {"attendance.json", "period", "2.5", "period"},
        {"attendance.json", "event_id", "\"not an id\"", "event_id"},
        {"attendance.json", "event_id", "\"\"", "event_id"},
        {"attendance.json", "type", "\"rollcall\"", "type"},
        {"attendance.json", "schema", "\"bx.attendance.v2\"", "schema"},
        {"attendance.json", "source", "\"phone\"", "source"},
        /* Leave without its kind, and a kind without leave. */
        {"attendance.json", "status", "\"leave\"", "leave_kind"},
        {"attendance.json", "leave_kind", "\"sick\"", "leave_kind"},
        {"attendance_leave_period.json", "leave_kind", "null", "leave_kind"},
        {"attendance_leave_period.json", "leave_kind", NULL, "leave_kind"},
        {"attendance_leave_period.json", "leave_kind", "\"vacation\"", "leave_kind"},
        {"attendance_leave_period.json", "rollcall_id", "\"rc-20260309-7-2\"", "rollcall_id"},
        {"leave.json", "leave_kind", NULL, "leave_kind"},
        {"leave.json", "leave_kind", "null", "leave_kind"},
        {"leave.json", "requested_by", "\"grandmother\"", "requested_by"},
        {"leave.json", "phoned_in", "\"yes\"", "phoned_in"},
        {"leave.json", "last_date", "\"2026/03/11\"", "last_date"},
        /* Members of another message type are not allowed. */
        {"leave.json", "date", "\"2026-03-10\"", "date"},
        {"leave.json", "status", "\"leave\"", "status"},
        {"class_report.json", "student_id", "\"stu-0001234\"", "student_id"},
        {"class_report.json", "present", "-1", "present"},
        {"class_report.json", "enrolled", NULL, "enrolled"},
    };
    CHECK_BREAKAGES("bx.attendance.v1", table);
}

BX_TEST(schemas_actions_rejects)
{
    static const breakage table[] = {
        {"contact_made.json", "student_id", NULL, "student_id"},
        {"contact_made.json", "action", "\"phoned\"", "action"},
        {"contact_made.json", "extra", "true", "extra"},
        {"contact_made.json", "date", "\"20260309\"", "date"},
        {"contact_made.json", "details.channel", NULL, "details.channel"},
        {"contact_made.json", "details.channel", "\"fax\"", "details.channel"},
        {"contact_made.json", "details.reached", "1", "details.reached"},
        /* Details must fit the action. */
        {"contact_made.json", "action", "\"home_visit\"", "details.outcome"},
        {"home_visit.json", "details.letter", "\"persuasion_letter\"", "details.letter"},
        {"home_visit.json", "details.reason", "\"lazy\"", "details.reason"},
        {"letter_delivered.json", "details.letter", "\"warning\"", "details.letter"},
        {"returned.json", "details.return_date", "\"30/03/2026\"", "details.return_date"},
        {"transfer_out.json", "details.paperwork", NULL, "details.paperwork"},
        {"transfer_confirmed.json", "details.receiving_school", "null", "details.receiving_school"},
        {"suspension.json", "details.reason", "\"holiday\"", "details.reason"},
        {"suspension.json", "staff_id", "\"bad id!\"", "staff_id"},
        {"suspension.json", "details", "null", "details"},
    };
    CHECK_BREAKAGES("bx.actions.v1", table);
}

BX_TEST(schemas_dlq_rejects)
{
    static const breakage table[] = {
        {"unknown_student.json", "reason", NULL, "reason"},
        {"unknown_student.json", "reason", "\"bogus\"", "reason"},
        {"unknown_student.json", "record_index", "-1", "record_index"},
        {"unknown_student.json", "credential", "\"3f9a1c0e7b2d4a68\"", "credential"},
        {"unknown_student.json", "received_at", "\"yesterday\"", "received_at"},
        {"csv_bad_date.json", "line", "0", "line"},
        {"malformed_body.json", "error", "\"\"", "error"},
        {"malformed_body.json", "record", NULL, "record"},
    };
    CHECK_BREAKAGES("bx.dlq.v1", table);
}

BX_TEST(schemas_risk_rejects)
{
    static const breakage table[] = {
        {"assessment.json", "trigger", NULL, "trigger"},
        {"assessment.json", "tier", "\"severe\"", "tier"},
        {"assessment.json", "previous_tier", "\"severe\"", "previous_tier"},
        {"assessment.json", "factors[0].points", "1.5", "factors[0].points"},
        {"assessment.json", "factors[1].weight", "2", "factors[1].weight"},
        {"assessment.json", "factors[2].factor", NULL, "factors[2].factor"},
        {"assessment.json", "attendance_rate_20d", "1.2", "attendance_rate_20d"},
        {"assessment.json", "streak_start", "\"2026-13-01\"", "streak_start"},
        {"assessment.json", "name", "\"张三\"", "name"},
    };
    CHECK_BREAKAGES("bx.risk.v1", table);
}

BX_TEST(schemas_analytics_risk_rejects)
{
    static const breakage table[] = {
        {"assessment.json", "student_id", "\"stu-0001234\"", "student_id"},
        {"assessment.json", "class_id", "\"cls-017-7-2\"", "class_id"},
        {"assessment.json", "subject", "\"stu-0001234\"", "subject"},
        {"assessment.json", "subject", NULL, "subject"},
        {"assessment.json", "factors[0]", "\"registered_poor\"", "factors[0]"},
        {"assessment.json", "factors[1]", "\"flag_orphan\"", "factors[1]"},
        {"assessment.json", "factors[1]", "{\"factor\":\"streak_days\",\"points\":45}",
         "factors[1]"},
        {"assessment.json", "county_code", "\"44010\"", "county_code"},
        {"assessment.json", "tier", "\"urgent\"", "tier"},
    };
    CHECK_BREAKAGES("bx.analytics.risk.v1", table);
}

BX_TEST(schemas_analytics_attendance_rejects)
{
    static const breakage table[] = {
        {"class.json", "student_id", "\"stu-0001234\"", "student_id"},
        {"class.json", "subject", "\"0123abcd\"", "subject"},
        {"class.json", "absent", "-1", "absent"},
        {"class.json", "absent", "\"3\"", "absent"},
        {"class.json", "suppressed[0]", "\"names\"", "suppressed[0]"},
        {"class.json", "level", "\"student\"", "level"},
        {"county.json", "county_code", "\"44010\"", "county_code"},
        {"county.json", "date", "\"09.03.2026\"", "date"},
        {"county.json", "event_id", "\"rc-20260309-7-2:stu-0001234\"", "event_id"},
        {"county.json", "enrolled", NULL, "enrolled"},
    };
    CHECK_BREAKAGES("bx.analytics.attendance.v1", table);
}

BX_TEST(schemas_analytics_cases_examples)
{
    check_examples_of("bx.analytics.cases.v1");
}

BX_TEST(schemas_analytics_cases_rejects)
{
    static const breakage table[] = {
        {"opened.json", "student_id", "\"stu-0001234\"", "student_id"},
        {"opened.json", "subject", "\"stu-0001234\"", "subject"},
        {"opened.json", "reason", "\"absent since Monday\"", "reason"},
        {"opened.json", "trigger", "null", "trigger"},
        {"opened.json", "sex", "\"F\"", "sex"},
        {"opened.json", "grade_band", "\"grade_7\"", "grade_band"},
        {"closed.json", "ending", "null", "ending"},
        {"closed.json", "school_days_to_return", "-1", "school_days_to_return"},
        {"home_visit.json", "visit_outcome", "\"he said he would come\"", "visit_outcome"},
        {"home_visit.json", "visit_reason", "\"left_behind\"", "visit_reason"},
        {"home_visit.json", "ending", "\"returned\"", "ending"},
    };
    CHECK_BREAKAGES("bx.analytics.cases.v1", table);
}

BX_TEST(schemas_case_events_rejects)
{
    static const breakage table[] = {
        {"opened.json", "case_id", NULL, "case_id"},
        {"opened.json", "event", "\"deleted\"", "event"},
        {"opened.json", "ending", "\"returned\"", "ending"},
        {"opened.json", "stage", "\"nowhere\"", "stage"},
        {"opened.json", "late", NULL, "late"},
        {"opened.json", "occurred_at", "\"2026-03-09T08:25:00\"", "occurred_at"},
        {"closed.json", "ending", "null", "ending"},
        {"closed.json", "ending", "\"dropped\"", "ending"},
        {"stage_entered.json", "stage", "null", "stage"},
        {"task_created.json", "task", "null", "task"},
        {"task_created.json", "task.owner_role", "\"guardian\"", "task.owner_role"},
        {"task_created.json", "task.due_at", NULL, "task.due_at"},
        {"task_created.json", "task.priority", "1", "task.priority"},
    };
    CHECK_BREAKAGES("bx.case.events.v1", table);
}

BX_TEST(schemas_notify_requests_rejects)
{
    static const breakage table[] = {
        {"guardian_sms.json", "template", NULL, "template"},
        {"guardian_sms.json", "recipient_role", "\"parent\"", "recipient_role"},
        {"guardian_sms.json", "channel", "\"task\"", "channel"},
        {"guardian_sms.json", "recipient_staff_id", "\"stf-017-hr-12\"", "recipient_staff_id"},
        {"guardian_sms.json", "student_id", "null", "student_id"},
        {"guardian_sms.json", "params.date", "{\"y\":2026}", "params.date"},
        {"guardian_sms.json", "phone", "\"13812341234\"", "phone"},
        {"teacher_task.json", "channel", "\"email\"", "channel"},
        {"teacher_task.json", "not_before", "\"soon\"", "not_before"},
    };
    CHECK_BREAKAGES("bx.notify.requests.v1", table);
}

BX_TEST(schemas_notify_status_rejects)
{
    static const breakage table[] = {
        {"delivered.json", "status", "\"bounced\"", "status"},
        {"delivered.json", "recipient", "\"13812341234\"", "recipient"},
        {"delivered.json", "recipient", "\"+8613812341234\"", "recipient"},
        {"delivered.json", "attempt", "-1", "attempt"},
        {"delivered.json", "at", NULL, "at"},
        {"delivered.json", "body", "\"您的孩子今天未到校\"", "body"},
        {"failed.json", "reason", "null", "reason"},
    };
    CHECK_BREAKAGES("bx.notify.status.v1", table);
}

/* ---- the checker itself -------------------------------------------------------------------- */

/* Validates instance text against schema text; err receives the message. */
static bool check_texts(const char *schema_text, const char *instance_text, char *err,
                        size_t errlen)
{
    cJSON *schema = cJSON_Parse(schema_text);
    REQUIRE(schema != NULL);
    bool ok = bx_schema_check_text(schema, instance_text, strlen(instance_text), err, errlen);
    cJSON_Delete(schema);
    return ok;
}

typedef struct checker_case {
    const char *schema;
    const char *instance;
    /* NULL when the instance must be accepted; else the start of the expected error. */
    const char *error;
} checker_case;

BX_TEST(schemas_checker_keywords)
{
    static const checker_case table[] = {
        {"{\"type\":\"integer\"}", "3", NULL},
        {"{\"type\":\"integer\"}", "3.0", NULL},
        {"{\"type\":\"integer\"}", "3.5", "(root): expected integer, got number"},
        {"{\"type\":[\"string\",\"null\"]}", "null", NULL},
        {"{\"type\":[\"string\",\"null\"]}", "1", "(root): expected string or null, got number"},
        {"{\"minLength\":2,\"maxLength\":2}", "\"保学\"", NULL},
        {"{\"maxLength\":1}", "\"保学\"", "(root): longer than 1"},
        {"{\"pattern\":\"^\\\\d{2}$\"}", "\"42\"", NULL},
        {"{\"pattern\":\"^\\\\d{2}$\"}", "\"4a\"", "(root): \"4a\" does not match"},
        {"{\"pattern\":\"^[\\\\d.]+$\"}", "\"4.2\"", NULL},
        {"{\"pattern\":\"^a\\\\.b$\"}", "\"axb\"", "(root): \"axb\" does not match"},
        {"{\"pattern\":\"\\\\p{L}\"}", "\"x\"", "(root): schema pattern"},
        {"{\"format\":\"date\"}", "\"2028-02-29\"", NULL},
        {"{\"format\":\"date\"}", "\"2026-02-29\"", "(root): \"2026-02-29\" is not a date"},
        {"{\"format\":\"date-time\"}", "\"2026-03-09T08:00:00.125Z\"", NULL},
        {"{\"format\":\"date-time\"}", "\"2026-03-09T24:00:00+08:00\"", "(root): "},
        {"{\"format\":\"email\"}", "\"a@b\"", "(root): schema uses unsupported format"},
        {"{\"minimum\":0,\"exclusiveMaximum\":1}", "1", "(root): 1 is not less than 1"},
        {"{\"enum\":[\"a\",null]}", "null", NULL},
        {"{\"enum\":[\"a\",null]}", "\"b\"", "(root): \"b\" is not one of"},
        {"{\"const\":{\"k\":[1]}}", "{\"k\":[1]}", NULL},
        {"{\"items\":{\"type\":\"string\"},\"maxItems\":2}", "[\"a\",1]", "[1]: expected string"},
        {"{\"maxItems\":1}", "[1,2]", "(root): has more than 1 items"},
        {"{\"properties\":{\"a\":{\"properties\":{\"b\":{\"type\":\"null\"}}}}}",
         "{\"a\":{\"b\":0}}", "a.b: expected null"},
        {"{\"required\":[\"a\"],\"properties\":{\"a\":true},\"additionalProperties\":false}",
         "{\"a\":1,\"b\":2}", "b: is not allowed here"},
        {"{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":1,\"b\":\"2\"}",
         "b: expected integer"},
        {"{\"$defs\":{\"d\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/d\"}", "1",
         "(root): expected string"},
        {"{\"$ref\":\"#/$defs/missing\"}", "1", "(root): schema $ref #/$defs/missing does not"},
        {"{\"$defs\":{\"loop\":{\"$ref\":\"#/$defs/loop\"}},\"$ref\":\"#/$defs/loop\"}", "1",
         "(root): schema nests deeper"},
        {"{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", "-1", NULL},
        {"{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", "1", "(root): matches 2 of"},
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"null\"}]}", "\"x\"",
         "(root): matches none"},
        {"{\"not\":{\"const\":1}}", "1", "(root): matches a schema it must not match"},
        {"{\"allOf\":[{\"minimum\":2},{\"maximum\":1}]}", "1", "(root): 1 is less than"},
        {"{\"if\":{\"properties\":{\"k\":{\"const\":\"a\"}},\"required\":[\"k\"]},"
         "\"then\":{\"required\":[\"x\"]},\"else\":{\"required\":[\"y\"]}}",
         "{\"k\":\"a\",\"y\":1}", "x: is required"},
        {"{\"if\":{\"properties\":{\"k\":{\"const\":\"a\"}},\"required\":[\"k\"]},"
         "\"then\":{\"required\":[\"x\"]},\"else\":{\"required\":[\"y\"]}}",
         "{\"k\":\"b\",\"y\":1}", NULL},
        {"{\"then\":false}", "1", NULL},
        {"{\"properties\":{\"a\":false}}", "{\"a\":1}", "a: is not allowed here"},
        {"{\"uniqueItems\":true}", "[]", "(root): schema uses unsupported keyword \"uniqueItems\""},
        {"{\"x-kafka-key\":\"id\",\"description\":\"d\"}", "{}", NULL},
        {"true", "{\"anything\":[1]}", NULL},
        {"{}", "{\"a\":", "(root): not valid JSON"},
        {"{}", "{} x", "(root): not valid JSON"},
    };
    for (int i = 0; i < (int)(sizeof(table) / sizeof(table[0])); i++) {
        char err[256];
        bool ok = check_texts(table[i].schema, table[i].instance, err, sizeof(err));
        if (table[i].error == NULL && !ok)
            BX_FAIL_AT("row %d: %s rejected: %s", i, table[i].instance, err);
        else if (table[i].error != NULL && ok)
            BX_FAIL_AT("row %d: %s accepted", i, table[i].instance);
        else if (table[i].error != NULL &&
                 strncmp(err, table[i].error, strlen(table[i].error)) != 0)
            BX_FAIL_AT("row %d: error \"%s\", expected \"%s...\"", i, err, table[i].error);
    }
}

BX_TEST(schemas_checker_error_buffer)
{
    cJSON *schema = cJSON_Parse("{\"type\":\"string\"}");
    cJSON *instance = cJSON_CreateNumber(1);
    REQUIRE(schema != NULL && instance != NULL);
    char err[8];
    memset(err, 'x', sizeof(err));
    CHECK(!bx_schema_check(schema, instance, err, sizeof(err)));
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    CHECK(!bx_schema_check(schema, instance, NULL, 0));
    CHECK(!bx_schema_check(NULL, instance, err, sizeof(err)));
    cJSON_Delete(instance);
    cJSON_Delete(schema);
}

BX_TEST(schemas_load_missing_file)
{
    CHECK(bx_schema_load("/nonexistent/bx.nothing.v1.schema.json") == NULL);
    CHECK(bx_schema_load_topic("bx.nothing.v1") == NULL);
}
