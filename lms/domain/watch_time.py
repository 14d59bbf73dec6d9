"""Watch time and completions over time, in a learner's local days or ISO weeks. Pure; no I/O.

Activity is stored per UTC hour; `buckets` puts each hour in the local date it starts on
(`lms.domain.local_days`), then in its day or in its ISO week (weeks start on Monday and are
named by that Monday). The answer covers the requested local dates `first..last` bucket by
bucket, empty buckets included, so a chart's x axis has no holes. Only activity on those dates
counts: when `first` or `last` falls mid-week, the first or last week holds only the requested
days of it (it is still named by its Monday).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Protocol

from lms.domain.local_days import local_date

# A chart wider than this says nothing more, and the cap bounds the answer: a little over a year
# of days, or about eight years of weeks.
MAX_BUCKETS = 400


class Bucket(enum.Enum):
    DAY = "day"
    WEEK = "week"

    @property
    def days(self) -> int:
        return 1 if self is Bucket.DAY else 7

    def start(self, day: date) -> date:
        """The first date of the bucket holding `day`."""
        return day if self is Bucket.DAY else day - timedelta(days=day.weekday())


class InvalidRange(ValueError):
    """A range of dates that cannot be charted; the message says why, in words for the client."""


class HourActivity(Protocol):
    """What `buckets` reads of one hour's activity (`lms.store.activity.HourActivity`)."""

    @property
    def hour(self) -> datetime: ...  # the hour's start, with its time zone

    @property
    def watched_seconds(self) -> float: ...

    @property
    def completions(self) -> int: ...


@dataclass(frozen=True, slots=True)
class WatchTime:
    """One bucket of the chart: watch time and completions from `start` for one day or week."""

    start: date
    watched_seconds: float
    completions: int


def buckets(
    activity: Iterable[HourActivity], zone: tzinfo, *, bucket: Bucket, first: date, last: date
) -> list[WatchTime]:
    """Activity summed into `bucket`s over the local dates `first..last` (inclusive) in `zone`.

    Raises `InvalidRange` when `last` is before `first` or the range needs more than
    `MAX_BUCKETS` buckets.
    """
    if last < first:
        raise InvalidRange(f"the range ends ({last}) before it starts ({first})")
    origin = bucket.start(first)
    count = (bucket.start(last) - origin).days // bucket.days + 1
    if count > MAX_BUCKETS:
        raise InvalidRange(
            f"{first}..{last} spans {count} {bucket.value}s; ask for at most {MAX_BUCKETS}"
        )
    seconds: list[list[float]] = [[] for _ in range(count)]
    completions = [0] * count
    for row in activity:
        day = local_date(row.hour, zone)
        if first <= day <= last:
            index = (day - origin).days // bucket.days
            seconds[index].append(row.watched_seconds)
            completions[index] += row.completions
    return [
        WatchTime(
            start=origin + timedelta(days=index * bucket.days),
            # fsum: the same total whatever order the store returned the hours in
            watched_seconds=math.fsum(seconds[index]),
            completions=completions[index],
        )
        for index in range(count)
    ]
