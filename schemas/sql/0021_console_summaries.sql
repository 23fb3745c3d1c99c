-- baoxue migration 0021: what keeps bx-console's county and area pages fast at province size
-- (bench/console: 1,000,000 students, 50,000 cases, 200,000 tasks). Two summaries, both exact:
--
-- console.case_summary: one row per case with what the standing lists (台账) filter, sort and count
--   by (county, township, school, list, stage, opening time, roster entry, open tasks) and shows
--   (reason, first day absent, responsible staff), kept by triggers in the transaction of every
--   change of a case, its events or its tasks. The county's ledger pages a key of its indexes
--   first and reads names and classes for that page only; cases opened and closed per week and
--   overdue tasks per township count its rows.
--
-- console.class_counts: the rates' per-class counts (services/bx-escalate/report_queries.c's
--   counts_sql, computed by console.class_counts_compute below in one pass instead of per
--   student) per period, computed when first asked and recomputed only for the classes that
--   changed since: every write that can change a class's counts (a student added, moved, given a
--   status or enrolment date; a class or school moved; a term's dates; a case closed; a roster
--   entry) leaves a mark (class, writing transaction) in console.class_dirty in its own
--   transaction, and a class's row is stale when a mark's transaction is not visible in the
--   snapshot the row was computed in. Time alone changes a class's counts only when a date of its
--   data falls between the computation and now (an enrolment date or a case's time still ahead,
--   the period not begun): each row keeps that as valid_until. console.class_counts_refresh
--   brings the stale rows of an area up to date, a county at a time, and class_counts_read
--   returns them, so a page shows the counts of now.
--
-- The triggers' functions run as the migration's owner (SECURITY DEFINER), so the writers need no
-- grant on the console schema; bx-console reads both summaries and refreshes the counts.

-- ---- the standing lists ----

CREATE TABLE console.case_summary (
    case_id     bigint PRIMARY KEY,
    school_id   text COLLATE "C" NOT NULL,
    -- codes of digits (one length each: any collation orders them alike); "C" so that a prefix
    -- (LIKE '9701%') is an index range
    township    text COLLATE "C" NOT NULL DEFAULT '', -- '' when the school is unknown
    county      text COLLATE "C" NOT NULL DEFAULT '',
    student_id  text COLLATE "C" NOT NULL,
    stage       text COLLATE "C" NOT NULL DEFAULT '', -- '' for no stage
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz,
    ending      text,
    roster_at   timestamptz, -- the first stage_entered into a roster stage
    -- the first day absent of the case's streak (state's streak_start), YYYY-MM-DD or ''
    first_absent text NOT NULL DEFAULT '',
    reason      text, -- the reason of its first opened event, and that event's id
    reason_event bigint,
    open_marked integer NOT NULL DEFAULT 0, -- open tasks marked overdue (overdue_at set)
    open_dues   timestamptz[], -- due_at of the other open tasks, ascending; NULL when none
    -- the responsible staff: the owner of the open task due first (due_at, id); NULL when none
    owner_role  text,
    owner_staff_id text,
    -- overdue from this time on (case_overdue below): at once when a task is marked overdue,
    -- else when the first open task falls due; NULL without open tasks
    overdue_from timestamptz GENERATED ALWAYS AS (
        CASE WHEN open_marked > 0 THEN '-infinity'::timestamptz ELSE open_dues[1] END) STORED,
    -- 1 suspected, 2 dropout, 3 returned; NULL: not on the lists (closed otherwise)
    list_rank   smallint GENERATED ALWAYS AS (
        CASE WHEN closed_at IS NOT NULL THEN CASE WHEN ending = 'returned' THEN 3 END
             WHEN roster_at IS NULL THEN 1 ELSE 2 END) STORED
);
-- The ledger's four orders (report_queries.c's ledger_orders), a county at a time, with what its
-- filters and count read (so a count is an index-only scan).
CREATE INDEX case_summary_ledger ON console.case_summary
    (county, list_rank, township, school_id, student_id, case_id) INCLUDE (stage, overdue_from)
    WHERE list_rank IS NOT NULL;
CREATE INDEX case_summary_opened ON console.case_summary
    (county, opened_at DESC, case_id DESC) INCLUDE (list_rank, overdue_from)
    WHERE list_rank IS NOT NULL;
CREATE INDEX case_summary_school ON console.case_summary
    (county, school_id, student_id, case_id) INCLUDE (list_rank, overdue_from)
    WHERE list_rank IS NOT NULL;
CREATE INDEX case_summary_stage ON console.case_summary
    (county, stage, school_id, student_id, case_id) INCLUDE (list_rank, overdue_from)
    WHERE list_rank IS NOT NULL;
-- Cases opened and closed per week; open tasks per township.
CREATE INDEX case_summary_county_opened ON console.case_summary (county, opened_at);
CREATE INDEX case_summary_county_closed ON console.case_summary (county, closed_at)
    WHERE closed_at IS NOT NULL;
CREATE INDEX case_summary_open_tasks ON console.case_summary (county, township)
    WHERE open_marked > 0 OR open_dues IS NOT NULL;
CREATE INDEX case_summary_school_id ON console.case_summary (school_id);

-- The first day absent of a case's streak, from its state (bx-escalate's days since 1970).
CREATE FUNCTION console.first_absent(state jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN (state->>'streak_start') ~ '^[0-9]{1,6}$'
                THEN (date '1970-01-01' + (state->>'streak_start')::int)::text ELSE '' END
$$;

-- Whether a case is overdue at now (its overdue_from): an open task marked overdue, or one past
-- its deadline.
CREATE FUNCTION console.case_overdue(overdue_from timestamptz, now timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(overdue_from <= now, false)
$$;
-- How many open tasks of a case are overdue at now (dues ascending: width_bucket counts those at
-- or before now by a binary search).
CREATE FUNCTION console.case_overdue_tasks(marked integer, dues timestamptz[], now timestamptz)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT marked + coalesce(width_bucket(now, dues), 0)
$$;

-- The open-task columns of one case, read after its row is locked (so two transactions changing
-- tasks of one case never compute from each other's old state).
CREATE FUNCTION console.case_summary_tasks_of(p_case bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM console.case_summary WHERE case_id = p_case FOR UPDATE;
    UPDATE console.case_summary x
       SET open_marked = t.marked, open_dues = t.dues, owner_role = o.owner_role,
           owner_staff_id = o.owner_staff_id
      FROM (SELECT count(*) FILTER (WHERE k.overdue_at IS NOT NULL)::integer AS marked,
                   array_agg(k.due_at ORDER BY k.due_at) FILTER (WHERE k.overdue_at IS NULL) AS dues
              FROM cases.task k WHERE k.case_id = p_case AND k.outcome IS NULL) t
      LEFT JOIN LATERAL (SELECT k.owner_role, k.owner_staff_id FROM cases.task k
                          WHERE k.case_id = p_case AND k.outcome IS NULL
                          ORDER BY k.due_at, k.id LIMIT 1) o ON true
     WHERE x.case_id = p_case
       AND (x.open_marked, x.open_dues, x.owner_role, x.owner_staff_id)
           IS DISTINCT FROM (t.marked, t.dues, o.owner_role, o.owner_staff_id);
END $$;

-- ---- the rates' per-class counts ----

-- A write that may change a class's counts, by the writing transaction (several a class while
-- their snapshots differ; pruned when the class's rows are recomputed).
CREATE TABLE console.class_dirty (
    class_id text NOT NULL,
    xid      xid8 NOT NULL,
    PRIMARY KEY (class_id, xid)
);

CREATE TABLE console.class_counts (
    kind        text NOT NULL CHECK (kind IN ('term', 'month')),
    period      text NOT NULL, -- the term's code, or the month's first day
    class_id    text NOT NULL,
    county      text NOT NULL,
    township    text NOT NULL,
    school_id   text NOT NULL,
    grade       smallint NOT NULL,
    enrolled_start bigint NOT NULL,
    dropped_out bigint NOT NULL,
    moved_out   bigint NOT NULL,
    moved_in    bigint NOT NULL,
    enrolled_now bigint NOT NULL,
    undated     bigint NOT NULL,
    no_date     bigint NOT NULL,
    has_period  boolean NOT NULL,
    begun       boolean NOT NULL,
    computed_at timestamptz NOT NULL, -- the now it was computed for
    valid_until timestamptz NOT NULL, -- the first time a date of the class's data can change it
    snap        pg_snapshot NOT NULL, -- the snapshot it was computed in
    PRIMARY KEY (kind, period, class_id)
);
CREATE INDEX class_counts_class ON console.class_counts (class_id);

-- Marks the classes (the students' classes) as changed by the current transaction.
CREATE FUNCTION console.mark_classes(p_classes text[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO console.class_dirty (class_id, xid)
    SELECT DISTINCT c, pg_current_xact_id() FROM unnest(p_classes) c WHERE c IS NOT NULL
    ON CONFLICT DO NOTHING
$$;
-- (Case ids are C-collated and an argument's collation is the parameter's: the ids are compared in
-- the registry's own collation, so its primary key is used.)
CREATE FUNCTION console.mark_students(p_students text[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT console.mark_classes(array_agg(DISTINCT s.class_id))
      FROM registry.student s WHERE s.id = ANY (p_students COLLATE "default")
$$;

-- The counts of report_queries.c's counts_sql for the classes p_classes, one row per class, with
-- the same columns and meanings ($1..$4 as there: 'term' or 'month', the term's code, the month's
-- first day, now in ms), plus valid_until. Students without a case are counted from their own
-- columns alone; only the cases of the classes' students are looked at, each once.
CREATE FUNCTION console.class_counts_compute(p_kind text, p_term text, p_month text,
                                             p_now_ms bigint, p_classes text[])
RETURNS TABLE (county text, township text, school_id text, class_id text, grade smallint,
               enrolled_start bigint, dropped_out bigint, moved_out bigint, moved_in bigint,
               enrolled_now bigint, undated bigint, no_date bigint, has_period boolean,
               begun boolean, valid_until timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET jit = off SET work_mem = '64MB' AS $$
WITH now_ts AS (SELECT to_timestamp(p_now_ms / 1000.0) AS t),
cls AS (SELECT c.id AS class_id, c.grade, c.school_id, s.township_code::text AS township,
          tw.county_code::text AS county,
          CASE WHEN p_kind = 'term' THEN ct.first_day ELSE NULLIF(p_month, '')::date END AS first_day,
          CASE WHEN p_kind = 'term' THEN ct.last_day
               ELSE (NULLIF(p_month, '')::date + interval '1 month' - interval '1 day')::date END
            AS last_day
        FROM registry.class c JOIN registry.school s ON s.id = c.school_id
        JOIN registry.township tw ON tw.code = s.township_code
        LEFT JOIN registry.calendar_term ct ON p_kind = 'term' AND ct.calendar_id = s.calendar_id
          AND ct.code = p_term
        WHERE c.id = ANY (p_classes)),
b AS MATERIALIZED (SELECT cls.*, (first_day::timestamp AT TIME ZONE 'Asia/Shanghai') AS ps,
        ((last_day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai') AS pend,
        least(((last_day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai'), (SELECT t FROM now_ts))
          AS pe FROM cls),
-- each case of the classes' students, with its first roster entry, read once
sc AS MATERIALIZED (SELECT s.id AS student_id, b.ps, b.pe, b.pend, c.closed_at, c.ending,
         dc.dropped_at
       FROM b JOIN registry.student s ON s.class_id = b.class_id
       JOIN cases.case c ON c.student_id = s.id COLLATE "C"
       LEFT JOIN LATERAL (SELECT min(e.occurred_at) AS dropped_at FROM cases.event e
         WHERE e.case_id = c.id AND e.kind = 'stage_entered' AND cases.on_roster(e.stage)) dc
         ON true
       WHERE b.first_day IS NOT NULL AND b.pe > b.ps),
cf AS (SELECT sc.student_id,
         bool_or(sc.dropped_at IS NOT NULL) AS any_roster,
         bool_or(sc.ending = 'transferred') AS any_transferred,
         bool_or(sc.ending IN ('graduated', 'obligation_ended')) AS any_graduated,
         bool_or(sc.ending IN ('transferred', 'graduated', 'obligation_ended')
                 AND sc.closed_at < sc.ps) AS gone_start,
         bool_or(sc.ending IN ('transferred', 'graduated', 'obligation_ended')
                 AND sc.closed_at < sc.pe) AS gone_end,
         bool_or(sc.ending = 'transferred' AND sc.closed_at >= sc.ps AND sc.closed_at < sc.pe)
           AS moved_out,
         bool_or(sc.dropped_at < sc.ps AND (sc.closed_at IS NULL OR sc.closed_at >= sc.ps))
           FILTER (WHERE sc.dropped_at IS NOT NULL) AS away_start,
         bool_or(sc.dropped_at < sc.pe AND (sc.closed_at IS NULL OR sc.closed_at >= sc.pe))
           FILTER (WHERE sc.dropped_at IS NOT NULL) AS away_end,
         bool_or(sc.dropped_at >= sc.ps AND sc.dropped_at < sc.pe AND NOT coalesce(sc.ending IN
           ('returned', 'transferred') AND sc.closed_at < sc.pe, false))
           FILTER (WHERE sc.dropped_at IS NOT NULL) AS dropped,
         -- the first of the cases' times still ahead of now within the period
         least(min(sc.closed_at) FILTER (WHERE sc.closed_at >= sc.pe AND sc.closed_at < sc.pend),
               min(sc.dropped_at) FILTER (WHERE sc.dropped_at >= sc.pe AND sc.dropped_at < sc.pend))
           AS ahead
       FROM sc GROUP BY sc.student_id),
f AS (SELECT st.id, b.class_id, st.enrolled_on,
        (st.status IN ('dropped_out', 'transferred_out', 'graduated') AND NOT coalesce(
           (st.status = 'dropped_out' AND cf.any_roster)
           OR (st.status = 'transferred_out' AND cf.any_transferred)
           OR (st.status = 'graduated' AND cf.any_graduated), false)) AS undated,
        coalesce(cf.away_start, false) AS away_start, coalesce(cf.away_end, false) AS away_end,
        coalesce(cf.dropped, false) AS dropped, coalesce(cf.gone_start, false) AS gone_start,
        coalesce(cf.gone_end, false) AS gone_end, coalesce(cf.moved_out, false) AS moved_out,
        coalesce(st.enrolled_on > b.first_day AND (st.enrolled_on::timestamp AT TIME ZONE
          'Asia/Shanghai') < b.pe, false) AS moved_in,
        (st.enrolled_on IS NULL OR st.enrolled_on <= b.first_day) AS there_start,
        (st.enrolled_on IS NULL OR (st.enrolled_on::timestamp AT TIME ZONE 'Asia/Shanghai')
          < b.pe) AS there_end,
        least(cf.ahead, CASE WHEN (st.enrolled_on::timestamp AT TIME ZONE 'Asia/Shanghai')
          >= b.pe AND (st.enrolled_on::timestamp AT TIME ZONE 'Asia/Shanghai') < b.pend
          THEN st.enrolled_on::timestamp AT TIME ZONE 'Asia/Shanghai' END) AS ahead
      FROM b JOIN registry.student st ON st.class_id = b.class_id
      LEFT JOIN cf ON cf.student_id = st.id
      WHERE b.first_day IS NOT NULL AND b.pe > b.ps),
-- per class first (a hash of the classes), then the classes without students joined in
a AS (SELECT f.class_id,
        count(*) FILTER (WHERE NOT f.undated AND f.there_start AND NOT f.away_start
          AND NOT f.gone_start) AS enrolled_start,
        count(*) FILTER (WHERE NOT f.undated AND f.dropped) AS dropped_out,
        count(*) FILTER (WHERE NOT f.undated AND f.moved_out) AS moved_out,
        count(*) FILTER (WHERE NOT f.undated AND f.moved_in) AS moved_in,
        count(*) FILTER (WHERE NOT f.undated AND f.there_end AND NOT f.away_end
          AND NOT f.gone_end) AS enrolled_now,
        count(*) FILTER (WHERE f.undated) AS undated,
        count(*) FILTER (WHERE f.enrolled_on IS NULL) AS no_date,
        min(f.ahead) AS ahead
      FROM f GROUP BY f.class_id)
SELECT b.county, b.township, b.school_id, b.class_id, b.grade,
  coalesce(a.enrolled_start, 0), coalesce(a.dropped_out, 0), coalesce(a.moved_out, 0),
  coalesce(a.moved_in, 0), coalesce(a.enrolled_now, 0), coalesce(a.undated, 0),
  coalesce(a.no_date, 0), b.first_day IS NOT NULL, coalesce(b.pe > b.ps, false),
  CASE WHEN b.first_day IS NULL OR b.pe >= b.pend THEN 'infinity'::timestamptz
       WHEN b.pe <= b.ps THEN b.ps -- not begun: until it begins
       ELSE coalesce(a.ahead, 'infinity'::timestamptz) END
FROM b LEFT JOIN a ON a.class_id = b.class_id
$$;

-- The classes of an area (a county code, a city or province prefix, '' every county) whose row of
-- a period is missing or stale at now, with their county.
CREATE FUNCTION console.class_counts_stale(p_kind text, p_period text, p_now timestamptz,
                                           p_area text)
RETURNS TABLE (class_id text, county text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
    SELECT c.id, tw.county_code::text
      FROM registry.class c JOIN registry.school s ON s.id = c.school_id
      JOIN registry.township tw ON tw.code = s.township_code
      LEFT JOIN console.class_counts r ON r.kind = p_kind AND r.period = p_period
        AND r.class_id = c.id
     WHERE (p_area = '' OR tw.county_code::text LIKE p_area || '%')
       AND (r.class_id IS NULL OR p_now < r.computed_at OR p_now >= r.valid_until
            OR r.county <> tw.county_code::text OR r.township <> s.township_code::text
            OR r.school_id <> c.school_id
            OR EXISTS (SELECT 1 FROM console.class_dirty d WHERE d.class_id = c.id
                         AND NOT pg_visible_in_snapshot(d.xid, r.snap)))
$$;

-- Recomputes the stale rows of a county's classes (p_classes, found stale under the county's
-- lock) for a period, in one statement whose snapshot the rows record; then drops the other
-- periods' rows of those classes that a mark makes stale (they would be recomputed when read) and
-- the marks every remaining row has seen.
CREATE FUNCTION console.class_counts_recompute(p_kind text, p_term text, p_month text,
                                               p_now_ms bigint, p_classes text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
    v_period text := CASE WHEN p_kind = 'term' THEN p_term ELSE p_month END;
BEGIN
    DELETE FROM console.class_counts r WHERE r.kind = p_kind AND r.period = v_period
       AND r.class_id = ANY (p_classes);
    INSERT INTO console.class_counts
    SELECT p_kind, v_period, x.class_id, x.county, x.township, x.school_id, x.grade,
           x.enrolled_start, x.dropped_out, x.moved_out, x.moved_in, x.enrolled_now, x.undated,
           x.no_date, x.has_period, x.begun, to_timestamp(p_now_ms / 1000.0), x.valid_until,
           pg_current_snapshot()
      FROM console.class_counts_compute(p_kind, p_term, p_month, p_now_ms, p_classes) x;
    DELETE FROM console.class_counts r WHERE r.class_id = ANY (p_classes)
       AND EXISTS (SELECT 1 FROM console.class_dirty d WHERE d.class_id = r.class_id
                     AND NOT pg_visible_in_snapshot(d.xid, r.snap));
    DELETE FROM console.class_dirty d WHERE d.class_id = ANY (p_classes)
       AND NOT EXISTS (SELECT 1 FROM console.class_counts r WHERE r.class_id = d.class_id
                         AND NOT pg_visible_in_snapshot(d.xid, r.snap));
    -- a period computed for many classes at once (its first page): later reads plan with the
    -- table's new size
    IF cardinality(p_classes) >= 1000 THEN
        ANALYZE console.class_counts;
    END IF;
END $$;

-- Brings an area's rows of a period up to date at now (kind, term or month's first day and now in
-- ms as counts_sql's $1..$4), a county at a time: each county's stale classes are looked for again
-- under the county's lock and recomputed, then committed, so a page of one county waits at most
-- for its own county's computation, and a second page finds it done. Called before
-- class_counts_read (a procedure: it commits, so it is CALLed outside a transaction).
CREATE PROCEDURE console.class_counts_refresh(p_kind text, p_term text, p_month text,
                                              p_now_ms bigint, p_area text)
LANGUAGE plpgsql AS $$
DECLARE
    v_period text := CASE WHEN p_kind = 'term' THEN p_term ELSE p_month END;
    v_now timestamptz := to_timestamp(p_now_ms / 1000.0);
    v_counties text[];
    v_county text;
    v_stale text[];
BEGIN
    IF p_kind NOT IN ('term', 'month') OR v_period IS NULL OR p_area IS NULL THEN
        RAISE EXCEPTION 'class_counts_refresh: kind % period % area %', p_kind, v_period, p_area;
    END IF;
    SELECT array_agg(DISTINCT x.county ORDER BY x.county) INTO v_counties
      FROM console.class_counts_stale(p_kind, v_period, v_now, p_area) x;
    COMMIT;
    IF v_counties IS NULL THEN
        RETURN;
    END IF;
    FOREACH v_county IN ARRAY v_counties LOOP
        PERFORM pg_advisory_xact_lock(hashtext('console.class_counts'), hashtext(v_county));
        SELECT array_agg(x.class_id) INTO v_stale
          FROM console.class_counts_stale(p_kind, v_period, v_now, v_county) x;
        IF v_stale IS NOT NULL THEN
            PERFORM console.class_counts_recompute(p_kind, p_term, p_month, p_now_ms, v_stale);
        END IF;
        COMMIT;
    END LOOP;
END $$;

-- The per-class counts of an area for a period, as counts_sql returns them (county, township,
-- school, class, grade, the five counts, undated, no date, has the period, begun), ordered by
-- class; after class_counts_refresh they are the counts of now.
CREATE FUNCTION console.class_counts_read(p_kind text, p_period text, p_area text)
RETURNS TABLE (county text, township text, school_id text, class_id text, grade smallint,
               enrolled_start bigint, dropped_out bigint, moved_out bigint, moved_in bigint,
               enrolled_now bigint, undated bigint, no_date bigint, has_period boolean,
               begun boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
    SELECT r.county, r.township, r.school_id, r.class_id, r.grade, r.enrolled_start,
           r.dropped_out, r.moved_out, r.moved_in, r.enrolled_now, r.undated, r.no_date,
           r.has_period, r.begun
      FROM registry.class c JOIN registry.school s ON s.id = c.school_id
      JOIN registry.township tw ON tw.code = s.township_code
      JOIN console.class_counts r ON r.kind = p_kind AND r.period = p_period AND r.class_id = c.id
     WHERE (p_area = '' OR tw.county_code::text LIKE p_area || '%')
     ORDER BY r.class_id
$$;

-- ---- the triggers ----

CREATE FUNCTION console.on_case() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO console.case_summary AS x (case_id, school_id, township, county, student_id,
                                           stage, opened_at, closed_at, ending, first_absent)
    SELECT NEW.id, NEW.school_id, coalesce(s.township_code::text, ''),
           coalesce(t.county_code::text, ''), NEW.student_id, coalesce(NEW.stage, ''),
           NEW.opened_at, NEW.closed_at, NEW.ending, console.first_absent(NEW.state)
      FROM (SELECT 1) one LEFT JOIN registry.school s ON s.id = NEW.school_id COLLATE "default"
      LEFT JOIN registry.township t ON t.code = s.township_code
    ON CONFLICT (case_id) DO UPDATE SET school_id = EXCLUDED.school_id,
        township = EXCLUDED.township, county = EXCLUDED.county, student_id = EXCLUDED.student_id,
        stage = EXCLUDED.stage, opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at,
        ending = EXCLUDED.ending, first_absent = EXCLUDED.first_absent;
    -- the rates: a case's ending and closing time count; an open case without a roster entry
    -- does not
    IF TG_OP = 'INSERT' AND NEW.ending IS NOT NULL THEN
        PERFORM console.mark_students(ARRAY[NEW.student_id]);
    ELSIF TG_OP = 'UPDATE' AND (OLD.ending IS DISTINCT FROM NEW.ending
          OR OLD.closed_at IS DISTINCT FROM NEW.closed_at
          OR OLD.student_id IS DISTINCT FROM NEW.student_id) THEN
        PERFORM console.mark_students(ARRAY[OLD.student_id, NEW.student_id]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER console_case_ins AFTER INSERT ON cases.case
    FOR EACH ROW EXECUTE FUNCTION console.on_case();
CREATE TRIGGER console_case_upd AFTER UPDATE ON cases.case
    FOR EACH ROW WHEN (OLD.school_id IS DISTINCT FROM NEW.school_id
                       OR OLD.student_id IS DISTINCT FROM NEW.student_id
                       OR OLD.stage IS DISTINCT FROM NEW.stage
                       OR OLD.opened_at IS DISTINCT FROM NEW.opened_at
                       OR OLD.closed_at IS DISTINCT FROM NEW.closed_at
                       OR OLD.ending IS DISTINCT FROM NEW.ending
                       OR OLD.state->'streak_start' IS DISTINCT FROM NEW.state->'streak_start')
    EXECUTE FUNCTION console.on_case();

CREATE FUNCTION console.on_roster_entry() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.kind = 'opened' THEN
        UPDATE console.case_summary SET reason = NEW.reason, reason_event = NEW.id
         WHERE case_id = NEW.case_id AND (reason_event IS NULL OR reason_event > NEW.id);
    ELSIF cases.on_roster(NEW.stage) THEN
        UPDATE console.case_summary SET roster_at = least(roster_at, NEW.occurred_at)
         WHERE case_id = NEW.case_id;
        PERFORM console.mark_students(ARRAY(SELECT c.student_id FROM cases.case c
                                            WHERE c.id = NEW.case_id));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER console_event_roster AFTER INSERT ON cases.event
    FOR EACH ROW WHEN (NEW.kind IN ('stage_entered', 'opened'))
    EXECUTE FUNCTION console.on_roster_entry();

CREATE FUNCTION console.on_task() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.case_id <> NEW.case_id THEN
        PERFORM console.case_summary_tasks_of(least(OLD.case_id, NEW.case_id));
        PERFORM console.case_summary_tasks_of(greatest(OLD.case_id, NEW.case_id));
    ELSE
        PERFORM console.case_summary_tasks_of(NEW.case_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER console_task_ins AFTER INSERT ON cases.task
    FOR EACH ROW WHEN (NEW.outcome IS NULL) EXECUTE FUNCTION console.on_task();
CREATE TRIGGER console_task_upd AFTER UPDATE ON cases.task
    FOR EACH ROW WHEN (OLD.outcome IS DISTINCT FROM NEW.outcome
                       OR OLD.due_at IS DISTINCT FROM NEW.due_at
                       OR OLD.overdue_at IS DISTINCT FROM NEW.overdue_at
                       OR OLD.case_id IS DISTINCT FROM NEW.case_id
                       OR OLD.owner_staff_id IS DISTINCT FROM NEW.owner_staff_id
                       OR OLD.owner_role IS DISTINCT FROM NEW.owner_role)
    EXECUTE FUNCTION console.on_task();

-- The registry: students (insert, update, delete: the old and the new class), classes, a
-- school's township or calendar, a term's dates. Statement triggers: an import writes many rows.
CREATE FUNCTION console.on_students_new() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(SELECT DISTINCT n.class_id FROM new_rows n));
    RETURN NULL;
END $$;
CREATE FUNCTION console.on_students_old() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(SELECT DISTINCT o.class_id FROM old_rows o));
    RETURN NULL;
END $$;
CREATE FUNCTION console.on_students_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(
        SELECT o.class_id FROM old_rows o JOIN new_rows n ON n.id = o.id
         WHERE (o.class_id, o.status, o.enrolled_on) IS DISTINCT FROM
               (n.class_id, n.status, n.enrolled_on)
        UNION SELECT n.class_id FROM old_rows o JOIN new_rows n ON n.id = o.id
         WHERE (o.class_id, o.status, o.enrolled_on) IS DISTINCT FROM
               (n.class_id, n.status, n.enrolled_on)));
    RETURN NULL;
END $$;
CREATE TRIGGER console_student_ins AFTER INSERT ON registry.student
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console.on_students_new();
CREATE TRIGGER console_student_del AFTER DELETE ON registry.student
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console.on_students_old();
CREATE TRIGGER console_student_upd AFTER UPDATE ON registry.student
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console.on_students_changed();

CREATE FUNCTION console.on_classes_new() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(SELECT n.id FROM new_rows n));
    RETURN NULL;
END $$;
CREATE FUNCTION console.on_classes_old() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(SELECT o.id FROM old_rows o));
    RETURN NULL;
END $$;
CREATE FUNCTION console.on_classes_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(
        SELECT o.id FROM old_rows o JOIN new_rows n ON n.id = o.id
         WHERE (o.school_id, o.grade) IS DISTINCT FROM (n.school_id, n.grade)));
    RETURN NULL;
END $$;
CREATE TRIGGER console_class_ins AFTER INSERT ON registry.class
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_classes_new();
CREATE TRIGGER console_class_del AFTER DELETE ON registry.class
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_classes_old();
CREATE TRIGGER console_class_upd AFTER UPDATE ON registry.class
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console.on_classes_changed();

-- A school moved to another township, or given another calendar: its classes' counts, and its
-- cases' place in the lists.
CREATE FUNCTION console.on_schools_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(
        SELECT c.id FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN registry.class c ON c.school_id = n.id
         WHERE (o.township_code, o.calendar_id) IS DISTINCT FROM (n.township_code, n.calendar_id)));
    UPDATE console.case_summary x SET township = n.township_code::text,
           county = t.county_code::text
      FROM old_rows o JOIN new_rows n ON n.id = o.id
      JOIN registry.township t ON t.code = n.township_code
     WHERE o.township_code IS DISTINCT FROM n.township_code AND x.school_id = n.id COLLATE "C";
    RETURN NULL;
END $$;
CREATE TRIGGER console_school_upd AFTER UPDATE ON registry.school
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console.on_schools_changed();
-- A school added after its cases (an import that creates the school later): the cases find it.
CREATE FUNCTION console.on_schools_new() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE console.case_summary x SET township = n.township_code::text,
           county = t.county_code::text
      FROM new_rows n JOIN registry.township t ON t.code = n.township_code
     WHERE x.school_id = n.id COLLATE "C";
    RETURN NULL;
END $$;
CREATE TRIGGER console_school_ins AFTER INSERT ON registry.school
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_schools_new();

CREATE FUNCTION console.on_terms_new() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(
        SELECT c.id FROM registry.class c JOIN registry.school s ON s.id = c.school_id
         WHERE s.calendar_id IN (SELECT n.calendar_id FROM new_rows n)));
    RETURN NULL;
END $$;
CREATE FUNCTION console.on_terms_old() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM console.mark_classes(ARRAY(
        SELECT c.id FROM registry.class c JOIN registry.school s ON s.id = c.school_id
         WHERE s.calendar_id IN (SELECT o.calendar_id FROM old_rows o)));
    RETURN NULL;
END $$;
CREATE TRIGGER console_term_ins AFTER INSERT ON registry.calendar_term
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_terms_new();
CREATE TRIGGER console_term_upd AFTER UPDATE ON registry.calendar_term
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_terms_new();
CREATE TRIGGER console_term_upd_old AFTER UPDATE ON registry.calendar_term
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_terms_old();
CREATE TRIGGER console_term_del AFTER DELETE ON registry.calendar_term
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION console.on_terms_old();

-- ---- the cases already written ----

INSERT INTO console.case_summary (case_id, school_id, township, county, student_id, stage,
                                  opened_at, closed_at, ending, roster_at, first_absent, reason,
                                  reason_event, open_marked, open_dues, owner_role,
                                  owner_staff_id)
SELECT c.id, c.school_id, coalesce(s.township_code::text, ''), coalesce(t.county_code::text, ''),
       c.student_id, coalesce(c.stage, ''), c.opened_at, c.closed_at, c.ending,
       (SELECT min(e.occurred_at) FROM cases.event e WHERE e.case_id = c.id
          AND e.kind = 'stage_entered' AND cases.on_roster(e.stage)),
       console.first_absent(c.state), o.reason, o.id, coalesce(k.marked, 0), k.dues,
       w.owner_role, w.owner_staff_id
  FROM cases.case c LEFT JOIN registry.school s ON s.id = c.school_id COLLATE "default"
  LEFT JOIN registry.township t ON t.code = s.township_code
  LEFT JOIN (SELECT case_id, count(*) FILTER (WHERE overdue_at IS NOT NULL)::integer AS marked,
                    array_agg(due_at ORDER BY due_at) FILTER (WHERE overdue_at IS NULL) AS dues
               FROM cases.task WHERE outcome IS NULL GROUP BY case_id) k ON k.case_id = c.id
  LEFT JOIN LATERAL (SELECT e.id, e.reason FROM cases.event e WHERE e.case_id = c.id
                      AND e.kind = 'opened' ORDER BY e.id LIMIT 1) o ON true
  LEFT JOIN LATERAL (SELECT k.owner_role, k.owner_staff_id FROM cases.task k
                      WHERE k.case_id = c.id AND k.outcome IS NULL
                      ORDER BY k.due_at, k.id LIMIT 1) w ON true;

-- ---- roll calls ----

-- The roll-call reporting rate counts each school's classes that reported per day: an index that
-- answers it without reading the rows (it replaces (school_id, day), a prefix of it).
CREATE INDEX class_report_school_day_class ON attendance.class_report (school_id, day, class_id);
DROP INDEX attendance.class_report_school_day;

-- ---- bx-console ----

GRANT SELECT ON console.case_summary, console.class_counts TO bx_console;
REVOKE ALL ON FUNCTION console.class_counts_stale(text, text, timestamptz, text),
    console.class_counts_recompute(text, text, text, bigint, text[]),
    console.class_counts_read(text, text, text),
    console.class_counts_compute(text, text, text, bigint, text[]),
    console.mark_classes(text[]), console.mark_students(text[]),
    console.case_summary_tasks_of(bigint) FROM PUBLIC;
REVOKE ALL ON PROCEDURE console.class_counts_refresh(text, text, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION console.class_counts_stale(text, text, timestamptz, text),
    console.class_counts_recompute(text, text, text, bigint, text[]),
    console.class_counts_read(text, text, text) TO bx_console;
GRANT EXECUTE ON PROCEDURE console.class_counts_refresh(text, text, text, bigint, text)
    TO bx_console;
