/* bx_pg: libpq connection with retry and error texts. */
#include "bx_pg.h"
#include "bx_config.h"
#include "bx_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bx_status bx_pg_connect(const char *url, int wait_ms, PGconn **out, bx_error *err)
{
    /* The password, when not in the URL or libpq's PGPASSFILE: BX_PG_PASSWORD[_FILE]. */
    char *password = NULL;
    bx_status s = bx_conf_secret("BX_PG_PASSWORD", &password, err);
    if (s != BX_OK)
        return s;
    const char *keys[] = {"dbname", password ? "password" : NULL, NULL};
    const char *values[] = {url, password, NULL};
    int waited = 0, delay = 100;
    for (;;) {
        PGconn *db = PQconnectdbParams(keys, values, 1);
        if (PQstatus(db) == CONNECTION_OK) {
            PQsetNoticeProcessor(db, NULL, NULL);
            *out = db;
            free(password);
            return BX_OK;
        }
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(db));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(db);
        if (waited >= wait_ms) {
            free(password);
            return BX_ERR(err, BX_ETRANSIENT, "postgresql: %s", msg);
        }
        bx_log_debug("postgresql not ready (%s), retrying in %d ms", msg, delay);
        usleep((useconds_t)delay * 1000);
        waited += delay;
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}

static bx_status result_status(PGconn *db, PGresult *res, bx_error *err)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN)
        return BX_OK;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char msg[400];
    snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
    msg[strcspn(msg, "\n")] = '\0';
    bx_status s = BX_EIO;
    if (state && strcmp(state, "23505") == 0)
        s = BX_ECONFLICT;
    else if (state && (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0))
        s = BX_EINVAL;
    else if (PQstatus(db) != CONNECTION_OK || (state && strncmp(state, "40", 2) == 0))
        s = BX_ETRANSIENT;
    return BX_ERR(err, s, "postgresql: %s", msg);
}

bx_status bx_pg_exec(PGconn *db, const char *sql, bx_error *err)
{
    PGresult *res = PQexec(db, sql);
    bx_status s = result_status(db, res, err);
    PQclear(res);
    return s;
}

bx_status bx_pg_query(PGconn *db, const char *sql, int nparams, const char *const *params,
                      PGresult **out, bx_error *err)
{
    PGresult *res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
    bx_status s = result_status(db, res, err);
    if (s != BX_OK) {
        PQclear(res);
        return s;
    }
    *out = res;
    return BX_OK;
}

bx_status bx_pg_command(PGconn *db, const char *sql, int nparams, const char *const *params,
                        long long *rows, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, sql, nparams, params, &res, err);
    if (s == BX_OK && rows)
        *rows = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return s;
}

bx_status bx_pg_claim(PGconn *db, const char *sql, const char *owner, bx_time_ms now,
                      int64_t lease_ms, int max, PGresult **out, bx_error *err)
{
    char now_text[40], until_text[40], max_text[16];
    bx_time_format_pg(now, now_text);
    bx_time_format_pg(now + lease_ms, until_text);
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {owner, now_text, until_text, max_text};
    return bx_pg_query(db, sql, 4, params, out, err);
}

bx_status bx_pg_end(PGconn *db, bx_status s, bx_error *err)
{
    if (s == BX_OK)
        s = bx_pg_exec(db, "COMMIT", err);
    if (s != BX_OK)
        bx_pg_rollback(db);
    return s;
}

bx_status bx_pg_reconnect(PGconn **db, const char *url, int wait_ms, bx_error *err)
{
    if (*db && !bx_pg_is_broken(*db))
        return BX_OK;
    PQfinish(*db);
    *db = NULL;
    return bx_pg_connect(url, wait_ms, db, err);
}

int bx_pg_is_broken(PGconn *db)
{
    return PQstatus(db) != CONNECTION_OK;
}

void bx_pg_rollback(PGconn *db)
{
    PQclear(PQexec(db, "ROLLBACK"));
}

bx_status bx_pg_text_array_add(bx_buf *b, const char *v)
{
    bx_status s = bx_buf_puts(b, b->len == 0 ? "{" : ",");
    if (v == NULL)
        return s == BX_OK ? bx_buf_puts(b, "NULL") : s;
    IFOK(s, bx_buf_puts(b, "\""));
    while (s == BX_OK && *v) {
        size_t plain = strcspn(v, "\"\\");
        s = bx_buf_append(b, v, plain);
        v += plain;
        if (s == BX_OK && *v) {
            char esc[2] = {'\\', *v++};
            s = bx_buf_append(b, esc, 2);
        }
    }
    IFOK(s, bx_buf_puts(b, "\""));
    return s;
}

bx_status bx_pg_text_array_end(bx_buf *b)
{
    return bx_buf_puts(b, b->len == 0 ? "{}" : "}");
}

bx_status bx_pg_text_array(bx_buf *b, const char *const *values, int n)
{
    bx_status s = BX_OK;
    for (int i = 0; i < n && s == BX_OK; i++)
        s = bx_pg_text_array_add(b, values[i]);
    IFOK(s, bx_pg_text_array_end(b));
    return s;
}
