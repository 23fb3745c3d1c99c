/* page_county_lists: the county bureau's standing lists (台账: suspected, dropout, returned) with
 * filters, sort and pages (GET /county/ledger), the duties' 15-day reports and monthly summaries
 * (GET /county/reports), and the exports (GET /county/export/:what, ?format=xlsx|csv): the
 * dropout roster (辍学生花名册), the three lists and the rates report.
 *
 * The rows are bx-escalate's report_queries, the ones `bxctl ledger` prints, so a page, an export
 * and the operator's command agree. Names are shown to the county officer (console_may
 * CONSOLE_VIEW_PERSONAL on each student), every view and every export is audited, id numbers are
 * never read. */
#include "bx_json.h"
#include "bx_log.h"
#include "bx_pg.h"
#include "export.h"
#include "minute_cache.h"
#include "page_common.h"
#include "page_county.h"
#include "report_queries.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEDGER_PAGE  50
#define EXPORT_MAX   50000 /* rows of one export */
#define DUTY_REPORTS 12
#define COUNT_TTL_MS 60000 /* a list's count is kept a minute (its rows never are) */

/* ---- the filter of a list, from the query, every value checked ---- */

typedef struct ledger_query {
    char list[12], township[10], school[BX_ID_MAX + 1], stage[64], sort[8];
    bool overdue;
    long page; /* 1.. */
} ledger_query;

static bool chars_ok(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || strchr(extra, s[i])))
            return false;
    return true;
}

static void copy_if(char *out, size_t size, const char *v, size_t max, const char *extra)
{
    out[0] = '\0';
    if (v && chars_ok(v, max, extra))
        snprintf(out, size, "%s", v);
}

static void ledger_query_read(const console_request *req, ledger_query *q)
{
    memset(q, 0, sizeof(*q));
    const char *list = console_query(req, "list");
    if (list && (strcmp(list, "suspected") == 0 || strcmp(list, "dropout") == 0 ||
                 strcmp(list, "returned") == 0))
        snprintf(q->list, sizeof(q->list), "%s", list);
    copy_if(q->township, sizeof(q->township), console_query(req, "township"), 9, "");
    copy_if(q->school, sizeof(q->school), console_query(req, "school"), BX_ID_MAX, "_-");
    copy_if(q->stage, sizeof(q->stage), console_query(req, "stage"), 63, "_");
    const char *sort = console_query(req, "sort");
    if (sort &&
        (strcmp(sort, "opened") == 0 || strcmp(sort, "school") == 0 || strcmp(sort, "stage") == 0))
        snprintf(q->sort, sizeof(q->sort), "%s", sort);
    const char *overdue = console_query(req, "overdue");
    q->overdue = overdue && strcmp(overdue, "1") == 0;
    const char *page = console_query(req, "page");
    q->page = page ? strtol(page, NULL, 10) : 1;
    if (q->page < 1 || q->page > 100000)
        q->page = 1;
}

static reports_ledger_sort sort_of(const ledger_query *q)
{
    return strcmp(q->sort, "opened") == 0   ? REPORTS_SORT_OPENED
           : strcmp(q->sort, "school") == 0 ? REPORTS_SORT_SCHOOL
           : strcmp(q->sort, "stage") == 0  ? REPORTS_SORT_STAGE
                                            : REPORTS_SORT_LEDGER;
}

/* "list=dropout&school=X&..." of q without the page (values checked above: no escaping needed). */
static void query_text(const ledger_query *q, char *out, size_t size)
{
    snprintf(out, size, "list=%s&township=%s&school=%s&stage=%s&sort=%s%s", q->list, q->township,
             q->school, q->stage, q->sort, q->overdue ? "&overdue=1" : "");
}

bool page_county_officer(const console_person *me)
{
    console_object o = {.kind = CONSOLE_OBJ_COUNTY, .county_code = me->county_code};
    return me->role == CONSOLE_COUNTY_OFFICER && console_may(me, CONSOLE_VIEW_AGGREGATE, &o);
}

static bool may_see(const console_request *req, const PGresult *res, int i)
{
    console_object o = {.kind = CONSOLE_OBJ_STUDENT,
                        .student_id = PQgetvalue(res, i, RL_STUDENT),
                        .school_id = PQgetvalue(res, i, RL_SCHOOL),
                        .township_code = PQgetvalue(res, i, RL_TOWNSHIP),
                        .county_code = PQgetvalue(res, i, RL_COUNTY)};
    return console_may(req->person, CONSOLE_VIEW_PERSONAL, &o);
}

static const char *list_label(const char *list)
{
    return strcmp(list, "suspected") == 0  ? "疑似辍学"
           : strcmp(list, "dropout") == 0  ? "辍学"
           : strcmp(list, "returned") == 0 ? "已复学"
                                           : list;
}

/* ---- the ledger, page first ----
 * The rows of reports_query_ledger (bxctl ledger's), in its columns and orders, for one county:
 * migration 0021's case summary gives the page's keys through an index of the order, and the
 * count through the same filter; the reason, the first day absent and the owner are the
 * summary's; names, classes and places are read for the page's rows only. $1 county, $2 list, $3
 * township, $4 school, $5 stage, $6 overdue only, $7 now (ms), $8 limit, $9 offset. */

#define LEDGER_FILTER                                                                              \
    "x.county = $1 AND x.list_rank IS NOT NULL AND ($2 = '' OR x.list_rank = CASE $2 WHEN "        \
    "'suspected' THEN 1 WHEN 'dropout' THEN 2 WHEN 'returned' THEN 3 END) AND ($3 = '' OR "        \
    "x.township = $3) AND ($4 = '' OR x.school_id = $4) AND ($5 = '' OR x.stage = $5) AND (NOT "   \
    "$6::boolean OR console.case_overdue(x.overdue_from, to_timestamp($7::bigint / 1000.0))) "

/* The orders of report_queries.c's ledger_orders, of the summary's rows x and of the page p. */
static const char *const ledger_keys[][2] = {
    [REPORTS_SORT_LEDGER] = {"x.list_rank, x.county, x.township, x.school_id, x.student_id, "
                             "x.case_id",
                             "p.list_rank, p.county, p.township, p.school_id, p.student_id, "
                             "p.case_id"},
    [REPORTS_SORT_OPENED] = {"x.opened_at DESC, x.case_id DESC",
                             "p.opened_at DESC, p.case_id DESC"},
    [REPORTS_SORT_SCHOOL] = {"x.school_id, x.student_id, x.case_id",
                             "p.school_id, p.student_id, p.case_id"},
    [REPORTS_SORT_STAGE] = {"x.stage, x.school_id, x.student_id, x.case_id",
                            "p.stage, p.school_id, p.student_id, p.case_id"},
};

/* clang-format off */
static const char ledger_select[] =
    "SELECT CASE p.list_rank WHEN 1 THEN 'suspected' WHEN 2 THEN 'dropout' ELSE 'returned' END, "
    "  p.case_id, p.student_id, p.school_id, p.township, p.county, p.stage, "
    "  " REPORTS_ISO("p.opened_at") ", "
    "  coalesce(" REPORTS_ISO("p.roster_at") ", ''), "
    "  coalesce(" REPORTS_ISO("p.closed_at") ", ''), ";
/* clang-format on */
static const char ledger_names_sql[] =
    "pr.name, console.case_overdue(p.overdue_from, to_timestamp($7::bigint / 1000.0)), (SELECT "
    "count(*) FROM console.case_summary x WHERE " LEDGER_FILTER "), "
    "coalesce(s.name, ''), coalesce(t.name, ''), coalesce(cl.name, ''), "
    "coalesce(pr.sex::text, ''), coalesce(pr.birth_date::text, ''), ";
static const char ledger_no_names_sql[] =
    "NULL::text, console.case_overdue(p.overdue_from, to_timestamp($7::bigint / 1000.0)), (SELECT "
    "count(*) FROM console.case_summary x WHERE " LEDGER_FILTER "), "
    "coalesce(s.name, ''), coalesce(t.name, ''), coalesce(cl.name, ''), '', '', ";
/* The same columns with no count (RL_TOTAL NULL): a page whose count the minute's cache holds. */
static const char ledger_names_uncounted_sql[] =
    "pr.name, console.case_overdue(p.overdue_from, to_timestamp($7::bigint / 1000.0)), "
    "NULL::bigint, coalesce(s.name, ''), coalesce(t.name, ''), coalesce(cl.name, ''), "
    "coalesce(pr.sex::text, ''), coalesce(pr.birth_date::text, ''), ";
static const char ledger_no_names_uncounted_sql[] =
    "NULL::text, console.case_overdue(p.overdue_from, to_timestamp($7::bigint / 1000.0)), "
    "NULL::bigint, coalesce(s.name, ''), coalesce(t.name, ''), coalesce(cl.name, ''), '', '', ";
static const char ledger_last[] =
    "  p.first_absent, coalesce(p.reason, ''), "
    "  coalesce((SELECT sf.name FROM registry.staff sf WHERE sf.id = p.owner_staff_id), "
    "    p.owner_role, '') ";
/* A page's column LEDGER_HISTORY: the case's history as reports_query_history has it (no
 * task_created, in time order), one JSON array [at, kind, stage, reason] an event, or NULL when
 * it has none; read with the rows instead of in a round trip of its own. */
#define LEDGER_HISTORY RL_NCOLUMNS
/* clang-format off */
static const char ledger_history[] =
    ", (SELECT json_agg(json_build_array(" REPORTS_ISO("e.occurred_at") ", e.kind, "
    "  coalesce(e.stage, ''), coalesce(e.reason, '')) ORDER BY e.occurred_at, e.id) "
    "  FROM cases.event e WHERE e.case_id = p.case_id AND e.kind <> 'task_created')::text ";
/* clang-format on */
static const char ledger_rest[] =
    "FROM p LEFT JOIN registry.school s ON s.id = p.school_id COLLATE \"default\" "
    "LEFT JOIN registry.township t ON t.code = s.township_code "
    /* a student's class and name one row each, through their keys' indexes, however many rows
     * the page has (an export's 10,000 would otherwise be planned as scans of a province's
     * students) */
    "LEFT JOIN LATERAL (SELECT cl.name FROM registry.student st JOIN registry.class cl ON cl.id = "
    "  st.class_id WHERE st.id = p.student_id COLLATE \"default\" OFFSET 0) cl ON true ";

/* The view's audit row, written by the page's own statement (ledger_page): staff, detail and the
 * client's address of console.audit, the time the request's. */
typedef struct ledger_audit {
    const char *staff_id, *detail, *client_addr;
} ledger_audit;

/* A view's audit row in the statement that reads what it records ($10 staff, $11 detail, $12
 * client address; the time $7's): no round trip and no commit of its own. Its transaction commits
 * without waiting for the WAL to reach the disk (synchronous_commit off, this transaction only):
 * the row is in the WAL at once and on disk within the WAL writer's next rounds (a fraction of a
 * second); only a crash of PostgreSQL itself in that moment could lose it. It records a read, so
 * nothing written depends on it; every write's audit row commits, synchronously, with the write,
 * and so does an export's. A page otherwise waited for a disk flush shared with every service. */
#define LEDGER_AUDIT_CTE                                                                           \
    "a AS (INSERT INTO console.audit (at, staff_id, action, student_id, detail, client_addr) "     \
    "SELECT to_timestamp($7::bigint / 1000.0), $10, 'view_ledger', NULL, $11, $12 FROM (SELECT "   \
    "set_config('synchronous_commit', 'off', true)) c), "

/* county_ledger_query, with the count of the filter (RL_TOTAL) or without it (NULL), with the
 * view's audit row when audit is not NULL and with the rows' histories (LEDGER_HISTORY) when
 * history. A page past the first has its keys chosen first from the order's index alone (k: an
 * index-only scan when the filter's columns are the index's), and only its own rows are read
 * whole (p): otherwise every summary row before it was read whole too (1,000 rows for page 3 of a
 * county's dropout list by date). The first page, and an export, read their rows at once. */
static bx_status ledger_page(PGconn *db, const reports_ledger_filter *f, bool counted,
                             const ledger_audit *audit, bool history, PGresult **res, bx_error *err)
{
    *res = NULL;
    unsigned sort = (unsigned)f->sort;
    if (sort >= sizeof(ledger_keys) / sizeof(ledger_keys[0]))
        sort = REPORTS_SORT_LEDGER;
    bx_buf sql;
    bx_buf_init(&sql, 0);
    bx_status s =
        f->offset > 0
            ? bx_buf_printf(
                  &sql,
                  "WITH %sk AS MATERIALIZED (SELECT x.case_id FROM console.case_summary x "
                  "WHERE " LEDGER_FILTER "ORDER BY %s LIMIT $8::bigint OFFSET $9::bigint), "
                  "p AS MATERIALIZED (SELECT x.* FROM console.case_summary x WHERE "
                  "x.case_id IN (SELECT k.case_id FROM k)) ",
                  audit ? LEDGER_AUDIT_CTE : "", ledger_keys[sort][0])
            : bx_buf_printf(&sql,
                            "WITH %sp AS MATERIALIZED (SELECT x.* FROM console.case_summary x "
                            "WHERE " LEDGER_FILTER
                            "ORDER BY %s LIMIT $8::bigint OFFSET $9::bigint) ",
                            audit ? LEDGER_AUDIT_CTE : "", ledger_keys[sort][0]);
    IFOK(s, bx_buf_puts(&sql, ledger_select));
    IFOK(s, bx_buf_puts(&sql, counted ? (f->names ? ledger_names_sql : ledger_no_names_sql)
                                      : (f->names ? ledger_names_uncounted_sql
                                                  : ledger_no_names_uncounted_sql)));
    IFOK(s, bx_buf_puts(&sql, ledger_last));
    if (history)
        IFOK(s, bx_buf_puts(&sql, ledger_history));
    IFOK(s, bx_buf_puts(&sql, ledger_rest));
    if (f->names)
        IFOK(s, bx_buf_puts(&sql, "LEFT JOIN LATERAL (SELECT pr.name, pr.sex, pr.birth_date FROM "
                                  "registry.student_private pr WHERE pr.student_id = p.student_id "
                                  "COLLATE \"default\" OFFSET 0) pr ON true "));
    IFOK(s, bx_buf_printf(&sql, "ORDER BY %s", ledger_keys[sort][1]));
    if (s != BX_OK) {
        bx_buf_free(&sql);
        return BX_ERR(err, s, "ledger: out of memory");
    }
    reports_ledger_args a = {0};
    reports_ledger_args_fill(f, &a);
    if (audit) {
        a.params[REPORTS_LEDGER_NPARAMS] = audit->staff_id;
        a.params[REPORTS_LEDGER_NPARAMS + 1] = audit->detail;
        a.params[REPORTS_LEDGER_NPARAMS + 2] = audit->client_addr;
    }
    s = bx_pg_query(db, sql.data, REPORTS_LEDGER_NPARAMS + (audit ? REPORTS_LEDGER_EXTRA : 0),
                    a.params, res, err);
    bx_buf_free(&sql);
    return s;
}

bx_status county_ledger_query(PGconn *db, const reports_ledger_filter *f, PGresult **res,
                              bx_error *err)
{
    return ledger_page(db, f, true, NULL, false, res, err);
}

/* ---- the count of a list's filter, kept a minute ----
 * A list's rows are read exactly on every page; its count ("共 N 人" and the number of pages)
 * is counted when first asked and kept a minute per county and filter, as the dashboards are: in
 * the largest county a count is an index-only scan of 25,000 cases, every page of every officer
 * otherwise. The page says when it was counted. */
#define COUNT_ENTRIES 256

static minute_cache_slot count_slots[COUNT_ENTRIES];
static minute_cache count_cache = {PTHREAD_MUTEX_INITIALIZER, COUNT_TTL_MS, free, COUNT_ENTRIES,
                                   count_slots};

typedef struct count_read {
    long *total;
    long long *at; /* when it was counted */
} count_read;

static void read_count(const void *value, long long at, void *arg)
{
    const count_read *r = arg;
    *r->total = *(const long *)value;
    *r->at = at;
}

static bool count_get(const char *key, long long now, long *total, long long *at)
{
    count_read r = {total, at};
    return minute_cache_read(&count_cache, key, now, read_count, &r);
}

static void count_put(const char *key, long long now, long total)
{
    long *kept = malloc(sizeof(*kept));
    if (kept == NULL)
        return;
    *kept = total;
    minute_cache_keep(&count_cache, key, now, kept);
}

/* The filter form's choices: the county's townships and schools, read once a minute per county
 * (registry rows, the same for every officer of the county; a page read them every time). */
#define CHOICES_ENTRIES 32

static void places_free(void *res)
{
    PQclear(res);
}

static minute_cache_slot choices_slots[CHOICES_ENTRIES];
static minute_cache choices_cache = {PTHREAD_MUTEX_INITIALIZER, COUNT_TTL_MS, places_free,
                                     CHOICES_ENTRIES, choices_slots};

static void put_places(const PGresult *res, const ledger_query *q, tmpl_ctx *ctx)
{
    for (int i = 0; i < PQntuples(res); i++) {
        bool township = PQgetvalue(res, i, 0)[0] == 't';
        const char *id = PQgetvalue(res, i, 1);
        page_put_option(ctx, township ? "townships" : "schools", id, PQgetvalue(res, i, 2),
                        strcmp(id, township ? q->township : q->school) == 0);
    }
}

typedef struct places_read {
    const ledger_query *q;
    tmpl_ctx *ctx;
} places_read;

/* Under the cache's lock: the kept result may be replaced after. */
static void read_places(const void *res, long long at, void *arg)
{
    const places_read *r = arg;
    (void)at;
    put_places(res, r->q, r->ctx);
}

static bx_status put_choices(const console_request *req, const ledger_query *q, tmpl_ctx *ctx,
                             bx_error *err)
{
    const char *county = req->person->county_code;
    bx_status s = BX_OK;
    places_read r = {q, ctx};
    if (!minute_cache_read(&choices_cache, county, (long long)req->now, read_places, &r)) {
        const char *params[] = {county};
        PGresult *res = NULL;
        s = bx_pg_query(
            req->db,
            "SELECT 't', t.code::text, t.name FROM registry.township t WHERE t.county_code = $1 "
            "UNION ALL SELECT 's', s.id, s.name FROM registry.school s JOIN registry.township t "
            "ON t.code = s.township_code WHERE t.county_code = $1 ORDER BY 1 DESC, 2",
            1, params, &res, err);
        if (s == BX_OK) {
            put_places(res, q, ctx);
            minute_cache_keep(&choices_cache, county, (long long)req->now, res);
        }
    }
    static const char *const stages[] = {"contact_family",  "home_visit",     "school_report",
                                         "academic_office", "dropout_roster", "township_notice",
                                         "deadline_notice", "legal_referral"};
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
        page_put_option(ctx, "stages", stages[i], page_label_stage(stages[i]),
                        strcmp(stages[i], q->stage) == 0);
    static const char *const lists[] = {"suspected", "dropout", "returned"};
    for (size_t i = 0; i < 3; i++)
        page_put_option(ctx, "lists", lists[i], list_label(lists[i]),
                        strcmp(lists[i], q->list) == 0);
    static const char *const sorts[][2] = {
        {"", "台账顺序"}, {"opened", "立案时间"}, {"school", "学校"}, {"stage", "阶段"}};
    for (size_t i = 0; i < 4; i++)
        page_put_option(ctx, "sorts", sorts[i][0], sorts[i][1], strcmp(sorts[i][0], q->sort) == 0);
    tmpl_put_bool(ctx, "overdue_checked", q->overdue);
    return s;
}

/* The events of a row's LEDGER_HISTORY (NULL: none) into row's "history". */
static bx_status put_history(tmpl_ctx *row, const PGresult *res, int i, bx_error *err)
{
    if (PQgetisnull(res, i, LEDGER_HISTORY))
        return BX_OK;
    const char *text = PQgetvalue(res, i, LEDGER_HISTORY);
    cJSON *events = NULL;
    bx_status s = bx_json_parse(text, strlen(text), &events, err);
    if (s != BX_OK)
        return s;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events)
    {
        const cJSON *f[4];
        for (int k = 0; k < 4; k++)
            f[k] = cJSON_GetArrayItem(ev, k);
        if (!cJSON_IsString(f[0]) || !cJSON_IsString(f[1]) || !cJSON_IsString(f[2]) ||
            !cJSON_IsString(f[3])) {
            s = BX_ERR(err, BX_EINVAL, "ledger history: an event is not [at, kind, stage, reason]");
            break;
        }
        tmpl_ctx *e = tmpl_add_row(row, "history");
        char at[24];
        page_short_time(f[0]->valuestring, at, sizeof(at));
        const char *stage = f[2]->valuestring;
        char reason[1001];
        snprintf(reason, sizeof(reason), "%s", f[3]->valuestring);
        bx_log_mask(reason);
        tmpl_put(e, "at", at);
        tmpl_put(e, "what", page_label_event(f[1]->valuestring));
        tmpl_put(e, "stage", stage[0] ? page_label_stage(stage) : "");
        tmpl_put(e, "reason", reason);
    }
    cJSON_Delete(events);
    return s;
}

/* The ledger rows of query q in the county of req's officer, from list (q's own, or an export's),
 * with names; strings borrowed from q. Limit and offset are the caller's. */
static reports_ledger_filter ledger_filter(const console_request *req, const ledger_query *q,
                                           const char *list)
{
    return (reports_ledger_filter){.area = req->person->county_code,
                                   .list = list,
                                   .township = q->township,
                                   .school = q->school,
                                   .stage = q->stage,
                                   .overdue_only = q->overdue,
                                   .names = true,
                                   .now_ms = (long long)req->now,
                                   .sort = sort_of(q)};
}

/* Row i of a ledger page into row: names and history only where the officer may see the child. */
static bx_status put_ledger_row(const console_request *req, const PGresult *res, int i,
                                tmpl_ctx *row, bx_error *err)
{
    bool see = may_see(req, res, i);
    const char *name = PQgetisnull(res, i, RL_NAME) ? "" : PQgetvalue(res, i, RL_NAME);
    char opened[24], roster[24], closed[24];
    page_short_time(PQgetvalue(res, i, RL_OPENED), opened, sizeof(opened));
    page_short_time(PQgetvalue(res, i, RL_ROSTER), roster, sizeof(roster));
    page_short_time(PQgetvalue(res, i, RL_CLOSED), closed, sizeof(closed));
    tmpl_put(row, "list", list_label(PQgetvalue(res, i, RL_LIST)));
    tmpl_put(row, "student_id", PQgetvalue(res, i, RL_STUDENT));
    tmpl_put(row, "name", see ? (name[0] ? name : PQgetvalue(res, i, RL_STUDENT)) : "");
    tmpl_put_bool(row, "link", see);
    tmpl_put(row, "school", PQgetvalue(res, i, RL_SCHOOL_NAME));
    tmpl_put(row, "township", PQgetvalue(res, i, RL_TOWNSHIP_NAME));
    tmpl_put(row, "class_name", PQgetvalue(res, i, RL_CLASS_NAME));
    tmpl_put(row, "stage", page_label_stage(PQgetvalue(res, i, RL_STAGE)));
    tmpl_put(row, "opened", opened);
    tmpl_put(row, "roster", roster);
    tmpl_put(row, "closed", closed);
    tmpl_put_bool(row, "overdue", PQgetvalue(res, i, RL_OVERDUE)[0] == 't');
    tmpl_put(row, "owner", console_role_label_of(PQgetvalue(res, i, RL_OWNER)));
    return see ? put_history(row, res, i, err) : BX_OK;
}

bx_status page_county_ledger_get(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    if (!page_found(rep, BX_OK, page_county_officer(me)))
        return BX_OK;
    ledger_query q;
    ledger_query_read(req, &q);
    reports_ledger_filter f = ledger_filter(req, &q, q.list);
    f.limit = LEDGER_PAGE;
    f.offset = (q.page - 1) * LEDGER_PAGE;
    PGresult *res = NULL;
    char qs[256], detail[320], count_key[160];
    query_text(&q, qs, sizeof(qs));
    snprintf(count_key, sizeof(count_key), "%s|%s", me->county_code, qs);
    long long now = (long long)req->now, counted_at = now;
    long total = 0;
    bool counted = !count_get(count_key, now, &total, &counted_at);
    snprintf(detail, sizeof(detail), "county=%s %s page=%ld", me->county_code, qs, q.page);
    ledger_audit audit = {me->staff_id, detail, req->client_addr ? req->client_addr : ""};
    bx_status s = county_session(req->db, err);
    IFOK(s, ledger_page(req->db, &f, counted, &audit, true, &res, err));
    IFOK(s, put_choices(req, &q, rep->ctx, err));
    if (s == BX_OK && counted) {
        total = PQntuples(res) > 0 ? strtol(PQgetvalue(res, 0, RL_TOTAL), NULL, 10) : 0;
        /* a page past the end has no row to carry the count: it is not kept */
        if (PQntuples(res) > 0 || q.page == 1)
            count_put(count_key, now, total);
    }
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++)
        s = put_ledger_row(req, res, i, tmpl_add_row(rep->ctx, "rows"), err);
    PQclear(res);
    if (s != BX_OK)
        return s;
    long pages = (total + LEDGER_PAGE - 1) / LEDGER_PAGE;
    tmpl_put_int(rep->ctx, "total", total);
    if (!counted) {
        char at[40];
        bx_time_format((bx_time_ms)counted_at, at, sizeof(at));
        tmpl_putf(rep->ctx, "counted_at", "%.8s", at + 11); /* HH:MM:SS, Asia/Shanghai */
    }
    tmpl_put_int(rep->ctx, "page", q.page);
    tmpl_put_int(rep->ctx, "pages", pages > 0 ? pages : 1);
    tmpl_put(rep->ctx, "qs", qs);
    if (q.page > 1)
        tmpl_put_int(rep->ctx, "prev", q.page - 1);
    if (q.page < pages)
        tmpl_put_int(rep->ctx, "next", q.page + 1);
    rep->template_name = "county_ledger";
    snprintf(rep->title, sizeof(rep->title), "台账");
    return BX_OK;
}

/* ---- the duties' reports ---- */

/* The reports upward (四个一) of the county's schools and of the county itself, as bx-escalate's
 * duties wrote them into cases.upward_report (migration 0022) and `bxctl report --upward` shows
 * them: newest first, with the place's name, the period, the report's school day and whether its
 * office was asked for it (a task through bx-notify) or it was only kept. Counts only. */
#define UPWARD_REPORTS 60

/* clang-format off */
static const char upward_sql[] =
    "SELECT u.kind, u.area, coalesce(s.name, c.name, u.area), u.period, u.first_day::text, "
    "  u.last_day::text, u.report_day::text, u.owner_role, u.request_id IS NOT NULL, "
    "  " REPORTS_ISO("u.generated_at") ", "
    "  coalesce(u.figures->>'dropout_rate_pct', ''), coalesce(u.figures->>'retention_rate_pct', ''), "
    "  coalesce(u.figures->'ledger'->>'suspected', ''), coalesce(u.figures->'ledger'->>'dropout', ''), "
    "  coalesce(u.figures->'ledger'->>'returned', ''), coalesce(u.figures->'rollcall'->>'rate_pct', '') "
    "FROM cases.upward_report u "
    "LEFT JOIN registry.school s ON u.kind = 'school_monthly_report' AND s.id = u.area COLLATE \"default\" "
    "LEFT JOIN registry.county c ON u.kind = 'county_quarterly_report' AND c.code = u.area "
    "WHERE u.county_code = $1 "
    "ORDER BY u.report_day DESC, CASE u.kind WHEN 'county_quarterly_report' THEN 1 ELSE 2 END, "
    "  u.area LIMIT $2::int";
/* clang-format on */

/* The duties' reports (out-of-school report, monthly summary) fired for the county's calendars,
 * newest first. */
/* clang-format off */
static const char duty_reports_sql[] =
    "SELECT tm.payload->>'duty', tm.payload->>'calendar_id', tm.payload->>'term', "
    "  tm.payload->>'first_day', tm.payload->>'last_day', " REPORTS_ISO("tm.fired_at") " "
    "FROM cases.timer tm WHERE tm.kind = 'duty' AND tm.fired_at IS NOT NULL AND NOT tm.cancelled "
    "  AND tm.payload->>'duty' IN ('out_of_school_report', 'monthly_summary') "
    "  AND tm.payload->>'calendar_id' IN (SELECT s.calendar_id FROM registry.school s "
    "    JOIN registry.township t ON t.code = s.township_code WHERE t.county_code = $1) "
    "ORDER BY tm.fired_at DESC LIMIT $2::int";
/* clang-format on */

/* Runs sql, a county's newest rows: $1 the county, $2 how many at most. */
static bx_status county_latest(PGconn *db, const char *sql, const char *county, int max,
                               PGresult **res, bx_error *err)
{
    char max_text[12];
    snprintf(max_text, sizeof(max_text), "%d", max);
    const char *params[] = {county, max_text};
    return bx_pg_query(db, sql, 2, params, res, err);
}

static const char *upward_label(const char *kind)
{
    return strcmp(kind, "school_monthly_report") == 0     ? "学校月报"
           : strcmp(kind, "county_quarterly_report") == 0 ? "县季报"
           : strcmp(kind, "city_term_report") == 0        ? "市学期报告"
           : strcmp(kind, "province_yearly_report") == 0  ? "省学年报告"
                                                          : kind;
}

/* A rate of the figures as shown: "1.23%", "—" when not applicable ("n/a") or absent. */
static void upward_rate(const char *v, char out[16])
{
    if (v[0] == '\0' || strcmp(v, "n/a") == 0)
        snprintf(out, 16, "—");
    else
        snprintf(out, 16, "%.2f%%", strtod(v, NULL));
}

static bx_status upward_reports(const console_request *req, const char *county, tmpl_ctx *ctx,
                                bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = county_latest(req->db, upward_sql, county, UPWARD_REPORTS, &res, err);
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++) {
        tmpl_ctx *row = tmpl_add_row(ctx, "upward");
        char at[24], dropout[16], retention[16], rollcall[16];
        page_short_time(PQgetvalue(res, i, 9), at, sizeof(at));
        upward_rate(PQgetvalue(res, i, 10), dropout);
        upward_rate(PQgetvalue(res, i, 11), retention);
        upward_rate(PQgetvalue(res, i, 15), rollcall);
        const char *owner_label = console_role_label_of(PQgetvalue(res, i, 7));
        bool asked = PQgetvalue(res, i, 8)[0] == 't';
        tmpl_put(row, "kind", upward_label(PQgetvalue(res, i, 0)));
        tmpl_put(row, "place", PQgetvalue(res, i, 2));
        tmpl_put(row, "period", PQgetvalue(res, i, 3));
        tmpl_put(row, "first_day", PQgetvalue(res, i, 4));
        tmpl_put(row, "last_day", PQgetvalue(res, i, 5));
        tmpl_put(row, "report_day", PQgetvalue(res, i, 6));
        tmpl_put(row, "owner", owner_label);
        tmpl_put(row, "status", asked ? "已通知经办" : "存档");
        tmpl_put_bool(row, "asked", asked);
        tmpl_put(row, "at", at);
        tmpl_put(row, "dropout", dropout);
        tmpl_put(row, "retention", retention);
        tmpl_put(row, "suspected", PQgetvalue(res, i, 12));
        tmpl_put(row, "dropouts", PQgetvalue(res, i, 13));
        tmpl_put(row, "returned", PQgetvalue(res, i, 14));
        tmpl_put(row, "rollcall", rollcall);
    }
    PQclear(res);
    return s;
}

/* The duties' reports and the reports upward of a county into ctx. */
static bx_status reports_build(const console_request *req, const char *county, tmpl_ctx *ctx,
                               bx_error *err)
{
    PGresult *res = NULL;
    bx_status s = county_latest(req->db, duty_reports_sql, county, DUTY_REPORTS, &res, err);
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++) {
        PGresult *c = NULL;
        s = reports_query_duty_counts(req->db, PQgetvalue(res, i, 1), PQgetvalue(res, i, 3),
                                      PQgetvalue(res, i, 4), &c, err);
        for (int r = 0; s == BX_OK && r < PQntuples(c); r++) {
            if (strcmp(PQgetvalue(c, r, 0), county) != 0)
                continue;
            tmpl_ctx *row = tmpl_add_row(ctx, "reports");
            bool monthly = strcmp(PQgetvalue(res, i, 0), "monthly_summary") == 0;
            char at[24];
            page_short_time(PQgetvalue(res, i, 5), at, sizeof(at));
            tmpl_put(row, "kind", monthly ? "月度汇总" : "开学15天失学辍学报告");
            tmpl_put(row, "term", PQgetvalue(res, i, 2));
            tmpl_put(row, "first_day", PQgetvalue(res, i, 3));
            tmpl_put(row, "last_day", PQgetvalue(res, i, 4));
            tmpl_put(row, "at", at);
            tmpl_put(row, "suspected", PQgetvalue(c, r, 1));
            tmpl_put(row, "dropouts", PQgetvalue(c, r, 2));
            tmpl_put(row, "opened", PQgetvalue(c, r, 3));
            tmpl_put(row, "returned", PQgetvalue(c, r, 4));
        }
        PQclear(c);
    }
    PQclear(res);
    IFOK(s, upward_reports(req, county, ctx, err));
    if (s == BX_OK && tmpl_failed(ctx))
        s = BX_ERR(err, BX_ENOMEM, "reports: out of memory");
    return s;
}

/* Counts only, the same for every officer of the county: built once a minute per county (the
 * minute's cache of the dashboards), shown with the time of its figures. */
bx_status page_county_reports_get(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    if (!page_found(rep, BX_OK, page_county_officer(me)))
        return BX_OK;
    bx_status s = county_session(req->db, err);
    if (s != BX_OK)
        return s;
    char key[96], today[11];
    page_today(req, today);
    snprintf(key, sizeof(key), "reports|%s|%s", me->county_code, today);
    long long now = (long long)req->now, as_of = now;
    if (!county_cache_get(key, now, rep->ctx, &as_of)) {
        tmpl_ctx *built = tmpl_ctx_new();
        s = built ? reports_build(req, me->county_code, built, err)
                  : BX_ERR(err, BX_ENOMEM, "reports: out of memory");
        if (s == BX_OK)
            county_cache_put(key, now, as_of, built, rep->ctx);
        else
            tmpl_ctx_free(built);
    }
    if (s != BX_OK)
        return s;
    char at[40];
    bx_time_format((bx_time_ms)as_of, at, sizeof(at));
    tmpl_putf(rep->ctx, "as_of", "%.8s", at + 11); /* HH:MM:SS, Asia/Shanghai */
    tmpl_put(rep->ctx, "today", today);
    rep->template_name = "county_reports";
    snprintf(rep->title, sizeof(rep->title), "报告与月度汇总");
    return BX_OK;
}

/* ---- exports ---- */

/* The export of a list: every row of the filter (at most EXPORT_MAX), each with its history. */
static bx_status ledger_cells(const console_request *req, const reports_ledger_filter *f,
                              bx_buf *cells, size_t *nrows, bx_error *err)
{
    PGresult *res = NULL, *h = NULL;
    bx_status s = county_session(req->db, err);
    IFOK(s, county_ledger_query(req->db, f, &res, err));
    IFOK(s, reports_query_history(req->db, res, &h, err));
    *nrows = 0;
    export_event *events = NULL;
    size_t cap = 0;
    for (int i = 0; s == BX_OK && i < PQntuples(res); i++) {
        if (!may_see(req, res, i))
            continue;
        long long case_id = strtoll(PQgetvalue(res, i, RL_CASE), NULL, 10);
        int first = reports_history_first(h, case_id), last = first;
        while (last < PQntuples(h) && strtoll(PQgetvalue(h, last, RH_CASE), NULL, 10) == case_id)
            last++;
        size_t ne = (size_t)(last - first);
        if (ne > cap) {
            export_event *more = realloc(events, ne * sizeof(*events));
            if (more == NULL) {
                s = BX_ERR(err, BX_ENOMEM, "export: out of memory");
                break;
            }
            events = more;
            cap = ne;
        }
        for (size_t k = 0; k < ne; k++)
            events[k] = (export_event){
                PQgetvalue(h, first + (int)k, RH_AT), PQgetvalue(h, first + (int)k, RH_KIND),
                PQgetvalue(h, first + (int)k, RH_STAGE), PQgetvalue(h, first + (int)k, RH_REASON)};
        export_case c = {.school = PQgetvalue(res, i, RL_SCHOOL_NAME),
                         .township = PQgetvalue(res, i, RL_TOWNSHIP_NAME),
                         .class_name = PQgetvalue(res, i, RL_CLASS_NAME),
                         .name = PQgetisnull(res, i, RL_NAME) ? PQgetvalue(res, i, RL_STUDENT)
                                                              : PQgetvalue(res, i, RL_NAME),
                         .sex = PQgetvalue(res, i, RL_SEX),
                         .birth_date = PQgetvalue(res, i, RL_BIRTH_DATE),
                         .first_absent = PQgetvalue(res, i, RL_FIRST_ABSENT),
                         .stage = PQgetvalue(res, i, RL_STAGE),
                         .reason = PQgetvalue(res, i, RL_REASON),
                         .owner = PQgetvalue(res, i, RL_OWNER),
                         .history = events,
                         .nhistory = ne};
        s = export_case_cells(&c, cells);
        if (s == BX_OK)
            ++*nrows;
        else
            s = BX_ERR(err, s, "export: out of memory");
    }
    free(events);
    PQclear(res);
    PQclear(h);
    return s;
}

static const char *const rates_headers[] = {"学校", "乡镇", "期初在籍", "辍学人数", "辍学率",
                                            "转出", "转入", "现在籍",   "巩固率",   "预警"};

/* The rates report: one row per school for the term, with its township and flags. */
static bx_status rates_cells(const console_request *req, const county_period *p, bx_buf *cells,
                             size_t *nrows, bx_error *err)
{
    reports_row *rows = NULL;
    size_t n = 0;
    *nrows = 0;
    const char *county = req->person->county_code;
    bx_status s = county_rates(req, county, p, false, REPORTS_SCHOOL, &rows, &n, err);
    const char *params[] = {county};
    PGresult *names = NULL;
    IFOK(s, bx_pg_query(req->db,
                        "SELECT s.id, s.name, t.name FROM registry.school s JOIN "
                        "registry.township t ON t.code = s.township_code WHERE t.county_code = $1",
                        1, params, &names, err));
    for (size_t i = 0; s == BX_OK && i < n; i++) {
        const reports_row *r = &rows[i];
        const char *school = r->id, *township = r->township;
        for (int k = 0; k < PQntuples(names); k++)
            if (strcmp(PQgetvalue(names, k, 0), r->id) == 0) {
                school = PQgetvalue(names, k, 1);
                township = PQgetvalue(names, k, 2);
            }
        char v[8][24];
        snprintf(v[0], sizeof(v[0]), "%ld", r->all.enrolled_start);
        snprintf(v[1], sizeof(v[1]), "%ld", r->all.dropped_out);
        reports_rate_text(r->all.dropout_valid, r->all.dropout_rate, v[2]);
        snprintf(v[3], sizeof(v[3]), "%ld", r->all.transferred_out);
        snprintf(v[4], sizeof(v[4]), "%ld", r->all.transferred_in);
        snprintf(v[5], sizeof(v[5]), "%ld", r->all.enrolled_now);
        reports_rate_text(r->all.retention_valid, r->all.retention_rate, v[6]);
        const char *flag = r->flags & REPORTS_FLAG_SCHOOL_FAILS ? "学校超过3%"
                           : r->flags                           ? "分学段超过目标"
                                                                : "";
        const char *row[] = {school, township, v[0], v[1], v[2], v[3], v[4], v[5], v[6], flag};
        for (size_t c = 0; c < 10 && s == BX_OK; c++)
            s = bx_buf_append(cells, row[c], strlen(row[c]) + 1);
        ++*nrows;
    }
    PQclear(names);
    free(rows);
    return s;
}

bx_status page_county_export_get(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    const char *what = req->params[0];
    const char *format = console_query(req, "format");
    bool xlsx = format == NULL || strcmp(format, "xlsx") == 0;
    static const struct {
        const char *what, *list, *title;
    } kinds[] = {{"roster", "dropout", "辍学生花名册"},
                 {"suspected", "suspected", "疑似辍学学生台账"},
                 {"dropout", "dropout", "辍学学生台账"},
                 {"returned", "returned", "复学学生台账"},
                 {"rates", NULL, "辍学率与巩固率报表"}};
    size_t k = 0;
    while (k < sizeof(kinds) / sizeof(kinds[0]) && strcmp(kinds[k].what, what) != 0)
        k++;
    if (!page_county_officer(me) || k == sizeof(kinds) / sizeof(kinds[0]) ||
        (format && strcmp(format, "xlsx") != 0 && strcmp(format, "csv") != 0)) {
        console_not_found(rep);
        return BX_OK;
    }
    county_period p;
    bx_status s = county_period_of(req, me->county_code, &p, err);
    ledger_query q;
    ledger_query_read(req, &q);
    bx_buf cells, out;
    bx_buf_init(&cells, 0);
    bx_buf_init(&out, 0);
    size_t nrows = 0;
    if (s == BX_OK && kinds[k].list) {
        reports_ledger_filter f = ledger_filter(req, &q, kinds[k].list);
        f.limit = EXPORT_MAX;
        s = ledger_cells(req, &f, &cells, &nrows, err);
    } else if (s == BX_OK)
        s = rates_cells(req, &p, &cells, &nrows, err);
    /* the title row: county, period, date */
    const char *params[] = {me->county_code};
    PGresult *county = NULL;
    IFOK(s, bx_pg_query(req->db, "SELECT name FROM registry.county WHERE code = $1", 1, params,
                        &county, err));
    char title[256];
    snprintf(title, sizeof(title), "%s %s（%s%s，%s月）导出日期 %s",
             s == BX_OK && PQntuples(county) == 1 ? PQgetvalue(county, 0, 0) : me->county_code,
             kinds[k].title, p.term[0] ? "学期 " : "", p.term, p.month, p.today);
    PQclear(county);
    export_table t = {.title = title,
                      .sheet = kinds[k].title,
                      .headers = kinds[k].list ? export_ledger_headers : rates_headers,
                      .ncols = kinds[k].list ? EXPORT_LEDGER_COLS : 10,
                      .cells = &cells,
                      .nrows = nrows};
    if (s == BX_OK)
        s = xlsx ? export_xlsx(&t, &out, err) : export_csv(&t, &out);
    char detail[320], qs[256];
    query_text(&q, qs, sizeof(qs));
    snprintf(detail, sizeof(detail), "export=%s format=%s rows=%zu county=%s %s", what,
             xlsx ? "xlsx" : "csv", nrows, me->county_code, qs);
    IFOK(s, console_audit(req, "export", NULL, detail, err));
    bx_buf_free(&cells);
    if (s != BX_OK) {
        bx_buf_free(&out);
        return s;
    }
    rep->file_len = out.len;
    rep->file_body = bx_buf_steal(&out);
    rep->file_type = xlsx ? "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                          : "text/csv; charset=utf-8";
    snprintf(rep->file_name, sizeof(rep->file_name), "%s-%s-%s.%s", what, me->county_code, p.today,
             xlsx ? "xlsx" : "csv");
    return BX_OK;
}
