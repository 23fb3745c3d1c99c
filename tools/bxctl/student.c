/* bxctl student show: a student's streak, windows and risk score with its reasons, computed as
 * bx-score computes it (as of the clock's today), as text or JSON. */
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_registry.h"
#include "bxctl.h"
#include "recompute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *date_text(bx_date d, char out[11])
{
    if (d == BX_DATE_NONE)
        return "-";
    bx_date_format(d, out);
    return out;
}

static bx_status json_date(bx_buf *b, const char *name, bx_date d)
{
    char text[11];
    if (d == BX_DATE_NONE)
        return bx_buf_printf(b, ",\"%s\":null", name);
    bx_date_format(d, text);
    return bx_buf_printf(b, ",\"%s\":\"%s\"", name, text);
}

static bx_status json_counts(bx_buf *b, const char *name, const score_counts *c)
{
    return bx_buf_printf(b,
                         ",\"%s\":{\"school_days\":%d,\"attended\":%d,\"late\":%d,\"absent\":%d,"
                         "\"leave\":%d,\"not_reported\":%d,\"no_record\":%d}",
                         name, c->school_days, c->attended_days, c->late_days, c->absent_days,
                         c->leave_days, c->not_reported_days, c->no_record_days);
}

static int print_json(const score_outcome *o)
{
    const score_summary *s = &o->summary;
    const score_assessment *a = &o->assessment;
    char r20[16], rterm[16];
    score_rate_format(s->attendance_rate_20d, r20);
    score_rate_format(s->attendance_rate_term, rterm);
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    bx_status st =
        bx_buf_printf(&b, "{\"student_id\":\"%s\",\"school_id\":\"%s\",\"class_id\":\"%s\"",
                      o->student_id, o->student->school->id, o->student->klass->id);
    IFOK(st, json_date(&b, "as_of", s->as_of));
    IFOK(st, json_date(&b, "last_school_day", s->last_school_day));
    IFOK(st, bx_buf_printf(&b, ",\"streak_days\":%d", s->streak_days));
    IFOK(st, json_date(&b, "streak_start", s->streak_start));
    IFOK(st, json_date(&b, "streak_last", s->streak_last));
    IFOK(st, bx_buf_printf(&b, ",\"today\":\"%s\",\"unexcused_periods_today\":%d",
                           score_day_state_name(s->today.state), s->unexcused_periods));
    IFOK(st, bx_buf_printf(&b, ",\"attendance_rate_20d\":%s", r20));
    IFOK(st, json_date(&b, "window_first", s->window_first));
    IFOK(st, json_counts(&b, "window", &s->window));
    IFOK(st, bx_buf_printf(&b, ",\"term\":"));
    IFOK(st, s->term[0] ? bx_buf_json_string(&b, s->term) : bx_buf_puts(&b, "null"));
    IFOK(st, bx_buf_printf(&b, ",\"attendance_rate_term\":%s", rterm));
    IFOK(st, json_counts(&b, "term_counts", &s->term_counts));
    IFOK(st,
         bx_buf_printf(&b, ",\"chronic_absence\":%s,\"score\":%d,\"tier\":\"%s\",\"factors\":[",
                       s->chronic_absence ? "true" : "false", a->score, score_tier_name(a->tier)));
    for (int i = 0; i < a->nfactors && st == BX_OK; i++) {
        const score_factor *f = &a->factors[i];
        IFOK(st,
             bx_buf_printf(&b, "%s{\"factor\":\"%s\",\"points\":%d,\"source\":\"%s\",\"detail\":",
                           i ? "," : "", f->factor, f->points,
                           f->source == SCORE_SOURCE_ATTENDANCE ? "attendance" : "profile"));
        IFOK(st, bx_buf_json_string(&b, f->detail));
        IFOK(st, bx_buf_puts(&b, "}"));
    }
    IFOK(st, bx_buf_puts(&b, "]}\n"));
    return bxctl_print(&b, st, "bxctl student show");
}

static void print_rate(const char *label, double rate, const score_counts *c)
{
    printf("%s: %.1f%% (%d of %d reported school days attended; %d absent, %d on leave, %d not "
           "reported)\n",
           label, 100.0 * rate, c->attended_days, score_counts_reported(c), c->absent_days,
           c->leave_days, c->not_reported_days);
}

static int print_text(const score_outcome *o)
{
    const score_summary *s = &o->summary;
    const score_assessment *a = &o->assessment;
    char d1[11], d2[11];
    printf("student %s (school %s, class %s, grade %d), as of %s\n", o->student_id,
           o->student->school->id, o->student->klass->id, o->student->klass->grade,
           date_text(s->as_of, d1));
    if (s->streak_days > 0)
        printf("streak: %d school days since %s (last absent %s)\n", s->streak_days,
               date_text(s->streak_start, d1), date_text(s->streak_last, d2));
    else
        printf("streak: none\n");
    printf("today: %s, %d unexcused periods\n", score_day_state_name(s->today.state),
           s->unexcused_periods);
    print_rate("attendance, last 20 school days", s->attendance_rate_20d, &s->window);
    char label[64];
    snprintf(label, sizeof(label), "attendance, term %s", s->term[0] ? s->term : "-");
    print_rate(label, s->attendance_rate_term, &s->term_counts);
    printf("chronic absence: %s\n", s->chronic_absence ? "yes" : "no");
    printf("score: %d, tier: %s\n", a->score, score_tier_name(a->tier));
    printf("factors:%s\n", a->nfactors ? "" : " none");
    for (int i = 0; i < a->nfactors; i++)
        printf("  %-24s %+4d  %s\n", a->factors[i].factor, a->factors[i].points,
               a->factors[i].detail);
    return 0;
}

int bxctl_student(bxctl_ctx *ctx, int argc, char **argv)
{
    bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
    if (argc < 2 || argc > 3 || strcmp(argv[0], "show") != 0 || (argc == 3 && !json) ||
        !bx_id_valid(argv[1])) {
        fprintf(stderr, "usage: bxctl student show <student_id> [--json]\n");
        return 2;
    }
    bxctl_score *sc = bxctl_score_open(ctx);
    if (sc == NULL)
        return 1;
    const char *id = argv[1];
    score_outcome *o = malloc(sizeof(*o));
    bx_error err = {0};
    int rc = 1;
    if (o == NULL)
        fprintf(stderr, "bxctl student show: out of memory\n");
    else if (score_recompute(bxctl_score_env(sc), &id, 1, bx_time_local_date(bx_clock_now()), o,
                             &err) != BX_OK)
        fprintf(stderr, "bxctl student show: %s\n", err.msg);
    else if (o->student == NULL)
        fprintf(stderr, "bxctl student show: no student %s in the registry\n", id);
    else
        rc = json ? print_json(o) : print_text(o);
    free(o);
    bxctl_score_close(sc);
    return rc;
}
