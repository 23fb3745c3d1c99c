/* fuzz_state_json: libFuzzer target for bx-escalate's case state decoding (state_json_decode, the
 * JSON kept in cases.case.state), under the default ladder policy (deploy/policy/ladder.policy).
 * The contract checked:
 * - all or nothing: a refused text leaves *out as it was, with a message naming the case state
 *   (or the JSON's line);
 * - an accepted state is one the ladder can index under that policy: every stage and task rule
 *   index inside the policy's own lists (-1 for none), whether it was read from a name (version 2)
 *   or an index (version 1); the task count inside its array, every string NUL-terminated;
 * - it round-trips: encoding it (version 2) and decoding the result gives the same text again. */
#include "bx_buf.h"
#include "ladder.h"
#include "state_json.h"

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

static const ladder_policy *policy(void)
{
    static ladder_policy p;
    static bool loaded;
    if (!loaded) {
        bx_error err = {0};
        if (ladder_policy_load(BX_FUZZ_SOURCE_DIR "/deploy/policy/ladder.policy", &p, &err) !=
            BX_OK) {
            fprintf(stderr, "%s\n", err.msg);
            abort();
        }
        loaded = true;
    }
    return &p;
}

static void check_indices(const ladder_policy *p, const case_state *s)
{
    INVARIANT(s->stage >= -1 && s->stage < p->nstages);
    for (int i = p->nstages; i < LADDER_STAGES_MAX; i++)
        INVARIANT(s->stages[i].entered_at == 0);
    INVARIANT(s->ntasks >= 0 && s->ntasks <= LADDER_TASKS_MAX);
    INVARIANT(s->applied_next >= 0 && s->applied_next < LADDER_APPLIED_MAX);
    for (int i = 0; i < s->ntasks; i++) {
        const ladder_task *t = &s->tasks[i];
        if (!(t->rule >= -1 && t->rule < p->ntask_rules))
            fprintf(stderr, "tasks[%d]: rule %d is outside the policy's %d task rules\n", i,
                    t->rule, p->ntask_rules);
        INVARIANT(t->rule >= -1 && t->rule < p->ntask_rules);
        if (!(t->stage >= -1 && t->stage < p->nstages))
            fprintf(stderr, "tasks[%d]: stage %d is outside the policy's %d stages\n", i, t->stage,
                    p->nstages);
        INVARIANT(t->stage >= -1 && t->stage < p->nstages);
        INVARIANT(t->wait_stage >= -1 && t->wait_stage < p->nstages);
        INVARIANT(memchr(t->key, '\0', sizeof(t->key)) != NULL);
    }
    INVARIANT(memchr(s->student_id, '\0', sizeof(s->student_id)) != NULL);
    INVARIANT(memchr(s->case_id, '\0', sizeof(s->case_id)) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    INVARIANT(text != NULL);
    if (size)
        memcpy(text, data, size);
    static case_state out, before, again;
    memset(&out, 0x5A, sizeof(out));
    memcpy(&before, &out, sizeof(out));
    bx_error err = {0};
    const ladder_policy *p = policy();
    bx_status s = state_json_decode(p, text, size, &out, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL);
        INVARIANT(memcmp(&out, &before, sizeof(out)) == 0);
        INVARIANT(strncmp(err.msg, "case state: ", 12) == 0 ||
                  strncmp(err.msg, "case state of ", 14) == 0 ||
                  strncmp(err.msg, "line ", 5) == 0 || strcmp(err.msg, "empty body") == 0);
    } else {
        check_indices(p, &out);
        bx_buf first, second;
        bx_buf_init(&first, 0);
        bx_buf_init(&second, 0);
        INVARIANT(state_json_encode(p, &out, &first, &err) == BX_OK);
        INVARIANT(strncmp(first.data, "{\"v\":2,", 7) == 0);
        s = state_json_decode(p, first.data, first.len, &again, &err);
        if (s != BX_OK)
            fprintf(stderr, "re-decoding failed: %s\n%s\n", err.msg, first.data);
        INVARIANT(s == BX_OK);
        INVARIANT(state_json_encode(p, &again, &second, &err) == BX_OK);
        INVARIANT(first.len == second.len && memcmp(first.data, second.data, first.len) == 0);
        bx_buf_free(&first);
        bx_buf_free(&second);
    }
    free(text);
    return 0;
}
