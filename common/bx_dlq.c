/* bx_dlq: builds bx.dlq.v1 messages, one member after the other in the schema's order; records
 * are masked and cut so that no letter carries a phone or an id number or outgrows the topic. */
#include "bx_dlq.h"

#include "bx_hex.h"
#include "bx_json.h"
#include "bx_log.h"

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

/* A masked digit: '*' in text, '0' in a JSON number (so the record stays JSON; the first digit
 * of a run is always kept, so no number starts with a zero it did not have). */
static void mask_run(char *run, size_t n, bool id_number, char with)
{
    size_t keep_head = 2, keep_tail = 2;
    if (id_number) { /* 110101********123X, as the logs write it */
        keep_head = 6;
        keep_tail = 4;
    } else if (n == 11 && run[0] == '1') { /* a mobile phone: 138****5678 */
        keep_head = 3;
        keep_tail = 4;
    }
    for (size_t k = keep_head; k + keep_tail < n; k++)
        run[k] = with;
}

static bool is_ascii_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

void bx_dlq_mask_digits(char *s, size_t len, bool json)
{
    bool in_string = false;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (json && in_string && c == '\\') {
            i += 2;
            continue;
        }
        if (json && c == '"') {
            in_string = !in_string;
            i++;
            continue;
        }
        if (!is_digit(c)) {
            i++;
            continue;
        }
        size_t n = 0;
        while (i + n < len && is_digit(s[i + n]))
            n++;
        bool id_x = n == 17 && i + n < len && (s[i + n] == 'X' || s[i + n] == 'x');
        size_t run = n + (id_x ? 1 : 0);
        /* A run glued to letters is part of a code such as a registry id (S10010301): kept. */
        bool glued =
            (i > 0 && is_ascii_letter(s[i - 1])) || (i + run < len && is_ascii_letter(s[i + run]));
        if (run >= BX_DLQ_MASK_DIGITS && !glued)
            mask_run(s + i, run, run == 18, json && !in_string ? '0' : '*');
        i += run;
    }
}

/* The longest prefix of s (at most max bytes) that does not end inside a UTF-8 character. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* text (n bytes) as a JSON string, or null when it is not valid UTF-8 without NUL. */
static bx_status put_text(bx_buf *out, const char *text, size_t n)
{
    if (!bx_utf8_valid(text, n))
        return bx_buf_puts(out, "null");
    char *copy = strndup(text, n); /* valid UTF-8 holds no NUL */
    if (copy == NULL)
        return BX_ENOMEM;
    bx_status s = bx_buf_json_string(out, copy);
    free(copy);
    return s;
}

/* How many of the record's bytes the letter carries; fewer than record_len when it is cut. */
static size_t record_keep(const bx_dlq_letter *l)
{
    size_t limit = l->record_kind == BX_DLQ_RECORD_TEXT ? BX_DLQ_TEXT_LIMIT : BX_DLQ_RECORD_LIMIT;
    size_t max = l->record_max == 0 || l->record_max > limit ? limit : l->record_max;
    if (l->record_len <= max)
        return l->record_len;
    /* a cut JSON record is written as a string */
    return l->record_kind == BX_DLQ_RECORD_JSON && max > BX_DLQ_TEXT_LIMIT ? BX_DLQ_TEXT_LIMIT
                                                                           : max;
}

/* The record member: rec is the record with its digit runs masked. */
static bx_status put_record(bx_buf *out, const bx_dlq_letter *l, const char *rec)
{
    size_t keep = record_keep(l);
    bool cut = keep < l->record_len;
    switch (l->record_kind) {
    case BX_DLQ_RECORD_JSON:
        /* A cut JSON text is no longer JSON: its head goes as a string. */
        return cut ? put_text(out, rec, utf8_cut(rec, l->record_len, keep))
                   : bx_buf_append(out, rec, l->record_len);
    case BX_DLQ_RECORD_TEXT:
        return put_text(out, rec, cut ? utf8_cut(rec, l->record_len, keep) : l->record_len);
    case BX_DLQ_RECORD_BASE64: {
        bx_status s = bx_buf_puts(out, "{\"body_base64\":\"");
        IFOK(s, base64(out, (const unsigned char *)rec, keep));
        IFOK(s, bx_buf_printf(out, "\",\"body_bytes\":%zu,\"truncated\":%s}", l->record_len,
                              cut ? "true" : "false"));
        return s;
    }
    }
    return bx_buf_puts(out, "null");
}

/* ,"record_bytes":n,"record_sha256":"<hex>","record_truncated":true for a cut record: the
 * whole's length and digest (of the bytes as received, before masking). */
static bx_status put_cut(bx_buf *out, const bx_dlq_letter *l)
{
    char hex[BX_SHA256_HEX_LEN + 1];
    bx_sha256_hex(l->record, l->record_len, hex);
    return bx_buf_printf(out,
                         ",\"record_bytes\":%zu,\"record_sha256\":\"%s\",\"record_truncated\":true",
                         l->record_len, hex);
}

/* The error as the letter carries it: at most BX_DLQ_ERROR_MAX bytes, whole characters, phones
 * and id numbers masked as the logs mask them. */
static bx_status put_error(bx_buf *out, const char *error)
{
    char text[BX_DLQ_ERROR_MAX + 1];
    size_t n = utf8_cut(error, strlen(error), BX_DLQ_ERROR_MAX);
    memcpy(text, error, n);
    text[n] = '\0';
    bx_log_mask(text);
    return put_string(out, "error", text);
}

bx_status bx_dlq_build(const bx_dlq_letter *l, bx_buf *out, bx_error *err)
{
    assert(l->event_id && l->source && l->endpoint && l->reason && l->error);
    char at[40];
    bx_time_format(l->received_at, at, sizeof(at));
    char *masked = NULL;
    bx_status s = BX_OK;
    if (l->record) {
        masked = malloc(l->record_len + 1);
        if (masked == NULL)
            s = BX_ENOMEM;
        else {
            memcpy(masked, l->record, l->record_len);
            masked[l->record_len] = '\0';
            bx_dlq_mask_digits(masked, l->record_len, l->record_kind == BX_DLQ_RECORD_JSON);
        }
    }
    IFOK(s, bx_buf_puts(out, "{\"schema\":\"bx.dlq.v1\""));
    IFOK(s, put_string(out, "event_id", l->event_id));
    IFOK(s, put_string(out, "source", l->source));
    IFOK(s, put_string(out, "endpoint", l->endpoint));
    IFOK(s, put_string(out, "school_id", l->school_id));
    IFOK(s, put_number(out, "record_index", l->record_index, 0));
    IFOK(s, put_number(out, "line", l->line, 1));
    IFOK(s, put_string(out, "field", l->field));
    IFOK(s, put_string(out, "reason", l->reason));
    IFOK(s, put_error(out, l->error));
    IFOK(s, bx_buf_puts(out, ",\"record\":"));
    IFOK(s, masked ? put_record(out, l, masked) : bx_buf_puts(out, "null"));
    if (masked && record_keep(l) < l->record_len)
        IFOK(s, put_cut(out, l));
    IFOK(s, bx_buf_printf(out, ",\"received_at\":\"%s\"}", at));
    free(masked);
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
