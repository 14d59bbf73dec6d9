"""Users and refresh-token families (asyncpg; run through `Database.transaction`).

A user's `token_generation` is carried in each access token issued to them; raising it revokes
every access token they hold (see migration 0005). Whatever revokes a user's sessions (logout,
a replayed refresh token, a role or password change) raises it in the same statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from lms.domain.access import Standing
from lms.store import outbox
from lms.store.rows import fetch_one, to_struct, update_row
from proto.api import Role, User
from proto.mail import MailKind, OutboxMessage


async def insert_user(
    conn: asyncpg.Connection, email: str, name: str, password_hash: str, role: Role
) -> User | None:
    """Create a user; None when the e-mail address (in any case) is already taken."""
    row = await conn.fetchrow(
        """
        INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4)
        ON CONFLICT ((lower(email))) DO NOTHING
        RETURNING *
        """,
        email,
        name,
        password_hash,
        role.value,
    )
    return None if row is None else to_struct(row, User)


async def register(
    conn: asyncpg.Connection, email: str, name: str, password_hash: str, role: Role
) -> User | None:
    """`insert_user` and its mail, in the caller's transaction: a welcome for the new account,
    or, when the address is taken, a notice to its owner that someone tried to register it (at
    most one a day, so nobody can flood a mailbox through the form)."""
    user = await insert_user(conn, email, name, password_hash, role)
    if user is not None:
        await outbox.enqueue(
            conn,
            OutboxMessage(
                kind=MailKind.WELCOME,
                idempotency_key=f"welcome:user:{user.id}",
                user_id=user.id,
                to=user.email,
                template=MailKind.WELCOME.value,
                context={"name": user.name},
            ),
        )
        return user
    found = await credentials(conn, email)
    if found is not None:
        owner, _ = found
        today = datetime.now(UTC).date()
        await outbox.enqueue(
            conn,
            OutboxMessage(
                kind=MailKind.ACCOUNT_EXISTS,
                idempotency_key=f"account_exists:user:{owner.id}:{today.isoformat()}",
                user_id=owner.id,
                to=owner.email,
                template=MailKind.ACCOUNT_EXISTS.value,
                context={"name": owner.name},
            ),
        )
    return None


async def user_by_id(conn: asyncpg.Connection, user_id: int) -> User | None:
    row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    return None if row is None else to_struct(row, User)


async def standing(conn: asyncpg.Connection, user_id: int) -> Standing | None:
    """The user's role and token generation now (one primary-key read); None if they are gone."""
    row = await conn.fetchrow("SELECT role, token_generation FROM users WHERE id = $1", user_id)
    return None if row is None else Standing(Role(row["role"]), row["token_generation"])


async def credentials(conn: asyncpg.Connection, email: str) -> tuple[User, str] | None:
    """The user with this e-mail address and their password hash."""
    row = await conn.fetchrow("SELECT * FROM users WHERE lower(email) = lower($1)", email)
    return None if row is None else (to_struct(row, User), row["password_hash"])


async def set_password_hash(conn: asyncpg.Connection, user_id: int, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user_id,
        password_hash,
    )


async def update_user(conn: asyncpg.Connection, user_id: int, values: dict) -> User | None:
    """Apply `values`; a change of role also revokes the user's access tokens."""
    if "role" in values:
        await conn.execute(
            """
            UPDATE users SET token_generation = token_generation + 1
            WHERE id = $1 AND role <> $2
            """,
            user_id,
            values["role"],
        )
    row = await update_row(conn, "users", {"id": user_id}, values)
    return None if row is None else to_struct(row, User)


async def upsert_admin(conn: asyncpg.Connection, email: str, password_hash: str) -> User:
    """Create the admin account, or promote and re-password an existing one (which ends the
    sessions it had: whoever knew the old password is logged out)."""
    row = await fetch_one(
        conn,
        """
        INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, 'admin')
        ON CONFLICT ((lower(email))) DO UPDATE
            SET role = 'admin', password_hash = EXCLUDED.password_hash, updated_at = now(),
                token_generation = users.token_generation + 1
        RETURNING *
        """,
        email,
        email.split("@", 1)[0],
        password_hash,
    )
    return to_struct(row, User)


async def store_refresh(
    conn: asyncpg.Connection,
    jti: uuid.UUID,
    family: uuid.UUID,
    user_id: int,
    expires_at: float,
) -> int:
    """Record a new refresh token; the user's token generation, for the access token issued
    with it."""
    return await conn.fetchval(
        """
        WITH stored AS (
            INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES ($1, $2, $3, $4)
        )
        SELECT token_generation FROM users WHERE id = $3
        """,
        jti,
        family,
        user_id,
        datetime.fromtimestamp(expires_at, UTC),
    )


@dataclass(frozen=True)
class Rotation:
    """A refresh token spent: its user, their token generation now, and the successor in force
    (`jti`, expiring at `expires_at`, in the spent token's family): the one the caller offered,
    or the one an earlier spending of the same token within the grace recorded."""

    user: User
    generation: int
    jti: uuid.UUID
    expires_at: float


async def rotate_refresh(
    conn: asyncpg.Connection,
    spent_jti: uuid.UUID,
    jti: uuid.UUID,
    family: uuid.UUID,
    expires_at: float,
    grace_seconds: float,
) -> Rotation | None:
    """Spend refresh token `spent_jti` and record its successor `jti` in the same family.

    A token spent already less than `grace_seconds` ago whose successor is still live is not a
    replay: the rotation answers with that successor (and `jti` is not recorded), so both
    spendings lead to one live family. Returns None when the token was revoked, expired, or
    spent before the grace (or its successor is gone): a used token coming back then is a
    replay, so its whole family is revoked too, and the user's access tokens with it: whoever
    holds a stolen token loses what it bought as well. The caller must let this transaction
    commit before failing.
    """
    # Two spendings at once: the second waits for the first's row lock, then finds the token
    # spent and, the first having committed, its successor.
    spent = await conn.fetchval(
        """
        UPDATE refresh_tokens SET revoked_at = now(), rotated_at = now(), successor = $2
        WHERE jti = $1 AND revoked_at IS NULL AND expires_at > now()
        RETURNING user_id
        """,
        spent_jti,
        jti,
    )
    if spent is not None:
        generation = await store_refresh(conn, jti, family, spent, expires_at)
        user = await user_by_id(conn, spent)
        return None if user is None else Rotation(user, generation, jti, expires_at)
    successor = await conn.fetchrow(
        """
        SELECT next.jti, next.expires_at, users.* FROM refresh_tokens spent
        JOIN refresh_tokens next ON next.jti = spent.successor
        JOIN users ON users.id = next.user_id
        WHERE spent.jti = $1 AND spent.rotated_at > now() - make_interval(secs => $2)
          AND next.revoked_at IS NULL AND next.expires_at > now()
        """,
        spent_jti,
        grace_seconds,
    )
    if successor is None:
        await _revoke_family_of(conn, spent_jti)
        return None
    return Rotation(
        to_struct(successor, User),
        successor["token_generation"],
        successor["jti"],
        successor["expires_at"].timestamp(),
    )


async def log_out(conn: asyncpg.Connection, user_id: int) -> None:
    """Revoke every refresh token and every access token the user holds, on every device."""
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
    await _revoke_access(conn, user_id)


async def _revoke_family_of(conn: asyncpg.Connection, jti: uuid.UUID) -> None:
    user_id = await conn.fetchval(
        """
        UPDATE refresh_tokens SET revoked_at = now()
        WHERE family = (SELECT family FROM refresh_tokens WHERE jti = $1) AND revoked_at IS NULL
        RETURNING user_id
        """,
        jti,
    )
    if user_id is not None:
        await _revoke_access(conn, user_id)


async def _revoke_access(conn: asyncpg.Connection, user_id: int) -> None:
    await conn.execute(
        "UPDATE users SET token_generation = token_generation + 1 WHERE id = $1", user_id
    )
