/* bx_status: status names and error recording. */
#include "bx_status.h"
#include "bx_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *bx_status_name(bx_status s)
{
    switch (s) {
    case BX_OK:
        return "ok";
    case BX_EINVAL:
        return "invalid";
    case BX_ENOMEM:
        return "no_memory";
    case BX_EIO:
        return "io";
    case BX_ENOTFOUND:
        return "not_found";
    case BX_ECONFLICT:
        return "conflict";
    case BX_ETIMEOUT:
        return "timeout";
    case BX_ETRANSIENT:
        return "transient";
    case BX_EFATAL:
        return "fatal";
    case BX_EDENIED:
        return "denied";
    }
    return "unknown";
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
