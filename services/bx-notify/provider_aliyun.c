/* provider_aliyun: Aliyun SMS (dysmsapi, Version 2017-05-25) over its RPC API. SendSms with
 * PhoneNumbers, SignName, TemplateCode, TemplateParam and OutId = the notification id, signed with
 * HMAC-SHA1 as Aliyun documents it (parameters sorted, RFC 3986 encoding with %20 for a space, the
 * string "POST&%2F&" + encoded canonical query, key AccessKeySecret + "&", Base64), a fresh
 * SignatureNonce and a UTC Timestamp each request; QuerySendDetails for the status query (by
 * phone and send date, matched on OutId); delivery receipts in Aliyun's SmsReport push format. */
#include "provider_http.h"
#include "provider_impl.h"

#include "bx_json.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_ENDPOINT "https://dysmsapi.aliyuncs.com/"
#define BODY_MAX         (32 * 1024)
#define CODES_MAX        64
#define QUERY_PAGES_MAX  10 /* 50 a page: more messages to one phone on one day is not ours */
#define RECEIPTS_MAX     1000

typedef struct code_entry {
    char name[48]; /* "" for the default */
    char code[48];
} code_entry;

typedef struct aliyun_state {
    provider_http *http;
    char *endpoint, *key_id, *secret;
    code_entry codes[CODES_MAX];
    int ncodes;
} aliyun_state;

/* ---- signing ---- */

static int param_cmp(const void *a, const void *b)
{
    return strcmp(((const provider_param *)a)->key, ((const provider_param *)b)->key);
}

bx_status provider_aliyun_string_to_sign(const char *method, const provider_param *params, size_t n,
                                         bx_buf *canonical, bx_buf *sts)
{
    provider_param *sorted = calloc(n ? n : 1, sizeof(*sorted));
    if (sorted == NULL)
        return BX_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(params[i].key, "Signature") != 0)
            sorted[m++] = params[i];
    }
    qsort(sorted, m, sizeof(*sorted), param_cmp);
    bx_status s = BX_OK;
    for (size_t i = 0; i < m; i++) {
        if (i > 0)
            IFOK(s, bx_buf_puts(canonical, "&"));
        IFOK(s, provider_percent_encode(canonical, sorted[i].key));
        IFOK(s, bx_buf_puts(canonical, "="));
        IFOK(s, provider_percent_encode(canonical, sorted[i].value));
    }
    free(sorted);
    IFOK(s, bx_buf_puts(sts, method));
    IFOK(s, bx_buf_puts(sts, "&%2F&"));
    IFOK(s, provider_percent_encode(sts, canonical->data ? canonical->data : ""));
    return s;
}

void provider_aliyun_signature(const char *access_key_secret, const char *sts, size_t len,
                               char out[32])
{
    char key[512];
    snprintf(key, sizeof(key), "%s&", access_key_secret);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)sts, len, mac, &maclen);
    EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen); /* 20 bytes -> 28 characters */
}

/* ---- answers ---- */

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* Errors that are not this message's fault and may pass: throttling, the service, the account
 * (keys, balance, permissions: an operator can fix them, and nothing is lost meanwhile). */
static bool transient_code(const char *code)
{
    static const char *const prefixes[] = {"Throttling",
                                           "ServiceUnavailable",
                                           "InternalError",
                                           "isp.",
                                           "isv.BUSINESS_LIMIT_CONTROL",
                                           "isv.DAY_LIMIT_CONTROL",
                                           "isv.AMOUNT_NOT_ENOUGH",
                                           "isv.OUT_OF_SERVICE",
                                           "isv.ACCOUNT_ABNORMAL",
                                           "isv.ACCOUNT_NOT_EXISTS",
                                           "SignatureDoesNotMatch",
                                           "SignatureNonceUsed",
                                           "InvalidTimeStamp",
                                           "InvalidAccessKeyId",
                                           "Forbidden"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (has_prefix(code, prefixes[i]))
            return true;
    }
    return false;
}

void provider_aliyun_classify(long http_status, const char *body, size_t len, provider_result *res)
{
    cJSON *root = NULL;
    bx_error ignored = {0};
    const char *code = NULL, *biz = NULL, *message = "";
    res->http_status = (int)http_status;
    if (len > 0 && bx_json_parse(body, len, &root, &ignored) == BX_OK && cJSON_IsObject(root)) {
        if (bx_json_get_string(root, "answer", "Code", true, 128, &code, &ignored) != BX_OK)
            code = NULL;
        if (bx_json_get_string(root, "answer", "Message", true, 200, &message, &ignored) != BX_OK)
            message = "";
    }
    if (code != NULL && strcmp(code, "OK") == 0 && http_status >= 200 && http_status < 300) {
        res->outcome = PROVIDER_ACCEPTED;
        res->state = PROVIDER_STATE_PENDING;
        if (bx_json_get_string(root, "answer", "BizId", true, 128, &biz, &ignored) == BX_OK)
            snprintf(res->message_id, sizeof(res->message_id), "%s", biz);
    } else if (code == NULL) {
        if (http_status >= 200 && http_status < 300)
            provider_result_set(res, PROVIDER_UNKNOWN, "HTTP %ld: an answer without a Code",
                                http_status);
        else if (http_status == 408 || http_status == 429 || http_status >= 500)
            provider_result_set(res, PROVIDER_TRANSIENT, "HTTP %ld", http_status);
        else
            provider_result_set(res, PROVIDER_PERMANENT, "HTTP %ld", http_status);
    } else if (http_status >= 500 || http_status == 408 || http_status == 429 ||
               transient_code(code)) {
        provider_result_set(res, PROVIDER_TRANSIENT, "%s: %.120s", code, message);
    } else {
        provider_result_set(res, PROVIDER_PERMANENT, "%s: %.120s", code, message);
    }
    cJSON_Delete(root);
}

/* ---- the adapter ---- */

static void aliyun_close(void *state)
{
    aliyun_state *a = state;
    if (a == NULL)
        return;
    provider_http_free(a->http);
    free(a->endpoint);
    free(a->key_id);
    free(a->secret);
    free(a);
}

/* "SMS_1" or "absence_same_day=SMS_1, task_assigned=SMS_2" */
static bx_status parse_codes(aliyun_state *a, const char *spec, bx_error *err)
{
    char buf[2048];
    if (spec == NULL || spec[0] == '\0' || strlen(spec) >= sizeof(buf))
        return BX_ERR(err, BX_EINVAL,
                      "BX_NOTIFY_PROVIDER_TEMPLATE_CODE: aliyun needs the approved template code");
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(buf, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        if (a->ncodes == CODES_MAX)
            return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_PROVIDER_TEMPLATE_CODE: more than %d codes",
                          CODES_MAX);
        code_entry *e = &a->codes[a->ncodes++];
        char *eq = strchr(item, '=');
        if (eq != NULL)
            *eq = '\0';
        const char *code = eq ? eq + 1 : item;
        if (strlen(code) == 0 || strlen(code) >= sizeof(e->code) ||
            (eq && (strlen(item) == 0 || strlen(item) >= sizeof(e->name))))
            return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_PROVIDER_TEMPLATE_CODE: bad entry \"%.40s\"",
                          item);
        snprintf(e->name, sizeof(e->name), "%s", eq ? item : "");
        snprintf(e->code, sizeof(e->code), "%s", code);
    }
    return BX_OK;
}

static const char *code_for(const aliyun_state *a, const char *template_name)
{
    const char *fallback = NULL;
    for (int i = 0; i < a->ncodes; i++) {
        if (a->codes[i].name[0] == '\0')
            fallback = a->codes[i].code;
        else if (template_name && strcmp(a->codes[i].name, template_name) == 0)
            return a->codes[i].code;
    }
    return fallback;
}

static bx_status aliyun_open(const provider_config *cfg, void **state, bx_error *err)
{
    const char *endpoint = cfg->url && cfg->url[0] ? cfg->url : DEFAULT_ENDPOINT;
    if (strncmp(endpoint, "https://", 8) != 0 && strncmp(endpoint, "http://", 7) != 0)
        return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_PROVIDER_URL: not an http(s) URL");
    if (cfg->access_key_id == NULL || cfg->access_key_id[0] == '\0')
        return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_PROVIDER_ACCESS_KEY_ID: aliyun needs it");
    if (cfg->secret == NULL || cfg->secret[0] == '\0')
        return BX_ERR(err, BX_EINVAL,
                      "BX_NOTIFY_PROVIDER_SECRET: aliyun needs the AccessKeySecret");
    aliyun_state *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return BX_ERR(err, BX_ENOMEM, "aliyun provider: out of memory");
    bx_status s = parse_codes(a, cfg->template_code, err);
    if (s == BX_OK) {
        a->endpoint = strdup(endpoint);
        a->key_id = strdup(cfg->access_key_id);
        a->secret = strdup(cfg->secret);
        if (a->endpoint == NULL || a->key_id == NULL || a->secret == NULL)
            s = BX_ERR(err, BX_ENOMEM, "aliyun provider: out of memory");
    }
    IFOK(s, provider_http_new(cfg->timeout_ms, cfg->ca_file, &a->http, err));
    if (s != BX_OK) {
        aliyun_close(a);
        return s;
    }
    *state = a;
    return BX_OK;
}

#define COMMON_PARAMS 8

/* Fills the common parameters into p (which has room for COMMON_PARAMS more) with storage in
 * nonce and stamp. */
static size_t common_params(const aliyun_state *a, const char *action, provider_param *p,
                            char nonce[33], char stamp[24])
{
    unsigned char raw[16] = {0};
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* Without the CSPRNG a nonce still only has to be unique. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf((char *)raw, sizeof(raw), "%llx", (unsigned long long)ts.tv_nsec ^ ts.tv_sec);
    }
    for (int i = 0; i < 16; i++)
        snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
    time_t now = time(NULL); /* Aliyun checks the Timestamp against real UTC time */
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
    size_t n = 0;
    p[n++] = (provider_param){"AccessKeyId", a->key_id};
    p[n++] = (provider_param){"Action", action};
    p[n++] = (provider_param){"Format", "JSON"};
    p[n++] = (provider_param){"SignatureMethod", "HMAC-SHA1"};
    p[n++] = (provider_param){"SignatureNonce", nonce};
    p[n++] = (provider_param){"SignatureVersion", "1.0"};
    p[n++] = (provider_param){"Timestamp", stamp};
    p[n++] = (provider_param){"Version", "2017-05-25"};
    return n;
}

/* The signed form body for params into body. */
static bx_status signed_body(const aliyun_state *a, const provider_param *p, size_t n, bx_buf *body)
{
    bx_buf sts;
    bx_buf_init(&sts, BODY_MAX * 3);
    bx_status s = provider_aliyun_string_to_sign("POST", p, n, body, &sts);
    char sig[32];
    if (s == BX_OK) {
        provider_aliyun_signature(a->secret, sts.data, sts.len, sig);
        s = bx_buf_puts(body, "&Signature=");
        IFOK(s, provider_percent_encode(body, sig));
    }
    bx_buf_free(&sts);
    return s;
}

static provider_http_fate post(aliyun_state *a, const bx_buf *body, long *status,
                               const bx_buf **answer, char *reason, size_t size)
{
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", "Expect:", NULL};
    return provider_http_do(a->http, "POST", a->endpoint, headers, body->data, body->len, status,
                            answer, reason, size);
}

static bx_status aliyun_send(void *state, const provider_message *m, provider_result *res,
                             bx_error *err)
{
    aliyun_state *a = state;
    const char *code = code_for(a, m->template_name);
    if (code == NULL) {
        provider_result_set(res, PROVIDER_PERMANENT, "no Aliyun template code for template %.60s",
                            m->template_name ? m->template_name : "(none)");
        return BX_OK;
    }
    if (m->sign_name == NULL || m->sign_name[0] == '\0') {
        provider_result_set(res, PROVIDER_PERMANENT, "sign_name: Aliyun needs the approved 签名");
        return BX_OK;
    }
    bx_buf tparam;
    bx_buf_init(&tparam, BODY_MAX);
    bx_status s = BX_OK;
    /* The approved template shows the rendered text as its one variable ${content}. */
    s = bx_buf_puts(&tparam, "{\"content\":");
    IFOK(s, bx_buf_json_string(&tparam, m->text));
    IFOK(s, bx_buf_puts(&tparam, "}"));
    provider_param p[COMMON_PARAMS + 6];
    char nonce[33], stamp[24];
    size_t n = common_params(a, "SendSms", p, nonce, stamp);
    p[n++] = (provider_param){"RegionId", "cn-hangzhou"};
    p[n++] = (provider_param){"PhoneNumbers", m->phone};
    p[n++] = (provider_param){"SignName", m->sign_name};
    p[n++] = (provider_param){"TemplateCode", code};
    p[n++] = (provider_param){"TemplateParam", tparam.data ? tparam.data : "{}"};
    p[n++] = (provider_param){"OutId", m->notification_id};
    bx_buf body;
    bx_buf_init(&body, BODY_MAX * 3);
    IFOK(s, signed_body(a, p, n, &body));
    bx_buf_free(&tparam);
    if (s != BX_OK) {
        bx_buf_free(&body);
        provider_result_set(res, PROVIDER_PERMANENT, "message too long for a request");
        return BX_OK;
    }
    long status = 0;
    const bx_buf *answer = NULL;
    char reason[200];
    provider_http_fate fate = post(a, &body, &status, &answer, reason, sizeof(reason));
    bx_buf_free(&body);
    switch (fate) {
    case HTTP_NOT_SENT:
        provider_result_set(res, PROVIDER_TRANSIENT, "%s", reason);
        break;
    case HTTP_MAYBE_SENT:
        provider_result_set(res, PROVIDER_UNKNOWN, "%s", reason);
        break;
    case HTTP_ANSWERED:
        provider_aliyun_classify(status, answer->data, answer->len, res);
        break;
    }
    (void)err;
    return BX_OK;
}

/* Looks for OutId == id in one page of a QuerySendDetails answer; *total gets TotalCount. */
static bx_status scan_page(const bx_buf *answer, const char *id, provider_result *res, bool *found,
                           long *total, bx_error *err)
{
    cJSON *root = NULL;
    const char *code = NULL;
    bx_status s = bx_json_parse(answer->data, answer->len, &root, err);
    IFOK(s, cJSON_IsObject(root) ? BX_OK : BX_ERR(err, BX_EINVAL, "answer: not an object"));
    IFOK(s, bx_json_get_string(root, "answer", "Code", true, 128, &code, err));
    if (s == BX_OK && strcmp(code, "OK") != 0)
        s = BX_ERR(err, BX_ETRANSIENT, "QuerySendDetails: %.100s", code);
    int64_t count = 0;
    IFOK(s, bx_json_get_int(root, "answer", "TotalCount", true, 0, INT32_MAX, &count, err));
    *total = (long)count;
    const cJSON *dtos = cJSON_GetObjectItemCaseSensitive(root, "SmsSendDetailDTOs");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(dtos, "SmsSendDetailDTO");
    for (const cJSON *d = cJSON_IsArray(list) ? list->child : NULL; s == BX_OK && d && !*found;
         d = d->next) {
        const char *out_id = NULL, *errcode = "";
        int64_t st = 0;
        if (bx_json_get_string(d, "dto", "OutId", true, 128, &out_id, err) != BX_OK ||
            strcmp(out_id, id) != 0)
            continue;
        s = bx_json_get_int(d, "dto", "SendStatus", true, 1, 3, &st, err);
        if (bx_json_get_string(d, "dto", "ErrCode", true, 64, &errcode, err) != BX_OK)
            errcode = "";
        if (s == BX_OK) {
            *found = true;
            res->outcome = PROVIDER_ACCEPTED;
            res->state = st == 3   ? PROVIDER_STATE_DELIVERED
                         : st == 2 ? PROVIDER_STATE_FAILED
                                   : PROVIDER_STATE_PENDING;
            if (st == 2)
                snprintf(res->reason, sizeof(res->reason), "%s", errcode);
        }
    }
    cJSON_Delete(root);
    return s;
}

static bx_status aliyun_query(void *state, const char *notification_id, const char *phone,
                              const char *yyyymmdd, provider_result *res, bx_error *err)
{
    aliyun_state *a = state;
    if (!provider_phone_ok(phone) || yyyymmdd == NULL || strlen(yyyymmdd) != 8)
        return BX_ERR(err, BX_EINVAL, "aliyun query: needs the phone and the send date yyyymmdd");
    bool found = false;
    bx_status s = BX_OK;
    for (int page = 1; s == BX_OK && !found && page <= QUERY_PAGES_MAX; page++) {
        provider_param p[COMMON_PARAMS + 6];
        char nonce[33], stamp[24], page_s[8];
        snprintf(page_s, sizeof(page_s), "%d", page);
        size_t n = common_params(a, "QuerySendDetails", p, nonce, stamp);
        p[n++] = (provider_param){"RegionId", "cn-hangzhou"};
        p[n++] = (provider_param){"PhoneNumber", phone};
        p[n++] = (provider_param){"SendDate", yyyymmdd};
        p[n++] = (provider_param){"PageSize", "50"};
        p[n++] = (provider_param){"CurrentPage", page_s};
        bx_buf body;
        bx_buf_init(&body, BODY_MAX);
        s = signed_body(a, p, n, &body);
        long status = 0, total = 0;
        const bx_buf *answer = NULL;
        char reason[200];
        if (s == BX_OK) {
            provider_http_fate fate = post(a, &body, &status, &answer, reason, sizeof(reason));
            res->http_status = (int)status;
            if (fate != HTTP_ANSWERED)
                s = BX_ERR(err, BX_ETRANSIENT, "aliyun query: %s", reason);
            else if (status != 200)
                s = BX_ERR(err, BX_ETRANSIENT, "aliyun query: HTTP %ld", status);
            else
                s = scan_page(answer, notification_id, res, &found, &total, err);
        }
        bx_buf_free(&body);
        if (s == BX_OK && !found && (long)page * 50 >= total)
            break;
    }
    if (s == BX_EINVAL)
        s = BX_ERR(err, BX_ETRANSIENT, "aliyun query: a bad answer: %s", err ? err->msg : "");
    if (s == BX_OK && !found) {
        res->state = PROVIDER_STATE_NONE;
        snprintf(res->reason, sizeof(res->reason), "no message with this OutId on that day");
    }
    return s;
}

typedef struct report_row {
    const char *out_id, *biz_id;
    bool success;
    char reason[200];
} report_row;

/* Aliyun's SmsReport push: a JSON array of {phone_number, send_time, report_time, success,
 * err_code, err_msg, sms_size, biz_id, out_id}. Fields past those are allowed (Aliyun adds some);
 * the phone is never passed on. */
static bx_status aliyun_receipts(void *state, const char *body, size_t len,
                                 const char *signature_header, provider_receipt_fn fn, void *ctx,
                                 bx_error *err)
{
    cJSON *root = NULL;
    report_row *rows = NULL;
    bx_status s = bx_json_parse(body, len, &root, err);
    if (s != BX_OK)
        return s;
    int n = cJSON_IsArray(root) ? cJSON_GetArraySize(root) : -1;
    if (n <= 0 || n > RECEIPTS_MAX) {
        s = BX_ERR(err, BX_EINVAL, "SmsReport: expected an array of 1 to %d reports", RECEIPTS_MAX);
        goto out;
    }
    rows = calloc((size_t)n, sizeof(*rows));
    if (rows == NULL) {
        s = BX_ERR(err, BX_ENOMEM, "SmsReport: out of memory");
        goto out;
    }
    int i = 0;
    for (const cJSON *r = root->child; s == BX_OK && r; r = r->next, i++) {
        char path[32];
        snprintf(path, sizeof(path), "SmsReport[%d]", i);
        const char *code = "", *msg = "";
        rows[i].biz_id = "";
        if (!cJSON_IsObject(r)) {
            s = BX_ERR(err, BX_EINVAL, "%s: expected an object", path);
            break;
        }
        IFOK(s, bx_json_get_string(r, path, "out_id", true, 128, &rows[i].out_id, err));
        IFOK(s, bx_json_get_bool(r, path, "success", true, &rows[i].success, err));
        if (s == BX_OK && !provider_id_ok(rows[i].out_id))
            s = BX_ERR(err, BX_EINVAL, "%s.out_id: not a notification id", path);
        if (s == BX_OK) {
            bx_status o = bx_json_get_string(r, path, "biz_id", false, 128, &rows[i].biz_id, err);
            if (o != BX_OK && o != BX_ENOTFOUND)
                s = o;
        }
        if (s == BX_OK) {
            bx_status o = bx_json_get_string(r, path, "err_code", false, 64, &code, err);
            if (o != BX_OK && o != BX_ENOTFOUND)
                s = o;
        }
        if (s == BX_OK) {
            bx_status o = bx_json_get_string(r, path, "err_msg", false, 128, &msg, err);
            if (o != BX_OK && o != BX_ENOTFOUND)
                s = o;
        }
        if (s == BX_OK && !rows[i].success)
            snprintf(rows[i].reason, sizeof(rows[i].reason), "%s %s", code, msg);
    }
    for (i = 0; s == BX_OK && i < n; i++)
        fn(ctx, rows[i].out_id, rows[i].biz_id,
           rows[i].success ? PROVIDER_STATE_DELIVERED : PROVIDER_STATE_FAILED, rows[i].reason);
out:
    free(rows);
    cJSON_Delete(root);
    return s;
}

const provider_ops provider_aliyun_ops = {
    .name = "aliyun",
    .open = aliyun_open,
    .close = aliyun_close,
    .send = aliyun_send,
    .query = aliyun_query,
    .parse_receipts = aliyun_receipts,
};
