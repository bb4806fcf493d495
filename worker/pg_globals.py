"""PostgreSQL globals beside a backup, and before a restore (``options.globals``).

Backup: after the dump, ``pg_dumpall --globals-only`` streams through the backup's own
compressor and encryptor to ``<dump key with .dump → .globals.sql>``; the row keeps the
key (``globals_key``) and the sidecar its size and checksums under ``"globals"``.
Restore with ``"globals": true``: the artifact is read back (checksums checked against
the sidecar, decrypted, decompressed), then applied with ``psql`` before ``pg_restore``
(``shared/engines/pg_globals.py`` says what is left out and why).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from contextlib import closing
from typing import Any, cast

import zstandard

from shared.allowed_hosts import AllowedHosts, reachable
from shared.catalog import target_of
from shared.compression import make_compressor, make_decompressor
from shared.context import Context
from shared.encryption import Decryptor, Identity, make_encryptor
from shared.engines import DumpEngine, Target, get_dump_engine, run_dump, run_restore
from shared.engines.base import ToolFailed
from shared.engines.pg_globals import (
    PASSWORDS_OPTION,
    applicable,
    build_globals_apply,
    build_globals_dump,
    existing_globals,
    globals_key,
    wants_globals,
)
from shared.engines.postgres import PostgresEngine
from shared.errors import BackupError, DumpError, StorageError
from shared.hashing import Digests
from shared.leftovers import discard
from shared.models import Backup, Database
from shared.storage.base import sidecar_key

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# Roles and tablespaces of even a large cluster take kilobytes; read back whole, bounded.
MAX_GLOBALS_BYTES = 64 * 1024 * 1024


def dump_globals(ctx: Context, backup: Backup, database: Database) -> dict[str, Any]:
    """Store the server's globals beside the dump if the database asks for them.

    Return the sidecar's ``{"globals": {...}}`` entry (empty when off) and set
    ``backup.globals_key`` once the artifact exists, so a later failure discards it.
    """
    if not wants_globals(database.engine, database.options):
        return {}
    assert backup.storage_key is not None
    target = reachable(target_of(database), AllowedHosts.of(ctx.settings.global_.allowed_hosts))
    engine = cast(PostgresEngine, get_dump_engine("postgres").resolve(target))
    passwords = target.options.get(PASSWORDS_OPTION) is True
    key = globals_key(backup.storage_key)
    compressor = make_compressor(backup.compression)
    encryptor = make_encryptor(backup.encryption)
    digests = Digests()
    raw_size = 0
    with ctx.storage.writer(key) as out, encryptor:
        with run_dump(build_globals_dump(engine, target, passwords)) as dump:
            while chunk := dump.read(CHUNK):
                raw_size += len(chunk)
                if data := encryptor.encrypt(compressor.compress(chunk)):
                    digests.update(data)
                    out.write(data)
        if raw_size == 0:
            raise DumpError("pg_dumpall exited successfully but wrote nothing")
        tail = encryptor.encrypt(compressor.flush()) + encryptor.flush()
        digests.update(tail)
        out.write(tail)
    backup.globals_key = key
    return {"globals": {"key": key, "size_bytes": digests.size, "uncompressed_bytes": raw_size,
                        "checksum_md5": digests.md5, "checksum_sha256": digests.sha256,
                        "role_passwords": passwords}}


def discard_globals(ctx: Context, backup: Backup) -> None:
    """Remove the globals artifact of a backup that did not complete."""
    if backup.globals_key:
        discard(ctx, backup.globals_key)


def apply_globals(ctx: Context, backup: Backup, engine: DumpEngine, target: Target,
                  identities: Sequence[Identity]) -> dict[str, Any]:
    """Create the backup's roles and tablespaces on the target's server; return what was done.

    Raise ``BackupError`` (before anything is applied) if the artifact is missing or
    damaged, and if ``psql`` stops on an error.
    """
    if not isinstance(engine, PostgresEngine):
        raise BackupError(f"only PostgreSQL backups have globals, not {engine.name} ones")
    if not backup.globals_key:
        raise BackupError(f"backup {backup.id} has no globals (options.globals was off when "
                          "it was taken)")
    script = _read(ctx, backup, identities)
    roles, tablespaces = existing_globals(target)
    statements, skipped = applicable(script, roles, tablespaces, target.username)
    try:
        with run_restore(build_globals_apply(engine, target)) as feed:
            feed.write(statements)
    except ToolFailed as exc:
        raise BackupError(f"applying the globals failed, nothing was restored: {exc.reason}"
                          ) from exc
    log.info("restore of backup %s applied its globals (%d statements left out)", backup.id,
             len(skipped))
    return {"globals_key": backup.globals_key, "applied_bytes": len(statements),
            "skipped": skipped}


def _read(ctx: Context, backup: Backup, identities: Sequence[Identity]) -> bytes:
    """Return the plain globals script, checked against the checksum the sidecar recorded."""
    assert backup.globals_key is not None and backup.storage_key is not None
    digests = Digests()
    decryptor = Decryptor(identities) if backup.encryption else None
    decompressor = make_decompressor(backup.compression)
    plain = b""
    try:
        with closing(ctx.storage.open(backup.globals_key)) as stored:
            while chunk := stored.read(CHUNK):
                digests.update(chunk)
                if digests.size > MAX_GLOBALS_BYTES:
                    raise BackupError(f"the globals of backup {backup.id} are over "
                                      f"{MAX_GLOBALS_BYTES} bytes: not a globals artifact")
                plain += decompressor.decompress(decryptor.decrypt(chunk) if decryptor
                                                 else chunk)
        if decryptor is not None:
            plain += decompressor.decompress(decryptor.finish())
            if decryptor.error:
                raise BackupError(f"corrupt globals: {decryptor.error}")
    except (zlib.error, zstandard.ZstdError) as exc:
        raise BackupError(f"corrupt globals: {exc}") from exc
    except StorageError as exc:
        raise BackupError(f"cannot read the globals of backup {backup.id}: {exc.message}"
                          ) from exc
    finally:
        if decryptor is not None:
            decryptor.close()
    expected = _recorded_sha256(ctx, backup.storage_key)
    if expected is not None and expected != digests.sha256:
        raise BackupError(f"corrupt globals: checksum mismatch: the stored file has SHA-256 "
                          f"{digests.sha256}, the sidecar recorded {expected}")
    if getattr(decompressor, "eof", True) is False:
        raise BackupError(f"corrupt globals: the {backup.compression} stream is truncated")
    return plain


def _recorded_sha256(ctx: Context, storage_key: str) -> str | None:
    try:
        document = json.loads(ctx.storage.read_bytes(sidecar_key(storage_key)))
    except (StorageError, ValueError):
        return None  # no sidecar to compare with: the compression and age checks remain
    value = (document.get("globals") or {}).get("checksum_sha256")
    return value if isinstance(value, str) else None
