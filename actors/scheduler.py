"""The Scheduler: the node's mail that no change causes, written on a clock. Learning reminders
for learners inactive for a while, and streak achievements.

Theory of operation
-------------------
Every `interval` (10 minutes) the Scheduler makes one pass:

- Reminders: the store writes a reminder for every learner inactive for `inactive` (3 days)
  whose next 18:00, in their own time zone, falls within the coming `interval` plus a margin,
  due at that instant. Deciding so close to the hour means a learner who came back meanwhile is
  not nagged. The row's key names the ISO week of that local date
  (`reminder:user:42:2026-W49`), so a learner gets at most one a week whatever the number of
  nodes or passes; a pass that finds the row written already writes nothing.
- Streaks: the learners active since the previous pass (the last day, after a start) have
  their activity hours read, and the streak each is on now is measured in their time zone
  (`lms.domain.streaks`). One that reached 7 or 30 days gets its achievement, keyed by the
  milestone and the streak's first day, so each streak earns each milestone once.

Nothing here is lost to a stopped node: every node runs a Scheduler, and the keys make their
passes idempotent. A pass the store cannot serve (PostgreSQL unreachable) is logged and the next
one tries again; the Scheduler holds no state that a restart would lose, but when the previous
streak pass ran (a restart looks back a whole day).

The store is passed in (`SchedulerStore`); `now` is a clock passed in too, so tests drive the
passes across a daylight-saving change without waiting for one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
import trio

from lms.domain.local_days import local_date
from lms.domain.streaks import Milestone, active_dates, milestone

log = structlog.get_logger()

INTERVAL = 600.0
# How far back the first streak pass after a start looks for active learners.
FIRST_LOOKBACK = timedelta(days=1)


class ScheduleUnavailable(Exception):
    """The store could not be reached; the pass may be tried again later."""


@dataclass(frozen=True, slots=True)
class RecentLearner:
    """A learner active lately: their time zone and their active UTC hours over the last
    `milestone` days (enough to measure the longest streak awarded)."""

    user_id: int
    time_zone: str
    hours: Sequence[datetime]


@dataclass(frozen=True, slots=True)
class StreakAward:
    user_id: int
    milestone: Milestone


class SchedulerStore(Protocol):
    """Each method may raise `ScheduleUnavailable`."""

    async def plan_reminders(self, now: datetime, within: timedelta, inactive: timedelta) -> int:
        """Write the reminders due within `within` of `now` to learners inactive for
        `inactive`; return how many were new."""

    async def recent_learners(self, since: datetime, now: datetime) -> list[RecentLearner]:
        """The learners active at or after `since`, each with their recent hours."""

    async def award_streaks(self, awards: Sequence[StreakAward]) -> int:
        """Write each award's achievement mail; return how many were new."""


class Scheduler:
    """An actor with no mailbox: it only acts on its clock."""

    def __init__(
        self,
        store: SchedulerStore,
        *,
        inactive: timedelta,
        interval: float = INTERVAL,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._inactive = inactive
        self._interval = interval
        self._now = now
        self._streaks_since: datetime | None = None
        self._passes = 0
        self._failed = 0

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.make_pass()
            await trio.sleep(self._interval)

    async def make_pass(self) -> None:
        """One pass: reminders, then streaks (see the module's doc)."""
        now = self._now()
        try:
            reminders = await self._store.plan_reminders(
                now, timedelta(seconds=self._interval * 2), self._inactive
            )
            since = self._streaks_since or now - FIRST_LOOKBACK
            learners = await self._store.recent_learners(since, now)
            awards = await self._store.award_streaks(_awards(learners, now))
        except ScheduleUnavailable as exc:
            self._failed += 1
            log.warning("scheduler_pass_failed", error=str(exc))
            return
        # Overlap the next pass by one hour: activity is credited to the hour it started in.
        self._streaks_since = now - timedelta(hours=1)
        self._passes += 1
        if reminders or awards:
            log.info("scheduled_mail", reminders=reminders, streak_awards=awards)

    def statistics(self) -> dict[str, int]:
        return {"passes": self._passes, "failed_passes": self._failed}


def _awards(learners: Sequence[RecentLearner], now: datetime) -> list[StreakAward]:
    awards = []
    for learner in learners:
        try:
            zone = ZoneInfo(learner.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")  # a zone this machine lacks: count UTC days, not none
        reached = milestone(active_dates(learner.hours, zone), local_date(now, zone))
        if reached is not None:
            awards.append(StreakAward(learner.user_id, reached))
    return awards
