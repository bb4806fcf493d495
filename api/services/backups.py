"""Trigger, read, delete and download backups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.services import ctx, delete_stored, enqueue, load_row, open_stored, paginate
from api.services.audit import audit
from shared.errors import Conflict, NotFound
from shared.jobs import BACKUP_TASK, fail_backup, new_backup
from shared.models import ACTIVE_STATUSES, Backup, Database


def list_backups(filters: dict[str, Any], page: int, page_size: int) -> tuple[list[Backup], int]:
    query = select(Backup)
    for name in ("database_id", "status"):
        if filters.get(name):
            query = query.where(getattr(Backup, name) == filters[name])
    return paginate(query.order_by(Backup.created_at.desc(), Backup.id.desc()), page, page_size)


def get_backup(backup_id: str) -> Backup:
    with ctx().db.session() as session:
        return load_row(session, Backup, "backup", backup_id)


def create_backup(database_id: str, trigger: str = "manual") -> Backup:
    """Commit a pending row, then enqueue it (after commit, so the worker finds it)."""
    context = ctx()
    try:
        with context.db.session() as session:
            database = session.get(Database, database_id)
            if database is None:
                raise NotFound(f"database {database_id!r} not found")
            active = session.scalar(select(Backup).where(
                Backup.database_id == database_id, Backup.status.in_(ACTIVE_STATUSES)))
            if active is not None:
                raise Conflict(f"backup {active.id} of {database_id!r} is already "
                               f"{active.status}")
            backup = new_backup(context, database, trigger)
            session.add(backup)
    except IntegrityError:
        # The one-active-backup index: a request racing this one inserted first.
        raise Conflict(f"a backup of {database_id!r} is already pending or running") from None
    enqueue(BACKUP_TASK, backup.id, "backup", fail_backup)
    return backup


def delete_backup(backup_id: str) -> None:
    context = ctx()
    with context.db.session() as session:
        backup = load_row(session, Backup, "backup", backup_id)
        if backup.status == "running":
            raise Conflict(f"backup {backup_id} is running; wait for it to finish")
        delete_stored("artifact", backup.storage_key)
        session.delete(backup)
        database_id = backup.database_id
    audit("backup.delete", backup_id=backup_id, database_id=database_id)


def open_download(backup_id: str) -> tuple[Backup, str, int, Iterator[bytes]]:
    """Return the row, a file name, the size, and a chunk iterator over the artifact."""
    backup = get_backup(backup_id)
    return (backup, *open_stored("backup", backup_id, backup.status, backup.storage_key))
