/* service: bx-escalate's loop body. A poll's messages are applied to their students' cases in one
 * PostgreSQL transaction (case states, events, tasks, timers and outbox rows together; one by one,
 * each in its own, when that fails), and only then are their offsets stored; due timers fire in
 * transactions of their own; the outbox is relayed. The calendar duties a timer queues run on a
 * thread and connection of their own (the duty worker), so a month's reports do not hold the
 * inputs. */
#include "service.h"
#include "analytics.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_dlq.h"
#include "bx_kafka.h"
#include "bx_log.h"
#include "bx_metrics.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "bx_retry.h"
#include "duties.h"
#include "messages.h"
#include "outbox.h"
#include "state_json.h"
#include "store.h"
#include "timers.h"
#include "transfers.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POLL_MAX           500  /* the most messages a loop iteration polls (input_batch's bound) */
#define TIMERS_DEFAULT     100  /* timers fired per loop iteration without conf.timer_batch */
#define RELAY_MAX          1000 /* outbox rows relayed per loop iteration */
#define RELAY_WAIT_MS      10000 /* how long a relay waits for the broker */
#define DLQ_RECORD_MAX     65536 /* a bigger rejected message is dead-lettered without its bytes */
#define PG_CONNECT_WAIT_MS 10000 /* how long connecting to PostgreSQL may wait for it */
#define PRUNE_EVERY_MS     (3600 * 1000LL) /* how often relayed outbox rows are pruned */
#define PREPARE_TOPICS_MS  5000            /* the outbox topics' partitions waited for at start */
#define FINDINGS_MAX       500             /* matching findings applied per tick */
#define DUTY_IDLE_MS       1000            /* how long the duty worker sleeps when no run is due */

static bx_metric m_inputs = {"bx_escalate_inputs_total", "assessments and actions applied to cases",
                             "counter", 0, NULL};
static bx_metric m_events = {"bx_escalate_case_events_total", "new case events written", "counter",
                             0, NULL};
static bx_metric m_timers = {"bx_escalate_timers_fired_total", "timers fired", "counter", 0, NULL};
static bx_metric m_sent = {"bx_escalate_outbox_sent_total", "outbox messages acknowledged by Kafka",
                           "counter", 0, NULL};
static bx_metric m_dlq = {"bx_escalate_dlq_total", "messages sent to bx.dlq.v1", "counter", 0,
                          NULL};
static bx_metric m_failures = {"bx_escalate_failures_total",
                               "messages or timers that failed and were retried", "counter", 0,
                               NULL};
static bx_metric m_polls = {"bx_escalate_input_polls_total",
                            "polls of more than one input applied in one transaction", "counter", 0,
                            NULL};
static bx_metric m_attention = {"bx_escalate_needs_attention_total",
                                "cases flagged needs_attention for an input given up", "counter", 0,
                                NULL};

struct escalate_service {
    escalate_service_conf conf;
    bx_consumer *consumer;
    bx_producer *producer;
    PGconn *db;
    bx_registry *registry;
    char owner[TIMERS_OWNER_MAX + 1]; /* hostname:pid, the timer claimer's name */
    atomic_bool healthy;
    ladder_effects fx; /* scratch, large */
    case_state before, after;
    long long duties_revision; /* registry revision and day the duties were last scheduled for */
    bx_date duties_day;
    long long last_prune; /* bx_monotonic_ms of the last outbox prune */
    /* writes of many steps queued for one transaction (store.h); queue is the batch while a
     * poll's run of inputs or a batch of timers is applied, else NULL (each row at once) */
    escalate_store_batch *batch, *queue;
    int tag; /* the step's, while queued */
    /* the analysts' bands of a poll's run of inputs, read in one statement before its
     * transaction: bands[tag] is the student bands_of[tag]'s; nbands 0 outside a run */
    escalate_bands bands[POLL_MAX];
    const char *bands_of[POLL_MAX];
    int nbands;
    /* The calendar duties' thread (duty_main): worker is an escalate_service of its own with
     * only conf, db (its connection) and registry (sv->registry, borrowed for each run); the
     * scratch of its steps is its own. */
    escalate_service *worker;
    pthread_t duty_thread;
    bool duty_started;
    int duties_queued; /* duty runs the timers queued since the worker was last woken */
    /* duty_lock guards what follows, and sv->registry's replacement while the worker uses it */
    pthread_mutex_t duty_lock;
    pthread_cond_t duty_wake;
    bool duty_stop, duty_kicked, duty_exited;
    PGcancel *duty_cancel;   /* the worker's connection's, for a stop mid-run */
    bx_registry *reg_in_use; /* the registry the worker runs with; NULL between runs */
};

/* ---- connections and the registry ---- */

static bx_status load_registry(escalate_service *sv, bx_error *err)
{
    bx_registry *r = NULL;
    bx_status s = bx_registry_load(sv->db, &r, err);
    if (s != BX_OK)
        return s;
    /* the registry the duty worker runs with is freed by the worker when its run ends */
    pthread_mutex_lock(&sv->duty_lock);
    bx_registry *old = sv->registry;
    bool in_use = old != NULL && old == sv->reg_in_use;
    sv->registry = r;
    pthread_mutex_unlock(&sv->duty_lock);
    if (!in_use)
        bx_registry_free(old);
    bx_log_info("registry revision %lld loaded: %zu students", bx_registry_loaded_revision(r),
                bx_registry_student_count(r));
    return BX_OK;
}

static bx_status refresh_registry(escalate_service *sv, bx_error *err)
{
    long long rev = 0;
    bx_status s = bx_registry_current_revision(sv->db, &rev, err);
    if (s == BX_OK && rev != bx_registry_loaded_revision(sv->registry))
        s = load_registry(sv, err);
    return s;
}

/* ---- one message ---- */

/* Queues the bx.dlq.v1 message for a refused input in a transaction of its own; an input given
 * up (MESSAGES_UNAPPLIED) flags its student's case in the same transaction. */
static bx_status dead_letter(escalate_service *sv, const rd_kafka_message_t *msg,
                             const messages_input *p, bx_error *err)
{
    const char *topic = rd_kafka_topic_name(msg->rkt);
    char event_id[160];
    bx_dlq_event_id(event_id, sizeof(event_id), "bx-escalate", topic, (int)msg->partition,
                    (long long)msg->offset);
    const bx_dlq_letter letter = {
        .event_id = event_id,
        .source = "bx-escalate",
        .endpoint = topic,
        .record_index = -1,
        .line = -1,
        .reason = messages_bad_reason(p->bad),
        .error = p->error,
        .record = msg->payload,
        .record_len = msg->len,
        .record_kind = p->bad == MESSAGES_MALFORMED ? BX_DLQ_RECORD_TEXT : BX_DLQ_RECORD_JSON,
        .record_max = DLQ_RECORD_MAX,
        .received_at = bx_clock_now(),
    };
    bx_buf b;
    bx_buf_init(&b, 4 * DLQ_RECORD_MAX);
    int added = 0, flagged = 0;
    bx_status s = bx_dlq_build(&letter, &b, err);
    if (s == BX_OK) {
        s = bx_pg_exec(sv->db, "BEGIN", err);
        IFOK(s, escalate_outbox_add(sv->db, BX_TOPIC_DLQ, p->student[0] ? p->student : "unknown",
                                    event_id, b.data, &added, err));
        if (p->bad == MESSAGES_UNAPPLIED && p->student[0])
            IFOK(s, escalate_store_flag_attention(sv->db, p->student, 0, event_id, p->error,
                                                  letter.received_at, &flagged, err));
        IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
        if (s != BX_OK) {
            bx_pg_rollback(sv->db);
        } else {
            bx_metric_add(&m_dlq, added);
            bx_metric_add(&m_attention, flagged);
            if (flagged)
                bx_log_warn("student %s: case flagged needs_attention (%s)", p->student, event_id);
        }
    }
    bx_buf_free(&b);
    return s;
}

/* The school a step writes: the loaded row's while it is open, else (a new case) fallback. */
static const char *case_school(const escalate_store_case *row, const char *fallback)
{
    return row->closed || row->row_id == 0 ? fallback : row->school;
}

/* Writes the step just taken (sv->before -> sv->after with sv->fx) for row. */
static bx_status write_step(escalate_service *sv, const escalate_store_case *row,
                            const char *school, const bx_reg_student *student,
                            const ladder_input *in, int *added, bx_error *err)
{
    const escalate_bands *bands = NULL;
    if (sv->queue && sv->tag >= 0 && sv->tag < sv->nbands &&
        strcmp(sv->bands_of[sv->tag], sv->after.student_id) == 0)
        bands = &sv->bands[sv->tag];
    const escalate_analytics_ctx analytics = {
        .key = sv->conf.pseudonym_key,
        .grade_band = bands ? bands->grade_band : NULL, /* NULL: read by the step */
        .sex = bands ? bands->sex : NULL,
        .topic = sv->conf.analytics_cases_topic,
        .policy = sv->conf.policy,
        .school =
            student && student->school ? student->school : bx_registry_school(sv->registry, school),
        .input = in};
    const escalate_store_step step = {row,     school,     student,   &sv->before, &sv->after,
                                      &sv->fx, &analytics, sv->queue, sv->tag};
    return escalate_store_write_step(sv->db, sv->conf.policy, &step, added, err);
}

/* Loads (and locks) the case row a student's next input applies to into row and sv->before (a
 * fresh state when there is none). */
static bx_status load_student_case(escalate_service *sv, const char *student,
                                   escalate_store_case *row, bx_error *err)
{
    bx_status s = case_state_init(&sv->before, student, err);
    IFOK(s, escalate_store_batch_before_load(sv->db, sv->queue, student, err));
    IFOK(s, escalate_store_case_of_student_in(sv->db, sv->queue, sv->conf.policy, student, row,
                                              &sv->before, err));
    return s;
}

/* The registry's student of an input, refreshing the registry once when it is not there. */
static bx_status find_student(escalate_service *sv, const char *id, const bx_reg_student **out,
                              bx_error *err)
{
    *out = bx_registry_student(sv->registry, id);
    if (*out != NULL)
        return BX_OK;
    bx_status s = refresh_registry(sv, err);
    if (s == BX_OK)
        *out = bx_registry_student(sv->registry, id);
    return s;
}

/* A case state this policy cannot read (BX_EINVAL from loading the case), or a case row another
 * writer inserted first (BX_ECONFLICT), is not the input's fault: it is retried (BX_ETRANSIENT),
 * after the state or the policy is put right, or against the row now there. */
static bx_status not_the_inputs_fault(bx_status s, bx_error *err)
{
    if (s != BX_EINVAL && s != BX_ECONFLICT)
        return s;
    err->status = BX_ETRANSIENT;
    return BX_ETRANSIENT;
}

/* Applies one parsed input of a known student inside the open transaction. p->bad set on return
 * means the ladder refused it ("dead-letter it"; the caller rolls back). On success *added holds
 * the new events and sv->after the case as the step left it. */
static bx_status apply_in_tx(escalate_service *sv, messages_input *p, const bx_reg_student *student,
                             int *added, bx_error *err)
{
    *added = 0;
    escalate_store_case row = {0};
    bx_status s = not_the_inputs_fault(load_student_case(sv, p->student, &row, err), err);
    if (s != BX_OK)
        return s;
    bx_error step_err = {0};
    bx_status st = ladder_step(sv->conf.policy, student->school->calendar, &sv->before, &p->in,
                               &sv->after, &sv->fx, &step_err);
    if (st == BX_EINVAL) {
        p->bad = MESSAGES_INVALID;
        snprintf(p->error, sizeof(p->error), "%s", step_err.msg);
        return BX_OK;
    }
    /* the step is a pure function of the state and the input: what fails once (a full task
     * table, BX_ENOMEM) fails every time, so it is not retried */
    if (st != BX_OK)
        return BX_ERR(err, BX_EINVAL, "student %s: %s", p->student, step_err.msg);
    s = write_step(sv, &row, case_school(&row, p->school), student, &p->in, added, err);
    if (s == BX_ECONFLICT)
        s = not_the_inputs_fault(s, err);
    return s;
}

/* What an applied input leaves for its log line once its transaction committed. */
typedef struct applied_input {
    char case_id[LADDER_KEY_SIZE];
    const char *stage;
    int added;
} applied_input;

static void note_applied(escalate_service *sv, int added, applied_input *out)
{
    snprintf(out->case_id, sizeof(out->case_id), "%s", sv->after.case_id);
    out->stage = ladder_stage_name(sv->conf.policy, sv->after.stage);
    out->added = added;
}

/* Counts and logs an input whose transaction committed. */
static void log_applied(const messages_input *p, const applied_input *a)
{
    bx_metric_add(&m_inputs, 1);
    bx_metric_add(&m_events, a->added);
    if (a->added)
        bx_log_info("case %s: %s %s: %d new events, stage %s", a->case_id,
                    p->in.kind == LADDER_IN_ASSESSMENT ? "assessment" : "action", p->in.event_id,
                    a->added, a->stage ? a->stage : "-");
}

/* Applies one parsed input in one transaction. p->bad set on return means "dead-letter it". */
static bx_status apply_input(escalate_service *sv, messages_input *p, bx_error *err)
{
    const bx_reg_student *student = NULL;
    bx_status s = find_student(sv, p->student, &student, err);
    if (s != BX_OK)
        return s;
    if (student == NULL || student->school == NULL || student->school->calendar == NULL) {
        p->bad = MESSAGES_UNKNOWN_STUDENT;
        snprintf(p->error, sizeof(p->error), "message.student_id: not in the registry");
        return BX_OK;
    }
    int added = 0;
    s = bx_pg_exec(sv->db, "BEGIN", err);
    IFOK(s, apply_in_tx(sv, p, student, &added, err));
    if (s == BX_OK && p->bad) {
        bx_pg_rollback(sv->db);
        return BX_OK;
    }
    applied_input a = {0};
    note_applied(sv, added, &a);
    IFOK(s, bx_pg_exec(sv->db, "COMMIT", err));
    if (s != BX_OK) {
        bx_pg_rollback(sv->db);
        return s;
    }
    log_applied(p, &a);
    return BX_OK;
}

/* One message on its way through bx_retry_run. */
typedef struct message_try {
    escalate_service *sv;
    const rd_kafka_message_t *msg;
    messages_input *p;
    int failures; /* retriable failures with PostgreSQL reachable */
} message_try;

/* A retriable failure while PostgreSQL is reachable is the input's or its case's (a case state
 * this policy cannot read, a race lost again and again): after conf.max_attempts of them it is
 * given up as not retriable, so one input cannot hold its partition forever. PostgreSQL down is
 * waited out however long it takes. */
static bx_status bound_attempts(message_try *t, bx_status s, bx_error *err)
{
    if (s == BX_OK || !bx_status_is_retriable(s) || bx_pg_is_broken(t->sv->db))
        return s;
    if (++t->failures < t->sv->conf.max_attempts)
        return s;
    char why[sizeof(err->msg)];
    snprintf(why, sizeof(why), "%s", err->msg);
    return BX_ERR(err, BX_EINVAL, "given up after %d attempts: %.400s", t->failures, why);
}

/* One try: apply the input, or dead-letter it when it was refused (bad). The statuses say what a
 * retry can mend: PostgreSQL down is waited out; a lost race or a case state this policy cannot
 * read is retried a bounded number of times (bound_attempts); anything else that is not
 * retriable gives the input up. */
static bx_status try_message(void *arg, bx_error *err)
{
    message_try *t = arg;
    escalate_service *sv = t->sv;
    bx_status s = t->p->bad ? BX_OK : apply_input(sv, t->p, err);
    if (s == BX_OK && t->p->bad) {
        bx_log_warn("%s [%d] offset %lld: dead-lettered: %s", rd_kafka_topic_name(t->msg->rkt),
                    (int)t->msg->partition, (long long)t->msg->offset, t->p->error);
        s = dead_letter(sv, t->msg, t->p, err);
    }
    s = bound_attempts(t, s, err);
    atomic_store(&sv->healthy, s == BX_OK);
    if (s != BX_OK)
        bx_metric_add(&m_failures, 1);
    return s;
}

/* bx_retry_ops.recover: reconnects to PostgreSQL when the connection broke. */
static void recover_pg(void *arg)
{
    message_try *t = arg;
    bx_error err = {0};
    if (bx_pg_reconnect(&t->sv->db, t->sv->conf.pg_url, PG_CONNECT_WAIT_MS, &err) != BX_OK)
        bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
}

/* Applies one message, retrying what a retry can mend; an input that cannot be applied is
 * dead-lettered, and one given up flags its case. Its offset is stored once it is done; when the
 * service stops first it is not, and the message is redelivered. */
static void handle_message(escalate_service *sv, const rd_kafka_message_t *msg)
{
    static messages_input p;
    messages_decode(msg->payload, msg->len, &p);
    char what[160];
    snprintf(what, sizeof(what), "%s [%d] offset %lld", rd_kafka_topic_name(msg->rkt),
             (int)msg->partition, (long long)msg->offset);
    message_try t = {sv, msg, &p, 0};
    const bx_retry_ops ops = {.attempt = try_message,
                              .recover = recover_pg,
                              .running = sv->conf.running,
                              .min_ms = 200,
                              .max_ms = 5000,
                              .jitter = true,
                              .what = what};
    bx_error err = {0};
    bx_retry_verdict v = bx_retry_run(&ops, &t, &err);
    if (v == BX_RETRY_DEADLETTER && !p.bad) {
        p.bad = MESSAGES_UNAPPLIED;
        snprintf(p.error, sizeof(p.error), "%s", err.msg);
        t.failures = 0;
        v = bx_retry_run(&ops, &t, &err);
    }
    if (v == BX_RETRY_DEADLETTER)
        bx_log_error("%s: cannot be dead-lettered (%s); skipped", what, err.msg);
    if (v != BX_RETRY_STOPPED)
        bx_consumer_done(sv->consumer, msg);
}

/* ---- a poll's inputs in one transaction ---- */

/* One message of a poll. */
typedef struct poll_item {
    const rd_kafka_message_t *msg;
    messages_input p;
    const bx_reg_student *student; /* NULL: not in the registry (as loaded) */
    applied_input applied;
} poll_item;

/* Whether the item can go into a poll's transaction: it decoded and its student is known. */
static bool ready(escalate_service *sv, poll_item *it)
{
    it->student = it->p.bad ? NULL : bx_registry_student(sv->registry, it->p.student);
    return it->student && it->student->school && it->student->school->calendar;
}

/* The analysts' bands of the run's students in one statement, outside the transaction (one
 * call of analytics.student_bands per step that writes an analysts' message took 5-20 ms); when
 * it fails, each step reads its own as before. */
static void read_bands(escalate_service *sv, const poll_item *items, int n)
{
    sv->nbands = 0;
    if (sv->conf.pseudonym_key == NULL || sv->conf.pseudonym_key[0] == '\0')
        return;
    for (int i = 0; i < n; i++)
        sv->bands_of[i] = items[i].p.student;
    bx_error err = {0};
    if (escalate_analytics_bands_of(sv->db, sv->bands_of, n, sv->bands, &err) != BX_OK) {
        bx_log_warn("analysts' bands of %d inputs: %s; read one by one", n, err.msg);
        return;
    }
    sv->nbands = n;
}

/* Applies items[0..n) in ONE transaction and stores their offsets; false (nothing written, nothing
 * stored) when any fails or is refused, so the caller takes them one by one. */
static bool apply_together(escalate_service *sv, poll_item *items, int n)
{
    bx_error err = {0};
    read_bands(sv, items, n);
    bx_status s = bx_pg_exec(sv->db, "BEGIN", &err);
    int i = 0;
    escalate_store_batch_clear(sv->batch);
    sv->queue = sv->batch; /* the steps' rows queued, written together before the commit */
    escalate_store_batch_defer_new_cases(sv->batch, true); /* the run's new cases: one INSERT */
    /* the run's case rows read and locked in one statement, not one per input */
    const char *students[POLL_MAX];
    for (int k = 0; k < n; k++)
        students[k] = items[k].p.student;
    IFOK(s, escalate_store_prefetch_students(sv->db, sv->batch, students, n, &err));
    for (; i < n && s == BX_OK && !items[i].p.bad; i++) {
        int added = 0;
        sv->tag = i;
        s = apply_in_tx(sv, &items[i].p, items[i].student, &added, &err);
        if (s == BX_OK && !items[i].p.bad)
            note_applied(sv, added, &items[i].applied);
    }
    sv->queue = NULL;
    sv->nbands = 0;
    bool refused = i > 0 && items[i - 1].p.bad, applied = s == BX_OK && !refused;
    if (applied)
        s = escalate_store_batch_flush(sv->db, sv->batch, &err);
    if (applied)
        IFOK(s, bx_pg_exec(sv->db, "COMMIT", &err));
    escalate_store_batch_defer_new_cases(sv->batch, false);
    if (s != BX_OK || refused) {
        escalate_store_batch_clear(sv->batch);
        bx_pg_rollback(sv->db);
        const rd_kafka_message_t *at = items[i > 0 ? i - 1 : 0].msg;
        bx_log_info("%d inputs applied together failed %s %s [%d] offset %lld (%s); applying them "
                    "one by one",
                    n, applied ? "committing after" : "at", rd_kafka_topic_name(at->rkt),
                    (int)at->partition, (long long)at->offset,
                    refused ? items[i - 1].p.error : err.msg);
        return false;
    }
    atomic_store(&sv->healthy, true);
    bx_metric_add(&m_polls, 1);
    for (int k = 0; k < n; k++) {
        items[k].applied.added += escalate_store_batch_new_events(sv->batch, k);
        log_applied(&items[k].p, &items[k].applied);
        bx_consumer_done(sv->consumer, items[k].msg);
    }
    bx_log_debug("%d inputs applied in one transaction", n);
    return true;
}

static void relay(escalate_service *sv);

/* A poll's messages, in order: runs of inputs whose students are known (at most
 * conf.input_batch) applied in one transaction each; a message that is refused (undecodable, an
 * unknown student) and every message of a run that fails go one by one through handle_message
 * (retries, dead letters, given up inputs), each in its own transaction as before. */
static void handle_poll(escalate_service *sv, rd_kafka_message_t *const *msgs, int n)
{
    static poll_item items[POLL_MAX];
    bool unknown = false;
    for (int i = 0; i < n; i++) {
        items[i].msg = msgs[i];
        messages_decode(msgs[i]->payload, msgs[i]->len, &items[i].p);
        unknown = unknown || (!items[i].p.bad && !ready(sv, &items[i]));
    }
    /* a student not in the registry as loaded: the registry is read again once for the poll */
    bx_error err = {0};
    if (unknown && refresh_registry(sv, &err) != BX_OK)
        bx_log_warn("registry refresh failed: %s", err.msg);
    int most = sv->conf.input_batch < 1 ? POLL_MAX : sv->conf.input_batch;
    for (int i = 0; i < n && *sv->conf.running;) {
        /* students are looked up again for each run: a message taken alone may have reloaded
         * the registry */
        int end = i;
        while (end < n && end - i < most && ready(sv, &items[end]))
            end++;
        if (end - i >= 2 && sv->db != NULL && apply_together(sv, &items[i], end - i)) {
            i = end;
            relay(sv); /* the run's notification requests leave now, not after the poll */
            continue;
        }
        int stop = end > i ? end : i + 1;
        for (; i < stop && *sv->conf.running; i++)
            handle_message(sv, msgs[i]);
    }
}

/* ---- calendar duties (duties.h) ---- */

/* One input a duty, the transfer check or a matching finding derived applied to its student's
 * case at school_id, inside the caller's transaction (what names it in errors). *added receives
 * the new events. */
static bx_status apply_derived(escalate_service *sv, const char *what, const char *student,
                               const char *school_id, const ladder_input *in, int *added,
                               bx_error *err)
{
    *added = 0;
    const bx_reg_school *sch = bx_registry_school(sv->registry, school_id);
    if (sch == NULL || sch->calendar == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "%s: school %s not in the registry", what, school_id);
    escalate_store_case row = {0};
    bx_status s = load_student_case(sv, student, &row, err);
    if (s != BX_OK)
        return s;
    bx_error step_err = {0};
    s = ladder_step(sv->conf.policy, sch->calendar, &sv->before, in, &sv->after, &sv->fx,
                    &step_err);
    if (s != BX_OK)
        return BX_ERR(err, s, "%s: student %s: %s", what, student, step_err.msg);
    s = write_step(sv, &row, case_school(&row, school_id),
                   bx_registry_student(sv->registry, student), in, added, err);
    bx_metric_add(&m_events, *added);
    return s;
}

/* duties_suspect_fn: opens (or leaves to its open case) a suspected dropout a duty found. */
static bx_status duty_suspect(void *arg, const char *duty_key, const char *student,
                              const char *school_id, const ladder_input *in, bx_error *err)
{
    escalate_service *sv = arg;
    char what[DUTIES_KEY_SIZE + 8];
    snprintf(what, sizeof(what), "duty %s", duty_key);
    int added = 0;
    bx_status s = apply_derived(sv, what, student, school_id, in, &added, err);
    if (s == BX_OK && added)
        bx_log_info("duty %s: student %s: suspected dropout, case %s", duty_key, student,
                    sv->after.case_id);
    return s;
}

/* ---- transfers matched and matching findings (transfers.h) ---- */

/* duties_suspect_fn for transfers.h: one input of the transfer check or a matching finding
 * applied to its student's case, inside the caller's transaction. */
static bx_status match_apply(void *arg, const char *what, const char *student,
                             const char *school_id, const ladder_input *in, bx_error *err)
{
    int added = 0;
    return apply_derived(arg, what, student, school_id, in, &added, err);
}

/* The children `bxctl match` found, then the transfer check (each quick when there is nothing new:
 * one query). */
static void match_work(escalate_service *sv)
{
    if (sv->registry == NULL)
        return;
    const transfers_env env = {sv->db, sv->conf.policy, sv->registry, match_apply, sv};
    bx_error err = {0};
    int applied = 0, confirmed = 0;
    if (transfers_apply_findings(&env, FINDINGS_MAX, &applied, &err) != BX_OK)
        bx_log_warn("matching findings: %s", err.msg);
    else if (transfers_check(&env, &confirmed, &err) != BX_OK)
        bx_log_warn("transfer check: %s", err.msg);
    if (applied || confirmed)
        bx_log_info("%d matching findings applied, %d transfers confirmed", applied, confirmed);
}

/* Schedules the duties of every term not yet over (idempotent: one timer per key). Runs when the
 * registry revision or the day changed. */
static void schedule_duties(escalate_service *sv)
{
    if (sv->conf.duties == NULL || sv->registry == NULL)
        return;
    bx_date today = bx_time_local_date(bx_clock_now());
    long long rev = bx_registry_loaded_revision(sv->registry);
    if (rev == sv->duties_revision && today == sv->duties_day)
        return;
    bx_error err = {0};
    int created = 0;
    if (duties_schedule(sv->db, sv->conf.duties, sv->registry, today, &created, &err) != BX_OK) {
        bx_log_warn("scheduling calendar duties failed: %s", err.msg);
        return;
    }
    if (created)
        bx_log_info("%d calendar duties scheduled", created);
    sv->duties_revision = rev;
    sv->duties_day = today;
}

/* ---- the duty worker: queued duties run on a thread and connection of their own ---- */

static bool duty_stopping(escalate_service *sv)
{
    pthread_mutex_lock(&sv->duty_lock);
    bool stop = sv->duty_stop;
    pthread_mutex_unlock(&sv->duty_lock);
    return stop;
}

/* Wakes the worker: the timers queued duty runs. */
static void kick_duties(escalate_service *sv)
{
    if (!sv->duty_started || sv->duties_queued == 0)
        return;
    sv->duties_queued = 0;
    pthread_mutex_lock(&sv->duty_lock);
    sv->duty_kicked = true;
    pthread_cond_signal(&sv->duty_wake);
    pthread_mutex_unlock(&sv->duty_lock);
}

/* The wall-clock time ms from now, for pthread_cond_timedwait. */
static struct timespec wait_until(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

/* Sleeps up to ms unless kicked or stopped. */
static void duty_sleep(escalate_service *sv, int ms)
{
    struct timespec until = wait_until(ms);
    pthread_mutex_lock(&sv->duty_lock);
    if (!sv->duty_stop && !sv->duty_kicked)
        pthread_cond_timedwait(&sv->duty_wake, &sv->duty_lock, &until);
    sv->duty_kicked = false;
    pthread_mutex_unlock(&sv->duty_lock);
}

/* (Re)connects the worker, keeping its connection's cancel handle for a stop mid-run. */
static bx_status connect_worker(escalate_service *sv, bx_error *err)
{
    escalate_service *w = sv->worker;
    bx_status s = bx_pg_reconnect(&w->db, sv->conf.pg_url, PG_CONNECT_WAIT_MS, err);
    pthread_mutex_lock(&sv->duty_lock);
    if (sv->duty_cancel)
        PQfreeCancel(sv->duty_cancel);
    sv->duty_cancel = s == BX_OK ? PQgetCancel(w->db) : NULL;
    pthread_mutex_unlock(&sv->duty_lock);
    return s;
}

/* The registry the loop has now, held for one run (load_registry leaves it to the worker). */
static void borrow_registry(escalate_service *sv)
{
    pthread_mutex_lock(&sv->duty_lock);
    sv->reg_in_use = sv->registry;
    sv->worker->registry = sv->registry;
    pthread_mutex_unlock(&sv->duty_lock);
}

/* Gives it back, freeing it when the loop replaced it meanwhile. */
static void return_registry(escalate_service *sv)
{
    pthread_mutex_lock(&sv->duty_lock);
    bx_registry *replaced = sv->reg_in_use != sv->registry ? sv->reg_in_use : NULL;
    sv->reg_in_use = NULL;
    sv->worker->registry = NULL;
    pthread_mutex_unlock(&sv->duty_lock);
    bx_registry_free(replaced);
}

/* Runs the next queued duty; false when none was due (or PostgreSQL is away). A run that fails
 * is rolled back and tried again later (duties_run_failed), unless the stop interrupted it: then
 * it runs at the next start, as after a crash. */
static bool run_one_duty(escalate_service *sv)
{
    escalate_service *w = sv->worker;
    bx_error err = {0};
    if ((w->db == NULL || bx_pg_is_broken(w->db)) && connect_worker(sv, &err) != BX_OK) {
        bx_log_warn("duty worker: cannot connect to PostgreSQL: %s", err.msg);
        return false;
    }
    borrow_registry(sv);
    const duties_env env = {w->db, w->conf.duties, w->registry, duty_suspect, w};
    duties_run run;
    bx_status s = duties_run_next(&env, &run, &err);
    return_registry(sv);
    if (s == BX_OK) {
        if (run.taken)
            bx_log_info("duty %s run", run.key);
        return run.taken;
    }
    if (duty_stopping(sv)) {
        bx_log_info("duty %s: interrupted by the stop; it runs at the next start", run.key);
        return false;
    }
    if (!run.taken || bx_pg_is_broken(w->db)) {
        bx_log_warn("duty worker: %s", err.msg);
        return false;
    }
    bool given_up = false;
    bx_error ferr = {0};
    if (duties_run_failed(w->db, &run, sv->conf.max_attempts, err.msg, &given_up, &ferr) != BX_OK)
        bx_log_warn("duty %s failed (%s); cannot record it: %s", run.key, err.msg, ferr.msg);
    else if (given_up)
        bx_log_error("duty %s given up after %d attempts: %s", run.key, run.attempt, err.msg);
    else
        bx_log_warn("duty %s failed (attempt %d): %s; tried again later", run.key, run.attempt,
                    err.msg);
    bx_metric_add(&m_failures, 1);
    return true;
}

static void *duty_main(void *arg)
{
    escalate_service *sv = arg;
    while (!duty_stopping(sv))
        if (!run_one_duty(sv))
            duty_sleep(sv, DUTY_IDLE_MS);
    if (sv->worker->db)
        PQfinish(sv->worker->db);
    sv->worker->db = NULL;
    pthread_mutex_lock(&sv->duty_lock);
    if (sv->duty_cancel)
        PQfreeCancel(sv->duty_cancel);
    sv->duty_cancel = NULL;
    sv->duty_exited = true;
    pthread_cond_broadcast(&sv->duty_wake);
    pthread_mutex_unlock(&sv->duty_lock);
    return NULL;
}

/* Starts the duty worker (only with a duties policy); signals stay the main thread's. */
static bx_status start_duty_worker(escalate_service *sv, bx_error *err)
{
    if (sv->conf.duties == NULL)
        return BX_OK;
    sv->worker = calloc(1, sizeof(*sv->worker));
    if (sv->worker == NULL)
        return BX_ERR(err, BX_ENOMEM, "service: out of memory");
    sv->worker->conf = sv->conf;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&sv->duty_thread, NULL, duty_main, sv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return BX_ERR(err, BX_EIO, "service: cannot start the duty worker (%s)", strerror(rc));
    sv->duty_started = true;
    return BX_OK;
}

/* Stops the duty worker: a run under way is cancelled (rolled back: it runs at the next start).
 * The cancel is sent again every half second until the worker is out, in case it came between
 * two of the run's statements. */
static void stop_duty_worker(escalate_service *sv)
{
    if (sv->duty_started) {
        pthread_mutex_lock(&sv->duty_lock);
        sv->duty_stop = true;
        pthread_cond_broadcast(&sv->duty_wake);
        while (!sv->duty_exited) {
            char why[256];
            if (sv->duty_cancel && !PQcancel(sv->duty_cancel, why, sizeof(why)))
                bx_log_warn("duty worker: cannot cancel its query: %s", why);
            struct timespec until = wait_until(500);
            pthread_cond_timedwait(&sv->duty_wake, &sv->duty_lock, &until);
        }
        pthread_mutex_unlock(&sv->duty_lock);
        pthread_join(sv->duty_thread, NULL);
        sv->duty_started = false;
    }
    free(sv->worker);
    sv->worker = NULL;
}

/* ---- timers ---- */

/* What firing a case timer needs: the batch's queue while one is fired (sv->queue). */
static escalate_store_firing firing_of(escalate_service *sv)
{
    return (escalate_store_firing){sv->conf.policy,
                                   sv->registry,
                                   sv->conf.pseudonym_key,
                                   sv->conf.analytics_cases_topic,
                                   sv->queue,
                                   &sv->before,
                                   &sv->after,
                                   &sv->fx};
}

/* timers_prepare_fn: the batch's case rows (and bands) read in one statement. */
static bx_status prefetch_cases(PGconn *db, const timers_list *list, void *arg, bx_error *err)
{
    escalate_service *sv = arg;
    const escalate_store_firing f = firing_of(sv);
    return escalate_store_prefetch_cases(db, &f, list, err);
}

static bx_status fire_timer(PGconn *db, const timers_timer *timer, void *arg, bx_error *err)
{
    escalate_service *sv = arg;
    if (db != sv->db)
        return BX_ERR(err, BX_EINVAL, "timer %s: fired on another connection", timer->key);
    if (timer->case_id <= 0) {
        if (strcmp(timer->kind, "duty") != 0)
            return BX_OK;
        if (sv->duty_started) {
            /* queued with the timer's fired mark; the duty worker runs it */
            int queued = 0;
            bx_status s = duties_queue_run(sv->db, timer, &queued, err);
            sv->duties_queued += queued;
            return s;
        }
        /* no duty worker (no duties policy): fired here, without effect; a duty reads the case
         * tables: what the batch queued is written first, and the duty's
         * own steps are written at once */
        escalate_store_batch *queue = sv->queue;
        bx_status s = queue ? escalate_store_batch_flush(sv->db, queue, err) : BX_OK;
        sv->queue = NULL;
        const duties_env env = {sv->db, sv->conf.duties, sv->registry, duty_suspect, sv};
        IFOK(s, duties_fire(&env, timer, err));
        sv->queue = queue;
        return s;
    }
    const escalate_store_firing f = firing_of(sv);
    int added = 0;
    bx_status s = escalate_store_fire_deadline(db, &f, timer, &added, err);
    if (s == BX_OK)
        bx_metric_add(&m_events, added);
    return s;
}

/* A timer whose firing failed for good with PostgreSQL reachable (its case's state cannot be
 * read: not retriable; or conf.max_attempts claims failed) is cancelled and its case flagged
 * needs_attention in one transaction, instead of being claimed again after every lease for ever. */
static void give_up_timer(escalate_service *sv, const timers_timer *timer, const char *why,
                          bx_time_ms now)
{
    char flag_id[TIMERS_KEY_MAX + 8], reason[600];
    snprintf(flag_id, sizeof(flag_id), "timer:%s", timer->key);
    snprintf(reason, sizeof(reason), "timer %s given up after %d attempt%s: %s", timer->key,
             timer->attempts, timer->attempts == 1 ? "" : "s", why);
    bx_error err = {0};
    int cancelled = 0, flagged = 0;
    bx_status s = bx_pg_exec(sv->db, "BEGIN", &err);
    IFOK(s, timers_cancel(sv->db, timer->key, now, &cancelled, &err));
    if (timer->case_id > 0)
        IFOK(s, escalate_store_flag_attention(sv->db, NULL, timer->case_id, flag_id, reason, now,
                                              &flagged, &err));
    IFOK(s, bx_pg_exec(sv->db, "COMMIT", &err));
    if (s != BX_OK) {
        bx_pg_rollback(sv->db);
        bx_log_warn("timer %s: cannot be given up (%s); retried after its lease", timer->key,
                    err.msg);
        return;
    }
    bx_metric_add(&m_attention, flagged);
    bx_log_warn("%s; cancelled%s", reason, flagged ? ", case flagged needs_attention" : "");
}

/* timers_flush_fn: writes what a batch of firings queued. */
static bx_status flush_queue(PGconn *db, void *arg, bx_error *err)
{
    escalate_service *sv = arg;
    return escalate_store_batch_flush(db, sv->batch, err);
}

static void fire_due_timers(escalate_service *sv)
{
    timers_list list = {0};
    bx_error err = {0};
    bx_time_ms now = bx_clock_now();
    int max = sv->conf.timer_batch > 0 ? sv->conf.timer_batch : TIMERS_DEFAULT;
    /* The due timers in one transaction, selected FOR UPDATE SKIP LOCKED (no claim first); if
     * any firing fails, they are claimed and fired one by one so the others go on. */
    int fired = 0;
    bx_error berr = {0};
    escalate_store_batch_clear(sv->batch);
    sv->queue = sv->batch; /* the firings' rows queued, written together before the marks */
    sv->tag = 0;
    bx_status fs = timers_fire_due_prepared(sv->db, sv->owner, now, max, prefetch_cases, fire_timer,
                                            flush_queue, sv, &fired, &list, &berr);
    sv->queue = NULL;
    if (fs == BX_OK) {
        bx_metric_add(&m_timers, fired);
        bx_metric_add(&m_events, escalate_store_batch_new_events(sv->batch, 0));
        if (fired)
            bx_log_debug("%d timers fired in one transaction", fired);
        return;
    }
    escalate_store_batch_clear(sv->batch);
    bx_log_warn("firing %d timers together failed (%s); firing them one by one", list.count,
                berr.msg);
    timers_list_free(&list);
    if (bx_pg_reconnect(&sv->db, sv->conf.pg_url, PG_CONNECT_WAIT_MS, &berr) != BX_OK) {
        bx_log_warn("cannot reconnect to PostgreSQL: %s", berr.msg);
        return;
    }
    if (timers_claim(sv->db, sv->owner, now, sv->conf.timer_lease_ms, max, &list, &err) != BX_OK) {
        bx_log_warn("timer claim failed: %s", err.msg);
        if (bx_pg_reconnect(&sv->db, sv->conf.pg_url, PG_CONNECT_WAIT_MS, &err) != BX_OK)
            bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
        return;
    }
    for (int i = 0; i < list.count && *sv->conf.running; i++) {
        bx_error ferr = {0};
        bx_status s = timers_fire(sv->db, &list.items[i], sv->owner, now, fire_timer, sv, &ferr);
        if (s == BX_OK) {
            bx_metric_add(&m_timers, 1);
            bx_log_debug("timer %s fired", list.items[i].key);
        } else if (s != BX_ECONFLICT) {
            bx_metric_add(&m_failures, 1);
            if ((!bx_status_is_retriable(s) || list.items[i].attempts >= sv->conf.max_attempts) &&
                !bx_pg_is_broken(sv->db))
                give_up_timer(sv, &list.items[i], ferr.msg, now);
            else
                bx_log_warn("timer %s failed (%s); retried after its lease", list.items[i].key,
                            ferr.msg);
        }
    }
    timers_list_free(&list);
}

/* ---- the loop ---- */

/* Retention: relayed outbox rows go after conf.outbox_keep_days, checked hourly. */
static void prune_outbox(escalate_service *sv)
{
    long long now = bx_monotonic_ms();
    if (sv->last_prune && now - sv->last_prune < PRUNE_EVERY_MS)
        return;
    sv->last_prune = now;
    int deleted = 0;
    bx_error err = {0};
    if (escalate_store_prune_outbox(sv->db, sv->conf.outbox_keep_days, &deleted, &err) != BX_OK)
        bx_log_warn("outbox prune: %s", err.msg);
    else if (deleted > 0)
        bx_log_info("outbox: %d relayed rows older than %d days deleted", deleted,
                    sv->conf.outbox_keep_days);
}

static void relay(escalate_service *sv)
{
    for (;;) {
        int sent = 0;
        bx_error err = {0};
        bx_status s =
            escalate_outbox_relay(sv->db, sv->producer, RELAY_MAX, RELAY_WAIT_MS, &sent, &err);
        bx_metric_add(&m_sent, sent);
        if (s != BX_OK) {
            bx_log_warn("outbox relay: %s", err.msg);
            if (bx_pg_reconnect(&sv->db, sv->conf.pg_url, PG_CONNECT_WAIT_MS, &err) != BX_OK)
                bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
            return;
        }
        if (sent < RELAY_MAX)
            return;
    }
}

void escalate_service_step(escalate_service *sv)
{
    int handled = 0;
    rd_kafka_message_t *msgs[POLL_MAX];
    while (handled < POLL_MAX && *sv->conf.running) {
        rd_kafka_message_t *msg = bx_consumer_poll(sv->consumer, handled ? 0 : 100);
        if (msg == NULL)
            break;
        if (msg->err) {
            bx_log_warn("consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        msgs[handled++] = msg;
    }
    if (handled)
        handle_poll(sv, msgs, handled);
    for (int i = 0; i < handled; i++)
        rd_kafka_message_destroy(msgs[i]);
    if (handled && bx_consumer_commit(sv->consumer) != BX_OK)
        bx_log_warn("offset commit failed; the next commit carries them");
    bx_consumer_recover(sv->consumer); /* no message held now */
    fire_due_timers(sv);
    kick_duties(sv);
    relay(sv);
}

bx_status escalate_service_start(const escalate_service_conf *conf, escalate_service **out,
                                 bx_error *err)
{
    *out = NULL;
    escalate_service *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return BX_ERR(err, BX_ENOMEM, "service: out of memory");
    sv->conf = *conf;
    atomic_init(&sv->healthy, true);
    pthread_mutex_init(&sv->duty_lock, NULL);
    pthread_cond_init(&sv->duty_wake, NULL);
    char host[64] = "localhost";
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(sv->owner, sizeof(sv->owner), "%s:%d", host, (int)getpid());
    bx_metric_register(&m_inputs);
    bx_metric_register(&m_events);
    bx_metric_register(&m_timers);
    bx_metric_register(&m_sent);
    bx_metric_register(&m_dlq);
    bx_metric_register(&m_failures);
    bx_metric_register(&m_attention);
    bx_metric_register(&m_polls);
    bx_status s = escalate_store_batch_new(&sv->batch, err);
    IFOK(s, bx_pg_reconnect(&sv->db, conf->pg_url, PG_CONNECT_WAIT_MS, err));
    IFOK(s, load_registry(sv, err));
    IFOK(s, bx_producer_new(conf->brokers, NULL, &sv->producer, err));
    if (s == BX_OK) {
        const char *const outbox_topics[] = {BX_TOPIC_CASE_EVENTS, BX_TOPIC_NOTIFY_REQUESTS,
                                             conf->analytics_cases_topic, NULL};
        bx_producer_prepare_topics(sv->producer, outbox_topics, PREPARE_TOPICS_MS);
    }
    const char *const topics[] = {conf->risk_topic, conf->actions_topic, NULL};
    const char *const extra[] = {"auto.offset.reset",
                                 conf->offset_reset ? conf->offset_reset : "earliest", NULL};
    IFOK(s, bx_consumer_new(conf->brokers, conf->group, topics, extra, &sv->consumer, err));
    if (s != BX_OK) {
        escalate_service_stop(sv);
        return s;
    }
    bx_log_info("consuming %s and %s as group %s; timers claimed as %s", conf->risk_topic,
                conf->actions_topic, conf->group, sv->owner);
    schedule_duties(sv);
    s = start_duty_worker(sv, err);
    if (s != BX_OK) {
        escalate_service_stop(sv);
        return s;
    }
    *out = sv;
    return BX_OK;
}

void escalate_service_stop(escalate_service *sv)
{
    if (sv == NULL)
        return;
    stop_duty_worker(sv);
    if (sv->db) {
        bx_error err = {0};
        int released = 0;
        if (timers_release(sv->db, sv->owner, &released, &err) != BX_OK)
            bx_log_warn("cannot release timer claims: %s", err.msg);
    }
    bx_consumer_free(sv->consumer);
    bx_producer_free(sv->producer, 10000);
    if (sv->db)
        PQfinish(sv->db);
    bx_registry_free(sv->registry);
    escalate_store_batch_free(sv->batch);
    pthread_cond_destroy(&sv->duty_wake);
    pthread_mutex_destroy(&sv->duty_lock);
    free(sv);
}

bool escalate_service_healthy(void *arg, char *reason, size_t size)
{
    escalate_service *sv = arg;
    if (atomic_load(&sv->healthy))
        return true;
    snprintf(reason, size, "the last message failed; retrying");
    return false;
}

void escalate_service_tick(escalate_service *sv)
{
    bx_error err = {0};
    if (refresh_registry(sv, &err) != BX_OK) {
        bx_log_warn("registry refresh failed: %s", err.msg);
        if (bx_pg_reconnect(&sv->db, sv->conf.pg_url, PG_CONNECT_WAIT_MS, &err) != BX_OK)
            bx_log_warn("cannot reconnect to PostgreSQL: %s", err.msg);
        return;
    }
    schedule_duties(sv);
    match_work(sv);
    prune_outbox(sv);
}
