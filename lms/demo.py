"""The demo course seeded into an empty embedded database, so `make run` has something to show:
an instructor, a learner, and a course whose lecture is a short video the node makes and
transcodes itself on its first run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from lms.accounts.passwords import hash_password
from lms.domain.access import Principal
from lms.store import demo
from lms.store.database import Database
from lms.uploads.service import Uploads

log = structlog.get_logger()

DEMO_PASSWORD = "demo-password"  # noqa: S105 - the demo's published password (LMS_SEED_DEMO, local trials)
INSTRUCTOR_EMAIL = "instructor@demo.lms"
LEARNER_EMAIL = "learner@demo.lms"
LECTURE_FILENAME = "sample-lecture.mp4"


@dataclass(frozen=True)
class Demo:
    """What a newcomer is told: the logins, and the demo course and lecture (None once they are
    deleted, or when courses existed before and no demo was seeded)."""

    instructor: str
    learner: str
    password: str
    course_id: int | None
    lecture_id: int | None


async def seed_demo(db: Database, uploads: Uploads) -> Demo:
    """Create the demo instructor, learner and course unless any course exists already; give
    the course's lecture a video unless it has one (or a transcode job) already.

    The video is made (about a second of CPU, in a worker thread) and queued as an upload by
    the instructor would be, so the node's own transcoder pool takes it. Two nodes starting at
    once on a fresh database may both make one; the later job publishes the same lecture again.
    """
    password_hash = await hash_password(DEMO_PASSWORD)
    lecture = await db.transaction(demo.seed, password_hash, INSTRUCTOR_EMAIL, LEARNER_EMAIL)
    if lecture is not None and not lecture.has_source:
        job = await uploads.make_file(
            Principal(lecture.instructor_id, lecture.instructor_role),
            lecture.course_id,
            lecture.content_id,
            LECTURE_FILENAME,
            _write_lecture,
        )
        log.info("demo_lecture_queued", content_id=lecture.content_id, job_id=job.id)
    return Demo(
        INSTRUCTOR_EMAIL,
        LEARNER_EMAIL,
        DEMO_PASSWORD,
        course_id=None if lecture is None else lecture.course_id,
        lecture_id=None if lecture is None else lecture.content_id,
    )


def _write_lecture(path: Path) -> None:
    # Imported here, in the worker thread and on a first run only: a node otherwise leaves PyAV
    # (and its memory) to its transcoder processes.
    from media.synthetic import write_sample_lecture

    write_sample_lecture(path)
