"""The kinds of periodic work, listed in one place: ``JOB_SOURCES``.

Beat asks every source for its jobs on each pass, so a database added, changed or
removed through the API is (re)scheduled on the next pass. Firing a job records its
work in the transaction that claims the slot (``worker.beat.scheduler``) and returns
what to do after commit:

- a backup job records one scheduled backup for its slot and enqueues it;
- the package job (``package-conf.schedule``) records that slot's package and enqueues it;
- the retention job enqueues a retention run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.catalog import effective
from shared.context import Context
from shared.jobs import BACKUP_TASK, PACKAGE_TASK, RETENTION_TASK
from shared.metrics.record import record_backup
from shared.models import ACTIVE_STATUSES, Backup, Database, utcnow
from shared.packaging.selection import new_package

log = logging.getLogger(__name__)
RETENTION_CRON = "0 * * * *"

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


def backup_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield one job per enabled database, on its effective schedule and time zone."""
    for database in session.scalars(select(Database).where(Database.enabled.is_(True))):
        eff = effective(database, ctx.settings.global_)
        yield Job(
            key=f"backup:{database.id}", cron=eff.schedule, timezone=eff.timezone,
            anchor=database.created_at,
            fire=partial(_fire_backup, ctx, database.id, send),
        )


def retention_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield the hourly retention run (it also runs after every completed backup)."""

    def fire(_: Session, __: datetime) -> AfterCommit:
        return lambda: send(RETENTION_TASK, [])

    yield Job(key="retention", cron=RETENTION_CRON, timezone="UTC", fire=fire)


def _fire_backup(ctx: Context, database_id: str, send: Send, session: Session,
                 slot: datetime) -> AfterCommit:
    return record_scheduled_backup(ctx, session, database_id, slot, send)


def record_scheduled_backup(ctx: Context, session: Session, database_id: str,
                            slot: datetime, send: Send) -> AfterCommit:
    """Add a pending ``trigger=schedule`` backup for ``slot``; return its enqueue action.

    The unique (database_id, scheduled_for) index makes a second insert for the same
    slot fail, whoever tries. If the previous backup is still pending or running, the
    slot is recorded as a failed backup saying so, rather than silently skipped.
    """
    database = session.get(Database, database_id)
    if database is None:
        return None
    now = utcnow()
    fields = dict(database_id=database_id, engine=database.engine, trigger="schedule",
                  scheduled_for=slot, created_at=now, storage=ctx.storage.kind,
                  compression=effective(database, ctx.settings.global_).compression)
    backup = Backup(status="pending", **fields)
    try:
        with session.begin_nested():
            session.add(backup)
    except IntegrityError:
        if session.scalar(select(Backup.id).where(Backup.database_id == database_id,
                                                  Backup.scheduled_for == slot)):
            return None
        active = session.scalar(select(Backup).where(Backup.database_id == database_id,
                                                     Backup.status.in_(ACTIVE_STATUSES)))
        busy = f"backup {active.id} was still {active.status}" if active else "another backup ran"
        session.add(Backup(status="failed", finished_at=now, error=(
            f"skipped the scheduled run of {slot:%Y-%m-%d %H:%M} UTC: {busy}"), **fields))
        record_backup(session, database_id, database.engine, "failed", None)
        log.warning("scheduled backup of %s for %s skipped: %s", database_id, slot, busy)
        return None
    backup_id = backup.id
    return lambda: _enqueue(ctx, send, backup_id)


def _enqueue(ctx: Context, send: Send, backup_id: str) -> None:
    try:
        send(BACKUP_TASK, [backup_id])
    except Exception as exc:  # noqa: BLE001 - the broker's errors vary by transport
        log.error("could not enqueue scheduled backup %s: %s", backup_id, exc)
        with ctx.db.session() as session:
            failed = cast(CursorResult[Any], session.execute(
                update(Backup).where(Backup.id == backup_id, Backup.status == "pending").values(
                    status="failed", finished_at=utcnow(),
                    error="could not enqueue the backup: the broker is unreachable"))).rowcount
            row = session.get(Backup, backup_id) if failed else None
            if row is not None:
                record_backup(session, row.database_id, row.engine, "failed", None)


def package_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield the package job when a schedule is set and some database has ``package: true``.

    Slots before the first such database existed never fire, so a new installation
    does not start with a failed "nothing to package".
    """
    schedule = ctx.settings.package.schedule
    if not schedule:
        return
    first = session.scalar(select(func.min(Database.created_at))
                           .where(Database.package.is_(True)))
    if first is None:
        return
    yield Job(key="package", cron=schedule, timezone=ctx.settings.global_.timezone,
              anchor=first, fire=partial(_fire_package, ctx, send))


def _fire_package(ctx: Context, send: Send, session: Session, slot: datetime) -> AfterCommit:
    package = new_package(fmt=ctx.settings.package.compression, storage_kind=ctx.storage.kind,
                          trigger="schedule", scheduled_for=slot)
    session.add(package)
    session.flush()
    package_id = package.id
    return lambda: send(PACKAGE_TASK, [package_id])


# Every kind of periodic work, asked for its jobs on each pass: a new kind is added
# here, and only here (no registration by import, so no kind is lost to a missing import).
JOB_SOURCES: tuple[JobSource, ...] = (backup_jobs, package_jobs, retention_jobs)
