-- baoxue migration 0002: database roles per service, so minors' personal data is readable only by
-- the roles that need it. Services log in as roles that are members of these (see README).
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['bx_ingest', 'bx_score', 'bx_escalate', 'bx_notify', 'bx_analyst',
                             'bx_registry_admin']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;

GRANT USAGE ON SCHEMA registry TO bx_ingest, bx_score, bx_escalate, bx_notify, bx_registry_admin;
GRANT SELECT ON registry.county, registry.township, registry.calendar, registry.calendar_term,
                registry.calendar_day, registry.school, registry.class, registry.student,
                registry.revision
      TO bx_ingest, bx_score, bx_escalate, bx_notify;
-- Credentials: only the hash, only for the door that checks them.
GRANT SELECT ON registry.credential TO bx_ingest;
GRANT USAGE ON SCHEMA ingest TO bx_ingest;
GRANT SELECT, INSERT ON ingest.seen_event TO bx_ingest;
-- Staff names and phones: for the services that assign and send tasks.
GRANT SELECT ON registry.staff TO bx_escalate, bx_notify;
-- Risk flags (not names or id numbers) feed the score; names and guardians' phones only the sender.
GRANT SELECT (student_id, flags, birth_date) ON registry.student_private TO bx_score;
GRANT SELECT (student_id, name) ON registry.student_private TO bx_notify;
GRANT SELECT ON registry.guardian TO bx_notify;
GRANT ALL ON ALL TABLES IN SCHEMA registry TO bx_registry_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA registry TO bx_registry_admin;
-- Analysts get nothing from the registry: they read pseudonymised Kafka streams.
