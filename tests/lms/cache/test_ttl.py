"""TTL jitter: never longer than asked, spread over the window."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.cache.ttl import jittered


@given(
    ttl=st.floats(min_value=0.001, max_value=1e6),
    spread=st.floats(min_value=0.0, max_value=0.99),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_a_jittered_ttl_lies_within_its_window(ttl: float, spread: float, draw: float) -> None:
    assert ttl * (1 - spread) <= jittered(ttl, spread, lambda: draw) <= ttl


def test_jittered_ttls_spread_over_the_whole_window() -> None:
    draw = random.Random(21).random
    ttls = [jittered(60.0, 0.2, draw) for _ in range(1000)]
    assert 48.0 <= min(ttls) < 49.0
    assert 59.0 < max(ttls) <= 60.0


@pytest.mark.parametrize(("ttl", "spread"), [(0.0, 0.1), (-1.0, 0.1), (60.0, 1.0), (60.0, -0.1)])
def test_a_ttl_or_spread_out_of_range_is_refused(ttl: float, spread: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        jittered(ttl, spread, random.random)
