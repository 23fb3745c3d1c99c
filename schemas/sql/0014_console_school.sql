-- baoxue migration 0014: the principal's and the township officer's pages in bx-console read the
-- one definition of the dropout roster (migration 0009) like every other reader, and find a
-- school's open tasks and a township's notices by index.
GRANT EXECUTE ON FUNCTION cases.roster_stages(), cases.on_roster(text) TO bx_console;

-- Open tasks by kind (the township's notices to issue, the school's reports to file).
CREATE INDEX IF NOT EXISTS task_open_kind ON cases.task (kind, due_at) WHERE done_at IS NULL;
