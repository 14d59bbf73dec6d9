"""Audience retention: the share of a video's viewers who watched each second of it. Pure.

Theory of operation
-------------------
A video of duration D has `ceil(D)` seconds; second `i` counts as watched by a viewer whose
played segments cover the instant `i` (a segment `[start, end)` covers the seconds
`ceil(start) .. ceil(end) - 1`). So a viewer who played all of `[0, D]` watched every second,
the last partial one included, and a sub-second blip between two instants watched none.

The curve is built with a difference array: each segment adds +1 at its first second and -1
after its last; the running sum is then the number of viewers at each second. Two `bincount`s
and a `cumsum` cost O(segments + seconds), never viewers x seconds.

Counting each viewer once per second needs each viewer's segments to be disjoint, which stored
progress is (`lms.domain.progress.union`). Since `ceil` is monotone, a viewer's sorted disjoint
segments stay disjoint as whole seconds, even when two of them fall in the same second.
`plays` checks that cheaply (each viewer's bounds never decrease) and normalises any row that
breaks it, so a bad row cannot push a share above 1.

A viewer is a learner who played some of the video: rows with no played segment (a learner who
opened it and played nothing) are not in the denominator.

`drop_offs` names where the curve falls fastest: the largest decreases over a short window,
non-overlapping, steepest first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lms.domain.progress import union

# Seconds over which a drop-off is measured: long enough to ignore one-second jitter, short
# enough to name a moment in a lecture.
DROP_WINDOW = 5

Curve = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Plays:
    """Every viewer's played segments of one video, as flat arrays (order does not matter).

    Built by `plays` from stored rows. A store that aggregates the bounds itself (one array per
    video, no Python float per bound) may build it directly, since stored rows are normalised:
    each viewer's segments must be disjoint, and `viewers` counts those who played something.
    """

    starts: npt.NDArray[np.float64]
    ends: npt.NDArray[np.float64]
    viewers: int


@dataclass(frozen=True, slots=True)
class DropOff:
    """The curve falls by `drop` (a share of viewers) from second `start` to second `end`;
    its steepest one-second fall within them lands on second `at`, the moment to show."""

    start: int
    end: int
    at: int
    drop: float


def plays(rows: Sequence[Sequence[float]]) -> Plays:
    """The plays of one video from its viewers' stored `played` arrays.

    Each row is one viewer's segments flattened as stored, `[start, end, start, end, ...]`;
    rows that are empty are not viewers (see the module doc).
    """
    lengths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
    if np.any(lengths % 2):
        raise ValueError("a played array holds [start, end] pairs: its length must be even")
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=lengths.sum())
    unsorted = _rows_out_of_order(flat, lengths)
    if unsorted.size:
        flat = _normalised(rows, unsorted, lengths)
    starts, ends = flat[0::2], flat[1::2]
    # A viewer played some positive length; `union` drops empty segments, but a bad row may not.
    owners = np.repeat(np.arange(len(rows)), lengths // 2)
    viewers = np.count_nonzero(np.bincount(owners[ends > starts], minlength=len(rows)))
    return Plays(starts=starts, ends=ends, viewers=int(viewers))


def _rows_out_of_order(flat: npt.NDArray[np.float64], lengths: npt.NDArray[np.intp]) -> np.ndarray:
    """Indices of the rows whose bounds decrease somewhere (overlapping or unsorted segments)."""
    steps = np.diff(flat)
    row_ends = np.cumsum(lengths)
    # From one row's last bound to the next row's first is no step within a row.
    steps[row_ends[(row_ends > 0) & (row_ends < flat.size)] - 1] = 0.0
    decreasing = np.flatnonzero(steps < 0)  # position p: flat[p + 1] < flat[p]
    return np.unique(np.searchsorted(row_ends, decreasing, side="right"))


def _normalised(
    rows: Sequence[Sequence[float]], bad: np.ndarray, lengths: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """The flat bounds with the `bad` rows replaced by their union (`lengths` updated)."""
    fixed = list(rows)
    for index in bad.tolist():
        row = rows[index]
        segments = union(zip(row[0::2], row[1::2], strict=True))
        fixed[index] = [bound for segment in segments for bound in segment]
        lengths[index] = len(fixed[index])
    return np.fromiter(itertools.chain.from_iterable(fixed), dtype=np.float64)


def retention(duration: float, video: Plays) -> Curve:
    """The share of `video`'s viewers (0..1) who watched each of its `ceil(duration)` seconds.

    All zeros when nobody watched it.
    """
    seconds = math.ceil(duration)
    if not video.viewers:
        return np.zeros(seconds)
    # Bounds past the end (a stored duration shorter than the player's) count up to the end.
    first = np.clip(np.ceil(video.starts), 0, seconds).astype(np.intp)
    after = np.clip(np.ceil(video.ends), 0, seconds).astype(np.intp)
    steps = np.bincount(first, minlength=seconds + 1) - np.bincount(after, minlength=seconds + 1)
    watching = np.cumsum(steps[:seconds])
    assert watching.max(initial=0) <= video.viewers, "a viewer's segments overlap"  # noqa: S101 - an invariant of stored segments, not input
    return watching / video.viewers


def drop_offs(curve: Curve, k: int, window: int = DROP_WINDOW) -> list[DropOff]:
    """The `k` largest decreases of `curve` over `window` seconds, steepest first.

    The windows do not overlap (the steepest one claims its seconds); rises and flat stretches
    are not drop-offs, so fewer than `k` come back from a curve that seldom falls. Ties go to the
    earlier second. A curve shorter than the window is measured over its whole length.
    """
    window = min(window, len(curve) - 1)
    if window < 1 or k < 1:
        return []
    drops = curve[:-window] - curve[window:]
    found: list[DropOff] = []
    for start in np.argsort(-drops, kind="stable").tolist():
        if drops[start] <= 0 or len(found) == k:
            break
        if all(abs(start - other.start) >= window for other in found):
            end = start + window
            # Windows around one sharp fall tie; `at` names the fall itself.
            at = start + 1 + int(np.argmax(curve[start:end] - curve[start + 1 : end + 1]))
            found.append(DropOff(start=start, end=end, at=at, drop=float(drops[start])))
    return found
