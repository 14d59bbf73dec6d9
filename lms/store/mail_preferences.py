"""Users' mail preferences (asyncpg; run through `Database`): which kinds of optional mail each
user turned off. A kind with no row is on; security mail is always wanted (migration 0008)."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from proto.mail import SECURITY_KINDS, MailKind
from proto.notifications import OPTIONAL_KINDS


async def wants(conn: asyncpg.Connection, user_id: int, kind: MailKind) -> bool:
    """Whether `user_id` wants mail of `kind` now: the mailer asks as it claims each message."""
    if kind in SECURITY_KINDS:
        return True
    enabled = await conn.fetchval(
        "SELECT enabled FROM mail_preferences WHERE user_id = $1 AND kind = $2",
        user_id,
        kind.value,
    )
    return enabled is not False


async def preferences(conn: asyncpg.Connection, user_id: int) -> dict[MailKind, bool]:
    """Every optional kind, with whether `user_id` receives it."""
    rows = await conn.fetch(
        "SELECT kind, enabled FROM mail_preferences WHERE user_id = $1", user_id
    )
    chosen = {MailKind(row["kind"]): row["enabled"] for row in rows}
    return {kind: chosen.get(kind, True) for kind in OPTIONAL_KINDS}


async def set_preferences(
    conn: asyncpg.Connection, user_id: int, choices: Mapping[MailKind, bool]
) -> dict[MailKind, bool] | None:
    """Record the user's choices (optional kinds only); return every kind as it now stands, or
    None when there is no such user."""
    if any(kind not in OPTIONAL_KINDS for kind in choices):
        raise ValueError(f"only {', '.join(OPTIONAL_KINDS)} mail can be turned off")
    exists = await conn.fetchval("SELECT true FROM users WHERE id = $1 FOR KEY SHARE", user_id)
    if not exists:
        return None
    await conn.execute(
        """
        INSERT INTO mail_preferences (user_id, kind, enabled)
        SELECT $1, kind, enabled FROM unnest($2::text[], $3::boolean[]) AS c (kind, enabled)
        ON CONFLICT (user_id, kind) DO UPDATE
        SET enabled = EXCLUDED.enabled, updated_at = now()
        """,
        user_id,
        [kind.value for kind in choices],
        list(choices.values()),
    )
    return await preferences(conn, user_id)
