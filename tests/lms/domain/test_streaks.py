"""Streaks: consecutive local days with activity, across time zones and DST changes."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from lms.domain.streaks import Streaks, active_dates, learner_streaks, streaks

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TODAY = date(2024, 6, 15)

day_sets = st.sets(
    st.dates(min_value=TODAY - timedelta(days=60), max_value=TODAY + timedelta(days=2)),
    max_size=40,
)


def at_local(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """The UTC hour a learner in `zone` was active in at `hour` o'clock on `day`."""
    return datetime.combine(day, time(hour), zone).astimezone(UTC)


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def naive_longest(dates: set[date]) -> int:
    return max(
        (n for d in dates for n in range(1, len(dates) + 1) if set(days(d, n)) <= dates),
        default=0,
    )


def naive_current(dates: set[date], today: date) -> int:
    day = today if today in dates else today - timedelta(days=1)
    run = 0
    while day in dates:
        run += 1
        day -= timedelta(days=1)
    return run


# --- properties ---------------------------------------------------------------------------------


@given(day_sets)
def test_streaks_are_bounded_by_active_days_and_current_never_exceeds_longest(dates) -> None:
    s = streaks(dates, TODAY)
    assert 0 <= s.current <= s.longest <= len(dates)
    assert (s.longest == 0) == (not dates)


@given(day_sets)
def test_streaks_match_counting_day_by_day(dates) -> None:
    assert streaks(dates, TODAY) == Streaks(naive_current(dates, TODAY), naive_longest(dates))


@given(day_sets, st.integers(min_value=-1000, max_value=1000))
def test_shifting_all_activity_by_whole_days_keeps_the_longest_streak(dates, shift) -> None:
    moved = {d + timedelta(days=shift) for d in dates}
    assert streaks(moved, TODAY).longest == streaks(dates, TODAY).longest
    assert streaks(moved, TODAY + timedelta(days=shift)) == streaks(dates, TODAY)


@given(
    st.lists(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))),
    st.integers(min_value=-500, max_value=500),
)
def test_shifting_utc_hours_by_whole_days_keeps_the_longest_streak_in_utc(moments, shift) -> None:
    hours = [m.replace(minute=0, second=0, microsecond=0, tzinfo=UTC) for m in moments]
    moved = [h + timedelta(days=shift) for h in hours]
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert learner_streaks(moved, UTC, now).longest == learner_streaks(hours, UTC, now).longest


@given(st.dates(min_value=TODAY - timedelta(days=10), max_value=TODAY))
def test_a_single_active_day_is_a_streak_of_one(day) -> None:
    s = streaks({day}, TODAY)
    assert s.longest == 1
    assert s.current == (1 if day >= TODAY - timedelta(days=1) else 0)


@given(
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=1, max_value=10),
)
def test_a_missed_day_breaks_the_streak(before, after, gap) -> None:
    second = days(TODAY - timedelta(days=after - 1), after)
    first = days(second[0] - timedelta(days=gap + before), before)
    s = streaks({*first, *second}, TODAY)
    assert s == Streaks(current=after, longest=max(before, after))


# --- examples -----------------------------------------------------------------------------------


def test_no_activity_means_no_streak() -> None:
    assert streaks(set(), TODAY) == Streaks(current=0, longest=0)
    assert learner_streaks([], BERLIN, datetime(2024, 6, 15, tzinfo=UTC)) == Streaks(0, 0)


def test_a_streak_survives_until_a_whole_local_day_passes_without_activity() -> None:
    dates = set(days(TODAY - timedelta(days=3), 3))  # the 12th to the 14th
    assert streaks(dates, TODAY).current == 3  # not watched yet today: still alive
    assert streaks(dates | {TODAY}, TODAY).current == 4
    assert streaks(dates, TODAY + timedelta(days=1)).current == 0
    assert streaks(dates, TODAY + timedelta(days=1)).longest == 3


def test_activity_dated_after_today_counts_toward_the_longest_streak_only() -> None:
    dates = {*days(TODAY - timedelta(days=1), 2), TODAY + timedelta(days=2)}
    assert streaks(dates, TODAY) == Streaks(current=2, longest=2)


def test_an_evening_each_day_across_the_spring_dst_change_in_berlin_is_one_streak() -> None:
    # 00:30 local each night from 28 March to 2 April 2024; clocks went forward on the 31st, so
    # these are 23:00 UTC before it and 22:00 UTC after it (a fixed offset loses a day).
    nights = days(date(2024, 3, 28), 6)
    hours = [at_local(d, 0, BERLIN) for d in nights]
    assert hours[3] == datetime(2024, 3, 30, 23, tzinfo=UTC)
    assert hours[4] == datetime(2024, 3, 31, 22, tzinfo=UTC)
    assert active_dates(hours, BERLIN) == set(nights)
    now = at_local(date(2024, 4, 2), 12, BERLIN)
    assert learner_streaks(hours, BERLIN, now) == Streaks(current=6, longest=6)


def test_the_25_hour_day_of_the_autumn_dst_change_in_berlin_is_one_day() -> None:
    # 27 October 2024 ran from 22:00 UTC on the 26th to 23:00 UTC on the 27th.
    first = datetime(2024, 10, 26, 22, tzinfo=UTC)
    hours = [first, first + timedelta(hours=24)]  # 00:00 CEST and 23:00 CET, the same date
    assert active_dates(hours, BERLIN) == {date(2024, 10, 27)}
    assert learner_streaks(hours, BERLIN, first + timedelta(hours=30)) == Streaks(1, 1)


def test_late_evenings_in_new_york_across_both_dst_changes_keep_the_streak() -> None:
    for change in (date(2024, 3, 10), date(2024, 11, 3)):
        nights = days(change - timedelta(days=2), 5)
        hours = [at_local(d, 23, NEW_YORK) for d in nights]
        now = at_local(nights[-1] + timedelta(days=1), 9, NEW_YORK)
        assert learner_streaks(hours, NEW_YORK, now) == Streaks(current=5, longest=5)
        # In UTC the same hours fall on the next dates, still consecutive.
        assert active_dates(hours, UTC) == {d + timedelta(days=1) for d in nights}


def test_a_time_zone_change_recomputes_streaks_from_the_same_utc_hours() -> None:
    # 22:00 UTC on the 1st and 02:00 UTC on the 3rd: a day apart in UTC, but 18:00 on the 1st
    # and 22:00 on the 2nd in New York (EDT).
    hours = [datetime(2024, 6, 1, 22, tzinfo=UTC), datetime(2024, 6, 3, 2, tzinfo=UTC)]
    now = datetime(2024, 6, 3, 12, tzinfo=UTC)
    assert learner_streaks(hours, UTC, now) == Streaks(current=1, longest=1)
    assert learner_streaks(hours, NEW_YORK, now) == Streaks(current=2, longest=2)


def test_today_is_the_learners_local_date_not_the_utc_one() -> None:
    # 23:00 UTC on the 14th is already the 15th in Tokyo; activity on the 13th (Tokyo) is then
    # two days back, while in UTC the 13th is yesterday.
    tokyo = ZoneInfo("Asia/Tokyo")
    hours = [at_local(date(2024, 6, 13), 12, tokyo)]
    now = datetime(2024, 6, 14, 23, tzinfo=UTC)
    assert learner_streaks(hours, tokyo, now).current == 0
    assert learner_streaks(hours, UTC, now).current == 1
