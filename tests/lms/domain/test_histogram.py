import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.histogram import Histogram


def test_a_value_on_a_bound_is_counted_in_that_bound_s_bucket() -> None:
    histogram = Histogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 2.0, 3.0):
        histogram.observe(value)
    snapshot = histogram.snapshot()
    assert snapshot.buckets == ((1.0, 2), (2.0, 4), (float("inf"), 5))
    assert snapshot.sum == 8.0
    assert snapshot.count == 5


@given(st.lists(st.floats(min_value=0, max_value=100)))
def test_buckets_are_cumulative_and_end_with_the_count(values: list[float]) -> None:
    histogram = Histogram((0.1, 1.0, 10.0))
    for value in values:
        histogram.observe(value)
    snapshot = histogram.snapshot()
    for bound, count in snapshot.buckets:
        assert count == sum(1 for value in values if value <= bound)
    assert snapshot.count == len(values)


def test_bounds_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing"):
        Histogram((1.0, 0.5))
