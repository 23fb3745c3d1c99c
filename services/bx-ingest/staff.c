/* bxvalidate staff: the registry's staff without names or phones (id, role, where they work), for
 * holding whoever a record names to account. The in-memory registry (common/bx_registry) has no
 * staff; this directory is loaded beside it and replaced with it. */
#include "bx_pg.h"
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ingest_staff_dir {
    ingest_staff *rows; /* sorted by id */
    size_t count;
};

static int by_id(const void *a, const void *b)
{
    return strcmp(((const ingest_staff *)a)->id, ((const ingest_staff *)b)->id);
}

bx_status ingest_staff_dir_new(const ingest_staff *rows, size_t n, ingest_staff_dir **out,
                               bx_error *err)
{
    *out = NULL;
    ingest_staff_dir *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->rows = calloc(n + 1, sizeof(*d->rows))) == NULL) {
        free(d);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    if (n)
        memcpy(d->rows, rows, n * sizeof(*rows));
    d->count = n;
    qsort(d->rows, n, sizeof(*d->rows), by_id);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(d->rows[i - 1].id, d->rows[i].id) == 0) {
            bx_status s = BX_ERR(err, BX_EINVAL, "staff \"%s\" appears twice", d->rows[i].id);
            ingest_staff_dir_free(d);
            return s;
        }
    }
    *out = d;
    return BX_OK;
}

void ingest_staff_dir_free(ingest_staff_dir *d)
{
    if (d == NULL)
        return;
    free(d->rows);
    free(d);
}

const ingest_staff *ingest_staff_find(const ingest_staff_dir *d, const char *id)
{
    if (d == NULL || id == NULL)
        return NULL;
    ingest_staff key;
    snprintf(key.id, sizeof(key.id), "%s", id);
    if (strlen(id) >= sizeof(key.id))
        return NULL;
    return bsearch(&key, d->rows, d->count, sizeof(*d->rows), by_id);
}

bool ingest_staff_serves(const ingest_staff *m, const bx_reg_school *school)
{
    if (m->school_id[0] && strcmp(m->school_id, school->id) == 0)
        return true;
    if (strcmp(m->role, "township_officer") == 0 && m->township_code[0])
        return strcmp(m->township_code, school->township_code) == 0;
    if (strcmp(m->role, "county_officer") == 0 && m->county_code[0])
        return strcmp(m->county_code, school->county_code) == 0;
    return false;
}

bx_status ingest_staff_load(PGconn *db, ingest_staff_dir **out, bx_error *err)
{
    *out = NULL;
    PGresult *res = NULL;
    bx_status s = bx_pg_query(db,
                              "SELECT id, role, coalesce(school_id, ''), "
                              "coalesce(township_code, ''), coalesce(county_code, '') "
                              "FROM registry.staff",
                              0, NULL, &res, err);
    if (s != BX_OK)
        return s;
    size_t n = (size_t)PQntuples(res);
    ingest_staff *rows = calloc(n + 1, sizeof(*rows));
    if (rows == NULL) {
        PQclear(res);
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        ingest_staff *m = &rows[i];
        snprintf(m->id, sizeof(m->id), "%s", PQgetvalue(res, (int)i, 0));
        snprintf(m->role, sizeof(m->role), "%s", PQgetvalue(res, (int)i, 1));
        snprintf(m->school_id, sizeof(m->school_id), "%s", PQgetvalue(res, (int)i, 2));
        snprintf(m->township_code, sizeof(m->township_code), "%s", PQgetvalue(res, (int)i, 3));
        snprintf(m->county_code, sizeof(m->county_code), "%s", PQgetvalue(res, (int)i, 4));
    }
    PQclear(res);
    s = ingest_staff_dir_new(rows, n, out, err);
    free(rows);
    return s;
}
