/* bxvalidate roll calls: a class's exceptions (absent, leave, late, early leave) on a day, and a
 * fact for every enrolled student (everyone not listed is present) plus the class report. */
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The lists a roll call may carry, in the order they are read; totals[4] counts "present". */
static const char *const lists[] = {"absent", "leave", "late", "early_leave"};
#define NLISTS 4

/* The roll call as a whole. */
struct rollcall {
    const bx_reg_class *klass;
    bx_date day;
    long long period;
    bool has_period;
    const char *rollcall_id; /* "" when the client named none */
    /* Per enrolled student (index into the class's sorted list): */
    const char **status;    /* from the lists; NULL: not listed (present) */
    const char **kind;      /* leave kind */
    ingest_record **listed; /* the entry that listed them */
    bool *withheld;         /* an invalid entry names them: no fact at all, never a guessed one */
    int index;              /* next record index */
    int totals[NLISTS + 1];
};

static void rollcall_free(struct rollcall *rc)
{
    free(rc->status);
    free(rc->kind);
    free(rc->listed);
    free(rc->withheld);
}

static bx_status rollcall_alloc(struct rollcall *rc, bx_error *err)
{
    size_t n = (size_t)rc->klass->student_count + 1;
    rc->status = calloc(n, sizeof(*rc->status));
    rc->kind = calloc(n, sizeof(*rc->kind));
    rc->listed = calloc(n, sizeof(*rc->listed));
    rc->withheld = calloc(n, sizeof(*rc->withheld));
    if (!rc->status || !rc->kind || !rc->listed || !rc->withheld)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    return BX_OK;
}

/* class_id, date, period and rollcall_id of the body; *reason says why when refused. */
static bx_status read_header(const cJSON *root, const char **class_id, const char **date,
                             struct rollcall *rc, const char **reason, bx_error *err)
{
    static const char *const keys[] = {"class_id", "date", "period",      "rollcall_id", "absent",
                                       "leave",    "late", "early_leave", NULL};
    if (!cJSON_IsObject(root))
        return BX_ERR(err, BX_EINVAL, "body: expected a JSON object");
    bx_status s = bx_json_only_keys(root, "body", keys, err);
    if (s != BX_OK) {
        *reason = "unknown_field";
        return s;
    }
    *reason = "missing_field";
    IFOK(s, bx_json_get_string(root, "body", "class_id", true, 64, class_id, err));
    IFOK(s, bx_json_get_string(root, "body", "date", true, 32, date, err));
    if (s != BX_OK)
        return s;
    *reason = "invalid_value";
    int64_t period = 0;
    s = bx_json_get_int(root, "body", "period", false, 1, 12, &period, err);
    rc->has_period = s == BX_OK;
    rc->period = period;
    if (s != BX_OK && s != BX_ENOTFOUND)
        return s;
    s = bx_json_get_string(root, "body", "rollcall_id", false, 128, &rc->rollcall_id, err);
    if (s != BX_OK && s != BX_ENOTFOUND)
        return s;
    if (*rc->rollcall_id && !records_event_id_valid(rc->rollcall_id))
        return BX_ERR(err, BX_EINVAL, "body.rollcall_id: expected 1 to %d of A-Z a-z 0-9 . _ : -",
                      MAX_EVENT_ID);
    return BX_OK;
}

/* The class, in the writer's scope, and a school day of it. */
static bx_status check_class(const ingest_ctx *ctx, const char *class_id, const char *date,
                             struct rollcall *rc, const char **reason, bx_error *err)
{
    const bx_reg_class *klass =
        bx_id_valid(class_id) ? bx_registry_class(ctx->registry, class_id) : NULL;
    if (klass == NULL || klass->school == NULL) {
        *reason = "unknown_class";
        return BX_ERR(err, BX_EINVAL, "body.class_id: no class \"%.40s\" in the registry",
                      class_id);
    }
    if (!records_writer_reaches(ctx, klass->school)) {
        char scope[96];
        records_writer_scope(ctx, scope, sizeof(scope));
        *reason = "wrong_school";
        return BX_ERR(err, BX_EINVAL, "body.class_id: class \"%s\" is not at %s", class_id, scope);
    }
    ingest_record probe = {0};
    if (!records_check_date(ctx, &probe, "body.date", date, klass->school, 0, true, &rc->day)) {
        *reason = probe.reason;
        return BX_ERR(err, BX_EINVAL, "%s", probe.error);
    }
    rc->klass = klass;
    return BX_OK;
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

/* A leave entry {"student_id": ..., "leave_kind": ...}. The class member it names, if any, is
 * withheld while the entry is invalid (unless an earlier entry gave them a status). */
static bool read_leave_entry(struct rollcall *rc, ingest_record *r, const cJSON *item,
                             const char *path, const char **sid, const char **leave_kind)
{
    static const char *const lkeys[] = {"student_id", "leave_kind", NULL};
    const cJSON *named =
        cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "student_id") : item;
    int member = cJSON_IsString(named) && named->valuestring
                     ? class_position(rc->klass, named->valuestring)
                     : -1;
    bool withheld_before = member >= 0 && rc->withheld[member];
    if (member >= 0 && !rc->status[member])
        rc->withheld[member] = true;
    if (!cJSON_IsObject(item)) {
        records_reject(r, path, "invalid_value",
                       "expected {\"student_id\": ..., \"leave_kind\": \"sick\"|\"personal\"}");
        return false;
    }
    if (!records_only_keys(r, item, path, lkeys) ||
        !records_get_string(r, item, path, "student_id", true, 64, sid) ||
        !records_get_string(r, item, path, "leave_kind", true, 32, leave_kind))
        return false;
    if (!records_in_list(*leave_kind, records_leave_kinds)) {
        char field[96];
        snprintf(field, sizeof(field), "%s.leave_kind", path);
        records_reject(r, field, "invalid_value", "expected sick or personal, got \"%.20s\"",
                       *leave_kind);
        return false;
    }
    /* Valid: the entry decides, unless this student was listed before. */
    if (member >= 0 && !withheld_before)
        rc->withheld[member] = false;
    return true;
}

/* One entry of list l (a student id, or a leave object) into r. */
static bx_status read_entry(const ingest_ctx *ctx, struct rollcall *rc, int l, ingest_record *r,
                            const cJSON *item, const char *path)
{
    const char *sid = NULL, *leave_kind = NULL;
    if (l == 1) {
        if (!read_leave_entry(rc, r, item, path, &sid, &leave_kind))
            return BX_EINVAL;
    } else if (!cJSON_IsString(item)) {
        records_reject(r, path, "invalid_value", "expected a student id string");
        return BX_EINVAL;
    } else {
        sid = item->valuestring;
    }
    const bx_reg_student *st = records_check_student(ctx, r, path, sid);
    if (st == NULL)
        return BX_EINVAL;
    int at = class_position(rc->klass, st->id);
    if (at < 0) {
        records_reject(r, path, "wrong_class", "student \"%s\" is not enrolled in class %s", sid,
                       rc->klass->id);
        return BX_EINVAL;
    }
    /* The first entry naming a student decides, even a rejected one: no fact is guessed from a
     * roll call that says two things about one student. */
    if (rc->status[at] || rc->withheld[at]) {
        records_reject(r, path, "duplicate_in_request",
                       "student \"%s\" is listed twice in this roll call", sid);
        return BX_EINVAL;
    }
    rc->status[at] = lists[l];
    rc->kind[at] = leave_kind;
    rc->listed[at] = r;
    return BX_OK;
}

/* Every entry of every list, each a record of its own. */
static bx_status read_lists(const ingest_ctx *ctx, const cJSON *root, struct rollcall *rc,
                            ingest_batch *out, const char **reason, bx_error *err)
{
    for (int l = 0; l < NLISTS; l++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, lists[l]);
        if (arr == NULL)
            continue;
        if (!cJSON_IsArray(arr)) {
            *reason = "invalid_value";
            return BX_ERR(err, BX_EINVAL, "body.%s: expected an array", lists[l]);
        }
        int pos = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, arr)
        {
            char path[64];
            snprintf(path, sizeof(path), "%s[%d]", lists[l], pos++);
            ingest_record *r = records_add(out, rc->index++, 0);
            if (r == NULL)
                return BX_ERR(err, BX_ENOMEM, "out of memory");
            r->raw = records_print(item);
            (void)read_entry(ctx, rc, l, r, item, path); /* outcome in r */
        }
    }
    return BX_OK;
}

/* A fact for every enrolled student not withheld: listed ones by their entry, the others
 * present (not reported one by one). */
static bx_status write_facts(const ingest_ctx *ctx, struct rollcall *rc, ingest_batch *out,
                             bx_error *err)
{
    const bx_reg_class *klass = rc->klass;
    for (int i = 0; i < klass->student_count; i++) {
        ingest_record *r = rc->listed[i];
        if (rc->withheld[i])
            continue;
        if (r == NULL) {
            if ((r = records_add(out, rc->index++, 0)) == NULL)
                return BX_ERR(err, BX_ENOMEM, "out of memory");
            r->reported = false;
            rc->status[i] = "present";
            snprintf(r->student_id, sizeof(r->student_id), "%s", klass->students[i]->id);
        }
        if (*rc->rollcall_id) {
            /* The roll call's id names each of its facts, so a resend produces the same ids. */
            records_join(r->event_id, sizeof(r->event_id), rc->rollcall_id, ":",
                         klass->students[i]->id);
            records_join(r->dedup_key, sizeof(r->dedup_key), "rc:", rc->rollcall_id, "");
        } else {
            ingest_new_event_id(r->event_id);
        }
        for (int t = 0; t <= NLISTS; t++)
            if (strcmp(rc->status[i], t < NLISTS ? lists[t] : "present") == 0)
                rc->totals[t]++;
        records_fact f = {.date = rc->day,
                          .period = rc->period,
                          .has_period = rc->has_period,
                          .status = rc->status[i],
                          .leave_kind = rc->kind[i],
                          .source = "rollcall",
                          .rollcall_id = rc->rollcall_id};
        if (records_attendance_message(ctx, r, klass->students[i], &f) != BX_OK)
            return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    return BX_OK;
}

/* The report's "listed": the students whose presence it does not vouch for, each with a fact of
 * their own (absent, leave, late, early_leave) or none (an entry refused). bx-score reads the
 * report and those facts in any order; a child listed here is never present by the report. */
static bx_status put_listed(bx_buf *b, const struct rollcall *rc)
{
    const bx_reg_class *klass = rc->klass;
    bx_status s = bx_buf_puts(b, ",\"listed\":[");
    bool first = true;
    for (int i = 0; i < klass->student_count && s == BX_OK; i++) {
        if (!rc->withheld[i] && rc->status[i] && strcmp(rc->status[i], "present") == 0)
            continue;
        if (!first)
            s = bx_buf_puts(b, ",");
        IFOK(s, bx_buf_json_string(b, klass->students[i]->id));
        first = false;
    }
    IFOK(s, bx_buf_puts(b, "]"));
    return s;
}

/* The class report: the class did its roll call that day (not the same as present). */
static bx_status class_report(const ingest_ctx *ctx, const struct rollcall *rc, ingest_record *r,
                              const char *day)
{
    const bx_reg_class *klass = rc->klass;
    const int *t = rc->totals;
    bx_buf b;
    bx_buf_init(&b, 4096);
    bx_status s = bx_buf_puts(&b, "{\"schema\":\"bx.attendance.v1\",\"type\":\"class_report\"");
    IFOK(s, records_put_str(&b, "event_id", r->event_id));
    IFOK(s, records_put_str(&b, "school_id", klass->school->id));
    IFOK(s, records_put_str(&b, "class_id", klass->id));
    IFOK(s, records_put_str(&b, "date", day));
    IFOK(s, records_put_int(&b, "period", rc->period, rc->has_period));
    IFOK(s, records_put_str(&b, "rollcall_id", rc->rollcall_id));
    IFOK(s, bx_buf_printf(&b,
                          ",\"enrolled\":%d,\"absent\":%d,\"leave\":%d,\"late\":%d,"
                          "\"early_leave\":%d,\"present\":%d",
                          klass->student_count, t[0], t[1], t[2], t[3], t[4]));
    IFOK(s, put_listed(&b, rc));
    return records_close_message(ctx, r, s, &b, BX_TOPIC_ATTENDANCE, klass->id);
}

/* The class report's record and the reply's totals. */
static bx_status write_report(const ingest_ctx *ctx, const struct rollcall *rc, ingest_batch *out,
                              bx_error *err)
{
    ingest_record *r = records_add(out, -1, 0);
    if (r == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    r->reported = false;
    if (*rc->rollcall_id) {
        snprintf(r->event_id, sizeof(r->event_id), "%s:class", rc->rollcall_id);
        snprintf(r->dedup_key, sizeof(r->dedup_key), "rc:%s", rc->rollcall_id);
    } else {
        ingest_new_event_id(r->event_id);
    }
    char day[11];
    bx_date_format(rc->day, day);
    bx_status s = class_report(ctx, rc, r, day);
    const int *t = rc->totals;
    bx_buf sum;
    bx_buf_init(&sum, 4096);
    IFOK(s,
         bx_buf_printf(&sum,
                       "\"rollcall\":{\"class_id\":\"%s\",\"date\":\"%s\","
                       "\"enrolled\":%d,\"present\":%d,\"absent\":%d,\"leave\":%d,"
                       "\"late\":%d,\"early_leave\":%d}",
                       rc->klass->id, day, rc->klass->student_count, t[4], t[0], t[1], t[2], t[3]));
    out->summary = s == BX_OK ? bx_buf_steal(&sum) : NULL;
    bx_buf_free(&sum);
    return s == BX_OK ? BX_OK : BX_ERR(err, BX_ENOMEM, "out of memory");
}

/* A roll call lists the exceptions; everyone else enrolled in the class is present. */
bx_status ingest_parse_rollcall(const ingest_ctx *ctx, const char *body, size_t len,
                                ingest_batch *out, const char **reason, bx_error *err)
{
    cJSON *root = NULL;
    *reason = "malformed";
    records_skip_bom(&body, &len);
    bx_status s = bx_json_parse(body, len, &root, err);
    if (s != BX_OK)
        return s;
    struct rollcall rc = {.rollcall_id = ""};
    const char *class_id = NULL, *date = NULL;
    s = read_header(root, &class_id, &date, &rc, reason, err);
    IFOK(s, check_class(ctx, class_id, date, &rc, reason, err));
    IFOK(s, rollcall_alloc(&rc, err));
    IFOK(s, read_lists(ctx, root, &rc, out, reason, err));
    IFOK(s, write_facts(ctx, &rc, out, err));
    IFOK(s, write_report(ctx, &rc, out, err));
    rollcall_free(&rc);
    cJSON_Delete(root);
    return s;
}
