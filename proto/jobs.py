"""Transcode jobs as they cross boundaries: between the transcoder pool and the durable queue it
claims from, and in `/api/v1/jobs` and the video manifest.

Two vocabularies: `JobState` is where a job is in the queue (the table's `state`, moved only as
`lms/domain/jobs.py` allows); `JobStatus` is what people see (events, manifest, jobs view), which
splits a running job by its stage.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from proto.api import Response


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    PROBING = "probing"
    TRANSCODING = "transcoding"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WorkerKind(enum.StrEnum):
    NODE = "node"  # a slot of a node's pool
    WORKER = "worker"  # a slot of an `lms worker` process


class LeaseStatus(enum.Enum):
    """What a worker learns when it renews its lease on a job."""

    HELD = "held"  # still ours: carry on
    CANCELLED = "cancelled"  # someone cancelled the job: stop and clean up
    GONE = "gone"  # the job was deleted (its content was): stop and clean up
    LOST = "lost"  # the lease ran out and another worker took the job: stop, publish nothing


# --- between the pool and the queue -----------------------------------------------------------


class Lease(msgspec.Struct, frozen=True, gc=False):
    """A worker's hold on one attempt of a job; every change it makes is fenced on `lease_id`."""

    job_id: int
    lease_id: str
    worker_id: str


class ClaimedJob(msgspec.Struct, frozen=True, gc=False):
    lease: Lease
    attempt: int  # 1 for the first attempt
    max_attempts: int
    content_id: int
    course_id: int
    uploader_id: int
    source: str  # the uploaded file, relative to the media volume
    stale_workdir: str | None  # a previous attempt's output, relative, to remove
    # Seconds since the job was queued (its upload finished), by the database's clock at the
    # claim: the start of the wait for a playable video, free of any skew between machines.
    queued_seconds: float


class WorkerSlot(msgspec.Struct, frozen=True, gc=False):
    """One transcoder slot, as it registers itself in the `workers` table."""

    id: str
    node_id: str
    kind: WorkerKind
    host: str
    pid: int


class Completion(msgspec.Struct, frozen=True, gc=False):
    """A fenced completion went through; `replaced` is the previous published dir, if any."""

    replaced: str | None


class JobsWaiting(msgspec.Struct, frozen=True, gc=False, tag="jobs_waiting"):
    """To a transcoder pool: a job was queued, idle slots should claim now, not at their next
    poll."""


class StopJob(msgspec.Struct, frozen=True, gc=False, tag="stop_job"):
    """To a transcoder pool: the job was cancelled; if one of its slots runs it, stop now rather
    than at the next heartbeat."""

    job_id: int


PoolMessage = JobsWaiting | StopJob


# --- `/api/v1/jobs` ---------------------------------------------------------------------------


class JobView(Response, frozen=True):
    id: int
    content_id: int
    course_id: int
    uploader_id: int
    state: JobState
    status: JobStatus
    stage: str | None
    progress: float
    eta_seconds: float | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    node_id: str | None
    heartbeat_at: datetime | None
    renditions: list[str]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class WorkerView(Response, frozen=True):
    id: str
    node_id: str
    kind: WorkerKind
    host: str
    pid: int
    job_id: int | None
    started_at: datetime
    heartbeat_at: datetime
    alive: bool  # renewed within the last few lease periods


# --- the video manifest -----------------------------------------------------------------------


class RenditionView(Response, frozen=True, omit_defaults=True):
    """One quality. Its URLs are signed (they open without a token until the manifest's
    `expires_at`); relative URIs inside its playlist inherit the signature."""

    label: str
    width: int
    height: int
    bitrate: int
    url: str | None  # progressive MP4 (HTTP ranges); None until its file is complete
    hls: str | None = None  # this rendition's HLS media playlist
    codecs: str | None = None  # as in the HLS master's CODECS: "avc1.64001f,mp4a.40.2"
    size: int | None = None  # bytes of the MP4, once complete


class VideoManifest(Response, frozen=True, omit_defaults=True):
    status: JobStatus
    progress: float
    renditions: list[RenditionView]
    course_id: int  # the content's course: a player reports progress on its progress socket
    # The asking viewer's saved position (seconds) and whether they completed the video.
    resume_at: float
    completed: bool
    expires_at: int | None = None  # unix seconds: when the signed URLs below stop opening
    error: str | None = None
    hls_master: str | None = None
    thumbnail: str | None = None
    storyboard: str | None = None
    preview: str | None = None
    duration: float | None = None
