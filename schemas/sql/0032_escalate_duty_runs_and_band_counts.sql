-- baoxue migration 0032: bx-escalate off the absent children's path (issue 17).
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
