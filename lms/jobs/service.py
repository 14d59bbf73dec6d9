"""The jobs view and its two actions, and the news that goes out when jobs change.

Admins see and act on every job; an instructor on the jobs of their own courses; learners on none.
"""

from __future__ import annotations

import builtins
import contextlib

from actors.runtime import ActorError, Address
from actors.transcoder.events import job_event, send_event
from lms.domain.access import Principal, may_manage_course
from lms.domain.jobs import IllegalMove
from lms.errors import Conflict, Forbidden, NotFound
from lms.store import jobs
from lms.store.database import Database
from proto.api import Role
from proto.events import EventSink
from proto.jobs import JobState, JobStatus, JobsWaiting, JobView, PoolMessage, StopJob, WorkerView


class Jobs:
    def __init__(
        self,
        db: Database,
        publish: EventSink,
        pool: Address[PoolMessage] | None,
        *,
        lease_seconds: float,
    ) -> None:
        self._db = db
        self._publish = publish
        self._pool = pool
        self._lease_seconds = lease_seconds

    async def announce(self, changed: list[JobView]) -> None:
        """Publish what happened to these jobs, and hint this node's pool: claim the queued
        ones now, stop the cancelled ones now (other nodes' pools learn at their next poll or
        lease renewal)."""
        for view in changed:
            await send_event(self._publish, job_event(view))
            if view.status is JobStatus.QUEUED:
                self._hint(JobsWaiting())
            elif view.status is JobStatus.CANCELLED:
                self._hint(StopJob(view.id))

    def _hint(self, message: PoolMessage) -> None:
        if self._pool is not None:
            # A hint that cannot be delivered is covered by the pool's polling (see its
            # docstring), so a full or stopped mailbox is not the caller's problem.
            with contextlib.suppress(ActorError):
                self._pool.tell_nowait(message)

    async def list(
        self, who: Principal, *, state: JobState | None, limit: int, offset: int
    ) -> list[JobView]:
        if who.is_admin:
            owner_id = None
        elif who.role is Role.INSTRUCTOR:
            owner_id = who.user_id
        else:
            raise Forbidden("only instructors and admins see transcode jobs")
        return await self._db.transaction(
            jobs.list_jobs, owner_id=owner_id, state=state, limit=limit, offset=offset
        )

    async def get(self, who: Principal, job_id: int) -> JobView:
        found = await self._db.transaction(jobs.job_by_id, job_id)
        if found is None:
            raise NotFound(f"no job with id {job_id}")
        job, owner_id = found
        if not may_manage_course(who, owner_id):
            raise Forbidden("only the course's instructor or an admin sees its jobs")
        return job

    async def cancel(self, who: Principal, job_id: int) -> JobView:
        return await self._act(who, job_id, jobs.cancel)

    async def retry(self, who: Principal, job_id: int) -> JobView:
        return await self._act(who, job_id, jobs.retry)

    async def _act(self, who: Principal, job_id: int, action: jobs.JobAction) -> JobView:
        await self.get(who, job_id)
        try:
            changed = await self._db.transaction(action, job_id)
        except IllegalMove as exc:
            raise Conflict(str(exc)) from None
        if changed is None:
            raise NotFound(f"no job with id {job_id}")
        await self.announce([changed])
        return changed

    # In this class body `list` names the method above, hence builtins.list.
    async def workers(self, who: Principal) -> builtins.list[WorkerView]:
        if not who.is_admin:
            raise Forbidden("only admins see the transcode workers")
        # A slot that missed a few renewals in a row is presumed dead.
        return await self._db.transaction(jobs.list_workers, 3 * self._lease_seconds)
