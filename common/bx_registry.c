/* bx_registry: loading the registry from PostgreSQL into hash maps. */
#include "bx_registry.h"
#include "bx_json.h"
#include "bx_map.h"
#include "bx_pg.h"

#include <stdlib.h>
#include <string.h>

struct bx_registry {
    long long revision;
    bx_map *calendars, *schools, *classes, *students;
    bx_calendar **calendar_list;
    size_t calendar_count;
    bx_reg_school *school_list;
    bx_reg_class *class_list;
    bx_reg_student *student_list;
    size_t school_count, class_count, student_count;
};

int bx_id_valid(const char *id)
{
    return bx_token_valid(id, BX_ID_MAX, NULL);
}

static void copy_id(char *dst, const char *src)
{
    snprintf(dst, BX_ID_MAX + 1, "%s", src);
}

void bx_registry_free(bx_registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->calendar_count; i++)
        bx_calendar_free(r->calendar_list[i]);
    free(r->calendar_list);
    for (size_t i = 0; i < r->class_count; i++)
        free(r->class_list[i].students);
    free(r->school_list);
    free(r->class_list);
    free(r->student_list);
    bx_map_free(r->calendars);
    bx_map_free(r->schools);
    bx_map_free(r->classes);
    bx_map_free(r->students);
    free(r);
}

/* An empty registry with its maps. Caller frees with bx_registry_free. */
static bx_status registry_new(bx_registry **out, bx_error *err)
{
    bx_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    r->calendars = bx_map_new();
    r->schools = bx_map_new();
    r->classes = bx_map_new();
    r->students = bx_map_new();
    if (!r->calendars || !r->schools || !r->classes || !r->students) {
        bx_registry_free(r);
        return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    }
    *out = r;
    return BX_OK;
}

/* The school, class and student lists, sized, with their counts set. */
static bx_status alloc_lists(bx_registry *r, size_t schools, size_t classes, size_t students,
                             bx_error *err)
{
    r->school_list = calloc(schools + 1, sizeof(*r->school_list));
    r->class_list = calloc(classes + 1, sizeof(*r->class_list));
    r->student_list = calloc(students + 1, sizeof(*r->student_list));
    if (!r->school_list || !r->class_list || !r->student_list)
        return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    /* Counted only once allocated: bx_registry_free walks the class list. */
    r->school_count = schools;
    r->class_count = classes;
    r->student_count = students;
    return BX_OK;
}

static bx_status query(PGconn *db, const char *sql, PGresult **res, bx_error *err)
{
    return bx_pg_query(db, sql, 0, NULL, res, err);
}

static bx_status load_calendars(PGconn *db, bx_registry *r, bx_error *err)
{
    PGresult *cals = NULL, *terms = NULL, *days = NULL;
    bx_status s = BX_OK;
    IFOK(s, query(db, "SELECT id FROM registry.calendar WHERE id <> 'national' ORDER BY id", &cals,
                  err));
    IFOK(s, query(db,
                  "SELECT calendar_id, code, first_day, last_day FROM registry.calendar_term "
                  "ORDER BY calendar_id, first_day",
                  &terms, err));
    /* National days first, so a calendar's own row for the same day replaces them. */
    IFOK(s, query(db,
                  "SELECT calendar_id, day, kind FROM registry.calendar_day "
                  "ORDER BY calendar_id <> 'national', day",
                  &days, err));
    if (s != BX_OK)
        goto out;
    r->calendar_count = (size_t)PQntuples(cals);
    r->calendar_list = calloc(r->calendar_count + 1, sizeof(*r->calendar_list));
    if (r->calendar_list == NULL) {
        s = BX_ERR(err, BX_ENOMEM, "registry: out of memory");
        goto out;
    }
    for (size_t i = 0; i < r->calendar_count && s == BX_OK; i++) {
        const char *id = PQgetvalue(cals, (int)i, 0);
        bx_calendar *c = bx_calendar_new();
        r->calendar_list[i] = c;
        if (c == NULL) {
            s = BX_ERR(err, BX_ENOMEM, "registry: out of memory");
            break;
        }
        for (int t = 0; t < PQntuples(terms) && s == BX_OK; t++) {
            if (strcmp(PQgetvalue(terms, t, 0), id) != 0)
                continue;
            bx_date first, last;
            if (bx_date_parse(PQgetvalue(terms, t, 2), &first) != BX_OK ||
                bx_date_parse(PQgetvalue(terms, t, 3), &last) != BX_OK)
                s = BX_ERR(err, BX_EINVAL, "registry: calendar %s: bad term dates", id);
            else
                s = bx_calendar_add_term(c, PQgetvalue(terms, t, 1), first, last, err);
        }
        for (int d = 0; d < PQntuples(days) && s == BX_OK; d++) {
            const char *cal = PQgetvalue(days, d, 0);
            if (strcmp(cal, id) != 0 && strcmp(cal, "national") != 0)
                continue;
            const char *kind = PQgetvalue(days, d, 2);
            bx_date day;
            if (bx_date_parse(PQgetvalue(days, d, 1), &day) != BX_OK) {
                s = BX_ERR(err, BX_EINVAL, "registry: calendar %s: bad day", id);
                break;
            }
            bx_day_kind k = strcmp(kind, "holiday") == 0          ? BX_DAY_HOLIDAY
                            : strcmp(kind, "makeup_workday") == 0 ? BX_DAY_MAKEUP_WORKDAY
                                                                  : BX_DAY_CLOSURE;
            s = bx_calendar_set_day(c, day, k);
        }
        IFOK(s, bx_map_put(r->calendars, id, c));
    }
out:
    PQclear(cals);
    PQclear(terms);
    PQclear(days);
    return s;
}

static bx_stage parse_stage(const char *s)
{
    if (strcmp(s, "primary") == 0)
        return BX_STAGE_PRIMARY;
    if (strcmp(s, "junior") == 0)
        return BX_STAGE_JUNIOR;
    return BX_STAGE_NINE_YEAR;
}

static int cmp_student_ptr(const void *a, const void *b)
{
    const bx_reg_student *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

/* Each class's list of its enrolled students, sorted by id, from the students' classes. */
static bx_status index_class_students(bx_registry *r, bx_error *err)
{
    for (size_t i = 0; i < r->student_count; i++) {
        bx_reg_student *st = &r->student_list[i];
        if (st->klass && strcmp(st->status, "enrolled") == 0)
            ((bx_reg_class *)st->klass)->student_count++;
    }
    for (size_t i = 0; i < r->class_count; i++) {
        bx_reg_class *c = &r->class_list[i];
        c->students = calloc((size_t)c->student_count + 1, sizeof(*c->students));
        if (c->students == NULL)
            return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
        c->student_count = 0;
    }
    for (size_t i = 0; i < r->student_count; i++) {
        bx_reg_student *st = &r->student_list[i];
        if (st->klass && strcmp(st->status, "enrolled") == 0) {
            bx_reg_class *c = (bx_reg_class *)st->klass;
            c->students[c->student_count++] = st;
        }
    }
    for (size_t i = 0; i < r->class_count; i++)
        qsort(r->class_list[i].students, (size_t)r->class_list[i].student_count,
              sizeof(*r->class_list[i].students), cmp_student_ptr);
    return BX_OK;
}

static bx_status load_people(PGconn *db, bx_registry *r, bx_error *err)
{
    PGresult *schools = NULL, *classes = NULL, *students = NULL;
    bx_status s = BX_OK;
    IFOK(s, query(db,
                  "SELECT s.id, s.township_code, t.county_code, s.stage, s.calendar_id "
                  "FROM registry.school s JOIN registry.township t ON t.code = s.township_code",
                  &schools, err));
    IFOK(s, query(db,
                  "SELECT id, school_id, grade, coalesce(homeroom_staff_id, '') "
                  "FROM registry.class",
                  &classes, err));
    IFOK(s, query(db, "SELECT id, class_id, status FROM registry.student", &students, err));
    if (s != BX_OK)
        goto out;
    s = alloc_lists(r, (size_t)PQntuples(schools), (size_t)PQntuples(classes),
                    (size_t)PQntuples(students), err);
    for (size_t i = 0; i < r->school_count && s == BX_OK; i++) {
        bx_reg_school *sc = &r->school_list[i];
        copy_id(sc->id, PQgetvalue(schools, (int)i, 0));
        snprintf(sc->township_code, sizeof(sc->township_code), "%s",
                 PQgetvalue(schools, (int)i, 1));
        snprintf(sc->county_code, sizeof(sc->county_code), "%s", PQgetvalue(schools, (int)i, 2));
        sc->stage = parse_stage(PQgetvalue(schools, (int)i, 3));
        sc->calendar = bx_map_get(r->calendars, PQgetvalue(schools, (int)i, 4));
        s = bx_map_put(r->schools, sc->id, sc);
    }
    for (size_t i = 0; i < r->class_count && s == BX_OK; i++) {
        bx_reg_class *c = &r->class_list[i];
        copy_id(c->id, PQgetvalue(classes, (int)i, 0));
        c->school = bx_map_get(r->schools, PQgetvalue(classes, (int)i, 1));
        c->grade = atoi(PQgetvalue(classes, (int)i, 2)); /* smallint from the database */
        copy_id(c->homeroom_staff_id, PQgetvalue(classes, (int)i, 3));
        s = bx_map_put(r->classes, c->id, c);
    }
    for (size_t i = 0; i < r->student_count && s == BX_OK; i++) {
        bx_reg_student *st = &r->student_list[i];
        copy_id(st->id, PQgetvalue(students, (int)i, 0));
        bx_reg_class *c = bx_map_get(r->classes, PQgetvalue(students, (int)i, 1));
        st->klass = c;
        st->school = c ? c->school : NULL;
        snprintf(st->status, sizeof(st->status), "%s", PQgetvalue(students, (int)i, 2));
        s = bx_map_put(r->students, st->id, st);
    }
    IFOK(s, index_class_students(r, err));
out:
    PQclear(schools);
    PQclear(classes);
    PQclear(students);
    return s;
}

bx_status bx_registry_current_revision(PGconn *db, long long *out, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = query(db, "SELECT revision FROM registry.revision", &res, err);
    if (s == BX_OK)
        *out = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return s;
}

bx_status bx_registry_revision_bump(PGconn *db, bx_error *err)
{
    return bx_pg_exec(
        db, "UPDATE registry.revision SET revision = revision + 1, changed_at = now()", err);
}

/* The registry, with its schools, classes and students (people) or its calendars alone, read in
 * one snapshot: the caller's transaction when one is open, else a read-only one of its own. */
static bx_status load(PGconn *db, bool people, bx_registry **out, bx_error *err)
{
    bx_registry *r = NULL;
    bx_status s = registry_new(&r, err);
    if (s != BX_OK)
        return s;
    bool own = PQtransactionStatus(db) == PQTRANS_IDLE;
    if (own)
        s = bx_pg_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
    IFOK(s, bx_registry_current_revision(db, &r->revision, err));
    IFOK(s, load_calendars(db, r, err));
    IFOK(s, people ? load_people(db, r, err) : alloc_lists(r, 0, 0, 0, err));
    if (own)
        s = bx_pg_end(db, s, err);
    if (s != BX_OK) {
        bx_registry_free(r);
        return s;
    }
    *out = r;
    return BX_OK;
}

bx_status bx_registry_load(PGconn *db, bx_registry **out, bx_error *err)
{
    return load(db, true, out, err);
}

bx_status bx_registry_load_calendars(PGconn *db, bx_registry **out, bx_error *err)
{
    return load(db, false, out, err);
}

/* ---- a registry from a definition in memory ---- */

/* Checks that id is a registry id not yet in map; what names the kind of entry for errors. */
static bx_status check_new_id(const bx_map *map, const char *what, const char *id, bx_error *err)
{
    if (id == NULL || !bx_id_valid(id))
        return BX_ERR(err, BX_EINVAL, "registry: %s id \"%.40s\": not a registry id", what,
                      id ? id : "(null)");
    if (bx_map_get(map, id) != NULL)
        return BX_ERR(err, BX_EINVAL, "registry: %s %s: given twice", what, id);
    return BX_OK;
}

/* Checks id as check_new_id does and copies it into the entry's own id (dst). */
static bx_status take_id(const bx_map *map, const char *what, const char *id, char *dst,
                         bx_error *err)
{
    bx_status s = check_new_id(map, what, id, err);
    if (s == BX_OK)
        copy_id(dst, id);
    return s;
}

/* Hands def's calendars to r: from here r frees every one of them, whatever happens. */
static bx_status def_calendars(bx_registry *r, const bx_registry_def *def, bx_error *err)
{
    r->calendar_list = calloc(def->calendar_count + 1, sizeof(*r->calendar_list));
    bx_status s = r->calendar_list ? BX_OK : BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    for (size_t i = 0; i < def->calendar_count; i++) {
        const bx_registry_calendar_def *d = &def->calendars[i];
        if (r->calendar_list == NULL) {
            bx_calendar_free(d->calendar);
            continue;
        }
        r->calendar_list[r->calendar_count++] = d->calendar;
        IFOK(s, check_new_id(r->calendars, "calendar", d->id, err));
        if (s == BX_OK && d->calendar == NULL)
            s = BX_ERR(err, BX_EINVAL, "registry: calendar %s: none given", d->id);
        IFOK(s, bx_map_put(r->calendars, d->id, d->calendar));
    }
    return s;
}

/* *out is the entry of map under key, the kind (school, class, calendar) that entry what id names;
 * an error when key names none, or when there is no key and the entry is required. */
static bx_status def_parent(const bx_map *map, const char *key, bool required, const char *what,
                            const char *id, const char *kind, const void **out, bx_error *err)
{
    *out = key ? bx_map_get(map, key) : NULL;
    if (*out == NULL && (key || required))
        return BX_ERR(err, BX_EINVAL, "registry: %s %s: unknown %s %.40s", what, id, kind,
                      key ? key : "(null)");
    return BX_OK;
}

static bx_status def_school(bx_registry *r, const bx_registry_school_def *d, bx_reg_school *sc,
                            bx_error *err)
{
    bx_status s = take_id(r->schools, "school", d->id, sc->id, err);
    if (s != BX_OK)
        return s;
    snprintf(sc->township_code, sizeof(sc->township_code), "%s",
             d->township_code ? d->township_code : "");
    if (d->county_code)
        snprintf(sc->county_code, sizeof(sc->county_code), "%s", d->county_code);
    else
        snprintf(sc->county_code, sizeof(sc->county_code), "%.6s", sc->township_code);
    sc->stage = d->stage;
    const void *calendar = NULL;
    s = def_parent(r->calendars, d->calendar_id, false, "school", d->id, "calendar", &calendar,
                   err);
    sc->calendar = calendar;
    IFOK(s, bx_map_put(r->schools, sc->id, sc));
    return s;
}

static bx_status def_class(bx_registry *r, const bx_registry_class_def *d, bx_reg_class *c,
                           bx_error *err)
{
    bx_status s = take_id(r->classes, "class", d->id, c->id, err);
    if (s != BX_OK)
        return s;
    const void *school = NULL;
    s = def_parent(r->schools, d->school_id, true, "class", d->id, "school", &school, err);
    if (s != BX_OK)
        return s;
    c->school = school;
    c->grade = d->grade;
    copy_id(c->homeroom_staff_id, d->homeroom_staff_id ? d->homeroom_staff_id : "");
    return bx_map_put(r->classes, c->id, c);
}

static bx_status def_student(bx_registry *r, const bx_registry_student_def *d, bx_reg_student *st,
                             bx_error *err)
{
    bx_status s = take_id(r->students, "student", d->id, st->id, err);
    if (s != BX_OK)
        return s;
    const void *klass = NULL;
    s = def_parent(r->classes, d->class_id, false, "student", d->id, "class", &klass, err);
    if (s != BX_OK)
        return s;
    const bx_reg_class *c = klass;
    st->klass = c;
    st->school = c ? c->school : NULL;
    snprintf(st->status, sizeof(st->status), "%s", d->status ? d->status : "enrolled");
    return bx_map_put(r->students, st->id, st);
}

bx_status bx_registry_from_def(const bx_registry_def *def, bx_registry **out, bx_error *err)
{
    *out = NULL;
    bx_registry *r = NULL;
    bx_status s = registry_new(&r, err);
    if (s != BX_OK) {
        for (size_t i = 0; i < def->calendar_count; i++)
            bx_calendar_free(def->calendars[i].calendar);
        return s;
    }
    r->revision = def->revision;
    s = def_calendars(r, def, err);
    IFOK(s, alloc_lists(r, def->school_count, def->class_count, def->student_count, err));
    for (size_t i = 0; i < def->school_count && s == BX_OK; i++)
        s = def_school(r, &def->schools[i], &r->school_list[i], err);
    for (size_t i = 0; i < def->class_count && s == BX_OK; i++)
        s = def_class(r, &def->classes[i], &r->class_list[i], err);
    for (size_t i = 0; i < def->student_count && s == BX_OK; i++)
        s = def_student(r, &def->students[i], &r->student_list[i], err);
    IFOK(s, index_class_students(r, err));
    if (s != BX_OK) {
        bx_registry_free(r);
        return s;
    }
    *out = r;
    return BX_OK;
}

long long bx_registry_loaded_revision(const bx_registry *r)
{
    return r->revision;
}

const bx_reg_school *bx_registry_school(const bx_registry *r, const char *id)
{
    return bx_map_get(r->schools, id);
}

const bx_reg_class *bx_registry_class(const bx_registry *r, const char *id)
{
    return bx_map_get(r->classes, id);
}

const bx_reg_student *bx_registry_student(const bx_registry *r, const char *id)
{
    return bx_map_get(r->students, id);
}

const bx_calendar *bx_registry_calendar(const bx_registry *r, const char *id)
{
    return bx_map_get(r->calendars, id);
}

size_t bx_registry_student_count(const bx_registry *r)
{
    return r->student_count;
}
