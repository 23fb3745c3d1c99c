/* bx_clock: the one clock every service reads. System time in production; a driven clock in tests
 * and simulations, shared between processes through a small file. */
#ifndef BX_CLOCK_H
#define BX_CLOCK_H

#include "bx_calendar.h"
#include "bx_status.h"

#include <pthread.h>
#include <time.h>

/* Configures the process clock from a spec: "system" (default), or "file:<path>" for a driven clock
 * whose current time is an 8-byte little-endian millisecond count in <path> (created at the
 * current system time when missing), written by `bxctl clock` or a test. Call once at start:
 * it must not run concurrently with the other calls below, which are all thread-safe. The file is
 * memory-mapped and read and written with atomic 64-bit operations, so every process sharing it
 * sees a change at once. NULL or "" means "system". */
bx_status bx_clock_init(const char *spec, bx_error *err) BX_MUSTCHECK;
/* Current time. Never goes backwards within a process for the system clock. */
bx_time_ms bx_clock_now(void);
/* Sets a driven clock (file or in-process), also backwards; BX_EINVAL for the system clock. */
bx_status bx_clock_set(bx_time_ms t) BX_MUSTCHECK;
/* Makes the clock an in-process fixed clock at t, for unit tests. */
void bx_clock_fix(bx_time_ms t);
bool bx_clock_is_driven(void);

/* Milliseconds of CLOCK_MONOTONIC, for intervals and deadlines inside one process (never the
 * driven clock: a test that sets the date must not stall a poll loop). */
long long bx_monotonic_ms(void);
/* Initialises c so that its timed waits count on CLOCK_MONOTONIC, as bx_monotonic_ms does (a
 * wall clock set back would stretch them). Destroy it with pthread_cond_destroy. */
void bx_cond_init_monotonic(pthread_cond_t *c);
/* The CLOCK_MONOTONIC time ms milliseconds from now, as pthread_cond_timedwait takes it for a
 * condition variable of bx_cond_init_monotonic. */
struct timespec bx_monotonic_deadline(long long ms);
/* Writes t as a PostgreSQL timestamptz literal in UTC with milliseconds,
 * "2026-03-02 08:00:00.000+00", so PostgreSQL stores the instant exactly; also before 1970. */
void bx_time_format_pg(bx_time_ms t, char out[40]);

#endif
