/* bx-console templates: a context copied into another (tmpl_put_all) renders as the original, and
 * the copy is the receiver's own (the county dashboards keep one a minute and fill requests from
 * it). */
#include "bx_test.h"
#include "tmpl.h"

#include <stdlib.h>

static char *render(const char *text, const tmpl_ctx *c)
{
    tmpl_lib *lib = NULL;
    bx_error err = {0};
    bx_status s = tmpl_lib_add(&lib, "t", text, &err);
    bx_buf out;
    bx_buf_init(&out, 1 << 20);
    IFOK(s, tmpl_render(lib, "t", c, &out, &err));
    IFOK(s, bx_buf_puts(&out, ""));
    tmpl_lib_free(lib);
    if (s != BX_OK) {
        bx_buf_free(&out);
        return NULL;
    }
    return bx_buf_steal(&out);
}

BX_TEST(tmpl_put_all_copies_texts_flags_markup_and_rows)
{
    static const char *const page =
        "<h1>{{title}}</h1>{{&chart}}{{#over}}!{{/over}}"
        "<ul>{{#rows}}<li>{{name}}={{n}}{{#hot}}*{{/hot}}{{#sub}}({{x}}){{/sub}}</li>{{/rows}}</ul>"
        "{{^none}}empty{{/none}}";
    tmpl_ctx *kept = tmpl_ctx_new();
    tmpl_put(kept, "title", "县 <甲>");
    tmpl_put_html(kept, "chart", "<svg></svg>");
    tmpl_put_bool(kept, "over", true);
    for (int i = 0; i < 3; i++) {
        tmpl_ctx *row = tmpl_add_row(kept, "rows");
        tmpl_putf(row, "name", "校%d", i);
        tmpl_put_int(row, "n", i * 10);
        tmpl_put_bool(row, "hot", i == 1);
        tmpl_put(tmpl_add_row(row, "sub"), "x", "a&b");
    }
    char *want = render(page, kept);
    tmpl_ctx *req = tmpl_ctx_new();
    tmpl_put(req, "title", "replaced");
    tmpl_put_all(req, kept);
    char *got = render(page, req);
    CHECK(want != NULL);
    CHECK_STR(got, want);
    CHECK_STR(got,
              "<h1>县 &lt;甲&gt;</h1><svg></svg>!<ul><li>校0=0(a&amp;b)</li><li>校1=10*(a&amp;b)"
              "</li><li>校2=20(a&amp;b)</li></ul>empty");
    /* the copy outlives the original */
    tmpl_ctx_free(kept);
    char *again = render(page, req);
    CHECK_STR(again, want);
    free(want);
    free(got);
    free(again);
    tmpl_ctx_free(req);
}
