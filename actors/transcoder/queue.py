"""What the transcoder pool needs from the durable job queue.

The pool is handed an implementation at construction (`lms.jobs.queue.JobQueue` runs it on
PostgreSQL); it never imports the store. Every method that acts for a running attempt is fenced on
its `Lease`: when the lease is no longer the job's current one, it changes nothing.
"""

from __future__ import annotations

from typing import Protocol

from proto.jobs import ClaimedJob, Completion, JobView, Lease, LeaseStatus, WorkerSlot
from proto.media import MediaManifest, Rendition


class QueueUnavailable(Exception):
    """The queue's store could not be reached; the call may be retried later."""


class JobQueue(Protocol):
    """Each method may raise `QueueUnavailable`."""

    async def register(self, slots: list[WorkerSlot]) -> None:
        """Record the slots as live workers (replacing rows of the same ids)."""

    async def unregister(self, worker_ids: list[str]) -> None: ...

    async def renew_workers(self, worker_ids: list[str]) -> None:
        """Tell the world these slots are still alive."""

    async def claim(self, worker_id: str, lease_id: str, workdir: str) -> ClaimedJob | None:
        """Start an attempt at the oldest queued job, writing to `workdir`; None when none."""

    async def renew(
        self, lease: Lease, stage: str, progress: float, eta_seconds: float | None
    ) -> LeaseStatus:
        """Extend the lease and record progress; say whether the job is still ours."""

    async def add_rendition(self, lease: Lease, rendition: Rendition) -> LeaseStatus: ...

    async def complete(
        self, lease: Lease, manifest: MediaManifest, published: str
    ) -> Completion | LeaseStatus:
        """Mark the job done with `published` as the content's video; if the lease no longer
        holds the job, change nothing and say why."""

    async def fail(self, lease: Lease, reason: str, *, retryable: bool) -> JobView | LeaseStatus:
        """End the attempt as failed (requeued while retryable attempts are left); if the lease
        no longer holds the job, change nothing and say why."""

    async def release(self, lease: Lease) -> None:
        """Give the job back to the queue without counting the attempt."""

    async def reap(self) -> list[JobView]:
        """Requeue or fail running jobs whose lease ran out; return them as they are now."""
