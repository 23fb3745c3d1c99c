/* bxctl match: 四查三比对 for a county. The household register's school-age children (bxctl import
 * household) are matched against the registry (学籍: the id number or the national student number
 * G + id) by the rule of bx-escalate's transfers module; the registered-poor list (bxctl import
 * poverty) marks children; the three ledgers (三本台账) are written as one run (matching.run,
 * matching.entry) and printed:
 *   - school-age children, each with its status: enrolled (or suspended, home-delivered), dropout
 *     (on the dropout roster, or dropped out by the registry), out of school (left a school and
 *     enrolled at none), never enrolled, or ambiguous (enrolled at several schools: refused and
 *     reported, never guessed);
 *   - suspected (疑似辍学): never enrolled or out of school. Each becomes a finding
 *     (matching.finding) that bx-escalate, the only writer of cases, opens as a suspected case
 *     for the township with its task to find and enrol the child (ladder.enrol_task). The case's
 *     subject is the child's last registry record at its school, or for a child never enrolled the
 *     household key hh-<county>-<n> at the township's school for the child's age;
 *   - dropouts (辍学): the household's dropouts and every other dropout of the county's schools.
 * Registered-poor children out of school are marked: no child may leave school for poverty. A
 * child a match had found out of school and who is now enrolled gets an "enrolled" finding, which
 * closes the case the match opened. Names only with --names, never id numbers; the enrolment rate
 * (入学率: children in school / school-age children) goes into bxctl report as a note. */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bx_map.h"
#include "bx_pg.h"
#include "bxctl.h"
#include "transfers.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS_MAX 16 /* registry records of one child looked at */

static const char *const statuses[] = {"enrolled", "suspended",     "home_education",
                                       "dropout",  "out_of_school", "never_enrolled",
                                       "ambiguous"};
enum { ST_ENROLLED, ST_SUSPENDED, ST_HOME, ST_DROPOUT, ST_OUT, ST_NEVER, ST_AMBIGUOUS, ST_COUNT };

/* A child of the household list and what the registry says about them. */
typedef struct child {
    int row;      /* in the household result */
    bool poor;    /* registered-poor: the county's list or a record's flag */
    int first, n; /* their records: rows first..first+n-1 of the records result */
    int status;   /* ST_* */
    int record;   /* the record the status is about (matched, or the last left), -1 none */
    char detail[300];
    char subject[64], subject_school[40]; /* a suspected case's subject and school; "" none */
    bool finding;                         /* a finding was written */
} child;

/* Columns of the records result. */
enum { R_HID, R_STUDENT, R_SCHOOL, R_STATUS, R_BY_NUMBER, R_BY_ID, R_CONFLICT, R_ROSTER, R_POOR };

/* What one run works with. */
typedef struct run {
    PGconn *db;
    const char *county;
    bool names, json;
    const char *ledger; /* --ledger: the list printed in full; NULL: suspected and dropout */
    char now[32], today[11], run_id[24];
    bx_date day;
    PGresult *household, *records, *schools, *dropouts;
    child *children;
    int nchildren;
    bx_map *open_cases; /* student id -> school id (a static copy in the result) of open cases */
    bx_map *pending;    /* subjects with a finding bx-escalate has not applied yet */
    int count[ST_COUNT], poor_out, findings, enrolled_findings, extra_dropouts;
} run;

static int usage(void)
{
    fprintf(stderr, "usage: bxctl match --county CODE [--ledger school_age|suspected|dropout] "
                    "[--names] [--json]\n");
    return 2;
}

static bool out_of_school(int st)
{
    return st == ST_DROPOUT || st == ST_OUT || st == ST_NEVER;
}

static bool in_school(int st)
{
    return st == ST_ENROLLED || st == ST_SUSPENDED || st == ST_HOME || st == ST_AMBIGUOUS;
}

/* ---- reading ---- */

static bx_status load(run *r, bx_error *err)
{
    const char *p1[] = {r->county};
    bx_status s = bx_pg_query(
        r->db,
        "SELECT h.id, h.child_key, h.township_code, h.birth_date::text, EXISTS (SELECT 1 FROM "
        "registry.poverty_child v WHERE v.county_code = h.county_code AND v.national_id = "
        "h.national_id), h.name FROM registry.household_child h WHERE h.county_code = $1 "
        "ORDER BY h.id",
        1, p1, &r->household, err);
    /* every record of each child at a school of the province, by id number or G + id number */
    IFOK(s, bx_pg_query(
                r->db,
                "WITH h AS (SELECT id, national_id FROM registry.household_child WHERE "
                "county_code = $1), m AS (SELECT h.id AS hid, h.national_id, p.student_id FROM h "
                "JOIN registry.student_private p ON p.national_id = h.national_id UNION SELECT "
                "h.id, h.national_id, p.student_id FROM h JOIN registry.student_private p ON "
                "p.student_number = 'G' || h.national_id) "
                "SELECT m.hid, s.id, s.school_id, s.status, "
                "coalesce(p.student_number = 'G' || m.national_id, false), "
                "coalesce(p.national_id = m.national_id, false), "
                "(p.national_id IS NOT NULL AND p.national_id <> m.national_id) OR "
                "(p.student_number LIKE 'G%' AND p.student_number <> 'G' || m.national_id), "
                "EXISTS (SELECT 1 FROM cases.case c WHERE c.student_id = s.id AND c.closed_at IS "
                "NULL AND cases.on_roster(c.stage)), 'registered_poor' = ANY (p.flags) "
                "FROM m JOIN registry.student s ON s.id = m.student_id "
                "JOIN registry.student_private p ON p.student_id = s.id "
                "JOIN registry.school sc ON sc.id = s.school_id "
                "WHERE substr(sc.township_code, 1, 2) = substr($1, 1, 2) ORDER BY m.hid, s.id",
                1, p1, &r->records, err));
    IFOK(s, bx_pg_query(r->db,
                        "SELECT id, township_code, stage FROM registry.school WHERE "
                        "substr(township_code, 1, 6) = $1 ORDER BY id",
                        1, p1, &r->schools, err));
    /* the county's dropouts: on the roster, or dropped out by the registry */
    IFOK(s, bx_pg_query(
                r->db,
                "SELECT s.id, s.school_id, sc.township_code, coalesce('registered_poor' = ANY "
                "(p.flags), false), coalesce(p.name, '') FROM registry.student s "
                "JOIN registry.school sc ON sc.id = s.school_id LEFT JOIN "
                "registry.student_private p ON p.student_id = s.id WHERE "
                "substr(sc.township_code, 1, 6) = $1 AND (s.status = 'dropped_out' OR EXISTS "
                "(SELECT 1 FROM cases.case c WHERE c.student_id = s.id AND c.closed_at IS NULL "
                "AND cases.on_roster(c.stage))) ORDER BY s.id",
                1, p1, &r->dropouts, err));
    PGresult *res = NULL;
    IFOK(s, bx_pg_query(r->db,
                        "SELECT student_id, school_id FROM cases.case WHERE closed_at IS NULL "
                        "UNION ALL SELECT '~' || f.student_id, '' FROM matching.finding f WHERE "
                        "f.kind = 'out_of_school' AND NOT EXISTS (SELECT 1 FROM "
                        "cases.finding_applied a WHERE a.finding_id = f.id)",
                        0, NULL, &res, err));
    for (int i = 0; s == BX_OK && res && i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        if (id[0] == '~')
            s = bx_map_put(r->pending, id + 1, (void *)1);
        else
            s = bx_map_put(r->open_cases, id, strdup(PQgetvalue(res, i, 1)));
    }
    PQclear(res);
    return s;
}

/* ---- deciding ---- */

/* The township's school for a child of this birth date: primary up to 11 years old on
 * September 1 of the school year, else junior (a nine-year school takes both); else any school of
 * the township, else of the county. NULL when the county has none. */
static const char *school_for(const run *r, const char *township, const char *birth)
{
    int by = 0, bm = 0, bd = 0, ty = 0, tm = 0, td = 0;
    bx_date b;
    if (bx_date_parse(birth, &b) == BX_OK)
        bx_date_to_ymd(b, &by, &bm, &bd);
    bx_date_to_ymd(r->day, &ty, &tm, &td);
    int year = tm >= 9 ? ty : ty - 1; /* the school year began on September 1 of this year */
    int age = year - by - (bm > 9 || (bm == 9 && bd > 1));
    const char *stage = age <= 11 ? "primary" : "junior";
    const char *any_township = NULL;
    for (int i = 0; i < PQntuples(r->schools); i++) {
        if (strcmp(PQgetvalue(r->schools, i, 1), township) != 0)
            continue;
        const char *st = PQgetvalue(r->schools, i, 2);
        if (strcmp(st, stage) == 0 || strcmp(st, "nine_year") == 0)
            return PQgetvalue(r->schools, i, 0);
        if (any_township == NULL)
            any_township = PQgetvalue(r->schools, i, 0);
    }
    if (any_township)
        return any_township;
    return PQntuples(r->schools) > 0 ? PQgetvalue(r->schools, 0, 0) : NULL;
}

/* The status of child c from their records, by the rule of transfers_decide. */
static void decide(run *r, child *c)
{
    PGresult *rec = r->records;
    transfers_candidate cand[RECORDS_MAX];
    int n = c->n < RECORDS_MAX ? c->n : RECORDS_MAX;
    bool roster = false, dropped = false;
    for (int i = 0; i < n; i++) {
        int row = c->first + i;
        cand[i] =
            (transfers_candidate){.student_id = PQgetvalue(rec, row, R_STUDENT),
                                  .school_id = PQgetvalue(rec, row, R_SCHOOL),
                                  .in_school = transfers_in_school(PQgetvalue(rec, row, R_STATUS)),
                                  .by_number = PQgetvalue(rec, row, R_BY_NUMBER)[0] == 't',
                                  .by_id = PQgetvalue(rec, row, R_BY_ID)[0] == 't',
                                  .conflict = PQgetvalue(rec, row, R_CONFLICT)[0] == 't'};
        c->poor = c->poor || PQgetvalue(rec, row, R_POOR)[0] == 't';
        roster = roster || PQgetvalue(rec, row, R_ROSTER)[0] == 't';
        dropped = dropped || strcmp(PQgetvalue(rec, row, R_STATUS), "dropped_out") == 0;
    }
    transfers_decision d;
    transfers_decide(cand, n, &d);
    c->record = n > 0 ? c->first + n - 1 : -1;
    c->detail[0] = '\0';
    switch (d.verdict) {
    case TRANSFERS_MATCHED: {
        int row = c->first + d.match;
        const char *status = PQgetvalue(rec, row, R_STATUS);
        c->record = row;
        c->status = PQgetvalue(rec, row, R_ROSTER)[0] == 't' ? ST_DROPOUT
                    : strcmp(status, "suspended") == 0       ? ST_SUSPENDED
                    : strcmp(status, "home_education") == 0  ? ST_HOME
                                                             : ST_ENROLLED;
        snprintf(c->detail, sizeof(c->detail), "%s at school %s (matched by %s)",
                 c->status == ST_DROPOUT ? "on the dropout roster" : status,
                 PQgetvalue(rec, row, R_SCHOOL), d.matched_by);
        return;
    }
    case TRANSFERS_AMBIGUOUS:
    case TRANSFERS_CONFLICT: {
        c->status = ST_AMBIGUOUS;
        size_t used = (size_t)snprintf(c->detail, sizeof(c->detail), "%s:",
                                       d.verdict == TRANSFERS_AMBIGUOUS
                                           ? "enrolled at more than one school, refused"
                                           : "student number and id number disagree, refused");
        for (int i = 0; i < n && used < sizeof(c->detail); i++)
            if (cand[i].in_school)
                used += (size_t)snprintf(c->detail + used, sizeof(c->detail) - used, " %s at %s",
                                         cand[i].student_id, cand[i].school_id);
        return;
    }
    case TRANSFERS_NONE:
        break;
    }
    if (n == 0) {
        c->status = ST_NEVER;
        snprintf(c->detail, sizeof(c->detail), "in no school's registry");
    } else if (roster || dropped) {
        c->status = ST_DROPOUT;
        snprintf(c->detail, sizeof(c->detail), "%s at school %s",
                 roster ? "on the dropout roster" : "dropped out",
                 PQgetvalue(rec, c->record, R_SCHOOL));
    } else {
        c->status = ST_OUT;
        snprintf(c->detail, sizeof(c->detail), "left school %s (%s), enrolled at no other",
                 PQgetvalue(rec, c->record, R_SCHOOL), PQgetvalue(rec, c->record, R_STATUS));
    }
}

/* ---- writing ---- */

static bx_status add_finding(run *r, const char *kind, const char *subject, const char *school,
                             const char *township, const char *reason, bx_error *err)
{
    const char *params[] = {r->run_id, kind, subject, school, township, r->today, r->now, reason};
    return bx_pg_command(r->db,
                         "INSERT INTO matching.finding (run_id, kind, student_id, school_id, "
                         "township_code, found_on, found_at, reason) VALUES ($1::bigint, $2, "
                         "$3, $4, $5, $6::date, to_timestamp($7::bigint / 1000.0), $8)",
                         8, params, NULL, err);
}

static bx_status add_entry(run *r, const char *ledger, const char *key, const char *student,
                           const char *school, const char *township, int status, bool poor,
                           const char *subject, const char *detail, bx_error *err)
{
    const char *params[] = {r->run_id,        ledger,           key,     student, school, township,
                            statuses[status], poor ? "t" : "f", subject, detail};
    return bx_pg_command(r->db,
                         "INSERT INTO matching.entry (run_id, ledger, child_key, student_id, "
                         "school_id, township_code, status, registered_poor, case_subject, "
                         "detail) VALUES ($1::bigint, $2, NULLIF($3, ''), NULLIF($4, ''), "
                         "NULLIF($5, ''), NULLIF($6, ''), $7, $8::boolean, NULLIF($9, ''), $10)",
                         10, params, NULL, err);
}

/* The child's suspected case: its subject and school, and a finding unless a case is open or a
 * finding waits already. */
static bx_status suspect(run *r, child *c, bx_error *err)
{
    PGresult *h = r->household;
    const char *township = PQgetvalue(h, c->row, 2);
    char reason[200];
    if (c->status == ST_NEVER) {
        const char *school = school_for(r, township, PQgetvalue(h, c->row, 3));
        if (school == NULL) {
            snprintf(c->detail, sizeof(c->detail),
                     "in no school's registry; county %s has no "
                     "school to follow the case",
                     r->county);
            return BX_OK;
        }
        snprintf(c->subject, sizeof(c->subject), "%s", PQgetvalue(h, c->row, 1));
        snprintf(c->subject_school, sizeof(c->subject_school), "%s", school);
        snprintf(reason, sizeof(reason),
                 "疑似辍学 (四查三比对, run %s): in the household register of township %s, "
                 "enrolled at no school%s",
                 r->run_id, township, c->poor ? "; registered-poor household" : "");
    } else {
        snprintf(c->subject, sizeof(c->subject), "%s",
                 PQgetvalue(r->records, c->record, R_STUDENT));
        snprintf(c->subject_school, sizeof(c->subject_school), "%s",
                 PQgetvalue(r->records, c->record, R_SCHOOL));
        snprintf(reason, sizeof(reason),
                 "疑似辍学 (四查三比对, run %s): left school %s (%s), enrolled at no other%s",
                 r->run_id, c->subject_school, PQgetvalue(r->records, c->record, R_STATUS),
                 c->poor ? "; registered-poor household" : "");
    }
    if (bx_map_get(r->open_cases, c->subject) || bx_map_get(r->pending, c->subject))
        return BX_OK; /* followed already */
    c->finding = true;
    r->findings++;
    return add_finding(r, "out_of_school", c->subject, c->subject_school, township, reason, err);
}

/* A child in school again whose record or household key still has an open case: an "enrolled"
 * finding (bx-escalate closes the case only when a match opened it). */
static bx_status enrolled_again(run *r, child *c, bx_error *err)
{
    PGresult *h = r->household;
    const char *enrolled_at = PQgetvalue(r->records, c->record, R_SCHOOL);
    const char *subjects[RECORDS_MAX + 1];
    int n = 0;
    subjects[n++] = PQgetvalue(h, c->row, 1);
    for (int i = 0; i < c->n && n <= RECORDS_MAX; i++)
        if (c->first + i != c->record)
            subjects[n++] = PQgetvalue(r->records, c->first + i, R_STUDENT);
    bx_status s = BX_OK;
    for (int i = 0; i < n && s == BX_OK; i++) {
        const char *school = bx_map_get(r->open_cases, subjects[i]);
        if (school == NULL)
            continue;
        char reason[200];
        snprintf(reason, sizeof(reason), "四查三比对 (run %s): enrolled at school %s (student %s)",
                 r->run_id, enrolled_at, PQgetvalue(r->records, c->record, R_STUDENT));
        s = add_finding(r, "enrolled", subjects[i], school, PQgetvalue(h, c->row, 2), reason, err);
        r->enrolled_findings++;
    }
    return s;
}

static bx_status write_run(run *r, bx_error *err)
{
    const char *user = getenv("USER");
    char by[65];
    snprintf(by, sizeof(by), "bxctl:%.50s", user && *user ? user : "operator");
    PGresult *res = NULL;
    bx_status s = bx_pg_query(r->db,
                              "INSERT INTO matching.run (county_code, matched_at, matched_by, "
                              "school_age, in_school, never_enrolled, out_of_school, dropouts, "
                              "ambiguous, poor_out) VALUES ($1, to_timestamp($2::bigint / "
                              "1000.0), $3, 0, 0, 0, 0, 0, 0, 0) RETURNING id",
                              3, (const char *[]){r->county, r->now, by}, &res, err);
    if (s == BX_OK)
        snprintf(r->run_id, sizeof(r->run_id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PGresult *h = r->household;
    for (int i = 0; i < r->nchildren && s == BX_OK; i++) {
        child *c = &r->children[i];
        if (c->status == ST_NEVER || c->status == ST_OUT)
            s = suspect(r, c, err);
        else if (in_school(c->status) && c->status != ST_AMBIGUOUS)
            s = enrolled_again(r, c, err);
        const char *student = c->record >= 0 ? PQgetvalue(r->records, c->record, R_STUDENT) : "";
        const char *school =
            c->record >= 0 ? PQgetvalue(r->records, c->record, R_SCHOOL) : c->subject_school;
        const char *key = PQgetvalue(h, c->row, 1), *township = PQgetvalue(h, c->row, 2);
        IFOK(s, add_entry(r, "school_age", key, student, school, township, c->status, c->poor,
                          c->subject, c->detail, err));
        if (c->status == ST_NEVER || c->status == ST_OUT)
            IFOK(s, add_entry(r, "suspected", key, student, school, township, c->status, c->poor,
                              c->subject, c->detail, err));
        if (c->status == ST_DROPOUT)
            IFOK(s, add_entry(r, "dropout", key, student, school, township, c->status, c->poor,
                              student, c->detail, err));
    }
    /* the county's other dropouts (children not in its household list: migrants, others) */
    for (int i = 0; i < PQntuples(r->dropouts) && s == BX_OK; i++) {
        const char *student = PQgetvalue(r->dropouts, i, 0);
        bool listed = false;
        for (int k = 0; k < r->nchildren && !listed; k++)
            listed = r->children[k].status == ST_DROPOUT && r->children[k].record >= 0 &&
                     strcmp(PQgetvalue(r->records, r->children[k].record, R_STUDENT), student) == 0;
        if (listed)
            continue;
        r->extra_dropouts++;
        s = add_entry(r, "dropout", "", student, PQgetvalue(r->dropouts, i, 1),
                      PQgetvalue(r->dropouts, i, 2), ST_DROPOUT,
                      PQgetvalue(r->dropouts, i, 3)[0] == 't', student,
                      "not in the county's household list", err);
    }
    char counts[8][16];
    snprintf(counts[0], 16, "%d", r->nchildren);
    snprintf(counts[1], 16, "%d",
             r->count[ST_ENROLLED] + r->count[ST_SUSPENDED] + r->count[ST_HOME] +
                 r->count[ST_AMBIGUOUS]);
    snprintf(counts[2], 16, "%d", r->count[ST_NEVER]);
    snprintf(counts[3], 16, "%d", r->count[ST_OUT]);
    snprintf(counts[4], 16, "%d", r->count[ST_DROPOUT] + r->extra_dropouts);
    snprintf(counts[5], 16, "%d", r->count[ST_AMBIGUOUS]);
    snprintf(counts[6], 16, "%d", r->poor_out);
    const char *params[] = {r->run_id, counts[0], counts[1], counts[2],
                            counts[3], counts[4], counts[5], counts[6]};
    IFOK(s, bx_pg_command(r->db,
                          "UPDATE matching.run SET school_age = $2::int, in_school = $3::int, "
                          "never_enrolled = $4::int, out_of_school = $5::int, dropouts = $6::int, "
                          "ambiguous = $7::int, poor_out = $8::int WHERE id = $1::bigint",
                          8, params, NULL, err));
    return s;
}

/* ---- printing ---- */

static const char *child_name(const run *r, const child *c)
{
    return r->names ? PQgetvalue(r->household, c->row, 5) : "";
}

static double rate(int part, int whole)
{
    return whole > 0 ? 100.0 * part / whole : 0.0;
}

static void print_text(const run *r)
{
    int in =
        r->count[ST_ENROLLED] + r->count[ST_SUSPENDED] + r->count[ST_HOME] + r->count[ST_AMBIGUOUS];
    printf("四查三比对 of county %s on %s: run %s\n", r->county, r->today, r->run_id);
    printf("  school-age children (household register)  %6d\n", r->nchildren);
    printf("    in school                                %6d  (%d suspended, %d home-delivered, "
           "%d enrolled twice)\n",
           in, r->count[ST_SUSPENDED], r->count[ST_HOME], r->count[ST_AMBIGUOUS]);
    printf("    never enrolled                           %6d\n", r->count[ST_NEVER]);
    printf("    out of school (left, enrolled nowhere)   %6d\n", r->count[ST_OUT]);
    printf("    dropouts                                 %6d\n", r->count[ST_DROPOUT]);
    printf("  enrolment rate (入学率)                     %6.2f%%\n", rate(in, r->nchildren));
    printf("  registered-poor children out of school     %6d\n", r->poor_out);
    printf("  dropouts of the county's schools not in the household list %d\n", r->extra_dropouts);
    printf("  suspected cases asked of bx-escalate       %6d  (a task for the township each)\n",
           r->findings);
    printf("  cases closed: found enrolled               %6d\n", r->enrolled_findings);
    for (int pass = 0; pass < 3; pass++) {
        static const char *const ledgers[] = {"suspected", "dropout", "school_age"};
        static const char *const titles[] = {
            "suspected (疑似辍学): never enrolled or out of school", "dropouts (辍学)",
            "school-age children"};
        bool wanted = r->ledger ? strcmp(r->ledger, ledgers[pass]) == 0 : pass < 2;
        if (!wanted)
            continue;
        printf("ledger: %s\n", titles[pass]);
        for (int i = 0; i < r->nchildren; i++) {
            const child *c = &r->children[i];
            bool in_ledger = pass == 2 ||
                             (pass == 0 && (c->status == ST_NEVER || c->status == ST_OUT)) ||
                             (pass == 1 && c->status == ST_DROPOUT);
            if (!in_ledger)
                continue;
            printf("  %-20s township %s  %-15s %s%s%s%s%s\n", PQgetvalue(r->household, c->row, 1),
                   PQgetvalue(r->household, c->row, 2), statuses[c->status],
                   c->poor && out_of_school(c->status) ? "[registered poor] " : "", c->detail,
                   c->subject[0] ? "; case of " : "", c->subject, r->names ? "  " : "");
            if (r->names)
                printf("    %s\n", child_name(r, c));
        }
        if (pass == 1)
            for (int i = 0; i < PQntuples(r->dropouts); i++) {
                const char *student = PQgetvalue(r->dropouts, i, 0);
                bool listed = false;
                for (int k = 0; k < r->nchildren && !listed; k++)
                    listed = r->children[k].status == ST_DROPOUT && r->children[k].record >= 0 &&
                             strcmp(PQgetvalue(r->records, r->children[k].record, R_STUDENT),
                                    student) == 0;
                if (!listed)
                    printf("  %-20s school %s %s(not in the household list)%s%s\n", student,
                           PQgetvalue(r->dropouts, i, 1),
                           PQgetvalue(r->dropouts, i, 3)[0] == 't' ? "[registered poor] " : "",
                           r->names ? " " : "", r->names ? PQgetvalue(r->dropouts, i, 4) : "");
            }
    }
    for (int i = 0; i < r->nchildren; i++)
        if (r->children[i].status == ST_AMBIGUOUS)
            printf("refused: %s: %s\n", PQgetvalue(r->household, r->children[i].row, 1),
                   r->children[i].detail);
}

static int print_json(const run *r)
{
    int in =
        r->count[ST_ENROLLED] + r->count[ST_SUSPENDED] + r->count[ST_HOME] + r->count[ST_AMBIGUOUS];
    bx_buf b;
    bx_buf_init(&b, 0);
    bx_status s = bx_buf_printf(
        &b,
        "{\"run\":%s,\"county\":\"%s\",\"date\":\"%s\",\"school_age\":%d,\"in_school\":%d,"
        "\"never_enrolled\":%d,\"out_of_school\":%d,\"dropouts\":%d,\"ambiguous\":%d,"
        "\"registered_poor_out_of_school\":%d,\"enrolment_rate\":%.4f,\"findings\":%d,"
        "\"children\":[",
        r->run_id, r->county, r->today, r->nchildren, in, r->count[ST_NEVER], r->count[ST_OUT],
        r->count[ST_DROPOUT] + r->extra_dropouts, r->count[ST_AMBIGUOUS], r->poor_out,
        rate(in, r->nchildren) / 100.0, r->findings);
    for (int i = 0; i < r->nchildren && s == BX_OK; i++) {
        const child *c = &r->children[i];
        bool suspected = c->status == ST_NEVER || c->status == ST_OUT;
        if (r->ledger ? strcmp(r->ledger, "school_age") != 0 &&
                            !(strcmp(r->ledger, "suspected") == 0 && suspected) &&
                            !(strcmp(r->ledger, "dropout") == 0 && c->status == ST_DROPOUT)
                      : !(suspected || c->status == ST_DROPOUT || c->status == ST_AMBIGUOUS))
            continue;
        s = bx_buf_printf(&b,
                          "%s{\"child\":\"%s\",\"township\":\"%s\",\"status\":\"%s\","
                          "\"registered_poor\":%s,\"case_subject\":",
                          i && b.data[b.len - 1] != '[' ? "," : "",
                          PQgetvalue(r->household, c->row, 1), PQgetvalue(r->household, c->row, 2),
                          statuses[c->status], c->poor ? "true" : "false");
        IFOK(s, bxctl_json_or_null(&b, c->subject));
        IFOK(s, bx_buf_puts(&b, ",\"detail\":"));
        IFOK(s, bx_buf_json_string(&b, c->detail));
        if (r->names) {
            IFOK(s, bx_buf_puts(&b, ",\"name\":"));
            IFOK(s, bx_buf_json_string(&b, child_name(r, c)));
        }
        IFOK(s, bx_buf_puts(&b, "}"));
    }
    IFOK(s, bx_buf_puts(&b, "]}\n"));
    return bxctl_print(&b, s, "bxctl match");
}

/* ---- the command ---- */

static void free_value(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    free(value);
}

static int match_county(run *r)
{
    bx_error err = {0};
    bx_status s = bx_pg_exec(r->db, "BEGIN", &err);
    PGresult *res = NULL;
    IFOK(s, bx_pg_query(r->db, "SELECT 1 FROM registry.county WHERE code = $1", 1,
                        (const char *[]){r->county}, &res, &err));
    bool known = s == BX_OK && PQntuples(res) == 1;
    PQclear(res);
    if (s == BX_OK && !known) {
        fprintf(stderr, "bxctl match: no county %s in the registry\n", r->county);
        bx_pg_rollback(r->db);
        return 1;
    }
    IFOK(s, load(r, &err));
    if (s == BX_OK && PQntuples(r->household) == 0) {
        fprintf(stderr,
                "bxctl match: county %s has no household list (bxctl import household "
                "FILE)\n",
                r->county);
        bx_pg_rollback(r->db);
        return 1;
    }
    if (s == BX_OK) {
        r->nchildren = PQntuples(r->household);
        r->children = calloc((size_t)r->nchildren, sizeof(*r->children));
        if (r->children == NULL)
            s = BX_ERR(&err, BX_ENOMEM, "out of memory");
    }
    for (int i = 0, rec = 0; s == BX_OK && i < r->nchildren; i++) {
        child *c = &r->children[i];
        const char *hid = PQgetvalue(r->household, i, 0);
        c->row = i;
        c->poor = PQgetvalue(r->household, i, 4)[0] == 't';
        c->first = rec;
        while (rec < PQntuples(r->records) && strcmp(PQgetvalue(r->records, rec, R_HID), hid) == 0)
            rec++;
        c->n = rec - c->first;
        decide(r, c);
        r->count[c->status]++;
        r->poor_out += c->poor && out_of_school(c->status);
    }
    IFOK(s, write_run(r, &err));
    s = bx_pg_end(r->db, s, &err);
    if (s != BX_OK) {
        fprintf(stderr, "bxctl match: %s\n", err.msg);
        return 1;
    }
    if (r->json)
        return print_json(r);
    print_text(r);
    return 0;
}

int bxctl_match(bxctl_ctx *ctx, int argc, char **argv)
{
    run r = {0};
    const bxctl_option opts[] = {BXCTL_FLAG("--names", &r.names), BXCTL_FLAG("--json", &r.json),
                                 BXCTL_VALUE("--county", &r.county),
                                 BXCTL_VALUE("--ledger", &r.ledger)};
    if (!BXCTL_OPTIONS(argc, argv, opts) || r.county == NULL)
        return usage();
    if (!bxctl_code_valid(r.county, 6)) {
        fprintf(stderr, "bxctl match: --county \"%s\" is not a 6-digit code\n", r.county);
        return 2;
    }
    if (r.ledger && strcmp(r.ledger, "school_age") && strcmp(r.ledger, "suspected") &&
        strcmp(r.ledger, "dropout")) {
        fprintf(stderr, "bxctl match: --ledger \"%s\": expected school_age, suspected or dropout\n",
                r.ledger);
        return 2;
    }
    bxctl_now_param(r.now);
    r.day = bx_time_local_date(bx_clock_now());
    bx_date_format(r.day, r.today);
    r.open_cases = bx_map_new();
    r.pending = bx_map_new();
    r.db = bxctl_db(ctx);
    int rc = 1;
    if (r.db != NULL && r.open_cases && r.pending)
        rc = match_county(&r);
    if (r.open_cases)
        bx_map_each(r.open_cases, free_value, NULL);
    bx_map_free(r.open_cases);
    bx_map_free(r.pending);
    free(r.children);
    PQclear(r.household);
    PQclear(r.records);
    PQclear(r.schools);
    PQclear(r.dropouts);
    if (r.db)
        PQfinish(r.db);
    return rc;
}

/* ---- the enrolment rate in bxctl report ---- */

bx_status bxctl_match_report_notes(PGconn *db, const char *area, bx_buf *notes, int *nnotes)
{
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(
        db,
        "SELECT DISTINCT ON (r.county_code) r.county_code, r.id, r.school_age, r.in_school, "
        "r.never_enrolled, r.out_of_school, r.dropouts, r.poor_out, to_char(r.matched_at AT TIME "
        "ZONE 'Asia/Shanghai', 'YYYY-MM-DD') FROM matching.run r WHERE r.county_code LIKE $1 || "
        "'%' ORDER BY r.county_code, r.id DESC",
        1, (const char *[]){area ? area : ""}, &res, &err);
    if (s != BX_OK) /* a database without migration 0023: no figure to add */
        return BX_OK;
    for (int i = 0; i < PQntuples(res) && s == BX_OK; i++) {
        long all = strtol(PQgetvalue(res, i, 2), NULL, 10);
        long in = strtol(PQgetvalue(res, i, 3), NULL, 10);
        s = bx_buf_printf(notes,
                          "enrolment rate (入学率) of county %s: %ld of %ld school-age children of "
                          "the household register in school, %.2f%% (四查三比对 run %s of %s: %s "
                          "never enrolled, %s out of school, %s dropouts, %s registered-poor "
                          "among them)\n",
                          PQgetvalue(res, i, 0), in, all, all > 0 ? 100.0 * in / all : 0.0,
                          PQgetvalue(res, i, 1), PQgetvalue(res, i, 8), PQgetvalue(res, i, 4),
                          PQgetvalue(res, i, 5), PQgetvalue(res, i, 6), PQgetvalue(res, i, 7));
        ++*nnotes;
    }
    PQclear(res);
    return s;
}

/* ---- transfers matched, in bxctl case show ---- */

bx_status bxctl_match_transfers(PGconn *db, const char *student, bx_buf *json)
{
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(
        db,
        "SELECT CASE WHEN m.student_id = $1 THEN 'out' ELSE 'in' END, m.outcome, m.case_id, "
        "m.student_id, m.from_school, coalesce(m.to_student_id, ''), coalesce(m.to_school, ''), "
        "coalesce(m.matched_by, ''), " BXCTL_ISO(
            "m.decided_at") ", m.detail FROM "
                            "cases.transfer_match m WHERE m.student_id = $1 OR m.to_student_id = "
                            "$1 ORDER BY "
                            "m.decided_at, m.id",
        1, (const char *[]){student}, &res, &err);
    if (s != BX_OK) /* a database without migration 0023 */
        return json ? bx_buf_puts(json, ",\"transfers\":[]") : BX_OK;
    static const bxctl_json_field fields[] = {
        {"direction", 0, BXCTL_JSON_STRING},   {"outcome", 1, BXCTL_JSON_STRING},
        {"case_id", 2, BXCTL_JSON_RAW},        {"student_id", 3, BXCTL_JSON_STRING},
        {"from_school", 4, BXCTL_JSON_STRING}, {"to_student_id", 5, BXCTL_JSON_OR_NULL},
        {"to_school", 6, BXCTL_JSON_OR_NULL},  {"matched_by", 7, BXCTL_JSON_OR_NULL},
        {"decided_at", 8, BXCTL_JSON_STRING},  {"detail", 9, BXCTL_JSON_STRING}};
    if (json) {
        s = bx_buf_puts(json, ",\"transfers\":");
        IFOK(s, BXCTL_JSON_ROWS(json, res, 0, PQntuples(res), fields));
        PQclear(res);
        return s;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        char at[17];
        bxctl_time_text(PQgetvalue(res, i, 8), at);
        if (PQgetvalue(res, i, 1)[0] == 'r')
            printf("transfer out (case %s): not confirmed automatically on %s: %s\n",
                   PQgetvalue(res, i, 2), at, PQgetvalue(res, i, 9));
        else if (PQgetvalue(res, i, 0)[0] == 'o')
            printf("transfer out (case %s): confirmed on %s: enrolled as %s at school %s "
                   "(matched by %s)\n",
                   PQgetvalue(res, i, 2), at, PQgetvalue(res, i, 5), PQgetvalue(res, i, 6),
                   PQgetvalue(res, i, 7));
        else
            printf("transfer in: from school %s (student %s, case %s), confirmed on %s "
                   "(matched by %s)\n",
                   PQgetvalue(res, i, 4), PQgetvalue(res, i, 3), PQgetvalue(res, i, 2), at,
                   PQgetvalue(res, i, 7));
    }
    PQclear(res);
    return BX_OK;
}
