"""One attempt at one job, from claim to a settled outcome.

Theory of operation
-------------------
The attempt prepares its work dir, starts the worker process on it and, beside it, renews its
lease every `heartbeat` seconds, recording progress. Frames from the worker become events
(throttled) and, for `RenditionReady`, a row update so the manifest lists the rendition at once.

It ends in exactly one of these ways:
- `Done`: the work dir is renamed into the content's published dir, then the completion is
  committed, fenced on the lease. Fenced out (another attempt owns the job now), it removes what
  it published and says nothing.
- `Failed` (the worker's verdict on the input, such as "not a video file"): failed for good.
- `Crashed`: the attempt fails; the queue requeues the job while attempts are left.
- stopped: the job was cancelled or deleted, or the lease was lost. The worker is stopped
  (SIGTERM, then SIGKILL after the grace) and the work dir removed.
- cancelled (the pool is stopping): the worker is stopped, the job given back to the queue
  without counting the attempt, and the work dir removed.
If the queue cannot be reached, the attempt is abandoned like a stopped one: its lease runs out
and the reaper requeues the job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import structlog
import trio

from actors.transcoder.events import job_event, send_event
from actors.transcoder.figures import TranscodeFigures
from actors.transcoder.media_volume import MediaVolume
from actors.transcoder.queue import JobQueue, QueueUnavailable
from actors.transcoder.worker_process import Crashed, Outcome, run_worker
from proto.events import EventSink, JobChanged
from proto.jobs import ClaimedJob, JobStatus, LeaseStatus
from proto.media import Done, Probed, Progress, RenditionReady, TranscodeSpec, WorkerFrame

# Progress events go out at most this often (stage changes and renditions go out at once).
EVENT_INTERVAL = 0.5
# Bound on the clean-up a stopping pool does for each attempt (release the lease, remove files).
CLEANUP_TIMEOUT = 5.0


@dataclass(frozen=True)
class AttemptContext:
    """What every attempt of one pool shares."""

    queue: JobQueue
    volume: MediaVolume
    publish: EventSink
    command: Sequence[str]
    heartbeat: float  # seconds between lease renewals
    lease_seconds: float
    grace: float  # seconds between SIGTERM and SIGKILL
    requeued: Callable[[], None]  # tells the pool a job went back to the queue
    figures: TranscodeFigures


class Attempt:
    def __init__(self, job: ClaimedJob, context: AttemptContext) -> None:
        self.job = job
        self._ctx = context
        self._lease = job.lease
        self._workdir = context.volume.workdir(job.lease.lease_id)
        self._claimed_at = trio.current_time()
        self._scope = trio.CancelScope()
        self._stopped: LeaseStatus | None = None
        self._settled = False
        self._stage = "probing"
        self._progress = 0.0
        self._eta: float | None = None
        self._renditions: list[str] = []
        self._last_event = -float("inf")
        self._log = structlog.get_logger().bind(
            job_id=job.lease.job_id, attempt=job.attempt, worker=job.lease.worker_id
        )

    def stop(self, why: LeaseStatus) -> None:
        """Stop the worker and abandon the attempt (the job was cancelled, deleted or lost)."""
        if self._stopped is None:
            self._stopped = why
        self._scope.cancel()

    async def run(self) -> None:
        try:
            await self._ctx.volume.prepare(self._workdir, self.job.stale_workdir)
            self._log.info("job_attempt_started")
            await self._event(JobStatus.PROBING)
            with self._scope:
                outcome = await self._transcode()
            if self._stopped is not None:
                await self._abandon()
            else:
                await self._settle(outcome)
        except QueueUnavailable as exc:
            self._log.warning("job_queue_unavailable", error=str(exc))
            await self._abandon()
        except OSError as exc:
            # The media volume, not the input, is at fault (full, unmounted): another attempt,
            # perhaps on another machine, may succeed.
            await self._settle(Crashed(f"media volume error: {exc.strerror or type(exc).__name__}"))
        finally:
            if not self._settled:
                with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
                    await self._give_back()

    async def _transcode(self) -> Outcome:
        spec = TranscodeSpec(
            source=str(self._ctx.volume.path(self.job.source)),
            outdir=str(self._ctx.volume.path(self._workdir)),
        )
        job_id, figures = self._lease.job_id, self._ctx.figures
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_lease)
            try:
                outcome = await run_worker(
                    spec,
                    self._on_frame,
                    command=self._ctx.command,
                    grace=self._ctx.grace,
                    on_started=partial(figures.worker_started, job_id),
                )
            finally:  # it has exited by now, however the call ended
                figures.worker_ended(job_id)
            nursery.cancel_scope.cancel()
        return outcome

    async def _keep_lease(self) -> None:
        last_renewed = trio.current_time()
        while True:
            await trio.sleep(self._ctx.heartbeat)
            try:
                status = await self._ctx.queue.renew(
                    self._lease, self._stage, self._progress, self._eta
                )
            except QueueUnavailable as exc:
                # A short outage should not throw away a long transcode: keep going while the
                # lease we hold may still be valid.
                if trio.current_time() - last_renewed < self._ctx.lease_seconds:
                    self._log.warning("job_lease_renewal_failed", error=str(exc))
                    continue
                status = LeaseStatus.LOST
            if status is not LeaseStatus.HELD:
                self.stop(status)
                return
            last_renewed = trio.current_time()

    async def _on_frame(self, frame: WorkerFrame) -> None:
        if isinstance(frame, Probed):
            self._log.info("job_probed", duration=frame.duration, size=(frame.width, frame.height))
        elif isinstance(frame, Progress):
            stage_changed = frame.stage != self._stage
            self._stage, self._progress, self._eta = frame.stage, frame.fraction, frame.eta_seconds
            now = trio.current_time()
            if stage_changed or now - self._last_event >= EVENT_INTERVAL:
                await self._event(self._status())
        elif isinstance(frame, RenditionReady):
            status = await self._ctx.queue.add_rendition(self._lease, frame.rendition)
            if status is not LeaseStatus.HELD:
                self.stop(status)
                return
            if not self._renditions:  # the video plays from now on
                waited = self.job.queued_seconds + trio.current_time() - self._claimed_at
                self._ctx.figures.playable(waited)
            self._renditions.append(frame.rendition.label)
            await self._event(self._status())

    def _status(self) -> JobStatus:
        return JobStatus.PROBING if self._stage == "probing" else JobStatus.TRANSCODING

    async def _settle(self, outcome: Outcome) -> None:
        if isinstance(outcome, Done):
            await self._publish(outcome)
            return
        retryable = isinstance(outcome, Crashed)
        # Instructors and admins read the reason: it names no server path.
        reason = self._ctx.volume.redacted(outcome.reason)
        view = await self._ctx.queue.fail(self._lease, reason, retryable=retryable)
        if isinstance(view, LeaseStatus):
            await self._fenced_out(view)
            return
        self._settled = True
        self._ctx.figures.attempt_failed(final=view.status is not JobStatus.QUEUED)
        await self._ctx.volume.remove(self._workdir)
        self._log.info("job_attempt_failed", reason=outcome.reason, now=view.state.value)
        await send_event(self._ctx.publish, job_event(view))
        if view.status is JobStatus.QUEUED:
            self._ctx.requeued()

    async def _publish(self, done: Done) -> None:
        volume = self._ctx.volume
        published = volume.published(self.job.content_id, self._lease.lease_id)
        await volume.publish(self._workdir, published)
        # Shielded: a stop arriving mid-commit must not leave us unsure whether it committed.
        # If the queue fails instead, the published dir stays: an unreferenced dir is garbage,
        # a removed one that the commit references would be a broken video.
        with trio.CancelScope(shield=True):
            completion = await self._ctx.queue.complete(self._lease, done.manifest, published)
        if isinstance(completion, LeaseStatus):
            await volume.remove(published)
            await self._fenced_out(completion)
            return
        self._settled = True
        self._ctx.figures.done(trio.current_time() - self._claimed_at, done.manifest.duration)
        if completion.replaced is not None:
            await volume.remove(completion.replaced)
        self._log.info("job_done", published=published)
        self._progress = 1.0
        self._renditions = [r.label for r in done.manifest.renditions]
        await self._event(JobStatus.READY)

    async def _fenced_out(self, why: LeaseStatus) -> None:
        """The job stopped being ours while the worker finished (cancelled, deleted, or lost
        to another worker): nothing was written, so this ends like a stopped attempt."""
        self._stopped = why
        await self._abandon()

    async def _abandon(self) -> None:
        self._settled = True
        await self._ctx.volume.remove(self._workdir)
        why = None if self._stopped is None else self._stopped.value
        self._log.info("job_attempt_stopped", why=why)
        if self._stopped is LeaseStatus.GONE:
            # Nobody else tells the uploader: the job vanished with its content.
            await self._event(JobStatus.CANCELLED)

    async def _give_back(self) -> None:
        """The pool is stopping: hand the job back uncounted and remove what we wrote."""
        try:
            await self._ctx.queue.release(self._lease)
        except QueueUnavailable as exc:
            self._log.warning("job_release_failed", error=str(exc))
        await self._ctx.volume.remove(self._workdir)
        self._log.info("job_attempt_released")

    async def _event(self, status: JobStatus) -> None:
        self._last_event = trio.current_time()
        job = self.job
        await send_event(
            self._ctx.publish,
            JobChanged(
                job_id=job.lease.job_id,
                course_id=job.course_id,
                content_id=job.content_id,
                uploader_id=job.uploader_id,
                status=status.value,
                progress=self._progress,
                eta_seconds=self._eta,
                renditions=list(self._renditions),
            ),
        )
