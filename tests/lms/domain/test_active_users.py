"""Active users over the trailing day, week and month (DAU/WAU/MAU)."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lms.domain.active_users import ActiveUsers, active_users

NOW = datetime(2024, 6, 15, 12, tzinfo=UTC)

ages = st.lists(
    st.integers(min_value=-3600, max_value=60 * 86400).map(lambda s: timedelta(seconds=s))
)


@given(ages)
def test_each_window_holds_the_shorter_ones(ages) -> None:
    counts = active_users([NOW - age for age in ages], NOW)
    assert counts.day <= counts.week <= counts.month <= len(ages)


@given(ages)
def test_active_users_match_counting_each_window(ages) -> None:
    seen = [NOW - age for age in ages]
    assert active_users(seen, NOW) == ActiveUsers(
        day=sum(NOW - timedelta(days=1) <= t for t in seen),
        week=sum(NOW - timedelta(days=7) <= t for t in seen),
        month=sum(NOW - timedelta(days=30) <= t for t in seen),
    )


def test_users_fall_out_of_each_window_as_their_last_visit_ages() -> None:
    seen = [
        NOW - timedelta(hours=1),
        NOW - timedelta(days=1),  # exactly a day ago: still today's
        NOW - timedelta(days=1, seconds=1),
        NOW - timedelta(days=6),
        NOW - timedelta(days=29),
        NOW - timedelta(days=31),
        NOW + timedelta(seconds=5),  # another node's clock a little ahead
    ]
    assert active_users(seen, NOW) == ActiveUsers(day=3, week=5, month=6)


def test_no_users_means_no_active_users() -> None:
    assert active_users([], NOW) == ActiveUsers(0, 0, 0)


def test_latest_activity_hours_give_dau_wau_mau() -> None:
    # The activity table's latest hour per user, read at 12:30: the window is as fine as the
    # hour, so the hour that started at 12:00 yesterday has left the day.
    now = NOW + timedelta(minutes=30)
    latest_hours = [NOW - timedelta(hours=h) for h in (0, 23, 24, 100, 700)]
    assert active_users(latest_hours, now) == ActiveUsers(day=2, week=4, month=5)
