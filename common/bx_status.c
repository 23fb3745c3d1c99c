/* bx_status: status names and error recording. */
#include "bx_status.h"
#include "bx_json.h"
#include "bx_name.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
    [BX_OK] = "ok",
    [BX_EINVAL] = "invalid",
    [BX_ENOMEM] = "no_memory",
    [BX_EIO] = "io",
    [BX_ENOTFOUND] = "not_found",
    [BX_ECONFLICT] = "conflict",
    [BX_ETIMEOUT] = "timeout",
    [BX_ETRANSIENT] = "transient",
    [BX_EFATAL] = "fatal",
    [BX_EDENIED] = "denied",
};

const char *bx_status_name(bx_status s)
{
    return bx_name_of(status_names, BX_NAMES_COUNT(status_names), (int)s, "unknown");
}

bx_status bx_error_set(bx_error *err, bx_status status, const char *file, int line, const char *fmt,
                       ...)
{
    if (err == NULL)
        return status;
    err->status = status;
    const char *base = strrchr(file, '/');
    snprintf(err->where, sizeof(err->where), "%s:%d", base ? base + 1 : file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    /* Messages quote input ("got \"%.40s\"") and are cut to size: a character cut in two, or bytes
     * that were never UTF-8, would make every log line and JSON document carrying them invalid. */
    bx_utf8_repair(err->msg);
    return status;
}
