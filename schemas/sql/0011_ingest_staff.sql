-- baoxue migration 0011: bx-ingest holds every action to account (the staff it names must exist
-- and work at the student's school; a township sign-off only from the township officer), so it
-- reads who staff are and where they work: the columns of registry.staff without names or phones.
GRANT SELECT (id, role, school_id, township_code, county_code) ON registry.staff TO bx_ingest;
