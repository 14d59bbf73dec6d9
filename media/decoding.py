"""Decoding that survives a damaged packet, as players and the ffmpeg command line do."""

from __future__ import annotations

from typing import Any, overload

import av
from av.audio.frame import AudioFrame
from av.packet import Packet
from av.stream import Stream
from av.subtitles.subtitle import AssSubtitle, BitmapSubtitle
from av.video.frame import VideoFrame
from av.video.stream import VideoStream


# As Packet.decode's own overloads: a video packet's frames are pictures.
@overload
def decode_tolerantly(packet: Packet[VideoStream]) -> list[VideoFrame]: ...
@overload
def decode_tolerantly(
    packet: Packet[Stream],
) -> list[VideoFrame | AudioFrame | AssSubtitle | BitmapSubtitle]: ...
def decode_tolerantly(packet: Packet[Any]) -> list[Any]:
    """The frames in `packet`; none when the packet is damaged (a glitch, not a failed job).

    A file that is damaged throughout still fails: probing finds no picture, and the
    transcoder finds the video ends early.
    """
    try:
        return packet.decode()
    except av.InvalidDataError:
        return []
