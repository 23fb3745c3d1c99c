/* score: facts and leave into a per-student history, a day's state, streaks and windows, the
 * risk assessment and the decision to publish it. The rules are written down in score.h. */
#include "score.h"
#include "bx_json.h"
#include "bx_name.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATE_MIN (-25567) /* 1900-01-01, the calendar's first year */
#define DATE_MAX 84005    /* 2199-12-31, its last */
/* How many school days a streak is followed back: more than two terms. */
#define STREAK_SCAN_MAX 400
#define ALL_PERIODS     0x1ffeu /* bits 1..12 */

/* ---- facts ---- */

static bool date_ok(bx_date d)
{
    return d >= DATE_MIN && d <= DATE_MAX;
}

/* id, a field of cap bytes, holds 1..SCORE_EVENT_ID_MAX of [A-Za-z0-9._:-] and its NUL. */
static bool event_id_ok(const char *id, size_t cap)
{
    return strnlen(id, cap) < cap && bx_token_valid(id, SCORE_EVENT_ID_MAX, ".:");
}

bx_status score_fact_check(const score_fact *f, bx_error *err)
{
    if (!date_ok(f->date))
        return BX_ERR(err, BX_EINVAL, "date: expected a date in 1900..2199");
    if (f->period < 0 || f->period > SCORE_PERIOD_MAX)
        return BX_ERR(err, BX_EINVAL, "period: expected 0 (whole day) or 1..12, got %d", f->period);
    if (f->status < SCORE_PRESENT || f->status > SCORE_EARLY_LEAVE)
        return BX_ERR(err, BX_EINVAL, "status: unknown status %d", (int)f->status);
    if (f->status == SCORE_LEAVE
            ? (f->leave_kind != SCORE_LEAVE_SICK && f->leave_kind != SCORE_LEAVE_PERSONAL)
            : f->leave_kind != SCORE_LEAVE_NONE)
        return BX_ERR(err, BX_EINVAL, "leave_kind: expected sick or personal exactly for leave");
    if (f->recorded_at < 0 || f->recorded_at > SCORE_TIME_MAX)
        return BX_ERR(err, BX_EINVAL, "recorded_at: expected 0..%lld ms", SCORE_TIME_MAX);
    if (!event_id_ok(f->event_id, sizeof(f->event_id)))
        return BX_ERR(err, BX_EINVAL, "event_id: expected 1..%d of A-Z a-z 0-9 . _ : -",
                      SCORE_EVENT_ID_MAX);
    return BX_OK;
}

bx_status score_leave_check(const score_leave *l, bx_error *err)
{
    if (!date_ok(l->first_date) || !date_ok(l->last_date))
        return BX_ERR(err, BX_EINVAL, "first_date, last_date: expected dates in 1900..2199");
    if (l->last_date < l->first_date)
        return BX_ERR(err, BX_EINVAL, "last_date: before first_date");
    if (l->first_period < 0 || l->first_period > SCORE_PERIOD_MAX || l->last_period < 0 ||
        l->last_period > SCORE_PERIOD_MAX)
        return BX_ERR(err, BX_EINVAL, "first_period, last_period: expected 0 or 1..12");
    if (l->first_date == l->last_date && l->first_period > 0 && l->last_period > 0 &&
        l->last_period < l->first_period)
        return BX_ERR(err, BX_EINVAL, "last_period: before first_period on the same day");
    if (l->kind != SCORE_LEAVE_SICK && l->kind != SCORE_LEAVE_PERSONAL)
        return BX_ERR(err, BX_EINVAL, "leave_kind: expected sick or personal");
    if (l->recorded_at < 0 || l->recorded_at > SCORE_TIME_MAX)
        return BX_ERR(err, BX_EINVAL, "recorded_at: expected 0..%lld ms", SCORE_TIME_MAX);
    if (!event_id_ok(l->event_id, sizeof(l->event_id)))
        return BX_ERR(err, BX_EINVAL, "event_id: expected 1..%d of A-Z a-z 0-9 . _ : -",
                      SCORE_EVENT_ID_MAX);
    return BX_OK;
}

const char *score_status_code(score_status s, score_leave_kind k)
{
    switch (s) {
    case SCORE_PRESENT:
        return "p";
    case SCORE_ABSENT:
        return "a";
    case SCORE_LATE:
        return "t";
    case SCORE_EARLY_LEAVE:
        return "e";
    case SCORE_LEAVE:
        return k == SCORE_LEAVE_PERSONAL ? "lp" : "ls";
    }
    return "?";
}

static int cmp_int64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

/* Must agree with the byte order of score_fact_encode's values: recorded_at (fixed width), then
 * the event id (',' sorts below every id character, as the NUL does for strcmp), then status. */
int score_fact_compare(const score_fact *a, const score_fact *b)
{
    int c = cmp_int64(a->recorded_at, b->recorded_at);
    if (c == 0)
        c = sign(strcmp(a->event_id, b->event_id));
    if (c == 0)
        c = sign(strcmp(score_status_code(a->status, a->leave_kind),
                        score_status_code(b->status, b->leave_kind)));
    return c;
}

bool score_fact_newer(const score_fact *a, const score_fact *b)
{
    return score_fact_compare(a, b) > 0;
}

static int leave_compare(const score_leave *a, const score_leave *b)
{
    int c = cmp_int64(a->recorded_at, b->recorded_at);
    if (c == 0)
        c = cmp_int64(a->first_date, b->first_date);
    if (c == 0)
        c = cmp_int64(a->first_period, b->first_period);
    if (c == 0)
        c = cmp_int64(a->last_date, b->last_date);
    if (c == 0)
        c = cmp_int64(a->last_period, b->last_period);
    if (c == 0)
        c = cmp_int64(a->kind, b->kind);
    if (c == 0)
        c = cmp_int64(a->approved, b->approved);
    return c;
}

/* ---- encodings ---- */

void score_fact_slot(const score_fact *f, char out[SCORE_SLOT_SIZE])
{
    char date[11];
    bx_date_format(f->date, date);
    snprintf(out, SCORE_SLOT_SIZE, "%s|%d", date, f->period);
}

bx_status score_fact_encode(const score_fact *f, char out[SCORE_FACT_VALUE_SIZE], bx_error *err)
{
    out[0] = '\0';
    bx_status s = score_fact_check(f, err);
    if (s != BX_OK)
        return s;
    snprintf(out, SCORE_FACT_VALUE_SIZE, "%013lld,%s,%s", (long long)f->recorded_at, f->event_id,
             score_status_code(f->status, f->leave_kind));
    return BX_OK;
}

/* Reads exactly n decimal digits at *p. */
static bool read_digits(const char **p, int n, long long *out)
{
    long long v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* A period in canonical form ("0".."12") up to a delimiter. */
static bool read_period(const char **p, int *out)
{
    const char *s = *p;
    if (s[0] < '0' || s[0] > '9')
        return false;
    int v = s[0] - '0';
    size_t n = 1;
    if (s[1] >= '0' && s[1] <= '9') {
        if (v == 0)
            return false; /* no leading zero */
        v = v * 10 + (s[1] - '0');
        n = 2;
    }
    if (v > SCORE_PERIOD_MAX)
        return false;
    *p += n;
    *out = v;
    return true;
}

static bool read_date(const char **p, bx_date *out)
{
    char text[11];
    if (strnlen(*p, 10) < 10)
        return false;
    memcpy(text, *p, 10);
    text[10] = '\0';
    if (bx_date_parse(text, out) != BX_OK)
        return false;
    *p += 10;
    return true;
}

bx_status score_fact_decode(const char *slot, const char *value, score_fact *out, bx_error *err)
{
    score_fact f;
    memset(&f, 0, sizeof(f));
    const char *p = slot;
    if (!read_date(&p, &f.date) || *p++ != '|' || !read_period(&p, &f.period) || *p != '\0')
        return BX_ERR(err, BX_EINVAL, "fact slot: expected YYYY-MM-DD|period, got \"%.40s\"", slot);
    long long at = 0;
    p = value;
    if (!read_digits(&p, 13, &at) || *p++ != ',')
        return BX_ERR(err, BX_EINVAL, "fact %s: expected 13 digits of recorded_at and a comma",
                      slot);
    f.recorded_at = at;
    const char *comma = strrchr(p, ',');
    size_t id_len = comma ? (size_t)(comma - p) : 0;
    if (id_len == 0 || id_len > SCORE_EVENT_ID_MAX)
        return BX_ERR(err, BX_EINVAL, "fact %s: expected an event id of 1..%d bytes", slot,
                      SCORE_EVENT_ID_MAX);
    memcpy(f.event_id, p, id_len);
    f.event_id[id_len] = '\0';
    const char *code = comma + 1;
    static const struct {
        const char *code;
        score_status status;
        score_leave_kind kind;
    } codes[] = {{"p", SCORE_PRESENT, SCORE_LEAVE_NONE}, {"a", SCORE_ABSENT, SCORE_LEAVE_NONE},
                 {"t", SCORE_LATE, SCORE_LEAVE_NONE},    {"e", SCORE_EARLY_LEAVE, SCORE_LEAVE_NONE},
                 {"ls", SCORE_LEAVE, SCORE_LEAVE_SICK},  {"lp", SCORE_LEAVE, SCORE_LEAVE_PERSONAL}};
    bool known = false;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(code, codes[i].code) == 0) {
            f.status = codes[i].status;
            f.leave_kind = codes[i].kind;
            known = true;
        }
    }
    if (!known)
        return BX_ERR(err, BX_EINVAL,
                      "fact %s: status: expected p, a, t, e, ls or lp, got \"%.8s\"", slot, code);
    bx_status s = score_fact_check(&f, err);
    if (s != BX_OK)
        return s;
    *out = f;
    return BX_OK;
}

bx_status score_leave_encode(const score_leave *l, char out[SCORE_LEAVE_VALUE_SIZE], bx_error *err)
{
    out[0] = '\0';
    bx_status s = score_leave_check(l, err);
    if (s != BX_OK)
        return s;
    char first[11], last[11];
    bx_date_format(l->first_date, first);
    bx_date_format(l->last_date, last);
    snprintf(out, SCORE_LEAVE_VALUE_SIZE, "%013lld,%s,%d,%s,%d,%c,%d", (long long)l->recorded_at,
             first, l->first_period, last, l->last_period, l->kind == SCORE_LEAVE_SICK ? 's' : 'p',
             l->approved ? 1 : 0);
    return BX_OK;
}

bx_status score_leave_decode(const char *event_id, const char *value, score_leave *out,
                             bx_error *err)
{
    score_leave l;
    memset(&l, 0, sizeof(l));
    if (strnlen(event_id, SCORE_EVENT_ID_MAX + 1) > SCORE_EVENT_ID_MAX)
        return BX_ERR(err, BX_EINVAL, "leave: event id longer than %d bytes", SCORE_EVENT_ID_MAX);
    memcpy(l.event_id, event_id, strlen(event_id) + 1);
    long long at = 0;
    const char *p = value;
    bool ok = read_digits(&p, 13, &at) && *p++ == ',' && read_date(&p, &l.first_date) &&
              *p++ == ',' && read_period(&p, &l.first_period) && *p++ == ',' &&
              read_date(&p, &l.last_date) && *p++ == ',' && read_period(&p, &l.last_period) &&
              *p++ == ',';
    if (ok) {
        char kind = *p++;
        l.kind = kind == 's' ? SCORE_LEAVE_SICK : kind == 'p' ? SCORE_LEAVE_PERSONAL : 0;
        ok = l.kind != 0 && *p++ == ',' && (*p == '0' || *p == '1') && p[1] == '\0';
        l.approved = ok && *p == '1';
    }
    if (!ok)
        return BX_ERR(err, BX_EINVAL,
                      "leave %.40s: expected recorded_at,first_date,first_period,last_date,"
                      "last_period,s|p,0|1",
                      event_id);
    l.recorded_at = at;
    bx_status s = score_leave_check(&l, err);
    if (s != BX_OK)
        return s;
    *out = l;
    return BX_OK;
}

/* ---- history ---- */

score_history *score_history_new(void)
{
    return calloc(1, sizeof(score_history));
}

void score_history_free(score_history *h)
{
    if (h == NULL)
        return;
    free(h->facts);
    free(h->leaves);
    free(h);
}

void score_history_reset(score_history *h)
{
    h->nfacts = 0;
    h->nleaves = 0;
}

static int slot_cmp(bx_date d1, int p1, bx_date d2, int p2)
{
    if (d1 != d2)
        return d1 < d2 ? -1 : 1;
    return (p1 > p2) - (p1 < p2);
}

/* Index of the first fact at or after (date, period). */
static size_t fact_lower_bound(const score_history *h, bx_date date, int period)
{
    size_t lo = 0, hi = h->nfacts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (slot_cmp(h->facts[mid].date, h->facts[mid].period, date, period) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t leave_lower_bound(const score_history *h, const char *event_id)
{
    size_t lo = 0, hi = h->nleaves;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(h->leaves[mid].event_id, event_id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Makes room for one more element of size elem in *items (count n, capacity *cap, at most max). */
static bx_status grow(void **items, size_t n, size_t *cap, size_t elem, size_t max)
{
    if (n < *cap)
        return BX_OK;
    if (n >= max)
        return BX_ENOMEM;
    size_t want = *cap ? *cap * 2 : 32;
    if (want > max)
        want = max;
    void *p = realloc(*items, want * elem);
    if (p == NULL)
        return BX_ENOMEM;
    *items = p;
    *cap = want;
    return BX_OK;
}

/* Puts elem at index i of the sorted array *items (count *n, capacity *cap, at most max
 * elements of size bytes): over the element there when found (and only if newer), else inserted
 * there. *changed (may be NULL) says whether the array changed. BX_ENOMEM past max or out of
 * memory, with the array unchanged. */
static bx_status put_sorted(void **items, size_t *n, size_t *cap, size_t size, size_t max, size_t i,
                            bool found, bool newer, const void *elem, bool *changed)
{
    if (found && !newer)
        return BX_OK;
    if (!found) {
        bx_status s = grow(items, *n, cap, size, max);
        if (s != BX_OK)
            return s;
        char *base = *items;
        memmove(base + (i + 1) * size, base + i * size, (*n - i) * size);
        (*n)++;
    }
    memcpy((char *)*items + i * size, elem, size);
    if (changed)
        *changed = true;
    return BX_OK;
}

bx_status score_history_apply_fact(score_history *h, const score_fact *f, bool *changed,
                                   bx_error *err)
{
    if (changed)
        *changed = false;
    bx_status s = score_fact_check(f, err);
    if (s != BX_OK)
        return s;
    size_t i = fact_lower_bound(h, f->date, f->period);
    bool found = i < h->nfacts && h->facts[i].date == f->date && h->facts[i].period == f->period;
    bool newer = found && score_fact_compare(f, &h->facts[i]) > 0;
    void *items = h->facts;
    s = put_sorted(&items, &h->nfacts, &h->facts_cap, sizeof(*f), SCORE_FACTS_MAX, i, found, newer,
                   f, changed);
    h->facts = items;
    if (s != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "history: more than %d facts, or out of memory",
                      SCORE_FACTS_MAX);
    return BX_OK;
}

bx_status score_history_apply_leave(score_history *h, const score_leave *l, bool *changed,
                                    bx_error *err)
{
    if (changed)
        *changed = false;
    bx_status s = score_leave_check(l, err);
    if (s != BX_OK)
        return s;
    size_t i = leave_lower_bound(h, l->event_id);
    bool found = i < h->nleaves && strcmp(h->leaves[i].event_id, l->event_id) == 0;
    bool newer = found && leave_compare(l, &h->leaves[i]) > 0;
    void *items = h->leaves;
    s = put_sorted(&items, &h->nleaves, &h->leaves_cap, sizeof(*l), SCORE_LEAVES_MAX, i, found,
                   newer, l, changed);
    h->leaves = items;
    if (s != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "history: more than %d leave requests, or out of memory",
                      SCORE_LEAVES_MAX);
    return BX_OK;
}

const score_fact *score_history_find(const score_history *h, bx_date date, int period)
{
    size_t i = fact_lower_bound(h, date, period);
    if (i < h->nfacts && h->facts[i].date == date && h->facts[i].period == period)
        return &h->facts[i];
    return NULL;
}

void score_history_prune(score_history *h, bx_date keep_from)
{
    size_t first = fact_lower_bound(h, keep_from, 0);
    memmove(h->facts, h->facts + first, (h->nfacts - first) * sizeof(score_fact));
    h->nfacts -= first;
    size_t kept = 0;
    for (size_t i = 0; i < h->nleaves; i++) {
        if (h->leaves[i].last_date >= keep_from)
            h->leaves[kept++] = h->leaves[i];
    }
    h->nleaves = kept;
}

/* ---- class reports ---- */

size_t score_class_days_normalize(bx_date *dates, uint16_t *periods, size_t count)
{
    /* insertion sort: the service reads them sorted already */
    for (size_t i = 1; i < count; i++) {
        bx_date d = dates[i];
        uint16_t m = periods ? periods[i] : 0;
        size_t j = i;
        while (j > 0 && dates[j - 1] > d) {
            dates[j] = dates[j - 1];
            if (periods)
                periods[j] = periods[j - 1];
            j--;
        }
        dates[j] = d;
        if (periods)
            periods[j] = m;
    }
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        if (n > 0 && dates[i] == dates[n - 1]) {
            if (periods)
                periods[n - 1] |= periods[i];
            continue;
        }
        dates[n] = dates[i];
        if (periods)
            periods[n] = periods[i];
        n++;
    }
    return n;
}

/* The first of n items (stride bytes apart, each starting with its bx_date, sorted by it) dated
 * on or after d; n when none is. */
static size_t date_lower_bound(const void *items, size_t n, size_t stride, bx_date d)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        bx_date at;
        memcpy(&at, (const char *)items + mid * stride, sizeof(at));
        if (at < d)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

_Static_assert(offsetof(score_class_listing, date) == 0, "a listing starts with its date");

unsigned score_class_days_on(const score_class_days *days, bx_date d)
{
    if (days == NULL)
        return 0;
    size_t lo = date_lower_bound(days->dates, days->count, sizeof(*days->dates), d);
    if (lo == days->count || days->dates[lo] != d)
        return 0;
    return days->periods ? days->periods[lo] : 1u;
}

const char *score_listed_next(const char **at, size_t *len)
{
    const char *p = *at;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return NULL;
    size_t n = strcspn(p, " ");
    *len = n;
    *at = p + n;
    return p;
}

/* The slots of list's entries (sorted by date) dated d. */
static unsigned listing_slots_on(const score_class_listing *list, size_t n, bx_date d)
{
    unsigned slots = 0;
    for (size_t i = date_lower_bound(list, n, sizeof(*list), d); i < n && list[i].date == d; i++)
        slots |= list[i].slots;
    return slots;
}

/* The slots of on (day d's roll calls) that vouch for the student: without its listings'. */
static unsigned vouched_of(const score_class_days *days, bx_date d, unsigned on)
{
    if (on == 0 || (days->nlisted == 0 && days->nunnamed == 0))
        return on;
    on &= ~listing_slots_on(days->listed, days->nlisted, d);
    on &= ~listing_slots_on(days->unnamed, days->nunnamed, d);
    return on;
}

unsigned score_class_days_vouched(const score_class_days *days, bx_date d)
{
    return days ? vouched_of(days, d, score_class_days_on(days, d)) : 0;
}

int score_class_unreported_days(const bx_calendar *cal, const score_class_days *days, bx_date from,
                                bx_date to)
{
    int n = 0;
    for (bx_date d = from; d <= to; d++) {
        if (bx_calendar_is_school_day(cal, d) && score_class_days_on(days, d) == 0)
            n++;
    }
    return n;
}

/* ---- one day ---- */

static const char *const day_state_names[] = {
    [SCORE_DAY_NO_SCHOOL] = "no_school", [SCORE_DAY_NOT_REPORTED] = "not_reported",
    [SCORE_DAY_NO_RECORD] = "no_record", [SCORE_DAY_PRESENT] = "present",
    [SCORE_DAY_LATE] = "late",           [SCORE_DAY_EARLY_LEAVE] = "early_leave",
    [SCORE_DAY_LEAVE] = "leave",         [SCORE_DAY_ABSENT] = "absent"};
_Static_assert(BX_NAMES_COUNT(day_state_names) == SCORE_DAY_ABSENT + 1, "a day state's name");

const char *score_day_state_name(score_day_state s)
{
    return bx_name_of(day_state_names, BX_NAMES_COUNT(day_state_names), (int)s, "unknown");
}

/* Periods of d covered by approved leave (bits 1..12); *whole when a leave covers all of d. */
static unsigned leave_cover(const score_history *h, bx_date d, bool *whole)
{
    unsigned mask = 0;
    *whole = false;
    for (size_t i = 0; i < h->nleaves; i++) {
        const score_leave *l = &h->leaves[i];
        if (!l->approved || d < l->first_date || d > l->last_date)
            continue;
        int lo = d == l->first_date && l->first_period > 0 ? l->first_period : 1;
        int hi = d == l->last_date && l->last_period > 0 ? l->last_period : SCORE_PERIOD_MAX;
        if (lo == 1 && hi == SCORE_PERIOD_MAX)
            *whole = true;
        for (int p = lo; p <= hi; p++)
            mask |= 1u << p;
    }
    return mask;
}

static int count_bits(unsigned v)
{
    int n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

static bool attended(score_status s)
{
    return s == SCORE_PRESENT || s == SCORE_LATE || s == SCORE_EARLY_LEAVE;
}

void score_day_reduce(const bx_calendar *cal, const score_history *h,
                      const score_class_days *reported, bx_date d, score_day *out)
{
    memset(out, 0, sizeof(*out));
    out->date = d;
    if (!bx_calendar_is_school_day(cal, d)) {
        out->state = SCORE_DAY_NO_SCHOOL;
        return;
    }
    unsigned roll_calls = score_class_days_on(reported, d);
    bool implied = reported != NULL && reported->implies_presence;
    score_status whole = 0; /* 0: no whole-day fact */
    unsigned period_facts = 0, absent_periods = 0, excused = 0;
    bool period_attended = false, period_late = false, period_early = false;
    for (size_t i = fact_lower_bound(h, d, 0); i < h->nfacts && h->facts[i].date == d; i++) {
        const score_fact *f = &h->facts[i];
        if (f->period == 0) {
            whole = f->status;
            continue;
        }
        period_facts |= 1u << f->period;
        if (attended(f->status))
            period_attended = true;
        if (f->status == SCORE_LATE)
            period_late = true;
        if (f->status == SCORE_EARLY_LEAVE)
            period_early = true;
        if (f->status == SCORE_ABSENT)
            absent_periods |= 1u << f->period;
        if (f->status == SCORE_LEAVE)
            excused |= 1u << f->period;
    }
    if (implied) {
        unsigned vouched = vouched_of(reported, d, roll_calls);
        if (whole == 0 && (vouched & 1u))
            whole = SCORE_PRESENT;
        if (vouched & ALL_PERIODS & ~period_facts) {
            period_facts |= vouched & ALL_PERIODS;
            period_attended = true;
        }
    }
    bool whole_leave = false;
    excused |= leave_cover(h, d, &whole_leave);
    if (whole == SCORE_LEAVE)
        whole_leave = true;
    if (whole_leave)
        excused = ALL_PERIODS;
    unsigned unexcused = absent_periods & ~excused;
    /* seen at school by someone who listed the child: beats leave */
    bool affirmed =
        whole == SCORE_LATE || whole == SCORE_EARLY_LEAVE || period_late || period_early;

    score_day_state st;
    if (whole_leave && !affirmed) {
        st = SCORE_DAY_LEAVE;
    } else if (whole == SCORE_PRESENT) {
        st = SCORE_DAY_PRESENT;
    } else if (whole == SCORE_LATE) {
        st = SCORE_DAY_LATE;
    } else if (whole == SCORE_EARLY_LEAVE) {
        st = SCORE_DAY_EARLY_LEAVE;
    } else if ((whole == SCORE_ABSENT || whole == SCORE_LEAVE) && !period_attended) {
        st = whole == SCORE_ABSENT ? SCORE_DAY_ABSENT : SCORE_DAY_LEAVE;
    } else if (whole == SCORE_ABSENT || whole == SCORE_LEAVE || period_attended) {
        st = period_late || (whole == SCORE_ABSENT && !period_early) ? SCORE_DAY_LATE
             : period_early                                          ? SCORE_DAY_EARLY_LEAVE
                                                                     : SCORE_DAY_PRESENT;
    } else if (period_facts != 0) {
        st = unexcused ? SCORE_DAY_ABSENT : SCORE_DAY_LEAVE;
    } else {
        st = roll_calls ? SCORE_DAY_NO_RECORD : SCORE_DAY_NOT_REPORTED;
    }
    out->state = st;
    if (st != SCORE_DAY_LEAVE && !(whole == SCORE_ABSENT && st == SCORE_DAY_ABSENT))
        out->unexcused_periods = count_bits(unexcused);
    bool attended_day =
        st == SCORE_DAY_PRESENT || st == SCORE_DAY_LATE || st == SCORE_DAY_EARLY_LEAVE;
    out->late = attended_day && (whole == SCORE_LATE || period_late || st == SCORE_DAY_LATE);
}

/* ---- summaries ---- */

int score_counts_reported(const score_counts *c)
{
    return c->attended_days + c->absent_days + c->leave_days;
}

double score_counts_rate(const score_counts *c)
{
    int reported = score_counts_reported(c);
    return reported > 0 ? (double)c->attended_days / reported : 1.0;
}

static void count_day(score_counts *c, const score_day *day)
{
    c->school_days++;
    switch (day->state) {
    case SCORE_DAY_PRESENT:
    case SCORE_DAY_LATE:
    case SCORE_DAY_EARLY_LEAVE:
        c->attended_days++;
        if (day->late)
            c->late_days++;
        break;
    case SCORE_DAY_ABSENT:
        c->absent_days++;
        break;
    case SCORE_DAY_LEAVE:
        c->leave_days++;
        break;
    case SCORE_DAY_NOT_REPORTED:
        c->not_reported_days++;
        break;
    case SCORE_DAY_NO_RECORD:
        c->no_record_days++;
        break;
    case SCORE_DAY_NO_SCHOOL:
        break;
    }
}

static void count_range(const bx_calendar *cal, const score_history *h,
                        const score_class_days *reported, bx_date from, bx_date to,
                        score_counts *out)
{
    memset(out, 0, sizeof(*out));
    for (bx_date d = from; d <= to; d++) {
        if (!bx_calendar_is_school_day(cal, d))
            continue;
        score_day day;
        score_day_reduce(cal, h, reported, d, &day);
        count_day(out, &day);
    }
}

static void follow_streak(const bx_calendar *cal, const score_history *h,
                          const score_class_days *reported, score_summary *out)
{
    if (h->nfacts == 0)
        return;
    bx_date earliest = h->facts[0].date; /* before it, every day is without a fact */
    bx_date d = out->last_school_day;
    for (int scanned = 0; d != BX_DATE_NONE && d >= earliest && scanned < STREAK_SCAN_MAX;
         scanned++) {
        score_day day;
        score_day_reduce(cal, h, reported, d, &day);
        if (day.state == SCORE_DAY_ABSENT) {
            out->streak_days++;
            out->streak_start = d;
            if (out->streak_last == BX_DATE_NONE)
                out->streak_last = d;
        } else if (day.state == SCORE_DAY_PRESENT || day.state == SCORE_DAY_LATE ||
                   day.state == SCORE_DAY_EARLY_LEAVE) {
            return;
        }
        d = bx_calendar_add_school_days(cal, d, -1);
    }
}

void score_summarize(const score_policy *p, const bx_calendar *cal, const score_history *h,
                     const score_class_days *reported, bx_date as_of, score_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->as_of = as_of;
    out->streak_start = BX_DATE_NONE;
    out->streak_last = BX_DATE_NONE;
    out->window_first = BX_DATE_NONE;
    out->term_first = BX_DATE_NONE;
    out->attendance_rate_20d = 1.0;
    out->attendance_rate_term = 1.0;

    score_day_reduce(cal, h, reported, as_of, &out->today);
    out->unexcused_periods = out->today.unexcused_periods;
    out->last_school_day =
        bx_calendar_is_school_day(cal, as_of) ? as_of : bx_calendar_add_school_days(cal, as_of, -1);
    bx_date last = out->last_school_day;
    if (last == BX_DATE_NONE)
        return;

    follow_streak(cal, h, reported, out);

    bx_date first = last;
    for (int i = 1; i < p->window_school_days; i++) {
        bx_date before = bx_calendar_add_school_days(cal, first, -1);
        if (before == BX_DATE_NONE)
            break;
        first = before;
    }
    out->window_first = first;
    count_range(cal, h, reported, first, last, &out->window);
    out->attendance_rate_20d = score_counts_rate(&out->window);

    const bx_term *term = bx_calendar_term_of(cal, last);
    assert(term != NULL); /* a school day lies inside a term */
    if (term != NULL) {
        snprintf(out->term, sizeof(out->term), "%s", term->code);
        out->term_first = term->first;
        count_range(cal, h, reported, term->first, last, &out->term_counts);
        out->attendance_rate_term = score_counts_rate(&out->term_counts);
        int reported_days = score_counts_reported(&out->term_counts);
        int missed = out->term_counts.absent_days + out->term_counts.leave_days;
        out->chronic_absence =
            reported_days >= p->chronic_min_days &&
            (long long)missed * 100 >= (long long)p->chronic_percent * reported_days;
    }
}

/* ---- assessment ---- */

static const struct flag_row {
    const char *name;
    unsigned bit;
} flag_names[] = {
    {"registered_poor", SCORE_FLAG_REGISTERED_POOR},
    {"minimum_subsistence", SCORE_FLAG_MINIMUM_SUBSISTENCE},
    {"extreme_poverty", SCORE_FLAG_EXTREME_POVERTY},
    {"orphan", SCORE_FLAG_ORPHAN},
    {"disability_sight", SCORE_FLAG_DISABILITY_SIGHT},
    {"disability_hearing", SCORE_FLAG_DISABILITY_HEARING},
    {"disability_intellectual", SCORE_FLAG_DISABILITY_INTELLECTUAL},
    {"disability_other", SCORE_FLAG_DISABILITY_OTHER},
    {"left_behind", SCORE_FLAG_LEFT_BEHIND},
    {"single_parent", SCORE_FLAG_SINGLE_PARENT},
    {"migrant", SCORE_FLAG_MIGRANT},
    {"learning_difficulty", SCORE_FLAG_LEARNING_DIFFICULTY},
    {"wavering", SCORE_FLAG_WAVERING},
    {"earlier_dropout", SCORE_FLAG_EARLIER_DROPOUT},
    {"monastery", SCORE_FLAG_MONASTERY},
};

bx_status score_flag_from_name(const char *name, unsigned *bit)
{
    for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
        if (strcmp(name, flag_names[i].name) == 0) {
            *bit = flag_names[i].bit;
            return BX_OK;
        }
    }
    return BX_ENOTFOUND;
}

const char *score_flag_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
        if (flag_names[i].bit == bit)
            return flag_names[i].name;
    }
    return NULL;
}

static const char *const tier_names[] = {[SCORE_TIER_LOW] = "low",
                                         [SCORE_TIER_MEDIUM] = "medium",
                                         [SCORE_TIER_HIGH] = "high",
                                         [SCORE_TIER_CRITICAL] = "critical"};
_Static_assert(BX_NAMES_COUNT(tier_names) == SCORE_TIER_CRITICAL + 1, "a tier's name");

const char *score_tier_name(score_tier t)
{
    return bx_name_of(tier_names, BX_NAMES_COUNT(tier_names), (int)t, "unknown");
}

bx_status score_tier_from_name(const char *name, score_tier *out)
{
    int t = 0;
    bx_status s = bx_name_find(tier_names, BX_NAMES_COUNT(tier_names), name, &t);
    if (s == BX_OK)
        *out = (score_tier)t;
    return s;
}

static const char *const attendance_factors[] = {
    "streak_days",        "attendance_rate_20d",     "attendance_rate_term", "chronic_absence",
    "absence_rates_once", "unexcused_periods_today", "late_arrivals_20d",
};

bool score_factor_is_attendance(const char *factor)
{
    for (size_t i = 0; i < sizeof(attendance_factors) / sizeof(attendance_factors[0]); i++) {
        if (strcmp(factor, attendance_factors[i]) == 0)
            return true;
    }
    return false;
}

/* Appends a factor of points (negative for a limit) with its detail; the score follows. */
static void put_factor(score_assessment *a, const char *name, int points, score_source source,
                       const char *fmt, va_list ap) BX_PRINTF(5, 0);

static void put_factor(score_assessment *a, const char *name, int points, score_source source,
                       const char *fmt, va_list ap)
{
    assert(a->nfactors < SCORE_FACTORS_MAX);
    if (a->nfactors >= SCORE_FACTORS_MAX)
        return;
    score_factor *f = &a->factors[a->nfactors++];
    snprintf(f->factor, sizeof(f->factor), "%s", name);
    f->points = points;
    f->source = source;
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    a->score += points;
}

/* A factor of points > 0 (none otherwise). */
static void add_factor(score_assessment *a, const char *name, int points, score_source source,
                       const char *fmt, ...) BX_PRINTF(5, 6);

static void add_factor(score_assessment *a, const char *name, int points, score_source source,
                       const char *fmt, ...)
{
    if (points <= 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    put_factor(a, name, points, source, fmt, ap);
    va_end(ap);
}

/* A limit: a factor of negative points (-points), so the score stays the sum of its factors. */
static void add_limit(score_assessment *a, const char *name, int points, score_source source,
                      const char *fmt, ...) BX_PRINTF(5, 6);

static void add_limit(score_assessment *a, const char *name, int points, score_source source,
                      const char *fmt, ...)
{
    if (points <= 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    put_factor(a, name, -points, source, fmt, ap);
    va_end(ap);
}

/* The points of the factors from index first on. */
static int points_from(const score_assessment *a, int first)
{
    int sum = 0;
    for (int i = first; i < a->nfactors; i++)
        sum += a->factors[i].points;
    return sum;
}

static score_tier tier_of(const score_policy *p, int score)
{
    return score >= p->tier_critical ? SCORE_TIER_CRITICAL
           : score >= p->tier_high   ? SCORE_TIER_HIGH
           : score >= p->tier_medium ? SCORE_TIER_MEDIUM
                                     : SCORE_TIER_LOW;
}

/* The lowest score of tier t (MEDIUM..CRITICAL). */
static int tier_bound(const score_policy *p, score_tier t)
{
    return t == SCORE_TIER_CRITICAL ? p->tier_critical
           : t == SCORE_TIER_HIGH   ? p->tier_high
                                    : p->tier_medium;
}

/* Full years from birth to d. */
static int age_on(bx_date birth, bx_date d)
{
    int by, bm, bd, y, m, dd;
    bx_date_to_ymd(birth, &by, &bm, &bd);
    bx_date_to_ymd(d, &y, &m, &dd);
    int age = y - by;
    if (m < bm || (m == bm && dd < bd))
        age--;
    return age;
}

static int percent_floor(int part, int whole)
{
    return whole > 0 ? (int)((long long)part * 100 / whole) : 100;
}

/* True when attended/reported < percent/100, in integers. */
static bool rate_below(const score_counts *c, int percent)
{
    return (long long)c->attended_days * 100 < (long long)percent * score_counts_reported(c);
}

static const char *transition_text(int grade)
{
    switch (grade) {
    case 1:
        return "entering primary school";
    case 4:
        return "after the grade 3 to 4 transition";
    case 6:
        return "the last year of primary school";
    case 7:
        return "entering junior secondary school";
    case 9:
        return "the last year of compulsory school";
    default:
        return "a transition year";
    }
}

static void assess_attendance(const score_policy *p, const score_summary *s, score_assessment *a)
{
    char date[11];
    if (s->streak_days > 0) {
        long long pts = (long long)s->streak_days * p->w_streak_per_day;
        if (pts > p->w_streak_max)
            pts = p->w_streak_max;
        bx_date_format(s->streak_start, date);
        add_factor(a, "streak_days", (int)pts, SCORE_SOURCE_ATTENDANCE,
                   "absent %d school day%s in a row since %s", s->streak_days,
                   s->streak_days == 1 ? "" : "s", date);
    }
    int rates_first = a->nfactors;
    const score_counts *w = &s->window;
    int reported = score_counts_reported(w);
    if (reported >= p->rate_min_days) {
        int pts = rate_below(w, p->rate_20d_very_low_percent) ? p->w_rate_20d_very_low
                  : rate_below(w, p->rate_20d_low_percent)    ? p->w_rate_20d_low
                                                              : 0;
        add_factor(a, "attendance_rate_20d", pts, SCORE_SOURCE_ATTENDANCE,
                   "attended %d of the last %d reported school days (%d%%)", w->attended_days,
                   reported, percent_floor(w->attended_days, reported));
    }
    const score_counts *t = &s->term_counts;
    int term_reported = score_counts_reported(t);
    if (term_reported >= p->rate_min_days && rate_below(t, p->rate_term_low_percent))
        add_factor(a, "attendance_rate_term", p->w_rate_term_low, SCORE_SOURCE_ATTENDANCE,
                   "attended %d of %d reported school days this term (%d%%)", t->attended_days,
                   term_reported, percent_floor(t->attended_days, term_reported));
    if (s->chronic_absence) {
        int missed = t->absent_days + t->leave_days;
        add_factor(a, "chronic_absence", p->w_chronic_absence, SCORE_SOURCE_ATTENDANCE,
                   "missed %d of %d reported school days this term (%d%%), leave included", missed,
                   term_reported, percent_floor(missed, term_reported));
    }
    if (p->rates_largest_only && a->nfactors - rates_first > 1) {
        int sum = points_from(a, rates_first), largest = 0;
        for (int i = rates_first; i < a->nfactors; i++)
            if (a->factors[i].points > largest)
                largest = a->factors[i].points;
        add_limit(a, "absence_rates_once", sum - largest, SCORE_SOURCE_ATTENDANCE,
                  "the 20-day rate, the term rate and chronic absence count the same missed days: "
                  "only the largest, %d of their %d points, counts",
                  largest, sum);
    }
    if (s->unexcused_periods >= p->periods_alert_threshold) {
        bx_date_format(s->as_of, date);
        add_factor(a, "unexcused_periods_today", p->w_unexcused_periods_today,
                   SCORE_SOURCE_ATTENDANCE, "%d periods missed without leave on %s",
                   s->unexcused_periods, date);
    }
    if (w->late_days >= p->late_min_days)
        add_factor(a, "late_arrivals_20d", p->w_late_20d, SCORE_SOURCE_ATTENDANCE,
                   "late on %d of the last %d school days", w->late_days, w->school_days);
}

static void assess_profile(const score_policy *p, const score_summary *s,
                           const score_profile *profile, score_assessment *a)
{
    const struct {
        const char *factor;
        unsigned bits;
        int points;
    } flags[] = {
        {"registered_poor", SCORE_FLAG_REGISTERED_POOR, p->f_registered_poor},
        {"minimum_subsistence", SCORE_FLAG_MINIMUM_SUBSISTENCE, p->f_minimum_subsistence},
        {"extreme_poverty", SCORE_FLAG_EXTREME_POVERTY, p->f_extreme_poverty},
        {"orphan", SCORE_FLAG_ORPHAN, p->f_orphan},
        {"disability", SCORE_FLAG_DISABILITY_ANY, p->f_disability},
        {"left_behind", SCORE_FLAG_LEFT_BEHIND, p->f_left_behind},
        {"single_parent", SCORE_FLAG_SINGLE_PARENT, p->f_single_parent},
        {"migrant", SCORE_FLAG_MIGRANT, p->f_migrant},
        {"learning_difficulty", SCORE_FLAG_LEARNING_DIFFICULTY, p->f_learning_difficulty},
        {"wavering", SCORE_FLAG_WAVERING, p->f_wavering},
        {"earlier_dropout", SCORE_FLAG_EARLIER_DROPOUT, p->f_earlier_dropout},
        {"monastery", SCORE_FLAG_MONASTERY, p->f_monastery},
    };
    int flags_first = a->nfactors;
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        unsigned set = profile->flags & flags[i].bits;
        if (set == 0)
            continue;
        if (flags[i].bits != SCORE_FLAG_DISABILITY_ANY) {
            add_factor(a, flags[i].factor, flags[i].points, SCORE_SOURCE_PROFILE, "registry flag");
            continue;
        }
        char names[96] = "";
        size_t used = 0;
        for (unsigned bit = SCORE_FLAG_DISABILITY_SIGHT; bit <= SCORE_FLAG_DISABILITY_OTHER;
             bit <<= 1) {
            if (set & bit) {
                int n = snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "",
                                 score_flag_name(bit));
                if (n > 0 && (size_t)n < sizeof(names) - used)
                    used += (size_t)n;
            }
        }
        add_factor(a, "disability", flags[i].points, SCORE_SOURCE_PROFILE, "registry flag (%s)",
                   names);
    }
    int flag_points = points_from(a, flags_first);
    if (flag_points > p->w_flags_max)
        add_limit(a, "flags_capped", flag_points - p->w_flags_max, SCORE_SOURCE_PROFILE,
                  "registry flags give %d points together, counted up to %d", flag_points,
                  p->w_flags_max);
    int grade = profile->grade;
    if (grade < 1 || grade > 9)
        return;
    if (profile->birth_date != BX_DATE_NONE && s->as_of != BX_DATE_NONE) {
        int y, m, d;
        bx_date_to_ymd(s->as_of, &y, &m, &d);
        bx_date sept1 = bx_date_from_ymd(m >= 9 ? y : y - 1, 9, 1);
        int years = age_on(profile->birth_date, sept1) - (p->grade1_age + grade - 1);
        if (years >= p->over_age_min_years)
            add_factor(a, "over_age", p->w_over_age, SCORE_SOURCE_PROFILE,
                       "%d years older than usual for grade %d", years, grade);
    }
    if (p->transition_grades & (1 << grade))
        add_factor(a, "transition_year", p->w_transition_year, SCORE_SOURCE_PROFILE, "grade %d: %s",
                   grade, transition_text(grade));
}

void score_assess(const score_policy *p, const score_summary *s, const score_profile *profile,
                  score_assessment *out)
{
    memset(out, 0, sizeof(*out));
    assess_attendance(p, s, out);
    int attendance = out->score;
    if (profile != NULL)
        assess_profile(p, s, profile, out);
    /* The profile raises the tier at most tier_profile_steps above attendance's own: its points
     * count up to one below the lowest score of the first tier it may not reach. */
    score_tier own = tier_of(p, attendance);
    int reach = (int)own + p->tier_profile_steps;
    if (reach < (int)SCORE_TIER_CRITICAL) {
        int allowed = tier_bound(p, (score_tier)(reach + 1)) - 1 - attendance;
        int profile_points = out->score - attendance;
        if (profile_points > allowed)
            add_limit(out, "tier_needs_attendance", profile_points - allowed, SCORE_SOURCE_PROFILE,
                      "attendance alone gives %d points (%s); the registry and age may raise the "
                      "tier to %s at most, so they count up to %d of their %d points",
                      attendance, score_tier_name(own), score_tier_name((score_tier)reach), allowed,
                      profile_points);
    }
    out->tier = tier_of(p, out->score);
}

/* ---- publishing ---- */

static const char *const trigger_names[] = {[SCORE_TRIGGER_STREAK] = "streak_changed",
                                            [SCORE_TRIGGER_TIER] = "tier_changed",
                                            [SCORE_TRIGGER_PERIODS] = "periods_threshold"};

const char *score_trigger_name(score_trigger t)
{
    return bx_name_of(trigger_names, BX_NAMES_COUNT(trigger_names), (int)t, NULL);
}

void score_last_from(const score_summary *s, const score_assessment *a, score_last *out)
{
    out->date = s->as_of;
    out->streak_days = s->streak_days;
    out->streak_start = s->streak_days > 0 ? s->streak_start : BX_DATE_NONE;
    out->tier = a->tier;
    out->unexcused_periods = s->unexcused_periods;
}

void score_last_encode(const score_last *l, char out[SCORE_LAST_SIZE])
{
    char date[11], start[11] = "-";
    bx_date_format(l->date, date);
    if (l->streak_start != BX_DATE_NONE)
        bx_date_format(l->streak_start, start);
    snprintf(out, SCORE_LAST_SIZE, "%s,%d,%s,%s,%d", date, l->streak_days, start,
             score_tier_name(l->tier), l->unexcused_periods);
}

/* A non-negative decimal of at most 6 digits, no leading zero, ending at a delimiter. */
static bool read_count(const char **p, int *out)
{
    const char *s = *p;
    int v = 0, n = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 7) {
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || n > 6 || (n > 1 && s[0] == '0'))
        return false;
    *p += n;
    *out = v;
    return true;
}

bx_status score_last_decode(const char *text, score_last *out, bx_error *err)
{
    score_last l;
    memset(&l, 0, sizeof(l));
    const char *p = text;
    bool ok =
        read_date(&p, &l.date) && *p++ == ',' && read_count(&p, &l.streak_days) && *p++ == ',';
    if (ok) {
        if (*p == '-') {
            l.streak_start = BX_DATE_NONE;
            p++;
        } else {
            ok = read_date(&p, &l.streak_start);
        }
    }
    ok = ok && *p++ == ',';
    if (ok) {
        const char *comma = strchr(p, ',');
        char tier[16];
        size_t n = comma ? (size_t)(comma - p) : 0;
        ok = comma != NULL && n < sizeof(tier);
        if (ok) {
            memcpy(tier, p, n);
            tier[n] = '\0';
            ok = score_tier_from_name(tier, &l.tier) == BX_OK;
            p = comma + 1;
        }
    }
    ok = ok && read_count(&p, &l.unexcused_periods) && *p == '\0' &&
         l.unexcused_periods <= SCORE_PERIOD_MAX &&
         (l.streak_days == 0) == (l.streak_start == BX_DATE_NONE);
    if (!ok)
        return BX_ERR(err, BX_EINVAL,
                      "last assessment: expected date,streak_days,streak_start|-,tier,periods, "
                      "got \"%.60s\"",
                      text);
    *out = l;
    return BX_OK;
}

score_trigger score_should_emit(const score_policy *p, const score_last *prev,
                                const score_summary *s, const score_assessment *a)
{
    int prev_streak = prev ? prev->streak_days : 0;
    bx_date prev_start = prev && prev->streak_days > 0 ? prev->streak_start : BX_DATE_NONE;
    bx_date start = s->streak_days > 0 ? s->streak_start : BX_DATE_NONE;
    if (s->streak_days != prev_streak || start != prev_start)
        return SCORE_TRIGGER_STREAK;
    if (a->tier != (prev ? prev->tier : SCORE_TIER_LOW))
        return SCORE_TRIGGER_TIER;
    int prev_periods = prev && prev->date == s->as_of ? prev->unexcused_periods : 0;
    if (s->unexcused_periods >= p->periods_alert_threshold &&
        prev_periods < p->periods_alert_threshold)
        return SCORE_TRIGGER_PERIODS;
    return SCORE_TRIGGER_NONE;
}

score_leave_kind score_day_leave_kind(const score_history *h, bx_date d)
{
    const score_fact *whole = score_history_find(h, d, 0);
    if (whole && whole->status == SCORE_LEAVE)
        return whole->leave_kind;
    for (size_t i = 0; i < h->nleaves; i++) {
        const score_leave *l = &h->leaves[i];
        if (l->approved && l->first_date <= d && d <= l->last_date)
            return l->kind;
    }
    for (int p = 1; p <= SCORE_PERIOD_MAX; p++) {
        const score_fact *f = score_history_find(h, d, p);
        if (f && f->status == SCORE_LEAVE)
            return f->leave_kind;
    }
    return SCORE_LEAVE_PERSONAL;
}
