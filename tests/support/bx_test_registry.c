/* bx_test_registry: a small registry in memory for the bx-ingest unit tests and fuzz targets, built
 * from the sample county's ids without PostgreSQL by bx_registry_from_def, so its lookups and
 * bx_id_valid are the real ones. */
#include "bx_test_registry.h"

#include <stddef.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The one calendar: two terms, National Day, a make-up Saturday and a closure. Caller frees. */
static bx_status sample_calendar(bx_calendar **out, bx_error *err)
{
    bx_calendar *c = bx_calendar_new();
    if (c == NULL)
        return BX_ERR(err, BX_ENOMEM, "registry: out of memory");
    bx_status s = bx_calendar_add_term(c, "2026-autumn", bx_date_from_ymd(2026, 9, 1),
                                       bx_date_from_ymd(2027, 1, 22), err);
    IFOK(s, bx_calendar_add_term(c, "2026-spring", bx_date_from_ymd(2026, 3, 2),
                                 bx_date_from_ymd(2026, 7, 10), err));
    for (int d = 1; d <= 7 && s == BX_OK; d++)
        s = bx_calendar_set_day(c, bx_date_from_ymd(2026, 10, d), BX_DAY_HOLIDAY);
    IFOK(s, bx_calendar_set_day(c, bx_date_from_ymd(2026, 10, 10), BX_DAY_MAKEUP_WORKDAY));
    IFOK(s, bx_calendar_set_day(c, bx_date_from_ymd(2026, 11, 20), BX_DAY_CLOSURE));
    if (s != BX_OK) {
        bx_calendar_free(c);
        return err->msg[0] ? s : BX_ERR(err, s, "registry: cannot build the sample calendar");
    }
    *out = c;
    return BX_OK;
}

bx_status bx_test_registry_new(bx_registry **out, bx_error *err)
{
    static const bx_registry_school_def schools[] = {
        {TEST_SCHOOL, "520122100", NULL, BX_STAGE_PRIMARY, "gz-2026"},
        {TEST_OTHER_SCHOOL, "520122101", NULL, BX_STAGE_PRIMARY, "gz-2026"}};
    static const bx_registry_class_def classes[] = {
        {TEST_CLASS, TEST_SCHOOL, 3, "T1001031"},
        {"C1001041", TEST_SCHOOL, 4, ""},
        {TEST_OTHER_CLASS, TEST_OTHER_SCHOOL, 1, "T1002011"}};
    /* Out of order on purpose: the class lists are sorted by the registry's own code. */
    static const bx_registry_student_def students[] = {
        {"S10010303", TEST_CLASS, "enrolled"},
        {"S10010301", TEST_CLASS, "enrolled"},
        {"S10010302", TEST_CLASS, "enrolled"},
        {"S10010304", TEST_CLASS, "enrolled"},
        {"S10010305", TEST_CLASS, "transferred_out"},
        {"S10010401", "C1001041", "enrolled"},
        {"S10020101", TEST_OTHER_CLASS, "enrolled"},
        {"S10020102", TEST_OTHER_CLASS, "enrolled"},
        {"S-orphan", NULL, "enrolled"},
    };
    *out = NULL;
    bx_calendar *calendar = NULL;
    bx_status s = sample_calendar(&calendar, err);
    if (s != BX_OK)
        return s;
    const bx_registry_calendar_def calendars[] = {{"gz-2026", calendar}};
    const bx_registry_def def = {.revision = 1,
                                 .calendars = calendars,
                                 .calendar_count = COUNT(calendars),
                                 .schools = schools,
                                 .school_count = COUNT(schools),
                                 .classes = classes,
                                 .class_count = COUNT(classes),
                                 .students = students,
                                 .student_count = COUNT(students)};
    return bx_registry_from_def(&def, out, err); /* takes the calendar */
}
