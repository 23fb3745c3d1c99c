/* fuzz_escalate_messages: libFuzzer target for bx-escalate's decoding of the bx.risk.v1 and
 * bx.actions.v1 messages it consumes (messages_decode in services/bx-escalate/messages.h). The
 * contract checked:
 * - every message ends parsed or bad, never a crash; a bad one carries an error message, valid
 *   UTF-8 (it goes into the dead letter as JSON), and is malformed exactly when the bytes are not
 *   JSON;
 * - what the topics' schemas allow, bx-escalate takes: a message of strict JSON that validates
 *   against its topic's schema (dates of the years the calendar handles) is never refused for a
 *   member, only by a rule across members the schema cannot say;
 * - a parsed one names a student and a school of registry ids. */
#include "bx_json.h"
#include "bx_schema_check.h"
#include "messages.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static cJSON *risk_schema, *actions_schema;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    risk_schema = bx_schema_load(BX_FUZZ_SOURCE_DIR "/schemas/topics/bx.risk.v1.schema.json");
    actions_schema = bx_schema_load(BX_FUZZ_SOURCE_DIR "/schemas/topics/bx.actions.v1.schema.json");
    INVARIANT(risk_schema != NULL && actions_schema != NULL);
    return 0;
}

/* True when every date and time in the tree is of a year baoxue's calendar handles (1900..2199,
 * as bx_date_parse): the schemas' patterns admit any four digits, no producer sends others. */
static bool years_handled(const cJSON *node)
{
    if (cJSON_IsString(node) && node->valuestring) {
        const char *v = node->valuestring;
        if (strlen(v) >= 5 && v[4] == '-' && strspn(v, "0123456789") == 4) {
            int year = (v[0] - '0') * 1000 + (v[1] - '0') * 100 + (v[2] - '0') * 10 + (v[3] - '0');
            if (year < 1900 || year > 2199)
                return false;
        }
    }
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        if (!years_handled(c))
            return false;
    return true;
}

/* Strict JSON, an instance of the schema its "schema" member names, years handled. */
static bool valid_message(const char *payload, size_t size)
{
    cJSON *tree = NULL;
    bx_error err = {0};
    if (size == 0 || bx_json_parse(payload, size, &tree, &err) != BX_OK)
        return false;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(tree, "schema");
    const cJSON *schema = NULL;
    if (cJSON_IsString(name) && strcmp(name->valuestring, "bx.risk.v1") == 0)
        schema = risk_schema;
    else if (cJSON_IsString(name) && strcmp(name->valuestring, "bx.actions.v1") == 0)
        schema = actions_schema;
    char why[512];
    bool valid = schema && bx_schema_check(schema, tree, why, sizeof(why)) && years_handled(tree);
    cJSON_Delete(tree);
    return valid;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The payload as librdkafka hands it over: exactly size bytes, no NUL after them. */
    char *payload = malloc(size ? size : 1);
    INVARIANT(payload != NULL);
    if (size)
        memcpy(payload, data, size);
    static messages_input p;
    memset(&p, 0x7E, sizeof(p));
    messages_decode(size ? payload : NULL, size, &p);
    if (p.bad != MESSAGES_GOOD) {
        INVARIANT(p.bad == MESSAGES_MALFORMED || p.bad == MESSAGES_INVALID);
        INVARIANT(memchr(p.error, '\0', sizeof(p.error)) != NULL);
        INVARIANT(p.error[0] != '\0' && bx_utf8_valid(p.error, strlen(p.error)));
        cJSON *tree = NULL;
        bx_error err = {0};
        bool json = size > 0 && bx_json_parse(payload, size, &tree, &err) == BX_OK;
        cJSON_Delete(tree);
        INVARIANT(json == (p.bad == MESSAGES_INVALID));
        if (valid_message(payload, size) &&
            strncmp(p.error, MESSAGES_PATH, strlen(MESSAGES_PATH)) == 0) {
            fprintf(stderr, "valid against the schema, yet dead-lettered: %s\n%.*s\n", p.error,
                    (int)size, payload);
            abort();
        }
    } else {
        INVARIANT(bx_id_valid(p.student) && bx_id_valid(p.school));
    }
    free(payload);
    return 0;
}
