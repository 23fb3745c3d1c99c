/* provider_http: one reusable libcurl easy handle per adapter, and the classification of failures
 * into "not sent" and "maybe sent" that keeps a notification from going out twice. */
#include "provider_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (64 * 1024)

struct provider_http {
    CURL *easy;
    long timeout_ms;
    char *ca_file;
    bx_buf answer;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

bx_status provider_http_new(long timeout_ms, const char *ca_file, provider_http **out,
                            bx_error *err)
{
    pthread_once(&curl_once, curl_start);
    provider_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return BX_ERR(err, BX_ENOMEM, "provider http: out of memory");
    h->easy = curl_easy_init();
    h->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    if (ca_file != NULL && ca_file[0] != '\0')
        h->ca_file = strdup(ca_file);
    bx_buf_init(&h->answer, ANSWER_MAX);
    if (h->easy == NULL || (ca_file && ca_file[0] && h->ca_file == NULL)) {
        provider_http_free(h);
        return BX_ERR(err, BX_ENOMEM, "provider http: cannot make a curl handle");
    }
    *out = h;
    return BX_OK;
}

void provider_http_free(provider_http *h)
{
    if (h == NULL)
        return;
    if (h->easy != NULL)
        curl_easy_cleanup(h->easy);
    free(h->ca_file);
    bx_buf_free(&h->answer);
    free(h);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

provider_http_fate provider_http_do(provider_http *h, const char *method, const char *url,
                                    const char *const *headers, const char *body, size_t len,
                                    long *status, const bx_buf **answer, char *reason,
                                    size_t reason_size)
{
    CURL *c = h->easy;
    struct curl_slist *list = NULL;
    *status = 0;
    reason[0] = '\0';
    bx_buf_reset(&h->answer);
    *answer = &h->answer;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        struct curl_slist *more = curl_slist_append(list, headers[i]);
        if (more == NULL) {
            curl_slist_free_all(list);
            snprintf(reason, reason_size, "out of memory for headers");
            return HTTP_NOT_SENT;
        }
        list = more;
    }
    /* Options are set afresh on every request; the handle keeps its connection cache. */
    curl_easy_reset(c);
    h->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h->answer);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    if (h->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(list);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        return HTTP_ANSWERED;
    }
    /* Whether any byte of the request may have reached the server: once the connection (and TLS)
     * was up, curl starts sending at "pretransfer"; a request that went out has a size. */
    curl_off_t pretransfer = 0;
    long request_size = 0;
    curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &request_size);
    bool maybe = pretransfer > 0 || request_size > 0;
    snprintf(reason, reason_size, "%s: %s", maybe ? "no answer after sending" : "not sent",
             h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
    return maybe ? HTTP_MAYBE_SENT : HTTP_NOT_SENT;
}

bx_status provider_percent_encode(bx_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    bx_status st = BX_OK;
    for (const unsigned char *p = (const unsigned char *)s; st == BX_OK && *p != '\0'; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            st = bx_buf_append(b, p, 1);
        } else {
            char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            st = bx_buf_append(b, enc, 3);
        }
    }
    return st;
}
