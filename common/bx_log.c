/* bx_log: leveled logging to stderr with masking of phones and id numbers. */
#include "bx_log.h"
#include "bx_calendar.h"
#include "bx_clock.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bx_log_level bx_log_min_level = BX_LOG_INFO;
static const char *log_service = "baoxue";

void bx_log_init(const char *service, bx_log_level level)
{
    log_service = service;
    bx_log_min_level = level;
}

bx_status bx_log_level_parse(const char *s, bx_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (bx_log_level)i;
            return BX_OK;
        }
    }
    return BX_EINVAL;
}

static size_t digit_run(const char *s)
{
    size_t n = 0;
    while (isdigit((unsigned char)s[n]))
        n++;
    return n;
}

void bx_log_mask(char *s)
{
    size_t i = 0;
    while (s[i]) {
        if (!isdigit((unsigned char)s[i]) || (i > 0 && isalnum((unsigned char)s[i - 1]))) {
            i++;
            continue;
        }
        size_t n = digit_run(s + i);
        if (n == 11 && s[i] == '1' && !isalnum((unsigned char)s[i + n])) {
            memset(s + i + 3, '*', 4);
        } else if (n == 17 && (s[i + 17] == 'X' || s[i + 17] == 'x') &&
                   !isalnum((unsigned char)s[i + 18])) {
            memset(s + i + 6, '*', 8);
            n = 18;
        } else if (n == 18 && !isalnum((unsigned char)s[i + n])) {
            memset(s + i + 6, '*', 8);
        }
        i += n;
    }
}

void bx_mask_phone(const char *phone, char *out, size_t size)
{
    size_t len = strlen(phone);
    if (len < 7) {
        snprintf(out, size, "****");
        return;
    }
    snprintf(out, size, "%.3s****%s", phone, phone + len - 4);
}

void bx_log_write(bx_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    char when[40];
    bx_time_format(bx_clock_now(), when, sizeof(when));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    bx_log_mask(line);
    fprintf(stderr, "%s %-5s %s: %s\n", when, names[level], log_service, line);
}
