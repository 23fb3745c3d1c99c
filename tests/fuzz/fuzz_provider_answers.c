/* fuzz_provider_answers: libFuzzer target for the reading of Aliyun's answers to SendSms
 * (provider_aliyun_classify): the first byte picks the HTTP status, the rest is the body. The
 * contract checked: the outcome is one of the four; accepted only for a 2xx answer whose Code is
 * OK; the reason and the message id are NUL-terminated valid UTF-8 (they are stored in PostgreSQL,
 * which refuses anything else, and shown to operators); an answer that is not accepted says why. */
#include "bx_json.h"
#include "provider.h"
#include "provider_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 201, 204, 299, 400, 403, 404, 408, 429, 500, 502, 503};
    if (size < 1)
        return 0;
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    INVARIANT(body != NULL);
    if (len)
        memcpy(body, data + 1, len);
    provider_result res;
    memset(&res, 0, sizeof(res));
    provider_aliyun_classify(status, body, len, &res);
    INVARIANT(res.outcome == PROVIDER_ACCEPTED || res.outcome == PROVIDER_TRANSIENT ||
              res.outcome == PROVIDER_PERMANENT || res.outcome == PROVIDER_UNKNOWN);
    INVARIANT(res.http_status == (int)status);
    INVARIANT(memchr(res.reason, '\0', sizeof(res.reason)) != NULL);
    INVARIANT(memchr(res.message_id, '\0', sizeof(res.message_id)) != NULL);
    if (!bx_utf8_valid(res.reason, strlen(res.reason))) {
        fprintf(stderr, "reason not UTF-8: %s\n", res.reason);
        abort();
    }
    INVARIANT(bx_utf8_valid(res.message_id, strlen(res.message_id)));
    if (res.outcome == PROVIDER_ACCEPTED)
        INVARIANT(status >= 200 && status < 300 && strstr(body ? body : "", "OK") != NULL);
    else
        INVARIANT(res.reason[0] != '\0');
    free(body);
    return 0;
}
