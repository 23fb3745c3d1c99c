/* bx_pg: PostgreSQL connections with retry, and small helpers over libpq. */
#ifndef BX_PG_H
#define BX_PG_H

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_status.h"

#include <libpq-fe.h>

/* Connects to url, retrying with backoff (100 ms doubling up to 2 s) for up to wait_ms.
 * On success *out is the connection (caller closes with PQfinish). The password comes from the
 * URL, libpq's PGPASSFILE (deploy/local/bx-infra), or BX_PG_PASSWORD or the file
 * BX_PG_PASSWORD_FILE (docker-compose's secrets); the user from the URL or PGUSER. */
bx_status bx_pg_connect(const char *url, int wait_ms, PGconn **out, bx_error *err) BX_MUSTCHECK;
/* Keeps *db connected: does nothing while *db is open and not broken; else closes it (if any) and
 * connects to url as bx_pg_connect does (*db is NULL when that fails). For a service's one
 * connection, after a failure or at start. */
bx_status bx_pg_reconnect(PGconn **db, const char *url, int wait_ms, bx_error *err) BX_MUSTCHECK;
/* Runs sql (no parameters, may hold several statements); BX_EIO with the server's message. */
bx_status bx_pg_exec(PGconn *db, const char *sql, bx_error *err) BX_MUSTCHECK;
/* Runs a parameterised statement; on success *out is the result (caller PQclear). */
bx_status bx_pg_query(PGconn *db, const char *sql, int nparams, const char *const *params,
                      PGresult **out, bx_error *err) BX_MUSTCHECK;
/* Runs a parameterised statement whose rows are not wanted (an INSERT, UPDATE or DELETE); *rows,
 * when rows is not NULL, is how many rows it touched (PQcmdTuples; 0 when it does not say). The
 * result is cleared here. */
bx_status bx_pg_command(PGconn *db, const char *sql, int nparams, const char *const *params,
                        long long *rows, bx_error *err) BX_MUSTCHECK;
/* Runs a lease claim, a statement that takes due rows for owner until the lease ends and returns
 * them: $1 is owner, $2 now and $3 the lease's end (now + lease_ms), both timestamptz text, and
 * $4 max, the most rows to take ("... SET claimed_by = $1, lease_until = $3::timestamptz WHERE id
 * IN (SELECT id ... WHERE due_at <= $2::timestamptz ... FOR UPDATE SKIP LOCKED LIMIT $4::int)
 * RETURNING ..."). On success *out is the result (caller PQclear). */
bx_status bx_pg_claim(PGconn *db, const char *sql, const char *owner, bx_time_ms now,
                      int64_t lease_ms, int max, PGresult **out, bx_error *err) BX_MUSTCHECK;
/* Ends the transaction the caller began with s, the status of its work: COMMIT when s is BX_OK,
 * else ROLLBACK. Returns s, or when COMMIT fails its error (the transaction is rolled back then),
 * so `s = bx_pg_end(db, s, err)` ends every path of a transaction. */
bx_status bx_pg_end(PGconn *db, bx_status s, bx_error *err) BX_MUSTCHECK;
/* Rolls back the open transaction, ignoring errors (the caller is already failing). */
void bx_pg_rollback(PGconn *db);
/* True when the connection broke, so the caller should reconnect. */
int bx_pg_is_broken(PGconn *db);

/* Array literals for a parameter such as $1::text[] (or int[], date[], timestamptz[]: PostgreSQL
 * reads each quoted element through the element type's input), so one statement carries a batch.
 * bx_pg_text_array_add appends v as the next element of the literal being built in b, which must
 * be empty before the first: "{" before the first element, "," before the others; NULL as an
 * unquoted NULL; any other value double-quoted, with \ and " escaped. bx_pg_text_array_end
 * closes it ("{}" when nothing was added). BX_ENOMEM when b's maximum would be passed. */
bx_status bx_pg_text_array_add(bx_buf *b, const char *v) BX_MUSTCHECK;
bx_status bx_pg_text_array_end(bx_buf *b) BX_MUSTCHECK;
/* The whole literal of values[0..n) (NULLs as NULL) into b, which must be empty. */
bx_status bx_pg_text_array(bx_buf *b, const char *const *values, int n) BX_MUSTCHECK;

#endif
