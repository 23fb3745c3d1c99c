/* Integration tests of the homeroom teacher's pages against the real PostgreSQL, Redis and Kafka:
 * a roll call with one absent child reaches bx.attendance.v1 with the teacher as recorded_by; the
 * same form twice names the same facts; a teacher of another class gets 404 for the child; a
 * registry name holding markup is shown as text. bx-console runs as a process, signed in to over
 * HTTP as a person would.
 *
 * Each case is a process of its own and runs beside every other test (ctest -j), so nothing is
 * shared: a database of its own (migrated by bxctl, registry imported there), and ids carrying the
 * run's tag, so the facts it reads back from the shared topic and the state under those ids in the
 * shared Redis are this run's only. */
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
#include <sys/time.h>
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

static struct {
    char db_url[512];
    char tag[8]; /* "TP" and 5 hex digits of this process: the prefix of every id */
} t;

/* The id "<tag><suffix>" in a static ring (valid for a few calls). */
static const char *id(const char *suffix)
{
    static char ring[8][40];
    static int next;
    char *out = ring[next++ % 8];
    snprintf(out, sizeof(ring[0]), "%s%s", t.tag, suffix);
    return out;
}

/* The path "<prefix><tag><suffix>" in a static ring (valid for a few calls). */
static const char *at(const char *prefix, const char *suffix)
{
    static char ring[8][80];
    static int next;
    char *out = ring[next++ % 8];
    snprintf(out, sizeof(ring[0]), "%s%s%s", prefix, t.tag, suffix);
    return out;
}

static void bxctl_ok(const char *const *args, const char *clock)
{
    char *out = NULL;
    int rc = itest_bxctl(t.db_url, clock, args, &out);
    if (rc != 0)
        fprintf(stderr, "bxctl %s: %s\n", args[0], out ? out : "");
    REQUIRE(rc == 0);
    free(out);
}

/* The run's registry in its own database: county 990001, township 990001100, calendar it-2026;
 * school S with classes C1 (01 to 04, 02 named with markup) and C3 (06, 07) of teacher T1, class
 * C2 of teacher T2 (05), every id prefixed with the run's tag. Tests that take a roll call use a
 * class each. */
static void registry_rows(const char *clock)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(t.tag, sizeof(t.tag), "TP%05X",
             (unsigned)(((unsigned)getpid() * 2654435761u) ^ (unsigned)tv.tv_usec) & 0xFFFFFu);
    snprintf(t.db_url, sizeof(t.db_url), "%s", itest_own_database("teacher"));
    char *dir = itest_tmpdir("teacher-registry");
    itest_write_file(dir, "counties.csv", "code,name\n990001,测试县\n");
    itest_write_file(dir, "townships.csv", "code,county_code,name\n990001100,990001,测试镇\n");
    itest_write_file(dir, "calendar.csv",
                     "calendar_id,entry,first_day,last_day,name\n"
                     "it-2026,term,2026-09-01,2027-01-22,2026-autumn\n");
    char csv[2048];
    const char *g = t.tag;
    snprintf(csv, sizeof(csv),
             "school_id,name,township_code,stage,calendar_id\n%sS,页面小学,990001100,primary,"
             "it-2026\n",
             g);
    itest_write_file(dir, "schools.csv", csv);
    snprintf(csv, sizeof(csv),
             "staff_id,name,role,school_id,township_code,county_code,phone\n"
             "%sT1,赵老师,homeroom_teacher,%sS,,,\n%sT2,钱老师,homeroom_teacher,%sS,,,\n",
             g, g, g, g);
    itest_write_file(dir, "staff.csv", csv);
    snprintf(csv, sizeof(csv),
             "class_id,school_id,grade,name,homeroom_staff_id\n"
             "%sC1,%sS,3,三年级2班,%sT1\n%sC2,%sS,4,四年级2班,%sT2\n%sC3,%sS,5,五年级2班,%sT1\n",
             g, g, g, g, g, g, g, g, g);
    itest_write_file(dir, "classes.csv", csv);
    snprintf(csv, sizeof(csv),
             "student_id,school_id,class_id,name\n"
             "%s01,%sS,%sC1,孙一\n%s02,%sS,%sC1,<script>alert(1)</script>\n%s03,%sS,%sC1,孙三\n"
             "%s04,%sS,%sC1,孙四\n%s05,%sS,%sC2,孙五\n%s06,%sS,%sC3,孙六\n%s07,%sS,%sC3,孙七\n",
             g, g, g, g, g, g, g, g, g, g, g, g, g, g, g, g, g, g, g, g, g);
    itest_write_file(dir, "students.csv", csv);
    const char *holidays = itest_holidays_csv();
    bxctl_ok((const char *[]){"import", "holidays", holidays, NULL}, clock);
    bxctl_ok((const char *[]){"import", "--dir", dir, NULL}, clock);
    free(dir);
    itest_sql_exec(t.db_url, "INSERT INTO console.account (staff_id, password_hash, state, "
                             "created_at, changed_at) SELECT id, '" TEST_PWHASH "', 'active', "
                             "now(), now() FROM registry.staff");
}

/* ---- a tiny HTTP client that keeps cookies by hand (the session cookie is Secure) ---- */

typedef struct http_reply {
    long status;
    bx_buf body;
    char location[512];
    char session[128]; /* bx_session=... set by this reply */
    char pre[128];     /* bx_pre=... set by this reply */
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

static int console_port;

/* GET (form NULL) or POST a form; cookie is "" or "name=value". */
static void http(const char *path, const char *cookie, const char *form, http_reply *r)
{
    memset(r, 0, sizeof(*r));
    bx_buf_init(&r->body, 1 << 22);
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

/* Signs in as staff_id and returns the "bx_session=..." cookie (caller frees). */
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
    if (!r.session[0])
        BX_FAIL_AT("sign-in of %s set no session: %s", staff_id, r.body.data ? r.body.data : "");
    REQUIRE(r.session[0]);
    char *out = malloc(200);
    snprintf(out, 200, "bx_session=%s", r.session);
    bx_buf_free(&r.body);
    return out;
}

/* A port nobody listens on: bound to 0, read, let go. */
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

static pid_t start_console(void)
{
    static pid_t pid;
    if (pid)
        return pid;
    /* Friday 2026-11-27 08:12, a school day of calendar it-2026. */
    char *clock = itest_clock_file("2026-11-27 08:12");
    registry_rows(clock);
    char pg[600], listen[64], bin[512], templates[512], policy[512];
    snprintf(pg, sizeof(pg), "BX_PG_URL=%s", t.db_url);
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
    const char *env[] = {pg, listen, templates, policy, "BX_CONSOLE_THREADS=2", NULL};
    int metrics = 0;
    pid = itest_service_start(bin, clock, env, &metrics);
    free(clock);
    return pid;
}

/* The roll-call form of class_id as the page gives it, with one child marked absent and the
 * rest left present (caller frees). *token_out gets the form's token (caller frees). */
static char *rollcall_form(const char *cookie, const char *class_id, const char *absent_student,
                           char **token_out)
{
    char path[64];
    snprintf(path, sizeof(path), "/rollcall/%s", class_id);
    http_reply r;
    http(path, cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    char *csrf = input_value(r.body.data, "csrf");
    char *token = input_value(r.body.data, "token");
    REQUIRE(csrf && token);
    char *csrf_e = form_escape(csrf);
    char *form = malloc(1024);
    snprintf(form, 1024, "csrf=%s&token=%s&date=2026-11-27&period=0&m.%s=a", csrf_e, token,
             absent_student);
    free(csrf_e);
    free(csrf);
    *token_out = token;
    bx_buf_free(&r.body);
    return form;
}

BX_TEST(rollcall_reaches_the_topic_as_the_teacher)
{
    start_console();
    char *cookie = sign_in(id("T1"));
    char *token = NULL;
    char *form = rollcall_form(cookie, id("C1"), id("02"), &token);
    char needle[96];
    snprintf(needle, sizeof(needle), "\"event_id\":\"%s:%s\"", token, id("02"));
    itest_mark *att = itest_topic_mark("bx.attendance.v1");
    http_reply r;
    http(at("/rollcall/", "C1"), cookie, form, &r);
    CHECK_INT(r.status, 303);
    CHECK_STR(r.location, at("/rollcall/", "C1"));
    bx_buf got;
    bx_buf_init(&got, 1 << 20);
    /* The absent child's fact, with the teacher as the writer. */
    CHECK_INT(itest_topic_collect(att, needle, 1, 20000, &got), 1);
    CHECK_CONTAINS(got.data, "\"status\":\"absent\"");
    CHECK_CONTAINS(got.data, at("\"recorded_by\":\"", "T1\""));
    CHECK_CONTAINS(got.data, "\"source\":\"rollcall\"");
    bx_buf_free(&got);
    bx_buf_free(&r.body);

    /* The next page says it was taken (the flash carries the count). */
    http(at("/rollcall/", "C1"), cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "1 人缺勤");
    bx_buf_free(&r.body);
    itest_mark_free(att);
    free(token);
    free(form);
    free(cookie);
}

BX_TEST(same_form_twice_names_the_same_facts)
{
    start_console();
    char *cookie = sign_in(id("T1"));
    char *token = NULL;
    char *form = rollcall_form(cookie, id("C3"), id("06"), &token);
    char needle[96];
    snprintf(needle, sizeof(needle), "\"event_id\":\"%s:%s\"", token, id("06"));
    itest_mark *att = itest_topic_mark("bx.attendance.v1");
    http_reply r;
    http(at("/rollcall/", "C3"), cookie, form, &r);
    CHECK_INT(r.status, 303);
    bx_buf_free(&r.body);
    /* Pressed again (or resent after a lost answer): a duplicate, nothing new. */
    http(at("/rollcall/", "C3"), cookie, form, &r);
    CHECK_INT(r.status, 303);
    bx_buf_free(&r.body);
    bx_buf got;
    bx_buf_init(&got, 1 << 20);
    /* Every fact of the child on the topic since carries the form's one event id. */
    int n = itest_topic_collect(att, at("\"student_id\":\"", "06\""), 2, 8000, &got);
    CHECK(n >= 1);
    for (const char *line = got.data; line && *line;) {
        size_t len = strcspn(line, "\n");
        char *one = strndup(line, len);
        CHECK_CONTAINS(one, needle);
        free(one);
        line += len + (line[len] == '\n');
    }
    http(at("/rollcall/", "C3"), cookie, NULL, &r);
    CHECK_CONTAINS(r.body.data, "已提交过");
    bx_buf_free(&r.body);
    bx_buf_free(&got);
    itest_mark_free(att);
    free(token);
    free(form);
    free(cookie);
}

BX_TEST(another_class_teacher_gets_404)
{
    start_console();
    char *cookie = sign_in(id("T2"));
    http_reply r;
    http(at("/students/", "02"), cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    http("/students/NO_SUCH_STUDENT", cookie, NULL, &r);
    CHECK_INT(r.status, 404); /* the same answer as a student out of scope */
    bx_buf_free(&r.body);
    http(at("/class/", "C1"), cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    http(at("/rollcall/", "C1"), cookie, NULL, &r);
    CHECK_INT(r.status, 404);
    bx_buf_free(&r.body);
    /* Their own child is there. */
    http(at("/students/", "05"), cookie, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body.data, "孙五");
    bx_buf_free(&r.body);
    free(cookie);
}

BX_TEST(registry_markup_is_shown_as_text)
{
    start_console();
    char *cookie = sign_in(id("T1"));
    const char *pages[] = {at("/class/", "C1"), at("/students/", "02"), at("/rollcall/", "C1")};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        http_reply r;
        http(pages[i], cookie, NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_CONTAINS(r.body.data, "&lt;script&gt;alert(1)&lt;/script&gt;");
        if (r.body.data && strstr(r.body.data, "<script>alert(1)"))
            BX_FAIL_AT("%s shows the name as markup", pages[i]);
        if (r.body.len > 60 * 1024)
            BX_FAIL_AT("%s is %zu bytes, over 60 KB", pages[i], r.body.len);
        bx_buf_free(&r.body);
    }
    /* The student page is a view of personal data: audited. */
    const char *params[] = {id("T1"), id("02")};
    char *rows = itest_sql_rows_params(t.db_url,
                                       "SELECT count(*) > 0 FROM console.audit WHERE staff_id = $1 "
                                       "AND action = 'view_student' AND student_id = $2",
                                       2, params);
    CHECK_CONTAINS(rows, "t");
    free(rows);
    free(cookie);
}
