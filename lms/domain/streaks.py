"""Streaks: runs of consecutive local days on which a learner watched or read something. Pure.

Theory of operation
-------------------
The input is the set of UTC hours in which the learner was active (the hourly activity table's
keys) and their IANA time zone. Each hour becomes the local date it starts on
(`lms.domain.local_days`), so days are the learner's calendar days, 23 or 25 hours long across a
daylight-saving change, and a new `time_zone` simply recomputes from the same hours.

- The longest streak is the longest run of consecutive active dates.
- The current streak is the run that ends today or yesterday (local, at `now`): a learner who
  has not watched yet today still has the streak they built up to last night, and loses it only
  once a whole local day passes without activity.
- Dates after today (another node's clock a little ahead) count toward the longest streak but
  not the current one, so `current <= longest` always holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from lms.domain.local_days import local_date


@dataclass(frozen=True, slots=True)
class Streaks:
    current: int  # consecutive active days ending today or yesterday; 0 if neither was active
    longest: int


def active_dates(hours: Iterable[datetime], zone: tzinfo) -> set[date]:
    """The local dates in `zone` on which the active UTC `hours` start."""
    return {local_date(hour, zone) for hour in hours}


def streaks(dates: Iterable[date], today: date) -> Streaks:
    """The current and longest runs of consecutive dates among `dates`."""
    ordinals = sorted({d.toordinal() for d in dates})
    yesterday = today.toordinal() - 1
    current = longest = run = 0
    previous = None
    for day in ordinals:
        run = run + 1 if previous == day - 1 else 1
        longest = max(longest, run)
        if yesterday <= day <= yesterday + 1:
            current = run  # today's run, when there is one, replaces yesterday's
        previous = day
    return Streaks(current=current, longest=longest)


def learner_streaks(hours: Iterable[datetime], zone: tzinfo, now: datetime) -> Streaks:
    """A learner's streaks from their active UTC hours, in their time zone, at `now`."""
    return streaks(active_dates(hours, zone), local_date(now, zone))


# Streak lengths that earn an achievement (lms/store/scheduled_mail.py writes its mail).
MILESTONES = (7, 30)


@dataclass(frozen=True, slots=True)
class Milestone:
    days: int  # one of MILESTONES
    since: date  # the streak's first day: with `days`, names the award


def milestone(dates: Iterable[date], today: date) -> Milestone | None:
    """The longest of `MILESTONES` that the current streak among `dates` has reached, with the
    day the streak began; None below the shortest. A streak past 30 days still names 30 (and
    its first day), so an award already made is not made again, and one found late (a
    learner at 35 days when awards began) is the one reached, not every one passed."""
    current = streaks(dates, today).current
    reached = [days for days in MILESTONES if days <= current]
    if not reached:
        return None
    active = {d.toordinal() for d in dates}
    last = today.toordinal() if today.toordinal() in active else today.toordinal() - 1
    return Milestone(reached[-1], date.fromordinal(last - current + 1))
