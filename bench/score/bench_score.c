/* bench-score: the helper of bench/score/run.sh. Writes a synthetic registry (BSC* ids),
 * pre-produces roll calls as bx.attendance.v1 messages to a fresh topic, waits for bx-score to
 * apply them (its /metrics counter) and times it, prints the Lua scripts and a real summary for
 * redis-benchmark, and drops the bench topics. */
#include "bx_buf.h"
#include "bx_kafka.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "recompute.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCHOOLS  99
#define MAX_CLASSES  99
#define MAX_STUDENTS 99

/* School days of November 2026 before the driven clock (2026-11-27 18:00), 2026-11-20 left out
 * (the integration tests close their own calendar that day). Day 0 is the warm-up's. */
static const char *const days[] = {"2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05",
                                   "2026-11-06", "2026-11-09", "2026-11-10", "2026-11-11",
                                   "2026-11-12", "2026-11-13", "2026-11-16", "2026-11-17",
                                   "2026-11-18", "2026-11-19", "2026-11-23", "2026-11-24",
                                   "2026-11-25", "2026-11-26", "2026-11-27"};
#define DAY_COUNT ((int)(sizeof(days) / sizeof(days[0])))

typedef struct conf {
    int schools, classes, students;
    int first_day, days, partitions;
    long long count; /* wait: events to wait for */
    double timeout;
    const char *brokers, *topic, *run_id, *url, *redis_url;
    const char *pids;    /* wait: processes whose CPU over the timed window is printed */
    bool uuid_rollcalls; /* term: roll call ids of 36 characters */
} conf;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Busy CPU seconds of the whole machine so far, from /proc/stat. */
static double machine_cpu_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (f == NULL)
        return 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return 0;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds (user + system) of process pid so far, from /proc/<pid>/stat; 0 when gone. */
static double process_cpu_seconds(int pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* the command may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void school_id(char *out, size_t size, int s)
{
    snprintf(out, size, "BSC%02d", s + 1);
}

static void class_id(char *out, size_t size, int s, int k)
{
    snprintf(out, size, "BSC%02d-C%02d", s + 1, k + 1);
}

static void student_id(char *out, size_t size, int s, int k, int n)
{
    snprintf(out, size, "BSC%02d-C%02d-S%02d", s + 1, k + 1, n + 1);
}

/* ---------------------------------------------------------------------------------- gen */

static bx_status write_text(const char *dir, const char *name, const bx_buf *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench-score: cannot write %s: %s\n", path, strerror(errno));
        return BX_EIO;
    }
    bool ok = fwrite(text->data, 1, text->len, f) == text->len;
    ok = fclose(f) == 0 && ok;
    return ok ? BX_OK : BX_EIO;
}

/* The registry as bxctl import CSVs: county, township and calendar as bench/ingest has them. */
static int cmd_gen(const conf *c, const char *dir)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    bx_status s = bx_buf_puts(&b, "code,name\n990090,基准县\n");
    IFOK(s, write_text(dir, "counties.csv", &b));
    bx_buf_reset(&b);
    IFOK(s, bx_buf_puts(&b, "code,county_code,name\n990090100,990090,基准镇\n"));
    IFOK(s, write_text(dir, "townships.csv", &b));
    bx_buf_reset(&b);
    IFOK(s, bx_buf_puts(&b, "calendar_id,entry,first_day,last_day,name\n"
                            "bench-2026,term,2026-09-01,2027-01-22,2026-autumn\n"));
    IFOK(s, write_text(dir, "calendar.csv", &b));
    bx_buf_reset(&b);
    IFOK(s, bx_buf_puts(&b, "school_id,name,township_code,stage,calendar_id\n"));
    char sid[40], cid[40], stid[40];
    for (int i = 0; i < c->schools && s == BX_OK; i++) {
        school_id(sid, sizeof(sid), i);
        s = bx_buf_printf(&b, "%s,评分基准小学%d,990090100,primary,bench-2026\n", sid, i + 1);
    }
    IFOK(s, write_text(dir, "schools.csv", &b));
    bx_buf_reset(&b);
    IFOK(s, bx_buf_puts(&b, "class_id,school_id,grade,name,homeroom_staff_id\n"));
    for (int i = 0; i < c->schools && s == BX_OK; i++)
        for (int k = 0; k < c->classes && s == BX_OK; k++) {
            school_id(sid, sizeof(sid), i);
            class_id(cid, sizeof(cid), i, k);
            s = bx_buf_printf(&b, "%s,%s,%d,%d年级%d班,\n", cid, sid, 1 + k % 6, 1 + k % 6,
                              1 + k / 6);
        }
    IFOK(s, write_text(dir, "classes.csv", &b));
    bx_buf_reset(&b);
    IFOK(s, bx_buf_puts(&b, "student_id,school_id,class_id,name\n"));
    for (int i = 0; i < c->schools && s == BX_OK; i++)
        for (int k = 0; k < c->classes && s == BX_OK; k++)
            for (int n = 0; n < c->students && s == BX_OK; n++) {
                school_id(sid, sizeof(sid), i);
                class_id(cid, sizeof(cid), i, k);
                student_id(stid, sizeof(stid), i, k, n);
                s = bx_buf_printf(&b, "%s,%s,%s,学生%d\n", stid, sid, cid, n + 1);
            }
    IFOK(s, write_text(dir, "students.csv", &b));
    bx_buf_free(&b);
    return s == BX_OK ? 0 : 1;
}

/* ---------------------------------------------------------------------------------- produce */

typedef struct counts {
    atomic_llong delivered, failed;
} counts;

static void delivered(void *opaque, rd_kafka_resp_err_t err)
{
    counts *c = opaque;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        atomic_fetch_add(&c->delivered, 1);
    else
        atomic_fetch_add(&c->failed, 1);
}

static bx_status put_str(bx_buf *b, const char *key, const char *value)
{
    bx_status s = bx_buf_printf(b, ",\"%s\":", key);
    if (value == NULL)
        IFOK(s, bx_buf_puts(b, "null"));
    else
        IFOK(s, bx_buf_json_string(b, value));
    return s;
}

/* The attendance fact bx-ingest builds for one student of a roll call. */
static bx_status student_message(const char *event_id, const char *sid, const char *school,
                                 const char *klass, const char *day, const char *status,
                                 const char *leave_kind, const char *rid, const char *at, bx_buf *b)
{
    bx_buf_reset(b);
    bx_status s = bx_buf_puts(b, "{\"schema\":\"bx.attendance.v1\",\"type\":\"attendance\"");
    IFOK(s, put_str(b, "event_id", event_id));
    IFOK(s, put_str(b, "student_id", sid));
    IFOK(s, put_str(b, "school_id", school));
    IFOK(s, put_str(b, "class_id", klass));
    IFOK(s, put_str(b, "date", day));
    IFOK(s, bx_buf_puts(b, ",\"period\":null"));
    IFOK(s, put_str(b, "status", status));
    IFOK(s, put_str(b, "leave_kind", leave_kind));
    IFOK(s, put_str(b, "source", "rollcall"));
    IFOK(s, put_str(b, "rollcall_id", rid));
    IFOK(s, put_str(b, "recorded_at", at));
    IFOK(s, put_str(b, "recorded_by", "bench-score"));
    IFOK(s, bx_buf_puts(b, "}"));
    return s;
}

/* The class report as bx-ingest writes it, listed (a JSON array's text) naming the students the
 * roll call listed. */
static bx_status class_message(const char *event_id, const char *school, const char *klass,
                               const char *day, const char *rid, int enrolled, const char *listed,
                               const char *at, bx_buf *b)
{
    bx_buf_reset(b);
    bx_status s = bx_buf_puts(b, "{\"schema\":\"bx.attendance.v1\",\"type\":\"class_report\"");
    IFOK(s, put_str(b, "event_id", event_id));
    IFOK(s, put_str(b, "school_id", school));
    IFOK(s, put_str(b, "class_id", klass));
    IFOK(s, put_str(b, "date", day));
    IFOK(s, bx_buf_puts(b, ",\"period\":null"));
    IFOK(s, put_str(b, "rollcall_id", rid));
    IFOK(s, bx_buf_printf(b,
                          ",\"enrolled\":%d,\"absent\":%d,\"leave\":%d,\"late\":%d,"
                          "\"early_leave\":%d,\"present\":%d",
                          enrolled, 2, 1, 1, 0, enrolled - 4));
    IFOK(s, bx_buf_printf(b, ",\"listed\":%s", listed));
    IFOK(s, put_str(b, "recorded_at", at));
    IFOK(s, put_str(b, "recorded_by", "bench-score"));
    IFOK(s, bx_buf_puts(b, "}"));
    return s;
}

static bx_status send_one(bx_producer *p, const char *topic, const char *key, const bx_buf *v,
                          counts *n, long long *sent)
{
    bx_status s = bx_producer_send(p, topic, key, strlen(key), v->data, v->len, delivered, n);
    if (s == BX_OK)
        (*sent)++;
    return s;
}

/* One roll call per class per day, days first_day .. first_day + days - 1: every student a fact
 * (2 absent, 1 on sick leave, 1 late, the rest present; who varies with class and day), keyed by
 * student id, then the class report keyed by class id. Prints the message count. */
static int cmd_produce(const conf *c)
{
    if (c->first_day < 0 || c->days < 1 || c->first_day + c->days > DAY_COUNT) {
        fprintf(stderr, "bench-score produce: days %d..%d outside the %d school days\n",
                c->first_day, c->first_day + c->days - 1, DAY_COUNT);
        return 2;
    }
    bx_error err = {0};
    const char *topics[] = {c->topic};
    int parts[] = {c->partitions};
    if (bx_kafka_create_topics(c->brokers, topics, parts, 1, 15000, &err) != BX_OK) {
        fprintf(stderr, "bench-score: %s\n", err.msg);
        return 1;
    }
    bx_producer *p = NULL;
    const char *extra[] = {"linger.ms", "20", NULL};
    if (bx_producer_new(c->brokers, extra, &p, &err) != BX_OK) {
        fprintf(stderr, "bench-score: %s\n", err.msg);
        return 1;
    }
    counts n;
    atomic_init(&n.delivered, 0);
    atomic_init(&n.failed, 0);
    bx_buf msg;
    bx_buf_init(&msg, 1 << 12);
    bx_status s = BX_OK;
    long long sent = 0;
    for (int d = c->first_day; d < c->first_day + c->days && s == BX_OK; d++) {
        char at[40];
        snprintf(at, sizeof(at), "%sT08:%02d:05+08:00", days[d], 10 + d);
        for (int i = 0; i < c->schools && s == BX_OK; i++)
            for (int k = 0; k < c->classes && s == BX_OK; k++) {
                char sid[40], cid[40], stid[40], rid[96], ev[160];
                school_id(sid, sizeof(sid), i);
                class_id(cid, sizeof(cid), i, k);
                snprintf(rid, sizeof(rid), "BSC-%s-%s-%s", c->run_id, days[d], cid);
                int ns = c->students;
                unsigned h = (unsigned)((d * 131 + i * 37 + k) * 2654435761u);
                int first = (int)(h % (unsigned)ns), step = ns / 4 > 0 ? ns / 4 : 1;
                int absent0 = first, absent1 = (first + step) % ns, leave = (first + 2 * step) % ns,
                    late = (first + 3 * step) % ns;
                char listed[4 * 48 + 8] = "[";
                for (int m = 0; m < ns && s == BX_OK; m++) {
                    const char *status = "present", *kind = NULL;
                    if (m == absent0 || m == absent1)
                        status = "absent";
                    else if (m == leave)
                        status = "leave", kind = "sick";
                    else if (m == late)
                        status = "late";
                    student_id(stid, sizeof(stid), i, k, m);
                    if (strcmp(status, "present") != 0 &&
                        strlen(listed) + strlen(stid) + 4 < sizeof(listed))
                        snprintf(listed + strlen(listed), sizeof(listed) - strlen(listed),
                                 "%s\"%s\"", listed[1] ? "," : "", stid);
                    snprintf(ev, sizeof(ev), "%s:%s", rid, stid);
                    s = student_message(ev, stid, sid, cid, days[d], status, kind, rid, at, &msg);
                    IFOK(s, send_one(p, c->topic, stid, &msg, &n, &sent));
                }
                snprintf(ev, sizeof(ev), "%s:class", rid);
                strcat(listed, "]");
                IFOK(s, class_message(ev, sid, cid, days[d], rid, ns, listed, at, &msg));
                IFOK(s, send_one(p, c->topic, cid, &msg, &n, &sent));
            }
    }
    double until = now_seconds() + 120;
    while (atomic_load(&n.delivered) + atomic_load(&n.failed) < sent && now_seconds() < until)
        usleep(1000);
    bx_buf_free(&msg);
    bx_producer_free(p, 10000);
    if (s != BX_OK || atomic_load(&n.failed) || atomic_load(&n.delivered) != sent) {
        fprintf(stderr, "bench-score produce: %lld sent, %lld delivered, %lld failed\n", sent,
                (long long)atomic_load(&n.delivered), (long long)atomic_load(&n.failed));
        return 1;
    }
    printf("%lld\n", sent);
    return 0;
}

/* ---------------------------------------------------------------------------------- wait */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

/* bx_score_facts_total{result="applied"} from /metrics; -1 when it cannot be read. */
static long long applied(CURL *h, bx_buf *b)
{
    bx_buf_reset(b);
    if (curl_easy_perform(h) != CURLE_OK || b->data == NULL)
        return -1;
    static const char name[] = "bx_score_facts_total{result=\"applied\"} ";
    const char *p = strstr(b->data, name);
    return p ? atoll(p + sizeof(name) - 1) : 0;
}

/* Waits until bx-score applied c->count events, timing from the first poll that sees anything
 * applied (so bx-score's start and group join are not counted) to the poll that sees them all.
 * Prints "events seconds events_per_s machine_cpu_s". */
static int cmd_wait(const conf *c)
{
    CURL *h = curl_easy_init();
    bx_buf b;
    bx_buf_init(&b, 1 << 14);
    char url[512];
    snprintf(url, sizeof(url), "%s/metrics", c->url);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    double start = now_seconds(), t0 = 0, cpu0 = 0;
    long long base = -1, v = 0, last = -1;
    int pids[16], npids = 0;
    double pcpu0[16] = {0};
    for (const char *p = c->pids; p && *p && npids < 16;) {
        pids[npids++] = atoi(p);
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    int rc = 1;
    while (now_seconds() - start < c->timeout) {
        v = applied(h, &b);
        double t = now_seconds();
        if (v > 0 && base < 0) {
            base = v;
            t0 = t;
            cpu0 = machine_cpu_seconds();
            for (int k = 0; k < npids; k++)
                pcpu0[k] = process_cpu_seconds(pids[k]);
        }
        if (v >= c->count && base >= 0) {
            double secs = t - t0, cpu = machine_cpu_seconds() - cpu0;
            long long events = v - base;
            if (events <= 0 || secs <= 0) {
                fprintf(stderr, "bench-score wait: everything applied before the first poll\n");
                break;
            }
            printf("%lld %.3f %.0f %.2f", events, secs, (double)events / secs, cpu);
            for (int k = 0; k < npids; k++)
                printf(" %.2f", process_cpu_seconds(pids[k]) - pcpu0[k]);
            printf("\n");
            rc = 0;
            break;
        }
        if (v != last)
            last = v;
        usleep(10 * 1000);
    }
    if (rc != 0 && v < c->count)
        fprintf(stderr, "bench-score wait: %lld of %lld applied after %.0f s\n", v, c->count,
                c->timeout);
    bx_buf_free(&b);
    curl_easy_cleanup(h);
    return rc;
}

/* ---------------------------------------------------------------------------------- redis */

/* The summary stored for one student, as NUL-separated name, value pairs (for redis-benchmark
 * arguments). */
static int cmd_summary(const conf *c, const char *student)
{
    redisContext *r = NULL;
    bx_error err = {0};
    char key[SCORE_STORE_KEY_MAX];
    if (score_store_key_summary(student, key, sizeof(key)) != BX_OK ||
        bx_redis_connect(c->redis_url, 5000, &r, &err) != BX_OK) {
        fprintf(stderr, "bench-score summary: %s\n", err.msg[0] ? err.msg : "bad student id");
        return 1;
    }
    redisReply *rep = redisCommand(r, "HGETALL %s", key);
    int rc = 1;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
        for (size_t i = 0; i < rep->elements; i++) {
            fwrite(rep->element[i]->str, 1, rep->element[i]->len, stdout);
            fputc('\0', stdout);
        }
        rc = 0;
    } else {
        fprintf(stderr, "bench-score summary: %s is empty\n", key);
    }
    freeReplyObject(rep);
    redisFree(r);
    return rc;
}

/* ---------------------------------------------------------------------------------- topics */

static int cmd_drop(const conf *c, char **topics, int n)
{
    char errstr[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(kc, "bootstrap.servers", c->brokers, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "bench-score drop: %s\n", errstr);
        rd_kafka_conf_destroy(kc);
        return 1;
    }
    bx_error cred_err = {0};
    rd_kafka_t *rk = NULL;
    if (bx_kafka_conf_credentials(kc, &cred_err) == BX_OK)
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    else
        snprintf(errstr, sizeof(errstr), "%s", cred_err.msg);
    if (rk == NULL) {
        fprintf(stderr, "bench-score drop: %s\n", errstr);
        return 1;
    }
    rd_kafka_DeleteTopic_t **del = calloc((size_t)n, sizeof(*del));
    for (int i = 0; i < n; i++)
        del[i] = rd_kafka_DeleteTopic_new(topics[i]);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, 15000, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, del, (size_t)n, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    int rc = 0;
    if (ev == NULL || rd_kafka_event_error(ev)) {
        fprintf(stderr, "bench-score drop: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "no answer");
        rc = 1;
    } else {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++)
            if (rd_kafka_topic_result_error(res[i])) {
                fprintf(stderr, "bench-score drop: %s: %s\n", rd_kafka_topic_result_name(res[i]),
                        rd_kafka_topic_result_error_string(res[i]));
                rc = 1;
            }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_DeleteTopic_destroy_array(del, (size_t)n);
    free(del);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---------------------------------------------------------------------------------- term */

/* The day's status of a student in the term written by cmd_term, drawn from a hash of the student
 * and the day with bx-sim's daily chances outside its clusters (sim_day.c): absent 0.3 %, sick
 * leave 1.2 %, personal leave 0.3 %, late 1 %; present otherwise. */
static score_status term_status(unsigned student, bx_date d, score_leave_kind *kind)
{
    uint64_t h = ((uint64_t)student * 0x9E3779B97F4A7C15ull) ^
                 ((uint64_t)(uint32_t)d * 0xC2B2AE3D27D4EB4Full);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    unsigned u = (unsigned)(h % 100000);
    *kind = SCORE_LEAVE_NONE;
    if (u < 300)
        return SCORE_ABSENT;
    if (u < 1500) {
        *kind = SCORE_LEAVE_SICK;
        return SCORE_LEAVE;
    }
    if (u < 1800) {
        *kind = SCORE_LEAVE_PERSONAL;
        return SCORE_LEAVE;
    }
    if (u < 2800)
        return SCORE_LATE;
    return SCORE_PRESENT;
}

typedef struct term_fact {
    char student[40], school[40], klass[40], field[16], order_key[SCORE_STORE_ORDER_KEY_MAX + 1];
    char value[SCORE_STORE_VALUE_MAX + 1]; /* a roll call's: counts ";" whom it listed */
} term_fact;

/* Sums MEMORY USAGE (SAMPLES 0) of n keys and counts their encodings ("listpack" and others). */
static bx_status key_memory(bx_redis *r, char (*keys)[SCORE_STORE_KEY_MAX], size_t n,
                            long long *bytes, long long *present, long long *listpack,
                            bx_error *err)
{
    bx_status s = BX_OK;
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        const char *mu[] = {"MEMORY", "USAGE", keys[i], "SAMPLES", "0"};
        const char *oe[] = {"OBJECT", "ENCODING", keys[i]};
        size_t mul[] = {6, 5, strlen(keys[i]), 7, 1}, oel[] = {6, 8, strlen(keys[i])};
        s = bx_redis_append(r, 5, mu, mul, err);
        IFOK(s, bx_redis_append(r, 3, oe, oel, err));
    }
    for (size_t i = 0; i < n && s == BX_OK; i++) {
        redisReply *a = NULL, *b = NULL;
        s = bx_redis_read(r, &a, err);
        IFOK(s, bx_redis_read(r, &b, err));
        if (s == BX_OK && a->type == REDIS_REPLY_INTEGER) {
            *bytes += a->integer;
            (*present)++;
            if (b->type == REDIS_REPLY_STRING && strcmp(b->str, "listpack") == 0)
                (*listpack)++;
        }
        freeReplyObject(a);
        freeReplyObject(b);
    }
    return s;
}

/* A term of roll calls written straight into Redis through bx-score's store (compare-and-set of
 * each class's report and each student's explicit facts, as bx-score stores them), every summary
 * computed as of the term's last school day and stored as bx-score stores it, then Redis's
 * MEMORY USAGE of every key per student. */
static int cmd_term(const conf *c, const char *last_text)
{
    bx_error err = {0};
    PGconn *db = NULL;
    bx_registry *reg = NULL;
    score_profiles *prof = NULL;
    bx_redis *r = NULL;
    score_store_redis *st = NULL;
    bx_date last = BX_DATE_NONE;
    score_policy policy;
    score_policy_default(&policy);
    bx_status s = bx_date_parse(last_text, &last) == BX_OK
                      ? BX_OK
                      : BX_ERR(&err, BX_EINVAL, "--last-day: not a date");
    IFOK(s, bx_pg_connect(getenv("BX_PG_URL") ? getenv("BX_PG_URL") : "", 10000, &db, &err));
    IFOK(s, bx_registry_load(db, &reg, &err));
    IFOK(s, score_profiles_load(db, reg, &prof, &err));
    IFOK(s, bx_redis_open(c->redis_url, 10000, &r, &err));
    IFOK(s, score_store_redis_open(r, &st, &err));
    char sid[40], cid[40], stid[40];
    school_id(sid, sizeof(sid), 0);
    const bx_reg_school *school = NULL;
    if (s == BX_OK) {
        class_id(cid, sizeof(cid), 0, 0);
        const bx_reg_class *k = bx_registry_class(reg, cid);
        school = k ? k->school : NULL;
        if (school == NULL || school->calendar == NULL)
            s = BX_ERR(&err, BX_ENOTFOUND, "the bench registry is not imported (%s)", cid);
    }
    const bx_term *term = s == BX_OK ? bx_calendar_term_of(school->calendar, last) : NULL;
    if (s == BX_OK && term == NULL)
        s = BX_ERR(&err, BX_EINVAL, "--last-day %s is in no term", last_text);
    size_t nstudents = (size_t)c->schools * (size_t)c->classes * (size_t)c->students;
    size_t nclasses = (size_t)c->schools * (size_t)c->classes;
    term_fact *facts = calloc(nstudents + 1, sizeof(*facts));
    score_store_fact *sf = calloc(nstudents + 1, sizeof(*sf));
    term_fact *reps = calloc(nclasses + 1, sizeof(*reps));
    score_store_report *sr = calloc(nclasses + 1, sizeof(*sr));
    if (s == BX_OK && (!facts || !sf || !reps || !sr))
        s = BX_ERR(&err, BX_ENOMEM, "out of memory");
    long long nfacts = 0, ndays = 0;
    for (bx_date d = term ? term->first : last; s == BX_OK && d <= last; d++) {
        if (!bx_calendar_is_school_day(school->calendar, d))
            continue;
        ndays++;
        char date[11];
        bx_date_format(d, date);
        bx_time_ms at = ((bx_time_ms)d * 86400 + 5 * 60) * 1000; /* 08:05 +08:00 = 00:05 UTC */
        size_t nf = 0, nr = 0;
        for (int i = 0; i < c->schools; i++)
            for (int k = 0; k < c->classes; k++) {
                school_id(sid, sizeof(sid), i);
                class_id(cid, sizeof(cid), i, k);
                int tally[3] = {0};
                char listed[SCORE_STORE_VALUE_MAX - 64] = ""; /* as bx-ingest lists them */
                /* The roll call's id as bx-sim makes it ("<class>-<date>"), or a UUID's 36
                 * characters as a school's software may send (--uuid-rollcalls). */
                char rollcall[64];
                if (c->uuid_rollcalls)
                    snprintf(rollcall, sizeof(rollcall), "%08x-%04x-4%03x-8%03x-%012llx",
                             (unsigned)(i * 131 + k), (unsigned)(d & 0xffff), (unsigned)(k & 0xfff),
                             (unsigned)(i & 0xfff), (unsigned long long)d * 7919ull);
                else
                    snprintf(rollcall, sizeof(rollcall), "%s-%s", cid, date);
                for (int n = 0; n < c->students && s == BX_OK; n++) {
                    unsigned who = (unsigned)((i * MAX_CLASSES + k) * MAX_STUDENTS + n);
                    score_leave_kind kind;
                    score_status status = term_status(who, d, &kind);
                    if (status == SCORE_PRESENT)
                        continue;
                    tally[status == SCORE_ABSENT ? 0 : status == SCORE_LEAVE ? 1 : 2]++;
                    student_id(stid, sizeof(stid), i, k, n);
                    size_t used = strlen(listed);
                    snprintf(listed + used, sizeof(listed) - used, "%s%s", used ? " " : "", stid);
                    term_fact *f = &facts[nf];
                    snprintf(f->student, sizeof(f->student), "%s", stid);
                    snprintf(f->school, sizeof(f->school), "%s", sid);
                    snprintf(f->klass, sizeof(f->klass), "%s", cid);
                    char ev[128];
                    snprintf(ev, sizeof(ev), "%s:%s", rollcall, stid);
                    if (score_store_field_day(d, 0, f->field, sizeof(f->field)) != BX_OK ||
                        score_store_order_key(at, ev, f->order_key, sizeof(f->order_key)) != BX_OK)
                        s = BX_ERR(&err, BX_EINVAL, "cannot name a fact");
                    snprintf(f->value, sizeof(f->value), "%s", score_status_code(status, kind));
                    sf[nf] = (score_store_fact){f->student,   f->school, f->klass, f->field,
                                                f->order_key, f->value,  false};
                    nf++;
                }
                term_fact *rp = &reps[nr];
                snprintf(rp->klass, sizeof(rp->klass), "%s", cid);
                snprintf(rp->school, sizeof(rp->school), "%s", sid);
                char ev[128];
                snprintf(ev, sizeof(ev), "%s:class", rollcall);
                if (score_store_field_day(d, 0, rp->field, sizeof(rp->field)) != BX_OK ||
                    score_store_order_key(at, ev, rp->order_key, sizeof(rp->order_key)) != BX_OK)
                    s = BX_ERR(&err, BX_EINVAL, "cannot name a roll call");
                snprintf(rp->value, sizeof(rp->value), "%d,%d,%d,%d,0,%d;%s", c->students, tally[0],
                         tally[1], tally[2], c->students - tally[0] - tally[1] - tally[2], listed);
                sr[nr] = (score_store_report){rp->klass, rp->school, rp->field, rp->order_key,
                                              rp->value};
                nr++;
            }
        IFOK(s, score_store_apply_reports(st, sr, nr, NULL, NULL, &err));
        IFOK(s, score_store_apply_facts(st, sf, nf, NULL, NULL, &err));
        nfacts += (long long)nf;
    }
    /* Every student's summary as bx-score stores it (none for a student without facts). */
    enum { CHUNK = 256 };
    score_outcome *out = calloc(CHUNK, sizeof(*out));
    const char **ids = calloc(nstudents + 1, sizeof(*ids));
    char(*idtext)[40] = calloc(nstudents + 1, sizeof(*idtext));
    if (s == BX_OK && (!out || !ids || !idtext))
        s = BX_ERR(&err, BX_ENOMEM, "out of memory");
    size_t k = 0;
    for (int i = 0; s == BX_OK && i < c->schools; i++)
        for (int j = 0; j < c->classes; j++)
            for (int n = 0; n < c->students; n++, k++) {
                student_id(idtext[k], sizeof(idtext[k]), i, j, n);
                ids[k] = idtext[k];
            }
    score_env env = {&policy, reg, prof, st};
    for (size_t i = 0; s == BX_OK && i < nstudents; i += CHUNK) {
        size_t m = nstudents - i < CHUNK ? nstudents - i : CHUNK;
        s = score_recompute_batch(&env, ids + i, m, last, true, out, &err);
        IFOK(s, score_recompute_store(&env, out, m, &err));
    }
    /* Redis's own count of the bytes of each key. */
    char(*keys)[SCORE_STORE_KEY_MAX] = calloc(1024, sizeof(*keys));
    long long fb = 0, fk = 0, flp = 0, sb = 0, sk = 0, slp = 0, cb = 0, ck = 0, clp = 0;
    if (s == BX_OK && keys == NULL)
        s = BX_ERR(&err, BX_ENOMEM, "out of memory");
    for (size_t i = 0; s == BX_OK && i < nstudents; i += 512) {
        size_t m = nstudents - i < 512 ? nstudents - i : 512;
        for (size_t j = 0; j < m; j++)
            if (score_store_key_facts(ids[i + j], keys[j], sizeof(keys[j])) != BX_OK ||
                score_store_key_summary(ids[i + j], keys[512 + j], sizeof(keys[0])) != BX_OK)
                s = BX_ERR(&err, BX_EINVAL, "bad id");
        IFOK(s, key_memory(r, keys, m, &fb, &fk, &flp, &err));
        IFOK(s, key_memory(r, keys + 512, m, &sb, &sk, &slp, &err));
    }
    for (size_t i = 0; s == BX_OK && i < nclasses; i += 512) {
        size_t m = nclasses - i < 512 ? nclasses - i : 512;
        for (size_t j = 0; j < m; j++) {
            class_id(cid, sizeof(cid), (int)((i + j) / (size_t)c->classes),
                     (int)((i + j) % (size_t)c->classes));
            if (score_store_key_reported(cid, keys[j], sizeof(keys[j])) != BX_OK)
                s = BX_ERR(&err, BX_EINVAL, "bad id");
        }
        IFOK(s, key_memory(r, keys, m, &cb, &ck, &clp, &err));
    }
    if (s == BX_OK) {
        double n = (double)nstudents;
        printf("term_students=%zu term_school_days=%lld term_facts=%lld facts_per_student=%.2f\n",
               nstudents, ndays, nfacts, (double)nfacts / n);
        printf("facts_keys=%lld facts_listpack=%lld facts_bytes_per_student=%.0f\n", fk, flp,
               (double)fb / n);
        printf("sum_keys=%lld sum_listpack=%lld sum_bytes_per_student=%.0f\n", sk, slp,
               (double)sb / n);
        printf("reported_keys=%lld reported_listpack=%lld reported_bytes_per_student=%.0f\n", ck,
               clp, (double)cb / n);
        printf("bytes_per_student=%.0f\n", (double)(fb + sb + cb) / n);
    } else {
        fprintf(stderr, "bench-score term: %s\n", err.msg);
    }
    free(keys);
    free(out);
    free(ids);
    free(idtext);
    free(facts);
    free(sf);
    free(reps);
    free(sr);
    score_store_redis_free(st);
    bx_redis_close(r);
    score_profiles_free(prof);
    bx_registry_free(reg);
    if (db)
        PQfinish(db);
    return s == BX_OK ? 0 : 1;
}

/* ---------------------------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-score gen DIR [--schools N --classes N --students N]\n"
            "       bench-score produce --topic T [--partitions N --first-day D --days N "
            "--run-id ID --schools ...]\n"
            "       bench-score wait --url http://HOST:PORT --count N [--timeout S] "
            "[--pids P1,P2,...]\n"
            "       bench-score lua apply|summary\n"
            "       bench-score summary STUDENT_ID\n"
            "       bench-score term LAST_DAY [--uuid-rollcalls 0|1 --schools ...]  (Redis bytes "
            "per student)\n"
            "       bench-score drop TOPIC...\n"
            "environment: BX_KAFKA_BROKERS, BX_REDIS_URL, BX_PG_URL (term)\n");
}

int main(int argc, char **argv)
{
    conf c = {20, 25, 40, 1, 8, 4, 0, 600, NULL, NULL, "0", NULL, NULL, NULL, false};
    c.brokers = getenv("BX_KAFKA_BROKERS") ? getenv("BX_KAFKA_BROKERS") : "127.0.0.1:19092";
    c.redis_url = getenv("BX_REDIS_URL") ? getenv("BX_REDIS_URL") : "redis://127.0.0.1:63799";
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    char *pos[64];
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool opt = strncmp(a, "--", 2) == 0;
        if (opt && v == NULL) {
            usage();
            return 2;
        }
        if (strcmp(a, "--schools") == 0)
            c.schools = atoi(v);
        else if (strcmp(a, "--classes") == 0)
            c.classes = atoi(v);
        else if (strcmp(a, "--students") == 0)
            c.students = atoi(v);
        else if (strcmp(a, "--first-day") == 0)
            c.first_day = atoi(v);
        else if (strcmp(a, "--days") == 0)
            c.days = atoi(v);
        else if (strcmp(a, "--partitions") == 0)
            c.partitions = atoi(v);
        else if (strcmp(a, "--count") == 0)
            c.count = atoll(v);
        else if (strcmp(a, "--timeout") == 0)
            c.timeout = atof(v);
        else if (strcmp(a, "--topic") == 0)
            c.topic = v;
        else if (strcmp(a, "--run-id") == 0)
            c.run_id = v;
        else if (strcmp(a, "--url") == 0)
            c.url = v;
        else if (strcmp(a, "--pids") == 0)
            c.pids = v;
        else if (strcmp(a, "--uuid-rollcalls") == 0)
            c.uuid_rollcalls = strcmp(v, "1") == 0;
        else if (opt) {
            usage();
            return 2;
        } else {
            if (npos < 64)
                pos[npos++] = argv[i];
            continue;
        }
        i++;
    }
    if (c.schools < 1 || c.schools > MAX_SCHOOLS || c.classes < 1 || c.classes > MAX_CLASSES ||
        c.students < 4 || c.students > MAX_STUDENTS || c.partitions < 1) {
        fprintf(stderr, "bench-score: schools 1..99, classes 1..99, students 4..99\n");
        return 2;
    }
    if (strcmp(cmd, "gen") == 0 && npos == 1)
        return cmd_gen(&c, pos[0]);
    if (strcmp(cmd, "produce") == 0 && c.topic)
        return cmd_produce(&c);
    if (strcmp(cmd, "wait") == 0 && c.url && c.count > 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        return cmd_wait(&c);
    }
    if (strcmp(cmd, "lua") == 0 && npos == 1) {
        if (strcmp(pos[0], "apply") == 0)
            fputs(score_store_lua_apply(), stdout);
        else if (strcmp(pos[0], "summary") == 0)
            fputs(score_store_lua_summary(), stdout);
        else
            return 2;
        return 0;
    }
    if (strcmp(cmd, "term") == 0 && npos == 1)
        return cmd_term(&c, pos[0]);
    if (strcmp(cmd, "summary") == 0 && npos == 1)
        return cmd_summary(&c, pos[0]);
    if (strcmp(cmd, "drop") == 0 && npos >= 1)
        return cmd_drop(&c, pos, npos);
    usage();
    return 2;
}
