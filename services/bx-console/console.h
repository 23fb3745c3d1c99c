/* bx-console: the contract between the core (server, sessions, CSRF, templates, scope, audit) and
 * the page handlers (page_*.c). A handler gets a checked request and fills a reply; it never
 * touches HTTP, cookies or tokens itself. */
#ifndef CONSOLE_H
#define CONSOLE_H

#include "bx_calendar.h"
#include "bx_kafka.h"
#include "bx_status.h"
#include "scope.h"
#include "tmpl.h"

#include "bx_redis.h"
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define CONSOLE_MAX_PARAMS      4            /* path parameters ":id" in one pattern */
#define CONSOLE_MAX_FIELDS      512          /* query plus form fields; more: 400 */
#define CONSOLE_MAX_FIELD_VALUE 4096         /* bytes of one value; longer: 400 */
#define CONSOLE_MAX_FORM        (256 * 1024) /* bytes of a form body; larger: 413 */

typedef struct console_field {
    const char *name;  /* valid UTF-8, no NUL, at most 64 bytes */
    const char *value; /* valid UTF-8, no control characters but \t \r \n, bounded above */
} console_field;

/* One request as a handler sees it. Everything is borrowed until the handler returns. */
typedef struct console_request {
    const char *method;                     /* "GET" or "POST" */
    const char *path;                       /* decoded path without the query: "/students/S1" */
    const char *params[CONSOLE_MAX_PARAMS]; /* ":name" parts of the pattern, in order */
    size_t nparams;
    const console_field *query; /* ?a=1&b=2, in order, repeats kept */
    size_t nquery;
    const console_field *form; /* application/x-www-form-urlencoded body of a POST */
    size_t nform;
    const console_person *person; /* NULL on public pages (needs_person false, nobody in) */
    const char *client_addr;      /* "203.0.113.9" */
    /* true only for a POST whose form field "csrf" matched the session's token; the core refuses
     * (403, handler not called) every needs_csrf route without it */
    bool csrf_ok;
    const char *csrf_token; /* the session's token, also put in every reply as {{csrf}} */
    const char *session_id; /* the session's id (not its token), "" without a session */
    PGconn *db;             /* this worker thread's connection, as role bx_console */
    bx_redis *redis; /* this worker thread's (one server or a cluster); NULL if Redis is down */
    bx_producer *producer;               /* shared, thread-safe */
    bx_time_ms now;                      /* bx_clock_now() at the request's start */
    void *pages;                         /* console_pages_new's state, shared by every thread */
    const struct console_server *server; /* for console_audit and settings */
} console_request;

/* What a handler answers. The core fills status 200, an empty context with the layout's
 * values (csrf, me_name, me_role, me_staff_id) and nothing else, before calling the handler.
 * - A page: set template (a file templates/<template>.html) and title; fill ctx.
 * - After every successful POST: console_redirect (303 See Other), optionally with flash text,
 *   shown once on the next page.
 * - An error: console_not_found (404, the same page as a student that does not exist), or
 *   status 400/403/409/422 with a message; the core renders its error page. */
typedef struct console_reply {
    unsigned status;
    const char *template_name; /* static string, e.g. "teacher_today"; NULL: error page */
    char title[128];           /* page title, plain text (escaped by the layout) */
    tmpl_ctx *ctx;             /* owned by the core; the handler puts values */
    char redirect[512];        /* local path beginning with "/": 303 to it */
    char flash[256];           /* plain text; after a redirect, shown on the next page */
    char message[256];         /* plain text for the error page */
    char cookie[2][256];       /* core routes only: Set-Cookie values */
    /* A download instead of a page (an export): file_body (malloc'd; the core frees it) of
     * file_len bytes is sent as file_type with Content-Disposition: attachment; filename=
     * file_name (ASCII), when status is 200. */
    char *file_body;
    size_t file_len;
    const char *file_type;
    char file_name[128];
} console_reply;

typedef bx_status (*console_handler)(console_request *req, console_reply *rep, bx_error *err);

/* One route. The pattern's parts that start with ':' match one path segment of 1-64 bytes of
 * A-Z a-z 0-9 _ - . (ids and dates) and go to req->params in order; nothing else is allowed.
 * needs_person: nobody signed in is sent to /login (GET) or refused 403 (POST).
 * needs_csrf: the core refuses the request with 403 before the handler unless the form token
 * matches; every POST route must set it (the core checks this at start).
 * A handler returning an error status answers 500 with a generic page (the error is logged,
 * without personal data): map expected failures to rep->status yourself. */
typedef struct console_route {
    const char *method;
    const char *pattern;
    console_handler handler;
    bool needs_person;
    bool needs_csrf;
} console_route;

/* The page handlers' routes (page_routes.c, owned by the pages; the core ships an empty table).
 * The core tries its own routes (/, /login, /logout, /activate, /static/...) first. */
extern const console_route console_page_routes[];
extern const size_t console_page_nroutes;

/* The pages' shared state (for example a console_store), made once at start, before the server
 * listens, and freed after it stopped; every handler gets it as req->pages. Defined in
 * page_routes.c (the core's stub makes NULL). Settings borrowed for the call. */
typedef struct console_pages_conf {
    const char *pg_url;
    const char *redis_url;
    const char *score_policy; /* BX_SCORE_POLICY ("" for the built-in default) */
} console_pages_conf;
bx_status console_pages_new(const console_pages_conf *conf, void **out, bx_error *err) BX_MUSTCHECK;
void console_pages_free(void *pages);

/* Request fields: the first value of name, or NULL. */
const char *console_query(const console_request *req, const char *name);
const char *console_form(const console_request *req, const char *name);
/* Every value of a repeated form field (checkboxes): fills up to max, returns how many. */
size_t console_form_all(const console_request *req, const char *name, const char **out, size_t max);

/* Reply helpers. */
void console_not_found(console_reply *rep);
void console_fail(console_reply *rep, unsigned status, const char *message);
/* 303 to a local path (must start with "/", not "//"); flash may be NULL. */
void console_redirect(console_reply *rep, const char *path, const char *flash);

/* Where the student sits, from the registry (registry.student, class, school, township), filled
 * into *o as a CONSOLE_OBJ_STUDENT (strings live in *place). BX_ENOTFOUND when the student does
 * not exist: answer it exactly like console_may() == false. */
typedef struct console_place {
    char student_id[CONSOLE_ID_MAX + 1], class_id[CONSOLE_ID_MAX + 1],
        school_id[CONSOLE_ID_MAX + 1], township_code[10], county_code[7];
} console_place;
bx_status console_student_place(const console_request *req, const char *student_id,
                                console_place *place, console_object *o,
                                bx_error *err) BX_MUSTCHECK;
bx_status console_class_place(const console_request *req, const char *class_id,
                              console_place *place, console_object *o, bx_error *err) BX_MUSTCHECK;

/* The one audit call. Every view of a student's personal data (name, guardians, case history)
 * and every write a handler does goes through it, in the same transaction as the write when
 * there is one. action: a short code ("view_student", "rollcall", "home_visit", "sign_off");
 * student_id may be NULL (a class roll call names the class in detail); detail: ids and codes
 * only, never names, phones or notes. Appends to console.audit as the signed-in person. */
bx_status console_audit(const console_request *req, const char *action, const char *student_id,
                        const char *detail, bx_error *err) BX_MUSTCHECK;

#endif
