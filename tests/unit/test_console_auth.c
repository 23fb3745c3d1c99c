/* bx-console auth and request parsing: tokens, CSRF comparison, passwords, lockout delays,
 * forms and routes. */
#include "auth.h"
#include "bx_test.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

BX_TEST(auth_tokens)
{
    REQUIRE(console_auth_init(NULL) == BX_OK);
    char a[CONSOLE_TOKEN_LEN + 1], b[CONSOLE_TOKEN_LEN + 1];
    console_token_new(a);
    console_token_new(b);
    CHECK_INT(strlen(a), 43);
    CHECK(console_token_valid(a));
    CHECK(strcmp(a, b) != 0);
    CHECK(console_token_equal(a, a));
    CHECK(!console_token_equal(a, b));
    CHECK(!console_token_equal(a, NULL));
    CHECK(!console_token_equal("", ""));
    CHECK(!console_token_equal(a, "short"));
    CHECK(!console_token_valid("short"));
    CHECK(!console_token_valid(NULL));
    char bad[CONSOLE_TOKEN_LEN + 1];
    memcpy(bad, a, sizeof(bad));
    bad[5] = '=';
    CHECK(!console_token_valid(bad));
    unsigned char h1[CONSOLE_HASH_LEN], h2[CONSOLE_HASH_LEN];
    console_token_hash(a, h1);
    console_token_hash(b, h2);
    CHECK(memcmp(h1, h2, sizeof(h1)) != 0);
    /* SHA-256("abc") */
    static const unsigned char abc[] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea};
    console_token_hash("abc", h1);
    CHECK(memcmp(h1, abc, sizeof(abc)) == 0);
}

BX_TEST(auth_codes)
{
    REQUIRE(console_auth_init(NULL) == BX_OK);
    char code[CONSOLE_CODE_DIGITS + 1];
    int seen[10] = {0};
    for (int n = 0; n < 50; n++) {
        console_code_new(code);
        CHECK_INT(strlen(code), 8);
        for (int i = 0; i < 8; i++) {
            CHECK(code[i] >= '0' && code[i] <= '9');
            seen[code[i] - '0']++;
        }
    }
    for (int d = 0; d < 10; d++)
        CHECK(seen[d] > 0);
    /* the same hash bxctl stores: SHA-256("T1:12345678") */
    unsigned char h[CONSOLE_HASH_LEN], again[CONSOLE_HASH_LEN];
    console_code_hash("T1", "12345678", h);
    console_token_hash("T1:12345678", again);
    CHECK(memcmp(h, again, sizeof(h)) == 0);
}

BX_TEST(auth_passwords)
{
    REQUIRE(console_auth_init(NULL) == BX_OK);
    char hash[CONSOLE_PWHASH_LEN];
    REQUIRE(console_password_hash("correct horse battery", hash, NULL) == BX_OK);
    CHECK(strncmp(hash, "$argon2id$", 10) == 0);
    CHECK(console_password_verify(hash, "correct horse battery"));
    CHECK(!console_password_verify(hash, "correct horse batterY"));
    CHECK(!console_password_verify(NULL, "x"));
    CHECK(!console_password_verify("plain", "plain"));
    CHECK(console_password_refusal("short", "T1", NULL) != NULL);
    CHECK(console_password_refusal("T1001031XY", "t1001031xy", NULL) != NULL);
    CHECK(console_password_refusal("aaaaaaaaaaaa", "T1", NULL) != NULL);
    CHECK(console_password_refusal("my13812345678", "T1", "13812345678") != NULL);
    CHECK(console_password_refusal("保学密码很长很长很长", "T1", NULL) == NULL);
    CHECK(console_password_refusal("a good long one", "T1", "13812345678") == NULL);
    char longer[200];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[0] = 'y';
    longer[sizeof(longer) - 1] = '\0';
    CHECK(console_password_refusal(longer, "T1", NULL) != NULL);
}

BX_TEST(auth_lockout_delays)
{
    console_lockout l = {5, 30, 3600, 3600};
    static const struct {
        long long failures, delay;
    } rows[] = {{0, 0},   {1, 0},   {4, 0},     {5, 30},     {6, 60},        {7, 120},
                {8, 240}, {9, 480}, {12, 3600}, {100, 3600}, {1000000, 3600}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (console_lockout_delay_s(&l, rows[i].failures) != rows[i].delay)
            BX_FAIL_AT("after %lld failures: %lld s, expected %lld", rows[i].failures,
                       console_lockout_delay_s(&l, rows[i].failures), rows[i].delay);
}

BX_TEST(form_parse)
{
    console_field f[8];
    size_t n = 0;
    char *block = NULL;
    const char *body = "csrf=abc&login=T1&password=a+b%26c%3D&empty=&flag&name=%E5%BC%A0";
    REQUIRE(console_form_parse(body, strlen(body), f, 8, &n, &block, NULL) == BX_OK);
    CHECK_INT(n, 6);
    CHECK_STR(f[2].value, "a b&c=");
    CHECK_STR(f[3].name, "empty");
    CHECK_STR(f[3].value, "");
    CHECK_STR(f[4].name, "flag");
    CHECK_STR(f[5].value, "张");
    free(block);
    const char *bad[] = {
        "a=%zz", "a=%4", "a=%00", "a=%C3%28", "=x", "a=%01", "a=b&a=c&a=d&a=e&a=f&a=g&a=h&a=i&a=j"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bx_error err = {0};
        if (console_form_parse(bad[i], strlen(bad[i]), f, 8, &n, &block, &err) != BX_EINVAL)
            BX_FAIL_AT("\"%s\" was accepted", bad[i]);
        CHECK(block == NULL);
    }
    char big[CONSOLE_MAX_FIELD_VALUE + 10];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = 'a';
    big[1] = '=';
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(console_form_parse(big, strlen(big), f, 8, &n, &block, NULL), BX_EINVAL);
}

BX_TEST(route_match)
{
    const char *params[CONSOLE_MAX_PARAMS];
    size_t n = 0;
    char storage[256];
    CHECK(console_route_match("/", "/", params, &n, storage, sizeof(storage)));
    CHECK(console_route_match("/students/:id", "/students/S1001", params, &n, storage,
                              sizeof(storage)));
    CHECK_INT(n, 1);
    CHECK_STR(params[0], "S1001");
    CHECK(console_route_match("/rollcall/:class/:date", "/rollcall/C1/2026-11-27", params, &n,
                              storage, sizeof(storage)));
    CHECK_INT(n, 2);
    CHECK_STR(params[1], "2026-11-27");
    CHECK(
        !console_route_match("/students/:id", "/students/", params, &n, storage, sizeof(storage)));
    CHECK(!console_route_match("/students/:id", "/students/a/b", params, &n, storage,
                               sizeof(storage)));
    CHECK(!console_route_match("/students/:id", "/students/..", params, &n, storage,
                               sizeof(storage)));
    CHECK(!console_route_match("/students/:id", "/students/<x>", params, &n, storage,
                               sizeof(storage)));
    CHECK(!console_route_match("/login", "/login/", params, &n, storage, sizeof(storage)));
    CHECK(!console_route_match("/login", "/logout", params, &n, storage, sizeof(storage)));
}

BX_TEST(text_checks)
{
    CHECK(console_text_ok("张三\tok\r\n", strlen("张三\tok\r\n")));
    CHECK(!console_text_ok("a\x01", 2));
    CHECK(!console_text_ok("a\x7f", 2));
    CHECK(!console_text_ok("\xc3\x28", 2));
}
