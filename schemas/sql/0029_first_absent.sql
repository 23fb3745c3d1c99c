-- baoxue migration 0029: a case's first day absent (首次缺勤日期 of the ledgers and exports) is the
-- day bx-escalate opened it for: the first day of the streak that opened it (or the day of the
-- unexcused periods), which is the date its id ends with (<student>:<YYYYMMDD>). Until now it was
-- read from the state's streak_start, the current streak, which the child's return clears: every
-- case of the returned list (复学) showed an empty first day absent, and a case whose child came
-- back and stayed away again showed the second streak's first day. streak_start stays the
-- fallback for an id of another form. The same expression is bxctl ledger's
-- (services/bx-escalate/report_queries.c), so the console's lists and exports and bxctl agree.

CREATE OR REPLACE FUNCTION console.first_absent(state jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN (state->>'case_id') ~ ':[0-9]{8}$'
            THEN substr(right(state->>'case_id', 8), 1, 4) || '-' ||
                 substr(right(state->>'case_id', 8), 5, 2) || '-' || right(state->>'case_id', 2)
        WHEN (state->>'streak_start') ~ '^[0-9]{1,6}$'
            THEN (date '1970-01-01' + (state->>'streak_start')::int)::text
        ELSE '' END
$$;

UPDATE console.case_summary s SET first_absent = console.first_absent(c.state)
  FROM cases.case c
 WHERE c.id = s.case_id AND s.first_absent IS DISTINCT FROM console.first_absent(c.state);
