"""The dashboards' cache tags that the node's own events outdate, invalidated once per batch.

Theory of operation
-------------------
The progress writer and the transcoder pool publish events through an `EventSink` they are
handed at construction (they know nothing of the cache). The node hands them `publish` here,
which passes each event on to the live layer unchanged and gathers the tags it outdates. The
writer publishes a committed batch's events one after another without waiting in between (the
live layer only queues), so they all land before this object's task next runs: it then makes
one `Cache.invalidate` call for all of them. Events arriving while that call waits on Redis
are gathered for the next call, so there is never more than one call per batch, and under
load fewer.

A progress change outdates its learner (their dashboards), its course and content (the
course's analytics) and the platform (the admin dashboard). A transcode job outdates its
course, content and the platform when its status moves (a probe sets the video's duration, a
finished job publishes it, the queue's counts change), not on each progress tick.
"""

from __future__ import annotations

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
    """Start with ``await nursery.start(invalidations.run)``; hand `publish` to producers."""

    def __init__(self, cache: Cache, publish: EventSink) -> None:
        self._cache = cache
        self._publish = publish
        self._pending: set[str] = set()
        self._wake = trio.Event()
        self._job_status: dict[int, str] = {}
        self._calls = 0

    async def publish(self, event: Event) -> None:
        """Pass `event` on, and mark its tags for the next invalidation. Never waits itself."""
        await self._publish(event)
        outdated = self._outdated(event)
        if outdated:
            self._pending.update(outdated)
            self._wake.set()

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
