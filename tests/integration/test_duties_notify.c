/* bx-escalate's calendar-duty reports through bx-notify, against PostgreSQL, Redis and Kafka on a
 * driven clock: bx-escalate runs its duties (the term-start check, then the 15-day report of
 * children out of school and the month's summary, each asked for its county's officer), the
 * requests it publishes on bx.notify.requests.v1 are handed as they are to a bx-notify of the
 * case's own (its own topic, group, database and file provider), and the county officer gets each
 * report once, the same day, as its own SMS with the counts; redelivery sends nothing again.
 * Without a student bx-notify finds a county's officers by params.county_code (or a township's),
 * and refuses a request that names no place, an unknown one or two that disagree, naming the
 * field. Each case has its own database, calendar id, topics and groups. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_schema_check.h"
#include "bx_test.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char db_url[512], tag[24], cal[40];
static char *clock_path;

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static int bxctl(const char *const *args, char **out)
{
    return itest_bxctl(db_url, clock_path, args, out);
}

static void bxctl_ok(const char *const *args)
{
    char *out = NULL;
    int rc = bxctl(args, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl %s: %s\n", args[0], out);
    REQUIRE(rc == 0);
    free(out);
}

static void exec_sql(const char *sql)
{
    itest_sql_exec(db_url, sql);
}

/* The rows of a query, one per line, columns separated by '|' (caller frees). */
static char *rows_of(const char *sql)
{
    return itest_sql_rows(db_url, sql);
}

/* Replaces this run's tag in text by "T" (in place). */
static char *untag(char *text)
{
    return itest_untag(text, tag);
}

/* The registry: county 990001 (测试县) with township 990001100 and county officers <T>K1
 * (13900000011) and <T>K2 (13900000012); county 990002 (邻县) with township 990002100 and officer
 * <T>K3 (13900000013); calendar cal-<T> (autumn term 2026-09-01..2027-01-22, national holidays);
 * primary school <T>P in 990001100 with class <T>C3 (grade 3): <T>-01 and <T>-04 absent every
 * day of the roll calls (not seen: suspected dropouts at the term-start check), <T>-02 present,
 * <T>-03 absent but on sick leave one day (seen). */
static void setup(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, sizeof(tag), "D%d%03ld", (int)getpid() % 100000, (long)(ts.tv_nsec / 1000000));
    snprintf(cal, sizeof(cal), "cal-%s", tag);
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database("dutiesnotify"));
    clock_path = itest_clock_file("2026-09-01 07:00");
    bx_error err = {0};
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", clock_path);
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    char *dir = itest_tmpdir("duties-notify-registry");
    char buf[2048];
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n990002,邻县\n");
    itest_write_file(dir, "townships.csv",
                     "code,county_code,name\n990001100,990001,测试镇\n990002100,990002,邻镇\n");
    snprintf(buf, sizeof(buf),
             "calendar_id,entry,first_day,last_day,name\n%s,term,2026-09-01,2027-01-22,"
             "2026-autumn\n",
             cal);
    itest_write_file(dir, "calendar.csv", buf);
    snprintf(buf, sizeof(buf),
             "school_id,name,township_code,stage,calendar_id\n%sP,报告测试小学,990001100,primary,"
             "%s\n",
             tag, cal);
    itest_write_file(dir, "schools.csv", buf);
    snprintf(buf, sizeof(buf),
             "staff_id,name,role,school_id,township_code,county_code,phone\n"
             "%sK1,吴科长,county_officer,,,990001,13900000011\n"
             "%sK2,郑科员,county_officer,,,990001,13900000012\n"
             "%sK3,冯科长,county_officer,,,990002,13900000013\n",
             tag, tag, tag);
    itest_write_file(dir, "staff.csv", buf);
    snprintf(buf, sizeof(buf),
             "class_id,school_id,grade,name,homeroom_staff_id\n%sC3,%sP,3,三年级1班,\n", tag, tag);
    itest_write_file(dir, "classes.csv", buf);
    snprintf(buf, sizeof(buf),
             "student_id,school_id,class_id,name,status,enrolled_on\n"
             "%s-01,%sP,%sC3,学生一,enrolled,\n%s-02,%sP,%sC3,学生二,enrolled,\n"
             "%s-03,%sP,%sC3,学生三,enrolled,\n%s-04,%sP,%sC3,学生四,enrolled,\n",
             tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag);
    itest_write_file(dir, "students.csv", buf);
    const char *holidays = itest_holidays_csv();
    bxctl_ok((const char *[]){"import", "holidays", holidays, NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
    /* the roll calls of the first ten school days, as bx-score records them */
    static const char *const days[] = {"2026-09-01", "2026-09-02", "2026-09-03", "2026-09-04",
                                       "2026-09-07", "2026-09-08", "2026-09-09", "2026-09-10",
                                       "2026-09-11", "2026-09-14", NULL};
    bx_buf b;
    bx_buf_init(&b, 0);
    for (int i = 0; days[i]; i++) {
        REQUIRE(bx_buf_printf(&b,
                              "INSERT INTO attendance.class_report VALUES ('%sC3', '%s', 0, "
                              "'%sP', 'k', '1,0,0,0,0,1');",
                              tag, days[i], tag) == BX_OK);
        static const char *const absent[] = {"-01", "-03", "-04"};
        for (int k = 0; k < 3; k++) {
            const char *v = k == 1 && strcmp(days[i], "2026-09-03") == 0 ? "ls" : "a";
            REQUIRE(bx_buf_printf(&b,
                                  "INSERT INTO attendance.fact VALUES ('%s%s', '%s|0', '%s', 0, "
                                  "'%sP', '%sC3', 'k', '%s');",
                                  tag, absent[k], days[i], days[i], tag, tag, v) == BX_OK);
        }
    }
    exec_sql(b.data);
    bx_buf_free(&b);
}

/* ---- bx-escalate with its duties ---- */

static char risk[96], actions[96], esc_group[96], settle_spec[300];

/* The default duties without the day's roll-call checks (the scenario suite tests those): this
 * county sends no roll calls, and only its reports are forwarded here. */
static void duties_without_rollcalls(char *path, size_t size)
{
    char src[1024], line[1024];
    snprintf(src, sizeof(src), "%s/deploy/policy/ladder-duties.policy",
             itest_env("BX_SOURCE_DIR", "."));
    char *dir = itest_tmpdir("duties");
    snprintf(path, size, "%s/%s-duties.policy", dir, tag);
    free(dir);
    FILE *in = fopen(src, "r"), *out = fopen(path, "w");
    REQUIRE(in != NULL && out != NULL);
    while (fgets(line, sizeof(line), in) != NULL)
        if (strncmp(line, "rollcall.", 9) != 0)
            fputs(line, out);
    fclose(in);
    REQUIRE(fclose(out) == 0);
}

static pid_t start_escalate(void)
{
    char risk_env[160], actions_env[160], group_env[160], pg_env[600], duties[200], duties_env[240];
    duties_without_rollcalls(duties, sizeof(duties));
    snprintf(duties_env, sizeof(duties_env), "BX_DUTIES_POLICY=%s", duties);
    snprintf(risk_env, sizeof(risk_env), "BX_RISK_TOPIC=%s", risk);
    snprintf(actions_env, sizeof(actions_env), "BX_ACTIONS_TOPIC=%s", actions);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", esc_group);
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", db_url);
    const char *env[] = {risk_env,   actions_env, group_env, pg_env, "BX_REGISTRY_REFRESH_MS=200",
                         duties_env, NULL};
    int port = 0;
    return itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), clock_path, env,
                               &port);
}

/* bx-escalate's group has read its topics, no timer is due, its outbox is relayed, and bx-notify
 * (same database) has nothing due or unrelayed (notify.settle_pending). */
static void settle(void)
{
    char *out = NULL;
    int rc =
        bxctl((const char *[]){"settle", "--group", settle_spec, "--timeout", "60", NULL}, &out);
    if (rc != 0)
        fprintf(stderr, "settle: %s\n", out);
    REQUIRE(rc == 0);
    free(out);
}

static void at(const char *local_time)
{
    settle();
    bxctl_ok((const char *[]){"clock", "set", local_time, NULL});
    settle();
}

/* ---- bx-notify of the case ---- */

typedef struct notifier {
    char requests[96], status[96], group[96], rate_key[96], sms_file[512];
    pid_t pid;
    int port;
    bx_producer *producer;
    long long produced;
} notifier;

static void notify_start(notifier *nt)
{
    memset(nt, 0, sizeof(*nt));
    /* topic names are lower case (notify.outbox checks them) */
    snprintf(nt->requests, sizeof(nt->requests), "bx.itest.dutiesnotify.requests.%s", tag + 1);
    snprintf(nt->status, sizeof(nt->status), "bx.itest.dutiesnotify.status.%s", tag + 1);
    snprintf(nt->group, sizeof(nt->group), "bx-notify-duties-%s", tag);
    snprintf(nt->rate_key, sizeof(nt->rate_key), "bx:itest:dutiesnotify:rate:%s", tag);
    char *dir = itest_tmpdir("duties-notify-sms");
    snprintf(nt->sms_file, sizeof(nt->sms_file), "%s/sms.jsonl", dir);
    free(dir);
    const char *const topics[] = {nt->requests, nt->status, BX_TOPIC_DLQ};
    const int partitions[] = {1, 1, 3};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 3, 15000, &err) == BX_OK);
    REQUIRE(bx_producer_new(brokers(), NULL, &nt->producer, &err) == BX_OK);
    static char env[7][640];
    snprintf(env[0], sizeof(env[0]), "BX_NOTIFY_REQUESTS_TOPIC=%s", nt->requests);
    snprintf(env[1], sizeof(env[1]), "BX_NOTIFY_STATUS_TOPIC=%s", nt->status);
    snprintf(env[2], sizeof(env[2]), "BX_CONSUMER_GROUP=%s", nt->group);
    snprintf(env[3], sizeof(env[3]), "BX_PG_URL=%s", db_url);
    snprintf(env[4], sizeof(env[4]), "BX_NOTIFY_RATE_KEY=%s", nt->rate_key);
    snprintf(env[5], sizeof(env[5]), "BX_NOTIFY_PROVIDER_FILE=%s", nt->sms_file);
    snprintf(env[6], sizeof(env[6]), "BX_NOTIFY_RECEIPT_LISTEN=");
    const char *all[] = {env[0],
                         env[1],
                         env[2],
                         env[3],
                         env[4],
                         env[5],
                         env[6],
                         "BX_NOTIFY_PROVIDER=file",
                         "BX_NOTIFY_DIGEST_TIME=16:30",
                         NULL};
    nt->pid =
        itest_service_start(itest_env("BX_NOTIFY_BIN", BX_NOTIFY_BIN), clock_path, all, &nt->port);
}

static void notify_stop(notifier *nt)
{
    itest_stop(nt->pid);
    bx_producer_free(nt->producer, 5000);
}

static void produce(notifier *nt, const char *key, const char *value)
{
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(nt->producer, nt->requests, key, strlen(key), value, strlen(value),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    nt->produced++;
}

/* Every request produced was taken (fresh, redelivered or dead-lettered), then the pipeline
 * settled: what bx-notify queued is sent and its outbox relayed. */
static void notify_settle(notifier *nt)
{
    for (int i = 0; i < 600; i++) {
        long long taken = itest_metric(nt->port, "bx_notify_requests_total"),
                  again = itest_metric(nt->port, "bx_notify_requests_redelivered_total"),
                  dlq = itest_metric(nt->port, "bx_notify_dlq_total");
        if (taken >= 0 && again >= 0 && dlq >= 0 && taken + again + dlq >= nt->produced)
            break;
        REQUIRE(i < 599 && "bx-notify took every request in 60 s");
        usleep(100 * 1000);
    }
    if (settle_spec[0] != '\0') {
        settle(); /* bx-escalate's and bx-notify's */
        return;
    }
    /* without bx-escalate: bx-notify's own pending work, nothing on two checks in a row */
    int quiet = 0;
    for (int i = 0; i < 600 && quiet < 2; i++) {
        char sql[200];
        snprintf(sql, sizeof(sql),
                 "SELECT coalesce(sum(pending), 0) FROM notify.settle_pending("
                 "to_timestamp(%lld / 1000.0))",
                 (long long)bx_clock_now());
        char *pending = rows_of(sql);
        quiet = strcmp(pending, "0\n") == 0 ? quiet + 1 : 0;
        free(pending);
        usleep(100 * 1000);
    }
    REQUIRE(quiet == 2 && "bx-notify settled in 60 s");
}

/* Hands every request bx-escalate published for this case's calendar since the mark to bx-notify,
 * byte for byte, keyed as bx-escalate keyed it (the staff id, else the county). Returns how many;
 * they are appended to seen when it is not NULL. */
/* Hands bx-notify the requests of this test's calendar (want of them, or what came within the
 * timeout); with only_template, only those of that template. Returns how many were handed on. */
static int forward_only(notifier *nt, itest_mark *requests, int want, int timeout_ms,
                        const char *only_template, bx_buf *seen)
{
    bx_buf got;
    bx_buf_init(&got, 0);
    int n = itest_topic_collect(requests, cal, want, timeout_ms, &got);
    int handed = 0;
    for (char *l = got.data; n > 0 && l && *l;) {
        char *nl = strchr(l, '\n');
        *nl = '\0';
        if (only_template != NULL) {
            char needle[96];
            snprintf(needle, sizeof(needle), "\"template\":\"%s\"", only_template);
            if (strstr(l, needle) == NULL) {
                l = nl + 1;
                continue;
            }
        }
        handed++;
        cJSON *o = cJSON_Parse(l);
        REQUIRE(o != NULL);
        const cJSON *staff = cJSON_GetObjectItemCaseSensitive(o, "recipient_staff_id");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(o, "params");
        const cJSON *county = cJSON_GetObjectItemCaseSensitive(params, "county_code");
        const char *key = cJSON_IsString(staff)    ? staff->valuestring
                          : cJSON_IsString(county) ? county->valuestring
                                                   : "none";
        produce(nt, key, l);
        if (seen != NULL) {
            REQUIRE(bx_buf_puts(seen, l) == BX_OK);
            REQUIRE(bx_buf_puts(seen, "\n") == BX_OK);
        }
        cJSON_Delete(o);
        l = nl + 1;
    }
    bx_buf_free(&got);
    return only_template != NULL ? handed : n;
}

static int forward(notifier *nt, itest_mark *requests, int want, int timeout_ms, bx_buf *seen)
{
    return forward_only(nt, requests, want, timeout_ms, NULL, seen);
}

static long long file_lines(const notifier *nt, const char *needle)
{
    FILE *f = fopen(nt->sms_file, "r");
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

static char *file_text(const notifier *nt)
{
    FILE *f = fopen(nt->sms_file, "r");
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "") == BX_OK);
    char line[4096];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        REQUIRE(bx_buf_puts(&b, line) == BX_OK);
    if (f != NULL)
        fclose(f);
    return bx_buf_steal(&b);
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

BX_TEST(county_officer_gets_the_15_day_report_once_the_same_day)
{
    setup();
    snprintf(risk, sizeof(risk), "bx.itest.dutiesnotify.risk.%s", tag);
    snprintf(actions, sizeof(actions), "bx.itest.dutiesnotify.actions.%s", tag);
    snprintf(esc_group, sizeof(esc_group), "bx-escalate-dutiesnotify-%s", tag);
    snprintf(settle_spec, sizeof(settle_spec), "%s:%s,%s", esc_group, risk, actions);
    const char *const topics[] = {risk, actions};
    const int partitions[] = {1, 1};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 2, 15000, &err) == BX_OK);
    itest_mark *requests = itest_topic_mark(BX_TOPIC_NOTIFY_REQUESTS);
    pid_t escalate = start_escalate();
    notifier nt;
    notify_start(&nt);
    itest_mark *status = itest_topic_mark(nt.status);
    settle();

    /* the term-start check (10th school day, 09-14 17:00): <T>-01 and <T>-04 are suspected */
    at("2026-09-14 17:30");
    char *cases = untag(rows_of("SELECT student_id FROM cases.case ORDER BY 1"));
    CHECK_STR(cases, "T-01\nT-04\n");
    free(cases);
    CHECK_INT(forward(&nt, requests, 1, 2000, NULL), 0); /* no report yet */

    /* the 15th school day is the make-up Sunday 09-20: the report at 17:00 */
    at("2026-09-20 16:59");
    CHECK_INT(forward(&nt, requests, 1, 2000, NULL), 0);
    at("2026-09-20 17:30");
    bx_buf asked;
    bx_buf_init(&asked, 0);
    CHECK_INT(forward(&nt, requests, 1, 15000, &asked), 1);
    REQUIRE(asked.data != NULL);
    check_schema(BX_TOPIC_NOTIFY_REQUESTS, asked.data);
    char *published = bx_buf_steal(&asked);
    published[strcspn(published, "\n")] = '\0';
    char *request = untag(strdup(published));
    REQUIRE(request != NULL);
    CHECK_CONTAINS(request, "\"student_id\":null,\"template\":\"out_of_school_report\","
                            "\"recipient_role\":\"county_officer\",\"recipient_staff_id\":null");
    CHECK_CONTAINS(request, "\"channel\":\"task\"");
    notify_settle(&nt);

    /* both officers of the county (bx-escalate names the role and the county, not a person)
     * have it by SMS at once, not in tomorrow's digest: the counts of the request, the county's
     * name, the term and the days in Chinese; the other county's officer has nothing */
    CHECK_INT(file_lines(&nt, NULL), 2);
    CHECK_INT(file_lines(&nt, "\"phone\":\"139****0011\""), 1);
    CHECK_INT(file_lines(&nt, "\"phone\":\"139****0012\""), 1);
    CHECK_INT(file_lines(&nt, "\"phone\":\"139****0013\""), 0);
    CHECK_INT(file_lines(&nt, "13900000011"), 0); /* masked in the sink too */
    CHECK_INT(file_lines(&nt, "\"at\":\"2026-09-20T17:30"), 2);
    CHECK_INT(file_lines(&nt, "\"template\":\"out_of_school_report\""), 2);
    CHECK_INT(file_lines(&nt, "\"sign_name\":\"测试县\""), 2);
    char *sms = file_text(&nt);
    CHECK_CONTAINS(sms, "【15日报告】测试县2026年秋季学期开学以来（9月1日至9月20日）学生失学辍学"
                        "情况：疑似失学辍学2人，已列入辍学生花名册0人；其间新增跟进2人，复学0人。");
    free(sms);
    char *rows = untag(rows_of("SELECT channel, audience, recipient_masked, staff_id, state, "
                               "template FROM notify.notification ORDER BY id"));
    CHECK_STR(rows, "sms|staff|TK1|TK1|sent|out_of_school_report\n"
                    "sms|staff|TK2|TK2|sent|out_of_school_report\n");
    free(rows);

    /* redelivered (bx-escalate's message again): nothing is sent twice */
    char key[40];
    snprintf(key, sizeof(key), "%sK1", tag);
    produce(&nt, key, published);
    notify_settle(&nt);
    CHECK_INT(itest_metric(nt.port, "bx_notify_requests_redelivered_total"), 1);
    CHECK_INT(itest_metric(nt.port, "bx_notify_requests_total"), 1);
    CHECK_INT(file_lines(&nt, NULL), 2);

    /* a restart of bx-escalate asks for nothing again, and the next day's digest time passes
     * without the report in a to-do list */
    itest_stop(escalate);
    escalate = start_escalate();
    at("2026-09-21 16:45");
    CHECK_INT(forward(&nt, requests, 1, 3000, NULL), 0);
    notify_settle(&nt);
    CHECK_INT(file_lines(&nt, NULL), 2);
    char *digests = rows_of("SELECT count(*) FROM notify.notification WHERE channel <> 'sms'");
    CHECK_STR(digests, "0\n");
    free(digests);

    /* the month's summary on its last school day, 09-30 */
    at("2026-09-30 17:30");
    bx_buf_init(&asked, 0);
    /* the same evening the reports upward (四个一) fall due: the school's month and the county's
     * quarter, asked of their offices as tasks; only the summary goes on to bx-notify here */
    CHECK_INT(forward_only(&nt, requests, 3, 15000, "monthly_summary", &asked), 1);
    CHECK_CONTAINS(asked.data, "\"template\":\"monthly_summary\"");
    bx_buf_free(&asked);
    notify_settle(&nt);
    CHECK_INT(file_lines(&nt, NULL), 4);
    CHECK_INT(file_lines(&nt, "【月报】测试县2026年秋季学期辍学情况汇总（9月1日至9月30日）：在册"
                              "辍学0人，疑似失学辍学2人；本月新增跟进2人，复学0人；点名上报率"),
              2);
    /* with the month's roll-call reporting rate: the one class's roll calls on 10 of the 21
     * school days over (09-30 not yet reported), under 90% */
    CHECK_INT(file_lines(&nt,
                         "复学0人；点名上报率47.62%，1个班不足九成（缺勤数据不可信）。名单请查看"
                         "控辍保学台账。"),
              2);
    CHECK_INT(file_lines(&nt, "\"at\":\"2026-09-30T17:30"), 2);

    /* status messages: queued and sent for each report and officer, to the staff id */
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(status, "\"status\":\"sent\"", 4, 20000, &got), 4);
    if (got.data != NULL)
        check_schema(BX_TOPIC_NOTIFY_STATUS, got.data);
    bx_buf_free(&got);
    free(request);
    free(published);
    itest_mark_free(status);
    itest_mark_free(requests);
    notify_stop(&nt);
    itest_stop(escalate);
    free(clock_path);
}

/* A report request as bx-escalate builds it, without a student; recipient_staff_id null (the
 * officers found by place) and the place params given by `place` (a JSON fragment, may be ""). */
static void ask_report(notifier *nt, const char *suffix, const char *role, const char *place)
{
    char v[1500];
    snprintf(v, sizeof(v),
             "{\"schema\":\"bx.notify.requests.v1\",\"request_id\":\"duty:out_of_school_report:%s:"
             "2026-autumn:%s\",\"case_id\":null,\"student_id\":null,\"template\":"
             "\"out_of_school_report\",\"recipient_role\":\"%s\",\"recipient_staff_id\":null,"
             "\"channel\":\"task\",\"params\":{%s%s\"term\":\"2026-autumn\",\"first_day\":"
             "\"2026-09-01\",\"last_day\":\"2026-09-21\",\"suspected\":7,\"dropouts\":1,"
             "\"opened\":9,\"returned\":2},\"not_before\":null,\"requested_at\":"
             "\"2026-09-21T17:00:00+08:00\"}",
             cal, suffix, role, place, place[0] ? "," : "");
    produce(nt, suffix, v);
}

BX_TEST(reports_without_a_student_reach_the_county_by_place_or_are_refused_naming_the_field)
{
    setup();
    settle_spec[0] = '\0'; /* no bx-escalate in this case */
    bxctl_ok((const char *[]){"clock", "set", "2026-09-21 17:05", NULL});
    notifier nt;
    notify_start(&nt);
    itest_mark *dlq = itest_topic_mark(BX_TOPIC_DLQ);
    /* by county: both officers of 990001, not the neighbour's */
    ask_report(&nt, "c1", "county_officer", "\"county_code\":\"990001\"");
    /* by township: its county's officers */
    ask_report(&nt, "t1", "county_officer", "\"township_code\":\"990001100\"");
    /* by school, with its county named too and agreeing */
    char place[200];
    snprintf(place, sizeof(place), "\"school_id\":\"%sP\",\"county_code\":\"990001\"", tag);
    ask_report(&nt, "s1", "county_officer", place);
    /* refused: no place, an unknown county, a township of another county, a homeroom teacher or
     * a principal without a student, a school or a staff id */
    ask_report(&nt, "bad1", "county_officer", "");
    ask_report(&nt, "bad2", "county_officer", "\"county_code\":\"999999\"");
    ask_report(&nt, "bad3", "county_officer",
               "\"township_code\":\"990001100\",\"county_code\":\"990002\"");
    ask_report(&nt, "bad4", "homeroom_teacher", "\"county_code\":\"990001\"");
    ask_report(&nt, "bad5", "principal", "\"township_code\":\"990001100\"");
    notify_settle(&nt);

    CHECK_INT(itest_metric(nt.port, "bx_notify_requests_total"), 3);
    CHECK_INT(itest_metric(nt.port, "bx_notify_dlq_total"), 5);
    char *rows = untag(rows_of("SELECT request_id, recipient_masked, channel, state, sign_name "
                               "FROM notify.notification ORDER BY request_id, recipient_masked"));
    CHECK_STR(rows, "duty:out_of_school_report:cal-T:2026-autumn:c1|TK1|sms|sent|测试县\n"
                    "duty:out_of_school_report:cal-T:2026-autumn:c1|TK2|sms|sent|测试县\n"
                    "duty:out_of_school_report:cal-T:2026-autumn:s1|TK1|sms|sent|报告测试小学\n"
                    "duty:out_of_school_report:cal-T:2026-autumn:s1|TK2|sms|sent|报告测试小学\n"
                    "duty:out_of_school_report:cal-T:2026-autumn:t1|TK1|sms|sent|测试县\n"
                    "duty:out_of_school_report:cal-T:2026-autumn:t1|TK2|sms|sent|测试县\n");
    free(rows);
    CHECK_INT(file_lines(&nt, NULL), 6);
    CHECK_INT(file_lines(&nt, "139****0011"), 3);
    CHECK_INT(file_lines(&nt, "139****0012"), 3);
    CHECK_INT(file_lines(&nt, "139****0013"), 0); /* the neighbouring county's officer */
    CHECK_INT(file_lines(&nt, "【15日报告】测试县2026年秋季学期开学以来（9月1日至9月21日）学生失"
                              "学辍学情况：疑似失学辍学7人，已列入辍学生花名册1人；其间新增跟进9"
                              "人，复学2人。"),
              6);

    static const struct {
        const char *suffix, *reason, *field, *error;
    } want[] = {
        {"bad1", "missing_field", "params.county_code",
         "message.params.county_code: required to find the county_officer when there is no "
         "recipient_staff_id and no student"},
        {"bad2", "invalid_value", "params.county_code", "no county \\\"999999\\\" in the registry"},
        {"bad3", "invalid_value", "params.county_code",
         "\\\"990002\\\" is not the county of township 990001100"},
        {"bad4", "missing_field", "student_id",
         "message.student_id: required to find the "
         "homeroom_teacher"},
        {"bad5", "missing_field", "params.school_id", "message.params.school_id: required"},
    };
    char needle[160];
    snprintf(needle, sizeof(needle), "\"endpoint\":\"%s\"", nt.requests);
    bx_buf got;
    bx_buf_init(&got, 0);
    CHECK_INT(itest_topic_collect(dlq, needle, 5, 20000, &got), 5);
    REQUIRE(got.data != NULL);
    check_schema(BX_TOPIC_DLQ, got.data);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char id[120], reason[80], field[120];
        snprintf(id, sizeof(id), "2026-autumn:%s\"", want[i].suffix);
        snprintf(reason, sizeof(reason), "\"reason\":\"%s\"", want[i].reason);
        snprintf(field, sizeof(field), "\"field\":\"%s\"", want[i].field);
        bool found = false;
        for (char *l = got.data; l && *l && !found;) {
            char *nl = strchr(l, '\n');
            size_t n = nl ? (size_t)(nl - l) : strlen(l);
            char *one = strndup(l, n);
            found = strstr(one, id) && strstr(one, reason) && strstr(one, field) &&
                    strstr(one, want[i].error) && strstr(one, "\"source\":\"bx-notify\"");
            free(one);
            l = nl ? nl + 1 : NULL;
        }
        if (!found)
            BX_FAIL_AT("no dead letter for %s with %s, %s and %s", want[i].suffix, reason, field,
                       want[i].error);
    }
    bx_buf_free(&got);
    itest_mark_free(dlq);
    notify_stop(&nt);
    free(clock_path);
}
