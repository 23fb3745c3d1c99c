/* bxctl privacy erase: a student's personal data removed once the obligation to school them has
 * ended (PIPL: kept no longer than needed), in one transaction, audited; the counts the reports
 * need stay (the registry row with school, class and status; cases; attendance). */
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERASED_NAME "（已删除）"

static int usage(void)
{
    fprintf(stderr, "usage: bxctl privacy erase <student_id>\n");
    return 2;
}

/* Why the student may not be erased now, or "" when they may: unknown, a case open, or the
 * obligation not ended (registry status graduated, or a case closed as graduated or
 * obligation_ended). The student's row is locked until the transaction ends. */
static bx_status refusal(PGconn *db, const char *student, char *why, size_t size, bx_error *err)
{
    const char *params[] = {student};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db,
        "SELECT st.status, EXISTS (SELECT 1 FROM cases.case c WHERE c.student_id = st.id AND "
        "c.closed_at IS NULL), st.status = 'graduated' OR EXISTS (SELECT 1 FROM cases.case c "
        "WHERE c.student_id = st.id AND c.ending IN ('graduated', 'obligation_ended')) "
        "FROM registry.student st WHERE st.id = $1 FOR UPDATE OF st",
        1, params, &res, err);
    if (s != BX_OK)
        return s;
    why[0] = '\0';
    if (PQntuples(res) != 1)
        snprintf(why, size, "no student %s in the registry", student);
    else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
        snprintf(why, size, "student %s has an open case: close it first", student);
    else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0)
        snprintf(why, size,
                 "student %s's obligation has not ended (status %s; no case closed as graduated "
                 "or obligation_ended)",
                 student, PQgetvalue(res, 0, 0));
    PQclear(res);
    return BX_OK;
}

/* What erasing touched. */
typedef struct erased {
    long long private_rows, guardians, notes, notifications, digests;
} erased;

static bx_status erase(PGconn *db, const char *student, erased *e, bx_error *err)
{
    const char *p[] = {student};
    bx_status s = bx_pg_command(db,
                                "UPDATE registry.student_private SET name = '" ERASED_NAME
                                "', birth_date = NULL, national_id = NULL, flags = '{}' "
                                "WHERE student_id = $1",
                                1, p, &e->private_rows, err);
    IFOK(s, bx_pg_command(db, "DELETE FROM registry.guardian WHERE student_id = $1", 1, p,
                          &e->guardians, err));
    IFOK(s, bx_pg_command(db, "DELETE FROM console.visit_note WHERE student_id = $1", 1, p,
                          &e->notes, err));
    /* the digests that listed the student's tasks carry the name in their text */
    IFOK(s, bx_pg_command(
                db,
                "UPDATE notify.notification SET body = '' WHERE body <> '' AND id IN (SELECT "
                "digest_id FROM notify.notification WHERE student_id = $1 AND digest_id IS NOT "
                "NULL)",
                1, p, &e->digests, err));
    IFOK(s, bx_pg_command(db,
                          "UPDATE notify.notification SET recipient = 'erased-' || id::text, "
                          "recipient_masked = 'erased', body = '' WHERE student_id = $1",
                          1, p, &e->notifications, err));
    return s;
}

static bx_status audit(PGconn *db, const char *student, const erased *e, bx_error *err)
{
    char now[32], detail[200];
    bxctl_now_param(now);
    snprintf(detail, sizeof(detail),
             "erased: private %lld, guardians %lld, visit notes %lld, notifications %lld, "
             "digests %lld",
             e->private_rows, e->guardians, e->notes, e->notifications, e->digests);
    const char *params[] = {now, student, detail};
    return bx_pg_command(
        db,
        "INSERT INTO console.audit (at, staff_id, action, student_id, detail, client_addr) "
        "VALUES (to_timestamp($1::bigint / 1000.0), 'bxctl', 'privacy_erase', $2, $3, "
        "'bxctl')",
        3, params, NULL, err);
}

static int privacy_erase(bxctl_ctx *ctx, const char *student)
{
    if (!bx_id_valid(student)) {
        fprintf(stderr, "bxctl privacy erase: \"%s\" is not a registry id\n", student);
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    bx_error err = {0};
    char why[300] = "";
    erased e = {0};
    bx_status s = bx_pg_exec(db, "BEGIN", &err);
    IFOK(s, refusal(db, student, why, sizeof(why), &err));
    if (s == BX_OK && why[0] == '\0') {
        IFOK(s, erase(db, student, &e, &err));
        IFOK(s, audit(db, student, &e, &err));
    }
    if (why[0])
        bx_pg_rollback(db); /* refused: nothing was changed */
    else
        s = bx_pg_end(db, s, &err);
    PQfinish(db);
    if (s != BX_OK) {
        fprintf(stderr, "bxctl privacy erase: %s\n", err.msg);
        return 1;
    }
    if (why[0]) {
        fprintf(stderr, "bxctl privacy erase: refused: %s\n", why);
        return 1;
    }
    printf("student %s erased: name, birth date, id number and flags (%lld), guardians (%lld), "
           "home-visit notes (%lld), notifications (%lld) and digests that listed them (%lld); "
           "the registry row, cases and attendance stay for the reports\n",
           student, e.private_rows, e.guardians, e.notes, e.notifications, e.digests);
    return 0;
}

int bxctl_privacy(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[0], "erase") != 0)
        return usage();
    return privacy_erase(ctx, argv[1]);
}
