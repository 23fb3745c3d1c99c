-- baoxue migration 0022: the reports upward (四个一, issue 15 item 7): the school's monthly report to
-- the county, the county's quarterly report, the city's report each term and the province's yearly
-- report, made by bx-escalate's calendar duties (services/bx-escalate/duties.h) on their school
-- day, one per place and period, with their figures as of that day. Written only by bx-escalate;
-- read by bxctl and bx-console. Counts only: no child is named here.

CREATE TABLE cases.upward_report (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('school_monthly_report', 'county_quarterly_report',
                                               'city_term_report', 'province_yearly_report')),
    -- the place: a school id, a county code, a city's 4 or a province's 2 digits
    area         text COLLATE "C" NOT NULL CHECK (area ~ '^[A-Za-z0-9_-]{1,32}$'),
    -- the period: 2026-09, 2026-Q3, a term code (2026-autumn), a school year (2026-2027)
    period       text COLLATE "C" NOT NULL CHECK (period ~ '^[A-Za-z0-9_.-]{1,24}$'),
    term         text COLLATE "C" NOT NULL CHECK (term ~ '^[A-Za-z0-9_.-]{1,16}$'),
    first_day    date NOT NULL,
    last_day     date NOT NULL,  -- the report's day: the days it covers end there
    report_day   date NOT NULL,  -- a school day of the calendar whose duty made it
    county_code  char(6) CHECK (county_code ~ '^[0-9]{6}$'), -- a school's or a county's; NULL above
    owner_role   text NOT NULL CHECK (owner_role IN ('academic_office', 'principal',
                                                     'county_officer', 'city_officer',
                                                     'province_officer')),
    -- reports_write_figures_json: dropout and retention rates, the ledgers' counts, returns and
    -- the roll-call reporting rate
    figures      jsonb NOT NULL,
    duty_key     text COLLATE "C" NOT NULL CHECK (length(duty_key) BETWEEN 1 AND 200),
    request_id   text COLLATE "C" CHECK (request_id ~ '^[A-Za-z0-9._:-]{1,128}$'), -- the task asked
    generated_at timestamptz NOT NULL,
    UNIQUE (kind, area, period),
    CHECK (first_day <= last_day)
);
-- A county's page lists its schools' and its own reports, newest first.
CREATE INDEX upward_report_county ON cases.upward_report (county_code, report_day DESC);

GRANT SELECT, INSERT ON cases.upward_report TO bx_escalate;
GRANT USAGE ON SEQUENCE cases.upward_report_id_seq TO bx_escalate;
GRANT SELECT ON cases.upward_report TO bx_console;
