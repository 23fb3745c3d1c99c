/* bx_status: one status type for every fallible call, and an error that remembers where it
 * happened. */
#ifndef BX_STATUS_H
#define BX_STATUS_H

#include <stddef.h>

#if defined(__GNUC__)
#define BX_MUSTCHECK    __attribute__((warn_unused_result))
#define BX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BX_MUSTCHECK
#define BX_PRINTF(f, a)
#endif

/* Status classes follow librdkafka's split: EINVAL and ENOTFOUND are the caller's input,
 * ETRANSIENT may succeed if retried, EFATAL will not. */
typedef enum bx_status {
    BX_OK = 0,
    BX_EINVAL,     /* bad input: the message names the field */
    BX_ENOMEM,     /* allocation failed or a limit was reached */
    BX_EIO,        /* an outside system failed */
    BX_ENOTFOUND,  /* a looked-up thing does not exist */
    BX_ECONFLICT,  /* already exists, or state forbids the change */
    BX_ETIMEOUT,   /* gave up waiting */
    BX_ETRANSIENT, /* retriable failure */
    BX_EFATAL,     /* unrecoverable: stop the process */
    BX_EDENIED     /* not allowed for this caller */
} bx_status;

typedef struct bx_error {
    bx_status status;
    char where[64];
    char msg[512];
} bx_error;

const char *bx_status_name(bx_status s);

/* Records status and message in err (which may be NULL) and returns status, so a function can
 * write `return BX_ERR(err, BX_EINVAL, "...")`. The message is kept valid UTF-8: bytes of a
 * character cut by a bounded format or the message's size, or never UTF-8, are dropped. */
bx_status bx_error_set(bx_error *err, bx_status status, const char *file, int line, const char *fmt,
                       ...) BX_PRINTF(5, 6);

#define BX_ERR(err, status, ...) bx_error_set((err), (status), __FILE__, __LINE__, __VA_ARGS__)

/* Chains calls that read like a list: IFOK(s, a()); IFOK(s, b()); */
#define IFOK(s, call)                                                                              \
    do {                                                                                           \
        if ((s) == BX_OK)                                                                          \
            (s) = (call);                                                                          \
    } while (0)

#endif
