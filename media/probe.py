"""What an uploaded file holds, learned cheaply before any transcoding starts.

`probe` opens the file, picks its video stream, decodes one frame (which proves the video can be
decoded and carries the display matrix) and reads the timestamps of the first packets (which
tell a variable frame rate from a constant one). Anything that makes the file unusable becomes a
`MediaError` with a reason a person understands.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from media import isobmff
from media.decoding import decode_tolerantly
from media.errors import MediaError

# Packets whose timestamps are compared to tell a variable frame rate (phones, screen
# recorders) from a constant one; a few seconds of video is enough and reads little.
_TIMING_PACKETS = 120
# Frame intervals that differ by more than this ratio mean a variable frame rate; timestamps
# rounded to a coarse time base (1/1000 s in Matroska: 33 and 34 ms at 30 fps) stay below it.
_VFR_RATIO = 1.2


@dataclass(frozen=True)
class ResolutionLimit:
    """The largest picture a job accepts: a decoder needs memory in proportion to its pixels."""

    max_side: int = 8192
    max_pixels: int = 4096 * 4096

    def check(self, width: int, height: int) -> None:
        """Raise MediaError when a width x height picture is above the limit."""
        if max(width, height) > self.max_side:
            raise MediaError(
                f"resolution {width}x{height} is above the limit of {self.max_side} pixels a side"
            )
        if width * height > self.max_pixels:
            raise MediaError(
                f"resolution {width}x{height} is above the limit of "
                f"{self.max_pixels / 1e6:.1f} megapixels"
            )


@dataclass(frozen=True)
class SourceInfo:
    duration: float  # seconds of video
    width: int  # as displayed: after rotation
    height: int
    rotation: int  # clockwise degrees that turn the coded picture upright: 0, 90, 180 or 270
    fps: Fraction  # average frame rate as stored
    vfr: bool  # frame intervals vary
    pix_fmt: str  # of the coded picture, e.g. "yuv420p10le"
    bit_depth: int
    codec: str  # of the video, e.g. "h264"
    audio_channels: int  # of the first audio stream; 0: no audio
    start_time: float  # seconds: the earliest start of the video and audio streams


def probe(path: Path, limit: ResolutionLimit | None = None) -> SourceInfo:
    """Describe the video in `path`, or raise MediaError saying why it cannot be transcoded."""
    limit = limit or ResolutionLimit()
    _check_file(path)
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise MediaError(_unopenable_reason(path)) from exc
    with container:
        # FFmpeg reads a picture as a one-frame video; as a lecture it is a mistake.
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            raise MediaError("the file is a still image, not a video")
        video = video_stream(container)
        limit.check(video.codec_context.width, video.codec_context.height)
        audio = container.streams.audio[0] if container.streams.audio else None
        first, packet_times = _first_frame_and_packet_times(container, video)
        rotation = _rotation(first, video)
        coded = (first.width, first.height)
        width, height = coded if rotation in (0, 180) else coded[::-1]
        starts = [_seconds(s.start_time, s.time_base) for s in (video, audio) if s is not None]
        return SourceInfo(
            duration=_duration(container, video),
            width=width,
            height=height,
            rotation=rotation,
            fps=_frame_rate(video, packet_times),
            vfr=_varies(packet_times),
            pix_fmt=first.format.name,
            bit_depth=max(c.bits for c in first.format.components),
            codec=video.codec_context.name,
            audio_channels=audio.codec_context.channels if audio else 0,
            start_time=min((s for s in starts if s is not None), default=0.0),
        )


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError("the file does not exist") from None
    if size == 0:
        raise MediaError("the file is empty")
    with path.open("rb") as file:
        head = file.read(8)
    # An MP4 cut short still opens when its index (moov) comes first, then plays until the cut;
    # its box sizes say so before anything is decoded.
    if isobmff.looks_like_isobmff(head) and isobmff.is_truncated(path):
        raise MediaError("the file is truncated")


def _unopenable_reason(path: Path) -> str:
    with path.open("rb") as file:
        head = file.read(8)
    if isobmff.looks_like_isobmff(head):
        return "the file is damaged: it looks like an MP4 but cannot be read"
    return "not a video file"


def video_stream(container: InputContainer) -> VideoStream:
    """The container's video: its first video stream that is not a still picture."""
    for stream in container.streams.video:
        # Cover art in a music file is a one-picture "video" stream: not a video.
        if not stream.disposition & Disposition.attached_pic:
            return stream
    if container.streams.audio:
        raise MediaError("the file has no video stream")
    raise MediaError("not a video file")


def _first_frame_and_packet_times(
    container: InputContainer, video: VideoStream
) -> tuple[VideoFrame, list[float]]:
    first: VideoFrame | None = None
    times: list[float] = []
    for packet in container.demux(video):
        if packet.pts is not None and packet.time_base is not None:
            times.append(float(packet.pts * packet.time_base))
        if first is None:
            # The last packet demux yields is empty: decoding it flushes the decoder.
            frames = decode_tolerantly(packet)
            first = frames[0] if frames else None
        if first is not None and len(times) >= _TIMING_PACKETS:
            break
    if first is None:
        raise MediaError("the video cannot be decoded")
    return first, times


def _rotation(frame: VideoFrame, video: VideoStream) -> int:
    # The display matrix (what phones write) reaches decoded frames as counter-clockwise
    # degrees; some containers carry only the older clockwise "rotate" tag.
    degrees = -frame.rotation if frame.rotation else _number(video.metadata.get("rotate"))
    return round(degrees / 90) % 4 * 90


def _number(text: str | None) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def _duration(container: InputContainer, video: VideoStream) -> float:
    seconds = _seconds(video.duration, video.time_base)
    if not seconds and container.duration:
        seconds = container.duration / av.time_base
    if not seconds:
        raise MediaError("the video has no duration")
    return seconds


def _frame_rate(video: VideoStream, packet_times: list[float]) -> Fraction:
    rate = video.average_rate or video.guessed_rate
    if rate:
        return Fraction(rate)
    intervals = _intervals(packet_times)
    if not len(intervals):
        raise MediaError("the video has no frame rate")
    return Fraction(1 / float(np.median(intervals))).limit_denominator(1001)


def _varies(packet_times: list[float]) -> bool:
    intervals = _intervals(packet_times)
    return len(intervals) >= 2 and bool(intervals.max() / intervals.min() > _VFR_RATIO)


def _intervals(packet_times: list[float]) -> np.ndarray:
    # Packets come in decoding order (B-frames reorder them): sort to get display intervals.
    intervals = np.diff(np.sort(np.asarray(packet_times)))
    return intervals[intervals > 0]


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)
