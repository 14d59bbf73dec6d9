from __future__ import annotations

from fractions import Fraction

import pytest

from media.framerate import Cadence, output_rate


@pytest.mark.parametrize(
    ("source", "output"),
    [
        ("30", "30"),
        ("29.97", "30000/1001"),
        ("29.6", "30000/1001"),  # a phone's variable rate averaging a little under 30
        ("25", "25"),
        ("10", "10"),
        ("14.3", "14"),
        ("120", "60"),
        ("0.5", "1"),
    ],
)
def test_the_output_rate_is_a_common_one_at_most_60(source: str, output: str) -> None:
    assert output_rate(Fraction(source)) == Fraction(output)


def ticks_for(times: list[float], end: float, rate: int = 10) -> list[range]:
    cadence = Cadence(Fraction(rate))
    runs = [cadence.next_frame(t) for t in times]
    return [*runs[1:], cadence.finish(end)]


def test_a_constant_rate_source_maps_one_frame_to_one_tick() -> None:
    times = [i / 10 for i in range(5)]
    assert ticks_for(times, 0.5) == [range(i, i + 1) for i in range(5)]


def test_a_pause_repeats_the_frame_on_screen_and_a_burst_drops_frames() -> None:
    runs = ticks_for([0.0, 0.1, 0.4, 0.41, 0.5], end=0.6)
    assert [len(r) for r in runs] == [1, 3, 0, 1, 1]


def test_ticks_are_contiguous_from_zero_even_when_the_first_frame_is_late() -> None:
    runs = ticks_for([0.25, 0.3, 0.5], end=0.6)
    assert runs[0].start == 0
    assert [t for r in runs for t in r] == list(range(6))


def test_the_last_frame_fills_at_least_one_tick() -> None:
    assert ticks_for([0.0, 0.1], end=0.1) == [range(0, 1), range(1, 2)]
