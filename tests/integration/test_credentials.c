/* Integration test of the credentials deploy/local/bx-infra makes (issue 14, defect 5): every part
 * asks for them, each service works under its own and is refused outside them. Needs an
 * infrastructure made with credentials (bx-infra reset && bx-infra up on one made before). */
#include "bx_itest.h"
#include "bx_kafka.h"
#include "bx_redis.h"
#include "bx_test.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *secrets_dir(void)
{
    static char dir[512];
    snprintf(dir, sizeof(dir), "%s/secrets", itest_env("BX_RUN_DIR", ".run"));
    return dir;
}

static void require_credentials(const char *component)
{
    char marker[600];
    snprintf(marker, sizeof(marker), "%s/%s.auth", secrets_dir(), component);
    FILE *f = fopen(marker, "r");
    if (f == NULL)
        fprintf(stderr,
                "%s of %s was made without credentials: deploy/local/bx-infra reset && "
                "deploy/local/bx-infra up\n",
                component, itest_env("BX_RUN_DIR", ".run"));
    REQUIRE(f != NULL);
    fclose(f);
}

/* A connection to BX_PG_URL as user with the password file passfile (NULL: none at all). */
static PGconn *pg_as(const char *user, const char *passfile)
{
    const char *keys[] = {"dbname", "user", "passfile", "connect_timeout", NULL};
    const char *values[] = {itest_env("BX_PG_URL", "postgresql://127.0.0.1:54329/baoxue"), user,
                            passfile ? passfile : "/nonexistent/pgpass", "5", NULL};
    return PQconnectdbParams(keys, values, 1);
}

static char *pg_one(PGconn *db, const char *sql, char **error)
{
    PGresult *r = PQexec(db, sql);
    char *value = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        value = strdup(PQgetvalue(r, 0, 0));
    else if (error)
        *error = strdup(PQresultErrorMessage(r));
    PQclear(r);
    return value;
}

static PGconn *pg_service(const char *service, const char *user)
{
    char passfile[600];
    snprintf(passfile, sizeof(passfile), "%s/%s.pgpass", secrets_dir(), service);
    PGconn *db = pg_as(user, passfile);
    if (PQstatus(db) != CONNECTION_OK)
        fprintf(stderr, "%s as %s: %s\n", service, user, PQerrorMessage(db));
    REQUIRE(PQstatus(db) == CONNECTION_OK);
    return db;
}

BX_TEST(postgresql_refuses_a_connection_without_password)
{
    require_credentials("postgres");
    PGconn *db = pg_as("bx", NULL);
    CHECK(PQstatus(db) == CONNECTION_BAD);
    CHECK_CONTAINS(PQerrorMessage(db), "password");
    PQfinish(db);
    /* a service's password is not the superuser's */
    char passfile[600];
    snprintf(passfile, sizeof(passfile), "%s/bx-score.pgpass", secrets_dir());
    db = pg_as("bx", passfile);
    CHECK(PQstatus(db) == CONNECTION_BAD);
    PQfinish(db);
}

BX_TEST(each_service_logs_in_as_itself_and_is_no_superuser)
{
    require_credentials("postgres");
    const char *services[][2] = {{"bx-ingest", "bx_ingest_svc"},
                                 {"bx-score", "bx_score_svc"},
                                 {"bx-escalate", "bx_escalate_svc"},
                                 {"bx-notify", "bx_notify_svc"},
                                 {"bx-console", "bx_console_svc"}};
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        PGconn *db = pg_service(services[i][0], services[i][1]);
        char *who = pg_one(db,
                           "SELECT current_user || ' ' || rolsuper || ' ' || rolcreatedb "
                           "|| ' ' || rolcreaterole FROM pg_roles WHERE rolname = current_user",
                           NULL);
        char want[128];
        snprintf(want, sizeof(want), "%s false false false", services[i][1]);
        CHECK_STR(who, want);
        free(who);
        PQfinish(db);
    }
}

BX_TEST(bx_score_cannot_read_guardians_or_names)
{
    require_credentials("postgres");
    PGconn *db = pg_service("bx-score", "bx_score_svc");
    char *error = NULL;
    char *v = pg_one(db, "SELECT count(*) FROM registry.student", NULL);
    CHECK(v != NULL); /* what it needs */
    free(v);
    v = pg_one(db, "SELECT count(*) FROM registry.guardian", &error);
    CHECK(v == NULL);
    CHECK_CONTAINS(error, "permission denied");
    free(error);
    error = NULL;
    v = pg_one(db, "SELECT name FROM registry.student_private LIMIT 1", &error);
    CHECK(v == NULL);
    CHECK_CONTAINS(error, "permission denied");
    free(error);
    error = NULL;
    v = pg_one(db, "SELECT count(*) FROM registry.credential", &error);
    CHECK(v == NULL);
    CHECK_CONTAINS(error, "permission denied");
    free(error);
    PQfinish(db);
}

BX_TEST(bx_ingest_cannot_read_cases_or_write_the_registry)
{
    require_credentials("postgres");
    PGconn *db = pg_service("bx-ingest", "bx_ingest_svc");
    char *error = NULL;
    char *v = pg_one(db, "SELECT count(*) FROM cases.\"case\"", &error);
    CHECK(v == NULL);
    CHECK(error != NULL && strstr(error, "permission denied") != NULL);
    free(v);
    free(error);
    PGresult *r = PQexec(db, "DELETE FROM registry.school WHERE false");
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
    PQclear(r);
    PQfinish(db);
}

/* Runs sql as db's login: true when PostgreSQL refuses it for want of a privilege. */
static bool pg_refused(PGconn *db, const char *sql)
{
    char *error = NULL;
    char *v = pg_one(db, sql, &error);
    bool refused = v == NULL && error != NULL && strstr(error, "permission denied") != NULL;
    if (!refused)
        fprintf(stderr, "%s: not refused (%s)\n", sql, v ? "answered" : error ? error : "?");
    free(v);
    free(error);
    return refused;
}

/* Runs sql as db's login: true when it answers (a column the service's code reads). */
static bool pg_allowed(PGconn *db, const char *sql)
{
    char *error = NULL;
    char *v = pg_one(db, sql, &error);
    if (v == NULL)
        fprintf(stderr, "%s: %s\n", sql, error ? error : "no row");
    bool ok = v != NULL;
    free(v);
    free(error);
    return ok;
}

/* Migration 0020: the columns each service's SQL reads, and no others. */
BX_TEST(bx_notify_reads_guardians_phones_and_not_their_addresses)
{
    require_credentials("postgres");
    PGconn *db = pg_service("bx-notify", "bx_notify_svc");
    /* recipients.c: the guardians' mobile numbers, the primary one first */
    CHECK(pg_allowed(db, "SELECT count(phone) + count(*) FILTER (WHERE is_primary) FROM "
                         "registry.guardian WHERE student_id IS NOT NULL"));
    CHECK(pg_refused(db, "SELECT address FROM registry.guardian LIMIT 1"));
    CHECK(pg_refused(db, "SELECT name FROM registry.guardian LIMIT 1"));
    CHECK(pg_refused(db, "SELECT count(*) FROM registry.guardian WHERE address IS NOT NULL"));
    CHECK(pg_refused(db, "SELECT * FROM registry.guardian LIMIT 1"));
    /* staff: it texts them and names them */
    CHECK(pg_allowed(db, "SELECT count(phone) + count(name) FROM registry.staff"));
    CHECK(pg_refused(db, "SELECT national_id FROM registry.student_private LIMIT 1"));
    CHECK(pg_refused(db, "SELECT flags FROM registry.student_private LIMIT 1"));
    PQfinish(db);
}

BX_TEST(bx_escalate_reads_no_staff_phone_and_no_guardian)
{
    require_credentials("postgres");
    PGconn *db = pg_service("bx-escalate", "bx_escalate_svc");
    CHECK(pg_refused(db, "SELECT phone FROM registry.staff LIMIT 1"));
    CHECK(pg_refused(db, "SELECT count(*) FROM registry.staff WHERE phone IS NOT NULL"));
    CHECK(pg_refused(db, "SELECT * FROM registry.staff LIMIT 1"));
    /* the ledger's task owner (report_queries.c) */
    CHECK(pg_allowed(db, "SELECT count(name) + count(role) + count(school_id) + "
                         "count(township_code) + count(county_code) FROM registry.staff"));
    CHECK(pg_refused(db, "SELECT count(*) FROM registry.guardian"));
    CHECK(pg_refused(db, "SELECT name FROM registry.student_private LIMIT 1"));
    PQfinish(db);
}

BX_TEST(bx_console_reads_no_guardian_contact_or_id_number)
{
    require_credentials("postgres");
    PGconn *db = pg_service("bx-console", "bx_console_svc");
    /* the printed notice names the primary guardian; lists and the ledger name students; a
     * class's risk reasons come from bx-score's profiles (flags, birth date: 0025) */
    CHECK(pg_allowed(db, "SELECT count(name) + count(relation) + count(*) FILTER (WHERE "
                         "is_primary) FROM registry.guardian"));
    CHECK(pg_allowed(db, "SELECT count(name) + count(sex) + count(birth_date) FROM "
                         "registry.student_private"));
    CHECK(pg_allowed(db, "SELECT count(student_id) + count(array_to_string(flags, ',')) + "
                         "count(birth_date) FROM registry.student_private"));
    CHECK(pg_refused(db, "SELECT phone FROM registry.guardian LIMIT 1"));
    CHECK(pg_refused(db, "SELECT address FROM registry.guardian LIMIT 1"));
    CHECK(pg_refused(db, "SELECT national_id FROM registry.student_private LIMIT 1"));
    CHECK(pg_refused(db, "SELECT count(*) FROM registry.student_private WHERE national_id IS "
                         "NOT NULL"));
    /* staff sign in with their mobile number */
    CHECK(pg_allowed(db, "SELECT count(phone) FROM registry.staff"));
    PQfinish(db);
}

BX_TEST(bx_score_and_bx_ingest_read_no_staff_phone)
{
    require_credentials("postgres");
    PGconn *db = pg_service("bx-score", "bx_score_svc");
    CHECK(pg_refused(db, "SELECT count(*) FROM registry.staff"));
    CHECK(pg_allowed(db, "SELECT count(flags) + count(birth_date) FROM "
                         "registry.student_private"));
    CHECK(pg_refused(db, "SELECT national_id FROM registry.student_private LIMIT 1"));
    PQfinish(db);
    db = pg_service("bx-ingest", "bx_ingest_svc");
    CHECK(pg_refused(db, "SELECT phone FROM registry.staff LIMIT 1"));
    CHECK(pg_refused(db, "SELECT name FROM registry.staff LIMIT 1"));
    CHECK(pg_allowed(db, "SELECT count(role) FROM registry.staff"));
    CHECK(pg_refused(db, "SELECT count(*) FROM registry.guardian"));
    CHECK(pg_refused(db, "SELECT count(*) FROM registry.student_private"));
    PQfinish(db);
}

static redisContext *redis_plain(void)
{
    char host[256] = "127.0.0.1";
    int port = 63799;
    const char *url = itest_env("BX_REDIS_URL", "redis://127.0.0.1:63799");
    sscanf(url, "redis://%255[^:]:%d", host, &port);
    redisContext *c = redisConnect(host, port);
    REQUIRE(c != NULL && c->err == 0);
    return c;
}

/* The reply's text (status, error or string), or "" (caller frees). */
static char *redis_say(redisContext *c, const char *const *argv, int argc)
{
    redisReply *r = redisCommandArgv(c, argc, (const char **)argv, NULL);
    REQUIRE(r != NULL);
    char *text = strdup(r->str ? r->str : "");
    freeReplyObject(r);
    return text;
}

static redisContext *redis_as(const char *user)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/redis-%s.pass", secrets_dir(), user);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    char password[256] = "";
    REQUIRE(fgets(password, sizeof(password), f) != NULL);
    fclose(f);
    password[strcspn(password, "\r\n")] = '\0';
    redisContext *c = redis_plain();
    char *said = redis_say(c, (const char *[]){"AUTH", user, password}, 3);
    CHECK_STR(said, "OK");
    free(said);
    return c;
}

BX_TEST(redis_refuses_a_connection_without_credentials)
{
    require_credentials("redis");
    redisContext *c = redis_plain();
    char *said = redis_say(c, (const char *[]){"GET", "bx:s:x:sum"}, 2);
    CHECK_CONTAINS(said, "NOAUTH");
    free(said);
    said = redis_say(c, (const char *[]){"AUTH", "bx-score", "not-the-password"}, 3);
    CHECK_CONTAINS(said, "WRONGPASS");
    free(said);
    redisFree(c);
    /* the URL without credentials, through bx_redis_connect, is refused the same way */
    setenv("BX_REDIS_USERNAME", "bx-score", 1);
    setenv("BX_REDIS_PASSWORD", "not-the-password", 1);
    bx_error err = {0};
    redisContext *r = NULL;
    CHECK_INT(bx_redis_connect(itest_env("BX_REDIS_URL", ""), 300, &r, &err), BX_EFATAL);
    CHECK_CONTAINS(err.msg, "bx-score");
    CHECK(strstr(err.msg, "not-the-password") == NULL);
    unsetenv("BX_REDIS_USERNAME");
    unsetenv("BX_REDIS_PASSWORD");
}

BX_TEST(redis_users_reach_only_their_keys)
{
    require_credentials("redis");
    redisContext *score = redis_as("bx-score");
    char *said = redis_say(score, (const char *[]){"HSET", "bx:s:CREDTEST:sum", "x", "1"}, 4);
    CHECK(strstr(said, "NOPERM") == NULL);
    free(said);
    said = redis_say(score, (const char *[]){"SET", "bx:notify:rate", "1"}, 3);
    CHECK_CONTAINS(said, "NOPERM");
    free(said);
    said = redis_say(score, (const char *[]){"FLUSHDB"}, 1);
    CHECK_CONTAINS(said, "NOPERM");
    free(said);
    said = redis_say(score, (const char *[]){"KEYS", "*"}, 2);
    CHECK_CONTAINS(said, "NOPERM");
    free(said);

    redisContext *console = redis_as("bx-console");
    said = redis_say(console, (const char *[]){"HGET", "bx:s:CREDTEST:sum", "x"}, 3);
    CHECK_STR(said, "1");
    free(said);
    said = redis_say(console, (const char *[]){"HSET", "bx:s:CREDTEST:sum", "x", "2"}, 4);
    CHECK_CONTAINS(said, "NOPERM");
    free(said);

    redisContext *notify = redis_as("bx-notify");
    said = redis_say(notify, (const char *[]){"HGET", "bx:s:CREDTEST:sum", "x"}, 3);
    CHECK_CONTAINS(said, "NOPERM");
    free(said);

    said = redis_say(score, (const char *[]){"DEL", "bx:s:CREDTEST:sum"}, 2);
    free(said);
    redisFree(score);
    redisFree(console);
    redisFree(notify);
}

/* ---- Kafka ---- */

/* A client configuration as the Kafka principal user (its password from bx-infra's secrets), or
 * without credentials when user is NULL. */
static rd_kafka_conf_t *kafka_conf_as(const char *user)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers",
                              itest_env("BX_KAFKA_BROKERS", "127.0.0.1:19092"), errstr,
                              sizeof(errstr)) == RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
    if (user == NULL)
        return conf;
    char path[600], password[256] = "";
    snprintf(path, sizeof(path), "%s/kafka-%s.pass", secrets_dir(), user);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    REQUIRE(fgets(password, sizeof(password), f) != NULL);
    fclose(f);
    password[strcspn(password, "\r\n")] = '\0';
    const char *settings[][2] = {{"security.protocol", "SASL_PLAINTEXT"},
                                 {"sasl.mechanisms", "SCRAM-SHA-256"},
                                 {"sasl.username", user},
                                 {"sasl.password", password}};
    for (size_t i = 0; i < 4; i++)
        REQUIRE(rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) ==
                RD_KAFKA_CONF_OK);
    return conf;
}

/* Produces one message to topic as user; the broker's verdict (RD_KAFKA_RESP_ERR_NO_ERROR when
 * it was written). */
static rd_kafka_resp_err_t delivered;
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivered = m->err;
}

static rd_kafka_resp_err_t produce_as(const char *user, const char *topic)
{
    rd_kafka_conf_t *conf = kafka_conf_as(user);
    char errstr[256];
    rd_kafka_conf_set(conf, "message.timeout.ms", "10000", errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_resp_err_t e =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("credtest", 8),
                          RD_KAFKA_V_VALUE("{}", 2), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_flush(rk, 15000);
    else
        delivered = e;
    rd_kafka_destroy(rk);
    return delivered;
}

/* Reads topic from its beginning as user in group; the first error the consumer meets, or
 * RD_KAFKA_RESP_ERR_NO_ERROR when it got a message or reached the end without one. */
static rd_kafka_resp_err_t consume_as(const char *user, const char *group, const char *topic)
{
    rd_kafka_conf_t *conf = kafka_conf_as(user);
    char errstr[256];
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(rk != NULL);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t result = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    bool done = result != RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < 60 && !done; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            result = RD_KAFKA_RESP_ERR_NO_ERROR;
            done = true;
        } else if (m->err != RD_KAFKA_RESP_ERR__TRANSPORT) {
            result = m->err;
            done = true;
        }
        rd_kafka_message_destroy(m);
    }
    if (!done)
        result = RD_KAFKA_RESP_ERR__TIMED_OUT;
    itest_close_consumer(rk, 10000);
    return result;
}

static bool denied(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;
}

BX_TEST(kafka_refuses_a_client_without_credentials)
{
    require_credentials("kafka");
    rd_kafka_resp_err_t e = produce_as(NULL, BX_TOPIC_ATTENDANCE);
    CHECK(e != RD_KAFKA_RESP_ERR_NO_ERROR);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "an unauthenticated client wrote to %s\n", BX_TOPIC_ATTENDANCE);
}

BX_TEST(bx_ingest_writes_its_topics_and_not_bx_risk)
{
    require_credentials("kafka");
    /* a scratch copy of its own topic (prefixed ACLs), so the shared topic gets nothing */
    char own[128];
    snprintf(own, sizeof(own), "%s.credtest-%d", BX_TOPIC_DLQ, (int)getpid());
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(itest_env("BX_KAFKA_BROKERS", ""), (const char *[]){own},
                                   (const int[]){1}, 1, 15000, &err) == BX_OK);
    CHECK_INT(produce_as("bx-ingest", own), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_resp_err_t e = produce_as("bx-ingest", BX_TOPIC_RISK);
    CHECK(denied(e));
    if (!denied(e))
        fprintf(stderr, "bx-ingest to %s: %s\n", BX_TOPIC_RISK, rd_kafka_err2name(e));
    e = produce_as("bx-score", BX_TOPIC_NOTIFY_REQUESTS);
    CHECK(denied(e));
}

BX_TEST(the_analyst_reads_only_the_analytics_streams)
{
    require_credentials("kafka");
    char group[64];
    snprintf(group, sizeof(group), "analyst.credtest.%d", (int)getpid());
    rd_kafka_resp_err_t e = consume_as("analyst", group, BX_TOPIC_ATTENDANCE);
    CHECK(denied(e));
    if (!denied(e))
        fprintf(stderr, "analyst on %s: %s\n", BX_TOPIC_ATTENDANCE, rd_kafka_err2name(e));
    CHECK(denied(consume_as("analyst", group, BX_TOPIC_DLQ)));
    CHECK_INT(consume_as("analyst", group, BX_TOPIC_ANALYTICS_RISK), RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(denied(produce_as("analyst", BX_TOPIC_ANALYTICS_RISK)));
}

BX_TEST(the_operator_reads_the_dead_letters_and_nothing_else)
{
    require_credentials("kafka");
    char group[64];
    snprintf(group, sizeof(group), "operator.credtest.%d", (int)getpid());
    CHECK_INT(consume_as("operator", group, BX_TOPIC_DLQ), RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(denied(consume_as("operator", group, BX_TOPIC_ATTENDANCE)));
    /* a service may not read another's stream in a group of its own either */
    char score_group[64];
    snprintf(score_group, sizeof(score_group), "bx-score-credtest-%d", (int)getpid());
    CHECK(denied(consume_as("bx-score", score_group, BX_TOPIC_NOTIFY_REQUESTS)));
}

/* ---- the pseudonym key (issue 14, defect 6) ---- */

BX_TEST(pseudonymising_services_refuse_to_start_without_a_key)
{
    const char *bins[] = {itest_env("BX_SCORE_BIN", BX_SCORE_BIN),
                          itest_env("BX_ESCALATE_BIN", BX_ESCALATE_BIN)};
    for (size_t i = 0; i < 2; i++) {
        for (int empty = 0; empty < 2; empty++) {
            bx_buf out;
            bx_buf_init(&out, 0);
            /* unset (an empty value counts as unset for a required setting) */
            const char *env[] = {"BX_PSEUDONYM_KEY=", "BX_METRICS_LISTEN=", NULL};
            const char *argv[] = {bins[i], NULL};
            if (empty == 0)
                unsetenv("BX_PSEUDONYM_KEY");
            int rc = itest_run(argv, empty ? env : env + 1, &out);
            CHECK(rc != 0);
            CHECK_CONTAINS(out.data, "BX_PSEUDONYM_KEY: is required");
            bx_buf_free(&out);
        }
    }
}

/* ---- bx-notify's receipt endpoint ---- */

/* A free loopback port (bound to 0 and read back). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts bx-notify with the file provider (which does not sign receipts) on scratch topics, its
 * receipt endpoint on a free port; token NULL: none. Returns the receipt port. */
static int notify_start(const char *token, pid_t *pid)
{
    static int run;
    char requests[96], status[96];
    snprintf(requests, sizeof(requests), "bx.itest.credtest.requests.%d.%d", (int)getpid(), run);
    snprintf(status, sizeof(status), "bx.itest.credtest.status.%d.%d", (int)getpid(), run++);
    bx_error err = {0};
    REQUIRE(bx_kafka_create_topics(itest_env("BX_KAFKA_BROKERS", ""),
                                   (const char *[]){requests, status}, (const int[]){1, 1}, 2,
                                   15000, &err) == BX_OK);
    int port = free_port();
    static char env_req[160], env_status[160], env_listen[64], env_token[200], env_group[96],
        env_file[200];
    snprintf(env_req, sizeof(env_req), "BX_NOTIFY_REQUESTS_TOPIC=%s", requests);
    snprintf(env_status, sizeof(env_status), "BX_NOTIFY_STATUS_TOPIC=%s", status);
    snprintf(env_listen, sizeof(env_listen), "BX_NOTIFY_RECEIPT_LISTEN=127.0.0.1:%d", port);
    snprintf(env_token, sizeof(env_token), "BX_NOTIFY_RECEIPT_TOKEN=%s", token ? token : "");
    snprintf(env_group, sizeof(env_group), "BX_CONSUMER_GROUP=bx-notify-credtest-%d-%d",
             (int)getpid(), run);
    snprintf(env_file, sizeof(env_file), "BX_NOTIFY_PROVIDER_FILE=/tmp/bx-credtest-sms-%d.jsonl",
             (int)getpid());
    const char *env[] = {
        env_req, env_status, env_listen, env_token, env_group, env_file, "BX_NOTIFY_PROVIDER=file",
        NULL};
    int metrics = 0;
    char *clock = itest_clock_file("2026-11-27 10:00");
    *pid = itest_service_start(itest_env("BX_NOTIFY_BIN", BX_NOTIFY_BIN), clock, env, &metrics);
    free(clock);
    return port;
}

static long post_receipt(int port, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    itest_response resp = {0};
    REQUIRE(itest_post(url, NULL, "application/json", "[]", 2, &resp));
    bx_buf_free(&resp.body);
    return resp.status;
}

BX_TEST(unsigned_receipts_only_at_the_token_path)
{
    const char *token = "credtest-receipt-token-0123456789";
    pid_t pid = 0;
    int port = notify_start(token, &pid);
    CHECK_INT(post_receipt(port, "/v1/receipts"), 404);
    CHECK_INT(post_receipt(port, "/v1/receipts/credtest-receipt-token-0123456780"), 404);
    long ok = post_receipt(port, "/v1/receipts/credtest-receipt-token-0123456789");
    CHECK(ok != 404 && ok != 401); /* the file provider's parser answers the empty list */
    itest_stop(pid);
    /* without a token, the file provider's (unsigned) receipts are refused */
    port = notify_start(NULL, &pid);
    CHECK_INT(post_receipt(port, "/v1/receipts"), 401);
    itest_stop(pid);
}
