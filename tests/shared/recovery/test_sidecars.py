"""Sidecars read back from a real local storage: new and older ones, odd files, and the
names an operator gives on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import BackupError, ConfigError
from shared.metadata_db import MetadataDB
from shared.models import Backup, Database
from shared.recovery.importing import UNKNOWN_HOST, import_catalog
from shared.recovery.locations import open_storage, target_from_url
from shared.recovery.sidecars import FoundBackup, FoundPackage, find_backup, scan
from shared.storage import LocalStorage

KEY = "shop/2026/01/02/shop-20260102T030405Z-1f2e3d4c.dump.gz"
# What version 1 (before `backup-api recover`) wrote: no source database, no version.
OLD_SIDECAR = {
    "backup_id": "1f2e3d4c-0000-4000-8000-000000000001", "database_id": "shop",
    "engine": "postgres", "compression": "gzip", "size_bytes": 5, "uncompressed_bytes": 9,
    "checksum_md5": "5d41402abc4b2a76b9719d911017c592",
    "checksum_sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    "created_at": "2026-01-02T03:04:05.123456+00:00", "started_at": None,
    "finished_at": "2026-01-02T03:04:09+00:00", "trigger": "schedule",
    "tools": {"pg_dump": "pg_dump (PostgreSQL) 15.8"}, "encryption": None,
}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(str(tmp_path / "backups"))
    store.put_bytes(KEY, b"hello")
    store.write_sidecar(KEY, OLD_SIDECAR)
    return store


def test_an_older_sidecar_is_read_with_what_it_has(storage: LocalStorage) -> None:
    (found,) = scan(storage).backups
    assert isinstance(found, FoundBackup)
    assert (found.key, found.database_id, found.trigger, found.sidecar_version) == (
        KEY, "shop", "schedule", 1)
    assert found.created_at.isoformat() == "2026-01-02T03:04:05.123456+00:00"
    assert found.database_name is None and found.source == {} and found.started_at is None


def test_odd_files_are_problems_not_failures(storage: LocalStorage) -> None:
    storage.put_bytes("shop/orphan.dump", b"x")                        # no sidecar
    storage.put_bytes("shop/gone.dump.json", b"{}")                    # no artifact
    storage.put_bytes("shop/bad.dump", b"x")
    storage.put_bytes("shop/bad.dump.json", b"not json")
    storage.put_bytes("packages/p.zip", b"zip")
    storage.write_sidecar("packages/p.zip", {
        "package_id": "9a8b7c6d-0000-4000-8000-000000000002", "format": "zip",
        "created_at": "2026-01-03T00:00:00+00:00", "size_bytes": 3,
        "backups": [{"database_id": "shop", "backup_id": OLD_SIDECAR["backup_id"]}]})
    catalog = scan(storage)
    assert [b.key for b in catalog.backups] == [KEY]
    (package,) = catalog.packages
    assert isinstance(package, FoundPackage) and package.backups[0]["database_id"] == "shop"
    assert sorted(catalog.problems) == [
        "shop/bad.dump.json: not a JSON document",
        "shop/gone.dump.json: sidecar of a missing artifact",
        "shop/orphan.dump: no sidecar (not described, not restorable by recover)"]


def test_a_backup_is_found_by_key_id_or_prefix(storage: LocalStorage) -> None:
    assert find_backup(storage, KEY).backup_id == OLD_SIDECAR["backup_id"]
    assert find_backup(storage, "1F2E3D4C").key == KEY
    with pytest.raises(BackupError, match="no backup with the key or id 'nope'"):
        find_backup(storage, "nope")


def test_storage_names(tmp_path: Path, storage: LocalStorage) -> None:
    assert isinstance(open_storage(f"file://{storage.root}"), LocalStorage)
    assert isinstance(open_storage(str(storage.root)), LocalStorage)
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID") as refused:
        open_storage("s3://user:s3cr3t-Key@bucket/prefix?endpoint=http://127.0.0.1:9")
    assert "s3cr3t-Key" not in refused.value.message
    with pytest.raises(ConfigError, match="unknown parameter secret"):
        open_storage("s3://bucket/prefix?secret=x")
    with pytest.raises(ConfigError, match="config file not found"):
        open_storage(str(tmp_path / "missing.yaml"))
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  type: local\n  path: {storage.root}\n")
    assert scan(open_storage(str(config))).backups[0].key == KEY


def test_target_urls() -> None:
    target = target_from_url("postgresql://backup@db.internal:5433/shop?sslmode=require",
                             {"PGPASSWORD": "from-env-Secret"})
    assert (target.engine, target.host, target.port, target.database_name, target.username,
            target.password, target.options) == (
        "postgres", "db.internal", 5433, "shop", "backup", "from-env-Secret",
        {"sslmode": "require"})
    assert "from-env-Secret" not in repr(target)
    mongo = target_from_url("mongodb://u:p%40ss@m1/app?authSource=admin&tls=true", {})
    assert (mongo.port, mongo.password, mongo.options) == (
        27017, "p@ss", {"authSource": "admin", "tls": True})
    for url, message in [("mysql://h/db", "postgresql:// or mongodb://"),
                         ("postgresql://h", "name the target database"),
                         ("postgresql://h/db?password=x", "unsupported parameter password")]:
        with pytest.raises(ConfigError, match=message):
            target_from_url(url, {})


def test_import_from_an_older_sidecar_into_sqlite_twice(tmp_path: Path,
                                                        storage: LocalStorage) -> None:
    db = MetadataDB(f"sqlite:///{tmp_path}/meta.db")
    db.migrate()
    catalog = scan(storage)
    with db.session() as session:
        first = import_catalog(session, catalog, "local")
    with db.session() as session:
        second = import_catalog(session, catalog, "local")
        database = session.get(Database, "shop")
        backup = session.get(Backup, OLD_SIDECAR["backup_id"])
        assert database is not None and backup is not None
        assert (database.host, database.port, database.database_name, database.enabled) == (
            UNKNOWN_HOST, 5432, "shop", False)
        assert (backup.status, backup.storage_key, backup.checksum_md5, backup.trigger) == (
            "completed", KEY, OLD_SIDECAR["checksum_md5"], "schedule")
    assert (first.databases, first.backups) == (["shop"], [OLD_SIDECAR["backup_id"]])
    assert (second.databases, second.backups, second.already_there) == ([], [], 1)
    db.sql_engine.dispose()
