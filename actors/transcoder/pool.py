"""The TranscoderPool actor: N slots that take jobs from the durable queue and run them.

Each slot loops: claim a job, run one `Attempt` (a worker process, a lease kept alive, events),
claim again; with nothing to claim it waits for a `JobsWaiting` hint or its next poll. Beside the
slots, a housekeeping task renews the slots' rows in the workers table and reaps jobs whose
lease ran out (a worker or node died), so any pool finishes what another one dropped.

Cancelling `run` (node or `lms worker` shutdown) stops every worker process and gives its job
back to the queue uncounted; the slots' rows are removed.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import trio

from actors.runtime import Inbox
from actors.transcoder.attempt import CLEANUP_TIMEOUT, Attempt, AttemptContext
from actors.transcoder.events import job_event, send_event
from actors.transcoder.figures import TranscodeFigures
from actors.transcoder.media_volume import MediaVolume
from actors.transcoder.queue import JobQueue, QueueUnavailable
from actors.transcoder.worker_process import WORKER_COMMAND
from proto.events import EventSink
from proto.jobs import (
    JobStatus,
    JobsWaiting,
    LeaseStatus,
    PoolMessage,
    StopJob,
    WorkerKind,
    WorkerSlot,
)

MAILBOX_CAPACITY = 64


@dataclass(frozen=True)
class PoolConfig:
    media_dir: Path
    node_id: str
    kind: WorkerKind
    slots: int
    lease_seconds: float
    # How long a slot waits for a hint before looking at the queue again: the latency for jobs
    # queued by other processes, which cannot send this pool a hint.
    poll_seconds: float = 1.0
    grace: float = 5.0  # seconds between SIGTERM and SIGKILL for a stopped worker
    command: Sequence[str] = WORKER_COMMAND
    host: str = field(default_factory=socket.gethostname)

    @property
    def heartbeat(self) -> float:
        """Seconds between renewals: several per lease, and often enough that progress in the
        jobs view is fresh."""
        return min(self.lease_seconds / 3, 2.0)


class TranscoderPool:
    """Runs transcode jobs from a `JobQueue` in worker processes, `config.slots` at a time.

    Mailbox (`PoolMessage`, capacity `MAILBOX_CAPACITY`): hints on top of the durable queue. The
    jobs themselves wait in PostgreSQL, where back-pressure is free (a long queue is just rows).
    Senders use `tell_nowait` and drop a hint on `MailboxFull`: a queued `JobsWaiting` covers a
    dropped one, and a dropped `StopJob` is caught by the attempt's next lease renewal.

    `figures` are shared by its incarnations (its starter keeps them, for `/metrics`).
    """

    def __init__(
        self,
        inbox: Inbox[PoolMessage],
        queue: JobQueue,
        config: PoolConfig,
        publish: EventSink,
        figures: TranscodeFigures | None = None,
    ) -> None:
        self._inbox = inbox
        self._queue = queue
        self._config = config
        self._work_arrived = trio.Event()
        self._running: dict[int, Attempt] = {}
        self._context = AttemptContext(
            queue=queue,
            volume=MediaVolume(config.media_dir),
            publish=publish,
            command=config.command,
            heartbeat=config.heartbeat,
            lease_seconds=config.lease_seconds,
            grace=config.grace,
            requeued=self._wake,
            figures=TranscodeFigures() if figures is None else figures,
        )
        self._log = structlog.get_logger().bind(actor="transcoder_pool", node_id=config.node_id)
        # Unique per incarnation, so a restarted pool never mistakes an old row for its own.
        prefix = f"{config.node_id}/{uuid.uuid4().hex[:6]}"
        self._slots = [
            WorkerSlot(f"{prefix}/{n}", config.node_id, config.kind, config.host, os.getpid())
            for n in range(config.slots)
        ]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._queue.register(self._slots)
        try:
            async with trio.open_nursery() as nursery:
                for slot in self._slots:
                    nursery.start_soon(self._slot, slot, name=f"transcoder slot {slot.id}")
                nursery.start_soon(self._housekeeping)
                self._log.info("transcoder_pool_started", slots=len(self._slots))
                task_status.started()
                async for message in self._inbox:
                    self._handle(message)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
                try:
                    await self._queue.unregister([slot.id for slot in self._slots])
                except QueueUnavailable as exc:
                    self._log.warning("transcoder_unregister_failed", error=str(exc))

    def _handle(self, message: PoolMessage) -> None:
        if isinstance(message, JobsWaiting):
            self._wake()
        elif isinstance(message, StopJob):
            attempt = self._running.get(message.job_id)
            if attempt is not None:
                attempt.stop(LeaseStatus.CANCELLED)

    def _wake(self) -> None:
        self._work_arrived.set()
        self._work_arrived = trio.Event()

    async def _slot(self, slot: WorkerSlot) -> None:
        while True:
            lease_id = str(uuid.uuid4())
            try:
                job = await self._queue.claim(slot.id, lease_id, MediaVolume.workdir(lease_id))
            except QueueUnavailable as exc:
                self._log.warning("job_queue_unavailable", slot=slot.id, error=str(exc))
                job = None
            if job is None:
                with trio.move_on_after(self._config.poll_seconds):
                    await self._work_arrived.wait()
                continue
            attempt = Attempt(job, self._context)
            self._running[job.lease.job_id] = attempt
            try:
                await attempt.run()
            except QueueUnavailable as exc:
                # The attempt is abandoned; its lease runs out and a reaper requeues the job.
                self._log.warning("job_queue_unavailable", slot=slot.id, error=str(exc))
            finally:
                del self._running[job.lease.job_id]

    async def _housekeeping(self) -> None:
        slot_ids = [slot.id for slot in self._slots]
        while True:
            try:
                await self._queue.renew_workers(slot_ids)
                reaped = await self._queue.reap()
            except QueueUnavailable as exc:
                self._log.warning("job_queue_unavailable", error=str(exc))
                reaped = []
            for view in reaped:
                self._log.info("job_lease_expired", job_id=view.id, now=view.state.value)
                self._context.figures.attempt_failed(final=view.status is not JobStatus.QUEUED)
                await send_event(self._context.publish, job_event(view))
                if view.status is JobStatus.QUEUED:
                    self._wake()
            await trio.sleep(self._config.heartbeat)
