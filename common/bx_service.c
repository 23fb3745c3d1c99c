/* bx_service: shared start-up of the service binaries. */
#include "bx_service.h"
#include "bx_clock.h"
#include "bx_log.h"

#include <stdio.h>
#include <string.h>

int bx_service_start_up(const char *name, const char *about, const bx_conf_row *rows, size_t nrows,
                        const bx_common_conf *common, int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fprintf(stderr, "%s: %s\n", name, about);
        bx_conf_usage(rows, nrows);
        return 0;
    }
    bx_error err = {0};
    if (bx_conf_load(rows, nrows, &err) != BX_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        bx_conf_free(rows, nrows);
        return 2;
    }
    bx_log_level level = BX_LOG_INFO;
    if (bx_log_level_parse(common->log_level, &level) != BX_OK) {
        fprintf(stderr, "%s: BX_LOG_LEVEL: expected debug, info, warn or error, got \"%s\"\n", name,
                common->log_level);
        bx_conf_free(rows, nrows);
        return 2;
    }
    bx_log_init(name, level);
    if (bx_clock_init(common->clock, &err) != BX_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        bx_conf_free(rows, nrows);
        return 2;
    }
    return -1;
}

bool bx_service_check_choice(const char *name, const char *variable, const char *value,
                             const char *const *choices)
{
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(value, choices[i]) == 0)
            return true;
    fprintf(stderr, "%s: %s: expected one of", name, variable);
    for (size_t i = 0; choices[i]; i++)
        fprintf(stderr, "%s %s", i ? "," : "", choices[i]);
    fprintf(stderr, ", got \"%s\"\n", value);
    return false;
}
