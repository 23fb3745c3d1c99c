-- bx-console's writes share bx-ingest's duplicate check: a roll call or action sent twice from a
-- phone (a double tap, a resend after a lost connection) is stopped at the door, as bx-ingest
-- stops a school system's repeated event ids.
GRANT USAGE ON SCHEMA ingest TO bx_console;
GRANT SELECT, INSERT ON ingest.seen_event TO bx_console;
