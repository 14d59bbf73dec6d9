-- Which kinds of optional mail each user turned off or back on (`GET/PATCH
-- /api/v1/users/me/notifications`, one-click unsubscribe links). A missing row means the kind's
-- default, on: only a choice the user made is stored. Security mail (password resets, a
-- registration attempt on an existing address) is never listed here; the mailer sends it
-- whatever this table says (lms/store/mail_preferences.py).
CREATE TABLE mail_preferences (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('welcome', 'digest', 'reminder', 'achievement')),
    enabled     boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind)
);

