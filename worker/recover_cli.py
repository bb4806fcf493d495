"""``backup-api recover list|restore|import``: work from the storage alone.

``list`` and ``restore`` need only the storage (and the target database); ``import``
also writes the metadata DB (``DATABASE_URL``). The storage is ``--storage`` (a config
file, ``file:///path`` or ``s3://bucket/prefix?endpoint=…``), else the config's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared import logs
from shared.config import Settings, load_settings
from shared.errors import BackupApiError, ConfigError

if TYPE_CHECKING:  # the rest is imported when a recover command runs, not on every start
    from shared.recovery.sidecars import Catalog, FoundBackup
    from shared.storage import Storage

STORAGE_HELP = ("where the artifacts are: a config.yaml (its storage section), file:///path, "
                "or s3://bucket/prefix?endpoint=URL (credentials from AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY); default: the config's storage")


def add_parser(sub: Any) -> None:
    """Add ``recover`` and its three subcommands to the ``backup-api`` parser."""
    recover = sub.add_parser("recover", help="list, restore or re-register backups from the "
                                             "storage alone (no metadata DB, broker or API)")
    commands = recover.add_subparsers(dest="recover_command", required=True)
    listing = commands.add_parser("list", help="list what the sidecars describe")
    listing.add_argument("--storage", help=STORAGE_HELP)
    listing.add_argument("--database", help="only the backups of this database id")
    listing.add_argument("--json", action="store_true", help="one JSON document, every field")
    restore = commands.add_parser(
        "restore", help="stream one backup into a database, checking its checksums")
    restore.add_argument("key", help="the artifact's storage key, or its backup id (a unique "
                                     "prefix is enough)")
    restore.add_argument("--to", required=True, metavar="URL",
                         help="postgresql://user@host:port/dbname or mongodb://…; the password "
                              "from PGPASSWORD / MONGODB_PASSWORD (or the URL, visible in ps)")
    restore.add_argument("--storage", help=STORAGE_HELP)
    restore.add_argument("--identity-file", action="append", default=[], metavar="PATH",
                         help="age identity file that opens an encrypted backup (repeatable)")
    restore.add_argument("--overwrite", action="store_true",
                         help="replace the contents of a target that is not empty")
    restore.add_argument("--no-indexes", action="store_true",
                         help="MongoDB: restore without the indexes (mongorestore "
                              "--noIndexRestore; FerretDB 1.x needs it)")
    restore.add_argument("--source-database", metavar="NAME",
                         help="MongoDB: the database name inside the archive (default: from "
                              "the sidecar, else the database id)")
    imports = commands.add_parser(
        "import", help="rebuild the metadata rows (databases, backups, packages) from the "
                       "sidecars into DATABASE_URL; running it again adds nothing")
    imports.add_argument("--storage", help=STORAGE_HELP)


def run(settings: Settings, args: argparse.Namespace,
        prepare: Callable[[Settings], None]) -> int:
    """Run one ``recover`` subcommand; ``prepare`` migrates the metadata DB (import only)."""
    from shared.recovery.locations import open_storage
    from shared.storage import make_storage

    try:
        if args.storage and _is_config(args.storage):
            settings = load_settings(args.storage)
        storage = (open_storage(args.storage) if args.storage and not _is_config(args.storage)
                   else make_storage(settings))
        if args.recover_command == "list":
            return _list(storage, args)
        if args.recover_command == "restore":
            return _restore(settings, storage, args)
        return _import(settings, storage, prepare)
    except ConfigError as exc:
        print(f"backup-api: recover {args.recover_command}: {exc.message}", file=sys.stderr)
        return 2
    except BackupApiError as exc:
        print(f"backup-api: recover {args.recover_command}: {exc.message}", file=sys.stderr)
        return 1


def _is_config(spec: str) -> bool:
    return "://" not in spec and not Path(spec).is_dir()


def _list(storage: Storage, args: argparse.Namespace) -> int:
    from shared.recovery.sidecars import scan

    catalog = scan(storage)
    backups = [b for b in catalog.backups if not args.database or b.database_id == args.database]
    if args.json:
        print(json.dumps({"backups": [_describe(b) for b in backups],
                          "packages": [_plain(vars(p)) for p in catalog.packages],
                          "problems": catalog.problems}, indent=2))
        return 0
    columns = ["CREATED (UTC)", "DATABASE", "ENGINE", "SIZE", "COMPRESSION", "ENCRYPTION",
               "MD5", "KEY"]
    rows = [[f"{b.created_at:%Y-%m-%d %H:%M:%S}", b.database_id, b.engine,
             _size(b.size_bytes), b.compression, _encryption(b), b.checksum_md5 or "-", b.key]
            for b in backups]
    _table(columns, rows)
    if catalog.packages and not args.database:
        print()
        _table(["CREATED (UTC)", "PACKAGE", "FORMAT", "SIZE", "MEMBERS", "KEY"],
               [[f"{p.created_at:%Y-%m-%d %H:%M:%S}", p.package_id, p.format,
                 _size(p.size_bytes), str(len(p.backups)), p.key] for p in catalog.packages])
    _warn(catalog, storage)
    return 0


def _restore(settings: Settings, storage: Storage, args: argparse.Namespace) -> int:
    from shared.catalog import identity_files
    from shared.recovery.locations import PASSWORD_VARIABLES, target_from_url
    from shared.recovery.sidecars import find_backup
    from worker.recover import RestoreRequest, encrypted_to, recover_restore

    target = target_from_url(args.to)
    if args.no_indexes:
        target = dataclasses.replace(target, options={**target.options,
                                                      "restore_indexes": False})
    logs.add_secret(target.password)
    found = find_backup(storage, args.key)
    files = args.identity_file or (identity_files(settings, found.database_id)
                                   if encrypted_to(found) else [])
    if not target.password:
        print(f"backup-api: no password for the target (none in the URL, "
              f"{PASSWORD_VARIABLES[target.engine]} unset): connecting without one",
              file=sys.stderr)
    print(f"restoring backup {found.backup_id} of {found.database_id} "
          f"({_size(found.size_bytes)}, {found.created_at:%Y-%m-%d %H:%M:%S} UTC) into "
          f"{target.engine} {target.endpoint}/{target.database_name}", file=sys.stderr,
          flush=True)
    digests = recover_restore(storage, found, RestoreRequest(
        target=target, identity_files=files, overwrite=args.overwrite,
        source_database=args.source_database))
    print(f"restored {found.key} into {target.endpoint}/{target.database_name}: "
          f"{digests.size} bytes read, MD5 {digests.md5} and SHA-256 match the sidecar")
    return 0


def _import(settings: Settings, storage: Storage, prepare: Callable[[Settings], None]) -> int:
    from shared.metadata_db import MetadataDB
    from shared.recovery.importing import import_catalog
    from shared.recovery.sidecars import scan

    catalog = scan(storage)
    prepare(settings)  # migrated, config databases and keys in place
    db = MetadataDB(settings.runtime.database_url)
    try:
        with db.exclusive(), db.session() as session:
            done = import_catalog(session, catalog, storage.kind)
    finally:
        db.sql_engine.dispose()
    print(f"imported {len(done.backups)} backup(s), {len(done.packages)} package(s) and "
          f"{len(done.databases)} database(s); {done.already_there} already there")
    if done.databases:
        print(f"registered disabled, without a password: {', '.join(done.databases)}; set "
              "the password and enable them (PATCH /databases/{id}) or declare them in "
              "config.yaml to back them up again")
    _warn(catalog, storage)
    return 0


def _describe(found: FoundBackup) -> dict[str, Any]:
    from worker.recover import encrypted_to

    return _plain({**vars(found), "encrypted": encrypted_to(found) is not None})


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in values.items()}


def _encryption(found: FoundBackup) -> str:
    from worker.recover import encrypted_to

    encryption = encrypted_to(found)
    if encryption is None:
        return "none"
    count = len(encryption.get("recipients") or [])
    return f"age ({count} recipient{'s' if count != 1 else ''})"


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _table(columns: list[str], rows: list[list[str]]) -> None:
    table = [columns, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _warn(catalog: Catalog, storage: Storage) -> None:
    for problem in catalog.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not catalog.backups and not catalog.packages:
        print(f"warning: no sidecar found in {_where(storage)}", file=sys.stderr)


def _where(storage: Storage) -> str:
    """Name the storage for a message (never a credential)."""
    root = getattr(storage, "root", None)
    if root is not None:
        return str(root)
    prefix = getattr(storage, "prefix", "")
    return (f"s3://{getattr(storage, 'bucket', '?')}{'/' + prefix if prefix else ''} "
            f"({getattr(storage, 'endpoint', '?')})")


__all__ = ["add_parser", "run"]
