/* Unit tests for bx_policyfile: the format every policy file shares, from tables. */
#include "bx_buf.h"
#include "bx_policyfile.h"
#include "bx_test.h"

#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
/* A literal with its length, so rows can hold NUL bytes. */
#define LIT(s) s, sizeof(s) - 1

/* Collects "<line>:<name>=<value>;" for each setting; fails on the name "fail". */
static bx_status collect(void *arg, const char *file, int line, char *name, char *value,
                         bx_error *err)
{
    if (strcmp(name, "fail") == 0)
        return BX_ERR(err, BX_EINVAL, "%s:%d: fail: refused", file, line);
    return bx_buf_printf(arg, "%d:%s=%s;", line, name, value);
}

BX_TEST(settings_comments_blanks_and_trimming)
{
    static const struct {
        const char *text;
        size_t len;
        const char *settings;
    } rows[] = {
        {LIT(""), ""},
        {LIT("a = 1\n"), "1:a=1;"},
        {LIT("a=1"), "1:a=1;"},
        {LIT("# comment\n\n  \t\n  # indented comment\nb.c = x y \n"), "5:b.c=x y;"},
        {LIT("\ta\t=\t1\t\r\nb = \r\n"), "1:a=1;2:b=;"},
        {LIT("k = a=b # not a comment\n"), "1:k=a=b # not a comment;"},
        {LIT("名 = 开阳县\n"), "1:名=开阳县;"},
        {LIT("a = 1\r\n\r\nb = 2"), "1:a=1;3:b=2;"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_buf got;
        bx_buf_init(&got, 0);
        REQUIRE(bx_buf_puts(&got, "") == BX_OK);
        bx_error err = {0};
        CHECK_INT(
            bx_policyfile_parse(rows[i].text, rows[i].len, "t.policy", NULL, collect, &got, &err),
            BX_OK);
        if (err.msg[0])
            BX_FAIL_AT("row %zu: %s", i, err.msg);
        CHECK_STR(got.data, rows[i].settings);
        bx_buf_free(&got);
    }
}

BX_TEST(errors_name_file_and_line)
{
    static const struct {
        const char *text;
        size_t len;
        const char *error;
    } rows[] = {
        {LIT("a = 1\njust words\n"), "t.policy:2: expected \"name = value\", got \"just words\""},
        {LIT(" = 5\n"), "t.policy:1: expected a setting name before '='"},
        {LIT("a = 1\nb\0 = 2\n"), "t.policy:2: line longer than 16 bytes or holding a NUL byte"},
        {LIT("a = 12345678901234\n"), "t.policy:1: line longer than 16 bytes or holding a NUL"},
        {LIT("\xff\xfe words\n"), "t.policy:1: the line is not valid UTF-8"},
        {LIT("\xff = 1\n"), "t.policy:1: the name is not valid UTF-8"},
        {LIT("a.b = \xe6\x9d\n"), "t.policy:1: a.b: the value is not valid UTF-8"},
        {LIT("a.b = x\ty\n"), "t.policy:1: a.b: a control character in the value"},
        {LIT("a = 1\n\nb = 2\na = 3\n"), "t.policy:4: a set twice (first on line 1)"},
        {LIT("a = 1\nfail = 2\n"), "t.policy:2: fail: refused"},
        {LIT("a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"), "t.policy: larger than 24 bytes"},
    };
    bx_policyfile_opts opts = {.file_max = 24, .line_max = 16};
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_buf got;
        bx_buf_init(&got, 0);
        bx_error err = {0};
        CHECK_INT(
            bx_policyfile_parse(rows[i].text, rows[i].len, "t.policy", &opts, collect, &got, &err),
            BX_EINVAL);
        if (strstr(err.msg, rows[i].error) == NULL)
            BX_FAIL_AT("row %zu: \"%s\", expected \"%s\"", i, err.msg, rows[i].error);
        bx_buf_free(&got);
    }
}

BX_TEST(repeats_allowed_when_asked)
{
    bx_buf got;
    bx_buf_init(&got, 0);
    bx_error err = {0};
    bx_policyfile_opts opts = {.allow_repeats = true};
    CHECK_INT(bx_policyfile_parse(LIT("a = 1\na = 2\n"), "t", &opts, collect, &got, &err), BX_OK);
    CHECK_STR(got.data, "1:a=1;2:a=2;");
    bx_buf_free(&got);
}

BX_TEST(load_reads_the_file_and_names_it)
{
    char path[] = "/tmp/bx-policyfile-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char text[] = "# policy\nx = 1\ny = two words\n";
    REQUIRE(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
    close(fd);
    bx_buf got;
    bx_buf_init(&got, 0);
    bx_error err = {0};
    CHECK_INT(bx_policyfile_load(path, NULL, collect, &got, &err), BX_OK);
    CHECK_STR(got.data, "2:x=1;3:y=two words;");
    bx_policyfile_opts small = {.file_max = 8};
    CHECK_INT(bx_policyfile_load(path, &small, collect, &got, &err), BX_EINVAL);
    char expected[80];
    snprintf(expected, sizeof(expected), "%s: larger than 8 bytes", path);
    CHECK_STR(err.msg, expected);
    unlink(path);
    CHECK_INT(bx_policyfile_load(path, NULL, collect, &got, &err), BX_ENOTFOUND);
    CHECK_CONTAINS(err.msg, ": cannot open: ");
    CHECK_INT(bx_policyfile_load("/tmp", NULL, collect, &got, &err), BX_EIO);
    bx_buf_free(&got);
}

BX_TEST(int_values_digits_only_within_bounds)
{
    static const struct {
        const char *value;
        int digits, min, max;
        bool ok;
        int want;
    } rows[] = {
        {"0", 6, 0, 400, true, 0},
        {"400", 6, 0, 400, true, 400},
        {"401", 6, 0, 400, false, 0},
        {"007", 6, 0, 400, true, 7},
        {"", 6, 0, 400, false, 0},
        {"-1", 6, -5, 400, false, 0},
        {"+1", 6, 0, 400, false, 0},
        {" 1", 6, 0, 400, false, 0},
        {"1 ", 6, 0, 400, false, 0},
        {"1.5", 6, 0, 400, false, 0},
        {"0000001", 6, 0, 400, false, 0},
        {"000000001", 9, 0, 400, true, 1},
        {"999999999", 9, 0, 999999999, true, 999999999},
        {"1000000000", 9, 0, 999999999, false, 0},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        int got = -42;
        bool ok = bx_policyfile_int(rows[i].value, rows[i].digits, rows[i].min, rows[i].max, &got);
        if (ok != rows[i].ok || got != (rows[i].ok ? rows[i].want : -42))
            BX_FAIL_AT("\"%s\": got %d (%s)", rows[i].value, got, ok ? "ok" : "refused");
    }
}
