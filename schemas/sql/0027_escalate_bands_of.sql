-- baoxue migration 0027: the analysts' grade and sex bands of many students at once, for
-- bx-escalate's batch of inputs (issue 17). analytics.student_bands (migration 0017) is one
-- SECURITY DEFINER SQL function call per student: PostgreSQL plans its query on every call, and
-- at county scale the calls took 5-20 ms each, 7 s of a day's 364 absent children, on the path
-- from a roll call to the guardian's notification request. analytics.student_bands_of gives the
-- same answer for every student of an array in one statement: the cells (school, band, sex) are
-- counted once for the schools of the students asked. Same rules as student_bands: the grade band
-- only when the student's school has 5 or more enrolled students in that band, the sex only when
-- it has 5 or more enrolled students of that band and sex; a student without a class gets no row.
-- bx-escalate still may not read the sex of anyone: the function runs as its owner.
CREATE FUNCTION analytics.student_bands_of(p_students text[])
RETURNS TABLE (student_id text, grade_band text, sex text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH me AS (
        SELECT st.id, st.school_id, ((cl.grade - 1) / 3) AS band, sp.sex
        FROM registry.student st
        JOIN registry.class cl ON cl.id = st.class_id
        LEFT JOIN registry.student_private sp ON sp.student_id = st.id
        WHERE st.id = ANY (p_students)
    ), cells AS (
        SELECT st.school_id, ((cl.grade - 1) / 3) AS band, sp.sex, count(*) AS n
        FROM registry.student st
        JOIN registry.class cl ON cl.id = st.class_id
        LEFT JOIN registry.student_private sp ON sp.student_id = st.id
        WHERE st.status = 'enrolled' AND st.school_id IN (SELECT DISTINCT me.school_id FROM me)
        GROUP BY 1, 2, 3
    ), bands AS (
        SELECT cells.school_id, cells.band, sum(cells.n) AS in_band FROM cells GROUP BY 1, 2
    )
    SELECT me.id,
           CASE WHEN coalesce(b.in_band, 0) >= 5
                THEN (ARRAY['grades_1_3', 'grades_4_6', 'grades_7_9'])[me.band + 1] END,
           CASE WHEN coalesce(b.in_band, 0) >= 5 AND coalesce(x.n, 0) >= 5 AND me.sex IS NOT NULL
                THEN CASE me.sex WHEN 'F' THEN 'female' ELSE 'male' END END
    FROM me
    LEFT JOIN bands b ON b.school_id = me.school_id AND b.band = me.band
    LEFT JOIN cells x ON x.school_id = me.school_id AND x.band = me.band AND x.sex = me.sex
$$;
REVOKE ALL ON FUNCTION analytics.student_bands_of(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics.student_bands_of(text[]) TO bx_escalate;
