"""The bytes of uploads on the media volume.

    uploads/<id>.part   bytes of an unfinished upload; may run past the recorded offset after a
                        crash (those bytes were never acknowledged and are cut off on resume)
    uploads/<id>        the finished file, a transcode job's source

Finishing hard-links `<id>` to `<id>.part` before the database records completion and unlinks
`.part` after, so whichever step a crash interrupts, the file the database names exists, and a
client resuming an upload the database still calls unfinished appends to that same file.

Writes run in threads (`trio.open_file`), so a slow disk never stalls the trio thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from lms.errors import LmsError

if TYPE_CHECKING:
    # What trio.open_file returns: documented, but exported only from its private module.
    from trio._file_io import AsyncIOWrapper


class UploadBusy(LmsError):
    status = 423
    code = "upload_busy"


class Appender:
    """Appends to one upload's `.part` file, batching small chunks into larger writes."""

    BATCH = 1 << 20

    def __init__(self, file: AsyncIOWrapper[io.BufferedRandom]) -> None:
        self._file = file
        self._pending = bytearray()

    async def start(self, offset: int) -> None:
        """Write from `offset` on, cutting off anything after it (bytes never acknowledged)."""
        await self._file.truncate(offset)
        await self._file.seek(offset)

    async def write(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= self.BATCH:
            await self.flush()

    async def flush(self) -> None:
        if self._pending:
            await self._file.write(bytes(self._pending))
            self._pending.clear()

    async def sync(self) -> None:
        """Everything written so far is on disk when this returns."""
        await self.flush()
        await self._file.flush()
        await trio.to_thread.run_sync(os.fsync, self._file.fileno())


class UploadFiles:
    def __init__(self, media_dir: Path) -> None:
        self._dir = media_dir / "uploads"

    @staticmethod
    def source(upload_id: str) -> str:
        """The finished file, relative to the media volume."""
        return f"uploads/{upload_id}"

    def _part(self, upload_id: str) -> Path:
        return self._dir / f"{upload_id}.part"

    def _final(self, upload_id: str) -> Path:
        return self._dir / upload_id

    async def create(self, upload_id: str) -> None:
        def create() -> None:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._part(upload_id).touch(exist_ok=False)

        await trio.to_thread.run_sync(create)

    @asynccontextmanager
    async def appending(self, upload_id: str) -> AsyncIterator[Appender]:
        """Hold the upload's `.part` for writing (call `Appender.start` first).

        The file is locked (flock) for the block, across processes and nodes sharing the
        volume, so two PATCHes to one upload never interleave; a second gets `UploadBusy`.
        Raises FileNotFoundError if the file is gone.
        """
        async with await trio.open_file(self._part(upload_id), "r+b") as file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise UploadBusy(
                        "another request is writing to this upload; retry when it ends"
                    ) from None
                raise
            yield Appender(file)

    async def make(self, upload_id: str, write: Callable[[Path], object]) -> int:
        """Have `write(path)` write the whole of a new upload's `.part`, in a worker thread
        (making a file, a video say, is CPU work); returns its size once it is on disk."""

        def make() -> int:
            part = self._part(upload_id)
            write(part)
            with part.open("rb") as written:
                os.fsync(written.fileno())
                return os.fstat(written.fileno()).st_size

        return await trio.to_thread.run_sync(make)

    async def finish(self, upload_id: str) -> None:
        """Give the complete `.part` its final name too (idempotent)."""

        def link() -> None:
            with contextlib.suppress(FileExistsError):
                os.link(self._part(upload_id), self._final(upload_id))

        await trio.to_thread.run_sync(link)

    async def forget_part(self, upload_id: str) -> None:
        """Drop the `.part` name of a finished upload (its bytes stay under the final name)."""
        await trio.to_thread.run_sync(self._part(upload_id).unlink, True)

    async def discard(self, upload_id: str) -> None:
        """Remove every name of an upload's bytes."""

        def discard() -> None:
            self._part(upload_id).unlink(missing_ok=True)
            self._final(upload_id).unlink(missing_ok=True)

        await trio.to_thread.run_sync(discard)
