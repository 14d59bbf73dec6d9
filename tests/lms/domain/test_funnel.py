"""A course's completion funnel: who started and completed each content, and coverage."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.funnel import ContentTally, Funnel, FunnelStep, funnel


@st.composite
def tallies(draw: st.DrawFn, enrolled: int) -> ContentTally:
    started = draw(st.integers(min_value=0, max_value=enrolled))
    duration = draw(st.one_of(st.none(), st.floats(min_value=1, max_value=7200)))
    watched = draw(st.floats(min_value=0, max_value=started * (duration or 0)))
    return ContentTally(
        content_id=draw(st.integers(min_value=1, max_value=10**6)),
        started=started,
        completed=draw(st.integers(min_value=0, max_value=started)),
        watched_seconds=watched,
        duration=duration,
    )


courses = st.integers(min_value=0, max_value=500).flatmap(
    lambda enrolled: st.tuples(st.just(enrolled), st.lists(tallies(enrolled), max_size=10))
)


@given(courses)
def test_the_funnel_keeps_course_order_and_every_share_is_between_0_and_1(course) -> None:
    enrolled, contents = course
    result = funnel(contents, enrolled)
    assert [s.content_id for s in result.steps] == [t.content_id for t in contents]
    for step in result.steps:
        assert 0 <= step.completed_share <= step.started_share <= 1
        assert step.coverage is None or 0 <= step.coverage <= 1
    assert result.coverage is None or 0 <= result.coverage <= 1


def test_shares_count_over_enrolled_learners_and_coverage_over_those_who_started() -> None:
    contents = [
        ContentTally(content_id=1, started=8, completed=6, watched_seconds=8 * 60.0, duration=100),
        ContentTally(content_id=2, started=4, completed=4, watched_seconds=0.0, duration=None),
        ContentTally(content_id=3, started=2, completed=0, watched_seconds=50.0, duration=300),
    ]
    assert funnel(contents, enrolled=10) == Funnel(
        enrolled=10,
        steps=[
            FunnelStep(
                1, started=8, completed=6, started_share=0.8, completed_share=0.6, coverage=0.6
            ),
            FunnelStep(
                2, started=4, completed=4, started_share=0.4, completed_share=0.4, coverage=None
            ),  # a text: read or not, no coverage
            FunnelStep(
                3,
                started=2,
                completed=0,
                started_share=0.2,
                completed_share=0.0,
                coverage=pytest.approx(50 / 600),
            ),
        ],
        # (480 + 50) of 10 learners x (100 + 300) seconds of video
        coverage=pytest.approx(530 / 4000),
    )


def test_a_course_with_no_videos_has_no_coverage() -> None:
    text = ContentTally(content_id=1, started=3, completed=3, watched_seconds=0, duration=None)
    assert funnel([text], enrolled=5).coverage is None
    assert funnel([], enrolled=5) == Funnel(enrolled=5, steps=[], coverage=None)


def test_a_course_nobody_enrolled_in_divides_by_nothing() -> None:
    video = ContentTally(content_id=1, started=0, completed=0, watched_seconds=0, duration=60)
    assert funnel([video], enrolled=0) == Funnel(
        enrolled=0,
        steps=[FunnelStep(1, 0, 0, started_share=0.0, completed_share=0.0, coverage=None)],
        coverage=None,
    )


def test_a_video_still_processing_counts_learners_but_has_no_coverage() -> None:
    pending = ContentTally(content_id=1, started=2, completed=0, watched_seconds=0, duration=None)
    (step,) = funnel([pending], enrolled=4).steps
    assert (step.started_share, step.coverage) == (0.5, None)
