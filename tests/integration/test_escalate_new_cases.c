/* bx-escalate's run of inputs opening many cases at once: the run's new case rows are inserted
 * with one statement before their events, tasks and timers (store.h,
 * escalate_store_batch_defer_new_cases), and leave the same rows as the same inputs applied one
 * by one, each in its own transaction. Its own bx-escalate on its own database, topics and group,
 * with a driven clock (support/bx_escalate_itest.c), as in test_escalate.c. */
#include "bx_escalate_itest.h"
#include "bx_itest.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const escalate_itest_conf conf = {
    .name = "escnew",
    .tag_letter = 'N',
    .school = "NS1,新案测试小学,990001100,primary,it-2026",
    .staff = "NST1,钱老师,homeroom_teacher,NS1,,,",
    .class_ = "NC1,NS1,4,四年级1班,NST1",
    .place = "NS1,NC1",
    .settle_s = 60,
};

/* An assessment of student id (caller frees). */
static char *risk_json(const char *id, const char *local_time, int streak, const char *start,
                       const char *event_suffix)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(
        bx_buf_printf(&b,
                      "{\"schema\":\"bx.risk.v1\",\"event_id\":\"risk:%s:%.10s%s\","
                      "\"student_id\":\"%s\",\"school_id\":\"NS1\",\"class_id\":\"NC1\","
                      "\"date\":\"%.10s\",\"streak_days\":%d,\"streak_start\":\"%s\","
                      "\"unexcused_periods_today\":0,\"attendance_rate_20d\":0.8,"
                      "\"attendance_rate_term\":0.9,\"chronic_absence\":false,\"score\":%d,"
                      "\"tier\":\"medium\",\"previous_tier\":null,\"trigger\":"
                      "\"streak_changed\",\"factors\":[],\"assessed_at\":\"%.10sT%s:00+08:00\"}",
                      id, local_time, event_suffix, id, local_time, streak, start, 10 * streak,
                      local_time, local_time + 11) == BX_OK);
    return bx_buf_steal(&b);
}

/* What a student's inputs made, without ids: its case rows, the events, tasks, timers and outbox
 * messages in order (caller frees). */
static char *case_signature(const char *student)
{
    return escalate_itest_rows(
        "SELECT concat_ws(' | ', "
        "(SELECT string_agg(c.school_id || '/' || c.opened_at::text || '/' || c.stage || '/' || "
        "  coalesce(c.ending, '-') || '/' || (c.closed_at IS NULL)::text || '/' || "
        "  replace(c.state::text, $1, ''), ',' ORDER BY c.id) FROM cases.case c "
        "  WHERE c.student_id = $1), "
        "(SELECT string_agg(e.kind || '/' || coalesce(e.stage, '') || '/' || e.late::text || '/' "
        "  || e.occurred_at::text || '/' || replace(e.event_id, $1, ''), ',' ORDER BY e.id) "
        "  FROM cases.event e JOIN cases.case c ON c.id = e.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(t.kind || '/' || t.stage || '/' || t.owner_role || '/' || "
        "  coalesce(t.owner_staff_id, '-') || '/' || t.due_at::text || '/' || "
        "  (t.overdue_at IS NOT NULL)::text || '/' || coalesce(t.outcome, '-'), ',' ORDER BY t.id) "
        "  FROM cases.task t JOIN cases.case c ON c.id = t.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(replace(m.timer_key, $1, '') || '@' || m.due_at::text || '/' || "
        "  (m.fired_at IS NOT NULL)::text || '/' || m.cancelled::text, ',' ORDER BY m.id) "
        "  FROM cases.timer m JOIN cases.case c ON c.id = m.case_id WHERE c.student_id = $1), "
        "(SELECT string_agg(o.topic || ':' || coalesce(o.payload::jsonb->>'template', "
        "  o.payload::jsonb->>'kind', o.payload::jsonb->>'event', ''), ',' ORDER BY o.id) "
        "  FROM cases.outbox o WHERE o.msg_key = $1))",
        student);
}

/* The largest number of case rows of students first..last (a range of student_id's) written by
 * one statement (the same transaction and command id). */
static long long most_cases_of_one_statement(int first, int last)
{
    char lo[40], hi[40], range[100];
    escalate_itest_student_id(first, lo);
    escalate_itest_student_id(last, hi);
    snprintf(range, sizeof(range), "%s %s", lo, hi);
    return escalate_itest_count(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM cases.case "
        "WHERE student_id BETWEEN split_part($1, ' ', 1) AND split_part($1, ' ', 2) "
        "GROUP BY xmin::text, cmin::text) g",
        range);
}

/* A run of inputs waiting when bx-escalate starts opens PER_RUN cases; every fifth student also
 * has a second assessment of the day later in the same run, with a higher score (its case is
 * read again after it was opened in the run, so the queued new case is written first; else it
 * would open a second case). No timer falls due: the case rows are as the run wrote them. Applied
 * together (the default run), the new case rows come from one statement (one command id for many
 * rows) and every row they own names the right case; applied one by one (BX_ESCALATE_INPUT_BATCH=1)
 * each row has its own. The cases, events, tasks, timers and outbox messages are the same, student
 * for student. */
BX_TEST(a_run_opening_many_cases_gives_the_rows_of_one_by_one)
{
    enum { PER_RUN = 40 };
    escalate_itest s;
    escalate_itest_start(&s, &conf, 2 * PER_RUN, "2026-09-28 08:00", NULL);
    escalate_itest_settle(&s);
    for (int run = 0; run < 2; run++) {
        itest_stop(s.pid);
        s.base = s.produced;
        escalate_itest_at("2026-09-28 09:00");
        for (int k = 1; k <= PER_RUN; k++) {
            char id[40];
            escalate_itest_student_id(run * PER_RUN + k, id);
            /* one key: the run on one partition, in this order */
            escalate_itest_produce_owned(&s, s.risk, "run",
                                         risk_json(id, "2026-09-28 08:30", 1, "2026-09-28", ""));
            if (k % 5 == 0)
                escalate_itest_produce_owned(
                    &s, s.risk, "run",
                    risk_json(id, "2026-09-28 08:50", 2, "2026-09-28", ":second"));
        }
        escalate_itest_run(&s, run == 0 ? "BX_ESCALATE_INPUT_BATCH=1" : NULL);
        escalate_itest_settle(&s);
        CHECK_INT(itest_metric(s.port, "bx_escalate_dlq_total"), 0);
        CHECK_INT(itest_metric(s.port, "bx_escalate_inputs_total"), PER_RUN + PER_RUN / 5);
        if (run == 0)
            CHECK_INT(itest_metric(s.port, "bx_escalate_input_polls_total"), 0);
        else
            CHECK(itest_metric(s.port, "bx_escalate_input_polls_total") >= 1);
    }
    CHECK_INT(escalate_itest_count("SELECT count(*) FROM cases.case", NULL), 2 * PER_RUN);
    CHECK_INT(most_cases_of_one_statement(1, PER_RUN), 1);
    CHECK(most_cases_of_one_statement(PER_RUN + 1, 2 * PER_RUN) >= 4);
    /* every row queued for a new case got that case's id */
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.event e JOIN cases.case c ON c.id = e.case_id "
                  "WHERE e.payload->>'student_id' IS DISTINCT FROM c.student_id",
                  NULL),
              0);
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.task t JOIN cases.case c ON c.id = t.case_id "
                  "WHERE strpos(t.task_key, c.student_id) = 0",
                  NULL),
              0);
    CHECK_INT(escalate_itest_count(
                  "SELECT count(*) FROM cases.timer m JOIN cases.case c ON c.id = m.case_id "
                  "WHERE strpos(m.timer_key, c.student_id) = 0",
                  NULL),
              0);
    CHECK(escalate_itest_count("SELECT count(*) FROM cases.timer WHERE case_id IS NOT NULL",
                               NULL) >= 2 * PER_RUN);
    for (int k = 1; k <= PER_RUN; k++) {
        char one[40], together[40];
        escalate_itest_student_id(k, one);
        escalate_itest_student_id(PER_RUN + k, together);
        char *a = case_signature(one), *b = case_signature(together);
        CHECK(strlen(a) > 40);
        if (strcmp(a, b) != 0)
            fprintf(stderr, "one by one: %s\ntogether:   %s\n", a, b);
        CHECK_STR(b, a);
        free(a);
        free(b);
    }
    escalate_itest_stop(&s);
}
