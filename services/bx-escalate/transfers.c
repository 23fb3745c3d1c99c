/* transfers: one child in two places of the registry: the rule (pure), the transfer check and the
 * matching findings applied to cases (transfers.h). */
#include "transfers.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_log.h"
#include "bx_name.h"
#include "bx_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CANDIDATES_MAX 16 /* records of one child looked at; more is ambiguous anyway */

/* ---- the rule ---- */

bool transfers_in_school(const char *status)
{
    static const char *const in_school[] = {"enrolled", "returned", "suspended", "home_education"};
    for (size_t i = 0; i < sizeof(in_school) / sizeof(in_school[0]); i++)
        if (status && strcmp(status, in_school[i]) == 0)
            return true;
    return false;
}

void transfers_decide(const transfers_candidate *c, int n, transfers_decision *out)
{
    out->verdict = TRANSFERS_NONE;
    out->match = -1;
    out->in_school = 0;
    out->matched_by = NULL;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (!c[i].in_school || !(c[i].by_number || c[i].by_id))
            continue;
        out->in_school++;
        last = i;
    }
    if (out->in_school == 0)
        return;
    if (out->in_school > 1) {
        out->verdict = TRANSFERS_AMBIGUOUS;
        return;
    }
    if (c[last].conflict) {
        out->verdict = TRANSFERS_CONFLICT;
        return;
    }
    out->verdict = TRANSFERS_MATCHED;
    out->match = last;
    out->matched_by = c[last].by_number && c[last].by_id ? "both"
                      : c[last].by_number                ? "student_number"
                                                         : "national_id";
}

static const char *const verdict_names[] = {
    [TRANSFERS_NONE] = "none",
    [TRANSFERS_MATCHED] = "matched",
    [TRANSFERS_AMBIGUOUS] = "ambiguous",
    [TRANSFERS_CONFLICT] = "conflict",
};

const char *transfers_verdict_name(transfers_verdict v)
{
    return bx_name_of(verdict_names, BX_NAMES_COUNT(verdict_names), (int)v, "?");
}

/* ---- shared I/O ---- */

static ladder_input input_now(const char *event_id, bx_time_ms at)
{
    ladder_input in;
    memset(&in, 0, sizeof(in));
    in.at = at;
    in.date = bx_time_local_date(at);
    in.return_date = in.first_date = in.last_date = in.streak_start = BX_DATE_NONE;
    snprintf(in.event_id, sizeof(in.event_id), "%s", event_id);
    return in;
}

/* The student's latest case after a step: its row id (0 none) and whether it is open. */
static bx_status case_after(PGconn *db, const char *student, int64_t *row, bool *open,
                            bx_error *err)
{
    PGresult *res = NULL;
    *row = 0;
    *open = false;
    bx_status s = bx_pg_query(db,
                              "SELECT id, closed_at IS NULL FROM cases.case WHERE student_id = $1 "
                              "ORDER BY id DESC LIMIT 1",
                              1, (const char *[]){student}, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        *row = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *open = PQgetvalue(res, 0, 1)[0] == 't';
    }
    PQclear(res);
    return s;
}

/* ---- the transfer check ---- */

/* What the check compares with cases.transfer_check: the registry's revision and the newest open
 * transfer task (a new one has a higher id than any before; the open ones are few). */
typedef struct check_mark {
    char revision[24], task_id[24];
    bool behind;
} check_mark;

static bx_status read_mark(PGconn *db, const char *kind, check_mark *m, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db,
        "SELECT (SELECT revision FROM registry.revision), (SELECT coalesce(max(id), 0) FROM "
        "cases.task WHERE kind = $1 AND outcome IS NULL), NOT EXISTS (SELECT 1 FROM "
        "cases.transfer_check k WHERE k.revision >= (SELECT revision FROM registry.revision) AND "
        "k.task_id >= (SELECT coalesce(max(id), 0) FROM cases.task WHERE kind = $1 AND outcome "
        "IS NULL))",
        1, (const char *[]){kind}, &res, err);
    if (s == BX_OK && PQntuples(res) == 1) {
        snprintf(m->revision, sizeof(m->revision), "%s", PQgetvalue(res, 0, 0));
        snprintf(m->task_id, sizeof(m->task_id), "%s", PQgetvalue(res, 0, 1));
        m->behind = PQgetvalue(res, 0, 2)[0] == 't';
    } else if (s == BX_OK) {
        s = BX_ERR(err, BX_EIO, "transfer check: registry.revision has no row");
    }
    PQclear(res);
    return s;
}

static bx_status write_mark(PGconn *db, const check_mark *m, bx_time_ms now, bx_error *err)
{
    char at[40];
    bx_time_format_pg(now, at);
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "INSERT INTO cases.transfer_check (revision, task_id, checked_at) "
                              "VALUES ($1::bigint, $2::bigint, $3::timestamptz) ON CONFLICT "
                              "(only_row) DO UPDATE SET revision = EXCLUDED.revision, task_id = "
                              "EXCLUDED.task_id, checked_at = EXCLUDED.checked_at",
                              3, (const char *[]){m->revision, m->task_id, at}, &res, err);
    PQclear(res);
    return s;
}

/* One open transfer case: its row, student and school, and the candidates found for it. */
typedef struct transfer_case {
    const char *row, *student, *school;
    transfers_candidate cand[CANDIDATES_MAX];
    int ncand;
} transfer_case;

/* "school 5201211003 (城关镇中心小学)" for the case's history. */
static void school_label(PGconn *db, const char *school, char *out, size_t size)
{
    PGresult *res = NULL;
    bx_error err = {0};
    snprintf(out, size, "school %s", school);
    if (bx_pg_query(db, "SELECT name FROM registry.school WHERE id = $1", 1,
                    (const char *[]){school}, &res, &err) == BX_OK &&
        PQntuples(res) == 1)
        snprintf(out, size, "school %s (%s)", school, PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* The match confirmed: the ladder closes the case (transfer_confirmed by bx-escalate) and the
 * match is recorded, in one transaction. */
static bx_status confirm(const transfers_env *env, const transfer_case *tc,
                         const transfers_decision *d, bx_time_ms now, int *confirmed, bx_error *err)
{
    const transfers_candidate *m = &tc->cand[d->match];
    char event_id[LADDER_ID_SIZE];
    snprintf(event_id, sizeof(event_id), "transfer-match:%s:%.64s", tc->row, m->student_id);
    ladder_input in = input_now(event_id, now);
    in.kind = LADDER_IN_ACTION;
    in.action = LADDER_ACT_TRANSFER_CONFIRMED;
    char label[140];
    school_label(env->db, m->school_id, label, sizeof(label));
    snprintf(in.receiving_school, sizeof(in.receiving_school), "%s, matched by %s in the registry",
             label,
             strcmp(d->matched_by, "both") == 0             ? "student number and id number"
             : strcmp(d->matched_by, "student_number") == 0 ? "student number (学籍号)"
                                                            : "id number");
    char at[40];
    bx_time_format_pg(now, at);
    int64_t row = 0;
    bool open = true;
    PGresult *res = NULL;
    bx_status s = bx_pg_exec(env->db, "BEGIN", err);
    IFOK(s, env->apply(env->apply_arg, "transfer check", tc->student, tc->school, &in, err));
    IFOK(s, case_after(env->db, tc->student, &row, &open, err));
    if (s == BX_OK && !open) {
        const char *params[] = {tc->row,      tc->student,   tc->school, m->student_id,
                                m->school_id, d->matched_by, at};
        s = bx_pg_query(env->db,
                        "INSERT INTO cases.transfer_match (case_id, student_id, from_school, "
                        "to_student_id, to_school, matched_by, outcome, decided_at) VALUES "
                        "($1::bigint, $2, $3, $4, $5, $6, 'confirmed', $7::timestamptz) "
                        "ON CONFLICT (case_id, outcome) DO NOTHING",
                        7, params, &res, err);
        PQclear(res);
    }
    IFOK(s, bx_pg_exec(env->db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(env->db);
        return s;
    }
    if (!open) {
        ++*confirmed;
        bx_log_info("transfer check: case %s (student %s, school %s): transfer confirmed, enrolled "
                    "as %s at school %s (matched by %s)",
                    tc->row, tc->student, tc->school, m->student_id, m->school_id, d->matched_by);
    }
    return BX_OK;
}

/* A refused match is recorded once per case (again when what was found changed) and logged with
 * registry ids only. */
static bx_status refuse(const transfers_env *env, const transfer_case *tc,
                        const transfers_decision *d, bx_time_ms now, bx_error *err)
{
    bx_buf detail;
    bx_buf_init(&detail, 500);
    bx_status s =
        bx_buf_printf(&detail, "%s: ",
                      d->verdict == TRANSFERS_AMBIGUOUS
                          ? "enrolled at more than one school, not confirmed automatically"
                          : "the student number and the id number point to different records");
    for (int i = 0, first = 1; i < tc->ncand && s == BX_OK; i++) {
        if (!tc->cand[i].in_school)
            continue;
        s = bx_buf_printf(&detail, "%s%s at %s", first ? "" : ", ", tc->cand[i].student_id,
                          tc->cand[i].school_id);
        first = 0;
    }
    if (s != BX_OK) { /* the buffer's maximum: the ids so far are enough */
        bx_buf_reset(&detail);
        s = bx_buf_puts(&detail, "several records, not confirmed automatically");
    }
    char at[40];
    bx_time_format_pg(now, at);
    PGresult *res = NULL;
    const char *params[] = {tc->row, tc->student, tc->school, detail.data, at};
    s = bx_pg_query(env->db,
                    "INSERT INTO cases.transfer_match (case_id, student_id, from_school, outcome, "
                    "detail, decided_at) VALUES ($1::bigint, $2, $3, 'refused', $4, "
                    "$5::timestamptz) ON CONFLICT (case_id, outcome) DO UPDATE SET detail = "
                    "EXCLUDED.detail, decided_at = EXCLUDED.decided_at WHERE "
                    "cases.transfer_match.detail <> EXCLUDED.detail RETURNING id",
                    5, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        bx_log_warn("transfer check: case %s (student %s, school %s): %s; the transfer waits for "
                    "the receiving school's confirmation",
                    tc->row, tc->student, tc->school, detail.data);
    PQclear(res);
    bx_buf_free(&detail);
    return s;
}

/* The candidates of every open transfer case (rows of cases: row, student, school; of same: the
 * rows of registry.same_child), in tc. */
static void collect(PGresult *cases, PGresult *same, transfer_case *tc)
{
    for (int i = 0; i < PQntuples(cases); i++) {
        tc[i].row = PQgetvalue(cases, i, 0);
        tc[i].student = PQgetvalue(cases, i, 1);
        tc[i].school = PQgetvalue(cases, i, 2);
        tc[i].ncand = 0;
    }
    for (int r = 0; r < PQntuples(same); r++) {
        const char *student = PQgetvalue(same, r, 0);
        for (int i = 0; i < PQntuples(cases); i++) {
            if (strcmp(tc[i].student, student) != 0 || tc[i].ncand == CANDIDATES_MAX)
                continue;
            const char *school = PQgetvalue(same, r, 2);
            transfers_candidate *c = &tc[i].cand[tc[i].ncand++];
            c->student_id = PQgetvalue(same, r, 1);
            c->school_id = school;
            /* a transfer is to another school: a second record at the same school is not one */
            c->in_school =
                transfers_in_school(PQgetvalue(same, r, 3)) && strcmp(school, tc[i].school) != 0;
            c->by_number = PQgetvalue(same, r, 4)[0] == 't';
            c->by_id = PQgetvalue(same, r, 5)[0] == 't';
            c->conflict = PQgetvalue(same, r, 6)[0] == 't';
        }
    }
}

bx_status transfers_check(const transfers_env *env, int *confirmed, bx_error *err)
{
    *confirmed = 0;
    const ladder_policy *p = env->policy;
    if (p == NULL || p->transfer_task < 0)
        return BX_OK;
    const char *kind = p->task_rules[p->transfer_task].kind;
    check_mark mark = {0};
    bx_status s = read_mark(env->db, kind, &mark, err);
    if (s != BX_OK || !mark.behind)
        return s;
    bx_time_ms now = bx_clock_now();
    PGresult *cases = NULL, *same = NULL;
    s = bx_pg_query(env->db,
                    "SELECT c.id, c.student_id, c.school_id FROM cases.case c WHERE c.closed_at IS "
                    "NULL AND EXISTS (SELECT 1 FROM cases.task t WHERE t.case_id = c.id AND "
                    "t.kind = $1 AND t.outcome IS NULL) ORDER BY c.id",
                    1, (const char *[]){kind}, &cases, err);
    int n = s == BX_OK ? PQntuples(cases) : 0;
    bx_buf ids;
    bx_buf_init(&ids, 0);
    transfer_case *tc = NULL;
    if (n > 0) {
        s = bx_buf_puts(&ids, "{");
        for (int i = 0; i < n && s == BX_OK; i++)
            s = bx_buf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(cases, i, 1));
        IFOK(s, bx_buf_puts(&ids, "}"));
        IFOK(s, bx_pg_query(env->db, "SELECT * FROM registry.same_child($1::text[])", 1,
                            (const char *[]){ids.data}, &same, err));
        if (s == BX_OK && (tc = calloc((size_t)n, sizeof(*tc))) == NULL)
            s = BX_ERR(err, BX_ENOMEM, "transfer check: out of memory");
        if (s == BX_OK)
            collect(cases, same, tc);
    }
    for (int i = 0; i < n && s == BX_OK; i++) {
        transfers_decision d;
        transfers_decide(tc[i].cand, tc[i].ncand, &d);
        if (d.verdict == TRANSFERS_MATCHED)
            s = confirm(env, &tc[i], &d, now, confirmed, err);
        else if (d.verdict != TRANSFERS_NONE)
            s = refuse(env, &tc[i], &d, now, err);
    }
    IFOK(s, write_mark(env->db, &mark, now, err));
    free(tc);
    bx_buf_free(&ids);
    PQclear(same);
    PQclear(cases);
    return s;
}

/* ---- the matching findings ---- */

enum { F_ID, F_KIND, F_STUDENT, F_SCHOOL, F_REASON, F_FOUND_ON, F_FOUND_AT };

/* One finding in its own transaction: claimed with its cases.finding_applied row (a replica that
 * took it first leaves nothing to do), applied to the case, and the outcome recorded. */
static bx_status apply_finding(const transfers_env *env, PGresult *res, int r, int *applied,
                               bx_error *err)
{
    const char *id = PQgetvalue(res, r, F_ID), *kind = PQgetvalue(res, r, F_KIND);
    const char *student = PQgetvalue(res, r, F_STUDENT), *school = PQgetvalue(res, r, F_SCHOOL);
    const ladder_policy *p = env->policy;
    const char *enrol = p && p->enrol_task >= 0 ? p->task_rules[p->enrol_task].kind : "";
    bx_time_ms at = strtoll(PQgetvalue(res, r, F_FOUND_AT), NULL, 10);
    char event_id[LADDER_ID_SIZE], at_text[40];
    snprintf(event_id, sizeof(event_id), "finding:%s", id);
    bx_time_format_pg(at, at_text);
    ladder_input in = input_now(event_id, at);
    if (bx_date_parse(PQgetvalue(res, r, F_FOUND_ON), &in.date) != BX_OK)
        in.date = bx_time_local_date(at);
    snprintf(in.reason, sizeof(in.reason), "%s", PQgetvalue(res, r, F_REASON));
    snprintf(in.task_kind, sizeof(in.task_kind), "%s", enrol);
    bool out_of_school = strcmp(kind, "out_of_school") == 0;
    if (out_of_school) {
        in.kind = LADDER_IN_SUSPECTED;
    } else {
        in.kind = LADDER_IN_END;
        in.ending = LADDER_END_RETURNED;
    }
    PGresult *claim = NULL;
    bx_status s = bx_pg_exec(env->db, "BEGIN", err);
    IFOK(s,
         bx_pg_query(env->db,
                     "INSERT INTO cases.finding_applied (finding_id, applied_at, outcome) VALUES "
                     "($1::bigint, $2::timestamptz, 'ignored') ON CONFLICT DO NOTHING "
                     "RETURNING 1",
                     2, (const char *[]){id, at_text}, &claim, err));
    bool mine = s == BX_OK && PQntuples(claim) == 1;
    PQclear(claim);
    int64_t row_before = 0, row = 0;
    bool open_before = false, open = false;
    const char *outcome = "ignored";
    bool usable =
        bx_registry_school(env->registry, school) != NULL && (out_of_school || enrol[0] != '\0');
    if (mine && usable) {
        IFOK(s, case_after(env->db, student, &row_before, &open_before, err));
        IFOK(s, env->apply(env->apply_arg, event_id, student, school, &in, err));
        IFOK(s, case_after(env->db, student, &row, &open, err));
        if (out_of_school)
            outcome = open_before ? "followed" : open ? "opened" : "ignored";
        else
            outcome = open_before && !open ? "closed" : "ignored";
    } else if (mine) {
        bx_log_warn("finding %s (student %s): %s; ignored", id, student,
                    enrol[0] ? "its school is not in the registry"
                             : "the ladder policy has no ladder.enrol_task");
    }
    if (mine) {
        char row_text[24];
        snprintf(row_text, sizeof(row_text), "%lld", (long long)(row ? row : row_before));
        PGresult *upd = NULL;
        IFOK(s, bx_pg_query(env->db,
                            "UPDATE cases.finding_applied SET case_id = NULLIF($2, '0')::bigint, "
                            "outcome = $3 WHERE finding_id = $1::bigint",
                            3, (const char *[]){id, row_text, outcome}, &upd, err));
        PQclear(upd);
    }
    IFOK(s, bx_pg_exec(env->db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(env->db);
        return s;
    }
    if (mine) {
        ++*applied;
        if (strcmp(outcome, "ignored") != 0)
            bx_log_info("finding %s: student %s, school %s: %s (%s)", id, student, school, kind,
                        outcome);
    }
    return BX_OK;
}

bx_status transfers_apply_findings(const transfers_env *env, int max, int *applied, bx_error *err)
{
    *applied = 0;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", max);
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        env->db,
        "SELECT f.id, f.kind, f.student_id, f.school_id, f.reason, f.found_on::text, "
        "(extract(epoch FROM f.found_at) * 1000)::bigint FROM matching.finding f WHERE NOT EXISTS "
        "(SELECT 1 FROM cases.finding_applied a WHERE a.finding_id = f.id) ORDER BY f.id "
        "LIMIT $1::int",
        1, (const char *[]){limit}, &res, err);
    for (int r = 0; s == BX_OK && r < PQntuples(res); r++)
        s = apply_finding(env, res, r, applied, err);
    PQclear(res);
    return s;
}
