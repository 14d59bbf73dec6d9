"""The token bucket: a burst of `capacity`, then `rate` per second, never more."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.token_bucket import Limit, TokenBucket

# Float arithmetic on times may put a boundary a hair either side; no more than this.
SLACK = 1e-9

limits = st.builds(
    Limit,
    capacity=st.integers(min_value=1, max_value=50),
    rate=st.floats(min_value=0.001, max_value=100.0),
)
# Gaps between successive requests, in seconds: bursts (0) and pauses.
gaps = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=30.0)), min_size=1, max_size=200
)


@given(limit=limits, gaps=gaps, start=st.floats(min_value=0.0, max_value=1e6))
def test_no_window_admits_more_than_capacity_plus_what_the_rate_refilled_in_it(
    limit: Limit, gaps: list[float], start: float
) -> None:
    bucket = TokenBucket(limit, start)
    now, admitted_at = start, []
    for gap in gaps:
        now += gap
        if bucket.take(now) == 0.0:
            admitted_at.append(now)
    # Every window, not only the one since the bucket was made: idle time banks no more than
    # a full bucket.
    for first, since in enumerate(admitted_at):
        for last in range(first, len(admitted_at)):
            elapsed = admitted_at[last] - since
            assert last - first + 1 <= limit.capacity + limit.rate * elapsed + SLACK


@given(limit=limits, gaps=gaps)
def test_a_refused_request_is_told_exactly_when_a_token_will_be_there(
    limit: Limit, gaps: list[float]
) -> None:
    bucket = TokenBucket(limit, 0.0)
    now = 0.0
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        if wait > 0:
            assert wait <= limit.interval + SLACK  # never longer than one refill
            # Not a moment before (the refusal took nothing, so asking again is the same),
            assert bucket.take(now + wait * (1 - 1e-6) - SLACK) > 0
            # and then it is there.
            now += wait + SLACK * max(1.0, now)
            assert bucket.take(now) == 0.0


@given(limit=limits, burst_at=st.floats(min_value=0.0, max_value=1e6))
def test_a_new_bucket_admits_a_full_burst_then_refuses(limit: Limit, burst_at: float) -> None:
    bucket = TokenBucket(limit, 0.0)
    assert [bucket.take(burst_at) for _ in range(limit.capacity)] == [0.0] * limit.capacity
    assert bucket.take(burst_at) == pytest.approx(limit.interval)


@given(limit=limits, refills=st.integers(min_value=0, max_value=100))
def test_an_idle_bucket_refills_at_its_rate_up_to_capacity_and_no_further(
    limit: Limit, refills: int
) -> None:
    bucket = TokenBucket(limit, 0.0)
    for _ in range(limit.capacity):
        bucket.take(0.0)
    # Halfway between two refills, so no boundary is within a float's error.
    later = (refills + 0.5) * limit.interval
    admitted = 0
    while bucket.take(later) == 0.0:
        admitted += 1
    assert admitted == min(refills, limit.capacity)


def test_a_bucket_is_full_again_once_its_taken_tokens_are_refilled() -> None:
    bucket = TokenBucket(Limit(capacity=3, rate=0.5), 100.0)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == 0.0
    assert not bucket.is_full(103.0)
    assert bucket.is_full(104.0)


def test_a_clock_that_steps_back_refills_nothing() -> None:
    bucket = TokenBucket(Limit(capacity=1, rate=1.0), 10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(6.0)


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1.0), (1, 0.0), (1, -1.0), (1, math.nan)])
def test_a_limit_needs_a_capacity_and_a_positive_rate(capacity: int, rate: float) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Limit(capacity, rate)
