-- baoxue migration 0003: bx-score's durable record of attendance, from which `bxctl rebuild`
-- recomputes every Redis key (services/bx-score/store.h). Written only by bx-score.
--
-- What is stored, and the rule for presences: every class roll call (attendance.class_report) and
-- every fact that is not a plain presence implied by a roll call (absent, late, leave, early
-- leave, leave requests, individually recorded presences). A roll call's implied presence of a
-- student is stored only where it replaces a stored fact of the same field (a correction), and
-- then stays as a tombstone. So a student's state for a day (period) is: the stored fact if there
-- is one; else present if the class reported that day (period); else not_reported.
--
-- A fact replaces the stored one of its field only when (order_key, value) is greater, compared
-- bytewise (COLLATE "C", as the Redis scripts do); order_key is the zero-padded recorded_at in
-- milliseconds, '|' and the event id, so the later record wins whatever the order of arrival.

CREATE SCHEMA attendance;

-- Checks are cheap ones (lengths, the shape of field): bx-score validates every id and field
-- before writing, and regular expressions here would halve the batch write rate.
CREATE TABLE attendance.fact (
    student_id text COLLATE "C" NOT NULL CHECK (length(student_id) BETWEEN 1 AND 32),
    -- 'YYYY-MM-DD|P' (P the period 1..12, 0 the whole day) or 'L|<event id>' (a leave request)
    field      text COLLATE "C" NOT NULL CHECK (length(field) BETWEEN 3 AND 130),
    day        date,     -- from field; null for a leave request
    period     smallint CHECK (period BETWEEN 0 AND 12), -- from field; 0 the whole day
    school_id  text COLLATE "C" NOT NULL CHECK (length(school_id) BETWEEN 1 AND 32),
    class_id   text COLLATE "C" NOT NULL CHECK (length(class_id) BETWEEN 1 AND 32),
    order_key  text COLLATE "C" NOT NULL CHECK (length(order_key) BETWEEN 1 AND 160),
    value      text COLLATE "C" NOT NULL CHECK (length(value) <= 1024), -- opaque to the store
    PRIMARY KEY (student_id, field),
    CHECK (CASE WHEN day IS NULL THEN period IS NULL AND left(field, 2) = 'L|'
                ELSE period IS NOT NULL AND substr(field, 11, 1) = '|' END)
);
-- A school's absences of a day (reports, and `bxctl rebuild` of one school).
CREATE INDEX fact_school_day ON attendance.fact (school_id, day);

-- Roll-call coverage: the class did its roll call that day (period 0) or period.
CREATE TABLE attendance.class_report (
    class_id  text COLLATE "C" NOT NULL CHECK (length(class_id) BETWEEN 1 AND 32),
    day       date NOT NULL,
    period    smallint NOT NULL CHECK (period BETWEEN 0 AND 12),
    school_id text COLLATE "C" NOT NULL CHECK (length(school_id) BETWEEN 1 AND 32),
    order_key text COLLATE "C" NOT NULL CHECK (length(order_key) BETWEEN 1 AND 160),
    value     text COLLATE "C" NOT NULL CHECK (length(value) <= 1024),
    PRIMARY KEY (class_id, day, period)
);
CREATE INDEX class_report_school_day ON attendance.class_report (school_id, day);

GRANT USAGE ON SCHEMA attendance TO bx_score;
GRANT SELECT, INSERT, UPDATE, DELETE ON attendance.fact, attendance.class_report TO bx_score;
