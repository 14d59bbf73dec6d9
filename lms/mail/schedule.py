"""The Scheduler's `SchedulerStore`, on PostgreSQL: each call is one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from actors.scheduler import RecentLearner, ScheduleUnavailable, StreakAward
from lms.store import scheduled_mail
from lms.store.database import Database, StoreUnavailable


@asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    try:
        yield
    except StoreUnavailable as exc:
        raise ScheduleUnavailable(str(exc)) from exc


class PostgresSchedule:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def plan_reminders(self, now: datetime, within: timedelta, inactive: timedelta) -> int:
        async with _reachable():
            return await self._db.transaction(scheduled_mail.plan_reminders, now, within, inactive)

    async def recent_learners(self, since: datetime, now: datetime) -> list[RecentLearner]:
        async with _reachable():
            return await self._db.transaction(scheduled_mail.recent_learners, since, now)

    async def award_streaks(self, awards: Sequence[StreakAward]) -> int:
        async with _reachable():
            return await self._db.transaction(scheduled_mail.award_streaks, awards)
