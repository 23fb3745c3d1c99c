/* bx-console against the real PostgreSQL over HTTPS: activation, sign-in, lockout, session
 * expiry and revocation, CSRF refusals that write nothing, disabling, escaping. */
#include "bx_itest.h"
#include "bx_test.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef BX_CONSOLE_BIN
#define BX_CONSOLE_BIN "bx-console"
#endif

static const char *db;
static char *clock_path;
static char *cert, *key_file;
static int port;

static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof(a);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The registry of one county: teacher CT1 (named with markup), CT2 of another class, students. */
static void setup(void)
{
    db = itest_own_database("console");
    itest_sql_exec(db,
                   "INSERT INTO registry.county VALUES ('990301', '测试县');"
                   "INSERT INTO registry.township VALUES ('990301001', '990301', '测试镇');"
                   "INSERT INTO registry.school VALUES ('CS1', '测试小学', '990301001', 'primary', "
                   "'national');"
                   "INSERT INTO registry.staff (id, name, role, school_id, phone) VALUES "
                   "('CT1', '<script>alert(1)</script>', 'homeroom_teacher', 'CS1', '13800000001'),"
                   "('CT2', '李老师', 'homeroom_teacher', 'CS1', '13800000002');"
                   "INSERT INTO registry.class VALUES ('CC1', 'CS1', 3, '三年级1班', 'CT1'),"
                   "('CC2', 'CS1', 3, '三年级2班', 'CT2');"
                   "INSERT INTO console.account (staff_id, state, created_at, changed_at) VALUES "
                   "('CT1', 'invited', now(), now()), ('CT2', 'invited', now(), now());"
                   "INSERT INTO console.activation (staff_id, code_hash, created_at, expires_at) "
                   "VALUES ('CT1', sha256(convert_to('CT1:12345678', 'UTF8')), now(), "
                   "'2026-11-28 08:00+08'), ('CT2', sha256(convert_to('CT2:87654321', 'UTF8')), "
                   "now(), '2026-11-26 08:00+08');");
    clock_path = itest_clock_file("2026-11-27 08:00");
    char *dir = itest_tmpdir("console-tls");
    char subj[64];
    size_t n = strlen(dir) + 32;
    cert = malloc(n);
    key_file = malloc(n);
    snprintf(cert, n, "%s/cert.pem", dir);
    snprintf(key_file, n, "%s/key.pem", dir);
    snprintf(subj, sizeof(subj), "/CN=127.0.0.1");
    const char *argv[] = {"/usr/bin/openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "rsa:2048",
                          "-nodes",
                          "-keyout",
                          key_file,
                          "-out",
                          cert,
                          "-days",
                          "2",
                          "-subj",
                          subj,
                          "-addext",
                          "subjectAltName=IP:127.0.0.1",
                          NULL};
    bx_buf out;
    bx_buf_init(&out, 1 << 16);
    int rc = itest_run(argv, NULL, &out);
    if (rc != 0)
        fprintf(stderr, "openssl: %.*s\n", (int)out.len, out.data ? out.data : "");
    bx_buf_free(&out);
    REQUIRE(rc == 0);
    free(dir);
    port = pick_port();
    char listen[64], pg[512], tls_cert[512], tls_key[512];
    snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", port);
    snprintf(pg, sizeof(pg), "BX_PG_URL=%s", db);
    snprintf(tls_cert, sizeof(tls_cert), "BX_TLS_CERT=%s", cert);
    snprintf(tls_key, sizeof(tls_key), "BX_TLS_KEY=%s", key_file);
    const char *env[] = {listen,
                         pg,
                         tls_cert,
                         tls_key,
                         "BX_LOGIN_FREE_ATTEMPTS=3",
                         "BX_LOGIN_DELAY_S=60",
                         "BX_SESSION_IDLE_S=600",
                         "BX_SESSION_ABSOLUTE_S=3600",
                         "BX_CONSOLE_THREADS=2",
                         NULL};
    int metrics = 0;
    itest_service_start(BX_CONSOLE_BIN, clock_path, env, &metrics);
}

static void advance(const char *minutes)
{
    const char *args[] = {"clock", "advance", minutes, NULL};
    char *out = NULL;
    CHECK_INT(itest_bxctl(db, clock_path, args, &out), 0);
    free(out);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

/* One browser: its own cookie jar. */
static CURL *browser(void)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_COOKIEFILE, "");
    curl_easy_setopt(c, CURLOPT_CAINFO, cert);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    return c;
}

/* GET (form NULL) or POST a form; the status, the body in *body (caller frees). */
static long request(CURL *c, const char *path, const char *form, char **body)
{
    char url[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", port, path);
    bx_buf b;
    bx_buf_init(&b, 1 << 22);
    REQUIRE(bx_buf_puts(&b, "") == BX_OK);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (form) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        BX_FAIL_AT("%s: %s", path, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (body)
        *body = bx_buf_steal(&b);
    else
        bx_buf_free(&b);
    return status;
}

/* The csrf field of the page at path. */
static char *csrf_of(CURL *c, const char *path)
{
    char *body = NULL;
    request(c, path, NULL, &body);
    const char *p = body ? strstr(body, "name=\"csrf\" value=\"") : NULL;
    REQUIRE(p != NULL);
    p += strlen("name=\"csrf\" value=\"");
    const char *end = strchr(p, '"');
    char *token = strndup(p, (size_t)(end - p));
    free(body);
    return token;
}

static long post(CURL *c, const char *path, const char *fields, bool with_csrf, char **body)
{
    char form[1024];
    if (with_csrf) {
        char *t = csrf_of(c, strcmp(path, "/logout") == 0 ? "/" : path);
        snprintf(form, sizeof(form), "csrf=%s&%s", t, fields);
        free(t);
    } else {
        snprintf(form, sizeof(form), "%s", fields);
    }
    return request(c, path, form, body);
}

static void activate_ct1(void)
{
    CURL *c = browser();
    CHECK_INT(post(c, "/activate",
                   "staff_id=CT1&code=12345678&password=a+good+password&password_again=a+good+"
                   "password",
                   true, NULL),
              303);
    curl_easy_cleanup(c);
}

static CURL *signed_in(const char *password)
{
    CURL *c = browser();
    char fields[256];
    snprintf(fields, sizeof(fields), "login=CT1&password=%s", password);
    CHECK_INT(post(c, "/login", fields, true, NULL), 303);
    return c;
}

static char *sql1(const char *sql)
{
    return itest_sql_rows(db, sql);
}

BX_TEST(activation_single_use_and_expiry)
{
    setup();
    CURL *c = browser();
    char *body = NULL;
    /* a weak password is refused and the code stays unused */
    CHECK_INT(post(c, "/activate", "staff_id=CT1&code=12345678&password=CT1&password_again=CT1",
                   true, &body),
              422);
    free(body);
    /* a wrong code */
    CHECK_INT(post(c, "/activate",
                   "staff_id=CT1&code=11111111&password=a+good+password&password_again=a+good+"
                   "password",
                   true, &body),
              401);
    CHECK_CONTAINS(body, "激活码不正确");
    free(body);
    activate_ct1();
    char *state = sql1("SELECT state, password_hash LIKE '$argon2id$%' FROM console.account "
                       "WHERE staff_id = 'CT1'");
    CHECK_STR(state, "active|t\n");
    free(state);
    /* the same code again: refused */
    CHECK_INT(post(c, "/activate",
                   "staff_id=CT1&code=12345678&password=another+password&password_again=another+"
                   "password",
                   true, NULL),
              401);
    /* CT2's code expired yesterday */
    CHECK_INT(post(c, "/activate",
                   "staff_id=CT2&code=87654321&password=a+good+password&password_again=a+good+"
                   "password",
                   true, NULL),
              401);
    state = sql1("SELECT state FROM console.account WHERE staff_id = 'CT2'");
    CHECK_STR(state, "invited\n");
    free(state);
    curl_easy_cleanup(c);
}

BX_TEST(login_lockout_and_unlock)
{
    setup();
    activate_ct1();
    CURL *c = browser();
    char *body = NULL;
    for (int i = 0; i < 2; i++) {
        CHECK_INT(post(c, "/login", "login=CT1&password=wrong+password", true, &body), 401);
        CHECK_CONTAINS(body, "密码不正确");
        free(body);
    }
    /* the third failure locks for 60 s and says until when */
    CHECK_INT(post(c, "/login", "login=CT1&password=wrong+password", true, &body), 429);
    CHECK_CONTAINS(body, "2026-11-27 08:01:00");
    free(body);
    /* even the right password is refused while locked */
    CHECK_INT(post(c, "/login", "login=13800000001&password=a+good+password", true, &body), 429);
    free(body);
    advance("2");
    /* by phone, after the lock */
    CHECK_INT(post(c, "/login", "login=13800000001&password=a+good+password", true, NULL), 303);
    CHECK_INT(request(c, "/", NULL, &body), 200);
    CHECK_CONTAINS(body, "班主任");
    free(body);
    curl_easy_cleanup(c);
}

BX_TEST(logout_revokes_and_cookie_replay_fails)
{
    setup();
    activate_ct1();
    CURL *c = signed_in("a+good+password");
    struct curl_slist *cookies = NULL;
    curl_easy_getinfo(c, CURLINFO_COOKIELIST, &cookies);
    char session_line[512] = "";
    for (struct curl_slist *s = cookies; s; s = s->next)
        if (strstr(s->data, "bx_session"))
            snprintf(session_line, sizeof(session_line), "%s", s->data);
    curl_slist_free_all(cookies);
    REQUIRE(session_line[0]);
    CHECK(strstr(session_line, "#HttpOnly_") == session_line); /* HttpOnly */
    CHECK(strstr(session_line, "\tTRUE\t") != NULL);           /* Secure */
    CHECK_INT(post(c, "/logout", "x=1", true, NULL), 303);
    char *row = sql1("SELECT revoked_why FROM console.session WHERE staff_id = 'CT1'");
    CHECK_STR(row, "logout\n");
    free(row);
    /* a second browser replays the old cookie */
    CURL *thief = browser();
    curl_easy_setopt(thief, CURLOPT_COOKIELIST, session_line);
    char *body = NULL;
    CHECK_INT(request(thief, "/", NULL, &body), 303);
    free(body);
    curl_easy_cleanup(thief);
    curl_easy_cleanup(c);
}

BX_TEST(csrf_missing_or_wrong_writes_nothing)
{
    setup();
    activate_ct1();
    CURL *c = signed_in("a+good+password");
    char *before = sql1("SELECT count(*) FROM console.audit");
    char *body = NULL;
    CHECK_INT(post(c, "/logout", "x=1", false, &body), 403);
    free(body);
    CHECK_INT(request(c, "/logout", "csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &body),
              403);
    free(body);
    char *after = sql1("SELECT count(*) FROM console.audit");
    CHECK_STR(after, before);
    char *open = sql1("SELECT count(*) FROM console.session WHERE revoked_at IS NULL");
    CHECK_STR(open, "1\n");
    free(open);
    /* a sign-in without the page's token (no pre-session cookie) is refused too */
    CURL *fresh = browser();
    CHECK_INT(request(fresh, "/login", "login=CT1&password=a+good+password", &body), 403);
    free(body);
    open = sql1("SELECT count(*) FROM console.session");
    CHECK_STR(open, "1\n");
    free(open);
    free(before);
    free(after);
    curl_easy_cleanup(fresh);
    curl_easy_cleanup(c);
}

BX_TEST(idle_and_absolute_expiry)
{
    setup();
    activate_ct1();
    CURL *c = signed_in("a+good+password");
    CHECK_INT(request(c, "/", NULL, NULL), 200);
    advance("11"); /* idle limit 10 min */
    CHECK_INT(request(c, "/", NULL, NULL), 303);
    char *row = sql1("SELECT revoked_why FROM console.session");
    CHECK_STR(row, "idle\n");
    free(row);
    curl_easy_cleanup(c);
    c = signed_in("a+good+password");
    for (int i = 0; i < 7; i++) { /* used every 9 minutes: never idle, but 63 min > 60 */
        advance("9");
        CHECK_INT(request(c, "/", NULL, NULL), i < 6 ? 200 : 303);
    }
    row = sql1("SELECT revoked_why FROM console.session ORDER BY id");
    CHECK_STR(row, "idle\nexpired\n");
    free(row);
    curl_easy_cleanup(c);
}

BX_TEST(disable_ends_sessions_and_role_change)
{
    setup();
    activate_ct1();
    CURL *c = signed_in("a+good+password");
    CHECK_INT(request(c, "/", NULL, NULL), 200);
    itest_sql_exec(db, "UPDATE registry.staff SET role = 'subject_teacher' WHERE id = 'CT1'");
    CHECK_INT(request(c, "/", NULL, NULL), 303);
    itest_sql_exec(db, "UPDATE registry.staff SET role = 'homeroom_teacher' WHERE id = 'CT1'");
    curl_easy_cleanup(c);
    c = signed_in("a+good+password");
    CHECK_INT(request(c, "/", NULL, NULL), 200);
    const char *args[] = {"staff", "disable", "CT1", NULL};
    char *out = NULL;
    CHECK_INT(itest_bxctl(db, clock_path, args, &out), 0);
    free(out);
    CHECK_INT(request(c, "/", NULL, NULL), 303);
    char *row = sql1("SELECT revoked_why FROM console.session ORDER BY id");
    CHECK_STR(row, "role_changed\ndisabled\n");
    free(row);
    /* and no new sign-in */
    curl_easy_cleanup(c);
    c = browser();
    CHECK_INT(post(c, "/login", "login=CT1&password=a+good+password", true, NULL), 401);
    const char *audit_args[] = {"audit", "--staff", "CT1", NULL};
    CHECK_INT(itest_bxctl(db, clock_path, audit_args, &out), 0);
    CHECK_CONTAINS(out, "sign_in");
    CHECK_CONTAINS(out, "activate");
    free(out);
    curl_easy_cleanup(c);
}

BX_TEST(registry_markup_is_text)
{
    setup();
    activate_ct1();
    CURL *c = signed_in("a+good+password");
    char *body = NULL;
    CHECK_INT(request(c, "/", NULL, &body), 200);
    CHECK_CONTAINS(body, "&lt;script&gt;alert(1)&lt;/script&gt;");
    CHECK(strstr(body, "<script>") == NULL);
    CHECK(strlen(body) < 60 * 1024);
    free(body);
    /* the sign-in was audited */
    char *sql = itest_sql_rows(db, "SELECT count(*) FROM console.audit");
    CHECK(strcmp(sql, "0\n") != 0);
    free(sql);
    curl_easy_cleanup(c);
}
