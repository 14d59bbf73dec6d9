"""One rendition being written: its encoder, its progressive MP4 and its HLS playlist.

The rendition's x264 encoder lives in its MP4 container; every packet it makes is muxed into
the MP4 (written as `.part`, with `faststart` so the index comes first and range requests can
play it) and into the rendition's HLS muxer, and into the preview clip when this is the
rendition that feeds it. Audio packets come already encoded (`SharedAudio`).

Built in the decoding thread, then used by exactly one lane thread; `on_playable` is called
from that thread once, when the HLS playlist first lists a segment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

from media import hls
from media.audio import SharedAudio, copy_packet
from media.encoding import AUDIO_CODECS_TAG, VIDEO_CODEC, first_segment_end, x264_options
from media.ladder import Rung
from media.preview import PreviewWindow, PreviewWriter
from media.staging import Staging
from proto.media import Rendition


@dataclass(frozen=True)
class FinishedRendition:
    rendition: Rendition
    variant: hls.Variant | None  # its line in the master playlist, measured
    preview: str | None  # the preview clip it fed, if any


class RenditionWriter:
    def __init__(
        self,
        rung: Rung,
        rate: Fraction,
        staging: Staging,
        audio: SharedAudio | None,
        hls_dir: Path | None,
        preview: PreviewWindow | None,
        on_playable: Callable[[RenditionWriter], None],
        threads: int = 1,
    ) -> None:
        self.rung = rung
        self._rate = rate
        self._time_base = 1 / rate
        self._staging = staging
        self._audio_bitrate = audio.bitrate if audio else 0
        self._on_playable = on_playable
        self._mp4_name = f"{rung.label}.mp4"
        self._mp4 = av.open(
            str(staging.part(self._mp4_name)), "w", format="mp4", options={"movflags": "+faststart"}
        )
        self._video = self._mp4.add_stream(VIDEO_CODEC, rate=rate, options=x264_options(rung, rate))
        self._video.width = rung.width
        self._video.height = rung.height
        self._video.pix_fmt = "yuv420p"
        # Frame threads, as the ffmpeg command line uses: PyAV opens encoders with slice
        # threads, and the choice must be made before the encoder opens. `threads` is set by
        # the caller: the renditions encode side by side, each frame thread holds frames, and
        # only the largest rendition needs more than its own lane's thread to keep pace.
        self._video.thread_type = "AUTO"
        self._video.codec_context.thread_count = threads
        streams: list[Stream] = [self._video]
        self._audio = None
        if audio:
            self._audio = self._mp4.add_stream_from_template(audio.stream, opaque=True)
            streams.append(self._audio)
        # Opening the encoder now makes its parameter sets (avcC) part of the stream, so the
        # HLS muxer and the preview can copy a complete stream from it.
        self._mp4.start_encoding()
        codecs = hls.avc_codecs_tag(self._video.codec_context.extradata or b"")
        self._codecs = f"{codecs},{AUDIO_CODECS_TAG}" if audio else codecs
        self._hls: av.container.OutputContainer | None = None
        self._playlist: Path | None = None
        if hls_dir is not None:
            self._playlist = hls_dir / hls.PLAYLIST
            self._hls = av.open(
                str(self._playlist), "w", format="hls", options=hls.muxer_options(hls_dir)
            )
            for stream in streams:
                self._hls.add_stream_from_template(stream, opaque=True)
        self._preview = PreviewWriter(staging, self._video, preview) if preview else None
        self._ticks = 0  # output frames encoded
        self._first_segment_end = first_segment_end(rate)
        self._scaler = VideoReformatter()
        self._announced = self._playlist is None

    @property
    def _playlist_name(self) -> str | None:
        if self._playlist is None:
            return None
        return self._playlist.relative_to(self._staging.outdir).as_posix()

    def add_video(self, frame: VideoFrame, ticks: range) -> None:
        """Encode `frame` for each output tick in `ticks` (a repeated frame is scaled once)."""
        # One scaler per rendition, single-threaded: a new scaling context (and its thread
        # pool) per frame, as `frame.reformat` makes, costs more than the scaling itself.
        picture = self._scaler.reformat(
            frame,
            self.rung.width,
            self.rung.height,
            "yuv420p",
            interpolation=Interpolation.BICUBIC,
            threads=1,
        )
        for tick in ticks:
            picture.pts = tick
            picture.time_base = self._time_base
            forced = tick == self._first_segment_end
            picture.pict_type = PictureType.I if forced else PictureType.NONE
            self._mux(self._video.encode(picture))
        self._ticks = ticks.stop

    def add_audio(self, packet: Packet) -> None:
        own = copy_packet(packet)
        if self._audio is not None:
            own.stream = self._audio  # the same index in the MP4 and the HLS muxer
        self._mux([own])

    def playable_rendition(self) -> Rendition:
        """The rendition as a player may use it before it is finished: HLS only, bit rate capped."""
        return Rendition(
            label=self.rung.label,
            width=self.rung.width,
            height=self.rung.height,
            bitrate=self.rung.maxrate + self._audio_bitrate,
            playlist=self._playlist_name,
            codecs=self._codecs,
        )

    def playable_variant(self) -> hls.Variant:
        """Its master playlist line before it is finished: the caps stand for the peak."""
        return self._variant(hls.Bandwidth(self.rung.maxrate + self._audio_bitrate, 0))

    def finish(self) -> FinishedRendition:
        """Flush the encoder, close every output and publish it."""
        self._mux(self._video.encode(None))
        self._mp4.close()
        self._staging.publish(self._mp4_name)
        preview = self._preview.finish() if self._preview is not None else None
        variant = None
        if self._hls is not None and self._playlist is not None:
            self._hls.close()
            hls.finish_playlist(self._playlist)
            variant = self._variant(hls.measure_bandwidth(self._playlist))
        size = (self._staging.outdir / self._mp4_name).stat().st_size
        rendition = Rendition(
            label=self.rung.label,
            width=self.rung.width,
            height=self.rung.height,
            bitrate=round(size * 8 * self._rate / max(1, self._ticks)),
            mp4=self._mp4_name,
            playlist=self._playlist_name,
            codecs=self._codecs,
            size=size,
        )
        return FinishedRendition(rendition, variant, preview)

    def close(self) -> None:
        """Give up: close every output without publishing (the job failed).

        The job's error is already on its way; a muxer that fails again while closing (its
        trailer cannot be written after what went wrong) has nothing to add to it.
        """
        for container in (self._mp4, self._hls):
            if container is not None:
                with contextlib.suppress(av.FFmpegError, OSError):
                    container.close()
        if self._preview is not None:
            self._preview.close()

    def _mux(self, packets: list[Packet]) -> None:
        for packet in packets:
            if self._preview is not None and packet.stream_index == self._video.index:
                self._preview.add(packet)
            self._mp4.mux_one(packet)
            if self._hls is not None:
                self._hls.mux_one(packet)
        if (
            not self._announced
            and self._playlist is not None
            and hls.lists_a_segment(self._playlist)
        ):
            self._announced = True
            self._on_playable(self)

    def _variant(self, bandwidth: hls.Bandwidth) -> hls.Variant:
        return hls.Variant(
            uri=f"{self.rung.label}/{hls.PLAYLIST}",
            width=self.rung.width,
            height=self.rung.height,
            frame_rate=float(self._rate),
            codecs=self._codecs,
            bandwidth=bandwidth.peak,
            average_bandwidth=bandwidth.average or None,
        )
