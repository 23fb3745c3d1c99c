-- baoxue migration 0019: the services log in as their own roles (issue 14, defect 5): the logins
-- (bx_ingest_svc, member of bx_ingest, and so on) are made by deploy/local/bx-infra with passwords
-- of the installation, never here. Under its own role bx-ingest expires its remembered event ids
-- (BX_INGEST_SEEN_DAYS), which needs DELETE on ingest.seen_event.
GRANT DELETE ON ingest.seen_event TO bx_ingest;
