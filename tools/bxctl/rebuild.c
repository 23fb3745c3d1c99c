/* bxctl rebuild: bx-score's Redis keys recomputed from PostgreSQL, with the service's own code. */
#include "bx_clock.h"
#include "bx_pg.h"
#include "bx_redis.h"
#include "bx_registry.h"
#include "bxctl.h"
#include "recompute.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bxctl_score {
    PGconn *db;
    bx_redis *redis; /* one server or a Redis Cluster (BX_REDIS_URL) */
    score_store_redis *store;
    bx_registry *registry;
    score_profiles *profiles;
    score_policy policy;
    score_env env;
};

void bxctl_score_close(bxctl_score *s)
{
    if (s == NULL)
        return;
    score_store_redis_free(s->store);
    bx_redis_close(s->redis);
    score_profiles_free(s->profiles);
    bx_registry_free(s->registry);
    if (s->db)
        PQfinish(s->db);
    free(s);
}

bxctl_score *bxctl_score_open(bxctl_ctx *ctx)
{
    bxctl_score *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        fprintf(stderr, "bxctl: out of memory\n");
        return NULL;
    }
    bx_error err = {0};
    bx_status st = score_policy_load(ctx->score_policy, &s->policy, &err);
    IFOK(st, bx_pg_connect(ctx->conf.pg_url, 10000, &s->db, &err));
    IFOK(st, bx_registry_load(s->db, &s->registry, &err));
    IFOK(st, score_profiles_load(s->db, s->registry, &s->profiles, &err));
    IFOK(st, bx_redis_open(ctx->conf.redis_url, 10000, &s->redis, &err));
    IFOK(st, score_store_redis_open(s->redis, &s->store, &err));
    if (st != BX_OK) {
        fprintf(stderr, "bxctl: %s\n", err.msg);
        bxctl_score_close(s);
        return NULL;
    }
    s->env = (score_env){&s->policy, s->registry, s->profiles, s->store};
    return s;
}

const score_env *bxctl_score_env(const bxctl_score *s)
{
    return &s->env;
}

PGconn *bxctl_score_db(bxctl_score *s)
{
    return s->db;
}

typedef struct rebuild_arg {
    const score_env *env;
    bx_date as_of;
    score_outcome *out;
    size_t unknown;
} rebuild_arg;

/* Recomputes and stores one student's summary exactly as bx-score does (nothing is published:
 * the rebuilt summary is what the service last computed, so it publishes no change again). */
static bx_status recompute_one(const char *student_id, void *arg)
{
    rebuild_arg *a = arg;
    bx_error err = {0};
    bx_status s = score_recompute(a->env, &student_id, 1, a->as_of, a->out, &err);
    IFOK(s, score_recompute_store(a->env, a->out, 1, &err));
    if (s != BX_OK)
        fprintf(stderr, "bxctl rebuild: student %s: %s\n", student_id, err.msg);
    else if (a->out->student == NULL)
        a->unknown++;
    return s;
}

int bxctl_rebuild(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *school = NULL;
    const bxctl_option opts[] = {BXCTL_VALUE("--school", &school)};
    if (!BXCTL_OPTIONS(argc, argv, opts) || (school && !bx_id_valid(school))) {
        fprintf(stderr, "usage: bxctl rebuild [--school ID]\n");
        return 2;
    }
    bxctl_score *sc = bxctl_score_open(ctx);
    if (sc == NULL)
        return 1;
    rebuild_arg arg = {&sc->env, bx_time_local_date(bx_clock_now()), NULL, 0};
    arg.out = malloc(sizeof(*arg.out));
    score_store_scope scope = {school};
    score_store_rebuild_stats stats = {0};
    bx_error err = {0};
    bx_status s =
        arg.out ? score_store_rebuild(sc->db, sc->store, &scope, recompute_one, &arg, &stats, &err)
                : BX_ERR(&err, BX_ENOMEM, "out of memory");
    if (s != BX_OK)
        fprintf(stderr, "bxctl rebuild: %s\n", err.msg);
    else
        printf("rebuilt %s%s: %zu students, %zu facts, %zu classes, %zu roll calls"
               " (%zu students not in the registry kept their facts only)\n",
               school ? "school " : "every school", school ? school : "", stats.students,
               stats.facts, stats.classes, stats.reports, arg.unknown);
    free(arg.out);
    bxctl_score_close(sc);
    return s == BX_OK ? 0 : 1;
}
