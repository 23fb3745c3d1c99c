/* bx_config: settings from BX_... environment variables (and an optional file), as one table of
 * rows with bounds and defaults, and errors that name the variable and the bad value. */
#ifndef BX_CONFIG_H
#define BX_CONFIG_H

#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum bx_conf_type { BX_CONF_STRING, BX_CONF_INT, BX_CONF_BOOL } bx_conf_type;

typedef struct bx_conf_row {
    const char *name; /* environment variable, "BX_KAFKA_BROKERS" */
    bx_conf_type type;
    const char *def; /* default as text; NULL means required */
    long long min, max;
    void *target; /* char ** (caller frees with bx_conf_free), long long *, or bool * */
    const char *help;
} bx_conf_row;

/* Fills every row's target. Precedence: environment, then the file named by BX_CONFIG_FILE
 * (lines NAME=value, # comments), then the default. Errors: "BX_HTTP_MAX_BODY: expected an integer
 * from 1024 to 67108864, got \"abc\"", "/etc/bx.conf:3: unknown setting BX_FOO". */
bx_status bx_conf_load(const bx_conf_row *rows, size_t nrows, bx_error *err) BX_MUSTCHECK;
/* Frees the strings bx_conf_load allocated into the rows' targets. */
void bx_conf_free(const bx_conf_row *rows, size_t nrows);
/* Prints the table (name, default, help) for --help. */
void bx_conf_usage(const bx_conf_row *rows, size_t nrows);

/* Settings every service shares. */
typedef struct bx_common_conf {
    char *kafka_brokers;
    char *pg_url;
    char *redis_url;
    char *log_level;
    char *clock;
    char *metrics_listen;
    char *pseudonym_key;
} bx_common_conf;

/* Rows for bx_common_conf, to put at the start of a service's own table. */
/* clang-format off */
#define BX_COMMON_CONF_ROWS(c) \
    {"BX_KAFKA_BROKERS", BX_CONF_STRING, "127.0.0.1:19092", 0, 0, &(c).kafka_brokers, \
     "Kafka bootstrap servers"}, \
    {"BX_PG_URL", BX_CONF_STRING, "postgresql://bx@127.0.0.1:54329/baoxue", 0, 0, &(c).pg_url, \
     "PostgreSQL connection URL"}, \
    {"BX_REDIS_URL", BX_CONF_STRING, "redis://127.0.0.1:63799", 0, 0, &(c).redis_url, \
     "Redis URL (redis://host:port[/db])"}, \
    {"BX_LOG_LEVEL", BX_CONF_STRING, "info", 0, 0, &(c).log_level, \
     "debug, info, warn or error"}, \
    {"BX_CLOCK", BX_CONF_STRING, "system", 0, 0, &(c).clock, \
     "system, or file:<path> for a driven clock"}, \
    {"BX_METRICS_LISTEN", BX_CONF_STRING, "", 0, 0, &(c).metrics_listen, \
     "host:port for /healthz and /metrics (empty: off)"}, \
    {"BX_PSEUDONYM_KEY", BX_CONF_STRING, "baoxue-local-development-key", 0, 0, \
     &(c).pseudonym_key, "secret for analysts' pseudonyms (set it in production)"}
/* clang-format on */

#endif
