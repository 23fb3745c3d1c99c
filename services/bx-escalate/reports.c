/* reports: 辍学率 and 巩固率 by class, school, township and county, with the seeds' thresholds, and
 * the roll-call reporting rate. */
#include "reports.h"

#include "bx_name.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX      32
#define COUNT_MAX   10000000
#define CLASSES_MAX 1000000

void reports_thresholds_default(reports_thresholds *t)
{
    t->primary_target = 0.01;
    t->junior_target = 0.03;
    t->class_fail = 0.01;
    t->school_fail = 0.03;
    t->rollcall_min = 0.90;
}

static const char *const level_names[] = {
    [REPORTS_CLASS] = "class",   [REPORTS_SCHOOL] = "school", [REPORTS_TOWNSHIP] = "township",
    [REPORTS_COUNTY] = "county", [REPORTS_CITY] = "city",     [REPORTS_PROVINCE] = "province",
};

const char *reports_level_name(reports_level level)
{
    return bx_name_of(level_names, BX_NAMES_COUNT(level_names), (int)level, "?");
}

void reports_counts_rates(reports_counts *c)
{
    c->dropout_valid = c->enrolled_start > 0;
    c->dropout_rate = c->dropout_valid ? (double)c->dropped_out / (double)c->enrolled_start : 0;
    long base = c->enrolled_start - c->transferred_out + c->transferred_in;
    c->retention_valid = base > 0;
    c->retention_rate = c->retention_valid ? (double)c->enrolled_now / (double)base : 0;
}

void reports_rate_text(bool valid, double rate, char out[16])
{
    if (!valid)
        snprintf(out, 16, "n/a");
    else
        snprintf(out, 16, "%.2f%%", rate * 100.0);
}

static bool id_ok(const char *id)
{
    return id != NULL && id[0] != '\0' && strlen(id) <= ID_MAX;
}

static bool count_ok(int n)
{
    return n >= 0 && n <= COUNT_MAX;
}

static bx_status validate(const reports_class_counts *c, size_t i, bx_error *err)
{
    const char *name = id_ok(c->class_id) ? c->class_id : "(bad id)";
    if (!id_ok(c->class_id) || !id_ok(c->school) || !id_ok(c->township) || !id_ok(c->county))
        return BX_ERR(err, BX_EINVAL, "class %zu (%s): ids must be 1 to %d bytes", i, name, ID_MAX);
    if (c->grade < 1 || c->grade > 9)
        return BX_ERR(err, BX_EINVAL, "class %s: grade %d is not 1 to 9", name, c->grade);
    if (!count_ok(c->enrolled_start) || !count_ok(c->enrolled_now) || !count_ok(c->dropped_out) ||
        !count_ok(c->transferred_out) || !count_ok(c->transferred_in))
        return BX_ERR(err, BX_EINVAL, "class %s: counts must be 0 to %d", name, COUNT_MAX);
    if (!count_ok(c->rollcall_due) || !count_ok(c->rollcall_reported) ||
        c->rollcall_reported > c->rollcall_due)
        return BX_ERR(err, BX_EINVAL,
                      "class %s: rollcall_reported %d of rollcall_due %d: expected 0 <= reported "
                      "<= due",
                      name, c->rollcall_reported, c->rollcall_due);
    return BX_OK;
}

/* The row a class adds to; a city or province is a prefix of the county code, cut into buf. */
static const char *key_of(const reports_class_counts *c, reports_level level, char buf[ID_MAX + 1])
{
    switch (level) {
    case REPORTS_CLASS:
        return c->class_id;
    case REPORTS_SCHOOL:
        return c->school;
    case REPORTS_TOWNSHIP:
        return c->township;
    case REPORTS_COUNTY:
        return c->county;
    case REPORTS_CITY:
    case REPORTS_PROVINCE:
        snprintf(buf, ID_MAX + 1, "%.*s", level == REPORTS_CITY ? 4 : 2, c->county);
        return buf;
    }
    return "";
}

/* ---- roll calls ---- */

void reports_rollcall_days(const bx_calendar *cal, bx_date first, bx_date last, bx_date today,
                           const bx_date *reported, size_t n, int *due, int *got)
{
    *due = *got = 0;
    if (cal == NULL || first == BX_DATE_NONE || last == BX_DATE_NONE || last < first ||
        today == BX_DATE_NONE || today < first)
        return;
    bx_date over = today - 1 < last ? today - 1 : last; /* the last day that is over */
    *due = bx_calendar_school_days_between(cal, first, over);
    bool today_in = today <= last && bx_calendar_is_school_day(cal, today);
    /* counted once each: the list may repeat a day (one roll call per period) */
    bool seen_today = false;
    for (size_t i = 0; i < n; i++) {
        bx_date d = reported[i];
        if (d < first || d > last || d > today || !bx_calendar_is_school_day(cal, d))
            continue;
        bool repeat = false;
        for (size_t k = 0; k < i && !repeat; k++)
            repeat = reported[k] == d;
        if (repeat)
            continue;
        if (d == today)
            seen_today = true;
        ++*got;
    }
    if (today_in && seen_today)
        ++*due;
}

bool reports_rollcall_incomplete(long due, long got, double min_share)
{
    long permille = lround(min_share * 1000.0);
    return due > 0 && got * 1000 < permille * due;
}

static void add_counts(reports_counts *sum, const reports_class_counts *c)
{
    sum->enrolled_start += c->enrolled_start;
    sum->enrolled_now += c->enrolled_now;
    sum->dropped_out += c->dropped_out;
    sum->transferred_out += c->transferred_out;
    sum->transferred_in += c->transferred_in;
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const reports_row *)a)->id, ((const reports_row *)b)->id);
}

static void flag_row(reports_row *r, const reports_thresholds *t)
{
    reports_counts_rates(&r->all);
    reports_counts_rates(&r->primary);
    reports_counts_rates(&r->junior);
    /* "under 1%" is the target, so reaching it misses; "over 1%" fails, so reaching it passes. */
    if (r->primary.dropout_valid && r->primary.dropout_rate >= t->primary_target)
        r->flags |= REPORTS_FLAG_PRIMARY_OVER;
    if (r->junior.dropout_valid && r->junior.dropout_rate >= t->junior_target)
        r->flags |= REPORTS_FLAG_JUNIOR_OVER;
    if (r->level == REPORTS_CLASS && r->all.dropout_valid && r->all.dropout_rate > t->class_fail)
        r->flags |= REPORTS_FLAG_CLASS_FAILS;
    if (r->level == REPORTS_SCHOOL && r->all.dropout_valid && r->all.dropout_rate > t->school_fail)
        r->flags |= REPORTS_FLAG_SCHOOL_FAILS;
    r->rollcall_valid = r->rollcall_due > 0;
    r->rollcall_rate =
        r->rollcall_valid ? (double)r->rollcall_reported / (double)r->rollcall_due : 0;
    if (r->level == REPORTS_CLASS && r->rollcall_incomplete > 0)
        r->flags |= REPORTS_FLAG_ROLLCALL_INCOMPLETE;
}

bx_status reports_aggregate(const reports_class_counts *classes, size_t n, reports_level level,
                            const reports_thresholds *thresholds, reports_row **rows, size_t *count,
                            bx_error *err)
{
    *rows = NULL;
    *count = 0;
    reports_thresholds defaults;
    reports_thresholds_default(&defaults);
    const reports_thresholds *t = thresholds ? thresholds : &defaults;
    if (n > CLASSES_MAX)
        return BX_ERR(err, BX_EINVAL, "%zu classes, more than %d", n, CLASSES_MAX);
    for (size_t i = 0; i < n; i++) {
        bx_status s = validate(&classes[i], i, err);
        if (s != BX_OK)
            return s;
    }
    reports_row *out = calloc(n > 0 ? n : 1, sizeof(*out));
    if (out == NULL)
        return BX_ERR(err, BX_ENOMEM, "no memory for %zu report rows", n);
    /* Sorted by key, so each class finds its row by binary search as rows are added in order. */
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const reports_class_counts *c = &classes[i];
        char prefix[ID_MAX + 1];
        const char *key = key_of(c, level, prefix);
        size_t lo = 0, hi = used;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(out[mid].id, key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        reports_row *r = &out[lo];
        if (lo == used || strcmp(r->id, key) != 0) {
            memmove(&out[lo + 1], &out[lo], (used - lo) * sizeof(*out));
            memset(r, 0, sizeof(*r));
            r->level = level;
            snprintf(r->id, sizeof(r->id), "%s", key);
            if (level < REPORTS_SCHOOL)
                snprintf(r->school, sizeof(r->school), "%s", c->school);
            if (level < REPORTS_TOWNSHIP)
                snprintf(r->township, sizeof(r->township), "%s", c->township);
            if (level < REPORTS_COUNTY)
                snprintf(r->county, sizeof(r->county), "%s", c->county);
            used++;
        } else if (level == REPORTS_CLASS) {
            free(out);
            return BX_ERR(err, BX_EINVAL, "class %s is given twice", key);
        }
        r->classes++;
        r->rollcall_due += c->rollcall_due;
        r->rollcall_reported += c->rollcall_reported;
        r->rollcall_incomplete +=
            reports_rollcall_incomplete(c->rollcall_due, c->rollcall_reported, t->rollcall_min);
        add_counts(&r->all, c);
        add_counts(c->grade <= 6 ? &r->primary : &r->junior, c);
    }
    for (size_t i = 0; i < used; i++)
        flag_row(&out[i], t);
    qsort(out, used, sizeof(*out), cmp_rows); /* already in order; keeps the promise explicit */
    *rows = out;
    *count = used;
    return BX_OK;
}

static const struct {
    unsigned bit;
    const char *name;
} flag_names[] = {
    {REPORTS_FLAG_PRIMARY_OVER, "primary_over_target"},
    {REPORTS_FLAG_JUNIOR_OVER, "junior_over_target"},
    {REPORTS_FLAG_CLASS_FAILS, "class_fails"},
    {REPORTS_FLAG_SCHOOL_FAILS, "school_fails"},
    {REPORTS_FLAG_ROLLCALL_INCOMPLETE, "rollcall_incomplete"},
};

/* The flags as "a b" (sep " ") or "a;b"; "" when none. */
static void flags_text(unsigned flags, const char *sep, char *out, size_t size)
{
    out[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++)
        if (flags & flag_names[i].bit) {
            int w = snprintf(out + len, size - len, "%s%s", len ? sep : "", flag_names[i].name);
            if (w < 0 || (size_t)w >= size - len)
                return;
            len += (size_t)w;
        }
}

bx_status reports_write_text(bx_buf *out, const reports_row *rows, size_t count)
{
    bx_status s = bx_buf_printf(out, "%-8s %-32s %7s %9s %7s %8s %7s %7s %9s %9s %9s %7s  %s\n",
                                "level", "id", "classes", "enrolled", "dropped", "dropout", "out",
                                "in", "now", "retention", "rollcall", "incompl", "flags");
    for (size_t i = 0; i < count && s == BX_OK; i++) {
        const reports_row *r = &rows[i];
        char dropout[16], retention[16], rollcall[16], flags[160];
        reports_rate_text(r->all.dropout_valid, r->all.dropout_rate, dropout);
        reports_rate_text(r->all.retention_valid, r->all.retention_rate, retention);
        reports_rate_text(r->rollcall_valid, r->rollcall_rate, rollcall);
        flags_text(r->flags, " ", flags, sizeof(flags));
        s = bx_buf_printf(out, "%-8s %-32s %7d %9ld %7ld %8s %7ld %7ld %9ld %9s %9s %7d  %s\n",
                          reports_level_name(r->level), r->id, r->classes, r->all.enrolled_start,
                          r->all.dropped_out, dropout, r->all.transferred_out,
                          r->all.transferred_in, r->all.enrolled_now, retention, rollcall,
                          r->rollcall_incomplete, flags);
    }
    return s;
}

static bx_status csv_stage(bx_buf *out, const reports_counts *c)
{
    char dropout[16], retention[16];
    reports_rate_text(c->dropout_valid, c->dropout_rate, dropout);
    reports_rate_text(c->retention_valid, c->retention_rate, retention);
    return bx_buf_printf(out, ",%ld,%ld,%s,%ld,%ld,%ld,%s", c->enrolled_start, c->dropped_out,
                         dropout, c->transferred_out, c->transferred_in, c->enrolled_now,
                         retention);
}

bx_status reports_write_csv(bx_buf *out, const reports_row *rows, size_t count)
{
    /* Ids are registry ids ([A-Za-z0-9_-]) and flags are fixed words: nothing needs quoting. */
    bx_status s = bx_buf_puts(out, "level,id,school,township,county,classes");
    const char *stages[] = {"", "primary_", "junior_"};
    for (int k = 0; k < 3 && s == BX_OK; k++)
        s = bx_buf_printf(out,
                          ",%senrolled_start,%sdropped_out,%sdropout_rate,%stransferred_out,"
                          "%stransferred_in,%senrolled_now,%sretention_rate",
                          stages[k], stages[k], stages[k], stages[k], stages[k], stages[k],
                          stages[k]);
    if (s == BX_OK)
        s = bx_buf_puts(out, ",rollcall_days_due,rollcall_days_reported,rollcall_rate,"
                             "rollcall_incomplete_classes,flags\r\n");
    for (size_t i = 0; i < count && s == BX_OK; i++) {
        const reports_row *r = &rows[i];
        char flags[160], rollcall[16];
        reports_rate_text(r->rollcall_valid, r->rollcall_rate, rollcall);
        flags_text(r->flags, ";", flags, sizeof(flags));
        s = bx_buf_printf(out, "%s,%s,%s,%s,%s,%d", reports_level_name(r->level), r->id, r->school,
                          r->township, r->county, r->classes);
        IFOK(s, csv_stage(out, &r->all));
        IFOK(s, csv_stage(out, &r->primary));
        IFOK(s, csv_stage(out, &r->junior));
        IFOK(s, bx_buf_printf(out, ",%ld,%ld,%s,%d,%s\r\n", r->rollcall_due, r->rollcall_reported,
                              rollcall, r->rollcall_incomplete, flags));
    }
    return s;
}

static bx_status json_rate(bx_buf *out, const char *name, bool valid, double rate)
{
    if (!valid)
        return bx_buf_printf(out, ",\"%s\":\"n/a\"", name);
    return bx_buf_printf(out, ",\"%s\":%.2f", name, rate * 100.0);
}

static bx_status json_stage(bx_buf *out, const char *name, const reports_counts *c)
{
    bx_status s = bx_buf_printf(out,
                                ",\"%s\":{\"enrolled_start\":%ld,\"dropped_out\":%ld,"
                                "\"transferred_out\":%ld,\"transferred_in\":%ld,"
                                "\"enrolled_now\":%ld",
                                name, c->enrolled_start, c->dropped_out, c->transferred_out,
                                c->transferred_in, c->enrolled_now);
    IFOK(s, json_rate(out, "dropout_rate_pct", c->dropout_valid, c->dropout_rate));
    IFOK(s, json_rate(out, "retention_rate_pct", c->retention_valid, c->retention_rate));
    IFOK(s, bx_buf_puts(out, "}"));
    return s;
}

/* ,"rollcall":{"days_due":..,"days_reported":..,"rate_pct":..,"incomplete_classes":..} */
static bx_status json_rollcall(bx_buf *out, const reports_row *r)
{
    bx_status s = bx_buf_printf(out, ",\"rollcall\":{\"days_due\":%ld,\"days_reported\":%ld",
                                r ? r->rollcall_due : 0, r ? r->rollcall_reported : 0);
    IFOK(s, json_rate(out, "rate_pct", r && r->rollcall_valid, r ? r->rollcall_rate : 0));
    IFOK(s, bx_buf_printf(out, ",\"incomplete_classes\":%d}", r ? r->rollcall_incomplete : 0));
    return s;
}

bx_status reports_write_figures_json(bx_buf *out, const reports_row *r,
                                     const reports_area_cases *cases)
{
    reports_counts none = {0};
    const reports_counts *c = r ? &r->all : &none;
    bx_status s = bx_buf_printf(out,
                                "{\"classes\":%d,\"enrolled_start\":%ld,\"enrolled_now\":%ld,"
                                "\"dropped_out\":%ld,\"transferred_out\":%ld,"
                                "\"transferred_in\":%ld",
                                r ? r->classes : 0, c->enrolled_start, c->enrolled_now,
                                c->dropped_out, c->transferred_out, c->transferred_in);
    IFOK(s, json_rate(out, "dropout_rate_pct", c->dropout_valid, c->dropout_rate));
    IFOK(s, json_rate(out, "retention_rate_pct", c->retention_valid, c->retention_rate));
    IFOK(s, bx_buf_printf(out,
                          ",\"ledger\":{\"suspected\":%ld,\"dropout\":%ld,\"returned\":%ld},"
                          "\"returns\":%ld",
                          cases->suspected, cases->dropout, cases->returned, cases->returns));
    IFOK(s, json_rollcall(out, r));
    IFOK(s, bx_buf_puts(out, "}"));
    return s;
}

bx_status reports_write_json(bx_buf *out, const reports_row *rows, size_t count)
{
    bx_status s = bx_buf_puts(out, "[");
    for (size_t i = 0; i < count && s == BX_OK; i++) {
        const reports_row *r = &rows[i];
        IFOK(s, bx_buf_printf(out, "%s{\"level\":\"%s\",\"id\":", i ? "," : "",
                              reports_level_name(r->level)));
        IFOK(s, bx_buf_json_string(out, r->id));
        const char *names[] = {"school", "township", "county"};
        const char *values[] = {r->school, r->township, r->county};
        for (int k = 0; k < 3 && s == BX_OK; k++) {
            s = bx_buf_printf(out, ",\"%s\":", names[k]);
            if (values[k][0] == '\0')
                IFOK(s, bx_buf_puts(out, "null"));
            else
                IFOK(s, bx_buf_json_string(out, values[k]));
        }
        IFOK(s, bx_buf_printf(out, ",\"classes\":%d", r->classes));
        IFOK(s, json_stage(out, "all", &r->all));
        IFOK(s, json_stage(out, "primary", &r->primary));
        IFOK(s, json_stage(out, "junior", &r->junior));
        IFOK(s, json_rollcall(out, r));
        IFOK(s, bx_buf_puts(out, ",\"flags\":["));
        int first = 1;
        for (size_t k = 0; k < sizeof(flag_names) / sizeof(flag_names[0]) && s == BX_OK; k++)
            if (r->flags & flag_names[k].bit) {
                s = bx_buf_printf(out, "%s\"%s\"", first ? "" : ",", flag_names[k].name);
                first = 0;
            }
        IFOK(s, bx_buf_puts(out, "]}"));
    }
    IFOK(s, bx_buf_puts(out, "]"));
    return s;
}

const reports_row *reports_row_find(const reports_row *rows, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(rows[mid].id, id);
        if (c == 0)
            return &rows[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
