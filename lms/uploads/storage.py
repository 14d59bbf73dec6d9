"""The bytes of uploads on the media volume.

    uploads/<id>.part   bytes of an unfinished upload; may run past the recorded offset after a
                        crash (those bytes were never acknowledged and are cut off on resume)
    uploads/<id>        the finished file, a transcode job's source

Finishing hard-links `<id>` to `<id>.part` before the database records completion and unlinks
`.part` after, so whichever step a crash interrupts, the file the database names exists, and a
client resuming an upload the database still calls unfinished appends to that same file.

Writes run in threads (`trio.open_file`), so a slow disk never stalls the trio thread.

A full volume (or a spent quota) raises `InsufficientStorage` (507, `Retry-After`) and never
leaves a batch half-written: the `.part` is cut back to the last whole write, so the offset
recorded after it names only bytes that are there, and the client resumes from it once there is
room.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from lms.errors import InsufficientStorage, LmsError

if TYPE_CHECKING:
    # What trio.open_file returns: documented, but exported only from its private module.
    from trio._file_io import AsyncIOWrapper


# The errors of a volume with no room left for what is being written.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
# What a client refused for want of space is told to wait: room comes back when an operator
# frees some or grows the volume, not within seconds.
NO_SPACE_RETRY_AFTER = 60.0


class UploadBusy(LmsError):
    status = 423
    code = "upload_busy"


@contextmanager
def refused_when_full() -> Iterator[None]:
    """Turn an OSError saying the volume is full into `InsufficientStorage`, whose message
    names no server path (the OSError's does)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise InsufficientStorage(
            "the server has no room for this upload now; retry later",
            retry_after=NO_SPACE_RETRY_AFTER,
        ) from exc


class Appender:
    """Appends to one upload's `.part` file, batching small chunks into larger writes."""

    BATCH = 1 << 20

    def __init__(self, file: AsyncIOWrapper[io.FileIO]) -> None:
        self._file = file  # unbuffered: a failed write leaves nothing in a buffer to retry
        self._pending = bytearray()
        self._written = 0  # the file's length: where the next write goes

    @property
    def offset(self) -> int:
        """Where the upload stands once what was handed to `write` is flushed."""
        return self._written + len(self._pending)

    async def start(self, offset: int) -> None:
        """Write from `offset` on, cutting off anything after it (bytes never acknowledged)."""
        await self._file.truncate(offset)
        await self._file.seek(offset)
        self._written = offset

    async def write(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= self.BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Write what is pending. A write the volume cannot take (full) is dropped whole and
        the file cut back to where it stood, so `offset` names only bytes that are there."""
        if not self._pending:
            return
        try:
            with refused_when_full():
                await self._write_all(bytes(self._pending))
        except InsufficientStorage:
            self._pending.clear()
            await self.start(self._written)  # shrinking a file needs no room
            raise
        self._written += len(self._pending)
        self._pending.clear()

    async def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may take only part (and fails on the next one)
            view = view[await self._file.write(view) :]

    async def sync(self) -> None:
        """Everything written so far is on disk when this returns."""
        await self.flush()
        with refused_when_full():  # a file system that allocates late says so here
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

        with refused_when_full():
            await trio.to_thread.run_sync(create)

    @asynccontextmanager
    async def appending(self, upload_id: str) -> AsyncIterator[Appender]:
        """Hold the upload's `.part` for writing (call `Appender.start` first).

        The file is locked (flock) for the block, across processes and nodes sharing the
        volume, so two PATCHes to one upload never interleave; a second gets `UploadBusy`.
        Raises FileNotFoundError if the file is gone.
        """
        async with await trio.open_file(self._part(upload_id), "r+b", buffering=0) as file:
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

        with refused_when_full():
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
