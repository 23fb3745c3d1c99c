/* bench-e2e: one school day of a simulated county's roll calls through the whole pipeline
 * (bx-ingest -> bx-score -> bx-escalate -> bx.notify.requests.v1): records per second until the
 * pipeline settled, when each stage caught up, and the latency from a roll call's acceptance to
 * the guardian's notification request; beside the raw building blocks measured in the same run
 * (the run's own attendance messages produced again by a bare producer, PostgreSQL COPY of
 * attendance rows). Driven by bench/e2e/run.sh. Not a test. */
#include "bx_clock.h"
#include "bx_json.h"
#include "bx_kafka.h"
#include "bx_map.h"
#include "bx_pg.h"
#include "sim.h"
#include "simtool.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 256
#define MAX_GROUPS      8
#define RAW_MAX         300000 /* messages replayed by raw-kafka at most */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "bench-e2e: %s\n", what);
    exit(1);
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* ---- run: the day through the pipeline ---- */

typedef struct slot {
    CURL *h;
    struct curl_slist *hdrs;
    bx_buf body, reply;
    int rollcall;
} slot;

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static int compare_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static long long pct(const long long *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Processes whose CPU the run reports per record: a name and up to 16 pids. */
#define MAX_CPU 16
#define IDLE_MS 5000 /* how long the stages' idle CPU is measured before the run */
typedef struct cpu_stage {
    const char *name;
    int pids[16];
    int npids;
    double at0[16];
} cpu_stage;

/* CPU seconds (user + system) of process pid so far, from /proc/<pid>/stat; -1 when gone. */
static double process_cpu_seconds(int pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* the command may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* "NAME=PID[+PID...]" into st. */
static bool cpu_stage_parse(const char *spec, cpu_stage *st)
{
    const char *eq = strchr(spec, '=');
    if (eq == NULL || eq == spec)
        return false;
    char *name = strndup(spec, (size_t)(eq - spec));
    if (name == NULL)
        return false;
    st->name = name;
    st->npids = 0;
    for (const char *p = eq + 1; *p && st->npids < 16;) {
        int pid = atoi(p);
        if (pid > 0)
            st->pids[st->npids++] = pid;
        p = strchr(p, '+');
        if (p == NULL)
            break;
        p++;
    }
    return true;
}

static void cpu_start(cpu_stage *st, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < st[i].npids; k++)
            st[i].at0[k] = process_cpu_seconds(st[i].pids[k]);
}

/* CPU seconds of the stage's processes since cpu_start (a process gone meanwhile counts 0). */
static double cpu_since(const cpu_stage *st)
{
    double sum = 0;
    for (int k = 0; k < st->npids; k++) {
        double now = process_cpu_seconds(st->pids[k]);
        if (now >= 0 && st->at0[k] >= 0)
            sum += now - st->at0[k];
    }
    return sum;
}

typedef struct run_conf {
    const char *api, *keys, *state;
    const char *groups[MAX_GROUPS + 1];
    int ngroups, connections;
    cpu_stage cpu[MAX_CPU];
    int ncpu;
    int settle_after; /* s: how long the later stages may take after the first caught up */
    double rate;      /* records a second posted on average, roll calls evenly spaced; 0: at once */
    bx_date day;
    sim_size size;
    uint64_t seed;
} run_conf;

static char (*load_keys(const sim_county *c, const char *path))[160]
{
    char(*tokens)[160] = calloc((size_t)c->nschools, sizeof(*tokens));
    FILE *f = fopen(path, "r");
    if (tokens == NULL || f == NULL)
        die("cannot read the keys file");
    char line[256], school[32], token[160];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%31s %159s", school, token) == 2)
            for (int i = 0; i < c->nschools; i++)
                if (strcmp(c->schools[i].id, school) == 0)
                    snprintf(tokens[i], sizeof(tokens[i]), "%s", token);
    fclose(f);
    for (int i = 0; i < c->nschools; i++)
        if (tokens[i][0] == '\0')
            die("a school has no credential in the keys file");
    return tokens;
}

static void start(slot *s, CURLM *multi, const run_conf *rc, const sim_county *c,
                  const sim_day_plan *p, char (*tokens)[160], int j)
{
    char url[512], auth[200];
    bx_buf_reset(&s->body);
    bx_buf_reset(&s->reply);
    if (sim_rollcall_json(c, &p->rollcalls[j], &s->body) != BX_OK)
        die("out of memory");
    s->rollcall = j;
    snprintf(url, sizeof(url), "%s/v1/rollcall", rc->api);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
             tokens[c->classes[p->rollcalls[j].klass].school]);
    curl_slist_free_all(s->hdrs);
    s->hdrs = curl_slist_append(NULL, auth);
    s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
    curl_easy_setopt(s->h, CURLOPT_URL, url);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body.data);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long)s->body.len);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, &s->reply);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    curl_multi_add_handle(multi, s->h);
}

/* Posts every roll call over rc->connections keep-alive connections; accepted_ms[j] is when the
 * reply to roll call j arrived. With rc->rate, roll call j is not sent before j intervals of a
 * class's mean size / rate from the start, as a morning's roll calls come in over its hours; a
 * free connection waits for it. Returns the records accepted. */
static long long post_all(const run_conf *rc, const sim_county *c, const sim_day_plan *p,
                          long long *accepted_ms)
{
    char(*tokens)[160] = load_keys(c, rc->keys);
    CURLM *multi = curl_multi_init();
    int n = rc->connections < p->nrollcalls ? rc->connections : p->nrollcalls;
    slot *slots = calloc((size_t)n, sizeof(*slots));
    slot **idle = calloc((size_t)n, sizeof(*idle));
    if (multi == NULL || slots == NULL || idle == NULL)
        die("out of memory");
    double interval = rc->rate > 0 ? (double)c->nstudents / p->nrollcalls / rc->rate : 0;
    double t_start = mono_s();
    int next = 0, running = 0, done = 0, nidle = 0;
    long long accepted = 0;
    for (int i = 0; i < n; i++) {
        slots[i].h = curl_easy_init();
        bx_buf_init(&slots[i].body, 0);
        bx_buf_init(&slots[i].reply, 1 << 20);
        idle[nidle++] = &slots[i];
    }
    while (done < p->nrollcalls) {
        double wait_s = 0.1;
        while (nidle > 0 && next < p->nrollcalls) {
            double early = t_start + next * interval - mono_s();
            if (early > 0) {
                wait_s = early < wait_s ? early : wait_s;
                break;
            }
            start(idle[--nidle], multi, rc, c, p, tokens, next++);
        }
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            slot *s = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            long status = 0;
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
            cJSON *reply = NULL;
            if (m->data.result != CURLE_OK || status != 200 ||
                bx_json_parse(s->reply.data ? s->reply.data : "", s->reply.len, &reply, NULL) !=
                    BX_OK) {
                fprintf(stderr, "bench-e2e: roll call %d: HTTP %ld %s: %.300s\n", s->rollcall,
                        status, curl_easy_strerror(m->data.result),
                        s->reply.data ? s->reply.data : "");
                exit(1);
            }
            const cJSON *acc = cJSON_GetObjectItemCaseSensitive(reply, "accepted");
            const cJSON *rej = cJSON_GetObjectItemCaseSensitive(reply, "rejected");
            if (!cJSON_IsNumber(acc) || (cJSON_IsNumber(rej) && rej->valuedouble > 0))
                die("a roll call was not accepted whole");
            accepted += (long long)acc->valuedouble;
            cJSON_Delete(reply);
            accepted_ms[s->rollcall] = wall_ms();
            done++;
            curl_multi_remove_handle(multi, s->h);
            idle[nidle++] = s;
            wait_s = 0;
        }
        if (done < p->nrollcalls && wait_s > 0)
            curl_multi_poll(multi, NULL, 0, (int)(wait_s * 1000) + 1, NULL);
    }
    for (int i = 0; i < n; i++) {
        curl_easy_cleanup(slots[i].h);
        curl_slist_free_all(slots[i].hdrs);
        bx_buf_free(&slots[i].body);
        bx_buf_free(&slots[i].reply);
    }
    free(idle);
    free(slots);
    curl_multi_cleanup(multi);
    free(tokens);
    return accepted;
}

/* For each student of when (id -> acceptance ms), the first message keyed by it on bx.risk.v1
 * from the mark on (its create time less the acceptance), sorted; *n of them. */
static long long *risk_latency(const char *brokers, const char *mark, bx_map *when, int students,
                               size_t *n)
{
    *n = 0;
    long long *out = calloc((size_t)students + 1, sizeof(*out));
    bx_map *seen = bx_map_new();
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (out == NULL || seen == NULL ||
        rd_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "group.id", "bench-e2e-risk", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr, sizeof(errstr)))
        die("cannot read bx.risk.v1");
    bx_error err = {0};
    rd_kafka_t *rk = NULL;
    if (bx_kafka_conf_credentials(kc, &err) == BX_OK)
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    if (rk == NULL)
        die("cannot read bx.risk.v1");
    rd_kafka_poll_set_consumer(rk);
    FILE *f = fopen(mark, "r");
    if (f == NULL)
        die("cannot read the risk mark");
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    int partition, pending = 0;
    long long offset;
    int64_t ends[256] = {0};
    while (fscanf(f, "%d %lld", &partition, &offset) == 2 && partition >= 0 && partition < 256) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, "bx.risk.v1", partition, &lo, &hi, 10000))
            die("no offsets of bx.risk.v1");
        ends[partition] = hi;
        if (hi > offset) {
            rd_kafka_topic_partition_list_add(parts, "bx.risk.v1", partition)->offset = offset;
            pending++;
        }
    }
    fclose(f);
    if (pending && rd_kafka_assign(rk, parts))
        die("cannot read bx.risk.v1");
    char key[64];
    while (pending > 0) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 5000);
        if (msg == NULL)
            break;
        if (!msg->err && msg->offset < ends[msg->partition]) {
            if (msg->key_len > 0 && msg->key_len < sizeof(key)) {
                memcpy(key, msg->key, msg->key_len);
                key[msg->key_len] = '\0';
                const long long *acc = bx_map_get(when, key);
                rd_kafka_timestamp_type_t tt;
                int64_t ts = rd_kafka_message_timestamp(msg, &tt);
                if (acc && ts > 0 && bx_map_get(seen, key) == NULL &&
                    bx_map_put(seen, key, out) == BX_OK)
                    out[(*n)++] = (long long)ts - *acc;
            }
            if (msg->offset + 1 == ends[msg->partition])
                pending--;
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    bx_map_free(seen);
    qsort(out, *n, sizeof(*out), compare_ll);
    return out;
}

static int cmd_run(run_conf *rc)
{
    bx_error err = {0};
    sim_county *c = NULL;
    sim_world *w = NULL;
    sim_day_plan p;
    if (sim_county_new(rc->seed, rc->size, env_or("BENCH_HOLIDAYS", BX_DEFAULT_HOLIDAYS), &c,
                       &err) != BX_OK)
        die(err.msg);
    if (sim_world_new(c, &w) != BX_OK || sim_plan_day(c, w, rc->day, &p) != BX_OK)
        die("planning the day");
    PGconn *db = NULL;
    if (bx_pg_connect(env_or("BX_PG_URL", ""), 10000, &db, &err) != BX_OK)
        die(err.msg);
    const char *brokers = env_or("BX_KAFKA_BROKERS", "127.0.0.1:19092");
    sim_settle *settle = NULL;
    if (sim_settle_new(brokers, rc->groups, db, &settle, &err) != BX_OK)
        die(err.msg);
    char mark[1024];
    snprintf(mark, sizeof(mark), "%s/attendance.mark", rc->state);
    if (sim_topic_mark(brokers, "bx.attendance.v1", mark, &err) != BX_OK)
        die(err.msg);
    char risk_mark[1024];
    snprintf(risk_mark, sizeof(risk_mark), "%s/risk.mark", rc->state);
    if (sim_topic_mark(brokers, "bx.risk.v1", risk_mark, &err) != BX_OK)
        die(err.msg);
    long long absent = 0;
    for (int j = 0; j < p.nrollcalls; j++)
        absent += p.rollcalls[j].nabsent;
    fprintf(stderr,
            "bench-e2e: %d students, %d roll calls (%lld absent) on %d connections; posting %s\n",
            c->nstudents, p.nrollcalls, absent, rc->connections,
            rc->rate > 0 ? "at the rate asked" : "at once");

    long long *accepted_ms = calloc((size_t)p.nrollcalls + 1, sizeof(long long));
    if (accepted_ms == NULL)
        die("out of memory");
    /* Each stage's CPU while nothing is sent (polls, heartbeats, the brokers' and the cluster's
     * own traffic): what it costs per second whatever the load, subtracted from the run's for
     * the cost per record. */
    cpu_stage *cpu = rc->cpu;
    /* and the bench's own (posting the roll calls and the settle checks), on the same cores */
    if (rc->ncpu > 0 && rc->ncpu < MAX_CPU)
        rc->cpu[rc->ncpu++] = (cpu_stage){.name = "client", .pids = {(int)getpid()}, .npids = 1};
    double idle[MAX_CPU] = {0};
    if (rc->ncpu > 0) {
        cpu_start(cpu, rc->ncpu);
        double i0 = mono_s();
        usleep(IDLE_MS * 1000);
        double secs = mono_s() - i0;
        for (int i = 0; i < rc->ncpu; i++)
            idle[i] = cpu_since(&cpu[i]) / secs;
    }
    cpu_start(cpu, rc->ncpu);
    double t0 = mono_s();
    long long accepted = post_all(rc, c, &p, accepted_ms);
    double t_ingest = mono_s() - t0;
    fprintf(stderr, "bench-e2e: %lld records accepted in %.2f s; waiting for the pipeline\n",
            accepted, t_ingest);
    /* When each group caught up (first time the first busy check lies beyond it), and when the
     * whole pipeline was quiet. */
    double caught[MAX_GROUPS + 1] = {0};
    double t_quiet = 0;
    int checks = 0; /* the settle checks made, and their time: what an end is seen late by */
    double check_s = 0;
    bool settled = true;
    char stuck[128] = "";
    for (;;) {
        const char *what = "";
        long long left = 0;
        double c0 = mono_s();
        int busy = sim_settle_check(settle, &what, &left);
        double t = mono_s() - t0;
        checks++;
        check_s += mono_s() - c0;
        for (int g = 0; g < rc->ngroups; g++)
            if (caught[g] == 0 && (busy < 0 || busy > g))
                caught[g] = t;
        if (busy < 0) {
            t_quiet = t;
            break;
        }
        /* A later stage that does not settle within settle_after s of the first one (bx-score)
         * is reported as such rather than waited for. */
        if (caught[0] > 0 && t - caught[0] > rc->settle_after) {
            t_quiet = t;
            settled = false;
            snprintf(stuck, sizeof(stuck), "%s:%lld", what, left);
            for (char *ch = stuck; *ch; ch++)
                if (*ch == ' ')
                    *ch = '_';
            fprintf(stderr, "bench-e2e: not settled %d s after the first stage: %s, %lld left\n",
                    rc->settle_after, what, left);
            break;
        }
        if (t > 3600)
            die("the pipeline did not settle within an hour");
        usleep(10 * 1000);
    }

    double cpu_used[MAX_CPU];
    for (int i = 0; i < rc->ncpu; i++)
        cpu_used[i] = cpu_since(&cpu[i]);

    /* Latency: the roll call's acceptance to the guardian's request on bx.notify.requests.v1
     * (the outbox row's relay), and to its creation in bx-escalate's transaction. */
    bx_map *when = bx_map_new();
    for (int j = 0; j < p.nrollcalls; j++)
        for (int k = 0; k < p.rollcalls[j].nabsent; k++)
            if (bx_map_put(when, c->students[p.rollcalls[j].absent[k]].id, &accepted_ms[j]) !=
                BX_OK)
                die("out of memory");
    PGresult *res = NULL;
    if (bx_pg_query(db,
                    "SELECT msg_key, (extract(epoch FROM sent_at) * 1000)::bigint, "
                    "(extract(epoch FROM created_at) * 1000)::bigint FROM cases.outbox WHERE "
                    "topic = 'bx.notify.requests.v1' AND payload::jsonb->>'template' = "
                    "'absence_same_day' AND sent_at IS NOT NULL",
                    0, NULL, &res, &err) != BX_OK)
        die(err.msg);
    size_t n = (size_t)PQntuples(res), m = 0;
    long long *sent = calloc(n + 1, sizeof(long long)), *made = calloc(n + 1, sizeof(long long));
    /* BENCH_LATENCY_DUMP: each child's acceptance (epoch ms) and latencies, to see which wait */
    const char *dump_path = getenv("BENCH_LATENCY_DUMP");
    FILE *dump = dump_path && *dump_path ? fopen(dump_path, "w") : NULL;
    for (size_t i = 0; i < n; i++) {
        const long long *acc = bx_map_get(when, PQgetvalue(res, (int)i, 0));
        if (acc == NULL)
            continue;
        sent[m] = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10) - *acc;
        made[m] = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10) - *acc;
        if (dump)
            fprintf(dump, "%s %lld %lld %lld\n", PQgetvalue(res, (int)i, 0), *acc, made[m],
                    sent[m]);
        m++;
    }
    if (dump)
        fclose(dump);
    PQclear(res);
    qsort(sent, m, sizeof(long long), compare_ll);
    qsort(made, m, sizeof(long long), compare_ll);
    /* bx-score's share: the roll call's acceptance to the absent child's first assessment on
     * bx.risk.v1 (the message's create time, set by bx-score's producer). */
    size_t na = 0;
    long long *assessed = risk_latency(brokers, risk_mark, when, c->nstudents, &na);

    printf("students=%d rollcalls=%d records=%lld absent=%lld connections=%d post_rate=%.0f\n",
           c->nstudents, p.nrollcalls, accepted, absent, rc->connections, rc->rate);
    printf("ingest_s=%.3f", t_ingest);
    for (int g = 0; g < rc->ngroups; g++)
        printf(" caught_up_%d_s=%.3f", g, caught[g]);
    printf(" quiet_s=%.3f settled=%d%s%s settle_checks=%d settle_check_ms=%.1f\n", t_quiet,
           settled ? 1 : 0, settled ? "" : " stuck=", stuck, checks,
           checks ? check_s * 1000 / checks : 0.0);
    printf("e2e_records_per_s=%.0f ingest_records_per_s=%.0f\n", accepted / t_quiet,
           accepted / t_ingest);
    printf("latency_samples=%zu notify_p50_ms=%lld notify_p99_ms=%lld notify_max_ms=%lld "
           "created_p50_ms=%lld created_p99_ms=%lld\n",
           m, pct(sent, m, 0.5), pct(sent, m, 0.99), m ? sent[m - 1] : -1, pct(made, m, 0.5),
           pct(made, m, 0.99));
    printf("assessed_samples=%zu assessed_p50_ms=%lld assessed_p99_ms=%lld\n", na,
           pct(assessed, na, 0.5), pct(assessed, na, 0.99));
    free(assessed);
    /* CPU microseconds per record accepted, each stage's processes from the first request until
     * the pipeline was quiet, and their CPU when idle (cores busy). */
    for (int i = 0; i < rc->ncpu; i++)
        printf("%scpu_%s_us=%.1f cpu_%s_idle=%.3f", i ? " " : "", cpu[i].name,
               accepted > 0 ? cpu_used[i] * 1e6 / (double)accepted : 0.0, cpu[i].name, idle[i]);
    if (rc->ncpu > 0)
        printf("\n");
    free(sent);
    free(made);
    bx_map_free(when);
    free(accepted_ms);
    sim_settle_free(settle);
    PQfinish(db);
    sim_day_plan_free(&p);
    sim_world_free(w);
    sim_county_free(c);
    return 0;
}

/* ---- raw-kafka: the run's attendance messages again through a bare producer ---- */

typedef struct raw_msg {
    char *key, *value;
    size_t key_len, value_len;
} raw_msg;

typedef struct raw_count {
    long long done, failed;
} raw_count;

static void raw_done(void *opaque, rd_kafka_resp_err_t e)
{
    raw_count *rc = opaque;
    __atomic_add_fetch(e ? &rc->failed : &rc->done, 1, __ATOMIC_RELAXED);
}

static int cmd_raw_kafka(const char *mark, const char *topic)
{
    const char *brokers = env_or("BX_KAFKA_BROKERS", "127.0.0.1:19092");
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "group.id", "bench-e2e-raw", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr, sizeof(errstr)))
        die(errstr);
    bx_error cred_err = {0};
    rd_kafka_t *rk = NULL;
    if (bx_kafka_conf_credentials(kc, &cred_err) == BX_OK)
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    else
        snprintf(errstr, sizeof(errstr), "%s", cred_err.msg);
    if (rk == NULL)
        die(errstr);
    rd_kafka_poll_set_consumer(rk);
    FILE *f = fopen(mark, "r");
    if (f == NULL)
        die("cannot read the attendance mark");
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    int partition;
    long long offset;
    int64_t ends[256] = {0};
    int pending = 0;
    while (fscanf(f, "%d %lld", &partition, &offset) == 2 && partition >= 0 && partition < 256) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, "bx.attendance.v1", partition, &lo, &hi, 10000))
            die("no offsets of bx.attendance.v1");
        ends[partition] = hi;
        if (hi > offset) {
            rd_kafka_topic_partition_list_add(parts, "bx.attendance.v1", partition)->offset =
                offset;
            pending++;
        }
    }
    fclose(f);
    raw_msg *msgs = calloc(RAW_MAX, sizeof(*msgs));
    size_t n = 0;
    if (msgs == NULL || (pending && rd_kafka_assign(rk, parts)))
        die("cannot read bx.attendance.v1");
    while (pending > 0 && n < RAW_MAX) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5000);
        if (m == NULL)
            die("bx.attendance.v1 ended early");
        if (!m->err && m->offset < ends[m->partition]) {
            msgs[n].key = malloc(m->key_len + 1);
            msgs[n].value = malloc(m->len + 1);
            if (msgs[n].key == NULL || msgs[n].value == NULL)
                die("out of memory");
            memcpy(msgs[n].key, m->key, m->key_len);
            memcpy(msgs[n].value, m->payload, m->len);
            msgs[n].key_len = m->key_len;
            msgs[n++].value_len = m->len;
            if (m->offset + 1 == ends[m->partition])
                pending--;
        }
        rd_kafka_message_destroy(m);
    }
    int nparts = 0;
    for (int i = 0; i < 256; i++)
        nparts += ends[i] > 0;
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);

    /* The raw topic with bx.attendance.v1's partitions. */
    bx_error err = {0};
    const char *const topics[] = {topic};
    const int partitions[] = {nparts > 0 ? nparts : 4};
    if (bx_kafka_create_topics(brokers, topics, partitions, 1, 15000, &err) != BX_OK)
        die(err.msg);
    /* The producer bx-ingest uses, with its settings (common/bx_kafka.c: idempotent, acks=all,
     * linger 5 ms, lz4, and BX_KAFKA_PRODUCER_TUNING when set). */
    bx_producer *p = NULL;
    if (bx_producer_new(brokers, NULL, &p, &err) != BX_OK)
        die(err.msg);
    raw_count count = {0};
    double t0 = mono_s();
    for (size_t i = 0; i < n; i++)
        if (bx_producer_send(p, topic, msgs[i].key, msgs[i].key_len, msgs[i].value,
                             msgs[i].value_len, raw_done, &count) != BX_OK)
            die("produce failed");
    if (bx_producer_flush(p, 120000) != BX_OK)
        die("flush failed");
    double t = mono_s() - t0;
    bx_producer_free(p, 5000);
    if (count.failed)
        die("messages failed");
    printf("raw_kafka_messages=%zu raw_kafka_s=%.3f raw_kafka_per_s=%.0f\n", n, t, n / t);
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].value);
    }
    free(msgs);
    return 0;
}

/* ---- copy: the run's attendance messages into a topic of their own ---- */

/* Streams bx.attendance.v1 from the mark to its end now into topic (as many partitions, the same
 * keys), for bx-score to drain alone; prints how many. */
static int cmd_copy(const char *mark, const char *topic)
{
    const char *brokers = env_or("BX_KAFKA_BROKERS", "127.0.0.1:19092");
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "group.id", "bench-e2e-copy", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr, sizeof(errstr)))
        die(errstr);
    bx_error err = {0};
    rd_kafka_t *rk = NULL;
    if (bx_kafka_conf_credentials(kc, &err) == BX_OK)
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    else
        snprintf(errstr, sizeof(errstr), "%s", err.msg);
    if (rk == NULL)
        die(errstr);
    rd_kafka_poll_set_consumer(rk);
    FILE *f = fopen(mark, "r");
    if (f == NULL)
        die("cannot read the attendance mark");
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    int partition, nparts = 0, pending = 0;
    long long offset;
    int64_t ends[256] = {0};
    while (fscanf(f, "%d %lld", &partition, &offset) == 2 && partition >= 0 && partition < 256) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, "bx.attendance.v1", partition, &lo, &hi, 10000))
            die("no offsets of bx.attendance.v1");
        ends[partition] = hi;
        nparts = partition + 1 > nparts ? partition + 1 : nparts;
        if (hi > offset) {
            rd_kafka_topic_partition_list_add(parts, "bx.attendance.v1", partition)->offset =
                offset;
            pending++;
        }
    }
    fclose(f);
    const char *const topics[] = {topic};
    const int partitions[] = {nparts > 0 ? nparts : 4};
    if (bx_kafka_create_topics(brokers, topics, partitions, 1, 15000, &err) != BX_OK)
        die(err.msg);
    bx_producer *p = NULL;
    static const char *const extra[] = {"linger.ms", "20", "compression.type", "lz4", NULL};
    if (bx_producer_new(brokers, extra, &p, &err) != BX_OK)
        die(err.msg);
    if (pending && rd_kafka_assign(rk, parts))
        die("cannot read bx.attendance.v1");
    raw_count count = {0};
    long long n = 0;
    while (pending > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5000);
        if (m == NULL)
            die("bx.attendance.v1 ended early");
        if (!m->err && m->offset < ends[m->partition]) {
            /* keyed as bx-ingest keyed it (the same partitioner): each key's order is kept */
            if (bx_producer_send(p, topic, m->key, m->key_len, m->payload, m->len, raw_done,
                                 &count) != BX_OK)
                die("produce failed");
            n++;
            if (m->offset + 1 == ends[m->partition])
                pending--;
        }
        rd_kafka_message_destroy(m);
    }
    if (bx_producer_flush(p, 300000) != BX_OK || count.failed)
        die("the copy was not acknowledged");
    bx_producer_free(p, 5000);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    printf("%lld\n", n);
    return 0;
}

/* ---- raw-copy: PostgreSQL COPY of rows shaped like bx-score's attendance rows ---- */

static int cmd_raw_copy(long rows)
{
    bx_error err = {0};
    PGconn *db = NULL;
    if (bx_pg_connect(env_or("BX_PG_URL", ""), 10000, &db, &err) != BX_OK)
        die(err.msg);
    if (bx_pg_exec(
            db,
            "SET client_min_messages = warning; DROP TABLE IF EXISTS public.bench_e2e_copy; CREATE "
            "UNLOGGED TABLE "
            "public.bench_e2e_copy (LIKE attendance.fact INCLUDING ALL)",
            &err) != BX_OK)
        die(err.msg);
    double t0 = mono_s();
    PGresult *res = PQexec(db, "COPY public.bench_e2e_copy (student_id, field, day, period, "
                               "school_id, class_id, order_key, value) FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die(PQerrorMessage(db));
    PQclear(res);
    bx_buf b;
    bx_buf_init(&b, 0);
    for (long i = 0; i < rows; i++) {
        if (bx_buf_printf(&b,
                          "KS%08ld\t2026-10-%02ld|0\t2026-10-%02ld\t0\t520121%04ld\tKC%06ld\t"
                          "1791000000000|rc-%ld\ta\n",
                          i / 20, 1 + i % 20, 1 + i % 20, i / 40000, i / 800, i) != BX_OK)
            die("out of memory");
        if (b.len > (1 << 20) || i + 1 == rows) {
            if (PQputCopyData(db, b.data, (int)b.len) != 1)
                die(PQerrorMessage(db));
            bx_buf_reset(&b);
        }
    }
    if (PQputCopyEnd(db, NULL) != 1)
        die(PQerrorMessage(db));
    res = PQgetResult(db);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die(PQerrorMessage(db));
    PQclear(res);
    double t = mono_s() - t0;
    bx_buf_free(&b);
    if (bx_pg_exec(db, "DROP TABLE public.bench_e2e_copy", &err) != BX_OK)
        die(err.msg);
    PQfinish(db);
    printf("raw_copy_rows=%ld raw_copy_s=%.3f raw_copy_per_s=%.0f\n", rows, t, rows / t);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-e2e run --api URL --keys FILE --state DIR --day YYYY-MM-DD\n"
            "                     [--connections N] [--group GROUP:TOPIC[,TOPIC]]... "
            "[--cpu NAME=PID[+PID]]... [--settle-after S] [--rate RECORDS_PER_S] [size]\n"
            "       bench-e2e raw-kafka --mark FILE --topic TOPIC\n"
            "       bench-e2e raw-copy --rows N\n"
            "       bench-e2e copy --mark FILE --topic TOPIC\n"
            "size (as bx-sim): --seed N --townships N --schools N --students N --id-prefix P\n"
            "environment: BX_PG_URL, BX_KAFKA_BROKERS, BX_CLOCK=file:<path>\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    run_conf rc = {.connections = 32,
                   .seed = 42,
                   .size = {3, 6, 2000, NULL},
                   .day = BX_DATE_NONE,
                   .settle_after = 300};
    const char *mark = NULL, *topic = NULL;
    long rows = 1000000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[++i] : NULL;
        if (v == NULL) {
            usage();
            return 2;
        }
        long long n = strtoll(v, NULL, 10);
        if (strcmp(a, "--api") == 0)
            rc.api = v;
        else if (strcmp(a, "--keys") == 0)
            rc.keys = v;
        else if (strcmp(a, "--state") == 0)
            rc.state = v;
        else if (strcmp(a, "--day") == 0 && bx_date_parse(v, &rc.day) == BX_OK)
            ;
        else if (strcmp(a, "--connections") == 0 && n >= 1 && n <= MAX_CONNECTIONS)
            rc.connections = (int)n;
        else if (strcmp(a, "--group") == 0 && rc.ngroups < MAX_GROUPS)
            rc.groups[rc.ngroups++] = v;
        else if (strcmp(a, "--seed") == 0 && n >= 0)
            rc.seed = (uint64_t)n;
        else if (strcmp(a, "--townships") == 0 && n > 0)
            rc.size.townships = (int)n;
        else if (strcmp(a, "--schools") == 0 && n > 0)
            rc.size.schools = (int)n;
        else if (strcmp(a, "--students") == 0 && n > 0 && n <= SIM_MAX_STUDENTS)
            rc.size.students = (int)n;
        else if (strcmp(a, "--id-prefix") == 0)
            rc.size.id_prefix = v;
        else if (strcmp(a, "--mark") == 0)
            mark = v;
        else if (strcmp(a, "--topic") == 0)
            topic = v;
        else if (strcmp(a, "--rows") == 0 && n > 0 && n <= 100000000)
            rows = (long)n;
        else if (strcmp(a, "--settle-after") == 0 && n > 0)
            rc.settle_after = (int)n;
        else if (strcmp(a, "--rate") == 0 && n >= 0)
            rc.rate = (double)n;
        else if (strcmp(a, "--cpu") == 0 && rc.ncpu < MAX_CPU &&
                 cpu_stage_parse(v, &rc.cpu[rc.ncpu]))
            rc.ncpu++;
        else {
            fprintf(stderr, "bench-e2e: bad option %s %s\n", a, v);
            usage();
            return 2;
        }
    }
    bx_error err = {0};
    if (bx_clock_init(getenv("BX_CLOCK"), &err) != BX_OK)
        die(err.msg);
    if (strcmp(argv[1], "run") == 0) {
        if (!rc.api || !rc.keys || !rc.state || rc.day == BX_DATE_NONE || rc.ngroups == 0) {
            usage();
            return 2;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int r = cmd_run(&rc);
        curl_global_cleanup();
        return r;
    }
    if (strcmp(argv[1], "raw-kafka") == 0 && mark && topic)
        return cmd_raw_kafka(mark, topic);
    if (strcmp(argv[1], "raw-copy") == 0)
        return cmd_raw_copy(rows);
    if (strcmp(argv[1], "copy") == 0 && mark && topic)
        return cmd_copy(mark, topic);
    usage();
    return 2;
}
