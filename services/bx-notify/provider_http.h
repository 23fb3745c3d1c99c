/* provider_http: the one libcurl easy handle an HTTP adapter keeps (connections are reused), and
 * the line between "certainly not sent" and "may have been sent" when a request fails. Private to
 * bx-notify's provider*.c files. A handle serves one thread at a time. */
#ifndef BX_NOTIFY_PROVIDER_HTTP_H
#define BX_NOTIFY_PROVIDER_HTTP_H

#include "bx_buf.h"
#include "bx_status.h"

#include <stddef.h>

typedef struct provider_http provider_http;

typedef enum provider_http_fate {
    HTTP_ANSWERED,  /* an HTTP status came back (*status) */
    HTTP_NOT_SENT,  /* failed before the request could leave: no connection, no TLS */
    HTTP_MAYBE_SENT /* failed after the connection was up: the server may have the request */
} provider_http_fate;

/* timeout_ms bounds a whole request; ca_file (may be NULL) is copied. */
bx_status provider_http_new(long timeout_ms, const char *ca_file, provider_http **out,
                            bx_error *err) BX_MUSTCHECK;
void provider_http_free(provider_http *h);

/* Performs one request (method "GET" or "POST"; body only for POST; headers NULL-ended, may be
 * NULL). The answer's body is in *body (borrowed until the next call). reason gets curl's words
 * for a failure (never the request's content). */
provider_http_fate provider_http_do(provider_http *h, const char *method, const char *url,
                                    const char *const *headers, const char *body, size_t len,
                                    long *status, const bx_buf **answer, char *reason,
                                    size_t reason_size);

/* Percent-encodes s as RFC 3986 unreserved-only (A-Z a-z 0-9 - _ . ~ stay; space is %20, never
 * +), as Aliyun's signature and a query string need. */
bx_status provider_percent_encode(bx_buf *b, const char *s) BX_MUSTCHECK;

#endif
