/* page_write: the teacher's writes go through bx-ingest's own validation and publishing (its
 * library, not a copy), with the signed-in person as the writer; plus the process-wide state the
 * pages share (the store, the duplicate-check batcher) and the steps every page repeats: the scope
 * check answered as a missing page, the class of a teacher's page, a form's token, a message sent
 * and acknowledged. */
#include "bx_log.h"
#include "console.h"
#include "dedup.h"
#include "ingest.h"
#include "page_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer than the producer's message.timeout.ms (30 s, bx_kafka.c): by then every message has
 * its verdict, so the delivery slots are never freed under a pending callback. */
#define PAGE_ACK_TIMEOUT_MS 35000

console_store *page_store(const console_request *req, bx_error *err)
{
    const page_state *ps = req->pages;
    if (ps == NULL || ps->store == NULL) {
        BX_ERR(err, BX_EFATAL, "pages: no store");
        return NULL;
    }
    return ps->store;
}

bool page_without_worklist(const console_person *me)
{
    return me->role == CONSOLE_CITY_OFFICER || me->role == CONSOLE_PROVINCE_OFFICER;
}

bx_date page_today(const console_request *req, char text[11])
{
    bx_date d = bx_time_local_date(req->now);
    if (text)
        bx_date_format(d, text);
    return d;
}

typedef bx_status (*place_of_fn)(const console_request *req, const char *id, console_place *place,
                                 console_object *o, bx_error *err);

/* Whether the person may do a on the object that place_of finds; an unknown one is not allowed. */
static bx_status may(const console_request *req, place_of_fn place_of, const char *id,
                     console_action a, bool *allowed, bx_error *err)
{
    console_place place;
    console_object o;
    *allowed = false;
    bx_status s = place_of(req, id, &place, &o, err);
    if (s == BX_ENOTFOUND)
        return BX_OK;
    if (s == BX_OK)
        *allowed = console_may(req->person, a, &o);
    return s;
}

bx_status page_may_class(const console_request *req, const char *class_id, console_action a,
                         bool *allowed, bx_error *err)
{
    return may(req, console_class_place, class_id, a, allowed, err);
}

bx_status page_may_student(const console_request *req, const char *student_id, console_action a,
                           bool *allowed, bx_error *err)
{
    return may(req, console_student_place, student_id, a, allowed, err);
}

bool page_found(console_reply *rep, bx_status s, bool found)
{
    if (s == BX_OK && !found)
        console_not_found(rep);
    return s == BX_OK && found;
}

bool page_admit_class(const console_request *req, console_reply *rep, const char *class_id,
                      console_action a, bx_status *s, bx_error *err)
{
    bool allowed = false;
    *s = page_may_class(req, class_id, a, &allowed, err);
    return page_found(rep, *s, allowed);
}

bool page_admit_student(const console_request *req, console_reply *rep, const char *student_id,
                        console_action a, bx_status *s, bx_error *err)
{
    bool allowed = false;
    *s = page_may_student(req, student_id, a, &allowed, err);
    return page_found(rep, *s, allowed);
}

bool page_form_ok(console_reply *rep, const char *back, bool ok)
{
    if (!ok)
        console_redirect(rep, back, "表单已失效，请重新填写");
    return ok;
}

bool page_lookup_found(console_reply *rep, bx_status *s)
{
    if (*s != BX_ENOTFOUND)
        return *s == BX_OK;
    console_not_found(rep);
    *s = BX_OK;
    return false;
}

bx_status page_auditf(const console_request *req, const char *action, const char *student_id,
                      bx_error *err, const char *fmt, ...)
{
    char detail[PAGE_AUDIT_DETAIL];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return console_audit(req, action, student_id, detail, err);
}

void page_put_form(const console_request *req, tmpl_ctx *ctx, char today[11])
{
    char day[11], token[PAGE_TOKEN_SIZE];
    page_today(req, day);
    page_new_token(token);
    tmpl_put(ctx, "today", day);
    tmpl_put(ctx, "token", token);
    if (today)
        memcpy(today, day, sizeof(day));
}

void page_put_option(tmpl_ctx *ctx, const char *list, const char *value, const char *label,
                     bool selected)
{
    tmpl_ctx *row = tmpl_add_row(ctx, list);
    tmpl_put(row, "value", value);
    tmpl_put(row, "label", label);
    tmpl_put_bool(row, "selected", selected);
}

bx_status page_class_load(console_request *req, console_reply *rep, const char *class_id,
                          int period, bool scored, const char *audit_action, const char *detail,
                          page_class_day *d, bool *found, bx_error *err)
{
    memset(d, 0, sizeof(*d));
    *found = false;
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    d->day = page_today(req, d->today);
    bx_status s = console_store_class(store, req->db, class_id, d->day, &d->info, err);
    if (!page_lookup_found(rep, &s))
        return s;
    IFOK(s,
         console_store_rollcall_state(store, req->redis, class_id, d->day, period, &d->state, err));
    IFOK(s, console_store_class_rows(store, req->db, req->redis, class_id, d->day, period, scored,
                                     &d->rows, &d->n, err));
    char class_detail[64];
    snprintf(class_detail, sizeof(class_detail), "class=%s", class_id);
    IFOK(s, console_audit(req, audit_action, NULL, detail ? detail : class_detail, err));
    if (s != BX_OK) {
        page_class_day_free(d);
        return s;
    }
    *found = true;
    return BX_OK;
}

void page_class_day_free(page_class_day *d)
{
    free(d->rows);
    d->rows = NULL;
    d->n = 0;
}

bx_status page_send_acked(const console_request *req, const char *topic, const char *key,
                          const char *msg, size_t len, bx_error *err)
{
    if (req->producer == NULL)
        return BX_ERR(err, BX_EIO, "no Kafka producer");
    bx_delivery_wait *wait = bx_delivery_wait_new();
    bx_delivery_slot *slot = calloc(1, sizeof(*slot)); /* outlives us if Kafka never answers */
    if (wait == NULL || slot == NULL) {
        bx_delivery_wait_free(wait);
        free(slot);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    bx_delivery_slot_arm(slot, wait);
    if (bx_producer_send(req->producer, topic, key, strlen(key), msg, len, bx_delivery_slot_done,
                         slot) != BX_OK)
        bx_delivery_slot_done(slot, RD_KAFKA_RESP_ERR__FAIL);
    if (bx_delivery_wait_all(wait, PAGE_ACK_TIMEOUT_MS) != BX_OK)
        return BX_ERR(err, BX_ETIMEOUT, "%s: Kafka gave no verdict", topic); /* slot leaked */
    bx_status s = slot->err == RD_KAFKA_RESP_ERR_NO_ERROR
                      ? BX_OK
                      : BX_ERR(err, BX_EIO, "%s: %s", topic, rd_kafka_err2str(slot->err));
    bx_delivery_wait_free(wait);
    free(slot);
    return s;
}

/* The accepted client ids go to bx-ingest's memory, as its server does. */
static void remember_accepted(void *arg, const ingest_ctx *ctx, const char *const *keys, size_t n)
{
    dedup_batcher *dedup = arg;
    const char *school = ctx->school_id ? ctx->school_id : "";
    if (dedup_remember(dedup, school, keys, n, ctx->endpoint) != BX_OK)
        bx_log_warn("staff %s %s: accepted ids not remembered", ctx->staff_id, ctx->endpoint);
}

typedef struct parse_arg {
    ingest_ctx *ctx;
    page_endpoint ep;
    const char *body;
    size_t len;
    ingest_batch *batch;
    const char *reason;
    bx_status parsed;
    bx_error *err;
} parse_arg;

static bx_status parse_with_registry(const bx_registry *registry,
                                     const struct ingest_staff_dir *staff, void *arg)
{
    parse_arg *a = arg;
    a->ctx->registry = registry;
    a->ctx->staff = staff;
    switch (a->ep) {
    case PAGE_EP_ROLLCALL:
        a->parsed = ingest_parse_rollcall(a->ctx, a->body, a->len, a->batch, &a->reason, a->err);
        break;
    case PAGE_EP_LEAVE:
        a->parsed = ingest_parse_leave(a->ctx, a->body, a->len, a->batch, a->err);
        break;
    case PAGE_EP_ACTIONS:
        a->parsed = ingest_parse_actions(a->ctx, a->body, a->len, a->batch, a->err);
        break;
    }
    a->ctx->registry = NULL; /* the snapshot is released after this call */
    a->ctx->staff = NULL;
    return BX_OK;
}

/* A whole request refused: dead-lettered with its body, as bx-ingest does. */
static void dead_letter_request(const console_request *req, const ingest_ctx *ctx,
                                const char *reason, const char *error, const char *body, size_t len)
{
    char *dlq = ingest_dlq_message(ctx, NULL, reason, error, body, len);
    const char *key = ctx->school_id ? ctx->school_id : "unknown";
    bx_error serr = {0};
    if (dlq == NULL || page_send_acked(req, BX_TOPIC_DLQ, key, dlq, strlen(dlq), &serr) != BX_OK)
        bx_log_error("staff %s %s: a refused request could not be dead-lettered",
                     ctx->credential_id, ctx->endpoint);
    free(dlq);
}

static const char *const endpoints[] = {"console:/rollcall", "console:/leave", "console:/actions"};

/* The person is the writer: recorded_by is their staff id, their school the scope (the class and
 * student scope was checked with console_may before). */
static ingest_ctx person_ctx(const console_request *req, page_endpoint ep)
{
    const console_person *me = req->person;
    return (ingest_ctx){.writer = INGEST_WRITER_PERSON,
                        .staff_id = me->staff_id,
                        .role = console_role_name(me->role),
                        .school_id = me->school_id[0] ? me->school_id : NULL,
                        .township_code =
                            me->role == CONSOLE_TOWNSHIP_OFFICER ? me->township_code : NULL,
                        .county_code = me->role == CONSOLE_COUNTY_OFFICER ? me->county_code : NULL,
                        .now = req->now,
                        .endpoint = endpoints[ep]};
}

/* Publishes the parsed batch as bx-ingest's server does (duplicates checked, accepted ids
 * remembered) and waits for Kafka; every record's outcome is then final. */
static bx_status publish(const console_request *req, ingest_ctx *ctx, ingest_batch *batch,
                         bx_error *err)
{
    dedup_batcher *dedup = ((const page_state *)req->pages)->dedup;
    ingest_publishing pub;
    bx_delivery_wait *wait = bx_delivery_wait_new();
    if (wait == NULL || ingest_publish_begin(batch, &pub) != BX_OK) {
        bx_delivery_wait_free(wait);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    if (pub.nkeys > 0 && dedup) {
        bx_status checked = dedup_check(dedup, ctx->school_id, pub.keys, pub.nkeys, pub.seen);
        ingest_publish_mark(ctx, batch, &pub, checked);
    }
    ingest_publish_send(ctx, req->producer, batch, &pub, wait);
    if (bx_delivery_wait_all(wait, PAGE_ACK_TIMEOUT_MS) == BX_OK) {
        ingest_publish_end(ctx, batch, &pub, dedup ? remember_accepted : NULL, dedup);
        bx_delivery_wait_free(wait);
        return BX_OK;
    }
    /* Not expected (see PAGE_ACK_TIMEOUT_MS): the slots and the wait are left to the callbacks
     * still to come, and the records count as failed (sending again is safe). */
    bx_log_error("staff %s %s: Kafka gave no verdict in %d ms", ctx->staff_id, ctx->endpoint,
                 PAGE_ACK_TIMEOUT_MS);
    for (size_t i = 0; i < batch->count; i++)
        if (batch->items[i].outcome == INGEST_PENDING)
            batch->items[i].outcome = INGEST_FAILED;
    return BX_OK;
}

static void count_outcomes(const ingest_batch *batch, page_write_result *res)
{
    for (size_t i = 0; i < batch->count; i++) {
        const ingest_record *r = &batch->items[i];
        switch (r->outcome) {
        case INGEST_ACCEPTED:
        case INGEST_DUPLICATE:
            r->outcome == INGEST_ACCEPTED ? res->accepted++ : res->duplicates++;
            if (!res->first_event_id[0])
                snprintf(res->first_event_id, sizeof(res->first_event_id), "%s", r->event_id);
            break;
        case INGEST_REJECTED:
            if (!res->first_error[0])
                snprintf(res->first_error, sizeof(res->first_error), "%s", r->error);
            res->rejected++;
            break;
        default:
            res->failed++;
            break;
        }
    }
}

bx_status page_write(const console_request *req, page_endpoint ep, const char *body, size_t len,
                     page_write_result *res, bx_error *err)
{
    memset(res, 0, sizeof(*res));
    if (req->person == NULL)
        return BX_ERR(err, BX_EDENIED, "writes need a signed-in person");
    if (req->producer == NULL)
        return BX_ERR(err, BX_EIO, "no Kafka producer");
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    ingest_ctx ctx = person_ctx(req, ep);
    ingest_batch batch;
    ingest_batch_init(&batch);
    bx_error perr = {0};
    parse_arg a = {&ctx, ep, body, len, &batch, "malformed", BX_OK, &perr};
    bx_status s = console_store_with_registry(store, req->db, parse_with_registry, &a, err);
    if (s == BX_OK && a.parsed == BX_ENOMEM)
        s = BX_ERR(err, BX_ENOMEM, "%s", perr.msg);
    if (s == BX_OK && a.parsed != BX_OK) {
        res->whole_rejected = true;
        res->rejected = 1;
        snprintf(res->first_error, sizeof(res->first_error), "%s", perr.msg);
        dead_letter_request(req, &ctx, a.reason, perr.msg, body, len);
    } else if (s == BX_OK) {
        s = publish(req, &ctx, &batch, err);
        if (s == BX_OK)
            count_outcomes(&batch, res);
    }
    ingest_batch_free(&batch);
    return s;
}

bx_status page_write_built(const console_request *req, page_endpoint ep, bx_status built,
                           bx_buf *body, const char *what, page_write_result *res, bx_error *err)
{
    bx_status s = built != BX_OK ? BX_ERR(err, built, "%s: out of memory", what)
                                 : page_write(req, ep, body->data, body->len, res, err);
    bx_buf_free(body);
    return s;
}

void page_write_flash(const page_write_result *r, const char *done_text, char *out, size_t size)
{
    if (r->whole_rejected || (r->rejected > 0 && r->accepted + r->duplicates == 0))
        snprintf(out, size, "未提交：%s", r->first_error);
    else if (r->failed > 0)
        snprintf(out, size, "服务器未确认，请再提交一次（重复提交是安全的）");
    else if (r->rejected > 0)
        snprintf(out, size, "%s，但有 %d 条未通过：%s", done_text, r->rejected, r->first_error);
    else if (r->accepted == 0 && r->duplicates > 0)
        snprintf(out, size, "已提交过，这次没有重复记录");
    else
        snprintf(out, size, "%s", done_text);
}
