/* bxctl analyst: analysts' Kafka principals. An analyst reads the pseudonymised streams
 * bx.analytics.* and nothing else, as the Kafka principal "analyst.<name>", in consumer groups
 * named "analyst.<name>.<purpose>". `create` gives the broker the SCRAM-SHA-512 credential and
 * the prefixed ACLs (analyst_broker) and returns once the analyst can sign in; `disable` takes
 * both away. The password is made here, shown once and never stored: what is kept
 * (analytics.analyst, migration 0017) is the SCRAM-SHA-512 credential as the broker keeps it
 * (salt, iterations, salted password), which `bxctl analyst scram <name>` prints in the form of
 * kafka-storage's --add-scram, to load the analysts into a new installation's first format. */
#include "analyst_broker.h"
#include "bx_hex.h"
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

/* console.audit's row of an analyst command (bxctl's own actor, as privacy erase has it). */
static bx_status audit(PGconn *db, const char *action, const char *name, const char *detail,
                       bx_error *err)
{
    char now[32], text[300];
    bxctl_now_param(now);
    snprintf(text, sizeof(text), "analyst %s: %s", name, detail);
    const char *params[] = {now, action, text};
    return bx_pg_command(db,
                         "INSERT INTO console.audit (at, staff_id, action, detail, client_addr) "
                         "VALUES (to_timestamp($1::bigint / 1000.0), 'bxctl', $2, $3, 'bxctl')",
                         3, params, NULL, err);
}

/* Takes back what the broker was given for principal by a create that failed later. */
static void broker_undo(const analyst_broker *broker, const char *principal, bool scram, bool acls)
{
    bx_error ignored = {0};
    if (acls && analyst_broker_acls_delete(broker, principal, NULL, &ignored) != BX_OK)
        fprintf(stderr, "bxctl analyst create: undo: %s\n", ignored.msg);
    if (scram && analyst_broker_scram_delete(broker, principal, &ignored) != BX_OK)
        fprintf(stderr, "bxctl analyst create: undo: %s\n", ignored.msg);
}

/* A new analyst's secret: the password (shown once), and the SCRAM-SHA-512 credential the broker
 * keeps, as bytea parameters ("\\x<hex>"). The caller wipes all three after use. */
typedef struct analyst_secret {
    char password[SECRET_BYTES * 2];
    char salt_hex[2 * SALT_BYTES + 4], salted_hex[2 * SALTED_BYTES + 4];
} analyst_secret;

static bool secret_new(analyst_secret *a)
{
    unsigned char secret[SECRET_BYTES], salt[SALT_BYTES], salted[SALTED_BYTES];
    if (RAND_bytes(secret, sizeof(secret)) != 1 || RAND_bytes(salt, sizeof(salt)) != 1) {
        fprintf(stderr, "bxctl analyst create: no randomness available\n");
        return false;
    }
    /* URL-safe text of the secret, so it pastes into any client configuration. */
    base64(secret, sizeof(secret), a->password);
    explicit_bzero(secret, sizeof(secret));
    for (char *p = a->password; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    /* SCRAM's SaltedPassword = Hi(password, salt, i): PBKDF2 with HMAC-SHA-512 (RFC 5802, 7677). */
    if (PKCS5_PBKDF2_HMAC(a->password, (int)strlen(a->password), salt, sizeof(salt),
                          SCRAM_ITERATIONS, EVP_sha512(), sizeof(salted), salted) != 1) {
        fprintf(stderr, "bxctl analyst create: cannot derive the SCRAM credential\n");
        return false;
    }
    snprintf(a->salt_hex, 3, "\\x");
    bx_hex_encode(salt, sizeof(salt), a->salt_hex + 2);
    snprintf(a->salted_hex, 3, "\\x");
    bx_hex_encode(salted, sizeof(salted), a->salted_hex + 2);
    explicit_bzero(salted, sizeof(salted));
    return true;
}

/* The only time the password is shown: a client configuration (librdkafka properties, as
 * confluent-kafka and kcat -F read them), for the listener this installation uses. */
static void print_client_settings(const bxctl_ctx *ctx, const char *name, const char *principal,
                                  const char *prefix, const char *password)
{
    printf("# baoxue analyst %s: Kafka client settings; the password is not shown again\n"
           "bootstrap.servers=%s\n"
           "security.protocol=%s\n"
           "sasl.mechanism=%s\n"
           "sasl.username=%s\n"
           "sasl.password=%s\n"
           "# consumer groups: %s<purpose>, for example group.id=%sdashboard\n"
           "# topics (read only): bx.analytics.risk.v1 bx.analytics.attendance.v1 "
           "bx.analytics.cases.v1\n",
           name, ctx->conf.kafka_brokers, analyst_broker_protocol(), ANALYST_MECHANISM, principal,
           password, prefix, prefix);
    fprintf(stderr,
            "analyst %s created: Kafka principal User:%s signs in (%s) and may read topics %s* "
            "in consumer groups %s*\n",
            name, principal, ANALYST_MECHANISM, ANALYST_TOPIC_PREFIX, prefix);
}

/* In one transaction: the row (a taken name is refused before the broker is touched), the
 * broker's credential and ACLs, a sign-in as the analyst, applied_at and the audit row. A broker
 * failure rolls the row back and takes back what the broker got, so the name can be tried
 * again; the password is then never shown. */
static int analyst_create(bxctl_ctx *ctx, PGconn *db, const analyst_broker *broker,
                          const char *name)
{
    if (!name_valid(name)) {
        fprintf(stderr,
                "bxctl analyst create: name \"%s\" is not 1 to 32 of [a-z0-9_-] starting "
                "with a letter\n",
                name);
        return 2;
    }
    bx_error err = {0};
    if (analyst_broker_ready(broker, &err) != BX_OK) {
        fprintf(stderr, "bxctl analyst create: %s\n", err.msg);
        return 1;
    }
    analyst_secret sec;
    if (!secret_new(&sec)) {
        explicit_bzero(&sec, sizeof(sec));
        return 1;
    }
    char principal[48], prefix[48], iterations[16];
    snprintf(principal, sizeof(principal), "analyst.%s", name);
    snprintf(prefix, sizeof(prefix), "analyst.%s.", name);
    snprintf(iterations, sizeof(iterations), "%d", SCRAM_ITERATIONS);
    const char *params[] = {name, principal, prefix, iterations, sec.salt_hex, sec.salted_hex};
    long long added = 0;
    bool scram_given = false, acls_given = false;
    bx_status s = bx_pg_exec(db, "BEGIN", &err);
    IFOK(s, bx_pg_command(db,
                          "INSERT INTO analytics.analyst (name, principal, group_prefix, "
                          "iterations, salt, salted_password) VALUES ($1, $2, $3, $4::int, "
                          "$5::bytea, $6::bytea) ON CONFLICT (name) DO NOTHING",
                          6, params, &added, &err));
    explicit_bzero(sec.salted_hex, sizeof(sec.salted_hex));
    if (s == BX_OK && added == 0)
        s = BX_ERR(&err, BX_ECONFLICT,
                   "analyst \"%s\" exists (disabled ones too: choose a new name)", name);
    if (s == BX_OK)
        fprintf(stderr, "bxctl analyst create: giving the broker User:%s (%s, ACLs)...\n",
                principal, ANALYST_MECHANISM);
    IFOK(s, analyst_broker_scram_set(broker, principal, sec.password, SCRAM_ITERATIONS, &err));
    scram_given = s == BX_OK;
    /* ACLs are asked for even when CreateAcls fails half-way: the undo removes all of them */
    acls_given = s == BX_OK;
    IFOK(s, analyst_broker_acls_create(broker, principal, prefix, &err));
    IFOK(s, analyst_broker_wait_usable(broker, principal, sec.password, 20000, &err));
    IFOK(s, bx_pg_command(db, "UPDATE analytics.analyst SET applied_at = now() WHERE name = $1", 1,
                          (const char *[]){name}, NULL, &err));
    char detail[200];
    snprintf(detail, sizeof(detail),
             "created: Kafka principal User:%s, reads " ANALYST_TOPIC_PREFIX "* in groups %s*",
             principal, prefix);
    IFOK(s, audit(db, "analyst_create", name, detail, &err));
    s = bx_pg_end(db, s, &err);
    if (s == BX_OK)
        print_client_settings(ctx, name, principal, prefix, sec.password);
    explicit_bzero(&sec, sizeof(sec));
    if (s != BX_OK) {
        broker_undo(broker, principal, scram_given, acls_given);
        fprintf(stderr, "bxctl analyst create: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int analyst_list(PGconn *db)
{
    PGresult *res = bxctl_query(
        db, "bxctl analyst list",
        "SELECT name, principal, group_prefix, " BXCTL_ISO("created_at") ", coalesce(" BXCTL_ISO(
            "applied_at") ", '-'), "
                          "disabled_at IS NOT NULL FROM analytics.analyst "
                          "ORDER BY name",
        0, NULL);
    if (res == NULL)
        return 1;
    static const bxctl_column cols[] = {{"name", 20, false},
                                        {"principal", 28, false},
                                        {"created_at", 25, false},
                                        {"applied_at", 25, false},
                                        {"state", 0, false}};
    BXCTL_TABLE_HEADINGS(cols, "  ");
    for (int i = 0; i < PQntuples(res); i++)
        BXCTL_TABLE_ROW(cols, "  ", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
                        PQgetvalue(res, i, 5)[0] == 't' ? "disabled" : "active");
    PQclear(res);
    return 0;
}

/* The broker first (ACLs, which cut off even a connection already signed in, then the
 * credential), then the row: a broker failure leaves the analyst active, to be disabled again. */
static int analyst_disable(PGconn *db, const analyst_broker *broker, const char *name)
{
    PGresult *res = NULL;
    bx_error err = {0};
    char principal[64] = "";
    int removed = 0;
    bool had_credential = true;
    bx_status s = analyst_broker_ready(broker, &err);
    IFOK(s, bx_pg_exec(db, "BEGIN", &err));
    IFOK(s, bx_pg_query(db,
                        "SELECT principal FROM analytics.analyst WHERE name = $1 AND "
                        "disabled_at IS NULL FOR UPDATE",
                        1, (const char *[]){name}, &res, &err));
    if (s == BX_OK && PQntuples(res) == 0)
        s = BX_ERR(&err, BX_ENOTFOUND, "no active analyst \"%s\"", name);
    if (s == BX_OK)
        snprintf(principal, sizeof(principal), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    IFOK(s, analyst_broker_acls_delete(broker, principal, &removed, &err));
    if (s == BX_OK) {
        s = analyst_broker_scram_delete(broker, principal, &err);
        if (s == BX_ENOTFOUND) { /* made before bxctl gave the broker credentials */
            had_credential = false;
            s = BX_OK;
        }
    }
    IFOK(s, bx_pg_command(db, "UPDATE analytics.analyst SET disabled_at = now() WHERE name = $1", 1,
                          (const char *[]){name}, NULL, &err));
    char detail[160];
    snprintf(detail, sizeof(detail), "broker credential %s, %d ACLs removed",
             had_credential ? "removed" : "absent", removed);
    IFOK(s, audit(db, "analyst_disable", name, detail, &err));
    s = bx_pg_end(db, s, &err);
    if (s != BX_OK) {
        fprintf(stderr, "bxctl analyst disable: %s\n", err.msg);
        return 1;
    }
    printf("disabled %s: User:%s can no longer sign in (its %s credential %s) and %d ACLs of it "
           "were removed\n",
           name, principal, ANALYST_MECHANISM, had_credential ? "removed" : "was absent", removed);
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
    analyst_broker broker = {.brokers = ctx->conf.kafka_brokers, .kafka_home = ctx->kafka_home};
    int rc;
    if (strcmp(sub, "create") == 0)
        rc = analyst_create(ctx, db, &broker, argv[1]);
    else if (strcmp(sub, "disable") == 0)
        rc = analyst_disable(db, &broker, argv[1]);
    else if (strcmp(sub, "scram") == 0)
        rc = analyst_scram(db, argv[1]);
    else
        rc = analyst_list(db);
    PQfinish(db);
    return rc;
}
