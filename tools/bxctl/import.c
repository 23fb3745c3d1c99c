/* bxctl import: registry CSV files into PostgreSQL. Every bad row is reported by file, line and
 * field, and nothing is imported from a file that has one. */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_csv.h"
#include "bx_json.h"
#include "bx_map.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES ((size_t)512 << 20)
#define MAX_REPORTED   200

typedef enum {
    V_ID,
    V_TEXT,
    V_PRIVATE_TEXT, /* personal data: never echoed in messages */
    V_CODE6,
    V_CODE9,
    V_ENUM,
    V_DATE,
    V_GRADE,
    V_PHONE,
    V_NATIONAL_ID,
    V_STUDENT_NUMBER, /* 学籍号: G or L and an 18-character id number */
    V_FLAGS,
    V_BOOL,
    V_TERM_CODE
} vtype;

struct column {
    const char *name;
    bool required;
    vtype type;
    const char *const *values; /* V_ENUM and V_FLAGS */
    size_t max_len;
};

struct ref {
    const char *column;
    const char *exists_sql; /* a condition on r.<column>, e.g. registry.school s WHERE s.id = r.x */
    const char *what;
};

struct kind {
    const char *name;
    const char *file; /* name looked for by --dir */
    const struct column *cols;
    const char *key; /* column unique within a file, or NULL */
    const struct ref *refs;
    const char *const *checks; /* extra SQL returning (line, message) for bad rows */
    const char *apply;         /* SQL that moves import_rows into the registry */
};

static const char *const stages[] = {"primary", "junior", "nine_year", NULL};
static const char *const roles[] = {
    "homeroom_teacher", "subject_teacher", "principal", "academic_office",
    "township_officer", "county_officer",  NULL};
static const char *const sexes[] = {"M", "F", NULL};
static const char *const statuses[] = {
    "enrolled", "transferred_out", "suspended",      "dropped_out",
    "returned", "graduated",       "home_education", NULL};
static const char *const flags[] = {"registered_poor",
                                    "minimum_subsistence",
                                    "extreme_poverty",
                                    "orphan",
                                    "disability_sight",
                                    "disability_hearing",
                                    "disability_intellectual",
                                    "disability_other",
                                    "left_behind",
                                    "single_parent",
                                    "migrant",
                                    "learning_difficulty",
                                    "wavering",
                                    "earlier_dropout",
                                    "monastery",
                                    NULL};
static const char *const relations[] = {"father",   "mother", "grandparent", "sibling",
                                        "relative", "other",  NULL};
static const char *const entries[] = {"term", "holiday", "makeup_workday", "closure", NULL};
static const char *const day_kinds[] = {"holiday", "makeup_workday", "closure", NULL};

static const struct column county_cols[] = {
    {"code", true, V_CODE6, NULL, 6}, {"name", true, V_TEXT, NULL, 100}, {NULL, 0, 0, NULL, 0}};
static const struct column township_cols[] = {{"code", true, V_CODE9, NULL, 9},
                                              {"county_code", true, V_CODE6, NULL, 6},
                                              {"name", true, V_TEXT, NULL, 100},
                                              {NULL, 0, 0, NULL, 0}};
static const struct column calendar_cols[] = {
    {"calendar_id", true, V_ID, NULL, 32}, {"entry", true, V_ENUM, entries, 16},
    {"first_day", true, V_DATE, NULL, 10}, {"last_day", true, V_DATE, NULL, 10},
    {"name", false, V_TEXT, NULL, 100},    {NULL, 0, 0, NULL, 0}};
static const struct column holiday_cols[] = {{"date", true, V_DATE, NULL, 10},
                                             {"kind", true, V_ENUM, day_kinds, 16},
                                             {"name", false, V_TEXT, NULL, 100},
                                             {NULL, 0, 0, NULL, 0}};
static const struct column school_cols[] = {
    {"school_id", true, V_ID, NULL, 32},       {"name", true, V_TEXT, NULL, 100},
    {"township_code", true, V_CODE9, NULL, 9}, {"stage", true, V_ENUM, stages, 16},
    {"calendar_id", true, V_ID, NULL, 32},     {NULL, 0, 0, NULL, 0}};
static const struct column staff_cols[] = {
    {"staff_id", true, V_ID, NULL, 32},         {"name", true, V_PRIVATE_TEXT, NULL, 64},
    {"role", true, V_ENUM, roles, 32},          {"school_id", false, V_ID, NULL, 32},
    {"township_code", false, V_CODE9, NULL, 9}, {"county_code", false, V_CODE6, NULL, 6},
    {"phone", false, V_PHONE, NULL, 11},        {NULL, 0, 0, NULL, 0}};
static const struct column class_cols[] = {{"class_id", true, V_ID, NULL, 32},
                                           {"school_id", true, V_ID, NULL, 32},
                                           {"grade", true, V_GRADE, NULL, 1},
                                           {"name", true, V_TEXT, NULL, 64},
                                           {"homeroom_staff_id", false, V_ID, NULL, 32},
                                           {NULL, 0, 0, NULL, 0}};
static const struct column student_cols[] = {{"student_id", true, V_ID, NULL, 32},
                                             {"school_id", true, V_ID, NULL, 32},
                                             {"class_id", true, V_ID, NULL, 32},
                                             {"name", true, V_PRIVATE_TEXT, NULL, 64},
                                             {"sex", false, V_ENUM, sexes, 1},
                                             {"birth_date", false, V_DATE, NULL, 10},
                                             {"national_id", false, V_NATIONAL_ID, NULL, 18},
                                             {"status", false, V_ENUM, statuses, 16},
                                             {"enrolled_on", false, V_DATE, NULL, 10},
                                             {"flags", false, V_FLAGS, flags, 400},
                                             {"student_number", false, V_STUDENT_NUMBER, NULL, 19},
                                             {NULL, 0, 0, NULL, 0}};
static const struct column guardian_cols[] = {{"student_id", true, V_ID, NULL, 32},
                                              {"name", true, V_PRIVATE_TEXT, NULL, 64},
                                              {"relation", true, V_ENUM, relations, 16},
                                              {"phone", false, V_PHONE, NULL, 11},
                                              {"address", false, V_PRIVATE_TEXT, NULL, 200},
                                              {"is_primary", false, V_BOOL, NULL, 5},
                                              {NULL, 0, 0, NULL, 0}};

/* The household register's school-age children (四查三比对), and the children of registered-poor
 * households: private lists of a county, a file replacing the lists of the counties it names. */
static const struct column household_cols[] = {
    {"national_id", true, V_NATIONAL_ID, NULL, 18}, {"name", true, V_PRIVATE_TEXT, NULL, 64},
    {"birth_date", true, V_DATE, NULL, 10},         {"township_code", true, V_CODE9, NULL, 9},
    {"address", false, V_PRIVATE_TEXT, NULL, 200},  {NULL, 0, 0, NULL, 0}};
static const struct column poverty_cols[] = {{"county_code", true, V_CODE6, NULL, 6},
                                             {"national_id", true, V_NATIONAL_ID, NULL, 18},
                                             {NULL, 0, 0, NULL, 0}};

static const struct ref no_refs[] = {{NULL, NULL, NULL}};
static const struct ref township_refs[] = {
    {"county_code", "registry.county t WHERE t.code = r.county_code", "county"},
    {NULL, NULL, NULL}};
static const struct ref school_refs[] = {
    {"township_code", "registry.township t WHERE t.code = r.township_code", "township"},
    {"calendar_id", "registry.calendar t WHERE t.id = r.calendar_id", "calendar"},
    {NULL, NULL, NULL}};
static const struct ref staff_refs[] = {
    {"school_id", "registry.school t WHERE t.id = r.school_id", "school"},
    {"township_code", "registry.township t WHERE t.code = r.township_code", "township"},
    {"county_code", "registry.county t WHERE t.code = r.county_code", "county"},
    {NULL, NULL, NULL}};
static const struct ref class_refs[] = {
    {"school_id", "registry.school t WHERE t.id = r.school_id", "school"},
    {"homeroom_staff_id", "registry.staff t WHERE t.id = r.homeroom_staff_id", "staff member"},
    {NULL, NULL, NULL}};
static const struct ref student_refs[] = {
    {"school_id", "registry.school t WHERE t.id = r.school_id", "school"},
    {"class_id", "registry.class t WHERE t.id = r.class_id", "class"},
    {NULL, NULL, NULL}};
static const struct ref guardian_refs[] = {
    {"student_id", "registry.student t WHERE t.id = r.student_id", "student"}, {NULL, NULL, NULL}};
static const struct ref household_refs[] = {
    {"township_code", "registry.township t WHERE t.code = r.township_code", "township"},
    {NULL, NULL, NULL}};
static const struct ref poverty_refs[] = {
    {"county_code", "registry.county t WHERE t.code = r.county_code", "county"},
    {NULL, NULL, NULL}};

static const char *const no_checks[] = {NULL};
static const char *const class_checks[] = {
    "SELECT r.line, 'homeroom_staff_id: staff member \"' || r.homeroom_staff_id || "
    "'\" works at another school' FROM import_rows r JOIN registry.staff t ON "
    "t.id = r.homeroom_staff_id WHERE t.school_id IS DISTINCT FROM r.school_id",
    NULL};
static const char *const student_checks[] = {
    "SELECT r.line, 'class_id: class \"' || r.class_id || '\" belongs to school \"' || "
    "t.school_id || '\", not \"' || r.school_id || '\"' FROM import_rows r JOIN registry.class t "
    "ON t.id = r.class_id WHERE t.school_id <> r.school_id",
    NULL};
static const char *const calendar_checks[] = {
    "SELECT r.line, 'first_day: term \"' || r.name || '\" overlaps term \"' || o.code || '\"' "
    "FROM import_rows r JOIN registry.calendar_term o ON o.calendar_id = r.calendar_id "
    "AND o.code <> r.name AND daterange(o.first_day, o.last_day, '[]') && "
    "daterange(r.first_day::date, r.last_day::date, '[]') WHERE r.entry = 'term'",
    NULL};

static const struct kind kinds[] = {
    {"counties", "counties.csv", county_cols, "code", no_refs, no_checks,
     "INSERT INTO registry.county (code, name) SELECT code, name FROM import_rows "
     "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name"},
    {"townships", "townships.csv", township_cols, "code", township_refs, no_checks,
     "INSERT INTO registry.township (code, county_code, name) SELECT code, county_code, name "
     "FROM import_rows ON CONFLICT (code) DO UPDATE SET county_code = EXCLUDED.county_code, "
     "name = EXCLUDED.name"},
    {"calendar", "calendar.csv", calendar_cols, NULL, no_refs, calendar_checks,
     "INSERT INTO registry.calendar (id, name) SELECT DISTINCT calendar_id, calendar_id "
     "FROM import_rows ON CONFLICT (id) DO NOTHING;"
     "INSERT INTO registry.calendar_term (calendar_id, code, first_day, last_day) "
     "SELECT calendar_id, name, first_day::date, last_day::date FROM import_rows "
     "WHERE entry = 'term' ON CONFLICT (calendar_id, code) DO UPDATE SET "
     "first_day = EXCLUDED.first_day, last_day = EXCLUDED.last_day;"
     "INSERT INTO registry.calendar_day (calendar_id, day, kind, name) "
     "SELECT calendar_id, d::date, entry, name FROM import_rows, "
     "generate_series(first_day::date, last_day::date, interval '1 day') d "
     "WHERE entry <> 'term' ON CONFLICT (calendar_id, day) DO UPDATE SET "
     "kind = EXCLUDED.kind, name = EXCLUDED.name"},
    {"holidays", "holidays.csv", holiday_cols, "date", no_refs, no_checks,
     "INSERT INTO registry.calendar_day (calendar_id, day, kind, name) "
     "SELECT 'national', date::date, kind, name FROM import_rows "
     "ON CONFLICT (calendar_id, day) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name"},
    {"schools", "schools.csv", school_cols, "school_id", school_refs, no_checks,
     "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) "
     "SELECT school_id, name, township_code, stage, calendar_id FROM import_rows "
     "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, township_code = "
     "EXCLUDED.township_code, stage = EXCLUDED.stage, calendar_id = EXCLUDED.calendar_id"},
    {"staff", "staff.csv", staff_cols, "staff_id", staff_refs, no_checks,
     "INSERT INTO registry.staff (id, name, role, school_id, township_code, county_code, phone) "
     "SELECT staff_id, name, role, NULLIF(school_id, ''), NULLIF(township_code, ''), "
     "NULLIF(county_code, ''), NULLIF(phone, '') FROM import_rows "
     "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role, "
     "school_id = EXCLUDED.school_id, township_code = EXCLUDED.township_code, "
     "county_code = EXCLUDED.county_code, phone = EXCLUDED.phone"},
    {"classes", "classes.csv", class_cols, "class_id", class_refs, class_checks,
     "INSERT INTO registry.class (id, school_id, grade, name, homeroom_staff_id) "
     "SELECT class_id, school_id, grade::smallint, name, NULLIF(homeroom_staff_id, '') "
     "FROM import_rows ON CONFLICT (id) DO UPDATE SET school_id = EXCLUDED.school_id, "
     "grade = EXCLUDED.grade, name = EXCLUDED.name, homeroom_staff_id = "
     "EXCLUDED.homeroom_staff_id"},
    {"students", "students.csv", student_cols, "student_id", student_refs, student_checks,
     "INSERT INTO registry.student (id, school_id, class_id, status, enrolled_on) "
     "SELECT student_id, school_id, class_id, coalesce(NULLIF(status, ''), 'enrolled'), "
     "NULLIF(enrolled_on, '')::date FROM import_rows ON CONFLICT (id) DO UPDATE SET "
     "school_id = EXCLUDED.school_id, class_id = EXCLUDED.class_id, status = EXCLUDED.status, "
     "enrolled_on = EXCLUDED.enrolled_on;"
     "INSERT INTO registry.student_private (student_id, name, sex, birth_date, national_id, "
     "flags, student_number) SELECT student_id, name, NULLIF(sex, ''), NULLIF(birth_date, "
     "'')::date, NULLIF(national_id, ''), CASE WHEN flags = '' THEN '{}'::text[] ELSE "
     "string_to_array(flags, ';') END, NULLIF(student_number, '') FROM import_rows "
     "ON CONFLICT (student_id) DO UPDATE SET name = EXCLUDED.name, sex = EXCLUDED.sex, "
     "birth_date = EXCLUDED.birth_date, national_id = EXCLUDED.national_id, "
     "flags = EXCLUDED.flags, student_number = EXCLUDED.student_number"},
    {"guardians", "guardians.csv", guardian_cols, NULL, guardian_refs, no_checks,
     "DELETE FROM registry.guardian WHERE student_id IN (SELECT student_id FROM import_rows);"
     "INSERT INTO registry.guardian (student_id, name, relation, phone, address, is_primary) "
     "SELECT student_id, name, relation, NULLIF(phone, ''), NULLIF(address, ''), "
     "coalesce(NULLIF(is_primary, '')::boolean, false) FROM import_rows ORDER BY line"},
    /* a child keeps its key (hh-<county>-<n>, the subject of its cases) while its id number
     * stays in the county's list */
    {"household", "household.csv", household_cols, "national_id", household_refs, no_checks,
     "DELETE FROM registry.household_child h WHERE h.county_code IN (SELECT DISTINCT "
     "substr(township_code, 1, 6) FROM import_rows) AND NOT EXISTS (SELECT 1 FROM import_rows r "
     "WHERE r.national_id = h.national_id AND substr(r.township_code, 1, 6) = h.county_code);"
     "INSERT INTO registry.household_child (county_code, township_code, national_id, name, "
     "birth_date, address) SELECT substr(township_code, 1, 6), township_code, national_id, name, "
     "birth_date::date, NULLIF(address, '') FROM import_rows ORDER BY line ON CONFLICT "
     "(county_code, national_id) DO UPDATE SET township_code = EXCLUDED.township_code, "
     "name = EXCLUDED.name, birth_date = EXCLUDED.birth_date, address = EXCLUDED.address, "
     "imported_at = now()"},
    {"poverty", "poverty.csv", poverty_cols, "national_id", poverty_refs, no_checks,
     "DELETE FROM registry.poverty_child WHERE county_code IN (SELECT DISTINCT county_code FROM "
     "import_rows);"
     "INSERT INTO registry.poverty_child (county_code, national_id) SELECT county_code, "
     "national_id FROM import_rows ON CONFLICT DO NOTHING"},
};
#define KIND_COUNT (sizeof(kinds) / sizeof(kinds[0]))

struct report {
    const char *file;
    int errors;
};

static void bad_row(struct report *rep, long line, const char *fmt, ...) BX_PRINTF(3, 4);
static void bad_row(struct report *rep, long line, const char *fmt, ...)
{
    if (rep->errors++ >= MAX_REPORTED)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        fprintf(stderr, "%s:%ld: %s\n", rep->file, line, msg);
    else
        fprintf(stderr, "%s: %s\n", rep->file, msg);
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return strlen(s) == n;
}

static bool in_list(const char *v, size_t len, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == len && strncmp(list[i], v, len) == 0)
            return true;
    return false;
}

/* GB 11643 check character (ISO 7064 MOD 11-2). */
static bool national_id_valid(const char *s)
{
    static const int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    if (strlen(s) != 18)
        return false;
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        sum += (s[i] - '0') * weights[i];
    }
    return "10X98765432"[sum % 11] == s[17];
}

static void list_values(const char *const *list, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; list[i] && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", list[i]);
}

/* A V_ENUM value: one of the column's values. */
static bool check_enum(const struct column *c, const char *v, char *msg, size_t size)
{
    if (in_list(v, strlen(v), c->values))
        return true;
    char allowed[400];
    list_values(c->values, allowed, sizeof(allowed));
    snprintf(msg, size, "%s: expected one of %s, got \"%.40s\"", c->name, allowed, v);
    return false;
}

/* A V_FLAGS value: known flags separated by ';'. */
static bool check_flags(const struct column *c, const char *v, char *msg, size_t size)
{
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ";");
        if (!in_list(p, n, c->values)) {
            char allowed[400];
            list_values(c->values, allowed, sizeof(allowed));
            snprintf(msg, size, "%s: unknown flag \"%.*s\" (known: %s)", c->name,
                     (int)(n > 40 ? 40 : n), p, allowed);
            return false;
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return true;
}

/* Whether v (len bytes, not empty) has the form of the column's type. V_ENUM, V_FLAGS and the
 * texts are checked by check_value itself. */
static bool well_formed(const struct column *c, const char *v, size_t len)
{
    bx_date d;
    switch (c->type) {
    case V_ID:
        return bx_id_valid(v);
    case V_CODE6:
        return all_digits(v, 6);
    case V_CODE9:
        return all_digits(v, 9);
    case V_DATE:
        return bx_date_parse(v, &d) == BX_OK;
    case V_GRADE:
        return len == 1 && v[0] >= '1' && v[0] <= '9';
    case V_PHONE:
        return all_digits(v, 11) && v[0] == '1' && v[1] >= '3';
    case V_NATIONAL_ID:
        return national_id_valid(v);
    case V_STUDENT_NUMBER:
        return len == 19 && (v[0] == 'G' || v[0] == 'L') && national_id_valid(v + 1);
    case V_BOOL:
        return strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
    default:
        return true;
    }
}

/* What a value of the column's type must look like, for a value that does not; personal data
 * (phones, id numbers) is never repeated. */
static void malformed(const struct column *c, const char *v, char *msg, size_t size)
{
    switch (c->type) {
    case V_ID:
        snprintf(msg, size, "%s: \"%.40s\" is not an id (1 to 32 of A-Z a-z 0-9 _ -)", c->name, v);
        break;
    case V_CODE6:
    case V_CODE9:
        snprintf(msg, size, "%s: expected a %d-digit administrative code, got \"%.20s\"", c->name,
                 c->type == V_CODE6 ? 6 : 9, v);
        break;
    case V_DATE:
        snprintf(msg, size, "%s: expected a date YYYY-MM-DD, got \"%.20s\"", c->name, v);
        break;
    case V_GRADE:
        snprintf(msg, size, "%s: expected a grade from 1 to 9, got \"%.20s\"", c->name, v);
        break;
    case V_PHONE:
        snprintf(msg, size, "%s: not a mainland mobile number (11 digits starting 13-19)", c->name);
        break;
    case V_NATIONAL_ID:
        snprintf(msg, size, "%s: not a valid 18-character id number (check digit)", c->name);
        break;
    case V_STUDENT_NUMBER:
        snprintf(msg, size,
                 "%s: not a national student number (学籍号: G or L, then an 18-character id "
                 "number with its check digit)",
                 c->name);
        break;
    default:
        snprintf(msg, size, "%s: expected true or false, got \"%.20s\"", c->name, v);
        break;
    }
}

/* Validates one value; on error writes a message that never repeats personal data. */
static bool check_value(const struct column *c, const char *v, char *msg, size_t size)
{
    size_t len = strlen(v);
    if (len == 0) {
        if (c->required)
            snprintf(msg, size, "%s: is required", c->name);
        return !c->required;
    }
    if (!bx_utf8_valid(v, len)) {
        snprintf(msg, size, "%s: invalid UTF-8", c->name);
        return false;
    }
    switch (c->type) {
    case V_ENUM:
        return check_enum(c, v, msg, size);
    case V_FLAGS:
        return check_flags(c, v, msg, size);
    case V_TERM_CODE:
    case V_TEXT:
    case V_PRIVATE_TEXT:
        if (len > c->max_len) {
            snprintf(msg, size, "%s: longer than %zu bytes", c->name, c->max_len);
            return false;
        }
        return true;
    default:
        if (well_formed(c, v, len))
            return true;
        malformed(c, v, msg, size);
        return false;
    }
}

/* Rules between columns of one row. */
static void check_row(const struct kind *k, const char **vals, long line, struct report *rep)
{
    if (strcmp(k->name, "townships") == 0 && strncmp(vals[0], vals[1], 6) != 0)
        bad_row(rep, line, "code: township %s does not start with its county code %s", vals[0],
                vals[1]);
    if (strcmp(k->name, "calendar") == 0) {
        bx_date a, b;
        if (bx_date_parse(vals[2], &a) == BX_OK && bx_date_parse(vals[3], &b) == BX_OK) {
            if (b < a)
                bad_row(rep, line, "last_day: %s is before first_day %s", vals[3], vals[2]);
            else if (b - a > 366)
                bad_row(rep, line, "last_day: an entry spans at most 366 days");
        }
        if (strcmp(vals[1], "term") == 0) {
            size_t n = strlen(vals[4]);
            bool ok = n >= 1 && n <= 16;
            for (size_t i = 0; ok && i < n; i++)
                ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
                            vals[4][i]) != NULL;
            if (!ok)
                bad_row(rep, line,
                        "name: a term needs a code of 1 to 16 of A-Z a-z 0-9 _ . - "
                        "(for example 2026-autumn)");
        }
    }
    if (strcmp(k->name, "students") == 0) {
        if (strncmp(vals[0], "hh-", 3) == 0)
            bad_row(rep, line,
                    "student_id: ids starting hh- name children of the household register "
                    "(bxctl match); choose another");
        /* a G number is the id number itself: the two must agree (an L number is temporary) */
        if (vals[10][0] == 'G' && vals[6][0] && strcmp(vals[10] + 1, vals[6]) != 0)
            bad_row(rep, line, "student_number: its id part is not the row's national_id");
    }
    if (strcmp(k->name, "household") == 0) {
        /* characters 7-14 of the id number are the birth date */
        char born[11];
        snprintf(born, sizeof(born), "%.4s-%.2s-%.2s", vals[0] + 6, vals[0] + 10, vals[0] + 12);
        if (strcmp(born, vals[2]) != 0)
            bad_row(rep, line, "birth_date: not the birth date in national_id");
    }
    if (strcmp(k->name, "staff") == 0) {
        const char *role = vals[2];
        if (strcmp(role, "township_officer") == 0 && !*vals[4])
            bad_row(rep, line, "township_code: is required for a township_officer");
        else if (strcmp(role, "county_officer") == 0 && !*vals[5])
            bad_row(rep, line, "county_code: is required for a county_officer");
        else if (strcmp(role, "township_officer") && strcmp(role, "county_officer") && !*vals[3])
            bad_row(rep, line, "school_id: is required for a %s", role);
    }
}

static bx_status copy_rows(PGconn *db, const bx_buf *rows, bx_error *err)
{
    PGresult *res = PQexec(db, "COPY import_rows FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        PQclear(res);
        return BX_ERR(err, BX_EIO, "postgresql: COPY: %s", PQerrorMessage(db));
    }
    PQclear(res);
    if (PQputCopyData(db, rows->data ? rows->data : "", (int)rows->len) != 1 ||
        PQputCopyEnd(db, NULL) != 1)
        return BX_ERR(err, BX_EIO, "postgresql: COPY: %s", PQerrorMessage(db));
    bx_status s = BX_OK;
    while ((res = PQgetResult(db)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            s = BX_ERR(err, BX_EIO, "postgresql: COPY: %s", PQresultErrorMessage(res));
        PQclear(res);
    }
    return s;
}

static bx_status append_copy_field(bx_buf *b, const char *v)
{
    bx_status s = BX_OK;
    for (const char *p = v; *p && s == BX_OK; p++) {
        switch (*p) {
        case '\\':
            s = bx_buf_append(b, "\\\\", 2);
            break;
        case '\t':
            s = bx_buf_append(b, "\\t", 2);
            break;
        case '\n':
            s = bx_buf_append(b, "\\n", 2);
            break;
        case '\r':
            s = bx_buf_append(b, "\\r", 2);
            break;
        default:
            s = bx_buf_append(b, p, 1);
        }
    }
    return s;
}

/* Runs a query of (line, message) rows and reports each. */
static bx_status report_query(PGconn *db, const char *sql, struct report *rep, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, sql, 0, NULL, &res, err);
    if (s != BX_OK)
        return s;
    for (int i = 0; i < PQntuples(res); i++)
        bad_row(rep, strtol(PQgetvalue(res, i, 0), NULL, 10), "%s", PQgetvalue(res, i, 1));
    PQclear(res);
    return BX_OK;
}

/* A file being read: its kind, the header, the keys seen, and the checked rows in COPY text
 * format (line, then one column each). */
struct import {
    const struct kind *k;
    size_t ncols, key_col; /* key_col: the index of k->key */
    bx_csv_header header;
    bx_map *keys; /* key value -> first line */
    bx_buf rows;
    long data_rows;
    struct report rep;
};

/* Reads the header row and maps it to the kind's columns. */
static bx_status read_header(struct import *im, bx_csv *csv, const char *path, bx_error *err)
{
    const char *known[BX_CSV_MAX_FIELDS + 1], *required[BX_CSV_MAX_FIELDS + 1];
    size_t nreq = 0;
    for (size_t i = 0; i < im->ncols; i++) {
        known[i] = im->k->cols[i].name;
        if (im->k->cols[i].required)
            required[nreq++] = im->k->cols[i].name;
    }
    known[im->ncols] = required[nreq] = NULL;
    char **fields;
    size_t nfields;
    long line;
    bx_status s = bx_csv_next(csv, &fields, &nfields, &line, err);
    if (s == BX_ENOTFOUND)
        s = BX_ERR(err, BX_EINVAL, "the file is empty (a header row is required)");
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    IFOK(s, bx_csv_map_header(fields, nfields, known, required, base, &im->header, err));
    return s;
}

/* Checks one data row and adds it to the rows to copy; a bad row is reported, not an error. */
static bx_status take_row(struct import *im, char **fields, size_t nfields, long line)
{
    im->data_rows++;
    if (nfields != im->header.nheader)
        bad_row(&im->rep, line, "expected %zu fields as in the header, found %zu",
                im->header.nheader, nfields);
    const char *vals[BX_CSV_MAX_FIELDS];
    bool row_ok = true;
    for (size_t i = 0; i < im->ncols; i++) {
        vals[i] = bx_csv_field(&im->header, fields, nfields, i);
        char msg[600];
        if (!check_value(&im->k->cols[i], vals[i], msg, sizeof(msg))) {
            bad_row(&im->rep, line, "%s", msg);
            row_ok = false;
        }
    }
    if (!row_ok)
        return BX_OK;
    check_row(im->k, vals, line, &im->rep);
    bx_status s = BX_OK;
    if (im->k->key) {
        const char *key = vals[im->key_col];
        long first = (long)(intptr_t)bx_map_get(im->keys, key);
        bool personal = im->k->cols[im->key_col].type == V_NATIONAL_ID;
        if (first && personal) /* an id number is never repeated in a message */
            bad_row(&im->rep, line, "%s: appears again (first on line %ld)", im->k->key, first);
        else if (first)
            bad_row(&im->rep, line, "%s: \"%s\" appears again (first on line %ld)", im->k->key, key,
                    first);
        else if (bx_map_put(im->keys, key, (void *)(intptr_t)line) != BX_OK)
            s = BX_ENOMEM;
    }
    if (bx_buf_printf(&im->rows, "%ld", line) != BX_OK)
        s = BX_ENOMEM;
    for (size_t i = 0; i < im->ncols && s == BX_OK; i++) {
        IFOK(s, bx_buf_append(&im->rows, "\t", 1));
        IFOK(s, append_copy_field(&im->rows, vals[i]));
    }
    IFOK(s, bx_buf_append(&im->rows, "\n", 1));
    return s;
}

/* Reads and checks every row of the file's text. */
static bx_status read_rows(struct import *im, const bx_buf *data, const char *path)
{
    bx_error err = {0};
    bx_csv *csv = NULL;
    bx_status s = bx_csv_new(data->data ? data->data : "", data->len, &csv, &err);
    IFOK(s, read_header(im, csv, path, &err));
    if (s != BX_OK)
        bad_row(&im->rep, 0, "%s", err.msg);
    while (s == BX_OK) {
        char **fields;
        size_t nfields;
        long line;
        bx_status r = bx_csv_next(csv, &fields, &nfields, &line, &err);
        if (r == BX_ENOTFOUND)
            break;
        if (r != BX_OK) {
            bad_row(&im->rep, 0, "%s", err.msg);
            s = r;
            break;
        }
        s = take_row(im, fields, nfields, line);
        if (s != BX_OK)
            bad_row(&im->rep, line, "out of memory (at most %zu MiB of rows)",
                    (MAX_FILE_BYTES * 2) >> 20);
    }
    bx_csv_free(csv);
    return s;
}

/* In the open transaction: the rows into the temporary table import_rows, whose references and
 * the kind's checks are reported. */
static bx_status stage_rows(PGconn *db, struct import *im, bx_error *err)
{
    const struct kind *k = im->k;
    bx_buf ddl;
    bx_buf_init(&ddl, 0);
    bx_status s = bx_buf_puts(&ddl, "CREATE TEMP TABLE import_rows (line int");
    for (size_t i = 0; i < im->ncols && s == BX_OK; i++)
        s = bx_buf_printf(&ddl, ", %s text", k->cols[i].name);
    IFOK(s, bx_buf_puts(&ddl, ") ON COMMIT DROP"));
    IFOK(s, bx_pg_exec(db, ddl.data, err));
    IFOK(s, copy_rows(db, &im->rows, err));
    bx_buf_free(&ddl);
    for (size_t i = 0; k->refs[i].column && s == BX_OK; i++) {
        char sql[1024];
        snprintf(sql, sizeof(sql),
                 "SELECT r.line, '%s: no %s \"' || r.%s || '\" in the registry' FROM "
                 "import_rows r WHERE r.%s <> '' AND NOT EXISTS (SELECT 1 FROM %s) "
                 "ORDER BY r.line",
                 k->refs[i].column, k->refs[i].what, k->refs[i].column, k->refs[i].column,
                 k->refs[i].exists_sql);
        s = report_query(db, sql, &im->rep, err);
    }
    for (size_t i = 0; k->checks[i] && s == BX_OK; i++)
        s = report_query(db, k->checks[i], &im->rep, err);
    return s;
}

/* Moves the checked rows into the registry in one transaction, unless a check fails. */
static void apply_rows(PGconn *db, struct import *im)
{
    bx_error err = {0};
    bx_status s = bx_pg_exec(db, "BEGIN", &err);
    IFOK(s, stage_rows(db, im, &err));
    if (s == BX_OK && im->rep.errors == 0) {
        /* the analysts' band counts (migration 0034): the registry's triggers only note the
         * students the file's statements touched, and each is synced once before the commit
         * (a file of students is two statements: its counts were computed twice) */
        s = bx_pg_exec(db, "SELECT set_config('bx.band_counts', 'deferred', true)", &err);
        IFOK(s, bx_pg_exec(db, im->k->apply, &err));
        IFOK(s, bx_pg_exec(db, "SELECT analytics.band_sync_deferred()", &err));
        IFOK(s, bx_registry_revision_bump(db, &err));
    }
    if (s == BX_OK && im->rep.errors)
        bx_pg_rollback(db); /* a bad row: nothing of the file is imported */
    else
        s = bx_pg_end(db, s, &err);
    if (s != BX_OK)
        bad_row(&im->rep, 0, "%s", err.msg);
}

static int import_file(PGconn *db, const struct kind *k, const char *path)
{
    struct import im = {.k = k, .rep = {path, 0}};
    while (k->cols[im.ncols].name)
        im.ncols++;
    while (k->key && strcmp(k->cols[im.key_col].name, k->key) != 0)
        im.key_col++;
    bx_buf data;
    bx_buf_init(&data, MAX_FILE_BYTES);
    bx_error err = {0};
    if (bx_buf_read_file(&data, path, &err) != BX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        bx_buf_free(&data);
        return 1;
    }
    bx_buf_init(&im.rows, MAX_FILE_BYTES * 2);
    im.keys = bx_map_new();
    bx_status s = read_rows(&im, &data, path);
    bx_buf_free(&data);
    bx_map_free(im.keys);
    if (im.rep.errors == 0 && s == BX_OK)
        apply_rows(db, &im);
    bx_buf_free(&im.rows);
    if (im.rep.errors) {
        if (im.rep.errors > MAX_REPORTED)
            fprintf(stderr, "%s: ... and %d more errors\n", path, im.rep.errors - MAX_REPORTED);
        fprintf(stderr, "%s: %d error%s, nothing imported from this file\n", path, im.rep.errors,
                im.rep.errors == 1 ? "" : "s");
        return 1;
    }
    printf("%s: %ld %s imported\n", path, im.data_rows, k->name);
    return 0;
}

static const struct kind *find_kind(const char *name)
{
    for (size_t i = 0; i < KIND_COUNT; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

int bxctl_import(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bxctl import <kind> <file.csv> | import --dir <folder>\n");
        return 2;
    }
    bool dir = strcmp(argv[0], "--dir") == 0;
    const struct kind *k = dir ? NULL : find_kind(argv[0]);
    if (!dir && k == NULL) {
        fprintf(stderr, "bxctl import: unknown kind \"%s\"\n", argv[0]);
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    int rc = 0, found = 0;
    if (dir) {
        for (size_t i = 0; i < KIND_COUNT; i++) {
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s", argv[1], kinds[i].file);
            FILE *f = fopen(path, "rb");
            if (f == NULL)
                continue;
            fclose(f);
            found++;
            rc |= import_file(db, &kinds[i], path);
        }
        if (found == 0) {
            fprintf(stderr, "bxctl import: no registry files in %s\n", argv[1]);
            rc = 1;
        }
    } else {
        rc = import_file(db, k, argv[1]);
    }
    PQfinish(db);
    return rc;
}
