/* summary.c: what the pipeline made of the simulated term, from PostgreSQL (cases, tasks, the
 * outbox, attendance), bx.risk.v1 (the early warning) and the ground truth. Only deterministic
 * state goes into it, so a seed always prints the same summary. */
#include "bx_clock.h"
#include "bx_kafka.h"
#include "simtool.h"

#include "bx_map.h"
#include "bx_pg.h"

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The default ladder's stages in order: those before the dropout roster, then the roster's own
 * (cases.roster_stages(), schemas/sql/0009_roster_seen.sql). */
#define STAGES_SQL                                                                                 \
    "(ARRAY['contact_family','home_visit','school_report','academic_office'] || "                  \
    "cases.roster_stages())"
#define STAGE_ORDER_SQL "array_position(" STAGES_SQL ", stage)"

/* SMS bx-notify handed to its provider, or -1 without bx-notify's tables; the officers' activation
 * codes that the main job's set-up sends are not the pipeline's work and are left out. */
#define SMS_SENT_SQL                                                                               \
    "SELECT CASE WHEN to_regclass('notify.notification') IS NULL THEN -1 ELSE (SELECT count(*) "   \
    "FROM notify.notification WHERE channel = 'sms' AND state IN ('sent', 'delivered') "           \
    "AND template <> 'staff_activation') END"

static bx_status query(PGconn *db, const char *sql, PGresult **res, bx_error *err)
{
    return bx_pg_query(db, sql, 0, NULL, res, err);
}

static long long scalar(PGconn *db, const char *sql, bx_error *err, bx_status *s)
{
    PGresult *res = NULL;
    if (*s != BX_OK)
        return 0;
    *s = query(db, sql, &res, err);
    if (*s != BX_OK)
        return 0;
    long long v = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
                      ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
                      : 0;
    PQclear(res);
    return v;
}

bx_status sim_progress_cases(PGconn *db, char *out, size_t size, long long *sms,
                             long long *sms_sent)
{
    PGresult *res = NULL;
    bx_status s = query(db,
                        "SELECT coalesce(stage, '-'), count(*) FROM cases.case WHERE closed_at IS "
                        "NULL GROUP BY stage ORDER BY " STAGE_ORDER_SQL,
                        &res, NULL);
    if (s != BX_OK)
        return s;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < PQntuples(res) && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s %s", i ? ", " : "",
                                 PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    long long closed =
        scalar(db, "SELECT count(*) FROM cases.case WHERE closed_at IS NOT NULL", NULL, &s);
    if (used < size)
        snprintf(out + used, size - used, "%sclosed %lld", used ? "; " : "", closed);
    *sms = scalar(db,
                  "SELECT count(*) FROM cases.outbox WHERE topic = 'bx.notify.requests.v1' AND "
                  "payload::jsonb->>'channel' = 'sms'",
                  NULL, &s);
    *sms_sent = scalar(db, SMS_SENT_SQL, NULL, &s);
    return s;
}

/* Prints "indent label" padded to 58 display columns (a CJK character takes two). */
static void label(const char *indent, const char *text)
{
    int cols = 0;
    fputs(indent, stdout);
    fputs(text, stdout);
    for (const unsigned char *p = (const unsigned char *)indent; *p; p++)
        cols++;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x80)
            cols++;
        else if (*p >= 0xE0)
            cols += 2; /* the lead byte of a 3-byte character: CJK in these labels */
    for (; cols < 58; cols++)
        putchar(' ');
}

/* One figure of the summary: its label as label() prints it, then the value in 8 columns. */
static void figure(const char *indent, const char *text, long long value)
{
    label(indent, text);
    printf(" %8lld\n", value);
}

static void figure_text(const char *indent, const char *text, const char *value)
{
    label(indent, text);
    printf(" %8s\n", value);
}

/* A percentage with two decimals, in 8 columns with its sign. */
static void figure_percent(const char *indent, const char *text, double percent)
{
    label(indent, text);
    printf(" %7.2f%%\n", percent);
}

/* Prints every row of a query as aligned columns after an indent. */
static bx_status print_rows(PGconn *db, const char *sql, const char *indent, bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = query(db, sql, &res, err);
    if (s != BX_OK)
        return s;
    for (int i = 0; i < PQntuples(res); i++) {
        label(indent, PQgetvalue(res, i, 0));
        for (int j = 1; j < PQnfields(res); j++)
            printf(" %8s", PQgetvalue(res, i, j));
        putchar('\n');
    }
    if (PQntuples(res) == 0)
        printf("%s(none)\n", indent);
    PQclear(res);
    return BX_OK;
}

/* "key value" lines the run left in the state folder. */
static long long drive_value(const char *state_dir, const char *key)
{
    char path[1024], line[256];
    snprintf(path, sizeof(path), "%s/drive.txt", state_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            v = strtoll(line + klen + 1, NULL, 10);
    fclose(f);
    return v;
}

static bx_map *student_index(const sim_county *c)
{
    bx_map *m = bx_map_new();
    for (int i = 0; m && i < c->nstudents; i++)
        if (bx_map_put(m, c->students[i].id, (void *)(intptr_t)(i + 1)) != BX_OK) {
            bx_map_free(m);
            return NULL;
        }
    return m;
}

/* The end of bx.risk.v1's partition the run marked when it was done, or -1. */
static long long run_end(const char *state_dir, int partition)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/risk.end", state_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int p = 0;
    long long offset = 0, end = -1;
    while (fscanf(f, "%d %lld", &p, &offset) == 2)
        if (p == partition)
            end = offset;
    fclose(f);
    return end;
}

/* A child's last assessment of a school day decides the day's tier: a class's report (keyed by
 * class) may reach bx-score before or after its students' facts (keyed by student), so a tier
 * within the day can depend on timing, the day's last one does not. */
static void flag_day(bx_date *flagged, int i, bx_date day, bool high)
{
    if (high && (flagged[i] == BX_DATE_NONE || day < flagged[i]))
        flagged[i] = day;
}

/* What of bx.risk.v1 the summary reads: from the run's mark (a "partition offset" line each) to
 * the end the run marked when it was done, and the partitions not yet read to that end. */
typedef struct risk_window {
    long long ends[256];
    bool done[256];
    int pending;
} risk_window;

/* Assigns rk the partitions of the mark file f from their marked offsets, up to w's ends. */
static bx_status risk_assign(rd_kafka_t *rk, FILE *f, const char *state_dir, risk_window *w,
                             bx_error *err)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    int partition = 0;
    long long offset = 0;
    bx_status s = BX_OK;
    while (s == BX_OK && fscanf(f, "%d %lld", &partition, &offset) == 2) {
        int64_t lo = 0, hi = 0;
        if (partition < 0 || partition >= 256 ||
            rd_kafka_query_watermark_offsets(rk, "bx.risk.v1", partition, &lo, &hi, 10000)) {
            s = BX_ERR(err, BX_EIO, "kafka: no offsets of bx.risk.v1 [%d]", partition);
            break;
        }
        /* Up to the end the run marked when it was done, so later messages do not count. */
        long long end = run_end(state_dir, partition);
        w->ends[partition] = end >= 0 && end < hi ? end : hi;
        if (w->ends[partition] > offset) {
            rd_kafka_topic_partition_list_add(parts, "bx.risk.v1", partition)->offset = offset;
            w->pending++;
        }
    }
    if (s == BX_OK && w->pending && rd_kafka_assign(rk, parts))
        s = BX_ERR(err, BX_EIO, "kafka: cannot read bx.risk.v1");
    rd_kafka_topic_partition_list_destroy(parts);
    return s;
}

/* Each student's last assessed day and whether its tier was high, while reading. */
typedef struct risk_days {
    bx_map *index; /* student id -> its index + 1 */
    bx_date *last_day;
    bool *last_high;
} risk_days;

/* One message of bx.risk.v1 within the window: an assessment of a student of this county. */
static void risk_take(const rd_kafka_message_t *m, risk_days *r, bx_date *flagged,
                      long long *assessments)
{
    cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "student_id");
    const cJSON *tier = cJSON_GetObjectItemCaseSensitive(j, "tier");
    const cJSON *date = cJSON_GetObjectItemCaseSensitive(j, "date");
    intptr_t at = cJSON_IsString(sid) ? (intptr_t)bx_map_get(r->index, sid->valuestring) : 0;
    bx_date d = BX_DATE_NONE;
    if (at > 0 && cJSON_IsString(date) && bx_date_parse(date->valuestring, &d) == BX_OK) {
        (*assessments)++;
        int i = (int)at - 1;
        if (r->last_day[i] != BX_DATE_NONE && r->last_day[i] != d)
            flag_day(flagged, i, r->last_day[i], r->last_high[i]);
        r->last_day[i] = d;
        r->last_high[i] = cJSON_IsString(tier) && (strcmp(tier->valuestring, "high") == 0 ||
                                                   strcmp(tier->valuestring, "critical") == 0);
    }
    cJSON_Delete(j);
}

/* Reads the assigned partitions to w's ends (giving up after 10 s without a message). */
static bx_status risk_read(rd_kafka_t *rk, risk_window *w, risk_days *r, bx_date *flagged,
                           long long *assessments, bx_error *err)
{
    int idle = 0;
    while (w->pending > 0 && idle < 100) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL) {
            idle++;
            continue;
        }
        idle = 0;
        bool known = m->partition >= 0 && m->partition < 256;
        if (known &&
            (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
             (!m->err && m->offset + 1 >= w->ends[m->partition])) &&
            !w->done[m->partition]) {
            /* A partition is read once its end (as marked now) was reached, counted once. */
            w->done[m->partition] = true;
            w->pending--;
        }
        if (known && !m->err && m->offset < w->ends[m->partition])
            risk_take(m, r, flagged, assessments);
        rd_kafka_message_destroy(m);
    }
    if (w->pending > 0)
        return BX_ERR(err, BX_ETIMEOUT, "bx.risk.v1: %d partitions not read to the end",
                      w->pending);
    return BX_OK;
}

/* The first date each student reached the high tier, from bx.risk.v1 since the run's mark. */
static bx_status read_flags(const sim_county *c, const sim_summary_conf *conf, bx_date *flagged,
                            long long *assessments, bx_error *err)
{
    for (int i = 0; i < c->nstudents; i++)
        flagged[i] = BX_DATE_NONE;
    *assessments = 0;
    char path[1024];
    snprintf(path, sizeof(path), "%s/risk.mark", conf->state_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "%s: no mark of bx.risk.v1 (run bx-sim run first)", path);
    static const char *const settings[] = {"group.id", "bx-sim-summary",       "enable.auto.commit",
                                           "false",    "enable.partition.eof", "true",
                                           NULL};
    rd_kafka_t *rk = NULL;
    bx_status s = bx_kafka_client_new(RD_KAFKA_CONSUMER, conf->brokers, settings, &rk, err);
    if (s != BX_OK) {
        fclose(f);
        return s;
    }
    rd_kafka_poll_set_consumer(rk);
    risk_window w = {.pending = 0};
    s = risk_assign(rk, f, conf->state_dir, &w, err);
    fclose(f);
    risk_days r = {.index = s == BX_OK ? student_index(c) : NULL,
                   .last_day = calloc((size_t)c->nstudents + 1, sizeof(*r.last_day)),
                   .last_high = calloc((size_t)c->nstudents + 1, sizeof(*r.last_high))};
    for (int i = 0; r.last_day && i < c->nstudents; i++)
        r.last_day[i] = BX_DATE_NONE;
    if (s == BX_OK && (r.index == NULL || r.last_day == NULL || r.last_high == NULL))
        s = BX_ERR(err, BX_ENOMEM, "out of memory");
    IFOK(s, risk_read(rk, &w, &r, flagged, assessments, err));
    for (int i = 0; s == BX_OK && i < c->nstudents; i++)
        if (r.last_day[i] != BX_DATE_NONE)
            flag_day(flagged, i, r.last_day[i], r.last_high[i]);
    free(r.last_day);
    free(r.last_high);
    bx_map_free(r.index);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return s;
}

static void run_report(const sim_county *c, const char *bxctl)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *const argv[] = {(char *)bxctl,   "report",  "--term", "2026-autumn", "--county",
                              (char *)c->code, "--level", "school", NULL};
        execv(bxctl, argv);
        _exit(127);
    }
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("  (bxctl report did not run: %s)\n", bxctl);
}

/* ---- transfers matched and 四查三比对, against the truth (issue 15, items 5 and 6) ---- */

/* Whether the latest confirmed transfer match of the leaver names the receiving record the truth
 * has. */
static bool transfer_as_truth(PGresult *res, const sim_county *c, const sim_transfer *t)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, 0), c->students[t->student].id) == 0 &&
            strcmp(PQgetvalue(res, i, 1), t->new_id) == 0)
            return true;
    return false;
}

/* The transfers between the county's schools the truth has, against those bx-escalate matched. */
static bx_status transfers_block(const sim_county *c, const sim_summary_conf *conf, bx_date through,
                                 bx_error *err)
{
    int due = 0;
    for (int k = 0; k < c->ntransfers; k++)
        due += c->transfers[k].day <= through && c->transfers[k].arrival <= through;
    figure("  ", "transfers between the county's schools (truth)", due);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT student_id, coalesce(to_student_id, ''), outcome FROM cases.transfer_match "
             "WHERE student_id LIKE '%sS%%' ORDER BY id",
             c->prefix);
    PGresult *res = NULL;
    bx_status s = query(conf->db, sql, &res, err);
    if (s != BX_OK)
        return s;
    int confirmed = 0, refused = 0, as_truth = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        bool ok = strcmp(PQgetvalue(res, i, 2), "confirmed") == 0;
        confirmed += ok;
        refused += !ok;
    }
    for (int k = 0; k < c->ntransfers; k++)
        as_truth += transfer_as_truth(res, c, &c->transfers[k]);
    PQclear(res);
    if (drive_value(conf->state_dir, "transfers") <= 0 && due > 0) {
        printf("  (not driven: bx-sim run without --bxctl imports no registry changes)\n");
    } else {
        figure("  ", "transfers matched (closed as transferred by bx-escalate)", confirmed);
        figure("  ", "  to the receiving record the truth has", as_truth);
        figure("  ", "  refused as ambiguous or conflicting", refused);
    }
    return BX_OK;
}

/* The household list's children in no school the truth has, against what 四查三比对 found. */
static bx_status household_block(const sim_county *c, PGconn *db, bx_error *err)
{
    int poor_truth = 0, household = c->nunenrolled;
    for (int i = 0; i < c->nunenrolled; i++)
        poor_truth += c->unenrolled[i].poor;
    for (int i = 0; i < c->nstudents; i++)
        household += !(c->students[i].flags & SIM_F_MIGRANT);
    figure("  ", "household children never enrolled (truth)", c->nunenrolled);
    figure("  ", "  of them registered-poor (truth)", poor_truth);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT h.national_id, EXISTS (SELECT 1 FROM matching.entry e WHERE e.ledger = "
             "'suspected' AND e.child_key = h.child_key AND e.registered_poor) FROM cases.case k "
             "JOIN registry.household_child h ON h.child_key = k.student_id WHERE "
             "h.county_code = '%s' ORDER BY h.id",
             c->code);
    PGresult *res = NULL;
    bx_status s = query(db, sql, &res, err);
    if (s != BX_OK)
        return s;
    int found = 0, found_truth = 0, poor_marked = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        found++;
        poor_marked += PQgetvalue(res, i, 1)[0] == 't';
        for (int k = 0; k < c->nunenrolled; k++)
            found_truth += strcmp(PQgetvalue(res, i, 0), c->unenrolled[k].national_id) == 0;
    }
    PQclear(res);
    snprintf(sql, sizeof(sql),
             "SELECT in_school, school_age FROM matching.run WHERE county_code = '%s' ORDER BY "
             "id DESC LIMIT 1",
             c->code);
    s = query(db, sql, &res, err);
    if (s != BX_OK)
        return s;
    if (PQntuples(res) == 0) {
        printf("  (no 四查三比对 run: bxctl import household and poverty, then bxctl match)\n");
    } else {
        figure("  ", "children found by matching (suspected cases opened)", found);
        figure("  ", "  never enrolled by the truth", found_truth);
        figure("  ", "  registered-poor, marked", poor_marked);
        long in = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        long all = strtol(PQgetvalue(res, 0, 1), NULL, 10);
        figure_percent("  ", "enrolment rate (入学率) at the last match",
                       all > 0 ? 100.0 * in / all : 0.0);
        figure_percent("  ", "  by the truth",
                       household > 0 ? 100.0 * (household - c->nunenrolled) / household : 0.0);
    }
    PQclear(res);
    return BX_OK;
}

static bx_status matching_block(const sim_county *c, const sim_summary_conf *conf, bx_date through,
                                bx_error *err)
{
    printf("\nTransfers matched and 四查三比对 (the truth against the pipeline)\n");
    bx_status s = transfers_block(c, conf, through, err);
    IFOK(s, household_block(c, conf->db, err));
    return s;
}

/* ---- roll calls: the reporting rate of bxctl report against the truth (issue 15, item 4) ---- */

/* bxctl report's JSON for the county by county (its stdout into out); false when it did not run. */
static bool report_json(const sim_county *c, const char *bxctl, bx_buf *out)
{
    int fd[2];
    if (pipe(fd) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        char *const argv[] = {(char *)bxctl, "report",        "--term",  "2026-autumn",
                              "--county",    (char *)c->code, "--level", "county",
                              "--format",    "json",          NULL};
        execv(bxctl, argv);
        _exit(127);
    }
    close(fd[1]);
    char chunk[4096];
    ssize_t n;
    while (pid > 0 && (n = read(fd[0], chunk, sizeof(chunk))) > 0)
        if (bx_buf_append(out, chunk, (size_t)n) != BX_OK)
            break;
    close(fd[0]);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && out->data != NULL;
}

/* The truth: a class's roll call of a school day is missing when the class forgot it and did not
 * send it the next school day within the run, or when the run began after that day (a run from
 * the middle of the term sent nothing before). Counted as bxctl report counts (the days over,
 * and today once reported), so the two agree when nothing was lost. */
static void rollcall_truth(const sim_county *c, const sim_summary_conf *conf, bx_date through,
                           long *due, long *got, int *incomplete)
{
    long long ran = drive_value(conf->state_dir, "school_days");
    bx_date first_run =
        ran > 0 ? bx_calendar_add_school_days(c->cal, through, -(int)(ran - 1)) : c->term_first;
    *due = *got = 0;
    *incomplete = 0;
    bx_date today = bx_time_local_date(bx_clock_now());
    for (int k = 0; k < c->nclasses; k++) {
        if (c->classes[k].nstudents == 0)
            continue;
        long kdue = 0, kgot = 0;
        for (bx_date d = bx_calendar_add_school_days(c->cal, c->term_first, 0);
             d != BX_DATE_NONE && d <= through && d <= today;
             d = bx_calendar_add_school_days(c->cal, d, 1)) {
            bool late = false;
            bx_date next = bx_calendar_add_school_days(c->cal, d, 1);
            bool sent = d >= first_run &&
                        (!sim_class_forgets(c, k, d, &late) ||
                         (late && next != BX_DATE_NONE && next <= through && next <= today));
            if (d == today && !sent)
                continue; /* not over, not reported: not due yet */
            kdue++;
            kgot += sent;
        }
        *due += kdue;
        *got += kgot;
        *incomplete += kdue > 0 && kgot * 1000 < 900 * kdue; /* under 90% */
    }
}

static bx_status rollcall_block(const sim_county *c, const sim_summary_conf *conf, bx_date through)
{
    printf("\nRoll calls: the reporting rate of bxctl report against the truth\n");
    long due = 0, got = 0;
    int incomplete = 0;
    rollcall_truth(c, conf, through, &due, &got, &incomplete);
    figure("  ", "class-days due (classes with students x school days)", due);
    figure("  ", "  not reported: forgotten and never sent (truth)", due - got);
    figure_percent("  ", "reporting rate by the truth",
                   due > 0 ? 100.0 * (double)got / (double)due : 0.0);
    figure("  ", "classes under 90% by the truth", incomplete);
    bx_buf out;
    bx_buf_init(&out, 0);
    cJSON *doc = NULL;
    if (conf->bxctl && report_json(c, conf->bxctl, &out))
        doc = cJSON_Parse(out.data);
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "rows"), 0), "rollcall");
    const cJSON *rdue = cJSON_GetObjectItemCaseSensitive(rc, "days_due");
    const cJSON *rgot = cJSON_GetObjectItemCaseSensitive(rc, "days_reported");
    const cJSON *rinc = cJSON_GetObjectItemCaseSensitive(rc, "incomplete_classes");
    if (conf->bxctl == NULL) {
        printf("  (no --bxctl: bxctl report's rate is not compared)\n");
    } else if (!cJSON_IsNumber(rdue) || !cJSON_IsNumber(rgot) || !cJSON_IsNumber(rinc)) {
        printf("  (bxctl report did not give the county's roll calls)\n");
    } else {
        long pdue = (long)rdue->valuedouble, pgot = (long)rgot->valuedouble;
        label("  ", "class-days reported, bxctl report");
        printf(" %8ld of %ld\n", pgot, pdue);
        figure_percent("  ", "reporting rate, bxctl report",
                       pdue > 0 ? 100.0 * (double)pgot / (double)pdue : 0.0);
        figure("  ", "classes under 90% (rollcall_incomplete), bxctl report",
               (int)rinc->valuedouble);
        figure_text("  ", "bxctl report agrees with the truth",
                    pdue == due && pgot == got && (int)rinc->valuedouble == incomplete ? "yes"
                                                                                       : "NO");
    }
    cJSON_Delete(doc);
    bx_buf_free(&out);
    return BX_OK;
}

static const char *pct(double v, char out[16])
{
    if (v < 0)
        snprintf(out, 16, "n/a");
    else
        snprintf(out, 16, "%.1f%%", 100.0 * v);
    return out;
}

/* The summary's blocks each print their lines. s is the summary's status so far: once a query
 * failed, later queries are not run (their figures print as 0) and the summary still goes to its
 * end; each returns the status after its own queries. */

static void heading(const sim_county *c, bx_date through)
{
    char first[11], end[11];
    bx_date_format(c->term_first, first);
    bx_date_format(through, end);
    printf("\n== baoxue: the simulated county 开阳县 (%s), seed %llu ==\n", c->code,
           (unsigned long long)c->seed);
    printf("%d townships, %d schools, %d classes, %d students; term 2026-autumn from %s, "
           "simulated through %s (%d school days)\n",
           c->size.townships, c->nschools, c->nclasses, c->nstudents, first, end,
           bx_calendar_school_days_between(c->cal, c->term_first, through));
}

static bx_status ingest_block(const sim_county *c, const sim_summary_conf *conf, bx_status s,
                              bx_error *err)
{
    printf("\nWhat teachers and staff sent through bx-ingest\n");
    static const char *const keys[][2] = {
        {"rollcalls", "roll calls"},
        {"rollcalls_late", "  of them sent a day late"},
        {"rollcalls_forgotten", "roll calls forgotten (class not reported that day)"},
        {"leaves", "leave requests"},
        {"leaves_phoned", "  of them phoned in afterwards (补假)"},
        {"actions", "case actions (contacts, home visits, letters, returns)"},
        {"actions_late", "  of them late"},
        {"accepted", "records accepted"},
        {"rejected", "records rejected"},
    };
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        figure("  ", keys[k][1], drive_value(conf->state_dir, keys[k][0]));
    /* This county's rows only: bx-score keeps facts of any student it is sent. */
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT 'kept by bx-score: class reports (days reported)', (SELECT count(*) FROM "
             "attendance.class_report WHERE class_id LIKE '%sC%%') UNION ALL SELECT 'kept by "
             "bx-score: absences, leave and late days', (SELECT count(*) FROM attendance.fact "
             "WHERE day IS NOT NULL AND student_id LIKE '%sS%%') UNION ALL SELECT 'kept by "
             "bx-score: leave requests', (SELECT count(*) FROM attendance.fact WHERE day IS NULL "
             "AND student_id LIKE '%sS%%')",
             c->prefix, c->prefix, c->prefix);
    IFOK(s, print_rows(conf->db, sql, "  ", err));
    return s;
}

static bx_status cases_block(PGconn *db, bx_status s, bx_error *err)
{
    printf("\nCases (bx-escalate)\n");
    long long opened = scalar(db, "SELECT count(*) FROM cases.case", err, &s);
    long long closed =
        scalar(db, "SELECT count(*) FROM cases.case WHERE closed_at IS NOT NULL", err, &s);
    figure("  ", "opened", opened);
    figure("  ", "closed", closed);
    figure("  ", "open at the end", opened - closed);
    printf("  %-56s %8s %8s\n", "by stage", "entered", "open now");
    IFOK(s, print_rows(db,
                       "SELECT s.stage, (SELECT count(DISTINCT case_id) FROM cases.event e WHERE "
                       "e.kind = 'stage_entered' AND e.stage = s.stage), (SELECT count(*) FROM "
                       "cases.case k WHERE k.closed_at IS NULL AND k.stage = s.stage) FROM "
                       "unnest" STAGES_SQL " WITH ORDINALITY AS s(stage, n) ORDER BY n",
                       "    ", err));
    printf("  closed by ending:\n");
    IFOK(s, print_rows(db,
                       "SELECT ending, count(*) FROM cases.case WHERE closed_at IS NOT NULL "
                       "GROUP BY ending ORDER BY ending",
                       "    ", err));
    printf("  %-56s %8s %8s %8s %8s\n", "tasks by owner", "created", "done", "late", "overdue");
    IFOK(s, print_rows(db,
                       "SELECT owner_role, count(*), count(done_at), count(*) FILTER (WHERE "
                       "done_at > due_at), count(overdue_at) FROM cases.task GROUP BY owner_role "
                       "ORDER BY owner_role",
                       "    ", err));
    return s;
}

static bx_status notify_block(PGconn *db, bx_status s, bx_error *err)
{
    printf("\nNotifications asked of bx-notify (bx.notify.requests.v1)\n");
    IFOK(s, print_rows(db,
                       "SELECT payload::jsonb->>'recipient_role' || ' ' || "
                       "(payload::jsonb->>'channel') || ' ' || (payload::jsonb->>'template'), "
                       "count(*) FROM cases.outbox WHERE topic = 'bx.notify.requests.v1' GROUP "
                       "BY 1 ORDER BY 1",
                       "  ", err));
    long long sent = scalar(db, SMS_SENT_SQL, err, &s);
    if (sent < 0) {
        printf("  (bx-notify's tables are not in this database: no SMS sent)\n");
        return s;
    }
    /* Guardians' SMS only: staff tasks go into daily digests whose make-up depends on when
     * bx-notify's digest tick runs within a step, which is not deterministic. */
    printf("\nWhat bx-notify did with the guardians' SMS\n");
    IFOK(s, print_rows(db,
                       "SELECT CASE WHEN state IN ('sent', 'delivered') THEN 'sent' WHEN "
                       "state = 'dead' THEN 'not sent (dead)' "
                       "ELSE 'waiting (' || state || ')' END, count(*) FROM "
                       "notify.notification WHERE audience = 'guardian' AND channel = 'sms' "
                       "GROUP BY 1 ORDER BY 1",
                       "  ", err));
    figure("  ", "SMS sent in all (guardians, staff, officers)", sent);
    return s;
}

/* The children who drifted away by the truth, against the roster bx-escalate kept. */
static bx_status truth_block(const sim_county *c, PGconn *db, bx_date through, bx_status s,
                             bx_error *err)
{
    int drifted = 0, away = 0, back = 0, roster_due = 0;
    for (int i = 0; i < c->nstudents; i++) {
        const sim_student *st = &c->students[i];
        if (st->fate == SIM_STAYS || st->drift_start > through)
            continue;
        drifted++;
        bool returned = st->fate == SIM_DRIFTS_BACK && st->return_date <= through;
        back += returned;
        away += !returned;
        /* Away a school week (6 school days in a row) by the end: the roster's threshold. */
        bx_date until =
            returned ? bx_calendar_add_school_days(c->cal, st->return_date, -1) : through;
        roster_due += bx_calendar_school_days_between(c->cal, st->drift_start, until) >= 6;
    }
    printf("\nThe ground truth against the pipeline\n");
    figure("  ", "children who drifted away by the last day", drifted);
    figure("  ", "  back at school by then", back);
    figure("  ", "  still away", away);
    figure("  ", "  away a school week or more (the roster's threshold)", roster_due);
    long long rostered = scalar(db,
                                "SELECT count(DISTINCT c.student_id) FROM cases.event e JOIN "
                                "cases.case c ON c.id = e.case_id WHERE e.kind = 'stage_entered' "
                                "AND cases.on_roster(e.stage)",
                                err, &s);
    figure("  ", "children entered on the dropout roster by bx-escalate", rostered);
    return s;
}

/* bx-score's high tier on bx.risk.v1 against the children who truly drifted away. */
static bx_status warning_block(const sim_county *c, const sim_summary_conf *conf, bx_date through,
                               bx_status s, bx_error *err)
{
    bx_date *flagged = calloc((size_t)c->nstudents, sizeof(*flagged));
    long long assessments = 0;
    if (flagged == NULL)
        s = BX_ERR(err, BX_ENOMEM, "out of memory");
    IFOK(s, read_flags(c, conf, flagged, &assessments, err));
    if (s != BX_OK) {
        free(flagged);
        return s;
    }
    sim_warning_eval ev;
    sim_evaluate_warning(c, flagged, through, &ev);
    free(flagged);
    char p1[16], p2[16];
    /* How many assessments bx-score publishes depends on whether a class's report (keyed by
     * class) reaches it before or after its students' facts (keyed by student): timing, so not
     * in the summary's body. */
    fprintf(stderr, "bx-sim: %lld assessments of this county on bx.risk.v1\n", assessments);
    printf("\nEarly warning: the high tier of bx-score (bx.risk.v1)\n");
    figure("  ", "children flagged high or critical", ev.flagged);
    figure("  ", "  of them truly drifting away (true positives)", ev.true_positive);
    figure_text("  ", "precision of the high tier", pct(ev.precision, p1));
    figure_text("  ", "recall of the high tier", pct(ev.recall, p2));
    printf("  drifters by when they were flagged, in school days from their first day away:\n");
    static const char *const bins[] = {"before it",    "on it",        "1 day after",
                                       "2 days after", "3 days after", "4-5 days after",
                                       "later"};
    for (int b = 0; b < 7; b++)
        figure("    ", bins[b], ev.lead_hist[b]);
    figure("    ", "never flagged", ev.never_flagged);
    if (ev.true_positive) {
        label("  ", "median school days from the flag to the first day away");
        printf(" %8.1f\n", ev.median_lead);
    }
    return BX_OK;
}

bx_status sim_summary(const sim_county *c, const sim_summary_conf *conf, bx_error *err)
{
    long long last = drive_value(conf->state_dir, "last_day");
    bx_date through = last > 0 ? (bx_date)last : c->term_last;
    heading(c, through);
    bx_status s = ingest_block(c, conf, BX_OK, err);
    s = cases_block(conf->db, s, err);
    s = notify_block(conf->db, s, err);
    if (conf->bxctl) {
        printf("\nDropout (辍学率) and retention (巩固率) by school, bxctl report\n");
        run_report(c, conf->bxctl);
    }
    s = truth_block(c, conf->db, through, s, err);
    IFOK(s, matching_block(c, conf, through, err));
    IFOK(s, rollcall_block(c, conf, through));
    return warning_block(c, conf, through, s, err);
}
