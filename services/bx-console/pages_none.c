/* bx-console without the pages (BX_CONSOLE_CORE_ONLY): no page routes, no page state, so the
 * core builds and is tested on its own while the pages change. */
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
