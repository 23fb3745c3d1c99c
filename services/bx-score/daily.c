/* daily: the daily attendance aggregates of bx.analytics.attendance.v1, published day by day. */
#include "daily.h"
#include "analytics.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_log.h"
#include "bx_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELIVERY_MS 30000
#define CHUNK       1024 /* students whose day is read at once */
#define MAX_DAYS    400  /* days one county closes in one call */

static void day_param(bx_date d, char out[11])
{
    bx_date_format(d, out);
}

bx_status score_daily_mark(PGconn *db, const score_store_fact *facts, size_t n,
                           const score_store_report *reports, size_t m, bx_date today,
                           bx_error *err)
{
    bx_buf schools, days;
    bx_buf_init(&schools, 1 << 20);
    bx_buf_init(&days, 1 << 20);
    bx_status s = BX_OK;
    size_t k = 0;
    for (size_t i = 0; i < n + m && s == BX_OK; i++) {
        const char *field = i < n ? facts[i].field : reports[i - n].field;
        const char *school = i < n ? facts[i].school_id : reports[i - n].school_id;
        bx_date day = BX_DATE_NONE;
        int period = 0;
        if (school == NULL || score_store_field_parse(field, &day, &period) != BX_OK ||
            day == BX_DATE_NONE || day >= today)
            continue;
        char d[11];
        day_param(day, d);
        IFOK(s, bx_pg_text_array_add(&schools, school));
        IFOK(s, bx_pg_text_array_add(&days, d));
        k++;
    }
    IFOK(s, bx_pg_text_array_end(&schools));
    IFOK(s, bx_pg_text_array_end(&days));
    if (s != BX_OK)
        s = BX_ERR(err, s, "daily: out of memory");
    else if (k > 0)
        s = bx_pg_command(db,
                          "INSERT INTO attendance.analytics_dirty (school_id, day) "
                          "SELECT DISTINCT u.s, u.d FROM unnest($1::text[], $2::date[]) AS u(s, "
                          "d) JOIN registry.school sc ON sc.id = u.s ON CONFLICT DO NOTHING",
                          2, (const char *[]){schools.data, days.data}, NULL, err);
    bx_buf_free(&schools);
    bx_buf_free(&days);
    return s;
}

/* ---- one county's day ---- */

typedef struct county_day {
    const score_daily_env *env;
    const char *county;
    bx_date day;
    const bx_reg_class **classes;
    size_t nclasses;
} county_day;

/* The classes of a county, from the registry tables (the in-memory registry has no walk). */
static bx_status county_classes(county_day *cd, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(cd->env->db,
                              "SELECT c.id FROM registry.class c JOIN registry.school s ON "
                              "s.id = c.school_id JOIN registry.township t ON t.code = "
                              "s.township_code WHERE t.county_code = $1 ORDER BY c.id",
                              1, (const char *[]){cd->county}, &res, err);
    if (s != BX_OK)
        return s;
    int rows = PQntuples(res);
    cd->classes = calloc((size_t)rows + 1, sizeof(*cd->classes));
    if (cd->classes == NULL)
        s = BX_ERR(err, BX_ENOMEM, "daily: out of memory");
    for (int i = 0; i < rows && s == BX_OK; i++) {
        const bx_reg_class *k = bx_registry_class(cd->env->score->registry, PQgetvalue(res, i, 0));
        if (k && k->school && k->school->calendar)
            cd->classes[cd->nclasses++] = k;
    }
    PQclear(res);
    return s;
}

/* The day of every enrolled student of the classes that had school that day. */
static bx_status student_days(const county_day *cd, score_att_student **out, size_t *count,
                              bx_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < cd->nclasses; i++)
        if (bx_calendar_is_school_day(cd->classes[i]->school->calendar, cd->day))
            n += (size_t)cd->classes[i]->student_count;
    score_att_student *rows = calloc(n + 1, sizeof(*rows));
    const char **ids = calloc(n + 1, sizeof(*ids));
    score_day *day = calloc(CHUNK, sizeof(*day));
    score_leave_kind *kinds = calloc(CHUNK, sizeof(*kinds));
    bool *known = calloc(CHUNK, sizeof(*known));
    bx_status s = rows && ids && day && kinds && known
                      ? BX_OK
                      : BX_ERR(err, BX_ENOMEM, "daily: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < cd->nclasses && s == BX_OK; i++) {
        const bx_reg_class *c = cd->classes[i];
        if (!bx_calendar_is_school_day(c->school->calendar, cd->day))
            continue;
        for (int j = 0; j < c->student_count; j++) {
            ids[k] = c->students[j]->id;
            rows[k++] = (score_att_student){c->id,
                                            c->school->id,
                                            c->school->township_code,
                                            c->school->county_code,
                                            c->grade,
                                            SCORE_ATT_NOT_REPORTED,
                                            0};
        }
    }
    /* Only the day's state of each student: what score_recompute's summary.today would say. */
    for (size_t i = 0; i < k && s == BX_OK; i += CHUNK) {
        size_t m = k - i < CHUNK ? k - i : CHUNK;
        s = score_recompute_days(cd->env->score, ids + i, m, cd->day, day, kinds, known, err);
        for (size_t j = 0; j < m && s == BX_OK; j++) {
            if (!known[j])
                continue;
            rows[i + j].state = score_att_state_of(&day[j], kinds[j]);
            rows[i + j].unexcused_periods = day[j].unexcused_periods;
        }
    }
    free(ids);
    free(day);
    free(kinds);
    free(known);
    if (s != BX_OK) {
        free(rows);
        return s;
    }
    *out = rows;
    *count = k;
    return BX_OK;
}

/* The digests already published for the county's day, as "level|code" -> digest. */
static bx_status sent_digests(const county_day *cd, PGresult **res, bx_error *err)
{
    char d[11];
    day_param(cd->day, d);
    return bx_pg_query(cd->env->db,
                       "SELECT level || '|' || place_code, digest FROM attendance.analytics_sent "
                       "WHERE county_code = $1 AND day = $2::date",
                       2, (const char *[]){cd->county, d}, res, err);
}

static bool already_sent(PGresult *sent, const score_att_place *p, const char *digest)
{
    char key[64];
    snprintf(key, sizeof(key), "%s|%s", score_att_level_name(p->level), p->code);
    for (int i = 0; i < PQntuples(sent); i++)
        if (strcmp(PQgetvalue(sent, i, 0), key) == 0)
            return strcmp(PQgetvalue(sent, i, 1), digest) == 0;
    return false;
}

/* Records the published places (after the broker acknowledged them) and clears the marks. */
static bx_status record_sent(const county_day *cd, const score_att_place *places, const bool *sent,
                             size_t n, bx_time_ms now, bx_error *err)
{
    char d[11], at[40];
    day_param(cd->day, d);
    bx_time_format_pg(now, at);
    PGconn *db = cd->env->db;
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        if (!sent[i])
            continue;
        char digest[SCORE_ATT_DIGEST_SIZE];
        score_attendance_digest(&places[i], digest);
        const char *p[] = {
            score_att_level_name(places[i].level), places[i].code, cd->county, d, digest, at};
        s = bx_pg_command(db,
                          "INSERT INTO attendance.analytics_sent (level, place_code, county_code, "
                          "day, digest, sent_at) VALUES ($1, $2, $3, $4::date, $5, $6) ON CONFLICT "
                          "(level, place_code, day) DO UPDATE SET digest = EXCLUDED.digest, "
                          "sent_at = EXCLUDED.sent_at",
                          6, p, NULL, err);
    }
    IFOK(s, bx_pg_command(db,
                          "DELETE FROM attendance.analytics_dirty d USING registry.school s, "
                          "registry.township t WHERE s.id = d.school_id AND t.code = "
                          "s.township_code AND t.county_code = $1 AND d.day = $2::date",
                          2, (const char *[]){cd->county, d}, NULL, err));
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK)
        bx_pg_rollback(db);
    return s;
}

/* Aggregates one county's day and publishes the places whose counts are new or changed. */
static bx_status publish_day(county_day *cd, bx_time_ms now, int *published, bx_error *err)
{
    score_att_student *rows = NULL;
    score_att_place *places = NULL;
    size_t nrows = 0, nplaces = 0;
    PGresult *sent = NULL;
    bx_status s = student_days(cd, &rows, &nrows, err);
    IFOK(s, score_attendance_aggregate(rows, nrows, &places, &nplaces, err));
    IFOK(s, sent_digests(cd, &sent, err));
    bool *fresh = s == BX_OK ? calloc(nplaces + 1, sizeof(*fresh)) : NULL;
    bx_delivery_slot *slots = s == BX_OK ? calloc(nplaces + 1, sizeof(*slots)) : NULL;
    bx_delivery_wait *w = s == BX_OK ? bx_delivery_wait_new() : NULL;
    if (s == BX_OK && (fresh == NULL || slots == NULL || w == NULL))
        s = BX_ERR(err, BX_ENOMEM, "daily: out of memory");
    bx_buf b;
    bx_buf_init(&b, 1 << 16);
    size_t queued = 0;
    for (size_t i = 0; i < nplaces && s == BX_OK; i++) {
        char digest[SCORE_ATT_DIGEST_SIZE];
        score_attendance_digest(&places[i], digest);
        if (already_sent(sent, &places[i], digest))
            continue;
        bx_buf_reset(&b);
        s = score_attendance_message(&places[i], cd->day, now, &b);
        bx_delivery_slot_arm(&slots[queued], w);
        if (s == BX_OK && bx_producer_send(cd->env->producer, cd->env->topic, places[i].code,
                                           strlen(places[i].code), b.data, b.len,
                                           bx_delivery_slot_done, &slots[queued]) != BX_OK) {
            bx_delivery_slot_done(&slots[queued], RD_KAFKA_RESP_ERR__FAIL);
            s = BX_ERR(err, BX_EIO, "daily: cannot queue a message to %s", cd->env->topic);
        }
        queued++;
        fresh[i] = s == BX_OK;
    }
    bx_buf_free(&b);
    if (w && bx_delivery_wait_all(w, DELIVERY_MS) != BX_OK && s == BX_OK)
        s = BX_ERR(err, BX_ETIMEOUT, "daily: aggregates not acknowledged in %d ms", DELIVERY_MS);
    for (size_t i = 0; i < queued && s == BX_OK; i++)
        if (slots[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
            s = BX_ERR(err, BX_EIO, "daily: an aggregate was not delivered: %s",
                       rd_kafka_err2str(slots[i].err));
    if (s != BX_OK && w && bx_delivery_wait_all(w, DELIVERY_MS) != BX_OK)
        bx_log_error("daily: deliveries still outstanding after a failure");
    IFOK(s, record_sent(cd, places, fresh, nplaces, now, err));
    if (s == BX_OK && queued > 0) {
        char d[11];
        day_param(cd->day, d);
        bx_log_info("county %s, %s: %zu attendance aggregates published", cd->county, d, queued);
        *published += (int)queued;
    }
    bx_delivery_wait_free(w);
    free(slots);
    free(fresh);
    PQclear(sent);
    free(places);
    free(rows);
    return s;
}

/* ---- what is due ---- */

/* The first day of a county not closed yet: the day after its last published county row, else
 * its first roll call; BX_DATE_NONE when it has none. */
static bx_status first_open_day(const county_day *cd, bx_date *out, bx_error *err)
{
    PGresult *res = NULL;
    *out = BX_DATE_NONE;
    bx_status s = bx_pg_query(
        cd->env->db,
        "SELECT coalesce((SELECT (max(day) + 1)::text FROM attendance.analytics_sent WHERE "
        "level = 'county' AND place_code = $1), (SELECT min(r.day)::text FROM "
        "attendance.class_report r JOIN registry.class c ON c.id = r.class_id JOIN "
        "registry.school s ON s.id = c.school_id JOIN registry.township t ON t.code = "
        "s.township_code WHERE t.county_code = $1), '')",
        1, (const char *[]){cd->county}, &res, err);
    if (s == BX_OK && PQgetvalue(res, 0, 0)[0] != '\0' &&
        bx_date_parse(PQgetvalue(res, 0, 0), out) != BX_OK)
        s = BX_ERR(err, BX_EINVAL, "daily: a day that does not parse");
    PQclear(res);
    return s;
}

static bool any_school_day(const county_day *cd)
{
    for (size_t i = 0; i < cd->nclasses; i++)
        if (bx_calendar_is_school_day(cd->classes[i]->school->calendar, cd->day))
            return true;
    return false;
}

/* Closes the county's days before today, then (when marked) aggregates again its marked days up
 * to the last closed one. */
static bx_status county_due(county_day *cd, bx_date today, bool marked, int *published,
                            bx_error *err)
{
    bx_date first = BX_DATE_NONE;
    bx_status s = county_classes(cd, err);
    IFOK(s, first_open_day(cd, &first, err));
    int n = 0;
    for (bx_date d = first; s == BX_OK && first != BX_DATE_NONE && d < today && n < MAX_DAYS;
         d++, n++) {
        cd->day = d;
        if (any_school_day(cd))
            s = publish_day(cd, bx_clock_now(), published, err);
    }
    PGresult *res = NULL;
    if (s == BX_OK && !marked) {
        free(cd->classes);
        cd->classes = NULL;
        cd->nclasses = 0;
        return s;
    }
    IFOK(s, bx_pg_query(cd->env->db,
                        "SELECT DISTINCT d.day::text FROM attendance.analytics_dirty d JOIN "
                        "registry.school s ON s.id = d.school_id JOIN registry.township t ON "
                        "t.code = s.township_code WHERE t.county_code = $1 AND d.day <= (SELECT "
                        "max(day) FROM attendance.analytics_sent WHERE level = 'county' AND "
                        "place_code = $1) ORDER BY 1",
                        1, (const char *[]){cd->county}, &res, err));
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++) {
        if (bx_date_parse(PQgetvalue(res, i, 0), &cd->day) != BX_OK)
            continue;
        s = publish_day(cd, bx_clock_now(), published, err);
    }
    PQclear(res);
    free(cd->classes);
    cd->classes = NULL;
    cd->nclasses = 0;
    return s;
}

bx_status score_daily_publish(const score_daily_env *env, bx_time_ms now, bool marked,
                              int *published, bx_error *err)
{
    int count = 0;
    bx_date today = bx_time_local_date(now);
    PGresult *res = NULL;
    bx_status s =
        bx_pg_query(env->db, "SELECT code FROM registry.county ORDER BY code", 0, NULL, &res, err);
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++) {
        county_day cd = {env, PQgetvalue(res, i, 0), BX_DATE_NONE, NULL, 0};
        s = county_due(&cd, today, marked, &count, err);
    }
    PQclear(res);
    if (published)
        *published = count;
    return s;
}
