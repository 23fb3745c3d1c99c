/* service: bx-notify's loop body: requests to notifications, worker threads that send them
 * (intent recorded before every provider call, outcome after), receipts, digests, the outbox. */
#include "service.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "limits.h"
#include "recipients.h"
#include "store.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POLL_MAX        200   /* requests handled per loop iteration */
#define RELAY_MAX       1000  /* outbox rows relayed at once */
#define RELAY_WAIT_MS   10000 /* how long a relay waits for the broker */
#define DLQ_RECORD_MAX  65536 /* a bigger rejected message is dead-lettered without its bytes */
#define TEXT_MAX        2048  /* a rendered message */
#define RECEIPT_BODY    (1 << 20)
#define RECEIPTS_MAX    1000
#define DIGEST_STAFF    200  /* staff digested per loop iteration */
#define DIGEST_TASKS    50   /* tasks looked at for one digest */
#define DIGEST_LIST_MAX 1200 /* bytes of task lines in one digest SMS; more go in another */
#define DIGEST_OPEN     6    /* still-open tasks of earlier days listed in the day's first digest */
#define IDLE_SLEEP_US   20000

static bx_metric m_requests = {"bx_notify_requests_total",
                               "requests taken (redeliveries not counted)", "counter", 0, NULL};
static bx_metric m_redelivered = {"bx_notify_requests_redelivered_total",
                                  "requests seen before: nothing sent", "counter", 0, NULL};
static bx_metric m_dlq = {"bx_notify_dlq_total", "requests sent to bx.dlq.v1", "counter", 0, NULL};
static bx_metric m_sends = {"bx_notify_sends_total", "provider calls to send", "counter", 0, NULL};
static bx_metric m_accepted = {"bx_notify_accepted_total", "sends the provider accepted", "counter",
                               0, NULL};
static bx_metric m_delivered = {"bx_notify_delivered_total", "notifications delivered", "counter",
                                0, NULL};
static bx_metric m_dead = {"bx_notify_dead_total", "notifications dead (reason recorded)",
                           "counter", 0, NULL};
static bx_metric m_queries = {"bx_notify_queries_total", "provider status queries", "counter", 0,
                              NULL};
static bx_metric m_receipts = {"bx_notify_receipts_total", "receipts received (with duplicates)",
                               "counter", 0, NULL};
static bx_metric m_rate_waits = {"bx_notify_rate_waits_total",
                                 "sends put off by the provider-wide rate", "counter", 0, NULL};
static bx_metric m_digests = {"bx_notify_digests_total", "daily digests made", "counter", 0, NULL};
static bx_metric m_status = {"bx_notify_outbox_sent_total",
                             "status messages and dead letters acknowledged by Kafka", "counter", 0,
                             NULL};
static bx_metric m_failures = {"bx_notify_failures_total",
                               "database, Redis or Kafka failures (retried)", "counter", 0, NULL};

typedef struct worker {
    struct notify_service *sv;
    int index;
    pthread_t thread;
    bool started;
    PGconn *db;
    redisContext *redis;
    limits_rate *rate;
    provider *prov;
    char owner[STORE_OWNER_MAX + 1];
    uint32_t random;
} worker;

struct notify_service {
    notify_service_conf conf;
    store_ctx ctx;
    bx_consumer *consumer;
    bx_producer *producer;
    PGconn *db;
    worker *workers;
    atomic_bool healthy;
    atomic_bool stopping;
    /* the receipt endpoint: its own connection and adapter, one request at a time */
    struct MHD_Daemon *daemon;
    /* the outbox relay: its own thread and connection, so a slow broker never holds requests */
    pthread_t relay_thread;
    bool relay_started;
    PGconn *relay_db;
    pthread_mutex_t receipt_lock;
    PGconn *receipt_db;
    provider *receipt_prov;
    const char *provider_name;
};

static uint32_t next_random(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static bx_status reconnect(PGconn **db, const char *url, bx_error *err)
{
    if (*db && !bx_pg_is_broken(*db))
        return BX_OK;
    if (*db)
        PQfinish(*db);
    *db = NULL;
    return bx_pg_connect(url, 10000, db, err);
}

/* ---- requests ---- */

#define PATH       "message"
#define PARAMS_MAX 32

typedef enum bad_reason {
    BAD_NONE = 0,
    BAD_MALFORMED,
    BAD_INVALID,
    BAD_UNKNOWN_STUDENT,
    BAD_MISSING
} bad_reason;

typedef struct request {
    char request_id[129];
    char case_id[129];
    char student_id[33];
    char template_name[65];
    char role[24];
    char staff_id[33];
    char channel[8];
    int nparams;
    char param_names[PARAMS_MAX][65];
    char param_values[PARAMS_MAX][501];
    bx_time_ms not_before; /* 0: none */
    bad_reason bad;
    char field[64];
    char error[400];
} request;

static bool id_ok(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (extra && strchr(extra, c))))
            return false;
    }
    return true;
}

static bx_status get_text(const cJSON *o, const char *key, bool nullable, size_t max,
                          const char *extra, char *out, size_t size, request *rq, bx_error *err)
{
    out[0] = '\0';
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (nullable && cJSON_IsNull(v))
        return BX_OK;
    const char *s = NULL;
    bx_status st = bx_json_get_string(o, PATH, key, true, max, &s, err);
    snprintf(rq->field, sizeof(rq->field), "%s", key);
    if (st == BX_OK && extra && !id_ok(s, max, extra[0] == '*' ? NULL : extra))
        st = BX_ERR(err, BX_EINVAL, PATH ".%s: expected 1 to %zu of [A-Za-z0-9_-%s]", key, max,
                    extra[0] == '*' ? "" : extra);
    if (st == BX_OK)
        snprintf(out, size, "%s", s);
    return st;
}

static bx_status parse_params(const cJSON *params, request *rq, bx_error *err)
{
    snprintf(rq->field, sizeof(rq->field), "params");
    if (!cJSON_IsObject(params))
        return BX_ERR(err, BX_EINVAL, PATH ".params: expected an object");
    const cJSON *p = NULL;
    cJSON_ArrayForEach(p, params)
    {
        if (rq->nparams == PARAMS_MAX)
            return BX_ERR(err, BX_EINVAL, PATH ".params: more than %d parameters", PARAMS_MAX);
        const char *name = p->string;
        if (name == NULL || !id_ok(name, 64, "*") || name[0] < 'a' || name[0] > 'z')
            return BX_ERR(err, BX_EINVAL, PATH ".params: a name is [a-z][a-z0-9_], up to 64");
        snprintf(rq->field, sizeof(rq->field), "params.%s", name);
        char *value = rq->param_values[rq->nparams];
        if (cJSON_IsString(p)) {
            if (strlen(p->valuestring) > 500)
                return BX_ERR(err, BX_EINVAL, PATH ".params.%s: longer than 500", name);
            snprintf(value, 501, "%s", p->valuestring);
        } else if (cJSON_IsNumber(p) && p->valuedouble == (double)(long long)p->valuedouble &&
                   p->valuedouble > -1e15 && p->valuedouble < 1e15) {
            snprintf(value, 501, "%lld", (long long)p->valuedouble);
        } else {
            return BX_ERR(err, BX_EINVAL, PATH ".params.%s: expected a string or an integer", name);
        }
        snprintf(rq->param_names[rq->nparams], 65, "%s", name);
        rq->nparams++;
    }
    return BX_OK;
}

static const char *const request_keys[] = {"schema",
                                           "request_id",
                                           "case_id",
                                           "student_id",
                                           "template",
                                           "recipient_role",
                                           "recipient_staff_id",
                                           "channel",
                                           "params",
                                           "not_before",
                                           "requested_at",
                                           NULL};

static bx_status parse_request(const cJSON *o, request *rq, bx_error *err)
{
    static const char *const roles[] = {
        "guardian",         "homeroom_teacher", "principal", "academic_office",
        "township_officer", "county_officer",   NULL};
    char schema[32], when[64];
    bx_status s = bx_json_only_keys(o, PATH, request_keys, err);
    IFOK(s, get_text(o, "schema", false, 31, NULL, schema, sizeof(schema), rq, err));
    if (s == BX_OK && strcmp(schema, "bx.notify.requests.v1") != 0)
        s = BX_ERR(err, BX_EINVAL, PATH ".schema: expected bx.notify.requests.v1");
    IFOK(s, get_text(o, "request_id", false, 128, "._:", rq->request_id, sizeof(rq->request_id), rq,
                     err));
    IFOK(s, get_text(o, "case_id", true, 128, "._:", rq->case_id, sizeof(rq->case_id), rq, err));
    IFOK(s,
         get_text(o, "student_id", true, 32, "", rq->student_id, sizeof(rq->student_id), rq, err));
    IFOK(s, get_text(o, "template", false, 64, "*", rq->template_name, sizeof(rq->template_name),
                     rq, err));
    IFOK(s, get_text(o, "recipient_role", false, 23, NULL, rq->role, sizeof(rq->role), rq, err));
    if (s == BX_OK) {
        bool known = false;
        for (int i = 0; roles[i]; i++)
            known = known || strcmp(rq->role, roles[i]) == 0;
        if (!known)
            s = BX_ERR(err, BX_EINVAL, PATH ".recipient_role: not a known role");
    }
    IFOK(s, get_text(o, "recipient_staff_id", true, 32, "", rq->staff_id, sizeof(rq->staff_id), rq,
                     err));
    IFOK(s, get_text(o, "channel", false, 7, NULL, rq->channel, sizeof(rq->channel), rq, err));
    if (s == BX_OK && strcmp(rq->channel, "sms") != 0 && strcmp(rq->channel, "task") != 0)
        s = BX_ERR(err, BX_EINVAL, PATH ".channel: expected sms or task");
    if (s == BX_OK && strcmp(rq->role, "guardian") == 0) {
        snprintf(rq->field, sizeof(rq->field), "%s",
                 rq->student_id[0] == '\0' ? "student_id"
                 : rq->staff_id[0] != '\0' ? "recipient_staff_id"
                                           : "channel");
        if (rq->student_id[0] == '\0')
            s = BX_ERR(err, BX_EINVAL, PATH ".student_id: required for a guardian");
        else if (rq->staff_id[0] != '\0')
            s = BX_ERR(err, BX_EINVAL, PATH ".recipient_staff_id: must be null for a guardian");
        else if (strcmp(rq->channel, "sms") != 0)
            s = BX_ERR(err, BX_EINVAL, PATH ".channel: a guardian is reached by sms only");
    }
    if (s == BX_OK) {
        const char *t = rq->template_name;
        if (t[0] < 'a' || t[0] > 'z' ||
            strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789_.") != strlen(t))
            s = BX_ERR(err, BX_EINVAL, PATH ".template: expected [a-z][a-z0-9_.]{0,63}");
    }
    if (s == BX_OK)
        s = parse_params(cJSON_GetObjectItemCaseSensitive(o, "params"), rq, err);
    IFOK(s, get_text(o, "not_before", true, 63, NULL, when, sizeof(when), rq, err));
    if (s == BX_OK && when[0] && bx_time_parse(when, &rq->not_before) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, PATH ".not_before: not an RFC 3339 time");
    IFOK(s, get_text(o, "requested_at", false, 63, NULL, when, sizeof(when), rq, err));
    bx_time_ms requested = 0;
    if (s == BX_OK && bx_time_parse(when, &requested) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, PATH ".requested_at: not an RFC 3339 time");
    if (s == BX_OK)
        rq->field[0] = '\0';
    return s;
}

static void parse_message(const rd_kafka_message_t *msg, request *rq)
{
    memset(rq, 0, sizeof(*rq));
    bx_error err = {0};
    cJSON *root = NULL;
    bx_status s = msg->payload ? bx_json_parse(msg->payload, msg->len, &root, &err)
                               : BX_ERR(&err, BX_EINVAL, "empty message");
    bool json_ok = s == BX_OK;
    if (s == BX_OK && !cJSON_IsObject(root))
        s = BX_ERR(&err, BX_EINVAL, PATH ": expected an object");
    IFOK(s, parse_request(root, rq, &err));
    cJSON_Delete(root);
    if (s != BX_OK) {
        rq->bad = json_ok ? BAD_INVALID : BAD_MALFORMED;
        if (!json_ok)
            rq->field[0] = '\0';
        snprintf(rq->error, sizeof(rq->error), "%s", err.msg[0] ? err.msg : "invalid message");
    }
}

static bx_status dead_letter(notify_service *sv, const rd_kafka_message_t *msg, const request *rq,
                             bx_error *err)
{
    static const char *const reasons[] = {"other", "malformed", "invalid_value", "unknown_student",
                                          "missing_field"};
    const char *topic = rd_kafka_topic_name(msg->rkt);
    char at[40], event_id[160];
    bx_time_ms now = bx_clock_now();
    bx_time_format(now, at, sizeof(at));
    snprintf(event_id, sizeof(event_id), "dlq:bx-notify:%.60s:%d:%lld", topic, (int)msg->partition,
             (long long)msg->offset);
    bx_buf b;
    bx_buf_init(&b, 4 * DLQ_RECORD_MAX);
    bx_status s = bx_buf_puts(&b, "{\"schema\":\"bx.dlq.v1\",\"event_id\":");
    IFOK(s, bx_buf_json_string(&b, event_id));
    IFOK(s, bx_buf_puts(&b, ",\"source\":\"bx-notify\",\"endpoint\":"));
    IFOK(s, bx_buf_json_string(&b, topic));
    IFOK(s, bx_buf_puts(&b, ",\"school_id\":null,\"record_index\":null,\"line\":null,\"field\":"));
    if (rq->field[0])
        IFOK(s, bx_buf_json_string(&b, rq->field));
    else
        IFOK(s, bx_buf_puts(&b, "null"));
    IFOK(s, bx_buf_puts(&b, ",\"reason\":"));
    IFOK(s, bx_buf_json_string(&b, reasons[rq->bad]));
    IFOK(s, bx_buf_puts(&b, ",\"error\":"));
    IFOK(s, bx_buf_json_string(&b, rq->error));
    IFOK(s, bx_buf_puts(&b, ",\"record\":"));
    if (rq->bad != BAD_MALFORMED && msg->len <= DLQ_RECORD_MAX) {
        IFOK(s, bx_buf_append(&b, msg->payload, msg->len));
    } else if (msg->payload && msg->len <= DLQ_RECORD_MAX &&
               bx_utf8_valid(msg->payload, msg->len)) {
        char *text = strndup(msg->payload, msg->len);
        s = text ? bx_buf_json_string(&b, text) : BX_ENOMEM;
        free(text);
    } else {
        IFOK(s, bx_buf_puts(&b, "null"));
    }
    IFOK(s, bx_buf_printf(&b, ",\"received_at\":\"%s\"}", at));
    if (s != BX_OK) {
        bx_buf_free(&b);
        return BX_ERR(err, s, "cannot build a dead letter");
    }
    s = store_outbox_add(sv->db, BX_TOPIC_DLQ, rq->student_id[0] ? rq->student_id : "unknown",
                         b.data, now, err);
    if (s == BX_OK)
        bx_metric_add(&m_dlq, 1);
    bx_buf_free(&b);
    return s;
}

/* Variables for a template: the lookups first, then the request's params. */
typedef struct vars {
    template_var v[PARAMS_MAX + 12];
    size_t n;
    char date[11];
} vars;

static void vars_add(vars *vs, const char *name, const char *value)
{
    if (value && value[0] && vs->n < sizeof(vs->v) / sizeof(vs->v[0])) {
        vs->v[vs->n].name = name;
        vs->v[vs->n].value = value;
        vs->n++;
    }
}

static void vars_fill(vars *vs, const recipients_context *ctx, const request *rq, bx_time_ms now,
                      bool guardian)
{
    memset(vs, 0, sizeof(*vs));
    bx_date_format(bx_time_local_date(now), vs->date);
    vars_add(vs, "school", ctx->school);
    vars_add(vs, "class", ctx->class_name);
    vars_add(vs, "student", ctx->student);
    vars_add(vs, "teacher", ctx->teacher);
    vars_add(vs, "days_missed_term", ctx->days_missed_term);
    vars_add(vs, "county", ctx->county);
    vars_add(vs, "date", vs->date);
    for (int i = 0; rq && i < rq->nparams; i++) {
        /* a guardian's message gets no case or task internals, whatever the request carries */
        if (guardian && (strcmp(rq->param_names[i], "case_id") == 0 ||
                         strcmp(rq->param_names[i], "stage") == 0))
            continue;
        vars_add(vs, rq->param_names[i], rq->param_values[i]);
    }
}

/* Renders rq's template into text; on failure the request is bad (p->bad set). */
static bool render(notify_service *sv, request *rq, const vars *vs, char *text)
{
    bx_error err = {0};
    bx_status s =
        template_render(sv->conf.templates, rq->template_name, vs->v, vs->n, text, TEXT_MAX, &err);
    if (s == BX_OK)
        return true;
    rq->bad = BAD_INVALID;
    snprintf(rq->field, sizeof(rq->field), "template");
    snprintf(rq->error, sizeof(rq->error), PATH ".template: %s", err.msg);
    return false;
}

static void refuse(request *rq, bad_reason why, const char *field, const char *fmt, ...)
    BX_PRINTF(4, 5);

/* Marks rq bad: the reason, the field and the message of its dead letter. */
static void refuse(request *rq, bad_reason why, const char *field, const char *fmt, ...)
{
    rq->bad = why;
    snprintf(rq->field, sizeof(rq->field), "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rq->error, sizeof(rq->error), fmt, ap);
    va_end(ap);
}

/* A request without a student names its place in params: the school, township or county whose
 * staff it is for (a county's reports name the county) and whose names its template shows. The
 * most specific one given is looked up and a broader one beside it must agree. An unknown place,
 * places that disagree, or a staff role found by place (no recipient_staff_id) without its place
 * make the request bad (rq->bad, naming the field). */
static bx_status place_of_request(notify_service *sv, request *rq, recipients_context *ctx,
                                  bx_error *err)
{
    static const char *const fields[] = {"school_id", "township_code", "county_code"};
    static const char *const kinds[] = {"school", "township", "county"};
    const char *given[3] = {NULL, NULL, NULL};
    for (int i = 0; i < rq->nparams; i++)
        for (int f = 0; f < 3; f++)
            if (strcmp(rq->param_names[i], fields[f]) == 0)
                given[f] = rq->param_values[i];
    int most = given[0] ? 0 : given[1] ? 1 : given[2] ? 2 : -1;
    bx_status s = BX_OK;
    if (most == 0)
        s = recipients_school_load(sv->db, given[0], ctx, err);
    else if (most == 1)
        s = recipients_township_load(sv->db, given[1], ctx, err);
    else if (most == 2)
        s = recipients_county_load(sv->db, given[2], ctx, err);
    if (s == BX_ENOTFOUND) {
        char field[32];
        snprintf(field, sizeof(field), "params.%s", fields[most]);
        refuse(rq, BAD_INVALID, field, PATH ".%s: no %s \"%.32s\" in the registry", field,
               kinds[most], given[most]);
        return BX_OK;
    }
    if (s != BX_OK)
        return s;
    const char *found[3] = {ctx->school_id, ctx->township_code, ctx->county_code};
    for (int f = most + 1; most >= 0 && f < 3; f++) {
        if (given[f] != NULL && strcmp(given[f], found[f]) != 0) {
            char field[32];
            snprintf(field, sizeof(field), "params.%s", fields[f]);
            refuse(rq, BAD_INVALID, field, PATH ".%s: \"%.32s\" is not the %s of %s %.32s", field,
                   given[f], kinds[f], kinds[most], given[most]);
            return BX_OK;
        }
    }
    const char *field = recipients_place_field(rq->role); /* NULL for a guardian */
    if (field != NULL && rq->staff_id[0] == '\0' && !recipients_place_known(ctx, rq->role)) {
        bool by_student = strcmp(field, "student_id") == 0;
        refuse(rq, BAD_MISSING, field,
               PATH ".%s: required to find the %s when there is no recipient_staff_id%s", field,
               rq->role,
               by_student                                   ? ""
               : strcmp(field, "params.county_code") == 0   ? " and no student (or "
                                                              "params.township_code, "
                                                              "params.school_id)"
               : strcmp(field, "params.township_code") == 0 ? " and no student (or "
                                                              "params.school_id)"
                                                            : " and no student");
    }
    return BX_OK;
}

/* Writes one request's notifications in the open transaction. On a bad request rq->bad is set and
 * the caller rolls back. */
static bx_status take_request(notify_service *sv, request *rq, bx_time_ms now, int *count,
                              bx_error *err)
{
    recipients_context ctx;
    memset(&ctx, 0, sizeof(ctx));
    bool guardian = strcmp(rq->role, "guardian") == 0;
    bx_status s = BX_OK;
    if (rq->student_id[0]) {
        s = recipients_context_load(sv->db, rq->student_id, bx_time_local_date(now), &ctx, err);
        if (s == BX_ENOTFOUND) {
            rq->bad = BAD_UNKNOWN_STUDENT;
            snprintf(rq->field, sizeof(rq->field), "student_id");
            snprintf(rq->error, sizeof(rq->error), PATH ".student_id: %s is not in the registry",
                     rq->student_id);
            return BX_OK;
        }
    } else {
        s = place_of_request(sv, rq, &ctx, err);
        if (s != BX_OK || rq->bad != BAD_NONE)
            return s;
    }
    if (s != BX_OK)
        return s;
    if (guardian != template_for_guardian(sv->conf.templates, rq->template_name) &&
        template_exists(sv->conf.templates, rq->template_name)) {
        rq->bad = BAD_INVALID;
        snprintf(rq->field, sizeof(rq->field), "template");
        snprintf(rq->error, sizeof(rq->error), PATH ".template: %s is not meant for %s",
                 rq->template_name, guardian ? "guardians" : "staff");
        return BX_OK;
    }
    recipient people[RECIPIENTS_MAX];
    int n = 0;
    if (guardian)
        s = recipients_guardians(sv->db, &ctx, people, RECIPIENTS_MAX, &n, err);
    else
        s = recipients_staff(sv->db, &ctx, rq->role, rq->staff_id, people, RECIPIENTS_MAX, &n, err);
    if (s != BX_OK)
        return s;
    bool task = strcmp(rq->channel, "task") == 0;
    /* a task is collected for the daily digest, unless its template is delivered at once (a
     * county's report is read, not done: it does not wait for tomorrow's list) */
    bool collect = task && !template_immediate(sv->conf.templates, rq->template_name);
    /* signed with the school's name, or the county's for a county's report */
    const char *sign = ctx.school[0] ? ctx.school : ctx.county;
    bx_time_ms due = rq->not_before > now ? rq->not_before : now;
    vars vs;
    static char text[TEXT_MAX];
    if (n == 0) {
        /* nobody to reach is an outcome too: recorded and published, dead with the reason */
        vars_fill(&vs, &ctx, rq, now, guardian);
        if (!render(sv, rq, &vs, text))
            return BX_OK;
        char reason[160];
        snprintf(reason, sizeof(reason), "%s",
                 guardian ? "no guardian with a mobile number"
                          : "no staff member of the role found");
        store_new nw = {rq->request_id,
                        "none",
                        "none",
                        guardian,
                        collect ? "task" : "sms",
                        NULL,
                        rq->student_id[0] ? rq->student_id : NULL,
                        rq->case_id[0] ? rq->case_id : NULL,
                        rq->template_name,
                        sign,
                        text,
                        DISPATCH_DEAD,
                        0,
                        reason};
        int64_t id = 0;
        s = store_insert(sv->db, &sv->ctx, &nw, now, &id, err);
        if (s == BX_OK && id)
            bx_metric_add(&m_dead, 1);
        *count = 1;
        return s;
    }
    for (int i = 0; i < n && s == BX_OK; i++) {
        recipient *r = &people[i];
        vars_fill(&vs, &ctx, rq, now, guardian);
        if (!render(sv, rq, &vs, text))
            return BX_OK;
        store_new nw = {rq->request_id,
                        r->address,
                        r->masked,
                        guardian,
                        "sms",
                        guardian ? NULL : r->staff_id,
                        rq->student_id[0] ? rq->student_id : NULL,
                        rq->case_id[0] ? rq->case_id : NULL,
                        rq->template_name,
                        sign,
                        text,
                        DISPATCH_QUEUED,
                        due,
                        NULL};
        char reason[96] = "";
        if (collect) {
            nw.channel = "task";
            nw.state = DISPATCH_COLLECTED; /* for the daily digest */
        } else if (!guardian) {
            if (r->phone[0]) {
                nw.recipient = r->phone; /* the daily cap counts per phone */
            } else {
                nw.state = DISPATCH_DEAD;
                snprintf(reason, sizeof(reason), "staff %s has no mobile number", r->staff_id);
                nw.reason = reason;
            }
        }
        int64_t id = 0;
        s = store_insert(sv->db, &sv->ctx, &nw, now, &id, err);
        if (s == BX_OK && id && nw.state == DISPATCH_DEAD)
            bx_metric_add(&m_dead, 1);
    }
    *count = n;
    return s;
}

/* One message in one transaction: a bad one dead-lettered, a redelivered one left alone. */
static bx_status apply_message(notify_service *sv, const rd_kafka_message_t *msg, request *rq,
                               bx_error *err)
{
    bx_time_ms now = bx_clock_now();
    bool fresh = false;
    int count = 0;
    bx_status s = bx_pg_exec(sv->db, "BEGIN", err);
    if (s == BX_OK && rq->bad == BAD_NONE) {
        s = store_request_take(sv->db, rq->request_id, now, &fresh, err);
        if (s == BX_OK && fresh)
            s = take_request(sv, rq, now, &count, err);
        if (s == BX_OK && rq->bad != BAD_NONE) {
            /* nothing of a bad request stays but its dead letter */
            bx_pg_rollback(sv->db);
            s = bx_pg_exec(sv->db, "BEGIN", err);
        } else if (s == BX_OK && fresh) {
            s = store_request_count(sv->db, rq->request_id, count, err);
        }
    }
    if (s == BX_OK && rq->bad != BAD_NONE) {
        bx_warn("%s [%d] offset %lld: dead-lettered: %s", rd_kafka_topic_name(msg->rkt),
                (int)msg->partition, (long long)msg->offset, rq->error);
        s = dead_letter(sv, msg, rq, err);
    }
    IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(sv->db);
        return s;
    }
    if (rq->bad == BAD_NONE && fresh) {
        bx_metric_add(&m_requests, 1);
        bx_debug("request %s: %d notifications", rq->request_id, count);
    } else if (rq->bad == BAD_NONE) {
        bx_metric_add(&m_redelivered, 1);
        bx_info("request %s seen before: nothing sent", rq->request_id);
    }
    return BX_OK;
}

static void handle_message(notify_service *sv, const rd_kafka_message_t *msg)
{
    static request rq;
    int backoff_ms = 200;
    for (;;) {
        parse_message(msg, &rq);
        bx_error err = {0};
        if (apply_message(sv, msg, &rq, &err) == BX_OK) {
            atomic_store(&sv->healthy, true);
            bx_consumer_done(sv->consumer, msg);
            return;
        }
        atomic_store(&sv->healthy, false);
        bx_metric_add(&m_failures, 1);
        bx_error("%s [%d] offset %lld failed (%s); retrying in %d ms",
                 rd_kafka_topic_name(msg->rkt), (int)msg->partition, (long long)msg->offset,
                 err.msg, backoff_ms);
        if (!*sv->conf.running)
            return;
        usleep((useconds_t)backoff_ms * 1000);
        backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
        bx_error cerr = {0};
        if (reconnect(&sv->db, sv->conf.pg_url, &cerr) != BX_OK)
            bx_warn("cannot reconnect to PostgreSQL: %s", cerr.msg);
        if (!*sv->conf.running)
            return;
    }
}

/* ---- sending ---- */

static dispatch_answer answer_of_outcome(provider_outcome o)
{
    switch (o) {
    case PROVIDER_ACCEPTED:
        return DISPATCH_ANS_ACCEPTED;
    case PROVIDER_TRANSIENT:
        return DISPATCH_ANS_TRANSIENT;
    case PROVIDER_PERMANENT:
        return DISPATCH_ANS_PERMANENT;
    case PROVIDER_UNKNOWN:
        return DISPATCH_ANS_UNKNOWN;
    }
    return DISPATCH_ANS_UNKNOWN;
}

static dispatch_answer answer_of_state(provider_state st)
{
    switch (st) {
    case PROVIDER_STATE_NONE:
        return DISPATCH_ANS_NONE;
    case PROVIDER_STATE_PENDING:
        return DISPATCH_ANS_PENDING;
    case PROVIDER_STATE_DELIVERED:
        return DISPATCH_ANS_DELIVERED;
    case PROVIDER_STATE_FAILED:
        return DISPATCH_ANS_FAILED;
    }
    return DISPATCH_ANS_PENDING;
}

static void count_outcome(const dispatch_output *out)
{
    if (out->state == DISPATCH_DELIVERED && out->changed)
        bx_metric_add(&m_delivered, 1);
    if (out->state == DISPATCH_DEAD && out->changed)
        bx_metric_add(&m_dead, 1);
}

static void log_outcome(const store_row *row, const dispatch_output *out)
{
    if (out->state == DISPATCH_DEAD)
        bx_warn("%s (%s) to %s: dead after %d attempts: %s", row->notification_id, row->request_id,
                row->recipient_masked, out->attempt, out->reason);
    else if (out->status != DISPATCH_ST_NONE)
        bx_debug("%s (%s) to %s: %s%s%s", row->notification_id, row->request_id,
                 row->recipient_masked, dispatch_state_name(out->state), out->reason[0] ? ": " : "",
                 out->reason);
}

static bx_status send_row(worker *w, store_row *row, bx_time_ms now, bx_error *err)
{
    notify_service *sv = w->sv;
    const dispatch_policy *p = &sv->conf.policy;
    dispatch_input in = {0};
    in.state = row->state;
    in.event = DISPATCH_EV_DUE;
    in.to_guardian = row->to_guardian;
    in.is_sms = strcmp(row->channel, "task") != 0;
    in.attempt = row->attempt;
    in.now = now;
    in.last_send_at = row->last_send_at;
    in.random = next_random(&w->random);
    int sent_today = 0;
    bool capped = p->daily_cap > 0 && in.is_sms;
    bx_status s = store_begin_send(w->db, row, now, capped, &sent_today, err);
    if (s != BX_OK)
        return s;
    in.sent_today = sent_today;
    dispatch_output out;
    dispatch_next(p, &in, &out);
    if (out.action == DISPATCH_DO_SEND) {
        int64_t wait_ms = 0;
        bx_error rerr = {0};
        if (limits_rate_take(w->rate, now, &wait_ms, &rerr) != BX_OK) {
            bx_warn("worker %d: %s; sends wait", w->index, rerr.msg);
            bx_metric_add(&m_failures, 1);
            wait_ms = 1000;
        }
        if (wait_ms > 0) {
            bx_metric_add(&m_rate_waits, 1);
            memset(&out, 0, sizeof(out));
            out.state = DISPATCH_QUEUED;
            out.attempt = row->attempt;
            out.due_at = now + wait_ms;
            out.changed = true;
        }
    }
    bool applied = false;
    s = store_apply(w->db, &sv->ctx, row, w->owner, &out, NULL, now, true, &applied, err);
    if (s != BX_OK || !applied || out.action != DISPATCH_DO_SEND) {
        if (s == BX_OK && applied)
            count_outcome(&out);
        if (s == BX_OK && applied && out.status == DISPATCH_ST_QUEUED)
            bx_info("%s (%s) to %s waits: %s", row->notification_id, row->request_id,
                    row->recipient_masked, out.reason);
        return s;
    }
    /* The intent is committed: state sending, attempt n. Only now the provider is called. */
    row->state = DISPATCH_SENDING;
    row->attempt = out.attempt;
    row->last_send_at = now;
    provider_message m = {row->notification_id, row->recipient, row->body, row->template_name,
                          row->sign_name};
    provider_result res;
    memset(&res, 0, sizeof(res));
    bx_metric_add(&m_sends, 1);
    bx_error perr = {0};
    if (provider_send(w->prov, &m, &res, &perr) != BX_OK) {
        /* misuse (a bad phone or text): it was not sent and never will be */
        res.outcome = PROVIDER_PERMANENT;
        snprintf(res.reason, sizeof(res.reason), "%s", perr.msg);
    }
    if (res.outcome == PROVIDER_ACCEPTED)
        bx_metric_add(&m_accepted, 1);
    memset(&in, 0, sizeof(in));
    in.state = DISPATCH_SENDING;
    in.event = DISPATCH_EV_SEND;
    in.answer = answer_of_outcome(res.outcome);
    in.attempt = row->attempt;
    in.now = bx_clock_now();
    in.last_send_at = now;
    in.random = next_random(&w->random);
    in.detail = res.reason;
    dispatch_next(p, &in, &out);
    s = store_apply(w->db, &sv->ctx, row, w->owner, &out, res.message_id, in.now, false, &applied,
                    err);
    if (s == BX_OK && applied) {
        count_outcome(&out);
        log_outcome(row, &out);
    }
    return s;
}

static void send_day_text(bx_date d, char out[9])
{
    char ymd[11];
    bx_date_format(d, ymd);
    snprintf(out, 9, "%.4s%.2s%.2s", ymd, ymd + 5, ymd + 8);
}

static bx_status query_row(worker *w, store_row *row, bx_time_ms now, bx_error *err)
{
    notify_service *sv = w->sv;
    const dispatch_policy *p = &sv->conf.policy;
    bx_date sent_on = bx_time_local_date(row->last_send_at ? row->last_send_at : now);
    char compact[9];
    provider_result res;
    memset(&res, 0, sizeof(res));
    bx_error qerr = {0};
    bx_status qs = BX_OK;
    /* A provider that files messages by send date (Aliyun) is asked for the day of the send and,
     * when that has no record, for the day after: a send just before midnight may be filed
     * there, and "no record" is what allows a resend. */
    for (int day = 0; day < 2; day++) {
        send_day_text(sent_on + day, compact);
        memset(&res, 0, sizeof(res));
        bx_metric_add(&m_queries, 1);
        qs = provider_query(w->prov, row->notification_id, row->recipient, compact, &res, &qerr);
        if (qs != BX_OK || res.state != PROVIDER_STATE_NONE)
            break;
    }
    dispatch_input in = {0};
    in.state = row->state;
    in.attempt = row->attempt;
    in.now = bx_clock_now();
    in.last_send_at = row->last_send_at ? row->last_send_at : now;
    in.random = next_random(&w->random);
    in.is_sms = true;
    in.to_guardian = row->to_guardian;
    if (qs == BX_ENOTFOUND) {
        in.event = DISPATCH_EV_NO_QUERY;
    } else if (qs != BX_OK) {
        /* no answer: ask again after a while (the outcome stays unknown) */
        in.event = DISPATCH_EV_NO_QUERY;
        bx_debug("%s: query failed: %s", row->notification_id, qerr.msg);
    } else {
        in.event = DISPATCH_EV_QUERY;
        in.answer = answer_of_state(res.state);
        in.detail = res.reason;
    }
    dispatch_output out;
    dispatch_next(p, &in, &out);
    if (!out.changed)
        return BX_OK;
    bool applied = false;
    bx_status s = store_apply(w->db, &sv->ctx, row, w->owner, &out, res.message_id, in.now, false,
                              &applied, err);
    if (s == BX_OK && applied) {
        count_outcome(&out);
        log_outcome(row, &out);
    }
    return s;
}

static bx_status process_row(worker *w, store_row *row, bx_error *err)
{
    bx_time_ms now = bx_clock_now();
    if (row->state == DISPATCH_QUEUED)
        return send_row(w, row, now, err);
    return query_row(w, row, now, err);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    notify_service *sv = w->sv;
    while (!atomic_load(&sv->stopping)) {
        bx_error err = {0};
        if (reconnect(&w->db, sv->conf.pg_url, &err) != BX_OK) {
            bx_warn("worker %d: cannot connect to PostgreSQL: %s", w->index, err.msg);
            sleep(1);
            continue;
        }
        store_row *rows = NULL;
        int n = 0;
        bx_time_ms now = bx_clock_now();
        if (store_claim(w->db, w->owner, now, sv->conf.policy.lease_ms, sv->conf.batch, &rows, &n,
                        &err) != BX_OK) {
            bx_warn("worker %d: claim failed: %s", w->index, err.msg);
            bx_metric_add(&m_failures, 1);
            usleep(500000);
            continue;
        }
        for (int i = 0; i < n && !atomic_load(&sv->stopping); i++) {
            bx_error perr = {0};
            if (process_row(w, &rows[i], &perr) != BX_OK) {
                bx_metric_add(&m_failures, 1);
                bx_warn("%s: %s; retried after its lease", rows[i].notification_id, perr.msg);
                if (reconnect(&w->db, sv->conf.pg_url, &perr) != BX_OK)
                    break;
            }
        }
        free(rows);
        if (n == 0)
            usleep(IDLE_SLEEP_US);
    }
    return NULL;
}

/* ---- receipts ---- */

typedef struct receipt_item {
    char notification_id[129];
    char message_id[129];
    provider_state state;
    char reason[256];
} receipt_item;

typedef struct receipt_batch {
    receipt_item *items;
    int count;
    bool overflow;
} receipt_batch;

static void collect_receipt(void *ctx, const char *notification_id, const char *message_id,
                            provider_state state, const char *reason)
{
    receipt_batch *b = ctx;
    if (b->count == RECEIPTS_MAX) {
        b->overflow = true;
        return;
    }
    receipt_item *it = &b->items[b->count++];
    snprintf(it->notification_id, sizeof(it->notification_id), "%s",
             notification_id ? notification_id : "");
    snprintf(it->message_id, sizeof(it->message_id), "%s", message_id ? message_id : "");
    it->state = state;
    snprintf(it->reason, sizeof(it->reason), "%s", reason ? reason : "");
}

static const char *receipt_state_name(provider_state st)
{
    switch (st) {
    case PROVIDER_STATE_NONE:
        return "none";
    case PROVIDER_STATE_PENDING:
        return "pending";
    case PROVIDER_STATE_DELIVERED:
        return "delivered";
    case PROVIDER_STATE_FAILED:
        return "failed";
    }
    return "pending";
}

/* Records one receipt and applies it to its notification, in one transaction. */
static bx_status apply_receipt(notify_service *sv, const receipt_item *it, int *changed,
                               bx_error *err)
{
    PGconn *db = sv->receipt_db;
    bx_time_ms now = bx_clock_now();
    bool fresh = false;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    IFOK(s, store_receipt(db, it->notification_id, it->message_id, receipt_state_name(it->state),
                          it->reason, now, &fresh, err));
    if (s == BX_OK && !fresh) {
        s = bx_pg_exec(db, "COMMIT", err); /* a duplicate: nothing changes */
        if (s != BX_OK)
            bx_pg_rollback(db);
        return s;
    }
    store_row row;
    IFOK(s, store_lock_row(db, it->notification_id, &row, err));
    if (s == BX_ENOTFOUND) {
        bx_warn("receipt for unknown notification %.40s recorded", it->notification_id);
        s = bx_pg_exec(db, "COMMIT", err);
        if (s != BX_OK)
            bx_pg_rollback(db);
        return s;
    }
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    dispatch_input in = {0};
    in.state = row.state;
    in.event = DISPATCH_EV_RECEIPT;
    in.answer = answer_of_state(it->state);
    in.attempt = row.attempt;
    in.now = now;
    in.last_send_at = row.last_send_at;
    in.detail = it->reason;
    dispatch_output out;
    dispatch_next(&sv->conf.policy, &in, &out);
    if (!out.changed) {
        s = bx_pg_exec(db, "COMMIT", err);
        if (s != BX_OK)
            bx_pg_rollback(db);
        return s;
    }
    bool applied = false;
    s = store_apply(db, &sv->ctx, &row, NULL, &out, it->message_id, now, true, &applied, err);
    if (s == BX_OK && applied) {
        (*changed)++;
        count_outcome(&out);
        log_outcome(&row, &out);
    }
    return s;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle_receipts(notify_service *sv, struct MHD_Connection *conn,
                                       bx_buf *body)
{
    const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Bx-Signature");
    if (sig == NULL)
        sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Signature");
    receipt_batch batch = {calloc(RECEIPTS_MAX, sizeof(receipt_item)), 0, false};
    if (batch.items == NULL)
        return respond(conn, 503, "{\"error\":\"out of memory\"}");
    char reply[600];
    unsigned code = 200;
    pthread_mutex_lock(&sv->receipt_lock);
    bx_error err = {0};
    bx_status s = provider_parse_receipts(sv->receipt_prov, body->data ? body->data : "", body->len,
                                          sig, collect_receipt, &batch, &err);
    if (s != BX_OK) {
        code = s == BX_EDENIED ? 401 : 400;
        bx_buf b;
        bx_buf_init(&b, 1024);
        if (bx_buf_puts(&b, "{\"error\":") == BX_OK && bx_buf_json_string(&b, err.msg) == BX_OK &&
            bx_buf_puts(&b, "}") == BX_OK)
            snprintf(reply, sizeof(reply), "%s", b.data);
        else
            snprintf(reply, sizeof(reply), "{\"error\":\"bad receipt\"}");
        bx_buf_free(&b);
        bx_warn("receipt endpoint: %s", err.msg);
    } else {
        int changed = 0, i = 0;
        for (; i < batch.count; i++) {
            bx_error rerr = {0};
            if (reconnect(&sv->receipt_db, sv->conf.pg_url, &rerr) != BX_OK ||
                apply_receipt(sv, &batch.items[i], &changed, &rerr) != BX_OK) {
                bx_warn("receipt for %.40s not recorded: %s", batch.items[i].notification_id,
                        rerr.msg);
                bx_metric_add(&m_failures, 1);
                code = 503; /* the provider sends it again */
                break;
            }
        }
        bx_metric_add(&m_receipts, i);
        snprintf(reply, sizeof(reply), "{\"received\":%d,\"recorded\":%d,\"changed\":%d}",
                 batch.count, i, changed);
    }
    pthread_mutex_unlock(&sv->receipt_lock);
    free(batch.items);
    return respond(conn, code, reply);
}

static enum MHD_Result handle_http(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **state)
{
    notify_service *sv = cls;
    bx_buf *body = *state;
    if (body == NULL) {
        if (strcmp(url, "/healthz") == 0 && strcmp(method, "GET") == 0)
            return respond(conn, 200, "{\"status\":\"ok\"}");
        if (strcmp(url, "/v1/receipts") != 0)
            return respond(conn, 404, "{\"error\":\"not found\"}");
        if (strcmp(method, "POST") != 0)
            return respond(conn, 405, "{\"error\":\"POST only\"}");
        body = calloc(1, sizeof(*body));
        if (body == NULL)
            return MHD_NO;
        bx_buf_init(body, RECEIPT_BODY);
        *state = body;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (bx_buf_append(body, upload, *upload_size) != BX_OK)
            body->max = 0; /* too large: answered below */
        *upload_size = 0;
        return MHD_YES;
    }
    if (body->max == 0)
        return respond(conn, 413, "{\"error\":\"body too large\"}");
    return handle_receipts(sv, conn, body);
}

static void http_done(void *cls, struct MHD_Connection *conn, void **state,
                      enum MHD_RequestTerminationCode code)
{
    bx_buf *body = *state;
    if (body) {
        bx_buf_free(body);
        free(body);
    }
    *state = NULL;
}

/* ---- digests ---- */

/* A still-open task as one line of a digest:
 * 【未完成】家访：三年级2班张三，11月28日17:00前（已逾期）. */
static bx_status open_task_line(const template_set *ts, const store_open_task *t, int number,
                                bx_buf *list)
{
    char iso[40], due[64];
    bx_time_format(t->due_at, iso, sizeof(iso));
    if (template_format_due(iso, due, sizeof(due)) != BX_OK)
        snprintf(due, sizeof(due), "%s", iso);
    return bx_buf_printf(list, "\n%d. 【未完成】%s：%s%s，%s前%s", number,
                         template_label(ts, "task", t->kind), t->class_name, t->student, due,
                         t->overdue ? "（已逾期）" : "");
}

/* One digest SMS for staff_id: the first of the day lists what is still open from earlier days,
 * then as many of the newly collected tasks and notices as fit; the rest go in the next part. */
static bx_status make_digest(notify_service *sv, const char *staff_id, const char *day,
                             bx_time_ms cutoff, bx_time_ms older, bx_time_ms now, bx_error *err)
{
    PGconn *db = sv->db;
    static store_task tasks[DIGEST_TASKS];
    static store_open_task open[DIGEST_OPEN];
    int n = 0, nopen = 0;
    bool had = false;
    recipient r;
    char place[101] = "";
    bx_status s = store_digest_begin(db, staff_id, cutoff, &had, err);
    if (s != BX_OK)
        return s;
    s = store_digest_tasks(db, staff_id, cutoff, DIGEST_TASKS, tasks, &n, err);
    if (s == BX_OK && !had)
        s = store_open_tasks(db, staff_id, older, DIGEST_OPEN, open, &nopen, err);
    if (s == BX_OK && n == 0 && nopen == 0) {
        bx_pg_rollback(db);
        return BX_OK; /* another replica made it */
    }
    IFOK(s, recipients_staff_by_id(db, staff_id, &r, place, sizeof(place), err));
    bool gone = s == BX_ENOTFOUND;
    if (gone)
        s = BX_OK;
    bx_buf list;
    bx_buf_init(&list, 64 * 1024);
    for (int i = 0; i < nopen && s == BX_OK; i++)
        s = open_task_line(sv->conf.templates, &open[i], i + 1, &list);
    int listed = 0;
    for (; listed < n && s == BX_OK; listed++) {
        size_t before = list.len;
        /* a task's text ends with the school's name; the digest is signed with it once */
        const char *body = tasks[listed].body;
        size_t len = strlen(body), place_len = strlen(place);
        if (place_len > 0 && len > place_len && strcmp(body + len - place_len, place) == 0)
            len -= place_len;
        s = bx_buf_printf(&list, "\n%d. %.*s", nopen + listed + 1, (int)len, body);
        if (s == BX_OK && nopen + listed > 0 && list.len > DIGEST_LIST_MAX) {
            list.len = before; /* this one and the rest go in the next digest */
            list.data[before] = '\0';
            break;
        }
    }
    char count[12], request_id[129], text[TEXT_MAX * 4];
    snprintf(count, sizeof(count), "%d", nopen + listed);
    /* one digest per person and day, in parts when long: named by the first new task it lists */
    snprintf(request_id, sizeof(request_id), "digest:%s:%s:%s", staff_id, day,
             listed > 0 ? tasks[0].notification_id : "open");
    template_var digest_vars[] = {{"teacher", gone ? staff_id : r.staff_name},
                                  {"task_count", count},
                                  {"tasks", list.data ? list.data : ""},
                                  {"school", place},
                                  {"date", day}};
    bx_error rerr = {0};
    bool rendered =
        s == BX_OK && template_render(sv->conf.templates, sv->conf.digest_template, digest_vars, 5,
                                      text, sizeof(text), &rerr) == BX_OK;
    if (s == BX_OK && !rendered)
        snprintf(text, sizeof(text), "%.*s", (int)(sizeof(text) - 1),
                 list.data ? list.data : ""); /* listed anyway; reason says why it is dead */
    bx_buf_free(&list);
    char reason[300] = "";
    if (!rendered)
        snprintf(reason, sizeof(reason), "digest template %s: %s", sv->conf.digest_template,
                 rerr.msg);
    else if (gone)
        snprintf(reason, sizeof(reason), "staff %s is no longer in the registry", staff_id);
    else if (r.phone[0] == '\0')
        snprintf(reason, sizeof(reason), "staff %s has no mobile number", staff_id);
    store_new nw = {request_id,
                    reason[0] ? staff_id : r.phone,
                    staff_id,
                    false,
                    "digest",
                    staff_id,
                    NULL,
                    NULL,
                    sv->conf.digest_template,
                    place,
                    text,
                    reason[0] ? DISPATCH_DEAD : DISPATCH_QUEUED,
                    now,
                    reason[0] ? reason : NULL};
    int64_t digest_id = 0;
    IFOK(s, store_insert(db, &sv->ctx, &nw, now, &digest_id, err));
    char did[32];
    snprintf(did, sizeof(did), "ntf-%lld", (long long)digest_id);
    if (s == BX_OK && digest_id > 0)
        s = store_digest_mark(db, &sv->ctx, tasks, listed, digest_id, did, staff_id, now, err);
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    if (digest_id > 0) {
        bx_metric_add(&m_digests, 1);
        if (reason[0])
            bx_metric_add(&m_dead, 1);
        bx_info("digest %s for %s: %d new, %d still open%s%s", did, staff_id, listed, nopen,
                reason[0] ? "; dead: " : "", reason);
    }
    return BX_OK;
}

static void run_digests(notify_service *sv)
{
    bx_time_ms now = bx_clock_now();
    if (bx_time_local_minute(now) < sv->conf.digest_minute)
        return;
    /* today's digest takes what was collected before today's digest time (later tasks wait for
     * tomorrow's) and lists tasks still open from before yesterday's, which earlier digests
     * announced */
    bx_date today = bx_time_local_date(now);
    bx_time_ms cutoff =
        bx_time_from_local(today, sv->conf.digest_minute / 60, sv->conf.digest_minute % 60);
    bx_time_ms older = cutoff - 24LL * 3600 * 1000;
    char day[11];
    bx_date_format(today, day);
    static char staff[2 * DIGEST_STAFF][33];
    int n = 0, nopen = 0;
    bx_error err = {0};
    if (store_digest_staff(sv->db, cutoff, DIGEST_STAFF, staff, &n, &err) != BX_OK ||
        store_open_task_staff(sv->db, older, cutoff, DIGEST_STAFF, staff + n, &nopen, &err) !=
            BX_OK) {
        bx_warn("digests: %s", err.msg);
        bx_metric_add(&m_failures, 1);
        return;
    }
    for (int i = 0; i < n + nopen && *sv->conf.running; i++) {
        if (make_digest(sv, staff[i], day, cutoff, older, now, &err) != BX_OK) {
            bx_warn("digest for %s: %s", staff[i], err.msg);
            bx_metric_add(&m_failures, 1);
            return;
        }
    }
}

/* ---- the loop ---- */

/* Relays until the outbox is empty or a relay fails; true when something was sent. */
static bool relay(notify_service *sv)
{
    bool any = false;
    for (;;) {
        int sent = 0;
        bx_error err = {0};
        if (reconnect(&sv->relay_db, sv->conf.pg_url, &err) != BX_OK) {
            bx_warn("outbox relay: cannot connect to PostgreSQL: %s", err.msg);
            return any;
        }
        bx_status s =
            store_outbox_relay(sv->relay_db, sv->producer, RELAY_MAX, RELAY_WAIT_MS, &sent, &err);
        bx_metric_add(&m_status, sent);
        any = any || sent > 0;
        if (s != BX_OK) {
            bx_warn("outbox relay: %s", err.msg);
            bx_metric_add(&m_failures, 1);
            return any;
        }
        if (sent < RELAY_MAX)
            return any;
    }
}

#define PRUNE_EVERY_MS (60 * 1000)
#define PRUNE_AGE_MS   (24LL * 3600 * 1000) /* relayed status messages kept a day */

#define STEP_SLOW_MS 30000

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *relay_main(void *arg)
{
    notify_service *sv = arg;
    long long last_prune = monotonic_ms();
    while (!atomic_load(&sv->stopping)) {
        if (!relay(sv))
            usleep(IDLE_SLEEP_US);
        if (monotonic_ms() - last_prune >= PRUNE_EVERY_MS && sv->relay_db) {
            last_prune = monotonic_ms();
            int deleted = 0;
            bx_error err = {0};
            if (store_outbox_prune(sv->relay_db, bx_clock_now() - PRUNE_AGE_MS, &deleted, &err) !=
                BX_OK)
                bx_warn("outbox prune: %s", err.msg);
            else if (deleted > 0)
                bx_debug("outbox: %d relayed messages pruned", deleted);
        }
    }
    return NULL;
}

void notify_service_step(notify_service *sv)
{
    bx_error err = {0};
    if (reconnect(&sv->db, sv->conf.pg_url, &err) != BX_OK) {
        atomic_store(&sv->healthy, false);
        bx_warn("cannot connect to PostgreSQL: %s", err.msg);
        sleep(1);
        return;
    }
    long long t0 = monotonic_ms();
    int handled = 0;
    while (handled < POLL_MAX && *sv->conf.running) {
        rd_kafka_message_t *msg = bx_consumer_poll(sv->consumer, handled ? 0 : 100);
        if (msg == NULL)
            break;
        if (msg->err) {
            bx_warn("consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        handle_message(sv, msg);
        rd_kafka_message_destroy(msg);
        handled++;
    }
    long long t1 = monotonic_ms();
    if (handled && bx_consumer_commit(sv->consumer) != BX_OK)
        bx_warn("offset commit failed; the next commit carries them");
    long long t2 = monotonic_ms();
    run_digests(sv);
    long long t3 = monotonic_ms();
    /* A step longer than this keeps the consumer from polling: say where the time went before
     * Kafka's max.poll.interval.ms throws it out of the group. */
    if (t3 - t0 > STEP_SLOW_MS)
        bx_warn("consumer step took %lld ms: %d requests %lld ms, offset commit %lld ms, digests "
                "%lld ms",
                t3 - t0, handled, t1 - t0, t2 - t1, t3 - t2);
}

static bx_status open_worker(notify_service *sv, worker *w, int index, bx_error *err)
{
    w->sv = sv;
    w->index = index;
    char host[64] = "localhost";
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(w->owner, sizeof(w->owner), "%s:%d:%d", host, (int)getpid(), index);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    w->random = (uint32_t)(ts.tv_nsec ^ (getpid() << 8) ^ (index * 2654435761u)) | 1u;
    bx_status s = bx_pg_connect(sv->conf.pg_url, 10000, &w->db, err);
    IFOK(s, bx_redis_connect(sv->conf.redis_url, 10000, &w->redis, err));
    IFOK(s, limits_rate_new(w->redis, sv->conf.rate_key, sv->conf.rate_per_second,
                            sv->conf.rate_burst, &w->rate, err));
    IFOK(s, provider_open(&sv->conf.provider, &w->prov, err));
    return s;
}

static void close_worker(worker *w)
{
    provider_close(w->prov);
    limits_rate_free(w->rate);
    if (w->redis)
        redisFree(w->redis);
    if (w->db)
        PQfinish(w->db);
}

bx_status notify_service_start(const notify_service_conf *conf, notify_service **out, bx_error *err)
{
    *out = NULL;
    notify_service *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return BX_ERR(err, BX_ENOMEM, "service: out of memory");
    sv->conf = *conf;
    atomic_init(&sv->healthy, true);
    atomic_init(&sv->stopping, false);
    pthread_mutex_init(&sv->receipt_lock, NULL);
    bx_metric *metrics[] = {&m_requests,  &m_redelivered, &m_dlq,     &m_sends,    &m_accepted,
                            &m_delivered, &m_dead,        &m_queries, &m_receipts, &m_rate_waits,
                            &m_digests,   &m_status,      &m_failures};
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
        bx_metric_register(metrics[i]);
    bx_status s = bx_pg_connect(conf->pg_url, 10000, &sv->db, err);
    IFOK(s, bx_pg_connect(conf->pg_url, 10000, &sv->receipt_db, err));
    IFOK(s, provider_open(&conf->provider, &sv->receipt_prov, err));
    if (s == BX_OK) {
        sv->provider_name = provider_name(sv->receipt_prov);
        sv->ctx.provider = sv->provider_name;
        sv->ctx.status_topic = conf->status_topic;
    }
    IFOK(s, bx_producer_new(conf->brokers, NULL, &sv->producer, err));
    const char *const topics[] = {conf->requests_topic, NULL};
    const char *const extra[] = {"auto.offset.reset",
                                 conf->offset_reset ? conf->offset_reset : "earliest", NULL};
    IFOK(s, bx_consumer_new(conf->brokers, conf->group, topics, extra, &sv->consumer, err));
    if (s == BX_OK) {
        sv->workers = calloc((size_t)conf->workers, sizeof(*sv->workers));
        if (sv->workers == NULL)
            s = BX_ERR(err, BX_ENOMEM, "service: out of memory");
    }
    for (int i = 0; s == BX_OK && i < conf->workers; i++)
        s = open_worker(sv, &sv->workers[i], i, err);
    if (s == BX_OK && conf->receipt_listen && conf->receipt_listen[0]) {
        struct sockaddr_in addr;
        s = bx_parse_listen(conf->receipt_listen, &addr, err);
        if (s == BX_OK) {
            sv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                                          NULL, NULL, handle_http, sv, MHD_OPTION_SOCK_ADDR, &addr,
                                          MHD_OPTION_NOTIFY_COMPLETED, http_done, sv,
                                          MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                                          MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
            if (sv->daemon == NULL)
                s = BX_ERR(err, BX_EIO, "BX_NOTIFY_RECEIPT_LISTEN: cannot listen on %s",
                           conf->receipt_listen);
        }
    }
    if (s == BX_OK) {
        if (pthread_create(&sv->relay_thread, NULL, relay_main, sv) != 0)
            s = BX_ERR(err, BX_EIO, "cannot start the outbox relay");
        else
            sv->relay_started = true;
    }
    for (int i = 0; s == BX_OK && i < conf->workers; i++) {
        if (pthread_create(&sv->workers[i].thread, NULL, worker_main, &sv->workers[i]) != 0)
            s = BX_ERR(err, BX_EIO, "cannot start worker %d", i);
        else
            sv->workers[i].started = true;
    }
    if (s != BX_OK) {
        notify_service_stop(sv);
        return s;
    }
    bx_info("consuming %s as group %s; %d workers sending through %s; receipts on %s",
            conf->requests_topic, conf->group, conf->workers, sv->provider_name,
            conf->receipt_listen && conf->receipt_listen[0] ? conf->receipt_listen : "(off)");
    *out = sv;
    return BX_OK;
}

void notify_service_stop(notify_service *sv)
{
    if (sv == NULL)
        return;
    atomic_store(&sv->stopping, true);
    for (int i = 0; sv->workers && i < sv->conf.workers; i++)
        if (sv->workers[i].started)
            pthread_join(sv->workers[i].thread, NULL);
    if (sv->daemon)
        MHD_stop_daemon(sv->daemon);
    if (sv->relay_started)
        pthread_join(sv->relay_thread, NULL);
    if (sv->producer)
        relay(sv); /* what the last sends wrote */
    bx_consumer_free(sv->consumer);
    bx_producer_free(sv->producer, 10000);
    for (int i = 0; sv->workers && i < sv->conf.workers; i++)
        close_worker(&sv->workers[i]);
    free(sv->workers);
    provider_close(sv->receipt_prov);
    if (sv->receipt_db)
        PQfinish(sv->receipt_db);
    if (sv->relay_db)
        PQfinish(sv->relay_db);
    if (sv->db)
        PQfinish(sv->db);
    pthread_mutex_destroy(&sv->receipt_lock);
    free(sv);
}

bool notify_service_healthy(void *arg, char *reason, size_t size)
{
    notify_service *sv = arg;
    if (atomic_load(&sv->healthy))
        return true;
    snprintf(reason, size, "the last request failed; retrying");
    return false;
}
