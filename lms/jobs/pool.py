"""Starting a node's (or an `lms worker`'s) TranscoderPool against the database."""

from __future__ import annotations

from actors.runtime import Address, Supervisor
from actors.transcoder import MAILBOX_CAPACITY, PoolConfig, TranscodeFigures, TranscoderPool
from lms.config import Settings
from lms.jobs.queue import PostgresJobQueue
from lms.store.database import Database
from proto.events import EventSink
from proto.jobs import PoolMessage, WorkerKind

# The pool's name under its supervisor (readiness looks it up there).
POOL_NAME = "transcoder_pool"


async def start_transcoder_pool(
    supervisor: Supervisor,
    settings: Settings,
    db: Database,
    publish: EventSink,
    kind: WorkerKind,
    figures: TranscodeFigures,
) -> Address[PoolMessage] | None:
    """The pool's address, or None when `LMS_TRANSCODE_WORKERS=0` (a node that leaves
    transcoding to `lms worker` processes). The pool's incarnations count into `figures`."""
    if settings.transcode_workers == 0:
        return None
    queue = PostgresJobQueue(db, node_id=settings.node_id, lease_seconds=settings.job_lease_seconds)
    config = PoolConfig(
        media_dir=settings.media_dir,
        node_id=settings.node_id,
        kind=kind,
        slots=settings.transcode_workers,
        lease_seconds=settings.job_lease_seconds,
    )
    return await supervisor.start(
        POOL_NAME,
        lambda inbox: TranscoderPool(inbox, queue, config, publish, figures),
        capacity=MAILBOX_CAPACITY,
    )
