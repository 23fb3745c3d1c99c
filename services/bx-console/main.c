/* bx-console: its settings, and bx_service_run over the server (server.h) and its producer. */
#include "bx_config.h"
#include "bx_kafka.h"
#include "bx_service.h"
#include "ingest.h"
#include "server.h"

#include <stdlib.h>
#include <unistd.h>

#ifndef BX_DEFAULT_CONSOLE_TEMPLATES
#define BX_DEFAULT_CONSOLE_TEMPLATES "services/bx-console/templates"
#endif

static struct {
    bx_common_conf common; /* log level, clock, metrics address, brokers */
    console_server_conf sc;
} st;

/* The lockout of a client address shares the account's delays and window (BX_LOGIN_*). */
static const bx_conf_row rows[] = {
    BX_CONF_KAFKA_BROKERS(&st.common.kafka_brokers),
    BX_CONF_PG_URL(&st.sc.pg_url),
    BX_CONF_REDIS_URL(&st.sc.redis_url),
    BX_CONF_LOG_LEVEL(&st.common.log_level),
    BX_CONF_CLOCK(&st.common.clock),
    BX_CONF_METRICS_LISTEN(&st.common.metrics_listen),
    BX_CONF_PSEUDONYM_KEY_OPTIONAL(&st.common.pseudonym_key),
    BX_CONF_STR("BX_CONSOLE_LISTEN", "127.0.0.1:8443", &st.sc.listen, "host:port of the console"),
    BX_CONF_STR("BX_TLS_CERT", "", &st.sc.tls_cert, "PEM certificate file for HTTPS"),
    BX_CONF_STR("BX_TLS_KEY", "", &st.sc.tls_key, "PEM private key file for HTTPS"),
    BX_CONF_FLAG("BX_HTTP_INSECURE", "false", &st.sc.insecure,
                 "allow plain HTTP off loopback (only behind a TLS proxy)"),
    BX_CONF_STR("BX_CONSOLE_TEMPLATES", BX_DEFAULT_CONSOLE_TEMPLATES, &st.sc.templates,
                "folder of the page templates and console.css"),
    BX_CONF_STR("BX_SCORE_POLICY", "", &st.sc.score_policy,
                "bx-score's policy, to explain risk scores (empty: the built-in default)"),
    BX_CONF_NUM("BX_CONSOLE_THREADS", "4", 1, 256, &st.sc.threads,
                "worker threads, each with its own PostgreSQL and Redis connection"),
    BX_CONF_NUM("BX_CONSOLE_MAX_CONNECTIONS", "256", 1, 10000, &st.sc.guard.max_connections,
                "open connections; more are closed at once"),
    BX_HTTP_GUARD_CONF_ROWS(st.sc.guard, "64"),
    BX_CONF_NUM("BX_SESSION_IDLE_S", "1800", 60, 86400, &st.sc.identity.idle_s,
                "a session unused this many seconds ends"),
    BX_CONF_NUM("BX_SESSION_ABSOLUTE_S", "43200", 300, 604800, &st.sc.identity.absolute_s,
                "every session ends this many seconds after sign-in"),
    BX_CONF_NUM("BX_LOGIN_FREE_ATTEMPTS", "5", 1, 100, &st.sc.identity.account.free_attempts,
                "failed sign-ins of one account before delays start"),
    BX_CONF_NUM("BX_LOGIN_DELAY_S", "30", 1, 3600, &st.sc.identity.account.base_s,
                "the first delay; each further failure doubles it"),
    BX_CONF_NUM("BX_LOGIN_MAX_DELAY_S", "3600", 1, 86400, &st.sc.identity.account.max_s,
                "the longest lockout"),
    BX_CONF_NUM("BX_LOGIN_ADDRESS_FREE_ATTEMPTS", "30", 1, 10000,
                &st.sc.identity.address.free_attempts,
                "failed sign-ins from one client address before delays start"),
    BX_CONF_NUM("BX_LOGIN_WINDOW_S", "3600", 60, 604800, &st.sc.identity.account.window_s,
                "failures older than this are forgotten"),
};

static bx_status prepare(bx_error *err)
{
    (void)err;
    console_lockout *address = &st.sc.identity.address;
    address->base_s = st.sc.identity.account.base_s;
    address->max_s = st.sc.identity.account.max_s;
    address->window_s = st.sc.identity.account.window_s;
    return BX_OK;
}

/* The server serves on threads of its own; the loop only waits. */
typedef struct console {
    bx_producer *producer;
    console_server *server;
} console;

static bx_status start(void **service, bx_error *err)
{
    console *c = calloc(1, sizeof(*c));
    *service = c;
    if (c == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    bx_status s = bx_producer_new(st.common.kafka_brokers, NULL, &c->producer, err);
    if (s == BX_OK) {
        /* what its writes publish through bxvalidate, and the principals' reminders */
        static const char *const reminders[] = {BX_TOPIC_NOTIFY_REQUESTS, NULL};
        bx_producer_prepare_topics(c->producer, ingest_topics, 5000);
        bx_producer_prepare_topics(c->producer, reminders, 5000);
    }
    IFOK(s, console_server_start(&st.sc, c->producer, &c->server, err));
    return s;
}

static void step(void *service)
{
    (void)service;
    usleep(100 * 1000);
}

static bool healthy(void *service, char *reason, size_t size)
{
    console *c = service;
    return console_server_healthy(c->server, reason, size);
}

static void stop(void *service)
{
    console *c = service;
    if (c == NULL)
        return;
    console_server_stop(c->server); /* finishes requests in flight */
    bx_producer_free(c->producer, 10000);
    free(c);
}

int main(int argc, char **argv)
{
    const bx_service_def def = {
        .name = "bx-console",
        .about = "the door for people: accounts, sessions, pages",
        .rows = rows,
        .nrows = sizeof(rows) / sizeof(rows[0]),
        .common = &st.common,
        .ops = {prepare, NULL, start, step, NULL, healthy, stop},
    };
    return bx_service_run(&def, argc, argv);
}
