import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.progress import (
    END_TOLERANCE,
    GAP,
    ContentRules,
    Progress,
    Refusal,
    Refused,
    Written,
    admit,
    advance,
    changes,
    course_progress,
    coverage,
    merge,
    prepare,
    state,
    union,
    watched,
)
from proto.api import ContentKind
from proto.progress import MAX_SEGMENTS_PER_UPDATE, ContentProgress, ProgressUpdate

T0 = datetime(2030, 1, 1, tzinfo=UTC)
VIDEO = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=100.0, threshold=0.9)
TEXT = ContentRules(course_id=7, kind=ContentKind.TEXT, duration=None, threshold=0.9)


def observe(*played: tuple[float, float], position: float | None = None, at: int = 0) -> Progress:
    """A video heartbeat as the writer admits it, `at` seconds after T0."""
    update = ProgressUpdate(content_id=1, position=position, played=list(played))
    write = prepare(1, update, now=T0 + timedelta(seconds=at))
    return admit(write, VIDEO, enrolled=True)


# --- segments -----------------------------------------------------------------------------------

times = st.floats(min_value=0, max_value=100, allow_nan=False)
segments = st.lists(st.tuples(times, times).map(lambda s: (min(s), max(s))), max_size=12)
normalised = segments.map(union)


@given(normalised, normalised)
def test_merging_segments_is_commutative(a, b) -> None:
    assert union(a, b) == union(b, a)


@given(normalised, normalised, normalised)
def test_merging_segments_is_associative(a, b, c) -> None:
    assert union(union(a, b), c) == union(a, union(b, c))


@given(normalised)
def test_merging_segments_is_idempotent(a) -> None:
    assert union(a, a) == a
    assert union(a) == a


@given(segments)
def test_a_union_is_sorted_disjoint_and_no_longer_than_its_span(raw) -> None:
    merged = union(raw)
    for (_, end), (start, _) in itertools.pairwise(merged):
        assert start - end >= GAP
    assert all(end > start for start, end in merged)
    assert watched(merged) <= 100.0 + 1e-9


def test_overlapping_and_nearly_touching_segments_merge_and_distant_ones_do_not() -> None:
    assert union([(0, 10), (5, 15)]) == ((0, 15),)
    assert union([(0, 10), (10.2, 20)]) == ((0, 20),)  # heartbeat rounding
    assert union([(0, 10), (30, 40)]) == ((0, 10), (30, 40))
    assert union([(3, 3)]) == ()
    assert watched(union([(0, 10), (5, 15), (30, 40)])) == 25


# --- merging progress ---------------------------------------------------------------------------


@st.composite
def progress_values(draw: st.DrawFn) -> Progress:
    played = draw(normalised)
    stamp = draw(st.none() | st.integers(0, 1000))
    done = draw(st.none() | st.integers(0, 1000))
    if done is None and watched(played) >= 90:
        # Coverage at the threshold means completed: the invariant every stored value keeps.
        done = 0
    return Progress(
        position=draw(times),
        position_at=None if stamp is None else T0 + timedelta(seconds=stamp),
        played=played,
        completed_at=None if done is None else T0 + timedelta(seconds=done),
    )


NOW = T0 + timedelta(hours=1)


@given(progress_values(), progress_values())
def test_merging_progress_is_commutative(a, b) -> None:
    assert merge(a, b, VIDEO, NOW) == merge(b, a, VIDEO, NOW)


@given(progress_values(), progress_values(), progress_values())
def test_merging_progress_is_associative(a, b, c) -> None:
    left = merge(merge(a, b, VIDEO, NOW), c, VIDEO, NOW)
    assert left == merge(a, merge(b, c, VIDEO, NOW), VIDEO, NOW)


@given(progress_values())
def test_merging_progress_is_idempotent(a) -> None:
    assert merge(a, a, VIDEO, NOW) == a


@given(progress_values(), progress_values())
def test_coverage_never_exceeds_the_duration_and_completion_never_reverts(a, b) -> None:
    merged = merge(a, b, VIDEO, NOW)
    assert 0.0 <= coverage(merged, VIDEO) <= 1.0
    assert state(merged, VIDEO, content_id=1, updated_at=NOW).watched_seconds <= 100.0
    if a.completed_at is not None or b.completed_at is not None:
        assert merged.completed_at is not None


def test_the_newest_position_wins_whatever_the_order_of_arrival() -> None:
    early, late = observe(position=80, at=1), observe(position=20, at=2)
    assert merge(early, late, VIDEO, NOW).position == 20
    assert merge(late, early, VIDEO, NOW).position == 20
    # A heartbeat with no position keeps the stored one.
    assert merge(late, observe((0, 5)), VIDEO, NOW).position == 20


# --- completion ---------------------------------------------------------------------------------


def test_skipping_to_the_end_does_not_complete_a_video() -> None:
    skipped = advance(Progress(), observe((0, 5), (95, 100), position=100), VIDEO, NOW)
    assert skipped.completed_at is None
    assert skipped.position == 100
    assert coverage(skipped, VIDEO) == pytest.approx(0.10)


def test_a_video_completes_when_coverage_reaches_the_threshold_and_stays_completed() -> None:
    nearly = advance(Progress(), observe((0, 89)), VIDEO, T0)
    assert nearly.completed_at is None
    done = advance(nearly, observe((89, 90)), VIDEO, NOW)
    assert done.completed_at == NOW
    stricter = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=100.0, threshold=1.0)
    later = advance(done, observe(position=3, at=9), stricter, NOW + timedelta(days=1))
    assert later.completed_at == NOW


def test_the_course_threshold_decides_completion() -> None:
    lenient = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=100.0, threshold=0.5)
    assert advance(Progress(), observe((0, 50)), lenient, NOW).completed_at == NOW
    assert advance(Progress(), observe((0, 50)), VIDEO, NOW).completed_at is None


def test_a_text_completes_when_the_learner_says_so() -> None:
    opened = prepare(1, ProgressUpdate(content_id=2), now=T0)
    assert admit(opened, TEXT, enrolled=True).completed_at is None
    read = prepare(1, ProgressUpdate(content_id=2, completed=True), now=NOW)
    done = advance(Progress(), admit(read, TEXT, enrolled=True), TEXT, NOW)
    assert done.completed_at == NOW
    assert coverage(done, TEXT) == 1.0


# --- refusals -----------------------------------------------------------------------------------


def refusal_of(update: ProgressUpdate, rules: ContentRules | None = VIDEO, **kw) -> Refusal:
    with pytest.raises(Refused) as refused:
        admit(prepare(1, update, now=T0), rules, enrolled=kw.get("enrolled", True))
    return refused.value.reason


@pytest.mark.parametrize(
    "update",
    [
        ProgressUpdate(content_id=1, position=float("nan")),
        ProgressUpdate(content_id=1, position=float("inf")),
        ProgressUpdate(content_id=1, position=-1.0),
        ProgressUpdate(content_id=1, played=[(5.0, float("nan"))]),
        ProgressUpdate(content_id=1, played=[(10.0, 5.0)]),
        ProgressUpdate(content_id=1, played=[(0.0, 1.0)] * (MAX_SEGMENTS_PER_UPDATE + 1)),
        ProgressUpdate(content_id=1, position=100.0 + END_TOLERANCE + 0.1),
        ProgressUpdate(content_id=1, played=[(90.0, 100.0 + END_TOLERANCE + 0.1)]),
        ProgressUpdate(content_id=1, completed=True),
    ],
)
def test_nonsense_updates_are_refused_as_invalid(update: ProgressUpdate) -> None:
    assert refusal_of(update) is Refusal.INVALID


def test_a_text_content_takes_no_playback() -> None:
    assert refusal_of(ProgressUpdate(content_id=2, position=3.0), TEXT) is Refusal.INVALID
    assert refusal_of(ProgressUpdate(content_id=2, played=[(0.0, 1.0)]), TEXT) is Refusal.INVALID


def test_unknown_contents_outsiders_and_unprocessed_videos_are_refused() -> None:
    update = ProgressUpdate(content_id=1, position=3.0)
    assert refusal_of(update, None) is Refusal.UNKNOWN_CONTENT
    assert refusal_of(update, enrolled=False) is Refusal.NOT_ENROLLED
    processing = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=None, threshold=0.9)
    assert refusal_of(update, processing) is Refusal.NOT_READY


def test_times_just_past_the_end_are_taken_as_the_end() -> None:
    admitted = observe((90, 100 + END_TOLERANCE / 2), position=100 + END_TOLERANCE / 2)
    assert admitted.position == 100
    assert admitted.played == ((90, 100),)


def test_a_device_time_in_the_future_counts_as_now() -> None:
    ahead = ProgressUpdate(content_id=1, position=1.0, client_ts=T0 + timedelta(days=365))
    assert prepare(1, ahead, now=T0).position_at == T0
    behind = ProgressUpdate(content_id=1, position=1.0, client_ts=T0 - timedelta(minutes=5))
    assert prepare(1, behind, now=T0).position_at == T0 - timedelta(minutes=5)


# --- events and standings -----------------------------------------------------------------------


def test_a_batch_yields_one_event_per_changed_row_with_its_final_state() -> None:
    writes = [
        prepare(1, ProgressUpdate(content_id=1, position=p), now=T0, device_id=f"d{p:g}")
        for p in (1.0, 2.0, 3.0)
    ]
    states = [
        state(Progress(position=p), VIDEO, content_id=1, updated_at=T0) for p in (1.0, 2.0, 2.0)
    ]
    outcomes = [Written(states[0], True), Written(states[1], True), Written(states[2], False)]
    events = changes(writes, outcomes)
    assert [(e.position, e.device_id) for e in events] == [(2.0, "d2")]
    refused = Refused(Refusal.INVALID, "no")
    assert changes(writes[:1], [refused]) == []


def content(content_id: int, completed: bool, watched_seconds: float = 0.0) -> ContentProgress:
    return ContentProgress(
        content_id=content_id,
        title=f"c{content_id}",
        kind=ContentKind.VIDEO,
        duration=100.0,
        position=0.0,
        played=[],
        watched_seconds=watched_seconds,
        coverage=watched_seconds / 100,
        completed=completed,
        completed_at=T0 if completed else None,
        updated_at=T0 if watched_seconds else None,
    )


def test_a_course_reports_its_share_completed_and_the_first_unfinished_content() -> None:
    course = course_progress(7, "Optics", [content(3, True, 95), content(1, False, 10)])
    assert (course.completed_contents, course.total_contents, course.percent) == (1, 2, 50.0)
    assert course.next_content_id == 1
    assert course.watched_seconds == 105
    finished = course_progress(7, "Optics", [content(3, True, 95)])
    assert finished.next_content_id is None
    empty = course_progress(8, "Empty", [])
    assert (empty.percent, empty.next_content_id, empty.last_activity_at) == (0.0, None, None)
