/* digest: staff tasks collected during the day go out as one daily digest SMS per person (in
 * parts when long), with what is still open from earlier days. The digest due last is made
 * whenever it has not been yet: one that fell due while bx-notify was down or busy, or that a
 * clock jump passed over, goes out the same day or, on a later day, flagged late (补发). */
#include "service_internal.h"

#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_log.h"
#include "bx_pg.h"
#include "recipients.h"
#include "template.h"

#include <stdio.h>
#include <string.h>

#define DIGEST_STAFF    200  /* staff digested per loop iteration */
#define DIGEST_TASKS    50   /* tasks looked at for one digest */
#define DIGEST_LIST_MAX 1200 /* bytes of task lines in one digest SMS; more go in another */
#define DIGEST_OPEN     6    /* still-open tasks of earlier days listed in the day's first digest */

/* A still-open task as one line of a digest:
 * 【未完成】家访：三年级2班张三，11月28日17:00前（已逾期）. */
static bx_status open_task_line(const template_set *ts, const notify_store_open_task *t, int number,
                                bx_buf *list)
{
    char iso[40], due[64];
    bx_time_format(t->due_at, iso, sizeof(iso));
    if (template_format_due(iso, due, sizeof(due)) != BX_OK)
        snprintf(due, sizeof(due), "%s", iso);
    return bx_buf_printf(list, "\n%d. 【未完成】%s：%s%s，%s前%s", number,
                         template_label(ts, "task", t->kind), t->class_name, t->student, due,
                         t->overdue ? "（已逾期）" : "");
}

/* One person's digest as it is made. */
typedef struct digest {
    const char *staff_id;
    const char *day;                          /* the digest's own day, "2026-11-27" */
    const char *late;                         /* "" or the line that says it is late */
    notify_store_task tasks[DIGEST_TASKS];    /* collected, oldest first */
    notify_store_open_task open[DIGEST_OPEN]; /* still open from earlier days */
    int n, nopen;
    int listed; /* of tasks, in this part */
    recipient r;
    bool gone; /* no longer in the registry */
    char place[101];
    bx_buf list;
    char text[TEXT_MAX * 4];
    char reason[300]; /* why it is dead; "" when it is sent */
} digest;

/* Opens the person's transaction and reads what the digest may list: the tasks collected before
 * cutoff and, in the day's first digest, those still open from before older. */
static bx_status digest_gather(notify_service *sv, digest *dg, bx_time_ms cutoff, bx_time_ms older,
                               bx_error *err)
{
    bool had = false;
    dg->n = dg->nopen = 0;
    bx_status s = notify_store_digest_begin(sv->db, dg->staff_id, cutoff, &had, err);
    if (s != BX_OK)
        return s;
    s = notify_store_digest_tasks(sv->db, dg->staff_id, cutoff, DIGEST_TASKS, dg->tasks, &dg->n,
                                  err);
    if (s == BX_OK && !had)
        s = notify_store_open_tasks(sv->db, dg->staff_id, older, DIGEST_OPEN, dg->open, &dg->nopen,
                                    err);
    return s;
}

/* The person's phone, name and place; one no longer in the registry is dg->gone. */
static bx_status digest_recipient(notify_service *sv, digest *dg, bx_error *err)
{
    dg->place[0] = '\0';
    bx_status s =
        recipients_staff_by_id(sv->db, dg->staff_id, &dg->r, dg->place, sizeof(dg->place), err);
    dg->gone = s == BX_ENOTFOUND;
    return dg->gone ? BX_OK : s;
}

/* The lines of dg->list: the open tasks, then as many of the new ones as fit (dg->listed). */
static bx_status digest_list(notify_service *sv, digest *dg)
{
    bx_status s = dg->late[0] ? bx_buf_printf(&dg->list, "\n%s", dg->late) : BX_OK;
    for (int i = 0; i < dg->nopen && s == BX_OK; i++)
        s = open_task_line(sv->conf.templates, &dg->open[i], i + 1, &dg->list);
    size_t place_len = strlen(dg->place);
    for (dg->listed = 0; dg->listed < dg->n && s == BX_OK; dg->listed++) {
        size_t before = dg->list.len;
        /* a task's text ends with the school's name; the digest is signed with it once */
        const char *body = dg->tasks[dg->listed].body;
        size_t len = strlen(body);
        if (place_len > 0 && len > place_len && strcmp(body + len - place_len, dg->place) == 0)
            len -= place_len;
        s = bx_buf_printf(&dg->list, "\n%d. %.*s", dg->nopen + dg->listed + 1, (int)len, body);
        if (s == BX_OK && dg->nopen + dg->listed > 0 && dg->list.len > DIGEST_LIST_MAX) {
            dg->list.len = before; /* this one and the rest go in the next digest */
            dg->list.data[before] = '\0';
            break;
        }
    }
    return s;
}

/* Renders the digest's text; dg->reason says why it is dead when it cannot go out (it is
 * recorded anyway, with the list as its text when the template fails). */
static void digest_render(notify_service *sv, digest *dg)
{
    char count[12];
    snprintf(count, sizeof(count), "%d", dg->nopen + dg->listed);
    const char *list = dg->list.data ? dg->list.data : "";
    template_var vars[] = {{"teacher", dg->gone ? dg->staff_id : dg->r.staff_name},
                           {"task_count", count},
                           {"tasks", list},
                           {"school", dg->place},
                           {"date", dg->day}};
    bx_error rerr = {0};
    dg->reason[0] = '\0';
    if (template_render(sv->conf.templates, sv->conf.digest_template, vars, 5, dg->text,
                        sizeof(dg->text), &rerr) != BX_OK) {
        snprintf(dg->text, sizeof(dg->text), "%.*s", (int)(sizeof(dg->text) - 1), list);
        snprintf(dg->reason, sizeof(dg->reason), "digest template %s: %s", sv->conf.digest_template,
                 rerr.msg);
    } else if (dg->gone) {
        snprintf(dg->reason, sizeof(dg->reason), "staff %s is no longer in the registry",
                 dg->staff_id);
    } else if (dg->r.phone[0] == '\0') {
        snprintf(dg->reason, sizeof(dg->reason), "staff %s has no mobile number", dg->staff_id);
    }
}

/* Writes the digest's notification and marks the tasks it lists; *digest_id is 0 when this part
 * was made before. */
static bx_status digest_insert(notify_service *sv, digest *dg, bx_time_ms now, int64_t *digest_id,
                               char did[32], bx_error *err)
{
    char request_id[129];
    /* one digest per person and day, in parts when long: named by the first new task it lists */
    snprintf(request_id, sizeof(request_id), "digest:%s:%s:%s", dg->staff_id, dg->day,
             dg->listed > 0 ? dg->tasks[0].notification_id : "open");
    bool dead = dg->reason[0] != '\0';
    notify_store_new nw = {request_id,
                           dead ? dg->staff_id : dg->r.phone,
                           dg->staff_id,
                           false,
                           "digest",
                           dg->staff_id,
                           NULL,
                           NULL,
                           sv->conf.digest_template,
                           dg->place,
                           dg->text,
                           dead ? DISPATCH_DEAD : DISPATCH_QUEUED,
                           now,
                           dead ? dg->reason : NULL};
    bx_status s = notify_store_insert(sv->db, &sv->ctx, &nw, now, digest_id, err);
    snprintf(did, 32, "ntf-%lld", (long long)*digest_id);
    if (s == BX_OK && *digest_id > 0)
        s = notify_store_digest_mark(sv->db, &sv->ctx, dg->tasks, dg->listed, *digest_id, did,
                                     dg->staff_id, now, err);
    return s;
}

/* One digest SMS for staff_id: the first of the day lists what is still open from earlier days,
 * then as many of the newly collected tasks and notices as fit; the rest go in the next part. */
static bx_status make_digest(notify_service *sv, const char *staff_id, const char *day,
                             const char *late, bx_time_ms cutoff, bx_time_ms older, bx_time_ms now,
                             bx_error *err)
{
    static digest dg; /* the main thread's */
    dg.staff_id = staff_id;
    dg.day = day;
    dg.late = late;
    dg.listed = 0;
    bx_status s = digest_gather(sv, &dg, cutoff, older, err);
    if (s == BX_OK && dg.n == 0 && dg.nopen == 0) {
        bx_pg_rollback(sv->db);
        return BX_OK; /* another replica made it */
    }
    IFOK(s, digest_recipient(sv, &dg, err));
    bx_buf_init(&dg.list, 64 * 1024);
    IFOK(s, digest_list(sv, &dg));
    if (s == BX_OK)
        digest_render(sv, &dg);
    bx_buf_free(&dg.list);
    int64_t digest_id = 0;
    char did[32];
    IFOK(s, digest_insert(sv, &dg, now, &digest_id, did, err));
    IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(sv->db);
        return s;
    }
    if (digest_id > 0) {
        bx_metric_add(&notify_m.digests, 1);
        if (dg.reason[0])
            bx_metric_add(&notify_m.dead, 1);
        bx_log_info("digest %s for %s of %s%s: %d new, %d still open%s%s", did, staff_id, day,
                    late[0] ? " (late)" : "", dg.listed, dg.nopen, dg.reason[0] ? "; dead: " : "",
                    dg.reason);
    }
    return BX_OK;
}

/* The last digest time at or before now (today's once it has passed, else yesterday's) and the
 * local day it belongs to. */
static bx_time_ms last_digest_time(int digest_minute, bx_time_ms now, bx_date *day)
{
    bx_date today = bx_time_local_date(now);
    *day = bx_time_local_minute(now) >= digest_minute ? today : today - 1;
    return bx_time_from_local(*day, digest_minute / 60, digest_minute % 60);
}

void notify_digests_run(notify_service *sv)
{
    bx_time_ms now = bx_clock_now();
    /* the digest due last takes what was collected before its time (later tasks wait for the
     * next one) and lists tasks still open from before the one before, which earlier digests
     * announced; once a pass finds nothing left for it, nothing more comes before the next */
    bx_date day_date;
    bx_time_ms cutoff = last_digest_time(sv->conf.digest_minute, now, &day_date);
    if (cutoff == sv->digests_done_for)
        return;
    bx_time_ms older = cutoff - 24LL * 3600 * 1000;
    char day[11], late[96] = "";
    bx_date_format(day_date, day);
    if (day_date != bx_time_local_date(now)) {
        char iso[40], when[64];
        bx_time_format(cutoff, iso, sizeof(iso));
        if (template_format_due(iso, when, sizeof(when)) != BX_OK)
            snprintf(when, sizeof(when), "%s", day);
        snprintf(late, sizeof(late), "（%s的待办提醒，补发）", when);
    }
    static char staff[2 * DIGEST_STAFF][33];
    int n = 0, nopen = 0;
    bx_error err = {0};
    /* a late digest is owed only to those with new tasks: what is still open was announced
     * before and is listed again in the day's own digest */
    if (notify_store_digest_staff(sv->db, cutoff, DIGEST_STAFF, staff, &n, &err) != BX_OK ||
        (!late[0] && notify_store_open_task_staff(sv->db, older, cutoff, DIGEST_STAFF, staff + n,
                                                  &nopen, &err) != BX_OK)) {
        bx_log_warn("digests of %s: %s", day, err.msg);
        bx_metric_add(&notify_m.failures, 1);
        return;
    }
    if (n == 0 && nopen == 0) {
        sv->digests_done_for = cutoff;
        return;
    }
    for (int i = 0; i < n + nopen && *sv->conf.running; i++) {
        if (make_digest(sv, staff[i], day, late, cutoff, older, now, &err) != BX_OK) {
            bx_log_warn("digest of %s for %s: %s", day, staff[i], err.msg);
            bx_metric_add(&notify_m.failures, 1);
            return;
        }
    }
}

bx_status notify_digests_publish(notify_service *sv, bx_error *err)
{
    return notify_store_digest_schedule_set(sv->db, sv->conf.digest_minute, bx_clock_now(), err);
}
