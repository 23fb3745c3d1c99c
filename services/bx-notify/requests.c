/* requests: bx.notify.requests.v1 messages taken: decoded and checked, their recipients looked up,
 * one notification per recipient written with its status message in one transaction (before the
 * offset is stored); a bad request is dead-lettered and a redelivered one left alone. */
#include "service_internal.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_dlq.h"
#include "bx_json.h"
#include "bx_log.h"
#include "bx_pg.h"
#include "bx_retry.h"
#include "recipients.h"
#include "template.h"

#include <assert.h>
#include <pthread.h>
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
    BAD_MISSING,
    BAD_OTHER /* the database refused it (a non-retriable failure) */
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
    if (st == BX_OK && extra && !bx_token_valid(s, max, extra[0] == '*' ? NULL : extra))
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
        if (name == NULL || !bx_token_valid(name, 64, "*") || name[0] < 'a' || name[0] > 'z')
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

/* Whether the len bytes at p hold needle. */
static bool holds(const char *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(p + i, needle, n) == 0)
            return true;
    return false;
}

/* A request with a one-time code ({code}, an activation code) is dead-lettered with the code
 * masked: *copy is the record to send (caller frees), NULL when it holds no "code". When even the
 * copy cannot be made, *drop says to send the letter without its record. */
static void record_without_code(const rd_kafka_message_t *msg, const request *rq, char **copy,
                                bool *drop)
{
    *copy = NULL;
    *drop = false;
    if (!holds(msg->payload, msg->len, "\"code\""))
        return;
    *copy = malloc(msg->len + 1);
    if (*copy == NULL) {
        *drop = true;
        return;
    }
    memcpy(*copy, msg->payload, msg->len);
    (*copy)[msg->len] = '\0';
    const char *code = NULL;
    for (int i = 0; i < rq->nparams; i++)
        if (strcmp(rq->param_names[i], "code") == 0)
            code = rq->param_values[i];
    size_t n = code ? strlen(code) : 0;
    if (n == 0) {
        template_mask_codes(*copy);
        return;
    }
    for (char *p = *copy; p < *copy + msg->len && (p = strstr(p, code)) != NULL; p += n)
        memset(p, '*', n);
}

/* Writes msg's dead letter to the outbox (in the open transaction; the caller counts it once
 * committed). A letter that does not fit its buffer (a record that grows past it when escaped)
 * goes without the record rather than never. */
static bx_status dead_letter(PGconn *db, const rd_kafka_message_t *msg, const request *rq,
                             bx_error *err)
{
    static const char *const reasons[] = {"other",           "malformed",     "invalid_value",
                                          "unknown_student", "missing_field", "other"};
    const char *topic = rd_kafka_topic_name(msg->rkt);
    char event_id[160];
    bx_dlq_event_id(event_id, sizeof(event_id), "bx-notify", topic, (int)msg->partition,
                    (long long)msg->offset);
    bx_time_ms now = bx_clock_now();
    bx_dlq_letter l = {
        .event_id = event_id,
        .source = "bx-notify",
        .endpoint = topic,
        .record_index = -1,
        .line = -1,
        .field = rq->field[0] ? rq->field : NULL,
        .reason = reasons[rq->bad],
        .error = rq->error,
        .record = msg->payload,
        .record_len = msg->len,
        .record_kind = rq->bad == BAD_MALFORMED ? BX_DLQ_RECORD_TEXT : BX_DLQ_RECORD_JSON,
        .record_max = DLQ_RECORD_MAX,
        .received_at = now,
    };
    char *masked = NULL;
    bool drop = false;
    record_without_code(msg, rq, &masked, &drop);
    if (masked != NULL)
        l.record = masked;
    else if (drop)
        l.record = NULL;
    bx_buf b;
    bx_buf_init(&b, 4 * DLQ_RECORD_MAX);
    bx_status s = bx_dlq_build(&l, &b, err);
    free(masked);
    if (s == BX_ENOMEM) {
        bx_buf_reset(&b);
        l.record = NULL;
        s = bx_dlq_build(&l, &b, err);
    }
    IFOK(s, notify_outbox_add(db, BX_TOPIC_DLQ, rq->student_id[0] ? rq->student_id : "unknown",
                              b.data, now, err));
    bx_buf_free(&b);
    return s;
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
    refuse(rq, BAD_INVALID, "template", PATH ".template: %s", err.msg);
    return false;
}

static recipients_cache *intake_cache(const notify_service *sv);

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
    bx_status s = most >= 0 ? recipients_cache_place(intake_cache(sv), sv->db,
                                                     (recipients_place)most, given[most], ctx, err)
                            : BX_OK;
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

/* The request's parameter name as a time ("2026-09-28T17:00:00+08:00"); 0 when absent or not
 * a time. */
static bx_time_ms param_time(const request *rq, const char *name)
{
    for (int i = 0; i < rq->nparams; i++) {
        bx_time_ms t = 0;
        if (strcmp(rq->param_names[i], name) == 0 &&
            bx_time_parse(rq->param_values[i], &t) == BX_OK)
            return t;
    }
    return 0;
}

/* What every notification of one request shares. */
typedef struct taking {
    recipients_context ctx;
    bool guardian;
    bool collect;     /* a task collected for the daily digest */
    const char *sign; /* the school's name, or the county's for a county's report */
    bx_time_ms now;
    bx_time_ms due; /* not_before, or now */
    char text[TEXT_MAX];
} taking;

/* What every notification of the request carries: queued for its send time by SMS. */
static notify_store_new notification_of(const request *rq, const taking *tk)
{
    return (notify_store_new){.request_id = rq->request_id,
                              .to_guardian = tk->guardian,
                              .channel = "sms",
                              .student_id = rq->student_id[0] ? rq->student_id : NULL,
                              .case_id = rq->case_id[0] ? rq->case_id : NULL,
                              .template_name = rq->template_name,
                              .sign_name = tk->sign,
                              .body = tk->text,
                              .state = DISPATCH_QUEUED,
                              .due_at = tk->due};
}

/* The recipient's notification as it is written: queued for its send time, collected for the
 * digest, or dead for a staff member without a mobile number (reason, of reason_size bytes, then
 * says so). */
static notify_store_new notification_for(const request *rq, const taking *tk, const recipient *r,
                                         char *reason, size_t reason_size)
{
    notify_store_new nw = notification_of(rq, tk);
    nw.recipient = r->address;
    nw.recipient_masked = r->masked;
    nw.staff_id = tk->guardian ? NULL : r->staff_id;
    if (tk->collect) {
        nw.channel = "task";
        nw.state = DISPATCH_COLLECTED; /* for the daily digest */
    } else if (!tk->guardian) {
        if (r->phone[0]) {
            nw.recipient = r->phone; /* the daily cap counts per phone */
        } else {
            nw.state = DISPATCH_DEAD;
            snprintf(reason, reason_size, "staff %s has no mobile number", r->staff_id);
            nw.reason = reason;
        }
    }
    return nw;
}

/* ---- a poll's requests, taken in one transaction ---- */

/* One message of a poll as it is taken. */
typedef struct intake_item {
    const rd_kafka_message_t *msg; /* borrowed for the poll */
    request rq;
    bool parsed; /* the message is a well-formed request (rq.bad may still be set by a lookup) */
    int student; /* its student among the poll's (-1: none) */
    taking tk;
    recipient people[RECIPIENTS_MAX];
    notify_store_new nw[RECIPIENTS_MAX];
    char reasons[RECIPIENTS_MAX][96];
    int count;  /* notifications to write (>= 1 for a good request) */
    bool again; /* taken before, or earlier in this poll: nothing is written */
    bool fresh; /* taken now */
    int dead;   /* notifications written dead */
} intake_item;

/* A poll's messages and what is written for them. */
typedef struct intake_poll {
    rd_kafka_message_t **msgs; /* owned while the poll is in flight */
    intake_item *items;
    int n;
    bx_time_ms now;
    notify_store_take *takes;
    const char **seen_ids;
    bool *seen;
    bx_status status; /* of its transaction */
    char error[512];
    bool claimed; /* a writer took it */
    bool done;    /* written or failed (status) */
} intake_poll;

/* Writers of prepared polls, each on a connection of its own: two polls are written at once while
 * the main thread prepares a third. Their offsets are stored in the order of the polls. */
#define INTAKE_WRITERS 2
#define INTAKE_POLLS   (INTAKE_WRITERS + 1)

typedef struct intake_writer {
    notify_service *sv;
    int index;
    pthread_t thread;
    bool started;
    PGconn *db;
} intake_writer;

/* What taking requests needs: the main thread prepares a poll (parsed, looked up, rendered) while
 * the writers write the ones before. */
typedef struct notify_intake {
    int max; /* messages per poll */
    /* the main thread's, for the poll it prepares */
    const char **student_ids;
    bool *want_guardians, *found;
    recipients_student *students;
    int nstudents;
    recipients_cache *cache;
    /* one poll prepared while the others are written */
    intake_poll polls[INTAKE_POLLS];
    intake_poll *flight[INTAKE_WRITERS]; /* handed to the writers, oldest first */
    int nflight;                         /* not yet finished by the main thread */
    intake_poll *single;                 /* one message taken on its own (one by one) */
    intake_writer writers[INTAKE_WRITERS];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping; /* the writers end once nothing is left to claim */
} notify_intake;

static recipients_cache *intake_cache(const notify_service *sv)
{
    return sv->intake->cache;
}

static bx_status poll_new(intake_poll *p, int max, bx_error *err)
{
    p->msgs = calloc((size_t)max, sizeof(*p->msgs));
    p->items = calloc((size_t)max, sizeof(*p->items));
    p->takes = calloc((size_t)max, sizeof(*p->takes));
    p->seen_ids = calloc((size_t)max, sizeof(*p->seen_ids));
    p->seen = calloc((size_t)max, sizeof(*p->seen));
    if (!p->msgs || !p->items || !p->takes || !p->seen_ids || !p->seen)
        return BX_ERR(err, BX_ENOMEM, "requests: out of memory for %d requests a poll", max);
    return BX_OK;
}

static void poll_free(intake_poll *p)
{
    for (int i = 0; p->msgs && i < p->n; i++)
        rd_kafka_message_destroy(p->msgs[i]);
    free(p->msgs);
    free(p->items);
    free(p->takes);
    free(p->seen_ids);
    free(p->seen);
}

static void *writer_main(void *arg);

bx_status notify_requests_open(notify_service *sv, bx_error *err)
{
    int max = sv->conf.intake_batch > 0 ? sv->conf.intake_batch : 1;
    notify_intake *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return BX_ERR(err, BX_ENOMEM, "requests: out of memory");
    sv->intake = in;
    in->max = max;
    pthread_mutex_init(&in->lock, NULL);
    pthread_cond_init(&in->wake, NULL);
    in->student_ids = calloc((size_t)max, sizeof(*in->student_ids));
    in->want_guardians = calloc((size_t)max, sizeof(*in->want_guardians));
    in->found = calloc((size_t)max, sizeof(*in->found));
    in->students = calloc((size_t)max, sizeof(*in->students));
    in->single = calloc(1, sizeof(*in->single));
    if (!in->student_ids || !in->want_guardians || !in->found || !in->students || !in->single)
        return BX_ERR(err, BX_ENOMEM, "requests: out of memory for %d requests a poll", max);
    bx_status s = BX_OK;
    for (int i = 0; i < INTAKE_POLLS && s == BX_OK; i++)
        s = poll_new(&in->polls[i], max, err);
    IFOK(s, poll_new(in->single, 1, err));
    IFOK(s, recipients_cache_new(&in->cache, err));
    for (int i = 0; i < INTAKE_WRITERS && s == BX_OK; i++) {
        intake_writer *w = &in->writers[i];
        w->sv = sv;
        w->index = i;
        s = bx_pg_connect(sv->conf.pg_url, PG_WAIT_MS, &w->db, err);
        if (s == BX_OK && pthread_create(&w->thread, NULL, writer_main, w) != 0)
            s = BX_ERR(err, BX_EIO, "requests: cannot start writer %d", i);
        else if (s == BX_OK)
            w->started = true;
    }
    return s;
}

void notify_requests_close(notify_service *sv)
{
    notify_intake *in = sv->intake;
    if (in == NULL)
        return;
    pthread_mutex_lock(&in->lock);
    in->stopping = true;
    pthread_cond_broadcast(&in->wake);
    pthread_mutex_unlock(&in->lock);
    for (int i = 0; i < INTAKE_WRITERS; i++)
        if (in->writers[i].started)
            pthread_join(in->writers[i].thread, NULL);
    /* a poll still in flight: its offsets were stored if it was written, else it comes again */
    recipients_cache_free(in->cache);
    free(in->student_ids);
    free(in->want_guardians);
    free(in->found);
    free(in->students);
    for (int i = 0; i < INTAKE_POLLS; i++)
        poll_free(&in->polls[i]);
    if (in->single) {
        in->single->n = 0; /* its message is the caller's */
        poll_free(in->single);
        free(in->single);
    }
    for (int i = 0; i < INTAKE_WRITERS; i++)
        if (in->writers[i].db)
            PQfinish(in->writers[i].db);
    pthread_cond_destroy(&in->wake);
    pthread_mutex_destroy(&in->lock);
    free(in);
    sv->intake = NULL;
}

/* The poll's students, looked up in one query: each good request with a student points at its
 * entry (it->student), and guardians are read for those a guardian request names. */
static bx_status load_students(notify_service *sv, intake_item *it, int n, bx_time_ms now,
                               bx_error *err)
{
    notify_intake *in = sv->intake;
    in->nstudents = 0;
    for (int i = 0; i < n; i++) {
        it[i].student = -1;
        if (it[i].rq.bad != BAD_NONE || it[i].rq.student_id[0] == '\0')
            continue;
        bool guardian = strcmp(it[i].rq.role, "guardian") == 0;
        int k = 0;
        while (k < in->nstudents && strcmp(in->student_ids[k], it[i].rq.student_id) != 0)
            k++;
        if (k == in->nstudents) {
            in->student_ids[k] = it[i].rq.student_id;
            in->want_guardians[k] = false;
            in->nstudents++;
        }
        in->want_guardians[k] = in->want_guardians[k] || guardian;
        it[i].student = k;
    }
    return recipients_students_load(sv->db, in->student_ids, in->want_guardians, in->nstudents,
                                    bx_time_local_date(now), in->students, in->found, err);
}

/* Works out one good request's notifications (it->count of them in it->nw) from the lookups, or
 * marks it bad (it->rq.bad) for its dead letter. Errors are the cache's reads of PostgreSQL. */
static bx_status resolve(notify_service *sv, intake_item *it, bx_time_ms now, bx_error *err)
{
    request *rq = &it->rq;
    taking *tk = &it->tk;
    const template_set *ts = sv->conf.templates;
    tk->now = now;
    tk->guardian = strcmp(rq->role, "guardian") == 0;
    memset(&tk->ctx, 0, sizeof(tk->ctx));
    bx_status s = BX_OK;
    if (rq->student_id[0] == '\0') {
        s = place_of_request(sv, rq, &tk->ctx, err);
    } else if (!sv->intake->found[it->student]) {
        refuse(rq, BAD_UNKNOWN_STUDENT, "student_id", PATH ".student_id: %s is not in the registry",
               rq->student_id);
    } else {
        tk->ctx = sv->intake->students[it->student].ctx;
    }
    if (s != BX_OK || rq->bad != BAD_NONE)
        return s;
    if (tk->guardian != template_for_guardian(ts, rq->template_name) &&
        template_exists(ts, rq->template_name)) {
        refuse(rq, BAD_INVALID, "template", PATH ".template: %s is not meant for %s",
               rq->template_name, tk->guardian ? "guardians" : "staff");
        return BX_OK;
    }
    int n = 0;
    if (tk->guardian) {
        const recipients_student *st = &sv->intake->students[it->student];
        for (n = 0; n < st->nguardians; n++)
            it->people[n] = st->guardians[n];
    } else {
        s = recipients_cache_staff(sv->intake->cache, sv->db, &tk->ctx, rq->role, rq->staff_id,
                                   it->people, RECIPIENTS_MAX, &n, err);
        if (s != BX_OK)
            return s;
    }
    /* a task is collected for the daily digest, unless its template is delivered at once (a
     * county's report is read, not done: it does not wait for tomorrow's list) or the task is due
     * before the digest could tell its owner in time (issue 15: it goes now as its own SMS) */
    tk->collect = strcmp(rq->channel, "task") == 0 && !template_immediate(ts, rq->template_name) &&
                  !dispatch_task_timely(sv->conf.digest_minute, now, param_time(rq, "due_at"));
    tk->sign = tk->ctx.school[0] ? tk->ctx.school : tk->ctx.county;
    tk->due = rq->not_before > now ? rq->not_before : now;
    vars vs;
    vars_fill(&vs, &tk->ctx, rq, now, tk->guardian);
    if (!render(sv, rq, &vs, tk->text))
        return BX_OK; /* the same text for every recipient */
    if (n == 0) {
        /* Nobody to reach is an outcome too: one notification to "none", recorded and
         * published, dead with the reason. */
        notify_store_new *nw = &it->nw[0];
        *nw = notification_of(rq, tk);
        nw->recipient = nw->recipient_masked = "none";
        nw->channel = tk->collect ? "task" : "sms";
        nw->state = DISPATCH_DEAD;
        nw->due_at = 0;
        nw->reason =
            tk->guardian ? "no guardian with a mobile number" : "no staff member of the role found";
        it->count = 1;
        return BX_OK;
    }
    for (int i = 0; i < n; i++)
        it->nw[i] =
            notification_for(rq, tk, &it->people[i], it->reasons[i], sizeof(it->reasons[i]));
    it->count = n;
    return BX_OK;
}

/* Whether an earlier good request of the poll has the same request id. */
static bool taken_earlier(const intake_item *it, int i)
{
    for (int j = 0; j < i; j++)
        if (it[j].rq.bad == BAD_NONE && strcmp(it[j].rq.request_id, it[i].rq.request_id) == 0)
            return true;
    return false;
}

/* Prepares a poll on the main thread's connection: parses its messages, looks up their students
 * (one query), places and staff (held in memory) and renders every good request's notifications
 * or marks it bad. Nothing is written. */
static bx_status prepare_poll(notify_service *sv, intake_poll *p, bx_error *err)
{
    intake_item *it = p->items;
    p->now = bx_clock_now();
    for (int i = 0; i < p->n; i++) {
        it[i].msg = p->msgs[i];
        parse_message(it[i].msg, &it[i].rq);
        it[i].parsed = it[i].rq.bad == BAD_NONE;
        it[i].count = it[i].dead = 0;
        it[i].again = it[i].fresh = false;
    }
    long long t0 = bx_monotonic_ms();
    bx_status s = recipients_cache_check(sv->intake->cache, sv->db, err);
    IFOK(s, load_students(sv, it, p->n, p->now, err));
    long long t1 = bx_monotonic_ms();
    for (int i = 0; i < p->n && s == BX_OK; i++)
        if (it[i].parsed)
            s = resolve(sv, &it[i], p->now, err);
    if (s == BX_OK)
        bx_log_debug("%d requests prepared: lookups %lld ms, rendering %lld ms", p->n, t1 - t0,
                     bx_monotonic_ms() - t1);
    return s;
}

/* Writes a prepared poll in one transaction on db: every good request's notifications and status
 * messages, every bad one's dead letter; a request taken before (a redelivery, also within the
 * poll) writes nothing, and neither does one whose lookups made it bad when it was taken before.
 * On failure everything is rolled back; on success the messages are counted and logged. */
static bx_status write_poll(notify_service *sv, PGconn *db, intake_poll *p, bx_error *err)
{
    intake_item *it = p->items;
    int n = p->n;
    long long t0 = bx_monotonic_ms();
    /* a request its lookups made bad is left alone when it was taken before: a redelivery */
    int nseen = 0;
    for (int i = 0; i < n; i++)
        if (it[i].parsed && it[i].rq.bad != BAD_NONE)
            p->seen_ids[nseen++] = it[i].rq.request_id;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    if (nseen > 0)
        IFOK(s, notify_store_requests_seen(db, p->seen_ids, nseen, p->seen, err));
    int ntakes = 0, k = 0;
    for (int i = 0; i < n && s == BX_OK; i++) {
        it[i].again = false;
        if (it[i].parsed && it[i].rq.bad != BAD_NONE)
            it[i].again = p->seen[k++] || taken_earlier(it, i);
        else if (it[i].rq.bad == BAD_NONE && (it[i].again = taken_earlier(it, i)) == false)
            p->takes[ntakes++] = (notify_store_take){
                .request_id = it[i].rq.request_id, .notifications = it[i].nw, .count = it[i].count};
    }
    IFOK(s, notify_store_take_batch(db, &sv->ctx, p->takes, ntakes, p->now, err));
    k = 0;
    for (int i = 0; i < n && s == BX_OK; i++) {
        if (it[i].rq.bad == BAD_NONE && !it[i].again) {
            it[i].fresh = p->takes[k].fresh;
            it[i].dead = p->takes[k++].dead;
        } else if (it[i].rq.bad != BAD_NONE && !it[i].again) {
            s = dead_letter(db, it[i].msg, &it[i].rq, err);
        }
    }
    long long t1 = bx_monotonic_ms();
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    bx_log_debug("%d requests written together: writing %lld ms, commit %lld ms", n, t1 - t0,
                 bx_monotonic_ms() - t1);
    for (int i = 0; i < n; i++) {
        const request *rq = &it[i].rq;
        if (rq->bad != BAD_NONE && !it[i].again) {
            bx_metric_add(&notify_m.dlq, 1);
            bx_log_warn("%s [%d] offset %lld: dead-lettered: %s",
                        rd_kafka_topic_name(it[i].msg->rkt), (int)it[i].msg->partition,
                        (long long)it[i].msg->offset, rq->error);
        } else if (it[i].fresh) {
            bx_metric_add(&notify_m.requests, 1);
            bx_metric_add(&notify_m.dead, it[i].dead);
            bx_log_debug("request %s: %d notifications", rq->request_id, it[i].count);
        } else {
            bx_metric_add(&notify_m.redelivered, 1);
            bx_log_info("request %s seen before: nothing sent", rq->request_id);
        }
    }
    return BX_OK;
}

/* bx_retry_run's view of one message taken on its own. */
typedef struct message_try {
    notify_service *sv;
    intake_poll *p; /* sv->intake->single, holding the message */
    bx_status last; /* the last try's status */
} message_try;

/* A failure the input causes is not the service's health: it is dead-lettered and passes. */
static bx_status note_try(message_try *t, bx_status s)
{
    t->last = s;
    atomic_store(&t->sv->healthy, s == BX_OK || !bx_status_is_retriable(s));
    if (s != BX_OK)
        bx_metric_add(&notify_m.failures, 1);
    return s;
}

/* Which class a failure is decides what happens to the message: the database's refusal of a
 * value (BX_EINVAL, from SQLSTATE classes 22 and 23) is the input's and dead-letters it; a lost
 * connection or another outage (BX_ETRANSIENT, BX_EIO) is retried until it passes. */
static bx_status try_message(void *arg, bx_error *err)
{
    message_try *t = arg;
    if (t->sv->db == NULL)
        return note_try(t, BX_ERR(err, BX_ETRANSIENT, "no connection to PostgreSQL"));
    bx_status s = prepare_poll(t->sv, t->p, err);
    IFOK(s, write_poll(t->sv, t->sv->db, t->p, err));
    return note_try(t, s);
}

/* The dead letter of a message that failed for good (t->p's item says why), on its own. */
static bx_status try_dead_letter(void *arg, bx_error *err)
{
    message_try *t = arg;
    if (t->sv->db == NULL)
        return note_try(t, BX_ERR(err, BX_ETRANSIENT, "no connection to PostgreSQL"));
    bx_status s = bx_pg_exec(t->sv->db, "BEGIN", err);
    IFOK(s, dead_letter(t->sv->db, t->p->msgs[0], &t->p->items[0].rq, err));
    IFOK(s, bx_pg_exec(t->sv->db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(t->sv->db);
    else
        bx_metric_add(&notify_m.dlq, 1);
    return note_try(t, s);
}

static void reconnect_db(void *arg)
{
    message_try *t = arg;
    bx_error err = {0};
    if (bx_pg_reconnect(&t->sv->db, t->sv->conf.pg_url, PG_WAIT_MS, &err) != BX_OK)
        bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
}

/* One message on its own, on the main thread's connection, retried until it is taken or
 * dead-lettered, or the service stops. The message stays the caller's. */
static void take_one(notify_service *sv, rd_kafka_message_t *msg)
{
    intake_poll *p = sv->intake->single;
    p->msgs[0] = msg;
    p->n = 1;
    char what[320];
    snprintf(what, sizeof(what), "%s [%d] offset %lld", rd_kafka_topic_name(msg->rkt),
             (int)msg->partition, (long long)msg->offset);
    message_try t = {sv, p, BX_OK};
    bx_retry_ops ops = {
        .attempt = try_message, .recover = reconnect_db, .running = sv->conf.running, .what = what};
    bx_error err = {0};
    bx_retry_verdict v = bx_retry_run(&ops, &t, &err);
    if (v == BX_RETRY_DEADLETTER) {
        refuse(&p->items[0].rq, t.last == BX_EINVAL ? BAD_INVALID : BAD_OTHER, "", "%s", err.msg);
        bx_log_warn("%s: dead-lettered: %s", what, p->items[0].rq.error);
        ops.attempt = try_dead_letter;
        v = bx_retry_run(&ops, &t, &err);
    }
    if (v == BX_RETRY_DEADLETTER) /* the dead letter itself refused: said, and passed over */
        bx_log_error("%s: cannot be dead-lettered (%s); skipped", what, err.msg);
    /* BX_RETRY_STOPPED: the service stops and the message comes again to whoever takes over */
    if (v != BX_RETRY_STOPPED)
        bx_consumer_done(sv->consumer, msg);
    p->n = 0;
}

/* A writer thread: writes the oldest poll no writer has taken, on its own connection. Its offsets
 * are the main thread's to store (finish_oldest), in the order of the polls. */
static void *writer_main(void *arg)
{
    intake_writer *w = arg;
    notify_service *sv = w->sv;
    notify_intake *in = sv->intake;
    for (;;) {
        pthread_mutex_lock(&in->lock);
        intake_poll *p = NULL;
        for (;;) {
            for (int i = 0; i < in->nflight && p == NULL; i++)
                if (!in->flight[i]->claimed)
                    p = in->flight[i];
            if (p != NULL || in->stopping)
                break;
            pthread_cond_wait(&in->wake, &in->lock);
        }
        if (p == NULL) {
            pthread_mutex_unlock(&in->lock);
            return NULL;
        }
        p->claimed = true;
        pthread_mutex_unlock(&in->lock);
        bx_error err = {0};
        bx_status s = bx_pg_reconnect(&w->db, sv->conf.pg_url, PG_WAIT_MS, &err);
        IFOK(s, write_poll(sv, w->db, p, &err));
        if (s == BX_OK) {
            atomic_store(&sv->healthy, true);
            bx_metric_add(&notify_m.intake_polls, 1);
        }
        p->status = s;
        snprintf(p->error, sizeof(p->error), "%s", err.msg);
        pthread_mutex_lock(&in->lock);
        p->done = true;
        pthread_cond_broadcast(&in->wake);
        pthread_mutex_unlock(&in->lock);
    }
}

/* Waits for the oldest poll in the writers' hands; when it was written its offsets are stored,
 * when it failed its messages are taken one by one (a request the database refuses is
 * dead-lettered on its own, an outage waited out). Then its messages are destroyed. A poll
 * written after it may already be committed: a request in both is taken once all the same (the
 * request row decides), and offsets are stored in the order of the polls. */
static void finish_oldest(notify_service *sv)
{
    notify_intake *in = sv->intake;
    if (in->nflight == 0)
        return;
    intake_poll *p = in->flight[0];
    pthread_mutex_lock(&in->lock);
    while (!p->done)
        pthread_cond_wait(&in->wake, &in->lock);
    for (int i = 1; i < in->nflight; i++)
        in->flight[i - 1] = in->flight[i];
    in->nflight--;
    pthread_mutex_unlock(&in->lock);
    if (p->status == BX_OK) {
        for (int i = 0; i < p->n; i++)
            bx_consumer_done(sv->consumer, p->msgs[i]);
    } else {
        bx_metric_add(&notify_m.failures, 1);
        bx_log_warn("taking %d requests together failed (%s); taking them one by one", p->n,
                    p->error);
        for (int i = 0; i < p->n && *sv->conf.running; i++)
            take_one(sv, p->msgs[i]);
    }
    for (int i = 0; i < p->n; i++)
        rd_kafka_message_destroy(p->msgs[i]);
    p->n = 0;
}

static void finish_all(notify_service *sv)
{
    while (sv->intake->nflight > 0)
        finish_oldest(sv);
}

/* A poll no writer holds. */
static intake_poll *free_poll(notify_intake *in)
{
    for (int i = 0; i < INTAKE_POLLS; i++) {
        bool busy = false;
        for (int k = 0; k < in->nflight; k++)
            busy = busy || in->flight[k] == &in->polls[i];
        if (!busy)
            return &in->polls[i];
    }
    return NULL; /* unreachable: more polls than writers */
}

void notify_requests_take(notify_service *sv, rd_kafka_message_t *const *msgs, int n)
{
    notify_intake *in = sv->intake;
    intake_poll *p = free_poll(in);
    assert(p != NULL);
    bx_error err = {0};
    bx_status s = BX_ETRANSIENT;
    p->n = n < in->max ? n : in->max; /* the caller polls at most that many */
    for (int i = 0; i < p->n; i++)
        p->msgs[i] = msgs[i];
    for (int i = p->n; i < n; i++)
        rd_kafka_message_destroy(msgs[i]); /* not taken: they come again */
    /* this poll is prepared while the ones before are written */
    if (p->n > 1 && sv->db != NULL)
        s = prepare_poll(sv, p, &err);
    if (s != BX_OK) {
        finish_all(sv); /* the polls before first */
        if (p->n > 1 && sv->db != NULL)
            bx_log_warn("preparing %d requests failed (%s); taking them one by one", p->n, err.msg);
        for (int i = 0; i < p->n && *sv->conf.running; i++)
            take_one(sv, p->msgs[i]);
        for (int i = 0; i < p->n; i++)
            rd_kafka_message_destroy(p->msgs[i]);
        p->n = 0;
        return;
    }
    if (in->nflight == INTAKE_WRITERS)
        finish_oldest(sv);
    pthread_mutex_lock(&in->lock);
    p->claimed = false;
    p->done = false;
    in->flight[in->nflight++] = p;
    pthread_cond_broadcast(&in->wake);
    pthread_mutex_unlock(&in->lock);
}

void notify_requests_flush(notify_service *sv)
{
    if (sv->intake)
        finish_all(sv);
}
