"""Progress rows (asyncpg; run through `Database`): the writer's batch, and what learners read.

`apply_batch` stores many writes in two statements and no explicit transaction, each statement
atomic on its own. The first reads, for every (user, content) named, the content's rules, the
enrolment and the stored row with its version; Python checks each write against the rules and
merges it (`lms.domain.progress`: its new coverage credited no faster than the course's maximum
playback rate allows since the row's `credited_at`, measured at the write's `received_at`, the
rest counted in `clamped_seconds`); the second writes the rows that changed - updating an
existing row only where its version is still the one read and the rules and enrolment it was
merged under still hold, inserting a missing one only if nobody inserted it meanwhile - and
says which rows it wrote. The same statement adds what each row it wrote newly credited (the
watched seconds its merge gained over the row it replaced, and a completion if it became
completed) to the learner's UTC hour in `activity_hourly`: credit follows the row actually
written, so a repeat, or a row another writer got to first, adds nothing. It also writes the
achievement mail of the completions it made (a learner's first video, a course completed) into
the outbox, under keys that make each one at most once. A write that is refused does not
disturb the others: refusals are values in the result, not exceptions.

The writer's `ProgressRows` also remembers the rows it last read or wrote, with their rules,
and reads only the rows it does not remember: a learner's heartbeats go to the same node, so
in steady state a batch is one statement. What is remembered is never trusted beyond what the
write checks: a remembered row must be written (where its version, rules and enrolment are
checked again), so a batch that would leave one unwritten - a repeat, or a write refused - is
read afresh.

Two writers (two nodes) may write the same row at once: the one that comes second finds the
version moved (or the row inserted), writes nothing for that row, and the batch reads and
merges again; merging is idempotent, so the rows it did write come out unchanged the second
time. No lock is held from one round trip to the next. The write statement locks the rows it
updates in (user_id, content_id) order and inserts in that order, so two batches wanting the
same rows queue rather than deadlock. A content deleted between the two statements fails the
insert's foreign key; the batch is then read and merged again, and that write refused.

Two round trips when no other writer races it, one once its rows are remembered (a transaction
would add BEGIN, COMMIT and a locking read): at the live layer's rates a batch's cost is mostly
its round trips through the bridge and its rows' encoding, and skipping the read takes about a
third off the node's CPU for a batch of 25 heartbeats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec

from lms.domain.progress import (
    ContentRules,
    Progress,
    Refused,
    Segments,
    Written,
    admit,
    advance,
    course_progress,
    coverage,
    shows_change,
    standing,
    state,
    summary,
    watched_within,
)
from lms.errors import Forbidden, NotFound
from lms.store import courses
from proto.api import ContentKind
from proto.progress import MAX_ID, ContentProgress, CourseProgress, ProgressSummary, ProgressWrite

Key = tuple[int, int]  # (user_id, content_id)

# Rows a writer remembers (a few hundred bytes each): more than a node's learners watching at
# once, so a heartbeat's row is still there five seconds later.
ROW_MEMORY = 50_000
# Reads and merges of one batch that lost a race for some of its rows before it gives up (its
# callers are told the batch failed and send again). Each retry needs another writer to have
# written one of those rows in the few milliseconds between the two statements.
MAX_ATTEMPTS = 8


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BatchContended(Exception):
    """Other writers kept writing this batch's rows between its read and its write."""


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the read found for one (user, content): the row's progress and version, if any."""

    progress: Progress
    updated_at: datetime | None
    version: int | None  # None: no row yet


@dataclass(frozen=True, slots=True)
class _Known:
    """A row as this writer last read or wrote it, and the rules it was merged under."""

    stored: _Stored
    rules: ContentRules


class ProgressRows:
    """The progress writer's store: `apply_batch`, remembering up to `capacity` rows (the
    most recently read or written) so that steady heartbeats skip the read (see the module's
    doc).

    Batches may be applied at once: a remembered row that another batch wrote meanwhile is
    caught by its version, as another node's write is. (The writer keeps the batches it has in
    flight on disjoint rows anyway, so that each row's writes commit in the order sent.)
    """

    def __init__(
        self,
        capacity: int = ROW_MEMORY,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """`clock` gives each round's time: rows' `updated_at`, completion times and the hour
        their activity is credited to."""
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        self._capacity = capacity
        self._clock = clock
        self._known: dict[Key, _Known] = {}

    async def apply_batch(
        self, conn: asyncpg.Connection, writes: Sequence[ProgressWrite]
    ) -> list[Written | Refused]:
        """Store every write that may be stored; return one outcome per write, in order. Not
        inside a transaction (see the module's docstring): pass it to `Database.connection`.

        Raises:
          BatchContended: the rows kept changing under it for `MAX_ATTEMPTS` rounds.
        """
        keys = sorted({(w.user_id, w.content_id) for w in writes})
        shown: set[int] = set()  # writes whose change an earlier round stored: still news
        recall = self._capacity > 0
        for _ in range(MAX_ATTEMPTS):
            now = self._clock()
            known = {key: self._known[key] for key in keys if key in self._known} if recall else {}
            rules, enrolled, stored = await _read(conn, [key for key in keys if key not in known])
            for (user, content), row in known.items():
                rules.setdefault(content, row.rules)
                enrolled.add((row.rules.course_id, user))
                stored[(user, content)] = row.stored
            admitted = [_admit(write, rules, enrolled) for write in writes]
            outcomes, final = _merge(writes, admitted, rules, stored, now)
            changed = [key for key in sorted(final) if _differs(final[key], stored[key])]
            to_write = set(changed)
            if not known.keys() <= to_write:
                recall = False  # a remembered row would go unchecked: read them all
                continue
            rows = [(key, final[key], stored[key].version, rules[key[1]]) for key in changed]
            try:
                written = await _write(conn, rows, now)
            except asyncpg.ForeignKeyViolationError:
                recall = False  # a content or user went away since the read: refuse it
                continue
            self._remember(keys, final, stored, to_write, rules, written, now)
            shown |= {
                i
                for i, (write, outcome) in enumerate(zip(writes, outcomes, strict=True))
                if isinstance(outcome, Written)
                and outcome.changed
                and (write.user_id, write.content_id) in written
            }
            if written.keys() == to_write:
                return [
                    Written(outcome.state, True)  # merged again, but news to its sender
                    if isinstance(outcome, Written) and not outcome.changed and i in shown
                    else outcome
                    for i, outcome in enumerate(outcomes)
                ]
            recall = False
        raise BatchContended(f"{len(keys)} rows kept changing for {MAX_ATTEMPTS} rounds")

    def _remember(
        self,
        keys: Sequence[Key],
        final: dict[Key, Progress],
        stored: dict[Key, _Stored],
        to_write: set[Key],
        rules: dict[int, ContentRules],
        written: dict[Key, int],
        now: datetime,
    ) -> None:
        """Keep each row as it now stands: written (at its new version), or admitted and left
        as read; forget the rest (refused, or written by someone else meanwhile)."""
        if not self._capacity:
            return
        known = self._known
        for key in keys:
            known.pop(key, None)
            if key in written:
                row = _Known(_Stored(final[key], now, written[key]), rules[key[1]])
            elif key in final and key not in to_write:
                row = _Known(stored[key], rules[key[1]])
            else:
                continue
            known[key] = row  # last in order: the most recently used
        while len(known) > self._capacity:
            del known[next(iter(known))]


async def apply_batch(
    conn: asyncpg.Connection, writes: Sequence[ProgressWrite]
) -> list[Written | Refused]:
    """`ProgressRows.apply_batch` with no memory: every row read (for one-off writes)."""
    return await ProgressRows(capacity=0).apply_batch(conn, writes)


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
    stored: dict[Key, _Stored],
    now: datetime,
) -> tuple[list[Written | Refused], dict[Key, Progress]]:
    """Fold the admitted writes, in order, into the stored rows; return each write's outcome
    and the final progress of each row written to."""
    current: dict[Key, Progress] = {}
    updated_at: dict[Key, datetime] = {}
    outcomes: list[Written | Refused] = []
    for write, observed in zip(writes, admitted, strict=True):
        if isinstance(observed, Refused):
            outcomes.append(observed)
            continue
        key = (write.user_id, write.content_id)
        content = rules[write.content_id]
        row = stored[key]
        # A row this batch creates is news for its first write, even if it stays empty.
        before = current.get(key)
        first_of_new_row = before is None and row.version is None
        if before is None:
            before = current[key] = row.progress
            updated_at[key] = row.updated_at or now
        try:
            # Credit is measured when the node took the claim, not when its batch commits: a
            # batch held up by the database must not bunch a player's heartbeats together.
            after = advance(before, observed, content, now, write.received_at)
        except Refused as refused:
            outcomes.append(refused)
            continue
        if after != before:
            current[key] = after
            updated_at[key] = now
        row_state = state(after, content, content_id=write.content_id, updated_at=updated_at[key])
        outcomes.append(Written(row_state, shows_change(before, after) or first_of_new_row))
    return outcomes, current


def _differs(final: Progress, row: _Stored) -> bool:
    return row.version is None or final != row.progress


async def _read(
    conn: asyncpg.Connection, keys: Sequence[Key]
) -> tuple[dict[int, ContentRules], set[tuple[int, int]], dict[Key, _Stored]]:
    """In one statement: the rules of every content named, which (course_id, user_id) pairs
    are enrolments, and every (user, content)'s stored row and version."""
    if not keys:
        return {}, set(), {}
    rows = await conn.fetch(
        """
        SELECT k.user_id, k.content_id, c.course_id, c.kind, c.duration_seconds,
               co.completion_threshold, co.max_playback_rate,
               EXISTS (SELECT FROM enrollments e
                       WHERE e.course_id = c.course_id AND e.user_id = k.user_id) AS enrolled,
               p.position, p.position_at, p.played, p.completed_at, p.credited_at,
               p.clamped_seconds, p.updated_at, p.version
        FROM unnest($1::bigint[], $2::bigint[]) AS k (user_id, content_id)
        JOIN contents c ON c.id = k.content_id
        JOIN courses co ON co.id = c.course_id
        LEFT JOIN progress p ON p.user_id = k.user_id AND p.content_id = k.content_id
        """,
        [user for user, _ in keys],
        [content for _, content in keys],
    )
    rules: dict[int, ContentRules] = {}
    for row in rows:  # a batch names few contents for many learners
        if row["content_id"] not in rules:
            rules[row["content_id"]] = _rules(row)
    enrolled = {(row["course_id"], row["user_id"]) for row in rows if row["enrolled"]}
    stored = {
        (row["user_id"], row["content_id"]): _Stored(
            Progress() if row["version"] is None else _progress(row),
            row["updated_at"],
            row["version"],
        )
        for row in rows
    }
    return rules, enrolled, stored


def _rules(row: asyncpg.Record) -> ContentRules:
    return ContentRules(
        course_id=row["course_id"],
        kind=ContentKind(row["kind"]),
        duration=row["duration_seconds"],
        threshold=row["completion_threshold"],
        max_rate=row["max_playback_rate"],
    )


class _RowWrite(msgspec.Struct, gc=False):
    """One row of `_write`'s statement, as `json_to_recordset` reads it (by field name)."""

    user_id: int
    content_id: int
    course_id: int
    version: int | None
    position: float
    position_at: datetime | None
    played: list[float]  # flattened: [start, end, start, end, ...]
    watched: float
    duration: float | None
    completed_at: datetime | None
    threshold: float
    credited_at: datetime | None
    clamped: float
    max_rate: float


_rows_json = msgspec.json.Encoder()


async def _write(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[Key, Progress, int | None, ContentRules]],
    now: datetime,
) -> dict[Key, int]:
    """Write the rows in one statement, each only if nobody wrote it since it was read (its
    version is unchanged; a missing row is still missing) and an existing row's rules (its
    content's duration, its course's threshold and maximum playback rate) and enrolment are
    still those it was merged under; return the keys written, with the version
    each now has. Each row written adds its gain to its learner's hour of `now` in
    `activity_hourly`, and each completion its achievement mail (see the module's docstring).

    The rows travel as one JSON parameter, encoded by msgspec and unpacked by
    `json_to_recordset`: column arrays cost the node ~100 us more per batch of 25 (asyncpg
    checks every element for being a nested array), and `executemany` a message per row.
    Floats round-trip exactly (shortest repr both ways), times as RFC 3339 with microseconds."""
    if not rows:
        return {}
    body = _rows_json.encode(
        [
            _RowWrite(
                user_id=user,
                content_id=content,
                course_id=rules.course_id,
                version=version,
                position=progress.position,
                position_at=progress.position_at,
                played=[bound for segment in progress.played for bound in segment],
                watched=watched_within(progress, rules),
                duration=rules.duration,
                completed_at=progress.completed_at,
                threshold=rules.threshold,
                credited_at=progress.credited_at,
                clamped=progress.clamped_seconds,
                max_rate=rules.max_rate,
            )
            for (user, content), progress, version, rules in rows
        ]
    )
    found = await conn.fetch(
        """
        WITH k AS (
            SELECT * FROM json_to_recordset($1::json)
                AS k (user_id bigint, content_id bigint, course_id bigint, version bigint,
                      position float8, position_at timestamptz, played float8[],
                      watched float8, duration float8, completed_at timestamptz,
                      threshold float8, credited_at timestamptz, clamped float8,
                      max_rate float8)
        ),
        locked AS (
            SELECT p.user_id, p.content_id, p.watched_seconds AS was_watched,
                   p.completed_at IS NOT NULL AS was_completed
            FROM progress p
            JOIN k USING (user_id, content_id)
            JOIN contents c ON c.id = k.content_id
            JOIN courses co ON co.id = c.course_id
            WHERE p.version = k.version
              AND c.duration_seconds IS NOT DISTINCT FROM k.duration
              AND co.completion_threshold = k.threshold
              AND co.max_playback_rate = k.max_rate
              AND EXISTS (SELECT FROM enrollments e
                          WHERE e.course_id = c.course_id AND e.user_id = k.user_id)
            ORDER BY p.user_id, p.content_id
            FOR UPDATE OF p
        ),
        updated AS (
            UPDATE progress p
            SET position = k.position, position_at = k.position_at, played = k.played,
                watched_seconds = k.watched, duration = k.duration,
                completed_at = k.completed_at, credited_at = k.credited_at,
                clamped_seconds = k.clamped, updated_at = $2, version = p.version + 1
            FROM k JOIN locked USING (user_id, content_id)
            WHERE p.user_id = k.user_id AND p.content_id = k.content_id
            RETURNING p.user_id, p.content_id, p.version, p.course_id,
                      greatest(k.watched - locked.was_watched, 0) AS gained,
                      k.completed_at IS NOT NULL AND NOT locked.was_completed AS completes
        ),
        inserted AS (
            INSERT INTO progress (user_id, content_id, course_id, position, position_at, played,
                                  watched_seconds, duration, completed_at, credited_at,
                                  clamped_seconds, updated_at)
            SELECT user_id, content_id, course_id, position, position_at, played,
                   watched, duration, completed_at, credited_at, clamped, $2
            FROM k WHERE version IS NULL
            ORDER BY user_id, content_id
            ON CONFLICT (user_id, content_id) DO NOTHING
            RETURNING user_id, content_id, version, course_id, watched_seconds AS gained,
                      completed_at IS NOT NULL AS completes
        ),
        credited AS (
            SELECT user_id, content_id, course_id, gained, completes FROM updated
            UNION ALL
            SELECT user_id, content_id, course_id, gained, completes FROM inserted
        ),
        -- The hours already there are updated and the rest inserted, rather than every row
        -- going through ON CONFLICT DO UPDATE, whose conflict locks the row before updating it
        -- (twice the WAL). Both see the statement's snapshot, so they split the rows between
        -- them. Only a writer of the progress row adds to its hours, and this statement holds
        -- the rows it wrote, at the versions it read: ON CONFLICT is a guard, not a path.
        hour_updated AS (
            UPDATE activity_hourly a
            SET watched_seconds = a.watched_seconds + c.gained,
                completions = a.completions + c.completes::int
            FROM credited c
            WHERE a.user_id = c.user_id AND a.content_id = c.content_id AND a.hour = $3
              AND (c.gained > 0 OR c.completes)
        ),
        hour_inserted AS (
            INSERT INTO activity_hourly AS a (user_id, content_id, hour, course_id,
                                              watched_seconds, completions)
            SELECT user_id, content_id, $3, course_id, gained, completes::int
            FROM credited c
            WHERE (gained > 0 OR completes)
              AND NOT EXISTS (SELECT FROM activity_hourly a
                              WHERE a.user_id = c.user_id AND a.content_id = c.content_id
                                AND a.hour = $3)
            ON CONFLICT (user_id, content_id, hour) DO UPDATE
            SET watched_seconds = a.watched_seconds + excluded.watched_seconds,
                completions = a.completions + excluded.completions
        ),
        -- Achievement mail for what this statement completed. Like every CTE here, these read
        -- `progress` as it stood before the statement, so "no video completed before" and
        -- "the course's other contents completed before" are exact, and only a row this
        -- statement wrote counts. The idempotency keys make each achievement once per user
        -- (per course) even so.
        completed AS (
            SELECT c.user_id, c.content_id, c.course_id, ct.kind, ct.title
            FROM credited c JOIN contents ct ON ct.id = c.content_id
            WHERE c.completes
        ),
        first_video AS (
            INSERT INTO outbox (idempotency_key, kind, user_id, to_address, template, context)
            SELECT 'achievement:user:' || u.id || ':first_video', 'achievement', u.id, u.email,
                   'achievement_first_video',
                   jsonb_build_object(
                       'name', u.name,
                       'content', jsonb_build_object('id', f.content_id, 'title', f.title),
                       'course', jsonb_build_object('id', co.id, 'title', co.title))
            FROM (SELECT DISTINCT ON (user_id) * FROM completed WHERE kind = 'video'
                  ORDER BY user_id, content_id) f
            JOIN users u ON u.id = f.user_id
            JOIN courses co ON co.id = f.course_id
            WHERE NOT EXISTS (SELECT FROM progress p JOIN contents ct ON ct.id = p.content_id
                              WHERE p.user_id = f.user_id AND p.completed_at IS NOT NULL
                                AND ct.kind = 'video')
            ORDER BY u.id
            ON CONFLICT (idempotency_key) DO NOTHING
        ),
        course_completed AS (
            INSERT INTO outbox (idempotency_key, kind, user_id, to_address, template, context)
            SELECT 'achievement:user:' || u.id || ':course:' || co.id, 'achievement', u.id,
                   u.email, 'achievement_course',
                   jsonb_build_object(
                       'name', u.name,
                       'course', jsonb_build_object('id', co.id, 'title', co.title))
            FROM (SELECT user_id, course_id, count(*) AS now_completed FROM completed
                  GROUP BY user_id, course_id) n
            JOIN users u ON u.id = n.user_id
            JOIN courses co ON co.id = n.course_id
            -- Complete as the dashboards count it: every content of the course.
            WHERE n.now_completed
                  + (SELECT count(*) FROM progress p
                     WHERE p.user_id = n.user_id AND p.course_id = n.course_id
                       AND p.completed_at IS NOT NULL)
                  = (SELECT count(*) FROM contents ct WHERE ct.course_id = n.course_id)
            ORDER BY u.id, co.id
            ON CONFLICT (idempotency_key) DO NOTHING
        )
        SELECT user_id, content_id, version FROM updated
        UNION ALL
        SELECT user_id, content_id, version FROM inserted
        """,
        body.decode(),
        now,
        now.astimezone(UTC).replace(minute=0, second=0, microsecond=0),
    )
    return {(row["user_id"], row["content_id"]): row["version"] for row in found}


def _progress(row: asyncpg.Record) -> Progress:
    return Progress(
        position=row["position"],
        position_at=row["position_at"],
        played=_pairs(row["played"]),
        completed_at=row["completed_at"],
        credited_at=row["credited_at"],
        clamped_seconds=row["clamped_seconds"],
    )


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
               co.max_playback_rate, p.position, p.position_at, p.played, p.completed_at,
               p.credited_at, p.clamped_seconds, p.updated_at
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


async def course_progress_of(
    conn: asyncpg.Connection, user_id: int, course_id: int
) -> CourseProgress:
    """The user's progress in one course they are enrolled in (run it in a transaction: the
    enrolment check and the read see one snapshot)."""
    course = await courses.course_by_id(conn, course_id) if course_id <= MAX_ID else None
    if course is None:
        raise NotFound(f"no course with id {course_id}")
    if not await courses.is_enrolled(conn, course_id, user_id):
        raise Forbidden("enrol in this course to track your progress in it")
    contents = await contents_progress(conn, user_id, [course_id])
    return course_progress(course_id, course.title, contents[course_id])


async def summary_of(conn: asyncpg.Connection, user_id: int) -> ProgressSummary:
    """The user's standing in every course they are enrolled in."""
    enrolled = await enrolled_courses(conn, user_id)
    contents = await contents_progress(conn, user_id, [c for c, _ in enrolled])
    return summary(
        [
            standing(course_progress(course_id, title, contents[course_id]))
            for course_id, title in enrolled
        ]
    )
