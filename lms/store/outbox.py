"""The mail outbox in PostgreSQL (asyncpg; run through `Database`, or inside a caller's own
transaction for `enqueue`).

Theory of operation
-------------------
A change writes its mail with `enqueue`, in its own transaction: the mail exists exactly when
the change does. The unique `idempotency_key` turns a second message for the same cause or
period into nothing (ON CONFLICT DO NOTHING), however many nodes or retries produce it.

A mailer claims up to `limit` due rows with `FOR UPDATE SKIP LOCKED`, so any number of mailers
share the outbox without waiting on each other or taking the same row. A claim counts one
attempt and writes the mailer's `lease_id` and a `lease_until`; due rows are pending ones whose
`due_at` has come and sending ones whose lease ran out (their mailer was killed mid-send: the
message may have gone out, and goes again with the same Message-ID). Everything the mailer later
writes is fenced on its lease, `WHERE id = $1 AND lease_id = $2 AND state = 'sending'`: a mailer
that lost its lease writes nothing. Every move is checked against `lms.domain.outbox`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg
import msgspec

from lms.domain.outbox import check_move, check_retry
from lms.store.rows import fetch_one
from proto.mail import (
    SECURITY_KINDS,
    ClaimedMail,
    MailKind,
    OutboxMessage,
    OutboxPage,
    OutboxState,
    OutboxView,
)

LEASE_EXPIRED = "the mailer stopped before completing it (its node was stopped or killed)"
OPTED_OUT = "opted out"

# Context values that are credentials (a password reset's token, good for an hour): they exist to
# be mailed, so every statement that makes a message final (sent, skipped, dead) drops them, and
# the table, its backups and replicas keep no usable secret once the mail is out. A dead message
# an admin retries then cannot render (its data is gone, and it says so): the person asks again.
SECRET_CONTEXT_KEYS = ["token"]

# Whether the user wants mail of this kind (`lms.store.mail_preferences.wants`); asked at claim
# time, so a preference changed after the message was written still counts.
Wants = Callable[[asyncpg.Connection, int, MailKind], Awaitable[bool]]

_context = msgspec.json.Decoder(dict)


def outbox_view(row: asyncpg.Record) -> OutboxView:
    return OutboxView(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        kind=MailKind(row["kind"]),
        user_id=row["user_id"],
        to=row["to_address"],
        template=row["template"],
        message_id=row["message_id"],
        state=OutboxState(row["state"]),
        attempts=row["attempts"],
        due_at=row["due_at"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
    )


# --- writing mail (any change's transaction) -----------------------------------------------------


async def enqueue(
    conn: asyncpg.Connection, message: OutboxMessage, *, due_at: datetime | None = None
) -> bool:
    """Write `message` to go out at `due_at` (now when None); False when a message with its
    idempotency key exists already (and nothing was written)."""
    written = await conn.fetchval(
        """
        INSERT INTO outbox (idempotency_key, kind, user_id, to_address, template, context, due_at)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, coalesce($7, now()))
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING true
        """,
        message.idempotency_key,
        message.kind.value,
        message.user_id,
        message.to,
        message.template,
        msgspec.json.encode(message.context).decode(),
        due_at,
    )
    return bool(written)


# --- the Mailer's side ---------------------------------------------------------------------------


async def claim(
    conn: asyncpg.Connection,
    *,
    lease_id: str,
    lease_seconds: float,
    limit: int,
    max_attempts: int,
    wants: Wants,
) -> tuple[list[ClaimedMail], int]:
    """Start an attempt at up to `limit` due messages, oldest due first; return those to send
    and how many were skipped instead, their user having opted out of their kind.

    A message whose lease ran out on its last allowed attempt (a message that keeps its mailer
    from finishing) is dead rather than claimed again.
    """
    buried = await conn.fetch(
        """
        UPDATE outbox SET state = 'dead', lease_id = NULL, lease_until = NULL,
            last_error = $2, context = context - $3::text[], updated_at = now()
        WHERE id IN (
            SELECT id FROM outbox
            WHERE state = 'sending' AND lease_until < now() AND attempts >= $1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING id
        """,
        max_attempts,
        LEASE_EXPIRED,
        SECRET_CONTEXT_KEYS,
    )
    for row in buried:
        check_move(row["id"], OutboxState.SENDING, OutboxState.DEAD)
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id, state AS was FROM outbox
            WHERE (state = 'pending' AND due_at <= now())
               OR (state = 'sending' AND lease_until < now())
            ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED
        )
        UPDATE outbox o SET state = 'sending', attempts = o.attempts + 1, lease_id = $1,
            lease_until = now() + make_interval(secs => $2), updated_at = now()
        FROM due WHERE o.id = due.id
        RETURNING o.*, due.was
        """,
        lease_id,
        lease_seconds,
        limit,
    )
    claimed = []
    skipped = []
    for row in sorted(rows, key=lambda r: (r["due_at"], r["id"])):
        # The one move the statement makes; an illegal one raises and rolls the claim back.
        check_move(row["id"], OutboxState(row["was"]), OutboxState.SENDING)
        kind = MailKind(row["kind"])
        user_id = row["user_id"]
        optional = kind not in SECURITY_KINDS and user_id is not None
        if optional and not await wants(conn, user_id, kind):
            skipped.append(row["id"])
            continue
        claimed.append(
            ClaimedMail(
                id=row["id"],
                lease_id=lease_id,
                attempt=row["attempts"],
                kind=kind,
                user_id=user_id,
                to=row["to_address"],
                template=row["template"],
                context=_context.decode(row["context"]),
                message_id=row["message_id"],
            )
        )
    if skipped:
        await conn.execute(
            """
            UPDATE outbox SET state = 'skipped', lease_id = NULL, lease_until = NULL,
                last_error = $2, context = context - $3::text[], updated_at = now()
            WHERE id = ANY($1)
            """,
            skipped,
            OPTED_OUT,
            SECRET_CONTEXT_KEYS,
        )
    return claimed, len(skipped)


async def _fenced(
    conn: asyncpg.Connection, mail_id: int, lease_id: str, new: OutboxState
) -> asyncpg.Record | None:
    """Lock the message's row if the lease still holds it, and check that it may become `new`;
    None when the caller was fenced out (or the row is gone with its user)."""
    row = await conn.fetchrow(
        """
        SELECT state, attempts FROM outbox
        WHERE id = $1 AND lease_id = $2 AND state = 'sending' FOR UPDATE
        """,
        mail_id,
        lease_id,
    )
    if row is not None:
        check_move(mail_id, OutboxState(row["state"]), new)
    return row


async def mark_sent(conn: asyncpg.Connection, mail_id: int, lease_id: str) -> bool:
    """The server accepted the message; False (and nothing written) when fenced out."""
    if await _fenced(conn, mail_id, lease_id, OutboxState.SENT) is None:
        return False
    await conn.execute(
        """
        UPDATE outbox SET state = 'sent', lease_id = NULL, lease_until = NULL,
            sent_at = now(), context = context - $2::text[], updated_at = now()
        WHERE id = $1
        """,
        mail_id,
        SECRET_CONTEXT_KEYS,
    )
    return True


async def mark_failed(
    conn: asyncpg.Connection,
    mail_id: int,
    lease_id: str,
    *,
    new: OutboxState,
    error: str,
    retry_in: timedelta,
) -> bool:
    """The attempt failed: `new` is PENDING (due again after `retry_in`) or DEAD, as
    `lms.domain.outbox.after_failed_attempt` decided. False (nothing written) when fenced out."""
    if await _fenced(conn, mail_id, lease_id, new) is None:
        return False
    await conn.execute(
        """
        UPDATE outbox SET state = $2, last_error = $3, lease_id = NULL, lease_until = NULL,
            due_at = CASE WHEN $2 = 'pending' THEN now() + $4::interval ELSE due_at END,
            context = CASE WHEN $2 = 'dead' THEN context - $5::text[] ELSE context END,
            updated_at = now()
        WHERE id = $1
        """,
        mail_id,
        new.value,
        error,
        retry_in,
        SECRET_CONTEXT_KEYS,
    )
    return True


async def release(conn: asyncpg.Connection, mail_ids: list[int], lease_id: str) -> int:
    """Give messages back, due now, without counting their attempt (the mailer is stopping);
    return how many were still the caller's."""
    rows = await conn.fetch(
        """
        SELECT id FROM outbox
        WHERE id = ANY($1) AND lease_id = $2 AND state = 'sending' FOR UPDATE
        """,
        mail_ids,
        lease_id,
    )
    ids = [row["id"] for row in rows]
    for mail_id in ids:
        check_move(mail_id, OutboxState.SENDING, OutboxState.PENDING)
    await conn.execute(
        """
        UPDATE outbox SET state = 'pending', attempts = attempts - 1, due_at = now(),
            lease_id = NULL, lease_until = NULL, updated_at = now()
        WHERE id = ANY($1)
        """,
        ids,
    )
    return len(ids)


# --- the admin view (edges) ----------------------------------------------------------------------


async def list_outbox(
    conn: asyncpg.Connection, *, state: OutboxState | None, limit: int, offset: int
) -> OutboxPage:
    """Messages newest first (only those in `state` unless it is None), with every state's
    count."""
    rows = await conn.fetch(
        """
        SELECT * FROM outbox WHERE ($1::text IS NULL OR state = $1)
        ORDER BY id DESC LIMIT $2 OFFSET $3
        """,
        None if state is None else state.value,
        limit,
        offset,
    )
    counts = dict.fromkeys(OutboxState, 0)
    for row in await conn.fetch("SELECT state, count(*) AS n FROM outbox GROUP BY state"):
        counts[OutboxState(row["state"])] = row["n"]
    return OutboxPage(messages=[outbox_view(row) for row in rows], counts=counts)


async def retry_dead(conn: asyncpg.Connection, mail_id: int) -> OutboxView | None:
    """Send a dead message again, due now with fresh attempts; None when there is no such
    message. Raises `IllegalMove` unless it is dead. Its last error stays until the next
    attempt replaces it, so the admin still sees why it died."""
    row = await conn.fetchrow("SELECT state FROM outbox WHERE id = $1 FOR UPDATE", mail_id)
    if row is None:
        return None
    check_retry(mail_id, OutboxState(row["state"]))
    updated = await fetch_one(
        conn,
        """
        UPDATE outbox SET state = 'pending', attempts = 0, due_at = now(), updated_at = now()
        WHERE id = $1 RETURNING *
        """,
        mail_id,
    )
    return outbox_view(updated)
