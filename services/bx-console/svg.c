/* svg: bars and lines as server-built SVG (svg.h). */
#include "svg.h"

#include "tmpl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LEFT      48.0 /* room for the y ticks */
#define RIGHT     12.0
#define TOP       56.0 /* title and legend */
#define BOTTOM    84.0 /* rotated category labels */
#define MIN_WIDTH 360.0
#define PER_CAT   28.0
#define FONT      "font-family=\"'Noto Sans CJK SC','Noto Sans SC',sans-serif\""

static const char *const colors[SVG_MAX_SERIES] = {"#2b6cb0", "#dd8a1f", "#2f855a",
                                                   "#6b46c1", "#718096", "#b7791f"};

double svg_axis_top(double max)
{
    if (!(max > 0))
        return 1.0;
    double p = pow(10.0, floor(log10(max)));
    static const double steps[] = {1.0, 2.0, 2.5, 5.0, 10.0};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (steps[i] * p >= max - 1e-12)
            return steps[i] * p;
    return 10.0 * p;
}

double svg_bar_height(double v, double top)
{
    if (!(v > 0) || !(top > 0))
        return 0.0;
    double h = v / top * SVG_PLOT_HEIGHT;
    return h > SVG_PLOT_HEIGHT ? SVG_PLOT_HEIGHT : h;
}

static bx_status text(bx_buf *out, const char *s)
{
    return tmpl_escape(out, s ? s : "");
}

/* A value as a label: "1.25%" or "12". */
static void value_text(double v, const char *unit, char *buf, size_t size)
{
    if (unit && strcmp(unit, "%") == 0)
        snprintf(buf, size, "%.2f%%", v);
    else if (fabs(v - round(v)) < 1e-9)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.1f", v);
}

/* What a bar or point stands for, for a program reading the chart (tests, a screen reader's
 * scripts): data-category, data-series and the value itself (not rounded as its label). */
static bx_status data_attributes(bx_buf *out, const svg_chart *c, size_t k, size_t i)
{
    bx_status s = bx_buf_puts(out, " data-category=\"");
    IFOK(s, text(out, c->categories[i]));
    IFOK(s, bx_buf_puts(out, "\" data-series=\""));
    IFOK(s, text(out, c->series[k].name));
    IFOK(s, bx_buf_printf(out, "\" data-value=\"%.6g\"", c->series[k].values[i]));
    return s;
}

static bx_status check(const svg_chart *c)
{
    if (c == NULL || c->nseries < 1 || c->nseries > SVG_MAX_SERIES || c->series == NULL ||
        c->ncategories > SVG_MAX_CATEGORIES || (c->ncategories > 0 && c->categories == NULL))
        return BX_EINVAL;
    for (size_t s = 0; s < c->nseries; s++)
        if (c->ncategories > 0 && c->series[s].values == NULL)
            return BX_EINVAL;
    return BX_OK;
}

static double width_of(const svg_chart *c)
{
    double w = LEFT + RIGHT + PER_CAT * (double)c->ncategories;
    return w < MIN_WIDTH ? MIN_WIDTH : w;
}

static double max_value(const svg_chart *c)
{
    double m = c->threshold > 0 ? c->threshold : 0;
    for (size_t s = 0; s < c->nseries; s++)
        for (size_t i = 0; i < c->ncategories; i++)
            if (c->series[s].values[i] > m)
                m = c->series[s].values[i];
    return m;
}

/* The frame: the svg element, title, legend, y axis with ticks and grid, x axis. */
static bx_status frame(bx_buf *out, const svg_chart *c, double w, double top, bool bars)
{
    double h = TOP + SVG_PLOT_HEIGHT + BOTTOM;
    /* Up to 12 categories the chart scales to the column (a phone's 360 px); beyond, it keeps
     * 28 units a category and the page scrolls sideways (no inline style: the CSP forbids it). */
    char width[16];
    if (c->ncategories <= 12)
        snprintf(width, sizeof(width), "100%%");
    else
        snprintf(width, sizeof(width), "%.0f", w);
    bx_status s = bx_buf_printf(out,
                                "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" "
                                "viewBox=\"0 0 %.0f %.0f\" width=\"%s\" role=\"img\" "
                                "aria-label=\"",
                                w, h, width);
    IFOK(s, text(out, c->title));
    IFOK(s, bx_buf_printf(out, "\" " FONT " font-size=\"12\"><title>"));
    IFOK(s, text(out, c->title));
    IFOK(s, bx_buf_printf(out, "</title><text x=\"4\" y=\"16\" font-size=\"14\" "
                               "font-weight=\"bold\">"));
    IFOK(s, text(out, c->title));
    IFOK(s, bx_buf_puts(out, "</text>"));
    /* legend: a swatch and a name per series, in a row */
    double x = 4;
    for (size_t i = 0; i < c->nseries && s == BX_OK; i++) {
        if (bars)
            s = bx_buf_printf(out,
                              "<rect class=\"key\" x=\"%.0f\" y=\"26\" width=\"12\" height=\"12\" "
                              "fill=\"%s\"/>",
                              x, colors[i]);
        else
            s = bx_buf_printf(out,
                              "<line class=\"key\" x1=\"%.0f\" y1=\"32\" x2=\"%.0f\" y2=\"32\" "
                              "stroke=\"%s\" stroke-width=\"3\"/>",
                              x, x + 12, colors[i]);
        IFOK(s, bx_buf_printf(out, "<text x=\"%.0f\" y=\"37\">", x + 16));
        IFOK(s, text(out, c->series[i].name));
        IFOK(s, bx_buf_puts(out, "</text>"));
        x += 16 + 13.0 * (double)(c->series[i].name ? strlen(c->series[i].name) / 3 + 2 : 2);
    }
    /* y ticks at 0, 1/4 .. top, with a light grid */
    for (int t = 0; t <= 4 && s == BX_OK; t++) {
        double v = top * t / 4.0, y = TOP + SVG_PLOT_HEIGHT - SVG_PLOT_HEIGHT * t / 4.0;
        char label[32];
        value_text(v, c->unit, label, sizeof(label));
        s = bx_buf_printf(
            out,
            "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#e2e8f0\"/>"
            "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
            LEFT, y, w - RIGHT, y, LEFT - 4, y + 4, label);
    }
    IFOK(s, bx_buf_printf(out,
                          "<line class=\"axis\" x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
                          "stroke=\"#1a202c\"/><line class=\"axis\" x1=\"%.0f\" y1=\"%.0f\" "
                          "x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1a202c\"/>",
                          LEFT, TOP, LEFT, TOP + SVG_PLOT_HEIGHT, LEFT, TOP + SVG_PLOT_HEIGHT,
                          w - RIGHT, TOP + SVG_PLOT_HEIGHT));
    /* category labels, rotated so long school names fit */
    for (size_t i = 0; i < c->ncategories && s == BX_OK; i++) {
        double cx = LEFT + PER_CAT * ((double)i + 0.5);
        s = bx_buf_printf(out,
                          "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"end\" "
                          "transform=\"rotate(-45 %.1f %.0f)\">",
                          cx, TOP + SVG_PLOT_HEIGHT + 14, cx, TOP + SVG_PLOT_HEIGHT + 14);
        IFOK(s, text(out, c->categories[i]));
        IFOK(s, bx_buf_puts(out, "</text>"));
    }
    return s;
}

static bx_status threshold_line(bx_buf *out, const svg_chart *c, double w, double top)
{
    if (!(c->threshold > 0))
        return BX_OK;
    double y = TOP + SVG_PLOT_HEIGHT - svg_bar_height(c->threshold, top);
    bx_status s = bx_buf_printf(out,
                                "<line class=\"threshold\" x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" "
                                "y2=\"%.1f\" stroke=\"#c53030\" stroke-dasharray=\"6 4\"/>"
                                "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#c53030\">",
                                LEFT, y, w - RIGHT, y, w - RIGHT, y - 4);
    IFOK(s, text(out, c->threshold_label));
    IFOK(s, bx_buf_puts(out, "</text>"));
    return s;
}

/* The end of the mark (tag) of series k's value in category i: its data attributes, its tooltip
 * "<category> <series>: <label><note>" and the closing tag. */
static bx_status mark_end(bx_buf *out, const svg_chart *c, size_t k, size_t i, const char *label,
                          const char *note, const char *tag)
{
    bx_status s = data_attributes(out, c, k, i);
    IFOK(s, bx_buf_puts(out, "><title>"));
    IFOK(s, text(out, c->categories[i]));
    IFOK(s, bx_buf_puts(out, " "));
    IFOK(s, text(out, c->series[k].name));
    IFOK(s, bx_buf_printf(out, ": %s%s</title></%s>", label, note, tag));
    return s;
}

static bx_status bar_marks(bx_buf *out, const svg_chart *c, double top)
{
    bx_status s = BX_OK;
    double group = PER_CAT - 6, bw = group / (double)c->nseries;
    for (size_t i = 0; i < c->ncategories && s == BX_OK; i++) {
        for (size_t k = 0; k < c->nseries && s == BX_OK; k++) {
            double v = c->series[k].values[i];
            if (v < 0)
                continue;
            double h = svg_bar_height(v, top);
            double x = LEFT + PER_CAT * (double)i + 3 + bw * (double)k;
            bool over = c->threshold > 0 && v > c->threshold;
            char label[32];
            value_text(v, c->unit, label, sizeof(label));
            s = bx_buf_printf(out,
                              "<rect class=\"bar%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                              "height=\"%.1f\" fill=\"%s\"",
                              over ? " over" : "", x, TOP + SVG_PLOT_HEIGHT - h, bw, h,
                              over ? "#c53030" : colors[k]);
            IFOK(s, mark_end(out, c, k, i, label, over ? "（超过阈值）" : "", "rect"));
        }
    }
    return s;
}

static bx_status line_marks(bx_buf *out, const svg_chart *c, double top)
{
    bx_status s = BX_OK;
    for (size_t k = 0; k < c->nseries && s == BX_OK; k++) {
        s = bx_buf_printf(out,
                          "<polyline class=\"line\" fill=\"none\" stroke=\"%s\" "
                          "stroke-width=\"2\" points=\"",
                          colors[k]);
        for (size_t i = 0; i < c->ncategories && s == BX_OK; i++) {
            double v = c->series[k].values[i];
            if (v >= 0)
                s = bx_buf_printf(out, "%s%.1f,%.1f", i ? " " : "",
                                  LEFT + PER_CAT * ((double)i + 0.5),
                                  TOP + SVG_PLOT_HEIGHT - svg_bar_height(v, top));
        }
        IFOK(s, bx_buf_puts(out, "\"/>"));
        for (size_t i = 0; i < c->ncategories && s == BX_OK; i++) {
            double v = c->series[k].values[i];
            if (v < 0)
                continue;
            char label[32];
            value_text(v, c->unit, label, sizeof(label));
            s = bx_buf_printf(out,
                              "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" "
                              "fill=\"%s\"",
                              LEFT + PER_CAT * ((double)i + 0.5),
                              TOP + SVG_PLOT_HEIGHT - svg_bar_height(v, top), colors[k]);
            IFOK(s, mark_end(out, c, k, i, label, "", "circle"));
        }
    }
    return s;
}

/* A whole chart: checked, its frame (axis top from the largest value), the marks of its values
 * (bar_marks or line_marks), the threshold line. */
static bx_status chart(const svg_chart *c, bx_buf *out, bool bars,
                       bx_status (*marks)(bx_buf *out, const svg_chart *c, double top))
{
    bx_status s = check(c);
    if (s != BX_OK)
        return s;
    double w = width_of(c), top = svg_axis_top(max_value(c));
    s = frame(out, c, w, top, bars);
    IFOK(s, marks(out, c, top));
    IFOK(s, threshold_line(out, c, w, top));
    IFOK(s, bx_buf_puts(out, "</svg>"));
    return s;
}

bx_status svg_bars(const svg_chart *c, bx_buf *out)
{
    return chart(c, out, true, bar_marks);
}

bx_status svg_lines(const svg_chart *c, bx_buf *out)
{
    return chart(c, out, false, line_marks);
}
