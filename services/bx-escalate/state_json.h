/* state_json: a case_state to and from the JSON kept in cases.case.state. */
#ifndef BX_ESCALATE_STATE_JSON_H
#define BX_ESCALATE_STATE_JSON_H

#include "bx_buf.h"
#include "bx_status.h"
#include "ladder.h"

#include <stddef.h>

/* Appends s as one JSON object (format version 2) to out. Stages and task rules are written by
 * their names in p (stages[].name, task_rules[].kind), never by index, so the state still means
 * the same after an operator reorders or inserts stages and task rules. s must be a state of p
 * (from ladder_step or state_json_decode with p): an index outside p is BX_EINVAL naming the case.
 * BX_ENOMEM when out reaches its maximum. p and s are borrowed for the call. */
bx_status state_json_encode(const ladder_policy *p, const case_state *s, bx_buf *out,
                            bx_error *err) BX_MUSTCHECK;

/* Reads what state_json_encode wrote (len bytes of text), mapping the names back to p's current
 * indices. A stage or task kind p does not have is BX_EINVAL naming the case and the name (the
 * policy was edited while the case was open): never mapped to another rule.
 * Version 1 (indices, written before version 2) is still read: its indices must lie inside p's
 * stages and task rules and are then taken as they are. A version 1 state written under a policy
 * whose stages or task rules were in another order cannot be told from one written under p; the
 * next encode stores it as version 2.
 * All or nothing: *out is written only on success; BX_EINVAL naming the member otherwise. p is
 * borrowed for the call. */
bx_status state_json_decode(const ladder_policy *p, const char *text, size_t len, case_state *out,
                            bx_error *err) BX_MUSTCHECK;

#endif
