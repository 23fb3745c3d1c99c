/* bx-notify's PostgreSQL rows (services/bx-notify/store.h) in a database of the test's own:
 * disjoint claims, takeover after a lease, a stale claimer refused, redelivered requests, outbox
 * pruning. */
#include "bx_itest.h"
#include "bx_pg.h"
#include "bx_test.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bx_time_ms T0 = 1795000000000LL; /* 2026-11-18, a plain weekday */
static const notify_store_ctx CTX = {"file", "bx.notify.status.v1"};

static PGconn *connect_db(void)
{
    PGconn *db = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_connect(itest_own_database("notifystore"), 5000, &db, &err) == BX_OK);
    return db;
}

static long long count_of(PGconn *db, const char *sql)
{
    PGresult *res = NULL;
    bx_error err = {0};
    REQUIRE(bx_pg_query(db, sql, 0, NULL, &res, &err) == BX_OK);
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static void queue_rows(PGconn *db, const char *prefix, int n)
{
    bx_error err = {0};
    REQUIRE(bx_pg_exec(db, "BEGIN", &err) == BX_OK);
    for (int i = 0; i < n; i++) {
        char request[64], phone[16];
        snprintf(request, sizeof(request), "%s:%d", prefix, i);
        snprintf(phone, sizeof(phone), "1380000%04d", i);
        notify_store_new nw = {request, phone, "138****0000",      true,   "sms",  NULL,
                               NULL,    NULL,  "absence_same_day", "学校", "正文", DISPATCH_QUEUED,
                               T0,      NULL};
        int64_t id = 0;
        REQUIRE(notify_store_insert(db, &CTX, &nw, T0, &id, &err) == BX_OK);
        REQUIRE(id > 0);
        /* the same (request, recipient) again inserts nothing */
        REQUIRE(notify_store_insert(db, &CTX, &nw, T0, &id, &err) == BX_OK);
        CHECK_INT(id, 0);
    }
    REQUIRE(bx_pg_exec(db, "COMMIT", &err) == BX_OK);
}

BX_TEST(claims_are_disjoint_and_taken_over_after_the_lease)
{
    PGconn *a = connect_db(), *b = connect_db();
    queue_rows(a, "claims", 100);
    notify_store_row *ra = NULL, *rb = NULL, *rc = NULL;
    int na = 0, nb = 0, nc = 0;
    bx_error err = {0};
    REQUIRE(notify_store_claim(a, "replica-a", T0, 30000, 60, &ra, &na, &err) == BX_OK);
    REQUIRE(notify_store_claim(b, "replica-b", T0, 30000, 60, &rb, &nb, &err) == BX_OK);
    CHECK_INT(na, 60);
    CHECK_INT(nb, 40);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (ra[i].id == rb[j].id)
                BX_FAIL_AT("row %lld claimed twice", (long long)ra[i].id);
    /* while the leases live nobody else gets them */
    REQUIRE(notify_store_claim(b, "replica-c", T0 + 29999, 30000, 100, &rc, &nc, &err) == BX_OK);
    CHECK_INT(nc, 0);
    free(rc);
    /* after them, all of them again */
    REQUIRE(notify_store_claim(b, "replica-c", T0 + 30001, 30000, 1000, &rc, &nc, &err) == BX_OK);
    CHECK_INT(nc, 100);
    free(ra);
    free(rb);
    free(rc);
    PQfinish(a);
    PQfinish(b);
}

BX_TEST(a_claimer_whose_lease_was_taken_over_changes_nothing)
{
    PGconn *db = connect_db();
    queue_rows(db, "stale", 1);
    notify_store_row *first = NULL, *second = NULL;
    int n1 = 0, n2 = 0;
    bx_error err = {0};
    REQUIRE(bx_pg_exec(db,
                       "UPDATE notify.notification SET due_at = '2020-01-01' WHERE "
                       "request_id = 'stale:0'",
                       &err) == BX_OK);
    REQUIRE(notify_store_claim(db, "slow-replica", T0, 1000, 1, &first, &n1, &err) == BX_OK);
    REQUIRE(n1 == 1);
    REQUIRE(notify_store_claim(db, "new-replica", T0 + 5000, 1000, 1, &second, &n2, &err) == BX_OK);
    REQUIRE(n2 == 1);
    CHECK(first[0].id == second[0].id);
    dispatch_output out;
    memset(&out, 0, sizeof(out));
    out.state = DISPATCH_SENDING;
    out.attempt = 1;
    out.due_at = T0 + 6000;
    out.action = DISPATCH_DO_SEND;
    bool applied = true;
    /* the slow one wakes up and would send: refused */
    REQUIRE(notify_store_apply(db, &CTX, &first[0], "slow-replica", &out, NULL, T0 + 5001, false,
                               &applied, &err) == BX_OK);
    CHECK(!applied);
    REQUIRE(notify_store_apply(db, &CTX, &second[0], "new-replica", &out, NULL, T0 + 5001, false,
                               &applied, &err) == BX_OK);
    CHECK(applied);
    /* and once sending, the intent stands: the slow one cannot undo it */
    REQUIRE(notify_store_apply(db, &CTX, &first[0], "slow-replica", &out, NULL, T0 + 5002, false,
                               &applied, &err) == BX_OK);
    CHECK(!applied);
    CHECK_INT(count_of(db, "SELECT count(*) FROM notify.notification WHERE request_id = "
                           "'stale:0' AND state = 'sending' AND attempt = 1 AND send_day IS NOT "
                           "NULL AND claimed_by = 'new-replica'"),
              1);
    free(first);
    free(second);
    PQfinish(db);
}

BX_TEST(a_request_is_taken_once)
{
    PGconn *db = connect_db();
    bx_error err = {0};
    bool fresh = false;
    REQUIRE(notify_store_request_take(db, "taken-once", T0, &fresh, &err) == BX_OK);
    CHECK(fresh);
    REQUIRE(notify_store_request_take(db, "taken-once", T0 + 1000, &fresh, &err) == BX_OK);
    CHECK(!fresh);
    PQfinish(db);
}

BX_TEST(relayed_outbox_rows_are_pruned)
{
    PGconn *db = connect_db();
    bx_error err = {0};
    for (int i = 0; i < 5; i++)
        REQUIRE(notify_outbox_add(db, "bx.notify.status.v1", "k", "{}", T0, &err) == BX_OK);
    REQUIRE(bx_pg_exec(db,
                       "UPDATE notify.outbox SET sent_at = now() WHERE id IN (SELECT id FROM "
                       "notify.outbox WHERE payload = '{}' ORDER BY id LIMIT 3)",
                       &err) == BX_OK);
    long long before = count_of(db, "SELECT count(*) FROM notify.outbox");
    int deleted = 0;
    /* nothing older than a day ago */
    REQUIRE(notify_outbox_prune(db, T0 - 86400000LL * 400, &deleted, &err) == BX_OK);
    CHECK_INT(deleted, 0);
    REQUIRE(notify_outbox_prune(db, T0 + 86400000LL * 4000, &deleted, &err) == BX_OK);
    CHECK(deleted >= 3);
    CHECK_INT(count_of(db, "SELECT count(*) FROM notify.outbox WHERE sent_at IS NULL AND "
                           "payload = '{}'"),
              2); /* unsent ones stay */
    CHECK_INT(count_of(db, "SELECT count(*) FROM notify.outbox"), before - deleted);
    PQfinish(db);
}

/* Retention (issue 14, operations): finished notifications, their receipts and the requests taken
 * are deleted once older than the kept days by the project clock; what is still to be sent stays.
 */
BX_TEST(finished_rows_are_deleted_after_the_retention)
{
    PGconn *db = connect_db();
    queue_rows(db, "kept", 4);
    bx_error err = {0};
    REQUIRE(bx_pg_exec(db,
                       "UPDATE notify.notification SET state = 'delivered' WHERE request_id IN "
                       "('kept:0', 'kept:1');"
                       "INSERT INTO notify.receipt (notification_id, state, received_at) VALUES "
                       "('ntf-kept', 'delivered', to_timestamp(1795000000));"
                       "INSERT INTO notify.request (request_id, received_at, recipients) VALUES "
                       "('kept:0', to_timestamp(1795000000), 1) ON CONFLICT DO NOTHING",
                       &err) == BX_OK);
    const bx_time_ms day = 86400000LL;
    int deleted = -1;
    REQUIRE(notify_store_prune_finished(db, T0 + 179 * day, 180, &deleted, &err) == BX_OK);
    CHECK_INT(deleted, 0);
    REQUIRE(notify_store_prune_finished(db, T0 + 181 * day, 180, &deleted, &err) == BX_OK);
    CHECK(deleted >= 4);
    CHECK_INT(count_of(db, "SELECT count(*) FROM notify.notification WHERE request_id LIKE "
                           "'kept:%' AND state = 'delivered'"),
              0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM notify.notification WHERE request_id LIKE "
                           "'kept:%' AND state = 'queued'"),
              2);
    CHECK_INT(count_of(db, "SELECT count(*) FROM notify.receipt WHERE notification_id = "
                           "'ntf-kept'"),
              0);
    CHECK_INT(count_of(db, "SELECT count(*) FROM notify.request WHERE request_id = 'kept:0'"), 0);
    PQfinish(db);
}
