/* bx_escalate_itest: bx-escalate of an integration test case, on a database, topics and group of
 * its own (bx_escalate_itest.h). */
#include "bx_escalate_itest.h"

#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char db_url[512];
static char tag[24]; /* makes student ids unique across runs (the output topics are shared) */

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
    itest_run_ok(argv, env, NULL);
}

void escalate_itest_student_id(int n, char out[40])
{
    snprintf(out, 40, "%s-%02d", tag, n);
}

static void setup_db(const escalate_itest_conf *conf, int students)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, sizeof(tag), "%c%d%03ld", conf->tag_letter, (int)getpid() % 100000,
             (long)(ts.tv_nsec / 1000000));
    snprintf(db_url, sizeof(db_url), "%s", itest_own_database(conf->name));
    char folder[64];
    snprintf(folder, sizeof(folder), "%s-registry", conf->name);
    char *dir = itest_tmpdir(folder);
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-03-02,2026-07-10,2026-spring\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_printf(&b, "school_id,name,township_code,stage,calendar_id\n%s\n",
                          conf->school) == BX_OK);
    itest_write_file(dir, "schools.csv", b.data);
    bx_buf_reset(&b);
    REQUIRE(bx_buf_printf(&b, "staff_id,name,role,school_id,township_code,county_code,phone\n%s\n",
                          conf->staff) == BX_OK);
    itest_write_file(dir, "staff.csv", b.data);
    bx_buf_reset(&b);
    REQUIRE(bx_buf_printf(&b, "class_id,school_id,grade,name,homeroom_staff_id\n%s\n",
                          conf->class_) == BX_OK);
    itest_write_file(dir, "classes.csv", b.data);
    bx_buf_reset(&b);
    REQUIRE(bx_buf_puts(&b, "student_id,school_id,class_id,name\n") == BX_OK);
    for (int i = 1; i <= students; i++) {
        char id[40];
        escalate_itest_student_id(i, id);
        REQUIRE(bx_buf_printf(&b, "%s,%s,学生%d\n", id, conf->place, i) == BX_OK);
    }
    itest_write_file(dir, "students.csv", b.data);
    bx_buf_free(&b);
    bxctl_ok((const char *[]){"import", "holidays", itest_holidays_csv(), NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
}

const char *escalate_itest_db_url(void)
{
    return db_url;
}

char *escalate_itest_rows(const char *sql, const char *param)
{
    const char *params[] = {param};
    return itest_sql_rows_params(db_url, sql, param ? 1 : 0, param ? params : NULL);
}

long long escalate_itest_count(const char *sql, const char *param)
{
    char *text = escalate_itest_rows(sql, param);
    long long n = strtoll(text, NULL, 10);
    free(text);
    return n;
}

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static void wait_for_leaders(const char *topic)
{
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    for (int part = 0; part < 2; part++) {
        int64_t lo = 0, hi = 0;
        int tries = 0;
        while (rd_kafka_query_watermark_offsets(bx_producer_handle(p), topic, part, &lo, &hi,
                                                1000) != RD_KAFKA_RESP_ERR_NO_ERROR &&
               tries++ < 100)
            usleep(100 * 1000);
    }
    bx_producer_free(p, 1000);
}

void escalate_itest_run(escalate_itest *s, const char *extra_setting)
{
    char risk_env[160], actions_env[160], group_env[160], pg_env[600];
    snprintf(risk_env, sizeof(risk_env), "BX_RISK_TOPIC=%s", s->risk);
    snprintf(actions_env, sizeof(actions_env), "BX_ACTIONS_TOPIC=%s", s->actions);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", s->group);
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", db_url);
    const char *env[] = {risk_env,
                         actions_env,
                         group_env,
                         pg_env,
                         "BX_TIMER_LEASE_MS=2000",
                         "BX_REGISTRY_REFRESH_MS=200",
                         extra_setting,
                         NULL};
    s->pid =
        itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), s->clock, env, &s->port);
}

void escalate_itest_start(escalate_itest *s, const escalate_itest_conf *conf, int students,
                          const char *local_time, const char *extra_setting)
{
    memset(s, 0, sizeof(*s));
    s->conf = conf;
    setup_db(conf, students);
    snprintf(s->risk, sizeof(s->risk), "bx.itest.%s.risk.%s", conf->name, tag);
    snprintf(s->actions, sizeof(s->actions), "bx.itest.%s.actions.%s", conf->name, tag);
    snprintf(s->group, sizeof(s->group), "bx-escalate-itest-%s-%s", conf->name, tag);
    const char *const topics[] = {s->risk,
                                  s->actions,
                                  BX_TOPIC_CASE_EVENTS,
                                  BX_TOPIC_NOTIFY_REQUESTS,
                                  BX_TOPIC_DLQ,
                                  BX_TOPIC_ANALYTICS_CASES};
    const int partitions[] = {2, 2, 3, 3, 3, 3};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 6, 15000, &err) == BX_OK);
    wait_for_leaders(s->risk);
    wait_for_leaders(s->actions);
    s->clock = itest_clock_file(local_time);
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", s->clock);
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    REQUIRE(bx_producer_new(brokers(), NULL, &s->producer, &err) == BX_OK);
    escalate_itest_run(s, extra_setting);
}

void escalate_itest_at(const char *local_time)
{
    bx_time_ms t = 0;
    char iso[40];
    snprintf(iso, sizeof(iso), "%.10sT%s:00+08:00", local_time, local_time + 11);
    REQUIRE(bx_time_parse(iso, &t) == BX_OK);
    REQUIRE(bx_clock_set(t) == BX_OK);
}

void escalate_itest_produce(escalate_itest *s, const char *topic, const char *key,
                            const char *value)
{
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(s->producer, topic, key, strlen(key), value, strlen(value),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
    s->produced++;
}

void escalate_itest_produce_owned(escalate_itest *s, const char *topic, const char *key,
                                  char *value)
{
    escalate_itest_produce(s, topic, key, value);
    free(value);
}

void escalate_itest_stop(escalate_itest *s)
{
    itest_stop(s->pid);
    s->pid = 0;
    bx_producer_free(s->producer, 5000);
    s->producer = NULL;
    free(s->clock);
    s->clock = NULL;
}

void escalate_itest_settle(escalate_itest *s)
{
    for (int i = 0; i < s->conf->settle_s * 20; i++) {
        long long in = itest_metric(s->port, "bx_escalate_inputs_total");
        long long dlq = itest_metric(s->port, "bx_escalate_dlq_total");
        char now[32];
        snprintf(now, sizeof(now), "%lld", (long long)bx_clock_now());
        if (in >= 0 && dlq >= 0 && s->base + in + dlq >= s->produced &&
            escalate_itest_count("SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND "
                                 "due_at <= to_timestamp($1::bigint / 1000.0)",
                                 now) == 0 &&
            escalate_itest_count("SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL", NULL) ==
                0)
            return;
        usleep(50 * 1000);
    }
    fprintf(stderr, "bx-escalate did not settle in %d s\n", s->conf->settle_s);
    REQUIRE(!"bx-escalate settled");
}
