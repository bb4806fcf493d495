"""Which backups a package takes, on the embedded SQLite metadata DB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.metadata_db import MetadataDB
from shared.models import Backup, Database
from shared.packaging.selection import package_key, select_members

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MetadataDB]:
    database = MetadataDB(f"sqlite:///{tmp_path / 'meta.db'}")
    database.migrate()
    yield database
    database.sql_engine.dispose()


def _database(db_id: str, package: bool) -> Database:
    return Database(id=db_id, name=db_id, engine="postgres", host="h", port=5432,
                       database_name=db_id, options={}, package=package)


def _backup(db_id: str, hours: int, status: str = "completed",
            storage: str = "local") -> Backup:
    return Backup(database_id=db_id, engine="postgres", status=status,
                  created_at=T0 + timedelta(hours=hours), compression="gzip",
                  storage=storage, storage_key=f"{db_id}/{hours}.dump.gz", size_bytes=10,
                  checksum_md5="m", checksum_sha256="s")


def test_no_database_with_package_true_is_the_reason(db: MetadataDB) -> None:
    with db.session() as session:
        session.add(_database("a", package=False))
    with db.session() as session:
        selection = select_members(session, None, "local")
    assert selection.members == [] and selection.missing == []
    assert selection.empty_reason == "nothing to package: no database has package: true"


def test_latest_completed_backup_on_this_backend_per_database(db: MetadataDB) -> None:
    with db.session() as session:
        session.add_all([_database("a", True), _database("b", True), _database("c", False),
                         _database("d", True)])
        session.add_all([
            _backup("a", 1), _backup("a", 3), _backup("a", 5, status="failed"),
            _backup("b", 2), _backup("b", 9, storage="s3"),  # on another backend
            _backup("c", 1),
        ])
    with db.session() as session:
        selection = select_members(session, None, "local")
    assert [(m.database_id, m.storage_key) for m in selection.members] == [
        ("a", "a/3.dump.gz"), ("b", "b/2.dump.gz")]
    assert selection.missing == ["d"] and selection.empty_reason is None

    with db.session() as session:
        explicit = select_members(session, ["c", "d", "c"], "local")
    assert [m.database_id for m in explicit.members] == ["c"]
    assert explicit.missing == ["d"]

    with db.session() as session:
        nothing = select_members(session, ["d", "gone"], "local")
    assert nothing.empty_reason == "nothing to package: no completed backup of d, gone"


def test_package_key_is_dated_and_cannot_meet_a_database_id() -> None:
    key = package_key("0123456789abcdef", "tar.gz", datetime(2026, 11, 26, 5, 0, 1, tzinfo=UTC))
    assert key == "_packages/2026/11/26/package-20261126T050001Z-01234567.tar.gz"
