-- baoxue migration 0013: what the county bureau's and the city and province officers' pages of
-- bx-console read (services/bx-console/page_county*.c, page_area*.c), and the indexes that keep
-- them fast at province size (bench/console).
--
-- bx-console computes the rates and the standing lists with the queries bxctl report and bxctl
-- ledger use (services/bx-escalate/report_queries.c), which call migration 0009's functions, and
-- shows the duties' 15-day reports and monthly summaries from their fired timers.

GRANT EXECUTE ON FUNCTION cases.roster_stages(), cases.on_roster(text), attendance.seen_codes()
    TO bx_console;
GRANT SELECT ON cases.timer TO bx_console;

-- The first entry of a case into the dropout roster (the rates' and the ledgers' "dc").
CREATE INDEX event_roster_entered ON cases.event (case_id, occurred_at)
    WHERE kind = 'stage_entered' AND cases.on_roster(stage);
-- Cases of a school by opening and closing time (cases opened and closed per week).
CREATE INDEX case_school_opened ON cases.case (school_id, opened_at);
CREATE INDEX case_school_closed ON cases.case (school_id, closed_at) WHERE closed_at IS NOT NULL;
-- A case's open tasks (overdue tasks per township, the lists' "overdue" filter).
CREATE INDEX task_open_case ON cases.task (case_id) WHERE done_at IS NULL;
-- A county's schools: county -> townships -> schools.
CREATE INDEX township_county ON registry.township (county_code);
CREATE INDEX school_township ON registry.school (township_code);
-- The duties' fired reports (kind 'duty', newest first).
CREATE INDEX timer_duty_fired ON cases.timer (fired_at) WHERE kind = 'duty' AND fired_at IS NOT NULL;
