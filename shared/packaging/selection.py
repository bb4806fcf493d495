"""What goes into a package, where it is stored, what its manifest says, and when it goes.

Pure functions over rows, shared by the worker (building), the API (listing) and
retention; nothing here touches storage.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.encryption import SUFFIX
from shared.models import Backup, Database
from shared.packaging.archive import EXTENSIONS

# Database ids start with a letter or digit, so this prefix never meets a backup key.
KEY_PREFIX = "_packages"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Member:
    """One backup to bundle, as recorded on its row (what the copy must match)."""

    database_id: str
    engine: str
    backup_id: str
    storage_key: str
    size: int
    md5: str
    sha256: str
    compression: str
    created_at: datetime
    # As stored: an encrypted backup stays encrypted inside the package.
    encryption: dict[str, Any] | None = None

    @property
    def file_name(self) -> str:
        return posixpath.basename(self.storage_key)


@dataclass(frozen=True)
class Selection:
    members: list[Member]
    missing: list[str]
    # Why the selection is empty, when it is.
    empty_reason: str | None = None


def package_key(package_id: str, fmt: str, when: datetime, encrypted: bool = False) -> str:
    """Return ``_packages/<yyyy>/<mm>/<dd>/package-<utc stamp>-<id8>.<zip|tar.gz>[.age]``."""
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    return (f"{KEY_PREFIX}/{when:%Y/%m/%d}/package-{stamp}-{package_id[:8]}"
            f"{EXTENSIONS[fmt]}{SUFFIX if encrypted else ''}")


def select_members(session: Session, requested: Sequence[str] | None,
                   storage_kind: str) -> Selection:
    """Pick the latest completed backup of each requested database.

    ``requested`` ``None`` means every database with ``package: true``. Backups kept
    on another storage backend cannot be read from this one, so they do not count.
    """
    if requested is None:
        ids = list(session.scalars(select(Database.id).where(Database.package.is_(True))
                                   .order_by(Database.id)))
        if not ids:
            return Selection([], [], "nothing to package: no database has package: true")
    else:
        ids = list(dict.fromkeys(requested))
    members: list[Member] = []
    missing: list[str] = []
    for database_id in ids:
        backup = session.scalars(
            select(Backup).where(Backup.database_id == database_id,
                                 Backup.status == "completed",
                                 Backup.storage == storage_kind,
                                 Backup.storage_key.is_not(None))
            .order_by(Backup.created_at.desc(), Backup.id.desc()).limit(1)).first()
        if backup is None:
            missing.append(database_id)
            continue
        assert backup.storage_key and backup.size_bytes is not None
        members.append(Member(
            database_id=database_id, engine=backup.engine, backup_id=backup.id,
            storage_key=backup.storage_key, size=backup.size_bytes,
            md5=backup.checksum_md5 or "", sha256=backup.checksum_sha256 or "",
            compression=backup.compression, created_at=backup.created_at,
            encryption=backup.encryption))
    reason = None
    if not members:
        reason = "nothing to package: no completed backup of " + ", ".join(missing)
    return Selection(members, missing, reason)


def manifest(package_id: str, created_at: datetime, fmt: str, selection: Selection) -> bytes:
    """Return ``manifest.json``: what the package holds, and which databases are missing."""
    document = {
        "manifest_version": MANIFEST_VERSION,
        "package_id": package_id,
        "created_at": created_at.isoformat(),
        "format": fmt,
        "entries": [{
            "database_id": m.database_id, "engine": m.engine, "backup_id": m.backup_id,
            "file": m.file_name, "size_bytes": m.size, "checksum_md5": m.md5,
            "checksum_sha256": m.sha256, "compression": m.compression,
            "encryption": m.encryption, "backup_created_at": m.created_at.isoformat(),
        } for m in selection.members],
        "missing": selection.missing,
    }
    return json.dumps(document, indent=2).encode()

