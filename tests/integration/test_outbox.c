/* bx_outbox_relay against the real PostgreSQL and Kafka, on a scratch outbox table of its own
 * (in schema bx_outbox_test, which stays) and a topic of its own per run: id order with keys and
 * payloads, every row marked once, a held lock sends nothing, a refused produce stops the batch,
 * and table names that are not identifiers are refused before any SQL; and bx_outbox_add. */
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_outbox.h"
#include "bx_pg.h"
#include "bx_test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define SCHEMA      "bx_outbox_test"
#define WAIT_MS     15000
#define KEY_MAX     32
#define PAYLOAD_MAX 128

/* ---- one scratch table, topic and lock key per case (each case is its own process) ---- */

static char table[96], topic[96];
static int64_t lock_key;

static const char *pg_url(void)
{
    return itest_env("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue");
}

static const char *brokers(void)
{
    return itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092");
}

static PGconn *pg(void)
{
    PGconn *db = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_connect(pg_url(), 5000, &db, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(s == BX_OK);
    return db;
}

static void exec_ok(PGconn *db, const char *sql)
{
    bx_error err = {0};
    bx_status s = bx_pg_exec(db, sql, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(s == BX_OK);
}

/* The single value of a query (a printf format) on db; caller frees. */
static char *value_of(PGconn *db, const char *fmt, ...) BX_PRINTF(2, 3);
static char *value_of(PGconn *db, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGresult *res = NULL;
    bx_error err = {0};
    bx_status s = bx_pg_query(db, sql, 0, NULL, &res, &err);
    if (s != BX_OK)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    REQUIRE(s == BX_OK && PQntuples(res) == 1);
    char *v = strdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* The table's rows that are not sent yet, as db sees them. */
static long long unsent(PGconn *db)
{
    char *v = value_of(db, "SELECT count(*) FROM %s WHERE sent_at IS NULL", table);
    long long n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

/* The ids marked sent, in id order, as "1,2,3" ("" for none). */
static char *sent_ids(PGconn *db)
{
    return value_of(
        db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM %s WHERE sent_at IS NOT NULL",
        table);
}

static void drop_scratch(void)
{
    PGconn *db = PQconnectdb(pg_url());
    if (PQstatus(db) == CONNECTION_OK) {
        char sql[160];
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
        PQclear(PQexec(db, sql));
        /* The (empty) schema stays: dropping it waits for a lock on every table in it, and a
         * parallel run's open relay then queues its own next statement behind the drop while its
         * relay waits for that statement, a deadlock PostgreSQL cannot see. */
    }
    PQfinish(db);
}

/* A one-partition topic (so the topic's order is the relay's order) that answers. */
static void create_topic(void)
{
    const char *topics[] = {topic};
    const int partitions[] = {1};
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(brokers(), topics, partitions, 1, WAIT_MS, &err) == BX_OK);
    bx_producer *p = NULL;
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    int64_t lo = 0, hi = 0;
    for (int tries = 0;
         tries < 100 && rd_kafka_query_watermark_offsets(bx_producer_handle(p), topic, 0, &lo, &hi,
                                                         1000) != RD_KAFKA_RESP_ERR_NO_ERROR;
         tries++)
        usleep(100 * 1000);
    bx_producer_free(p, 1000);
}

static void setup(void)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    long long run = (long long)now.tv_sec * 1000000 + now.tv_usec;
    snprintf(table, sizeof(table), SCHEMA ".outbox_%d_%lld", (int)getpid(), run);
    snprintf(topic, sizeof(topic), "bx.itest.outbox.%d.%lld", (int)getpid(), run);
    lock_key = 7426000000000LL + getpid(); /* apart from the services' keys and other runs' */
    /* connected before drop_scratch is registered: a SCRAM login initialises OpenSSL, whose own
     * exit handler must run after drop_scratch's connection, not before it */
    PGconn *db = pg();
    atexit(drop_scratch);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "BEGIN; CREATE SCHEMA IF NOT EXISTS " SCHEMA "; "
             "CREATE TABLE %s (id bigserial PRIMARY KEY, topic text NOT NULL, "
             "msg_key text NOT NULL, payload text NOT NULL, sent_at timestamptz); COMMIT",
             table);
    /* Concurrent runs may race on the schema (created or dropped under us): try again. */
    bx_status s = BX_EIO;
    bx_error err = {0};
    for (int attempt = 0; attempt < 5 && s != BX_OK; attempt++) {
        s = bx_pg_exec(db, sql, &err);
        if (s != BX_OK) {
            bx_pg_rollback(db);
            usleep(100 * 1000);
        }
    }
    if (s != BX_OK)
        fprintf(stderr, "scratch table: %s\n", err.msg);
    REQUIRE(s == BX_OK);
    PQfinish(db);
    create_topic();
}

static void key_of(int id, char *out, size_t size)
{
    snprintf(out, size, "S%03d", id % 3);
}

static void payload_of(int id, char *out, size_t size)
{
    snprintf(out, size, "{\"n\":%d,\"topic\":\"%s\"}", id, topic);
}

/* Inserts the rows of the given ids, in the order given (not id order). */
static void add_rows(PGconn *db, const int *ids, int count)
{
    for (int i = 0; i < count; i++) {
        char id[16], key[KEY_MAX], payload[PAYLOAD_MAX], sql[256];
        snprintf(id, sizeof(id), "%d", ids[i]);
        key_of(ids[i], key, sizeof(key));
        payload_of(ids[i], payload, sizeof(payload));
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s (id, topic, msg_key, payload) VALUES ($1::bigint, $2, $3, $4)",
                 table);
        const char *params[] = {id, topic, key, payload};
        PGresult *res = NULL;
        bx_error err = {0};
        bx_status s = bx_pg_query(db, sql, 4, params, &res, &err);
        if (s != BX_OK)
            fprintf(stderr, "insert: %s\n", err.msg);
        REQUIRE(s == BX_OK);
        PQclear(res);
    }
}

static bx_outbox_relay_opts opts_of(int max)
{
    return (bx_outbox_relay_opts){
        .table = table, .lock_key = lock_key, .max = max, .timeout_ms = WAIT_MS};
}

/* ---- the topic ---- */

/* Messages on the topic (its high watermark: the idempotent producer writes no markers). */
static long long topic_count(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof(errstr));
    REQUIRE(bx_kafka_conf_credentials(conf, &(bx_error){0}) == BX_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    int64_t lo = 0, hi = -1;
    REQUIRE(rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, WAIT_MS) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
    return hi;
}

typedef struct message {
    char key[KEY_MAX];
    char payload[PAYLOAD_MAX];
} message;

/* Reads the topic from its start until want messages came or WAIT_MS passed; returns the count. */
static int read_topic(message *out, int want)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "bx-itest-outbox", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    REQUIRE(bx_kafka_conf_credentials(conf, &(bx_error){0}) == BX_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    REQUIRE(rd_kafka_assign(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
    int got = 0;
    for (int spins = 0; spins < WAIT_MS / 100 && got < want; spins++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (!m->err) {
            snprintf(out[got].key, KEY_MAX, "%.*s", (int)m->key_len, (const char *)m->key);
            snprintf(out[got].payload, PAYLOAD_MAX, "%.*s", (int)m->len, (const char *)m->payload);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    itest_close_consumer(rk, 10000);
    return got;
}

/* The topic holds exactly the rows 1..count, in id order, with their keys and payloads. */
static void check_topic_holds_ids_1_to(int count)
{
    CHECK_INT(topic_count(), count);
    message *got = calloc((size_t)count + 1, sizeof(*got));
    REQUIRE(got != NULL);
    CHECK_INT(read_topic(got, count), count);
    for (int i = 0; i < count; i++) {
        char key[KEY_MAX], payload[PAYLOAD_MAX];
        key_of(i + 1, key, sizeof(key));
        payload_of(i + 1, payload, sizeof(payload));
        CHECK_STR(got[i].key, key);
        CHECK_STR(got[i].payload, payload);
    }
    free(got);
}

/* ---- cases ---- */

BX_TEST(relays_in_id_order_in_batches_then_sends_nothing)
{
    setup();
    PGconn *db = pg();
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    /* Written out of id order, so only ORDER BY id gives the order checked below. */
    const int ids[] = {7, 2, 9, 4, 1, 8, 3, 6, 10, 5};
    add_rows(db, ids, 10);

    bx_outbox_relay_opts opts = opts_of(4);
    int sent = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 4);
    char *marked = sent_ids(db);
    CHECK_STR(marked, "1,2,3,4");
    free(marked);
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 4);
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 2);
    CHECK_INT(unsent(db), 0);
    CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
    check_topic_holds_ids_1_to(10);

    /* Everything is sent: a second pass sends and marks nothing more. */
    char *before = value_of(db, "SELECT string_agg(sent_at::text, ',' ORDER BY id) FROM %s", table);
    sent = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 0);
    char *after = value_of(db, "SELECT string_agg(sent_at::text, ',' ORDER BY id) FROM %s", table);
    CHECK_STR(after, before);
    free(before);
    free(after);
    CHECK_INT(topic_count(), 10);
    bx_producer_free(p, 5000);
    PQfinish(db);
}

/* With a cursor the relay reads after the rows it relayed. A row whose transaction committed
 * after a later row's waits for the next scan from the start (bx_outbox_cursor), and is then
 * sent. */
BX_TEST(a_cursor_reads_after_the_relayed_rows_and_finds_late_commits_from_the_start)
{
    setup();
    PGconn *db = pg(), *late = pg();
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    /* row 1's transaction stays open while rows 2 and 3 commit */
    exec_ok(late, "BEGIN");
    add_rows(late, (const int[]){1}, 1);
    add_rows(db, (const int[]){3, 2}, 2);

    bx_outbox_cursor cursor = {.rescan_ms = 3600 * 1000};
    bx_outbox_relay_opts opts = opts_of(100);
    opts.cursor = &cursor;
    int sent = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK); /* from the start */
    CHECK_INT(sent, 2);
    CHECK_INT((int)cursor.after, 3);
    CHECK(cursor.rescan_at_ms > 0);

    exec_ok(late, "COMMIT");
    add_rows(db, (const int[]){4}, 1);
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK); /* after row 3 */
    CHECK_INT(sent, 1);
    char *marked = sent_ids(db);
    CHECK_STR(marked, "2,3,4");
    free(marked);
    CHECK_INT(unsent(db), 1);
    CHECK_INT((int)cursor.after, 4);

    cursor.rescan_at_ms = 0; /* the time of the next scan from the start has come */
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 1);
    CHECK_INT(unsent(db), 0);
    CHECK_INT((int)cursor.after, 4);

    /* on the topic in the order sent: 2, 3, 4, then the late row 1 */
    CHECK_INT(topic_count(), 4);
    message got[4];
    CHECK_INT(read_topic(got, 4), 4);
    const int order[] = {2, 3, 4, 1};
    for (int i = 0; i < 4; i++) {
        char payload[PAYLOAD_MAX];
        payload_of(order[i], payload, sizeof(payload));
        CHECK_STR(got[i].payload, payload);
    }
    bx_producer_free(p, 5000);
    PQfinish(late);
    PQfinish(db);
}

typedef struct hook_probe {
    PGconn *relay_db; /* the relay's own connection: sees its transaction's marks */
    PGconn *other;    /* a second connection: tries to lock the unsent rows */
    int calls;
    long long unsent_seen, lockable_seen, on_topic_seen;
} hook_probe;

static void probe(void *arg)
{
    hook_probe *h = arg;
    h->calls++;
    h->unsent_seen = unsent(h->relay_db);
    char *lockable = value_of(h->other,
                              "SELECT count(*) FROM (SELECT id FROM %s WHERE sent_at IS NULL "
                              "FOR UPDATE SKIP LOCKED) AS free_rows",
                              table);
    h->lockable_seen = strtoll(lockable, NULL, 10);
    free(lockable);
    h->on_topic_seen = topic_count();
}

BX_TEST(acked_hook_runs_after_the_acknowledgements_and_before_the_marks)
{
    setup();
    PGconn *db = pg();
    hook_probe h = {.relay_db = db, .other = pg()};
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    const int ids[] = {3, 1, 2};
    add_rows(db, ids, 3);
    bx_outbox_relay_opts opts = opts_of(2);
    opts.acked_hook = probe;
    opts.acked_hook_arg = &h;

    /* Rows read unlocked: another transaction could lock every unsent row meanwhile. */
    int sent = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 2);
    CHECK_INT(h.calls, 1);
    CHECK_INT(h.on_topic_seen, 2);
    CHECK_INT(h.unsent_seen, 3);
    CHECK_INT(h.lockable_seen, 3);
    CHECK_INT(unsent(db), 1);

    /* Rows read FOR UPDATE SKIP LOCKED: the relay holds the one it sends. */
    opts.lock_rows = true;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 1);
    CHECK_INT(h.calls, 2);
    CHECK_INT(h.on_topic_seen, 3);
    CHECK_INT(h.unsent_seen, 1);
    CHECK_INT(h.lockable_seen, 0);
    CHECK_INT(unsent(db), 0);
    check_topic_holds_ids_1_to(3);

    /* Nothing to send: no batch, no hook. */
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 0);
    CHECK_INT(h.calls, 2);
    bx_producer_free(p, 5000);
    PQfinish(h.other);
    PQfinish(db);
}

BX_TEST(with_the_lock_held_elsewhere_nothing_is_sent_or_marked)
{
    setup();
    PGconn *db = pg(), *holder = pg();
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    const int ids[] = {2, 1, 3};
    add_rows(db, ids, 3);
    char sql[96];
    snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)", (long long)lock_key);
    exec_ok(holder, sql);

    bx_outbox_relay_opts opts = opts_of(100);
    int sent = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 0);
    CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
    CHECK_INT(unsent(db), 3);
    CHECK_INT(topic_count(), 0);

    /* The lock released, the same relay sends them all. */
    exec_ok(holder, "COMMIT");
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 3);
    CHECK_INT(unsent(db), 0);
    check_topic_holds_ids_1_to(3);
    bx_producer_free(p, 5000);
    PQfinish(holder);
    PQfinish(db);
}

BX_TEST(a_refused_produce_stops_the_batch_and_the_acknowledged_are_kept)
{
    setup();
    PGconn *db = pg();
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    const int ids[] = {1, 2, 3, 4, 5};
    add_rows(db, ids, 5);
    /* Above the producer's message.max.bytes (1,000,000): refused when queued. */
    char sql[160];
    snprintf(sql, sizeof(sql), "UPDATE %s SET payload = repeat('x', 2000000) WHERE id = 3", table);
    exec_ok(db, sql);

    bx_outbox_relay_opts opts = opts_of(100);
    int sent = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_ETRANSIENT);
    CHECK_INT(sent, 2);
    CHECK_CONTAINS(err.msg, "3 of 5 messages not acknowledged");
    CHECK_CONTAINS(err.msg, "refused");
    CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
    char *marked = sent_ids(db);
    CHECK_STR(marked, "1,2");
    free(marked);
    CHECK_INT(topic_count(), 2);

    /* Once the row can be sent, the rest follow it, in order. */
    char payload[PAYLOAD_MAX];
    payload_of(3, payload, sizeof(payload));
    snprintf(sql, sizeof(sql), "UPDATE %s SET payload = $1 WHERE id = 3", table);
    const char *params[] = {payload};
    PGresult *res = NULL;
    REQUIRE(bx_pg_query(db, sql, 1, params, &res, &err) == BX_OK);
    PQclear(res);
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 3);
    check_topic_holds_ids_1_to(5);
    bx_producer_free(p, 5000);
    PQfinish(db);
}

BX_TEST(table_names_that_are_not_identifiers_are_refused)
{
    setup();
    PGconn *db = pg();
    bx_producer *p = NULL;
    bx_error err = {0};
    REQUIRE(bx_producer_new(brokers(), NULL, &p, &err) == BX_OK);
    const int ids[] = {1, 2};
    add_rows(db, ids, 2);
    char long_name[96], long_schema[96], longest[96], letters[65];
    memset(letters, 'a', 64);
    letters[64] = '\0';
    snprintf(long_name, sizeof(long_name), SCHEMA ".%s", letters); /* 64 bytes: one too many */
    snprintf(long_schema, sizeof(long_schema), "%s.outbox", letters);
    snprintf(longest, sizeof(longest), SCHEMA ".%.63s", letters);
    static const char *const refused[] = {
        NULL,
        "",
        "cases.outbox; DROP TABLE cases.case",
        "cases.outbox WHERE false --",
        "Cases.outbox",
        "cases.Outbox",
        "\"cases\".outbox",
        "cases.outbox.more",
        "1outbox",
        "cases.1outbox",
        "cases.",
        ".outbox",
        "cases..outbox",
        "cases .outbox",
        "cases.out-box",
        "cases.outbox\n",
        "cas\xc3\xa9s.outbox",
    };
    size_t n = sizeof(refused) / sizeof(refused[0]);
    const char *too_long[] = {long_name, long_schema};
    for (size_t i = 0; i < n + 2; i++) {
        const char *name = i < n ? refused[i] : too_long[i - n];
        bx_outbox_relay_opts opts = opts_of(100);
        opts.table = name;
        int sent = -1;
        bx_error e = {0};
        bx_status s = bx_outbox_relay(db, p, &opts, &sent, &e);
        if (s != BX_EINVAL)
            fprintf(stderr, "table \"%s\": %s\n", name ? name : "(null)", bx_status_name(s));
        CHECK_INT(s, BX_EINVAL);
        CHECK_INT(sent, 0);
        CHECK_CONTAINS(e.msg, "outbox table must be");
        CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
    }
    /* 63 bytes is a name: it passes the check and fails in PostgreSQL (there is no such table),
     * and the relay's transaction is rolled back. */
    bx_outbox_relay_opts opts = opts_of(100);
    opts.table = longest;
    int sent = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_EIO);
    CHECK_CONTAINS(err.msg, "does not exist");
    CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
    /* Batch bounds and the timeout are checked too. */
    opts = opts_of(0);
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_EINVAL);
    opts = opts_of(BX_OUTBOX_BATCH_MAX + 1);
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_EINVAL);
    opts = opts_of(100);
    opts.timeout_ms = -1;
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_EINVAL);
    /* None of that touched the rows; the scratch table's own name relays them. */
    CHECK_INT(unsent(db), 2);
    CHECK_INT(topic_count(), 0);
    opts = opts_of(BX_OUTBOX_BATCH_MAX);
    CHECK_INT(bx_outbox_relay(db, p, &opts, &sent, &err), BX_OK);
    CHECK_INT(sent, 2);
    check_topic_holds_ids_1_to(2);
    bx_producer_free(p, 5000);
    PQfinish(db);
}

/* The scratch table with the columns bx_outbox_add may write. */
static void add_columns(PGconn *db)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "ALTER TABLE %s ADD COLUMN event_id text UNIQUE, "
             "ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()",
             table);
    exec_ok(db, sql);
}

BX_TEST(add_queues_once_per_event_id_with_the_given_time)
{
    setup();
    PGconn *db = pg();
    add_columns(db);
    bx_error err = {0};
    int added = -1;
    bx_outbox_message m = {.topic = topic, .key = "S001", .payload = "{\"n\":1}", .event_id = "e1"};
    exec_ok(db, "BEGIN");
    CHECK_INT(bx_outbox_add(db, table, &m, &added, &err), BX_OK);
    CHECK_INT(added, 1);
    CHECK_INT(bx_outbox_add(db, table, &m, &added, &err), BX_OK);
    CHECK_INT(added, 0);
    exec_ok(db, "COMMIT");
    /* Without an event id every add queues; the time given is kept to the millisecond; an empty
     * key is "unknown". */
    bx_outbox_message timed = {.topic = topic, .payload = "{\"n\":2}", .created_at = 1772409600123};
    CHECK_INT(bx_outbox_add(db, table, &timed, &added, &err), BX_OK);
    CHECK_INT(added, 1);
    timed.key = "";
    CHECK_INT(bx_outbox_add(db, table, &timed, NULL, &err), BX_OK);
    /* Both optional columns at once. */
    bx_outbox_message both = {
        .topic = topic, .key = "S002", .payload = "{}", .event_id = "e2", .created_at = 1000};
    CHECK_INT(bx_outbox_add(db, table, &both, &added, &err), BX_OK);
    CHECK_INT(added, 1);
    char *rows = value_of(db,
                          "SELECT string_agg(concat_ws('|', msg_key, payload, coalesce(event_id, "
                          "'-'), CASE WHEN created_at < '2000-01-01' OR created_at = "
                          "'2026-03-02 00:00:00.123+00' THEN to_char(created_at AT TIME ZONE "
                          "'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') ELSE 'now' END), ';' ORDER BY id) "
                          "FROM %s",
                          table);
    CHECK_STR(rows,
              "S001|{\"n\":1}|e1|now;unknown|{\"n\":2}|-|2026-03-02 00:00:00.123;"
              "unknown|{\"n\":2}|-|2026-03-02 00:00:00.123;S002|{}|e2|1970-01-01 00:00:01.000");
    free(rows);
    CHECK_INT(unsent(db), 4);
    PQfinish(db);
}

BX_TEST(add_refuses_bad_strings_before_any_sql)
{
    setup();
    PGconn *db = pg();
    char long_key[130];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[129] = '\0';
    static const struct {
        const char *table, *topic, *payload, *event_id, *expect;
    } rows[] = {
        {"cases.outbox; --", "t", "{}", NULL, "outbox table must be"},
        {NULL, NULL, "{}", NULL, "outbox topic must be 1 to 100 bytes"},
        {NULL, "t", "", NULL, "outbox payload must be 1 to 1000000 bytes"},
        {NULL, "t", "{}", "", "outbox event_id must be 1 to 128 bytes"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bx_outbox_message m = {
            .topic = rows[i].topic, .payload = rows[i].payload, .event_id = rows[i].event_id};
        bx_error err = {0};
        int added = -1;
        CHECK_INT(bx_outbox_add(db, rows[i].table ? rows[i].table : table, &m, &added, &err),
                  BX_EINVAL);
        CHECK_INT(added, 0);
        CHECK_CONTAINS(err.msg, rows[i].expect);
    }
    bx_outbox_message m = {.topic = "t", .key = long_key, .payload = "{}"};
    bx_error err = {0};
    CHECK_INT(bx_outbox_add(db, table, &m, NULL, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "outbox key must be 1 to 128 bytes");
    CHECK_INT(unsent(db), 0);
    CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
    PQfinish(db);
}
