"""Restore one artifact with nothing but the storage (``backup-api recover restore``).

The sidecar stands in for the row: it gives the engine, the compression, the encryption
recipients and the checksums, and the artifact streams through the same checks as a
restore through the API (``worker.restore.stream_artifact``): every stored byte is
hashed, decrypted and decompressed on the way into ``pg_restore``/``mongorestore``, and
a checksum mismatch or a broken stream stops the tool before it sees the end of its
input (``pg_restore --single-transaction`` then leaves the target as it was). No
metadata DB, broker or API is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.encryption import AGE, Identity, identities_for
from shared.engines import Target, get_dump_engine
from shared.errors import BackupError
from shared.hashing import Digests
from shared.models import Backup
from shared.recovery.sidecars import FoundBackup
from shared.storage import Storage
from worker.restore import stream_artifact


@dataclass(frozen=True)
class RestoreRequest:
    """What the operator asked for on the command line."""

    target: Target
    identity_files: Sequence[str] = ()
    overwrite: bool = False
    # The database name inside a MongoDB archive, when the sidecar predates recording it.
    source_database: str | None = None


def recover_restore(storage: Storage, found: FoundBackup, request: RestoreRequest) -> Digests:
    """Stream ``found`` into ``request.target``, checking its checksums; return them.

    Raise ``BackupError`` (``corrupt: checksum mismatch: …`` for damaged bytes) or
    ``DumpError`` (the tool refused sound bytes); messages never hold the password.
    """
    target = request.target
    if target.engine != found.engine:
        raise BackupError(f"backup {found.backup_id} is a {found.engine} backup; the target "
                          f"is a {target.engine} database")
    if not (found.checksum_md5 and found.checksum_sha256):
        raise BackupError(f"the sidecar of {found.key} records no checksums: the artifact "
                          "cannot be checked")
    identities = _identities(found, request.identity_files)
    engine = get_dump_engine(found.engine).resolve(target)
    if not request.overwrite and not engine.is_empty(target):
        raise BackupError(f"the target database {target.database_name!r} on {target.endpoint} "
                          "is not empty; repeat with --overwrite to replace its contents")
    source = request.source_database or found.database_name or found.database_id
    command = engine.build_restore(target, source_database_name=source)
    return stream_artifact(storage, as_row(found), command, identities)


def as_row(found: FoundBackup) -> Backup:
    """Return a detached ``Backup`` carrying what the stream checks (never saved)."""
    return Backup(id=found.backup_id, database_id=found.database_id, engine=found.engine,
                  compression=found.compression, size_bytes=found.size_bytes,
                  checksum_md5=found.checksum_md5, checksum_sha256=found.checksum_sha256,
                  storage_key=found.key, encryption=encrypted_to(found))


def encrypted_to(found: FoundBackup) -> dict[str, Any] | None:
    """Return the sidecar's encryption when the artifact is encrypted, else None."""
    encryption = found.encryption
    return encryption if encryption and encryption.get("type") == AGE else None


def _identities(found: FoundBackup, files: Sequence[str]) -> list[Identity]:
    encryption = encrypted_to(found)
    if encryption is None:
        return []
    what = f"backup {found.backup_id}"
    if not files:
        recipients = ", ".join(str(r) for r in encryption.get("recipients") or [])
        raise BackupError(f"{what} is encrypted with age to {recipients}; give the secret "
                          "key with --identity-file (an age identity file)")
    return identities_for(what, encryption, files)


__all__ = ["RestoreRequest", "as_row", "encrypted_to", "recover_restore"]
