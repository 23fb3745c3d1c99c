/* bx-ingest server: the HTTP(S) front, credentials and the registry copy it validates against. */
#ifndef BX_INGEST_SERVER_H
#define BX_INGEST_SERVER_H

#include "bx_http_guard.h"
#include "bx_kafka.h"
#include "bx_status.h"

#include <stdbool.h>

typedef struct ingest_server_conf {
    const char *listen;   /* "127.0.0.1:8080" */
    const char *tls_cert; /* PEM file or "" for plain HTTP */
    const char *tls_key;
    bool insecure; /* allow plain HTTP on a non-loopback address */
    const char *pg_url;
    long long max_body;       /* bytes */
    bx_http_guard_conf guard; /* deadlines and connection caps (bx_http_guard.h) */
    long long ack_timeout_ms;
    long long refresh_ms;           /* registry revision poll */
    long long dedup_retention_days; /* how long accepted client event ids are remembered */
} ingest_server_conf;

typedef struct ingest_server ingest_server;

/* Loads the registry and credentials, then listens. producer is borrowed for the server's life. */
bx_status ingest_server_start(const ingest_server_conf *conf, bx_producer *producer,
                              ingest_server **out, bx_error *err) BX_MUSTCHECK;
/* Reloads the registry when its revision changed; call periodically from the main loop. */
void ingest_server_tick(ingest_server *s);
/* Looks after suspended requests (a resume lost on its way is sent again, a request waiting far
 * longer than Kafka's timeout is reported); call every 100 ms or so. */
void ingest_server_watch(ingest_server *s);
bool ingest_server_healthy(void *server, char *reason, size_t size);
void ingest_server_stop(ingest_server *s);

#endif
