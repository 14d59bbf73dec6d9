"""The codec settings every rendition shares, in one place (the benchmark gives the same ones
to the ffmpeg command line, so the comparison is like for like).

H.264 from x264 at the `veryfast` preset with a constant quality (CRF 23) capped per rung, and
a closed GOP of exactly two seconds with scene-cut keyframes off: every rendition then has its
keyframes on the same frames, so HLS segments line up and a player can switch quality at any
segment boundary. One more keyframe, forced at one second in every rendition, makes the first
segment half as long: a player can start after one second of video is encoded, not two. AAC
at 48 kHz, encoded once and shared by every rendition.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final

from media.ladder import Rung

# Final: the literal type picks PyAV's add_stream overload (a VideoStream, an AudioStream).
VIDEO_CODEC: Final = "libx264"
PRESET = "veryfast"
CRF = 23
SEGMENT_SECONDS = 2
FIRST_SEGMENT_SECONDS = 1
AUDIO_CODEC: Final = "aac"
AUDIO_RATE = 48_000
AUDIO_BITRATES = {1: 96_000, 2: 128_000}  # by channel count: mono stays mono, more become stereo
# RFC 6381 name of AAC-LC, the profile FFmpeg's encoder writes.
AUDIO_CODECS_TAG = "mp4a.40.2"


def gop_frames(rate: Fraction) -> int:
    """Frames from one keyframe to the next: one HLS segment."""
    return max(1, round(rate * SEGMENT_SECONDS))


def first_segment_end(rate: Fraction) -> int:
    """The frame that gets the forced keyframe ending the short first segment."""
    return max(1, round(rate * FIRST_SEGMENT_SECONDS))


def x264_options(rung: Rung, rate: Fraction) -> dict[str, str]:
    gop = str(gop_frames(rate))
    return {
        "preset": PRESET,
        "crf": str(CRF),
        "maxrate": str(rung.maxrate),
        "bufsize": str(rung.bufsize),
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": "0",
    }


def audio_channels(source_channels: int) -> int:
    return 1 if source_channels == 1 else 2
