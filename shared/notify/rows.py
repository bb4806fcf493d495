"""Announce a row failed by someone other than its worker (the reaper, the beat).

The notice is built from the committed row, so it says what the row says.
"""

from __future__ import annotations

import logging

from shared.context import Context
from shared.models import Backup
from shared.notify.dispatch import notify, wants
from shared.notify.notices import backup_notice

log = logging.getLogger(__name__)


def announce_failed_backup(ctx: Context, backup_id: str) -> None:
    """Notify ``backup_failed`` for the committed failed backup ``backup_id``. Never raises."""
    if not wants(ctx.settings.notifications, "backup_failed"):
        return
    try:
        with ctx.db.session() as session:
            backup = session.get(Backup, backup_id)
    except Exception as exc:  # noqa: BLE001 - the metadata DB may be down; the row stays
        log.warning("could not read backup %s to announce its failure: %s", backup_id,
                    type(exc).__name__)
        return
    if backup is None or backup.status != "failed":
        return
    duration = (round((backup.finished_at - backup.started_at).total_seconds(), 3)
                if backup.finished_at and backup.started_at else None)
    notify(ctx, backup_notice("backup_failed", backup, error=backup.error,
                              finished_at=backup.finished_at, duration=duration))
