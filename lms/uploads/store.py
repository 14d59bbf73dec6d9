"""Uploads in PostgreSQL (asyncpg; run through `Database`)."""

from __future__ import annotations

import asyncpg
import msgspec

from lms.domain.uploads import check_move
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
    row = await conn.fetchrow(
        f"""
        WITH new AS (
            INSERT INTO uploads (id, owner_id, content_id, filename, upload_length,
                upload_offset, state, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
            RETURNING *
        )
        {_SELECT} new
        """,
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
        """,
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
    row = await conn.fetchrow(
        f"""
        WITH moved AS (
            UPDATE uploads SET state = $2, updated_at = now(),
                upload_offset = CASE WHEN $2 = 'complete' THEN upload_length
                                     ELSE upload_offset END
            WHERE id = $1 RETURNING *
        )
        {_SELECT} moved
        """,
        upload_id,
        new.value,
    )
    return _upload(row)


def _upload(row: asyncpg.Record) -> Upload:
    return msgspec.convert({**dict(row.items()), "id": str(row["id"])}, Upload)
