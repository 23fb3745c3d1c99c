/* recompute: a student's summary and assessment from Redis, the same for bx-score and bxctl. */
#include "recompute.h"
#include "bx_buf.h"
#include "bx_log.h"
#include "bx_map.h"
#include "bx_pg.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct score_profiles {
    bx_map *by_id;
    score_profile *items;
    size_t count;
};

void score_profiles_free(score_profiles *p)
{
    if (p == NULL)
        return;
    bx_map_free(p->by_id);
    free(p->items);
    free(p);
}

const score_profile *score_profiles_get(const score_profiles *p, const char *student_id)
{
    return p ? bx_map_get(p->by_id, student_id) : NULL;
}

/* "a,b,c" of registry flag names into bits; unknown names are ignored (the column's CHECK lists
 * the same names, so none can appear). */
static unsigned flags_from_text(const char *text)
{
    unsigned flags = 0;
    while (*text) {
        size_t n = strcspn(text, ",");
        char name[64];
        if (n < sizeof(name)) {
            memcpy(name, text, n);
            name[n] = '\0';
            unsigned bit = 0;
            if (score_flag_from_name(name, &bit) == BX_OK)
                flags |= bit;
        }
        text += n;
        if (*text == ',')
            text++;
    }
    return flags;
}

bx_status score_profiles_load(PGconn *db, const bx_registry *registry, score_profiles **out,
                              bx_error *err)
{
    *out = NULL;
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "SELECT student_id, array_to_string(flags, ','), "
                              "coalesce(birth_date::text, '') FROM registry.student_private",
                              0, NULL, &res, err);
    if (s != BX_OK)
        return s;
    int rows = PQntuples(res);
    score_profiles *p = calloc(1, sizeof(*p));
    if (p) {
        p->by_id = bx_map_new();
        p->items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*p->items));
    }
    if (p == NULL || p->by_id == NULL || p->items == NULL) {
        PQclear(res);
        score_profiles_free(p);
        return BX_ERR(err, BX_ENOMEM, "profiles: out of memory");
    }
    for (int i = 0; i < rows && s == BX_OK; i++) {
        score_profile *pr = &p->items[p->count++];
        pr->flags = flags_from_text(PQgetvalue(res, i, 1));
        pr->birth_date = BX_DATE_NONE;
        const char *birth = PQgetvalue(res, i, 2);
        if (*birth && bx_date_parse(birth, &pr->birth_date) != BX_OK)
            pr->birth_date = BX_DATE_NONE;
        const char *id = PQgetvalue(res, i, 0);
        const bx_reg_student *st = registry ? bx_registry_student(registry, id) : NULL;
        pr->grade = st && st->klass ? st->klass->grade : 0;
        if (bx_map_put(p->by_id, id, pr) != BX_OK)
            s = BX_ERR(err, BX_ENOMEM, "profiles: out of memory");
    }
    PQclear(res);
    if (s != BX_OK) {
        score_profiles_free(p);
        return s;
    }
    *out = p;
    return BX_OK;
}

void score_rate_format(double rate, char out[16])
{
    if (!(rate >= 0.0))
        rate = 0.0;
    if (rate > 1.0)
        rate = 1.0;
    snprintf(out, 16, "%.4f", rate);
}

/* ---- reading what Redis holds ---- */

/* Rebuilds a history from a student's stored facts. Entries that do not decode are skipped. */
static void history_from_entries(score_history *h, const char *student_id,
                                 const score_store_entries *facts)
{
    score_history_reset(h);
    for (size_t i = 0; i < facts->count; i++) {
        const score_store_entry *e = &facts->items[i];
        bx_date day = BX_DATE_NONE;
        int period = 0;
        bx_error err = {0};
        bx_status s = score_store_field_parse(e->field, &day, &period);
        if (s != BX_OK)
            BX_ERR(&err, s, "not a fact field");
        if (s == BX_OK && day == BX_DATE_NONE) {
            score_leave l;
            s = score_leave_decode(e->field + 2, e->value, &l, &err);
            IFOK(s, score_history_apply_leave(h, &l, NULL, &err));
        } else if (s == BX_OK) {
            /* The order key is "<13 digits>|<event id>", the value the status code. */
            char value[SCORE_FACT_VALUE_SIZE + 16];
            if (strlen(e->order_key) < 15 || e->order_key[13] != '|')
                s = BX_ERR(&err, BX_EINVAL, "order key is not <recorded_at>|<event id>");
            else
                snprintf(value, sizeof(value), "%.13s,%s,%s", e->order_key, e->order_key + 14,
                         e->value);
            score_fact f;
            IFOK(s, score_fact_decode(e->field, value, &f, &err));
            IFOK(s, score_history_apply_fact(h, &f, NULL, &err));
        }
        if (s != BX_OK)
            bx_log_warn("student %s: stored fact %s skipped: %s", student_id, e->field, err.msg);
    }
}

static const char *date_text(bx_date d, char out[11])
{
    if (d == BX_DATE_NONE) {
        snprintf(out, 11, "-");
        return out;
    }
    bx_date_format(d, out);
    return out;
}

static void put_text(score_outcome *o, const char *name, const char *text)
{
    if (o->nfields >= SCORE_SUMMARY_FIELDS)
        return;
    bx_copy_text(o->names[o->nfields], SCORE_NAME_SIZE, name);
    bx_copy_text(o->values[o->nfields], SCORE_VALUE_SIZE, text);
    o->nfields++;
}

/* name = v in decimal, as "%d" writes it. */
static void put_int(score_outcome *o, const char *name, int v)
{
    char text[16], *p = text + sizeof(text);
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    *--p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    put_text(o, name, p);
}

static void put_field(score_outcome *o, const char *name, const char *fmt, ...) BX_PRINTF(3, 4);

static void put_field(score_outcome *o, const char *name, const char *fmt, ...)
{
    if (o->nfields >= SCORE_SUMMARY_FIELDS)
        return;
    snprintf(o->names[o->nfields], SCORE_NAME_SIZE, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->values[o->nfields], SCORE_VALUE_SIZE, fmt, ap);
    va_end(ap);
    o->nfields++;
}

static void put_counts(score_outcome *o, const char *prefix, const score_counts *c)
{
    static const char *const names[] = {"school_days", "attended",     "late",     "absent",
                                        "leave",       "not_reported", "no_record"};
    const int values[] = {c->school_days, c->attended_days,     c->late_days,     c->absent_days,
                          c->leave_days,  c->not_reported_days, c->no_record_days};
    char name[SCORE_NAME_SIZE];
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        size_t nlen = strlen(names[i]);
        if (plen + 1 + nlen < sizeof(name)) {
            memcpy(name, prefix, plen);
            name[plen] = '.';
            memcpy(name + plen + 1, names[i], nlen + 1);
        } else {
            snprintf(name, sizeof(name), "%s.%s", prefix, names[i]);
        }
        put_int(o, name, values[i]);
    }
}

/* The summary's fields (see the header): a pure function of the computation. */
static void encode_summary(score_outcome *o)
{
    const score_summary *s = &o->summary;
    const score_assessment *a = &o->assessment;
    char d1[11], rate[16];
    o->nfields = 0;
    put_text(o, "as_of", date_text(s->as_of, d1));
    put_text(o, "last_school_day", date_text(s->last_school_day, d1));
    put_text(o, "today", score_day_state_name(s->today.state));
    put_int(o, "today.unexcused_periods", s->unexcused_periods);
    put_int(o, "streak_days", s->streak_days);
    put_text(o, "streak_start", date_text(s->streak_start, d1));
    put_text(o, "streak_last", date_text(s->streak_last, d1));
    put_text(o, "window.first", date_text(s->window_first, d1));
    put_counts(o, "window", &s->window);
    put_text(o, "term", s->term[0] ? s->term : "-");
    put_text(o, "term.first", date_text(s->term_first, d1));
    put_counts(o, "term", &s->term_counts);
    score_rate_format(s->attendance_rate_20d, rate);
    put_text(o, "attendance_rate_20d", rate);
    score_rate_format(s->attendance_rate_term, rate);
    put_text(o, "attendance_rate_term", rate);
    put_int(o, "chronic_absence", s->chronic_absence ? 1 : 0);
    put_int(o, "score", a->score);
    put_text(o, "tier", score_tier_name(a->tier));
    for (int i = 0; i < a->nfactors; i++) {
        char name[SCORE_NAME_SIZE];
        snprintf(name, sizeof(name), "factor.%s", a->factors[i].factor);
        put_field(o, name, "%d|%c|%s", a->factors[i].points,
                  a->factors[i].source == SCORE_SOURCE_ATTENDANCE ? 'a' : 'p',
                  a->factors[i].detail);
    }
    score_last last;
    char text[SCORE_LAST_SIZE];
    score_last_from(s, a, &last);
    score_last_encode(&last, text);
    put_text(o, "last", text);
}

/* Whether storing the summary o would change nothing, as the summary script decides: as many
 * stored names as names to store, and each name to store held with the same value. stored is
 * sorted by name (score_store_entries). */
static bool summary_equal(const score_outcome *o, const score_store_entries *stored)
{
    size_t count = o->has_facts ? o->nfields : 0;
    if (stored->count != count)
        return false;
    for (size_t f = 0; f < count; f++) {
        size_t lo = 0, hi = stored->count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(stored->items[mid].field, o->names[f]);
            if (c == 0) {
                lo = mid;
                break;
            }
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo >= stored->count || strcmp(stored->items[lo].field, o->names[f]) != 0 ||
            strcmp(stored->items[lo].value, o->values[f]) != 0)
            return false;
    }
    return true;
}

static void compute_one(const score_env *env, score_history *h, const score_store_entries *facts,
                        const score_store_entries *summary, const score_class_days *days,
                        bx_date as_of, score_outcome *o)
{
    const bx_reg_student *st = o->student;
    history_from_entries(h, o->student_id, facts);
    o->has_facts = facts->count > 0;
    score_summarize(env->policy, st->school->calendar, h, days, as_of, &o->summary);
    o->today_leave_kind = o->summary.today.state == SCORE_DAY_LEAVE ? score_day_leave_kind(h, as_of)
                                                                    : SCORE_LEAVE_NONE;
    score_profile profile = {0, st->klass ? st->klass->grade : 0, BX_DATE_NONE};
    const score_profile *known = score_profiles_get(env->profiles, o->student_id);
    if (known) {
        profile.flags = known->flags;
        profile.birth_date = known->birth_date;
    }
    score_assess(env->policy, &o->summary, &profile, &o->assessment);
    o->has_prev = false;
    for (size_t i = 0; i < summary->count; i++) {
        if (strcmp(summary->items[i].field, "last") == 0) {
            bx_error err = {0};
            o->has_prev = score_last_decode(summary->items[i].value, &o->prev, &err) == BX_OK;
            if (!o->has_prev)
                bx_log_warn("student %s: stored summary \"last\" skipped: %s", o->student_id,
                            err.msg);
        }
    }
    o->trigger = o->has_facts ? score_should_emit(env->policy, o->has_prev ? &o->prev : NULL,
                                                  &o->summary, &o->assessment)
                              : SCORE_TRIGGER_NONE;
    encode_summary(o);
    o->computed = true;
    o->summary_same = summary_equal(o, summary);
}

/* One id a class's roll call listed, with the roll call's day and slot. */
typedef struct named_slot {
    const char *id; /* into the hash's value; len bytes */
    size_t len;
    score_class_listing at;
} named_slot;

/* A class's roll calls, decoded from its reported hash: sorted dates with period masks; the
 * slots of the roll calls that listed students, by student (named, sorted by id then date, and
 * listed beside it: one student's are a contiguous run), and those that listed too many to name
 * (unnamed, by date). */
typedef struct class_days_entry {
    const score_store_entries *key;
    bx_date *dates;
    uint16_t *periods;
    size_t count;
    named_slot *named;
    score_class_listing *listed;
    size_t nnamed;
    score_class_listing *unnamed;
    size_t nunnamed;
} class_days_entry;

static void class_days_entry_free(class_days_entry *e)
{
    free(e->dates);
    free(e->periods);
    free(e->named);
    free(e->listed);
    free(e->unnamed);
}

static int compare_named(const void *a, const void *b)
{
    const named_slot *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->id, y->id, n);
    if (c == 0 && x->len != y->len)
        c = x->len < y->len ? -1 : 1;
    if (c == 0)
        c = (x->at.date > y->at.date) - (x->at.date < y->at.date);
    return c;
}

/* A report's value is its counts, then ";" and whom it listed when it carries its list
 * (messages.c); without ";" (a report from before the list) it lists no one. */
static const char *listed_of(const char *value)
{
    const char *at = strchr(value, ';');
    return at && at[1] ? at + 1 : NULL;
}

/* The ids of the class's lists, each with its roll call's slot (e->named, then e->listed beside
 * it), and the slots that name no one (e->unnamed). */
static bx_status index_listings(const score_store_entries *reports, class_days_entry *e,
                                bx_error *err)
{
    size_t cap = 0, unnamed = 0;
    for (size_t i = 0; i < reports->count; i++) {
        const char *l = listed_of(reports->items[i].value);
        if (l && strcmp(l, "*") == 0)
            unnamed++;
        else if (l)
            cap += 1 + strlen(l) / 2; /* ids are separated by spaces: at most this many */
    }
    e->named = calloc(cap ? cap : 1, sizeof(*e->named));
    e->listed = calloc(cap ? cap : 1, sizeof(*e->listed));
    e->unnamed = calloc(unnamed ? unnamed : 1, sizeof(*e->unnamed));
    if (e->named == NULL || e->listed == NULL || e->unnamed == NULL)
        return BX_ERR(err, BX_ENOMEM, "class days: out of memory");
    for (size_t i = 0; i < reports->count; i++) {
        const char *l = listed_of(reports->items[i].value);
        bx_date day = BX_DATE_NONE;
        int period = 0;
        if (l == NULL || score_store_field_parse(reports->items[i].field, &day, &period) != BX_OK ||
            day == BX_DATE_NONE || period < 0 || period > SCORE_PERIOD_MAX)
            continue;
        score_class_listing at = {day, 1u << period};
        if (strcmp(l, "*") == 0) { /* fields sort by day: these come out sorted by date */
            e->unnamed[e->nunnamed++] = at;
            continue;
        }
        size_t len;
        for (const char *id; (id = score_listed_next(&l, &len)) != NULL && e->nnamed < cap;)
            e->named[e->nnamed++] = (named_slot){id, len, at};
    }
    qsort(e->named, e->nnamed, sizeof(*e->named), compare_named);
    for (size_t i = 0; i < e->nnamed; i++)
        e->listed[i] = e->named[i].at;
    return BX_OK;
}

static bx_status class_days_from_entries(const score_store_entries *reports, class_days_entry *e,
                                         bx_error *err)
{
    size_t n = reports->count;
    memset(e, 0, sizeof(*e));
    e->key = reports;
    e->dates = calloc(n ? n : 1, sizeof(*e->dates));
    e->periods = calloc(n ? n : 1, sizeof(*e->periods));
    bx_status s = e->dates && e->periods ? index_listings(reports, e, err)
                                         : BX_ERR(err, BX_ENOMEM, "class days: out of memory");
    if (s != BX_OK) {
        class_days_entry_free(e);
        return s;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bx_date day = BX_DATE_NONE;
        int period = 0;
        if (score_store_field_parse(reports->items[i].field, &day, &period) != BX_OK ||
            day == BX_DATE_NONE || period < 0 || period > SCORE_PERIOD_MAX)
            continue;
        e->dates[k] = day;
        e->periods[k] = (uint16_t)(1u << period);
        k++;
    }
    e->count = score_class_days_normalize(e->dates, e->periods, k);
    return BX_OK;
}

/* The class's days for one student: the slots its roll calls' lists hold for that student. */
static score_class_days class_days_of(const class_days_entry *e, const char *student_id)
{
    score_class_days d = {.dates = e->dates,
                          .periods = e->periods,
                          .count = e->count,
                          .implies_presence = true,
                          .unnamed = e->unnamed,
                          .nunnamed = e->nunnamed};
    named_slot want = {student_id, strlen(student_id), {BX_DATE_NONE, 0}};
    size_t lo = 0, hi = e->nnamed;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare_named(&e->named[mid], &want) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < e->nnamed && e->named[end].len == want.len &&
           memcmp(e->named[end].id, student_id, want.len) == 0)
        end++;
    d.listed = e->listed + lo;
    d.nlisted = end - lo;
    return d;
}

/* The class days of reported, decoded once per distinct hash (students of one class share it);
 * the most recently used entry last. */
typedef struct class_days_cache {
    class_days_entry *entries;
    size_t n;
} class_days_cache;

static void cache_free(class_days_cache *c)
{
    for (size_t j = 0; j < c->n; j++)
        class_days_entry_free(&c->entries[j]);
    free(c->entries);
}

/* The class days of reported for student_id. */
static bx_status cache_get(class_days_cache *c, const score_store_entries *reported,
                           const char *student_id, score_class_days *out, bx_error *err)
{
    size_t j = c->n;
    if (c->n > 0 && c->entries[c->n - 1].key == reported)
        j = c->n - 1;
    else
        for (j = 0; j < c->n && c->entries[j].key != reported; j++)
            ;
    if (j == c->n) {
        bx_status s = class_days_from_entries(reported, &c->entries[j], err);
        if (s != BX_OK)
            return s;
        c->n++;
    } else if (j != c->n - 1) {
        /* the most recent last, so the next student of the class finds it first */
        class_days_entry used = c->entries[j];
        c->entries[j] = c->entries[c->n - 1];
        c->entries[c->n - 1] = used;
        j = c->n - 1;
    }
    *out = class_days_of(&c->entries[j], student_id);
    return BX_OK;
}

bx_status score_recompute_loaded(const score_env *env, const char *const *student_ids, size_t n,
                                 const score_store_entries *facts, const score_store_entries *sums,
                                 const score_store_entries *const *reported, bx_date as_of,
                                 bool skip_without_facts, score_outcome *out, bx_error *err)
{
    if (n == 0)
        return BX_OK;
    class_days_cache cache = {calloc(n, sizeof(*cache.entries)), 0};
    score_history *h = score_history_new();
    bx_status s = BX_OK;
    if (cache.entries == NULL || h == NULL)
        s = BX_ERR(err, BX_ENOMEM, "recompute: out of memory");
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        /* The names and values are written as far as nfields says; clearing them is most of
         * the outcome's size. */
        memset(&out[i], 0, offsetof(score_outcome, names));
        bx_copy_text(out[i].student_id, sizeof(out[i].student_id), student_ids[i]);
        out[i].student = bx_registry_student(env->registry, student_ids[i]);
        const bx_reg_class *k = out[i].student ? out[i].student->klass : NULL;
        if (k == NULL || reported[i] == NULL) {
            out[i].student = NULL;
            out[i].has_facts = facts[i].count > 0;
            continue;
        }
        if (skip_without_facts && facts[i].count == 0) {
            out[i].summary_same = sums[i].count == 0;
            continue;
        }
        score_class_days days;
        s = cache_get(&cache, reported[i], out[i].student_id, &days, err);
        if (s == BX_OK)
            compute_one(env, h, &facts[i], &sums[i], &days, as_of, &out[i]);
    }
    cache_free(&cache);
    score_history_free(h);
    return s;
}

static void free_entries(score_store_entries *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        score_store_entries_free(&e[i]);
    free(e);
}

bx_status score_recompute(const score_env *env, const char *const *student_ids, size_t n,
                          bx_date as_of, score_outcome *out, bx_error *err)
{
    return score_recompute_batch(env, student_ids, n, as_of, false, out, err);
}

/* The classes of n students (class_ids, *nclasses of them; class_of[i] the index of student i's,
 * SIZE_MAX when the registry knows no class of it). */
static void classes_of(const score_env *env, const char *const *student_ids, size_t n,
                       const char **class_ids, size_t *class_of, size_t *nclasses)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const bx_reg_student *st = bx_registry_student(env->registry, student_ids[i]);
        const bx_reg_class *k = st ? st->klass : NULL;
        class_of[i] = SIZE_MAX;
        if (k == NULL)
            continue;
        size_t j = m;
        if (m > 0 && class_ids[m - 1] == k->id)
            j = m - 1;
        else
            for (j = 0; j < m && strcmp(class_ids[j], k->id) != 0; j++)
                ;
        if (j == m)
            class_ids[m++] = k->id;
        class_of[i] = j;
    }
    *nclasses = m;
}

bx_status score_recompute_batch(const score_env *env, const char *const *student_ids, size_t n,
                                bx_date as_of, bool skip_without_facts, score_outcome *out,
                                bx_error *err)
{
    if (n == 0)
        return BX_OK;
    score_store_entries *facts = calloc(n, sizeof(*facts));
    score_store_entries *sums = calloc(n, sizeof(*sums));
    score_store_entries *reports = calloc(n, sizeof(*reports));
    const score_store_entries **reported = calloc(n, sizeof(*reported));
    const char **class_ids = calloc(n, sizeof(*class_ids));
    size_t *class_of = calloc(n, sizeof(*class_of));
    size_t nclasses = 0;
    bx_status s = BX_OK;
    if (facts == NULL || sums == NULL || reports == NULL || reported == NULL || class_ids == NULL ||
        class_of == NULL)
        s = BX_ERR(err, BX_ENOMEM, "recompute: out of memory");
    if (s == BX_OK)
        classes_of(env, student_ids, n, class_ids, class_of, &nclasses);
    /* Facts, summaries and class roll calls in one pipeline. */
    const score_store_load loads[] = {{SCORE_STORE_HASH_FACTS, student_ids, n, facts},
                                      {SCORE_STORE_HASH_SUMMARY, student_ids, n, sums},
                                      {SCORE_STORE_HASH_REPORTED, class_ids, nclasses, reports}};
    IFOK(s, score_store_load_many(env->store, loads, nclasses > 0 ? 3 : 2, err));
    for (size_t i = 0; i < n && s == BX_OK; i++)
        reported[i] = class_of[i] == SIZE_MAX ? NULL : &reports[class_of[i]];
    IFOK(s, score_recompute_loaded(env, student_ids, n, facts, sums, reported, as_of,
                                   skip_without_facts, out, err));
    free_entries(facts, facts ? n : 0);
    free_entries(sums, sums ? n : 0);
    free_entries(reports, reports ? nclasses : 0);
    free(reported);
    free(class_ids);
    free(class_of);
    return s;
}

bx_status score_recompute_days(const score_env *env, const char *const *student_ids, size_t n,
                               bx_date day, score_day *days, score_leave_kind *leave_kinds,
                               bool *known, bx_error *err)
{
    if (n == 0)
        return BX_OK;
    score_store_entries *facts = calloc(n, sizeof(*facts));
    score_store_entries *reports = calloc(n, sizeof(*reports));
    const char **class_ids = calloc(n, sizeof(*class_ids));
    size_t *class_of = calloc(n, sizeof(*class_of));
    score_history *h = score_history_new();
    class_days_cache cache = {calloc(n, sizeof(*cache.entries)), 0};
    size_t nclasses = 0;
    bx_status s = BX_OK;
    if (facts == NULL || reports == NULL || class_ids == NULL || class_of == NULL || h == NULL ||
        cache.entries == NULL)
        s = BX_ERR(err, BX_ENOMEM, "recompute: out of memory");
    if (s == BX_OK)
        classes_of(env, student_ids, n, class_ids, class_of, &nclasses);
    const score_store_load loads[] = {{SCORE_STORE_HASH_FACTS, student_ids, n, facts},
                                      {SCORE_STORE_HASH_REPORTED, class_ids, nclasses, reports}};
    IFOK(s, score_store_load_many(env->store, loads, nclasses > 0 ? 2 : 1, err));
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        known[i] = false;
        const bx_reg_student *st = bx_registry_student(env->registry, student_ids[i]);
        if (st == NULL || class_of[i] == SIZE_MAX)
            continue;
        score_class_days cd;
        s = cache_get(&cache, &reports[class_of[i]], student_ids[i], &cd, err);
        if (s != BX_OK)
            break;
        /* As score_summarize and compute_one reduce as_of: today's state and leave kind. */
        history_from_entries(h, student_ids[i], &facts[i]);
        score_day_reduce(st->school->calendar, h, &cd, day, &days[i]);
        leave_kinds[i] =
            days[i].state == SCORE_DAY_LEAVE ? score_day_leave_kind(h, day) : SCORE_LEAVE_NONE;
        known[i] = true;
    }
    cache_free(&cache);
    score_history_free(h);
    free_entries(facts, facts ? n : 0);
    free_entries(reports, reports ? nclasses : 0);
    free(class_ids);
    free(class_of);
    return s;
}

bx_status score_recompute_store(const score_env *env, const score_outcome *out, size_t n,
                                bx_error *err)
{
    score_store_summary *sums = calloc(n ? n : 1, sizeof(*sums));
    const char **names = calloc(n * SCORE_SUMMARY_FIELDS + 1, sizeof(*names));
    const char **values = calloc(n * SCORE_SUMMARY_FIELDS + 1, sizeof(*values));
    if (sums == NULL || names == NULL || values == NULL) {
        free(sums);
        free(names);
        free(values);
        return BX_ERR(err, BX_ENOMEM, "recompute: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i].student == NULL || out[i].summary_same)
            continue;
        size_t count = out[i].has_facts ? out[i].nfields : 0;
        const char **nm = names + i * SCORE_SUMMARY_FIELDS;
        const char **vl = values + i * SCORE_SUMMARY_FIELDS;
        for (size_t f = 0; f < count; f++) {
            nm[f] = out[i].names[f];
            vl[f] = out[i].values[f];
        }
        sums[k++] = (score_store_summary){out[i].student_id, nm, vl, count};
    }
    bx_status s = k ? score_store_put_summaries(env->store, sums, k, NULL, err) : BX_OK;
    free(sums);
    free(names);
    free(values);
    return s;
}
