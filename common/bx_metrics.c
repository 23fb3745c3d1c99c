/* bx_metrics: metric registry and the /healthz and /metrics endpoint (libmicrohttpd). */
#include "bx_metrics.h"
#include "bx_log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static bx_metric *registry_head;

void bx_metric_register(bx_metric *m)
{
    pthread_mutex_lock(&registry_lock);
    for (bx_metric *it = registry_head; it; it = it->next)
        if (it == m) {
            pthread_mutex_unlock(&registry_lock);
            return;
        }
    m->next = registry_head;
    registry_head = m;
    pthread_mutex_unlock(&registry_lock);
}

bx_status bx_metrics_render(bx_buf *out)
{
    bx_status s = BX_OK;
    pthread_mutex_lock(&registry_lock);
    for (bx_metric *m = registry_head; m && s == BX_OK; m = m->next) {
        size_t base = strcspn(m->name, "{");
        /* HELP and TYPE once per family: only when no earlier-registered sibling printed them. */
        bool first = true;
        for (bx_metric *o = m->next; o; o = o->next)
            if (strncmp(o->name, m->name, base) == 0 && strcspn(o->name, "{") == base)
                first = false;
        if (first)
            s = bx_buf_printf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)base, m->name, m->help,
                              (int)base, m->name, m->type);
        IFOK(s, bx_buf_printf(out, "%s %lld\n", m->name, atomic_load(&m->value)));
    }
    pthread_mutex_unlock(&registry_lock);
    return s;
}

struct bx_metrics_server {
    struct MHD_Daemon *daemon;
    bx_health_fn *health;
    void *arg;
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *type,
                               char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    bx_metrics_server *srv = cls;
    if (strcmp(method, "GET") != 0)
        return respond(conn, 405, "text/plain", strdup("method not allowed\n"), 19);
    if (strcmp(url, "/healthz") == 0) {
        char reason[200] = "ok";
        bool ok = srv->health == NULL || srv->health(srv->arg, reason, sizeof(reason));
        bx_buf b;
        bx_buf_init(&b, 4096);
        if (bx_buf_printf(&b, "%s\n", ok ? "ok" : reason) != BX_OK)
            return MHD_NO;
        size_t len = b.len;
        return respond(conn, ok ? 200 : 503, "text/plain", bx_buf_steal(&b), len);
    }
    if (strcmp(url, "/metrics") == 0) {
        bx_buf b;
        bx_buf_init(&b, 1 << 20);
        if (bx_metrics_render(&b) != BX_OK) {
            bx_buf_free(&b);
            return MHD_NO;
        }
        size_t len = b.len;
        return respond(conn, 200, "text/plain; version=0.0.4", bx_buf_steal(&b), len);
    }
    return respond(conn, 404, "text/plain", strdup("not found\n"), 10);
}

bx_status bx_parse_listen(const char *listen, struct sockaddr_in *out, bx_error *err)
{
    const char *colon = strrchr(listen, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
        return BX_ERR(err, BX_EINVAL, "listen address \"%s\": expected host:port", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return BX_ERR(err, BX_EINVAL, "listen address \"%s\": bad port", listen);
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &out->sin_addr) != 1)
        return BX_ERR(err, BX_EINVAL, "listen address \"%s\": bad IPv4 host", listen);
    return BX_OK;
}

bx_status bx_metrics_server_start(const char *listen, bx_health_fn *health, void *arg,
                                  bx_metrics_server **out, bx_error *err)
{
    struct sockaddr_in addr;
    bx_status s = bx_parse_listen(listen, &addr, err);
    if (s != BX_OK)
        return s;
    bx_metrics_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return BX_ERR(err, BX_ENOMEM, "metrics server: out of memory");
    srv->health = health;
    srv->arg = arg;
    srv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                                   NULL, handle, srv, MHD_OPTION_SOCK_ADDR, &addr,
                                   MHD_OPTION_CONNECTION_LIMIT, 64, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        free(srv);
        return BX_ERR(err, BX_EIO, "metrics server: cannot listen on %s", listen);
    }
    *out = srv;
    return BX_OK;
}

void bx_metrics_server_stop(bx_metrics_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}

bool bx_health_of_flag(atomic_bool *healthy, const char *what, char *reason, size_t size)
{
    if (atomic_load(healthy))
        return true;
    snprintf(reason, size, "%s failed; retrying", what);
    return false;
}
