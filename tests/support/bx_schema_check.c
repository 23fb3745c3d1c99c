/* bx_schema_check: a small JSON Schema validator for tests, limited to what schemas/topics use. */
#include "bx_schema_check.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deepest schema/instance recursion followed; a cycle of $refs stops here with an error. */
#define MAX_DEPTH    128
#define PATH_MAX_LEN 512
/* Schema and instance files are small; anything larger is not one of ours. */
#define MAX_FILE_BYTES (16L * 1024 * 1024)

typedef struct check_ctx {
    const cJSON *root;
    char *err;
    size_t errlen;
    /* While > 0 (inside if, not, anyOf and oneOf branches), violations are not reported. */
    int quiet;
    int depth;
    char path[PATH_MAX_LEN];
    size_t path_len;
} check_ctx;

__attribute__((format(printf, 2, 3))) static bool fail(check_ctx *ctx, const char *fmt, ...)
{
    if (ctx->quiet > 0 || ctx->errlen == 0)
        return false;
    int n = snprintf(ctx->err, ctx->errlen, "%s: ", ctx->path_len ? ctx->path : "(root)");
    if (n < 0 || (size_t)n >= ctx->errlen)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

/* Appends ".key" (or "key" at the root) to the path; returns the length to restore. */
static size_t path_push_key(check_ctx *ctx, const char *key)
{
    size_t old = ctx->path_len;
    int n = snprintf(ctx->path + old, sizeof(ctx->path) - old, "%s%s", old ? "." : "", key);
    if (n > 0)
        ctx->path_len =
            old + (size_t)n < sizeof(ctx->path) ? old + (size_t)n : sizeof(ctx->path) - 1;
    return old;
}

static size_t path_push_index(check_ctx *ctx, int index)
{
    size_t old = ctx->path_len;
    int n = snprintf(ctx->path + old, sizeof(ctx->path) - old, "[%d]", index);
    if (n > 0)
        ctx->path_len =
            old + (size_t)n < sizeof(ctx->path) ? old + (size_t)n : sizeof(ctx->path) - 1;
    return old;
}

static void path_pop(check_ctx *ctx, size_t old)
{
    ctx->path_len = old;
    ctx->path[old] = '\0';
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsObject(v))
        return "object";
    return "invalid";
}

static bool is_integral(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    /* Within +-2^53 every double is exact, so the cast round-trip decides integrality. */
    return d > -9007199254740992.0 && d < 9007199254740992.0 && (double)(long long)d == d;
}

static bool type_matches(const char *name, const cJSON *v)
{
    if (strcmp(name, "integer") == 0)
        return is_integral(v);
    return strcmp(name, type_name(v)) == 0;
}

static bool is_annotation(const char *key)
{
    static const char *const names[] = {
        "$schema",
        "$id",
        "$defs",
        "$comment",
        "title",
        "description",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$anchor",
        /* then/else without if are inert; with if they are handled there. */
        "then",
        "else",
        NULL,
    };
    if (strncmp(key, "x-", 2) == 0)
        return true;
    for (int i = 0; names[i]; i++)
        if (strcmp(key, names[i]) == 0)
            return true;
    return false;
}

static bool is_supported(const char *key)
{
    static const char *const names[] = {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "minProperties",
        "maxProperties",
        "items",
        "minItems",
        "maxItems",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "format",
        "if",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "$ref",
        NULL,
    };
    for (int i = 0; names[i]; i++)
        if (strcmp(key, names[i]) == 0)
            return true;
    return is_annotation(key);
}

static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Rewrites an ECMA-262 style pattern for POSIX regcomp(REG_EXTENDED). Returns false for escapes
 * that have no translation here. */
static bool translate_pattern(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    bool in_bracket = false;
    for (const char *p = in; *p; p++) {
        const char *piece;
        char one[3] = {0};
        if (*p == '\\') {
            p++;
            if (*p == '\0')
                return false;
            if (*p == 'd')
                piece = in_bracket ? "0-9" : "[0-9]";
            else if (*p == 'w')
                piece = in_bracket ? "A-Za-z0-9_" : "[A-Za-z0-9_]";
            else if (*p == 's')
                piece = in_bracket ? " \t\n\r\f\v" : "[ \t\n\r\f\v]";
            else if (in_bracket && strchr(".*+?()[{}|$/\\", *p) != NULL)
                /* Inside a POSIX bracket a backslash is literal: the character stands alone. */
                one[0] = *p, piece = one;
            else if (!in_bracket && (*p == '/' || *p == '-'))
                one[0] = *p, piece = one;
            else if (!in_bracket && strchr(".*+?()[]{}|^$\\", *p) != NULL)
                one[0] = '\\', one[1] = *p, piece = one;
            else
                return false;
        } else {
            /* Bracket tracking is simple: no "[]...]" and no nested "[:class:]" in our patterns. */
            if (*p == '[' && !in_bracket)
                in_bracket = true;
            else if (*p == ']' && in_bracket)
                in_bracket = false;
            one[0] = *p;
            piece = one;
        }
        size_t len = strlen(piece);
        if (o + len + 1 > outlen)
            return false;
        memcpy(out + o, piece, len);
        o += len;
    }
    out[o] = '\0';
    return !in_bracket;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "YYYY-MM-DD" with a real month and day; returns the characters consumed or 0. */
static int parse_full_date(const char *s)
{
    int y, m, d;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return 0;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return 0;
    return 10;
}

static bool valid_date(const char *s)
{
    return parse_full_date(s) == 10 && s[10] == '\0';
}

/* RFC 3339 date-time: full-date "T" HH:MM:SS[.frac] ("Z" | +HH:MM | -HH:MM). Leap seconds (60)
 * are accepted as RFC 3339 allows them. */
static bool valid_date_time(const char *s)
{
    if (parse_full_date(s) != 10 || (s[10] != 'T' && s[10] != 't'))
        return false;
    const char *p = s + 11;
    int h, mi, sec;
    if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi) || p[5] != ':' ||
        !digits(p + 6, 2, &sec))
        return false;
    if (h > 23 || mi > 59 || sec > 60)
        return false;
    p += 8;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    int oh, om;
    if ((*p != '+' && *p != '-') || !digits(p + 1, 2, &oh) || p[3] != ':' ||
        !digits(p + 4, 2, &om) || p[6] != '\0')
        return false;
    return oh <= 23 && om <= 59;
}

static bool validate(check_ctx *ctx, const cJSON *schema, const cJSON *inst);

/* Resolves "#", "#/$defs/name" and other JSON pointers into the root schema. */
static const cJSON *resolve_ref(const cJSON *root, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const cJSON *node = root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        char token[256];
        size_t t = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '~') {
                if (*p == '0')
                    c = '~';
                else if (*p == '1')
                    c = '/';
                else
                    return NULL;
                p++;
            }
            if (t + 1 >= sizeof(token))
                return NULL;
            token[t++] = c;
        }
        token[t] = '\0';
        if (cJSON_IsArray(node)) {
            char *end;
            errno = 0;
            long index = strtol(token, &end, 10);
            if (*token == '\0' || *end != '\0' || errno != 0 || index < 0 || index > 1000000)
                return NULL;
            node = cJSON_GetArrayItem(node, (int)index);
        } else {
            node = cJSON_GetObjectItemCaseSensitive(node, token);
        }
        if (node == NULL)
            return NULL;
    }
    return *p == '\0' ? node : NULL;
}

/* Runs schema against inst without reporting; for conditions and alternatives. */
static bool probe(check_ctx *ctx, const cJSON *schema, const cJSON *inst)
{
    ctx->quiet++;
    size_t saved = ctx->path_len;
    bool ok = validate(ctx, schema, inst);
    path_pop(ctx, saved);
    ctx->quiet--;
    return ok;
}

static bool check_type(check_ctx *ctx, const cJSON *type, const cJSON *inst)
{
    if (cJSON_IsString(type)) {
        if (type_matches(type->valuestring, inst))
            return true;
        return fail(ctx, "expected %s, got %s", type->valuestring, type_name(inst));
    }
    if (!cJSON_IsArray(type))
        return fail(ctx, "schema has a malformed \"type\"");
    char names[128] = "";
    const cJSON *t;
    cJSON_ArrayForEach(t, type)
    {
        if (!cJSON_IsString(t))
            return fail(ctx, "schema has a malformed \"type\"");
        if (type_matches(t->valuestring, inst))
            return true;
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s", used ? " or " : "", t->valuestring);
    }
    return fail(ctx, "expected %s, got %s", names, type_name(inst));
}

static bool check_string(check_ctx *ctx, const cJSON *schema, const cJSON *inst)
{
    const char *s = inst->valuestring;
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "minLength")) != NULL &&
        (double)utf8_length(s) < k->valuedouble)
        return fail(ctx, "shorter than %g characters", k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "maxLength")) != NULL &&
        (double)utf8_length(s) > k->valuedouble)
        return fail(ctx, "longer than %g characters", k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "pattern")) != NULL) {
        if (!cJSON_IsString(k))
            return fail(ctx, "schema has a malformed \"pattern\"");
        char translated[1024];
        regex_t re;
        if (!translate_pattern(k->valuestring, translated, sizeof(translated)) ||
            regcomp(&re, translated, REG_EXTENDED | REG_NOSUB) != 0)
            return fail(ctx, "schema pattern \"%s\" is not supported", k->valuestring);
        int rc = regexec(&re, s, 0, NULL, 0);
        regfree(&re);
        if (rc != 0)
            return fail(ctx, "\"%s\" does not match pattern \"%s\"", s, k->valuestring);
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "format")) != NULL) {
        if (!cJSON_IsString(k))
            return fail(ctx, "schema has a malformed \"format\"");
        if (strcmp(k->valuestring, "date") == 0) {
            if (!valid_date(s))
                return fail(ctx, "\"%s\" is not a date (YYYY-MM-DD)", s);
        } else if (strcmp(k->valuestring, "date-time") == 0) {
            if (!valid_date_time(s))
                return fail(ctx, "\"%s\" is not an RFC 3339 date-time", s);
        } else {
            return fail(ctx, "schema uses unsupported format \"%s\"", k->valuestring);
        }
    }
    return true;
}

static bool check_number(check_ctx *ctx, const cJSON *schema, const cJSON *inst)
{
    double v = inst->valuedouble;
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "minimum")) != NULL && v < k->valuedouble)
        return fail(ctx, "%g is less than the minimum %g", v, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "maximum")) != NULL && v > k->valuedouble)
        return fail(ctx, "%g is greater than the maximum %g", v, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMinimum")) != NULL &&
        v <= k->valuedouble)
        return fail(ctx, "%g is not greater than %g", v, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMaximum")) != NULL &&
        v >= k->valuedouble)
        return fail(ctx, "%g is not less than %g", v, k->valuedouble);
    return true;
}

static bool check_object(check_ctx *ctx, const cJSON *schema, const cJSON *inst)
{
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(schema, "required");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *additional = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
    const cJSON *k;
    int count = cJSON_GetArraySize(inst);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "minProperties")) != NULL &&
        count < k->valuedouble)
        return fail(ctx, "has fewer than %g members", k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "maxProperties")) != NULL &&
        count > k->valuedouble)
        return fail(ctx, "has more than %g members", k->valuedouble);
    if (required != NULL) {
        const cJSON *name;
        cJSON_ArrayForEach(name, required)
        {
            if (!cJSON_IsString(name))
                return fail(ctx, "schema has a malformed \"required\"");
            if (cJSON_GetObjectItemCaseSensitive(inst, name->valuestring) == NULL) {
                size_t old = path_push_key(ctx, name->valuestring);
                fail(ctx, "is required");
                path_pop(ctx, old);
                return false;
            }
        }
    }
    const cJSON *member;
    cJSON_ArrayForEach(member, inst)
    {
        const cJSON *sub = props ? cJSON_GetObjectItemCaseSensitive(props, member->string) : NULL;
        size_t old = path_push_key(ctx, member->string);
        bool ok = true;
        if (sub != NULL)
            ok = validate(ctx, sub, member);
        else if (cJSON_IsFalse(additional))
            ok = fail(ctx, "is not allowed here");
        else if (additional != NULL)
            ok = validate(ctx, additional, member);
        path_pop(ctx, old);
        if (!ok)
            return false;
    }
    return true;
}

static bool check_array(check_ctx *ctx, const cJSON *schema, const cJSON *inst)
{
    const cJSON *k;
    int count = cJSON_GetArraySize(inst);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "minItems")) != NULL &&
        count < k->valuedouble)
        return fail(ctx, "has fewer than %g items", k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "maxItems")) != NULL &&
        count > k->valuedouble)
        return fail(ctx, "has more than %g items", k->valuedouble);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
    if (items == NULL)
        return true;
    int index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, inst)
    {
        size_t old = path_push_index(ctx, index++);
        bool ok = validate(ctx, items, item);
        path_pop(ctx, old);
        if (!ok)
            return false;
    }
    return true;
}

static bool check_enum(check_ctx *ctx, const cJSON *list, const cJSON *inst)
{
    const cJSON *option;
    cJSON_ArrayForEach(option, list)
    {
        if (cJSON_Compare(option, inst, true))
            return true;
    }
    char *text = cJSON_PrintUnformatted(inst);
    fail(ctx, "%s is not one of the allowed values", text ? text : "value");
    free(text);
    return false;
}

/* Whether the type of schema (followed through $ref) admits inst; a schema without a type does. */
static bool admits_type(check_ctx *ctx, const cJSON *schema, const cJSON *inst, int hops)
{
    if (!cJSON_IsObject(schema) || hops > 16)
        return !cJSON_IsFalse(schema);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
    if (cJSON_IsString(ref)) {
        const cJSON *target = resolve_ref(ctx->root, ref->valuestring);
        if (target != NULL && !admits_type(ctx, target, inst, hops + 1))
            return false;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (type == NULL)
        return true;
    ctx->quiet++;
    bool ok = check_type(ctx, type, inst);
    ctx->quiet--;
    return ok;
}

/* When no alternative matched and exactly one of them admits the instance's type (the usual
 * "a thing or null"), its own error is the useful one: report that, else the generic message. */
static bool fail_alternatives(check_ctx *ctx, const cJSON *list, const cJSON *inst,
                              const char *keyword)
{
    const cJSON *sub, *candidate = NULL;
    int candidates = 0;
    cJSON_ArrayForEach(sub, list)
    {
        if (admits_type(ctx, sub, inst, 0)) {
            candidate = sub;
            candidates++;
        }
    }
    if (candidates == 1 && !validate(ctx, candidate, inst))
        return false;
    return fail(ctx, "matches none of the %s alternatives", keyword);
}

static bool check_combinators(check_ctx *ctx, const cJSON *schema, const cJSON *inst)
{
    const cJSON *k, *sub;
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "allOf")) != NULL) {
        cJSON_ArrayForEach(sub, k)
        {
            if (!validate(ctx, sub, inst))
                return false;
        }
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "anyOf")) != NULL) {
        bool any = false;
        cJSON_ArrayForEach(sub, k)
        {
            if (probe(ctx, sub, inst)) {
                any = true;
                break;
            }
        }
        if (!any)
            return fail_alternatives(ctx, k, inst, "anyOf");
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "oneOf")) != NULL) {
        int matches = 0;
        cJSON_ArrayForEach(sub, k)
        {
            if (probe(ctx, sub, inst))
                matches++;
        }
        if (matches == 0)
            return fail_alternatives(ctx, k, inst, "oneOf");
        if (matches > 1)
            return fail(ctx, "matches %d of the oneOf alternatives, expected exactly one", matches);
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "not")) != NULL && probe(ctx, k, inst)) {
        /* The forbidden schema's description says what is forbidden, when it has one. */
        const char *what = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "description"));
        if (what != NULL)
            return fail(ctx, "is forbidden: %s", what);
        return fail(ctx, "matches a schema it must not match");
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "if")) != NULL) {
        const cJSON *branch =
            cJSON_GetObjectItemCaseSensitive(schema, probe(ctx, k, inst) ? "then" : "else");
        if (branch != NULL && !validate(ctx, branch, inst))
            return false;
    }
    return true;
}

static bool validate(check_ctx *ctx, const cJSON *schema, const cJSON *inst)
{
    if (cJSON_IsTrue(schema))
        return true;
    if (cJSON_IsFalse(schema))
        return fail(ctx, "is not allowed here");
    if (!cJSON_IsObject(schema))
        return fail(ctx, "schema is not an object or a boolean");
    if (ctx->depth >= MAX_DEPTH)
        return fail(ctx, "schema nests deeper than %d (a $ref cycle?)", MAX_DEPTH);

    const cJSON *key;
    cJSON_ArrayForEach(key, schema)
    {
        if (!is_supported(key->string))
            return fail(ctx, "schema uses unsupported keyword \"%s\"", key->string);
    }

    ctx->depth++;
    bool ok = false;
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "$ref")) != NULL) {
        const cJSON *target = cJSON_IsString(k) ? resolve_ref(ctx->root, k->valuestring) : NULL;
        if (target == NULL) {
            fail(ctx, "schema $ref %s does not resolve", cJSON_IsString(k) ? k->valuestring : "");
            goto out;
        }
        if (!validate(ctx, target, inst))
            goto out;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "type")) != NULL && !check_type(ctx, k, inst))
        goto out;
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "const")) != NULL &&
        !cJSON_Compare(k, inst, true)) {
        char *text = cJSON_PrintUnformatted(k);
        fail(ctx, "must be %s", text ? text : "the constant");
        free(text);
        goto out;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "enum")) != NULL && !check_enum(ctx, k, inst))
        goto out;
    if (cJSON_IsString(inst) && !check_string(ctx, schema, inst))
        goto out;
    if (cJSON_IsNumber(inst) && !check_number(ctx, schema, inst))
        goto out;
    if (cJSON_IsObject(inst) && !check_object(ctx, schema, inst))
        goto out;
    if (cJSON_IsArray(inst) && !check_array(ctx, schema, inst))
        goto out;
    if (!check_combinators(ctx, schema, inst))
        goto out;
    ok = true;
out:
    ctx->depth--;
    return ok;
}

bool bx_schema_check(const cJSON *schema, const cJSON *instance, char *err, size_t errlen)
{
    check_ctx ctx = {.root = schema, .err = err, .errlen = errlen};
    if (errlen > 0)
        err[0] = '\0';
    if (schema == NULL || instance == NULL)
        return fail(&ctx, "no %s", schema == NULL ? "schema" : "instance");
    return validate(&ctx, schema, instance);
}

bool bx_schema_check_text(const cJSON *schema, const char *text, size_t len, char *err,
                          size_t errlen)
{
    /* A copy with a NUL lets cJSON reject anything after the value, not just stop before it. */
    char *copy = malloc(len + 1);
    cJSON *instance = NULL;
    if (copy != NULL) {
        memcpy(copy, text, len);
        copy[len] = '\0';
        instance = cJSON_ParseWithLengthOpts(copy, len + 1, NULL, true);
        free(copy);
    }
    if (instance == NULL) {
        if (errlen > 0)
            snprintf(err, errlen, "(root): not valid JSON");
        return false;
    }
    bool ok = bx_schema_check(schema, instance, err, errlen);
    cJSON_Delete(instance);
    return ok;
}

cJSON *bx_schema_load(const char *path)
{
    cJSON *doc = NULL;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bx_schema_load: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0)
        goto out;
    long size = ftell(f);
    if (size < 0 || size > MAX_FILE_BYTES || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "bx_schema_load: %s: unreadable or larger than %ld bytes\n", path,
                MAX_FILE_BYTES);
        goto out;
    }
    text = malloc((size_t)size + 1);
    if (text == NULL || fread(text, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "bx_schema_load: %s: read failed\n", path);
        goto out;
    }
    text[size] = '\0';
    const char *parse_end = NULL;
    /* The length counts the terminating NUL, which cJSON then requires right after the value. */
    doc = cJSON_ParseWithLengthOpts(text, (size_t)size + 1, &parse_end, true);
    if (doc == NULL)
        fprintf(stderr, "bx_schema_load: %s: invalid JSON near byte %ld\n", path,
                parse_end ? (long)(parse_end - text) : -1L);
out:
    free(text);
    fclose(f);
    return doc;
}

cJSON *bx_schema_load_topic(const char *topic)
{
    const char *source_dir = getenv("BX_SOURCE_DIR");
    if (source_dir == NULL || *source_dir == '\0') {
        fprintf(stderr, "bx_schema_load_topic: BX_SOURCE_DIR is not set\n");
        return NULL;
    }
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/schemas/topics/%s.schema.json", source_dir, topic);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        fprintf(stderr, "bx_schema_load_topic: path too long\n");
        return NULL;
    }
    return bx_schema_load(path);
}
