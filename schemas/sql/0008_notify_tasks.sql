-- baoxue migration 0008: bx-notify reads bx-escalate's open tasks (never writes them), so a
-- person's daily digest lists what is still open from earlier days beside what is new.
GRANT USAGE ON SCHEMA cases TO bx_notify;
GRANT SELECT ON cases.case, cases.task TO bx_notify;
