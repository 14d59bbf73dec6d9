"""Our transcoder beside the ffmpeg command line, on the same source in the same run.

Generates a 1080p30 source with sound (cached in the temp directory between runs), then runs
our worker (`python -m media.worker`: the 1080/720/480/360 ladder as MP4 + HLS, poster,
storyboard and preview) and one `ffmpeg` process making the same ladder from one decode
(`-filter_complex split`, the same x264 and AAC settings from `media.encoding`, each rendition
encoded once and muxed to MP4 and HLS through the `tee` muxer). Prints wall time, speed against
real time, time to first playable (our first `RenditionReady`; for ffmpeg, its first playlist
listing a segment), CPU time and peak RSS of each process, and the ratios against the targets.
The machine may be shared: `--rounds N` runs both N times, alternating, and reports medians.

    python -m tests.bench.transcode [--seconds 60] [--rounds 1]

Needs `ffmpeg` on the PATH (`make bench` installs it).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import proto
from media import hls
from media.encoding import (
    AUDIO_BITRATES,
    AUDIO_CODEC,
    AUDIO_RATE,
    CRF,
    FIRST_SEGMENT_SECONDS,
    PRESET,
    gop_frames,
)
from media.framerate import output_rate
from media.ladder import plan_ladder
from media.synthetic import Picture, write_clip
from proto.media import Done, FrameReader, RenditionReady, TranscodeSpec

WIDTH, HEIGHT, FPS = 1920, 1080, 30
# Ours against ffmpeg's (wall time, peak RSS), and time to first playable against our own wall.
WALL_TARGET, RSS_TARGET, FIRST_PLAYABLE_TARGET = 0.8, 1.0, 0.05


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # seconds, user + system, all threads
    peak_rss: int  # bytes
    first_playable: float | None  # seconds after start


def lecture_picture(width: int, height: int) -> Picture:
    """Frames with the texture and motion of a filmed lecture: a panned, grainy scene (what
    costs an encoder work) beside a slide that changes every few seconds."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 255, (height // 8 + 2, width // 4 + 2, 3), dtype=np.uint8)
    scene = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    grain = [rng.integers(-4, 5, (height, width // 2, 3), dtype=np.int16) for _ in range(6)]
    slides = []
    for seed in range(4):
        slide = np.full((height, width // 2, 3), 235, np.uint8)
        lines = np.random.default_rng(seed).integers(0, 2, (height // 40, width // 24))
        for row, line in enumerate(lines):
            for column, ink in enumerate(line):
                if ink:
                    y, x = row * 40 + 10, column * 24
                    slide[y : y + 20, x : x + 18] = 30
        slides.append(slide)

    def draw(index: int, seconds: float) -> np.ndarray:
        picture = np.empty((height, width, 3), np.uint8)
        x = int(seconds * 40) % (scene.shape[1] - width // 2)
        y = int(seconds * 15) % (scene.shape[0] - height)
        view = scene[y : y + height, x : x + width // 2].astype(np.int16) + grain[index % 6]
        picture[:, : width // 2] = np.clip(view, 0, 255)
        picture[:, width // 2 :] = slides[int(seconds // 5) % len(slides)]
        return picture

    return draw


def source_clip(seconds: float) -> Path:
    cache = Path(tempfile.gettempdir()) / "lms-bench-transcode"
    cache.mkdir(exist_ok=True)
    path = cache / f"lecture-{WIDTH}x{HEIGHT}p{FPS}-{seconds:g}s.mp4"
    if not path.exists():
        print(f"generating {path.name} (once; cached)...", flush=True)
        part = path.with_suffix(".part")
        write_clip(
            part,
            width=WIDTH,
            height=HEIGHT,
            seconds=seconds,
            fps=FPS,
            audio_channels=2,
            picture=lecture_picture(WIDTH, HEIGHT),
            crf=20,
        )
        part.rename(path)
    return path


def run_ours(source: Path, outdir: Path) -> Run:
    spec = TranscodeSpec(source=str(source), outdir=str(outdir))
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "media.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin
    assert process.stdout
    process.stdin.write(proto.encode(spec))
    process.stdin.close()
    reader = FrameReader()
    first_playable = None
    done = False
    while chunk := process.stdout.read1(65536):
        for frame in reader.feed(chunk):
            if isinstance(frame, RenditionReady) and first_playable is None:
                first_playable = time.monotonic() - started
            done = done or isinstance(frame, Done)
    usage = _reap(process.pid)
    wall = time.monotonic() - started
    if not done:
        raise SystemExit("our worker did not finish")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, first_playable)


def ffmpeg_command(source: Path, outdir: Path) -> list[str]:
    ladder = plan_ladder(WIDTH, HEIGHT)
    rate = output_rate(FPS)
    gop = str(gop_frames(rate))
    split = f"[0:v]split={len(ladder)}" + "".join(f"[s{i}]" for i in range(len(ladder)))
    scales = [f"[s{i}]scale={r.width}:{r.height}:flags=bicubic[v{i}]" for i, r in enumerate(ladder)]
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source)]
    command += ["-filter_complex", ";".join([split, *scales])]
    for i, rung in enumerate(ladder):
        directory = outdir / "hls" / rung.label
        directory.mkdir(parents=True)
        hls_options = ":".join(f"{k}={v}" for k, v in hls.muxer_options(directory).items())
        command += ["-map", f"[v{i}]", "-map", "0:a"]
        command += ["-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF)]
        command += ["-maxrate", str(rung.maxrate), "-bufsize", str(rung.bufsize)]
        command += ["-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
        command += ["-force_key_frames", str(FIRST_SEGMENT_SECONDS)]
        command += ["-c:a", AUDIO_CODEC, "-b:a", str(AUDIO_BITRATES[2]), "-ar", str(AUDIO_RATE)]
        command += ["-flags", "+global_header", "-f", "tee"]
        command.append(
            f"[f=mp4:movflags=+faststart]{outdir / rung.label}.mp4"
            f"|[f=hls:{hls_options}]{directory / hls.PLAYLIST}"
        )
    return command


def run_ffmpeg(source: Path, outdir: Path) -> Run:
    command = ffmpeg_command(source, outdir)
    playlists = [outdir / "hls" / r.label / hls.PLAYLIST for r in plan_ladder(WIDTH, HEIGHT)]
    started = time.monotonic()
    process = subprocess.Popen(command)
    first_playable = None
    # Polling is the only way to see when ffmpeg lists a segment; 20 ms is finer than needed.
    while first_playable is None and not _exited(process.pid):
        if any(hls.lists_a_segment(p) for p in playlists):
            first_playable = time.monotonic() - started
        time.sleep(0.02)
    usage = _reap(process.pid)
    wall = time.monotonic() - started
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, first_playable)


def _exited(pid: int) -> bool:
    """Whether the child has exited, leaving it to be reaped (with its usage) by `_reap`."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


def _reap(pid: int) -> resource.struct_rusage:
    """Wait for the child; its own resource usage (RUSAGE_CHILDREN would mix in the other
    child's peak RSS). `ru_maxrss` is in KiB on Linux."""
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"process {pid} failed: {os.waitstatus_to_exitcode(status)}")
    return usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--rounds", type=int, default=1, help="run both N times, alternating; report medians"
    )
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed (make bench installs it)")
    source = source_clip(args.seconds)
    ours: list[Run] = []
    theirs: list[Run] = []
    for round_ in range(args.rounds):
        # Alternate who goes first, so a change in the machine's load hits both alike.
        for name in ("ours", "ffmpeg") if round_ % 2 == 0 else ("ffmpeg", "ours"):
            with tempfile.TemporaryDirectory(prefix="lms-bench-") as scratch:
                if name == "ours":
                    ours.append(run_ours(source, Path(scratch)))
                else:
                    theirs.append(run_ffmpeg(source, Path(scratch)))
            print(f"round {round_ + 1}: {name} {(ours if name == 'ours' else theirs)[-1]}")
    _report(args.seconds, ours, theirs)


def _report(seconds: float, ours_runs: list[Run], theirs_runs: list[Run]) -> None:
    ours, theirs = _median(ours_runs), _median(theirs_runs)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"\n{seconds:g} s of {WIDTH}x{HEIGHT}p{FPS} + AAC, 4-rung ladder, MP4 + HLS; {machine}")
    print(
        f"median of {len(ours_runs)} round(s); load average after them: {load}"
        " (other work on the machine slows both)"
    )
    print(f"{'':24}{'ours':>10}{'ffmpeg CLI':>12}{'ours/ffmpeg':>13}  target")
    rows = [
        ("wall time (s)", ours.wall, theirs.wall, WALL_TARGET),
        ("x realtime", seconds / ours.wall, seconds / theirs.wall, None),
        ("CPU time (s)", ours.cpu, theirs.cpu, None),
        ("peak RSS (MiB)", ours.peak_rss / 2**20, theirs.peak_rss / 2**20, RSS_TARGET),
    ]
    for name, a, b, target in rows:
        verdict = "" if target is None else f"<= {target:.2f} {_met(a / b <= target)}"
        print(f"{name:24}{a:10.2f}{b:12.2f}{a / b:13.2f}  {verdict}")
    for name, runs in (("ours", ours_runs), ("ffmpeg CLI", theirs_runs)):
        timed = [r for r in runs if r.first_playable is not None]
        if not timed:
            continue
        after = _middle([r.first_playable or 0.0 for r in timed])
        share = _middle([(r.first_playable or 0.0) / r.wall for r in timed])
        verdict = f"  target <= {FIRST_PLAYABLE_TARGET:.0%} {_met(share <= FIRST_PLAYABLE_TARGET)}"
        print(
            f"first playable, {name:10}{after:6.2f} s = {share:5.1%} of its wall time"
            f"{verdict if name == 'ours' else ''}"
        )


def _median(runs: list[Run]) -> Run:
    return Run(
        wall=_middle([r.wall for r in runs]),
        cpu=_middle([r.cpu for r in runs]),
        peak_rss=round(_middle([r.peak_rss for r in runs])),
        first_playable=None,  # reported per run, as a share of that run's wall time
    )


def _middle(values: list[float]) -> float:
    return float(np.median(values))


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    main()
