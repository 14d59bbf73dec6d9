"""The soundtrack, encoded once to AAC and muxed into every rendition."""

from __future__ import annotations

import io
from fractions import Fraction

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.packet import Packet

from media.encoding import AUDIO_BITRATES, AUDIO_CODEC, AUDIO_RATE, audio_channels

_GAP_SECONDS = 0.04  # a jump in timestamps this large is a gap in the sound, not jitter


class SharedAudio:
    """One AAC encoder whose packets every rendition muxes (not one encoder per rendition).

    An output stream can only be made from another stream (`add_stream_from_template`), and
    PyAV completes a stream's codec parameters (AAC's AudioSpecificConfig among them) only when
    its container writes a header. So the encoder lives in a container that writes nothing but
    its header, in memory, and each rendition copies its audio stream from `stream`.
    Used by the decoding thread only; renditions get `copy_packet`s.
    """

    def __init__(self, source_channels: int) -> None:
        channels = audio_channels(source_channels)
        self.bitrate = AUDIO_BITRATES[channels]
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        self.stream: AudioStream = self._holder.add_stream(
            AUDIO_CODEC, rate=AUDIO_RATE, layout="mono" if channels == 1 else "stereo"
        )
        self.stream.bit_rate = self.bitrate
        self._holder.start_encoding()
        self._next: float | None = None  # seconds at which the next frame should start

    def encode(self, frame: AudioFrame, seconds: float) -> list[Packet]:
        """Encode a decoded frame that starts `seconds` into the output."""
        # Decoded timestamps jitter (a 1 ms time base rounds every frame), and frames that
        # overlap by a few samples are more than the encoder takes. So samples are counted,
        # and timestamps followed only across a real gap in the sound.
        if self._next is not None and seconds < self._next + _GAP_SECONDS:
            seconds = self._next
        self._next = seconds + frame.samples / frame.sample_rate
        frame.pts = round(seconds * frame.sample_rate)
        frame.time_base = Fraction(1, frame.sample_rate)
        return self.stream.encode(frame)

    def flush(self) -> list[Packet]:
        return self.stream.encode(None)

    def close(self) -> None:
        self._holder.close()


def copy_packet(packet: Packet) -> Packet:
    """A packet of one's own: muxing rewrites a packet's timestamps in place, so renditions
    muxing on their own threads must not share one."""
    copy = Packet(bytes(packet))
    copy.pts = packet.pts
    copy.dts = packet.dts
    copy.duration = packet.duration
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    return copy
