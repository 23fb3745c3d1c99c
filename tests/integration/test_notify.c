/* bx-notify against the real PostgreSQL, Redis and Kafka: requests to SMS and digests, never twice
 * (redelivery, a killed replica), never lost (faults of the fake provider), quiet hours, the daily
 * cap, the provider-wide rate, dead letters. Each case runs its own bx-notify on its own database
 * (migrated and imported by bxctl), topics, group and rate key, with a driven clock. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_schema_check.h"
#include "bx_test.h"
#include "provider_impl.h"

#include <cjson/cJSON.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- a database of the case's own, with the registry ---- */

static char db_url[512];
static char tag[24];

static void bxctl_ok(const char *const *args)
{
    char env_url[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url);
    const char *env[] = {env_url, NULL};
    const char *argv[16] = {itest_env("BXCTL_BIN", BXCTL_BIN)};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run(argv, env, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl %s: %s\n", args[0], out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
}

/* School NS1 (township 990001100, county 990001): class NC1 with homeroom teacher NT1 (phone
 * 13900000001), principal NP1 (13900000002), township officer NTO1 (13900000003), county officer
 * NCO1 (no phone). Students N01..N<students>: guardians 1380000xxxx (N01 also has a second
 * guardian 1370000xxxx); N99 has no guardian with a phone. */
static void setup_db(int students)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, sizeof(tag), "N%d%03ld", (int)getpid() % 100000, (long)(ts.tv_nsec / 1000000));
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("notify"));
    char *dir = itest_tmpdir("notify-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "NS1,通知测试小学,990001100,primary,it-2026\n");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "NT1,周明,homeroom_teacher,NS1,,,13900000001\n"
                     "NP1,吴刚,principal,NS1,,,13900000002\n"
                     "NTO1,郑丽,township_officer,,990001100,,13900000003\n"
                     "NCO1,冯强,county_officer,,,990001,\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\nNC1,NS1,3,三年级2班,NT1\n");
    bx_buf st, gu;
    bx_buf_init(&st, 0);
    bx_buf_init(&gu, 0);
    REQUIRE(bx_buf_puts(&st, "student_id,school_id,class_id,name\n") == BX_OK);
    REQUIRE(bx_buf_puts(&gu, "student_id,name,relation,phone,address,is_primary\n") == BX_OK);
    for (int i = 1; i <= students; i++) {
        REQUIRE(bx_buf_printf(&st, "N%02d,NS1,NC1,学生%d\n", i, i) == BX_OK);
        REQUIRE(bx_buf_printf(&gu, "N%02d,家长%d,mother,1380000%04d,,true\n", i, i, i) == BX_OK);
    }
    REQUIRE(bx_buf_puts(&gu, "N01,父亲,father,13700000001,,false\n") == BX_OK);
    REQUIRE(bx_buf_puts(&st, "N99,NS1,NC1,学生99\n") == BX_OK);
    REQUIRE(bx_buf_puts(&gu, "N99,家长99,grandparent,,,true\n") == BX_OK);
    itest_write_file(dir, "students.csv", st.data);
    itest_write_file(dir, "guardians.csv", gu.data);
    bx_buf_free(&st);
    bx_buf_free(&gu);
    const char *holidays = itest_holidays_csv();
    bxctl_ok((const char *[]){"import", "holidays", holidays, NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
}

static PGconn *pg(void)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(db_url, 5000, &db, &err) == BX_OK);
    return db;
}

/* The rows of a query, one per line, columns separated by '|' (caller frees). */
static char *rows_of(const char *sql)
{
    return itest_sql_rows(db_url, sql);
}

static long long count_of(const char *sql)
{
    char *text = rows_of(sql);
    long long n = strtoll(text, NULL, 10);
    free(text);
    return n;
}

/* ---- the service of the case ---- */

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct svc {
    char requests[96], status[96], group[96], rate_key[96], sms_file[512];
    char *clock;
    pid_t pid;
    int port, receipt_port;
    const char *extra[24]; /* the case's own settings */
    int nextra;
    bx_producer *producer;
    long long produced;
    long long base; /* requests counted by earlier processes */
    bool by_db;     /* settle by the requests in PostgreSQL (several replicas) */
} svc;

static void setting(svc *s, const char *kv)
{
    REQUIRE(s->nextra < 23);
    s->extra[s->nextra++] = kv;
    s->extra[s->nextra] = NULL;
}

static void wait_for_leaders(const char *topic)
{
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    int64_t lo = 0, hi = 0;
    int tries = 0;
    while (rd_kafka_query_watermark_offsets(bx_producer_handle(p), topic, 0, &lo, &hi, 1000) !=
               RD_KAFKA_RESP_ERR_NO_ERROR &&
           tries++ < 100)
        usleep(100 * 1000);
    bx_producer_free(p, 1000);
}

static void svc_run(svc *s)
{
    static char env[12][640];
    snprintf(env[0], sizeof(env[0]), "BX_NOTIFY_REQUESTS_TOPIC=%s", s->requests);
    snprintf(env[1], sizeof(env[1]), "BX_NOTIFY_STATUS_TOPIC=%s", s->status);
    snprintf(env[2], sizeof(env[2]), "BX_CONSUMER_GROUP=%s", s->group);
    snprintf(env[3], sizeof(env[3]), "BX_PG_URL=%s", db_url);
    snprintf(env[4], sizeof(env[4]), "BX_NOTIFY_RATE_KEY=%s", s->rate_key);
    snprintf(env[5], sizeof(env[5]), "BX_NOTIFY_PROVIDER_FILE=%s", s->sms_file);
    snprintf(env[6], sizeof(env[6]), "BX_NOTIFY_RECEIPT_LISTEN=127.0.0.1:%d", s->receipt_port);
    /* the case's own settings first: a child's getenv finds the first of a name */
    const char *all[40];
    size_t n = 0;
    for (int i = 0; i < s->nextra && n < 30; i++)
        all[n++] = s->extra[i];
    for (int i = 0; i < 7; i++)
        all[n++] = env[i];
    all[n++] = "BX_LOG_LEVEL=info";
    all[n] = NULL;
    s->pid =
        itest_service_start(itest_env("BX_NOTIFY_BIN", BX_NOTIFY_BIN), s->clock, all, &s->port);
}

static void at(const char *local_time)
{
    bx_time_ms t = 0;
    char iso[40];
    snprintf(iso, sizeof(iso), "%.10sT%s:00+08:00", local_time, local_time + 11);
    REQUIRE(bx_time_parse(iso, &t) == BX_OK);
    REQUIRE(bx_clock_set(t) == BX_OK);
}

static void advance_ms(long long ms)
{
    REQUIRE(bx_clock_set(bx_clock_now() + ms) == BX_OK);
}

/* Prepares the case: database, topics, clock, names; the caller adds settings and runs it. */
static void svc_init(svc *s, int students, const char *local_time)
{
    memset(s, 0, sizeof(*s));
    setup_db(students);
    /* topic names are lower case (notify.outbox checks them) */
    snprintf(s->requests, sizeof(s->requests), "bx.itest.notify.requests.n%s", tag + 1);
    snprintf(s->status, sizeof(s->status), "bx.itest.notify.status.n%s", tag + 1);
    snprintf(s->group, sizeof(s->group), "bx-notify-itest-%s", tag);
    snprintf(s->rate_key, sizeof(s->rate_key), "bx:itest:notify:rate:%s", tag);
    char *dir = itest_tmpdir("notify-sms");
    snprintf(s->sms_file, sizeof(s->sms_file), "%s/sms.jsonl", dir);
    free(dir);
    s->receipt_port = free_port();
    const char *const topics[] = {s->requests, s->status, BX_TOPIC_DLQ};
    const int partitions[] = {2, 1, 3};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 3, 15000, &err) == BX_OK);
    wait_for_leaders(s->requests);
    wait_for_leaders(s->status);
    s->clock = itest_clock_file(local_time);
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", s->clock);
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    REQUIRE(bx_producer_new(brokers(), NULL, &s->producer, &err) == BX_OK);
}

static void svc_stop(svc *s)
{
    itest_stop(s->pid);
    s->pid = 0;
    bx_producer_free(s->producer, 5000);
    s->producer = NULL;
    free(s->clock);
    s->clock = NULL;
}

static void produce(svc *s, const char *key, const char *value)
{
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(s->producer, s->requests, key, strlen(key), value, strlen(value),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    s->produced++;
}

/* A guardian's absence SMS for student N<nn>, request id <tag>:<suffix>. */
static void ask_guardian(svc *s, int student, const char *suffix)
{
    char v[1024], key[16];
    snprintf(key, sizeof(key), "N%02d", student);
    snprintf(
        v, sizeof(v),
        "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:%s\","
        "\"case_id\":\"N%02d:20261127\",\"student_id\":\"N%02d\",\"template\":"
        "\"absence_same_day\",\"recipient_role\":\"guardian\",\"recipient_staff_id\":null,"
        "\"channel\":\"sms\",\"params\":{\"case_id\":\"N%02d:20261127\",\"streak_days\":\"1\"},"
        "\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\"}",
        tag, suffix, student, student, student);
    produce(s, key, v);
}

/* A task for the homeroom teacher (channel task: the daily digest). */
static void ask_task_due(svc *s, int student, const char *suffix, const char *kind,
                         const char *due_at)
{
    char v[1024], key[16];
    snprintf(key, sizeof(key), "N%02d", student);
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:%s\","
             "\"case_id\":\"N%02d:20261127\",\"student_id\":\"N%02d\",\"template\":"
             "\"task_assigned\",\"recipient_role\":\"homeroom_teacher\",\"recipient_staff_id\":"
             "\"NT1\",\"channel\":\"task\",\"params\":{\"case_id\":\"N%02d:20261127\",\"task_id\":"
             "\"N%02d:20261127:contact_family:%s:2026-11-27\",\"task\":\"%s\",\"due_at\":"
             "\"%s\"},\"not_before\":null,\"requested_at\":"
             "\"2026-11-27T09:00:00+08:00\"}",
             tag, suffix, student, student, student, student, kind, kind, due_at);
    produce(s, key, v);
}

/* A task due well after the next digest: it is collected for the digest. */
static void ask_task(svc *s, int student, const char *suffix, const char *kind)
{
    ask_task_due(s, student, suffix, kind, "2026-12-31T17:00:00+08:00");
}

static long long metric(svc *s, const char *name)
{
    return itest_metric(s->port, name);
}

/* Every request taken, nothing due at the clock's now and no send in flight, the outbox relayed. */
static void settle(svc *s)
{
    for (int i = 0; i < 1200; i++) {
        long long taken = metric(s, "bx_notify_requests_total"),
                  again = metric(s, "bx_notify_requests_redelivered_total"),
                  dlq = metric(s, "bx_notify_dlq_total");
        char sql[400];
        snprintf(sql, sizeof(sql),
                 "SELECT (SELECT count(*) FROM notify.notification WHERE state = 'sending' OR "
                 "(state IN ('queued', 'unknown', 'sent') AND due_at <= "
                 "to_timestamp(%lld / 1000.0))) + "
                 "(SELECT count(*) FROM notify.outbox WHERE sent_at IS NULL)",
                 (long long)bx_clock_now());
        bool all_taken = s->by_db ? count_of("SELECT count(*) FROM notify.request") >= s->produced
                                  : taken >= 0 && s->base + taken + again + dlq >= s->produced;
        if (all_taken && count_of(sql) == 0)
            return;
        usleep(50 * 1000);
    }
    REQUIRE(!"bx-notify settled in 60 s");
}

static long long file_lines(svc *s, const char *needle)
{
    FILE *f = fopen(s->sms_file, "r");
    if (f == NULL)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    long long n = 0;
    while (getline(&line, &cap, f) >= 0)
        n += needle == NULL || strstr(line, needle) != NULL;
    free(line);
    fclose(f);
    return n;
}

/* Every line of text (one message each) is valid against the topic's schema. */
static void check_schema(const char *topic, const char *text)
{
    cJSON *schema = bx_schema_load_topic(topic);
    REQUIRE(schema != NULL);
    int lines = 0;
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        char err[300];
        if (!bx_schema_check_text(schema, l, n, err, sizeof(err)))
            BX_FAIL_AT("%s: %s in %.*s", topic, err, (int)n, l);
        lines++;
        l = nl ? nl + 1 : NULL;
    }
    CHECK(lines > 0);
    cJSON_Delete(schema);
}

/* ---- the cases ---- */

BX_TEST(guardian_sms_each_phone_once_and_redelivery_sends_nothing)
{
    svc s;
    svc_init(&s, 3, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_RECEIPT_CHECK_MS=60000");
    svc_run(&s);
    itest_mark *status = itest_topic_mark(s.status), *status_dead = itest_topic_mark(s.status);
    ask_guardian(&s, 1, "a1"); /* two guardians with phones */
    ask_guardian(&s, 2, "a2");
    ask_guardian(&s, 99, "a99"); /* nobody with a phone */
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 3);
    CHECK_INT(file_lines(&s, "138****0001"), 1);
    CHECK_INT(file_lines(&s, "137****0001"), 1);
    CHECK_INT(file_lines(&s, "13800000001"), 0); /* masked in the sink too */
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'sent'"), 3);
    char *dead = rows_of("SELECT recipient, reason FROM notify.notification WHERE state = 'dead'");
    CHECK_STR(dead, "none|no guardian with a mobile number\n");
    free(dead);
    /* the text: the child's name, days missed, the teacher and the school */
    CHECK_INT(file_lines(&s, "学生2家长您好"), 1);
    CHECK_INT(file_lines(&s, "班主任周明老师"), 3);
    CHECK_INT(file_lines(&s, "\"sign_name\":\"通知测试小学\""), 3);
    /* receipts are asked for after the check delay: every one delivered */
    advance_ms(60000);
    settle(&s);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'delivered'"), 3);
    /* the same requests again (a redelivery): nothing new */
    ask_guardian(&s, 1, "a1");
    ask_guardian(&s, 2, "a2");
    settle(&s);
    CHECK_INT(metric(&s, "bx_notify_requests_redelivered_total"), 2);
    CHECK_INT(file_lines(&s, NULL), 3);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification"), 4);
    /* status messages: queued, sent and delivered for each, phones masked */
    bx_buf got;
    bx_buf_init(&got, 0);
    int n = itest_topic_collect(status, "\"status\":\"delivered\"", 3, 20000, &got);
    CHECK_INT(n, 3);
    CHECK(got.data && strstr(got.data, "138****0001") != NULL);
    CHECK(got.data && strstr(got.data, "13800000001") == NULL);
    check_schema(BX_TOPIC_NOTIFY_STATUS, got.data);
    bx_buf_free(&got);
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(status_dead, "\"status\":\"dead\"", 1, 20000, &got), 1);
    CHECK(got.data && strstr(got.data, "no guardian with a mobile number") != NULL);
    check_schema(BX_TOPIC_NOTIFY_STATUS, got.data);
    bx_buf_free(&got);
    itest_mark_free(status);
    itest_mark_free(status_dead);
    svc_stop(&s);
}

BX_TEST(bad_requests_go_to_the_dlq_with_the_field)
{
    svc s;
    svc_init(&s, 2, "2026-11-27 09:00");
    svc_run(&s);
    itest_mark *dlq = itest_topic_mark(BX_TOPIC_DLQ);
    char v[1024];
    produce(&s, "x", "{not json");
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:bad1\",\"case_id\":null,"
             "\"student_id\":\"NOPE\",\"template\":\"absence_same_day\",\"recipient_role\":"
             "\"guardian\",\"recipient_staff_id\":null,\"channel\":\"sms\",\"params\":{},"
             "\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\"}",
             tag);
    produce(&s, "NOPE", v);
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:bad2\",\"case_id\":null,"
             "\"student_id\":\"N01\",\"template\":\"no_such_template\",\"recipient_role\":"
             "\"guardian\",\"recipient_staff_id\":null,\"channel\":\"sms\",\"params\":{},"
             "\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\"}",
             tag);
    produce(&s, "N01", v);
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:bad3\",\"case_id\":null,"
             "\"student_id\":\"N01\",\"template\":\"absence_same_day\",\"recipient_role\":"
             "\"guardian\",\"recipient_staff_id\":null,\"channel\":\"task\",\"params\":{},"
             "\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\"}",
             tag);
    produce(&s, "N01", v);
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:bad4\",\"case_id\":null,"
             "\"student_id\":\"N01\",\"template\":\"absence_same_day\",\"recipient_role\":"
             "\"guardian\",\"recipient_staff_id\":null,\"channel\":\"sms\",\"params\":{},"
             "\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\",\"extra\":1}",
             tag);
    produce(&s, "N01", v);
    /* a staff template asked for a guardian */
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:bad5\",\"case_id\":null,"
             "\"student_id\":\"N01\",\"template\":\"school_report\",\"recipient_role\":"
             "\"guardian\",\"recipient_staff_id\":null,\"channel\":\"sms\",\"params\":{},"
             "\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\"}",
             tag);
    produce(&s, "N01", v);
    ask_guardian(&s, 2, "good"); /* the good one after the bad ones is sent */
    settle(&s);
    CHECK_INT(metric(&s, "bx_notify_dlq_total"), 6);
    CHECK_INT(metric(&s, "bx_notify_requests_total"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.request"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification"), 1);
    CHECK_INT(file_lines(&s, NULL), 1);
    static const struct {
        const char *needle, *reason, *field;
    } want[] = {
        {"\"endpoint\":\"bx.itest", "\"reason\":\"malformed\"", "\"record\":\"{not json\""},
        {":bad1\"", "\"reason\":\"unknown_student\"", "\"field\":\"student_id\""},
        {":bad2\"", "\"reason\":\"invalid_value\"", "\"field\":\"template\""},
        {":bad3\"", "\"reason\":\"invalid_value\"", "\"field\":\"channel\""},
        {":bad4\"", "\"reason\":\"invalid_value\"", "unknown field \\\"extra\\\""},
        {":bad5\"", "\"reason\":\"invalid_value\"", "not meant for guardians"},
    };
    char needle[160];
    snprintf(needle, sizeof(needle), "\"endpoint\":\"%s\"", s.requests);
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(dlq, needle, 6, 20000, &got), 6);
    check_schema(BX_TOPIC_DLQ, got.data);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bool found = false;
        for (char *l = got.data; l && *l && !found;) {
            char *nl = strchr(l, '\n');
            size_t n = nl ? (size_t)(nl - l) : strlen(l);
            char *one = strndup(l, n);
            found = strstr(one, want[i].needle) && strstr(one, want[i].reason) &&
                    strstr(one, want[i].field) && strstr(one, "\"source\":\"bx-notify\"");
            free(one);
            l = nl ? nl + 1 : NULL;
        }
        if (!found)
            BX_FAIL_AT("no dead letter with %s, %s and %s", want[i].needle, want[i].reason,
                       want[i].field);
    }
    bx_buf_free(&got);
    itest_mark_free(dlq);
    svc_stop(&s);
}

BX_TEST(quiet_hours_hold_parents_sms_until_morning)
{
    svc s;
    svc_init(&s, 2, "2026-11-27 21:45");
    svc_run(&s);
    ask_guardian(&s, 2, "night");
    /* staff are not held: a principal's SMS goes at once */
    char v[1024];
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:staff\",\"case_id\":"
             "\"N02:20261127\",\"student_id\":\"N02\",\"template\":\"school_report\","
             "\"recipient_role\":\"principal\",\"recipient_staff_id\":null,\"channel\":\"sms\","
             "\"params\":{\"case_id\":\"N02:20261127\"},\"not_before\":null,\"requested_at\":"
             "\"2026-11-27T21:45:00+08:00\"}",
             tag);
    produce(&s, "N02", v);
    settle(&s);
    CHECK_INT(file_lines(&s, "138****0002"), 0);
    CHECK_INT(file_lines(&s, "139****0002"), 1);
    char *q = rows_of("SELECT state, reason, to_char(due_at AT TIME ZONE 'Asia/Shanghai', "
                      "'YYYY-MM-DD HH24:MI') FROM notify.notification WHERE audience = "
                      "'guardian'");
    CHECK_STR(q, "queued|quiet_hours|2026-11-28 07:00\n");
    free(q);
    at("2026-11-28 06:59");
    settle(&s);
    CHECK_INT(file_lines(&s, "138****0002"), 0);
    at("2026-11-28 07:00");
    settle(&s);
    CHECK_INT(file_lines(&s, "138****0002"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'sent' AND "
                       "audience = 'guardian'"),
              1);
    svc_stop(&s);
}

BX_TEST(daily_cap_per_phone_waits_for_the_next_day)
{
    svc s;
    svc_init(&s, 2, "2026-11-27 10:00");
    setting(&s, "BX_NOTIFY_DAILY_CAP=3");
    svc_run(&s);
    for (int i = 0; i < 5; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "cap%d", i);
        ask_guardian(&s, 2, suffix);
    }
    ask_guardian(&s, 1, "other"); /* another family is not held by N02's cap */
    settle(&s);
    CHECK_INT(file_lines(&s, "138****0002"), 3);
    CHECK_INT(file_lines(&s, "138****0001"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'queued' AND "
                       "reason LIKE 'rate_limited: daily cap of 3%'"),
              2);
    /* the next day after quiet hours the rest go */
    at("2026-11-28 00:00");
    settle(&s);
    CHECK_INT(file_lines(&s, "138****0002"), 3); /* quiet hours until 07:00 */
    at("2026-11-28 07:00");
    settle(&s);
    CHECK_INT(file_lines(&s, "138****0002"), 5);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE recipient = "
                       "'13800000002' AND send_day = '2026-11-28'"),
              2);
    svc_stop(&s);
}

BX_TEST(staff_tasks_come_as_one_daily_digest)
{
    svc s;
    svc_init(&s, 3, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_DIGEST_TIME=16:30");
    svc_run(&s);
    ask_task(&s, 1, "t1", "contact_family");
    ask_task(&s, 2, "t2", "home_visit");
    ask_task(&s, 3, "t3", "contact_family");
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 0);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'collected'"), 3);
    at("2026-11-27 16:29");
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 0);
    at("2026-11-27 16:30");
    settle(&s);
    for (int i = 0; i < 100 && file_lines(&s, NULL) == 0; i++) {
        usleep(100 * 1000);
        settle(&s);
    }
    CHECK_INT(file_lines(&s, NULL), 1);
    CHECK_INT(file_lines(&s, "139****0001"), 1);
    CHECK_INT(file_lines(&s, "3项待办"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'digested' AND "
                       "digest_id IS NOT NULL"),
              3);
    /* a task after today's digest waits for tomorrow's */
    ask_task(&s, 1, "t4", "home_visit");
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 1);
    at("2026-11-28 16:30");
    settle(&s);
    for (int i = 0; i < 100 && file_lines(&s, NULL) == 1; i++) {
        usleep(100 * 1000);
        settle(&s);
    }
    CHECK_INT(file_lines(&s, NULL), 2);
    CHECK_INT(file_lines(&s, "1项待办"), 1);
    svc_stop(&s);
}

/* Issue 15: a task due before the digest could tell its owner in time (a same-day contact due at
 * 17:00 against the 16:30 digest) goes at once as its own SMS, under the daily cap; a task due
 * later waits for the digest. */
BX_TEST(a_task_due_before_the_digest_goes_at_once_under_the_cap)
{
    svc s;
    svc_init(&s, 3, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_DIGEST_TIME=16:30");
    setting(&s, "BX_NOTIFY_DAILY_CAP=1");
    svc_run(&s);
    ask_task_due(&s, 1, "now1", "contact_family", "2026-11-27T17:00:00+08:00");
    ask_task(&s, 2, "later", "home_visit");
    settle(&s);
    CHECK_INT(file_lines(&s, "139****0001"), 1);
    CHECK_INT(file_lines(&s, "【待办】"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE channel = 'sms' AND "
                       "template = 'task_assigned' AND state IN ('sent', 'delivered')"),
              1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'collected'"), 1);
    /* a second timely task the same day is held by the teacher's daily cap */
    ask_task_due(&s, 3, "now2", "contact_family", "2026-11-27T17:00:00+08:00");
    settle(&s);
    CHECK_INT(file_lines(&s, "139****0001"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'queued' AND "
                       "reason LIKE 'rate_limited: daily cap of 1%'"),
              1);
    svc_stop(&s);
}

/* What notify.settle_pending (bxctl settle) counts as due digests at a time. */
static long long digests_due_at(const char *when)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT pending FROM notify.settle_pending('%s') WHERE what = 'bx-notify: digests "
             "due'",
             when);
    return count_of(sql);
}

/* Issue 14, defect 8: a digest time the clock jumps over (bx-notify down or busy at 16:30) is
 * not skipped. `bxctl settle` counts the due digest (notify.settle_pending) until it is made; it
 * goes out the next morning flagged late (补发), and that day's own digest comes at its time. */
BX_TEST(a_digest_time_the_clock_jumps_over_is_caught_up_flagged_late)
{
    svc s;
    svc_init(&s, 3, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_DIGEST_TIME=16:30");
    svc_run(&s);
    ask_task(&s, 1, "t1", "contact_family");
    ask_task(&s, 2, "t2", "home_visit");
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 0);
    /* what settle waits for: nothing before the digest time, both tasks once it has passed */
    CHECK_INT(digests_due_at("2026-11-27 16:29+08"), 0);
    CHECK_INT(digests_due_at("2026-11-28 08:00+08"), 2);
    at("2026-11-28 08:00");
    for (int i = 0; i < 200 && file_lines(&s, NULL) == 0; i++)
        usleep(50 * 1000);
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 1);
    CHECK_INT(file_lines(&s, "2项待办"), 1);
    CHECK_INT(file_lines(&s, "（11月27日16:30的待办提醒，补发）"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE channel = 'digest' AND "
                       "request_id LIKE 'digest:NT1:2026-11-27:%'"),
              1);
    CHECK_INT(digests_due_at("2026-11-28 08:00+08"), 0);
    /* the morning's task waits for the day's own digest, which is not late */
    ask_task(&s, 3, "t3", "contact_family");
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 1);
    at("2026-11-28 16:30");
    for (int i = 0; i < 200 && file_lines(&s, NULL) == 1; i++)
        usleep(50 * 1000);
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 2);
    CHECK_INT(file_lines(&s, "1项待办"), 1);
    CHECK_INT(file_lines(&s, "补发"), 1);
    svc_stop(&s);
}

/* The rate is counted by the project clock: with the clock standing still only the burst goes;
 * each second the clock moves lets `rate` more go, never more. */
BX_TEST(provider_wide_rate_is_respected)
{
    enum { STUDENTS = 30, RATE = 5 };
    svc s;
    svc_init(&s, STUDENTS, "2026-11-27 10:00");
    setting(&s, "BX_NOTIFY_RATE=5");
    setting(&s, "BX_NOTIFY_RATE_BURST=5");
    svc_run(&s);
    for (int i = 1; i <= STUDENTS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "r%d", i);
        ask_guardian(&s, i, suffix);
    }
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), RATE); /* the burst */
    int seconds = 0;
    while (file_lines(&s, NULL) < STUDENTS + 1 && seconds < 20) {
        advance_ms(1000);
        seconds++;
        settle(&s);
        long long sent = file_lines(&s, NULL);
        if (sent > (long long)RATE * (seconds + 1))
            BX_FAIL_AT("%lld sent after %d s at %d per second", sent, seconds, RATE);
    }
    CHECK_INT(file_lines(&s, NULL), STUDENTS + 1); /* N01 has two guardians */
    CHECK(seconds >= (STUDENTS + 1) / RATE - 1);
    CHECK(metric(&s, "bx_notify_rate_waits_total") > 0);
    svc_stop(&s);
}

/* ---- against bx-fakesms: faults, a killed replica ---- */

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

/* GET http://127.0.0.1:<port><path> parsed as JSON (caller frees). */
static cJSON *get_json(int port, const char *path)
{
    char url[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    bx_buf body;
    bx_buf_init(&body, 1 << 24);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    REQUIRE(rc == CURLE_OK && body.len > 0);
    cJSON *root = cJSON_ParseWithLength(body.data, body.len);
    bx_buf_free(&body);
    REQUIRE(root != NULL);
    return root;
}

static long long stat_of(int port, const char *name)
{
    cJSON *root = get_json(port, "/_stats");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    cJSON_Delete(root);
    return n;
}

#define FAKE_SECRET "itest-webhook-secret"

/* Starts bx-fakesms posting receipts to s's endpoint, and points s at it. */
static pid_t fake_start(svc *s, const char *const *faults, int *port)
{
    static char receipt_url[128];
    snprintf(receipt_url, sizeof(receipt_url),
             "BX_FAKESMS_RECEIPT_URL=http://127.0.0.1:%d/v1/receipts", s->receipt_port);
    const char *env[24] = {receipt_url, "BX_FAKESMS_SECRET=" FAKE_SECRET};
    size_t n = 2;
    for (size_t i = 0; faults && faults[i] && n < 23; i++)
        env[n++] = faults[i];
    env[n] = NULL;
    pid_t pid = itest_fakesms_start(env, port);
    static char url[128], status_url[128];
    snprintf(url, sizeof(url), "BX_NOTIFY_PROVIDER_URL=http://127.0.0.1:%d/webhook/send", *port);
    snprintf(status_url, sizeof(status_url),
             "BX_NOTIFY_PROVIDER_STATUS_URL=http://127.0.0.1:%d/webhook/status", *port);
    setting(s, "BX_NOTIFY_PROVIDER=webhook");
    setting(s, url);
    setting(s, status_url);
    setting(s, "BX_NOTIFY_PROVIDER_SECRET=" FAKE_SECRET);
    return pid;
}

#define ACTIVE "state IN ('queued', 'sending', 'unknown', 'sent')"

/* Settles, then moves the clock to the next due time (after a pause for receipts in real time),
 * until no notification is waiting or max_steps. */
static void drive(svc *s, int max_steps)
{
    for (int i = 0; i < max_steps; i++) {
        settle(s);
        if (count_of("SELECT count(*) FROM notify.notification WHERE " ACTIVE) == 0)
            return;
        usleep(200 * 1000); /* receipts in flight arrive */
        settle(s);
        char *next = rows_of("SELECT coalesce((extract(epoch FROM min(due_at)) * 1000)::bigint, "
                             "0) FROM notify.notification WHERE " ACTIVE);
        long long due = strtoll(next, NULL, 10);
        free(next);
        if (due > bx_clock_now())
            REQUIRE(bx_clock_set(due) == BX_OK);
    }
    REQUIRE(!"notifications still waiting after the allowed steps");
}

/* The never-twice and never-lost promises: what bx-notify recorded against what the fake saw. */
static void check_every_notification_ended(int fake_port)
{
    CHECK_INT(stat_of(fake_port, "double_sends"), 0);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE " ACTIVE), 0);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state NOT IN "
                       "('delivered', 'dead', 'digested')"),
              0);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'dead' AND "
                       "coalesce(reason, '') = ''"),
              0);
    /* each id the fake accepted is delivered or dead after acceptance in bx-notify's record */
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'delivered' OR "
                       "(state = 'dead' AND reason LIKE 'accepted but not delivered%')"),
              stat_of(fake_port, "unique_ids"));
}

BX_TEST(faults_of_the_provider_send_nothing_twice_and_lose_nothing)
{
    enum { STUDENTS = 40 };
    svc s;
    svc_init(&s, STUDENTS, "2026-11-27 10:00");
    int fake = 0;
    const char *faults[] = {"BX_FAKESMS_SEED=7",
                            "BX_FAKESMS_FAIL_5XX=0.3",
                            "BX_FAKESMS_SLOW_ACCEPT=0.15",
                            "BX_FAKESMS_SLOW_MS=1500",
                            "BX_FAKESMS_DUP_RECEIPTS=0.3",
                            "BX_FAKESMS_LOST_RECEIPTS=0.3",
                            "BX_FAKESMS_UNDELIVERED=0.05",
                            "BX_FAKESMS_RECEIPT_DELAY_MS=20",
                            "BX_FAKESMS_REJECT_NUMBERS=13800000007",
                            NULL};
    fake_start(&s, faults, &fake);
    setting(&s, "BX_NOTIFY_PROVIDER_TIMEOUT_MS=700");
    setting(&s, "BX_NOTIFY_RETRY_BASE_MS=1000");
    setting(&s, "BX_NOTIFY_QUERY_DELAY_MS=2000");
    setting(&s, "BX_NOTIFY_RECEIPT_CHECK_MS=5000");
    setting(&s, "BX_NOTIFY_RECEIPT_LIMIT_MS=600000");
    setting(&s, "BX_NOTIFY_MAX_ATTEMPTS=10");
    setting(&s, "BX_NOTIFY_DAILY_CAP=3");
    svc_run(&s);
    for (int i = 1; i <= STUDENTS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "f%d", i);
        ask_guardian(&s, i, suffix);
    }
    /* four more for N03's family: the daily cap holds the last two until tomorrow morning */
    for (int i = 0; i < 4; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "cap%d", i);
        ask_guardian(&s, 3, suffix);
    }
    drive(&s, 200);
    check_every_notification_ended(fake);
    /* the faults happened */
    CHECK(stat_of(fake, "refused_5xx") > 0);
    CHECK(stat_of(fake, "slow_accepts") > 0);
    CHECK(stat_of(fake, "receipts_duplicated") > 0);
    CHECK(stat_of(fake, "receipts_lost") > 0);
    CHECK(stat_of(fake, "queries") > 0);
    CHECK(metric(&s, "bx_notify_receipts_total") > 0);
    /* N01 has two guardians; 13800000007 is refused for good */
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification"), STUDENTS + 1 + 4);
    char *refused = rows_of("SELECT recipient_masked, left(reason, 23) FROM notify.notification "
                            "WHERE recipient = '13800000007'");
    CHECK_STR(refused, "138****0007|refused by the provider\n");
    free(refused);
    /* duplicate receipts changed nothing: one row per receipt kept, one outcome */
    CHECK(count_of("SELECT count(*) FROM notify.receipt") <= stat_of(fake, "unique_ids"));
    /* caps: no phone got more than 3 a day; N03's last two went the next day after 07:00 */
    CHECK_INT(count_of("SELECT count(*) FROM (SELECT recipient, send_day FROM "
                       "notify.notification WHERE send_day IS NOT NULL GROUP BY 1, 2 "
                       "HAVING count(*) > 3) x"),
              0);
    char *late = rows_of("SELECT count(*), min(to_char(first_sent_at AT TIME ZONE "
                         "'Asia/Shanghai', 'YYYY-MM-DD HH24:MI')) >= '2026-11-28 07:00' FROM "
                         "notify.notification WHERE recipient = '13800000003' AND send_day = "
                         "'2026-11-28'");
    CHECK_STR(late, "2|t\n");
    free(late);
    /* quiet hours: no parent's SMS went between 21:30 and 07:00 */
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE audience = 'guardian' "
                       "AND first_sent_at IS NOT NULL AND ((first_sent_at AT TIME ZONE "
                       "'Asia/Shanghai')::time >= '21:30' OR (first_sent_at AT TIME ZONE "
                       "'Asia/Shanghai')::time < '07:00')"),
              0);
    svc_stop(&s);
}

BX_TEST(killed_mid_batch_sends_nothing_twice_and_loses_nothing)
{
    enum { STUDENTS = 40 };
    svc s;
    svc_init(&s, STUDENTS, "2026-11-27 10:00");
    int fake = 0;
    /* every send takes 150 ms, so a batch is in flight when the replica is killed */
    const char *faults[] = {"BX_FAKESMS_SLOW_ACCEPT=1", "BX_FAKESMS_SLOW_MS=150",
                            "BX_FAKESMS_LOST_RECEIPTS=0.5", "BX_FAKESMS_RECEIPT_DELAY_MS=20", NULL};
    fake_start(&s, faults, &fake);
    setting(&s, "BX_NOTIFY_PROVIDER_TIMEOUT_MS=3000");
    setting(&s, "BX_NOTIFY_LEASE_MS=5000");
    setting(&s, "BX_NOTIFY_RECEIPT_CHECK_MS=5000");
    setting(&s, "BX_NOTIFY_QUERY_DELAY_MS=2000");
    /* the provider-wide cap counts on the driven clock, which stands still until the kill: with
     * its burst of 10 the sends stopped after 10, and the kill had to land in the 150 ms of the
     * last two; a larger burst keeps 8 sends in flight until the kill */
    setting(&s, "BX_NOTIFY_RATE_BURST=1000");
    svc_run(&s);
    for (int i = 1; i <= STUDENTS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "k%d", i);
        ask_guardian(&s, i, suffix);
    }
    /* kill it once some are sent and some are not, with sends in flight: each takes 150 ms, so
     * two of them rarely both finish in the moment between this check and the kill (up to 30 s:
     * under ASan on a loaded machine the first sends start late) */
    for (int i = 0; i < 3000 && (stat_of(fake, "sends_accepted") < 8 ||
                                 count_of("SELECT count(*) FROM notify.notification WHERE state = "
                                          "'sending'") < 2);
         i++)
        usleep(10 * 1000);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    long long before = stat_of(fake, "sends_accepted");
    CHECK(before >= 8);
    CHECK(before < STUDENTS + 1);
    CHECK(count_of("SELECT count(*) FROM notify.notification WHERE state = 'sending'") > 0);
    /* another replica takes over once the killed one's leases end */
    s.base = count_of("SELECT count(*) FROM notify.request");
    advance_ms(6000);
    svc_run(&s);
    drive(&s, 100);
    check_every_notification_ended(fake);
    CHECK_INT(stat_of(fake, "unique_ids"), STUDENTS + 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'delivered'"),
              STUDENTS + 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.request"), STUDENTS);
    svc_stop(&s);
}

BX_TEST(two_replicas_share_the_work_and_send_nothing_twice)
{
    enum { STUDENTS = 60 };
    svc s;
    svc_init(&s, STUDENTS, "2026-11-27 10:00");
    int fake = 0;
    const char *faults[] = {"BX_FAKESMS_SEED=11",
                            "BX_FAKESMS_FAIL_5XX=0.2",
                            "BX_FAKESMS_SLOW_ACCEPT=1",
                            "BX_FAKESMS_SLOW_MS=30",
                            "BX_FAKESMS_LOST_RECEIPTS=0.3",
                            "BX_FAKESMS_RECEIPT_DELAY_MS=20",
                            NULL};
    fake_start(&s, faults, &fake);
    setting(&s, "BX_NOTIFY_RETRY_BASE_MS=1000");
    setting(&s, "BX_NOTIFY_RECEIPT_CHECK_MS=5000");
    setting(&s, "BX_NOTIFY_WORKERS=3");
    setting(&s, "BX_NOTIFY_BATCH=2");
    svc_run(&s);
    int first_port = s.port;
    setting(&s, "BX_NOTIFY_RECEIPT_LISTEN="); /* one endpoint is enough for the fake */
    svc_run(&s);
    s.by_db = true;
    for (int i = 1; i <= STUDENTS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "two%d", i);
        ask_guardian(&s, i, suffix);
    }
    drive(&s, 100);
    check_every_notification_ended(fake);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'delivered'"),
              STUDENTS + 1);
    /* both sent (which replica took which request depends on when the group rebalanced) */
    long long sends_a = itest_metric(first_port, "bx_notify_sends_total"),
              sends_b = metric(&s, "bx_notify_sends_total");
    CHECK(sends_a > 0);
    CHECK(sends_b > 0);
    CHECK(sends_a + sends_b >= STUDENTS + 1);
    svc_stop(&s);
}

BX_TEST(a_long_task_list_comes_in_parts_that_fit_an_sms)
{
    enum { TASKS = 20 };
    svc s;
    svc_init(&s, TASKS, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_DIGEST_TIME=16:30");
    svc_run(&s);
    for (int i = 1; i <= TASKS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "long%d", i);
        ask_task(&s, i, suffix, i % 2 ? "contact_family" : "home_visit");
    }
    settle(&s);
    at("2026-11-27 16:30");
    for (int i = 0; i < 200 && count_of("SELECT count(*) FROM notify.notification WHERE state = "
                                        "'collected'") > 0;
         i++)
        usleep(50 * 1000);
    settle(&s);
    long long parts = count_of("SELECT count(*) FROM notify.notification WHERE channel = 'digest'");
    CHECK(parts >= 2);
    CHECK_INT(file_lines(&s, NULL), parts); /* every part went, none was refused as too long */
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE channel = 'digest' AND "
                       "state = 'dead'"),
              0);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'digested'"), TASKS);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE channel = 'digest' AND "
                       "octet_length(body) > 2048"),
              0);
    /* the parts together list every task once */
    CHECK_INT(count_of("SELECT count(DISTINCT digest_id) FROM notify.notification WHERE state = "
                       "'digested'"),
              parts);
    svc_stop(&s);
}

/* Aliyun's API files messages by send date, which bx-fakesms takes from the real clock: this
 * case's driven clock starts at the real time in Shanghai. */
BX_TEST(aliyun_through_the_fake_sends_nothing_twice_and_loses_nothing)
{
    enum { STUDENTS = 20 };
    time_t real = time(NULL) + 8 * 3600;
    struct tm tm;
    gmtime_r(&real, &tm);
    char local[32];
    strftime(local, sizeof(local), "%Y-%m-%d %H:%M", &tm);
    svc s;
    svc_init(&s, STUDENTS, local);
    /* Aliyun does not sign its pushes: receipts only at the path of the endpoint's token */
#define RECEIPT_TOKEN "itest-receipt-token-0123456789abcdef"
    static char receipt_url[160];
    snprintf(receipt_url, sizeof(receipt_url),
             "BX_FAKESMS_RECEIPT_URL=http://127.0.0.1:%d/v1/receipts/" RECEIPT_TOKEN,
             s.receipt_port);
    const char *env[] = {receipt_url,
                         "BX_FAKESMS_ACCESS_KEY_ID=itestKeyId",
                         "BX_FAKESMS_ACCESS_KEY_SECRET=itestKeySecret",
                         "BX_FAKESMS_SEED=3",
                         "BX_FAKESMS_FAIL_5XX=0.2",
                         "BX_FAKESMS_SLOW_ACCEPT=0.3",
                         "BX_FAKESMS_SLOW_MS=1500",
                         "BX_FAKESMS_LOST_RECEIPTS=0.4",
                         "BX_FAKESMS_DUP_RECEIPTS=0.3",
                         "BX_FAKESMS_RECEIPT_DELAY_MS=20",
                         NULL};
    int fake = 0;
    itest_fakesms_start(env, &fake);
    static char url[96];
    snprintf(url, sizeof(url), "BX_NOTIFY_PROVIDER_URL=http://127.0.0.1:%d/", fake);
    setting(&s, "BX_NOTIFY_PROVIDER=aliyun");
    setting(&s, "BX_NOTIFY_RECEIPT_TOKEN=" RECEIPT_TOKEN);
    setting(&s, url);
    setting(&s, "BX_NOTIFY_PROVIDER_ACCESS_KEY_ID=itestKeyId");
    setting(&s, "BX_NOTIFY_PROVIDER_SECRET=itestKeySecret");
    setting(&s, "BX_NOTIFY_PROVIDER_TEMPLATE_CODE=SMS_900001");
    setting(&s, "BX_NOTIFY_PROVIDER_TIMEOUT_MS=700");
    setting(&s, "BX_NOTIFY_QUIET_HOURS=off");
    setting(&s, "BX_NOTIFY_RETRY_BASE_MS=1000");
    setting(&s, "BX_NOTIFY_QUERY_DELAY_MS=2000");
    setting(&s, "BX_NOTIFY_RECEIPT_CHECK_MS=5000");
    svc_run(&s);
    for (int i = 1; i <= STUDENTS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "ali%d", i);
        ask_guardian(&s, i, suffix);
    }
    drive(&s, 200);
    check_every_notification_ended(fake);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'delivered'"),
              STUDENTS + 1);
    CHECK(stat_of(fake, "slow_accepts") > 0);
    CHECK(stat_of(fake, "refused_5xx") > 0);
    CHECK(stat_of(fake, "queries") > 0);
    CHECK(metric(&s, "bx_notify_receipts_total") > 0);
    CHECK_INT(count_of("SELECT count(DISTINCT provider) FROM notify.notification WHERE "
                       "provider = 'aliyun'"),
              1);
    svc_stop(&s);
}

/* A request as bx-escalate builds it (services/bx-escalate/messages.c): stage notices carry the
 * case's id, stage and streak; task notices the task's id, kind, due time and owner role. */
static void ask_escalate(svc *s, const char *suffix, const char *tmpl, const char *role,
                         const char *staff, const char *params)
{
    char v[1536];
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"N05:20261127:%s:%s\","
             "\"case_id\":\"N05:20261127\",\"student_id\":\"N05\",\"template\":\"%s\","
             "\"recipient_role\":\"%s\",\"recipient_staff_id\":%s%s%s,\"channel\":\"%s\","
             "\"params\":%s,\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\"}",
             tag, suffix, tmpl, role, staff ? "\"" : "", staff ? staff : "null", staff ? "\"" : "",
             strcmp(role, "guardian") == 0 ? "sms" : "task", params);
    produce(s, "N05", v);
}

static void stage_params(char *out, size_t size, const char *stage, const char *streak)
{
    snprintf(out, size,
             "{\"case_id\":\"N05:20261127\",\"stage\":\"%s\",\"streak_days\":\"%s\","
             "\"streak_start\":\"2026-11-23\"}",
             stage, streak);
}

BX_TEST(every_message_the_default_ladder_asks_for_is_sent)
{
    svc s;
    svc_init(&s, 5, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_DIGEST_TIME=16:30");
    svc_run(&s);
    char p[512];
    stage_params(p, sizeof(p), "contact_family", "1");
    ask_escalate(&s, "n1", "absence_same_day", "guardian", NULL, p);
    stage_params(p, sizeof(p), "school_report", "3");
    ask_escalate(&s, "n2", "school_report", "principal", NULL, p);
    stage_params(p, sizeof(p), "academic_office", "5");
    ask_escalate(&s, "n3", "academic_office_report", "academic_office", NULL, p);
    stage_params(p, sizeof(p), "dropout_roster", "5");
    ask_escalate(&s, "n4", "dropout_reported", "county_officer", NULL, p);
    stage_params(p, sizeof(p), "township_notice", "10");
    ask_escalate(&s, "n5", "township_action_requested", "township_officer", NULL, p);
    stage_params(p, sizeof(p), "deadline_notice", "15");
    ask_escalate(&s, "n6", "deadline_notice_issued", "county_officer", NULL, p);
    stage_params(p, sizeof(p), "legal_referral", "20");
    ask_escalate(&s, "n7", "legal_referral", "county_officer", NULL, p);
    ask_escalate(&s, "n8", "task_assigned", "homeroom_teacher", "NT1",
                 "{\"case_id\":\"N05:20261127\",\"task_id\":\"N05:20261127:contact_family:"
                 "contact_family:2026-11-27\",\"task\":\"contact_family\",\"due_at\":"
                 "\"2026-11-27T17:00:00+08:00\"}");
    ask_escalate(&s, "n9", "task_overdue", "principal", NULL,
                 "{\"case_id\":\"N05:20261127\",\"task_id\":\"N05:20261127:home_visit:"
                 "home_visit:2026-11-28\",\"task\":\"home_visit\",\"owner_role\":"
                 "\"homeroom_teacher\"}");
    settle(&s);
    CHECK_INT(metric(&s, "bx_notify_dlq_total"), 0);
    CHECK_INT(metric(&s, "bx_notify_requests_total"), 9);
    CHECK_INT(file_lines(&s, "138****0005"), 1); /* the parent at once */
    CHECK_INT(file_lines(&s, "学生5家长您好"), 1);
    /* the same-day contact due at 17:00 goes to the homeroom teacher at once (issue 15) */
    CHECK_INT(file_lines(&s, "【待办】"), 1);
    /* other staff tasks: one digest each at 16:30; the principal's lists two, the county officer
     * has no phone (dead with the reason, the tasks listed in it) */
    at("2026-11-27 16:30");
    for (int i = 0; i < 200 && count_of("SELECT count(*) FROM notify.notification WHERE state = "
                                        "'collected'") > 0;
         i++)
        usleep(50 * 1000);
    settle(&s);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'collected'"), 0);
    char *digests = rows_of("SELECT staff_id, state, coalesce(reason, '-') FROM "
                            "notify.notification WHERE channel = 'digest' ORDER BY staff_id");
    CHECK_STR(digests, "NCO1|dead|staff NCO1 has no mobile number\n"
                       "NP1|sent|-\n"
                       "NTO1|sent|-\n");
    free(digests);
    CHECK_INT(file_lines(&s, "139****0002"), 1);
    CHECK_INT(file_lines(&s, "2项待办"), 1); /* the principal: the school report and the overdue */
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'digested'"), 6);
    /* the school has no academic office in the registry: recorded dead with the reason */
    char *none = rows_of("SELECT recipient, state, reason FROM notify.notification WHERE "
                         "template = 'academic_office_report'");
    CHECK_STR(none, "none|dead|no staff member of the role found\n");
    free(none);
    svc_stop(&s);
}

/* {days_missed_term}: whole school days bx-score recorded as unexcused absence in this term. */
BX_TEST(days_missed_this_term_come_from_the_attendance_record)
{
    svc s;
    svc_init(&s, 4, "2026-11-27 09:00");
    PGconn *db = pg();
    bx_error err = {0};
    REQUIRE(bx_pg_exec(db,
                       "INSERT INTO attendance.fact (student_id, field, day, period, school_id, "
                       "class_id, order_key, value) VALUES "
                       "('N04', '2026-11-23|0', '2026-11-23', 0, 'NS1', 'NC1', 'k', 'a'), "
                       "('N04', '2026-11-24|0', '2026-11-24', 0, 'NS1', 'NC1', 'k', 'a'), "
                       "('N04', '2026-11-26|0', '2026-11-26', 0, 'NS1', 'NC1', 'k', 'a'), "
                       "('N04', '2026-11-25|0', '2026-11-25', 0, 'NS1', 'NC1', 'k', 'ls'), "
                       "('N04', '2026-11-25|3', '2026-11-25', 3, 'NS1', 'NC1', 'k', 'a'), "
                       "('N04', '2026-06-01|0', '2026-06-01', 0, 'NS1', 'NC1', 'k', 'a'), "
                       "('N04', '2026-11-30|0', '2026-11-30', 0, 'NS1', 'NC1', 'k', 'a'), "
                       "('N03', '2026-11-23|0', '2026-11-23', 0, 'NS1', 'NC1', 'k', 'a')",
                       &err) == BX_OK);
    PQfinish(db);
    svc_run(&s);
    ask_guardian(&s, 4, "days");
    settle(&s);
    /* 23, 24 and 26 November: not the sick leave, not one period, not the spring term, not a day
     * after today, not another child's */
    CHECK_INT(file_lines(&s, "学生4今天（11月27日）没有到校，本学期已缺课3天"), 1);
    svc_stop(&s);
}

/* The day's first digest also lists tasks still open from earlier days (bx-escalate's cases.task:
 * by owner, or by role where the case is), not the done ones or those of closed cases. */
BX_TEST(the_digest_lists_tasks_still_open_from_earlier_days)
{
    svc s;
    svc_init(&s, 3, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_DIGEST_TIME=16:30");
    PGconn *db = pg();
    bx_error err = {0};
    REQUIRE(bx_pg_exec(db,
                       "INSERT INTO cases.case (id, student_id, school_id, opened_at, updated_at, "
                       "closed_at, ending) VALUES "
                       "(1, 'N01', 'NS1', '2026-11-20 09:00+08', '2026-11-20 09:00+08', NULL, "
                       "NULL), (2, 'N02', 'NS1', '2026-11-20 09:00+08', '2026-11-24 09:00+08', "
                       "'2026-11-24 09:00+08', 'returned');"
                       "INSERT INTO cases.task (case_id, task_key, kind, owner_role, "
                       "owner_staff_id, created_at, due_at, done_at, overdue_at) VALUES "
                       "(1, 'k1', 'home_visit', 'homeroom_teacher', 'NT1', '2026-11-24 09:00+08', "
                       "'2026-11-25 17:00+08', NULL, '2026-11-25 17:00+08'), "
                       "(1, 'k2', 'contact_family', 'homeroom_teacher', 'NT1', "
                       "'2026-11-23 09:00+08', '2026-11-23 17:00+08', '2026-11-23 12:00+08', "
                       "NULL), "
                       "(1, 'k3', 'persuasion_letter', 'principal', NULL, '2026-11-25 09:00+08', "
                       "'2026-11-30 17:00+08', NULL, NULL), "
                       "(2, 'k4', 'home_visit', 'homeroom_teacher', 'NT1', '2026-11-21 09:00+08', "
                       "'2026-11-22 17:00+08', NULL, NULL), "
                       "(1, 'k5', 'home_visit', 'homeroom_teacher', 'NT1', '2026-11-27 08:00+08', "
                       "'2026-11-28 17:00+08', NULL, NULL)",
                       &err) == BX_OK);
    PQfinish(db);
    svc_run(&s);
    ask_task(&s, 3, "new", "contact_family"); /* today's new task for NT1 */
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 0);
    at("2026-11-27 16:30");
    for (int i = 0; i < 200 && file_lines(&s, NULL) < 2; i++)
        usleep(50 * 1000);
    settle(&s);
    CHECK_INT(file_lines(&s, NULL), 2);
    /* NT1: the overdue home visit of N01 (k1), then today's new task; not the done k2, not k4 of
     * the closed case, not k5 created since yesterday's digest time (announced as new) */
    CHECK_INT(file_lines(&s, "139****0001"), 1);
    CHECK_INT(file_lines(&s, "周明您好，您有2项待办"), 1);
    CHECK_INT(file_lines(&s, "1. 【未完成】家访：三年级2班学生1，11月25日17:00前（已逾期）"), 1);
    CHECK_INT(file_lines(&s, "2. 【待办】三年级2班学生3"), 1);
    /* NP1 by role at the case's school */
    CHECK_INT(file_lines(&s, "吴刚您好，您有1项待办"), 1);
    CHECK_INT(file_lines(&s, "【未完成】下发劝学书：三年级2班学生1，11月30日17:00前"), 1);
    /* one digest each a day: nothing more on the next step or later today */
    at("2026-11-27 20:00");
    settle(&s);
    usleep(300 * 1000);
    CHECK_INT(file_lines(&s, NULL), 2);
    svc_stop(&s);
}

/* A request the database refuses for good is not retried forever, holding up its partition: here
 * a staff id that looks like a phone number, which a notification's masked recipient may not
 * carry (a CHECK constraint, so BX_EINVAL). It is dead-lettered as invalid_value with the
 * database's reason, and the request after it is sent. */
BX_TEST(a_request_the_database_refuses_is_dead_lettered_and_the_next_one_sent)
{
    svc s;
    svc_init(&s, 5, "2026-11-27 09:00");
    itest_sql_exec(db_url, "INSERT INTO registry.staff (id, name, role, school_id, phone) "
                           "VALUES ('13912345678', '王芳', 'academic_office', 'NS1', "
                           "'13900000009')");
    svc_run(&s);
    itest_mark *dlq = itest_topic_mark(BX_TOPIC_DLQ);
    char p[512];
    stage_params(p, sizeof(p), "academic_office", "5");
    ask_escalate(&s, "refused", "academic_office_report", "academic_office", "13912345678", p);
    ask_guardian(&s, 2, "after");
    settle(&s);
    CHECK_INT(metric(&s, "bx_notify_dlq_total"), 1);
    CHECK_INT(metric(&s, "bx_notify_requests_total"), 1);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE recipient_masked = "
                       "'13912345678'"),
              0);
    CHECK_INT(file_lines(&s, NULL), 1);
    char needle[160];
    snprintf(needle, sizeof(needle), "\"endpoint\":\"%s\"", s.requests);
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(dlq, needle, 1, 20000, &got), 1);
    check_schema(BX_TOPIC_DLQ, got.data);
    CHECK(got.data && strstr(got.data, ":refused\"") != NULL);
    CHECK(got.data && strstr(got.data, "\"reason\":\"invalid_value\"") != NULL);
    CHECK(got.data && strstr(got.data, "\"field\":null") != NULL);
    CHECK(got.data && strstr(got.data, "postgresql: ") != NULL);
    bx_buf_free(&got);
    itest_mark_free(dlq);
    svc_stop(&s);
}

/* A burst of requests waiting when bx-notify starts is taken in a few polls of one transaction
 * each (bx_notify_intake_polls_total), with the same outcome as one by one: each request's
 * notifications and first status messages, a repeated request id taken once, bad ones
 * dead-lettered, nobody to reach recorded dead. Then a request the database refuses is
 * dead-lettered alone (a poll it is in falls back to one by one), the requests beside it are
 * taken and the first burst's requests, redelivered, send nothing. */
BX_TEST(a_burst_is_taken_together_as_one_by_one_would_take_it)
{
    enum { STUDENTS = 24 };
    svc s;
    svc_init(&s, STUDENTS, "2026-11-27 09:00");
    setting(&s, "BX_NOTIFY_DIGEST_TIME=16:30");
    setting(&s, "BX_NOTIFY_RATE=0"); /* the clock stands still: no per-second budget */
    itest_sql_exec(db_url, "INSERT INTO registry.staff (id, name, role, school_id, phone) "
                           "VALUES ('13912345678', '王芳', 'academic_office', 'NS1', "
                           "'13900000009')");
    itest_mark *dlq = itest_topic_mark(BX_TOPIC_DLQ);
    for (int i = 1; i <= STUDENTS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "b%d", i);
        ask_guardian(&s, i, suffix);
    }
    ask_guardian(&s, 3, "b3");           /* the same request again, in the same poll */
    ask_guardian(&s, 99, "b99");         /* nobody with a phone */
    ask_task(&s, 4, "t4", "home_visit"); /* collected for the digest */
    produce(&s, "x", "{not json");
    char v[1024];
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"%s:nope\",\"case_id\":null,"
             "\"student_id\":\"NOPE\",\"template\":\"absence_same_day\",\"recipient_role\":"
             "\"guardian\",\"recipient_staff_id\":null,\"channel\":\"sms\",\"params\":{},"
             "\"not_before\":null,\"requested_at\":\"2026-11-27T09:00:00+08:00\"}",
             tag);
    produce(&s, "NOPE", v);
    svc_run(&s);
    settle(&s);
    CHECK(metric(&s, "bx_notify_intake_polls_total") >= 1);
    CHECK_INT(metric(&s, "bx_notify_failures_total"), 0); /* no poll fell back */
    CHECK_INT(metric(&s, "bx_notify_requests_total"), STUDENTS + 2);
    CHECK_INT(metric(&s, "bx_notify_requests_redelivered_total"), 1);
    CHECK_INT(metric(&s, "bx_notify_dlq_total"), 2);
    CHECK_INT(count_of("SELECT count(*) FROM notify.request"), STUDENTS + 2);
    /* N01 has two guardians; N99 nobody: one dead notification to "none" */
    CHECK_INT(count_of("SELECT sum(recipients) FROM notify.request"), STUDENTS + 3);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification"), STUDENTS + 3);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'collected'"), 1);
    char *dead = rows_of("SELECT recipient, reason FROM notify.notification WHERE state = 'dead'");
    CHECK_STR(dead, "none|no guardian with a mobile number\n");
    free(dead);
    CHECK_INT(file_lines(&s, NULL), STUDENTS + 1);
    CHECK_INT(file_lines(&s, "学生2家长您好"), 1);
    CHECK_INT(file_lines(&s, "班主任周明老师"), STUDENTS + 1);
    /* one first status message per notification, in the order of the notifications */
    CHECK_INT(count_of("SELECT count(*) FROM notify.outbox WHERE topic <> 'bx.dlq.v1' AND "
                       "payload::jsonb->>'status' IN ('queued', 'dead') AND "
                       "(payload::jsonb->>'attempt')::int = 0"),
              STUDENTS + 3);
    CHECK_INT(count_of("SELECT count(*) FROM (SELECT o.id, n.id AS nid, lag(n.id) OVER "
                       "(ORDER BY o.id) AS before FROM notify.outbox o JOIN "
                       "notify.notification n ON n.notification_id = "
                       "o.payload::jsonb->>'notification_id' WHERE o.topic <> 'bx.dlq.v1' AND "
                       "(o.payload::jsonb->>'attempt')::int = 0) x WHERE nid < before"),
              0);
    /* the second burst: a request the database refuses, good ones, redeliveries */
    long long polls = metric(&s, "bx_notify_intake_polls_total");
    char p[512];
    stage_params(p, sizeof(p), "academic_office", "5");
    ask_escalate(&s, "refused", "academic_office_report", "academic_office", "13912345678", p);
    ask_guardian(&s, 1, "b1");
    ask_guardian(&s, 2, "b2");
    ask_guardian(&s, 5, "c5");
    settle(&s);
    CHECK_INT(metric(&s, "bx_notify_dlq_total"), 3);
    CHECK_INT(metric(&s, "bx_notify_requests_total"), STUDENTS + 3);
    CHECK_INT(metric(&s, "bx_notify_requests_redelivered_total"), 3);
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE recipient_masked = "
                       "'13912345678'"),
              0);
    CHECK(metric(&s, "bx_notify_intake_polls_total") >= polls);
    CHECK_INT(file_lines(&s, NULL), STUDENTS + 2);
    char needle[160];
    snprintf(needle, sizeof(needle), "\"endpoint\":\"%s\"", s.requests);
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(dlq, needle, 3, 20000, &got), 3);
    check_schema(BX_TOPIC_DLQ, got.data);
    CHECK(got.data && strstr(got.data, "\"reason\":\"malformed\"") != NULL);
    CHECK(got.data && strstr(got.data, "\"reason\":\"unknown_student\"") != NULL);
    CHECK(got.data && strstr(got.data, ":refused\"") != NULL);
    bx_buf_free(&got);
    itest_mark_free(dlq);
    svc_stop(&s);
}

/* POSTs body, signed as the webhook provider signs, to s's receipt endpoint; the HTTP code, and
 * the answer in reply. */
static long post_receipts(svc *s, const char *body, bx_buf *reply)
{
    char ts[24], hex[65], header[160], url[96];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    provider_webhook_signature(FAKE_SECRET, ts, body, strlen(body), hex);
    snprintf(header, sizeof(header), "X-Bx-Signature: t=%s,sha256=%s", ts, hex);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/receipts", s->receipt_port);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, header);
    bx_buf_reset(reply);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return code;
}

BX_TEST(a_post_of_receipts_is_applied_together_as_one_by_one_would_apply_it)
{
    svc s;
    svc_init(&s, 3, "2026-11-27 10:00");
    int fake = 0;
    const char *faults[] = {"BX_FAKESMS_LOST_RECEIPTS=1", NULL}; /* the test posts them */
    fake_start(&s, faults, &fake);
    setting(&s, "BX_NOTIFY_RATE=0");
    svc_run(&s);
    for (int i = 1; i <= 3; i++) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "r%d", i);
        ask_guardian(&s, i, suffix);
    }
    settle(&s);
    /* N01's two guardians, N02, N03: all accepted, waiting for their receipts */
    CHECK_INT(count_of("SELECT count(*) FROM notify.notification WHERE state = 'sent'"), 4);
    char *ids = rows_of("SELECT notification_id, provider_message_id FROM notify.notification "
                        "ORDER BY id");
    char id[4][32], mid[4][129];
    const char *line = ids;
    for (int i = 0; i < 4; i++) {
        REQUIRE(sscanf(line, "%31[^|]|%128[^\n]", id[i], mid[i]) == 2);
        line = strchr(line, '\n') + 1;
    }
    free(ids);
    /* one post: A delivered twice (a duplicate), B pending then delivered, C failed, D
     * delivered then failed (decided on its row as the first left it), a receipt for a
     * notification nobody knows */
    char body[2048];
    snprintf(body, sizeof(body),
             "{\"receipts\":[{\"id\":\"%s\",\"message_id\":\"%s\",\"status\":\"delivered\"},"
             "{\"id\":\"%s\",\"message_id\":\"%s\",\"status\":\"delivered\"},"
             "{\"id\":\"%s\",\"message_id\":\"%s\",\"status\":\"pending\"},"
             "{\"id\":\"%s\",\"message_id\":\"%s\",\"status\":\"delivered\"},"
             "{\"id\":\"%s\",\"message_id\":\"%s\",\"status\":\"failed\",\"reason\":\"handset "
             "unreachable\"},{\"id\":\"%s\",\"message_id\":\"%s\",\"status\":\"delivered\"},"
             "{\"id\":\"%s\",\"message_id\":\"%s\",\"status\":\"failed\"},"
             "{\"id\":\"ntf-999999\",\"message_id\":\"m9\",\"status\":\"delivered\"}]}",
             id[0], mid[0], id[0], mid[0], id[1], mid[1], id[1], mid[1], id[2], mid[2], id[3],
             mid[3], id[3], mid[3]);
    bx_buf reply;
    bx_buf_init(&reply, 0);
    CHECK_INT(post_receipts(&s, body, &reply), 200);
    CHECK(reply.data && strstr(reply.data, "\"received\":8,\"recorded\":8,") != NULL);
    char *states = rows_of("SELECT state, coalesce(left(reason, 26), '') FROM "
                           "notify.notification ORDER BY id");
    CHECK_STR(states, "delivered|\ndelivered|\ndead|accepted but not delivered\ndelivered|\n");
    free(states);
    /* a row per receipt but the duplicate; one status message per change */
    CHECK_INT(count_of("SELECT count(*) FROM notify.receipt"), 7);
    CHECK_INT(count_of("SELECT count(*) FROM notify.outbox WHERE payload::jsonb->>'status' IN "
                       "('delivered', 'dead')"),
              4);
    /* the same post again changes nothing */
    CHECK_INT(post_receipts(&s, body, &reply), 200);
    CHECK(reply.data && strstr(reply.data, "\"recorded\":8,\"changed\":0}") != NULL);
    CHECK_INT(count_of("SELECT count(*) FROM notify.receipt"), 7);
    CHECK_INT(count_of("SELECT count(*) FROM notify.outbox WHERE payload::jsonb->>'status' IN "
                       "('delivered', 'dead')"),
              4);
    CHECK_INT(stat_of(fake, "double_sends"), 0);
    bx_buf_free(&reply);
    svc_stop(&s);
}
