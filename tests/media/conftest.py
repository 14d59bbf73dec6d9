"""Clips for the media tests, made once per session (media.synthetic and tests.media.clips write
them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from media import synthetic
from tests.media import clips


class ClipShelf:
    """Writes each named clip the first time a test asks for it."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._makers: dict[str, Callable[[Path], Path]] = {
            "landscape.mp4": lambda p: synthetic.write_clip(p, width=854, height=480, seconds=6),
            "small.mp4": lambda p: synthetic.write_clip(p, width=160, height=90, seconds=1),
            "long_small.mp4": lambda p: synthetic.write_clip(p, width=160, height=90, seconds=8),
            "portrait_phone.mp4": lambda p: synthetic.write_clip(
                p, width=180, height=320, rotation=90
            ),
            "upside_down.mp4": lambda p: synthetic.write_clip(p, rotation=180, seconds=1),
            "ten_bit.mp4": lambda p: synthetic.write_clip(p, pix_fmt="yuv420p10le", seconds=1),
            "odd.mp4": lambda p: synthetic.write_clip(
                p, width=321, height=181, pix_fmt="yuv444p", seconds=1
            ),
            "scaled_1918.mp4": lambda p: synthetic.write_clip(p, width=318, height=180, seconds=1),
            "silent.mp4": lambda p: synthetic.write_clip(p, seconds=1, audio_channels=0),
            "stereo.mp4": lambda p: synthetic.write_clip(p, seconds=1, audio_channels=2),
            "variable_rate.mp4": lambda p: synthetic.write_clip(p, frame_times=VARIABLE_TIMES),
            "fade_in.mp4": lambda p: synthetic.write_clip(
                p,
                seconds=4,
                picture=synthetic.marked_picture(320, 180, black_until=0.6),
                audio_channels=0,
            ),
            "faststart.mp4": lambda p: synthetic.write_clip(p, seconds=2, faststart=True),
            "audio_only.mp4": lambda p: synthetic.write_audio_only(p),
            "notes.mp4": clips.write_text,
            "photo.mp4": clips.write_photo,
            "empty.mp4": clips.write_empty,
            "huge.mp4": lambda p: synthetic.write_clip(
                p, width=8200, height=16, seconds=0.1, audio_channels=0
            ),
            "truncated.mp4": lambda p: clips.truncate(self.get("landscape.mp4"), p),
            "truncated_faststart.mp4": lambda p: clips.truncate(self.get("faststart.mp4"), p),
            "truncated.mkv": lambda p: clips.truncate(self.get("long.mkv"), p, keep=0.4),
            "long.mkv": lambda p: synthetic.write_clip(p, width=160, height=90, seconds=10),
        }

    def get(self, name: str) -> Path:
        path = self._directory / name
        if not path.exists():
            self._makers[name](path)
        return path


# A phone's variable frame rate, 20 frames in 2 s: bursts, gaps and a near-duplicate.
VARIABLE_TIMES = [
    *(0.0, 0.1, 0.13, 0.3, 0.35, 0.5, 0.6, 0.7, 0.71, 0.9),
    *(1.0, 1.2, 1.25, 1.3, 1.4, 1.5, 1.6, 1.75, 1.8, 1.9),
]


@pytest.fixture(scope="session")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> ClipShelf:
    return ClipShelf(tmp_path_factory.mktemp("clips"))
