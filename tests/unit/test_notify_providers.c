/* Unit tests of bx-notify's SMS providers without a network: the file adapter, message checks,
 * receipt parsing, and the request signatures (webhook HMAC, Aliyun RPC). */
#include "bx_json.h"
#include "bx_test.h"
#include "provider.h"
#include "provider_http.h"
#include "provider_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *temp_path(void)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/bx-notify-file-XXXXXX");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    return path;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const provider_message msg = {
    .notification_id = "c-42:n3:guardian",
    .phone = "13812345678",
    .text = "李小明家长您好：李小明今天（11月27日）没有到校。文山市第一小学",
    .template_name = "absence_same_day",
    .sign_name = "文山市第一小学",
};

BX_TEST(file_provider_appends_masked_lines_and_finds_them)
{
    const char *path = temp_path();
    provider_config cfg = {.kind = "file", .file_path = path};
    provider *p = NULL;
    bx_error err = {0};
    REQUIRE(provider_open(&cfg, &p, &err) == BX_OK);
    CHECK_STR(provider_name(p), "file");
    provider_result res;
    REQUIRE(provider_send(p, &msg, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_ACCEPTED);
    CHECK_STR(res.message_id, "file-c-42:n3:guardian");
    const char *text = slurp(path);
    CHECK_CONTAINS(text, "{\"id\":\"c-42:n3:guardian\",\"phone\":\"138****5678\"");
    CHECK_CONTAINS(text, "\"template\":\"absence_same_day\"");
    CHECK(strstr(text, "13812345678") == NULL);
    CHECK_INT(provider_query(p, "c-42:n3:guardian", msg.phone, "20261127", &res, &err), BX_OK);
    CHECK_INT(res.state, PROVIDER_STATE_DELIVERED);
    CHECK_INT(provider_query(p, "c-42:n4:guardian", msg.phone, "20261127", &res, &err), BX_OK);
    CHECK_INT(res.state, PROVIDER_STATE_NONE);
    provider_close(p);
    unlink(path);
}

BX_TEST(bad_messages_are_permanent_without_the_phone_in_the_reason)
{
    const char *path = temp_path();
    provider_config cfg = {.kind = "file", .file_path = path};
    provider *p = NULL;
    bx_error err = {0};
    REQUIRE(provider_open(&cfg, &p, &err) == BX_OK);
    static const char *const phones[] = {"1381234567", "23812345678", "138123456789", "1381234567x",
                                         ""};
    for (size_t i = 0; i < sizeof(phones) / sizeof(phones[0]); i++) {
        provider_message m = msg;
        m.phone = phones[i];
        provider_result res;
        REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
        CHECK_INT(res.outcome, PROVIDER_PERMANENT);
        CHECK_CONTAINS(res.reason, "phone");
        if (phones[i][0] != '\0')
            CHECK(strstr(res.reason, phones[i]) == NULL);
    }
    provider_message m = msg;
    provider_result res;
    m.text = "\xe6\x9d";
    REQUIRE(provider_send(p, &m, &res, &err) == BX_OK);
    CHECK_INT(res.outcome, PROVIDER_PERMANENT);
    m = msg;
    m.notification_id = "has space";
    CHECK_INT(provider_send(p, &m, &res, &err), BX_EINVAL);
    m = msg;
    m.text = NULL;
    CHECK_INT(provider_send(p, &m, &res, &err), BX_EINVAL);
    CHECK_STR(slurp(path), ""); /* nothing written for any of them */
    provider_close(p);
    unlink(path);

    provider_config unknown = {.kind = "carrier-pigeon"};
    CHECK_INT(provider_open(&unknown, &p, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "carrier-pigeon");
    provider_config nopath = {.kind = "file"};
    CHECK_INT(provider_open(&nopath, &p, &err), BX_EINVAL);
}

typedef struct seen {
    int n;
    char ids[4][64];
    provider_state states[4];
    char reasons[4][64];
} seen;

static void on_receipt(void *ctx, const char *id, const char *message_id, provider_state state,
                       const char *reason)
{
    seen *s = ctx;
    if (s->n < 4) {
        snprintf(s->ids[s->n], 64, "%s", id);
        s->states[s->n] = state;
        snprintf(s->reasons[s->n], 64, "%s", reason);
    }
    s->n++;
}

BX_TEST(generic_receipts_parsed_all_or_nothing)
{
    seen s = {0};
    bx_error err = {0};
    const char *good = "{\"receipts\":[{\"id\":\"c-1:n1\",\"message_id\":\"m1\",\"status\":"
                       "\"delivered\"},{\"id\":\"c-1:n2\",\"status\":\"failed\",\"reason\":"
                       "\"handset off\"}]}";
    REQUIRE(provider_generic_receipts(good, strlen(good), on_receipt, &s, &err) == BX_OK);
    CHECK_INT(s.n, 2);
    CHECK_STR(s.ids[0], "c-1:n1");
    CHECK_INT(s.states[0], PROVIDER_STATE_DELIVERED);
    CHECK_INT(s.states[1], PROVIDER_STATE_FAILED);
    CHECK_STR(s.reasons[1], "handset off");

    static const struct {
        const char *body, *want;
    } bad[] = {
        {"[]", "receipts: expected an array"},
        {"{}", "receipts: expected an array"},
        {"[{\"id\":\"a\",\"status\":\"ok\"}]", "receipts[0].status"},
        {"[{\"id\":\"a\",\"status\":\"delivered\"},{\"status\":\"delivered\"}]", "receipts[1].id"},
        {"[{\"id\":\"a b\",\"status\":\"delivered\"}]", "receipts[0].id"},
        {"[{\"id\":\"a\",\"status\":\"delivered\",\"phone\":\"1\"}]",
         "receipts[0]: unknown field \"phone\""},
        {"[1]", "receipts[0]: expected an object"},
        {"not json", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen none = {0};
        bx_status st =
            provider_generic_receipts(bad[i].body, strlen(bad[i].body), on_receipt, &none, &err);
        if (st != BX_EINVAL || none.n != 0 || strstr(err.msg, bad[i].want) == NULL)
            BX_FAIL_AT("row %zu: status %d, %d receipts, \"%s\"", i, (int)st, none.n, err.msg);
    }
}

/* RFC 4231 test case 2, then the webhook's timestamp "." body form. */
BX_TEST(webhook_signature_is_hmac_sha256_of_timestamp_dot_body)
{
    char hex[65];
    provider_hmac_sha256_hex("Jefe", "what do ya want for nothing?", 28, hex);
    CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    char direct[65];
    const char *body = "{\"id\":\"c-1:n1\"}";
    const char *signed_text = "1764236400.{\"id\":\"c-1:n1\"}";
    provider_hmac_sha256_hex("s3cret", signed_text, strlen(signed_text), direct);
    provider_webhook_signature("s3cret", "1764236400", body, strlen(body), hex);
    CHECK_STR(hex, direct);
    provider_webhook_signature("s3cret", "1764236401", body, strlen(body), hex);
    CHECK(strcmp(hex, direct) != 0);
}

/* ---- Aliyun ---- */

static const char *sign_of(const char *method, const provider_param *p, size_t n,
                           const char *secret, bx_buf *canonical, bx_buf *sts)
{
    static char sig[32];
    bx_buf_init(canonical, 0);
    bx_buf_init(sts, 0);
    REQUIRE(provider_aliyun_string_to_sign(method, p, n, canonical, sts) == BX_OK);
    provider_aliyun_signature(secret, sts->data, sts->len, sig);
    return sig;
}

/* Aliyun's worked example for SendSms (短信服务 "HTTP协议及签名", help.aliyun.com document 56189):
 * AccessKeyId testId, AccessKeySecret testSecret, the parameters below; the documented string to
 * sign and signature. */
BX_TEST(aliyun_signature_reproduces_the_documented_sendsms_example)
{
    const provider_param p[] = {
        {"SignatureMethod", "HMAC-SHA1"},
        {"SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"},
        {"AccessKeyId", "testId"},
        {"SignatureVersion", "1.0"},
        {"Timestamp", "2017-07-12T02:42:19Z"},
        {"Format", "XML"},
        {"Action", "SendSms"},
        {"Version", "2017-05-25"},
        {"RegionId", "cn-hangzhou"},
        {"PhoneNumbers", "15300000001"},
        {"SignName", "阿里云短信测试专用"},
        {"TemplateParam", "{\"customer\":\"test\"}"},
        {"TemplateCode", "SMS_71390007"},
        {"OutId", "123"},
        {"Signature", "ignored: never part of what is signed"},
    };
    bx_buf canonical, sts;
    const char *sig = sign_of("GET", p, sizeof(p) / sizeof(p[0]), "testSecret", &canonical, &sts);
    CHECK_STR(
        canonical.data,
        "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001&"
        "RegionId=cn-hangzhou&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%"
        "8B%E8%AF%95%E4%B8%93%E7%94%A8&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-"
        "4070-8c85-2956eda1b466&SignatureVersion=1.0&TemplateCode=SMS_71390007&TemplateParam="
        "%7B%22customer%22%3A%22test%22%7D&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-"
        "05-25");
    CHECK_STR(sts.data,
              "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%"
              "26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%"
              "25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%"
              "25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%"
              "26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%"
              "26TemplateCode%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%"
              "2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-"
              "25");
    CHECK_STR(sig, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
    bx_buf_free(&canonical);
    bx_buf_free(&sts);
}

/* The RPC signature documentation's example (DescribeRegions, secret testsecret). */
BX_TEST(aliyun_signature_reproduces_the_documented_rpc_example)
{
    const provider_param p[] = {
        {"Format", "XML"},
        {"AccessKeyId", "testid"},
        {"Action", "DescribeRegions"},
        {"SignatureMethod", "HMAC-SHA1"},
        {"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
        {"SignatureVersion", "1.0"},
        {"Version", "2014-05-26"},
        {"Timestamp", "2016-02-23T12:46:24Z"},
    };
    bx_buf canonical, sts;
    const char *sig = sign_of("GET", p, sizeof(p) / sizeof(p[0]), "testsecret", &canonical, &sts);
    CHECK_STR(sig, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    /* The method is part of what is signed. */
    bx_buf c2, s2;
    CHECK(strcmp(sign_of("POST", p, sizeof(p) / sizeof(p[0]), "testsecret", &c2, &s2),
                 "OLeaidS1JvxuMvnyHOwuJ+uX5qY=") != 0);
    bx_buf_free(&canonical);
    bx_buf_free(&sts);
    bx_buf_free(&c2);
    bx_buf_free(&s2);
}

BX_TEST(percent_encoding_follows_aliyun_rules)
{
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"a b", "a%20b"},    {"*", "%2A"},         {"~-_.", "~-_."},  {"/=&+", "%2F%3D%26%2B"},
        {"派", "%E6%B4%BE"}, {"AZaz09", "AZaz09"}, {"{\"", "%7B%22"}, {"", ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bx_buf b;
        bx_buf_init(&b, 0);
        REQUIRE(provider_percent_encode(&b, rows[i].in) == BX_OK);
        CHECK_STR(b.data ? b.data : "", rows[i].want);
        bx_buf_free(&b);
    }
}

BX_TEST(aliyun_answers_classified)
{
    static const struct {
        long http;
        const char *body;
        provider_outcome want;
        const char *message_id;
    } rows[] = {
        {200,
         "{\"Code\":\"OK\",\"Message\":\"OK\",\"BizId\":\"900619746936498440^0\",\"RequestId\":"
         "\"F655A8D5\"}",
         PROVIDER_ACCEPTED, "900619746936498440^0"},
        {200, "{\"Code\":\"isv.MOBILE_NUMBER_ILLEGAL\",\"Message\":\"非法手机号\"}",
         PROVIDER_PERMANENT, ""},
        {200, "{\"Code\":\"isv.TEMPLATE_MISSING_PARAMETERS\",\"Message\":\"x\"}",
         PROVIDER_PERMANENT, ""},
        {200, "{\"Code\":\"isv.BUSINESS_LIMIT_CONTROL\",\"Message\":\"触发分钟级流控\"}",
         PROVIDER_TRANSIENT, ""},
        {200, "{\"Code\":\"isv.AMOUNT_NOT_ENOUGH\",\"Message\":\"余额不足\"}", PROVIDER_TRANSIENT,
         ""},
        {200, "{\"Code\":\"isp.SYSTEM_ERROR\"}", PROVIDER_TRANSIENT, ""},
        {400, "{\"Code\":\"Throttling.User\",\"Message\":\"flow control\"}", PROVIDER_TRANSIENT,
         ""},
        {400, "{\"Code\":\"SignatureDoesNotMatch\"}", PROVIDER_TRANSIENT, ""},
        {404, "{\"Code\":\"InvalidAccessKeyId.NotFound\"}", PROVIDER_TRANSIENT, ""},
        {503, "{\"Code\":\"ServiceUnavailable\"}", PROVIDER_TRANSIENT, ""},
        {502, "<html>bad gateway</html>", PROVIDER_TRANSIENT, ""},
        {400, "{\"Code\":\"MissingParameter\"}", PROVIDER_PERMANENT, ""},
        {200, "", PROVIDER_UNKNOWN, ""},
        {200, "{\"truncated", PROVIDER_UNKNOWN, ""},
        {429, "", PROVIDER_TRANSIENT, ""},
        {403, "", PROVIDER_PERMANENT, ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        provider_result res;
        memset(&res, 0, sizeof(res));
        provider_aliyun_classify(rows[i].http, rows[i].body, strlen(rows[i].body), &res);
        if (res.outcome != rows[i].want || strcmp(res.message_id, rows[i].message_id) != 0 ||
            res.http_status != rows[i].http)
            BX_FAIL_AT("row %zu: outcome %d (want %d), message_id \"%s\", reason \"%s\"", i,
                       (int)res.outcome, (int)rows[i].want, res.message_id, res.reason);
    }
}

BX_TEST(aliyun_sms_reports_parsed_all_or_nothing)
{
    provider_config cfg = {.kind = "aliyun",
                           .access_key_id = "testId",
                           .secret = "testSecret",
                           .template_code = "SMS_1"};
    provider *p = NULL;
    bx_error err = {0};
    REQUIRE(provider_open(&cfg, &p, &err) == BX_OK);
    CHECK_STR(provider_name(p), "aliyun");
    const char *body =
        "[{\"phone_number\":\"13812345678\",\"send_time\":\"2026-11-27 08:31:02\",\"report_time\":"
        "\"2026-11-27 08:31:05\",\"success\":true,\"err_code\":\"DELIVERED\",\"err_msg\":"
        "\"用户接收成功\",\"sms_size\":\"1\",\"biz_id\":\"932702304080415357^0\",\"out_id\":"
        "\"c-1:n1\"},{\"phone_number\":\"13812345679\",\"send_time\":\"2026-11-27 08:31:02\","
        "\"report_time\":\"2026-11-27 08:32:05\",\"success\":false,\"err_code\":\"MK:0001\","
        "\"err_msg\":\"off\",\"sms_size\":\"1\",\"biz_id\":\"932702304080415358^0\",\"out_id\":"
        "\"c-1:n2\"}]";
    seen s = {0};
    REQUIRE(provider_parse_receipts(p, body, strlen(body), NULL, on_receipt, &s, &err) == BX_OK);
    CHECK_INT(s.n, 2);
    CHECK_STR(s.ids[0], "c-1:n1");
    CHECK_INT(s.states[0], PROVIDER_STATE_DELIVERED);
    CHECK_STR(s.ids[1], "c-1:n2");
    CHECK_INT(s.states[1], PROVIDER_STATE_FAILED);
    CHECK_CONTAINS(s.reasons[1], "MK:0001");
    CHECK(strstr(s.reasons[1], "1381234") == NULL);

    static const struct {
        const char *body, *want;
    } bad[] = {
        {"[]", "SmsReport: expected an array"},
        {"{\"out_id\":\"a\",\"success\":true}", "SmsReport: expected an array"},
        {"[{\"out_id\":\"a\",\"success\":true},{\"success\":true}]", "SmsReport[1].out_id"},
        {"[{\"out_id\":\"a\",\"success\":\"yes\"}]", "SmsReport[0].success"},
        {"[{\"out_id\":\"a b\",\"success\":true}]", "SmsReport[0].out_id"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen none = {0};
        bx_status st = provider_parse_receipts(p, bad[i].body, strlen(bad[i].body), NULL,
                                               on_receipt, &none, &err);
        if (st != BX_EINVAL || none.n != 0 || strstr(err.msg, bad[i].want) == NULL)
            BX_FAIL_AT("row %zu: status %d, %d receipts, \"%s\"", i, (int)st, none.n, err.msg);
    }
    provider_close(p);

    provider_config nokey = {.kind = "aliyun", .secret = "x", .template_code = "SMS_1"};
    CHECK_INT(provider_open(&nokey, &p, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "ACCESS_KEY_ID");
    provider_config nocode = {.kind = "aliyun", .access_key_id = "a", .secret = "x"};
    CHECK_INT(provider_open(&nocode, &p, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "TEMPLATE_CODE");
}

/* Found by fuzz_provider_answers: the reason quotes Aliyun's Message to 120 bytes, which cut a
 * Chinese character in two; the reason goes into PostgreSQL, which refuses text not UTF-8. */
BX_TEST(aliyun_reason_stays_utf8)
{
    char body[512] = "{\"Code\":\"isv.MOBILE_NUMBER_ILLEGAL\",\"Message\":\"x";
    for (int i = 0; i < 50; i++)
        strcat(body, "\xe5\x8f\xb7"); /* 号: 151 bytes of message in all */
    strcat(body, "\"}");
    provider_result res;
    memset(&res, 0, sizeof(res));
    provider_aliyun_classify(200, body, strlen(body), &res);
    CHECK(res.outcome == PROVIDER_PERMANENT);
    CHECK_CONTAINS(res.reason, "isv.MOBILE_NUMBER_ILLEGAL: x\xe5\x8f\xb7");
    CHECK(bx_utf8_valid(res.reason, strlen(res.reason)));
    /* 120 bytes of message: "x" and 39 whole characters. */
    CHECK_INT((int)strlen(res.reason), (int)strlen("isv.MOBILE_NUMBER_ILLEGAL: ") + 1 + 39 * 3);
}
