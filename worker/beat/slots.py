"""Cron slot arithmetic (pure): which slot of a schedule is due now.

A job fires for its *latest* slot that has not fired yet: after downtime that is one
catch-up run, never one per missed slot.

Cron expressions are five fields or a macro (``@daily``, ``@hourly``...): croniter
reads both, and ``shared.config.types.validate_cron`` admits nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter


# A scheduler pass asks with one ``now`` for every job, and most share a few schedules:
# 1,000 databases on one cron cost one croniter walk, not 1,000 (about 0.2 ms each).
@lru_cache(maxsize=4096)
def latest_slot(cron: str, timezone: str, now: datetime) -> datetime:
    """Return the latest time at or before ``now`` matching ``cron`` in ``timezone`` (UTC)."""
    local_now = now.astimezone(ZoneInfo(timezone))
    slot: datetime = croniter(cron, local_now).get_prev(datetime)
    return slot.astimezone(UTC)


def due_slot(cron: str, timezone: str, now: datetime, last: datetime | None,
             anchor: datetime | None) -> datetime | None:
    """Return the slot to fire now, or None if the latest slot already fired or predates
    ``anchor``.

    Wall-clock times are compared in ``timezone`` too, so the hour repeated when
    daylight saving time ends does not fire a daily job twice.
    """
    slot = latest_slot(cron, timezone, now)
    if anchor is not None and slot <= anchor:
        return None
    if last is not None:
        zone = ZoneInfo(timezone)
        if slot <= last or _wall(slot, zone) <= _wall(last, zone):
            return None
    return slot


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)
