"""How big a backup may get: room on local storage before it, its own size during it.

- Before a backup on local storage, the free space of the storage's file system must
  cover the previous completed backup of the database times ``FREE_SPACE_MARGIN``
  (databases grow) plus ``global.min_free_bytes`` (what must stay free for everything
  else on that disk). Otherwise the backup fails before anything connects, saying both
  numbers, rather than filling the disk and failing at 3 AM with ENOSPC. (A backup that
  fills the disk anyway still fails cleanly: the writer removes its temporary file.)
- During any backup, ``databases[].max_size_bytes`` bounds the stored bytes (after
  compression and encryption): past it the dump is stopped, the partial artifact
  removed and the backup failed with a reason naming the limit.
"""

from __future__ import annotations

import math

from sqlalchemy import select

from shared.config import Settings
from shared.context import Context
from shared.errors import BackupError
from shared.models import Backup

# The next backup is expected to be at most this much larger than the previous one.
FREE_SPACE_MARGIN = 1.2


def check_free_space(ctx: Context, backup: Backup) -> None:
    """Raise ``BackupError`` when local storage lacks room for ``backup``; see the module."""
    free = ctx.storage.free_bytes()
    if free is None:  # S3 and the like: no disk of ours to fill
        return
    with ctx.db.session() as session:
        previous = session.scalar(
            select(Backup.size_bytes).where(
                Backup.database_id == backup.database_id, Backup.status == "completed",
                Backup.storage == ctx.storage.kind, Backup.size_bytes.is_not(None))
            .order_by(Backup.finished_at.desc()).limit(1))
    problem = free_space_problem(free, previous, ctx.settings.global_.min_free_bytes)
    if problem is not None:
        raise BackupError(problem)


def free_space_problem(free: int, previous_size: int | None, min_free: int) -> str | None:
    """Return why ``free`` bytes are not enough, or None when they are."""
    expected = math.ceil((previous_size or 0) * FREE_SPACE_MARGIN)
    needed = expected + min_free
    if free >= needed:
        return None
    parts = []
    if previous_size:
        parts.append(f"the previous backup's {human(previous_size)} x {FREE_SPACE_MARGIN} "
                     f"= {human(expected)}")
    parts.append(f"global.min_free_bytes {min_free} ({human(min_free)})")
    return (f"not enough free space on local storage: {free} bytes ({human(free)}) free, "
            f"{needed} bytes ({human(needed)}) needed: " + " + ".join(parts)
            + "; nothing was dumped")


def max_size_of(settings: Settings, database_id: str) -> int | None:
    """Return ``databases[].max_size_bytes`` of ``database_id`` (config only), or None."""
    return next((spec.max_size_bytes for spec in settings.databases
                 if spec.id == database_id), None)


def over_max_size(database_id: str, limit: int, written: int, tool: str) -> str:
    """Return the reason a backup stopped for passing its ``max_size_bytes``."""
    return (f"the backup exceeded max_size_bytes of {database_id!r}: {limit} bytes "
            f"({human(limit)}), {written} bytes written; {tool} was stopped and the "
            "partial artifact removed")


def human(size: int) -> str:
    """Return ``size`` bytes as ``1.5 GiB``."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


__all__ = ["FREE_SPACE_MARGIN", "check_free_space", "free_space_problem", "max_size_of",
           "over_max_size"]
