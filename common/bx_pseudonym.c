/* bx_pseudonym: HMAC-SHA256 pseudonyms for the analysts' streams. */
#include "bx_pseudonym.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

void bx_pseudonym(const char *key, const char *text, char out[BX_PSEUDONYM_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    static const char hex[] = "0123456789abcdef";
    if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)text, strlen(text), md,
             &len) == NULL)
        len = 0;
    for (unsigned int i = 0; i < len && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[len >= 32 ? 64 : 2 * len] = '\0';
}
