/* svg: server-rendered charts for the dashboards (bars and lines with axes, labels and a legend
 * in Chinese). Pure: no I/O, no clock; every text written into the SVG is escaped, so a school's
 * name from the registry is text, never markup. The result is markup the server built, to be put
 * with tmpl_put_html and written with {{&name}}.
 *
 * Layout: a viewBox of 360 units wide at least (a phone's width), widened by 28 units per category
 * beyond 10 so that many schools stay readable (the page scrolls the chart sideways); width="100%"
 * scales it to the column, and print CSS keeps it within the page. Bars are vertical, grouped by
 * category, one colour per series, and a bar over the chart's threshold is drawn class "bar over"
 * (red) beside a dashed threshold line. Each bar and point carries data-category, data-series and
 * data-value (the value unrounded, "%.6g"), so a program reads the chart without its geometry;
 * tests count <rect class="bar..."> and compare heights and values.
 */
#ifndef CONSOLE_SVG_H
#define CONSOLE_SVG_H

#include "bx_buf.h"
#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

#define SVG_MAX_SERIES     6
#define SVG_MAX_CATEGORIES 2000
#define SVG_PLOT_HEIGHT    200.0 /* units of the tallest bar */

typedef struct svg_series {
    const char *name;     /* legend text */
    const double *values; /* one per category; a negative value is "no data" (no bar, no point) */
} svg_series;

typedef struct svg_chart {
    const char *title;             /* shown above, and the SVG's accessible name */
    const char *unit;              /* "%" for rates, "" for counts: tick and value labels */
    const char *const *categories; /* x labels, n of them */
    size_t ncategories;
    const svg_series *series; /* 1..SVG_MAX_SERIES */
    size_t nseries;
    double threshold;            /* > 0: a dashed line, and bars above it flagged */
    const char *threshold_label; /* "阈值 3%" */
} svg_chart;

/* Grouped vertical bars, appended to out. BX_EINVAL for a chart out of bounds (no series, too
 * many, NULL categories), BX_ENOMEM when out is full. */
bx_status svg_bars(const svg_chart *c, bx_buf *out) BX_MUSTCHECK;

/* One line per series over the categories (weeks, months), a dot at each point. */
bx_status svg_lines(const svg_chart *c, bx_buf *out) BX_MUSTCHECK;

/* The height of a bar of value v on a chart whose axis ends at top (svg_axis_top): for tests and
 * the chart itself. */
double svg_bar_height(double v, double top);

/* The axis' top for the largest value: a round number (1, 2, 2.5 or 5 times a power of ten) at
 * least max (and at least the threshold), 1 when everything is 0. */
double svg_axis_top(double max);

#endif
