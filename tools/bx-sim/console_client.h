/* console_client: the simulated township officers sign the return report (复学报告书) in bx-console
 * as persons, since a school's key cannot sign for the township: sign in with their own password,
 * open the case's page for its CSRF token and form, post the sign-off, read the 已签署 state. */
#ifndef BX_SIM_CONSOLE_CLIENT_H
#define BX_SIM_CONSOLE_CLIENT_H

#include "simtool.h"

#include <libpq-fe.h>
#include <stdbool.h>

/* Where bx-console is and who may sign, from the environment (read when the first sign-off is
 * due, so a run without one needs none of them):
 *   BX_SIM_CONSOLE           https://127.0.0.1:PORT
 *   BX_SIM_CONSOLE_CA        PEM file of the CA (the self-signed certificate) to trust
 *   BX_SIM_CONSOLE_ACCOUNTS  "staff_id password" lines of the activated officers (kept by
 *                            deploy/local/demo.sh under $RUN, mode 600)
 * No password has a default. */
typedef struct sim_console sim_console;

bx_status sim_console_new(sim_console **out, bx_error *err) BX_MUSTCHECK;
void sim_console_free(sim_console *sc); /* NULL does nothing; wipes the passwords */

/* True when the township officer signs this action in bx-console (a return signed the day it is
 * recorded, or the township's later sign-off); the school's key sends every other record. */
bool sim_console_signs(const sim_action *a);

/* The officer of the student's township signs a's return off in bx-console, at the clock's now:
 * the student's open case (from db), its page, the form with the return date. The outcome is
 * counted in counts as bx-ingest's answers are (accepted, duplicates, rejected, failed); a return
 * without an open case has nothing to sign: *unsigned_return is set, it is counted by
 * sim_console_unsigned, and the caller sends it as the school's own return record. An error when
 * bx-console cannot be used or did not confirm the write. */
bx_status sim_console_signoff(sim_console *sc, const sim_county *c, PGconn *db, const sim_action *a,
                              sim_drive_counts *counts, bool *unsigned_return,
                              bx_error *err) BX_MUSTCHECK;

/* Returns with no open case to sign so far. */
long long sim_console_unsigned(const sim_console *sc);

#endif
