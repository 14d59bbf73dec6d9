"""Local days of UTC hours: 23- and 25-hour days across DST, and bounds a store can select by."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.local_days import local_date, utc_bounds

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# Zones with DST, half- and quarter-hour offsets, a 30-minute DST shift, and midnight changes.
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Beirut",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]


def hours_of(day: date, zone: ZoneInfo) -> list[datetime]:
    """The UTC hours that start on local `day` in `zone`, found by scanning around it."""
    scan = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1)
    hours = (scan + timedelta(hours=h) for h in range(72))
    return [h for h in hours if local_date(h, zone) == day]


@pytest.mark.parametrize(
    ("zone", "day", "length"),
    [
        (BERLIN, date(2024, 3, 31), 23),  # clocks go forward 02:00 -> 03:00
        (BERLIN, date(2024, 10, 27), 25),  # clocks go back 03:00 -> 02:00
        (BERLIN, date(2024, 6, 1), 24),
        (NEW_YORK, date(2024, 3, 10), 23),
        (NEW_YORK, date(2024, 11, 3), 25),
    ],
)
def test_a_local_day_across_a_dst_change_holds_23_or_25_hours(zone, day, length) -> None:
    assert len(hours_of(day, zone)) == length


def test_the_same_utc_hour_falls_on_different_local_dates_in_different_zones() -> None:
    hour = datetime(2024, 3, 31, 22, tzinfo=UTC)
    assert local_date(hour, UTC) == date(2024, 3, 31)
    assert local_date(hour, BERLIN) == date(2024, 4, 1)  # 00:00 CEST
    assert local_date(hour, NEW_YORK) == date(2024, 3, 31)


def test_a_naive_time_is_refused_rather_than_read_in_the_servers_zone() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        local_date(datetime(2024, 1, 1, 12), BERLIN)


def test_bounds_of_a_dst_day_span_its_23_hours() -> None:
    start, end = utc_bounds(date(2024, 3, 31), date(2024, 3, 31), BERLIN)
    assert start == datetime(2024, 3, 30, 23, tzinfo=UTC)
    assert end == datetime(2024, 3, 31, 22, tzinfo=UTC)


def test_a_midnight_the_clock_skips_starts_the_day_at_the_jump() -> None:
    # Beirut springs forward at 00:00: the 31st starts at 01:00 local, 22:00 UTC on the 30th.
    start, _ = utc_bounds(date(2024, 3, 31), date(2024, 3, 31), ZoneInfo("Asia/Beirut"))
    assert start == datetime(2024, 3, 30, 22, tzinfo=UTC)


@given(
    zone=st.sampled_from(ZONES).map(ZoneInfo),
    first=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    days=st.integers(min_value=0, max_value=3),
    offset=st.integers(min_value=-30, max_value=130),
)
def test_an_hour_is_within_the_utc_bounds_exactly_when_its_local_date_is_in_range(
    zone, first, days, offset
) -> None:
    last = first + timedelta(days=days)
    hour = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(hours=offset)
    start, end = utc_bounds(first, last, zone)
    assert (start <= hour < end) == (first <= local_date(hour, zone) <= last)
