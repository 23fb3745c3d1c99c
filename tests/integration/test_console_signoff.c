/* The township officer's sign-off of the return report (复学报告书) in bx-console, against the real
 * PostgreSQL and Kafka: a case reaches return_report_signoff in bx-escalate (its assessment and the
 * school's unsigned return produced straight to Kafka), the officer, activated by the SMS code as
 * a person would be, signs in, finds the case on the township's list and signs it off; the
 * `returned` reaches bx.actions.v1 with the officer as signer and recorded_by, and the case closes.
 * A teacher and another township's officer get 404 and write nothing; a forged CSRF token writes
 * nothing. Each case has its own database, risk topic, consumer group and clock; bx-console and
 * bx-escalate run as processes. */
#include "bx_clock.h"
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_test.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Password of the accounts made directly (argon2id of "pages-Test-2026", libsodium's
 * interactive limits); the first officer sets their own through the activation form. */
#define TEST_PASSWORD "pages-Test-2026"
#define TEST_PWHASH                                                                                \
    "$argon2id$v=19$m=65536,t=2,p=1$782mBQ1hjBtyj594HOWCfA$JA+onWjza4kEg9VgdiK+G2rZ+JtJOLk/"       \
    "kplECy3/G2E"
#define OFFICER_PASSWORD "Township-Signs-2026"

static struct {
    char tag[24];
    char db_url[512];
    char *clock;
    char risk_topic[96], group[96];
    int console_port;
    pid_t console, escalate;
    bx_producer *producer;
} t;

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

/* ---- the county: township 990001100 (officer SGW1) with school SGS1, class SGC1 of teacher
 * SGT1 and students <tag>-01..03; township 990001200 (officer SGW2) ---- */

static int bxctl(const char *const *args, bx_buf *out)
{
    char env_url[600], env_clock[600];
    snprintf(env_url, sizeof(env_url), "BX_PG_URL=%s", t.db_url);
    snprintf(env_clock, sizeof(env_clock), "BX_CLOCK=file:%s", t.clock);
    const char *env[] = {env_url, env_clock, NULL};
    const char *argv[16] = {itest_env("BXCTL_BIN", BXCTL_BIN)};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    return itest_run(argv, env, out);
}

static void bxctl_ok(const char *const *args)
{
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = bxctl(args, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl %s: %s\n", args[0], out.data ? out.data : "");
    REQUIRE(rc == 0);
    bx_buf_free(&out);
}

static void student_id(int n, char out[40])
{
    snprintf(out, 40, "%s-%02d", t.tag, n);
}

static void registry(void)
{
    char *dir = itest_tmpdir("signoff-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv",
                     "code,county_code,name\n990001100,990001,测试镇\n990001200,990001,邻镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "SGS1,签署测试小学,990001100,primary,it-2026\n");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "SGT1,赵老师,homeroom_teacher,SGS1,,,\n"
                     "SGW1,周干事,township_officer,,990001100,,\n"
                     "SGW2,吴干事,township_officer,,990001200,,\n");
    itest_write_file(
        dir, "classes.csv",
        "class_id,school_id,grade,name,homeroom_staff_id\nSGC1,SGS1,3,三年级1班,SGT1\n");
    bx_buf b;
    bx_buf_init(&b, 0);
    REQUIRE(bx_buf_puts(&b, "student_id,school_id,class_id,name\n") == BX_OK);
    for (int i = 1; i <= 3; i++) {
        char id[40];
        student_id(i, id);
        REQUIRE(bx_buf_printf(&b, "%s,SGS1,SGC1,<b>学生%d</b>\n", id, i) == BX_OK);
    }
    itest_write_file(dir, "students.csv", b.data);
    bx_buf_free(&b);
    const char *holidays = itest_holidays_csv();
    bxctl_ok((const char *[]){"import", "holidays", holidays, NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
    itest_sql_exec(t.db_url,
                   "INSERT INTO console.account (staff_id, password_hash, state, created_at, "
                   "changed_at) VALUES ('SGT1', '" TEST_PWHASH "', 'active', now(), now()), "
                   "('SGW2', '" TEST_PWHASH "', 'active', now(), now())");
}

/* ---- Kafka ---- */

/* The group starts at the current end of topic: older messages on the shared topic are not this
 * run's. */
static void group_at_end(const char *group, const char *topic)
{
    rd_kafka_topic_partition_list_destroy(itest_group_at_end(group, topic));
}

static void produce(const char *topic, const char *key, const char *value)
{
    bx_delivery_wait *w = bx_delivery_wait_new();
    bx_delivery_slot slot;
    bx_delivery_slot_arm(&slot, w);
    REQUIRE(bx_producer_send(t.producer, topic, key, strlen(key), value, strlen(value),
                             bx_delivery_slot_done, &slot) == BX_OK);
    REQUIRE(bx_delivery_wait_all(w, 15000) == BX_OK);
    REQUIRE(slot.err == RD_KAFKA_RESP_ERR_NO_ERROR);
    bx_delivery_wait_free(w);
}

static void at(const char *local_time)
{
    bx_time_ms ms = 0;
    char iso[40];
    snprintf(iso, sizeof(iso), "%.10sT%s:00+08:00", local_time, local_time + 11);
    REQUIRE(bx_time_parse(iso, &ms) == BX_OK);
    REQUIRE(bx_clock_set(ms) == BX_OK);
}

/* The rows of a query with $1 = param, '|' between columns (caller frees). */
static char *rows_of(const char *sql, const char *param)
{
    const char *params[] = {param};
    return itest_sql_rows_params(t.db_url, sql, param ? 1 : 0, param ? params : NULL);
}

/* Waits (up to 30 s) until the query's rows are want. */
static bool wait_rows(const char *sql, const char *param, const char *want)
{
    for (int i = 0; i < 300; i++) {
        char *rows = rows_of(sql, param);
        bool same = strcmp(rows, want) == 0;
        if (same || i == 299)
            fprintf(stderr, "%s: %s", same ? "reached" : "still", rows);
        free(rows);
        if (same)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

/* ---- HTTP as a person's browser: cookies kept by hand (the session cookie is Secure) ---- */

typedef struct http_reply {
    long status;
    bx_buf body;
    char location[512];
    char session[128];
    char pre[128];
} http_reply;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static void cookie_value(const char *line, const char *name, char *out, size_t size)
{
    size_t len = strlen(name);
    if (strncasecmp(line, "Set-Cookie:", 11) != 0)
        return;
    const char *v = line + 11;
    while (*v == ' ')
        v++;
    if (strncmp(v, name, len) != 0 || v[len] != '=')
        return;
    v += len + 1;
    size_t n = strcspn(v, ";\r\n");
    if (n < size) {
        memcpy(out, v, n);
        out[n] = '\0';
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    http_reply *r = arg;
    size_t len = size * n;
    char line[1024];
    if (len >= sizeof(line))
        return len;
    memcpy(line, p, len);
    line[len] = '\0';
    if (strncasecmp(line, "Location:", 9) == 0) {
        const char *v = line + 9;
        while (*v == ' ')
            v++;
        snprintf(r->location, sizeof(r->location), "%.*s", (int)strcspn(v, "\r\n"), v);
    }
    cookie_value(line, "bx_session", r->session, sizeof(r->session));
    cookie_value(line, "bx_pre", r->pre, sizeof(r->pre));
    return len;
}

/* GET (form NULL) or POST a form; cookie "" or "name=value". */
static void http(const char *path, const char *cookie, const char *form, http_reply *r)
{
    memset(r, 0, sizeof(*r));
    bx_buf_init(&r->body, 1 << 22);
    char url[600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", t.console_port, path);
    CURL *c = curl_easy_init();
    REQUIRE(c != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (cookie && *cookie)
        curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
    if (form)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        BX_FAIL_AT("%s: %s", path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    REQUIRE(bx_buf_puts(&r->body, "") == BX_OK); /* a body, even empty, to search */
}

/* The value of the first <input ... name="<name>" value="..."> in html (caller frees). */
static char *input_value(const char *html, const char *name)
{
    char needle[96];
    snprintf(needle, sizeof(needle), "name=\"%s\" value=\"", name);
    const char *p = html ? strstr(html, needle) : NULL;
    if (p == NULL)
        return NULL;
    p += strlen(needle);
    return strndup(p, strcspn(p, "\""));
}

static char *form_escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = curl_easy_escape(c, s, 0);
    char *out = strdup(e);
    curl_free(e);
    curl_easy_cleanup(c);
    return out;
}

/* A public page's form (GET path) posted with fields appended: the double-submit CSRF of the
 * pages before sign-in. The reply in *r. */
static void post_public_form(const char *path, const char *fields, http_reply *r)
{
    http(path, "", NULL, r);
    CHECK_INT(r->status, 200);
    char *csrf = input_value(r->body.data, "csrf");
    REQUIRE(csrf != NULL && r->pre[0]);
    char cookie[160], form[1024];
    snprintf(cookie, sizeof(cookie), "bx_pre=%s", r->pre);
    char *csrf_e = form_escape(csrf);
    snprintf(form, sizeof(form), "csrf=%s&%s", csrf_e, fields);
    free(csrf_e);
    free(csrf);
    bx_buf_free(&r->body);
    http(path, cookie, form, r);
}

/* Signs in and returns the "bx_session=..." cookie (caller frees). */
static char *sign_in(const char *staff_id, const char *password)
{
    char fields[256];
    snprintf(fields, sizeof(fields), "login=%s&password=%s", staff_id, password);
    http_reply r;
    post_public_form("/login", fields, &r);
    CHECK_INT(r.status, 303);
    if (!r.session[0])
        BX_FAIL_AT("sign-in of %s set no session: %s", staff_id, r.body.data);
    REQUIRE(r.session[0]);
    char *out = malloc(200);
    snprintf(out, 200, "bx_session=%s", r.session);
    bx_buf_free(&r.body);
    return out;
}

/* The officer's account as a person gets it: bxctl staff invite (the code shown here with
 * --print, as bx-notify's SMS would carry it), then the activation form. */
static void activate(const char *staff_id, const char *password)
{
    bx_buf out;
    bx_buf_init(&out, 0);
    int rc = bxctl((const char *[]){"staff", "invite", staff_id, "--print", NULL}, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl staff invite: %s\n", out.data ? out.data : "");
    REQUIRE(rc == 0);
    char code[9] = "";
    for (const char *p = out.data; p && *p && !code[0];
         p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != 0))
        if (strspn(p, "0123456789") == 8 && (p[8] == '\n' || p[8] == '\0'))
            snprintf(code, sizeof(code), "%.8s", p);
    bx_buf_free(&out);
    REQUIRE(code[0]);
    char fields[400];
    snprintf(fields, sizeof(fields), "staff_id=%s&code=%s&password=%s&password_again=%s", staff_id,
             code, password, password);
    http_reply r;
    post_public_form("/activate", fields, &r);
    CHECK_INT(r.status, 303);
    CHECK_STR(r.location, "/login?activated=1");
    bx_buf_free(&r.body);
}

/* ---- the case ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void start(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(t.tag, sizeof(t.tag), "G%d%03ld", (int)getpid() % 100000,
             (long)(ts.tv_nsec / 1000000));
    snprintf(t.db_url, sizeof(t.db_url), "%s", itest_own_database("signoff"));
    t.clock = itest_clock_file("2026-09-28 07:30");
    char spec[600];
    snprintf(spec, sizeof(spec), "file:%s", t.clock);
    bx_error err = {0};
    REQUIRE(bx_clock_init(spec, &err) == BX_OK);
    bxctl_ok((const char *[]){"topics", "create", NULL});
    registry();
    snprintf(t.risk_topic, sizeof(t.risk_topic), "bx.itest.signoff.risk.%s", t.tag);
    snprintf(t.group, sizeof(t.group), "bx-escalate-itest-signoff-%s", t.tag);
    const char *const topics[] = {t.risk_topic};
    const int partitions[] = {2};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 1, 15000, &err) == BX_OK);
    group_at_end(t.group, BX_TOPIC_ACTIONS);
    REQUIRE(bx_producer_new(brokers(), NULL, &t.producer, &err) == BX_OK);

    char pg_env[600], risk_env[160], group_env[160];
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", t.db_url);
    snprintf(risk_env, sizeof(risk_env), "BX_RISK_TOPIC=%s", t.risk_topic);
    snprintf(group_env, sizeof(group_env), "BX_CONSUMER_GROUP=%s", t.group);
    const char *esc_env[] = {pg_env, risk_env, group_env, "BX_REGISTRY_REFRESH_MS=200", NULL};
    int port = 0;
    t.escalate =
        itest_service_start(itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN), t.clock, esc_env, &port);
    char listen[64], templates[512];
    t.console_port = free_port();
    snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", t.console_port);
    snprintf(templates, sizeof(templates), "BX_CONSOLE_TEMPLATES=%s/services/bx-console/templates",
             itest_env("BX_SOURCE_DIR", "."));
    const char *console_env[] = {pg_env, listen, templates, "BX_CONSOLE_THREADS=2", NULL};
    t.console = itest_service_start(itest_env("BX_CONSOLE_BIN", BX_CONSOLE_BIN), t.clock,
                                    console_env, &port);
}

static void stop(void)
{
    itest_stop(t.console);
    itest_stop(t.escalate);
    bx_producer_free(t.producer, 5000);
    free(t.clock);
    memset(&t, 0, sizeof(t));
}

/* Child 1 absent from Monday 09-28; the school records the return on Wednesday 09-30 without
 * the township's sign-off (as a school system does through bx-ingest): the case awaits it.
 * Returns the case id (caller frees). */
static char *case_awaiting_signoff(void)
{
    char id[40];
    student_id(1, id);
    at("2026-09-28 08:30");
    char msg[2048];
    snprintf(msg, sizeof(msg),
             "{\"schema\":\"bx.risk.v1\",\"event_id\":\"risk:%s:2026-09-28\",\"student_id\":"
             "\"%s\",\"school_id\":\"SGS1\",\"class_id\":\"SGC1\",\"date\":\"2026-09-28\","
             "\"streak_days\":1,\"streak_start\":\"2026-09-28\",\"unexcused_periods_today\":0,"
             "\"attendance_rate_20d\":0.9,\"attendance_rate_term\":0.9,\"chronic_absence\":false,"
             "\"score\":10,\"tier\":\"medium\",\"previous_tier\":null,\"trigger\":"
             "\"streak_changed\",\"factors\":[],\"assessed_at\":\"2026-09-28T08:30:00+08:00\"}",
             id, id);
    produce(t.risk_topic, id, msg);
    REQUIRE(wait_rows("SELECT count(*) FROM cases.case WHERE student_id = $1", id, "1\n"));
    at("2026-09-30 09:00");
    snprintf(msg, sizeof(msg),
             "{\"schema\":\"bx.actions.v1\",\"event_id\":\"act:%s:returned\",\"student_id\":"
             "\"%s\",\"school_id\":\"SGS1\",\"action\":\"returned\",\"date\":\"2026-09-30\","
             "\"staff_id\":\"SGT1\",\"recorded_at\":\"2026-09-30T09:00:00+08:00\","
             "\"recorded_by\":\"itest-school\",\"details\":{\"return_date\":\"2026-09-30\","
             "\"township_signoff_staff_id\":null}}",
             id, id);
    produce(BX_TOPIC_ACTIONS, id, msg);
    REQUIRE(wait_rows("SELECT c.closed_at IS NULL, t.owner_role FROM cases.case c JOIN "
                      "cases.task t ON t.case_id = c.id WHERE c.student_id = $1 AND t.kind = "
                      "'return_report_signoff' AND t.done_at IS NULL",
                      id, "t|township_officer\n"));
    return rows_of("SELECT id FROM cases.case WHERE student_id = $1", id);
}

static long long signoffs_audited(void)
{
    char *rows = rows_of("SELECT count(*) FROM console.audit WHERE action = 'sign_off'", NULL);
    long long n = strtoll(rows, NULL, 10);
    free(rows);
    return n;
}

BX_TEST(township_officer_signs_off_and_the_case_closes)
{
    start();
    char *case_id = case_awaiting_signoff();
    case_id[strcspn(case_id, "\n")] = '\0';
    char student[40], path[64];
    student_id(1, student);
    snprintf(path, sizeof(path), "/township/cases/%s", case_id);
    activate("SGW1", OFFICER_PASSWORD);
    at("2026-10-08 10:00");
    char *cookie = sign_in("SGW1", OFFICER_PASSWORD);

    /* The township's list: the case, its school and the child's name as text. */
    http_reply r;
    http("/township", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, path);
    CHECK_CONTAINS(r.body.data, "签署测试小学");
    CHECK_CONTAINS(r.body.data, "&lt;b&gt;学生1&lt;/b&gt;");
    CHECK_CONTAINS(r.body.data, "2026-09-30 复学");
    CHECK(r.body.len < 60 * 1024);
    bx_buf_free(&r.body);

    /* The case's form, prefilled with the return date the school recorded. */
    http(path, cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "name=\"return_date\" value=\"2026-09-30\"");
    char *csrf = input_value(r.body.data, "csrf"), *token = input_value(r.body.data, "token");
    REQUIRE(csrf && token);
    bx_buf_free(&r.body);
    char needle[96];
    snprintf(needle, sizeof(needle), "\"event_id\":\"%s\"", token);
    itest_mark *actions = itest_topic_mark(BX_TOPIC_ACTIONS);

    /* A forged CSRF token: refused before the handler, nothing written. */
    char form[512];
    snprintf(form, sizeof(form), "csrf=forged%%2Btoken&token=%s&return_date=2026-09-30", token);
    http(path, cookie, form, &r);
    CHECK_INT(r.status, 403);
    bx_buf_free(&r.body);
    CHECK_INT(signoffs_audited(), 0);
    bx_buf got;
    bx_buf_init(&got, 1 << 20);
    CHECK_INT(itest_topic_collect(actions, needle, 1, 3000, &got), 0);

    /* The officer signs: 303 back to the case, which says 已签署. */
    char *csrf_e = form_escape(csrf);
    snprintf(form, sizeof(form), "csrf=%s&token=%s&return_date=2026-09-30", csrf_e, token);
    free(csrf_e);
    http(path, cookie, form, &r);
    CHECK_INT(r.status, 303);
    CHECK_STR(r.location, path);
    bx_buf_free(&r.body);
    http(path, cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "已签署复学报告书"); /* the flash */
    CHECK_CONTAINS(r.body.data, "<strong>已签署</strong>：周干事");
    bx_buf_free(&r.body);

    /* On bx.actions.v1 as the officer: signer, staff and writer. */
    CHECK_INT(itest_topic_collect(actions, needle, 1, 20000, &got), 1);
    CHECK_CONTAINS(got.data, "\"action\":\"returned\"");
    CHECK_CONTAINS(got.data, "\"township_signoff_staff_id\":\"SGW1\"");
    CHECK_CONTAINS(got.data, "\"recorded_by\":\"SGW1\"");
    CHECK_CONTAINS(got.data, "\"staff_id\":\"SGW1\"");
    CHECK_CONTAINS(got.data, "\"return_date\":\"2026-09-30\"");

    /* bx-escalate closes the case, returned, signed by the officer, the task done. */
    CHECK(wait_rows("SELECT ending, to_char(closed_at AT TIME ZONE 'Asia/Shanghai', 'MM-DD "
                    "HH24:MI') FROM cases.case WHERE student_id = $1",
                    student, "returned|10-08 10:00\n"));
    char *closed = rows_of("SELECT e.reason FROM cases.event e JOIN cases.case c ON c.id = "
                           "e.case_id WHERE c.student_id = $1 AND e.kind = 'closed'",
                           student);
    CHECK_STR(closed, "returned to school on 2026-09-30; return report signed by SGW1\n");
    free(closed);
    char *task = rows_of("SELECT t.done_at IS NOT NULL FROM cases.task t JOIN cases.case c ON "
                         "c.id = t.case_id WHERE c.student_id = $1 AND t.kind = "
                         "'return_report_signoff'",
                         student);
    CHECK_STR(task, "t\n");
    free(task);
    char *audit = rows_of("SELECT staff_id, student_id, detail LIKE 'case=' || $1 || ' event=%' "
                          "FROM console.audit WHERE action = 'sign_off'",
                          case_id);
    char want[96];
    snprintf(want, sizeof(want), "SGW1|%s|t\n", student);
    CHECK_STR(audit, want);
    free(audit);

    /* The list is empty now; the same form again writes nothing and says it is signed. */
    http("/township", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "没有等待签署的复学报告书");
    bx_buf_free(&r.body);
    csrf_e = form_escape(csrf);
    snprintf(form, sizeof(form), "csrf=%s&token=%s&return_date=2026-09-30", csrf_e, token);
    free(csrf_e);
    http(path, cookie, form, &r);
    CHECK_INT(r.status, 303);
    bx_buf_free(&r.body);
    http(path, cookie, NULL, &r);
    CHECK_CONTAINS(r.body.data, "已签署：个案已结案");
    CHECK_CONTAINS(r.body.data, "个案已结案（已复学）");
    bx_buf_free(&r.body);
    CHECK_INT(signoffs_audited(), 1);
    bx_buf_reset(&got);
    CHECK_INT(itest_topic_collect(actions, needle, 1, 3000, &got), 0);

    bx_buf_free(&got);
    itest_mark_free(actions);
    free(csrf);
    free(token);
    free(cookie);
    free(case_id);
    stop();
}

BX_TEST(teacher_and_another_township_get_404)
{
    start();
    char *case_id = case_awaiting_signoff();
    case_id[strcspn(case_id, "\n")] = '\0';
    char path[64];
    snprintf(path, sizeof(path), "/township/cases/%s", case_id);
    at("2026-10-08 10:00");
    const char *outsiders[] = {"SGT1", "SGW2"};
    for (size_t i = 0; i < 2; i++) {
        char *cookie = sign_in(outsiders[i], TEST_PASSWORD);
        http_reply r;
        http(path, cookie, NULL, &r);
        CHECK_INT(r.status, 404);
        bx_buf_free(&r.body);
        http("/township/cases/99999999", cookie, NULL, &r); /* the same as no such case */
        CHECK_INT(r.status, 404);
        bx_buf_free(&r.body);
        http("/township", cookie, NULL, &r);
        if (i == 0) {
            CHECK_INT(r.status, 404); /* a teacher has no township list */
        } else {
            CHECK_INT(r.status, 200); /* the other township's list does not show the case */
            if (r.body.data && strstr(r.body.data, path))
                BX_FAIL_AT("%s sees case %s of another township", outsiders[i], case_id);
        }
        bx_buf_free(&r.body);
        /* A sign-off with a valid CSRF token of their own session: 404, nothing written. */
        http("/", cookie, NULL, &r);
        char *csrf = input_value(r.body.data, "csrf");
        REQUIRE(csrf != NULL);
        bx_buf_free(&r.body);
        char *csrf_e = form_escape(csrf);
        char form[512];
        snprintf(form, sizeof(form),
                 "csrf=%s&token=c-0123456789abcdef0123456789abcdef&return_date=2026-09-30", csrf_e);
        http(path, cookie, form, &r);
        CHECK_INT(r.status, 404);
        bx_buf_free(&r.body);
        free(csrf_e);
        free(csrf);
        free(cookie);
    }
    CHECK_INT(signoffs_audited(), 0);
    char student[40];
    student_id(1, student);
    char *open = rows_of("SELECT closed_at IS NULL FROM cases.case WHERE student_id = $1", student);
    CHECK_STR(open, "t\n");
    free(open);
    free(case_id);
    stop();
}
