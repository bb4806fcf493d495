"""Proof that a backup restores: the test restore, and the verdict stored on the backup.

A verification ends ``ok``, ``corrupt`` (the stored bytes are damaged or missing: the
checksums, the compression or age stream, or the checker's full read failed) or
``restore_failed`` (the bytes are sound, yet the backup could not be restored, or the
restored counts differ from the source's). The verdict, its time and its details go on
the backup row and into ``backup_api_verify_total`` in one transaction.

A test restore (``verify.test_restore``, or ``{"test_restore": true}``):

1. creates ``backup_api_verify_<8 hex>`` on the ``verify.scratch`` server, or on the
   source's own server (its user then needs ``CREATEDB``);
2. streams the artifact through the same checks as every verify into
   ``pg_restore --single-transaction`` / ``mongorestore`` aimed at it;
3. counts the rows of every table (documents of every collection) and compares them
   with the counts recorded when the backup was taken (``backups.source_counts``);
4. drops the scratch database, whatever happened before.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.allowed_hosts import AllowedHosts, reachable
from shared.catalog import target_of, verify_settings
from shared.config import DEFAULT_PORTS, ScratchServer
from shared.context import Context
from shared.engines import DumpCommand, Target, get_dump_engine
from shared.engines.base import ToolFailed
from shared.engines.scratch import scratch_driver, scratch_name
from shared.errors import ArtifactNotFound, BackupError, DumpError, redact
from shared.hashing import Digests
from shared.metrics.record import record_verify
from shared.models import Backup, Database, Restore

log = logging.getLogger(__name__)

# Feeds the checked, decrypted, decompressed artifact to a reader (worker.restore._stream).
Stream = Callable[[DumpCommand], Digests]
# The database a scratch server is reached through, to create and drop the scratch one.
MAINTENANCE_DB = {"postgres": "postgres", "mongodb": "admin"}


class VerifyFailed(BackupError):
    """A verification that found a problem: its ``status`` and ``details`` are recorded."""

    def __init__(self, message: str, status: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


def verdict(exc: BaseException | None) -> str:
    """Return the ``verify_status`` of a verification that raised ``exc`` (None: ``ok``)."""
    if exc is None:
        return "ok"
    if isinstance(exc, VerifyFailed):
        return exc.status
    if isinstance(exc, ArtifactNotFound) or (isinstance(exc, BackupError)
                                             and exc.message.startswith("corrupt:")):
        return "corrupt"
    return "restore_failed"


def record_verification(session: Session, restore: Restore, status: str,
                        details: dict[str, Any] | None, error: str | None,
                        at: datetime) -> None:
    """Store the verdict on the backup and count it, in ``session``; nothing if it is gone.

    The details are the request's (``test_restore``, ``trigger``…), what was checked, and
    the error, if any.
    """
    details = {**(restore.details or {}), **(details or {})}
    if error and "errors" not in details:
        details["errors"] = [error]
    stored = session.execute(
        update(Backup).where(Backup.id == restore.backup_id)
        .values(verified_at=at, verify_status=status, verify_details=details)
        .returning(Backup.database_id)).first()
    if stored is not None:
        record_verify(session, stored.database_id, status, at)


def run_test_restore(ctx: Context, restore: Restore, backup: Backup,
                     stream: Stream) -> dict[str, Any]:
    """Restore ``backup`` into a scratch database, compare the counts, drop it; return details.

    Raise :class:`VerifyFailed` (``corrupt`` or ``restore_failed``) with the details so
    far; the scratch database is dropped in every case (``details["scratch"]`` says so).
    """
    with ctx.db.session() as session:
        source = session.get(Database, backup.database_id)
    settings = verify_settings(ctx.settings, backup.database_id, backup.engine)
    name = scratch_name(restore.id)
    details: dict[str, Any] = {**(restore.details or {}), "test_restore": True}
    try:
        server = reachable(_server(settings.scratch, source, backup),
                           AllowedHosts.of(ctx.settings.global_.allowed_hosts))
    except BackupError as exc:
        raise VerifyFailed(f"restore_failed: {exc.message}", "restore_failed",
                           details) from exc
    secrets = [server.password]
    scratch = dataclasses.replace(server, database_name=name)
    details["scratch"] = {"server": server.endpoint, "database": name, "dropped": False}
    driver = scratch_driver(backup.engine)
    try:
        driver.create(server, name)
        engine = get_dump_engine(backup.engine).resolve(scratch)
        command = engine.build_restore(
            scratch, source_database_name=source.database_name if source else backup.database_id)
        digests = stream(command)
        details.update(size_bytes=digests.size, checksum_md5=digests.md5,
                       checksum_sha256=digests.sha256, checksums_match=True)
        _compare(details, backup.source_counts, driver.count(scratch))
    except VerifyFailed:
        raise
    except ToolFailed as exc:
        # The bytes proved sound (else _stream says corrupt first): the restore itself failed.
        message = redact(f"restore_failed: {exc.message}", secrets)
        details["errors"] = [message]
        raise VerifyFailed(message, "restore_failed", details) from exc
    except BackupError as exc:
        status = verdict(exc)
        message = exc.message if status == "corrupt" else f"{status}: {exc.message}"
        if isinstance(exc, ArtifactNotFound):
            message = f"corrupt: the artifact is missing from storage: {exc.message}"
        message = redact(message, secrets)
        details.setdefault("errors", [message])
        raise VerifyFailed(message, status, details) from exc
    finally:
        _drop(driver, server, name, details)
    return details


def _server(scratch: ScratchServer | None, source: Database | None, backup: Backup) -> Target:
    """Return the server to create the scratch database on, reached through a database
    that exists there (the source's own, or the maintenance database of ``scratch``)."""
    if scratch is None:
        if source is None:
            raise DumpError(f"database {backup.database_id!r} no longer exists and no "
                            "verify.scratch server is declared to restore into")
        return target_of(source)
    options = {key: value for key, value in (source.options if source else {}).items()
               if key not in ("uri", "authSource", "authMechanism", "replicaSet", "tls",
                              "tlsCAFile", "tlsInsecure", "sslmode")}
    return Target(engine=backup.engine, host=scratch.host,
                  port=scratch.port or DEFAULT_PORTS[backup.engine],
                  database_name=MAINTENANCE_DB[backup.engine], username=scratch.username,
                  password=scratch.password, options={**options, **scratch.options})


def _compare(details: dict[str, Any], source: dict[str, int] | None,
             restored: dict[str, int]) -> None:
    """Record each table's counts in ``details``; raise ``VerifyFailed`` if any differs."""
    tables: dict[str, dict[str, int | None]] = {}
    problems = []
    for table in sorted(set(source or {}) | set(restored)):
        want, got = (source or {}).get(table), restored.get(table)
        tables[table] = {"source": want, "restored": got}
        if want is None:
            continue  # not counted at backup time (written during a MongoDB dump)
        if got is None:
            problems.append(f"{table}: missing after the restore ({want} rows at backup time)")
        elif got != want:
            problems.append(f"{table}: {want} rows at backup time, {got} restored")
    details["tables"] = tables
    if source is None:
        details["note"] = ("no source counts were recorded when this backup was taken "
                           "(verify.test_restore was off): restored counts only")
    if problems:
        details["errors"] = problems
        raise VerifyFailed(f"restore_failed: the restored counts differ from the source's "
                           f"at backup time: {'; '.join(problems)}", "restore_failed", details)


def _drop(driver: Any, server: Target, name: str, details: dict[str, Any]) -> None:
    try:
        driver.drop(server, name)
    except DumpError as exc:
        # Say so where the user looks; the verdict on the backup stands.
        log.error("scratch database %s on %s was not dropped: %s", name, server.endpoint,
                  exc.message)
        details["scratch"]["drop_error"] = exc.message
    else:
        details["scratch"]["dropped"] = True
