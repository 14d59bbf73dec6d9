"""Progress writes without group commit: one transaction per update, straight from the caller.

The baseline the progress benchmark (tests/bench/progress.py) measures group commit against.
It runs the same store function with the same checks and publishes the same events; only the
batching differs, so the comparison measures group commit and nothing else.

    python -m tests.bench.direct_writes -m MODULE [ARGS...]

runs MODULE as ``__main__`` (as ``python -m MODULE ARGS`` would) with every node it starts
recording progress through `DirectWrites` instead of its `ProgressWriter`: the benchmark starts
``lms.cli serve`` under it (`tests.e2e.nodes.start_node`'s launcher), as an operator would start
a node, with only this one thing changed. Not part of the product: no setting selects it.
"""

from __future__ import annotations

import dataclasses
import runpy
import sys
from typing import Any

from actors.progress_writer import PUBLISH_BUDGET, Outcome, publish_events
from lms import node
from lms.config import Settings
from lms.domain.progress import changes
from lms.http.wire import Services
from lms.progress.service import ProgressService
from lms.store import progress as progress_store
from lms.store.database import Database
from proto.events import EventSink
from proto.progress import ProgressWrite

LAUNCHER = ["-m", "tests.bench.direct_writes"]


class DirectWrites:
    def __init__(self, db: Database, publish: EventSink) -> None:
        self._db = db
        self._publish = publish

    async def record(self, write: ProgressWrite) -> Outcome:
        """Store `write` in a transaction of its own; return once committed (or refused)."""
        outcomes = await self._db.connection(progress_store.apply_batch, [write])
        await publish_events(self._publish, changes([write], outcomes), budget=PUBLISH_BUDGET)
        return outcomes[0]


def install() -> None:
    """Make the nodes this process serves record progress through `DirectWrites` (their
    `ProgressWriter` still starts, and stays idle)."""
    built = node._services

    def services(
        settings: Settings, store: node.Store, actors: node.Actors, *rest: Any
    ) -> Services:
        direct = ProgressService(store.db, DirectWrites(store.db, actors.publish).record)
        return dataclasses.replace(built(settings, store, actors, *rest), progress=direct)

    node._services = services


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        raise SystemExit(__doc__)
    module, *args = sys.argv[2:]
    install()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
