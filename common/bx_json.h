/* bx_json: strict JSON parsing on top of cJSON, and field accessors with errors that name the path.
 */
#ifndef BX_JSON_H
#define BX_JSON_H

#include "bx_status.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* Deepest nesting accepted; deeper input is rejected before cJSON recurses into it. */
#define BX_JSON_MAX_DEPTH 32

/* Parses exactly len bytes of text as one JSON value, strictly (RFC 8259 plus what cJSON lets
 * through): rejects invalid UTF-8 (overlong forms, surrogates, code points past U+10FFFF),
 * \u0000 escapes, unpaired surrogate escapes, raw control characters in strings, duplicate keys in
 * one object, numbers that do not fit a double (1e400) or are not finite, nesting deeper than
 * BX_JSON_MAX_DEPTH, and anything after the value but whitespace. On error err->msg names the line,
 * the column and, where known, the path ("line 3, column 14 (records[2].date): ...").
 * On success *out is the tree; caller frees it with cJSON_Delete. */
bx_status bx_json_parse(const char *text, size_t len, cJSON **out, bx_error *err) BX_MUSTCHECK;

/* Accessors for a member `key` of object obj. `path` is the object's own path for messages
 * ("records[2]"). A missing member is BX_ENOTFOUND when !required (out untouched) and BX_EINVAL
 * ("records[2].date: is required") when required; a member of the wrong type or out of bounds is
 * BX_EINVAL with a message naming path.key. Strings are borrowed from the tree. */
bx_status bx_json_get_string(const cJSON *obj, const char *path, const char *key, bool required,
                             size_t max_len, const char **out, bx_error *err) BX_MUSTCHECK;
bx_status bx_json_get_int(const cJSON *obj, const char *path, const char *key, bool required,
                          int64_t min, int64_t max, int64_t *out, bx_error *err) BX_MUSTCHECK;
bx_status bx_json_get_bool(const cJSON *obj, const char *path, const char *key, bool required,
                           bool *out, bx_error *err) BX_MUSTCHECK;
/* Returns BX_EINVAL naming path.key when obj has a member not listed in allowed (NULL-ended). */
bx_status bx_json_only_keys(const cJSON *obj, const char *path, const char *const *allowed,
                            bx_error *err) BX_MUSTCHECK;

/* True when s (len bytes) is valid UTF-8 with no NUL byte. */
bool bx_utf8_valid(const char *s, size_t len);
/* True when s is 1 to max characters of A-Z a-z 0-9 _ - or of extra (NULL: none), the shape of
 * ids, event ids and names from outside; false for NULL. Reads at most max + 1 bytes of s. */
bool bx_token_valid(const char *s, size_t max, const char *extra);
/* Removes in place every byte of the NUL-terminated s that is not part of a valid UTF-8 character,
 * such as the first bytes of a character a bounded snprintf cut in two, so that s may go into JSON
 * text. Returns the new length. */
size_t bx_utf8_repair(char *s);

#endif
