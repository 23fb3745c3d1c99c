/* recipients: registry lookups for bx-notify (who to reach, what to fill templates with). */
#include "recipients.h"

#include "bx_buf.h"
#include "bx_log.h"
#include "bx_map.h"
#include "bx_pg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bx_copy_text, NULL copied as "" */
static void copy(char *dst, size_t size, const char *src)
{
    bx_copy_text(dst, size, src ? src : "");
}

/* A student's context, $2 the day: days missed are whole days bx-score recorded as unexcused
 * absence ("a" in period 0) from the first day of the term containing today up to today. */
#define STUDENT_COLUMNS                                                                            \
    "s.school_id, sc.name, c.name, coalesce(c.homeroom_staff_id, ''), "                            \
    "coalesce(h.name, ''), coalesce(p.name, ''), sc.township_code, t.county_code, "                \
    "(SELECT count(*) FROM attendance.fact f WHERE f.student_id = s.id AND f.period = 0 "          \
    "  AND f.value = 'a' AND f.day <= $2::date AND f.day >= coalesce((SELECT max(ct.first_day) "   \
    "  FROM registry.calendar_term ct WHERE ct.calendar_id = sc.calendar_id "                      \
    "  AND $2::date BETWEEN ct.first_day AND ct.last_day), $2::date)), "                           \
    "coalesce(co.name, '') "
#define STUDENT_FROM                                                                               \
    "FROM registry.student s JOIN registry.school sc ON sc.id = s.school_id "                      \
    "JOIN registry.class c ON c.id = s.class_id "                                                  \
    "JOIN registry.township t ON t.code = sc.township_code "                                       \
    "LEFT JOIN registry.county co ON co.code = t.county_code "                                     \
    "LEFT JOIN registry.staff h ON h.id = c.homeroom_staff_id "                                    \
    "LEFT JOIN registry.student_private p ON p.student_id = s.id "

/* ctx from the STUDENT_COLUMNS of row i, starting at column 0. */
static void student_row(PGresult *res, int i, const char *student_id, recipients_context *ctx)
{
    copy(ctx->student_id, sizeof(ctx->student_id), student_id);
    copy(ctx->school_id, sizeof(ctx->school_id), PQgetvalue(res, i, 0));
    copy(ctx->school, sizeof(ctx->school), PQgetvalue(res, i, 1));
    copy(ctx->class_name, sizeof(ctx->class_name), PQgetvalue(res, i, 2));
    copy(ctx->homeroom_staff_id, sizeof(ctx->homeroom_staff_id), PQgetvalue(res, i, 3));
    copy(ctx->teacher, sizeof(ctx->teacher), PQgetvalue(res, i, 4));
    copy(ctx->student, sizeof(ctx->student), PQgetvalue(res, i, 5));
    copy(ctx->township_code, sizeof(ctx->township_code), PQgetvalue(res, i, 6));
    copy(ctx->county_code, sizeof(ctx->county_code), PQgetvalue(res, i, 7));
    copy(ctx->days_missed_term, sizeof(ctx->days_missed_term), PQgetvalue(res, i, 8));
    copy(ctx->county, sizeof(ctx->county), PQgetvalue(res, i, 9));
}

bx_status recipients_context_load(PGconn *db, const char *student_id, bx_date today,
                                  recipients_context *ctx, bx_error *err)
{
    memset(ctx, 0, sizeof(*ctx));
    char day[11];
    bx_date_format(today, day);
    const char *params[] = {student_id, day};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, "SELECT " STUDENT_COLUMNS STUDENT_FROM "WHERE s.id = $1", 2,
                              params, &res, err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(err, BX_ENOTFOUND, "student %s: not in the registry", student_id);
    if (s == BX_OK)
        student_row(res, 0, student_id, ctx);
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

/* A guardian as a recipient: the first len bytes of phone, also its address, and masked. */
static void guardian_row(const char *phone, size_t len, recipient *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->phone, sizeof(r->phone), "%.*s", (int)len, phone);
    copy(r->address, sizeof(r->address), r->phone);
    bx_mask_phone(r->phone, r->masked, sizeof(r->masked));
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
    for (int i = 0; s == BX_OK && i < PQntuples(res) && *count < max; i++)
        guardian_row(PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0), &out[(*count)++]);
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

/* ---- a poll's students at once ---- */

/* The guardians of a student as the query lists them: distinct phones, primary first, commas
 * between (phones are 11 digits, registry.guardian's CHECK). */
static void guardians_of(const char *phones, recipients_student *st)
{
    st->nguardians = 0;
    for (const char *p = phones; p && *p && st->nguardians < RECIPIENTS_MAX;) {
        size_t n = strcspn(p, ",");
        guardian_row(p, n, &st->guardians[st->nguardians++]);
        p += n + (p[n] == ',');
    }
}

bx_status recipients_students_load(PGconn *db, const char *const *ids, const bool *want_guardians,
                                   int n, bx_date today, recipients_student *out, bool *found,
                                   bx_error *err)
{
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        found[i] = false;
    }
    if (n == 0)
        return BX_OK;
    bx_buf all, guardians;
    bx_buf_init(&all, 0);
    bx_buf_init(&guardians, 0);
    bx_map *index = bx_map_new();
    bx_status s = index ? BX_OK : BX_ENOMEM;
    /* the map's values are 1-based positions: NULL is "not asked for" */
    for (int i = 0; i < n && s == BX_OK; i++) {
        s = bx_pg_text_array_add(&all, ids[i]);
        if (s == BX_OK && want_guardians[i])
            s = bx_pg_text_array_add(&guardians, ids[i]);
        IFOK(s, bx_map_put(index, ids[i], (void *)(intptr_t)(i + 1)));
    }
    IFOK(s, bx_pg_text_array_end(&all));
    IFOK(s, bx_pg_text_array_end(&guardians));
    if (s != BX_OK) {
        bx_map_free(index);
        bx_buf_free(&all);
        bx_buf_free(&guardians);
        return BX_ERR(err, BX_ENOMEM, "recipients: out of memory for %d students", n);
    }
    char day[11];
    bx_date_format(today, day);
    const char *params[] = {all.data, day, guardians.data};
    PGresult *res = NULL;
    s = bx_pg_query(db,
                    "SELECT " STUDENT_COLUMNS
                    ", s.id, CASE WHEN s.id = ANY($3::text[]) THEN (SELECT string_agg(g.phone, ',' "
                    "ORDER BY g.primary_ DESC, g.phone) FROM (SELECT phone, bool_or(is_primary) "
                    "AS primary_ FROM registry.guardian WHERE student_id = s.id AND phone IS NOT "
                    "NULL GROUP BY phone) g) END " STUDENT_FROM "WHERE s.id = ANY($1::text[])",
                    3, params, &res, err);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++) {
        intptr_t at = (intptr_t)bx_map_get(index, PQgetvalue(res, r, 10));
        if (at < 1 || at > n)
            continue; /* not one asked for (cannot happen: ids are registry ids) */
        recipients_student *st = &out[at - 1];
        student_row(res, r, ids[at - 1], &st->ctx);
        guardians_of(PQgetisnull(res, r, 11) ? NULL : PQgetvalue(res, r, 11), st);
        found[at - 1] = true;
    }
    PQclear(res);
    bx_map_free(index);
    bx_buf_free(&all);
    bx_buf_free(&guardians);
    return s;
}

/* ---- places and staff in memory, by registry revision ---- */

/* Past this many entries everything is forgotten (they come back as they are asked for). */
#define CACHE_ENTRIES_MAX 200000

/* One cached answer: a place (ctx's place fields) or a staff list, or "not found". */
typedef struct cache_entry {
    bx_status status; /* BX_OK or BX_ENOTFOUND */
    recipients_context place;
    recipient people[RECIPIENTS_MAX];
    int count;
} cache_entry;

struct recipients_cache {
    bx_map *entries; /* key -> cache_entry (owned) */
    long long revision;
    bool checked; /* revision read at least once */
};

static void free_entry(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    free(value);
}

static void forget(recipients_cache *c)
{
    if (c->entries) {
        bx_map_each(c->entries, free_entry, NULL);
        bx_map_free(c->entries);
    }
    c->entries = bx_map_new();
}

bx_status recipients_cache_new(recipients_cache **out, bx_error *err)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return BX_ERR(err, BX_ENOMEM, "recipients: out of memory");
    forget(*out);
    if ((*out)->entries == NULL) {
        free(*out);
        *out = NULL;
        return BX_ERR(err, BX_ENOMEM, "recipients: out of memory");
    }
    return BX_OK;
}

void recipients_cache_free(recipients_cache *c)
{
    if (c == NULL)
        return;
    if (c->entries) {
        bx_map_each(c->entries, free_entry, NULL);
        bx_map_free(c->entries);
    }
    free(c);
}

bx_status recipients_cache_check(recipients_cache *c, PGconn *db, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, "SELECT revision FROM registry.revision", 0, NULL, &res, err);
    long long rev = s == BX_OK && PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if (s != BX_OK)
        return s;
    if (!c->checked || rev != c->revision || c->entries == NULL ||
        bx_map_count(c->entries) > CACHE_ENTRIES_MAX) {
        if (c->checked && rev != c->revision)
            bx_log_info("registry revision %lld: places and staff read afresh", rev);
        forget(c);
        c->revision = rev;
        c->checked = true;
    }
    return c->entries ? BX_OK : BX_ERR(err, BX_ENOMEM, "recipients: out of memory");
}

/* Keeps e under key; on failure (out of memory) it is simply not kept. */
static void keep(recipients_cache *c, const char *key, const cache_entry *e)
{
    cache_entry *copy_of = c->entries ? malloc(sizeof(*copy_of)) : NULL;
    if (copy_of == NULL)
        return;
    *copy_of = *e;
    cache_entry *old = bx_map_get(c->entries, key);
    if (bx_map_put(c->entries, key, copy_of) != BX_OK) {
        free(copy_of);
        return;
    }
    free(old);
}

static void copy_place(recipients_context *ctx, const recipients_context *from)
{
    copy(ctx->school_id, sizeof(ctx->school_id), from->school_id);
    copy(ctx->school, sizeof(ctx->school), from->school);
    copy(ctx->township_code, sizeof(ctx->township_code), from->township_code);
    copy(ctx->county_code, sizeof(ctx->county_code), from->county_code);
    copy(ctx->county, sizeof(ctx->county), from->county);
}

bx_status recipients_cache_place(recipients_cache *c, PGconn *db, recipients_place kind,
                                 const char *key, recipients_context *ctx, bx_error *err)
{
    static const char *const what[] = {"school", "township", "county"};
    char k[64];
    snprintf(k, sizeof(k), "p%d\x1f%.40s", (int)kind, key);
    const cache_entry *e = c->entries ? bx_map_get(c->entries, k) : NULL;
    if (e == NULL) {
        cache_entry fresh;
        memset(&fresh, 0, sizeof(fresh));
        fresh.status = recipients_place_load(db, kind, key, &fresh.place, err);
        if (fresh.status != BX_OK && fresh.status != BX_ENOTFOUND)
            return fresh.status;
        keep(c, k, &fresh);
        if (fresh.status == BX_OK)
            copy_place(ctx, &fresh.place);
        return fresh.status;
    }
    if (e->status == BX_ENOTFOUND)
        return BX_ERR(err, BX_ENOTFOUND, "%s %.32s: not in the registry", what[kind], key);
    copy_place(ctx, &e->place);
    return BX_OK;
}

bx_status recipients_cache_staff(recipients_cache *c, PGconn *db, const recipients_context *ctx,
                                 const char *role, const char *staff_id, recipient *out, int max,
                                 int *count, bx_error *err)
{
    *count = 0;
    /* the key holds everything recipients_staff reads */
    char k[200];
    if ((staff_id == NULL || staff_id[0] == '\0') && strcmp(role, "homeroom_teacher") == 0)
        staff_id = ctx->homeroom_staff_id;
    if (staff_id && staff_id[0])
        snprintf(k, sizeof(k), "i\x1f%s", staff_id);
    else
        snprintf(k, sizeof(k), "r\x1f%s\x1f%s\x1f%s\x1f%s", role, ctx->school_id,
                 ctx->township_code, ctx->county_code);
    const cache_entry *e = c->entries ? bx_map_get(c->entries, k) : NULL;
    cache_entry fresh;
    if (e == NULL) {
        memset(&fresh, 0, sizeof(fresh));
        bx_status s = recipients_staff(db, ctx, role, staff_id, fresh.people, RECIPIENTS_MAX,
                                       &fresh.count, err);
        if (s != BX_OK)
            return s;
        keep(c, k, &fresh);
        e = &fresh;
    }
    for (int i = 0; i < e->count && i < max; i++)
        out[(*count)++] = e->people[i];
    return BX_OK;
}
