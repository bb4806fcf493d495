"""Cron slots: which slot of a schedule is due now (pure), and claiming it in the
metadata DB so that each slot fires once however many beats run (``claim_slots``).

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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.models import ScheduleSlot


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


def claim_slots(session: Session, slots: dict[str, datetime], now: datetime) -> set[str]:
    """Advance each job's ``last_slot`` to its slot where the stored one is older; return
    the jobs advanced (claimed by this transaction until it ends).

    A row another beat advanced first is locked until that beat commits; then the
    ``WHERE`` sees the newer slot and this beat gets nothing back for it.
    """
    if not slots:
        return set()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ScheduleSlot).values(
        [{"job": key, "last_slot": slot, "updated_at": now}
         for key, slot in sorted(slots.items())])
    statement = statement.on_conflict_do_update(
        index_elements=[ScheduleSlot.job],
        set_={"last_slot": statement.excluded.last_slot,
              "updated_at": statement.excluded.updated_at},
        where=ScheduleSlot.last_slot < statement.excluded.last_slot,
    )
    return set(session.scalars(statement.returning(ScheduleSlot.job)))
