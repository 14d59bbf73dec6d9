from __future__ import annotations

import pytest

from media.ladder import STANDARD_CAPS, plan_ladder


def sizes(width: int, height: int) -> list[tuple[str, int, int]]:
    return [(r.label, r.width, r.height) for r in plan_ladder(width, height)]


def test_a_full_hd_source_gets_the_four_standard_renditions() -> None:
    assert sizes(1920, 1080) == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
    ]


def test_nothing_is_upscaled_and_nothing_exceeds_1080p() -> None:
    assert sizes(1280, 720)[0] == ("720p", 1280, 720)
    assert sizes(3840, 2160)[0] == ("1080p", 1920, 1080)
    for width, height in [(640, 360), (854, 480), (711, 400), (320, 180)]:
        assert all(w <= width and h <= height for _, w, h in sizes(width, height))


def test_a_portrait_video_is_named_by_its_short_side() -> None:
    assert sizes(1080, 1920) == [
        ("1080p", 1080, 1920),
        ("720p", 720, 1280),
        ("480p", 480, 854),
        ("360p", 360, 640),
    ]


def test_a_source_between_standard_sizes_keeps_its_own_size_on_top() -> None:
    assert sizes(711, 400) == [("400p", 710, 400), ("360p", 640, 360)]
    assert sizes(960, 540)[:2] == [("540p", 960, 540), ("480p", 854, 480)]


def test_a_size_near_a_standard_one_takes_its_name_without_a_near_duplicate() -> None:
    assert sizes(658, 370) == [("360p", 658, 370)]
    assert [label for label, _, _ in sizes(1920, 1078)] == ["1080p", "720p", "480p", "360p"]


def test_a_small_source_gets_one_rendition_at_its_size() -> None:
    assert sizes(320, 180) == [("180p", 320, 180)]


@pytest.mark.parametrize(("width", "height"), [(1918, 1080), (1919, 1079), (321, 181), (853, 480)])
def test_every_side_is_even_for_4_2_0_video(width: int, height: int) -> None:
    for _, w, h in sizes(width, height):
        assert w % 2 == 0
        assert h % 2 == 0
    assert sizes(1918, 1080)[0] == ("1080p", 1918, 1080)
    assert sizes(1919, 1079)[0] == ("1080p", 1918, 1078)


def test_bitrate_caps_fall_with_size_and_leave_a_two_second_buffer() -> None:
    ladder = plan_ladder(1920, 1080)
    assert [r.maxrate for r in ladder] == [STANDARD_CAPS[h] for h in (1080, 720, 480, 360)]
    assert all(r.bufsize == 2 * r.maxrate for r in ladder)
    own_size = plan_ladder(711, 400)[0]
    assert STANDARD_CAPS[360] < own_size.maxrate < STANDARD_CAPS[480]
