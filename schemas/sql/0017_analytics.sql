-- baoxue migration 0017: what the analysts' streams need (bx.analytics.attendance.v1,
-- bx.analytics.cases.v1) and the analysts' Kafka credentials (bxctl analyst create).

-- bx-score's record of the daily aggregates it published on bx.analytics.attendance.v1: one row
-- per place (class id, school id, township or county code) and school day, with the digest of the
-- counts last sent, so a day is published again only when late facts change it.
CREATE TABLE attendance.analytics_sent (
    level      text NOT NULL CHECK (level IN ('class', 'school', 'township', 'county')),
    place_code text COLLATE "C" NOT NULL CHECK (length(place_code) BETWEEN 1 AND 32),
    county_code char(6) NOT NULL,
    day        date NOT NULL,
    digest     text NOT NULL CHECK (length(digest) BETWEEN 1 AND 64),
    sent_at    timestamptz NOT NULL,
    PRIMARY KEY (level, place_code, day)
);
CREATE INDEX analytics_sent_county_day ON attendance.analytics_sent (county_code, day);

-- Days already published that a late fact or roll call touched: written with the fact, in the
-- same transaction, and cleared once the day was aggregated again.
CREATE TABLE attendance.analytics_dirty (
    school_id text COLLATE "C" NOT NULL CHECK (length(school_id) BETWEEN 1 AND 32),
    day       date NOT NULL,
    PRIMARY KEY (school_id, day)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON attendance.analytics_sent, attendance.analytics_dirty
      TO bx_score;

-- The case stream's grade and sex bands. Sex is sensitive personal information that bx-escalate
-- may not read; this function (running as its owner) gives a student's grade band only when the
-- student's school has 5 or more enrolled students in that band, and the sex only when the school
-- has 5 or more enrolled students of that band and sex. Bands: grades_1_3, grades_4_6, grades_7_9.
CREATE SCHEMA analytics;

CREATE FUNCTION analytics.student_bands(p_student text, OUT grade_band text, OUT sex text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH me AS (
        SELECT st.school_id, ((cl.grade - 1) / 3) AS band, sp.sex
        FROM registry.student st
        JOIN registry.class cl ON cl.id = st.class_id
        LEFT JOIN registry.student_private sp ON sp.student_id = st.id
        WHERE st.id = p_student
    ), cells AS (
        SELECT count(*) AS in_band,
               count(*) FILTER (WHERE sp.sex = me.sex) AS in_band_sex
        FROM me
        JOIN registry.student st ON st.school_id = me.school_id AND st.status = 'enrolled'
        JOIN registry.class cl ON cl.id = st.class_id AND (cl.grade - 1) / 3 = me.band
        LEFT JOIN registry.student_private sp ON sp.student_id = st.id
    )
    SELECT CASE WHEN cells.in_band >= 5
                THEN (ARRAY['grades_1_3', 'grades_4_6', 'grades_7_9'])[me.band + 1] END,
           CASE WHEN cells.in_band >= 5 AND cells.in_band_sex >= 5 AND me.sex IS NOT NULL
                THEN CASE me.sex WHEN 'F' THEN 'female' ELSE 'male' END END
    FROM me, cells
$$;
REVOKE ALL ON FUNCTION analytics.student_bands(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA analytics TO bx_escalate;
GRANT EXECUTE ON FUNCTION analytics.student_bands(text) TO bx_escalate;

-- Analysts' Kafka principals (bxctl analyst create). The password is shown once and never
-- stored; what is kept is the SCRAM-SHA-512 credential as the broker keeps it (salt, iterations,
-- salted password), so it can be loaded into the broker (again) without the password. The salted
-- password authenticates to Kafka like the password itself: only the superuser (bxctl) reads it.
CREATE TABLE analytics.analyst (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
    principal       text NOT NULL UNIQUE,     -- the Kafka user: "analyst.<name>"
    group_prefix    text NOT NULL UNIQUE,     -- consumer groups it may use: "analyst.<name>."
    mechanism       text NOT NULL DEFAULT 'SCRAM-SHA-512' CHECK (mechanism = 'SCRAM-SHA-512'),
    iterations      integer NOT NULL CHECK (iterations >= 4096),
    salt            bytea NOT NULL,
    salted_password bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    applied_at      timestamptz,              -- when the broker was given the credential
    disabled_at     timestamptz
);
REVOKE ALL ON analytics.analyst FROM PUBLIC;
