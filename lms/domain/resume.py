"""Where a learner picks a course up, and when they finished it. Pure; no I/O.

The content to resume is the one they last opened and have not completed: leaving a lecture
half-way and coming back should land in it, not in an earlier one skipped on purpose. Nothing
opened and unfinished, it is the first content not completed in course order, from its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from proto.progress import ContentProgress


def resume_content(contents: Sequence[ContentProgress]) -> ContentProgress | None:
    """The content to resume among a course's `contents` (in course order); None when every
    one is completed or there are none."""
    unfinished = [c for c in contents if not c.completed]
    opened = [c for c in unfinished if c.updated_at is not None]
    if opened:
        # The latest opened (`max` keeps the first of equals: the earlier in course order).
        return max(opened, key=lambda c: c.updated_at)  # type: ignore[arg-type,return-value]
    return unfinished[0] if unfinished else None


def finished_at(contents: Sequence[ContentProgress]) -> datetime | None:
    """When the course was finished: its last content's completion, once all are completed
    (None otherwise, and for a course with no contents)."""
    if not contents or not all(c.completed for c in contents):
        return None
    return max(c.completed_at for c in contents if c.completed_at is not None)
