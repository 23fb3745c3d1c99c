/* page_write: the teacher's writes go through bx-ingest's own validation and publishing (its
 * library, not a copy), with the signed-in person as the writer; plus the process-wide state the
 * pages share (the store, the duplicate-check batcher). */
#include "bx_log.h"
#include "console.h"
#include "dedup.h"
#include "ingest.h"
#include "page_common.h"

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

bx_status page_may_class(const console_request *req, const char *class_id, console_action a,
                         bool *allowed, bx_error *err)
{
    console_place place;
    console_object o;
    *allowed = false;
    bx_status s = console_class_place(req, class_id, &place, &o, err);
    if (s == BX_ENOTFOUND)
        return BX_OK;
    if (s == BX_OK)
        *allowed = console_may(req->person, a, &o);
    return s;
}

bx_status page_may_student(const console_request *req, const char *student_id, console_action a,
                           bool *allowed, bx_error *err)
{
    console_place place;
    console_object o;
    *allowed = false;
    bx_status s = console_student_place(req, student_id, &place, &o, err);
    if (s == BX_ENOTFOUND)
        return BX_OK;
    if (s == BX_OK)
        *allowed = console_may(req->person, a, &o);
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
    bx_delivery_wait *wait = bx_delivery_wait_new();
    bx_delivery_slot *slot = calloc(1, sizeof(*slot)); /* outlives us if Kafka never answers */
    const char *key = ctx->school_id ? ctx->school_id : "unknown";
    bool sent = false, answered = true;
    if (dlq && wait && slot && req->producer) {
        bx_delivery_slot_arm(slot, wait);
        if (bx_producer_send(req->producer, BX_TOPIC_DLQ, key, strlen(key), dlq, strlen(dlq),
                             bx_delivery_slot_done, slot) != BX_OK)
            bx_delivery_slot_done(slot, RD_KAFKA_RESP_ERR__FAIL);
        answered = bx_delivery_wait_all(wait, PAGE_ACK_TIMEOUT_MS) == BX_OK;
        sent = answered && slot->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (!sent)
        bx_log_error("staff %s %s: a refused request could not be dead-lettered",
                     ctx->credential_id, ctx->endpoint);
    if (answered) {
        bx_delivery_wait_free(wait);
        free(slot);
    }
    free(dlq);
}

bx_status page_write(const console_request *req, page_endpoint ep, const char *body, size_t len,
                     page_write_result *res, bx_error *err)
{
    static const char *const endpoints[] = {"console:/rollcall", "console:/leave",
                                            "console:/actions"};
    memset(res, 0, sizeof(*res));
    if (req->person == NULL)
        return BX_ERR(err, BX_EDENIED, "writes need a signed-in person");
    if (req->producer == NULL)
        return BX_ERR(err, BX_EIO, "no Kafka producer");
    console_store *store = page_store(req, err);
    if (store == NULL)
        return BX_EFATAL;
    dedup_batcher *dedup = ((const page_state *)req->pages)->dedup;
    /* The person is the writer: recorded_by is their staff id, their school the scope (the
     * class and student scope was checked with console_may before). */
    const console_person *me = req->person;
    ingest_ctx ctx = {.writer = INGEST_WRITER_PERSON,
                      .staff_id = me->staff_id,
                      .role = console_role_name(me->role),
                      .school_id = me->school_id[0] ? me->school_id : NULL,
                      .township_code =
                          me->role == CONSOLE_TOWNSHIP_OFFICER ? me->township_code : NULL,
                      .county_code = me->role == CONSOLE_COUNTY_OFFICER ? me->county_code : NULL,
                      .now = req->now,
                      .endpoint = endpoints[ep]};
    ingest_batch batch;
    ingest_batch_init(&batch);
    bx_error perr = {0};
    parse_arg a = {&ctx, ep, body, len, &batch, "malformed", BX_OK, &perr};
    bx_status s = console_store_with_registry(store, req->db, parse_with_registry, &a, err);
    if (s != BX_OK) {
        ingest_batch_free(&batch);
        return s;
    }
    if (a.parsed != BX_OK) {
        ingest_batch_free(&batch);
        if (a.parsed == BX_ENOMEM)
            return BX_ERR(err, BX_ENOMEM, "%s", perr.msg);
        res->whole_rejected = true;
        res->rejected = 1;
        snprintf(res->first_error, sizeof(res->first_error), "%s", perr.msg);
        dead_letter_request(req, &ctx, a.reason, perr.msg, body, len);
        return BX_OK;
    }
    ingest_publishing pub;
    bx_delivery_wait *wait = bx_delivery_wait_new();
    if (wait == NULL || ingest_publish_begin(&batch, &pub) != BX_OK) {
        bx_delivery_wait_free(wait);
        ingest_batch_free(&batch);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    if (pub.nkeys > 0 && dedup) {
        bx_status checked = dedup_check(dedup, ctx.school_id, pub.keys, pub.nkeys, pub.seen);
        ingest_publish_mark(&ctx, &batch, &pub, checked);
    }
    ingest_publish_send(&ctx, req->producer, &batch, &pub, wait);
    bool answered = bx_delivery_wait_all(wait, PAGE_ACK_TIMEOUT_MS) == BX_OK;
    if (answered) {
        ingest_publish_end(&ctx, &batch, &pub, dedup ? remember_accepted : NULL, dedup);
        bx_delivery_wait_free(wait);
    } else {
        /* Not expected (see PAGE_ACK_TIMEOUT_MS): the slots and the wait are left to the
         * callbacks still to come, and the records count as failed (sending again is safe). */
        bx_log_error("staff %s %s: Kafka gave no verdict in %d ms", ctx.staff_id, ctx.endpoint,
                     PAGE_ACK_TIMEOUT_MS);
        for (size_t i = 0; i < batch.count; i++)
            if (batch.items[i].outcome == INGEST_PENDING)
                batch.items[i].outcome = INGEST_FAILED;
    }
    for (size_t i = 0; i < batch.count; i++) {
        const ingest_record *r = &batch.items[i];
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
    ingest_batch_free(&batch);
    return BX_OK;
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
