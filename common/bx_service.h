/* bx_service: how every service runs: --help, settings, log level, the clock, signals, the
 * metrics and health endpoint, the loop, and one orderly stop. */
#ifndef BX_SERVICE_H
#define BX_SERVICE_H

#include "bx_config.h"
#include "bx_metrics.h"

#include <signal.h>

/* Handles --help (prints `about` and the settings table), loads the settings, sets the log level
 * and the service name, and configures the clock from common->clock. Returns -1 when the service
 * should go on, else the exit code main should return (0 after --help, 2 after a bad setting,
 * which is printed naming the variable); in that case the settings are already freed. */
int bx_service_start_up(const char *name, const char *about, const bx_conf_row *rows, size_t nrows,
                        const bx_common_conf *common, int argc, char **argv);

/* The functions a service's main gives bx_service_run: the five of its service.h (start, step,
 * tick, healthy, stop) over an opaque service, and what comes between reading the settings and
 * starting. The settings themselves live where the rows point (a static struct in main). */
typedef struct bx_service_ops {
    /* After the settings are read: checks them and loads what they name (policies, templates).
     * On failure bx_service_run prints "<name>: <err.msg>" and returns 2. May be NULL. */
    bx_status (*prepare)(bx_error *err);
    /* Frees what prepare loaded; called once, last, whenever prepare was called (also when it
     * failed, so it must cope with a half-done prepare). May be NULL. */
    void (*release)(void);
    /* Connects and starts; on failure *service may be half-made (stop gets it). */
    bx_status (*start)(void **service, bx_error *err);
    void (*step)(void *service); /* one loop iteration: waits at most about 100 ms */
    void (*tick)(void *service); /* periodic work, every *tick_ms; may be NULL */
    bx_health_fn *healthy;       /* for /healthz; may be NULL */
    void (*stop)(void *service); /* orderly stop; must accept NULL and a half-made service */
} bx_service_ops;

typedef struct bx_service_def {
    const char *name;  /* "bx-escalate", for --help, log lines and errors */
    const char *about; /* one line for --help */
    const bx_conf_row *rows;
    size_t nrows;
    /* Where the rows put BX_LOG_LEVEL, BX_CLOCK, BX_METRICS_LISTEN and the Kafka membership
     * (BX_CONF_KAFKA_MEMBERSHIP, for bx_kafka_membership_set); only those are read. */
    const bx_common_conf *common;
    const long long *tick_ms; /* where the rows put tick's period; NULL with no tick */
    bx_service_ops ops;
} bx_service_def;

/* Adapters from a service's typed functions to bx_service_ops, so a main does not write them:
 * BX_SERVICE_START(escalate_service, &st.sc) defines escalate_service_start_op over
 * escalate_service_start(const escalate_service_conf *, escalate_service **, bx_error *), and
 * BX_SERVICE_CALL(escalate_service, step) defines escalate_service_step_op over
 * escalate_service_step(escalate_service *). */
#define BX_SERVICE_START(type, conf)                                                               \
    static bx_status type##_start_op(void **out, bx_error *err)                                    \
    {                                                                                              \
        type *sv = NULL;                                                                           \
        bx_status s = type##_start((conf), &sv, err);                                              \
        *out = sv;                                                                                 \
        return s;                                                                                  \
    }
#define BX_SERVICE_CALL(type, verb)                                                                \
    static void type##_##verb##_op(void *sv)                                                       \
    {                                                                                              \
        type##_##verb(sv);                                                                         \
    }

/* Runs a service from main to exit: --help (prints about and the settings, returns 0); loads the
 * settings, the log level and the clock (bx_service_start_up; 2 on a bad one); SIGINT and SIGTERM
 * clear the running flag, SIGPIPE is ignored; prepare (2 on failure); start and, when
 * BX_METRICS_LISTEN is set, the metrics and health endpoint (1 on failure, logged as "cannot
 * start: ..."); then `while (running) { step; tick when due }`; then "stopping", the endpoint
 * stops, the service stops, release, the settings are freed; 0. Every path after the settings
 * were read goes through that one cleanup. Returns main's exit code. */
int bx_service_run(const bx_service_def *def, int argc, char **argv);

/* The flag bx_service_run clears on SIGINT or SIGTERM, for the services' conf (their loops and
 * retries watch it). */
const volatile sig_atomic_t *bx_service_running(void);

#endif
