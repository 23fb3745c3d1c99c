-- baoxue migration 0034: an import pays for the band counts once.
--
-- Migration 0032's statement triggers keep analytics.band_member and band_count in the
-- transaction of every write to registry.student, registry.class and registry.student_private.
-- bxctl import writes a file of students with two statements (registry.student, then
-- student_private), so a first import recomputed every student's cell twice (a province's
-- registry: 80 s without the counts, 202 s with them). An import may now defer them: with the
-- transaction-local setting bx.band_counts = 'deferred' the triggers only note the students
-- they would have synced (analytics.band_pending, the same students), and
-- analytics.band_sync_deferred(), called before the import commits, syncs each of them once.
-- Every other writer (no such setting) syncs in its statement as before. A transaction that
-- defers and commits without calling band_sync_deferred() leaves the counts behind until the
-- next sync of the same students: only bxctl import sets it.

CREATE UNLOGGED TABLE analytics.band_pending (
    student_id text NOT NULL
);
REVOKE ALL ON analytics.band_pending FROM PUBLIC;

-- The students a statement touched: synced now, or noted for band_sync_deferred().
CREATE FUNCTION analytics.band_touched(p_ids text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_setting('bx.band_counts', true) = 'deferred' THEN
        INSERT INTO analytics.band_pending (student_id) SELECT unnest(p_ids);
    ELSE
        PERFORM analytics.band_sync(p_ids);
    END IF;
END $$;
REVOKE ALL ON FUNCTION analytics.band_touched(text[]) FROM PUBLIC;

-- The students noted in this transaction (and any a crashed one left: the table is unlogged),
-- each synced once; returns how many.
CREATE FUNCTION analytics.band_sync_deferred() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids text[];
BEGIN
    WITH taken AS (DELETE FROM analytics.band_pending RETURNING student_id)
    SELECT array_agg(DISTINCT student_id) INTO ids FROM taken;
    IF ids IS NOT NULL THEN
        PERFORM analytics.band_sync(ids);
    END IF;
    RETURN coalesce(cardinality(ids), 0);
END $$;
REVOKE ALL ON FUNCTION analytics.band_sync_deferred() FROM PUBLIC;
GRANT USAGE ON SCHEMA analytics TO bx_registry_admin;
GRANT EXECUTE ON FUNCTION analytics.band_sync_deferred() TO bx_registry_admin;

-- 0032's trigger functions, the same students, through band_touched.
CREATE OR REPLACE FUNCTION analytics.band_student_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM analytics.band_touched(ARRAY(SELECT n.id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM analytics.band_touched(ARRAY(SELECT o.id FROM old_rows o));
    ELSE
        PERFORM analytics.band_touched(ARRAY(
            SELECT n.id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
            WHERE (o.school_id, o.class_id, o.status) IS DISTINCT FROM
                  (n.school_id, n.class_id, n.status)
            UNION
            SELECT o.id FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n
                                                          WHERE n.id = o.id)));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION analytics.band_private_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM analytics.band_touched(ARRAY(SELECT n.student_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM analytics.band_touched(ARRAY(SELECT o.student_id FROM old_rows o));
    ELSE
        PERFORM analytics.band_touched(ARRAY(
            SELECT n.student_id FROM new_rows n LEFT JOIN old_rows o ON o.student_id = n.student_id
            WHERE o.sex IS DISTINCT FROM n.sex
            UNION
            SELECT o.student_id FROM old_rows o WHERE NOT EXISTS (
                SELECT 1 FROM new_rows n WHERE n.student_id = o.student_id)));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION analytics.band_class_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM analytics.band_touched(ARRAY(
        SELECT st.id FROM registry.student st
        WHERE st.class_id IN (SELECT n.id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
                              WHERE o.grade IS DISTINCT FROM n.grade)));
    RETURN NULL;
END $$;
