/* sim: the simulated county's generator, ground truth, teachers' days and the early warning's
 * evaluation, without any service. */
#include "bx_test.h"
#include "sim.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *holidays(void)
{
    static char path[1024];
    const char *src = getenv("BX_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv", src ? src : ".");
    return path;
}

static sim_county *county(uint64_t seed, int townships, int schools, int students)
{
    sim_county *c = NULL;
    bx_error err = {0};
    sim_size size = {townships, schools, students, NULL};
    if (sim_county_new(seed, size, holidays(), &c, &err) != BX_OK)
        fprintf(stderr, "sim_county_new: %s\n", err.msg);
    REQUIRE(c != NULL);
    return c;
}

/* Every registry file and the truth, concatenated. */
static char *all_files(const sim_county *c)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    for (int i = 0; i < SIM_NFILES; i++)
        REQUIRE(sim_county_csv(c, i, &b) == BX_OK);
    REQUIRE(sim_truth_csv(c, &b) == BX_OK);
    return bx_buf_steal(&b);
}

static bx_date date(const char *s)
{
    bx_date d = 0;
    REQUIRE(bx_date_parse(s, &d) == BX_OK);
    return d;
}

BX_TEST(splitmix64_matches_the_reference)
{
    /* Reference outputs of splitmix64 from state 0 (Vigna's splitmix64.c). */
    uint64_t st = 0;
    CHECK(sim_splitmix64(&st) == 0xE220A8397B1DCDAFULL);
    CHECK(sim_splitmix64(&st) == 0x6E789E6AA1B965F4ULL);
    CHECK(sim_splitmix64(&st) == 0x06C45D188009454FULL);
}

BX_TEST(streams_are_independent_of_order)
{
    sim_rng a, b;
    sim_rng_for(&a, 7, 1, 100, 200);
    for (int i = 0; i < 5; i++)
        (void)sim_rng_next(&a);
    sim_rng_for(&a, 7, 1, 100, 200);
    sim_rng_for(&b, 7, 1, 100, 200);
    CHECK(sim_rng_next(&a) == sim_rng_next(&b));
    sim_rng_for(&b, 7, 1, 100, 201);
    sim_rng_for(&a, 7, 1, 100, 200);
    CHECK(sim_rng_next(&a) != sim_rng_next(&b));
    for (int i = 0; i < 1000; i++) {
        double u = sim_rng_unit(&a);
        CHECK(u >= 0 && u < 1);
        int k = sim_rng_below(&a, 7);
        CHECK(k >= 0 && k < 7);
    }
}

BX_TEST(same_seed_same_county_other_seed_differs)
{
    sim_county *a = county(42, 3, 6, 2000), *b = county(42, 3, 6, 2000),
               *c = county(43, 3, 6, 2000);
    char *fa = all_files(a), *fb = all_files(b), *fc = all_files(c);
    CHECK(strcmp(fa, fb) == 0);
    CHECK(strcmp(fa, fc) != 0);
    CHECK_INT(a->nstudents, b->nstudents);
    /* The teachers' days too: the first 20 school days' plans are equal. */
    sim_world *wa = NULL, *wb = NULL;
    REQUIRE(sim_world_new(a, &wa) == BX_OK && sim_world_new(b, &wb) == BX_OK);
    bx_buf ja, jb;
    bx_buf_init(&ja, 0);
    bx_buf_init(&jb, 0);
    bx_date d = a->term_first;
    for (int n = 0; n < 20; n++, d = bx_calendar_add_school_days(a->cal, d, 1)) {
        sim_day_plan pa, pb;
        REQUIRE(sim_plan_day(a, wa, d, &pa) == BX_OK && sim_plan_day(b, wb, d, &pb) == BX_OK);
        CHECK_INT(pa.nrollcalls, pb.nrollcalls);
        for (int j = 0; j < pa.nrollcalls; j++)
            REQUIRE(sim_rollcall_json(a, &pa.rollcalls[j], &ja) == BX_OK);
        for (int j = 0; j < pb.nrollcalls; j++)
            REQUIRE(sim_rollcall_json(b, &pb.rollcalls[j], &jb) == BX_OK);
        for (int j = 0; j < pa.nactions; j++)
            REQUIRE(sim_action_json(a, &pa.actions[j], &ja) == BX_OK);
        for (int j = 0; j < pb.nactions; j++)
            REQUIRE(sim_action_json(b, &pb.actions[j], &jb) == BX_OK);
        sim_day_plan_free(&pa);
        sim_day_plan_free(&pb);
    }
    CHECK(ja.len > 0 && ja.len == jb.len && memcmp(ja.data, jb.data, ja.len) == 0);
    bx_buf_free(&ja);
    bx_buf_free(&jb);
    sim_world_free(wa);
    sim_world_free(wb);
    free(fa);
    free(fb);
    free(fc);
    sim_county_free(a);
    sim_county_free(b);
    sim_county_free(c);
}

BX_TEST(sizes_out_of_range_name_the_field)
{
    static const struct {
        sim_size size;
        const char *field;
    } rows[] = {
        {{0, 6, 2000, NULL}, "townships:"}, {{21, 30, 20000, NULL}, "townships:"},
        {{3, 2, 2000, NULL}, "schools:"},   {{3, 401, 200000, NULL}, "schools:"},
        {{3, 6, 100, NULL}, "students:"},   {{3, 6, 2000001, NULL}, "students:"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sim_county *c = NULL;
        bx_error err = {0};
        CHECK(sim_county_new(1, rows[i].size, holidays(), &c, &err) == BX_EINVAL);
        CHECK(c == NULL);
        CHECK(strncmp(err.msg, rows[i].field, strlen(rows[i].field)) == 0);
    }
}

static bool id_check_ok(const char *s)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    if (strlen(s) != 18)
        return false;
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (s[i] - '0') * w[i];
    return "10X98765432"[sum % 11] == s[17];
}

BX_TEST(registry_is_well_formed)
{
    sim_county *c = county(5, 4, 12, 6000);
    CHECK(c->nstudents > 5400 && c->nstudents < 6600);
    int juniors = 0;
    for (int i = 0; i < c->nschools; i++)
        juniors += c->schools[i].junior;
    CHECK_INT(juniors, 4);
    for (int k = 0; k < c->nclasses; k++) {
        const sim_class *cl = &c->classes[k];
        CHECK(cl->nstudents >= 5 && cl->nstudents <= SIM_MAX_CLASS_SIZE);
        CHECK(c->schools[cl->school].junior ? cl->grade >= 7 : cl->grade <= 6);
    }
    for (int i = 0; i < c->nstudents; i++) {
        const sim_student *st = &c->students[i];
        CHECK(id_check_ok(st->national_id));
        CHECK(strncmp(st->national_id, "520121", 6) == 0);
        /* The id's sex digit matches. */
        CHECK(((st->national_id[16] - '0') % 2 == 1) == (st->sex == 'M'));
        int y, m, d;
        bx_date_to_ymd(st->birth, &y, &m, &d);
        int grade = c->classes[st->klass].grade;
        CHECK(y >= 2019 - grade - 2 && y <= 2021 - grade);
    }
    /* Ids are unique (students sorted by class, so adjacent ids differ). */
    for (int i = 1; i < c->nstudents; i++)
        CHECK(strcmp(c->students[i - 1].id, c->students[i].id) != 0);
    sim_county_free(c);
}

BX_TEST(flag_rates_follow_the_table)
{
    sim_county *c = county(11, 10, 60, 60000);
    for (int f = 0; f < SIM_NFLAGS; f++) {
        int n = 0;
        for (int i = 0; i < c->nstudents; i++)
            n += (c->students[i].flags >> f) & 1;
        double got = 1000.0 * n / c->nstudents, want = sim_flag_rate_permille(f);
        /* Extreme poverty implies registered poor; orphans are not counted single-parent. */
        if (f == 0)
            want += sim_flag_rate_permille(2) * 0.94;
        CHECK(got > want * 0.75 - 1 && got < want * 1.25 + 1);
        if (!(got > want * 0.75 - 1 && got < want * 1.25 + 1))
            fprintf(stderr, "flag %s: %.2f per mille, expected about %.2f\n", sim_flag_name(f), got,
                    want);
    }
    /* A handful of drifters per thousand, more in junior school. */
    int drift[2] = {0, 0}, all[2] = {0, 0};
    for (int i = 0; i < c->nstudents; i++) {
        int junior = c->schools[sim_student_school(c, i)].junior;
        all[junior]++;
        drift[junior] += c->students[i].fate != SIM_STAYS;
    }
    double primary = 1000.0 * drift[0] / all[0], junior = 1000.0 * drift[1] / all[1];
    CHECK(primary > 1 && primary < 8);
    CHECK(junior > primary && junior < 25);
    sim_county_free(c);
}

BX_TEST(drifters_are_away_from_their_first_day_until_they_return)
{
    sim_county *c = county(42, 3, 6, 2000);
    int checked = 0;
    for (int i = 0; i < c->nstudents; i++) {
        const sim_student *st = &c->students[i];
        if (st->fate == SIM_STAYS)
            continue;
        CHECK(bx_calendar_is_school_day(c->cal, st->drift_start));
        CHECK(st->drift_start >= c->term_first && st->drift_start <= c->term_last);
        bx_date end = st->fate == SIM_DRIFTS_BACK ? st->return_date : c->term_last + 1;
        for (bx_date d = st->drift_start; d < end && d <= c->term_last; d++)
            if (bx_calendar_is_school_day(c->cal, d))
                CHECK(sim_student_status(c, i, d) == SIM_ABSENT);
        if (st->fate == SIM_DRIFTS_BACK) {
            CHECK(st->return_date > st->drift_start);
            CHECK(sim_student_status(c, i, st->return_date) != SIM_ABSENT);
        }
        checked++;
    }
    CHECK(checked > 0);
    /* Nobody is asked about a weekend or National Day. */
    CHECK(sim_student_status(c, 0, date("2026-10-03")) == SIM_PRESENT);
    CHECK(sim_student_status(c, 0, date("2026-09-05")) == SIM_PRESENT);
    sim_county_free(c);
}

BX_TEST(absences_cluster_around_holidays)
{
    sim_county *c = county(9, 3, 6, 4000);
    /* 2026-10-08 follows National Day; 2026-11-18 is an ordinary Wednesday. */
    int after = 0, ordinary = 0;
    for (int i = 0; i < c->nstudents; i++) {
        if (c->students[i].fate != SIM_STAYS)
            continue;
        sim_status a = sim_student_status(c, i, date("2026-10-08"));
        sim_status b = sim_student_status(c, i, date("2026-11-18"));
        after += a == SIM_ABSENT || a == SIM_SICK || a == SIM_PERSONAL || a == SIM_PERSONAL_AHEAD;
        ordinary +=
            b == SIM_ABSENT || b == SIM_SICK || b == SIM_PERSONAL || b == SIM_PERSONAL_AHEAD;
    }
    CHECK(after > ordinary * 3 / 2);
    sim_county_free(c);
}

/* The plan of every school day until `until`, returning the plan of that day (caller frees). */
static void plan_until(const sim_county *c, sim_world *w, bx_date until, sim_day_plan *out)
{
    for (bx_date d = c->term_first; d <= until; d = bx_calendar_add_school_days(c->cal, d, 1)) {
        REQUIRE(sim_plan_day(c, w, d, out) == BX_OK);
        if (d == until)
            return;
        sim_day_plan_free(out);
    }
    REQUIRE(!"until is a school day");
}

static bool in_list(const int *ids, int n, int id)
{
    for (int j = 0; j < n; j++)
        if (ids[j] == id)
            return true;
    return false;
}

BX_TEST(teachers_report_a_drifter_and_follow_up)
{
    sim_county *c = county(42, 3, 6, 2000);
    int drifter = -1;
    for (int i = 0; i < c->nstudents && drifter < 0; i++)
        if (c->students[i].fate == SIM_DRIFTS_BACK)
            drifter = i;
    REQUIRE(drifter >= 0);
    const sim_student *st = &c->students[drifter];
    sim_world *w = NULL;
    REQUIRE(sim_world_new(c, &w) == BX_OK);
    int absent_days = 0, contacts = 0, visits = 0, returns = 0;
    bx_date last = bx_calendar_add_school_days(c->cal, st->return_date, 4);
    for (bx_date d = c->term_first; d <= last; d = bx_calendar_add_school_days(c->cal, d, 1)) {
        sim_day_plan p;
        REQUIRE(sim_plan_day(c, w, d, &p) == BX_OK);
        for (int j = 0; j < p.nrollcalls; j++)
            if (p.rollcalls[j].klass == st->klass &&
                in_list(p.rollcalls[j].absent, p.rollcalls[j].nabsent, drifter))
                absent_days += p.rollcalls[j].date >= st->drift_start;
        for (int j = 0; j < p.nactions; j++) {
            if (p.actions[j].student != drifter || p.actions[j].date < st->drift_start)
                continue;
            contacts += p.actions[j].kind == SIM_CONTACT_MADE;
            visits += p.actions[j].kind == SIM_HOME_VISIT;
            returns += p.actions[j].kind == SIM_RETURNED;
            CHECK(p.actions[j].recorded == d);
            CHECK(p.actions[j].date >= d || !p.actions[j].late);
        }
        sim_day_plan_free(&p);
    }
    int away = bx_calendar_school_days_between(c->cal, st->drift_start, st->return_date) - 1;
    /* Every day away is reported, except days the class forgot and never sent. */
    CHECK(absent_days <= away && absent_days >= away - 2);
    CHECK_INT(contacts, 1);
    CHECK(visits == (away >= 2 ? 1 : 0));
    CHECK_INT(returns, 1);
    sim_world_free(w);
    sim_county_free(c);
}

BX_TEST(plans_must_go_forward)
{
    sim_county *c = county(42, 3, 6, 2000);
    sim_world *w = NULL;
    REQUIRE(sim_world_new(c, &w) == BX_OK);
    sim_day_plan p;
    plan_until(c, w, date("2026-09-03"), &p);
    sim_day_plan_free(&p);
    CHECK(sim_plan_day(c, w, date("2026-09-02"), &p) == BX_EINVAL);
    sim_world_free(w);
    sim_county_free(c);
}

BX_TEST(request_bodies_are_what_bx_ingest_reads)
{
    sim_county *c = county(42, 3, 6, 2000);
    sim_world *w = NULL;
    REQUIRE(sim_world_new(c, &w) == BX_OK);
    sim_day_plan p;
    plan_until(c, w, date("2026-10-09"), &p);
    REQUIRE(p.nrollcalls > 0);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(sim_rollcall_json(c, &p.rollcalls[0], &b) == BX_OK);
    cJSON *j = cJSON_Parse(b.data);
    REQUIRE(j != NULL);
    const sim_class *cl = &c->classes[p.rollcalls[0].klass];
    CHECK_STR(cJSON_GetObjectItem(j, "class_id")->valuestring, cl->id);
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(j, "absent")));
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(j, "leave")));
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "absent")), p.rollcalls[0].nabsent);
    cJSON_Delete(j);
    sim_action acts[] = {
        {.student = 3, .kind = SIM_CONTACT_MADE, .date = date("2026-10-09"), .reached = true},
        {.student = 3, .kind = SIM_HOME_VISIT, .date = date("2026-10-09")},
        {.student = 3, .kind = SIM_RETURN_NOTICE, .date = date("2026-10-09")},
        {.student = 3, .kind = SIM_RETURNED, .date = date("2026-10-09"), .signed_off = true},
    };
    static const char *const want[][2] = {{"contact_made", "KT"},
                                          {"home_visit", "KT"},
                                          {"letter_delivered", "KO"},
                                          {"returned", "KT"}};
    for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
        bx_buf_reset(&b);
        REQUIRE(sim_action_json(c, &acts[i], &b) == BX_OK);
        j = cJSON_Parse(b.data);
        REQUIRE(j != NULL);
        CHECK_STR(cJSON_GetObjectItem(j, "action")->valuestring, want[i][0]);
        CHECK(strncmp(cJSON_GetObjectItem(j, "staff_id")->valuestring, want[i][1], 2) == 0);
        CHECK_STR(cJSON_GetObjectItem(j, "date")->valuestring, "2026-10-09");
        CHECK(cJSON_IsObject(cJSON_GetObjectItem(j, "details")));
        cJSON_Delete(j);
    }
    sim_leave l = {
        .student = 5, .first = date("2026-10-09"), .last = date("2026-10-09"), .phoned_in = true};
    bx_buf_reset(&b);
    REQUIRE(sim_leave_json(c, &l, &b) == BX_OK);
    CHECK_CONTAINS(b.data, "\"phoned_in\":true");
    CHECK_CONTAINS(b.data, c->students[5].id);
    bx_buf_free(&b);
    sim_day_plan_free(&p);
    sim_world_free(w);
    sim_county_free(c);
}

BX_TEST(warning_evaluation_from_tables)
{
    sim_county *c = county(42, 3, 6, 2000);
    bx_date *flags = calloc((size_t)c->nstudents, sizeof(*flags));
    REQUIRE(flags != NULL);
    int drifters = 0, stayer = -1;
    for (int i = 0; i < c->nstudents; i++) {
        drifters += c->students[i].fate != SIM_STAYS;
        if (stayer < 0 && c->students[i].fate == SIM_STAYS)
            stayer = i;
    }
    REQUIRE(drifters >= 2);
    sim_warning_eval ev;
    /* Nobody flagged: recall 0, precision undefined. */
    for (int i = 0; i < c->nstudents; i++)
        flags[i] = BX_DATE_NONE;
    sim_evaluate_warning(c, flags, c->term_last, &ev);
    CHECK_INT(ev.drifters, drifters);
    CHECK_INT(ev.never_flagged, drifters);
    CHECK(ev.recall == 0.0 && ev.precision < 0);
    /* Every drifter flagged on the third day away, and one child who stays: */
    for (int i = 0; i < c->nstudents; i++)
        if (c->students[i].fate != SIM_STAYS)
            flags[i] = bx_calendar_add_school_days(c->cal, c->students[i].drift_start, 2);
    flags[stayer] = c->term_first;
    sim_evaluate_warning(c, flags, c->term_last, &ev);
    CHECK_INT(ev.true_positive, drifters);
    CHECK_INT(ev.flagged, drifters + 1);
    CHECK(ev.recall == 1.0);
    CHECK(ev.precision > 0.0 && ev.precision == (double)drifters / (drifters + 1));
    CHECK_INT(ev.lead_hist[3], drifters); /* 2 days after */
    CHECK(ev.median_lead == -2.0);
    /* Flagged two school days before the first day away. */
    for (int i = 0; i < c->nstudents; i++)
        if (c->students[i].fate != SIM_STAYS)
            flags[i] = bx_calendar_add_school_days(c->cal, c->students[i].drift_start, -2);
    sim_evaluate_warning(c, flags, c->term_last, &ev);
    CHECK_INT(ev.flagged_before, drifters);
    CHECK_INT(ev.lead_hist[0], drifters);
    CHECK(ev.median_lead == 2.0);
    /* Drifters after the evaluated day are not counted. */
    sim_evaluate_warning(c, flags, c->term_first, &ev);
    CHECK_INT(ev.drifters, 0);
    free(flags);
    sim_county_free(c);
}

BX_TEST(a_whole_term_sends_nothing_dated_ahead_and_no_id_twice)
{
    sim_county *c = county(42, 3, 6, 2000);
    sim_world *w = NULL;
    REQUIRE(sim_world_new(c, &w) == BX_OK);
    bx_buf ids;
    bx_buf_init(&ids, 0);
    int actions = 0, late = 0, signoffs = 0, leaves = 0, late_rollcalls = 0;
    for (bx_date d = c->term_first; d != BX_DATE_NONE && d <= c->term_last;
         d = bx_calendar_add_school_days(c->cal, d, 1)) {
        sim_day_plan p;
        REQUIRE(sim_plan_day(c, w, d, &p) == BX_OK);
        for (int j = 0; j < p.nactions; j++) {
            const sim_action *a = &p.actions[j];
            /* bx-ingest rejects a date in the future; staff send what happened by today. */
            CHECK(a->date <= d && a->recorded <= d);
            CHECK(!a->late || a->date > a->due);
            bx_buf one;
            bx_buf_init(&one, 0);
            REQUIRE(sim_action_json(c, a, &one) == BX_OK);
            cJSON *j1 = cJSON_Parse(one.data);
            REQUIRE(j1 != NULL);
            const char *id = cJSON_GetObjectItem(j1, "event_id")->valuestring;
            char needle[80];
            snprintf(needle, sizeof(needle), "|%s|", id);
            CHECK(ids.data == NULL || strstr(ids.data, needle) == NULL);
            REQUIRE(bx_buf_printf(&ids, "|%s|", id) == BX_OK);
            cJSON_Delete(j1);
            bx_buf_free(&one);
            actions++;
            late += a->late;
            signoffs += a->kind == SIM_SIGNOFF;
        }
        for (int j = 0; j < p.nleaves; j++) {
            CHECK(p.leaves[j].phoned_in ? p.leaves[j].first < d : p.leaves[j].first > d);
            leaves++;
        }
        for (int j = 0; j < p.nrollcalls; j++) {
            CHECK(p.rollcalls[j].date <= d);
            late_rollcalls += p.rollcalls[j].date < d;
        }
        sim_day_plan_free(&p);
    }
    /* Some of everything: late records, late sign-offs, leave, late roll calls. */
    CHECK(actions > 100);
    CHECK(late > 0 && late < actions / 2);
    CHECK(signoffs > 0);
    CHECK(leaves > 0);
    CHECK(late_rollcalls > 0);
    bx_buf_free(&ids);
    sim_world_free(w);
    sim_county_free(c);
}
