/* bx-console identity: accounts, sign-in with lockout, activation, sessions, in PostgreSQL
 * (schema console, migration 0010). Each call takes the caller's connection. */
#ifndef CONSOLE_IDENTITY_H
#define CONSOLE_IDENTITY_H

#include "auth.h"
#include "bx_calendar.h"
#include "bx_status.h"
#include "scope.h"

#include <libpq-fe.h>

typedef struct identity_conf {
    long long idle_s;     /* a session unused this long ends */
    long long absolute_s; /* and every session ends this long after sign-in */
    console_lockout account, address;
} identity_conf;

typedef struct identity_session {
    long long id;
    char csrf[CONSOLE_TOKEN_LEN + 1];
    char flash[257]; /* shown once: cleared by the load that returned it */
} identity_session;

/* The session of a cookie token, and its person. BX_ENOTFOUND when there is none in force: an
 * unknown or revoked token, or one found idle, past its absolute expiry, of an account no longer
 * active or whose registry role changed (those are revoked here, with the reason). Its use is
 * recorded (last_seen, idle expiry) at most once a minute, and whenever a flash was shown: a
 * session may end idle up to a minute before its exact limit. */
bx_status identity_session_load(PGconn *db, const char *token, bx_time_ms now,
                                const identity_conf *conf, console_person *person,
                                identity_session *session, bx_error *err) BX_MUSTCHECK;

/* The registry's view of a staff member, with the classes a homeroom teacher holds.
 * BX_ENOTFOUND when the staff id is not in the registry or its role is unknown. */
bx_status identity_person_load(PGconn *db, const char *staff_id, console_person *person,
                               bx_error *err) BX_MUSTCHECK;

typedef enum identity_outcome {
    IDENTITY_OK,
    IDENTITY_REFUSED, /* wrong login, password or code: one message for every reason */
    IDENTITY_LOCKED,  /* too many failures: locked_until says when to try again */
    IDENTITY_WEAK     /* activation only: the new password is refused (why says so) */
} identity_outcome;

typedef struct identity_result {
    identity_outcome outcome;
    bx_time_ms locked_until;
    char token[CONSOLE_TOKEN_LEN + 1]; /* IDENTITY_OK on sign-in: the new session's cookie */
    char staff_id[CONSOLE_ID_MAX + 1];
    const char *why; /* IDENTITY_WEAK */
} identity_result;

/* Sign-in by staff id or mobile number. Checks the account's and the address's lockout first
 * (a locked attempt does not even check the password), records a failure on both, and on
 * success makes a session and audits "sign_in". */
bx_status identity_login(PGconn *db, const char *login, const char *password,
                         const char *client_addr, bx_time_ms now, const identity_conf *conf,
                         identity_result *out, bx_error *err) BX_MUSTCHECK;

/* Activation: staff id, the 8-digit code from the SMS (single use, before its expiry) and a new
 * password; the account becomes active. Failures count like sign-in failures (kind
 * "activation"). Audits "activate". */
bx_status identity_activate(PGconn *db, const char *staff_id, const char *code,
                            const char *password, const char *client_addr, bx_time_ms now,
                            const identity_conf *conf, identity_result *out,
                            bx_error *err) BX_MUSTCHECK;

/* Ends one session (logout): the cookie is worthless from now on. */
bx_status identity_logout(PGconn *db, long long session_id, bx_time_ms now,
                          bx_error *err) BX_MUSTCHECK;
/* Text shown once on the session's next page. */
bx_status identity_flash(PGconn *db, long long session_id, const char *text,
                         bx_error *err) BX_MUSTCHECK;

/* Appends one audit row (console_audit's body). */
bx_status identity_audit(PGconn *db, bx_time_ms now, const char *staff_id, const char *action,
                         const char *student_id, const char *detail, const char *client_addr,
                         bx_error *err) BX_MUSTCHECK;

#endif
