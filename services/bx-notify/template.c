/* template: loads deploy/policy/notify.templates strictly (errors name file and line) and renders
 * a template with its placeholders filled, refusing holes and words a parent must never read. */
#include "template.h"

#include "bx_calendar.h"
#include "bx_json.h"
#include "bx_policyfile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMPLATES_FILE_MAX 65536
#define TEMPLATE_LINE_MAX  2048
#define TEMPLATES_MAX      64
#define LABELS_MAX         160
#define NAME_SIZE          48
#define TEXT_SIZE          1024
#define LABEL_SIZE         96
#define VALUE_MAX          2048 /* bytes of one variable's value */
#define SEGMENTS_MAX       10
#define GUARDIAN_SEGMENTS  1 /* default for a guardian template: one SMS */
#define STAFF_SEGMENTS     3
#define SHOWN              40 /* bytes of a bad value quoted in an error */
#define ID_DIGITS_MAX      6  /* a guardian message carries no digit run longer than this */
#define COUNT_DIGITS_MAX   9  /* a count placeholder's value: 0 to 999999999 */
#define CODE_DIGITS_MIN    TEMPLATE_CODE_DIGITS_MIN
#define CODE_DIGITS_MAX    TEMPLATE_CODE_DIGITS_MAX

typedef enum audience { AUDIENCE_UNSET, AUDIENCE_GUARDIAN, AUDIENCE_STAFF } audience;

/* How a placeholder's value is shown. */
typedef enum ph_form {
    FORM_TEXT,  /* as given */
    FORM_DATE,  /* "2026-11-27" -> 11月27日 */
    FORM_DUE,   /* RFC 3339 -> 11月28日17:00 */
    FORM_TASK,  /* a task kind -> its label */
    FORM_ROLE,  /* a staff role -> its label */
    FORM_STAGE, /* a stage -> its label */
    FORM_COUNT, /* a count of children or cases: a whole number from 0, as given */
    FORM_TERM,  /* a term code: "2026-autumn" -> 2026年秋季学期 */
    FORM_CODE,  /* a one-time code: digits only, bounded, never quoted in an error */
} ph_form;

/* Every placeholder a template may use. budget: the characters assumed for the value when the
 * loader checks that a template fits its segments (names of Chinese schools run to about 10). */
static const struct placeholder {
    const char *name;
    ph_form form;
    bool guardian; /* may appear in a message to a parent */
    int budget;
} placeholders[] = {
    {"school", FORM_TEXT, true, 10},
    {"class", FORM_TEXT, true, 6},
    {"student", FORM_TEXT, true, 3},
    {"teacher", FORM_TEXT, true, 3},
    {"days_missed_term", FORM_TEXT, true, 2},
    {"date", FORM_DATE, true, 6},
    {"streak_days", FORM_TEXT, true, 2},
    {"streak_start", FORM_DATE, true, 6},
    {"task_count", FORM_TEXT, false, 2},
    {"tasks", FORM_TEXT, false, 0}, /* the digest's list: as long as it is */
    {"case_id", FORM_TEXT, false, 12},
    {"stage", FORM_STAGE, false, 6},
    {"task", FORM_TASK, false, 8},
    {"task_id", FORM_TEXT, false, 40},
    {"due_at", FORM_DUE, false, 11},
    {"owner_role", FORM_ROLE, false, 4},
    /* a county's reports (bx-escalate's calendar duties): the county's name from the registry,
     * the term, the days covered and the counts */
    {"county", FORM_TEXT, false, 4},
    {"term", FORM_TERM, false, 9},
    {"first_day", FORM_DATE, false, 6},
    {"last_day", FORM_DATE, false, 6},
    {"suspected", FORM_COUNT, false, 3},
    {"dropouts", FORM_COUNT, false, 3},
    {"opened", FORM_COUNT, false, 3},
    {"returned", FORM_COUNT, false, 3},
    /* the reports upward and the monthly summary (四个一): rates as bx-escalate writes them
     * ("1.23%" or "n/a") and the classes whose roll calls were under 90% of their days */
    {"dropout_rate", FORM_TEXT, false, 6},
    {"retention_rate", FORM_TEXT, false, 7},
    {"reporting_rate", FORM_TEXT, false, 7},
    {"incomplete_classes", FORM_COUNT, false, 3},
    /* a staff member's bx-console activation code (bxctl staff invite|reset) */
    {"code", FORM_CODE, false, 8},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Words a message to a guardian never carries: the case's labels (dropout, risk), personal flags
 * (poverty, disability, left-behind), id numbers, and legal threats (plain, personal messages work
 * better than legalistic ones). ASCII words match in any case. */
static const char *const forbidden_words[] = {
    "辍学", "失学", "风险", "预警", "贫困", "低保",    "建档立卡", "残疾",  "身份证",
    "留守", "违法", "处罚", "罚款", "risk", "dropout", "poverty",  "disab", "id number",
};

typedef struct template_def {
    char name[NAME_SIZE];
    audience aud;
    int segments;   /* 0 until set */
    bool immediate; /* delivery = immediate: its own SMS even when asked for as a task */
    char text[TEXT_SIZE];
    int line_audience, line_text, line_segments, line_delivery;
} template_def;

typedef struct label_def {
    char kind[8]; /* task, role, stage */
    char key[NAME_SIZE];
    char text[LABEL_SIZE];
} label_def;

struct template_set {
    template_def templates[TEMPLATES_MAX];
    int ntemplates;
    label_def labels[LABELS_MAX];
    int nlabels;
};

/* ---- small helpers ---- */

/* [a-z][a-z0-9_]{0,46} */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= NAME_SIZE || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static const struct placeholder *find_placeholder(const char *name, size_t n)
{
    for (size_t i = 0; i < COUNT(placeholders); i++) {
        if (strlen(placeholders[i].name) == n && memcmp(placeholders[i].name, name, n) == 0)
            return &placeholders[i];
    }
    return NULL;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* strstr, ASCII letters in any case. */
static bool contains_nocase(const char *h, const char *n)
{
    size_t nl = strlen(n);
    for (; *h != '\0'; h++) {
        size_t i = 0;
        while (i < nl && h[i] != '\0' && lower(h[i]) == lower(n[i]))
            i++;
        if (i == nl)
            return true;
    }
    return false;
}

const char *template_forbidden_word(const char *text)
{
    if (text == NULL)
        return NULL;
    for (size_t i = 0; i < COUNT(forbidden_words); i++) {
        if (contains_nocase(text, forbidden_words[i]))
            return forbidden_words[i];
    }
    return NULL;
}

/* The longest run of ASCII digits in s (a phone or an id number is 11 or 18). */
static size_t longest_digit_run(const char *s)
{
    size_t best = 0, run = 0;
    for (; *s != '\0'; s++) {
        run = (*s >= '0' && *s <= '9') ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

/* Characters a text shows (code points; a character outside the BMP takes two UCS-2 units). */
static void count_units(const char *s, size_t *units, bool *ascii)
{
    *units = 0;
    *ascii = true;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p & 0xC0) == 0x80)
            continue; /* continuation byte */
        if (*p >= 0x80)
            *ascii = false;
        *units += *p >= 0xF0 ? 2 : 1;
    }
}

static int segments_for(size_t units, bool ascii)
{
    size_t one = ascii ? 160 : 70, part = ascii ? 153 : 67;
    if (units == 0)
        return 0;
    if (units <= one)
        return 1;
    return (int)((units + part - 1) / part);
}

int template_sms_segments(const char *utf8)
{
    size_t units;
    bool ascii;
    if (utf8 == NULL)
        return 0;
    count_units(utf8, &units, &ascii);
    return segments_for(units, ascii);
}

/* ---- loading ---- */

typedef struct parser {
    const char *file;
    template_set *ts;
} parser;

#define BAD(...) BX_ERR(err, BX_EINVAL, __VA_ARGS__)

static template_def *template_slot(parser *ps, const char *name, size_t n, int line, bx_error *err,
                                   bx_status *s)
{
    for (int i = 0; i < ps->ts->ntemplates; i++) {
        template_def *t = &ps->ts->templates[i];
        if (strlen(t->name) == n && memcmp(t->name, name, n) == 0)
            return t;
    }
    if (!name_ok(name, n)) {
        *s = BAD("%s:%d: template.%.*s: a template name is [a-z][a-z0-9_], up to %d", ps->file,
                 line, (int)(n > SHOWN ? SHOWN : n), name, NAME_SIZE - 1);
        return NULL;
    }
    if (ps->ts->ntemplates == TEMPLATES_MAX) {
        *s = BAD("%s:%d: more than %d templates", ps->file, line, TEMPLATES_MAX);
        return NULL;
    }
    template_def *t = &ps->ts->templates[ps->ts->ntemplates++];
    memcpy(t->name, name, n);
    t->name[n] = '\0';
    return t;
}

/* Checks a template text's placeholders: known names, closed braces, none that a guardian must
 * not see. */
static bx_status check_text(parser *ps, const template_def *t, int line, bx_error *err)
{
    const char *p = t->text;
    while (*p != '\0') {
        if (*p == '}')
            return BAD("%s:%d: template.%s.text: \"}\" without \"{\"", ps->file, line, t->name);
        if (*p != '{') {
            p++;
            continue;
        }
        const char *close = strchr(p + 1, '}');
        const char *open = strchr(p + 1, '{');
        if (close == NULL || (open != NULL && open < close))
            return BAD("%s:%d: template.%s.text: \"{\" without \"}\"", ps->file, line, t->name);
        size_t n = (size_t)(close - p - 1);
        const struct placeholder *ph = find_placeholder(p + 1, n);
        if (ph == NULL)
            return BAD("%s:%d: template.%s.text: unknown placeholder {%.*s}", ps->file, line,
                       t->name, (int)(n > SHOWN ? SHOWN : n), p + 1);
        if (t->aud == AUDIENCE_GUARDIAN && !ph->guardian)
            return BAD("%s:%d: template.%s.text: {%s} is not for a guardian's message", ps->file,
                       line, t->name, ph->name);
        p = close + 1;
    }
    return BX_OK;
}

/* The text's length with every placeholder at its budget, in UCS-2 units. */
static size_t budget_units(const char *text, bool *ascii)
{
    size_t units = 0;
    *ascii = true;
    char piece[TEXT_SIZE];
    size_t np = 0;
    for (const char *p = text; *p != '\0';) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const struct placeholder *ph =
                close ? find_placeholder(p + 1, (size_t)(close - p - 1)) : NULL;
            if (ph != NULL) {
                units += (size_t)ph->budget;
                if (ph->form != FORM_TEXT || strcmp(ph->name, "days_missed_term") != 0)
                    *ascii = false; /* names, labels and dates are Chinese */
                p = close + 1;
                continue;
            }
        }
        if (np + 1 < sizeof(piece))
            piece[np++] = *p;
        p++;
    }
    piece[np] = '\0';
    size_t fixed;
    bool fixed_ascii;
    count_units(piece, &fixed, &fixed_ascii);
    *ascii = *ascii && fixed_ascii;
    return units + fixed;
}

static bx_status set_label(parser *ps, const char *key, const char *v, int line, bx_error *err)
{
    const char *dot = strchr(key, '.');
    size_t kn = dot ? (size_t)(dot - key) : 0;
    if (dot == NULL ||
        !((kn == 4 && memcmp(key, "task", 4) == 0) || (kn == 4 && memcmp(key, "role", 4) == 0) ||
          (kn == 5 && memcmp(key, "stage", 5) == 0)))
        return BAD("%s:%d: label.%.*s: a label is label.task.<kind>, label.role.<role> or "
                   "label.stage.<stage>",
                   ps->file, line, SHOWN, key);
    const char *name = dot + 1;
    if (!name_ok(name, strlen(name)))
        return BAD("%s:%d: label.%.*s: a key is [a-z][a-z0-9_], up to %d", ps->file, line, SHOWN,
                   key, NAME_SIZE - 1);
    if (*v == '\0' || strlen(v) >= LABEL_SIZE || strchr(v, '{') || strchr(v, '}'))
        return BAD("%s:%d: label.%s: a label is 1 to %d bytes without braces", ps->file, line, key,
                   LABEL_SIZE - 1);
    template_set *ts = ps->ts;
    for (int i = 0; i < ts->nlabels; i++) {
        if (strncmp(ts->labels[i].kind, key, kn) == 0 && ts->labels[i].kind[kn] == '\0' &&
            strcmp(ts->labels[i].key, name) == 0)
            return BAD("%s:%d: label.%s: given twice", ps->file, line, key);
    }
    if (ts->nlabels == LABELS_MAX)
        return BAD("%s:%d: more than %d labels", ps->file, line, LABELS_MAX);
    label_def *l = &ts->labels[ts->nlabels++];
    memcpy(l->kind, key, kn);
    l->kind[kn] = '\0';
    snprintf(l->key, sizeof(l->key), "%s", name);
    snprintf(l->text, sizeof(l->text), "%s", v);
    return BX_OK;
}

static bx_status set_template(parser *ps, const char *key, const char *v, int line, bx_error *err)
{
    bx_status s = BX_OK;
    const char *dot = strrchr(key, '.');
    if (dot == NULL)
        return BAD("%s:%d: template.%.*s: expected template.<name>.<audience|text|segments>",
                   ps->file, line, SHOWN, key);
    template_def *t = template_slot(ps, key, (size_t)(dot - key), line, err, &s);
    if (t == NULL)
        return s;
    const char *field = dot + 1;
    if (strcmp(field, "audience") == 0) {
        if (t->line_audience)
            return BAD("%s:%d: template.%s.audience: given twice (first on line %d)", ps->file,
                       line, t->name, t->line_audience);
        if (strcmp(v, "guardian") == 0)
            t->aud = AUDIENCE_GUARDIAN;
        else if (strcmp(v, "staff") == 0)
            t->aud = AUDIENCE_STAFF;
        else
            return BAD("%s:%d: template.%s.audience: expected guardian or staff, got \"%.*s\"",
                       ps->file, line, t->name, SHOWN, v);
        t->line_audience = line;
    } else if (strcmp(field, "segments") == 0) {
        if (t->line_segments)
            return BAD("%s:%d: template.%s.segments: given twice (first on line %d)", ps->file,
                       line, t->name, t->line_segments);
        if (strlen(v) != 1 && strcmp(v, "10") != 0)
            return BAD("%s:%d: template.%s.segments: expected 1 to %d, got \"%.*s\"", ps->file,
                       line, t->name, SEGMENTS_MAX, SHOWN, v);
        t->segments = strcmp(v, "10") == 0 ? 10 : v[0] - '0';
        if (t->segments < 1 || t->segments > SEGMENTS_MAX)
            return BAD("%s:%d: template.%s.segments: expected 1 to %d, got \"%.*s\"", ps->file,
                       line, t->name, SEGMENTS_MAX, SHOWN, v);
        t->line_segments = line;
    } else if (strcmp(field, "delivery") == 0) {
        if (t->line_delivery)
            return BAD("%s:%d: template.%s.delivery: given twice (first on line %d)", ps->file,
                       line, t->name, t->line_delivery);
        if (strcmp(v, "immediate") == 0)
            t->immediate = true;
        else if (strcmp(v, "digest") != 0)
            return BAD("%s:%d: template.%s.delivery: expected digest or immediate, got \"%.*s\"",
                       ps->file, line, t->name, SHOWN, v);
        t->line_delivery = line;
    } else if (strcmp(field, "text") == 0) {
        if (t->line_text)
            return BAD("%s:%d: template.%s.text: given twice (first on line %d)", ps->file, line,
                       t->name, t->line_text);
        if (*v == '\0')
            return BAD("%s:%d: template.%s.text: is empty", ps->file, line, t->name);
        if (strlen(v) >= TEXT_SIZE)
            return BAD("%s:%d: template.%s.text: longer than %d bytes", ps->file, line, t->name,
                       TEXT_SIZE - 1);
        snprintf(t->text, sizeof(t->text), "%s", v);
        t->line_text = line;
    } else {
        return BAD("%s:%d: template.%s.%.*s: unknown setting (audience, text, segments or "
                   "delivery)",
                   ps->file, line, t->name, SHOWN, field);
    }
    return BX_OK;
}

/* Checks that need the whole template: audience and text given, placeholders, words, length. */
static bx_status finish_template(parser *ps, template_def *t, bx_error *err)
{
    int line = t->line_text ? t->line_text : (t->line_audience ? t->line_audience : 0);
    if (!t->line_audience)
        return BAD("%s:%d: template.%s: no audience (guardian or staff)", ps->file, line, t->name);
    if (!t->line_text)
        return BAD("%s:%d: template.%s: no text", ps->file, line, t->name);
    bx_status s = check_text(ps, t, t->line_text, err);
    if (s != BX_OK)
        return s;
    if (t->aud == AUDIENCE_GUARDIAN && t->line_delivery)
        return BAD("%s:%d: template.%s.delivery: only a staff template has one (a guardian's SMS "
                   "is never collected into a digest)",
                   ps->file, t->line_delivery, t->name);
    if (t->segments == 0)
        t->segments = t->aud == AUDIENCE_GUARDIAN ? GUARDIAN_SEGMENTS : STAFF_SEGMENTS;
    if (t->aud == AUDIENCE_GUARDIAN) {
        const char *w = template_forbidden_word(t->text);
        if (w != NULL)
            return BAD("%s:%d: template.%s.text: \"%s\" must never be sent to a guardian", ps->file,
                       t->line_text, t->name, w);
        if (longest_digit_run(t->text) > ID_DIGITS_MAX)
            return BAD("%s:%d: template.%s.text: a number of more than %d digits (a phone or an id "
                       "number) must not be sent to a guardian",
                       ps->file, t->line_text, t->name, ID_DIGITS_MAX);
    }
    bool ascii;
    size_t units = budget_units(t->text, &ascii);
    int segs = segments_for(units, ascii);
    if (segs > t->segments)
        return BAD("%s:%d: template.%s.text: about %zu characters with typical values, %d SMS "
                   "segments; the template allows %d",
                   ps->file, t->line_text, t->name, units, segs, t->segments);
    return BX_OK;
}

/* bx_policyfile's callback: one "name = value" setting. Repeats are the setters' to refuse. */
static bx_status parse_setting(void *arg, const char *file, int line, char *name, char *value,
                               bx_error *err)
{
    parser *ps = arg;
    if (strncmp(name, "template.", 9) == 0)
        return set_template(ps, name + 9, value, line, err);
    if (strncmp(name, "label.", 6) == 0)
        return set_label(ps, name + 6, value, line, err);
    return BAD("%s:%d: %.*s: unknown setting (template.<name>.* or label.<kind>.<key>)", file, line,
               SHOWN, name);
}

bx_status template_set_load(const char *path, template_set **out, bx_error *err)
{
    if (path == NULL || out == NULL)
        return BX_ERR(err, BX_EINVAL, "template_set_load: no path");
    template_set *ts = calloc(1, sizeof(*ts));
    if (ts == NULL)
        return BX_ERR(err, BX_ENOMEM, "%s: out of memory", path);
    const bx_policyfile_opts opts = {
        .file_max = TEMPLATES_FILE_MAX, .line_max = TEMPLATE_LINE_MAX - 1, .allow_repeats = true};
    parser ps = {.file = path, .ts = ts};
    bx_status s = bx_policyfile_load(path, &opts, parse_setting, &ps, err);
    for (int i = 0; s == BX_OK && i < ts->ntemplates; i++)
        s = finish_template(&ps, &ts->templates[i], err);
    if (s == BX_OK && ts->ntemplates == 0)
        s = BX_ERR(err, BX_EINVAL, "%s: no templates", path);
    if (s != BX_OK) {
        free(ts);
        return s;
    }
    *out = ts;
    return BX_OK;
}

void template_set_free(template_set *ts)
{
    free(ts);
}

static const template_def *find_template(const template_set *ts, const char *name)
{
    if (ts == NULL || name == NULL)
        return NULL;
    for (int i = 0; i < ts->ntemplates; i++) {
        if (strcmp(ts->templates[i].name, name) == 0)
            return &ts->templates[i];
    }
    return NULL;
}

bool template_exists(const template_set *ts, const char *name)
{
    return find_template(ts, name) != NULL;
}

bool template_for_guardian(const template_set *ts, const char *name)
{
    const template_def *t = find_template(ts, name);
    return t != NULL && t->aud == AUDIENCE_GUARDIAN;
}

bool template_immediate(const template_set *ts, const char *name)
{
    const template_def *t = find_template(ts, name);
    return t != NULL && t->immediate;
}

int template_max_segments(const template_set *ts, const char *name)
{
    const template_def *t = find_template(ts, name);
    return t != NULL ? t->segments : 0;
}

const char *template_label(const template_set *ts, const char *kind, const char *key)
{
    if (ts == NULL || kind == NULL || key == NULL)
        return key;
    for (int i = 0; i < ts->nlabels; i++) {
        if (strcmp(ts->labels[i].kind, kind) == 0 && strcmp(ts->labels[i].key, key) == 0)
            return ts->labels[i].text;
    }
    return key;
}

/* ---- rendering ---- */

static bool already_chinese_date(const char *v)
{
    const char *yue = strstr(v, "月");
    return yue != NULL && yue != v && strstr(yue, "日") != NULL && strlen(v) <= 16;
}

bx_status template_format_date(const char *value, char *out, size_t outsize)
{
    bx_date d;
    if (value == NULL || out == NULL || outsize == 0)
        return BX_EINVAL;
    if (already_chinese_date(value)) {
        snprintf(out, outsize, "%s", value);
        return BX_OK;
    }
    if (strlen(value) != 10 || bx_date_parse(value, &d) != BX_OK)
        return BX_EINVAL;
    int y, m, day;
    bx_date_to_ymd(d, &y, &m, &day);
    snprintf(out, outsize, "%d月%d日", m, day);
    return BX_OK;
}

bx_status template_format_due(const char *value, char *out, size_t outsize)
{
    bx_time_ms t;
    if (value == NULL || out == NULL || outsize == 0 || bx_time_parse(value, &t) != BX_OK)
        return BX_EINVAL;
    int y, m, d;
    bx_date_to_ymd(bx_time_local_date(t), &y, &m, &d);
    int minute = bx_time_local_minute(t);
    snprintf(out, outsize, "%d月%d日%02d:%02d", m, d, minute / 60, minute % 60);
    return BX_OK;
}

bx_status template_format_term(const char *value, char *out, size_t outsize)
{
    static const struct {
        const char *suffix, *shown;
    } seasons[] = {{"-autumn", "秋季学期"},
                   {"-spring", "春季学期"},
                   {"-summer", "夏季学期"},
                   {"-winter", "冬季学期"}};
    if (value == NULL || out == NULL || outsize == 0 || value[0] == '\0')
        return BX_EINVAL;
    size_t n = strlen(value);
    for (size_t i = 0; i < COUNT(seasons); i++) {
        size_t sl = strlen(seasons[i].suffix);
        if (n == 4 + sl && strspn(value, "0123456789") == 4 &&
            strcmp(value + 4, seasons[i].suffix) == 0) {
            int w = snprintf(out, outsize, "%.4s年%s", value, seasons[i].shown);
            return w > 0 && (size_t)w < outsize ? BX_OK : BX_ENOMEM;
        }
    }
    /* a term code of another shape is shown as the registry has it */
    int w = snprintf(out, outsize, "%s", value);
    return w > 0 && (size_t)w < outsize ? BX_OK : BX_ENOMEM;
}

static const char *find_var(const template_var *vars, size_t nvars, const char *name)
{
    for (size_t i = 0; i < nvars; i++) {
        if (vars[i].name != NULL && strcmp(vars[i].name, name) == 0)
            return vars[i].value;
    }
    return NULL;
}

/* Appends n bytes of s to out at *pos; false when out is full. */
static bool put(char *out, size_t outsize, size_t *pos, const char *s, size_t n)
{
    if (*pos + n >= outsize)
        return false;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return true;
}

static bx_status fill(const template_set *ts, const template_def *t, const struct placeholder *ph,
                      const char *value, char *shown, size_t shown_size, const char **res,
                      bx_error *err)
{
    size_t vl = strlen(value);
    if (vl == 0 || vl > VALUE_MAX || !bx_utf8_valid(value, vl))
        return BX_ERR(err, BX_EINVAL,
                      "template %s: {%s}: the value is empty, too long or not UTF-8", t->name,
                      ph->name);
    for (const char *c = value; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 && !(*c == '\n' && strcmp(ph->name, "tasks") == 0))
            return BX_ERR(err, BX_EINVAL, "template %s: {%s}: a control character in the value",
                          t->name, ph->name);
    }
    switch (ph->form) {
    case FORM_DATE:
        if (template_format_date(value, shown, shown_size) != BX_OK)
            return BX_ERR(err, BX_EINVAL, "template %s: {%s}: expected a date YYYY-MM-DD", t->name,
                          ph->name);
        *res = shown;
        return BX_OK;
    case FORM_DUE:
        if (template_format_due(value, shown, shown_size) != BX_OK)
            return BX_ERR(err, BX_EINVAL, "template %s: {%s}: expected an RFC 3339 time", t->name,
                          ph->name);
        *res = shown;
        return BX_OK;
    case FORM_COUNT:
        if (vl > COUNT_DIGITS_MAX || strspn(value, "0123456789") != vl ||
            (vl > 1 && value[0] == '0'))
            return BX_ERR(err, BX_EINVAL,
                          "template %s: {%s}: expected a count (a whole number from 0), got "
                          "\"%.*s\"",
                          t->name, ph->name, SHOWN, value);
        *res = value;
        return BX_OK;
    case FORM_CODE:
        if (vl < CODE_DIGITS_MIN || vl > CODE_DIGITS_MAX || strspn(value, "0123456789") != vl)
            return BX_ERR(err, BX_EINVAL, "template %s: {%s}: expected %d to %d digits", t->name,
                          ph->name, CODE_DIGITS_MIN, CODE_DIGITS_MAX);
        *res = value;
        return BX_OK;
    case FORM_TERM:
        if (template_format_term(value, shown, shown_size) != BX_OK)
            return BX_ERR(err, BX_EINVAL, "template %s: {%s}: a term code of at most %zu bytes",
                          t->name, ph->name, shown_size - 1);
        *res = shown;
        return BX_OK;
    case FORM_TASK:
        *res = template_label(ts, "task", value);
        return BX_OK;
    case FORM_ROLE:
        *res = template_label(ts, "role", value);
        return BX_OK;
    case FORM_STAGE:
        *res = template_label(ts, "stage", value);
        return BX_OK;
    case FORM_TEXT:
        break;
    }
    *res = value;
    return BX_OK;
}

bx_status template_render(const template_set *ts, const char *name, const template_var *vars,
                          size_t nvars, char *out, size_t outsize, bx_error *err)
{
    if (out == NULL || outsize == 0)
        return BX_ERR(err, BX_EINVAL, "template_render: no output buffer");
    out[0] = '\0';
    const template_def *t = find_template(ts, name);
    if (t == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "no template named \"%.*s\"", SHOWN,
                      name ? name : "(null)");
    size_t pos = 0;
    for (const char *p = t->text; *p != '\0';) {
        if (*p != '{') {
            const char *next = strchr(p, '{');
            size_t n = next ? (size_t)(next - p) : strlen(p);
            if (!put(out, outsize, &pos, p, n))
                goto full;
            p += n;
            continue;
        }
        const char *close = strchr(p, '}'); /* the loader checked the braces */
        const struct placeholder *ph = find_placeholder(p + 1, (size_t)(close - p - 1));
        const char *value = find_var(vars, nvars, ph->name);
        if (value == NULL) {
            out[0] = '\0';
            return BX_ERR(err, BX_EINVAL, "template %s: no value for {%s}", t->name, ph->name);
        }
        char shown[64];
        const char *res = NULL;
        bx_status s = fill(ts, t, ph, value, shown, sizeof(shown), &res, err);
        if (s != BX_OK) {
            out[0] = '\0';
            return s;
        }
        if (!put(out, outsize, &pos, res, strlen(res)))
            goto full;
        p = close + 1;
    }
    if (t->aud == AUDIENCE_GUARDIAN) {
        const char *w = template_forbidden_word(out);
        if (w != NULL) {
            out[0] = '\0';
            return BX_ERR(err, BX_EINVAL,
                          "template %s: a value brings \"%s\" into a guardian's "
                          "message",
                          t->name, w);
        }
        if (longest_digit_run(out) > ID_DIGITS_MAX) {
            out[0] = '\0';
            return BX_ERR(err, BX_EINVAL,
                          "template %s: a value brings a long number (a phone or "
                          "an id number) into a guardian's message",
                          t->name);
        }
    }
    return BX_OK;
full:
    out[0] = '\0';
    return BX_ERR(err, BX_ENOMEM, "template %s: the message is longer than %zu bytes", t->name,
                  outsize - 1);
}

void template_mask_codes(char *s)
{
    for (size_t i = 0; s[i] != '\0';) {
        size_t n = strspn(s + i, "0123456789");
        if (n == 0) {
            i++;
            continue;
        }
        bool word =
            (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '-' || s[i - 1] == '_')) ||
            isalpha((unsigned char)s[i + n]) || s[i + n] == '_';
        if (!word && n >= CODE_DIGITS_MIN && n <= CODE_DIGITS_MAX)
            memset(s + i, '*', n);
        i += n;
    }
}
