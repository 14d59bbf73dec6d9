"""The dashboards' reads against a real PostgreSQL: a course's facts (plays handed over as one
binary array per video give the same retention as the stored rows, only enrolled learners
count), a learner's context and facts, the platform's, and the deployment's id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from lms.domain.active_users import since
from lms.domain.retention import plays, retention
from lms.store import analytics, bridge
from lms.store import progress as progress_store
from lms.store.deployment import deployment_id
from tests.progress_setup import DURATION, LONG_AGO, heartbeat, open_database, seed


async def test_a_courses_plays_arrive_as_one_array_per_video_with_the_rows_retention(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=3, opened_at=LONG_AGO)
        (a, b, c), (v1, v2) = course.learners, course.videos
        await db.connection(
            progress_store.apply_batch,
            [
                heartbeat(a, v1, (0, 30), (100, 160.5)),
                heartbeat(b, v1, (10, 20)),
                heartbeat(c, v1, (0, DURATION)),
                heartbeat(a, course.text, completed=True),
                heartbeat(course.outsider, v1, (0, 50)),  # refused: not enrolled
            ],
        )

        async def unenrol(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM enrollments WHERE user_id = $1", c)

        facts = await db.transaction(analytics.course_facts, course.course_id, since(_now()))
        assert facts is not None
        assert (facts.enrolled, facts.active) == (3, [3, 3, 3])
        assert set(facts.plays) == {v1}  # nobody played v2
        rows = [[0, 30, 100, 160.5], [10, 20], [0, DURATION]]
        expected = retention(DURATION, plays(rows))
        assert facts.plays[v1].viewers == 3
        assert np.array_equal(retention(DURATION, facts.plays[v1]), expected)
        tallies = {t.tally.content_id: t.tally for t in facts.contents}
        assert (tallies[v1].started, tallies[v1].completed) == (3, 1)
        assert tallies[v1].watched_seconds == pytest.approx(90.5 + 10 + DURATION)
        assert (tallies[course.text].completed, tallies[course.text].duration) == (1, None)
        assert [t.tally.content_id for t in facts.contents][:2] == [v1, v2]

        await db.transaction(unenrol)
        facts = await db.transaction(analytics.course_facts, course.course_id, since(_now()))
        assert facts is not None
        assert (facts.enrolled, facts.plays[v1].viewers) == (2, 2)
        assert np.array_equal(
            retention(DURATION, facts.plays[v1]), retention(DURATION, plays(rows[:2]))
        )
        assert await db.transaction(analytics.course_facts, 10**9, since(_now())) is None


async def test_a_courses_facts_list_the_learners_whose_claims_were_clamped_most_first(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=3)
        (a, b, c), (v1, v2) = course.learners, course.videos
        # First heartbeats: each is credited the grace (12 s at 2x), the rest is clamped.
        claims = [
            heartbeat(a, v1, (0, 100)),
            heartbeat(a, v2, (0, 50)),
            heartbeat(b, v1, (0, 500)),
            heartbeat(c, v1, (0, 10)),  # within the grace: nothing clamped
        ]
        await db.connection(progress_store.apply_batch, claims)

        facts = await db.transaction(analytics.course_facts, course.course_id, since(_now()))
        assert facts is not None
        assert [(s.user_id, s.clamped_seconds) for s in facts.clamped] == [
            (b, 500 - 12),
            (a, 100 - 12 + 50 - 12),
        ]
        assert facts.clamped[0].name == "learner1@bench.lms"
        few = await db.transaction(
            analytics.course_facts, course.course_id, since(_now()), clamped=1
        )
        assert few is not None
        assert [s.user_id for s in few.clamped] == [b]


async def test_a_learners_context_and_facts(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1)
        (a,), (v1, v2) = course.learners, course.videos
        await db.connection(
            progress_store.apply_batch,
            [heartbeat(a, v1, (0, 30)), heartbeat(a, v2, (0, DURATION))],
        )
        context = await db.connection(analytics.learner_context, a)
        assert context == analytics.LearnerContext("UTC", [course.course_id])
        assert await db.connection(analytics.learner_context, 10**9) is None
        empty = await db.connection(analytics.learner_context, course.outsider)
        assert empty == analytics.LearnerContext("UTC", [])

        facts = await db.transaction(analytics.learner_facts, a, 1)
        assert [c.course_id for c in facts.courses] == [course.course_id]
        assert len(facts.active_hours) == 1
        assert len(facts.started) == 1  # bounded by `recent`
        assert {s.content_id for s in facts.started} <= {v1, v2}
        nothing = await db.transaction(analytics.learner_facts, course.outsider, 10)
        assert (nothing.courses, nothing.active_hours, nothing.started) == ([], [], [])


async def test_the_platforms_facts(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=2, opened_at=LONG_AGO)
        (a, _), (v1, _) = course.learners, course.videos
        await db.connection(progress_store.apply_batch, [heartbeat(a, v1, (0, DURATION))])

        async def failed_job(conn: asyncpg.Connection) -> None:
            await conn.execute(
                """
                INSERT INTO jobs (content_id, uploader_id, source, state, max_attempts, error)
                VALUES ($1, $2, 'x.mp4', 'failed', 3, 'not a video')
                """,
                v1,
                a,
            )

        await db.transaction(failed_job)
        facts = await db.transaction(analytics.platform_facts, since(_now()), failures=5, top=5)
        assert facts.users_by_role == {"learner": 4}  # owner, two learners, outsider
        assert (facts.enrolments, facts.completions, facts.watched_seconds) == (2, 1, DURATION)
        assert facts.active == [1, 1, 1]
        assert facts.jobs_by_state == {
            "queued": 0,
            "running": 0,
            "done": 0,
            "failed": 1,
            "cancelled": 0,
        }
        assert [job.error for job in facts.recent_failures] == ["not a video"]
        top = facts.top_courses[0]
        assert (top.course_id, top.enrolled, top.completions) == (course.course_id, 2, 1)


async def test_the_deployment_id_names_the_database(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        found = await db.connection(deployment_id)
        assert found.endswith("/" + database_url.rsplit("/", 1)[1].split("?")[0])
        assert found == await db.connection(deployment_id)


def _now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=1)
