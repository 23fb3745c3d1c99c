/* provider: the one interface bx-notify sends SMS through. Adapters: "file" (a JSON-lines sink for
 * development), "webhook" (a generic HTTPS endpoint, JSON body signed with HMAC-SHA256) and
 * "aliyun" (Aliyun SMS SendSms, with OutId set to the notification id for reconciliation).
 *
 * The dispatcher records its intent in PostgreSQL before calling send, so a send must tell apart
 * what it knows happened (accepted, rejected) from what it does not (unknown: a timeout after the
 * request left). After unknown the dispatcher calls query (or waits for a receipt) before any
 * retry, so the same notification is never sent twice. */
#ifndef BX_NOTIFY_PROVIDER_H
#define BX_NOTIFY_PROVIDER_H

#include "bx_status.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum provider_outcome {
    PROVIDER_ACCEPTED,  /* the provider took it; message_id is set */
    PROVIDER_TRANSIENT, /* certainly not sent (refused before acceptance: 429, 5xx before
                           acceptance, connect failure): retry later */
    PROVIDER_PERMANENT, /* certainly not sent and never will be (bad number, template refused) */
    PROVIDER_UNKNOWN    /* may or may not have been sent (timeout after the request left) */
} provider_outcome;

/* What a status query or a receipt says about one notification. */
typedef enum provider_state {
    PROVIDER_STATE_NONE,      /* the provider has no record of it: it was not sent */
    PROVIDER_STATE_PENDING,   /* accepted, no delivery report yet */
    PROVIDER_STATE_DELIVERED, /* the handset got it */
    PROVIDER_STATE_FAILED     /* accepted but not delivered (the reason says why) */
} provider_state;
/* "none", "pending", "delivered" or "failed" (a status message's words); "pending" for any
 * other value. */
const char *provider_state_name(provider_state st);

typedef struct provider_message {
    const char *notification_id; /* unique, <= 128 chars: the idempotency key and OutId */
    const char *phone;           /* 11-digit mainland mobile number; never logged unmasked */
    const char *text;            /* the rendered message, UTF-8 */
    const char *template_name;   /* for adapters that send a provider template code */
    const char *sign_name;       /* the SMS signature (签名), normally the school's name */
} provider_message;

typedef struct provider_result {
    provider_outcome outcome;
    provider_state state; /* for query and receipts */
    char message_id[129]; /* the provider's id for the message, "" if none */
    char reason[256];     /* why, for anything but accepted or delivered */
    int http_status;      /* 0 when no HTTP answer */
} provider_result;

typedef struct provider provider;

/* Settings read from BX_NOTIFY_PROVIDER_* (see README): kind is "file", "webhook" or "aliyun". */
typedef struct provider_config {
    const char *kind;
    const char *file_path;     /* file: where lines are appended */
    const char *url;           /* webhook: the send URL; aliyun: the endpoint (default
                                  https://dysmsapi.aliyuncs.com/) */
    const char *status_url;    /* webhook: the status query URL ("" when the provider has none) */
    const char *secret;        /* webhook: the HMAC key; aliyun: AccessKeySecret */
    const char *access_key_id; /* aliyun */
    const char *template_code; /* aliyun: the approved template code (SMS_...) for every
                                  template, or "name=SMS_...,name2=SMS_..." per template (an entry
                                  without a name is the default) */
    long timeout_ms;           /* a request's whole time limit */
    const char *ca_file;       /* optional CA bundle for HTTPS */
} provider_config;

bx_status provider_open(const provider_config *cfg, provider **out, bx_error *err) BX_MUSTCHECK;
void provider_close(provider *p);
const char *provider_name(const provider *p);

/* Sends one message. Returns BX_OK with the outcome in res; an error status only for misuse. */
bx_status provider_send(provider *p, const provider_message *m, provider_result *res,
                        bx_error *err) BX_MUSTCHECK;

/* Asks the provider what became of notification_id (sent at local date yyyymmdd for aliyun's
 * QuerySendDetails). res->state says; BX_ENOTFOUND when the adapter cannot query (then the
 * dispatcher waits for a receipt up to its limit). */
bx_status provider_query(provider *p, const char *notification_id, const char *phone,
                         const char *yyyymmdd, provider_result *res, bx_error *err) BX_MUSTCHECK;

/* Parses a delivery receipt body posted to bx-notify's receipt endpoint by this provider: one or
 * more receipts; calls fn for each with the notification id (OutId) and the state. BX_EINVAL for a
 * body that is not a receipt; signature checked where the provider signs receipts: for the webhook,
 * signature_header is the request's X-Bx-Signature header ("t=<unix seconds>,sha256=<hex
 * HMAC-SHA256(secret, t "." body)>"), BX_EDENIED when it is missing, stale or wrong; the file and
 * aliyun adapters ignore it (Aliyun does not sign its pushes: keep the receipt URL private). All or
 * nothing: fn is not called for a body with any bad receipt. */
typedef void (*provider_receipt_fn)(void *ctx, const char *notification_id, const char *message_id,
                                    provider_state state, const char *reason);
bx_status provider_parse_receipts(provider *p, const char *body, size_t len,
                                  const char *signature_header, provider_receipt_fn fn, void *ctx,
                                  bx_error *err) BX_MUSTCHECK;

#endif
