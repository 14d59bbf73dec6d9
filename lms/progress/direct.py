"""Progress writes without group commit: one transaction per update, straight from the caller.

The baseline the benchmarks measure group commit against, selected with
``LMS_PROGRESS_WRITES=direct`` (for benchmarking only). It runs the same store function with
the same checks and publishes the same events; only the batching differs, so the comparison
measures group commit and nothing else.
"""

from __future__ import annotations

from actors.progress_writer import PUBLISH_BUDGET, Outcome, publish_events
from lms.domain.progress import changes
from lms.store import progress as progress_store
from lms.store.database import Database
from proto.events import EventSink
from proto.progress import ProgressWrite


class DirectWrites:
    def __init__(self, db: Database, publish: EventSink) -> None:
        self._db = db
        self._publish = publish

    async def record(self, write: ProgressWrite) -> Outcome:
        """Store `write` in a transaction of its own; return once committed (or refused)."""
        outcomes = await self._db.connection(progress_store.apply_batch, [write])
        await publish_events(self._publish, changes([write], outcomes), budget=PUBLISH_BUDGET)
        return outcomes[0]
