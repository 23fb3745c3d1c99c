/* analytics: bx.risk.v1 assessments and their pseudonymised copies. */
#include "analytics.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

void score_pseudonym(const char *key, const char *text, char out[SCORE_PSEUDONYM_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    static const char hex[] = "0123456789abcdef";
    if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)text, strlen(text), md,
             &len) == NULL)
        len = 0;
    for (unsigned int i = 0; i < len && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[len >= 32 ? 64 : 2 * len] = '\0';
}

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
    char id[SCORE_RISK_ID_SIZE], at[40], event[SCORE_PSEUDONYM_SIZE], subject[SCORE_PSEUDONYM_SIZE];
    score_risk_event_id(o, id);
    score_pseudonym(key, id, event);
    score_pseudonym(key, o->student_id, subject);
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
