"""Periodic jobs: cron slot arithmetic (pure) and the registry of job sources.

Beat asks every registered source for its jobs on each pass, so a database added,
changed or removed through the API is (re)scheduled on the next pass. A job fires
for its *latest* slot that has not fired yet: after downtime that is one catch-up
run, never one per missed slot.

To schedule more kinds of work (e.g. packages), register another source::

    @job_source
    def package_jobs(ctx, session, send): yield Job(key="package", ...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.catalog import effective
from shared.context import Context
from shared.models import Database

# An after-commit action (e.g. enqueue the recorded backup), or None.
AfterCommit = Callable[[], None] | None
Send = Callable[[str, list[str]], None]
RETENTION_CRON = "0 * * * *"


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


JobSource = Callable[[Context, Session, Send], Iterable[Job]]
JOB_SOURCES: list[JobSource] = []


def job_source(source: JobSource) -> JobSource:
    """Register ``source``; beat collects jobs from every source on each pass."""
    JOB_SOURCES.append(source)
    return source


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


# --- the built-in sources -----------------------------------------------------------------


@job_source
def backup_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield one job per enabled database, on its effective schedule and time zone."""
    for database in session.scalars(select(Database).where(Database.enabled.is_(True))):
        eff = effective(database, ctx.settings.global_)
        yield Job(
            key=f"backup:{database.id}", cron=eff.schedule, timezone=eff.timezone,
            anchor=database.created_at,
            fire=partial(_fire_backup, ctx, database.id, send),
        )


def _fire_backup(ctx: Context, database_id: str, send: Send, session: Session,
                 slot: datetime) -> AfterCommit:
    from worker.scheduled import record_scheduled_backup

    return record_scheduled_backup(ctx, session, database_id, slot, send)


@job_source
def retention_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield the hourly retention run (it also runs after every completed backup)."""

    def fire(_: Session, __: datetime) -> AfterCommit:
        return lambda: send("retention.run", [])

    yield Job(key="retention", cron=RETENTION_CRON, timezone="UTC", fire=fire)
