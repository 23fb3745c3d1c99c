/* analytics: bx.risk.v1 assessments and their pseudonymised copies, and the daily attendance
 * aggregates of bx.analytics.attendance.v1. */
#include "analytics.h"
#include "bx_name.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *date_or_null(bx_date d, char buf[13])
{
    if (d == BX_DATE_NONE)
        return "null";
    buf[0] = '"';
    bx_date_format(d, buf + 1);
    buf[11] = '"';
    buf[12] = '\0';
    return buf;
}

void score_risk_event_id(const score_outcome *o, char out[SCORE_RISK_ID_SIZE])
{
    char date[11], start[11];
    bx_date_format(o->summary.as_of, date);
    if (o->summary.streak_days > 0)
        bx_date_format(o->summary.streak_start, start);
    else
        snprintf(start, sizeof(start), "none");
    snprintf(out, SCORE_RISK_ID_SIZE, "risk:%s:%s:%d:%s:%s:%d:%s", o->student_id, date,
             o->summary.streak_days, start, score_tier_name(o->assessment.tier),
             o->summary.unexcused_periods, score_trigger_name(o->trigger));
}

static bx_status common_fields(const score_outcome *o, bx_buf *b)
{
    char d[13], start[13];
    return bx_buf_printf(
        b, "\"date\":%s,\"streak_days\":%d,\"streak_start\":%s,", date_or_null(o->summary.as_of, d),
        o->summary.streak_days,
        date_or_null(o->summary.streak_days > 0 ? o->summary.streak_start : BX_DATE_NONE, start));
}

static bx_status tail_fields(const score_outcome *o, int score, bx_buf *b)
{
    bx_status s = bx_buf_printf(b, "\"score\":%d,\"tier\":\"%s\",\"previous_tier\":", score,
                                score_tier_name(o->assessment.tier));
    if (o->has_prev)
        IFOK(s, bx_buf_printf(b, "\"%s\"", score_tier_name(o->prev.tier)));
    else
        IFOK(s, bx_buf_puts(b, "null"));
    IFOK(s, bx_buf_printf(b, ",\"trigger\":\"%s\",", score_trigger_name(o->trigger)));
    return s;
}

bx_status score_risk_message(const score_outcome *o, bx_time_ms assessed_at, bx_buf *out)
{
    char id[SCORE_RISK_ID_SIZE], at[40], r20[16], rterm[16];
    score_risk_event_id(o, id);
    bx_time_format(assessed_at, at, sizeof(at));
    score_rate_format(o->summary.attendance_rate_20d, r20);
    score_rate_format(o->summary.attendance_rate_term, rterm);
    bx_status s =
        bx_buf_printf(out,
                      "{\"schema\":\"bx.risk.v1\",\"event_id\":\"%s\",\"student_id\":\"%s\","
                      "\"school_id\":\"%s\",\"class_id\":\"%s\",",
                      id, o->student_id, o->student->school->id, o->student->klass->id);
    IFOK(s, common_fields(o, out));
    IFOK(s, bx_buf_printf(out,
                          "\"unexcused_periods_today\":%d,\"attendance_rate_20d\":%s,"
                          "\"attendance_rate_term\":%s,\"chronic_absence\":%s,",
                          o->summary.unexcused_periods, r20, rterm,
                          o->summary.chronic_absence ? "true" : "false"));
    IFOK(s, tail_fields(o, o->assessment.score, out));
    IFOK(s, bx_buf_puts(out, "\"factors\":["));
    for (int i = 0; i < o->assessment.nfactors && s == BX_OK; i++) {
        const score_factor *f = &o->assessment.factors[i];
        IFOK(s, bx_buf_printf(out, "%s{\"factor\":\"%s\",\"points\":%d,\"detail\":", i ? "," : "",
                              f->factor, f->points));
        IFOK(s, bx_buf_json_string(out, f->detail));
        IFOK(s, bx_buf_puts(out, "}"));
    }
    IFOK(s, bx_buf_printf(out, "],\"assessed_at\":\"%s\"}", at));
    return s;
}

bx_status score_analytics_message(const score_outcome *o, const char *key, bx_time_ms assessed_at,
                                  bx_buf *out)
{
    char id[SCORE_RISK_ID_SIZE], at[40], event[BX_PSEUDONYM_SIZE], subject[BX_PSEUDONYM_SIZE];
    score_risk_event_id(o, id);
    bx_pseudonym(key, id, event);
    bx_pseudonym(key, o->student_id, subject);
    bx_time_format(assessed_at, at, sizeof(at));
    int points = 0;
    for (int i = 0; i < o->assessment.nfactors; i++)
        if (o->assessment.factors[i].source == SCORE_SOURCE_ATTENDANCE)
            points += o->assessment.factors[i].points;
    bx_status s =
        bx_buf_printf(out,
                      "{\"schema\":\"bx.analytics.risk.v1\",\"event_id\":\"%s\","
                      "\"subject\":\"%s\",\"school_id\":\"%s\",\"county_code\":\"%s\",",
                      event, subject, o->student->school->id, o->student->school->county_code);
    IFOK(s, common_fields(o, out));
    IFOK(s, tail_fields(o, points, out));
    IFOK(s, bx_buf_puts(out, "\"factors\":["));
    bool first = true;
    for (int i = 0; i < o->assessment.nfactors && s == BX_OK; i++) {
        const score_factor *f = &o->assessment.factors[i];
        if (f->source != SCORE_SOURCE_ATTENDANCE)
            continue;
        IFOK(s, bx_buf_printf(out, "%s\"%s\"", first ? "" : ",", f->factor));
        first = false;
    }
    IFOK(s, bx_buf_printf(out, "],\"assessed_at\":\"%s\"}", at));
    return s;
}

/* ---- bx.analytics.attendance.v1 ---- */

const char *score_att_count_name(score_att_count c)
{
    static const char *const names[SCORE_ATT_COUNTS] = {
        "enrolled",       "reported",     "present",          "late", "absent", "sick_leave",
        "personal_leave", "not_reported", "unexcused_periods"};
    return bx_name_of(names, SCORE_ATT_COUNTS, (int)c, "?");
}

const char *score_att_level_name(score_att_level l)
{
    static const char *const names[] = {"class", "school", "township", "county"};
    return bx_name_of(names, BX_NAMES_COUNT(names), (int)l, "?");
}

score_att_state score_att_state_of(const score_day *day, score_leave_kind leave_kind)
{
    switch (day->state) {
    case SCORE_DAY_PRESENT:
    case SCORE_DAY_EARLY_LEAVE:
        return day->late ? SCORE_ATT_LATE : SCORE_ATT_PRESENT;
    case SCORE_DAY_LATE:
        return SCORE_ATT_LATE;
    case SCORE_DAY_LEAVE:
        return leave_kind == SCORE_LEAVE_SICK ? SCORE_ATT_SICK_LEAVE : SCORE_ATT_PERSONAL_LEAVE;
    case SCORE_DAY_ABSENT:
        return SCORE_ATT_ABSENT;
    default:
        return SCORE_ATT_NOT_REPORTED;
    }
}

static int compare_students(const void *a, const void *b)
{
    const score_att_student *x = *(const score_att_student *const *)a;
    const score_att_student *y = *(const score_att_student *const *)b;
    int c = strcmp(x->county_code, y->county_code);
    if (c == 0)
        c = strcmp(x->township_code, y->township_code);
    if (c == 0)
        c = strcmp(x->school_id, y->school_id);
    if (c == 0)
        c = strcmp(x->class_id, y->class_id);
    return c;
}

static bool code_ok(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

/* The linear relations between a place's counts: a count suppressed alone in one of them follows
 * from the others. enrolled = the partition; reported = the partition but not_reported; enrolled
 * = reported + not_reported. The first member is the total. */
static const score_att_count relation_all[] = {
    SCORE_ATT_ENROLLED,     SCORE_ATT_N_PRESENT,        SCORE_ATT_N_LATE,        SCORE_ATT_N_ABSENT,
    SCORE_ATT_N_SICK_LEAVE, SCORE_ATT_N_PERSONAL_LEAVE, SCORE_ATT_N_NOT_REPORTED};
static const score_att_count relation_reported[] = {
    SCORE_ATT_REPORTED, SCORE_ATT_N_PRESENT,    SCORE_ATT_N_LATE,
    SCORE_ATT_N_ABSENT, SCORE_ATT_N_SICK_LEAVE, SCORE_ATT_N_PERSONAL_LEAVE};
static const score_att_count relation_split[] = {SCORE_ATT_ENROLLED, SCORE_ATT_REPORTED,
                                                 SCORE_ATT_N_NOT_REPORTED};

/* Rule 2 for one relation of place p: true when it suppressed something. */
static bool suppress_relation(score_att_place *p, const score_att_count *rel, size_t n)
{
    size_t hidden = 0;
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (p->suppressed[rel[i]])
            hidden++;
        else if (i > 0 && (best < 0 || p->counts[rel[i]] < p->counts[best]))
            best = (int)rel[i];
    }
    if (hidden != 1)
        return false;
    if (best < 0)
        best = (int)rel[0]; /* only the total is left to hide */
    if (p->suppressed[best])
        return false;
    p->suppressed[best] = true;
    return true;
}

static bool suppress_within(score_att_place *p)
{
    bool any = false, changed = false;
    for (int c = 0; c < SCORE_ATT_COUNTS; c++)
        any |= p->suppressed[c];
    if (!any || p->level == SCORE_ATT_COUNTY)
        return false;
    changed |= suppress_relation(p, relation_all, sizeof(relation_all) / sizeof(relation_all[0]));
    changed |= suppress_relation(p, relation_reported,
                                 sizeof(relation_reported) / sizeof(relation_reported[0]));
    changed |=
        suppress_relation(p, relation_split, sizeof(relation_split) / sizeof(relation_split[0]));
    return changed;
}

/* Rule 3 for count c over the whole tree: true when it suppressed something. hidden and best
 * have one entry per place. */
static bool suppress_among(score_att_place *t, size_t n, int c, int *hidden, int *best)
{
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        hidden[i] = 0;
        best[i] = -1;
    }
    for (size_t i = 0; i < n; i++) {
        int p = t[i].parent;
        if (p < 0)
            continue;
        if (t[i].suppressed[c])
            hidden[p]++;
        else if (best[p] < 0 || t[i].counts[c] < t[best[p]].counts[c])
            best[p] = (int)i;
    }
    for (size_t p = 0; p < n; p++) {
        if (hidden[p] != 1 || t[p].level == SCORE_ATT_COUNTY || t[p].level == SCORE_ATT_CLASS)
            continue;
        if (best[p] >= 0)
            t[best[p]].suppressed[c] = true;
        else if (!t[p].suppressed[c])
            t[p].suppressed[c] = true;
        else
            continue;
        changed = true;
    }
    return changed;
}

static bx_status suppress(score_att_place *t, size_t n, bx_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].level == SCORE_ATT_CLASS)
            for (int c = 0; c < SCORE_ATT_COUNTS; c++)
                t[i].suppressed[c] = t[i].counts[c] < SCORE_ATT_MIN_CELL;
    int *hidden = calloc(n + 1, sizeof(*hidden)), *best = calloc(n + 1, sizeof(*best));
    if (hidden == NULL || best == NULL) {
        free(hidden);
        free(best);
        return BX_ERR(err, BX_ENOMEM, "attendance aggregate: out of memory");
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; i++)
            changed |= suppress_within(&t[i]);
        for (int c = 0; c < SCORE_ATT_COUNTS; c++)
            changed |= suppress_among(t, n, c, hidden, best);
    }
    free(hidden);
    free(best);
    return BX_OK;
}

static int add_place(score_att_place *t, size_t *n, score_att_level level, const char *code,
                     const score_att_student *s, int parent)
{
    score_att_place *p = &t[*n];
    memset(p, 0, sizeof(*p));
    p->level = level;
    p->parent = parent;
    snprintf(p->code, sizeof(p->code), "%s", code);
    snprintf(p->county_code, sizeof(p->county_code), "%s", s->county_code);
    if (level <= SCORE_ATT_TOWNSHIP)
        snprintf(p->township_code, sizeof(p->township_code), "%s", s->township_code);
    if (level <= SCORE_ATT_SCHOOL)
        snprintf(p->school_id, sizeof(p->school_id), "%s", s->school_id);
    if (level == SCORE_ATT_CLASS)
        p->grade = s->grade;
    return (int)(*n)++;
}

/* Builds the tree in walk order (each place before its children) with the classes' counts. */
static bx_status build_tree(const score_att_student **sorted, size_t n, score_att_place *t,
                            size_t *count)
{
    int county = -1, township = -1, school = -1, klass = -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const score_att_student *s = sorted[i], *prev = i ? sorted[i - 1] : NULL;
        bool new_county = prev == NULL || strcmp(prev->county_code, s->county_code) != 0;
        bool new_township = new_county || strcmp(prev->township_code, s->township_code) != 0;
        bool new_school = new_township || strcmp(prev->school_id, s->school_id) != 0;
        bool new_class = new_school || strcmp(prev->class_id, s->class_id) != 0;
        if (new_county)
            county = add_place(t, &k, SCORE_ATT_COUNTY, s->county_code, s, -1);
        if (new_township)
            township = add_place(t, &k, SCORE_ATT_TOWNSHIP, s->township_code, s, county);
        if (new_school)
            school = add_place(t, &k, SCORE_ATT_SCHOOL, s->school_id, s, township);
        if (new_class)
            klass = add_place(t, &k, SCORE_ATT_CLASS, s->class_id, s, school);
        int *c = t[klass].counts;
        c[SCORE_ATT_ENROLLED]++;
        c[SCORE_ATT_N_PRESENT + (int)s->state]++;
        if (s->state != SCORE_ATT_NOT_REPORTED)
            c[SCORE_ATT_REPORTED]++;
        c[SCORE_ATT_UNEXCUSED_PERIODS] += s->unexcused_periods;
    }
    for (size_t i = k; i-- > 0;)
        if (t[i].parent >= 0)
            for (int c = 0; c < SCORE_ATT_COUNTS; c++)
                t[t[i].parent].counts[c] += t[i].counts[c];
    *count = k;
    return BX_OK;
}

typedef struct ordered {
    const score_att_place *p;
    size_t walk; /* index in the tree */
} ordered;

static int compare_places(const void *a, const void *b)
{
    const score_att_place *x = ((const ordered *)a)->p, *y = ((const ordered *)b)->p;
    if (x->level != y->level)
        return x->level > y->level ? -1 : 1;
    return strcmp(x->code, y->code);
}

bx_status score_attendance_aggregate(const score_att_student *students, size_t n,
                                     score_att_place **places, size_t *count, bx_error *err)
{
    *places = NULL;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        const score_att_student *s = &students[i];
        if (!code_ok(s->class_id, 32) || !code_ok(s->school_id, 32) ||
            !code_ok(s->township_code, 9) || !code_ok(s->county_code, 6))
            return BX_ERR(err, BX_EINVAL,
                          "students[%zu]: a class, school, township or county "
                          "code is missing or too long",
                          i);
        if ((unsigned)s->state > SCORE_ATT_NOT_REPORTED || s->unexcused_periods < 0 ||
            s->unexcused_periods > SCORE_PERIOD_MAX)
            return BX_ERR(err, BX_EINVAL, "students[%zu]: state or periods out of range", i);
    }
    const score_att_student **sorted = calloc(n + 1, sizeof(*sorted));
    score_att_place *tree = calloc(4 * n + 1, sizeof(*tree));
    ordered *order = calloc(4 * n + 1, sizeof(*order));
    size_t *where = calloc(4 * n + 1, sizeof(*where));
    score_att_place *out = calloc(4 * n + 1, sizeof(*out));
    bx_status s = sorted && tree && order && where && out
                      ? BX_OK
                      : BX_ERR(err, BX_ENOMEM, "attendance aggregate: out of memory");
    size_t k = 0;
    if (s == BX_OK) {
        for (size_t i = 0; i < n; i++)
            sorted[i] = &students[i];
        qsort(sorted, n, sizeof(*sorted), compare_students);
        s = build_tree(sorted, n, tree, &k);
    }
    IFOK(s, suppress(tree, k, err));
    if (s == BX_OK) {
        for (size_t i = 0; i < k; i++)
            order[i] = (ordered){&tree[i], i};
        qsort(order, k, sizeof(*order), compare_places);
        for (size_t i = 0; i < k; i++) {
            if (i > 0 && compare_places(&order[i - 1], &order[i]) == 0) {
                s = BX_ERR(err, BX_EINVAL, "%s %s appears under two places above it",
                           score_att_level_name(order[i].p->level), order[i].p->code);
                break;
            }
            where[order[i].walk] = i;
        }
    }
    for (size_t i = 0; i < k && s == BX_OK; i++) {
        out[i] = *order[i].p;
        if (out[i].parent >= 0)
            out[i].parent = (int)where[out[i].parent];
    }
    free(sorted);
    free(tree);
    free(order);
    free(where);
    if (s != BX_OK) {
        free(out);
        return s;
    }
    *places = out;
    *count = k;
    return BX_OK;
}

void score_attendance_digest(const score_att_place *p, char out[SCORE_ATT_DIGEST_SIZE])
{
    char text[256];
    size_t len = 0;
    for (int c = 0; c < SCORE_ATT_COUNTS && len < sizeof(text); c++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%d%s,", p->counts[c],
                                p->suppressed[c] ? "s" : "");
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, len < sizeof(text) ? len : sizeof(text) - 1, md);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[16] = '\0';
}

static bx_status text_or_null(bx_buf *b, const char *name, const char *value, const char *sep)
{
    if (value == NULL || value[0] == '\0')
        return bx_buf_printf(b, "\"%s\":null%s", name, sep);
    return bx_buf_printf(b, "\"%s\":\"%s\"%s", name, value, sep);
}

bx_status score_attendance_message(const score_att_place *p, bx_date date, bx_time_ms computed_at,
                                   bx_buf *out)
{
    char day[11], at[40], digest[SCORE_ATT_DIGEST_SIZE];
    bx_date_format(date, day);
    bx_time_format(computed_at, at, sizeof(at));
    score_attendance_digest(p, digest);
    const char *level = score_att_level_name(p->level);
    bx_status s = bx_buf_printf(out,
                                "{\"schema\":\"bx.analytics.attendance.v1\",\"event_id\":\"att:%s:"
                                "%s:%s:%s\",\"level\":\"%s\",\"place_code\":\"%s\",",
                                level, p->code, day, digest, level, p->code);
    IFOK(s, text_or_null(out, "school_id", p->school_id, ","));
    IFOK(s, text_or_null(out, "township_code", p->township_code, ","));
    IFOK(s, text_or_null(out, "county_code", p->county_code, ","));
    if (p->level == SCORE_ATT_CLASS)
        IFOK(s, bx_buf_printf(out, "\"grade\":%d,", p->grade));
    else
        IFOK(s, bx_buf_puts(out, "\"grade\":null,"));
    IFOK(s, bx_buf_printf(out, "\"date\":\"%s\",", day));
    for (int c = 0; c < SCORE_ATT_COUNTS && s == BX_OK; c++) {
        if (p->suppressed[c])
            s = bx_buf_printf(out, "\"%s\":null,", score_att_count_name(c));
        else
            s = bx_buf_printf(out, "\"%s\":%d,", score_att_count_name(c), p->counts[c]);
    }
    IFOK(s, bx_buf_puts(out, "\"suppressed\":["));
    bool first = true;
    for (int c = 0; c < SCORE_ATT_COUNTS && s == BX_OK; c++) {
        if (!p->suppressed[c])
            continue;
        s = bx_buf_printf(out, "%s\"%s\"", first ? "" : ",", score_att_count_name(c));
        first = false;
    }
    IFOK(s, bx_buf_printf(out, "],\"computed_at\":\"%s\"}", at));
    return s;
}
