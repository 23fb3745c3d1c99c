/* bx-ingest server: HTTP endpoints over libmicrohttpd, bearer credentials, registry reloads. */
#include "server.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_http_guard.h"
#include "bx_json.h"
#include "bx_log.h"
#include "bx_map.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_tls.h"
#include "dedup.h"
#include "ingest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct credential {
    char id[33];
    char school_id[BX_ID_MAX + 1];
    unsigned char hash[SHA256_DIGEST_LENGTH];
};

/* One loaded generation of the registry and credentials; replaced whole on reload. */
struct generation {
    bx_registry *registry;
    ingest_staff_dir *staff; /* who a record may name (the registry has no staff) */
    bx_map *credentials;
    struct credential *credential_list;
};

struct ingest_server {
    ingest_server_conf conf;
    bx_producer *producer;
    bx_http_daemon http;   /* the daemon and the PEM text it serves from */
    pthread_rwlock_t lock; /* readers validate; the reloader swaps the generation */
    struct generation gen;
    PGconn *admin_db;     /* reloads only (main thread) */
    dedup_batcher *dedup; /* remembered client event ids */
    bx_time_ms last_expiry;
    atomic_long waiting; /* requests suspended until PostgreSQL or Kafka answers */
    pthread_mutex_t waiting_lock;
    struct request *waiting_head; /* the suspended requests, for ingest_server_watch */
    /* The event loop: one thread runs libmicrohttpd (every call into it happens there), and
     * answers from other threads reach it as requests to resume, through `ready` and the wake
     * eventfd. */
    pthread_t loop;
    bool loop_started;
    int wake_fd, epoll_fd;
    pthread_mutex_t ready_lock;
    struct request *ready_head;
    atomic_bool stopping;
    bx_http_guard *guard;                        /* header and body deadlines, connection caps */
    long long unauth_logged_ms, unauth_unlogged; /* the unauthenticated log line's rate */
};

enum endpoint { EP_ATTENDANCE, EP_ROLLCALL, EP_LEAVE, EP_ACTIONS };
static const char *const endpoint_paths[] = {"/v1/attendance", "/v1/rollcall", "/v1/leave",
                                             "/v1/actions"};

/* Where a request is. No thread waits for PostgreSQL or Kafka: a request that must is suspended
 * (MHD_suspend_connection), and the answer's callback resumes it; libmicrohttpd then calls the
 * handler again, which goes on from the phase. */
enum phase {
    PH_UPLOAD,   /* the body arrives */
    PH_CHECK,    /* its client event ids are checked for duplicates (dedup thread) */
    PH_DELIVERY, /* its messages are with Kafka until each is acknowledged or failed */
    PH_REJECT    /* a request that could not be read: its dead letter is with Kafka */
};

struct request {
    enum endpoint endpoint;
    bx_buf body;
    bool too_large; /* past BX_HTTP_MAX_BODY: what more comes is dropped, then 413 */
    enum phase phase;
    ingest_server *srv;
    struct MHD_Connection *conn;
    char school_id[BX_ID_MAX + 1], credential_id[33];
    ingest_ctx ctx;
    ingest_batch batch;
    ingest_publishing pub;
    bx_delivery_wait *wait;
    bx_status checked;
    /* PH_REJECT: the answer given once the dead letter is acknowledged */
    unsigned code;
    const char *reason;
    char *message;
    bx_delivery_slot dlq_slot;
    /* while suspended: in the server's waiting list, since when, and whether what it waits for
     * has answered (its resume is then on its way) */
    struct request *wprev, *wnext;
    struct request *ready_next;
    long long since_ms;
    atomic_llong answered_ms; /* 0 until answered */
};

static bx_metric m_requests = {"bx_ingest_requests_total", "HTTP requests answered", "counter", 0,
                               NULL};
static bx_metric m_accepted = {"bx_ingest_records_total{outcome=\"accepted\"}",
                               "records by outcome", "counter", 0, NULL};
static bx_metric m_duplicate = {"bx_ingest_records_total{outcome=\"duplicate\"}",
                                "records by outcome", "counter", 0, NULL};
static bx_metric m_rejected = {"bx_ingest_records_total{outcome=\"rejected\"}",
                               "records by outcome", "counter", 0, NULL};
static bx_metric m_failed = {"bx_ingest_records_total{outcome=\"failed\"}", "records by outcome",
                             "counter", 0, NULL};
static bx_metric m_revision = {"bx_ingest_registry_revision", "registry revision in memory",
                               "gauge", 0, NULL};
static bx_metric m_students = {"bx_ingest_registry_students", "students in the registry copy",
                               "gauge", 0, NULL};
static bx_metric m_waiting = {"bx_ingest_requests_waiting",
                              "requests waiting for the duplicate check or Kafka's acknowledgement",
                              "gauge", 0, NULL};
static bx_metric m_unauthenticated = {"bx_ingest_unauthenticated_total",
                                      "requests refused 401 on their headers, body unread (never "
                                      "dead-lettered)",
                                      "counter", 0, NULL};
static void generation_free(struct generation *g)
{
    bx_registry_free(g->registry);
    ingest_staff_dir_free(g->staff);
    bx_map_free(g->credentials);
    free(g->credential_list);
    memset(g, 0, sizeof(*g));
}

static bx_status load_generation(PGconn *db, struct generation *g, bx_error *err)
{
    memset(g, 0, sizeof(*g));
    bx_status s = bx_registry_load(db, &g->registry, err);
    IFOK(s, ingest_staff_load(db, &g->staff, err));
    PGresult *res = NULL;
    IFOK(s, bx_pg_query(db,
                        "SELECT id, school_id, secret_hash FROM registry.credential "
                        "WHERE revoked_at IS NULL",
                        0, NULL, &res, err));
    if (s == BX_OK) {
        int n = PQntuples(res);
        g->credentials = bx_map_new();
        g->credential_list = calloc((size_t)n + 1, sizeof(*g->credential_list));
        if (g->credentials == NULL || g->credential_list == NULL)
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
        for (int i = 0; i < n && s == BX_OK; i++) {
            struct credential *c = &g->credential_list[i];
            snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(res, i, 0));
            snprintf(c->school_id, sizeof(c->school_id), "%s", PQgetvalue(res, i, 1));
            size_t len = 0;
            unsigned char *raw =
                PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
            if (raw && len == sizeof(c->hash))
                memcpy(c->hash, raw, sizeof(c->hash));
            PQfreemem(raw);
            s = bx_map_put(g->credentials, c->id, c);
        }
    }
    PQclear(res);
    if (s != BX_OK)
        generation_free(g);
    return s;
}

/* "Bearer bxk_<id>_<secret>" -> the credential, or NULL. Caller holds the read lock. The secret is
 * compared in constant time; which part was wrong is not told. */
static const struct credential *authenticate(ingest_server *srv, const char *header)
{
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    const char *token = header + 7;
    if (strncmp(token, "bxk_", 4) != 0)
        return NULL;
    const char *id = token + 4;
    const char *sep = strchr(id, '_');
    if (sep == NULL || sep - id >= 33)
        return NULL;
    char key_id[33];
    memcpy(key_id, id, (size_t)(sep - id));
    key_id[sep - id] = '\0';
    const struct credential *c = bx_map_get(srv->gen.credentials, key_id);
    if (c == NULL)
        return NULL;
    const char *secret = sep + 1;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)secret, strlen(secret), digest);
    return CRYPTO_memcmp(digest, c->hash, sizeof(digest)) == 0 ? c : NULL;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned code, const char *type,
                                 char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (code == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"baoxue\"");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    bx_metric_add(&m_requests, 1);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned code, const char *errcode,
                                  const char *message)
{
    bx_buf b;
    bx_buf_init(&b, 8192);
    /* A value quoted in an error (an id number typed into a field) is masked as in the logs. */
    char masked[1024];
    snprintf(masked, sizeof(masked), "%s", message);
    bx_utf8_repair(masked);
    bx_log_mask(masked);
    bx_status s = bx_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", errcode);
    IFOK(s, bx_buf_json_string(&b, masked));
    IFOK(s, bx_buf_puts(&b, "}}\n"));
    if (s != BX_OK) {
        bx_buf_free(&b);
        return MHD_NO;
    }
    size_t len = b.len;
    return send_text(conn, code, "application/json", bx_buf_steal(&b), len);
}

static void suspend(struct request *req)
{
    ingest_server *srv = req->srv;
    atomic_store(&req->answered_ms, 0);
    req->since_ms = bx_monotonic_ms();
    pthread_mutex_lock(&srv->waiting_lock);
    req->wprev = NULL;
    req->wnext = srv->waiting_head;
    if (srv->waiting_head)
        srv->waiting_head->wprev = req;
    srv->waiting_head = req;
    pthread_mutex_unlock(&srv->waiting_lock);
    bx_metric_set(&m_waiting, atomic_fetch_add(&srv->waiting, 1) + 1);
    MHD_suspend_connection(req->conn);
}

/* The handler runs again: the request leaves the waiting list. */
static void resumed(struct request *req)
{
    ingest_server *srv = req->srv;
    pthread_mutex_lock(&srv->waiting_lock);
    if (req->wprev)
        req->wprev->wnext = req->wnext;
    else
        srv->waiting_head = req->wnext;
    if (req->wnext)
        req->wnext->wprev = req->wprev;
    req->wprev = req->wnext = NULL;
    pthread_mutex_unlock(&srv->waiting_lock);
    bx_metric_set(&m_waiting, atomic_fetch_sub(&srv->waiting, 1) - 1);
}

/* From any thread: the dedup thread, the producer's poll thread, or the handler itself. The
 * event loop resumes the connection: libmicrohttpd is only ever called from its thread. */
static void resume(void *arg)
{
    struct request *req = arg;
    ingest_server *srv = req->srv;
    atomic_store(&req->answered_ms, bx_monotonic_ms());
    pthread_mutex_lock(&srv->ready_lock);
    req->ready_next = srv->ready_head;
    srv->ready_head = req;
    pthread_mutex_unlock(&srv->ready_lock);
    uint64_t one = 1;
    if (write(srv->wake_fd, &one, sizeof(one)) != sizeof(one))
        bx_log_error("cannot wake the event loop: %s", strerror(errno));
}

static void check_answered(void *arg, bx_status status)
{
    struct request *req = arg;
    req->checked = status;
    resume(req);
}

/* Dead-letters a request that could not be read as records; it is answered once Kafka has the
 * dead letter (reply_rejected), so a client that saw the error can rely on it being kept. */
static enum MHD_Result reject_request(struct request *req, unsigned code, const char *reason,
                                      const char *message)
{
    ingest_server *srv = req->srv;
    const ingest_ctx *ctx = &req->ctx;
    char *dlq = ingest_dlq_message(ctx, NULL, reason, message, req->body.data, req->body.len);
    req->code = code;
    req->reason = reason;
    req->message = strdup(message);
    req->wait = dlq && req->message ? bx_delivery_wait_notify_new(resume, req) : NULL;
    if (req->wait == NULL) {
        free(dlq);
        bx_log_error("school %s %s: no memory to dead-letter a rejected request",
                     ctx->school_id ? ctx->school_id : "-", ctx->endpoint);
        bx_metric_add(&m_rejected, 1);
        return send_error(req->conn, code, reason, message);
    }
    req->phase = PH_REJECT;
    suspend(req);
    const char *key = ctx->school_id ? ctx->school_id : "unknown";
    bx_delivery_slot_arm(&req->dlq_slot, req->wait);
    if (bx_producer_send(srv->producer, BX_TOPIC_DLQ, key, strlen(key), dlq, strlen(dlq),
                         bx_delivery_slot_done, &req->dlq_slot) != BX_OK)
        bx_delivery_slot_done(&req->dlq_slot, RD_KAFKA_RESP_ERR__FAIL);
    free(dlq);
    bx_delivery_wait_seal(req->wait);
    return MHD_YES;
}

static enum MHD_Result reply_rejected(struct request *req)
{
    const ingest_ctx *ctx = &req->ctx;
    if (req->dlq_slot.err != RD_KAFKA_RESP_ERR_NO_ERROR)
        bx_log_error("school %s %s: the rejected request's dead letter was not acknowledged: %s",
                     ctx->school_id ? ctx->school_id : "-", ctx->endpoint,
                     rd_kafka_err2str(req->dlq_slot.err));
    bx_metric_add(&m_rejected, 1);
    bx_log_info("school %s %s: %u %s", ctx->school_id ? ctx->school_id : "-", ctx->endpoint,
                req->code, req->reason);
    return send_error(req->conn, req->code, req->reason, req->message);
}

static bool content_type_is(const char *header, const char *type)
{
    if (header == NULL)
        return false;
    size_t n = strlen(type);
    return strncasecmp(header, type, n) == 0 &&
           (header[n] == '\0' || header[n] == ';' || header[n] == ' ');
}

/* Produces the batch's messages; the request waits suspended for Kafka's verdict on each. */
static enum MHD_Result send_batch(struct request *req)
{
    if (req->pub.nkeys)
        ingest_publish_mark(&req->ctx, &req->batch, &req->pub, req->checked);
    req->phase = PH_DELIVERY;
    suspend(req);
    ingest_publish_send(&req->ctx, req->srv->producer, &req->batch, &req->pub, req->wait);
    bx_delivery_wait_seal(req->wait);
    return MHD_YES;
}

/* Accepted client event ids: repeated ones will be answered duplicate. */
static void remember_accepted(void *arg, const ingest_ctx *ctx, const char *const *keys, size_t n)
{
    dedup_batcher *dedup = arg;
    if (dedup_remember(dedup, ctx->school_id, keys, n, ctx->endpoint) != BX_OK)
        bx_log_warn("school %s: accepted event ids not remembered", ctx->school_id);
}

/* Every record has Kafka's verdict: the reply. */
static enum MHD_Result reply_published(struct request *req)
{
    ingest_server *srv = req->srv;
    ingest_batch *batch = &req->batch;
    ingest_publish_end(&req->ctx, batch, &req->pub, srv->dedup ? remember_accepted : NULL,
                       srv->dedup);
    long long counts[5] = {0};
    for (size_t i = 0; i < batch->count; i++)
        counts[batch->items[i].outcome]++;
    bx_metric_add(&m_accepted, counts[INGEST_ACCEPTED]);
    bx_metric_add(&m_duplicate, counts[INGEST_DUPLICATE]);
    bx_metric_add(&m_rejected, counts[INGEST_REJECTED]);
    bx_metric_add(&m_failed, counts[INGEST_FAILED]);
    bx_log_debug("school %s %s: %lld accepted, %lld duplicate, %lld rejected, %lld failed",
                 req->school_id, req->ctx.endpoint, counts[INGEST_ACCEPTED],
                 counts[INGEST_DUPLICATE], counts[INGEST_REJECTED], counts[INGEST_FAILED]);
    bx_buf reply;
    bx_buf_init(&reply, 64 << 20);
    bx_status s = ingest_reply(batch, &reply);
    ingest_batch_free(batch);
    if (s != BX_OK) {
        bx_buf_free(&reply);
        return send_error(req->conn, 500, "internal", "reply too large");
    }
    size_t len = reply.len;
    return send_text(req->conn, counts[INGEST_FAILED] ? 503 : 200, "application/json",
                     bx_buf_steal(&reply), len);
}

/* The body's records into req->batch, by the endpoint's parser. */
static bx_status parse_body(struct request *req, bool csv, const char **reason, bx_error *err)
{
    const ingest_ctx *ctx = &req->ctx;
    ingest_batch *batch = &req->batch;
    const char *body = req->body.data ? req->body.data : "";
    size_t len = req->body.len;
    switch (req->endpoint) {
    case EP_ATTENDANCE:
        return csv ? ingest_parse_attendance_csv(ctx, body, len, batch, err)
                   : ingest_parse_attendance_json(ctx, body, len, batch, err);
    case EP_ROLLCALL:
        return ingest_parse_rollcall(ctx, body, len, batch, reason, err);
    case EP_LEAVE:
        return ingest_parse_leave(ctx, body, len, batch, err);
    default:
        return ingest_parse_actions(ctx, body, len, batch, err);
    }
}

/* "charset=..." of a Content-Type, or NULL: its value (without quotes) in out. */
static const char *content_charset(const char *header, char *out, size_t size)
{
    for (const char *p = header ? strchr(header, ';') : NULL; p; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncasecmp(q, "charset=", 8) != 0)
            continue;
        q += 8;
        bool quoted = *q == '"';
        q += quoted;
        size_t n = strcspn(q, quoted ? "\"" : "; \t");
        snprintf(out, size, "%.*s", (int)(n < 64 ? n : 64), q);
        return out;
    }
    return NULL;
}

/* True, with *message saying why (415), unless the Content-Type is a media type the endpoint
 * reads (*csv tells which) in UTF-8. */
static bool media_type_refused(struct request *req, const char *ctype, bool *csv,
                               const char **message, char *buf, size_t size)
{
    *csv = content_type_is(ctype, "text/csv");
    if ((!*csv && !content_type_is(ctype, "application/json")) ||
        (*csv && req->endpoint != EP_ATTENDANCE)) {
        *message = req->endpoint == EP_ATTENDANCE
                       ? "Content-Type must be application/json or text/csv"
                       : "Content-Type must be application/json";
        return true;
    }
    char charset[80];
    if (content_charset(ctype, charset, sizeof(charset)) && strcasecmp(charset, "utf-8") != 0 &&
        strcasecmp(charset, "utf8") != 0) {
        bx_utf8_repair(charset);
        snprintf(buf, size,
                 "Content-Type: charset \"%s\" is not supported; send the body in UTF-8 "
                 "(charset=utf-8, or no charset)",
                 charset);
        *message = buf;
        return true;
    }
    return false;
}

/* The whole body is in (the credential was checked on the headers): validate, then publish
 * (suspended while waiting). */
static enum MHD_Result process(ingest_server *srv, struct MHD_Connection *conn, struct request *req)
{
    ingest_ctx *ctx = &req->ctx;
    ctx->now = bx_clock_now();
    bx_http_guard_body_end(conn); /* the body is in: no deadline while it is answered */
    ingest_batch *batch = &req->batch;
    bx_error err = {0};
    bx_status s;
    const char *reason = "malformed";

    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    bool csv = false;
    const char *refusal = NULL;
    char refusal_buf[256];
    if (media_type_refused(req, ctype, &csv, &refusal, refusal_buf, sizeof(refusal_buf)))
        return reject_request(req, 415, "unsupported_media_type", refusal);
    pthread_rwlock_rdlock(&srv->lock);
    ctx->registry = srv->gen.registry;
    ctx->staff = srv->gen.staff;
    s = parse_body(req, csv, &reason, &err);
    pthread_rwlock_unlock(&srv->lock);
    ctx->registry = NULL; /* the generation may be replaced from here on */
    ctx->staff = NULL;

    if (s != BX_OK) {
        ingest_batch_free(batch);
        unsigned code = s == BX_ENOMEM                                                       ? 503
                        : (req->endpoint == EP_ROLLCALL && strcmp(reason, "malformed") != 0) ? 422
                                                                                             : 400;
        return reject_request(req, code, reason, err.msg);
    }
    if (ingest_publish_begin(batch, &req->pub) != BX_OK ||
        (req->wait = bx_delivery_wait_notify_new(resume, req)) == NULL) {
        ingest_batch_free(batch);
        return send_error(conn, 503, "unavailable", "out of memory; sending again is safe");
    }
    if (req->pub.nkeys == 0 || srv->dedup == NULL) {
        req->pub.nkeys = 0;
        return send_batch(req);
    }
    req->phase = PH_CHECK;
    suspend(req);
    if (dedup_check_async(srv->dedup, req->school_id, req->pub.keys, req->pub.nkeys, req->pub.seen,
                          check_answered, req) != BX_OK)
        check_answered(req, BX_ENOMEM);
    return MHD_YES;
}

/* A refused credential: counted, and logged at most once a second (a flood of them is one line
 * a second with the count), without the key or the address. Nothing reaches bx.dlq.v1. */
static enum MHD_Result refuse_unauthenticated(ingest_server *srv, struct MHD_Connection *conn,
                                              const char *path, bool had_header)
{
    bx_metric_add(&m_unauthenticated, 1);
    long long now = bx_monotonic_ms();
    if (now - srv->unauth_logged_ms >= 1000) {
        bx_log_warn("%s: refused an unauthenticated request (%s), body unread; %lld more refused "
                    "since the previous such line",
                    path, had_header ? "a credential that is not valid" : "no credential",
                    srv->unauth_unlogged);
        srv->unauth_logged_ms = now;
        srv->unauth_unlogged = 0;
    } else {
        srv->unauth_unlogged++;
    }
    return send_error(conn, 401, "unauthorized",
                      "a school credential is required: Authorization: Bearer bxk_...");
}

/* The body is too large: dead-lettered without it and answered 413 (on the headers when
 * Content-Length says so, the body then unread). */
static enum MHD_Result refuse_too_large(ingest_server *srv, struct request *req)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "body: larger than %lld bytes; split the upload",
             srv->conf.max_body);
    bx_http_guard_body_end(req->conn);
    req->body.len = 0; /* nothing to attach */
    req->ctx.now = bx_clock_now();
    return reject_request(req, 413, "too_large", msg);
}

/* The headers are in: the path, the method and the credential decide before a byte of the body
 * is read, so an unauthenticated upload costs no memory. */
static enum MHD_Result begin(ingest_server *srv, struct MHD_Connection *conn, const char *url,
                             const char *method, void **state)
{
    bx_http_guard_headers_in(conn);
    int ep = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(url, endpoint_paths[i]) == 0)
            ep = i;
    if (strcmp(url, "/healthz") == 0 && strcmp(method, "GET") == 0) {
        char reason[128] = "ok";
        bool ok = ingest_server_healthy(srv, reason, sizeof(reason));
        static const char ok_text[] = "ok\n", bad_text[] = "unhealthy\n";
        struct MHD_Response *r = MHD_create_response_from_buffer(
            ok ? strlen(ok_text) : strlen(bad_text), (void *)(ok ? ok_text : bad_text),
            MHD_RESPMEM_PERSISTENT);
        if (r == NULL)
            return MHD_NO;
        /* The registry revision in memory, for bx-sim to wait for an import it made. */
        char revision[24];
        snprintf(revision, sizeof(revision), "%lld", atomic_load(&m_revision.value));
        MHD_add_response_header(r, "Content-Type", "text/plain");
        MHD_add_response_header(r, "X-Registry-Revision", revision);
        enum MHD_Result ret = MHD_queue_response(conn, ok ? 200 : 503, r);
        MHD_destroy_response(r);
        bx_metric_add(&m_requests, 1);
        return ret;
    }
    if (ep < 0)
        return send_error(conn, 404, "not_found",
                          "unknown path; see /v1/attendance, /v1/rollcall, /v1/leave, "
                          "/v1/actions");
    if (strcmp(method, "POST") != 0)
        return send_error(conn, 405, "method_not_allowed", "use POST");
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    pthread_rwlock_rdlock(&srv->lock);
    const struct credential *cred = authenticate(srv, auth);
    struct request *req = cred ? calloc(1, sizeof(*req)) : NULL;
    if (req) {
        snprintf(req->school_id, sizeof(req->school_id), "%s", cred->school_id);
        snprintf(req->credential_id, sizeof(req->credential_id), "%s", cred->id);
    }
    pthread_rwlock_unlock(&srv->lock);
    if (cred == NULL)
        return refuse_unauthenticated(srv, conn, endpoint_paths[ep], auth != NULL);
    if (req == NULL)
        return MHD_NO;
    req->endpoint = (enum endpoint)ep;
    req->srv = srv;
    req->conn = conn;
    ingest_ctx *ctx = &req->ctx;
    ctx->endpoint = endpoint_paths[ep];
    ctx->writer = INGEST_WRITER_KEY;
    ctx->school_id = req->school_id;
    ctx->credential_id = req->credential_id;
    ingest_batch_init(&req->batch);
    bx_buf_init(&req->body, (size_t)srv->conf.max_body);
    *state = req;
    bx_http_guard_body_begin(conn);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoll(cl, NULL, 10) > srv->conf.max_body)
        return refuse_too_large(srv, req);
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    ingest_server *srv = cls;
    struct request *req = *state;
    if (req && req->phase != PH_UPLOAD) {
        /* resumed: what it waited for has answered */
        resumed(req);
        *upload_size = 0;
        switch (req->phase) {
        case PH_CHECK:
            return send_batch(req);
        case PH_DELIVERY:
            return reply_published(req);
        default:
            return reply_rejected(req);
        }
    }
    if (req == NULL)
        return begin(srv, conn, url, method, state);
    if (*upload_size) {
        bx_http_guard_body_bytes(conn, *upload_size);
        /* libmicrohttpd answers only on the headers or once the body is in: a body past the
         * limit is dropped as it comes (at the minimum rate still), its first part freed */
        if (!req->too_large && bx_buf_append(&req->body, upload, *upload_size) != BX_OK) {
            req->too_large = true;
            bx_buf_free(&req->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->too_large)
        return refuse_too_large(srv, req);
    return process(srv, conn, req);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)code;
    bx_http_guard_request_done(conn); /* the next request's header has its deadline from now */
    struct request *req = *state;
    if (req == NULL)
        return;
    if (req->phase != PH_UPLOAD && (req->wprev || req->wnext || req->srv->waiting_head == req))
        resumed(req); /* ended while suspended: only at shutdown, when everything has answered */
    bx_buf_free(&req->body);
    ingest_batch_free(&req->batch);
    ingest_publish_free(&req->pub);
    bx_delivery_wait_free(req->wait);
    free(req->message);
    free(req);
    *state = NULL;
}

bool ingest_server_healthy(void *server, char *reason, size_t size)
{
    ingest_server *srv = server;
    pthread_rwlock_rdlock(&srv->lock);
    bool ok = srv->gen.registry != NULL;
    pthread_rwlock_unlock(&srv->lock);
    if (!ok)
        snprintf(reason, size, "registry not loaded");
    return ok;
}

/* Forgets accepted client event ids older than the retention, at most once an hour, so
 * ingest.seen_event stays bounded; a repeat older than that is published again and consumers
 * deduplicate it by event id. */
static void expire_seen_events(ingest_server *srv)
{
    bx_time_ms now = bx_clock_now();
    if (srv->last_expiry && now - srv->last_expiry < 3600 * 1000LL)
        return;
    srv->last_expiry = now;
    char days[24];
    snprintf(days, sizeof(days), "%lld", srv->conf.dedup_retention_days);
    const char *params[] = {days};
    long long forgotten = 0;
    bx_error err = {0};
    if (bx_pg_command(srv->admin_db,
                      "DELETE FROM ingest.seen_event WHERE accepted_at < now() - "
                      "make_interval(days => $1::int)",
                      1, params, &forgotten, &err) != BX_OK)
        bx_log_warn("expiring remembered event ids: %s", err.msg);
    else if (forgotten > 0)
        bx_log_info("forgot %lld event ids older than %lld days", forgotten,
                    srv->conf.dedup_retention_days);
}

/* How long an answered request may wait for the event loop to run it again before it is
 * reported; a normal resume takes well under a millisecond. */
#define RESUME_SLOW_MS 2000

void ingest_server_watch(ingest_server *srv)
{
    static const char *const phases[] = {"upload", "duplicate check", "Kafka acknowledgement",
                                         "dead letter"};
    long long now = bx_monotonic_ms();
    pthread_mutex_lock(&srv->waiting_lock);
    for (struct request *r = srv->waiting_head; r; r = r->wnext) {
        long long waited = now - r->since_ms, answered = atomic_load(&r->answered_ms);
        if (answered && now - answered > RESUME_SLOW_MS) {
            bx_log_warn("school %s %s: answered %lld ms ago in phase %s but not run again yet",
                        r->school_id[0] ? r->school_id : "-", r->ctx.endpoint, now - answered,
                        phases[r->phase]);
            atomic_store(&r->answered_ms, now);
        } else if (!answered && waited > srv->conf.ack_timeout_ms + 5000) {
            bx_log_warn("school %s %s: waiting %lld ms for its %s",
                        r->school_id[0] ? r->school_id : "-", r->ctx.endpoint, waited,
                        phases[r->phase]);
            r->since_ms = now;
        }
    }
    pthread_mutex_unlock(&srv->waiting_lock);
}

void ingest_server_tick(ingest_server *srv)
{
    bx_error err = {0};
    if (srv->admin_db == NULL || bx_pg_is_broken(srv->admin_db)) {
        if (srv->admin_db)
            PQfinish(srv->admin_db);
        srv->admin_db = NULL;
        if (bx_pg_connect(srv->conf.pg_url, 0, &srv->admin_db, &err) != BX_OK) {
            bx_log_warn("registry refresh: %s", err.msg);
            srv->admin_db = NULL;
            return;
        }
    }
    expire_seen_events(srv);
    long long rev = 0;
    if (bx_registry_current_revision(srv->admin_db, &rev, &err) != BX_OK) {
        bx_log_warn("registry refresh: %s", err.msg);
        return;
    }
    if (rev == m_revision.value)
        return;
    struct generation next;
    if (load_generation(srv->admin_db, &next, &err) != BX_OK) {
        bx_log_warn("registry reload: %s", err.msg);
        return;
    }
    pthread_rwlock_wrlock(&srv->lock);
    struct generation old = srv->gen;
    srv->gen = next;
    pthread_rwlock_unlock(&srv->lock);
    generation_free(&old);
    bx_metric_set(&m_revision, bx_registry_loaded_revision(next.registry));
    bx_metric_set(&m_students, (long long)bx_registry_student_count(next.registry));
    bx_log_info("registry revision %lld loaded: %zu students",
                bx_registry_loaded_revision(next.registry),
                bx_registry_student_count(next.registry));
}

/* The event loop: waits on libmicrohttpd's epoll set and the wake eventfd, resumes what is
 * ready, and lets libmicrohttpd run. On stop it takes no new connections and runs until every
 * waiting request is answered (Kafka reports each message within its timeout), at most
 * ack_timeout + 5 s. */
static void *loop_main(void *arg)
{
    ingest_server *srv = arg;
    bool quiesced = false;
    long long stop_deadline = 0;
    for (;;) {
        if (atomic_load(&srv->stopping) && !quiesced) {
            /* the listen socket is ours to close from here on (external mode: at once) */
            MHD_socket listen_fd = MHD_quiesce_daemon(srv->http.daemon);
            if (listen_fd != MHD_INVALID_SOCKET)
                close(listen_fd);
            quiesced = true;
            stop_deadline = bx_monotonic_ms() + srv->conf.ack_timeout_ms + 5000;
        }
        if (quiesced && (atomic_load(&srv->waiting) == 0 || bx_monotonic_ms() > stop_deadline))
            break;
        MHD_UNSIGNED_LONG_LONG mhd_timeout = 0;
        int timeout = 100;
        if (MHD_get_timeout(srv->http.daemon, &mhd_timeout) == MHD_YES && mhd_timeout < 100)
            timeout = (int)mhd_timeout;
        struct epoll_event events[2];
        int n = epoll_wait(srv->epoll_fd, events, 2, timeout);
        if (n < 0 && errno != EINTR)
            bx_log_error("event loop: epoll_wait: %s", strerror(errno));
        uint64_t count;
        if (read(srv->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
            bx_log_error("event loop: reading the wake eventfd: %s", strerror(errno));
        pthread_mutex_lock(&srv->ready_lock);
        struct request *ready = srv->ready_head;
        srv->ready_head = NULL;
        pthread_mutex_unlock(&srv->ready_lock);
        for (struct request *r = ready, *next; r; r = next) {
            next = r->ready_next; /* r may be gone once libmicrohttpd runs it */
            MHD_resume_connection(r->conn);
        }
        MHD_run(srv->http.daemon);
    }
    if (atomic_load(&srv->waiting) > 0)
        bx_log_warn("stopping with %ld requests still waiting", atomic_load(&srv->waiting));
    return NULL;
}

/* libmicrohttpd on our own event loop's epoll set, with TLS when configured (bx_tls's policy). */
static bx_status start_daemon(ingest_server *srv, const struct sockaddr_in *addr, bool tls,
                              bx_error *err)
{
    const ingest_server_conf *conf = &srv->conf;
    /* One event loop of our own serves every connection (libmicrohttpd's epoll set run from our
     * thread); a request waiting for PostgreSQL or Kafka is suspended and holds no thread. */
    const bx_http_daemon_conf dc = {
        .listen = conf->listen,
        .addr = addr,
        .tls = tls,
        .tls_cert = conf->tls_cert,
        .tls_key = conf->tls_key,
        .flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        .handler = handle,
        .handler_arg = srv,
        .completed = request_done,
        .completed_arg = srv,
    };
    return bx_http_daemon_start(srv->guard, &dc, &srv->http, err);
}

/* The event loop's epoll set (libmicrohttpd's and the wake eventfd) and its thread. */
static bx_status start_loop(ingest_server *srv, bx_error *err)
{
    bx_status s = BX_OK;
    if (s == BX_OK) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(srv->http.daemon, MHD_DAEMON_INFO_EPOLL_FD);
        srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event mhd_ev = {.events = EPOLLIN, .data.fd = info ? info->epoll_fd : -1};
        struct epoll_event wake_ev = {.events = EPOLLIN, .data.fd = srv->wake_fd};
        if (info == NULL || srv->wake_fd < 0 || srv->epoll_fd < 0 ||
            epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, info->epoll_fd, &mhd_ev) != 0 ||
            epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->wake_fd, &wake_ev) != 0)
            s = BX_ERR(err, BX_EIO, "cannot set up the event loop: %s", strerror(errno));
    }
    if (s == BX_OK) {
        if (pthread_create(&srv->loop, NULL, loop_main, srv) != 0)
            s = BX_ERR(err, BX_EFATAL, "cannot start the event loop thread");
        else
            srv->loop_started = true;
    }
    return s;
}

static void register_metrics(void)
{
    bx_metric_register(&m_requests);
    bx_metric_register(&m_accepted);
    bx_metric_register(&m_duplicate);
    bx_metric_register(&m_rejected);
    bx_metric_register(&m_failed);
    bx_metric_register(&m_revision);
    bx_metric_register(&m_students);
    bx_metric_register(&m_waiting);
    bx_metric_register(&m_unauthenticated);
    m_revision.value = -1;
}

bx_status ingest_server_start(const ingest_server_conf *conf, bx_producer *producer,
                              ingest_server **out, bx_error *err)
{
    struct sockaddr_in addr;
    bool tls = false;
    bx_status s = bx_tls_listen("BX_HTTP_LISTEN", conf->listen, conf->tls_cert, conf->tls_key,
                                conf->insecure, &addr, &tls, err);
    if (s != BX_OK)
        return s;
    ingest_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    srv->conf = *conf;
    srv->producer = producer;
    pthread_rwlock_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->waiting_lock, NULL);
    pthread_mutex_init(&srv->ready_lock, NULL);
    srv->wake_fd = srv->epoll_fd = -1;
    register_metrics();
    s = dedup_new(conf->pg_url, &srv->dedup, err);
    IFOK(s, bx_pg_connect(conf->pg_url, 30000, &srv->admin_db, err));
    if (s == BX_OK) {
        ingest_server_tick(srv);
        if (srv->gen.registry == NULL)
            s = BX_ERR(err, BX_EIO, "the registry could not be loaded (run bxctl migrate)");
    }
    srv->conf.guard.threads = 1; /* one event loop */
    IFOK(s, bx_http_guard_new(&srv->conf.guard, "bx_ingest", &srv->guard, err));
    IFOK(s, start_daemon(srv, &addr, tls, err));
    IFOK(s, start_loop(srv, err));
    if (s != BX_OK) {
        ingest_server_stop(srv);
        return s;
    }
    bx_log_info("listening on %s://%s", tls ? "https" : "http", conf->listen);
    *out = srv;
    return BX_OK;
}

void ingest_server_stop(ingest_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->loop_started) {
        /* The loop takes no new connections and ends once the requests in flight are answered. */
        atomic_store(&srv->stopping, true);
        uint64_t one = 1;
        if (write(srv->wake_fd, &one, sizeof(one)) != sizeof(one))
            bx_log_warn("cannot wake the event loop to stop it");
        pthread_join(srv->loop, NULL);
    }
    bx_http_daemon_stop(&srv->http);
    bx_http_guard_free(srv->guard); /* after the daemon, whose callbacks use it */
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->epoll_fd >= 0)
        close(srv->epoll_fd);
    dedup_free(srv->dedup);
    generation_free(&srv->gen);
    if (srv->admin_db)
        PQfinish(srv->admin_db);
    pthread_rwlock_destroy(&srv->lock);
    pthread_mutex_destroy(&srv->waiting_lock);
    pthread_mutex_destroy(&srv->ready_lock);
    free(srv);
}
