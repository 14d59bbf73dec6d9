"""The Mailer's `Outbox`, on PostgreSQL: each call is one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from actors.mailer import OutboxUnavailable
from lms.domain.outbox import RetryPolicy
from lms.store import outbox
from lms.store.database import Database, StoreUnavailable
from lms.store.mail_preferences import wants
from proto.mail import ClaimedMail, OutboxState


@asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    try:
        yield
    except StoreUnavailable as exc:
        raise OutboxUnavailable(str(exc)) from exc


class PostgresOutbox:
    def __init__(self, db: Database, *, lease_seconds: float, policy: RetryPolicy) -> None:
        self._db = db
        self._lease_seconds = lease_seconds
        self._max_attempts = policy.max_attempts

    async def claim(self, lease_id: str, limit: int) -> tuple[list[ClaimedMail], int]:
        async with _reachable():
            return await self._db.transaction(
                outbox.claim,
                lease_id=lease_id,
                lease_seconds=self._lease_seconds,
                limit=limit,
                max_attempts=self._max_attempts,
                wants=wants,
            )

    async def sent(self, mail: ClaimedMail) -> bool:
        async with _reachable():
            return await self._db.transaction(outbox.mark_sent, mail.id, mail.lease_id)

    async def failed(
        self, mail: ClaimedMail, new: OutboxState, error: str, retry_in: timedelta
    ) -> bool:
        async with _reachable():
            return await self._db.transaction(
                outbox.mark_failed, mail.id, mail.lease_id, new=new, error=error, retry_in=retry_in
            )

    async def release(self, mails: list[ClaimedMail]) -> None:
        async with _reachable():
            for lease_id in {mail.lease_id for mail in mails}:
                ids = [mail.id for mail in mails if mail.lease_id == lease_id]
                await self._db.transaction(outbox.release, ids, lease_id)
