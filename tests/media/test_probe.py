from __future__ import annotations

from fractions import Fraction

import pytest

from media.errors import MediaError
from media.probe import ResolutionLimit, probe
from tests.media.conftest import ClipShelf


def test_a_plain_clip_is_described(shelf: ClipShelf) -> None:
    info = probe(shelf.get("landscape.mp4"))
    assert (info.width, info.height, info.rotation) == (854, 480, 0)
    assert info.duration == pytest.approx(6.0, abs=0.05)
    assert info.fps == Fraction(10)
    assert not info.vfr
    assert info.audio_channels == 1
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("h264", "yuv420p", 8)


def test_a_phone_video_filmed_upright_is_portrait_after_rotation(shelf: ClipShelf) -> None:
    info = probe(shelf.get("portrait_phone.mp4"))
    assert info.rotation == 90
    assert (info.width, info.height) == (180, 320)


def test_an_upside_down_video_keeps_its_size(shelf: ClipShelf) -> None:
    info = probe(shelf.get("upside_down.mp4"))
    assert (info.rotation, info.width, info.height) == (180, 320, 180)


def test_a_variable_frame_rate_is_detected(shelf: ClipShelf) -> None:
    info = probe(shelf.get("variable_rate.mp4"))
    assert info.vfr
    assert float(info.fps) == pytest.approx(10, rel=0.05)
    assert not probe(shelf.get("small.mp4")).vfr


def test_bit_depth_and_sound_are_reported(shelf: ClipShelf) -> None:
    ten_bit = probe(shelf.get("ten_bit.mp4"))
    assert (ten_bit.pix_fmt, ten_bit.bit_depth) == ("yuv420p10le", 10)
    assert probe(shelf.get("silent.mp4")).audio_channels == 0
    assert probe(shelf.get("stereo.mp4")).audio_channels == 2


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("notes.mp4", "not a video file"),
        ("photo.mp4", "the file is a still image, not a video"),
        ("empty.mp4", "the file is empty"),
        ("audio_only.mp4", "the file has no video stream"),
        ("truncated.mp4", "the file is truncated"),
        ("truncated_faststart.mp4", "the file is truncated"),
        ("huge.mp4", "resolution 8200x16 is above the limit of 8192 pixels a side"),
    ],
)
def test_an_unusable_file_is_refused_with_a_reason_a_person_understands(
    shelf: ClipShelf, name: str, reason: str
) -> None:
    with pytest.raises(MediaError) as refused:
        probe(shelf.get(name))
    assert refused.value.reason == reason


def test_a_missing_file_is_refused(shelf: ClipShelf) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        probe(shelf.get("small.mp4").with_name("nowhere.mp4"))


def test_too_many_pixels_are_refused_before_decoding(shelf: ClipShelf) -> None:
    limit = ResolutionLimit(max_side=8192, max_pixels=320 * 180 - 1)
    with pytest.raises(MediaError) as refused:
        probe(shelf.get("landscape.mp4"), limit)
    assert refused.value.reason == "resolution 854x480 is above the limit of 0.1 megapixels"
    probe(shelf.get("small.mp4"), limit)  # 160x90 is within it


def test_the_resolution_limit_checks_each_side_and_the_pixel_count() -> None:
    limit = ResolutionLimit()
    limit.check(8192, 2048)
    limit.check(4096, 4096)
    with pytest.raises(MediaError, match="10000x10000 is above the limit of 8192 pixels a side"):
        limit.check(10000, 10000)
    with pytest.raises(MediaError, match=r"6000x6000 is above the limit of 16\.8 megapixels"):
        limit.check(6000, 6000)
