"""Verify backups and restore them into databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import ctx, enqueue, is_uuid, load_row, paginate
from api.services.audit import audit
from shared.catalog import restore_refusal
from shared.errors import Conflict, Invalid, NotFound
from shared.jobs import RESTORE_TASK, fail_restore, new_verification
from shared.models import Backup, Database, Restore, utcnow


def request(backup_id: str, kind: str, target_database_id: str | None = None,
            confirm: str | None = None, test_restore: bool = False,
            apply_globals: bool = False) -> Restore:
    """Commit a pending verification/restore of a completed backup, then enqueue it.

    A restore goes into the backup's own database, or into one marked
    ``restore_target`` (else ``Conflict``); ``confirm``, when given, must be the
    target's id (the worker refuses a non-empty target without it).
    """
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
            _check_target(session, backup, target_id, confirm)
            if apply_globals and not backup.globals_key:
                raise Conflict(f"backup {backup.id} has no globals: options.globals was off "
                               "when it was taken (PostgreSQL only)")
        if kind == "verify":
            row = new_verification(backup, test_restore=test_restore)
        else:
            row = Restore(kind=kind, backup_id=backup.id, database_id=backup.database_id,
                          target_database_id=target_id, confirm=confirm == target_id,
                          apply_globals=apply_globals, status="pending", created_at=utcnow(),
                          details={})
        session.add(row)
    enqueue(RESTORE_TASK, row.id, kind, fail_restore)
    if kind == "restore":
        audit("restore", outcome="accepted", restore_id=row.id, backup_id=backup.id,
              database_id=backup.database_id, target_database_id=target_id,
              confirm=row.confirm, globals=row.apply_globals)
    return row


def _check_target(session: Session, backup: Backup, target_id: str,
                  confirm: str | None) -> None:
    target = session.get(Database, target_id)
    if target is None:
        raise NotFound(f"target database {target_id!r} not found")
    if target.engine != backup.engine:
        raise Invalid(f"target_database_id: {target_id!r} is a {target.engine} "
                      f"database; the backup is {backup.engine}")
    if (refused := restore_refusal(backup.database_id, target)) is not None:
        audit("restore", outcome="refused", reason=refused, backup_id=backup.id,
              database_id=backup.database_id, target_database_id=target_id)
        raise Conflict(refused)
    if confirm is not None and confirm != target_id:
        raise Invalid(f"confirm: must be the target database id ({target_id!r}) to replace "
                      "its contents")


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
