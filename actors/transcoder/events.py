"""Turning job changes into `JobChanged` events, and handing them to the live layer."""

from __future__ import annotations

import structlog

from proto.events import EventSink, JobChanged
from proto.jobs import JobView

log = structlog.get_logger()


def job_event(view: JobView) -> JobChanged:
    return JobChanged(
        job_id=view.id,
        course_id=view.course_id,
        content_id=view.content_id,
        uploader_id=view.uploader_id,
        status=view.status.value,
        progress=view.progress,
        eta_seconds=view.eta_seconds,
        error=view.error,
        renditions=view.renditions,
    )


async def send_event(publish: EventSink, event: JobChanged) -> None:
    """Events are news, not state (the job's row is the truth): a live layer that cannot take
    one must not fail the job, so its error is logged and the event dropped."""
    try:
        await publish(event)
    except Exception as exc:
        log.warning("job_event_dropped", job_id=event.job_id, error=repr(exc))
