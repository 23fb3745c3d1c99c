/* provider: picks the adapter named by the configuration and checks every message before an
 * adapter sees it; helpers the adapters share (results, receipts, HMAC). */
#include "provider_impl.h"

#include "bx_json.h"
#include "bx_name.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX_BYTES 2048 /* ten segments of Chinese text, with room */
#define RECEIPTS_MAX   1000 /* receipts in one body */

struct provider {
    const provider_ops *ops;
    void *state;
};

static const provider_ops *const adapters[] = {&provider_file_ops, &provider_webhook_ops,
                                               &provider_aliyun_ops};

void provider_result_set(provider_result *res, provider_outcome outcome, const char *fmt, ...)
{
    res->outcome = outcome;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
    va_end(ap);
    /* A provider's message quoted to a length ("%.120s") may end in a character cut in two; the
     * reason is stored in PostgreSQL, which refuses text that is not UTF-8. */
    bx_utf8_repair(res->reason);
}

bool provider_phone_ok(const char *phone)
{
    if (phone == NULL || strlen(phone) != 11 || phone[0] != '1')
        return false;
    for (int i = 0; i < 11; i++) {
        if (phone[i] < '0' || phone[i] > '9')
            return false;
    }
    return true;
}

bool provider_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\\')
            return false;
    }
    return true;
}

bx_status provider_open(const provider_config *cfg, provider **out, bx_error *err)
{
    if (cfg == NULL || out == NULL)
        return BX_ERR(err, BX_EINVAL, "provider_open: no configuration");
    const char *kind = cfg->kind && cfg->kind[0] ? cfg->kind : "file";
    const provider_ops *ops = NULL;
    for (size_t i = 0; i < sizeof(adapters) / sizeof(adapters[0]); i++) {
        if (strcmp(adapters[i]->name, kind) == 0)
            ops = adapters[i];
    }
    if (ops == NULL)
        return BX_ERR(err, BX_EINVAL,
                      "BX_NOTIFY_PROVIDER: expected file, webhook or aliyun, got \"%.40s\"", kind);
    provider *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return BX_ERR(err, BX_ENOMEM, "provider_open: out of memory");
    p->ops = ops;
    bx_status s = ops->open(cfg, &p->state, err);
    if (s != BX_OK) {
        free(p);
        return s;
    }
    *out = p;
    return BX_OK;
}

void provider_close(provider *p)
{
    if (p == NULL)
        return;
    p->ops->close(p->state);
    free(p);
}

const char *provider_name(const provider *p)
{
    return p ? p->ops->name : "none";
}

bx_status provider_send(provider *p, const provider_message *m, provider_result *res, bx_error *err)
{
    if (p == NULL || m == NULL || res == NULL || m->notification_id == NULL || m->phone == NULL ||
        m->text == NULL)
        return BX_ERR(err, BX_EINVAL, "provider_send: a message needs an id, a phone and a text");
    memset(res, 0, sizeof(*res));
    res->state = PROVIDER_STATE_NONE;
    if (!provider_id_ok(m->notification_id))
        return BX_ERR(err, BX_EINVAL,
                      "provider_send: notification_id must be 1..128 printable characters");
    /* Bad data is the message's fault, not the caller's: it can never be sent. The reason never
     * carries the number itself. */
    if (!provider_phone_ok(m->phone)) {
        provider_result_set(res, PROVIDER_PERMANENT,
                            "phone: not an 11-digit mainland mobile number");
        return BX_OK;
    }
    size_t tl = strlen(m->text);
    if (tl == 0 || tl > TEXT_MAX_BYTES || !bx_utf8_valid(m->text, tl)) {
        provider_result_set(res, PROVIDER_PERMANENT,
                            "text: empty, longer than %d bytes or not "
                            "UTF-8",
                            TEXT_MAX_BYTES);
        return BX_OK;
    }
    if (m->sign_name != NULL && !bx_utf8_valid(m->sign_name, strlen(m->sign_name))) {
        provider_result_set(res, PROVIDER_PERMANENT, "sign_name: not UTF-8");
        return BX_OK;
    }
    return p->ops->send(p->state, m, res, err);
}

bx_status provider_query(provider *p, const char *notification_id, const char *phone,
                         const char *yyyymmdd, provider_result *res, bx_error *err)
{
    if (p == NULL || res == NULL || !provider_id_ok(notification_id))
        return BX_ERR(err, BX_EINVAL, "provider_query: a notification id is required");
    memset(res, 0, sizeof(*res));
    res->state = PROVIDER_STATE_NONE;
    if (p->ops->query == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "provider %s: no status query", p->ops->name);
    return p->ops->query(p->state, notification_id, phone, yyyymmdd, res, err);
}

bx_status provider_parse_receipts(provider *p, const char *body, size_t len,
                                  const char *signature_header, provider_receipt_fn fn, void *ctx,
                                  bx_error *err)
{
    if (p == NULL || body == NULL || fn == NULL)
        return BX_ERR(err, BX_EINVAL, "provider_parse_receipts: no body");
    return p->ops->parse_receipts(p->state, body, len, signature_header, fn, ctx, err);
}

/* ---- the generic receipt format ---- */

static const char *const state_names[] = {[PROVIDER_STATE_NONE] = "none",
                                          [PROVIDER_STATE_PENDING] = "pending",
                                          [PROVIDER_STATE_DELIVERED] = "delivered",
                                          [PROVIDER_STATE_FAILED] = "failed"};

const char *provider_state_name(provider_state st)
{
    return bx_name_of(state_names, BX_NAMES_COUNT(state_names), (int)st, "pending");
}

/* A receipt's status: delivered, failed or pending ("none" answers a status query only). */
static bx_status state_from(const char *status, provider_state *out)
{
    int st = 0;
    if (bx_name_find(state_names, BX_NAMES_COUNT(state_names), status, &st) != BX_OK ||
        st == PROVIDER_STATE_NONE)
        return BX_EINVAL;
    *out = (provider_state)st;
    return BX_OK;
}

typedef struct receipt_row {
    const char *id, *message_id, *reason;
    provider_state state;
} receipt_row;

bx_status provider_generic_receipts(const char *body, size_t len, provider_receipt_fn fn, void *ctx,
                                    bx_error *err)
{
    static const char *const allowed[] = {"id", "message_id", "status", "reason", NULL};
    cJSON *root = NULL;
    receipt_row *rows = NULL;
    bx_status s = bx_json_parse(body, len, &root, err);
    if (s != BX_OK)
        return s;
    const cJSON *list = root;
    if (cJSON_IsObject(root))
        list = cJSON_GetObjectItemCaseSensitive(root, "receipts");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    if (n <= 0 || n > RECEIPTS_MAX) {
        s = BX_ERR(err, BX_EINVAL, "receipts: expected an array of 1 to %d receipts", RECEIPTS_MAX);
        goto out;
    }
    rows = calloc((size_t)n, sizeof(*rows));
    if (rows == NULL) {
        s = BX_ERR(err, BX_ENOMEM, "receipts: out of memory");
        goto out;
    }
    /* Every receipt is checked before any is handed on: a bad body changes nothing. */
    for (int i = 0; s == BX_OK && i < n; i++) {
        const cJSON *r = cJSON_GetArrayItem(list, i);
        char path[32];
        snprintf(path, sizeof(path), "receipts[%d]", i);
        const char *status = NULL;
        rows[i].message_id = "";
        rows[i].reason = "";
        if (!cJSON_IsObject(r)) {
            s = BX_ERR(err, BX_EINVAL, "%s: expected an object", path);
            break;
        }
        IFOK(s, bx_json_only_keys(r, path, allowed, err));
        IFOK(s, bx_json_get_string(r, path, "id", true, 128, &rows[i].id, err));
        IFOK(s, bx_json_get_string(r, path, "status", true, 16, &status, err));
        if (s == BX_OK) {
            bx_status o =
                bx_json_get_string(r, path, "message_id", false, 128, &rows[i].message_id, err);
            if (o != BX_OK && o != BX_ENOTFOUND)
                s = o;
        }
        if (s == BX_OK) {
            bx_status o = bx_json_get_string(r, path, "reason", false, 200, &rows[i].reason, err);
            if (o != BX_OK && o != BX_ENOTFOUND)
                s = o;
        }
        if (s == BX_OK && !provider_id_ok(rows[i].id))
            s = BX_ERR(err, BX_EINVAL, "%s.id: not a notification id", path);
        if (s == BX_OK && state_from(status, &rows[i].state) != BX_OK)
            s = BX_ERR(err, BX_EINVAL, "%s.status: expected delivered, failed or pending", path);
    }
    for (int i = 0; s == BX_OK && i < n; i++)
        fn(ctx, rows[i].id, rows[i].message_id, rows[i].state, rows[i].reason);
out:
    free(rows);
    cJSON_Delete(root);
    return s;
}

/* ---- signatures ---- */

void provider_hmac_sha256_hex(const char *key, const char *msg, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, len, mac, &maclen);
    for (unsigned int i = 0; i < maclen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[64] = '\0';
}

void provider_webhook_signature(const char *secret, const char *timestamp, const char *body,
                                size_t len, char out[65])
{
    size_t tl = strlen(timestamp);
    char *msg = malloc(tl + 1 + len + 1);
    if (msg == NULL) {
        out[0] = '\0';
        return;
    }
    memcpy(msg, timestamp, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, len);
    provider_hmac_sha256_hex(secret, msg, tl + 1 + len, out);
    free(msg);
}
