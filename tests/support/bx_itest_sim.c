/* bx_itest_sim: what the integration tests that drive a simulated county (bx-sim) share: bx-console
 * with the county's township officers signed up, for bx-sim's sign-offs. */
#include "bx_itest_sim.h"
#include "bx_test.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t on_page(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static size_t on_pre_cookie(char *p, size_t size, size_t n, void *arg)
{
    const char *name = "Set-Cookie: bx_pre=";
    size_t len = size * n;
    if (len > strlen(name) && strncasecmp(p, name, strlen(name)) == 0)
        snprintf(arg, 160, "bx_pre=%.*s", (int)strcspn(p + strlen(name), ";\r\n"),
                 p + strlen(name));
    return len;
}

/* The activation form over HTTPS as a person fills it: its CSRF token and pre-session cookie,
 * then the staff id, the code and the new password twice. */
static void activate_officer(const char *base, const char *ca, const char *staff_id,
                             const char *code, const char *password)
{
    char url[300], cookie[160] = "", form[600];
    snprintf(url, sizeof(url), "%s/activate", base);
    bx_buf page;
    bx_buf_init(&page, 1 << 20);
    CURL *c = curl_easy_init();
    REQUIRE(c != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_page);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &page);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_pre_cookie);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)cookie);
    REQUIRE(curl_easy_perform(c) == CURLE_OK);
    const char *csrf = page.data ? strstr(page.data, "name=\"csrf\" value=\"") : NULL;
    REQUIRE(csrf != NULL && cookie[0]);
    csrf += strlen("name=\"csrf\" value=\"");
    char *csrf_e = curl_easy_escape(c, csrf, (int)strcspn(csrf, "\""));
    snprintf(form, sizeof(form), "csrf=%s&staff_id=%s&code=%s&password=%s&password_again=%s",
             csrf_e, staff_id, code, password, password);
    curl_free(csrf_e);
    bx_buf_reset(&page);
    curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    REQUIRE(curl_easy_perform(c) == CURLE_OK);
    long status = 0;
    char *location = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
    CHECK_INT(status, 303);
    CHECK(location && strstr(location, "/login?activated=1"));
    curl_easy_cleanup(c);
    bx_buf_free(&page);
}

/* The value of the setting name ("BX_PG_URL=") in env, the setting itself when whole is true. */
static const char *setting(const char *const *env, const char *name, bool whole)
{
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], name, strlen(name)) == 0)
            return whole ? env[i] : env[i] + strlen(name);
    REQUIRE(!"a setting the console needs is missing");
    return NULL;
}

pid_t itest_sim_console_start(const char *dir, const sim_county *c, const char *const *env)
{
    char cert[1100], key[1100], accounts[1100];
    snprintf(cert, sizeof(cert), "%s/console-cert.pem", dir);
    snprintf(key, sizeof(key), "%s/console-key.pem", dir);
    snprintf(accounts, sizeof(accounts), "%s/console-accounts", dir);
    const char *mk[] = {itest_env("BX_OPENSSL", "/usr/bin/openssl"),
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-days",
                        "30",
                        "-subj",
                        "/CN=127.0.0.1",
                        "-addext",
                        "subjectAltName=IP:127.0.0.1",
                        "-keyout",
                        key,
                        "-out",
                        cert,
                        NULL};
    itest_run_ok(mk, env, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    char listen[64], tls_cert[1200], tls_key[1200], bin[600], base[64];
    snprintf(listen, sizeof(listen), "BX_CONSOLE_LISTEN=127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(base, sizeof(base), "https://127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(tls_cert, sizeof(tls_cert), "BX_TLS_CERT=%s", cert);
    snprintf(tls_key, sizeof(tls_key), "BX_TLS_KEY=%s", key);
    snprintf(bin, sizeof(bin), "%s/services/bx-console/bx-console",
             itest_env("BX_BUILD_DIR", "build"));
    const char *console_env[] = {setting(env, "BX_PG_URL=", true), listen, tls_cert, tls_key,
                                 "BX_CONSOLE_THREADS=2",           NULL};
    int mport = 0;
    pid_t pid = itest_service_start(itest_env("BX_CONSOLE_BIN", bin),
                                    setting(env, "BX_CLOCK=file:", false), console_env, &mport);
    FILE *f = fopen(accounts, "w");
    REQUIRE(f != NULL);
    REQUIRE(chmod(accounts, 0600) == 0);
    for (int t = 0; t < c->size.townships; t++) {
        char officer[24], password[40], code[16] = "";
        sim_township_officer_id(c, t, officer);
        const char *invite[] = {
            itest_env("BXCTL_BIN", BXCTL_BIN), "staff", "invite", officer, "--print", NULL};
        bx_buf out;
        bx_buf_init(&out, 0);
        itest_run_ok(invite, env, &out);
        for (const char *p = out.data; p && *p && !code[0]; p += strcspn(p, "\n") + 1) {
            if (strspn(p, "0123456789") == 8 && (p[8] == '\n' || p[8] == '\0'))
                snprintf(code, sizeof(code), "%.8s", p);
            if (p[strcspn(p, "\n")] == '\0')
                break;
        }
        bx_buf_free(&out);
        REQUIRE(code[0]);
        unsigned char bytes[12];
        FILE *r = fopen("/dev/urandom", "r");
        REQUIRE(r != NULL && fread(bytes, 1, sizeof(bytes), r) == sizeof(bytes));
        fclose(r);
        for (size_t i = 0; i < sizeof(bytes); i++)
            snprintf(password + 2 * i, 3, "%02x", bytes[i]);
        activate_officer(base, cert, officer, code, password);
        fprintf(f, "%s %s\n", officer, password);
    }
    fclose(f);
    setenv("BX_SIM_CONSOLE", base, 1);
    setenv("BX_SIM_CONSOLE_CA", cert, 1);
    setenv("BX_SIM_CONSOLE_ACCOUNTS", accounts, 1);
    return pid;
}

void itest_sim_keys(const char *dir, const sim_county *c, const char *const *env, char *keys,
                    size_t size)
{
    snprintf(keys, size, "%s/keys", dir);
    FILE *kf = fopen(keys, "w");
    REQUIRE(kf != NULL);
    for (int i = 0; i < c->nschools; i++) {
        const char *kc[] = {
            itest_env("BXCTL_BIN", BXCTL_BIN), "key", "create", c->schools[i].id, "itest", NULL};
        bx_buf out;
        bx_buf_init(&out, 0);
        itest_run_ok(kc, env, &out);
        const char *tok = strstr(out.data, "bxk_");
        REQUIRE(tok != NULL);
        fprintf(kf, "%s %.*s\n", c->schools[i].id, (int)strcspn(tok, "\r\n "), tok);
        bx_buf_free(&out);
    }
    fclose(kf);
}

void itest_sim_groups_at_end(const char *tag, const struct timeval *tv, const char *const *env,
                             itest_sim_groups *g)
{
    snprintf(g->score, sizeof(g->score), "bx-score-itest-%s-%ld%06ld", tag, (long)tv->tv_sec,
             (long)tv->tv_usec);
    snprintf(g->escalate, sizeof(g->escalate), "bx-escalate-itest-%s-%ld%06ld", tag,
             (long)tv->tv_sec, (long)tv->tv_usec);
    const char *at1[] = {itest_env("BX_SIM_BIN", BX_SIM_BIN),
                         "group-at-end",
                         "--group",
                         g->score,
                         "--topics",
                         "bx.attendance.v1",
                         NULL};
    const char *at2[] = {itest_env("BX_SIM_BIN", BX_SIM_BIN),
                         "group-at-end",
                         "--group",
                         g->escalate,
                         "--topics",
                         "bx.risk.v1,bx.actions.v1",
                         NULL};
    itest_run_ok(at1, env, NULL);
    itest_run_ok(at2, env, NULL);
    snprintf(g->env_score, sizeof(g->env_score), "BX_CONSUMER_GROUP=%s", g->score);
    snprintf(g->env_escalate, sizeof(g->env_escalate), "BX_CONSUMER_GROUP=%s", g->escalate);
    snprintf(g->spec_score, sizeof(g->spec_score), "%s:bx.attendance.v1", g->score);
    snprintf(g->spec_escalate, sizeof(g->spec_escalate), "%s:bx.risk.v1,bx.actions.v1",
             g->escalate);
}

void itest_sim_generate(const char *dir, const char *prefix, const char *const *size, bool registry,
                        const char *const *env)
{
    const char *gen[20] = {
        itest_env("BX_SIM_BIN", BX_SIM_BIN), "generate", "--out", dir, "--id-prefix", prefix};
    for (int i = 0; size[i] && i < 12; i++)
        gen[6 + i] = size[i];
    itest_run_ok(gen, env, NULL);
    const char *bxctl = itest_env("BXCTL_BIN", BXCTL_BIN);
    itest_run_ok((const char *[]){bxctl, "import", "holidays", itest_holidays_csv(), NULL}, env,
                 NULL);
    if (registry)
        itest_run_ok((const char *[]){bxctl, "import", "--dir", dir, NULL}, env, NULL);
}
