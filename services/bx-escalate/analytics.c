/* analytics: bx.analytics.cases.v1, the analysts' pseudonymised case stream. */
#include "analytics.h"
#include "outbox.h"
#include "store.h"
#include "bx_map.h"
#include "bx_pg.h"

#include <stdio.h>
#include <string.h>

const char *escalate_analytics_trigger(const ladder_input *in)
{
    if (in == NULL)
        return "other";
    switch (in->kind) {
    case LADDER_IN_ASSESSMENT:
        return in->streak_days > 0 ? "streak" : "periods";
    case LADDER_IN_ACTION:
        if (in->action == LADDER_ACT_TRANSFER_OUT)
            return "transfer";
        return in->action == LADDER_ACT_SUSPENSION ? "suspension" : "other";
    case LADDER_IN_HOME_DELIVERY:
        return "home_delivered";
    case LADDER_IN_SUSPECTED:
        return "suspected";
    default:
        return "other";
    }
}

bool escalate_analytics_wanted(ladder_event_kind k)
{
    return k == LADDER_EV_OPENED || k == LADDER_EV_STAGE_ENTERED || k == LADDER_EV_TASK_DONE ||
           k == LADDER_EV_TASK_OVERDUE || k == LADDER_EV_CLOSED;
}

/* The first absent day in a case id "<student>:<YYYYMMDD>". */
static bx_date case_first_day(const case_state *s)
{
    const char *colon = strrchr(s->case_id, ':');
    if (colon == NULL || strlen(colon + 1) != 8)
        return BX_DATE_NONE;
    const char *y = colon + 1;
    char text[11] = {y[0], y[1], y[2], y[3], '-', y[4], y[5], '-', y[6], y[7], '\0'};
    bx_date d = BX_DATE_NONE;
    return bx_date_parse(text, &d) == BX_OK ? d : BX_DATE_NONE;
}

int escalate_analytics_school_days(const bx_calendar *cal, const case_state *s,
                                   const ladder_input *in, bx_time_ms closed_at)
{
    bx_date first = case_first_day(s);
    if (first == BX_DATE_NONE || cal == NULL)
        return -1;
    bx_date back = bx_time_local_date(closed_at);
    if (in && in->kind == LADDER_IN_ACTION && in->action == LADDER_ACT_RETURNED)
        back = in->return_date != BX_DATE_NONE ? in->return_date : in->date;
    return back <= first ? 0 : bx_calendar_school_days_between(cal, first, back - 1);
}

static bx_status code_or_null(bx_buf *b, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return bx_buf_printf(b, ",\"%s\":null", name);
    bx_status s = bx_buf_printf(b, ",\"%s\":", name);
    IFOK(s, bx_buf_json_string(b, value));
    return s;
}

/* The members every message has, up to "event". */
static bx_status head(const escalate_analytics_ctx *c, const case_state *s, const char *event,
                      const char *source_id, bx_time_ms at, bx_buf *out, char id[BX_PSEUDONYM_SIZE])
{
    char subject[BX_PSEUDONYM_SIZE], kase[BX_PSEUDONYM_SIZE], day[11], when[40];
    bx_pseudonym(c->key, source_id, id);
    bx_pseudonym(c->key, s->student_id, subject);
    bx_pseudonym(c->key, s->case_id, kase);
    bx_date_format(bx_time_local_date(at), day);
    bx_time_format(at, when, sizeof(when));
    bx_status st = bx_buf_printf(out,
                                 "{\"schema\":\"bx.analytics.cases.v1\",\"event_id\":\"%s\","
                                 "\"case\":\"%s\",\"subject\":\"%s\",\"event\":\"%s\","
                                 "\"school_id\":\"%s\",\"township_code\":\"%s\","
                                 "\"county_code\":\"%s\"",
                                 id, kase, subject, event, c->school->id, c->school->township_code,
                                 c->school->county_code);
    IFOK(st, code_or_null(out, "grade_band", c->grade_band));
    IFOK(st, code_or_null(out, "sex", c->sex));
    IFOK(st, bx_buf_printf(out, ",\"date\":\"%s\",\"occurred_at\":\"%s\"", day, when));
    return st;
}

bx_status escalate_analytics_case_event(const escalate_analytics_ctx *c, const case_state *s,
                                        const ladder_event *e, bx_buf *out,
                                        char id[BX_PSEUDONYM_SIZE])
{
    bool task = e->kind == LADDER_EV_TASK_DONE || e->kind == LADDER_EV_TASK_OVERDUE;
    bool closed = e->kind == LADDER_EV_CLOSED;
    bx_status st = head(c, s, ladder_event_name(e->kind), e->event_id, e->at, out, id);
    IFOK(st,
         code_or_null(out, "trigger",
                      e->kind == LADDER_EV_OPENED ? escalate_analytics_trigger(c->input) : NULL));
    IFOK(st, code_or_null(out, "stage", e->stage));
    IFOK(st, bx_buf_printf(out, ",\"late\":%s",
                           e->late || e->kind == LADDER_EV_TASK_OVERDUE ? "true" : "false"));
    IFOK(st, code_or_null(out, "task", task ? e->task_kind : NULL));
    IFOK(st, code_or_null(out, "owner_role", task ? e->owner_role : NULL));
    IFOK(st, code_or_null(out, "ending", closed ? ladder_ending_name(e->ending) : NULL));
    int days = closed && e->ending == LADDER_END_RETURNED
                   ? escalate_analytics_school_days(c->school->calendar, s, c->input, e->at)
                   : -1;
    if (days >= 0)
        IFOK(st, bx_buf_printf(out, ",\"school_days_to_return\":%d", days));
    else
        IFOK(st, bx_buf_puts(out, ",\"school_days_to_return\":null"));
    IFOK(st, bx_buf_puts(out, ",\"visit_outcome\":null,\"visit_reason\":null}"));
    return st;
}

bx_status escalate_analytics_visit(const escalate_analytics_ctx *c, const case_state *s,
                                   bx_buf *out, char id[BX_PSEUDONYM_SIZE])
{
    const ladder_input *in = c->input;
    char source[LADDER_ID_SIZE + 8];
    snprintf(source, sizeof(source), "visit:%s", in->event_id);
    bx_status st = head(c, s, "home_visit", source, in->at, out, id);
    IFOK(st, bx_buf_puts(out, ",\"trigger\":null"));
    IFOK(st, code_or_null(out, "stage", c->policy ? ladder_stage_name(c->policy, s->stage) : NULL));
    IFOK(st, bx_buf_puts(out, ",\"late\":false,\"task\":null,\"owner_role\":null,\"ending\":null,"
                              "\"school_days_to_return\":null"));
    IFOK(st,
         code_or_null(out, "visit_outcome", in->visit_outcome[0] ? in->visit_outcome : "other"));
    IFOK(st, code_or_null(out, "visit_reason", in->visit_reason));
    IFOK(st, bx_buf_puts(out, "}"));
    return st;
}

bx_status escalate_analytics_bands(PGconn *db, const char *student_id, char grade_band[16],
                                   char sex[8], bx_error *err)
{
    PGresult *res = NULL;
    grade_band[0] = sex[0] = '\0';
    bx_status s = bx_pg_query(db,
                              "SELECT coalesce(grade_band, ''), coalesce(sex, '') FROM "
                              "analytics.student_bands($1)",
                              1, (const char *[]){student_id}, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        snprintf(grade_band, 16, "%s", PQgetvalue(res, 0, 0));
        snprintf(sex, 8, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return s;
}

bx_status escalate_analytics_bands_of(PGconn *db, const char *const *students, int n,
                                      escalate_bands *out, bx_error *err)
{
    for (int i = 0; i < n; i++)
        out[i].grade_band[0] = out[i].sex[0] = '\0';
    if (n <= 0)
        return BX_OK;
    bx_buf ids;
    bx_buf_init(&ids, 0);
    bx_status s = bx_buf_puts(&ids, "{");
    for (int i = 0; i < n && s == BX_OK; i++) {
        /* registry ids are [A-Za-z0-9_-]: quoted for the array literal all the same */
        IFOK(s, bx_buf_puts(&ids, i ? ",\"" : "\""));
        IFOK(s, bx_buf_puts(&ids, students[i]));
        IFOK(s, bx_buf_puts(&ids, "\""));
    }
    IFOK(s, bx_buf_puts(&ids, "}"));
    if (s != BX_OK) {
        bx_buf_free(&ids);
        return BX_ERR(err, BX_ENOMEM, "no memory for %d students' bands", n);
    }
    PGresult *res = NULL;
    s = bx_pg_query(db,
                    "SELECT student_id, coalesce(grade_band, ''), coalesce(sex, '') FROM "
                    "analytics.student_bands_of($1::text[])",
                    1, (const char *[]){ids.data}, &res, err);
    bx_buf_free(&ids);
    bx_map *at = s == BX_OK ? bx_map_new() : NULL;
    if (s == BX_OK && at == NULL)
        s = BX_ERR(err, BX_ENOMEM, "no memory for %d students' bands", n);
    for (int i = 0; i < n && s == BX_OK; i++)
        if (bx_map_put(at, students[i], &out[i]) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "no memory for %d students' bands", n);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        escalate_bands *b = bx_map_get(at, PQgetvalue(res, r, 0));
        if (b == NULL)
            continue;
        snprintf(b->grade_band, sizeof(b->grade_band), "%s", PQgetvalue(res, r, 1));
        snprintf(b->sex, sizeof(b->sex), "%s", PQgetvalue(res, r, 2));
    }
    /* a student asked twice: the map points at the last; the others copy it */
    for (int i = 0; i < n && s == BX_OK; i++) {
        const escalate_bands *b = bx_map_get(at, students[i]);
        if (b != &out[i])
            out[i] = *b;
    }
    bx_map_free(at);
    PQclear(res);
    return s;
}

static bool visit_due(const escalate_analytics_ctx *c, const case_state *after)
{
    const ladder_input *in = c->input;
    return in && in->kind == LADDER_IN_ACTION && in->action == LADDER_ACT_HOME_VISIT &&
           after->case_id[0] != '\0' && after->open;
}

/* One message of the stream on the outbox: queued with the batch's rows when there is one. */
static bx_status add_row(PGconn *db, const escalate_analytics_ctx *c, escalate_store_batch *queue,
                         const char *subject, const char *id, const char *payload, bx_error *err)
{
    if (queue)
        return escalate_store_queue_outbox(queue, c->topic, subject, id, payload, err);
    return escalate_outbox_add(db, c->topic, subject, id, payload, NULL, err);
}

bx_status escalate_analytics_write_step(PGconn *db, const escalate_analytics_ctx *c,
                                        const case_state *after, const ladder_effects *fx,
                                        bx_error *err)
{
    return escalate_analytics_queue_step(db, c, after, fx, NULL, err);
}

bx_status escalate_analytics_queue_step(PGconn *db, const escalate_analytics_ctx *c,
                                        const case_state *after, const ladder_effects *fx,
                                        escalate_store_batch *queue, bx_error *err)
{
    if (c->key == NULL || c->key[0] == '\0' || c->school == NULL)
        return BX_OK;
    int due = visit_due(c, after);
    for (int i = 0; i < fx->nevents; i++)
        due += escalate_analytics_wanted(fx->events[i].kind);
    if (due == 0)
        return BX_OK;
    escalate_analytics_ctx ctx = *c;
    char band[16], sex[8];
    bx_status s = BX_OK;
    if (ctx.grade_band == NULL || ctx.sex == NULL) {
        s = escalate_analytics_bands(db, after->student_id, band, sex, err);
        ctx.grade_band = band;
        ctx.sex = sex;
    }
    char subject[BX_PSEUDONYM_SIZE], id[BX_PSEUDONYM_SIZE];
    bx_pseudonym(ctx.key, after->student_id, subject);
    bx_buf b;
    bx_buf_init(&b, 1 << 16);
    for (int i = 0; i < fx->nevents && s == BX_OK; i++) {
        if (!escalate_analytics_wanted(fx->events[i].kind))
            continue;
        bx_buf_reset(&b);
        if (escalate_analytics_case_event(&ctx, after, &fx->events[i], &b, id) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "case %s: cannot build the analysts' event %s",
                       after->case_id, fx->events[i].event_id);
        IFOK(s, add_row(db, &ctx, queue, subject, id, b.data, err));
    }
    if (s == BX_OK && visit_due(&ctx, after)) {
        bx_buf_reset(&b);
        if (escalate_analytics_visit(&ctx, after, &b, id) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "case %s: cannot build the analysts' home visit",
                       after->case_id);
        IFOK(s, add_row(db, &ctx, queue, subject, id, b.data, err));
    }
    bx_buf_free(&b);
    return s;
}
