/* fuzz_policy: libFuzzer target for the policy loaders, from memory: bx-score's
 * score_policy_parse (FUZZ_POLICY 1) and bx-escalate's ladder_policy_parse (FUZZ_POLICY 2). The
 * contract checked:
 * - all or nothing: a refused file leaves *out as it was, and says where ("fuzz.policy:<line>: "
 *   or "fuzz.policy: "), in valid UTF-8;
 * - a loaded one is consistent: score tiers in order and the 20-day thresholds too; every ladder
 *   stage and task found by its own name, task indices in range, a known stage name for each stage;
 * - parsing is deterministic: the same text gives the same policy. */
#include "bx_json.h"

#if FUZZ_POLICY == 1
#include "score.h"
typedef score_policy policy;
#define PARSE score_policy_parse
#elif FUZZ_POLICY == 2
#include "ladder.h"
typedef ladder_policy policy;
#define PARSE ladder_policy_parse
#else
#error "FUZZ_POLICY selects the loader"
#endif

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

#define NAME "fuzz.policy"

static void check_loaded(const policy *p)
{
#if FUZZ_POLICY == 1
    INVARIANT(p->tier_medium < p->tier_high && p->tier_high < p->tier_critical);
    INVARIANT(p->rate_20d_very_low_percent <= p->rate_20d_low_percent);
    INVARIANT(p->window_school_days > 0);
#else
    INVARIANT(p->nstages >= 1 && p->nstages <= LADDER_STAGES_MAX);
    INVARIANT(p->ntask_rules >= 0 && p->ntask_rules <= LADDER_TASK_RULES_MAX);
    INVARIANT(p->deadline_minute >= 0 && p->deadline_minute < 24 * 60);
    for (int i = 0; i < p->nstages; i++) {
        const ladder_stage_rule *st = &p->stages[i];
        INVARIANT(memchr(st->name, '\0', sizeof(st->name)) != NULL);
        INVARIANT(ladder_policy_stage(p, st->name) == i);
        bool known = false;
        for (int k = 0; k < LADDER_STAGES_MAX && ladder_stage_names[k]; k++)
            known = known || strcmp(ladder_stage_names[k], st->name) == 0;
        INVARIANT(known);
        INVARIANT(st->ntasks >= 0 && st->ntasks <= LADDER_STAGE_TASKS_MAX);
        for (int t = 0; t < st->ntasks; t++)
            INVARIANT(st->tasks[t] >= 0 && st->tasks[t] < p->ntask_rules);
        INVARIANT(st->nnotify >= 0 && st->nnotify <= LADDER_NOTIFY_MAX);
        INVARIANT(st->nopen_overdue >= 0 && st->nopen_overdue <= LADDER_OVERDUE_MAX);
    }
    for (int i = 0; i < p->ntask_rules; i++) {
        const ladder_task_rule *t = &p->task_rules[i];
        INVARIANT(memchr(t->kind, '\0', sizeof(t->kind)) != NULL);
        INVARIANT(ladder_policy_task(p, t->kind) == i);
        INVARIANT(t->ndone_by >= 0 && t->ndone_by <= LADDER_DONE_BY_MAX);
        INVARIANT(t->due.n >= 0 && t->every.n >= 0);
    }
    int specials[] = {p->return_signoff_task, p->transfer_task, p->suspension_task, p->enrol_task};
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
        INVARIANT(specials[i] >= -1 && specials[i] < p->ntask_rules);
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly size bytes, so reading past the text is caught. */
    char *text = malloc(size ? size : 1);
    INVARIANT(text != NULL);
    if (size)
        memcpy(text, data, size);
    static policy out, before, again;
    memset(&out, 0xA5, sizeof(out));
    memcpy(&before, &out, sizeof(out));
    bx_error err = {0};
    bx_status s = PARSE(text, size, NAME, &out, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL);
        INVARIANT(memcmp(&out, &before, sizeof(out)) == 0);
        INVARIANT(strncmp(err.msg, NAME ":", strlen(NAME ":")) == 0);
        if (!bx_utf8_valid(err.msg, strlen(err.msg))) {
            fprintf(stderr, "error not UTF-8: %s\n", err.msg);
            abort();
        }
    } else {
        check_loaded(&out);
        memset(&again, 0xA5, sizeof(again));
        INVARIANT(PARSE(text, size, NAME, &again, &err) == BX_OK);
        INVARIANT(memcmp(&out, &again, sizeof(out)) == 0);
    }
    free(text);
    return 0;
}
