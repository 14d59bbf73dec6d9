"""Recording and reading progress: the one entry the HTTP and WebSocket edges both call.

`record` checks the update's shape here (no I/O), then hands it to the writer, which checks it
against the content and the enrolment inside the same transaction that stores it. So the hot
path reads nothing before the write, and nothing cached can be stale: a content deleted or an
enrolment withdrawn a moment ago is seen by the batch that would store the update.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

from actors.progress_writer import Outcome, ProgressWrites
from lms.domain.access import Principal
from lms.domain.progress import Refusal, Refused, prepare
from lms.errors import Conflict, Forbidden, Invalid, LmsError, NotFound
from lms.store import progress as progress_store
from lms.store.database import Database
from proto.progress import (
    CourseProgress,
    ProgressState,
    ProgressSummary,
    ProgressUpdate,
    ProgressWrite,
)

Recorder = Callable[[ProgressWrite], Awaitable[Outcome]]

# How long a caller waits for its batch to commit before it is told 504 (the write may still
# land; sending it again is harmless, merging is idempotent).
RECORD_TIMEOUT = 10.0

_STATUS: dict[Refusal, type[LmsError]] = {
    Refusal.INVALID: Invalid,
    Refusal.UNKNOWN_CONTENT: NotFound,
    Refusal.NOT_ENROLLED: Forbidden,
    Refusal.NOT_READY: Conflict,
}


def group_committed(writes: ProgressWrites, timeout: float = RECORD_TIMEOUT) -> Recorder:
    """Record through the node's `ProgressWriter`, which group-commits."""
    return partial(writes.record, timeout=timeout)


class ProgressService:
    def __init__(self, db: Database, record: Recorder) -> None:
        self._db = db
        self._record = record

    async def record(
        self, who: Principal, update: ProgressUpdate, *, device_id: str | None = None
    ) -> ProgressState:
        """Merge `update` into the caller's stored progress; return the state once committed.

        `device_id` names the sending device, so the live layer does not echo the change back
        to it. Only enrolled learners record progress.

        Raises:
          Invalid: the update makes no sense (bad numbers, beyond the end, wrong for the kind).
          NotFound: no such content.  Forbidden: not enrolled in its course.
          Conflict: a video whose duration is not known yet (still being processed).
          ActorError: the writer is unavailable (AskTimeout if the commit took too long).
        """
        try:
            write = prepare(who.user_id, update, now=datetime.now(UTC), device_id=device_id)
        except Refused as refused:
            raise _error(refused) from None
        outcome = await self._record(write)
        if isinstance(outcome, Refused):
            raise _error(outcome)
        return outcome.state

    async def course(self, who: Principal, course_id: int) -> CourseProgress:
        """The caller's progress in one course they are enrolled in."""
        return await self._db.transaction(progress_store.course_progress_of, who.user_id, course_id)

    async def summary(self, who: Principal) -> ProgressSummary:
        """The caller's standing in every course they are enrolled in."""
        return await self._db.transaction(progress_store.summary_of, who.user_id)


def _error(refused: Refused) -> LmsError:
    return _STATUS[refused.reason](refused.message)
