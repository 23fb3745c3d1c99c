-- baoxue migration 0010: bx-console's people. Per-person accounts (argon2id), activation codes,
-- sessions, login failures, the append-only audit of every view of a child's personal data and
-- every write, and the home-visit notes that never leave PostgreSQL. Adds the city and province
-- officers to the registry's roles, placed by code prefix (registry.staff.area_code).

CREATE SCHEMA console;

-- City officers (4-digit prefix of the counties' codes) and province officers (2 digits).
ALTER TABLE registry.staff ADD COLUMN area_code text CHECK (area_code ~ '^([0-9]{2}|[0-9]{4})$');
ALTER TABLE registry.staff DROP CONSTRAINT staff_role_check, DROP CONSTRAINT staff_check;
ALTER TABLE registry.staff ADD CONSTRAINT staff_role_check
    CHECK (role IN ('homeroom_teacher', 'subject_teacher', 'principal', 'academic_office',
                    'township_officer', 'county_officer', 'city_officer', 'province_officer'));
ALTER TABLE registry.staff ADD CONSTRAINT staff_check
    CHECK ((role = 'township_officer' AND township_code IS NOT NULL)
        OR (role = 'county_officer' AND county_code IS NOT NULL)
        OR (role = 'city_officer' AND area_code ~ '^[0-9]{4}$')
        OR (role = 'province_officer' AND area_code ~ '^[0-9]{2}$')
        OR (role NOT IN ('township_officer', 'county_officer', 'city_officer', 'province_officer')
            AND school_id IS NOT NULL));

-- One account per staff member. The registry's staff table stays written only by bxctl import;
-- an account is made by `bxctl staff invite`.
CREATE TABLE console.account (
    staff_id      text PRIMARY KEY REFERENCES registry.staff(id),
    password_hash text CHECK (password_hash LIKE '$argon2id$%'), -- NULL until activated, after a reset
    state         text NOT NULL DEFAULT 'invited' CHECK (state IN ('invited', 'active', 'disabled')),
    created_at    timestamptz NOT NULL,
    changed_at    timestamptz NOT NULL,
    CHECK (state <> 'active' OR password_hash IS NOT NULL)
);

-- One-time activation codes (8 digits, sent by SMS): only SHA-256(staff_id ":" code) is kept.
CREATE TABLE console.activation (
    id         bigserial PRIMARY KEY,
    staff_id   text NOT NULL REFERENCES console.account(staff_id),
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz, -- single use
    revoked_at timestamptz  -- a newer code, a reset or a disable ends it
);
CREATE INDEX activation_staff ON console.activation(staff_id)
    WHERE used_at IS NULL AND revoked_at IS NULL;

-- Sessions: the cookie's 256-bit token is stored only as its SHA-256.
CREATE TABLE console.session (
    id                  bigserial PRIMARY KEY,
    token_hash          bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    staff_id            text NOT NULL REFERENCES console.account(staff_id),
    role                text NOT NULL, -- the registry role at sign-in: a change ends the session
    csrf_token          text NOT NULL CHECK (length(csrf_token) >= 32),
    client_addr         text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL,
    last_seen           timestamptz NOT NULL,
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoked_why         text CHECK (revoked_why IN ('logout', 'idle', 'expired', 'disabled',
                                                    'reset', 'role_changed', 'staff_removed')),
    flash               text NOT NULL DEFAULT '' CHECK (length(flash) <= 256)
);
CREATE INDEX session_staff ON console.session(staff_id) WHERE revoked_at IS NULL;

-- Failed sign-ins and activations, per account and per client address: growing delays and a
-- lockout that says when it ends.
CREATE TABLE console.login_failure (
    kind         text NOT NULL CHECK (kind IN ('account', 'address', 'activation')),
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
    failures     integer NOT NULL CHECK (failures >= 0),
    last_failure timestamptz NOT NULL,
    locked_until timestamptz,
    PRIMARY KEY (kind, key)
);

-- Who saw or wrote what about which child, and when: the record the annual audit of minors'
-- data asks for. Append-only for everyone (the triggers refuse UPDATE, DELETE and TRUNCATE even
-- to the owner); detail holds ids and codes, never names, phones or notes.
CREATE TABLE console.audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    staff_id    text NOT NULL,
    action      text NOT NULL CHECK (action ~ '^[a-z_]{1,40}$'),
    student_id  text,
    detail      text NOT NULL DEFAULT '' CHECK (length(detail) <= 500),
    client_addr text NOT NULL DEFAULT ''
);
CREATE INDEX audit_staff ON console.audit(staff_id, at);
CREATE INDEX audit_student ON console.audit(student_id, at);
CREATE INDEX audit_at ON console.audit(at);

CREATE FUNCTION console.audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'console.audit is append-only';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON console.audit
    FOR EACH ROW EXECUTE FUNCTION console.audit_refuse_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON console.audit
    FOR EACH STATEMENT EXECUTE FUNCTION console.audit_refuse_change();

-- A home visit's free-text note (at most 500 characters): kept here beside the action's event
-- id, never on a Kafka topic.
CREATE TABLE console.visit_note (
    event_id    text PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 64),
    student_id  text NOT NULL REFERENCES registry.student(id),
    staff_id    text NOT NULL REFERENCES registry.staff(id),
    note        text NOT NULL CHECK (char_length(note) <= 500),
    recorded_at timestamptz NOT NULL
);
CREATE INDEX visit_note_student ON console.visit_note(student_id, recorded_at);

-- The role bx-console logs in as (a member of it): the registry with personal data (it shows it
-- to the people whose scope covers it, and audits each view), cases and attendance to read, its
-- own schema; the audit only to read and append.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bx_console') THEN
        CREATE ROLE bx_console NOLOGIN;
    END IF;
END $$;
GRANT USAGE ON SCHEMA registry, console, cases, attendance TO bx_console;
GRANT SELECT ON registry.county, registry.township, registry.calendar, registry.calendar_term,
                registry.calendar_day, registry.school, registry.class, registry.student,
                registry.student_private, registry.guardian, registry.staff, registry.revision
      TO bx_console;
GRANT SELECT ON cases.case, cases.event, cases.task TO bx_console;
GRANT SELECT ON attendance.fact, attendance.class_report TO bx_console;
GRANT SELECT, INSERT, UPDATE ON console.account, console.activation, console.session
      TO bx_console;
GRANT SELECT, INSERT, UPDATE, DELETE ON console.login_failure TO bx_console;
GRANT SELECT, INSERT ON console.audit, console.visit_note TO bx_console;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA console TO bx_console;
-- bx-notify resolves a staff SMS (the activation code) from registry.staff, which it reads already.
GRANT ALL ON ALL TABLES IN SCHEMA console TO bx_registry_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA console TO bx_registry_admin;
