/* bx-console: the page handlers' routes and shared state (owned by the pages; the core ships
 * this empty stub). */
#include "console.h"

#include <stddef.h>

const console_route console_page_routes[] = {
    {NULL, NULL, NULL, false, false},
};
const size_t console_page_nroutes = 0;

bx_status console_pages_new(const console_pages_conf *conf, void **out, bx_error *err)
{
    *out = NULL;
    return BX_OK;
}

void console_pages_free(void *pages)
{
}
