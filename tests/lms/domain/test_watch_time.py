"""Watch time over local days and ISO weeks, with every bucket of the range present."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.local_days import local_date
from lms.domain.watch_time import (
    MAX_BUCKETS,
    Bucket,
    InvalidRange,
    WatchTime,
    buckets,
)
from lms.store.activity import HourActivity

BERLIN = ZoneInfo("Europe/Berlin")
FIRST = date(2024, 3, 20)
LAST = date(2024, 4, 20)

activity = st.lists(
    st.builds(
        HourActivity,
        hour=st.integers(min_value=0, max_value=40 * 24).map(
            lambda h: datetime(2024, 3, 15, tzinfo=UTC) + timedelta(hours=h)
        ),
        watched_seconds=st.integers(min_value=0, max_value=3600).map(float),
        completions=st.integers(min_value=0, max_value=5),
    ),
    max_size=60,
)
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]).map(ZoneInfo)


def at_local(day: date, hour: int, seconds: float, completions: int = 0) -> HourActivity:
    start = datetime.combine(day, time(hour), BERLIN).astimezone(UTC)
    return HourActivity(hour=start, watched_seconds=seconds, completions=completions)


def in_range(rows: list[HourActivity], zone: ZoneInfo) -> list[HourActivity]:
    return [r for r in rows if FIRST <= local_date(r.hour, zone) <= LAST]


@given(activity, zones)
def test_daily_buckets_cover_every_day_of_the_range_and_sum_to_its_activity(rows, zone) -> None:
    days = buckets(rows, zone, bucket=Bucket.DAY, first=FIRST, last=LAST)
    assert [b.start for b in days] == [FIRST + timedelta(days=n) for n in range(32)]
    kept = in_range(rows, zone)
    assert sum(b.watched_seconds for b in days) == sum(r.watched_seconds for r in kept)
    assert sum(b.completions for b in days) == sum(r.completions for r in kept)


@given(activity, zones)
def test_weekly_buckets_start_on_mondays_and_add_up_the_days_of_each_week(rows, zone) -> None:
    weeks = buckets(rows, zone, bucket=Bucket.WEEK, first=FIRST, last=LAST)
    days = buckets(rows, zone, bucket=Bucket.DAY, first=FIRST, last=LAST)
    assert all(w.start.isoweekday() == 1 for w in weeks)
    assert weeks[0].start <= FIRST < weeks[0].start + timedelta(days=7)
    assert weeks[-1].start <= LAST < weeks[-1].start + timedelta(days=7)
    for week in weeks:
        inside = [d for d in days if week.start <= d.start < week.start + timedelta(days=7)]
        assert week.watched_seconds == sum(d.watched_seconds for d in inside)
        assert week.completions == sum(d.completions for d in inside)


@given(activity, zones)
def test_the_order_the_hours_arrive_in_does_not_change_the_chart(rows, zone) -> None:
    forward = buckets(rows, zone, bucket=Bucket.DAY, first=FIRST, last=LAST)
    assert buckets(rows[::-1], zone, bucket=Bucket.DAY, first=FIRST, last=LAST) == forward


def test_a_learner_with_no_activity_gets_every_bucket_empty() -> None:
    assert buckets([], BERLIN, bucket=Bucket.DAY, first=LAST, last=LAST) == [WatchTime(LAST, 0, 0)]
    weeks = buckets([], BERLIN, bucket=Bucket.WEEK, first=date(2024, 4, 3), last=date(2024, 4, 16))
    assert weeks == [
        WatchTime(date(2024, 4, 1), 0.0, 0),
        WatchTime(date(2024, 4, 8), 0.0, 0),
        WatchTime(date(2024, 4, 15), 0.0, 0),
    ]


def test_the_25_hour_autumn_day_collects_all_its_hours() -> None:
    day = date(2024, 10, 27)
    start = datetime(2024, 10, 26, 22, tzinfo=UTC)  # local midnight, CEST
    rows = [HourActivity(start + timedelta(hours=h), 60.0, 0) for h in range(26)]
    chart = buckets(rows, BERLIN, bucket=Bucket.DAY, first=day, last=day + timedelta(days=1))
    assert chart == [WatchTime(day, 25 * 60.0, 0), WatchTime(day + timedelta(days=1), 60.0, 0)]


def test_late_evening_watching_counts_on_the_learners_day_not_the_utc_one() -> None:
    rows = [at_local(date(2024, 4, 1), 0, 600.0, completions=1)]  # 22:00 UTC on 31 March
    chart = buckets(rows, BERLIN, bucket=Bucket.DAY, first=date(2024, 3, 31), last=date(2024, 4, 1))
    assert chart == [WatchTime(date(2024, 3, 31), 0.0, 0), WatchTime(date(2024, 4, 1), 600.0, 1)]


def test_a_week_cut_by_the_range_holds_only_the_requested_days() -> None:
    rows = [at_local(date(2024, 4, 1), 12, 100.0), at_local(date(2024, 4, 3), 12, 10.0)]
    chart = buckets(rows, BERLIN, bucket=Bucket.WEEK, first=date(2024, 4, 2), last=date(2024, 4, 7))
    assert chart == [WatchTime(date(2024, 4, 1), 10.0, 0)]


def test_an_unknown_bucket_is_refused_by_name() -> None:
    assert Bucket("week") is Bucket.WEEK
    with pytest.raises(ValueError, match="month"):
        Bucket("month")


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidRange, match="before it starts"):
        buckets([], BERLIN, bucket=Bucket.DAY, first=LAST, last=FIRST)


def test_a_range_too_long_to_chart_is_refused_but_the_same_span_in_weeks_is_not() -> None:
    last = FIRST + timedelta(days=MAX_BUCKETS)
    with pytest.raises(InvalidRange, match=f"at most {MAX_BUCKETS}"):
        buckets([], BERLIN, bucket=Bucket.DAY, first=FIRST, last=last)
    fits = buckets([], BERLIN, bucket=Bucket.DAY, first=FIRST, last=last - timedelta(days=1))
    assert len(fits) == MAX_BUCKETS
    # Monday 18 March 2024 to the week of Thursday 24 April 2025.
    weeks = buckets([], BERLIN, bucket=Bucket.WEEK, first=FIRST, last=last)
    assert (weeks[0].start, weeks[-1].start, len(weeks)) == (
        FIRST - timedelta(days=2),
        date(2025, 4, 21),
        58,
    )
