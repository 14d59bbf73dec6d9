"""Active users over the last day, week and month (DAU, WAU, MAU). Pure; no I/O.

Each user counts in every window that reaches back to the last time they were seen: a learner's
last progress time for a course's active learners, or a user's latest activity hour for the
platform's DAU/WAU/MAU (there the answer is as fine as the hour). Windows are trailing periods
of 1, 7 and 30 days ending at `now`, not calendar days, so the figures are the same in every
time zone. A time a little after `now` (another node's clock ahead) counts as now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MONTH = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ActiveUsers:
    day: int
    week: int
    month: int


def active_users(last_seen: Iterable[datetime], now: datetime) -> ActiveUsers:
    """How many of the users last seen at `last_seen` (one time per user) were seen in each
    window ending at `now`."""
    day = week = month = 0
    for seen in last_seen:
        age = now - seen
        day += age <= DAY
        week += age <= WEEK
        month += age <= MONTH
    return ActiveUsers(day=day, week=week, month=month)
