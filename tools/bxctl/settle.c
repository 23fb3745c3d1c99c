/* bxctl settle: waits until the pipeline has settled (common/bx_settle: every consumer group has
 * committed up to the end of its topics, no timer is due, the outbox is empty, nothing else is
 * pending), so a simulation advances its clock only on a quiet pipeline (architecture.md, "Time").
 */
#include "bx_clock.h"
#include "bx_pg.h"
#include "bx_settle.h"
#include "bxctl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct settle_args {
    bx_settle_spec specs[BX_SETTLE_MAX_GROUPS];
    int nspecs;
} settle_args;

/* Adds one "group:topic,topic" entry (len bytes of text). */
static bool spec_add(settle_args *a, const char *text, size_t len, const char *origin)
{
    bx_error err = {0};
    if (bx_settle_spec_add(a->specs, &a->nspecs, text, len, &err) != BX_OK) {
        fprintf(stderr, "bxctl settle: %s: %s\n", origin, err.msg);
        return false;
    }
    return true;
}

/* Entries separated by spaces or ';' (BX_SETTLE_GROUPS). */
static bool specs_parse(settle_args *a, const char *list, const char *origin)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t n = strcspn(p, " ;");
        if (n > 0 && !spec_add(a, p, n, origin))
            return false;
        p += n;
    }
    return true;
}

static void print_waiting(void *arg, const char *waiting)
{
    (void)arg;
    fprintf(stderr, "bxctl settle: waiting for\n%s", waiting);
}

static void usage(void)
{
    fprintf(stderr, "usage: bxctl settle [--group GROUP:TOPIC[,TOPIC]]... [--timeout SECONDS]\n"
                    "                    [--interval MS] [--verbose]\n");
}

int bxctl_settle(bxctl_ctx *ctx, int argc, char **argv)
{
    static settle_args a; /* large: kept off the stack; bxctl runs one command */
    memset(&a, 0, sizeof(a));
    long long timeout_s = 60, interval_ms = 200;
    bool verbose = false, groups_given = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
            verbose = true;
        } else if (strcmp(arg, "--group") == 0 && i + 1 < argc) {
            groups_given = true;
            if (!spec_add(&a, argv[i + 1], strlen(argv[i + 1]), "--group"))
                return 2;
            i++;
        } else if (strcmp(arg, "--timeout") == 0 && i + 1 < argc) {
            if (!bxctl_number("bxctl settle", arg, argv[++i], 1, 86400, "seconds", &timeout_s))
                return 2;
        } else if (strcmp(arg, "--interval") == 0 && i + 1 < argc) {
            if (!bxctl_number("bxctl settle", arg, argv[++i], 10, 60000, "milliseconds",
                              &interval_ms))
                return 2;
        } else {
            usage();
            return 2;
        }
    }
    if (!groups_given && !specs_parse(&a, ctx->settle_groups, "BX_SETTLE_GROUPS"))
        return 2;

    int rc = 1;
    bx_error err = {0};
    bx_settle *st = NULL;
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        goto out;
    if (bx_settle_new(ctx->conf.kafka_brokers, a.specs, a.nspecs, db, &st, &err) != BX_OK) {
        fprintf(stderr, "bxctl settle: %s\n", err.msg);
        goto out;
    }
    const bx_settle_wait_opts opts = {.timeout_ms = (int)(timeout_s * 1000),
                                      .busy_interval_ms = (int)interval_ms,
                                      .quiet_interval_ms = (int)interval_ms,
                                      .on_waiting = verbose ? print_waiting : NULL};
    bx_settle_result last;
    int checks = 0;
    long long start = bx_monotonic_ms();
    bx_status s = bx_settle_wait(st, &opts, &last, &checks, &err);
    if (s == BX_OK) {
        printf("settled (%d checks, %.1f s)\n", checks, (bx_monotonic_ms() - start) / 1000.0);
        rc = 0;
    } else if (s == BX_ETIMEOUT) {
        fprintf(stderr, "bxctl settle: not settled after %lld s:\n%s", timeout_s,
                last.quiet ? "  the topics kept growing between checks\n" : last.waiting);
    } else {
        fprintf(stderr, "bxctl settle: %s\n", err.msg);
    }
out:
    bx_settle_free(st);
    if (db)
        PQfinish(db);
    return rc;
}
