-- baoxue migration 0004: bx-escalate's cases, their append-only history, tasks, durable timers and
-- the outbox of messages to Kafka. Written only by bx-escalate (services/bx-escalate).
--
-- Timers are claimed with FOR UPDATE SKIP LOCKED and a lease (timers.h), so several replicas share
-- them and a killed replica's timers are taken over when its lease ends; a firing marks fired_at in
-- the same transaction as the case change it causes, so each fires once. Case events and
-- notification requests go to cases.outbox in the transaction of the change and are relayed to
-- Kafka at least once (outbox.h); consumers deduplicate by event_id.

CREATE SCHEMA cases;

-- One case per student at a time: the partial unique index below. `stage` is a policy name
-- (deploy/policy), not an enum, since the ladder is data; `state` belongs to the ladder engine.
CREATE TABLE cases.case (
    id         bigserial PRIMARY KEY,
    student_id text COLLATE "C" NOT NULL CHECK (student_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    school_id  text COLLATE "C" NOT NULL CHECK (school_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    opened_at  timestamptz NOT NULL,
    stage      text COLLATE "C" CHECK (stage ~ '^[a-z][a-z0-9_]{0,63}$'),
    state      jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL,
    closed_at  timestamptz,
    ending     text CHECK (ending IN ('returned', 'transferred', 'graduated', 'obligation_ended')),
    CHECK ((closed_at IS NULL) = (ending IS NULL)),
    CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
CREATE UNIQUE INDEX case_open_student ON cases.case (student_id) WHERE closed_at IS NULL;
CREATE INDEX case_student ON cases.case (student_id, opened_at);
CREATE INDEX case_open_school ON cases.case (school_id, stage) WHERE closed_at IS NULL;

-- Every change of a case, with who, when and why; never updated or deleted (trigger below).
-- event_id is the one published on bx.case.events.v1, so a replayed change inserts nothing.
CREATE TABLE cases.event (
    id          bigserial PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES cases.case (id),
    event_id    text COLLATE "C" NOT NULL UNIQUE CHECK (event_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    kind        text NOT NULL CHECK (kind IN ('opened', 'stage_entered', 'task_created',
                                              'task_done', 'task_overdue', 'escalated', 'note',
                                              'closed', 'reopened')),
    stage       text COLLATE "C" CHECK (stage ~ '^[a-z][a-z0-9_]{0,63}$'),
    actor       text NOT NULL CHECK (actor ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    reason      text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
    late        boolean NOT NULL DEFAULT false,
    occurred_at timestamptz NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX event_case ON cases.event (case_id, id);

CREATE FUNCTION cases.forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cases.% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON cases.event
    FOR EACH ROW EXECUTE FUNCTION cases.forbid_change();
CREATE TRIGGER event_no_truncate BEFORE TRUNCATE ON cases.event
    FOR EACH STATEMENT EXECUTE FUNCTION cases.forbid_change();

-- What someone must do by when. task_key is the task_id of bx.case.events.v1 (one per case,
-- stage and kind), so a replayed step creates no second task.
CREATE TABLE cases.task (
    id             bigserial PRIMARY KEY,
    case_id        bigint NOT NULL REFERENCES cases.case (id),
    task_key       text COLLATE "C" NOT NULL UNIQUE CHECK (task_key ~ '^[A-Za-z0-9._:-]{1,128}$'),
    kind           text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$'),
    stage          text COLLATE "C" CHECK (stage ~ '^[a-z][a-z0-9_]{0,63}$'),
    owner_role     text NOT NULL CHECK (owner_role IN ('homeroom_teacher', 'subject_teacher',
                                                       'principal', 'academic_office',
                                                       'township_officer', 'county_officer')),
    owner_staff_id text CHECK (owner_staff_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    created_at     timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    done_at        timestamptz,
    done_by        text CHECK (done_by ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    overdue_at     timestamptz
);
CREATE INDEX task_case ON cases.task (case_id);
CREATE INDEX task_open_due ON cases.task (due_at) WHERE done_at IS NULL;

-- Durable deadlines. timer_key is unique per case, stage and deadline, so scheduling twice is a
-- no-op. A timer is due when due_at <= now and fired_at IS NULL; a claim holds it until
-- lease_until; a cancelled timer is marked fired without effect. case_id is null for duties that
-- belong to no case (term-start checks, monthly summaries).
CREATE TABLE cases.timer (
    id          bigserial PRIMARY KEY,
    timer_key   text COLLATE "C" NOT NULL UNIQUE CHECK (length(timer_key) BETWEEN 1 AND 200),
    case_id     bigint REFERENCES cases.case (id),
    kind        text NOT NULL DEFAULT 'deadline' CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$'),
    payload     jsonb NOT NULL DEFAULT '{}',
    due_at      timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    claimed_by  text CHECK (length(claimed_by) BETWEEN 1 AND 128),
    lease_until timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    fired_at    timestamptz,
    cancelled   boolean NOT NULL DEFAULT false,
    CHECK (NOT cancelled OR fired_at IS NOT NULL)
);
CREATE INDEX timer_due ON cases.timer (due_at) WHERE fired_at IS NULL;
CREATE INDEX timer_case ON cases.timer (case_id) WHERE case_id IS NOT NULL;

-- Messages written in the transaction of the change that causes them, relayed in id order and
-- marked sent once Kafka acknowledged them. event_id is the message's own dedup id (event_id or
-- request_id in the payload).
CREATE TABLE cases.outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL CHECK (topic ~ '^[a-z][a-z0-9._-]{0,99}$'),
    msg_key    text NOT NULL CHECK (length(msg_key) BETWEEN 1 AND 128),
    payload    text NOT NULL CHECK (length(payload) <= 1000000),
    event_id   text COLLATE "C" NOT NULL UNIQUE CHECK (event_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent ON cases.outbox (id) WHERE sent_at IS NULL;

GRANT USAGE ON SCHEMA cases TO bx_escalate;
GRANT SELECT, INSERT, UPDATE ON cases.case, cases.task, cases.timer, cases.outbox TO bx_escalate;
GRANT DELETE ON cases.outbox TO bx_escalate; -- pruning of sent rows
GRANT SELECT, INSERT ON cases.event TO bx_escalate;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA cases TO bx_escalate;
