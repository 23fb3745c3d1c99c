/* fuzz_json: libFuzzer target for bx_json_parse and the accessors, checking invariants and
 * comparing accepted input with what cJSON's own parser makes of it. */
#include "bx_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s\n", #cond);                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const allowed[] = {"date", "period", "status", "note", "records", NULL};

/* Runs every accessor on every member of every object; each answer must be consistent. */
static void walk(const cJSON *node)
{
    bx_error err;
    for (const cJSON *m = node->child; m != NULL; m = m->next) {
        if (cJSON_IsObject(node)) {
            const char *s = NULL;
            int64_t n = 0;
            bool b = false;
            bx_status st = bx_json_get_string(node, "p", m->string, true, 8, &s, &err);
            INVARIANT(st == BX_OK || st == BX_EINVAL);
            if (st == BX_OK)
                INVARIANT(cJSON_IsString(m) && strlen(s) <= 8 && bx_utf8_valid(s, strlen(s)));
            else
                INVARIANT(strncmp(err.msg, "p.", 2) == 0);
            st = bx_json_get_int(node, "p", m->string, true, -1000, 1000, &n, &err);
            INVARIANT(st == BX_OK || st == BX_EINVAL);
            if (st == BX_OK)
                INVARIANT(cJSON_IsNumber(m) && n >= -1000 && n <= 1000 &&
                          (double)n == m->valuedouble);
            st = bx_json_get_bool(node, "p", m->string, false, &b, &err);
            INVARIANT(st == BX_OK ? cJSON_IsBool(m) : st == BX_EINVAL);
        }
        walk(m);
    }
    if (cJSON_IsObject(node)) {
        bx_status st = bx_json_only_keys(node, "p", allowed, &err);
        INVARIANT(st == BX_OK || (st == BX_EINVAL && strstr(err.msg, "unknown field") != NULL));
        const char *s = NULL;
        st = bx_json_get_string(node, "p", "\x01never", false, 8, &s, &err);
        INVARIANT(st == BX_ENOTFOUND && s == NULL);
    }
}

/* cJSON prints doubles within 1e-15 of DBL_MAX with 15 digits, which round past DBL_MAX: such
 * output no longer parses, so the round trip skips those trees. */
static bool cjson_prints_back(const cJSON *node)
{
    if (cJSON_IsNumber(node) && fabs(node->valuedouble) >= 1.797693134862315e308)
        return false;
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        if (!cjson_prints_back(c))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    cJSON *tree = NULL;
    bx_error err = {0};
    bx_status st = bx_json_parse(text, size, &tree, &err);
    if (st != BX_OK) {
        INVARIANT(st == BX_EINVAL && tree == NULL);
        INVARIANT(strncmp(err.msg, "line ", 5) == 0 || strcmp(err.msg, "empty body") == 0);
        return 0;
    }
    INVARIANT(tree != NULL);
    /* Strict JSON text is valid UTF-8 throughout. */
    INVARIANT(bx_utf8_valid(text, size));
    /* cJSON's own, laxer parser accepts it too and builds the same tree. */
    cJSON *lax = cJSON_ParseWithLength(text, size);
    INVARIANT(lax != NULL);
    INVARIANT(cJSON_Compare(tree, lax, true));
    cJSON_Delete(lax);

    /* What cJSON prints back is strict JSON with the same meaning. */
    if (cjson_prints_back(tree)) {
        char *printed = cJSON_PrintUnformatted(tree);
        INVARIANT(printed != NULL);
        cJSON *again = NULL;
        st = bx_json_parse(printed, strlen(printed), &again, &err);
        if (st != BX_OK)
            fprintf(stderr, "reparse of %s: %s\n", printed, err.msg);
        INVARIANT(st == BX_OK);
        INVARIANT(cJSON_Compare(tree, again, true));
        cJSON_Delete(again);
        cJSON_free(printed);
    }

    walk(tree);
    cJSON_Delete(tree);
    return 0;
}
