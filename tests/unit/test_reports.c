/* reports: 辍学率 and 巩固率, the seeds' worked example, thresholds, aggregation, n/a, formats. */
#include "bx_test.h"
#include "reports.h"

#include <cjson/cJSON.h>
#include <math.h>

static reports_class_counts cls(const char *county, const char *township, const char *school,
                                const char *class_id, int grade, int start, int now, int dropped,
                                int out, int in)
{
    return (reports_class_counts){county, township, school,  class_id, grade,
                                  start,  now,      dropped, out,      in};
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
    {"990001", "990001001", "SA", "SA-1", 1, 50, 50, 0, 0, 0},
    {"990001", "990001001", "SA", "SA-2", 6, 50, 48, 1, 1, 0},
    {"990001", "990001001", "SB", "SB-7", 7, 40, 36, 3, 2, 1},
    {"990001", "990001002", "SC", "SC-9", 9, 60, 60, 0, 0, 0},
    {"990002", "990002001", "SD", "SD-3", 3, 100, 99, 0, 2, 1},
    {"990001", "990001001", "SB", "SB-2", 2, 60, 60, 0, 0, 0},
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
