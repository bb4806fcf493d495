"""The overdue rule: last success older than the schedule's interval plus the grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.metrics.overdue import interval_around, is_overdue

FRI_0205 = datetime(2026, 11, 27, 2, 5, tzinfo=UTC)


def test_daily_schedule_is_overdue_after_a_day_plus_grace() -> None:
    grace = 3600
    assert not is_overdue("0 2 * * *", "UTC", FRI_0205, FRI_0205,
                          FRI_0205 + timedelta(hours=25), grace)
    assert is_overdue("0 2 * * *", "UTC", FRI_0205, FRI_0205,
                      FRI_0205 + timedelta(hours=25, seconds=1), grace)


def test_weekday_schedule_expects_friday_backup_to_be_followed_on_monday() -> None:
    assert interval_around("0 2 * * 1-5", "UTC", FRI_0205) == timedelta(days=3)
    saturday_night = FRI_0205 + timedelta(days=1, hours=20)
    assert not is_overdue("0 2 * * 1-5", "UTC", FRI_0205, FRI_0205, saturday_night, 3600)
    monday_late = FRI_0205 + timedelta(days=3, hours=1, minutes=1)
    assert is_overdue("0 2 * * 1-5", "UTC", FRI_0205, FRI_0205, monday_late, 3600)


def test_never_succeeded_counts_from_registration() -> None:
    registered = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)
    assert not is_overdue("* * * * *", "UTC", None, registered,
                          registered + timedelta(seconds=62), 3)
    assert is_overdue("* * * * *", "UTC", None, registered,
                      registered + timedelta(seconds=64), 3)


@pytest.mark.parametrize("zone", ["Europe/Madrid", "America/New_York"])
def test_interval_is_measured_in_real_time_across_dst(zone: str) -> None:
    # DST ends on 2026-10-25 in Madrid and on 2026-11-01 in New York: that day has 25 hours.
    when = {"Europe/Madrid": datetime(2026, 10, 24, 12, tzinfo=UTC),
            "America/New_York": datetime(2026, 10, 31, 12, tzinfo=UTC)}[zone]
    assert interval_around("30 3 * * *", zone, when) == timedelta(hours=25)
    assert interval_around("30 3 * * *", zone, when + timedelta(days=7)) == timedelta(hours=24)
