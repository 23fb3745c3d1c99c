-- baoxue migration 0033: settling waits until bx-escalate has scheduled the calendar duties of the
-- clock's day (and of the registry's revision).
--
-- bx-escalate schedules the duties (the day's roll-call checks among them: the reminder at
-- rollcall.remind_time, the principal's message at the end of the day) when its tick sees a new
-- day or a new registry revision. A driven clock (bx-sim, bxctl settle in tests) can move from
-- 08:30 to 16:00 and on to 17:30 faster than that tick: the day's checks were then scheduled
-- before or after the end of the day depending on timing, and the homeroom teachers' reminders
-- came as SMS on one run and as the principal's digest tasks (a day gone by) on another. bx-escalate
-- now records the day and revision it last scheduled, and bx-escalate's pending work for settling
-- (matching.settle_pending, replaced here with 0032's rows and one more, for the reason 0032 gives)
-- reports one thing pending while that day is before the clock's (Beijing time, as
-- bx_time_local_date) or that revision behind the registry's. A bx-escalate without a duties
-- policy records nothing and nothing is waited for.

CREATE TABLE cases.duties_scheduled (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    day date NOT NULL,
    revision bigint NOT NULL,
    scheduled_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON cases.duties_scheduled TO bx_escalate;

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
    UNION ALL
    SELECT 'bx-escalate: calendar duties of the day or registry revision not yet scheduled',
           count(*)
        FROM cases.duties_scheduled d
        WHERE d.day < ((now AT TIME ZONE 'UTC') + interval '8 hours')::date
           OR d.revision < (SELECT revision FROM registry.revision)
$$;
