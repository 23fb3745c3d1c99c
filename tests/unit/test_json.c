/* test_json: strict parsing (tables of bad and good input), round trips, and the field accessors.
 */
#include "bx_json.h"
#include "bx_test.h"

#include <math.h>
#include <stdint.h>

/* A literal with its length, so rows can hold NUL bytes. */
#define LIT(s) s, sizeof(s) - 1

struct bad_row {
    const char *text;
    size_t len;
    const char *want; /* substring of err.msg */
};

static const struct bad_row bad_rows[] = {
    {LIT(""), "empty body"},
    {LIT(" \n\t\r "), "empty body"},
    {LIT("\xEF\xBB\xBF{}"), "line 1, column 1: byte order mark"},
    {LIT("{\"a\":\"x\xFF\"}"), "line 1, column 8 (a): invalid UTF-8 in string"},
    {LIT("\"\xC0\xAF\""), "line 1, column 2: invalid UTF-8 in string"}, /* overlong '/' */
    {LIT("\"\xC1\xBF\""), "invalid UTF-8 in string"},                   /* overlong 2-byte */
    {LIT("\"\xE0\x80\xAF\""), "invalid UTF-8 in string"},               /* overlong 3-byte */
    {LIT("\"\xF0\x80\x80\xAF\""), "invalid UTF-8 in string"},           /* overlong 4-byte */
    {LIT("\"\xED\xA0\x80\""), "invalid UTF-8 in string"},               /* raw U+D800 */
    {LIT("\"\xED\xBF\xBF\""), "invalid UTF-8 in string"},               /* raw U+DFFF */
    {LIT("\"\xF4\x90\x80\x80\""), "invalid UTF-8 in string"},           /* U+110000 */
    {LIT("\"\xF5\x80\x80\x80\""), "invalid UTF-8 in string"},           /* bad lead byte */
    {LIT("\"\x80\""), "invalid UTF-8 in string"},                       /* lone continuation */
    {LIT("\"\xE4\xB8\""), "invalid UTF-8 in string"},                   /* truncated */
    {LIT("\"\xE4\xB8"), "invalid UTF-8 in string"},                     /* truncated at end */
    {LIT("{\"\xFF\":1}"), "line 1, column 3: invalid UTF-8 in string"}, /* in a key */
    {LIT("[\"a\\u0000b\"]"), "line 1, column 4 ([0]): \\u0000 is not allowed"}, /* truncates */
    {LIT("\"\\ud800\""), "unpaired surrogate \\uD800"},
    {LIT("\"\\udc00\""), "unpaired surrogate \\uDC00"},
    {LIT("\"\\ud800\\u0041\""), "unpaired surrogate \\uD800"},
    {LIT("\"\\ud800\\ud800\""), "unpaired surrogate \\uD800"},
    {LIT("\"\\ud800"), "unpaired surrogate"},
    {LIT("\"\\x41\""), "invalid escape: backslash followed by 'x'"},
    {LIT("\"\\'\""), "invalid escape"},
    {LIT("\"\\u12G4\""), "invalid \\u escape: expected 4 hex digits"},
    {LIT("\"\\u12\""), "invalid \\u escape"},
    {LIT("\"a\tb\""), "control character 0x09 in string"},
    {LIT("\"a\nb\""), "control character 0x0A in string"},
    {LIT("\"a\x7F\x1F\""), "control character 0x1F in string"},
    {LIT("\"a\0b\""), "NUL byte in string"},
    {LIT("{\"records\":[{\"date\":1,\"date\":2}]}"),
     "line 1, column 23 (records[0]): duplicate key \"date\""},
    {LIT("{\n  \"a\": 1,\n  \"a\": 2\n}"), "line 3, column 3: duplicate key \"a\""},
    {LIT("{\"a\":1,\"\\u0061\":2}"), "duplicate key \"a\""},
    {LIT("{\"x\":{\"a\":1,\"b\":{\"a\":1},\"a\":2}}"), "(x): duplicate key \"a\""},
    {LIT("1e400"), "line 1, column 1: number out of range"},
    {LIT("-1e400"), "number out of range"},
    {LIT("{\"records\":[{\"period\":1e999}]}"), "(records[0].period): number out of range"},
    {LIT("[1.8e308]"), "([0]): number out of range"},
    {LIT("NaN"), "NaN and Infinity are not JSON numbers"},
    {LIT("[Infinity]"), "NaN and Infinity are not JSON numbers"},
    {LIT("-Infinity"), "NaN and Infinity are not JSON numbers"},
    {LIT("[1,2,]"), "line 1, column 6: trailing comma before ']'"},
    {LIT("{\"a\":1,}"), "trailing comma before '}'"},
    {LIT("[,1]"), "expected a value, found ','"},
    {LIT("{} x"), "line 1, column 4: unexpected data after the JSON value"},
    {LIT("[1] [2]"), "unexpected data after the JSON value"},
    {LIT("{}\0"), "unexpected data after the JSON value"},
    {LIT("truex"), "unexpected data after the JSON value"},
    {LIT("{a:1}"), "expected a double-quoted key, found 'a'"},
    {LIT("{'a':1}"), "keys need double quotes, not single quotes"},
    {LIT("['a']"), "strings need double quotes, not single quotes"},
    {LIT("{\"a\" 1}"), "expected ':' after the key, found '1'"},
    {LIT("{\"a\":1 \"b\":2}"), "expected ',' or '}', found '\"'"},
    {LIT("{\"a\":1"), "expected ',' or '}', found the end of the input"},
    {LIT("[1 2]"), "expected ',' or ']', found '2'"},
    {LIT("["), "expected a value, found the end of the input"},
    {LIT("\"abc"), "line 1, column 1: unterminated string"},
    {LIT("\"abc\\"), "unterminated string"},
    {LIT("01"), "leading zeros"},
    {LIT("-01"), "leading zeros"},
    {LIT("1."), "expected a digit after '.'"},
    {LIT("1.e5"), "expected a digit after '.'"},
    {LIT(".5"), "expected a value, found '.'"},
    {LIT("+1"), "expected a value, found '+'"},
    {LIT("1e"), "expected a digit in the exponent"},
    {LIT("1e+"), "expected a digit in the exponent"},
    {LIT("-"), "expected a digit, found the end of the input"},
    {LIT("0x10"), "unexpected data after the JSON value"},
    {LIT("tru"), "invalid literal (expected true)"},
    {LIT("nul"), "invalid literal (expected null)"},
    {LIT("True"), "expected a value, found 'T'"},
    {LIT("// c\n{}"), "expected a value, found '/'"},
    {LIT("\x01{}"), "expected a value, found byte 0x01"},
    {LIT("\xC2\xA0{}"), "expected a value, found byte 0xC2"}, /* no-break space */
    {LIT("[\"\xE4\xB8\xAD\xE6\x96\x87\", x]"),
     "line 1, column 8 ([1]): expected a value, found 'x'"},
    {LIT("{\"a b\":{\"c\":\"\xFF\"}}"), "([\"a b\"].c): invalid UTF-8"},
    {LIT("{\"\xE5\xAD\xA6\":[0,{\"d\":1e400}]}"), "(\xE5\xAD\xA6[1].d): number out of range"},
};

BX_TEST(bad_input_table)
{
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        const struct bad_row *r = &bad_rows[i];
        cJSON *tree = (cJSON *)1;
        bx_error err = {0};
        bx_status st = bx_json_parse(r->text, r->len, &tree, &err);
        if (st != BX_EINVAL || tree != NULL || strstr(err.msg, r->want) == NULL)
            BX_FAIL_AT("row %zu: status %s, message \"%s\", expected \"%s\"", i, bx_status_name(st),
                       err.msg, r->want);
    }
}

static void fill_nested(char *buf, int depth, const char *open, const char *inner,
                        const char *close)
{
    buf[0] = '\0';
    for (int i = 0; i < depth; i++)
        strcat(buf, open);
    strcat(buf, inner);
    for (int i = 0; i < depth; i++)
        strcat(buf, close);
}

BX_TEST(depth_limit)
{
    static char text[64 * 8];
    cJSON *tree = NULL;
    bx_error err = {0};

    fill_nested(text, BX_JSON_MAX_DEPTH, "[", "1", "]");
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_OK);
    cJSON_Delete(tree);

    fill_nested(text, BX_JSON_MAX_DEPTH + 1, "[", "1", "]");
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "line 1, column 33 ([0][0][0]");
    CHECK_CONTAINS(err.msg, "nesting deeper than 32 levels");

    fill_nested(text, BX_JSON_MAX_DEPTH, "{\"a\":", "1", "}");
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_OK);
    cJSON_Delete(tree);

    fill_nested(text, BX_JSON_MAX_DEPTH + 1, "{\"k\":", "1", "}");
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "(k.k.k.k");
    CHECK_CONTAINS(err.msg, "nesting deeper than 32 levels");

    /* Far deeper than the limit must fail the same way, without recursing. */
    static char deep[100001];
    memset(deep, '[', sizeof(deep) - 1);
    CHECK_INT(bx_json_parse(deep, sizeof(deep) - 1, &tree, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "nesting deeper than 32 levels");
}

struct good_row {
    const char *text;
    size_t len;
};

static const struct good_row good_rows[] = {
    {LIT("{}")},
    {LIT("[]")},
    {LIT("0")},
    {LIT("-0")},
    {LIT("-0.0e-0")},
    {LIT("1.5E+10")},
    {LIT("\"\"")},
    {LIT("true")},
    {LIT("false")},
    {LIT("null")},
    {LIT(" \r\n\t{ \"a\" : [ 1 , 2 ] } \n")},
    {LIT("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"")},
    {LIT("\"\\ud83d\\ude00 \\uD83D\\uDE00\"")},
    {LIT("\"\\u00e9\\u4e2d\\uffff\"")},
    {LIT("\"\xE4\xB8\xAD\xE6\x96\x87 \xE5\xAD\xA6\xE6\xA0\xA1\"")},
    {LIT("\"\xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEE\x80\x80 \xC2\x80 \x7F\"")},
    {LIT("{\"\xE5\xAD\xA6\xE6\xA0\xA1\":\"\xE4\xB8\x80\"}")},
    {LIT("9007199254740992")},
    {LIT("-9223372036854775808")},
    {LIT("1e308")},
    {LIT("-1.7976931348623157e308")},
    {LIT("5e-324")},
    {LIT("1e-400")}, /* underflows to zero: finite, so accepted */
    {LIT("0.1000000000000000000000000000000000000000000000000000000000000000000000000001")},
    {LIT("[{\"a\":1},{\"a\":2}]")},
    {LIT("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}")},
    {LIT("{\"a\":1,\"A\":2,\"a \":3,\"\":4}")},
    {LIT("[\"a\\u0001\", \"\\u001f\"]")},
};

/* cJSON prints doubles within 1e-15 of DBL_MAX with 15 digits, which round past DBL_MAX: such
 * output no longer parses (strictly or not), so round trips skip those trees. */
static bool cjson_prints_back(const cJSON *node)
{
    if (cJSON_IsNumber(node) && fabs(node->valuedouble) >= 1.797693134862315e308)
        return false;
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        if (!cjson_prints_back(c))
            return false;
    return true;
}

BX_TEST(good_input_table)
{
    for (size_t i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
        const struct good_row *r = &good_rows[i];
        cJSON *tree = NULL;
        bx_error err = {0};
        if (bx_json_parse(r->text, r->len, &tree, &err) != BX_OK || tree == NULL) {
            BX_FAIL_AT("row %zu (%s): %s", i, r->text, err.msg);
            continue;
        }
        if (!cjson_prints_back(tree)) {
            cJSON_Delete(tree);
            continue;
        }
        /* What cJSON prints back must pass the strict parser too, and mean the same. */
        char *printed = cJSON_PrintUnformatted(tree);
        REQUIRE(printed != NULL);
        cJSON *again = NULL;
        if (bx_json_parse(printed, strlen(printed), &again, &err) != BX_OK)
            BX_FAIL_AT("row %zu: reprinted %s fails: %s", i, printed, err.msg);
        else if (!cJSON_Compare(tree, again, true))
            BX_FAIL_AT("row %zu: reprinted %s differs", i, printed);
        cJSON_Delete(again);
        cJSON_free(printed);
        cJSON_Delete(tree);
    }
}

BX_TEST(decoded_values)
{
    cJSON *tree = NULL;
    bx_error err = {0};
    const char *text = "{\"smile\":\"\\ud83d\\ude00\",\"zh\":\"\xE4\xB8\xAD\",\"esc\":\"\\u4e2d\","
                       "\"big\":9007199254740992,\"max\":1e308}";
    REQUIRE(bx_json_parse(text, strlen(text), &tree, &err) == BX_OK);
    const char *s = NULL;
    CHECK_INT(bx_json_get_string(tree, "", "smile", true, 16, &s, &err), BX_OK);
    CHECK_STR(s, "\xF0\x9F\x98\x80");
    CHECK_INT(bx_json_get_string(tree, "", "zh", true, 16, &s, &err), BX_OK);
    CHECK_STR(s, "\xE4\xB8\xAD");
    CHECK_INT(bx_json_get_string(tree, "", "esc", true, 16, &s, &err), BX_OK);
    CHECK_STR(s, "\xE4\xB8\xAD");
    int64_t big = 0;
    CHECK_INT(bx_json_get_int(tree, "", "big", true, 0, INT64_MAX, &big, &err), BX_OK);
    CHECK(big == 9007199254740992LL);
    CHECK(cJSON_GetObjectItemCaseSensitive(tree, "max")->valuedouble == 1e308);
    cJSON_Delete(tree);
}

BX_TEST(length_is_respected)
{
    /* Only len bytes count: the text need not end with a NUL, and what follows is ignored. */
    const char buf[] = "[1,2]garbage";
    cJSON *tree = NULL;
    bx_error err = {0};
    CHECK_INT(bx_json_parse(buf, 5, &tree, &err), BX_OK);
    CHECK_INT(cJSON_GetArraySize(tree), 2);
    cJSON_Delete(tree);
    CHECK_INT(bx_json_parse(buf, 4, &tree, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "expected ',' or ']', found the end of the input");
    CHECK(tree == NULL);
}

/* Builds {"k0":0,"k1":1,...} with n members, then optionally repeats member dup. */
static char *many_keys(int n, int dup)
{
    size_t cap = (size_t)n * 24 + 64;
    char *text = malloc(cap);
    REQUIRE(text != NULL);
    size_t len = 0;
    text[len++] = '{';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s\"k%d\":%d", i ? "," : "", i, i);
    if (dup >= 0)
        len += (size_t)snprintf(text + len, cap - len, ",\"k%d\":0", dup);
    snprintf(text + len, cap - len, "}");
    return text;
}

BX_TEST(many_keys_use_the_hash)
{
    cJSON *tree = NULL;
    bx_error err = {0};
    char *text = many_keys(5000, -1);
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_OK);
    CHECK_INT(cJSON_GetArraySize(tree), 5000);
    cJSON_Delete(tree);
    free(text);

    text = many_keys(5000, 1234);
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "duplicate key \"k1234\"");
    free(text);

    /* Keys of closed objects are forgotten: siblings may reuse them. */
    const char *siblings =
        "[{\"a\":{\"b\":1,\"c\":2}},{\"a\":{\"b\":1,\"c\":2}},{\"b\":0,\"c\":0}]";
    CHECK_INT(bx_json_parse(siblings, strlen(siblings), &tree, &err), BX_OK);
    cJSON_Delete(tree);
}

BX_TEST(long_keys_are_cut_in_messages)
{
    char text[700];
    char key[300];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(text, sizeof(text), "{\"%s\":1,\"%s\":2}", key, key);
    cJSON *tree = NULL;
    bx_error err = {0};
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "duplicate key \"kkkk");
    CHECK_CONTAINS(err.msg, "...\"");
    CHECK(strlen(err.msg) < 200);

    snprintf(text, sizeof(text), "{\"%s\":{\"a\\n\\\"\":1e999}}", key);
    CHECK_INT(bx_json_parse(text, strlen(text), &tree, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "...[\"a\\x0A\\\"\"]): number out of range");
}

struct utf8_row {
    const char *s;
    size_t len;
    bool valid;
};

static const struct utf8_row utf8_rows[] = {
    {LIT(""), true},
    {LIT("plain ascii"), true},
    {LIT("\xC2\x80"), true},
    {LIT("\xDF\xBF"), true},
    {LIT("\xE0\xA0\x80"), true},
    {LIT("\xED\x9F\xBF"), true}, /* U+D7FF, just below the surrogates */
    {LIT("\xEE\x80\x80"), true}, /* U+E000, just above */
    {LIT("\xEF\xBF\xBF"), true},
    {LIT("\xF0\x90\x80\x80"), true},
    {LIT("\xF4\x8F\xBF\xBF"), true}, /* U+10FFFF */
    {LIT("\xE4\xB8\xAD\xE6\x96\x87"), true},
    {LIT("a\0b"), false},
    {LIT("\x80"), false},
    {LIT("\xBF"), false},
    {LIT("\xC0\x80"), false},
    {LIT("\xC1\xBF"), false},
    {LIT("\xC2"), false},
    {LIT("\xC2\x41"), false},
    {LIT("\xE0\x9F\xBF"), false},
    {LIT("\xED\xA0\x80"), false},
    {LIT("\xED\xBF\xBF"), false},
    {LIT("\xE4\xB8"), false},
    {LIT("\xF0\x8F\xBF\xBF"), false},
    {LIT("\xF4\x90\x80\x80"), false},
    {LIT("\xF5\x80\x80\x80"), false},
    {LIT("\xF8\x88\x80\x80\x80"), false},
    {LIT("\xFE"), false},
    {LIT("\xFF"), false},
    {LIT("ok\xE4\xB8\xAD\xC3"), false},
};

BX_TEST(utf8_table)
{
    for (size_t i = 0; i < sizeof(utf8_rows) / sizeof(utf8_rows[0]); i++) {
        if (bx_utf8_valid(utf8_rows[i].s, utf8_rows[i].len) != utf8_rows[i].valid)
            BX_FAIL_AT("row %zu: expected %s", i, utf8_rows[i].valid ? "valid" : "invalid");
    }
    CHECK(bx_utf8_valid(NULL, 0));
}

enum getter { GET_STRING, GET_INT, GET_BOOL };

struct accessor_row {
    enum getter get;
    bx_status status;
    const char *key;
    const char *want; /* message substring, or the value as text on success */
    int64_t min, max; /* GET_INT */
    size_t max_len;   /* GET_STRING */
    bool required;
};

static const char record_text[] =
    "{\"date\":\"2024-09-02\",\"period\":13,\"status\":1,\"note\":\"n\",\"ok\":true,"
    "\"half\":1.5,\"neg\":-7,\"big\":1e19,\"nul\":null,\"zero\":0,\"zh\":"
    "\"\xE4\xB8\xAD\xE6\x96\x87\"}";

static const struct accessor_row accessor_rows[] = {
    {GET_STRING, BX_OK, "date", "2024-09-02", 0, 0, 10, true},
    {GET_STRING, BX_EINVAL, "date", "records[2].date: longer than 9 bytes", 0, 0, 9, true},
    {GET_STRING, BX_OK, "zh", "\xE4\xB8\xAD\xE6\x96\x87", 0, 0, 6, true},
    {GET_STRING, BX_EINVAL, "zh", "records[2].zh: longer than 5 bytes", 0, 0, 5, true},
    {GET_STRING, BX_EINVAL, "status", "records[2].status: expected a string", 0, 0, 10, true},
    {GET_STRING, BX_EINVAL, "nul", "records[2].nul: expected a string", 0, 0, 10, false},
    {GET_STRING, BX_EINVAL, "missing", "records[2].missing: is required", 0, 0, 10, true},
    {GET_STRING, BX_ENOTFOUND, "missing", "records[2].missing", 0, 0, 10, false},
    {GET_STRING, BX_EINVAL, "Date", "records[2].Date: is required", 0, 0, 10, true},
    {GET_INT, BX_EINVAL, "period", "records[2].period: expected an integer from 1 to 12", 1, 12, 0,
     true},
    {GET_INT, BX_OK, "period", "13", 1, 13, 0, true},
    {GET_INT, BX_EINVAL, "half", "records[2].half: expected an integer from 0", 0, 10, 0, true},
    {GET_INT, BX_OK, "neg", "-7", -7, -7, 0, true},
    {GET_INT, BX_EINVAL, "neg", "records[2].neg: expected an integer", 0, 10, 0, true},
    {GET_INT, BX_EINVAL, "big", "records[2].big: expected", INT64_MIN, INT64_MAX, 0, true},
    {GET_INT, BX_OK, "zero", "0", 0, 0, 0, true},
    {GET_INT, BX_EINVAL, "date", "records[2].date: expected an integer", 0, 10, 0, true},
    {GET_INT, BX_EINVAL, "ok", "records[2].ok: expected an integer", 0, 10, 0, true},
    {GET_INT, BX_EINVAL, "missing", "records[2].missing: is required", 0, 10, 0, true},
    {GET_INT, BX_ENOTFOUND, "missing", "records[2].missing", 0, 10, 0, false},
    {GET_BOOL, BX_OK, "ok", "1", 0, 0, 0, true},
    {GET_BOOL, BX_EINVAL, "status", "records[2].status: expected true or false", 0, 0, 0, true},
    {GET_BOOL, BX_EINVAL, "nul", "records[2].nul: expected true or false", 0, 0, 0, true},
    {GET_BOOL, BX_EINVAL, "missing", "records[2].missing: is required", 0, 0, 0, true},
};

BX_TEST(accessor_table)
{
    cJSON *rec = NULL;
    bx_error err = {0};
    REQUIRE(bx_json_parse(LIT(record_text), &rec, &err) == BX_OK);
    for (size_t i = 0; i < sizeof(accessor_rows) / sizeof(accessor_rows[0]); i++) {
        const struct accessor_row *r = &accessor_rows[i];
        char got[64] = "(untouched)";
        const char *s = NULL;
        int64_t n = 0;
        bool b = false;
        bx_status st = BX_EFATAL;
        memset(&err, 0, sizeof(err));
        switch (r->get) {
        case GET_STRING:
            st = bx_json_get_string(rec, "records[2]", r->key, r->required, r->max_len, &s, &err);
            if (st == BX_OK)
                snprintf(got, sizeof(got), "%s", s);
            break;
        case GET_INT:
            st = bx_json_get_int(rec, "records[2]", r->key, r->required, r->min, r->max, &n, &err);
            if (st == BX_OK)
                snprintf(got, sizeof(got), "%lld", (long long)n);
            break;
        case GET_BOOL:
            st = bx_json_get_bool(rec, "records[2]", r->key, r->required, &b, &err);
            if (st == BX_OK)
                snprintf(got, sizeof(got), "%d", b);
            break;
        }
        if (st != r->status)
            BX_FAIL_AT("row %zu (%s): status %s, expected %s (%s)", i, r->key, bx_status_name(st),
                       bx_status_name(r->status), err.msg);
        else if (st == BX_OK && strcmp(got, r->want) != 0)
            BX_FAIL_AT("row %zu (%s): got %s, expected %s", i, r->key, got, r->want);
        else if (st != BX_OK && strstr(err.msg, r->want) == NULL)
            BX_FAIL_AT("row %zu (%s): message \"%s\", expected \"%s\"", i, r->key, err.msg,
                       r->want);
    }
    cJSON_Delete(rec);
}

BX_TEST(accessor_edges)
{
    bx_error err = {0};
    const char *s = "untouched";
    int64_t n = 42;

    /* A missing optional member leaves out alone. */
    cJSON *obj = cJSON_CreateObject();
    CHECK_INT(bx_json_get_string(obj, "r", "x", false, 5, &s, &err), BX_ENOTFOUND);
    CHECK_STR(s, "untouched");
    CHECK_INT(bx_json_get_int(obj, "r", "x", false, 0, 5, &n, &err), BX_ENOTFOUND);
    CHECK_INT(n, 42);

    /* Top-level path: just the key. */
    CHECK_INT(bx_json_get_int(obj, "", "period", true, 1, 12, &n, &err), BX_EINVAL);
    CHECK_STR(err.msg, "period: is required");
    CHECK_INT(bx_json_get_int(obj, NULL, "period", true, 1, 12, &n, &err), BX_EINVAL);
    CHECK_STR(err.msg, "period: is required");

    /* Trees built elsewhere may hold invalid UTF-8. */
    cJSON_AddItemToObject(obj, "bad", cJSON_CreateString("ab\xFF"));
    CHECK_INT(bx_json_get_string(obj, "r", "bad", true, 10, &s, &err), BX_EINVAL);
    CHECK_STR(err.msg, "r.bad: invalid UTF-8");
    cJSON_AddItemToObject(obj, "nan", cJSON_CreateNumber(NAN));
    CHECK_INT(bx_json_get_int(obj, "r", "nan", true, INT64_MIN, INT64_MAX, &n, &err), BX_EINVAL);
    cJSON_AddItemToObject(obj, "min", cJSON_CreateNumber(-9223372036854775808.0));
    CHECK_INT(bx_json_get_int(obj, "r", "min", true, INT64_MIN, INT64_MAX, &n, &err), BX_OK);
    CHECK(n == INT64_MIN);
    cJSON_AddItemToObject(obj, "two63", cJSON_CreateNumber(9223372036854775808.0));
    CHECK_INT(bx_json_get_int(obj, "r", "two63", true, INT64_MIN, INT64_MAX, &n, &err), BX_EINVAL);

    /* Not an object at all. */
    cJSON *arr = cJSON_CreateArray();
    CHECK_INT(bx_json_get_string(arr, "records[0]", "x", true, 5, &s, &err), BX_EINVAL);
    CHECK_STR(err.msg, "records[0]: expected an object");
    CHECK_INT(bx_json_get_bool(NULL, "", "x", true, NULL, &err), BX_EINVAL);
    CHECK_STR(err.msg, "body: expected an object");
    CHECK_INT(bx_json_only_keys(arr, "", (const char *const[]){NULL}, &err), BX_EINVAL);
    cJSON_Delete(arr);
    cJSON_Delete(obj);

    /* err may be NULL. */
    CHECK_INT(bx_json_parse("[", 1, &obj, NULL), BX_EINVAL);
}

BX_TEST(only_keys)
{
    static const char *const allowed[] = {"date", "period", "status", "note", NULL};
    cJSON *rec = NULL;
    bx_error err = {0};
    const char *ok = "{\"date\":\"d\",\"note\":\"n\"}";
    REQUIRE(bx_json_parse(ok, strlen(ok), &rec, &err) == BX_OK);
    CHECK_INT(bx_json_only_keys(rec, "records[2]", allowed, &err), BX_OK);
    cJSON_Delete(rec);

    const char *extra = "{\"date\":\"d\",\"colour\":\"red\"}";
    REQUIRE(bx_json_parse(extra, strlen(extra), &rec, &err) == BX_OK);
    CHECK_INT(bx_json_only_keys(rec, "records[2]", allowed, &err), BX_EINVAL);
    CHECK_STR(err.msg, "records[2]: unknown field \"colour\"");
    CHECK_INT(bx_json_only_keys(rec, "", allowed, &err), BX_EINVAL);
    CHECK_STR(err.msg, "body: unknown field \"colour\"");
    cJSON_Delete(rec);

    const char *odd = "{\"a\\n\\\"b\":1}";
    REQUIRE(bx_json_parse(odd, strlen(odd), &rec, &err) == BX_OK);
    CHECK_INT(bx_json_only_keys(rec, "r", allowed, &err), BX_EINVAL);
    CHECK_STR(err.msg, "r: unknown field \"a\\x0A\\\"b\"");
    cJSON_Delete(rec);
}

/* bx_utf8_repair drops what is not part of a character, such as a character cut by "%.40s". */
BX_TEST(utf8_repair_table)
{
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"", ""},
        {"plain ascii", "plain ascii"},
        {"\xE5\xAD\xA6\xE7\x94\x9F", "\xE5\xAD\xA6\xE7\x94\x9F"}, /* 学生 stays */
        {"\"\xE5\xAD\xA6\xE7\x94\"", "\"\xE5\xAD\xA6\""},         /* 生 cut after 2 bytes */
        {"ab\xE5", "ab"},                                         /* a lead byte at the end */
        {"\x80x\xBFy", "xy"},                                     /* stray continuations */
        {"\xC0\xAF.\xED\xA0\x80.", ".."},                         /* overlong, surrogate */
        {"\xF0\x9F\x98\x80\xF0\x9F\x98", "\xF0\x9F\x98\x80"},     /* 😀 then a cut one */
        {"\xF4\x90\x80\x80z", "z"},                               /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", rows[i].in);
        size_t n = bx_utf8_repair(buf);
        if (strcmp(buf, rows[i].out) != 0 || n != strlen(rows[i].out))
            BX_FAIL_AT("row %zu: got \"%s\" (%zu)", i, buf, n);
        CHECK(bx_utf8_valid(buf, n));
    }
}

BX_TEST(token_valid_lengths_and_characters)
{
    static const struct {
        const char *s;
        size_t max;
        const char *extra;
        bool valid;
    } cases[] = {
        {"S0001", 32, NULL, true}, {"a_b-C9", 6, NULL, true}, {"a_b-C9", 5, NULL, false},
        {"", 32, NULL, false},     {"a.b", 32, NULL, false},  {"a.b:c", 32, ".:", true},
        {"a b", 32, NULL, false},  {"a/b", 32, ".:", false},  {"\xe5\xad\xa6", 32, NULL, false},
        {"x", 1, NULL, true},      {"xy", 1, NULL, false},    {NULL, 32, NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_INT(bx_token_valid(cases[i].s, cases[i].max, cases[i].extra), cases[i].valid);
    /* a field not NUL-terminated is read no further than max + 1 bytes */
    const char field[4] = {'a', 'b', 'c', 'd'};
    CHECK(!bx_token_valid(field, 3, NULL));
}
