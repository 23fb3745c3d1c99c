/* bxctl case list|show: bx-escalate's cases as county and township officers read them (stage, open
 * tasks with owners and deadlines, the history from cases.event), as text or JSON. Students appear
 * by id and school; names only with --names (registry.student_private), never id numbers, flags or
 * phones, and digit runs in free text (reasons) are masked. Times are Asia/Shanghai. */
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bxctl_now_param(char out[32])
{
    snprintf(out, 32, "%" PRId64, (int64_t)bx_clock_now());
}

void bxctl_mask_digits(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < size;) {
        size_t run = 0;
        while (isdigit((unsigned char)in[i + run]) ||
               (run >= 17 && (in[i + run] == 'X' || in[i + run] == 'x')))
            run++;
        if (run >= BXCTL_MASK_DIGITS) {
            for (size_t k = 0; k < run && o + 1 < size; k++)
                out[o++] = '*';
            i += run;
        } else if (run > 0) {
            for (size_t k = 0; k < run && o + 1 < size; k++)
                out[o++] = in[i + k];
            i += run;
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = '\0';
}

bx_status bxctl_json_masked(bx_buf *b, const char *text)
{
    size_t n = strlen(text) + 1;
    char *masked = malloc(n);
    if (masked == NULL)
        return BX_ENOMEM;
    bxctl_mask_digits(text, masked, n);
    bx_status s = bx_buf_json_string(b, masked);
    free(masked);
    return s;
}

bx_status bxctl_json_or_null(bx_buf *b, const char *text)
{
    return text[0] ? bx_buf_json_string(b, text) : bx_buf_puts(b, "null");
}

static bx_status json_value(bx_buf *b, const PGresult *res, int row, int col, bxctl_json_as as)
{
    const char *v = PQgetvalue(res, row, col);
    switch (as) {
    case BXCTL_JSON_STRING:
        return bx_buf_json_string(b, v);
    case BXCTL_JSON_OR_NULL:
        return bxctl_json_or_null(b, v);
    case BXCTL_JSON_NULLABLE:
        return PQgetisnull(res, row, col) ? bx_buf_puts(b, "null") : bx_buf_json_string(b, v);
    case BXCTL_JSON_MASKED:
        return bxctl_json_masked(b, v);
    case BXCTL_JSON_BOOL:
        return bx_buf_puts(b, v[0] == 't' ? "true" : "false");
    case BXCTL_JSON_RAW:
        break;
    }
    return bx_buf_puts(b, v);
}

bx_status bxctl_json_fields(bx_buf *b, const PGresult *res, int row, const bxctl_json_field *fields,
                            size_t n)
{
    bx_status st = BX_OK;
    for (size_t i = 0; i < n && st == BX_OK; i++) {
        st = bx_buf_printf(b, "%s\"%s\":", i ? "," : "", fields[i].key);
        IFOK(st, json_value(b, res, row, fields[i].col, fields[i].as));
    }
    return st;
}

bx_status bxctl_json_rows(bx_buf *b, const PGresult *res, int first, int end,
                          const bxctl_json_field *fields, size_t n)
{
    bx_status st = bx_buf_puts(b, "[");
    for (int i = first; i < end && st == BX_OK; i++) {
        IFOK(st, bx_buf_puts(b, i > first ? ",{" : "{"));
        IFOK(st, bxctl_json_fields(b, res, i, fields, n));
        IFOK(st, bx_buf_puts(b, "}"));
    }
    IFOK(st, bx_buf_puts(b, "]"));
    return st;
}

void bxctl_time_text(const char *iso, char out[17])
{
    if (iso[0] == '\0') {
        snprintf(out, 17, "-");
        return;
    }
    snprintf(out, 17, "%.16s", iso);
    if (out[10] == 'T')
        out[10] = ' ';
}

/* ---- case list ---- */

/* Open cases with where they are, their task counts and next deadline. $1 school, $2 township, $3
 * county, $4 stage ('' = any), $5 only those with an overdue open task, $6 now in ms, $7 instead
 * the cases flagged needs_attention (open or closed) with the latest reason (column 11). The name
 * column reads registry.student_private only in the --names variant. */
#define LIST_SQL_HEAD                                                                              \
    "SELECT c.id, c.student_id, c.school_id, coalesce(s.township_code, ''), "                      \
    "coalesce(t.county_code, ''), coalesce(c.stage, ''), " BXCTL_ISO(                              \
        "c.opened_at") ", "                                                                        \
                       "(SELECT count(*) FROM cases.task k WHERE k.case_id = c.id AND k.outcome "  \
                       "IS NULL), "                                                                \
                       "(SELECT count(*) FROM cases.task k WHERE k.case_id = c.id AND k.outcome "  \
                       "IS NULL AND "                                                              \
                       " (k.overdue_at IS NOT NULL OR k.due_at <= now_ts.t)), "                    \
                       "coalesce((SELECT " BXCTL_ISO(                                              \
                           "min(k.due_at)") " FROM cases.task k "                                  \
                                            " WHERE k.case_id = c.id AND k.outcome IS NULL), "     \
                                            "''), "
#define LIST_SQL_TAIL                                                                              \
    ", (SELECT a.reason FROM cases.needs_attention a WHERE a.case_id = c.id AND a.cleared_at IS "  \
    "NULL ORDER BY a.id DESC LIMIT 1) AS attention"                                                \
    " FROM cases.case c CROSS JOIN (SELECT to_timestamp($6::bigint / 1000.0) AS t) now_ts "        \
    "LEFT JOIN registry.school s ON s.id = c.school_id "                                           \
    "LEFT JOIN registry.township t ON t.code = s.township_code "                                   \
    "WHERE (c.closed_at IS NULL OR $7::boolean) AND ($1 = '' OR c.school_id = $1) "                \
    "AND ($2 = '' OR s.township_code = $2) AND ($3 = '' OR t.county_code = $3) "                   \
    "AND ($4 = '' OR c.stage = $4) AND (NOT $5::boolean OR EXISTS (SELECT 1 FROM cases.task k "    \
    " WHERE k.case_id = c.id AND k.outcome IS NULL AND "                                           \
    " (k.overdue_at IS NOT NULL OR k.due_at <= now_ts.t))) "                                       \
    "AND (NOT $7::boolean OR EXISTS (SELECT 1 FROM cases.needs_attention a WHERE a.case_id = "     \
    "c.id "                                                                                        \
    " AND a.cleared_at IS NULL)) "                                                                 \
    "ORDER BY 5, 4, c.school_id, c.student_id"

static const char list_sql[] = LIST_SQL_HEAD "NULL::text" LIST_SQL_TAIL;
static const char list_sql_names[] =
    LIST_SQL_HEAD "(SELECT p.name FROM registry.student_private p WHERE p.student_id = "
                  "c.student_id)" LIST_SQL_TAIL;

static int list_usage(void)
{
    fprintf(stderr, "usage: bxctl case list [--school ID] [--township CODE] [--county CODE] "
                    "[--stage NAME] [--overdue] [--attention] [--names] [--json]\n");
    return 2;
}

static bool stage_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

bool bxctl_code_valid(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static const bxctl_json_field list_fields[] = {
    {"case_id", 0, BXCTL_JSON_RAW},       {"student_id", 1, BXCTL_JSON_STRING},
    {"school_id", 2, BXCTL_JSON_STRING},  {"township", 3, BXCTL_JSON_OR_NULL},
    {"county", 4, BXCTL_JSON_OR_NULL},    {"stage", 5, BXCTL_JSON_OR_NULL},
    {"opened_at", 6, BXCTL_JSON_STRING},  {"open_tasks", 7, BXCTL_JSON_RAW},
    {"overdue_tasks", 8, BXCTL_JSON_RAW}, {"next_due", 9, BXCTL_JSON_OR_NULL}};
static const bxctl_json_field list_name_field[] = {{"name", 10, BXCTL_JSON_NULLABLE}};

/* A flag's reason as printed: digit runs masked, as bxctl audit does. */
static void attention_text(PGresult *res, int row, char *out, size_t size)
{
    bxctl_mask_digits(PQgetisnull(res, row, 11) ? "" : PQgetvalue(res, row, 11), out, size);
}

static int print_list_json(PGresult *res, bool names, bool attention)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    bx_status st = bx_buf_puts(&b, "[");
    for (int i = 0; i < PQntuples(res) && st == BX_OK; i++) {
        IFOK(st, bx_buf_puts(&b, i ? ",{" : "{"));
        IFOK(st, BXCTL_JSON_FIELDS(&b, res, i, list_fields));
        if (names) {
            IFOK(st, bx_buf_puts(&b, ","));
            IFOK(st, BXCTL_JSON_FIELDS(&b, res, i, list_name_field));
        }
        if (attention) {
            char why[1100];
            attention_text(res, i, why, sizeof(why));
            IFOK(st, bx_buf_puts(&b, ",\"attention\":"));
            IFOK(st, bx_buf_json_string(&b, why));
        }
        IFOK(st, bx_buf_puts(&b, "}"));
    }
    IFOK(st, bx_buf_puts(&b, "]\n"));
    return bxctl_print(&b, st, "bxctl case list");
}

static void print_list_text(PGresult *res, bool names, bool attention)
{
    int n = PQntuples(res);
    printf("%-32s %-12s %-9s %-16s %-16s %5s %7s  %-16s%s\n", "student", "school", "township",
           "stage", "opened", "tasks", "overdue", "next due", names ? "  name" : "");
    for (int i = 0; i < n; i++) {
        char opened[17], due[17];
        bxctl_time_text(PQgetvalue(res, i, 6), opened);
        bxctl_time_text(PQgetvalue(res, i, 9), due);
        const char *stage = PQgetvalue(res, i, 5);
        printf("%-32s %-12s %-9s %-16s %-16s %5s %7s  %-16s", PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), stage[0] ? stage : "-", opened,
               PQgetvalue(res, i, 7), PQgetvalue(res, i, 8), due);
        if (names)
            printf("  %s", PQgetisnull(res, i, 10) ? "-" : PQgetvalue(res, i, 10));
        if (attention) {
            char why[1100];
            attention_text(res, i, why, sizeof(why));
            printf("\n    needs attention: %s", why);
        }
        printf("\n");
    }
    if (attention)
        printf("%d case%s needing attention\n", n, n == 1 ? "" : "s");
    else
        printf("%d open case%s\n", n, n == 1 ? "" : "s");
}

static int case_list(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *school = "", *township = "", *county = "", *stage = "";
    bool overdue = false, json = false, names = false, attention = false;
    const bxctl_option opts[] = {
        BXCTL_VALUE("--school", &school),  BXCTL_VALUE("--township", &township),
        BXCTL_VALUE("--county", &county),  BXCTL_VALUE("--stage", &stage),
        BXCTL_FLAG("--overdue", &overdue), BXCTL_FLAG("--attention", &attention),
        BXCTL_FLAG("--json", &json),       BXCTL_FLAG("--names", &names)};
    if (!BXCTL_OPTIONS(argc, argv, opts))
        return list_usage();
    if (school[0] && !bx_id_valid(school)) {
        fprintf(stderr, "bxctl case list: --school \"%s\" is not a registry id\n", school);
        return 2;
    }
    if (township[0] && !bxctl_code_valid(township, 9)) {
        fprintf(stderr, "bxctl case list: --township \"%s\" is not a 9-digit code\n", township);
        return 2;
    }
    if (county[0] && !bxctl_code_valid(county, 6)) {
        fprintf(stderr, "bxctl case list: --county \"%s\" is not a 6-digit code\n", county);
        return 2;
    }
    if (stage[0] && !stage_name_valid(stage)) {
        fprintf(stderr, "bxctl case list: --stage \"%s\" is not a stage name\n", stage);
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    char now[32];
    bxctl_now_param(now);
    const char *params[] = {school,
                            township,
                            county,
                            stage,
                            overdue ? "true" : "false",
                            now,
                            attention ? "true" : "false"};
    int rc = 1;
    PGresult *res =
        bxctl_query(db, "bxctl case list", names ? list_sql_names : list_sql, 7, params);
    if (res && json) {
        rc = print_list_json(res, names, attention);
    } else if (res) {
        print_list_text(res, names, attention);
        rc = 0;
    }
    PQclear(res);
    PQfinish(db);
    return rc;
}

/* ---- case show ---- */

static const char show_cases_sql[] = "SELECT c.id, c.school_id, coalesce(c.stage, ''), " BXCTL_ISO(
    "c.opened_at") ", "
                   "coalesce(" BXCTL_ISO(
                       "c.closed_at") ", ''), coalesce(c.ending, ''), "
                                      "coalesce(st.class_id, ''), coalesce(st.status, '') "
                                      "FROM cases.case c LEFT JOIN registry.student st ON st.id = "
                                      "c.student_id "
                                      "WHERE c.student_id = $1 ORDER BY (c.closed_at IS NULL) "
                                      "DESC, c.opened_at DESC, c.id DESC";

static const char show_student_sql[] =
    "SELECT school_id, class_id, status FROM registry.student WHERE id = $1";

static const char show_tasks_sql[] =
    "SELECT k.kind, coalesce(k.stage, ''), k.owner_role, coalesce(k.owner_staff_id, "
    "''), " BXCTL_ISO(
        "k.due_at") ", (k.overdue_at IS NOT NULL OR k.due_at <= to_timestamp($2::bigint / "
                    "1000.0)), " BXCTL_ISO("k.created_at") " FROM cases.task k "
                                                           "WHERE k.case_id = $1 AND k.outcome IS "
                                                           "NULL ORDER BY k.due_at, k.id";

/* Every event of every case of the student, in the order they happened. */
static const char show_events_sql[] =
    "SELECT e.case_id, e.kind, coalesce(e.stage, ''), e.actor, e.reason, e.late, " BXCTL_ISO(
        "e.occurred_at") ", e.payload::text FROM cases.event e "
                         "JOIN cases.case c ON c.id = e.case_id WHERE c.student_id = $1 "
                         "ORDER BY e.occurred_at, e.id";

static const bxctl_json_field case_fields[] = {
    {"case_id", 0, BXCTL_JSON_RAW},       {"school_id", 1, BXCTL_JSON_STRING},
    {"class_id", 6, BXCTL_JSON_OR_NULL},  {"registry_status", 7, BXCTL_JSON_OR_NULL},
    {"stage", 2, BXCTL_JSON_OR_NULL},     {"opened_at", 3, BXCTL_JSON_STRING},
    {"closed_at", 4, BXCTL_JSON_OR_NULL}, {"ending", 5, BXCTL_JSON_OR_NULL}};
static const bxctl_json_field task_fields[] = {
    {"kind", 0, BXCTL_JSON_STRING},       {"stage", 1, BXCTL_JSON_OR_NULL},
    {"owner_role", 2, BXCTL_JSON_STRING}, {"owner_staff_id", 3, BXCTL_JSON_OR_NULL},
    {"due_at", 4, BXCTL_JSON_STRING},     {"overdue", 5, BXCTL_JSON_BOOL},
    {"created_at", 6, BXCTL_JSON_STRING}};
static const bxctl_json_field earlier_fields[] = {{"case_id", 0, BXCTL_JSON_RAW},
                                                  {"opened_at", 3, BXCTL_JSON_STRING},
                                                  {"closed_at", 4, BXCTL_JSON_OR_NULL},
                                                  {"ending", 5, BXCTL_JSON_OR_NULL}};
static const bxctl_json_field event_fields[] = {
    {"case_id", 0, BXCTL_JSON_RAW},        {"kind", 1, BXCTL_JSON_STRING},
    {"stage", 2, BXCTL_JSON_OR_NULL},      {"actor", 3, BXCTL_JSON_STRING},
    {"reason", 4, BXCTL_JSON_MASKED},      {"late", 5, BXCTL_JSON_BOOL},
    {"occurred_at", 6, BXCTL_JSON_STRING}, {"payload", 7, BXCTL_JSON_RAW}};

/* Appends "name":[{...},...] with the fields of rows first.. of res. */
#define JSON_ROWS(b, name, res, first, fields)                                                     \
    (bx_buf_puts(b, "\"" name "\":") == BX_OK                                                      \
         ? BXCTL_JSON_ROWS(b, res, first, PQntuples(res), fields)                                  \
         : BX_ENOMEM)

static bx_status show_json(PGconn *db, bx_buf *b, const char *student, PGresult *cases,
                           PGresult *tasks, PGresult *events)
{
    bx_status st = bx_buf_puts(b, "{\"student_id\":");
    IFOK(st, bx_buf_json_string(b, student));
    IFOK(st, bx_buf_puts(b, ","));
    IFOK(st, BXCTL_JSON_FIELDS(b, cases, 0, case_fields));
    IFOK(st, bx_buf_puts(b, ","));
    IFOK(st, JSON_ROWS(b, "open_tasks", tasks, 0, task_fields));
    IFOK(st, bx_buf_puts(b, ","));
    /* Row 0 is the case shown; the earlier ones follow. */
    IFOK(st, JSON_ROWS(b, "earlier_cases", cases, 1, earlier_fields));
    IFOK(st, bx_buf_puts(b, ","));
    IFOK(st, JSON_ROWS(b, "history", events, 0, event_fields));
    IFOK(st, bxctl_match_transfers(db, student, b));
    IFOK(st, bx_buf_puts(b, "}\n"));
    return st;
}

static void show_text(const char *student, PGresult *cases, PGresult *tasks, PGresult *events)
{
    char t1[17], t2[17];
    const char *stage = PQgetvalue(cases, 0, 2);
    printf("student %s (school %s, class %s, registry status %s)\n", student,
           PQgetvalue(cases, 0, 1), PQgetvalue(cases, 0, 6)[0] ? PQgetvalue(cases, 0, 6) : "-",
           PQgetvalue(cases, 0, 7)[0] ? PQgetvalue(cases, 0, 7) : "-");
    bxctl_time_text(PQgetvalue(cases, 0, 3), t1);
    if (PQgetvalue(cases, 0, 4)[0]) {
        bxctl_time_text(PQgetvalue(cases, 0, 4), t2);
        printf("case %s: opened %s, closed %s (%s), last stage %s\n", PQgetvalue(cases, 0, 0), t1,
               t2, PQgetvalue(cases, 0, 5), stage[0] ? stage : "-");
    } else {
        printf("case %s: open since %s, stage %s\n", PQgetvalue(cases, 0, 0), t1,
               stage[0] ? stage : "-");
    }
    printf("open tasks:%s\n", PQntuples(tasks) ? "" : " none");
    for (int i = 0; i < PQntuples(tasks); i++) {
        bxctl_time_text(PQgetvalue(tasks, i, 4), t1);
        const char *staff = PQgetvalue(tasks, i, 3);
        printf("  %-24s %-16s owner %s%s%s, due %s%s\n", PQgetvalue(tasks, i, 0),
               PQgetvalue(tasks, i, 1)[0] ? PQgetvalue(tasks, i, 1) : "-", PQgetvalue(tasks, i, 2),
               staff[0] ? " " : "", staff, t1,
               PQgetvalue(tasks, i, 5)[0] == 't' ? "  OVERDUE" : "");
    }
    for (int i = 1; i < PQntuples(cases); i++) {
        bxctl_time_text(PQgetvalue(cases, i, 3), t1);
        bxctl_time_text(PQgetvalue(cases, i, 4), t2);
        printf("earlier case %s: opened %s, closed %s (%s)\n", PQgetvalue(cases, i, 0), t1, t2,
               PQgetvalue(cases, i, 5)[0] ? PQgetvalue(cases, i, 5) : "-");
    }
    printf("history:%s\n", PQntuples(events) ? "" : " none");
    for (int i = 0; i < PQntuples(events); i++) {
        const char *reason = PQgetvalue(events, i, 4);
        size_t n = strlen(reason) + 1;
        char *masked = malloc(n);
        if (masked)
            bxctl_mask_digits(reason, masked, n);
        bxctl_time_text(PQgetvalue(events, i, 6), t1);
        printf("  %s  case %-6s %-14s %-16s %-20s%s %s\n", t1, PQgetvalue(events, i, 0),
               PQgetvalue(events, i, 1),
               PQgetvalue(events, i, 2)[0] ? PQgetvalue(events, i, 2) : "-",
               PQgetvalue(events, i, 3), PQgetvalue(events, i, 5)[0] == 't' ? " LATE" : "",
               masked ? masked : "");
        free(masked);
    }
}

static int case_show(bxctl_ctx *ctx, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc < 1 || argc > 2 || (argc == 2 && !json)) {
        fprintf(stderr, "usage: bxctl case show <student_id> [--json]\n");
        return 2;
    }
    const char *student = argv[0];
    if (!bx_id_valid(student)) {
        fprintf(stderr, "bxctl case show: \"%s\" is not a student id\n", student);
        return 2;
    }
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    char now[32];
    bxctl_now_param(now);
    PGresult *cases = NULL, *tasks = NULL, *events = NULL;
    bx_error err = {0};
    int rc = 1;
    const char *p1[] = {student};
    if (bx_pg_query(db, show_cases_sql, 1, p1, &cases, &err) != BX_OK)
        goto out;
    if (PQntuples(cases) == 0) {
        PGresult *reg = NULL;
        if (bx_pg_query(db, show_student_sql, 1, p1, &reg, &err) != BX_OK)
            goto out;
        if (PQntuples(reg) == 0) {
            fprintf(stderr, "bxctl case show: no student %s in the registry and no case\n",
                    student);
        } else {
            rc = 0;
            bx_buf b;
            bx_buf_init(&b, 0);
            if (json &&
                bx_buf_printf(&b, "{\"student_id\":\"%s\",\"case_id\":null", student) == BX_OK &&
                bxctl_match_transfers(db, student, &b) == BX_OK)
                printf("%s}\n", b.data);
            if (!json) {
                printf("student %s (school %s, class %s, registry status %s): no case\n", student,
                       PQgetvalue(reg, 0, 0), PQgetvalue(reg, 0, 1), PQgetvalue(reg, 0, 2));
                rc = bxctl_match_transfers(db, student, NULL) == BX_OK ? 0 : 1;
            }
            bx_buf_free(&b);
        }
        PQclear(reg);
        goto out;
    }
    const char *p2[] = {PQgetvalue(cases, 0, 0), now};
    if (bx_pg_query(db, show_tasks_sql, 2, p2, &tasks, &err) != BX_OK ||
        bx_pg_query(db, show_events_sql, 1, p1, &events, &err) != BX_OK)
        goto out;
    if (json) {
        bx_buf b;
        bx_buf_init(&b, 0);
        rc = bxctl_print(&b, show_json(db, &b, student, cases, tasks, events), "bxctl case show");
    } else {
        show_text(student, cases, tasks, events);
        rc = bxctl_match_transfers(db, student, NULL) == BX_OK ? 0 : 1;
    }
out:
    if (err.msg[0])
        fprintf(stderr, "bxctl case show: %s\n", err.msg);
    PQclear(cases);
    PQclear(tasks);
    PQclear(events);
    PQfinish(db);
    return rc;
}

int bxctl_case(bxctl_ctx *ctx, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "list") == 0)
        return case_list(ctx, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "show") == 0)
        return case_show(ctx, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "document") == 0)
        return bxctl_case_document(ctx, argc - 1, argv + 1);
    fprintf(stderr, "usage: bxctl case list [filters] [--json] | bxctl case show <student_id> "
                    "[--json]\n");
    return 2;
}
