"""Outbox rows for the mail tests: messages written as a change writes them, a user to write to,
and claims as a mailer makes them."""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg

from lms.store import outbox as store
from lms.store.database import Database
from proto.mail import ClaimedMail, MailKind, OutboxMessage

LEASE = 30.0
MAX_ATTEMPTS = 3


def message(
    key: str,
    *,
    kind: MailKind = MailKind.WELCOME,
    user_id: int | None = None,
    to: str = "ada@example.org",
    context: dict | None = None,
) -> OutboxMessage:
    return OutboxMessage(
        kind=kind,
        idempotency_key=key,
        user_id=user_id,
        to=to,
        template=kind.value,
        context={"name": "Ada"} if context is None else context,
    )


async def enqueue(db: Database, *messages: OutboxMessage) -> None:
    async def write(conn: asyncpg.Connection) -> None:
        for m in messages:
            await store.enqueue(conn, m)

    await db.transaction(write)


async def everyone_wants(conn: asyncpg.Connection, user_id: int, kind: MailKind) -> bool:
    return True


async def claim(
    db: Database,
    *,
    limit: int = 10,
    lease: float = LEASE,
    lease_id: str | None = None,
    wants: store.Wants = everyone_wants,
) -> list[ClaimedMail]:
    claimed, _ = await db.transaction(
        store.claim,
        lease_id=lease_id or str(uuid.uuid4()),
        lease_seconds=lease,
        limit=limit,
        max_attempts=MAX_ATTEMPTS,
        wants=wants,
    )
    return claimed


async def insert_user(db: Database, email: str = "") -> int:
    async def insert(conn: asyncpg.Connection) -> int:
        return await conn.fetchval(
            "INSERT INTO users (email, name, password_hash) VALUES ($1, 'Ada', 'x') RETURNING id",
            email or f"{uuid.uuid4().hex[:8]}@example.org",
        )

    return await db.transaction(insert)


async def row(db: Database, key: str) -> asyncpg.Record:
    async def fetch(conn: asyncpg.Connection) -> asyncpg.Record:
        return await conn.fetchrow("SELECT * FROM outbox WHERE idempotency_key = $1", key)

    return await db.transaction(fetch)


async def states(db: Database) -> Counter[str]:
    """How many messages the outbox holds in each state."""

    async def count(conn: asyncpg.Connection) -> Counter[str]:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM outbox GROUP BY state")
        return Counter({r["state"]: r["n"] for r in rows})

    return await db.transaction(count)


async def message_ids(db: Database) -> dict[str, str]:
    """Each message's Message-ID, by recipient."""

    async def fetch(conn: asyncpg.Connection) -> dict[str, str]:
        rows = await conn.fetch("SELECT to_address, message_id FROM outbox")
        return {r["to_address"]: r["message_id"] for r in rows}

    return await db.transaction(fetch)
