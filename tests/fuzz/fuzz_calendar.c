/* fuzz_calendar: libFuzzer target for the national holiday list loader
 * (bx_calendar_load_days_csv, common/bx_calendar.c), through a memory file. The calendar has a
 * term of its own; the contract checked:
 * - all or nothing: a refused file leaves every day of the calendar as it was, and the message
 *   names the file (and the line), in valid UTF-8;
 * - a loaded one keeps the calendar consistent: the school days counted between two dates are
 *   the days is_school_day says yes to, and adding n school days lands on a school day that many
 *   school days on. */
#define _GNU_SOURCE
#include "bx_calendar.h"
#include "bx_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SPAN 420 /* days checked from FIRST */

static bx_calendar *new_calendar(void)
{
    bx_calendar *c = bx_calendar_new();
    bx_error err = {0};
    INVARIANT(c != NULL);
    INVARIANT(bx_calendar_add_term(c, "2026-autumn", bx_date_from_ymd(2026, 9, 1),
                                   bx_date_from_ymd(2027, 1, 22), &err) == BX_OK);
    INVARIANT(bx_calendar_add_term(c, "2027-spring", bx_date_from_ymd(2027, 2, 22),
                                   bx_date_from_ymd(2027, 7, 9), &err) == BX_OK);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const bx_date first = bx_date_from_ymd(2026, 8, 20);
    int fd = memfd_create("holidays", MFD_CLOEXEC);
    INVARIANT(fd >= 0);
    INVARIANT(size == 0 || write(fd, data, size) == (ssize_t)size);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    bx_calendar *c = new_calendar();
    static bool before[SPAN];
    for (int i = 0; i < SPAN; i++)
        before[i] = bx_calendar_is_school_day(c, first + i);
    bx_error err = {0};
    bx_status s = bx_calendar_load_days_csv(c, path, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL);
        INVARIANT(strncmp(err.msg, path, strlen(path)) == 0);
        INVARIANT(bx_utf8_valid(err.msg, strlen(err.msg)));
        for (int i = 0; i < SPAN; i++)
            INVARIANT(bx_calendar_is_school_day(c, first + i) == before[i]);
    } else {
        int count = 0;
        for (int i = 0; i < SPAN; i++) {
            bool school = bx_calendar_is_school_day(c, first + i);
            INVARIANT(!school || bx_calendar_term_of(c, first + i) != NULL);
            count += school;
            INVARIANT(bx_calendar_school_days_between(c, first, first + i) == count);
        }
        for (int n = 1; n <= 30; n++) {
            bx_date d = bx_calendar_add_school_days(c, first, n);
            if (d == BX_DATE_NONE)
                continue;
            INVARIANT(bx_calendar_is_school_day(c, d));
            INVARIANT(bx_calendar_school_days_between(c, first + 1, d) == n);
        }
    }
    bx_calendar_free(c);
    close(fd);
    return 0;
}
