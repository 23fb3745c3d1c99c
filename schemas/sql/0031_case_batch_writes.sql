-- baoxue migration 0031: what bx-escalate's batches of fired timers write, cheaper (issue 17).
--
-- 1. The case tables' row checks without bounded repetitions (the same rules), as 0028 did for
--    bx-notify's: a firing writes 9 rows and PostgreSQL ran ~23 regular expressions for them.
-- 2. bx-console's case summary (console.case_summary, migration 0021) kept by statement-level
--    triggers with transition tables instead of row triggers, so a statement that writes many
--    rows (bx-escalate's batches: a batch of fired timers marks 500 tasks overdue in one
--    `UPDATE ... FROM unnest(...)`) updates each case's summary once, in one set-based
--    statement, instead of once per row. bench/escalate measured the row trigger
--    console_task_upd at ~86 us of the ~100 us a task's overdue mark cost.
--
-- The summary stays exactly what it was: the same columns computed from the same rows, for the
-- same changes (the row triggers' WHEN conditions are the joins of old and new rows below). A
-- statement's rows are seen together at its end, as the row triggers (AFTER, queued to the
-- statement's end) saw them. The summary rows of the cases a statement touches are locked in
-- case id order before they are recomputed, so two writers lock them in one order.
-- tests/integration/test_console_summaries.c compares the summary with its recomputation from
-- scratch after multi-row writes of every kind.

DROP TRIGGER console_case_ins ON cases.case;
DROP TRIGGER console_case_upd ON cases.case;
DROP TRIGGER console_event_roster ON cases.event;
DROP TRIGGER console_task_ins ON cases.task;
DROP TRIGGER console_task_upd ON cases.task;
DROP FUNCTION console.on_case();
DROP FUNCTION console.on_roster_entry();
DROP FUNCTION console.on_task();

-- The open-task columns of the cases p_cases (distinct or not), each read after its summary row
-- is locked (ids in order): console.case_summary_tasks_of for many cases in one statement.
CREATE FUNCTION console.case_summary_tasks_of_cases(p_cases bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM console.case_summary WHERE case_id = ANY (p_cases) ORDER BY case_id
        FOR UPDATE;
    UPDATE console.case_summary x
       SET open_marked = t.marked, open_dues = t.dues, owner_role = o.owner_role,
           owner_staff_id = o.owner_staff_id
      FROM (SELECT DISTINCT c AS case_id FROM unnest(p_cases) c WHERE c IS NOT NULL) c
      CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE k.overdue_at IS NOT NULL)::integer AS marked,
                   array_agg(k.due_at ORDER BY k.due_at) FILTER (WHERE k.overdue_at IS NULL) AS dues
              FROM cases.task k WHERE k.case_id = c.case_id AND k.outcome IS NULL) t
      LEFT JOIN LATERAL (SELECT k.owner_role, k.owner_staff_id FROM cases.task k
                          WHERE k.case_id = c.case_id AND k.outcome IS NULL
                          ORDER BY k.due_at, k.id LIMIT 1) o ON true
     WHERE x.case_id = c.case_id
       AND (x.open_marked, x.open_dues, x.owner_role, x.owner_staff_id)
           IS DISTINCT FROM (t.marked, t.dues, o.owner_role, o.owner_staff_id);
END $$;

-- ---- cases.case: the summary row of each case written; the rates' marks ----

-- The summary rows of the cases in new_rows (inserted or changed), as console.on_case wrote them.
CREATE FUNCTION console.on_cases_new() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO console.case_summary AS x (case_id, school_id, township, county, student_id,
                                           stage, opened_at, closed_at, ending, first_absent)
    SELECT n.id, n.school_id, coalesce(s.township_code::text, ''),
           coalesce(t.county_code::text, ''), n.student_id, coalesce(n.stage, ''),
           n.opened_at, n.closed_at, n.ending, console.first_absent(n.state)
      FROM new_rows n LEFT JOIN registry.school s ON s.id = n.school_id COLLATE "default"
      LEFT JOIN registry.township t ON t.code = s.township_code
     ORDER BY n.id
    ON CONFLICT (case_id) DO UPDATE SET school_id = EXCLUDED.school_id,
        township = EXCLUDED.township, county = EXCLUDED.county, student_id = EXCLUDED.student_id,
        stage = EXCLUDED.stage, opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at,
        ending = EXCLUDED.ending, first_absent = EXCLUDED.first_absent;
    -- the rates: a case's ending and closing time count; an open case without a roster entry
    -- does not
    PERFORM console.mark_students(ARRAY(SELECT n.student_id FROM new_rows n
                                        WHERE n.ending IS NOT NULL));
    RETURN NULL;
END $$;
CREATE TRIGGER console_cases_ins AFTER INSERT ON cases.case
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_cases_new();

-- An update: the rows whose summary columns changed (console_case_upd's WHEN), rewritten; the
-- old and new students of those whose ending, closing or student changed, marked.
CREATE FUNCTION console.on_cases_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO console.case_summary AS x (case_id, school_id, township, county, student_id,
                                           stage, opened_at, closed_at, ending, first_absent)
    SELECT n.id, n.school_id, coalesce(s.township_code::text, ''),
           coalesce(t.county_code::text, ''), n.student_id, coalesce(n.stage, ''),
           n.opened_at, n.closed_at, n.ending, console.first_absent(n.state)
      FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
      LEFT JOIN registry.school s ON s.id = n.school_id COLLATE "default"
      LEFT JOIN registry.township t ON t.code = s.township_code
     WHERE o.id IS NULL OR o.school_id IS DISTINCT FROM n.school_id
        OR o.student_id IS DISTINCT FROM n.student_id OR o.stage IS DISTINCT FROM n.stage
        OR o.opened_at IS DISTINCT FROM n.opened_at OR o.closed_at IS DISTINCT FROM n.closed_at
        OR o.ending IS DISTINCT FROM n.ending
        OR o.state->'streak_start' IS DISTINCT FROM n.state->'streak_start'
     ORDER BY n.id
    ON CONFLICT (case_id) DO UPDATE SET school_id = EXCLUDED.school_id,
        township = EXCLUDED.township, county = EXCLUDED.county, student_id = EXCLUDED.student_id,
        stage = EXCLUDED.stage, opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at,
        ending = EXCLUDED.ending, first_absent = EXCLUDED.first_absent;
    PERFORM console.mark_students(ARRAY(
        SELECT u.student_id FROM new_rows n JOIN old_rows o ON o.id = n.id,
               LATERAL (VALUES (o.student_id), (n.student_id)) u(student_id)
         WHERE o.ending IS DISTINCT FROM n.ending OR o.closed_at IS DISTINCT FROM n.closed_at
            OR o.student_id IS DISTINCT FROM n.student_id));
    RETURN NULL;
END $$;
CREATE TRIGGER console_cases_upd AFTER UPDATE ON cases.case
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION console.on_cases_changed();

-- ---- cases.event: a case's reason (its first opened event) and roster entry ----

CREATE FUNCTION console.on_events_new() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- most statements write neither (a batch of fired timers: task_overdue, escalated): one scan
    IF NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.kind IN ('opened', 'stage_entered')) THEN
        RETURN NULL;
    END IF;
    -- the opened event of least id of each case, unless the summary has one of less id already
    UPDATE console.case_summary x SET reason = e.reason, reason_event = e.id
      FROM (SELECT DISTINCT ON (n.case_id) n.case_id, n.id, n.reason FROM new_rows n
             WHERE n.kind = 'opened' ORDER BY n.case_id, n.id) e
     WHERE x.case_id = e.case_id AND (x.reason_event IS NULL OR x.reason_event > e.id);
    -- the earliest roster entry (a stage_entered event into a roster stage)
    UPDATE console.case_summary x SET roster_at = least(x.roster_at, e.at)
      FROM (SELECT n.case_id, min(n.occurred_at) AS at FROM new_rows n
             WHERE n.kind = 'stage_entered' AND cases.on_roster(n.stage) GROUP BY n.case_id) e
     WHERE x.case_id = e.case_id;
    PERFORM console.mark_students(ARRAY(
        SELECT c.student_id FROM cases.case c
         WHERE c.id IN (SELECT n.case_id FROM new_rows n
                         WHERE n.kind = 'stage_entered' AND cases.on_roster(n.stage))));
    RETURN NULL;
END $$;
CREATE TRIGGER console_events_ins AFTER INSERT ON cases.event
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_events_new();

-- ---- cases.task: the open-task columns of the cases whose tasks changed ----

CREATE FUNCTION console.on_tasks_new() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.case_summary_tasks_of_cases(ARRAY(
        SELECT n.case_id FROM new_rows n WHERE n.outcome IS NULL));
    RETURN NULL;
END $$;
CREATE TRIGGER console_tasks_ins AFTER INSERT ON cases.task
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_tasks_new();

-- console_task_upd's WHEN: the columns the open-task summary reads; the old and the new case.
CREATE FUNCTION console.on_tasks_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.case_summary_tasks_of_cases(ARRAY(
        SELECT u.case_id FROM new_rows n JOIN old_rows o ON o.id = n.id,
               LATERAL (VALUES (o.case_id), (n.case_id)) u(case_id)
         WHERE o.outcome IS DISTINCT FROM n.outcome OR o.due_at IS DISTINCT FROM n.due_at
            OR o.overdue_at IS DISTINCT FROM n.overdue_at OR o.case_id IS DISTINCT FROM n.case_id
            OR o.owner_staff_id IS DISTINCT FROM n.owner_staff_id
            OR o.owner_role IS DISTINCT FROM n.owner_role));
    RETURN NULL;
END $$;
CREATE TRIGGER console_tasks_upd AFTER UPDATE ON cases.task
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION console.on_tasks_changed();

REVOKE ALL ON FUNCTION console.case_summary_tasks_of_cases(bigint[]) FROM PUBLIC;

-- ---- the case tables' row checks without bounded repetitions ----

-- PostgreSQL compiles '{1,128}' into 128 copies of the class and runs the automaton for every row
-- written, and an UPDATE checks every CHECK of the table: about 14 us for '{1,128}' and 4 us for
-- '{1,32}' or '{0,63}' on the bench machine (0028), against under 1 us for '+' or '*' with a
-- length() beside it. A fired timer writes 2 events, 4 outbox rows, a task, a case and a timer row:
-- ~23 such checks, ~160 us of its ~370 us in PostgreSQL. The rules are unchanged: the same
-- characters, the same lengths (the classes are ASCII, so characters are bytes), NULL allowed
-- where it was; existing rows are checked again once, here.
ALTER TABLE cases.case
    DROP CONSTRAINT case_school_id_check,
    ADD CONSTRAINT case_school_id_check
        CHECK (school_id ~ '^[A-Za-z0-9_-]+$' AND length(school_id) <= 32),
    DROP CONSTRAINT case_student_id_check,
    ADD CONSTRAINT case_student_id_check
        CHECK (student_id ~ '^[A-Za-z0-9_-]+$' AND length(student_id) <= 32),
    DROP CONSTRAINT case_stage_check,
    ADD CONSTRAINT case_stage_check CHECK (stage ~ '^[a-z][a-z0-9_]*$' AND length(stage) <= 64);

ALTER TABLE cases.event
    DROP CONSTRAINT event_actor_check,
    ADD CONSTRAINT event_actor_check CHECK (actor ~ '^[A-Za-z0-9_.:-]+$' AND length(actor) <= 64),
    DROP CONSTRAINT event_event_id_check,
    ADD CONSTRAINT event_event_id_check
        CHECK (event_id ~ '^[A-Za-z0-9._:-]+$' AND length(event_id) <= 128),
    DROP CONSTRAINT event_stage_check,
    ADD CONSTRAINT event_stage_check CHECK (stage ~ '^[a-z][a-z0-9_]*$' AND length(stage) <= 64);

ALTER TABLE cases.task
    DROP CONSTRAINT task_done_by_check,
    ADD CONSTRAINT task_done_by_check
        CHECK (done_by ~ '^[A-Za-z0-9_.:-]+$' AND length(done_by) <= 64),
    DROP CONSTRAINT task_kind_check,
    ADD CONSTRAINT task_kind_check CHECK (kind ~ '^[a-z][a-z0-9_]*$' AND length(kind) <= 64),
    DROP CONSTRAINT task_owner_staff_id_check,
    ADD CONSTRAINT task_owner_staff_id_check
        CHECK (owner_staff_id ~ '^[A-Za-z0-9_-]+$' AND length(owner_staff_id) <= 32),
    DROP CONSTRAINT task_stage_check,
    ADD CONSTRAINT task_stage_check CHECK (stage ~ '^[a-z][a-z0-9_]*$' AND length(stage) <= 64),
    DROP CONSTRAINT task_task_key_check,
    ADD CONSTRAINT task_task_key_check
        CHECK (task_key ~ '^[A-Za-z0-9._:-]+$' AND length(task_key) <= 128);

ALTER TABLE cases.timer
    DROP CONSTRAINT timer_kind_check,
    ADD CONSTRAINT timer_kind_check CHECK (kind ~ '^[a-z][a-z0-9_]*$' AND length(kind) <= 64);

ALTER TABLE cases.outbox
    DROP CONSTRAINT outbox_event_id_check,
    ADD CONSTRAINT outbox_event_id_check
        CHECK (event_id ~ '^[A-Za-z0-9._:-]+$' AND length(event_id) <= 128),
    DROP CONSTRAINT outbox_topic_check,
    ADD CONSTRAINT outbox_topic_check CHECK (topic ~ '^[a-z][a-z0-9._-]*$' AND length(topic) <= 100);
