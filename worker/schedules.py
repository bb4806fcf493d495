"""Periodic jobs: what a job is, and cron slot arithmetic (pure).

Beat asks every job source in ``worker.scheduler.JOB_SOURCES`` for its jobs on each
pass, so a database added, changed or removed through the API is (re)scheduled on the
next pass. A job fires for its *latest* slot that has not fired yet: after downtime
that is one catch-up run, never one per missed slot.

Cron expressions are five fields or a macro (``@daily``, ``@hourly``...): croniter
reads both, and ``shared.config_types.validate_cron`` admits nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy.orm import Session

from shared.context import Context

# An after-commit action (e.g. enqueue the recorded backup), or None.
AfterCommit = Callable[[], None] | None
Send = Callable[[str, list[str]], None]


@dataclass(frozen=True)
class Job:
    """One periodic job: when it is due and what firing it records.

    ``fire(session, slot)`` records the work in ``session`` (committed together with
    the slot) and returns what to do after commit. Slots at or before ``anchor``
    (e.g. the database's creation) never fire.
    """

    key: str
    cron: str
    timezone: str
    fire: Callable[[Session, datetime], AfterCommit]
    anchor: datetime | None = None


# Yields the jobs of one kind (backups, packages...) as the metadata DB has them now.
JobSource = Callable[[Context, Session, Send], Iterable[Job]]


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
