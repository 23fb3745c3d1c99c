/* bx_policyfile: the one reader of baoxue's "name = value" policy files (the ladder, its duties,
 * the score policy, the notify templates). It owns the format; each loader owns the meaning of
 * its names and gets one callback per setting. */
#ifndef BX_POLICYFILE_H
#define BX_POLICYFILE_H

#include "bx_status.h"

#include <stdbool.h>
#include <stddef.h>

/* The format, line by line (lines end at "\n"; a "\r" before it is dropped):
 * - leading and trailing spaces and tabs are dropped; an empty line, or one whose first other
 *   character is '#', is skipped (there are no comments after a value);
 * - every other line is "<name> = <value>": the name and the value are trimmed of spaces and
 *   tabs; the value may be empty and may hold '=';
 * - the file is UTF-8, no line holds a NUL byte, and a value holds no control character.
 *
 * Every error is BX_EINVAL unless said, names "<file>:<line>" and is one of:
 *   "<file>: larger than <file_max> bytes"
 *   "<file>:<n>: line longer than <line_max> bytes or holding a NUL byte"
 *   "<file>:<n>: the line is not valid UTF-8"                  (a line without '=')
 *   "<file>:<n>: expected \"name = value\", got \"<first 40 bytes>\""
 *   "<file>:<n>: expected a setting name before '='"
 *   "<file>:<n>: the name is not valid UTF-8"
 *   "<file>:<n>: <name>: the value is not valid UTF-8"
 *   "<file>:<n>: <name>: a control character in the value"
 *   "<file>:<n>: <name> set twice (first on line <m>)"         (unless allow_repeats)
 * and, from bx_policyfile_load only,
 *   "<path>: cannot open: <strerror>"  BX_ENOTFOUND when the file does not exist, else BX_EIO
 *   "<path>: read error"               BX_EIO
 * Names and values quoted in messages are cut to 40 bytes. */
typedef struct bx_policyfile_opts {
    size_t file_max;    /* bytes; 0: 65536 */
    size_t line_max;    /* bytes of one line before its "\n", a "\r" included; 0: 1024 */
    bool allow_repeats; /* false: a name given twice is an error */
} bx_policyfile_opts;

/* Called once per setting, in file order. name and value are NUL-terminated, trimmed, and may be
 * changed in place (e.g. split at commas); they are valid until the callback returns. file is the
 * name passed to the reader, line counts from 1: errors should start "<file>:<line>: ". A status
 * other than BX_OK stops the reader, which returns it (err as the callback set it). */
typedef bx_status (*bx_policyfile_fn)(void *arg, const char *file, int line, char *name,
                                      char *value, bx_error *err);

/* s without its leading and trailing spaces and tabs (the end cut in place), as a setting's name
 * and value are read. */
char *bx_policyfile_trim(char *s);

/* A setting's value read as a decimal integer in [min, max]: 1 to max_digits digits (max_digits at
 * most 9) and nothing else, no sign and no spaces. False, *out untouched, when it is not. */
bool bx_policyfile_int(const char *value, int max_digits, int min, int max, int *out);

/* Reads len bytes of text (borrowed; need not be NUL-terminated) named file in messages. opts may
 * be NULL for the defaults. */
bx_status bx_policyfile_parse(const char *text, size_t len, const char *file,
                              const bx_policyfile_opts *opts, bx_policyfile_fn fn, void *arg,
                              bx_error *err) BX_MUSTCHECK;

/* Reads the file at path (at most file_max bytes) and parses it, named by path. */
bx_status bx_policyfile_load(const char *path, const bx_policyfile_opts *opts, bx_policyfile_fn fn,
                             void *arg, bx_error *err) BX_MUSTCHECK;

#endif
