/* bxvalidate leave: leave asked in advance, or phoned in by a guardian (补假). */
#include "records.h"

#include <stdio.h>
#include <string.h>

#define MAX_LEAVE_DAYS       180
#define MAX_LEAVE_AHEAD_DAYS 60

static const char *const requesters[] = {"guardian", "student", "teacher", NULL};

struct leave {
    const char *student_id, *first, *last, *kind, *by, *event_id;
    int64_t p1, p2;
    bool has_p1, has_p2, phoned, approved;
    bx_date d1, d2;
};

static bool read_leave(ingest_record *r, const cJSON *item, const char *path, struct leave *lv)
{
    return records_get_string(r, item, path, "student_id", true, 64, &lv->student_id) &&
           records_get_string(r, item, path, "first_date", true, 32, &lv->first) &&
           records_get_string(r, item, path, "last_date", true, 32, &lv->last) &&
           records_get_int(r, item, path, "first_period", 1, 12, &lv->p1, &lv->has_p1) &&
           records_get_int(r, item, path, "last_period", 1, 12, &lv->p2, &lv->has_p2) &&
           records_get_string(r, item, path, "leave_kind", true, 32, &lv->kind) &&
           records_get_string(r, item, path, "requested_by", true, 32, &lv->by) &&
           records_get_bool(r, item, path, "phoned_in", &lv->phoned) &&
           records_get_bool(r, item, path, "approved", &lv->approved) &&
           records_get_string(r, item, path, "event_id", false, 128, &lv->event_id);
}

/* The days and periods the leave covers (first_date is checked against the calendar first). */
static bool check_span(ingest_record *r, const char *path, struct leave *lv)
{
    char field[96];
    snprintf(field, sizeof(field), "%s.last_date", path);
    if (!records_read_date(r, field, lv->last, &lv->d2))
        return false;
    if (lv->d2 < lv->d1) {
        records_reject(r, field, "invalid_value", "%s is before first_date %s", lv->last,
                       lv->first);
        return false;
    }
    if (lv->d2 - lv->d1 + 1 > MAX_LEAVE_DAYS) {
        records_reject(r, field, "invalid_value",
                       "a leave spans at most %d days (longer absences are a suspension)",
                       MAX_LEAVE_DAYS);
        return false;
    }
    if ((lv->has_p1 || lv->has_p2) && lv->d1 != lv->d2) {
        snprintf(field, sizeof(field), "%s.first_period", path);
        records_reject(r, field, "invalid_value", "periods are only allowed for a one-day leave");
        return false;
    }
    if (lv->has_p1 != lv->has_p2 || (lv->has_p1 && lv->p2 < lv->p1)) {
        snprintf(field, sizeof(field), "%s.last_period", path);
        records_reject(r, field, "invalid_value",
                       "give both first_period and last_period, first not after last");
        return false;
    }
    return true;
}

static bool check_kind(ingest_record *r, const char *path, const struct leave *lv)
{
    char field[96];
    snprintf(field, sizeof(field), "%s.leave_kind", path);
    if (!records_in_list(lv->kind, records_leave_kinds)) {
        records_reject(r, field, "invalid_value", "expected sick or personal, got \"%.20s\"",
                       lv->kind);
        return false;
    }
    snprintf(field, sizeof(field), "%s.requested_by", path);
    if (!records_in_list(lv->by, requesters)) {
        records_reject(r, field, "invalid_value",
                       "expected guardian, student or teacher, got \"%.20s\"", lv->by);
        return false;
    }
    return true;
}

static bx_status leave_message(const ingest_ctx *ctx, ingest_record *r, const bx_reg_student *st,
                               const struct leave *lv)
{
    char t1[11], t2[11];
    bx_date_format(lv->d1, t1);
    bx_date_format(lv->d2, t2);
    bx_buf b;
    bx_buf_init(&b, 4096);
    bx_status s = bx_buf_puts(&b, "{\"schema\":\"bx.attendance.v1\",\"type\":\"leave\"");
    IFOK(s, records_put_str(&b, "event_id", r->event_id));
    IFOK(s, records_put_str(&b, "student_id", st->id));
    IFOK(s, records_put_str(&b, "school_id", st->school->id));
    IFOK(s, records_put_str(&b, "class_id", st->klass->id));
    IFOK(s, records_put_str(&b, "first_date", t1));
    IFOK(s, records_put_str(&b, "last_date", t2));
    IFOK(s, records_put_int(&b, "first_period", lv->p1, lv->has_p1));
    IFOK(s, records_put_int(&b, "last_period", lv->p2, lv->has_p2));
    IFOK(s, records_put_str(&b, "leave_kind", lv->kind));
    IFOK(s, records_put_str(&b, "requested_by", lv->by));
    IFOK(s, bx_buf_printf(&b, ",\"phoned_in\":%s,\"approved\":%s", lv->phoned ? "true" : "false",
                          lv->approved ? "true" : "false"));
    return records_close_message(ctx, r, s, &b, BX_TOPIC_ATTENDANCE, st->id);
}

static bx_status leave_record(const ingest_ctx *ctx, ingest_record *r, const cJSON *item,
                              const char *path)
{
    struct leave lv = {.event_id = "", .approved = true};
    if (!read_leave(r, item, path, &lv))
        return BX_EINVAL;
    char field[96];
    snprintf(field, sizeof(field), "%s.student_id", path);
    const bx_reg_student *st = records_check_student(ctx, r, field, lv.student_id);
    if (st == NULL)
        return BX_EINVAL;
    snprintf(field, sizeof(field), "%s.first_date", path);
    if (!records_check_date(ctx, r, field, lv.first, st->school, MAX_LEAVE_AHEAD_DAYS, false,
                            &lv.d1) ||
        !check_span(r, path, &lv) || !check_kind(r, path, &lv) ||
        !records_take_event_id(r, path, lv.event_id))
        return BX_EINVAL;
    if (leave_message(ctx, r, st, &lv) != BX_OK) {
        records_reject(r, path, "other", "out of memory");
        return BX_ENOMEM;
    }
    return BX_OK;
}

bx_status ingest_parse_leave(const ingest_ctx *ctx, const char *body, size_t len, ingest_batch *out,
                             bx_error *err)
{
    static const char *const keys[] = {
        "student_id",   "first_date", "last_date", "first_period", "last_period", "leave_kind",
        "requested_by", "phoned_in",  "approved",  "event_id",     NULL};
    return records_parse_json(ctx, body, len, keys, leave_record, out, err);
}
