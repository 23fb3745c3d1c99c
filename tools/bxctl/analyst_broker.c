/* analyst_broker: an analyst's SCRAM credential (Kafka's ConfigCommand) and ACLs (librdkafka). */
#include "analyst_broker.h"
#include "bx_buf.h"
#include "bx_clock.h"
#include "bx_config.h"
#include "bx_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ConfigCommand's main class up to Kafka 3.9, and from 4.0 on. */
static const char *const config_command_classes[] = {"kafka.admin.ConfigCommand",
                                                     "org.apache.kafka.tools.ConfigCommand"};
#define TOOL_TIMEOUT_MS  120000
#define TOOL_OUTPUT_MAX  (256 * 1024)
#define ADMIN_TIMEOUT_MS 30000

const char *analyst_broker_protocol(void)
{
    const char *p = getenv("BX_KAFKA_SECURITY_PROTOCOL");
    return p && *p ? p : "SASL_PLAINTEXT";
}

static const char *admin_mechanism(void)
{
    const char *m = getenv("BX_KAFKA_SASL_MECHANISM");
    return m && *m ? m : "SCRAM-SHA-256";
}

bx_status analyst_broker_ready(const analyst_broker *b, bx_error *err)
{
    const char *user = getenv("BX_KAFKA_USERNAME");
    if (user == NULL || *user == '\0')
        return BX_ERR(err, BX_EINVAL,
                      "BX_KAFKA_USERNAME is not set: this broker takes no credentials, so it has "
                      "no analysts (an installation with SASL/SCRAM has them; bxctl signs in as "
                      "its administrator)");
    if (b->brokers == NULL || *b->brokers == '\0')
        return BX_ERR(err, BX_EINVAL, "BX_KAFKA_BROKERS: not set");
    return BX_OK;
}

/* ---- Kafka's ConfigCommand ---- */

/* A secret goes into a properties file and a JVM argument file inside double quotes: refuse what
 * would need escaping there, rather than escape it twice. */
static bool quotable(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            return false;
    return true;
}

static bx_status write_private(const char *path, const char *text, bx_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return BX_ERR(err, BX_EIO, "%s: %s", path, strerror(errno));
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t w = write(fd, text + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return BX_ERR(err, BX_EIO, "%s: %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (close(fd) != 0)
        return BX_ERR(err, BX_EIO, "%s: %s", path, strerror(errno));
    return BX_OK;
}

/* Overwrites the file's bytes before removing it; a missing file is fine. */
static void remove_private(const char *path)
{
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_size > 0) {
            char zeros[512] = {0};
            for (off_t left = st.st_size; left > 0;) {
                size_t k = left < (off_t)sizeof(zeros) ? (size_t)left : sizeof(zeros);
                ssize_t w = write(fd, zeros, k);
                if (w <= 0)
                    break;
                left -= w;
            }
        }
        close(fd);
    }
    unlink(path);
}

/* Replaces every occurrence of secret in text (NUL-terminated, in place) by "****"; secret is at
 * least 4 bytes, so the text does not grow. */
static void mask(char *text, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (text == NULL || n < 4)
        return;
    for (char *at = strstr(text, secret); at; at = strstr(at + 4, secret)) {
        memcpy(at, "****", 4);
        memmove(at + 4, at + n, strlen(at + n) + 1);
    }
}

/* The line of the tool's output that says what went wrong: the last "Caused by:", else the first
 * line that is not the JVM's or log4j's noise or a stack frame. */
static void tool_reason(const char *out, char *reason, size_t size)
{
    snprintf(reason, size, "no output");
    const char *first = NULL, *caused = NULL;
    for (const char *line = out; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        bool noise = strncmp(line, "log4j:", 6) == 0 || strncmp(line, "SLF4J:", 6) == 0 ||
                     line[0] == '\t' || strncmp(line, "    at ", 7) == 0 || len == 0;
        if (!noise && strncmp(line, "Caused by: ", 11) == 0)
            caused = line;
        else if (!noise && first == NULL)
            first = line;
        line = end ? end + 1 : NULL;
    }
    const char *pick = caused ? caused : first;
    if (pick) {
        size_t len = strcspn(pick, "\n");
        snprintf(reason, size, "%.*s", (int)(len < 300 ? len : 300), pick);
    }
}

/* Runs `java -cp <home>/libs/'*' @argfile` with stdout and stderr into out (at most
 * TOOL_OUTPUT_MAX bytes kept), at most TOOL_TIMEOUT_MS; *exit_code is the process's exit code
 * (127: java could not be started, -1: killed at the deadline). */
static bx_status run_java(const analyst_broker *b, const char *argfile, bx_buf *out, int *exit_code,
                          bx_error *err)
{
    char java[PATH_MAX], cp[PATH_MAX], at_file[PATH_MAX + 1];
    const char *java_home = getenv("JAVA_HOME");
    if (java_home && *java_home)
        snprintf(java, sizeof(java), "%s/bin/java", java_home);
    else
        snprintf(java, sizeof(java), "java");
    snprintf(cp, sizeof(cp), "%s/libs/*", b->kafka_home);
    snprintf(at_file, sizeof(at_file), "@%s", argfile);
    char *const argv[] = {java,
                          "-Xmx256m",
                          "-XX:TieredStopAtLevel=1",
                          "-XX:+UseSerialGC",
                          "-Djava.awt.headless=true",
                          "-cp",
                          cp,
                          at_file,
                          NULL};
    int fds[2];
    if (pipe(fds) != 0)
        return BX_ERR(err, BX_EIO, "pipe: %s", strerror(errno));
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return BX_ERR(err, BX_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        execvp(java, argv);
        _exit(127);
    }
    close(fds[1]);
    long long deadline = bx_monotonic_ms() + TOOL_TIMEOUT_MS;
    bool killed = false;
    for (;;) {
        long long left = deadline - bx_monotonic_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int r = poll(&p, 1, (int)(left < 1000 ? left : 1000));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char chunk[4096];
        ssize_t got = read(fds[0], chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        /* past the maximum (or out of memory) the rest is dropped: what was kept tells why */
        if (out->len + (size_t)got < TOOL_OUTPUT_MAX &&
            bx_buf_append(out, chunk, (size_t)got) != BX_OK)
            continue;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (bx_buf_puts(out, "") != BX_OK) /* NUL-terminated even when nothing was read */
        return BX_ERR(err, BX_ENOMEM, "Kafka's ConfigCommand: out of memory");
    *exit_code = killed ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return BX_OK;
}

/* The Kafka installation's libs/ folder and bxctl's administrator (BX_KAFKA_USERNAME and its
 * password, which the caller wipes and frees) as Kafka's tools can be given them. */
static bx_status tool_admin(const analyst_broker *b, const char **user, char **password,
                            bx_error *err)
{
    char libs[PATH_MAX];
    struct stat st;
    if (b->kafka_home == NULL || *b->kafka_home == '\0')
        return BX_ERR(err, BX_EINVAL,
                      "BX_KAFKA_HOME: not set: the folder of a Kafka installation (its libs/ "
                      "jars; bx-infra's is .cache/kafka-3.9.1), for Kafka's ConfigCommand");
    snprintf(libs, sizeof(libs), "%s/libs", b->kafka_home);
    if (stat(libs, &st) != 0 || !S_ISDIR(st.st_mode))
        return BX_ERR(err, BX_EINVAL,
                      "BX_KAFKA_HOME: \"%s\" has no libs/ folder (a Kafka installation, e.g. "
                      "bx-infra's .cache/kafka-3.9.1)",
                      b->kafka_home);
    *user = getenv("BX_KAFKA_USERNAME");
    bx_status s = bx_conf_secret("BX_KAFKA_PASSWORD", password, err);
    if (s == BX_OK && *password == NULL)
        return BX_ERR(err, BX_EINVAL,
                      "BX_KAFKA_USERNAME is set without BX_KAFKA_PASSWORD or "
                      "BX_KAFKA_PASSWORD_FILE");
    if (s == BX_OK && (!quotable(*user) || !quotable(*password)))
        s = BX_ERR(err, BX_EINVAL,
                   "BX_KAFKA_USERNAME or BX_KAFKA_PASSWORD: holds a quote, a backslash or a "
                   "control character, which Kafka's tools cannot be given");
    return s;
}

/* The administrator's client properties for Kafka's tools, into the private file props. */
static bx_status tool_properties(const char *props, const char *user, const char *password,
                                 bx_error *err)
{
    const char *mech = admin_mechanism();
    const char *module = strcmp(mech, "PLAIN") == 0
                             ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                             : "org.apache.kafka.common.security.scram.ScramLoginModule";
    bx_buf text;
    bx_buf_init(&text, 0);
    bx_status s = bx_buf_printf(&text,
                                "security.protocol=%s\nsasl.mechanism=%s\nsasl.jaas.config=%s "
                                "required username=\"%s\" password=\"%s\";\n",
                                analyst_broker_protocol(), mech, module, user, password);
    IFOK(s, write_private(props, text.data, err));
    if (text.data)
        explicit_bzero(text.data, text.len);
    bx_buf_free(&text);
    return s;
}

/* Runs ConfigCommand's main class cls with args (NULL-ended) after --bootstrap-server and
 * --command-config props, through the private argument file argfile; out holds what it said with
 * the secrets masked. *again is set when the class is not in this Kafka and it is not the last
 * one to try. */
static bx_status tool_run(const analyst_broker *b, const char *cls, bool last, const char *props,
                          const char *argfile, const char *const *args, const char *password,
                          const char *secret, bx_buf *out, bool *again, bx_error *err)
{
    *again = false;
    bx_buf text;
    bx_buf_init(&text, 0);
    bx_status s = BX_OK;
    /* Everything after the java options, the main class first: the launcher reads @files only
     * up to the main class, so it must come from the file too. */
    const char *head[] = {cls, "--bootstrap-server", b->brokers, "--command-config", props};
    for (size_t i = 0; s == BX_OK && i < sizeof(head) / sizeof(head[0]); i++)
        s = bx_buf_printf(&text, "\"%s\"\n", head[i]);
    for (size_t i = 0; s == BX_OK && args[i]; i++)
        s = bx_buf_printf(&text, "\"%s\"\n", args[i]);
    if (s == BX_OK) {
        remove_private(argfile);
        s = write_private(argfile, text.data, err);
    }
    if (text.data)
        explicit_bzero(text.data, text.len);
    bx_buf_free(&text);
    int code = 0;
    bx_buf_reset(out);
    IFOK(s, run_java(b, argfile, out, &code, err));
    remove_private(argfile);
    mask(out->data, password);
    mask(out->data, secret);
    if (s != BX_OK || code == 0)
        return s;
    if (code == 127)
        return BX_ERR(err, BX_EINVAL,
                      "java could not be started (JAVA_HOME or PATH): Kafka's ConfigCommand "
                      "needs a Java runtime");
    if (!last && out->data && strstr(out->data, "Could not find or load main class")) {
        *again = true; /* Kafka 4: the other class name */
        return BX_OK;
    }
    char reason[320];
    tool_reason(out->data, reason, sizeof(reason));
    if (code == -1)
        return BX_ERR(err, BX_ETIMEOUT, "Kafka's ConfigCommand did not finish within %d s",
                      TOOL_TIMEOUT_MS / 1000);
    if (out->data && strstr(out->data, "ResourceNotFoundException"))
        return BX_ERR(err, BX_ENOTFOUND, "Kafka's ConfigCommand: %s", reason);
    return BX_ERR(err, BX_EIO, "Kafka's ConfigCommand (exit %d): %s", code, reason);
}

/* One ConfigCommand on users: args (NULL-ended) after --bootstrap-server and --command-config;
 * secret (may be NULL) is masked in what is shown besides the administrator's password. */
static bx_status config_command(const analyst_broker *b, const char *const *args,
                                const char *secret, bx_buf *out, bx_error *err)
{
    const char *user = NULL;
    char *password = NULL;
    bx_status s = tool_admin(b, &user, &password, err);
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX], props[PATH_MAX + 32], argfile[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/bxctl-analyst-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    bool made = s == BX_OK && mkdtemp(dir) != NULL; /* mode 700 */
    if (s == BX_OK && !made)
        s = BX_ERR(err, BX_EIO, "a private folder in %s: %s", tmp && *tmp ? tmp : "/tmp",
                   strerror(errno));
    snprintf(props, sizeof(props), "%s/admin.properties", dir);
    snprintf(argfile, sizeof(argfile), "%s/config.args", dir);
    IFOK(s, tool_properties(props, user, password, err));
    bool again = true;
    for (size_t c = 0; s == BX_OK && again && c < 2; c++)
        s = tool_run(b, config_command_classes[c], c == 1, props, argfile, args, password, secret,
                     out, &again, err);
    if (made) {
        remove_private(argfile);
        remove_private(props);
        rmdir(dir);
    }
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    return s;
}

bx_status analyst_broker_scram_set(const analyst_broker *b, const char *principal,
                                   const char *password, int iterations, bx_error *err)
{
    if (!quotable(password) || strchr(password, ',') || strchr(password, ']'))
        return BX_ERR(err, BX_EINVAL, "%s: the password has characters ConfigCommand cannot take",
                      principal);
    char config[256];
    int n = snprintf(config, sizeof(config), ANALYST_MECHANISM "=[iterations=%d,password=%s]",
                     iterations, password);
    if (n < 0 || (size_t)n >= sizeof(config))
        return BX_ERR(err, BX_EINVAL, "%s: the password is too long", principal);
    const char *args[] = {"--alter", "--add-config",  config,    "--entity-type",
                          "users",   "--entity-name", principal, NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    bx_status s = config_command(b, args, password, &out, err);
    explicit_bzero(config, sizeof(config));
    bx_buf_free(&out);
    if (s != BX_OK) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return BX_ERR(err, s, "User:%s's " ANALYST_MECHANISM " credential: %s", principal, why);
    }
    return BX_OK;
}

bx_status analyst_broker_scram_delete(const analyst_broker *b, const char *principal, bx_error *err)
{
    const char *args[] = {"--alter", "--delete-config", ANALYST_MECHANISM, "--entity-type",
                          "users",   "--entity-name",   principal,         NULL};
    bx_buf out;
    bx_buf_init(&out, 0);
    bx_status s = config_command(b, args, NULL, &out, err);
    bx_buf_free(&out);
    if (s != BX_OK) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return BX_ERR(err, s, "removing User:%s's " ANALYST_MECHANISM " credential: %s", principal,
                      why);
    }
    return BX_OK;
}

/* ---- ACLs (librdkafka's admin API) ---- */

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

/* bxctl's administrator's clients log nothing: the caller says what failed. */
static const char *const quiet_settings[] = {"log_level", "0", NULL};

/* An admin request as bxctl's administrator (bx_kafka_conf_credentials), its client's log quiet:
 * the caller says what failed. */
static bx_status admin_begin(const analyst_broker *b, rd_kafka_admin_op_t op, bx_kafka_admin *a,
                             bx_error *err)
{
    bx_status s = bx_kafka_admin_begin(a, b->brokers, quiet_settings, op, err);
    char errstr[256];
    if (s == BX_OK)
        rd_kafka_AdminOptions_set_request_timeout(a->opts, ADMIN_TIMEOUT_MS, errstr,
                                                  sizeof(errstr));
    return s;
}

bx_status analyst_broker_acls_create(const analyst_broker *b, const char *principal,
                                     const char *group_prefix, bx_error *err)
{
    char user[160], errstr[256], what[200];
    snprintf(user, sizeof(user), "User:%s", principal);
    snprintf(what, sizeof(what), "ACLs of %s", user);
    const struct {
        rd_kafka_ResourceType_t type;
        const char *name;
        rd_kafka_AclOperation_t op;
    } want[] = {
        {RD_KAFKA_RESOURCE_TOPIC, ANALYST_TOPIC_PREFIX, RD_KAFKA_ACL_OPERATION_READ},
        {RD_KAFKA_RESOURCE_TOPIC, ANALYST_TOPIC_PREFIX, RD_KAFKA_ACL_OPERATION_DESCRIBE},
        {RD_KAFKA_RESOURCE_GROUP, group_prefix, RD_KAFKA_ACL_OPERATION_READ},
    };
    enum { N = sizeof(want) / sizeof(want[0]) };
    bx_kafka_admin a;
    bx_status s = admin_begin(b, RD_KAFKA_ADMIN_OP_CREATEACLS, &a, err);
    rd_kafka_AclBinding_t *bindings[N] = {0};
    for (size_t i = 0; s == BX_OK && i < N; i++) {
        bindings[i] = rd_kafka_AclBinding_new(
            want[i].type, want[i].name, RD_KAFKA_RESOURCE_PATTERN_PREFIXED, user, "*", want[i].op,
            RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, errstr, sizeof(errstr));
        if (bindings[i] == NULL)
            s = BX_ERR(err, BX_EINVAL, "ACL of %s on %s: %s", user, want[i].name, errstr);
    }
    if (s == BX_OK) {
        rd_kafka_CreateAcls(a.rk, bindings, N, a.opts, a.q);
        s = bx_kafka_admin_wait(&a, b->brokers, ADMIN_TIMEOUT_MS + 5000, what, err);
    }
    if (s == BX_OK) {
        size_t n = 0;
        const rd_kafka_acl_result_t **results =
            rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(a.answer), &n);
        for (size_t i = 0; i < n && s == BX_OK; i++) {
            const rd_kafka_error_t *e = rd_kafka_acl_result_error(results[i]);
            if (e)
                s = BX_ERR(err, BX_EIO, "ACL of %s on %s: %s", user, i < N ? want[i].name : "?",
                           rd_kafka_error_string(e));
        }
    }
    for (size_t i = 0; i < N; i++)
        if (bindings[i])
            rd_kafka_AclBinding_destroy(bindings[i]);
    bx_kafka_admin_end(&a);
    return s;
}

bx_status analyst_broker_acls_delete(const analyst_broker *b, const char *principal, int *removed,
                                     bx_error *err)
{
    char user[160], errstr[256], what[200];
    snprintf(user, sizeof(user), "User:%s", principal);
    snprintf(what, sizeof(what), "removing the ACLs of %s", user);
    if (removed)
        *removed = 0;
    rd_kafka_AclBindingFilter_t *filter = rd_kafka_AclBindingFilter_new(
        RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, user, NULL,
        RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof(errstr));
    if (filter == NULL)
        return BX_ERR(err, BX_EINVAL, "ACLs of %s: %s", user, errstr);
    bx_kafka_admin a;
    bx_status s = admin_begin(b, RD_KAFKA_ADMIN_OP_DELETEACLS, &a, err);
    if (s == BX_OK) {
        rd_kafka_DeleteAcls(a.rk, &filter, 1, a.opts, a.q);
        s = bx_kafka_admin_wait(&a, b->brokers, ADMIN_TIMEOUT_MS + 5000, what, err);
    }
    if (s == BX_OK) {
        size_t n = 0;
        const rd_kafka_DeleteAcls_result_response_t **responses =
            rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(a.answer), &n);
        for (size_t i = 0; i < n && s == BX_OK; i++) {
            const rd_kafka_error_t *e = rd_kafka_DeleteAcls_result_response_error(responses[i]);
            size_t matched = 0;
            if (e)
                s = BX_ERR(err, BX_EIO, "%s: %s", what, rd_kafka_error_string(e));
            else
                (void)rd_kafka_DeleteAcls_result_response_matching_acls(responses[i], &matched);
            if (removed)
                *removed += (int)matched;
        }
    }
    rd_kafka_AclBinding_destroy(filter);
    bx_kafka_admin_end(&a);
    return s;
}

/* ---- the analyst's first sign-in ---- */

typedef struct sign_in {
    rd_kafka_resp_err_t last;
    char why[256];
} sign_in;

static void sign_in_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)rk;
    sign_in *si = opaque;
    si->last = (rd_kafka_resp_err_t)code;
    snprintf(si->why, sizeof(si->why), "%s", reason);
}

/* Topics prefixed ANALYST_TOPIC_PREFIX in a metadata answer, without an error. */
static int analytics_topics(const struct rd_kafka_metadata *md)
{
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            strncmp(md->topics[i].topic, ANALYST_TOPIC_PREFIX, strlen(ANALYST_TOPIC_PREFIX)) == 0)
            n++;
    return n;
}

bx_status analyst_broker_wait_usable(const analyst_broker *b, const char *user,
                                     const char *password, int timeout_ms, bx_error *err)
{
    rd_kafka_t *admin = NULL;
    bx_status s = bx_kafka_client_new(RD_KAFKA_PRODUCER, b->brokers, quiet_settings, &admin, err);
    if (s != BX_OK)
        return s;
    const struct rd_kafka_metadata *md = NULL;
    int want = 0;
    if (rd_kafka_metadata(admin, 1, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        want = analytics_topics(md);
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(admin);

    sign_in si = {.last = RD_KAFKA_RESP_ERR_NO_ERROR};
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {{"bootstrap.servers", b->brokers},
                                 {"security.protocol", analyst_broker_protocol()},
                                 {"sasl.mechanisms", ANALYST_MECHANISM},
                                 {"sasl.username", user},
                                 {"sasl.password", password},
                                 {"reconnect.backoff.max.ms", "1000"}};
    for (size_t i = 0; s == BX_OK && i < sizeof(settings) / sizeof(settings[0]); i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK)
            s = BX_ERR(err, BX_EINVAL, "%s's client: %s", user,
                       i == 4 ? "sasl.password refused" : errstr);
    if (s != BX_OK) {
        rd_kafka_conf_destroy(conf);
        return s;
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set_error_cb(conf, sign_in_error);
    rd_kafka_conf_set_opaque(conf, &si);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return BX_ERR(err, BX_EFATAL, "%s's client: %s", user, errstr);
    }
    long long deadline = bx_monotonic_ms() + timeout_ms;
    int seen = -1;
    for (;;) {
        md = NULL;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            seen = analytics_topics(md);
            rd_kafka_metadata_destroy(md);
            if (want == 0 || seen > 0)
                break;
        }
        if (bx_monotonic_ms() >= deadline) {
            if (seen >= 0)
                s = BX_ERR(err, BX_ETIMEOUT,
                           "User:%s signs in but sees none of the %d " ANALYST_TOPIC_PREFIX
                           "* topics after %d ms (its ACLs)",
                           user, want, timeout_ms);
            else
                s = BX_ERR(err, BX_ETIMEOUT, "User:%s cannot sign in after %d ms: %s", user,
                           timeout_ms, si.why[0] ? si.why : "no answer");
            break;
        }
        rd_kafka_poll(rk, 200);
    }
    rd_kafka_destroy(rk);
    return s;
}
