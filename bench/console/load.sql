-- bench/console/load.sql: a province for bx-console's county and area pages, generated in SQL
-- (psql -v students=1000000 -v cases=50000 -v tasks=200000 -f load.sql) into a migrated database
-- of the bench's own. Province 97: 4 cities of 5 counties, 10 townships a county, 5 schools a
-- township (1000 schools), 50 students a class and as many classes a school as the size needs.
-- Half the cases sit in county 970101 (so its dropout list holds 10,000 children at 50,000 cases,
-- the export the target names); the rest spread over every school. Each case has its opening and
-- stage events; 40% are on the dropout roster, 30% suspected, 30% returned. Tasks: 4 a case, about
-- a third of the open ones overdue. Roll calls: every class on 18 of the last 20 school days.
\set ON_ERROR_STOP on
SELECT greatest(1, (:students / 50000))::int AS classes_per_school \gset
SELECT setseed(0.42);
INSERT INTO registry.county (code, name)
SELECT '97' || lpad(c::text, 2, '0') || lpad(k::text, 2, '0'), '基准市' || c || '县' || k
FROM generate_series(1, 4) c, generate_series(1, 5) k;
INSERT INTO registry.township (code, county_code, name)
SELECT co.code || lpad(t::text, 3, '0'), co.code, co.name || '镇' || t
FROM registry.county co, generate_series(1, 10) t WHERE co.code LIKE '97%';
INSERT INTO registry.calendar (id, name) VALUES ('bench-2026', '基准校历');
INSERT INTO registry.calendar_term (calendar_id, code, first_day, last_day)
VALUES ('bench-2026', '2026-autumn', '2026-09-01', '2027-01-22');
INSERT INTO registry.school (id, name, township_code, stage, calendar_id)
SELECT 'B' || tw.code || s, tw.name || '学校' || s, tw.code,
       CASE WHEN s <= 3 THEN 'primary' ELSE 'junior' END, 'bench-2026'
FROM registry.township tw, generate_series(1, 5) s WHERE tw.code LIKE '97%';
INSERT INTO registry.class (id, school_id, grade, name)
SELECT sc.id || 'C' || k, sc.id,
       CASE WHEN sc.stage = 'primary' THEN 1 + (k % 6) ELSE 7 + (k % 3) END, k || '班'
FROM registry.school sc, generate_series(1, :classes_per_school) k WHERE sc.id LIKE 'B97%';
INSERT INTO registry.student (id, school_id, class_id)
SELECT cl.id || 'S' || n, cl.school_id, cl.id
FROM registry.class cl, generate_series(1, 50) n WHERE cl.id LIKE 'B97%';
INSERT INTO registry.student_private (student_id, name, sex, birth_date)
SELECT s.id, '学生' || substr(md5(s.id), 1, 6), CASE WHEN random() < 0.5 THEN 'M' ELSE 'F' END,
       date '2012-01-01' + (random() * 2500)::int
FROM registry.student s WHERE s.id LIKE 'B97%';
INSERT INTO registry.staff (id, name, role, county_code, area_code)
SELECT 'BK' || co.code, co.name || '科长', 'county_officer', co.code, NULL
FROM registry.county co WHERE co.code LIKE '97%';
INSERT INTO registry.staff (id, name, role, county_code, area_code)
VALUES ('BCITY', '基准市处长', 'city_officer', NULL, '9701'),
       ('BPROV', '基准省处长', 'province_officer', NULL, '97');
-- Cases: half in county 970101's students, half anywhere.
CREATE TEMP TABLE pick AS
SELECT row_number() OVER () AS n, id, school_id FROM (
  (SELECT s.id, s.school_id FROM registry.student s WHERE s.id LIKE 'B970101%'
     ORDER BY random() LIMIT (:cases / 2))
  UNION ALL
  (SELECT s.id, s.school_id FROM registry.student s WHERE s.id LIKE 'B97%'
     AND s.id NOT LIKE 'B970101%' ORDER BY random() LIMIT (:cases - :cases / 2))) x;
INSERT INTO cases.case (id, student_id, school_id, opened_at, stage, updated_at, closed_at,
                        ending, state)
SELECT p.n, p.id, p.school_id,
       timestamptz '2026-09-07 17:00+08' + (p.n % 80) * interval '1 day',
       CASE p.n % 10 WHEN 0 THEN 'contact_family' WHEN 1 THEN 'home_visit'
         WHEN 2 THEN 'school_report' WHEN 3 THEN 'dropout_roster' WHEN 4 THEN 'township_notice'
         WHEN 5 THEN 'deadline_notice' WHEN 6 THEN 'dropout_roster' ELSE 'dropout_roster' END,
       now(),
       CASE WHEN p.n % 10 >= 7 THEN timestamptz '2026-09-07 17:00+08' + (p.n % 80 + 10)
         * interval '1 day' END,
       CASE WHEN p.n % 10 >= 7 THEN 'returned' END,
       jsonb_build_object('streak_start', 20700 + (p.n % 80))
FROM pick p;
SELECT setval('cases.case_id_seq', (SELECT max(id) FROM cases.case));
INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at)
SELECT c.id, 'b-o-' || c.id, 'opened', NULL, 'bx-escalate', '连续缺勤 3 天', c.opened_at
FROM cases.case c;
INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at)
SELECT c.id, 'b-s-' || c.id, 'stage_entered', 'contact_family', 'bx-escalate', 'streak',
       c.opened_at FROM cases.case c;
INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at)
SELECT c.id, 'b-r-' || c.id, 'stage_entered', 'dropout_roster', 'bx-escalate', 'deadline',
       c.opened_at + interval '5 days' FROM cases.case c WHERE c.id % 10 >= 3;
INSERT INTO cases.event (case_id, event_id, kind, stage, actor, reason, occurred_at)
SELECT c.id, 'b-c-' || c.id, 'closed', NULL, 'bx-escalate', 'returned', c.closed_at
FROM cases.case c WHERE c.closed_at IS NOT NULL;
INSERT INTO cases.task (case_id, task_key, kind, stage, owner_role, created_at, due_at, done_at,
                        overdue_at)
SELECT c.id, 'b-t-' || c.id || '-' || k, 'home_visit', c.stage,
       CASE k WHEN 1 THEN 'homeroom_teacher' WHEN 2 THEN 'principal'
         WHEN 3 THEN 'township_officer' ELSE 'academic_office' END,
       c.opened_at, c.opened_at + k * interval '3 days',
       CASE WHEN c.closed_at IS NOT NULL OR (c.id + k) % 3 <> 0 THEN c.opened_at + interval '1 day' END,
       NULL
FROM cases.case c, generate_series(1, greatest(1, :tasks / greatest(1, :cases))) k;
-- Roll calls: the last 20 weekdays before 2026-11-27, every class but on 2 of them.
INSERT INTO attendance.class_report (class_id, day, period, school_id, order_key, value)
SELECT cl.id, d::date, 0, cl.school_id, '0', ''
FROM registry.class cl, generate_series(date '2026-10-30', date '2026-11-27', interval '1 day') d
WHERE cl.id LIKE 'B97%' AND extract(isodow FROM d) < 6 AND (abs(hashtext(cl.id) % 10) + (d::date - date '2026-01-01')) % 10 <> 0;
UPDATE registry.revision SET revision = revision + 1, changed_at = now();
-- as autovacuum would soon: statistics, and the visibility map the summaries' index-only counts
-- read (migration 0021)
VACUUM (ANALYZE);
