/* bx-ingest records: validates incoming attendance, roll calls, leave and actions against the
 * registry and the school calendar, and turns each valid record into a normalised message. Pure:
 * no Kafka, Redis or PostgreSQL here. */
#include "bx_csv.h"
#include "bx_json.h"
#include "ingest.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RECORDS          20000
#define MAX_EVENT_ID         64
#define MAX_LEAVE_DAYS       180
#define MAX_LEAVE_AHEAD_DAYS 60

void ingest_batch_init(ingest_batch *b)
{
    memset(b, 0, sizeof(*b));
}

void ingest_batch_free(ingest_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        free(b->items[i].raw);
        free(b->items[i].message);
    }
    free(b->items);
    free(b->summary);
    memset(b, 0, sizeof(*b));
}

static ingest_record *add_record(ingest_batch *b, int index, long line)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        ingest_record *p = realloc(b->items, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        b->items = p;
        b->cap = cap;
    }
    ingest_record *r = &b->items[b->count++];
    memset(r, 0, sizeof(*r));
    r->index = index;
    r->line = line;
    r->outcome = INGEST_PENDING;
    r->reported = true;
    return r;
}

static void reject(ingest_record *r, const char *field, const char *reason, const char *fmt, ...)
    BX_PRINTF(4, 5);
static void reject(ingest_record *r, const char *field, const char *reason, const char *fmt, ...)
{
    if (r->outcome == INGEST_REJECTED)
        return; /* the first problem found is the one reported */
    r->outcome = INGEST_REJECTED;
    snprintf(r->field, sizeof(r->field), "%s", field);
    r->reason = reason;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(r->error, sizeof(r->error), "%s: %s", field, msg);
    /* "%.40s" of a value, or the cut to size, may split a character: the error goes into JSON. */
    bx_utf8_repair(r->error);
}

/* Turns a bx_json accessor error ("records[2].date: is required") into a reject. */
static void reject_json(ingest_record *r, const char *path, const char *key, bx_status s,
                        const bx_error *err)
{
    if (r->outcome == INGEST_REJECTED)
        return;
    r->outcome = INGEST_REJECTED;
    snprintf(r->field, sizeof(r->field), "%s.%s", path, key);
    r->reason = strstr(err->msg, "is required") ? "missing_field" : "invalid_value";
    snprintf(r->error, sizeof(r->error), "%.300s", err->msg);
    bx_utf8_repair(r->error);
    (void)s;
}

static unsigned long long next_random(void)
{
    static _Thread_local unsigned long long state;
    if (state == 0) {
        int fd = open("/dev/urandom", O_RDONLY);
        if (fd < 0 || read(fd, &state, sizeof(state)) != sizeof(state))
            state = (unsigned long long)time(NULL) ^ (unsigned long long)pthread_self();
        if (fd >= 0)
            close(fd);
        state |= 1;
    }
    /* xorshift64*: event ids need uniqueness, not secrecy. */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 2685821657736338717ULL;
}

void ingest_new_event_id(char out[37])
{
    unsigned long long a = next_random(), b = next_random();
    a = (a & ~0xF000ULL) | 0x4000ULL;                        /* version 4 */
    b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL; /* variant 10 */
    snprintf(out, 37, "%08llx-%04llx-%04llx-%04llx-%012llx", a >> 32, (a >> 16) & 0xFFFF,
             a & 0xFFFF, b >> 48, b & 0xFFFFFFFFFFFFULL);
}

static bool event_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_EVENT_ID)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* Checks a student reference; on success returns the registry entry. */
static const bx_reg_student *check_student(const ingest_ctx *ctx, ingest_record *r,
                                           const char *field, const char *id)
{
    if (!bx_id_valid(id)) {
        reject(r, field, "invalid_value", "\"%.40s\" is not a student id", id);
        return NULL;
    }
    const bx_reg_student *st = bx_registry_student(ctx->registry, id);
    if (st == NULL || st->school == NULL) {
        reject(r, field, "unknown_student", "no student \"%s\" in the registry", id);
        return NULL;
    }
    if (strcmp(st->school->id, ctx->school_id) != 0) {
        reject(r, field, "wrong_school", "student \"%s\" is not registered at school %s", id,
               ctx->school_id);
        return NULL;
    }
    snprintf(r->student_id, sizeof(r->student_id), "%s", id);
    return st;
}

/* Checks a school date: readable, not in the future (beyond ahead_days), inside a term and, when
 * school_day, a school day of the school's calendar. */
static bool check_date(const ingest_ctx *ctx, ingest_record *r, const char *field, const char *text,
                       const bx_reg_school *school, int ahead_days, bool school_day, bx_date *out)
{
    bx_date d;
    if (bx_date_parse(text, &d) != BX_OK) {
        reject(r, field, "invalid_value", "expected a date YYYY-MM-DD, got \"%.20s\"", text);
        return false;
    }
    bx_date today = bx_time_local_date(ctx->now);
    if (d > today + ahead_days) {
        char t[11];
        bx_date_format(today + ahead_days, t);
        reject(r, field, "future_date", "%s is in the future (latest accepted: %s)", text, t);
        return false;
    }
    const bx_calendar *cal = school->calendar;
    if (cal == NULL || bx_calendar_term_of(cal, d) == NULL) {
        reject(r, field, "outside_term", "%s is outside every term of school %s", text, school->id);
        return false;
    }
    if (school_day && !bx_calendar_is_school_day(cal, d)) {
        reject(r, field, "not_school_day",
               "%s is not a school day at school %s (weekend, holiday or closure)", text,
               school->id);
        return false;
    }
    *out = d;
    return true;
}

static const char *const statuses[] = {"present", "absent", "late", "leave", "early_leave", NULL};
static const char *const leave_kinds[] = {"sick", "personal", NULL};

static bool in_list(const char *v, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(v, list[i]) == 0)
            return true;
    return false;
}

static void set_event_id(ingest_record *r, const char *client_id, const char *dedup_prefix)
{
    if (client_id && *client_id) {
        snprintf(r->event_id, sizeof(r->event_id), "%s", client_id);
        snprintf(r->dedup_key, sizeof(r->dedup_key), "%s%s", dedup_prefix, client_id);
    } else {
        ingest_new_event_id(r->event_id);
    }
}

static bx_status finish_message(ingest_record *r, bx_buf *b)
{
    if (b->len == 0)
        return BX_ENOMEM;
    r->message = bx_buf_steal(b);
    return r->message ? BX_OK : BX_ENOMEM;
}

/* Appends "key":"value" or "key":null. */
static bx_status put_str(bx_buf *b, const char *key, const char *value)
{
    bx_status s = bx_buf_append(b, ",\"", 2);
    IFOK(s, bx_buf_puts(b, key));
    IFOK(s, bx_buf_append(b, "\":", 2));
    if (value == NULL || *value == '\0')
        IFOK(s, bx_buf_puts(b, "null"));
    else
        IFOK(s, bx_buf_json_string(b, value));
    return s;
}

static bx_status put_int(bx_buf *b, const char *key, long long v, bool present)
{
    return present ? bx_buf_printf(b, ",\"%s\":%lld", key, v)
                   : bx_buf_printf(b, ",\"%s\":null", key);
}

/* dst = a b c, cut to size (ids and event ids are bounded, so nothing real is cut). */
static void join(char *dst, size_t size, const char *a, const char *b, const char *c)
{
    size_t used = 0;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]);
        if (used + n >= size)
            n = size - 1 - used;
        memcpy(dst + used, parts[i], n);
        used += n;
    }
    dst[used] = '\0';
}

/* A message under construction in a fixed buffer. Every value put here was validated to a
 * charset without quotes, backslashes or control characters (ids, event ids, dates, enums), so it
 * needs no escaping: this is the hot path of every roll call, one message per student. */
struct fixed_msg {
    char text[1024];
    size_t len;
    bool overflow;
};

static void msg_add(struct fixed_msg *m, const char *s, size_t n)
{
    if (m->len + n >= sizeof(m->text)) {
        m->overflow = true;
        return;
    }
    memcpy(m->text + m->len, s, n);
    m->len += n;
}

#define MSG_LIT(m, lit) msg_add((m), (lit), sizeof(lit) - 1)

/* ,"key":"value" or ,"key":null; key is a literal with its quotes and colon: ",\"date\":" */
static void msg_str(struct fixed_msg *m, const char *key_lit, size_t key_len, const char *value)
{
    msg_add(m, key_lit, key_len);
    if (value == NULL || *value == '\0') {
        MSG_LIT(m, "null");
        return;
    }
    MSG_LIT(m, "\"");
    msg_add(m, value, strlen(value));
    MSG_LIT(m, "\"");
}

#define MSG_STR(m, key, value) msg_str((m), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (value))

static bx_status attendance_message(const ingest_ctx *ctx, ingest_record *r,
                                    const bx_reg_student *st, bx_date date, long long period,
                                    bool has_period, const char *status, const char *leave_kind,
                                    const char *source, const char *rollcall_id)
{
    /* A roll call's messages share the date and the time: format each once per thread. */
    static _Thread_local bx_date cached_date = BX_DATE_NONE;
    static _Thread_local bx_time_ms cached_now = -1;
    static _Thread_local char day[11], at[40];
    char period_text[8] = "null";
    if (date != cached_date) {
        bx_date_format(date, day);
        cached_date = date;
    }
    if (ctx->now != cached_now) {
        bx_time_format(ctx->now, at, sizeof(at));
        cached_now = ctx->now;
    }
    if (has_period)
        snprintf(period_text, sizeof(period_text), "%lld", period);
    struct fixed_msg m = {.len = 0, .overflow = false};
    MSG_LIT(&m, "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\"");
    MSG_STR(&m, "event_id", r->event_id);
    MSG_STR(&m, "student_id", st->id);
    MSG_STR(&m, "school_id", st->school->id);
    MSG_STR(&m, "class_id", st->klass->id);
    MSG_STR(&m, "date", day);
    MSG_LIT(&m, ",\"period\":");
    msg_add(&m, period_text, strlen(period_text));
    MSG_STR(&m, "status", status);
    MSG_STR(&m, "leave_kind", leave_kind);
    MSG_STR(&m, "source", source);
    MSG_STR(&m, "rollcall_id", rollcall_id);
    MSG_STR(&m, "recorded_at", at);
    MSG_STR(&m, "recorded_by", ctx->credential_id);
    MSG_LIT(&m, "}");
    r->topic = BX_TOPIC_ATTENDANCE;
    join(r->key, sizeof(r->key), st->id, "", "");
    if (m.overflow)
        return BX_ENOMEM;
    r->message = malloc(m.len + 1);
    if (r->message == NULL)
        return BX_ENOMEM;
    memcpy(r->message, m.text, m.len);
    r->message[m.len] = '\0';
    return BX_OK;
}

/* Finds duplicate client event ids inside one request. */
static void reject_repeated_ids(ingest_batch *b, const char *prefix)
{
    for (size_t i = 0; i < b->count; i++) {
        ingest_record *r = &b->items[i];
        if (r->outcome != INGEST_PENDING || !r->dedup_key[0])
            continue;
        for (size_t j = 0; j < i; j++) {
            if (b->items[j].outcome == INGEST_PENDING &&
                strcmp(b->items[j].dedup_key, r->dedup_key) == 0) {
                char field[96];
                snprintf(field, sizeof(field), "%s[%d].event_id", prefix, r->index);
                reject(r, field, "duplicate_in_request", "event id \"%s\" also used by %s[%d]",
                       r->event_id, prefix, b->items[j].index);
                break;
            }
        }
    }
}

/* Common start of a JSON body {"records":[...]}: returns the array. */
static bx_status records_array(const char *body, size_t len, cJSON **root, const cJSON **records,
                               bx_error *err)
{
    bx_status s = bx_json_parse(body, len, root, err);
    if (s != BX_OK)
        return s;
    static const char *const top[] = {"records", NULL};
    if (!cJSON_IsObject(*root))
        s = BX_ERR(err, BX_EINVAL, "body: expected a JSON object {\"records\": [...]}");
    IFOK(s, bx_json_only_keys(*root, "body", top, err));
    if (s == BX_OK) {
        *records = cJSON_GetObjectItemCaseSensitive(*root, "records");
        if (!cJSON_IsArray(*records))
            s = BX_ERR(err, BX_EINVAL, "records: is required and must be an array");
        else if (cJSON_GetArraySize(*records) > MAX_RECORDS)
            s = BX_ERR(err, BX_EINVAL, "records: more than %d records in one request", MAX_RECORDS);
    }
    if (s != BX_OK) {
        cJSON_Delete(*root);
        *root = NULL;
    }
    return s;
}

/* cJSON prints a number within 1e-15 of the largest double with 15 digits, which round past it:
 * the text would no longer parse. Such numbers are printed with 17 digits instead. */
#define PRINTS_PAST_MAX 1.797693134862315e308

static bool has_huge_number(const cJSON *node)
{
    if (cJSON_IsNumber(node) && fabs(node->valuedouble) >= PRINTS_PAST_MAX)
        return true;
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        if (has_huge_number(c))
            return true;
    return false;
}

static bool exact_huge_numbers(cJSON *node)
{
    for (cJSON *c = node->child; c != NULL; c = c->next) {
        if (cJSON_IsNumber(c) && fabs(c->valuedouble) >= PRINTS_PAST_MAX) {
            char text[32];
            snprintf(text, sizeof(text), "%.17g", c->valuedouble);
            cJSON *raw = cJSON_CreateRaw(text);
            /* The member keeps its name (replacing by pointer does not carry it over). */
            if (raw != NULL && c->string != NULL && (raw->string = strdup(c->string)) == NULL) {
                cJSON_Delete(raw);
                return false;
            }
            if (raw == NULL || !cJSON_ReplaceItemViaPointer(node, c, raw)) {
                cJSON_Delete(raw);
                return false;
            }
            c = raw;
        } else if (!exact_huge_numbers(c)) {
            return false;
        }
    }
    return true;
}

/* A record as received, as JSON text that parses again (for the reply and the dead letter). */
static char *print_record(const cJSON *item)
{
    if (!has_huge_number(item))
        return cJSON_PrintUnformatted(item);
    cJSON *copy = cJSON_Duplicate(item, true);
    if (cJSON_IsNumber(copy)) {
        char text[32];
        snprintf(text, sizeof(text), "%.17g", copy->valuedouble);
        cJSON_Delete(copy);
        return strdup(text);
    }
    char *out = copy && exact_huge_numbers(copy) ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    return out;
}

static ingest_record *add_json_record(ingest_batch *out, int index, const cJSON *item,
                                      const char *path)
{
    ingest_record *r = add_record(out, index, 0);
    if (r == NULL)
        return NULL;
    r->raw = print_record(item);
    if (!cJSON_IsObject(item))
        reject(r, path, "malformed", "expected an object");
    return r;
}

/* One attendance record from already-extracted text fields (JSON and CSV share this). */
static void attendance_record(const ingest_ctx *ctx, ingest_record *r, const char *path,
                              const char *student_id, const char *date, long long period,
                              bool has_period, const char *status, const char *leave_kind,
                              const char *event_id)
{
    char field[96];
    snprintf(field, sizeof(field), "%s.student_id", path);
    const bx_reg_student *st = check_student(ctx, r, field, student_id);
    if (st == NULL)
        return;
    bx_date d;
    snprintf(field, sizeof(field), "%s.date", path);
    if (!check_date(ctx, r, field, date, st->school, 0, true, &d))
        return;
    snprintf(field, sizeof(field), "%s.status", path);
    if (!in_list(status, statuses)) {
        reject(r, field, "invalid_value",
               "expected present, absent, late, leave or early_leave, got \"%.20s\"", status);
        return;
    }
    snprintf(field, sizeof(field), "%s.leave_kind", path);
    bool is_leave = strcmp(status, "leave") == 0;
    if (is_leave && !*leave_kind) {
        reject(r, field, "missing_field", "is required when status is leave (sick or personal)");
        return;
    }
    if (!is_leave && *leave_kind) {
        reject(r, field, "invalid_value", "is only allowed when status is leave");
        return;
    }
    if (is_leave && !in_list(leave_kind, leave_kinds)) {
        reject(r, field, "invalid_value", "expected sick or personal, got \"%.20s\"", leave_kind);
        return;
    }
    snprintf(field, sizeof(field), "%s.event_id", path);
    if (*event_id && !event_id_valid(event_id)) {
        reject(r, field, "invalid_value", "expected 1 to %d of A-Z a-z 0-9 . _ : -", MAX_EVENT_ID);
        return;
    }
    set_event_id(r, event_id, "ev:");
    if (attendance_message(ctx, r, st, d, period, has_period, status, is_leave ? leave_kind : NULL,
                           "attendance", NULL) != BX_OK)
        reject(r, path, "other", "out of memory");
}

bx_status ingest_parse_attendance_json(const ingest_ctx *ctx, const char *body, size_t len,
                                       ingest_batch *out, bx_error *err)
{
    cJSON *root = NULL;
    const cJSON *records = NULL;
    bx_status s = records_array(body, len, &root, &records, err);
    if (s != BX_OK)
        return s;
    static const char *const keys[] = {"student_id", "date",     "period", "status",
                                       "leave_kind", "event_id", NULL};
    int index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, records)
    {
        char path[48];
        snprintf(path, sizeof(path), "records[%d]", index);
        ingest_record *r = add_json_record(out, index++, item, path);
        if (r == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
            break;
        }
        if (r->outcome == INGEST_REJECTED)
            continue;
        const char *student = NULL, *date = NULL, *status = NULL, *kind = "", *event = "";
        int64_t period = 0;
        bool has_period = false;
        bx_error e = {0};
        bx_status fs;
        if ((fs = bx_json_only_keys(item, path, keys, &e)) != BX_OK) {
            r->outcome = INGEST_REJECTED;
            r->reason = "unknown_field";
            snprintf(r->field, sizeof(r->field), "%s", path);
            snprintf(r->error, sizeof(r->error), "%.300s", e.msg);
            bx_utf8_repair(r->error);
            continue;
        }
        if ((fs = bx_json_get_string(item, path, "student_id", true, 64, &student, &e)) != BX_OK) {
            reject_json(r, path, "student_id", fs, &e);
            continue;
        }
        if ((fs = bx_json_get_string(item, path, "date", true, 32, &date, &e)) != BX_OK) {
            reject_json(r, path, "date", fs, &e);
            continue;
        }
        fs = bx_json_get_int(item, path, "period", false, 1, 12, &period, &e);
        if (fs != BX_OK && fs != BX_ENOTFOUND) {
            reject_json(r, path, "period", fs, &e);
            continue;
        }
        has_period = fs == BX_OK;
        if ((fs = bx_json_get_string(item, path, "status", true, 32, &status, &e)) != BX_OK) {
            reject_json(r, path, "status", fs, &e);
            continue;
        }
        fs = bx_json_get_string(item, path, "leave_kind", false, 32, &kind, &e);
        if (fs != BX_OK && fs != BX_ENOTFOUND) {
            reject_json(r, path, "leave_kind", fs, &e);
            continue;
        }
        fs = bx_json_get_string(item, path, "event_id", false, 128, &event, &e);
        if (fs != BX_OK && fs != BX_ENOTFOUND) {
            reject_json(r, path, "event_id", fs, &e);
            continue;
        }
        attendance_record(ctx, r, path, student, date, period, has_period, status, kind, event);
    }
    cJSON_Delete(root);
    reject_repeated_ids(out, "records");
    return s;
}

bx_status ingest_parse_attendance_csv(const ingest_ctx *ctx, const char *body, size_t len,
                                      ingest_batch *out, bx_error *err)
{
    static const char *const known[] = {"student_id", "date",     "period", "status",
                                        "leave_kind", "event_id", NULL};
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
    IFOK(s, bx_csv_map_header(fields, nfields, known, required, "body", &header, err));
    int index = 0;
    while (s == BX_OK) {
        bx_status r2 = bx_csv_next(csv, &fields, &nfields, &line, err);
        if (r2 == BX_ENOTFOUND)
            break;
        if (r2 != BX_OK) {
            s = r2; /* malformed CSV: the reader cannot go on, the request is answered 400 */
            break;
        }
        if (index >= MAX_RECORDS) {
            s = BX_ERR(err, BX_EINVAL, "body: more than %d records in one request", MAX_RECORDS);
            break;
        }
        ingest_record *r = add_record(out, index, line);
        if (r == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
            break;
        }
        char path[48];
        snprintf(path, sizeof(path), "line %ld", line);
        bx_buf raw;
        bx_buf_init(&raw, 1 << 16);
        bx_status rs = bx_buf_puts(&raw, "{");
        for (size_t i = 0; known[i] && rs == BX_OK; i++) {
            if (header.index[i] < 0)
                continue;
            rs = bx_buf_printf(&raw, "%s\"%s\":", raw.len > 1 ? "," : "", known[i]);
            IFOK(rs, bx_buf_json_string(&raw, bx_csv_field(&header, fields, nfields, i)));
        }
        IFOK(rs, bx_buf_puts(&raw, "}"));
        r->raw = rs == BX_OK ? bx_buf_steal(&raw) : NULL;
        bx_buf_free(&raw);
        index++;
        if (nfields != header.nheader) {
            reject(r, path, "malformed", "expected %zu fields as in the header, found %zu",
                   header.nheader, nfields);
            continue;
        }
        const char *period_text = bx_csv_field(&header, fields, nfields, 2);
        long long period = 0;
        bool has_period = *period_text != '\0';
        if (has_period) {
            char *end;
            period = strtoll(period_text, &end, 10);
            if (*end || period < 1 || period > 12) {
                char field[96];
                snprintf(field, sizeof(field), "%s.period", path);
                reject(r, field, "invalid_value", "expected an integer from 1 to 12, got \"%.20s\"",
                       period_text);
                continue;
            }
        }
        attendance_record(ctx, r, path, bx_csv_field(&header, fields, nfields, 0),
                          bx_csv_field(&header, fields, nfields, 1), period, has_period,
                          bx_csv_field(&header, fields, nfields, 3),
                          bx_csv_field(&header, fields, nfields, 4),
                          bx_csv_field(&header, fields, nfields, 5));
    }
    bx_csv_free(csv);
    reject_repeated_ids(out, "line");
    return s;
}

/* Position of a student in the class's sorted list, or -1. */
static int class_position(const bx_reg_class *klass, const char *id)
{
    int lo = 0, hi = klass->student_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(klass->students[mid]->id, id);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* A roll call lists the exceptions; everyone else enrolled in the class is present. */
bx_status ingest_parse_rollcall(const ingest_ctx *ctx, const char *body, size_t len,
                                ingest_batch *out, const char **reason, bx_error *err)
{
    cJSON *root = NULL;
    *reason = "malformed";
    bx_status s = bx_json_parse(body, len, &root, err);
    if (s != BX_OK)
        return s;
    static const char *const keys[] = {"class_id", "date", "period",      "rollcall_id", "absent",
                                       "leave",    "late", "early_leave", NULL};
    const char *class_id = NULL, *date = NULL, *rollcall_id = "";
    int64_t period = 0;
    bool has_period = false;
    if (!cJSON_IsObject(root)) {
        s = BX_ERR(err, BX_EINVAL, "body: expected a JSON object");
    } else if ((s = bx_json_only_keys(root, "body", keys, err)) != BX_OK) {
        *reason = "unknown_field";
    } else {
        *reason = "missing_field";
        IFOK(s, bx_json_get_string(root, "body", "class_id", true, 64, &class_id, err));
        IFOK(s, bx_json_get_string(root, "body", "date", true, 32, &date, err));
        if (s == BX_OK) {
            *reason = "invalid_value";
            bx_status ps = bx_json_get_int(root, "body", "period", false, 1, 12, &period, err);
            has_period = ps == BX_OK;
            s = ps == BX_ENOTFOUND ? BX_OK : ps;
        }
        if (s == BX_OK) {
            bx_status rs =
                bx_json_get_string(root, "body", "rollcall_id", false, 128, &rollcall_id, err);
            s = rs == BX_ENOTFOUND ? BX_OK : rs;
            if (s == BX_OK && *rollcall_id && !event_id_valid(rollcall_id))
                s = BX_ERR(err, BX_EINVAL,
                           "body.rollcall_id: expected 1 to %d of A-Z a-z 0-9 . _ : -",
                           MAX_EVENT_ID);
        }
    }
    const bx_reg_class *klass = NULL;
    bx_date day = 0;
    if (s == BX_OK) {
        klass = bx_id_valid(class_id) ? bx_registry_class(ctx->registry, class_id) : NULL;
        if (klass == NULL || klass->school == NULL) {
            *reason = "unknown_class";
            s = BX_ERR(err, BX_EINVAL, "body.class_id: no class \"%.40s\" in the registry",
                       class_id);
        } else if (strcmp(klass->school->id, ctx->school_id) != 0) {
            *reason = "wrong_school";
            s = BX_ERR(err, BX_EINVAL, "body.class_id: class \"%s\" is not at school %s", class_id,
                       ctx->school_id);
        } else {
            ingest_record probe = {0};
            if (!check_date(ctx, &probe, "body.date", date, klass->school, 0, true, &day)) {
                *reason = probe.reason;
                s = BX_ERR(err, BX_EINVAL, "%s", probe.error);
            }
        }
    }
    if (s != BX_OK) {
        cJSON_Delete(root);
        return s;
    }

    /* Status of each enrolled student: index into the class list, filled from the exceptions. */
    int n = klass->student_count;
    const char **status = calloc((size_t)n + 1, sizeof(*status));
    const char **kind = calloc((size_t)n + 1, sizeof(*kind));
    ingest_record **listed = calloc((size_t)n + 1, sizeof(*listed));
    /* A class member whose entry is invalid gets no fact at all: never a guessed "present". */
    bool *withheld = calloc((size_t)n + 1, sizeof(*withheld));
    if (!status || !kind || !listed || !withheld) {
        free(withheld);
        free(status);
        free(kind);
        free(listed);
        cJSON_Delete(root);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    static const char *const lists[] = {"absent", "leave", "late", "early_leave"};
    int index = 0;
    for (int l = 0; l < 4 && s == BX_OK; l++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, lists[l]);
        if (arr == NULL)
            continue;
        if (!cJSON_IsArray(arr)) {
            s = BX_ERR(err, BX_EINVAL, "body.%s: expected an array", lists[l]);
            *reason = "invalid_value";
            break;
        }
        int pos = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, arr)
        {
            char path[64];
            snprintf(path, sizeof(path), "%s[%d]", lists[l], pos++);
            ingest_record *r = add_record(out, index++, 0);
            if (r == NULL) {
                s = BX_ERR(err, BX_ENOMEM, "out of memory");
                break;
            }
            r->raw = print_record(item);
            const char *sid = NULL, *leave_kind = NULL;
            if (l == 1) {
                static const char *const lkeys[] = {"student_id", "leave_kind", NULL};
                bx_error e = {0};
                bx_status fs;
                /* The class member the entry names, if any: a rejected entry withholds the
                 * student's fact (unless an earlier entry gave one). */
                const cJSON *named = cJSON_IsObject(item)
                                         ? cJSON_GetObjectItemCaseSensitive(item, "student_id")
                                         : item;
                int member = cJSON_IsString(named) && named->valuestring
                                 ? class_position(klass, named->valuestring)
                                 : -1;
                bool withheld_before = member >= 0 && withheld[member];
                if (member >= 0 && !status[member])
                    withheld[member] = true;
                if (!cJSON_IsObject(item)) {
                    reject(r, path, "invalid_value",
                           "expected {\"student_id\": ..., \"leave_kind\": \"sick\"|\"personal\"}");
                    continue;
                }
                if (bx_json_only_keys(item, path, lkeys, &e) != BX_OK) {
                    r->outcome = INGEST_REJECTED;
                    r->reason = "unknown_field";
                    snprintf(r->field, sizeof(r->field), "%s", path);
                    snprintf(r->error, sizeof(r->error), "%.300s", e.msg);
                    bx_utf8_repair(r->error);
                    continue;
                }
                if ((fs = bx_json_get_string(item, path, "student_id", true, 64, &sid, &e)) !=
                    BX_OK) {
                    reject_json(r, path, "student_id", fs, &e);
                    continue;
                }
                if ((fs = bx_json_get_string(item, path, "leave_kind", true, 32, &leave_kind,
                                             &e)) != BX_OK) {
                    reject_json(r, path, "leave_kind", fs, &e);
                    continue;
                }
                if (!in_list(leave_kind, leave_kinds)) {
                    char field[96];
                    snprintf(field, sizeof(field), "%s.leave_kind", path);
                    reject(r, field, "invalid_value", "expected sick or personal, got \"%.20s\"",
                           leave_kind);
                    continue;
                }
                /* Valid: the entry decides, unless this student was listed before. */
                if (member >= 0 && !withheld_before)
                    withheld[member] = false;
            } else {
                if (!cJSON_IsString(item)) {
                    reject(r, path, "invalid_value", "expected a student id string");
                    continue;
                }
                sid = item->valuestring;
            }
            const bx_reg_student *st = check_student(ctx, r, path, sid);
            if (st == NULL)
                continue;
            int at = class_position(klass, st->id);
            if (at < 0) {
                reject(r, path, "wrong_class", "student \"%s\" is not enrolled in class %s", sid,
                       klass->id);
                continue;
            }
            /* The first entry naming a student decides, even a rejected one: no fact is
             * guessed from a roll call that says two things about one student. */
            if (status[at] || withheld[at]) {
                reject(r, path, "duplicate_in_request",
                       "student \"%s\" is listed twice in this roll call", sid);
                continue;
            }
            status[at] = lists[l];
            kind[at] = leave_kind;
            listed[at] = r;
        }
    }
    int totals[5] = {0};
    for (int i = 0; i < n && s == BX_OK; i++) {
        ingest_record *r = listed[i];
        if (withheld[i])
            continue;
        if (r == NULL) {
            r = add_record(out, index++, 0);
            if (r == NULL) {
                s = BX_ERR(err, BX_ENOMEM, "out of memory");
                break;
            }
            r->reported = false;
            status[i] = "present";
            snprintf(r->student_id, sizeof(r->student_id), "%s", klass->students[i]->id);
        }
        if (*rollcall_id) {
            /* The roll call's id names each of its facts, so a resend produces the same ids. */
            join(r->event_id, sizeof(r->event_id), rollcall_id, ":", klass->students[i]->id);
            join(r->dedup_key, sizeof(r->dedup_key), "rc:", rollcall_id, "");
        } else {
            ingest_new_event_id(r->event_id);
        }
        for (int t = 0; t < 5; t++)
            if (strcmp(status[i], t < 4 ? lists[t] : "present") == 0)
                totals[t]++;
        if (attendance_message(ctx, r, klass->students[i], day, period, has_period, status[i],
                               kind[i], "rollcall", rollcall_id) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    /* The class report says the class did its roll call that day (not the same as present). */
    if (s == BX_OK) {
        ingest_record *r = add_record(out, -1, 0);
        if (r == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
        } else {
            r->reported = false;
            char dtext[11], at[40];
            bx_date_format(day, dtext);
            bx_time_format(ctx->now, at, sizeof(at));
            if (*rollcall_id) {
                snprintf(r->event_id, sizeof(r->event_id), "%s:class", rollcall_id);
                snprintf(r->dedup_key, sizeof(r->dedup_key), "rc:%s", rollcall_id);
            } else {
                ingest_new_event_id(r->event_id);
            }
            bx_buf b;
            bx_buf_init(&b, 4096);
            bx_status ms =
                bx_buf_puts(&b, "{\"schema\":\"bx.attendance.v1\",\"type\":\"class_report\"");
            IFOK(ms, put_str(&b, "event_id", r->event_id));
            IFOK(ms, put_str(&b, "school_id", klass->school->id));
            IFOK(ms, put_str(&b, "class_id", klass->id));
            IFOK(ms, put_str(&b, "date", dtext));
            IFOK(ms, put_int(&b, "period", period, has_period));
            IFOK(ms, put_str(&b, "rollcall_id", rollcall_id));
            IFOK(ms, bx_buf_printf(&b,
                                   ",\"enrolled\":%d,\"absent\":%d,\"leave\":%d,\"late\":%d,"
                                   "\"early_leave\":%d,\"present\":%d",
                                   n, totals[0], totals[1], totals[2], totals[3], totals[4]));
            IFOK(ms, put_str(&b, "recorded_at", at));
            IFOK(ms, put_str(&b, "recorded_by", ctx->credential_id));
            IFOK(ms, bx_buf_puts(&b, "}"));
            IFOK(ms, finish_message(r, &b));
            bx_buf_free(&b);
            r->topic = BX_TOPIC_ATTENDANCE;
            snprintf(r->key, sizeof(r->key), "%s", klass->id);
            bx_buf sum;
            bx_buf_init(&sum, 4096);
            IFOK(ms, bx_buf_printf(&sum,
                                   "\"rollcall\":{\"class_id\":\"%s\",\"date\":\"%s\","
                                   "\"enrolled\":%d,\"present\":%d,\"absent\":%d,\"leave\":%d,"
                                   "\"late\":%d,\"early_leave\":%d}",
                                   klass->id, dtext, n, totals[4], totals[0], totals[1], totals[2],
                                   totals[3]));
            out->summary = ms == BX_OK ? bx_buf_steal(&sum) : NULL;
            bx_buf_free(&sum);
            if (ms != BX_OK)
                s = BX_ERR(err, BX_ENOMEM, "out of memory");
        }
    }
    free(status);
    free(kind);
    free(listed);
    free(withheld);
    cJSON_Delete(root);
    return s;
}

static const char *const requesters[] = {"guardian", "student", "teacher", NULL};

bx_status ingest_parse_leave(const ingest_ctx *ctx, const char *body, size_t len, ingest_batch *out,
                             bx_error *err)
{
    cJSON *root = NULL;
    const cJSON *records = NULL;
    bx_status s = records_array(body, len, &root, &records, err);
    if (s != BX_OK)
        return s;
    static const char *const keys[] = {
        "student_id",   "first_date", "last_date", "first_period", "last_period", "leave_kind",
        "requested_by", "phoned_in",  "approved",  "event_id",     NULL};
    int index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, records)
    {
        char path[48], field[96];
        snprintf(path, sizeof(path), "records[%d]", index);
        ingest_record *r = add_json_record(out, index++, item, path);
        if (r == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
            break;
        }
        if (r->outcome == INGEST_REJECTED)
            continue;
        bx_error e = {0};
        bx_status fs;
        const char *student = NULL, *first = NULL, *last = NULL, *kind = NULL, *by = NULL,
                   *event = "";
        int64_t p1 = 0, p2 = 0;
        bool phoned = false, approved = true, has_p1, has_p2;
        if ((fs = bx_json_only_keys(item, path, keys, &e)) != BX_OK) {
            r->outcome = INGEST_REJECTED;
            r->reason = "unknown_field";
            snprintf(r->field, sizeof(r->field), "%s", path);
            snprintf(r->error, sizeof(r->error), "%.300s", e.msg);
            bx_utf8_repair(r->error);
            continue;
        }
#define GET(call, key)                                                                             \
    if ((fs = (call)) != BX_OK && fs != BX_ENOTFOUND) {                                            \
        reject_json(r, path, key, fs, &e);                                                         \
        continue;                                                                                  \
    }
        GET(bx_json_get_string(item, path, "student_id", true, 64, &student, &e), "student_id");
        GET(bx_json_get_string(item, path, "first_date", true, 32, &first, &e), "first_date");
        GET(bx_json_get_string(item, path, "last_date", true, 32, &last, &e), "last_date");
        GET(bx_json_get_int(item, path, "first_period", false, 1, 12, &p1, &e), "first_period");
        has_p1 = fs == BX_OK;
        GET(bx_json_get_int(item, path, "last_period", false, 1, 12, &p2, &e), "last_period");
        has_p2 = fs == BX_OK;
        GET(bx_json_get_string(item, path, "leave_kind", true, 32, &kind, &e), "leave_kind");
        GET(bx_json_get_string(item, path, "requested_by", true, 32, &by, &e), "requested_by");
        GET(bx_json_get_bool(item, path, "phoned_in", false, &phoned, &e), "phoned_in");
        GET(bx_json_get_bool(item, path, "approved", false, &approved, &e), "approved");
        GET(bx_json_get_string(item, path, "event_id", false, 128, &event, &e), "event_id");
#undef GET
        snprintf(field, sizeof(field), "%s.student_id", path);
        const bx_reg_student *st = check_student(ctx, r, field, student);
        if (st == NULL)
            continue;
        bx_date d1, d2;
        snprintf(field, sizeof(field), "%s.first_date", path);
        if (!check_date(ctx, r, field, first, st->school, MAX_LEAVE_AHEAD_DAYS, false, &d1))
            continue;
        snprintf(field, sizeof(field), "%s.last_date", path);
        if (bx_date_parse(last, &d2) != BX_OK) {
            reject(r, field, "invalid_value", "expected a date YYYY-MM-DD, got \"%.20s\"", last);
            continue;
        }
        if (d2 < d1) {
            reject(r, field, "invalid_value", "%s is before first_date %s", last, first);
            continue;
        }
        if (d2 - d1 + 1 > MAX_LEAVE_DAYS) {
            reject(r, field, "invalid_value",
                   "a leave spans at most %d days (longer absences are a suspension)",
                   MAX_LEAVE_DAYS);
            continue;
        }
        if ((has_p1 || has_p2) && d1 != d2) {
            snprintf(field, sizeof(field), "%s.first_period", path);
            reject(r, field, "invalid_value", "periods are only allowed for a one-day leave");
            continue;
        }
        if (has_p1 != has_p2 || (has_p1 && p2 < p1)) {
            snprintf(field, sizeof(field), "%s.last_period", path);
            reject(r, field, "invalid_value",
                   "give both first_period and last_period, first not after last");
            continue;
        }
        snprintf(field, sizeof(field), "%s.leave_kind", path);
        if (!in_list(kind, leave_kinds)) {
            reject(r, field, "invalid_value", "expected sick or personal, got \"%.20s\"", kind);
            continue;
        }
        snprintf(field, sizeof(field), "%s.requested_by", path);
        if (!in_list(by, requesters)) {
            reject(r, field, "invalid_value",
                   "expected guardian, student or teacher, got \"%.20s\"", by);
            continue;
        }
        snprintf(field, sizeof(field), "%s.event_id", path);
        if (*event && !event_id_valid(event)) {
            reject(r, field, "invalid_value", "expected 1 to %d of A-Z a-z 0-9 . _ : -",
                   MAX_EVENT_ID);
            continue;
        }
        set_event_id(r, event, "ev:");
        char t1[11], t2[11], at[40];
        bx_date_format(d1, t1);
        bx_date_format(d2, t2);
        bx_time_format(ctx->now, at, sizeof(at));
        bx_buf b;
        bx_buf_init(&b, 4096);
        bx_status ms = bx_buf_puts(&b, "{\"schema\":\"bx.attendance.v1\",\"type\":\"leave\"");
        IFOK(ms, put_str(&b, "event_id", r->event_id));
        IFOK(ms, put_str(&b, "student_id", st->id));
        IFOK(ms, put_str(&b, "school_id", st->school->id));
        IFOK(ms, put_str(&b, "class_id", st->klass->id));
        IFOK(ms, put_str(&b, "first_date", t1));
        IFOK(ms, put_str(&b, "last_date", t2));
        IFOK(ms, put_int(&b, "first_period", p1, has_p1));
        IFOK(ms, put_int(&b, "last_period", p2, has_p2));
        IFOK(ms, put_str(&b, "leave_kind", kind));
        IFOK(ms, put_str(&b, "requested_by", by));
        IFOK(ms, bx_buf_printf(&b, ",\"phoned_in\":%s,\"approved\":%s", phoned ? "true" : "false",
                               approved ? "true" : "false"));
        IFOK(ms, put_str(&b, "recorded_at", at));
        IFOK(ms, put_str(&b, "recorded_by", ctx->credential_id));
        IFOK(ms, bx_buf_puts(&b, "}"));
        IFOK(ms, finish_message(r, &b));
        bx_buf_free(&b);
        if (ms != BX_OK) {
            reject(r, path, "other", "out of memory");
            continue;
        }
        r->topic = BX_TOPIC_ATTENDANCE;
        snprintf(r->key, sizeof(r->key), "%s", st->id);
    }
    cJSON_Delete(root);
    reject_repeated_ids(out, "records");
    return s;
}

/* What each action's details must hold. */
enum detail_type { D_STRING, D_BOOL, D_DATE, D_ID, D_TASK };
struct detail {
    const char *key;
    enum detail_type type;
    bool required;
    const char *const *values; /* D_STRING: allowed values, or NULL for free text */
};
struct action_spec {
    const char *action;
    const struct detail *details;
};

static const char *const channels[] = {"phone", "visit", "message", NULL};
static const char *const outcomes[] = {"will_return", "refused", "not_home", "other", NULL};
static const char *const reasons[] = {"poverty",      "illness", "disability", "dislikes_school",
                                      "left_to_work", "family",  "other",      NULL};
static const char *const letters[] = {"persuasion_letter", "return_notice", "deadline_notice",
                                      NULL};
static const char *const destinations[] = {"in_province", "out_of_province", NULL};
static const char *const filed_with[] = {"school", "academic_office", "township", "county_bureau",
                                         NULL};
static const char *const suspension_reasons[] = {"illness", "disability", "other", NULL};

static const struct detail contact_details[] = {
    {"channel", D_STRING, true, channels}, {"reached", D_BOOL, true, NULL}, {NULL, 0, 0, NULL}};
static const struct detail visit_details[] = {{"outcome", D_STRING, true, outcomes},
                                              {"reason", D_STRING, false, reasons},
                                              {NULL, 0, 0, NULL}};
static const struct detail letter_details[] = {{"letter", D_STRING, true, letters},
                                               {NULL, 0, 0, NULL}};
/* report_filed: task is a ladder task kind (checked by task_kind_valid below). */
static const struct detail report_details[] = {
    {"task", D_TASK, true, NULL}, {"filed_with", D_STRING, false, filed_with}, {NULL, 0, 0, NULL}};
static const struct detail returned_details[] = {{"return_date", D_DATE, true, NULL},
                                                 {"township_signoff_staff_id", D_ID, false, NULL},
                                                 {NULL, 0, 0, NULL}};
static const struct detail transfer_out_details[] = {{"destination", D_STRING, true, destinations},
                                                     {"receiving_school", D_STRING, false, NULL},
                                                     {"paperwork", D_BOOL, true, NULL},
                                                     {NULL, 0, 0, NULL}};
static const struct detail transfer_confirmed_details[] = {
    {"receiving_school", D_STRING, true, NULL},
    {"confirmation_no", D_STRING, true, NULL},
    {NULL, 0, 0, NULL}};
static const struct detail suspension_details[] = {{"first_date", D_DATE, true, NULL},
                                                   {"last_date", D_DATE, true, NULL},
                                                   {"reason", D_STRING, true, suspension_reasons},
                                                   {"approved", D_BOOL, true, NULL},
                                                   {NULL, 0, 0, NULL}};

static const struct action_spec actions[] = {
    {"contact_made", contact_details},
    {"home_visit", visit_details},
    {"letter_delivered", letter_details},
    {"report_filed", report_details},
    {"returned", returned_details},
    {"transfer_out", transfer_out_details},
    {"transfer_confirmed", transfer_confirmed_details},
    {"suspension", suspension_details},
};

/* A ladder task kind as deploy/policy names them: a lower-case letter, then up to 38 of a-z 0-9 _.
 */
static bool task_kind_valid(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 39 || v[0] < 'a' || v[0] > 'z')
        return false;
    return strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Validates details against the spec and appends the normalised object to b. */
static bool action_details(ingest_record *r, const char *path, const cJSON *details,
                           const struct detail *spec, bx_buf *b)
{
    char dpath[96];
    snprintf(dpath, sizeof(dpath), "%s.details", path);
    if (!cJSON_IsObject(details)) {
        reject(r, dpath, details ? "invalid_value" : "missing_field",
               "is required and must be an object");
        return false;
    }
    const char *allowed[8];
    size_t n = 0;
    for (; spec[n].key; n++)
        allowed[n] = spec[n].key;
    allowed[n] = NULL;
    bx_error e = {0};
    if (bx_json_only_keys(details, dpath, allowed, &e) != BX_OK) {
        r->outcome = INGEST_REJECTED;
        r->reason = "unknown_field";
        snprintf(r->field, sizeof(r->field), "%s", dpath);
        snprintf(r->error, sizeof(r->error), "%.300s", e.msg);
        bx_utf8_repair(r->error);
        return false;
    }
    bx_status s = bx_buf_puts(b, ",\"details\":{");
    for (size_t i = 0; spec[i].key && s == BX_OK; i++) {
        char field[128];
        snprintf(field, sizeof(field), "%s.%s", dpath, spec[i].key);
        if (spec[i].type == D_BOOL) {
            bool v = false;
            bx_status fs = bx_json_get_bool(details, dpath, spec[i].key, spec[i].required, &v, &e);
            if (fs != BX_OK && fs != BX_ENOTFOUND) {
                reject_json(r, dpath, spec[i].key, fs, &e);
                return false;
            }
            s = bx_buf_printf(b, "%s\"%s\":%s", i ? "," : "", spec[i].key,
                              fs == BX_OK ? (v ? "true" : "false") : "null");
            continue;
        }
        const char *v = NULL;
        /* An optional member given as null is not given (the OpenAPI says "absent or null"). */
        bx_status fs =
            !spec[i].required &&
                    cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(details, spec[i].key))
                ? BX_ENOTFOUND
                : bx_json_get_string(details, dpath, spec[i].key, spec[i].required, 200, &v, &e);
        if (fs != BX_OK && fs != BX_ENOTFOUND) {
            reject_json(r, dpath, spec[i].key, fs, &e);
            return false;
        }
        if (fs == BX_OK) {
            bx_date d;
            if (spec[i].type == D_DATE && bx_date_parse(v, &d) != BX_OK) {
                reject(r, field, "invalid_value", "expected a date YYYY-MM-DD, got \"%.20s\"", v);
                return false;
            }
            if (spec[i].type == D_ID && !bx_id_valid(v)) {
                reject(r, field, "invalid_value", "\"%.40s\" is not a staff id", v);
                return false;
            }
            if (spec[i].type == D_TASK && !task_kind_valid(v)) {
                reject(r, field, "invalid_value",
                       "expected a task kind of the ladder such as report_to_school or "
                       "dropout_report_form (a-z, 0-9 and _, up to 39), got \"%.40s\"",
                       v);
                return false;
            }
            if (spec[i].values && !in_list(v, spec[i].values)) {
                char allowed_text[200] = "";
                size_t used = 0;
                for (size_t k = 0; spec[i].values[k]; k++)
                    used += (size_t)snprintf(allowed_text + used, sizeof(allowed_text) - used,
                                             "%s%s", k ? ", " : "", spec[i].values[k]);
                reject(r, field, "invalid_value", "expected one of %s, got \"%.40s\"", allowed_text,
                       v);
                return false;
            }
        }
        s = bx_buf_printf(b, "%s\"%s\":", i ? "," : "", spec[i].key);
        IFOK(s, fs == BX_OK ? bx_buf_json_string(b, v) : bx_buf_puts(b, "null"));
    }
    IFOK(s, bx_buf_puts(b, "}"));
    if (s != BX_OK)
        reject(r, path, "other", "out of memory");
    return s == BX_OK;
}

bx_status ingest_parse_actions(const ingest_ctx *ctx, const char *body, size_t len,
                               ingest_batch *out, bx_error *err)
{
    cJSON *root = NULL;
    const cJSON *records = NULL;
    bx_status s = records_array(body, len, &root, &records, err);
    if (s != BX_OK)
        return s;
    static const char *const keys[] = {"student_id", "action",   "date", "staff_id",
                                       "details",    "event_id", NULL};
    int index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, records)
    {
        char path[48], field[96];
        snprintf(path, sizeof(path), "records[%d]", index);
        ingest_record *r = add_json_record(out, index++, item, path);
        if (r == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
            break;
        }
        if (r->outcome == INGEST_REJECTED)
            continue;
        bx_error e = {0};
        bx_status fs;
        const char *student = NULL, *action = NULL, *date = NULL, *staff = "", *event = "";
        if ((fs = bx_json_only_keys(item, path, keys, &e)) != BX_OK) {
            r->outcome = INGEST_REJECTED;
            r->reason = "unknown_field";
            snprintf(r->field, sizeof(r->field), "%s", path);
            snprintf(r->error, sizeof(r->error), "%.300s", e.msg);
            bx_utf8_repair(r->error);
            continue;
        }
#define GET(call, key)                                                                             \
    if ((fs = (call)) != BX_OK && fs != BX_ENOTFOUND) {                                            \
        reject_json(r, path, key, fs, &e);                                                         \
        continue;                                                                                  \
    }
        GET(bx_json_get_string(item, path, "student_id", true, 64, &student, &e), "student_id");
        GET(bx_json_get_string(item, path, "action", true, 32, &action, &e), "action");
        GET(bx_json_get_string(item, path, "date", true, 32, &date, &e), "date");
        GET(bx_json_get_string(item, path, "staff_id", false, 64, &staff, &e), "staff_id");
        GET(bx_json_get_string(item, path, "event_id", false, 128, &event, &e), "event_id");
#undef GET
        snprintf(field, sizeof(field), "%s.student_id", path);
        const bx_reg_student *st = check_student(ctx, r, field, student);
        if (st == NULL)
            continue;
        const struct action_spec *spec = NULL;
        for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
            if (strcmp(actions[i].action, action) == 0)
                spec = &actions[i];
        snprintf(field, sizeof(field), "%s.action", path);
        if (spec == NULL) {
            reject(r, field, "invalid_value",
                   "expected contact_made, home_visit, letter_delivered, report_filed, returned, "
                   "transfer_out, transfer_confirmed or suspension, got \"%.30s\"",
                   action);
            continue;
        }
        /* Actions happen on any day (a home visit on a Saturday), but not in the future. */
        bx_date d;
        snprintf(field, sizeof(field), "%s.date", path);
        if (bx_date_parse(date, &d) != BX_OK) {
            reject(r, field, "invalid_value", "expected a date YYYY-MM-DD, got \"%.20s\"", date);
            continue;
        }
        if (d > bx_time_local_date(ctx->now)) {
            reject(r, field, "future_date", "%s is in the future", date);
            continue;
        }
        snprintf(field, sizeof(field), "%s.staff_id", path);
        if (*staff && !bx_id_valid(staff)) {
            reject(r, field, "invalid_value", "\"%.40s\" is not a staff id", staff);
            continue;
        }
        /* A report is filed by someone: the seeds hold its author accountable. */
        if (!*staff && strcmp(action, "report_filed") == 0) {
            reject(r, field, "missing_field", "report_filed needs the staff member who filed it");
            continue;
        }
        snprintf(field, sizeof(field), "%s.event_id", path);
        if (*event && !event_id_valid(event)) {
            reject(r, field, "invalid_value", "expected 1 to %d of A-Z a-z 0-9 . _ : -",
                   MAX_EVENT_ID);
            continue;
        }
        set_event_id(r, event, "ev:");
        char at[40];
        bx_time_format(ctx->now, at, sizeof(at));
        bx_buf b;
        bx_buf_init(&b, 8192);
        bx_status ms = bx_buf_puts(&b, "{\"schema\":\"bx.actions.v1\"");
        IFOK(ms, put_str(&b, "event_id", r->event_id));
        IFOK(ms, put_str(&b, "student_id", st->id));
        IFOK(ms, put_str(&b, "school_id", st->school->id));
        IFOK(ms, put_str(&b, "action", action));
        IFOK(ms, put_str(&b, "date", date));
        IFOK(ms, put_str(&b, "staff_id", staff));
        IFOK(ms, put_str(&b, "recorded_at", at));
        IFOK(ms, put_str(&b, "recorded_by", ctx->credential_id));
        if (ms != BX_OK ||
            !action_details(r, path, cJSON_GetObjectItemCaseSensitive(item, "details"),
                            spec->details, &b)) {
            bx_buf_free(&b);
            if (r->outcome != INGEST_REJECTED)
                reject(r, path, "other", "out of memory");
            continue;
        }
        ms = bx_buf_puts(&b, "}");
        IFOK(ms, finish_message(r, &b));
        bx_buf_free(&b);
        if (ms != BX_OK) {
            reject(r, path, "other", "out of memory");
            continue;
        }
        r->topic = BX_TOPIC_ACTIONS;
        snprintf(r->key, sizeof(r->key), "%s", st->id);
    }
    cJSON_Delete(root);
    reject_repeated_ids(out, "records");
    return s;
}
