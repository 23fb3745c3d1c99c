-- baoxue migration 0033: settling waits until bx-escalate has scheduled the calendar duties of the
-- clock's day (and of the registry's revision).
--
-- bx-escalate schedules the duties (the day's roll-call checks among them: the reminder at
-- rollcall.remind_time, the principal's message at the end of the day) when its tick sees a new
-- day or a new registry revision. A driven clock (bx-sim, bxctl settle in tests) can move from
-- 08:30 to 16:00 and on to 17:30 faster than that tick: the day's checks were then scheduled
-- before or after the end of the day depending on timing, and the homeroom teachers' reminders
-- came as SMS on one run and as the principal's digest tasks (a day gone by) on another. bx-escalate
-- now records the day and revision it last scheduled, and cases.settle_pending reports one thing
-- pending while that day is before the clock's (Beijing time, as bx_time_local_date) or that
-- revision behind the registry's. A bx-escalate without a duties policy records nothing and
-- nothing is waited for.

CREATE TABLE cases.duties_scheduled (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    day date NOT NULL,
    revision bigint NOT NULL,
    scheduled_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON cases.duties_scheduled TO bx_escalate;

CREATE FUNCTION cases.settle_pending(now timestamptz)
RETURNS TABLE (what text, pending bigint)
LANGUAGE sql STABLE AS $$
    SELECT 'bx-escalate: calendar duties of the day or registry revision not yet scheduled',
           count(*)
        FROM cases.duties_scheduled d
        WHERE d.day < ((now AT TIME ZONE 'UTC') + interval '8 hours')::date
           OR d.revision < (SELECT revision FROM registry.revision)
$$;
