/* bxctl case, report and ledger against the real PostgreSQL, in a database of this test's own: the
 * registry imported with `bxctl import`, cases, events and tasks inserted as bx-escalate writes
 * them (0004), and the commands' text and JSON read back. Holds the seeds' worked example of the
 * retention rate (80 students, 3 transferred out, 1 in, 78 now: 100%) at the bxctl level. */
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- a migrated database of our own ---- */

static char db_url[512];
static char env_url[600];
static char env_clock[600];

/* Runs bxctl against our database with the driven clock; returns the exit code, output in *out
 * (caller frees). */
static int bxctl(char **out, const char *const *args)
{
    const char *env[] = {env_url, env_clock, NULL};
    return itest_bxctl_env(args, env, out);
}

static char *bxctl_ok(const char *const *args)
{
    char *out = NULL;
    int rc = bxctl(&out, args);
    if (rc != 0)
        fprintf(stderr, "bxctl %s %s failed (%d): %s\n", args[0], args[1] ? args[1] : "", rc, out);
    REQUIRE(rc == 0);
    return out;
}

static void exec_ok(PGconn *db, const char *sql)
{
    bx_error err = {0};
    bx_status s = bx_pg_exec(db, sql, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(s == BX_OK);
}

/* ---- the fixture ----
 * County 990002, township 990002100. School CT01 (primary, calendar ct-cal, term 2026-autumn
 * 2026-09-01..2027-01-22):
 *   CTA (grade 3): the worked example. CTA01..CTA80 enrolled since 2025-09-01; CTA78..CTA80
 *     transferred out in October (cases closed "transferred"); CTA81 came on 2026-10-12.
 *   CTB (grade 4): CTB01..CTB50. CTB01 entered the dropout roster on 2026-10-16 and is still
 *     away (a dropout: 1/50 = 2% > 1%, the class fails); CTB02 entered it the same day and
 *     returned on 2026-10-30 (not a dropout); CTB03 is at home_visit (suspected).
 * School CT02 (junior): CTC (grade 7), CTC01..CTC10, nothing happening.
 * The clock stands at 2026-11-27 18:00. */

static void write_registry(const char *dir)
{
    itest_write_file(dir, "counties.csv", "code,name\n990002,案例县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990002100,990002,案例镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "ct-cal,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "CT01,案例小学,990002100,primary,ct-cal\n"
                     "CT02,案例中学,990002100,junior,ct-cal\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\n"
                     "CTA,CT01,3,三年级1班,\nCTB,CT01,4,四年级1班,\nCTC,CT02,7,七年级1班,\n");
    bx_buf s;
    bx_buf_init(&s, 0);
    REQUIRE(bx_buf_puts(&s, "student_id,school_id,class_id,name,national_id,status,enrolled_on,"
                            "flags\n") == BX_OK);
    for (int i = 1; i <= 81; i++)
        REQUIRE(bx_buf_printf(&s, "CTA%02d,CT01,CTA,甲%d,,%s,%s,\n", i, i,
                              i >= 78 && i <= 80 ? "transferred_out" : "enrolled",
                              i == 81 ? "2026-10-12" : "2025-09-01") == BX_OK);
    for (int i = 1; i <= 50; i++)
        REQUIRE(bx_buf_printf(&s, "CTB%02d,CT01,CTB,%s,%s,%s,2025-09-01,%s\n", i,
                              i == 1 ? "张三" : "乙", i == 1 ? "11010519491231002X" : "",
                              i == 1   ? "dropped_out"
                              : i == 2 ? "returned"
                                       : "enrolled",
                              i == 1 ? "left_behind" : "") == BX_OK);
    for (int i = 1; i <= 10; i++)
        REQUIRE(bx_buf_printf(&s, "CTC%02d,CT02,CTC,丙%d,,enrolled,2025-09-01,\n", i, i) == BX_OK);
    itest_write_file(dir, "students.csv", s.data);
    bx_buf_free(&s);
    itest_write_file(dir, "guardians.csv",
                     "student_id,name,relation,phone,address,is_primary\n"
                     "CTB01,张父,father,13912345678,某村,true\n");
}

static long long insert_case(PGconn *db, const char *student, const char *school,
                             const char *opened, const char *stage, const char *closed,
                             const char *ending)
{
    const char *params[] = {student, school, opened, stage, closed, ending};
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(
        db,
        "INSERT INTO cases.case (student_id, school_id, opened_at, stage, updated_at, closed_at, "
        "ending) VALUES ($1, $2, $3::timestamptz, NULLIF($4, ''), coalesce(NULLIF($5, ''), "
        "$3::text)"
        "::timestamptz, NULLIF($5, '')::timestamptz, NULLIF($6, '')) RETURNING id",
        6, params, &res, &err);
    if (s != BX_OK)
        fprintf(stderr, "insert case %s: %s\n", student, err.msg);
    REQUIRE(s == BX_OK);
    long long id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return id;
}

static void insert_event(PGconn *db, long long case_id, int seq, const char *kind,
                         const char *stage, const char *actor, const char *reason, bool late,
                         const char *at)
{
    char id[32], event_id[64];
    snprintf(id, sizeof(id), "%lld", case_id);
    snprintf(event_id, sizeof(event_id), "ct:%lld:e%d", case_id, seq);
    const char *params[] = {id, event_id, kind, stage, actor, reason, late ? "true" : "false", at};
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(db,
                              "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, "
                              "reason, late, occurred_at) VALUES ($1::bigint, $2, $3, "
                              "NULLIF($4, ''), $5, $6, $7::boolean, $8::timestamptz)",
                              8, params, &res, &err);
    if (s != BX_OK)
        fprintf(stderr, "insert event %s: %s\n", event_id, err.msg);
    REQUIRE(s == BX_OK);
    PQclear(res);
}

static void insert_task(PGconn *db, long long case_id, const char *kind, const char *stage,
                        const char *role, const char *staff, const char *created, const char *due,
                        const char *done)
{
    char id[32], key[96];
    snprintf(id, sizeof(id), "%lld", case_id);
    snprintf(key, sizeof(key), "ct:%lld:%s:%s", case_id, stage, kind);
    const char *params[] = {id, key, kind, stage, role, staff, created, due, done};
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(
        db,
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, owner_staff_id, "
        "created_at, due_at, done_at) VALUES ($1::bigint, $2, $3, $4, $5, NULLIF($6, ''), "
        "$7::timestamptz, $8::timestamptz, NULLIF($9, '')::timestamptz)",
        9, params, &res, &err);
    if (s != BX_OK)
        fprintf(stderr, "insert task %s: %s\n", key, err.msg);
    REQUIRE(s == BX_OK);
    PQclear(res);
}

static void insert_cases(PGconn *db)
{
    for (int i = 78; i <= 80; i++) {
        char student[16];
        snprintf(student, sizeof(student), "CTA%02d", i);
        long long c = insert_case(db, student, "CT01", "2026-10-20 09:00+08", "",
                                  "2026-11-03 10:00+08", "transferred");
        insert_event(db, c, 1, "opened", "", "bx-escalate", "transfer_out", false,
                     "2026-10-20 09:00+08");
        insert_task(db, c, "transfer_confirmation", "case", "academic_office", "",
                    "2026-10-20 09:00+08", "2026-11-03 17:00+08", "2026-11-03 10:00+08");
        insert_event(db, c, 2, "closed", "", "bx-escalate", "transfer_confirmed", false,
                     "2026-11-03 10:00+08");
    }

    long long b1 =
        insert_case(db, "CTB01", "CT01", "2026-10-08 08:30+08", "dropout_roster", "", "");
    insert_event(db, b1, 1, "opened", "contact_family", "bx-escalate", "streak 1", false,
                 "2026-10-08 08:30+08");
    insert_event(db, b1, 2, "stage_entered", "contact_family", "bx-escalate", "streak 1", false,
                 "2026-10-08 08:30+08");
    insert_event(db, b1, 3, "task_done", "contact_family", "T01",
                 "家长电话 13912345678 说孩子去打工", false, "2026-10-08 15:00+08");
    insert_event(db, b1, 4, "stage_entered", "school_report", "bx-escalate", "streak 3", false,
                 "2026-10-12 08:30+08");
    insert_event(db, b1, 5, "stage_entered", "dropout_roster", "bx-escalate", "streak 6", false,
                 "2026-10-16 08:30+08");
    insert_task(db, b1, "county_report", "dropout_roster", "county_officer", "CO1",
                "2026-10-16 08:30+08", "2026-10-20 17:00+08", "");
    insert_task(db, b1, "persuasion_record", "dropout_roster", "homeroom_teacher", "T01",
                "2026-11-16 08:30+08", "2026-12-16 17:00+08", "");
    insert_event(db, b1, 6, "task_overdue", "dropout_roster", "bx-escalate", "county_report", true,
                 "2026-10-20 17:00+08");

    long long b2 = insert_case(db, "CTB02", "CT01", "2026-10-08 08:30+08", "dropout_roster",
                               "2026-10-30 11:00+08", "returned");
    insert_event(db, b2, 1, "opened", "contact_family", "bx-escalate", "streak 1", false,
                 "2026-10-08 08:30+08");
    insert_event(db, b2, 2, "stage_entered", "dropout_roster", "bx-escalate", "streak 6", true,
                 "2026-10-16 08:30+08");
    insert_event(db, b2, 3, "task_done", "dropout_roster", "T01", "劝返成功", false,
                 "2026-10-29 16:00+08");
    insert_event(db, b2, 4, "closed", "dropout_roster", "TO1", "returned:signed", false,
                 "2026-10-30 11:00+08");

    long long b3 = insert_case(db, "CTB03", "CT01", "2026-11-26 08:30+08", "home_visit", "", "");
    insert_event(db, b3, 1, "opened", "contact_family", "bx-escalate", "streak 1", false,
                 "2026-11-26 08:30+08");
    insert_event(db, b3, 2, "stage_entered", "home_visit", "bx-escalate", "streak 2", false,
                 "2026-11-27 08:30+08");
    insert_task(db, b3, "home_visit", "home_visit", "homeroom_teacher", "T01",
                "2026-11-27 08:30+08", "2026-11-30 17:00+08", "");
}

static void setup(void)
{
    if (db_url[0])
        return;
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("ctl"));
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url);
    char *clock = itest_clock_file("2026-11-27 18:00");
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", clock);
    free(clock);

    char *dir = itest_tmpdir("ctl-registry");
    write_registry(dir);
    free(bxctl_ok((const char *[]){"import", "holidays", itest_holidays_csv(), NULL}));
    free(bxctl_ok((const char *[]){"import", "--dir", dir, NULL}));
    free(dir);

    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    exec_ok(db, "BEGIN");
    insert_cases(db);
    exec_ok(db, "COMMIT");
    PQfinish(db);
}

/* The line of out that starts with prefix (caller frees), or NULL. */
static char *line_starting(const char *out, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = out; *p;) {
        size_t len = strcspn(p, "\n");
        if (len >= n && strncmp(p, prefix, n) == 0) {
            char *line = malloc(len + 1);
            memcpy(line, p, len);
            line[len] = '\0';
            return line;
        }
        p += len;
        if (*p)
            p++;
    }
    return NULL;
}

static bool has(const char *out, const char *needle)
{
    return strstr(out, needle) != NULL;
}

/* No national id, phone, flag or (without --names) name in out. */
static void check_private(const char *out, bool names)
{
    CHECK(!has(out, "11010519491231002X"));
    CHECK(!has(out, "13912345678"));
    CHECK(!has(out, "left_behind"));
    CHECK(!has(out, "张父"));
    if (!names)
        CHECK(!has(out, "张三"));
}

/* ---- case list / show ---- */

BX_TEST(case_list_filters)
{
    setup();
    char *out = bxctl_ok((const char *[]){"case", "list", NULL});
    CHECK(has(out, "CTB01") && has(out, "CTB03"));
    CHECK(!has(out, "CTB02") && !has(out, "CTA78")); /* closed cases are not listed */
    CHECK(has(out, "2 open cases"));
    check_private(out, false);
    free(out);

    out = bxctl_ok((const char *[]){"case", "list", "--overdue", NULL});
    CHECK(has(out, "CTB01") && !has(out, "CTB03") && has(out, "1 open case\n"));
    free(out);
    out = bxctl_ok((const char *[]){"case", "list", "--stage", "home_visit", NULL});
    CHECK(!has(out, "CTB01") && has(out, "CTB03"));
    free(out);
    out = bxctl_ok((const char *[]){"case", "list", "--township", "990002100", "--county", "990002",
                                    "--school", "CT01", NULL});
    CHECK(has(out, "2 open cases"));
    free(out);
    out = bxctl_ok((const char *[]){"case", "list", "--county", "990003", NULL});
    CHECK(has(out, "0 open cases"));
    free(out);
    out = bxctl_ok((const char *[]){"case", "list", "--school", "CT02", NULL});
    CHECK(has(out, "0 open cases"));
    free(out);

    out = bxctl_ok((const char *[]){"case", "list", "--json", "--overdue", NULL});
    CHECK(has(out, "\"student_id\":\"CTB01\""));
    CHECK(has(out, "\"stage\":\"dropout_roster\""));
    CHECK(has(out, "\"open_tasks\":2,\"overdue_tasks\":1"));
    CHECK(has(out, "\"next_due\":\"2026-10-20T17:00:00+08:00\""));
    CHECK(!has(out, "\"name\""));
    check_private(out, false);
    free(out);

    out = bxctl_ok((const char *[]){"case", "list", "--names", NULL});
    CHECK(has(out, "张三"));
    check_private(out, true);
    free(out);
    out = bxctl_ok((const char *[]){"case", "list", "--names", "--json", NULL});
    CHECK(has(out, "\"name\":\"张三\""));
    check_private(out, true);
    free(out);

    char *o = NULL;
    CHECK(bxctl(&o, (const char *[]){"case", "list", "--county", "99", NULL}) == 2);
    free(o);
    CHECK(bxctl(&o, (const char *[]){"case", "list", "--stage", "Drop;", NULL}) == 2);
    free(o);
    CHECK(bxctl(&o, (const char *[]){"case", "list", "--bogus", NULL}) == 2);
    free(o);
}

BX_TEST(case_show_history)
{
    setup();
    char *out = bxctl_ok((const char *[]){"case", "show", "CTB01", NULL});
    CHECK(has(out, "stage dropout_roster"));
    CHECK(has(out, "county_report"));
    CHECK(has(out, "owner county_officer CO1, due 2026-10-20 17:00  OVERDUE"));
    CHECK(has(out, "owner homeroom_teacher T01, due 2026-12-16 17:00\n"));
    CHECK(has(out, "2026-10-16 08:30"));
    CHECK(has(out, "task_overdue"));
    CHECK(has(out, "说孩子去打工")); /* the reason is shown ... */
    check_private(out, false);       /* ... with the phone in it masked */
    CHECK(has(out, "***********"));
    /* history in order */
    const char *a = strstr(out, "streak 1"), *b = strstr(out, "streak 6");
    CHECK(a && b && a < b);
    free(out);

    out = bxctl_ok((const char *[]){"case", "show", "CTB01", "--json", NULL});
    CHECK(has(out, "\"stage\":\"dropout_roster\""));
    CHECK(has(out, "\"owner_role\":\"county_officer\",\"owner_staff_id\":\"CO1\","
                   "\"due_at\":\"2026-10-20T17:00:00+08:00\",\"overdue\":true"));
    CHECK(has(out, "\"kind\":\"stage_entered\",\"stage\":\"dropout_roster\""));
    CHECK(has(out, "\"late\":true"));
    check_private(out, false);
    free(out);

    out = bxctl_ok((const char *[]){"case", "show", "CTB02", NULL});
    CHECK(has(out, "closed 2026-10-30 11:00 (returned)"));
    CHECK(has(out, "open tasks: none"));
    free(out);

    out = bxctl_ok((const char *[]){"case", "show", "CTC01", NULL});
    CHECK(has(out, "no case"));
    free(out);
    char *o = NULL;
    CHECK(bxctl(&o, (const char *[]){"case", "show", "NOBODY", NULL}) == 1);
    free(o);
    CHECK(bxctl(&o, (const char *[]){"case", "show", "bad id", NULL}) == 2);
    free(o);
}

/* ---- report ---- */

BX_TEST(report_worked_example)
{
    setup();
    char *out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", NULL});
    /* The seeds' example: 80 at the start, 3 transferred out, 1 in, 78 now: 78 / 78. */
    char *cta = line_starting(out, "class    CTA ");
    CHECK(cta != NULL);
    if (cta) {
        /* level id classes start dropped dropout out in now retention flags */
        char level[16], id[40], dropout[16], retention[16];
        int classes = 0;
        long start = 0, dropped = 0, tout = 0, tin = 0, now = 0;
        CHECK(sscanf(cta, "%15s %39s %d %ld %ld %15s %ld %ld %ld %15s", level, id, &classes, &start,
                     &dropped, dropout, &tout, &tin, &now, retention) == 10);
        CHECK(start == 80 && dropped == 0 && tout == 3 && tin == 1 && now == 78);
        CHECK(strcmp(retention, "100.00%") == 0);
        CHECK(strcmp(dropout, "0.00%") == 0);
        CHECK(!has(cta, "class_fails"));
        free(cta);
    }
    /* CTB: 1 dropout of 50 (the returned one does not count): 2% fails the class. */
    char *ctb = line_starting(out, "class    CTB ");
    CHECK(ctb != NULL);
    if (ctb) {
        CHECK(has(ctb, " 50 ") && has(ctb, "2.00%") && has(ctb, "98.00%"));
        CHECK(has(ctb, "class_fails") && has(ctb, "primary_over_target"));
        free(ctb);
    }
    char *ctc = line_starting(out, "class    CTC ");
    CHECK(ctc != NULL && has(ctc, "100.00%") && !has(ctc, "fails"));
    free(ctc);
    check_private(out, false);
    free(out);

    out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", "--level", "school",
                                    "--format", "csv", NULL});
    CHECK(has(out, "school,CT01,"));
    CHECK(has(out, "school,CT02,"));
    free(out);

    out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", "--level", "county",
                                    "--format", "json", "--county", "990002", NULL});
    CHECK(has(out, "\"period\":{\"term\":\"2026-autumn\"}"));
    CHECK(has(out, "\"level\":\"county\",\"id\":\"990002\""));
    /* 80 + 50 + 10 at the start; 78 + 49 + 10 now; 1 dropout, 3 out, 1 in */
    CHECK(has(out, "\"enrolled_start\":140,\"dropped_out\":1,\"transferred_out\":3,"
                   "\"transferred_in\":1,\"enrolled_now\":137"));
    CHECK(has(out, "\"notes\":["));
    free(out);

    out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", "--format", "json", NULL});
    CHECK(has(out, "\"id\":\"CTA\""));
    CHECK(has(out, "\"retention_rate_pct\":100.00"));
    CHECK(has(out, "\"class_fails\""));
    free(out);
}

BX_TEST(report_month_and_missing_data)
{
    setup();
    /* October: CTB01 and CTB02 went on the roster; CTB02 came back on the 30th; CTA78..80 were
     * still there at the end of October (their transfers were confirmed in November); CTA81 came
     * in. */
    char *out = bxctl_ok((const char *[]){"report", "--month", "2026-10", NULL});
    char *cta = line_starting(out, "class    CTA ");
    CHECK(cta != NULL && has(cta, " 80 ") && has(cta, " 81 "));
    free(cta);
    char *ctb = line_starting(out, "class    CTB ");
    CHECK(ctb != NULL && has(ctb, "2.00%") && has(ctb, "class_fails"));
    free(ctb);
    free(out);
    /* November: the three transfers out; CTB01 was already away at the start. */
    out = bxctl_ok((const char *[]){"report", "--month", "2026-11", NULL});
    cta = line_starting(out, "class    CTA ");
    CHECK(cta != NULL && has(cta, "100.00%"));
    free(cta);
    ctb = line_starting(out, "class    CTB ");
    CHECK(ctb != NULL && has(ctb, " 0.00%") && !has(ctb, "class_fails"));
    free(ctb);
    free(out);

    /* A status with no history dating it is said, not guessed. */
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    exec_ok(db, "UPDATE registry.student SET status = 'dropped_out' WHERE id = 'CTC10'");
    out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", NULL});
    CHECK(has(out, "note: class CTC (school CT02): 1 students whose status is dropped_out"));
    char *ctc = line_starting(out, "class    CTC ");
    CHECK(ctc != NULL && has(ctc, " 9 "));
    free(ctc);
    free(out);
    exec_ok(db, "UPDATE registry.student SET status = 'enrolled' WHERE id = 'CTC10'");
    PQfinish(db);

    char *o = NULL;
    CHECK(bxctl(&o, (const char *[]){"report", "--term", "2030-spring", NULL}) == 1);
    CHECK(has(o, "has no term 2030-spring"));
    free(o);
    CHECK(bxctl(&o, (const char *[]){"report", "--month", "2026-13", NULL}) == 2);
    free(o);
    CHECK(bxctl(&o, (const char *[]){"report", "--month", "2026-10", "--term", "x", NULL}) == 2);
    free(o);
    CHECK(bxctl(&o, (const char *[]){"report", "--term", "2026-autumn", "--level", "galaxy",
                                     NULL}) == 2);
    free(o);
    /* a month that has not begun */
    CHECK(bxctl(&o, (const char *[]){"report", "--month", "2027-03", NULL}) == 1);
    CHECK(has(o, "has not begun"));
    free(o);
}

/* Roll calls of a class on every school day of the autumn term's calendar from 09-01 to 11-27
 * (the clock's today) but the days in skip (a SQL list of dates), by the national holidays and
 * make-up days, plus a Saturday that counts nothing. */
static void rollcalls(PGconn *db, const char *klass, const char *school, const char *skip)
{
    char sql[1400];
    snprintf(sql, sizeof(sql),
             "INSERT INTO attendance.class_report (class_id, day, period, school_id, order_key, "
             "value) SELECT '%s', d::date, 0, '%s', 'k', '1' FROM generate_series(date "
             "'2026-09-01', date '2026-11-27', interval '1 day') d WHERE ((extract(isodow FROM d) "
             "< 6 AND d::date NOT IN (SELECT day FROM registry.calendar_day WHERE kind = "
             "'holiday')) OR d::date IN (SELECT day FROM registry.calendar_day WHERE kind = "
             "'makeup_workday')) AND d::date NOT IN (%s); INSERT INTO attendance.class_report "
             "VALUES ('%s', '2026-11-07', 0, '%s', 'k', '1')",
             klass, school, skip, klass, school);
    exec_ok(db, sql);
}

/* The roll-call reporting rate (issue 15): the school days of the period by the school's
 * calendar that are over (and today once reported), those with a roll call; a class under 90% is
 * flagged and named in a note. 60 school days from 09-01 to 11-27: September 22 (make-up Sunday
 * 09-20, Mid-Autumn 09-25), October 18 (National Day, make-up Saturday 10-10), November 20. */
BX_TEST(report_rollcall_rate)
{
    setup();
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    rollcalls(db, "CTA", "CT01", "date '2000-01-01'");
    /* two school weeks without a roll call, 10-12 to 10-23: 50 of 60 */
    rollcalls(db, "CTB", "CT01",
              "SELECT generate_series(date '2026-10-12', date '2026-10-23', interval '1 day')");
    /* two days of November: 58 of 60, and 18 of November's 20 (90%: not flagged) */
    rollcalls(db, "CTC", "CT02", "date '2026-11-10', date '2026-11-11'");
    PQfinish(db);

    char *out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", NULL});
    CHECK(has(out, "roll calls 90% of the school days"));
    char *cta = line_starting(out, "class    CTA ");
    CHECK(cta != NULL && has(cta, " 100.00% ") && !has(cta, "rollcall_incomplete"));
    free(cta);
    char *ctb = line_starting(out, "class    CTB ");
    CHECK(ctb != NULL && has(ctb, " 83.33% ") && has(ctb, "rollcall_incomplete"));
    free(ctb);
    char *ctc = line_starting(out, "class    CTC ");
    CHECK(ctc != NULL && has(ctc, " 96.67% ") && !has(ctc, "rollcall_incomplete"));
    free(ctc);
    CHECK(has(out, "note: class CTB (school CT01): roll calls on 50 of 60 school days (83.33%), "
                   "under 90%: its absence figures cannot be trusted"));
    CHECK(!has(out, "note: class CTA") && !has(out, "note: class CTC (school CT02): roll calls"));
    free(out);

    /* by school, CSV: CT01 has 110 of 120 class-days and one class under 90% */
    out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", "--level", "school",
                                    "--format", "csv", NULL});
    CHECK(has(out, ",rollcall_days_due,rollcall_days_reported,rollcall_rate,"
                   "rollcall_incomplete_classes,flags\r\n"));
    char *ct01 = line_starting(out, "school,CT01,");
    CHECK(ct01 != NULL && has(ct01, ",120,110,91.67%,1,"));
    free(ct01);
    char *ct02 = line_starting(out, "school,CT02,");
    CHECK(ct02 != NULL && has(ct02, ",60,58,96.67%,0,"));
    free(ct02);
    free(out);

    /* November alone, JSON: CTC's 18 of 20 is exactly 90%, not flagged */
    out = bxctl_ok((const char *[]){"report", "--month", "2026-11", "--format", "json", NULL});
    CHECK(has(out, "\"rollcall\":{\"days_due\":20,\"days_reported\":18,\"rate_pct\":90.00,"
                   "\"incomplete_classes\":0},\"flags\":[]}"));
    CHECK(has(out, "\"rollcall\":{\"days_due\":20,\"days_reported\":20,\"rate_pct\":100.00,"));
    free(out);

    /* the city (the county code's first 4 digits) sums its counties */
    out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", "--level", "city", NULL});
    char *city = line_starting(out, "city     9900 ");
    CHECK(city != NULL && has(city, " 93.33% "));
    free(city);
    free(out);
    /* the province's figure is the sum of the class-days */
    out = bxctl_ok((const char *[]){"report", "--term", "2026-autumn", "--level", "province",
                                    "--format", "json", NULL});
    CHECK(has(out, "\"level\":\"province\",\"id\":\"99\""));
    CHECK(has(out, "\"rollcall\":{\"days_due\":180,\"days_reported\":168,\"rate_pct\":93.33,"
                   "\"incomplete_classes\":1}"));
    free(out);
}

/* ---- ledger ---- */

BX_TEST(ledger_lists)
{
    setup();
    char *out = bxctl_ok((const char *[]){"ledger", "--county", "990002", NULL});
    const char *sus = strstr(out, "suspected dropouts (疑似辍学): 1");
    const char *drop = strstr(out, "dropouts (辍学): 1");
    const char *ret = strstr(out, "returned children (复学): 1");
    CHECK(sus && drop && ret && sus < drop && drop < ret);
    if (sus && drop && ret) {
        const char *b3 = strstr(out, "CTB03"), *b1 = strstr(out, "CTB01"),
                   *b2 = strstr(out, "CTB02");
        CHECK(b3 && b3 > sus && b3 < drop);
        CHECK(b1 && b1 > drop && b1 < ret);
        CHECK(b2 && b2 > ret);
    }
    CHECK(has(out, "on roster 2026-10-16 08:30"));
    CHECK(has(out, "returned 2026-10-30 11:00"));
    CHECK(has(out, "劝返成功"));
    CHECK(!has(out, "task_created"));
    CHECK(!has(out, "CTA78")); /* transfers are not on the ledger */
    check_private(out, false);
    free(out);

    out = bxctl_ok((const char *[]){"ledger", "--kind", "dropout", "--json", NULL});
    CHECK(has(out, "\"dropout\":[{\"case_id\":"));
    CHECK(!has(out, "\"suspected\"") && !has(out, "\"returned\":["));
    CHECK(has(out, "\"student_id\":\"CTB01\""));
    CHECK(has(out, "\"on_roster_at\":\"2026-10-16T08:30:00+08:00\""));
    CHECK(has(out, "\"kind\":\"task_overdue\""));
    check_private(out, false);
    free(out);

    out = bxctl_ok((const char *[]){"ledger", "--names", "--json", NULL});
    CHECK(has(out, "\"name\":\"张三\""));
    check_private(out, true);
    free(out);

    out = bxctl_ok((const char *[]){"ledger", "--county", "990003", NULL});
    CHECK(has(out, "suspected dropouts (疑似辍学): 0"));
    free(out);
    char *o = NULL;
    CHECK(bxctl(&o, (const char *[]){"ledger", "--kind", "all", NULL}) == 2);
    free(o);
}
