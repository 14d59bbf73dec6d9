"""Uploads: who may upload where, the limits, and bytes to disk before offsets to the database.

Theory of operation
-------------------
An upload's offset in PostgreSQL only ever counts bytes already on disk: a PATCH writes (and
fsyncs) first and records the new offset after, every `COMMIT_EVERY` bytes and when it ends,
however it ends. A PATCH cut off mid-body (the client vanished, the node is stopping) still
records what arrived; a node killed outright loses at most the unrecorded tail, which the next
PATCH cuts off (`UploadFiles.appending` truncates to the recorded offset).

The PATCH that brings the offset to the length completes the upload: its last offset, the
upload's completion and its transcode job commit in one transaction, so a finished upload always
has its job, and an upload never gets two.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
import trio

from lms.config import Settings
from lms.domain.access import Principal
from lms.domain.upload_names import shown_name
from lms.domain.uploads import IllegalUploadMove
from lms.errors import Conflict, Forbidden, LmsError, NotFound, TooLarge
from lms.jobs.service import Jobs
from lms.store import uploads
from lms.store.database import Database
from lms.uploads import tus
from lms.uploads.multipart import MultipartFile
from lms.uploads.storage import Appender, UploadFiles
from proto.jobs import JobView
from proto.uploads import Upload, UploadState

log = structlog.get_logger()

# An unfinished upload nobody touched for a day expires (and stops counting against the limit).
UPLOAD_TTL = 24 * 3600.0
# Record the offset at least this often within one long PATCH.
COMMIT_EVERY = 8 << 20
# A PATCH whose client sends nothing for this long ends, keeping what arrived.
IDLE_TIMEOUT = 60.0
# Bound on recording what arrived when a PATCH is cut off.
SALVAGE_TIMEOUT = 10.0


class UploadGone(LmsError):
    status = 410
    code = "upload_expired"


class Stalled(LmsError):
    status = 408
    code = "request_timeout"


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_unfinished: int  # per user
    job_attempts: int


class Uploads:
    def __init__(self, db: Database, files: UploadFiles, limits: UploadLimits, jobs: Jobs) -> None:
        self._db = db
        self._files = files
        self.limits = limits
        self._jobs = jobs

    @classmethod
    def configured(cls, settings: Settings, db: Database, jobs: Jobs) -> Uploads:
        limits = UploadLimits(
            max_bytes=settings.max_upload_bytes,
            max_unfinished=settings.max_concurrent_uploads,
            job_attempts=settings.job_max_attempts,
        )
        return cls(db, UploadFiles(settings.media_dir), limits, jobs)

    # --- tus ----------------------------------------------------------------------------------

    async def create(self, who: Principal, length: int, target: tus.UploadTarget) -> Upload:
        """Start a resumable upload of `length` bytes into the video content `target` names."""
        if length > self.limits.max_bytes:
            raise TooLarge(f"uploads may be at most {self.limits.max_bytes} bytes")
        upload_id = str(uuid.uuid4())
        # The file first: a row never names a file that does not exist.
        await self._files.create(upload_id)
        try:
            upload = await self._db.transaction(
                uploads.create,
                who,
                upload_id=upload_id,
                content_id=target.content_id,
                filename=target.filename,
                length=length,
                max_unfinished=self.limits.max_unfinished,
                ttl_seconds=UPLOAD_TTL,
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._files.discard(upload_id)
            raise
        if length == 0:
            # Nothing will ever be PATCHed: it is complete now (and its job will say the file is
            # empty, in the same words as for any other bad input).
            async with self._files.appending(upload_id) as out:
                upload = await self._record(upload, out, 0)
        return upload

    async def find(self, who: Principal, upload_id: str, *, expired_ok: bool = False) -> Upload:
        upload = await self._db.transaction(uploads.upload_by_id, upload_id)
        if upload is None or upload.state is UploadState.TERMINATED:
            raise NotFound("no such upload")
        if not (who.is_admin or who.user_id == upload.owner_id):
            raise Forbidden("only the uploader (or an admin) may see or continue an upload")
        if upload.expired and upload.state is UploadState.RECEIVING and not expired_ok:
            raise UploadGone("this upload expired; start a new one")
        return upload

    async def append(
        self,
        who: Principal,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        content_type: str | None,
        upload_offset: str | None,
        content_length: int | None,
    ) -> Upload:
        """Write a PATCH body at the upload's offset; return the upload as it now stands."""

        def check(upload: Upload) -> None:
            tus.check_patch(
                content_type,
                upload_offset,
                content_length,
                offset=upload.upload_offset,
                length=upload.upload_length,
            )

        upload = await self.find(who, upload_id)
        check(upload)
        if upload.state is UploadState.COMPLETE:
            return upload  # an empty PATCH at the end: nothing to do
        try:
            async with self._files.appending(upload_id) as out:
                # Again under the lock: another PATCH may have moved the offset meanwhile.
                upload = await self.find(who, upload_id)
                check(upload)
                await out.start(upload.upload_offset)
                return await self._receive(upload, out, body)
        except FileNotFoundError:
            raise UploadGone("this upload's bytes are gone; start a new upload") from None

    async def _receive(self, upload: Upload, out: Appender, body: AsyncIterator[bytes]) -> Upload:
        window = tus.BodyWindow(upload.upload_offset, upload.upload_length)
        try:
            while not window.overflowed:
                chunk = await _next_chunk(body)
                if chunk is None:
                    break
                await out.write(window.accept(chunk))
                if window.offset - upload.upload_offset >= COMMIT_EVERY:
                    upload = await self._record(upload, out, window.offset)
        except BaseException as exc:
            # Cut off (the client left, the node is stopping, the body stalled, the volume is
            # full): keep what arrived and is on disk, so the client resumes after it.
            with trio.CancelScope(shield=True), trio.move_on_after(SALVAGE_TIMEOUT):
                try:
                    upload = await self._record(upload, out, out.offset)
                except Exception as salvage:
                    log.warning("upload_salvage_failed", error=repr(salvage))
            log.info("upload_cut_off", upload_id=upload.id, offset=out.offset, why=repr(exc))
            raise
        upload = await self._record(upload, out, window.offset)
        if window.overflowed:
            raise TooLarge(
                f"bytes past the upload's length of {upload.upload_length} were dropped; "
                f"the upload is at {upload.upload_offset}"
            )
        return upload

    async def _record(self, upload: Upload, out: Appender, offset: int) -> Upload:
        """Make the bytes up to `offset` durable, then record them; completes the upload when
        `offset` is its length."""
        if offset == upload.upload_offset and offset < upload.upload_length:
            return upload
        await out.sync()
        if offset < upload.upload_length:
            advanced = await self._db.transaction(
                uploads.advance, upload.id, upload.upload_offset, offset, UPLOAD_TTL
            )
            if advanced is None:
                raise Conflict("the upload changed while these bytes arrived")
            return advanced
        await self._files.finish(upload.id)
        upload, jobs = await self._db.transaction(
            uploads.mark_complete, upload, self._files.source(upload.id), self.limits.job_attempts
        )
        await self._files.forget_part(upload.id)
        log.info("upload_complete", upload_id=upload.id, job_id=jobs[0].id)
        await self._jobs.announce(jobs)
        return upload

    async def terminate(self, who: Principal, upload_id: str) -> None:
        upload = await self.find(who, upload_id, expired_ok=True)
        if upload.state is UploadState.COMPLETE:
            raise Conflict("a finished upload is a transcode job's source; cancel the job instead")
        async with self._files.appending(upload_id):  # not while a PATCH writes
            try:
                await self._db.transaction(uploads.move, upload_id, UploadState.TERMINATED)
            except IllegalUploadMove as exc:
                raise Conflict(str(exc)) from None
        await self._files.discard(upload_id)

    # --- one-request upload (multipart) ---------------------------------------------------

    async def _write_whole(self, upload_id: str, file: MultipartFile) -> int:
        size = 0
        async with self._files.appending(upload_id) as out:
            await out.start(0)
            async for chunk in file:
                size += len(chunk)
                if size > self.limits.max_bytes:
                    raise TooLarge(f"uploads may be at most {self.limits.max_bytes} bytes")
                await out.write(chunk)
            await out.sync()
        return size

    async def upload_file(
        self, who: Principal, course_id: int, content_id: int, file: MultipartFile
    ) -> JobView:
        """Store a whole file sent in one request and queue its transcode."""

        async def write(upload_id: str) -> tuple[str, int]:
            size = await self._write_whole(upload_id, file)
            # Read after the bytes: the form names its file only once they begin.
            return shown_name(file.filename or ""), size

        return await self._store_whole(who, course_id, content_id, write)

    async def make_file(
        self,
        who: Principal,
        course_id: int,
        content_id: int,
        filename: str,
        make: Callable[[Path], object],
    ) -> JobView:
        """Queue the transcode of a file the node makes itself (the demo's lecture) as if `who`
        had uploaded it: `make(path)` writes the whole file, in a worker thread."""

        async def write(upload_id: str) -> tuple[str, int]:
            return filename, await self._files.make(upload_id, make)

        return await self._store_whole(who, course_id, content_id, write)

    async def _store_whole(
        self,
        who: Principal,
        course_id: int,
        content_id: int,
        write: Callable[[str], Awaitable[tuple[str, int]]],
    ) -> JobView:
        """A whole file that `write(upload_id)` puts in place (returning its name and size):
        its upload, complete, and its transcode job; nothing of it is left if this fails."""
        await self._db.transaction(uploads.check_target, who, content_id, course_id)
        upload_id = str(uuid.uuid4())
        await self._files.create(upload_id)
        try:
            filename, size = await write(upload_id)
            await self._files.finish(upload_id)
            jobs = await self._db.transaction(
                uploads.insert_complete,
                who,
                course_id=course_id,
                content_id=content_id,
                filename=filename[: tus.MAX_FILENAME],
                upload_id=upload_id,
                size=size,
                source=self._files.source(upload_id),
                attempts=self.limits.job_attempts,
                ttl_seconds=UPLOAD_TTL,
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._files.discard(upload_id)
            raise
        await self._files.forget_part(upload_id)
        log.info("upload_complete", upload_id=upload_id, job_id=jobs[0].id)
        await self._jobs.announce(jobs)
        return jobs[0]


async def _next_chunk(body: AsyncIterator[bytes]) -> bytes | None:
    """The body's next chunk, or None at its end."""
    with trio.move_on_after(IDLE_TIMEOUT):
        return await anext(body, None)
    raise Stalled(f"no bytes arrived for {IDLE_TIMEOUT:g}s; resume from Upload-Offset")
