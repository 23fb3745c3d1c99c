/* bx-console core pages: home, sign-in, activation, sign-out. */
#include "bx_log.h"
#include "console.h"
#include "identity.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_COOKIE_ATTRS "; Path=/; Secure; HttpOnly; SameSite=Strict"

/* "2026-11-27 18:05:30" in Asia/Shanghai (UTC+8 all year). */
static void local_time_text(bx_time_ms t, char out[24])
{
    bx_date d = bx_time_local_date(t);
    int y, m, day;
    bx_date_to_ymd(d, &y, &m, &day);
    long long local_s = (t / 1000 + 8 * 3600) % 86400;
    if (local_s < 0)
        local_s += 86400;
    snprintf(out, 24, "%04d-%02d-%02d %02lld:%02lld:%02lld", y, m, day, local_s / 3600,
             local_s / 60 % 60, local_s % 60);
}

static bx_status home(console_request *req, console_reply *rep, bx_error *err)
{
    rep->template_name = "home";
    snprintf(rep->title, sizeof(rep->title), "保学");
    tmpl_put(rep->ctx, "role_label", console_role_label(req->person->role));
    tmpl_put_bool(rep->ctx, "homeroom", req->person->role == CONSOLE_HOMEROOM_TEACHER);
    tmpl_put_bool(rep->ctx, "school",
                  req->person->role == CONSOLE_PRINCIPAL ||
                      req->person->role == CONSOLE_ACADEMIC_OFFICE);
    tmpl_put_bool(rep->ctx, "township", req->person->role == CONSOLE_TOWNSHIP_OFFICER);
    tmpl_put_bool(rep->ctx, "county", req->person->role == CONSOLE_COUNTY_OFFICER);
    tmpl_put_bool(rep->ctx, "area",
                  req->person->role == CONSOLE_CITY_OFFICER ||
                      req->person->role == CONSOLE_PROVINCE_OFFICER);
    for (size_t i = 0; i < req->person->nclasses; i++) {
        tmpl_ctx *row = tmpl_add_row(rep->ctx, "classes");
        tmpl_put(row, "class_id", req->person->class_ids[i]);
    }
    return BX_OK;
}

static void login_page(console_request *req, console_reply *rep, const char *error)
{
    rep->template_name = "login";
    snprintf(rep->title, sizeof(rep->title), "登录");
    const char *login = console_form(req, "login");
    tmpl_put(rep->ctx, "login", login);
    tmpl_put(rep->ctx, "error", error);
    if (console_query(req, "activated"))
        tmpl_put(rep->ctx, "notice", "账号已激活，请用新密码登录。");
    else if (console_query(req, "ended"))
        tmpl_put(rep->ctx, "notice", "您已退出登录。");
}

static bx_status login_get(console_request *req, console_reply *rep, bx_error *err)
{
    if (req->person) {
        console_redirect(rep, "/", NULL);
        return BX_OK;
    }
    login_page(req, rep, NULL);
    return BX_OK;
}

static bx_status login_post(console_request *req, console_reply *rep, bx_error *err)
{
    const char *login = console_form(req, "login");
    const char *password = console_form(req, "password");
    if (login == NULL || password == NULL || !login[0] || !password[0] || strlen(login) > 64 ||
        strlen(password) > CONSOLE_PASSWORD_MAX) {
        rep->status = 422;
        login_page(req, rep, "请填写工号（或手机号）和密码。");
        return BX_OK;
    }
    identity_result r;
    bx_status s = identity_login(req->db, login, password, req->client_addr, req->now,
                                 console_server_identity(req->server), &r, err);
    if (s != BX_OK)
        return s;
    if (r.outcome == IDENTITY_LOCKED) {
        char until[24], text[160];
        local_time_text(r.locked_until, until);
        snprintf(text, sizeof(text), "尝试次数过多，已暂时锁定，请于 %s 之后再试。", until);
        rep->status = 429;
        login_page(req, rep, text);
        tmpl_put(rep->ctx, "locked_until", until);
        bx_log_info("sign-in locked until %s (from %s)", until, req->client_addr);
        return BX_OK;
    }
    if (r.outcome != IDENTITY_OK) {
        rep->status = 401;
        login_page(req, rep, "工号（或手机号）或密码不正确。");
        return BX_OK;
    }
    bx_log_info("%s signed in (from %s)", r.staff_id, req->client_addr);
    snprintf(rep->cookie[0], sizeof(rep->cookie[0]), "bx_session=%s" SESSION_COOKIE_ATTRS, r.token);
    snprintf(rep->cookie[1], sizeof(rep->cookie[1]), "bx_pre=; Max-Age=0" SESSION_COOKIE_ATTRS);
    console_redirect(rep, "/", NULL);
    return BX_OK;
}

static bx_status logout_post(console_request *req, console_reply *rep, bx_error *err)
{
    bx_status s = identity_logout(req->db, strtoll(req->session_id, NULL, 10), req->now, err);
    IFOK(s, console_audit(req, "sign_out", NULL, "", err));
    if (s != BX_OK)
        return s;
    snprintf(rep->cookie[0], sizeof(rep->cookie[0]), "bx_session=; Max-Age=0" SESSION_COOKIE_ATTRS);
    console_redirect(rep, "/login?ended=1", NULL);
    return BX_OK;
}

static void activate_page(console_request *req, console_reply *rep, const char *error)
{
    rep->template_name = "activate";
    snprintf(rep->title, sizeof(rep->title), "激活账号");
    tmpl_put(rep->ctx, "staff_id", console_form(req, "staff_id"));
    tmpl_put(rep->ctx, "error", error);
    tmpl_put_int(rep->ctx, "password_min", CONSOLE_PASSWORD_MIN);
}

static bx_status activate_get(console_request *req, console_reply *rep, bx_error *err)
{
    activate_page(req, rep, NULL);
    return BX_OK;
}

static bool all_digits(const char *s, size_t n)
{
    if (s == NULL || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bx_status activate_post(console_request *req, console_reply *rep, bx_error *err)
{
    const char *staff_id = console_form(req, "staff_id");
    const char *code = console_form(req, "code");
    const char *password = console_form(req, "password");
    const char *again = console_form(req, "password_again");
    if (staff_id == NULL || !staff_id[0] || strlen(staff_id) > CONSOLE_ID_MAX ||
        !all_digits(code, CONSOLE_CODE_DIGITS) || password == NULL || again == NULL) {
        rep->status = 422;
        activate_page(req, rep, "请填写工号、短信中的8位激活码和新密码。");
        return BX_OK;
    }
    if (strcmp(password, again) != 0) {
        rep->status = 422;
        activate_page(req, rep, "两次输入的密码不一致。");
        return BX_OK;
    }
    identity_result r;
    bx_status s = identity_activate(req->db, staff_id, code, password, req->client_addr, req->now,
                                    console_server_identity(req->server), &r, err);
    if (s != BX_OK)
        return s;
    switch (r.outcome) {
    case IDENTITY_OK:
        bx_log_info("%s activated the account (from %s)", r.staff_id, req->client_addr);
        console_redirect(rep, "/login?activated=1", NULL);
        return BX_OK;
    case IDENTITY_WEAK:
        rep->status = 422;
        activate_page(req, rep, r.why);
        return BX_OK;
    case IDENTITY_LOCKED: {
        char until[24], text[160];
        local_time_text(r.locked_until, until);
        snprintf(text, sizeof(text), "尝试次数过多，已暂时锁定，请于 %s 之后再试。", until);
        rep->status = 429;
        activate_page(req, rep, text);
        return BX_OK;
    }
    default:
        rep->status = 401;
        activate_page(req, rep, "工号或激活码不正确，或激活码已使用、已过期。");
        return BX_OK;
    }
}

const console_route console_core_routes[] = {
    {"GET", "/", home, true, false},
    {"GET", "/login", login_get, false, false},
    {"POST", "/login", login_post, false, true},
    {"POST", "/logout", logout_post, true, true},
    {"GET", "/activate", activate_get, false, false},
    {"POST", "/activate", activate_post, false, true},
};
const size_t console_core_nroutes = sizeof(console_core_routes) / sizeof(console_core_routes[0]);
