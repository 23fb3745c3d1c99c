/* bx-console: configuration, start, wait, orderly stop. */
#include "bx_config.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_service.h"
#include "server.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#ifndef BX_DEFAULT_CONSOLE_TEMPLATES
#define BX_DEFAULT_CONSOLE_TEMPLATES "services/bx-console/templates"
#endif

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    running = 0;
}

int main(int argc, char **argv)
{
    bx_common_conf common = {0};
    char *listen = NULL, *tls_cert = NULL, *tls_key = NULL, *templates = NULL, *policy = NULL;
    bool insecure = false;
    long long threads = 0, idle = 0, absolute = 0;
    bx_http_guard_conf guard = {0};
    long long acc_free = 0, acc_base = 0, acc_max = 0, addr_free = 0, window = 0;
    bx_conf_row rows[] = {
        BX_COMMON_CONF_ROWS(common),
        {"BX_CONSOLE_LISTEN", BX_CONF_STRING, "127.0.0.1:8443", 0, 0, &listen,
         "host:port of the console"},
        {"BX_TLS_CERT", BX_CONF_STRING, "", 0, 0, &tls_cert, "PEM certificate file for HTTPS"},
        {"BX_TLS_KEY", BX_CONF_STRING, "", 0, 0, &tls_key, "PEM private key file for HTTPS"},
        {"BX_HTTP_INSECURE", BX_CONF_BOOL, "false", 0, 0, &insecure,
         "allow plain HTTP off loopback (only behind a TLS proxy)"},
        {"BX_CONSOLE_TEMPLATES", BX_CONF_STRING, BX_DEFAULT_CONSOLE_TEMPLATES, 0, 0, &templates,
         "folder of the page templates and console.css"},
        {"BX_SCORE_POLICY", BX_CONF_STRING, "", 0, 0, &policy,
         "bx-score's policy, to explain risk scores (empty: the built-in default)"},
        {"BX_CONSOLE_THREADS", BX_CONF_INT, "4", 1, 256, &threads,
         "worker threads, each with its own PostgreSQL and Redis connection"},
        {"BX_CONSOLE_MAX_CONNECTIONS", BX_CONF_INT, "256", 1, 10000, &guard.max_connections,
         "open connections; more are closed at once"},
        BX_HTTP_GUARD_CONF_ROWS(guard, "64"),
        {"BX_SESSION_IDLE_S", BX_CONF_INT, "1800", 60, 86400, &idle,
         "a session unused this many seconds ends"},
        {"BX_SESSION_ABSOLUTE_S", BX_CONF_INT, "43200", 300, 604800, &absolute,
         "every session ends this many seconds after sign-in"},
        {"BX_LOGIN_FREE_ATTEMPTS", BX_CONF_INT, "5", 1, 100, &acc_free,
         "failed sign-ins of one account before delays start"},
        {"BX_LOGIN_DELAY_S", BX_CONF_INT, "30", 1, 3600, &acc_base,
         "the first delay; each further failure doubles it"},
        {"BX_LOGIN_MAX_DELAY_S", BX_CONF_INT, "3600", 1, 86400, &acc_max, "the longest lockout"},
        {"BX_LOGIN_ADDRESS_FREE_ATTEMPTS", BX_CONF_INT, "30", 1, 10000, &addr_free,
         "failed sign-ins from one client address before delays start"},
        {"BX_LOGIN_WINDOW_S", BX_CONF_INT, "3600", 60, 604800, &window,
         "failures older than this are forgotten"},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    int exit_code =
        bx_service_start_up("bx-console", "the door for people: accounts, sessions, pages", rows,
                            nrows, &common, argc, argv);
    if (exit_code >= 0)
        return exit_code;
    bx_error err = {0};
    bx_producer *producer = NULL;
    console_server *server = NULL;
    bx_metrics_server *metrics = NULL;
    console_server_conf sc = {
        .listen = listen,
        .tls_cert = tls_cert,
        .tls_key = tls_key,
        .insecure = insecure,
        .pg_url = common.pg_url,
        .redis_url = common.redis_url,
        .templates = templates,
        .score_policy = policy,
        .threads = threads,
        .guard = guard,
        .identity = {.idle_s = idle,
                     .absolute_s = absolute,
                     .account = {acc_free, acc_base, acc_max, window},
                     .address = {addr_free, acc_base, acc_max, window}},
    };
    bx_status s = bx_producer_new(common.kafka_brokers, NULL, &producer, &err);
    IFOK(s, console_server_start(&sc, producer, &server, &err));
    if (s == BX_OK && common.metrics_listen[0])
        s = bx_metrics_server_start(common.metrics_listen, console_server_healthy, server, &metrics,
                                    &err);
    if (s != BX_OK) {
        bx_log_error("cannot start: %s", err.msg);
        console_server_stop(server);
        bx_producer_free(producer, 1000);
        bx_conf_free(rows, nrows);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (running)
        usleep(100 * 1000);
    bx_log_info("stopping");
    bx_metrics_server_stop(metrics);
    console_server_stop(server);
    bx_producer_free(producer, 10000);
    bx_conf_free(rows, nrows);
    return 0;
}
