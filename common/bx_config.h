/* bx_config: settings from BX_... environment variables (and an optional file), as one table of
 * rows with bounds and defaults, and errors that name the variable and the bad value. */
#ifndef BX_CONFIG_H
#define BX_CONFIG_H

#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum bx_conf_type {
    BX_CONF_STRING, /* target: char ** or const char ** (caller frees with bx_conf_free) */
    BX_CONF_INT,    /* target: an 8-byte integer: long long *, int64_t * or long * */
    BX_CONF_BOOL,   /* target: bool * */
    BX_CONF_INT32   /* target: int * (min and max within int) */
} bx_conf_type;

/* One setting. A service's rows point straight at the fields of the struct it reads them from
 * (target = &settings.field, a static struct so the table can be a static const one), written
 * with designated initializers, so nothing is copied by hand after loading. */
typedef struct bx_conf_row {
    const char *name; /* environment variable, "BX_KAFKA_BROKERS" */
    bx_conf_type type;
    const char *def; /* default as text; NULL means required */
    long long min, max;
    void *target; /* the field, of the type its bx_conf_type says */
    const char *help;
} bx_conf_row;

/* Fills every row's target. Precedence: environment (NAME, or NAME_FILE naming a file whose first
 * line is the value, for secrets mounted as files, unless NAME_FILE is a row of its own, as
 * BX_NOTIFY_PROVIDER_FILE is), then the file named by BX_CONFIG_FILE
 * (lines NAME=value, # comments), then the default; a row without a default is required, and
 * empty counts as unset for it ("BX_PSEUDONYM_KEY: is required (...)"). Errors: "BX_HTTP_MAX_BODY:
 * expected an integer from 1024 to 67108864, got \"abc\"", "/etc/bx.conf:3: unknown setting
 * BX_FOO". */
bx_status bx_conf_load(const bx_conf_row *rows, size_t nrows, bx_error *err) BX_MUSTCHECK;
/* Frees the strings bx_conf_load allocated into the rows' targets. */
void bx_conf_free(const bx_conf_row *rows, size_t nrows);
/* BX_OK when value is one of choices (NULL-ended), else BX_EINVAL with
 * "BX_CONSUMER_OFFSET_RESET: expected one of earliest, latest, got \"x\"". */
bx_status bx_conf_check_choice(const char *variable, const char *value, const char *const *choices,
                               bx_error *err) BX_MUSTCHECK;
/* A secret from the environment: the value of `name`, else the first line of the file named by
 * `name`_FILE (trailing spaces and newline dropped), else *out = NULL with BX_OK (not configured).
 * The caller frees *out. Errors name the variable and the file, never the secret:
 * "BX_KAFKA_PASSWORD_FILE: cannot read \"/run/secrets/kafka\"". The connectors read their
 * credentials this way (as libpq reads PGUSER and PGPASSFILE), so every process, service, tool or
 * test, uses the ones its environment carries: BX_KAFKA_USERNAME and BX_KAFKA_PASSWORD[_FILE]
 * (bx_kafka), BX_REDIS_USERNAME and BX_REDIS_PASSWORD[_FILE] (bx_redis). */
bx_status bx_conf_secret(const char *name, char **out, bx_error *err) BX_MUSTCHECK;
/* Prints the table (name, default, help) for --help. */
void bx_conf_usage(const bx_conf_row *rows, size_t nrows);

/* One row each, as a designated initializer, for tables that stay one row to a line or two:
 * BX_CONF_STR("BX_CONSUMER_GROUP", "bx-score", &st.sc.group, "Kafka consumer group"). */
#define BX_CONF_ROW_(kind, var, default_text, least, most, field, help_text)                       \
    {                                                                                              \
        .name = (var), .type = (kind), .def = (default_text), .min = (least), .max = (most),       \
        .target = (field), .help = (help_text)                                                     \
    }
#define BX_CONF_STR(var, default_text, field, help_text)                                           \
    BX_CONF_ROW_(BX_CONF_STRING, var, default_text, 0, 0, field, help_text)
#define BX_CONF_NUM(var, default_text, least, most, field, help_text)                              \
    BX_CONF_ROW_(BX_CONF_INT, var, default_text, least, most, field, help_text)
#define BX_CONF_NUM32(var, default_text, least, most, field, help_text)                            \
    BX_CONF_ROW_(BX_CONF_INT32, var, default_text, least, most, field, help_text)
#define BX_CONF_FLAG(var, default_text, field, help_text)                                          \
    BX_CONF_ROW_(BX_CONF_BOOL, var, default_text, 0, 0, field, help_text)

/* Settings every service shares. */
typedef struct bx_common_conf {
    char *kafka_brokers;
    char *pg_url;
    char *redis_url;
    char *log_level;
    char *clock;
    char *metrics_listen;
    char *pseudonym_key;
    /* How a service's consumers join their group (bx_service hands them to bx_kafka). */
    char *kafka_instance_id; /* "auto", "" (dynamic membership) or the id itself */
    int kafka_replica, kafka_session_ms, kafka_heartbeat_ms;
} bx_common_conf;

/* clang-format off */
/* The rows of the settings every service shares, one at a time, each filling the field it is
 * given, so a service's settings go straight to where it reads them. */
#define BX_CONF_KAFKA_BROKERS(field) \
    BX_CONF_STR("BX_KAFKA_BROKERS", "127.0.0.1:19092", field, "Kafka bootstrap servers")
#define BX_CONF_PG_URL(field) \
    BX_CONF_STR("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue", field, \
                "PostgreSQL connection URL")
#define BX_CONF_REDIS_URL(field) \
    BX_CONF_STR("BX_REDIS_URL", "redis://127.0.0.1:63799", field, \
                "Redis URL (redis://host:port[/db])")
#define BX_CONF_LOG_LEVEL(field) \
    BX_CONF_STR("BX_LOG_LEVEL", "info", field, "debug, info, warn or error")
#define BX_CONF_CLOCK(field) \
    BX_CONF_STR("BX_CLOCK", "system", field, "system, or file:<path> for a driven clock")
#define BX_CONF_METRICS_LISTEN(field) \
    BX_CONF_STR("BX_METRICS_LISTEN", "", field, "host:port for /healthz and /metrics (empty: off)")
/* No default: a key in the source would make every installation's pseudonyms reversible. The
 * services that pseudonymise (bx-score, bx-escalate) read it with the required row and refuse to
 * start without it; the shared rows below read it as optional for the others. */
#define BX_CONF_PSEUDONYM_KEY(field) \
    BX_CONF_STR("BX_PSEUDONYM_KEY", NULL, field, \
                "secret key of the analysts' pseudonyms, one per installation " \
                "(deploy/local/bx-infra generates it); no default")
#define BX_CONF_PSEUDONYM_KEY_OPTIONAL(field) \
    BX_CONF_STR("BX_PSEUDONYM_KEY", "", field, \
                "secret key of the analysts' pseudonyms (required by bx-score and bx-escalate)")
/* A consumer's group membership (issue 14, defect 9): a static member (group.instance.id) that
 * comes back within the session timeout gets its partitions back without a rebalance, and the
 * cooperative-sticky assignor moves only the partitions that change owner, so a killed replica no
 * longer stalls its group. Each replica of a group needs its own id: "auto" is
 * <host name>-<BX_KAFKA_REPLICA>, so two replicas on one host set BX_KAFKA_REPLICA 1 and 2 (in
 * compose each container has a host name of its own); an empty id is dynamic membership. */
#define BX_CONF_KAFKA_MEMBERSHIP(c) \
    BX_CONF_STR("BX_KAFKA_INSTANCE_ID", "auto", &(c).kafka_instance_id, \
                "group.instance.id of this replica: auto (<host>-<BX_KAFKA_REPLICA>), " \
                "empty for dynamic membership, or the id"), \
    BX_CONF_NUM32("BX_KAFKA_REPLICA", "1", 1, 9999, &(c).kafka_replica, \
                  "this replica's number among its group's replicas on one host"), \
    BX_CONF_NUM32("BX_KAFKA_SESSION_TIMEOUT_MS", "10000", 6000, 300000, &(c).kafka_session_ms, \
                  "how long the group waits for a silent replica before moving its partitions"), \
    BX_CONF_NUM32("BX_KAFKA_HEARTBEAT_MS", "3000", 500, 100000, &(c).kafka_heartbeat_ms, \
                  "heartbeat interval, under a third of the session timeout")
/* All of them, filling a bx_common_conf c (tools use it). */
#define BX_COMMON_CONF_ROWS(c) \
    BX_CONF_KAFKA_BROKERS(&(c).kafka_brokers), BX_CONF_PG_URL(&(c).pg_url), \
    BX_CONF_REDIS_URL(&(c).redis_url), BX_CONF_LOG_LEVEL(&(c).log_level), \
    BX_CONF_CLOCK(&(c).clock), BX_CONF_METRICS_LISTEN(&(c).metrics_listen), \
    BX_CONF_PSEUDONYM_KEY_OPTIONAL(&(c).pseudonym_key)
/* The same seven for a service's main (bx_service_run): log level, clock and metrics address go to
 * common, which bx_service_run reads; the four the service itself uses go to the fields given. The
 * pseudonym key is optional here: a service that pseudonymises adds BX_CONF_PSEUDONYM_KEY. */
#define BX_SERVICE_CONF_ROWS(common, brokers, pg_url, redis_url, pseudonym_key) \
    BX_CONF_KAFKA_BROKERS(brokers), BX_CONF_KAFKA_MEMBERSHIP(common), \
    BX_CONF_PG_URL(pg_url), BX_CONF_REDIS_URL(redis_url), \
    BX_CONF_LOG_LEVEL(&(common).log_level), BX_CONF_CLOCK(&(common).clock), \
    BX_CONF_METRICS_LISTEN(&(common).metrics_listen), BX_CONF_PSEUDONYM_KEY_OPTIONAL(pseudonym_key)
/* clang-format on */

#endif
