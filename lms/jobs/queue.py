"""The transcoder pool's `JobQueue`, on PostgreSQL: each call is one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from actors.transcoder import QueueUnavailable
from lms.store import jobs
from lms.store.database import Database, StoreUnavailable
from proto.jobs import ClaimedJob, Completion, JobView, Lease, LeaseStatus, WorkerSlot
from proto.media import MediaManifest, Rendition


@asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    try:
        yield
    except StoreUnavailable as exc:
        raise QueueUnavailable(str(exc)) from exc


class PostgresJobQueue:
    def __init__(self, db: Database, *, node_id: str, lease_seconds: float) -> None:
        self._db = db
        self._node_id = node_id
        self._lease_seconds = lease_seconds

    async def register(self, slots: list[WorkerSlot]) -> None:
        async with _reachable():
            await self._db.transaction(jobs.register_workers, slots)

    async def unregister(self, worker_ids: list[str]) -> None:
        async with _reachable():
            await self._db.transaction(jobs.unregister_workers, worker_ids)

    async def renew_workers(self, worker_ids: list[str]) -> None:
        async with _reachable():
            await self._db.transaction(jobs.renew_workers, worker_ids)

    async def claim(self, worker_id: str, lease_id: str, workdir: str) -> ClaimedJob | None:
        async with _reachable():
            return await self._db.transaction(
                jobs.claim,
                worker_id=worker_id,
                node_id=self._node_id,
                lease_id=lease_id,
                lease_seconds=self._lease_seconds,
                workdir=workdir,
            )

    async def renew(
        self, lease: Lease, stage: str, progress: float, eta_seconds: float | None
    ) -> LeaseStatus:
        async with _reachable():
            return await self._db.transaction(
                jobs.renew, lease, self._lease_seconds, stage, progress, eta_seconds
            )

    async def add_rendition(self, lease: Lease, rendition: Rendition) -> LeaseStatus:
        async with _reachable():
            return await self._db.transaction(jobs.add_rendition, lease, rendition)

    async def complete(
        self, lease: Lease, manifest: MediaManifest, published: str
    ) -> Completion | LeaseStatus:
        async with _reachable():
            return await self._db.transaction(jobs.complete, lease, manifest, published)

    async def fail(self, lease: Lease, reason: str, *, retryable: bool) -> JobView | LeaseStatus:
        async with _reachable():
            return await self._db.transaction(jobs.fail_attempt, lease, reason, retryable=retryable)

    async def release(self, lease: Lease) -> None:
        async with _reachable():
            await self._db.transaction(jobs.release, lease)

    async def reap(self) -> list[JobView]:
        async with _reachable():
            return await self._db.transaction(jobs.reap)
