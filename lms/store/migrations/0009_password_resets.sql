-- Password reset tokens. The token itself is mailed and never stored: only its SHA-256, so
-- whoever reads this table (a backup, a replica) cannot reset anyone's password. A token is
-- random (32 bytes), so a plain hash is enough: there is nothing to guess from it. It works once
-- (`used_at`) and until `expires_at`; a reset's mail is the outbox row keyed `reset:<id>`.
CREATE TABLE password_resets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      bytea NOT NULL UNIQUE,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);
