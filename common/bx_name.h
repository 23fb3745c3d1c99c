/* bx_name: the names of an enum's values in one table indexed by value, read both ways, so a
 * value's name is written once (wire names, policy words, SQL states). */
#ifndef BX_NAME_H
#define BX_NAME_H

#include "bx_status.h"

#include <stddef.h>

/* The entries of a names table (an array, not a pointer). */
#define BX_NAMES_COUNT(names) (sizeof(names) / sizeof((names)[0]))

/* names[value], or fallback when value is outside 0..n-1 or its entry is NULL (a hole the
 * designated initializers left). names is borrowed; the result is one of its strings or
 * fallback. */
const char *bx_name_of(const char *const *names, size_t n, int value, const char *fallback);
/* The value whose name is name, compared exactly (a NULL name matches none): BX_OK and *value;
 * BX_ENOTFOUND otherwise, *value untouched. */
bx_status bx_name_find(const char *const *names, size_t n, const char *name, int *value);

#endif
