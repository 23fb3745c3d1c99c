/* reports: 辍学率 and 巩固率, the seeds' worked example, thresholds, aggregation, n/a, formats. */
#include "bx_test.h"
#include "reports.h"

#include <cjson/cJSON.h>
#include <math.h>

static reports_class_counts cls(const char *county, const char *township, const char *school,
                                const char *class_id, int grade, int start, int now, int dropped,
                                int out, int in)
{
    return (reports_class_counts){county, township, school, class_id, grade, start,
                                  now,    dropped,  out,    in,       0,     0};
}

BX_TEST(seeds_worked_example_is_100_percent)
{
    /* 80 students last autumn, 78 this spring, 3 transferred out, 1 in: 78 / (80 - 3 + 1). */
    reports_class_counts c = cls("990001", "990001001", "S1", "C1", 4, 80, 78, 0, 3, 1);
    reports_row *rows = NULL;
    size_t n = 0;
    bx_error err = {0};
    REQUIRE(reports_aggregate(&c, 1, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_OK);
    REQUIRE(n == 1);
    CHECK(rows[0].all.retention_valid);
    CHECK(fabs(rows[0].all.retention_rate - 1.0) < 1e-12);
    char text[16];
    reports_rate_text(rows[0].all.retention_valid, rows[0].all.retention_rate, text);
    CHECK_STR(text, "100.00%");
    reports_rate_text(rows[0].all.dropout_valid, rows[0].all.dropout_rate, text);
    CHECK_STR(text, "0.00%");
    CHECK_INT(rows[0].flags, 0);
    free(rows);
}

typedef struct {
    const char *name;
    int grade, start, dropped;
    unsigned class_flags;
} threshold_row;

BX_TEST(thresholds_flag_classes)
{
    static const threshold_row table[] = {
        {"primary at 1% misses the target, does not fail", 3, 100, 1, REPORTS_FLAG_PRIMARY_OVER},
        {"primary under 1%", 3, 200, 1, 0},
        {"primary over 1% fails", 3, 100, 2, REPORTS_FLAG_PRIMARY_OVER | REPORTS_FLAG_CLASS_FAILS},
        {"junior at 2% passes its target, fails the class", 8, 100, 2, REPORTS_FLAG_CLASS_FAILS},
        {"junior at 3%", 8, 100, 3, REPORTS_FLAG_JUNIOR_OVER | REPORTS_FLAG_CLASS_FAILS},
        {"junior at 1%", 8, 100, 1, 0},
        {"empty class", 1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        reports_class_counts c = cls("990001", "990001001", "S1", "C1", table[i].grade,
                                     table[i].start, table[i].start, table[i].dropped, 0, 0);
        reports_row *rows = NULL;
        size_t n = 0;
        bx_error err = {0};
        REQUIRE(reports_aggregate(&c, 1, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_OK);
        if (rows[0].flags != table[i].class_flags)
            BX_FAIL_AT("%s: flags %u, expected %u", table[i].name, rows[0].flags,
                       table[i].class_flags);
        free(rows);
    }
}

BX_TEST(thresholds_are_parameters)
{
    reports_class_counts c = cls("990001", "990001001", "S1", "C1", 3, 100, 98, 2, 0, 0);
    reports_thresholds t;
    reports_thresholds_default(&t);
    CHECK(t.primary_target == 0.01 && t.junior_target == 0.03);
    CHECK(t.class_fail == 0.01 && t.school_fail == 0.03);
    t.primary_target = 0.05;
    t.class_fail = 0.05;
    reports_row *rows = NULL;
    size_t n = 0;
    bx_error err = {0};
    REQUIRE(reports_aggregate(&c, 1, REPORTS_CLASS, &t, &rows, &n, &err) == BX_OK);
    CHECK_INT(rows[0].flags, 0);
    free(rows);
    t.school_fail = 0.01;
    REQUIRE(reports_aggregate(&c, 1, REPORTS_SCHOOL, &t, &rows, &n, &err) == BX_OK);
    CHECK_INT(rows[0].flags, REPORTS_FLAG_SCHOOL_FAILS);
    free(rows);
}

/* Two counties, three townships, four schools (one nine-year), six classes. */
static const reports_class_counts county_fixture[] = {
    {"990001", "990001001", "SA", "SA-1", 1, 50, 50, 0, 0, 0, 0, 0},
    {"990001", "990001001", "SA", "SA-2", 6, 50, 48, 1, 1, 0, 0, 0},
    {"990001", "990001001", "SB", "SB-7", 7, 40, 36, 3, 2, 1, 0, 0},
    {"990001", "990001002", "SC", "SC-9", 9, 60, 60, 0, 0, 0, 0, 0},
    {"990002", "990002001", "SD", "SD-3", 3, 100, 99, 0, 2, 1, 0, 0},
    {"990001", "990001001", "SB", "SB-2", 2, 60, 60, 0, 0, 0, 0, 0},
};
#define FIXTURE_N (sizeof(county_fixture) / sizeof(county_fixture[0]))

BX_TEST(aggregation_by_class_school_township_county)
{
    reports_row *rows = NULL;
    size_t n = 0;
    bx_error err = {0};
    REQUIRE(reports_aggregate(county_fixture, FIXTURE_N, REPORTS_CLASS, NULL, &rows, &n, &err) ==
            BX_OK);
    CHECK_INT(n, 6);
    CHECK_STR(rows[0].id, "SA-1");
    CHECK_STR(rows[5].id, "SD-3");
    CHECK_STR(rows[0].school, "SA");
    CHECK_STR(rows[0].county, "990001");
    free(rows);

    REQUIRE(reports_aggregate(county_fixture, FIXTURE_N, REPORTS_SCHOOL, NULL, &rows, &n, &err) ==
            BX_OK);
    REQUIRE(n == 4);
    /* SB: nine-year school, classes 7 and 2: 100 at start, 3 dropped (3%, not over), junior 3/40.
     */
    const reports_row *sb = &rows[1];
    CHECK_STR(sb->id, "SB");
    CHECK_STR(sb->school, "");
    CHECK_STR(sb->township, "990001001");
    CHECK_INT(sb->classes, 2);
    CHECK_INT(sb->all.enrolled_start, 100);
    CHECK_INT(sb->all.dropped_out, 3);
    CHECK_INT(sb->junior.enrolled_start, 40);
    CHECK_INT(sb->primary.enrolled_start, 60);
    CHECK_INT(sb->flags, REPORTS_FLAG_JUNIOR_OVER);
    /* retention: 96 / (100 - 2 + 1) */
    CHECK(fabs(sb->all.retention_rate - 96.0 / 99.0) < 1e-12);
    free(rows);

    REQUIRE(reports_aggregate(county_fixture, FIXTURE_N, REPORTS_TOWNSHIP, NULL, &rows, &n, &err) ==
            BX_OK);
    REQUIRE(n == 3);
    CHECK_STR(rows[0].id, "990001001");
    CHECK_INT(rows[0].classes, 4);
    CHECK_INT(rows[0].all.enrolled_start, 200);
    CHECK_INT(rows[0].all.dropped_out, 4);
    CHECK_STR(rows[0].county, "990001");
    free(rows);

    REQUIRE(reports_aggregate(county_fixture, FIXTURE_N, REPORTS_COUNTY, NULL, &rows, &n, &err) ==
            BX_OK);
    REQUIRE(n == 2);
    CHECK_STR(rows[0].id, "990001");
    CHECK_INT(rows[0].classes, 5);
    CHECK_INT(rows[0].all.enrolled_start, 260);
    CHECK_INT(rows[0].all.enrolled_now, 254);
    CHECK_INT(rows[0].all.transferred_out, 3);
    CHECK_INT(rows[0].all.transferred_in, 1);
    CHECK(fabs(rows[0].all.retention_rate - 254.0 / 258.0) < 1e-12);
    CHECK_STR(rows[1].id, "990002");
    CHECK_INT(rows[1].flags, 0);
    free(rows);
}

BX_TEST(division_by_zero_is_na)
{
    /* A class that was empty at the start (new), and one whose transfers ate its whole base. */
    reports_class_counts c[] = {
        cls("990001", "990001001", "S1", "NEW", 1, 0, 5, 0, 0, 0),
        cls("990001", "990001001", "S1", "GONE", 2, 3, 0, 0, 3, 0),
    };
    reports_row *rows = NULL;
    size_t n = 0;
    bx_error err = {0};
    REQUIRE(reports_aggregate(c, 2, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_OK);
    REQUIRE(n == 2);
    /* sorted: GONE, NEW */
    CHECK(rows[0].all.dropout_valid);
    CHECK(!rows[0].all.retention_valid);
    CHECK(!rows[1].all.dropout_valid);
    CHECK(!rows[1].all.retention_valid); /* 0 - 0 + 0 */
    CHECK(!rows[1].junior.dropout_valid);
    bx_buf out;
    bx_buf_init(&out, 0);
    REQUIRE(reports_write_text(&out, rows, n) == BX_OK);
    CHECK_CONTAINS(out.data, "n/a");
    CHECK(strstr(out.data, "nan") == NULL && strstr(out.data, "NaN") == NULL);
    bx_buf_reset(&out);
    REQUIRE(reports_write_csv(&out, rows, n) == BX_OK);
    CHECK_CONTAINS(out.data, ",n/a,");
    CHECK(strstr(out.data, "nan") == NULL);
    bx_buf_reset(&out);
    REQUIRE(reports_write_json(&out, rows, n) == BX_OK);
    CHECK_CONTAINS(out.data, "\"retention_rate_pct\":\"n/a\"");
    cJSON *doc = cJSON_Parse(out.data);
    CHECK(doc != NULL && cJSON_GetArraySize(doc) == 2);
    cJSON_Delete(doc);
    bx_buf_free(&out);
    free(rows);
}

BX_TEST(formats_text_csv_json)
{
    reports_row *rows = NULL;
    size_t n = 0;
    bx_error err = {0};
    REQUIRE(reports_aggregate(county_fixture, FIXTURE_N, REPORTS_CLASS, NULL, &rows, &n, &err) ==
            BX_OK);
    bx_buf out;
    bx_buf_init(&out, 0);
    REQUIRE(reports_write_text(&out, rows, n) == BX_OK);
    CHECK_CONTAINS(out.data, "level");
    CHECK_CONTAINS(out.data, "retention");
    /* SB-7: 3 of 40 dropped = 7.50%, class fails and junior over target. */
    CHECK_CONTAINS(out.data, "7.50%");
    CHECK_CONTAINS(out.data, "junior_over_target class_fails");
    bx_buf_reset(&out);
    REQUIRE(reports_write_csv(&out, rows, n) == BX_OK);
    int lines = 0;
    for (const char *p = out.data; (p = strstr(p, "\r\n")) != NULL; p += 2)
        lines++;
    CHECK_INT(lines, 7);
    CHECK_CONTAINS(out.data, "level,id,school,township,county,classes,enrolled_start,");
    CHECK_CONTAINS(out.data, "class,SB-7,SB,990001001,990001,1,40,3,7.50%,2,1,36,92.31%,");
    CHECK_CONTAINS(out.data, "junior_over_target;class_fails\r\n");
    bx_buf_reset(&out);
    REQUIRE(reports_write_json(&out, rows, n) == BX_OK);
    cJSON *doc = cJSON_Parse(out.data);
    REQUIRE(doc != NULL);
    CHECK_INT(cJSON_GetArraySize(doc), 6);
    cJSON *sb7 = cJSON_GetArrayItem(doc, 3);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(sb7, "id")), "SB-7");
    cJSON *all = cJSON_GetObjectItem(sb7, "all");
    CHECK(fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(all, "dropout_rate_pct")) - 7.5) < 1e-9);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(sb7, "flags")), 2);
    cJSON_Delete(doc);
    bx_buf_free(&out);
    free(rows);
}

BX_TEST(bad_input_is_named)
{
    reports_row *rows = NULL;
    size_t n = 0;
    bx_error err = {0};
    reports_class_counts c = cls("990001", "990001001", "S1", "C1", 10, 1, 1, 0, 0, 0);
    CHECK(reports_aggregate(&c, 1, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_EINVAL);
    CHECK_CONTAINS(err.msg, "C1");
    c = cls("990001", "990001001", "S1", "C1", 3, -1, 1, 0, 0, 0);
    CHECK(reports_aggregate(&c, 1, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_EINVAL);
    c = cls("990001", "", "S1", "C1", 3, 1, 1, 0, 0, 0);
    CHECK(reports_aggregate(&c, 1, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_EINVAL);
    reports_class_counts twice[] = {cls("990001", "990001001", "S1", "C1", 3, 1, 1, 0, 0, 0),
                                    cls("990001", "990001001", "S1", "C1", 3, 1, 1, 0, 0, 0)};
    CHECK(reports_aggregate(twice, 2, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_EINVAL);
    CHECK_CONTAINS(err.msg, "twice");
    CHECK(rows == NULL);
    REQUIRE(reports_aggregate(NULL, 0, REPORTS_COUNTY, NULL, &rows, &n, &err) == BX_OK);
    CHECK_INT(n, 0);
    free(rows);
}

/* ---- roll calls (issue 15, item 4) ---- */

/* The flag rule: roll calls on fewer than 90% of the school days due. */
BX_TEST(rollcall_flag_rule_from_a_table)
{
    static const struct {
        long due, got;
        bool flagged;
    } table[] = {
        {10, 10, false}, {10, 9, false},  {10, 8, true},    {9, 8, true}, /* 88.9% */
        {20, 18, false}, {20, 17, true},  {100, 90, false}, {100, 89, true},
        {1, 1, false},   {1, 0, true},    {3, 2, true},     {0, 0, false}, /* nothing due */
        {22, 19, true},  {22, 20, false},                                  /* 90.9% */
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (reports_rollcall_incomplete(table[i].due, table[i].got, 0.90) != table[i].flagged)
            BX_FAIL_AT("%ld of %ld days: expected %s", table[i].got, table[i].due,
                       table[i].flagged ? "flagged" : "not flagged");
    /* the threshold is a parameter */
    CHECK(!reports_rollcall_incomplete(10, 8, 0.80));
    CHECK(reports_rollcall_incomplete(10, 9, 0.95));
}

static bx_date day_of(const char *s)
{
    bx_date d = BX_DATE_NONE;
    if (bx_date_parse(s, &d) != BX_OK)
        BX_FAIL_AT("test date %s does not parse", s);
    return d;
}

/* The autumn term of 2026 with the national holidays (Mid-Autumn 09-25, National Day 10-01..07;
 * make-up Sunday 09-20 and Saturday 10-10). */
static bx_calendar *autumn(void)
{
    bx_calendar *cal = bx_calendar_new();
    REQUIRE(cal != NULL);
    bx_error err = {0};
    REQUIRE(bx_calendar_add_term(cal, "2026-autumn", day_of("2026-09-01"), day_of("2027-01-22"),
                                 &err) == BX_OK);
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv", src ? src : ".");
    REQUIRE(bx_calendar_load_days_csv(cal, path, &err) == BX_OK);
    return cal;
}

/* Days due and reported, by the school's calendar: the days that are over, and today once
 * reported; days without school, outside the period or ahead of today do not count. */
BX_TEST(rollcall_days_from_the_calendar)
{
    /* September 2026's 22 school days: 1-4, 7-11, 14-18, Sunday 20, 21-24, 28-30 */
    static const char *const september[] = {
        "2026-09-01", "2026-09-02", "2026-09-03", "2026-09-04", "2026-09-07", "2026-09-08",
        "2026-09-09", "2026-09-10", "2026-09-11", "2026-09-14", "2026-09-15", "2026-09-16",
        "2026-09-17", "2026-09-18", "2026-09-20", "2026-09-21", "2026-09-22", "2026-09-23",
        "2026-09-24", "2026-09-28", "2026-09-29", "2026-09-30"};
    static const struct {
        const char *name, *first, *last, *today;
        const char *skip;  /* September's days left out of the roll calls, ','-separated */
        const char *extra; /* more days sent, ','-separated */
        int due, got;
        bool flagged;
    } table[] = {
        {"every day of September", "2026-09-01", "2026-09-30", "2026-10-12", "", "", 22, 22, false},
        {"three days missed", "2026-09-01", "2026-09-30", "2026-10-12",
         "2026-09-08,2026-09-20,2026-09-30", "", 22, 19, true},
        {"two days missed", "2026-09-01", "2026-09-30", "2026-10-12", "2026-09-08,2026-09-20", "",
         22, 20, false},
        {"a Saturday, a holiday and a repeat count nothing", "2026-09-01", "2026-09-30",
         "2026-10-12", "2026-09-08,2026-09-20,2026-09-30", "2026-09-05,2026-09-25,2026-09-01", 22,
         19, true},
        {"today counts once reported", "2026-09-01", "2026-09-30", "2026-09-08", "", "", 6, 6,
         false},
        {"today not reported yet is not due", "2026-09-01", "2026-09-30", "2026-09-08",
         "2026-09-08", "", 5, 5, false},
        {"a day ahead of today counts nothing", "2026-09-01", "2026-09-07", "2026-09-04",
         "2026-09-04", "2026-09-07", 3, 3, false},
        {"the period not begun", "2026-10-08", "2026-10-31", "2026-09-30", "", "", 0, 0, false},
        {"across National Day: the make-up Saturday counts", "2026-09-28", "2026-10-10",
         "2026-10-12", "", "", 6, 3, true}, /* 28-30 sent; 10-08, 10-09, 10-10 due, none sent */
    };
    bx_calendar *cal = autumn();
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        bx_date days[64];
        size_t n = 0;
        for (size_t k = 0; k < sizeof(september) / sizeof(september[0]); k++)
            if (strstr(table[i].skip, september[k]) == NULL)
                days[n++] = day_of(september[k]);
        char extra[128];
        snprintf(extra, sizeof(extra), "%s", table[i].extra);
        for (char *tok = strtok(extra, ","); tok; tok = strtok(NULL, ","))
            days[n++] = day_of(tok);
        int due = -1, got = -1;
        reports_rollcall_days(cal, day_of(table[i].first), day_of(table[i].last),
                              day_of(table[i].today), days, n, &due, &got);
        if (due != table[i].due || got != table[i].got)
            BX_FAIL_AT("%s: %d of %d days, expected %d of %d", table[i].name, got, due,
                       table[i].got, table[i].due);
        if (reports_rollcall_incomplete(due, got, 0.90) != table[i].flagged)
            BX_FAIL_AT("%s: flag", table[i].name);
    }
    int due = -1, got = -1;
    reports_rollcall_days(NULL, day_of("2026-09-01"), day_of("2026-09-30"), day_of("2026-10-12"),
                          NULL, 0, &due, &got);
    CHECK(due == 0 && got == 0); /* no calendar: nothing known */
    bx_calendar_free(cal);
}

/* A class under 90% is flagged; the rows above count it; the formats carry the rate. */
BX_TEST(rollcall_rate_in_rows_and_formats)
{
    reports_class_counts c[] = {
        cls("990001", "990001001", "S1", "C1", 3, 40, 40, 0, 0, 0),
        cls("990001", "990001001", "S1", "C2", 4, 40, 40, 0, 0, 0),
        cls("990001", "990001001", "S2", "C3", 5, 40, 40, 0, 0, 0),
        cls("990001", "990001001", "S2", "C4", 5, 0, 0, 0, 0, 0), /* nothing known */
    };
    c[0].rollcall_due = 22, c[0].rollcall_reported = 22;
    c[1].rollcall_due = 22, c[1].rollcall_reported = 19; /* 86.36% */
    c[2].rollcall_due = 20, c[2].rollcall_reported = 18; /* 90.00% */
    reports_row *rows = NULL;
    size_t n = 0;
    bx_error err = {0};
    REQUIRE(reports_aggregate(c, 4, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_OK);
    REQUIRE(n == 4);
    CHECK_INT(rows[0].flags, 0);
    CHECK_INT(rows[1].flags, REPORTS_FLAG_ROLLCALL_INCOMPLETE);
    CHECK_INT(rows[2].flags, 0);
    CHECK(!rows[3].rollcall_valid);
    bx_buf out;
    bx_buf_init(&out, 0);
    REQUIRE(reports_write_text(&out, rows, n) == BX_OK);
    CHECK_CONTAINS(out.data, "rollcall");
    CHECK_CONTAINS(out.data, "86.36%");
    CHECK_CONTAINS(out.data, "rollcall_incomplete");
    free(rows);
    REQUIRE(reports_aggregate(c, 4, REPORTS_SCHOOL, NULL, &rows, &n, &err) == BX_OK);
    REQUIRE(n == 2);
    CHECK_INT(rows[0].rollcall_due, 44);
    CHECK_INT(rows[0].rollcall_reported, 41);
    CHECK_INT(rows[0].rollcall_incomplete, 1);
    CHECK_INT(rows[0].flags, 0); /* the class is flagged, the school counts it */
    CHECK_INT(rows[1].rollcall_incomplete, 0);
    bx_buf_reset(&out);
    REQUIRE(reports_write_csv(&out, rows, n) == BX_OK);
    CHECK_CONTAINS(out.data, ",rollcall_days_due,rollcall_days_reported,rollcall_rate,"
                             "rollcall_incomplete_classes,flags\r\n");
    CHECK_CONTAINS(out.data, ",44,41,93.18%,1,\r\n");
    bx_buf_reset(&out);
    REQUIRE(reports_write_json(&out, rows, n) == BX_OK);
    cJSON *doc = cJSON_Parse(out.data);
    REQUIRE(doc != NULL);
    cJSON *rc = cJSON_GetObjectItem(cJSON_GetArrayItem(doc, 0), "rollcall");
    CHECK_INT((int)cJSON_GetNumberValue(cJSON_GetObjectItem(rc, "days_due")), 44);
    CHECK(fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(rc, "rate_pct")) - 93.18) < 1e-9);
    CHECK_INT((int)cJSON_GetNumberValue(cJSON_GetObjectItem(rc, "incomplete_classes")), 1);
    cJSON_Delete(doc);
    /* an upward report's figures */
    bx_buf_reset(&out);
    reports_area_cases cases = {.suspected = 2, .dropout = 1, .returned = 5, .returns = 3};
    REQUIRE(reports_write_figures_json(&out, &rows[0], &cases) == BX_OK);
    CHECK_STR(out.data, "{\"classes\":2,\"enrolled_start\":80,\"enrolled_now\":80,"
                        "\"dropped_out\":0,\"transferred_out\":0,\"transferred_in\":0,"
                        "\"dropout_rate_pct\":0.00,\"retention_rate_pct\":100.00,"
                        "\"ledger\":{\"suspected\":2,\"dropout\":1,\"returned\":5},\"returns\":3,"
                        "\"rollcall\":{\"days_due\":44,\"days_reported\":41,\"rate_pct\":93.18,"
                        "\"incomplete_classes\":1}}");
    bx_buf_reset(&out);
    REQUIRE(reports_write_figures_json(&out, NULL, &cases) == BX_OK);
    CHECK_CONTAINS(out.data, "\"dropout_rate_pct\":\"n/a\"");
    bx_buf_free(&out);
    free(rows);
    /* reported beyond due is refused, naming the class */
    c[3].rollcall_reported = 1;
    CHECK(reports_aggregate(c, 4, REPORTS_CLASS, NULL, &rows, &n, &err) == BX_EINVAL);
    CHECK_CONTAINS(err.msg, "C4");
}
