"""The preview clip: a few seconds of the smallest rendition, for hover previews and teasers.

It costs no encoding: the smallest rendition's packets that fall in the window are muxed into a
second MP4 as they come out of its encoder. Every GOP is closed, so a clip from one keyframe
to another cuts cleanly. It has no sound: hover previews
play muted, and browsers only autoplay muted video.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import av
from av.packet import Packet
from av.video.stream import VideoStream

from media.audio import copy_packet
from media.staging import Staging

NAME = "preview.mp4"
_START_SHARE = 0.1  # start a tenth in: past the title card, still early in the story


@dataclass(frozen=True)
class PreviewWindow:
    """The clip runs from the first keyframe at or after `start` to the first at or after `end`
    (keyframes are at most two seconds apart)."""

    start: float  # seconds
    end: float


def preview_window(duration: float, seconds: float) -> PreviewWindow | None:
    """Which part of a `duration`-long video becomes a `seconds`-long preview (None: none)."""
    if seconds <= 0:
        return None
    start = min(duration * _START_SHARE, max(0.0, duration - seconds))
    return PreviewWindow(start, start + seconds)


class PreviewWriter:
    """Copies the packets of one encoder that fall in a window into `preview.mp4`.

    Fed every packet of that encoder, in order, before anything else muxes it (muxing rebases
    a packet's timestamps). Published as soon as the window is over, or by `finish`.
    """

    def __init__(self, staging: Staging, video: VideoStream, window: PreviewWindow) -> None:
        self._staging = staging
        self._window = window
        self._container = av.open(
            str(staging.part(NAME)), "w", format="mp4", options={"movflags": "+faststart"}
        )
        self._stream = self._container.add_stream_from_template(video, opaque=True)
        self._offset: int | None = None  # pts of the first packet kept, in the packets' time base
        self.published: str | None = None

    def add(self, packet: Packet) -> None:
        if self.published is not None or packet.pts is None:
            return
        seconds = float(packet.pts * packet.time_base)
        if packet.is_keyframe and self._offset is None and seconds >= self._window.start:
            self._offset = packet.pts
        elif packet.is_keyframe and self._offset is not None and seconds >= self._window.end:
            self.finish()
        if self._offset is None or self.published is not None:
            return
        copy = copy_packet(packet)
        copy.pts = packet.pts - self._offset
        copy.dts = None if packet.dts is None else packet.dts - self._offset
        copy.stream = self._stream
        self._container.mux(copy)

    def finish(self) -> str | None:
        """Close and publish (if anything was kept); returns the published name, if any."""
        if self.published is None and self._offset is not None:
            self._container.close()
            self.published = self._staging.publish(NAME)
        return self.published

    def close(self) -> None:
        """Give up: close without publishing (the job failed; see RenditionWriter.close)."""
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()
