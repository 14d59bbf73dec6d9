"""The sample lecture a node makes for its demo course: a real, short H.264/AAC video with motion,
sound, and its index first, which the transcoder takes like any upload."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media.probe import probe
from media.synthetic import write_sample_lecture
from tests.media import probing


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_lecture(tmp_path_factory.mktemp("synthetic") / "lecture.mp4")


def test_the_sample_lecture_is_a_few_seconds_of_480p_h264_with_aac_sound(lecture: Path) -> None:
    info = probe(lecture)
    assert (info.width, info.height, info.rotation) == (854, 480, 0)
    assert info.duration == pytest.approx(6.0, abs=0.05)
    assert info.fps == Fraction(25)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.audio_channels == 1
    assert [(s.kind, s.codec) for s in probing.streams(lecture)] == [
        ("video", "h264"),
        ("audio", "aac"),
    ]
    assert probing.duration(lecture, "audio") == pytest.approx(6.0, abs=0.1)


def test_the_sample_lecture_moves_and_is_upright(lecture: Path) -> None:
    first, later = probing.picture(lecture, 0), probing.picture(lecture, 25)
    assert probing.upright(first)
    # The square has moved: a good part of the picture changed.
    changed = np.abs(first.astype(int) - later.astype(int)).max(axis=2) > 64
    assert changed.mean() > 0.02


def test_the_sample_lecture_can_be_heard(lecture: Path) -> None:
    with av.open(str(lecture)) as container:
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert np.sqrt(np.mean(samples**2)) > 0.05  # the tone is at 0.2 peak: RMS ~0.14


def test_the_sample_lecture_starts_with_its_index_so_players_start_at_once(lecture: Path) -> None:
    boxes = probing.box_order(lecture)
    assert boxes.index("moov") < boxes.index("mdat")
