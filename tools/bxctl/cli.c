/* cli.c: what bxctl's commands share on the command line: options read from a table, whole
 * numbers in bounds, a command's output buffer, and text tables. */
#include "bxctl.h"
#include "bx_pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bxctl_option *option_named(const char *word, const bxctl_option *opts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(word, opts[i].name) == 0)
            return &opts[i];
    return NULL;
}

bool bxctl_options(int argc, char **argv, const bxctl_option *opts, size_t n,
                   const char **positional, int npositional)
{
    int seen = 0;
    for (int i = 0; i < argc; i++) {
        const bxctl_option *o = option_named(argv[i], opts, n);
        if (o == NULL && argv[i][0] != '-' && seen < npositional)
            positional[seen++] = argv[i];
        else if (o == NULL || (o->value && i + 1 >= argc))
            return false;
        else if (o->value)
            *o->value = argv[++i];
        else
            *o->flag = true;
    }
    return true;
}

bool bxctl_number(const char *cmd, const char *option, const char *text, long long min,
                  long long max, const char *unit, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected %s%s%lld to %lld, got \"%.20s\"\n", cmd, option,
                unit ? unit : "", unit ? " from " : "", min, max, text);
        return false;
    }
    *out = v;
    return true;
}

int bxctl_print(bx_buf *out, bx_status st, const char *cmd)
{
    if (st == BX_OK)
        fputs(out->data ? out->data : "", stdout);
    else
        fprintf(stderr, "%s: out of memory\n", cmd);
    bx_buf_free(out);
    return st == BX_OK ? 0 : 1;
}

PGresult *bxctl_query(PGconn *db, const char *cmd, const char *sql, int nparams,
                      const char *const *params)
{
    PGresult *res = NULL;
    bx_error err = {0};
    if (bx_pg_query(db, sql, nparams, params, &res, &err) != BX_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err.msg);
        return NULL;
    }
    return res;
}

void bxctl_table_row(const bxctl_column *cols, size_t n, const char *gap, const char *const *cells)
{
    for (size_t i = 0; i < n; i++) {
        const char *text = cells ? cells[i] : cols[i].heading;
        int cut = cells && cols[i].cut ? cols[i].width : (int)strlen(text);
        if (i + 1 == n)
            printf("%.*s\n", cut, text);
        else
            printf("%-*.*s%s", cols[i].width, cut, text, gap);
    }
}
