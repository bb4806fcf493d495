"""Cancel a backup, package or restore: ``POST /{backups,packages,restores}/{id}/cancel``."""

from __future__ import annotations

from typing import TypeVar

from api.services import ctx, load_row
from api.services.audit import audit
from shared.errors import Conflict
from shared.jobs import JobModel, request_cancel
from shared.models import Backup, Package, Restore

Job = TypeVar("Job", Backup, Package, Restore)


def cancel(model: type[Job], what: str, row_id: str) -> Job:
    """Cancel a pending job now, or ask its worker to stop a running one; return the row.

    The row comes back ``cancelled``, or still ``running`` with ``cancel_requested_at``
    set: its worker notices within a second, stops the tool, removes the partial
    artifact and marks it ``cancelled``. A finished job is a ``Conflict`` naming its status.
    """
    job_model: JobModel = model
    with ctx().db.session() as session:
        row = load_row(session, model, what, row_id)
        if not request_cancel(session, job_model, row.id):
            session.refresh(row)
            raise Conflict(f"{what} {row_id} is {row.status}; only a pending or running "
                           f"{what} can be cancelled")
        session.refresh(row)
    audit(f"{what}.cancel", **{f"{what}_id": row_id}, status=row.status)
    return row


def cancel_backup(backup_id: str) -> Backup:
    return cancel(Backup, "backup", backup_id)


def cancel_package(package_id: str) -> Package:
    return cancel(Package, "package", package_id)


def cancel_restore(restore_id: str) -> Restore:
    return cancel(Restore, "restore", restore_id)
