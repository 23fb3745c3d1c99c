/* bx_test: the tiny test harness every baoxue test binary uses; each BX_TEST is its own ctest
 * entry. */
#ifndef BX_TEST_H
#define BX_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*bx_test_fn)(void);
void bx_test_register(const char *name, bx_test_fn fn);
/* Count of failed checks in the running case; a case fails when it is non-zero at its end. */
extern int bx_test_failures;

/* BX_TEST(name) defines a test case. tests/CMakeLists.txt scans sources for this macro at the
 * start of a line and registers "<binary>.<name>" with ctest. */
#define BX_TEST(name)                                                                              \
    static void bx_test_##name(void);                                                              \
    __attribute__((constructor)) static void bx_test_reg_##name(void)                              \
    {                                                                                              \
        bx_test_register(#name, bx_test_##name);                                                   \
    }                                                                                              \
    static void bx_test_##name(void)

#define BX_FAIL_AT(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        bx_test_failures++;                                                                        \
    } while (0)

/* Checks record a failure and go on, so one run reports every broken row of a table. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            BX_FAIL_AT("check failed: %s", #cond);                                                 \
    } while (0)

#define CHECK_INT(actual, expected)                                                                \
    do {                                                                                           \
        long long a_ = (long long)(actual), e_ = (long long)(expected);                            \
        if (a_ != e_)                                                                              \
            BX_FAIL_AT("%s is %lld, expected %lld", #actual, a_, e_);                              \
    } while (0)

#define CHECK_STR(actual, expected)                                                                \
    do {                                                                                           \
        const char *a_ = (actual), *e_ = (expected);                                               \
        if (a_ == NULL || e_ == NULL || strcmp(a_, e_) != 0)                                       \
            BX_FAIL_AT("%s is \"%s\", expected \"%s\"", #actual, a_ ? a_ : "(null)",               \
                       e_ ? e_ : "(null)");                                                        \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                           \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (h_ == NULL || strstr(h_, n_) == NULL)                                                  \
            BX_FAIL_AT("%s is \"%s\", expected it to contain \"%s\"", #haystack,                   \
                       h_ ? h_ : "(null)", n_);                                                    \
    } while (0)

/* REQUIRE stops the case at once: for preconditions later checks depend on. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            BX_FAIL_AT("required: %s", #cond);                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
