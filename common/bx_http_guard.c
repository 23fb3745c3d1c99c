/* bx_http_guard: header and body deadlines, connection caps and memory bound for libmicrohttpd. */
#include "bx_http_guard.h"
#include "bx_clock.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* How often the sweeper looks at the deadlines: a deadline is kept to within this. */
#define SWEEP_MS 200

/* One connection, from accept to close: libmicrohttpd's socket context. The times are written
 * by the thread serving the connection and read by the sweeper. */
struct client {
    struct client *prev, *next;
    MHD_socket fd;
    atomic_llong header_since; /* the header began (monotonic ms); 0 once it is in */
    atomic_llong body_since;   /* the body began; 0 when no body is being read */
    atomic_llong body_bytes;   /* of the body so far */
    bool closing;              /* shut down by a deadline; libmicrohttpd closes it */
};

/* A service's metrics, for the process's life (bx_metric_register borrows them). */
enum { M_CONNECTIONS, M_LIMIT, M_HEADER, M_BODY, M_COUNT };
struct guard_metrics {
    char prefix[32];
    char names[M_COUNT][96];
    bx_metric m[M_COUNT];
};

struct bx_http_guard {
    bx_http_guard_conf conf;
    struct guard_metrics *metrics;
    pthread_mutex_t lock; /* the list, and each client's closing */
    struct client *clients;
    atomic_llong nclients;
    struct MHD_OptionItem options[8];
    pthread_t sweeper;
    bool sweeper_started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
};

static struct guard_metrics registered[4];
static pthread_mutex_t registered_lock = PTHREAD_MUTEX_INITIALIZER;

static struct guard_metrics *metrics_for(const char *prefix)
{
    static const char *const suffix[M_COUNT] = {
        "_connections", "_connections_closed_total{why=\"limit\"}",
        "_connections_closed_total{why=\"header_deadline\"}",
        "_connections_closed_total{why=\"body_rate\"}"};
    static const char *const help[M_COUNT] = {"open HTTP connections",
                                              "HTTP connections closed by the service, by why",
                                              "HTTP connections closed by the service, by why",
                                              "HTTP connections closed by the service, by why"};
    struct guard_metrics *found = NULL;
    pthread_mutex_lock(&registered_lock);
    for (size_t i = 0; i < sizeof(registered) / sizeof(registered[0]) && !found; i++) {
        struct guard_metrics *gm = &registered[i];
        if (gm->prefix[0] && strcmp(gm->prefix, prefix) == 0) {
            found = gm;
        } else if (gm->prefix[0] == '\0') {
            snprintf(gm->prefix, sizeof(gm->prefix), "%s", prefix);
            for (int k = 0; k < M_COUNT; k++) {
                snprintf(gm->names[k], sizeof(gm->names[k]), "%s%s", gm->prefix, suffix[k]);
                gm->m[k].name = gm->names[k];
                gm->m[k].help = help[k];
                gm->m[k].type = k == M_CONNECTIONS ? "gauge" : "counter";
                bx_metric_register(&gm->m[k]);
            }
            found = gm;
        }
    }
    pthread_mutex_unlock(&registered_lock);
    return found;
}

/* libmicrohttpd's own error lines ("Connection was closed by remote side with incomplete
 * request.", one per connection a deadline closes) are debug lines of ours: under attack they
 * would be thousands a minute. */
BX_PRINTF(2, 0) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    if (bx_log_min_level > BX_LOG_DEBUG)
        return;
    const bx_http_guard *g = cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\r\n")] = '\0';
    bx_log_debug("%s: libmicrohttpd: %s", g->metrics->prefix, line);
}

static struct client *client_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* libmicrohttpd opened or closed a connection (on the thread that serves it). It tells the close
 * before it closes the socket, so a client in the list always has its socket open. */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    bx_http_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct client *c = calloc(1, sizeof(*c));
        *socket_context = c;
        if (c == NULL)
            return; /* no deadlines of ours; libmicrohttpd's idle timeout still applies */
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = info ? info->connect_fd : MHD_INVALID_SOCKET;
        atomic_store(&c->header_since, bx_monotonic_ms());
        pthread_mutex_lock(&g->lock);
        c->next = g->clients;
        if (g->clients)
            g->clients->prev = c;
        g->clients = c;
        pthread_mutex_unlock(&g->lock);
        bx_metric_set(&g->metrics->m[M_CONNECTIONS], atomic_fetch_add(&g->nclients, 1) + 1);
    } else if (*socket_context) {
        struct client *c = *socket_context;
        pthread_mutex_lock(&g->lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            g->clients = c->next;
        if (c->next)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&g->lock);
        free(c);
        *socket_context = NULL;
        bx_metric_set(&g->metrics->m[M_CONNECTIONS], atomic_fetch_sub(&g->nclients, 1) - 1);
    }
}

/* Past max_connections a new connection is closed at once (libmicrohttpd closes those past the
 * per-address limit before asking), rather than left in the kernel's backlog where a valid
 * request would wait behind idle ones. Across a thread pool two accepts at the same moment may
 * both pass: the cap may be passed by the pool's size at most. */
enum MHD_Result bx_http_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    bx_http_guard *g = cls;
    if (atomic_load(&g->nclients) < g->conf.max_connections)
        return MHD_YES;
    bx_metric_add(&g->metrics->m[M_LIMIT], 1);
    return MHD_NO;
}

/* Shuts down every connection past its header deadline, or whose body is slower than the
 * minimum rate; libmicrohttpd sees the end on its own thread and closes it. */
static void sweep(bx_http_guard *g)
{
    const bx_http_guard_conf *conf = &g->conf;
    long long now = bx_monotonic_ms();
    pthread_mutex_lock(&g->lock);
    for (struct client *c = g->clients; c; c = c->next) {
        if (c->closing || c->fd == MHD_INVALID_SOCKET)
            continue;
        long long header_since = atomic_load(&c->header_since);
        long long body_since = atomic_load(&c->body_since);
        long long body_bytes = atomic_load(&c->body_bytes);
        bool header_late = header_since && now - header_since > conf->header_timeout_ms;
        long long body_allowed = conf->body_timeout_ms + body_bytes * 1000 / conf->body_min_rate;
        bool body_slow = body_since && now - body_since > body_allowed;
        if (!header_late && !body_slow)
            continue;
        bx_metric_add(&g->metrics->m[header_late ? M_HEADER : M_BODY], 1);
        bx_log_debug("%s: closing a connection: %s", g->metrics->prefix,
                     header_late ? "its header took too long"
                                 : "its body came slower than the minimum rate");
        shutdown(c->fd, SHUT_RDWR);
        c->closing = true;
    }
    pthread_mutex_unlock(&g->lock);
}

static void *sweeper_main(void *arg)
{
    bx_http_guard *g = arg;
    pthread_mutex_lock(&g->stop_lock);
    while (!g->stopping) {
        struct timespec until = bx_monotonic_deadline(SWEEP_MS);
        int rc = pthread_cond_timedwait(&g->stop_cond, &g->stop_lock, &until);
        if (g->stopping)
            break;
        if (rc == ETIMEDOUT || rc == 0) {
            pthread_mutex_unlock(&g->stop_lock);
            sweep(g);
            pthread_mutex_lock(&g->stop_lock);
        }
    }
    pthread_mutex_unlock(&g->stop_lock);
    return NULL;
}

bx_status bx_http_guard_new(const bx_http_guard_conf *conf, const char *metric_prefix,
                            bx_http_guard **out, bx_error *err)
{
    *out = NULL;
    if (conf->max_connections < 1 || conf->max_per_client < 1 || conf->header_timeout_ms < 1 ||
        conf->body_timeout_ms < 1 || conf->body_min_rate < 1 || conf->threads < 1)
        return BX_ERR(err, BX_EINVAL, "HTTP guard: every limit must be at least 1");
    bx_http_guard *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    g->conf = *conf;
    g->metrics = metrics_for(metric_prefix);
    if (g->metrics == NULL) {
        free(g);
        return BX_ERR(err, BX_EINVAL, "HTTP guard: too many metric prefixes (%s)", metric_prefix);
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_mutex_init(&g->stop_lock, NULL);
    bx_cond_init_monotonic(&g->stop_cond);
    /* libmicrohttpd's limit sits above the guard's so that the accept policy is asked (a daemon
     * at its limit stops accepting); a pool splits it among its threads. */
    unsigned limit = (unsigned)((conf->max_connections + 64) * conf->threads);
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_connection, g},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)conf->max_per_client, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)BX_HTTP_GUARD_CONNECTION_MEMORY, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 60, NULL},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, g},
        {MHD_OPTION_END, 0, NULL},
    };
    _Static_assert(sizeof(options) <= sizeof(g->options), "room for the options");
    memcpy(g->options, options, sizeof(options));
    if (pthread_create(&g->sweeper, NULL, sweeper_main, g) != 0) {
        bx_http_guard_free(g);
        return BX_ERR(err, BX_EFATAL, "HTTP guard: cannot start its thread");
    }
    g->sweeper_started = true;
    *out = g;
    return BX_OK;
}

void bx_http_guard_free(bx_http_guard *g)
{
    if (g == NULL)
        return;
    if (g->sweeper_started) {
        pthread_mutex_lock(&g->stop_lock);
        g->stopping = true;
        pthread_cond_signal(&g->stop_cond);
        pthread_mutex_unlock(&g->stop_lock);
        pthread_join(g->sweeper, NULL);
    }
    /* the daemon is stopped: it told every close */
    pthread_mutex_destroy(&g->lock);
    pthread_mutex_destroy(&g->stop_lock);
    pthread_cond_destroy(&g->stop_cond);
    free(g);
}

struct MHD_OptionItem *bx_http_guard_options(bx_http_guard *g)
{
    return g->options;
}

void bx_http_guard_headers_in(struct MHD_Connection *conn)
{
    struct client *c = client_of(conn);
    if (c)
        atomic_store(&c->header_since, 0);
}

void bx_http_guard_body_begin(struct MHD_Connection *conn)
{
    struct client *c = client_of(conn);
    if (c) {
        atomic_store(&c->body_bytes, 0);
        atomic_store(&c->body_since, bx_monotonic_ms());
    }
}

void bx_http_guard_body_bytes(struct MHD_Connection *conn, size_t n)
{
    struct client *c = client_of(conn);
    if (c)
        atomic_fetch_add(&c->body_bytes, (long long)n);
}

void bx_http_guard_body_end(struct MHD_Connection *conn)
{
    struct client *c = client_of(conn);
    if (c)
        atomic_store(&c->body_since, 0);
}

void bx_http_guard_request_done(struct MHD_Connection *conn)
{
    struct client *c = client_of(conn);
    if (c) {
        atomic_store(&c->body_since, 0);
        atomic_store(&c->header_since, bx_monotonic_ms());
    }
}

long long bx_http_guard_connections(bx_http_guard *g)
{
    return atomic_load(&g->nclients);
}

bx_status bx_http_daemon_start(bx_http_guard *g, const bx_http_daemon_conf *conf, bx_http_daemon *d,
                               bx_error *err)
{
    *d = (bx_http_daemon){0};
    if (conf->tls) {
        d->cert_pem = bx_tls_read_pem(conf->tls_cert, err);
        d->key_pem = d->cert_pem ? bx_tls_read_pem(conf->tls_key, err) : NULL;
        if (d->key_pem == NULL) {
            bx_http_daemon_stop(d);
            return BX_EINVAL;
        }
    }
    /* the options that depend on the call, as arrays (an empty one adds nothing) */
    struct MHD_OptionItem pool[] = {
        {conf->threads ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)conf->threads,
         NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)BX_TLS_GNUTLS_PRIORITIES},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, d->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, d->key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    if (!conf->tls)
        tls[0].option = MHD_OPTION_END;
    /* The guard closes connections past its caps and deadlines. */
    d->daemon = MHD_start_daemon(
        conf->flags | (conf->tls ? MHD_USE_TLS : 0), 0, bx_http_guard_accept, g, conf->handler,
        conf->handler_arg, MHD_OPTION_SOCK_ADDR, conf->addr, MHD_OPTION_NOTIFY_COMPLETED,
        conf->completed, conf->completed_arg, MHD_OPTION_ARRAY, bx_http_guard_options(g),
        MHD_OPTION_ARRAY, pool, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (d->daemon == NULL) {
        bx_http_daemon_stop(d);
        return BX_ERR(err, BX_EIO, "cannot listen on %s%s", conf->listen,
                      conf->tls ? " with TLS (check the certificate and key)" : "");
    }
    return BX_OK;
}

void bx_http_daemon_stop(bx_http_daemon *d)
{
    if (d->daemon)
        MHD_stop_daemon(d->daemon);
    free(d->cert_pem);
    free(d->key_pem);
    *d = (bx_http_daemon){0};
}
