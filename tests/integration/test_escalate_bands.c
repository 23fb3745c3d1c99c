/* The analysts' bands read from the counts migration 0032 keeps (analytics.band_count), against
 * the counting of migration 0027 done afresh, on a registry that changes: upserts as bxctl import
 * writes them, status changes, a student moved to another class, school or band, a class's grade
 * changed, a sex recorded, changed and erased, a student deleted. After every change the counts
 * equal a fresh count of the registry and analytics.student_bands_of, student_bands included,
 * answers as 0027's query does. Its own database. */
#include "bx_itest.h"
#include "bx_test.h"

#include <libpq-fe.h>
#include <stdbool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char db_url[512];

/* Every student of the fixture, one asked twice (answered once) and one not in the registry. */
#define IDS "ARRAY(SELECT id FROM registry.student) || ARRAY['BA01', 'NOBODY']"

/* Migration 0027's analytics.student_bands_of, counting the schools' students afresh: of the
 * students me_where picks, with the cells of the schools cells_where picks. */
#define AFRESH(me_where, cells_where)                                                              \
    "WITH me AS (SELECT st.id, st.school_id, ((cl.grade - 1) / 3) AS band, sp.sex "                \
    "  FROM registry.student st JOIN registry.class cl ON cl.id = st.class_id "                    \
    "  LEFT JOIN registry.student_private sp ON sp.student_id = st.id " me_where "), "             \
    "cells AS (SELECT st.school_id, ((cl.grade - 1) / 3) AS band, sp.sex, count(*) AS n "          \
    "  FROM registry.student st JOIN registry.class cl ON cl.id = st.class_id "                    \
    "  LEFT JOIN registry.student_private sp ON sp.student_id = st.id "                            \
    "  WHERE st.status = 'enrolled' " cells_where " GROUP BY 1, 2, 3), "                           \
    "bands AS (SELECT cells.school_id, cells.band, sum(cells.n) AS in_band FROM cells "            \
    "  GROUP BY 1, 2) "                                                                            \
    "SELECT me.id, CASE WHEN coalesce(b.in_band, 0) >= 5 THEN (ARRAY['grades_1_3', "               \
    "  'grades_4_6', 'grades_7_9'])[me.band + 1] END, "                                            \
    "  CASE WHEN coalesce(b.in_band, 0) >= 5 AND coalesce(x.n, 0) >= 5 AND me.sex IS NOT NULL "    \
    "  THEN CASE me.sex WHEN 'F' THEN 'female' ELSE 'male' END END "                               \
    "FROM me LEFT JOIN bands b ON b.school_id = me.school_id AND b.band = me.band "                \
    "LEFT JOIN cells x ON x.school_id = me.school_id AND x.band = me.band AND x.sex = me.sex "     \
    "ORDER BY 1, 2, 3"

/* the students asked, with their schools' cells */
static const char *const counted_afresh =
    AFRESH("WHERE st.id = ANY (" IDS ")", "AND st.school_id IN (SELECT DISTINCT me.school_id "
                                          "FROM me)");

static const char *const looked_up =
    "SELECT * FROM analytics.student_bands_of(" IDS ") ORDER BY 1, 2, 3";

/* One by one: the same rows for every student in the registry. */
static const char *const one_by_one = "SELECT st.id, b.grade_band, b.sex FROM registry.student st, "
                                      "LATERAL analytics.student_bands(st.id) b ORDER BY 1, 2, 3";
static const char *const one_by_one_afresh = AFRESH("", "");

static const char *const counts_kept = "SELECT school_id, band, sex, enrolled FROM "
                                       "analytics.band_count WHERE enrolled > 0 ORDER BY 1, 2, 3";
static const char *const counts_afresh =
    "SELECT st.school_id, (cl.grade - 1) / 3, coalesce(sp.sex, ''), count(*) "
    "FROM registry.student st JOIN registry.class cl ON cl.id = st.class_id "
    "LEFT JOIN registry.student_private sp ON sp.student_id = st.id "
    "WHERE st.status = 'enrolled' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

/* The kept counts and both functions agree with counting afresh; returns the shown bands and
 * sexes of the lookup (so a fixture that shows nothing cannot pass unnoticed). */
static void agree(const char *after, int *bands_shown, int *sexes_shown)
{
    char *kept = itest_sql_rows(db_url, counts_kept);
    char *fresh = itest_sql_rows(db_url, counts_afresh);
    if (strcmp(kept, fresh) != 0)
        fprintf(stderr, "after %s: counts differ\n", after);
    CHECK_STR(kept, fresh);
    char *got = itest_sql_rows(db_url, looked_up);
    char *want = itest_sql_rows(db_url, counted_afresh);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "after %s: bands differ\n", after);
    CHECK_STR(got, want);
    char *one = itest_sql_rows(db_url, one_by_one);
    char *one_want = itest_sql_rows(db_url, one_by_one_afresh);
    CHECK_STR(one, one_want);
    *bands_shown = *sexes_shown = 0;
    for (const char *line = got; *line;) {
        size_t len = strcspn(line, "\n");
        const char *bar = memchr(line, '|', len);
        const char *bar2 = bar ? memchr(bar + 1, '|', len - (size_t)(bar + 1 - line)) : NULL;
        if (bar && bar2) {
            *bands_shown += bar2 > bar + 1;
            *sexes_shown += line + len > bar2 + 1;
        }
        line += len + (line[len] == '\n');
    }
    free(kept);
    free(fresh);
    free(got);
    free(want);
    free(one);
    free(one_want);
}

/* bxctl import's upserts (tools/bxctl/import.c) of the students in rows (VALUES lists). */
static void import_students(const char *students, const char *privates)
{
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "INSERT INTO registry.student (id, school_id, class_id, status) SELECT * FROM (VALUES "
             "%s) v ON CONFLICT (id) DO UPDATE SET school_id = EXCLUDED.school_id, class_id = "
             "EXCLUDED.class_id, status = EXCLUDED.status;"
             "INSERT INTO registry.student_private (student_id, name, sex) SELECT v.column1, 'x', "
             "v.column2 FROM (VALUES %s) v ON CONFLICT (student_id) DO UPDATE SET name = "
             "EXCLUDED.name, sex = EXCLUDED.sex",
             students, privates);
    itest_sql_exec(db_url, sql);
}

BX_TEST(band_counts_follow_the_registry_and_agree_with_counting_afresh)
{
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("bands"));
    itest_sql_exec(
        db_url, "INSERT INTO registry.county (code, name) VALUES ('990272', 'Bands county');"
                "INSERT INTO registry.township (code, county_code, name) VALUES "
                "('990272001', '990272', 'Bands township');"
                "INSERT INTO registry.calendar (id, name) VALUES ('bands-cal', 'Bands');"
                "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) VALUES "
                "('BS1', 'One', '990272001', 'primary', 'bands-cal'),"
                "('BS2', 'Two', '990272001', 'nine_year', 'bands-cal');"
                "INSERT INTO registry.class (id, school_id, grade, name) VALUES "
                "('BC1', 'BS1', 2, 'g2'), ('BC2', 'BS1', 5, 'g5'), ('BC3', 'BS2', 8, 'g8'),"
                "('BC4', 'BS2', 3, 'g3');");
    int bands = 0, sexes = 0;
    agree("an empty registry", &bands, &sexes);
    CHECK_INT(bands, 0);
    /* school 1 grades 1-3: 6 F, 4 M; grades 4-6: 4 F; school 2 grades 7-9: 5 M and 2 without a
     * sex, grades 1-3: 3 */
    import_students("('BA01','BS1','BC1','enrolled'),('BA02','BS1','BC1','enrolled'),"
                    "('BA03','BS1','BC1','enrolled'),('BA04','BS1','BC1','enrolled'),"
                    "('BA05','BS1','BC1','enrolled'),('BA06','BS1','BC1','enrolled'),"
                    "('BA07','BS1','BC1','enrolled'),('BA08','BS1','BC1','enrolled'),"
                    "('BA09','BS1','BC1','enrolled'),('BA10','BS1','BC1','enrolled'),"
                    "('BB01','BS1','BC2','enrolled'),('BB02','BS1','BC2','enrolled'),"
                    "('BB03','BS1','BC2','enrolled'),('BB04','BS1','BC2','enrolled'),"
                    "('BC01','BS2','BC3','enrolled'),('BC02','BS2','BC3','enrolled'),"
                    "('BC03','BS2','BC3','enrolled'),('BC04','BS2','BC3','enrolled'),"
                    "('BC05','BS2','BC3','enrolled'),('BC06','BS2','BC3','enrolled'),"
                    "('BC07','BS2','BC3','enrolled'),('BD01','BS2','BC4','enrolled'),"
                    "('BD02','BS2','BC4','enrolled'),('BD03','BS2','BC4','enrolled')",
                    "('BA01','F'),('BA02','F'),('BA03','F'),('BA04','F'),('BA05','F'),"
                    "('BA06','F'),('BA07','M'),('BA08','M'),('BA09','M'),('BA10','M'),"
                    "('BB01','F'),('BB02','F'),('BB03','F'),('BB04','F'),"
                    "('BC01','M'),('BC02','M'),('BC03','M'),('BC04','M'),('BC05','M'),"
                    "('BC06',NULL),('BC07',NULL),('BD01','F'),('BD02','F'),('BD03','M')");
    agree("the first import", &bands, &sexes);
    CHECK_INT(bands, 10 + 7); /* BS1 grades 1-3, BS2 grades 7-9 */
    CHECK_INT(sexes, 6 + 5);
    /* the same import again: nothing moves */
    import_students("('BA01','BS1','BC1','enrolled'),('BC06','BS2','BC3','enrolled')",
                    "('BA01','F'),('BC06',NULL)");
    agree("the same rows imported again", &bands, &sexes);
    CHECK_INT(sexes, 11);
    /* a 5th girl of grades 4-6 through an import that also changes a status */
    import_students("('BB05','BS1','BC2','enrolled'),('BC05','BS2','BC3','dropped_out')",
                    "('BB05','F'),('BC05','M')");
    agree("an import with a new student and a dropout", &bands, &sexes);
    CHECK_INT(bands, 10 + 5 + 7); /* BC05 keeps its band: its school's cell is of 6 enrolled */
    CHECK_INT(sexes, 6 + 5);      /* BS1's 5 girls of grades 4-6; BS2's boys are 4 enrolled now */
    /* status changes outside an import, and back */
    itest_sql_exec(db_url, "UPDATE registry.student SET status = 'transferred_out' WHERE id IN "
                           "('BA01', 'BA02')");
    agree("two transferred out", &bands, &sexes);
    itest_sql_exec(db_url, "UPDATE registry.student SET status = 'enrolled' WHERE id = 'BA02'");
    agree("one back", &bands, &sexes);
    /* moved: to the other band of the school, to the other school */
    itest_sql_exec(db_url, "UPDATE registry.student SET class_id = 'BC2' WHERE id = 'BA07';"
                           "UPDATE registry.student SET school_id = 'BS2', class_id = 'BC4' "
                           "WHERE id IN ('BA08', 'BA09')");
    agree("students moved", &bands, &sexes);
    /* a class's grade changed: its students change band */
    itest_sql_exec(db_url, "UPDATE registry.class SET grade = 4 WHERE id = 'BC4'");
    agree("a class's grade changed", &bands, &sexes);
    itest_sql_exec(db_url, "UPDATE registry.class SET name = 'renamed' WHERE id = 'BC1'");
    agree("a class renamed", &bands, &sexes);
    /* the sex recorded, changed, erased (a private row deleted) */
    itest_sql_exec(db_url, "UPDATE registry.student_private SET sex = 'M' WHERE student_id IN "
                           "('BC06', 'BC07');"
                           "UPDATE registry.student_private SET sex = 'F' WHERE student_id = "
                           "'BA10';"
                           "DELETE FROM registry.student_private WHERE student_id = 'BB01'");
    agree("sexes changed", &bands, &sexes);
    /* a student deleted (its private row goes with it) and one without a private row yet */
    itest_sql_exec(db_url, "DELETE FROM registry.student WHERE id IN ('BA03', 'BC01');"
                           "INSERT INTO registry.student (id, school_id, class_id) VALUES "
                           "('BE01', 'BS1', 'BC1')");
    agree("students deleted and added", &bands, &sexes);
    itest_sql_exec(db_url, "INSERT INTO registry.student_private (student_id, name, sex) VALUES "
                           "('BE01', 'x', 'M')");
    agree("a private row added later", &bands, &sexes);
    CHECK(bands > 0);
    CHECK(sexes > 0);
    /* the counts are the registry's, however the rows came: none is negative, none stale */
    char *cells = itest_sql_rows(db_url, "SELECT count(*) FROM analytics.band_count WHERE "
                                         "enrolled < 0");
    CHECK_STR(cells, "0\n");
    free(cells);
    /* bx-escalate's role may call the lookup and read no count itself */
    char *grants = itest_sql_rows(
        db_url, "SELECT has_function_privilege('bx_escalate', "
                "'analytics.student_bands_of(text[])', 'EXECUTE'), has_table_privilege("
                "'bx_escalate', 'analytics.band_count', 'SELECT'), has_table_privilege("
                "'bx_escalate', 'analytics.band_member', 'SELECT')");
    CHECK_STR(grants, "t|f|f\n");
    free(grants);
}

/* ---- bxctl import defers the counts and syncs them once (migration 0034) ---- */

static void bxctl_import_dir(const char *dir)
{
    char env_url[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url);
    const char *env[] = {env_url, NULL};
    const char *argv[] = {itest_env("BXCTL_BIN", BXCTL_BIN), "import", "--dir", dir, NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run(argv, env, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl import: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
}

/* The kept counts equal a fresh count, the bands agree, and nothing is left noted. */
static void agree_after_import(const char *after, int *bands, int *sexes)
{
    agree(after, bands, sexes);
    char *pending = itest_sql_rows(db_url, "SELECT count(*) FROM analytics.band_pending");
    CHECK_STR(pending, "0\n");
    free(pending);
}

/* students.csv: 12 students in each class of IC1a (IS1, grade 2), IC2a (IS1, grade 5), IC3a
 * (IS2, grade 8), IC4a (IS2, grade 3): every fourth without a sex, 6 girls, 3 boys; with
 * changes: two sexes changed, one dropped out, one moved to IS1 and another band, one new. */
static void write_students(const char *dir, bool changes)
{
    static const char *const classes[] = {"IC1a", "IC2a", "IC3a", "IC4a"};
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "student_id,school_id,class_id,name,sex,status\n") == BX_OK);
    for (int c = 0; c < 4; c++)
        for (int k = 1; k <= 12; k++) {
            const char *school = c < 2 ? "IS1" : "IS2", *klass = classes[c];
            const char *sex = k % 4 == 0 ? "" : (k % 2 ? "F" : "M"), *status = "enrolled";
            if (changes && c == 0 && k == 1)
                sex = "M";
            if (changes && c == 0 && k == 4)
                sex = "F";
            if (changes && c == 1 && k == 2)
                status = "dropped_out";
            if (changes && c == 2 && k == 4) {
                school = "IS1";
                klass = "IC1a";
            }
            REQUIRE(bx_buf_printf(&b, "IM%d-%02d,%s,%s,x,%s,%s\n", c, k, school, klass, sex,
                                  status) == BX_OK);
        }
    if (changes)
        REQUIRE(bx_buf_puts(&b, "IMNEW-01,IS1,IC2a,x,F,enrolled\n") == BX_OK);
    itest_write_file(dir, "students.csv", b.data);
    bx_buf_free(&b);
}

/* The rows of the last statement of sql, run on a connection of its own in one string (so one
 * transaction when sql begins one; the connection's end rolls back what is not committed). */
static char *rows_of_script(const char *sql)
{
    PGconn *db = PQconnectdb(db_url);
    REQUIRE(PQstatus(db) == CONNECTION_OK);
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fprintf(stderr, "script: %s\n", PQerrorMessage(db));
    REQUIRE(PQresultStatus(res) == PGRES_TUPLES_OK);
    bx_buf out;
    bx_buf_init(&out, 0);
    REQUIRE(bx_buf_puts(&out, "") == BX_OK);
    for (int r = 0; r < PQntuples(res); r++)
        for (int c = 0; c < PQnfields(res); c++)
            REQUIRE(bx_buf_printf(&out, "%s%s", PQgetvalue(res, r, c),
                                  c + 1 < PQnfields(res) ? "|" : "\n") == BX_OK);
    PQclear(res);
    PQfinish(db);
    return bx_buf_steal(&out);
}

/* A registry imported by bxctl import (a first import, then one that changes students, sexes,
 * statuses and a class's grade, then the same files again) keeps counts equal to a fresh count,
 * with nothing left noted; inside an import's transaction (bx.band_counts = 'deferred') a write
 * only notes its students and band_sync_deferred() syncs each of them once; outside one the
 * triggers sync in the statement as before. */
BX_TEST(an_import_syncs_the_band_counts_once_and_they_agree_with_counting_afresh)
{
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("bandsimport"));
    char *dir = itest_tmpdir("bands-import");
    itest_write_file(dir, "counties.csv", "code,name\n990273,导入县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990273001,990273,导入镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "im-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "IS1,导入一小,990273001,primary,im-2026\n"
                     "IS2,导入二中,990273001,nine_year,im-2026\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\n"
                     "IC1a,IS1,2,二年级,\nIC2a,IS1,5,五年级,\nIC3a,IS2,8,八年级,\n"
                     "IC4a,IS2,3,三年级,\n");
    write_students(dir, false);
    int bands = 0, sexes = 0;
    bxctl_import_dir(dir);
    agree_after_import("bxctl's first import", &bands, &sexes);
    CHECK_INT(bands, 48);
    CHECK(sexes > 0);
    char *cells = itest_sql_rows(db_url, "SELECT sum(enrolled) FROM analytics.band_count");
    CHECK_STR(cells, "48\n");
    free(cells);
    write_students(dir, true);
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\n"
                     "IC1a,IS1,2,二年级,\nIC2a,IS1,5,五年级,\nIC3a,IS2,8,八年级,\n"
                     "IC4a,IS2,7,七年级,\n");
    bxctl_import_dir(dir);
    agree_after_import("a re-import with changes", &bands, &sexes);
    cells = itest_sql_rows(db_url, "SELECT sum(enrolled) FROM analytics.band_count WHERE "
                                   "school_id = 'IS2' AND band = 2");
    CHECK_STR(cells, "23\n"); /* IC3a less the one moved, and IC4a now grade 7 */
    free(cells);
    bxctl_import_dir(dir);
    agree_after_import("the same files again", &bands, &sexes);
    free(dir);
    /* deferred: the write is noted, not counted, until band_sync_deferred(); rolled back */
    char *deferred = rows_of_script(
        "BEGIN;"
        "SELECT set_config('bx.band_counts', 'deferred', true);"
        "UPDATE registry.student SET status = 'transferred_out' WHERE id = 'IMNEW-01';"
        "CREATE TEMP TABLE seen ON COMMIT DROP AS SELECT (SELECT count(*) FROM "
        "analytics.band_pending) AS noted, (SELECT sum(enrolled) FROM analytics.band_count) "
        "AS before_sync, analytics.band_sync_deferred() AS synced;"
        "INSERT INTO seen SELECT 0, sum(enrolled), 0 FROM analytics.band_count;"
        "SELECT noted, before_sync, synced FROM seen ORDER BY noted DESC;");
    CHECK_STR(deferred, "1|48|1\n0|47|0\n");
    free(deferred);
    agree_after_import("a deferred write rolled back", &bands, &sexes);
    /* not deferred: counted in the statement */
    itest_sql_exec(db_url, "UPDATE registry.student SET status = 'transferred_out' WHERE id = "
                           "'IMNEW-01'");
    agree_after_import("a write outside an import", &bands, &sexes);
    cells = itest_sql_rows(db_url, "SELECT sum(enrolled) FROM analytics.band_count");
    CHECK_STR(cells, "47\n");
    free(cells);
}
