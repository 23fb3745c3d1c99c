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
    for (int i = 0; i < argc; i++) {
        const char **target = strcmp(argv[i], "--staff") == 0     ? &staff
                              : strcmp(argv[i], "--student") == 0 ? &student
                              : strcmp(argv[i], "--since") == 0   ? &since
                              : strcmp(argv[i], "--limit") == 0   ? &limit
                                                                  : NULL;
        if (target == NULL || i + 1 >= argc) {
            fprintf(stderr, "usage: bxctl audit [--staff ID] [--student ID] [--since YYYY-MM-DD] "
                            "[--limit N]\n");
            return 2;
        }
        *target = argv[++i];
    }
    bx_date d;
    if (since && bx_date_parse(since, &d) != BX_OK) {
        fprintf(stderr, "bxctl audit: --since: expected a date YYYY-MM-DD, got \"%s\"\n", since);
        return 2;
    }
    char *end = NULL;
    long long n = strtoll(limit, &end, 10);
    if (*end || n < 1 || n > 1000000) {
        fprintf(stderr, "bxctl audit: --limit: expected 1 to 1000000, got \"%s\"\n", limit);
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    const char *params[] = {staff, student, since, limit};
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(
        db,
        "SELECT " BXCTL_ISO(
            "at") ", staff_id, action, coalesce(student_id, '-'), detail, "
                  "client_addr FROM console.audit WHERE ($1::text IS NULL OR staff_id = $1) "
                  "AND ($2::text IS NULL OR student_id = $2) "
                  "AND ($3::date IS NULL OR at >= ($3::date::timestamp AT TIME ZONE "
                  "'Asia/Shanghai')) "
                  "ORDER BY at, id LIMIT $4::bigint",
        4, params, &res, &err);
    if (s != BX_OK) {
        fprintf(stderr, "bxctl audit: %s\n", err.msg);
        PQfinish(db);
        return 1;
    }
    printf("%-25s %-20s %-16s %-20s %-15s %s\n", "at", "staff", "action", "student", "from",
           "detail");
    for (int i = 0; i < PQntuples(res); i++) {
        char detail[512];
        bxctl_mask_digits(PQgetvalue(res, i, 4), detail, sizeof(detail));
        printf("%-25s %-20s %-16s %-20s %-15s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 5), detail);
    }
    PQclear(res);
    PQfinish(db);
    return 0;
}
