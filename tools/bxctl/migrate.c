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

/* The migration files of sql_dir ("NNNN_name.sql"), sorted, into names (caller frees each);
 * -1 after saying why the folder cannot be read, else how many. */
static int migration_names(const char *sql_dir, char *names[MAX_MIGRATIONS])
{
    DIR *dir = opendir(sql_dir);
    if (dir == NULL) {
        fprintf(stderr, "bxctl migrate: cannot open BX_SQL_DIR \"%s\"\n", sql_dir);
        return -1;
    }
    int count = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && count < MAX_MIGRATIONS)
        if (is_migration_name(de->d_name))
            names[count++] = strdup(de->d_name);
    closedir(dir);
    qsort(names, (size_t)count, sizeof(names[0]), cmp_names);
    return count;
}

/* Migration name (a file of sql_dir): refused when it changed after it was applied, said when
 * status_only, else applied in a transaction of its own with its bookkeeping row (*applied
 * counts it). */
static bx_status migration_one(PGconn *db, const char *sql_dir, const char *name, bool status_only,
                               int *applied, bx_error *err)
{
    char path[1024], version[5], sum[BX_SHA256_HEX_LEN + 1];
    snprintf(path, sizeof(path), "%s/%s", sql_dir, name);
    memcpy(version, name, 4);
    version[4] = '\0';
    bx_buf sql;
    bx_buf_init(&sql, 16 << 20);
    PGresult *res = NULL;
    bx_status s = bx_buf_read_file(&sql, path, err);
    if (s == BX_OK)
        bx_sha256_hex(sql.data ? sql.data : "", sql.len, sum);
    IFOK(s, bx_pg_query(db, "SELECT sha256 FROM public.bx_migration WHERE version = $1::int", 1,
                        (const char *[]){version}, &res, err));
    if (s == BX_OK && PQntuples(res) == 1) {
        if (strcmp(PQgetvalue(res, 0, 0), sum) != 0)
            s = BX_ERR(err, BX_ECONFLICT,
                       "%s was changed after it was applied (landed migrations are never "
                       "edited: add a new one)",
                       name);
        else if (status_only)
            printf("applied  %s\n", name);
    } else if (s == BX_OK && status_only) {
        printf("pending  %s\n", name);
    } else if (s == BX_OK) {
        const char *ins[] = {version, name, sum};
        s = bx_pg_exec(db, "BEGIN", err);
        IFOK(s, bx_pg_exec(db, sql.data ? sql.data : "", err));
        IFOK(s, bx_pg_command(db,
                              "INSERT INTO public.bx_migration (version, name, sha256) "
                              "VALUES ($1::int, $2, $3)",
                              3, ins, NULL, err));
        s = bx_pg_end(db, s, err);
        if (s != BX_OK) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            BX_ERR(err, s, "%s: %s", name, msg);
        } else {
            printf("applied  %s\n", name);
            (*applied)++;
        }
    }
    PQclear(res);
    bx_buf_free(&sql);
    return s;
}

int bxctl_migrate(bxctl_ctx *ctx, int argc, char **argv)
{
    bool status_only = argc > 0 && strcmp(argv[0], "--status") == 0;
    char *names[MAX_MIGRATIONS] = {0};
    int count = migration_names(ctx->sql_dir, names);
    if (count < 0)
        return 1;
    PGconn *db = bxctl_db(ctx);
    bx_error err = {0};
    int rc = 1, applied = 0;
    bx_status s = db ? BX_OK : BX_EIO;
    IFOK(s, bx_pg_exec(db,
                       "CREATE TABLE IF NOT EXISTS public.bx_migration ("
                       " version int PRIMARY KEY, name text NOT NULL,"
                       " sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                       &err));
    /* One migrator at a time: a second `bxctl migrate` waits here. */
    IFOK(s, bx_pg_exec(db, "SELECT pg_advisory_lock(7426001)", &err));
    for (int i = 0; i < count && s == BX_OK; i++)
        s = migration_one(db, ctx->sql_dir, names[i], status_only, &applied, &err);
    if (db && s != BX_OK) {
        fprintf(stderr, "bxctl migrate: %s\n", err.msg);
    } else if (db) {
        if (!status_only)
            printf("migrations: %d applied now, %d in total\n", applied, count);
        rc = 0;
    }
    for (int i = 0; i < count; i++)
        free(names[i]);
    if (db)
        PQfinish(db);
    return rc;
}
