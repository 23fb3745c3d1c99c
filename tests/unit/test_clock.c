/* Unit tests for bx_clock: fixed, system and file-driven clocks, the last shared across processes.
 */
#include "bx_clock.h"
#include "bx_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bx_time_ms wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (bx_time_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char tmp_dir[64];
static char clock_path[128];
static char clock_spec[160];

static void make_clock_path(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/bx_clock_test.XXXXXX");
    REQUIRE(mkdtemp(tmp_dir) != NULL);
    snprintf(clock_path, sizeof(clock_path), "%s/clock", tmp_dir);
    snprintf(clock_spec, sizeof(clock_spec), "file:%s", clock_path);
}

static void remove_clock_path(void)
{
    unlink(clock_path);
    rmdir(tmp_dir);
}

/* The file as another program (bxctl) reads it: 8 bytes, little-endian. */
static bx_time_ms read_clock_file(void)
{
    unsigned char b[8];
    int fd = open(clock_path, O_RDONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pread(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b));
    close(fd);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return (bx_time_ms)v;
}

static void write_clock_file(bx_time_ms t)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)t >> (8 * i));
    int fd = open(clock_path, O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b));
    close(fd);
}

BX_TEST(fixed_clock)
{
    static const bx_time_ms rows[] = {
        1772409600000, /* 2026-03-02T08:00:00+08:00 */
        0,
        -1,
        1772409600000 - 3600000, /* backwards is allowed for a driven clock */
        INT64_MAX,
    };
    bx_clock_fix(rows[0]);
    CHECK(bx_clock_is_driven());
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_clock_fix(rows[i]);
        CHECK_INT(bx_clock_now(), rows[i]);
        CHECK_INT(bx_clock_now(), rows[i]); /* a fixed clock stands still */
        CHECK_INT(bx_clock_set(rows[i] + (rows[i] < INT64_MAX)), BX_OK);
        CHECK_INT(bx_clock_now(), rows[i] + (rows[i] < INT64_MAX));
    }
    bx_clock_fix(1772409600000);
    CHECK_INT(bx_time_local_date(bx_clock_now()), bx_date_from_ymd(2026, 3, 2));
    CHECK_INT(bx_time_local_minute(bx_clock_now()), 8 * 60);
}

BX_TEST(system_clock)
{
    bx_error err = {0};
    static const char *const specs[] = {"system", "", NULL};
    for (size_t i = 0; i < COUNT(specs); i++) {
        bx_clock_fix(5);
        CHECK_INT(bx_clock_init(specs[i], &err), BX_OK);
        CHECK(!bx_clock_is_driven());
        CHECK_INT(bx_clock_set(5), BX_EINVAL);
        bx_time_ms before = wall_ms(), now = bx_clock_now(), after = wall_ms();
        CHECK(now >= before - 1 && now <= after + 1);
    }
}

BX_TEST(system_clock_never_goes_back)
{
    bx_error err = {0};
    REQUIRE(bx_clock_init("system", &err) == BX_OK);
    bx_time_ms prev = bx_clock_now();
    for (int i = 0; i < 200000; i++) {
        bx_time_ms now = bx_clock_now();
        if (now < prev) {
            BX_FAIL_AT("clock went back from %lld to %lld", (long long)prev, (long long)now);
            break;
        }
        prev = now;
    }
}

static void *read_many(void *arg)
{
    bx_time_ms prev = bx_clock_now();
    for (int i = 0; i < 50000; i++) {
        bx_time_ms now = bx_clock_now();
        if (now < prev)
            return (void *)1;
        prev = now;
    }
    return NULL;
}

BX_TEST(system_clock_threads)
{
    bx_error err = {0};
    REQUIRE(bx_clock_init("system", &err) == BX_OK);
    pthread_t readers[4];
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&readers[i], NULL, read_many, NULL) == 0);
    for (int i = 0; i < 4; i++) {
        void *went_back = (void *)1;
        REQUIRE(pthread_join(readers[i], &went_back) == 0);
        CHECK(went_back == NULL);
    }
}

BX_TEST(file_clock_created_at_system_time)
{
    bx_error err = {0};
    make_clock_path();
    bx_time_ms before = wall_ms();
    if (bx_clock_init(clock_spec, &err) != BX_OK)
        BX_FAIL_AT("%s", err.msg);
    bx_time_ms after = wall_ms();
    CHECK(bx_clock_is_driven());
    struct stat st;
    REQUIRE(stat(clock_path, &st) == 0);
    CHECK_INT(st.st_size, 8);
    bx_time_ms t = bx_clock_now();
    CHECK(t >= before - 1 && t <= after + 1);
    CHECK_INT(read_clock_file(), t);
    /* A driven clock stands still until set. */
    usleep(5000);
    CHECK_INT(bx_clock_now(), t);
    /* Opening it again keeps its time. */
    CHECK_INT(bx_clock_set(1772409600000), BX_OK);
    CHECK_INT(bx_clock_init(clock_spec, &err), BX_OK);
    CHECK_INT(bx_clock_now(), 1772409600000);
    remove_clock_path();
}

BX_TEST(file_clock_format_is_little_endian)
{
    static const bx_time_ms rows[] = {1772409600000, 1, 0x0102030405060708LL, -1, 1772409600123};
    bx_error err = {0};
    make_clock_path();
    REQUIRE(bx_clock_init(clock_spec, &err) == BX_OK);
    for (size_t i = 0; i < COUNT(rows); i++) {
        CHECK_INT(bx_clock_set(rows[i]), BX_OK);
        CHECK_INT(read_clock_file(), rows[i]);
        /* and as written by another program */
        write_clock_file(rows[i] + 1000);
        CHECK_INT(bx_clock_now(), rows[i] + 1000);
    }
    remove_clock_path();
}

BX_TEST(file_clock_shared_with_a_child_process)
{
    bx_error err = {0};
    make_clock_path();
    REQUIRE(bx_clock_init(clock_spec, &err) == BX_OK);
    REQUIRE(bx_clock_set(1772409600000) == BX_OK);
    static const bx_time_ms steps[] = {
        1772409600000 + 86400000,                                /* the next day */
        1772409600000 + 7 * 86400000LL, 1772409600000 - 3600000, /* back an hour */
    };
    for (size_t i = 0; i < COUNT(steps); i++) {
        pid_t child = fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            /* Its own handle: open and map the file afresh, as another service would. */
            bx_error child_err = {0};
            if (bx_clock_init(clock_spec, &child_err) != BX_OK)
                _exit(2);
            if (bx_clock_now() != (i == 0 ? 1772409600000 : steps[i - 1]))
                _exit(3);
            if (bx_clock_set(steps[i]) != BX_OK)
                _exit(4);
            _exit(0);
        }
        int status = 0;
        REQUIRE(waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 0);
        CHECK_INT(bx_clock_now(), steps[i]);
    }
    remove_clock_path();
}

BX_TEST(clock_init_rejects)
{
    bx_error err = {0};
    make_clock_path();
    static const struct {
        const char *spec;
        bx_status status;
        const char *message;
    } rows[] = {
        {"monotonic", BX_EINVAL,
         "clock: expected \"system\" or \"file:<path>\", got \"monotonic\""},
        {"System", BX_EINVAL, "expected \"system\" or \"file:<path>\""},
        {"file", BX_EINVAL, "expected \"system\" or \"file:<path>\""},
        {"file:", BX_EINVAL, "clock: \"file:\" needs a path"},
        {"file:/nonexistent-dir-bx/clock", BX_EIO,
         "clock file /nonexistent-dir-bx/clock: cannot "
         "open"},
        {"file:/tmp", BX_EIO, "clock file /tmp: cannot open"},
    };
    bx_clock_fix(42);
    for (size_t i = 0; i < COUNT(rows); i++) {
        CHECK_INT(bx_clock_init(rows[i].spec, &err), rows[i].status);
        CHECK_CONTAINS(err.msg, rows[i].message);
        CHECK_INT(bx_clock_now(), 42); /* a failed init changes nothing */
    }
    /* A file of the wrong size is not a clock. */
    int fd = open(clock_path, O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "abc", 3) == 3);
    close(fd);
    CHECK_INT(bx_clock_init(clock_spec, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "expected 8 bytes, found 3");
    CHECK_INT(bx_clock_now(), 42);
    remove_clock_path();
}

BX_TEST(time_format_pg_is_utc_with_milliseconds)
{
    static const struct {
        bx_time_ms t;
        const char *text;
    } rows[] = {
        {0, "1970-01-01 00:00:00.000+00"},
        {1772409600000, "2026-03-02 00:00:00.000+00"},
        {1772409600000 + 8 * 3600000 + 1, "2026-03-02 08:00:00.001+00"},
        {-1, "1969-12-31 23:59:59.999+00"},
        {-1000, "1969-12-31 23:59:59.000+00"},
        {-1001, "1969-12-31 23:59:58.999+00"},
        {253402300799999, "9999-12-31 23:59:59.999+00"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        char text[40];
        bx_time_format_pg(rows[i].t, text);
        CHECK_STR(text, rows[i].text);
    }
}

BX_TEST(monotonic_ms_follows_elapsed_time_not_the_driven_clock)
{
    bx_clock_fix(42);
    long long a = bx_monotonic_ms();
    struct timespec pause = {0, 20 * 1000000L};
    nanosleep(&pause, NULL);
    long long b = bx_monotonic_ms();
    CHECK(b - a >= 19);
    CHECK(b - a < 5000);
    CHECK_INT(bx_clock_now(), 42);
}
