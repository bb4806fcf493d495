"""The cluster-wide counter helper on both metadata DBs: PostgreSQL and SQLite."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from shared.metadata_db import MetadataDB
from shared.metrics import counters
from tests.services import PostgresCluster


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata(request: pytest.FixtureRequest, tmp_path: Path) -> MetadataDB:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/meta.db"
    else:
        pg: PostgresCluster = request.getfixturevalue("pg")
        name = f"counters_{uuid.uuid4().hex[:8]}"
        pg.create_database(name)
        url = pg.url(name)
    db = MetadataDB(url)
    db.migrate()
    return db


def test_increment_creates_then_adds_per_label_set(metadata: MetadataDB) -> None:
    with metadata.session() as session:
        counters.increment(session, "backup_api_x_total", {"database_id": "a"})
        counters.increment(session, "backup_api_x_total", {"database_id": "a"}, by=2)
        counters.increment(session, "backup_api_x_total", {"database_id": "b"})
    with metadata.session() as session:
        assert counters.read(session, "backup_api_x_total") == {
            '{"database_id":"a"}': 3.0, '{"database_id":"b"}': 1.0}


def test_labels_are_canonical() -> None:
    assert counters.canonical_labels({"b": "2", "a": "1"}) == '{"a":"1","b":"2"}'


def test_an_increment_rolls_back_with_its_transaction(metadata: MetadataDB) -> None:
    with pytest.raises(RuntimeError), metadata.session() as session:
        counters.increment(session, "backup_api_y_total", {})
        raise RuntimeError("the counted work failed")
    with metadata.session() as session:
        assert counters.read(session, "backup_api_y_total") == {}


def test_concurrent_increments_are_not_lost(metadata: MetadataDB) -> None:
    def bump() -> None:
        for _ in range(20):
            with metadata.session() as session:
                counters.increment(session, "backup_api_z_total", {"k": "v"})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with metadata.session() as session:
        assert counters.read(session, "backup_api_z_total") == {'{"k":"v"}': 80.0}
