/* bx-console templates: escaping by default, raw markup only when the server built it. */
#include "bx_test.h"
#include "tmpl.h"

#include <stdlib.h>

static char *render(const char *text, const tmpl_ctx *c, bx_status *status)
{
    tmpl_lib *lib = NULL;
    bx_error err = {0};
    bx_status s = tmpl_lib_add(&lib, "t", text, &err);
    bx_buf out;
    bx_buf_init(&out, 1 << 20);
    IFOK(s, tmpl_render(lib, "t", c, &out, &err));
    IFOK(s, bx_buf_puts(&out, ""));
    tmpl_lib_free(lib);
    *status = s;
    if (s != BX_OK) {
        bx_buf_free(&out);
        return NULL;
    }
    return bx_buf_steal(&out);
}

BX_TEST(tmpl_escapes_script_and_quotes)
{
    tmpl_ctx *c = tmpl_ctx_new();
    tmpl_put(c, "name", "<script>alert(1)</script>");
    tmpl_put(c, "q", "a\"b'c&d");
    bx_status s;
    char *html = render("<p>{{name}}</p><input value=\"{{q}}\"><i title='{{ q }}'></i>", c, &s);
    CHECK_INT(s, BX_OK);
    CHECK_STR(html, "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
                    "<input value=\"a&quot;b&#39;c&amp;d\"><i title='a&quot;b&#39;c&amp;d'></i>");
    free(html);
    tmpl_ctx_free(c);
}

BX_TEST(tmpl_raw_only_for_server_markup)
{
    tmpl_ctx *c = tmpl_ctx_new();
    tmpl_put(c, "name", "<script>alert(1)</script>");
    tmpl_put_html(c, "svg", "<svg><rect/></svg>");
    bx_status s;
    char *html = render("{{&svg}}", c, &s);
    CHECK_STR(html, "<svg><rect/></svg>");
    free(html);
    html = render("{{&name}}", c, &s);
    CHECK(html == NULL);
    CHECK_INT(s, BX_EINVAL);
    /* server markup printed the normal way is escaped too */
    html = render("{{svg}}", c, &s);
    CHECK_STR(html, "&lt;svg&gt;&lt;rect/&gt;&lt;/svg&gt;");
    free(html);
    tmpl_ctx_free(c);
}

BX_TEST(tmpl_sections_lists_and_inverted)
{
    tmpl_ctx *c = tmpl_ctx_new();
    tmpl_put(c, "csrf", "T0K");
    tmpl_put_bool(c, "yes", true);
    tmpl_put_bool(c, "no", false);
    tmpl_put(c, "empty", "");
    for (int i = 0; i < 2; i++) {
        tmpl_ctx *row = tmpl_add_row(c, "rows");
        tmpl_put(row, "name", i == 0 ? "张三" : "<b>");
        tmpl_put_int(row, "n", i);
    }
    tmpl_add_row(tmpl_add_row(c, "outer"), "inner");
    bx_status s;
    char *html = render("{{#rows}}[{{n}}:{{name}}:{{csrf}}]{{/rows}}"
                        "{{#yes}}Y{{/yes}}{{#no}}N{{/no}}{{^no}}!N{{/no}}{{^empty}}E{{/empty}}"
                        "{{^missing}}M{{/missing}}{{#missing}}X{{/missing}}{{^rows}}R{{/rows}}"
                        "{{! a comment }}{{#outer}}{{#inner}}I{{/inner}}{{/outer}}{{nothing}}.",
                        c, &s);
    CHECK_INT(s, BX_OK);
    CHECK_STR(html, "[0:张三:T0K][1:&lt;b&gt;:T0K]Y!NEMI.");
    free(html);
    tmpl_ctx_free(c);
}

BX_TEST(tmpl_syntax_errors_name_the_line)
{
    const char *bad[] = {"a\n{{#x}}b", "{{/x}}", "{{#x}}{{/y}}", "{{ bad name }}",
                         "{{x",        "{{}}",   "{{<x}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tmpl_lib *lib = NULL;
        bx_error err = {0};
        CHECK_INT(tmpl_lib_add(&lib, "page", bad[i], &err), BX_EINVAL);
        CHECK_CONTAINS(err.msg, "page");
        tmpl_lib_free(lib);
    }
    tmpl_lib *lib = NULL;
    bx_error err = {0};
    CHECK_INT(tmpl_lib_add(&lib, "page", "line 1\n{{x", &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "page:2");
    tmpl_lib_free(lib);
}

BX_TEST(tmpl_escape_function)
{
    bx_buf b;
    bx_buf_init(&b, 1024);
    CHECK_INT(tmpl_escape(&b, "<a href=\"x\">'&'</a>"), BX_OK);
    CHECK_STR(b.data, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    bx_buf_free(&b);
}

BX_TEST(tmpl_project_templates_load)
{
    const char *src = getenv("BX_SOURCE_DIR");
    REQUIRE(src != NULL);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/services/bx-console/templates", src);
    tmpl_lib *lib = NULL;
    bx_error err = {0};
    CHECK_INT(tmpl_lib_load(dir, &lib, &err), BX_OK);
    if (err.msg[0])
        fprintf(stderr, "%s\n", err.msg);
    CHECK(tmpl_lib_has(lib, "layout"));
    CHECK(tmpl_lib_has(lib, "error"));
    CHECK(tmpl_lib_has(lib, "login"));
    tmpl_lib_free(lib);
}
