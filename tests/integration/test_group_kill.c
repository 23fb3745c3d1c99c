/* Killed consumers do not stall the pipeline (issue 14, defect 9): a simulated county's school day
 * flows through bx-ingest for two minutes, its roll calls paced evenly, into two replicas each of
 * bx-score, bx-escalate and bx-notify (the file provider). Every 10 s one replica of each of the
 * three is killed with SIGKILL and started again a second later, as a supervisor would. Whatever
 * was on a group's topics when its replica was killed is consumed within 20 s (with dynamic
 * members and a 45 s session the group waited for the dead member for about 45 s). At the end
 * nothing is lost: bx-ingest accepted every record of the day's plan, and bx-score stored every
 * one it must (each class report and each absence, leave and late arrival; the presences a class
 * report implies are not stored rows, by design); every SMS bx-escalate asked for reached
 * bx-notify and was sent, and none twice. Its own database, Redis databases 9 (bx-score) and 10
 * (bx-notify's rate), consumer groups that start at the shared topics' ends; counts are of the
 * county's own ids. Labelled slow. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_map.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_settle.h"
#include "bx_test.h"
#include "bx_itest_sim.h"
#include "sim.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define REDIS_DB_SCORE  "9"
#define REDIS_DB_NOTIFY "10"
#define DAY             "2026-10-08" /* a Thursday after National Day, as bench/e2e's */
#define SEED            42
#define TOWNSHIPS       4
#define SCHOOLS         40
#define STUDENTS        30000
#define FLOW_MS         120000 /* the day's roll calls are posted over this long */
#define KILL_EVERY      10000
#define ROUNDS          (FLOW_MS / KILL_EVERY) /* kills at 10, 20, ... 120 s */
#define RESTART_MS      1000  /* the supervisor's delay before starting a killed replica again */
#define DRAIN_MAX_MS    20000 /* the bound a kill's backlog drains within */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

/* ---- the consumer groups: what is on their topics and what they have committed ---- */

enum { SCORE, ESCALATE, NOTIFY, SERVICES };
static const char *const service_names[SERVICES] = {"bx-score", "bx-escalate", "bx-notify"};

typedef struct service {
    const char *bin;
    char group[96];
    char spec[200]; /* GROUP:TOPIC[,TOPIC] for bx-sim group-at-end and bxctl settle */
    const char *env[16];
    char env_group[128], env_replica[2][32];
    pid_t pid[2];
    rd_kafka_t *rk; /* a handle with the group's id that never joins it */
    rd_kafka_topic_partition_list_t *parts;
} service;

/* The group's handle and every partition of its topics. */
static void watch(service *sv, const char *const *topics, int ntopics)
{
    bx_error err = {0};
    REQUIRE(bx_settle_group_handle(brokers(), sv->group, &sv->rk, &err) == BX_OK);
    sv->parts = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < ntopics; i++)
        REQUIRE(bx_settle_partitions_add(sv->rk, topics[i], 10000, sv->parts, &err) == BX_OK);
    REQUIRE(sv->parts->cnt <= 64);
}

/* The end offset of each partition (in parts' order). */
static void ends(service *sv, int64_t *hi)
{
    for (int i = 0; i < sv->parts->cnt; i++) {
        int64_t lo = 0;
        rd_kafka_topic_partition_t *p = &sv->parts->elems[i];
        if (rd_kafka_query_watermark_offsets(sv->rk, p->topic, p->partition, &lo, &hi[i], 5000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            hi[i] = INT64_MAX; /* unknown: never counted as drained */
    }
}

/* True when the group has committed at least mark on every partition. */
static bool reached(service *sv, const int64_t *mark)
{
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(sv->parts);
    bool ok = rd_kafka_committed(sv->rk, c, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; ok && i < c->cnt; i++)
        ok = c->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && c->elems[i].offset >= mark[i];
    rd_kafka_topic_partition_list_destroy(c);
    return ok;
}

static void start_replica(service *sv, int r, const char *clock)
{
    const char *env[20];
    size_t n = 0;
    for (; sv->env[n] && n < 16; n++)
        env[n] = sv->env[n];
    env[n++] = sv->env_group;
    env[n++] = sv->env_replica[r];
    env[n] = NULL;
    sv->pid[r] = itest_service_start(sv->bin, clock, env, &(int){0});
}

/* ---- the day's roll calls, paced through bx-ingest ---- */

typedef struct flow {
    const sim_county *c;
    const sim_day_plan *p;
    char (*tokens)[160]; /* each school's credential */
    char api[64];
    atomic_llong accepted, rejected, posted;
    atomic_int failed; /* roll calls not answered 200 */
    atomic_bool done;
} flow;

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

/* Roll call j at start + j * FLOW_MS / n, one keep-alive connection. */
static void *flow_main(void *arg)
{
    flow *f = arg;
    CURL *h = curl_easy_init();
    REQUIRE(h != NULL);
    bx_buf body, reply;
    bx_buf_init(&body, 0);
    bx_buf_init(&reply, 1 << 20);
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/rollcall", f->api);
    long long start = now_ms();
    for (int j = 0; j < f->p->nrollcalls; j++) {
        long long wait = start + (long long)j * FLOW_MS / f->p->nrollcalls - now_ms();
        if (wait > 0)
            usleep((useconds_t)wait * 1000);
        const sim_rollcall *rc = &f->p->rollcalls[j];
        bx_buf_reset(&body);
        bx_buf_reset(&reply);
        REQUIRE(sim_rollcall_json(f->c, rc, &body) == BX_OK);
        char auth[200];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
                 f->tokens[f->c->classes[rc->klass].school]);
        struct curl_slist *hdrs = curl_slist_append(NULL, auth);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body.len);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
        long status = 0;
        CURLcode rc_curl = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hdrs);
        cJSON *r = NULL;
        if (rc_curl != CURLE_OK || status != 200 ||
            bx_json_parse(reply.data ? reply.data : "", reply.len, &r, NULL) != BX_OK) {
            fprintf(stderr, "roll call %d: HTTP %ld %s: %.300s\n", j, status,
                    curl_easy_strerror(rc_curl), reply.data ? reply.data : "");
            atomic_fetch_add(&f->failed, 1);
            continue;
        }
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(r, "accepted");
        const cJSON *rej = cJSON_GetObjectItemCaseSensitive(r, "rejected");
        atomic_fetch_add(&f->accepted, cJSON_IsNumber(acc) ? (long long)acc->valuedouble : 0);
        atomic_fetch_add(&f->rejected, cJSON_IsNumber(rej) ? (long long)rej->valuedouble : 0);
        atomic_fetch_add(&f->posted, 1);
        cJSON_Delete(r);
    }
    bx_buf_free(&body);
    bx_buf_free(&reply);
    curl_easy_cleanup(h);
    atomic_store(&f->done, true);
    return NULL;
}

/* Each school's credential (bxctl key create), by school index. */
static char (*make_keys(const sim_county *c))[160]
{
    char(*tokens)[160] = calloc((size_t)c->nschools, sizeof(*tokens));
    REQUIRE(tokens != NULL);
    for (int i = 0; i < c->nschools; i++) {
        const char *kc[] = {
            itest_env("BXCTL_BIN", BXCTL_BIN), "key", "create", c->schools[i].id, "itest", NULL};
        bx_buf out;
        bx_buf_init(&out, 0);
        itest_run_ok(kc, NULL, &out);
        const char *tok = strstr(out.data, "bxk_");
        REQUIRE(tok != NULL);
        snprintf(tokens[i], sizeof(tokens[i]), "%.*s", (int)strcspn(tok, "\r\n "), tok);
        bx_buf_free(&out);
    }
    return tokens;
}

BX_TEST(killed_replicas_do_not_stall_the_group)
{
    const char *url = itest_own_database("gkill");
    setenv("BX_PG_URL", url, 1); /* bx-sim, bxctl and every service work there */
    char *clock = itest_clock_file(DAY " 09:00");
    char clock_env[600];
    snprintf(clock_env, sizeof(clock_env), "file:%s", clock);
    setenv("BX_CLOCK", clock_env, 1);
    bx_error err = {0};
    REQUIRE(bx_clock_init(clock_env, &err) == BX_OK);
    /* the day's clock runs as a real one from 09:00 (leases, retries and receipt checks come due
     * as they would) */
    bx_time_ms day_start = bx_clock_now();
    itest_redis_flush(REDIS_DB_SCORE);
    itest_redis_flush(REDIS_DB_NOTIFY);

    /* the county: generated, imported, planned for the day */
    long long t_setup = now_ms();
    char *dir = itest_tmpdir("gkill");
    char seed[16], townships[8], schools[8], students[16];
    snprintf(seed, sizeof(seed), "%d", SEED);
    snprintf(townships, sizeof(townships), "%d", TOWNSHIPS);
    snprintf(schools, sizeof(schools), "%d", SCHOOLS);
    snprintf(students, sizeof(students), "%d", STUDENTS);
    const char *options[] = {"--seed", seed,         "--townships", townships, "--schools",
                             schools,  "--students", students,      NULL};
    itest_sim_generate(dir, itest_id_prefix('g'), options, true, NULL);
    const char *bxsim = itest_env("BX_SIM_BIN", BX_SIM_BIN);
    sim_county *c = NULL;
    sim_world *w = NULL;
    sim_day_plan plan;
    bx_date day;
    REQUIRE(bx_date_parse(DAY, &day) == BX_OK);
    sim_size size = {TOWNSHIPS, SCHOOLS, STUDENTS, itest_id_prefix('g')};
    REQUIRE(sim_county_new(SEED, size, itest_holidays_csv(), &c, &err) == BX_OK);
    REQUIRE(sim_world_new(c, &w) == BX_OK);
    REQUIRE(sim_plan_day(c, w, day, &plan) == BX_OK);
    /* What bx-ingest must accept (every student of each class, and the class report) and what
     * bx-score must store of it: the class report and every exception (absent, on leave, late);
     * the presences a roll call implies are not stored, by design (bx-score's store.h). */
    long long absent = 0, want_accepted = 0, want_stored = 0;
    for (int j = 0; j < plan.nrollcalls; j++) {
        const sim_rollcall *rc = &plan.rollcalls[j];
        absent += rc->nabsent;
        want_accepted += c->classes[rc->klass].nstudents + 1;
        want_stored += rc->nabsent + rc->nleave + rc->nlate + 1;
    }
    flow f = {.c = c, .p = &plan, .tokens = make_keys(c)};

    /* the services: their own consumer groups, at the shared topics' ends */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    service sv[SERVICES] = {0};
    static const char *const score_topics[] = {BX_TOPIC_ATTENDANCE};
    static const char *const esc_topics[] = {BX_TOPIC_RISK, BX_TOPIC_ACTIONS};
    static const char *const notify_topics[] = {BX_TOPIC_NOTIFY_REQUESTS};
    const char *const *topics[SERVICES] = {score_topics, esc_topics, notify_topics};
    const int ntopics[SERVICES] = {1, 2, 1};
    char env_url[600], env_score_redis[300], env_notify_redis[300], env_sms[700], env_rate[96];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", url);
    itest_redis_setting(env_score_redis, sizeof(env_score_redis), REDIS_DB_SCORE);
    itest_redis_setting(env_notify_redis, sizeof(env_notify_redis), REDIS_DB_NOTIFY);
    char sms_file[600];
    snprintf(sms_file, sizeof(sms_file), "%s/sms.jsonl", dir);
    snprintf(env_sms, sizeof(env_sms), "BX_NOTIFY_PROVIDER_FILE=%s", sms_file);
    snprintf(env_rate, sizeof(env_rate), "BX_NOTIFY_RATE_KEY=bx:itest:%s:notify:rate",
             itest_id_prefix('g'));
    const char *const common_env[] = {env_url, "BX_PSEUDONYM_KEY=itest-gkill",
                                      "BX_REGISTRY_REFRESH_MS=500", "BX_LOG_LEVEL=error"};
    const char *bins[SERVICES] = {itest_env("BX_SCORE_BIN", BX_SCORE_BIN),
                                  itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN),
                                  itest_env("BX_NOTIFY_BIN", BX_NOTIFY_BIN)};
    for (int s = 0; s < SERVICES; s++) {
        sv[s].bin = bins[s];
        snprintf(sv[s].group, sizeof(sv[s].group), "%s-itest-gkill-%ld%06ld", service_names[s],
                 (long)tv.tv_sec, (long)tv.tv_usec);
        snprintf(sv[s].env_group, sizeof(sv[s].env_group), "BX_CONSUMER_GROUP=%s", sv[s].group);
        for (int r = 0; r < 2; r++)
            snprintf(sv[s].env_replica[r], sizeof(sv[s].env_replica[r]), "BX_KAFKA_REPLICA=%d",
                     r + 1);
        int n = snprintf(sv[s].spec, sizeof(sv[s].spec), "%s:", sv[s].group);
        for (int t = 0; t < ntopics[s]; t++)
            n += snprintf(sv[s].spec + n, sizeof(sv[s].spec) - (size_t)n, "%s%s", t ? "," : "",
                          topics[s][t]);
        char topic_list[160];
        snprintf(topic_list, sizeof(topic_list), "%s", strchr(sv[s].spec, ':') + 1);
        const char *at_end[] = {bxsim,      "group-at-end", "--group", sv[s].group,
                                "--topics", topic_list,     NULL};
        itest_run_ok(at_end, NULL, NULL);
        watch(&sv[s], topics[s], ntopics[s]);
        size_t e = 0;
        for (size_t i = 0; i < sizeof(common_env) / sizeof(common_env[0]); i++)
            sv[s].env[e++] = common_env[i];
        if (s == SCORE) {
            sv[s].env[e++] = env_score_redis;
        } else if (s == NOTIFY) {
            sv[s].env[e++] = env_notify_redis;
            sv[s].env[e++] = "BX_NOTIFY_PROVIDER=file";
            sv[s].env[e++] = env_sms;
            sv[s].env[e++] = env_rate;
            sv[s].env[e++] = "BX_NOTIFY_RECEIPT_LISTEN="; /* the file provider sends none */
        }
        sv[s].env[e] = NULL;
        for (int r = 0; r < 2; r++)
            start_replica(&sv[s], r, clock);
    }
    int port = 0;
    const char *ingest_env[] = {env_url, "BX_REGISTRY_REFRESH_MS=500", NULL};
    pid_t ingest = itest_ingest_start(clock, ingest_env, &port);
    snprintf(f.api, sizeof(f.api), "http://127.0.0.1:%d", port);
    fprintf(stderr,
            "%d students in %d classes, %d roll calls (%lld absent) over %d s; set up in %lld "
            "ms\n",
            c->nstudents, c->nclasses, plan.nrollcalls, absent, FLOW_MS / 1000, now_ms() - t_setup);

    pthread_t poster;
    REQUIRE(pthread_create(&poster, NULL, flow_main, &f) == 0);

    /* Round k, at (k + 1) * 10 s: the end offsets of each group's topics, then replica k % 2 of
     * every service killed; a second later started again. Each group's drain time is how long
     * until it committed those ends. */
    static int64_t mark[ROUNDS][SERVICES][64];
    long long kill_at[ROUNDS], drained[ROUNDS][SERVICES], restart_at = 0;
    int rounds = 0, down = -1;
    long long start = now_ms();
    for (;;) {
        long long t = now_ms();
        REQUIRE(bx_clock_set(day_start + (t - start)) == BX_OK);
        if (rounds < ROUNDS && t - start >= (long long)(rounds + 1) * KILL_EVERY && down < 0) {
            down = rounds % 2;
            for (int s = 0; s < SERVICES; s++)
                ends(&sv[s], mark[rounds][s]);
            for (int s = 0; s < SERVICES; s++) {
                kill(sv[s].pid[down], SIGKILL);
                itest_stop(sv[s].pid[down]); /* reaps it */
                drained[rounds][s] = -1;
            }
            kill_at[rounds] = now_ms();
            restart_at = kill_at[rounds] + RESTART_MS;
            rounds++;
        }
        if (down >= 0 && now_ms() >= restart_at) {
            for (int s = 0; s < SERVICES; s++)
                start_replica(&sv[s], down, clock);
            down = -1;
        }
        bool pending = false;
        for (int k = 0; k < rounds; k++)
            for (int s = 0; s < SERVICES; s++) {
                if (drained[k][s] >= 0)
                    continue;
                if (reached(&sv[s], mark[k][s]))
                    drained[k][s] = now_ms() - kill_at[k];
                else if (now_ms() - kill_at[k] > 3 * DRAIN_MAX_MS)
                    drained[k][s] = 3 * DRAIN_MAX_MS; /* give up waiting; the check below fails */
                pending = pending || drained[k][s] < 0;
            }
        if (rounds == ROUNDS && down < 0 && !pending && atomic_load(&f.done))
            break;
        usleep(200 * 1000);
    }
    pthread_join(poster, NULL);

    /* Then the pipeline settles, five minutes later by the day's clock (bx-notify asks the file
     * provider how each SMS went two minutes after sending it): every group at its topics' ends,
     * bx-escalate's timers fired and outbox relayed, bx-notify's due work done. */
    REQUIRE(bx_clock_set(day_start + (now_ms() - start) + 5 * 60 * 1000) == BX_OK);
    char *settled = NULL;
    const char *settle[] = {
        "settle",  "--group",       sv[SCORE].spec, "--group", sv[ESCALATE].spec,
        "--group", sv[NOTIFY].spec, "--timeout",    "180",     NULL};
    int settle_rc = itest_bxctl(url, clock, settle, &settled);
    if (settle_rc != 0)
        fprintf(stderr, "bxctl settle: %s\n", settled ? settled : "");
    free(settled);
    /* An SMS still queued when the clock moved (a slow machine: a sanitizer build) is sent in
     * that settle, and the provider is asked how it went two minutes later by the day's clock:
     * five minutes more, and the pipeline settles again. */
    if (settle_rc == 0) {
        REQUIRE(bx_clock_set(day_start + (now_ms() - start) + 10 * 60 * 1000) == BX_OK);
        settle_rc = itest_bxctl(url, clock, settle, &settled);
        if (settle_rc != 0)
            fprintf(stderr, "bxctl settle (again): %s\n", settled ? settled : "");
        free(settled);
    }

    long long worst[SERVICES] = {0};
    for (int k = 0; k < rounds; k++) {
        fprintf(stderr, "kill %2d (replica %d of each):", k + 1, k % 2 + 1);
        for (int s = 0; s < SERVICES; s++) {
            fprintf(stderr, " %s drained after %lld ms%s", service_names[s], drained[k][s],
                    s + 1 < SERVICES ? "," : "\n");
            worst[s] = drained[k][s] > worst[s] ? drained[k][s] : worst[s];
        }
    }

    /* What was stored and sent, of the county's own ids. */
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM attendance.fact WHERE student_id LIKE '%s%%') + "
             "(SELECT count(*) FROM attendance.class_report WHERE class_id LIKE '%s%%')",
             itest_id_prefix('g'), itest_id_prefix('g'));
    long long stored = itest_sql_count(url, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM cases.outbox WHERE topic = 'bx.notify.requests.v1' AND "
             "msg_key LIKE '%s%%'",
             itest_id_prefix('g'));
    long long asked = itest_sql_count(url, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM cases.outbox o WHERE topic = 'bx.notify.requests.v1' AND "
             "msg_key LIKE '%s%%' AND NOT EXISTS (SELECT 1 FROM notify.request r WHERE "
             "r.request_id = o.event_id)",
             itest_id_prefix('g'));
    long long not_received = itest_sql_count(url, sql);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM cases.case WHERE student_id LIKE '%s%%'",
             itest_id_prefix('g'));
    long long cases = itest_sql_count(url, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM notify.notification WHERE channel = 'sms' AND student_id LIKE "
             "'%s%%' AND state = 'delivered'",
             itest_id_prefix('g'));
    long long delivered = itest_sql_count(url, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM notify.notification WHERE channel = 'sms' AND student_id LIKE "
             "'%s%%' AND state NOT IN ('delivered', 'dead')",
             itest_id_prefix('g'));
    long long unfinished = itest_sql_count(url, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM notify.notification WHERE channel = 'sms' AND student_id LIKE "
             "'%s%%' AND state = 'dead'",
             itest_id_prefix('g'));
    long long dead = itest_sql_count(url, sql);

    /* The provider's file: one line per SMS sent; an id twice is an SMS sent twice. */
    long long lines = 0, twice = 0;
    bx_map *seen = bx_map_new();
    FILE *fp = fopen(sms_file, "r");
    char line[20000];
    while (fp && fgets(line, sizeof(line), fp)) {
        const char *id = strstr(line, "\"id\":\"");
        if (id == NULL)
            continue;
        id += 6;
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)strcspn(id, "\""), id);
        lines++;
        if (bx_map_get(seen, key))
            twice++;
        else
            REQUIRE(bx_map_put(seen, key, (void *)1) == BX_OK);
    }
    if (fp)
        fclose(fp);

    /* Every SMS bx-notify delivered (the guardians', and the staff's tasks that go at once) is in
     * the file once, and nothing else is. */
    char *ids = itest_sql_rows(
        url, "SELECT notification_id FROM notify.notification WHERE state = 'delivered'");
    long long delivered_all = 0, not_in_file = 0;
    for (char *line_p = ids; line_p && *line_p;) {
        char *nl = strchr(line_p, '\n');
        if (nl)
            *nl = '\0';
        delivered_all++;
        not_in_file += bx_map_get(seen, line_p) == NULL;
        line_p = nl ? nl + 1 : line_p + strlen(line_p);
    }
    free(ids);

    long long accepted = atomic_load(&f.accepted);
    fprintf(stderr,
            "%lld records accepted (%lld planned) in %lld roll calls (%d failed, %lld rejected), "
            "%lld stored (%lld planned); "
            "%lld cases, %lld SMS asked for, %lld not received by bx-notify; %lld SMS delivered, "
            "%lld dead, %lld unfinished; the provider's file has %lld, %lld of them twice (%lld "
            "SMS delivered in all, %lld of them not in the file); the "
            "worst drains: bx-score %lld ms, bx-escalate %lld ms, bx-notify %lld ms\n",
            accepted, want_accepted, atomic_load(&f.posted), atomic_load(&f.failed),
            atomic_load(&f.rejected), stored, want_stored, cases, asked, not_received, delivered,
            dead, unfinished, lines, twice, delivered_all, not_in_file, worst[SCORE],
            worst[ESCALATE], worst[NOTIFY]);
    CHECK_INT(settle_rc, 0);
    CHECK_INT(rounds, ROUNDS);
    CHECK_INT(atomic_load(&f.failed), 0);
    CHECK_INT(atomic_load(&f.rejected), 0);
    CHECK_INT(atomic_load(&f.posted), plan.nrollcalls);
    /* nothing lost */
    CHECK_INT(accepted, want_accepted);
    CHECK_INT(stored, want_stored);
    CHECK(cases > 0);
    CHECK(asked >= cases); /* every case asks for its guardians' same-day SMS */
    CHECK_INT(not_received, 0);
    CHECK(delivered > 0);
    CHECK_INT(unfinished, 0);
    CHECK_INT(dead, 0);
    /* nothing sent twice */
    CHECK_INT(twice, 0);
    CHECK_INT(lines, delivered_all);
    CHECK_INT(not_in_file, 0);
    /* the pipeline kept going: every kill's backlog consumed within 20 s */
    for (int s = 0; s < SERVICES; s++)
        if (worst[s] >= DRAIN_MAX_MS)
            BX_FAIL_AT("%s: a kill's backlog took %lld ms to drain (bound %d ms)", service_names[s],
                       worst[s], DRAIN_MAX_MS);

    itest_stop(ingest);
    for (int s = 0; s < SERVICES; s++) {
        for (int r = 0; r < 2; r++)
            itest_stop(sv[s].pid[r]);
        rd_kafka_topic_partition_list_destroy(sv[s].parts);
        rd_kafka_destroy(sv[s].rk);
    }
    bx_map_free(seen);
    free(f.tokens);
    sim_day_plan_free(&plan);
    sim_world_free(w);
    sim_county_free(c);
    free(dir);
    free(clock);
}
