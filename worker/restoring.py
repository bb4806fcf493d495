"""Reading a backup back, top to bottom: claim → stream from storage → check → record.

Both kinds recompute MD5 and SHA-256 of the stored bytes while streaming them and
decompress on the fly:
- ``verify`` feeds the dump to the engine's checker (``pg_restore --list``; MongoDB
  ships no offline checker, so there the bytes, checksums and compression are checked),
  so a truncated or corrupt archive fails even when its checksums were recorded wrong;
- ``restore`` feeds it to the engine's restore tool against the target database,
  refusing a non-empty target unless the request said ``confirm``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import IO, Any

from sqlalchemy import update

from shared.catalog import target_of
from shared.compression import make_decompressor
from shared.context import Context
from shared.engines import DumpCommand, get_engine, run_restore
from shared.errors import BackupError, redact
from shared.hashing import Digests
from shared.models import Backup, Database, Restore, utcnow

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


def run_restore_job(ctx: Context, restore_id: str) -> None:
    """Run verification or restore ``restore_id`` if still pending; record the outcome."""
    claimed = _claim(ctx, restore_id)
    if claimed is None:
        log.info("restore %s is not pending; nothing to do", restore_id)
        return
    restore, backup, target_db = claimed
    secrets = [target_db.password] if target_db else []
    try:
        details = _perform(ctx, restore, backup, target_db)
    except BackupError as exc:
        _finish(ctx, restore_id, "failed", error=redact(exc.message, secrets))
    except Exception as exc:  # noqa: BLE001 - any other error must still fail the row
        log.exception("restore %s failed unexpectedly", restore_id)
        _finish(ctx, restore_id, "failed",
                error=redact(f"internal error: {type(exc).__name__}: {exc}", secrets))
    else:
        _finish(ctx, restore_id, "completed", details=details)


def _perform(ctx: Context, restore: Restore, backup: Backup | None,
             target_db: Database | None) -> dict[str, Any]:
    if backup is None or backup.status != "completed" or not backup.storage_key:
        raise BackupError(f"backup {restore.backup_id} is gone or not completed")
    engine = get_engine(backup.engine)
    if restore.kind == "verify":
        command = engine.build_check()
    else:
        if target_db is None:
            raise BackupError(f"target database {restore.target_database_id!r} no longer exists")
        if target_db.engine != backup.engine:
            raise BackupError(f"cannot restore a {backup.engine} backup into "
                              f"{target_db.engine} database {target_db.id!r}")
        target = target_of(target_db)
        engine = engine.resolve(target)
        if not restore.confirm and not engine.is_empty(target):
            raise BackupError(f"target database {target_db.id!r} is not empty; repeat with "
                              "confirm: true to replace its contents")
        command = engine.build_restore(target, source_database_name=_source_name(ctx, backup))
    digests = _stream(ctx, backup, command)
    if (digests.md5, digests.sha256) != (backup.checksum_md5, backup.checksum_sha256):
        raise BackupError(
            f"checksum mismatch: the stored artifact has MD5 {digests.md5}, the backup "
            f"recorded {backup.checksum_md5}; the artifact is corrupt")
    return {"size_bytes": digests.size, "checksum_md5": digests.md5,
            "checksum_sha256": digests.sha256, "checksums_match": True}


def _stream(ctx: Context, backup: Backup, command: DumpCommand | None) -> Digests:
    """Feed the decompressed artifact to ``command`` (or nowhere) while hashing it."""
    assert backup.storage_key is not None
    digests = Digests()
    decompressor = make_decompressor(backup.compression)
    sink_cm = run_restore(command) if command is not None else _discard()
    with closing(ctx.storage.open(backup.storage_key)) as stored, sink_cm as sink:
        while chunk := stored.read(CHUNK):
            digests.update(chunk)
            sink.write(decompressor.decompress(chunk))
        if not getattr(decompressor, "eof", True):
            raise BackupError(f"the artifact {backup.storage_key} is truncated "
                              f"({backup.compression} stream incomplete)")
    return digests


@contextmanager
def _discard() -> Iterator[IO[bytes]]:
    with open(os.devnull, "wb") as sink:
        yield sink


def _source_name(ctx: Context, backup: Backup) -> str:
    with ctx.db.session() as session:
        source = session.get(Database, backup.database_id)
        return source.database_name if source else backup.database_id


def _claim(ctx: Context, restore_id: str
           ) -> tuple[Restore, Backup | None, Database | None] | None:
    with ctx.db.session() as session:
        claimed = session.execute(  # type: ignore[attr-defined]
            update(Restore).where(Restore.id == restore_id, Restore.status == "pending")
            .values(status="running", started_at=utcnow())).rowcount
        if not claimed:
            return None
        restore = session.get(Restore, restore_id)
        assert restore is not None
        backup = session.get(Backup, restore.backup_id)
        target = (session.get(Database, restore.target_database_id)
                  if restore.target_database_id else None)
        return restore, backup, target


def _finish(ctx: Context, restore_id: str, status: str, *, error: str | None = None,
            details: dict[str, Any] | None = None) -> None:
    with ctx.db.session() as session:
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
        if details is not None:
            values["details"] = details
        session.execute(update(Restore).where(Restore.id == restore_id).values(**values))
    log.info("restore %s %s%s", restore_id, status, f": {error}" if error else "")
