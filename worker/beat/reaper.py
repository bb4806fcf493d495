"""Find backups a dead worker left behind and fail them, removing their partial artifact.

A running backup writes ``heartbeat_at`` every few seconds from a thread of the
worker process; if the process is killed (SIGKILL, OOM, host lost) the heartbeat
stops. Beat runs this on every pass, so such a backup is failed within
``heartbeat_timeout`` plus one ``beat_interval``, and its database can back up again.

A pending backup whose message was lost (broker restarted without persistence, a
scheduler killed between commit and enqueue) is enqueued again every
``10 * beat_interval``; the task is idempotent, so a duplicate message is a no-op.
One never picked up within the visibility timeout is failed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, update

from shared.context import Context
from shared.errors import StorageError
from shared.jobs import BACKUP_TASK, Send, fail_backup
from shared.models import Backup

log = logging.getLogger(__name__)


def requeue(ctx: Context, now: datetime, send: Send) -> list[str]:
    """Enqueue again the pending backups quiet for ``10 * beat_interval``; return their ids.

    ``heartbeat_at`` of a pending row records when it was last re-enqueued.
    """
    quiet_since = now - timedelta(seconds=10 * ctx.settings.global_.beat_interval)
    quiet = and_(Backup.status == "pending",
                 func.coalesce(Backup.heartbeat_at, Backup.created_at) < quiet_since)
    with ctx.db.session() as session:
        ids = list(session.scalars(select(Backup.id).where(quiet)))
    requeued = []
    for backup_id in ids:
        with ctx.db.session() as session:
            if not cast(CursorResult[Any], session.execute(
                    update(Backup).where(Backup.id == backup_id, quiet)
                    .values(heartbeat_at=now))).rowcount:
                continue  # picked up meanwhile, or another scheduler did it
        send(BACKUP_TASK, [backup_id])
        log.info("backup %s still pending; enqueued it again", backup_id)
        requeued.append(backup_id)
    return requeued


def reap(ctx: Context, now: datetime) -> list[str]:
    """Fail stale running backups (and pending ones never picked up); return their ids."""
    limits = ctx.settings.global_
    stale_since = now - timedelta(seconds=limits.heartbeat_timeout)
    # A message survives in the broker for the visibility timeout (time limit + 1 h):
    # a pending row older than that will never be picked up.
    pending_since = now - timedelta(seconds=limits.visibility_timeout)
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
                      f"{limits.visibility_timeout}s of being queued")
        with ctx.db.session() as session:
            # Re-check in the UPDATE itself: a heartbeat that arrived meanwhile wins.
            claimed = fail_backup(session, backup.id, reason, only_if=conditions[backup.status],
                                  now=now)
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
