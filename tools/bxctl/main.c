/* bxctl: the operator's command line for baoxue. */
#include "bxctl.h"
#include "bx_clock.h"
#include "bx_log.h"
#include "bx_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: bxctl <command> ...\n"
            "  migrate [--status]              apply the numbered SQL migrations\n"
            "  topics create                   create the Kafka topics\n"
            "  import <kind> <file.csv>        import one registry file (kinds: counties,\n"
            "                                  townships, calendar, holidays, schools, staff,\n"
            "                                  classes, students, guardians, household,\n"
            "                                  poverty)\n"
            "  import --dir <folder>           import every known file found in a folder\n"
            "  key create <school_id> [label]  make a school's credential (shown once)\n"
            "  key list [school_id]            list credentials (never the secret)\n"
            "  key revoke <key_id>             revoke a credential\n"
            "  clock show|set <time>|advance <minutes>\n"
            "                                  read or drive a file clock (BX_CLOCK=file:...)\n"
            "  rebuild [--school ID]           recompute bx-score's Redis keys from PostgreSQL\n"
            "  student show <id> [--json]      a student's streak, windows and risk score\n"
            "  case list [--school ID] [--township CODE] [--county CODE] [--stage NAME]\n"
            "            [--overdue] [--names] [--json]\n"
            "                                  open cases with stage, tasks and next deadline\n"
            "  case show <student_id> [--json] a student's case: stage, open tasks, history\n"
            "  case document <student_id> <kind> [--out FILE.html] [--date D] [--days N]\n"
            "                                  a formal notice of the case as printable HTML\n");
    fprintf(
        stderr,
        "  report --term CODE | --month YYYY-MM [--county CODE]\n"
        "         [--level class|school|township|county|city|province] [--format text|csv|json]\n"
        "                                  dropout and retention rates, thresholds flagged,\n"
        "                                  roll-call reporting rate (classes under 90%% flagged)\n"
        "  report --upward [--county CODE] [--kind KIND] [--format text|json]\n"
        "                                  the reports upward (四个一) the duties made\n"
        "  ledger [--county CODE] [--kind suspected|dropout|returned]\n"
        "         [--names] [--json]\n"
        "                                  standing lists with persuasion history\n"
        "  match --county CODE [--ledger school_age|suspected|dropout] [--names] [--json]\n"
        "                                  四查三比对: the household register against the\n"
        "                                  registry; the three ledgers; suspected cases\n"
        "  settle [--group GROUP:TOPIC[,TOPIC]]... [--timeout S] [--interval MS] [--verbose]\n"
        "                                  wait until every group has consumed its topics,\n"
        "                                  no timer is due and the outbox is empty\n"
        "  staff invite|reset|disable <staff_id> | staff list [--school ID]\n"
        "                                  bx-console accounts (activation code by SMS)\n"
        "  audit [--staff ID] [--student ID] [--since DATE]\n"
        "                                  who saw or wrote what in bx-console\n"
        "  privacy erase <student_id>      a student's personal data, once the obligation ended\n"
        "  analyst create|disable|scram <name> | analyst list\n"
        "                                  analysts' Kafka principals: the broker's SCRAM user\n"
        "                                  and ACLs (bx.analytics.*; groups analyst.<name>.*)\n"
        "  backup <file>                   the database (pg_dump), policy files and registry\n"
        "                                  revision in one archive (mode 600)\n"
        "  restore <file> [--policy-to DIR]\n"
        "                                  into an empty database; then `bxctl rebuild`\n");
}

PGconn *bxctl_db(bxctl_ctx *ctx)
{
    PGconn *db = NULL;
    bx_error err = {0};
    if (bx_pg_connect(ctx->conf.pg_url, 10000, &db, &err) != BX_OK) {
        fprintf(stderr, "bxctl: %s\n", err.msg);
        return NULL;
    }
    return db;
}

/* The commands: the first word names one, which gets the words after it. */
static const struct {
    const char *name;
    int (*run)(bxctl_ctx *ctx, int argc, char **argv);
} commands[] = {
    {"migrate", bxctl_migrate}, {"topics", bxctl_topics}, {"import", bxctl_import},
    {"key", bxctl_key},         {"clock", bxctl_clock},   {"rebuild", bxctl_rebuild},
    {"student", bxctl_student}, {"case", bxctl_case},     {"report", bxctl_report},
    {"ledger", bxctl_ledger},   {"match", bxctl_match},   {"settle", bxctl_settle},
    {"staff", bxctl_staff},     {"audit", bxctl_audit},   {"privacy", bxctl_privacy},
    {"analyst", bxctl_analyst}, {"backup", bxctl_backup}, {"restore", bxctl_restore},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The settings (rows), the log level and the clock; 0, or the exit code 2 after saying why. */
static int setup(bxctl_ctx *ctx, bx_conf_row *rows, size_t nrows)
{
    bx_error err = {0};
    if (bx_conf_load(rows, nrows, &err) != BX_OK) {
        fprintf(stderr, "bxctl: %s\n", err.msg);
        return 2;
    }
    bx_log_level level = BX_LOG_WARN;
    if (bx_log_level_parse(ctx->conf.log_level, &level) != BX_OK) {
        fprintf(stderr, "bxctl: BX_LOG_LEVEL: expected debug, info, warn or error, got \"%s\"\n",
                ctx->conf.log_level);
        return 2;
    }
    bx_log_init("bxctl", level > BX_LOG_WARN ? level : BX_LOG_WARN);
    if (bx_clock_init(ctx->conf.clock, &err) != BX_OK) {
        fprintf(stderr, "bxctl: %s\n", err.msg);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bxctl_ctx ctx = {0};
    bx_conf_row rows[] = {
        BX_COMMON_CONF_ROWS(ctx.conf),
        {"BX_SQL_DIR", BX_CONF_STRING, BX_DEFAULT_SQL_DIR, 0, 0, &ctx.sql_dir,
         "folder of numbered SQL migrations"},
        {"BX_TOPIC_PARTITIONS", BX_CONF_INT, "4", 1, 1024, &ctx.topic_partitions,
         "partitions for each topic created by `bxctl topics create`"},
        {"BX_SCORE_POLICY", BX_CONF_STRING, BX_DEFAULT_SCORE_POLICY, 0, 0, &ctx.score_policy,
         "bx-score's weights and tier bounds, for rebuild and student show"},
        {"BX_SETTLE_GROUPS", BX_CONF_STRING,
         "bx-score:bx.attendance.v1 bx-escalate:bx.risk.v1,bx.actions.v1 "
         "bx-notify:bx.notify.requests.v1",
         0, 0, &ctx.settle_groups,
         "consumer groups and their topics that `bxctl settle` waits for (GROUP:TOPIC,TOPIC ...)"},
        {"BX_KAFKA_HOME", BX_CONF_STRING, BX_DEFAULT_KAFKA_HOME, 0, 0, &ctx.kafka_home,
         "a Kafka installation (its libs/ jars and a Java runtime), whose ConfigCommand gives "
         "the broker `bxctl analyst`'s SCRAM credentials"},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        bx_conf_usage(rows, nrows);
        return argc < 2 ? 2 : 0;
    }
    int rc = setup(&ctx, rows, nrows);
    if (rc == 0) {
        size_t i = 0;
        while (i < NCOMMANDS && strcmp(argv[1], commands[i].name) != 0)
            i++;
        if (i < NCOMMANDS) {
            rc = commands[i].run(&ctx, argc - 2, argv + 2);
        } else {
            fprintf(stderr, "bxctl: unknown command \"%s\"\n", argv[1]);
            usage();
            rc = 2;
        }
    }
    bx_conf_free(rows, nrows);
    return rc;
}
