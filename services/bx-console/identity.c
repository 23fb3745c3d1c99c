/* bx-console identity: sign-in, lockout, activation and sessions over the console schema. */
#include "identity.h"
#include "bx_clock.h"
#include "bx_log.h"
#include "bx_json.h"
#include "bx_pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_KEY_MAX 64
/* A session's last use is written at most this often (a write and a commit on every page
 * otherwise): an idle session ends up to this much before its exact idle limit. */
#define TOUCH_EVERY_S "60"

static void pg_time(bx_time_ms t, char out[40])
{
    bx_time_format_pg(t, out);
}

/* bytea as the text form "\x<hex>". */
static void bytea_hex(const unsigned char *raw, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = digits[raw[i] >> 4];
        out[3 + 2 * i] = digits[raw[i] & 15];
    }
    out[2 + 2 * n] = '\0';
}

static bx_time_ms parse_ms(const char *text)
{
    return (bx_time_ms)strtoll(text, NULL, 10);
}

#define MS_OF(col) "(extract(epoch FROM " col ") * 1000)::bigint"

_Static_assert(CONSOLE_MAX_CLASSES == 16, "the LIMIT of the classes query");

/* A person's columns from registry.staff st and the joins below: id, name, role, school,
 * township, county, area (the township and county of a school's staff from the school), and the
 * classes whose homeroom teacher they are (ids have no comma). */
#define PERSON_COLUMNS                                                                             \
    "st.id, st.name, st.role, coalesce(st.school_id, ''), "                                        \
    "coalesce(st.township_code, sc.township_code, ''), "                                           \
    "coalesce(st.county_code, tw.county_code, ''), coalesce(st.area_code, ''), "                   \
    "array_to_string(array(SELECT c.id FROM registry.class c WHERE c.homeroom_staff_id = st.id "   \
    "ORDER BY c.id LIMIT 16), ',') "
#define PERSON_NCOLUMNS 8
#define PERSON_JOINS                                                                               \
    "LEFT JOIN registry.school sc ON sc.id = st.school_id "                                        \
    "LEFT JOIN registry.township tw ON tw.code = coalesce(st.township_code, sc.township_code) "

/* The person of row 0 from column col on (PERSON_COLUMNS). */
static bx_status person_from_row(const PGresult *res, int col, const char *staff_id,
                                 console_person *person, bx_error *err)
{
    memset(person, 0, sizeof(*person));
    char *const fields[] = {
        person->staff_id,    person->name,      NULL, person->school_id, person->township_code,
        person->county_code, person->area_code, NULL};
    const size_t sizes[] = {sizeof(person->staff_id),
                            sizeof(person->name),
                            0,
                            sizeof(person->school_id),
                            sizeof(person->township_code),
                            sizeof(person->county_code),
                            sizeof(person->area_code),
                            0};
    _Static_assert(sizeof(sizes) / sizeof(sizes[0]) == PERSON_NCOLUMNS, "the person's columns");
    for (int i = 0; i < PERSON_NCOLUMNS; i++)
        if (fields[i])
            snprintf(fields[i], sizes[i], "%s", PQgetvalue(res, 0, col + i));
    person->role = console_role_parse(PQgetvalue(res, 0, col + 2));
    if (person->role == CONSOLE_ROLE_NONE)
        return BX_ERR(err, BX_ENOTFOUND, "staff %s has no role the console knows", staff_id);
    if (person->role != CONSOLE_HOMEROOM_TEACHER)
        return BX_OK;
    const char *classes = PQgetvalue(res, 0, col + 7);
    while (*classes && person->nclasses < CONSOLE_MAX_CLASSES) {
        size_t n = strcspn(classes, ",");
        if (n > 0 && n <= CONSOLE_ID_MAX)
            snprintf(person->class_ids[person->nclasses++], CONSOLE_ID_MAX + 1, "%.*s", (int)n,
                     classes);
        classes += n + (classes[n] == ',');
    }
    return BX_OK;
}

bx_status identity_person_load(PGconn *db, const char *staff_id, console_person *person,
                               bx_error *err)
{
    memset(person, 0, sizeof(*person));
    const char *params[] = {staff_id};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db, "SELECT " PERSON_COLUMNS "FROM registry.staff st " PERSON_JOINS "WHERE st.id = $1", 1,
        params, &res, err);
    if (s != BX_OK)
        return s;
    if (PQntuples(res) != 1)
        s = BX_ERR(err, BX_ENOTFOUND, "no staff %s in the registry", staff_id);
    IFOK(s, person_from_row(res, 0, staff_id, person, err));
    PQclear(res);
    return s;
}

static bx_status revoke(PGconn *db, long long id, const char *why, bx_time_ms now, bx_error *err)
{
    char id_text[24], now_text[40];
    snprintf(id_text, sizeof(id_text), "%lld", id);
    pg_time(now, now_text);
    const char *params[] = {id_text, now_text, why};
    return bx_pg_command(db,
                         "UPDATE console.session SET revoked_at = $2::timestamptz, "
                         "revoked_why = $3 WHERE id = $1 AND revoked_at IS NULL",
                         3, params, NULL, err);
}

bx_status identity_session_load(PGconn *db, const char *token, bx_time_ms now,
                                const identity_conf *conf, console_person *person,
                                identity_session *session, bx_error *err)
{
    memset(session, 0, sizeof(*session));
    if (!console_token_valid(token))
        return BX_ERR(err, BX_ENOTFOUND, "no session");
    unsigned char hash[CONSOLE_HASH_LEN];
    char hash_text[2 * CONSOLE_HASH_LEN + 3], now_text[40];
    console_token_hash(token, hash);
    bytea_hex(hash, sizeof(hash), hash_text);
    pg_time(now, now_text);
    const char *params[] = {hash_text, now_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db,
        "SELECT s.id, s.staff_id, s.role, s.csrf_token, s.flash, "
        "s.idle_expires_at <= $2::timestamptz, s.absolute_expires_at <= $2::timestamptz, "
        "a.state, coalesce(st.role, ''), "
        "s.flash = '' AND s.last_seen BETWEEN $2::timestamptz - interval '" TOUCH_EVERY_S " "
        "seconds' AND $2::timestamptz, " PERSON_COLUMNS
        "FROM console.session s JOIN console.account a ON a.staff_id = s.staff_id "
        "LEFT JOIN registry.staff st ON st.id = s.staff_id " PERSON_JOINS
        "WHERE s.token_hash = $1::bytea AND s.revoked_at IS NULL",
        2, params, &res, err);
    if (s != BX_OK)
        return s;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return BX_ERR(err, BX_ENOTFOUND, "no session");
    }
    long long id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    char staff_id[CONSOLE_ID_MAX + 1];
    snprintf(staff_id, sizeof(staff_id), "%s", PQgetvalue(res, 0, 1));
    const char *why = NULL;
    if (strcmp(PQgetvalue(res, 0, 6), "t") == 0)
        why = "expired";
    else if (strcmp(PQgetvalue(res, 0, 5), "t") == 0)
        why = "idle";
    else if (strcmp(PQgetvalue(res, 0, 7), "active") != 0)
        why = "disabled";
    else if (PQgetvalue(res, 0, 8)[0] == '\0')
        why = "staff_removed";
    else if (strcmp(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 8)) != 0)
        why = "role_changed";
    snprintf(session->csrf, sizeof(session->csrf), "%s", PQgetvalue(res, 0, 3));
    snprintf(session->flash, sizeof(session->flash), "%s", PQgetvalue(res, 0, 4));
    bool touched_lately = strcmp(PQgetvalue(res, 0, 9), "t") == 0;
    /* the person read with the session (columns 10 on): one round trip per page, not two */
    if (why == NULL)
        s = person_from_row(res, 10, staff_id, person, err);
    PQclear(res);
    if (why) {
        s = revoke(db, id, why, now, err);
        if (s != BX_OK)
            return s;
        bx_log_info("session %lld of %s ended: %s", id, staff_id, why);
        return BX_ERR(err, BX_ENOTFOUND, "no session");
    }
    if (s != BX_OK)
        return s;
    session->id = id;
    if (touched_lately)
        return BX_OK;
    char id_text[24], idle_text[40];
    snprintf(id_text, sizeof(id_text), "%lld", id);
    pg_time(now + conf->idle_s * 1000, idle_text);
    const char *touch[] = {id_text, now_text, idle_text};
    s = bx_pg_command(db,
                      "UPDATE console.session SET last_seen = $2::timestamptz, "
                      "idle_expires_at = least($3::timestamptz, absolute_expires_at), flash = '' "
                      "WHERE id = $1",
                      3, touch, NULL, err);
    return s;
}

/* The lock of (kind, key), or 0 when none is in force. */
static bx_status lock_of(PGconn *db, const char *kind, const char *key, bx_time_ms now,
                         bx_time_ms *until, bx_error *err)
{
    char now_text[40];
    pg_time(now, now_text);
    const char *params[] = {kind, key, now_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db,
        "SELECT " MS_OF(
            "locked_until") " FROM console.login_failure "
                            "WHERE kind = $1 AND key = $2 AND locked_until > $3::timestamptz",
        3, params, &res, err);
    *until = 0;
    if (s == BX_OK && PQntuples(res) == 1)
        *until = parse_ms(PQgetvalue(res, 0, 0));
    PQclear(res);
    return s;
}

/* Counts one failure of (kind, key), forgetting failures older than the window, and sets the
 * lock the count calls for; *until is the lock's end or 0. */
static bx_status record_failure(PGconn *db, const char *kind, const char *key,
                                const console_lockout *l, bx_time_ms now, bx_time_ms *until,
                                bx_error *err)
{
    char now_text[40], window_text[24];
    pg_time(now, now_text);
    snprintf(window_text, sizeof(window_text), "%lld", l->window_s);
    const char *params[] = {kind, key, now_text, window_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db,
        "INSERT INTO console.login_failure AS f (kind, key, failures, last_failure) "
        "VALUES ($1, $2, 1, $3::timestamptz) ON CONFLICT (kind, key) DO UPDATE SET "
        "failures = CASE WHEN f.last_failure < $3::timestamptz - make_interval(secs => $4::int) "
        "THEN 1 ELSE f.failures + 1 END, last_failure = $3::timestamptz RETURNING failures",
        4, params, &res, err);
    *until = 0;
    if (s != BX_OK)
        return s;
    long long failures = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    long long delay = console_lockout_delay_s(l, failures);
    if (delay <= 0)
        return BX_OK;
    *until = now + delay * 1000;
    char until_text[40];
    pg_time(*until, until_text);
    const char *lock[] = {kind, key, until_text};
    s = bx_pg_command(db,
                      "UPDATE console.login_failure SET locked_until = $3::timestamptz "
                      "WHERE kind = $1 AND key = $2",
                      3, lock, NULL, err);
    return s;
}

static bx_status forget_failures(PGconn *db, const char *kind, const char *key, bx_error *err)
{
    const char *params[] = {kind, key};
    return bx_pg_command(db, "DELETE FROM console.login_failure WHERE kind = $1 AND key = $2", 2,
                         params, NULL, err);
}

/* A key for the failure table from what the person typed: bounded, never a phone in clear. */
static void login_key(const char *login, char out[LOGIN_KEY_MAX + 1])
{
    snprintf(out, LOGIN_KEY_MAX + 1, "%s", login);
}

static bool is_phone(const char *s)
{
    if (strlen(s) != 11 || s[0] != '1' || s[1] < '3' || s[1] > '9')
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* Spends as long as a real verification, so an unknown login answers no faster. */
static char dummy_hash[CONSOLE_PWHASH_LEN];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static void make_dummy(void)
{
    if (console_password_hash("not a password of anyone", dummy_hash, NULL) != BX_OK)
        dummy_hash[0] = '\0';
}

/* Locked while the account's lock (a) or the address's (b) is in force, until the later end. */
static void locked_by(identity_result *out, bx_time_ms a, bx_time_ms b)
{
    if (a || b) {
        out->outcome = IDENTITY_LOCKED;
        out->locked_until = a > b ? a : b;
    }
}

static bx_status lock_check(PGconn *db, const char *account_key, const char *addr_kind,
                            const char *client_addr, bx_time_ms now, identity_result *out,
                            bx_error *err)
{
    bx_time_ms a = 0, b = 0;
    bx_status s = lock_of(db, addr_kind, account_key, now, &a, err);
    IFOK(s, lock_of(db, "address", client_addr, now, &b, err));
    if (s == BX_OK)
        locked_by(out, a, b);
    return s;
}

static bx_status fail_both(PGconn *db, const char *kind, const char *account_key,
                           const char *client_addr, bx_time_ms now, const identity_conf *conf,
                           identity_result *out, bx_error *err)
{
    bx_time_ms a = 0, b = 0;
    bx_status s = record_failure(db, kind, account_key, &conf->account, now, &a, err);
    IFOK(s, record_failure(db, "address", client_addr, &conf->address, now, &b, err));
    out->outcome = IDENTITY_REFUSED;
    locked_by(out, a, b);
    return s;
}

static bx_status make_session(PGconn *db, const char *staff_id, const char *role,
                              const char *client_addr, bx_time_ms now, const identity_conf *conf,
                              identity_result *out, bx_error *err)
{
    char csrf[CONSOLE_TOKEN_LEN + 1];
    console_token_new(out->token);
    console_token_new(csrf);
    unsigned char hash[CONSOLE_HASH_LEN];
    char hash_text[2 * CONSOLE_HASH_LEN + 3], now_text[40], idle_text[40], abs_text[40];
    console_token_hash(out->token, hash);
    bytea_hex(hash, sizeof(hash), hash_text);
    pg_time(now, now_text);
    long long idle = conf->idle_s < conf->absolute_s ? conf->idle_s : conf->absolute_s;
    pg_time(now + idle * 1000, idle_text);
    pg_time(now + conf->absolute_s * 1000, abs_text);
    const char *params[] = {hash_text,   staff_id, role,      csrf,
                            client_addr, now_text, idle_text, abs_text};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        db,
        "INSERT INTO console.session (token_hash, staff_id, role, csrf_token, client_addr, "
        "created_at, last_seen, idle_expires_at, absolute_expires_at) VALUES ($1::bytea, $2, $3, "
        "$4, $5, $6::timestamptz, $6::timestamptz, $7::timestamptz, $8::timestamptz)",
        8, params, &res, err);
    PQclear(res);
    return s;
}

bx_status identity_login(PGconn *db, const char *login, const char *password,
                         const char *client_addr, bx_time_ms now, const identity_conf *conf,
                         identity_result *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    out->outcome = IDENTITY_REFUSED;
    pthread_once(&dummy_once, make_dummy);
    char key[LOGIN_KEY_MAX + 1];
    login_key(login, key);
    PGresult *res = NULL;
    bx_status s = BX_OK;
    if (is_phone(login)) {
        /* a phone names an account only when exactly one active account has it */
        const char *params[] = {login};
        s = bx_pg_query(db,
                        "SELECT st.id FROM registry.staff st JOIN console.account a "
                        "ON a.staff_id = st.id WHERE st.phone = $1 AND a.state = 'active'",
                        1, params, &res, err);
        if (s == BX_OK && PQntuples(res) == 1)
            login_key(PQgetvalue(res, 0, 0), key);
        PQclear(res);
        res = NULL;
    }
    IFOK(s, lock_check(db, key, "account", client_addr, now, out, err));
    if (s != BX_OK || out->outcome == IDENTITY_LOCKED)
        return s;
    const char *params[] = {key};
    s = bx_pg_query(db,
                    "SELECT a.password_hash, a.state, st.role FROM console.account a "
                    "JOIN registry.staff st ON st.id = a.staff_id WHERE a.staff_id = $1",
                    1, params, &res, err);
    if (s != BX_OK)
        return s;
    bool ok = false;
    char role[40] = "";
    if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "active") == 0 &&
        !PQgetisnull(res, 0, 0)) {
        ok = console_password_verify(PQgetvalue(res, 0, 0), password);
        snprintf(role, sizeof(role), "%s", PQgetvalue(res, 0, 2));
    } else {
        (void)console_password_verify(dummy_hash, password);
    }
    PQclear(res);
    if (!ok)
        return fail_both(db, "account", key, client_addr, now, conf, out, err);
    s = forget_failures(db, "account", key, err);
    IFOK(s, make_session(db, key, role, client_addr, now, conf, out, err));
    IFOK(s, identity_audit(db, now, key, "sign_in", NULL, "", client_addr, err));
    if (s == BX_OK) {
        out->outcome = IDENTITY_OK;
        snprintf(out->staff_id, sizeof(out->staff_id), "%s", key);
    }
    return s;
}

/* The staff member's registered phone ("" when none), which a new password must not be. */
static bx_status staff_phone(PGconn *db, const char *key, char phone[16], bx_error *err)
{
    const char *params[] = {key};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, "SELECT coalesce(phone, '') FROM registry.staff WHERE id = $1", 1,
                              params, &res, err);
    if (s != BX_OK)
        return s;
    phone[0] = '\0';
    if (PQntuples(res) == 1)
        snprintf(phone, 16, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return BX_OK;
}

/* Inside the open transaction, with the activation row (id_text) locked: the code is used, the
 * account active with the new password hash, its sessions ended, and the activation audited. */
static bx_status use_activation(PGconn *db, const char *key, const char *id_text, const char *hash,
                                const char *now_text, const char *client_addr, bx_time_ms now,
                                bx_error *err)
{
    const char *use[] = {id_text, now_text};
    const char *set[] = {key, hash, now_text};
    const char *end[] = {key, now_text};
    bx_status s =
        bx_pg_command(db, "UPDATE console.activation SET used_at = $2::timestamptz WHERE id = $1",
                      2, use, NULL, err);
    IFOK(s, bx_pg_command(db,
                          "UPDATE console.account SET password_hash = $2, state = 'active', "
                          "changed_at = $3::timestamptz WHERE staff_id = $1",
                          3, set, NULL, err));
    IFOK(s, bx_pg_command(db,
                          "UPDATE console.session SET revoked_at = $2::timestamptz, "
                          "revoked_why = 'reset' WHERE staff_id = $1 AND revoked_at IS NULL",
                          2, end, NULL, err));
    IFOK(s, identity_audit(db, now, key, "activate", NULL, "", client_addr, err));
    return s;
}

bx_status identity_activate(PGconn *db, const char *staff_id, const char *code,
                            const char *password, const char *client_addr, bx_time_ms now,
                            const identity_conf *conf, identity_result *out, bx_error *err)
{
    memset(out, 0, sizeof(*out));
    out->outcome = IDENTITY_REFUSED;
    char key[LOGIN_KEY_MAX + 1];
    login_key(staff_id, key);
    bx_status s = lock_check(db, key, "activation", client_addr, now, out, err);
    if (s != BX_OK || out->outcome == IDENTITY_LOCKED)
        return s;
    char phone[16];
    s = staff_phone(db, key, phone, err);
    if (s != BX_OK)
        return s;
    out->why = console_password_refusal(password, key, phone);
    if (out->why) {
        out->outcome = IDENTITY_WEAK;
        return BX_OK;
    }
    char hash[CONSOLE_PWHASH_LEN];
    s = console_password_hash(password, hash, err);
    if (s != BX_OK)
        return s;
    unsigned char code_hash[CONSOLE_HASH_LEN];
    char code_text[2 * CONSOLE_HASH_LEN + 3], now_text[40];
    console_code_hash(key, code, code_hash);
    bytea_hex(code_hash, sizeof(code_hash), code_text);
    pg_time(now, now_text);
    s = bx_pg_exec(db, "BEGIN", err);
    const char *find[] = {key, code_text, now_text};
    PGresult *res = NULL;
    IFOK(s, bx_pg_query(db,
                        "SELECT c.id FROM console.activation c JOIN console.account a "
                        "ON a.staff_id = c.staff_id WHERE c.staff_id = $1 "
                        "AND c.code_hash = $2::bytea AND c.used_at IS NULL "
                        "AND c.revoked_at IS NULL AND c.expires_at > $3::timestamptz "
                        "AND a.state = 'invited' FOR UPDATE OF c, a",
                        3, find, &res, err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        s = bx_pg_exec(db, "ROLLBACK", err);
        IFOK(s, fail_both(db, "activation", key, client_addr, now, conf, out, err));
        return s;
    }
    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    s = use_activation(db, key, id_text, hash, now_text, client_addr, now, err);
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    s = forget_failures(db, "activation", key, err);
    out->outcome = IDENTITY_OK;
    snprintf(out->staff_id, sizeof(out->staff_id), "%s", key);
    return s;
}

bx_status identity_logout(PGconn *db, long long session_id, bx_time_ms now, bx_error *err)
{
    return revoke(db, session_id, "logout", now, err);
}

bx_status identity_flash(PGconn *db, long long session_id, const char *text, bx_error *err)
{
    char id_text[24], flash[257];
    snprintf(id_text, sizeof(id_text), "%lld", session_id);
    snprintf(flash, sizeof(flash), "%s", text);
    bx_utf8_repair(flash);
    const char *params[] = {id_text, flash};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, "UPDATE console.session SET flash = $2 WHERE id = $1", 2, params,
                              &res, err);
    PQclear(res);
    return s;
}

bx_status identity_audit(PGconn *db, bx_time_ms now, const char *staff_id, const char *action,
                         const char *student_id, const char *detail, const char *client_addr,
                         bx_error *err)
{
    char now_text[40];
    pg_time(now, now_text);
    const char *params[] = {now_text,
                            staff_id,
                            action,
                            student_id,
                            detail ? detail : "",
                            client_addr ? client_addr : ""};
    return bx_pg_command(db,
                         "INSERT INTO console.audit (at, staff_id, action, student_id, "
                         "detail, client_addr) VALUES ($1::timestamptz, $2, $3, $4, $5, $6)",
                         6, params, NULL, err);
}
