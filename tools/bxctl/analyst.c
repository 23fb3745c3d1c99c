/* bxctl analyst: analysts' Kafka credentials. An analyst reads the pseudonymised streams
 * bx.analytics.* and nothing else, as the Kafka principal "analyst.<name>", in consumer groups
 * named "analyst.<name>.<purpose>". The password is made here, shown once and never stored: what
 * is kept (analytics.analyst, migration 0017) is the SCRAM-SHA-512 credential as the broker keeps
 * it (salt, iterations, salted password), so the broker can be given it (again) without the
 * password: `bxctl analyst scram <name>` prints it in the form kafka-storage's --add-scram and
 * the AlterUserScramCredentials API take. */
#include "bx_pg.h"
#include "bxctl.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define SCRAM_ITERATIONS 8192
#define SALT_BYTES       16
#define SECRET_BYTES     24
#define SALTED_BYTES     64 /* SHA-512 */

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 32 || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_' &&
            s[i] != '-')
            return false;
    return true;
}

/* Base64 (standard alphabet, padded) of n bytes into out (at least 4 * (n + 2) / 3 + 1). */
static void base64(const unsigned char *in, int n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, n);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static int analyst_create(PGconn *db, const char *name)
{
    if (!name_valid(name)) {
        fprintf(stderr,
                "bxctl analyst create: name \"%s\" is not 1 to 32 of [a-z0-9_-] starting "
                "with a letter\n",
                name);
        return 2;
    }
    unsigned char secret[SECRET_BYTES], salt[SALT_BYTES], salted[SALTED_BYTES];
    char password[SECRET_BYTES * 2], salt_hex[2 * SALT_BYTES + 4], salted_hex[2 * SALTED_BYTES + 4];
    if (RAND_bytes(secret, sizeof(secret)) != 1 || RAND_bytes(salt, sizeof(salt)) != 1) {
        fprintf(stderr, "bxctl analyst create: no randomness available\n");
        return 1;
    }
    /* URL-safe text of the secret, so it pastes into any client configuration. */
    base64(secret, sizeof(secret), password);
    for (char *p = password; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    /* SCRAM's SaltedPassword = Hi(password, salt, i): PBKDF2 with HMAC-SHA-512 (RFC 5802, 7677). */
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof(salt), SCRAM_ITERATIONS,
                          EVP_sha512(), sizeof(salted), salted) != 1) {
        fprintf(stderr, "bxctl analyst create: cannot derive the SCRAM credential\n");
        return 1;
    }
    snprintf(salt_hex, 3, "\\x");
    hex(salt, sizeof(salt), salt_hex + 2);
    snprintf(salted_hex, 3, "\\x");
    hex(salted, sizeof(salted), salted_hex + 2);
    char principal[48], prefix[48], iterations[16];
    snprintf(principal, sizeof(principal), "analyst.%s", name);
    snprintf(prefix, sizeof(prefix), "analyst.%s.", name);
    snprintf(iterations, sizeof(iterations), "%d", SCRAM_ITERATIONS);
    const char *params[] = {name, principal, prefix, iterations, salt_hex, salted_hex};
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(db,
                              "INSERT INTO analytics.analyst (name, principal, group_prefix, "
                              "iterations, salt, salted_password) VALUES ($1, $2, $3, $4::int, "
                              "$5::bytea, $6::bytea) ON CONFLICT (name) DO NOTHING RETURNING name",
                              6, params, &res, &err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(&err, BX_ECONFLICT,
                   "analyst \"%s\" exists (bxctl analyst disable, then a new "
                   "name)",
                   name);
    PQclear(res);
    if (s != BX_OK) {
        fprintf(stderr, "bxctl analyst create: %s\n", err.msg);
        return 1;
    }
    /* The only time the password is shown: a client configuration (librdkafka properties). */
    printf("# baoxue analyst %s: Kafka client settings; the password is not shown again\n"
           "security.protocol=SASL_SSL\n"
           "sasl.mechanism=SCRAM-SHA-512\n"
           "sasl.username=%s\n"
           "sasl.password=%s\n"
           "# consumer groups: %s<purpose>, for example group.id=%sdashboard\n"
           "# topics (read only): bx.analytics.risk.v1 bx.analytics.attendance.v1 "
           "bx.analytics.cases.v1\n",
           name, principal, password, prefix, prefix);
    fprintf(stderr,
            "analyst %s created as Kafka principal User:%s (groups %s*); the broker accepts it "
            "once SASL/SCRAM is on and it was given the credential (bxctl analyst scram %s)\n",
            name, principal, prefix, name);
    return 0;
}

static int analyst_list(PGconn *db)
{
    PGresult *res = NULL;
    bx_error err = {0};
    if (bx_pg_query(db,
                    "SELECT name, principal, group_prefix, " BXCTL_ISO(
                        "created_at") ", "
                                      "coalesce(" BXCTL_ISO(
                                          "applied_at") ", '-'), disabled_at IS NOT NULL "
                                                        "FROM analytics.analyst ORDER BY name",
                    0, NULL, &res, &err) != BX_OK) {
        fprintf(stderr, "bxctl analyst list: %s\n", err.msg);
        return 1;
    }
    printf("%-20s  %-28s  %-25s  %-25s  %s\n", "name", "principal", "created_at", "applied_at",
           "state");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-20s  %-28s  %-25s  %-25s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
               PQgetvalue(res, i, 5)[0] == 't' ? "disabled" : "active");
    PQclear(res);
    return 0;
}

static int analyst_disable(PGconn *db, const char *name)
{
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(db,
                              "UPDATE analytics.analyst SET disabled_at = now() WHERE name = $1 "
                              "AND disabled_at IS NULL RETURNING principal",
                              1, (const char *[]){name}, &res, &err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(&err, BX_ENOTFOUND, "no active analyst \"%s\"", name);
    if (s != BX_OK) {
        PQclear(res);
        fprintf(stderr, "bxctl analyst disable: %s\n", err.msg);
        return 1;
    }
    printf("disabled %s: delete the broker's credential of User:%s\n", name, PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* The credential in the form of `kafka-storage format --add-scram` (KIP-900). */
static int analyst_scram(PGconn *db, const char *name)
{
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(db,
                              "SELECT principal, iterations, encode(salt, 'base64'), "
                              "encode(salted_password, 'base64') FROM analytics.analyst WHERE "
                              "name = $1 AND disabled_at IS NULL",
                              1, (const char *[]){name}, &res, &err);
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(&err, BX_ENOTFOUND, "no active analyst \"%s\"", name);
    if (s != BX_OK) {
        PQclear(res);
        fprintf(stderr, "bxctl analyst scram: %s\n", err.msg);
        return 1;
    }
    char salt[128] = "", salted[160] = "";
    /* encode(..., 'base64') wraps long lines: keep the characters only */
    const char *in[] = {PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)};
    char *out[] = {salt, salted};
    size_t sizes[] = {sizeof(salt), sizeof(salted)};
    for (int k = 0; k < 2; k++) {
        size_t n = 0;
        for (const char *p = in[k]; *p && n + 1 < sizes[k]; p++)
            if (*p != '\n')
                out[k][n++] = *p;
        out[k][n] = '\0';
    }
    printf("SCRAM-SHA-512=[name=%s,salt=%s,saltedpassword=%s,iterations=%s]\n",
           PQgetvalue(res, 0, 0), salt, salted, PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

int bxctl_analyst(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool one = argc == 2 && (strcmp(sub, "create") == 0 || strcmp(sub, "disable") == 0 ||
                             strcmp(sub, "scram") == 0);
    if (!one && !(argc == 1 && strcmp(sub, "list") == 0)) {
        fprintf(stderr, "usage: bxctl analyst create|disable|scram <name> | analyst list\n");
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    int rc;
    if (strcmp(sub, "create") == 0)
        rc = analyst_create(db, argv[1]);
    else if (strcmp(sub, "disable") == 0)
        rc = analyst_disable(db, argv[1]);
    else if (strcmp(sub, "scram") == 0)
        rc = analyst_scram(db, argv[1]);
    else
        rc = analyst_list(db);
    PQfinish(db);
    return rc;
}
