/* bxvalidate records: what every record kind shares (batches, rejects, member readers, the
 * registry, calendar and scope checks, message writers). Pure: no Kafka, Redis or PostgreSQL. */
#include "records.h"
#include "bx_json.h"
#include "bx_log.h"

#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const records_leave_kinds[] = {"sick", "personal", NULL};

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

ingest_record *records_add(ingest_batch *b, int index, long line)
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

void records_reject(ingest_record *r, const char *field, const char *reason, const char *fmt, ...)
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
    /* The error is echoed in the reply and the dead letter: an id number or a phone typed into a
     * field is masked as the logs mask it. */
    bx_log_mask(r->error);
}

/* r rejected with an error message that already names its field. */
static void reject_as_is(ingest_record *r, const char *field, const char *reason, const char *msg)
{
    if (r->outcome == INGEST_REJECTED)
        return;
    r->outcome = INGEST_REJECTED;
    snprintf(r->field, sizeof(r->field), "%s", field);
    r->reason = reason;
    snprintf(r->error, sizeof(r->error), "%.300s", msg);
    bx_utf8_repair(r->error);
    bx_log_mask(r->error);
}

void records_reject_json(ingest_record *r, const char *path, const char *key, const bx_error *e)
{
    char field[96];
    snprintf(field, sizeof(field), "%s.%s", path, key);
    reject_as_is(r, field, strstr(e->msg, "is required") ? "missing_field" : "invalid_value",
                 e->msg);
}

bool records_only_keys(ingest_record *r, const cJSON *item, const char *path,
                       const char *const *allowed)
{
    bx_error e = {0};
    if (bx_json_only_keys(item, path, allowed, &e) == BX_OK)
        return true;
    reject_as_is(r, path, "unknown_field", e.msg);
    return false;
}

bool records_get_string(ingest_record *r, const cJSON *item, const char *path, const char *key,
                        bool required, size_t max, const char **out)
{
    bx_error e = {0};
    bx_status s = bx_json_get_string(item, path, key, required, max, out, &e);
    if (s == BX_OK || s == BX_ENOTFOUND)
        return true;
    records_reject_json(r, path, key, &e);
    return false;
}

bool records_get_int(ingest_record *r, const cJSON *item, const char *path, const char *key,
                     int64_t lo, int64_t hi, int64_t *out, bool *present)
{
    bx_error e = {0};
    bx_status s = bx_json_get_int(item, path, key, false, lo, hi, out, &e);
    *present = s == BX_OK;
    if (s == BX_OK || s == BX_ENOTFOUND)
        return true;
    records_reject_json(r, path, key, &e);
    return false;
}

bool records_get_bool(ingest_record *r, const cJSON *item, const char *path, const char *key,
                      bool *out)
{
    bx_error e = {0};
    bx_status s = bx_json_get_bool(item, path, key, false, out, &e);
    if (s == BX_OK || s == BX_ENOTFOUND)
        return true;
    records_reject_json(r, path, key, &e);
    return false;
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

bool records_event_id_valid(const char *s)
{
    return bx_token_valid(s, MAX_EVENT_ID, ".:");
}

bool records_take_event_id(ingest_record *r, const char *path, const char *event_id)
{
    if (*event_id && !records_event_id_valid(event_id)) {
        char field[96];
        snprintf(field, sizeof(field), "%s.event_id", path);
        records_reject(r, field, "invalid_value", "expected 1 to %d of A-Z a-z 0-9 . _ : -",
                       MAX_EVENT_ID);
        return false;
    }
    if (*event_id) {
        snprintf(r->event_id, sizeof(r->event_id), "%s", event_id);
        snprintf(r->dedup_key, sizeof(r->dedup_key), "ev:%s", event_id);
    } else {
        ingest_new_event_id(r->event_id);
    }
    return true;
}

const char *ingest_recorded_by(const ingest_ctx *ctx)
{
    return ctx->writer == INGEST_WRITER_PERSON ? ctx->staff_id : ctx->credential_id;
}

/* The writer's area: a key's or a school role's school, an officer's township or county. */
static bool writer_area(const ingest_ctx *ctx, const char **kind, const char **code)
{
    const char *role = ctx->role ? ctx->role : "";
    *kind = "school";
    *code = ctx->school_id;
    if (ctx->writer == INGEST_WRITER_PERSON && strcmp(role, "township_officer") == 0) {
        *kind = "township";
        *code = ctx->township_code;
    } else if (ctx->writer == INGEST_WRITER_PERSON && strcmp(role, "county_officer") == 0) {
        *kind = "county";
        *code = ctx->county_code;
    }
    return *code != NULL && **code != '\0';
}

bool records_writer_reaches(const ingest_ctx *ctx, const bx_reg_school *school)
{
    const char *kind, *code;
    if (!writer_area(ctx, &kind, &code))
        return false;
    if (kind[0] == 't')
        return strcmp(school->township_code, code) == 0;
    if (kind[0] == 'c')
        return strcmp(school->county_code, code) == 0;
    return strcmp(school->id, code) == 0;
}

void records_writer_scope(const ingest_ctx *ctx, char *out, size_t size)
{
    const char *kind, *code;
    if (writer_area(ctx, &kind, &code))
        snprintf(out, size, "%s %s", kind, code);
    else
        snprintf(out, size, "no school of staff %s (role %s)", ctx->staff_id ? ctx->staff_id : "-",
                 ctx->role ? ctx->role : "-");
}

const bx_reg_student *records_check_student(const ingest_ctx *ctx, ingest_record *r,
                                            const char *field, const char *id)
{
    if (!bx_id_valid(id)) {
        records_reject(r, field, "invalid_value", "\"%.40s\" is not a student id", id);
        return NULL;
    }
    const bx_reg_student *st = bx_registry_student(ctx->registry, id);
    if (st == NULL || st->school == NULL) {
        records_reject(r, field, "unknown_student", "no student \"%s\" in the registry", id);
        return NULL;
    }
    if (!records_writer_reaches(ctx, st->school)) {
        char scope[96];
        records_writer_scope(ctx, scope, sizeof(scope));
        records_reject(r, field, "wrong_school", "student \"%s\" is not registered at %s", id,
                       scope);
        return NULL;
    }
    snprintf(r->student_id, sizeof(r->student_id), "%s", id);
    return st;
}

/* "YYYY-MM-DD" with a month and a day that exist, whatever the year. */
static bool is_calendar_date(const char *s)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : !isdigit((unsigned char)s[i]))
            return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return s[10] == '\0' && m >= 1 && m <= 12 && d >= 1 &&
           (d <= days[m - 1] - (m == 2 && !leap ? 1 : 0));
}

bool records_read_date(ingest_record *r, const char *field, const char *text, bx_date *out)
{
    if (bx_date_parse(text, out) == BX_OK)
        return true;
    if (is_calendar_date(text))
        records_reject(r, field, "invalid_value",
                       "%s is out of range: dates from 1900-01-01 to 2199-12-31 are accepted",
                       text);
    else
        records_reject(r, field, "invalid_value", "expected a date YYYY-MM-DD, got \"%.20s\"",
                       text);
    return false;
}

bool records_check_date(const ingest_ctx *ctx, ingest_record *r, const char *field,
                        const char *text, const bx_reg_school *school, int ahead_days,
                        bool school_day, bx_date *out)
{
    bx_date d;
    if (!records_read_date(r, field, text, &d))
        return false;
    bx_date today = bx_time_local_date(ctx->now);
    if (d > today + ahead_days) {
        char t[11];
        bx_date_format(today + ahead_days, t);
        records_reject(r, field, "future_date", "%s is in the future (latest accepted: %s)", text,
                       t);
        return false;
    }
    const bx_calendar *cal = school->calendar;
    if (cal == NULL || bx_calendar_term_of(cal, d) == NULL) {
        records_reject(r, field, "outside_term", "%s is outside every term of school %s", text,
                       school->id);
        return false;
    }
    if (school_day && !bx_calendar_is_school_day(cal, d)) {
        records_reject(r, field, "not_school_day",
                       "%s is not a school day at school %s (weekend, holiday or closure)", text,
                       school->id);
        return false;
    }
    *out = d;
    return true;
}

bool records_in_list(const char *v, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(v, list[i]) == 0)
            return true;
    return false;
}

void records_reject_repeated_ids(ingest_batch *b, const char *prefix)
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
                records_reject(r, field, "duplicate_in_request",
                               "event id \"%s\" also used by %s[%d]", r->event_id, prefix,
                               b->items[j].index);
                break;
            }
        }
    }
}

/* Common start of a JSON body {"records":[...]}: returns the array. */
void records_skip_bom(const char **body, size_t *len)
{
    if (*len >= 3 && memcmp(*body, "\xEF\xBB\xBF", 3) == 0) {
        *body += 3;
        *len -= 3;
    }
}

static bx_status records_array(const char *body, size_t len, cJSON **root, const cJSON **records,
                               bx_error *err)
{
    records_skip_bom(&body, &len);
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

bx_status records_parse_json(const ingest_ctx *ctx, const char *body, size_t len,
                             const char *const *keys, records_fn *fn, ingest_batch *out,
                             bx_error *err)
{
    cJSON *root = NULL;
    const cJSON *records = NULL;
    bx_status s = records_array(body, len, &root, &records, err);
    if (s != BX_OK)
        return s;
    int index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, records)
    {
        char path[48];
        snprintf(path, sizeof(path), "records[%d]", index);
        ingest_record *r = records_add(out, index++, 0);
        if (r == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "out of memory");
            break;
        }
        r->raw = records_print(item);
        if (!cJSON_IsObject(item))
            records_reject(r, path, "malformed", "expected an object");
        else if (records_only_keys(r, item, path, keys))
            (void)fn(ctx, r, item, path); /* the record's outcome is in r */
    }
    cJSON_Delete(root);
    records_reject_repeated_ids(out, "records");
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

char *records_print(const cJSON *item)
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

bx_status records_finish_message(ingest_record *r, bx_buf *b)
{
    if (b->len == 0)
        return BX_ENOMEM;
    r->message = bx_buf_steal(b);
    return r->message ? BX_OK : BX_ENOMEM;
}

bx_status records_put_str(bx_buf *b, const char *key, const char *value)
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

bx_status records_put_int(bx_buf *b, const char *key, long long v, bool present)
{
    return present ? bx_buf_printf(b, ",\"%s\":%lld", key, v)
                   : bx_buf_printf(b, ",\"%s\":null", key);
}

bx_status records_close_message(const ingest_ctx *ctx, ingest_record *r, bx_status s, bx_buf *b,
                                const char *topic, const char *key)
{
    char at[40];
    bx_time_format(ctx->now, at, sizeof(at));
    IFOK(s, records_put_str(b, "recorded_at", at));
    IFOK(s, records_put_str(b, "recorded_by", ingest_recorded_by(ctx)));
    IFOK(s, bx_buf_puts(b, "}"));
    IFOK(s, records_finish_message(r, b));
    bx_buf_free(b);
    r->topic = topic;
    snprintf(r->key, sizeof(r->key), "%s", key);
    return s;
}

void records_join(char *dst, size_t size, const char *a, const char *b, const char *c)
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

bx_status records_attendance_message(const ingest_ctx *ctx, ingest_record *r,
                                     const bx_reg_student *st, const records_fact *f)
{
    /* A roll call's messages share the date and the time: format each once per thread. */
    static _Thread_local bx_date cached_date = BX_DATE_NONE;
    static _Thread_local bx_time_ms cached_now = -1;
    static _Thread_local char day[11], at[40];
    char period_text[8] = "null";
    if (f->date != cached_date) {
        bx_date_format(f->date, day);
        cached_date = f->date;
    }
    if (ctx->now != cached_now) {
        bx_time_format(ctx->now, at, sizeof(at));
        cached_now = ctx->now;
    }
    if (f->has_period)
        snprintf(period_text, sizeof(period_text), "%lld", f->period);
    struct fixed_msg m = {.len = 0, .overflow = false};
    MSG_LIT(&m, "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\"");
    MSG_STR(&m, "event_id", r->event_id);
    MSG_STR(&m, "student_id", st->id);
    MSG_STR(&m, "school_id", st->school->id);
    MSG_STR(&m, "class_id", st->klass->id);
    MSG_STR(&m, "date", day);
    MSG_LIT(&m, ",\"period\":");
    msg_add(&m, period_text, strlen(period_text));
    MSG_STR(&m, "status", f->status);
    MSG_STR(&m, "leave_kind", f->leave_kind);
    MSG_STR(&m, "source", f->source);
    MSG_STR(&m, "rollcall_id", f->rollcall_id);
    MSG_STR(&m, "recorded_at", at);
    MSG_STR(&m, "recorded_by", ingest_recorded_by(ctx));
    MSG_LIT(&m, "}");
    r->topic = BX_TOPIC_ATTENDANCE;
    records_join(r->key, sizeof(r->key), st->id, "", "");
    if (m.overflow)
        return BX_ENOMEM;
    r->message = malloc(m.len + 1);
    if (r->message == NULL)
        return BX_ENOMEM;
    memcpy(r->message, m.text, m.len);
    r->message[m.len] = '\0';
    return BX_OK;
}
