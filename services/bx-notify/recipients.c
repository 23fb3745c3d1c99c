/* recipients: registry lookups for bx-notify (who to reach, what to fill templates with). */
#include "recipients.h"

#include "bx_log.h"
#include "bx_pg.h"

#include <stdio.h>
#include <string.h>

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

bx_status recipients_context_load(PGconn *db, const char *student_id, bx_date today,
                                  recipients_context *ctx, bx_error *err)
{
    memset(ctx, 0, sizeof(*ctx));
    char day[11];
    bx_date_format(today, day);
    const char *params[] = {student_id, day};
    PGresult *res = NULL;
    /* Days missed: whole days bx-score recorded as unexcused absence ("a" in period 0) from the
     * first day of the term containing today up to today. */
    bx_status s = bx_pg_query(
        db,
        "SELECT s.school_id, sc.name, c.name, coalesce(c.homeroom_staff_id, ''), "
        "coalesce(h.name, ''), coalesce(p.name, ''), sc.township_code, t.county_code, "
        "(SELECT count(*) FROM attendance.fact f WHERE f.student_id = s.id AND f.period = 0 "
        "  AND f.value = 'a' AND f.day <= $2::date AND f.day >= coalesce((SELECT max(ct.first_day) "
        "  FROM registry.calendar_term ct WHERE ct.calendar_id = sc.calendar_id "
        "  AND $2::date BETWEEN ct.first_day AND ct.last_day), $2::date)), "
        "coalesce(co.name, '') "
        "FROM registry.student s JOIN registry.school sc ON sc.id = s.school_id "
        "JOIN registry.class c ON c.id = s.class_id "
        "JOIN registry.township t ON t.code = sc.township_code "
        "LEFT JOIN registry.county co ON co.code = t.county_code "
        "LEFT JOIN registry.staff h ON h.id = c.homeroom_staff_id "
        "LEFT JOIN registry.student_private p ON p.student_id = s.id WHERE s.id = $1",
        2, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(err, BX_ENOTFOUND, "student %s: not in the registry", student_id);
    if (s == BX_OK) {
        copy(ctx->student_id, sizeof(ctx->student_id), student_id);
        copy(ctx->school_id, sizeof(ctx->school_id), PQgetvalue(res, 0, 0));
        copy(ctx->school, sizeof(ctx->school), PQgetvalue(res, 0, 1));
        copy(ctx->class_name, sizeof(ctx->class_name), PQgetvalue(res, 0, 2));
        copy(ctx->homeroom_staff_id, sizeof(ctx->homeroom_staff_id), PQgetvalue(res, 0, 3));
        copy(ctx->teacher, sizeof(ctx->teacher), PQgetvalue(res, 0, 4));
        copy(ctx->student, sizeof(ctx->student), PQgetvalue(res, 0, 5));
        copy(ctx->township_code, sizeof(ctx->township_code), PQgetvalue(res, 0, 6));
        copy(ctx->county_code, sizeof(ctx->county_code), PQgetvalue(res, 0, 7));
        copy(ctx->days_missed_term, sizeof(ctx->days_missed_term), PQgetvalue(res, 0, 8));
        copy(ctx->county, sizeof(ctx->county), PQgetvalue(res, 0, 9));
    }
    PQclear(res);
    return s;
}

bx_status recipients_place_load(PGconn *db, recipients_place kind, const char *key,
                                recipients_context *ctx, bx_error *err)
{
    /* each gives (school id, school name, township code, county code, county name), "" for what
     * the place does not have */
    static const struct {
        const char *what, *sql;
    } places[] = {
        [RECIPIENTS_SCHOOL] = {"school",
                               "SELECT sc.id, sc.name, sc.township_code, t.county_code, "
                               "coalesce(co.name, '') FROM registry.school sc JOIN "
                               "registry.township t ON t.code = sc.township_code LEFT JOIN "
                               "registry.county co ON co.code = t.county_code WHERE sc.id = $1"},
        [RECIPIENTS_TOWNSHIP] = {"township",
                                 "SELECT '', '', t.code, t.county_code, coalesce(co.name, '') "
                                 "FROM registry.township t LEFT JOIN registry.county co ON "
                                 "co.code = t.county_code WHERE t.code = $1"},
        [RECIPIENTS_COUNTY] = {"county", "SELECT '', '', '', co.code, co.name FROM "
                                         "registry.county co WHERE co.code = $1"},
    };
    const char *params[] = {key};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, places[kind].sql, 1, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(err, BX_ENOTFOUND, "%s %.32s: not in the registry", places[kind].what, key);
    if (s == BX_OK) {
        copy(ctx->school_id, sizeof(ctx->school_id), PQgetvalue(res, 0, 0));
        copy(ctx->school, sizeof(ctx->school), PQgetvalue(res, 0, 1));
        copy(ctx->township_code, sizeof(ctx->township_code), PQgetvalue(res, 0, 2));
        copy(ctx->county_code, sizeof(ctx->county_code), PQgetvalue(res, 0, 3));
        copy(ctx->county, sizeof(ctx->county), PQgetvalue(res, 0, 4));
    }
    PQclear(res);
    return s;
}

const char *recipients_place_field(const char *role)
{
    static const struct {
        const char *role, *field;
    } places[] = {{"homeroom_teacher", "student_id"},
                  {"principal", "params.school_id"},
                  {"academic_office", "params.school_id"},
                  {"township_officer", "params.township_code"},
                  {"county_officer", "params.county_code"}};
    for (size_t i = 0; role != NULL && i < sizeof(places) / sizeof(places[0]); i++)
        if (strcmp(places[i].role, role) == 0)
            return places[i].field;
    return NULL;
}

bool recipients_place_known(const recipients_context *ctx, const char *role)
{
    const char *field = recipients_place_field(role);
    if (field == NULL)
        return false;
    if (strcmp(field, "student_id") == 0)
        return ctx->student_id[0] != '\0';
    if (strcmp(field, "params.school_id") == 0)
        return ctx->school_id[0] != '\0';
    if (strcmp(field, "params.township_code") == 0)
        return ctx->township_code[0] != '\0';
    return ctx->county_code[0] != '\0';
}

bx_status recipients_guardians(PGconn *db, const recipients_context *ctx, recipient *out, int max,
                               int *count, bx_error *err)
{
    *count = 0;
    const char *params[] = {ctx->student_id};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "SELECT phone FROM (SELECT phone, bool_or(is_primary) AS primary_ "
                              "FROM registry.guardian WHERE student_id = $1 AND phone IS NOT NULL "
                              "GROUP BY phone) g ORDER BY primary_ DESC, phone",
                              1, params, &res, err);
    for (int i = 0; s == BX_OK && i < PQntuples(res) && *count < max; i++) {
        recipient *r = &out[(*count)++];
        memset(r, 0, sizeof(*r));
        copy(r->phone, sizeof(r->phone), PQgetvalue(res, i, 0));
        copy(r->address, sizeof(r->address), r->phone);
        bx_mask_phone(r->phone, r->masked, sizeof(r->masked));
    }
    PQclear(res);
    return s;
}

static void staff_row(PGresult *res, int i, recipient *r)
{
    memset(r, 0, sizeof(*r));
    copy(r->staff_id, sizeof(r->staff_id), PQgetvalue(res, i, 0));
    copy(r->phone, sizeof(r->phone), PQgetvalue(res, i, 1));
    copy(r->staff_name, sizeof(r->staff_name), PQgetvalue(res, i, 2));
    copy(r->masked, sizeof(r->masked), r->staff_id);
    copy(r->address, sizeof(r->address), r->staff_id);
}

bx_status recipients_staff(PGconn *db, const recipients_context *ctx, const char *role,
                           const char *staff_id, recipient *out, int max, int *count, bx_error *err)
{
    *count = 0;
    if ((staff_id == NULL || staff_id[0] == '\0') && strcmp(role, "homeroom_teacher") == 0)
        staff_id = ctx->homeroom_staff_id[0] ? ctx->homeroom_staff_id : NULL;
    PGresult *res = NULL;
    bx_status s;
    if (staff_id && staff_id[0]) {
        const char *params[] = {staff_id};
        s = bx_pg_query(db,
                        "SELECT id, coalesce(phone, ''), name FROM registry.staff WHERE id = $1", 1,
                        params, &res, err);
    } else {
        const char *params[] = {role, ctx->school_id, ctx->township_code, ctx->county_code};
        s = bx_pg_query(db,
                        "SELECT id, coalesce(phone, ''), name FROM registry.staff WHERE role = $1 "
                        "AND CASE role WHEN 'township_officer' THEN township_code = $3 "
                        "  WHEN 'county_officer' THEN county_code = $4 "
                        "  ELSE school_id = $2 END ORDER BY id",
                        4, params, &res, err);
    }
    for (int i = 0; s == BX_OK && i < PQntuples(res) && *count < max; i++)
        staff_row(res, i, &out[(*count)++]);
    PQclear(res);
    return s;
}

bx_status recipients_staff_by_id(PGconn *db, const char *staff_id, recipient *out, char *place_name,
                                 size_t place_size, bx_error *err)
{
    const char *params[] = {staff_id};
    PGresult *res = NULL;
    bx_status s =
        bx_pg_query(db,
                    "SELECT st.id, coalesce(st.phone, ''), st.name, "
                    "coalesce(sc.name, tw.name, co.name, '') FROM registry.staff st "
                    "LEFT JOIN registry.school sc ON sc.id = st.school_id "
                    "LEFT JOIN registry.township tw ON tw.code = st.township_code "
                    "LEFT JOIN registry.county co ON co.code = st.county_code WHERE st.id = $1",
                    1, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(err, BX_ENOTFOUND, "staff %s: not in the registry", staff_id);
    if (s == BX_OK) {
        staff_row(res, 0, out);
        copy(place_name, place_size, PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    return s;
}
