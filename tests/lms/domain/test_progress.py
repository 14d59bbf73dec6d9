import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.progress import (
    END_TOLERANCE,
    GAP,
    GRACE,
    MIN_CUT,
    ContentRules,
    Progress,
    Refusal,
    Refused,
    Written,
    admit,
    advance,
    allowance,
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
# A row whose learner opened the video long ago: its allowance covers any claim on it.
OPENED = Progress(credited_at=T0 - timedelta(days=1))


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
    skipped = advance(OPENED, observe((0, 5), (95, 100), position=100), VIDEO, NOW)
    assert skipped.completed_at is None
    assert skipped.position == 100
    assert coverage(skipped, VIDEO) == pytest.approx(0.10)


def test_a_video_completes_when_coverage_reaches_the_threshold_and_stays_completed() -> None:
    nearly = advance(OPENED, observe((0, 89)), VIDEO, T0)
    assert nearly.completed_at is None
    done = advance(nearly, observe((89, 90)), VIDEO, NOW)
    assert done.completed_at == NOW
    stricter = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=100.0, threshold=1.0)
    later = advance(done, observe(position=3, at=9), stricter, NOW + timedelta(days=1))
    assert later.completed_at == NOW


def test_the_course_threshold_decides_completion() -> None:
    lenient = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=100.0, threshold=0.5)
    assert advance(OPENED, observe((0, 50)), lenient, NOW).completed_at == NOW
    assert advance(OPENED, observe((0, 50)), VIDEO, NOW).completed_at is None


def test_a_text_completes_when_the_learner_says_so() -> None:
    opened = prepare(1, ProgressUpdate(content_id=2), now=T0)
    assert admit(opened, TEXT, enrolled=True).completed_at is None
    read = prepare(1, ProgressUpdate(content_id=2, completed=True), now=NOW)
    done = advance(Progress(), admit(read, TEXT, enrolled=True), TEXT, NOW)
    assert done.completed_at == NOW
    assert coverage(done, TEXT) == 1.0


# --- credit: watching cannot be faked faster than the course allows ------------------------------

LONG = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=3600.0, threshold=0.9)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def claim(*played: tuple[float, float], position: float | None = None) -> Progress:
    return Progress(position=position or 0.0, played=union(played))


def test_an_instant_completion_claim_is_clamped_to_the_grace_and_counted() -> None:
    short = ContentRules(course_id=7, kind=ContentKind.VIDEO, duration=60.0, threshold=0.9)
    first = advance(Progress(), claim((0, 60)), short, T0)
    assert first.played == ((0, 2 * GRACE),)  # the earliest seconds, at 2x for the grace
    assert first.clamped_seconds == 60 - 2 * GRACE
    assert first.completed_at is None
    # Sent again at once, the claim gains nothing more and is counted again.
    again = advance(first, claim((0, 60)), short, T0)
    assert again.played == first.played
    assert again.clamped_seconds == 2 * (60 - 2 * GRACE)


def test_watching_at_twice_the_speed_is_credited_and_faster_is_clamped() -> None:
    row = advance(Progress(), claim((0, 10)), LONG, at(0))  # the grace: 12 s at 2x
    assert (row.played, row.clamped_seconds) == (((0, 10),), 0.0)
    for beat in range(1, 20):  # 2x: 10 s of video every 5 s
        row = advance(row, claim((10 * beat, 10 * beat + 10)), LONG, at(5 * beat))
    assert (row.watched_seconds, row.clamped_seconds) == (200.0, 0.0)
    # 3x for a while: the grace carried over goes first, then every heartbeat is clamped.
    for beat in range(20, 30):
        row = advance(row, claim((row.played[-1][1], row.played[-1][1] + 15)), LONG, at(5 * beat))
    assert row.clamped_seconds > 0
    assert row.watched_seconds <= 200 + 2 * 5 * 10 + 2 * GRACE


def test_the_course_rate_decides_how_fast_watching_is_credited() -> None:
    fast = ContentRules(
        course_id=7, kind=ContentKind.VIDEO, duration=3600.0, threshold=0.9, max_rate=4.0
    )
    opened = Progress(credited_at=T0)
    assert advance(opened, claim((0, 40)), fast, at(10)).clamped_seconds == 0
    assert advance(opened, claim((0, 40)), LONG, at(10)).clamped_seconds == 20
    assert allowance(opened, fast, at(10)) == 40
    assert allowance(opened, LONG, at(10)) == 20


def test_a_pause_or_a_device_offline_is_credited_for_the_time_it_took() -> None:
    row = advance(Progress(), claim((0, 10)), LONG, at(0))
    later = advance(row, claim((10, 610)), LONG, at(600))  # 10 min offline at 1x, sent at once
    assert (later.watched_seconds, later.clamped_seconds) == (610.0, 0.0)


def test_quick_heartbeats_do_not_each_add_a_grace() -> None:
    row = advance(Progress(), claim((0, 1)), LONG, at(0))
    for beat in range(1, 100):  # a heartbeat every 10 ms, each claiming 5 s more
        row = advance(row, claim((5 * beat - 4, 5 * beat + 1)), LONG, at(beat / 100))
    assert row.watched_seconds <= 2 * 1.0 + 2 * GRACE + 1e-9


def test_claims_faster_than_the_rate_sent_often_do_not_splinter_the_row() -> None:
    row = advance(Progress(), claim((0, 5)), LONG, at(0))
    for beat in range(1, 500):  # every 10 ms, 5 s more each, far ahead of what was credited
        row = advance(row, claim((5 * beat, 5 * beat + 5)), LONG, at(beat / 100))
    # 5 s of wall clock at 2x, plus the grace: pieces of a second at least, not 500 slivers.
    assert row.watched_seconds <= 2 * 5 + 2 * GRACE
    assert len(row.played) <= 2 * 5 / MIN_CUT + 1
    assert all(end - start >= MIN_CUT for start, end in row.played)


def test_a_claim_taken_before_the_rows_last_credit_credits_nothing_and_is_not_counted() -> None:
    row = advance(Progress(credited_at=T0), claim((0, 10)), LONG, at(60))
    late = advance(row, claim((10, 20)), LONG, at(30))  # another node took it earlier
    assert (late.played, late.clamped_seconds, late.credited_at) == (
        row.played,
        0.0,
        row.credited_at,
    )


def test_clamping_never_credits_a_gap_it_leaves_before_a_stored_segment() -> None:
    row = Progress(played=((10.0, 20.0),), credited_at=T0)
    clamped = advance(row, claim((0, 20)), LONG, at(4.9))  # 9.8 s allowed of the 10 s before
    assert clamped.played == ((0.0, 9.5), (10.0, 20.0))
    assert clamped.clamped_seconds == pytest.approx(0.5)


@st.composite
def heartbeats(draw: st.DrawFn) -> list[tuple[float, Progress]]:
    """A learner's heartbeats: (seconds after T0, claim), in the order the server took them."""
    beats = []
    clock = 0.0
    for _ in range(draw(st.integers(1, 12))):
        clock += draw(st.sampled_from([0.0, 0.01, 1.0]) | st.floats(0, 60))
        beats.append((clock, Progress(played=draw(normalised))))
    return beats


rates = st.sampled_from([1.0, 2.0, 3.5, 16.0])


def rules_at(rate: float) -> ContentRules:
    return ContentRules(
        course_id=7, kind=ContentKind.VIDEO, duration=100.0, threshold=0.9, max_rate=rate
    )


@given(heartbeats(), rates)
def test_credited_coverage_never_grows_faster_than_the_rate_plus_the_grace(beats, rate) -> None:
    """Between any two heartbeats that claim new coverage (and before the first), the watched
    seconds grow by at most the rate times the time between them, plus the grace's worth."""
    rules = rules_at(rate)
    row, credited = Progress(), []
    for seconds, claimed in beats:
        before = row
        row = advance(row, claimed, rules, at(seconds))
        assert row.watched_seconds >= before.watched_seconds  # credit never goes back
        if watched(union(before.played, claimed.played)) > before.watched_seconds:
            if not credited:
                assert row.watched_seconds <= rate * GRACE + 1e-9
            credited.append((seconds, row.watched_seconds))
    for (t1, w1), (t2, w2) in itertools.combinations(credited, 2):
        # Times are kept to the microsecond: each heartbeat may round its allowance up by one.
        assert w2 - w1 <= rate * (t2 - t1 + GRACE + len(beats) * 1e-6) + 1e-9


@given(progress_values(), normalised, st.floats(0, 3600), rates)
def test_a_claim_within_its_allowance_is_credited_unchanged(stored, played, elapsed, rate) -> None:
    rules = rules_at(rate)
    stored = replace(stored, credited_at=T0)
    merged = union(stored.played, played)
    if watched(merged) - stored.watched_seconds > allowance(stored, rules, at(elapsed)):
        return
    row = advance(stored, Progress(played=played), rules, at(elapsed))
    assert row.played == merged
    assert row.clamped_seconds == stored.clamped_seconds


@given(progress_values(), normalised, st.floats(0, 60), rates)
def test_clamping_keeps_the_earliest_new_seconds_and_counts_the_rest(
    stored, played, elapsed, rate
) -> None:
    rules = rules_at(rate)
    stored = replace(stored, credited_at=T0)
    allowed = allowance(stored, rules, at(elapsed))
    claimed = union(stored.played, played)
    new = watched(claimed) - stored.watched_seconds
    row = advance(stored, Progress(played=played), rules, at(elapsed))
    granted = row.watched_seconds - stored.watched_seconds
    assert -1e-9 <= granted <= allowed + 1e-9
    assert granted + (row.clamped_seconds - stored.clamped_seconds) == pytest.approx(
        max(0.0, new), abs=1e-6
    )
    credited_new = _minus(row.played, stored.played)
    dropped = _minus(claimed, row.played)
    if credited_new and dropped:
        assert credited_new[-1][1] <= dropped[0][0] + 1e-9  # nothing later kept before earlier


def _minus(a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...]):
    """The parts of the union `a` not in `b` (b within a), longer than rounding."""
    out = []
    for start, end in a:
        cursor = start
        for b_start, b_end in b:
            if b_end <= cursor or b_start >= end:
                continue
            if b_start > cursor:
                out.append((cursor, b_start))
            cursor = max(cursor, b_end)
        if end - cursor > 1e-9:
            out.append((cursor, end))
    return [(s, e) for s, e in out if e - s > 1e-9]


@given(progress_values(), normalised, st.floats(0, 60), rates)
def test_recording_the_same_heartbeat_twice_credits_it_once(stored, played, elapsed, rate) -> None:
    rules = rules_at(rate)
    stored = replace(stored, credited_at=T0)
    once = advance(stored, Progress(played=played), rules, at(elapsed))
    twice = advance(once, Progress(played=played), rules, at(elapsed))
    assert (twice.played, twice.completed_at, twice.credited_at) == (
        once.played,
        once.completed_at,
        once.credited_at,
    )
    if once.clamped_seconds == stored.clamped_seconds:
        assert twice == once


@given(progress_values(), normalised, normalised, st.floats(0, 3600), rates)
def test_heartbeats_within_the_allowance_are_credited_in_any_order(
    stored, a, b, elapsed, rate
) -> None:
    rules = rules_at(rate)
    stored = replace(stored, credited_at=T0)
    now = at(elapsed)
    gained = [
        watched(union(stored.played, *x)) - stored.watched_seconds for x in ([a, b], [a], [b])
    ]
    if gained[0] > allowance(stored, rules, now) or max(gained[1:]) > rate * GRACE:
        return
    ab = advance(advance(stored, Progress(played=a), rules, now), Progress(played=b), rules, now)
    ba = advance(advance(stored, Progress(played=b), rules, now), Progress(played=a), rules, now)
    assert ab.played == ba.played == union(stored.played, a, b)
    assert (ab.completed_at, ab.clamped_seconds) == (ba.completed_at, ba.clamped_seconds)


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
