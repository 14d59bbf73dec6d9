from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from media.encoding import AUDIO_BITRATES
from media.errors import MediaError
from media.ladder import plan_ladder
from media.transcode import transcode
from proto.media import MediaManifest, Probed, Progress, RenditionReady, WorkerFrame
from tests.media import probing
from tests.media.conftest import ClipShelf

STREAM_INF = re.compile(r"#EXT-X-STREAM-INF:(.*)\n(.*)")


@dataclass
class Seen:
    """What was on disk when a rendition was announced playable."""

    playlist: str
    mp4_published: bool
    master: str


@dataclass
class Job:
    outdir: Path
    manifest: MediaManifest
    frames: list[WorkerFrame] = field(default_factory=list)
    seen: dict[str, Seen] = field(default_factory=dict)

    def path(self, name: str | None) -> Path:
        assert name is not None
        return self.outdir / name

    def mp4s(self) -> list[Path]:
        return [self.path(r.mp4) for r in self.manifest.renditions]


def run(
    source: Path, outdir: Path, *, hls_output: bool = True, preview_seconds: float = 10.0
) -> Job:
    frames: list[WorkerFrame] = []
    seen: dict[str, Seen] = {}

    def progress(frame: WorkerFrame) -> None:
        frames.append(frame)
        if isinstance(frame, RenditionReady) and frame.rendition.playlist:
            master = outdir / "hls" / "master.m3u8"
            seen[frame.rendition.label] = Seen(
                (outdir / frame.rendition.playlist).read_text(),
                (outdir / f"{frame.rendition.label}.mp4").exists(),
                master.read_text() if master.exists() else "",
            )

    outdir.mkdir()
    manifest = transcode(
        source, outdir, progress, hls_output=hls_output, preview_seconds=preview_seconds
    )
    return Job(outdir, manifest, frames, seen)


@pytest.fixture(scope="module")
def landscape(shelf: ClipShelf, tmp_path_factory: pytest.TempPathFactory) -> Job:
    outdir = tmp_path_factory.mktemp("landscape") / "out"
    return run(shelf.get("landscape.mp4"), outdir, preview_seconds=2.0)


def test_each_rendition_is_h264_with_aac_at_its_ladder_size(landscape: Job) -> None:
    assert [(r.label, r.width, r.height) for r in landscape.manifest.renditions] == [
        (rung.label, rung.width, rung.height) for rung in plan_ladder(854, 480)
    ]
    for rendition, mp4 in zip(landscape.manifest.renditions, landscape.mp4s(), strict=True):
        video, audio = probing.streams(mp4)
        assert (video.codec, video.width, video.height) == (
            "h264",
            rendition.width,
            rendition.height,
        )
        assert (video.pix_fmt, video.profile) == ("yuv420p", "High")
        assert (audio.kind, audio.codec) == ("audio", "aac")
        assert probing.duration(mp4, "audio") == pytest.approx(6.0, abs=0.1)
        assert probing.duration(mp4) == pytest.approx(6.0, abs=0.01)


def test_keyframes_fall_at_the_same_times_in_every_rendition(
    landscape: Job,
) -> None:
    keyframes = [probing.keyframe_times(mp4) for mp4 in landscape.mp4s()]
    assert keyframes[0] == [0.0, 1.0, 3.0, 5.0]  # a short first segment, then two seconds
    assert all(times == keyframes[0] for times in keyframes)


def test_the_encoder_uses_the_ladder_settings(landscape: Job) -> None:
    # x264 writes its settings into the stream (an SEI message).
    for rendition, rung in zip(landscape.manifest.renditions, plan_ladder(854, 480), strict=True):
        settings = landscape.path(rendition.mp4).read_bytes()
        for option in (
            "keyint=20",
            "scenecut=0",
            "crf=23.0",
            f"vbv_maxrate={rung.maxrate // 1000}",
        ):
            assert option.encode() in settings


def test_mp4s_start_with_their_index_for_progressive_playback(landscape: Job) -> None:
    for mp4 in [*landscape.mp4s(), landscape.path(landscape.manifest.preview)]:
        boxes = probing.box_order(mp4)
        assert boxes.index("moov") < boxes.index("mdat")


def test_the_master_playlist_lists_every_rendition_for_players(landscape: Job) -> None:
    master = landscape.path(landscape.manifest.hls_master).read_text()
    variants = {uri: attributes for attributes, uri in STREAM_INF.findall(master)}
    for rendition in landscape.manifest.renditions:
        attributes = variants[f"{rendition.label}/index.m3u8"]
        assert f"RESOLUTION={rendition.width}x{rendition.height}" in attributes
        assert re.search(r'CODECS="avc1\.64[0-9a-f]{4},mp4a\.40\.2"', attributes)
        bandwidth = re.search(r"(?<!-)BANDWIDTH=(\d+)", attributes)
        assert bandwidth is not None
        assert 0 < int(bandwidth.group(1)) < 3 * (rendition.bitrate + AUDIO_BITRATES[1])


def test_playlists_are_finished_vod_lists_of_aligned_segments(landscape: Job) -> None:
    for rendition in landscape.manifest.renditions:
        playlist = landscape.path(rendition.playlist)
        text = playlist.read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", text)]
        assert durations == pytest.approx([1.0, 2.0, 2.0, 1.0])
        for segment in re.findall(r"^segment_\d+\.m4s$", text, re.MULTILINE):
            assert (playlist.parent / segment).stat().st_size > 0


def test_the_manifest_names_files_that_exist_and_nothing_is_left_half_written(
    landscape: Job,
) -> None:
    manifest = landscape.manifest
    assert manifest.storyboard is not None
    named = [manifest.thumbnail, manifest.preview, manifest.hls_master]
    named += [manifest.storyboard.image, manifest.storyboard.vtt]
    named += [r.mp4 for r in manifest.renditions] + [r.playlist for r in manifest.renditions]
    assert all(landscape.path(name).is_file() for name in named)
    leftovers = [p for p in landscape.outdir.rglob("*") if p.suffix in (".part", ".tmp")]
    assert leftovers == []
    assert manifest.duration == pytest.approx(6.0)
    assert manifest.has_audio


def test_bitrates_are_measured_on_the_finished_files(landscape: Job) -> None:
    for rendition, mp4 in zip(landscape.manifest.renditions, landscape.mp4s(), strict=True):
        assert rendition.bitrate == pytest.approx(mp4.stat().st_size * 8 / 6.0, rel=0.01)


def test_progress_runs_from_probing_to_done(landscape: Job) -> None:
    frames = landscape.frames
    assert isinstance(frames[0], Progress)
    assert frames[0].stage == "probing"
    probed = frames[1]
    assert isinstance(probed, Probed)
    assert (probed.width, probed.height, probed.fps, probed.has_audio) == (854, 480, 10.0, True)
    progress = [f for f in frames if isinstance(f, Progress)]
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions)
    assert progress[-1].fraction == 1.0
    assert progress[-1].frames_done == 60
    assert {p.stage for p in progress} == {"probing", "transcoding", "packaging"}


def test_the_poster_and_storyboard_come_from_the_video(landscape: Job) -> None:
    manifest = landscape.manifest
    assert manifest.storyboard is not None
    poster = probing.picture(landscape.path(manifest.thumbnail))
    assert poster.shape == (480, 854, 3)
    assert probing.upright(poster)
    vtt = landscape.path(manifest.storyboard.vtt).read_text()
    assert vtt.count("storyboard.jpg#xywh=") == 6


def test_the_preview_is_a_short_silent_clip_of_the_smallest_rendition(landscape: Job) -> None:
    preview = landscape.path(landscape.manifest.preview)
    (video,) = probing.streams(preview)
    smallest = landscape.manifest.renditions[-1]
    assert (video.codec, video.width, video.height) == ("h264", smallest.width, smallest.height)
    assert probing.duration(preview) == pytest.approx(2.0)  # keyframes at 1 s and 3 s


def test_a_rendition_is_playable_long_before_the_job_ends(shelf: ClipShelf, tmp_path: Path) -> None:
    job = run(shelf.get("long_small.mp4"), tmp_path / "out")
    (label,) = job.seen
    seen = job.seen[label]
    assert "#EXTINF:" in seen.playlist
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in seen.playlist
    assert "#EXT-X-ENDLIST" not in seen.playlist
    assert not seen.mp4_published
    assert f"{label}/index.m3u8" in seen.master
    ready = [f for f in job.frames if isinstance(f, RenditionReady)]
    assert [r.rendition.mp4 for r in ready] == [None]
    assert job.manifest.renditions[0].mp4 == f"{label}.mp4"


@pytest.mark.parametrize("clip", ["portrait_phone.mp4", "upside_down.mp4"])
def test_a_rotated_video_comes_out_upright(shelf: ClipShelf, tmp_path: Path, clip: str) -> None:
    job = run(shelf.get(clip), tmp_path / "out")
    (rendition,) = job.manifest.renditions
    expected = (180, 320) if clip == "portrait_phone.mp4" else (320, 180)
    assert (rendition.width, rendition.height) == expected
    assert probing.upright(probing.picture(job.path(rendition.mp4)))
    assert probing.upright(probing.picture(job.path(job.manifest.thumbnail)))
    assert probing.picture(job.path(job.manifest.thumbnail)).shape[:2] == expected[::-1]


def test_a_ten_bit_source_becomes_eight_bit_4_2_0(shelf: ClipShelf, tmp_path: Path) -> None:
    job = run(shelf.get("ten_bit.mp4"), tmp_path / "out")
    video, _ = probing.streams(job.mp4s()[0])
    assert (video.pix_fmt, video.profile) == ("yuv420p", "High")


def test_a_variable_frame_rate_source_plays_at_a_constant_rate(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    job = run(shelf.get("variable_rate.mp4"), tmp_path / "out")
    times = probing.frame_times(job.mp4s()[0])
    assert times == pytest.approx([i / 10 for i in range(20)])
    assert probing.keyframe_times(job.mp4s()[0]) == [0.0, 1.0]


def test_a_silent_video_gets_no_audio_track(shelf: ClipShelf, tmp_path: Path) -> None:
    job = run(shelf.get("silent.mp4"), tmp_path / "out")
    assert not job.manifest.has_audio
    assert probing.kinds(job.mp4s()[0]) == ["video"]
    master = job.path(job.manifest.hls_master).read_text()
    assert "mp4a" not in master
    assert 'CODECS="avc1.' in master


@pytest.mark.parametrize(
    ("clip", "size"), [("odd.mp4", (320, 180)), ("scaled_1918.mp4", (318, 180))]
)
def test_odd_sizes_become_even(
    shelf: ClipShelf, tmp_path: Path, clip: str, size: tuple[int, int]
) -> None:
    job = run(shelf.get(clip), tmp_path / "out")
    video, _ = probing.streams(job.mp4s()[0])
    assert (video.width, video.height) == size
    assert video.pix_fmt == "yuv420p"


def test_without_hls_a_rendition_is_ready_when_its_mp4_is(shelf: ClipShelf, tmp_path: Path) -> None:
    job = run(shelf.get("small.mp4"), tmp_path / "out", hls_output=False)
    ready = [f.rendition for f in job.frames if isinstance(f, RenditionReady)]
    assert [(r.mp4, r.playlist) for r in ready] == [("90p.mp4", None)]
    assert job.manifest.hls_master is None
    assert not (tmp_path / "out" / "hls").exists()


def test_a_file_cut_short_fails_and_leaves_nothing_behind(shelf: ClipShelf, tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "upload.mkv").write_bytes(b"the pool's own file")
    with pytest.raises(MediaError, match=r"the file is truncated: the video stops at \d"):
        transcode(shelf.get("truncated.mkv"), outdir, lambda frame: None)
    assert [p.name for p in outdir.iterdir()] == ["upload.mkv"]


def test_a_job_stopped_by_its_progress_callback_leaves_nothing_behind(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    class Stop(Exception):
        pass

    def stop_when_playable(frame: WorkerFrame) -> None:
        if isinstance(frame, RenditionReady):
            raise Stop

    with pytest.raises(Stop):
        transcode(shelf.get("long_small.mp4"), tmp_path, stop_when_playable)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_video_fails_before_writing_anything(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    with pytest.raises(MediaError, match="not a video file"):
        transcode(shelf.get("notes.mp4"), tmp_path, lambda frame: None)
    assert list(tmp_path.iterdir()) == []


def test_the_playable_variant_is_capped_before_it_is_measured(landscape: Job) -> None:
    for label, seen in landscape.seen.items():
        rung = next(r for r in plan_ladder(854, 480) if r.label == label)
        assert f"BANDWIDTH={rung.maxrate + AUDIO_BITRATES[1]}," in seen.master


def test_a_failure_inside_a_rendition_stops_the_job_and_removes_its_files(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    def pull_the_volume(frame: WorkerFrame) -> None:
        if isinstance(frame, RenditionReady):
            shutil.rmtree(tmp_path / "hls")  # the muxer's next segment has nowhere to go

    with pytest.raises(FileNotFoundError, match=r"hls/90p"):
        transcode(shelf.get("long_small.mp4"), tmp_path, pull_the_volume)
    assert list(tmp_path.iterdir()) == []


def test_each_rendition_names_its_codecs_as_the_master_does_and_its_mp4s_size(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    job = run(shelf.get("small.mp4"), tmp_path / "out")
    master = job.path(job.manifest.hls_master).read_text()
    ready = [f.rendition for f in job.frames if isinstance(f, RenditionReady)]
    for rendition in [*ready, *job.manifest.renditions]:
        assert rendition.codecs is not None
        assert rendition.codecs.endswith(",mp4a.40.2")
        assert f'CODECS="{rendition.codecs}"' in master
    for rendition in [*ready, *job.manifest.renditions]:
        mp4 = rendition.mp4
        assert rendition.size == (None if mp4 is None else job.path(mp4).stat().st_size)
