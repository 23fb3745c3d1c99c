/* policy: the score policy file (deploy/policy/score.policy), one table of settings with their
 * bounds and defaults, read by bx_policyfile (the format and its errors naming file and line). */
#include "bx_policyfile.h"
#include "score.h"

#include <stddef.h>
#include <string.h>

#define POLICY_FILE_MAX 65536
#define LINE_MAX_BYTES  1024
#define SHOWN           40 /* bytes of a bad value quoted in an error */

typedef enum setting_kind { SETTING_INT, SETTING_GRADES } setting_kind;

typedef struct setting {
    const char *name;
    setting_kind kind;
    int min, max, def;
    size_t offset;
} setting;

#define INT_SETTING(name, min, max, def, field)                                                    \
    {                                                                                              \
        name, SETTING_INT, min, max, def, offsetof(score_policy, field)                            \
    }
#define WEIGHT(name, def, field) INT_SETTING(name, 0, 1000, def, field)

/* The defaults are justified in deploy/policy/score.policy; a unit test checks they agree. */
static const setting settings[] = {
    INT_SETTING("window.school_days", 5, 60, 20, window_school_days),
    INT_SETTING("rate.min_days", 1, 60, 5, rate_min_days),
    INT_SETTING("rate_20d.low_percent", 1, 100, 90, rate_20d_low_percent),
    INT_SETTING("rate_20d.very_low_percent", 1, 100, 80, rate_20d_very_low_percent),
    INT_SETTING("rate_term.low_percent", 1, 100, 90, rate_term_low_percent),
    INT_SETTING("chronic.percent", 1, 100, 10, chronic_percent),
    INT_SETTING("chronic.min_days", 1, 200, 10, chronic_min_days),
    INT_SETTING("periods_alert_threshold", 1, 12, 4, periods_alert_threshold),
    INT_SETTING("late_20d.min_days", 1, 60, 5, late_min_days),
    INT_SETTING("over_age.grade1_age", 5, 8, 6, grade1_age),
    INT_SETTING("over_age.min_years", 1, 9, 2, over_age_min_years),
    {"transition_grades", SETTING_GRADES, 0, 0, (1 << 1) | (1 << 4) | (1 << 6) | (1 << 7),
     offsetof(score_policy, transition_grades)},

    WEIGHT("weight.streak_per_day", 15, w_streak_per_day),
    INT_SETTING("weight.streak_max", 0, 100000, 150, w_streak_max),
    WEIGHT("weight.rate_20d_low", 10, w_rate_20d_low),
    WEIGHT("weight.rate_20d_very_low", 20, w_rate_20d_very_low),
    WEIGHT("weight.rate_term_low", 10, w_rate_term_low),
    WEIGHT("weight.chronic_absence", 15, w_chronic_absence),
    WEIGHT("weight.unexcused_periods_today", 20, w_unexcused_periods_today),
    WEIGHT("weight.late_20d", 5, w_late_20d),
    WEIGHT("weight.over_age", 10, w_over_age),
    WEIGHT("weight.transition_year", 5, w_transition_year),

    WEIGHT("flag.registered_poor", 10, f_registered_poor),
    WEIGHT("flag.minimum_subsistence", 10, f_minimum_subsistence),
    WEIGHT("flag.extreme_poverty", 15, f_extreme_poverty),
    WEIGHT("flag.orphan", 15, f_orphan),
    WEIGHT("flag.disability", 10, f_disability),
    WEIGHT("flag.left_behind", 10, f_left_behind),
    WEIGHT("flag.single_parent", 5, f_single_parent),
    WEIGHT("flag.migrant", 5, f_migrant),
    WEIGHT("flag.learning_difficulty", 10, f_learning_difficulty),
    WEIGHT("flag.wavering", 20, f_wavering),
    WEIGHT("flag.earlier_dropout", 20, f_earlier_dropout),
    WEIGHT("flag.monastery", 25, f_monastery),

    INT_SETTING("tier.medium", 1, 100000, 25, tier_medium),
    INT_SETTING("tier.high", 1, 100000, 45, tier_high),
    INT_SETTING("tier.critical", 1, 100000, 75, tier_critical),

    INT_SETTING("absence_rates.largest_only", 0, 1, 1, rates_largest_only),
    INT_SETTING("weight.flags_max", 0, 100000, 30, w_flags_max),
    INT_SETTING("tier.profile_steps", 0, 3, 1, tier_profile_steps),
};

#define SETTING_COUNT (sizeof(settings) / sizeof(settings[0]))

static int *field(score_policy *p, const setting *s)
{
    return (int *)((char *)p + s->offset);
}

void score_policy_default(score_policy *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < SETTING_COUNT; i++)
        *field(out, &settings[i]) = settings[i].def;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* "1, 4, 6, 7" into bits 1..9; empty is no grade; each grade at most once. */
static bool parse_grades(const char *v, int *out)
{
    int bits = 0;
    const char *p = v;
    while (is_space(*p))
        p++;
    if (*p == '\0') {
        *out = 0;
        return true;
    }
    for (;;) {
        while (is_space(*p))
            p++;
        if (*p < '1' || *p > '9')
            return false;
        int g = *p++ - '0';
        if (bits & (1 << g))
            return false;
        bits |= 1 << g;
        while (is_space(*p))
            p++;
        if (*p == '\0')
            break;
        if (*p++ != ',')
            return false;
    }
    *out = bits;
    return true;
}

static bool names_sex_or_ethnicity(const char *name)
{
    static const char *const words[] = {"sex", "gender", "ethnic", "minzu", "nationality"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strstr(name, words[i]) != NULL)
            return true;
    }
    return false;
}

static bx_status check_order(const score_policy *p, const char *name, bx_error *err)
{
    if (p->tier_high <= p->tier_medium)
        return BX_ERR(err, BX_EINVAL, "%s: tier.high (%d) must be above tier.medium (%d)", name,
                      p->tier_high, p->tier_medium);
    if (p->tier_critical <= p->tier_high)
        return BX_ERR(err, BX_EINVAL, "%s: tier.critical (%d) must be above tier.high (%d)", name,
                      p->tier_critical, p->tier_high);
    if (p->rate_20d_very_low_percent > p->rate_20d_low_percent)
        return BX_ERR(err, BX_EINVAL,
                      "%s: rate_20d.very_low_percent (%d) must not be above "
                      "rate_20d.low_percent (%d)",
                      name, p->rate_20d_very_low_percent, p->rate_20d_low_percent);
    return BX_OK;
}

/* bx_policyfile_fn: one setting of the file into the policy at arg. */
static bx_status read_setting(void *arg, const char *file, int line, char *name, char *value,
                              bx_error *err)
{
    score_policy *p = arg;
    size_t k = 0;
    while (k < SETTING_COUNT && strcmp(settings[k].name, name) != 0)
        k++;
    if (k == SETTING_COUNT) {
        if (names_sex_or_ethnicity(name))
            return BX_ERR(err, BX_EINVAL,
                          "%s:%d: %.*s: sex and ethnicity are never inputs of the risk score", file,
                          line, SHOWN, name);
        return BX_ERR(err, BX_EINVAL, "%s:%d: unknown setting %.*s", file, line, SHOWN, name);
    }
    const setting *st = &settings[k];
    if (st->kind == SETTING_GRADES) {
        if (!parse_grades(value, field(p, st)))
            return BX_ERR(err, BX_EINVAL,
                          "%s:%d: %s: expected distinct grades 1..9 separated by commas, "
                          "got \"%.*s\"",
                          file, line, st->name, SHOWN, value);
    } else if (!bx_policyfile_int(value, 9, st->min, st->max, field(p, st))) {
        return BX_ERR(err, BX_EINVAL, "%s:%d: %s: expected an integer %d..%d, got \"%.*s\"", file,
                      line, st->name, st->min, st->max, SHOWN, value);
    }
    return BX_OK;
}

static const bx_policyfile_opts policy_format = {.file_max = POLICY_FILE_MAX,
                                                 .line_max = LINE_MAX_BYTES};

/* After the reader (status s): the tiers' order checked, and *out written only when all is
 * well. */
static bx_status finish(bx_status s, score_policy *p, const char *name, score_policy *out,
                        bx_error *err)
{
    IFOK(s, check_order(p, name, err));
    if (s == BX_OK)
        *out = *p;
    return s;
}

bx_status score_policy_parse(const char *text, size_t len, const char *name, score_policy *out,
                             bx_error *err)
{
    score_policy p;
    score_policy_default(&p);
    bx_status s = bx_policyfile_parse(text, len, name, &policy_format, read_setting, &p, err);
    return finish(s, &p, name, out, err);
}

bx_status score_policy_load(const char *path, score_policy *out, bx_error *err)
{
    score_policy p;
    score_policy_default(&p);
    bx_status s = bx_policyfile_load(path, &policy_format, read_setting, &p, err);
    return finish(s, &p, path, out, err);
}
