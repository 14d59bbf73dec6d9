"""The Scheduler against a real PostgreSQL, its clock driven by the test: a reminder due across
a daylight-saving change goes out once, at 18:00 on the learner's wall clock; only inactive
learners are reminded, at most once a week; a streak earns its milestone once; and a pass the
store cannot serve is logged and tried again, while `run` makes its passes on its interval."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import trio
import trio.testing

from actors.scheduler import RecentLearner, Scheduler, ScheduleUnavailable, StreakAward
from lms.mail.schedule import PostgresSchedule
from lms.store import bridge
from lms.store.database import Database
from tests.progress_setup import open_database, seed

TICK = timedelta(minutes=10)
INACTIVE = timedelta(days=3)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def _execute(db: Database, sql: str, *args: object) -> None:
    await db.transaction(lambda conn: conn.execute(sql, *args))


async def _deliver_due(db: Database, now: datetime) -> list[asyncpg.Record]:
    """What a mailer does at `now`: send every pending message that is due."""
    return await db.transaction(
        lambda conn: conn.fetch(
            """
            UPDATE outbox SET state = 'sent', sent_at = $1
            WHERE state = 'pending' AND due_at <= $1
            RETURNING idempotency_key, kind, user_id, sent_at, due_at, context
            """,
            now,
        )
    )


async def _run_passes(
    db: Database, scheduler: Scheduler, clock: Clock, until: datetime
) -> list[asyncpg.Record]:
    sent = []
    while clock.now <= until:
        await scheduler.make_pass()
        sent += await _deliver_due(db, clock.now)
        clock.now += TICK
    return sent


@pytest.mark.parametrize(
    ("zone", "start", "due", "week"),
    [
        # Paris springs forward at 02:00 on Sunday 29 March 2026: 18:00 is 16:00 UTC, not 17:00.
        ("Europe/Paris", datetime(2026, 3, 28, 17, 30, tzinfo=UTC),
         datetime(2026, 3, 29, 16, 0, tzinfo=UTC), "2026-W13"),
        # New York falls back at 02:00 on Sunday 1 November 2026: 18:00 is 23:00 UTC, not 22:00.
        ("America/New_York", datetime(2026, 10, 31, 22, 30, tzinfo=UTC),
         datetime(2026, 11, 1, 23, 0, tzinfo=UTC), "2026-W44"),
    ],
)  # fmt: skip
async def test_a_reminder_due_across_a_dst_change_goes_out_once_at_the_local_hour(
    database_url: str, zone: str, start: datetime, due: datetime, week: str
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=2)
        idle, busy = course.learners
        await _execute(db, "UPDATE users SET time_zone = $1", zone)
        await _execute(db, "UPDATE enrollments SET enrolled_at = $1", start - timedelta(days=10))
        # The busy learner watched yesterday: no reminder for them.
        await _execute(
            db,
            "INSERT INTO activity_hourly (user_id, content_id, hour, course_id, watched_seconds)"
            " VALUES ($1, $2, $3, $4, 60)",
            busy,
            course.videos[0],
            start - timedelta(days=1),
            course.course_id,
        )
        clock = Clock(start)
        scheduler = Scheduler(PostgresSchedule(db), inactive=INACTIVE, now=clock)

        sent = await _run_passes(db, scheduler, clock, until=due + timedelta(days=1, hours=4))

        (reminder,) = sent  # once, though every pass until then saw the learner inactive
        assert reminder["idempotency_key"] == f"reminder:user:{idle}:{week}"
        assert reminder["user_id"] == idle
        assert reminder["due_at"] == due
        assert reminder["sent_at"] == due  # the first delivery at or after 18:00 local
        assert json.loads(reminder["context"])["days"] == (due - start).days + 10
        assert scheduler.statistics()["failed_passes"] == 0


async def test_a_learner_who_comes_back_before_the_hour_is_not_reminded(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1)
        (learner,) = course.learners
        start = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday, UTC learner
        await _execute(db, "UPDATE enrollments SET enrolled_at = $1", start - timedelta(days=5))
        clock = Clock(start)
        scheduler = Scheduler(PostgresSchedule(db), inactive=INACTIVE, now=clock)
        await _run_passes(db, scheduler, clock, until=start + timedelta(hours=4))  # 16:00
        await _execute(
            db,
            "INSERT INTO activity_hourly (user_id, content_id, hour, course_id, watched_seconds)"
            " VALUES ($1, $2, $3, $4, 60)",
            learner,
            course.videos[0],
            datetime(2026, 12, 7, 16, 0, tzinfo=UTC),
            course.course_id,
        )

        sent = await _run_passes(db, scheduler, clock, until=start + timedelta(hours=8))

        assert sent == []


def _days_active(first: datetime, days: int) -> list[datetime]:
    return [first + timedelta(days=d) for d in range(days)]


async def test_a_streak_earns_each_milestone_once(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1)
        (learner,) = course.learners
        await _execute(db, "UPDATE users SET time_zone = 'Asia/Tokyo'")
        # 20:00 in Tokyo, seven days running from 1 December.
        hours = _days_active(datetime(2026, 12, 1, 11, 0, tzinfo=UTC), 7)
        await db.transaction(
            lambda conn: conn.executemany(
                "INSERT INTO activity_hourly (user_id, content_id, hour, course_id,"
                " watched_seconds) VALUES ($1, $2, $3, $4, 60)",
                [(learner, course.videos[0], hour, course.course_id) for hour in hours],
            )
        )
        clock = Clock(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
        scheduler = Scheduler(PostgresSchedule(db), inactive=INACTIVE, now=clock)

        await scheduler.make_pass()
        clock.now += TICK
        await scheduler.make_pass()
        clock.now += timedelta(days=1)  # a restarted node looks back a whole day
        await Scheduler(PostgresSchedule(db), inactive=INACTIVE, now=clock).make_pass()

        rows = await db.transaction(
            lambda conn: conn.fetch("SELECT * FROM outbox WHERE kind = 'achievement'")
        )
        (row,) = rows
        assert row["idempotency_key"] == f"achievement:user:{learner}:streak7:2026-12-01"
        assert row["template"] == "achievement_streak"
        assert json.loads(row["context"])["since"] == "2026-12-01"


class Unreachable:
    """A store whose database is down for the first `failures` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.passes: list[datetime] = []

    async def plan_reminders(self, now: datetime, within: timedelta, inactive: timedelta) -> int:
        if self.failures:
            self.failures -= 1
            raise ScheduleUnavailable("PostgreSQL is unavailable")
        self.passes.append(now)
        return 0

    async def recent_learners(self, since: datetime, now: datetime) -> list[RecentLearner]:
        return []

    async def award_streaks(self, awards: Sequence[StreakAward]) -> int:
        return 0


async def test_passes_run_on_the_interval_and_an_unreachable_store_is_tried_again(
    mock_clock: trio.testing.MockClock,
) -> None:
    store = Unreachable(failures=1)
    scheduler = Scheduler(store, inactive=INACTIVE, interval=600.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.testing.wait_all_tasks_blocked()
        assert scheduler.statistics() == {"passes": 0, "failed_passes": 1}
        for passes in (1, 2):
            mock_clock.jump(600.0)
            await trio.testing.wait_all_tasks_blocked()
            assert scheduler.statistics() == {"passes": passes, "failed_passes": 1}
        nursery.cancel_scope.cancel()
