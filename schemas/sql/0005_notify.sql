-- baoxue migration 0005: bx-notify's notifications (one row per request and recipient, the
-- never-twice key), the requests already taken from Kafka, delivery receipts as received, and the
-- outbox of status messages and dead letters. Written only by bx-notify (services/bx-notify).
--
-- Before a provider is called, the row is marked `sending` with its attempt number in a committed
-- transaction; after an unknown outcome (a timeout once the request left) the provider is asked,
-- or a receipt awaited, before any retry. Due rows are claimed with FOR UPDATE SKIP LOCKED and a
-- lease (due_at doubles as the takeover time of a row being sent), so replicas share the work and
-- a killed replica's rows are taken over.

CREATE SCHEMA notify;

-- Every request taken from bx.notify.requests.v1: a redelivered one finds its row and sends nothing.
CREATE TABLE notify.request (
    request_id  text COLLATE "C" PRIMARY KEY CHECK (request_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    received_at timestamptz NOT NULL,
    recipients  integer NOT NULL CHECK (recipients >= 0)
);

-- state: queued (waiting for due_at: a first try, quiet hours, a cap, a retry), sending (intent
-- recorded, provider being called), unknown (the outcome of the last send is not known), sent
-- (accepted, waiting for the delivery report), delivered, dead (never delivered: reason says why),
-- collected (a staff task waiting for the daily digest), digested (listed in digest_id).
CREATE TABLE notify.notification (
    id               bigserial PRIMARY KEY,
    notification_id  text COLLATE "C" GENERATED ALWAYS AS ('ntf-' || id::text) STORED UNIQUE,
    request_id       text COLLATE "C" NOT NULL CHECK (request_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    -- a phone number for SMS, a staff id for tasks, 'none' when nobody could be found
    recipient        text COLLATE "C" NOT NULL CHECK (length(recipient) BETWEEN 1 AND 32),
    recipient_masked text NOT NULL CHECK (recipient_masked !~ '1[3-9][0-9]{9}'),
    audience         text NOT NULL CHECK (audience IN ('guardian', 'staff')),
    channel          text NOT NULL CHECK (channel IN ('sms', 'task', 'digest')),
    staff_id         text COLLATE "C" CHECK (staff_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    student_id       text COLLATE "C" CHECK (student_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    case_id          text COLLATE "C",
    template         text NOT NULL CHECK (template ~ '^[a-z][a-z0-9_.]{0,63}$'),
    sign_name        text NOT NULL DEFAULT '' CHECK (length(sign_name) <= 100),
    body             text NOT NULL DEFAULT '' CHECK (length(body) <= 4000),
    state            text NOT NULL CHECK (state IN ('queued', 'sending', 'unknown', 'sent',
                                                    'delivered', 'dead', 'collected', 'digested')),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt BETWEEN 0 AND 1000),
    due_at           timestamptz,
    claimed_by       text CHECK (length(claimed_by) BETWEEN 1 AND 128),
    lease_until      timestamptz,
    provider         text NOT NULL DEFAULT '' CHECK (length(provider) <= 32),
    provider_message_id text CHECK (length(provider_message_id) BETWEEN 1 AND 128),
    reason           text CHECK (length(reason) <= 500),
    send_day         date,        -- the local day of the last send, for the daily cap
    digest_id        bigint REFERENCES notify.notification (id),
    created_at       timestamptz NOT NULL,
    first_sent_at    timestamptz, -- when the outcome first became sent or unknown
    updated_at       timestamptz NOT NULL,
    UNIQUE (request_id, recipient),
    CHECK (state NOT IN ('dead') OR reason IS NOT NULL),
    CHECK (state NOT IN ('queued', 'sending', 'unknown', 'sent') OR due_at IS NOT NULL)
);
CREATE INDEX notification_due ON notify.notification (due_at)
    WHERE state IN ('queued', 'sending', 'unknown', 'sent');
CREATE INDEX notification_cap ON notify.notification (recipient, send_day)
    WHERE send_day IS NOT NULL;
CREATE INDEX notification_collected ON notify.notification (staff_id)
    WHERE state = 'collected';

-- Delivery receipts as the provider posted them; a duplicate (same notification, state and
-- provider message id) inserts nothing and changes nothing.
CREATE TABLE notify.receipt (
    id                  bigserial PRIMARY KEY,
    notification_id     text COLLATE "C" NOT NULL CHECK (length(notification_id) BETWEEN 1 AND 128),
    provider_message_id text NOT NULL DEFAULT '' CHECK (length(provider_message_id) <= 128),
    state               text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'none')),
    reason              text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    received_at         timestamptz NOT NULL,
    UNIQUE (notification_id, state, provider_message_id)
);

-- Status messages (bx.notify.status.v1) and dead letters (bx.dlq.v1), written in the transaction
-- of the change and relayed in id order once Kafka acknowledged them.
CREATE TABLE notify.outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL CHECK (topic ~ '^[a-z][a-z0-9._-]{0,99}$'),
    msg_key    text NOT NULL CHECK (length(msg_key) BETWEEN 1 AND 128),
    payload    text NOT NULL CHECK (length(payload) <= 1000000),
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX notify_outbox_unsent ON notify.outbox (id) WHERE sent_at IS NULL;

GRANT USAGE ON SCHEMA notify TO bx_notify;
GRANT SELECT, INSERT, UPDATE ON notify.request, notify.notification, notify.receipt,
                                notify.outbox TO bx_notify;
GRANT DELETE ON notify.outbox TO bx_notify;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA notify TO bx_notify;
-- days missed this term, for the templates (bx-score's durable record)
GRANT USAGE ON SCHEMA attendance TO bx_notify;
GRANT SELECT ON attendance.fact TO bx_notify;
