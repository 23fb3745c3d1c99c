/* bx_http_guard: what libmicrohttpd does not keep for an HTTP(S) service facing the outside:
 * deadlines a trickle cannot move, caps that close at once, bounded connection memory. */
#ifndef BX_HTTP_GUARD_H
#define BX_HTTP_GUARD_H

#include "bx_config.h"
#include "bx_status.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* libmicrohttpd's own timeout restarts on every byte, so a client sending a header byte a second
 * holds its connection for ever, and past its connection limit it stops accepting, leaving new
 * connections (valid requests among them) in the kernel's backlog behind idle ones. The guard
 * keeps, for every connection:
 * - a deadline for the whole header, TLS handshake included, from the connection or from the
 *   previous answer on a kept-alive connection;
 * - a body minimum rate: the body must be in within body_timeout_ms plus one second per
 *   body_min_rate bytes received;
 * neither restarted by a byte; past either, the connection is shut down (libmicrohttpd then
 * closes it). Past max_connections open at once a new connection is closed at once, and past
 * max_per_client from one address too (libmicrohttpd's count, global across a thread pool). */
typedef struct bx_http_guard_conf {
    long long max_connections;
    long long max_per_client;
    long long header_timeout_ms;
    long long body_timeout_ms;
    long long body_min_rate; /* bytes a second */
    long long threads;       /* libmicrohttpd's thread pool size (1 without a pool) */
} bx_http_guard_conf;

/* The settings every guarded service reads (its own BX_..._MAX_CONNECTIONS stays its own):
 * rows for its bx_conf table, targets in the bx_http_guard_conf `conf`. */
#define BX_HTTP_GUARD_CONF_ROWS(conf, per_client_default)                                          \
    BX_CONF_NUM("BX_HTTP_MAX_PER_CLIENT", per_client_default, 1, 10000, &(conf).max_per_client,    \
                "open connections from one client address; more are closed at once (behind a "     \
                "proxy every client has the proxy's address)"),                                    \
        BX_CONF_NUM("BX_HTTP_HEADER_TIMEOUT_MS", "10000", 100, 600000, &(conf).header_timeout_ms,  \
                    "time for a request's whole header (and TLS handshake), however it trickles"), \
        BX_CONF_NUM("BX_HTTP_BODY_TIMEOUT_MS", "20000", 100, 600000, &(conf).body_timeout_ms,      \
                    "time for a body, extended by one second per BX_HTTP_BODY_MIN_RATE bytes"),    \
        BX_CONF_NUM("BX_HTTP_BODY_MIN_RATE", "16384", 1, 1073741824, &(conf).body_min_rate,        \
                    "bytes a second a body must average past BX_HTTP_BODY_TIMEOUT_MS")

/* What one connection's headers may take in libmicrohttpd's pool (larger headers get 431): with
 * the caps, the bound on what a client that never authenticates can hold. */
#define BX_HTTP_GUARD_CONNECTION_MEMORY (32 * 1024)

typedef struct bx_http_guard bx_http_guard;

/* A guard with its sweeper thread. metric_prefix names its metrics ("bx_ingest":
 * bx_ingest_connections, bx_ingest_connections_closed_total{why="limit|header_deadline|
 * body_rate"}), registered once per prefix for the process's life. conf is copied. */
bx_status bx_http_guard_new(const bx_http_guard_conf *conf, const char *metric_prefix,
                            bx_http_guard **out, bx_error *err) BX_MUSTCHECK;
/* Stops the sweeper and frees the guard. Call after MHD_stop_daemon: the daemon's callbacks use
 * it until then. NULL does nothing. */
void bx_http_guard_free(bx_http_guard *g);

/* For MHD_start_daemon: bx_http_guard_accept with g as the accept policy (its 3rd and 4th
 * arguments), and MHD_OPTION_ARRAY, bx_http_guard_options(g) among the options. The array
 * (connection notifications, the per-address limit, a daemon limit above the guard's own so that
 * the policy is asked, the connection memory, libmicrohttpd's idle timeout of 60 s and its error
 * lines as debug lines) lives in g. */
enum MHD_Result bx_http_guard_accept(void *g, const struct sockaddr *addr, socklen_t addrlen);
struct MHD_OptionItem *bx_http_guard_options(bx_http_guard *g);

/* A request's steps, from the access handler (any thread libmicrohttpd calls it on): */
/* its headers are in: the header deadline stops (call on the handler's first call) */
void bx_http_guard_headers_in(struct MHD_Connection *conn);
/* its body is being read: the minimum rate counts from now */
void bx_http_guard_body_begin(struct MHD_Connection *conn);
void bx_http_guard_body_bytes(struct MHD_Connection *conn, size_t n);
/* the body is in (or refused): no deadline of the guard's while it is answered */
void bx_http_guard_body_end(struct MHD_Connection *conn);
/* from MHD_OPTION_NOTIFY_COMPLETED: the next request's header deadline runs from now */
void bx_http_guard_request_done(struct MHD_Connection *conn);

/* Open connections now (for tests and health). */
long long bx_http_guard_connections(bx_http_guard *g);

/* How a guarded daemon listens (bx_tls_listen's address and TLS choice) and whom it calls. */
typedef struct bx_http_daemon_conf {
    const char *listen;             /* "host:port", for the error */
    const struct sockaddr_in *addr; /* borrowed for the call */
    bool tls;                       /* HTTPS from the PEM files tls_cert and tls_key */
    const char *tls_cert, *tls_key;
    unsigned flags;   /* MHD_USE_* (MHD_USE_TLS is added for tls) */
    unsigned threads; /* MHD_OPTION_THREAD_POOL_SIZE; 0 for none */
    MHD_AccessHandlerCallback handler;
    void *handler_arg;
    MHD_RequestCompletedCallback completed; /* MHD_OPTION_NOTIFY_COMPLETED */
    void *completed_arg;
} bx_http_daemon_conf;

/* A started daemon and the PEM text it serves from, which must outlive it. */
typedef struct bx_http_daemon {
    struct MHD_Daemon *daemon;
    char *cert_pem, *key_pem;
} bx_http_daemon;

/* Reads the PEM files (when conf->tls) and starts libmicrohttpd's daemon behind g (its accept
 * policy and options, bx_http_guard_accept) with BX_TLS_GNUTLS_PRIORITIES. Errors: the one of
 * bx_tls_read_pem naming a file (BX_EINVAL), or BX_EIO "cannot listen on <listen>" (with TLS,
 * "check the certificate and key"). d is filled on success and empty (nothing to stop) after an
 * error. */
bx_status bx_http_daemon_start(bx_http_guard *g, const bx_http_daemon_conf *conf, bx_http_daemon *d,
                               bx_error *err) BX_MUSTCHECK;
/* Stops the daemon (which ends its connections) and frees the PEM text; d is left empty. Call
 * before bx_http_guard_free; an empty d does nothing. */
void bx_http_daemon_stop(bx_http_daemon *d);

#endif
