/* bx_test_registry: a small registry in memory for the bx-ingest unit tests and fuzz targets, built
 * from the sample county's ids without PostgreSQL. The registry's own source is compiled in here so
 * they reach its private layout; its lookups and bx_id_valid are the real ones. */
#include "../../common/bx_registry.c"

#include "bx_test_registry.h"

#define NSCHOOLS  2
#define NCLASSES  3
#define NSTUDENTS 9

static bx_status add_calendar(bx_registry *r, bx_error *err)
{
    bx_calendar *c = bx_calendar_new();
    r->calendar_list = calloc(2, sizeof(*r->calendar_list));
    if (c == NULL || r->calendar_list == NULL) {
        bx_calendar_free(c);
        return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    }
    r->calendar_list[r->calendar_count++] = c;
    bx_status s = bx_calendar_add_term(c, "2026-autumn", bx_date_from_ymd(2026, 9, 1),
                                       bx_date_from_ymd(2027, 1, 22), err);
    IFOK(s, bx_calendar_add_term(c, "2026-spring", bx_date_from_ymd(2026, 3, 2),
                                 bx_date_from_ymd(2026, 7, 10), err));
    for (int d = 1; d <= 7 && s == BX_OK; d++)
        s = bx_calendar_set_day(c, bx_date_from_ymd(2026, 10, d), BX_DAY_HOLIDAY);
    IFOK(s, bx_calendar_set_day(c, bx_date_from_ymd(2026, 10, 10), BX_DAY_MAKEUP_WORKDAY));
    IFOK(s, bx_calendar_set_day(c, bx_date_from_ymd(2026, 11, 20), BX_DAY_CLOSURE));
    IFOK(s, bx_map_put(r->calendars, "gz-2026", c));
    return s;
}

bx_status bx_test_registry_new(bx_registry **out, bx_error *err)
{
    static const struct {
        const char *id, *township;
        bx_stage stage;
    } schools[NSCHOOLS] = {{TEST_SCHOOL, "520122100", BX_STAGE_PRIMARY},
                           {TEST_OTHER_SCHOOL, "520122101", BX_STAGE_PRIMARY}};
    static const struct {
        const char *id;
        int school, grade;
        const char *homeroom;
    } classes[NCLASSES] = {{TEST_CLASS, 0, 3, "T1001031"},
                           {"C1001041", 0, 4, ""},
                           {TEST_OTHER_CLASS, 1, 1, "T1002011"}};
    /* Out of order on purpose: the class lists are sorted by the registry's own code. */
    static const struct {
        const char *id;
        int klass;
        const char *status;
    } students[NSTUDENTS] = {
        {"S10010303", 0, "enrolled"},        {"S10010301", 0, "enrolled"},
        {"S10010302", 0, "enrolled"},        {"S10010304", 0, "enrolled"},
        {"S10010305", 0, "transferred_out"}, {"S10010401", 1, "enrolled"},
        {"S10020101", 2, "enrolled"},        {"S10020102", 2, "enrolled"},
        {"S-orphan", -1, "enrolled"},
    };
    bx_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    r->revision = 1;
    r->calendars = bx_map_new();
    r->schools = bx_map_new();
    r->classes = bx_map_new();
    r->students = bx_map_new();
    r->school_list = calloc(NSCHOOLS, sizeof(*r->school_list));
    r->class_list = calloc(NCLASSES, sizeof(*r->class_list));
    r->student_list = calloc(NSTUDENTS, sizeof(*r->student_list));
    bx_status s = BX_OK;
    if (!r->calendars || !r->schools || !r->classes || !r->students || !r->school_list ||
        !r->class_list || !r->student_list)
        s = BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    IFOK(s, add_calendar(r, err));
    for (size_t i = 0; i < NSCHOOLS && s == BX_OK; i++) {
        bx_reg_school *sc = &r->school_list[r->school_count++];
        copy_id(sc->id, schools[i].id);
        snprintf(sc->township_code, sizeof(sc->township_code), "%s", schools[i].township);
        snprintf(sc->county_code, sizeof(sc->county_code), "%.6s", schools[i].township);
        sc->stage = schools[i].stage;
        sc->calendar = r->calendar_list[0];
        s = bx_map_put(r->schools, sc->id, sc);
    }
    for (size_t i = 0; i < NCLASSES && s == BX_OK; i++) {
        bx_reg_class *c = &r->class_list[r->class_count++];
        copy_id(c->id, classes[i].id);
        c->school = &r->school_list[classes[i].school];
        c->grade = classes[i].grade;
        copy_id(c->homeroom_staff_id, classes[i].homeroom);
        c->students = calloc(NSTUDENTS + 1, sizeof(*c->students));
        if (c->students == NULL)
            s = BX_ERR(err, BX_ENOMEM, "registry: out of memory");
        IFOK(s, bx_map_put(r->classes, c->id, c));
    }
    for (size_t i = 0; i < NSTUDENTS && s == BX_OK; i++) {
        bx_reg_student *st = &r->student_list[r->student_count++];
        copy_id(st->id, students[i].id);
        bx_reg_class *c = students[i].klass >= 0 ? &r->class_list[students[i].klass] : NULL;
        st->klass = c;
        st->school = c ? c->school : NULL;
        snprintf(st->status, sizeof(st->status), "%s", students[i].status);
        if (c && strcmp(st->status, "enrolled") == 0)
            c->students[c->student_count++] = st;
        s = bx_map_put(r->students, st->id, st);
    }
    for (size_t i = 0; i < r->class_count && s == BX_OK; i++)
        qsort(r->class_list[i].students, (size_t)r->class_list[i].student_count,
              sizeof(*r->class_list[i].students), cmp_student_ptr);
    if (s != BX_OK) {
        bx_registry_free(r);
        return s;
    }
    *out = r;
    return BX_OK;
}
