/* bx_service: shared start-up, loop and stop of the service binaries. */
#include "bx_service.h"
#include "bx_clock.h"
#include "bx_kafka.h"
#include "bx_log.h"

#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

const volatile sig_atomic_t *bx_service_running(void)
{
    return &running;
}

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
    if (bx_clock_init(common->clock, &err) != BX_OK ||
        bx_kafka_membership_set(common->kafka_instance_id, common->kafka_replica,
                                common->kafka_session_ms, common->kafka_heartbeat_ms,
                                &err) != BX_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        bx_conf_free(rows, nrows);
        return 2;
    }
    return -1;
}

/* The loop: step as often as it returns, tick when its period passed. */
static void loop(const bx_service_def *def, void *service)
{
    long long last_tick = bx_monotonic_ms();
    while (running) {
        def->ops.step(service);
        if (def->ops.tick && def->tick_ms && bx_monotonic_ms() - last_tick >= *def->tick_ms) {
            last_tick = bx_monotonic_ms();
            def->ops.tick(service);
        }
    }
}

int bx_service_run(const bx_service_def *def, int argc, char **argv)
{
    int code =
        bx_service_start_up(def->name, def->about, def->rows, def->nrows, def->common, argc, argv);
    if (code >= 0)
        return code;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bx_error err = {0};
    void *service = NULL;
    bx_metrics_server *metrics = NULL;
    code = 2;
    if (def->ops.prepare && def->ops.prepare(&err) != BX_OK) {
        fprintf(stderr, "%s: %s\n", def->name, err.msg);
        goto out;
    }
    code = 1;
    bx_status s = def->ops.start(&service, &err);
    if (s == BX_OK && def->common->metrics_listen && def->common->metrics_listen[0])
        s = bx_metrics_server_start(def->common->metrics_listen, def->ops.healthy, service,
                                    &metrics, &err);
    if (s != BX_OK) {
        bx_log_error("cannot start: %s", err.msg);
        goto out;
    }
    loop(def, service);
    bx_log_info("stopping");
    code = 0;
out:
    bx_metrics_server_stop(metrics);
    if (code != 2)
        def->ops.stop(service);
    if (def->ops.release)
        def->ops.release();
    bx_conf_free(def->rows, def->nrows);
    return code;
}
