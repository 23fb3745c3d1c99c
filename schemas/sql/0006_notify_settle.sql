-- baoxue migration 0006: what bx-notify still has to do at a given time, for `bxctl settle` (which
-- calls every <schema>.settle_pending(now)): notifications due at now (a first send, a retry, a
-- query of an unknown outcome or of a missing receipt), sends in flight, and status messages not
-- yet relayed to Kafka. Staff tasks waiting for the daily digest are not counted: the digest's
-- time is bx-notify's setting (BX_NOTIFY_DIGEST_TIME), and they are not late before it.
CREATE FUNCTION notify.settle_pending(now timestamptz)
RETURNS TABLE (what text, pending bigint)
LANGUAGE sql STABLE AS $$
    SELECT 'bx-notify: notifications due', count(*) FROM notify.notification
        WHERE state IN ('queued', 'unknown', 'sent') AND due_at <= now
    UNION ALL
    SELECT 'bx-notify: sends in flight', count(*) FROM notify.notification WHERE state = 'sending'
    UNION ALL
    SELECT 'bx-notify: status messages not relayed', count(*) FROM notify.outbox
        WHERE sent_at IS NULL
$$;
