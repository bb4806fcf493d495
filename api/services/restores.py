"""Verify backups and restore them into databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from api.services import ctx, enqueue, is_uuid, load_row, paginate
from shared.errors import Conflict, Invalid, NotFound
from shared.jobs import RESTORE_TASK, fail_restore
from shared.models import Backup, Database, Restore, utcnow


def request(backup_id: str, kind: str, target_database_id: str | None = None,
            confirm: bool = False) -> Restore:
    """Commit a pending verification/restore of a completed backup, then enqueue it."""
    context = ctx()
    with context.db.session() as session:
        backup = session.get(Backup, backup_id) if is_uuid(backup_id) else None
        if backup is None:
            raise NotFound(f"backup {backup_id!r} not found")
        if backup.status != "completed":
            raise Conflict(f"backup {backup_id} is {backup.status}; only a completed "
                           "backup can be verified or restored")
        target_id = None
        if kind == "restore":
            target_id = target_database_id or backup.database_id
            target = session.get(Database, target_id)
            if target is None:
                raise NotFound(f"target database {target_id!r} not found")
            if target.engine != backup.engine:
                raise Invalid(f"target_database_id: {target_id!r} is a {target.engine} "
                              f"database; the backup is {backup.engine}")
        row = Restore(kind=kind, backup_id=backup.id, database_id=backup.database_id,
                      target_database_id=target_id, confirm=confirm, status="pending",
                      created_at=utcnow(), details={})
        session.add(row)
    enqueue(RESTORE_TASK, row.id, kind, fail_restore)
    return row


def list_restores(filters: dict[str, Any], page: int,
                  page_size: int) -> tuple[list[Restore], int]:
    query = select(Restore)
    if filters.get("backup_id"):
        query = query.where(Restore.backup_id == str(filters["backup_id"]))
    if filters.get("status"):
        query = query.where(Restore.status == filters["status"])
    return paginate(query.order_by(Restore.created_at.desc(), Restore.id.desc()),
                    page, page_size)


def get_restore(restore_id: str) -> Restore:
    with ctx().db.session() as session:
        return load_row(session, Restore, "restore", restore_id)
