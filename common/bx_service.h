/* bx_service: the start-up every service main shares: --help, settings, log level, the clock. */
#ifndef BX_SERVICE_H
#define BX_SERVICE_H

#include "bx_config.h"

/* Handles --help (prints `about` and the settings table), loads the settings, sets the log level
 * and the service name, and configures the clock from common->clock. Returns -1 when the service
 * should go on, else the exit code main should return (0 after --help, 2 after a bad setting,
 * which is printed naming the variable); in that case the settings are already freed. */
int bx_service_start_up(const char *name, const char *about, const bx_conf_row *rows, size_t nrows,
                        const bx_common_conf *common, int argc, char **argv);

/* Checks a setting whose value must be one of choices (NULL-ended); prints an error naming the
 * variable and returns false otherwise. */
bool bx_service_check_choice(const char *name, const char *variable, const char *value,
                             const char *const *choices);

#endif
