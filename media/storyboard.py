"""The storyboard: small frames every few seconds on one JPEG sprite, and the WebVTT file that
tells a player which part of the sprite to show while the learner scrubs (`#xywh=` cues)."""

from __future__ import annotations

import math

import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from media.jpeg import TILE_QUALITY, encode_jpeg

IMAGE = "storyboard.jpg"
VTT = "storyboard.vtt"
TILE_LONG_SIDE = 160
COLUMNS = 10
MAX_TILES = 100  # one sprite of 100 tiles of 160x90 is ~200 KB


def tile_interval(duration: float) -> float:
    """Seconds between tiles: one a second, fewer for long videos so the sprite stays small."""
    return float(max(1, math.ceil(duration / MAX_TILES)))


class StoryboardBuilder:
    """Offered every decoded (upright) frame in order; keeps one tile per interval."""

    def __init__(
        self, duration: float, width: int, height: int, interval: float | None = None
    ) -> None:
        self.duration = duration
        self.interval = interval or tile_interval(duration)
        self.count = max(1, math.ceil(duration / self.interval))
        scale = TILE_LONG_SIDE / max(width, height)
        self.tile_width = max(2, round(width * scale / 2) * 2)
        self.tile_height = max(2, round(height * scale / 2) * 2)
        self.columns = min(COLUMNS, self.count)
        rows = math.ceil(self.count / self.columns)
        self._sheet = np.zeros(
            (rows * self.tile_height, self.columns * self.tile_width, 3), dtype=np.uint8
        )
        self.tiles = 0  # filled so far, in order
        self._scaler = VideoReformatter()

    def offer(self, frame: VideoFrame, seconds: float) -> None:
        """Fill every tile whose time has come with `frame`, shown at `seconds`."""
        if self.tiles >= self.count or seconds < self.tiles * self.interval:
            return
        tile = self._scaler.reformat(
            frame, self.tile_width, self.tile_height, "rgb24", threads=1
        ).to_ndarray()
        # A pause in the source longer than the interval leaves this frame on screen for
        # several tiles.
        while self.tiles < self.count and seconds >= self.tiles * self.interval:
            x, y = self._position(self.tiles)
            self._sheet[y : y + self.tile_height, x : x + self.tile_width] = tile
            self.tiles += 1

    def jpeg(self) -> bytes:
        rows = math.ceil(self.tiles / self.columns)
        sheet = np.ascontiguousarray(self._sheet[: rows * self.tile_height])
        return encode_jpeg(VideoFrame.from_ndarray(sheet, format="rgb24"), TILE_QUALITY)

    def vtt(self, image_uri: str) -> str:
        """WebVTT cues for the filled tiles, pointing into the sprite at `image_uri`."""
        cues = ["WEBVTT", ""]
        for index in range(self.tiles):
            start = index * self.interval
            end = min(self.duration, start + self.interval)
            x, y = self._position(index)
            cues += [
                f"{_timestamp(start)} --> {_timestamp(end)}",
                f"{image_uri}#xywh={x},{y},{self.tile_width},{self.tile_height}",
                "",
            ]
        return "\n".join(cues)

    def _position(self, index: int) -> tuple[int, int]:
        row, column = divmod(index, self.columns)
        return column * self.tile_width, row * self.tile_height


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02}:{minutes:02}:{millis // 1000:02}.{millis % 1000:03}"
