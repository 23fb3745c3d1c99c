/* bx_calendar: civil dates, Asia/Shanghai time, and a school calendar answering "is this a school
 * day" and "how many school days" in O(1) from a prefix count kept current at every mutation. */
#include "bx_calendar.h"
#include "bx_json.h" /* bx_utf8_valid */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_DAY    (86400LL * 1000)
#define YEAR_MIN      1900
#define YEAR_MAX      2199
#define TERM_MAX      1024  /* more than a century of terms */
#define SPECIAL_MAX   65536 /* national and local days over many years */
#define SPAN_MARGIN   400   /* days counted before the first term and after the last */
#define CSV_LINE_MAX  1024
#define SHOWN_VALUE   40 /* bytes of a bad value quoted in an error */
#define TERM_DAYS_MAX 400

/* ---- civil dates (Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms") ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);                       /* [0, 399] */
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    const unsigned mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

bx_date bx_date_from_ymd(int y, int m, int d)
{
    assert(m >= 1 && m <= 12);
    /* Linear in d, so d outside the month counts on from its first day. */
    return (bx_date)(days_from_civil(y, (unsigned)m, 1) + d - 1);
}

void bx_date_to_ymd(bx_date date, int *y, int *m, int *d)
{
    int64_t yy;
    unsigned mm, dd;
    civil_from_days(date, &yy, &mm, &dd);
    *y = (int)yy;
    *m = (int)mm;
    *d = (int)dd;
}

int bx_date_weekday(bx_date d)
{
    /* 1970-01-01 was a Thursday (ISO 4). */
    int64_t r = ((int64_t)d % 7 + 7) % 7;
    return (int)((r + 3) % 7) + 1;
}

/* Reads exactly n decimal digits; no sign, no spaces. */
static bool read_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses "YYYY-MM-DD" at the start of s (which must have at least 10 readable bytes or a NUL). */
static bool parse_date_prefix(const char *s, bx_date *out)
{
    int y, m, d;
    for (int i = 0; i < 10; i++)
        if (s[i] == '\0')
            return false;
    if (!read_digits(s, 4, &y) || s[4] != '-' || !read_digits(s + 5, 2, &m) || s[7] != '-' ||
        !read_digits(s + 8, 2, &d))
        return false;
    if (y < YEAR_MIN || y > YEAR_MAX || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return false;
    *out = bx_date_from_ymd(y, m, d);
    return true;
}

bx_status bx_date_parse(const char *s, bx_date *out)
{
    bx_date d;
    if (s == NULL || !parse_date_prefix(s, &d) || s[10] != '\0')
        return BX_EINVAL;
    *out = d;
    return BX_OK;
}

static void put_digits(char *out, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void bx_date_format(bx_date d, char out[11])
{
    int y, m, day;
    if (d == BX_DATE_NONE) {
        memcpy(out, "0000-00-00", 11);
        return;
    }
    bx_date_to_ymd(d, &y, &m, &day);
    if (y < 0 || y > 9999) {
        memcpy(out, "0000-00-00", 11);
        return;
    }
    put_digits(out, y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, day, 2);
    out[10] = '\0';
}

/* ---- Asia/Shanghai time ---- */

bx_date bx_time_local_date(bx_time_ms t)
{
    return (bx_date)floor_div(t + BX_SHANGHAI_OFFSET_MS, MS_PER_DAY);
}

int bx_time_local_minute(bx_time_ms t)
{
    int64_t local = t + BX_SHANGHAI_OFFSET_MS;
    int64_t in_day = local - floor_div(local, MS_PER_DAY) * MS_PER_DAY;
    return (int)(in_day / 60000);
}

bx_time_ms bx_time_from_local(bx_date d, int hour, int minute)
{
    return (bx_time_ms)d * MS_PER_DAY + (int64_t)hour * 3600000 + (int64_t)minute * 60000 -
           BX_SHANGHAI_OFFSET_MS;
}

void bx_time_format(bx_time_ms t, char *out, size_t size)
{
    char date[11];
    int64_t local = t + BX_SHANGHAI_OFFSET_MS;
    bx_date d = (bx_date)floor_div(local, MS_PER_DAY);
    int64_t sec = (local - (int64_t)d * MS_PER_DAY) / 1000;
    bx_date_format(d, date);
    snprintf(out, size, "%sT%02d:%02d:%02d+08:00", date, (int)(sec / 3600), (int)(sec / 60 % 60),
             (int)(sec % 60));
}

bx_status bx_time_parse(const char *s, bx_time_ms *out)
{
    bx_date d;
    int hour, minute, second = 0, ms = 0;
    if (s == NULL || !parse_date_prefix(s, &d))
        return BX_EINVAL;
    const char *p = s + 10;
    char sep = *p++;
    bool rfc = sep == 'T' || sep == 't';
    if (!rfc && sep != ' ')
        return BX_EINVAL;
    if (!read_digits(p, 2, &hour) || p[2] != ':' || !read_digits(p + 3, 2, &minute))
        return BX_EINVAL;
    p += 5;
    if (*p == ':') {
        if (!read_digits(p + 1, 2, &second))
            return BX_EINVAL;
        p += 3;
        if (*p == '.') {
            /* Fractions beyond milliseconds are dropped, at most 9 digits accepted. */
            int digits = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
                if (digits < 3)
                    ms = ms * 10 + (*p - '0');
            }
            if (digits == 0 || digits > 9)
                return BX_EINVAL;
            for (int i = digits; i < 3; i++)
                ms *= 10;
        }
    } else if (rfc) {
        return BX_EINVAL; /* RFC 3339 requires seconds */
    }
    if (hour > 23 || minute > 59 || second > 59)
        return BX_EINVAL;

    int64_t offset_ms;
    if (*p == 'Z' || *p == 'z') {
        offset_ms = 0;
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!read_digits(p + 1, 2, &oh) || p[3] != ':' || !read_digits(p + 4, 2, &om) || oh > 23 ||
            om > 59)
            return BX_EINVAL;
        offset_ms = ((int64_t)oh * 60 + om) * 60000 * (*p == '-' ? -1 : 1);
        p += 6;
    } else if (!rfc) {
        offset_ms = BX_SHANGHAI_OFFSET_MS; /* "YYYY-MM-DD HH:MM[:SS]" is Shanghai local time */
    } else {
        return BX_EINVAL; /* RFC 3339 requires an offset */
    }
    if (*p != '\0')
        return BX_EINVAL;
    *out = (bx_time_ms)d * MS_PER_DAY + (int64_t)hour * 3600000 + (int64_t)minute * 60000 +
           (int64_t)second * 1000 + ms - offset_ms;
    return BX_OK;
}

/* ---- the school calendar ---- */

typedef struct special_day {
    bx_date date;
    bx_day_kind kind;
} special_day;

struct bx_calendar {
    bx_term *terms; /* sorted by first, never overlapping */
    size_t term_count, term_cap;
    special_day *days; /* sorted by date, one entry a date */
    size_t day_count, day_cap;
    /* school_before[i] = school days in [span_first, span_first + i), for i in 0..span_len. Outside
     * [span_first, span_first + span_len) no day is in a term, so no day is a school day. */
    bx_date span_first;
    int32_t span_len;
    int32_t *school_before;
};

bx_calendar *bx_calendar_new(void)
{
    return calloc(1, sizeof(bx_calendar));
}

void bx_calendar_free(bx_calendar *c)
{
    if (c == NULL)
        return;
    free(c->terms);
    free(c->days);
    free(c->school_before);
    free(c);
}

static bool date_in_range(bx_date d)
{
    return d >= bx_date_from_ymd(YEAR_MIN, 1, 1) && d <= bx_date_from_ymd(YEAR_MAX, 12, 31);
}

/* The position of the first special day not before d (binary search over the sorted days). */
static size_t day_position(const bx_calendar *c, bx_date d)
{
    size_t lo = 0, hi = c->day_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->days[mid].date < d)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const special_day *find_day(const bx_calendar *c, bx_date d)
{
    size_t lo = day_position(c, d);
    return lo < c->day_count && c->days[lo].date == d ? &c->days[lo] : NULL;
}

/* The rule, from first principles; the prefix array caches it. */
static bool school_day_by_rule(const bx_calendar *c, bx_date d)
{
    if (bx_calendar_term_of(c, d) == NULL)
        return false;
    const special_day *sd = find_day(c, d);
    if (sd != NULL && sd->kind == BX_DAY_MAKEUP_WORKDAY)
        return true;
    if (sd != NULL)
        return false; /* holiday or closure */
    return bx_date_weekday(d) <= 5;
}

/* Recounts school_before over the current span; no allocation. */
static void recount(bx_calendar *c)
{
    int32_t count = 0;
    for (int32_t i = 0; i < c->span_len; i++) {
        c->school_before[i] = count;
        count += school_day_by_rule(c, c->span_first + i);
    }
    if (c->school_before != NULL)
        c->school_before[c->span_len] = count;
}

/* Sizes the span to the terms (plus margins) and recounts. On failure c is unchanged. */
static bx_status respan(bx_calendar *c)
{
    if (c->term_count == 0) {
        free(c->school_before);
        c->school_before = NULL;
        c->span_len = 0;
        return BX_OK;
    }
    bx_date first = c->terms[0].first - SPAN_MARGIN;
    bx_date last = c->terms[c->term_count - 1].last + SPAN_MARGIN;
    int32_t len = last - first + 1;
    int32_t *counts = realloc(c->school_before, ((size_t)len + 1) * sizeof(int32_t));
    if (counts == NULL)
        return BX_ENOMEM;
    c->school_before = counts;
    c->span_first = first;
    c->span_len = len;
    recount(c);
    return BX_OK;
}

static void format_term(const bx_term *t, char *out, size_t size)
{
    char a[11], b[11];
    bx_date_format(t->first, a);
    bx_date_format(t->last, b);
    snprintf(out, size, "%s (%s..%s)", t->code, a, b);
}

bx_status bx_calendar_add_term(bx_calendar *c, const char *code, bx_date first, bx_date last,
                               bx_error *err)
{
    size_t code_len = code ? strlen(code) : 0;
    if (code_len == 0 || code_len >= sizeof(((bx_term *)0)->code))
        return BX_ERR(err, BX_EINVAL, "term code: expected 1..%zu bytes, got %zu",
                      sizeof(((bx_term *)0)->code) - 1, code_len);
    for (size_t i = 0; i < code_len; i++)
        if ((unsigned char)code[i] <= ' ' || (unsigned char)code[i] >= 0x7f)
            return BX_ERR(err, BX_EINVAL, "term %.15s: code: expected printable ASCII", code);
    if (!date_in_range(first) || !date_in_range(last))
        return BX_ERR(err, BX_EINVAL, "term %s: dates must lie in %d..%d", code, YEAR_MIN,
                      YEAR_MAX);
    if (last < first || last - first + 1 > TERM_DAYS_MAX)
        return BX_ERR(err, BX_EINVAL, "term %s: expected first <= last and at most %d days", code,
                      TERM_DAYS_MAX);
    if (c->term_count == TERM_MAX)
        return BX_ERR(err, BX_ENOMEM, "term %s: a calendar holds at most %d terms", code, TERM_MAX);

    size_t at = 0;
    while (at < c->term_count && c->terms[at].first < first)
        at++;
    for (size_t i = 0; i < c->term_count; i++) {
        const bx_term *other = &c->terms[i];
        char shown[64];
        if (strcmp(other->code, code) == 0) {
            format_term(other, shown, sizeof(shown));
            return BX_ERR(err, BX_EINVAL, "term %s: code already used by %s", code, shown);
        }
        if (first <= other->last && other->first <= last) {
            char a[11], b[11];
            format_term(other, shown, sizeof(shown));
            bx_date_format(first, a);
            bx_date_format(last, b);
            return BX_ERR(err, BX_EINVAL, "term %s (%s..%s) overlaps term %s", code, a, b, shown);
        }
    }

    if (c->term_count == c->term_cap) {
        size_t cap = c->term_cap ? c->term_cap * 2 : 8;
        bx_term *terms = realloc(c->terms, cap * sizeof(bx_term));
        if (terms == NULL)
            return BX_ERR(err, BX_ENOMEM, "term %s: out of memory", code);
        c->terms = terms;
        c->term_cap = cap;
    }
    memmove(&c->terms[at + 1], &c->terms[at], (c->term_count - at) * sizeof(bx_term));
    bx_term *t = &c->terms[at];
    memset(t, 0, sizeof(*t));
    memcpy(t->code, code, code_len);
    t->first = first;
    t->last = last;
    c->term_count++;

    bx_status s = respan(c);
    if (s != BX_OK) {
        /* Keep the calendar as it was: the old span still fits the old terms. */
        c->term_count--;
        memmove(&c->terms[at], &c->terms[at + 1], (c->term_count - at) * sizeof(bx_term));
        return BX_ERR(err, s, "term %s: out of memory", code);
    }
    return BX_OK;
}

static bx_status reserve_days(bx_calendar *c, size_t extra)
{
    if (c->day_count + extra > SPECIAL_MAX)
        return BX_ENOMEM;
    if (c->day_count + extra <= c->day_cap)
        return BX_OK;
    size_t cap = c->day_cap ? c->day_cap : 64;
    while (cap < c->day_count + extra)
        cap *= 2;
    special_day *days = realloc(c->days, cap * sizeof(special_day));
    if (days == NULL)
        return BX_ENOMEM;
    c->days = days;
    c->day_cap = cap;
    return BX_OK;
}

/* Inserts or replaces; capacity must have been reserved. */
static void put_day(bx_calendar *c, bx_date d, bx_day_kind kind)
{
    size_t lo = day_position(c, d);
    if (lo < c->day_count && c->days[lo].date == d) {
        c->days[lo].kind = kind;
        return;
    }
    assert(c->day_count < c->day_cap);
    memmove(&c->days[lo + 1], &c->days[lo], (c->day_count - lo) * sizeof(special_day));
    c->days[lo].date = d;
    c->days[lo].kind = kind;
    c->day_count++;
}

static bool kind_valid(bx_day_kind kind)
{
    return kind == BX_DAY_HOLIDAY || kind == BX_DAY_MAKEUP_WORKDAY || kind == BX_DAY_CLOSURE;
}

bx_status bx_calendar_set_day(bx_calendar *c, bx_date d, bx_day_kind kind)
{
    if (!date_in_range(d) || !kind_valid(kind))
        return BX_EINVAL;
    if (find_day(c, d) == NULL) {
        bx_status s = reserve_days(c, 1);
        if (s != BX_OK)
            return s;
    }
    bool was = school_day_by_rule(c, d);
    put_day(c, d, kind);
    bool now = school_day_by_rule(c, d);
    if (was != now) {
        /* Only the counts after d change, all by the same amount. */
        assert(d >= c->span_first && d - c->span_first < c->span_len);
        for (int32_t i = d - c->span_first + 1; i <= c->span_len; i++)
            c->school_before[i] += now ? 1 : -1;
    }
    return BX_OK;
}

/* ---- the CSV of special days ---- */

typedef struct csv_row {
    bx_date date;
    bx_day_kind kind;
    int line;
} csv_row;

static int compare_rows(const void *a, const void *b)
{
    const csv_row *x = a, *y = b;
    if (x->date != y->date)
        return x->date < y->date ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Splits line at commas in place; returns the number of fields (up to max; more are counted). */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < max)
            fields[n] = p;
        n++;
        char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

/* One data line of the file (text, in place) as a row: BX_EINVAL naming path:line and the
 * field. */
static bx_status day_row_parse(const char *path, int line_no, char *text, csv_row *row,
                               bx_error *err)
{
    char *field[3];
    int n = split_fields(text, field, 3);
    if (n != 3)
        return BX_ERR(err, BX_EINVAL, "%s:%d: expected 3 fields (date,kind,name), got %d", path,
                      line_no, n);
    *row = (csv_row){.line = line_no};
    if (bx_date_parse(field[0], &row->date) != BX_OK)
        return BX_ERR(err, BX_EINVAL, "%s:%d: date: expected YYYY-MM-DD in %d..%d, got \"%.*s\"",
                      path, line_no, YEAR_MIN, YEAR_MAX, SHOWN_VALUE, field[0]);
    if (strcmp(field[1], "holiday") == 0)
        row->kind = BX_DAY_HOLIDAY;
    else if (strcmp(field[1], "makeup_workday") == 0)
        row->kind = BX_DAY_MAKEUP_WORKDAY;
    else if (strcmp(field[1], "closure") == 0)
        row->kind = BX_DAY_CLOSURE;
    else
        return BX_ERR(err, BX_EINVAL,
                      "%s:%d: kind: expected holiday, makeup_workday or closure, got \"%.*s\"",
                      path, line_no, SHOWN_VALUE, field[1]);
    if (field[2][0] == '\0' || !bx_utf8_valid(field[2], strlen(field[2])))
        return BX_ERR(err, BX_EINVAL, "%s:%d: name: expected non-empty UTF-8 text", path, line_no);
    return BX_OK;
}

/* The rows read so far, growing up to SPECIAL_MAX. */
typedef struct day_rows {
    csv_row *rows;
    size_t count, cap;
} day_rows;

static bx_status day_rows_add(day_rows *r, csv_row row, const char *path, bx_error *err)
{
    if (r->count == r->cap) {
        if (r->cap >= SPECIAL_MAX)
            return BX_ERR(err, BX_ENOMEM, "%s:%d: more than %d days", path, row.line, SPECIAL_MAX);
        size_t cap = r->cap ? r->cap * 2 : 64;
        csv_row *grown = realloc(r->rows, cap * sizeof(csv_row));
        if (grown == NULL)
            return BX_ERR(err, BX_ENOMEM, "%s:%d: out of memory", path, row.line);
        r->rows = grown;
        r->cap = cap;
    }
    r->rows[r->count++] = row;
    return BX_OK;
}

/* Every line of the open file f: the header "date,kind,name" first, then the rows. Blank lines,
 * a UTF-8 byte order mark and CRLF line ends are fine. */
static bx_status day_rows_read(FILE *f, const char *path, day_rows *r, bx_error *err)
{
    char line[CSV_LINE_MAX + 2];
    int line_no = 0;
    bool header_seen = false;
    bx_status s = BX_OK;
    while (s == BX_OK && fgets(line, sizeof(line), f) != NULL) {
        line_no++;
        size_t len = strlen(line);
        bool complete = len > 0 && line[len - 1] == '\n';
        if (!complete && !feof(f))
            return BX_ERR(err, BX_EINVAL, "%s:%d: line longer than %d bytes or holding a NUL byte",
                          path, line_no, CSV_LINE_MAX);
        if (complete)
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        char *text = line;
        if (line_no == 1 && strncmp(text, "\xef\xbb\xbf", 3) == 0)
            text += 3; /* a UTF-8 byte order mark, as spreadsheets write */
        if (text[0] == '\0')
            continue;
        if (header_seen) {
            csv_row row = {0};
            s = day_row_parse(path, line_no, text, &row, err);
            IFOK(s, day_rows_add(r, row, path, err));
        } else if (strcmp(text, "date,kind,name") == 0) {
            header_seen = true;
        } else {
            return BX_ERR(err, BX_EINVAL,
                          "%s:%d: header: expected \"date,kind,name\", got \"%.*s\"", path, line_no,
                          SHOWN_VALUE, text);
        }
    }
    if (s == BX_OK && ferror(f))
        return BX_ERR(err, BX_EIO, "%s:%d: read error", path, line_no);
    if (s == BX_OK && !header_seen)
        return BX_ERR(err, BX_EINVAL, "%s:1: header: expected \"date,kind,name\", file is empty",
                      path);
    return s;
}

/* A date listed twice is a mistake in the file, not a replacement (rows sorted by date here). */
static bx_status day_rows_unique(const char *path, day_rows *r, bx_error *err)
{
    if (r->count > 1) /* qsort wants a non-null array even for zero rows */
        qsort(r->rows, r->count, sizeof(csv_row), compare_rows);
    for (size_t i = 1; i < r->count; i++) {
        if (r->rows[i].date == r->rows[i - 1].date) {
            char shown[11];
            bx_date_format(r->rows[i].date, shown);
            return BX_ERR(err, BX_EINVAL, "%s:%d: date: %s already listed on line %d", path,
                          r->rows[i].line, shown, r->rows[i - 1].line);
        }
    }
    return BX_OK;
}

bx_status bx_calendar_load_days_csv(bx_calendar *c, const char *path, bx_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return BX_ERR(err, BX_EIO, "%s: cannot open: %s", path, strerror(errno));
    day_rows r = {0};
    bx_status s = day_rows_read(f, path, &r, err);
    fclose(f);
    IFOK(s, day_rows_unique(path, &r, err));
    /* Apply all or nothing: the whole file parsed, and room is reserved before any change. */
    if (s == BX_OK && reserve_days(c, r.count) != BX_OK)
        s = BX_ERR(err, BX_ENOMEM, "%s: too many special days for one calendar (max %d)", path,
                   SPECIAL_MAX);
    if (s == BX_OK) {
        for (size_t i = 0; i < r.count; i++)
            put_day(c, r.rows[i].date, r.rows[i].kind);
        recount(c);
    }
    free(r.rows);
    return s;
}

/* ---- queries: read-only, safe from many threads once building is done ---- */

const bx_term *bx_calendar_term_of(const bx_calendar *c, bx_date d)
{
    size_t lo = 0, hi = c->term_count;
    while (lo < hi) { /* the first term starting after d */
        size_t mid = lo + (hi - lo) / 2;
        if (c->terms[mid].first <= d)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const bx_term *t = &c->terms[lo - 1];
    return d <= t->last ? t : NULL;
}

static bool in_span(const bx_calendar *c, bx_date d)
{
    return c->span_len > 0 && d >= c->span_first && (int64_t)d - c->span_first < c->span_len;
}

bool bx_calendar_is_school_day(const bx_calendar *c, bx_date d)
{
    if (!in_span(c, d))
        return false;
    int32_t i = d - c->span_first;
    return c->school_before[i + 1] != c->school_before[i];
}

/* School days in [span_first, d), with d clamped to the span. */
static int32_t school_before(const bx_calendar *c, int64_t d)
{
    if (c->span_len == 0 || d <= c->span_first)
        return 0;
    int64_t i = d - c->span_first;
    return c->school_before[i > c->span_len ? c->span_len : i];
}

int bx_calendar_school_days_between(const bx_calendar *c, bx_date from, bx_date to)
{
    if (to < from)
        return 0;
    return school_before(c, (int64_t)to + 1) - school_before(c, from);
}

bx_date bx_calendar_add_school_days(const bx_calendar *c, bx_date d, int n)
{
    if (!in_span(c, d))
        return BX_DATE_NONE;
    int32_t i = d - c->span_first;
    /* The school day sought is the one that makes the running count reach target. */
    int64_t target = n >= 0 ? (int64_t)c->school_before[i + 1] + (n == 0 ? 1 : n)
                            : (int64_t)c->school_before[i] + n + 1;
    if (n == 0 && c->school_before[i + 1] != c->school_before[i])
        return d;
    if (target < 1 || target > c->school_before[c->span_len])
        return BX_DATE_NONE;
    /* The smallest j with school_before[j] >= target; the day is span_first + j - 1. */
    int32_t lo = 1, hi = c->span_len;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (c->school_before[mid] < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c->span_first + lo - 1;
}
