/* Unit tests for bx_calendar: dates, Shanghai time, and the 2026 school calendar. */
#include "bx_calendar.h"
#include "bx_test.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bx_date D(const char *s)
{
    bx_date d = BX_DATE_NONE;
    if (bx_date_parse(s, &d) != BX_OK)
        BX_FAIL_AT("test date %s does not parse", s);
    return d;
}

/* ---- dates ---- */

BX_TEST(date_parse_known_days)
{
    static const struct {
        const char *text;
        bx_date days;
    } rows[] = {
        {"1900-01-01", -25567}, {"1969-12-31", -1},    {"1970-01-01", 0},
        {"2000-01-01", 10957},  {"2000-02-29", 11016}, {"2024-02-29", 19782},
        {"2026-03-02", 20514},  {"2026-10-01", 20727}, {"2199-12-31", 84005},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_date d = BX_DATE_NONE;
        char back[11];
        CHECK_INT(bx_date_parse(rows[i].text, &d), BX_OK);
        CHECK_INT(d, rows[i].days);
        bx_date_format(rows[i].days, back);
        CHECK_STR(back, rows[i].text);
    }
}

BX_TEST(date_parse_rejects)
{
    static const char *const rows[] = {
        "2026-2-3",
        "2026-02-30",
        "2026-02-03x",
        "1899-12-31",
        "2200-01-01",
        "2025-02-29",
        "2100-02-29",
        "1900-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "2026-01-32",
        "2026-04-31",
        "2026/01/01",
        " 2026-01-01",
        "2026-01-01 ",
        "2026-01-1",
        "20260101",
        "+026-01-01",
        "-026-01-01",
        "2026-1-01",
        "",
        "2026-01-0a",
        "0000-01-01",
        "9999-12-31",
        "2026-06-31",
        "2026-09-31",
        "2026-11-31",
        "2026-02-29",
        "2026-01-01T",
        "2026\357\274\21501-01", /* a fullwidth hyphen (octal: a hex escape would run on) */
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_date d = 12345;
        if (bx_date_parse(rows[i], &d) != BX_EINVAL)
            BX_FAIL_AT("\"%s\" was accepted", rows[i]);
        CHECK_INT(d, 12345); /* out untouched */
    }
    bx_date d;
    CHECK_INT(bx_date_parse(NULL, &d), BX_EINVAL);
}

BX_TEST(date_round_trip_every_day)
{
    /* Every day of the accepted range: ymd, text and weekday agree with counting. */
    bx_date first = D("1900-01-01"), last = D("2199-12-31");
    int weekday = 1; /* 1900-01-01 was a Monday */
    int failures = 0;
    for (bx_date d = first; d <= last && failures < 5; d++) {
        int y, m, day;
        char text[11];
        bx_date parsed = BX_DATE_NONE;
        bx_date_to_ymd(d, &y, &m, &day);
        bx_date_format(d, text);
        if (bx_date_from_ymd(y, m, day) != d || bx_date_parse(text, &parsed) != BX_OK ||
            parsed != d || bx_date_weekday(d) != weekday) {
            BX_FAIL_AT("day %d (%s) does not round-trip", (int)d, text);
            failures++;
        }
        weekday = weekday % 7 + 1;
    }
}

BX_TEST(date_weekday_known)
{
    static const struct {
        const char *date;
        int weekday;
    } rows[] = {
        {"1900-01-01", 1}, {"1969-12-31", 3}, {"1970-01-01", 4}, {"2000-01-01", 6},
        {"2000-02-29", 2}, {"2024-02-29", 4}, {"2026-01-01", 4}, {"2026-03-02", 1},
        {"2026-05-09", 6}, {"2026-07-10", 5}, {"2026-09-01", 2}, {"2026-09-20", 7},
        {"2026-10-01", 4}, {"2026-10-10", 6}, {"2027-01-22", 5}, {"2199-12-31", 2},
    };
    for (size_t i = 0; i < COUNT(rows); i++)
        if (bx_date_weekday(D(rows[i].date)) != rows[i].weekday)
            BX_FAIL_AT("%s: weekday %d, expected %d", rows[i].date,
                       bx_date_weekday(D(rows[i].date)), rows[i].weekday);
    /* Far before the epoch the modulo must stay positive. */
    CHECK_INT(bx_date_weekday(-1), 3);
    CHECK_INT(bx_date_weekday(-7), 4);
    CHECK_INT(bx_date_weekday(-8), 3);
}

BX_TEST(date_leap_years)
{
    static const struct {
        int year;
        int february_days;
    } rows[] = {
        {1900, 28}, {1904, 29}, {1996, 29}, {2000, 29}, {2023, 28}, {2024, 29},
        {2025, 28}, {2026, 28}, {2028, 29}, {2100, 28}, {2104, 29}, {2196, 29},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        int y = rows[i].year;
        CHECK_INT(bx_date_from_ymd(y, 3, 1) - bx_date_from_ymd(y, 2, 1), rows[i].february_days);
        char text[11];
        snprintf(text, sizeof(text), "%04d-02-29", y);
        bx_date d;
        CHECK_INT(bx_date_parse(text, &d), rows[i].february_days == 29 ? BX_OK : BX_EINVAL);
    }
}

BX_TEST(date_from_ymd_counts_on)
{
    CHECK_INT(bx_date_from_ymd(2026, 3, 0), D("2026-02-28"));
    CHECK_INT(bx_date_from_ymd(2024, 3, 0), D("2024-02-29"));
    CHECK_INT(bx_date_from_ymd(2026, 12, 32), D("2027-01-01"));
    char text[11];
    bx_date_format(BX_DATE_NONE, text);
    CHECK_STR(text, "0000-00-00");
}

/* ---- Shanghai time ---- */

BX_TEST(time_local_date_and_minute)
{
    static const struct {
        const char *rfc3339;
        const char *local_date;
        int local_minute;
    } rows[] = {
        {"2026-03-01T16:00:00Z", "2026-03-02", 0},
        {"2026-03-01T15:59:59Z", "2026-03-01", 1439},
        {"2026-03-01T15:59:59.999Z", "2026-03-01", 1439},
        {"2026-03-02T00:00:00Z", "2026-03-02", 480},
        {"2026-03-02T00:00:00+08:00", "2026-03-02", 0},
        {"2026-03-02T23:59:00+08:00", "2026-03-02", 1439},
        {"2026-12-31T16:00:00Z", "2027-01-01", 0},
        {"1970-01-01T00:00:00Z", "1970-01-01", 480},
        {"1969-12-31T16:00:00Z", "1970-01-01", 0},
        {"1969-12-31T15:59:59.999Z", "1969-12-31", 1439},
        {"1900-01-01T00:00:00+08:00", "1900-01-01", 0},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_time_ms t;
        if (bx_time_parse(rows[i].rfc3339, &t) != BX_OK) {
            BX_FAIL_AT("%s does not parse", rows[i].rfc3339);
            continue;
        }
        char date[11];
        bx_date_format(bx_time_local_date(t), date);
        if (strcmp(date, rows[i].local_date) != 0 ||
            bx_time_local_minute(t) != rows[i].local_minute)
            BX_FAIL_AT("%s: local %s minute %d, expected %s minute %d", rows[i].rfc3339, date,
                       bx_time_local_minute(t), rows[i].local_date, rows[i].local_minute);
    }
}

BX_TEST(time_parse_accepts)
{
    static const struct {
        const char *text;
        bx_time_ms ms;
    } rows[] = {
        {"2026-03-02T00:00:00Z", 1772409600000},
        {"2026-03-02t00:00:00z", 1772409600000},
        {"2026-03-02 00:00:00Z", 1772409600000},
        {"2026-03-02T08:00:00+08:00", 1772409600000},
        {"2026-03-01T19:00:00-05:00", 1772409600000},
        {"2026-03-02T05:30:00+05:30", 1772409600000},
        {"2026-03-02T00:00:00+00:00", 1772409600000},
        {"2026-03-02T00:00:00-00:00", 1772409600000},
        {"2026-03-02 08:00", 1772409600000},
        {"2026-03-02 08:00:00", 1772409600000},
        {"2026-03-02 08:00:30", 1772409630000},
        {"2026-03-02 08:00:00+08:00", 1772409600000},
        {"2026-03-02T00:00:00.5Z", 1772409600500},
        {"2026-03-02T00:00:00.05Z", 1772409600050},
        {"2026-03-02T00:00:00.123Z", 1772409600123},
        {"2026-03-02T00:00:00.123456789Z", 1772409600123},
        {"2026-03-02 08:00:00.250", 1772409600250},
        {"2026-03-02T00:00:30Z", 1772409630000},
        {"2026-03-02T08:00:00Z", 1772438400000},
        {"2026-03-02 16:00", 1772438400000},
        {"2026-03-01T16:00:00Z", 1772380800000},
        {"2026-03-02 00:00", 1772380800000},
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01 08:00", 0},
        {"1969-12-31T23:59:59.999Z", -1},
        {"1900-01-01 00:00", -2209017600000},
        {"2199-12-31T23:59:59Z", 7258118399000},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_time_ms t = 0;
        bx_status s = bx_time_parse(rows[i].text, &t);
        if (s != BX_OK || t != rows[i].ms)
            BX_FAIL_AT("\"%s\": status %d, %lld ms, expected %lld", rows[i].text, (int)s,
                       (long long)t, (long long)rows[i].ms);
    }
}

BX_TEST(time_parse_rejects)
{
    static const char *const rows[] = {
        "",
        "2026-03-02",
        "2026-03-02T08:00:00",       /* RFC 3339 needs an offset */
        "2026-03-02T08:00+08:00",    /* and seconds */
        "2026-03-02T08:00Z",         /* and seconds */
        "2026-03-02 8:00",           /* two-digit hour */
        "2026-03-02 08:0",           /* two-digit minute */
        "2026-03-02 08:00:0",        /* two-digit second */
        "2026-03-02 24:00",          /* hour range */
        "2026-03-02 23:60",          /* minute range */
        "2026-03-02 08:00:60",       /* no leap seconds */
        "2026-03-02T08:00:00+0800",  /* offset needs a colon */
        "2026-03-02T08:00:00+08",    /* and minutes */
        "2026-03-02T08:00:00+24:00", /* offset range */
        "2026-03-02T08:00:00+08:60", /* offset range */
        "2026-03-02T08:00:00.Z",     /* empty fraction */
        "2026-03-02T08:00:00.1234567890Z",
        "2026-03-02T08:00:00Zx",
        "2026-03-02T08:00:00+08:00 ",
        "2026-03-02 08:00 ",
        "2026-03-02x08:00",
        "2026-03-02  08:00",
        "2026-02-30 08:00",
        "2026-2-3 08:00",
        "1899-12-31 23:59",
        "2200-01-01T00:00:00Z",
        "2026-03-02 08:00.5", /* a fraction needs seconds */
        "2026-03-02T08:00:00UTC",
        "2026-03-02T08:00:00 Z",
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_time_ms t = 777;
        if (bx_time_parse(rows[i], &t) != BX_EINVAL)
            BX_FAIL_AT("\"%s\" was accepted", rows[i]);
        CHECK_INT(t, 777);
    }
    bx_time_ms t;
    CHECK_INT(bx_time_parse(NULL, &t), BX_EINVAL);
}

BX_TEST(time_format_and_from_local)
{
    static const struct {
        const char *date;
        int hour, minute;
        const char *formatted;
    } rows[] = {
        {"2026-03-02", 8, 0, "2026-03-02T08:00:00+08:00"},
        {"2026-03-02", 0, 0, "2026-03-02T00:00:00+08:00"},
        {"2026-03-02", 23, 59, "2026-03-02T23:59:00+08:00"},
        {"1970-01-01", 0, 0, "1970-01-01T00:00:00+08:00"},
        {"1969-12-31", 7, 59, "1969-12-31T07:59:00+08:00"},
        {"2199-12-31", 23, 59, "2199-12-31T23:59:00+08:00"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_date d = D(rows[i].date);
        bx_time_ms t = bx_time_from_local(d, rows[i].hour, rows[i].minute);
        char out[26];
        bx_time_format(t, out, sizeof(out));
        CHECK_STR(out, rows[i].formatted);
        CHECK_INT(bx_time_local_date(t), d);
        CHECK_INT(bx_time_local_minute(t), rows[i].hour * 60 + rows[i].minute);
        bx_time_ms back = 0;
        CHECK_INT(bx_time_parse(out, &back), BX_OK);
        CHECK_INT(back, t);
    }
    /* Milliseconds are dropped, never rounded up, also before the epoch. */
    char out[26];
    bx_time_format(1772409600999, out, sizeof(out));
    CHECK_STR(out, "2026-03-02T08:00:00+08:00");
    bx_time_format(-1, out, sizeof(out));
    CHECK_STR(out, "1970-01-01T07:59:59+08:00");
    /* A short buffer is truncated, still NUL-terminated. */
    char small[11];
    bx_time_format(1772409600000, small, sizeof(small));
    CHECK_STR(small, "2026-03-02");
}

/* ---- the 2026 school calendar ---- */

static void data_path(char *out, size_t size, const char *name)
{
    const char *src = getenv("BX_SOURCE_DIR");
    snprintf(out, size, "%s/deploy/policy/%s", src ? src : ".", name);
}

/* Spring 2026-03-02..2026-07-10, autumn 2026-09-01..2027-01-22, national days from the CSV. */
static bx_calendar *calendar_2026(void)
{
    bx_calendar *c = bx_calendar_new();
    bx_error err = {0};
    char path[512];
    REQUIRE(c != NULL);
    data_path(path, sizeof(path), "cn-public-holidays-2026.csv");
    REQUIRE(bx_calendar_add_term(c, "2026-spring", D("2026-03-02"), D("2026-07-10"), &err) ==
            BX_OK);
    REQUIRE(bx_calendar_add_term(c, "2026-autumn", D("2026-09-01"), D("2027-01-22"), &err) ==
            BX_OK);
    if (bx_calendar_load_days_csv(c, path, &err) != BX_OK) {
        BX_FAIL_AT("%s", err.msg);
        exit(1);
    }
    return c;
}

BX_TEST(calendar_school_days_2026)
{
    bx_calendar *c = calendar_2026();
    REQUIRE(bx_calendar_set_day(c, D("2026-11-16"), BX_DAY_CLOSURE) == BX_OK);
    static const struct {
        const char *date;
        bool school;
        const char *why;
    } rows[] = {
        {"2026-03-01", false, "Sunday before the spring term"},
        {"2026-03-02", true, "first day of the spring term, a Monday"},
        {"2026-03-06", true, "Friday"},
        {"2026-03-07", false, "Saturday"},
        {"2026-03-08", false, "Sunday"},
        {"2026-04-03", true, "Friday before Qingming"},
        {"2026-04-06", false, "Qingming holiday on a Monday"},
        {"2026-04-07", true, "Tuesday after Qingming"},
        {"2026-05-01", false, "Labour Day"},
        {"2026-05-04", false, "Labour Day holiday on a Monday"},
        {"2026-05-05", false, "Labour Day holiday on a Tuesday"},
        {"2026-05-06", true, "Wednesday after Labour Day"},
        {"2026-05-09", true, "Saturday make-up workday"},
        {"2026-05-10", false, "the Sunday after it"},
        {"2026-06-19", false, "Dragon Boat holiday on a Friday"},
        {"2026-07-10", true, "last day of the spring term"},
        {"2026-07-11", false, "summer vacation, Saturday"},
        {"2026-07-13", false, "summer vacation, Monday"},
        {"2026-07-20", false, "summer vacation"},
        {"2026-08-31", false, "summer vacation, the Monday before term"},
        {"2026-09-01", true, "first day of the autumn term, a Tuesday"},
        {"2026-09-19", false, "Saturday"},
        {"2026-09-20", true, "Sunday make-up workday"},
        {"2026-09-25", false, "Mid-Autumn holiday on a Friday"},
        {"2026-09-28", true, "Monday"},
        {"2026-09-30", true, "Wednesday before National Day"},
        {"2026-10-01", false, "National Day"},
        {"2026-10-02", false, "National Day holiday"},
        {"2026-10-05", false, "National Day holiday on a Monday"},
        {"2026-10-06", false, "National Day holiday on a Tuesday"},
        {"2026-10-07", false, "National Day holiday on a Wednesday"},
        {"2026-10-08", true, "Thursday after National Day"},
        {"2026-10-10", true, "Saturday make-up workday"},
        {"2026-10-11", false, "Sunday"},
        {"2026-11-16", false, "local closure on a Monday"},
        {"2026-11-17", true, "Tuesday after the closure"},
        {"2027-01-01", false, "New Year's Day, a Friday"},
        {"2027-01-22", true, "last day of the autumn term"},
        {"2027-01-25", false, "winter vacation"},
        {"2026-01-05", false, "Monday in winter vacation before any term"},
        {"2026-01-04", false, "make-up workday outside every term"},
        {"2026-02-28", false, "make-up workday outside every term"},
    };
    for (size_t i = 0; i < COUNT(rows); i++)
        if (bx_calendar_is_school_day(c, D(rows[i].date)) != rows[i].school)
            BX_FAIL_AT("%s (%s): expected %s", rows[i].date, rows[i].why,
                       rows[i].school ? "a school day" : "no school day");
    bx_calendar_free(c);
}

BX_TEST(calendar_term_of)
{
    bx_calendar *c = calendar_2026();
    static const struct {
        const char *date;
        const char *term; /* NULL: vacation */
    } rows[] = {
        {"2025-09-01", NULL},          {"2026-03-01", NULL},          {"2026-03-02", "2026-spring"},
        {"2026-05-01", "2026-spring"}, {"2026-07-10", "2026-spring"}, {"2026-07-11", NULL},
        {"2026-08-31", NULL},          {"2026-09-01", "2026-autumn"}, {"2027-01-22", "2026-autumn"},
        {"2027-01-23", NULL},          {"2030-01-01", NULL},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        const bx_term *t = bx_calendar_term_of(c, D(rows[i].date));
        if (rows[i].term == NULL ? t != NULL : (t == NULL || strcmp(t->code, rows[i].term) != 0))
            BX_FAIL_AT("%s: term %s, expected %s", rows[i].date, t ? t->code : "none",
                       rows[i].term ? rows[i].term : "none");
    }
    const bx_term *autumn = bx_calendar_term_of(c, D("2026-10-01"));
    REQUIRE(autumn != NULL);
    CHECK_INT(autumn->first, D("2026-09-01"));
    CHECK_INT(autumn->last, D("2027-01-22"));
    bx_calendar_free(c);
}

BX_TEST(calendar_school_days_between)
{
    bx_calendar *c = calendar_2026();
    static const struct {
        const char *from, *to;
        int days;
    } rows[] = {
        /* Mon 28, Tue 29, Wed 30 Sep; 1..7 Oct holidays; Thu 8, Fri 9 Oct: 3 + 2 = 5. */
        {"2026-09-28", "2026-10-09", 5},
        /* Mon 14..Fri 18 (5), Sun 20 make-up (1), Mon 21..Thu 24 (4), Fri 25..Sun 27 Mid-Autumn
         * (0), Mon 28..Wed 30 (3), 1..7 Oct (0), Thu 8, Fri 9 (2), Sat 10 make-up (1): 16. */
        {"2026-09-14", "2026-10-11", 16},
        {"2026-10-01", "2026-10-07", 0}, /* the Golden Week */
        {"2026-10-10", "2026-10-10", 1}, /* one make-up day */
        {"2026-10-11", "2026-10-11", 0},
        {"2026-10-09", "2026-10-08", 0}, /* to < from */
        /* The whole of March: 22 weekdays, no holidays. */
        {"2026-03-01", "2026-03-31", 22},
        /* May: 21 weekdays, minus 1, 4, 5 May, plus Sat 9 May: 19. */
        {"2026-05-01", "2026-05-31", 19},
        /* Across the summer: Mon 6..Fri 10 Jul (5), vacation (0), Tue 1..Fri 4 Sep (4): 9. */
        {"2026-07-06", "2026-09-04", 9},
        {"2026-07-11", "2026-08-31", 0}, /* the whole summer vacation */
        {"2025-01-01", "2026-03-01", 0}, /* before any term */
        {"2027-01-23", "2028-12-31", 0}, /* after every term, beyond the counted span */
        /* Spring term: 19 weeks Mon 2 Mar..Fri 10 Jul is 95 weekdays; minus Mon 6 Apr, Fri 1,
         * Mon 4, Tue 5 May, Fri 19 Jun (5); plus Sat 9 May (1): 91. */
        {"2026-03-02", "2026-07-10", 91},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        int got = bx_calendar_school_days_between(c, D(rows[i].from), D(rows[i].to));
        if (got != rows[i].days)
            BX_FAIL_AT("%s..%s: %d school days, expected %d", rows[i].from, rows[i].to, got,
                       rows[i].days);
    }
    /* Everything counted is inside the two terms. */
    int all = bx_calendar_school_days_between(c, D("1900-01-01"), D("2199-12-31"));
    CHECK_INT(all, bx_calendar_school_days_between(c, D("2026-03-02"), D("2026-07-10")) +
                       bx_calendar_school_days_between(c, D("2026-09-01"), D("2027-01-22")));
    CHECK_INT(bx_calendar_school_days_between(c, INT32_MIN + 1, INT32_MAX), all);
    bx_calendar_free(c);
}

BX_TEST(calendar_add_school_days)
{
    bx_calendar *c = calendar_2026();
    static const struct {
        const char *from;
        int n;
        const char *expected; /* NULL: BX_DATE_NONE */
    } rows[] = {
        {"2026-09-28", 1, "2026-09-29"},
        {"2026-09-30", 1, "2026-10-08"},  /* over the Golden Week */
        {"2026-09-30", 2, "2026-10-09"},  /* */
        {"2026-09-30", 3, "2026-10-10"},  /* to the Saturday make-up day */
        {"2026-09-30", 4, "2026-10-12"},  /* */
        {"2026-10-08", -1, "2026-09-30"}, /* back over the Golden Week */
        {"2026-10-12", -1, "2026-10-10"}, /* back to the make-up day */
        {"2026-10-12", -4, "2026-09-30"}, /* */
        {"2026-10-03", 1, "2026-10-08"},  /* from inside the holiday */
        {"2026-10-03", -1, "2026-09-30"}, /* */
        {"2026-10-03", 0, "2026-10-08"},  /* n == 0 on a holiday: the next school day */
        {"2026-10-08", 0, "2026-10-08"},  /* n == 0 on a school day: itself */
        {"2026-09-24", 1, "2026-09-28"},  /* over Mid-Autumn and a weekend */
        {"2026-09-18", 1, "2026-09-20"},  /* Friday to the Sunday make-up day */
        {"2026-05-08", 1, "2026-05-09"},  /* Friday to the Saturday make-up day */
        {"2026-04-30", 1, "2026-05-06"},  /* over Labour Day */
        {"2026-05-06", -1, "2026-04-30"}, /* */
        {"2026-07-10", 1, "2026-09-01"},  /* from the spring term over the summer */
        {"2026-07-09", 2, "2026-09-01"},  /* */
        {"2026-07-08", 5, "2026-09-03"},  /* Thu 9, Fri 10 Jul, Tue 1, Wed 2, Thu 3 Sep */
        {"2026-09-01", -1, "2026-07-10"}, /* back over the summer */
        {"2026-09-02", -3, "2026-07-09"}, /* Tue 1 Sep, Fri 10, Thu 9 Jul */
        {"2026-07-20", 1, "2026-09-01"},  /* from inside the vacation */
        {"2026-07-20", 0, "2026-09-01"},  /* */
        {"2026-07-20", -1, "2026-07-10"}, /* */
        {"2026-03-02", 90, "2026-07-10"}, /* the 91st school day of spring is the last */
        {"2026-07-10", -90, "2026-03-02"},
        {"2026-03-02", 91, "2026-09-01"},
        {"2026-03-02", -1, NULL},        /* no earlier term */
        {"2027-01-22", 1, NULL},         /* no later term */
        {"2027-01-21", 1, "2027-01-22"}, /* */
        {"2026-12-31", 1, "2027-01-04"}, /* over New Year's Day and a weekend */
        {"2027-06-01", 0, NULL},         /* after every term */
        {"2020-01-01", 1, NULL},         /* more than 400 days before any term */
        {"2025-02-01", 1, "2026-03-02"}, /* within 400 days before the first term */
        {"2026-03-02", 100000, NULL},    /* */
        {"2026-10-08", -100000, NULL},   /* */
        {"2026-10-08", INT32_MIN, NULL}, /* */
        {"2026-10-08", INT32_MAX, NULL}, /* */
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_date got = bx_calendar_add_school_days(c, D(rows[i].from), rows[i].n);
        bx_date expected = rows[i].expected ? D(rows[i].expected) : BX_DATE_NONE;
        if (got != expected) {
            char shown[11];
            bx_date_format(got, shown);
            BX_FAIL_AT("%s %+d school days: %s, expected %s", rows[i].from, rows[i].n,
                       got == BX_DATE_NONE ? "none" : shown,
                       rows[i].expected ? rows[i].expected : "none");
        }
    }
    bx_calendar_free(c);
}

/* The prefix counts against walking day by day, over the whole span and beyond it. */
BX_TEST(calendar_counts_match_walking)
{
    bx_calendar *c = calendar_2026();
    REQUIRE(bx_calendar_set_day(c, D("2026-11-16"), BX_DAY_CLOSURE) == BX_OK);
    bx_date first = D("2024-06-01"), last = D("2028-06-01");
    int walked = 0;
    for (bx_date d = first; d <= last; d++) {
        walked += bx_calendar_is_school_day(c, d);
        if (bx_calendar_school_days_between(c, first, d) != walked) {
            BX_FAIL_AT("count to day %d differs from walking", (int)d);
            break;
        }
    }
    /* add_school_days against a walk, for a spread of starting days and distances. */
    const int steps[] = {1, 2, 5, 17, 60, -1, -3, -11, -45};
    for (bx_date d = D("2026-02-01"); d <= D("2027-02-28"); d += 3) {
        for (size_t k = 0; k < COUNT(steps); k++) {
            int n = steps[k], left = n > 0 ? n : -n, dir = n > 0 ? 1 : -1;
            bx_date walk = d;
            while (left > 0 && walk > first && walk < last) {
                walk += dir;
                left -= bx_calendar_is_school_day(c, walk);
            }
            bx_date expected = left == 0 ? walk : BX_DATE_NONE;
            if (bx_calendar_add_school_days(c, d, n) != expected) {
                BX_FAIL_AT("day %d %+d differs from walking", (int)d, n);
                goto out;
            }
        }
    }
out:
    bx_calendar_free(c);
}

BX_TEST(calendar_set_day_replaces)
{
    bx_calendar *c = calendar_2026();
    bx_date tuesday = D("2026-11-17");
    int before = bx_calendar_school_days_between(c, D("2026-09-01"), D("2027-01-22"));
    CHECK(bx_calendar_is_school_day(c, tuesday));
    CHECK_INT(bx_calendar_set_day(c, tuesday, BX_DAY_CLOSURE), BX_OK);
    CHECK(!bx_calendar_is_school_day(c, tuesday));
    CHECK_INT(bx_calendar_school_days_between(c, D("2026-09-01"), D("2027-01-22")), before - 1);
    CHECK_INT(bx_calendar_add_school_days(c, D("2026-11-16"), 1), D("2026-11-18"));
    /* A later call replaces the kind. */
    CHECK_INT(bx_calendar_set_day(c, tuesday, BX_DAY_MAKEUP_WORKDAY), BX_OK);
    CHECK(bx_calendar_is_school_day(c, tuesday));
    CHECK_INT(bx_calendar_school_days_between(c, D("2026-09-01"), D("2027-01-22")), before);
    /* A Saturday closed by the school, then opened as a make-up day. */
    bx_date saturday = D("2026-11-21");
    CHECK_INT(bx_calendar_set_day(c, saturday, BX_DAY_CLOSURE), BX_OK);
    CHECK(!bx_calendar_is_school_day(c, saturday));
    CHECK_INT(bx_calendar_set_day(c, saturday, BX_DAY_MAKEUP_WORKDAY), BX_OK);
    CHECK(bx_calendar_is_school_day(c, saturday));
    CHECK_INT(bx_calendar_school_days_between(c, D("2026-09-01"), D("2027-01-22")), before + 1);
    /* Bad input. */
    CHECK_INT(bx_calendar_set_day(c, tuesday, (bx_day_kind)0), BX_EINVAL);
    CHECK_INT(bx_calendar_set_day(c, tuesday, (bx_day_kind)4), BX_EINVAL);
    CHECK_INT(bx_calendar_set_day(c, BX_DATE_NONE, BX_DAY_HOLIDAY), BX_EINVAL);
    CHECK_INT(bx_calendar_set_day(c, D("2199-12-31") + 1, BX_DAY_HOLIDAY), BX_EINVAL);
    CHECK(bx_calendar_is_school_day(c, tuesday));
    bx_calendar_free(c);
}

BX_TEST(calendar_days_before_terms_count_once_terms_arrive)
{
    /* Days may be loaded before terms; the counts follow when a term is added. */
    bx_calendar *c = bx_calendar_new();
    bx_error err = {0};
    char path[512];
    data_path(path, sizeof(path), "cn-public-holidays-2026.csv");
    REQUIRE(c != NULL);
    CHECK(!bx_calendar_is_school_day(c, D("2026-10-08")));
    CHECK_INT(bx_calendar_school_days_between(c, D("2026-01-01"), D("2026-12-31")), 0);
    CHECK_INT(bx_calendar_add_school_days(c, D("2026-10-08"), 1), BX_DATE_NONE);
    CHECK(bx_calendar_term_of(c, D("2026-10-08")) == NULL);
    REQUIRE(bx_calendar_load_days_csv(c, path, &err) == BX_OK);
    REQUIRE(bx_calendar_set_day(c, D("2026-11-16"), BX_DAY_CLOSURE) == BX_OK);
    REQUIRE(bx_calendar_add_term(c, "2026-autumn", D("2026-09-01"), D("2027-01-22"), &err) ==
            BX_OK);
    CHECK(bx_calendar_is_school_day(c, D("2026-09-20")));
    CHECK(!bx_calendar_is_school_day(c, D("2026-10-01")));
    CHECK(!bx_calendar_is_school_day(c, D("2026-11-16")));
    CHECK_INT(bx_calendar_school_days_between(c, D("2026-09-28"), D("2026-10-09")), 5);
    REQUIRE(bx_calendar_add_term(c, "2026-spring", D("2026-03-02"), D("2026-07-10"), &err) ==
            BX_OK);
    CHECK_INT(bx_calendar_school_days_between(c, D("2026-03-02"), D("2026-07-10")), 91);
    CHECK_INT(bx_calendar_add_school_days(c, D("2026-07-10"), 1), D("2026-09-01"));
    bx_calendar_free(c);
    bx_calendar_free(NULL);
}

BX_TEST(calendar_term_rejects)
{
    bx_calendar *c = calendar_2026();
    static const struct {
        const char *code, *first, *last;
        const char *message;
    } rows[] = {
        {"2026-summer", "2026-07-10", "2026-08-31",
         "term 2026-summer (2026-07-10..2026-08-31) overlaps term 2026-spring "
         "(2026-03-02..2026-07-10)"},
        {"x", "2026-08-01", "2026-09-01", "overlaps term 2026-autumn (2026-09-01..2027-01-22)"},
        {"x", "2026-04-01", "2026-04-30", "overlaps term 2026-spring"}, /* inside */
        {"x", "2026-02-01", "2026-08-01", "overlaps term 2026-spring"}, /* around */
        {"x", "2027-01-22", "2027-02-01", "overlaps term 2026-autumn"}, /* touching the end */
        {"x", "2026-02-01", "2026-03-02", "overlaps term 2026-spring"}, /* touching the start */
        {"2026-spring", "2028-03-01", "2028-07-10", "term 2026-spring: code already used by"},
        {"", "2028-03-01", "2028-07-10", "term code: expected 1..15 bytes, got 0"},
        {"2028-spring-term", "2028-03-01", "2028-07-10", "expected 1..15 bytes, got 16"},
        {"2028 spring", "2028-03-01", "2028-07-10", "code: expected printable ASCII"},
        {"2028-spring", "2028-07-10", "2028-03-01", "term 2028-spring: expected first <= last"},
        {"2028-long", "2028-01-01", "2029-12-31", "at most 400 days"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_error err = {0};
        bx_status s =
            bx_calendar_add_term(c, rows[i].code, D(rows[i].first), D(rows[i].last), &err);
        CHECK_INT(s, BX_EINVAL);
        CHECK_INT(err.status, BX_EINVAL);
        CHECK_CONTAINS(err.msg, rows[i].message);
    }
    bx_error err = {0};
    CHECK_INT(bx_calendar_add_term(c, "x", BX_DATE_NONE, D("2028-01-01"), &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "dates must lie in 1900..2199");
    CHECK_INT(bx_calendar_add_term(c, NULL, D("2028-01-01"), D("2028-01-02"), &err), BX_EINVAL);
    /* The calendar is unchanged by every rejection. */
    CHECK(bx_calendar_term_of(c, D("2026-07-20")) == NULL);
    CHECK(bx_calendar_term_of(c, D("2026-08-01")) == NULL);
    CHECK_INT(bx_calendar_add_school_days(c, D("2026-07-10"), 1), D("2026-09-01"));
    /* Next to a term without touching it is fine, and counts at once. */
    CHECK_INT(bx_calendar_add_term(c, "2026-summer", D("2026-07-11"), D("2026-08-31"), &err),
              BX_OK);
    CHECK_INT(bx_calendar_add_school_days(c, D("2026-07-10"), 1), D("2026-07-13"));
    CHECK(bx_calendar_is_school_day(c, D("2026-07-20")));
    bx_calendar_free(c);
}

/* ---- the CSV loader ---- */

static char tmp_dir[64];

static void make_tmp_dir(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/bx_calendar_test.XXXXXX");
    REQUIRE(mkdtemp(tmp_dir) != NULL);
}

static void write_file(const char *path, const char *content, size_t len)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(content, 1, len, f) == len);
    REQUIRE(fclose(f) == 0);
}

BX_TEST(csv_rejects_with_file_and_line)
{
    static const struct {
        const char *content;
        const char *message; /* after the path */
    } rows[] = {
        {"date,kind,name\n2026-01-01,vacation,x\n",
         ":2: kind: expected holiday, makeup_workday or closure, got \"vacation\""},
        {"date,kind,name\n2026-01-01,Holiday,x\n", ":2: kind: expected"},
        {"date,kind,name\n2026-01-01,,x\n", ":2: kind: expected holiday, makeup_workday or "
                                            "closure, got \"\""},
        {"2026-01-01,holiday,x\n", ":1: header: expected \"date,kind,name\", got \"2026-01-01"},
        {"date,type,name\n", ":1: header: expected"},
        {"", ":1: header: expected \"date,kind,name\", file is empty"},
        {"\n\n", ":1: header: expected \"date,kind,name\", file is empty"},
        {"date,kind,name\n2026-2-3,holiday,x\n",
         ":2: date: expected YYYY-MM-DD in 1900..2199, got \"2026-2-3\""},
        {"date,kind,name\n2026-02-30,holiday,x\n", ":2: date: expected"},
        {"date,kind,name\n2200-01-01,holiday,x\n", ":2: date: expected"},
        {"date,kind,name\n 2026-01-01,holiday,x\n", ":2: date: expected"},
        {"date,kind,name\n2026-01-01,holiday\n", ":2: expected 3 fields (date,kind,name), got 2"},
        {"date,kind,name\n2026-01-01,holiday,x,y\n",
         ":2: expected 3 fields (date,kind,name), got 4"},
        {"date,kind,name\n2026-01-01\n", ":2: expected 3 fields (date,kind,name), got 1"},
        {"date,kind,name\n2026-01-01,holiday,\n", ":2: name: expected non-empty UTF-8 text"},
        {"date,kind,name\n2026-01-01,holiday,\xff\n", ":2: name: expected non-empty UTF-8 text"},
        {"date,kind,name\n2026-01-01,holiday,\xe5\x85\n", ":2: name:"},     /* cut character */
        {"date,kind,name\n2026-01-01,holiday,\xc0\xaf\n", ":2: name:"},     /* overlong */
        {"date,kind,name\n2026-01-01,holiday,\xed\xa0\x80\n", ":2: name:"}, /* surrogate */
        {"date,kind,name\n2026-01-01,holiday,a\n2026-01-02,holiday,b\n2026-01-01,closure,c\n",
         ":4: date: 2026-01-01 already listed on line 2"},
    };
    make_tmp_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/days.csv", tmp_dir);
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_calendar *c = calendar_2026();
        bx_error err = {0};
        char expected[256];
        write_file(path, rows[i].content, strlen(rows[i].content));
        CHECK_INT(bx_calendar_load_days_csv(c, path, &err), BX_EINVAL);
        snprintf(expected, sizeof(expected), "%s%s", path, rows[i].message);
        CHECK_CONTAINS(err.msg, expected);
        /* All or nothing: nothing of a rejected file was applied. */
        CHECK(bx_calendar_is_school_day(c, D("2026-03-02")));
        bx_calendar_free(c);
    }
    unlink(path);
    rmdir(tmp_dir);
}

BX_TEST(csv_error_names_line_seven)
{
    /* The national file with line 7 broken: the message an operator sees. */
    make_tmp_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/cn-public-holidays-2026.csv", tmp_dir);
    const char *content = "date,kind,name\n"
                          "2026-01-01,holiday,元旦\n"
                          "2026-01-02,holiday,元旦\n"
                          "2026-01-03,holiday,元旦\n"
                          "2026-01-04,makeup_workday,元旦\n"
                          "2026-02-14,makeup_workday,春节\n"
                          "2026-02-15,x,春节\n"
                          "2026-03-02,holiday,not applied\n";
    write_file(path, content, strlen(content));
    bx_calendar *c = calendar_2026();
    bx_error err = {0};
    CHECK_INT(bx_calendar_load_days_csv(c, path, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "cn-public-holidays-2026.csv:7: kind: expected holiday, "
                            "makeup_workday or closure, got \"x\"");
    CHECK(bx_calendar_is_school_day(c, D("2026-03-02")));
    bx_calendar_free(c);
    unlink(path);
    rmdir(tmp_dir);
}

BX_TEST(csv_accepts_crlf_bom_blank_lines_and_closures)
{
    make_tmp_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/days.csv", tmp_dir);
    const char *content = "\xef\xbb\xbf"
                          "date,kind,name\r\n"
                          "\r\n"
                          "2026-11-16,closure,暴雪停课\r\n"
                          "2026-11-21,makeup_workday,补课\r\n"
                          "\n"
                          "2026-11-17,holiday,local festival"; /* no final newline */
    write_file(path, content, strlen(content));
    bx_calendar *c = calendar_2026();
    bx_error err = {0};
    if (bx_calendar_load_days_csv(c, path, &err) != BX_OK)
        BX_FAIL_AT("%s", err.msg);
    CHECK(!bx_calendar_is_school_day(c, D("2026-11-16")));
    CHECK(!bx_calendar_is_school_day(c, D("2026-11-17")));
    CHECK(bx_calendar_is_school_day(c, D("2026-11-21")));
    /* The national days are still there, and loading again replaces nothing wrongly. */
    CHECK(!bx_calendar_is_school_day(c, D("2026-10-01")));
    CHECK_INT(bx_calendar_load_days_csv(c, path, &err), BX_OK);
    CHECK_INT(bx_calendar_add_school_days(c, D("2026-11-13"), 1), D("2026-11-18"));
    bx_calendar_free(c);
    unlink(path);
    rmdir(tmp_dir);
}

BX_TEST(csv_header_only_is_an_empty_list)
{
    static const char *const rows[] = {
        "date,kind,name\n", "date,kind,name", "\ndate,kind,name\n\n",
        "\357\273\277date,kind,name\r\n", /* with a byte order mark */
    };
    make_tmp_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/days.csv", tmp_dir);
    for (size_t i = 0; i < COUNT(rows); i++) {
        bx_calendar *c = calendar_2026();
        bx_error err = {0};
        write_file(path, rows[i], strlen(rows[i]));
        if (bx_calendar_load_days_csv(c, path, &err) != BX_OK)
            BX_FAIL_AT("row %zu: %s", i, err.msg);
        CHECK_INT(bx_calendar_school_days_between(c, D("2026-09-28"), D("2026-10-09")), 5);
        bx_calendar_free(c);
    }
    unlink(path);
    rmdir(tmp_dir);
}

BX_TEST(csv_rejects_long_lines_and_missing_files)
{
    make_tmp_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/days.csv", tmp_dir);
    static char content[4096];
    int n = snprintf(content, sizeof(content), "date,kind,name\n2026-01-01,holiday,");
    memset(content + n, 'a', 2000);
    content[n + 2000] = '\n';
    write_file(path, content, (size_t)n + 2001);
    bx_calendar *c = calendar_2026();
    bx_error err = {0};
    CHECK_INT(bx_calendar_load_days_csv(c, path, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, ":2: line longer than 1024 bytes");
    unlink(path);
    CHECK_INT(bx_calendar_load_days_csv(c, path, &err), BX_EIO);
    CHECK_CONTAINS(err.msg, "days.csv: cannot open");
    rmdir(tmp_dir);
    bx_calendar_free(c);
}

/* ---- concurrent readers ---- */

static void *count_autumn(void *arg)
{
    const bx_calendar *c = arg;
    intptr_t sum = 0;
    for (int i = 0; i < 20000; i++) {
        bx_date d = D("2026-09-01") + i % 150;
        sum += bx_calendar_is_school_day(c, d);
        sum += bx_calendar_school_days_between(c, D("2026-09-01"), d);
        sum += bx_calendar_add_school_days(c, d, 5) > d;
    }
    return (void *)sum;
}

BX_TEST(calendar_concurrent_readers)
{
    bx_calendar *c = calendar_2026();
    pthread_t readers[4];
    void *sums[4];
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&readers[i], NULL, count_autumn, c) == 0);
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_join(readers[i], &sums[i]) == 0);
    for (int i = 1; i < 4; i++)
        CHECK(sums[i] == sums[0]);
    bx_calendar_free(c);
}
