/* bx-sim: the simulated county: generate its registry, drive a term through bx-ingest in
 * accelerated time, and summarise what the pipeline made of it against the ground truth. */
#include "simtool.h"

#include "bx_clock.h"
#include "bx_pg.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_GROUPS 8

typedef struct options {
    unsigned long long seed;
    sim_size size;
    const char *holidays, *dir, *api, *keys, *bxctl, *group, *topics;
    const char *groups[MAX_GROUPS + 1];
    int ngroups, days;
    bx_date from;
    int quiet, no_summary;
} options;

static void usage(void)
{
    fprintf(
        stderr,
        "usage: bx-sim generate --out DIR [size]         registry CSVs, truth.csv, schools.txt,\n"
        "                                                household/{household,poverty}.csv\n"
        "       bx-sim run --state DIR --api URL --keys FILE [--from DATE] [--days N]\n"
        "                  [--group GROUP:TOPIC[,TOPIC]]...\n"
        "                  [--bxctl PATH] [--quiet] [--no-summary] [size]\n"
        "       bx-sim summary --state DIR [--bxctl PATH] [size]\n"
        "       bx-sim group-at-end --group NAME --topics T1,T2\n"
        "size: --seed N (default 42) --townships N (3) --schools N (6) --students N (2000)\n"
        "      --id-prefix P (K; ids of students, classes and staff start with it)\n"
        "      --holidays FILE (the national list, default deploy/policy/"
        "cn-public-holidays-2026.csv)\n"
        "run and summary read BX_PG_URL, BX_KAFKA_BROKERS and BX_CLOCK=file:<path>.\n");
}

static int int_arg(const char *opt, const char *v, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (v == NULL || *v == '\0' || *end != '\0' || errno || n < lo || n > hi) {
        fprintf(stderr, "bx-sim: %s: expected an integer from %lld to %lld, got \"%s\"\n", opt, lo,
                hi, v ? v : "");
        return -1;
    }
    *out = n;
    return 0;
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.seed = 42,
                   .size = {3, 6, 2000, NULL},
                   .holidays = BX_DEFAULT_HOLIDAYS,
                   .from = BX_DATE_NONE};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n = 0;
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        if (strcmp(a, "--no-summary") == 0) {
            o->no_summary = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "bx-sim: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--seed") == 0) {
            if (int_arg(a, v, 0, (long long)(~0ULL >> 1), &n))
                return -1;
            o->seed = (unsigned long long)n;
        } else if (strcmp(a, "--townships") == 0) {
            if (int_arg(a, v, 1, SIM_MAX_TOWNSHIPS, &n))
                return -1;
            o->size.townships = (int)n;
        } else if (strcmp(a, "--schools") == 0) {
            if (int_arg(a, v, 1, SIM_MAX_SCHOOLS, &n))
                return -1;
            o->size.schools = (int)n;
        } else if (strcmp(a, "--students") == 0) {
            if (int_arg(a, v, 40, SIM_MAX_STUDENTS, &n))
                return -1;
            o->size.students = (int)n;
        } else if (strcmp(a, "--days") == 0) {
            if (int_arg(a, v, 1, 400, &n))
                return -1;
            o->days = (int)n;
        } else if (strcmp(a, "--id-prefix") == 0) {
            o->size.id_prefix = v;
        } else if (strcmp(a, "--from") == 0) {
            if (bx_date_parse(v, &o->from) != BX_OK) {
                fprintf(stderr, "bx-sim: --from: expected a date YYYY-MM-DD, got \"%s\"\n", v);
                return -1;
            }
        } else if (strcmp(a, "--holidays") == 0) {
            o->holidays = v;
        } else if (strcmp(a, "--out") == 0 || strcmp(a, "--state") == 0) {
            o->dir = v;
        } else if (strcmp(a, "--api") == 0) {
            o->api = v;
        } else if (strcmp(a, "--keys") == 0) {
            o->keys = v;
        } else if (strcmp(a, "--bxctl") == 0) {
            o->bxctl = v;
        } else if (strcmp(a, "--topics") == 0) {
            o->topics = v;
        } else if (strcmp(a, "--group") == 0) {
            if (o->ngroups >= MAX_GROUPS) {
                fprintf(stderr, "bx-sim: at most %d --group\n", MAX_GROUPS);
                return -1;
            }
            o->group = v;
            o->groups[o->ngroups++] = v;
        } else {
            fprintf(stderr, "bx-sim: unknown option %s\n", a);
            return -1;
        }
    }
    return 0;
}

static int write_file(const char *dir, const char *name, const bx_buf *b)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    bx_error err = {0};
    if (bx_buf_write_file(b, path, &err) != BX_OK) {
        fprintf(stderr, "bx-sim: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int cmd_generate(const sim_county *c, const options *o)
{
    if (o->dir == NULL) {
        fprintf(stderr, "bx-sim generate: --out DIR is required\n");
        return 2;
    }
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bx-sim: cannot create %s: %s\n", o->dir, strerror(errno));
        return 1;
    }
    /* A province's students file is a few hundred MB: one file at a time, up to 2 GiB. */
    bx_buf b;
    bx_buf_init(&b, (size_t)2 << 30);
    int rc = 0;
    for (int i = 0; i < SIM_NFILES && rc == 0; i++) {
        bx_buf_reset(&b);
        rc = sim_county_csv(c, i, &b) == BX_OK ? write_file(o->dir, sim_file_name(i), &b) : -2;
        if (rc == -2)
            fprintf(stderr, "bx-sim generate: %s: out of memory\n", sim_file_name(i));
    }
    bx_buf_reset(&b);
    if (rc == 0)
        rc = sim_truth_csv(c, &b) == BX_OK ? write_file(o->dir, "truth.csv", &b) : -1;
    bx_buf_reset(&b);
    for (int i = 0; i < c->nschools && rc == 0; i++)
        rc = bx_buf_printf(&b, "%s\n", c->schools[i].id) == BX_OK ? 0 : -1;
    if (rc == 0)
        rc = write_file(o->dir, "schools.txt", &b);
    /* 四查三比对's lists come from the household register and the poverty office, not from the
     * schools: a folder of their own, which bxctl import --dir of the registry leaves alone */
    char household[1024];
    snprintf(household, sizeof(household), "%s/household", o->dir);
    if (rc == 0 && mkdir(household, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bx-sim: cannot create %s: %s\n", household, strerror(errno));
        rc = -1;
    }
    bx_buf_reset(&b);
    if (rc == 0)
        rc = sim_household_csv(c, &b) == BX_OK ? write_file(household, "household.csv", &b) : -1;
    bx_buf_reset(&b);
    if (rc == 0)
        rc = sim_poverty_csv(c, &b) == BX_OK ? write_file(household, "poverty.csv", &b) : -1;
    bx_buf_free(&b);
    if (rc != 0)
        return 1;
    int drifters = 0;
    for (int i = 0; i < c->nstudents; i++)
        drifters += c->students[i].fate != SIM_STAYS;
    fprintf(stderr,
            "bx-sim: county %s, seed %llu: %d townships, %d schools, %d classes, %d students "
            "in %s\n",
            c->code, (unsigned long long)c->seed, c->size.townships, c->nschools, c->nclasses,
            c->nstudents, o->dir);
    (void)drifters; /* the truth stays hidden until the summary */
    return 0;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static int connect_db(PGconn **db)
{
    bx_error err = {0};
    const char *url = env_or("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue");
    if (bx_pg_connect(url, 10000, db, &err) != BX_OK) {
        fprintf(stderr, "bx-sim: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int write_drive(const char *dir, const sim_drive_counts *k)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    bx_status s = bx_buf_printf(
        &b,
        "rollcalls %lld\nrollcalls_late %lld\nrollcalls_forgotten %lld\nleaves %lld\n"
        "leaves_phoned %lld\nactions %lld\nactions_late %lld\naccepted %lld\nduplicates %lld\n"
        "rejected %lld\nfailed %lld\nschool_days %d\nlast_day %d\ntransfers %lld\n",
        k->rollcalls, k->rollcalls_late, k->rollcalls_forgotten, k->leaves, k->leaves_phoned,
        k->actions, k->actions_late, k->accepted, k->duplicates, k->rejected, k->failed,
        k->school_days, (int)k->last_day, k->transfers);
    int rc = s == BX_OK ? write_file(dir, "drive.txt", &b) : -1;
    bx_buf_free(&b);
    return rc;
}

static int cmd_summary(const sim_county *c, const options *o, PGconn *db)
{
    sim_summary_conf sc = {.state_dir = o->dir,
                           .brokers = env_or("BX_KAFKA_BROKERS", "127.0.0.1:19092"),
                           .bxctl = o->bxctl,
                           .db = db};
    bx_error err = {0};
    if (sim_summary(c, &sc, &err) != BX_OK) {
        fprintf(stderr, "bx-sim summary: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int cmd_run(const sim_county *c, const options *o, PGconn *db)
{
    if (o->dir == NULL || o->api == NULL || o->keys == NULL) {
        fprintf(stderr, "bx-sim run: --state, --api and --keys are required\n");
        return 2;
    }
    const char *brokers = env_or("BX_KAFKA_BROKERS", "127.0.0.1:19092");
    static const char *const default_groups[] = {"bx-score:bx.attendance.v1",
                                                 "bx-escalate:bx.risk.v1,bx.actions.v1", NULL};
    char mark[1024];
    snprintf(mark, sizeof(mark), "%s/risk.mark", o->dir);
    bx_error err = {0};
    if (sim_topic_mark(brokers, "bx.risk.v1", mark, &err) != BX_OK) {
        fprintf(stderr, "bx-sim run: %s\n", err.msg);
        return 1;
    }
    sim_drive_conf dc = {.api = o->api,
                         .keys_file = o->keys,
                         .state_dir = o->dir,
                         .days = o->days,
                         .from = o->from,
                         .progress = !o->quiet,
                         .brokers = brokers,
                         .groups = o->ngroups ? o->groups : default_groups,
                         .db = db,
                         .bxctl = o->bxctl};
    sim_drive_counts k;
    bx_status s = sim_drive(c, &dc, &k, &err);
    if (write_drive(o->dir, &k) != 0)
        return 1;
    /* The pipeline settled: what bx-score published for this term ends here. */
    snprintf(mark, sizeof(mark), "%s/risk.end", o->dir);
    if (s == BX_OK)
        s = sim_topic_mark(brokers, "bx.risk.v1", mark, &err);
    fprintf(stderr,
            "bx-sim: %d school days in %.1f s (posting %.1f s, settling %.1f s); %lld records "
            "accepted, %.0f a second of posting\n",
            k.school_days, k.wall_seconds, k.post_seconds, k.settle_seconds, k.accepted,
            k.post_seconds > 0 ? k.accepted / k.post_seconds : 0.0);
    if (s != BX_OK) {
        fprintf(stderr, "bx-sim run: %s\n", err.msg);
        return 1;
    }
    if (k.rejected || k.failed)
        fprintf(stderr, "bx-sim run: %lld records rejected, %lld failed\n", k.rejected, k.failed);
    return o->no_summary ? 0 : cmd_summary(c, o, db);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    options o;
    if (parse(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    bx_error err = {0};
    if (strcmp(cmd, "group-at-end") == 0) {
        if (o.group == NULL || o.topics == NULL) {
            fprintf(stderr, "bx-sim group-at-end: --group and --topics are required\n");
            return 2;
        }
        if (sim_group_at_end(env_or("BX_KAFKA_BROKERS", "127.0.0.1:19092"), o.group, o.topics,
                             &err) != BX_OK) {
            fprintf(stderr, "bx-sim group-at-end: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (strcmp(cmd, "generate") != 0 && strcmp(cmd, "run") != 0 && strcmp(cmd, "summary") != 0) {
        fprintf(stderr, "bx-sim: unknown command %s\n", cmd);
        usage();
        return 2;
    }
    sim_county *c = NULL;
    if (sim_county_new(o.seed, o.size, o.holidays, &c, &err) != BX_OK) {
        fprintf(stderr, "bx-sim: %s\n", err.msg);
        return 2;
    }
    int rc = 0;
    if (strcmp(cmd, "generate") == 0) {
        rc = cmd_generate(c, &o);
    } else {
        PGconn *db = NULL;
        if (o.dir == NULL) {
            fprintf(stderr, "bx-sim %s: --state DIR is required\n", cmd);
            rc = 2;
        } else if (bx_clock_init(getenv("BX_CLOCK"), &err) != BX_OK) {
            fprintf(stderr, "bx-sim: BX_CLOCK: %s\n", err.msg);
            rc = 2;
        } else if (connect_db(&db) != 0) {
            rc = 1;
        } else {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            rc = strcmp(cmd, "run") == 0 ? cmd_run(c, &o, db) : cmd_summary(c, &o, db);
            curl_global_cleanup();
        }
        if (db)
            PQfinish(db);
    }
    sim_county_free(c);
    return rc;
}
