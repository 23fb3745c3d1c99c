/* requests: bx.notify.requests.v1 messages taken: decoded and checked, their recipients looked up,
 * one notification per recipient written with its status message in one transaction (before the
 * offset is stored); a bad request is dead-lettered and a redelivered one left alone. */
#include "service_internal.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_json.h"
#include "bx_log.h"
#include "bx_pg.h"
#include "recipients.h"
#include "template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DLQ_RECORD_MAX 65536 /* a bigger rejected message is dead-lettered without its bytes */

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
        bx_metric_add(&notify_m.dlq, 1);
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
            bx_metric_add(&notify_m.dead, 1);
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
            bx_metric_add(&notify_m.dead, 1);
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
        bx_metric_add(&notify_m.requests, 1);
        bx_debug("request %s: %d notifications", rq->request_id, count);
    } else if (rq->bad == BAD_NONE) {
        bx_metric_add(&notify_m.redelivered, 1);
        bx_info("request %s seen before: nothing sent", rq->request_id);
    }
    return BX_OK;
}

void notify_requests_handle(notify_service *sv, const rd_kafka_message_t *msg)
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
        bx_metric_add(&notify_m.failures, 1);
        bx_error("%s [%d] offset %lld failed (%s); retrying in %d ms",
                 rd_kafka_topic_name(msg->rkt), (int)msg->partition, (long long)msg->offset,
                 err.msg, backoff_ms);
        if (!*sv->conf.running)
            return;
        usleep((useconds_t)backoff_ms * 1000);
        backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
        bx_error cerr = {0};
        if (notify_reconnect(&sv->db, sv->conf.pg_url, &cerr) != BX_OK)
            bx_warn("cannot reconnect to PostgreSQL: %s", cerr.msg);
        if (!*sv->conf.running)
            return;
    }
}
