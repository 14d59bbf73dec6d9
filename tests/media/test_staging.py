from __future__ import annotations

from pathlib import Path

from media.staging import Staging


def test_a_file_appears_under_its_name_only_when_published(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    part = staging.part("sub/720p.mp4")
    part.write_bytes(b"half")
    assert not (tmp_path / "sub/720p.mp4").exists()
    assert staging.publish("sub/720p.mp4") == "sub/720p.mp4"
    assert (tmp_path / "sub/720p.mp4").read_bytes() == b"half"
    assert not part.exists()


def test_discard_removes_everything_the_job_wrote_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "upload.mov").write_bytes(b"source")
    staging = Staging(tmp_path)
    staging.write("thumbnail.jpg", b"jpeg")
    staging.part("720p.mp4").write_bytes(b"half")
    live = staging.live_dir("hls")
    (live / "360p").mkdir()
    (live / "360p" / "segment_00000.m4s").write_bytes(b"segment")
    staging.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["upload.mov"]


def test_a_live_directory_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "hls").mkdir()
    (tmp_path / "hls" / "stale.m4s").write_bytes(b"from an earlier attempt")
    assert list(Staging(tmp_path).live_dir("hls").iterdir()) == []
