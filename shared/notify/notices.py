"""What a notification says: one ``Notice`` per event, built from a committed row.

A notice holds facts a receiver can act on (which database, which backup, when, the
error as stored on the row) and nothing else: no password, no connection URL, no key.
The error of a failed job is already scrubbed of the database's password when it is
stored (``shared.errors.redact``); every text is scrubbed once more here with what the
process knows to be secret (``shared.logs.redact_text``: configured passwords, the S3
secret key, the channels' own secrets, any ``user:password@`` in a URL).
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.logs import redact_text
from shared.models import Backup, Package, Restore, utcnow


@dataclass(frozen=True)
class Notice:
    """One event to announce: ``summary`` says it in a sentence, ``facts`` hold the details."""

    event: str
    summary: str
    facts: dict[str, Any]
    occurred_at: datetime = field(default_factory=utcnow)
    # The same across retries, so a receiver can drop a duplicate.
    delivery_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def payload(self) -> dict[str, Any]:
        """Return the JSON body of a webhook: event, time, summary, then the facts."""
        return {"event": self.event, "delivery_id": self.delivery_id,
                "occurred_at": _iso(self.occurred_at), "summary": _clean(self.summary),
                "host": socket.gethostname(),
                **{key: _clean(value) for key, value in self.facts.items()}}


def backup_notice(event: str, backup: Backup, *, error: str | None = None,
                  finished_at: datetime | None = None, duration: float | None = None,
                  size_bytes: int | None = None, sha256: str | None = None) -> Notice:
    """Return the notice of a backup that failed (``error``) or completed (size, checksum)."""
    facts: dict[str, Any] = {
        "database_id": backup.database_id, "backup_id": backup.id, "engine": backup.engine,
        "trigger": backup.trigger, "attempt": backup.attempt,
        "started_at": _iso(backup.started_at), "finished_at": _iso(finished_at),
        "duration_seconds": duration,
    }
    if event == "backup_completed":
        facts |= {"size_bytes": size_bytes, "checksum_sha256": sha256,
                  "storage_key": backup.storage_key}
        summary = f"Backup of {backup.database_id} completed ({_size(size_bytes)})"
    else:
        facts["error"] = error
        summary = f"Backup of {backup.database_id} failed: {error}"
    return Notice(event, summary, facts)


def package_notice(package: Package, error: str) -> Notice:
    """Return the notice of a package that failed with ``error``."""
    facts = {"package_id": package.id, "trigger": package.trigger, "format": package.format,
             "database_ids": list(package.database_ids or []) or None, "error": error}
    return Notice("package_failed", f"Package {package.id[:8]} failed: {error}", facts)


def verify_notice(restore: Restore, error: str, verdict: str | None = None) -> Notice:
    """Return the notice of a verification that failed with ``error``; ``verdict`` is what
    it says of the backup (``corrupt`` or ``restore_failed``), when known."""
    facts = {"database_id": restore.database_id, "backup_id": restore.backup_id,
             "restore_id": restore.id, "verify_status": verdict, "error": error}
    return Notice("verify_failed", f"Verification of backup {restore.backup_id[:8]} of "
                                   f"{restore.database_id} failed: {error}", facts)


def overdue_notice(database_id: str, schedule: str, timezone: str,
                   last_success: datetime | None, registered_at: datetime,
                   grace_seconds: int) -> Notice:
    """Return the notice of a database whose last success is older than its schedule allows."""
    since = (f"no successful backup since {last_success:%Y-%m-%d %H:%M} UTC" if last_success
             else "no successful backup since it was registered "
                  f"({registered_at:%Y-%m-%d %H:%M} UTC)")
    facts = {"database_id": database_id, "schedule": schedule, "timezone": timezone,
             "last_success_at": _iso(last_success), "registered_at": _iso(registered_at),
             "overdue_grace_seconds": grace_seconds}
    return Notice("backup_overdue", f"Backups of {database_id} are overdue: {since}", facts)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value, unit = float(size), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
