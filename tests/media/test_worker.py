"""`python -m media.worker` as the transcoder pool runs it: a process, a spec on stdin, frames
on stdout."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import proto
from proto.media import Done, Failed, FrameReader, Probed, RenditionReady, TranscodeSpec
from tests.media.conftest import ClipShelf

WORKER = [sys.executable, "-m", "media.worker"]


def run_worker(stdin: bytes) -> tuple[list[object], int, bytes]:
    result = subprocess.run(WORKER, input=stdin, capture_output=True, timeout=120, check=False)
    return FrameReader().feed(result.stdout), result.returncode, result.stderr


def spec(source: Path, outdir: Path) -> bytes:
    return proto.encode(TranscodeSpec(source=str(source), outdir=str(outdir)))


def test_a_job_reports_progress_and_ends_with_the_manifest(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    frames, code, _ = run_worker(spec(shelf.get("small.mp4"), tmp_path))
    assert code == 0
    assert isinstance(frames[1], Probed)
    assert any(isinstance(f, RenditionReady) for f in frames)
    done = frames[-1]
    assert isinstance(done, Done)
    assert [r.label for r in done.manifest.renditions] == ["90p"]
    assert (tmp_path / "90p.mp4").is_file()


def test_a_broken_file_ends_in_failed_with_the_reason_and_leaves_no_files(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    frames, code, stderr = run_worker(spec(shelf.get("truncated.mkv"), tmp_path))
    assert code == 1
    failed = frames[-1]
    assert isinstance(failed, Failed)
    assert failed.reason.startswith("the file is truncated")
    assert list(tmp_path.iterdir()) == []
    assert b"Traceback" not in stderr


def test_a_text_file_is_not_a_video(shelf: ClipShelf, tmp_path: Path) -> None:
    frames, code, _ = run_worker(spec(shelf.get("notes.mp4"), tmp_path))
    assert (frames[-1], code) == (Failed("not a video file"), 1)


def test_a_malformed_spec_fails_cleanly() -> None:
    frames, code, _ = run_worker(b'{"source": 1}')
    assert code == 1
    (failed,) = frames
    assert isinstance(failed, Failed)
    assert failed.reason.startswith("invalid job spec")


def test_an_unexpected_error_is_reported_as_internal_without_a_traceback_on_stdout(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")
    frames, code, stderr = run_worker(spec(shelf.get("small.mp4"), not_a_directory))
    assert code == 1
    failed = frames[-1]
    assert isinstance(failed, Failed)
    assert failed.reason.startswith("internal error: ")
    assert b"Traceback" in stderr  # for the logs, not for the frames


def test_sigterm_stops_a_running_job_at_once(shelf: ClipShelf, tmp_path: Path) -> None:
    worker = subprocess.Popen(
        WORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert worker.stdin is not None
    assert worker.stdout is not None
    worker.stdin.write(spec(shelf.get("long_small.mp4"), tmp_path))
    worker.stdin.close()
    reader, frames = FrameReader(), []
    while not any(isinstance(f, Probed) for f in frames):
        chunk = worker.stdout.read1(4096)
        assert chunk, "the worker stopped before probing"
        frames += reader.feed(chunk)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == -signal.SIGTERM
