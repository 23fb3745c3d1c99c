/* messages: decoding the bx.attendance.v1 messages bx-score consumes into the store's terms. */
#include "messages.h"
#include "bx_buf.h"
#include "bx_json.h"
#include "bx_name.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PATH SCORE_MESSAGE_PATH

static const char *const message_keys[] = {"schema",
                                           "type",
                                           "event_id",
                                           "student_id",
                                           "school_id",
                                           "class_id",
                                           "date",
                                           "period",
                                           "status",
                                           "leave_kind",
                                           "source",
                                           "rollcall_id",
                                           "recorded_at",
                                           "recorded_by",
                                           "first_date",
                                           "last_date",
                                           "first_period",
                                           "last_period",
                                           "requested_by",
                                           "phoned_in",
                                           "approved",
                                           "enrolled",
                                           "absent",
                                           "leave",
                                           "late",
                                           "early_leave",
                                           "present",
                                           "listed",
                                           NULL};

static bx_status get_id(const cJSON *o, const char *key, char out[BX_ID_MAX + 1], bx_error *err)
{
    const char *v = NULL;
    bx_status s = bx_json_get_string(o, PATH, key, true, BX_ID_MAX, &v, err);
    if (s == BX_OK && !bx_id_valid(v))
        s = BX_ERR(err, BX_EINVAL, PATH ".%s: not a registry id", key);
    if (s == BX_OK)
        snprintf(out, BX_ID_MAX + 1, "%s", v);
    return s;
}

/* The student's (when student is true), the school's and the class's ids, in that order. */
static bx_status get_ids(const cJSON *o, bool student, score_message *m, bx_error *err)
{
    bx_status s = student ? get_id(o, "student_id", m->student, err) : BX_OK;
    IFOK(s, get_id(o, "school_id", m->school, err));
    IFOK(s, get_id(o, "class_id", m->klass, err));
    return s;
}

static bx_status parse_date(const char *text, void *out)
{
    return bx_date_parse(text, out);
}

static bx_status parse_time(const char *text, void *out)
{
    return bx_time_parse(text, out);
}

/* The string member key, of at most max bytes, read by parse into out; "<key>: <expected>"
 * when parse refuses it. */
static bx_status get_parsed(const cJSON *o, const char *key, size_t max,
                            bx_status (*parse)(const char *, void *), void *out,
                            const char *expected, bx_error *err)
{
    const char *v = NULL;
    bx_status s = bx_json_get_string(o, PATH, key, true, max, &v, err);
    if (s == BX_OK && parse(v, out) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, PATH ".%s: %s", key, expected);
    return s;
}

static bx_status get_date(const cJSON *o, const char *key, bx_date *out, bx_error *err)
{
    return get_parsed(o, key, 10, parse_date, out, "not a date", err);
}

static bx_status get_time(const cJSON *o, const char *key, bx_time_ms *out, bx_error *err)
{
    return get_parsed(o, key, 64, parse_time, out, "not an RFC 3339 time", err);
}

/* null (0: the whole day) or 1..12. */
static bx_status get_period(const cJSON *o, const char *key, int *out, bx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL)
        return BX_ERR(err, BX_EINVAL, PATH ".%s: is required", key);
    if (cJSON_IsNull(v)) {
        *out = 0;
        return BX_OK;
    }
    int64_t p = 0;
    bx_status s = bx_json_get_int(o, PATH, key, true, 1, SCORE_PERIOD_MAX, &p, err);
    *out = (int)p;
    return s;
}

static bx_status get_event_id(const cJSON *o, char out[SCORE_EVENT_ID_MAX + 1], bx_error *err)
{
    const char *v = NULL;
    bx_status s = bx_json_get_string(o, PATH, "event_id", true, SCORE_EVENT_ID_MAX, &v, err);
    if (s == BX_OK)
        snprintf(out, SCORE_EVENT_ID_MAX + 1, "%s", v);
    return s;
}

static bx_status get_leave_kind(const cJSON *o, bool required, score_leave_kind *out, bx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "leave_kind");
    *out = SCORE_LEAVE_NONE;
    if (v == NULL)
        return BX_ERR(err, BX_EINVAL, PATH ".leave_kind: is required");
    if (!required)
        return cJSON_IsNull(v) ? BX_OK : BX_ERR(err, BX_EINVAL, PATH ".leave_kind: expected null");
    if (cJSON_IsString(v) && strcmp(v->valuestring, "sick") == 0)
        *out = SCORE_LEAVE_SICK;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "personal") == 0)
        *out = SCORE_LEAVE_PERSONAL;
    else
        return BX_ERR(err, BX_EINVAL, PATH ".leave_kind: expected sick or personal");
    return BX_OK;
}

static const char *const status_names[] = {
    [SCORE_PRESENT] = "present", [SCORE_ABSENT] = "absent",           [SCORE_LATE] = "late",
    [SCORE_LEAVE] = "leave",     [SCORE_EARLY_LEAVE] = "early_leave",
};

/* The attendance status a message names; 0 when it names none. */
static score_status status_named(const char *status)
{
    int named = 0; /* stays 0 when no status has this name */
    (void)bx_name_find(status_names, BX_NAMES_COUNT(status_names), status, &named);
    return (score_status)named;
}

static bool source_known(const char *source)
{
    return strcmp(source, "rollcall") == 0 || strcmp(source, "attendance") == 0;
}

/* A fact read by either path, checked and made m's field, order key and value: the same steps
 * for both, so the fast path decides as the general one does. */
static bx_status fact_into(const score_fact *f, const char *source, score_message *m, bx_error *err)
{
    bx_status s = score_fact_check(f, err);
    IFOK(s, score_store_field_day(f->date, f->period, m->field, sizeof(m->field)));
    IFOK(s, score_store_order_key(f->recorded_at, f->event_id, m->order_key, sizeof(m->order_key)));
    if (s != BX_OK)
        return s;
    bx_copy_text(m->value, sizeof(m->value), score_status_code(f->status, f->leave_kind));
    m->implied = strcmp(source, "rollcall") == 0 && f->status == SCORE_PRESENT;
    m->kind = SCORE_MESSAGE_FACT;
    return BX_OK;
}

/* The counts of a class's roll call, in the order of its value. */
static const char *const report_counts[6] = {"enrolled", "absent",      "leave",
                                             "late",     "early_leave", "present"};

/* A roll call read by either path made m's field, order key and value: its counts
 * "enrolled,absent,leave,late,early_leave,present", then, when the report carries whom it listed
 * (listed not NULL), ";" and their ids separated by spaces, or ";*" when they do not fit the value
 * (the roll call then vouches for no one's presence: recompute.c, score_class_days_vouched). */
static bx_status report_into(const char *event_id, bx_date date, int period, bx_time_ms at,
                             const long long n[6], const char *listed, score_message *m)
{
    bx_status s = score_store_field_day(date, period, m->field, sizeof(m->field));
    IFOK(s, score_store_order_key(at, event_id, m->order_key, sizeof(m->order_key)));
    if (s != BX_OK)
        return s;
    int k = snprintf(m->value, sizeof(m->value), "%lld,%lld,%lld,%lld,%lld,%lld", n[0], n[1], n[2],
                     n[3], n[4], n[5]);
    if (listed && k + 1 + strlen(listed) < sizeof(m->value))
        snprintf(m->value + k, sizeof(m->value) - (size_t)k, ";%s", listed);
    else if (listed)
        snprintf(m->value + k, sizeof(m->value) - (size_t)k, ";*");
    m->kind = SCORE_MESSAGE_REPORT;
    return BX_OK;
}

/* The ids of a roll call's "listed" into out (cap bytes), separated by single spaces: *listed is
 * out, or "*" when they do not fit, or NULL when the report carries no list (from before it). */
static bx_status get_listed(const cJSON *o, char *out, size_t cap, const char **listed,
                            bx_error *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "listed");
    *listed = NULL;
    out[0] = '\0';
    if (arr == NULL)
        return BX_OK;
    if (!cJSON_IsArray(arr))
        return BX_ERR(err, BX_EINVAL, PATH ".listed: expected an array of registry ids");
    size_t len = 0;
    bool fits = true;
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        if (!cJSON_IsString(item) || !bx_id_valid(item->valuestring))
            return BX_ERR(err, BX_EINVAL, PATH ".listed[%d]: not a registry id", i);
        size_t n = strlen(item->valuestring);
        if (fits && len + 1 + n < cap) {
            if (len > 0)
                out[len++] = ' ';
            memcpy(out + len, item->valuestring, n + 1);
            len += n;
        } else {
            fits = false;
        }
        i++;
    }
    *listed = fits ? out : "*";
    return BX_OK;
}

static bx_status parse_attendance(const cJSON *o, score_message *m, bx_error *err)
{
    score_fact f;
    memset(&f, 0, sizeof(f));
    const char *status = NULL, *source = NULL;
    bx_status s = get_event_id(o, f.event_id, err);
    IFOK(s, get_ids(o, true, m, err));
    IFOK(s, get_date(o, "date", &f.date, err));
    IFOK(s, get_period(o, "period", &f.period, err));
    IFOK(s, bx_json_get_string(o, PATH, "status", true, 16, &status, err));
    IFOK(s, bx_json_get_string(o, PATH, "source", true, 16, &source, err));
    IFOK(s, get_time(o, "recorded_at", &f.recorded_at, err));
    if (s != BX_OK)
        return s;
    f.status = status_named(status);
    if (f.status == 0)
        return BX_ERR(err, BX_EINVAL, PATH ".status: unknown status");
    if (!source_known(source))
        return BX_ERR(err, BX_EINVAL, PATH ".source: expected rollcall or attendance");
    s = get_leave_kind(o, f.status == SCORE_LEAVE, &f.leave_kind, err);
    IFOK(s, fact_into(&f, source, m, err));
    if (s != BX_OK)
        return err->msg[0] ? s : BX_ERR(err, s, PATH ": not a storable fact");
    return BX_OK;
}

static bx_status parse_leave(const cJSON *o, score_message *m, bx_error *err)
{
    score_leave l;
    memset(&l, 0, sizeof(l));
    bx_status s = get_event_id(o, l.event_id, err);
    IFOK(s, get_ids(o, true, m, err));
    IFOK(s, get_date(o, "first_date", &l.first_date, err));
    IFOK(s, get_date(o, "last_date", &l.last_date, err));
    IFOK(s, get_period(o, "first_period", &l.first_period, err));
    IFOK(s, get_period(o, "last_period", &l.last_period, err));
    IFOK(s, get_leave_kind(o, true, &l.kind, err));
    IFOK(s, bx_json_get_bool(o, PATH, "approved", true, &l.approved, err));
    IFOK(s, get_time(o, "recorded_at", &l.recorded_at, err));
    char value[SCORE_LEAVE_VALUE_SIZE];
    IFOK(s, score_leave_encode(&l, value, err));
    IFOK(s, score_store_field_leave(l.event_id, m->field, sizeof(m->field)));
    IFOK(s, score_store_order_key(l.recorded_at, l.event_id, m->order_key, sizeof(m->order_key)));
    if (s != BX_OK)
        return err->msg[0] ? s : BX_ERR(err, s, PATH ": not a storable leave request");
    snprintf(m->value, sizeof(m->value), "%s", value);
    m->kind = SCORE_MESSAGE_LEAVE;
    return BX_OK;
}

static bx_status parse_report(const cJSON *o, score_message *m, bx_error *err)
{
    char event_id[SCORE_EVENT_ID_MAX + 1];
    bx_date date = BX_DATE_NONE;
    int period = 0;
    bx_time_ms at = 0;
    int64_t n[6] = {0};
    bx_status s = get_event_id(o, event_id, err);
    IFOK(s, get_ids(o, false, m, err));
    IFOK(s, get_date(o, "date", &date, err));
    IFOK(s, get_period(o, "period", &period, err));
    IFOK(s, get_time(o, "recorded_at", &at, err));
    for (int i = 0; i < 6; i++)
        IFOK(s, bx_json_get_int(o, PATH, report_counts[i], true, 0, 1000000, &n[i], err));
    char ids[SCORE_STORE_VALUE_MAX + 1];
    const char *listed = NULL;
    IFOK(s, get_listed(o, ids, sizeof(ids), &listed, err));
    if (s == BX_OK) {
        const long long counts[6] = {n[0], n[1], n[2], n[3], n[4], n[5]};
        s = report_into(event_id, date, period, at, counts, listed, m);
    }
    if (s != BX_OK)
        return err->msg[0] ? s : BX_ERR(err, s, PATH ": not a storable roll call");
    return BX_OK;
}

/* ---- the fast path ----
 *
 * bx-ingest writes every message as one flat object of ASCII strings, small integers, null and
 * booleans, without escapes. For exactly such a message the fast path below reads the members in
 * place (no tree, no copies) and decodes them by the same steps and checks as the general path;
 * anything else (an escape, a byte outside printable ASCII, a nested value, a number that is not
 * plain digits, a repeated or unknown member, any check that fails) sends the message to the
 * general path, which decodes it or says what is wrong with it, so the fast path changes no
 * outcome and no error message. score_message_decode_general is that path alone (for tests). */

enum { FV_ABSENT, FV_STRING, FV_NUMBER, FV_NULL, FV_TRUE, FV_FALSE };

typedef struct fmember {
    int type;
    const char *at;
    size_t len;
} fmember;

#define NKEYS (sizeof(message_keys) / sizeof(message_keys[0]) - 1)

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* A string of printable ASCII without escapes from p[i] (the quote); its end past the closing
 * quote, or 0. */
static size_t fast_string(const char *p, size_t i, size_t len, const char **at, size_t *n)
{
    size_t j = i + 1;
    while (j < len && p[j] != '"') {
        unsigned char c = (unsigned char)p[j];
        if (c < 0x20 || c > 0x7e || c == '\\')
            return 0;
        j++;
    }
    if (j >= len)
        return 0;
    *at = p + i + 1;
    *n = j - i - 1;
    return j + 1;
}

static int key_index(const char *k, size_t n)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(message_keys[i]) == n && memcmp(message_keys[i], k, n) == 0)
            return (int)i;
    return -1;
}

static bool fast_parse(const char *p, size_t len, fmember *mem)
{
    memset(mem, 0, NKEYS * sizeof(*mem));
    size_t i = skip_ws(p, 0, len);
    if (i >= len || p[i] != '{')
        return false;
    i = skip_ws(p, i + 1, len);
    if (i < len && p[i] == '}')
        return false; /* empty: the general path says what is missing */
    for (;;) {
        const char *k;
        size_t kn;
        if (i >= len || p[i] != '"' || (i = fast_string(p, i, len, &k, &kn)) == 0)
            return false;
        int ki = key_index(k, kn);
        if (ki < 0 || mem[ki].type != FV_ABSENT)
            return false;
        i = skip_ws(p, i, len);
        if (i >= len || p[i] != ':')
            return false;
        i = skip_ws(p, i + 1, len);
        if (i >= len)
            return false;
        fmember *m = &mem[ki];
        if (p[i] == '"') {
            m->type = FV_STRING;
            if ((i = fast_string(p, i, len, &m->at, &m->len)) == 0)
                return false;
        } else if (p[i] >= '0' && p[i] <= '9') {
            size_t j = i;
            while (j < len && p[j] >= '0' && p[j] <= '9')
                j++;
            if ((p[i] == '0' && j - i > 1) || j - i > 9)
                return false;
            m->type = FV_NUMBER;
            m->at = p + i;
            m->len = j - i;
            i = j;
        } else if (len - i >= 4 && memcmp(p + i, "null", 4) == 0) {
            m->type = FV_NULL;
            i += 4;
        } else if (len - i >= 4 && memcmp(p + i, "true", 4) == 0) {
            m->type = FV_TRUE;
            i += 4;
        } else if (len - i >= 5 && memcmp(p + i, "false", 5) == 0) {
            m->type = FV_FALSE;
            i += 5;
        } else {
            return false;
        }
        i = skip_ws(p, i, len);
        if (i < len && p[i] == ',') {
            i = skip_ws(p, i + 1, len);
            continue;
        }
        if (i < len && p[i] == '}')
            return skip_ws(p, i + 1, len) == len;
        return false;
    }
}

static const fmember *fget(const fmember *mem, const char *key)
{
    int k = key_index(key, strlen(key));
    return k >= 0 && mem[k].type != FV_ABSENT ? &mem[k] : NULL;
}

/* A string member of at most max bytes into out (max + 1 bytes), as bx_json_get_string allows. */
static bool fstr(const fmember *mem, const char *key, size_t max, char *out)
{
    const fmember *m = fget(mem, key);
    if (m == NULL || m->type != FV_STRING || m->len > max)
        return false;
    memcpy(out, m->at, m->len);
    out[m->len] = '\0';
    return true;
}

static bool fid(const fmember *mem, const char *key, char out[BX_ID_MAX + 1])
{
    return fstr(mem, key, BX_ID_MAX, out) && bx_id_valid(out);
}

static bool fint(const fmember *mem, const char *key, long long min, long long max, long long *out)
{
    const fmember *m = fget(mem, key);
    if (m == NULL || m->type != FV_NUMBER)
        return false;
    long long v = 0;
    for (size_t i = 0; i < m->len; i++)
        v = v * 10 + (m->at[i] - '0');
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool fperiod(const fmember *mem, const char *key, int *out)
{
    const fmember *m = fget(mem, key);
    long long v = 0;
    if (m && m->type == FV_NULL) {
        *out = 0;
        return true;
    }
    if (!fint(mem, key, 1, SCORE_PERIOD_MAX, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool fdate(const fmember *mem, const char *key, bx_date *out)
{
    char text[11];
    return fstr(mem, key, 10, text) && bx_date_parse(text, out) == BX_OK;
}

static bool ftime(const fmember *mem, const char *key, bx_time_ms *out)
{
    char text[65];
    return fstr(mem, key, 64, text) && bx_time_parse(text, out) == BX_OK;
}

static bool fleave_kind(const fmember *mem, bool required, score_leave_kind *out)
{
    const fmember *m = fget(mem, "leave_kind");
    *out = SCORE_LEAVE_NONE;
    if (m == NULL)
        return false;
    if (!required)
        return m->type == FV_NULL;
    if (m->type == FV_STRING && m->len == 4 && memcmp(m->at, "sick", 4) == 0)
        *out = SCORE_LEAVE_SICK;
    else if (m->type == FV_STRING && m->len == 8 && memcmp(m->at, "personal", 8) == 0)
        *out = SCORE_LEAVE_PERSONAL;
    else
        return false;
    return true;
}

static bool fast_attendance(const fmember *mem, score_message *m)
{
    score_fact f;
    memset(&f, 0, sizeof(f));
    char status[17], source[17];
    bx_error err = {0};
    if (!fstr(mem, "event_id", SCORE_EVENT_ID_MAX, f.event_id) ||
        !fid(mem, "student_id", m->student) || !fid(mem, "school_id", m->school) ||
        !fid(mem, "class_id", m->klass) || !fdate(mem, "date", &f.date) ||
        !fperiod(mem, "period", &f.period) || !fstr(mem, "status", 16, status) ||
        !fstr(mem, "source", 16, source) || !ftime(mem, "recorded_at", &f.recorded_at))
        return false;
    f.status = status_named(status);
    if (f.status == 0)
        return false;
    if (!source_known(source))
        return false;
    return fleave_kind(mem, f.status == SCORE_LEAVE, &f.leave_kind) &&
           fact_into(&f, source, m, &err) == BX_OK;
}

static bool fast_report(const fmember *mem, score_message *m)
{
    char event_id[SCORE_EVENT_ID_MAX + 1];
    bx_date date = BX_DATE_NONE;
    int period = 0;
    bx_time_ms at = 0;
    long long n[6] = {0};
    if (!fstr(mem, "event_id", SCORE_EVENT_ID_MAX, event_id) || !fid(mem, "school_id", m->school) ||
        !fid(mem, "class_id", m->klass) || !fdate(mem, "date", &date) ||
        !fperiod(mem, "period", &period) || !ftime(mem, "recorded_at", &at))
        return false;
    for (int i = 0; i < 6; i++)
        if (!fint(mem, report_counts[i], 0, 1000000, &n[i]))
            return false;
    /* a report that lists students (an array, or anything else there): the general path */
    return fget(mem, "listed") == NULL &&
           report_into(event_id, date, period, at, n, NULL, m) == BX_OK;
}

bool score_message_decode_fast(const char *payload, size_t len, score_message *m)
{
    memset(m, 0, sizeof(*m));
    fmember mem[NKEYS];
    char schema[33], type[17];
    if (payload == NULL || !fast_parse(payload, len, mem) || !fstr(mem, "schema", 32, schema) ||
        strcmp(schema, "bx.attendance.v1") != 0 || !fstr(mem, "type", 16, type))
        return false;
    bool ok = false;
    if (strcmp(type, "attendance") == 0)
        ok = fast_attendance(mem, m);
    else if (strcmp(type, "class_report") == 0)
        ok = fast_report(mem, m);
    /* leave requests are few: the general path */
    if (ok)
        m->json_ok = true;
    return ok;
}

void score_message_decode(const char *payload, size_t len, score_message *m)
{
    if (score_message_decode_fast(payload, len, m))
        return;
    score_message_decode_general(payload, len, m);
}

void score_message_decode_general(const char *payload, size_t len, score_message *m)
{
    memset(m, 0, sizeof(*m));
    bx_error err = {0};
    cJSON *root = NULL;
    const char *type = NULL, *schema = NULL;
    bx_status s = payload ? bx_json_parse(payload, len, &root, &err)
                          : BX_ERR(&err, BX_EINVAL, "empty message");
    m->json_ok = s == BX_OK;
    if (s == BX_OK && !cJSON_IsObject(root))
        s = BX_ERR(&err, BX_EINVAL, PATH ": expected an object");
    IFOK(s, bx_json_only_keys(root, PATH, message_keys, &err));
    IFOK(s, bx_json_get_string(root, PATH, "schema", true, 32, &schema, &err));
    if (s == BX_OK && strcmp(schema, "bx.attendance.v1") != 0)
        s = BX_ERR(&err, BX_EINVAL, PATH ".schema: expected bx.attendance.v1");
    IFOK(s, bx_json_get_string(root, PATH, "type", true, 16, &type, &err));
    if (s == BX_OK) {
        if (strcmp(type, "attendance") == 0)
            s = parse_attendance(root, m, &err);
        else if (strcmp(type, "leave") == 0)
            s = parse_leave(root, m, &err);
        else if (strcmp(type, "class_report") == 0)
            s = parse_report(root, m, &err);
        else
            s = BX_ERR(&err, BX_EINVAL, PATH ".type: expected attendance, leave or class_report");
    }
    cJSON_Delete(root);
    if (s != BX_OK) {
        m->kind = SCORE_MESSAGE_BAD;
        snprintf(m->error, sizeof(m->error), "%s", err.msg[0] ? err.msg : "invalid message");
    }
}
