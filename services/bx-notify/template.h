/* template: the messages bx-notify sends, as data (deploy/policy/notify.templates). A template
 * has a name (the request's "template"), an audience (guardian or staff) and a text with
 * {placeholders} filled from the request's params and from what bx-notify looks up (the school's
 * name, the student's name for staff, the days missed this term). Rendering refuses a
 * placeholder it cannot fill, so no message goes out with a hole in it. */
#ifndef BX_NOTIFY_TEMPLATE_H
#define BX_NOTIFY_TEMPLATE_H

#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct template_set template_set;

/* Loads and checks the file: unknown placeholders, a guardian template that mentions a risk flag,
 * an id number or 辍学, or a guardian text longer than the limit stop loading with file:line. */
bx_status template_set_load(const char *path, template_set **out, bx_error *err) BX_MUSTCHECK;
void template_set_free(template_set *ts);

/* Name/value pairs to fill placeholders from; looked up by name. */
typedef struct template_var {
    const char *name;
    const char *value;
} template_var;

/* Renders template name with vars into out (NUL-terminated). BX_ENOTFOUND for an unknown
 * template, BX_EINVAL naming the placeholder that has no value. */
bx_status template_render(const template_set *ts, const char *name, const template_var *vars,
                          size_t nvars, char *out, size_t outsize, bx_error *err) BX_MUSTCHECK;

/* True when the template is meant for guardians (parents). */
bool template_for_guardian(const template_set *ts, const char *name);

/* Number of SMS segments a text takes (70 characters for one, 67 each when split). */
int template_sms_segments(const char *utf8);

/* True when the set holds a template of that name. */
bool template_exists(const template_set *ts, const char *name);

/* True when the template's delivery is "immediate": a request for it is sent as its own SMS the
 * moment it is taken, even when it comes as a task (a county's reports), instead of being
 * collected into the person's daily digest. False for an unknown template. */
bool template_immediate(const template_set *ts, const char *name);

/* The most segments the template was designed for (its "segments" setting); 0 for an unknown
 * template. A rendered text may exceed it with long names; the caller decides what to do. */
int template_max_segments(const template_set *ts, const char *name);

/* The Chinese label of a task kind, a staff role or a stage (kind is "task", "role" or "stage"),
 * from the file's label.<kind>.<key> settings; key itself when the file has none. Borrowed from ts
 * (or key). For rendering the digest's task list. */
const char *template_label(const template_set *ts, const char *kind, const char *key);

/* "2026-11-27" -> "11月27日"; a value already in that form is copied. BX_EINVAL otherwise. */
bx_status template_format_date(const char *value, char *out, size_t outsize) BX_MUSTCHECK;
/* An RFC 3339 time ("2026-11-28T17:00:00+08:00") -> local "11月28日17:00". BX_EINVAL otherwise. */
bx_status template_format_due(const char *value, char *out, size_t outsize) BX_MUSTCHECK;

/* A term code -> how a message shows it: "2026-autumn" -> 2026年秋季学期 ("-spring" 春季学期); any
 * other code as it is. BX_EINVAL for an empty one, BX_ENOMEM when out is short. */
bx_status template_format_term(const char *value, char *out, size_t outsize) BX_MUSTCHECK;

/* The first word a message to a guardian must never carry (辍学, 风险, 贫困, 残疾, 身份证, risk,
 * ...) found in text, or NULL. */
const char *template_forbidden_word(const char *text);

/* {code}: a one-time code (an activation code), TEMPLATE_CODE_DIGITS_MIN to _MAX digits. */
#define TEMPLATE_CODE_DIGITS_MIN 6
#define TEMPLATE_CODE_DIGITS_MAX 10
/* Masks in place, with '*', every run of TEMPLATE_CODE_DIGITS_MIN to _MAX digits that is not part
 * of an identifier (a letter, digit, '-' or '_' before it, a letter or '_' after it): what a
 * {code} may have left in a reason or a record leaving bx-notify. */
void template_mask_codes(char *s);

#endif
