"""``/metrics`` answers what it answered before its rewrite for 1,000 databases: on the
same rows, the backup families are the same text, byte for byte, as the collector it
replaced (``tests/api/metrics_before.py``), on SQLite and on PostgreSQL. Families
added since (verify, notifications) are left out of the comparison.

The rows are the awkward ones a real history has: several schedules and time zones
(the overdue brackets are cached now), two backups finished at the same instant with
different sizes, completed backups without a size, a deleted database whose backups and
counters stay, disabled databases, databases that never succeeded, packages.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import insert

from api.prometheus import BackupCollector
from shared.config import Settings, load_settings
from shared.metadata_db import MetadataDB
from shared.metrics.counters import canonical_labels, increment
from shared.metrics.record import (
    BACKUPS_TOTAL,
    DURATION,
    DURATION_BUCKETS,
    PACKAGES_TOTAL,
    RETENTION_DELETED_TOTAL,
    format_le,
    record_backup,
)
from shared.models import Backup, Counter, Database, Package, utcnow
from tests.api.metrics_before import BackupCollector as CollectorBefore
from tests.services import PostgresCluster

DATABASES = 300
SCHEDULES = [None, "0 2 * * *", "0 * * * *", "*/5 * * * *", "0 2 * * 1-5", "30 3 * * 0",
             "0 0 1 * *"]
ZONES = [None, "Europe/Madrid", "America/New_York", "Asia/Kolkata"]
# Every time below is a whole number of minutes plus 30 s from ``now``, and every
# schedule interval a whole number of minutes: no database crosses its overdue line in
# the seconds between the two scrapes.
OFFSET = timedelta(seconds=30)
DURATIONS = [0.2, 3.0, 59.9, 60.0, 700.0, 5000.0, 1e5]


def _settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text('global:\n  schedule: "0 3 * * *"\n  timezone: Europe/Madrid\n'
                      "  overdue_grace: 600\n")
    return load_settings(str(config), env={"BACKUP_API_DATA_DIR": str(tmp_path / "data")})


def _populate(db: MetadataDB) -> None:
    rng = random.Random(15)
    now = utcnow().replace(microsecond=0)
    backups: list[dict[str, Any]] = []
    with db.session() as session:
        for n in range(DATABASES):
            db_id, engine = f"db-{n:03d}", ("postgres", "mongodb")[n % 2]
            session.add(Database(
                id=db_id, name=db_id, engine=engine, host="h", port=5432, database_name="d",
                schedule=SCHEDULES[n % len(SCHEDULES)], timezone=ZONES[n % len(ZONES)],
                enabled=n % 11 != 0, options={},
                created_at=now - timedelta(minutes=rng.randint(1, 90 * 24 * 60)) - OFFSET))
            backups += _history(rng, now, db_id, engine, count=rng.choice([0, 1, 5, 40, 80]))
        # Deleted through the API with its backups kept: rows and counters, no database.
        backups += _history(rng, now, "gone", "postgres", count=12)
        # A completed row without its finish time (written by hand, or by an old release).
        backups.append(_row("unfinished", "postgres", "completed", None, 5))
        counts: dict[tuple[str, str], float] = defaultdict(float)
        for status in ("completed", "failed"):
            for n in range(DATABASES):
                for _ in range(rng.choice([0, 0, 1, 3])):
                    _count(counts, f"db-{n:03d}", ("postgres", "mongodb")[n % 2], status,
                           rng.choice(DURATIONS))
            # As a worker counts: the real upserts, for the deleted database.
            record_backup(session, "gone", "postgres", status, 60.0)
            increment(session, PACKAGES_TOTAL, {"status": status}, by=rng.randint(1, 9))
        for db_id in ("db-007", "db-100", "gone", "gone-long-ago"):
            increment(session, RETENTION_DELETED_TOTAL, {"database_id": db_id}, by=3)
        for hours, size, status in ((1, 77, "completed"), (2, 99, "completed"),
                                    (0, None, "failed")):
            session.add(Package(status=status, format="zip", storage="local", size_bytes=size,
                                finished_at=now - timedelta(hours=hours), backups=[],
                                missing=[]))
        session.execute(insert(Backup), backups)
        session.execute(insert(Counter), [{"name": name, "labels": labels, "value": value}
                                          for (name, labels), value in counts.items()])


def _count(counts: dict[tuple[str, str], float], db_id: str, engine: str, status: str,
           seconds: float) -> None:
    """Add to ``counts`` the series ``record_backup`` adds to (one upsert each there: too
    slow for thousands of backups here)."""
    pair = {"database_id": db_id, "engine": engine}
    counts[BACKUPS_TOTAL, canonical_labels({**pair, "status": status})] += 1
    if status != "completed":
        return
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            counts[DURATION + "_bucket", canonical_labels({**pair, "le": format_le(bound)})] += 1
    counts[DURATION + "_count", canonical_labels(pair)] += 1
    counts[DURATION + "_sum", canonical_labels(pair)] += seconds


def _history(rng: random.Random, now: datetime, db_id: str, engine: str,
             count: int) -> list[dict[str, Any]]:
    """``count`` finished backups, the newest first, and sometimes one pending or running."""
    rows = []
    at = now - timedelta(minutes=rng.randint(1, 3000)) - OFFSET
    for n in range(count):
        status = rng.choice(["completed"] * 6 + ["failed", "cancelled"])
        size = None if rng.random() < 0.05 else rng.randint(1, 10**10)
        rows.append(_row(db_id, engine, status, at, size))
        if n == 0 and status == "completed":  # a tie on the newest: the larger size wins
            rows.append(_row(db_id, engine, "completed", at, rng.randint(1, 10**10)))
        at -= timedelta(minutes=rng.randint(1, 4000))
    if count and rng.random() < 0.3:
        rows.append(_row(db_id, engine, rng.choice(["pending", "running"]), None, None))
    return rows


def _row(db_id: str, engine: str, status: str, finished: datetime | None,
         size: int | None) -> dict[str, Any]:
    created = (finished or utcnow()) - timedelta(minutes=5)
    return {"id": str(uuid.uuid4()), "database_id": db_id, "engine": engine, "status": status,
            "trigger": "schedule", "created_at": created, "compression": "gzip",
            "storage": "local", "size_bytes": size,
            "finished_at": finished if status in ("completed", "failed", "cancelled") else None}


def _before(db: MetadataDB, settings: Settings) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CollectorBefore(db, settings, celery=None))
    return generate_latest(registry).decode()


def _families(text: str) -> dict[str, str]:
    """Return each family's lines (HELP, TYPE, samples) by name, in order."""
    return {block.split(" ", 1)[0]: "# HELP " + block for block in text.split("# HELP ")[1:]}


def _assert_same(db: MetadataDB, settings: Settings) -> None:
    db.migrate()
    _populate(db)
    before = _before(db, settings)
    now = BackupCollector(db, settings, celery=None).render()
    # Families added since (verify, notifications) may sit between them.
    families = _families(now)
    assert [f for f in families if f in _families(before)] == list(_families(before))
    for name, lines in _families(before).items():
        assert families[name] == lines, name
    # The comparison covered every family of the contract, with many series each.
    assert now.count("\nbackup_api_backup_duration_seconds_bucket{") == (DATABASES + 1) * 16
    for name in ("backups_total", "backup_size_bytes", "backup_last_success_timestamp_seconds",
                 "retention_deleted_total", "packages_total", "backup_overdue"):
        assert f"\nbackup_api_{name}{{" in now, name
    assert 'backup_api_backup_overdue{database_id="db-000"}' not in now  # disabled
    overdue = [line.rsplit(" ", 1)[1] for line in now.splitlines()
               if line.startswith("backup_api_backup_overdue{")]
    assert {"0.0", "1.0"} <= set(overdue)


def test_the_same_text_as_before_on_sqlite(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _assert_same(MetadataDB(settings.runtime.database_url), settings)


def test_the_same_text_as_before_on_postgresql(tmp_path: Path, pg: PostgresCluster) -> None:
    name = f"metrics_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    _assert_same(MetadataDB(pg.url(name)), _settings(tmp_path))
