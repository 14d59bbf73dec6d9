"""Decoding that survives a damaged packet, as players and the ffmpeg command line do."""

from __future__ import annotations

import av
from av.frame import Frame
from av.packet import Packet


def decode_tolerantly(packet: Packet) -> list[Frame]:
    """The frames in `packet`; none when the packet is damaged (a glitch, not a failed job).

    A file that is damaged throughout still fails: probing finds no picture, and the
    transcoder finds the video ends early.
    """
    try:
        return packet.decode()
    except av.InvalidDataError:
        return []
