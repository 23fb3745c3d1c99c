/* Schemas as a contract: every topic schema in schemas/topics/ against its stored copy in
 * schemas/topics/compat/ (the baseline consumers were promised). A removed field, a retyped
 * field, a new required field or a narrowed enum, at any depth, fails: such a change needs a new
 * .v2 topic. The checker itself is tested on pairs of small schemas. */
#include "bx_schema_check.h"
#include "bx_test.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- the checker ---- */

typedef struct report {
    char text[8192];
    size_t len;
    int problems;
} report;

static void say(report *r, const char *path, const char *what, const char *detail)
{
    r->problems++;
    if (r->len < sizeof(r->text))
        r->len += (size_t)snprintf(r->text + r->len, sizeof(r->text) - r->len, "  %s: %s%s%s\n",
                                   path[0] ? path : "(root)", what, detail[0] ? " " : "", detail);
}

/* Follows "$ref": "#/$defs/x" (and any "#/a/b" pointer) inside doc. */
static const cJSON *deref(const cJSON *doc, const cJSON *s)
{
    for (int hops = 0; hops < 16 && cJSON_IsObject(s); hops++) {
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
        if (!cJSON_IsString(ref) || strncmp(ref->valuestring, "#/", 2) != 0)
            return s;
        const cJSON *at = doc;
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", ref->valuestring + 2);
        for (char *tok = strtok(buf, "/"); tok && at; tok = strtok(NULL, "/"))
            at = cJSON_GetObjectItemCaseSensitive(at, tok);
        s = at;
    }
    return s;
}

enum {
    T_NULL = 1,
    T_BOOL = 2,
    T_INT = 4,
    T_NUM = 8,
    T_STR = 16,
    T_ARR = 32,
    T_OBJ = 64,
    T_ANY = 127
};

static unsigned type_named(const char *n)
{
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = {{"null", T_NULL},          {"boolean", T_BOOL}, {"integer", T_INT},
                 {"number", T_NUM | T_INT}, {"string", T_STR},   {"array", T_ARR},
                 {"object", T_OBJ}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(n, names[i].name) == 0)
            return names[i].bits;
    return 0;
}

static unsigned type_of_value(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return T_NULL;
    if (cJSON_IsBool(v))
        return T_BOOL;
    if (cJSON_IsNumber(v))
        return v->valuedouble == (double)(long long)v->valuedouble ? T_INT : T_NUM;
    if (cJSON_IsString(v))
        return T_STR;
    return cJSON_IsArray(v) ? T_ARR : T_OBJ;
}

/* The JSON types a schema accepts (an over-approximation: what "type", "const", "enum" and the
 * alternatives of anyOf/oneOf allow). */
static unsigned types_of(const cJSON *doc, const cJSON *s)
{
    s = deref(doc, s);
    if (s == NULL || cJSON_IsTrue(s))
        return T_ANY;
    if (cJSON_IsFalse(s))
        return 0;
    unsigned bits = T_ANY;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(t))
        bits = type_named(t->valuestring);
    else if (cJSON_IsArray(t)) {
        bits = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, t) if (cJSON_IsString(e)) bits |= type_named(e->valuestring);
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (c)
        bits &= type_of_value(c) | (type_of_value(c) == T_INT ? T_NUM : 0);
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    if (cJSON_IsArray(en)) {
        unsigned e_bits = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, en) e_bits |= type_of_value(e);
        bits &= e_bits | (e_bits & T_INT ? T_NUM : 0);
    }
    static const char *const alts[] = {"anyOf", "oneOf"};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, alts[k]);
        if (!cJSON_IsArray(a))
            continue;
        unsigned u = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, a) u |= types_of(doc, e);
        bits &= u;
    }
    return bits;
}

/* Appends to out every value a schema's enum or const (and its alternatives) allows; false when
 * the schema has no such list (any value of its types). */
static bool values_of(const cJSON *doc, const cJSON *s, cJSON *out)
{
    s = deref(doc, s);
    if (!cJSON_IsObject(s))
        return false;
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (cJSON_IsArray(en)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, en) cJSON_AddItemToArray(out, cJSON_Duplicate(e, true));
        return true;
    }
    if (c) {
        cJSON_AddItemToArray(out, cJSON_Duplicate(c, true));
        return true;
    }
    static const char *const alts[] = {"anyOf", "oneOf"};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, alts[k]);
        if (!cJSON_IsArray(a))
            continue;
        const cJSON *e;
        cJSON_ArrayForEach(e, a)
        {
            const cJSON *alt = deref(doc, e);
            /* an alternative of one type and no list ("type": "null") is its one value, or any */
            if (!values_of(doc, alt, out)) {
                unsigned t = types_of(doc, alt);
                if (t != T_NULL)
                    return false;
                cJSON_AddItemToArray(out, cJSON_CreateNull());
            }
        }
        return true;
    }
    return false;
}

static bool contains_value(const cJSON *list, const cJSON *v)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, list) if (cJSON_Compare(e, v, true)) return true;
    return false;
}

static void compare(const cJSON *bdoc, const cJSON *b, const cJSON *cdoc, const cJSON *c,
                    const char *path, report *r, int depth);

/* Object members of b (the baseline) against c. */
static void compare_members(const cJSON *bdoc, const cJSON *b, const cJSON *cdoc, const cJSON *c,
                            const char *path, report *r, int depth)
{
    const cJSON *bp = cJSON_GetObjectItemCaseSensitive(b, "properties");
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(c, "properties");
    const cJSON *cadd = cJSON_GetObjectItemCaseSensitive(c, "additionalProperties");
    const cJSON *m;
    cJSON_ArrayForEach(m, bp)
    {
        char sub[512];
        snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", m->string);
        const cJSON *cm = cJSON_GetObjectItemCaseSensitive(cp, m->string);
        if (cm == NULL) {
            if (cJSON_IsFalse(cadd) || cadd == NULL)
                say(r, sub, "removed", "");
            continue;
        }
        compare(bdoc, m, cdoc, cm, sub, r, depth + 1);
    }
    const cJSON *breq = cJSON_GetObjectItemCaseSensitive(b, "required");
    const cJSON *creq = cJSON_GetObjectItemCaseSensitive(c, "required");
    const cJSON *e;
    cJSON_ArrayForEach(e, creq)
    {
        if (!contains_value(breq, e)) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "",
                     cJSON_IsString(e) ? e->valuestring : "?");
            say(r, sub, "newly required", "");
        }
    }
}

static void compare(const cJSON *bdoc, const cJSON *b, const cJSON *cdoc, const cJSON *c,
                    const char *path, report *r, int depth)
{
    if (depth > 32)
        return;
    b = deref(bdoc, b);
    c = deref(cdoc, c);
    if (b == NULL || c == NULL)
        return;
    unsigned bt = types_of(bdoc, b), ct = types_of(cdoc, c);
    if ((bt & ~ct) != 0) {
        char detail[64];
        snprintf(detail, sizeof(detail), "(types %#x, were %#x)", ct, bt);
        say(r, path, "retyped", detail);
    }
    cJSON *bv = cJSON_CreateArray(), *cv = cJSON_CreateArray();
    REQUIRE(bv && cv);
    if (values_of(cdoc, c, cv)) {
        if (!values_of(bdoc, b, bv)) {
            say(r, path, "narrowed to an enum", "");
        } else {
            const cJSON *e;
            cJSON_ArrayForEach(e, bv)
            {
                if (!contains_value(cv, e)) {
                    char *text = cJSON_PrintUnformatted(e);
                    say(r, path, "enum no longer allows", text ? text : "?");
                    free(text);
                }
            }
        }
    }
    cJSON_Delete(bv);
    cJSON_Delete(cv);
    if (cJSON_IsObject(b) && cJSON_IsObject(c)) {
        compare_members(bdoc, b, cdoc, c, path, r, depth);
        const cJSON *bi = cJSON_GetObjectItemCaseSensitive(b, "items");
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(c, "items");
        if (bi && ci) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s[]", path);
            compare(bdoc, bi, cdoc, ci, sub, r, depth + 1);
        }
        /* the alternatives of anyOf: each object alternative of b against c's of the same type */
        const cJSON *ba = cJSON_GetObjectItemCaseSensitive(b, "anyOf");
        const cJSON *ca = cJSON_GetObjectItemCaseSensitive(c, "anyOf");
        const cJSON *x, *y;
        cJSON_ArrayForEach(x, ba)
        {
            cJSON_ArrayForEach(y, ca) if (types_of(bdoc, x) == T_OBJ && types_of(cdoc, y) == T_OBJ)
                compare(bdoc, x, cdoc, y, path, r, depth + 1);
        }
    }
}

/* Compares schema documents; r gets one line per breaking change. */
static void compat(const cJSON *baseline, const cJSON *current, report *r)
{
    compare(baseline, baseline, current, current, "", r, 0);
}

/* ---- the checker on small pairs ---- */

static int problems_of(const char *before, const char *after, report *r)
{
    cJSON *b = cJSON_Parse(before), *a = cJSON_Parse(after);
    REQUIRE(b && a);
    memset(r, 0, sizeof(*r));
    compat(b, a, r);
    cJSON_Delete(b);
    cJSON_Delete(a);
    return r->problems;
}

#define OBJ(props, req)                                                                            \
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[" req                       \
    "],\"properties\":{" props "}}"

BX_TEST(compat_checker_finds_each_kind_of_break)
{
    static const struct {
        const char *before, *after;
        int problems;
        const char *says;
    } table[] = {
        /* compatible: a new optional field, a wider type, a new enum value, a description */
        {OBJ("\"a\":{\"type\":\"string\"}", "\"a\""),
         OBJ("\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"}", "\"a\""), 0, ""},
        {OBJ("\"a\":{\"type\":\"integer\"}", "\"a\""),
         OBJ("\"a\":{\"type\":[\"integer\",\"null\"]}", "\"a\""), 0, ""},
        {OBJ("\"a\":{\"enum\":[\"x\",\"y\"]}", ""), OBJ("\"a\":{\"enum\":[\"x\",\"y\",\"z\"]}", ""),
         0, ""},
        {OBJ("\"a\":{\"type\":\"integer\"}", ""),
         OBJ("\"a\":{\"type\":\"integer\",\"description\":\"d\"}", ""), 0, ""},
        /* breaking */
        {OBJ("\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"}", "\"a\""),
         OBJ("\"a\":{\"type\":\"string\"}", "\"a\""), 1, "b: removed"},
        {OBJ("\"a\":{\"type\":\"string\"}", ""), OBJ("\"a\":{\"type\":\"integer\"}", ""), 1,
         "a: retyped"},
        {OBJ("\"a\":{\"type\":[\"integer\",\"null\"]}", ""),
         OBJ("\"a\":{\"type\":\"integer\"}", ""), 1, "a: retyped"},
        {OBJ("\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"}", "\"a\""),
         OBJ("\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"}", "\"a\",\"b\""), 1,
         "b: newly required"},
        {OBJ("\"a\":{\"enum\":[\"x\",\"y\",null]}", ""), OBJ("\"a\":{\"enum\":[\"x\",null]}", ""),
         1, "a: enum no longer allows \"y\""},
        {OBJ("\"a\":{\"type\":\"string\"}", ""), OBJ("\"a\":{\"enum\":[\"x\"]}", ""), 1,
         "a: narrowed to an enum"},
        /* at depth, through $ref and anyOf */
        {"{\"type\":\"object\",\"properties\":{\"d\":{\"$ref\":\"#/$defs/d\"}},\"$defs\":{\"d\":"
         "{\"anyOf\":[" OBJ("\"k\":{\"enum\":[\"p\",\"q\"]}", "") ",{\"type\":\"null\"}]}}}",
         "{\"type\":\"object\",\"properties\":{\"d\":{\"$ref\":\"#/$defs/d\"}},\"$defs\":{\"d\":"
         "{\"anyOf\":[" OBJ("\"k\":{\"enum\":[\"p\"]}", "") ",{\"type\":\"null\"}]}}}",
         1, "d.k: enum no longer allows \"q\""},
        {"{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"items\":" OBJ(
             "\"v\":{\"type\":\"integer\"}", "") "}}}",
         "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"items\":" OBJ(
             "\"v\":{\"type\":\"string\"}", "") "}}}",
         1, "l[].v: retyped"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        report r;
        int n = problems_of(table[i].before, table[i].after, &r);
        if (n != table[i].problems)
            BX_FAIL_AT("case %zu: %d problems, expected %d:\n%s", i, n, table[i].problems, r.text);
        if (table[i].says[0])
            CHECK_CONTAINS(r.text, table[i].says);
    }
}

/* ---- every topic against its baseline ---- */

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.schema.json files of a folder, sorted; caller frees. */
static int schema_files(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 13 || strcmp(e->d_name + len - 12, ".schema.json") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = realloc(names, (size_t)cap * sizeof(*names));
            REQUIRE(names != NULL);
        }
        names[n] = strdup(e->d_name);
        REQUIRE(names[n++] != NULL);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(*names), compare_names);
    *out = names;
    return n;
}

BX_TEST(compat_every_topic_schema_keeps_its_baseline)
{
    const char *src = getenv("BX_SOURCE_DIR");
    REQUIRE(src != NULL);
    char dir[2048], path[4096];
    snprintf(dir, sizeof(dir), "%s/schemas/topics", src);
    char **names = NULL;
    int n = schema_files(dir, &names);
    CHECK(n >= 10);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        cJSON *current = bx_schema_load(path);
        snprintf(path, sizeof(path), "%s/compat/%s", dir, names[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            BX_FAIL_AT("%s has no baseline: a new topic's schema gets its copy in "
                       "schemas/topics/compat/ (cp schemas/topics/%s schemas/topics/compat/)",
                       names[i], names[i]);
            cJSON_Delete(current);
            free(names[i]);
            continue;
        }
        fclose(f);
        cJSON *baseline = bx_schema_load(path);
        REQUIRE(current != NULL && baseline != NULL);
        report r;
        memset(&r, 0, sizeof(r));
        compat(baseline, current, &r);
        if (r.problems)
            BX_FAIL_AT("%s breaks its consumers (a change like this needs a new .v2 topic):\n%s",
                       names[i], r.text);
        cJSON_Delete(current);
        cJSON_Delete(baseline);
        free(names[i]);
    }
    free(names);
}

BX_TEST(compat_every_baseline_has_its_topic)
{
    /* A baseline whose schema is gone is a topic removed under its consumers. */
    const char *src = getenv("BX_SOURCE_DIR");
    REQUIRE(src != NULL);
    char dir[2048], path[4096];
    snprintf(dir, sizeof(dir), "%s/schemas/topics/compat", src);
    char **names = NULL;
    int n = schema_files(dir, &names);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/schemas/topics/%s", src, names[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            BX_FAIL_AT("%s: the topic's schema is gone, but consumers were promised it", names[i]);
        else
            fclose(f);
        free(names[i]);
    }
    free(names);
}
