/* Unit tests for bx-escalate's documents: each notice renders as HTML in Chinese, with the deadline
 * computed from the school calendar, inserted text escaped, and no id number or risk flag. */
#include "documents.h"
#include "bx_test.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bx_date D(const char *s)
{
    bx_date d = BX_DATE_NONE;
    if (bx_date_parse(s, &d) != BX_OK)
        BX_FAIL_AT("test date %s does not parse", s);
    return d;
}

static bx_calendar *calendar(void)
{
    static bx_calendar *cal;
    if (cal != NULL)
        return cal;
    cal = bx_calendar_new();
    REQUIRE(cal != NULL);
    bx_error err = {0};
    REQUIRE(bx_calendar_add_term(cal, "2026-autumn", D("2026-09-01"), D("2027-01-22"), &err) ==
            BX_OK);
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv", src ? src : ".");
    REQUIRE(bx_calendar_load_days_csv(cal, path, &err) == BX_OK);
    return cal;
}

/* Issued on Wednesday 2026-09-30, before National Day: four school days later is Monday
 * 2026-10-12 (10-08, 10-09, the make-up Saturday 10-10, 10-12). */
static doc_case sample(void)
{
    doc_case c = {0};
    c.school_name = "青山乡中心小学";
    c.township_name = "青山乡人民政府";
    c.student_name = "张小明";
    c.guardian_name = "张大山";
    c.class_name = "五年级（2）班";
    c.issue_date = D("2026-09-30");
    c.streak_start = D("2026-09-28");
    c.streak_days = 3;
    c.deadline_school_days = 4;
    c.return_date = D("2026-10-12");
    return c;
}

static char *render(doc_kind k, const doc_case *c)
{
    bx_buf b;
    bx_buf_init(&b, 65536);
    bx_error err = {0};
    if (doc_render(k, calendar(), c, &b, &err) != BX_OK) {
        BX_FAIL_AT("%s: %s", doc_kind_name(k), err.msg);
        bx_buf_free(&b);
        return NULL;
    }
    return bx_buf_steal(&b);
}

static const struct {
    doc_kind kind;
    const char *title;
    const char *deadline; /* "" when the document names none */
} kinds[] = {
    {DOC_PERSUASION_LETTER, "<h1>劝学书</h1>", "于 2026年10月12日 前送孩子返校"},
    {DOC_DROPOUT_REPORT, "<h1>义务教育阶段学生辍学报告单</h1>", ""},
    {DOC_RETURN_NOTICE, "<h1>复学通知书</h1>", "请你于 2026年10月12日 前送孩子"},
    {DOC_DEADLINE_NOTICE, "<h1>限期复学通知书</h1>", "现责令你于 2026年10月12日 前"},
    {DOC_RETURN_REPORT, "<h1>辍学生复学报告书</h1>", "已于 2026年10月12日 返校复学"},
};

BX_TEST(each_document_renders_with_its_deadline)
{
    doc_case c = sample();
    for (size_t i = 0; i < COUNT(kinds); i++) {
        char *html = render(kinds[i].kind, &c);
        CHECK_CONTAINS(html, "<!DOCTYPE html>");
        CHECK_CONTAINS(html, "<html lang=\"zh-CN\">");
        CHECK_CONTAINS(html, kinds[i].title);
        CHECK_CONTAINS(html, "张小明");
        CHECK_CONTAINS(html, "2026年9月30日");
        if (kinds[i].deadline[0] != '\0')
            CHECK_CONTAINS(html, kinds[i].deadline);
        free(html);
    }
}

BX_TEST(default_deadlines_count_school_days)
{
    doc_case c = sample();
    c.deadline_school_days = 0;
    char d[32];
    doc_format_date(doc_deadline(DOC_PERSUASION_LETTER, calendar(), &c), d);
    CHECK_STR(d, "2026年10月10日"); /* 3 school days: 10-08, 10-09, make-up 10-10 */
    doc_format_date(doc_deadline(DOC_RETURN_NOTICE, calendar(), &c), d);
    CHECK_STR(d, "2026年10月13日");
    CHECK_INT(doc_deadline(DOC_DROPOUT_REPORT, calendar(), &c), BX_DATE_NONE);
    c.issue_date = D("2026-12-31");
    doc_format_date(doc_deadline(DOC_DEADLINE_NOTICE, calendar(), &c), d);
    CHECK_STR(d, "2027年1月8日"); /* New Year's Day is no school day */
}

BX_TEST(inserted_text_is_escaped)
{
    doc_case c = sample();
    c.student_name = "<script>alert('x')</script>";
    c.guardian_name = "A & \"B\"";
    for (size_t i = 0; i < COUNT(kinds); i++) {
        char *html = render(kinds[i].kind, &c);
        REQUIRE(html != NULL);
        CHECK(strstr(html, "<script>") == NULL);
        CHECK_CONTAINS(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        if (kinds[i].kind != DOC_RETURN_REPORT)
            CHECK_CONTAINS(html, "A &amp; &quot;B&quot;");
        free(html);
    }
}

BX_TEST(no_id_number_or_risk_flag)
{
    doc_case c = sample();
    static const char *const never[] = {"身份证", "学籍号", "建档立卡", "低保", "特困", "孤儿",
                                        "残疾",   "留守",   "单亲",     "stu-", "risk", "score"};
    for (size_t i = 0; i < COUNT(kinds); i++) {
        char *html = render(kinds[i].kind, &c);
        REQUIRE(html != NULL);
        for (size_t k = 0; k < COUNT(never); k++) {
            if (strstr(html, never[k]) != NULL)
                BX_FAIL_AT("%s contains %s", doc_kind_name(kinds[i].kind), never[k]);
        }
        /* no run of 15 or more digits (an id number) */
        int run = 0;
        for (const char *p = html; *p; p++) {
            run = (*p >= '0' && *p <= '9') ? run + 1 : 0;
            CHECK(run < 15);
        }
        free(html);
    }
}

BX_TEST(missing_names_leave_a_blank_to_fill_in)
{
    doc_case c = sample();
    c.guardian_name = NULL;
    char *html = render(DOC_RETURN_NOTICE, &c);
    CHECK_CONTAINS(html, "<p>________ 家长（监护人）：</p>");
    free(html);
}

BX_TEST(bad_input_is_refused)
{
    doc_case c = sample();
    bx_buf b;
    bx_buf_init(&b, 65536);
    bx_error err = {0};
    c.student_name = "\xff\xfe";
    CHECK_INT(doc_render(DOC_PERSUASION_LETTER, calendar(), &c, &b, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "student_name");
    c = sample();
    c.issue_date = BX_DATE_NONE;
    CHECK_INT(doc_render(DOC_RETURN_NOTICE, calendar(), &c, &b, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "issue_date");
    c = sample();
    CHECK_INT(doc_render((doc_kind)99, calendar(), &c, &b, &err), BX_EINVAL);
    c.issue_date = D("2027-06-30"); /* no term after it in this calendar */
    c.deadline_school_days = 5;
    CHECK_INT(doc_render(DOC_RETURN_NOTICE, calendar(), &c, &b, &err), BX_EINVAL);
    bx_buf_free(&b);
}

BX_TEST(kinds_are_named_and_parsed_both_ways)
{
    static const struct {
        doc_kind kind;
        const char *name;
    } named[] = {{DOC_PERSUASION_LETTER, "persuasion_letter"},
                 {DOC_DROPOUT_REPORT, "dropout_report"},
                 {DOC_RETURN_NOTICE, "return_notice"},
                 {DOC_DEADLINE_NOTICE, "deadline_notice"},
                 {DOC_RETURN_REPORT, "return_report"}};
    for (size_t i = 0; i < COUNT(named); i++) {
        CHECK_STR(doc_kind_name(named[i].kind), named[i].name);
        doc_kind k = 0;
        CHECK_INT(doc_kind_parse(named[i].name, &k), BX_OK);
        CHECK_INT(k, named[i].kind);
    }
    CHECK(doc_kind_name((doc_kind)0) == NULL);
    CHECK(doc_kind_name((doc_kind)99) == NULL);
    doc_kind k = DOC_RETURN_NOTICE;
    CHECK_INT(doc_kind_parse("Persuasion_letter", &k), BX_ENOTFOUND);
    CHECK_INT(doc_kind_parse(NULL, &k), BX_ENOTFOUND);
    CHECK_INT(k, DOC_RETURN_NOTICE);
}
