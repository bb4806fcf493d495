"""Find what dead workers left behind: retry or fail their backups, re-send lost messages.

A running backup writes ``heartbeat_at`` every few seconds from a thread of the
worker process; if the process is killed (SIGKILL, OOM, a deploy past its grace
period, host lost) the heartbeat stops. Beat runs this on every pass, so within
``heartbeat_timeout`` plus one ``beat_interval`` such a backup goes back to pending as
its next attempt and is enqueued again (``shared.jobs.interrupt_backup``), or, after
``global.max_attempts``, is failed with that reason. Its partial artifact is removed.
Heartbeats are judged only once this process has reached the metadata DB without a gap
for ``heartbeat_timeout``: after an outage (of the DB, or of this beat) the workers get
that long to write theirs before anyone is declared dead.

A pending backup whose message was lost (broker restarted without persistence, a
scheduler killed between commit and enqueue) is enqueued again every
``10 * beat_interval``; the task is idempotent, so a duplicate message is a no-op.
One never picked up within the visibility timeout is failed.

On the same cadence, partial artifacts whose deletion failed (the storage was down when
their backup failed: an S3 multipart upload left open) are deleted once the storage
answers again (shared/leftovers.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, update

from shared.context import Context
from shared.engines.pg_globals import globals_key
from shared.jobs import BACKUP_TASK, Send, fail_backup, interrupt_backup
from shared.leftovers import discard, retry_leftovers
from shared.models import Backup
from shared.notify import announce_failed_backup

log = logging.getLogger(__name__)


@dataclass
class _Reach:
    """Since when this process has reached the metadata DB without a gap."""

    since: datetime | None = None
    last: datetime | None = None

    def seen(self, now: datetime, max_gap: timedelta) -> datetime:
        if self.since is None or self.last is None or now - self.last > max_gap:
            self.since = now
        self.last = now
        return self.since


_reach = _Reach()
_next_sweep = 0.0


def requeue(ctx: Context, now: datetime, send: Send) -> list[str]:
    """Enqueue again the pending backups quiet for ``10 * beat_interval``; return their ids.

    ``heartbeat_at`` of a pending row records when it was last (re-)enqueued.
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


def reap(ctx: Context, now: datetime, send: Send) -> list[str]:
    """Retry or fail stale running backups, fail pending ones never picked up; return their
    ids. Then, every ``10 * beat_interval``, delete the partial artifacts left over."""
    limits = ctx.settings.global_
    stale_since = now - timedelta(seconds=limits.heartbeat_timeout)
    # A pending row not picked up for the visibility timeout (time limit + 1 h) since it
    # was queued, or since its interrupted attempt started, will not be.
    pending_since = now - timedelta(seconds=limits.visibility_timeout)
    last_sign = func.coalesce(Backup.heartbeat_at, Backup.started_at, Backup.created_at)
    conditions: dict[str, ColumnElement[bool]] = {
        "running": and_(Backup.status == "running", last_sign < stale_since),
        "pending": and_(Backup.status == "pending",
                        func.coalesce(Backup.started_at, Backup.created_at) < pending_since),
    }
    with ctx.db.session() as session:
        stale = list(session.scalars(select(Backup).where(or_(*conditions.values()))))
    # Heartbeats written while this process could not see the DB are not proof of death.
    max_gap = timedelta(seconds=max(limits.heartbeat_timeout / 4, 2 * limits.beat_interval))
    judging = now - _reach.seen(now, max_gap) >= timedelta(seconds=limits.heartbeat_timeout)
    reaped = []
    for backup in stale:
        if backup.status == "running" and not judging:
            continue
        if _give_up(ctx, backup, conditions[backup.status], now, send):
            reaped.append(backup.id)
    _maybe_sweep(ctx)
    return reaped


def _give_up(ctx: Context, backup: Backup, condition: ColumnElement[bool], now: datetime,
             send: Send) -> bool:
    """Retry or fail one stale backup; True if this process did."""
    limits = ctx.settings.global_
    if backup.status == "running":
        seen = backup.heartbeat_at or backup.started_at
        reason = (f"worker {backup.worker or '?'} stopped responding: no heartbeat since "
                  f"{seen:%Y-%m-%d %H:%M:%S} UTC (limit {limits.heartbeat_timeout}s); "
                  "the partial artifact was removed")
        with ctx.db.session() as session:
            # Re-checked in the UPDATE itself: a heartbeat that arrived meanwhile wins.
            outcome = interrupt_backup(session, backup, reason, only_if=condition,
                                       max_attempts=limits.max_attempts, now=now)
    else:
        reason = (f"never picked up by a worker within "
                  f"{limits.visibility_timeout}s of being queued")
        with ctx.db.session() as session:
            outcome = "failed" if fail_backup(session, backup.id, reason, only_if=condition,
                                              now=now) else None
    if outcome is None:
        return False
    if outcome == "failed":
        announce_failed_backup(ctx, backup.id)  # after commit; queued, never waited for
    if backup.storage_key:
        discard(ctx, backup.storage_key)
        if backup.engine == "postgres":  # options.globals may have written its part too
            discard(ctx, globals_key(backup.storage_key))
    if outcome == "retried":
        log.warning("backup %s of %s interrupted (%s); retrying as attempt %d of %d",
                    backup.id, backup.database_id, reason, backup.attempt + 1,
                    limits.max_attempts)
        try:
            send(BACKUP_TASK, [backup.id])
        except Exception as exc:  # noqa: BLE001 - the broker's errors vary by transport
            log.warning("could not enqueue backup %s (%s); it is re-sent within %ds",
                        backup.id, exc, 10 * limits.beat_interval)
    else:  # failed, or cancelled: a cancel was requested before its worker died
        log.warning("backup %s of %s %s: %s", backup.id, backup.database_id, outcome, reason)
    return True


def _maybe_sweep(ctx: Context) -> None:
    global _next_sweep
    if time.monotonic() < _next_sweep:
        return
    _next_sweep = time.monotonic() + 10 * ctx.settings.global_.beat_interval
    retry_leftovers(ctx)
