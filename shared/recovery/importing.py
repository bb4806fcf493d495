"""Rebuild the metadata rows from the sidecars (``backup-api recover import``).

Into an empty metadata DB or an existing one, any number of times: a row whose id is
already there is left as it is, so a second run adds nothing. What comes back:
- a ``databases`` row for each database id that has backups and no row yet (declared
  ones come from config.yaml first). The sidecar (version 2) gives its name, server,
  database name and user; the password never was in storage, so the row is registered
  ``enabled: false`` with no schedule: set its password and enable it with
  ``PATCH /databases/{id}`` (or declare it in config.yaml) to back it up again;
- a completed ``backups`` row per backup sidecar (checksums, times, encryption), so
  listing, download, verify and restore work through the API again;
- a completed ``packages`` row per package sidecar.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import DEFAULT_PORTS
from shared.models import Backup, Database, Package, utcnow
from shared.recovery.sidecars import Catalog, FoundBackup

UNKNOWN_HOST = "unknown"


@dataclass
class Imported:
    """What one import added (ids), and how many rows were there already."""

    databases: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    already_there: int = 0


def import_catalog(session: Session, catalog: Catalog, storage_kind: str) -> Imported:
    """Add the rows ``catalog`` describes that ``session``'s metadata DB lacks."""
    done = Imported()
    known_databases = set(session.scalars(select(Database.id)))
    known_backups = _existing(session, Backup.id, [b.backup_id for b in catalog.backups])
    known_packages = _existing(session, Package.id, [p.package_id for p in catalog.packages])
    latest: dict[str, FoundBackup] = {}
    for found in catalog.backups:  # oldest first: the last one per database wins
        latest[found.database_id] = found
    for database_id, found in sorted(latest.items()):
        if database_id not in known_databases:
            session.add(_database_row(found))
            done.databases.append(database_id)
    for found in catalog.backups:
        if found.backup_id in known_backups:
            done.already_there += 1
            continue
        known_backups.add(found.backup_id)  # the same backup under two keys: once
        session.add(_backup_row(found, storage_kind))
        done.backups.append(found.backup_id)
    for package in catalog.packages:
        if package.package_id in known_packages:
            done.already_there += 1
            continue
        known_packages.add(package.package_id)
        session.add(Package(
            id=package.package_id, status="completed", trigger=package.trigger,
            format=package.format, created_at=package.created_at,
            started_at=package.created_at, finished_at=package.finished_at,
            size_bytes=package.size_bytes, checksum_md5=package.checksum_md5,
            checksum_sha256=package.checksum_sha256, storage=storage_kind,
            storage_key=package.key, backups=package.backups, missing=package.missing,
            encryption=package.encryption))
        done.packages.append(package.package_id)
    return done


def _existing(session: Session, column: Any, ids: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # bounded IN lists
        found.update(session.scalars(select(column).where(column.in_(wanted[start:start + 500]))))
    return found


def _database_row(found: FoundBackup) -> Database:
    source = found.source
    now = utcnow()
    return Database(
        id=found.database_id, name=str(source.get("name") or found.database_id),
        engine=found.engine, host=str(source.get("host") or UNKNOWN_HOST),
        port=int(source.get("port") or DEFAULT_PORTS.get(found.engine, 0)),
        username=source.get("username"), password=None,
        database_name=found.database_name or found.database_id, options={},
        # Public keys only: the next backups stay encrypted to the same recipients.
        encryption=found.encryption, enabled=False, managed_by="api",
        created_at=now, updated_at=now)


def _backup_row(found: FoundBackup, storage_kind: str) -> Backup:
    return Backup(
        id=found.backup_id, database_id=found.database_id, engine=found.engine,
        status="completed", trigger=found.trigger, created_at=found.created_at,
        started_at=found.started_at or found.created_at,
        finished_at=found.finished_at or found.created_at, size_bytes=found.size_bytes,
        compression=found.compression, checksum_md5=found.checksum_md5,
        checksum_sha256=found.checksum_sha256, storage=storage_kind, storage_key=found.key,
        encryption=found.encryption, source_counts=found.source_counts)


__all__ = ["Imported", "import_catalog"]
