-- baoxue migration 0032: bx-escalate off the absent children's path (issue 17): its calendar
-- duties queued for a thread of their own, and the analysts' bands read from counts kept up to
-- date instead of counted per run.
--
-- 1. The calendar duties run on a thread and connection of their own. A duty's timer still fires
-- exactly once in bx-escalate's timer batches, but firing it now only queues a run here, in the
-- same transaction as the timer's fired mark; the duty thread runs each queued duty in one
-- transaction with its done mark (row locked FOR UPDATE SKIP LOCKED, so replicas run disjoint
-- duties). A crash mid-duty rolls the run back and it runs again; a done run never runs again.
-- The month's reports took 5-14 s for a county and 79 s for a province inside the consuming loop.
CREATE TABLE cases.duty_run (
    timer_key  text COLLATE "C" PRIMARY KEY CHECK (length(timer_key) BETWEEN 1 AND 200),
    payload    jsonb NOT NULL,
    due_at     timestamptz NOT NULL,          -- the duty timer's: a report's day is counted from it
    queued_at  timestamptz NOT NULL DEFAULT now(),
    attempts   integer NOT NULL DEFAULT 0,    -- runs that failed
    retry_at   timestamptz,                   -- after a failure: not run again before
    last_error text,
    done_at    timestamptz,                   -- run (or given up): never run again
    given_up   boolean NOT NULL DEFAULT false
);
CREATE INDEX duty_run_pending ON cases.duty_run (due_at) WHERE done_at IS NULL;
GRANT SELECT, INSERT, UPDATE ON cases.duty_run TO bx_escalate;

-- For `bxctl settle`: duties queued and not yet run are bx-escalate's work still to do. They are
-- listed by bx-escalate's other pending work (migration 0023's function, replaced here with the
-- same rows and one more) rather than by a function of their own: settle numbers its checks in
-- the functions' order, and a cases.settle_pending would come before every other one.
CREATE OR REPLACE FUNCTION matching.settle_pending(now timestamptz)
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
    UNION ALL
    SELECT 'bx-escalate: calendar duties queued and not run', count(*) FROM cases.duty_run
        WHERE done_at IS NULL
$$;

-- 2. The analysts' bands as a lookup. analytics.student_bands_of (0027) counted the enrolled
-- students of every school of a run of inputs: 80-445 ms per run of 200 for a county, 1.1-1.6 s at
-- province scale, most of bx-escalate's time per input there. The counts per (school, band, sex)
-- are now kept as the registry changes: band_member holds the cell each enrolled student is
-- counted in (the student's school, the band of its class's grade, its sex, '' when unknown), and
-- band_count the cells' counts. Statement triggers on registry.student, registry.class (a grade
-- changed) and registry.student_private (the sex) recompute the cell of the students a statement
-- touched from the tables as they are now and move the counts by the difference, so the order in
-- which cascades and upserts fire does not matter and an import that changes nothing moves
-- nothing. Only the SECURITY DEFINER functions below read them: bx-escalate still reads no sex.
CREATE TABLE analytics.band_member (
    student_id text PRIMARY KEY,
    school_id  text NOT NULL,
    band       smallint NOT NULL,  -- (grade - 1) / 3: 0 grades 1-3, 1 grades 4-6, 2 grades 7-9
    sex        text NOT NULL       -- 'M', 'F', '' unknown
);
CREATE TABLE analytics.band_count (
    school_id text NOT NULL,
    band      smallint NOT NULL,
    sex       text NOT NULL,
    enrolled  bigint NOT NULL, -- no CHECK (>= 0): the upsert's row of a decrement is checked
                               -- before it meets the row it adds to
    PRIMARY KEY (school_id, band, sex)
);
REVOKE ALL ON analytics.band_member, analytics.band_count FROM PUBLIC;

-- The cells of the students p_ids as the registry has them now, against band_member: the
-- students whose cell changed move (left, entered, or another cell), and band_count with them.
CREATE FUNCTION analytics.band_sync(p_ids text[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- joined, not "= ANY (p_ids)": an import passes every student of a province
    WITH ids AS (
        SELECT DISTINCT i.id FROM unnest(p_ids) AS i(id)
    ), cur AS (
        SELECT st.id AS student_id, st.school_id, ((cl.grade - 1) / 3)::smallint AS band,
               coalesce(sp.sex, '') AS sex
        FROM ids
        JOIN registry.student st ON st.id = ids.id
        JOIN registry.class cl ON cl.id = st.class_id
        LEFT JOIN registry.student_private sp ON sp.student_id = st.id
        WHERE st.status = 'enrolled'
    ), was AS (
        SELECT m.* FROM ids JOIN analytics.band_member m ON m.student_id = ids.id
    ), diff AS (
        SELECT coalesce(c.student_id, w.student_id) AS student_id,
               w.school_id AS w_school, w.band AS w_band, w.sex AS w_sex,
               c.school_id AS c_school, c.band AS c_band, c.sex AS c_sex
        FROM cur c FULL JOIN was w ON w.student_id = c.student_id
        WHERE (w.school_id, w.band, w.sex) IS DISTINCT FROM (c.school_id, c.band, c.sex)
    ), gone AS (
        DELETE FROM analytics.band_member m USING diff d
        WHERE m.student_id = d.student_id AND d.c_school IS NULL
    ), moved AS (
        INSERT INTO analytics.band_member (student_id, school_id, band, sex)
        SELECT d.student_id, d.c_school, d.c_band, d.c_sex FROM diff d WHERE d.c_school IS NOT NULL
        ON CONFLICT (student_id) DO UPDATE SET school_id = EXCLUDED.school_id,
            band = EXCLUDED.band, sex = EXCLUDED.sex
    )
    INSERT INTO analytics.band_count AS b (school_id, band, sex, enrolled)
    SELECT k.school_id, k.band, k.sex, sum(k.d)
    FROM (SELECT w_school AS school_id, w_band AS band, w_sex AS sex, -1 AS d FROM diff
          WHERE w_school IS NOT NULL
          UNION ALL
          SELECT c_school, c_band, c_sex, 1 FROM diff WHERE c_school IS NOT NULL) k
    GROUP BY 1, 2, 3 HAVING sum(k.d) <> 0
    ON CONFLICT (school_id, band, sex) DO UPDATE SET enrolled = b.enrolled + EXCLUDED.enrolled
$$;
REVOKE ALL ON FUNCTION analytics.band_sync(text[]) FROM PUBLIC;

CREATE FUNCTION analytics.band_student_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM analytics.band_sync(ARRAY(SELECT n.id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM analytics.band_sync(ARRAY(SELECT o.id FROM old_rows o));
    ELSE
        PERFORM analytics.band_sync(ARRAY(
            SELECT n.id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
            WHERE (o.school_id, o.class_id, o.status) IS DISTINCT FROM
                  (n.school_id, n.class_id, n.status)
            UNION
            SELECT o.id FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n
                                                          WHERE n.id = o.id)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER band_student_ins AFTER INSERT ON registry.student
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.band_student_changed();
CREATE TRIGGER band_student_upd AFTER UPDATE ON registry.student
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.band_student_changed();
CREATE TRIGGER band_student_del AFTER DELETE ON registry.student
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.band_student_changed();

CREATE FUNCTION analytics.band_private_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM analytics.band_sync(ARRAY(SELECT n.student_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM analytics.band_sync(ARRAY(SELECT o.student_id FROM old_rows o));
    ELSE
        PERFORM analytics.band_sync(ARRAY(
            SELECT n.student_id FROM new_rows n LEFT JOIN old_rows o ON o.student_id = n.student_id
            WHERE o.sex IS DISTINCT FROM n.sex
            UNION
            SELECT o.student_id FROM old_rows o WHERE NOT EXISTS (
                SELECT 1 FROM new_rows n WHERE n.student_id = o.student_id)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER band_private_ins AFTER INSERT ON registry.student_private
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.band_private_changed();
CREATE TRIGGER band_private_upd AFTER UPDATE ON registry.student_private
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.band_private_changed();
CREATE TRIGGER band_private_del AFTER DELETE ON registry.student_private
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.band_private_changed();

-- A class's grade changed (or its id): its students move band.
CREATE FUNCTION analytics.band_class_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM analytics.band_sync(ARRAY(
        SELECT st.id FROM registry.student st
        WHERE st.class_id IN (SELECT n.id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
                              WHERE o.grade IS DISTINCT FROM n.grade)));
    RETURN NULL;
END $$;
CREATE TRIGGER band_class_upd AFTER UPDATE ON registry.class
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.band_class_changed();

-- The registry as it is now.
INSERT INTO analytics.band_member (student_id, school_id, band, sex)
SELECT st.id, st.school_id, ((cl.grade - 1) / 3)::smallint, coalesce(sp.sex, '')
FROM registry.student st
JOIN registry.class cl ON cl.id = st.class_id
LEFT JOIN registry.student_private sp ON sp.student_id = st.id
WHERE st.status = 'enrolled';
INSERT INTO analytics.band_count (school_id, band, sex, enrolled)
SELECT school_id, band, sex, count(*) FROM analytics.band_member GROUP BY 1, 2, 3;

-- The same answers as 0017's and 0027's functions (the same thresholds: the band with 5 or more
-- enrolled students of it at the student's school, the sex with 5 or more of that band and sex),
-- from the counts.
CREATE OR REPLACE FUNCTION analytics.student_bands_of(p_students text[])
RETURNS TABLE (student_id text, grade_band text, sex text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH me AS (
        SELECT st.id, st.school_id, ((cl.grade - 1) / 3)::smallint AS band, sp.sex
        FROM registry.student st
        JOIN registry.class cl ON cl.id = st.class_id
        LEFT JOIN registry.student_private sp ON sp.student_id = st.id
        WHERE st.id = ANY (p_students)
    )
    SELECT me.id,
           CASE WHEN coalesce(b.in_band, 0) >= 5
                THEN (ARRAY['grades_1_3', 'grades_4_6', 'grades_7_9'])[me.band + 1] END,
           CASE WHEN coalesce(b.in_band, 0) >= 5 AND coalesce(x.enrolled, 0) >= 5
                     AND me.sex IS NOT NULL
                THEN CASE me.sex WHEN 'F' THEN 'female' ELSE 'male' END END
    FROM me
    LEFT JOIN LATERAL (SELECT sum(c.enrolled) AS in_band FROM analytics.band_count c
                       WHERE c.school_id = me.school_id AND c.band = me.band) b ON true
    LEFT JOIN analytics.band_count x
        ON x.school_id = me.school_id AND x.band = me.band AND x.sex = me.sex
$$;

CREATE OR REPLACE FUNCTION analytics.student_bands(p_student text, OUT grade_band text,
                                                   OUT sex text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT b.grade_band, b.sex FROM analytics.student_bands_of(ARRAY[p_student]) b
$$;
