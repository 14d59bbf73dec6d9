"""Video made on the spot with PyAV: a test pattern with a moving square and a 440 Hz tone.

The demo course's lecture is one (a newcomer has a video to watch without finding one), and the
tests make their clips with the same code: sizes, sound, rotation, frame rates, bit depths.

Every picture is drawn upright with two markers, a red band along the top and a green band down
the left side, so a reader can tell which way up (and which way round) an output is. A white
square moves across it so the encoder has motion to code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

Picture = Callable[[int, float], np.ndarray]  # (frame index, seconds) -> upright RGB, h x w x 3

MARKER_TOP = (230, 30, 30)  # red
MARKER_LEFT = (30, 230, 30)  # green


def marked_picture(width: int, height: int, *, black_until: float = 0.0) -> Picture:
    """Upright test pictures: markers, a gradient, a moving square; black before `black_until`."""
    background = np.zeros((height, width, 3), np.uint8)
    background[:, :, 2] = np.linspace(60, 200, width, dtype=np.uint8)[None, :]
    background[:, :, 0] = np.linspace(40, 120, height, dtype=np.uint8)[:, None]
    band = max(2, height // 8)
    background[:band] = MARKER_TOP
    background[:, : max(2, width // 10)] = MARKER_LEFT
    side = max(2, min(width, height) // 5)

    def draw(index: int, seconds: float) -> np.ndarray:
        if seconds < black_until:
            return np.zeros_like(background)
        picture = background.copy()
        x = band + (index * 7) % max(1, width - side - band)
        y = band + (index * 3) % max(1, height - side - band)
        picture[y : y + side, x : x + side] = 255
        return picture

    return draw


def write_clip(
    path: Path,
    *,
    width: int = 320,
    height: int = 180,
    seconds: float = 2.0,
    fps: int = 10,
    audio_channels: int = 1,
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    frame_times: Sequence[float] | None = None,
    picture: Picture | None = None,
    faststart: bool = False,
    crf: int = 23,
) -> Path:
    """Write an H.264 (+ AAC) clip displayed at width x height; returns `path` (MP4, or
    Matroska for a `.mkv` path).

    `rotation` (clockwise degrees) stores the picture turned the other way with a display
    matrix that turns it back, as a phone filming upright does. `frame_times` gives each
    frame's time (a variable frame rate); otherwise frames come every 1/fps seconds.
    `audio_channels=0` writes no sound.
    """
    draw = picture or marked_picture(width, height)
    if frame_times is None:
        frame_times = [i / fps for i in range(round(seconds * fps))]
    coded_width, coded_height = (height, width) if rotation in (90, 270) else (width, height)
    options = {"movflags": "+faststart"} if faststart else {}
    container_format = "matroska" if path.suffix == ".mkv" else "mp4"
    with av.open(str(path), "w", format=container_format, options=options) as container:
        video = container.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "crf": str(crf)}
        )
        video.width, video.height, video.pix_fmt = coded_width, coded_height, pix_fmt
        video.codec_context.time_base = Fraction(1, 1000)  # fine enough for variable rates
        if rotation:
            video.set_display_rotation(-rotation)  # PyAV counts counter-clockwise
        tone = _Tone(container, audio_channels) if audio_channels else None
        for index, t in enumerate(frame_times):
            coded = np.ascontiguousarray(np.rot90(draw(index, t), k=rotation // 90))
            frame = av.VideoFrame.from_ndarray(coded, format="rgb24").reformat(format=pix_fmt)
            frame.pts = round(t * 1000)
            frame.time_base = video.codec_context.time_base
            container.mux(video.encode(frame))
            if tone:
                tone.until(t + 1 / fps)
        container.mux(video.encode())
        if tone:
            tone.close()
    return path


def write_sample_lecture(path: Path) -> Path:
    """A short lecture to watch: 6 s of 854x480 at 25 fps with the tone, as a fast-start MP4.
    A 480p source is transcoded to 480p and 360p, so a player's quality menu has a choice."""
    return write_clip(path, width=854, height=480, seconds=6.0, fps=25, faststart=True)


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """Write `seconds` of the stereo tone alone, as AAC in MP4; returns `path`."""
    with av.open(str(path), "w", format="mp4") as container:
        tone = _Tone(container, 2)
        tone.until(seconds)
        tone.close()
    return path


class _Tone:
    """A 440 Hz tone written alongside the video, so the file is interleaved as usual."""

    RATE = 44_100
    CHUNK = 1024

    def __init__(self, container: av.container.OutputContainer, channels: int) -> None:
        self._container = container
        self._layout = "mono" if channels == 1 else "stereo"
        self._channels = channels
        self._stream = container.add_stream("aac", rate=self.RATE, layout=self._layout)
        self._written = 0  # samples

    def until(self, seconds: float) -> None:
        while self._written < seconds * self.RATE:
            t = (self._written + np.arange(self.CHUNK)) / self.RATE
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(
                np.tile(tone, (self._channels, 1)), format="fltp", layout=self._layout
            )
            frame.sample_rate = self.RATE
            frame.pts = self._written
            frame.time_base = Fraction(1, self.RATE)
            self._container.mux(self._stream.encode(frame))
            self._written += self.CHUNK

    def close(self) -> None:
        self._container.mux(self._stream.encode())
