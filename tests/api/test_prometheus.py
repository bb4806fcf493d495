"""The backup metrics computed from metadata DB rows (SQLite here; PostgreSQL in e2e)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from api.prometheus import BackupCollector
from shared.config import Settings, load_settings
from shared.metadata_db import MetadataDB
from shared.metrics.record import record_backup
from shared.models import Backup, Database, Package, utcnow
from tests.conftest import Client


def _samples(collector: BackupCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = collector.render()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _settings(tmp_path: Path, grace: int = 60) -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text(f"global:\n  overdue_grace: {grace}\n")
    return load_settings(str(config), env={"BACKUP_API_DATA_DIR": str(tmp_path / "data")})


def test_gauges_follow_the_newest_rows(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    db = MetadataDB(settings.runtime.database_url)
    db.migrate()
    now = utcnow()
    with db.session() as session:
        session.add(Database(id="shop", name="shop", engine="postgres", host="h", port=5432,
                                database_name="shop", schedule="0 * * * *", options={},
                                created_at=now - timedelta(days=3)))
        session.add(Database(id="crm", name="crm", engine="mongodb", host="h", port=27017,
                                database_name="crm", schedule="0 0 1 1 *", options={},
                                created_at=now - timedelta(days=3)))
        for hours, size in ((5, 500), (3, 300), (4, 400)):
            session.add(Backup(database_id="shop", engine="postgres", status="completed",
                               compression="gzip", storage="local", size_bytes=size,
                               created_at=now - timedelta(hours=hours),
                               finished_at=now - timedelta(hours=hours)))
        session.add(Backup(database_id="shop", engine="postgres", status="running",
                           compression="gzip", storage="local", created_at=now))
        session.add(Backup(database_id="crm", engine="mongodb", status="pending",
                           compression="gzip", storage="local", created_at=now))
        session.add(Package(status="completed", format="zip", storage="local", size_bytes=77,
                            finished_at=now - timedelta(hours=1), backups=[], missing=[]))
        session.add(Package(status="completed", format="zip", storage="local", size_bytes=99,
                            finished_at=now - timedelta(hours=2), backups=[], missing=[]))
        record_backup(session, "shop", "postgres", "completed", 12.0)
    samples = _samples(BackupCollector(db, settings, celery=None))

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    assert value("backup_api_backup_size_bytes", database_id="shop") == 300
    assert value("backup_api_backup_last_success_timestamp_seconds", database_id="shop") == \
        (now - timedelta(hours=3)).timestamp()
    # Hourly schedule, last success 3 h ago: overdue. Yearly schedule, registered 3 days ago: not.
    assert value("backup_api_backup_overdue", database_id="shop") == 1
    assert value("backup_api_backup_overdue", database_id="crm") == 0
    assert value("backup_api_backups_in_progress") == 1
    assert value("backup_api_backups_pending") == 1
    assert value("backup_api_package_size_bytes") == 77
    assert value("backup_api_backups_total", database_id="shop", engine="postgres",
                 status="completed") == 1
    # Series of a database that never finished a backup exist at 0.
    assert value("backup_api_backups_total", database_id="crm", engine="mongodb",
                 status="failed") == 0
    assert value("backup_api_retention_deleted_total", database_id="crm") == 0
    assert value("backup_api_backup_duration_seconds_bucket", database_id="shop",
                 engine="postgres", le="15.0") == 1
    assert value("backup_api_backup_duration_seconds_bucket", database_id="shop",
                 engine="postgres", le="5.0") == 0
    assert value("backup_api_metadata_db_up") == 1
    # No Celery app (embedded broker): no worker gauge rather than a wrong 0.
    assert value("backup_api_workers_online") is None


def test_an_unreachable_metadata_db_answers_instead_of_failing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    closed = MetadataDB("postgresql://backup:pw@127.0.0.1:1/meta")
    samples = _samples(BackupCollector(closed, settings, celery=None))
    assert samples == {("backup_api_metadata_db_up", frozenset()): 0.0}


def test_the_endpoint_serves_the_http_and_the_backup_metrics(api: Client) -> None:
    assert api.get("/backups").status_code == 200
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"flask_http_request_duration_seconds", "backup_api_backups",
            "backup_api_backup_duration_seconds", "backup_api_metadata_db_up"} <= names
    assert 'url_rule="/backups"' in response.text
