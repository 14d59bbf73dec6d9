"""The pipeline: one source file in, a rendition ladder, HLS, poster, storyboard and preview out.

Theory of operation. The source is decoded once, in the calling thread, with FFmpeg's frame
threads. Each decoded picture is turned upright, shown to the poster picker and the storyboard,
and mapped onto the constant-rate output (`Cadence`); it then goes, as is, to every lane: a
thread owning one or more renditions, each with its own scaler, x264 encoder and muxers (see
`media.lane`). Audio is decoded in the same loop, encoded once to AAC here, and its packets go
to every lane too. Lanes report "first HLS segment listed" through a queue this thread drains
between pictures, so all progress reporting happens on the calling thread.

Everything is written under `.part` names or into the job's HLS directories and published by
rename when complete; any failure, including KeyboardInterrupt, abandons the lanes and removes
every file the job wrote.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame

from media import hls, preview, storyboard, thumbnail
from media.audio import SharedAudio
from media.decoding import decode_tolerantly
from media.errors import MediaError
from media.framerate import Cadence, output_rate
from media.ladder import plan_ladder
from media.lane import AudioItem, Lane, VideoItem
from media.probe import ResolutionLimit, SourceInfo, probe, video_stream
from media.progress import ProgressMeter
from media.rendition import FinishedRendition, RenditionWriter
from media.staging import Staging
from media.upright import Upright
from proto.media import (
    MediaManifest,
    Probed,
    RenditionReady,
    Storyboard,
    TranscodeSpec,
    WorkerFrame,
)

HLS_DIR = "hls"
MASTER = f"{HLS_DIR}/master.m3u8"
# Renditions at least this tall get a lane of their own; the smaller ones share one, as their
# scaling and encoding together cost less than the top rendition's.
OWN_LANE_HEIGHT = 720
# A video that stops this much (seconds, or share of the duration) before its stated duration
# was cut short: an incomplete upload.
_TRUNCATION_SECONDS, _TRUNCATION_SHARE = 2.0, 0.05

Progress = Callable[[WorkerFrame], None]


def transcode(
    source: Path,
    outdir: Path,
    progress: Progress,
    *,
    hls_output: bool = True,
    preview_seconds: float = 10.0,
    limit: ResolutionLimit | None = None,
) -> MediaManifest:
    """Transcode `source` into `outdir` (which the job owns) and describe what was made.

    `progress` is called on this thread with `Probed`, `Progress` and `RenditionReady` frames;
    an exception it raises stops the job like any other. Raises MediaError for a file that
    cannot be used, with the reason for a person.
    """
    meter = ProgressMeter(progress)
    meter.probing()
    info = probe(source, limit)
    meter.duration = info.duration
    rate = output_rate(info.fps)
    progress(
        Probed(
            duration=info.duration,
            width=info.width,
            height=info.height,
            fps=float(rate),
            has_audio=info.audio_channels > 0,
            rotation=info.rotation,
        )
    )
    staging = Staging(outdir)
    try:
        job = _Job(source, info, rate, staging, progress, meter, hls_output, preview_seconds)
        return job.run()
    except BaseException:
        staging.discard()
        raise


def run_spec(spec: TranscodeSpec, progress: Progress) -> MediaManifest:
    """`transcode` as a worker is asked to run it."""
    return transcode(
        Path(spec.source),
        Path(spec.outdir),
        progress,
        hls_output=spec.hls,
        preview_seconds=spec.preview_seconds,
    )


class _Job:
    def __init__(
        self,
        source: Path,
        info: SourceInfo,
        rate: Fraction,
        staging: Staging,
        progress: Progress,
        meter: ProgressMeter,
        hls_output: bool,
        preview_seconds: float,
    ) -> None:
        self._source = source
        self._info = info
        self._rate = rate
        self._staging = staging
        self._progress = progress
        self._hls_output = hls_output
        self._preview_window = preview.preview_window(info.duration, preview_seconds)
        self._meter = meter
        self._cadence = Cadence(rate)
        self._upright = Upright(info.rotation)
        self._poster = thumbnail.PosterPicker(info.duration, info.width, info.height)
        self._storyboard = storyboard.StoryboardBuilder(info.duration, info.width, info.height)
        self._playable: queue.SimpleQueue[RenditionWriter] = queue.SimpleQueue()
        self._announced: list[RenditionWriter] = []
        self._lanes: list[Lane] = []
        self._pending: VideoFrame | None = None  # the last picture: its ticks are not known yet
        self._last_seconds = 0.0

    def run(self) -> MediaManifest:
        audio = SharedAudio(self._info.audio_channels) if self._info.audio_channels else None
        try:
            writers = self._writers(audio)
            self._lanes = _lanes(writers)
            self._decode(audio)
            self._meter.packaging(self._cadence.ticks)
            for lane in self._lanes:
                lane.end_input()
            finished = [rendition for lane in self._lanes for rendition in lane.join()]
            finished.sort(key=lambda done: -done.rendition.width * done.rendition.height)
        except BaseException:
            for lane in self._lanes:
                lane.abandon()
            raise
        finally:
            if audio:
                audio.close()
        manifest = self._publish(finished)
        self._meter.done()
        return manifest

    def _writers(self, audio: SharedAudio | None) -> list[RenditionWriter]:
        ladder = plan_ladder(self._info.width, self._info.height)
        hls_root = self._staging.live_dir(HLS_DIR) if self._hls_output else None
        writers: list[RenditionWriter] = []
        try:
            for rung in ladder:
                hls_dir = None
                if hls_root is not None:
                    hls_dir = hls_root / rung.label
                    hls_dir.mkdir()
                # The smallest rendition feeds the preview: the cheapest clip to download.
                window = self._preview_window if rung is ladder[-1] else None
                writers.append(
                    RenditionWriter(
                        rung,
                        self._rate,
                        self._staging,
                        audio,
                        hls_dir,
                        window,
                        self._playable.put,
                        threads=_encoder_threads(rung is ladder[0]),
                    )
                )
        except BaseException:
            for writer in writers:
                writer.close()
            raise
        return writers

    def _decode(self, audio: SharedAudio | None) -> None:
        with av.open(str(self._source)) as container:
            video = video_stream(container)
            video.thread_type = "AUTO"
            streams: list[Stream] = [video]
            if audio is not None:
                streams.append(container.streams.audio[0])
            for packet in container.demux(streams):
                for frame in decode_tolerantly(packet):
                    if isinstance(frame, VideoFrame):
                        self._picture(frame)
                    elif audio is not None and isinstance(frame, AudioFrame):
                        self._sound(frame, audio)
        if self._pending is None:
            raise MediaError("the video cannot be decoded")
        end = self._last_seconds + float(1 / self._rate)
        self._send(VideoItem(self._pending, self._cadence.finish(end)))
        if audio is not None:
            for packet in audio.flush():
                self._send(AudioItem(packet))
        missing = self._info.duration - end
        if missing > max(_TRUNCATION_SECONDS, _TRUNCATION_SHARE * self._info.duration):
            raise MediaError(
                f"the file is truncated: the video stops at {end:.1f} s "
                f"of {self._info.duration:.1f} s"
            )

    def _picture(self, frame: VideoFrame) -> None:
        if frame.time is None:
            seconds = self._last_seconds + float(1 / self._rate)
        else:
            seconds = frame.time - self._info.start_time
        frame = self._upright(frame)
        # x264 follows the frame types a frame carries, and a decoded frame carries the
        # source's: its keyframes would break the GOPs aligned across renditions.
        frame.pict_type = PictureType.NONE
        self._poster.offer(frame, seconds)
        self._storyboard.offer(frame, seconds)
        ticks = self._cadence.next_frame(seconds)
        if self._pending is not None and ticks:
            self._send(VideoItem(self._pending, ticks))
        self._pending = frame
        self._last_seconds = seconds
        self._announce_playable()
        self._meter.transcoding(seconds, self._cadence.ticks)

    def _sound(self, frame: AudioFrame, audio: SharedAudio) -> None:
        if frame.time is None:
            return
        seconds = frame.time - self._info.start_time
        if seconds + frame.samples / frame.sample_rate <= 0:
            return
        for packet in audio.encode(frame, max(0.0, seconds)):
            self._send(AudioItem(packet))

    def _send(self, item: VideoItem | AudioItem) -> None:
        for lane in self._lanes:
            lane.put(item)

    def _announce_playable(self) -> None:
        while not self._playable.empty():
            writer = self._playable.get()
            self._announced.append(writer)
            # The master lists the renditions a player can use now; it is rewritten as more
            # become playable, then once more with measured bit rates.
            variants = [w.playable_variant() for w in self._announced]
            self._staging.write(MASTER, hls.master_playlist(variants).encode())
            self._progress(RenditionReady(writer.playable_rendition()))

    def _publish(self, finished: list[FinishedRendition]) -> MediaManifest:
        announced = {w.rung.label for w in self._announced}
        for done in finished:
            if done.rendition.label not in announced:
                self._progress(RenditionReady(done.rendition))
        variants = [done.variant for done in finished if done.variant is not None]
        if variants:
            self._staging.write(MASTER, hls.master_playlist(variants).encode())
        self._staging.write(thumbnail.NAME, self._poster.jpeg())
        self._staging.write(storyboard.IMAGE, self._storyboard.jpeg())
        self._staging.write(storyboard.VTT, self._storyboard.vtt(storyboard.IMAGE).encode())
        return MediaManifest(
            duration=float(self._cadence.ticks / self._rate),
            renditions=[done.rendition for done in finished],
            thumbnail=thumbnail.NAME,
            storyboard=Storyboard(image=storyboard.IMAGE, vtt=storyboard.VTT),
            preview=next((done.preview for done in finished if done.preview), None),
            hls_master=MASTER if variants else None,
            has_audio=self._info.audio_channels > 0,
        )


def _encoder_threads(top: bool) -> int:
    """x264 frame threads for a rendition. The top one is about half of all the encoding work
    and gets one a core; the others get one each: their lanes already run beside it, and every
    frame thread holds frames (about 40 MB less peak memory for a 1080p ladder, no slower in
    tests/bench/transcode.py)."""
    return len(os.sched_getaffinity(0)) if top else 1


def _lanes(writers: list[RenditionWriter]) -> list[Lane]:
    own = [w for w in writers if min(w.rung.width, w.rung.height) >= OWN_LANE_HEIGHT]
    # Smallest first within the shared lane: it then lists its first segment first.
    shared = sorted((w for w in writers if w not in own), key=lambda w: w.rung.pixels)
    return [Lane([w]) for w in own] + ([Lane(shared)] if shared else [])
