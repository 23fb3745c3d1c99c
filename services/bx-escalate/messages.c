/* messages: the decoding of bx.risk.v1 and bx.actions.v1 into ladder inputs, and the ladder's
 * effects as JSON for bx.case.events.v1 and bx.notify.requests.v1, built in a buffer (ids, dates,
 * counts and policy names only: never names or phones). */
#include "messages.h"

#include "bx_json.h"
#include "bx_name.h"

#include <stdio.h>
#include <string.h>

/* ---- decoding ---- */

#define PATH MESSAGES_PATH

static bx_status get_id(const cJSON *o, const char *path, const char *key, bool nullable,
                        char out[BX_ID_MAX + 1], bx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = '\0';
    if (nullable && cJSON_IsNull(v))
        return BX_OK;
    const char *s = NULL;
    bx_status st = bx_json_get_string(o, path, key, true, BX_ID_MAX, &s, err);
    if (st == BX_OK && !bx_id_valid(s))
        st = BX_ERR(err, BX_EINVAL, "%s.%s: not a registry id", path, key);
    if (st == BX_OK)
        snprintf(out, BX_ID_MAX + 1, "%s", s);
    return st;
}

static bx_status get_date(const cJSON *o, const char *path, const char *key, bool nullable,
                          bx_date *out, bx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = BX_DATE_NONE;
    if (nullable && cJSON_IsNull(v))
        return BX_OK;
    const char *s = NULL;
    bx_status st = bx_json_get_string(o, path, key, true, 10, &s, err);
    if (st == BX_OK && bx_date_parse(s, out) != BX_OK)
        st = BX_ERR(err, BX_EINVAL, "%s.%s: not a date", path, key);
    return st;
}

static bx_status get_time(const cJSON *o, const char *key, bx_time_ms *out, bx_error *err)
{
    const char *s = NULL;
    bx_status st = bx_json_get_string(o, PATH, key, true, 64, &s, err);
    if (st == BX_OK && bx_time_parse(s, out) != BX_OK)
        st = BX_ERR(err, BX_EINVAL, PATH ".%s: not an RFC 3339 time", key);
    return st;
}

static bx_status get_event_id(const cJSON *o, char out[LADDER_ID_SIZE], bx_error *err)
{
    const char *s = NULL;
    bx_status st = bx_json_get_string(o, PATH, "event_id", true, LADDER_ID_SIZE - 1, &s, err);
    if (st == BX_OK && (s[0] == '\0' || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
                                                  "vwxyz0123456789._:-") != strlen(s)))
        st = BX_ERR(err, BX_EINVAL, PATH ".event_id: expected 1..128 of [A-Za-z0-9._:-]");
    if (st == BX_OK)
        snprintf(out, LADDER_ID_SIZE, "%s", s);
    return st;
}

static const char *const risk_keys[] = {"schema",
                                        "event_id",
                                        "student_id",
                                        "school_id",
                                        "class_id",
                                        "date",
                                        "streak_days",
                                        "streak_start",
                                        "unexcused_periods_today",
                                        "attendance_rate_20d",
                                        "attendance_rate_term",
                                        "chronic_absence",
                                        "score",
                                        "tier",
                                        "previous_tier",
                                        "trigger",
                                        "factors",
                                        "assessed_at",
                                        NULL};

static bx_status parse_risk(const cJSON *o, messages_input *p, bx_error *err)
{
    ladder_input *in = &p->in;
    int64_t streak = 0, periods = 0;
    in->kind = LADDER_IN_ASSESSMENT;
    bx_status s = bx_json_only_keys(o, PATH, risk_keys, err);
    IFOK(s, get_event_id(o, in->event_id, err));
    IFOK(s, get_id(o, PATH, "student_id", false, p->student, err));
    IFOK(s, get_id(o, PATH, "school_id", false, p->school, err));
    IFOK(s, get_date(o, PATH, "date", false, &in->date, err));
    IFOK(s, bx_json_get_int(o, PATH, "streak_days", true, 0, 10000, &streak, err));
    IFOK(s, get_date(o, PATH, "streak_start", true, &in->streak_start, err));
    IFOK(s, bx_json_get_int(o, PATH, "unexcused_periods_today", true, 0, 12, &periods, err));
    IFOK(s, get_time(o, "assessed_at", &in->at, err));
    in->streak_days = (int)streak;
    in->unexcused_periods = (int)periods;
    if (s == BX_OK && streak > 0 && in->streak_start == BX_DATE_NONE)
        s = BX_ERR(err, BX_EINVAL, PATH ".streak_start: required when streak_days > 0");
    return s;
}

static bool letter_ok(const char *v)
{
    return strcmp(v, "persuasion_letter") == 0 || strcmp(v, "return_notice") == 0 ||
           strcmp(v, "deadline_notice") == 0;
}

static bool task_kind_ok(const char *v)
{
    return v[0] >= 'a' && v[0] <= 'z' &&
           strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(v);
}

/* The required string member key of d, a policy name that ok accepts (else "expected <what>"),
 * copied to out. */
static bx_status get_name(const cJSON *d, const char *path, const char *key,
                          bool (*ok)(const char *), const char *what, char out[LADDER_NAME_SIZE],
                          bx_error *err)
{
    const char *v = NULL;
    bx_status s = bx_json_get_string(d, path, key, true, LADDER_NAME_SIZE - 1, &v, err);
    if (s == BX_OK && !ok(v))
        s = BX_ERR(err, BX_EINVAL, "%s.%s: expected %s", path, key, what);
    if (s == BX_OK)
        snprintf(out, LADDER_NAME_SIZE, "%s", v);
    return s;
}

static const char *const action_keys[] = {"schema",      "event_id", "student_id", "school_id",
                                          "action",      "date",     "staff_id",   "recorded_at",
                                          "recorded_by", "details",  NULL};

/* details of a home visit: the outcome and the reason, codes only, for the analysts' case stream
 * (anything else is left out) */
static bx_status home_visit_details(const cJSON *d, const char *path, ladder_input *in,
                                    bx_error *err)
{
    static const char *const keys[] = {"outcome", "reason", NULL};
    static const char *const outcomes[] = {"will_return", "refused", "not_home", "other", NULL};
    static const char *const reasons[] = {
        "poverty",      "illness", "disability", "dislikes_school",
        "left_to_work", "family",  "other",      NULL};
    const char *v = NULL;
    bx_status s = bx_json_only_keys(d, path, keys, err);
    IFOK(s, bx_json_get_string(d, path, "outcome", true, 32, &v, err));
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(d, "reason");
    for (int i = 0; s == BX_OK && outcomes[i]; i++)
        if (strcmp(v, outcomes[i]) == 0)
            snprintf(in->visit_outcome, sizeof(in->visit_outcome), "%s", v);
    for (int i = 0; s == BX_OK && cJSON_IsString(reason) && reasons[i]; i++)
        if (strcmp(reason->valuestring, reasons[i]) == 0)
            snprintf(in->visit_reason, sizeof(in->visit_reason), "%s", reasons[i]);
    return s;
}

/* details of a confirmed transfer: the confirmation number, and the receiving school's name for
 * the case's history, cut at a whole UTF-8 character */
static bx_status transfer_confirmed_details(const cJSON *d, const char *path, ladder_input *in,
                                            bx_error *err)
{
    static const char *const keys[] = {"receiving_school", "confirmation_no", NULL};
    const char *v = NULL;
    bx_status s = bx_json_only_keys(d, path, keys, err);
    IFOK(s, bx_json_get_string(d, path, "confirmation_no", true, 64, &v, err));
    const cJSON *school = cJSON_GetObjectItemCaseSensitive(d, "receiving_school");
    if (s == BX_OK && cJSON_IsString(school)) {
        size_t n = strlen(school->valuestring);
        if (n >= sizeof(in->receiving_school)) {
            n = sizeof(in->receiving_school) - 1;
            while (n > 0 && ((unsigned char)school->valuestring[n] & 0xC0) == 0x80)
                n--;
        }
        snprintf(in->receiving_school, sizeof(in->receiving_school), "%.*s", (int)n,
                 school->valuestring);
    }
    return s;
}

/* details of a task given to another staff member: the task's key and the staff member */
static bx_status task_reassigned_details(const cJSON *d, const char *path, ladder_input *in,
                                         bx_error *err)
{
    static const char *const keys[] = {"task_id", "to_staff_id", NULL};
    char to[BX_ID_MAX + 1];
    const char *v = NULL;
    bx_status s = bx_json_only_keys(d, path, keys, err);
    IFOK(s, bx_json_get_string(d, path, "task_id", true, 128, &v, err));
    if (s == BX_OK && (v[0] == '\0' || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
                                                 "rstuvwxyz0123456789._:-") != strlen(v)))
        s = BX_ERR(err, BX_EINVAL, "%s.task_id: expected 1..128 of [A-Za-z0-9._:-]", path);
    IFOK(s, get_id(d, path, "to_staff_id", false, to, err));
    if (s == BX_OK) {
        snprintf(in->task_key, sizeof(in->task_key), "%s", v);
        snprintf(in->to_staff_id, sizeof(in->to_staff_id), "%s", to);
    }
    return s;
}

static bx_status parse_details(const cJSON *d, messages_input *p, bx_error *err)
{
    ladder_input *in = &p->in;
    const char *path = PATH ".details";
    const char *v = NULL;
    bx_status s = BX_OK;
    switch (in->action) {
    case LADDER_ACT_CONTACT_MADE: {
        static const char *const keys[] = {"channel", "reached", NULL};
        bool reached = false;
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, bx_json_get_string(d, path, "channel", true, 16, &v, err));
        IFOK(s, bx_json_get_bool(d, path, "reached", true, &reached, err));
        break;
    }
    case LADDER_ACT_HOME_VISIT:
        s = home_visit_details(d, path, in, err);
        break;
    case LADDER_ACT_LETTER_DELIVERED: {
        static const char *const keys[] = {"letter", NULL};
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, get_name(d, path, "letter", letter_ok,
                         "persuasion_letter, return_notice or deadline_notice", in->letter, err));
        break;
    }
    case LADDER_ACT_RETURNED: {
        static const char *const keys[] = {"return_date", "township_signoff_staff_id", NULL};
        char signoff[BX_ID_MAX + 1];
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, get_date(d, path, "return_date", false, &in->return_date, err));
        IFOK(s, get_id(d, path, "township_signoff_staff_id", true, signoff, err));
        if (s == BX_OK)
            snprintf(in->signoff_staff_id, sizeof(in->signoff_staff_id), "%s", signoff);
        break;
    }
    case LADDER_ACT_TRANSFER_OUT: {
        static const char *const keys[] = {"destination", "receiving_school", "paperwork", NULL};
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, bx_json_get_bool(d, path, "paperwork", true, &in->paperwork, err));
        break;
    }
    case LADDER_ACT_TRANSFER_CONFIRMED:
        s = transfer_confirmed_details(d, path, in, err);
        break;
    case LADDER_ACT_SUSPENSION: {
        static const char *const keys[] = {"first_date", "last_date", "reason", "approved", NULL};
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, get_date(d, path, "first_date", false, &in->first_date, err));
        IFOK(s, get_date(d, path, "last_date", false, &in->last_date, err));
        IFOK(s, bx_json_get_bool(d, path, "approved", true, &in->approved, err));
        break;
    }
    case LADDER_ACT_TASK_DONE: { /* report_filed: the staff member's report does the task */
        static const char *const keys[] = {"task", "filed_with", NULL};
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, get_name(d, path, "task", task_kind_ok, "a task kind (a-z, 0-9, _)", in->task_kind,
                         err));
        break;
    }
    case LADDER_ACT_TASK_REASSIGNED: /* the principal gives the task to another staff member */
        s = task_reassigned_details(d, path, in, err);
        break;
    }
    return s;
}

/* bx.actions.v1's action names; a report filed is a task confirmed done. */
static const char *const action_names[] = {
    [LADDER_ACT_CONTACT_MADE] = "contact_made",
    [LADDER_ACT_HOME_VISIT] = "home_visit",
    [LADDER_ACT_LETTER_DELIVERED] = "letter_delivered",
    [LADDER_ACT_TASK_DONE] = "report_filed",
    [LADDER_ACT_RETURNED] = "returned",
    [LADDER_ACT_TRANSFER_OUT] = "transfer_out",
    [LADDER_ACT_TRANSFER_CONFIRMED] = "transfer_confirmed",
    [LADDER_ACT_SUSPENSION] = "suspension",
    [LADDER_ACT_TASK_REASSIGNED] = "task_reassigned",
};

static bx_status parse_action(const cJSON *o, messages_input *p, bx_error *err)
{
    ladder_input *in = &p->in;
    const char *action = NULL, *recorded_by = NULL;
    char staff[BX_ID_MAX + 1];
    in->kind = LADDER_IN_ACTION;
    in->return_date = in->first_date = in->last_date = BX_DATE_NONE;
    bx_status s = bx_json_only_keys(o, PATH, action_keys, err);
    IFOK(s, get_event_id(o, in->event_id, err));
    IFOK(s, get_id(o, PATH, "student_id", false, p->student, err));
    IFOK(s, get_id(o, PATH, "school_id", false, p->school, err));
    IFOK(s, bx_json_get_string(o, PATH, "action", true, 32, &action, err));
    IFOK(s, get_date(o, PATH, "date", false, &in->date, err));
    IFOK(s, get_id(o, PATH, "staff_id", true, staff, err));
    IFOK(s, get_time(o, "recorded_at", &in->at, err));
    IFOK(s, bx_json_get_string(o, PATH, "recorded_by", true, 64, &recorded_by, err));
    if (s != BX_OK)
        return s;
    if (recorded_by[0] == '\0' ||
        strspn(recorded_by, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") !=
            strlen(recorded_by))
        return BX_ERR(err, BX_EINVAL, PATH ".recorded_by: expected 1..64 of [A-Za-z0-9_.:-]");
    int named = 0;
    if (bx_name_find(action_names, BX_NAMES_COUNT(action_names), action, &named) != BX_OK)
        return BX_ERR(err, BX_EINVAL, PATH ".action: unknown action");
    in->action = (ladder_action)named;
    if (in->action == LADDER_ACT_TASK_DONE && staff[0] == '\0')
        return BX_ERR(err, BX_EINVAL, PATH ".staff_id: report_filed needs who filed it");
    if (in->action == LADDER_ACT_TASK_REASSIGNED && staff[0] == '\0')
        return BX_ERR(err, BX_EINVAL, PATH ".staff_id: task_reassigned needs who reassigned it");
    snprintf(in->actor, sizeof(in->actor), "%s", staff[0] ? staff : recorded_by);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "details");
    if (!cJSON_IsObject(d))
        return BX_ERR(err, BX_EINVAL, PATH ".details: expected an object");
    return parse_details(d, p, err);
}

void messages_decode(const void *payload, size_t len, messages_input *p)
{
    memset(p, 0, sizeof(*p));
    bx_error err = {0};
    cJSON *root = NULL;
    const char *schema = NULL;
    bx_status s = payload ? bx_json_parse(payload, len, &root, &err)
                          : BX_ERR(&err, BX_EINVAL, "empty message");
    bool json_ok = s == BX_OK;
    if (s == BX_OK && !cJSON_IsObject(root))
        s = BX_ERR(&err, BX_EINVAL, PATH ": expected an object");
    IFOK(s, bx_json_get_string(root, PATH, "schema", true, 32, &schema, &err));
    if (s == BX_OK) {
        if (strcmp(schema, "bx.risk.v1") == 0)
            s = parse_risk(root, p, &err);
        else if (strcmp(schema, "bx.actions.v1") == 0)
            s = parse_action(root, p, &err);
        else
            s = BX_ERR(&err, BX_EINVAL, PATH ".schema: expected bx.risk.v1 or bx.actions.v1");
    }
    cJSON_Delete(root);
    if (s != BX_OK) {
        p->bad = json_ok ? MESSAGES_INVALID : MESSAGES_MALFORMED;
        snprintf(p->error, sizeof(p->error), "%s", err.msg[0] ? err.msg : "invalid message");
    }
}

const char *messages_bad_reason(messages_bad bad)
{
    static const char *const reasons[] = {[MESSAGES_MALFORMED] = "malformed",
                                          [MESSAGES_INVALID] = "invalid_value",
                                          [MESSAGES_UNKNOWN_STUDENT] = "unknown_student"};
    if ((int)bad > 0 && (size_t)bad < sizeof(reasons) / sizeof(reasons[0]) && reasons[bad])
        return reasons[bad];
    return "other";
}

/* ---- encoding ---- */

#define ACTOR_SELF "bx-escalate"

const char *messages_staff_of(const messages_context *ctx, const char *role)
{
    if (role && strcmp(role, "homeroom_teacher") == 0 && ctx->homeroom_staff_id &&
        ctx->homeroom_staff_id[0])
        return ctx->homeroom_staff_id;
    return NULL;
}

/* ,"key":"value" with value as a JSON string, or ,"key":null when value is NULL */
static bx_status member(bx_buf *b, const char *key, const char *value)
{
    bx_status st = bx_buf_printf(b, ",\"%s\":", key);
    IFOK(st, value ? bx_buf_json_string(b, value) : bx_buf_puts(b, "null"));
    return st;
}

static bx_status member_time(bx_buf *b, const char *key, bx_time_ms t)
{
    char at[40];
    bx_time_format(t, at, sizeof(at));
    return member(b, key, at);
}

/* {"schema":"<schema>","<id_key>":"<id>","case_id":..,"student_id":.. */
static bx_status head(bx_buf *b, const char *schema, const char *id_key, const char *id,
                      const case_state *s)
{
    bx_status st = bx_buf_printf(b, "{\"schema\":\"%s\"", schema);
    IFOK(st, member(b, id_key, id));
    IFOK(st, member(b, "case_id", s->case_id));
    IFOK(st, member(b, "student_id", s->student_id));
    return st;
}

static bx_status task_value(bx_buf *b, const messages_context *ctx, const ladder_event *e)
{
    if (!(e->task_kind && e->owner_role && e->task_key[0]))
        return bx_buf_puts(b, "null");
    bx_status st = bx_buf_puts(b, "{\"task_id\":");
    IFOK(st, bx_buf_json_string(b, e->task_key));
    IFOK(st, member(b, "kind", e->task_kind));
    IFOK(st, member(b, "owner_role", e->owner_role));
    IFOK(st,
         member(b, "owner_staff_id",
                e->owner_staff_id[0] ? e->owner_staff_id : messages_staff_of(ctx, e->owner_role)));
    IFOK(st, member_time(b, "due_at", e->due_at));
    IFOK(st, bx_buf_puts(b, "}"));
    return st;
}

bx_status messages_case_event(const case_state *s, const messages_context *ctx,
                              const ladder_event *e, bx_buf *out)
{
    bx_status st = head(out, "bx.case.events.v1", "event_id", e->event_id, s);
    IFOK(st, member(out, "school_id", ctx->school_id));
    IFOK(st, member(out, "event", ladder_event_name(e->kind)));
    IFOK(st, member(out, "stage", e->stage));
    IFOK(st, bx_buf_puts(out, ",\"task\":"));
    IFOK(st, task_value(out, ctx, e));
    IFOK(st,
         member(out, "ending", e->kind == LADDER_EV_CLOSED ? ladder_ending_name(e->ending) : NULL));
    IFOK(st, member(out, "actor", e->actor[0] ? e->actor : ACTOR_SELF));
    IFOK(st, member(out, "reason", e->reason));
    IFOK(st, bx_buf_printf(out, ",\"late\":%s", e->late ? "true" : "false"));
    IFOK(st, member_time(out, "occurred_at", e->at));
    IFOK(st, bx_buf_puts(out, "}"));
    return st;
}

bool messages_household_subject(const char *student_id)
{
    return strncmp(student_id, MESSAGES_HOUSEHOLD_PREFIX, strlen(MESSAGES_HOUSEHOLD_PREFIX)) == 0;
}

bx_status messages_notify_request(const case_state *s, const messages_context *ctx,
                                  const ladder_notification *n, bx_buf *out)
{
    bool guardian = strcmp(n->recipient_role, "guardian") == 0;
    /* a child of the household register is no registry student: bx-notify finds the staff by the
     * case's school instead */
    bool household = !guardian && messages_household_subject(s->student_id);
    bx_status st = bx_buf_puts(out, "{\"schema\":\"bx.notify.requests.v1\"");
    IFOK(st, member(out, "request_id", n->request_id));
    IFOK(st, member(out, "case_id", s->case_id));
    IFOK(st, member(out, "student_id", household ? NULL : s->student_id));
    IFOK(st, member(out, "template", n->template_name));
    IFOK(st, member(out, "recipient_role", n->recipient_role));
    IFOK(st, member(out, "recipient_staff_id",
                    guardian                   ? NULL
                    : n->recipient_staff_id[0] ? n->recipient_staff_id
                                               : messages_staff_of(ctx, n->recipient_role)));
    IFOK(st, member(out, "channel", guardian ? "sms" : n->channel));
    IFOK(st, bx_buf_puts(out, ",\"params\":{"));
    for (int i = 0; i < n->nparams; i++) {
        IFOK(st, bx_buf_puts(out, i ? "," : ""));
        IFOK(st, bx_buf_json_string(out, n->params[i].name));
        IFOK(st, bx_buf_puts(out, ":"));
        IFOK(st, bx_buf_json_string(out, n->params[i].value));
    }
    if (household && ctx->school_id && ctx->school_id[0]) {
        IFOK(st, bx_buf_puts(out, n->nparams ? ",\"school_id\":" : "\"school_id\":"));
        IFOK(st, bx_buf_json_string(out, ctx->school_id));
    }
    IFOK(st, bx_buf_puts(out, "}"));
    IFOK(st, member(out, "not_before", NULL));
    IFOK(st, member_time(out, "requested_at", n->at));
    IFOK(st, bx_buf_puts(out, "}"));
    return st;
}
