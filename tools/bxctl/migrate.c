/* bxctl migrate: applies schemas/sql/NNNN_name.sql in order, once each, refusing edited ones. */
#include "bxctl.h"
#include "bx_buf.h"
#include "bx_hex.h"
#include "bx_pg.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MIGRATIONS 256

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_migration_name(const char *n)
{
    size_t len = strlen(n);
    return len > 9 && n[0] >= '0' && n[0] <= '9' && n[1] >= '0' && n[1] <= '9' && n[2] >= '0' &&
           n[2] <= '9' && n[3] >= '0' && n[3] <= '9' && n[4] == '_' &&
           strcmp(n + len - 4, ".sql") == 0;
}

int bxctl_migrate(bxctl_ctx *ctx, int argc, char **argv)
{
    int status_only = argc > 0 && strcmp(argv[0], "--status") == 0;
    DIR *dir = opendir(ctx->sql_dir);
    if (dir == NULL) {
        fprintf(stderr, "bxctl migrate: cannot open BX_SQL_DIR \"%s\"\n", ctx->sql_dir);
        return 1;
    }
    char *names[MAX_MIGRATIONS] = {0};
    int count = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && count < MAX_MIGRATIONS)
        if (is_migration_name(de->d_name))
            names[count++] = strdup(de->d_name);
    closedir(dir);
    qsort(names, (size_t)count, sizeof(names[0]), cmp_names);

    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    bx_error err = {0};
    int rc = 0, applied = 0;
    bx_status s =
        bx_pg_exec(db,
                   "CREATE TABLE IF NOT EXISTS public.bx_migration ("
                   " version int PRIMARY KEY, name text NOT NULL,"
                   " sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                   &err);
    /* One migrator at a time: a second `bxctl migrate` waits here. */
    IFOK(s, bx_pg_exec(db, "SELECT pg_advisory_lock(7426001)", &err));
    for (int i = 0; i < count && s == BX_OK; i++) {
        char path[1024], version[5], sum[65];
        snprintf(path, sizeof(path), "%s/%s", ctx->sql_dir, names[i]);
        memcpy(version, names[i], 4);
        version[4] = '\0';
        bx_buf sql;
        bx_buf_init(&sql, 16 << 20);
        s = bx_buf_read_file(&sql, path, &err);
        if (s != BX_OK) {
            bx_buf_free(&sql);
            break;
        }
        bx_sha256_hex(sql.data ? sql.data : "", sql.len, sum);
        PGresult *res = NULL;
        const char *params[] = {version};
        s = bx_pg_query(db, "SELECT sha256 FROM public.bx_migration WHERE version = $1::int", 1,
                        params, &res, &err);
        if (s == BX_OK && PQntuples(res) == 1) {
            if (strcmp(PQgetvalue(res, 0, 0), sum) != 0) {
                s = BX_ERR(&err, BX_ECONFLICT,
                           "%s was changed after it was applied (landed migrations are never "
                           "edited: add a new one)",
                           names[i]);
            } else if (status_only) {
                printf("applied  %s\n", names[i]);
            }
        } else if (s == BX_OK && status_only) {
            printf("pending  %s\n", names[i]);
        } else if (s == BX_OK) {
            const char *ins[] = {version, names[i], sum};
            IFOK(s, bx_pg_exec(db, "BEGIN", &err));
            IFOK(s, bx_pg_exec(db, sql.data ? sql.data : "", &err));
            IFOK(s, bx_pg_command(db,
                                  "INSERT INTO public.bx_migration (version, name, sha256) "
                                  "VALUES ($1::int, $2, $3)",
                                  3, ins, NULL, &err));
            s = bx_pg_end(db, s, &err);
            if (s != BX_OK) {
                char msg[sizeof(err.msg)];
                snprintf(msg, sizeof(msg), "%s", err.msg);
                BX_ERR(&err, s, "%s: %s", names[i], msg);
            } else {
                printf("applied  %s\n", names[i]);
                applied++;
            }
        }
        PQclear(res);
        bx_buf_free(&sql);
    }
    if (s != BX_OK) {
        fprintf(stderr, "bxctl migrate: %s\n", err.msg);
        rc = 1;
    } else if (!status_only) {
        printf("migrations: %d applied now, %d in total\n", applied, count);
    }
    for (int i = 0; i < count; i++)
        free(names[i]);
    PQfinish(db);
    return rc;
}
