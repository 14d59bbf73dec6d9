-- A rotated refresh token names its successor and when it was rotated, so the same token
-- presented again shortly after (a page left while its refresh was in flight never stored the
-- answer, and the next page spends the old token) gets that successor again instead of being
-- taken for a replay (lms/accounts/service.py, REFRESH_REUSE_GRACE). Only the successor's id is
-- kept: its token is signed again from its row, never stored. `revoked_at` still says the token
-- itself can no longer be spent.
ALTER TABLE refresh_tokens
    ADD COLUMN rotated_at timestamptz,
    ADD COLUMN successor uuid;
