"""Active users over the trailing day, week and month (DAU/WAU/MAU)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lms.domain.active_users import ActiveUsers, since

NOW = datetime(2024, 3, 31, 12, tzinfo=UTC)


def test_the_windows_reach_back_one_seven_and_thirty_days() -> None:
    assert since(NOW) == [
        datetime(2024, 3, 30, 12, tzinfo=UTC),
        datetime(2024, 3, 24, 12, tzinfo=UTC),
        datetime(2024, 3, 1, 12, tzinfo=UTC),
    ]


def test_the_windows_are_elapsed_time_so_a_dst_change_does_not_stretch_them() -> None:
    # Berlin's 31 March 2024 had 23 hours; a trailing day is still 24.
    local_now = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    assert since(local_now) == since(NOW)
    assert [NOW.timestamp() - start.timestamp() for start in since(local_now)] == [
        timedelta(hours=24).total_seconds(),
        timedelta(days=7).total_seconds(),
        timedelta(days=30).total_seconds(),
    ]


def test_counts_are_named_in_window_order() -> None:
    assert ActiveUsers.from_counts([3, 5, 8]) == ActiveUsers(day=3, week=5, month=8)
    with pytest.raises(ValueError, match="unpack"):
        ActiveUsers.from_counts([3, 5])
