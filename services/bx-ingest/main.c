/* bx-ingest: configuration, start, loop, orderly stop. */
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_service.h"
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    running = 0;
}

int main(int argc, char **argv)
{
    bx_common_conf common = {0};
    char *listen = NULL, *tls_cert = NULL, *tls_key = NULL;
    long long max_body = 0, max_connections = 0, ack_timeout = 0, refresh = 0, retention = 0;
    bool insecure = false;
    bx_conf_row rows[] = {
        BX_COMMON_CONF_ROWS(common),
        {"BX_HTTP_LISTEN", BX_CONF_STRING, "127.0.0.1:8080", 0, 0, &listen, "host:port of the API"},
        {"BX_TLS_CERT", BX_CONF_STRING, "", 0, 0, &tls_cert, "PEM certificate file for HTTPS"},
        {"BX_TLS_KEY", BX_CONF_STRING, "", 0, 0, &tls_key, "PEM private key file for HTTPS"},
        {"BX_HTTP_INSECURE", BX_CONF_BOOL, "false", 0, 0, &insecure,
         "allow plain HTTP off loopback (only behind a TLS proxy)"},
        {"BX_HTTP_MAX_BODY", BX_CONF_INT, "4194304", 1024, 67108864, &max_body,
         "largest request body in bytes"},
        {"BX_HTTP_MAX_CONNECTIONS", BX_CONF_INT, "512", 1, 10000, &max_connections,
         "open API connections; more wait in the kernel's backlog"},
        {"BX_ACK_TIMEOUT_MS", BX_CONF_INT, "15000", 100, 300000, &ack_timeout,
         "how long a request waits for Kafka's acknowledgement"},
        {"BX_REGISTRY_REFRESH_MS", BX_CONF_INT, "2000", 100, 3600000, &refresh,
         "how often the registry revision is checked"},
        {"BX_DEDUP_RETENTION_DAYS", BX_CONF_INT, "400", 1, 36500, &retention,
         "how long accepted client event ids and roll call ids are remembered"},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    int exit_code = bx_service_start_up(
        "bx-ingest", "the HTTP door for attendance, roll calls, leave and actions", rows, nrows,
        &common, argc, argv);
    if (exit_code >= 0)
        return exit_code;
    bx_error err = {0};
    char timeout_text[32];
    snprintf(timeout_text, sizeof(timeout_text), "%lld", ack_timeout);
    const char *extra[] = {"message.timeout.ms", timeout_text, NULL};
    bx_producer *producer = NULL;
    ingest_server *server = NULL;
    bx_metrics_server *metrics = NULL;
    ingest_server_conf sc = {listen,   tls_cert,        tls_key,     insecure, common.pg_url,
                             max_body, max_connections, ack_timeout, refresh,  retention};
    bx_status s = bx_producer_new(common.kafka_brokers, extra, &producer, &err);
    IFOK(s, ingest_server_start(&sc, producer, &server, &err));
    if (s == BX_OK && common.metrics_listen[0])
        s = bx_metrics_server_start(common.metrics_listen, ingest_server_healthy, server, &metrics,
                                    &err);
    if (s != BX_OK) {
        bx_error("cannot start: %s", err.msg);
        ingest_server_stop(server);
        bx_producer_free(producer, 1000);
        bx_conf_free(rows, nrows);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    long long slept = 0;
    while (running) {
        usleep(100 * 1000);
        slept += 100;
        ingest_server_watch(server);
        if (slept >= refresh) {
            slept = 0;
            ingest_server_tick(server);
        }
    }
    bx_info("stopping");
    bx_metrics_server_stop(metrics);
    ingest_server_stop(server); /* finishes requests in flight */
    bx_producer_free(producer, 10000);
    bx_conf_free(rows, nrows);
    return 0;
}
