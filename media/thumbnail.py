"""The poster: a frame from 10-25% into the video that is neither black nor flat.

Lectures open on black, fades and title cards; a poster taken from the first frame is often a
black rectangle. Frames at a few set points are judged by their luma: a usable one is neither
dark nor blown out, and among usable ones the most varied (the most detail) wins. Points past
25% and the first frame are there for videos whose early part is all black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from media.jpeg import POSTER_QUALITY, encode_jpeg

NAME = "thumbnail.jpg"
PREFERRED = (0.10, 0.15, 0.20, 0.25)  # shares of the duration
FALLBACK = (0.0, 0.35, 0.50, 0.65)
MAX_LONG_SIDE, MAX_SHORT_SIDE = 1280, 720
_JUDGE_SIZE = (64, 36)  # luma statistics need no more pixels than this
_DARKEST, _BRIGHTEST, _FLATTEST = 24.0, 232.0, 12.0  # mean luma bounds, minimum spread (0-255)


@dataclass(frozen=True, order=True)
class _Rank:
    usable: bool
    preferred: bool
    spread: float


class PosterPicker:
    """Offered every decoded (upright) frame in order; keeps the best candidate (the first
    frame offered is one, so there is always a poster)."""

    def __init__(self, duration: float, width: int, height: int) -> None:
        points = [(share * duration, share in PREFERRED) for share in PREFERRED + FALLBACK]
        self._points = sorted(points)
        self._next = 0
        scale = min(1.0, MAX_LONG_SIDE / max(width, height), MAX_SHORT_SIDE / min(width, height))
        self._size = (max(2, round(width * scale)), max(2, round(height * scale)))
        self._judge = VideoReformatter()
        self._best: tuple[_Rank, VideoFrame] | None = None

    def offer(self, frame: VideoFrame, seconds: float) -> None:
        """Consider `frame`, shown at `seconds`, if it is at one of the points."""
        preferred = None
        while self._next < len(self._points) and self._points[self._next][0] <= seconds:
            preferred = preferred or self._points[self._next][1]
            self._next += 1
        if preferred is None and self._best is not None:
            return
        rank = self._rank(frame, bool(preferred))
        if self._best is None or rank > self._best[0]:
            width, height = self._size
            # Kept small (not the decoded frame, whose buffer the decoder wants back).
            self._best = (rank, frame.reformat(width, height, "yuv420p"))

    def jpeg(self) -> bytes:
        """The poster as JPEG; any offered frame will do when none was at a point."""
        if self._best is None:
            raise ValueError("no frame was offered")
        return encode_jpeg(self._best[1], POSTER_QUALITY)

    def _rank(self, frame: VideoFrame, preferred: bool) -> _Rank:
        small = self._judge.reformat(frame, *_JUDGE_SIZE, "gray", threads=1)
        luma = small.to_ndarray().astype(np.float32)
        mean, spread = float(luma.mean()), float(luma.std())
        usable = _DARKEST <= mean <= _BRIGHTEST and spread >= _FLATTEST
        return _Rank(usable, preferred, spread)
