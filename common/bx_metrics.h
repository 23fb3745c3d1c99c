/* bx_metrics: process counters and gauges, served as Prometheus text with /healthz on a small
 * HTTP endpoint. */
#ifndef BX_METRICS_H
#define BX_METRICS_H

#include "bx_buf.h"
#include "bx_status.h"

#include <stdatomic.h>
#include <stdbool.h>

typedef struct bx_metric {
    const char *name; /* "bx_ingest_records_total{result=\"accepted\"}" */
    const char *help; /* one line */
    const char *type; /* "counter" or "gauge" */
    atomic_llong value;
    struct bx_metric *next;
} bx_metric;

/* Registers m (borrowed for the life of the process; use a static). Thread-safe. */
void bx_metric_register(bx_metric *m);
static inline void bx_metric_add(bx_metric *m, long long n)
{
    atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}
static inline void bx_metric_set(bx_metric *m, long long n)
{
    atomic_store_explicit(&m->value, n, memory_order_relaxed);
}
/* Appends every registered metric in the Prometheus text format. */
bx_status bx_metrics_render(bx_buf *out) BX_MUSTCHECK;

/* Returns true when the service is healthy; writes a short reason otherwise. */
typedef bool(bx_health_fn)(void *arg, char *reason, size_t size);
/* A consumer service's answer from its flag: true while *healthy, else false with the reason
 * "<what> failed; retrying" ("the last batch"). */
bool bx_health_of_flag(atomic_bool *healthy, const char *what, char *reason, size_t size);

typedef struct bx_metrics_server bx_metrics_server;
/* Serves GET /healthz (200 "ok" or 503 with the reason) and GET /metrics on listen ("host:port").
 * health may be NULL (always healthy). */
bx_status bx_metrics_server_start(const char *listen, bx_health_fn *health, void *arg,
                                  bx_metrics_server **out, bx_error *err) BX_MUSTCHECK;
void bx_metrics_server_stop(bx_metrics_server *s);

/* Splits "host:port" into a sockaddr for a listening socket. */
struct sockaddr_in;
bx_status bx_parse_listen(const char *listen, struct sockaddr_in *out, bx_error *err) BX_MUSTCHECK;

#endif
