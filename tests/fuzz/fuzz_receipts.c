/* fuzz_receipts: libFuzzer target for the delivery receipts bx-notify's providers post to its
 * receipt endpoint (provider_parse_receipts): the webhook's signed generic format, Aliyun's
 * SmsReport array and the file adapter's generic format. The first byte picks the adapter and, for
 * the webhook, whether the body is signed correctly (so the parser behind the signature is
 * reached) or the signature header is the input's first line. The contract checked:
 * - all or nothing: a refused body calls back for nothing; an accepted one for each receipt;
 * - each receipt handed on has a notification id the provider could have been given (1 to 128
 *   printable ASCII bytes), a message id of at most 128 bytes and a reason of at most 255, both
 *   valid UTF-8, and a state the adapter can report (Aliyun: delivered or failed);
 * - a refusal is EINVAL with a message (EDENIED only for the webhook's signature), and a body
 *   signed correctly is never refused for its signature. */
#include "bx_json.h"
#include "provider.h"
#include "provider_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SECRET "fuzz-secret-0123456789abcdef"

static provider *webhook, *aliyun, *file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    bx_error err = {0};
    provider_config w = {
        .kind = "webhook", .url = "http://127.0.0.1:9/send", .secret = SECRET, .timeout_ms = 1000};
    provider_config a = {.kind = "aliyun",
                         .url = "http://127.0.0.1:9/",
                         .secret = SECRET,
                         .access_key_id = "LTAIfuzz",
                         .template_code = "SMS_1",
                         .timeout_ms = 1000};
    provider_config f = {.kind = "file", .file_path = "/dev/null"};
    if (provider_open(&w, &webhook, &err) != BX_OK || provider_open(&a, &aliyun, &err) != BX_OK ||
        provider_open(&f, &file, &err) != BX_OK) {
        fprintf(stderr, "provider_open: %s\n", err.msg);
        abort();
    }
    return 0;
}

struct seen {
    int calls;
    bool aliyun;
};

static void on_receipt(void *ctx, const char *notification_id, const char *message_id,
                       provider_state state, const char *reason)
{
    struct seen *seen = ctx;
    seen->calls++;
    INVARIANT(notification_id != NULL && provider_id_ok(notification_id));
    INVARIANT(message_id != NULL && strlen(message_id) <= 128 &&
              bx_utf8_valid(message_id, strlen(message_id)));
    INVARIANT(reason != NULL && strlen(reason) <= 255 && bx_utf8_valid(reason, strlen(reason)));
    if (seen->aliyun)
        INVARIANT(state == PROVIDER_STATE_DELIVERED || state == PROVIDER_STATE_FAILED);
    else
        INVARIANT(state == PROVIDER_STATE_DELIVERED || state == PROVIDER_STATE_FAILED ||
                  state == PROVIDER_STATE_PENDING);
}

/* Receipts a body holds if the adapter takes it: the length of its array. */
static int receipts_in(const char *body, size_t len, bool aliyun_format)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *list = root;
    if (!aliyun_format && cJSON_IsObject(root))
        list = cJSON_GetObjectItemCaseSensitive(root, "receipts");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    cJSON_Delete(root);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 4;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char header[160] = "";
    provider *p = mode == 2 ? aliyun : mode == 3 ? file : webhook;
    if (mode == 0) {
        /* Signed as the provider would sign it, a second ago. */
        char ts[24], hex[65];
        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL) - 1);
        provider_webhook_signature(SECRET, ts, body, len, hex);
        snprintf(header, sizeof(header), "t=%s,sha256=%s", ts, hex);
    } else if (mode == 1) {
        /* The header is the first line, the body the rest. */
        const char *nl = memchr(body, '\n', len);
        size_t hl = nl ? (size_t)(nl - body) : len;
        if (hl >= sizeof(header))
            hl = sizeof(header) - 1;
        memcpy(header, body, hl);
        header[hl] = '\0';
        size_t skip = nl ? (size_t)(nl - body) + 1 : len;
        body += skip;
        len -= skip;
    }
    /* The parsers take a body and its length; give them a copy of exactly that many bytes. */
    char *copy = malloc(len ? len : 1);
    INVARIANT(copy != NULL);
    if (len)
        memcpy(copy, body, len);
    struct seen seen = {.calls = 0, .aliyun = p == aliyun};
    bx_error err = {0};
    bx_status s = provider_parse_receipts(p, copy, len, header, on_receipt, &seen, &err);
    if (s == BX_OK) {
        INVARIANT(seen.calls >= 1);
        INVARIANT(seen.calls == receipts_in(copy, len, p == aliyun));
    } else {
        INVARIANT(seen.calls == 0);
        INVARIANT(err.msg[0] != '\0');
        INVARIANT(s == BX_EINVAL || (s == BX_EDENIED && p == webhook));
        if (mode == 0)
            INVARIANT(s != BX_EDENIED);
    }
    free(copy);
    return 0;
}
