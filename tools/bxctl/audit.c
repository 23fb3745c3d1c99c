/* bxctl audit: who saw or wrote what about which child, from bx-console's append-only audit. */
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bxctl_audit(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *staff = NULL, *student = NULL, *since = NULL, *limit = "1000";
    const bxctl_option opts[] = {BXCTL_VALUE("--staff", &staff), BXCTL_VALUE("--student", &student),
                                 BXCTL_VALUE("--since", &since), BXCTL_VALUE("--limit", &limit)};
    if (!BXCTL_OPTIONS(argc, argv, opts)) {
        fprintf(stderr, "usage: bxctl audit [--staff ID] [--student ID] [--since YYYY-MM-DD] "
                        "[--limit N]\n");
        return 2;
    }
    bx_date d;
    if (since && bx_date_parse(since, &d) != BX_OK) {
        fprintf(stderr, "bxctl audit: --since: expected a date YYYY-MM-DD, got \"%s\"\n", since);
        return 2;
    }
    long long n = 0;
    if (!bxctl_number("bxctl audit", "--limit", limit, 1, 1000000, NULL, &n))
        return 2;
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    const char *params[] = {staff, student, since, limit};
    PGresult *res = bxctl_query(
        db, "bxctl audit",
        "SELECT " BXCTL_ISO(
            "at") ", staff_id, action, coalesce(student_id, '-'), detail, "
                  "client_addr FROM console.audit WHERE ($1::text IS NULL OR staff_id = $1) "
                  "AND ($2::text IS NULL OR student_id = $2) "
                  "AND ($3::date IS NULL OR at >= ($3::date::timestamp AT TIME ZONE "
                  "'Asia/Shanghai')) "
                  "ORDER BY at, id LIMIT $4::bigint",
        4, params);
    if (res == NULL) {
        PQfinish(db);
        return 1;
    }
    static const bxctl_column cols[] = {{"at", 25, false},     {"staff", 20, false},
                                        {"action", 16, false}, {"student", 20, false},
                                        {"from", 15, false},   {"detail", 0, false}};
    BXCTL_TABLE_HEADINGS(cols, " ");
    for (int i = 0; i < PQntuples(res); i++) {
        char detail[512];
        bxctl_mask_digits(PQgetvalue(res, i, 4), detail, sizeof(detail));
        BXCTL_TABLE_ROW(cols, " ", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 5),
                        detail);
    }
    PQclear(res);
    PQfinish(db);
    return 0;
}
