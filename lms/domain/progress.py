"""Progress rules: played segments, watched time, resume position, completion. Pure; no I/O.

Theory of operation
-------------------
A learner's progress on one content is a `Progress`: a resume position stamped with when it was
read, the played segments as a normalised union of intervals, and when it completed (if it has).
Two progress values combine with `merge`, and `merge` is a join: commutative, associative and
idempotent. So heartbeats may arrive twice, late, out of order, or through two nodes writing the
same row, and the stored segments, position and completion come out the same (only the completion
time records which merge crossed the threshold); and a client that is not sure its update was
stored may simply send it again.

- Played segments combine by union (`union`), after which gaps shorter than `GAP` are closed:
  players report heartbeat boundaries with rounding (a segment ends at 15.19, the next starts at
  15.2), and closing small gaps keeps those from counting as unwatched. Closing gaps is a
  closure operator (monotone, idempotent), so union-then-close is still a join.
- Watched seconds are the total length of the union; coverage is that over the duration, never
  above 1, because segments are clamped to the duration when admitted. Jumping to the end plays
  only the last seconds, so it does not complete a video.
- The position is last-writer-wins on `position_at` (ties broken by the larger position, so the
  choice does not depend on the order of arrival).
- Completion is monotone: the earliest completion time wins, and once completed stays completed,
  even if the course's threshold is raised later. A video completes when its coverage reaches the
  course's `completion_threshold`; a text content when the learner says so.

Credit: watching cannot be faked faster than the course allows
--------------------------------------------------------------
A client could claim any segments, so `advance` (where the stored row and a new claim meet, with
the server's time the claim was received) credits new coverage no faster than the wall clock
allows: between two of a learner's heartbeats on a content that claim new coverage, the watched
seconds grow by at most `max_rate` times the time between them, plus `GRACE` seconds' worth at
that rate (so the first heartbeat of a session, which reports what played before it, is not
refused). The row keeps `credited_at`,
the time up to which its allowance is spent: a claim may add `max_rate * (now - credited_at)`
seconds of new coverage (a row never credited: the grace). A heartbeat claiming new coverage,
granted `g` of an allowance `A`, moves `credited_at` to `now`, less what is left of `A` up to
the grace: unused allowance carries over only that far, so many heartbeats in quick succession
cannot each add a grace. A paused player sends
no heartbeats, and a device offline sends its played segments later: the time in between is
credited as the rule says.

A claim beyond its allowance is clamped, never silently accepted: its new coverage is credited
from the start of the video onwards up to the allowance (a piece cut short only if it is at
least `MIN_CUT` long, so a flood of claims does not splinter the row), the rest dropped and
added to the row's `clamped_seconds`, which the course's instructor sees. Completion is decided
on what was credited. The same heartbeat recorded twice at once is credited once (the second
finds its allowance spent on it); `clamped_seconds` counts every claim beyond the allowance, a
repeated one again: it measures what the client claimed. A claim the server took before the row's
`credited_at` (a second device's, committed after a later one through another node) finds its
allowance spent: it credits nothing and is not counted. A claim that adds nothing new (a
repeat, a paused player's position) changes neither field. `merge` stays a join (it takes the
later `credited_at` and the larger count); `credit` is the rule, and only `advance` applies it.

`prepare` checks an update's shape and stamps it (no data needed); inside the writer's
transaction, `admit` checks the write against the content (and the enrolment) and `advance`
merges it into the stored progress. They refuse with `Refused`, whose `reason` the service turns
into a status code.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from proto.api import DEFAULT_MAX_PLAYBACK_RATE, ContentKind
from proto.events import ProgressChanged
from proto.progress import (
    MAX_DEVICE_ID_LENGTH,
    MAX_SECONDS,
    MAX_SEGMENTS_PER_UPDATE,
    ContentProgress,
    CourseProgress,
    CourseStanding,
    ProgressState,
    ProgressSummary,
    ProgressUpdate,
    ProgressWrite,
)

Segment = tuple[float, float]
Segments = tuple[Segment, ...]

# Gaps between played segments shorter than this (seconds) count as watched; see the module doc.
GAP = 0.5
# Players often report a duration a little longer than the server's (audio running past the last
# video frame); a time up to this far past the end is taken as the end rather than refused.
END_TOLERANCE = 2.0
# Only someone seeking back and forth on purpose produces this many separate segments; the cap
# keeps one row from growing without bound.
MAX_STORED_SEGMENTS = 1000
# The allowance of a content's first credited heartbeat, and the most unused allowance carried
# from one heartbeat to the next, in seconds of wall clock at the course's maximum rate: the
# player sends a heartbeat every 5 s (lms/static/watch.js), and a second more covers its timer
# and the network.
GRACE = 6.0
_GRACE = timedelta(seconds=GRACE)
# The shortest piece a clamped claim has cut to its allowance credits (and the least allowance
# a clamped claim spends): claims faster than the rate, sent often, would otherwise splinter a
# row into slivers of a few milliseconds each. A shorter allowance waits, unspent.
MIN_CUT = 1.0


class Refusal(enum.Enum):
    INVALID = "invalid"  # the update makes no sense (for this content)
    UNKNOWN_CONTENT = "unknown_content"
    NOT_ENROLLED = "not_enrolled"
    NOT_READY = "not_ready"  # a video whose duration is not known yet


class Refused(Exception):
    """An update that is not stored; `message` says why, in words for the client."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ContentRules:
    """What the rules need to know about a content, read in the same transaction as the write."""

    course_id: int
    kind: ContentKind
    duration: float | None
    threshold: float
    max_rate: float = DEFAULT_MAX_PLAYBACK_RATE  # seconds of video credited per second of clock


@dataclass(frozen=True, slots=True)
class Progress:
    """One learner's progress on one content (the empty value is a content never opened)."""

    position: float = 0.0
    position_at: datetime | None = None  # None: no position reported yet
    played: Segments = ()
    completed_at: datetime | None = None
    credited_at: datetime | None = None  # None: never credited (see "Credit" above)
    clamped_seconds: float = 0.0  # new coverage claimed beyond the allowance, summed

    @property
    def watched_seconds(self) -> float:
        return watched(self.played)


@dataclass(frozen=True, slots=True)
class Written:
    """A write the writer stored; `changed` is False when it changed nothing a client sees
    (a repeat, or a paused player's heartbeat that only restamps the position)."""

    state: ProgressState
    changed: bool


# --- segments -----------------------------------------------------------------------------------


def union(*groups: Iterable[Segment]) -> Segments:
    """The union of all segments, sorted, with gaps shorter than `GAP` closed.

    Segments of zero length are dropped: they add no watched time, and keeping them would let a
    stray point bridge two gaps.
    """
    segments = [s for group in groups for s in group if s[1] > s[0]]
    segments.sort()
    merged: list[Segment] = []
    for start, end in segments:
        if merged and start - merged[-1][1] < GAP:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def watched(played: Segments) -> float:
    """Seconds actually watched: the total length of a normalised union."""
    return math.fsum([end - start for start, end in played])


def watched_within(progress: Progress, rules: ContentRules) -> float:
    """Watched seconds, never above the duration (the lengths' rounding could add an ulp)."""
    return _within(progress.watched_seconds, rules)


def coverage(progress: Progress, rules: ContentRules) -> float:
    """The watched fraction of the content, 0..1 (a text: 1 once completed, else 0)."""
    return _coverage(progress, rules, progress.watched_seconds)


def _within(watched: float, rules: ContentRules) -> float:
    return watched if rules.duration is None else min(watched, rules.duration)


def _coverage(progress: Progress, rules: ContentRules, watched: float) -> float:
    if rules.kind is ContentKind.TEXT:
        return 1.0 if progress.completed_at is not None else 0.0
    if not rules.duration:
        return 0.0
    return min(1.0, watched / rules.duration)


# --- combining progress -------------------------------------------------------------------------


def merge(a: Progress, b: Progress, rules: ContentRules, now: datetime) -> Progress:
    """The join of two progress values; `now` is the completion time if this merge completes it.

    It credits whatever either value played: the rate rule is `credit`'s, which `advance`
    applies before joining a claim to the stored row."""
    played = union(a.played, b.played)
    return _joined(
        a,
        b,
        played,
        watched(played),
        _latest(a.credited_at, b.credited_at),
        max(a.clamped_seconds, b.clamped_seconds),
        rules,
        now,
    )


def _joined(
    a: Progress,
    b: Progress,
    played: Segments,
    watched_seconds: float,  # of `played`, already summed
    credited_at: datetime | None,
    clamped_seconds: float,
    rules: ContentRules,
    now: datetime,
) -> Progress:
    newest = max(a, b, key=_position_order)
    completed_at = _earliest(a.completed_at, b.completed_at)
    if completed_at is None and _covers_threshold(watched_seconds, rules):
        completed_at = now
    return Progress(
        position=newest.position,
        position_at=newest.position_at,
        played=played,
        completed_at=completed_at,
        credited_at=credited_at,
        clamped_seconds=clamped_seconds,
    )


def shows_change(before: Progress, after: Progress) -> bool:
    """Whether a client would see a difference (the position's stamp is not shown)."""
    return (before.position, before.played, before.completed_at, before.clamped_seconds) != (
        after.position,
        after.played,
        after.completed_at,
        after.clamped_seconds,
    )


def _position_order(p: Progress) -> tuple[bool, datetime | None, float]:
    # A value with no position (None) sorts below every stamped one; datetimes are only compared
    # when both are present because the leading bool differs otherwise.
    return (p.position_at is not None, p.position_at, p.position)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _covers_threshold(watched_seconds: float, rules: ContentRules) -> bool:
    return (
        rules.kind is ContentKind.VIDEO
        and rules.duration is not None
        and min(1.0, watched_seconds / rules.duration) >= rules.threshold
    )


# --- checking updates ---------------------------------------------------------------------------


def prepare(
    user_id: int, update: ProgressUpdate, *, now: datetime, device_id: str | None = None
) -> ProgressWrite:
    """Check an update's shape and stamp it; raise `Refused(INVALID)` for nonsense.

    Needs no data: what depends on the content (its kind, its duration) is `admit`'s job.
    The bounds the body's type declares are checked again here, because an update built in
    code (not decoded from JSON) skips them, and these are what keeps stored numbers sane.
    """
    if len(update.played) > MAX_SEGMENTS_PER_UPDATE:
        raise Refused(
            Refusal.INVALID, f"send at most {MAX_SEGMENTS_PER_UPDATE} played segments at a time"
        )
    if update.position is not None:
        _check_seconds(update.position, "position")
    for start, end in update.played:
        _check_seconds(start, "a played segment's start")
        _check_seconds(end, "a played segment's end")
        if end < start:
            raise Refused(Refusal.INVALID, f"played segment [{start}, {end}] ends before it starts")
    if device_id is not None and not 0 < len(device_id) <= MAX_DEVICE_ID_LENGTH:
        raise Refused(Refusal.INVALID, f"a device id has 1 to {MAX_DEVICE_ID_LENGTH} characters")
    read_at = now if update.client_ts is None else min(update.client_ts, now)
    return ProgressWrite(
        user_id=user_id,
        content_id=update.content_id,
        position=update.position,
        position_at=read_at,
        played=union(update.played),
        completed=update.completed,
        received_at=now,
        device_id=device_id,
    )


def _check_seconds(value: float, what: str) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= MAX_SECONDS):
        raise Refused(
            Refusal.INVALID, f"{what} must be a number of seconds from 0 to {MAX_SECONDS:g}"
        )


def admit(write: ProgressWrite, rules: ContentRules | None, *, enrolled: bool) -> Progress:
    """The write as a progress value, checked against its content and clamped to its end.

    Only enrolled learners record progress: an instructor previewing their own course (or an
    admin) does not show up as a learner unless they enrol. `rules` is None for a content that
    does not exist. Raises `Refused`.
    """
    if rules is None:
        raise Refused(Refusal.UNKNOWN_CONTENT, f"no content with id {write.content_id}")
    if not enrolled:
        raise Refused(Refusal.NOT_ENROLLED, f"enrol in course {rules.course_id} to record progress")
    if rules.kind is ContentKind.TEXT:
        if write.played or write.position is not None:
            raise Refused(
                Refusal.INVALID,
                "a text content has no playback; send {content_id, completed: true} once read",
            )
        return Progress(completed_at=write.received_at if write.completed else None)
    if write.completed:
        raise Refused(
            Refusal.INVALID,
            "a video completes by being watched; send the played segments instead of completed",
        )
    duration = rules.duration
    if duration is None:
        raise Refused(
            Refusal.NOT_READY,
            f"content {write.content_id} is still being processed (its duration is not known "
            "yet); send progress once it plays",
        )
    limit = duration + END_TOLERANCE
    if write.position is not None and write.position > limit:
        raise Refused(
            Refusal.INVALID,
            f"position {write.position} is beyond the end of the video ({duration:g} s)",
        )
    for start, end in write.played:
        if end > limit:
            raise Refused(
                Refusal.INVALID,
                f"played segment [{start}, {end}] runs beyond the end of the video "
                f"({duration:g} s)",
            )
    played = write.played  # a normalised union (`prepare`): only its end can pass `duration`
    if played and played[-1][1] > duration:
        played = union((min(start, duration), min(end, duration)) for start, end in played)
    if write.position is None:
        return Progress(played=played)
    return Progress(min(write.position, duration), write.position_at, played)


# --- crediting claims ---------------------------------------------------------------------------


class Credit(NamedTuple):  # a tuple: made once per heartbeat, on the writer's hot path
    """What `credit` makes of a claim against the stored row.

    `played`: the row's segments with the credited part of the claim; `clamped`: the seconds of
    new coverage claimed beyond the allowance (not credited); `credited_at`: the row's new one.
    """

    played: Segments
    clamped: float
    credited_at: datetime | None
    watched_seconds: float  # of `played`


def allowance(current: Progress, rules: ContentRules, now: datetime) -> float:
    """Seconds of new coverage the row may gain at `now` (see "Credit" in the module's doc)."""
    spent_until = now - _GRACE if current.credited_at is None else current.credited_at
    seconds = (now - spent_until).total_seconds()
    return rules.max_rate * seconds if seconds > 0.0 else 0.0


def credit(current: Progress, claim: Segments, rules: ContentRules, now: datetime) -> Credit:
    """Credit the new coverage of `claim` (a normalised union) up to the allowance at `now`,
    earliest in the video first; `now` is the server's time. Pure."""
    played = union(current.played, claim)
    before = current.watched_seconds
    after = watched(played)
    new = after - before
    if new <= 0.0:  # nothing new (a repeat, a paused player, a text): nothing to credit
        return Credit(played, 0.0, current.credited_at, after)
    if current.credited_at is not None and now < current.credited_at:
        # Taken before the row's last credit (another device's heartbeat, which another node
        # committed later): its allowance was spent by then. Nothing is credited, and nothing
        # counted, since the clamp counts claims beyond the rate, not the order of commits.
        return Credit(current.played, 0.0, current.credited_at, before)
    allowed = allowance(current, rules, now)
    if new > allowed:
        if allowed < MIN_CUT:  # what it could credit waits for a longer allowance
            played, after = current.played, before
        else:
            played = union(current.played, _first_seconds(current.played, played, allowed))
            after = watched(played)
    granted = after - before
    left = allowed - granted  # carried over up to the grace (conditionals: the hot path)
    if left >= rules.max_rate * GRACE:
        spent_until = now - _GRACE
    else:
        spent_until = now - timedelta(seconds=left / rules.max_rate) if left > 0.0 else now
    if current.credited_at is not None and current.credited_at > spent_until:
        spent_until = current.credited_at  # a node whose clock is behind never gives time back
    return Credit(played, new - granted if new > granted else 0.0, spent_until, after)


def _first_seconds(stored: Segments, claimed: Segments, budget: float) -> Segments:
    """The first `budget` seconds, in video order, of what `claimed` (a union holding `stored`)
    adds to `stored`, cut so that no gap under `GAP` is left before a stored segment (`union`
    would close it, crediting more than the budget); a cut piece shorter than `MIN_CUT` is left
    out."""
    kept: list[Segment] = []
    i = 0
    for start, end in claimed:
        cursor = start
        pieces: list[tuple[float, float, bool]] = []  # (start, end, a stored segment follows)
        while i < len(stored) and stored[i][0] < end:
            if stored[i][0] > cursor:
                pieces.append((cursor, stored[i][0], True))
            cursor = max(cursor, stored[i][1])
            i += 1
        if cursor < end:
            pieces.append((cursor, end, False))
        for piece_start, piece_end, followed in pieces:
            if piece_end - piece_start <= budget:
                kept.append((piece_start, piece_end))
                budget -= piece_end - piece_start
                continue
            cut = piece_start + budget
            if followed and piece_end - cut < GAP:
                cut = piece_end - GAP
            if cut - piece_start >= MIN_CUT:
                kept.append((piece_start, cut))
            return tuple(kept)
    return tuple(kept)


def advance(
    current: Progress,
    admitted: Progress,
    rules: ContentRules,
    now: datetime,
    received_at: datetime | None = None,
) -> Progress:
    """Join a claim to the stored row: its new coverage credited as `credit` allows at
    `received_at` (when the server took the claim; default `now`), the rest counted in
    `clamped_seconds`; completion decided on what was credited, at `now`. Refuse a result too
    fragmented to store (`MAX_STORED_SEGMENTS`)."""
    granted = credit(current, admitted.played, rules, now if received_at is None else received_at)
    merged = _joined(
        current,
        admitted,
        granted.played,
        granted.watched_seconds,
        granted.credited_at,
        current.clamped_seconds + granted.clamped,
        rules,
        now,
    )
    if len(merged.played) > MAX_STORED_SEGMENTS:
        raise Refused(
            Refusal.INVALID,
            f"this content already has {len(current.played)} separate played segments; "
            "send longer segments",
        )
    return merged


# --- reading progress ---------------------------------------------------------------------------


def state(
    progress: Progress,
    rules: ContentRules,
    *,
    content_id: int,
    updated_at: datetime,
) -> ProgressState:
    watched = progress.watched_seconds
    return ProgressState(
        content_id=content_id,
        course_id=rules.course_id,
        position=progress.position,
        played=list(progress.played),
        watched_seconds=_within(watched, rules),
        duration=rules.duration,
        coverage=_coverage(progress, rules, watched),
        completed=progress.completed_at is not None,
        completed_at=progress.completed_at,
        updated_at=updated_at,
        clamped_seconds=progress.clamped_seconds,
    )


def changes(
    writes: Sequence[ProgressWrite], outcomes: Sequence[Written | Refused]
) -> list[ProgressChanged]:
    """One event per (user, content) that the batch changed, with its final state.

    The device is the last one whose write changed the row, so that device is not sent back
    what it already knows.
    """
    final: dict[tuple[int, int], tuple[ProgressWrite, ProgressState]] = {}
    for write, outcome in zip(writes, outcomes, strict=True):
        key = (write.user_id, write.content_id)
        if isinstance(outcome, Written) and outcome.changed:
            final[key] = (write, outcome.state)
    return [
        ProgressChanged(
            user_id=write.user_id,
            course_id=s.course_id,
            content_id=s.content_id,
            position=s.position,
            watched_seconds=s.watched_seconds,
            duration=s.duration,
            coverage=s.coverage,
            completed=s.completed,
            played=s.played,
            device_id=write.device_id,
        )
        for write, s in final.values()
    ]


def course_progress(
    course_id: int, title: str, contents: Sequence[ContentProgress]
) -> CourseProgress:
    """A course's standing from its contents in course order."""
    done = sum(1 for c in contents if c.completed)
    total = len(contents)
    opened = [c.updated_at for c in contents if c.updated_at is not None]
    return CourseProgress(
        course_id=course_id,
        title=title,
        completed_contents=done,
        total_contents=total,
        percent=100.0 * done / total if total else 0.0,
        watched_seconds=math.fsum(c.watched_seconds for c in contents),
        next_content_id=next((c.content_id for c in contents if not c.completed), None),
        last_activity_at=max(opened, default=None),
        contents=list(contents),
    )


def standing(course: CourseProgress) -> CourseStanding:
    """The course's standing without its per-content detail."""
    return CourseStanding(
        course_id=course.course_id,
        title=course.title,
        completed_contents=course.completed_contents,
        total_contents=course.total_contents,
        percent=course.percent,
        watched_seconds=course.watched_seconds,
        next_content_id=course.next_content_id,
        last_activity_at=course.last_activity_at,
    )


def summary(standings: Sequence[CourseStanding]) -> ProgressSummary:
    """Every course's standing; a course counts as completed once all its contents are."""
    return ProgressSummary(
        courses=list(standings),
        completed_courses=sum(
            1 for s in standings if s.total_contents and s.completed_contents == s.total_contents
        ),
        watched_seconds=math.fsum(s.watched_seconds for s in standings),
    )
