"""The sidecars, written and read back.

Each artifact ``K`` has a JSON sidecar ``K.json`` (``shared.storage.sidecar_key``). A
backup's sidecar says which database it came from, the engine, the compression, the
encryption recipients (public keys only), the size and the checksums of the stored bytes
and when it was taken; a package's lists its members. Since sidecar version 2 a backup's
also describes the source database (name, server, database name, user; never the
password or the engine options, which may hold one) and the row counts taken at backup
time. Older sidecars lack those: the reader fills what it can and leaves the rest
``None`` (a MongoDB restore then maps the database named after the database id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import ArtifactNotFound, BackupError
from shared.models import Database
from shared.storage import Storage, sidecar_key

SIDECAR_VERSION = 2
_SUFFIX = ".json"


def source_of(database: Database) -> dict[str, object]:
    """Describe the source database for a sidecar: what a rebuilt row needs, no secret."""
    return {"name": database.name, "engine": database.engine, "host": database.host,
            "port": database.port, "database_name": database.database_name,
            "username": database.username}


@dataclass(frozen=True)
class FoundBackup:
    """One backup as its sidecar describes it."""

    key: str
    backup_id: str
    database_id: str
    engine: str
    compression: str
    size_bytes: int | None
    checksum_md5: str | None
    checksum_sha256: str | None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    trigger: str = "manual"
    encryption: dict[str, Any] | None = None
    # The source database (sidecar version 2); empty from older sidecars.
    source: dict[str, Any] = field(default_factory=dict)
    source_counts: dict[str, int] | None = None
    tools: dict[str, str] = field(default_factory=dict)
    sidecar_version: int = 1

    @property
    def database_name(self) -> str | None:
        """The source's database name, when the sidecar recorded it."""
        name = self.source.get("database_name")
        return name if isinstance(name, str) else None


@dataclass(frozen=True)
class FoundPackage:
    """One package as its sidecar describes it."""

    key: str
    package_id: str
    format: str
    size_bytes: int | None
    checksum_md5: str | None
    checksum_sha256: str | None
    created_at: datetime
    finished_at: datetime | None = None
    trigger: str = "manual"
    backups: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    encryption: dict[str, Any] | None = None


@dataclass
class Catalog:
    """Everything a storage holds, from its sidecars; ``problems`` names what is odd."""

    backups: list[FoundBackup] = field(default_factory=list)
    packages: list[FoundPackage] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def scan(storage: Storage, prefix: str = "") -> Catalog:
    """Read every sidecar under ``prefix``; backups and packages oldest first.

    An artifact without a sidecar, a sidecar without its artifact and an unreadable
    sidecar each become a line in ``problems``, never an exception.
    """
    keys = set(storage.list(prefix))
    catalog = Catalog()
    for key in sorted(keys):
        if not key.endswith(_SUFFIX):
            if sidecar_key(key) not in keys:
                catalog.problems.append(f"{key}: no sidecar (not described, not restorable "
                                        "by recover)")
            continue
        artifact = key.removesuffix(_SUFFIX)
        if artifact not in keys:
            catalog.problems.append(f"{key}: sidecar of a missing artifact")
            continue
        try:
            found = parse(artifact, _load(storage, key))
        except BackupError as exc:
            catalog.problems.append(f"{key}: {exc.message}")
            continue
        if isinstance(found, FoundBackup):
            catalog.backups.append(found)
        elif isinstance(found, FoundPackage):
            catalog.packages.append(found)
    catalog.backups.sort(key=lambda b: (b.created_at, b.key))
    catalog.packages.sort(key=lambda p: (p.created_at, p.key))
    return catalog


def find_backup(storage: Storage, ref: str) -> FoundBackup:
    """Return the backup whose storage key or backup id (or a unique id prefix) is ``ref``.

    Raise ``BackupError`` saying what was looked for when nothing (or more than one
    backup) matches.
    """
    ref = ref.strip().strip("/")
    if not ref.endswith(_SUFFIX):
        try:
            document = _load(storage, sidecar_key(ref))
        except ArtifactNotFound:
            pass
        else:
            found = parse(ref, document)
            if not isinstance(found, FoundBackup):
                raise BackupError(f"{ref} is a package, not a backup: restore its members")
            return found
    matches = [b for b in scan(storage).backups if b.backup_id.startswith(ref.lower())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BackupError(f"no backup with the key or id {ref!r} in this storage "
                          "(backup-api recover list shows what there is)")
    raise BackupError(f"{ref!r} matches {len(matches)} backups: give more of the id or the key")


def parse(key: str, document: Mapping[str, Any]) -> FoundBackup | FoundPackage | None:
    """Turn a sidecar into a record; ``None`` for a document of another kind.

    Raise ``BackupError`` when a field recovery needs is missing or malformed.
    """
    try:
        if "backup_id" in document:
            return FoundBackup(
                key=key, backup_id=str(document["backup_id"]),
                database_id=str(document["database_id"]), engine=str(document["engine"]),
                compression=str(document.get("compression") or "none"),
                size_bytes=_int(document.get("size_bytes")),
                checksum_md5=document.get("checksum_md5"),
                checksum_sha256=document.get("checksum_sha256"),
                created_at=_when(document["created_at"]),
                started_at=_maybe(document.get("started_at")),
                finished_at=_maybe(document.get("finished_at")),
                trigger=str(document.get("trigger") or "manual"),
                encryption=document.get("encryption") or None,
                source=dict(document.get("database") or {}),
                source_counts=document.get("source_counts"),
                tools=dict(document.get("tools") or {}),
                sidecar_version=int(document.get("sidecar_version") or 1))
        if "package_id" in document:
            return FoundPackage(
                key=key, package_id=str(document["package_id"]),
                format=str(document.get("format") or "zip"),
                size_bytes=_int(document.get("size_bytes")),
                checksum_md5=document.get("checksum_md5"),
                checksum_sha256=document.get("checksum_sha256"),
                created_at=_when(document["created_at"]),
                finished_at=_maybe(document.get("finished_at")),
                trigger=str(document.get("trigger") or "manual"),
                backups=list(document.get("backups") or []),
                missing=list(document.get("missing") or []),
                encryption=document.get("encryption") or None)
    except KeyError as exc:
        raise BackupError(f"sidecar lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise BackupError(f"malformed sidecar: {exc}") from None
    return None


def _load(storage: Storage, key: str) -> Mapping[str, Any]:
    try:
        document = json.loads(storage.read_bytes(key))
    except (ValueError, UnicodeDecodeError):
        raise BackupError("not a JSON document") from None
    if not isinstance(document, dict):
        raise BackupError("not a JSON object")
    return document


def _when(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _maybe(value: Any) -> datetime | None:
    return None if value is None else _when(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


__all__ = ["SIDECAR_VERSION", "Catalog", "FoundBackup", "FoundPackage", "find_backup", "parse",
           "scan", "source_of"]
