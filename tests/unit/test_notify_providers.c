/* Unit tests of bx-notify's SMS providers without a network: the file adapter, message checks,
 * receipt parsing, and the request signatures (webhook HMAC, Aliyun RPC). */
#include "bx_test.h"
#include "provider.h"
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
