"""The transcoder's messages: what a worker is asked to do and what it reports back.

A worker is a process (`python -m media.worker`) that reads one `TranscodeSpec` as JSON on stdin
and writes `WorkerFrame`s to stdout, each as a 4-byte big-endian length followed by that many
bytes of JSON (`encode_frame` / `FrameReader`). The last frame is `Done` or `Failed`.
"""

from __future__ import annotations

import struct

import msgspec

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 20


class Rendition(msgspec.Struct, frozen=True, gc=False):
    """One playable quality. Paths are relative to the job's output directory."""

    label: str  # "1080p", "720p", "480p", "360p"; a source below 1080p adds its own size: "400p"
    width: int  # as displayed (portrait sources are taller than wide)
    height: int
    # Bits per second, video + audio: measured on the finished MP4; in a `RenditionReady` sent
    # while the job runs, the rendition's cap (the most it may use).
    bitrate: int
    # Progressive MP4 with faststart, e.g. "720p.mp4"; None while only the HLS playlist exists
    # (a `RenditionReady` sent while the job runs). Set in `Done`'s manifest.
    mp4: str | None = None
    playlist: str | None = None  # HLS media playlist, e.g. "hls/720p/index.m3u8"
    # RFC 6381 codecs, as the HLS master's CODECS attribute: "avc1.64001f,mp4a.40.2".
    codecs: str | None = None
    size: int | None = None  # bytes of the MP4, once it is complete


class Storyboard(msgspec.Struct, frozen=True, gc=False):
    image: str  # sprite sheet of scrub previews
    vtt: str  # WebVTT cues pointing into the sprite with #xywh=


class MediaManifest(msgspec.Struct, frozen=True, gc=False):
    """Everything a finished transcode produced."""

    duration: float
    renditions: list[Rendition]
    thumbnail: str
    storyboard: Storyboard | None
    preview: str | None
    hls_master: str | None
    has_audio: bool


class TranscodeSpec(msgspec.Struct, frozen=True, gc=False):
    source: str  # absolute path of the uploaded file
    outdir: str  # absolute path of a directory the worker owns for this job
    hls: bool = True
    preview_seconds: float = 10.0


class Probed(msgspec.Struct, frozen=True, gc=False, tag="probed"):
    duration: float
    width: int  # as displayed, after rotation
    height: int
    fps: float  # the constant frame rate of the renditions (a variable-rate source gets one)
    has_audio: bool
    rotation: int  # clockwise degrees the source is turned to display upright: 0/90/180/270


class Progress(msgspec.Struct, frozen=True, gc=False, tag="progress"):
    stage: str  # "probing" | "transcoding" | "packaging"
    fraction: float  # 0..1 of the whole job
    frames_done: int
    fps: float  # frames decoded per second of wall time
    eta_seconds: float | None


class RenditionReady(msgspec.Struct, frozen=True, gc=False, tag="rendition"):
    """A rendition became playable: its first HLS segment is listed (`mp4` is None then, and the
    HLS master playlist already lists it), or, without HLS, its MP4 is complete. Sent once per
    rendition, smallest first as a rule."""

    rendition: Rendition


class Done(msgspec.Struct, frozen=True, gc=False, tag="done"):
    manifest: MediaManifest


class Failed(msgspec.Struct, frozen=True, gc=False, tag="failed"):
    reason: str  # for a person: "not a video file", "the file is truncated", ...


WorkerFrame = Probed | Progress | RenditionReady | Done | Failed

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WorkerFrame)


def encode_frame(frame: WorkerFrame) -> bytes:
    body = _encoder.encode(frame)
    return FRAME_HEADER.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into frames: `feed(bytes)` returns the frames it completed."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray) -> list[WorkerFrame]:  # what trio streams yield
        """Add bytes; return every frame now complete. Raise ValueError on a corrupt stream."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= FRAME_HEADER.size:
            (size,) = FRAME_HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise ValueError(f"worker frame of {size} bytes exceeds {MAX_FRAME}")
            end = FRAME_HEADER.size + size
            if len(self._buffer) < end:
                break
            frames.append(_decoder.decode(bytes(self._buffer[FRAME_HEADER.size : end])))
            del self._buffer[:end]
        return frames
