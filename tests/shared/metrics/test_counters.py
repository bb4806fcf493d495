"""Cluster-wide counters: exact under concurrent increments, on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.metadata_db import MetadataDB
from shared.metrics.counters import canonical_labels, increment, read, read_series
from shared.metrics.record import DURATION, record_backup
from tests.services import PostgresCluster


@pytest.fixture(params=["postgresql", "sqlite"])
def metadata(request: pytest.FixtureRequest, tmp_path: Path) -> MetadataDB:
    if request.param == "sqlite":
        db = MetadataDB(f"sqlite:///{tmp_path / 'meta.db'}")
    else:
        pg: PostgresCluster = request.getfixturevalue("pg")
        name = f"counters_{uuid.uuid4().hex[:8]}"
        pg.create_database(name)
        db = MetadataDB(pg.url(name))
    db.migrate()
    return db


def test_increment_creates_then_adds_per_label_set(metadata: MetadataDB) -> None:
    with metadata.session() as session:
        increment(session, "backup_api_x_total", {"database_id": "a"})
        increment(session, "backup_api_x_total", {"database_id": "a"}, by=2)
        increment(session, "backup_api_x_total", {"database_id": "b"})
    with metadata.session() as session:
        assert read(session, "backup_api_x_total") == {
            '{"database_id":"a"}': 3.0, '{"database_id":"b"}': 1.0}


def test_labels_are_canonical() -> None:
    assert canonical_labels({"b": "2", "a": "1"}) == '{"a":"1","b":"2"}'


def test_concurrent_increments_are_never_lost(metadata: MetadataDB) -> None:
    def bump(_: int) -> None:
        for _ in range(10):
            with metadata.session() as session:
                increment(session, "backup_api_test_total", {"database_id": "shop"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(bump, range(8)))
    with metadata.session() as session:
        assert read_series(session, ["backup_api_test_total"]) == [
            ("backup_api_test_total", {"database_id": "shop"}, 80.0)]


def test_a_rolled_back_transaction_counts_nothing(metadata: MetadataDB) -> None:
    with pytest.raises(RuntimeError), metadata.session() as session:
        increment(session, "backup_api_test_total", {})
        raise RuntimeError("the status update failed")
    with metadata.session() as session:
        assert read_series(session, ["backup_api_test_total"]) == []


def test_record_backup_fills_cumulative_buckets(metadata: MetadataDB) -> None:
    with metadata.session() as session:
        record_backup(session, "shop", "postgres", "completed", 42.5)
        record_backup(session, "shop", "postgres", "completed", 3.0)
        record_backup(session, "shop", "postgres", "failed", 0.2)
    with metadata.session() as session:
        rows = {(name, labels.get("le", labels.get("status"))): value
                for name, labels, value in read_series(session, [
                    "backup_api_backups_total", DURATION + "_bucket", DURATION + "_count",
                    DURATION + "_sum"])}
    assert rows[("backup_api_backups_total", "completed")] == 2
    assert rows[("backup_api_backups_total", "failed")] == 1
    assert (DURATION + "_bucket", "1.0") not in rows
    assert rows[(DURATION + "_bucket", "5.0")] == 1
    assert rows[(DURATION + "_bucket", "30.0")] == 1
    assert rows[(DURATION + "_bucket", "60.0")] == 2
    assert rows[(DURATION + "_bucket", "+Inf")] == 2
    assert rows[(DURATION + "_count", None)] == 2
    assert rows[(DURATION + "_sum", None)] == pytest.approx(45.5)
