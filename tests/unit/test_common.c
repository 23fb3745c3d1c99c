/* Unit tests of the small common modules: configuration, log masking, buffers, the map, metrics. */
#include "bx_buf.h"
#include "bx_config.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_map.h"
#include "bx_metrics.h"
#include "bx_registry.h"
#include "bx_test.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

BX_TEST(config_reads_environment_file_and_defaults)
{
    char *brokers = NULL, *name = NULL;
    long long threads = 0;
    bool insecure = true;
    bx_conf_row rows[] = {
        {"BXT_BROKERS", BX_CONF_STRING, "default:1", 0, 0, &brokers, "brokers"},
        {"BXT_NAME", BX_CONF_STRING, "unnamed", 0, 0, &name, "name"},
        {"BXT_THREADS", BX_CONF_INT, "8", 1, 64, &threads, "threads"},
        {"BXT_INSECURE", BX_CONF_BOOL, "false", 0, 0, &insecure, "insecure"},
    };
    char path[] = "/tmp/bx-conf-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *text = "# comment\nBXT_NAME = from-file\nBXT_THREADS=16\n\n";
    REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    setenv("BX_CONFIG_FILE", path, 1);
    setenv("BXT_THREADS", "32", 1); /* the environment wins over the file */
    unsetenv("BXT_BROKERS");
    unsetenv("BXT_NAME");
    unsetenv("BXT_INSECURE");
    bx_error err = {0};
    CHECK_INT(bx_conf_load(rows, 4, &err), BX_OK);
    CHECK_STR(brokers, "default:1");
    CHECK_STR(name, "from-file");
    CHECK_INT(threads, 32);
    CHECK(!insecure);
    bx_conf_free(rows, 4);
    unsetenv("BXT_THREADS");
    unsetenv("BX_CONFIG_FILE");
    unlink(path);
}

/* Rows that point at the fields of one static struct, as the services' mains write them. */
static struct {
    const char *brokers, *group;
    int batch;
    int64_t retry_ms;
    long timeout_ms;
    bool insecure;
} settings;

static const bx_conf_row settings_rows[] = {
    BX_CONF_KAFKA_BROKERS(&settings.brokers),
    {.name = "BXT_GROUP", .type = BX_CONF_STRING, .def = "g", .target = &settings.group},
    {.name = "BXT_BATCH",
     .type = BX_CONF_INT32,
     .def = "20",
     .min = 1,
     .max = 1000,
     .target = &settings.batch},
    {.name = "BXT_RETRY_MS",
     .type = BX_CONF_INT,
     .def = "600000",
     .min = 1,
     .max = 86400000000LL,
     .target = &settings.retry_ms},
    {.name = "BXT_TIMEOUT_MS",
     .type = BX_CONF_INT,
     .def = "5000",
     .min = 100,
     .max = 120000,
     .target = &settings.timeout_ms},
    {.name = "BXT_INSECURE", .type = BX_CONF_BOOL, .def = "no", .target = &settings.insecure},
};

BX_TEST(config_rows_fill_the_fields_of_a_struct)
{
    size_t n = sizeof(settings_rows) / sizeof(settings_rows[0]);
    unsetenv("BX_KAFKA_BROKERS");
    unsetenv("BXT_GROUP");
    unsetenv("BXT_TIMEOUT_MS");
    setenv("BXT_BATCH", "1000", 1);
    setenv("BXT_RETRY_MS", "86400000000", 1);
    setenv("BXT_INSECURE", "yes", 1);
    bx_error err = {0};
    CHECK_INT(bx_conf_load(settings_rows, n, &err), BX_OK);
    CHECK_STR(settings.brokers, "127.0.0.1:19092");
    CHECK_STR(settings.group, "g");
    CHECK_INT(settings.batch, 1000);
    CHECK_INT(settings.retry_ms, 86400000000LL);
    CHECK_INT(settings.timeout_ms, 5000);
    CHECK(settings.insecure);
    setenv("BXT_BATCH", "1001", 1);
    CHECK_INT(bx_conf_load(settings_rows, n, &err), BX_EINVAL);
    CHECK_STR(err.msg, "BXT_BATCH: expected an integer from 1 to 1000, got \"1001\"");
    CHECK_INT(settings.batch, 1000);
    bx_conf_free(settings_rows, n);
    CHECK(settings.brokers == NULL && settings.group == NULL);
    unsetenv("BXT_BATCH");
    unsetenv("BXT_RETRY_MS");
    unsetenv("BXT_INSECURE");
}

BX_TEST(config_errors_name_the_variable_and_value)
{
    static const struct {
        const char *var, *value, *expect;
    } rows[] = {
        {"BXT_THREADS", "abc", "BXT_THREADS: expected an integer from 1 to 64, got \"abc\""},
        {"BXT_THREADS", "65", "BXT_THREADS: expected an integer from 1 to 64, got \"65\""},
        {"BXT_THREADS", "8x", "got \"8x\""},
        {"BXT_THREADS", "", "got \"\""},
        {"BXT_INSECURE", "maybe", "BXT_INSECURE: expected true or false, got \"maybe\""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        long long threads = 0;
        bool insecure = false;
        bx_conf_row conf[] = {
            {"BXT_THREADS", BX_CONF_INT, "8", 1, 64, &threads, "threads"},
            {"BXT_INSECURE", BX_CONF_BOOL, "false", 0, 0, &insecure, "insecure"},
        };
        unsetenv("BXT_THREADS");
        unsetenv("BXT_INSECURE");
        setenv(rows[i].var, rows[i].value, 1);
        bx_error err = {0};
        CHECK_INT(bx_conf_load(conf, 2, &err), BX_EINVAL);
        CHECK_CONTAINS(err.msg, rows[i].expect);
    }
    unsetenv("BXT_THREADS");
    unsetenv("BXT_INSECURE");
}

BX_TEST(config_file_errors_name_file_and_line)
{
    char *name = NULL;
    bx_conf_row rows[] = {{"BXT_NAME", BX_CONF_STRING, "x", 0, 0, &name, "name"}};
    char path[] = "/tmp/bx-conf-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *text = "BXT_NAME=a\nBXT_UNKNOWN=1\n";
    REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    setenv("BX_CONFIG_FILE", path, 1);
    bx_error err = {0};
    CHECK_INT(bx_conf_load(rows, 1, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, ":2: unknown setting BXT_UNKNOWN");
    bx_conf_free(rows, 1);
    unsetenv("BX_CONFIG_FILE");
    unlink(path);
}

BX_TEST(log_masks_phones_and_id_numbers)
{
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"call 13812345678 now", "call 138****5678 now"},
        {"13812345678", "138****5678"},
        {"id 11010120140101123X end", "id 110101********123X end"},
        {"id 110101201401011234", "id 110101********1234"},
        {"student S10010301 absent", "student S10010301 absent"}, /* ids with letters stay */
        {"offset 1234567890123", "offset 1234567890123"},         /* 13 digits: not a phone */
        {"2026-11-27 port 19092", "2026-11-27 port 19092"},
        {"23812345678", "23812345678"}, /* does not start with 1 */
        {"two 13900000001,13900000002", "two 139****0001,139****0002"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", rows[i].in);
        bx_log_mask(buf);
        CHECK_STR(buf, rows[i].out);
    }
    char masked[16];
    bx_mask_phone("13812345678", masked, sizeof(masked));
    CHECK_STR(masked, "138****5678");
}

BX_TEST(buffer_respects_its_maximum_and_escapes_json)
{
    bx_buf b;
    bx_buf_init(&b, 8);
    CHECK_INT(bx_buf_puts(&b, "12345678"), BX_OK);
    CHECK_INT(bx_buf_puts(&b, "9"), BX_ENOMEM);
    CHECK_STR(b.data, "12345678");
    bx_buf_free(&b);
    bx_buf_init(&b, 0);
    CHECK_INT(bx_buf_json_string(&b, "a\"b\\c\n\x01 中\r\t\x08\x1f\x7f"), BX_OK);
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001 中\\r\\t\\u0008\\u001f\x7f\"");
    bx_buf_free(&b);
}

BX_TEST(map_grows_and_finds_every_key)
{
    bx_map *m = bx_map_new();
    REQUIRE(m != NULL);
    static int values[5000];
    for (int i = 0; i < 5000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "S%05d", i);
        values[i] = i;
        REQUIRE(bx_map_put(m, key, &values[i]) == BX_OK);
    }
    CHECK_INT(bx_map_count(m), 5000);
    int wrong = 0;
    for (int i = 0; i < 5000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "S%05d", i);
        int *v = bx_map_get(m, key);
        wrong += v == NULL || *v != i;
    }
    CHECK_INT(wrong, 0);
    CHECK(bx_map_get(m, "S99999") == NULL);
    REQUIRE(bx_map_put(m, "S00001", &values[7]) == BX_OK);
    CHECK_INT(bx_map_count(m), 5000);
    CHECK_INT(*(int *)bx_map_get(m, "S00001"), 7);
    bx_map_free(m);
}

BX_TEST(registry_ids_are_checked)
{
    CHECK(bx_id_valid("S10010301"));
    CHECK(bx_id_valid("a_b-C"));
    CHECK(!bx_id_valid(""));
    CHECK(!bx_id_valid("a b"));
    CHECK(!bx_id_valid("学生"));
    CHECK(!bx_id_valid("123456789012345678901234567890123")); /* 33 */
}

static bx_metric test_counter = {"bxt_things_total{kind=\"a\"}", "things", "counter", 0, NULL};
static bx_metric test_counter_b = {"bxt_things_total{kind=\"b\"}", "things", "counter", 0, NULL};

BX_TEST(metrics_render_prometheus_text)
{
    bx_metric_register(&test_counter);
    bx_metric_register(&test_counter_b);
    bx_metric_register(&test_counter); /* twice is once */
    bx_metric_add(&test_counter, 3);
    bx_metric_add(&test_counter_b, 1);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_metrics_render(&b) == BX_OK);
    CHECK_CONTAINS(b.data, "# TYPE bxt_things_total counter\n");
    CHECK_CONTAINS(b.data, "bxt_things_total{kind=\"a\"} 3\n");
    CHECK_CONTAINS(b.data, "bxt_things_total{kind=\"b\"} 1\n");
    const char *first = strstr(b.data, "# HELP bxt_things_total");
    CHECK(first && strstr(first + 1, "# HELP bxt_things_total") == NULL);
    bx_buf_free(&b);
}

/* Error messages quote input cut to a length and are cut to their own size; they stay valid UTF-8
 * (found by the policy and template fuzz targets: a quoted name with a stray byte, a value of
 * Chinese characters cut after 40 bytes). */
BX_TEST(error_messages_stay_utf8)
{
    bx_error err = {0};
    /* 学 is three bytes: "%.4s" of 学学 keeps one character and one byte of the next. */
    CHECK_INT(BX_ERR(&err, BX_EINVAL, "got \"%.4s\"", "\xe5\xad\xa6\xe5\xad\xa6"), BX_EINVAL);
    CHECK_STR(err.msg, "got \"\xe5\xad\xa6\"");
    BX_ERR(&err, BX_EINVAL, "unknown setting %s",
           "flag.singl\xff"
           "e_parent");
    CHECK_STR(err.msg, "unknown setting flag.single_parent");
    /* Cut by the message's own size. */
    char long_value[600];
    memset(long_value, 0, sizeof(long_value));
    for (size_t i = 0; i + 3 < sizeof(long_value); i += 3)
        memcpy(long_value + i, "\xe5\xad\xa6", 3);
    BX_ERR(&err, BX_EINVAL, "x%s", long_value);
    CHECK(strlen(err.msg) > 500);
    CHECK(bx_utf8_valid(err.msg, strlen(err.msg)));
    CHECK_INT(err.status, BX_EINVAL);
    CHECK(BX_ERR(NULL, BX_EIO, "no error to fill") == BX_EIO);
}

static void count_notify(void *arg)
{
    *(int *)arg += 1;
}

struct finisher {
    bx_delivery_slot *slots;
    int n;
};

static void *finish_slots(void *arg)
{
    struct finisher *f = arg;
    for (int i = 0; i < f->n; i++)
        bx_delivery_slot_done(&f->slots[i], i == 1 ? RD_KAFKA_RESP_ERR__MSG_TIMED_OUT
                                                   : RD_KAFKA_RESP_ERR_NO_ERROR);
    return NULL;
}

BX_TEST(delivery_wait_notifies_once_when_sealed_and_done)
{
    /* nothing armed: sealing notifies at once */
    int calls = 0;
    bx_delivery_wait *w = bx_delivery_wait_notify_new(count_notify, &calls);
    REQUIRE(w != NULL);
    bx_delivery_wait_seal(w);
    CHECK_INT(calls, 1);
    bx_delivery_wait_free(w);

    /* slots done before the seal: nothing until the seal, then once */
    calls = 0;
    bx_delivery_slot early[2];
    w = bx_delivery_wait_notify_new(count_notify, &calls);
    REQUIRE(w != NULL);
    bx_delivery_slot_arm(&early[0], w);
    bx_delivery_slot_arm(&early[1], w);
    bx_delivery_slot_done(&early[0], RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_slot_done(&early[1], RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK_INT(calls, 0);
    bx_delivery_wait_seal(w);
    CHECK_INT(calls, 1);
    bx_delivery_wait_free(w);

    /* sealed with slots outstanding: the thread finishing the last one notifies, once, and every
     * verdict is in place by then */
    for (int round = 0; round < 200; round++) {
        calls = 0;
        bx_delivery_slot slots[3];
        w = bx_delivery_wait_notify_new(count_notify, &calls);
        REQUIRE(w != NULL);
        for (int i = 0; i < 3; i++)
            bx_delivery_slot_arm(&slots[i], w);
        struct finisher f = {slots, 3};
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, finish_slots, &f) == 0);
        bx_delivery_wait_seal(w);
        pthread_join(t, NULL);
        CHECK_INT(calls, 1);
        CHECK_INT(slots[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        CHECK_INT(slots[1].err, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
        CHECK_INT(slots[2].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        bx_delivery_wait_free(w);
    }
}

BX_TEST(health_of_a_flag_says_what_failed)
{
    atomic_bool healthy;
    atomic_init(&healthy, true);
    char reason[64] = "untouched";
    CHECK(bx_health_of_flag(&healthy, "the last batch", reason, sizeof(reason)));
    CHECK_STR(reason, "untouched");
    atomic_store(&healthy, false);
    CHECK(!bx_health_of_flag(&healthy, "the last batch", reason, sizeof(reason)));
    CHECK_STR(reason, "the last batch failed; retrying");
    char small[9];
    CHECK(!bx_health_of_flag(&healthy, "the last request", small, sizeof(small)));
    CHECK_STR(small, "the last");
}

/* An operator's librdkafka tuning: set after the project's settings, and never the credentials or
 * the settings that carry the delivery guarantees. */
BX_TEST(kafka_tuning_sets_what_it_may_and_refuses_the_guarantees)
{
    char value[64];
    size_t len = sizeof(value);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bx_error err = {0};
    unsetenv("BXT_TUNING");
    CHECK_INT(bx_kafka_conf_tuning(conf, "BXT_TUNING", &err), BX_OK);
    setenv("BXT_TUNING", "linger.ms=7, fetch.wait.max.ms=20", 1);
    CHECK_INT(bx_kafka_conf_tuning(conf, "BXT_TUNING", &err), BX_OK);
    CHECK_INT(rd_kafka_conf_get(conf, "linger.ms", value, &len), RD_KAFKA_CONF_OK);
    CHECK_STR(value, "7");
    len = sizeof(value);
    CHECK_INT(rd_kafka_conf_get(conf, "fetch.wait.max.ms", value, &len), RD_KAFKA_CONF_OK);
    CHECK_STR(value, "20");
    const char *refused[] = {"acks=1",
                             "enable.idempotence=false",
                             "sasl.username=someone",
                             "security.protocol=plaintext",
                             "ssl.ca.location=/tmp/x",
                             "enable.auto.offset.store=true",
                             "group.id=another",
                             "linger.ms=3,bootstrap.servers=elsewhere:9092"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        setenv("BXT_TUNING", refused[i], 1);
        bx_error e = {0};
        CHECK_INT(bx_kafka_conf_tuning(conf, "BXT_TUNING", &e), BX_EINVAL);
        CHECK_CONTAINS(e.msg, "is not a tuning setting");
    }
    len = sizeof(value);
    CHECK_INT(rd_kafka_conf_get(conf, "enable.idempotence", value, &len), RD_KAFKA_CONF_OK);
    CHECK_STR(value, "false");
    const char *malformed[] = {"linger.ms", "=5", "linger.ms=5,,=1", "no.such.setting=1"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        setenv("BXT_TUNING", malformed[i], 1);
        bx_error e = {0};
        CHECK_INT(bx_kafka_conf_tuning(conf, "BXT_TUNING", &e), BX_EINVAL);
        CHECK_CONTAINS(e.msg, i < 3 ? "BXT_TUNING" : "no.such.setting");
    }
    unsetenv("BXT_TUNING");
    rd_kafka_conf_destroy(conf);
    /* the services' producers read BX_KAFKA_PRODUCER_TUNING */
    setenv("BX_KAFKA_PRODUCER_TUNING", "acks=0", 1);
    bx_producer *p = NULL;
    bx_error e = {0};
    CHECK_INT(bx_producer_new("127.0.0.1:1", NULL, &p, &e), BX_EINVAL);
    CHECK_CONTAINS(e.msg, "BX_KAFKA_PRODUCER_TUNING: acks is not a tuning setting");
    CHECK(p == NULL);
    unsetenv("BX_KAFKA_PRODUCER_TUNING");
}
