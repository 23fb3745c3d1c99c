/* bxctl: commands shared between the operator tool's modules. */
#ifndef BXCTL_H
#define BXCTL_H

#include "bx_config.h"
#include "bx_status.h"

#include <libpq-fe.h>

typedef struct bxctl_ctx {
    bx_common_conf conf;
    char *sql_dir;
    long long topic_partitions;
    char *score_policy;
} bxctl_ctx;

/* Each command returns the process exit code: 0 done, 1 failed, 2 usage. */
int bxctl_migrate(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_topics(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_import(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_key(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_clock(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_rebuild(bxctl_ctx *ctx, int argc, char **argv);
int bxctl_student(bxctl_ctx *ctx, int argc, char **argv);

/* What bx-score's computations read (rebuild.c): PostgreSQL, Redis, the registry, the profiles
 * and the policy. Returns NULL after printing why; close with bxctl_score_close. */
struct score_env;
typedef struct bxctl_score bxctl_score;
bxctl_score *bxctl_score_open(bxctl_ctx *ctx);
const struct score_env *bxctl_score_env(const bxctl_score *s);
PGconn *bxctl_score_db(bxctl_score *s);
void bxctl_score_close(bxctl_score *s);

/* Connects to the configured database or prints why not. */
PGconn *bxctl_db(bxctl_ctx *ctx);

#endif
