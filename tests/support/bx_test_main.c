/* bx_test_main: runs one named case (as ctest does) or every case of a test binary. */
#include "bx_test.h"

#define MAX_CASES 512

struct test_case {
    const char *name;
    bx_test_fn fn;
};

static struct test_case cases[MAX_CASES];
static int case_count;
int bx_test_failures;

void bx_test_register(const char *name, bx_test_fn fn)
{
    if (case_count == MAX_CASES) {
        fprintf(stderr, "too many test cases (max %d)\n", MAX_CASES);
        abort();
    }
    cases[case_count].name = name;
    cases[case_count].fn = fn;
    case_count++;
}

static int run_case(const struct test_case *tc)
{
    bx_test_failures = 0;
    tc->fn();
    printf("%s %s\n", bx_test_failures ? "FAIL" : "ok  ", tc->name);
    fflush(stdout);
    return bx_test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < case_count; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    int failed = 0, ran = 0;
    for (int i = 0; i < case_count; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        failed += run_case(&cases[i]);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test case named %s\n", argc > 1 ? argv[1] : "(any)");
        return 2;
    }
    return failed ? 1 : 0;
}
