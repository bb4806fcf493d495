"""Reading a backup back, top to bottom: claim → stream from storage → check → record.

Both kinds read every byte of the stored artifact, recompute its MD5 and SHA-256,
decrypt it when it is encrypted (with the keys of ``encryption.identity_file``, which
only the config sets) and decompress it on the fly into a reader:
- ``verify`` feeds the dump to the engine's checker (``pg_restore --file=/dev/null``,
  which reads every data block, not only the table of contents; MongoDB ships no
  offline checker, so there the checksums and the complete compression stream are
  the check);
- ``restore`` feeds it to the engine's restore tool against the target database: its
  own database or one marked ``restore_target`` (``shared.catalog.restore_refusal``),
  refusing a non-empty target unless the request's ``confirm`` named it.

The artifact is read to its end even when the reader stops early, and the reader gets
the last bytes of the dump only once the checksums and the compression stream proved
sound: a corrupt artifact kills the reader before it sees the end of its input, so
``pg_restore --single-transaction`` rolls back and the target is left as it was
(``mongorestore`` has no such transaction: collections before the damage stay
replaced). Verify and restore then fail with the same message naming each check that
failed: ``corrupt: checksum mismatch: …; the gzip stream is truncated: …``. When the
bytes are sound but the checker rejects them, verify says
``corrupt: pg_restore could not read the archive: …``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from typing import Any

import zstandard
from sqlalchemy import update

from shared.allowed_hosts import AllowedHosts, reachable
from shared.catalog import identity_files, restore_refusal, target_of
from shared.compression import make_decompressor
from shared.context import Context
from shared.encryption import Decryptor, Identity, identities_for
from shared.engines import DumpCommand, get_dump_engine, run_restore
from shared.engines.base import Feed, ToolFailed
from shared.engines.pg_globals import with_owners
from shared.errors import BackupError, Cancelled, redact
from shared.hashing import Digests
from shared.jobs import cancel_job
from shared.models import Backup, Database, Restore, utcnow
from shared.notify import notify, verify_notice
from shared.stopping import Cancellation
from shared.storage import Storage
from worker.cancel import watch_cancel
from worker.pg_globals import apply_globals
from worker.verification import record_verification, run_test_restore, verdict

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
# How much of the dump's end the reader waits for until the artifact proved sound.
HOLD_BYTES = 64 * 1024


def run_restore_job(ctx: Context, restore_id: str) -> None:
    """Run verification or restore ``restore_id`` if still pending; record the outcome."""
    claimed = _claim(ctx, restore_id)
    if claimed is None:
        log.info("restore %s is not pending; nothing to do", restore_id)
        return
    restore, backup, target_db = claimed
    secrets = [target_db.password] if target_db else []
    try:
        with watch_cancel(ctx, Restore, restore_id, restore.kind) as cancel:
            details = _perform(ctx, restore, backup, target_db, cancel)
    except Cancelled as exc:
        # The tool was killed before its input ended: pg_restore --single-transaction
        # rolled back; mongorestore keeps the collections it had replaced.
        with ctx.db.session() as session:
            cancel_job(session, Restore, restore_id, exc.message, only_if=("running",))
        log.warning("%s %s %s", restore.kind, restore_id, exc.message)
    except BackupError as exc:
        _finish(ctx, restore_id, "failed", error=redact(exc.message, secrets),
                details=getattr(exc, "details", None), verdict=_verdict(restore, exc))
    except Exception as exc:  # noqa: BLE001 - any other error must still fail the row
        log.exception("restore %s failed unexpectedly", restore_id)
        _finish(ctx, restore_id, "failed",
                error=redact(f"internal error: {type(exc).__name__}: {exc}", secrets),
                verdict=_verdict(restore, exc))
    else:
        _finish(ctx, restore_id, "completed", details={**(restore.details or {}), **details},
                verdict=_verdict(restore, None))


def _verdict(restore: Restore, exc: BaseException | None) -> str | None:
    """Return what a verification's outcome says of its backup (None for a restore)."""
    return verdict(exc) if restore.kind == "verify" else None


def _perform(ctx: Context, restore: Restore, backup: Backup | None,
             target_db: Database | None, cancel: Cancellation | None = None) -> dict[str, Any]:
    if backup is None or backup.status != "completed" or not backup.storage_key:
        raise BackupError(f"backup {restore.backup_id} is gone or not completed")
    engine = get_dump_engine(backup.engine)
    # Before anything connects: without the right key there is nothing to read.
    identities = (identities_for(f"backup {backup.id}", backup.encryption,
                                 identity_files(ctx.settings, backup.database_id))
                  if backup.encryption else [])
    extra: dict[str, Any] = {}
    if restore.kind == "verify" and (restore.details or {}).get("test_restore"):
        return run_test_restore(
            ctx, restore, backup,
            lambda command: _stream(ctx, backup, command, identities, cancel))
    if restore.kind == "verify":
        command = engine.build_check()
    else:
        if target_db is None:
            raise BackupError(f"target database {restore.target_database_id!r} no longer exists")
        if target_db.engine != backup.engine:
            raise BackupError(f"cannot restore a {backup.engine} backup into "
                              f"{target_db.engine} database {target_db.id!r}")
        # Checked when requested; again here, as the target may have changed since.
        if (refused := restore_refusal(backup.database_id, target_db)) is not None:
            raise BackupError(refused)
        target = reachable(target_of(target_db),
                           AllowedHosts.of(ctx.settings.global_.allowed_hosts))
        engine = engine.resolve(target)
        if not restore.confirm and not engine.is_empty(target):
            raise BackupError(f"target database {target_db.id!r} is not empty; repeat with "
                              f'"confirm": "{target_db.id}" to replace its contents')
        command = engine.build_restore(target, source_database_name=_source_name(ctx, backup))
        if restore.apply_globals:  # roles first; then the dump keeps its owners and grants
            extra["globals"] = apply_globals(ctx, backup, engine, target, identities)
            command = with_owners(command)
    try:
        digests = _stream(ctx, backup, command, identities, cancel)
    except ToolFailed as exc:
        if restore.kind != "verify":
            raise  # the bytes are sound: the target refused them, not a corrupt artifact
        raise BackupError(f"corrupt: {exc.tool} could not read the archive: {exc.reason}"
                          ) from exc
    return {"size_bytes": digests.size, "checksum_md5": digests.md5,
            "checksum_sha256": digests.sha256, "checksums_match": True, **extra}


def _stream(ctx: Context, backup: Backup, command: DumpCommand | None,
            identities: Sequence[Identity] = (), cancel: Cancellation | None = None) -> Digests:
    return stream_artifact(ctx.storage, backup, command, identities, cancel)


def stream_artifact(storage: Storage, backup: Backup, command: DumpCommand | None,
                    identities: Sequence[Identity] = (),
                    cancel: Cancellation | None = None) -> Digests:
    """Feed the decrypted, decompressed artifact to ``command`` (or nowhere) while checking
    every byte against ``backup``'s checksums (a row, or one rebuilt from a sidecar by
    ``backup-api recover``).

    Raise ``BackupError("corrupt: …")`` before the reader gets the dump's last
    ``HOLD_BYTES`` if the checksums or the compression stream fail; ``ToolFailed`` if
    the artifact is sound and the reader exits non-zero.
    """
    assert backup.storage_key is not None
    check = _ArtifactCheck(backup, identities)
    sink: AbstractContextManager[Feed | _Nowhere] = (
        run_restore(command, cancel) if command is not None else nullcontext(_Nowhere()))
    with closing(check), closing(storage.open(backup.storage_key)) as stored, \
            sink as reader:
        held = b""
        while chunk := stored.read(CHUNK):
            if cancel is not None:
                cancel.check()
            held += check.update(chunk)
            if len(held) > HOLD_BYTES:
                reader.write(held[:-HOLD_BYTES])
                held = held[-HOLD_BYTES:]
        held += check.finish()
        if problems := check.problems():
            # What the reader made of damaged bytes is beside the point (and differs
            # between a check and a restore): name the checks that failed.
            raise BackupError("corrupt: " + "; ".join(problems))
        reader.write(held)
    return check.digests


class _ArtifactCheck:
    """Hash every stored byte, decrypt and decompress what can be; list what failed at the end.
    """

    def __init__(self, backup: Backup, identities: Sequence[Identity]) -> None:
        self.backup = backup
        self.digests = Digests()
        self._decryptor = Decryptor(identities) if backup.encryption else None
        self._decompressor = make_decompressor(backup.compression)
        self._stream_error: str | None = None
        self._trailing = 0

    def update(self, chunk: bytes) -> bytes:
        """Hash ``chunk``; return its plain bytes so far (none once a stream broke)."""
        self.digests.update(chunk)
        if self._decryptor is not None:
            chunk = self._decryptor.decrypt(chunk)
        return self._decompress(chunk)

    def finish(self) -> bytes:
        """Return the plain bytes the decryptor still held, once the whole artifact was read."""
        return self._decompress(self._decryptor.finish()) if self._decryptor else b""

    def close(self) -> None:
        if self._decryptor is not None:
            self._decryptor.close()

    def _decompress(self, chunk: bytes) -> bytes:
        if self._stream_error is not None:
            return b""
        if getattr(self._decompressor, "eof", False):
            self._trailing += len(chunk)
            return b""
        try:
            data = self._decompressor.decompress(chunk)
        except (zlib.error, zstandard.ZstdError) as exc:
            self._stream_error = f"the {self.backup.compression} stream is corrupt: {exc}"
            return b""
        self._trailing += len(getattr(self._decompressor, "unused_data", b""))
        return data

    def problems(self) -> list[str]:
        """Return one line per failed check, checksums first; empty if all passed."""
        backup, digests, found = self.backup, self.digests, []
        if (digests.md5, digests.sha256) != (backup.checksum_md5, backup.checksum_sha256):
            found.append(f"checksum mismatch: the stored artifact has MD5 {digests.md5} "
                         f"({digests.size} bytes), the backup recorded {backup.checksum_md5} "
                         f"({backup.size_bytes} bytes)")
        name = backup.compression
        if self._decryptor is not None and self._decryptor.error is not None:
            # What the decompressor made of a broken age stream is beside the point.
            found.append(self._decryptor.error)
        elif self._stream_error is not None:
            found.append(self._stream_error)
        elif not getattr(self._decompressor, "eof", True):
            found.append(f"the {name} stream is truncated: it ends before its end marker")
        elif self._trailing:
            found.append(f"the {name} stream is followed by {self._trailing} stray bytes")
        return found


class _Nowhere:
    """The reader of an engine without an offline checker."""

    def write(self, data: bytes) -> None:
        pass


def _source_name(ctx: Context, backup: Backup) -> str:
    with ctx.db.session() as session:
        source = session.get(Database, backup.database_id)
        return source.database_name if source else backup.database_id


def _claim(ctx: Context, restore_id: str
           ) -> tuple[Restore, Backup | None, Database | None] | None:
    with ctx.db.session() as session:
        # An UPDATE's result is a CursorResult; Session.execute is typed Result (sqlalchemy#12913).
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
            details: dict[str, Any] | None = None, verdict: str | None = None) -> None:
    """Record how the job ended; a verification's ``verdict`` also goes on its backup."""
    with ctx.db.session() as session:
        now = utcnow()
        values: dict[str, Any] = {"status": status, "finished_at": now, "error": error}
        if details is not None:
            values["details"] = details
        session.execute(update(Restore).where(Restore.id == restore_id).values(**values))
        if verdict is not None and (row := session.get(Restore, restore_id)) is not None:
            record_verification(session, row, verdict, details, error, now)
        failed = session.get(Restore, restore_id) if status == "failed" else None
    log.info("restore %s %s%s", restore_id, status, f": {error}" if error else "")
    if failed is not None and failed.kind == "verify":  # after commit; queued
        notify(ctx, verify_notice(failed, error or "failed", verdict))
