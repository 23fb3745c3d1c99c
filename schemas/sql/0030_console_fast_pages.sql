-- baoxue migration 0030: what bx-console's pages need at province size (bench/console).
--
-- Every page reads the signed-in person with the session (identity.c's PERSON_COLUMNS), and with
-- it the classes whose homeroom teacher the person is (registry.class.homeroom_staff_id). No index
-- had that column: each request of every officer scanned a province's 20,000 classes, about 1 ms
-- of PostgreSQL's time, the largest part of most pages' database time. The index holds the ids in
-- the order the query asks (ORDER BY c.id LIMIT 16): an index-only range, empty for an officer.
CREATE INDEX class_homeroom ON registry.class (homeroom_staff_id, id)
    WHERE homeroom_staff_id IS NOT NULL;
