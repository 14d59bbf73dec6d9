"""Active users over the last day, week and month (DAU, WAU, MAU). Pure; no I/O.

The windows are trailing periods of 1, 7 and 30 days ending at `now`, not calendar days, so the
figures are the same in every time zone. They serve both the platform's DAU/WAU/MAU and a
course's active learners: the store counts, in one statement, the distinct users with activity
since each of `since(now)` (`lms.store.activity.active_users`, to the hour), and
`ActiveUsers.from_counts` names the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=30))


@dataclass(frozen=True, slots=True)
class ActiveUsers:
    day: int
    week: int
    month: int

    @classmethod
    def from_counts(cls, counts: Sequence[int]) -> ActiveUsers:
        """The counts of users active since each of `since(now)`, in that order."""
        day, week, month = counts
        return cls(day=day, week=week, month=month)


def since(now: datetime) -> list[datetime]:
    """Where each window (day, week, month) starts, for a count taken at `now`."""
    # In UTC: Python subtracts wall-clock time within one zone, and a day back from a local
    # `now` across a DST change would be 23 or 25 hours.
    utc_now = now.astimezone(UTC)
    return [utc_now - window for window in WINDOWS]
