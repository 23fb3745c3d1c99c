/* bx.analytics.attendance.v1: the daily aggregate's counts and small-cell suppression from tables,
 * and its messages against the schema. */
#include "analytics.h"
#include "bx_schema_check.h"
#include "bx_test.h"

#include <stdlib.h>
#include <string.h>

/* One class's students from a count per state. */
typedef struct class_row {
    const char *klass, *school, *township;
    int grade;
    int n[6];       /* present, late, absent, sick, personal, not reported */
    int periods[2]; /* students with unexcused periods, periods each */
} class_row;

static size_t students_of(const class_row *rows, size_t nrows, score_att_student *out)
{
    size_t k = 0;
    for (size_t r = 0; r < nrows; r++)
        for (int st = 0; st < 6; st++)
            for (int i = 0; i < rows[r].n[st]; i++) {
                out[k] = (score_att_student){rows[r].klass,
                                             rows[r].school,
                                             rows[r].township,
                                             "440105",
                                             rows[r].grade,
                                             (score_att_state)st,
                                             0};
                if (st == SCORE_ATT_PRESENT && i < rows[r].periods[0])
                    out[k].unexcused_periods = rows[r].periods[1];
                k++;
            }
    return k;
}

static const score_att_place *place(const score_att_place *p, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].code, code) == 0)
            return &p[i];
    return NULL;
}

static void aggregate(const class_row *rows, size_t nrows, score_att_place **places, size_t *n)
{
    score_att_student *st = calloc(2000, sizeof(*st));
    REQUIRE(st != NULL);
    size_t k = students_of(rows, nrows, st);
    bx_error err = {0};
    REQUIRE(score_attendance_aggregate(st, k, places, n, &err) == BX_OK);
    free(st);
}

BX_TEST(attendance_counts_partition_the_enrolled)
{
    /* Big cells everywhere: nothing is suppressed, every level sums its classes. */
    static const class_row rows[] = {
        {"c1", "s1", "440105001", 3, {20, 6, 7, 5, 6, 8}, {5, 2}},
        {"c2", "s1", "440105001", 4, {30, 5, 5, 5, 5, 5}, {5, 1}},
        {"c3", "s2", "440105002", 7, {25, 9, 6, 7, 8, 5}, {6, 3}},
    };
    score_att_place *p = NULL;
    size_t n = 0;
    aggregate(rows, 3, &p, &n);
    CHECK_INT((int)n, 1 + 2 + 2 + 3);
    /* Counties, townships, schools, classes, each by code. */
    CHECK_STR(p[0].code, "440105");
    CHECK_INT(p[0].level, SCORE_ATT_COUNTY);
    CHECK_STR(p[1].code, "440105001");
    CHECK_STR(p[3].code, "s1");
    CHECK_STR(p[5].code, "c1");
    const score_att_place *c1 = place(p, n, "c1");
    static const int want_c1[SCORE_ATT_COUNTS] = {52, 44, 20, 6, 7, 5, 6, 8, 10};
    for (int c = 0; c < SCORE_ATT_COUNTS; c++) {
        CHECK_INT(c1->counts[c], want_c1[c]);
        CHECK(!c1->suppressed[c]);
    }
    CHECK_INT(c1->grade, 3);
    CHECK_STR(c1->school_id, "s1");
    CHECK_STR(c1->township_code, "440105001");
    CHECK_STR(p[place(p, n, "c1")->parent].code, "s1");
    const score_att_place *county = place(p, n, "440105");
    CHECK_INT(county->counts[SCORE_ATT_ENROLLED], 52 + 55 + 60);
    CHECK_INT(county->counts[SCORE_ATT_UNEXCUSED_PERIODS], 10 + 5 + 18);
    CHECK_INT(county->parent, -1);
    CHECK_STR(county->school_id, "");
    CHECK_STR(county->township_code, "");
    CHECK_INT(place(p, n, "s1")->counts[SCORE_ATT_REPORTED], 44 + 50);
    free(p);
}

BX_TEST(attendance_small_cells_suppressed_with_a_second)
{
    /* c1: 2 absent (primary), then the smallest other partition count (sick 5) goes with it;
     * c2: nobody not reported (0 < 5) hides reported as well, and the smallest other (late 6). */
    static const class_row rows[] = {
        {"c1", "s1", "440105001", 1, {20, 8, 2, 5, 9, 7}, {0, 0}},
        {"c2", "s1", "440105001", 1, {20, 6, 8, 9, 7, 0}, {0, 0}},
        {"c3", "s1", "440105001", 1, {20, 6, 9, 9, 7, 9}, {0, 0}},
    };
    score_att_place *p = NULL;
    size_t n = 0;
    aggregate(rows, 3, &p, &n);
    const score_att_place *c1 = place(p, n, "c1"), *c2 = place(p, n, "c2"), *c3 = place(p, n, "c3");
    CHECK(c1->suppressed[SCORE_ATT_N_ABSENT]);
    CHECK(c1->suppressed[SCORE_ATT_N_SICK_LEAVE]);
    CHECK(!c1->suppressed[SCORE_ATT_N_PRESENT]);
    CHECK(c1->suppressed[SCORE_ATT_UNEXCUSED_PERIODS]); /* 0 < 5 */
    CHECK(c2->suppressed[SCORE_ATT_N_NOT_REPORTED]);
    CHECK(c2->suppressed[SCORE_ATT_REPORTED]);
    /* Across the school: absent hidden only in c1 would follow from the school's count, so the
     * smallest shown absent count of another class (c2: 8) is hidden too. */
    CHECK(c2->suppressed[SCORE_ATT_N_ABSENT]);
    CHECK(!c3->suppressed[SCORE_ATT_N_ABSENT]);
    /* Every relation holds at least two hidden members, or none. */
    for (size_t i = 0; i < n; i++) {
        int hidden = 0;
        for (int c = SCORE_ATT_N_PRESENT; c <= SCORE_ATT_N_NOT_REPORTED; c++)
            hidden += p[i].suppressed[c];
        CHECK(hidden != 1);
    }
    /* The school, township and county show everything: enough classes hide each count. */
    const score_att_place *school = place(p, n, "s1");
    for (int c = 0; c < SCORE_ATT_COUNTS; c++)
        CHECK(!place(p, n, "440105")->suppressed[c]);
    CHECK_INT(school->counts[SCORE_ATT_N_ABSENT], 2 + 8 + 9);
    free(p);
}

BX_TEST(attendance_single_class_school_hides_at_the_school)
{
    /* s2 has one class with 3 absent: the school's row would show it, so the school's absent is
     * hidden; s2 then hides absent alone among the township's schools, so s1's goes too. */
    static const class_row rows[] = {
        {"c1", "s1", "440105001", 1, {30, 6, 9, 6, 6, 6}, {0, 0}},
        {"c9", "s2", "440105001", 1, {30, 6, 3, 6, 6, 6}, {0, 0}},
    };
    score_att_place *p = NULL;
    size_t n = 0;
    aggregate(rows, 2, &p, &n);
    CHECK(place(p, n, "c9")->suppressed[SCORE_ATT_N_ABSENT]);
    CHECK(place(p, n, "s2")->suppressed[SCORE_ATT_N_ABSENT]);
    CHECK(place(p, n, "s1")->suppressed[SCORE_ATT_N_ABSENT]);
    CHECK(!place(p, n, "440105001")->suppressed[SCORE_ATT_N_ABSENT]);
    CHECK_INT(place(p, n, "440105001")->counts[SCORE_ATT_N_ABSENT], 12);
    free(p);
}

BX_TEST(attendance_tiny_class_hides_everything)
{
    static const class_row rows[] = {{"c1", "s1", "440105001", 9, {3, 0, 1, 0, 0, 0}, {1, 4}}};
    score_att_place *p = NULL;
    size_t n = 0;
    aggregate(rows, 1, &p, &n);
    const score_att_place *c1 = place(p, n, "c1");
    for (int c = 0; c < SCORE_ATT_COUNTS; c++)
        CHECK(c1->suppressed[c]);
    CHECK(!place(p, n, "440105")->suppressed[SCORE_ATT_N_ABSENT]);
    free(p);
}

BX_TEST(attendance_states_from_days)
{
    static const struct {
        score_day_state state;
        bool late;
        score_leave_kind kind;
        score_att_state want;
    } table[] = {
        {SCORE_DAY_PRESENT, false, SCORE_LEAVE_NONE, SCORE_ATT_PRESENT},
        {SCORE_DAY_PRESENT, true, SCORE_LEAVE_NONE, SCORE_ATT_LATE},
        {SCORE_DAY_LATE, true, SCORE_LEAVE_NONE, SCORE_ATT_LATE},
        {SCORE_DAY_EARLY_LEAVE, false, SCORE_LEAVE_NONE, SCORE_ATT_PRESENT},
        {SCORE_DAY_LEAVE, false, SCORE_LEAVE_SICK, SCORE_ATT_SICK_LEAVE},
        {SCORE_DAY_LEAVE, false, SCORE_LEAVE_PERSONAL, SCORE_ATT_PERSONAL_LEAVE},
        {SCORE_DAY_ABSENT, false, SCORE_LEAVE_NONE, SCORE_ATT_ABSENT},
        {SCORE_DAY_NOT_REPORTED, false, SCORE_LEAVE_NONE, SCORE_ATT_NOT_REPORTED},
        {SCORE_DAY_NO_RECORD, false, SCORE_LEAVE_NONE, SCORE_ATT_NOT_REPORTED},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        score_day d = {0, table[i].state, 0, table[i].late};
        CHECK_INT(score_att_state_of(&d, table[i].kind), table[i].want);
    }
}

BX_TEST(attendance_leave_kind_of_a_day)
{
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    bx_date d = 0;
    REQUIRE(bx_date_parse("2026-09-08", &d) == BX_OK);
    CHECK_INT(score_day_leave_kind(h, d), SCORE_LEAVE_PERSONAL);
    score_leave l = {d - 1, d + 1, 0, 0, SCORE_LEAVE_SICK, true, 1000, "lv-1"};
    bx_error err = {0};
    REQUIRE(score_history_apply_leave(h, &l, NULL, &err) == BX_OK);
    CHECK_INT(score_day_leave_kind(h, d), SCORE_LEAVE_SICK);
    score_fact f = {d, 0, SCORE_LEAVE, SCORE_LEAVE_PERSONAL, 2000, "rc-1"};
    REQUIRE(score_history_apply_fact(h, &f, NULL, &err) == BX_OK);
    CHECK_INT(score_day_leave_kind(h, d), SCORE_LEAVE_PERSONAL);
    score_history_free(h);
}

BX_TEST(attendance_messages_match_the_schema)
{
    static const class_row rows[] = {
        {"c1", "s1", "440105001", 1, {20, 8, 2, 5, 9, 7}, {0, 0}},
        {"c2", "s1", "440105001", 2, {20, 6, 8, 9, 7, 0}, {3, 2}},
    };
    score_att_place *p = NULL;
    size_t n = 0;
    aggregate(rows, 2, &p, &n);
    cJSON *schema = bx_schema_load_topic("bx.analytics.attendance.v1");
    REQUIRE(schema != NULL);
    bx_date d = 0;
    REQUIRE(bx_date_parse("2026-09-08", &d) == BX_OK);
    for (size_t i = 0; i < n; i++) {
        bx_buf b;
        bx_buf_init(&b, 0);
        REQUIRE(score_attendance_message(&p[i], d, 1788825600000LL, &b) == BX_OK);
        char why[300];
        if (!bx_schema_check_text(schema, b.data, b.len, why, sizeof(why)))
            BX_FAIL_AT("%s: %s", b.data, why);
        if (p[i].suppressed[SCORE_ATT_N_ABSENT])
            CHECK_CONTAINS(b.data, "\"absent\":null");
        bx_buf_free(&b);
    }
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(score_attendance_message(place(p, n, "c1"), d, 1788825600000LL, &b) == BX_OK);
    CHECK_CONTAINS(b.data, "\"level\":\"class\",\"place_code\":\"c1\",\"school_id\":\"s1\"");
    CHECK_CONTAINS(b.data, "\"grade\":1,\"date\":\"2026-09-08\",\"enrolled\":51");
    /* Two classes: what one hides the other hides too, and the rest follows from the relations. */
    CHECK_CONTAINS(b.data, "\"present\":20,\"late\":null,\"absent\":null,");
    CHECK_CONTAINS(b.data, "\"suppressed\":[\"reported\",\"late\",\"absent\",\"sick_leave\","
                           "\"personal_leave\",\"not_reported\",\"unexcused_periods\"]");
    bx_buf_free(&b);
    cJSON_Delete(schema);
    free(p);
}

BX_TEST(attendance_digest_follows_the_counts)
{
    score_att_place a = {0};
    a.counts[SCORE_ATT_ENROLLED] = 30;
    char d1[SCORE_ATT_DIGEST_SIZE], d2[SCORE_ATT_DIGEST_SIZE], d3[SCORE_ATT_DIGEST_SIZE];
    score_attendance_digest(&a, d1);
    score_attendance_digest(&a, d2);
    CHECK_STR(d1, d2);
    CHECK_INT((int)strlen(d1), 16);
    a.counts[SCORE_ATT_N_ABSENT] = 1;
    score_attendance_digest(&a, d3);
    CHECK(strcmp(d1, d3) != 0);
}

BX_TEST(attendance_rejects_bad_rows)
{
    score_att_student st[2] = {
        {"c1", "s1", "440105001", "440105", 1, SCORE_ATT_PRESENT, 0},
        {"c1", "s2", "440105001", "440105", 1, SCORE_ATT_PRESENT, 0},
    };
    score_att_place *p = NULL;
    size_t n = 0;
    bx_error err = {0};
    CHECK_INT(score_attendance_aggregate(st, 2, &p, &n, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "class c1");
    CHECK(p == NULL);
    st[1].school_id = "";
    CHECK_INT(score_attendance_aggregate(st, 2, &p, &n, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "students[1]");
    CHECK_INT(score_attendance_aggregate(st, 0, &p, &n, &err), BX_OK);
    CHECK_INT((int)n, 0);
    free(p);
}
