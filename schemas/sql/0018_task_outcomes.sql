-- baoxue migration 0018: a task's ending (issue 15 item 1). A task is open until it ends: done (by
-- the action or report its rule names), cancelled (its case closed: returned, transferred,
-- graduated; bx-escalate cancels the open tasks and timers of a case in the transaction that
-- closes it) or superseded (a missed monthly or weekly task replaced by the next period's). Open
-- means `outcome IS NULL`: worklists, digests, `bxctl case show`, the ledgers and bx-console read
-- it so, never done_at alone.

ALTER TABLE cases.task
    ADD COLUMN outcome text CHECK (outcome IN ('done', 'cancelled', 'superseded')),
    ADD COLUMN ended_at timestamptz;

-- A writer that marks done_at only (bx-escalate before this migration, tests, benches) ends the
-- task as done.
CREATE FUNCTION cases.task_done_ends() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.done_at IS NOT NULL AND NEW.outcome IS NULL THEN
        NEW.outcome := 'done';
        NEW.ended_at := NEW.done_at;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER task_done_ends BEFORE INSERT OR UPDATE ON cases.task
    FOR EACH ROW EXECUTE FUNCTION cases.task_done_ends();

-- The tasks already written: done ones end as done; the open tasks of closed cases are cancelled
-- when their case closed, and the case's waiting timers with them; a missed case-level task that
-- a later one of its kind followed is superseded.
UPDATE cases.task SET outcome = 'done', ended_at = done_at WHERE done_at IS NOT NULL;
UPDATE cases.task t SET outcome = 'cancelled', ended_at = greatest(c.closed_at, t.created_at)
    FROM cases.case c
    WHERE c.id = t.case_id AND c.closed_at IS NOT NULL AND t.outcome IS NULL;
UPDATE cases.timer tm SET fired_at = greatest(c.closed_at, tm.created_at), cancelled = true
    FROM cases.case c
    WHERE c.id = tm.case_id AND c.closed_at IS NOT NULL AND tm.fired_at IS NULL;
UPDATE cases.task t SET outcome = 'superseded', ended_at = n.created_at
    FROM cases.task n
    WHERE t.outcome IS NULL AND t.stage IS NULL AND t.overdue_at IS NOT NULL
      AND n.case_id = t.case_id AND n.kind = t.kind AND n.stage IS NULL AND n.id > t.id
      AND n.created_at >= t.due_at;

ALTER TABLE cases.task
    ADD CONSTRAINT task_outcome_ended CHECK ((outcome IS NULL) = (ended_at IS NULL)),
    ADD CONSTRAINT task_done_outcome CHECK (done_at IS NULL OR outcome = 'done');

-- The open-task indexes follow the new meaning of open.
DROP INDEX cases.task_open_due;
CREATE INDEX task_open_due ON cases.task (due_at) WHERE outcome IS NULL;
DROP INDEX cases.task_open_case;
CREATE INDEX task_open_case ON cases.task (case_id) WHERE outcome IS NULL;
DROP INDEX cases.task_open_kind;
CREATE INDEX task_open_kind ON cases.task (kind, due_at) WHERE outcome IS NULL;
CREATE INDEX task_ended ON cases.task (case_id, outcome) WHERE outcome IN ('cancelled', 'superseded');

-- As 0016, with open tasks as above (bx-notify's digest reads them so too).
CREATE OR REPLACE FUNCTION notify.settle_pending(now timestamptz)
RETURNS TABLE (what text, pending bigint)
LANGUAGE sql STABLE AS $$
    SELECT 'bx-notify: notifications due', count(*) FROM notify.notification
        WHERE state IN ('queued', 'unknown', 'sent') AND due_at <= now
    UNION ALL
    SELECT 'bx-notify: sends in flight', count(*) FROM notify.notification WHERE state = 'sending'
    UNION ALL
    SELECT 'bx-notify: status messages not relayed', count(*) FROM notify.outbox
        WHERE sent_at IS NULL
    UNION ALL
    SELECT 'bx-notify: digests due', count(*) FROM notify.notification
        WHERE state = 'collected' AND created_at < notify.digest_cutoff(now)
    UNION ALL
    SELECT 'bx-notify: digests of open tasks due', count(DISTINCT st.id)
        FROM cases.task t JOIN cases.case c ON c.id = t.case_id
        JOIN registry.school sc ON sc.id = c.school_id
        JOIN registry.township tw ON tw.code = sc.township_code
        JOIN registry.staff st ON st.role = t.owner_role AND (st.id = t.owner_staff_id OR
            (t.owner_staff_id IS NULL AND CASE st.role
                WHEN 'township_officer' THEN st.township_code = sc.township_code
                WHEN 'county_officer' THEN st.county_code = tw.county_code
                ELSE st.school_id = c.school_id END))
        WHERE t.outcome IS NULL AND c.closed_at IS NULL
          AND t.created_at < notify.digest_cutoff(now) - interval '1 day'
          AND (notify.digest_cutoff(now) AT TIME ZONE 'Asia/Shanghai')::date
              = (now AT TIME ZONE 'Asia/Shanghai')::date
          AND NOT EXISTS (SELECT 1 FROM notify.notification d WHERE d.channel = 'digest'
                          AND d.staff_id = st.id AND d.created_at >= notify.digest_cutoff(now))
$$;
