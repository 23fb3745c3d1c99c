/* bx_itest_attack: slow and idle clients against an HTTP service, for the edge tests of bx-ingest
 * and bx-console (issue 14, defects 1 and 2): connections from chosen loopback addresses, the
 * open file limit they need, raw exchanges, memory and the percentile of measured latencies. */
#ifndef BX_ITEST_ATTACK_H
#define BX_ITEST_ATTACK_H

#include <stdbool.h>
#include <stddef.h>

/* A non-blocking TCP connection to 127.0.0.1:port from the loopback address `from`
 * (127.0.0.x; Linux answers the whole of 127/8), or -1. */
int itest_connect_from(const char *from, int port);

/* Raises this process's open file limit to at least `need` (children started afterwards inherit
 * it); a hard limit below `need` fails the test, naming `ulimit -n`. */
void itest_fd_limit(long need);
/* The soft open file limit of a running process, from /proc/<pid>/limits, or -1. */
long itest_fd_limit_of(int pid);

/* `slow` connections that send `slow_header` a byte a second and `idle` ones that send nothing,
 * spread evenly over `addresses` source addresses 127.0.0.<first_address>...; each one the server
 * closes is opened again a second later, as an attacker holding them would. */
typedef struct itest_attack_conf {
    int port;
    int slow, idle;
    int addresses, first_address;
    const char *slow_header;
} itest_attack_conf;

typedef struct itest_attack_result {
    long long closed_by_server; /* connections the server closed (or refused at once) */
    long long longest_slow_ms;  /* the longest a slow header was held before the server closed it */
    long long still_open_at_end_ms; /* the oldest slow connection still open when it stopped */
    long long open_max;             /* the most attacking connections open at once */
    long long open_average;         /* their average over the attack, sampled every 100 ms */
} itest_attack_result;

typedef struct itest_attack itest_attack;
/* Starts the attack on a thread of its own (conf copied). */
itest_attack *itest_attack_start(const itest_attack_conf *conf);
/* Stops it, closes every connection, fills *out and frees a. */
void itest_attack_stop(itest_attack *a, itest_attack_result *out);

/* The pct-th percentile (nearest rank) of n values; sorts them in place. */
long long itest_percentile(long long *values, int n, int pct);

/* The resident memory of a running process, in kB (VmRSS of /proc/<pid>/status). */
long long itest_rss_kb(int pid);

/* A raw HTTP exchange with 127.0.0.1:port: sends request (len bytes), writes the reply's first
 * line into status_line. An answer that comes on the headers is read before the body is sent (a
 * server closing with body bytes unread may reset the connection, dropping its answer), and the
 * body is then not sent. */
void itest_raw_exchange(int port, const char *request, size_t len, char *status_line, size_t size);

#endif
