"""What the tests read back from outputs, with PyAV: streams, keyframes, frame times, pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from media.isobmff import top_level_boxes


@dataclass(frozen=True)
class StreamInfo:
    kind: str  # "video" / "audio"
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    profile: str | None


def streams(path: Path) -> list[StreamInfo]:
    with av.open(str(path)) as container:
        return [
            StreamInfo(
                s.type,
                s.codec_context.name,
                s.codec_context.width if s.type == "video" else 0,
                s.codec_context.height if s.type == "video" else 0,
                s.codec_context.pix_fmt if s.type == "video" else None,
                s.profile,
            )
            for s in container.streams
        ]


def kinds(path: Path) -> list[str]:
    return [s.kind for s in streams(path)]


def keyframe_times(path: Path) -> list[float]:
    """Presentation times (seconds) of the video's keyframes, from the packets."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return sorted(
            round(float(p.pts * p.time_base), 3)
            for p in container.demux(video)
            if p.pts is not None and p.is_keyframe
        )


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [round(f.time, 4) for f in container.decode(video=0)]


def picture(path: Path, index: int = 0) -> np.ndarray:
    """The index-th decoded picture as RGB (h x w x 3)."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise IndexError(index)


def upright(rgb: np.ndarray) -> bool:
    """Whether a test picture (media.synthetic) shows its red band on top, green on the left."""
    height, width, _ = rgb.shape
    top = rgb[: height // 16, width // 5 :].reshape(-1, 3).mean(axis=0)
    left = rgb[height // 4 :, : width // 20].reshape(-1, 3).mean(axis=0)
    return bool(top[0] > 150 > top[1] and left[1] > 150 > left[0])


def box_order(path: Path) -> list[str]:
    return [box.kind for box in top_level_boxes(path)]


def duration(path: Path, kind: str = "video") -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        return float(stream.duration * stream.time_base)
