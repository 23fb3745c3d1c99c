/* bx_itest: integration test helpers (processes, HTTP, Kafka reading). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "bx_kafka.h"
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_test.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *itest_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* The temporary folders this test made, removed when it ends without a failure (kept for a look
 * when it fails, or with BX_KEEP_TMP=1). Only the process that made them removes them: a forked
 * child that exits runs the same atexit handlers. */
#define TMPDIRS_MAX 64
static char *tmpdirs[TMPDIRS_MAX];
static int ntmpdirs;
static pid_t tmpdirs_owner;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tmpdirs(void)
{
    if (getpid() != tmpdirs_owner || bx_test_failures > 0 || getenv("BX_KEEP_TMP") != NULL)
        return;
    for (int i = 0; i < ntmpdirs; i++)
        nftw(tmpdirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *itest_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof(tmpl), "/tmp/bx-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    REQUIRE(d != NULL);
    if (ntmpdirs == 0) {
        tmpdirs_owner = getpid();
        atexit(remove_tmpdirs);
    }
    if (ntmpdirs < TMPDIRS_MAX && getpid() == tmpdirs_owner)
        tmpdirs[ntmpdirs++] = strdup(d);
    return strdup(d);
}

void itest_write_file(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs(content, f);
    fclose(f);
}

/* The process environment with extra "NAME=value" entries replacing same-named ones. */
static void build_env(const char *const *extra, char **out, size_t max)
{
    size_t n = 0;
    for (char **e = environ; *e && n + 1 < max; e++) {
        size_t name_len = strcspn(*e, "=");
        bool replaced = false;
        for (size_t i = 0; extra && extra[i] && !replaced; i++)
            replaced = strncmp(extra[i], *e, name_len + 1) == 0;
        if (!replaced)
            out[n++] = *e;
    }
    for (size_t i = 0; extra && extra[i] && n + 1 < max; i++)
        out[n++] = (char *)extra[i];
    out[n] = NULL;
}

int itest_run(const char *const *argv, const char *const *env, bx_buf *out)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        char *envp[512];
        build_env(env, envp, 512);
        execve(argv[0], (char *const *)argv, envp);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fds[0], chunk, sizeof(chunk))) > 0)
        if (out && bx_buf_append(out, chunk, (size_t)n) != BX_OK)
            break;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void itest_run_ok(const char *const *argv, const char *const *env, bx_buf *out)
{
    bx_buf own;
    bx_buf_init(&own, 1 << 24);
    bx_buf *b = out ? out : &own;
    int rc = itest_run(argv, env, b);
    if (rc != 0)
        fprintf(stderr, "%s %s failed (%d): %s\n", argv[0], argv[1], rc, b->data ? b->data : "");
    bx_buf_free(&own);
    REQUIRE(rc == 0);
}

const char *itest_holidays_csv(void)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/policy/cn-public-holidays-2026.csv",
             itest_env("BX_SOURCE_DIR", "."));
    return path;
}

const char *itest_id_prefix(char first)
{
    static char prefix[9];
    if (prefix[0] == '\0') {
        unsigned n = (unsigned)getpid();
        int i = 0;
        prefix[i++] = first;
        while (n && i < 8) {
            prefix[i++] = (char)('a' + n % 26);
            n /= 26;
        }
    }
    return prefix;
}

void itest_redis_setting(char *out, size_t size, const char *db)
{
    const char *redis = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    const char *db_part = strchr(redis + strlen("redis://"), '/');
    int base = db_part ? (int)(db_part - redis) : (int)strlen(redis);
    snprintf(out, size, "BX_REDIS_URL=%.*s/%s", base, redis, db);
}

void itest_redis_flush(const char *db)
{
    const char *url = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    char host[128] = "127.0.0.1";
    int port = 63799;
    if (sscanf(url, "redis://%127[^:/]:%d", host, &port) < 1)
        REQUIRE(!"BX_REDIS_URL");
    redisContext *r = redisConnect(host, port);
    REQUIRE(r != NULL && !r->err);
    REQUIRE(bx_redis_auth(r, &(bx_error){0}) == BX_OK);
    redisReply *rep = redisCommand(r, "SELECT %s", db);
    REQUIRE(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    rep = redisCommand(r, "FLUSHDB");
    REQUIRE(rep != NULL && rep->type != REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redisFree(r);
}

static const char *bxctl_bin(void)
{
    return itest_env("BXCTL_BIN", BXCTL_BIN);
}

static char *run_bxctl_capture(const char *const *args)
{
    const char *argv[16] = {bxctl_bin()};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    bx_buf out;
    bx_buf_init(&out, 1 << 20);
    int rc = itest_run(argv, NULL, &out);
    if (rc != 0) {
        fprintf(stderr, "bxctl %s failed (%d): %s\n", args[0], rc, out.data ? out.data : "");
        REQUIRE(rc == 0);
    }
    return bx_buf_steal(&out);
}

static char *first_line_with(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    REQUIRE(p != NULL);
    size_t n = strcspn(p, "\n");
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

char *itest_registry_fixture(char **other)
{
    char *dir = itest_tmpdir("registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-03-02,2026-07-10,2026-spring\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n"
                     "it-2026,closure,2026-11-20,2026-11-20,停电\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "IT01,测试小学,990001100,primary,it-2026\n"
                     "IT02,测试中学,990001100,junior,it-2026\n");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "ITT1,李老师,homeroom_teacher,IT01,,,\n"
                     "ITT2,王老师,homeroom_teacher,IT01,,,\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\n"
                     "ITC1,IT01,3,三年级1班,ITT1\nITC2,IT01,4,四年级1班,ITT2\n"
                     "ITC3,IT02,7,七年级1班,\nITC4,IT01,5,五年级1班,\n");
    bx_buf students;
    bx_buf_init(&students, 0);
    REQUIRE(bx_buf_puts(&students, "student_id,school_id,class_id,name\n") == BX_OK);
    for (int i = 1; i <= 15; i++)
        REQUIRE(bx_buf_printf(&students, "ITS%02d,IT01,%s,学生%d\n", i, i <= 10 ? "ITC1" : "ITC2",
                              i) == BX_OK);
    REQUIRE(bx_buf_puts(&students, "ITS20,IT02,ITC3,学生20\n") == BX_OK);
    itest_write_file(dir, "students.csv", students.data);
    bx_buf_free(&students);

    char holidays[512];
    snprintf(holidays, sizeof(holidays), "%s/deploy/policy/cn-public-holidays-2026.csv",
             itest_env("BX_SOURCE_DIR", "."));
    free(run_bxctl_capture((const char *[]){"import", "holidays", holidays, NULL}));
    free(run_bxctl_capture((const char *[]){"import", "--dir", dir, NULL}));
    char *out = run_bxctl_capture((const char *[]){"key", "create", "IT01", "itest", NULL});
    char *key = first_line_with(out, "bxk_");
    free(out);
    if (other) {
        out = run_bxctl_capture((const char *[]){"key", "create", "IT02", "itest", NULL});
        *other = first_line_with(out, "bxk_");
        free(out);
    }
    free(dir);
    return key;
}

char *itest_clock_file(const char *local_time)
{
    char *dir = itest_tmpdir("clock");
    char path[512], env_clock[600];
    snprintf(path, sizeof(path), "%s/clock", dir);
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", path);
    const char *argv[] = {bxctl_bin(), "clock", "set", local_time, NULL};
    const char *env[] = {env_clock, NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run(argv, env, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl clock set: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
    free(dir);
    return strdup(path);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static long get_status(const char *url)
{
    CURL *c = curl_easy_init();
    bx_buf sink;
    bx_buf_init(&sink, 1 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    bx_buf_free(&sink);
    return status;
}

/* Services a test started: stopped when the test exits, even through REQUIRE. */
/* The credentials bx-infra made for one service (the binary's name): the NAME=value lines of
 * $BX_RUN_DIR/secrets/<service>.env ("export " allowed), appended to env[*n..max-1]. They name
 * files and users, never hold a password. Without the file (an infrastructure without
 * credentials) nothing is added. A service that pseudonymises gets a key made for this test
 * process when the environment has none (there is no default key). */
static void service_credentials(const char *binary, const char **env, size_t *n, size_t max)
{
    const char *name = strrchr(binary, '/');
    name = name ? name + 1 : binary;
    char path[600];
    snprintf(path, sizeof(path), "%s/secrets/%s.env", itest_env("BX_RUN_DIR", ".run"), name);
    FILE *f = fopen(path, "r");
    /* static: the child started next copies them; the next start may overwrite them */
    static char lines[16][600];
    char line[600];
    size_t used = 0;
    while (f && used < 16 && fgets(line, sizeof(line), f) && *n + 1 < max) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = strncmp(line, "export ", 7) == 0 ? line + 7 : line;
        if (*p == '\0' || *p == '#' || strchr(p, '=') == NULL)
            continue;
        snprintf(lines[used], sizeof(lines[used]), "%s", p);
        env[(*n)++] = lines[used++];
    }
    if (f)
        fclose(f);
    static char key[80];
    if (getenv("BX_PSEUDONYM_KEY") == NULL && *n + 1 < max) {
        if (key[0] == '\0') {
            unsigned char raw[24] = {0};
            FILE *r = fopen("/dev/urandom", "rb");
            REQUIRE(r != NULL && fread(raw, 1, sizeof(raw), r) == sizeof(raw));
            fclose(r);
            int k = snprintf(key, sizeof(key), "BX_PSEUDONYM_KEY=");
            for (size_t i = 0; i < sizeof(raw); i++)
                k += snprintf(key + k, sizeof(key) - (size_t)k, "%02x", raw[i]);
        }
        env[(*n)++] = key;
    }
}

static pid_t started[16];
static int started_count;

static void stop_started(void)
{
    for (int i = 0; i < started_count; i++)
        itest_stop(started[i]);
    started_count = 0;
}

/* Starts binary (name in messages) with env (NULL-ended), stopped at exit unless the test stops
 * it first, and waits up to 30 s for url (its /healthz) to answer 200: the test fails when it
 * exits or does not answer by then. */
static pid_t start_healthy(const char *binary, const char *name, const char *const *env,
                           const char *url)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        char *envp[512];
        build_env(env, envp, 512);
        execve(binary, (char *const[]){(char *)binary, NULL}, envp);
        _exit(127);
    }
    if (started_count == 0)
        atexit(stop_started);
    if (started_count < 16)
        started[started_count++] = pid;
    for (int i = 0; i < 300; i++) {
        if (get_status(url) == 200)
            return pid;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "%s exited during start (status %d)\n", name, status);
            REQUIRE(false);
        }
        usleep(100 * 1000);
    }
    itest_stop(pid);
    fprintf(stderr, "%s did not become healthy in 30 s\n", name);
    REQUIRE(!"the service did not become healthy in 30 s");
    return -1;
}

pid_t itest_ingest_start(const char *clock_file, const char *const *extra_env, int *port)
{
    *port = free_port();
    char listen[64], clock_env[600];
    snprintf(listen, sizeof(listen), "BX_HTTP_LISTEN=127.0.0.1:%d", *port);
    snprintf(clock_env, sizeof(clock_env), "BX_CLOCK=file:%s", clock_file);
    const char *env[64] = {listen, clock_env, "BX_REGISTRY_REFRESH_MS=200"};
    size_t n = 3;
    bool tls = false;
    for (size_t i = 0; extra_env && extra_env[i] && n < 63; i++) {
        env[n++] = extra_env[i];
        tls = tls || strncmp(extra_env[i], "BX_TLS_CERT=", 12) == 0;
    }
    /* after the test's own settings, which come first in the environment and so win */
    service_credentials(itest_env("BX_INGEST_BIN", BX_INGEST_BIN), env, &n, 63);
    env[n] = NULL;
    char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/healthz", tls ? "https" : "http", *port);
    return start_healthy(itest_env("BX_INGEST_BIN", BX_INGEST_BIN), "bx-ingest", env, url);
}

void itest_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    for (int i = 0; i < started_count; i++)
        if (started[i] == pid)
            started[i] = started[--started_count];
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(100 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int itest_wait_exit(pid_t pid, int timeout_ms)
{
    int status = 0;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            for (int i = 0; i < started_count; i++)
                if (started[i] == pid)
                    started[i] = started[--started_count];
            return status;
        }
        usleep(50 * 1000);
    }
    return -1;
}

pid_t itest_service_start(const char *binary, const char *clock_file, const char *const *extra_env,
                          int *port)
{
    *port = free_port();
    char listen[64], clock_env[600];
    snprintf(listen, sizeof(listen), "BX_METRICS_LISTEN=127.0.0.1:%d", *port);
    snprintf(clock_env, sizeof(clock_env), "BX_CLOCK=file:%s", clock_file);
    const char *env[64] = {listen, clock_env};
    size_t n = 2;
    for (size_t i = 0; extra_env && extra_env[i] && n < 63; i++)
        env[n++] = extra_env[i];
    service_credentials(binary, env, &n, 63); /* after the test's own settings, which win */
    env[n] = NULL;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", *port);
    return start_healthy(binary, binary, env, url);
}

pid_t itest_fakesms_start(const char *const *extra_env, int *port)
{
#ifdef BX_FAKESMS_BIN
    *port = free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "BX_FAKESMS_LISTEN=127.0.0.1:%d", *port);
    const char *env[32] = {listen};
    size_t n = 1;
    for (size_t i = 0; extra_env && extra_env[i] && n < 31; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    const char *bin = itest_env("BX_FAKESMS_BIN", BX_FAKESMS_BIN);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", *port);
    return start_healthy(bin, "bx-fakesms", env, url);
#else
    (void)extra_env;
    (void)port;
    REQUIRE(!"this build has no bx-fakesms target");
    return -1;
#endif
}

long long itest_metric(int port, const char *name)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    CURL *c = curl_easy_init();
    bx_buf body;
    bx_buf_init(&body, 4 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    long long value = -1;
    size_t name_len = strlen(name);
    if (curl_easy_perform(c) == CURLE_OK && body.data) {
        for (const char *line = body.data; *line;) {
            if (strncmp(line, name, name_len) == 0 && line[name_len] == ' ') {
                value = strtoll(line + name_len + 1, NULL, 10);
                break;
            }
            const char *nl = strchr(line, '\n');
            if (nl == NULL)
                break;
            line = nl + 1;
        }
    }
    curl_easy_cleanup(c);
    bx_buf_free(&body);
    return value;
}

bool itest_post(const char *url, const char *key, const char *content_type, const char *body,
                size_t len, itest_response *resp)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char line[512];
    if (key) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", key);
        h = curl_slist_append(h, line);
    }
    if (content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Expect:");
    bx_buf_init(&resp->body, 64 << 20);
    resp->status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp->body);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc == CURLE_OK;
}

struct itest_mark {
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *parts;
};

rd_kafka_t *itest_group_handle(const char *group)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers",
                              itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), errstr,
                              sizeof(errstr)) == 0);
    REQUIRE(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) == 0);
    REQUIRE(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) == 0);
    REQUIRE(bx_kafka_conf_credentials(conf, &(bx_error){0}) == BX_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    return rk;
}

rd_kafka_topic_partition_list_t *itest_group_at_end(const char *group, const char *topic)
{
    rd_kafka_t *rk = itest_group_handle(group);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    REQUIRE(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(md->topic_cnt == 1 && md->topics[0].partition_cnt > 0);
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++) {
        int64_t lo = 0, hi = 0;
        int32_t id = md->topics[0].partitions[p].id;
        REQUIRE(rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, 10000) == 0);
        rd_kafka_topic_partition_list_add(parts, topic, id)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    REQUIRE(rd_kafka_commit(rk, parts, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
    return parts;
}

itest_mark *itest_topic_mark(const char *topic)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"),
                      errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "bx-itest-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", errstr, sizeof(errstr));
    REQUIRE(bx_kafka_conf_credentials(conf, &(bx_error){0}) == BX_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    REQUIRE(rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(md->topic_cnt == 1 && md->topics[0].partition_cnt > 0);
    itest_mark *m = calloc(1, sizeof(*m));
    m->rk = rk;
    m->parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++) {
        int64_t lo = 0, hi = 0;
        REQUIRE(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) ==
                RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_add(m->parts, topic, p)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    REQUIRE(rd_kafka_assign(rk, m->parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
    return m;
}

int itest_topic_collect(itest_mark *m, const char *needle, int want, int timeout_ms, bx_buf *out)
{
    int found = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (found >= want || elapsed > timeout_ms)
            break;
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, 100);
        if (msg == NULL)
            continue;
        if (!msg->err && msg->payload) {
            char *v = strndup(msg->payload, msg->len);
            if (strstr(v, needle)) {
                found++;
                if (out) {
                    REQUIRE(bx_buf_puts(out, v) == BX_OK);
                    REQUIRE(bx_buf_puts(out, "\n") == BX_OK);
                }
            }
            free(v);
        }
        rd_kafka_message_destroy(msg);
    }
    return found;
}

/* A handle being destroyed on a thread of its own. */
typedef struct destroying {
    rd_kafka_t *rk;
    atomic_bool done;
} destroying;

static void *destroy_main(void *arg)
{
    destroying *d = arg;
    rd_kafka_destroy_flags(d->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    atomic_store(&d->done, true);
    return NULL;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* rd_kafka_destroy of a consumer, waiting for it up to timeout_ms. librdkafka 2.0.2 can wait for
 * ever in it: a consumer whose group's ACLs were taken away while it was a member keeps a broker
 * thread that never ends (seen in test_analyst_access, stuck in the join of rdk:main). A destroy
 * that has not ended by then is left to the process's exit, on its thread, and said. */
static void destroy_within(rd_kafka_t *rk, int timeout_ms)
{
    destroying *d = calloc(1, sizeof(*d));
    REQUIRE(d != NULL);
    d->rk = rk;
    atomic_init(&d->done, false);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, destroy_main, d) == 0);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!atomic_load(&d->done) && elapsed_ms(&start) < timeout_ms)
        usleep(20 * 1000);
    if (atomic_load(&d->done)) {
        pthread_join(t, NULL);
        free(d);
        return;
    }
    fprintf(stderr,
            "itest: a consumer's rd_kafka_destroy did not end within %d ms; left to the "
            "process's exit\n",
            timeout_ms);
    pthread_detach(t); /* d stays the thread's */
}

void itest_close_consumer(rd_kafka_t *rk, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(rk, q);
    if (e != NULL)
        rd_kafka_error_destroy(e);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (e == NULL && !rd_kafka_consumer_closed(rk) && elapsed_ms(&start) < timeout_ms) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
        if (ev != NULL)
            rd_kafka_event_destroy(ev);
    }
    if (!rd_kafka_consumer_closed(rk))
        fprintf(stderr, "itest: a consumer did not close within %d ms; destroyed without it\n",
                timeout_ms);
    rd_kafka_queue_destroy(q);
    destroy_within(rk, timeout_ms);
}

void itest_mark_free(itest_mark *m)
{
    if (m == NULL)
        return;
    rd_kafka_topic_partition_list_destroy(m->parts);
    itest_close_consumer(m->rk, 10000);
    free(m);
}

/* ---- a migrated database of the test's own ---- */

static char own_db_name[64];
static char own_db_url[512];
static char own_admin_url[512];
static pid_t own_db_owner; /* only the process that created the database drops it */

/* The URL of the same server with another database name. */
static void url_with_db(const char *base, const char *name, char *out, size_t size)
{
    const char *query = strchr(base, '?');
    size_t head = query ? (size_t)(query - base) : strlen(base);
    const char *slash = NULL;
    for (const char *p = base; p < base + head; p++)
        if (*p == '/')
            slash = p;
    REQUIRE(slash != NULL && slash > base && slash[-1] != '/');
    snprintf(out, size, "%.*s/%s%s", (int)(slash - base), base, name, query ? query : "");
}

static void admin_exec(const char *sql)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(own_admin_url, 5000, &db, &err) == BX_OK);
    if (bx_pg_exec(db, sql, &err) != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    PQfinish(db);
}

static void drop_own_database(void)
{
    if (getpid() != own_db_owner || own_db_name[0] == '\0')
        return;
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", own_db_name);
    admin_exec(sql);
}

const char *itest_own_database(const char *tag)
{
    if (own_db_url[0])
        return own_db_url;
    const char *base = itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(own_db_name, sizeof(own_db_name), "bx_itest_%s_%d_%ld", tag, (int)getpid(),
             (long)(ts.tv_nsec / 1000));
    url_with_db(base, "postgres", own_admin_url, sizeof(own_admin_url));
    url_with_db(base, own_db_name, own_db_url, sizeof(own_db_url));
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", own_db_name);
    admin_exec(sql);
    own_db_owner = getpid();
    atexit(drop_own_database);
    char env_url[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", own_db_url);
    const char *env[] = {env_url, NULL};
    const char *argv[] = {bxctl_bin(), "migrate", NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = itest_run(argv, env, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl migrate: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
    return own_db_url;
}

void itest_sql_exec(const char *url, const char *sql)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(url, 5000, &db, &err) == BX_OK);
    bx_status s = bx_pg_exec(db, sql, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(s == BX_OK);
    PQfinish(db);
}

int itest_bxctl(const char *db_url, const char *clock_path, const char *const *args, char **out)
{
    char env_url[600], env_clock[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", db_url);
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", clock_path ? clock_path : "");
    const char *env[] = {env_url, clock_path ? env_clock : NULL, NULL};
    return itest_bxctl_env(args, env, out);
}

int itest_bxctl_env(const char *const *args, const char *const *env, char **out)
{
    const char *argv[24] = {itest_env("BXCTL_BIN", BXCTL_BIN)};
    size_t n = 1;
    for (; args[n - 1] && n < 23; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "") == BX_OK);
    int rc = itest_run(argv, env, &b);
    if (out)
        *out = bx_buf_steal(&b);
    else
        bx_buf_free(&b);
    return rc;
}

char *itest_sql_rows_params(const char *url, const char *sql, int nparams,
                            const char *const *params)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(url, 5000, &db, &err) == BX_OK);
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db, sql, nparams, params, &res, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(s == BX_OK);
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "") == BX_OK);
    for (int r = 0; r < PQntuples(res); r++)
        for (int c = 0; c < PQnfields(res); c++)
            REQUIRE(bx_buf_printf(&b, "%s%s", PQgetvalue(res, r, c),
                                  c + 1 < PQnfields(res) ? "|" : "\n") == BX_OK);
    PQclear(res);
    PQfinish(db);
    return bx_buf_steal(&b);
}

char *itest_sql_rows(const char *url, const char *sql)
{
    return itest_sql_rows_params(url, sql, 0, NULL);
}

long long itest_sql_count(const char *url, const char *sql)
{
    char *rows = itest_sql_rows(url, sql);
    long long n = rows ? strtoll(rows, NULL, 10) : -1;
    free(rows);
    return n;
}

char *itest_untag(char *text, const char *tag)
{
    size_t n = strlen(tag);
    char *w = text;
    for (const char *r = text; *r;) {
        if (strncmp(r, tag, n) == 0) {
            *w++ = 'T';
            r += n;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return text;
}
