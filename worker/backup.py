"""One backup, top to bottom: claim → dump → compress → encrypt → hash → store → record."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import ColumnElement, CursorResult, and_, update

from shared.allowed_hosts import AllowedHosts, reachable
from shared.catalog import target_of, verify_settings
from shared.compression import EXTENSIONS, make_compressor
from shared.context import Context
from shared.encryption import SUFFIX, make_encryptor
from shared.engines import HEAD_BYTES, get_dump_engine, run_dump
from shared.engines.scratch import counted_dump
from shared.errors import BackupError, Cancelled, DumpError, redact
from shared.hashing import Digests
from shared.jobs import cancel_job, fail_backup
from shared.leftovers import discard
from shared.logs import add_secret, event
from shared.metrics.record import record_backup
from shared.models import Backup, Database, utcnow
from shared.notify import backup_notice, notify, wants
from shared.recovery.sidecars import SIDECAR_VERSION, source_of
from shared.retention.apply import run_retention
from shared.stopping import Cancellation
from worker.bounds import check_free_space, max_size_of, over_max_size
from worker.cancel import watch_cancel
from worker.pg_globals import discard_globals, dump_globals

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
    tools: dict[str, str]
    # Rows per table in the dump's snapshot, for test restores (verify.test_restore).
    source_counts: dict[str, int] | None = None


def artifact_key(database_id: str, engine: str, compression: str, backup_id: str,
                 when: datetime, encrypted: bool = False) -> str:
    """Return the storage key: ``<db>/<yyyy>/<mm>/<dd>/<db>-<utc stamp>-<id8>.<ext>[.age]``."""
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    name = f"{database_id}-{stamp}-{backup_id[:8]}{ARTIFACT_EXTENSIONS[engine]}"
    return (f"{database_id}/{when:%Y/%m/%d}/{name}{EXTENSIONS[compression]}"
            f"{SUFFIX if encrypted else ''}")


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
    add_secret(database.password if database else None)
    log.info("backup %s of %s started", backup.id, backup.database_id,
             extra=_fields(backup, "start"))
    # Until the outcome is recorded: writing the sidecar, or cleaning up after a storage
    # outage, may take a while, and the reaper must not take this worker for dead.
    with _heartbeat(ctx, backup), watch_cancel(ctx, Backup, backup.id, "backup") as cancel:
        try:
            if database is None:
                raise BackupError(f"database {backup.database_id} no longer exists")
            assert backup.storage_key is not None
            stored = dump_to_storage(ctx, backup, database, cancel)
            globals_ = dump_globals(ctx, backup, database)  # options.globals (PostgreSQL)
            ctx.storage.write_sidecar(backup.storage_key,
                                      {**_sidecar(backup, stored, database), **globals_})
        except Cancelled as exc:
            _cancel(ctx, backup, exc.message)
        except BackupError as exc:
            _fail(ctx, backup, redact(exc.message, secrets))
        except SoftTimeLimitExceeded:
            _fail(ctx, backup,
                  f"time limit of {ctx.settings.global_.backup_time_limit}s exceeded")
        except Exception as exc:  # noqa: BLE001 - any other error must still fail the row
            log.exception("backup %s failed unexpectedly", backup_id)
            _fail(ctx, backup, redact(f"internal error: {type(exc).__name__}: {exc}",
                                      secrets))
        else:
            _complete(ctx, backup, stored)


def dump_to_storage(ctx: Context, backup: Backup, database: Database,
                    cancel: Cancellation | None = None) -> Stored:
    """Stream the engine's dump through the compressor and the encryptor (when the row
    says so) into storage, hashing the stored bytes.

    On local storage, first check there is room (``worker/bounds.py``); stop the dump
    when the stored bytes pass ``databases[].max_size_bytes`` or ``cancel`` is requested.
    """
    check_free_space(ctx, backup)
    max_size = max_size_of(ctx.settings, database.id)
    # Checked (and pinned to the checked address) before anything connects, the probe too.
    target = reachable(target_of(database), AllowedHosts.of(ctx.settings.global_.allowed_hosts))
    engine = get_dump_engine(database.engine).resolve(target)
    command = engine.build_dump(target)
    compressor = make_compressor(backup.compression,
                                 zstd_level=ctx.settings.global_.zstd_level,
                                 zstd_threads=ctx.settings.global_.zstd_threads)
    encryptor = make_encryptor(backup.encryption)
    digests = Digests(background=True)  # the dump is read while the hashes run
    raw_size = 0
    head = b""
    assert backup.storage_key is not None
    # The writer is outermost: if the dump fails when it ends, the writer sees the
    # error and discards the partial artifact instead of publishing it.
    counts_wanted = verify_settings(ctx.settings, database.id, database.engine).test_restore
    with ctx.storage.writer(backup.storage_key) as out, encryptor:
        with counted_dump(database.engine, target, counts_wanted) as counting, \
                run_dump(counting.with_snapshot(command), cancel) as dump:
            while chunk := dump.read(CHUNK):
                if cancel is not None:
                    cancel.check()
                raw_size += len(chunk)
                if len(head) < HEAD_BYTES:
                    head += chunk[:HEAD_BYTES - len(head)]
                data = encryptor.encrypt(compressor.compress(chunk))
                if data:
                    digests.update(data)
                    out.write(data)
                if max_size is not None and digests.size > max_size:
                    raise BackupError(over_max_size(database.id, max_size, digests.size,
                                                    engine.tool))
        # The tool exited 0 here; an empty stream is still a failure.
        if raw_size == 0:
            raise DumpError(f"{engine.tool} exited successfully but produced an empty dump")
        engine.check_output(target, head)
        tail = encryptor.encrypt(compressor.flush()) + encryptor.flush()
        digests.update(tail)
        out.write(tail)
        out.set_metadata({"checksum-md5": digests.md5, "checksum-sha256": digests.sha256})
    return Stored(size=digests.size, md5=digests.md5, sha256=digests.sha256, raw_size=raw_size,
                  tools=engine.tool_versions(), source_counts=counting.counts)


def _claim(ctx: Context, backup_id: str) -> tuple[Backup | None, Database | None]:
    """Move the row from pending to running atomically; return it and its database."""
    now = utcnow()
    with ctx.db.session() as session:
        backup = session.get(Backup, backup_id)
        if backup is None or backup.status != "pending":
            return None, None
        key = artifact_key(backup.database_id, backup.engine, backup.compression, backup.id, now,
                           encrypted=bool(backup.encryption))
        # An UPDATE's result is a CursorResult; Session.execute is typed Result (sqlalchemy#12913).
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


@contextmanager
def _heartbeat(ctx: Context, backup: Backup) -> Iterator[None]:
    """Write ``heartbeat_at`` from a thread while the body runs.

    A thread, not the read loop: a dump may be silent for minutes (a lock wait, a
    slow server) and still be alive. The thread dies with the process, which is how
    the reaper (worker/beat/reaper.py) tells a killed worker from a slow dump. Only this
    attempt's row is touched: once the reaper has given it to a new attempt, this one
    can neither keep it alive nor complete it.
    """
    every = min(HEARTBEAT_EVERY, ctx.settings.global_.heartbeat_timeout / 4)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                with ctx.db.session() as session:
                    session.execute(update(Backup).where(_ours(backup))
                                    .values(heartbeat_at=utcnow()))
            except Exception as exc:  # noqa: BLE001 - retried on the next beat
                log.warning("heartbeat of backup %s failed: %s", backup.id, exc)

    thread = threading.Thread(target=beat, name=f"heartbeat-{backup.id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _ours(backup: Backup) -> ColumnElement[bool]:
    """The row as this attempt claimed it: running, and not handed to a later attempt."""
    return and_(Backup.id == backup.id, Backup.status == "running",
                Backup.attempt == backup.attempt)


def _complete(ctx: Context, backup: Backup, stored: Stored) -> None:
    now = utcnow()
    duration = _seconds(backup, now)
    with ctx.db.session() as session:
        completed = cast(CursorResult[Any], session.execute(
            update(Backup).where(_ours(backup)).values(
                status="completed", finished_at=now, size_bytes=stored.size,
                checksum_md5=stored.md5, checksum_sha256=stored.sha256, error=None,
                source_counts=stored.source_counts, globals_key=backup.globals_key)
        )).rowcount
        # Counted in the same transaction as the status, once per backup.
        if completed:
            record_backup(session, backup.database_id, backup.engine, "completed", duration)
    if not completed:
        # The reaper gave up on this attempt (heartbeats stopped reaching the DB) and
        # failed or retried the backup; keep that and drop the artifact nobody points to.
        log.warning("backup %s was failed or retried meanwhile; discarding its artifact",
                    backup.id)
        assert backup.storage_key is not None
        discard(ctx, backup.storage_key)
        discard_globals(ctx, backup)
        return
    log.info("backup %s of %s completed: %d bytes", backup.id, backup.database_id, stored.size,
             extra=_fields(backup, "complete", duration_seconds=duration,
                           size_bytes=stored.size))
    if wants(ctx.settings.notifications, "backup_completed"):
        notify(ctx, backup_notice("backup_completed", backup, finished_at=now,
                                  duration=duration, size_bytes=stored.size,
                                  sha256=stored.sha256))
    try:
        run_retention(ctx, [backup.database_id])
    except Exception:  # noqa: BLE001 - the backup itself succeeded
        log.exception("retention after backup %s failed", backup.id)


def _fail(ctx: Context, backup: Backup, message: str) -> None:
    if backup.storage_key:
        discard(ctx, backup.storage_key)
    discard_globals(ctx, backup)
    now = utcnow()
    duration = _seconds(backup, now)
    with ctx.db.session() as session:
        # Only while this attempt runs: the reaper may have failed (and counted) or
        # retried it already.
        failed = fail_backup(session, backup.id, message, only_if=_ours(backup),
                             duration=duration, now=now)
    log.warning("backup %s of %s failed: %s", backup.id, backup.database_id, message,
                extra=_fields(backup, "fail", duration_seconds=duration, error=message))
    if failed:  # after commit; queued, never waited for
        notify(ctx, backup_notice("backup_failed", backup, error=message, finished_at=now,
                                  duration=duration))


def _cancel(ctx: Context, backup: Backup, message: str) -> None:
    if backup.storage_key:
        discard(ctx, backup.storage_key)
    now = utcnow()
    duration = _seconds(backup, now)
    with ctx.db.session() as session:
        cancel_job(session, Backup, backup.id, message, only_if=_ours(backup), now=now,
                   duration=duration)
    log.warning("backup %s of %s %s", backup.id, backup.database_id, message,
                extra=_fields(backup, "cancel", duration_seconds=duration, error=message))


def _seconds(backup: Backup, now: datetime) -> float | None:
    return round((now - backup.started_at).total_seconds(), 3) if backup.started_at else None


def _fields(backup: Backup, stage: str, **more: object) -> dict[str, object]:
    return event(stage, backup_id=backup.id, database_id=backup.database_id,
                 engine=backup.engine, **more)


def _sidecar(backup: Backup, stored: Stored, database: Database) -> dict[str, object]:
    return {
        # What `backup-api recover` reads with no metadata DB (shared/recovery/sidecars.py).
        "sidecar_version": SIDECAR_VERSION, "kind": "backup",
        "database": source_of(database), "source_counts": stored.source_counts,
        "backup_id": backup.id, "database_id": backup.database_id, "engine": backup.engine,
        "compression": backup.compression, "size_bytes": stored.size,
        "uncompressed_bytes": stored.raw_size, "checksum_md5": stored.md5,
        "checksum_sha256": stored.sha256, "created_at": backup.created_at.isoformat(),
        "started_at": backup.started_at.isoformat() if backup.started_at else None,
        "finished_at": utcnow().isoformat(), "trigger": backup.trigger, "tools": stored.tools,
        # Public keys only: which secret key opens the artifact, never the key itself.
        "encryption": backup.encryption,
    }


__all__ = ["artifact_key", "dump_to_storage", "run_backup"]
