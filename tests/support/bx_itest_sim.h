/* bx_itest_sim: helpers for the integration tests that drive a simulated county with bx-sim
 * (tests linked with bxsim and support/bx_itest_sim.c). */
#ifndef BX_ITEST_SIM_H
#define BX_ITEST_SIM_H

#include "bx_itest.h"
#include "sim.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>

/* bx-console over HTTPS (a certificate made with openssl in dir), as deploy/local/demo.sh starts
 * it, on the test's database and clock: env (NULL-ended) holds the test's "BX_PG_URL=…" and
 * "BX_CLOCK=file:…" settings, given to the console, and is the environment of the openssl and
 * bxctl runs. Every township officer of the county is invited with bxctl staff invite (the code
 * shown with --print: no bx-notify needed) and activated through the form as a person fills it,
 * with a password made here; BX_SIM_CONSOLE, BX_SIM_CONSOLE_CA and BX_SIM_CONSOLE_ACCOUNTS are set
 * for bx-sim. Returns the console's pid (itest_stop). */
pid_t itest_sim_console_start(const char *dir, const sim_county *c, const char *const *env);

/* Every school of the county given an API key with bxctl key create (env: the test's environment,
 * NULL-ended), the lines "<school_id> <key>" written to <dir>/keys; keys (size bytes) receives
 * that path, for bx-sim run --keys. */
void itest_sim_keys(const char *dir, const sim_county *c, const char *const *env, char *keys,
                    size_t size);

/* The consumer groups of one run's bx-score and bx-escalate, named
 * "bx-score-itest-<tag>-<tv>" and "bx-escalate-itest-<tag>-<tv>", put at the ends of the shared
 * topics they read (bx.attendance.v1; bx.risk.v1 and bx.actions.v1) with bx-sim group-at-end, so
 * the run's services read only what comes after. */
typedef struct itest_sim_groups {
    char score[96], escalate[96];             /* the groups' ids */
    char env_score[120], env_escalate[120];   /* "BX_CONSUMER_GROUP=<id>" for the services */
    char spec_score[160], spec_escalate[160]; /* "<id>:<topics>" for bx-sim run --group */
} itest_sim_groups;
void itest_sim_groups_at_end(const char *tag, const struct timeval *tv, const char *const *env,
                             itest_sim_groups *g);

/* The county bx-sim generates into dir with ids that start with prefix and its options size
 * ("--seed", "42", "--townships", "1", ..., NULL-ended, at most 12), the public holidays imported
 * with bxctl and, when registry is true, the county's registry too. env: as itest_run's. */
void itest_sim_generate(const char *dir, const char *prefix, const char *const *size, bool registry,
                        const char *const *env);

#endif
