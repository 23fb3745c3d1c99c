/* bxctl staff: people's accounts for bx-console: invite (an 8-digit code by SMS through
 * bx-notify), reset, disable, list. Codes are kept only as SHA-256 and never logged. */
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_hex.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CODE_DIGITS  8
#define NOTIFY_TOPIC "bx.notify.requests.v1"

/* The roles bx.notify.requests.v1 can address by recipient_staff_id. */
static const char *const notify_roles[] = {"homeroom_teacher", "principal",      "academic_office",
                                           "township_officer", "county_officer", NULL};

static void usage(void)
{
    fprintf(stderr,
            "usage: bxctl staff invite <staff_id> [--hours N] [--print]\n"
            "       bxctl staff reset <staff_id> [--hours N] [--print]\n"
            "       bxctl staff disable <staff_id>\n"
            "       bxctl staff list [--school ID]\n"
            "  invite  makes the account and sends a one-time 8-digit activation code by SMS\n"
            "          (template staff_activation through bx-notify); valid N hours (24)\n"
            "  reset   clears the password, ends every session, sends a new code\n"
            "  disable ends every session; the person can no longer sign in\n"
            "  --print shows the code here instead of sending it (a local demo without SMS)\n");
}

static bool code_new(char out[CODE_DIGITS + 1])
{
    for (int i = 0; i < CODE_DIGITS; i++) {
        unsigned char b;
        do {
            if (RAND_bytes(&b, 1) != 1)
                return false;
        } while (b >= 250); /* uniform over 0..249, then mod 10 */
        out[i] = (char)('0' + b % 10);
    }
    out[CODE_DIGITS] = '\0';
    return true;
}

/* "\x<hex>" of SHA-256("<staff_id>:<code>"), as bx-console computes it. */
static void code_hash_param(const char *staff_id, const char *code, char out[68])
{
    char text[80];
    snprintf(text, sizeof(text), "%s:%s", staff_id, code);
    out[0] = '\\';
    out[1] = 'x';
    bx_sha256_hex(text, strlen(text), out + 2);
}

static void on_delivery(void *opaque, rd_kafka_resp_err_t e)
{
    *(rd_kafka_resp_err_t *)opaque = e;
}

static bx_status send_code(bxctl_ctx *ctx, const char *staff_id, const char *role, const char *code,
                           bx_time_ms now, bx_error *err)
{
    char requested[32], request_id[96];
    bx_time_format(now, requested, sizeof(requested));
    snprintf(request_id, sizeof(request_id), "staff-activation:%s:%lld", staff_id, (long long)now);
    bx_buf msg;
    bx_buf_init(&msg, 4096);
    bx_status s = bx_buf_printf(&msg,
                                "{\"schema\":\"" NOTIFY_TOPIC "\",\"request_id\":\"%s\","
                                "\"case_id\":null,\"student_id\":null,"
                                "\"template\":\"staff_activation\",\"recipient_role\":\"%s\","
                                "\"recipient_staff_id\":\"%s\",\"channel\":\"sms\","
                                "\"params\":{\"code\":\"%s\"},"
                                "\"not_before\":null,\"requested_at\":\"%s\"}",
                                request_id, role, staff_id, code, requested);
    bx_producer *p = NULL;
    rd_kafka_resp_err_t delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    IFOK(s, bx_producer_new(ctx->conf.kafka_brokers, NULL, &p, err));
    IFOK(s, bx_producer_send(p, NOTIFY_TOPIC, staff_id, strlen(staff_id), msg.data, msg.len,
                             on_delivery, &delivered));
    IFOK(s, bx_producer_flush(p, 15000));
    bx_producer_free(p, 5000);
    /* the message held the code: wipe our copy */
    if (msg.data)
        memset(msg.data, 0, msg.len);
    bx_buf_free(&msg);
    if (s == BX_OK && delivered != RD_KAFKA_RESP_ERR_NO_ERROR)
        s = BX_ERR(err, BX_EIO, "Kafka did not acknowledge the SMS request: %s",
                   rd_kafka_err2str(delivered));
    return s;
}

static bx_status end_sessions(PGconn *db, const char *staff_id, const char *why,
                              const char *now_param, bx_error *err)
{
    const char *params[] = {staff_id, now_param, why};
    return bx_pg_command(db,
                         "UPDATE console.session SET revoked_at = to_timestamp($2::bigint / "
                         "1000.0), revoked_why = $3 WHERE staff_id = $1 AND revoked_at IS NULL",
                         3, params, NULL, err);
}

static bx_status revoke_codes(PGconn *db, const char *staff_id, const char *now_param,
                              bx_error *err)
{
    const char *params[] = {staff_id, now_param};
    return bx_pg_command(db,
                         "UPDATE console.activation SET revoked_at = to_timestamp($2::bigint / "
                         "1000.0) WHERE staff_id = $1 AND used_at IS NULL AND revoked_at IS NULL",
                         2, params, NULL, err);
}

static bx_status audit(PGconn *db, const char *action, const char *staff_id, const char *now_param,
                       bx_error *err)
{
    char detail[64];
    snprintf(detail, sizeof(detail), "staff %s", staff_id);
    const char *params[] = {now_param, action, detail};
    return bx_pg_command(db,
                         "INSERT INTO console.audit (at, staff_id, action, detail, client_addr) "
                         "VALUES (to_timestamp($1::bigint / 1000.0), 'bxctl', $2, $3, 'bxctl')",
                         3, params, NULL, err);
}

/* Who is invited or reset: the registry's role and phone, and the account's state. */
typedef struct invitee {
    char role[40], state[16];
    bool has_phone;
} invitee;

/* Reads staff_id's role, phone and account state; 1 after saying why there is none (or the
 * query failed), else 0. */
static int invitee_read(PGconn *db, const char *cmd, const char *staff_id, invitee *who)
{
    char what[32];
    snprintf(what, sizeof(what), "bxctl staff %s", cmd);
    PGresult *res = bxctl_query(db, what,
                                "SELECT st.role, coalesce(st.phone, ''), coalesce(a.state, '') "
                                "FROM registry.staff st LEFT JOIN console.account a ON "
                                "a.staff_id = st.id WHERE st.id = $1",
                                1, (const char *[]){staff_id});
    if (res == NULL)
        return 1;
    int rc = PQntuples(res) == 1 ? 0 : 1;
    if (rc == 0) {
        snprintf(who->role, sizeof(who->role), "%s", PQgetvalue(res, 0, 0));
        who->has_phone = PQgetvalue(res, 0, 1)[0] != '\0';
        snprintf(who->state, sizeof(who->state), "%s", PQgetvalue(res, 0, 2));
    } else {
        fprintf(stderr, "bxctl staff %s: no staff %s in the registry\n", cmd, staff_id);
    }
    PQclear(res);
    return rc;
}

/* Why staff_id may not be invited (or reset) now, said on stderr: 1, else 0. */
static int invite_refused(const char *cmd, const char *staff_id, const invitee *who, bool reset,
                          bool print)
{
    /* The account states each command refuses, and why. */
    static const struct {
        bool reset;
        const char *state, *why;
    } refused[] = {
        {false, "active", " already has an active account (reset makes a new code)"},
        {false, "disabled", "'s account is disabled (reset enables it again with a new code)"},
        {true, "", " has no account (invite makes one)"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (refused[i].reset == reset && strcmp(who->state, refused[i].state) == 0) {
            fprintf(stderr, "bxctl staff %s: %s%s\n", cmd, staff_id, refused[i].why);
            return 1;
        }
    bool addressable = false;
    for (size_t i = 0; notify_roles[i]; i++)
        addressable = addressable || strcmp(notify_roles[i], who->role) == 0;
    if (!print && (!who->has_phone || !addressable)) {
        fprintf(stderr,
                "bxctl staff %s: %s cannot get an SMS (%s); give the code in person with "
                "--print\n",
                cmd, staff_id, who->has_phone ? "bx-notify cannot address this role" : "no phone");
        return 1;
    }
    return 0;
}

/* In one transaction: the account (invited again), the sessions ended on a reset, older codes
 * revoked, the new code's hash valid for hours, and the audit row. */
static bx_status code_store(PGconn *db, const char *staff_id, const char *code, bool reset,
                            long long hours, const char *now, bx_error *err)
{
    char hash[68], hours_text[24];
    code_hash_param(staff_id, code, hash);
    snprintf(hours_text, sizeof(hours_text), "%lld", hours);
    bx_status s = bx_pg_exec(db, "BEGIN", err);
    const char *acc[] = {staff_id, now};
    IFOK(s, bx_pg_command(db,
                          "INSERT INTO console.account (staff_id, state, created_at, changed_at) "
                          "VALUES ($1, 'invited', to_timestamp($2::bigint / 1000.0), "
                          "to_timestamp($2::bigint / 1000.0)) ON CONFLICT (staff_id) DO UPDATE "
                          "SET state = 'invited', password_hash = NULL, changed_at = "
                          "EXCLUDED.changed_at",
                          2, acc, NULL, err));
    if (reset)
        IFOK(s, end_sessions(db, staff_id, "reset", now, err));
    IFOK(s, revoke_codes(db, staff_id, now, err));
    const char *ins[] = {staff_id, hash, now, hours_text};
    IFOK(s, bx_pg_command(db,
                          "INSERT INTO console.activation (staff_id, code_hash, created_at, "
                          "expires_at) VALUES ($1, $2::bytea, to_timestamp($3::bigint / 1000.0), "
                          "to_timestamp($3::bigint / 1000.0) + make_interval(hours => $4::int))",
                          4, ins, NULL, err));
    IFOK(s, audit(db, reset ? "staff_reset" : "staff_invite", staff_id, now, err));
    return bx_pg_end(db, s, err);
}

/* invite and reset: a new code (older ones revoked), then the SMS or --print. */
static int invite(bxctl_ctx *ctx, PGconn *db, const char *staff_id, bool reset, long long hours,
                  bool print)
{
    const char *cmd = reset ? "reset" : "invite";
    if (!bx_id_valid(staff_id)) {
        fprintf(stderr, "bxctl staff %s: \"%s\" is not a registry id\n", cmd, staff_id);
        return 2;
    }
    invitee who = {0};
    if (invitee_read(db, cmd, staff_id, &who) != 0 ||
        invite_refused(cmd, staff_id, &who, reset, print) != 0)
        return 1;
    char code[CODE_DIGITS + 1], now[32];
    if (!code_new(code)) {
        fprintf(stderr, "bxctl staff %s: no randomness available\n", cmd);
        return 1;
    }
    bxctl_now_param(now);
    bx_error err = {0};
    int rc = 0;
    if (code_store(db, staff_id, code, reset, hours, now, &err) != BX_OK) {
        fprintf(stderr, "bxctl staff %s: %s\n", cmd, err.msg);
        rc = 1;
    } else if (print) {
        printf("%s\n", code);
        fprintf(stderr,
                "activation code for %s (valid %lld h, single use) printed above; it is "
                "not stored and not shown again\n",
                staff_id, hours);
    } else if (send_code(ctx, staff_id, who.role, code, (bx_time_ms)strtoll(now, NULL, 10), &err) !=
               BX_OK) {
        fprintf(stderr, "bxctl staff %s: %s (run it again: a new code replaces this one)\n", cmd,
                err.msg);
        rc = 1;
    } else {
        printf("activation code for %s sent by SMS (valid %lld h, single use)\n", staff_id, hours);
    }
    memset(code, 0, sizeof(code));
    return rc;
}

static int disable(PGconn *db, const char *staff_id)
{
    bx_error err = {0};
    char now[32];
    bxctl_now_param(now);
    long long accounts = 0;
    const char *params[] = {staff_id, now};
    bx_status s = bx_pg_exec(db, "BEGIN", &err);
    IFOK(s, bx_pg_command(db,
                          "UPDATE console.account SET state = 'disabled', changed_at = "
                          "to_timestamp($2::bigint / 1000.0) WHERE staff_id = $1",
                          2, params, &accounts, &err));
    if (s == BX_OK && accounts != 1)
        s = BX_ERR(&err, BX_ENOTFOUND, "%s has no account", staff_id);
    IFOK(s, end_sessions(db, staff_id, "disabled", now, &err));
    IFOK(s, revoke_codes(db, staff_id, now, &err));
    IFOK(s, audit(db, "staff_disable", staff_id, now, &err));
    s = bx_pg_end(db, s, &err);
    if (s != BX_OK) {
        fprintf(stderr, "bxctl staff disable: %s\n", err.msg);
        return 1;
    }
    printf("%s disabled; every session ended\n", staff_id);
    return 0;
}

static int list(PGconn *db, const char *school)
{
    PGresult *res = bxctl_query(
        db, "bxctl staff list",
        "SELECT st.id, st.role, coalesce(st.school_id, st.township_code, "
        "st.county_code, st.area_code, ''), coalesce(a.state, 'none'), "
        "coalesce(" BXCTL_ISO(
            "a.changed_at") ", ''), "
                            "(SELECT count(*) FROM console.session se WHERE se.staff_id = st.id "
                            "AND se.revoked_at IS NULL AND se.absolute_expires_at > now()), "
                            "coalesce((SELECT " BXCTL_ISO(
                                "max(se.created_at)") " FROM console.session se "
                                                      "WHERE se.staff_id = st.id), '') "
                                                      "FROM registry.staff st LEFT JOIN "
                                                      "console.account a ON a.staff_id = st.id "
                                                      "WHERE $1::text IS NULL OR st.school_id = "
                                                      "$1 ORDER BY st.id",
        1, (const char *[]){school});
    if (res == NULL)
        return 1;
    static const bxctl_column cols[] = {{"staff_id", 20, false},   {"role", 17, false},
                                        {"place", 12, false},      {"account", 9, false},
                                        {"changed", 16, false},    {"sessions", 8, false},
                                        {"last sign-in", 0, false}};
    BXCTL_TABLE_HEADINGS(cols, " ");
    for (int i = 0; i < PQntuples(res); i++) {
        char changed[17], last[17];
        bxctl_time_text(PQgetvalue(res, i, 4), changed);
        bxctl_time_text(PQgetvalue(res, i, 6), last);
        BXCTL_TABLE_ROW(cols, " ", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), changed,
                        PQgetvalue(res, i, 5), last);
    }
    PQclear(res);
    return 0;
}

int bxctl_staff(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc < 1) {
        usage();
        return 2;
    }
    const char *sub = argv[0];
    const char *id = NULL, *school = NULL, *hours_text = NULL;
    long long hours = 24;
    bool print = false;
    const bxctl_option opts[] = {BXCTL_FLAG("--print", &print), BXCTL_VALUE("--hours", &hours_text),
                                 BXCTL_VALUE("--school", &school)};
    if (!bxctl_options(argc - 1, argv + 1, opts, sizeof(opts) / sizeof(opts[0]), &id, 1)) {
        usage();
        return 2;
    }
    if (hours_text && !bxctl_number("bxctl staff", "--hours", hours_text, 1, 168, NULL, &hours))
        return 2;
    bool needs_id = strcmp(sub, "list") != 0;
    if ((needs_id && id == NULL) || (!needs_id && id != NULL)) {
        usage();
        return 2;
    }
    if (strcmp(sub, "invite") && strcmp(sub, "reset") && strcmp(sub, "disable") &&
        strcmp(sub, "list")) {
        usage();
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    int rc;
    if (strcmp(sub, "invite") == 0 || strcmp(sub, "reset") == 0)
        rc = invite(ctx, db, id, strcmp(sub, "reset") == 0, hours, print);
    else if (strcmp(sub, "disable") == 0)
        rc = disable(db, id);
    else
        rc = list(db, school);
    PQfinish(db);
    return rc;
}
