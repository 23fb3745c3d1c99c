/* bx_redis: Redis connections with retry over hiredis, to one server or to a Redis Cluster. */
#ifndef BX_REDIS_H
#define BX_REDIS_H

#include "bx_status.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Connects to "redis://host:port[/db]", retrying with backoff for up to wait_ms, and signs in
 * (bx_redis_auth). Caller frees with redisFree. A cluster URL (bx_redis_open) is refused with
 * BX_EINVAL: a plain connection to one node of a cluster would meet MOVED for most keys. */
bx_status bx_redis_connect(const char *url, int wait_ms, redisContext **out,
                           bx_error *err) BX_MUSTCHECK;

/* Signs c in with the credentials of the environment: AUTH BX_REDIS_USERNAME with the password of
 * BX_REDIS_PASSWORD or the file BX_REDIS_PASSWORD_FILE (bx_conf_secret); without a password
 * nothing is sent. A refusal is BX_EFATAL ("redis AUTH as bx-score: WRONGPASS ..."), never with the
 * password. For code that connects with hiredis itself. */
bx_status bx_redis_auth(redisContext *c, bx_error *err) BX_MUSTCHECK;

/* --- One server or a cluster behind one handle ------------------------------------------------
 *
 * A bx_redis speaks to one server (a redisContext, as bx_redis_connect makes) or to a Redis
 * Cluster. Cluster URLs: "redis+cluster://h1:p1,h2:p2,..." (the seeds), or any redis:// URL with
 * several host:port when BX_REDIS_CLUSTER=1 (a single host:port too). A cluster has database 0
 * only. The handle asks a seed for CLUSTER SLOTS, routes each command to the master of its key's
 * slot (the part of the key inside its first {...} when that is not empty, as Redis hashes),
 * pipelines per node (bx_redis_append sends nothing; the first bx_redis_read writes every node's
 * commands before it waits for any answer), follows MOVED (and remembers the slot's new master) and
 * ASK (ASKING, then the command, on that node), and waits a little on TRYAGAIN. The keys of one
 * command must share a slot (BX_EINVAL otherwise, before anything is sent): scripts take their
 * keys from KEYS, so one call works on one slot.
 *
 * A connection that broke, CLUSTERDOWN or an uncovered slot (a master died and its replica has
 * not taken over yet) make the handle broken: the read answers BX_ETRANSIENT, every later call
 * too, and the caller closes it and opens a new one (which reads the slot map again) after its
 * backoff, as it reconnects to one server. With one server the handle behaves as hiredis did:
 * answers, error replies included, come back as redisReply; BX_ETRANSIENT when the connection
 * broke (c->err), BX_EIO for another hiredis failure. Not thread-safe: one handle per thread. */
typedef struct bx_redis bx_redis;

/* Opens url (above), waiting up to wait_ms for a server (one seed that answers CLUSTER SLOTS),
 * signs every connection in (bx_redis_auth). Caller frees with bx_redis_close. */
bx_status bx_redis_open(const char *url, int wait_ms, bx_redis **out, bx_error *err) BX_MUSTCHECK;

/* A handle over one server's connection c; c stays the caller's (borrowed until
 * bx_redis_close, which leaves it open). NULL when out of memory. */
bx_redis *bx_redis_wrap(redisContext *c);

/* Closes the handle and the connections it opened; NULL does nothing. */
void bx_redis_close(bx_redis *r);

bool bx_redis_is_cluster(const bx_redis *r);

/* The handle can no longer be used (above): close it and open a new one. */
bool bx_redis_broken(const bx_redis *r);

/* Queues one command (argv as hiredis's redisAppendCommandArgv). Its answer is read with
 * bx_redis_read, in the order of the appends. */
bx_status bx_redis_append(bx_redis *r, int argc, const char **argv, const size_t *argvlen,
                          bx_error *err) BX_MUSTCHECK;

/* The answer of the oldest command appended and not read yet (caller frees with
 * freeReplyObject). Error replies are answers (BX_OK), but for the redirections and cluster states
 * the handle handles (above). */
bx_status bx_redis_read(bx_redis *r, redisReply **out, bx_error *err) BX_MUSTCHECK;

/* bx_redis_append and bx_redis_read of one command, with nothing else pending. */
bx_status bx_redis_call(bx_redis *r, int argc, const char **argv, const size_t *argvlen,
                        redisReply **out, bx_error *err) BX_MUSTCHECK;

/* A command for every master (SCRIPT LOAD, SCRIPT FLUSH, FLUSHDB, DBSIZE ...); on one server,
 * that server. The answers in node order (*n of them, caller frees each and the array with
 * bx_redis_replies_free); an error reply is an answer. Nothing else may be pending. */
bx_status bx_redis_call_masters(bx_redis *r, int argc, const char **argv, const size_t *argvlen,
                                redisReply ***out, size_t *n, bx_error *err) BX_MUSTCHECK;
void bx_redis_replies_free(redisReply **replies, size_t n);

/* --- Cluster parts, for tests ------------------------------------------------------------------
 */

#define BX_REDIS_SLOTS 16384

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as Redis Cluster hashes keys. */
uint16_t bx_redis_crc16(const char *buf, size_t len);

/* The cluster slot of a key: CRC16 of its hash tag (the bytes between the first '{' and the next
 * '}' when there are any) or of the whole key, modulo 16384. */
unsigned bx_redis_key_slot(const char *key, size_t len);

typedef enum bx_redis_redirect {
    BX_REDIS_NOT_REDIRECTED = 0,
    BX_REDIS_MOVED, /* "MOVED <slot> <host>:<port>": the slot lives there now */
    BX_REDIS_ASK    /* "ASK <slot> <host>:<port>": this one command there, after ASKING */
} bx_redis_redirect;

/* Reads an error reply's text (len bytes): a redirection fills slot, host (a string of at most
 * hostlen - 1 bytes) and port; anything else, a malformed one included, is
 * BX_REDIS_NOT_REDIRECTED. An IPv6 host comes as "[::1]:7000" or "::1:7000" (the last colon
 * splits). */
bx_redis_redirect bx_redis_parse_redirect(const char *msg, size_t len, unsigned *slot, char *host,
                                          size_t hostlen, int *port);

/* The slot every key of a command hashes to: BX_OK with *slot set, or *slot = -1 for a command
 * without keys (PING, SCRIPT LOAD, EVAL with 0 keys); BX_EINVAL when keys of it hash to
 * different slots (the message names the command and both keys' slots). */
bx_status bx_redis_command_slot(int argc, const char **argv, const size_t *argvlen, int *slot,
                                bx_error *err) BX_MUSTCHECK;

#endif
