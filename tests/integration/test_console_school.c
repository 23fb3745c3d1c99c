/* Integration tests of the principal's and the township officer's pages in bx-console against the
 * real PostgreSQL and Kafka, in a database of their own (registry imported with bxctl, cases
 * inserted as bx-escalate would have left them): a principal sees the class that has not sent
 * today's roll call and reminds its teacher (the request reaches bx.notify.requests.v1 with the
 * template rollcall_reminder), files a report (report_filed on bx.actions.v1 with the principal as
 * recorded_by) and prints the 劝学书 (names and dates, no id number) and records it delivered; a
 * township officer sees the township's notices and children out of school and gets 404 for
 * another township's case; a principal of another school and a teacher get 404. bx-console runs
 * as a process, signed in to over HTTP as a person would. */
#include "bx_calendar.h"
#include "bx_itest.h"
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

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            BX_FAIL_AT("required: %s", #cond);                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Password "pages-Test-2026" (argon2id, libsodium's interactive limits). */
#define TEST_PASSWORD "pages-Test-2026"
#define TEST_PWHASH                                                                                \
    "$argon2id$v=19$m=65536,t=2,p=1$782mBQ1hjBtyj594HOWCfA$JA+onWjza4kEg9VgdiK+G2rZ+JtJOLk/"       \
    "kplECy3/G2E"
#define NATIONAL_ID "11010519491231002X"

static struct {
    char db_url[512];
    char *clock;
    int console_port;
    pid_t console;
    char case_a[24], case_b[24], case_c[24]; /* school SHS1; SHS3 (same township); SHS2 */
} t;

/* ---- the county: township 990001100 (officer SHW1) with schools SHS1 (principal SHP1, classes
 * SHC1 of SHT1 and SHC2 of SHT2) and SHS3 (principal SHP3, class SHC3); township 990001200
 * (officer SHW2) with school SHS2 (class SHC4) ---- */

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

static void registry(void)
{
    char *dir = itest_tmpdir("school-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv",
                     "code,county_code,name\n990001100,990001,测试镇\n990001200,990001,邻镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    itest_write_file(dir, "schools.csv",
                     "school_id,name,township_code,stage,calendar_id\n"
                     "SHS1,校长测试小学,990001100,primary,it-2026\n"
                     "SHS2,邻镇小学,990001200,primary,it-2026\n"
                     "SHS3,同镇另一小学,990001100,primary,it-2026\n");
    itest_write_file(dir, "staff.csv",
                     "staff_id,name,role,school_id,township_code,county_code,phone\n"
                     "SHP1,钱校长,principal,SHS1,,,\n"
                     "SHT1,赵老师,homeroom_teacher,SHS1,,,13800000001\n"
                     "SHT2,孙老师,homeroom_teacher,SHS1,,,\n"
                     "SHP3,李校长,principal,SHS3,,,\n"
                     "SHW1,周干事,township_officer,,990001100,,\n"
                     "SHW2,吴干事,township_officer,,990001200,,\n");
    itest_write_file(dir, "classes.csv",
                     "class_id,school_id,grade,name,homeroom_staff_id\n"
                     "SHC1,SHS1,3,三年级1班,SHT1\nSHC2,SHS1,4,四年级1班,SHT2\n"
                     "SHC3,SHS3,5,五年级1班,\nSHC4,SHS2,5,五年级2班,\n");
    itest_write_file(dir, "students.csv",
                     "student_id,school_id,class_id,name,national_id\n"
                     "SH01,SHS1,SHC1,<b>王小明</b>," NATIONAL_ID "\n"
                     "SH02,SHS1,SHC1,王二,\nSH03,SHS1,SHC2,王三,\n"
                     "SH05,SHS3,SHC3,陈五,\nSH06,SHS2,SHC4,刘六,\n");
    itest_write_file(dir, "guardians.csv",
                     "student_id,name,relation,phone,is_primary\n"
                     "SH01,王大妈,mother,13900000001,true\n");
    const char *holidays = itest_holidays_csv();
    bxctl_ok((const char *[]){"import", "holidays", holidays, NULL});
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL});
    free(dir);
    itest_sql_exec(t.db_url, "INSERT INTO console.account (staff_id, password_hash, state, "
                             "created_at, changed_at) SELECT id, '" TEST_PWHASH "', 'active', "
                             "now(), now() FROM registry.staff");
}

/* A case as bx-escalate leaves it: the case, its stage events, its open tasks ("kind owner due"
 * with due in hours from the clock, negative when overdue). Returns the case id in out. */
static void add_case(const char *student, const char *school, const char *stage,
                     bool on_roster_event, const char *const *tasks, char out[24])
{
    bx_date start = 0;
    REQUIRE(bx_date_parse("2026-09-21", &start) == BX_OK);
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "INSERT INTO cases.case (student_id, school_id, opened_at, stage, state, updated_at) "
             "VALUES ('%s', '%s', '2026-09-21 09:00+08', '%s', '{\"streak_days\":6,"
             "\"streak_start\":%d}', now()) RETURNING id",
             student, school, stage, (int)start);
    char *id = itest_sql_rows(t.db_url, sql);
    snprintf(out, 24, "%.*s", (int)strcspn(id, "\n"), id);
    free(id);
    snprintf(sql, sizeof(sql),
             "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, "
             "occurred_at) VALUES (%s, 'ev-%s-1', 'opened', NULL, 'bx-escalate', '', "
             "'2026-09-21 09:00+08'), (%s, 'ev-%s-2', 'stage_entered', '%s', 'bx-escalate', "
             "'absent 6 school days', '2026-09-28 17:00+08'), (%s, 'ev-%s-3', 'task_done', "
             "'home_visit', 'SHT1', 'home visit: refused', '2026-09-22 17:00+08')",
             out, out, out, out, on_roster_event ? stage : "home_visit", out, out);
    itest_sql_exec(t.db_url, sql);
    for (int i = 0; tasks[i]; i++) {
        char kind[64], owner[32];
        int hours = 0;
        REQUIRE(sscanf(tasks[i], "%63s %31s %d", kind, owner, &hours) == 3);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, created_at, "
                 "due_at) VALUES (%s, 'tk-%s-%s', '%s', '%s', '%s', '2026-09-28 17:00+08', "
                 "'2026-09-29 09:00+08'::timestamptz + make_interval(hours => %d))",
                 out, out, kind, kind, stage, owner, hours);
        itest_sql_exec(t.db_url, sql);
    }
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
    REQUIRE(bx_buf_puts(&r->body, "") == BX_OK);
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

static char *sign_in(const char *staff_id)
{
    http_reply r;
    http("/login", "", NULL, &r);
    CHECK_INT(r.status, 200);
    char *csrf = input_value(r.body.data, "csrf");
    REQUIRE(csrf != NULL && r.pre[0]);
    char cookie[160], form[512];
    snprintf(cookie, sizeof(cookie), "bx_pre=%s", r.pre);
    char *csrf_e = form_escape(csrf);
    snprintf(form, sizeof(form), "csrf=%s&login=%s&password=%s", csrf_e, staff_id, TEST_PASSWORD);
    free(csrf_e);
    free(csrf);
    bx_buf_free(&r.body);
    http("/login", cookie, form, &r);
    CHECK_INT(r.status, 303);
    REQUIRE(r.session[0]);
    char *out = malloc(200);
    snprintf(out, 200, "bx_session=%s", r.session);
    bx_buf_free(&r.body);
    return out;
}

/* GETs page, then posts its form with the page's csrf and token and extra fields; returns the
 * token (caller frees) and the reply in *r. */
static char *post_page_form(const char *cookie, const char *page, const char *action,
                            const char *fields, http_reply *r)
{
    http(page, cookie, NULL, r);
    CHECK_INT(r->status, 200);
    char *csrf = input_value(r->body.data, "csrf");
    char *token = input_value(r->body.data, "token");
    REQUIRE(csrf && token);
    bx_buf_free(&r->body);
    char *csrf_e = form_escape(csrf);
    char form[1024];
    snprintf(form, sizeof(form), "csrf=%s&token=%s%s%s", csrf_e, token, fields ? "&" : "",
             fields ? fields : "");
    free(csrf_e);
    free(csrf);
    http(action, cookie, form, r);
    return token;
}

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
    if (t.console)
        return;
    snprintf(t.db_url, sizeof(t.db_url), "%s", itest_own_database("school"));
    /* Tuesday 2026-09-29 09:00, a school day; the last school day before is Monday 09-28. */
    t.clock = itest_clock_file("2026-09-29 09:00");
    bxctl_ok((const char *[]){"topics", "create", NULL});
    registry();
    /* SH01: a child of SHC1 at school_report, the principal's 劝学书 due tomorrow and the homeroom
     * teacher's report overdue since yesterday. */
    add_case("SH01", "SHS1", "school_report", false,
             (const char *[]){"persuasion_letter principal 24",
                              "report_to_school homeroom_teacher -20", NULL},
             t.case_a);
    /* SH05 (SHS3, same township) on the roster: the township's return notice, overdue. */
    add_case("SH05", "SHS3", "township_notice", true,
             (const char *[]){"return_notice township_officer -2", NULL}, t.case_b);
    /* SH06 (SHS2, the other township): its own return notice. */
    add_case("SH06", "SHS2", "township_notice", true,
             (const char *[]){"return_notice township_officer 30", NULL}, t.case_c);
    /* SHC2 took today's roll call; SHC1 did not (and neither took Monday's). */
    itest_sql_exec(t.db_url, "INSERT INTO attendance.class_report (class_id, day, period, "
                             "school_id, order_key, value) VALUES ('SHC2', '2026-09-29', 0, "
                             "'SHS1', 'k', '{}')");
    char pg_env[600], listen[64], templates[512];
    snprintf(pg_env, sizeof(pg_env), "BX_PG_URL=%s", t.db_url);
    t.console_port = free_port();
    snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", t.console_port);
    snprintf(templates, sizeof(templates), "BX_CONSOLE_TEMPLATES=%s/services/bx-console/templates",
             itest_env("BX_SOURCE_DIR", "."));
    const char *env[] = {pg_env, listen, templates, "BX_CONSOLE_THREADS=2", NULL};
    int port = 0;
    t.console =
        itest_service_start(itest_env("BX_CONSOLE_BIN", BX_CONSOLE_BIN), t.clock, env, &port);
}

static void check_small_and_escaped(const char *path, const http_reply *r)
{
    if (r->body.len > 60 * 1024)
        BX_FAIL_AT("%s is %zu bytes, over 60 KB", path, r->body.len);
    if (r->body.data && strstr(r->body.data, "<b>王小明"))
        BX_FAIL_AT("%s shows a registry name as markup", path);
}

BX_TEST(principal_sees_unreported_class_and_reminds_its_teacher)
{
    start();
    char *cookie = sign_in("SHP1");
    http_reply r;
    http("/school", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    check_small_and_escaped("/school", &r);
    CHECK_CONTAINS(r.body.data, "/school/remind/SHC1");
    CHECK(strstr(r.body.data, "/school/remind/SHC2") == NULL); /* SHC2 took its roll call */
    CHECK_CONTAINS(r.body.data, "2026-09-28");                 /* the last school day's list */
    CHECK_CONTAINS(r.body.data, "&lt;b&gt;王小明&lt;/b&gt;");  /* the open case, escaped */
    CHECK_CONTAINS(r.body.data, "赵老师");                     /* the overdue task's teacher */
    bx_buf_free(&r.body);

    itest_mark *m = itest_topic_mark("bx.notify.requests.v1");
    char *token = post_page_form(cookie, "/school", "/school/remind/SHC1", NULL, &r);
    CHECK_INT(r.status, 303);
    CHECK_STR(r.location, "/school");
    bx_buf_free(&r.body);
    char needle[128];
    snprintf(needle, sizeof(needle), "rollcall-reminder:SHC1:%s", token);
    bx_buf got;
    bx_buf_init(&got, 1 << 20);
    CHECK_INT(itest_topic_collect(m, needle, 1, 20000, &got), 1);
    CHECK_CONTAINS(got.data, "\"template\":\"rollcall_reminder\"");
    CHECK_CONTAINS(got.data, "\"recipient_staff_id\":\"SHT1\"");
    CHECK_CONTAINS(got.data, "\"school_id\":\"SHS1\"");
    bx_buf_free(&got);
    itest_mark_free(m);

    /* The page says who was reminded and when. */
    http("/school", cookie, NULL, &r);
    CHECK_CONTAINS(r.body.data, "已于 09:00 短信提醒");
    bx_buf_free(&r.body);
    /* A teacher without a phone cannot be texted: said, nothing sent. */
    free(token);
    free(cookie);
}

BX_TEST(principal_lists_are_filtered_and_paged)
{
    start();
    char *cookie = sign_in("SHP1");
    http_reply r;
    http("/school?stage=home_visit", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "没有符合条件的个案");
    bx_buf_free(&r.body);
    http("/school?stage=school_report&overdue=1&sort=class&page=1", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "/school/cases/");
    CHECK_CONTAINS(r.body.data, "/students/SH01");
    bx_buf_free(&r.body);
    /* Nonsense in the query is ignored, not an error. */
    http("/school?stage=%3Cx%3E&page=-4&sort=drop", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    bx_buf_free(&r.body);
    free(cookie);
}

BX_TEST(principal_files_a_report_as_themselves)
{
    start();
    char *cookie = sign_in("SHP1");
    char page[64];
    snprintf(page, sizeof(page), "/school/cases/%s", t.case_a);
    itest_mark *m = itest_topic_mark("bx.actions.v1");
    http_reply r;
    char *token = post_page_form(cookie, page, page,
                                 "task=report_to_school&filed_with=school&date=2026-09-29", &r);
    CHECK_INT(r.status, 303);
    CHECK_STR(r.location, page);
    bx_buf_free(&r.body);
    char needle[96];
    snprintf(needle, sizeof(needle), "\"event_id\":\"%s\"", token);
    bx_buf got;
    bx_buf_init(&got, 1 << 20);
    CHECK_INT(itest_topic_collect(m, needle, 1, 20000, &got), 1);
    CHECK_CONTAINS(got.data, "\"action\":\"report_filed\"");
    CHECK_CONTAINS(got.data, "\"recorded_by\":\"SHP1\"");
    CHECK_CONTAINS(got.data, "\"staff_id\":\"SHP1\"");
    CHECK_CONTAINS(got.data, "\"task\":\"report_to_school\"");
    bx_buf_free(&got);
    itest_mark_free(m);
    /* A report the case does not ask for is not sent. */
    free(token);
    token = post_page_form(cookie, page, page, "task=legal_referral&filed_with=school", &r);
    CHECK_INT(r.status, 303);
    bx_buf_free(&r.body);
    char *rows = itest_sql_rows(t.db_url, "SELECT count(*) FROM console.audit WHERE staff_id = "
                                          "'SHP1' AND action = 'report_filed'");
    CHECK_STR(rows, "1\n");
    free(rows);
    free(token);
    free(cookie);
}

/* The principal gives the teacher's overdue report to another teacher of the school: a
 * task_reassigned on bx.actions.v1 with the principal as staff_id and recorded_by, the task's id
 * and the new owner; a staff member of another school is refused and nothing is sent; a teacher
 * gets 404. */
BX_TEST(principal_reassigns_a_task_to_another_teacher)
{
    start();
    char *cookie = sign_in("SHP1");
    char page[64], action[80], key[64];
    snprintf(page, sizeof(page), "/school/cases/%s", t.case_a);
    snprintf(action, sizeof(action), "/school/cases/%s/reassign", t.case_a);
    snprintf(key, sizeof(key), "tk-%s-report_to_school", t.case_a);
    const char *params[] = {key};
    char *task =
        itest_sql_rows_params(t.db_url, "SELECT id FROM cases.task WHERE task_key = $1", 1, params);
    task[strcspn(task, "\n")] = '\0';
    http_reply r;
    http(page, cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    check_small_and_escaped(page, &r);
    CHECK_CONTAINS(r.body.data, action);
    CHECK_CONTAINS(r.body.data, "<option value=\"SHT2\">孙老师</option>");
    CHECK(strstr(r.body.data, "value=\"SHP3\"") == NULL); /* another school's principal */
    bx_buf_free(&r.body);
    itest_mark *m = itest_topic_mark("bx.actions.v1");
    char fields[128];
    snprintf(fields, sizeof(fields), "task=%s&to=SHT2", task);
    char *token = post_page_form(cookie, page, action, fields, &r);
    CHECK_INT(r.status, 303);
    CHECK_STR(r.location, page);
    bx_buf_free(&r.body);
    char needle[96];
    snprintf(needle, sizeof(needle), "\"event_id\":\"%s\"", token);
    bx_buf got;
    bx_buf_init(&got, 1 << 20);
    CHECK_INT(itest_topic_collect(m, needle, 1, 20000, &got), 1);
    CHECK_CONTAINS(got.data, "\"action\":\"task_reassigned\"");
    CHECK_CONTAINS(got.data, "\"staff_id\":\"SHP1\"");
    CHECK_CONTAINS(got.data, "\"recorded_by\":\"SHP1\"");
    char details[160];
    snprintf(details, sizeof(details), "\"details\":{\"task_id\":\"%s\",\"to_staff_id\":\"SHT2\"}",
             key);
    CHECK_CONTAINS(got.data, details);
    bx_buf_free(&got);
    free(token);
    /* To another school's principal: refused with a plain message, nothing written. */
    snprintf(fields, sizeof(fields), "task=%s&to=SHP3", task);
    token = post_page_form(cookie, page, action, fields, &r);
    CHECK_INT(r.status, 303);
    bx_buf_free(&r.body);
    char *rows = itest_sql_rows(t.db_url, "SELECT count(*) FROM console.audit WHERE staff_id = "
                                          "'SHP1' AND action = 'task_reassigned'");
    CHECK_STR(rows, "1\n");
    free(rows);
    free(token);
    itest_mark_free(m);
    free(cookie);
    /* A teacher cannot reassign. */
    cookie = sign_in("SHT1");
    http(action, cookie, "csrf=x&token=c-0123456789abcdef0123456789abcdef&task=1&to=SHT1", &r);
    CHECK(r.status == 404 || r.status == 403);
    bx_buf_free(&r.body);
    free(cookie);
    free(task);
}

BX_TEST(principal_prints_the_persuasion_letter_and_records_it_delivered)
{
    start();
    char *cookie = sign_in("SHP1");
    char page[64];
    snprintf(page, sizeof(page), "/print/%s/persuasion_letter", t.case_a);
    http_reply r;
    http(page, cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    check_small_and_escaped(page, &r);
    CHECK_CONTAINS(r.body.data, "劝学书");
    CHECK_CONTAINS(r.body.data, "&lt;b&gt;王小明&lt;/b&gt;"); /* the child, as text */
    CHECK_CONTAINS(r.body.data, "王大妈");                    /* the guardian */
    CHECK_CONTAINS(r.body.data, "2026年9月29日");             /* the date of issue */
    CHECK_CONTAINS(r.body.data, "2026年9月21日");             /* first day absent */
    CHECK_CONTAINS(r.body.data, "校长测试小学");
    CHECK(strstr(r.body.data, NATIONAL_ID) == NULL);
    CHECK(strstr(r.body.data, "13900000001") == NULL);
    bx_buf_free(&r.body);

    itest_mark *m = itest_topic_mark("bx.actions.v1");
    char *token = post_page_form(cookie, page, page, "date=2026-09-29", &r);
    CHECK_INT(r.status, 303);
    bx_buf_free(&r.body);
    char needle[96];
    snprintf(needle, sizeof(needle), "\"event_id\":\"%s\"", token);
    bx_buf got;
    bx_buf_init(&got, 1 << 20);
    CHECK_INT(itest_topic_collect(m, needle, 1, 20000, &got), 1);
    CHECK_CONTAINS(got.data, "\"action\":\"letter_delivered\"");
    CHECK_CONTAINS(got.data, "\"letter\":\"persuasion_letter\"");
    CHECK_CONTAINS(got.data, "\"recorded_by\":\"SHP1\"");
    bx_buf_free(&got);
    itest_mark_free(m);
    /* The township's notices are not the school's to issue. */
    snprintf(page, sizeof(page), "/print/%s/return_notice", t.case_a);
    http(page, cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    free(token);
    free(cookie);
}

BX_TEST(township_officer_sees_the_township_and_404_elsewhere)
{
    start();
    char *cookie = sign_in("SHW1");
    http_reply r;
    http("/township/notices", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    check_small_and_escaped("/township/notices", &r);
    CHECK_CONTAINS(r.body.data, "陈五");
    CHECK_CONTAINS(r.body.data, "已逾期");
    CHECK_CONTAINS(r.body.data, "href=\"/township\"");
    CHECK(strstr(r.body.data, "刘六") == NULL); /* the other township's child */
    bx_buf_free(&r.body);
    char page[64];
    snprintf(page, sizeof(page), "/print/%s/return_notice", t.case_b);
    http(page, cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "复学通知书");
    CHECK_CONTAINS(r.body.data, "测试镇");
    bx_buf_free(&r.body);
    snprintf(page, sizeof(page), "/print/%s/return_notice", t.case_c);
    http(page, cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    http("/township/children", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "陈五");
    CHECK_CONTAINS(r.body.data, "劝返记录");
    CHECK_CONTAINS(r.body.data, "赵老师"); /* who did the home visit */
    CHECK(strstr(r.body.data, "刘六") == NULL);
    bx_buf_free(&r.body);
    http("/township/children?list=suspected", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "&lt;b&gt;王小明&lt;/b&gt;");
    CHECK(strstr(r.body.data, "陈五") == NULL);
    bx_buf_free(&r.body);
    http("/school", cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    free(cookie);
    /* The other township's officer: the first township's case is a 404. */
    cookie = sign_in("SHW2");
    snprintf(page, sizeof(page), "/print/%s/return_notice", t.case_b);
    http(page, cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    free(cookie);
}

BX_TEST(another_school_and_a_teacher_get_404)
{
    start();
    char *cookie = sign_in("SHP3");
    const char *prefix[] = {"/school/cases/", "/print/", "/print/"};
    const char *suffix[] = {"", "/persuasion_letter", "/dropout_report"};
    for (size_t i = 0; i < 3; i++) {
        char page[64];
        snprintf(page, sizeof(page), "%s%s%s", prefix[i], t.case_a, suffix[i]);
        http_reply r;
        http(page, cookie, NULL, &r);
        CHECK_INT(r.status, 404);
        bx_buf_free(&r.body);
    }
    /* Their own school's workbench lists their own case only. */
    http_reply r;
    http("/school", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "陈五");
    CHECK(strstr(r.body.data, "王小明") == NULL);
    CHECK(strstr(r.body.data, "SHC1") == NULL);
    /* Reminding another school's class: 404, nothing sent. */
    char *csrf = input_value(r.body.data, "csrf");
    REQUIRE(csrf);
    bx_buf_free(&r.body);
    char form[256];
    char *csrf_e = form_escape(csrf);
    snprintf(form, sizeof(form), "csrf=%s&token=c-0123456789abcdef0123456789abcdef", csrf_e);
    http("/school/remind/SHC1", cookie, form, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    free(csrf_e);
    free(csrf);
    free(cookie);
    cookie = sign_in("SHT1");
    http("/school", cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    free(cookie);
}
