/* Integration tests of the county bureau's and the city officer's pages against the real
 * PostgreSQL, on a database of the test's own (so its rates count only its registry): the county
 * dashboard draws the expected bars for a known registry; an exported .xlsx holds the rows of
 * `bxctl ledger --json`; a township officer of another county gets 404 everywhere, one of another
 * township of the county 404 for its cases (the page of no case at all) and only their own children
 * in their lists; a county officer of another county finds none of this county in their pages and
 * exports; city and province officers see the rates of the area and nothing personal (no name, id
 * number or phone, workbooks inflated) on any page, export or write. bx-console runs as a process,
 * signed in to over HTTP as a person would. */
#include "bx_itest.h"
#include "bx_json.h"
#include "bx_test.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
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

#define NSTUDENTS 30 /* CT01..CT20 at 城关一小, CT21..CT30 at 河西中学 */

static const char *db_url;
static char *clock_path;

/* Counties 990077 (测试县: townships 城关镇 and 河西乡, schools CTS1 primary and CTS2 junior) and
 * 990078 (邻县, with its own township and school), calendar cty-2026, term 2026-autumn. Cases:
 * CT01 on the dropout roster since 10-20 (城关一小: 1 of 20 dropped out, 5 %, over the school's
 * 3 %) with the township's return notice to issue (due 12-04), CT02 suspected with an overdue task,
 * CT21 on the roster and returned on 11-10, CT22 (河西乡) suspected. Officers: the county's (CTK1),
 * each township's of 测试县 (CTW1 城关镇, CTW2 河西乡), 邻县's township (CTW9) and county (CTK9)
 * officers, a city (CTY1, 9900) and a province (CTP1, 99) officer. Every child has an id number
 * and a guardian with a phone, the teacher a phone: none may show where the scope forbids. */
static void registry_rows(void)
{
    itest_sql_exec(
        db_url,
        "INSERT INTO registry.county (code, name) VALUES ('990077', '测试县'), ('990078', '邻县');"
        "INSERT INTO registry.township (code, county_code, name) VALUES "
        "('990077100', '990077', '城关镇'), ('990077200', '990077', '河西乡'), "
        "('990078100', '990078', '邻乡');"
        "INSERT INTO registry.calendar (id, name) VALUES ('cty-2026', '测试校历');"
        "INSERT INTO registry.calendar_term (calendar_id, code, first_day, last_day) VALUES "
        "('cty-2026', '2026-autumn', '2026-09-01', '2027-01-22');"
        "INSERT INTO registry.school (id, name, township_code, stage, calendar_id) VALUES "
        "('CTS1', '城关一小', '990077100', 'primary', 'cty-2026'), "
        "('CTS2', '河西中学', '990077200', 'junior', 'cty-2026'), "
        "('CTS9', '邻县小学', '990078100', 'primary', 'cty-2026');"
        "INSERT INTO registry.staff (id, name, role, school_id, township_code, county_code, "
        "area_code) VALUES ('CTT1', '周老师', 'homeroom_teacher', 'CTS1', NULL, NULL, NULL), "
        "('CTK1', '县局王科长', 'county_officer', NULL, NULL, '990077', NULL), "
        "('CTW9', '邻乡李干事', 'township_officer', NULL, '990078100', NULL, NULL), "
        "('CTY1', '市局张处长', 'city_officer', NULL, NULL, NULL, '9900'), "
        "('CTW1', '城关镇赵干事', 'township_officer', NULL, '990077100', NULL, NULL), "
        "('CTW2', '河西乡钱干事', 'township_officer', NULL, '990077200', NULL, NULL), "
        "('CTK9', '邻县孙科长', 'county_officer', NULL, NULL, '990078', NULL), "
        "('CTP1', '省厅李处长', 'province_officer', NULL, NULL, NULL, '99');"
        "UPDATE registry.staff SET phone = '13912340001' WHERE id = 'CTT1';"
        "INSERT INTO registry.class (id, school_id, grade, name, homeroom_staff_id) VALUES "
        "('CTC1', 'CTS1', 3, '三年级1班', 'CTT1'), ('CTC2', 'CTS2', 8, '八年级1班', NULL), "
        "('CTC9', 'CTS9', 2, '二年级1班', NULL);"
        "INSERT INTO registry.student (id, school_id, class_id) SELECT 'CT' || lpad(i::text, 2, "
        "'0'), CASE WHEN i <= 20 THEN 'CTS1' ELSE 'CTS2' END, CASE WHEN i <= 20 THEN 'CTC1' ELSE "
        "'CTC2' END FROM generate_series(1, 30) i;"
        "INSERT INTO registry.student (id, school_id, class_id) VALUES ('CT99', 'CTS9', 'CTC9');"
        "INSERT INTO registry.student_private (student_id, name, sex, birth_date, national_id) "
        "SELECT 'CT' || lpad(i::text, 2, '0'), '县甲' || lpad(i::text, 2, '0'), CASE WHEN i % 2 = "
        "0 THEN 'F' ELSE 'M' END, date '2017-03-01' + i, '52012120170301' || lpad(i::text, 4, "
        "'0') FROM generate_series(1, 30) i;"
        "INSERT INTO registry.student_private (student_id, name) VALUES ('CT99', '邻县孩子');"
        "INSERT INTO registry.guardian (student_id, name, relation, phone, is_primary) SELECT "
        "'CT' || lpad(i::text, 2, '0'), '县甲' || lpad(i::text, 2, '0') || '的母亲', 'mother', "
        "'1391235' || lpad(i::text, 4, '0'), true FROM generate_series(1, 30) i;"
        "INSERT INTO console.account (staff_id, password_hash, state, created_at, changed_at) "
        "SELECT id, '" TEST_PWHASH "', 'active', now(), now() FROM registry.staff WHERE id IN "
        "('CTK1', 'CTW9', 'CTY1', 'CTW1', 'CTW2', 'CTK9', 'CTP1');"
        "INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, "
        "closed_at, ending, state) VALUES "
        "(7701, 'CT01', 'CTS1', '2026-10-05 17:00+08', 'dropout_roster', now(), NULL, NULL, "
        "'{\"streak_start\": 20726}'), "
        "(7702, 'CT02', 'CTS1', '2026-11-02 17:00+08', 'contact_family', now(), NULL, NULL, '{}'), "
        "(7721, 'CT21', 'CTS2', '2026-10-12 17:00+08', 'dropout_roster', now(), "
        "'2026-11-10 09:00+08', 'returned', '{\"case_id\": \"CT21:20261008\", "
        "\"streak_start\": 0}'), "
        "(7722, 'CT22', 'CTS2', '2026-11-18 17:00+08', 'contact_family', now(), NULL, NULL, "
        "'{\"streak_start\": 20775}');"
        "INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at) "
        "VALUES (7701, 'ct-e1', 'opened', NULL, 'bx-escalate', '连续缺勤 3 天', "
        "'2026-10-05 17:00+08'), (7701, 'ct-e2', 'stage_entered', 'contact_family', "
        "'bx-escalate', 'streak', '2026-10-05 17:00+08'), (7701, 'ct-e3', 'task_done', "
        "'home_visit', 'CTT1', '家访：家长表示孩子外出打工', '2026-10-09 10:00+08'), "
        "(7701, 'ct-e4', 'stage_entered', 'dropout_roster', 'bx-escalate', 'deadline', "
        "'2026-10-20 17:00+08'), "
        "(7702, 'ct-e5', 'opened', NULL, 'bx-escalate', '连续缺勤 3 天', '2026-11-02 17:00+08'), "
        "(7702, 'ct-e6', 'stage_entered', 'contact_family', 'bx-escalate', 'streak', "
        "'2026-11-02 17:00+08'), "
        "(7721, 'ct-e7', 'opened', NULL, 'bx-escalate', '开学未到校', '2026-10-12 17:00+08'), "
        "(7721, 'ct-e8', 'stage_entered', 'dropout_roster', 'bx-escalate', 'deadline', "
        "'2026-10-15 17:00+08'), (7721, 'ct-e9', 'closed', NULL, 'bx-escalate', 'returned', "
        "'2026-11-10 09:00+08'), "
        "(7722, 'ct-e10', 'opened', NULL, 'bx-escalate', '连续缺勤 1 天', '2026-11-18 17:00+08'), "
        "(7722, 'ct-e11', 'stage_entered', 'contact_family', 'bx-escalate', 'streak', "
        "'2026-11-18 17:00+08');"
        "INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, owner_staff_id, "
        "created_at, due_at) VALUES (7702, 'ct-t1', 'contact_family', 'contact_family', "
        "'homeroom_teacher', 'CTT1', '2026-11-02 17:00+08', '2026-11-05 17:00+08'), "
        "(7701, 'ct-t2', 'return_notice', 'township_notice', 'township_officer', NULL, "
        "'2026-11-27 08:00+08', '2026-12-04 17:00+08');"
        "UPDATE registry.revision SET revision = revision + 1, changed_at = now();"
        /* reports upward (四个一) as bx-escalate's duties write them: 城关一小's October report
         * (its office asked), 测试县's third quarter (kept), 邻县小学's and the city's */
        "INSERT INTO cases.upward_report (kind, area, period, term, first_day, last_day, "
        "report_day, county_code, owner_role, figures, duty_key, request_id, generated_at) VALUES "
        "('school_monthly_report', 'CTS1', '2026-10', '2026-autumn', '2026-10-01', '2026-10-30', "
        "'2026-10-30', '990077', 'academic_office', '{\"dropout_rate_pct\": 5.0, "
        "\"retention_rate_pct\": 95.0, \"ledger\": {\"suspected\": 1, \"dropout\": 1, "
        "\"returned\": 0}, \"returns\": 0, \"rollcall\": {\"rate_pct\": 98.5}}', 'ct-u1', "
        "'ct-u1:CTS1', '2026-10-30 17:00+08'), "
        "('county_quarterly_report', '990077', '2026-Q3', '2026-autumn', '2026-09-01', "
        "'2026-09-30', '2026-09-30', '990077', 'county_officer', '{\"dropout_rate_pct\": "
        "\"n/a\", \"retention_rate_pct\": 100.0, \"ledger\": {\"suspected\": 0, "
        "\"dropout\": 0, \"returned\": 0}}', 'ct-u2', NULL, '2026-09-30 17:00+08'), "
        "('school_monthly_report', 'CTS9', '2026-10', '2026-autumn', '2026-10-01', '2026-10-30', "
        "'2026-10-30', '990078', 'academic_office', '{}', 'ct-u3', NULL, '2026-10-30 17:00+08'), "
        "('city_term_report', '9900', '2026-spring', '2026-spring', '2026-03-01', '2026-07-10', "
        "'2026-07-10', NULL, 'city_officer', '{}', 'ct-u4', NULL, '2026-07-10 17:00+08');");
}

/* ---- a tiny HTTP client (as test_console_teacher.c) ---- */

typedef struct http_reply {
    long status;
    bx_buf body;
    char location[512];
    char session[128];
    char pre[128];
    char type[128];
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
    if (strncasecmp(line, "Location:", 9) == 0)
        snprintf(r->location, sizeof(r->location), "%.*s", (int)strcspn(line + 10, "\r\n"),
                 line + 10);
    if (strncasecmp(line, "Content-Type:", 13) == 0)
        snprintf(r->type, sizeof(r->type), "%.*s", (int)strcspn(line + 14, "\r\n"), line + 14);
    cookie_value(line, "bx_session", r->session, sizeof(r->session));
    cookie_value(line, "bx_pre", r->pre, sizeof(r->pre));
    return len;
}

static int console_port;

static void http(const char *path, const char *cookie, const char *form, http_reply *r)
{
    memset(r, 0, sizeof(*r));
    bx_buf_init(&r->body, 1 << 24);
    char url[600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", console_port, path);
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
    REQUIRE(bx_buf_append(&r->body, "", 1) == BX_OK); /* NUL-terminated, even a workbook */
    r->body.len--;
}

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

static void start_console(void)
{
    static pid_t pid;
    if (pid)
        return;
    db_url = itest_own_database("county");
    registry_rows();
    /* Friday 2026-11-27 08:12, a school day of term 2026-autumn. */
    clock_path = itest_clock_file("2026-11-27 08:12");
    char listen[64], bin[512], templates[512], policy[512], pg[600];
    console_port = free_port();
    snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", console_port);
#ifdef BX_CONSOLE_BIN
    snprintf(bin, sizeof(bin), "%s", BX_CONSOLE_BIN);
#else
    snprintf(bin, sizeof(bin), "%s/services/bx-console/bx-console",
             itest_env("BX_BUILD_DIR", "build"));
#endif
    snprintf(templates, sizeof(templates), "BX_CONSOLE_TEMPLATES=%s/services/bx-console/templates",
             itest_env("BX_SOURCE_DIR", "."));
    snprintf(policy, sizeof(policy), "BX_SCORE_POLICY=%s/deploy/policy/score.policy",
             itest_env("BX_SOURCE_DIR", "."));
    snprintf(pg, sizeof(pg), "BX_PG_URL=%s", db_url);
    const char *env[] = {listen, templates, policy, pg, "BX_CONSOLE_THREADS=2", NULL};
    int metrics = 0;
    pid = itest_service_start(bin, clock_path, env, &metrics);
}

/* How many times needle occurs in s. */
static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s ? strstr(s, needle) : NULL; p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The first chart of a page (caller frees). */
static char *first_svg(const char *html)
{
    const char *a = html ? strstr(html, "<svg") : NULL;
    const char *b = a ? strstr(a, "</svg>") : NULL;
    return a && b ? strndup(a, (size_t)(b - a) + 6) : NULL;
}

static void bar_heights(const char *svg, double *h, int max, int *n)
{
    *n = 0;
    for (const char *p = strstr(svg, "<rect class=\"bar"); p && *n < max;
         p = strstr(p + 1, "<rect class=\"bar")) {
        const char *hp = strstr(p, "height=\"");
        h[(*n)++] = hp ? strtod(hp + 8, NULL) : -1;
    }
}

/* No registry name of the test's students anywhere in text. */
static void no_student_names(const char *what, const char *text)
{
    for (int i = 1; i <= NSTUDENTS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "县甲%02d", i);
        if (text && strstr(text, name))
            BX_FAIL_AT("%s shows the name %s", what, name);
    }
    if (text && strstr(text, "邻县孩子"))
        BX_FAIL_AT("%s shows the name 邻县孩子", what);
}

BX_TEST(county_dashboard_draws_the_expected_bars)
{
    start_console();
    char *cookie = sign_in("CTK1");
    http_reply r;
    http("/county", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "测试县 控辍保学");
    CHECK_CONTAINS(r.body.data, "学期 2026-autumn");
    /* the schools' chart: 城关一小 and 河西中学, term and month: 4 bars; 城关一小's term rate
     * 5.00 % (1 of 20) is over the school threshold of 3 % and is the top of an axis of 5 % */
    char *svg = first_svg(r.body.data);
    REQUIRE(svg != NULL);
    CHECK_CONTAINS(svg, "各校辍学率");
    CHECK_CONTAINS(svg, "城关一小");
    CHECK_CONTAINS(svg, "阈值 3%");
    double h[8];
    int n = 0;
    bar_heights(svg, h, 8, &n);
    CHECK_INT(n, 4);
    CHECK(n == 4 && h[0] > 199.9 && h[0] < 200.1); /* 城关一小, term: 5 % */
    CHECK(n == 4 && h[1] < 0.1 && h[2] < 0.1 && h[3] < 0.1);
    CHECK_INT(count(svg, "<rect class=\"bar over\""), 1);
    free(svg);
    /* the tables: 5.00 % flagged, the township's overdue task, the weekly chart */
    CHECK_CONTAINS(r.body.data, "5.00%");
    CHECK_CONTAINS(r.body.data, "学校超过3%");
    CHECK_CONTAINS(r.body.data, "<td>城关镇</td><td>1</td>");
    CHECK_CONTAINS(r.body.data, "每周立案与结案");
    CHECK(count(r.body.data, "<svg") == 5);
    /* aggregates only: no child's name on the dashboard */
    no_student_names("the county dashboard", r.body.data);
    bx_buf_free(&r.body);

    /* the ledger: filters and the persuasion history, names for the county officer */
    http("/county/ledger?list=dropout", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "县甲01");
    CHECK_CONTAINS(r.body.data, "/students/CT01");
    CHECK_CONTAINS(r.body.data, "家长表示孩子外出打工");
    CHECK(strstr(r.body.data, "县甲02") == NULL); /* suspected, not on the dropout list */
    bx_buf_free(&r.body);
    http("/county/ledger?overdue=1", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "县甲02");
    CHECK(strstr(r.body.data, "县甲01") == NULL);
    CHECK_CONTAINS(r.body.data, "共 1 人");
    CHECK(strstr(r.body.data, "人数截至") == NULL); /* counted now */
    bx_buf_free(&r.body);
    /* the same filter again within the minute: the rows read again, the count kept, and said */
    http("/county/ledger?overdue=1", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "县甲02");
    CHECK_CONTAINS(r.body.data, "共 1 人<span class=\"muted\">（人数截至 08:12:00，每分钟更新）");
    bx_buf_free(&r.body);
    /* the reports upward of the county's schools and of the county, newest first, and no other
     * county's or the city's */
    http("/county/reports", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "四个一");
    CHECK_CONTAINS(r.body.data, "<td>学校月报</td><td>城关一小</td><td>2026-10</td><td>2026-10-01 "
                                "至 2026-10-30</td><td>2026-10-30</td><td>教务处</td><td>已通知经办"
                                "</td><td>5.00%</td><td>95.00%</td><td>1</td><td>1</td><td>0</td>"
                                "<td>98.50%</td>");
    CHECK_CONTAINS(r.body.data, "<td>县季报</td><td>测试县</td><td>2026-Q3</td>");
    CHECK_CONTAINS(r.body.data, "<td>存档</td><td>—</td><td>100.00%</td>");
    CHECK(strstr(r.body.data, "学校月报") < strstr(r.body.data, "县季报")); /* newest first */
    CHECK(strstr(r.body.data, "邻县小学") == NULL);
    CHECK(strstr(r.body.data, "市学期报告") == NULL);
    CHECK_CONTAINS(r.body.data, "每分钟更新");
    no_student_names("the county's reports", r.body.data);
    bx_buf_free(&r.body);
    free(cookie);
}

/* The text of <t>...</t> elements of an XML part, one a line (shared strings). */
static char *unzip_part(const char *xlsx, size_t len, const char *part)
{
    char path[] = "/tmp/test-county-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, xlsx, len) == (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "unzip -p %s %s", path, part);
    FILE *p = popen(cmd, "r");
    REQUIRE(p != NULL);
    bx_buf b;
    bx_buf_init(&b, 1 << 24);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        REQUIRE(bx_buf_append(&b, chunk, n) == BX_OK);
    REQUIRE(bx_buf_append(&b, "", 1) == BX_OK);
    pclose(p);
    unlink(path);
    return bx_buf_steal(&b);
}

BX_TEST(exported_xlsx_matches_bxctl_ledger)
{
    start_console();
    char *cookie = sign_in("CTK1");
    static const char *const kinds[] = {"dropout", "suspected", "returned"};
    for (size_t k = 0; k < 3; k++) {
        char path[96];
        snprintf(path, sizeof(path), "/county/export/%s?format=xlsx", kinds[k]);
        http_reply r;
        http(path, cookie, NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.type, "spreadsheetml");
        REQUIRE(r.body.len > 4 && memcmp(r.body.data, "PK\x03\x04", 4) == 0);
        char *strings = unzip_part(r.body.data, r.body.len, "xl/sharedStrings.xml");
        char *sheet = unzip_part(r.body.data, r.body.len, "xl/worksheets/sheet1.xml");
        /* title, headers in the bureau's order */
        CHECK_CONTAINS(strings, "测试县");
        CHECK_CONTAINS(strings, "<t>学校</t>");
        CHECK_CONTAINS(strings, "<t>劝返记录</t>");
        CHECK_CONTAINS(strings, "<t>责任人</t>");
        CHECK(strstr(strings, "5201212017030") == NULL); /* never an id number */
        /* the rows are bxctl ledger's: the same students, in the same number */
        const char *args[] = {"ledger", "--county", "990077", "--kind",
                              kinds[k], "--names",  "--json", NULL};
        char *out = NULL;
        CHECK_INT(itest_bxctl(db_url, clock_path, args, &out), 0);
        cJSON *j = cJSON_Parse(out);
        REQUIRE(j != NULL);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, kinds[k]);
        int entries = cJSON_GetArraySize(list);
        CHECK_INT(entries, k == 1 ? 2 : 1); /* suspected: CT02 and CT22 */
        const cJSON *e;
        cJSON_ArrayForEach(e, list)
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            REQUIRE(cJSON_IsString(name));
            char needle[96];
            snprintf(needle, sizeof(needle), "<t>%s</t>", name->valuestring);
            CHECK_CONTAINS(strings, needle);
        }
        /* title row, header row, one row a child */
        CHECK_INT(count(sheet, "<row "), 2 + entries);
        cJSON_Delete(j);
        free(out);
        free(strings);
        free(sheet);
        bx_buf_free(&r.body);
    }
    /* CSV: the roster with its title and headers; every export in the audit */
    http_reply r;
    http("/county/export/roster?format=csv", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "辍学生花名册");
    CHECK_CONTAINS(r.body.data, "\r\n学校,乡镇,班级,学生姓名,性别,出生日期,首次缺勤日期,阶段,原因,"
                                "劝返记录,责任人\r\n城关一小,城关镇,三年级1班,县甲01,男,2017-03-02,"
                                "2026-09-30,辍学生花名册,");
    bx_buf_free(&r.body);
    /* the returned child's first day absent is the day the case was opened for (its key's date),
     * which the return does not clear */
    http("/county/export/returned?format=csv", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, ",县甲21,");
    CHECK_CONTAINS(r.body.data, ",2026-10-08,");
    bx_buf_free(&r.body);
    http("/county/export/rates?format=csv", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "城关一小,城关镇,20,1,5.00%");
    bx_buf_free(&r.body);
    char *rows = itest_sql_rows(db_url, "SELECT count(*) FROM console.audit WHERE staff_id = "
                                        "'CTK1' AND action = 'export'");
    CHECK(rows && atoi(rows) >= 5);
    free(rows);
    free(cookie);
}

BX_TEST(township_officer_of_another_county_gets_404)
{
    start_console();
    char *cookie = sign_in("CTW9");
    static const char *const paths[] = {"/county",
                                        "/county/ledger",
                                        "/county/reports",
                                        "/county/export/roster?format=xlsx",
                                        "/county/export/rates?format=csv",
                                        "/area",
                                        "/students/CT01"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        http_reply r;
        http(paths[i], cookie, NULL, &r);
        if (r.status != 404)
            BX_FAIL_AT("%s answered %ld to a township officer of another county", paths[i],
                       r.status);
        no_student_names(paths[i], r.body.data);
        bx_buf_free(&r.body);
    }
    free(cookie);
}

/* ---- nothing personal where the scope forbids it ---- */

static const struct {
    const char *id, *name;
} staff_names[] = {{"CTT1", "周老师"},     {"CTK1", "县局王科长"},   {"CTW9", "邻乡李干事"},
                   {"CTY1", "市局张处长"}, {"CTW1", "城关镇赵干事"}, {"CTW2", "河西乡钱干事"},
                   {"CTK9", "邻县孙科长"}, {"CTP1", "省厅李处长"}};

/* What a reply shows (caller frees): the body, or for a workbook (a zip) every part of it
 * inflated, so that a name in an .xlsx export is found as it is in a page. */
static char *reply_text(const http_reply *r)
{
    if (r->body.len > 4 && memcmp(r->body.data, "PK\x03\x04", 4) == 0)
        return unzip_part(r->body.data, r->body.len, "");
    return strdup(r->body.data ? r->body.data : "");
}

/* No child's or guardian's name, no staff name but the viewer's own, no id number, no phone
 * (whole or masked) in the reply of path to viewer. */
static void no_personal_data(const char *viewer, const char *path, const http_reply *r)
{
    char *text = reply_text(r);
    char what[160];
    snprintf(what, sizeof(what), "%s for %s", path, viewer);
    no_student_names(what, text); /* the guardians' names hold their child's */
    for (size_t i = 0; i < sizeof(staff_names) / sizeof(staff_names[0]); i++)
        if (strcmp(staff_names[i].id, viewer) != 0 && strstr(text, staff_names[i].name))
            BX_FAIL_AT("%s shows the staff name %s", what, staff_names[i].name);
    if (strstr(text, "5201212017"))
        BX_FAIL_AT("%s shows an id number", what);
    static const char *const phones[] = {"1391235", "13912340001", "139****"};
    for (size_t i = 0; i < sizeof(phones) / sizeof(phones[0]); i++)
        if (strstr(text, phones[i]))
            BX_FAIL_AT("%s shows a phone (%s...)", what, phones[i]);
    free(text);
}

/* Every page and export, with this test's ids: the children's, classes', cases' and a task's
 * pages, the lists with filters, each export in both formats. */
static const char *const every_page[] = {"/",
                                         "/area",
                                         "/teacher",
                                         "/tasks",
                                         "/tasks/%s",
                                         "/class/CTC1",
                                         "/class/CTC2",
                                         "/rollcall/CTC1",
                                         "/students/CT01",
                                         "/students/CT02",
                                         "/students/CT21",
                                         "/students/CT22",
                                         "/students/CT99",
                                         "/students/CT01/leave",
                                         "/school",
                                         "/school/cases/7701",
                                         "/school/cases/7722",
                                         "/print/7701/persuasion_letter",
                                         "/print/7701/dropout_report",
                                         "/print/7701/return_notice",
                                         "/print/7701/deadline_notice",
                                         "/print/7722/persuasion_letter",
                                         "/township",
                                         "/township/cases/7701",
                                         "/township/cases/7722",
                                         "/township/notices",
                                         "/township/children",
                                         "/township/children?list=suspected",
                                         "/county",
                                         "/county/ledger",
                                         "/county/ledger?list=dropout",
                                         "/county/ledger?list=suspected",
                                         "/county/ledger?list=returned",
                                         "/county/ledger?overdue=1",
                                         "/county/ledger?township=990077100",
                                         "/county/reports",
                                         "/county/export/roster?format=xlsx",
                                         "/county/export/roster?format=csv",
                                         "/county/export/suspected?format=xlsx",
                                         "/county/export/suspected?format=csv",
                                         "/county/export/dropout?format=xlsx",
                                         "/county/export/dropout?format=csv",
                                         "/county/export/returned?format=xlsx",
                                         "/county/export/returned?format=csv",
                                         "/county/export/rates?format=xlsx",
                                         "/county/export/rates?format=csv"};

/* Every write a page takes, each with a valid CSRF token of the viewer's own session. */
static const char *const every_write[] = {"/rollcall/CTC1",
                                          "/tasks/%s",
                                          "/students/CT01/leave",
                                          "/school/remind/CTC1",
                                          "/school/cases/7701",
                                          "/school/cases/7701/reassign",
                                          "/print/7701/persuasion_letter",
                                          "/print/7701/return_notice",
                                          "/township/cases/7701"};

/* pattern with its one "%s" replaced by value (the paths are data, not formats). */
static void fill_path(char *out, size_t size, const char *pattern, const char *value)
{
    const char *at = strstr(pattern, "%s");
    if (at == NULL)
        snprintf(out, size, "%s", pattern);
    else
        snprintf(out, size, "%.*s%s%s", (int)(at - pattern), pattern, value, at + 2);
}

static char *task_id(void)
{
    char *id = itest_sql_rows(db_url, "SELECT id FROM cases.task WHERE task_key = 'ct-t1'");
    REQUIRE(id != NULL);
    id[strcspn(id, "\n")] = '\0';
    return id;
}

/* The area officer: /area with the rates by county, every page and export of a school, township
 * or county 404, every write 404 with nothing written, and nothing personal anywhere. */
static void area_officer_sees_nothing_personal(const char *viewer)
{
    start_console();
    char *cookie = sign_in(viewer);
    char *task = task_id();
    http_reply r;
    http("/area", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "各县辍学率");
    CHECK_CONTAINS(r.body.data, "测试县");
    CHECK(count(r.body.data, "<svg") == 5);
    /* 测试县: 1 of 30 dropped out (3.33 %), for the term and the month */
    CHECK_CONTAINS(r.body.data, "data-category=\"测试县\" data-series=\"本学期\" "
                                "data-value=\"3.33333\"");
    /* places by name: the registry names no city or province, which are labelled as such, never
     * shown as a bare code */
    bool city = strcmp(viewer, "CTY1") == 0;
    CHECK_CONTAINS(r.body.data, city ? "<h1>市（9900） 控辍保学" : "<h1>省（99） 控辍保学");
    CHECK_CONTAINS(r.body.data, "<td>市（9900）</td>");
    CHECK(strstr(r.body.data, ">9900<") == NULL && strstr(r.body.data, ">99<") == NULL);
    CHECK(strstr(r.body.data, ">990077<") == NULL && strstr(r.body.data, "\"990077\"") == NULL);
    bx_buf_free(&r.body);
    for (size_t i = 0; i < sizeof(every_page) / sizeof(every_page[0]); i++) {
        char path[128];
        fill_path(path, sizeof(path), every_page[i], task);
        http(path, cookie, NULL, &r);
        /* their own pages: the home page and the area's; they hold no class and no task, so
         * /teacher and /tasks answer as a page outside their scope */
        bool own = strcmp(path, "/") == 0 || strcmp(path, "/area") == 0;
        if (r.status != (own ? 200 : 404))
            BX_FAIL_AT("%s answered %ld to %s", path, r.status, viewer);
        no_personal_data(viewer, path, &r);
        bx_buf_free(&r.body);
    }
    http("/", cookie, NULL, &r);
    char *csrf = input_value(r.body.data, "csrf");
    REQUIRE(csrf != NULL);
    bx_buf_free(&r.body);
    char *csrf_e = form_escape(csrf);
    char audit_sql[160];
    snprintf(
        audit_sql, sizeof(audit_sql),
        "SELECT count(*) FROM console.audit WHERE staff_id = '%s' AND action NOT LIKE 'view%%'",
        viewer);
    char *writes_before = itest_sql_rows(db_url, audit_sql);
    for (size_t i = 0; i < sizeof(every_write) / sizeof(every_write[0]); i++) {
        char path[128], form[512];
        fill_path(path, sizeof(path), every_write[i], task);
        snprintf(form, sizeof(form),
                 "csrf=%s&token=c-0123456789abcdef0123456789abcdef&return_date=2026-11-26&"
                 "delivered_on=2026-11-26&staff_id=CTT1&task_id=%s&m.CT01=a",
                 csrf_e, task);
        http(path, cookie, form, &r);
        if (r.status != 404)
            BX_FAIL_AT("POST %s answered %ld to %s", path, r.status, viewer);
        no_personal_data(viewer, path, &r);
        bx_buf_free(&r.body);
    }
    char *writes_after = itest_sql_rows(db_url, audit_sql);
    CHECK_STR(writes_after, writes_before);
    free(writes_before);
    free(writes_after);
    free(csrf_e);
    free(csrf);
    free(task);
    free(cookie);
}

BX_TEST(city_officer_sees_rates_and_nothing_personal)
{
    area_officer_sees_nothing_personal("CTY1");
}

BX_TEST(province_officer_sees_rates_and_nothing_personal)
{
    area_officer_sees_nothing_personal("CTP1");
}

/* The 404 page a viewer gets for no such case (caller frees): a case of another township must
 * answer exactly this, so ids cannot be probed. */
static char *not_found_page(const char *cookie)
{
    http_reply r;
    http("/township/cases/99999999", cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    return bx_buf_steal(&r.body);
}

BX_TEST(township_officers_see_only_their_own_township)
{
    start_console();
    static const struct {
        const char *officer, *own_name, *other_name, *other_case, *other_student, *own_list;
    } t[] = {{"CTW1", "县甲01", "县甲22", "7722", "CT22", "/township/children"},
             {"CTW2", "县甲22", "县甲01", "7701", "CT01", "/township/children?list=suspected"}};
    for (size_t k = 0; k < 2; k++) {
        char *cookie = sign_in(t[k].officer);
        char *nothing = not_found_page(cookie);
        static const char *const by_case[] = {
            "/township/cases/%s",          "/school/cases/%s",
            "/print/%s/return_notice",     "/print/%s/deadline_notice",
            "/print/%s/persuasion_letter", "/print/%s/dropout_report"};
        http_reply r;
        for (size_t i = 0; i < sizeof(by_case) / sizeof(by_case[0]); i++) {
            char path[96];
            fill_path(path, sizeof(path), by_case[i], t[k].other_case);
            http(path, cookie, NULL, &r);
            if (r.status != 404 || strcmp(r.body.data, nothing) != 0)
                BX_FAIL_AT("%s answered %ld (not the page of no case) to %s", path, r.status,
                           t[k].officer);
            bx_buf_free(&r.body);
        }
        static const char *const by_student[] = {"/students/%s", "/students/%s/leave"};
        for (size_t i = 0; i < 2; i++) {
            char path[96];
            fill_path(path, sizeof(path), by_student[i], t[k].other_student);
            http(path, cookie, NULL, &r);
            if (r.status != 404)
                BX_FAIL_AT("%s answered %ld to %s", path, r.status, t[k].officer);
            CHECK(strstr(r.body.data, t[k].other_name) == NULL);
            bx_buf_free(&r.body);
        }
        /* the lists: their own township's children only */
        static const char *const lists[] = {"/township", "/township/notices", "/township/children",
                                            "/township/children?list=suspected"};
        for (size_t i = 0; i < 4; i++) {
            http(lists[i], cookie, NULL, &r);
            CHECK_INT(r.status, 200);
            if (strstr(r.body.data, t[k].other_name))
                BX_FAIL_AT("%s shows %s (another township's child) to %s", lists[i],
                           t[k].other_name, t[k].officer);
            if (strstr(r.body.data, "5201212017"))
                BX_FAIL_AT("%s shows an id number", lists[i]);
            bx_buf_free(&r.body);
        }
        http(t[k].own_list, cookie, NULL, &r);
        CHECK_CONTAINS(r.body.data, t[k].own_name);
        bx_buf_free(&r.body);
        /* the county's pages and exports are not a township officer's */
        static const char *const county[] = {"/county",
                                             "/county/ledger",
                                             "/county/reports",
                                             "/area",
                                             "/county/export/roster?format=xlsx",
                                             "/county/export/suspected?format=csv",
                                             "/county/export/rates?format=xlsx"};
        for (size_t i = 0; i < sizeof(county) / sizeof(county[0]); i++) {
            http(county[i], cookie, NULL, &r);
            if (r.status != 404)
                BX_FAIL_AT("%s answered %ld to %s", county[i], r.status, t[k].officer);
            bx_buf_free(&r.body);
        }
        free(nothing);
        free(cookie);
    }
    /* CTW1 issues 城关镇's return notice: printed with the name, no id number */
    char *cookie = sign_in("CTW1");
    http_reply r;
    http("/township/notices", cookie, NULL, &r);
    CHECK_CONTAINS(r.body.data, "href=\"/print/7701/return_notice\"");
    bx_buf_free(&r.body);
    http("/print/7701/return_notice", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "复学通知书");
    CHECK_CONTAINS(r.body.data, "县甲01");
    CHECK(strstr(r.body.data, "5201212017") == NULL);
    bx_buf_free(&r.body);
    free(cookie);
}

BX_TEST(county_officer_of_another_county_sees_none_of_this_county)
{
    start_console();
    char *cookie = sign_in("CTK9");
    http_reply r;
    http("/county", cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "邻县 控辍保学");
    CHECK(strstr(r.body.data, "城关一小") == NULL);
    bx_buf_free(&r.body);
    static const char *const pages[] = {"/county/ledger",
                                        "/county/ledger?list=dropout",
                                        "/county/ledger?list=returned",
                                        "/county/ledger?township=990077100",
                                        "/county/reports",
                                        "/county/export/roster?format=xlsx",
                                        "/county/export/suspected?format=xlsx",
                                        "/county/export/dropout?format=csv",
                                        "/county/export/returned?format=xlsx",
                                        "/county/export/rates?format=csv"};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        http(pages[i], cookie, NULL, &r);
        CHECK_INT(r.status, 200); /* their own county's, empty of 测试县 */
        char *text = reply_text(&r);
        no_personal_data("CTK9", pages[i], &r);
        if (strstr(text, "城关一小") || strstr(text, "城关镇"))
            BX_FAIL_AT("%s for 邻县's officer shows 测试县's places", pages[i]);
        free(text);
        bx_buf_free(&r.body);
    }
    static const char *const not_theirs[] = {"/students/CT01", "/class/CTC1",
                                             "/print/7701/persuasion_letter", "/school/cases/7701",
                                             "/township/cases/7701"};
    for (size_t i = 0; i < sizeof(not_theirs) / sizeof(not_theirs[0]); i++) {
        http(not_theirs[i], cookie, NULL, &r);
        if (r.status != 404)
            BX_FAIL_AT("%s answered %ld to 邻县's officer", not_theirs[i], r.status);
        no_personal_data("CTK9", not_theirs[i], &r);
        bx_buf_free(&r.body);
    }
    free(cookie);
}

/* A view of a list is audited by the statement that reads it: one row per page seen, with the
 * filter, the officer, the client's address and the request's time; the rows' histories are read
 * with them. */
BX_TEST(every_ledger_page_seen_is_audited_with_its_filter)
{
    start_console();
    char *cookie = sign_in("CTK1");
    static const char *const audit_sql =
        "SELECT count(*) FROM console.audit WHERE staff_id = 'CTK1' AND action = 'view_ledger' "
        "AND student_id IS NULL AND detail = 'county=990077 "
        "list=dropout&township=&school=&stage=&sort=opened page=1' AND client_addr = '127.0.0.1' "
        "AND at = '2026-11-27 08:12:00+08'";
    long long before = itest_sql_count(db_url, audit_sql);
    http_reply r;
    for (int i = 1; i <= 2; i++) {
        http("/county/ledger?list=dropout&sort=opened", cookie, NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.body.data, "城关一小");
        /* CT01's persuasion history, read with the rows, in time order */
        const char *opened = strstr(r.body.data, "连续缺勤 3 天");
        const char *visit = strstr(r.body.data, "家长表示孩子外出打工");
        const char *roster = visit ? strstr(visit, "deadline") : NULL;
        CHECK(opened && visit && roster && opened < visit);
        bx_buf_free(&r.body);
        CHECK_INT(itest_sql_count(db_url, audit_sql), before + i);
    }
    free(cookie);
}

/* The county's and the area's dashboards keep their term a minute with their figures (the term
 * of the calendars that holds today): a term begun in the registry shows once the minute passed. */
BX_TEST(dashboards_show_a_new_term_once_their_minute_passed)
{
    start_console();
    char *county = sign_in("CTK1"), *city = sign_in("CTY1");
    static const char *const pages[] = {"/county", "/area"};
    char *cookies[] = {county, city};
    http_reply r;
    for (size_t i = 0; i < 2; i++) {
        http(pages[i], cookies[i], NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.body.data, "学期 2026-autumn");
        bx_buf_free(&r.body);
    }
    /* a later term of the same calendar that holds today: the one the pages report from now on */
    itest_sql_exec(db_url,
                   "INSERT INTO registry.calendar_term (calendar_id, code, first_day, "
                   "last_day) VALUES ('cty-2026', '2026-late', '2026-11-20', '2027-01-22')");
    for (size_t i = 0; i < 2; i++) { /* the same minute: the minute's figures, said so */
        http(pages[i], cookies[i], NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.body.data, "学期 2026-autumn");
        CHECK_CONTAINS(r.body.data, "08:12:00（统计每分钟更新）");
        bx_buf_free(&r.body);
    }
    const char *args[] = {"clock", "set", "2026-11-27 08:14", NULL};
    CHECK_INT(itest_bxctl(db_url, clock_path, args, NULL), 0);
    for (size_t i = 0; i < 2; i++) {
        http(pages[i], cookies[i], NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.body.data, "学期 2026-late");
        CHECK_CONTAINS(r.body.data, "08:14:00（统计每分钟更新）");
        bx_buf_free(&r.body);
    }
    free(county);
    free(city);
}
