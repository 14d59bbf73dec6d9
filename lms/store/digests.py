"""New-content digests in the outbox (asyncpg; inside the transaction that publishes the content).

Theory of operation
-------------------
A learner gets at most one digest per enrolled course per day, listing everything published in
the course since the previous one. Each day's digest is due at `DIGEST_HOUR` in the learner's
own time zone; a content published before `CUTOFF` ahead of that hour goes into that day's
digest, one published later into the next day's. So whatever an instructor publishes, and
whenever, lands in exactly one digest, and none is missed because the day's digest already
went: the cut-off leaves the publishing transaction minutes to commit before a mailer may claim
the digest (a digest no longer pending is never appended to).

Publishing (a video's first transcode completing, a text content created) runs `add_to_digests`
in its own transaction: one statement writes, for every learner enrolled in the course, the
outbox row of the digest due next (`digest:user:U:course:C:YYYY-MM-DD`, that digest's local
date), or appends the content to it when it exists and is still pending. PostgreSQL's time zone
database, the same IANA one as zoneinfo's, places the local hour, so a day of 23 or 25 hours
(a daylight-saving change) still gets its digest at the learner's `DIGEST_HOUR`. Concurrent
publications in one course queue on the row's lock and both land in it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

# The local hour a day's digest goes out at: the end of a working day, when most of what an
# instructor publishes that day is out.
DIGEST_HOUR = 17
CUTOFF = timedelta(minutes=5)


async def add_to_digests(
    conn: asyncpg.Connection, content_id: int, now: datetime | None = None
) -> int:
    """Put the content into the next digest of every learner enrolled in its course; return
    how many digests were written or grew. `now` (the database's clock when None) decides which
    day's digest it joins."""
    return await conn.fetchval(
        """
        WITH published AS (
            SELECT c.id, c.title, c.kind, c.course_id, co.title AS course_title
            FROM contents c JOIN courses co ON co.id = c.course_id
            WHERE c.id = $1
        ),
        learners AS (
            SELECT u.id AS user_id, u.email, u.name, u.time_zone, p.*,
                   -- Today's local date before the cut-off, tomorrow's from it on.
                   ((coalesce($2, now()) AT TIME ZONE u.time_zone)
                    - (make_interval(hours => $3) - $4::interval))::date + 1 AS day
            FROM published p
            JOIN enrollments e ON e.course_id = p.course_id
            JOIN users u ON u.id = e.user_id
        ),
        written AS (
            INSERT INTO outbox AS o (idempotency_key, kind, user_id, to_address, template,
                                     context, due_at)
            SELECT 'digest:user:' || l.user_id || ':course:' || l.course_id || ':'
                       || to_char(l.day, 'YYYY-MM-DD'),
                   'digest', l.user_id, l.email, 'digest',
                   jsonb_build_object(
                       'name', l.name,
                       'course', jsonb_build_object('id', l.course_id, 'title', l.course_title),
                       'contents', jsonb_build_array(
                           jsonb_build_object('id', l.id, 'title', l.title, 'kind', l.kind))),
                   (l.day + make_time($3, 0, 0)) AT TIME ZONE l.time_zone
            FROM learners l
            ORDER BY l.user_id
            ON CONFLICT (idempotency_key) DO UPDATE
            SET context = jsonb_set(o.context, '{contents}',
                                    (o.context -> 'contents') || (excluded.context -> 'contents')),
                updated_at = now()
            WHERE o.state = 'pending'
              AND NOT (o.context -> 'contents')
                      @> jsonb_build_array(jsonb_build_object('id', $1::bigint))
            RETURNING 1
        )
        SELECT count(*) FROM written
        """,
        content_id,
        now,
        DIGEST_HOUR,
        CUTOFF,
    )
