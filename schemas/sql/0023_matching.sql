-- baoxue migration 0023: transfers matched across schools and 四查三比对 (issue 15, items 5 and 6).
--
-- The registry gains the national student number (学籍号: G or L and the 18-character id) beside
-- the id number, both private (registry.student_private), and two private lists a county imports
-- with `bxctl import`: the school-age children of the household register (户籍) and the children
-- of registered-poor households (脱贫户). Id numbers stay in these private tables: the only way the
-- services learn that two registry records are the same child is registry.same_child(), which
-- answers with registry ids and never with the numbers it compared.
--
-- `bxctl match` writes the county's three ledgers (matching.run, matching.entry) and, for every
-- child found out of school, a finding (matching.finding) that bx-escalate, the only writer of
-- cases, picks up and turns into a suspected case for the township (cases.finding_applied says
-- which it took). bx-escalate confirms a transfer out when the child is enrolled at another school
-- of the province and records the match (cases.transfer_match) so both schools see it;
-- cases.transfer_check says which registry revision and transfer tasks it has looked at, so
-- `bxctl settle` waits for the check (matching.settle_pending).

-- ---- the registry ----

ALTER TABLE registry.student_private
    ADD COLUMN student_number text CHECK (student_number ~ '^[GL][0-9]{17}[0-9X]$');
CREATE INDEX student_private_national_id ON registry.student_private (national_id)
    WHERE national_id IS NOT NULL;
CREATE INDEX student_private_student_number ON registry.student_private (student_number)
    WHERE student_number IS NOT NULL;

-- A child of the household register is the subject of a case under the key hh-<county>-<n>, so
-- no registry student may have an id of that form (bxctl import refuses one too).
ALTER TABLE registry.student ADD CONSTRAINT student_id_not_household CHECK (id NOT LIKE 'hh-%');

-- The school-age children of a county's household register (户籍), as the county imported them.
-- Re-importing a county's list keeps each child's key (by id number) and drops the children the
-- new list no longer has.
CREATE TABLE registry.household_child (
    id            bigserial PRIMARY KEY,
    county_code   char(6) NOT NULL REFERENCES registry.county (code),
    township_code char(9) NOT NULL REFERENCES registry.township (code),
    national_id   text NOT NULL CHECK (national_id ~ '^[0-9]{17}[0-9X]$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    birth_date    date NOT NULL,
    address       text CHECK (length(address) <= 200),
    imported_at   timestamptz NOT NULL DEFAULT now(),
    child_key     text GENERATED ALWAYS AS ('hh-' || county_code || '-' || id::text) STORED,
    UNIQUE (county_code, national_id),
    CHECK (substr(township_code, 1, 6) = county_code)
);
CREATE INDEX household_child_national_id ON registry.household_child (national_id);

-- The children of registered-poor households (建档立卡/脱贫户) of a county, by id number only.
CREATE TABLE registry.poverty_child (
    county_code char(6) NOT NULL REFERENCES registry.county (code),
    national_id text NOT NULL CHECK (national_id ~ '^[0-9]{17}[0-9X]$'),
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (county_code, national_id)
);

GRANT ALL ON registry.household_child, registry.poverty_child TO bx_registry_admin;
GRANT ALL ON SEQUENCE registry.household_child_id_seq TO bx_registry_admin;

-- Other registry records of the same child as each of student_ids, at schools of the same province:
-- the same national student number, or the same id number (the id part of a G student number counts
-- as one; an L number is a temporary one). by_number and by_id say which matched; conflict that one matched while the other is known
-- on both sides and differs. Only registry ids and statuses come out: never a number.
CREATE FUNCTION registry.same_child(student_ids text[])
RETURNS TABLE (student_id text, other_id text, other_school text, other_status text,
               by_number boolean, by_id boolean, conflict boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH me AS (
        SELECT s.id, s.school_id, p.student_number AS num,
               coalesce(p.national_id, CASE WHEN p.student_number LIKE 'G%' THEN substr(p.student_number, 2) END)
                   AS nid,
               substr(sc.township_code, 1, 2) AS province
        FROM registry.student s
        JOIN registry.student_private p ON p.student_id = s.id
        JOIN registry.school sc ON sc.id = s.school_id
        WHERE s.id = ANY (student_ids)
    ), other AS (
        SELECT s.id, s.school_id, s.status, p.student_number AS num,
               coalesce(p.national_id, CASE WHEN p.student_number LIKE 'G%' THEN substr(p.student_number, 2) END)
                   AS nid,
               substr(sc.township_code, 1, 2) AS province
        FROM registry.student s
        JOIN registry.student_private p ON p.student_id = s.id
        JOIN registry.school sc ON sc.id = s.school_id
    )
    SELECT me.id, o.id, o.school_id, o.status,
           coalesce(o.num = me.num, false), coalesce(o.nid = me.nid, false),
           (o.num IS NOT NULL AND me.num IS NOT NULL AND o.num <> me.num)
               OR (o.nid IS NOT NULL AND me.nid IS NOT NULL AND o.nid <> me.nid)
    FROM me JOIN other o ON o.id <> me.id AND o.province = me.province
        AND ((me.num IS NOT NULL AND o.num = me.num) OR (me.nid IS NOT NULL AND o.nid = me.nid))
    ORDER BY 1, 2
$$;
REVOKE ALL ON FUNCTION registry.same_child(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION registry.same_child(text[]) TO bx_escalate, bx_registry_admin;

-- ---- the ledgers of 四查三比对 (bxctl match) ----

CREATE SCHEMA matching;

-- One match of a county's household register against the registry, with its counts.
CREATE TABLE matching.run (
    id             bigserial PRIMARY KEY,
    county_code    char(6) NOT NULL REFERENCES registry.county (code),
    matched_at     timestamptz NOT NULL, -- the clock's now
    matched_by     text NOT NULL CHECK (length(matched_by) BETWEEN 1 AND 64),
    school_age     integer NOT NULL, -- children in the household list
    in_school      integer NOT NULL, -- enrolled at a school of the province
    never_enrolled integer NOT NULL,
    out_of_school  integer NOT NULL, -- left a school, enrolled at none
    dropouts       integer NOT NULL, -- on the dropout roster or dropped out
    ambiguous      integer NOT NULL, -- enrolled at several schools: refused, reported
    poor_out       integer NOT NULL  -- registered-poor children out of school (the three above)
);
CREATE INDEX run_county ON matching.run (county_code, id);

-- The three ledgers (三本台账) of a run: school_age (every child of the household list, with its
-- status), suspected (never enrolled or out of school: each a suspected case for the township),
-- dropout (the county's dropouts, from the household list or the county's schools). child_key is
-- the household key (hh-...), student_id the registry record when there is one; case_subject the
-- student id a suspected case is opened under. No names and no numbers: those stay in the registry.
CREATE TABLE matching.entry (
    run_id          bigint NOT NULL REFERENCES matching.run (id),
    ledger          text NOT NULL CHECK (ledger IN ('school_age', 'suspected', 'dropout')),
    child_key       text,
    student_id      text,
    school_id       text,
    township_code   char(9),
    status          text NOT NULL CHECK (status IN ('enrolled', 'suspended', 'home_education',
                                                    'dropout', 'out_of_school', 'never_enrolled',
                                                    'ambiguous')),
    registered_poor boolean NOT NULL DEFAULT false,
    case_subject    text,
    detail          text NOT NULL DEFAULT '' CHECK (length(detail) <= 300),
    CHECK (child_key IS NOT NULL OR student_id IS NOT NULL)
);
CREATE INDEX entry_run ON matching.entry (run_id, ledger);

-- A child found out of school (kind out_of_school: open a suspected case with the township's task
-- to find and enrol the child) or found enrolled again (kind enrolled: close the case a match
-- opened), for bx-escalate to apply. student_id is the case's subject (a registry student or a
-- household key), school_id the case's school (the child's last school, or the township's school
-- for the child's age).
CREATE TABLE matching.finding (
    id            bigserial PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES matching.run (id),
    kind          text NOT NULL CHECK (kind IN ('out_of_school', 'enrolled')),
    student_id    text COLLATE "C" NOT NULL CHECK (student_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    school_id     text NOT NULL,
    township_code char(9) NOT NULL,
    found_on      date NOT NULL,
    found_at      timestamptz NOT NULL,
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 190)
);

GRANT USAGE ON SCHEMA matching TO bx_escalate, bx_registry_admin;
GRANT ALL ON ALL TABLES IN SCHEMA matching TO bx_registry_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA matching TO bx_registry_admin;
GRANT SELECT ON matching.finding TO bx_escalate;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bx_console') THEN
        GRANT USAGE ON SCHEMA matching TO bx_console;
        GRANT SELECT ON matching.run, matching.entry TO bx_console;
    END IF;
END $$;

-- ---- bx-escalate's side ----

-- The findings bx-escalate has applied (each once), and what came of them.
CREATE TABLE cases.finding_applied (
    finding_id bigint PRIMARY KEY,
    case_id    bigint REFERENCES cases.case (id),
    applied_at timestamptz NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('opened', 'followed', 'closed', 'ignored'))
);

-- Transfers out matched with the receiving school's enrolment: confirmed (the case closed as
-- transferred) or refused (several records or conflicting numbers: never guessed; the transfer
-- waits for the receiving school's paperwork). Read by both schools' views.
CREATE TABLE cases.transfer_match (
    id            bigserial PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES cases.case (id),
    student_id    text COLLATE "C" NOT NULL,
    from_school   text COLLATE "C" NOT NULL,
    to_student_id text COLLATE "C",
    to_school     text COLLATE "C",
    matched_by    text CHECK (matched_by IN ('student_number', 'national_id', 'both')),
    outcome       text NOT NULL CHECK (outcome IN ('confirmed', 'refused')),
    detail        text NOT NULL DEFAULT '' CHECK (length(detail) <= 500),
    decided_at    timestamptz NOT NULL,
    UNIQUE (case_id, outcome),
    CHECK (outcome = 'refused' OR (to_student_id IS NOT NULL AND to_school IS NOT NULL))
);
CREATE INDEX transfer_match_to ON cases.transfer_match (to_school);
CREATE INDEX transfer_match_to_student ON cases.transfer_match (to_student_id);

-- What the last transfer check looked at: the registry revision and the newest open transfer task
-- (open ones only: the partial index on open tasks finds them at province scale).
CREATE TABLE cases.transfer_check (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision   bigint NOT NULL,
    task_id    bigint NOT NULL,
    checked_at timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON cases.finding_applied, cases.transfer_match, cases.transfer_check
    TO bx_escalate;
GRANT USAGE ON SEQUENCE cases.transfer_match_id_seq TO bx_escalate;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bx_console') THEN
        GRANT SELECT ON cases.transfer_match TO bx_console;
    END IF;
END $$;

-- For `bxctl settle`: findings bx-escalate has not applied, and a transfer check that is behind
-- the registry or the transfer tasks while a transfer case is open (the check closes it once the
-- receiving school's enrolment is in the registry). transfer_kind is bx-escalate's
-- ladder.transfer_task, transfer_confirmation by default.
CREATE FUNCTION matching.settle_pending(now timestamptz)
RETURNS TABLE (what text, pending bigint)
LANGUAGE sql STABLE AS $$
    SELECT 'bx-escalate: matching findings not applied', count(*) FROM matching.finding f
        WHERE NOT EXISTS (SELECT 1 FROM cases.finding_applied a WHERE a.finding_id = f.id)
    UNION ALL
    SELECT 'bx-escalate: transfer check behind the registry', count(*)
        FROM cases.case c
        WHERE c.closed_at IS NULL
          AND EXISTS (SELECT 1 FROM cases.task t WHERE t.case_id = c.id
                      AND t.kind = 'transfer_confirmation' AND t.outcome IS NULL)
          AND NOT EXISTS (SELECT 1 FROM cases.transfer_check k
                          WHERE k.revision >= (SELECT revision FROM registry.revision)
                            AND k.task_id >= (SELECT coalesce(max(t.id), 0) FROM cases.task t
                                              WHERE t.kind = 'transfer_confirmation'
                                                AND t.outcome IS NULL))
$$;
