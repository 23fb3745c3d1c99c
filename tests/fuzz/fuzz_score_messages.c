/* fuzz_score_messages: libFuzzer target for bx-score's decoding of the bx.attendance.v1 messages
 * it consumes (score_message_decode, services/bx-score/messages.h). The contract checked:
 * - every message ends decoded or bad, never a crash; a bad one carries an error message, valid
 *   UTF-8 (it goes into the dead letter as JSON), and is marked JSON or not as the bytes are;
 * - what the topic's schema allows, bx-score takes: a message of strict JSON that validates
 *   against schemas/topics/bx.attendance.v1 (dates of the years the calendar handles) is never
 *   refused for a member, only by a rule across members the schema cannot say;
 * - a decoded one has its storage field, order key and value, and the ids of the registry;
 * - the fast path (bx-ingest's flat shape) decodes exactly as the general path. */
#include "messages.h"

#include "bx_schema_check.h"

#include "bx_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when every date and time in the tree is of a year baoxue's calendar handles (1900..2199,
 * as bx_date_parse): the schema's pattern admits any four digits, bx-ingest never sends others. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static cJSON *schema;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    schema = bx_schema_load(BX_FUZZ_SOURCE_DIR "/schemas/topics/bx.attendance.v1.schema.json");
    INVARIANT(schema != NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The payload as librdkafka hands it over: exactly size bytes, no NUL after them. */
    char *payload = malloc(size ? size : 1);
    INVARIANT(payload != NULL);
    if (size)
        memcpy(payload, data, size);
    static score_message it;
    memset(&it, 0x7E, sizeof(it));
    score_message_decode(size ? payload : NULL, size, &it);
    /* The fast path for bx-ingest's own shape decodes exactly as the general path does. */
    static score_message general;
    memset(&general, 0x5A, sizeof(general));
    score_message_decode_general(size ? payload : NULL, size, &general);
    INVARIANT(memcmp(&it, &general, sizeof(it)) == 0);
    char why[512] = "";
    /* Valid: strict JSON (cJSON alone would take leading zeros) and the schema's instance. */
    cJSON *tree = NULL;
    bx_error err = {0};
    bool valid = size > 0 && bx_json_parse(payload, size, &tree, &err) == BX_OK &&
                 bx_schema_check(schema, tree, why, sizeof(why)) && years_handled(tree);
    cJSON_Delete(tree);
    if (it.kind == SCORE_MESSAGE_BAD) {
        INVARIANT(memchr(it.error, '\0', sizeof(it.error)) != NULL);
        INVARIANT(it.error[0] != '\0' && bx_utf8_valid(it.error, strlen(it.error)));
        /* Cross-field rules the schema cannot say (last_date before first_date) are bx-score's
         * own checks, whose messages name the field without "message.". */
        if (valid && strncmp(it.error, SCORE_MESSAGE_PATH, strlen(SCORE_MESSAGE_PATH)) == 0) {
            fprintf(stderr, "valid against the schema, yet dead-lettered: %s\n%.*s\n", it.error,
                    (int)size, payload);
            abort();
        }
    } else {
        INVARIANT(it.kind == SCORE_MESSAGE_FACT || it.kind == SCORE_MESSAGE_LEAVE ||
                  it.kind == SCORE_MESSAGE_REPORT);
        INVARIANT(it.json_ok);
        INVARIANT(it.field[0] != '\0' && it.order_key[0] != '\0' && it.value[0] != '\0');
        INVARIANT(bx_id_valid(it.school) && bx_id_valid(it.klass));
        INVARIANT(it.kind == SCORE_MESSAGE_REPORT || bx_id_valid(it.student));
    }
    free(payload);
    return 0;
}
