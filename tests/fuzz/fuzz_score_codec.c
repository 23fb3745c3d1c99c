/* fuzz_score_codec: libFuzzer target for bx-score's compact encodings as read back from Redis
 * (score_fact_decode, score_leave_decode, score_last_decode). The first byte picks the decoder;
 * the rest is "<slot or event id>\n<value>" (the last summary has no key). The contract checked,
 * from score.h ("decoders are strict: whole string, canonical form"):
 * - a refused value is BX_EINVAL with a message;
 * - an accepted one is well formed (score_fact_check, score_leave_check) and encodes back to the
 *   very same bytes, under the very same slot. */
#include "score.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fact(const char *slot, const char *value)
{
    score_fact f;
    bx_error err = {0};
    bx_status s = score_fact_decode(slot, value, &f, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL && err.msg[0] != '\0');
        return;
    }
    INVARIANT(score_fact_check(&f, &err) == BX_OK);
    char again[SCORE_FACT_VALUE_SIZE], slot_again[SCORE_SLOT_SIZE];
    INVARIANT(score_fact_encode(&f, again, &err) == BX_OK);
    score_fact_slot(&f, slot_again);
    if (strcmp(again, value) != 0 || strcmp(slot_again, slot) != 0) {
        fprintf(stderr, "not canonical: %s = %s came back as %s = %s\n", slot, value, slot_again,
                again);
        abort();
    }
}

static void leave(const char *event_id, const char *value)
{
    score_leave l;
    bx_error err = {0};
    bx_status s = score_leave_decode(event_id, value, &l, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL && err.msg[0] != '\0');
        return;
    }
    INVARIANT(score_leave_check(&l, &err) == BX_OK);
    INVARIANT(strcmp(l.event_id, event_id) == 0);
    char again[SCORE_LEAVE_VALUE_SIZE];
    INVARIANT(score_leave_encode(&l, again, &err) == BX_OK);
    if (strcmp(again, value) != 0) {
        fprintf(stderr, "not canonical: %s came back as %s\n", value, again);
        abort();
    }
}

static void last(const char *text)
{
    score_last l;
    bx_error err = {0};
    bx_status s = score_last_decode(text, &l, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL && err.msg[0] != '\0');
        return;
    }
    char again[SCORE_LAST_SIZE];
    score_last_encode(&l, again);
    if (strcmp(again, text) != 0) {
        fprintf(stderr, "not canonical: %s came back as %s\n", text, again);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* As Redis hands them over: NUL-terminated strings. */
    char *text = calloc(1, size);
    INVARIANT(text != NULL);
    memcpy(text, data + 1, size - 1);
    char *value = strchr(text, '\n');
    const char *key = text;
    if (value != NULL)
        *value++ = '\0';
    switch (data[0] % 3) {
    case 0:
        if (value)
            fact(key, value);
        break;
    case 1:
        if (value)
            leave(key, value);
        break;
    default:
        last(text);
        break;
    }
    free(text);
    return 0;
}
