/* bench-ingest: records per second from HTTP roll calls through bx-ingest into Kafka, beside the
 * raw rate of producing the same normalised messages with the same producer settings. */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bx_kafka.h"
#include "bx_log.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCHOOLS       99
#define MAX_CLASSES       99
#define MAX_STUDENTS      99
#define MAX_ERRORS_SHOWN  5
#define RAW_TOPIC_DEFAULT "bx.bench.attendance.v1"

/* Weekdays of 2026-11-16..2026-11-27 (the driven clock stands at 2026-11-27 18:00). 2026-11-20
 * is left out: the integration tests close their own calendar that day. */
static const char *const days[] = {"2026-11-16", "2026-11-17", "2026-11-18",
                                   "2026-11-19", "2026-11-23", "2026-11-24",
                                   "2026-11-25", "2026-11-26", "2026-11-27"};
#define DAY_COUNT ((int)(sizeof(days) / sizeof(days[0])))

typedef struct bench_conf {
    int schools, classes, students; /* classes per school, students per class */
    int days;                       /* school days of roll calls per ingest phase */
    int connections;
    int rounds; /* each round runs both phases; odd rounds raw first, even rounds ingest first */
    int warmup_days;   /* untimed roll calls (and raw messages) before the first round */
    bool rollcall_ids; /* false: no rollcall_id, so bx-ingest does no duplicate check */
    const char *only;  /* NULL, "ingest" or "raw" */
    const char *url;
    const char *keys_file;
    const char *brokers;
    const char *raw_topic;
    char run_id[16];
} bench_conf;

typedef struct school_key {
    char school_id[40];
    char credential_id[40];
    struct curl_slist *headers;
} school_key;

typedef struct phase_result {
    long long records;  /* student facts */
    long long messages; /* student facts + class reports */
    double seconds;
    double cpu_machine, cpu_client; /* CPU seconds: every process on the machine; this one */
    long long errors;
    double p50_ms, p99_ms, max_ms; /* ingest only */
} phase_result;

/* One roll call of the plan: which class, which day, who is absent, on leave or late. */
typedef struct rollcall {
    int school, klass, day;
    long day_number; /* day of the phase, beyond the calendar days when --days is larger */
    int absent[2], leave, late;
} rollcall;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Busy CPU seconds of the whole machine so far (every core), from /proc/stat. */
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
    /* user nice system idle iowait irq softirq steal: all but idle and iowait are busy. */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static double client_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

typedef struct cpu_mark {
    double wall, machine, client;
} cpu_mark;

static void cpu_start(cpu_mark *m)
{
    m->machine = machine_cpu_seconds();
    m->client = client_cpu_seconds();
    m->wall = now_seconds();
}

static void cpu_stop(const cpu_mark *m, phase_result *res)
{
    res->seconds = now_seconds() - m->wall;
    res->cpu_machine = machine_cpu_seconds() - m->machine;
    res->cpu_client = client_cpu_seconds() - m->client;
}

static void school_id(char *out, size_t size, int school)
{
    snprintf(out, size, "BENCH%02d", school + 1);
}

static void class_id(char *out, size_t size, int school, int klass)
{
    snprintf(out, size, "BENCH%02d-C%02d", school + 1, klass + 1);
}

static void student_id(char *out, size_t size, int school, int klass, int student)
{
    snprintf(out, size, "BENCH%02d-C%02d-S%02d", school + 1, klass + 1, student + 1);
}

static void rollcall_id(char *out, size_t size, const bench_conf *c, int round, const rollcall *rc)
{
    snprintf(out, size, "BENCH-%s-r%d-d%ld-S%02dC%02d", c->run_id, round, rc->day_number,
             rc->school + 1, rc->klass + 1);
}

/* The i-th roll call of a phase: day-major, then class across schools so that consecutive
 * requests come from different schools; four distinct exceptions chosen from the index. */
static void plan_rollcall(const bench_conf *c, long i, rollcall *rc)
{
    long per_day = (long)c->schools * c->classes;
    long in_day = i % per_day;
    rc->day_number = i / per_day;
    rc->day = (int)(rc->day_number % DAY_COUNT);
    rc->school = (int)(in_day % c->schools);
    rc->klass = (int)(in_day / c->schools);
    int n = c->students;
    unsigned long long h = (unsigned long long)i * 2654435761ULL + 97;
    int first = (int)(h % (unsigned long long)n);
    int picks[4];
    for (int k = 0; k < 4; k++)
        picks[k] = (first + k * (n / 4 > 0 ? n / 4 : 1)) % n;
    rc->absent[0] = picks[0];
    rc->absent[1] = picks[1];
    rc->leave = picks[2];
    rc->late = picks[3];
}

/* ---------------------------------------------------------------------------------- gen */

static bx_status write_text(const char *dir, const char *name, const bx_buf *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench-ingest: cannot write %s: %s\n", path, strerror(errno));
        return BX_EIO;
    }
    bool ok = fwrite(text->data, 1, text->len, f) == text->len;
    ok = fclose(f) == 0 && ok;
    return ok ? BX_OK : BX_EIO;
}

/* Writes the synthetic registry as bxctl import CSVs and prints the school ids, one a line. */
static int cmd_gen(const bench_conf *c, const char *dir)
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
        s = bx_buf_printf(&b, "%s,基准小学%d,990090100,primary,bench-2026\n", sid, i + 1);
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
    if (s != BX_OK) {
        fprintf(stderr, "bench-ingest gen: cannot write the registry into %s\n", dir);
        return 1;
    }
    for (int i = 0; i < c->schools; i++) {
        school_id(sid, sizeof(sid), i);
        printf("%s\n", sid);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------- keys */

/* Reads "<school_id> bxk_<credential id>_<secret>" lines, one per school in order. */
static bx_status load_keys(const bench_conf *c, school_key *keys)
{
    FILE *f = fopen(c->keys_file, "r");
    if (f == NULL) {
        fprintf(stderr, "bench-ingest: cannot read %s: %s\n", c->keys_file, strerror(errno));
        return BX_EIO;
    }
    char line[512];
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        char school[64], token[256];
        if (sscanf(line, "%63s %255s", school, token) != 2)
            continue;
        int idx = -1;
        for (int i = 0; i < c->schools && idx < 0; i++) {
            char sid[40];
            school_id(sid, sizeof(sid), i);
            if (strcmp(sid, school) == 0)
                idx = i;
        }
        const char *id = strncmp(token, "bxk_", 4) == 0 ? token + 4 : NULL;
        const char *sep = id ? strchr(id, '_') : NULL;
        if (idx < 0 || sep == NULL || sep - id >= (long)sizeof(keys[idx].credential_id))
            continue;
        school_key *k = &keys[idx];
        if (k->headers == NULL)
            found++;
        curl_slist_free_all(k->headers);
        snprintf(k->school_id, sizeof(k->school_id), "%s", school);
        snprintf(k->credential_id, sizeof(k->credential_id), "%.*s", (int)(sep - id), id);
        char header[320];
        snprintf(header, sizeof(header), "Authorization: Bearer %s", token);
        k->headers = curl_slist_append(NULL, header);
        k->headers = curl_slist_append(k->headers, "Content-Type: application/json");
        k->headers = curl_slist_append(k->headers, "Expect:");
    }
    fclose(f);
    if (found != c->schools) {
        fprintf(stderr, "bench-ingest: %s has credentials for %d of %d schools\n", c->keys_file,
                found, c->schools);
        return BX_EINVAL;
    }
    return BX_OK;
}

/* ---------------------------------------------------------------------------------- ingest */

typedef struct slot {
    CURL *easy;
    long index; /* roll call of the phase, -1 when idle */
    double started;
    bx_buf body, reply;
} slot;

static size_t collect_reply(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static bx_status rollcall_body(const bench_conf *c, int round, const rollcall *rc, bx_buf *out)
{
    char cid[40], rid[80], a0[40], a1[40], lv[40], lt[40];
    class_id(cid, sizeof(cid), rc->school, rc->klass);
    rollcall_id(rid, sizeof(rid), c, round, rc);
    student_id(a0, sizeof(a0), rc->school, rc->klass, rc->absent[0]);
    student_id(a1, sizeof(a1), rc->school, rc->klass, rc->absent[1]);
    student_id(lv, sizeof(lv), rc->school, rc->klass, rc->leave);
    student_id(lt, sizeof(lt), rc->school, rc->klass, rc->late);
    bx_buf_reset(out);
    bx_status s = bx_buf_printf(out, "{\"class_id\":\"%s\",\"date\":\"%s\",", cid, days[rc->day]);
    if (c->rollcall_ids)
        IFOK(s, bx_buf_printf(out, "\"rollcall_id\":\"%s\",", rid));
    IFOK(s, bx_buf_printf(out,
                          "\"absent\":[\"%s\",\"%s\"],"
                          "\"leave\":[{\"student_id\":\"%s\",\"leave_kind\":\"sick\"}],"
                          "\"late\":[\"%s\"]}",
                          a0, a1, lv, lt));
    return s;
}

static bx_status start_request(const bench_conf *c, CURLM *multi, slot *sl, const school_key *keys,
                               int round, long index)
{
    rollcall rc;
    plan_rollcall(c, index, &rc);
    bx_status s = rollcall_body(c, round, &rc, &sl->body);
    if (s != BX_OK)
        return s;
    bx_buf_reset(&sl->reply);
    sl->index = index;
    curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER, keys[rc.school].headers);
    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, sl->body.data);
    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sl->body.len);
    sl->started = now_seconds();
    return curl_multi_add_handle(multi, sl->easy) == CURLM_OK ? BX_OK : BX_EIO;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Checks one reply: 200, everything accepted, nothing duplicate, rejected or failed. Returns the
 * accepted count, or -1 after reporting the problem. */
static long check_reply(const bench_conf *c, long status, CURLcode code, const slot *sl,
                        long long *shown)
{
    long accepted = -1;
    const char *problem = NULL;
    cJSON *root = NULL;
    if (code != CURLE_OK) {
        problem = curl_easy_strerror(code);
    } else if (status != 200) {
        problem = "status is not 200";
    } else if ((root = cJSON_ParseWithLength(sl->reply.data ? sl->reply.data : "",
                                             sl->reply.len)) == NULL) {
        problem = "reply is not JSON";
    } else {
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(root, "accepted");
        const cJSON *dup = cJSON_GetObjectItemCaseSensitive(root, "duplicates");
        const cJSON *rej = cJSON_GetObjectItemCaseSensitive(root, "rejected");
        const cJSON *fail = cJSON_GetObjectItemCaseSensitive(root, "failed");
        if (!cJSON_IsNumber(acc) || !cJSON_IsNumber(dup) || !cJSON_IsNumber(rej) ||
            !cJSON_IsNumber(fail))
            problem = "reply lacks accepted/duplicates/rejected/failed";
        else if (dup->valueint || rej->valueint || fail->valueint)
            problem = "reply has duplicates, rejects or failures";
        else if (acc->valueint != c->students + 1)
            problem = "accepted is not the class size plus the class report";
        else
            accepted = acc->valueint;
    }
    cJSON_Delete(root);
    if (problem && (*shown)++ < MAX_ERRORS_SHOWN)
        fprintf(stderr, "bench-ingest: roll call %ld: %s (HTTP %ld): %.300s\n", sl->index, problem,
                status, sl->reply.data ? sl->reply.data : "");
    return accepted;
}

/* POSTs `count` roll calls over c->connections keep-alive connections. */
static bx_status run_ingest(const bench_conf *c, const school_key *keys, int round, long count,
                            phase_result *res)
{
    memset(res, 0, sizeof(*res));
    int conns = c->connections;
    CURLM *multi = curl_multi_init();
    slot *slots = calloc((size_t)conns, sizeof(*slots));
    double *latency = calloc((size_t)count + 1, sizeof(*latency));
    if (multi == NULL || slots == NULL || latency == NULL) {
        curl_multi_cleanup(multi);
        free(slots);
        free(latency);
        return BX_ENOMEM;
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conns);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)conns);
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/rollcall", c->url);
    for (int i = 0; i < conns; i++) {
        slot *sl = &slots[i];
        sl->easy = curl_easy_init();
        sl->index = -1;
        bx_buf_init(&sl->body, 1 << 20);
        bx_buf_init(&sl->reply, 1 << 20);
        curl_easy_setopt(sl->easy, CURLOPT_URL, url);
        curl_easy_setopt(sl->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(sl->easy, CURLOPT_WRITEFUNCTION, collect_reply);
        curl_easy_setopt(sl->easy, CURLOPT_WRITEDATA, &sl->reply);
        curl_easy_setopt(sl->easy, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(sl->easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(sl->easy, CURLOPT_PRIVATE, sl);
    }
    bx_status s = BX_OK;
    long next = 0, done = 0;
    long long accepted = 0, shown_errors = 0;
    int active = 0;
    cpu_mark mark;
    cpu_start(&mark);
    for (int i = 0; i < conns && next < count && s == BX_OK; i++, active++)
        s = start_request(c, multi, &slots[i], keys, round, next++);
    while (active > 0 && s == BX_OK) {
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *easy = m->easy_handle;
            CURLcode code = m->data.result;
            slot *sl = NULL;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&sl);
            long status = 0;
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(multi, easy);
            active--;
            latency[done++] = (now_seconds() - sl->started) * 1000.0;
            long acc = check_reply(c, status, code, sl, &shown_errors);
            if (acc < 0)
                res->errors++;
            else
                accepted += acc;
            sl->index = -1;
            if (next < count && s == BX_OK) {
                s = start_request(c, multi, sl, keys, round, next++);
                active++;
            }
        }
        if (active > 0)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    cpu_stop(&mark, res);
    /* Each accepted count holds the class report: the records are the student facts. */
    res->messages = accepted;
    res->records = accepted - (count - res->errors);
    if (res->errors == 0 && res->records != (long long)count * c->students) {
        fprintf(stderr, "bench-ingest: accepted counts add up to %lld records, expected %lld\n",
                res->records, (long long)count * c->students);
        res->errors++;
    }
    qsort(latency, (size_t)done, sizeof(*latency), compare_double);
    if (done > 0) {
        res->p50_ms = latency[(done - 1) / 2];
        res->p99_ms = latency[(long)((double)(done - 1) * 0.99)];
        res->max_ms = latency[done - 1];
    }
    for (int i = 0; i < conns; i++) {
        if (slots[i].index >= 0)
            curl_multi_remove_handle(multi, slots[i].easy);
        curl_easy_cleanup(slots[i].easy);
        bx_buf_free(&slots[i].body);
        bx_buf_free(&slots[i].reply);
    }
    curl_multi_cleanup(multi);
    free(slots);
    free(latency);
    return s;
}

/* ---------------------------------------------------------------------------------- raw */

typedef struct raw_counts {
    atomic_llong delivered, failed;
} raw_counts;

static void raw_delivered(void *opaque, rd_kafka_resp_err_t err)
{
    raw_counts *rc = opaque;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        atomic_fetch_add(&rc->delivered, 1);
    else
        atomic_fetch_add(&rc->failed, 1);
}

/* Appends "key":"value" or "key":null, as bx-ingest's messages have them. */
static bx_status put_str(bx_buf *b, const char *key, const char *value)
{
    bx_status s = bx_buf_printf(b, ",\"%s\":", key);
    if (value == NULL || *value == '\0')
        IFOK(s, bx_buf_puts(b, "null"));
    else
        IFOK(s, bx_buf_json_string(b, value));
    return s;
}

/* The attendance fact bx-ingest builds for one student of a roll call (records.c,
 * attendance_message), byte for byte. */
static bx_status student_message(const char *event_id, const char *sid, const char *school,
                                 const char *klass, const char *day, const char *status,
                                 const char *leave_kind, const char *rid, const char *at,
                                 const char *by, bx_buf *b)
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
    IFOK(s, put_str(b, "recorded_by", by));
    IFOK(s, bx_buf_puts(b, "}"));
    return s;
}

/* The class report that closes a roll call, as bx-ingest builds it. */
static bx_status class_message(const char *event_id, const char *school, const char *klass,
                               const char *day, const char *rid, int enrolled, const char *at,
                               const char *by, bx_buf *b)
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
    IFOK(s, put_str(b, "recorded_at", at));
    IFOK(s, put_str(b, "recorded_by", by));
    IFOK(s, bx_buf_puts(b, "}"));
    return s;
}

/* A random UUID v4 text, like bx-ingest's event ids for facts of a roll call without an id. */
static void random_event_id(char out[37])
{
    static unsigned long long state = 0x9E3779B97F4A7C15ULL;
    unsigned long long v[2];
    for (int i = 0; i < 2; i++) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        v[i] = state * 2685821657736338717ULL;
    }
    v[0] = (v[0] & ~0xF000ULL) | 0x4000ULL;
    v[1] = (v[1] & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
    snprintf(out, 37, "%08llx-%04llx-%04llx-%04llx-%012llx", v[0] >> 32, (v[0] >> 16) & 0xFFFF,
             v[0] & 0xFFFF, v[1] >> 48, v[1] & 0xFFFFFFFFFFFFULL);
}

static bx_status raw_send(bx_producer *p, const char *topic, const char *key, const bx_buf *value,
                          raw_counts *counts, long long *sent)
{
    bx_status s = bx_producer_send(p, topic, key, strlen(key), value->data, value->len,
                                   raw_delivered, counts);
    if (s == BX_OK)
        (*sent)++;
    return s;
}

/* Waits until `want` deliveries were reported (or failed), at most timeout_s. */
static bool raw_wait(raw_counts *counts, long long want, double timeout_s)
{
    double until = now_seconds() + timeout_s;
    while (atomic_load(&counts->delivered) + atomic_load(&counts->failed) < want) {
        if (now_seconds() > until)
            return false;
        usleep(200);
    }
    return true;
}

/* Produces the messages the ingest phase of the same round produces, keyed like bx-ingest keys
 * them (student id; class id for the class report), and waits for every delivery report. */
static bx_status run_raw(const bench_conf *c, bx_producer *p, const school_key *keys, int round,
                         long count, phase_result *res)
{
    memset(res, 0, sizeof(*res));
    raw_counts counts;
    atomic_init(&counts.delivered, 0);
    atomic_init(&counts.failed, 0);
    char at[40];
    bx_time_format(bx_clock_now(), at, sizeof(at));
    bx_buf msg;
    bx_buf_init(&msg, 1 << 16);
    bx_status s = BX_OK;
    long long sent = 0, records = 0;
    cpu_mark mark;
    cpu_start(&mark);
    for (long i = 0; i < count && s == BX_OK; i++) {
        rollcall rc;
        plan_rollcall(c, i, &rc);
        char sid[40], cid[40], rid[80], stid[40], event_id[136];
        school_id(sid, sizeof(sid), rc.school);
        class_id(cid, sizeof(cid), rc.school, rc.klass);
        rollcall_id(rid, sizeof(rid), c, round, &rc);
        if (!c->rollcall_ids)
            rid[0] = '\0';
        const char *by = keys[rc.school].credential_id;
        for (int n = 0; n < c->students && s == BX_OK; n++) {
            const char *status = "present", *kind = NULL;
            if (n == rc.absent[0] || n == rc.absent[1])
                status = "absent";
            else if (n == rc.leave)
                status = "leave", kind = "sick";
            else if (n == rc.late)
                status = "late";
            student_id(stid, sizeof(stid), rc.school, rc.klass, n);
            if (rid[0])
                snprintf(event_id, sizeof(event_id), "%s:%s", rid, stid);
            else
                random_event_id(event_id);
            s = student_message(event_id, stid, sid, cid, days[rc.day], status, kind, rid, at, by,
                                &msg);
            IFOK(s, raw_send(p, c->raw_topic, stid, &msg, &counts, &sent));
            records++;
        }
        if (rid[0])
            snprintf(event_id, sizeof(event_id), "%s:class", rid);
        else
            random_event_id(event_id);
        IFOK(s, class_message(event_id, sid, cid, days[rc.day], rid, c->students, at, by, &msg));
        IFOK(s, raw_send(p, c->raw_topic, cid, &msg, &counts, &sent));
    }
    bool all = raw_wait(&counts, sent, 120.0);
    cpu_stop(&mark, res);
    bx_buf_free(&msg);
    long long failed = atomic_load(&counts.failed);
    res->messages = atomic_load(&counts.delivered);
    res->records = res->messages - count;
    res->errors = failed + (sent - res->messages - failed);
    if (s != BX_OK || !all || failed)
        fprintf(stderr, "bench-ingest: raw phase: %lld sent, %lld delivered, %lld failed%s%s\n",
                sent, res->messages, failed, all ? "" : ", timed out",
                s != BX_OK ? ", send failed" : "");
    if (s == BX_OK && records + count != sent)
        s = BX_EIO;
    return s;
}

/* The raw topic is only written to be timed: keep it small (5 min retention, 16 MiB segments so
 * retention can drop them). Failure is reported, not fatal. */
static void raw_topic_retention(bx_producer *p, const char *topic)
{
    rd_kafka_t *rk = bx_producer_handle(p);
    char errstr[256];
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_ConfigResource_set_config(res, "retention.ms", "300000");
    rd_kafka_ConfigResource_set_config(res, "segment.bytes", "16777216");
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opts, 10000, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AlterConfigs(rk, &res, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    const char *problem = ev == NULL ? "no answer" : rd_kafka_event_error_string(ev);
    if (ev && !rd_kafka_event_error(ev)) {
        size_t n = 0;
        const rd_kafka_ConfigResource_t **r =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
        problem = n == 1 && rd_kafka_ConfigResource_error(r[0])
                      ? rd_kafka_ConfigResource_error_string(r[0])
                      : NULL;
    }
    if (problem)
        fprintf(stderr, "bench-ingest: %s: retention not set: %s\n", topic, problem);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_ConfigResource_destroy(res);
}

/* Creates the raw topic with the partition count of bx.attendance.v1 and connects the producer
 * (one message delivered), so the timed phase starts warm like bx-ingest's producer. */
static bx_status raw_prepare(const bench_conf *c, bx_producer *p, int *partitions)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_t *rk = bx_producer_handle(p);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, BX_TOPIC_ATTENDANCE, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 || md->topics[0].partition_cnt < 1) {
        fprintf(stderr, "bench-ingest: no metadata for %s (run bxctl topics create): %s\n",
                BX_TOPIC_ATTENDANCE, rd_kafka_err2str(e));
        if (md)
            rd_kafka_metadata_destroy(md);
        return BX_EIO;
    }
    *partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    bx_error err = {0};
    const char *topics[] = {c->raw_topic};
    if (bx_kafka_create_topics(c->brokers, topics, partitions, 1, 15000, &err) != BX_OK) {
        fprintf(stderr, "bench-ingest: %s\n", err.msg);
        return BX_EIO;
    }
    raw_topic_retention(p, c->raw_topic);
    raw_counts counts;
    atomic_init(&counts.delivered, 0);
    atomic_init(&counts.failed, 0);
    static const char warm[] = "{\"schema\":\"bx.bench.warmup\"}";
    for (int attempt = 0; attempt < 20; attempt++) {
        if (bx_producer_send(p, c->raw_topic, "warmup", 6, warm, sizeof(warm) - 1, raw_delivered,
                             &counts) != BX_OK)
            return BX_EIO;
        if (!raw_wait(&counts, attempt + 1, 30.0))
            return BX_ETIMEOUT;
        if (atomic_load(&counts.delivered) > 0)
            return BX_OK; /* a freshly created topic may refuse the first tries */
        usleep(250 * 1000);
    }
    fprintf(stderr, "bench-ingest: %s does not take messages\n", c->raw_topic);
    return BX_EIO;
}

/* ---------------------------------------------------------------------------------- run */

static void print_header(void)
{
    printf("%-16s %9s %8s %10s %8s %8s %8s %9s %8s %8s\n", "phase", "records", "seconds",
           "records/s", "p50 ms", "p99 ms", "max ms", "cpu s", "client s", "cpu us/r");
}

/* cpu s: busy CPU seconds of the whole machine (broker, PostgreSQL, bx-ingest, this client);
 * client s: this process; cpu us/r: machine CPU microseconds per record. */
static void print_row(const char *name, const phase_result *r)
{
    double rate = r->seconds > 0 ? (double)r->records / r->seconds : 0;
    printf("%-16s %9lld %8.3f %10.0f", name, r->records, r->seconds, rate);
    if (r->p50_ms > 0)
        printf(" %8.1f %8.1f %8.1f", r->p50_ms, r->p99_ms, r->max_ms);
    else
        printf(" %8s %8s %8s", "-", "-", "-");
    printf(" %9.2f %8.2f %8.1f%s\n", r->cpu_machine, r->cpu_client,
           r->records > 0 ? r->cpu_machine * 1e6 / (double)r->records : 0,
           r->errors ? "  ERRORS" : "");
}

static void add_result(phase_result *total, const phase_result *r)
{
    total->records += r->records;
    total->messages += r->messages;
    total->seconds += r->seconds;
    total->cpu_machine += r->cpu_machine;
    total->cpu_client += r->cpu_client;
    total->errors += r->errors;
}

static int cmd_run(const bench_conf *c)
{
    school_key *keys = calloc((size_t)c->schools, sizeof(*keys));
    if (keys == NULL || load_keys(c, keys) != BX_OK) {
        free(keys);
        return 2;
    }
    bool do_ingest = c->only == NULL || strcmp(c->only, "ingest") == 0;
    bool do_raw = c->only == NULL || strcmp(c->only, "raw") == 0;
    long count = (long)c->days * c->schools * c->classes;
    bx_error err = {0};
    bx_producer *p = NULL;
    /* bx-ingest's producer exactly: bx_producer_new with message.timeout.ms = BX_ACK_TIMEOUT_MS. */
    const char *extra[] = {"message.timeout.ms", "15000", NULL};
    if (bx_producer_new(c->brokers, extra, &p, &err) != BX_OK) {
        fprintf(stderr, "bench-ingest: %s\n", err.msg);
        return 2;
    }
    int partitions = 0;
    if (raw_prepare(c, p, &partitions) != BX_OK) {
        bx_producer_free(p, 1000);
        return 2;
    }
    /* Warm-up, untimed: connections, bx-ingest's threads, and the broker's JIT, which makes the
     * first seconds of a fresh broker markedly slower. Round 0 ids. */
    if (c->warmup_days > 0) {
        bench_conf warm = *c;
        warm.days = c->warmup_days;
        long wcount = (long)warm.days * c->schools * c->classes;
        phase_result wr, wi;
        memset(&wr, 0, sizeof(wr));
        memset(&wi, 0, sizeof(wi));
        if ((do_raw && (run_raw(&warm, p, keys, 0, wcount, &wr) != BX_OK || wr.errors)) ||
            (do_ingest && (run_ingest(&warm, keys, 0, wcount, &wi) != BX_OK || wi.errors))) {
            fprintf(stderr, "bench-ingest: warm-up failed\n");
            bx_producer_free(p, 1000);
            return 1;
        }
    }
    printf("bench-ingest run %s: %ld roll calls x %d students = %ld records per phase "
           "(+%ld class reports), %d connections, %d rounds, %s\n",
           c->run_id, count, c->students, count * c->students, count, c->connections, c->rounds,
           c->rollcall_ids ? "with rollcall_id (duplicate checks)"
                           : "without rollcall_id (no duplicate checks)");
    printf("ingest: POST %s/v1/rollcall -> %s; raw: bx_producer -> %s (%d partitions); "
           "%ld cores\n\n",
           c->url, BX_TOPIC_ATTENDANCE, c->raw_topic, partitions, sysconf(_SC_NPROCESSORS_ONLN));
    print_header();
    phase_result total_ingest = {0}, total_raw = {0};
    int failed = 0;
    for (int round = 1; round <= c->rounds; round++) {
        phase_result ing, raw;
        memset(&ing, 0, sizeof(ing));
        memset(&raw, 0, sizeof(raw));
        bool raw_first = round % 2 == 1;
        bx_status si = BX_OK, sr = BX_OK;
        if (do_raw && raw_first)
            sr = run_raw(c, p, keys, round, count, &raw);
        if (do_ingest)
            si = run_ingest(c, keys, round, count, &ing);
        if (do_raw && !raw_first)
            sr = run_raw(c, p, keys, round, count, &raw);
        char name[32];
        if (do_raw) {
            snprintf(name, sizeof(name), "raw r%d%s", round,
                     !do_ingest  ? ""
                     : raw_first ? " 1st"
                                 : " 2nd");
            print_row(name, &raw);
        }
        if (do_ingest) {
            snprintf(name, sizeof(name), "ingest r%d%s", round,
                     !do_raw     ? ""
                     : raw_first ? " 2nd"
                                 : " 1st");
            print_row(name, &ing);
        }
        if (si != BX_OK || sr != BX_OK || ing.errors || raw.errors)
            failed = 1;
        add_result(&total_ingest, &ing);
        add_result(&total_raw, &raw);
        fflush(stdout);
    }
    double ingest_rate = total_ingest.seconds > 0 ? total_ingest.records / total_ingest.seconds : 0;
    double raw_rate = total_raw.seconds > 0 ? total_raw.records / total_raw.seconds : 0;
    printf("\n");
    if (do_raw)
        print_row("raw (all)", &total_raw);
    if (do_ingest)
        print_row("ingest (all)", &total_ingest);
    if (do_raw && do_ingest) {
        double ratio = raw_rate > 0 ? ingest_rate / raw_rate : 0;
        bool ratio_met = ratio >= 0.5, rate_met = ingest_rate >= 20000;
        printf("\ningest/raw: %.3f (%.1f%% of the raw rate); targets >= 50%% and >= 20000 "
               "records/s: %s\n",
               ratio, ratio * 100,
               failed                  ? "ERRORS (see above)"
               : ratio_met && rate_met ? "met"
               : ratio_met             ? "not met (records/s)"
               : rate_met              ? "not met (ratio)"
                                       : "not met (ratio, records/s)");
    }
    bx_producer_free(p, 10000);
    for (int i = 0; i < c->schools; i++)
        curl_slist_free_all(keys[i].headers);
    free(keys);
    return failed;
}

/* ---------------------------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-ingest gen <dir> [options]   write the synthetic registry CSVs\n"
            "       bench-ingest run --url URL --keys FILE [options]\n"
            "options:\n"
            "  --schools N       schools (default 20)\n"
            "  --classes N       classes per school (default 25)\n"
            "  --students N      students per class (default 40)\n"
            "  --days N          school days of roll calls per phase (default 20)\n"
            "  --connections N   parallel keep-alive HTTP connections (default 128)\n"
            "  --rounds N        rounds of both phases, order alternating (default 3)\n"
            "  --warmup-days N   untimed roll calls before the rounds, in days (default 1)\n"
            "  --only PHASE      ingest or raw: run one phase only (for profiling)\n"
            "  --no-rollcall-id  roll calls without rollcall_id: bx-ingest skips its PostgreSQL\n"
            "                    duplicate check (an A/B of that cost)\n"
            "  --raw-topic T     topic of the raw phase (default " RAW_TOPIC_DEFAULT ")\n"
            "environment: BX_KAFKA_BROKERS, BX_CLOCK (recorded_at of the raw messages)\n");
}

static bool int_arg(const char *text, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

int main(int argc, char **argv)
{
    bench_conf c = {20, 25, 40, 20, 128, 3, 1, true, NULL, NULL, NULL, NULL, RAW_TOPIC_DEFAULT, ""};
    const char *brokers = getenv("BX_KAFKA_BROKERS");
    c.brokers = brokers && *brokers ? brokers : "127.0.0.1:19092";
    snprintf(c.run_id, sizeof(c.run_id), "%lx", (unsigned long)time(NULL));
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    const char *dir = NULL;
    int i = 2;
    if (strcmp(cmd, "gen") == 0 && argc > 2)
        dir = argv[i++];
    for (; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--no-rollcall-id") == 0) {
            c.rollcall_ids = false;
            continue;
        }
        bool ok = val != NULL;
        if (ok && strcmp(opt, "--schools") == 0)
            ok = int_arg(val, 1, MAX_SCHOOLS, &c.schools);
        else if (ok && strcmp(opt, "--classes") == 0)
            ok = int_arg(val, 1, MAX_CLASSES, &c.classes);
        else if (ok && strcmp(opt, "--students") == 0)
            ok = int_arg(val, 4, MAX_STUDENTS, &c.students);
        else if (ok && strcmp(opt, "--days") == 0)
            ok = int_arg(val, 1, 1000, &c.days);
        else if (ok && strcmp(opt, "--connections") == 0)
            ok = int_arg(val, 1, 1024, &c.connections);
        else if (ok && strcmp(opt, "--rounds") == 0)
            ok = int_arg(val, 1, 100, &c.rounds);
        else if (ok && strcmp(opt, "--warmup-days") == 0)
            ok = int_arg(val, 0, 1000, &c.warmup_days);
        else if (ok && strcmp(opt, "--only") == 0) {
            c.only = val;
            ok = strcmp(val, "ingest") == 0 || strcmp(val, "raw") == 0;
        } else if (ok && strcmp(opt, "--url") == 0)
            c.url = val;
        else if (ok && strcmp(opt, "--keys") == 0)
            c.keys_file = val;
        else if (ok && strcmp(opt, "--raw-topic") == 0)
            c.raw_topic = val;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "bench-ingest: bad option %s %s\n", opt, val ? val : "");
            usage();
            return 2;
        }
        i++;
    }
    if (strcmp(cmd, "gen") == 0 && dir)
        return cmd_gen(&c, dir);
    if (strcmp(cmd, "run") != 0 || c.url == NULL || c.keys_file == NULL) {
        usage();
        return 2;
    }
    bx_log_init("bench-ingest", BX_LOG_WARN);
    bx_error err = {0};
    if (bx_clock_init(getenv("BX_CLOCK"), &err) != BX_OK) {
        fprintf(stderr, "bench-ingest: BX_CLOCK: %s\n", err.msg);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmd_run(&c);
    curl_global_cleanup();
    return rc;
}
