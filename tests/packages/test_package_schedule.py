"""``package-conf.schedule`` through the real beat: ``backup-api run`` builds scheduled packages.

The beat is started as users start it (``backup-api run`` embeds it in the worker), so
a job kind the scheduler does not know about fails here, whatever its job function does
when called directly.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import Client
from tests.services import PostgresCluster, Process, free_port, printed_key, wait_http
from tests.worker.beat.helpers import wait_until

EVERY_MINUTE = "* * * * *"
CONFIG = f"""
global:
  compression: gzip
  max_parallel_jobs: 2
  beat_interval: 1
package-conf:
  schedule: "{EVERY_MINUTE}"
  compression: zip
"""


def _scheduled(api: Client, path: str, **params: str) -> list[dict[str, Any]]:
    return [row for row in api.get(path, params=params).json() if row["trigger"] == "schedule"]


def test_backup_api_run_fires_scheduled_backups_and_packages(tmp_path: Path,
                                                              pg: PostgresCluster) -> None:
    source = f"pkg_sched_{uuid.uuid4().hex[:8]}"
    pg.create_database(source)
    pg.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)", source)
    (tmp_path / "config.yaml").write_text(CONFIG)
    port = free_port()
    env = {"BACKUP_API_CONFIG": str(tmp_path / "config.yaml"),
           "BACKUP_API_DATA_DIR": str(tmp_path / "data"),
           "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
    run = Process("run", ["run", "--port", str(port)], env, tmp_path / "run.log").start()
    try:
        api = Client(f"http://127.0.0.1:{port}", key=printed_key(run))
        wait_http(api.base + "/health")
        # Registered unscheduled and unpackaged, so no slot fires before a first backup exists.
        db_id = api.register_postgres(pg, source, schedule="0 0 1 1 *", package=False)
        manual = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
        assert manual["status"] == "completed", manual["error"]
        patched = api.patch(f"/databases/{db_id}", json={"schedule": EVERY_MINUTE, "package": True})
        assert patched.status_code == 200, patched.text
        # As if the database had been registered ten minutes ago: the latest every-minute
        # slot is due on the beat's next pass instead of at the next minute boundary.
        with sqlite3.connect(tmp_path / "data" / "backup-api.db") as conn:
            conn.execute("UPDATE databases SET created_at = datetime(created_at, "
                         "'-10 minutes') WHERE id = ?", (db_id,))

        backups = wait_until(lambda: _scheduled(api, "/backups", database_id=db_id), 60,
                             "a scheduled backup")
        # The first slot's backup; a later slot may find it still running and be skipped.
        first = min(backups, key=lambda b: str(b["scheduled_for"]))
        backup = api.wait_backup(first["id"])
        assert backup["status"] == "completed", backup["error"]
        # 90 s: even without the catch-up, a regular minute slot passes in that time.
        packages = wait_until(lambda: _scheduled(api, "/packages"), 90, "a scheduled package")
        package = api.wait_done(f"/packages/{packages[0]['id']}")
        assert package["status"] == "completed", package["error"]
        assert package["scheduled_for"] is not None
        assert [member["database_id"] for member in package["backups"]] == [db_id]
        slots = [p["scheduled_for"] for p in _scheduled(api, "/packages")]
        assert len(slots) == len(set(slots))  # one package per slot
    finally:
        run.stop()
    assert "Traceback" not in run.log(), run.log()[-3000:]
