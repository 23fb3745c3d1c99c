/* bx-console auth: tokens, CSRF comparison, password and activation-code hashing, and the
 * lockout arithmetic. No database here (identity.c stores what these make). */
#ifndef CONSOLE_AUTH_H
#define CONSOLE_AUTH_H

#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

#define CONSOLE_TOKEN_LEN    43  /* 256 random bits, base64url without padding */
#define CONSOLE_HASH_LEN     32  /* SHA-256 */
#define CONSOLE_PASSWORD_MIN 10  /* characters */
#define CONSOLE_PASSWORD_MAX 128 /* bytes */
#define CONSOLE_PWHASH_LEN   128 /* crypto_pwhash_STRBYTES */
#define CONSOLE_CODE_DIGITS  8

/* Call once before any other function (libsodium's sodium_init); BX_EFATAL when it fails. */
bx_status console_auth_init(bx_error *err) BX_MUSTCHECK;

/* A fresh random token (session cookie, CSRF secret): 32 bytes from the system's CSPRNG. */
void console_token_new(char out[CONSOLE_TOKEN_LEN + 1]);
/* True when s has the shape of a token (43 of A-Z a-z 0-9 - _). */
bool console_token_valid(const char *s);
/* SHA-256 of the token text: what the database keeps. */
void console_token_hash(const char *token, unsigned char out[CONSOLE_HASH_LEN]);
/* Constant-time comparison of two NUL-terminated tokens; false when either is NULL or empty. */
bool console_token_equal(const char *a, const char *b);

/* An 8-digit activation code, uniformly random ("00417263" is possible). */
void console_code_new(char out[CONSOLE_CODE_DIGITS + 1]);
/* SHA-256 of "<staff_id>:<code>". */
void console_code_hash(const char *staff_id, const char *code, unsigned char out[CONSOLE_HASH_LEN]);

/* Argon2id (libsodium crypto_pwhash_str, interactive limits). BX_ENOMEM when it fails. */
bx_status console_password_hash(const char *password, char out[CONSOLE_PWHASH_LEN],
                                bx_error *err) BX_MUSTCHECK;
bool console_password_verify(const char *hash, const char *password);
/* NULL when the new password is acceptable, else why not (Chinese, for the page): at least
 * CONSOLE_PASSWORD_MIN characters, at most CONSOLE_PASSWORD_MAX bytes, valid UTF-8, not the staff
 * id or the phone, not one repeated character. */
const char *console_password_refusal(const char *password, const char *staff_id, const char *phone);

/* Growing delays: after `failures` consecutive failures, the next attempt waits this many
 * seconds: none before free_attempts, then base_s doubled for each further failure, at most
 * max_s. */
typedef struct console_lockout {
    long long free_attempts;
    long long base_s;
    long long max_s;
    long long window_s; /* failures older than this are forgotten */
} console_lockout;
long long console_lockout_delay_s(const console_lockout *l, long long failures);

#endif
