/* bx_schema_check: validates JSON against the JSON Schema (draft 2020-12) subset of schemas/topics.
 */
#ifndef BX_SCHEMA_CHECK_H
#define BX_SCHEMA_CHECK_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Validates instance against schema, the root of a schema document ("$ref": "#/$defs/name" and
 * other "#/..." pointers resolve inside it). Both are borrowed. Returns true when the instance is
 * valid. Otherwise returns false and, when errlen > 0, writes "<path>: <message>" for the first
 * violation into err, always NUL-terminated. The path names the offending value as
 * "leave_kind", "details.channel" or "factors[0].points"; "(root)" is the whole instance; for a
 * missing required member it is the path the member should have had.
 * When no alternative of anyOf/oneOf matches and exactly one admits the value's type ("a task or
 * null"), that alternative's own error is reported, so the path points inside it. A failed "not"
 * quotes the forbidden schema's description.
 *
 * Supported: boolean schemas, type (a name or an array of names, "integer" is any integral number),
 * enum, const, properties, required, additionalProperties (false or a schema), minProperties,
 * maxProperties, items, minItems, maxItems, pattern (POSIX extended regex with \d, \w, \s
 * translated), minLength, maxLength (in code points), minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum, format "date" and "date-time" (RFC 3339, checked for real calendar dates),
 * if/then/else, allOf, anyOf, oneOf, not, $ref to "#" pointers. Annotations ($schema, $id, $defs,
 * $comment, title, description, examples, default, x-*) are ignored. Any other keyword is reported
 * as a violation ("schema uses unsupported keyword ..."), so a gap here never passes silently. */
bool bx_schema_check(const cJSON *schema, const cJSON *instance, char *err, size_t errlen);

/* Parses text (len bytes) as JSON and validates it as bx_schema_check does; a parse failure is a
 * violation at "(root)". For checking message payloads read from Kafka. */
bool bx_schema_check_text(const cJSON *schema, const char *text, size_t len, char *err,
                          size_t errlen);

/* Reads and parses the JSON file at path. Returns NULL (reason on stderr) when it cannot be read or
 * parsed. Caller frees with cJSON_Delete. */
cJSON *bx_schema_load(const char *path);

/* Loads schemas/topics/<topic>.schema.json from the source tree named by the environment variable
 * BX_SOURCE_DIR (set by ctest for every test), e.g. bx_schema_load_topic("bx.attendance.v1").
 * Returns NULL (reason on stderr) on failure. Caller frees with cJSON_Delete. */
cJSON *bx_schema_load_topic(const char *topic);

#endif
