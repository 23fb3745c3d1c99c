/* service: bx-escalate's loop body. Each message is applied to its student's case in one
 * PostgreSQL transaction (case state, events, tasks, timers and outbox rows together), and only
 * then is its offset stored; due timers fire in transactions of their own; the outbox is relayed.
 */
#include "service.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "duties.h"
#include "messages.h"
#include "outbox.h"
#include "state_json.h"
#include "timers.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MAX       200   /* messages handled per loop iteration */
#define TIMERS_MAX     100   /* timers claimed per loop iteration */
#define RELAY_MAX      1000  /* outbox rows relayed per loop iteration */
#define RELAY_WAIT_MS  10000 /* how long a relay waits for the broker */
#define DLQ_RECORD_MAX 65536 /* a bigger rejected message is dead-lettered without its bytes */

static bx_metric m_inputs = {"bx_escalate_inputs_total", "assessments and actions applied to cases",
                             "counter", 0, NULL};
static bx_metric m_events = {"bx_escalate_case_events_total", "new case events written", "counter",
                             0, NULL};
static bx_metric m_timers = {"bx_escalate_timers_fired_total", "timers fired", "counter", 0, NULL};
static bx_metric m_sent = {"bx_escalate_outbox_sent_total", "outbox messages acknowledged by Kafka",
                           "counter", 0, NULL};
static bx_metric m_dlq = {"bx_escalate_dlq_total", "messages sent to bx.dlq.v1", "counter", 0,
                          NULL};
static bx_metric m_failures = {"bx_escalate_failures_total",
                               "messages or timers that failed and were retried", "counter", 0,
                               NULL};

struct escalate_service {
    escalate_service_conf conf;
    bx_consumer *consumer;
    bx_producer *producer;
    PGconn *db;
    bx_registry *registry;
    char owner[TIMERS_OWNER_MAX + 1]; /* hostname:pid, the timer claimer's name */
    atomic_bool healthy;
    ladder_effects fx; /* scratch, large */
    case_state before, after;
    long long duties_revision; /* registry revision and day the duties were last scheduled for */
    bx_date duties_day;
};

/* ---- parsing ---- */

#define PATH "message"

typedef enum bad_reason {
    BAD_NONE = 0,
    BAD_MALFORMED,
    BAD_INVALID,
    BAD_UNKNOWN_STUDENT
} bad_reason;

typedef struct parsed {
    ladder_input in;
    char student[BX_ID_MAX + 1];
    char school[BX_ID_MAX + 1];
    bad_reason bad;
    char error[400];
} parsed;

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

static bx_status parse_risk(const cJSON *o, parsed *p, bx_error *err)
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

static const char *const action_keys[] = {"schema",      "event_id", "student_id", "school_id",
                                          "action",      "date",     "staff_id",   "recorded_at",
                                          "recorded_by", "details",  NULL};

static bx_status parse_details(const cJSON *d, parsed *p, bx_error *err)
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
    case LADDER_ACT_HOME_VISIT: {
        static const char *const keys[] = {"outcome", "reason", NULL};
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, bx_json_get_string(d, path, "outcome", true, 32, &v, err));
        break;
    }
    case LADDER_ACT_LETTER_DELIVERED: {
        static const char *const keys[] = {"letter", NULL};
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, bx_json_get_string(d, path, "letter", true, LADDER_NAME_SIZE - 1, &v, err));
        if (s == BX_OK && strcmp(v, "persuasion_letter") != 0 && strcmp(v, "return_notice") != 0 &&
            strcmp(v, "deadline_notice") != 0)
            s = BX_ERR(err, BX_EINVAL,
                       "%s.letter: expected persuasion_letter, return_notice or deadline_notice",
                       path);
        if (s == BX_OK)
            snprintf(in->letter, sizeof(in->letter), "%s", v);
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
    case LADDER_ACT_TRANSFER_CONFIRMED: {
        static const char *const keys[] = {"receiving_school", "confirmation_no", NULL};
        s = bx_json_only_keys(d, path, keys, err);
        IFOK(s, bx_json_get_string(d, path, "confirmation_no", true, 64, &v, err));
        break;
    }
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
        IFOK(s, bx_json_get_string(d, path, "task", true, LADDER_NAME_SIZE - 1, &v, err));
        if (s == BX_OK && (v[0] < 'a' || v[0] > 'z' ||
                           strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(v)))
            s = BX_ERR(err, BX_EINVAL, "%s.task: expected a task kind (a-z, 0-9, _)", path);
        if (s == BX_OK)
            snprintf(in->task_kind, sizeof(in->task_kind), "%s", v);
        break;
    }
    }
    return s;
}

static bx_status parse_action(const cJSON *o, parsed *p, bx_error *err)
{
    static const struct {
        const char *name;
        ladder_action action;
    } actions[] = {{"contact_made", LADDER_ACT_CONTACT_MADE},
                   {"home_visit", LADDER_ACT_HOME_VISIT},
                   {"letter_delivered", LADDER_ACT_LETTER_DELIVERED},
                   {"report_filed", LADDER_ACT_TASK_DONE},
                   {"returned", LADDER_ACT_RETURNED},
                   {"transfer_out", LADDER_ACT_TRANSFER_OUT},
                   {"transfer_confirmed", LADDER_ACT_TRANSFER_CONFIRMED},
                   {"suspension", LADDER_ACT_SUSPENSION}};
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
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(action, actions[i].name) == 0)
            in->action = actions[i].action;
    if (in->action == 0)
        return BX_ERR(err, BX_EINVAL, PATH ".action: unknown action");
    if (in->action == LADDER_ACT_TASK_DONE && staff[0] == '\0')
        return BX_ERR(err, BX_EINVAL, PATH ".staff_id: report_filed needs who filed it");
    snprintf(in->actor, sizeof(in->actor), "%s", staff[0] ? staff : recorded_by);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "details");
    if (!cJSON_IsObject(d))
        return BX_ERR(err, BX_EINVAL, PATH ".details: expected an object");
    return parse_details(d, p, err);
}

/* Parses one message; on failure p->bad is set with p->error. */
static void parse_message(const rd_kafka_message_t *msg, parsed *p)
{
    memset(p, 0, sizeof(*p));
    bx_error err = {0};
    cJSON *root = NULL;
    const char *schema = NULL;
    bx_status s = msg->payload ? bx_json_parse(msg->payload, msg->len, &root, &err)
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
        p->bad = json_ok ? BAD_INVALID : BAD_MALFORMED;
        snprintf(p->error, sizeof(p->error), "%s", err.msg[0] ? err.msg : "invalid message");
    }
}

/* ---- connections and the registry ---- */

static bx_status connect_pg(escalate_service *sv, bx_error *err)
{
    if (sv->db)
        PQfinish(sv->db);
    sv->db = NULL;
    return bx_pg_connect(sv->conf.pg_url, 10000, &sv->db, err);
}

static bx_status load_registry(escalate_service *sv, bx_error *err)
{
    bx_registry *r = NULL;
    bx_status s = bx_registry_load(sv->db, &r, err);
    if (s != BX_OK)
        return s;
    bx_registry_free(sv->registry);
    sv->registry = r;
    bx_info("registry revision %lld loaded: %zu students", bx_registry_loaded_revision(r),
            bx_registry_student_count(r));
    return BX_OK;
}

static bx_status refresh_registry(escalate_service *sv, bx_error *err)
{
    long long rev = 0;
    bx_status s = bx_registry_current_revision(sv->db, &rev, err);
    if (s == BX_OK && rev != bx_registry_loaded_revision(sv->registry))
        s = load_registry(sv, err);
    return s;
}

/* ---- writing one step ---- */

static bx_status query(PGconn *db, const char *sql, int n, const char *const *params,
                       PGresult **res, bx_error *err)
{
    return bx_pg_query(db, sql, n, params, res, err);
}

static bx_status exec_params(PGconn *db, const char *sql, int n, const char *const *params,
                             bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, sql, n, params, &res, err);
    PQclear(res);
    return s;
}

/* The case row a student's next input applies to: the open one, else the latest closed one
 * (whose state remembers the inputs it applied), locked. *row_id 0: none. */
static bx_status load_case(escalate_service *sv, const char *sql, const char *param,
                           int64_t *row_id, bool *closed, char school[BX_ID_MAX + 1],
                           case_state *state, bx_error *err)
{
    PGresult *res = NULL;
    *row_id = 0;
    bx_status s = query(sv->db, sql, 1, (const char *[]){param}, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        *row_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *closed = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        snprintf(school, BX_ID_MAX + 1, "%s", PQgetvalue(res, 0, 2));
        s = state_json_decode(sv->conf.policy, PQgetvalue(res, 0, 3),
                              (size_t)PQgetlength(res, 0, 3), state, err);
        if (s != BX_OK) {
            /* Neither reset nor skipped: the input fails, a message is retried and a timer fired
             * again after its lease, until the state or the policy is put right. */
            char why[sizeof(err->msg)];
            snprintf(why, sizeof(why), "%s", err->msg);
            s = BX_ERR(err, s, "case row %lld: %s", (long long)*row_id, why);
            bx_error("%s", err->msg);
        }
    }
    PQclear(res);
    return s;
}

#define SELECT_CASE_OF_STUDENT                                                                     \
    "SELECT id, closed_at IS NOT NULL, school_id, state::text FROM cases.case "                    \
    "WHERE student_id = $1 ORDER BY closed_at IS NULL DESC, opened_at DESC, id DESC LIMIT 1 "      \
    "FOR UPDATE"
#define SELECT_CASE_BY_ID                                                                          \
    "SELECT id, closed_at IS NOT NULL, school_id, state::text FROM cases.case WHERE id = $1 "      \
    "FOR UPDATE"

static const char *stage_name(const ladder_policy *p, int stage)
{
    return stage >= 0 && stage < p->nstages ? p->stages[stage].name : NULL;
}

/* Writes the case row of `after` (insert or update), returning its id in *row_id. */
static bx_status store_case(escalate_service *sv, bool insert, const char *school,
                            const case_state *after, int64_t *row_id, bx_error *err)
{
    bx_buf state;
    bx_buf_init(&state, 1 << 20);
    char opened[40], updated[40], closed[40], id[24];
    bx_time_format(after->opened_at, opened, sizeof(opened));
    bx_time_format(bx_clock_now(), updated, sizeof(updated));
    bx_time_format(after->closed_at, closed, sizeof(closed));
    bool is_closed = !after->open && after->ending != LADDER_END_NONE;
    const char *ending = is_closed ? ladder_ending_name(after->ending) : NULL;
    bx_status s = state_json_encode(sv->conf.policy, after, &state, err);
    if (s != BX_OK) {
        bx_buf_free(&state);
        return s; /* err names the case */
    }
    PGresult *res = NULL;
    if (insert) {
        const char *params[] = {after->student_id,
                                school,
                                opened,
                                stage_name(sv->conf.policy, after->stage),
                                state.data,
                                updated,
                                is_closed ? closed : NULL,
                                ending};
        s = query(sv->db,
                  "INSERT INTO cases.case (student_id, school_id, opened_at, stage, state, "
                  "updated_at, closed_at, ending) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) "
                  "RETURNING id",
                  8, params, &res, err);
        if (s == BX_OK)
            *row_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    } else {
        snprintf(id, sizeof(id), "%lld", (long long)*row_id);
        const char *params[] = {id,
                                stage_name(sv->conf.policy, after->stage),
                                state.data,
                                updated,
                                is_closed ? closed : NULL,
                                ending};
        s = query(sv->db,
                  "UPDATE cases.case SET stage = $2, state = $3::jsonb, updated_at = $4, "
                  "closed_at = $5, ending = $6 WHERE id = $1",
                  6, params, &res, err);
    }
    PQclear(res);
    bx_buf_free(&state);
    return s;
}

static bx_status store_event(escalate_service *sv, int64_t row_id, const case_state *after,
                             const messages_context *ctx, const ladder_event *e, bx_buf *b,
                             int *added, bx_error *err)
{
    char id[24], occurred[40], due[40], created[40];
    snprintf(id, sizeof(id), "%lld", (long long)row_id);
    bx_time_format(e->at, occurred, sizeof(occurred));
    bx_buf_reset(b);
    bx_status s = messages_case_event(after, ctx, e, b);
    if (s != BX_OK)
        return BX_ERR(err, s, "case %s: cannot build event %s", after->case_id, e->event_id);
    const char *actor = e->actor[0] ? e->actor : "bx-escalate";
    PGresult *res = NULL;
    const char *params[] = {id,     e->event_id, ladder_event_name(e->kind), e->stage,
                            actor,  e->reason,   e->late ? "t" : "f",        occurred,
                            b->data};
    s = query(sv->db,
              "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, late, "
              "occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) "
              "ON CONFLICT (event_id) DO NOTHING RETURNING id",
              9, params, &res, err);
    *added = s == BX_OK && PQntuples(res) == 1;
    PQclear(res);
    IFOK(s, outbox_add(sv->db, BX_TOPIC_CASE_EVENTS, after->student_id, e->event_id, b->data, NULL,
                       err));
    if (s != BX_OK || e->task_kind == NULL || e->task_key[0] == '\0')
        return s;
    switch (e->kind) {
    case LADDER_EV_TASK_CREATED: {
        bx_time_format(e->due_at, due, sizeof(due));
        bx_time_format(e->at, created, sizeof(created));
        const char *p[] = {id,
                           e->task_key,
                           e->task_kind,
                           e->stage,
                           e->owner_role,
                           messages_staff_of(ctx, e->owner_role),
                           created,
                           due};
        s = exec_params(sv->db,
                        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, "
                        "owner_staff_id, created_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                        "$8) ON CONFLICT (task_key) DO NOTHING",
                        8, p, err);
        break;
    }
    case LADDER_EV_TASK_DONE: {
        const char *p[] = {e->task_key, occurred, actor};
        s = exec_params(sv->db,
                        "UPDATE cases.task SET done_at = $2, done_by = $3 WHERE task_key = $1 AND "
                        "done_at IS NULL",
                        3, p, err);
        break;
    }
    case LADDER_EV_TASK_OVERDUE: {
        const char *p[] = {e->task_key, occurred};
        s = exec_params(sv->db,
                        "UPDATE cases.task SET overdue_at = $2 WHERE task_key = $1 AND "
                        "overdue_at IS NULL",
                        2, p, err);
        break;
    }
    default:
        break;
    }
    return s;
}

/* Stores one step (before -> after with sv->fx) in the open transaction. row_id is the loaded
 * row (0 none) and closed whether it was closed. */
static bx_status store_step(escalate_service *sv, int64_t row_id, bool closed, const char *school,
                            const bx_reg_student *student, const case_state *before,
                            const case_state *after, int *new_events, bx_error *err)
{
    const ladder_effects *fx = &sv->fx;
    bool opened_new = after->open && (row_id == 0 || strcmp(after->case_id, before->case_id) != 0);
    *new_events = 0;
    if (row_id != 0 && closed && after->open && !opened_new)
        return BX_OK; /* an old input of a closed case, beyond the ring: a replay */
    if (row_id != 0 && closed && after->open && opened_new) {
        /* A new case with the first absent day of any earlier one is a replay too. */
        PGresult *res = NULL;
        bx_status s = query(sv->db,
                            "SELECT 1 FROM cases.case WHERE student_id = $1 AND "
                            "state->>'case_id' = $2",
                            2, (const char *[]){after->student_id, after->case_id}, &res, err);
        bool seen = s == BX_OK && PQntuples(res) > 0;
        PQclear(res);
        if (s != BX_OK || seen)
            return s;
    }
    if (row_id == 0 && !after->open && fx->nevents == 0)
        return BX_OK; /* no case and none opened */
    int64_t id = row_id;
    bx_status s = store_case(sv, opened_new, school, after, &id, err);
    messages_context ctx = {school,
                            student && student->klass ? student->klass->homeroom_staff_id : ""};
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    for (int i = 0; i < fx->nevents && s == BX_OK; i++) {
        int added = 0;
        s = store_event(sv, id, after, &ctx, &fx->events[i], &b, &added, err);
        *new_events += added;
    }
    for (int i = 0; i < fx->ntimers && s == BX_OK; i++)
        s = timers_schedule(sv->db, fx->timers[i].key, id, fx->timers[i].due_at, err);
    for (int i = 0; i < fx->nnotes && s == BX_OK; i++) {
        bx_buf_reset(&b);
        s = messages_notify_request(after, &ctx, &fx->notes[i], &b);
        if (s != BX_OK)
            s = BX_ERR(err, s, "case %s: cannot build request %s", after->case_id,
                       fx->notes[i].request_id);
        IFOK(s, outbox_add(sv->db, BX_TOPIC_NOTIFY_REQUESTS, after->student_id,
                           fx->notes[i].request_id, b.data, NULL, err));
    }
    bx_buf_free(&b);
    return s;
}

/* ---- one message ---- */

static bx_status dead_letter(escalate_service *sv, const rd_kafka_message_t *msg, const parsed *p,
                             bx_error *err)
{
    static const char *const reasons[] = {"other", "malformed", "invalid_value", "unknown_student"};
    const char *topic = rd_kafka_topic_name(msg->rkt);
    char at[40], event_id[160];
    bx_time_format(bx_clock_now(), at, sizeof(at));
    snprintf(event_id, sizeof(event_id), "dlq:bx-escalate:%.60s:%d:%lld", topic,
             (int)msg->partition, (long long)msg->offset);
    bx_buf b;
    bx_buf_init(&b, 4 * DLQ_RECORD_MAX);
    bx_status s = bx_buf_puts(&b, "{\"schema\":\"bx.dlq.v1\",\"event_id\":");
    IFOK(s, bx_buf_json_string(&b, event_id));
    IFOK(s, bx_buf_puts(&b, ",\"source\":\"bx-escalate\",\"endpoint\":"));
    IFOK(s, bx_buf_json_string(&b, topic));
    IFOK(s, bx_buf_puts(&b, ",\"school_id\":null,\"record_index\":null,\"line\":null,"
                            "\"field\":null,\"reason\":"));
    IFOK(s, bx_buf_json_string(&b, reasons[p->bad]));
    IFOK(s, bx_buf_puts(&b, ",\"error\":"));
    IFOK(s, bx_buf_json_string(&b, p->error));
    IFOK(s, bx_buf_puts(&b, ",\"record\":"));
    if (p->bad != BAD_MALFORMED && msg->len <= DLQ_RECORD_MAX) {
        IFOK(s, bx_buf_append(&b, msg->payload, msg->len));
    } else if (msg->payload && msg->len <= DLQ_RECORD_MAX &&
               bx_utf8_valid(msg->payload, msg->len)) {
        char *text = strndup(msg->payload, msg->len);
        s = text ? bx_buf_json_string(&b, text) : BX_ENOMEM;
        free(text);
    } else {
        IFOK(s, bx_buf_puts(&b, "null"));
    }
    IFOK(s, bx_buf_printf(&b, ",\"received_at\":\"%s\"}", at));
    if (s != BX_OK) {
        bx_buf_free(&b);
        return BX_ERR(err, s, "cannot build a dead letter");
    }
    int added = 0;
    s = bx_pg_exec(sv->db, "BEGIN", err);
    IFOK(s, outbox_add(sv->db, BX_TOPIC_DLQ, p->student[0] ? p->student : "unknown", event_id,
                       b.data, &added, err));
    IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(sv->db);
    else if (added)
        bx_metric_add(&m_dlq, 1);
    bx_buf_free(&b);
    return s;
}

/* Applies one parsed input in one transaction. p->bad set on return means "dead-letter it". */
static bx_status apply_input(escalate_service *sv, parsed *p, bx_error *err)
{
    const bx_reg_student *student = bx_registry_student(sv->registry, p->student);
    if (student == NULL) {
        bx_status s = refresh_registry(sv, err);
        if (s != BX_OK)
            return s;
        student = bx_registry_student(sv->registry, p->student);
    }
    if (student == NULL || student->school == NULL || student->school->calendar == NULL) {
        p->bad = BAD_UNKNOWN_STUDENT;
        snprintf(p->error, sizeof(p->error), "message.student_id: not in the registry");
        return BX_OK;
    }
    int64_t row_id = 0;
    bool closed = false;
    char school[BX_ID_MAX + 1];
    snprintf(school, sizeof(school), "%s", p->school);
    bx_status s = bx_pg_exec(sv->db, "BEGIN", err);
    IFOK(s, case_state_init(&sv->before, p->student, err));
    IFOK(s, load_case(sv, SELECT_CASE_OF_STUDENT, p->student, &row_id, &closed, school, &sv->before,
                      err));
    if (s == BX_OK) {
        bx_error step_err = {0};
        bx_status st = ladder_step(sv->conf.policy, student->school->calendar, &sv->before, &p->in,
                                   &sv->after, &sv->fx, &step_err);
        if (st == BX_EINVAL) {
            bx_pg_rollback(sv->db);
            p->bad = BAD_INVALID;
            snprintf(p->error, sizeof(p->error), "%s", step_err.msg);
            return BX_OK;
        }
        if (st != BX_OK)
            s = BX_ERR(err, st, "student %s: %s", p->student, step_err.msg);
    }
    int added = 0;
    IFOK(s, store_step(sv, row_id, closed, closed || row_id == 0 ? p->school : school, student,
                       &sv->before, &sv->after, &added, err));
    IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(sv->db);
        return s;
    }
    bx_metric_add(&m_inputs, 1);
    bx_metric_add(&m_events, added);
    if (added)
        bx_info("case %s: %s %s: %d new events, stage %s", sv->after.case_id,
                p->in.kind == LADDER_IN_ASSESSMENT ? "assessment" : "action", p->in.event_id, added,
                stage_name(sv->conf.policy, sv->after.stage)
                    ? stage_name(sv->conf.policy, sv->after.stage)
                    : "-");
    return BX_OK;
}

static void handle_message(escalate_service *sv, const rd_kafka_message_t *msg)
{
    static parsed p;
    parse_message(msg, &p);
    int backoff_ms = 200;
    for (;;) {
        bx_error err = {0};
        bx_status s = p.bad ? BX_OK : apply_input(sv, &p, &err);
        if (s == BX_OK && p.bad) {
            bx_warn("%s [%d] offset %lld: dead-lettered: %s", rd_kafka_topic_name(msg->rkt),
                    (int)msg->partition, (long long)msg->offset, p.error);
            s = dead_letter(sv, msg, &p, &err);
        }
        if (s == BX_OK) {
            atomic_store(&sv->healthy, true);
            bx_consumer_done(sv->consumer, msg);
            return;
        }
        atomic_store(&sv->healthy, false);
        bx_metric_add(&m_failures, 1);
        bx_error("%s [%d] offset %lld failed (%s); retrying in %d ms",
                 rd_kafka_topic_name(msg->rkt), (int)msg->partition, (long long)msg->offset,
                 err.msg, backoff_ms);
        if (!*sv->conf.running)
            return;
        usleep((useconds_t)backoff_ms * 1000);
        backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
        bx_error cerr = {0};
        if (bx_pg_is_broken(sv->db) && connect_pg(sv, &cerr) != BX_OK)
            bx_warn("cannot reconnect to PostgreSQL: %s", cerr.msg);
        if (!*sv->conf.running)
            return;
    }
}

/* ---- calendar duties (duties.h) ---- */

/* A registry-enrolled child that was seen by no reported roll call of its class in the window
 * (present, late, early leave or leave), in a class that did report then: $1 calendar, $2 the
 * term's first day, $3 the check day. A class that reported nothing says nothing. */
#define SELECT_NO_SHOWS                                                                            \
    "SELECT st.id, st.school_id, cl.grade FROM registry.student st "                               \
    "JOIN registry.school sc ON sc.id = st.school_id JOIN registry.class cl ON cl.id = "           \
    "st.class_id "                                                                                 \
    "WHERE sc.calendar_id = $1 AND st.status = 'enrolled' "                                        \
    "AND (st.enrolled_on IS NULL OR st.enrolled_on <= $2::date) "                                  \
    "AND EXISTS (SELECT 1 FROM attendance.class_report r WHERE r.class_id = st.class_id "          \
    "            AND r.day BETWEEN $2::date AND $3::date) "                                        \
    "AND NOT EXISTS (SELECT 1 FROM attendance.fact f WHERE f.student_id = st.id "                  \
    "            AND f.day BETWEEN $2::date AND $3::date AND f.value IN ('p', 't', 'e', 'ls', "    \
    "'lp')) "                                                                                      \
    "AND NOT EXISTS (SELECT 1 FROM attendance.class_report r WHERE r.class_id = st.class_id "      \
    "            AND r.day BETWEEN $2::date AND $3::date AND NOT EXISTS (SELECT 1 FROM "           \
    "            attendance.fact f WHERE f.student_id = st.id AND f.day = r.day "                  \
    "            AND f.period = r.period)) "                                                       \
    "ORDER BY st.id"
/* Children who left a school from a transition grade and are enrolled nowhere: $1 calendar, $2
 * the grades. */
#define SELECT_TRANSITION_LOSSES                                                                   \
    "SELECT st.id, st.school_id, cl.grade FROM registry.student st "                               \
    "JOIN registry.school sc ON sc.id = st.school_id JOIN registry.class cl ON cl.id = "           \
    "st.class_id "                                                                                 \
    "WHERE sc.calendar_id = $1 AND st.status = 'graduated' AND cl.grade = ANY ($2::int[]) "        \
    "ORDER BY st.id"
/* Per county of the calendar's schools: open cases not on the roster (suspected, 疑似辍学), open
 * cases on it (辍学), cases opened and returned in [$2, $3] (local dates), and a county officer to
 * address: $1 calendar. */
#define ROSTER_STAGES "('dropout_roster', 'township_notice', 'deadline_notice', 'legal_referral')"
#define SELECT_COUNTY_COUNTS                                                                       \
    "SELECT t.county_code, "                                                                       \
    "count(c.id) FILTER (WHERE c.closed_at IS NULL AND coalesce(c.stage, '') NOT "                 \
    "IN " ROSTER_STAGES                                                                            \
    "), count(c.id) FILTER (WHERE c.closed_at IS NULL AND c.stage IN " ROSTER_STAGES "), "         \
    "count(c.id) FILTER (WHERE (c.opened_at AT TIME ZONE 'Asia/Shanghai')::date "                  \
    "                    BETWEEN $2::date AND $3::date), "                                         \
    "count(c.id) FILTER (WHERE c.ending = 'returned' AND (c.closed_at AT TIME ZONE "               \
    "                    'Asia/Shanghai')::date BETWEEN $2::date AND $3::date) "                   \
    "FROM registry.school sc JOIN registry.township t ON t.code = sc.township_code "               \
    "LEFT JOIN cases.case c ON c.school_id = sc.id WHERE sc.calendar_id = $1 "                     \
    "GROUP BY t.county_code ORDER BY t.county_code"

/* Opens (or leaves to its open case) a suspected dropout found by the duty. */
static bx_status duty_suspect(escalate_service *sv, const timers_timer *timer, const char *student,
                              const char *school_id, bx_date first_day, const char *reason,
                              bx_error *err)
{
    const bx_reg_school *sch = bx_registry_school(sv->registry, school_id);
    if (sch == NULL || sch->calendar == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "duty %s: school %s not in the registry", timer->key,
                      school_id);
    int64_t row_id = 0;
    bool closed = false;
    char school[BX_ID_MAX + 1];
    snprintf(school, sizeof(school), "%s", school_id);
    bx_status s = case_state_init(&sv->before, student, err);
    IFOK(s, load_case(sv, SELECT_CASE_OF_STUDENT, student, &row_id, &closed, school, &sv->before,
                      err));
    if (s != BX_OK)
        return s;
    ladder_input in;
    memset(&in, 0, sizeof(in));
    in.kind = LADDER_IN_SUSPECTED;
    in.at = timer->due_at;
    in.date = first_day;
    in.return_date = in.first_date = in.last_date = in.streak_start = BX_DATE_NONE;
    snprintf(in.event_id, sizeof(in.event_id), "%.80s:%s", timer->key, student);
    snprintf(in.reason, sizeof(in.reason), "%s", reason);
    snprintf(in.stage_name, sizeof(in.stage_name), "%s", sv->conf.duties->term_start_stage);
    bx_error step_err = {0};
    s = ladder_step(sv->conf.policy, sch->calendar, &sv->before, &in, &sv->after, &sv->fx,
                    &step_err);
    if (s != BX_OK)
        return BX_ERR(err, s, "duty %s: student %s: %s", timer->key, student, step_err.msg);
    int added = 0;
    s = store_step(sv, row_id, closed, closed || row_id == 0 ? school_id : school,
                   bx_registry_student(sv->registry, student), &sv->before, &sv->after, &added,
                   err);
    if (s == BX_OK && added)
        bx_info("duty %s: student %s: suspected dropout, case %s", timer->key, student,
                sv->after.case_id);
    bx_metric_add(&m_events, added);
    return s;
}

/* The children a term-start or transition check finds, each opened as a suspected dropout. */
static bx_status duty_check(escalate_service *sv, const timers_timer *timer, duty_kind kind,
                            const char *calendar, const char *term, const char *first,
                            const char *last, bx_error *err)
{
    const duties_policy *dp = sv->conf.duties;
    char grades[64] = "{";
    for (int i = 0; i < dp->nfrom_grades; i++)
        snprintf(grades + strlen(grades), sizeof(grades) - strlen(grades), "%s%d", i ? "," : "",
                 dp->from_grades[i]);
    snprintf(grades + strlen(grades), sizeof(grades) - strlen(grades), "}");
    PGresult *res = NULL;
    bx_status s =
        kind == DUTY_TERM_START
            ? query(sv->db, SELECT_NO_SHOWS, 3, (const char *[]){calendar, first, last}, &res, err)
            : query(sv->db, SELECT_TRANSITION_LOSSES, 2, (const char *[]){calendar, grades}, &res,
                    err);
    bx_date first_day = BX_DATE_NONE;
    if (s == BX_OK && bx_date_parse(first, &first_day) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, "duty %s: first_day \"%s\"", timer->key, first);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        int grade = (int)strtol(PQgetvalue(res, r, 2), NULL, 10);
        bool into = false;
        for (int i = 0; i < dp->ninto_grades; i++)
            into = into || dp->into_grades[i] == grade;
        char reason[200];
        if (kind == DUTY_TERM_START)
            snprintf(reason, sizeof(reason),
                     "疑似辍学: %snot seen at school in the first %d school days of term %s "
                     "(%s to %s)",
                     into ? "transition into a new grade: " : "", dp->term_start_days, term, first,
                     last);
        else
            snprintf(
                reason, sizeof(reason),
                "疑似辍学: left school %s after grade %d and enrolled at no other school by %s "
                "(transition, term %s)",
                PQgetvalue(res, r, 1), grade, last, term);
        s = duty_suspect(sv, timer, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), first_day, reason,
                         err);
    }
    PQclear(res);
    return s;
}

/* The out-of-school report and the monthly summary: one request to each county's bureau. */
static bx_status duty_report(escalate_service *sv, const timers_timer *timer, duty_kind kind,
                             const char *calendar, const char *term, const char *first,
                             const char *last, bx_error *err)
{
    const duties_policy *dp = sv->conf.duties;
    const char *role = kind == DUTY_MONTHLY_SUMMARY ? dp->monthly_role : dp->report_role;
    const char *tmpl = kind == DUTY_MONTHLY_SUMMARY ? dp->monthly_template : dp->report_template;
    PGresult *res = NULL;
    bx_status s =
        query(sv->db, SELECT_COUNTY_COUNTS, 3, (const char *[]){calendar, first, last}, &res, err);
    char at[40];
    bx_time_format(timer->due_at, at, sizeof(at));
    bx_buf b;
    bx_buf_init(&b, 1 << 16);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        /* No staff id: bx-notify reaches every officer of the role in the county. */
        const char *county = PQgetvalue(res, r, 0);
        char request_id[200];
        snprintf(request_id, sizeof(request_id), "%.120s:%s", timer->key, county);
        bx_buf_reset(&b);
        s = bx_buf_printf(&b,
                          "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s\","
                          "\"case_id\":null,\"student_id\":null,\"template\":\"%s\","
                          "\"recipient_role\":\"%s\",\"recipient_staff_id\":null",
                          request_id, tmpl, role);
        IFOK(s,
             bx_buf_printf(&b,
                           ",\"channel\":\"task\",\"params\":{\"county_code\":\"%s\","
                           "\"term\":\"%s\",\"first_day\":\"%s\",\"last_day\":\"%s\","
                           "\"suspected\":%s,\"dropouts\":%s,\"opened\":%s,\"returned\":%s},"
                           "\"not_before\":null,\"requested_at\":\"%s\"}",
                           county, term, first, last, PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                           PQgetvalue(res, r, 3), PQgetvalue(res, r, 4), at));
        IFOK(s,
             outbox_add(sv->db, BX_TOPIC_NOTIFY_REQUESTS, county, request_id, b.data, NULL, err));
        if (s == BX_OK)
            bx_info("duty %s: county %s: %s %s suspected, %s on the roster", timer->key, county,
                    duty_kind_name(kind), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
    }
    bx_buf_free(&b);
    PQclear(res);
    return s;
}

/* Fires a duty timer inside its transaction: what the payload names, over the calendar's
 * schools. A payload that cannot be read fires without effect (and says so). */
static bx_status run_duty(escalate_service *sv, const timers_timer *timer, bx_error *err)
{
    cJSON *p = cJSON_Parse(timer->payload ? timer->payload : "{}");
    const char *names[] = {"duty", "calendar_id", "term", "first_day", "last_day"};
    const char *v[5] = {NULL};
    for (int i = 0; i < 5; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(p, names[i]);
        v[i] = cJSON_IsString(item) ? item->valuestring : NULL;
    }
    duty_kind kind = v[0] ? duty_kind_parse(v[0]) : 0;
    bx_status s = BX_OK;
    if (kind == 0 || !v[1] || !v[2] || !v[3] || !v[4] || sv->conf.duties == NULL)
        bx_warn("duty %s: unreadable payload or no duties policy; fired without effect",
                timer->key);
    else if (kind == DUTY_TERM_START || kind == DUTY_TRANSITION)
        s = duty_check(sv, timer, kind, v[1], v[2], v[3], v[4], err);
    else
        s = duty_report(sv, timer, kind, v[1], v[2], v[3], v[4], err);
    cJSON_Delete(p);
    return s;
}

/* Schedules the duties of every term not yet over (idempotent: one timer per key). Runs when the
 * registry revision or the day changed. */
static void schedule_duties(escalate_service *sv)
{
    if (sv->conf.duties == NULL || sv->registry == NULL)
        return;
    bx_date today = bx_time_local_date(bx_clock_now());
    long long rev = bx_registry_loaded_revision(sv->registry);
    if (rev == sv->duties_revision && today == sv->duties_day)
        return;
    char day[11];
    bx_date_format(today, day);
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = query(sv->db,
                        "SELECT calendar_id, code, first_day::text, last_day::text FROM "
                        "registry.calendar_term WHERE last_day >= $1::date ORDER BY 1, 3",
                        1, (const char *[]){day}, &res, &err);
    int created_total = 0;
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        const char *cal_id = PQgetvalue(res, r, 0), *term = PQgetvalue(res, r, 1);
        const bx_calendar *cal = bx_registry_calendar(sv->registry, cal_id);
        bx_date first, last;
        if (cal == NULL || bx_date_parse(PQgetvalue(res, r, 2), &first) != BX_OK ||
            bx_date_parse(PQgetvalue(res, r, 3), &last) != BX_OK)
            continue;
        duty plan[DUTIES_PER_TERM];
        int n = duties_plan(sv->conf.duties, cal, cal_id, term, first, last, plan, DUTIES_PER_TERM);
        for (int i = 0; i < n && s == BX_OK; i++) {
            char payload[512];
            int created = 0;
            s = duty_payload(&plan[i], cal_id, term, payload, sizeof(payload));
            if (s != BX_OK)
                s = BX_ERR(&err, s, "duty %s: payload too long", plan[i].key);
            IFOK(s, timers_schedule_with(sv->db, plan[i].key, 0, plan[i].due_at, "duty", payload,
                                         &created, &err));
            created_total += created;
        }
    }
    PQclear(res);
    if (s != BX_OK) {
        bx_warn("scheduling calendar duties failed: %s", err.msg);
        return;
    }
    if (created_total)
        bx_info("%d calendar duties scheduled", created_total);
    sv->duties_revision = rev;
    sv->duties_day = today;
}

/* ---- timers ---- */

static bx_status fire_timer(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    escalate_service *sv = arg;
    if (db != sv->db)
        return BX_ERR(err, BX_EINVAL, "timer %s: fired on another connection", timer->key);
    if (timer->case_id <= 0)
        return strcmp(timer->kind, "duty") == 0 ? run_duty(sv, timer, err) : BX_OK;
    char id[24], school[BX_ID_MAX + 1] = "";
    snprintf(id, sizeof(id), "%lld", (long long)timer->case_id);
    int64_t row_id = 0;
    bool closed = false;
    memset(&sv->before, 0, sizeof(sv->before));
    bx_status s = load_case(sv, SELECT_CASE_BY_ID, id, &row_id, &closed, school, &sv->before, err);
    if (s != BX_OK || row_id == 0)
        return s;
    const bx_reg_student *student = bx_registry_student(sv->registry, sv->before.student_id);
    const bx_reg_school *sch = student ? student->school : bx_registry_school(sv->registry, school);
    if (sch == NULL || sch->calendar == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "case %s: school %s not in the registry",
                      sv->before.case_id, school);
    ladder_input in;
    memset(&in, 0, sizeof(in));
    in.kind = LADDER_IN_DEADLINE;
    in.at = timer->due_at;
    in.date = bx_time_local_date(timer->due_at);
    in.return_date = in.first_date = in.last_date = BX_DATE_NONE;
    in.streak_start = BX_DATE_NONE;
    snprintf(in.timer_key, sizeof(in.timer_key), "%s", timer->key);
    snprintf(in.event_id, sizeof(in.event_id), "timer:%.*s", (int)sizeof(in.event_id) - 7,
             timer->key);
    bx_error step_err = {0};
    s = ladder_step(sv->conf.policy, sch->calendar, &sv->before, &in, &sv->after, &sv->fx,
                    &step_err);
    if (s == BX_EINVAL) {
        bx_warn("timer %s: %s; fired without effect", timer->key, step_err.msg);
        return BX_OK;
    }
    if (s != BX_OK)
        return BX_ERR(err, s, "timer %s: %s", timer->key, step_err.msg);
    int added = 0;
    s = store_step(sv, row_id, closed, school, student, &sv->before, &sv->after, &added, err);
    if (s == BX_OK)
        bx_metric_add(&m_events, added);
    return s;
}

static void fire_due_timers(escalate_service *sv)
{
    timers_list list = {0};
    bx_error err = {0};
    bx_time_ms now = bx_clock_now();
    if (timers_claim(sv->db, sv->owner, now, sv->conf.timer_lease_ms, TIMERS_MAX, &list, &err) !=
        BX_OK) {
        bx_warn("timer claim failed: %s", err.msg);
        if (bx_pg_is_broken(sv->db) && connect_pg(sv, &err) != BX_OK)
            bx_warn("cannot reconnect to PostgreSQL: %s", err.msg);
        return;
    }
    /* The whole claim in one transaction; if any firing fails, one by one so the others go on. */
    int fired = 0;
    bx_error berr = {0};
    if (timers_fire_batch(sv->db, &list, sv->owner, now, fire_timer, sv, &fired, &berr) == BX_OK) {
        bx_metric_add(&m_timers, fired);
        bx_debug("%d timers fired in one transaction", fired);
        timers_list_free(&list);
        return;
    }
    bx_warn("firing %d timers together failed (%s); firing them one by one", list.count, berr.msg);
    if (bx_pg_is_broken(sv->db) && connect_pg(sv, &berr) != BX_OK) {
        bx_warn("cannot reconnect to PostgreSQL: %s", berr.msg);
        timers_list_free(&list);
        return;
    }
    for (int i = 0; i < list.count && *sv->conf.running; i++) {
        bx_error ferr = {0};
        bx_status s = timers_fire(sv->db, &list.items[i], sv->owner, now, fire_timer, sv, &ferr);
        if (s == BX_OK) {
            bx_metric_add(&m_timers, 1);
            bx_debug("timer %s fired", list.items[i].key);
        } else if (s != BX_ECONFLICT) {
            bx_metric_add(&m_failures, 1);
            bx_warn("timer %s failed (%s); retried after its lease", list.items[i].key, ferr.msg);
        }
    }
    timers_list_free(&list);
}

/* ---- the loop ---- */

static void relay(escalate_service *sv)
{
    for (;;) {
        int sent = 0;
        bx_error err = {0};
        bx_status s = outbox_relay(sv->db, sv->producer, RELAY_MAX, RELAY_WAIT_MS, &sent, &err);
        bx_metric_add(&m_sent, sent);
        if (s != BX_OK) {
            bx_warn("outbox relay: %s", err.msg);
            if (bx_pg_is_broken(sv->db) && connect_pg(sv, &err) != BX_OK)
                bx_warn("cannot reconnect to PostgreSQL: %s", err.msg);
            return;
        }
        if (sent < RELAY_MAX)
            return;
    }
}

void escalate_service_step(escalate_service *sv)
{
    int handled = 0;
    while (handled < POLL_MAX && *sv->conf.running) {
        rd_kafka_message_t *msg = bx_consumer_poll(sv->consumer, handled ? 0 : 100);
        if (msg == NULL)
            break;
        if (msg->err) {
            bx_warn("consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        handle_message(sv, msg);
        rd_kafka_message_destroy(msg);
        handled++;
    }
    if (handled && bx_consumer_commit(sv->consumer) != BX_OK)
        bx_warn("offset commit failed; the next commit carries them");
    fire_due_timers(sv);
    relay(sv);
}

bx_status escalate_service_start(const escalate_service_conf *conf, escalate_service **out,
                                 bx_error *err)
{
    *out = NULL;
    escalate_service *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return BX_ERR(err, BX_ENOMEM, "service: out of memory");
    sv->conf = *conf;
    atomic_init(&sv->healthy, true);
    char host[64] = "localhost";
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(sv->owner, sizeof(sv->owner), "%s:%d", host, (int)getpid());
    bx_metric_register(&m_inputs);
    bx_metric_register(&m_events);
    bx_metric_register(&m_timers);
    bx_metric_register(&m_sent);
    bx_metric_register(&m_dlq);
    bx_metric_register(&m_failures);
    bx_status s = connect_pg(sv, err);
    IFOK(s, load_registry(sv, err));
    IFOK(s, bx_producer_new(conf->brokers, NULL, &sv->producer, err));
    const char *const topics[] = {conf->risk_topic, conf->actions_topic, NULL};
    const char *const extra[] = {"auto.offset.reset",
                                 conf->offset_reset ? conf->offset_reset : "earliest", NULL};
    IFOK(s, bx_consumer_new(conf->brokers, conf->group, topics, extra, &sv->consumer, err));
    if (s != BX_OK) {
        escalate_service_stop(sv);
        return s;
    }
    bx_info("consuming %s and %s as group %s; timers claimed as %s", conf->risk_topic,
            conf->actions_topic, conf->group, sv->owner);
    schedule_duties(sv);
    *out = sv;
    return BX_OK;
}

void escalate_service_stop(escalate_service *sv)
{
    if (sv == NULL)
        return;
    if (sv->db) {
        bx_error err = {0};
        int released = 0;
        if (timers_release(sv->db, sv->owner, &released, &err) != BX_OK)
            bx_warn("cannot release timer claims: %s", err.msg);
    }
    bx_consumer_free(sv->consumer);
    bx_producer_free(sv->producer, 10000);
    if (sv->db)
        PQfinish(sv->db);
    bx_registry_free(sv->registry);
    free(sv);
}

bool escalate_service_healthy(void *arg, char *reason, size_t size)
{
    escalate_service *sv = arg;
    if (atomic_load(&sv->healthy))
        return true;
    snprintf(reason, size, "the last message failed; retrying");
    return false;
}

void escalate_service_tick(escalate_service *sv)
{
    bx_error err = {0};
    if (refresh_registry(sv, &err) != BX_OK) {
        bx_warn("registry refresh failed: %s", err.msg);
        if (bx_pg_is_broken(sv->db) && connect_pg(sv, &err) != BX_OK)
            bx_warn("cannot reconnect to PostgreSQL: %s", err.msg);
        return;
    }
    schedule_duties(sv);
}
