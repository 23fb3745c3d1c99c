/* bx_dlq: builds bx.dlq.v1 messages, one member after the other in the schema's order. */
#include "bx_dlq.h"

#include "bx_json.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bx_status base64(bx_buf *out, const unsigned char *in, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bx_status s = BX_OK;
    for (size_t i = 0; i < len && s == BX_OK; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                     i + 1 < len ? tab[(v >> 6) & 63] : '=', i + 2 < len ? tab[v & 63] : '='};
        s = bx_buf_append(out, q, 4);
    }
    return s;
}

/* ,"<name>":"<value>" (null for NULL). */
static bx_status put_string(bx_buf *out, const char *name, const char *value)
{
    bx_status s = bx_buf_printf(out, ",\"%s\":", name);
    IFOK(s, value ? bx_buf_json_string(out, value) : bx_buf_puts(out, "null"));
    return s;
}

/* ,"<name>":<n> (null below least). */
static bx_status put_number(bx_buf *out, const char *name, long long n, long long least)
{
    return n >= least ? bx_buf_printf(out, ",\"%s\":%lld", name, n)
                      : bx_buf_printf(out, ",\"%s\":null", name);
}

static bx_status put_record(bx_buf *out, const bx_dlq_letter *l)
{
    bool fits = l->record_max == 0 || l->record_len <= l->record_max;
    if (l->record == NULL)
        return bx_buf_puts(out, "null");
    switch (l->record_kind) {
    case BX_DLQ_RECORD_JSON:
        return fits ? bx_buf_append(out, l->record, l->record_len) : bx_buf_puts(out, "null");
    case BX_DLQ_RECORD_TEXT: {
        if (!fits || !bx_utf8_valid(l->record, l->record_len))
            return bx_buf_puts(out, "null");
        char *text = strndup(l->record, l->record_len); /* valid UTF-8 holds no NUL */
        if (text == NULL)
            return BX_ENOMEM;
        bx_status s = bx_buf_json_string(out, text);
        free(text);
        return s;
    }
    case BX_DLQ_RECORD_BASE64: {
        size_t n = fits ? l->record_len : l->record_max;
        bx_status s = bx_buf_puts(out, "{\"body_base64\":\"");
        IFOK(s, base64(out, (const unsigned char *)l->record, n));
        IFOK(s, bx_buf_printf(out, "\",\"body_bytes\":%zu,\"truncated\":%s}", l->record_len,
                              fits ? "false" : "true"));
        return s;
    }
    }
    return bx_buf_puts(out, "null");
}

bx_status bx_dlq_build(const bx_dlq_letter *l, bx_buf *out, bx_error *err)
{
    assert(l->event_id && l->source && l->endpoint && l->reason && l->error);
    char at[40];
    bx_time_format(l->received_at, at, sizeof(at));
    bx_status s = bx_buf_puts(out, "{\"schema\":\"bx.dlq.v1\"");
    IFOK(s, put_string(out, "event_id", l->event_id));
    IFOK(s, put_string(out, "source", l->source));
    IFOK(s, put_string(out, "endpoint", l->endpoint));
    IFOK(s, put_string(out, "school_id", l->school_id));
    IFOK(s, put_number(out, "record_index", l->record_index, 0));
    IFOK(s, put_number(out, "line", l->line, 1));
    IFOK(s, put_string(out, "field", l->field));
    IFOK(s, put_string(out, "reason", l->reason));
    IFOK(s, put_string(out, "error", l->error));
    IFOK(s, bx_buf_puts(out, ",\"record\":"));
    IFOK(s, put_record(out, l));
    IFOK(s, bx_buf_printf(out, ",\"received_at\":\"%s\"}", at));
    if (s != BX_OK)
        return BX_ERR(err, s, "cannot build a dead letter");
    return BX_OK;
}

void bx_dlq_event_id(char *out, size_t size, const char *source, const char *topic, int partition,
                     long long offset)
{
    if (topic)
        snprintf(out, size, "dlq:%s:%.60s:%d:%lld", source, topic, partition, offset);
    else
        snprintf(out, size, "dlq:%s:%d:%lld", source, partition, offset);
}
