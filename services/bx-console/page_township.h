/* page_township: the township officer's pages, the sign-off of the return report (复学报告书):
 * GET /township lists the township's cases awaiting it (overdue first); GET and POST
 * /township/cases/:case show a case and sign its return off as the signed-in officer. Listed in
 * page_routes.c. */
#ifndef CONSOLE_PAGE_TOWNSHIP_H
#define CONSOLE_PAGE_TOWNSHIP_H

#include "console.h"

bx_status page_township_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_township_case_get(console_request *req, console_reply *rep, bx_error *err);
bx_status page_township_case_post(console_request *req, console_reply *rep, bx_error *err);

#endif
