-- baoxue migration 0001: the registry (学籍 and the school hierarchy), written only by `bxctl import`.
-- Sensitive personal data of minors lives in registry.student_private and registry.guardian, which
-- only the roles that need it can read (see 0002_roles.sql).

CREATE SCHEMA registry;

CREATE TABLE registry.county (
    code          char(6) PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    province_code char(2) GENERATED ALWAYS AS (substr(code, 1, 2)) STORED,
    city_code     char(4) GENERATED ALWAYS AS (substr(code, 1, 4)) STORED
);

CREATE TABLE registry.township (
    code        char(9) PRIMARY KEY CHECK (code ~ '^[0-9]{9}$'),
    county_code char(6) NOT NULL REFERENCES registry.county(code),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    CHECK (substr(code, 1, 6) = county_code)
);

CREATE TABLE registry.calendar (
    id   text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,32}$'),
    name text NOT NULL
);

-- The calendar 'national' holds the State Council's holidays and make-up workdays; every other
-- calendar inherits them and may add its own closures.
INSERT INTO registry.calendar (id, name) VALUES ('national', '全国节假日安排');

CREATE TABLE registry.calendar_term (
    calendar_id text NOT NULL REFERENCES registry.calendar(id),
    code        text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,16}$'),
    first_day   date NOT NULL,
    last_day    date NOT NULL,
    PRIMARY KEY (calendar_id, code),
    CHECK (first_day <= last_day)
);

CREATE TABLE registry.calendar_day (
    calendar_id text NOT NULL REFERENCES registry.calendar(id),
    day         date NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('holiday', 'makeup_workday', 'closure')),
    name        text NOT NULL DEFAULT '',
    PRIMARY KEY (calendar_id, day)
);

CREATE TABLE registry.school (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,32}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    township_code char(9) NOT NULL REFERENCES registry.township(code),
    stage         text NOT NULL CHECK (stage IN ('primary', 'junior', 'nine_year')),
    calendar_id   text NOT NULL REFERENCES registry.calendar(id)
);

CREATE TABLE registry.staff (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,32}$'),
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('homeroom_teacher', 'subject_teacher', 'principal',
                                                'academic_office', 'township_officer',
                                                'county_officer')),
    school_id     text REFERENCES registry.school(id),
    township_code char(9) REFERENCES registry.township(code),
    county_code   char(6) REFERENCES registry.county(code),
    phone         text CHECK (phone ~ '^1[3-9][0-9]{9}$'),
    CHECK ((role IN ('township_officer') AND township_code IS NOT NULL)
        OR (role IN ('county_officer') AND county_code IS NOT NULL)
        OR (role NOT IN ('township_officer', 'county_officer') AND school_id IS NOT NULL))
);

CREATE TABLE registry.class (
    id                text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,32}$'),
    school_id         text NOT NULL REFERENCES registry.school(id),
    grade             smallint NOT NULL CHECK (grade BETWEEN 1 AND 9),
    name              text NOT NULL,
    homeroom_staff_id text REFERENCES registry.staff(id)
);
CREATE INDEX class_school ON registry.class(school_id);

-- What every service may read about a student: no name, no id number, no flags.
CREATE TABLE registry.student (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,32}$'),
    school_id   text NOT NULL REFERENCES registry.school(id),
    class_id    text NOT NULL REFERENCES registry.class(id),
    status      text NOT NULL DEFAULT 'enrolled'
                CHECK (status IN ('enrolled', 'transferred_out', 'suspended', 'dropped_out',
                                  'returned', 'graduated', 'home_education')),
    enrolled_on date
);
CREATE INDEX student_class ON registry.student(class_id);
CREATE INDEX student_school ON registry.student(school_id);

-- Sensitive personal information (PIPL): name, sex, birth date, id number and the risk flags.
-- Ethnicity is not stored at all. Sex is kept for the registry's own reports and is never an input
-- of the risk score.
CREATE TABLE registry.student_private (
    student_id  text PRIMARY KEY REFERENCES registry.student(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    sex         char(1) CHECK (sex IN ('M', 'F')),
    birth_date  date,
    national_id text CHECK (national_id ~ '^[0-9]{17}[0-9X]$'),
    flags       text[] NOT NULL DEFAULT '{}'
                CHECK (flags <@ ARRAY['registered_poor', 'minimum_subsistence', 'extreme_poverty',
                                      'orphan', 'disability_sight', 'disability_hearing',
                                      'disability_intellectual', 'disability_other', 'left_behind',
                                      'single_parent', 'migrant', 'learning_difficulty',
                                      'wavering', 'earlier_dropout', 'monastery']::text[])
);

CREATE TABLE registry.guardian (
    id         bigserial PRIMARY KEY,
    student_id text NOT NULL REFERENCES registry.student(id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    relation   text NOT NULL CHECK (relation IN ('father', 'mother', 'grandparent', 'sibling',
                                                 'relative', 'other')),
    phone      text CHECK (phone ~ '^1[3-9][0-9]{9}$'),
    address    text,
    is_primary boolean NOT NULL DEFAULT false
);
CREATE INDEX guardian_student ON registry.guardian(student_id);

-- A school's credential for bx-ingest. Only the SHA-256 of the secret is kept; the secret is shown
-- once by `bxctl key create`.
CREATE TABLE registry.credential (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9]{8,32}$'),
    school_id   text NOT NULL REFERENCES registry.school(id),
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Bumped by every import so services holding an in-memory copy know to reload it.
CREATE TABLE registry.revision (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision   bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO registry.revision (revision) VALUES (1);

-- bx-ingest's memory of client event ids it has accepted, so a repeated id changes nothing.
CREATE SCHEMA ingest;
CREATE TABLE ingest.seen_event (
    school_id   text NOT NULL,
    event_id    text NOT NULL,
    topic       text NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, event_id)
);
