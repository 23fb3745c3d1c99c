/* drive.c: a term of the simulated county through bx-ingest, as teachers would send it, in
 * accelerated time: the driven clock is set step by step through each school day, and the
 * pipeline settles before each step. */
#include "simtool.h"

#include "console_client.h"

#include "bx_clock.h"
#include "bx_json.h"
#include "bx_pg.h"
#include "bx_registry.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REPLY        (4u << 20)
#define SETTLE_MS        120000
#define MAX_PRINTED      10
#define REGISTRY_WAIT_MS 60000

typedef struct school_key {
    char school[32];
    char token[160];
} school_key;

typedef struct driver {
    const sim_county *c;
    const sim_drive_conf *conf;
    sim_drive_counts *counts;
    school_key *keys; /* by school index */
    CURL *curl;
    bx_buf reply;
    sim_settle *settle;
    bool has_notify; /* bx-notify's tables are in the database */
    int printed;
    sim_console *console; /* the township officers in bx-console */
} driver;

static bx_status load_keys(driver *d, bx_error *err)
{
    FILE *f = fopen(d->conf->keys_file, "r");
    if (f == NULL)
        return BX_ERR(err, BX_EIO, "cannot read %s", d->conf->keys_file);
    d->keys = calloc((size_t)d->c->nschools, sizeof(*d->keys));
    if (d->keys == NULL) {
        fclose(f);
        return BX_ERR(err, BX_ENOMEM, "keys: out of memory");
    }
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        char school[32], token[160];
        if (sscanf(line, "%31s %159s", school, token) != 2)
            continue;
        for (int i = 0; i < d->c->nschools; i++)
            if (strcmp(d->c->schools[i].id, school) == 0) {
                snprintf(d->keys[i].school, sizeof(d->keys[i].school), "%s", school);
                snprintf(d->keys[i].token, sizeof(d->keys[i].token), "%s", token);
            }
    }
    fclose(f);
    for (int i = 0; i < d->c->nschools; i++)
        if (d->keys[i].token[0] == '\0')
            return BX_ERR(err, BX_EINVAL, "%s: no credential for school %s", d->conf->keys_file,
                          d->c->schools[i].id);
    return BX_OK;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    bx_buf *b = arg;
    return bx_buf_append(b, p, size * n) == BX_OK ? size * n : 0;
}

static long long json_count(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

/* Prints the first rejected record's error (ids and fields only: bx-ingest's errors hold no
 * personal data). */
static void print_reject(driver *d, const char *path, const cJSON *reply)
{
    if (d->printed++ >= MAX_PRINTED)
        return;
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(reply, "results");
    const cJSON *r = NULL;
    cJSON_ArrayForEach(r, results)
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
        if (cJSON_IsString(st) && strcmp(st->valuestring, "accepted") != 0 &&
            strcmp(st->valuestring, "duplicate") != 0) {
            fprintf(stderr, "bx-sim: %s: %s: %s\n", path, st->valuestring,
                    cJSON_IsString(e) ? e->valuestring : "?");
            return;
        }
    }
}

static bx_status post(driver *d, int school, const char *path, const bx_buf *body, bx_error *err)
{
    char url[512], auth[200];
    snprintf(url, sizeof(url), "%s%s", d->conf->api, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->keys[school].token);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    bx_buf_reset(&d->reply);
    curl_easy_setopt(d->curl, CURLOPT_URL, url);
    curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE, (long)body->len);
    curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, &d->reply);
    CURLcode code = curl_easy_perform(d->curl);
    curl_slist_free_all(hdrs);
    long status = 0;
    curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);
    if (code != CURLE_OK)
        return BX_ERR(err, BX_EIO, "%s: %s", url, curl_easy_strerror(code));
    cJSON *reply = NULL;
    if (bx_json_parse(d->reply.data ? d->reply.data : "", d->reply.len, &reply, NULL) != BX_OK) {
        return BX_ERR(err, BX_EIO, "%s: HTTP %ld, unreadable reply: %.200s", path, status,
                      d->reply.data ? d->reply.data : "");
    }
    d->counts->accepted += json_count(reply, "accepted");
    d->counts->duplicates += json_count(reply, "duplicates");
    long long rejected = json_count(reply, "rejected"), failed = json_count(reply, "failed");
    d->counts->rejected += rejected;
    d->counts->failed += failed;
    if (rejected)
        print_reject(d, path, reply);
    cJSON_Delete(reply);
    if (status != 200 || failed)
        return BX_ERR(err, BX_EIO, "%s: HTTP %ld: %.300s", path, status,
                      d->reply.data ? d->reply.data : "");
    return BX_OK;
}

static bx_status set_clock(bx_date day, int hour, int minute, bx_error *err)
{
    if (bx_clock_set(bx_time_from_local(day, hour, minute)) != BX_OK)
        return BX_ERR(err, BX_EINVAL, "the clock is not driven: set BX_CLOCK=file:<path>");
    return BX_OK;
}

/* The next paced send of bx-notify after the clock's now and within PACE_WINDOW_MS of it, or 0:
 * a send deferred by the provider-wide rate (a few milliseconds per message over the burst), not
 * one waiting for the morning after quiet hours or a later retry. */
#define PACE_WINDOW_MS (10 * 60 * 1000)
#define PACE_STEPS_MAX 100000
#define PACE_STEP_MS   1000

static bx_status next_paced_send(driver *d, bx_time_ms *next, bx_error *err)
{
    *next = 0;
    if (!d->has_notify)
        return BX_OK;
    char now[32], window[32];
    snprintf(now, sizeof(now), "%lld", (long long)bx_clock_now());
    snprintf(window, sizeof(window), "%d", PACE_WINDOW_MS);
    const char *params[] = {now, window};
    PGresult *res = NULL;
    bx_status s = bx_pg_query(
        d->conf->db,
        "SELECT coalesce((extract(epoch FROM min(due_at)) * 1000)::bigint, 0) FROM "
        "notify.notification WHERE state = 'queued' AND due_at > to_timestamp($1::bigint / "
        "1000.0) AND due_at <= to_timestamp(($1::bigint + $2::bigint) / 1000.0)",
        2, params, &res, err);
    if (s == BX_OK && PQntuples(res) == 1)
        *next = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return s;
}

/* Settles the pipeline. Time passes for bx-notify's paced sends as it would in a real day: at a
 * frozen instant only the rate's burst goes out, so the clock moves on to the next paced send (at
 * least a second) and the pipeline settles again, until none is due within the window. Every SMS
 * due now is then sent before the next step, however the staff digests (whose timing within a
 * step varies) shared the rate: the guardians' figures do not depend on timing. */
static bx_status settle(driver *d, bx_error *err)
{
    long long t0 = bx_monotonic_ms();
    bx_status s = sim_settle_wait(d->settle, SETTLE_MS, err);
    for (int i = 0; s == BX_OK && i < PACE_STEPS_MAX; i++) {
        bx_time_ms next = 0;
        s = next_paced_send(d, &next, err);
        if (s != BX_OK || next == 0)
            break;
        /* At least a second at a time: the rate lets that second's share go in one settle. */
        if (next < bx_clock_now() + PACE_STEP_MS)
            next = bx_clock_now() + PACE_STEP_MS;
        if (bx_clock_set(next) != BX_OK)
            s = BX_ERR(err, BX_EINVAL, "the clock is not driven: set BX_CLOCK=file:<path>");
        IFOK(s, sim_settle_wait(d->settle, SETTLE_MS, err));
    }
    d->counts->settle_seconds += (bx_monotonic_ms() - t0) / 1000.0;
    return s;
}

/* Leave requests or actions of the plan, one request per school. */
static bx_status post_records(driver *d, const sim_day_plan *p, bool actions, bx_error *err)
{
    const sim_county *c = d->c;
    bx_buf body;
    bx_buf_init(&body, 0);
    bx_status s = BX_OK;
    int count = actions ? p->nactions : p->nleaves;
    for (int school = 0; school < c->nschools && s == BX_OK; school++) {
        /* The school's records in order; a return the township signs goes through bx-console
         * as its officer, between the school's records before and after it. */
        for (int from = 0, j = 0; from < count && s == BX_OK; from = j + 1) {
            bx_buf_reset(&body);
            int n = 0;
            s = bx_buf_puts(&body, "{\"records\":[");
            for (j = from; j < count && s == BX_OK; j++) {
                int student = actions ? p->actions[j].student : p->leaves[j].student;
                if (sim_student_school(c, student) != school)
                    continue;
                if (actions && sim_console_signs(&p->actions[j]))
                    break;
                if (n++)
                    s = bx_buf_puts(&body, ",");
                if (actions)
                    IFOK(s, sim_action_json(c, &p->actions[j], &body));
                else
                    IFOK(s, sim_leave_json(c, &p->leaves[j], &body));
            }
            IFOK(s, bx_buf_puts(&body, "]}"));
            if (s == BX_OK && n > 0)
                s = post(d, school, actions ? "/v1/actions" : "/v1/leave", &body, err);
            bool unsigned_return = false;
            if (s == BX_OK && j < count)
                s = sim_console_signoff(d->console, c, d->conf->db, &p->actions[j], d->counts,
                                        &unsigned_return, err);
            if (s == BX_OK && unsigned_return) {
                /* No case to sign: the school still records the child's return itself. */
                bx_buf_reset(&body);
                s = bx_buf_puts(&body, "{\"records\":[");
                IFOK(s, sim_action_json(c, &p->actions[j], &body));
                IFOK(s, bx_buf_puts(&body, "]}"));
                IFOK(s, post(d, school, "/v1/actions", &body, err));
            }
        }
    }
    bx_buf_free(&body);
    return s;
}

/* The day's roll calls, or (late) those of earlier days sent today. */
static bx_status post_rollcalls(driver *d, const sim_day_plan *p, bool late, bx_error *err)
{
    bx_buf body;
    bx_buf_init(&body, 0);
    bx_status s = BX_OK;
    for (int j = 0; j < p->nrollcalls && s == BX_OK; j++) {
        bx_buf_reset(&body);
        const sim_rollcall *rc = &p->rollcalls[j];
        if ((rc->date < p->day) != late)
            continue;
        s = sim_rollcall_json(d->c, rc, &body);
        IFOK(s, post(d, d->c->classes[rc->klass].school, "/v1/rollcall", &body, err));
        d->counts->rollcalls++;
        d->counts->rollcalls_late += rc->date < p->day;
    }
    bx_buf_free(&body);
    return s;
}

/* Runs bxctl import students path (its report of rows to /dev/null, its errors to stderr). */
static bx_status import_students(const char *bxctl, const char *path, bx_error *err)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
        char *const argv[] = {(char *)bxctl, "import", "students", (char *)path, NULL};
        execv(bxctl, argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return BX_ERR(err, BX_EIO, "%s import students %s failed", bxctl, path);
    return BX_OK;
}

/* Reads bx-ingest's X-Registry-Revision header of /healthz into *arg (a long long). */
static size_t revision_header(char *line, size_t size, size_t n, void *arg)
{
    static const char name[] = "x-registry-revision:";
    size_t len = size * n;
    if (len > sizeof(name) - 1 && strncasecmp(line, name, sizeof(name) - 1) == 0)
        *(long long *)arg = strtoll(line + sizeof(name) - 1, NULL, 10);
    return len;
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* Waits until bx-ingest works with the registry's current revision (its /healthz says which it
 * has): a roll call stands for its class as bx-ingest's registry has it, so the day after an
 * import must not depend on when bx-ingest's refresh (BX_REGISTRY_REFRESH_MS) comes round. */
static bx_status wait_ingest_registry(driver *d, bx_error *err)
{
    long long want = 0;
    bx_status s = bx_registry_current_revision(d->conf->db, &want, err);
    CURL *curl = s == BX_OK ? curl_easy_init() : NULL;
    if (s == BX_OK && curl == NULL)
        s = BX_ERR(err, BX_EFATAL, "curl: cannot start");
    char url[512];
    snprintf(url, sizeof(url), "%s/healthz", d->conf->api);
    long long have = -1, deadline = bx_monotonic_ms() + REGISTRY_WAIT_MS;
    while (s == BX_OK && have < want) {
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, revision_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &have);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        CURLcode code = curl_easy_perform(curl);
        if (have >= want)
            break;
        if (bx_monotonic_ms() > deadline)
            s = BX_ERR(
                err, BX_ETIMEOUT,
                "bx-ingest did not load registry revision %lld within %d s (it has %lld%s%s)", want,
                REGISTRY_WAIT_MS / 1000, have, code != CURLE_OK ? "; " : "",
                code != CURLE_OK ? curl_easy_strerror(code) : "");
        else
            usleep(20 * 1000);
    }
    if (curl)
        curl_easy_cleanup(curl);
    return s;
}

/* The day's transfers between the county's schools: the old school's academic office records each
 * transfer out through bx-ingest, then the county's registry takes the day's students.csv rows
 * (the leavers marked transferred_out, the receiving schools' new rows) with bxctl import, and
 * bx-escalate's transfer check is left to match them. Only with bxctl. */
static bx_status drive_transfers(driver *d, bx_date day, bx_error *err)
{
    const sim_county *c = d->c;
    if (d->conf->bxctl == NULL)
        return BX_OK;
    bx_buf body;
    bx_buf_init(&body, 0);
    bx_status s = BX_OK;
    for (int k = 0; k < c->ntransfers && s == BX_OK; k++) {
        const sim_transfer *t = &c->transfers[k];
        if (t->day != day)
            continue;
        bx_buf_reset(&body);
        s = bx_buf_puts(&body, "{\"records\":[");
        IFOK(s, sim_transfer_json(c, t, &body));
        IFOK(s, bx_buf_puts(&body, "]}"));
        IFOK(s, post(d, sim_student_school(c, t->student), "/v1/actions", &body, err));
        d->counts->transfers++;
    }
    int rows = 0;
    bx_buf_reset(&body);
    IFOK(s, sim_transfer_csv(c, day, &body, &rows));
    if (s == BX_OK && rows > 0) {
        char path[1024], date[11];
        bx_date_format(day, date);
        snprintf(path, sizeof(path), "%s/transfers-%s.csv", d->conf->state_dir, date);
        s = bx_buf_write_file(&body, path, err);
        IFOK(s, import_students(d->conf->bxctl, path, err));
        IFOK(s, wait_ingest_registry(d, err));
    }
    bx_buf_free(&body);
    return s;
}

/* One school day: 08:30 leave phoned in or asked for; 08:45 yesterday's forgotten roll calls;
 * 09:00 the day's roll calls; 16:00 the staff's records; 17:30 after the day's deadlines (17:00).
 * The pipeline settles after each step, so no service ever sees two of one child's records in one
 * batch: what it publishes does not depend on timing. Adds the time spent posting. */
static bx_status drive_day(driver *d, const sim_day_plan *p, bx_date day, double *post_seconds,
                           bx_error *err)
{
    enum { POST_NOTHING, POST_RECORDS, POST_ROLLCALLS };
    static const struct {
        int hour, minute, post;
        bool flag; /* post_records: the staff's actions; post_rollcalls: the late ones */
    } steps[] = {{8, 30, POST_RECORDS, false},
                 {8, 45, POST_ROLLCALLS, true},
                 {9, 0, POST_ROLLCALLS, false},
                 {16, 0, POST_RECORDS, true},
                 {17, 30, POST_NOTHING, false}};
    bx_status s = BX_OK;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && s == BX_OK; i++) {
        long long t0 = bx_monotonic_ms();
        s = set_clock(day, steps[i].hour, steps[i].minute, err);
        if (steps[i].post == POST_RECORDS)
            IFOK(s, post_records(d, p, steps[i].flag, err));
        if (steps[i].post == POST_RECORDS && steps[i].flag)
            IFOK(s, drive_transfers(d, day, err));
        else if (steps[i].post == POST_ROLLCALLS)
            IFOK(s, post_rollcalls(d, p, steps[i].flag, err));
        if (steps[i].post != POST_NOTHING)
            *post_seconds += (bx_monotonic_ms() - t0) / 1000.0;
        IFOK(s, settle(d, err));
    }
    return s;
}

static void progress(driver *d, bx_date day, int n, int total)
{
    char date[11], cases[512] = "";
    long long sms = 0, sent = -1;
    bx_date_format(day, date);
    if (sim_progress_cases(d->conf->db, cases, sizeof(cases), &sms, &sent) != BX_OK)
        snprintf(cases, sizeof(cases), "?");
    char sent_text[32] = "";
    if (sent >= 0)
        snprintf(sent_text, sizeof(sent_text), ", sent %lld", sent);
    fprintf(stderr, "%s day %3d/%d | events %8lld | cases %s | SMS asked %lld%s\n", date, n, total,
            d->counts->accepted, cases, sms, sent_text);
}

bx_status sim_drive(const sim_county *c, const sim_drive_conf *conf, sim_drive_counts *out,
                    bx_error *err)
{
    memset(out, 0, sizeof(*out));
    driver d = {.c = c, .conf = conf, .counts = out};
    bx_buf_init(&d.reply, MAX_REPLY);
    sim_world *w = NULL;
    bx_status s = load_keys(&d, err);
    IFOK(s, sim_console_new(&d.console, err));
    IFOK(s, sim_settle_new(conf->brokers, conf->groups, conf->db, &d.settle, err));
    if (s == BX_OK) {
        PGresult *res = NULL;
        s = bx_pg_query(conf->db, "SELECT to_regclass('notify.notification') IS NOT NULL", 0, NULL,
                        &res, err);
        d.has_notify = s == BX_OK && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
    }
    if (s == BX_OK && sim_world_new(c, &w) != BX_OK)
        s = BX_ERR(err, BX_ENOMEM, "out of memory");
    if (s == BX_OK && (d.curl = curl_easy_init()) == NULL)
        s = BX_ERR(err, BX_EFATAL, "curl: cannot start");
    if (s == BX_OK) {
        curl_easy_setopt(d.curl, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(d.curl, CURLOPT_TCP_KEEPALIVE, 1L);
    }
    bx_date first =
        conf->from == BX_DATE_NONE || conf->from < c->term_first ? c->term_first : conf->from;
    bx_date day = bx_calendar_add_school_days(c->cal, first, 0);
    int total =
        day == BX_DATE_NONE ? 0 : bx_calendar_school_days_between(c->cal, day, c->term_last);
    if (conf->days > 0 && conf->days < total)
        total = conf->days;
    long long t0 = bx_monotonic_ms();
    for (int n = 1; s == BX_OK && n <= total && day != BX_DATE_NONE && day <= c->term_last; n++) {
        sim_day_plan p;
        s = sim_plan_day(c, w, day, &p);
        if (s != BX_OK) {
            s = BX_ERR(err, s, "planning %d: out of memory", (int)day);
            break;
        }
        for (int j = 0; j < p.nleaves; j++)
            out->leaves_phoned += p.leaves[j].phoned_in;
        out->leaves += p.nleaves;
        out->actions += p.nactions;
        for (int j = 0; j < p.nactions; j++)
            out->actions_late += p.actions[j].late;
        for (int k = 0; k < c->nclasses; k++) {
            bool late = false;
            out->rollcalls_forgotten += sim_class_forgets(c, k, day, &late);
        }
        IFOK(s, drive_day(&d, &p, day, &out->post_seconds, err));
        sim_day_plan_free(&p);
        if (s != BX_OK)
            break;
        out->school_days = n;
        out->last_day = day;
        if (conf->progress)
            progress(&d, day, n, total);
        day = bx_calendar_add_school_days(c->cal, day, 1);
    }
    out->wall_seconds = (bx_monotonic_ms() - t0) / 1000.0;
    if (sim_console_unsigned(d.console) > 0)
        fprintf(stderr, "bx-sim: %lld returns with no open case, sent as the school's own\n",
                sim_console_unsigned(d.console));
    sim_console_free(d.console);
    if (d.curl)
        curl_easy_cleanup(d.curl);
    sim_world_free(w);
    sim_settle_free(d.settle);
    bx_buf_free(&d.reply);
    free(d.keys);
    return s;
}
