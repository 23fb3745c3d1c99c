/* bxctl key: a school's credential for bx-ingest, stored as a SHA-256 hash and shown once. */
#include "bx_hex.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* A write of registry.credential (sql with its params) that must touch a row, none being
 * BX_ENOTFOUND with the message none_why, then the registry marked changed so bx-ingest reloads
 * its credentials. 0, or 1 after printing "<cmd>: <why>". */
static int credential_write(PGconn *db, const char *cmd, const char *sql, int nparams,
                            const char *const *params, const char *none_why)
{
    long long rows = 0;
    bx_error err = {0};
    bx_status s = bx_pg_command(db, sql, nparams, params, &rows, &err);
    if (s == BX_OK && rows == 0)
        s = BX_ERR(&err, BX_ENOTFOUND, "%s", none_why);
    IFOK(s, bx_registry_revision_bump(db, &err));
    if (s != BX_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}

static int key_create(PGconn *db, const char *school, const char *label)
{
    if (!bx_id_valid(school)) {
        fprintf(stderr, "bxctl key create: school_id \"%s\" is not a registry id\n", school);
        return 1;
    }
    unsigned char id_bytes[8], secret[32];
    if (RAND_bytes(id_bytes, sizeof(id_bytes)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1) {
        fprintf(stderr, "bxctl key create: no randomness available\n");
        return 1;
    }
    char id[17], secret_hex[65], hash_param[2 + BX_SHA256_HEX_LEN + 1] = "\\x";
    bx_hex_encode(id_bytes, sizeof(id_bytes), id);
    bx_hex_encode(secret, sizeof(secret), secret_hex);
    bx_sha256_hex(secret_hex, 64, hash_param + 2);
    char why[80];
    snprintf(why, sizeof(why), "no school \"%s\" in the registry", school);
    if (credential_write(db, "bxctl key create",
                         "INSERT INTO registry.credential (id, school_id, secret_hash, label) "
                         "SELECT $1, $2, $3::bytea, $4 WHERE EXISTS "
                         "(SELECT 1 FROM registry.school WHERE id = $2)",
                         4, (const char *[]){id, school, hash_param, label}, why) != 0)
        return 1;
    /* The only time the secret is shown: it is not stored anywhere. */
    printf("bxk_%s_%s\n", id, secret_hex);
    fprintf(stderr,
            "credential %s for school %s created; keep the line above, it is not shown "
            "again\n",
            id, school);
    return 0;
}

static int key_list(PGconn *db, const char *school)
{
    PGresult *res =
        bxctl_query(db, "bxctl key list",
                    "SELECT id, school_id, label, created_at, coalesce(revoked_at::text, '') "
                    "FROM registry.credential WHERE $1::text IS NULL OR school_id = $1 "
                    "ORDER BY school_id, created_at",
                    1, (const char *[]){school});
    if (res == NULL)
        return 1;
    static const bxctl_column cols[] = {{"key_id", 16, false},
                                        {"school_id", 12, false},
                                        {"created_at", 25, true},
                                        {"state", 10, false},
                                        {"label", 0, false}};
    BXCTL_TABLE_HEADINGS(cols, "  ");
    for (int i = 0; i < PQntuples(res); i++)
        BXCTL_TABLE_ROW(cols, "  ", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        PQgetvalue(res, i, 3), *PQgetvalue(res, i, 4) ? "revoked" : "active",
                        PQgetvalue(res, i, 2));
    PQclear(res);
    return 0;
}

static int key_revoke(PGconn *db, const char *id)
{
    char why[80];
    snprintf(why, sizeof(why), "no active credential \"%s\"", id);
    if (credential_write(db, "bxctl key revoke",
                         "UPDATE registry.credential SET revoked_at = now() "
                         "WHERE id = $1 AND revoked_at IS NULL",
                         1, (const char *[]){id}, why) != 0)
        return 1;
    printf("revoked %s\n", id);
    return 0;
}

int bxctl_key(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (!((strcmp(sub, "create") == 0 && argc >= 2) || strcmp(sub, "list") == 0 ||
          (strcmp(sub, "revoke") == 0 && argc == 2))) {
        fprintf(stderr, "usage: bxctl key create <school_id> [label] | key list [school_id] | "
                        "key revoke <key_id>\n");
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    int rc;
    if (strcmp(sub, "create") == 0)
        rc = key_create(db, argv[1], argc > 2 ? argv[2] : "");
    else if (strcmp(sub, "list") == 0)
        rc = key_list(db, argc > 1 ? argv[1] : NULL);
    else
        rc = key_revoke(db, argv[1]);
    PQfinish(db);
    return rc;
}
