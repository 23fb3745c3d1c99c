/* bx-console server: libmicrohttpd with a pool of threads, each holding its own PostgreSQL and
 * Redis connection; every request is routed, its fields checked, its session and CSRF token
 * verified, and its reply rendered inside the layout. */
#include "server.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_hex.h"
#include "bx_http_guard.h"
#include "bx_json.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_tls.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SESSION_COOKIE "bx_session"
#define PRE_COOKIE     "bx_pre" /* CSRF token of pages before sign-in (double submit) */
#define PAGE_MAX       (1 << 20)
#define PAGE_WARN      (60 * 1024)
#define CSS_MAX        (64 * 1024)
#define PATH_MAX_LEN   512
/* What a POST before sign-in may send (the sign-in and activation forms): an unauthenticated
 * connection holds at most this and its headers (BX_HTTP_GUARD_CONNECTION_MEMORY). */
#define PUBLIC_FORM_MAX (8 * 1024)

struct console_server {
    console_server_conf conf;
    bx_producer *producer;
    bx_http_daemon http;  /* the daemon and the PEM text it serves from */
    bx_http_guard *guard; /* header and body deadlines, connection caps */
    tmpl_lib *lib;
    char *css;
    size_t css_len;
    bool tls;
    void *pages;
    pthread_key_t worker_key;
    bool key_made;
    atomic_long db_failures;
};

/* One pool thread's connections, made on first use and closed when the thread ends. */
struct worker {
    PGconn *db;
    bx_redis *redis; /* one server or a Redis Cluster */
    long long redis_retry_at;
};

static bx_metric m_requests = {"bx_console_requests_total", "HTTP requests answered", "counter", 0,
                               NULL};
static bx_metric m_refused = {"bx_console_csrf_refused_total",
                              "POST requests refused for a missing or wrong CSRF token", "counter",
                              0, NULL};
static bx_metric m_errors = {"bx_console_errors_total", "requests answered 500 or 503", "counter",
                             0, NULL};
static bx_metric m_unauthenticated = {"bx_console_unauthenticated_total",
                                      "POST requests refused on their headers for want of a "
                                      "session, body unread",
                                      "counter", 0, NULL};

const identity_conf *console_server_identity(const console_server *srv)
{
    return &srv->conf.identity;
}

static void worker_free(void *arg)
{
    struct worker *w = arg;
    if (w == NULL)
        return;
    if (w->db)
        PQfinish(w->db);
    bx_redis_close(w->redis);
    free(w);
}

static struct worker *worker_of(console_server *srv)
{
    struct worker *w = pthread_getspecific(srv->worker_key);
    if (w == NULL) {
        w = calloc(1, sizeof(*w));
        if (w == NULL || pthread_setspecific(srv->worker_key, w) != 0) {
            free(w);
            return NULL;
        }
    }
    bx_error err = {0};
    if (w->db && bx_pg_is_broken(w->db)) {
        PQfinish(w->db);
        w->db = NULL;
    }
    if (w->db == NULL && bx_pg_connect(srv->conf.pg_url, 2000, &w->db, &err) != BX_OK) {
        bx_log_warn("PostgreSQL: %s", err.msg);
        w->db = NULL;
    }
    if (w->redis && bx_redis_broken(w->redis)) {
        bx_redis_close(w->redis);
        w->redis = NULL;
    }
    long long now = bx_monotonic_ms();
    if (w->redis == NULL && now >= w->redis_retry_at) {
        if (bx_redis_open(srv->conf.redis_url, 300, &w->redis, &err) != BX_OK) {
            bx_log_warn("Redis: %s", err.msg);
            w->redis = NULL;
            w->redis_retry_at = now + 5000;
        }
    }
    return w;
}

/* ---- text checks, forms, routes ---- */

bool console_text_ok(const char *s, size_t len)
{
    if (!bx_utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
            return false;
    }
    return true;
}

/* Decodes src[0..len) (+ is a space) into dst; returns the decoded length or -1. */
static long url_decode(const char *src, size_t len, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[o++] = ' ';
        } else if (src[i] == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = bx_hex_digit(src[i + 1]), lo = bx_hex_digit(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
    return (long)o;
}

bx_status console_form_parse(const char *body, size_t len, console_field *fields, size_t max,
                             size_t *nfields, char **block, bx_error *err)
{
    *nfields = 0;
    *block = NULL;
    if (len == 0)
        return BX_OK;
    /* decoded text is never longer than the encoded: one block of len + a NUL per part */
    char *out = malloc(2 * len + 2);
    if (out == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    size_t used = 0, n = 0;
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *part_end = amp ? amp : end;
        if (part_end > p) {
            if (n == max) {
                free(out);
                return BX_ERR(err, BX_EINVAL, "more than %zu form fields", max);
            }
            const char *eq = memchr(p, '=', (size_t)(part_end - p));
            const char *name_end = eq ? eq : part_end;
            const char *value = eq ? eq + 1 : part_end;
            char *name_out = out + used;
            long nlen = url_decode(p, (size_t)(name_end - p), name_out);
            if (nlen < 0 || nlen == 0 || nlen > 64 || !console_text_ok(name_out, (size_t)nlen)) {
                free(out);
                return BX_ERR(err, BX_EINVAL, "a form field's name is not valid");
            }
            used += (size_t)nlen + 1;
            char *value_out = out + used;
            long vlen = url_decode(value, (size_t)(part_end - value), value_out);
            if (vlen < 0 || !console_text_ok(value_out, (size_t)vlen)) {
                BX_ERR(err, BX_EINVAL, "form field %s: not valid UTF-8 text", name_out);
                free(out);
                return BX_EINVAL;
            }
            if (vlen > CONSOLE_MAX_FIELD_VALUE) {
                BX_ERR(err, BX_EINVAL, "form field %s: longer than %d bytes", name_out,
                       CONSOLE_MAX_FIELD_VALUE);
                free(out);
                return BX_EINVAL;
            }
            used += (size_t)vlen + 1;
            fields[n].name = name_out;
            fields[n].value = value_out;
            n++;
        }
        p = amp ? amp + 1 : end;
    }
    *nfields = n;
    *block = out;
    return BX_OK;
}

static bool segment_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return !(len <= 2 && s[0] == '.' && (len == 1 || s[1] == '.'));
}

bool console_route_match(const char *pattern, const char *path, const char **params,
                         size_t *nparams, char *storage, size_t storage_size)
{
    *nparams = 0;
    size_t used = 0;
    const char *p = pattern, *q = path;
    while (*p && *q) {
        if (*p != '/' || *q != '/')
            return false;
        p++;
        q++;
        const char *pe = strchr(p, '/'), *qe = strchr(q, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        size_t qlen = qe ? (size_t)(qe - q) : strlen(q);
        if (plen > 0 && p[0] == ':') {
            if (!segment_ok(q, qlen) || *nparams == CONSOLE_MAX_PARAMS ||
                used + qlen + 1 > storage_size)
                return false;
            memcpy(storage + used, q, qlen);
            storage[used + qlen] = '\0';
            params[(*nparams)++] = storage + used;
            used += qlen + 1;
        } else if (plen != qlen || memcmp(p, q, plen) != 0) {
            return false;
        }
        p += plen;
        q += qlen;
    }
    return *p == '\0' && *q == '\0';
}

/* ---- answers ---- */

static void add_common_headers(console_server *srv, struct MHD_Response *r)
{
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                            "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                            "base-uri 'none'");
    if (srv->tls)
        MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
}

static enum MHD_Result send_body(console_server *srv, struct MHD_Connection *conn, unsigned status,
                                 const char *type, char *body, size_t len, const console_reply *rep)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    if (type)
        MHD_add_response_header(r, "Content-Type", type);
    add_common_headers(srv, r);
    if (rep) {
        if (rep->file_name[0] && type && strcmp(type, rep->file_type ? rep->file_type : "") == 0) {
            char disposition[192];
            snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"",
                     rep->file_name);
            MHD_add_response_header(r, "Content-Disposition", disposition);
        }
        if (rep->redirect[0])
            MHD_add_response_header(r, "Location", rep->redirect);
        for (int i = 0; i < 2; i++)
            if (rep->cookie[i][0])
                MHD_add_response_header(r, "Set-Cookie", rep->cookie[i]);
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    bx_metric_add(&m_requests, 1);
    if (status >= 500)
        bx_metric_add(&m_errors, 1);
    return ret;
}

static enum MHD_Result send_plain(console_server *srv, struct MHD_Connection *conn, unsigned status,
                                  const char *text)
{
    char *body = strdup(text);
    if (body == NULL)
        return MHD_NO;
    return send_body(srv, conn, status, "text/plain; charset=utf-8", body, strlen(body), NULL);
}

static const char *status_message(unsigned status)
{
    switch (status) {
    case 400:
        return "请求无法识别，请返回重试。";
    case 403:
        return "页面已过期或请求无效，请返回刷新后重试。";
    case 404:
        return "没有找到这个页面。";
    case 405:
        return "不支持这种请求。";
    case 409:
        return "内容已被他人修改，请刷新后重试。";
    case 413:
        return "提交的内容太长。";
    case 422:
        return "提交的内容有误。";
    case 503:
        return "系统暂时无法使用，请稍后再试。";
    default:
        return "系统出错了，请稍后再试。";
    }
}

/* Everything the core knows about one request: made when its headers are in (begin), freed when
 * it ends (request_done). */
struct exchange {
    console_server *srv;
    struct MHD_Connection *conn;
    console_request req;
    console_reply rep;
    identity_session session;
    console_person person;
    bool has_session;
    char pre_token[CONSOLE_TOKEN_LEN + 1]; /* before sign-in: the double-submit token */
    bool set_pre;
    char client_addr[INET6_ADDRSTRLEN];
    console_field fields[CONSOLE_MAX_FIELDS];
    size_t nquery;
    char *query_block;
    char *form_block;
    char param_storage[4 * 68];
    bool query_bad;
    const console_route *route;
    /* The body: at most body_max bytes are kept (a form signed in, a smaller one before sign-in,
     * nothing of a GET); past it the rest is dropped as it comes and the answer is 413. */
    bx_buf body;
    size_t body_max;
    bool too_large;
};

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct exchange *x = cls;
    if (x->nquery == CONSOLE_MAX_FIELDS / 2) {
        x->query_bad = true;
        return MHD_NO;
    }
    if (value == NULL)
        value = "";
    size_t klen = strlen(key), vlen = strlen(value);
    if (klen == 0 || klen > 64 || vlen > CONSOLE_MAX_FIELD_VALUE || !console_text_ok(key, klen) ||
        !console_text_ok(value, vlen)) {
        x->query_bad = true;
        return MHD_NO;
    }
    x->fields[x->nquery].name = key; /* libmicrohttpd keeps them until the request ends */
    x->fields[x->nquery].value = value;
    x->nquery++;
    return MHD_YES;
}

/* Renders the reply (page in layout, error page or redirect) and queues it. */
static enum MHD_Result answer(struct exchange *x)
{
    console_server *srv = x->srv;
    console_reply *rep = &x->rep;
    if (x->set_pre && !rep->cookie[1][0])
        snprintf(rep->cookie[1], sizeof(rep->cookie[1]),
                 PRE_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict", x->pre_token);
    if (rep->redirect[0]) {
        if (rep->flash[0] && x->has_session) {
            bx_error err = {0};
            if (identity_flash(x->req.db, x->session.id, rep->flash, &err) != BX_OK)
                bx_log_warn("flash: %s", err.msg);
        }
        return send_body(srv, x->conn, 303, "text/plain; charset=utf-8", strdup(""), 0, rep);
    }
    if (rep->file_body && rep->status == 200 && rep->file_type) {
        char *body = rep->file_body;
        rep->file_body = NULL; /* send_body frees it */
        return send_body(srv, x->conn, 200, rep->file_type, body, rep->file_len, rep);
    }
    bx_buf page, doc;
    bx_buf_init(&page, PAGE_MAX);
    bx_buf_init(&doc, PAGE_MAX);
    bx_error err = {0};
    bx_status s = BX_OK;
    const char *tname = rep->template_name;
    if (tname == NULL || (rep->status >= 400 && !tmpl_lib_has(srv->lib, tname))) {
        tname = "error";
        tmpl_put(rep->ctx, "message", rep->message[0] ? rep->message : status_message(rep->status));
        if (!rep->title[0])
            snprintf(rep->title, sizeof(rep->title), "%s",
                     rep->status == 404 ? "没有找到" : "出错了");
        tmpl_put(rep->ctx, "title", rep->title);
    }
    s = tmpl_render(srv->lib, tname, rep->ctx, &page, &err);
    tmpl_ctx *layout = tmpl_ctx_new();
    if (s == BX_OK) {
        if (layout == NULL)
            s = BX_ERR(&err, BX_ENOMEM, "out of memory");
        tmpl_put(layout, "title", rep->title[0] ? rep->title : "保学");
        tmpl_put(layout, "csrf", x->req.csrf_token);
        if (x->req.person) {
            tmpl_put_bool(layout, "signed_in", true);
            tmpl_put(layout, "me_name", x->person.name);
            tmpl_put(layout, "me_role", console_role_label(x->person.role));
        }
        const char *flash = x->has_session && x->session.flash[0] ? x->session.flash : rep->flash;
        tmpl_put(layout, "flash", flash);
        tmpl_put_html(layout, "body", page.data ? page.data : "");
        IFOK(s, tmpl_render(srv->lib, "layout", layout, &doc, &err));
    }
    tmpl_ctx_free(layout);
    bx_buf_free(&page);
    if (s != BX_OK) {
        bx_log_error("render %s: %s", tname, err.msg);
        bx_buf_free(&doc);
        return send_plain(srv, x->conn, 500, status_message(500));
    }
    if (doc.len > PAGE_WARN)
        bx_log_warn("page %s is %zu bytes (more than 60 KB)", tname, doc.len);
    size_t len = doc.len;
    char *body = bx_buf_steal(&doc);
    return send_body(srv, x->conn, rep->status, "text/html; charset=utf-8", body, len, rep);
}

static const console_route *find_route(const char *method, const char *path, const char **params,
                                       size_t *nparams, char *storage, size_t storage_size,
                                       bool *path_known)
{
    /* the pages' first, so they may own "/" (the core's home is the fallback) */
    const console_route *tables[] = {console_page_routes, console_core_routes};
    const size_t counts[] = {console_page_nroutes, console_core_nroutes};
    *path_known = false;
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < counts[t]; i++) {
            const console_route *r = &tables[t][i];
            if (r->pattern == NULL ||
                !console_route_match(r->pattern, path, params, nparams, storage, storage_size))
                continue;
            *path_known = true;
            if (strcmp(r->method, method) == 0)
                return r;
        }
    return NULL;
}

static void client_address(struct MHD_Connection *conn, char *out, size_t size)
{
    snprintf(out, size, "unknown");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)size);
}

/* A request's exchange, its request and reply started (the query, the route and the session
 * come after); NULL when memory runs out. */
static struct exchange *exchange_new(console_server *srv, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
    struct exchange *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->srv = srv;
    x->conn = conn;
    console_request *req = &x->req;
    console_reply *rep = &x->rep;
    req->method = method;
    req->path = url;
    req->server = srv;
    req->pages = srv->pages;
    req->producer = srv->producer;
    req->now = bx_clock_now();
    client_address(conn, x->client_addr, sizeof(x->client_addr));
    req->client_addr = x->client_addr;
    req->csrf_token = "";
    req->session_id = "";
    rep->status = 200;
    rep->ctx = tmpl_ctx_new();
    bx_buf_init(&x->body, CONSOLE_MAX_FORM);
    return x;
}

/* The session, if the cookie names one in force (loaded once: it hands over the flash), else the
 * pre-session token (a new one when the cookie has none). False when PostgreSQL did not answer. */
static bool load_session(struct exchange *x, struct worker *w)
{
    console_request *req = &x->req;
    bx_error err = {0};
    const char *cookie = MHD_lookup_connection_value(x->conn, MHD_COOKIE_KIND, SESSION_COOKIE);
    if (cookie) {
        bx_status s = identity_session_load(w->db, cookie, req->now, &x->srv->conf.identity,
                                            &x->person, &x->session, &err);
        if (s == BX_OK) {
            x->has_session = true;
            req->person = &x->person;
            req->csrf_token = x->session.csrf;
        } else if (s != BX_ENOTFOUND) {
            bx_log_error("session: %s", err.msg);
            return false;
        }
    }
    if (!x->has_session) {
        const char *pre = MHD_lookup_connection_value(x->conn, MHD_COOKIE_KIND, PRE_COOKIE);
        if (console_token_valid(pre)) {
            snprintf(x->pre_token, sizeof(x->pre_token), "%s", pre);
        } else {
            console_token_new(x->pre_token);
            x->set_pre = true;
        }
        req->csrf_token = x->pre_token;
    }
    return true;
}

/* The headers are in. What needs no body is decided now, before a byte of it is read: the path,
 * the method, the session; a POST that needs a person and has no session is refused 403, a POST
 * before sign-in without the pre-session cookie its CSRF token must match is refused 403, and a
 * Content-Length over what may be kept 413. Answered here, the body is never read. */
static enum MHD_Result begin(console_server *srv, struct MHD_Connection *conn, const char *url,
                             const char *method, void **state)
{
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return send_plain(srv, conn, 405, status_message(405));
    size_t url_len = strlen(url);
    if (url_len > PATH_MAX_LEN || !console_text_ok(url, url_len))
        return send_plain(srv, conn, 400, status_message(400));
    if (strcmp(url, "/healthz") == 0)
        return send_plain(srv, conn, 200, "ok\n");
    if (strcmp(url, "/static/console.css") == 0 && strcmp(method, "GET") == 0) {
        char *css = malloc(srv->css_len + 1);
        if (css == NULL)
            return MHD_NO;
        memcpy(css, srv->css, srv->css_len + 1);
        return send_body(srv, conn, 200, "text/css; charset=utf-8", css, srv->css_len, NULL);
    }

    struct exchange *x = exchange_new(srv, conn, url, method);
    if (x == NULL)
        return MHD_NO;
    *state = x; /* request_done frees it */
    console_request *req = &x->req;
    console_reply *rep = &x->rep;
    bool post = strcmp(method, "POST") == 0, path_known = false;

    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, x);
    if (x->query_bad || rep->ctx == NULL)
        return send_plain(srv, conn, 400, status_message(400));
    req->query = x->fields;
    req->nquery = x->nquery;
    x->route = find_route(method, url, req->params, &req->nparams, x->param_storage,
                          sizeof(x->param_storage), &path_known);
    if (x->route == NULL) {
        rep->status = path_known ? 405 : 404;
        return answer(x);
    }
    struct worker *w = worker_of(srv);
    if (w == NULL || w->db == NULL) {
        atomic_fetch_add(&srv->db_failures, 1);
        return send_plain(srv, conn, 503, status_message(503));
    }

    if (!load_session(x, w))
        return send_plain(srv, conn, 503, status_message(503));
    if (post && x->route->needs_person && req->person == NULL) {
        bx_metric_add(&m_unauthenticated, 1);
        rep->status = 403;
        return answer(x);
    }
    if (post && x->set_pre) { /* a fresh pre-session token was never in any form */
        bx_metric_add(&m_refused, 1);
        bx_log_warn("POST %s refused: missing or wrong CSRF token (nobody signed in)", url);
        rep->status = 403;
        return answer(x);
    }
    x->body_max = !post ? 0 : req->person ? CONSOLE_MAX_FORM : PUBLIC_FORM_MAX;
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (length && strtoll(length, NULL, 10) > (long long)x->body_max && post)
        return send_plain(srv, conn, 413, status_message(413));
    bx_http_guard_body_begin(conn);
    return MHD_YES;
}

/* Runs the route's handler on the request's connection (left idle after it): a failure becomes a
 * 503 (database or transient) or 500 answer, as does a POST answering neither page nor redirect. */
static void run_handler(struct exchange *x)
{
    console_request *req = &x->req;
    console_reply *rep = &x->rep;
    const char *method = req->method;
    const console_route *route = x->route;
    bx_error err = {0};
    long long started = bx_monotonic_ms();
    bx_status s = route->handler(req, rep, &err);
    if (PQtransactionStatus(req->db) != PQTRANS_IDLE)
        bx_pg_rollback(req->db);
    if (s != BX_OK) {
        bx_log_error("%s %s (%s): %s", method, route->pattern,
                     req->person ? req->person->staff_id : "-", err.msg);
        rep->status = s == BX_EIO || s == BX_ETRANSIENT ? 503 : 500;
        rep->template_name = NULL;
        rep->redirect[0] = '\0';
        rep->message[0] = '\0';
    } else if (strcmp(method, "POST") == 0 && rep->status == 200 && !rep->redirect[0] &&
               rep->template_name == NULL) {
        rep->status = 500;
        bx_log_error("POST %s answered neither a page nor a redirect", route->pattern);
    }
    bx_log_debug("%s %s %u %lld ms", method, route->pattern, rep->redirect[0] ? 303 : rep->status,
                 bx_monotonic_ms() - started);
}

/* The body is in: the form, the CSRF token, the handler, the answer. */
static enum MHD_Result serve(struct exchange *x)
{
    console_server *srv = x->srv;
    struct MHD_Connection *conn = x->conn;
    console_request *req = &x->req;
    console_reply *rep = &x->rep;
    const char *method = req->method, *url = req->path;
    const console_route *route = x->route;
    bx_error err = {0};
    if (x->too_large)
        return send_plain(srv, conn, 413, status_message(413));
    if (strcmp(method, "POST") == 0 && x->body.len > 0) {
        const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (type == NULL || strncasecmp(type, "application/x-www-form-urlencoded", 33) != 0)
            return send_plain(srv, conn, 415, "只接受表单提交。");
        size_t nform = 0;
        if (console_form_parse(x->body.data, x->body.len, x->fields + x->nquery,
                               CONSOLE_MAX_FIELDS - x->nquery, &nform, &x->form_block,
                               &err) != BX_OK) {
            bx_log_info("%s %s: 400: %s", method, url, err.msg);
            return send_plain(srv, conn, 400, status_message(400));
        }
        req->form = x->fields + x->nquery;
        req->nform = nform;
    }
    /* this thread's connections again: another request on it may have made new ones */
    struct worker *w = worker_of(srv);
    if (w == NULL || w->db == NULL) {
        atomic_fetch_add(&srv->db_failures, 1);
        return send_plain(srv, conn, 503, status_message(503));
    }
    req->db = w->db;
    req->redis = w->redis;
    char session_id_text[24] = "";
    if (x->has_session) {
        snprintf(session_id_text, sizeof(session_id_text), "%lld", x->session.id);
        req->session_id = session_id_text;
    }
    if (strcmp(method, "POST") == 0) {
        const char *sent = console_form(req, "csrf");
        req->csrf_ok = !x->set_pre && console_token_equal(sent, req->csrf_token);
    }
    if (route->needs_person && req->person == NULL) {
        if (strcmp(method, "GET") == 0) {
            snprintf(rep->redirect, sizeof(rep->redirect), "/login");
        } else {
            rep->status = 403;
        }
        return answer(x);
    }
    if (strcmp(method, "POST") == 0 && !req->csrf_ok) { /* every POST: check_routes */
        bx_metric_add(&m_refused, 1);
        bx_log_warn("POST %s refused: missing or wrong CSRF token (%s)", url,
                    req->person ? req->person->staff_id : "nobody signed in");
        rep->status = 403;
        return answer(x);
    }
    tmpl_put(rep->ctx, "csrf", req->csrf_token);
    if (req->person) {
        tmpl_put(rep->ctx, "me_name", req->person->name);
        tmpl_put(rep->ctx, "me_role", console_role_label(req->person->role));
        tmpl_put(rep->ctx, "me_staff_id", req->person->staff_id);
    }
    run_handler(x);
    enum MHD_Result ret = answer(x);
    req->session_id = ""; /* session_id_text ends here */
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    console_server *srv = cls;
    struct exchange *x = *con_cls;
    if (x == NULL) {
        bx_http_guard_headers_in(conn);
        return begin(srv, conn, url, method, con_cls);
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        bx_http_guard_body_bytes(conn, n);
        /* past what may be kept, the rest is dropped as it comes (at the minimum rate still):
         * libmicrohttpd answers only on the headers or once the body is in */
        if (x->body_max > 0 && !x->too_large && /* a GET's body is dropped */
            (x->body.len + n > x->body_max || bx_buf_append(&x->body, upload_data, n) != BX_OK)) {
            x->too_large = true;
            bx_buf_free(&x->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    bx_http_guard_body_end(conn);
    return serve(x);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    bx_http_guard_request_done(conn); /* the next request's header has its deadline from now */
    struct exchange *x = *con_cls;
    if (x) {
        free(x->rep.file_body);
        tmpl_ctx_free(x->rep.ctx);
        free(x->form_block);
        bx_buf_free(&x->body);
        free(x);
        *con_cls = NULL;
    }
}

bool console_server_healthy(void *server, char *reason, size_t size)
{
    return server != NULL;
}

static bx_status check_routes(bx_error *err)
{
    const console_route *tables[] = {console_core_routes, console_page_routes};
    const size_t counts[] = {console_core_nroutes, console_page_nroutes};
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < counts[t]; i++) {
            const console_route *r = &tables[t][i];
            if (r->pattern == NULL || r->method == NULL || r->handler == NULL)
                return BX_ERR(err, BX_EINVAL, "route %zu of table %zu is incomplete", i, t);
            if (strcmp(r->method, "POST") == 0 && !r->needs_csrf)
                return BX_ERR(err, BX_EINVAL, "POST %s: every POST route needs its CSRF token",
                              r->pattern);
            if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0)
                return BX_ERR(err, BX_EINVAL, "%s %s: only GET and POST", r->method, r->pattern);
        }
    return BX_OK;
}

bx_status console_server_start(const console_server_conf *conf, bx_producer *producer,
                               console_server **out, bx_error *err)
{
    struct sockaddr_in addr;
    bool tls = false;
    bx_status s = bx_tls_listen("BX_CONSOLE_LISTEN", conf->listen, conf->tls_cert, conf->tls_key,
                                conf->insecure, &addr, &tls, err);
    if (s != BX_OK)
        return s;
    s = check_routes(err);
    IFOK(s, console_auth_init(err));
    if (s != BX_OK)
        return s;
    console_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    srv->conf = *conf;
    srv->producer = producer;
    srv->tls = tls;
    bx_metric_register(&m_requests);
    bx_metric_register(&m_refused);
    bx_metric_register(&m_errors);
    bx_metric_register(&m_unauthenticated);
    if (pthread_key_create(&srv->worker_key, worker_free) != 0)
        s = BX_ERR(err, BX_EFATAL, "pthread_key_create failed");
    else
        srv->key_made = true;
    IFOK(s, tmpl_lib_load(conf->templates, &srv->lib, err));
    if (s == BX_OK && !(tmpl_lib_has(srv->lib, "layout") && tmpl_lib_has(srv->lib, "error")))
        s = BX_ERR(err, BX_EINVAL, "%s: layout.html and error.html are required", conf->templates);
    if (s == BX_OK) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/console.css", conf->templates);
        bx_buf css;
        bx_buf_init(&css, CSS_MAX);
        s = bx_buf_read_file(&css, path, err);
        srv->css_len = css.len;
        srv->css = s == BX_OK ? bx_buf_steal(&css) : NULL;
        bx_buf_free(&css);
    }
    if (s == BX_OK) {
        console_pages_conf pc = {conf->pg_url, conf->redis_url, conf->score_policy};
        s = console_pages_new(&pc, &srv->pages, err);
    }
    if (s == BX_OK) {
        bx_http_guard_conf guard = conf->guard;
        guard.threads = conf->threads;
        s = bx_http_guard_new(&guard, "bx_console", &srv->guard, err);
    }
    if (s == BX_OK) {
        /* poll(), not epoll: a pool thread keeps the connections it accepts and serves them one
         * request at a time, and libmicrohttpd's epoll loop accepts up to ten waiting connections
         * in one go, so connections opened together (an office signing in at nine, a bench's
         * clients) crowded onto one or two threads while the others idled, and their requests
         * queued behind each other (bench/console: p95 four times the median). Its poll loop
         * accepts one connection a turn, and every idle thread takes its turn. */
        const bx_http_daemon_conf daemon = {
            .listen = conf->listen,
            .addr = &addr,
            .tls = tls,
            .tls_cert = conf->tls_cert,
            .tls_key = conf->tls_key,
            .flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG,
            .threads = (unsigned)conf->threads,
            .handler = handle,
            .handler_arg = srv,
            .completed = request_done,
            .completed_arg = srv,
        };
        s = bx_http_daemon_start(srv->guard, &daemon, &srv->http, err);
    }
    if (s != BX_OK) {
        console_server_stop(srv);
        return s;
    }
    bx_log_info("listening on %s://%s", tls ? "https" : "http", conf->listen);
    *out = srv;
    return BX_OK;
}

void console_server_stop(console_server *srv)
{
    if (srv == NULL)
        return;
    bx_http_daemon_stop(&srv->http); /* joins the pool: each thread's connections close */
    bx_http_guard_free(srv->guard);  /* after the daemon, whose callbacks use it */
    console_pages_free(srv->pages);
    tmpl_lib_free(srv->lib);
    free(srv->css);
    if (srv->key_made)
        pthread_key_delete(srv->worker_key);
    free(srv);
}
