"""Trigger, read, delete and download backups."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import abort, ctx, is_uuid, paginate
from shared.catalog import effective
from shared.errors import ArtifactNotFound, StorageError
from shared.metrics import record_backup
from shared.models import ACTIVE_STATUSES, Backup, Database, utcnow

log = logging.getLogger(__name__)
STREAM_CHUNK = 256 * 1024


def list_backups(filters: dict[str, Any], page: int, page_size: int) -> tuple[list[Backup], int]:
    query = select(Backup)
    for name in ("database_id", "status"):
        if filters.get(name):
            query = query.where(getattr(Backup, name) == filters[name])
    return paginate(query.order_by(Backup.created_at.desc(), Backup.id.desc()), page, page_size)


def get_backup(backup_id: str) -> Backup:
    with ctx().db.session() as session:
        return _load(session, backup_id)


def create_backup(database_id: str, trigger: str = "manual") -> Backup:
    """Commit a pending row, then enqueue it (after commit, so the worker finds it)."""
    context = ctx()
    try:
        with context.db.session() as session:
            database = session.get(Database, database_id)
            if database is None:
                abort(404, message=f"database {database_id!r} not found")
            active = session.scalar(select(Backup).where(
                Backup.database_id == database_id, Backup.status.in_(ACTIVE_STATUSES)))
            if active is not None:
                abort(409, message=f"backup {active.id} of {database_id!r} is already "
                                   f"{active.status}")
            backup = Backup(
                database_id=database_id, engine=database.engine, status="pending",
                trigger=trigger, created_at=utcnow(), storage=context.storage.kind,
                compression=effective(database, context.settings.global_).compression,
            )
            session.add(backup)
    except IntegrityError:
        abort(409, message=f"a backup of {database_id!r} is already pending or running")
    try:
        assert context.celery is not None
        context.celery.send_task("backups.run", args=[backup.id])
    except Exception as exc:  # noqa: BLE001 - the broker's errors vary by transport
        log.error("could not enqueue backup %s: %s", backup.id, exc)
        _mark_failed(backup.id, "could not enqueue the backup: the broker is unreachable")
        abort(503, message="the broker is unreachable; the backup was recorded as failed")
    return backup


def delete_backup(backup_id: str) -> None:
    context = ctx()
    with context.db.session() as session:
        backup = _load(session, backup_id)
        if backup.status == "running":
            abort(409, message=f"backup {backup_id} is running; wait for it to finish")
        if backup.storage_key:
            try:
                context.storage.delete_artifact(backup.storage_key)
            except StorageError as exc:
                abort(502, message=f"could not delete the artifact: {exc.message}")
        session.delete(backup)


def open_download(backup_id: str) -> tuple[Backup, str, int, Iterator[bytes]]:
    """Return the row, a file name, the size, and a chunk iterator over the artifact."""
    context = ctx()
    backup = get_backup(backup_id)
    if backup.status != "completed" or not backup.storage_key:
        abort(409, message=f"backup {backup_id} is {backup.status}; only a completed "
                           "backup can be downloaded")
    try:
        size = context.storage.size(backup.storage_key)
        handle = context.storage.open(backup.storage_key)
    except ArtifactNotFound:
        abort(410, message=f"the artifact of backup {backup_id} is missing from storage")
    except StorageError as exc:
        abort(502, message=exc.message)

    def chunks() -> Iterator[bytes]:
        with handle:
            while data := handle.read(STREAM_CHUNK):
                yield data

    return backup, posixpath.basename(backup.storage_key), size, chunks()


def _load(session: Session, backup_id: str) -> Backup:
    row = session.get(Backup, backup_id) if is_uuid(backup_id) else None
    if row is None:
        abort(404, message=f"backup {backup_id!r} not found")
    return row


def _mark_failed(backup_id: str, message: str) -> None:
    with ctx().db.session() as session:
        row = session.get(Backup, backup_id)
        if row is not None and row.status == "pending":
            row.status, row.error, row.finished_at = "failed", message, utcnow()
            record_backup(session, row.database_id, row.engine, "failed", None)
