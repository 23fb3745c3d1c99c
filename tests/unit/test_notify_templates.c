/* Unit tests of bx-notify's templates: the shipped file loads, holds every template the ladders
 * ask for, renders each one with realistic values, keeps parents' messages short and free of
 * forbidden words; bad files are refused with file:line. */
#include "bx_json.h"
#include "bx_test.h"
#include "template.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *source_dir(void)
{
    const char *src = getenv("BX_SOURCE_DIR");
    return src ? src : ".";
}

static template_set *shipped(void)
{
    static template_set *ts;
    if (ts != NULL)
        return ts;
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/notify.templates", source_dir());
    bx_error err = {0};
    if (template_set_load(path, &ts, &err) != BX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        REQUIRE(!"notify.templates loads");
    }
    return ts;
}

/* Realistic values for every placeholder, as bx-notify fills them. */
static const template_var realistic[] = {
    {"school", "文山市第一小学"},
    {"class", "三年级2班"},
    {"student", "李小明"},
    {"teacher", "王芳"},
    {"days_missed_term", "5"},
    {"date", "2026-11-27"},
    {"streak_days", "3"},
    {"streak_start", "2026-11-25"},
    {"task_count", "2"},
    {"tasks", "\n1. 三年级2班李小明 家访 11月28日17:00\n2. 三年级2班张华 联系家长 11月27日17:00\n"},
    {"case_id", "c-2026-000042"},
    {"stage", "school_report"},
    {"task", "home_visit"},
    {"task_id", "c-2026-000042:home_visit:home_visit:2026-11-28"},
    {"due_at", "2026-11-28T17:00:00+08:00"},
    {"owner_role", "homeroom_teacher"},
    {"code", "40718263"},
};
#define NREAL (sizeof(realistic) / sizeof(realistic[0]))

/* Template names a policy file asks for: the third word of each notify item, and the
 * task_notice/overdue_notice values. Appends to names (each up to 63 bytes). */
static int policy_templates(const char *rel, char names[][64], int n, int max)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/%s", source_dir(), rel);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        bool notify = strstr(line, ".notify ") != NULL && strncmp(line, "stage.", 6) == 0;
        bool notice = strncmp(line, "ladder.task_notice", 18) == 0 ||
                      strncmp(line, "ladder.overdue_notice", 21) == 0;
        if (!notify && !notice)
            continue;
        for (char *item = strtok(eq + 1, ",\n"); item != NULL; item = strtok(NULL, ",\n")) {
            char a[64], b[64], c[64];
            int k = sscanf(item, "%63s %63s %63s", a, b, c);
            const char *name = notify ? (k == 3 ? c : NULL) : (k >= 1 ? a : NULL);
            REQUIRE(name != NULL && n < max);
            if (strcmp(name, "none") != 0)
                snprintf(names[n++], 64, "%s", name);
        }
    }
    fclose(f);
    return n;
}

static int all_policy_templates(char names[][64], int max)
{
    int n = 0;
    n = policy_templates("ladder.policy", names, n, max);
    n = policy_templates("ladders/periods.policy", names, n, max);
    n = policy_templates("ladders/wenshan.policy", names, n, max);
    return n;
}

BX_TEST(shipped_file_holds_every_template_the_ladders_ask_for)
{
    template_set *ts = shipped();
    char names[64][64];
    int n = all_policy_templates(names, 64);
    CHECK(n >= 11); /* the ladders' notify lines are read, not an empty list */
    for (int i = 0; i < n; i++) {
        if (!template_exists(ts, names[i]))
            BX_FAIL_AT("a ladder asks for template %s, notify.templates has none", names[i]);
    }
    CHECK(template_exists(ts, "task_digest"));
    CHECK(!template_for_guardian(ts, "task_digest"));
    CHECK(template_for_guardian(ts, "absence_same_day"));
    CHECK(template_for_guardian(ts, "missed_periods"));
    CHECK(!template_for_guardian(ts, "task_assigned"));
}

/* Each template the ladders name, and the digest, renders with realistic values: no hole, no
 * brace, within its segments; a guardian's has no forbidden word and fits one SMS. */
BX_TEST(every_template_renders_with_realistic_values)
{
    template_set *ts = shipped();
    char names[80][64];
    int n = all_policy_templates(names, 79);
    snprintf(names[n++], 64, "task_digest");
    for (int i = 0; i < n; i++) {
        char out[2048];
        bx_error err = {0};
        if (template_render(ts, names[i], realistic, NREAL, out, sizeof(out), &err) != BX_OK) {
            BX_FAIL_AT("%s: %s", names[i], err.msg);
            continue;
        }
        CHECK(strchr(out, '{') == NULL && strchr(out, '}') == NULL);
        CHECK(strstr(out, "2026-11") == NULL); /* dates in Chinese form */
        int segs = template_sms_segments(out);
        if (segs < 1 || segs > template_max_segments(ts, names[i]))
            BX_FAIL_AT("%s takes %d segments: %s", names[i], segs, out);
        if (template_for_guardian(ts, names[i])) {
            CHECK(template_forbidden_word(out) == NULL);
            CHECK_INT(segs, 1);
            CHECK_CONTAINS(out, "李小明");
            CHECK_CONTAINS(out, "文山市第一小学"); /* signed with the school's name */
            CHECK_CONTAINS(out, "5天");            /* the days missed this term */
            CHECK_CONTAINS(out, "11月27日");
            CHECK(strstr(out, "c-2026") == NULL);
        }
    }
}

BX_TEST(guardian_message_reads_as_designed)
{
    char out[512];
    bx_error err = {0};
    REQUIRE(template_render(shipped(), "absence_same_day", realistic, NREAL, out, sizeof(out),
                            &err) == BX_OK);
    CHECK_STR(out,
              "李小明家长您好：李小明今天（11月27日）没有到校，本学期已缺课5天。请今天联系班主任王"
              "芳老师。文山市第一小学");
    CHECK_INT(template_sms_segments(out), 1);
}

BX_TEST(staff_messages_show_labels_and_chinese_due_times)
{
    char out[512];
    bx_error err = {0};
    REQUIRE(template_render(shipped(), "task_assigned", realistic, NREAL, out, sizeof(out), &err) ==
            BX_OK);
    CHECK_STR(out, "【待办】三年级2班李小明：请于11月28日17:00前完成“家访”。文山市第一小学");
    REQUIRE(template_render(shipped(), "task_overdue", realistic, NREAL, out, sizeof(out), &err) ==
            BX_OK);
    CHECK_CONTAINS(out, "“家访”（班主任负责）");
    REQUIRE(template_render(shipped(), "legal_referral", realistic, NREAL, out, sizeof(out),
                            &err) == BX_OK);
    CHECK_CONTAINS(out, "c-2026-000042");
}

/* A county's reports as bx-escalate's calendar duties ask for them (params county_code, term,
 * first_day, last_day and the four counts) with the county's name bx-notify looks up. */
static const template_var report_values[] = {
    {"county", "开阳县"},
    {"county_code", "520121"},
    {"term", "2026-autumn"},
    {"first_day", "2026-09-01"},
    {"last_day", "2026-09-21"},
    {"suspected", "12"},
    {"dropouts", "3"},
    {"opened", "17"},
    {"returned", "5"},
    {"date", "2026-09-21"},
    /* the monthly summary's roll calls, and the reports upward's rates and school */
    {"reporting_rate", "93.18%"},
    {"incomplete_classes", "2"},
    {"dropout_rate", "0.25%"},
    {"retention_rate", "99.50%"},
    {"school", "开阳县第一小学"},
};
#define NREPORT (sizeof(report_values) / sizeof(report_values[0]))

/* The templates ladder-duties.policy asks for ("<name>.notify = <role> <template>", and the
 * reports upward's "upward.<report> = <role> <template|none>"). */
static int duty_templates(char names[][64], int max)
{
    char path[1024], line[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/ladder-duties.policy", source_dir());
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char role[64], name[64];
        if (line[0] != '#' &&
            (strstr(line, ".notify") != NULL || strncmp(line, "upward.", 7) == 0) &&
            sscanf(strchr(line, '=') ? strchr(line, '=') + 1 : "", "%63s %63s", role, name) == 2 &&
            strcmp(name, "none") != 0) {
            REQUIRE(n < max);
            snprintf(names[n++], 64, "%s", name);
        }
    }
    fclose(f);
    return n;
}

BX_TEST(every_template_the_duties_ask_for_is_a_report_sent_at_once)
{
    template_set *ts = shipped();
    char names[8][64];
    int n = duty_templates(names, 8);
    /* the out-of-school report, the monthly summary, the schools' and the counties' reports
     * upward (the cities' and provinces' go to nobody bx-notify can reach) */
    CHECK_INT(n, 4);
    for (int i = 0; i < n; i++) {
        if (!template_exists(ts, names[i])) {
            BX_FAIL_AT("ladder-duties.policy asks for template %s, notify.templates has none",
                       names[i]);
            continue;
        }
        CHECK(!template_for_guardian(ts, names[i]));
        CHECK(template_immediate(ts, names[i]));
        char out[1024];
        bx_error err = {0};
        if (template_render(ts, names[i], report_values, NREPORT, out, sizeof(out), &err) !=
            BX_OK) {
            BX_FAIL_AT("%s: %s", names[i], err.msg);
            continue;
        }
        CHECK(strchr(out, '{') == NULL && strchr(out, '}') == NULL);
        CHECK(strstr(out, "2026-09") == NULL && strstr(out, "autumn") == NULL);
        int segs = template_sms_segments(out);
        if (segs < 1 || segs > template_max_segments(ts, names[i]))
            BX_FAIL_AT("%s takes %d segments: %s", names[i], segs, out);
    }
    /* the ladders' tasks still go to the digest */
    CHECK(!template_immediate(ts, "task_assigned"));
    CHECK(!template_immediate(ts, "absence_same_day"));
    CHECK(!template_immediate(ts, "no_such_template"));
}

/* The roll-call checks of a day gone by (ladder-duties.policy rollcall.missed_*): a line of the
 * digest naming the day, not an SMS of its own; the day's own checks go at once. */
BX_TEST(rollcall_checks_of_a_day_gone_by_go_to_the_digest)
{
    template_set *ts = shipped();
    CHECK(template_immediate(ts, "rollcall_missing"));
    CHECK(!template_immediate(ts, "rollcall_missed"));
    CHECK(!template_immediate(ts, "rollcall_missed_two_days"));
    static const template_var vars[] = {{"class", "三年级1班"},
                                        {"school", "开阳县第一小学"},
                                        {"first_day", "2026-09-29"},
                                        {"date", "2026-10-09"}};
    char out[512];
    bx_error err = {0};
    REQUIRE(template_render(ts, "rollcall_missed", vars, 4, out, sizeof(out), &err) == BX_OK);
    CHECK_STR(out,
              "【点名未交】三年级1班9月29日没有提交点名，该班学生当天是否到校无从知晓，请督促补"
              "报。开阳县第一小学");
    REQUIRE(template_render(ts, "rollcall_missed_two_days", vars, 4, out, sizeof(out), &err) ==
            BX_OK);
    CHECK_CONTAINS(out, "自9月29日起连续两个上课日");
}

BX_TEST(county_reports_read_as_designed)
{
    template_set *ts = shipped();
    char out[1024];
    bx_error err = {0};
    REQUIRE(template_render(ts, "out_of_school_report", report_values, NREPORT, out, sizeof(out),
                            &err) == BX_OK);
    CHECK_STR(out, "【15日报告】开阳县2026年秋季学期开学以来（9月1日至9月21日）学生失学辍学情况："
                   "疑似失学辍学12人，已列入辍学生花名册3人；其间新增跟进17人，复学5人。名单请查看"
                   "控辍保学台账，请督促乡镇和学校劝返。");
    REQUIRE(template_render(ts, "monthly_summary", report_values, NREPORT, out, sizeof(out),
                            &err) == BX_OK);
    CHECK_STR(out,
              "【月报】开阳县2026年秋季学期辍学情况汇总（9月1日至9月21日）：在册辍学3人，疑似失"
              "学辍学12人；本月新增跟进17人，复学5人；点名上报率93.18%，2个班不足九成（缺勤数据"
              "不可信）。名单请查看控辍保学台账。");
    REQUIRE(template_render(ts, "school_monthly_report", report_values, NREPORT, out, sizeof(out),
                            &err) == BX_OK);
    CHECK_STR(out, "【学校月报】开阳县第一小学控辍保学月报（9月1日至9月21日）：辍学率0.25%，巩固率"
                   "99.50%；疑似失学辍学12人，在册辍学3人，本月复学5人；点名上报率93.18%，2个班不"
                   "足九成。请核对后报县教体局。");
    REQUIRE(template_render(ts, "county_quarterly_report", report_values, NREPORT, out, sizeof(out),
                            &err) == BX_OK);
    CHECK_STR(out,
              "【县季报】开阳县本季度（9月1日至9月21日）控辍保学情况：辍学率0.25%，巩固率99.50%"
              "；疑似失学辍学12人，在册辍学3人，本季复学5人；点名上报率93.18%，2个班不足九成"
              "。请核对后报市教育局。");
    /* zero is a count too */
    template_var zeros[NREPORT];
    memcpy(zeros, report_values, sizeof(zeros));
    zeros[5].value = zeros[6].value = zeros[7].value = zeros[8].value = "0";
    REQUIRE(template_render(ts, "monthly_summary", zeros, NREPORT, out, sizeof(out), &err) ==
            BX_OK);
    CHECK_CONTAINS(out, "在册辍学0人，疑似失学辍学0人；本月新增跟进0人，复学0人；");
}

BX_TEST(county_reports_refuse_bad_counts_dates_and_holes)
{
    template_set *ts = shipped();
    static const struct {
        size_t index;
        const char *value, *want;
    } rows[] = {
        {5, "-1", "{suspected}: expected a count"},
        {5, "3.5", "{suspected}: expected a count"},
        {6, "three", "{dropouts}: expected a count"},
        {7, "007", "{opened}: expected a count"},
        {8, "1234567890", "{returned}: expected a count"},
        {8, "", "{returned}: the value is empty"},
        {3, "2026-9-1", "{first_day}: expected a date"},
        {4, "2026-09-31", "{last_day}: expected a date"},
        {2, "", "{term}: the value is empty"},
        {0, "开阳县", "{county}: a control character"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        template_var bad[NREPORT];
        memcpy(bad, report_values, sizeof(bad));
        bad[rows[i].index].value = rows[i].value;
        char out[1024] = "x";
        bx_error err = {0};
        bx_status s =
            template_render(ts, "out_of_school_report", bad, NREPORT, out, sizeof(out), &err);
        if (s != BX_EINVAL || out[0] != '\0' || strstr(err.msg, rows[i].want) == NULL)
            BX_FAIL_AT("row %zu: status %d, message \"%s\", expected \"%s\"", i, (int)s, err.msg,
                       rows[i].want);
    }
    /* no county's name (a request without params.county_code): nothing goes out */
    char out[1024];
    bx_error err = {0};
    CHECK_INT(template_render(ts, "out_of_school_report", report_values + 1, NREPORT - 1, out,
                              sizeof(out), &err),
              BX_EINVAL);
    CHECK_CONTAINS(err.msg, "no value for {county}");
}

BX_TEST(terms_in_chinese_form)
{
    static const struct {
        const char *code, *want;
        bx_status status;
    } rows[] = {
        {"2026-autumn", "2026年秋季学期", BX_OK},
        {"2027-spring", "2027年春季学期", BX_OK},
        {"S1", "S1", BX_OK},
        {"26-autumn", "26-autumn", BX_OK},
        {"2026-autumnx", "2026-autumnx", BX_OK},
        {"", "", BX_EINVAL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char out[64] = "";
        bx_status s = template_format_term(rows[i].code, out, sizeof(out));
        if (s != rows[i].status || (s == BX_OK && strcmp(out, rows[i].want) != 0))
            BX_FAIL_AT("\"%s\": status %d, \"%s\", expected %d, \"%s\"", rows[i].code, (int)s, out,
                       (int)rows[i].status, rows[i].want);
    }
    char small[8];
    CHECK_INT(template_format_term("2026-autumn", small, sizeof(small)), BX_ENOMEM);
}

/* Every task kind, role and stage the ladders define shows in Chinese. */
BX_TEST(every_task_kind_role_and_stage_has_a_label)
{
    template_set *ts = shipped();
    const char *files[] = {"ladder.policy", "ladders/periods.policy", "ladders/wenshan.policy"};
    int seen = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char path[1024], line[1024];
        snprintf(path, sizeof(path), "%s/deploy/policy/%s", source_dir(), files[f]);
        FILE *fp = fopen(path, "r");
        REQUIRE(fp != NULL);
        while (fgets(line, sizeof(line), fp) != NULL) {
            char kind[64], field[64], value[128];
            if (sscanf(line, "task.%63[a-z0-9_].%63[a-z_] = %127[a-z_]", kind, field, value) == 3 &&
                strcmp(field, "owner") == 0) {
                seen++;
                if (strcmp(template_label(ts, "task", kind), kind) == 0)
                    BX_FAIL_AT("task kind %s (%s) has no label", kind, files[f]);
                if (strcmp(template_label(ts, "role", value), value) == 0)
                    BX_FAIL_AT("role %s (%s) has no label", value, files[f]);
            }
            if (sscanf(line, "stage.%63[a-z_].%63[a-z_]", kind, field) == 2 &&
                strcmp(template_label(ts, "stage", kind), kind) == 0)
                BX_FAIL_AT("stage %s (%s) has no label", kind, files[f]);
        }
        fclose(fp);
    }
    CHECK(seen > 20);
    CHECK_STR(template_label(ts, "task", "no_such_kind"), "no_such_kind");
}

BX_TEST(rendering_refuses_holes_and_bad_values)
{
    template_set *ts = shipped();
    char out[512];
    bx_error err = {0};
    /* No teacher: nothing goes out with a hole. */
    template_var no_teacher[NREAL];
    size_t n = 0;
    for (size_t i = 0; i < NREAL; i++) {
        if (strcmp(realistic[i].name, "teacher") != 0)
            no_teacher[n++] = realistic[i];
    }
    CHECK_INT(template_render(ts, "absence_same_day", no_teacher, n, out, sizeof(out), &err),
              BX_EINVAL);
    CHECK_CONTAINS(err.msg, "{teacher}");
    CHECK_STR(out, "");

    CHECK_INT(template_render(ts, "no_such_template", realistic, NREAL, out, sizeof(out), &err),
              BX_ENOTFOUND);

    /* A value cannot smuggle a forbidden word or a phone number into a parent's message. */
    template_var bad[NREAL];
    memcpy(bad, realistic, sizeof(bad));
    bad[0].value = "辍学预防学校";
    CHECK_INT(template_render(ts, "absence_same_day", bad, NREAL, out, sizeof(out), &err),
              BX_EINVAL);
    CHECK_CONTAINS(err.msg, "辍学");
    memcpy(bad, realistic, sizeof(bad));
    bad[2].value = "李13812345678";
    CHECK_INT(template_render(ts, "absence_same_day", bad, NREAL, out, sizeof(out), &err),
              BX_EINVAL);
    memcpy(bad, realistic, sizeof(bad));
    bad[5].value = "27/11/2026";
    CHECK_INT(template_render(ts, "absence_same_day", bad, NREAL, out, sizeof(out), &err),
              BX_EINVAL);
    CHECK_CONTAINS(err.msg, "{date}");
    memcpy(bad, realistic, sizeof(bad));
    bad[14].value = "tomorrow";
    CHECK_INT(template_render(ts, "task_assigned", bad, NREAL, out, sizeof(out), &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "{due_at}");
    memcpy(bad, realistic, sizeof(bad));
    bad[2].value = "李\x01明";
    CHECK_INT(template_render(ts, "task_assigned", bad, NREAL, out, sizeof(out), &err), BX_EINVAL);
    memcpy(bad, realistic, sizeof(bad));
    bad[2].value = "\xe6\x9d";
    CHECK_INT(template_render(ts, "task_assigned", bad, NREAL, out, sizeof(out), &err), BX_EINVAL);

    /* An output buffer too small is refused, not truncated. */
    char small[20];
    CHECK_INT(template_render(ts, "absence_same_day", realistic, NREAL, small, sizeof(small), &err),
              BX_ENOMEM);
    CHECK_STR(small, "");
}

BX_TEST(dates_and_due_times_in_chinese_form)
{
    char out[64];
    CHECK_INT(template_format_date("2026-11-27", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "11月27日");
    CHECK_INT(template_format_date("2027-01-05", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "1月5日");
    CHECK_INT(template_format_date("11月27日", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "11月27日");
    CHECK_INT(template_format_date("2026-02-30", out, sizeof(out)), BX_EINVAL);
    CHECK_INT(template_format_date("", out, sizeof(out)), BX_EINVAL);
    CHECK_INT(template_format_due("2026-11-28T17:00:00+08:00", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "11月28日17:00");
    /* UTC 16:30 on the 30th is 00:30 on the 1st in Shanghai. */
    CHECK_INT(template_format_due("2026-11-30T16:30:00Z", out, sizeof(out)), BX_OK);
    CHECK_STR(out, "12月1日00:30");
    CHECK_INT(template_format_due("2026-11-28", out, sizeof(out)), BX_EINVAL);
}

BX_TEST(sms_segments_counted_as_carriers_do)
{
    static const struct {
        int chinese, ascii, want;
    } rows[] =
        {
            {0, 0, 0},   {1, 0, 1},   {70, 0, 1},  {71, 0, 2},  {134, 0, 2},
            {135, 0, 3}, {0, 160, 1}, {0, 161, 2}, {0, 306, 2}, {0, 307, 3},
            {69, 1, 1},  {70, 1, 2}, /* one Chinese character makes the whole text UCS-2 */
        };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char text[1024];
        size_t pos = 0;
        for (int k = 0; k < rows[i].chinese; k++) {
            memcpy(text + pos, "学", 3);
            pos += 3;
        }
        memset(text + pos, 'a', (size_t)rows[i].ascii);
        pos += (size_t)rows[i].ascii;
        text[pos] = '\0';
        if (template_sms_segments(text) != rows[i].want)
            BX_FAIL_AT("row %zu: %d Chinese + %d ASCII: %d segments, expected %d", i,
                       rows[i].chinese, rows[i].ascii, template_sms_segments(text), rows[i].want);
    }
    /* A character outside the BMP takes two UCS-2 units. */
    char emoji[300] = "";
    for (int k = 0; k < 35; k++)
        strcat(emoji, "\xF0\x9F\x98\x80");
    CHECK_INT(template_sms_segments(emoji), 1);
    strcat(emoji, "a");
    CHECK_INT(template_sms_segments(emoji), 2);
}

static char *write_temp(const char *content)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/bx-notify-tpl-XXXXXX");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    size_t n = strlen(content);
    REQUIRE(write(fd, content, n) == (ssize_t)n);
    close(fd);
    return path;
}

#define OKG "template.a.audience = guardian\n"

BX_TEST(bad_files_are_refused_with_file_and_line)
{
    static const struct {
        const char *content, *want;
    } rows[] = {
        {"# nothing\n", "no templates"},
        {"template.a.audience = guardian\ntemplate.a.text = {student}今天没来。{sch}\n",
         ":2: template.a.text: unknown placeholder {sch}"},
        {OKG "template.a.text = {student}有辍学倾向\n", ":2: template.a.text: \"辍学\""},
        {OKG "template.a.text = {student}风险较高\n", ":2: template.a.text: \"风险\""},
        {OKG "template.a.text = {student}家庭贫困\n", ":2: template.a.text: \"贫困\""},
        {OKG "template.a.text = {student}残疾\n", ":2: template.a.text: \"残疾\""},
        {OKG "template.a.text = 请带身份证\n", ":2: template.a.text: \"身份证\""},
        {OKG "template.a.text = High RISK pupil {student}\n", ":2: template.a.text: \"risk\""},
        {OKG "template.a.text = Dropout {student}\n", ":2: template.a.text: \"dropout\""},
        {OKG "template.a.text = 请拨打13812345678\n", ":2: template.a.text: a number of more"},
        {OKG "template.a.text = {student}案件{case_id}\n",
         ":2: template.a.text: {case_id} is not for a guardian"},
        {OKG "template.a.text = {student}{stage}\n", ":2: template.a.text: {stage} is not for"},
        {OKG
         "template.a.text = "
         "{student}家长您好：{student}今天没有到校，本学期已缺课{days_missed_term}天，请尽快联系"
         "班主任{teacher}老师，说明孩子没有到校的原因，以便学校及时安排补课。谢谢！{school}\n",
         ":2: template.a.text: about"},
        {OKG "template.a.text = {student\n", ":2: template.a.text: \"{\" without \"}\""},
        {OKG "template.a.text = student}\n", ":2: template.a.text: \"}\" without \"{\""},
        {OKG "template.a.text = \n", ":2: template.a.text: is empty"},
        {OKG "template.a.text = a\ntemplate.a.text = b\n", ":3: template.a.text: given twice"},
        {"template.a.audience = parents\n", ":1: template.a.audience: expected guardian or staff"},
        {"template.a.text = hello\n", ":1: template.a: no audience"},
        {OKG, ":1: template.a: no text"},
        {OKG "template.a.text = hi\ntemplate.a.colour = red\n",
         ":3: template.a.colour: unknown setting"},
        {OKG "template.a.text = hi\ntemplate.a.segments = 0\n",
         ":3: template.a.segments: expected 1 to 10"},
        {OKG "template.a.text = hi\nsender = x\n", ":3: sender: unknown setting"},
        {OKG "template.a.text = hi\njust words\n", ":3: expected \"name = value\""},
        {OKG "template.A.text = hi\n", ":2: template.A: a template name is"},
        {OKG "template.a.text = hi\nlabel.task.x = 家访\nlabel.task.x = 家访\n",
         ":4: label.task.x: given twice"},
        {OKG "template.a.text = hi\nlabel.colour.x = 红\n", ":3: label.colour.x: a label is"},
        {OKG "template.a.text = \xe6\x9d\n", ":2: template.a.text: the value is not valid UTF-8"},
        {OKG "template.a.text = {student}{suspected}人\n",
         ":2: template.a.text: {suspected} is not for a guardian"},
        {OKG "template.a.text = {county}\n", ":2: template.a.text: {county} is not for"},
        {OKG "template.a.text = hi\ntemplate.a.delivery = immediate\n",
         ":3: template.a.delivery: only a staff template"},
        {"template.s.audience = staff\ntemplate.s.text = hi\ntemplate.s.delivery = now\n",
         ":3: template.s.delivery: expected digest or immediate"},
        {"template.s.audience = staff\ntemplate.s.delivery = digest\ntemplate.s.text = "
         "hi\ntemplate.s.delivery = immediate\n",
         ":4: template.s.delivery: given twice (first on line 2)"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *path = write_temp(rows[i].content);
        template_set *ts = NULL;
        bx_error err = {0};
        bx_status s = template_set_load(path, &ts, &err);
        if (s != BX_EINVAL || ts != NULL || strstr(err.msg, path) != err.msg ||
            strstr(err.msg, rows[i].want) == NULL)
            BX_FAIL_AT("row %zu: status %d, message \"%s\", expected \"%s\"", i, (int)s, err.msg,
                       rows[i].want);
        template_set_free(ts);
        unlink(path);
    }
    template_set *ts = NULL;
    bx_error err = {0};
    CHECK_INT(template_set_load("/nonexistent/notify.templates", &ts, &err), BX_ENOTFOUND);
}

/* Staff messages may name what parents' may not. */
BX_TEST(staff_templates_may_name_the_case)
{
    const char *path =
        write_temp("template.s.audience = staff\n"
                   "template.s.text = 【辍学】{student}风险{case_id}{task}{due_at}\n");
    template_set *ts = NULL;
    bx_error err = {0};
    CHECK_INT(template_set_load(path, &ts, &err), BX_OK);
    CHECK(!template_for_guardian(ts, "s"));
    CHECK_INT(template_max_segments(ts, "s"), 3);
    CHECK(!template_immediate(ts, "s")); /* collected into the digest unless it says otherwise */
    template_set_free(ts);
    unlink(path);
}

/* A staff member's activation code has a placeholder of its own (not params.task_id): digits only,
 * 6 to 10 of them, never quoted in an error, never allowed in a parent's message; a code a
 * reason or a record carries is masked. */
BX_TEST(activation_code_has_its_own_bounded_placeholder)
{
    template_set *ts = shipped();
    char out[512];
    bx_error err = {0};
    REQUIRE(template_render(ts, "staff_activation", realistic, NREAL, out, sizeof(out), &err) ==
            BX_OK);
    CHECK_STR(out,
              "【保学】您的账号激活码40718263，仅能使用一次，请尽快在保学系统激活页设置密码，切"
              "勿告诉他人。");
    CHECK(strstr(out, "c-2026") == NULL); /* not the task id any more */
    template_var bad[NREAL];
    static const char *const refused[] = {
        "12345", "12345678901", "1234567a", "１２３４５６７８", "1234 5678", "-1234567"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        memcpy(bad, realistic, sizeof(bad));
        bad[NREAL - 1].value = refused[i];
        CHECK_INT(template_render(ts, "staff_activation", bad, NREAL, out, sizeof(out), &err),
                  BX_EINVAL);
        CHECK_CONTAINS(err.msg, "{code}: expected 6 to 10 digits");
        CHECK(strstr(err.msg, refused[i]) == NULL);
    }
    /* a request without a code is a hole, not a message with a blank */
    CHECK_INT(template_render(ts, "staff_activation", realistic, NREAL - 1, out, sizeof(out), &err),
              BX_EINVAL);
    CHECK_CONTAINS(err.msg, "{code}");
    /* guardians never get a code */
    const char *path = write_temp("template.g.audience = guardian\n"
                                  "template.g.text = {student}家长您好：{code}。{school}\n");
    template_set *gts = NULL;
    CHECK_INT(template_set_load(path, &gts, &err), BX_EINVAL);
    template_set_free(gts);
    unlink(path);
    /* masked wherever it might leave bx-notify: a code, but not ids, dates or short numbers */
    char text[] = "激活码40718263已发送 ntf-12345678 2026-11-27 \"code\":\"123456\" 12345 "
                  "SMS_900001";
    template_mask_codes(text);
    CHECK_STR(text, "激活码********已发送 ntf-12345678 2026-11-27 \"code\":\"******\" 12345 "
                    "SMS_900001");
}

/* Found by fuzz_template: a loader error quotes the line's name or a value cut to 40 bytes; the
 * message stays valid UTF-8 whatever the file holds. */
BX_TEST(load_errors_stay_utf8)
{
    static const struct {
        const char *content, *want;
    } rows[] = {
        {"l\xe6"
         "bel.task.x = \xe5\xae\xb6\n",
         ":1: the name is not valid UTF-8"},
        {"template.a.audience = guardian\n\xff\xfe words\n", ":2: the line is not valid UTF-8"},
        /* 14 times 学: 42 bytes, quoted to 40 */
        {"template.a.audience = "
         "\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6"
         "\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\xe5\xad\xa6\n",
         ":1: template.a.audience: expected guardian or staff, got \""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *path = write_temp(rows[i].content);
        template_set *ts = NULL;
        bx_error err = {0};
        bx_status s = template_set_load(path, &ts, &err);
        if (s != BX_EINVAL || strstr(err.msg, rows[i].want) == NULL)
            BX_FAIL_AT("row %zu: status %d, message \"%s\", expected \"%s\"", i, (int)s, err.msg,
                       rows[i].want);
        if (!bx_utf8_valid(err.msg, strlen(err.msg)))
            BX_FAIL_AT("row %zu: the message is not valid UTF-8: %s", i, err.msg);
        template_set_free(ts);
        unlink(path);
    }
}
