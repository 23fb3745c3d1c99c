/* bx_itest_attack: slow and idle clients held against an HTTP service, for the edge tests. */
#include "bx_itest_attack.h"
#include "bx_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int itest_connect_from(const char *from, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &src.sin_addr);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

void itest_fd_limit(long need)
{
    struct rlimit r;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &r) == 0);
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < (rlim_t)need) {
        if (r.rlim_max != RLIM_INFINITY && r.rlim_max < (rlim_t)need) {
            BX_FAIL_AT("this test needs %ld open files and the hard limit is %lu: raise it "
                       "(ulimit -Hn %ld) before running it",
                       need, (unsigned long)r.rlim_max, need);
            exit(1);
        }
        r.rlim_cur = (rlim_t)need;
        REQUIRE(setrlimit(RLIMIT_NOFILE, &r) == 0);
    }
}

long itest_fd_limit_of(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/limits", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long soft = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Max open files", 14) == 0) {
            char value[32];
            if (sscanf(line + 14, "%31s", value) == 1)
                soft = strcmp(value, "unlimited") == 0 ? 1L << 30 : strtol(value, NULL, 10);
        }
    fclose(f);
    return soft;
}

struct itest_attack {
    itest_attack_conf conf;
    pthread_t thread;
    atomic_bool stop;
    int n;
    int *fds;
    long long *opened, *reopen;
    size_t *sent;
    struct pollfd *pfd;
    itest_attack_result result;
    long long open_samples, open_sum;
};

static void source_address(const itest_attack *a, int i, char *out, size_t size)
{
    snprintf(out, size, "127.0.0.%d", a->conf.first_address + i % a->conf.addresses);
}

static void *attack_main(void *arg)
{
    itest_attack *a = arg;
    const int n = a->n, nslow = a->conf.slow;
    const size_t header_len = strlen(a->conf.slow_header);
    long long last_byte = 0, last_sample = 0;
    while (!atomic_load(&a->stop)) {
        long long now = now_ms();
        for (int i = 0; i < n; i++)
            if (a->fds[i] < 0 && now >= a->reopen[i]) {
                char from[32];
                source_address(a, i, from, sizeof(from));
                a->fds[i] = itest_connect_from(from, a->conf.port);
                a->opened[i] = now;
                a->sent[i] = 0;
                a->reopen[i] = now + 1000;
            }
        bool byte_due = now - last_byte >= 1000;
        if (byte_due)
            last_byte = now;
        int open = 0;
        for (int i = 0; i < n; i++) {
            a->pfd[i].fd = a->fds[i];
            a->pfd[i].events = POLLIN;
            a->pfd[i].revents = 0;
            open += a->fds[i] >= 0;
            if (byte_due && i < nslow && a->fds[i] >= 0 && a->sent[i] < header_len &&
                send(a->fds[i], a->conf.slow_header + a->sent[i], 1, MSG_NOSIGNAL) == 1)
                a->sent[i]++;
        }
        if (now - last_sample >= 100) {
            last_sample = now;
            a->open_samples++;
            a->open_sum += open;
            if (open > a->result.open_max)
                a->result.open_max = open;
        }
        if (poll(a->pfd, (nfds_t)n, 100) <= 0)
            continue;
        now = now_ms();
        for (int i = 0; i < n; i++) {
            if (a->fds[i] < 0 || !(a->pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[512];
            ssize_t got = recv(a->fds[i], buf, sizeof(buf), 0);
            if (got > 0 || (got < 0 && errno == EAGAIN))
                continue; /* an answer (408, 400) before the close */
            a->result.closed_by_server++;
            if (i < nslow && now - a->opened[i] > a->result.longest_slow_ms)
                a->result.longest_slow_ms = now - a->opened[i];
            close(a->fds[i]);
            a->fds[i] = -1;
            a->reopen[i] = now + 1000;
        }
    }
    long long now = now_ms();
    for (int i = 0; i < n; i++)
        if (a->fds[i] >= 0) {
            if (i < nslow && now - a->opened[i] > a->result.still_open_at_end_ms)
                a->result.still_open_at_end_ms = now - a->opened[i];
            close(a->fds[i]);
        }
    return NULL;
}

itest_attack *itest_attack_start(const itest_attack_conf *conf)
{
    REQUIRE(conf->addresses >= 1 && conf->first_address >= 2 &&
            conf->first_address + conf->addresses <= 255);
    itest_attack *a = calloc(1, sizeof(*a));
    REQUIRE(a != NULL);
    a->conf = *conf;
    a->n = conf->slow + conf->idle;
    a->fds = calloc((size_t)a->n, sizeof(*a->fds));
    a->opened = calloc((size_t)a->n, sizeof(*a->opened));
    a->reopen = calloc((size_t)a->n, sizeof(*a->reopen));
    a->sent = calloc((size_t)a->n, sizeof(*a->sent));
    a->pfd = calloc((size_t)a->n, sizeof(*a->pfd));
    REQUIRE(a->fds && a->opened && a->reopen && a->sent && a->pfd);
    for (int i = 0; i < a->n; i++)
        a->fds[i] = -1;
    REQUIRE(pthread_create(&a->thread, NULL, attack_main, a) == 0);
    return a;
}

void itest_attack_stop(itest_attack *a, itest_attack_result *out)
{
    atomic_store(&a->stop, true);
    pthread_join(a->thread, NULL);
    *out = a->result;
    out->open_average = a->open_samples ? a->open_sum / a->open_samples : 0;
    free(a->fds);
    free(a->opened);
    free(a->reopen);
    free(a->sent);
    free(a->pfd);
    free(a);
}

static int compare_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return (a > b) - (a < b);
}

long long itest_percentile(long long *values, int n, int pct)
{
    if (n <= 0)
        return -1;
    qsort(values, (size_t)n, sizeof(*values), compare_ll);
    int rank = (int)(((long long)pct * n + 99) / 100); /* nearest rank, 1-based */
    return values[rank < 1 ? 0 : rank - 1];
}

long long itest_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    long long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

void itest_raw_exchange(int port, const char *request, size_t len, char *status_line, size_t size)
{
    int fd = itest_connect_from("127.0.0.1", port);
    REQUIRE(fd >= 0);
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    REQUIRE(poll(&pfd, 1, 5000) == 1);
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    const char *end = strstr(request, "\r\n\r\n");
    size_t off = end ? (size_t)(end + 4 - request) : len;
    REQUIRE(send(fd, request, off, MSG_NOSIGNAL) == (ssize_t)off);
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 2000) == 1)
        off = len; /* answered on the headers */
    while (off < len) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* answered early and closed */
        off += (size_t)n;
    }
    char buf[1024] = "";
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    snprintf(status_line, size, "%.*s", (int)strcspn(buf, "\r\n"), buf);
    close(fd);
}
