/* bx-ingest: its settings, and bx_service_run over the HTTP server (server.h) and its producer. */
#include "bx_kafka.h"
#include "bx_service.h"
#include "ingest.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct {
    bx_common_conf common; /* log level, clock, metrics address, brokers */
    ingest_server_conf sc;
} st;

static const bx_conf_row rows[] = {
    BX_SERVICE_CONF_ROWS(st.common, &st.common.kafka_brokers, &st.sc.pg_url, &st.common.redis_url,
                         &st.common.pseudonym_key),
    BX_CONF_STR("BX_HTTP_LISTEN", "127.0.0.1:8080", &st.sc.listen, "host:port of the API"),
    BX_CONF_STR("BX_TLS_CERT", "", &st.sc.tls_cert, "PEM certificate file for HTTPS"),
    BX_CONF_STR("BX_TLS_KEY", "", &st.sc.tls_key, "PEM private key file for HTTPS"),
    BX_CONF_FLAG("BX_HTTP_INSECURE", "false", &st.sc.insecure,
                 "allow plain HTTP off loopback (only behind a TLS proxy)"),
    BX_CONF_NUM("BX_HTTP_MAX_BODY", "4194304", 1024, 67108864, &st.sc.max_body,
                "largest request body in bytes"),
    BX_CONF_NUM("BX_HTTP_MAX_CONNECTIONS", "512", 1, 10000, &st.sc.guard.max_connections,
                "open API connections; more are closed at once"),
    BX_HTTP_GUARD_CONF_ROWS(st.sc.guard, "32"),
    BX_CONF_NUM("BX_ACK_TIMEOUT_MS", "15000", 100, 300000, &st.sc.ack_timeout_ms,
                "how long a request waits for Kafka's acknowledgement"),
    BX_CONF_NUM("BX_REGISTRY_REFRESH_MS", "2000", 100, 3600000, &st.sc.refresh_ms,
                "how often the registry revision is checked"),
    BX_CONF_NUM("BX_DEDUP_RETENTION_DAYS", "400", 1, 36500, &st.sc.dedup_retention_days,
                "how long accepted client event ids and roll call ids are remembered"),
};

/* The server serves on threads of its own; the loop only looks after it. */
typedef struct ingest {
    bx_producer *producer;
    ingest_server *server;
} ingest;

static bx_status start(void **service, bx_error *err)
{
    ingest *in = calloc(1, sizeof(*in));
    *service = in;
    if (in == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    char timeout_text[32];
    snprintf(timeout_text, sizeof(timeout_text), "%lld", st.sc.ack_timeout_ms);
    const char *extra[] = {"message.timeout.ms", timeout_text, NULL};
    bx_status s = bx_producer_new(st.common.kafka_brokers, extra, &in->producer, err);
    if (s == BX_OK)
        bx_producer_prepare_topics(in->producer, ingest_topics, 5000);
    IFOK(s, ingest_server_start(&st.sc, in->producer, &in->server, err));
    return s;
}

static void step(void *service)
{
    ingest *in = service;
    usleep(100 * 1000);
    ingest_server_watch(in->server);
}

static void tick(void *service)
{
    ingest *in = service;
    ingest_server_tick(in->server);
}

static bool healthy(void *service, char *reason, size_t size)
{
    ingest *in = service;
    return ingest_server_healthy(in->server, reason, size);
}

static void stop(void *service)
{
    ingest *in = service;
    if (in == NULL)
        return;
    ingest_server_stop(in->server); /* finishes requests in flight */
    bx_producer_free(in->producer, 10000);
    free(in);
}

int main(int argc, char **argv)
{
    const bx_service_def def = {
        .name = "bx-ingest",
        .about = "the HTTP door for attendance, roll calls, leave and actions",
        .rows = rows,
        .nrows = sizeof(rows) / sizeof(rows[0]),
        .common = &st.common,
        .tick_ms = &st.sc.refresh_ms,
        .ops = {NULL, NULL, start, step, tick, healthy, stop},
    };
    return bx_service_run(&def, argc, argv);
}
