/* digest: staff tasks collected during the day go out as one daily digest SMS per person (in
 * parts when long), with what is still open from earlier days. */
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
static bx_status open_task_line(const template_set *ts, const store_open_task *t, int number,
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

/* One digest SMS for staff_id: the first of the day lists what is still open from earlier days,
 * then as many of the newly collected tasks and notices as fit; the rest go in the next part. */
static bx_status make_digest(notify_service *sv, const char *staff_id, const char *day,
                             bx_time_ms cutoff, bx_time_ms older, bx_time_ms now, bx_error *err)
{
    PGconn *db = sv->db;
    static store_task tasks[DIGEST_TASKS];
    static store_open_task open[DIGEST_OPEN];
    int n = 0, nopen = 0;
    bool had = false;
    recipient r;
    char place[101] = "";
    bx_status s = store_digest_begin(db, staff_id, cutoff, &had, err);
    if (s != BX_OK)
        return s;
    s = store_digest_tasks(db, staff_id, cutoff, DIGEST_TASKS, tasks, &n, err);
    if (s == BX_OK && !had)
        s = store_open_tasks(db, staff_id, older, DIGEST_OPEN, open, &nopen, err);
    if (s == BX_OK && n == 0 && nopen == 0) {
        bx_pg_rollback(db);
        return BX_OK; /* another replica made it */
    }
    IFOK(s, recipients_staff_by_id(db, staff_id, &r, place, sizeof(place), err));
    bool gone = s == BX_ENOTFOUND;
    if (gone)
        s = BX_OK;
    bx_buf list;
    bx_buf_init(&list, 64 * 1024);
    for (int i = 0; i < nopen && s == BX_OK; i++)
        s = open_task_line(sv->conf.templates, &open[i], i + 1, &list);
    int listed = 0;
    for (; listed < n && s == BX_OK; listed++) {
        size_t before = list.len;
        /* a task's text ends with the school's name; the digest is signed with it once */
        const char *body = tasks[listed].body;
        size_t len = strlen(body), place_len = strlen(place);
        if (place_len > 0 && len > place_len && strcmp(body + len - place_len, place) == 0)
            len -= place_len;
        s = bx_buf_printf(&list, "\n%d. %.*s", nopen + listed + 1, (int)len, body);
        if (s == BX_OK && nopen + listed > 0 && list.len > DIGEST_LIST_MAX) {
            list.len = before; /* this one and the rest go in the next digest */
            list.data[before] = '\0';
            break;
        }
    }
    char count[12], request_id[129], text[TEXT_MAX * 4];
    snprintf(count, sizeof(count), "%d", nopen + listed);
    /* one digest per person and day, in parts when long: named by the first new task it lists */
    snprintf(request_id, sizeof(request_id), "digest:%s:%s:%s", staff_id, day,
             listed > 0 ? tasks[0].notification_id : "open");
    template_var digest_vars[] = {{"teacher", gone ? staff_id : r.staff_name},
                                  {"task_count", count},
                                  {"tasks", list.data ? list.data : ""},
                                  {"school", place},
                                  {"date", day}};
    bx_error rerr = {0};
    bool rendered =
        s == BX_OK && template_render(sv->conf.templates, sv->conf.digest_template, digest_vars, 5,
                                      text, sizeof(text), &rerr) == BX_OK;
    if (s == BX_OK && !rendered)
        snprintf(text, sizeof(text), "%.*s", (int)(sizeof(text) - 1),
                 list.data ? list.data : ""); /* listed anyway; reason says why it is dead */
    bx_buf_free(&list);
    char reason[300] = "";
    if (!rendered)
        snprintf(reason, sizeof(reason), "digest template %s: %s", sv->conf.digest_template,
                 rerr.msg);
    else if (gone)
        snprintf(reason, sizeof(reason), "staff %s is no longer in the registry", staff_id);
    else if (r.phone[0] == '\0')
        snprintf(reason, sizeof(reason), "staff %s has no mobile number", staff_id);
    store_new nw = {request_id,
                    reason[0] ? staff_id : r.phone,
                    staff_id,
                    false,
                    "digest",
                    staff_id,
                    NULL,
                    NULL,
                    sv->conf.digest_template,
                    place,
                    text,
                    reason[0] ? DISPATCH_DEAD : DISPATCH_QUEUED,
                    now,
                    reason[0] ? reason : NULL};
    int64_t digest_id = 0;
    IFOK(s, store_insert(db, &sv->ctx, &nw, now, &digest_id, err));
    char did[32];
    snprintf(did, sizeof(did), "ntf-%lld", (long long)digest_id);
    if (s == BX_OK && digest_id > 0)
        s = store_digest_mark(db, &sv->ctx, tasks, listed, digest_id, did, staff_id, now, err);
    IFOK(s, bx_pg_exec(db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(db);
        return s;
    }
    if (digest_id > 0) {
        bx_metric_add(&notify_m.digests, 1);
        if (reason[0])
            bx_metric_add(&notify_m.dead, 1);
        bx_info("digest %s for %s: %d new, %d still open%s%s", did, staff_id, listed, nopen,
                reason[0] ? "; dead: " : "", reason);
    }
    return BX_OK;
}

void notify_digests_run(notify_service *sv)
{
    bx_time_ms now = bx_clock_now();
    if (bx_time_local_minute(now) < sv->conf.digest_minute)
        return;
    /* today's digest takes what was collected before today's digest time (later tasks wait for
     * tomorrow's) and lists tasks still open from before yesterday's, which earlier digests
     * announced */
    bx_date today = bx_time_local_date(now);
    bx_time_ms cutoff =
        bx_time_from_local(today, sv->conf.digest_minute / 60, sv->conf.digest_minute % 60);
    bx_time_ms older = cutoff - 24LL * 3600 * 1000;
    char day[11];
    bx_date_format(today, day);
    static char staff[2 * DIGEST_STAFF][33];
    int n = 0, nopen = 0;
    bx_error err = {0};
    if (store_digest_staff(sv->db, cutoff, DIGEST_STAFF, staff, &n, &err) != BX_OK ||
        store_open_task_staff(sv->db, older, cutoff, DIGEST_STAFF, staff + n, &nopen, &err) !=
            BX_OK) {
        bx_warn("digests: %s", err.msg);
        bx_metric_add(&notify_m.failures, 1);
        return;
    }
    for (int i = 0; i < n + nopen && *sv->conf.running; i++) {
        if (make_digest(sv, staff[i], day, cutoff, older, now, &err) != BX_OK) {
            bx_warn("digest for %s: %s", staff[i], err.msg);
            bx_metric_add(&notify_m.failures, 1);
            return;
        }
    }
}
