/* bx-console auth: random tokens, constant-time comparison, argon2id, lockout arithmetic. */
#include "auth.h"
#include "bx_json.h"

#include <sodium.h>
#include <string.h>
#include <strings.h>

bx_status console_auth_init(bx_error *err)
{
    if (sodium_init() < 0)
        return BX_ERR(err, BX_EFATAL, "libsodium could not be initialised");
    return BX_OK;
}

void console_token_new(char out[CONSOLE_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, CONSOLE_TOKEN_LEN + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

bool console_token_valid(const char *s)
{
    if (s == NULL || strlen(s) != CONSOLE_TOKEN_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

void console_token_hash(const char *token, unsigned char out[CONSOLE_HASH_LEN])
{
    crypto_hash_sha256(out, (const unsigned char *)token, strlen(token));
}

bool console_token_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL || !a[0] || !b[0])
        return false;
    size_t n = strlen(a);
    if (strlen(b) != n)
        return false;
    return sodium_memcmp(a, b, n) == 0;
}

void console_code_new(char out[CONSOLE_CODE_DIGITS + 1])
{
    for (int i = 0; i < CONSOLE_CODE_DIGITS; i++)
        out[i] = (char)('0' + randombytes_uniform(10));
    out[CONSOLE_CODE_DIGITS] = '\0';
}

void console_code_hash(const char *staff_id, const char *code, unsigned char out[CONSOLE_HASH_LEN])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)staff_id, strlen(staff_id));
    crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)code, strlen(code));
    crypto_hash_sha256_final(&st, out);
}

bx_status console_password_hash(const char *password, char out[CONSOLE_PWHASH_LEN], bx_error *err)
{
    _Static_assert(CONSOLE_PWHASH_LEN == crypto_pwhash_STRBYTES, "argon2id string size");
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return BX_ERR(err, BX_ENOMEM, "argon2id: out of memory");
    return BX_OK;
}

bool console_password_verify(const char *hash, const char *password)
{
    if (hash == NULL || password == NULL || strncmp(hash, "$argon2id$", 10) != 0)
        return false;
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

const char *console_password_refusal(const char *password, const char *staff_id, const char *phone)
{
    if (password == NULL || utf8_chars(password) < CONSOLE_PASSWORD_MIN)
        return "密码至少需要10个字符";
    size_t len = strlen(password);
    if (len > CONSOLE_PASSWORD_MAX)
        return "密码太长（最多128字节）";
    if (!bx_utf8_valid(password, len))
        return "密码含有无效字符";
    if (staff_id && strcasecmp(password, staff_id) == 0)
        return "密码不能与工号相同";
    if (phone && phone[0] && strstr(password, phone) != NULL)
        return "密码不能包含手机号";
    bool same = true;
    for (size_t i = 1; i < len; i++)
        same = same && password[i] == password[0];
    if (same)
        return "密码不能由同一个字符重复组成";
    return NULL;
}

long long console_lockout_delay_s(const console_lockout *l, long long failures)
{
    if (failures < l->free_attempts || failures <= 0)
        return 0;
    long long delay = l->base_s;
    for (long long i = l->free_attempts; i < failures && delay < l->max_s; i++)
        delay *= 2;
    return delay < l->max_s ? delay : l->max_s;
}
