/* bx-console: the helpers console.h promises the page handlers (fields, replies, places, audit). */
#include "console.h"
#include "bx_log.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "identity.h"

#include <stdio.h>
#include <string.h>

static const char *first(const console_field *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return f[i].value;
    return NULL;
}

const char *console_query(const console_request *req, const char *name)
{
    return first(req->query, req->nquery, name);
}

const char *console_form(const console_request *req, const char *name)
{
    return first(req->form, req->nform, name);
}

size_t console_form_all(const console_request *req, const char *name, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nform && n < max; i++)
        if (strcmp(req->form[i].name, name) == 0)
            out[n++] = req->form[i].value;
    return n;
}

void console_not_found(console_reply *rep)
{
    /* one answer for "no such student" and "not yours", so ids cannot be probed */
    rep->status = 404;
    rep->template_name = NULL;
    rep->redirect[0] = '\0';
    snprintf(rep->title, sizeof(rep->title), "没有找到");
    snprintf(rep->message, sizeof(rep->message), "没有找到这个页面。");
}

void console_fail(console_reply *rep, unsigned status, const char *message)
{
    rep->status = status;
    rep->template_name = NULL;
    rep->redirect[0] = '\0';
    snprintf(rep->message, sizeof(rep->message), "%s", message ? message : "");
}

void console_redirect(console_reply *rep, const char *path, const char *flash)
{
    /* only a local path: never "//host" or a scheme, so a form field cannot send anyone away */
    if (path == NULL || path[0] != '/' || path[1] == '/' || path[1] == '\\' ||
        strpbrk(path, "\r\n") != NULL)
        path = "/";
    snprintf(rep->redirect, sizeof(rep->redirect), "%s", path);
    snprintf(rep->flash, sizeof(rep->flash), "%s", flash ? flash : "");
}

static bx_status place_query(const console_request *req, const char *sql, const char *id,
                             console_place *place, bx_error *err, bool *found)
{
    const char *params[] = {id};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(req->db, sql, 1, params, &res, err);
    *found = false;
    if (s != BX_OK)
        return s;
    if (PQntuples(res) == 1) {
        *found = true;
        snprintf(place->student_id, sizeof(place->student_id), "%s", PQgetvalue(res, 0, 0));
        snprintf(place->class_id, sizeof(place->class_id), "%s", PQgetvalue(res, 0, 1));
        snprintf(place->school_id, sizeof(place->school_id), "%s", PQgetvalue(res, 0, 2));
        snprintf(place->township_code, sizeof(place->township_code), "%s", PQgetvalue(res, 0, 3));
        snprintf(place->county_code, sizeof(place->county_code), "%s", PQgetvalue(res, 0, 4));
    }
    PQclear(res);
    return BX_OK;
}

_Static_assert(CONSOLE_ID_MAX == BX_ID_MAX, "a console id is a registry id");

/* A registry id: 1-32 of A-Z a-z 0-9 _ -. */
/* Where a student or a class is: the query that finds it ($1 its id; columns student, class,
 * school, township, county) and the error of an unknown one. */
static const struct place_kind {
    console_object_kind kind;
    const char *sql, *missing;
} student_kind = {CONSOLE_OBJ_STUDENT,
                  "SELECT st.id, st.class_id, st.school_id, sc.township_code, "
                  "tw.county_code FROM registry.student st "
                  "JOIN registry.school sc ON sc.id = st.school_id "
                  "JOIN registry.township tw ON tw.code = sc.township_code "
                  "WHERE st.id = $1",
                  "no such student"},
  class_kind = {CONSOLE_OBJ_CLASS,
                "SELECT '', cl.id, cl.school_id, sc.township_code, tw.county_code "
                "FROM registry.class cl "
                "JOIN registry.school sc ON sc.id = cl.school_id "
                "JOIN registry.township tw ON tw.code = sc.township_code "
                "WHERE cl.id = $1",
                "no such class"};

static bx_status object_place(const console_request *req, const struct place_kind *k,
                              const char *id, console_place *place, console_object *o,
                              bx_error *err)
{
    memset(place, 0, sizeof(*place));
    memset(o, 0, sizeof(*o));
    if (!bx_id_valid(id))
        return BX_ERR(err, BX_ENOTFOUND, "%s", k->missing);
    bool found = false;
    bx_status s = place_query(req, k->sql, id, place, err, &found);
    if (s != BX_OK)
        return s;
    if (!found)
        return BX_ERR(err, BX_ENOTFOUND, "%s", k->missing);
    bool student = k->kind == CONSOLE_OBJ_STUDENT;
    *o = (console_object){k->kind,
                          student ? place->student_id : NULL,
                          place->class_id,
                          place->school_id,
                          place->township_code,
                          place->county_code,
                          NULL};
    return BX_OK;
}

bx_status console_student_place(const console_request *req, const char *student_id,
                                console_place *place, console_object *o, bx_error *err)
{
    return object_place(req, &student_kind, student_id, place, o, err);
}

bx_status console_class_place(const console_request *req, const char *class_id,
                              console_place *place, console_object *o, bx_error *err)
{
    return object_place(req, &class_kind, class_id, place, o, err);
}

bx_status console_audit(const console_request *req, const char *action, const char *student_id,
                        const char *detail, bx_error *err)
{
    if (req->person == NULL)
        return BX_ERR(err, BX_EDENIED, "audit %s: nobody is signed in", action);
    return identity_audit(req->db, req->now, req->person->staff_id, action, student_id, detail,
                          req->client_addr, err);
}
