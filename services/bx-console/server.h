/* bx-console server: HTTPS over libmicrohttpd (a pool of threads, each with its own PostgreSQL
 * and Redis connection), routing, form parsing, sessions, CSRF, rendering. */
#ifndef CONSOLE_SERVER_H
#define CONSOLE_SERVER_H

#include "bx_http_guard.h"
#include "bx_kafka.h"
#include "bx_status.h"
#include "console.h"
#include "identity.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct console_server_conf {
    const char *listen;   /* host:port */
    const char *tls_cert; /* PEM files; both or neither */
    const char *tls_key;
    bool insecure; /* plain HTTP off loopback (behind a TLS proxy) */
    const char *pg_url;
    const char *redis_url;
    const char *templates; /* folder of *.html and console.css */
    const char *score_policy;
    long long threads;
    bx_http_guard_conf guard; /* caps and deadlines; its threads are `threads` */
    identity_conf identity;
} console_server_conf;

typedef struct console_server console_server;

/* Loads the templates, starts the pages' state and listens. Borrows producer until stop; the
 * conf's strings are borrowed until console_server_stop. */
bx_status console_server_start(const console_server_conf *conf, bx_producer *producer,
                               console_server **out, bx_error *err) BX_MUSTCHECK;
/* Stops listening, finishes the requests in flight, frees everything. NULL does nothing. */
void console_server_stop(console_server *srv);
/* For the metrics endpoint's /healthz. */
bool console_server_healthy(void *server, char *reason, size_t size);
const identity_conf *console_server_identity(const console_server *srv);

/* Routing, exposed for tests: matches path against pattern ("/students/:id"), filling params.
 * Returns false when it does not match. */
bool console_route_match(const char *pattern, const char *path, const char **params,
                         size_t *nparams, char *storage, size_t storage_size);
/* Parses an application/x-www-form-urlencoded body into fields (names and values allocated in
 * one block, *block, caller frees). BX_EINVAL: a bad escape, invalid UTF-8, a control
 * character, a name over 64 or a value over CONSOLE_MAX_FIELD_VALUE bytes, more than max. */
bx_status console_form_parse(const char *body, size_t len, console_field *fields, size_t max,
                             size_t *nfields, char **block, bx_error *err) BX_MUSTCHECK;
/* True when s is valid UTF-8 without NUL or control characters other than tab, CR, LF. */
bool console_text_ok(const char *s, size_t len);

/* The core's own routes (core_pages.c). */
extern const console_route console_core_routes[];
extern const size_t console_core_nroutes;

#endif
