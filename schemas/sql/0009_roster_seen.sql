-- baoxue migration 0009: one definition of "on the dropout roster" (辍学 rather than 疑似辍学) and of
-- the attendance codes that count as "seen at school", read by every query that needs them
-- (bx-escalate's duties, bxctl report and ledger, bx-sim's summary) instead of a list in each.
--
-- The roster: a case is on it once it has entered dropout_roster or a later stage of the default
-- ladder (deploy/policy/ladder.policy). Stage names are the shared ones of
-- schemas/topics/bx.case.events.v1 (services/bx-escalate/ladder.c).
-- Seen: the codes bx-score stores in attendance.fact.value for a child who was there at some point
-- of the day or period, or was excused by a leave (services/bx-score/score.c): present (p), late
-- (t), early leave (e), sick leave (ls), personal leave (lp). Absent (a) is the one code left out.
--
-- The functions are IMMUTABLE plain SQL, so PostgreSQL inlines them into the calling query and the
-- plan is the one of the literal list. Changing a list is a new migration with CREATE OR REPLACE.

CREATE FUNCTION cases.roster_stages() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['dropout_roster', 'township_notice', 'deadline_notice', 'legal_referral']::text[]
$$;

-- Whether a case at this stage (or a stage_entered event into it) is on the roster; false for
-- NULL (a case with no stage yet).
CREATE FUNCTION cases.on_roster(stage text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(stage = ANY (cases.roster_stages()), false)
$$;

CREATE FUNCTION attendance.seen_codes() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['p', 't', 'e', 'ls', 'lp']::text[]
$$;

-- Only the roles that read cases and attendance call them (they already have USAGE on the schemas).
REVOKE ALL ON FUNCTION cases.roster_stages(), cases.on_roster(text), attendance.seen_codes()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cases.roster_stages(), cases.on_roster(text), attendance.seen_codes()
    TO bx_escalate, bx_notify;
