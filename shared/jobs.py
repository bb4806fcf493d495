"""Jobs from birth to failure: the rules the API, the beat and the workers share.

A job is a row (backup, package, restore) plus a Celery message carrying its id:

1. ``new_backup`` / ``new_package`` build the pending row; the caller adds and commits it;
2. ``enqueue`` then sends the message by the task names below (after commit, or the
   worker could look for a row it cannot see yet), so the API and the beat never
   import the worker; a refused message fails the row;
3. whoever gives up on a row (worker, reaper, beat, API) fails it with
   ``fail_backup`` / ``fail_package`` / ``fail_restore``, which count it in the metrics
   in the same transaction, so the counters never disagree with the rows; a backup
   whose worker died is first tried again (``interrupt_backup``, ``global.max_attempts``);
4. ``POST …/cancel`` calls ``request_cancel``: a pending row is cancelled at once, a
   running one gets ``cancel_requested_at`` and its worker stops it and calls
   ``cancel_job`` (counted as ``cancelled``: neither a success nor a failure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, update
from sqlalchemy.orm import Session

from shared.catalog import effective, package_encryption
from shared.context import Context
from shared.metrics.counters import increment
from shared.metrics.record import PACKAGES_TOTAL, record_backup
from shared.models import Backup, Database, Package, Restore, utcnow

log = logging.getLogger(__name__)

# Celery task names: ``worker.tasks`` registers them, everyone else sends by name.
BACKUP_TASK = "backups.run"
PACKAGE_TASK = "packages.run"
RESTORE_TASK = "restores.run"
RETENTION_TASK = "retention.run"

# The queue of each task: one per kind of job, so a flood of one kind (300 verifications)
# never stands in front of another (a backup). A worker consumes them all unless told
# otherwise (``backup-api worker --queues``); shared/broker.py routes by this table.
TASK_QUEUES = {BACKUP_TASK: "backups", PACKAGE_TASK: "packages", RESTORE_TASK: "restores",
               RETENTION_TASK: "retention"}

# Sends a task by name with its arguments; raises whatever the broker's transport raises.
Send = Callable[[str, list[str]], None]

# Which rows a failure may touch: statuses (``("pending",)``) or any SQL condition. The
# database checks it in the UPDATE itself, so a row another process has moved on since
# it was read is left alone (and not counted twice).
OnlyIf = tuple[str, ...] | ColumnElement[bool] | None

# A failed row points to no artifact: whatever the key held is partial, or deleted.
_NO_ARTIFACT: dict[str, Any] = {"storage_key": None, "size_bytes": None,
                                "checksum_md5": None, "checksum_sha256": None}


def new_backup(ctx: Context, database: Database, trigger: str,
               scheduled_for: datetime | None = None) -> Backup:
    """Return a pending backup of ``database`` (the caller adds it, commits, then enqueues it).

    The engine, storage kind, effective compression and encryption are fixed on the row
    now, so a later change to the database or the defaults does not change how it is
    taken or read.
    """
    settings = effective(database, ctx.settings.global_)
    return Backup(database_id=database.id, engine=database.engine, status="pending",
                  trigger=trigger, scheduled_for=scheduled_for, created_at=utcnow(),
                  storage=ctx.storage.kind, compression=settings.compression,
                  encryption=settings.encryption)


def new_package(ctx: Context, *, fmt: str | None = None, trigger: str = "manual",
                database_ids: Sequence[str] | None = None,
                scheduled_for: datetime | None = None) -> Package:
    """Return a pending package (the caller adds it, commits, then enqueues it).

    ``fmt`` defaults to ``package.compression``; ``database_ids`` ``None`` means every
    database with ``package: true`` when the package is built.
    """
    return Package(status="pending", trigger=trigger,
                   format=fmt or ctx.settings.package.compression, storage=ctx.storage.kind,
                   created_at=utcnow(), scheduled_for=scheduled_for, backups=[], missing=[],
                   encryption=package_encryption(ctx.settings),
                   database_ids=list(dict.fromkeys(database_ids)) if database_ids else None)


def new_verification(backup: Backup, *, test_restore: bool, trigger: str = "manual",
                     scheduled_for: datetime | None = None) -> Restore:
    """Return a pending verification of ``backup`` (the caller adds it, commits, enqueues it).

    What was asked travels in ``details`` (``test_restore``, ``trigger`` and the cron slot
    of a scheduled one); the worker adds what it checked.
    """
    asked: dict[str, Any] = {"test_restore": test_restore, "trigger": trigger}
    if scheduled_for is not None:
        asked["scheduled_for"] = scheduled_for.isoformat()
    return Restore(kind="verify", backup_id=backup.id, database_id=backup.database_id,
                   target_database_id=None, confirm=False, status="pending",
                   created_at=utcnow(), details=asked)


def fail_backup(session: Session, backup_id: str, message: str, *, only_if: OnlyIf = None,
                duration: float | None = None, now: datetime | None = None) -> bool:
    """Mark a backup failed with ``message`` and count it, in ``session``; True if it was.

    ``duration`` is how long it ran, when it ran. The artifact's key and checksums are
    cleared; deleting the artifact itself is the caller's business, before or after.
    """
    statement = update(Backup).where(Backup.id == backup_id, *_conditions(Backup, only_if))
    failed = session.execute(
        statement.values(status="failed", finished_at=now or utcnow(), error=message,
                         **_NO_ARTIFACT)
        .returning(Backup.database_id, Backup.engine)).first()
    if failed is None:
        return False
    record_backup(session, failed.database_id, failed.engine, "failed", duration)
    return True


def interrupt_backup(session: Session, backup: Backup, reason: str, *, max_attempts: int,
                     only_if: ColumnElement[bool], now: datetime) -> str | None:
    """Record that ``backup``'s attempt was cut short (its worker died); say what became of it.

    While attempts remain (``global.max_attempts``) the same row goes back to pending as
    its next attempt (``"retried"``): a scheduled slot keeps its one backup, the claim
    (pending → running in one UPDATE) lets one worker take it, and the caller enqueues
    it again. Otherwise it is failed and counted with ``reason`` and the number of
    attempts (``"failed"``). The attempt seen is part of the UPDATE's condition, with
    ``only_if``: a row another process moved on since (a second beat, a heartbeat that
    arrived) is left alone (``None``). Deleting the partial artifact is the caller's.
    """
    seen = and_(only_if, Backup.attempt == backup.attempt)
    if backup.cancel_requested_at is not None:
        # Someone asked to stop it: its worker's death does not earn it another try.
        cancelled = cancel_job(session, Backup, backup.id, f"cancelled on request; {reason}",
                               only_if=seen, now=now)
        return "cancelled" if cancelled else None
    if backup.attempt < max_attempts:
        # heartbeat_at of a pending row is when it was last enqueued (worker/beat/reaper.py);
        # started_at keeps the interrupted attempt's start until the next one starts.
        retried = cast(CursorResult[Any], session.execute(
            update(Backup).where(Backup.id == backup.id, seen).values(
                status="pending", attempt=Backup.attempt + 1, worker=None, heartbeat_at=now,
                error=None, **_NO_ARTIFACT))).rowcount
        return "retried" if retried else None
    tries = f"{backup.attempt} attempt{'s' if backup.attempt > 1 else ''}"
    failed = fail_backup(session, backup.id, f"{reason}; gave up after {tries}", only_if=seen,
                         now=now)
    return "failed" if failed else None


def add_failed_backup(session: Session, backup: Backup, message: str) -> None:
    """Add ``backup`` (new, never pending) as failed with ``message``, and count it.

    For the scheduled run that could not even start (the previous backup still ran):
    the slot is recorded as a failure the user sees, not silently skipped.
    """
    backup.status, backup.finished_at, backup.error = "failed", utcnow(), message
    session.add(backup)
    record_backup(session, backup.database_id, backup.engine, "failed", None)


def add_failed_package(session: Session, package: Package, message: str) -> None:
    """Add ``package`` (new, never pending) as failed with ``message``, and count it.

    For the scheduled package that could not wait its turn (another one was still
    pending, and only one may be): like ``add_failed_backup``, a failure the user sees.
    """
    package.status, package.finished_at, package.error = "failed", utcnow(), message
    session.add(package)
    increment(session, PACKAGES_TOTAL, {"status": "failed"})


def fail_package(session: Session, package_id: str, message: str, *,
                 only_if: OnlyIf = None) -> bool:
    """Mark a package failed with ``message`` and count it, in ``session``; True if it was.

    Like ``fail_backup``: the key and checksums are cleared, the artifact is the caller's.
    """
    statement = update(Package).where(Package.id == package_id, *_conditions(Package, only_if))
    failed = cast(CursorResult[Any], session.execute(statement.values(
        status="failed", finished_at=utcnow(), error=message, **_NO_ARTIFACT))).rowcount
    if failed:
        increment(session, PACKAGES_TOTAL, {"status": "failed"})
    return bool(failed)


def fail_restore(session: Session, restore_id: str, message: str, *,
                 only_if: OnlyIf = None) -> bool:
    """Mark a verification or restore failed with ``message``; True if it was.

    Restores have no counter: the row is all there is to record.
    """
    statement = update(Restore).where(Restore.id == restore_id, *_conditions(Restore, only_if))
    return bool(cast(CursorResult[Any], session.execute(statement.values(
        status="failed", finished_at=utcnow(), error=message))).rowcount)


JobModel = type[Backup] | type[Package] | type[Restore]


def cancel_job(session: Session, model: JobModel, row_id: str, message: str, *,
               only_if: OnlyIf = None, duration: float | None = None,
               now: datetime | None = None) -> bool:
    """Mark a backup, package or restore ``cancelled`` with ``message``; True if it was.

    Backups and packages are counted with ``status="cancelled"`` (neither a success nor
    a failure: no alert fires, and the last success stays what it was) and lose their
    key and checksums like a failed row; deleting the partial artifact is the caller's.
    """
    now = now or utcnow()
    values: dict[str, Any] = {"status": "cancelled", "finished_at": now, "error": message,
                              "cancel_requested_at": func.coalesce(model.cancel_requested_at,
                                                                   now)}
    if model is not Restore:
        values.update(_NO_ARTIFACT)
    statement = update(model).where(model.id == row_id, *_conditions(model, only_if))
    if model is Backup:
        row = session.execute(statement.values(**values)
                              .returning(Backup.database_id, Backup.engine)).first()
        if row is not None:
            record_backup(session, row.database_id, row.engine, "cancelled", duration)
        return row is not None
    done = bool(cast(CursorResult[Any], session.execute(statement.values(**values))).rowcount)
    if done and model is Package:
        increment(session, PACKAGES_TOTAL, {"status": "cancelled"})
    return done


def request_cancel(session: Session, model: JobModel, row_id: str,
                   now: datetime | None = None) -> bool:
    """Cancel a pending job at once, or ask the worker of a running one to stop it.

    Return False when the job is already finished (the caller says how). A pending
    row is cancelled in one UPDATE, so a worker claiming it at the same moment either
    finds it cancelled or has it running, and then sees ``cancel_requested_at``
    (asking again keeps the first time).
    """
    now = now or utcnow()
    if cancel_job(session, model, row_id, "cancelled on request before it started",
                  only_if=("pending",), now=now):
        return True
    asked = cast(CursorResult[Any], session.execute(
        update(model).where(model.id == row_id, model.status == "running").values(
            cancel_requested_at=func.coalesce(model.cancel_requested_at, now)))).rowcount
    return bool(asked)


class FailRow(Protocol):
    """``fail_backup``, ``fail_package`` or ``fail_restore``."""

    def __call__(self, session: Session, row_id: str, message: str, /, *,
                 only_if: OnlyIf = None) -> bool: ...


def enqueue(ctx: Context, send: Send, task: str, row_id: str, what: str,
            fail: FailRow) -> bool:
    """Send ``task`` for the committed row ``row_id``; if the broker refuses, fail the row.

    The row is failed only while still pending, with a reason naming the broker, so it
    is never left pending for a message that does not exist. Return whether it was sent.
    """
    try:
        send(task, [row_id])
    except Exception as exc:  # noqa: BLE001 - the broker's errors vary by transport
        log.error("could not enqueue %s %s: %s", what, row_id, exc)
        with ctx.db.session() as session:
            fail(session, row_id, f"could not enqueue the {what}: the broker is unreachable",
                 only_if=("pending",))
        return False
    return True


def _conditions(model: JobModel, only_if: OnlyIf) -> list[ColumnElement[bool]]:
    if only_if is None:
        return []
    if isinstance(only_if, ColumnElement):
        return [only_if]
    return [model.status.in_(list(only_if))]
