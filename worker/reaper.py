"""Find backups a dead worker left behind and fail them, removing their partial artifact.

A running backup writes ``heartbeat_at`` every few seconds from a thread of the
worker process; if the process is killed (SIGKILL, OOM, host lost) the heartbeat
stops. Beat runs this on every pass, so such a backup is failed within
``heartbeat_timeout`` plus one ``beat_interval``, and its database can back up again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, update

from shared.context import Context
from shared.errors import StorageError
from shared.models import Backup

log = logging.getLogger(__name__)


def reap(ctx: Context, now: datetime) -> list[str]:
    """Fail stale running backups (and pending ones never picked up); return their ids."""
    limits = ctx.settings.global_
    stale_since = now - timedelta(seconds=limits.heartbeat_timeout)
    # A message survives in the broker for the visibility timeout (time limit + 1 h):
    # a pending row older than that will never be picked up.
    pending_since = now - timedelta(seconds=limits.backup_time_limit + 3600)
    last_sign = func.coalesce(Backup.heartbeat_at, Backup.started_at, Backup.created_at)
    conditions: dict[str, ColumnElement[bool]] = {
        "running": and_(Backup.status == "running", last_sign < stale_since),
        "pending": and_(Backup.status == "pending", Backup.created_at < pending_since),
    }
    with ctx.db.session() as session:
        stale = list(session.scalars(select(Backup).where(or_(*conditions.values()))))
    reaped = []
    for backup in stale:
        if backup.status == "running":
            seen = backup.heartbeat_at or backup.started_at
            reason = (f"worker {backup.worker or '?'} stopped responding: no heartbeat since "
                      f"{seen:%Y-%m-%d %H:%M:%S} UTC (limit {limits.heartbeat_timeout}s); "
                      "the partial artifact was removed")
        else:
            reason = (f"never picked up by a worker within "
                      f"{limits.backup_time_limit + 3600}s of being queued")
        with ctx.db.session() as session:
            # Re-check in the UPDATE itself: a heartbeat that arrived meanwhile wins.
            claimed = cast(CursorResult[Any], session.execute(
                update(Backup).where(Backup.id == backup.id, conditions[backup.status])
                .values(status="failed", finished_at=now, error=reason, storage_key=None,
                        size_bytes=None, checksum_md5=None, checksum_sha256=None)
            )).rowcount
        if not claimed:
            continue
        log.warning("backup %s of %s failed: %s", backup.id, backup.database_id, reason)
        reaped.append(backup.id)
        if backup.storage_key:
            try:
                ctx.storage.delete_artifact(backup.storage_key)
            except StorageError as exc:
                log.error("could not remove partial artifact %s: %s", backup.storage_key,
                          exc.message)
    return reaped
