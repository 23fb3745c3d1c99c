-- baoxue migration 0020: each service reads only the registry columns its code uses (issue 14,
-- defect 5). A table-wide SELECT becomes a column list, so a column that is not listed is refused
-- ("permission denied for table ...") even in a join or a WHERE clause. When a service's code
-- starts reading another column, grant it here (a new migration) and say why.
--
--   bx_notify   registry.guardian: student_id, phone, is_primary (recipients.c picks the
--               guardians' mobile numbers, the primary one first). Not their names, relation or
--               addresses. It keeps all of registry.staff: it texts staff (phone) and names them
--               (name) in the messages, found by role and place.
--   bx_escalate registry.staff: no phone. It reads no staff column itself; the report queries
--               it is built with (report_queries.c: the ledger's task owner) name staff by id.
--   bx_console  registry.guardian: id, student_id, name, relation, is_primary (the printed
--               notice names the primary guardian), not phone or address;
--               registry.student_private: student_id, name, sex, birth_date (lists, the ledger's
--               export), not national_id or the risk flags. It keeps all of registry.staff (sign-in
--               by a staff member's mobile number, activation codes by SMS).
--   bx_score    registry.student_private (student_id, flags, birth_date) as 0002 has it; no
--               guardian, no staff. bx_ingest: registry.staff without names or phones (0011).

REVOKE SELECT ON registry.guardian FROM bx_notify;
GRANT SELECT (student_id, phone, is_primary) ON registry.guardian TO bx_notify;

REVOKE SELECT ON registry.staff FROM bx_escalate;
GRANT SELECT (id, name, role, school_id, township_code, county_code) ON registry.staff
      TO bx_escalate;

REVOKE SELECT ON registry.guardian, registry.student_private FROM bx_console;
GRANT SELECT (id, student_id, name, relation, is_primary) ON registry.guardian TO bx_console;
GRANT SELECT (student_id, name, sex, birth_date) ON registry.student_private TO bx_console;
