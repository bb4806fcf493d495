"""Cron slot arithmetic: time zones, DST, anchors and the single catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.beat.slots import due_slot, latest_slot


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
         second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_latest_slot_is_evaluated_in_the_time_zone() -> None:
    now = _utc(2026, 7, 1, 12, 0)
    assert latest_slot("0 2 * * *", "UTC", now) == _utc(2026, 7, 1, 2, 0)
    # 02:00 in New York (EDT, UTC-4) is 06:00 UTC.
    assert latest_slot("0 2 * * *", "America/New_York", now) == _utc(2026, 7, 1, 6, 0)
    # 02:00 in Tokyo (UTC+9) is 17:00 UTC the day before.
    assert latest_slot("0 2 * * *", "Asia/Tokyo", now) == _utc(2026, 6, 30, 17, 0)


def test_daily_job_fires_once_when_dst_repeats_the_hour() -> None:
    # Europe/Berlin falls back on 2026-10-25: 02:30 happens at 00:30 and 01:30 UTC.
    first = due_slot("30 2 * * *", "Europe/Berlin", _utc(2026, 10, 25, 0, 31),
                     _utc(2026, 10, 24, 0, 30), None)
    assert first == _utc(2026, 10, 25, 0, 30)
    again = due_slot("30 2 * * *", "Europe/Berlin", _utc(2026, 10, 25, 1, 31), first, None)
    assert again is None


def test_daily_job_still_fires_on_the_day_dst_skips_its_hour() -> None:
    # 2026-03-29 02:30 does not exist in Berlin; the run happens that morning anyway.
    slot = due_slot("30 2 * * *", "Europe/Berlin", _utc(2026, 3, 29, 6, 0),
                    _utc(2026, 3, 28, 1, 30), None)
    assert slot is not None and slot.date() == datetime(2026, 3, 29).date()


def test_after_downtime_only_the_latest_missed_slot_fires() -> None:
    last = _utc(2026, 11, 20, 2, 0)
    now = _utc(2026, 11, 26, 9, 0)  # six daily slots missed
    slot = due_slot("0 2 * * *", "UTC", now, last, None)
    assert slot == _utc(2026, 11, 26, 2, 0)
    assert due_slot("0 2 * * *", "UTC", now + timedelta(hours=1), slot, None) is None


def test_a_slot_fires_once() -> None:
    slot = _utc(2026, 11, 26, 9, 5)
    assert due_slot("* * * * *", "UTC", slot + timedelta(seconds=30), slot, None) is None
    assert due_slot("* * * * *", "UTC", slot + timedelta(seconds=61), slot, None) == (
        slot + timedelta(minutes=1))


def test_slots_before_the_anchor_never_fire() -> None:
    created = _utc(2026, 11, 26, 9, 5, 30)
    assert due_slot("* * * * *", "UTC", _utc(2026, 11, 26, 9, 5, 50), None, created) is None
    assert due_slot("0 2 * * *", "UTC", _utc(2026, 11, 26, 23, 0), None, created) is None
    assert due_slot("* * * * *", "UTC", _utc(2026, 11, 26, 9, 6, 1), None, created) == (
        _utc(2026, 11, 26, 9, 6))


def test_macros_have_the_slots_of_their_expansion() -> None:
    now = _utc(2026, 7, 15, 12, 34)  # a Wednesday
    assert latest_slot("@hourly", "UTC", now) == _utc(2026, 7, 15, 12, 0)
    assert latest_slot("@daily", "UTC", now) == _utc(2026, 7, 15, 0, 0)
    assert latest_slot("@midnight", "UTC", now) == _utc(2026, 7, 15, 0, 0)
    assert latest_slot("@weekly", "UTC", now) == _utc(2026, 7, 12, 0, 0)  # Sunday
    assert latest_slot("@monthly", "UTC", now) == _utc(2026, 7, 1, 0, 0)
    assert latest_slot("@yearly", "UTC", now) == _utc(2026, 1, 1, 0, 0)
    assert latest_slot("@annually", "UTC", now) == _utc(2026, 1, 1, 0, 0)
    # Midnight in Tokyo (UTC+9) is 15:00 UTC the day before.
    assert latest_slot("@daily", "Asia/Tokyo", now) == _utc(2026, 7, 14, 15, 0)


def test_a_macro_fires_once_per_slot_after_its_anchor() -> None:
    created = _utc(2026, 11, 26, 9, 5)
    assert due_slot("@daily", "UTC", _utc(2026, 11, 26, 23, 0), None, created) is None
    slot = due_slot("@daily", "UTC", _utc(2026, 11, 27, 0, 1), None, created)
    assert slot == _utc(2026, 11, 27)
    assert due_slot("@daily", "UTC", _utc(2026, 11, 27, 18, 0), slot, created) is None
    assert due_slot("@hourly", "Europe/Berlin", _utc(2026, 11, 27, 18, 30), None, created) == (
        _utc(2026, 11, 27, 18, 0))
