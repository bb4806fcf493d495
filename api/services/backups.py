"""Trigger, read, delete and download backups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api.services import ctx, delete_stored, enqueue, load_row, open_stored
from api.services.audit import audit
from shared.errors import Conflict, NotFound
from shared.jobs import BACKUP_TASK, fail_backup, new_backup
from shared.models import ACTIVE_STATUSES, Backup, Database


def list_backups(filters: dict[str, Any], page: int, page_size: int) -> tuple[list[Backup], int]:
    """Return one page of backups, newest first, and how many match ``filters``.

    At 100,000 rows (``bench/many_backups.py``) two things keep a page cheap: its ids
    are picked from an index alone (migration 0009) and only those rows are read; and a
    page past the middle is walked to from the oldest end, so the last page of 1,000
    skips a few index entries, not 99,900. The worst page is the middle one.
    """
    conditions = [getattr(Backup, name) == filters[name]
                  for name in ("database_id", "status") if filters.get(name)]
    with ctx().db.session() as session:
        total = session.scalar(select(func.count()).select_from(Backup)
                               .where(*conditions)) or 0
        offset = (page - 1) * page_size
        if offset >= total:
            return [], total
        ids = select(Backup.id).where(*conditions)
        if offset <= total // 2:
            page_ids = list(session.scalars(ids.order_by(*NEWEST_FIRST)
                                            .offset(offset).limit(page_size)))
        else:
            end = min(offset + page_size, total)
            page_ids = list(session.scalars(ids.order_by(*OLDEST_FIRST)
                                            .offset(total - end).limit(end - offset)))[::-1]
        rows = {row.id: row for row in session.scalars(
            select(Backup).where(Backup.id.in_(page_ids)))}
    return [rows[i] for i in page_ids if i in rows], total  # one deleted meanwhile is left out


# Newest first, as every list; the id breaks ties so that pages never overlap.
NEWEST_FIRST = (Backup.created_at.desc(), Backup.id.desc())
OLDEST_FIRST = (Backup.created_at.asc(), Backup.id.asc())


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
            raise Conflict(f"backup {backup_id} is running; stop it with POST "
                           f"/backups/{backup_id}/cancel, or wait for it to finish")
        delete_stored("globals", backup.globals_key)
        delete_stored("artifact", backup.storage_key)
        session.delete(backup)
        database_id = backup.database_id
    audit("backup.delete", backup_id=backup_id, database_id=database_id)


def open_download(backup_id: str) -> tuple[Backup, str, int, Iterator[bytes]]:
    """Return the row, a file name, the size, and a chunk iterator over the artifact."""
    backup = get_backup(backup_id)
    return (backup, *open_stored("backup", backup_id, backup.status, backup.storage_key))


def open_globals(backup_id: str) -> tuple[str, int, Iterator[bytes]]:
    """Return a file name, the size and a chunk iterator over the backup's globals artifact."""
    backup = get_backup(backup_id)
    if backup.status == "completed" and not backup.globals_key:
        raise NotFound(f"backup {backup_id} has no globals: options.globals was off when it "
                       "was taken (PostgreSQL only)")
    return open_stored("backup", backup_id, backup.status, backup.globals_key)
