/* bx_log: one line per event, level checked before formatting, personal data masked. */
#ifndef BX_LOG_H
#define BX_LOG_H

#include "bx_status.h"

#include <stddef.h>

typedef enum bx_log_level {
    BX_LOG_DEBUG = 0,
    BX_LOG_INFO = 1,
    BX_LOG_WARN = 2,
    BX_LOG_ERROR = 3
} bx_log_level;

extern bx_log_level bx_log_min_level;

/* Sets the service name printed on every line (borrowed: pass a string literal). */
void bx_log_init(const char *service, bx_log_level level);
bx_status bx_log_level_parse(const char *s, bx_log_level *out) BX_MUSTCHECK;

/* Writes one line to stderr. The formatted text is passed through bx_log_mask first, so a phone
 * number or an id number that slipped into a message is still masked. */
void bx_log_write(bx_log_level level, const char *fmt, ...) BX_PRINTF(2, 3);

#define BX_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= bx_log_min_level)                                                           \
            bx_log_write((level), __VA_ARGS__);                                                    \
    } while (0)
#define bx_log_debug(...) BX_LOG(BX_LOG_DEBUG, __VA_ARGS__)
#define bx_log_info(...)  BX_LOG(BX_LOG_INFO, __VA_ARGS__)
#define bx_log_warn(...)  BX_LOG(BX_LOG_WARN, __VA_ARGS__)
#define bx_log_error(...) BX_LOG(BX_LOG_ERROR, __VA_ARGS__)

/* Masks, in place, every run of 11 digits starting with 1 (mainland mobile: 138****1234) and every
 * 18-character id number (17 digits and a digit or X: 110101********123X) in s. */
void bx_log_mask(char *s);
/* Writes a masked copy of a phone number ("138****1234") into out (at least 16 bytes). */
void bx_mask_phone(const char *phone, char *out, size_t size);

#endif
