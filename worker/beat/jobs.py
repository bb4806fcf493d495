"""The kinds of periodic work, listed in one place: ``JOB_SOURCES``.

Beat asks every source for its jobs on each pass, so a database added, changed or
removed through the API is (re)scheduled on the next pass. Firing a job records its
work in the transaction that claims the slot (``worker.beat.scheduler``) and returns
what to do after commit:

- a backup job records one scheduled backup for its slot and enqueues it;
- the package job (``package-conf.schedule``) records that slot's package and enqueues it;
- a verify job (``verify.schedule``) records a verification of the database's latest
  completed backup (a test restore with ``verify.test_restore``) and enqueues it;
- the retention job enqueues a retention run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from shared.catalog import effective
from shared.config.verify import merged
from shared.context import Context
from shared.jobs import (
    BACKUP_TASK,
    PACKAGE_TASK,
    RESTORE_TASK,
    RETENTION_TASK,
    Send,
    add_failed_backup,
    add_failed_package,
    enqueue,
    fail_backup,
    fail_package,
    fail_restore,
    new_backup,
    new_package,
    new_verification,
)
from shared.models import ACTIVE_STATUSES, Backup, Database, Package, Restore
from shared.notify import announce_failed_backup

log = logging.getLogger(__name__)
RETENTION_CRON = "0 * * * *"
# Scheduling needs no password: loading the rows without them skips decrypting 1,000.
_NO_SECRETS = (defer(Database.password), defer(Database.options))

# An after-commit action (e.g. enqueue the recorded backup; its result is ignored), or None.
AfterCommit = Callable[[], object] | None
BACKUP_KEY = "backup:"
VERIFY_KEY = "verify:"


@dataclass(frozen=True)
class Job:
    """One periodic job: when it is due and what firing it records.

    ``fire(session, slot)`` records the work in ``session`` (committed together with
    the slot) and returns what to do after commit. Slots at or before ``anchor``
    (e.g. the database's creation) never fire.

    ``fire_many``, when set, records the claimed slots of every job sharing it at once,
    in the same transaction, instead of ``fire`` job by job: 100 scheduled backups take
    a few statements rather than 400. ``fire`` remains the way to fire one job alone.
    """

    key: str
    cron: str
    timezone: str
    fire: Callable[[Session, datetime], AfterCommit]
    anchor: datetime | None = None
    fire_many: FireMany | None = None


# Records the work of several claimed (job, slot) pairs; returns their after-commit actions.
FireMany = Callable[[Session, "list[tuple[Job, datetime]]"], list[AfterCommit]]


# Yields the jobs of one kind (backups, packages...) as the metadata DB has them now.
JobSource = Callable[[Context, Session, Send], Iterable[Job]]


def backup_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield one job per enabled database, on its effective schedule and time zone."""
    fire_many = partial(record_scheduled_backups, ctx, send)
    for database in session.scalars(select(Database).where(Database.enabled.is_(True))
                                    .options(*_NO_SECRETS)):
        eff = effective(database, ctx.settings.global_)
        yield Job(
            key=BACKUP_KEY + database.id, cron=eff.schedule, timezone=eff.timezone,
            anchor=database.created_at,
            fire=partial(_fire_backup, ctx, database.id, send), fire_many=fire_many,
        )


def _send_retention(send: Send) -> None:
    # Nothing to fail: a run the broker refused is made up by the next one.
    try:
        send(RETENTION_TASK, [])
    except Exception as exc:  # noqa: BLE001 - the broker's errors vary by transport
        log.warning("could not enqueue the hourly retention run (%s); it also runs after "
                    "each completed backup", exc)


def retention_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield the hourly retention run (it also runs after every completed backup)."""

    def fire(_: Session, __: datetime) -> AfterCommit:
        return partial(_send_retention, send)

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
    backup = new_backup(ctx, database, "schedule", scheduled_for=slot)
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
        skipped = new_backup(ctx, database, "schedule", scheduled_for=slot)
        add_failed_backup(session, skipped,
                          f"skipped the scheduled run of {slot:%Y-%m-%d %H:%M} UTC: {busy}")
        log.warning("scheduled backup of %s for %s skipped: %s", database_id, slot, busy)
        session.flush()  # gives it its id, for the notice sent after commit
        return partial(announce_failed_backup, ctx, skipped.id)
    return partial(enqueue, ctx, send, BACKUP_TASK, backup.id, "backup", fail_backup)


def record_scheduled_backups(ctx: Context, send: Send, session: Session,
                             due: list[tuple[Job, datetime]]) -> list[AfterCommit]:
    """Add the pending backups of many claimed slots at once; return their enqueue actions.

    As ``record_scheduled_backup`` job by job, in three statements for the lot: the
    databases, their active backups, one multi-row INSERT. A slot whose previous backup
    is still pending or running is recorded as failed, saying so. Should the INSERT
    still hit a unique index (a manual backup requested meanwhile), the transaction fails
    and the scheduler fires each job alone, through ``record_scheduled_backup``.
    """
    ids = [job.key.removeprefix(BACKUP_KEY) for job, _ in due]
    databases = {db.id: db for db in session.scalars(
        select(Database).where(Database.id.in_(ids)).options(*_NO_SECRETS))}
    active = {b.database_id: b for b in session.scalars(select(Backup).where(
        Backup.database_id.in_(ids), Backup.status.in_(ACTIVE_STATUSES)))}
    added: list[Backup] = []
    skipped: list[Backup] = []  # announced after commit, like any failed backup
    for database_id, (_, slot) in zip(ids, due, strict=True):
        database = databases.get(database_id)
        if database is None:
            continue  # removed since the pass read it
        backup = new_backup(ctx, database, "schedule", scheduled_for=slot)
        if (busy := active.get(database_id)) is not None:
            reason = f"backup {busy.id} was still {busy.status}"
            add_failed_backup(session, backup, f"skipped the scheduled run of "
                                               f"{slot:%Y-%m-%d %H:%M} UTC: {reason}")
            log.warning("scheduled backup of %s for %s skipped: %s", database_id, slot, reason)
            skipped.append(backup)
        else:
            session.add(backup)
            added.append(backup)
    session.flush()
    return [partial(enqueue, ctx, send, BACKUP_TASK, backup.id, "backup", fail_backup)
            for backup in added] + [partial(announce_failed_backup, ctx, backup.id)
                                    for backup in skipped]


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
    """Add the slot's pending package; return its enqueue action.

    Only one package may be pending (a unique index): if another still is, the slot is
    recorded as a failed package saying so, as a scheduled backup is when the previous
    one still runs.
    """
    package = new_package(ctx, trigger="schedule", scheduled_for=slot)
    try:
        with session.begin_nested():
            session.add(package)
    except IntegrityError:
        if session.scalar(select(Package.id).where(Package.scheduled_for == slot)):
            return None  # this slot's package exists already
        pending = session.scalar(select(Package.id).where(Package.status == "pending"))
        busy = f"package {pending} was still pending" if pending else "another package was pending"
        add_failed_package(session, new_package(ctx, trigger="schedule", scheduled_for=slot),
                           f"skipped the scheduled package of {slot:%Y-%m-%d %H:%M} UTC: {busy}")
        log.warning("scheduled package for %s skipped: %s", slot, busy)
        return None
    return partial(enqueue, ctx, send, PACKAGE_TASK, package.id, "package", fail_package)


def verify_jobs(ctx: Context, session: Session, send: Send) -> Iterator[Job]:
    """Yield one job per enabled database whose ``verify.schedule`` is set, in its time zone."""
    default = ctx.settings.global_.verify
    own = {spec.id: spec.verify for spec in ctx.settings.databases if spec.verify}
    if not (default and default.schedule) and not any(v.schedule for v in own.values()):
        return  # no schedule anywhere: no need to read the databases
    for database in session.scalars(select(Database).where(Database.enabled.is_(True))
                                    .options(*_NO_SECRETS)):
        settings = merged(own.get(database.id), default)
        if not settings.schedule:
            continue
        yield Job(key=VERIFY_KEY + database.id, cron=settings.schedule,
                  timezone=effective(database, ctx.settings.global_).timezone,
                  anchor=database.created_at,
                  fire=partial(_fire_verify, ctx, database.id, settings.test_restore, send))


def _fire_verify(ctx: Context, database_id: str, test_restore: bool, send: Send,
                 session: Session, slot: datetime) -> AfterCommit:
    """Add the slot's verification of the latest completed backup; return its enqueue action.

    Nothing to verify (no completed backup yet), or that backup's verification still
    pending or running from an earlier slot: the slot passes, saying so in the log.
    """
    backup = session.scalar(select(Backup).where(
        Backup.database_id == database_id, Backup.status == "completed")
        .order_by(Backup.finished_at.desc(), Backup.id.desc()).limit(1))
    if backup is None:
        log.info("verify:%s: no completed backup to verify for slot %s", database_id, slot)
        return None
    busy = session.scalar(select(Restore.id).where(
        Restore.backup_id == backup.id, Restore.kind == "verify",
        Restore.status.in_(ACTIVE_STATUSES)))
    if busy is not None:
        log.warning("verify:%s: slot %s skipped: verification %s of backup %s is still "
                    "running", database_id, slot, busy, backup.id)
        return None
    row = new_verification(backup, test_restore=test_restore, trigger="schedule",
                           scheduled_for=slot)
    session.add(row)
    session.flush()
    return partial(enqueue, ctx, send, RESTORE_TASK, row.id, "verification", fail_restore)


# Every kind of periodic work, asked for its jobs on each pass: a new kind is added
# here, and only here (no registration by import, so no kind is lost to a missing import).
JOB_SOURCES: tuple[JobSource, ...] = (backup_jobs, package_jobs, verify_jobs, retention_jobs)
