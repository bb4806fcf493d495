"""The path of one backup, top to bottom: claim → dump → compress → hash → store → record."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update

from shared.catalog import target_of
from shared.compression import EXTENSIONS, make_compressor
from shared.context import Context
from shared.engines import get_engine, run_dump
from shared.errors import BackupError, DumpError, redact
from shared.hashing import Digests
from shared.models import Backup, Database, utcnow
from shared.storage import Storage

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
HEARTBEAT_EVERY = 15.0
ARTIFACT_EXTENSIONS = {"postgres": ".dump", "mongodb": ".archive"}


@dataclass(frozen=True)
class Stored:
    size: int
    md5: str
    sha256: str
    raw_size: int


def artifact_key(database_id: str, engine: str, compression: str, backup_id: str,
                 when: datetime) -> str:
    """Return the storage key: ``<db>/<yyyy>/<mm>/<dd>/<db>-<utc stamp>-<id8>.<ext>``."""
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    name = f"{database_id}-{stamp}-{backup_id[:8]}{ARTIFACT_EXTENSIONS[engine]}"
    return f"{database_id}/{when:%Y/%m/%d}/{name}{EXTENSIONS[compression]}"


def run_backup(ctx: Context, backup_id: str) -> None:
    """Take backup ``backup_id`` if it is still pending; record how it ended.

    Idempotent: a row already running, completed or failed is left alone, so a
    redelivered task never runs a backup twice.
    """
    backup, database = _claim(ctx, backup_id)
    if backup is None:
        log.info("backup %s is not pending; nothing to do", backup_id)
        return
    secrets = [database.password] if database else []
    try:
        if database is None:
            raise BackupError(f"database {backup.database_id} no longer exists")
        assert backup.storage_key is not None
        stored = dump_to_storage(ctx, backup, database)
        ctx.storage.write_sidecar(backup.storage_key, _sidecar(backup, stored))
    except BackupError as exc:
        _fail(ctx, backup, redact(exc.message, secrets))
    except SoftTimeLimitExceeded:
        _fail(ctx, backup, f"time limit of {ctx.settings.global_.backup_time_limit}s exceeded")
    except Exception as exc:  # noqa: BLE001 - any other error must still fail the row
        log.exception("backup %s failed unexpectedly", backup_id)
        _fail(ctx, backup, redact(f"internal error: {type(exc).__name__}: {exc}", secrets))
    else:
        _complete(ctx, backup, stored)


def dump_to_storage(ctx: Context, backup: Backup, database: Database) -> Stored:
    """Stream the engine's dump through the compressor into storage, hashing the output."""
    engine = get_engine(database.engine)
    command = engine.build_dump(target_of(database))
    compressor = make_compressor(backup.compression)
    digests = Digests()
    raw_size = 0
    last_beat = time.monotonic()
    assert backup.storage_key is not None
    # The writer is outermost: if the dump fails when it ends, the writer sees the
    # error and discards the partial artifact instead of publishing it.
    with ctx.storage.writer(backup.storage_key) as out:
        with run_dump(command) as dump:
            while chunk := dump.read(CHUNK):
                raw_size += len(chunk)
                data = compressor.compress(chunk)
                if data:
                    digests.update(data)
                    out.write(data)
                if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                    _heartbeat(ctx, backup.id)
                    last_beat = time.monotonic()
        # The tool exited 0 here; an empty stream is still a failure.
        if raw_size == 0:
            raise DumpError(f"{engine.tool} exited successfully but produced an empty dump")
        tail = compressor.flush()
        digests.update(tail)
        out.write(tail)
        out.set_metadata({"checksum-md5": digests.md5, "checksum-sha256": digests.sha256})
    return Stored(size=digests.size, md5=digests.md5, sha256=digests.sha256, raw_size=raw_size)


def _claim(ctx: Context, backup_id: str) -> tuple[Backup | None, Database | None]:
    """Move the row from pending to running atomically; return it and its database."""
    now = utcnow()
    with ctx.db.session() as session:
        backup = session.get(Backup, backup_id)
        if backup is None or backup.status != "pending":
            return None, None
        key = artifact_key(backup.database_id, backup.engine, backup.compression, backup.id, now)
        claimed = session.execute(  # type: ignore[attr-defined]
            update(Backup)
            .where(Backup.id == backup_id, Backup.status == "pending")
            .values(status="running", started_at=now, heartbeat_at=now,
                    worker=socket.gethostname(), storage_key=key,
                    storage=ctx.storage.kind)
        ).rowcount
        if not claimed:
            return None, None
        session.refresh(backup)
        database = session.get(Database, backup.database_id)
        return backup, database


def _heartbeat(ctx: Context, backup_id: str) -> None:
    with ctx.db.session() as session:
        session.execute(update(Backup).where(Backup.id == backup_id)
                        .values(heartbeat_at=utcnow()))


def _complete(ctx: Context, backup: Backup, stored: Stored) -> None:
    with ctx.db.session() as session:
        session.execute(
            update(Backup).where(Backup.id == backup.id).values(
                status="completed", finished_at=utcnow(), size_bytes=stored.size,
                checksum_md5=stored.md5, checksum_sha256=stored.sha256, error=None)
        )
    log.info("backup %s of %s completed: %d bytes", backup.id, backup.database_id, stored.size)


def _fail(ctx: Context, backup: Backup, message: str) -> None:
    if backup.storage_key:
        _discard(ctx.storage, backup.storage_key)
    with ctx.db.session() as session:
        session.execute(
            update(Backup).where(Backup.id == backup.id).values(
                status="failed", finished_at=utcnow(), error=message, storage_key=None,
                size_bytes=None, checksum_md5=None, checksum_sha256=None)
        )
    log.warning("backup %s of %s failed: %s", backup.id, backup.database_id, message)


def _discard(storage: Storage, key: str) -> None:
    try:
        storage.delete_artifact(key)
    except BackupError as exc:
        log.error("could not remove partial artifact %s: %s", key, exc.message)


def _sidecar(backup: Backup, stored: Stored) -> dict[str, object]:
    return {
        "backup_id": backup.id, "database_id": backup.database_id, "engine": backup.engine,
        "compression": backup.compression, "size_bytes": stored.size,
        "uncompressed_bytes": stored.raw_size, "checksum_md5": stored.md5,
        "checksum_sha256": stored.sha256, "created_at": backup.created_at.isoformat(),
        "started_at": backup.started_at.isoformat() if backup.started_at else None,
        "finished_at": utcnow().isoformat(), "trigger": backup.trigger,
    }


__all__ = ["artifact_key", "dump_to_storage", "run_backup"]
