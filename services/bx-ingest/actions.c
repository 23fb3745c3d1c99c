/* bxvalidate actions: what staff did about a student (contacts, home visits, letters, reports
 * filed, return, transfer, suspension, a task reassigned), with whoever it names held to account:
 * a staff member must exist and work at the student's school, a township sign-off comes only from
 * the township officer in person, and only the school's principal or academic office gives a task
 * to another staff member of the school. */
#include "records.h"
#include "bx_json.h"

#include <stdio.h>
#include <string.h>

/* What each action's details must hold. */
enum detail_type { D_STRING, D_BOOL, D_DATE, D_SIGNOFF, D_TASK, D_TASK_ID, D_SCHOOL_STAFF };
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
/* task_reassigned: the task's id (bx.case.events.v1's task.task_id) and its new owner, who works
 * at the student's school. */
static const struct detail reassign_details[] = {{"task_id", D_TASK_ID, true, NULL},
                                                 {"to_staff_id", D_SCHOOL_STAFF, true, NULL},
                                                 {NULL, 0, 0, NULL}};
static const struct detail returned_details[] = {
    {"return_date", D_DATE, true, NULL},
    {"township_signoff_staff_id", D_SIGNOFF, false, NULL},
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
    {"task_reassigned", reassign_details},
};

/* The action being validated. */
struct action {
    const ingest_ctx *ctx;
    ingest_record *r;
    const char *path;
    const bx_reg_student *st;
    const struct action_spec *spec;
    const char *student_id, *name, *date, *staff_id, *event_id;
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

/* A task's id as cases.task.task_key and the case history hold it: 1 to 128 of [A-Za-z0-9._:-]. */
static bool task_id_valid(const char *v)
{
    return bx_token_valid(v, 128, ".:");
}

/* A staff reference (at field): a registry staff id of someone who works at the student's school
 * or is the township or county officer over it. */
static bool check_staff(const struct action *a, const char *field, const char *id)
{
    if (!bx_id_valid(id)) {
        records_reject(a->r, field, "invalid_value", "\"%.40s\" is not a staff id", id);
        return false;
    }
    const ingest_staff *member = ingest_staff_find(a->ctx->staff, id);
    if (member == NULL) {
        records_reject(a->r, field, "unknown_staff", "no staff \"%s\" in the registry", id);
        return false;
    }
    if (!ingest_staff_serves(member, a->st->school)) {
        records_reject(a->r, field, "wrong_school",
                       "staff \"%s\" does not work at school %s (nor is its township or county "
                       "officer)",
                       id, a->st->school->id);
        return false;
    }
    return true;
}

/* The township's sign-off of a return report: only the township officer, signed in as a person,
 * signs, and only as themselves (their township holds the student's school: checked with the
 * student). A school's key cannot sign for the township. */
static bool check_signoff(const struct action *a, const char *field, const char *id)
{
    const ingest_ctx *ctx = a->ctx;
    if (!bx_id_valid(id)) {
        records_reject(a->r, field, "invalid_value", "\"%.40s\" is not a staff id", id);
        return false;
    }
    if (ctx->writer != INGEST_WRITER_PERSON) {
        records_reject(a->r, field, "unauthorized",
                       "a school's key cannot sign off for the township: the township officer "
                       "signs the return report (复学报告书) in bx-console");
        return false;
    }
    if (ctx->role == NULL || strcmp(ctx->role, "township_officer") != 0) {
        records_reject(a->r, field, "unauthorized",
                       "only a township officer signs off a return report; staff %s is %s",
                       ctx->staff_id, ctx->role ? ctx->role : "without a role");
        return false;
    }
    if (strcmp(id, ctx->staff_id) != 0) {
        records_reject(a->r, field, "unauthorized",
                       "a township officer signs off only as themselves (%s), not as \"%.40s\"",
                       ctx->staff_id, id);
        return false;
    }
    return check_staff(a, field, id);
}

/* A school role that assigns the school's tasks: the principal or the academic office. */
static bool assigns_tasks(const char *role)
{
    return role && (strcmp(role, "principal") == 0 || strcmp(role, "academic_office") == 0);
}

/* The new owner of a reassigned task: a staff member of the student's school itself (an officer
 * over it does not take a school's task). */
static bool check_school_staff(const struct action *a, const char *field, const char *id)
{
    if (!check_staff(a, field, id))
        return false;
    const ingest_staff *member = ingest_staff_find(a->ctx->staff, id);
    if (strcmp(member->school_id, a->st->school->id) != 0) {
        records_reject(a->r, field, "wrong_school",
                       "a task of school %s goes to a staff member of the school, not to %s (%s)",
                       a->st->school->id, id, member->role);
        return false;
    }
    return true;
}

/* Who reassigns a task (staff_id, at field): the principal or academic office of the student's
 * school. A person reassigns only as themselves; a school's key must name such a staff member. */
static bool check_reassigner(const struct action *a, const char *field)
{
    const ingest_ctx *ctx = a->ctx;
    if (!*a->staff_id) {
        records_reject(a->r, field, "missing_field",
                       "task_reassigned needs the principal or academic office who reassigns it");
        return false;
    }
    if (ctx->writer == INGEST_WRITER_PERSON && strcmp(a->staff_id, ctx->staff_id) != 0) {
        records_reject(a->r, field, "unauthorized",
                       "a task is reassigned only by the signed-in person (%s), not as \"%.40s\"",
                       ctx->staff_id, a->staff_id);
        return false;
    }
    const ingest_staff *member = ingest_staff_find(ctx->staff, a->staff_id);
    if (member == NULL || strcmp(member->school_id, a->st->school->id) != 0 ||
        !assigns_tasks(member->role)) {
        records_reject(a->r, field, "unauthorized",
                       "only the principal or academic office of school %s reassigns its tasks; "
                       "staff %s is %s",
                       a->st->school->id, a->staff_id, member ? member->role : "unknown");
        return false;
    }
    return true;
}

/* "one of a, b, c" of a detail's allowed values. */
static void allowed_text(const char *const *values, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; values[k] && used < size; k++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", k ? ", " : "", values[k]);
}

/* One string detail's value, as its type and allowed values require. */
static bool check_detail_value(const struct action *a, const struct detail *d, const char *field,
                               const char *v)
{
    bx_date date;
    if (d->type == D_DATE && !records_read_date(a->r, field, v, &date))
        return false;
    if (d->type == D_SIGNOFF && !check_signoff(a, field, v))
        return false;
    if (d->type == D_SCHOOL_STAFF && !check_school_staff(a, field, v))
        return false;
    if (d->type == D_TASK_ID && !task_id_valid(v)) {
        records_reject(a->r, field, "invalid_value",
                       "expected a task id as the case history gives it (1 to 128 of "
                       "A-Z a-z 0-9 . _ : -), got \"%.40s\"",
                       v);
        return false;
    }
    if (d->type == D_TASK && !task_kind_valid(v)) {
        records_reject(a->r, field, "invalid_value",
                       "expected a task kind of the ladder such as report_to_school or "
                       "dropout_report_form (a-z, 0-9 and _, up to 39), got \"%.40s\"",
                       v);
        return false;
    }
    if (d->values && !records_in_list(v, d->values)) {
        char allowed[200];
        allowed_text(d->values, allowed, sizeof(allowed));
        records_reject(a->r, field, "invalid_value", "expected one of %s, got \"%.40s\"", allowed,
                       v);
        return false;
    }
    return true;
}

/* One detail: validated and appended to b as "key":value ("null" when absent). */
static bool put_detail(const struct action *a, const cJSON *details, const char *dpath,
                       const struct detail *d, bool first, bx_buf *b)
{
    bx_error e = {0};
    const char *sep = first ? "" : ",";
    if (d->type == D_BOOL) {
        bool v = false;
        bx_status fs = bx_json_get_bool(details, dpath, d->key, d->required, &v, &e);
        if (fs != BX_OK && fs != BX_ENOTFOUND) {
            records_reject_json(a->r, dpath, d->key, &e);
            return false;
        }
        return bx_buf_printf(b, "%s\"%s\":%s", sep, d->key,
                             fs == BX_OK ? (v ? "true" : "false") : "null") == BX_OK;
    }
    const char *v = NULL;
    /* An optional member given as null is not given (the OpenAPI says "absent or null"). */
    bx_status fs = !d->required && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(details, d->key))
                       ? BX_ENOTFOUND
                       : bx_json_get_string(details, dpath, d->key, d->required, 200, &v, &e);
    if (fs != BX_OK && fs != BX_ENOTFOUND) {
        records_reject_json(a->r, dpath, d->key, &e);
        return false;
    }
    char field[128];
    snprintf(field, sizeof(field), "%s.%s", dpath, d->key);
    if (fs == BX_OK && !check_detail_value(a, d, field, v))
        return false;
    bx_status s = bx_buf_printf(b, "%s\"%s\":", sep, d->key);
    IFOK(s, fs == BX_OK ? bx_buf_json_string(b, v) : bx_buf_puts(b, "null"));
    return s == BX_OK;
}

/* Validates details against the spec and appends the normalised object to b. */
static bool action_details(const struct action *a, const cJSON *details, bx_buf *b)
{
    char dpath[96];
    snprintf(dpath, sizeof(dpath), "%s.details", a->path);
    if (!cJSON_IsObject(details)) {
        records_reject(a->r, dpath, details ? "invalid_value" : "missing_field",
                       "is required and must be an object");
        return false;
    }
    const struct detail *spec = a->spec->details;
    const char *allowed[8];
    size_t n = 0;
    for (; spec[n].key; n++)
        allowed[n] = spec[n].key;
    allowed[n] = NULL;
    if (!records_only_keys(a->r, details, dpath, allowed))
        return false;
    bool ok = bx_buf_puts(b, ",\"details\":{") == BX_OK;
    for (size_t i = 0; spec[i].key && ok; i++)
        ok = put_detail(a, details, dpath, &spec[i], i == 0, b);
    ok = ok && bx_buf_puts(b, "}") == BX_OK;
    if (!ok)
        records_reject(a->r, a->path, "other", "out of memory"); /* unless rejected above */
    return ok;
}

/* The action's name, date and staff member. */
static bool check_action(struct action *a)
{
    char field[96];
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(actions[i].action, a->name) == 0)
            a->spec = &actions[i];
    snprintf(field, sizeof(field), "%s.action", a->path);
    if (a->spec == NULL) {
        records_reject(a->r, field, "invalid_value",
                       "expected contact_made, home_visit, letter_delivered, report_filed, "
                       "returned, transfer_out, transfer_confirmed, suspension or "
                       "task_reassigned, got \"%.30s\"",
                       a->name);
        return false;
    }
    /* Actions happen on any day (a home visit on a Saturday), but not in the future. */
    bx_date d;
    snprintf(field, sizeof(field), "%s.date", a->path);
    if (!records_read_date(a->r, field, a->date, &d))
        return false;
    if (d > bx_time_local_date(a->ctx->now)) {
        records_reject(a->r, field, "future_date", "%s is in the future", a->date);
        return false;
    }
    snprintf(field, sizeof(field), "%s.staff_id", a->path);
    if (*a->staff_id && !check_staff(a, field, a->staff_id))
        return false;
    /* A report is filed by someone: the seeds hold its author accountable. */
    if (!*a->staff_id && strcmp(a->name, "report_filed") == 0) {
        records_reject(a->r, field, "missing_field",
                       "report_filed needs the staff member who filed it");
        return false;
    }
    if (strcmp(a->name, "task_reassigned") == 0 && !check_reassigner(a, field))
        return false;
    return true;
}

static bx_status action_message(const struct action *a, const cJSON *item)
{
    char at[40];
    bx_time_format(a->ctx->now, at, sizeof(at));
    bx_buf b;
    bx_buf_init(&b, 8192);
    bx_status s = bx_buf_puts(&b, "{\"schema\":\"bx.actions.v1\"");
    IFOK(s, records_put_str(&b, "event_id", a->r->event_id));
    IFOK(s, records_put_str(&b, "student_id", a->st->id));
    IFOK(s, records_put_str(&b, "school_id", a->st->school->id));
    IFOK(s, records_put_str(&b, "action", a->name));
    IFOK(s, records_put_str(&b, "date", a->date));
    IFOK(s, records_put_str(&b, "staff_id", a->staff_id));
    IFOK(s, records_put_str(&b, "recorded_at", at));
    IFOK(s, records_put_str(&b, "recorded_by", ingest_recorded_by(a->ctx)));
    if (s != BX_OK)
        records_reject(a->r, a->path, "other", "out of memory");
    else if (!action_details(a, cJSON_GetObjectItemCaseSensitive(item, "details"), &b))
        s = BX_EINVAL;
    IFOK(s, bx_buf_puts(&b, "}"));
    IFOK(s, records_finish_message(a->r, &b));
    bx_buf_free(&b);
    if (s != BX_OK) {
        records_reject(a->r, a->path, "other", "out of memory"); /* unless rejected above */
        return s;
    }
    a->r->topic = BX_TOPIC_ACTIONS;
    snprintf(a->r->key, sizeof(a->r->key), "%s", a->st->id);
    return BX_OK;
}

static bx_status action_record(const ingest_ctx *ctx, ingest_record *r, const cJSON *item,
                               const char *path)
{
    struct action a = {.ctx = ctx, .r = r, .path = path, .staff_id = "", .event_id = ""};
    if (!records_get_string(r, item, path, "student_id", true, 64, &a.student_id) ||
        !records_get_string(r, item, path, "action", true, 32, &a.name) ||
        !records_get_string(r, item, path, "date", true, 32, &a.date) ||
        !records_get_string(r, item, path, "staff_id", false, 64, &a.staff_id) ||
        !records_get_string(r, item, path, "event_id", false, 128, &a.event_id))
        return BX_EINVAL;
    char field[96];
    snprintf(field, sizeof(field), "%s.student_id", path);
    if ((a.st = records_check_student(ctx, r, field, a.student_id)) == NULL || !check_action(&a) ||
        !records_take_event_id(r, path, a.event_id))
        return BX_EINVAL;
    return action_message(&a, item);
}

bx_status ingest_parse_actions(const ingest_ctx *ctx, const char *body, size_t len,
                               ingest_batch *out, bx_error *err)
{
    static const char *const keys[] = {"student_id", "action",   "date", "staff_id",
                                       "details",    "event_id", NULL};
    return records_parse_json(ctx, body, len, keys, action_record, out, err);
}
