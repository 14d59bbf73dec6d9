"""Local calendar days of UTC instants, in a learner's time zone. Pure; no I/O.

Activity is stored per UTC hour and turned into local days only when read, so a daylight-saving
change (a 23- or 25-hour local day) and a later change of the learner's `time_zone` both come out
right: nothing stored depends on the zone. An hour belongs to the local date on which it starts.
In zones offset by a half or quarter hour (Asia/Kolkata, Asia/Kathmandu) a UTC hour straddles
local midnight; taking its start is the one choice that `utc_bounds` can express exactly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo


def local_date(instant: datetime, zone: tzinfo) -> date:
    """The date on the wall calendar in `zone` at `instant` (which must carry its time zone)."""
    if instant.tzinfo is None:
        # A naive datetime would be read in the server's own zone: refuse rather than guess.
        raise ValueError(f"{instant!r} has no time zone")
    return instant.astimezone(zone).date()


def utc_bounds(first: date, last: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The UTC instants `[start, end)` spanning the local dates `first..last` in `zone`.

    An hour whose start lies in them is an hour of one of those dates, so a store can select
    activity with `start <= hour < end`. A midnight that the clock skips (zones that spring
    forward at 00:00) resolves to the instant of the jump, where the day begins.
    """
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end
