/* state_json: a case_state to and from the JSON kept in cases.case.state. */
#ifndef BX_ESCALATE_STATE_JSON_H
#define BX_ESCALATE_STATE_JSON_H

#include "bx_buf.h"
#include "bx_status.h"
#include "ladder.h"

#include <stddef.h>

/* Appends s as one JSON object to out. */
bx_status state_json_encode(const case_state *s, bx_buf *out) BX_MUSTCHECK;
/* Reads what state_json_encode wrote (len bytes of text). All or nothing: *out is written only on
 * success; BX_EINVAL naming the member otherwise. */
bx_status state_json_decode(const char *text, size_t len, case_state *out,
                            bx_error *err) BX_MUSTCHECK;

#endif
