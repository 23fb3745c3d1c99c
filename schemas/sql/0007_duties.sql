-- baoxue migration 0007: what bx-escalate's calendar duties read (services/bx-escalate/duties.h):
-- the term-start check looks for registered children that no reported roll call has seen, in
-- bx-score's durable record of attendance. Read only; written by bx-score alone.
GRANT USAGE ON SCHEMA attendance TO bx_escalate;
GRANT SELECT ON attendance.fact, attendance.class_report TO bx_escalate;
