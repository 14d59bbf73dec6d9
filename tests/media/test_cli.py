"""`lms transcode INPUT OUTDIR`: the pipeline run by hand, in the command's own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.media.conftest import ClipShelf


def lms(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lms.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_transcode_writes_the_outputs_and_prints_a_summary(
    shelf: ClipShelf, tmp_path: Path
) -> None:
    outdir = tmp_path / "made" / "here"
    result = lms("transcode", str(shelf.get("small.mp4")), str(outdir))
    assert result.returncode == 0, result.stderr
    assert "90p.mp4" in result.stdout
    assert "hls/master.m3u8" in result.stdout
    assert "100%" in result.stderr
    assert (outdir / "90p.mp4").is_file()
    assert (outdir / "thumbnail.jpg").is_file()


def test_a_bad_input_is_one_line_and_exit_code_1(shelf: ClipShelf, tmp_path: Path) -> None:
    result = lms("transcode", str(shelf.get("audio_only.mp4")), str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "lms transcode: the file has no video stream"
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
