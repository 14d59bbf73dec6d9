"""The Scheduler's mail in the outbox (asyncpg; run through `Database`): learning reminders and
streak achievements (see actors/scheduler.py for when each is written)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from actors.scheduler import RecentLearner, StreakAward
from lms.domain.streaks import MILESTONES

# The local hour reminders go out at: after work or school, before the evening is gone.
REMINDER_HOUR = 18
# However many passes see a learner inactive, they are reminded at most once in this long.
REMINDER_GAP = timedelta(days=7)


async def plan_reminders(
    conn: asyncpg.Connection, now: datetime, within: timedelta, inactive: timedelta
) -> int:
    """Write a reminder for every learner (enrolled somewhere) with no activity and no
    enrolment for `inactive`, no reminder in `REMINDER_GAP`, and whose next `REMINDER_HOUR` in
    their time zone comes within `within` of `now`: due then, keyed by the ISO week of that
    local date. Return how many were new.

    PostgreSQL places the local hour with the IANA time zone database (zoneinfo's), so across a
    daylight-saving change the reminder is still due at 18:00 on the learner's wall clock. The
    learners whose hour is near are found first, by arithmetic alone; only they are checked for
    activity."""
    return await conn.fetchval(
        """
        WITH near AS MATERIALIZED (
            SELECT u.id, u.email, u.name, s.due_at, s.day
            FROM users u,
            LATERAL (SELECT ($1::timestamptz AT TIME ZONE u.time_zone) AS local_now) l,
            LATERAL (SELECT CASE WHEN l.local_now::time < make_time($4, 0, 0)
                                 THEN l.local_now::date ELSE l.local_now::date + 1 END AS day) d,
            LATERAL (SELECT d.day,
                            (d.day + make_time($4, 0, 0)) AT TIME ZONE u.time_zone AS due_at) s
            WHERE s.due_at <= $1 + $2::interval
        ),
        inactive AS (
            SELECT n.*, greatest(
                       (SELECT max(a.hour) + interval '1 hour' FROM activity_hourly a
                        WHERE a.user_id = n.id),
                       (SELECT max(e.enrolled_at) FROM enrollments e WHERE e.user_id = n.id)
                   ) AS last_seen
            FROM near n
            WHERE EXISTS (SELECT FROM enrollments e WHERE e.user_id = n.id)
              AND NOT EXISTS (SELECT FROM outbox o
                              WHERE o.user_id = n.id AND o.kind = 'reminder'
                                AND o.due_at > $1 - $5::interval)
        ),
        written AS (
            INSERT INTO outbox (idempotency_key, kind, user_id, to_address, template, context,
                                due_at)
            SELECT 'reminder:user:' || i.id || ':' || to_char(i.day, 'IYYY-"W"IW'), 'reminder',
                   i.id, i.email, 'reminder',
                   jsonb_build_object('name', i.name,
                                      'days', extract(day FROM i.due_at - i.last_seen)::int),
                   i.due_at
            FROM inactive i
            WHERE i.last_seen < $1 - $3::interval
            ORDER BY i.id
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING 1
        )
        SELECT count(*) FROM written
        """,
        now,
        within,
        inactive,
        REMINDER_HOUR,
        REMINDER_GAP,
    )


async def recent_learners(
    conn: asyncpg.Connection, since: datetime, now: datetime
) -> list[RecentLearner]:
    """Every user with activity in an hour ending after `since`, with their time zone and
    their active hours over the longest milestone (and a day more, for the time zones)."""
    rows = await conn.fetch(
        """
        SELECT u.id, u.time_zone,
               array(SELECT DISTINCT a.hour FROM activity_hourly a
                     WHERE a.user_id = u.id AND a.hour > $2::timestamptz - $3::interval
                     ORDER BY a.hour) AS hours
        FROM users u
        WHERE u.id IN (SELECT user_id FROM activity_hourly
                       WHERE hour > $1::timestamptz - interval '1 hour')
        ORDER BY u.id
        """,
        since,
        now,
        timedelta(days=max(MILESTONES) + 1),
    )
    return [RecentLearner(row["id"], row["time_zone"], row["hours"]) for row in rows]


async def award_streaks(conn: asyncpg.Connection, awards: Sequence[StreakAward]) -> int:
    """Write each award's achievement mail, keyed by its milestone and the streak's first day;
    return how many were new."""
    if not awards:
        return 0
    return await conn.fetchval(
        """
        WITH written AS (
            INSERT INTO outbox (idempotency_key, kind, user_id, to_address, template, context)
            SELECT 'achievement:user:' || u.id || ':streak' || w.days || ':'
                       || to_char(w.since, 'YYYY-MM-DD'),
                   'achievement', u.id, u.email, 'achievement_streak',
                   jsonb_build_object('name', u.name, 'days', w.days,
                                      'since', to_char(w.since, 'YYYY-MM-DD'))
            FROM unnest($1::bigint[], $2::int[], $3::date[]) AS w (user_id, days, since)
            JOIN users u ON u.id = w.user_id
            ORDER BY u.id
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING 1
        )
        SELECT count(*) FROM written
        """,
        [award.user_id for award in awards],
        [award.milestone.days for award in awards],
        [award.milestone.since for award in awards],
    )
