/* bxvalidate attendance: single attendance facts, as JSON records or CSV rows. */
#include "bx_csv.h"
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const statuses[] = {"present", "absent", "late", "leave", "early_leave", NULL};

/* One attendance record's fields as text, JSON and CSV alike. */
struct attendance_fields {
    const char *student_id, *date, *status, *leave_kind, *event_id;
    long long period;
    bool has_period;
};

/* The status and, for a leave, its kind. */
static bool check_status(ingest_record *r, const char *path, const struct attendance_fields *a)
{
    char field[96];
    snprintf(field, sizeof(field), "%s.status", path);
    if (!records_in_list(a->status, statuses)) {
        records_reject(r, field, "invalid_value",
                       "expected present, absent, late, leave or early_leave, got \"%.20s\"",
                       a->status);
        return false;
    }
    snprintf(field, sizeof(field), "%s.leave_kind", path);
    bool is_leave = strcmp(a->status, "leave") == 0;
    if (is_leave && !*a->leave_kind) {
        records_reject(r, field, "missing_field",
                       "is required when status is leave (sick or personal)");
        return false;
    }
    if (!is_leave && *a->leave_kind) {
        records_reject(r, field, "invalid_value", "is only allowed when status is leave");
        return false;
    }
    if (is_leave && !records_in_list(a->leave_kind, records_leave_kinds)) {
        records_reject(r, field, "invalid_value", "expected sick or personal, got \"%.20s\"",
                       a->leave_kind);
        return false;
    }
    return true;
}

/* One attendance record from already-extracted text fields (JSON and CSV share this). */
static bx_status attendance_record(const ingest_ctx *ctx, ingest_record *r, const char *path,
                                   const struct attendance_fields *a)
{
    char field[96];
    snprintf(field, sizeof(field), "%s.student_id", path);
    const bx_reg_student *st = records_check_student(ctx, r, field, a->student_id);
    if (st == NULL)
        return BX_EINVAL;
    bx_date d;
    snprintf(field, sizeof(field), "%s.date", path);
    if (!records_check_date(ctx, r, field, a->date, st->school, 0, true, &d) ||
        !check_status(r, path, a) || !records_take_event_id(r, path, a->event_id))
        return BX_EINVAL;
    records_fact f = {.date = d,
                      .period = a->period,
                      .has_period = a->has_period,
                      .status = a->status,
                      .leave_kind = strcmp(a->status, "leave") == 0 ? a->leave_kind : NULL,
                      .source = "attendance",
                      .rollcall_id = NULL};
    if (records_attendance_message(ctx, r, st, &f) != BX_OK) {
        records_reject(r, path, "other", "out of memory");
        return BX_ENOMEM;
    }
    return BX_OK;
}

static bx_status attendance_json(const ingest_ctx *ctx, ingest_record *r, const cJSON *item,
                                 const char *path)
{
    struct attendance_fields a = {.leave_kind = "", .event_id = ""};
    int64_t period = 0;
    if (!records_get_string(r, item, path, "student_id", true, 64, &a.student_id) ||
        !records_get_string(r, item, path, "date", true, 32, &a.date) ||
        !records_get_int(r, item, path, "period", 1, 12, &period, &a.has_period) ||
        !records_get_string(r, item, path, "status", true, 32, &a.status) ||
        !records_get_string(r, item, path, "leave_kind", false, 32, &a.leave_kind) ||
        !records_get_string(r, item, path, "event_id", false, 128, &a.event_id))
        return BX_EINVAL;
    a.period = period;
    return attendance_record(ctx, r, path, &a);
}

bx_status ingest_parse_attendance_json(const ingest_ctx *ctx, const char *body, size_t len,
                                       ingest_batch *out, bx_error *err)
{
    static const char *const keys[] = {"student_id", "date",     "period", "status",
                                       "leave_kind", "event_id", NULL};
    return records_parse_json(ctx, body, len, keys, attendance_json, out, err);
}

static const char *const csv_known[] = {"student_id", "date",     "period", "status",
                                        "leave_kind", "event_id", NULL};

/* The row as received, as a JSON object of its named columns (for the reply and dead letter). */
static char *csv_raw(const bx_csv_header *header, char **fields, size_t nfields)
{
    bx_buf raw;
    bx_buf_init(&raw, 1 << 16);
    bx_status s = bx_buf_puts(&raw, "{");
    for (size_t i = 0; csv_known[i] && s == BX_OK; i++) {
        if (header->index[i] < 0)
            continue;
        s = bx_buf_printf(&raw, "%s\"%s\":", raw.len > 1 ? "," : "", csv_known[i]);
        IFOK(s, bx_buf_json_string(&raw, bx_csv_field(header, fields, nfields, i)));
    }
    IFOK(s, bx_buf_puts(&raw, "}"));
    char *text = s == BX_OK ? bx_buf_steal(&raw) : NULL;
    bx_buf_free(&raw);
    return text;
}

/* One CSV data row into r. */
static bx_status attendance_row(const ingest_ctx *ctx, ingest_record *r, long line,
                                const bx_csv_header *header, char **fields, size_t nfields)
{
    char path[48];
    snprintf(path, sizeof(path), "line %ld", line);
    r->raw = csv_raw(header, fields, nfields);
    if (nfields != header->nheader) {
        records_reject(r, path, "malformed", "expected %zu fields as in the header, found %zu",
                       header->nheader, nfields);
        return BX_EINVAL;
    }
    struct attendance_fields a = {
        .student_id = bx_csv_field(header, fields, nfields, 0),
        .date = bx_csv_field(header, fields, nfields, 1),
        .status = bx_csv_field(header, fields, nfields, 3),
        .leave_kind = bx_csv_field(header, fields, nfields, 4),
        .event_id = bx_csv_field(header, fields, nfields, 5),
    };
    const char *period_text = bx_csv_field(header, fields, nfields, 2);
    a.has_period = *period_text != '\0';
    if (a.has_period) {
        char *end;
        a.period = strtoll(period_text, &end, 10);
        if (*end || a.period < 1 || a.period > 12) {
            char field[96];
            snprintf(field, sizeof(field), "%s.period", path);
            records_reject(r, field, "invalid_value",
                           "expected an integer from 1 to 12, got \"%.20s\"", period_text);
            return BX_EINVAL;
        }
    }
    return attendance_record(ctx, r, path, &a);
}

bx_status ingest_parse_attendance_csv(const ingest_ctx *ctx, const char *body, size_t len,
                                      ingest_batch *out, bx_error *err)
{
    static const char *const required[] = {"student_id", "date", "status", NULL};
    bx_csv *csv = NULL;
    char **fields;
    size_t nfields;
    long line;
    bx_csv_header header;
    bx_status s = bx_csv_new(body, len, &csv, err);
    IFOK(s, bx_csv_next(csv, &fields, &nfields, &line, err));
    if (s == BX_ENOTFOUND)
        s = BX_ERR(err, BX_EINVAL, "body: empty CSV (a header row is required)");
    IFOK(s, bx_csv_map_header(fields, nfields, csv_known, required, "body", &header, err));
    for (int index = 0; s == BX_OK; index++) {
        bx_status next = bx_csv_next(csv, &fields, &nfields, &line, err);
        if (next == BX_ENOTFOUND)
            break;
        if (next != BX_OK) {
            s = next; /* malformed CSV: the reader cannot go on, the request is answered 400 */
            break;
        }
        if (index >= MAX_RECORDS) {
            s = BX_ERR(err, BX_EINVAL, "body: more than %d records in one request", MAX_RECORDS);
            break;
        }
        ingest_record *r = records_add(out, index, line);
        if (r == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
            break;
        }
        (void)attendance_row(ctx, r, line, &header, fields, nfields); /* outcome in r */
    }
    bx_csv_free(csv);
    records_reject_repeated_ids(out, "line");
    return s;
}
