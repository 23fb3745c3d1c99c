/* Unit tests of the pure parts the principal's and township's lists share (page_school_list.c):
 * the list query read from untrusted fields with fallbacks, the links that keep it, the pages and
 * the offset, and the pager put into a template context. */
#include "bx_test.h"
#include "page_school.h"

#include <string.h>

static const char *const sorts[] = {"due", "opened", "class", NULL};

static school_list_query parse(const console_field *f, size_t n)
{
    school_list_query q;
    school_list_parse(f, n, sorts, &q);
    return q;
}

BX_TEST(list_query_defaults_and_fallbacks)
{
    school_list_query q = parse(NULL, 0);
    CHECK_INT(q.page, 1);
    CHECK_INT(q.sort, 0);
    CHECK_STR(q.stage, "");
    CHECK_STR(q.school_id, "");
    CHECK(!q.overdue);
    static const struct {
        const char *name, *value;
        int page, sort;
        const char *stage, *school;
        bool overdue;
    } rows[] = {
        {"page", "3", 3, 0, "", "", false},
        {"page", "0", 1, 0, "", "", false},
        {"page", "-2", 1, 0, "", "", false},
        {"page", "2x", 1, 0, "", "", false},
        {"page", "501", 1, 0, "", "", false},
        {"page", "500", 500, 0, "", "", false},
        {"page", "99999999999", 1, 0, "", "", false},
        {"sort", "class", 1, 2, "", "", false},
        {"sort", "drop table", 1, 0, "", "", false},
        {"stage", "dropout_roster", 1, 0, "dropout_roster", "", false},
        {"stage", "<script>", 1, 0, "", "", false},
        {"stage", "dropout", 1, 0, "", "", false},
        {"school", "SHS1", 1, 0, "", "SHS1", false},
        {"school", "S 1", 1, 0, "", "", false},
        {"school", "x'--", 1, 0, "", "", false},
        {"overdue", "1", 1, 0, "", "", true},
        {"overdue", "yes", 1, 0, "", "", false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        console_field f = {rows[i].name, rows[i].value};
        q = parse(&f, 1);
        if (q.page != rows[i].page || q.sort != rows[i].sort ||
            strcmp(q.stage, rows[i].stage) != 0 || strcmp(q.school_id, rows[i].school) != 0 ||
            q.overdue != rows[i].overdue)
            BX_FAIL_AT("%s=%s read as page %d sort %d stage \"%s\" school \"%s\" overdue %d",
                       rows[i].name, rows[i].value, q.page, q.sort, q.stage, q.school_id,
                       q.overdue);
    }
}

BX_TEST(list_links_keep_the_query)
{
    console_field f[] = {{"stage", "home_visit"}, {"sort", "opened"}, {"overdue", "1"},
                         {"school", "SHS1"},      {"page", "2"},      {"unknown", "x"}};
    school_list_query q = parse(f, 6);
    char out[256];
    CHECK(school_list_link(&q, sorts, "/school", 0, out, sizeof(out)));
    CHECK_STR(out, "/school?page=2&sort=opened&stage=home_visit&school=SHS1&overdue=1");
    CHECK(school_list_link(&q, sorts, "/school", 1, out, sizeof(out)));
    CHECK_STR(out, "/school?sort=opened&stage=home_visit&school=SHS1&overdue=1");
    CHECK(school_list_link(&q, sorts, "/township/children?list=suspected", 3, out, sizeof(out)));
    CHECK_STR(out, "/township/children?list=suspected&page=3&sort=opened&stage=home_visit&"
                   "school=SHS1&overdue=1");
    school_list_query plain = parse(NULL, 0);
    CHECK(school_list_link(&plain, sorts, "/school", 0, out, sizeof(out)));
    CHECK_STR(out, "/school");
    /* Too small: the path alone, and said so. */
    char small[24];
    CHECK(!school_list_link(&q, sorts, "/school", 0, small, sizeof(small)));
    CHECK_STR(small, "/school");
}

BX_TEST(list_pages_and_offset)
{
    CHECK_INT(school_list_pages(0), 1);
    CHECK_INT(school_list_pages(1), 1);
    CHECK_INT(school_list_pages(SCHOOL_LIST_PER_PAGE), 1);
    CHECK_INT(school_list_pages(SCHOOL_LIST_PER_PAGE + 1), 2);
    CHECK_INT(school_list_pages(1000000000LL), SCHOOL_LIST_MAX_PAGE);
    console_field f = {"page", "3"};
    school_list_query q = parse(&f, 1);
    CHECK_INT(school_list_offset(&q), 2 * SCHOOL_LIST_PER_PAGE);
}

BX_TEST(list_pager_in_the_template)
{
    console_field f[] = {{"page", "2"}, {"stage", "school_report"}};
    school_list_query q = parse(f, 2);
    static const char *const labels[] = {"按截止", "按立案", "按班级", NULL};
    tmpl_ctx *ctx = tmpl_ctx_new();
    school_list_put(ctx, &q, sorts, labels, "/school", 3 * SCHOOL_LIST_PER_PAGE);
    tmpl_lib *lib = NULL;
    bx_error err = {0};
    CHECK(tmpl_lib_add(&lib, "p",
                       "{{page}}/{{pages}} {{total}} [{{prev_link}}] [{{next_link}}] "
                       "{{#stage_options}}{{#selected}}{{value}}={{label}}{{/selected}}"
                       "{{/stage_options}} {{#sort_options}}{{label}};{{/sort_options}}"
                       "{{#filtered}} F{{/filtered}}",
                       &err) == BX_OK);
    bx_buf out;
    bx_buf_init(&out, 1 << 16);
    CHECK(tmpl_render(lib, "p", ctx, &out, &err) == BX_OK);
    CHECK_STR(out.data, "2/3 60 [/school?stage=school_report] [/school?page=3&amp;stage="
                        "school_report] school_report=报告学校 按截止;按立案;按班级; F");
    bx_buf_free(&out);
    tmpl_lib_free(lib);
    tmpl_ctx_free(ctx);
}
