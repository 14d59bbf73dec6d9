"""Audience retention: the share of viewers at each second, and where they drop off."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.progress import union
from lms.domain.retention import DropOff, Plays, drop_offs, plays, retention

DURATION = 30.5  # 31 seconds, the last one partial

bounds = st.floats(min_value=0, max_value=DURATION, allow_nan=False)
# One viewer's stored played array: a normalised union, flattened as the store keeps it.
viewer = st.lists(st.tuples(bounds, bounds).map(sorted), max_size=6).map(
    lambda raw: [bound for segment in union(raw) for bound in segment]
)
audience = st.lists(viewer, max_size=12)


@st.composite
def overlapping(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    """A viewer's stored row, and the same segments repeated, cut and shuffled."""
    segments = list(union(draw(st.lists(st.tuples(bounds, bounds).map(sorted), max_size=6))))
    again = draw(st.lists(st.sampled_from(segments), max_size=4)) if segments else []
    halves = [(s, (s + e) / 2) for s, e in again]
    messy = draw(st.permutations(segments + again + halves))
    return [b for s in segments for b in s], [b for s in messy for b in s]


def naive(duration: float, rows: list[list[float]]) -> list[float]:
    """Second by second, viewer by viewer: who was playing at instant i?"""
    viewers = [list(zip(r[0::2], r[1::2], strict=True)) for r in rows if r]
    return [
        sum(any(s <= i < e for s, e in segments) for segments in viewers) / len(viewers)
        if viewers
        else 0.0
        for i in range(math.ceil(duration))
    ]


@given(audience)
def test_retention_is_a_share_of_viewers_at_every_second(rows) -> None:
    curve = retention(DURATION, plays(rows))
    assert curve.shape == (31,)
    assert np.all((curve >= 0) & (curve <= 1))


@given(audience)
def test_retention_equals_counting_each_viewer_at_each_second(rows) -> None:
    assert retention(DURATION, plays(rows)).tolist() == pytest.approx(naive(DURATION, rows))


@given(st.lists(overlapping(), max_size=8))
def test_a_viewer_counts_once_per_second_even_if_their_stored_segments_overlap(pairs) -> None:
    stored = [row for row, _ in pairs]
    messy = [row for _, row in pairs]
    assert retention(DURATION, plays(messy)).tolist() == pytest.approx(
        retention(DURATION, plays(stored)).tolist()
    )


def test_a_row_of_reversed_or_empty_segments_is_no_viewer() -> None:
    video = plays([[5.0, 3.0], [4.0, 4.0], [0.0, 2.0]])
    assert video.viewers == 1
    assert retention(4.0, video).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_a_video_nobody_watched_has_a_flat_zero_curve() -> None:
    for rows in ([], [[], []]):
        video = plays(rows)
        assert video.viewers == 0
        assert retention(DURATION, video).tolist() == [0.0] * 31
    assert retention(0.0, plays([])).tolist() == []


@pytest.mark.parametrize("duration", [30.0, 30.5, 0.4])
def test_a_viewer_who_watched_everything_is_there_every_second_the_last_one_included(
    duration,
) -> None:
    curve = retention(duration, plays([[0.0, duration]]))
    assert curve.tolist() == [1.0] * math.ceil(duration)


def test_half_the_audience_leaving_halfway_halves_the_curve() -> None:
    rows = [[0.0, 30.0], [0.0, 15.0], [0.0, 10.0, 20.0, 30.0]]
    curve = retention(30.0, plays(rows))
    assert curve[:10].tolist() == [1.0] * 10
    assert curve[10:15].tolist() == pytest.approx([2 / 3] * 5)
    assert curve[15:20].tolist() == pytest.approx([1 / 3] * 5)
    assert curve[20:].tolist() == pytest.approx([2 / 3] * 10)


def test_a_stored_segment_past_a_shorter_duration_counts_up_to_the_end() -> None:
    assert retention(10.0, plays([[5.0, 12.0]])).tolist() == [0.0] * 5 + [1.0] * 5


def test_an_odd_played_array_is_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        plays([[1.0, 2.0, 3.0]])


def test_retention_costs_follow_segments_not_viewers_times_seconds() -> None:
    # 5,000 viewers of a 2-hour video, as arrays: a per-second loop over viewers would take
    # minutes; the difference array is exact and immediate.
    rng = np.random.default_rng(7)
    starts = rng.uniform(0, 3600, 5000)
    video = Plays(starts=starts, ends=starts + 3600, viewers=5000)
    curve = retention(7200.0, video)
    assert curve[0] == 0.0
    assert curve[3600] == 1.0  # every start is before 3600 and every end after it
    assert curve[-1] == 0.0


# --- drop-offs ----------------------------------------------------------------------------------


def test_drop_offs_name_the_steepest_falls_with_their_times() -> None:
    curve = np.array([1.0] * 20 + [0.5] * 20 + [0.4] * 20 + [0.0] * 20)
    assert drop_offs(curve, 2) == [
        DropOff(start=15, end=20, at=20, drop=0.5),
        DropOff(start=55, end=60, at=60, drop=0.4),
    ]
    assert [d.at for d in drop_offs(curve, 5)] == [20, 60, 40]


curves = st.lists(st.floats(min_value=0, max_value=1), max_size=80).map(np.array)


@given(curves, st.integers(min_value=0, max_value=6), st.integers(min_value=1, max_value=8))
def test_drop_offs_are_falls_steepest_first_and_never_overlap(curve, k, window) -> None:
    found = drop_offs(curve, k, window)
    assert len(found) <= k
    assert [d.drop for d in found] == sorted((d.drop for d in found), reverse=True)
    for d in found:
        assert d.drop > 0
        assert 0 <= d.start < d.end <= len(curve) - 1
        assert d.drop == pytest.approx(curve[d.start] - curve[d.end])
        assert d.start < d.at <= d.end
    spans = sorted((d.start, d.end) for d in found)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_a_curve_that_never_falls_has_no_drop_offs() -> None:
    assert drop_offs(np.linspace(0, 1, 50), 3) == []
    assert drop_offs(np.ones(50), 3) == []
    assert drop_offs(np.array([]), 3) == []
    assert drop_offs(np.array([1.0]), 3) == []


def test_a_curve_shorter_than_the_window_is_measured_over_its_length() -> None:
    assert drop_offs(np.array([1.0, 0.5, 0.25]), 1) == [DropOff(start=0, end=2, at=1, drop=0.75)]


def test_plays_built_by_hand_with_one_viewers_segments_overlapping_are_refused() -> None:
    video = Plays(starts=np.array([0.0, 2.0]), ends=np.array([5.0, 4.0]), viewers=1)
    with pytest.raises(AssertionError, match="overlap"):
        retention(5.0, video)
