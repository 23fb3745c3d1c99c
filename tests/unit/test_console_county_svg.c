/* bx-console's charts (svg.c): a known data set gives the expected bars (how many <rect
 * class="bar">, their heights and data attributes), thresholds flag bars, every text is escaped,
 * lines have a point per value. */
#include "bx_test.h"
#include "svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* How many times needle occurs in s. */
static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The heights of the bars in document order (at most max). */
static int bar_heights(const char *svg, double *h, int max)
{
    int n = 0;
    for (const char *p = strstr(svg, "<rect class=\"bar"); p && n < max;
         p = strstr(p + 1, "<rect class=\"bar")) {
        const char *hp = strstr(p, "height=\"");
        h[n++] = hp ? strtod(hp + 8, NULL) : -1;
    }
    return n;
}

BX_TEST(svg_axis_top_is_round)
{
    CHECK(fabs(svg_axis_top(0) - 1) < 1e-9);
    CHECK(fabs(svg_axis_top(0.8) - 1) < 1e-9);
    CHECK(fabs(svg_axis_top(1.2) - 2) < 1e-9);
    CHECK(fabs(svg_axis_top(2.2) - 2.5) < 1e-9);
    CHECK(fabs(svg_axis_top(3) - 5) < 1e-9);
    CHECK(fabs(svg_axis_top(40) - 50) < 1e-9);
    CHECK(fabs(svg_axis_top(100) - 100) < 1e-9);
}

BX_TEST(svg_bars_known_data)
{
    /* three schools, dropout rate in %, threshold 3 %: the axis ends at 5 */
    const char *const schools[] = {"一小", "二小", "三中"};
    const double rates[] = {1.0, 0.0, 4.0};
    const double retention[] = {99.0, -1, 96.0}; /* -1: no data, no bar */
    svg_series one = {"辍学率", rates};
    svg_chart c = {.title = "各校辍学率",
                   .unit = "%",
                   .categories = schools,
                   .ncategories = 3,
                   .series = &one,
                   .nseries = 1,
                   .threshold = 3.0,
                   .threshold_label = "阈值 3%"};
    bx_buf out;
    bx_buf_init(&out, 0);
    CHECK_INT(svg_bars(&c, &out), BX_OK);
    CHECK_INT(count(out.data, "<rect class=\"bar"), 3);
    CHECK_INT(count(out.data, "<rect class=\"bar over\""), 1);
    double h[8];
    CHECK_INT(bar_heights(out.data, h, 8), 3);
    CHECK(fabs(h[0] - 40.0) < 0.05); /* 1/5 of 200 */
    CHECK(fabs(h[1] - 0.0) < 0.05);
    CHECK(fabs(h[2] - 160.0) < 0.05); /* 4/5 of 200 */
    /* each bar says what it stands for: category, series and the unrounded value */
    CHECK_CONTAINS(out.data, "<rect class=\"bar over\" x=\"107.0\" y=\"96.0\" width=\"22.0\" "
                             "height=\"160.0\" fill=\"#c53030\" data-category=\"三中\" "
                             "data-series=\"辍学率\" data-value=\"4\"><title>三中 辍学率: "
                             "4.00%（超过阈值）</title></rect>");
    CHECK_CONTAINS(out.data, "data-category=\"二小\" data-series=\"辍学率\" data-value=\"0\">");
    CHECK_CONTAINS(out.data, "class=\"threshold\"");
    CHECK_CONTAINS(out.data, "阈值 3%");
    CHECK_CONTAINS(out.data, "各校辍学率");
    CHECK(strncmp(out.data, "<svg ", 5) == 0);
    CHECK(strcmp(out.data + out.len - 6, "</svg>") == 0);

    /* two series: a legend swatch each, bars only where there is data */
    svg_series two[] = {{"辍学率", rates}, {"巩固率", retention}};
    c.series = two;
    c.nseries = 2;
    c.threshold = 0;
    bx_buf_reset(&out);
    CHECK_INT(svg_bars(&c, &out), BX_OK);
    CHECK_INT(count(out.data, "<rect class=\"bar"), 5);
    CHECK_INT(count(out.data, "<rect class=\"key\""), 2);
    CHECK_INT(bar_heights(out.data, h, 8), 5);
    CHECK(fabs(h[1] - 198.0) < 0.05); /* 99 of an axis ending at 100 */
    bx_buf_free(&out);
}

BX_TEST(svg_escapes_every_text)
{
    const char *const names[] = {"<script>alert(1)</script>", "a&b\"c'"};
    const double v[] = {1, 2};
    svg_series s = {"<b>series</b>", v};
    svg_chart c = {.title = "<i>t</i>",
                   .unit = "",
                   .categories = names,
                   .ncategories = 2,
                   .series = &s,
                   .nseries = 1,
                   .threshold = 1.5,
                   .threshold_label = "<u>x</u>"};
    bx_buf out;
    bx_buf_init(&out, 0);
    CHECK_INT(svg_bars(&c, &out), BX_OK);
    CHECK(strstr(out.data, "<script") == NULL);
    CHECK(strstr(out.data, "<b>") == NULL);
    CHECK(strstr(out.data, "<i>") == NULL);
    CHECK(strstr(out.data, "<u>") == NULL);
    CHECK_CONTAINS(out.data, "&lt;script&gt;alert(1)&lt;/script&gt;");
    CHECK_CONTAINS(out.data, "a&amp;b&quot;c&#39;");
    bx_buf_reset(&out);
    CHECK_INT(svg_lines(&c, &out), BX_OK);
    CHECK(strstr(out.data, "<script") == NULL);
    CHECK_INT(count(out.data, "<circle class=\"point\""), 2);
    CHECK_CONTAINS(out.data, "data-category=\"&lt;script&gt;alert(1)&lt;/script&gt;\" "
                             "data-series=\"&lt;b&gt;series&lt;/b&gt;\" data-value=\"1\">");
    CHECK_INT(count(out.data, "<polyline"), 1);
    bx_buf_free(&out);
}

BX_TEST(svg_lines_and_bounds)
{
    const char *const weeks[] = {"10-05", "10-12", "10-19", "10-26"};
    const double opened[] = {4, 0, 2, 5}, closed[] = {0, 1, 3, -1};
    svg_series s[] = {{"新立案", opened}, {"结案", closed}};
    svg_chart c = {.title = "每周立案与结案",
                   .unit = "",
                   .categories = weeks,
                   .ncategories = 4,
                   .series = s,
                   .nseries = 2};
    bx_buf out;
    bx_buf_init(&out, 0);
    CHECK_INT(svg_lines(&c, &out), BX_OK);
    CHECK_INT(count(out.data, "<polyline"), 2);
    CHECK_INT(count(out.data, "<circle class=\"point\""), 7);
    CHECK_INT(count(out.data, "data-series=\"结案\""), 3); /* no point for "no data" */
    CHECK_CONTAINS(out.data, "data-category=\"10-26\" data-series=\"新立案\" data-value=\"5\">");
    CHECK_CONTAINS(out.data, "viewBox=\"0 0 360 ");
    /* no series, or too many: refused */
    c.nseries = 0;
    CHECK_INT(svg_bars(&c, &out), BX_EINVAL);
    c.nseries = SVG_MAX_SERIES + 1;
    CHECK_INT(svg_lines(&c, &out), BX_EINVAL);
    /* no categories: a frame with no bars */
    c.nseries = 1;
    c.ncategories = 0;
    bx_buf_reset(&out);
    CHECK_INT(svg_bars(&c, &out), BX_OK);
    CHECK_INT(count(out.data, "<rect class=\"bar"), 0);
    bx_buf_free(&out);
}
