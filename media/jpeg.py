"""JPEG images from video frames, with FFmpeg's own encoder (no imaging library needed)."""

from __future__ import annotations

from fractions import Fraction

import av
from av.video.frame import VideoFrame
from av.video.reformatter import ColorRange

# MJPEG quantiser, 2 (best) to 31: 3 is indistinguishable from the video for a poster, and a
# storyboard of many small tiles still fits in tens of kilobytes.
POSTER_QUALITY = 3
TILE_QUALITY = 5


def encode_jpeg(frame: VideoFrame, quality: int) -> bytes:
    """One JPEG image of `frame` at its own size (any pixel format)."""
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = frame.width
    encoder.height = frame.height
    # JPEG's convention: 4:2:0 at full range (0-255), not video's 16-235.
    encoder.pix_fmt = "yuv420p"
    encoder.color_range = ColorRange.JPEG
    encoder.time_base = Fraction(1)
    encoder.qmin = encoder.qmax = quality
    picture = frame.reformat(format="yuv420p", dst_color_range=ColorRange.JPEG)
    picture.pts = 0
    packets = encoder.encode(picture) + encoder.encode(None)
    return b"".join(bytes(p) for p in packets)
