/* Unit tests for bx-score's decisions: facts, day states, streaks, windows, order independence,
 * encodings, the policy file, risk assessments and when to publish. */
#include "score.h"
#include "bx_buf.h"
#include "bx_test.h"
#include "messages.h"

#include <stdint.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bx_date D(const char *s)
{
    bx_date d = BX_DATE_NONE;
    if (s == NULL || strcmp(s, "-") == 0)
        return BX_DATE_NONE;
    if (bx_date_parse(s, &d) != BX_OK)
        BX_FAIL_AT("test date %s does not parse", s);
    return d;
}

static const char *fmt_date(bx_date d, char out[11])
{
    if (d == BX_DATE_NONE) {
        snprintf(out, 11, "-");
        return out;
    }
    bx_date_format(d, out);
    return out;
}

/* The school calendar of the tests: spring and autumn terms 2026 with the national days. */
static bx_calendar *calendar(void)
{
    static bx_calendar *cal;
    if (cal != NULL)
        return cal;
    cal = bx_calendar_new();
    REQUIRE(cal != NULL);
    bx_error err = {0};
    REQUIRE(bx_calendar_add_term(cal, "2026-spring", D("2026-03-02"), D("2026-07-10"), &err) ==
            BX_OK);
    REQUIRE(bx_calendar_add_term(cal, "2026-autumn", D("2026-09-01"), D("2027-01-22"), &err) ==
            BX_OK);
    const char *src = getenv("BX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv", src ? src : ".");
    if (bx_calendar_load_days_csv(cal, path, &err) != BX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        REQUIRE(!"holiday list loads");
    }
    return cal;
}

static const score_policy *policy(void)
{
    static score_policy p;
    static bool ready;
    if (!ready) {
        score_policy_default(&p);
        ready = true;
    }
    return &p;
}

/* ---- a small language for facts, leave and class reports ----
 * Facts: "2026-11-23=a" (whole day), "2026-11-24.5=a" (period 5), "2026-11-24.5-8=a" (periods
 * 5 to 8), "2026-11-02..2026-11-27=p" (every school day of the range); status p a t e ls lp;
 * "@90" records it 90 minutes after 08:00 of its date (a correction). Leave:
 * "2026-11-24..2026-11-25", with periods "2026-11-24.3..2026-11-24.4", kind "=p" (personal;
 * default sick), "!" not approved, "@N" minutes after 07:00 of the first date. Class reports:
 * "2026-11-23" or "2026-11-02..2026-11-27". */

#define MAX_ITEMS 4096

typedef struct item {
    bool is_leave;
    score_fact fact;
    score_leave leave;
} item;

static int event_counter;

static bool parse_status(const char *s, score_status *st, score_leave_kind *kind)
{
    static const struct {
        const char *code;
        score_status st;
        score_leave_kind kind;
    } codes[] = {{"p", SCORE_PRESENT, SCORE_LEAVE_NONE}, {"a", SCORE_ABSENT, SCORE_LEAVE_NONE},
                 {"t", SCORE_LATE, SCORE_LEAVE_NONE},    {"e", SCORE_EARLY_LEAVE, SCORE_LEAVE_NONE},
                 {"ls", SCORE_LEAVE, SCORE_LEAVE_SICK},  {"lp", SCORE_LEAVE, SCORE_LEAVE_PERSONAL}};
    for (size_t i = 0; i < COUNT(codes); i++) {
        if (strcmp(s, codes[i].code) == 0) {
            *st = codes[i].st;
            *kind = codes[i].kind;
            return true;
        }
    }
    return false;
}

static bx_date date_at(const char **p)
{
    char text[11];
    if (strnlen(*p, 10) < 10) {
        BX_FAIL_AT("short date in \"%s\"", *p);
        return BX_DATE_NONE;
    }
    memcpy(text, *p, 10);
    text[10] = '\0';
    *p += 10;
    return D(text);
}

static int number_at(const char **p)
{
    char *end;
    long v = strtol(*p, &end, 10);
    if (end == *p)
        BX_FAIL_AT("expected a number at \"%s\"", *p);
    *p = end;
    return (int)v;
}

static size_t add_fact(item *items, size_t n, bx_date d, int period, score_status st,
                       score_leave_kind kind, int minutes, int token)
{
    REQUIRE(n < MAX_ITEMS);
    item *it = &items[n];
    memset(it, 0, sizeof(*it));
    it->fact.date = d;
    it->fact.period = period;
    it->fact.status = st;
    it->fact.leave_kind = kind;
    it->fact.recorded_at = bx_time_from_local(d, 8, 0) + (bx_time_ms)minutes * 60000;
    snprintf(it->fact.event_id, sizeof(it->fact.event_id), "e%d-%d-%d", token, (int)d, period);
    return n + 1;
}

static size_t build_facts(const char *spec, item *items, size_t n)
{
    char copy[8192];
    snprintf(copy, sizeof(copy), "%s", spec ? spec : "");
    char *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        int token = ++event_counter;
        const char *p = tok;
        bx_date first = date_at(&p), last = first;
        int plo = 0, phi = 0;
        if (p[0] == '.' && p[1] == '.') {
            p += 2;
            last = date_at(&p);
        } else if (*p == '.') {
            p++;
            plo = phi = number_at(&p);
            if (*p == '-') {
                p++;
                phi = number_at(&p);
            }
        }
        if (*p++ != '=') {
            BX_FAIL_AT("fact token \"%s\": expected =", tok);
            continue;
        }
        char code[4] = {0};
        size_t cn = strcspn(p, "@");
        if (cn >= sizeof(code)) {
            BX_FAIL_AT("fact token \"%s\": bad status", tok);
            continue;
        }
        memcpy(code, p, cn);
        p += cn;
        int minutes = 0;
        if (*p == '@') {
            p++;
            minutes = number_at(&p);
        }
        score_status st;
        score_leave_kind kind;
        if (!parse_status(code, &st, &kind) || *p != '\0') {
            BX_FAIL_AT("fact token \"%s\": bad status or trailing text", tok);
            continue;
        }
        for (bx_date d = first; d <= last; d++) {
            if (first != last && !bx_calendar_is_school_day(calendar(), d))
                continue;
            for (int period = plo; period <= phi; period++)
                n = add_fact(items, n, d, period, st, kind, minutes, token);
        }
    }
    return n;
}

static size_t build_leaves(const char *spec, item *items, size_t n)
{
    char copy[2048];
    snprintf(copy, sizeof(copy), "%s", spec ? spec : "");
    char *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        REQUIRE(n < MAX_ITEMS);
        item *it = &items[n];
        memset(it, 0, sizeof(*it));
        it->is_leave = true;
        score_leave *l = &it->leave;
        const char *p = tok;
        l->first_date = date_at(&p);
        if (*p == '.' && p[1] != '.') {
            p++;
            l->first_period = number_at(&p);
        }
        if (p[0] != '.' || p[1] != '.') {
            BX_FAIL_AT("leave token \"%s\": expected ..", tok);
            continue;
        }
        p += 2;
        l->last_date = date_at(&p);
        if (*p == '.') {
            p++;
            l->last_period = number_at(&p);
        }
        l->kind = SCORE_LEAVE_SICK;
        if (*p == '=') {
            l->kind = p[1] == 'p' ? SCORE_LEAVE_PERSONAL : SCORE_LEAVE_SICK;
            p += 2;
        }
        l->approved = true;
        if (*p == '!') {
            l->approved = false;
            p++;
        }
        int minutes = 0;
        if (*p == '@') {
            p++;
            minutes = number_at(&p);
        }
        if (*p != '\0')
            BX_FAIL_AT("leave token \"%s\": trailing text", tok);
        l->recorded_at = bx_time_from_local(l->first_date, 7, 0) + (bx_time_ms)minutes * 60000;
        snprintf(l->event_id, sizeof(l->event_id), "lv%d", ++event_counter);
        n++;
    }
    return n;
}

/* Class reports into dates and period masks (bit 0 whole day), normalized. */
static size_t build_days(const char *spec, bx_date *out, uint16_t *masks, size_t max)
{
    char copy[2048];
    size_t n = 0;
    snprintf(copy, sizeof(copy), "%s", spec ? spec : "");
    char *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        const char *p = tok;
        bx_date first = date_at(&p), last = first;
        int period = 0;
        if (p[0] == '.' && p[1] == '.') {
            p += 2;
            last = date_at(&p);
        } else if (*p == '.') {
            p++;
            period = number_at(&p);
        }
        for (bx_date d = first; d <= last; d++) {
            if (first == last || bx_calendar_is_school_day(calendar(), d)) {
                REQUIRE(n < max);
                out[n] = d;
                masks[n++] = (uint16_t)(1u << period);
            }
        }
    }
    return score_class_days_normalize(out, masks, n);
}

static void apply_item(score_history *h, const item *it)
{
    bx_error err = {0};
    bx_status s = it->is_leave ? score_history_apply_leave(h, &it->leave, NULL, &err)
                               : score_history_apply_fact(h, &it->fact, NULL, &err);
    if (s != BX_OK)
        BX_FAIL_AT("apply failed: %s", err.msg);
}

/* Applies items in the order given (order NULL: as listed). */
static void apply_items(score_history *h, const item *items, size_t n, const size_t *order)
{
    score_history_reset(h);
    for (size_t i = 0; i < n; i++)
        apply_item(h, &items[order ? order[i] : i]);
}

/* Every field of a summary as text, so two summaries compare as strings and a diff is readable. */
static void summary_text(const score_summary *s, char *out, size_t size)
{
    char a[11], b[11], c[11], d[11], e[11], f[11];
    const score_counts *w = &s->window, *t = &s->term_counts;
    snprintf(out, size,
             "as_of=%s last=%s today=%s/%d/%d streak=%d %s..%s periods=%d window=%s "
             "[%d a%d t%d x%d l%d nr%d nc%d] term=%s %s [%d a%d t%d x%d l%d nr%d nc%d] "
             "r20=%.6f rt=%.6f chronic=%d",
             fmt_date(s->as_of, a), fmt_date(s->last_school_day, b),
             score_day_state_name(s->today.state), s->today.unexcused_periods, s->today.late,
             s->streak_days, fmt_date(s->streak_start, c), fmt_date(s->streak_last, d),
             s->unexcused_periods, fmt_date(s->window_first, e), w->school_days, w->attended_days,
             w->late_days, w->absent_days, w->leave_days, w->not_reported_days, w->no_record_days,
             s->term, fmt_date(s->term_first, f), t->school_days, t->attended_days, t->late_days,
             t->absent_days, t->leave_days, t->not_reported_days, t->no_record_days,
             s->attendance_rate_20d, s->attendance_rate_term, s->chronic_absence);
}

/* The history's content as text: every fact and leave in their encodings. */
static void history_text(const score_history *h, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < h->nfacts && used < size; i++) {
        char slot[SCORE_SLOT_SIZE], value[SCORE_FACT_VALUE_SIZE];
        bx_error err = {0};
        score_fact_slot(&h->facts[i], slot);
        if (score_fact_encode(&h->facts[i], value, &err) != BX_OK)
            BX_FAIL_AT("encode: %s", err.msg);
        used += (size_t)snprintf(out + used, size - used, "%s=%s;", slot, value);
    }
    for (size_t i = 0; i < h->nleaves && used < size; i++) {
        char value[SCORE_LEAVE_VALUE_SIZE];
        bx_error err = {0};
        if (score_leave_encode(&h->leaves[i], value, &err) != BX_OK)
            BX_FAIL_AT("encode: %s", err.msg);
        used += (size_t)snprintf(out + used, size - used, "%s=%s;", h->leaves[i].event_id, value);
    }
}

static item scratch[MAX_ITEMS];
static bx_date scratch_days[1024];
static uint16_t scratch_masks[1024];

/* ---- streaks and day states ---- */

typedef struct streak_row {
    const char *name;
    const char *facts;
    const char *leaves;
    const char *reported;
    const char *as_of;
    int streak;
    const char *start; /* "-" when no streak */
    const char *last;
    const char *today; /* day state of as_of */
    int periods;       /* unexcused periods on as_of */
} streak_row;

static const streak_row streak_rows[] = {
    /* plain streaks and what ends them */
    {"three_days", "2026-11-23=a 2026-11-24=a 2026-11-25=a", 0, 0, "2026-11-25", 3, "2026-11-23",
     "2026-11-25", "absent", 0},
    {"presence_before", "2026-11-20=p 2026-11-23=a 2026-11-24=a", 0, 0, "2026-11-24", 2,
     "2026-11-23", "2026-11-24", "absent", 0},
    {"weekend_skipped", "2026-11-19=a 2026-11-20=a 2026-11-23=a", 0, 0, "2026-11-23", 3,
     "2026-11-19", "2026-11-23", "absent", 0},
    {"as_of_weekend", "2026-11-19=a 2026-11-20=a", 0, 0, "2026-11-22", 2, "2026-11-19",
     "2026-11-20", "no_school", 0},
    {"today_not_yet_reported", "2026-11-23=a 2026-11-24=a", 0, 0, "2026-11-25", 2, "2026-11-23",
     "2026-11-24", "not_reported", 0},
    {"presence_ends", "2026-11-23=a 2026-11-24=p 2026-11-25=a 2026-11-26=a", 0, 0, "2026-11-26", 2,
     "2026-11-25", "2026-11-26", "absent", 0},
    {"late_ends", "2026-11-23=a 2026-11-24=t 2026-11-25=a", 0, 0, "2026-11-25", 1, "2026-11-25",
     "2026-11-25", "absent", 0},
    {"early_leave_ends", "2026-11-23=a 2026-11-24=e 2026-11-25=a", 0, 0, "2026-11-25", 1,
     "2026-11-25", "2026-11-25", "absent", 0},
    {"presence_today_clears", "2026-11-23=a 2026-11-24=a 2026-11-25=p", 0, 0, "2026-11-25", 0, "-",
     "-", "present", 0},
    {"empty_history", "", 0, 0, "2026-11-25", 0, "-", "-", "not_reported", 0},
    /* leave neither extends nor ends a streak */
    {"leave_fact_mid_streak", "2026-11-23=a 2026-11-24=a 2026-11-25=ls 2026-11-26=a", 0, 0,
     "2026-11-26", 3, "2026-11-23", "2026-11-26", "absent", 0},
    {"personal_leave_mid_streak", "2026-11-23=a 2026-11-24=lp 2026-11-25=a", 0, 0, "2026-11-25", 2,
     "2026-11-23", "2026-11-25", "absent", 0},
    {"leave_span_mid_streak", "2026-11-23..2026-11-26=a", "2026-11-25..2026-11-25", 0, "2026-11-26",
     3, "2026-11-23", "2026-11-26", "absent", 0},
    {"leave_span_two_days", "2026-11-23..2026-11-27=a", "2026-11-24..2026-11-25=p", 0, "2026-11-27",
     3, "2026-11-23", "2026-11-27", "absent", 0},
    {"leave_unapproved_excuses_nothing", "2026-11-23..2026-11-26=a", "2026-11-25..2026-11-25!", 0,
     "2026-11-26", 4, "2026-11-23", "2026-11-26", "absent", 0},
    {"leave_covers_today", "2026-11-23=a 2026-11-24=a", "2026-11-24..2026-11-27", 0, "2026-11-25",
     1, "2026-11-23", "2026-11-23", "leave", 0},
    {"leave_phoned_in_after_roll_call", "2026-11-23=a 2026-11-24=a", "2026-11-24..2026-11-24@300",
     0, "2026-11-24", 1, "2026-11-23", "2026-11-23", "leave", 0},
    {"leave_morning_only_stays_absent", "2026-11-23=a 2026-11-24=a", "2026-11-24..2026-11-24.4", 0,
     "2026-11-24", 2, "2026-11-23", "2026-11-24", "absent", 0},
    {"leave_from_period_1_to_12_is_whole_day", "2026-11-23=a 2026-11-24=a",
     "2026-11-24.1..2026-11-24.12", 0, "2026-11-24", 1, "2026-11-23", "2026-11-23", "leave", 0},
    {"leave_ending_midday_next_day", "2026-11-23=a 2026-11-24=a 2026-11-25=a",
     "2026-11-23..2026-11-24.4", 0, "2026-11-25", 2, "2026-11-24", "2026-11-25", "absent", 0},
    {"leave_day_without_any_fact", "2026-11-23=a", "2026-11-24..2026-11-24", 0, "2026-11-24", 1,
     "2026-11-23", "2026-11-23", "leave", 0},
    {"leave_beats_roll_call_presence", "2026-11-23=a 2026-11-24=p", "2026-11-24..2026-11-24", 0,
     "2026-11-24", 1, "2026-11-23", "2026-11-23", "leave", 0},
    {"late_beats_leave", "2026-11-23=a 2026-11-24=t", "2026-11-24..2026-11-24", 0, "2026-11-24", 0,
     "-", "-", "late", 0},
    {"early_leave_beats_leave", "2026-11-23=a 2026-11-24=e", "2026-11-24..2026-11-24", 0,
     "2026-11-24", 0, "-", "-", "early_leave", 0},
    {"leave_fact_and_period_presence", "2026-11-23=a 2026-11-24=lp 2026-11-24.6=p", 0, 0,
     "2026-11-24", 1, "2026-11-23", "2026-11-23", "leave", 0},
    {"leave_fact_and_late_period", "2026-11-23=a 2026-11-24=lp 2026-11-24.6=t", 0, 0, "2026-11-24",
     0, "-", "-", "late", 0},
    {"absent_on_leave_came_in_late", "2026-11-23=a 2026-11-24=a 2026-11-24.3=t",
     "2026-11-24..2026-11-24", 0, "2026-11-24", 0, "-", "-", "late", 0},
    /* days the class did not report, or reported without this student */
    {"not_reported_gap", "2026-11-23=a 2026-11-25=a", 0, 0, "2026-11-25", 2, "2026-11-23",
     "2026-11-25", "absent", 0},
    {"no_record_gap", "2026-11-23=a 2026-11-25=a", 0, "2026-11-23..2026-11-25", "2026-11-25", 2,
     "2026-11-23", "2026-11-25", "absent", 0},
    {"no_record_today", "2026-11-23=a", 0, "2026-11-23..2026-11-24", "2026-11-24", 1, "2026-11-23",
     "2026-11-23", "no_record", 0},
    /* holidays and make-up workdays */
    {"national_day_week", "2026-09-28=a 2026-09-29=a 2026-09-30=a 2026-10-08=a 2026-10-09=a", 0, 0,
     "2026-10-09", 5, "2026-09-28", "2026-10-09", "absent", 0},
    {"makeup_saturday_extends", "2026-09-30=a 2026-10-08=a 2026-10-09=a 2026-10-10=a", 0, 0,
     "2026-10-10", 4, "2026-09-30", "2026-10-10", "absent", 0},
    {"as_of_in_holiday", "2026-09-29=a 2026-09-30=a", 0, 0, "2026-10-04", 2, "2026-09-29",
     "2026-09-30", "no_school", 0},
    {"mid_autumn_friday_skipped", "2026-09-24=a 2026-09-28=a", 0, 0, "2026-09-28", 2, "2026-09-24",
     "2026-09-28", "absent", 0},
    {"makeup_sunday_extends", "2026-09-18=a 2026-09-20=a 2026-09-21=a", 0, 0, "2026-09-21", 3,
     "2026-09-18", "2026-09-21", "absent", 0},
    {"makeup_sunday_presence_ends", "2026-09-18=a 2026-09-20=p 2026-09-21=a", 0, 0, "2026-09-21", 1,
     "2026-09-21", "2026-09-21", "absent", 0},
    {"makeup_saturday_no_record", "2026-10-09=a 2026-10-12=a", 0, "2026-10-09..2026-10-12",
     "2026-10-12", 2, "2026-10-09", "2026-10-12", "absent", 0},
    {"makeup_saturday_is_today", "2026-10-09=a", 0, 0, "2026-10-10", 1, "2026-10-09", "2026-10-09",
     "not_reported", 0},
    {"fact_on_sunday_ignored", "2026-11-20=a 2026-11-22=p 2026-11-23=a", 0, 0, "2026-11-23", 2,
     "2026-11-20", "2026-11-23", "absent", 0},
    {"fact_on_holiday_ignored", "2026-09-30=a 2026-10-02=p 2026-10-08=a", 0, 0, "2026-10-08", 2,
     "2026-09-30", "2026-10-08", "absent", 0},
    /* term boundaries: the summer is no school days, the streak goes on */
    {"term_boundary_continues", "2026-07-08=a 2026-07-09=a 2026-07-10=a 2026-09-01=a", 0, 0,
     "2026-09-01", 4, "2026-07-08", "2026-09-01", "absent", 0},
    {"term_boundary_presence_ends", "2026-07-09=a 2026-07-10=a 2026-09-01=p 2026-09-02=a", 0, 0,
     "2026-09-02", 1, "2026-09-02", "2026-09-02", "absent", 0},
    {"summer_vacation_as_of", "2026-07-09=a 2026-07-10=a", 0, 0, "2026-08-15", 2, "2026-07-09",
     "2026-07-10", "no_school", 0},
    {"first_day_of_term_not_reported", "2026-07-10=a", 0, 0, "2026-09-01", 1, "2026-07-10",
     "2026-07-10", "not_reported", 0},
    /* corrections: the later recorded fact wins, whatever order they came in */
    {"correction_to_present", "2026-11-23=a 2026-11-24=a 2026-11-24=p@90 2026-11-25=a", 0, 0,
     "2026-11-25", 1, "2026-11-25", "2026-11-25", "absent", 0},
    {"correction_to_absent", "2026-11-23=p 2026-11-23=a@90 2026-11-24=a", 0, 0, "2026-11-24", 2,
     "2026-11-23", "2026-11-24", "absent", 0},
    {"stale_fact_arriving_late", "2026-11-23=a@90 2026-11-23=p@30 2026-11-24=a", 0, 0, "2026-11-24",
     2, "2026-11-23", "2026-11-24", "absent", 0},
    /* periods */
    {"came_in_after_roll_call", "2026-11-23=a 2026-11-24=a 2026-11-24.5=p", 0, 0, "2026-11-24", 0,
     "-", "-", "late", 0},
    {"period_roll_calls_all_absent", "2026-11-23=a 2026-11-24.1-8=a", 0, 0, "2026-11-24", 2,
     "2026-11-23", "2026-11-24", "absent", 8},
    {"period_roll_calls_mixed", "2026-11-23=a 2026-11-24.1=a 2026-11-24.2-8=p", 0, 0, "2026-11-24",
     0, "-", "-", "present", 1},
    {"period_roll_call_late", "2026-11-24.1=t 2026-11-24.2-8=p", 0, 0, "2026-11-24", 0, "-", "-",
     "late", 0},
    {"period_leave_only", "2026-11-23=a 2026-11-24.1-8=ls", 0, 0, "2026-11-24", 1, "2026-11-23",
     "2026-11-23", "leave", 0},
    {"four_periods_missed", "2026-11-24=p 2026-11-24.5-8=a", 0, 0, "2026-11-24", 0, "-", "-",
     "present", 4},
    {"periods_partly_on_leave", "2026-11-24=p 2026-11-24.1-4=a", "2026-11-24.3..2026-11-24.4", 0,
     "2026-11-24", 0, "-", "-", "present", 2},
    {"periods_leave_facts", "2026-11-24=p 2026-11-24.1=a 2026-11-24.2=ls 2026-11-24.3=a", 0, 0,
     "2026-11-24", 0, "-", "-", "present", 2},
    {"whole_day_leave_excuses_periods", "2026-11-23=a 2026-11-24=ls 2026-11-24.1=a", 0, 0,
     "2026-11-24", 1, "2026-11-23", "2026-11-23", "leave", 0},
    {"whole_day_absence_counts_no_periods", "2026-11-24=a 2026-11-24.1-4=a", 0, 0, "2026-11-24", 1,
     "2026-11-24", "2026-11-24", "absent", 0},
    {"periods_on_another_day", "2026-11-23=p 2026-11-23.1-6=a 2026-11-24=p", 0, 0, "2026-11-24", 0,
     "-", "-", "present", 0},
    {"unapproved_leave_excuses_no_period", "2026-11-24=p 2026-11-24.1-4=a",
     "2026-11-24..2026-11-24!", 0, "2026-11-24", 0, "-", "-", "present", 4},
};

static void run_streak_row(const streak_row *r, bool reversed, bool implied)
{
    size_t n = build_facts(r->facts, scratch, 0);
    n = build_leaves(r->leaves, scratch, n);
    size_t ndays = build_days(r->reported, scratch_days, scratch_masks, COUNT(scratch_days));
    score_class_days days = {.dates = scratch_days,
                             .periods = scratch_masks,
                             .count = ndays,
                             .implies_presence = implied};
    size_t order[MAX_ITEMS];
    for (size_t i = 0; i < n; i++)
        order[i] = reversed ? n - 1 - i : i;
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    apply_items(h, scratch, n, order);
    score_summary s;
    score_summarize(policy(), calendar(), h, r->reported || implied ? &days : NULL, D(r->as_of),
                    &s);
    char start[11], last[11];
    bool ok = s.streak_days == r->streak && s.streak_start == D(r->start) &&
              s.streak_last == D(r->last) &&
              strcmp(score_day_state_name(s.today.state), r->today) == 0 &&
              s.unexcused_periods == r->periods;
    if (!ok)
        BX_FAIL_AT("%s%s: streak %d %s..%s today %s periods %d; expected %d %s..%s %s %d", r->name,
                   reversed ? " (reversed)" : "", s.streak_days, fmt_date(s.streak_start, start),
                   fmt_date(s.streak_last, last), score_day_state_name(s.today.state),
                   s.unexcused_periods, r->streak, r->start, r->last, r->today, r->periods);
    score_history_free(h);
}

BX_TEST(streak_rules)
{
    for (size_t i = 0; i < COUNT(streak_rows); i++)
        run_streak_row(&streak_rows[i], false, false);
}

BX_TEST(streak_rules_in_reverse_arrival)
{
    for (size_t i = 0; i < COUNT(streak_rows); i++)
        run_streak_row(&streak_rows[i], true, false);
}

/* The service does not store the presences a roll call implies: a reported slot without a fact
 * of the student is present. */
static const streak_row implied_rows[] = {
    {"implied_presence_ends_streak", "2026-11-23=a 2026-11-25=a", 0, "2026-11-23..2026-11-25",
     "2026-11-25", 1, "2026-11-25", "2026-11-25", "absent", 0},
    {"implied_presence_today", "2026-11-23=a 2026-11-24=a", 0, "2026-11-23..2026-11-25",
     "2026-11-25", 0, "-", "-", "present", 0},
    {"implied_presence_with_missed_periods", "2026-11-24.5-8=a", 0, "2026-11-24", "2026-11-24", 0,
     "-", "-", "present", 4},
    {"stored_facts_beat_implied", "2026-11-23=a 2026-11-24=a", 0, "2026-11-23..2026-11-24",
     "2026-11-24", 2, "2026-11-23", "2026-11-24", "absent", 0},
    {"period_roll_call_implies_its_period", "2026-11-24.1=a", 0, "2026-11-24.1 2026-11-24.2",
     "2026-11-24", 0, "-", "-", "present", 1},
    {"period_roll_calls_all_absent", "2026-11-24.1=a 2026-11-24.2=a", 0,
     "2026-11-24.1 2026-11-24.2", "2026-11-24", 1, "2026-11-24", "2026-11-24", "absent", 2},
    {"no_roll_call_is_not_reported", "2026-11-23=a", 0, "2026-11-23", "2026-11-24", 1, "2026-11-23",
     "2026-11-23", "not_reported", 0},
    {"implied_presence_does_not_beat_leave", "2026-11-23=a", "2026-11-24..2026-11-24",
     "2026-11-23..2026-11-24", "2026-11-24", 1, "2026-11-23", "2026-11-23", "leave", 0},
};

BX_TEST(implied_presence)
{
    for (size_t i = 0; i < COUNT(implied_rows); i++) {
        run_streak_row(&implied_rows[i], false, true);
        run_streak_row(&implied_rows[i], true, true);
    }
    /* rates count implied presences as attended days */
    size_t n = build_facts("2026-11-23=a 2026-11-24.5-8=a 2026-11-25=t", scratch, 0);
    size_t ndays =
        build_days("2026-11-02..2026-11-27", scratch_days, scratch_masks, COUNT(scratch_days));
    score_class_days days = {
        .dates = scratch_days, .periods = scratch_masks, .count = ndays, .implies_presence = true};
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    apply_items(h, scratch, n, NULL);
    score_summary s;
    score_summarize(policy(), calendar(), h, &days, D("2026-11-27"), &s);
    char text[1024];
    summary_text(&s, text, sizeof(text));
    CHECK_CONTAINS(text, "window=2026-11-02 [20 a19 t1 x1 l0 nr0 nc0]");
    CHECK_CONTAINS(text, "term=2026-autumn 2026-09-01 [60 a19 t1 x1 l0 nr40 nc0]");
    score_history_free(h);
}

/* ---- windows, rates and chronic absence ---- */

typedef struct window_row {
    const char *name;
    const char *facts;
    const char *leaves;
    const char *reported;
    const char *as_of;
    const char *expect; /* the fields of summary_text that matter, as a substring */
    const char *expect2;
} window_row;

static const window_row window_rows[] = {
    {"four_weeks_present", "2026-11-02..2026-11-27=p", 0, 0, "2026-11-27",
     "window=2026-11-02 [20 a20 t0 x0 l0 nr0 nc0] term=2026-autumn 2026-09-01 "
     "[60 a20 t0 x0 l0 nr40 nc0] r20=1.000000 rt=1.000000 chronic=0",
     0},
    {"two_absences_are_90_percent_and_chronic",
     "2026-11-02..2026-11-27=p 2026-11-23=a@1 2026-11-24=a@1", 0, 0, "2026-11-27",
     "[20 a18 t0 x2 l0 nr0 nc0]", "r20=0.900000 rt=0.900000 chronic=1"},
    {"leave_lowers_the_rate_not_the_streak", "2026-11-02..2026-11-27=p 2026-11-23..2026-11-26=ls@1",
     0, 0, "2026-11-27", "streak=0", "[20 a16 t0 x0 l4 nr0 nc0] term=2026-autumn"},
    {"approved_leave_spans_count_as_leave", "2026-11-02..2026-11-27=p 2026-11-26..2026-11-27=a@1",
     "2026-11-26..2026-11-27", 0, "2026-11-27", "[20 a18 t0 x0 l2 nr0 nc0]", "chronic=1"},
    {"one_absence_in_twenty_is_not_chronic", "2026-11-02..2026-11-27=p 2026-11-10=a@1", 0, 0,
     "2026-11-27", "r20=0.950000", "chronic=0"},
    {"late_arrivals_counted",
     "2026-11-02..2026-11-27=p 2026-11-03=t@1 2026-11-10=t@1 "
     "2026-11-17=t@1 2026-11-24=t@1 2026-11-25.3=t",
     0, 0, "2026-11-27", "[20 a20 t5 x0 l0 nr0 nc0]", "r20=1.000000"},
    {"window_crosses_the_summer", "2026-07-06..2026-07-10=p 2026-09-01..2026-09-08=p", 0, 0,
     "2026-09-08", "window=2026-06-23 [20 a11 t0 x0 l0 nr9 nc0]",
     "term=2026-autumn 2026-09-01 [6 a6 t0 x0 l0 nr0 nc0]"},
    {"term_rate_ignores_last_term", "2026-06-23..2026-07-10=a 2026-09-01..2026-09-08=p", 0, 0,
     "2026-09-08", "[20 a6 t0 x14 l0 nr0 nc0]", "rt=1.000000 chronic=0"},
    {"chronic_needs_ten_reported_days", "2026-09-01=a 2026-09-02..2026-09-04=p", 0, 0, "2026-09-04",
     "term=2026-autumn 2026-09-01 [4 a3 t0 x1 l0 nr0 nc0]", "chronic=0"},
    {"chronic_from_the_tenth_day", "2026-09-01=a 2026-09-02..2026-09-14=p", 0, 0, "2026-09-14",
     "[10 a9 t0 x1 l0 nr0 nc0]", "chronic=1"},
    {"vacation_as_of_uses_the_last_term", "2026-06-15..2026-07-10=p", 0, 0, "2026-08-20",
     "last=2026-07-10", "term=2026-spring 2026-03-02 [91 a19 t0 x0 l0 nr72 nc0]"},
    {"class_reported_days_are_no_record", "2026-11-02..2026-11-20=p", 0, "2026-11-02..2026-11-27",
     "2026-11-27", "[20 a15 t0 x0 l0 nr0 nc5]", "today=no_record"},
    {"class_silent_days_are_not_reported", "2026-11-02..2026-11-20=p", 0, 0, "2026-11-27",
     "[20 a15 t0 x0 l0 nr5 nc0]", "today=not_reported"},
    {"before_the_first_term", "", 0, 0, "2026-01-10", "last=- ", "window=- [0 a0"},
    {"national_day_window", "2026-09-14..2026-10-20=p", 0, 0, "2026-10-20",
     "window=2026-09-17 [20 a20", "term=2026-autumn 2026-09-01 [32 a23 t0 x0 l0 nr9 nc0]"},
};

BX_TEST(windows_and_rates)
{
    for (size_t i = 0; i < COUNT(window_rows); i++) {
        const window_row *r = &window_rows[i];
        size_t n = build_facts(r->facts, scratch, 0);
        n = build_leaves(r->leaves, scratch, n);
        size_t ndays = build_days(r->reported, scratch_days, scratch_masks, COUNT(scratch_days));
        score_class_days days = {.dates = scratch_days,
                                 .periods = scratch_masks,
                                 .count = ndays,
                                 .implies_presence = false};
        score_history *h = score_history_new();
        REQUIRE(h != NULL);
        apply_items(h, scratch, n, NULL);
        score_summary s;
        score_summarize(policy(), calendar(), h, r->reported ? &days : NULL, D(r->as_of), &s);
        char text[1024];
        summary_text(&s, text, sizeof(text));
        if (strstr(text, r->expect) == NULL || (r->expect2 && strstr(text, r->expect2) == NULL))
            BX_FAIL_AT("%s: %s\n  expected to contain \"%s\" and \"%s\"", r->name, text, r->expect,
                       r->expect2 ? r->expect2 : "");
        score_history_free(h);
    }
}

BX_TEST(window_length_is_a_setting)
{
    score_policy p = *policy();
    p.window_school_days = 5;
    size_t n = build_facts("2026-11-02..2026-11-27=p 2026-11-23=a@1", scratch, 0);
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    apply_items(h, scratch, n, NULL);
    score_summary s;
    score_summarize(&p, calendar(), h, NULL, D("2026-11-27"), &s);
    CHECK_INT(s.window_first, D("2026-11-23"));
    CHECK_INT(s.window.school_days, 5);
    CHECK_INT(s.window.absent_days, 1);
    CHECK(s.attendance_rate_20d > 0.799 && s.attendance_rate_20d < 0.801);
    score_history_free(h);
}

BX_TEST(class_unreported_days)
{
    size_t n = build_days("2026-11-02..2026-11-10 2026-11-12..2026-11-27", scratch_days,
                          scratch_masks, COUNT(scratch_days));
    score_class_days days = {
        .dates = scratch_days, .periods = scratch_masks, .count = n, .implies_presence = false};
    CHECK_INT(n, 19);
    /* 11-11 and the school days of 11-28..11-30 (a weekend and Monday 11-30) */
    CHECK_INT(score_class_unreported_days(calendar(), &days, D("2026-11-01"), D("2026-11-30")), 2);
    CHECK_INT(score_class_unreported_days(calendar(), NULL, D("2026-11-01"), D("2026-11-30")), 21);
    /* National Day: only the school days, make-up Saturday included */
    CHECK_INT(score_class_unreported_days(calendar(), NULL, D("2026-10-01"), D("2026-10-11")), 3);
    bx_date dup[] = {D("2026-11-03"), D("2026-11-02"), D("2026-11-03"), D("2026-11-02"),
                     D("2026-11-01")};
    uint16_t masks[] = {1, 2, 4, 8, 16};
    CHECK_INT(score_class_days_normalize(dup, masks, COUNT(dup)), 3);
    CHECK_INT(dup[0], D("2026-11-01"));
    CHECK_INT(dup[1], D("2026-11-02"));
    CHECK_INT(dup[2], D("2026-11-03"));
    CHECK_INT(masks[0], 16);
    CHECK_INT(masks[1], 2 | 8);
    CHECK_INT(masks[2], 1 | 4);
    score_class_days merged = {
        .dates = dup, .periods = masks, .count = 3, .implies_presence = false};
    CHECK_INT(score_class_days_on(&merged, D("2026-11-02")), 10);
    CHECK_INT(score_class_days_on(&merged, D("2026-11-04")), 0);
    CHECK_INT(score_class_days_on(NULL, D("2026-11-02")), 0);
    merged.periods = NULL; /* whole-day roll calls only */
    CHECK_INT(score_class_days_on(&merged, D("2026-11-03")), 1);
    bx_date plain[] = {D("2026-11-03"), D("2026-11-02"), D("2026-11-03")};
    CHECK_INT(score_class_days_normalize(plain, NULL, COUNT(plain)), 2);
    CHECK_INT(plain[0], D("2026-11-02"));
    CHECK_INT(score_class_days_normalize(plain, NULL, 0), 0);
}

/* A report's list, id by id: single spaces, whole ids only (the index of a class's lists is built
 * from these, so "S2" never matches a part of "S22"). */
BX_TEST(listed_ids_one_by_one)
{
    const char *at = "S1 S22 S3", *id;
    size_t len = 0;
    const char *want[] = {"S1", "S22", "S3"};
    for (size_t i = 0; i < 3; i++) {
        id = score_listed_next(&at, &len);
        REQUIRE(id != NULL);
        CHECK_INT((long long)len, (long long)strlen(want[i]));
        CHECK(strncmp(id, want[i], len) == 0);
    }
    CHECK(score_listed_next(&at, &len) == NULL);
    at = "";
    CHECK(score_listed_next(&at, &len) == NULL);
}

/* A roll call read before a listed child's own fact implies no presence for the child: the day
 * is "no record" (neither presence nor absence) and the streak neither ends nor grows; once the
 * fact arrives it decides. The others of the class are present by the same roll call. */
BX_TEST(a_roll_call_implies_no_presence_for_whom_it_listed)
{
    size_t nd =
        build_days("2026-11-23..2026-11-25", scratch_days, scratch_masks, COUNT(scratch_days));
    /* the whole-day roll call of 11-24 listed this student; 11-25's more than it could name */
    const score_class_listing mine[] = {{D("2026-11-24"), 1u}};
    const score_class_listing unnamed[] = {{D("2026-11-25"), 1u}};
    score_class_days days = {.dates = scratch_days,
                             .periods = scratch_masks,
                             .count = nd,
                             .implies_presence = true,
                             .listed = mine,
                             .nlisted = COUNT(mine),
                             .unnamed = unnamed,
                             .nunnamed = COUNT(unnamed)};
    size_t n = build_facts("2026-11-23=a", scratch, 0);
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    apply_items(h, scratch, n, NULL);
    score_day day;
    CHECK_INT(score_class_days_vouched(&days, D("2026-11-23")), 1);
    CHECK_INT(score_class_days_vouched(&days, D("2026-11-24")), 0);
    score_day_reduce(calendar(), h, &days, D("2026-11-24"), &day);
    CHECK_STR(score_day_state_name(day.state), "no_record");
    score_summary sum;
    score_summarize(policy(), calendar(), h, &days, D("2026-11-24"), &sum);
    CHECK_INT(sum.streak_days, 1); /* 11-23's absence stands: the streak is not ended */
    CHECK_INT(sum.streak_start, D("2026-11-23"));
    /* without the list (a report from before it) the same roll call made the student present */
    score_class_days unlisted = days;
    unlisted.nlisted = 0;
    score_summarize(policy(), calendar(), h, &unlisted, D("2026-11-24"), &sum);
    CHECK_INT(sum.streak_days, 0);
    /* the absence arrives: the streak grows from the same start */
    n = build_facts("2026-11-23=a 2026-11-24=a", scratch, 0);
    score_history_reset(h);
    apply_items(h, scratch, n, NULL);
    score_summarize(policy(), calendar(), h, &days, D("2026-11-24"), &sum);
    CHECK_INT(sum.streak_days, 2);
    CHECK_INT(sum.streak_start, D("2026-11-23"));
    /* a classmate the roll call did not list is present by it */
    score_class_days classmate = days;
    classmate.nlisted = 0;
    CHECK_INT(score_class_days_vouched(&classmate, D("2026-11-24")), 1);
    score_history_reset(h);
    score_day_reduce(calendar(), h, &classmate, D("2026-11-24"), &day);
    CHECK_STR(score_day_state_name(day.state), "present");
    /* a roll call that named no one vouches for no one */
    CHECK_INT(score_class_days_vouched(&classmate, D("2026-11-25")), 0);
    score_day_reduce(calendar(), h, &classmate, D("2026-11-25"), &day);
    CHECK_STR(score_day_state_name(day.state), "no_record");
    score_history_free(h);
}

BX_TEST(day_reduce_reports_each_day)
{
    size_t n = build_facts("2026-11-23=a 2026-11-24=p 2026-11-24.2=t 2026-11-25.1-4=a", scratch, 0);
    n = build_leaves("2026-11-25.3..2026-11-26", scratch, n);
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    apply_items(h, scratch, n, NULL);
    static const struct {
        const char *date;
        const char *state;
        int periods;
        bool late;
    } rows[] = {
        {"2026-11-22", "no_school", 0, false}, {"2026-11-23", "absent", 0, false},
        {"2026-11-24", "present", 0, true},    {"2026-11-25", "absent", 2, false},
        {"2026-11-26", "leave", 0, false},     {"2026-11-27", "not_reported", 0, false},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        score_day day;
        score_day_reduce(calendar(), h, NULL, D(rows[i].date), &day);
        CHECK_STR(score_day_state_name(day.state), rows[i].state);
        CHECK_INT(day.unexcused_periods, rows[i].periods);
        CHECK_INT(day.late, rows[i].late);
        CHECK_INT(day.date, D(rows[i].date));
    }
    score_history_free(h);
}

/* ---- order independence ---- */

static bool next_permutation(size_t *a, size_t n)
{
    if (n < 2)
        return false;
    size_t i = n - 1;
    while (i > 0 && a[i - 1] >= a[i])
        i--;
    if (i == 0)
        return false;
    size_t j = n - 1;
    while (a[j] <= a[i - 1])
        j--;
    size_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
    for (size_t l = i, r = n - 1; l < r; l++, r--) {
        t = a[l];
        a[l] = a[r];
        a[r] = t;
    }
    return true;
}

/* Deterministic pseudo-random numbers (a 64-bit LCG, fixed seed). */
static uint64_t rng_state;
static uint32_t rng_next(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static void shuffle(size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_next() % i;
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static const char *const check_dates[] = {"2026-11-23", "2026-11-24", "2026-11-25",
                                          "2026-11-26", "2026-11-27", "2026-11-28"};

/* Summaries at several dates and the history itself, as one text. */
static void state_text(const score_history *h, const score_class_days *days, char *out, size_t size)
{
    size_t used = 0;
    history_text(h, out, size);
    used = strlen(out);
    for (size_t i = 0; i < COUNT(check_dates) && used < size; i++) {
        score_summarize(policy(), calendar(), h, days, D(check_dates[i]), &(score_summary){0});
        score_summary s;
        score_summarize(policy(), calendar(), h, days, D(check_dates[i]), &s);
        summary_text(&s, out + used, size - used);
        used += strlen(out + used);
    }
}

BX_TEST(every_arrival_order_gives_one_state)
{
    /* 8 items: a roll call, its correction, a repeat, a period, leave phoned in later */
    size_t n = build_facts("2026-11-23=a 2026-11-24=a 2026-11-24=p@90 2026-11-25=a 2026-11-25.3=a "
                           "2026-11-26=a",
                           scratch, 0);
    scratch[n] = scratch[0]; /* a redelivered message */
    n++;
    n = build_leaves("2026-11-26..2026-11-26@600", scratch, n);
    CHECK_INT(n, 8);
    static char reference[16384], text[16384];
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    size_t order[8];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    apply_items(h, scratch, n, order);
    state_text(h, NULL, reference, sizeof(reference));
    CHECK_CONTAINS(reference, "as_of=2026-11-26 last=2026-11-26 today=leave/0/0 streak=1 "
                              "2026-11-25..2026-11-25");
    int perms = 0, different = 0;
    do {
        apply_items(h, scratch, n, order);
        state_text(h, NULL, text, sizeof(text));
        if (strcmp(text, reference) != 0 && different++ == 0)
            BX_FAIL_AT("order differs:\n%s\n%s", text, reference);
        perms++;
    } while (next_permutation(order, n));
    CHECK_INT(perms, 40320);
    CHECK_INT(different, 0);
    score_history_free(h);
}

BX_TEST(shuffled_term_gives_one_state)
{
    /* A whole autumn term: daily roll calls, a week of absence, corrections, periods, leave. */
    size_t n = build_facts("2026-09-01..2026-11-27=p 2026-11-19..2026-11-26=a@1 "
                           "2026-11-24=p@200 2026-11-24=a@300 2026-10-12.5-8=a 2026-10-12.6=ls@20 "
                           "2026-11-03=t@1 2026-11-03=p@2 2026-11-27.1-3=a",
                           scratch, 0);
    n = build_leaves("2026-11-25..2026-11-25@500 2026-10-13..2026-10-14! "
                     "2026-11-27.2..2026-11-27.2=p",
                     scratch, n);
    /* every fact again: redelivery after a crash */
    size_t once = n;
    for (size_t i = 0; i < once; i++)
        scratch[n++] = scratch[i];
    size_t ndays =
        build_days("2026-09-01..2026-11-26", scratch_days, scratch_masks, COUNT(scratch_days));
    score_class_days days = {
        .dates = scratch_days, .periods = scratch_masks, .count = ndays, .implies_presence = false};
    static char reference[65536], text[65536];
    static size_t order[MAX_ITEMS];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    apply_items(h, scratch, n, order);
    state_text(h, &days, reference, sizeof(reference));
    CHECK_CONTAINS(reference, "as_of=2026-11-26 last=2026-11-26 today=absent/0/0 streak=5 "
                              "2026-11-19..2026-11-26");
    CHECK_CONTAINS(reference, "as_of=2026-11-27 last=2026-11-27 today=present/2/0 streak=0");
    rng_state = 20260901;
    int different = 0;
    for (int round = 0; round < 200; round++) {
        shuffle(order, n);
        apply_items(h, scratch, n, order);
        state_text(h, &days, text, sizeof(text));
        if (strcmp(text, reference) != 0 && different++ == 0)
            BX_FAIL_AT("round %d differs", round);
    }
    CHECK_INT(different, 0);
    score_history_free(h);
}

BX_TEST(apply_reports_change)
{
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    size_t n = build_facts("2026-11-23=a 2026-11-23=p@60", scratch, 0);
    REQUIRE(n == 2);
    bx_error err = {0};
    bool changed = false;
    CHECK_INT(score_history_apply_fact(h, &scratch[0].fact, &changed, &err), BX_OK);
    CHECK(changed);
    CHECK_INT(score_history_apply_fact(h, &scratch[0].fact, &changed, &err), BX_OK);
    CHECK(!changed); /* the same fact again */
    CHECK_INT(score_history_apply_fact(h, &scratch[1].fact, &changed, &err), BX_OK);
    CHECK(changed); /* a correction */
    CHECK_INT(score_history_apply_fact(h, &scratch[0].fact, &changed, &err), BX_OK);
    CHECK(!changed); /* the corrected fact, late */
    CHECK_INT(h->nfacts, 1);
    const score_fact *f = score_history_find(h, D("2026-11-23"), 0);
    REQUIRE(f != NULL);
    CHECK_INT(f->status, SCORE_PRESENT);
    CHECK(score_history_find(h, D("2026-11-23"), 1) == NULL);
    CHECK(score_fact_newer(&scratch[1].fact, &scratch[0].fact));
    CHECK(!score_fact_newer(&scratch[0].fact, &scratch[1].fact));
    CHECK(!score_fact_newer(&scratch[0].fact, &scratch[0].fact));

    /* same recorded_at: the event id decides, the same way whichever comes first */
    score_fact x = scratch[0].fact, y = scratch[0].fact;
    snprintf(x.event_id, sizeof(x.event_id), "%s", "rc-1:s");
    snprintf(y.event_id, sizeof(y.event_id), "%s", "rc-2:s");
    y.status = SCORE_PRESENT;
    CHECK(score_fact_newer(&y, &x));

    REQUIRE(build_leaves("2026-11-24..2026-11-25", scratch, 0) == 1);
    score_leave l = scratch[0].leave;
    CHECK_INT(score_history_apply_leave(h, &l, &changed, &err), BX_OK);
    CHECK(changed);
    CHECK_INT(score_history_apply_leave(h, &l, &changed, &err), BX_OK);
    CHECK(!changed);
    l.recorded_at += 1000;
    l.approved = false; /* a later version of the same request */
    CHECK_INT(score_history_apply_leave(h, &l, &changed, &err), BX_OK);
    CHECK(changed);
    CHECK_INT(h->nleaves, 1);
    CHECK(!h->leaves[0].approved);
    score_history_free(h);
    score_history_free(NULL);
}

BX_TEST(apply_rejects_bad_input)
{
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    size_t n = build_facts("2026-11-23=a", scratch, 0);
    REQUIRE(n == 1);
    const score_fact good = scratch[0].fact;
    static const struct {
        const char *what;
        const char *field;
    } rows[] = {
        {"period 13", "period"},         {"period -1", "period"},
        {"status 0", "status"},          {"status 6", "status"},
        {"leave no kind", "leave_kind"}, {"kind not leave", "leave_kind"},
        {"time -1", "recorded_at"},      {"time too big", "recorded_at"},
        {"empty id", "event_id"},        {"bad id", "event_id"},
        {"date none", "date"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        score_fact f = good;
        switch (i) {
        case 0:
            f.period = 13;
            break;
        case 1:
            f.period = -1;
            break;
        case 2:
            f.status = 0;
            break;
        case 3:
            f.status = 6;
            break;
        case 4:
            f.status = SCORE_LEAVE;
            break;
        case 5:
            f.leave_kind = SCORE_LEAVE_SICK;
            break;
        case 6:
            f.recorded_at = -1;
            break;
        case 7:
            f.recorded_at = SCORE_TIME_MAX + 1;
            break;
        case 8:
            f.event_id[0] = '\0';
            break;
        case 9:
            snprintf(f.event_id, sizeof(f.event_id), "%s", "has space");
            break;
        case 10:
            f.date = BX_DATE_NONE;
            break;
        }
        bx_error err = {0};
        bool changed = true;
        if (score_history_apply_fact(h, &f, &changed, &err) != BX_EINVAL)
            BX_FAIL_AT("%s accepted", rows[i].what);
        CHECK_CONTAINS(err.msg, rows[i].field);
        CHECK(!changed);
    }
    CHECK_INT(h->nfacts, 0);

    score_leave bad[5];
    REQUIRE(build_leaves("2026-11-24..2026-11-25", scratch, 0) == 1);
    for (size_t i = 0; i < COUNT(bad); i++)
        bad[i] = scratch[0].leave;
    bad[0].last_date = D("2026-11-23");
    bad[1].kind = SCORE_LEAVE_NONE;
    bad[2].first_period = 13;
    bad[3].last_date = bad[3].first_date;
    bad[3].first_period = 5;
    bad[3].last_period = 4;
    snprintf(bad[4].event_id, sizeof(bad[4].event_id), "%s", "a/b");
    for (size_t i = 0; i < COUNT(bad); i++) {
        bx_error err = {0};
        if (score_history_apply_leave(h, &bad[i], NULL, &err) != BX_EINVAL)
            BX_FAIL_AT("bad leave %zu accepted", i);
    }
    CHECK_INT(h->nleaves, 0);
    score_history_free(h);
}

BX_TEST(history_limit_and_prune)
{
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    score_fact f = {0};
    f.status = SCORE_ABSENT;
    f.recorded_at = 1;
    snprintf(f.event_id, sizeof(f.event_id), "%s", "x");
    bx_error err = {0};
    bx_date base = D("2020-01-01");
    int applied = 0;
    for (int i = 0; i < SCORE_FACTS_MAX; i++) {
        f.date = base + i / 13;
        f.period = i % 13;
        if (score_history_apply_fact(h, &f, NULL, &err) == BX_OK)
            applied++;
    }
    CHECK_INT(applied, SCORE_FACTS_MAX);
    f.date = base + SCORE_FACTS_MAX;
    f.period = 0;
    CHECK_INT(score_history_apply_fact(h, &f, NULL, &err), BX_ENOMEM);
    CHECK_INT(h->nfacts, SCORE_FACTS_MAX);
    score_history_prune(h, base + 10);
    CHECK_INT(h->nfacts, SCORE_FACTS_MAX - 130);
    CHECK_INT(h->facts[0].date, base + 10);
    CHECK_INT(h->facts[0].period, 0);
    CHECK_INT(score_history_apply_fact(h, &f, NULL, &err), BX_OK);

    size_t n = build_leaves("2026-11-02..2026-11-03 2026-11-20..2026-11-24", scratch, 0);
    REQUIRE(n == 2);
    CHECK_INT(score_history_apply_leave(h, &scratch[0].leave, NULL, &err), BX_OK);
    CHECK_INT(score_history_apply_leave(h, &scratch[1].leave, NULL, &err), BX_OK);
    score_history_prune(h, D("2026-11-10"));
    CHECK_INT(h->nleaves, 1);
    CHECK_INT(h->leaves[0].first_date, D("2026-11-20"));
    score_history_reset(h);
    CHECK_INT(h->nfacts, 0);
    CHECK_INT(h->nleaves, 0);
    score_history_free(h);
}

/* ---- encodings ---- */

BX_TEST(fact_encoding_round_trips)
{
    static const struct {
        const char *slot;
        const char *value;
    } rows[] = {
        {"2026-03-09|0", "1773015665000,rc-20260309-7-2:stu-0001234,a"},
        {"2026-03-09|3", "1773021764000,att-8c41d2e0,ls"},
        {"2026-03-09|12", "0000000000000,x,lp"},
        {"2026-03-09|1", "9999999999999,A.b_c:d-e,p"},
        {"2027-01-22|0", "1773015665000,e,t"},
        {"1900-01-01|0", "1773015665000,e,e"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        score_fact f;
        bx_error err = {0};
        char slot[SCORE_SLOT_SIZE], value[SCORE_FACT_VALUE_SIZE];
        if (score_fact_decode(rows[i].slot, rows[i].value, &f, &err) != BX_OK) {
            BX_FAIL_AT("%s %s: %s", rows[i].slot, rows[i].value, err.msg);
            continue;
        }
        score_fact_slot(&f, slot);
        CHECK_INT(score_fact_encode(&f, value, &err), BX_OK);
        CHECK_STR(slot, rows[i].slot);
        CHECK_STR(value, rows[i].value);
    }
    /* the longest id fits */
    score_fact f = {.date = D("2026-03-09"),
                    .period = 12,
                    .status = SCORE_LEAVE,
                    .leave_kind = SCORE_LEAVE_PERSONAL,
                    .recorded_at = SCORE_TIME_MAX};
    memset(f.event_id, 'z', SCORE_EVENT_ID_MAX);
    char value[SCORE_FACT_VALUE_SIZE];
    bx_error err = {0};
    CHECK_INT(score_fact_encode(&f, value, &err), BX_OK);
    CHECK_INT(strlen(value), SCORE_FACT_VALUE_SIZE - 1);
    score_fact back;
    CHECK_INT(score_fact_decode("2026-03-09|12", value, &back, &err), BX_OK);
    CHECK_INT(score_fact_compare(&f, &back), 0);
    CHECK_STR(back.event_id, f.event_id);
    f.status = 0;
    CHECK_INT(score_fact_encode(&f, value, &err), BX_EINVAL);
    CHECK_STR(value, "");
}

BX_TEST(fact_decoding_rejects)
{
    static const struct {
        const char *slot;
        const char *value;
    } rows[] = {
        {"2026-02-30|0", "1773015665000,e,a"},      {"2026-03-09|13", "1773015665000,e,a"},
        {"2026-03-09|01", "1773015665000,e,a"},     {"2026-03-09", "1773015665000,e,a"},
        {"2026-03-09|", "1773015665000,e,a"},       {"2026-03-09|0 ", "1773015665000,e,a"},
        {"2026-03-09|-1", "1773015665000,e,a"},     {"", "1773015665000,e,a"},
        {"2026-03-09|0", "177301566500,e,a"},       {"2026-03-09|0", "17730156650000,e,a"},
        {"2026-03-09|0", "1773015665000,,a"},       {"2026-03-09|0", "1773015665000,e"},
        {"2026-03-09|0", "1773015665000,e,"},       {"2026-03-09|0", "1773015665000,e,x"},
        {"2026-03-09|0", "1773015665000,e,l"},      {"2026-03-09|0", "1773015665000,e,ap"},
        {"2026-03-09|0", "1773015665000,bad id,a"}, {"2026-03-09|0", "1773015665000,e,a,"},
        {"2026-03-09|0", "-773015665000,e,a"},      {"2026-03-09|0", ""},
        {"2026-03-09|0", "1773015665000;e;a"},      {"2026-03-09|0", "1773015665000,a/b,a"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        score_fact f;
        memset(&f, 0x5a, sizeof(f));
        bx_error err = {0};
        if (score_fact_decode(rows[i].slot, rows[i].value, &f, &err) != BX_EINVAL)
            BX_FAIL_AT("accepted \"%s\" \"%s\"", rows[i].slot, rows[i].value);
        CHECK(err.msg[0] != '\0');
        CHECK_INT(f.period, 0x5a5a5a5a); /* out untouched */
    }
}

BX_TEST(encoded_values_sort_like_precedence)
{
    /* The service may keep the greater encoded value; that must be the fact that wins. */
    static const char *const ids[] = {"a", "ab",     "a-b",     "a.b",     "a:b", "a_b", "b",
                                      "Z", "rc-1:s", "rc-1:s2", "rc-10:s", "0",   "9"};
    static const score_status sts[] = {SCORE_PRESENT, SCORE_ABSENT, SCORE_LATE, SCORE_LEAVE,
                                       SCORE_EARLY_LEAVE};
    rng_state = 42;
    int checked = 0;
    for (int i = 0; i < 5000; i++) {
        score_fact f[2];
        char v[2][SCORE_FACT_VALUE_SIZE];
        for (int k = 0; k < 2; k++) {
            memset(&f[k], 0, sizeof(f[k]));
            f[k].date = D("2026-11-23");
            f[k].status = sts[rng_next() % COUNT(sts)];
            f[k].leave_kind = f[k].status == SCORE_LEAVE ? (score_leave_kind)(1 + rng_next() % 2)
                                                         : SCORE_LEAVE_NONE;
            f[k].recorded_at = 1773015665000LL + rng_next() % 3;
            snprintf(f[k].event_id, sizeof(f[k].event_id), "%s", ids[rng_next() % COUNT(ids)]);
            bx_error err = {0};
            REQUIRE(score_fact_encode(&f[k], v[k], &err) == BX_OK);
        }
        int by_bytes = strcmp(v[0], v[1]);
        by_bytes = (by_bytes > 0) - (by_bytes < 0);
        if (by_bytes != score_fact_compare(&f[0], &f[1]))
            BX_FAIL_AT("%s vs %s: bytes say %d, precedence %d", v[0], v[1], by_bytes,
                       score_fact_compare(&f[0], &f[1]));
        CHECK_INT(score_fact_compare(&f[0], &f[1]), -score_fact_compare(&f[1], &f[0]));
        checked++;
    }
    CHECK_INT(checked, 5000);
}

BX_TEST(leave_encoding)
{
    static const struct {
        const char *id;
        const char *value;
    } good[] = {
        {"lv-5e2b7a91", "1773049200000,2026-03-10,0,2026-03-11,0,s,1"},
        {"lv-2", "1773049200000,2026-03-10,3,2026-03-10,4,p,0"},
        {"lv-3", "0000000000000,2026-03-10,12,2026-03-12,1,s,1"},
    };
    for (size_t i = 0; i < COUNT(good); i++) {
        score_leave l;
        bx_error err = {0};
        char back[SCORE_LEAVE_VALUE_SIZE];
        if (score_leave_decode(good[i].id, good[i].value, &l, &err) != BX_OK) {
            BX_FAIL_AT("%s: %s", good[i].value, err.msg);
            continue;
        }
        CHECK_STR(l.event_id, good[i].id);
        CHECK_INT(score_leave_encode(&l, back, &err), BX_OK);
        CHECK_STR(back, good[i].value);
    }
    static const char *const bad[] = {
        "1773049200000,2026-03-10,0,2026-03-09,0,s,1", /* ends before it starts */
        "1773049200000,2026-03-10,5,2026-03-10,4,s,1", /* periods backwards */
        "1773049200000,2026-03-10,0,2026-03-11,0,x,1",
        "1773049200000,2026-03-10,0,2026-03-11,0,s,2",
        "1773049200000,2026-03-10,0,2026-03-11,0,s,1,",
        "1773049200000,2026-03-10,13,2026-03-11,0,s,1",
        "1773049200000,2026-03-10,00,2026-03-11,0,s,1",
        "1773049200000,2026-3-10,0,2026-03-11,0,s,1",
        "177304920000,2026-03-10,0,2026-03-11,0,s,1",
        "1773049200000,2026-03-10,0,2026-03-11,0,s",
        "",
    };
    for (size_t i = 0; i < COUNT(bad); i++) {
        score_leave l;
        bx_error err = {0};
        if (score_leave_decode("lv-1", bad[i], &l, &err) != BX_EINVAL)
            BX_FAIL_AT("accepted \"%s\"", bad[i]);
    }
    score_leave l;
    bx_error err = {0};
    CHECK_INT(score_leave_decode("bad id", good[0].value, &l, &err), BX_EINVAL);
    CHECK_INT(score_leave_decode("", good[0].value, &l, &err), BX_EINVAL);
}

BX_TEST(last_assessment_encoding)
{
    static const char *const good[] = {"2026-03-11,3,2026-03-09,high,6", "2026-03-09,0,-,low,4",
                                       "2026-11-27,150,2026-06-01,critical,0",
                                       "2026-11-27,0,-,medium,12"};
    for (size_t i = 0; i < COUNT(good); i++) {
        score_last l;
        bx_error err = {0};
        char back[SCORE_LAST_SIZE];
        if (score_last_decode(good[i], &l, &err) != BX_OK) {
            BX_FAIL_AT("%s: %s", good[i], err.msg);
            continue;
        }
        score_last_encode(&l, back);
        CHECK_STR(back, good[i]);
    }
    static const char *const bad[] = {"2026-03-11,3,-,high,6",
                                      "2026-03-11,0,2026-03-09,low,0",
                                      "2026-03-11,3,2026-03-09,huge,6",
                                      "2026-03-11,3,2026-03-09,high,13",
                                      "2026-03-11,03,2026-03-09,high,6",
                                      "2026-03-11,3,2026-03-09,high,6,",
                                      "2026-03-11,-1,-,low,0",
                                      "2026-03-11,0,-,low",
                                      "",
                                      "2026-03-11,9999999,-,low,0"};
    for (size_t i = 0; i < COUNT(bad); i++) {
        score_last l;
        bx_error err = {0};
        if (score_last_decode(bad[i], &l, &err) != BX_EINVAL)
            BX_FAIL_AT("accepted \"%s\"", bad[i]);
    }
}

/* ---- policy ---- */

static const char *policy_path(char *buf, size_t size)
{
    const char *src = getenv("BX_SOURCE_DIR");
    snprintf(buf, size, "%s/deploy/policy/score.policy", src ? src : ".");
    return buf;
}

BX_TEST(policy_file_is_the_default)
{
    char path[1024];
    score_policy fromfile, builtin;
    bx_error err = {0};
    memset(&fromfile, 0x5a, sizeof(fromfile));
    if (score_policy_load(policy_path(path, sizeof(path)), &fromfile, &err) != BX_OK)
        BX_FAIL_AT("%s", err.msg);
    score_policy_default(&builtin);
    CHECK(memcmp(&fromfile, &builtin, sizeof(builtin)) == 0);
    CHECK_INT(builtin.periods_alert_threshold, 4);
    CHECK_INT(builtin.window_school_days, 20);
    CHECK_INT(builtin.transition_grades, (1 << 1) | (1 << 4) | (1 << 6) | (1 << 7));
    CHECK(builtin.tier_medium < builtin.tier_high && builtin.tier_high < builtin.tier_critical);
    /* the ladder in school days: 3 days (persuasion letter) is high, 5 (one week) critical */
    CHECK(3 * builtin.w_streak_per_day >= builtin.tier_high);
    CHECK(2 * builtin.w_streak_per_day < builtin.tier_high);
    CHECK(5 * builtin.w_streak_per_day >= builtin.tier_critical);
    CHECK(4 * builtin.w_streak_per_day < builtin.tier_critical);
    /* the limits: flags alone stay below high; the profile adds one tier at most */
    CHECK(builtin.w_flags_max < builtin.tier_high);
    CHECK_INT(builtin.tier_profile_steps, 1);
    CHECK_INT(builtin.rates_largest_only, 1);
}

BX_TEST(policy_overrides)
{
    static const char text[] = "# a county's own weights\r\n"
                               "\n"
                               "  weight.streak_per_day   =   20  \r\n"
                               "flag.left_behind=0\n"
                               "\ttransition_grades = 7\n"
                               "tier.critical = 200\n"
                               "periods_alert_threshold = 6"; /* no final newline */
    score_policy p;
    bx_error err = {0};
    if (score_policy_parse(text, strlen(text), "county.policy", &p, &err) != BX_OK)
        BX_FAIL_AT("%s", err.msg);
    CHECK_INT(p.w_streak_per_day, 20);
    CHECK_INT(p.f_left_behind, 0);
    CHECK_INT(p.transition_grades, 1 << 7);
    CHECK_INT(p.tier_critical, 200);
    CHECK_INT(p.periods_alert_threshold, 6);
    CHECK_INT(p.f_orphan, policy()->f_orphan); /* untouched settings keep the default */
    CHECK_INT(score_policy_parse("transition_grades =\n", 20, "x", &p, &err), BX_OK);
    CHECK_INT(p.transition_grades, 0);
    CHECK_INT(score_policy_parse("transition_grades = 9 ,1\n", 24, "x", &p, &err), BX_OK);
    CHECK_INT(p.transition_grades, (1 << 9) | (1 << 1));
    CHECK_INT(score_policy_parse("", 0, "x", &p, &err), BX_OK);
    CHECK(memcmp(&p, policy(), sizeof(p)) == 0);
}

BX_TEST(policy_errors)
{
    static const struct {
        const char *text;
        const char *message;
    } rows[] = {
        {"foo = 1\n", "score.policy:1: unknown setting foo"},
        {"# c\n\nweight.streak_per_day = x\n",
         "score.policy:3: weight.streak_per_day: expected an integer 0..1000, got \"x\""},
        {"weight.streak_per_day = 1001\n", "score.policy:1: weight.streak_per_day: expected an "
                                           "integer 0..1000, got \"1001\""},
        {"weight.streak_per_day = -1\n", "expected an integer 0..1000, got \"-1\""},
        {"weight.streak_per_day = +1\n", "expected an integer 0..1000, got \"+1\""},
        {"weight.streak_per_day = 10 # comment\n", "got \"10 # comment\""},
        {"weight.streak_per_day = \n", "expected an integer 0..1000, got \"\""},
        {"weight.streak_per_day = 99999999999\n", "expected an integer 0..1000"},
        {"weight.streak_per_day\n", "score.policy:1: expected \"name = value\""},
        {" = 5\n", "score.policy:1: expected a setting name before '='"},
        {"Weight.Orphan = 5\n", "unknown setting Weight.Orphan"},
        {"flag.orphan = 1\nflag.orphan = 2\n", "score.policy:2: flag.orphan set twice (first on "
                                               "line 1)"},
        {"periods_alert_threshold = 0\n", "periods_alert_threshold: expected an integer 1..12"},
        {"chronic.percent = 101\n", "chronic.percent: expected an integer 1..100"},
        {"window.school_days = 4\n", "window.school_days: expected an integer 5..60"},
        {"transition_grades = 1,,4\n", "transition_grades: expected distinct grades 1..9"},
        {"transition_grades = 1,10\n", "transition_grades: expected distinct grades"},
        {"transition_grades = 0\n", "transition_grades: expected distinct grades"},
        {"transition_grades = 4,4\n", "transition_grades: expected distinct grades"},
        {"transition_grades = 1 4\n", "transition_grades: expected distinct grades"},
        {"transition_grades = 1,\n", "transition_grades: expected distinct grades"},
        {"tier.profile_steps = 4\n", "tier.profile_steps: expected an integer 0..3"},
        {"absence_rates.largest_only = 2\n",
         "absence_rates.largest_only: expected an integer 0..1"},
        {"weight.flags_max = -1\n", "weight.flags_max: expected an integer 0..100000"},
        {"tier.high = 10\n", "score.policy: tier.high (10) must be above tier.medium (25)"},
        {"tier.critical = 45\n", "score.policy: tier.critical (45) must be above tier.high (45)"},
        {"rate_20d.very_low_percent = 95\n",
         "rate_20d.very_low_percent (95) must not be above rate_20d.low_percent (90)"},
        {"flag.sex = 5\n", "score.policy:1: flag.sex: sex and ethnicity are never inputs"},
        {"weight.ethnicity = 5\n", "weight.ethnicity: sex and ethnicity are never inputs"},
        {"flag.gender = 5\n", "sex and ethnicity are never inputs"},
        {"flag.minzu = 5\n", "sex and ethnicity are never inputs"},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        score_policy p;
        memset(&p, 0x5a, sizeof(p));
        bx_error err = {0};
        if (score_policy_parse(rows[i].text, strlen(rows[i].text), "score.policy", &p, &err) !=
            BX_EINVAL) {
            BX_FAIL_AT("accepted \"%s\"", rows[i].text);
            continue;
        }
        if (strstr(err.msg, rows[i].message) == NULL)
            BX_FAIL_AT("\"%s\": message \"%s\", expected \"%s\"", rows[i].text, err.msg,
                       rows[i].message);
        CHECK_INT(p.tier_medium, 0x5a5a5a5a); /* all or nothing */
    }
    /* a NUL byte, and an overlong line */
    score_policy p;
    bx_error err = {0};
    CHECK_INT(score_policy_parse("tier.high = 4\0"
                                 "5\n",
                                 16, "score.policy", &p, &err),
              BX_EINVAL);
    CHECK_CONTAINS(err.msg, "score.policy:1: line longer than 1024 bytes or holding a NUL byte");
    static char longline[2100];
    memset(longline, '#', sizeof(longline) - 1);
    CHECK_INT(score_policy_parse(longline, strlen(longline), "score.policy", &p, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "line longer than 1024 bytes");
    CHECK_INT(score_policy_load("/nonexistent/score.policy", &p, &err), BX_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "/nonexistent/score.policy: cannot open");
}

/* ---- risk assessment ---- */

typedef struct assess_row {
    const char *name;
    int streak;
    const char *start;
    int w_attended, w_absent, w_leave, w_late; /* the recent window */
    int t_attended, t_absent, t_leave;         /* the term */
    bool chronic;
    int periods;
    unsigned flags;
    int grade;
    const char *birth;
    const char *as_of;
    int score;
    const char *tier;
    const char *factors; /* "name:points ..." in order */
} assess_row;

static const assess_row assess_rows[] = {
    /* the examples of schemas/topics/examples/bx.risk.v1 */
    {"risk_example", 3, "2026-03-09", 17, 3, 0, 0, 18, 2, 0, false, 0, SCORE_FLAG_LEFT_BEHIND, 8,
     "2012-10-01", "2026-03-11", 65, "high",
     "streak_days:45 attendance_rate_20d:10 left_behind:10"},
    {"first_assessment_example", 0, "-", 19, 1, 0, 0, 19, 1, 0, false, 4, 0, 0, "-", "2026-03-09",
     20, "low", "unexcused_periods_today:20"},
    {"nothing", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 8, "-", "2026-11-27", 0, "low", ""},
    {"three_periods_is_below_threshold", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 3, 0, 0, "-",
     "2026-11-27", 0, "low", ""},
    /* the ladder: 1, 2, 3, 5 and 10+ school days */
    {"one_day", 1, "2026-11-27", 19, 1, 0, 0, 59, 1, 0, false, 0, 0, 0, "-", "2026-11-27", 15,
     "low", "streak_days:15"},
    {"two_days", 2, "2026-11-26", 18, 2, 0, 0, 58, 2, 0, false, 0, 0, 0, "-", "2026-11-27", 30,
     "medium", "streak_days:30"},
    {"three_days_persuasion", 3, "2026-11-25", 18, 2, 0, 0, 58, 2, 0, false, 0, 0, 0, "-",
     "2026-11-27", 45, "high", "streak_days:45"},
    {"one_week_roster", 5, "2026-11-23", 15, 5, 0, 0, 40, 5, 0, true, 0, 0, 0, "-", "2026-11-27",
     95, "critical",
     "streak_days:75 attendance_rate_20d:20 attendance_rate_term:10 chronic_absence:15 "
     "absence_rates_once:-25"},
    {"streak_capped", 30, "2026-10-16", 0, 20, 0, 0, 20, 30, 0, true, 0, 0, 0, "-", "2026-11-27",
     170, "critical",
     "streak_days:150 attendance_rate_20d:20 attendance_rate_term:10 chronic_absence:15 "
     "absence_rates_once:-25"},
    /* rates */
    {"rate_89_percent", 0, "-", 17, 1, 1, 0, 57, 1, 2, false, 0, 0, 0, "-", "2026-11-27", 10, "low",
     "attendance_rate_20d:10"},
    {"rate_90_percent_is_not_below", 0, "-", 18, 0, 2, 0, 58, 0, 2, false, 0, 0, 0, "-",
     "2026-11-27", 0, "low", ""},
    {"rate_80_percent_is_low_not_very_low", 0, "-", 16, 0, 4, 0, 56, 0, 4, false, 0, 0, 0, "-",
     "2026-11-27", 10, "low", "attendance_rate_20d:10"},
    {"rate_75_percent", 0, "-", 15, 0, 5, 0, 55, 0, 5, false, 0, 0, 0, "-", "2026-11-27", 20, "low",
     "attendance_rate_20d:20"},
    {"rate_needs_five_reported_days", 0, "-", 1, 3, 0, 0, 1, 3, 0, false, 0, 0, 0, "-",
     "2026-09-04", 0, "low", ""},
    /* the three views of the same missed days count once: the largest */
    {"term_rate_and_chronic", 0, "-", 20, 0, 0, 0, 40, 3, 3, true, 0, 0, 0, "-", "2026-11-27", 15,
     "low", "attendance_rate_term:10 chronic_absence:15 absence_rates_once:-10"},
    {"two_sick_days_early_in_term", 0, "-", 8, 0, 2, 0, 8, 0, 2, true, 0, 0, 0, "-", "2026-09-14",
     15, "low",
     "attendance_rate_20d:10 attendance_rate_term:10 chronic_absence:15 absence_rates_once:-20"},
    {"very_low_rate_is_the_largest", 0, "-", 7, 1, 2, 0, 7, 1, 2, true, 0, 0, 0, "-", "2026-09-14",
     20, "low",
     "attendance_rate_20d:20 attendance_rate_term:10 chronic_absence:15 absence_rates_once:-25"},
    {"late_five_days", 0, "-", 20, 0, 0, 5, 60, 0, 0, false, 0, 0, 0, "-", "2026-11-27", 5, "low",
     "late_arrivals_20d:5"},
    {"late_four_days", 0, "-", 20, 0, 0, 4, 60, 0, 0, false, 0, 0, 0, "-", "2026-11-27", 0, "low",
     ""},
    /* registry flags */
    /* registry flags count up to weight.flags_max (30) together: medium at most alone */
    {"every_flag", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, SCORE_FLAG_ALL, 0, "-", "2026-11-27",
     30, "medium",
     "registered_poor:10 minimum_subsistence:10 extreme_poverty:15 orphan:15 disability:10 "
     "left_behind:10 single_parent:5 migrant:5 learning_difficulty:10 wavering:20 "
     "earlier_dropout:20 monastery:25 flags_capped:-125"},
    {"wavering_monastery_not_high", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0,
     SCORE_FLAG_WAVERING | SCORE_FLAG_MONASTERY, 0, "-", "2026-11-27", 30, "medium",
     "wavering:20 monastery:25 flags_capped:-15"},
    /* the profile raises the tier one step at most above attendance's own */
    {"every_flag_one_day_not_high", 1, "2026-11-27", 19, 1, 0, 0, 59, 1, 0, false, 0,
     SCORE_FLAG_ALL, 0, "-", "2026-11-27", 44, "medium",
     "streak_days:15 registered_poor:10 minimum_subsistence:10 extreme_poverty:15 orphan:15 "
     "disability:10 left_behind:10 single_parent:5 migrant:5 learning_difficulty:10 wavering:20 "
     "earlier_dropout:20 monastery:25 flags_capped:-125 tier_needs_attendance:-1"},
    {"flags_one_day_medium", 1, "2026-11-27", 19, 1, 0, 0, 59, 1, 0, false, 0,
     SCORE_FLAG_REGISTERED_POOR | SCORE_FLAG_LEFT_BEHIND | SCORE_FLAG_LEARNING_DIFFICULTY, 0, "-",
     "2026-11-27", 44, "medium",
     "streak_days:15 registered_poor:10 left_behind:10 learning_difficulty:10 "
     "tier_needs_attendance:-1"},
    {"two_days_and_flags_high", 2, "2026-11-26", 18, 2, 0, 0, 58, 2, 0, false, 0,
     SCORE_FLAG_REGISTERED_POOR | SCORE_FLAG_LEFT_BEHIND | SCORE_FLAG_LEARNING_DIFFICULTY, 0, "-",
     "2026-11-27", 60, "high",
     "streak_days:30 registered_poor:10 left_behind:10 learning_difficulty:10"},
    {"two_days_every_flag_and_age_high_not_critical", 2, "2026-11-26", 18, 2, 0, 0, 58, 2, 0, false,
     0, SCORE_FLAG_ALL, 7, "2012-03-01", "2026-11-27", 74, "high",
     "streak_days:30 registered_poor:10 minimum_subsistence:10 extreme_poverty:15 orphan:15 "
     "disability:10 left_behind:10 single_parent:5 migrant:5 learning_difficulty:10 wavering:20 "
     "earlier_dropout:20 monastery:25 flags_capped:-125 over_age:10 transition_year:5 "
     "tier_needs_attendance:-1"},
    {"three_days_and_flags_critical", 3, "2026-11-25", 18, 2, 0, 0, 58, 2, 0, false, 0,
     SCORE_FLAG_REGISTERED_POOR | SCORE_FLAG_LEFT_BEHIND | SCORE_FLAG_LEARNING_DIFFICULTY, 0, "-",
     "2026-11-27", 75, "critical",
     "streak_days:45 registered_poor:10 left_behind:10 learning_difficulty:10"},
    {"disability_counts_once", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0,
     SCORE_FLAG_DISABILITY_SIGHT | SCORE_FLAG_DISABILITY_HEARING, 0, "-", "2026-11-27", 10, "low",
     "disability:10"},
    {"poverty_and_left_behind_medium", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0,
     SCORE_FLAG_REGISTERED_POOR | SCORE_FLAG_LEFT_BEHIND | SCORE_FLAG_LEARNING_DIFFICULTY, 0, "-",
     "2026-11-27", 30, "medium", "registered_poor:10 left_behind:10 learning_difficulty:10"},
    {"one_day_and_poverty_medium", 1, "2026-11-27", 19, 1, 0, 0, 59, 1, 0, false, 0,
     SCORE_FLAG_MINIMUM_SUBSISTENCE, 0, "-", "2026-11-27", 25, "medium",
     "streak_days:15 minimum_subsistence:10"},
    /* age and grade */
    {"over_age_two_years", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 8, "2011-03-01",
     "2026-10-10", 10, "low", "over_age:10"},
    {"over_age_one_year_is_usual", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 8, "2012-03-01",
     "2026-10-10", 0, "low", ""},
    {"over_age_birthday_on_sept_1", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 3, "2015-09-01",
     "2026-03-10", 10, "low", "over_age:10"},
    {"over_age_birthday_after_sept_1", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 3, "2015-09-02",
     "2026-03-10", 0, "low", ""},
    {"transition_grade_7_over_age", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 7, "2012-03-01",
     "2026-10-10", 15, "low", "over_age:10 transition_year:5"},
    {"transition_grade_1", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 1, "2020-05-01",
     "2026-10-10", 5, "low", "transition_year:5"},
    {"grade_unknown", 0, "-", 20, 0, 0, 0, 60, 0, 0, false, 0, 0, 0, "2000-01-01", "2026-10-10", 0,
     "low", ""},
    /* everything together: attendance factors first */
    {"absent_poor_wavering", 4, "2026-11-24", 16, 4, 0, 0, 56, 4, 0, false, 5,
     SCORE_FLAG_WAVERING | SCORE_FLAG_REGISTERED_POOR, 7, "2013-01-01", "2026-11-27", 125,
     "critical",
     "streak_days:60 attendance_rate_20d:10 unexcused_periods_today:20 registered_poor:10 "
     "wavering:20 transition_year:5"},
};

static void summary_for(const assess_row *r, score_summary *s)
{
    memset(s, 0, sizeof(*s));
    s->as_of = D(r->as_of);
    s->last_school_day = s->as_of;
    s->streak_days = r->streak;
    s->streak_start = D(r->start);
    s->streak_last = r->streak ? s->as_of : BX_DATE_NONE;
    s->unexcused_periods = r->periods;
    s->window.attended_days = r->w_attended;
    s->window.absent_days = r->w_absent;
    s->window.leave_days = r->w_leave;
    s->window.late_days = r->w_late;
    s->window.school_days = r->w_attended + r->w_absent + r->w_leave;
    s->term_counts.attended_days = r->t_attended;
    s->term_counts.absent_days = r->t_absent;
    s->term_counts.leave_days = r->t_leave;
    s->term_counts.school_days = r->t_attended + r->t_absent + r->t_leave;
    s->attendance_rate_20d = score_counts_rate(&s->window);
    s->attendance_rate_term = score_counts_rate(&s->term_counts);
    s->chronic_absence = r->chronic;
}

static void factors_text(const score_assessment *a, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < a->nfactors && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s:%d", i ? " " : "",
                                 a->factors[i].factor, a->factors[i].points);
}

BX_TEST(assessment_factors_and_tiers)
{
    for (size_t i = 0; i < COUNT(assess_rows); i++) {
        const assess_row *r = &assess_rows[i];
        score_summary s;
        summary_for(r, &s);
        score_profile profile = {r->flags, r->grade, D(r->birth)};
        score_assessment a;
        score_assess(policy(), &s, &profile, &a);
        char factors[1024];
        factors_text(&a, factors, sizeof(factors));
        if (a.score != r->score || strcmp(score_tier_name(a.tier), r->tier) != 0 ||
            strcmp(factors, r->factors) != 0)
            BX_FAIL_AT("%s: %d %s \"%s\"; expected %d %s \"%s\"", r->name, a.score,
                       score_tier_name(a.tier), factors, r->score, r->tier, r->factors);
        int sum = 0;
        for (int k = 0; k < a.nfactors; k++) {
            sum += a.factors[k].points;
            /* only the limits take points back */
            bool limit = strcmp(a.factors[k].factor, "absence_rates_once") == 0 ||
                         strcmp(a.factors[k].factor, "flags_capped") == 0 ||
                         strcmp(a.factors[k].factor, "tier_needs_attendance") == 0;
            CHECK(limit ? a.factors[k].points < 0 : a.factors[k].points > 0);
            CHECK(a.factors[k].detail[0] != '\0');
            /* attendance factors may go to analytics, registry ones never */
            CHECK_INT(a.factors[k].source == SCORE_SOURCE_ATTENDANCE,
                      score_factor_is_attendance(a.factors[k].factor));
        }
        CHECK_INT(sum, a.score);
    }
}

BX_TEST(assessment_details)
{
    score_summary s;
    summary_for(&assess_rows[0], &s);
    s.streak_days = 4;
    s.streak_start = D("2026-11-23");
    s.as_of = D("2026-11-26");
    s.unexcused_periods = 6;
    score_profile profile = {SCORE_FLAG_LEFT_BEHIND | SCORE_FLAG_DISABILITY_HEARING |
                                 SCORE_FLAG_DISABILITY_INTELLECTUAL,
                             7, D("2012-03-01")};
    score_assessment a;
    score_assess(policy(), &s, &profile, &a);
    static const struct {
        const char *factor;
        const char *detail;
        score_source source;
    } rows[] = {
        {"streak_days", "absent 4 school days in a row since 2026-11-23", SCORE_SOURCE_ATTENDANCE},
        {"attendance_rate_20d", "attended 17 of the last 20 reported school days (85%)",
         SCORE_SOURCE_ATTENDANCE},
        {"unexcused_periods_today", "6 periods missed without leave on 2026-11-26",
         SCORE_SOURCE_ATTENDANCE},
        {"disability", "registry flag (disability_hearing, disability_intellectual)",
         SCORE_SOURCE_PROFILE},
        {"left_behind", "registry flag", SCORE_SOURCE_PROFILE},
        {"over_age", "2 years older than usual for grade 7", SCORE_SOURCE_PROFILE},
        {"transition_year", "grade 7: entering junior secondary school", SCORE_SOURCE_PROFILE},
    };
    CHECK_INT(a.nfactors, (int)COUNT(rows));
    for (size_t i = 0; i < COUNT(rows) && (int)i < a.nfactors; i++) {
        CHECK_STR(a.factors[i].factor, rows[i].factor);
        CHECK_STR(a.factors[i].detail, rows[i].detail);
        CHECK_INT(a.factors[i].source, rows[i].source);
    }
    s.streak_days = 1;
    s.unexcused_periods = 0;
    score_assess(policy(), &s, NULL, &a);
    CHECK_STR(a.factors[0].detail, "absent 1 school day in a row since 2026-11-23");

    /* a term rate and chronic absence speak of the term */
    s.term_counts.attended_days = 45;
    s.term_counts.absent_days = 4;
    s.term_counts.leave_days = 3;
    s.chronic_absence = true;
    score_assess(policy(), &s, NULL, &a);
    char text[1024];
    factors_text(&a, text, sizeof(text));
    CHECK_STR(text, "streak_days:15 attendance_rate_20d:10 attendance_rate_term:10 "
                    "chronic_absence:15 absence_rates_once:-20");
    CHECK_STR(a.factors[2].detail, "attended 45 of 52 reported school days this term (86%)");
    CHECK_STR(a.factors[3].detail,
              "missed 7 of 52 reported school days this term (13%), leave included");
}

BX_TEST(assessment_weights_from_policy)
{
    score_policy p = *policy();
    p.w_streak_per_day = 0; /* a factor switched off disappears */
    p.f_left_behind = 40;
    p.tier_medium = 10;
    p.tier_high = 20;
    p.tier_critical = 30;
    p.w_flags_max = 1000;     /* no cap */
    p.tier_profile_steps = 3; /* and no limit on the tier */
    score_summary s;
    summary_for(&assess_rows[0], &s);
    score_profile profile = {SCORE_FLAG_LEFT_BEHIND, 0, BX_DATE_NONE};
    score_assessment a;
    score_assess(&p, &s, &profile, &a);
    char text[256];
    factors_text(&a, text, sizeof(text));
    CHECK_STR(text, "attendance_rate_20d:10 left_behind:40");
    CHECK_INT(a.score, 50);
    CHECK_INT(a.tier, SCORE_TIER_CRITICAL);
    static const struct {
        int score;
        score_tier tier;
    } bounds[] = {{0, SCORE_TIER_LOW},       {24, SCORE_TIER_LOW},      {25, SCORE_TIER_MEDIUM},
                  {44, SCORE_TIER_MEDIUM},   {45, SCORE_TIER_HIGH},     {74, SCORE_TIER_HIGH},
                  {75, SCORE_TIER_CRITICAL}, {999, SCORE_TIER_CRITICAL}};
    p = *policy();
    p.w_streak_max = 100000;
    for (size_t i = 0; i < COUNT(bounds); i++) {
        p.w_streak_per_day = bounds[i].score;
        memset(&s, 0, sizeof(s));
        s.as_of = D("2026-11-27");
        s.streak_days = 1;
        s.streak_start = s.as_of;
        score_assess(&p, &s, NULL, &a);
        CHECK_INT(a.score, bounds[i].score);
        CHECK_INT(a.tier, bounds[i].tier);
    }
}

BX_TEST(sex_and_ethnicity_are_never_inputs)
{
    /* the profile holds flags, grade and birth date, nothing else */
    struct only {
        unsigned flags;
        int grade;
        bx_date birth_date;
    };
    CHECK_INT(sizeof(score_profile), sizeof(struct only));
    static const char *const names[] = {"sex",      "female", "male",  "gender",      "ethnicity",
                                        "minority", "han",    "minzu", "nationality", ""};
    for (size_t i = 0; i < COUNT(names); i++) {
        unsigned bit = 0;
        CHECK_INT(score_flag_from_name(names[i], &bit), BX_ENOTFOUND);
    }
    /* every registry flag of schemas/sql/0001_registry.sql has a bit, and back */
    static const char *const flags[] = {"registered_poor",
                                        "minimum_subsistence",
                                        "extreme_poverty",
                                        "orphan",
                                        "disability_sight",
                                        "disability_hearing",
                                        "disability_intellectual",
                                        "disability_other",
                                        "left_behind",
                                        "single_parent",
                                        "migrant",
                                        "learning_difficulty",
                                        "wavering",
                                        "earlier_dropout",
                                        "monastery"};
    unsigned all = 0;
    for (size_t i = 0; i < COUNT(flags); i++) {
        unsigned bit = 0;
        CHECK_INT(score_flag_from_name(flags[i], &bit), BX_OK);
        CHECK_STR(score_flag_name(bit), flags[i]);
        CHECK((all & bit) == 0);
        all |= bit;
    }
    CHECK_INT(all, SCORE_FLAG_ALL);
    CHECK(score_flag_name(3) == NULL);
    /* no registry factor is an attendance factor (the analytics stream takes only those) */
    CHECK(!score_factor_is_attendance("left_behind"));
    CHECK(!score_factor_is_attendance("over_age"));
    CHECK(!score_factor_is_attendance("transition_year"));
    CHECK(!score_factor_is_attendance("disability"));
    CHECK(score_factor_is_attendance("streak_days"));
}

/* ---- when to publish ---- */

BX_TEST(should_emit)
{
    static const struct {
        const char *name;
        const char *prev; /* score_last encoding, or NULL for the first assessment */
        const char *as_of;
        int streak;
        const char *start;
        score_tier tier;
        int periods;
        score_trigger expect;
    } rows[] = {
        {"first_quiet", NULL, "2026-11-23", 0, "-", SCORE_TIER_LOW, 0, SCORE_TRIGGER_NONE},
        {"first_absence", NULL, "2026-11-23", 1, "2026-11-23", SCORE_TIER_LOW, 0,
         SCORE_TRIGGER_STREAK},
        {"first_flags_medium", NULL, "2026-11-23", 0, "-", SCORE_TIER_MEDIUM, 0,
         SCORE_TRIGGER_TIER},
        {"first_periods", NULL, "2026-11-23", 0, "-", SCORE_TIER_LOW, 4, SCORE_TRIGGER_PERIODS},
        {"unchanged", "2026-11-24,2,2026-11-23,medium,0", "2026-11-25", 2, "2026-11-23",
         SCORE_TIER_MEDIUM, 0, SCORE_TRIGGER_NONE},
        {"streak_grows", "2026-11-24,2,2026-11-23,medium,0", "2026-11-25", 3, "2026-11-23",
         SCORE_TIER_HIGH, 0, SCORE_TRIGGER_STREAK},
        {"streak_start_corrected", "2026-11-24,2,2026-11-23,medium,0", "2026-11-25", 2,
         "2026-11-24", SCORE_TIER_MEDIUM, 0, SCORE_TRIGGER_STREAK},
        {"returned", "2026-11-24,3,2026-11-20,high,0", "2026-11-25", 0, "-", SCORE_TIER_LOW, 0,
         SCORE_TRIGGER_STREAK},
        {"tier_falls", "2026-11-24,0,-,high,0", "2026-11-25", 0, "-", SCORE_TIER_MEDIUM, 0,
         SCORE_TRIGGER_TIER},
        {"periods_cross", "2026-11-24,0,-,low,3", "2026-11-24", 0, "-", SCORE_TIER_LOW, 4,
         SCORE_TRIGGER_PERIODS},
        {"periods_already_crossed", "2026-11-24,0,-,low,4", "2026-11-24", 0, "-", SCORE_TIER_LOW, 5,
         SCORE_TRIGGER_NONE},
        {"periods_again_next_day", "2026-11-24,0,-,low,6", "2026-11-25", 0, "-", SCORE_TIER_LOW, 4,
         SCORE_TRIGGER_PERIODS},
        {"periods_below", "2026-11-24,0,-,low,0", "2026-11-24", 0, "-", SCORE_TIER_LOW, 3,
         SCORE_TRIGGER_NONE},
        {"streak_before_tier", "2026-11-24,2,2026-11-23,medium,0", "2026-11-25", 3, "2026-11-23",
         SCORE_TIER_HIGH, 5, SCORE_TRIGGER_STREAK},
        {"tier_before_periods", "2026-11-24,0,-,low,0", "2026-11-24", 0, "-", SCORE_TIER_MEDIUM, 4,
         SCORE_TRIGGER_TIER},
    };
    for (size_t i = 0; i < COUNT(rows); i++) {
        score_last prev;
        bx_error err = {0};
        if (rows[i].prev && score_last_decode(rows[i].prev, &prev, &err) != BX_OK) {
            BX_FAIL_AT("%s: %s", rows[i].name, err.msg);
            continue;
        }
        score_summary s;
        memset(&s, 0, sizeof(s));
        s.as_of = D(rows[i].as_of);
        s.streak_days = rows[i].streak;
        s.streak_start = D(rows[i].start);
        s.unexcused_periods = rows[i].periods;
        score_assessment a;
        memset(&a, 0, sizeof(a));
        a.tier = rows[i].tier;
        score_trigger t = score_should_emit(policy(), rows[i].prev ? &prev : NULL, &s, &a);
        if (t != rows[i].expect)
            BX_FAIL_AT("%s: %s, expected %s", rows[i].name,
                       score_trigger_name(t) ? score_trigger_name(t) : "none",
                       score_trigger_name(rows[i].expect) ? score_trigger_name(rows[i].expect)
                                                          : "none");
    }
    CHECK_STR(score_trigger_name(SCORE_TRIGGER_STREAK), "streak_changed");
    CHECK_STR(score_trigger_name(SCORE_TRIGGER_TIER), "tier_changed");
    CHECK_STR(score_trigger_name(SCORE_TRIGGER_PERIODS), "periods_threshold");
    CHECK(score_trigger_name(SCORE_TRIGGER_NONE) == NULL);
}

/* ---- a week as the service sees it: facts in, assessments out ---- */

BX_TEST(week_of_absence_end_to_end)
{
    /* Present since term start; absent from Monday 11-23; the guardian phones in sick leave for
     * Wednesday that evening; Thursday's roll call arrives only after Friday's. */
    static const struct {
        const char *facts;
        const char *leaves;
        const char *today;
    } steps[] = {
        {"2026-11-23=a", 0, "2026-11-23"}, {"2026-11-24=a", 0, "2026-11-24"},
        {"2026-11-25=a", 0, "2026-11-25"}, {0, "2026-11-25..2026-11-25@700", "2026-11-25"},
        {"2026-11-27=a", 0, "2026-11-27"}, {"2026-11-26=a", 0, "2026-11-27"},
    };
    score_profile profile = {SCORE_FLAG_LEFT_BEHIND, 7, D("2013-05-01")};
    score_history *h = score_history_new();
    REQUIRE(h != NULL);
    apply_items(h, scratch, build_facts("2026-09-01..2026-11-20=p", scratch, 0), NULL);
    score_last last;
    bool have_last = false;
    char log[2048] = "";
    size_t used = 0;
    for (size_t i = 0; i < COUNT(steps); i++) {
        size_t n = build_facts(steps[i].facts, scratch, 0);
        n = build_leaves(steps[i].leaves, scratch, n);
        for (size_t k = 0; k < n; k++)
            apply_item(h, &scratch[k]);
        score_summary s;
        score_assessment a;
        score_summarize(policy(), calendar(), h, NULL, D(steps[i].today), &s);
        score_assess(policy(), &s, &profile, &a);
        score_trigger t = score_should_emit(policy(), have_last ? &last : NULL, &s, &a);
        if (t != SCORE_TRIGGER_NONE) {
            char date[11];
            used += (size_t)snprintf(log + used, sizeof(log) - used, "%s %s %d %s %d; ",
                                     fmt_date(s.as_of, date), score_trigger_name(t), s.streak_days,
                                     score_tier_name(a.tier), a.score);
            score_last_from(&s, &a, &last);
            have_last = true;
        }
    }
    CHECK_STR(log, "2026-11-23 streak_changed 1 medium 30; "
                   "2026-11-24 streak_changed 2 high 45; "
                   "2026-11-25 streak_changed 3 high 70; "
                   "2026-11-25 streak_changed 2 high 55; "
                   "2026-11-27 streak_changed 3 critical 80; "
                   "2026-11-27 streak_changed 4 critical 95; ");
    score_history_free(h);
}

/* A class report of class C01 with listed (a JSON array's text) decoded into m. */
static void decode_report_listing(const char *listed, score_message *m)
{
    bx_buf b;
    bx_buf_init(&b, 4096);
    REQUIRE(bx_buf_printf(&b,
                          "{\"schema\":\"bx.attendance.v1\",\"type\":\"class_report\","
                          "\"event_id\":\"C01:class\",\"school_id\":\"K1\",\"class_id\":\"C01\","
                          "\"date\":\"2026-10-08\",\"period\":null,\"rollcall_id\":\"C01\","
                          "\"enrolled\":40,\"absent\":2,\"leave\":0,\"late\":0,\"early_leave\":0,"
                          "\"present\":38,\"listed\":%s,\"recorded_at\":"
                          "\"2026-10-08T08:05:00+08:00\",\"recorded_by\":\"T1\"}",
                          listed) == BX_OK);
    score_message_decode(b.data, b.len, m);
    bx_buf_free(&b);
}

BX_TEST(a_roll_call_keeps_whom_it_listed)
{
    score_message *m = malloc(sizeof(*m));
    REQUIRE(m != NULL);
    decode_report_listing("[\"S1\",\"S22\"]", m);
    CHECK_INT(m->kind, SCORE_MESSAGE_REPORT);
    CHECK_STR(m->value, "40,2,0,0,0,38;S1 S22");
    decode_report_listing("[]", m); /* listed no one: vouches for all, as a report before lists */
    CHECK_INT(m->kind, SCORE_MESSAGE_REPORT);
    CHECK_STR(m->value, "40,2,0,0,0,38;");
    decode_report_listing("[\"S1\",\"S 2\"]", m);
    CHECK_INT(m->kind, SCORE_MESSAGE_BAD);
    CHECK_STR(m->error, "message.listed[1]: not a registry id");
    decode_report_listing("\"S1\"", m);
    CHECK_INT(m->kind, SCORE_MESSAGE_BAD);
    CHECK_CONTAINS(m->error, "message.listed");
    /* more than the stored value can name (a report's value is at most 1,024 bytes): no one */
    bx_buf many;
    bx_buf_init(&many, 8192);
    REQUIRE(bx_buf_puts(&many, "[") == BX_OK);
    for (int i = 0; i < 80; i++)
        REQUIRE(bx_buf_printf(&many, "%s\"student-of-a-long-id-%04d\"", i ? "," : "", i) == BX_OK);
    REQUIRE(bx_buf_puts(&many, "]") == BX_OK);
    decode_report_listing(many.data, m);
    bx_buf_free(&many);
    CHECK_INT(m->kind, SCORE_MESSAGE_REPORT);
    CHECK_STR(m->value, "40,2,0,0,0,38;*");
    free(m);
}

/* ---- messages: the fast path decodes as the general one ---- */

static int fast_taken;

/* Decodes text both ways; the two outcomes must be the same bytes. Returns the kind. */
static int decode_both(const char *text, size_t len)
{
    score_message *f = malloc(sizeof(*f));
    REQUIRE(f != NULL);
    fast_taken += score_message_decode_fast(text, len, f);
    free(f);
    score_message *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    REQUIRE(a != NULL && b != NULL);
    memset(a, 0x5a, sizeof(*a));
    memset(b, 0xa5, sizeof(*b));
    score_message_decode(text, len, a);
    score_message_decode_general(text, len, b);
    if (memcmp(a, b, sizeof(*a)) != 0)
        BX_FAIL_AT("fast and general decoding differ for %.*s: kind %d/%d, error \"%s\"/\"%s\"",
                   (int)len, text, a->kind, b->kind, a->error, b->error);
    int kind = (int)a->kind;
    free(a);
    free(b);
    return kind;
}

BX_TEST(message_fast_path_decodes_as_the_general_one)
{
    static const char *const base[] = {
        /* bx-ingest's shapes: an implied presence, an absence, sick leave, a period, a report */
        "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":\"C01-2026-10-08:"
        "S01\",\"student_id\":\"S01\",\"school_id\":\"K1\",\"class_id\":\"C01\",\"date\":"
        "\"2026-10-08\",\"period\":null,\"status\":\"present\",\"leave_kind\":null,\"source\":"
        "\"rollcall\",\"rollcall_id\":\"C01-2026-10-08\",\"recorded_at\":"
        "\"2026-10-08T08:05:00.123+08:00\",\"recorded_by\":\"T1\"}",
        "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":\"e-2\","
        "\"student_id\":\"S02\",\"school_id\":\"K1\",\"class_id\":\"C01\",\"date\":\"2026-10-08\","
        "\"period\":3,\"status\":\"absent\",\"leave_kind\":null,\"source\":\"attendance\","
        "\"recorded_at\":\"2026-10-08T09:05:00+08:00\"}",
        "{ \"schema\" : \"bx.attendance.v1\" , \"type\":\"attendance\",\"event_id\":\"e.3\","
        "\"student_id\":\"S03\",\"school_id\":\"K1\",\"class_id\":\"C01\",\"date\":\"2026-10-08\","
        "\"period\":null,\"status\":\"leave\",\"leave_kind\":\"sick\",\"source\":\"rollcall\","
        "\"recorded_at\":\"2026-10-08T00:05:00Z\"}\n",
        "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\",\"event_id\":\"e4\","
        "\"student_id\":\"S04\",\"school_id\":\"K1\",\"class_id\":\"C01\",\"date\":\"2026-10-08\","
        "\"period\":12,\"status\":\"late\",\"leave_kind\":null,\"source\":\"rollcall\","
        "\"recorded_at\":\"2026-10-08T08:05:00+08:00\"}",
        "{\"schema\":\"bx.attendance.v1\",\"type\":\"class_report\",\"event_id\":\"C01-2026-10-08:"
        "class\",\"school_id\":\"K1\",\"class_id\":\"C01\",\"date\":\"2026-10-08\",\"period\":null,"
        "\"rollcall_id\":\"C01-2026-10-08\",\"enrolled\":40,\"absent\":2,\"leave\":1,\"late\":1,"
        "\"early_leave\":0,\"present\":36,\"recorded_at\":\"2026-10-08T08:05:00+08:00\","
        "\"recorded_by\":\"T1\"}",
        "{\"schema\":\"bx.attendance.v1\",\"type\":\"class_report\",\"event_id\":\"C02:class\","
        "\"school_id\":\"K1\",\"class_id\":\"C02\",\"date\":\"2026-10-08\",\"period\":null,"
        "\"rollcall_id\":\"C02\",\"enrolled\":40,\"absent\":1,\"leave\":1,\"late\":0,"
        "\"early_leave\":0,\"present\":38,\"listed\":[\"S21\",\"S22\"],\"recorded_at\":"
        "\"2026-10-08T08:05:00+08:00\",\"recorded_by\":\"T1\"}",
        "{\"schema\":\"bx.attendance.v1\",\"type\":\"leave\",\"event_id\":\"L1\",\"student_id\":"
        "\"S05\",\"school_id\":\"K1\",\"class_id\":\"C01\",\"first_date\":\"2026-10-08\","
        "\"last_date\":\"2026-10-09\",\"first_period\":null,\"last_period\":null,\"leave_kind\":"
        "\"personal\",\"approved\":true,\"recorded_at\":\"2026-10-07T18:00:00+08:00\"}",
    };
    /* Each message, then every message with one byte deleted, replaced or inserted. */
    static const char subst[] = {'"', '\\', '1', '0', ' ',    'x',  '{', '}', ',',
                                 ':', 'n',  '-', '[', '\x80', '\t', 'e', '.'};
    int decoded = 0, bad = 0;
    char buf[1024];
    score_message *fm = malloc(sizeof(*fm));
    REQUIRE(fm != NULL);
    for (size_t m = 0; m < COUNT(base); m++) {
        size_t len = strlen(base[m]);
        REQUIRE(len + 2 < sizeof(buf));
        CHECK_INT(decode_both(base[m], len) != SCORE_MESSAGE_BAD, 1);
        /* bx-ingest's facts and roll calls without a list take the fast path; leave requests and
         * roll calls that list students (an array) do not */
        CHECK_INT(score_message_decode_fast(base[m], len, fm),
                  strstr(base[m], "\"type\":\"leave\"") == NULL &&
                      strstr(base[m], "\"listed\"") == NULL);
        for (size_t i = 0; i < len; i++) {
            memcpy(buf, base[m], i);
            memcpy(buf + i, base[m] + i + 1, len - i - 1);
            decode_both(buf, len - 1) == SCORE_MESSAGE_BAD ? bad++ : decoded++;
            for (size_t k = 0; k < COUNT(subst); k++) {
                memcpy(buf, base[m], len);
                buf[i] = subst[k];
                decode_both(buf, len) == SCORE_MESSAGE_BAD ? bad++ : decoded++;
                memcpy(buf, base[m], i);
                buf[i] = subst[k];
                memcpy(buf + i + 1, base[m] + i, len - i);
                decode_both(buf, len + 1) == SCORE_MESSAGE_BAD ? bad++ : decoded++;
            }
        }
    }
    free(fm);
    /* Both outcomes were met many times, and the fast path decided many of them. */
    CHECK(decoded > 1000);
    CHECK(bad > 1000);
    CHECK(fast_taken > 1000);
    CHECK_INT(decode_both(NULL, 0), SCORE_MESSAGE_BAD);
    CHECK_INT(decode_both("", 0), SCORE_MESSAGE_BAD);
}
