-- Every access token carries the generation of its user's tokens at the time it was issued, and
-- is refused once the user's generation has moved on. Raising it (logout, a replayed refresh
-- token, a role or password change) revokes every access token the user holds, at once, on
-- every node, without a list of revoked tokens: the check reads the user's row, which a request
-- reads anyway for the current role.
ALTER TABLE users ADD COLUMN token_generation bigint NOT NULL DEFAULT 0;
