"""Counters in the metadata DB: an upsert that adds up, on the embedded SQLite."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from shared.counters import increment, labels_key
from shared.db import Database
from shared.models import Counter


def test_increment_creates_then_adds_per_label_set(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate()
    with db.session() as session:
        increment(session, "backup_api_packages_total", {"status": "completed"})
        increment(session, "backup_api_packages_total", {"status": "completed"}, by=2)
        increment(session, "backup_api_packages_total", {"status": "failed"})
    with db.session() as session:
        values = {row.labels: row.value for row in session.scalars(select(Counter))}
    assert values == {'{"status":"completed"}': 3.0, '{"status":"failed"}': 1.0}


def test_labels_key_is_canonical() -> None:
    assert labels_key({"b": "2", "a": "1"}) == labels_key({"a": "1", "b": "2"}) \
        == '{"a":"1","b":"2"}'
