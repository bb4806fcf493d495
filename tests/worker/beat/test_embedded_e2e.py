"""The embedded default (`backup-api run`: SQLite, filesystem broker, worker --beat) schedules,
backs up and applies retention too."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.conftest import Client
from tests.services import PostgresCluster, Process, free_port, printed_key, wait_http
from tests.worker.beat.helpers import wait_until

EMBEDDED_CONFIG = """
global:
  compression: gzip
  max_backups: 1
  max_parallel_jobs: 2
  beat_interval: 1
"""


def test_backup_api_run_schedules_and_prunes(tmp_path: Path, pg: PostgresCluster,
                                             sched_pg_db: str) -> None:
    (tmp_path / "config.yaml").write_text(EMBEDDED_CONFIG)
    port = free_port()
    env = {"BACKUP_API_CONFIG": str(tmp_path / "config.yaml"),
           "BACKUP_API_DATA_DIR": str(tmp_path / "data"),
           "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
    run = Process("run", ["run", "--port", str(port)], env, tmp_path / "run.log").start()
    try:
        api = Client(f"http://127.0.0.1:{port}", key=printed_key(run))
        wait_http(api.base + "/health")
        db_id = api.register_postgres(pg, sched_pg_db, schedule="* * * * *")
        # As if beat had been down for ten minutes since the database was registered.
        with sqlite3.connect(tmp_path / "data" / "backup-api.db") as conn:
            conn.execute("UPDATE databases SET created_at = datetime(created_at, "
                         "'-10 minutes') WHERE id = ?", (db_id,))
        scheduled = wait_until(
            lambda: [b for b in api.get("/backups", params={"database_id": db_id}).json()
                     if b["trigger"] == "schedule"], 60, "the catch-up backup")
        assert len(scheduled) == 1
        first = api.wait_backup(scheduled[0]["id"])
        assert first["status"] == "completed", first["error"]

        # max_backups 1: a second backup replaces the first, on SQLite as on PostgreSQL.
        second = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
        assert second["status"] == "completed", second["error"]
        wait_until(lambda: api.get(f"/backups/{first['id']}").status_code == 404, 20,
                   "retention after the second backup")
        time.sleep(1)
        assert api.post("/retention/run", json={"dry_run": True}).json()["count"] == 0
    finally:
        run.stop()
    assert "Traceback" not in run.log(), run.log()[-3000:]
