-- Mail to send, written with the change that causes it (the same transaction, the progress
-- writer's statement, or a job's fenced completion), so a change is never committed without its
-- mail nor mail sent for a change rolled back. Mailers on any node claim due rows with
-- FOR UPDATE SKIP LOCKED under a lease and complete them fenced on it (lms/store/outbox.py);
-- states move as lms/domain/outbox.py allows.
--
-- `idempotency_key` names the message's cause or period ("reminder:user:42:2026-W49"): a second
-- message with the same key is not written, so "at most one per period" is this constraint.
-- `message_id` (RFC 5322 Message-ID) is made once, here, and kept across resends: a message
-- sent again after a killed node arrives with the same id, and mail clients fold the two.
-- Writers that cannot call Python mid-statement leave it to the default.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    kind            text NOT NULL,
    user_id         bigint REFERENCES users (id) ON DELETE CASCADE,
    to_address      text NOT NULL,
    template        text NOT NULL,
    context         jsonb NOT NULL DEFAULT '{}',
    message_id      text NOT NULL DEFAULT ('<' || gen_random_uuid() || '@lms.outbox>'),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'skipped', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    due_at          timestamptz NOT NULL DEFAULT now(),
    lease_id        uuid,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
-- What mailers claim: pending rows by due time, and sending rows whose lease ran out (a node
-- killed mid-send). Sent and skipped rows, nearly all of the table, stay out of it.
CREATE INDEX outbox_due_idx ON outbox (due_at) WHERE state = 'pending';
CREATE INDEX outbox_lease_idx ON outbox (lease_until) WHERE state = 'sending';
-- The admin list, by state, newest first.
CREATE INDEX outbox_state_idx ON outbox (state, id);
