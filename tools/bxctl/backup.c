/* bxctl backup and restore: one archive (tar) holding the database in pg_dump's custom format, the
 * policy files in use and a manifest with the registry revision; restored only into an empty
 * database, so a restore never mixes with what a database already holds. */
#define _XOPEN_SOURCE 700
#include "bx_pg.h"
#include "bxctl.h"

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MANIFEST_MAGIC  "baoxue-backup 1"
#define DUMP_NAME       "baoxue.dump"
#define DEFAULT_PG_BIN  "/usr/lib/postgresql/15/bin"
#define MAX_POLICY_FILE (16L << 20)

/* The policy files a backup keeps, by the setting that names them in the services; a setting not
 * in bxctl's environment is the file beside deploy/policy/score.policy that the services default
 * to. */
static const struct policy_file {
    const char *variable;
    const char *default_name;
} policy_files[] = {
    {"BX_SCORE_POLICY", "score.policy"},
    {"BX_LADDER_POLICY", "ladder.policy"},
    {"BX_DUTIES_POLICY", "ladder-duties.policy"},
    {"BX_NOTIFY_TEMPLATES", "notify.templates"},
};
#define NPOLICY (sizeof(policy_files) / sizeof(policy_files[0]))

/* The path of policy file i in use (out has PATH_MAX-ish room). */
static void policy_path(const bxctl_ctx *ctx, size_t i, char *out, size_t size)
{
    const char *v = getenv(policy_files[i].variable);
    if (i == 0)
        v = ctx->score_policy;
    if (v && *v) {
        snprintf(out, size, "%s", v);
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", BX_DEFAULT_SCORE_POLICY);
    snprintf(out, size, "%s/%s", dirname(dir), policy_files[i].default_name);
}

/* pg_dump and pg_restore: BX_PG_BIN (default PostgreSQL 15's folder of Debian). */
static void pg_tool(const char *name, char *out, size_t size)
{
    const char *dir = getenv("BX_PG_BIN");
    snprintf(out, size, "%s/%s", dir && *dir ? dir : DEFAULT_PG_BIN, name);
}

/* Runs argv (argv[0] a path, or a name looked up in PATH) and waits; with conninfo set, the
 * child gets the connection's parameters as libpq's environment variables (PGHOST, PGUSER,
 * PGPASSWORD, ...) instead of a command line that `ps` would show with a password in it.
 * Returns 0 when it exited 0, else prints why and returns -1. */
static int run_tool(char *const *argv, const char *conninfo)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bxctl: cannot start %s: %s\n", argv[0], strerror(errno));
        return -1;
    }
    if (pid == 0) {
        if (conninfo) {
            char *errmsg = NULL;
            PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
            if (opts == NULL) {
                fprintf(stderr, "bxctl: BX_PG_URL: %s", errmsg ? errmsg : "cannot parse\n");
                _exit(126);
            }
            for (PQconninfoOption *o = opts; o->keyword; o++)
                if (o->val && *o->val && o->envvar)
                    setenv(o->envvar, o->val, 1);
            PQconninfoFree(opts);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "bxctl: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        fprintf(stderr, "bxctl: %s failed (exit %d)\n", argv[0], WEXITSTATUS(status));
    else
        fprintf(stderr, "bxctl: %s failed (signal %d)\n", argv[0],
                WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A private working folder (mode 700) under TMPDIR; caller removes it with remove_tree. */
static int work_dir(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, size, "%s/bxctl-backup-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(out) == NULL) {
        fprintf(stderr, "bxctl: cannot make a working folder in %s: %s\n",
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* Copies the file from (at most MAX_POLICY_FILE bytes: a policy file) into to, which the caller's
 * umask (077 here) keeps to its owner. */
static int copy_file(const char *from, const char *to)
{
    bx_buf text;
    bx_buf_init(&text, MAX_POLICY_FILE);
    bx_error err = {0};
    bx_status s = bx_buf_read_file(&text, from, &err);
    IFOK(s, bx_buf_write_file(&text, to, &err));
    bx_buf_free(&text);
    if (s != BX_OK)
        fprintf(stderr, "bxctl: %s\n", err.msg);
    return s == BX_OK ? 0 : -1;
}

/* 1 when the two files have the same bytes, 0 when not, -1 when one cannot be read. */
static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb ? 1 : -1;
    while (same == 1) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            same = 0;
        else if (ca == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* The one value of a query, copied to out ("" for none). */
static int query_value(PGconn *db, const char *sql, char *out, size_t size)
{
    PGresult *res = bxctl_query(db, "bxctl", sql, 0, NULL);
    if (res == NULL)
        return -1;
    snprintf(out, size, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

#define REVISION_SQL  "SELECT revision || ' ' || " BXCTL_ISO("changed_at") " FROM registry.revision"
#define MIGRATION_SQL "SELECT coalesce(max(version)::text, '') FROM public.bx_migration"

/* Fills the work folder dir: the database's dump, the policy files in use and the manifest that
 * names them (revision: "<number> <changed_at>"). 0, or -1 after saying why. */
static int backup_fill(const bxctl_ctx *ctx, const char *dir, const char *dbname,
                       const char *migration, const char *revision)
{
    char path[8192], tool[4096];
    pg_tool("pg_dump", tool, sizeof(tool));
    snprintf(path, sizeof(path), "%s/" DUMP_NAME, dir);
    char *argv[] = {tool, "--format=custom", "--file", path, NULL};
    int rc = run_tool(argv, ctx->conf.pg_url);
    snprintf(path, sizeof(path), "%s/policy", dir);
    if (rc == 0 && mkdir(path, 0700) != 0) {
        fprintf(stderr, "bxctl: cannot make %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    const char *space = strchr(revision, ' ');
    bx_buf manifest;
    bx_buf_init(&manifest, 0);
    bx_status s = bx_buf_printf(
        &manifest,
        MANIFEST_MAGIC "\ndatabase=%s\nmigration=%s\nregistry_revision=%.*s\n"
                       "registry_changed_at=%s\n",
        dbname, migration, (int)(space ? (size_t)(space - revision) : strlen(revision)), revision,
        space ? space + 1 : "");
    for (size_t i = 0; rc == 0 && i < NPOLICY; i++) {
        char from[4096];
        policy_path(ctx, i, from, sizeof(from));
        snprintf(path, sizeof(path), "%s/policy/%s", dir, policy_files[i].variable);
        rc = copy_file(from, path);
        IFOK(s, bx_buf_printf(&manifest, "policy %s=%s\n", policy_files[i].variable, from));
    }
    bx_error err = {0};
    snprintf(path, sizeof(path), "%s/manifest", dir);
    if (rc == 0 && (s != BX_OK || bx_buf_write_file(&manifest, path, &err) != BX_OK)) {
        fprintf(stderr, "bxctl: %s\n", s != BX_OK ? "out of memory" : err.msg);
        rc = -1;
    }
    bx_buf_free(&manifest);
    return rc;
}

/* The work folder dir as the archive file (mode 600), written as file.partial and renamed only
 * when whole. 0, or -1 after saying why (nothing is left at file then). */
static int backup_archive(const char *dir, const char *file)
{
    char partial[8192];
    snprintf(partial, sizeof(partial), "%s.partial", file);
    unlink(partial);
    char *argv[] = {"tar",      "-C",      (char *)dir, "-cf", partial,
                    "manifest", DUMP_NAME, "policy",    NULL};
    int rc = run_tool(argv, NULL);
    if (rc == 0 && chmod(partial, 0600) != 0) {
        fprintf(stderr, "bxctl: cannot make %s private: %s\n", partial, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(partial, file) != 0) {
        fprintf(stderr, "bxctl: cannot rename %s to %s: %s\n", partial, file, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlink(partial);
    return rc;
}

static int backup(bxctl_ctx *ctx, const char *file)
{
    struct stat st;
    if (stat(file, &st) == 0) {
        fprintf(stderr, "bxctl backup: %s exists: choose a new file (a backup never overwrites)\n",
                file);
        return 1;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    char revision[128] = "", migration[64] = "";
    int rc = query_value(db, REVISION_SQL, revision, sizeof(revision));
    if (rc == 0)
        rc = query_value(db, MIGRATION_SQL, migration, sizeof(migration));
    char dbname[256];
    snprintf(dbname, sizeof(dbname), "%s", PQdb(db));
    PQfinish(db);
    if (rc != 0)
        return 1;
    mode_t old_mask = umask(077); /* the dump, its folder and the archive: owner only */
    char dir[4096] = "";
    rc = work_dir(dir, sizeof(dir));
    if (rc == 0)
        rc = backup_fill(ctx, dir, dbname, migration, revision);
    if (rc == 0)
        rc = backup_archive(dir, file);
    remove_tree(dir);
    umask(old_mask);
    if (rc != 0)
        return 1;
    stat(file, &st);
    revision[strcspn(revision, " ")] = '\0';
    printf("backup %s: database %s (migration %s, registry revision %s), %zu policy files, "
           "%lld bytes, mode 600\n",
           file, dbname, migration, revision, NPOLICY, (long long)st.st_size);
    return 0;
}

/* The value of "name=" in the manifest text, copied to out ("" when absent). */
static void manifest_value(const char *text, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    size_t len = strlen(name);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, len) == 0 && line[len] == '=') {
            snprintf(out, size, "%.*s", (int)strcspn(line + len + 1, "\n"), line + len + 1);
            return;
        }
    }
}

/* The tables of the target database, or why it cannot be restored into: 0 empty, -1 not. */
static int check_empty(PGconn *db)
{
    PGresult *res = NULL;
    bx_error err = {0};
    if (bx_pg_query(db,
                    "SELECT n.nspname || '.' || c.relname, count(*) OVER () FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname "
                    "NOT LIKE 'pg\\_toast%' ORDER BY 1 LIMIT 3",
                    0, NULL, &res, &err) != BX_OK) {
        fprintf(stderr, "bxctl restore: %s\n", err.msg);
        return -1;
    }
    int rc = 0;
    if (PQntuples(res) > 0) {
        fprintf(stderr,
                "bxctl restore: database \"%s\" is not empty: it has %s tables (%s%s%s%s%s); "
                "restore only into a fresh database (DROP DATABASE and CREATE DATABASE, or "
                "another BX_PG_URL)\n",
                PQdb(db), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0),
                PQntuples(res) > 1 ? ", " : "", PQntuples(res) > 1 ? PQgetvalue(res, 1, 0) : "",
                PQntuples(res) > 2 ? ", " : "", PQntuples(res) > 2 ? "..." : "");
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* The archive file unpacked into dir, its manifest's text into manifest (at most 4 KiB) and its
 * dump restored into the database dbname. 0, or -1 after saying why. */
static int restore_unpack(const bxctl_ctx *ctx, const char *file, const char *dir,
                          const char *dbname, char manifest[4096])
{
    char path[8192];
    char *untar[] = {"tar", "-C", (char *)dir, "--no-same-owner", "-xf", (char *)file, NULL};
    int rc = run_tool(untar, NULL);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/manifest", dir);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(manifest, 1, 4095, f) : 0;
        manifest[n] = '\0';
        if (f)
            fclose(f);
        if (strncmp(manifest, MANIFEST_MAGIC "\n", strlen(MANIFEST_MAGIC) + 1) != 0) {
            fprintf(stderr,
                    "bxctl restore: %s is not a baoxue backup (no \"" MANIFEST_MAGIC
                    "\" manifest)\n",
                    file);
            rc = -1;
        }
    }
    if (rc == 0) {
        char tool[4096];
        pg_tool("pg_restore", tool, sizeof(tool));
        snprintf(path, sizeof(path), "%s/" DUMP_NAME, dir);
        char *argv[] = {tool,       "--exit-on-error", "--single-transaction",
                        "--dbname", (char *)dbname,    path,
                        NULL};
        rc = run_tool(argv, ctx->conf.pg_url);
    }
    return rc;
}

/* Whether each policy file in use is the backup's (in dir/policy), a line each. */
static void restore_compare_policies(const bxctl_ctx *ctx, const char *dir)
{
    for (size_t i = 0; i < NPOLICY; i++) {
        char in_use[4096], path[8192];
        policy_path(ctx, i, in_use, sizeof(in_use));
        snprintf(path, sizeof(path), "%s/policy/%s", dir, policy_files[i].variable);
        int same = same_file(path, in_use);
        printf("policy %s %s: %s\n", policy_files[i].variable, in_use,
               same == 1   ? "the same as the backup's"
               : same == 0 ? "DIFFERS from the backup's"
                           : "cannot be compared (missing)");
    }
}

/* The backup's policy files (in dir/policy) copied into the new folder policy_to. */
static int restore_copy_policies(const char *dir, const char *policy_to)
{
    if (mkdir(policy_to, 0700) != 0) {
        fprintf(stderr, "bxctl restore: cannot make %s: %s\n", policy_to, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < NPOLICY; i++) {
        char from[8192], to[8192];
        snprintf(from, sizeof(from), "%s/policy/%s", dir, policy_files[i].variable);
        snprintf(to, sizeof(to), "%s/%s", policy_to, policy_files[i].variable);
        rc = copy_file(from, to);
    }
    if (rc == 0)
        printf("the backup's policy files are in %s, named by their settings\n", policy_to);
    return rc;
}

static int restore(bxctl_ctx *ctx, const char *file, const char *policy_to)
{
    if (access(file, R_OK) != 0) {
        fprintf(stderr, "bxctl restore: cannot read %s: %s\n", file, strerror(errno));
        return 1;
    }
    if (policy_to && access(policy_to, F_OK) == 0) {
        fprintf(stderr, "bxctl restore: --policy-to %s exists: name a new folder\n", policy_to);
        return 1;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    int rc = check_empty(db);
    char dbname[256];
    snprintf(dbname, sizeof(dbname), "%s", PQdb(db));
    PQfinish(db);
    if (rc != 0)
        return 1;
    mode_t old_mask = umask(077);
    char dir[4096] = "", manifest[4096] = "";
    rc = work_dir(dir, sizeof(dir));
    if (rc == 0)
        rc = restore_unpack(ctx, file, dir, dbname, manifest);
    char want[64] = "", got[128] = "", migration[64] = "";
    if (rc == 0) {
        manifest_value(manifest, "registry_revision", want, sizeof(want));
        manifest_value(manifest, "migration", migration, sizeof(migration));
        db = bxctl_db(ctx);
        rc = db ? query_value(db, "SELECT revision FROM registry.revision", got, sizeof(got)) : -1;
        PQfinish(db);
        if (rc == 0 && strcmp(want, got) != 0) {
            fprintf(stderr,
                    "bxctl restore: the restored registry revision is %s, the backup's %s\n", got,
                    want);
            rc = -1;
        }
    }
    if (rc == 0) {
        printf("restored %s into database %s: migration %s, registry revision %s\n", file, dbname,
               migration, got);
        restore_compare_policies(ctx, dir);
    }
    if (rc == 0 && policy_to)
        rc = restore_copy_policies(dir, policy_to);
    remove_tree(dir);
    umask(old_mask);
    if (rc != 0)
        return 1;
    printf("next: `bxctl rebuild` to recompute bx-score's Redis keys, then start the services\n");
    return 0;
}

int bxctl_backup(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "usage: bxctl backup <file>\n");
        return 2;
    }
    return backup(ctx, argv[0]);
}

int bxctl_restore(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL, *policy_to = NULL;
    const bxctl_option opts[] = {BXCTL_VALUE("--policy-to", &policy_to)};
    if (!bxctl_options(argc, argv, opts, 1, &file, 1) || file == NULL) {
        fprintf(stderr, "usage: bxctl restore <file> [--policy-to DIR]\n");
        return 2;
    }
    return restore(ctx, file, policy_to);
}
