/* bx_name: enum values to their names and back through one table. */
#include "bx_name.h"

#include <string.h>

const char *bx_name_of(const char *const *names, size_t n, int value, const char *fallback)
{
    if (value < 0 || (size_t)value >= n || names[value] == NULL)
        return fallback;
    return names[value];
}

bx_status bx_name_find(const char *const *names, size_t n, const char *name, int *value)
{
    for (size_t i = 0; name && i < n; i++) {
        if (names[i] && strcmp(name, names[i]) == 0) {
            *value = (int)i;
            return BX_OK;
        }
    }
    return BX_ENOTFOUND;
}
