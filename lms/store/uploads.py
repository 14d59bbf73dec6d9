"""Uploads in PostgreSQL (asyncpg; run through `Database`): their rows, and the upload
service's units of work, each checking who may upload where on the snapshot it then changes."""

from __future__ import annotations

import asyncpg
import msgspec

from lms.domain.access import Principal, may_manage_course
from lms.domain.uploads import check_move
from lms.errors import Forbidden, Invalid, NotFound, TooManyRequests
from lms.store.jobs import enqueue
from lms.store.rows import fetch_one
from proto.api import ContentKind
from proto.jobs import JobView
from proto.uploads import Upload, UploadState

# An upload row with whether it expired, by PostgreSQL's clock (every node agrees on it).
_SELECT = "SELECT *, expires_at < now() AS expired FROM"


async def video_content(conn: asyncpg.Connection, content_id: int) -> asyncpg.Record | None:
    """The content's kind and its course's owner, for the checks before an upload."""
    return await conn.fetchrow(
        """
        SELECT c.kind, c.course_id, co.owner_id
        FROM contents c JOIN courses co ON co.id = c.course_id WHERE c.id = $1
        """,
        content_id,
    )


async def unfinished_count(conn: asyncpg.Connection, owner_id: int) -> int:
    """How many unexpired unfinished uploads the user has. Locks the user's row, so that two
    concurrent creations by one user are counted one after the other."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", owner_id)
    return await conn.fetchval(
        "SELECT count(*) FROM uploads WHERE owner_id = $1 AND state = 'receiving' "
        "AND expires_at > now()",
        owner_id,
    )


async def insert_upload(
    conn: asyncpg.Connection,
    *,
    upload_id: str,
    owner_id: int,
    content_id: int,
    filename: str,
    length: int,
    ttl_seconds: float,
    complete: bool = False,
) -> Upload:
    row = await fetch_one(
        conn,
        f"""
        WITH new AS (
            INSERT INTO uploads (id, owner_id, content_id, filename, upload_length,
                upload_offset, state, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
            RETURNING *
        )
        {_SELECT} new
        """,  # noqa: S608 - {_SELECT} is a constant of this module
        upload_id,
        owner_id,
        content_id,
        filename,
        length,
        length if complete else 0,
        (UploadState.COMPLETE if complete else UploadState.RECEIVING).value,
        ttl_seconds,
    )
    return _upload(row)


async def upload_by_id(conn: asyncpg.Connection, upload_id: str) -> Upload | None:
    row = await conn.fetchrow(f"{_SELECT} uploads WHERE id = $1", upload_id)
    return None if row is None else _upload(row)


async def advance(
    conn: asyncpg.Connection, upload_id: str, old: int, new: int, ttl_seconds: float
) -> Upload | None:
    """Record that the bytes up to `new` are on disk; None if the offset moved meanwhile."""
    row = await conn.fetchrow(
        f"""
        WITH moved AS (
            UPDATE uploads SET upload_offset = $3, updated_at = now(),
                expires_at = now() + make_interval(secs => $4)
            WHERE id = $1 AND upload_offset = $2 AND state = 'receiving'
            RETURNING *
        )
        {_SELECT} moved
        """,  # noqa: S608 - {_SELECT} is a constant of this module
        upload_id,
        old,
        new,
        ttl_seconds,
    )
    return None if row is None else _upload(row)


async def move(conn: asyncpg.Connection, upload_id: str, new: UploadState) -> Upload | None:
    """Move the upload to `new` (complete: its offset is its length); None if it is gone."""
    current = await conn.fetchrow(f"{_SELECT} uploads WHERE id = $1 FOR UPDATE", upload_id)
    if current is None:
        return None
    check_move(UploadState(current["state"]), new)
    row = await fetch_one(
        conn,
        f"""
        WITH moved AS (
            UPDATE uploads SET state = $2, updated_at = now(),
                upload_offset = CASE WHEN $2 = 'complete' THEN upload_length
                                     ELSE upload_offset END
            WHERE id = $1 RETURNING *
        )
        {_SELECT} moved
        """,  # noqa: S608 - {_SELECT} is a constant of this module
        upload_id,
        new.value,
    )
    return _upload(row)


def _upload(row: asyncpg.Record) -> Upload:
    return msgspec.convert({**dict(row.items()), "id": str(row["id"])}, Upload)


# --- the upload service's units of work -------------------------------------------------------


async def check_target(
    conn: asyncpg.Connection, who: Principal, content_id: int, course_id: int | None = None
) -> None:
    """Raise unless `who` may upload into the video content (of `course_id`, when given)."""
    content = await video_content(conn, content_id)
    if content is None or (course_id is not None and content["course_id"] != course_id):
        raise NotFound(f"no content with id {content_id}")
    if not may_manage_course(who, content["owner_id"]):
        raise Forbidden("only the course's instructor or an admin may upload its videos")
    if content["kind"] != ContentKind.VIDEO:
        raise Invalid(f"content {content_id} is not a video; only a video content takes an upload")


async def create(
    conn: asyncpg.Connection,
    who: Principal,
    *,
    upload_id: str,
    content_id: int,
    filename: str,
    length: int,
    max_unfinished: int,
    ttl_seconds: float,
) -> Upload:
    """A new resumable upload, within the user's limit of unfinished ones."""
    await check_target(conn, who, content_id)
    if await unfinished_count(conn, who.user_id) >= max_unfinished:
        raise TooManyRequests(
            f"you have {max_unfinished} unfinished uploads; finish or delete one first"
        )
    return await insert_upload(
        conn,
        upload_id=upload_id,
        owner_id=who.user_id,
        content_id=content_id,
        filename=filename,
        length=length,
        ttl_seconds=ttl_seconds,
    )


async def insert_complete(
    conn: asyncpg.Connection,
    who: Principal,
    *,
    course_id: int,
    content_id: int,
    filename: str,
    upload_id: str,
    size: int,
    source: str,
    attempts: int,
    ttl_seconds: float,
) -> list[JobView]:
    """A whole file already on disk: its upload, complete, and its transcode job."""
    # Checked again: the content may have been deleted while the bytes arrived.
    await check_target(conn, who, content_id, course_id)
    upload = await insert_upload(
        conn,
        upload_id=upload_id,
        owner_id=who.user_id,
        content_id=content_id,
        filename=filename,
        length=size,
        ttl_seconds=ttl_seconds,
        complete=True,
    )
    return await _enqueue(conn, upload, source, attempts)


async def mark_complete(
    conn: asyncpg.Connection, upload: Upload, source: str, attempts: int
) -> tuple[Upload, list[JobView]]:
    """The upload complete and its transcode job queued, together."""
    completed = await move(conn, upload.id, UploadState.COMPLETE)
    if completed is None:
        raise NotFound("no such upload")
    return completed, await _enqueue(conn, completed, source, attempts)


async def _enqueue(
    conn: asyncpg.Connection, upload: Upload, source: str, attempts: int
) -> list[JobView]:
    return await enqueue(
        conn,
        content_id=upload.content_id,
        upload_id=upload.id,
        uploader_id=upload.owner_id,
        source=source,
        max_attempts=attempts,
    )
