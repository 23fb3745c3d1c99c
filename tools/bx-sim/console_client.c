/* console_client: the simulated township officers in bx-console, over HTTPS as a browser: sign in
 * (the login form's CSRF token and pre-session cookie, then the session cookie), the case's page
 * (its CSRF token and the form's token), the sign-off form, and the next page's flash line. */
#include "console_client.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_pg.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_OFFICERS 64
#define MAX_PAGE     (1u << 20)
/* bx-console ends a session unused for 30 minutes (BX_SESSION_IDLE_S): on the driven clock a
 * session is used again only within the same quarter of an hour, else the officer signs in
 * again. */
#define SESSION_REUSE_MS (15 * 60 * 1000)

typedef struct officer {
    char staff_id[33];
    char password[160];
    char cookie[200]; /* "bx_session=..." or "" */
    bx_time_ms used_at;
} officer;

struct sim_console {
    bool loaded;
    char base[256];
    char ca_file[512];
    officer officers[MAX_OFFICERS];
    int nofficers;
    CURL *curl;
    long long unsigned_returns;
    int printed;
};

typedef struct page {
    long status;
    bx_buf body;
    char location[512];
    char session[160];
    char pre[160];
} page;

bool sim_console_signs(const sim_action *a)
{
    return a->signed_off && (a->kind == SIM_RETURNED || a->kind == SIM_SIGNOFF);
}

bx_status sim_console_new(sim_console **out, bx_error *err)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return BX_ERR(err, BX_ENOMEM, "console: out of memory");
    return BX_OK;
}

void sim_console_free(sim_console *sc)
{
    if (sc == NULL)
        return;
    if (sc->curl)
        curl_easy_cleanup(sc->curl);
    memset(sc->officers, 0, sizeof(sc->officers));
    free(sc);
}

long long sim_console_unsigned(const sim_console *sc)
{
    return sc ? sc->unsigned_returns : 0;
}

static bx_status load_accounts(sim_console *sc, const char *path, bx_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return BX_ERR(err, BX_EIO, "BX_SIM_CONSOLE_ACCOUNTS: cannot read %s", path);
    char line[256];
    int lineno = 0;
    bx_status s = BX_OK;
    while (s == BX_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        officer *o = &sc->officers[sc->nofficers];
        if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
            continue;
        if (sc->nofficers >= MAX_OFFICERS)
            s = BX_ERR(err, BX_EINVAL, "%s:%d: more than %d accounts", path, lineno, MAX_OFFICERS);
        else if (sscanf(line, "%32s %159s", o->staff_id, o->password) != 2)
            s = BX_ERR(err, BX_EINVAL, "%s:%d: expected \"staff_id password\"", path, lineno);
        else
            sc->nofficers++;
    }
    memset(line, 0, sizeof(line));
    fclose(f);
    return s;
}

/* The settings, when the first sign-off is due. */
static bx_status load(sim_console *sc, bx_error *err)
{
    if (sc->loaded)
        return BX_OK;
    const char *base = getenv("BX_SIM_CONSOLE"), *ca = getenv("BX_SIM_CONSOLE_CA"),
               *accounts = getenv("BX_SIM_CONSOLE_ACCOUNTS");
    if (base == NULL || strncmp(base, "https://", 8) != 0 || strlen(base) >= sizeof(sc->base))
        return BX_ERR(err, BX_EINVAL,
                      "the township signs a return report in bx-console: set BX_SIM_CONSOLE to "
                      "its https:// address (got \"%.100s\")",
                      base ? base : "");
    if (ca == NULL || ca[0] == '\0' || strlen(ca) >= sizeof(sc->ca_file))
        return BX_ERR(err, BX_EINVAL,
                      "BX_SIM_CONSOLE_CA: the CA file bx-console's certificate "
                      "is checked against is not set");
    if (accounts == NULL || accounts[0] == '\0')
        return BX_ERR(err, BX_EINVAL,
                      "BX_SIM_CONSOLE_ACCOUNTS: the officers' accounts file is "
                      "not set");
    snprintf(sc->base, sizeof(sc->base), "%s", base);
    size_t n = strlen(sc->base);
    while (n > 0 && sc->base[n - 1] == '/')
        sc->base[--n] = '\0';
    snprintf(sc->ca_file, sizeof(sc->ca_file), "%s", ca);
    bx_status s = load_accounts(sc, accounts, err);
    if (s == BX_OK && (sc->curl = curl_easy_init()) == NULL)
        s = BX_ERR(err, BX_EFATAL, "curl: cannot start");
    sc->loaded = s == BX_OK;
    return s;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return bx_buf_append(arg, p, size * n) == BX_OK ? size * n : 0;
}

static void cookie_value(const char *v, const char *name, char *out, size_t size)
{
    size_t len = strlen(name);
    while (*v == ' ')
        v++;
    if (strncmp(v, name, len) != 0 || v[len] != '=')
        return;
    v += len + 1;
    size_t n = strcspn(v, ";\r\n");
    if (n < size)
        snprintf(out, size, "%.*s", (int)n, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    page *pg = arg;
    size_t len = size * n;
    char line[1024];
    if (len >= sizeof(line))
        return len;
    memcpy(line, p, len);
    line[len] = '\0';
    if (strncasecmp(line, "Location:", 9) == 0) {
        const char *v = line + 9 + strspn(line + 9, " ");
        snprintf(pg->location, sizeof(pg->location), "%.*s", (int)strcspn(v, "\r\n"), v);
    } else if (strncasecmp(line, "Set-Cookie:", 11) == 0) {
        cookie_value(line + 11, "bx_session", pg->session, sizeof(pg->session));
        cookie_value(line + 11, "bx_pre", pg->pre, sizeof(pg->pre));
    }
    return len;
}

/* GET (form NULL) or POST a form; redirects are not followed. Caller frees pg->body. */
static bx_status request(sim_console *sc, const char *path, const char *cookie, const char *form,
                         page *pg, bx_error *err)
{
    memset(pg, 0, sizeof(*pg));
    bx_buf_init(&pg->body, MAX_PAGE);
    char url[512];
    snprintf(url, sizeof(url), "%s%s", sc->base, path);
    CURL *c = sc->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, sc->ca_file);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &pg->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, pg);
    if (cookie && *cookie)
        curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
    if (form)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    CURLcode code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &pg->status);
    bx_status s = bx_buf_puts(&pg->body, ""); /* a body to search, even empty */
    if (code != CURLE_OK)
        s = BX_ERR(err, BX_EIO, "bx-console %s: %s", path, curl_easy_strerror(code));
    else if (s != BX_OK)
        s = BX_ERR(err, BX_EIO, "bx-console %s: page over %u bytes", path, MAX_PAGE);
    return s;
}

/* The URL-encoded value of the first <input ... name="<name>" value="..."> of html into out. */
static bool form_value(sim_console *sc, const char *html, const char *name, char *out, size_t size)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "name=\"%s\" value=\"", name);
    const char *p = strstr(html, needle);
    if (p == NULL)
        return false;
    p += strlen(needle);
    char *e = curl_easy_escape(sc->curl, p, (int)strcspn(p, "\""));
    bool ok = e && strlen(e) < size;
    if (ok)
        snprintf(out, size, "%s", e);
    curl_free(e);
    return ok;
}

static officer *officer_of(sim_console *sc, const char *staff_id)
{
    for (int i = 0; i < sc->nofficers; i++)
        if (strcmp(sc->officers[i].staff_id, staff_id) == 0)
            return &sc->officers[i];
    return NULL;
}

/* A session of the officer's, reused within SESSION_REUSE_MS of driven time. */
static bx_status sign_in(sim_console *sc, officer *o, bx_error *err)
{
    bx_time_ms now = bx_clock_now();
    if (o->cookie[0] && now >= o->used_at && now - o->used_at < SESSION_REUSE_MS) {
        o->used_at = now;
        return BX_OK;
    }
    o->cookie[0] = '\0';
    page pg;
    char csrf[256], cookie[200], form[600];
    bx_status s = request(sc, "/login", NULL, NULL, &pg, err);
    if (s == BX_OK && (pg.status != 200 || !pg.pre[0] ||
                       !form_value(sc, pg.body.data, "csrf", csrf, sizeof(csrf))))
        s = BX_ERR(err, BX_EIO, "bx-console /login: HTTP %ld without a sign-in form", pg.status);
    snprintf(cookie, sizeof(cookie), "bx_pre=%s", pg.pre);
    bx_buf_free(&pg.body);
    if (s != BX_OK)
        return s;
    char *password = curl_easy_escape(sc->curl, o->password, 0);
    if (password == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    snprintf(form, sizeof(form), "csrf=%s&login=%s&password=%s", csrf, o->staff_id, password);
    memset(password, 0, strlen(password));
    curl_free(password);
    s = request(sc, "/login", cookie, form, &pg, err);
    memset(form, 0, sizeof(form));
    if (s == BX_OK && (pg.status != 303 || !pg.session[0]))
        s = BX_ERR(err, BX_EIO, "bx-console: %s cannot sign in (HTTP %ld)", o->staff_id, pg.status);
    if (s == BX_OK) {
        snprintf(o->cookie, sizeof(o->cookie), "bx_session=%s", pg.session);
        o->used_at = now;
    }
    bx_buf_free(&pg.body);
    return s;
}

/* The student's open case, or 0. */
static bx_status open_case(PGconn *db, const char *student_id, long long *case_id, bx_error *err)
{
    *case_id = 0;
    const char *params[] = {student_id};
    PGresult *res = NULL;
    bx_status s =
        bx_pg_query(db, "SELECT id FROM cases.case WHERE student_id = $1 AND closed_at IS NULL", 1,
                    params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        *case_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return s;
}

/* The flash line of a page: "已签署复学报告书", "未提交：...". */
static void flash_of(const char *html, char *out, size_t size)
{
    const char *p = strstr(html, "class=\"flash\"");
    p = p ? strchr(p, '>') : NULL;
    if (p == NULL) {
        out[0] = '\0';
        return;
    }
    p++;
    snprintf(out, size, "%.*s", (int)strcspn(p, "<"), p);
}

/* The case's form as the signed-in officer: page, post, the next page's flash in *flash. */
static bx_status sign_case(sim_console *sc, officer *o, const char *path, const char *return_date,
                           char *flash, size_t size, bx_error *err)
{
    page pg;
    char csrf[256], token[128], form[600];
    bx_status s = request(sc, path, o->cookie, NULL, &pg, err);
    if (s == BX_OK && pg.status == 200 && !strstr(pg.body.data, "name=\"return_date\"")) {
        bx_buf_free(&pg.body); /* closed meanwhile: no form */
        snprintf(flash, size, "个案已结案，无需签署");
        return BX_OK;
    }
    if (s == BX_OK &&
        (pg.status != 200 || !form_value(sc, pg.body.data, "csrf", csrf, sizeof(csrf)) ||
         !form_value(sc, pg.body.data, "token", token, sizeof(token))))
        s = BX_ERR(err, BX_EIO, "bx-console %s: HTTP %ld without the sign-off form", path,
                   pg.status);
    bx_buf_free(&pg.body);
    if (s != BX_OK)
        return s;
    snprintf(form, sizeof(form), "csrf=%s&token=%s&return_date=%s", csrf, token, return_date);
    s = request(sc, path, o->cookie, form, &pg, err);
    if (s == BX_OK && (pg.status != 303 || strcmp(pg.location, path) != 0))
        s = BX_ERR(err, BX_EIO, "bx-console %s: the sign-off answered HTTP %ld", path, pg.status);
    bx_buf_free(&pg.body);
    IFOK(s, request(sc, path, o->cookie, NULL, &pg, err));
    if (s == BX_OK)
        flash_of(pg.body.data, flash, size);
    bx_buf_free(&pg.body);
    return s;
}

bx_status sim_console_signoff(sim_console *sc, const sim_county *c, PGconn *db, const sim_action *a,
                              sim_drive_counts *counts, bool *unsigned_return, bx_error *err)
{
    *unsigned_return = false;
    bx_status s = load(sc, err);
    if (s != BX_OK)
        return s;
    const sim_student *st = &c->students[a->student];
    char officer_id[24], path[64], return_date[11];
    sim_township_officer_id(c, c->schools[sim_student_school(c, a->student)].township, officer_id);
    officer *o = officer_of(sc, officer_id);
    if (o == NULL)
        return BX_ERR(err, BX_EINVAL, "BX_SIM_CONSOLE_ACCOUNTS: no account of township officer %s",
                      officer_id);
    long long case_id = 0;
    s = open_case(db, st->id, &case_id, err);
    if (s != BX_OK)
        return s;
    if (case_id == 0) {
        /* Nothing to sign: no case is open for the child (the officer finds none either). */
        sc->unsigned_returns++;
        *unsigned_return = true;
        return BX_OK;
    }
    snprintf(path, sizeof(path), "/township/cases/%lld", case_id);
    bx_date_format(a->returned != 0 ? a->returned : a->date, return_date);
    char flash[320] = "";
    s = sign_in(sc, o, err);
    IFOK(s, sign_case(sc, o, path, return_date, flash, sizeof(flash), err));
    if (s != BX_OK)
        return s;
    if (strcmp(flash, "已签署复学报告书") == 0) {
        counts->accepted++;
    } else if (strncmp(flash, "已签署：个案已结案", strlen("已签署：个案已结案")) == 0) {
        /* The case closed between the look-up and the form (its return was recorded without
         * paperwork): nothing left to sign, so the school records the return itself. */
        sc->unsigned_returns++;
        *unsigned_return = true;
    } else if (strncmp(flash, "已提交过", strlen("已提交过")) == 0) {
        counts->duplicates++;
    } else if (strncmp(flash, "服务器未确认", strlen("服务器未确认")) == 0) {
        counts->failed++;
        return BX_ERR(err, BX_EIO, "bx-console %s: %s", path, flash);
    } else {
        counts->rejected++;
        if (sc->printed++ < 10)
            fprintf(stderr, "bx-sim: %s %s: %s\n", officer_id, path, flash);
    }
    return BX_OK;
}
