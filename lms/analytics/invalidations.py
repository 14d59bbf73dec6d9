"""The dashboards' cache tags that the node's own events outdate, invalidated once per batch.

Theory of operation
-------------------
Producers know nothing of the cache: they are handed hooks at construction. The progress
writer awaits `settle(events)` between its commit and its answers (its `before_answer` hook),
so a learner's next read after an acknowledged heartbeat is fresh on this node; the transcoder
pool publishes through `publish` here, which passes each event on to the live layer unchanged.
Both only gather the tags the events outdate and wake this object's task, which makes one
`Cache.invalidate` call for everything gathered; `settle` then waits for the call that took its
tags. Tags arriving while a call waits on Redis are gathered for the next call, so there is
never more than one call per batch, and under load (batches committing side by side) fewer.

A progress change outdates its learner (their dashboards), its course and content (the
course's analytics) and the platform (the admin dashboard). A transcode job outdates its
course, content and the platform when its status moves (a probe sets the video's duration, a
finished job publishes it, the queue's counts change), not on each progress tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog
import trio

from lms.analytics import tags
from lms.cache.cache import Cache
from proto.events import Event, EventSink, JobChanged, ProgressChanged

log = structlog.get_logger()

# Jobs whose last status is remembered (a job ends, and is forgotten, within minutes).
_JOBS_REMEMBERED = 4096
_ENDED = frozenset({"ready", "failed", "cancelled"})


class EventInvalidations:
    """Start with ``await nursery.start(invalidations.run)``; hand `publish` to producers that
    publish events, `settle` to the progress writer as its `before_answer` hook."""

    def __init__(self, cache: Cache, publish: EventSink) -> None:
        self._cache = cache
        self._publish = publish
        self._pending: set[str] = set()
        self._wake = trio.Event()
        self._job_status: dict[int, str] = {}
        self._calls = 0  # calls started; the next one takes what is pending
        self._done = 0  # calls finished, in order
        self._finished = trio.Event()  # set (and renewed) as each call finishes

    async def publish(self, event: Event) -> None:
        """Pass `event` on, and mark its tags for the next invalidation. Never waits itself."""
        await self._publish(event)
        self._mark(self._outdated(event))

    async def settle(self, events: Sequence[Event]) -> None:
        """Invalidate the tags `events` outdate; return once they are invalidated here and in
        Redis (other nodes hear of it through the Bus). Cancelling the wait leaves the
        invalidation to finish on its own."""
        if not self._mark(tag for event in events for tag in self._outdated(event)):
            return
        call = self._calls + 1  # the call that will take them (one may be under way)
        while self._done < call:
            await self._finished.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            outdated, self._pending = self._pending, set()
            self._calls += 1
            try:
                await self._cache.invalidate(*sorted(outdated))
            except Exception:  # the cache keeps Redis errors to itself: this is a bug, logged
                log.exception("cache_invalidation_failed", tags=len(outdated))
            finally:
                self._done += 1
                self._finished.set()
                self._finished = trio.Event()

    def _mark(self, outdated: Iterable[str]) -> bool:
        """Gather `outdated` for the next call; whether there was any."""
        tags = set(outdated)
        if not tags:
            return False
        self._pending |= tags
        self._wake.set()
        return True

    @property
    def calls(self) -> int:
        """`Cache.invalidate` calls made so far."""
        return self._calls

    def _outdated(self, event: Event) -> tuple[str, ...]:
        match event:
            case ProgressChanged():
                return (
                    tags.user(event.user_id),
                    tags.course(event.course_id),
                    tags.content(event.content_id),
                    tags.PLATFORM,
                )
            case JobChanged():
                if self._job_status.get(event.job_id) == event.status:
                    return ()
                self._job_status.pop(event.job_id, None)
                if event.status not in _ENDED:
                    self._job_status[event.job_id] = event.status
                    if len(self._job_status) > _JOBS_REMEMBERED:
                        del self._job_status[next(iter(self._job_status))]
                return (tags.course(event.course_id), tags.content(event.content_id), tags.PLATFORM)
        return ()
