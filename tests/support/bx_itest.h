/* bx_itest: helpers for integration tests against the real PostgreSQL, Redis and Kafka started by
 * deploy/local/bx-infra: run bxctl, start a service on a free port, speak HTTP, read topics. */
#ifndef BX_ITEST_H
#define BX_ITEST_H

#include "bx_buf.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The environment value or a default that matches deploy/local/bx-infra. */
const char *itest_env(const char *name, const char *fallback);
/* A fresh temporary folder (caller frees the string). */
char *itest_tmpdir(const char *tag);
void itest_write_file(const char *dir, const char *name, const char *content);
/* Runs argv (NULL-ended) with extra "NAME=value" environment entries (NULL-ended, may be NULL),
 * collects stdout+stderr into out (may be NULL) and returns the exit code. */
int itest_run(const char *const *argv, const char *const *env, bx_buf *out);

/* itest_run that must succeed: the output goes to out, or to a buffer of its own when out is
 * NULL; a failure prints the command's first two words and its output and fails the test. */
void itest_run_ok(const char *const *argv, const char *const *env, bx_buf *out);

/* Closes the group consumer rk and destroys it, waiting for each up to timeout_ms. A consumer
 * whose group the broker stopped answering for (its ACLs taken away, its coordinator moving) can
 * otherwise wait for ever in rd_kafka_consumer_close or rd_kafka_destroy (librdkafka 2.0.2); a
 * destroy that does not end in time is left to the process's exit, and said on stderr. */
void itest_close_consumer(rd_kafka_t *rk, int timeout_ms);

/* A consumer handle with the id of group that never joins it (no automatic commits), to read or
 * set the group's offsets. Caller rd_kafka_destroy()s it. */
rd_kafka_t *itest_group_handle(const char *group);
/* Commits group's offsets at the current end of topic, so the group starts with what comes next
 * on a shared topic (and bxctl settle counts nothing older). Returns those offsets; caller
 * destroys them (rd_kafka_topic_partition_list_destroy). */
rd_kafka_topic_partition_list_t *itest_group_at_end(const char *group, const char *topic);

/* The public holidays every simulated county imports: deploy/policy/cn-public-holidays-2026.csv
 * under BX_SOURCE_DIR (a static string). */
const char *itest_holidays_csv(void);
/* Ids of this process's own: first and the pid in letters, at most 8 characters, so a county
 * simulated at the same time on the shared topics (the main job, another test) never shares a
 * student, class or staff id. The first call's letter holds for the process (a static string). */
const char *itest_id_prefix(char first);
/* Empties Redis database db (its number) on BX_REDIS_URL's server, as the administrator of
 * $BX_RUN_DIR/env. */
void itest_redis_flush(const char *db);
/* "BX_REDIS_URL=<BX_REDIS_URL's server>/<db>" into out (size bytes): a service's setting for
 * Redis database db of the shared server. */
void itest_redis_setting(char *out, size_t size, const char *db);

/* The registry every ingest test uses: county 990001, one primary school IT01 with classes
 * ITC1 (students ITS01..ITS10) and ITC2 (ITS11..ITS15), a second school IT02 (ITS20),
 * calendar it-2026 (autumn term 2026-09-01..2027-01-22, national 2026 holidays).
 * Idempotent. Returns a credential of school IT01 (and of IT02 in *other when non-NULL). */
char *itest_registry_fixture(char **other);

/* Starts bx-ingest on a free loopback port with the given driven-clock file and extra
 * environment; waits until /healthz answers. *port receives the port. */
pid_t itest_ingest_start(const char *clock_file, const char *const *extra_env, int *port);
void itest_stop(pid_t pid);
/* Waits up to timeout_ms for a started process to exit by itself (no signal sent) and reaps it:
 * its exit status as waitpid gives it, or -1 when it is still running (then still started). */
int itest_wait_exit(pid_t pid, int timeout_ms);
/* Starts any service binary with BX_CLOCK=file:<clock_file>, BX_METRICS_LISTEN on a free loopback
 * port and extra environment (NULL-ended, may be NULL); waits until its /healthz answers 200.
 * *port receives the metrics port. Stopped when the test exits, like bx-ingest. */
pid_t itest_service_start(const char *binary, const char *clock_file, const char *const *extra_env,
                          int *port);
/* Starts bx-fakesms (BX_FAKESMS_BIN) on a free loopback port with extra "BX_FAKESMS_<NAME>=value"
 * environment (NULL-ended, may be NULL); waits until its /healthz answers 200. *port receives the
 * port. Stopped when the test exits. */
pid_t itest_fakesms_start(const char *const *extra_env, int *port);
/* The value of one metric line ("name value") from http://127.0.0.1:<port>/metrics, or -1. */
long long itest_metric(int port, const char *name);

/* Creates a fresh database on the test server (bx_itest_<tag>_<pid>_<usec>), migrates it with
 * bxctl, and drops it when the creating process exits. For tests whose tables are shared queues
 * (timers, the outbox) or whose counts must not see other runs. Returns its URL (static storage,
 * valid until exit); a second call returns the same database. */
const char *itest_own_database(const char *tag);
/* Runs one SQL statement (or several, without parameters) on url; a failure stops the test. */
void itest_sql_exec(const char *url, const char *sql);
/* The rows of a query on url, one per line, columns separated by '|' (caller frees). */
/* Runs bxctl with args (NULL-ended) against db_url, on the driven clock at clock_path (NULL:
 * the system clock); its output (stdout and stderr) in *out (caller frees); its exit code. */
int itest_bxctl(const char *db_url, const char *clock_path, const char *const *args, char **out);
/* bxctl (BXCTL_BIN) with args (NULL-ended, at most 22) and the environment entries env
 * (NULL-ended); its output in *out (caller frees), or dropped when out is NULL. Returns its exit
 * code. */
int itest_bxctl_env(const char *const *args, const char *const *env, char **out);
char *itest_sql_rows(const char *url, const char *sql);
/* The number in the first row of sql's rows on url; -1 when there is none. */
long long itest_sql_count(const char *url, const char *sql);
/* The same with $1.. parameters (text). */
char *itest_sql_rows_params(const char *url, const char *sql, int nparams,
                            const char *const *params);
/* Replaces every occurrence of a run's tag in text by "T", in place; returns text. */
char *itest_untag(char *text, const char *tag);

/* Writes a driven clock file set to the given local time ("2026-11-27 18:00"). */
char *itest_clock_file(const char *local_time);

typedef struct itest_response {
    long status;
    bx_buf body;
} itest_response;
/* POSTs body to url; key may be NULL (no Authorization). Caller frees resp->body. */
bool itest_post(const char *url, const char *key, const char *content_type, const char *body,
                size_t len, itest_response *resp);

/* Reads every message of topic that arrives after the call to itest_topic_mark and whose value
 * contains `needle`, until `want` were found or timeout_ms passed. Returns the count; the
 * messages are appended to out, one per line. */
typedef struct itest_mark itest_mark;
itest_mark *itest_topic_mark(const char *topic);
int itest_topic_collect(itest_mark *m, const char *needle, int want, int timeout_ms, bx_buf *out);
void itest_mark_free(itest_mark *m);

#endif
