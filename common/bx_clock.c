/* bx_clock: the process clock: system time kept non-decreasing, a fixed in-process time for unit
 * tests, or a driven time shared between processes through an 8-byte memory-mapped file. */
#include "bx_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The file clock is read and written by several processes through one mapping; a lock-free
 * 64-bit atomic is address-free, so it works across processes. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the file clock needs lock-free 64-bit atomics");
_Static_assert(sizeof(long long) == 8, "the file clock holds 8 bytes");

#define FILE_CLOCK_BYTES 8

enum clock_mode { MODE_SYSTEM = 0, MODE_FIXED, MODE_FILE };

static _Atomic int mode = MODE_SYSTEM;
static _Atomic long long fixed_ms;
static _Atomic long long system_high_ms; /* the highest system time handed out */
/* The mapping of the clock file; replaced only by bx_clock_init, which is not called concurrently
 * with readers. */
static _Atomic(_Atomic long long *) file_ms;

/* The file holds little-endian; this converts either way. */
static long long from_le(long long v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (long long)__builtin_bswap64((unsigned long long)v);
#else
    return v;
#endif
}

static bx_time_ms system_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    /* An NTP step backwards must not make a deadline fire twice or a day end twice. */
    long long high = atomic_load(&system_high_ms);
    while (now > high) {
        if (atomic_compare_exchange_weak(&system_high_ms, &high, now))
            return now;
    }
    return high;
}

static bx_status map_clock_file(const char *path, _Atomic long long **out, bx_error *err)
{
    bx_status s = BX_EIO;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return BX_ERR(err, BX_EIO, "clock file %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s = BX_ERR(err, BX_EIO, "clock file %s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        s = BX_ERR(err, BX_EINVAL, "clock file %s: not a regular file", path);
        goto out;
    }
    if (st.st_size == 0 && ftruncate(fd, FILE_CLOCK_BYTES) != 0) {
        s = BX_ERR(err, BX_EIO, "clock file %s: cannot size: %s", path, strerror(errno));
        goto out;
    }
    if (st.st_size != 0 && st.st_size != FILE_CLOCK_BYTES) {
        s = BX_ERR(err, BX_EINVAL, "clock file %s: expected %d bytes, found %lld", path,
                   FILE_CLOCK_BYTES, (long long)st.st_size);
        goto out;
    }
    void *map = mmap(NULL, FILE_CLOCK_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        s = BX_ERR(err, BX_EIO, "clock file %s: cannot map: %s", path, strerror(errno));
        goto out;
    }
    _Atomic long long *ms = map;
    /* A new file is all zeros; whichever process gets here first starts it at the system time.
     * Others that raced with the creation see zero for as long as this takes, never garbage. */
    long long zero = 0;
    atomic_compare_exchange_strong(ms, &zero, from_le(system_now()));
    *out = ms;
    s = BX_OK;
out:
    close(fd);
    return s;
}

bx_status bx_clock_init(const char *spec, bx_error *err)
{
    if (spec == NULL || spec[0] == '\0' || strcmp(spec, "system") == 0) {
        atomic_store(&mode, MODE_SYSTEM);
        return BX_OK;
    }
    if (strncmp(spec, "file:", 5) != 0)
        return BX_ERR(err, BX_EINVAL,
                      "clock: expected \"system\" or \"file:<path>\", got \"%.64s\"", spec);
    const char *path = spec + 5;
    if (path[0] == '\0')
        return BX_ERR(err, BX_EINVAL, "clock: \"file:\" needs a path");
    _Atomic long long *ms;
    bx_status s = map_clock_file(path, &ms, err);
    if (s != BX_OK)
        return s;
    _Atomic long long *old = atomic_exchange(&file_ms, ms);
    atomic_store(&mode, MODE_FILE);
    if (old != NULL)
        munmap((void *)old, FILE_CLOCK_BYTES);
    return BX_OK;
}

bx_time_ms bx_clock_now(void)
{
    switch (atomic_load(&mode)) {
    case MODE_FIXED:
        return atomic_load(&fixed_ms);
    case MODE_FILE:
        return from_le(atomic_load(atomic_load(&file_ms)));
    default:
        return system_now();
    }
}

bx_status bx_clock_set(bx_time_ms t)
{
    switch (atomic_load(&mode)) {
    case MODE_FIXED:
        atomic_store(&fixed_ms, t);
        return BX_OK;
    case MODE_FILE:
        atomic_store(atomic_load(&file_ms), from_le(t));
        return BX_OK;
    default:
        return BX_EINVAL;
    }
}

void bx_clock_fix(bx_time_ms t)
{
    atomic_store(&fixed_ms, t);
    atomic_store(&mode, MODE_FIXED);
}

bool bx_clock_is_driven(void)
{
    return atomic_load(&mode) != MODE_SYSTEM;
}

long long bx_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bx_cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

struct timespec bx_monotonic_deadline(long long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

void bx_time_format_pg(bx_time_ms t, char out[40])
{
    int64_t secs = t / 1000, ms = t % 1000;
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    time_t tt = (time_t)secs;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, 40, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
}
