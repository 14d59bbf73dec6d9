"""Progress rows (asyncpg; run through `Database`): the writer's batch, and what learners read.

`apply_batch` is one transaction for many writes. It reads the rules of every content named
(locking them against deletion with FOR KEY SHARE, so no row of the batch can fail a foreign key
later), checks each write against them, then locks the affected progress rows, merges in Python
(`lms.domain.progress`) and writes back only the rows that changed. A write that is refused
does not disturb the others: refusals are values in the result, not exceptions.

Two writers (two nodes) may write the same (user, content) at once. Each batch first locks the
rows that exist (`FOR UPDATE`, in (user_id, content_id) order, so two batches wanting the same
rows queue rather than deadlock), which in steady state is every row of the batch: one round
trip. Only a learner's first write to a content finds no row; those rows are then inserted
empty (`ON CONFLICT DO NOTHING`, so a writer that meets another's uncommitted insert waits for
it) and locked in turn. Each writer thus merges into the other's committed state, never beside
it. One rare interleaving can still close a cycle (a row inserted by a third writer between
one batch's read and its insert, while another holds it): PostgreSQL then aborts one batch,
whose callers are told it failed and send again; nothing acknowledged is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from lms.domain.progress import (
    ContentRules,
    Progress,
    Refused,
    Segments,
    Written,
    admit,
    advance,
    coverage,
    shows_change,
    state,
    watched_within,
)
from proto.api import ContentKind
from proto.progress import ContentProgress, ProgressWrite

Key = tuple[int, int]  # (user_id, content_id)


async def apply_batch(
    conn: asyncpg.Connection, writes: Sequence[ProgressWrite]
) -> list[Written | Refused]:
    """Store every write that may be stored; return one outcome per write, in order."""
    now = datetime.now(UTC)
    rules, enrolled = await _admission(conn, {(w.user_id, w.content_id) for w in writes})
    admitted = [_admit(write, rules, enrolled) for write in writes]
    keys = sorted(
        {
            (w.user_id, w.content_id)
            for w, a in zip(writes, admitted, strict=True)
            if isinstance(a, Progress)
        }
    )
    stored = await _lock(conn, keys)
    fresh: set[Key] = set()
    if missing := [key for key in keys if key not in stored]:
        fresh = await _create_missing(conn, missing, rules, now)
        stored |= await _lock(conn, missing)
    outcomes, final = _merge(writes, admitted, rules, stored, fresh, now)
    changed = [key for key in keys if final[key] != stored[key][0]]
    await _update(conn, [(key, final[key], rules[key[1]]) for key in changed], now)
    return outcomes


def _admit(
    write: ProgressWrite, rules: dict[int, ContentRules], enrolled: set[Key]
) -> Progress | Refused:
    content = rules.get(write.content_id)
    is_enrolled = content is not None and (content.course_id, write.user_id) in enrolled
    try:
        return admit(write, content, enrolled=is_enrolled)
    except Refused as refused:
        return refused


def _merge(
    writes: Sequence[ProgressWrite],
    admitted: Sequence[Progress | Refused],
    rules: dict[int, ContentRules],
    stored: dict[Key, tuple[Progress, datetime]],
    fresh: set[Key],
    now: datetime,
) -> tuple[list[Written | Refused], dict[Key, Progress]]:
    """Fold the admitted writes, in order, into the locked rows; return each write's outcome
    and each row's final progress."""
    current = {key: progress for key, (progress, _) in stored.items()}
    updated_at = {key: at for key, (_, at) in stored.items()}
    announced: set[Key] = set()
    outcomes: list[Written | Refused] = []
    for write, observed in zip(writes, admitted, strict=True):
        if isinstance(observed, Refused):
            outcomes.append(observed)
            continue
        key = (write.user_id, write.content_id)
        content = rules[write.content_id]
        try:
            after = advance(current[key], observed, content, now)
        except Refused as refused:
            outcomes.append(refused)
            continue
        # A row this batch created is news for its first write, even if it is still empty.
        changed = shows_change(current[key], after) or (key in fresh and key not in announced)
        announced.add(key)
        if after != current[key]:
            current[key] = after
            updated_at[key] = now
        row_state = state(after, content, content_id=write.content_id, updated_at=updated_at[key])
        outcomes.append(Written(row_state, changed))
    return outcomes, current


async def _admission(
    conn: asyncpg.Connection, keys: set[Key]
) -> tuple[dict[int, ContentRules], set[tuple[int, int]]]:
    """The rules of every content named, and which (course_id, user_id) pairs are enrolments;
    in one round trip. Both are locked (FOR KEY SHARE) so that they outlast the batch: neither
    the content nor the enrolment can be deleted before it commits."""
    if not keys:
        return {}, set()
    users, contents = zip(*keys, strict=True)
    rows = await conn.fetch(
        """
        SELECT k.user_id, c.id, c.course_id, c.kind, c.duration_seconds,
               co.completion_threshold, e.enrolled
        FROM unnest($1::bigint[], $2::bigint[]) AS k (user_id, content_id)
        JOIN contents c ON c.id = k.content_id
        JOIN courses co ON co.id = c.course_id
        LEFT JOIN LATERAL (
            SELECT true AS enrolled FROM enrollments
            WHERE course_id = c.course_id AND user_id = k.user_id
            FOR KEY SHARE
        ) e ON true
        FOR KEY SHARE OF c
        """,
        list(users),
        list(contents),
    )
    rules = {row["id"]: _rules(row) for row in rows}
    enrolled = {(row["course_id"], row["user_id"]) for row in rows if row["enrolled"]}
    return rules, enrolled


def _rules(row: asyncpg.Record) -> ContentRules:
    return ContentRules(
        course_id=row["course_id"],
        kind=ContentKind(row["kind"]),
        duration=row["duration_seconds"],
        threshold=row["completion_threshold"],
    )


async def _create_missing(
    conn: asyncpg.Connection, keys: Sequence[Key], rules: dict[int, ContentRules], now: datetime
) -> set[Key]:
    """Insert an empty row for each key that has none (in key order); return those inserted."""
    if not keys:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO progress (user_id, content_id, course_id, updated_at)
        SELECT k.user_id, k.content_id, k.course_id, $4
        FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS k (user_id, content_id, course_id)
        ORDER BY k.user_id, k.content_id
        ON CONFLICT (user_id, content_id) DO NOTHING
        RETURNING user_id, content_id
        """,
        [user for user, _ in keys],
        [content for _, content in keys],
        [rules[content].course_id for _, content in keys],
        now,
    )
    return {(row["user_id"], row["content_id"]) for row in rows}


async def _lock(
    conn: asyncpg.Connection, keys: Sequence[Key]
) -> dict[Key, tuple[Progress, datetime]]:
    """Lock the rows of `keys` (in key order) and read their committed state."""
    if not keys:
        return {}
    rows = await conn.fetch(
        """
        SELECT p.user_id, p.content_id, p.position, p.position_at, p.played, p.completed_at,
               p.updated_at
        FROM progress p
        JOIN unnest($1::bigint[], $2::bigint[]) AS k (user_id, content_id)
            USING (user_id, content_id)
        ORDER BY p.user_id, p.content_id
        FOR UPDATE OF p
        """,
        [user for user, _ in keys],
        [content for _, content in keys],
    )
    return {
        (row["user_id"], row["content_id"]): (_progress(row), row["updated_at"]) for row in rows
    }


async def _update(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[Key, Progress, ContentRules]],
    now: datetime,
) -> None:
    """Write the changed rows back in one statement: one Bind of column arrays costs the node
    far less than `executemany`'s message per row. `played` travels as an array literal per row
    (arrays of arrays must be rectangular in PostgreSQL)."""
    if not rows:
        return
    await conn.execute(
        """
        UPDATE progress p
        SET position = k.position, position_at = k.position_at, played = k.played::float8[],
            watched_seconds = k.watched, duration = k.duration, completed_at = k.completed_at,
            updated_at = $9
        FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::timestamptz[], $5::text[],
                    $6::float8[], $7::float8[], $8::timestamptz[])
            AS k (user_id, content_id, position, position_at, played, watched, duration,
                  completed_at)
        WHERE p.user_id = k.user_id AND p.content_id = k.content_id
        """,
        [user for (user, _), _, _ in rows],
        [content for (_, content), _, _ in rows],
        [progress.position for _, progress, _ in rows],
        [progress.position_at for _, progress, _ in rows],
        [_array_literal(progress.played) for _, progress, _ in rows],
        [watched_within(progress, rules) for _, progress, rules in rows],
        [rules.duration for _, _, rules in rows],
        [progress.completed_at for _, progress, _ in rows],
        now,
    )


def _progress(row: asyncpg.Record) -> Progress:
    return Progress(
        position=row["position"],
        position_at=row["position_at"],
        played=_pairs(row["played"]),
        completed_at=row["completed_at"],
    )


def _array_literal(played: Segments) -> str:
    """`played` flattened as a PostgreSQL array literal; `repr` round-trips every float."""
    return "{" + ",".join(repr(bound) for segment in played for bound in segment) + "}"


def _pairs(flat: Sequence[float]) -> Segments:
    return tuple(zip(flat[::2], flat[1::2], strict=True))


# --- reading ------------------------------------------------------------------------------------


async def enrolled_courses(conn: asyncpg.Connection, user_id: int) -> list[tuple[int, str]]:
    """(course id, title) of every course the user is enrolled in, oldest enrolment first."""
    rows = await conn.fetch(
        """
        SELECT co.id, co.title
        FROM enrollments e JOIN courses co ON co.id = e.course_id
        WHERE e.user_id = $1
        ORDER BY e.enrolled_at, co.id
        """,
        user_id,
    )
    return [(row["id"], row["title"]) for row in rows]


async def contents_progress(
    conn: asyncpg.Connection, user_id: int, course_ids: Sequence[int]
) -> dict[int, list[ContentProgress]]:
    """Each course's contents in course order, with the user's progress on each."""
    rows = await conn.fetch(
        """
        SELECT c.course_id, c.id, c.title, c.kind, c.duration_seconds, co.completion_threshold,
               p.position, p.position_at, p.played, p.completed_at, p.updated_at
        FROM contents c
        JOIN courses co ON co.id = c.course_id
        LEFT JOIN progress p ON p.content_id = c.id AND p.user_id = $1
        WHERE c.course_id = ANY($2::bigint[])
        ORDER BY c.course_id, c.position, c.id
        """,
        user_id,
        list(course_ids),
    )
    found: dict[int, list[ContentProgress]] = {course_id: [] for course_id in course_ids}
    for row in rows:
        rules = _rules(row)
        progress = Progress() if row["updated_at"] is None else _progress(row)
        found[row["course_id"]].append(
            ContentProgress(
                content_id=row["id"],
                title=row["title"],
                kind=rules.kind,
                duration=rules.duration,
                position=progress.position,
                played=list(progress.played),
                watched_seconds=watched_within(progress, rules),
                coverage=coverage(progress, rules),
                completed=progress.completed_at is not None,
                completed_at=progress.completed_at,
                updated_at=row["updated_at"],
            )
        )
    return found
