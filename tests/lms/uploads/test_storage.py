"""Upload bytes on disk: one writer at a time, unacknowledged bytes cut off, idempotent finish."""

from __future__ import annotations

from pathlib import Path

import pytest

from lms.uploads.storage import UploadBusy, UploadFiles


async def test_a_second_writer_is_refused_while_the_first_holds_the_upload(tmp_path: Path) -> None:
    files = UploadFiles(tmp_path)
    await files.create("u1")
    async with files.appending("u1") as out:
        await out.start(0)
        await out.write(b"first")
        with pytest.raises(UploadBusy):
            async with files.appending("u1"):
                pass
        await out.sync()
    async with files.appending("u1") as again:  # free again once the first is done
        await again.start(5)
    assert (tmp_path / "uploads" / "u1.part").read_bytes() == b"first"


async def test_resuming_cuts_off_bytes_past_the_recorded_offset(tmp_path: Path) -> None:
    files = UploadFiles(tmp_path)
    await files.create("u2")
    async with files.appending("u2") as out:
        await out.start(0)
        await out.write(b"0123456789")
        await out.sync()
    # Only 4 bytes were ever recorded; the rest was never acknowledged to the client.
    async with files.appending("u2") as out:
        await out.start(4)
        await out.write(b"abc")
        await out.sync()
    assert (tmp_path / "uploads" / "u2.part").read_bytes() == b"0123abc"


async def test_finishing_names_the_file_for_its_job_and_can_be_repeated(tmp_path: Path) -> None:
    files = UploadFiles(tmp_path)
    await files.create("u3")
    async with files.appending("u3") as out:
        await out.start(0)
        await out.write(b"video")
        await out.sync()
    await files.finish("u3")
    await files.finish("u3")
    await files.forget_part("u3")
    assert files.source("u3") == "uploads/u3"
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["u3"]
    assert (tmp_path / files.source("u3")).read_bytes() == b"video"
    await files.discard("u3")
    assert list((tmp_path / "uploads").iterdir()) == []
    with pytest.raises(FileNotFoundError):
        async with files.appending("u3"):
            pass
