"""The path of one package, top to bottom: claim → select → stream members → record.

A package is one stream from storage to storage: each member is read from
``storage.open`` in chunks, checked against its backup row as it passes, and written
through the archive writer, the encryptor (when ``global.encryption`` is set) and the
hashing sink into ``storage.writer``. Nothing holds the package in memory or on
temporary disk, and a failure leaves nothing.

Members go in as stored: an encrypted backup stays encrypted to its own recipients
inside the package. An encrypted package is one age file around the whole archive
(``….zip.age``), so ``age -d`` of the download gives the zip or tar.gz.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, BinaryIO

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update

from shared.context import Context
from shared.encryption import Encryptor, make_encryptor
from shared.errors import ArtifactNotFound, BackupApiError, Cancelled, PackageError
from shared.hashing import Digests
from shared.jobs import cancel_job, fail_package
from shared.leftovers import discard
from shared.metrics.counters import increment
from shared.metrics.record import PACKAGES_TOTAL
from shared.models import Package, utcnow
from shared.notify import notify, package_notice
from shared.packaging.archive import CHUNK, ArchiveWriter, open_archive
from shared.packaging.selection import (
    MANIFEST_NAME,
    Member,
    Selection,
    manifest,
    package_key,
    select_members,
)
from shared.retention.apply import apply_package_retention
from shared.stopping import Cancellation
from shared.storage import Storage
from worker.cancel import watch_cancel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    size: int
    md5: str
    sha256: str


def run_package(ctx: Context, package_id: str) -> None:
    """Build package ``package_id`` if it is still pending; record how it ended.

    Idempotent like ``run_backup``: a row already running, completed or failed is
    left alone, so a redelivered task never builds a package twice.
    """
    package = _claim(ctx, package_id)
    if package is None:
        log.info("package %s is not pending; nothing to do", package_id)
        return
    try:
        with ctx.db.session() as session:
            selection = select_members(session, package.database_ids, ctx.storage.kind)
        # Recorded first, so a package that fails for want of backups says which.
        _record_selection(ctx, package.id, selection)
        if selection.empty_reason:
            raise PackageError(selection.empty_reason)
        with watch_cancel(ctx, Package, package.id, "package") as cancel:
            built = build_package(ctx.storage, package, selection, cancel)
        assert package.storage_key is not None
        ctx.storage.write_sidecar(package.storage_key, _sidecar(package, selection, built))
    except Cancelled as exc:
        _cancel(ctx, package, exc.message)
    except BackupApiError as exc:
        _fail(ctx, package, exc.message)
    except SoftTimeLimitExceeded:
        _fail(ctx, package, f"time limit of {ctx.settings.global_.backup_time_limit}s exceeded")
    except Exception as exc:  # noqa: BLE001 - any other error must still fail the row
        log.exception("package %s failed unexpectedly", package_id)
        _fail(ctx, package, f"internal error: {type(exc).__name__}: {exc}")
    else:
        _complete(ctx, package, built)
        try:
            apply_package_retention(ctx)
        except Exception:  # noqa: BLE001 - retention must not undo a good package
            log.exception("package retention failed after package %s", package_id)


def build_package(storage: Storage, package: Package, selection: Selection,
                  cancel: Cancellation | None = None) -> Built:
    """Stream the manifest and every member into the package's key; hash the output.

    ``cancel``, once requested, stops it at the next chunk (``Cancelled``).
    """
    assert package.storage_key is not None
    _check_present(storage, selection.members)
    digests = Digests()
    gzip_level = 6 if any(m.compression == "none" for m in selection.members) else 1
    encryptor = make_encryptor(package.encryption)
    # The writer is outermost: an error anywhere inside discards the partial package.
    with storage.writer(package.storage_key) as out, encryptor:
        sink = _HashingSink(out, digests, encryptor, cancel)
        archive = open_archive(package.format, sink, gzip_level=gzip_level)
        try:
            archive.add_bytes(MANIFEST_NAME,
                              manifest(package.id, package.created_at, package.format,
                                       selection), package.created_at)
            for member in selection.members:
                _copy_member(storage, archive, member)
            archive.close()
        except BaseException:
            archive.abort()
            raise
        sink.finish()
    return Built(size=digests.size, md5=digests.md5, sha256=digests.sha256)


def _check_present(storage: Storage, members: list[Member]) -> None:
    """Fail before writing anything when an artifact is gone or not the recorded size."""
    for member in members:
        try:
            size = storage.size(member.storage_key)
        except ArtifactNotFound as exc:
            raise PackageError(_missing_message(member)) from exc
        if size != member.size:
            raise PackageError(f"artifact {member.storage_key} of backup {member.backup_id} "
                               f"is {size} bytes in storage, {member.size} recorded")


def _copy_member(storage: Storage, archive: ArchiveWriter, member: Member) -> None:
    try:
        handle = storage.open(member.storage_key)
    except ArtifactNotFound as exc:
        raise PackageError(_missing_message(member)) from exc
    with handle:
        source = _VerifiedSource(handle, member)
        # Members already gzip/zstd streams gain nothing from deflate inside a zip.
        archive.add_file(member.file_name, member.size, source, member.created_at,
                         compress=member.compression == "none")
        source.finish()


def _missing_message(member: Member) -> str:
    return (f"artifact {member.storage_key} of backup {member.backup_id} "
            f"({member.database_id}) is missing from storage")


class _VerifiedSource:
    """Read a stored artifact, checking its size and MD5 against the row as it passes."""

    def __init__(self, handle: BinaryIO, member: Member) -> None:
        self._handle = handle
        self._member = member
        self.digests = Digests()

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        # Loop: a network stream may return short reads; tarfile treats one as EOF.
        while got < want and (data := self._handle.read(want - got)):
            parts.append(data)
            got += len(data)
        data = b"".join(parts)
        self.digests.update(data)
        if self.digests.size > self._member.size:
            raise self._mismatch(f"is larger than the {self._member.size} bytes recorded")
        if got < want and self.digests.size < self._member.size:
            raise self._mismatch(f"ended after {self.digests.size} of "
                                 f"{self._member.size} bytes recorded")
        return data

    def finish(self) -> None:
        """Raise unless the whole artifact was read and matches the recorded MD5."""
        if self._handle.read(1):
            raise self._mismatch(f"is larger than the {self._member.size} bytes recorded")
        if self.digests.size != self._member.size:
            raise self._mismatch(f"ended after {self.digests.size} of "
                                 f"{self._member.size} bytes recorded")
        if self._member.md5 and self.digests.md5 != self._member.md5:
            raise self._mismatch(f"has MD5 {self.digests.md5}, {self._member.md5} recorded")

    def _mismatch(self, what: str) -> PackageError:
        return PackageError(f"artifact {self._member.storage_key} of backup "
                            f"{self._member.backup_id} {what}")


class _HashingSink:
    """Encrypt (or not), then hash and store: the checksums are of the stored bytes."""

    def __init__(self, out: Any, digests: Digests, encryptor: Encryptor,
                 cancel: Cancellation | None = None) -> None:
        self._out = out
        self._digests = digests
        self._encryptor = encryptor
        self._cancel = cancel

    def write(self, data: bytes) -> None:
        if self._cancel is not None:
            self._cancel.check()
        self._store(self._encryptor.encrypt(data))

    def finish(self) -> None:
        """Store the encryptor's tail, once the archive wrote its own."""
        self._store(self._encryptor.flush())

    def _store(self, data: bytes) -> None:
        if data:
            self._digests.update(data)
            self._out.write(data)


def _claim(ctx: Context, package_id: str) -> Package | None:
    """Move the row from pending to running atomically and give it its key."""
    now = utcnow()
    with ctx.db.session() as session:
        package = session.get(Package, package_id)
        if package is None or package.status != "pending":
            return None
        # An UPDATE's result is a CursorResult; Session.execute is typed Result (sqlalchemy#12913).
        claimed = session.execute(
            update(Package).where(Package.id == package_id, Package.status == "pending")
            .values(status="running", started_at=now, storage=ctx.storage.kind,
                    storage_key=package_key(package.id, package.format, now,
                                            encrypted=bool(package.encryption)))
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return None
        session.refresh(package)
        return package


def _record_selection(ctx: Context, package_id: str, selection: Selection) -> None:
    with ctx.db.session() as session:
        session.execute(update(Package).where(Package.id == package_id).values(
            backups=[{"database_id": m.database_id, "backup_id": m.backup_id}
                     for m in selection.members],
            missing=selection.missing))


def _complete(ctx: Context, package: Package, built: Built) -> None:
    with ctx.db.session() as session:
        session.execute(update(Package).where(Package.id == package.id).values(
            status="completed", finished_at=utcnow(), size_bytes=built.size,
            checksum_md5=built.md5, checksum_sha256=built.sha256, error=None))
        increment(session, PACKAGES_TOTAL, {"status": "completed"})
    log.info("package %s completed: %d bytes", package.id, built.size)


def _fail(ctx: Context, package: Package, message: str) -> None:
    if package.storage_key:
        discard(ctx, package.storage_key)  # or later, if the storage is down
    with ctx.db.session() as session:
        failed = fail_package(session, package.id, message)
    log.warning("package %s failed: %s", package.id, message)
    if failed:  # after commit; queued, never waited for
        notify(ctx, package_notice(package, message))


def _cancel(ctx: Context, package: Package, message: str) -> None:
    if package.storage_key:
        discard(ctx, package.storage_key)
    with ctx.db.session() as session:
        cancel_job(session, Package, package.id, message, only_if=("running",))
    log.warning("package %s %s", package.id, message)


def _sidecar(package: Package, selection: Selection, built: Built) -> dict[str, object]:
    return {
        "package_id": package.id, "format": package.format, "trigger": package.trigger,
        "created_at": package.created_at.isoformat(), "size_bytes": built.size,
        "checksum_md5": built.md5, "checksum_sha256": built.sha256,
        "backups": [{"database_id": m.database_id, "backup_id": m.backup_id}
                    for m in selection.members],
        "missing": selection.missing, "finished_at": utcnow().isoformat(),
        "encryption": package.encryption,
    }


__all__ = ["build_package", "run_package"]
