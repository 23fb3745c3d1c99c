/* bx_json: a strict JSON parser that builds a cJSON tree, and accessors that name the path. */
#include "bx_json.h"

#include "bx_buf.h"
#include "bx_hex.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest path and longest key shown in a message, so the whole message fits bx_error.msg. */
#define PATH_SHOWN_MAX 200
#define KEY_SHOWN_MAX  64
#define NO_ENTRY       ((size_t)-1)

/* Decodes one strict UTF-8 sequence at s (n bytes available). Returns its length, or 0 when the
 * bytes are not valid UTF-8 (overlong forms, surrogates, past U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t value;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
        value = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        value = b0 & 0x0Fu;
        if (b0 == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (b0 == 0xED)
            hi = 0x9F; /* U+D800..U+DFFF are surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        value = b0 & 0x07u;
        if (b0 == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (b0 == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    value = (value << 6) | (s[1] & 0x3Fu);
    for (size_t i = 2; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        value = (value << 6) | (s[i] & 0x3Fu);
    }
    *cp = value;
    return need;
}

bool bx_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || cp == 0)
            return false;
        i += n;
    }
    return true;
}

size_t bx_utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t len = strlen(s), i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            i++;
            continue;
        }
        memmove(p + o, p + i, n);
        o += n;
        i += n;
    }
    p[o] = '\0';
    return o;
}

/* Writes s (len bytes) into out for a message: escapes quotes, backslashes and control characters,
 * shows bytes that are not UTF-8 as \xHH, and cuts long text at a character boundary with "...". */
static void show_text(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    assert(cap >= KEY_SHOWN_MAX + 8);
    while (i < len) {
        if (o >= KEY_SHOWN_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || cp < 0x20) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 15];
            i++;
        } else if (cp == '"' || cp == '\\') {
            out[o++] = '\\';
            out[o++] = (char)cp;
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
}

/* ---- the validating pass ---- */

struct key_entry {
    size_t off, len; /* the decoded key in scanner.keys */
    uint64_t object; /* serial of the object it belongs to */
    uint32_t hash;
    size_t next; /* next entry in the same bucket, older */
};

/* One open container. A deeper frame exists only while this one is inside a member. */
struct frame {
    bool is_array;
    bool in_member; /* reading a member: its key (object) or index (array) is part of the path */
    long count;     /* members completed so far; the index of the current array element */
    size_t key;     /* object: entry of the current member's key */
    uint64_t serial;
    size_t first_entry; /* object: entries from here on are its keys */
};

/* Keys of all open objects live in one chained hash: entries form a stack (an object's keys sit
 * above those of the objects around it), so closing an object pops its entries, and each popped
 * entry is the head of its bucket because everything inserted later is already gone. */
struct scanner {
    const unsigned char *text;
    size_t len, pos;
    int depth;
    struct frame frames[BX_JSON_MAX_DEPTH];
    uint64_t next_serial;
    struct key_entry *entries;
    size_t nentries, entries_cap;
    size_t *buckets;
    size_t nbuckets; /* a power of two, or 0 before the first key */
    bx_buf keys;     /* decoded keys of the open objects, each followed by a NUL */
    bx_buf value;    /* the string value being decoded */
    bx_buf number;   /* the number token, NUL-terminated for strtod */
    bx_error *err;
};

static bool is_simple_key(const char *k, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!(c >= 0x80 || c == '_' || c == '-' || (c >= '0' && c <= '9') ||
              (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

/* The path of the place being read, "records[2].date"; "" at the top level. */
static void format_path(const struct scanner *s, char out[PATH_SHOWN_MAX + 8])
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < s->depth && s->frames[i].in_member; i++) {
        const struct frame *f = &s->frames[i];
        char piece[KEY_SHOWN_MAX + 16];
        if (f->is_array) {
            snprintf(piece, sizeof(piece), "[%ld]", f->count);
        } else {
            const struct key_entry *e = &s->entries[f->key];
            const char *k = s->keys.data + e->off;
            char shown[KEY_SHOWN_MAX + 8];
            show_text(k, e->len, shown, sizeof(shown));
            if (is_simple_key(k, e->len))
                snprintf(piece, sizeof(piece), "%s%s", n ? "." : "", shown);
            else
                snprintf(piece, sizeof(piece), "[\"%s\"]", shown);
        }
        size_t plen = strlen(piece);
        if (n + plen > PATH_SHOWN_MAX) {
            memcpy(out + n, "...", 4);
            return;
        }
        memcpy(out + n, piece, plen + 1);
        n += plen;
    }
}

static bx_status fail_at(struct scanner *s, size_t pos, const char *fmt, ...) BX_PRINTF(3, 4);

/* Records "line L, column C (path): what". Columns count characters, not bytes. */
static bx_status fail_at(struct scanner *s, size_t pos, const char *fmt, ...)
{
    long line = 1, column = 1;
    for (size_t i = 0; i < pos && i < s->len; i++) {
        if (s->text[i] == '\n') {
            line++;
            column = 1;
        } else if ((s->text[i] & 0xC0) != 0x80) {
            column++;
        }
    }
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char path[PATH_SHOWN_MAX + 8];
    format_path(s, path);
    if (path[0])
        BX_ERR(s->err, BX_EINVAL, "line %ld, column %ld (%s): %s", line, column, path, what);
    else
        BX_ERR(s->err, BX_EINVAL, "line %ld, column %ld: %s", line, column, what);
    return BX_EINVAL; /* spelled out so static analysis sees every failure is non-zero */
}

/* Describes the byte at pos for "found ..." in messages. */
static void describe_at(const struct scanner *s, size_t pos, char *out, size_t cap)
{
    if (pos >= s->len) {
        snprintf(out, cap, "the end of the input");
        return;
    }
    unsigned char c = s->text[pos];
    if (c > 0x20 && c < 0x7F)
        snprintf(out, cap, "'%c'", c);
    else
        snprintf(out, cap, "byte 0x%02X", c);
}

static bx_status fail_found(struct scanner *s, const char *expected)
{
    char found[32];
    describe_at(s, s->pos, found, sizeof(found));
    return fail_at(s, s->pos, "expected %s, found %s", expected, found);
}

static void skip_ws(struct scanner *s)
{
    while (s->pos < s->len) {
        unsigned char c = s->text[s->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        s->pos++;
    }
}

/* Reads the 4 hex digits of a \u escape whose backslash is at pos; -1 when they are not there. */
static long read_u_escape(const struct scanner *s, size_t pos)
{
    if (pos + 6 > s->len || s->text[pos] != '\\' || s->text[pos + 1] != 'u')
        return -1;
    long v = 0;
    for (size_t i = pos + 2; i < pos + 6; i++) {
        int h = bx_hex_digit((unsigned char)s->text[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static bx_status put_utf8(bx_buf *out, uint32_t cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return bx_buf_append(out, b, n);
}

static bx_status out_of_memory(struct scanner *s)
{
    BX_ERR(s->err, BX_ENOMEM, "out of memory while parsing JSON");
    return BX_ENOMEM;
}

/* Checks the string literal at pos (which is '"'); appends its decoded bytes to decoded unless
 * decoded is NULL. */
/* A \\u escape at pos (and its low surrogate after it): *cp the code point, *n the bytes read. */
static bx_status scan_u_escape(struct scanner *s, uint32_t *cp, size_t *n)
{
    long u = read_u_escape(s, s->pos);
    if (u < 0)
        return fail_at(s, s->pos, "invalid \\u escape: expected 4 hex digits");
    *n = 6;
    if (u == 0)
        return fail_at(s, s->pos, "\\u0000 is not allowed in strings");
    if (u >= 0xDC00 && u <= 0xDFFF)
        return fail_at(s, s->pos, "unpaired surrogate \\u%04lX", u);
    if (u >= 0xD800 && u <= 0xDBFF) {
        long low = read_u_escape(s, s->pos + 6);
        if (low < 0xDC00 || low > 0xDFFF)
            return fail_at(s, s->pos, "unpaired surrogate \\u%04lX", u);
        u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
        *n = 12;
    }
    *cp = (uint32_t)u;
    return BX_OK;
}

/* The escape whose backslash is at pos, in a string that began at start: *cp the code point, *n
 * the bytes read. */
static bx_status scan_escape(struct scanner *s, size_t start, uint32_t *cp, size_t *n)
{
    if (s->pos + 1 >= s->len)
        return fail_at(s, start, "unterminated string");
    static const char named[] = "\"\\/bfnrt", meaning[] = "\"\\/\b\f\n\r\t";
    unsigned char e = s->text[s->pos + 1];
    const char *at = e ? strchr(named, e) : NULL;
    if (at) {
        *cp = (unsigned char)meaning[at - named];
        *n = 2;
        return BX_OK;
    }
    if (e == 'u')
        return scan_u_escape(s, cp, n);
    char found[32];
    describe_at(s, s->pos + 1, found, sizeof(found));
    return fail_at(s, s->pos, "invalid escape: backslash followed by %s", found);
}

static bx_status scan_string(struct scanner *s, bx_buf *decoded)
{
    size_t start = s->pos;
    assert(s->text[start] == '"');
    s->pos++;
    for (;;) {
        if (s->pos >= s->len)
            return fail_at(s, start, "unterminated string");
        unsigned char c = s->text[s->pos];
        uint32_t cp = 0;
        size_t n = 1;
        if (c == '"') {
            s->pos++;
            return BX_OK;
        } else if (c == '\\') {
            bx_status st = scan_escape(s, start, &cp, &n);
            if (st != BX_OK)
                return st;
            if (decoded && put_utf8(decoded, cp) != BX_OK)
                return out_of_memory(s);
            s->pos += n;
            continue;
        } else if (c == 0) {
            return fail_at(s, s->pos, "NUL byte in string");
        } else if (c < 0x20) {
            return fail_at(s, s->pos, "control character 0x%02X in string (escape it)", c);
        } else if (c >= 0x80) {
            n = utf8_decode(s->text + s->pos, s->len - s->pos, &cp);
            if (n == 0)
                return fail_at(s, s->pos, "invalid UTF-8 in string");
        }
        if (decoded && bx_buf_append(decoded, s->text + s->pos, n) != BX_OK)
            return out_of_memory(s);
        s->pos += n;
    }
}

static bool is_digit(const struct scanner *s, size_t pos)
{
    return pos < s->len && s->text[pos] >= '0' && s->text[pos] <= '9';
}

static bool starts_with(const struct scanner *s, size_t pos, const char *word)
{
    size_t n = strlen(word);
    return pos + n <= s->len && memcmp(s->text + pos, word, n) == 0;
}

static bx_status scan_number(struct scanner *s, double *value)
{
    size_t start = s->pos;
    if (s->text[s->pos] == '-')
        s->pos++;
    if (starts_with(s, s->pos, "Infinity"))
        return fail_at(s, start, "NaN and Infinity are not JSON numbers");
    if (!is_digit(s, s->pos))
        return fail_found(s, "a digit");
    if (s->text[s->pos] == '0') {
        s->pos++;
        if (is_digit(s, s->pos))
            return fail_at(s, start, "numbers must not have leading zeros");
    } else {
        while (is_digit(s, s->pos))
            s->pos++;
    }
    if (s->pos < s->len && s->text[s->pos] == '.') {
        s->pos++;
        if (!is_digit(s, s->pos))
            return fail_found(s, "a digit after '.'");
        while (is_digit(s, s->pos))
            s->pos++;
    }
    if (s->pos < s->len && (s->text[s->pos] == 'e' || s->text[s->pos] == 'E')) {
        s->pos++;
        if (s->pos < s->len && (s->text[s->pos] == '+' || s->text[s->pos] == '-'))
            s->pos++;
        if (!is_digit(s, s->pos))
            return fail_found(s, "a digit in the exponent");
        while (is_digit(s, s->pos))
            s->pos++;
    }
    bx_buf_reset(&s->number);
    if (bx_buf_append(&s->number, s->text + start, s->pos - start) != BX_OK)
        return out_of_memory(s);
    *value = strtod(s->number.data, NULL);
    if (!isfinite(*value))
        return fail_at(s, start, "number out of range");
    return BX_OK;
}

static uint32_t hash_key(uint64_t object, const char *k, size_t len)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 8; i++) {
        h ^= (uint32_t)((object >> (8 * i)) & 0xFF);
        h *= 16777619u;
    }
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 16777619u;
    }
    return h;
}

static bx_status grow_keys(struct scanner *s)
{
    if (s->nentries == s->entries_cap) {
        size_t cap = s->entries_cap ? s->entries_cap * 2 : 64;
        struct key_entry *e = realloc(s->entries, cap * sizeof(*e));
        if (e == NULL)
            return out_of_memory(s);
        s->entries = e;
        s->entries_cap = cap;
    }
    if (s->nentries < s->nbuckets)
        return BX_OK;
    size_t nb = s->nbuckets ? s->nbuckets * 2 : 64;
    size_t *b = realloc(s->buckets, nb * sizeof(*b));
    if (b == NULL)
        return out_of_memory(s);
    s->buckets = b;
    s->nbuckets = nb;
    for (size_t i = 0; i < nb; i++)
        b[i] = NO_ENTRY;
    /* Re-linking in insertion order keeps the newest entry at the head of every bucket. */
    for (size_t i = 0; i < s->nentries; i++) {
        size_t slot = s->entries[i].hash & (nb - 1);
        s->entries[i].next = b[slot];
        b[slot] = i;
    }
    return BX_OK;
}

/* The key just decoded at keys[off..] joins the current object, unless it is already there. */
static bx_status add_key(struct scanner *s, struct frame *f, size_t off, size_t key_pos)
{
    const char *k = s->keys.data + off;
    size_t len = s->keys.len - off;
    uint32_t h = hash_key(f->serial, k, len);
    if (s->nbuckets) {
        for (size_t i = s->buckets[h & (s->nbuckets - 1)]; i != NO_ENTRY; i = s->entries[i].next) {
            const struct key_entry *e = &s->entries[i];
            if (e->object == f->serial && e->hash == h && e->len == len &&
                memcmp(s->keys.data + e->off, k, len) == 0) {
                char shown[KEY_SHOWN_MAX + 8];
                show_text(k, len, shown, sizeof(shown));
                return fail_at(s, key_pos, "duplicate key \"%s\"", shown);
            }
        }
    }
    if (grow_keys(s) != BX_OK)
        return BX_ENOMEM;
    size_t slot = h & (s->nbuckets - 1);
    struct key_entry *e = &s->entries[s->nentries];
    e->off = off;
    e->len = len;
    e->object = f->serial;
    e->hash = h;
    e->next = s->buckets[slot];
    s->buckets[slot] = s->nentries;
    f->key = s->nentries++;
    return BX_OK;
}

static void pop_keys(struct scanner *s, const struct frame *f)
{
    if (s->nentries == f->first_entry)
        return;
    size_t keys_len = s->entries[f->first_entry].off;
    while (s->nentries > f->first_entry) {
        const struct key_entry *e = &s->entries[--s->nentries];
        assert(s->buckets[e->hash & (s->nbuckets - 1)] == s->nentries);
        s->buckets[e->hash & (s->nbuckets - 1)] = e->next;
    }
    s->keys.len = keys_len;
    s->keys.data[keys_len] = '\0';
}

static bx_status scan_value(struct scanner *s, cJSON **out);

/* Opens a container at s->pos; NULL (the error recorded) past BX_JSON_MAX_DEPTH. */
static struct frame *open_frame(struct scanner *s, bool is_array)
{
    if (s->depth == BX_JSON_MAX_DEPTH) {
        fail_at(s, s->pos, "nesting deeper than %d levels", BX_JSON_MAX_DEPTH);
        return NULL;
    }
    struct frame *f = &s->frames[s->depth++];
    memset(f, 0, sizeof(*f));
    f->is_array = is_array;
    f->serial = ++s->next_serial;
    f->first_entry = s->nentries;
    s->pos++;
    skip_ws(s);
    return f;
}

/* Reads one member into obj: its key (checked against the keys before it), ':' and the value. */
static bx_status scan_member(struct scanner *s, struct frame *f, cJSON *obj)
{
    if (s->pos >= s->len || s->text[s->pos] != '"') {
        if (f->count > 0 && s->pos < s->len && s->text[s->pos] == '}')
            return fail_at(s, s->pos, "trailing comma before '}'");
        if (s->pos < s->len && s->text[s->pos] == '\'')
            return fail_at(s, s->pos, "keys need double quotes, not single quotes");
        return fail_found(s, "a double-quoted key");
    }
    size_t key_pos = s->pos, off = s->keys.len;
    bx_status st = scan_string(s, &s->keys);
    if (st == BX_OK)
        st = add_key(s, f, off, key_pos);
    if (st != BX_OK)
        return st;
    if (bx_buf_append(&s->keys, "", 1) != BX_OK) /* the NUL cJSON needs; \u0000 was refused */
        return out_of_memory(s);
    f->in_member = true;
    skip_ws(s);
    if (s->pos >= s->len || s->text[s->pos] != ':')
        return fail_found(s, "':' after the key");
    s->pos++;
    cJSON *value = NULL;
    st = scan_value(s, &value);
    if (st != BX_OK)
        return st;
    if (!cJSON_AddItemToObject(obj, s->keys.data + off, value)) {
        cJSON_Delete(value);
        return out_of_memory(s);
    }
    f->in_member = false;
    f->count++;
    return BX_OK;
}

/* Reads one element into arr: the value after a ',' (or the first). */
static bx_status scan_element(struct scanner *s, struct frame *f, cJSON *arr)
{
    if (f->count > 0 && s->pos < s->len && s->text[s->pos] == ']')
        return fail_at(s, s->pos, "trailing comma before ']'");
    f->in_member = true;
    cJSON *value = NULL;
    bx_status st = scan_value(s, &value);
    if (st != BX_OK)
        return st;
    if (!cJSON_AddItemToArray(arr, value)) {
        cJSON_Delete(value);
        return out_of_memory(s);
    }
    f->in_member = false;
    f->count++;
    return BX_OK;
}

/* Reads an object or an array at s->pos: its members or elements separated by ',' up to the
 * closing bracket. On failure everything built so far is freed (and the parse is over). */
static bx_status scan_container(struct scanner *s, bool is_array, cJSON **out)
{
    const char close = is_array ? ']' : '}';
    struct frame *f = open_frame(s, is_array);
    if (f == NULL)
        return BX_EINVAL;
    cJSON *c = is_array ? cJSON_CreateArray() : cJSON_CreateObject();
    if (c == NULL)
        return out_of_memory(s);
    bx_status st = BX_OK;
    if (s->pos < s->len && s->text[s->pos] == close) {
        s->pos++;
    } else {
        for (;;) {
            skip_ws(s);
            st = is_array ? scan_element(s, f, c) : scan_member(s, f, c);
            if (st != BX_OK)
                break;
            skip_ws(s);
            if (s->pos < s->len && s->text[s->pos] == ',') {
                s->pos++;
                continue;
            }
            if (s->pos < s->len && s->text[s->pos] == close) {
                s->pos++;
                break;
            }
            st = fail_found(s, is_array ? "',' or ']'" : "',' or '}'");
            break;
        }
    }
    if (st != BX_OK) {
        cJSON_Delete(c);
        return st;
    }
    if (!is_array)
        pop_keys(s, f);
    s->depth--;
    *out = c;
    return BX_OK;
}

/* true, false or null at s->pos (its first letter is there) into *out. */
static bx_status scan_literal(struct scanner *s, cJSON **out)
{
    static const struct {
        const char *word;
        cJSON *(*make)(void);
    } literals[] = {
        {"true", cJSON_CreateTrue}, {"false", cJSON_CreateFalse}, {"null", cJSON_CreateNull}};
    size_t i = 0;
    while (literals[i].word[0] != s->text[s->pos])
        i++;
    if (!starts_with(s, s->pos, literals[i].word))
        return fail_at(s, s->pos, "invalid literal (expected %s)", literals[i].word);
    s->pos += strlen(literals[i].word);
    *out = literals[i].make();
    return BX_OK;
}

/* Reads one value at s->pos into *out (NULL on failure, everything built so far freed). */
static bx_status scan_value(struct scanner *s, cJSON **out)
{
    bx_status st;
    double number = 0;
    *out = NULL;
    skip_ws(s);
    if (s->pos >= s->len)
        return fail_found(s, "a value");
    switch (s->text[s->pos]) {
    case '{':
        return scan_container(s, false, out);
    case '[':
        return scan_container(s, true, out);
    case '"':
        bx_buf_reset(&s->value);
        st = scan_string(s, &s->value);
        if (st == BX_OK)
            *out = cJSON_CreateString(s->value.len ? s->value.data : "");
        break;
    case 't':
    case 'f':
    case 'n':
        st = scan_literal(s, out);
        break;
    case 'N':
    case 'I':
        if (starts_with(s, s->pos, "NaN") || starts_with(s, s->pos, "Infinity"))
            return fail_at(s, s->pos, "NaN and Infinity are not JSON numbers");
        return fail_found(s, "a value");
    case '\'':
        return fail_at(s, s->pos, "strings need double quotes, not single quotes");
    default:
        if (s->text[s->pos] != '-' && !is_digit(s, s->pos))
            return fail_found(s, "a value");
        st = scan_number(s, &number);
        if (st == BX_OK)
            *out = cJSON_CreateNumber(number);
        break;
    }
    if (st == BX_OK && *out == NULL)
        return out_of_memory(s);
    return st;
}

bx_status bx_json_parse(const char *text, size_t len, cJSON **out, bx_error *err)
{
    assert(out != NULL);
    assert(text != NULL || len == 0);
    *out = NULL;
    struct scanner s;
    memset(&s, 0, sizeof(s));
    s.text = (const unsigned char *)text;
    s.len = len;
    s.err = err;
    cJSON *tree = NULL;
    bx_buf_init(&s.keys, len + 1);
    bx_buf_init(&s.value, len + 1);
    bx_buf_init(&s.number, len + 1);
    bx_status st = bx_buf_append(&s.keys, "", 0); /* keys.data is never NULL from here */
    if (st != BX_OK) {
        st = out_of_memory(&s);
        goto out;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        st = fail_at(&s, 0, "byte order mark before the JSON value");
        goto out;
    }
    skip_ws(&s);
    if (s.pos == len) {
        st = BX_ERR(err, BX_EINVAL, "empty body");
        goto out;
    }
    st = scan_value(&s, &tree);
    if (st != BX_OK)
        goto out;
    skip_ws(&s);
    if (s.pos != len) {
        cJSON_Delete(tree);
        st = fail_at(&s, s.pos, "unexpected data after the JSON value");
        goto out;
    }
    assert(s.depth == 0 && s.nentries == 0);
    *out = tree;
out:
    free(s.entries);
    free(s.buckets);
    bx_buf_free(&s.keys);
    bx_buf_free(&s.value);
    bx_buf_free(&s.number);
    return st;
}

/* ---- accessors ---- */

/* "records[2].date" from path "records[2]" and key "date"; just the key at the top level. */
static const char *member_name(const char *path, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", path ? path : "", path && *path ? "." : "", key);
    return out;
}

static const char *object_name(const char *path)
{
    return path && *path ? path : "body";
}

/* Finds member key of obj; on BX_OK *item is set. Failures return their status explicitly so
 * static analysis sees that *item is set whenever BX_OK comes back. */
static bx_status find_member(const cJSON *obj, const char *path, const char *key, bool required,
                             const cJSON **item, bx_error *err)
{
    assert(key != NULL);
    char name[256];
    if (!cJSON_IsObject(obj)) {
        BX_ERR(err, BX_EINVAL, "%s: expected an object", object_name(path));
        return BX_EINVAL;
    }
    *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (*item != NULL)
        return BX_OK;
    member_name(path, key, name, sizeof(name));
    if (required) {
        BX_ERR(err, BX_EINVAL, "%s: is required", name);
        return BX_EINVAL;
    }
    BX_ERR(err, BX_ENOTFOUND, "%s: not present", name);
    return BX_ENOTFOUND;
}

bx_status bx_json_get_string(const cJSON *obj, const char *path, const char *key, bool required,
                             size_t max_len, const char **out, bx_error *err)
{
    const cJSON *item = NULL;
    bx_status st = find_member(obj, path, key, required, &item, err);
    if (st != BX_OK)
        return st;
    char name[256];
    member_name(path, key, name, sizeof(name));
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return BX_ERR(err, BX_EINVAL, "%s: expected a string", name);
    size_t len = strlen(item->valuestring);
    if (len > max_len)
        return BX_ERR(err, BX_EINVAL, "%s: longer than %zu bytes", name, max_len);
    if (!bx_utf8_valid(item->valuestring, len))
        return BX_ERR(err, BX_EINVAL, "%s: invalid UTF-8", name);
    *out = item->valuestring;
    return BX_OK;
}

bx_status bx_json_get_int(const cJSON *obj, const char *path, const char *key, bool required,
                          int64_t min, int64_t max, int64_t *out, bx_error *err)
{
    assert(min <= max);
    const cJSON *item = NULL;
    bx_status st = find_member(obj, path, key, required, &item, err);
    if (st != BX_OK)
        return st;
    if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        /* 2^63 is exact in a double; anything in [-2^63, 2^63) converts without overflow. */
        if (isfinite(v) && v == trunc(v) && v >= -9223372036854775808.0 &&
            v < 9223372036854775808.0) {
            int64_t i = (int64_t)v;
            if (i >= min && i <= max) {
                *out = i;
                return BX_OK;
            }
        }
    }
    char name[256];
    return BX_ERR(err, BX_EINVAL, "%s: expected an integer from %lld to %lld",
                  member_name(path, key, name, sizeof(name)), (long long)min, (long long)max);
}

bx_status bx_json_get_bool(const cJSON *obj, const char *path, const char *key, bool required,
                           bool *out, bx_error *err)
{
    const cJSON *item = NULL;
    bx_status st = find_member(obj, path, key, required, &item, err);
    if (st != BX_OK)
        return st;
    if (!cJSON_IsBool(item)) {
        char name[256];
        return BX_ERR(err, BX_EINVAL, "%s: expected true or false",
                      member_name(path, key, name, sizeof(name)));
    }
    *out = cJSON_IsTrue(item);
    return BX_OK;
}

bx_status bx_json_only_keys(const cJSON *obj, const char *path, const char *const *allowed,
                            bx_error *err)
{
    assert(allowed != NULL);
    if (!cJSON_IsObject(obj))
        return BX_ERR(err, BX_EINVAL, "%s: expected an object", object_name(path));
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known && m->string; a++)
            known = strcmp(*a, m->string) == 0;
        if (known)
            continue;
        char shown[KEY_SHOWN_MAX + 8];
        const char *k = m->string ? m->string : "";
        show_text(k, strlen(k), shown, sizeof(shown));
        return BX_ERR(err, BX_EINVAL, "%s: unknown field \"%s\"", object_name(path), shown);
    }
    return BX_OK;
}

bool bx_token_valid(const char *s, size_t max, const char *extra)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n == max ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (extra && strchr(extra, c))))
            return false;
    }
    return n >= 1;
}
