"""The job queue in PostgreSQL (asyncpg; run through `Database`).

Theory of operation
-------------------
A worker claims the oldest queued job with `FOR UPDATE SKIP LOCKED`, so any number of nodes and
`lms worker` processes share the queue without waiting on each other. A claim starts an attempt:
it counts one attempt and writes a fresh `lease_id` and a `lease_until` the worker renews with
heartbeats. Everything the worker later writes (progress, renditions, completion, failure) is
fenced on that lease: `... WHERE id = $1 AND lease_id = $2 AND state = 'running'`. A worker that
lost its lease (it stalled past `lease_until`, someone reaped the job and another worker claimed
it) writes nothing, so a job completes at most once.

A reaper (every pool runs it) returns jobs whose lease ran out to the queue, or fails them when
their attempts are used up. Every state change is checked against `lms.domain.jobs` first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import msgspec

from lms.domain.jobs import (
    after_failed_attempt,
    check_move,
    check_retry,
    retry_delay,
    status_of,
)
from lms.store import digests
from lms.store.rows import fetch_one
from proto.jobs import (
    ClaimedJob,
    Completion,
    JobState,
    JobView,
    Lease,
    LeaseStatus,
    WorkerSlot,
    WorkerView,
)
from proto.media import MediaManifest, Rendition

# A worker row not renewed for this long is from a process that is long gone.
FORGET_WORKERS_AFTER = "1 hour"
LEASE_EXPIRED = "the worker stopped renewing its lease (it crashed or lost its node)"

# An action on one job by id (cancel, retry): its new view, or None if there is no such job.
JobAction = Callable[[asyncpg.Connection, int], Awaitable[JobView | None]]

_renditions = msgspec.json.Decoder(list[Rendition])

_JOB = """
    SELECT j.*, c.course_id, co.owner_id
    FROM jobs j JOIN contents c ON c.id = j.content_id JOIN courses co ON co.id = c.course_id
"""


def job_view(row: asyncpg.Record) -> JobView:
    state = JobState(row["state"])
    return JobView(
        id=row["id"],
        content_id=row["content_id"],
        course_id=row["course_id"],
        uploader_id=row["uploader_id"],
        state=state,
        status=status_of(state, row["stage"]),
        stage=row["stage"],
        progress=row["progress"],
        eta_seconds=row["eta_seconds"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        worker_id=row["worker_id"],
        node_id=row["node_id"],
        heartbeat_at=row["heartbeat_at"],
        renditions=[r.label for r in renditions_of(row)],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def renditions_of(row: asyncpg.Record) -> list[Rendition]:
    """The renditions a running attempt has made playable so far."""
    return _renditions.decode(row["renditions"])


async def _job(
    conn: asyncpg.Connection, job_id: int, *, lock: bool = False
) -> asyncpg.Record | None:
    lock_clause = " FOR UPDATE OF j" if lock else ""
    return await conn.fetchrow(f"{_JOB} WHERE j.id = $1{lock_clause}", job_id)


async def _written_job(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record:
    """The row of a job this transaction has just inserted or updated, so it exists."""
    return await fetch_one(conn, f"{_JOB} WHERE j.id = $1", job_id)


async def _moving(
    conn: asyncpg.Connection, job_id: int, new: JobState, lease: Lease | None = None
) -> asyncpg.Record | None:
    """Lock the job's row and check that it may become `new`.

    Returns None when the job no longer exists or, given a lease, when the lease is no longer
    the job's current one (the caller was fenced out). Raises `IllegalMove` otherwise.
    """
    row = await _job(conn, job_id, lock=True)
    if row is None or (lease is not None and not _holds(row, lease)):
        return None
    check_move(job_id, JobState(row["state"]), new)
    return row


def _holds(row: asyncpg.Record, lease: Lease) -> bool:
    return row["state"] == JobState.RUNNING and str(row["lease_id"]) == lease.lease_id


# --- enqueueing (the upload service) ------------------------------------------------------------


async def enqueue(
    conn: asyncpg.Connection,
    *,
    content_id: int,
    upload_id: str | None,
    uploader_id: int,
    source: str,
    max_attempts: int,
) -> list[JobView]:
    """Queue a transcode of `source` for the content; return the new job first, then the
    content's older unfinished jobs, which a newer upload makes obsolete and this cancels."""
    obsolete = []
    for row in await conn.fetch(
        f"{_JOB} WHERE j.content_id = $1 AND j.state = ANY($2) ORDER BY j.id FOR UPDATE OF j",
        content_id,
        [JobState.QUEUED.value, JobState.RUNNING.value],
    ):
        obsolete.append(await _cancel(conn, row, "replaced by a newer upload"))
    job_id = await conn.fetchval(
        """
        INSERT INTO jobs (content_id, upload_id, uploader_id, source, max_attempts)
        VALUES ($1, $2, $3, $4, $5) RETURNING id
        """,
        content_id,
        upload_id,
        uploader_id,
        source,
        max_attempts,
    )
    return [job_view(await _written_job(conn, job_id)), *obsolete]


# --- the pool's side ----------------------------------------------------------------------------


async def register_workers(conn: asyncpg.Connection, slots: list[WorkerSlot]) -> None:
    await conn.execute(
        f"DELETE FROM workers WHERE heartbeat_at < now() - interval '{FORGET_WORKERS_AFTER}'"  # noqa: S608 - a constant of this module
    )
    await conn.executemany(
        """
        INSERT INTO workers (id, node_id, kind, host, pid) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE SET node_id = EXCLUDED.node_id, kind = EXCLUDED.kind,
            host = EXCLUDED.host, pid = EXCLUDED.pid, job_id = NULL,
            started_at = now(), heartbeat_at = now()
        """,
        [(s.id, s.node_id, s.kind.value, s.host, s.pid) for s in slots],
    )


async def unregister_workers(conn: asyncpg.Connection, worker_ids: list[str]) -> None:
    await conn.execute("DELETE FROM workers WHERE id = ANY($1)", worker_ids)


async def renew_workers(conn: asyncpg.Connection, worker_ids: list[str]) -> None:
    await conn.execute("UPDATE workers SET heartbeat_at = now() WHERE id = ANY($1)", worker_ids)


async def claim(
    conn: asyncpg.Connection,
    *,
    worker_id: str,
    node_id: str,
    lease_id: str,
    lease_seconds: float,
    workdir: str,
) -> ClaimedJob | None:
    """Start an attempt at the oldest queued job whose retry delay (after a crash) has passed,
    or return None when there is none.

    `lease_id` and `workdir` (where this attempt writes) are chosen by the worker.
    """
    row = await conn.fetchrow(
        """
        WITH next AS (
            SELECT id, workdir FROM jobs
            WHERE state = 'queued' AND (retry_at IS NULL OR retry_at <= now())
            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs j SET
            state = 'running', attempts = j.attempts + 1, lease_id = $1,
            lease_until = now() + make_interval(secs => $2), worker_id = $3, node_id = $4,
            heartbeat_at = now(), started_at = now(), stage = 'probing', progress = 0,
            eta_seconds = NULL, renditions = '[]', workdir = $5, error = NULL,
            finished_at = NULL, retry_at = NULL, updated_at = now()
        FROM next WHERE j.id = next.id
        RETURNING j.*, next.workdir AS stale_workdir,
            (SELECT course_id FROM contents c WHERE c.id = j.content_id) AS course_id,
            extract(epoch FROM now() - j.created_at)::float8 AS queued_seconds
        """,
        lease_id,
        lease_seconds,
        worker_id,
        node_id,
        workdir,
    )
    if row is None:
        return None
    # The one move the statement makes; an illegal one raises and rolls the claim back.
    check_move(row["id"], JobState.QUEUED, JobState.RUNNING)
    await conn.execute("UPDATE workers SET job_id = $2 WHERE id = $1", worker_id, row["id"])
    return ClaimedJob(
        lease=Lease(row["id"], lease_id, worker_id),
        attempt=row["attempts"],
        max_attempts=row["max_attempts"],
        content_id=row["content_id"],
        course_id=row["course_id"],
        uploader_id=row["uploader_id"],
        source=row["source"],
        stale_workdir=row["stale_workdir"],
        queued_seconds=row["queued_seconds"],
    )


async def renew(
    conn: asyncpg.Connection,
    lease: Lease,
    lease_seconds: float,
    stage: str,
    progress: float,
    eta_seconds: float | None,
) -> LeaseStatus:
    """Extend the lease and record progress; say whether the job is still the caller's."""
    renewed = await conn.fetchval(
        """
        UPDATE jobs SET lease_until = now() + make_interval(secs => $3), heartbeat_at = now(),
            stage = $4, progress = $5, eta_seconds = $6, updated_at = now()
        WHERE id = $1 AND lease_id = $2 AND state = 'running'
        RETURNING true
        """,
        lease.job_id,
        lease.lease_id,
        lease_seconds,
        stage,
        min(max(progress, 0.0), 1.0),
        eta_seconds,
    )
    return LeaseStatus.HELD if renewed else await _why_not_held(conn, lease)


async def _why_not_held(conn: asyncpg.Connection, lease: Lease) -> LeaseStatus:
    return _not_held(await _job(conn, lease.job_id))


def _not_held(row: asyncpg.Record | None) -> LeaseStatus:
    """Why a lease no longer holds the job in this row (None: the job is gone)."""
    if row is None:
        return LeaseStatus.GONE
    return LeaseStatus.CANCELLED if row["state"] == JobState.CANCELLED else LeaseStatus.LOST


async def add_rendition(
    conn: asyncpg.Connection, lease: Lease, rendition: Rendition
) -> LeaseStatus:
    """Record that a rendition became playable, so the manifest lists it before the job ends."""
    added = await conn.fetchval(
        """
        UPDATE jobs SET renditions = renditions || jsonb_build_array($3::jsonb),
            updated_at = now()
        WHERE id = $1 AND lease_id = $2 AND state = 'running'
        RETURNING true
        """,
        lease.job_id,
        lease.lease_id,
        msgspec.json.encode(rendition).decode(),
    )
    return LeaseStatus.HELD if added else await _why_not_held(conn, lease)


async def complete(
    conn: asyncpg.Connection, lease: Lease, manifest: MediaManifest, published: str
) -> Completion | LeaseStatus:
    """Mark the job done and make `published` (a directory holding the manifest's files) the
    content's video, and put a first video into its learners' digests (lms/store/digests.py);
    when the caller no longer holds the lease, write nothing and say why."""
    row = await _job(conn, lease.job_id, lock=True)
    if row is None or not _holds(row, lease):
        return _not_held(row)
    check_move(lease.job_id, JobState.RUNNING, JobState.DONE)
    await conn.execute(
        """
        UPDATE jobs SET state = 'done', stage = NULL, progress = 1, eta_seconds = NULL,
            lease_until = NULL, workdir = NULL, finished_at = now(), updated_at = now()
        WHERE id = $1
        """,
        lease.job_id,
    )
    replaced = await conn.fetchval(
        "SELECT path FROM videos WHERE content_id = $1", row["content_id"]
    )
    await conn.execute(
        """
        INSERT INTO videos (content_id, job_id, path, manifest) VALUES ($1, $2, $3, $4::jsonb)
        ON CONFLICT (content_id) DO UPDATE SET job_id = EXCLUDED.job_id, path = EXCLUDED.path,
            manifest = EXCLUDED.manifest, published_at = now()
        """,
        row["content_id"],
        lease.job_id,
        published,
        msgspec.json.encode(manifest).decode(),
    )
    await conn.execute(
        "UPDATE contents SET duration_seconds = $2 WHERE id = $1",
        row["content_id"],
        manifest.duration,
    )
    await conn.execute("UPDATE workers SET job_id = NULL WHERE id = $1", lease.worker_id)
    if replaced is None:  # first published: news for the course's learners (a re-upload is not)
        await digests.add_to_digests(conn, row["content_id"])
    return Completion(replaced=replaced)


async def fail_attempt(
    conn: asyncpg.Connection, lease: Lease, reason: str, *, retryable: bool
) -> JobView | LeaseStatus:
    """End the attempt: back to the queue if `retryable` and attempts are left (claimable
    after its `retry_delay`), else failed. When the caller no longer holds the lease, write
    nothing and say why."""
    row = await _job(conn, lease.job_id, lock=True)
    if row is None or not _holds(row, lease):
        return _not_held(row)
    new = after_failed_attempt(row["attempts"], row["max_attempts"], retryable=retryable)
    check_move(lease.job_id, JobState.RUNNING, new)
    retry_in = retry_delay(row["attempts"]) if new is JobState.QUEUED else None
    await _end_attempt(conn, lease.job_id, new, reason, retry_in=retry_in)
    await conn.execute("UPDATE workers SET job_id = NULL WHERE id = $1", lease.worker_id)
    return job_view(await _written_job(conn, lease.job_id))


async def release(conn: asyncpg.Connection, lease: Lease) -> None:
    """Give the job back to the queue without counting the attempt (the worker is stopping)."""
    if await _moving(conn, lease.job_id, JobState.QUEUED, lease) is None:
        return
    await _end_attempt(conn, lease.job_id, JobState.QUEUED, None, uncount=True)
    await conn.execute("UPDATE workers SET job_id = NULL WHERE id = $1", lease.worker_id)


async def reap(conn: asyncpg.Connection) -> list[JobView]:
    """Requeue (or fail, when their attempts are used up) running jobs whose lease ran out."""
    reaped = []
    for row in await conn.fetch(
        f"""{_JOB} WHERE j.state = 'running' AND j.lease_until < now()
        FOR UPDATE OF j SKIP LOCKED"""
    ):
        new = after_failed_attempt(row["attempts"], row["max_attempts"], retryable=True)
        check_move(row["id"], JobState.RUNNING, new)
        await _end_attempt(conn, row["id"], new, LEASE_EXPIRED)
        reaped.append(job_view(await _written_job(conn, row["id"])))
    return reaped


async def _end_attempt(
    conn: asyncpg.Connection,
    job_id: int,
    new: JobState,
    error: str | None,
    *,
    uncount: bool = False,
    retry_in: float | None = None,
) -> None:
    # The attempt's workdir stays recorded: the next claim hands it over for removal.
    await conn.execute(
        """
        UPDATE jobs SET state = $2, error = coalesce($3, error), stage = NULL,
            eta_seconds = NULL, lease_until = NULL, renditions = '[]',
            attempts = attempts - $4,
            finished_at = CASE WHEN $2 = 'queued' THEN NULL ELSE now() END,
            retry_at = now() + make_interval(secs => $5), updated_at = now()
        WHERE id = $1
        """,
        job_id,
        new.value,
        error,
        1 if uncount else 0,
        retry_in,
    )


# --- the jobs view (edges) ----------------------------------------------------------------------


async def job_by_id(conn: asyncpg.Connection, job_id: int) -> tuple[JobView, int] | None:
    """The job and the owner of its course (for access checks)."""
    row = await _job(conn, job_id)
    return None if row is None else (job_view(row), row["owner_id"])


async def list_jobs(
    conn: asyncpg.Connection,
    *,
    owner_id: int | None,
    state: JobState | None,
    limit: int,
    offset: int,
) -> list[JobView]:
    """Newest first; only jobs of `owner_id`'s courses unless it is None."""
    rows = await conn.fetch(
        f"""{_JOB}
        WHERE ($1::bigint IS NULL OR co.owner_id = $1) AND ($2::text IS NULL OR j.state = $2)
        ORDER BY j.id DESC LIMIT $3 OFFSET $4""",
        owner_id,
        None if state is None else state.value,
        limit,
        offset,
    )
    return [job_view(row) for row in rows]


async def cancel(conn: asyncpg.Connection, job_id: int) -> JobView | None:
    """Cancel a queued or running job; its worker notices at its next heartbeat (or sooner,
    when told). None when there is no such job; `IllegalMove` when it has finished."""
    row = await _moving(conn, job_id, JobState.CANCELLED)
    return None if row is None else await _cancel(conn, row, None)


async def _cancel(conn: asyncpg.Connection, row: asyncpg.Record, error: str | None) -> JobView:
    check_move(row["id"], JobState(row["state"]), JobState.CANCELLED)
    await conn.execute(
        """
        UPDATE jobs SET state = 'cancelled', stage = NULL, eta_seconds = NULL,
            lease_until = NULL, error = $2, finished_at = now(), updated_at = now()
        WHERE id = $1
        """,
        row["id"],
        error,
    )
    return job_view(await _written_job(conn, row["id"]))


async def retry(conn: asyncpg.Connection, job_id: int) -> JobView | None:
    """Queue a failed or cancelled job again with a fresh set of attempts."""
    row = await _job(conn, job_id, lock=True)
    if row is None:
        return None
    check_retry(job_id, JobState(row["state"]))
    await conn.execute(
        """
        UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, progress = 0,
            finished_at = NULL, retry_at = NULL, updated_at = now()
        WHERE id = $1
        """,
        job_id,
    )
    return job_view(await _written_job(conn, job_id))


async def newest_job(conn: asyncpg.Connection, content_id: int) -> asyncpg.Record | None:
    """The content's most recent job (a newer upload's job replaces the older ones)."""
    return await conn.fetchrow(
        f"{_JOB} WHERE j.content_id = $1 ORDER BY j.id DESC LIMIT 1", content_id
    )


async def count_by_state(conn: asyncpg.Connection) -> dict[JobState, int]:
    """How many jobs each state holds, every state present (0 when none): the queue's depth in
    `/metrics` (one scan of the table, which holds a row per upload)."""
    rows = await conn.fetch("SELECT state, count(*) AS jobs FROM jobs GROUP BY state")
    counts = dict.fromkeys(JobState, 0)
    counts.update({JobState(row["state"]): row["jobs"] for row in rows})
    return counts


async def list_workers(conn: asyncpg.Connection, alive_seconds: float) -> list[WorkerView]:
    rows = await conn.fetch(
        """
        SELECT *, heartbeat_at > now() - make_interval(secs => $1) AS alive
        FROM workers ORDER BY node_id, id
        """,
        alive_seconds,
    )
    return [msgspec.convert(dict(row.items()), WorkerView) for row in rows]
