/* provider_impl: what an adapter behind provider.h provides, and helpers the adapters share.
 * Private to bx-notify's provider*.c files. */
#ifndef BX_NOTIFY_PROVIDER_IMPL_H
#define BX_NOTIFY_PROVIDER_IMPL_H

#include "provider.h"

#include "bx_buf.h"

#include <stddef.h>

typedef struct provider_ops {
    const char *name;
    /* Opens the adapter's state from cfg (strings are copied). */
    bx_status (*open)(const provider_config *cfg, void **state, bx_error *err);
    void (*close)(void *state);
    /* m has been checked by provider_send (id, phone, text). */
    bx_status (*send)(void *state, const provider_message *m, provider_result *res, bx_error *err);
    bx_status (*query)(void *state, const char *notification_id, const char *phone,
                       const char *yyyymmdd, provider_result *res, bx_error *err);
    bx_status (*parse_receipts)(void *state, const char *body, size_t len,
                                const char *signature_header, provider_receipt_fn fn, void *ctx,
                                bx_error *err);
} provider_ops;

extern const provider_ops provider_file_ops;
extern const provider_ops provider_webhook_ops;
extern const provider_ops provider_aliyun_ops;

/* Sets res to outcome with a reason (printf-style, truncated to fit). */
void provider_result_set(provider_result *res, provider_outcome outcome, const char *fmt, ...)
    BX_PRINTF(3, 4);

/* True for an 11-digit mainland mobile number (1 then 10 digits). */
bool provider_phone_ok(const char *phone);

/* A notification id: 1..128 printable ASCII characters without spaces or quotes. */
bool provider_id_ok(const char *id);

/* Parses the generic receipt format (webhook and file): a JSON object {"receipts": [...]} or an
 * array, each receipt {"id": notification id, "message_id": "...", "status": "delivered" |
 * "failed" | "pending", "reason": "..."}; calls fn for each. BX_EINVAL naming the receipt and the
 * field for anything else; fn is not called at all then. */
bx_status provider_generic_receipts(const char *body, size_t len, provider_receipt_fn fn, void *ctx,
                                    bx_error *err) BX_MUSTCHECK;

/* Lower-case hex HMAC-SHA256 of the message with key into out (at least 65 bytes). */
void provider_hmac_sha256_hex(const char *key, const char *msg, size_t len, char out[65]);

/* The webhook's signature: hex HMAC-SHA256(secret, timestamp + "." + body) into out (65 bytes). */
void provider_webhook_signature(const char *secret, const char *timestamp, const char *body,
                                size_t len, char out[65]);

/* ---- Aliyun RPC signing (pure, for tests) ---- */

typedef struct provider_param {
    const char *key;
    const char *value;
} provider_param;

/* Aliyun's canonicalized query string (every parameter but Signature, sorted by name, names and
 * values percent-encoded, joined with & and =) into canonical, and the string to sign (method "&"
 * "%2F" "&" percent-encoded canonical) into sts. */
bx_status provider_aliyun_string_to_sign(const char *method, const provider_param *params, size_t n,
                                         bx_buf *canonical, bx_buf *sts) BX_MUSTCHECK;
/* Base64 of HMAC-SHA1(access_key_secret "&", sts) into out (at least 29 bytes). */
void provider_aliyun_signature(const char *access_key_secret, const char *sts, size_t len,
                               char out[32]);
/* Classifies an answer to SendSms (HTTP status and body) into res: Code "OK" accepts (BizId is
 * the message id); throttling, system and account-wide errors are transient; other isv.* codes
 * (a bad number, a refused template) are permanent; a 2xx answer that cannot be read is unknown. */
void provider_aliyun_classify(long http_status, const char *body, size_t len, provider_result *res);

#endif
