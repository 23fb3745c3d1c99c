-- baoxue migration 0016: operations (issue 14): cases flagged for a person's attention when an
-- input could not be applied; bx-notify's digest time where `bxctl settle` can see it, so a due
-- digest is waited for; bx-notify may delete what its retention settings let go.

-- An input bx-escalate gave up on (a permanent error, or the bounded retries spent): it went to
-- bx.dlq.v1 (dlq_event_id is that letter's event id) in the same transaction as this row, and its
-- case needs a person to look at it. `bxctl case list --attention` lists the uncleared ones.
CREATE TABLE cases.needs_attention (
    id           bigserial PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES cases.case (id),
    dlq_event_id text COLLATE "C" NOT NULL UNIQUE CHECK (length(dlq_event_id) BETWEEN 1 AND 200),
    reason       text NOT NULL CHECK (length(reason) <= 1000),
    flagged_at   timestamptz NOT NULL,
    cleared_at   timestamptz
);
CREATE INDEX needs_attention_open ON cases.needs_attention (case_id) WHERE cleared_at IS NULL;
GRANT SELECT, INSERT ON cases.needs_attention TO bx_escalate;
GRANT USAGE ON SEQUENCE cases.needs_attention_id_seq TO bx_escalate;
GRANT SELECT ON cases.needs_attention TO bx_console;

-- bx-notify's digest time (BX_NOTIFY_DIGEST_TIME as minutes after local midnight), written by
-- bx-notify when it starts.
CREATE TABLE notify.digest_schedule (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    digest_minute integer NOT NULL CHECK (digest_minute BETWEEN 0 AND 1439),
    updated_at    timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON notify.digest_schedule TO bx_notify;

-- The last digest time (Asia/Shanghai) at or before now; null before bx-notify ever started.
CREATE FUNCTION notify.digest_cutoff(now timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN t <= now THEN t ELSE t - interval '1 day' END
    FROM (SELECT (date_trunc('day', now AT TIME ZONE 'Asia/Shanghai')
                  + make_interval(mins => digest_minute)) AT TIME ZONE 'Asia/Shanghai' AS t
          FROM notify.digest_schedule) d
$$;

-- As 0006, and a digest that fell due (services/bx-notify/digest.c makes the last due one when it
-- can, flagged late on a later day): tasks collected before the last digest time, and, when that
-- time was today, people with tasks still open from before the day before it who have had no
-- digest since (a late digest is owed only for new tasks).
CREATE OR REPLACE FUNCTION notify.settle_pending(now timestamptz)
RETURNS TABLE (what text, pending bigint)
LANGUAGE sql STABLE AS $$
    SELECT 'bx-notify: notifications due', count(*) FROM notify.notification
        WHERE state IN ('queued', 'unknown', 'sent') AND due_at <= now
    UNION ALL
    SELECT 'bx-notify: sends in flight', count(*) FROM notify.notification WHERE state = 'sending'
    UNION ALL
    SELECT 'bx-notify: status messages not relayed', count(*) FROM notify.outbox
        WHERE sent_at IS NULL
    UNION ALL
    SELECT 'bx-notify: digests due', count(*) FROM notify.notification
        WHERE state = 'collected' AND created_at < notify.digest_cutoff(now)
    UNION ALL
    SELECT 'bx-notify: digests of open tasks due', count(DISTINCT st.id)
        FROM cases.task t JOIN cases.case c ON c.id = t.case_id
        JOIN registry.school sc ON sc.id = c.school_id
        JOIN registry.township tw ON tw.code = sc.township_code
        JOIN registry.staff st ON st.role = t.owner_role AND (st.id = t.owner_staff_id OR
            (t.owner_staff_id IS NULL AND CASE st.role
                WHEN 'township_officer' THEN st.township_code = sc.township_code
                WHEN 'county_officer' THEN st.county_code = tw.county_code
                ELSE st.school_id = c.school_id END))
        WHERE t.done_at IS NULL AND c.closed_at IS NULL
          AND t.created_at < notify.digest_cutoff(now) - interval '1 day'
          AND (notify.digest_cutoff(now) AT TIME ZONE 'Asia/Shanghai')::date
              = (now AT TIME ZONE 'Asia/Shanghai')::date
          AND NOT EXISTS (SELECT 1 FROM notify.notification d WHERE d.channel = 'digest'
                          AND d.staff_id = st.id AND d.created_at >= notify.digest_cutoff(now))
$$;

-- Housekeeping (bx-notify's settings BX_NOTIFY_KEEP_DAYS): finished notifications, their
-- receipts and the requests taken are deleted once older than the retention.
GRANT DELETE ON notify.notification, notify.receipt, notify.request TO bx_notify;
