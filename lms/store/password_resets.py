"""Password reset tokens (asyncpg; run through `Database`). Only a token's SHA-256 is stored
(see migration 0009)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from lms.store import users
from lms.store.rows import fetch_one
from proto.mail import MailKind


class Redeemable(enum.Enum):
    """What a presented token is."""

    VALID = "valid"
    UNKNOWN = "unknown"  # never issued, tampered with, or for another address than the one given
    USED = "used"
    EXPIRED = "expired"


async def request(
    conn: asyncpg.Connection,
    email: str,
    token_hash: bytes,
    valid_seconds: float,
    context: Mapping[str, Any],
) -> bool:
    """Write a reset for the account with address `email` (any case), and its mail (template
    `password_reset`, `context` with the account's `name`, idempotency key `reset:<id>`), in
    the caller's transaction; False, writing nothing, when there is no such account.

    Both cases run one and the same statement and commit alike, so a caller cannot tell them
    apart by time. That is why the mail is inserted here rather than by `outbox.enqueue`: a
    second statement for an existing account only was a round trip the other case lacked,
    0.4-0.6 ms of the ~3 ms answer (measured by the timing test). `pg_current_xact_id()` gives
    the transaction an id whether or not it inserts, and a transaction with an id writes and
    flushes a commit record, as one that inserted does (a read-only one would commit without
    waiting on the disk).
    """
    row = await fetch_one(
        conn,
        """
        WITH account AS (
            SELECT id, email, name FROM users WHERE lower(email) = lower($1)
        ), reset AS (
            INSERT INTO password_resets (user_id, token_hash, expires_at)
            SELECT id, $2, now() + make_interval(secs => $3) FROM account
            RETURNING id, user_id
        ), mail AS (
            INSERT INTO outbox (idempotency_key, kind, user_id, to_address, template, context)
            SELECT 'reset:' || reset.id, $5, reset.user_id, account.email, $5,
                   jsonb_build_object('name', account.name) || $4::jsonb
            FROM reset JOIN account ON account.id = reset.user_id
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id
        )
        SELECT pg_current_xact_id() AS xact, (SELECT count(*) FROM mail) AS mailed
        """,
        email,
        token_hash,
        valid_seconds,
        msgspec.json.encode(context).decode(),
        MailKind.PASSWORD_RESET.value,
    )
    return row["mailed"] == 1


async def redeemable(
    conn: asyncpg.Connection, token_hash: bytes, email: str | None
) -> tuple[Redeemable, str | None]:
    """Whether the token with this hash may reset a password now (a read: the caller hashes
    the new password before `redeem` only for a token worth it), and the address of its
    account (None for an `UNKNOWN` token). With `email`, a token for another account's
    address is `UNKNOWN`."""
    row = await conn.fetchrow(
        """
        SELECT r.used_at IS NOT NULL AS used, r.expires_at <= now() AS expired, u.email
        FROM password_resets r JOIN users u ON u.id = r.user_id
        WHERE r.token_hash = $1
        """,
        token_hash,
    )
    if row is None or (email is not None and row["email"].lower() != email.lower()):
        return Redeemable.UNKNOWN, None
    if row["used"]:
        return Redeemable.USED, row["email"]
    if row["expired"]:
        return Redeemable.EXPIRED, row["email"]
    return Redeemable.VALID, row["email"]


async def redeem(
    conn: asyncpg.Connection, token_hash: bytes, email: str | None, password_hash: str
) -> tuple[Redeemable, int | None]:
    """Spend the token (and any other the account holds) and set its account's password; end
    every session of the account (its refresh tokens, and its access tokens through its token
    generation). All or nothing, in
    the caller's transaction. Returns `VALID` and the account's id; when the token is not
    valid (any more: two redeemers race), nothing is written and the reason is returned."""
    user_id = await conn.fetchval(
        """
        UPDATE password_resets r SET used_at = now()
        FROM users u
        WHERE r.token_hash = $1 AND u.id = r.user_id AND r.used_at IS NULL
          AND r.expires_at > now() AND ($2::text IS NULL OR lower(u.email) = lower($2))
        RETURNING r.user_id
        """,
        token_hash,
        email,
    )
    if user_id is None:
        return (await redeemable(conn, token_hash, email))[0], None
    # Any other token mailed to the account dies too: a reset settles the password.
    await conn.execute(
        "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        user_id,
    )
    await users.set_password_hash(conn, user_id, password_hash)
    await users.log_out(conn, user_id)
    return Redeemable.VALID, user_id
