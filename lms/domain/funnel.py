"""A course's completion funnel: how many of its learners started and completed each content,
in course order, and how much of its videos they watched. Pure; no I/O.

The store tallies each content over the course's enrolled learners (a learner who left the course
is not counted, so no share passes 1); these rules turn the tallies into shares. Watched seconds
are summed per learner after capping each at the video's duration, so coverage never passes 1
either. A video whose duration is not known yet, and a text, have no coverage (None), and so
does anything with nobody to average over: a course with no videos, a content nobody started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContentTally:
    """One content of a course, counted over the course's enrolled learners."""

    content_id: int
    started: int  # learners with progress on it
    completed: int
    watched_seconds: float  # summed over those learners, each at most `duration`
    duration: float | None  # None: a text, or a video still being processed


@dataclass(frozen=True, slots=True)
class FunnelStep:
    content_id: int
    started: int
    completed: int
    started_share: float  # of the enrolled learners, 0..1
    completed_share: float
    coverage: float | None  # the share of the video watched by the average learner who started it


@dataclass(frozen=True, slots=True)
class Funnel:
    enrolled: int
    steps: list[FunnelStep]  # in course order
    coverage: float | None  # the share of the course's video time the average learner watched


def funnel(tallies: Sequence[ContentTally], enrolled: int) -> Funnel:
    """The funnel of a course with `enrolled` learners, from its contents' tallies in order."""
    steps = [
        FunnelStep(
            content_id=t.content_id,
            started=t.started,
            completed=t.completed,
            started_share=_share(t.started, enrolled),
            completed_share=_share(t.completed, enrolled),
            coverage=_coverage(t.watched_seconds, t.started, t.duration),
        )
        for t in tallies
    ]
    videos = [t for t in tallies if t.duration]
    course_coverage = _coverage(
        sum(t.watched_seconds for t in videos), enrolled, sum(t.duration or 0.0 for t in videos)
    )
    return Funnel(enrolled=enrolled, steps=steps, coverage=course_coverage)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _coverage(watched: float, learners: int, duration: float | None) -> float | None:
    if not duration or not learners:
        return None
    # The cap only absorbs rounding in the store's sums.
    return min(1.0, watched / (learners * duration))
